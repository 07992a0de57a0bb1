// Upstream sockets without net.Socket: the proxy's kernel TCP sockets, driven in batches.
//
// Node's net.Socket costs a short connection more than the connection's own work: a stream
// object with two states and a dozen listeners, libuv's connect dance (epoll ADD, SO_ERROR, an ADD
// that fails with EEXIST and a MOD), and one callback into JavaScript per readiness event. Here
// every upstream socket sits in one private epoll set, registered once, edge-triggered, for input,
// output and the peer's FIN; the event loop polls that set's fd (a uv_poll_t), and each time it is
// readable the ready sockets are handed to JavaScript in one call, as the TUN device hands over
// packets. The fd operations (connect, read, writev, shutdown, close) are plain functions that
// return a count or -errno: no exceptions on the paths where EAGAIN is routine.
//
// Edge-triggered means an event is reported once per change: the JavaScript side reads until a
// short read, EAGAIN or EOF, and remembers a socket it stopped reading early (src/proxy/upstream.ts).
// A socket's epoll data carries its slot and a generation, so an event already fetched for a
// socket closed in the same batch is recognised as stale.

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>

#include "../addon.h"
#include "../common/napi-util.h"

namespace synfin {
namespace {

constexpr int kMaxEvents = 256;
// Rounds of epoll_wait per readable event before yielding to the rest of the loop (fairness).
constexpr int kMaxRoundsPerPoll = 4;
constexpr int kMaxIov = 64;

class UpstreamPoller;
int Register(int epfd, int fd, int32_t slot, int32_t generation, uint32_t* out);
int Connect(int epfd, int32_t slot, int32_t generation, int32_t family, const uint32_t* words, int32_t port,
            int32_t bindFamily, const uint32_t* bindWords, uint32_t* out, int32_t fd, bool registerNow, bool recheck);

// The io array (upstreamBindIo), given once per environment: a connect's destination and bind
// address and its results pass through it, so upstreamConnectIo and upstreamRegisterIo take a few
// integers. Twelve arguments with two typed arrays, read back on every call,
// cost ~0.3 us of user time per call more (each typed array is ~6 N-API calls, and past six
// arguments node-addon-api allocates the argument list). The functions carry the environment's
// UpstreamIo as their data (napi_create_function's data: no lookup).
constexpr size_t kIoFamily = 0;
constexpr size_t kIoWords = 1;  // four
constexpr size_t kIoPort = 5;
constexpr size_t kIoBindFamily = 6;
constexpr size_t kIoBindWords = 7;  // four
constexpr size_t kIoOut = 11;       // seven: the connect's and register's results
constexpr size_t kIoLength = 18;
constexpr int32_t kConnectRegisterNow = 1;
constexpr int32_t kConnectRecheck = 2;

struct UpstreamIo {
  uint32_t* io = nullptr;
  Napi::ObjectReference ref;
  // upstreamBindReadBuffer: the buffer upstreamReadBound reads into (the set's shared read buffer).
  uint8_t* readBuf = nullptr;
  size_t readLen = 0;
  Napi::ObjectReference readRef;
};

// An int32 result as a small integer (napi_create_int32): no double to box or test for integrality,
// as napi_create_double (Napi::Number::New) does on every call of the data path.
Napi::Value Int(Napi::Env env, int64_t v) {
  napi_value r;
  napi_create_int32(env, static_cast<int32_t>(v), &r);
  return Napi::Value(env, r);
}

// An int32 argument in one N-API call (napi_number_expected when it is not a number).
bool FastInt(const Napi::CallbackInfo& info, size_t i, int32_t* out) {
  if (i < info.Length() && napi_get_value_int32(info.Env(), info[i], out) == napi_ok) return true;
  Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number").ThrowAsJavaScriptException();
  return false;
}
using UpstreamPollBox = LoopPoll<UpstreamPoller>;

// Fills a sockaddr from a family (4 or 6), four address words (big-endian numbers, IPv4 in word 3)
// and a port. Returns its length.
socklen_t FillSockaddr(struct sockaddr_storage* ss, int family, const uint32_t* words, uint32_t port) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    struct sockaddr_in* sin = reinterpret_cast<struct sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sin->sin_addr.s_addr = htonl(words[3]);
    return sizeof *sin;
  }
  struct sockaddr_in6* sin6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(static_cast<uint16_t>(port));
  for (int i = 0; i < 4; i++) {
    uint32_t w = htonl(words[i]);
    memcpy(sin6->sin6_addr.s6_addr + 4 * i, &w, 4);
  }
  return sizeof *sin6;
}

class UpstreamPoller : public Napi::ObjectWrap<UpstreamPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UpstreamPoller",
                       {
                           InstanceAccessor<&UpstreamPoller::GetEpfd>("epfd"),
                           InstanceMethod<&UpstreamPoller::SetRef>("ref"),
                           InstanceMethod<&UpstreamPoller::SetUnref>("unref"),
                           InstanceMethod<&UpstreamPoller::Close>("close"),
                           StaticValue("MAX_EVENTS", Napi::Number::New(env, kMaxEvents)),
                       });
  }

  // new UpstreamPoller(events: Int32Array (3 × MAX_EVENTS), onEvents: (count: number) => void)
  // events receives [slot, generation, epoll event mask] per ready socket.
  explicit UpstreamPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UpstreamPoller>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    int32_t* events;
    size_t eventsLen;
    if (!GetTypedArray<int32_t>(info, 0, napi_int32_array, "events", &events, &eventsLen)) return;
    if (eventsLen < 3 * static_cast<size_t>(kMaxEvents)) {
      Napi::RangeError::New(env, "events must hold 3 × MAX_EVENTS numbers").ThrowAsJavaScriptException();
      return;
    }
    if (!info[1].IsFunction()) {
      Napi::TypeError::New(env, "onEvents must be a function").ThrowAsJavaScriptException();
      return;
    }
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
      SystemError(env, errno, "epoll_create1", "").ThrowAsJavaScriptException();
      return;
    }
    int rc = 0;
    UpstreamPollBox* box = UpstreamPollBox::Open(env, epfd, this, &rc);
    if (box != nullptr) {
      rc = uv_poll_start(&box->poll, UV_READABLE, &UpstreamPoller::OnPoll);
      if (rc != 0) box->Close();
    }
    if (box == nullptr || rc != 0) {
      close(epfd);
      if (rc == 0) Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      else SystemError(env, -rc, "uv_poll_start", "").ThrowAsJavaScriptException();
      return;
    }
    box_ = box;
    epfd_ = epfd;
    events_ = events;
    eventsRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    onEvents_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "synfin:upstream");
    // An active poll keeps the wrapper alive (and, until unref(), the event loop).
    Ref();
    selfRef_ = true;
  }

  ~UpstreamPoller() override { Release(); }

 private:
  Napi::Value GetEpfd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), epfd_); }

  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    if (box_ != nullptr) box_->SetRef(true);
    return info.Env().Undefined();
  }

  Napi::Value SetUnref(const Napi::CallbackInfo& info) {
    if (box_ != nullptr) box_->SetRef(false);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    UpstreamPoller* self = static_cast<UpstreamPoller*>(handle->data);
    if (self == nullptr || status < 0) return;
    Napi::HandleScope scope(self->env_);
    struct epoll_event evs[kMaxEvents];
    for (int round = 0; round < kMaxRoundsPerPoll && self->epfd_ >= 0; round++) {
      int n = epoll_wait(self->epfd_, evs, kMaxEvents, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      int32_t* out = self->events_;
      for (int i = 0; i < n; i++) {
        out[3 * i] = static_cast<int32_t>(evs[i].data.u64 & 0xffffffffu);
        out[3 * i + 1] = static_cast<int32_t>(evs[i].data.u64 >> 32);
        out[3 * i + 2] = static_cast<int32_t>(evs[i].events);
      }
      napi_value count = Int(self->env_, n);
      if (!self->Call(self->onEvents_.Value(), 1, &count)) return;
      if (n < kMaxEvents) return;
    }
  }

  // CallFromLoop, keeping the wrapper alive across the call even if the callback closes the poller.
  bool Call(napi_value fn, size_t argc, const napi_value* argv) {
    Ref();
    bool ok = CallFromLoop(env_, *asyncContext_, Value(), fn, argc, argv);
    Unref();
    return ok;
  }

  // Stops polling, then closes the fd (libuv needs it open while it is polled).
  void CloseDescriptor() {
    ClosePoll();
    if (epfd_ >= 0) {
      close(epfd_);
      epfd_ = -1;
    }
  }

  void ClosePoll() {
    if (box_ == nullptr) return;
    box_->Close();
    box_ = nullptr;
  }

  // Stops polling and closes the epoll fd (the sockets in it stay open: they are the caller's).
  void Release() {
    CloseDescriptor();
    events_ = nullptr;
    eventsRef_.Reset();
    onEvents_.Reset();
    if (selfRef_) {
      selfRef_ = false;
      Unref();
    }
  }

  friend struct LoopPoll<UpstreamPoller>;

  // LoopPoll::OnTeardown: the environment is going away with the poller still open.
  void OnEnvTeardown() {
    CloseDescriptor();
    selfRef_ = false;
  }

  napi_env env_;
  int epfd_ = -1;
  UpstreamPollBox* box_ = nullptr;
  bool selfRef_ = false;
  int32_t* events_ = nullptr;
  Napi::ObjectReference eventsRef_;
  Napi::FunctionReference onEvents_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

bool IntArg(const Napi::CallbackInfo& info, size_t i, int32_t* out) {
  if (!info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

// A non-blocking TCP socket, or -errno. TCP_NODELAY comes with its second write (UpstreamWrite or
// UpstreamWritev, asked by src/proxy/upstream.ts): a socket written to once (a Connection: close
// request) or never (a server-first exchange: the app only reads) is spared the setsockopt, and
// Nagle holds none of the first write's segments back (RFC 1122 4.2.3.4 holds a segment only while
// data sent before it is unacknowledged; Linux, Minshall's variant, only behind a small one).
int MakeSocket(int family) {
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  return fd;
}

// Adds fd to the epoll set under slot and generation (edge-triggered: in, out, peer FIN) and reads
// its local end into out[1..6] (zeros if unknown). 0, or the errno of a failed epoll_ctl.
int Register(int epfd, int fd, int32_t slot, int32_t generation, uint32_t* out) {
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (static_cast<uint64_t>(static_cast<uint32_t>(generation)) << 32) | static_cast<uint32_t>(slot);
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return errno;
  struct sockaddr_storage ss;
  socklen_t ll = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &ll) != 0 || !ReadSockaddr(ss, out + 1)) {
    for (int i = 1; i < 7; i++) out[i] = 0;
  }
  return 0;
}

// upstreamConnectIo's work (and the poller's connect): the fd, or -errno.
int Connect(int epfd, int32_t slot, int32_t generation, int32_t family, const uint32_t* words, int32_t port,
            int32_t bindFamily, const uint32_t* bindWords, uint32_t* out, int32_t fd, bool registerNow, bool recheck) {
  if (fd < 0) {
    fd = MakeSocket(family);
    if (fd < 0) return fd;
  }
  struct sockaddr_storage ss;
  if (bindFamily != 0) {
    socklen_t bl = FillSockaddr(&ss, bindFamily, bindWords, 0);
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), bl) != 0) {
      int err = errno;
      close(fd);
      return -err;
    }
  }
  socklen_t sl = FillSockaddr(&ss, family, words, static_cast<uint32_t>(port));
  int rc = connect(fd, reinterpret_cast<struct sockaddr*>(&ss), sl);
  int established = 0;
  if (rc == 0) {
    established = 1;
  } else if (errno == EINPROGRESS) {
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_ESTABLISHED) established = 1;
  } else {
    int err = errno;
    close(fd);
    return -err;
  }
  out[0] = static_cast<uint32_t>(established);
  if (established && !registerNow) {
    out[0] = 2;
    for (int i = 1; i < 7; i++) out[i] = 0;
    return fd;
  }
  int err = Register(epfd, fd, slot, generation, out);
  if (err != 0) {
    close(fd);
    return -err;
  }
  if (!established && recheck) {
    // A destination a veth away whose SYN-ACK was handled on another CPU (not inside connect(2))
    // has often answered by now: one more look spares the app's SYN-ACK a turn of the event loop.
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_ESTABLISHED) out[0] = 1;
  }
  return fd;
}

// upstreamBindIo(io: Uint32Array(IO_LENGTH)): the array upstreamConnectIo and upstreamRegisterIo
// read and write from now on (kIo*). The pointer stays valid: the lookup gave the array an
// ArrayBuffer backing store (V8 moves an array's bytes only while they are on its heap), the
// reference keeps it alive, and nothing detaches it.
Napi::Value UpstreamBindIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UpstreamIo* data = static_cast<UpstreamIo*>(info.Data());
  uint32_t* io;
  size_t len;
  if (!GetTypedArray<uint32_t>(info, 0, napi_uint32_array, "io", &io, &len)) return env.Undefined();
  if (len < kIoLength) {
    Napi::RangeError::New(env, "io must hold IO_LENGTH numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  data->io = io;
  data->ref = Napi::Persistent(info[0].As<Napi::Object>());
  return env.Undefined();
}

bool CheckIo(Napi::Env env, const UpstreamIo* data) {
  if (data->io != nullptr) return true;
  Napi::Error::New(env, "upstreamBindIo first").ThrowAsJavaScriptException();
  return false;
}

// upstreamConnectIo(epfd, slot, generation, fd, flags): the destination (family, four words, port)
// and the bind address (bind family, 0 for none, and four words) read from the bound io array.
// A non-blocking TCP socket (TCP_NODELAY with its second write; `fd` when one was made ahead by
// upstreamSocket, else a new one, for -1), bound if asked, connecting to the address, in the
// epoll set (edge-triggered: in, out, peer FIN) under slot and generation. Returns its fd, or
// -errno when the connect failed at once (nothing is left open then, `fd` included).
// io[kIoOut..] receives [1 if already ESTABLISHED else 0, the local family, four words, port]: a
// destination a veth away has often completed the handshake inside connect(2) (the kernel ran the
// peer's side in the same system call), and the local end is what the kernel-socket table watches.
// flags: kConnectRecheck, a socket still connecting after its registration has TCP_INFO read once
// more (out[0] is 1 if it is ESTABLISHED by then). Without kConnectRegisterNow, a socket
// ESTABLISHED within connect(2) is neither added to the epoll set nor asked its local end (out[0]
// is 2 then, out[1..6] 0): the caller does both with upstreamRegisterIo once the app's SYN-ACK is
// out, so those two system calls are not on the app's connect() path. A socket still connecting
// is registered at once either way: its completion is an epoll event, and its local end is what
// the loop guard matches the device's next SYNs against.
Napi::Value UpstreamConnectIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UpstreamIo* data = static_cast<const UpstreamIo*>(info.Data());
  int32_t epfd, slot, generation, fd, flags;
  if (!FastInt(info, 0, &epfd) || !FastInt(info, 1, &slot) || !FastInt(info, 2, &generation) || !FastInt(info, 3, &fd) ||
      !FastInt(info, 4, &flags) || !CheckIo(env, data))
    return env.Undefined();
  uint32_t* io = data->io;
  int32_t family = static_cast<int32_t>(io[kIoFamily]);
  int32_t bindFamily = static_cast<int32_t>(io[kIoBindFamily]);
  if ((family != 4 && family != 6) || (bindFamily != 0 && bindFamily != 4 && bindFamily != 6)) {
    Napi::RangeError::New(env, "family must be 4 or 6, bind family 0, 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Int(env, Connect(epfd, slot, generation, family, io + kIoWords, static_cast<int32_t>(io[kIoPort]), bindFamily,
                          io + kIoBindWords, io + kIoOut, fd, (flags & kConnectRegisterNow) != 0,
                          (flags & kConnectRecheck) != 0));
}

// upstreamRegisterIo(epfd, fd, slot, generation): 0 or -errno. The second half of a connect made
// without kConnectRegisterNow: the socket joins the epoll set (EPOLL_CTL_ADD reports what is
// already pending, so nothing that happened meanwhile is lost) and io[kIoOut + 1..] receive its
// local end. On an error the socket is left open: it is the caller's to close.
Napi::Value UpstreamRegisterIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UpstreamIo* data = static_cast<const UpstreamIo*>(info.Data());
  int32_t epfd, fd, slot, generation;
  if (!FastInt(info, 0, &epfd) || !FastInt(info, 1, &fd) || !FastInt(info, 2, &slot) || !FastInt(info, 3, &generation) ||
      !CheckIo(env, data))
    return env.Undefined();
  return Int(env, -Register(epfd, fd, slot, generation, data->io + kIoOut));
}

// upstreamSocket(family): a new non-blocking TCP socket (TCP_NODELAY with its second write), not yet connected, for a
// later upstreamConnectIo (the set keeps a few made ahead, off the SYN's path). Its fd, or -errno.
Napi::Value UpstreamMakeSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t family;
  if (!IntArg(info, 0, &family)) return env.Undefined();
  if (family != 4 && family != 6) {
    Napi::RangeError::New(env, "family must be 4 or 6").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Int(env, MakeSocket(family));
}

// upstreamSocketError(fd): the pending error of a socket (SO_ERROR, which clears it), 0 if none.
Napi::Value UpstreamSocketError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!IntArg(info, 0, &fd)) return env.Undefined();
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return Int(env, err);
}

// upstreamRead(fd, buf: Buffer, offset, length): bytes read, 0 at EOF, or -errno (-EAGAIN: none now).
Napi::Value UpstreamRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd, offset, length;
  uint8_t* data;
  size_t len;
  if (!FastInt(info, 0, &fd) || !GetBuffer(info, 1, "buf", &data, &len) || !FastInt(info, 2, &offset) ||
      !FastInt(info, 3, &length))
    return env.Undefined();
  if (offset < 0 || length < 0 || static_cast<size_t>(offset) + static_cast<size_t>(length) > len) {
    Napi::RangeError::New(env, "offset and length must lie within buf").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ssize_t r;
  do r = read(fd, data + offset, static_cast<size_t>(length));
  while (r < 0 && errno == EINTR);
  return Int(env, r < 0 ? -errno : r);
}

// upstreamBindReadBuffer(buf: Buffer): the buffer upstreamReadBound reads into from now on. The
// pointer stays valid as upstreamBindIo's does (an ArrayBuffer's backing store, kept alive here).
Napi::Value UpstreamBindReadBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UpstreamIo* data = static_cast<UpstreamIo*>(info.Data());
  uint8_t* buf;
  size_t len;
  if (!GetBuffer(info, 0, "buf", &buf, &len)) return env.Undefined();
  data->readBuf = buf;
  data->readLen = len;
  data->readRef = Napi::Persistent(info[0].As<Napi::Object>());
  return env.Undefined();
}

// upstreamReadBound(fd): upstreamRead into the whole bound buffer. The small reads of a
// request/response connection all go there (src/proxy/upstream.ts copies them out), and this way
// a read passes one integer: no Buffer to check and unwrap per call.
Napi::Value UpstreamReadBound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const UpstreamIo* data = static_cast<const UpstreamIo*>(info.Data());
  int32_t fd;
  if (!FastInt(info, 0, &fd)) return env.Undefined();
  if (data->readBuf == nullptr) {
    Napi::Error::New(env, "upstreamBindReadBuffer first").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ssize_t r;
  do r = read(fd, data->readBuf, data->readLen);
  while (r < 0 && errno == EINTR);
  return Int(env, r < 0 ? -errno : r);
}

// noDelay (the socket's second write): no Nagle from now on, the app's segments go upstream as
// they come (the app did its own batching). Set before the data, so no write that could wait
// behind an unacknowledged segment sees Nagle on; the first write has nothing to wait behind
// (RFC 1122 4.2.3.4).
void SetNoDelayIfAsked(const Napi::CallbackInfo& info, size_t i, int fd) {
  bool asked = false;
  // One N-API call: napi_boolean_expected (false) for anything but a boolean.
  if (info.Length() > i && napi_get_value_bool(info.Env(), info[i], &asked) == napi_ok && asked) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

// upstreamWritev(fd, chunks: Buffer[], first, count, noDelay = false): bytes written (maybe fewer than given), or
// -errno (-EAGAIN: the socket buffer is full). MSG_NOSIGNAL semantics come from Node ignoring
// SIGPIPE; a closed peer gives -EPIPE.
Napi::Value UpstreamWritev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd, first, count;
  if (!FastInt(info, 0, &fd)) return env.Undefined();
  if (!info[1].IsArray()) {
    Napi::TypeError::New(env, "chunks must be an array of Buffers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!FastInt(info, 2, &first) || !FastInt(info, 3, &count)) return env.Undefined();
  Napi::Array chunks = info[1].As<Napi::Array>();
  uint32_t total = chunks.Length();
  if (first < 0 || count < 0 || static_cast<uint32_t>(first) + static_cast<uint32_t>(count) > total) {
    Napi::RangeError::New(env, "first and count must lie within chunks").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (count > kMaxIov) count = kMaxIov;
  SetNoDelayIfAsked(info, 4, fd);
  struct iovec iov[kMaxIov];
  for (int32_t i = 0; i < count; i++) {
    Napi::Value v = chunks.Get(static_cast<uint32_t>(first + i));
    if (!v.IsBuffer()) {
      Napi::TypeError::New(env, "chunks must be an array of Buffers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
    iov[i].iov_base = b.Data();
    iov[i].iov_len = b.Length();
  }
  ssize_t r;
  do r = writev(fd, iov, count);
  while (r < 0 && errno == EINTR);
  return Int(env, r < 0 ? -errno : r);
}

// upstreamNoDelay(fd): the socket's TCP_NODELAY (1 or 0), or -errno. For tests and diagnostics.
Napi::Value UpstreamNoDelay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!IntArg(info, 0, &fd)) return env.Undefined();
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, v != 0 ? 1 : 0);
}

// upstreamWrite(fd, buf, noDelay = false): write(2) of one Buffer, as upstreamWritev of one chunk
// returns (noDelay as there). The common case (one small request per flush) without the array: one
// N-API element read, one type check and the iovec copy-in fewer per request than a writev of one.
Napi::Value UpstreamWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  uint8_t* data;
  size_t len;
  if (!FastInt(info, 0, &fd) || !GetBuffer(info, 1, "buf", &data, &len)) return env.Undefined();
  SetNoDelayIfAsked(info, 2, fd);
  ssize_t r;
  do r = write(fd, data, len);
  while (r < 0 && errno == EINTR);
  return Int(env, r < 0 ? -errno : r);
}

// upstreamShutdown(fd): our FIN (SHUT_WR). 0 or -errno.
Napi::Value UpstreamShutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!FastInt(info, 0, &fd)) return env.Undefined();
  return Int(env, shutdown(fd, SHUT_WR) == 0 ? 0 : -errno);
}

// upstreamClose(fd, reset: boolean): close the socket (it leaves the epoll set with its last fd);
// with reset, SO_LINGER 0 first, so the kernel sends a RST instead of a FIN (RFC 9293 §3.10.7.1's
// ABORT). 0 or -errno.
Napi::Value UpstreamClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!FastInt(info, 0, &fd)) return env.Undefined();
  if (info[1].ToBoolean().Value()) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  return Int(env, close(fd) == 0 ? 0 : -errno);
}

}  // namespace

void InitUpstream(Napi::Env env, Napi::Object exports) {
  exports.Set("UpstreamPoller", UpstreamPoller::Define(env));
  // One io array per environment (a worker's is its own), freed when the environment is torn
  // down: the functions below hold it, and one of them may outlive the exports object.
  UpstreamIo* io = new UpstreamIo();
  napi_add_env_cleanup_hook(env, [](void* d) { delete static_cast<UpstreamIo*>(d); }, io);
  exports.Set("upstreamBindIo", Napi::Function::New(env, UpstreamBindIo, "upstreamBindIo", io));
  exports.Set("upstreamConnectIo", Napi::Function::New(env, UpstreamConnectIo, "upstreamConnectIo", io));
  exports.Set("upstreamRegisterIo", Napi::Function::New(env, UpstreamRegisterIo, "upstreamRegisterIo", io));
  exports.Set("UPSTREAM_IO_LENGTH", Napi::Number::New(env, static_cast<double>(kIoLength)));
  exports.Set("upstreamSocket", Napi::Function::New(env, UpstreamMakeSocket, "upstreamSocket"));
  exports.Set("upstreamSocketError", Napi::Function::New(env, UpstreamSocketError, "upstreamSocketError"));
  exports.Set("upstreamRead", Napi::Function::New(env, UpstreamRead, "upstreamRead"));
  exports.Set("upstreamBindReadBuffer", Napi::Function::New(env, UpstreamBindReadBuffer, "upstreamBindReadBuffer", io));
  exports.Set("upstreamReadBound", Napi::Function::New(env, UpstreamReadBound, "upstreamReadBound", io));
  exports.Set("upstreamWritev", Napi::Function::New(env, UpstreamWritev, "upstreamWritev"));
  exports.Set("upstreamWrite", Napi::Function::New(env, UpstreamWrite, "upstreamWrite"));
  exports.Set("upstreamShutdown", Napi::Function::New(env, UpstreamShutdown, "upstreamShutdown"));
  exports.Set("upstreamNoDelay", Napi::Function::New(env, UpstreamNoDelay, "upstreamNoDelay"));
  exports.Set("upstreamClose", Napi::Function::New(env, UpstreamClose, "upstreamClose"));
}

}  // namespace synfin
