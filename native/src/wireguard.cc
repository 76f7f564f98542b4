#include "wireguard.h"

#include "js.h"

namespace veil {

void RegisterWireGuard(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace veil
