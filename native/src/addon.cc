// The addon's export table. Each netlink family registers its own functions.
#include <napi.h>

#include "addr.h"
#include "bpf.h"
#include "link.h"
#include "netns.h"
#include "route.h"
#include "rule.h"
#include "wireguard.h"
#include "xfrm.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  veil::RegisterLinks(env, exports);
  veil::RegisterAddrs(env, exports);
  veil::RegisterRoutes(env, exports);
  veil::RegisterRules(env, exports);
  veil::RegisterWireGuard(env, exports);
  veil::RegisterXfrm(env, exports);
  veil::RegisterBpf(env, exports);
  veil::RegisterBpfAttach(env, exports);
  veil::RegisterBpfRingbuf(env, exports);
  veil::RegisterNetns(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(veil_native, Init)
