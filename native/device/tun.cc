// synfin's TUN device: open a Linux TUN device, read packets in batches driven by the event loop
// (uv_poll_t on the fd, never the thread pool), and write packets without blocking. Everything above the fd (ring management, vnet header
// parsing, device configuration) lives in TypeScript (src/tun/); this file stays small.
//
// Memory model: JavaScript owns every buffer. startReading() is handed one batch Buffer of
// `maxPackets` slots of `slotSize` bytes and an Int32Array of lengths; a readable fd is drained
// into those slots and the JS callback is called once per batch with the packet count. The JS side
// processes the batch synchronously inside the callback, so the slots are reused by the next batch.
// Nothing is allocated per packet or per batch.
//
// vnet header: with IFF_VNET_HDR every packet read or written starts with a 10-byte
// struct virtio_net_hdr (include/uapi/linux/virtio_net.h). We never call TUNSETVNETLE/BE, so the
// kernel uses the legacy layout whose 16-bit fields are in the host's byte order
// (tun_is_little_endian() is true on little-endian hosts). synfin runs on x86_64, so the fields are
// little-endian and the TypeScript side reads them with readUInt16LE.

#include <napi.h>
#include <uv.h>

#include <vector>

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "../addon.h"
#include "../common/napi-util.h"

namespace {

using namespace synfin;

constexpr int kVnetHdrLen = 10;  // sizeof(struct virtio_net_hdr), no num_buffers field
// Batches read per readable event before yielding to the rest of the event loop (fairness).
// The fd is polled level-triggered, so packets left in the queue fire the poll again next turn.
constexpr int kMaxBatchesPerPoll = 4;
// Payload views per packet in writeBatch (see there): a 64 KB segment spans a few send-buffer chunks.
constexpr size_t kMaxViews = 8;

class TunDevice;
using PollBox = LoopPoll<TunDevice>;

class TunDevice : public Napi::ObjectWrap<TunDevice> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TunDevice",
                       {
                           InstanceAccessor<&TunDevice::GetFd>("fd"),
                           InstanceAccessor<&TunDevice::GetName>("name"),
                           InstanceAccessor<&TunDevice::GetVnetHdr>("vnetHdr"),
                           InstanceAccessor<&TunDevice::GetMultiQueue>("multiQueue"),
                           InstanceMethod<&TunDevice::StartReading>("startReading"),
                           InstanceMethod<&TunDevice::StopReading>("stopReading"),
                           InstanceMethod<&TunDevice::WriteBatch>("writeBatch"),
                           InstanceMethod<&TunDevice::BindTx>("bindTx"),
                           InstanceMethod<&TunDevice::WriteBound>("writeBound"),
                           InstanceMethod<&TunDevice::OnWritable>("onWritable"),
                           InstanceMethod<&TunDevice::SetRef>("ref"),
                           InstanceMethod<&TunDevice::SetUnref>("unref"),
                           InstanceMethod<&TunDevice::Close>("close"),
                       });
  }

  // new TunDevice(name: string, opts: { vnetHdr: boolean, multiQueue?: boolean, fd?: number, dup?: boolean }):
  // with fd, adopts that open TUN fd (see AdoptFd; with dup, a duplicate of it) instead of opening /dev/net/tun.
  explicit TunDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunDevice>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) {
      Napi::TypeError::New(env, "name must be a string").ThrowAsJavaScriptException();
      return;
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    bool vnet = false;
    bool multiQueue = false;
    if (info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      vnet = o.Get("vnetHdr").ToBoolean().Value();
      multiQueue = o.Get("multiQueue").ToBoolean().Value();
    }

    // The kernel copies at most IFNAMSIZ-1 bytes of the name: refuse rather than truncate.
    if (name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos) {
      Napi::Error e = Napi::Error::New(
          env, "device name \"" + name + "\" is longer than " + std::to_string(IFNAMSIZ - 1) + " bytes");
      e.Set("code", Napi::String::New(env, "ENAMETOOLONG"));
      e.Set("errno", Napi::Number::New(env, -ENAMETOOLONG));
      e.Set("syscall", Napi::String::New(env, "TUNSETIFF"));
      e.Set("device", Napi::String::New(env, name));
      e.ThrowAsJavaScriptException();
      return;
    }

    int inherited = -1;
    if (info[1].IsObject()) {
      Napi::Value f = info[1].As<Napi::Object>().Get("fd");
      if (f.IsNumber()) inherited = f.As<Napi::Number>().Int32Value();
    }
    // dup: adopt a duplicate of the fd, not the fd itself. A worker thread (src/workers/) adopts
    // its queue this way: closing its duplicate, as the worker's shutdown or its teardown does,
    // leaves the queue attached (the open file is released at its last close) and the main
    // thread's fd open for the worker that replaces it.
    bool dupFd = info[1].IsObject() && info[1].As<Napi::Object>().Get("dup").ToBoolean().Value();
    if (inherited >= 0 && dupFd) {
      inherited = fcntl(inherited, F_DUPFD_CLOEXEC, 3);
      if (inherited < 0) {
        SystemError(env, errno, "fcntl(F_DUPFD_CLOEXEC)", name).ThrowAsJavaScriptException();
        return;
      }
    }
    int fd = inherited >= 0 ? AdoptFd(env, inherited, name, &vnet, &multiQueue) : OpenFd(env, name, vnet, multiQueue);
    if (fd < 0) {
      if (inherited >= 0 && dupFd) close(inherited);
      return;
    }

    int rc = 0;
    PollBox* box = PollBox::Open(env, fd, this, &rc);
    if (box == nullptr) {
      close(fd);
      if (rc == 0) Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      else SystemError(env, -rc, "uv_poll_init", name_).ThrowAsJavaScriptException();
      return;
    }
    box_ = box;
    fd_ = fd;
    vnet_ = vnet;
    multiQueue_ = multiQueue;
  }

  // Opens /dev/net/tun and attaches it to (or creates) device `name`; -1 with an exception pending.
  //
  // multiQueue (IFF_MULTI_QUEUE): the fd becomes one queue of the device, and a TUNSETIFF with the
  // same name and IFF_MULTI_QUEUE from another fd attaches another queue (drivers/net/tun.c
  // tun_set_iff/tun_attach; at most MAX_TAP_QUEUES = 256). The device's flags, vnet header size
  // and offloads are the device's, set by the first queue: a later queue's TUNSETIFF attaches
  // without re-initialising, and its TUNSETVNETHDRSZ/TUNSETOFFLOAD below set the same values again.
  // The kernel refuses (EINVAL) a multi-queue request on a single-queue device and the reverse.
  // The name is looked up in the network namespace of the process that opened /dev/net/tun, so
  // every queue must be attached before the device is moved to another namespace.
  int OpenFd(Napi::Env env, const std::string& name, bool vnet, bool multiQueue) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      SystemError(env, errno, "open", "/dev/net/tun").ThrowAsJavaScriptException();
      return -1;
    }

    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (multiQueue ? IFF_MULTI_QUEUE : 0);
    memcpy(ifr.ifr_name, name.data(), name.size());
    // Attaches to an existing TUN device of that name (e.g. one made persistent with
    // `ip tuntap add`), or creates it. EBUSY when another fd already holds a single-queue device.
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int err = errno;
      close(fd);
      SystemError(env, err, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return -1;
    }
    name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

    // A queue attached to an existing multi-queue device gets the device's flags, not the ones
    // asked for: a vnet header setting that differs would make every packet misread. Refuse it.
    if (multiQueue) {
      struct ifreq got;
      memset(&got, 0, sizeof got);
      if (ioctl(fd, TUNGETIFF, &got) < 0 || ((got.ifr_flags & IFF_VNET_HDR) != 0) != vnet) {
        close(fd);
        SystemError(env, EINVAL, "TUNSETIFF", name_ + " (its vnet header setting differs)").ThrowAsJavaScriptException();
        return -1;
      }
    }

    if (vnet) {
      int sz = kVnetHdrLen;
      if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
        int err = errno;
        close(fd);
        SystemError(env, err, "TUNSETVNETHDRSZ", name_).ThrowAsJavaScriptException();
        return -1;
      }
      // The kernel may hand us partial checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM) and TCP segments
      // up to 64 KB (GSO), and accepts the same from us.
      unsigned int offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      if (ioctl(fd, TUNSETOFFLOAD, offload) < 0) {
        int err = errno;
        close(fd);
        SystemError(env, err, "TUNSETOFFLOAD", name_).ThrowAsJavaScriptException();
        return -1;
      }
    }
    return fd;
  }

  // Takes over `fd`, already attached to TUN device `name` by the process that exec'ed this one
  // (src/tun/caps.ts): no capability needed. The vnet header size and offloads were set on that
  // open file and stay; the fd gets O_NONBLOCK and FD_CLOEXEC again. -1 with an exception pending.
  int AdoptFd(Napi::Env env, int fd, const std::string& name, bool* vnet, bool* multiQueue) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
      SystemError(env, errno, "TUNGETIFF", name).ThrowAsJavaScriptException();
      return -1;
    }
    std::string got(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    if ((ifr.ifr_flags & IFF_TUN) == 0 || (ifr.ifr_flags & IFF_NO_PI) == 0 || got != name) {
      SystemError(env, EINVAL, "TUNGETIFF", name + " (fd " + std::to_string(fd) + " is " + got + ")")
          .ThrowAsJavaScriptException();
      return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0) {
      SystemError(env, errno, "fcntl", name).ThrowAsJavaScriptException();
      return -1;
    }
    name_ = got;
    *vnet = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
    *multiQueue = (ifr.ifr_flags & IFF_MULTI_QUEUE) != 0;
    return fd;
  }

  ~TunDevice() override { Release(); }

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value GetVnetHdr(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), vnet_); }
  Napi::Value GetMultiQueue(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), multiQueue_); }

  bool CheckOpen(Napi::Env env) {
    if (fd_ >= 0) return true;
    Napi::Error e = Napi::Error::New(env, "TUN device is closed");
    e.Set("code", Napi::String::New(env, "EBADF"));
    e.ThrowAsJavaScriptException();
    return false;
  }

  // startReading(batch: Buffer, lengths: Int32Array, slotSize: number, maxPackets: number,
  //              onBatch: (count: number) => void, onError: (err: Error) => void): void
  Napi::Value StartReading(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    uint8_t* buf;
    size_t bufLen;
    int32_t* lens;
    size_t lensLen;
    uint32_t slotSize, maxPackets;
    if (!GetBuffer(info, 0, "batch", &buf, &bufLen)) return env.Undefined();
    if (!GetTypedArray<int32_t>(info, 1, napi_int32_array, "lengths", &lens, &lensLen)) return env.Undefined();
    if (!GetUint32(info, 2, "slotSize", &slotSize)) return env.Undefined();
    if (!GetUint32(info, 3, "maxPackets", &maxPackets)) return env.Undefined();
    if (!info[4].IsFunction() || !info[5].IsFunction()) {
      Napi::TypeError::New(env, "onBatch and onError must be functions").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (slotSize < static_cast<uint32_t>(kVnetHdrLen) + 1 || maxPackets == 0 ||
        static_cast<uint64_t>(slotSize) * maxPackets > bufLen || lensLen < maxPackets) {
      Napi::RangeError::New(env, "batch buffer or lengths too small for maxPackets slots of slotSize bytes")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    rxBufRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    rxLensRef_ = Napi::Persistent(info[1].As<Napi::Object>());
    rxBuf_ = buf;
    rxLens_ = lens;
    slotSize_ = slotSize;
    maxPackets_ = maxPackets;
    onBatch_ = Napi::Persistent(info[4].As<Napi::Function>());
    onError_ = Napi::Persistent(info[5].As<Napi::Function>());
    if (!asyncContext_) asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "synfin:tun");
    reading_ = true;
    if (!UpdatePoll(env)) reading_ = false;
    return env.Undefined();
  }

  Napi::Value StopReading(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return env.Undefined();
    reading_ = false;
    UpdatePoll(env);
    return env.Undefined();
  }

  // The tx ring a write reads: the slot bytes, their offsets and lengths, the result array, and
  // the optional payload views. With views, a packet's slot holds its headers and up to maxViews
  // slices of other Buffers (the connection's send buffer) follow it in one writev(), so payload
  // bytes are not copied into the slot first: views[slot * maxViews + j] is a Buffer, viewOffsets
  // and viewLengths the slice, viewCounts[slot] how many (0: the slot holds the whole packet).
  struct TxRing {
    uint8_t* buf = nullptr;
    size_t bufLen = 0;
    int32_t* offsets = nullptr;
    int32_t* lengths = nullptr;
    size_t slots = 0;
    int32_t* result = nullptr;
    int32_t* viewOffsets = nullptr;
    int32_t* viewLengths = nullptr;
    int32_t* viewCounts = nullptr;
    size_t maxViews = 0;
  };

  // Reads the ring's arrays from info: buf, offsets and lengths at 0..2, result at `resultAt`, the
  // optional views, viewOffsets, viewLengths and viewCounts from `viewsAt`; false with an
  // exception pending.
  static bool ParseTxRing(const Napi::CallbackInfo& info, size_t resultAt, size_t viewsAt, TxRing* ring, Napi::Array* views) {
    Napi::Env env = info.Env();
    size_t offsetsLen, lengthsLen, resultLen;
    if (!GetBuffer(info, 0, "buf", &ring->buf, &ring->bufLen)) return false;
    if (!GetTypedArray<int32_t>(info, 1, napi_int32_array, "offsets", &ring->offsets, &offsetsLen)) return false;
    if (!GetTypedArray<int32_t>(info, 2, napi_int32_array, "lengths", &ring->lengths, &lengthsLen)) return false;
    if (!GetTypedArray<int32_t>(info, resultAt, napi_int32_array, "result", &ring->result, &resultLen)) return false;
    ring->slots = offsetsLen < lengthsLen ? offsetsLen : lengthsLen;
    if (resultLen < 5) {
      Napi::RangeError::New(env, "writeBatch: result is shorter than 5").ThrowAsJavaScriptException();
      return false;
    }
    if (info.Length() > viewsAt && !info[viewsAt].IsUndefined()) {
      size_t voLen, vlLen, vcLen;
      if (!info[viewsAt].IsArray()) {
        Napi::TypeError::New(env, "views must be an array").ThrowAsJavaScriptException();
        return false;
      }
      *views = info[viewsAt].As<Napi::Array>();
      if (!GetTypedArray<int32_t>(info, viewsAt + 1, napi_int32_array, "viewOffsets", &ring->viewOffsets, &voLen)) return false;
      if (!GetTypedArray<int32_t>(info, viewsAt + 2, napi_int32_array, "viewLengths", &ring->viewLengths, &vlLen)) return false;
      if (!GetTypedArray<int32_t>(info, viewsAt + 3, napi_int32_array, "viewCounts", &ring->viewCounts, &vcLen)) return false;
      size_t slots = ring->slots;
      ring->maxViews = slots == 0 ? 0 : voLen / slots;
      if (vcLen < slots || vlLen < voLen || ring->maxViews == 0 || ring->maxViews > kMaxViews ||
          views->Length() < slots * ring->maxViews) {
        Napi::RangeError::New(env, "writeBatch: view arrays do not match the ring").ThrowAsJavaScriptException();
        return false;
      }
    }
    return true;
  }

  // writeBatch(buf: Buffer, offsets: Int32Array, lengths: Int32Array, start: number, count: number,
  //            result: Int32Array, views?: Buffer[], viewOffsets?: Int32Array,
  //            viewLengths?: Int32Array, viewCounts?: Int32Array): number
  // Writes packets of the ring slots start, start+1, ... (indices modulo the ring length), one
  // write() each (a writev() of the slot and its payload views when it has any). Returns how many packets were consumed: written, or refused by the kernel with a
  // hard error (those are skipped, never retried). Stops early at EAGAIN. result receives
  // [written, refused, errno of the last refused packet, 1 if stopped by EAGAIN else 0,
  //  bytes written].
  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    uint32_t start, count;
    TxRing ring;
    Napi::Array views;
    if (!GetUint32(info, 3, "start", &start) || !GetUint32(info, 4, "count", &count)) return env.Undefined();
    if (!ParseTxRing(info, 5, 6, &ring, &views)) return env.Undefined();
    return WriteRing(env, ring, views, start, count);
  }

  // bindTx(buf, offsets, lengths, result, views?, viewOffsets?, viewLengths?, viewCounts?): the tx
  // ring kept by the device (a reference to each array), for writeBound(start, count). The Tun's
  // ring never changes, and reading ten arguments back into pointers on every flush (eight typed
  // array lookups) cost ~7x the rest of the call (bench/tun-tx-glue.mjs: ~1 us against ~0.15), and
  // a short connection flushes about once (its SYN-ACK's own flush). The pointers stay valid: the
  // lookup gave each typed array an ArrayBuffer backing store (V8 moves an array's bytes only
  // while they are still on its heap), the references keep them alive, and nothing detaches them.
  Napi::Value BindTx(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    TxRing ring;
    Napi::Array views;
    if (!ParseTxRing(info, 3, 4, &ring, &views)) return env.Undefined();
    tx_ = ring;
    txRefs_.clear();
    for (size_t i = 0; i < 8 && i < info.Length(); i++) {
      if (info[i].IsObject()) txRefs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
    txViewsRef_ = ring.viewCounts != nullptr ? Napi::Persistent(static_cast<Napi::Object>(views)) : Napi::ObjectReference();
    txBound_ = true;
    return env.Undefined();
  }

  // writeBound(start, count): writeBatch over the ring given to bindTx.
  Napi::Value WriteBound(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (!txBound_) {
      Napi::Error::New(env, "writeBound before bindTx").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint32_t start, count;
    if (!GetUint32(info, 0, "start", &start)) return env.Undefined();
    if (!GetUint32(info, 1, "count", &count)) return env.Undefined();
    Napi::Array views;
    if (tx_.viewCounts != nullptr) views = txViewsRef_.Value().As<Napi::Array>();
    return WriteRing(env, tx_, views, start, count);
  }

  // writeBatch's work over a ring read from the arguments or bound by bindTx.
  Napi::Value WriteRing(Napi::Env env, const TxRing& ring, const Napi::Array& views, uint32_t start, uint32_t count) {
    uint8_t* buf = ring.buf;
    size_t bufLen = ring.bufLen;
    int32_t* offsets = ring.offsets;
    int32_t* lengths = ring.lengths;
    int32_t* result = ring.result;
    int32_t* viewOffsets = ring.viewOffsets;
    int32_t* viewLengths = ring.viewLengths;
    int32_t* viewCounts = ring.viewCounts;
    size_t slots = ring.slots;
    size_t maxViews = ring.maxViews;
    if ((count > 0 && slots == 0) || count > slots) {
      Napi::RangeError::New(env, "writeBatch: count exceeds the ring").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int32_t written = 0, refused = 0, lastErr = 0, blocked = 0;
    int64_t bytes = 0;
    uint32_t i = 0;
    for (; i < count; i++) {
      size_t slot = (static_cast<size_t>(start) + i) % slots;
      int64_t off = offsets[slot], len = lengths[slot];
      if (off < 0 || len <= 0 || static_cast<uint64_t>(off + len) > bufLen) {
        refused++;
        lastErr = EINVAL;
        continue;
      }
      int nv = viewCounts == nullptr ? 0 : viewCounts[slot];
      struct iovec iov[1 + kMaxViews];
      iov[0].iov_base = buf + off;
      iov[0].iov_len = static_cast<size_t>(len);
      bool viewsOk = nv >= 0 && static_cast<size_t>(nv) <= maxViews;
      for (int j = 0; viewsOk && j < nv; j++) {
        size_t v = slot * maxViews + j;
        Napi::Value b = views.Get(static_cast<uint32_t>(v));
        int64_t vo = viewOffsets[v], vl = viewLengths[v];
        if (!b.IsBuffer() || vo < 0 || vl <= 0) {
          viewsOk = false;
          break;
        }
        Napi::Buffer<uint8_t> vb = b.As<Napi::Buffer<uint8_t>>();
        if (static_cast<uint64_t>(vo + vl) > vb.Length()) {
          viewsOk = false;
          break;
        }
        iov[1 + j].iov_base = vb.Data() + vo;
        iov[1 + j].iov_len = static_cast<size_t>(vl);
      }
      if (!viewsOk) {
        refused++;
        lastErr = EINVAL;
        continue;
      }
      ssize_t n;
      do {
        n = nv == 0 ? write(fd_, buf + off, static_cast<size_t>(len)) : writev(fd_, iov, 1 + nv);
      } while (n < 0 && errno == EINTR);
      if (n >= 0) {
        written++;
        bytes += n;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        blocked = 1;
        break;
      }
      // EINVAL (malformed packet or vnet header), EIO (device down), EFAULT...: the packet is dropped.
      refused++;
      lastErr = errno;
    }
    result[0] = written;
    result[1] = refused;
    result[2] = lastErr;
    result[3] = blocked;
    result[4] = static_cast<int32_t>(bytes);  // at most slots * 64 KB per call
    return Napi::Number::New(env, i);
  }

  // onWritable(cb: () => void): void — one-shot: cb is called once the fd is writable.
  Napi::Value OnWritable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(env, "callback must be a function").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    onWritable_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (!asyncContext_) asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "synfin:tun");
    if (!UpdatePoll(env)) onWritable_.Reset();
    return env.Undefined();
  }

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

  // Starts, changes or stops the poll to match what is wanted. While the poll is active the
  // wrapper holds a strong reference to itself, like any active handle: a device that is reading
  // is not collected. Throws (and returns false) if libuv refuses.
  bool UpdatePoll(Napi::Env env) {
    if (box_ == nullptr || fd_ < 0) return false;
    int want = (reading_ ? UV_READABLE : 0) | (onWritable_.IsEmpty() ? 0 : UV_WRITABLE);
    if (want == pollEvents_) return true;
    if (want == 0) {
      uv_poll_stop(&box_->poll);
    } else {
      int rc = uv_poll_start(&box_->poll, want, &TunDevice::OnPoll);
      if (rc != 0) {
        SystemError(env, -rc, "uv_poll_start", name_).ThrowAsJavaScriptException();
        return false;
      }
    }
    pollEvents_ = want;
    if (want != 0 && !selfRef_) {
      Ref();
      selfRef_ = true;
    } else if (want == 0 && selfRef_) {
      selfRef_ = false;
      Unref();
    }
    return true;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    TunDevice* self = static_cast<TunDevice*>(handle->data);
    if (self == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    if (status < 0) {
      // libuv has already stopped the handle (EPOLLERR: e.g. the interface was deleted). Polling
      // again would fail again at once: give up reading and writable notifications alike.
      self->onWritable_.Reset();
      self->ReadFailed(-status, "poll");
      return;
    }
    if ((events & UV_READABLE) && self->reading_ && !self->DrainRx()) return;
    if ((events & UV_WRITABLE) && self->fd_ >= 0 && !self->onWritable_.IsEmpty()) {
      Napi::Function cb = self->onWritable_.Value();
      self->onWritable_.Reset();
      self->UpdatePoll(env);
      self->Call(cb, 0, nullptr);
    }
  }

  // Reads until EAGAIN, delivering full batches as they fill, at most kMaxBatchesPerPoll batches.
  // Returns false when a callback did not complete (see Call).
  bool DrainRx() {
    Napi::Env env = env_;
    for (int b = 0; b < kMaxBatchesPerPoll; b++) {
      uint32_t n = 0;
      bool empty = false;
      int err = 0;
      while (n < maxPackets_) {
        ssize_t r = read(fd_, rxBuf_ + static_cast<size_t>(n) * slotSize_, slotSize_);
        if (r > 0) {
          rxLens_[n++] = static_cast<int32_t>(r);
          continue;
        }
        if (r == 0) {  // tun never returns an empty packet; do not spin on it
          empty = true;
          break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          empty = true;
        } else {
          err = errno;
        }
        break;
      }
      if (n > 0) {
        napi_value count = Napi::Number::New(env, n);
        if (!Call(onBatch_.Value(), 1, &count)) return false;
        if (fd_ < 0 || !reading_) return true;  // the callback closed or stopped the device
      }
      if (err != 0) {
        ReadFailed(err, "read");
        return true;
      }
      if (empty) return true;
    }
    return true;
  }

  // Stops reading and hands the error to the JS error callback.
  void ReadFailed(int err, const char* syscall) {
    Napi::Env env = env_;
    reading_ = false;
    UpdatePoll(env);
    if (onError_.IsEmpty()) return;
    Napi::Function cb = onError_.Value();
    napi_value e = SystemError(env, err, syscall, name_).Value();
    Call(cb, 1, &e);
  }

  // CallFromLoop, keeping the wrapper alive across the call even if the callback closes the device.
  bool Call(napi_value fn, size_t argc, const napi_value* argv) {
    Ref();
    bool ok = CallFromLoop(env_, *asyncContext_, Value(), fn, argc, argv);
    Unref();
    return ok;
  }

  // Stops polling, closes the fd and drops every JS reference. Idempotent; also runs from the
  // destructor (GC).
  void Release() {
    CloseDescriptor();
    if (selfRef_) {
      selfRef_ = false;
      Unref();
    }
    rxBuf_ = nullptr;
    rxLens_ = nullptr;
    rxBufRef_.Reset();
    rxLensRef_.Reset();
    txBound_ = false;
    tx_ = TxRing();
    txRefs_.clear();
    txViewsRef_.Reset();
    onBatch_.Reset();
    onError_.Reset();
    onWritable_.Reset();
  }

  // Stops polling, then closes the fd (libuv needs it open while it is polled).
  void CloseDescriptor() {
    ClosePoll();
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

  void ClosePoll() {
    pollEvents_ = 0;
    reading_ = false;
    if (box_ == nullptr) return;
    box_->Close();
    box_ = nullptr;
  }

  friend struct LoopPoll<TunDevice>;

  // LoopPoll::OnTeardown: the environment is going away with the device still open.
  void OnEnvTeardown() {
    CloseDescriptor();
    selfRef_ = false;
  }

  napi_env env_;
  int fd_ = -1;
  std::string name_;
  bool vnet_ = false;
  bool multiQueue_ = false;
  PollBox* box_ = nullptr;
  int pollEvents_ = 0;
  bool reading_ = false;
  bool selfRef_ = false;
  uint8_t* rxBuf_ = nullptr;
  int32_t* rxLens_ = nullptr;
  uint32_t slotSize_ = 0;
  uint32_t maxPackets_ = 0;
  Napi::ObjectReference rxBufRef_;
  Napi::ObjectReference rxLensRef_;
  // The ring of bindTx, and references keeping its arrays (their memory) alive while bound.
  bool txBound_ = false;
  TxRing tx_;
  std::vector<Napi::ObjectReference> txRefs_;
  Napi::ObjectReference txViewsRef_;
  Napi::FunctionReference onBatch_;
  Napi::FunctionReference onError_;
  Napi::FunctionReference onWritable_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

struct AddonData {
  Napi::FunctionReference ctor;
};

// open(name: string, opts: { vnetHdr: boolean, multiQueue?: boolean, fd?: number }): TunDevice
Napi::Value Open(const Napi::CallbackInfo& info) {
  AddonData* data = info.Env().GetInstanceData<AddonData>();
  return data->ctor.New({info[0], info[1]});
}

}  // namespace

namespace synfin {

void InitDevice(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = TunDevice::Define(env);
  AddonData* data = new AddonData();
  data->ctor = Napi::Persistent(ctor);
  env.SetInstanceData(data);
  exports.Set("TunDevice", ctor);
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("IFNAMSIZ", Napi::Number::New(env, IFNAMSIZ));
  exports.Set("VNET_HDR_LEN", Napi::Number::New(env, kVnetHdrLen));
}

}  // namespace synfin
