#include "xfrm.h"

#include "js.h"

namespace veil {

void RegisterXfrm(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace veil
