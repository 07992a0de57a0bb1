// The parts of synfin's one native binding (native/addon.cc puts them on its exports). Each part
// lives in a folder of its own, next to the TypeScript that calls it:
//   device/        the TUN device: open, batched reads polled on the event loop, batched writes (src/tun/)
//   upstream/      the proxy's upstream sockets in one epoll set (src/proxy/upstream.ts)
//   sockets/       TCP_INFO and getsockname of a kernel socket (src/observability/tcp-info.ts)
//   socket-table/  the kernel's TCP socket table over sock_diag (src/observability/kernel-sockets.ts)
//   socket-owners/ which process holds a socket, from /proc/PID/fd (src/observability/app-process.ts)
//   process/       giving up capabilities, and the exec that makes it hold for every thread (src/tun/caps.ts)
#pragma once

#include <napi.h>

namespace synfin {

void InitDevice(Napi::Env env, Napi::Object exports);
void InitUpstream(Napi::Env env, Napi::Object exports);
void InitSockets(Napi::Env env, Napi::Object exports);
void InitSocketTable(Napi::Env env, Napi::Object exports);
void InitSocketOwners(Napi::Env env, Napi::Object exports);
void InitCaps(Napi::Env env, Napi::Object exports);

}  // namespace synfin
