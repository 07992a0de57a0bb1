// Argument and error helpers shared by the addon's translation units (tun.cc, socket-table.cc, upstream.cc).
#pragma once

#include <napi.h>
#include <uv.h>

#include <stdint.h>
#include <string.h>

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

// socket-table.cc: exports.SocketTable (the kernel's TCP sockets, and which are synfin's).
void InitSocketTable(Napi::Env env, Napi::Object exports);

// upstream.cc: exports.UpstreamPoller and the upstream socket operations (src/proxy/upstream.ts).
void InitUpstream(Napi::Env env, Napi::Object exports);

}  // namespace synfin
