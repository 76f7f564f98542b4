#pragma once

#include <napi.h>

namespace veil {

// Adds this family's exports (policy routing rules, RTM_*RULE) to the addon's export table.
void RegisterRules(Napi::Env env, Napi::Object exports);

}  // namespace veil
