#pragma once

#include <napi.h>

namespace veil {

// Adds this family's exports to the addon's export table.
void RegisterWireGuard(Napi::Env env, Napi::Object exports);

}  // namespace veil
