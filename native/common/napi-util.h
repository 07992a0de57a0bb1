// Argument and error helpers shared by the addon's translation units (tun.cc, socket-table.cc, upstream.cc).
#pragma once

#include <napi.h>
#include <uv.h>

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

namespace synfin {

inline std::string ErrnoMessage(int err, const char* syscall, const std::string& device) {
  std::string msg = syscall;
  if (!device.empty()) msg += " " + device;
  msg += ": ";
  msg += strerror(err);
  return msg;
}

// A JS Error shaped like Node's system errors: code = errno name, errno = -errno, syscall.
inline Napi::Error SystemError(Napi::Env env, int err, const char* syscall, const std::string& device) {
  Napi::Error e = Napi::Error::New(env, ErrnoMessage(err, syscall, device));
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!device.empty()) e.Set("device", Napi::String::New(env, device));
  return e;
}

// A typed array argument of the expected element type, or an exception.
template <typename T>
inline bool GetTypedArray(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* what,
                   T** data, size_t* length) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be the right kind of typed array")
        .ThrowAsJavaScriptException();
    return false;
  }
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  *data = reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  *length = ta.ElementLength();
  return true;
}

inline bool GetBuffer(const Napi::CallbackInfo& info, size_t index, const char* what, uint8_t** data, size_t* length) {
  Napi::Value v = info[index];
  if (!v.IsBuffer()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  *data = b.Data();
  *length = b.Length();
  return true;
}

inline bool GetUint32(const Napi::CallbackInfo& info, size_t index, const char* what, uint32_t* out) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    Napi::RangeError::New(info.Env(), std::string(what) + " must be an unsigned 32-bit integer")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

// A uv_poll_t that outlives its owner until libuv has closed it (uv_close is asynchronous). It
// also carries an async cleanup hook: when a worker's environment is torn down, Node waits until
// the hook is removed (in the close callback) before it goes on, and only then unloads this addon,
// so libuv never calls into unloaded code.
template <typename Owner>
struct LoopPoll {
  uv_poll_t poll;  // first member: the uv_handle_t* libuv passes back is the LoopPoll*
  napi_async_cleanup_hook_handle hook = nullptr;
  Owner* owner = nullptr;

  // A poll handle on fd for owner, with a cleanup hook that calls owner->OnEnvTeardown() if the
  // environment goes away first. nullptr if it cannot be made: *err is then a negative libuv
  // error, or 0 when Node has no event loop to give.
  static LoopPoll* Open(napi_env env, int fd, Owner* owner, int* err) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      *err = 0;
      return nullptr;
    }
    LoopPoll* box = new LoopPoll();
    int rc = uv_poll_init(loop, &box->poll, fd);
    if (rc != 0) {
      delete box;
      *err = rc;
      return nullptr;
    }
    box->poll.data = owner;
    box->owner = owner;
    if (napi_add_async_cleanup_hook(env, &LoopPoll::OnTeardown, box, &box->hook) != napi_ok) box->hook = nullptr;
    return box;
  }

  // Whether the active handle keeps the event loop alive.
  void SetRef(bool on) {
    if (on) uv_ref(reinterpret_cast<uv_handle_t*>(&poll));
    else uv_unref(reinterpret_cast<uv_handle_t*>(&poll));
  }

  // Stops polling, detaches the owner and closes the handle; the box frees itself once closed.
  // libuv requires the fd to stay open while it is polled: call this before closing the fd.
  void Close() {
    uv_poll_stop(&poll);
    poll.data = nullptr;
    owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll), &LoopPoll::OnClosed);
  }

  // The environment (a worker, or the main thread at exit) is going away with the owner still
  // open: it closes itself. Its JS references die with the environment; they are not touched.
  static void OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
    LoopPoll* box = static_cast<LoopPoll*>(arg);
    if (box->owner != nullptr) box->owner->OnEnvTeardown();  // else closing: OnClosed removes the hook
  }

  static void OnClosed(uv_handle_t* handle) {
    LoopPoll* box = reinterpret_cast<LoopPoll*>(handle);
    napi_async_cleanup_hook_handle h = box->hook;
    delete box;
    if (h != nullptr) napi_remove_async_cleanup_hook(h);
  }
};

// Calls into JS from an event-loop callback with an async context (so process.nextTick and
// promise jobs run afterwards). An exception thrown by the callback becomes an uncaught
// exception, as it would from any other event loop callback.
//
// Raw N-API on purpose: when the callback terminates the environment (process.exit() in a
// worker), node-addon-api's wrappers would try to build an Error and abort. Returns false when
// the callback did not complete; the caller then stops calling into JS for this event.
inline bool CallFromLoop(napi_env env, napi_async_context context, napi_value recv, napi_value fn, size_t argc,
                         const napi_value* argv) {
  napi_value result;
  napi_status st = napi_make_callback(env, context, recv, fn, argc, argv, &result);
  if (st != napi_ok) {
    bool pending = false;
    napi_value exc;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
      napi_fatal_exception(env, exc);
    }
  }
  return st == napi_ok;
}

// A socket address as numbers: out = [family (4 or 6), address words 0..3 in network order read
// as big-endian 32-bit numbers (IPv4 in word 3, the others 0), port]. False for another family.
inline bool ReadSockaddr(const struct sockaddr_storage& ss, uint32_t* out) {
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in* sin = reinterpret_cast<const struct sockaddr_in*>(&ss);
    out[0] = 4;
    out[1] = out[2] = out[3] = 0;
    out[4] = ntohl(sin->sin_addr.s_addr);
    out[5] = ntohs(sin->sin_port);
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
    out[0] = 6;
    for (int i = 0; i < 4; i++) {
      uint32_t w;
      memcpy(&w, sin6->sin6_addr.s6_addr + 4 * i, 4);
      out[1 + i] = ntohl(w);
    }
    out[5] = ntohs(sin6->sin6_port);
    return true;
  }
  return false;
}

}  // namespace synfin
