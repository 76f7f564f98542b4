#include "link.h"

#include "js.h"

namespace veil {

void RegisterLinks(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace veil
