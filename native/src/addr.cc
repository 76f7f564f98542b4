#include "addr.h"

#include "js.h"

namespace veil {

void RegisterAddrs(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace veil
