// Named network namespaces, the way iproute2 makes them (`ip netns add NAME`): a namespace
// file bind-mounted at /run/netns/NAME, so `ip netns exec NAME ...` and every netlink call of
// the addon that takes { netns: NAME } find it. Also sysctl writes inside a namespace.
#pragma once

#include <napi.h>

namespace veil {

// Adds this family's exports (netnsAdd, netnsDelete, sysctlSet, sysctlGet) to the export table.
void RegisterNetns(Napi::Env env, Napi::Object exports);

}  // namespace veil
