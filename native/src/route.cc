#include "route.h"

#include "js.h"

namespace veil {

void RegisterRoutes(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace veil
