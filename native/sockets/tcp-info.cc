// Facts of one kernel TCP socket read with one system call each: TCP_INFO for the connection table
// and getsockname() for the 4-tuple the socket table watches (src/observability/tcp-info.ts).
#include <napi.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "../addon.h"
#include "../common/napi-util.h"

namespace {

using namespace synfin;

constexpr int kTcpInfoFields = 10;

// struct tcp_info as the kernel fills it (include/uapi/linux/tcp.h), up to tcpi_bytes_received
// (Linux 4.1). glibc's <netinet/tcp.h> copy stops at tcpi_total_retrans, and <linux/tcp.h> cannot
// be included next to it (uv.h pulls in the glibc one), so the prefix we read is spelled out here.
struct KernelTcpInfo {
  uint8_t state, caState, retransmits, probes, backoff, options, wscale, flags;
  uint32_t rto, ato, sndMss, rcvMss;
  uint32_t unacked, sacked, lost, retrans, fackets;
  uint32_t lastDataSent, lastAckSent, lastDataRecv, lastAckRecv;
  uint32_t pmtu, rcvSsthresh, rtt, rttvar, sndSsthresh, sndCwnd, advmss, reordering;
  uint32_t rcvRtt, rcvSpace;
  uint32_t totalRetrans;
  uint64_t pacingRate, maxPacingRate, bytesAcked, bytesReceived;
};
static_assert(offsetof(KernelTcpInfo, totalRetrans) == offsetof(struct tcp_info, tcpi_total_retrans),
              "KernelTcpInfo must match the kernel's struct tcp_info");
static_assert(offsetof(KernelTcpInfo, bytesAcked) == 120, "tcpi_bytes_acked is at offset 120");

// The fd argument (info[0]) of tcpInfo and localEndpoint; throws a TypeError if it is no number.
bool GetFd(const Napi::CallbackInfo& info, int* fd) {
  if (!info[0].IsNumber()) {
    Napi::TypeError::New(info.Env(), "fd must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *fd = info[0].As<Napi::Number>().Int32Value();
  return true;
}

// tcpInfo(fd: number, out: Float64Array): boolean
// getsockopt(TCP_INFO) on a kernel TCP socket. out receives, in this order: tcpi_state, tcpi_rtt
// (µs), tcpi_rttvar (µs), tcpi_retransmits, tcpi_total_retrans, tcpi_snd_cwnd (segments),
// tcpi_unacked, tcpi_lost, tcpi_bytes_acked, tcpi_bytes_received. False on error (EBADF,
// ENOTSOCK, EOPNOTSUPP for a non-TCP socket...).
Napi::Value TcpInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFd(info, &fd)) return env.Undefined();
  double* out;
  size_t outLen;
  if (!GetTypedArray<double>(info, 1, napi_float64_array, "out", &out, &outLen)) return env.Undefined();
  if (outLen < kTcpInfoFields) {
    Napi::RangeError::New(env, "out must hold 10 numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  KernelTcpInfo ti;
  memset(&ti, 0, sizeof ti);
  socklen_t len = sizeof ti;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return Napi::Boolean::New(env, false);
  out[0] = ti.state;
  out[1] = ti.rtt;
  out[2] = ti.rttvar;
  out[3] = ti.retransmits;
  out[4] = ti.totalRetrans;
  out[5] = ti.sndCwnd;
  out[6] = ti.unacked;
  out[7] = ti.lost;
  out[8] = static_cast<double>(ti.bytesAcked);
  out[9] = static_cast<double>(ti.bytesReceived);
  return Napi::Boolean::New(env, true);
}

// localEndpoint(fd: number, out: Uint32Array): boolean
// getsockname() of a socket, as numbers: out receives [family (4 or 6), address words 0..3 in
// network order read as big-endian 32-bit numbers (IPv4 in word 3, the others 0), port]. One
// system call and no strings: what a connection's watched 4-tuple needs (src/tun/tcp-info.ts).
Napi::Value LocalEndpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!GetFd(info, &fd)) return env.Undefined();
  uint32_t* out;
  size_t outLen;
  if (!GetTypedArray<uint32_t>(info, 1, napi_uint32_array, "out", &out, &outLen)) return env.Undefined();
  if (outLen < 6) {
    Napi::RangeError::New(env, "out must hold 6 numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return Napi::Boolean::New(env, false);
  return Napi::Boolean::New(env, ReadSockaddr(ss, out));
}

}  // namespace

namespace synfin {

void InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpInfo", Napi::Function::New(env, TcpInfo, "tcpInfo"));
  exports.Set("localEndpoint", Napi::Function::New(env, LocalEndpoint, "localEndpoint"));
}

}  // namespace synfin
