// synfin's native binding: one module whose exports each part adds to (native/addon.h).
#include <napi.h>

#include "addon.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  synfin::InitDevice(env, exports);
  synfin::InitUpstream(env, exports);
  synfin::InitSockets(env, exports);
  synfin::InitSocketTable(env, exports);
  synfin::InitSocketOwners(env, exports);
  synfin::InitCaps(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(synfin, Init)
