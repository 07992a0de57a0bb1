// Least privilege (issue 20): give up capabilities once the TUN device is ready.
//
// Capabilities are per thread on Linux: capset(2) changes only the calling thread, and a Node
// process already has several threads when any JavaScript runs (V8 platform workers, the libuv
// pool, and the inspector's SIGUSR1 thread, which blocks every signal, so no signal-based
// "run capset on every thread" scheme can reach it). No system call changes another thread's
// credentials. execve(2) is the one that covers them all: it ends every other thread, and the new
// program's threads are all created from the calling thread's credentials. So synfin drops
// capabilities in this thread and then re-executes itself (src/tun/caps.ts), handing the TUN fd
// over across the exec:
//
//   dropCapabilities(keep)  this thread: bounding set cut to `keep` (when CAP_SETPCAP allows),
//                           ambient cleared (then `keep` raised again), inheritable, permitted
//                           and effective set to `keep`, and no_new_privs set, so the exec can
//                           grant nothing back (no file capabilities, and root's exec rule is
//                           capped by the old permitted set: security/commoncap.c).
//   execve(file, argv, env, keepFd)
//                           clears FD_CLOEXEC on keepFd (one fd or a list) and stdio and replaces the process;
//                           returns only by throwing.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../addon.h"
#include "../common/napi-util.h"

namespace synfin {

namespace {

int LastCap() {
  int last = CAP_LAST_CAP;
  FILE* f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (f != nullptr) {
    int v;
    if (fscanf(f, "%d", &v) == 1 && v >= 0 && v < 64) last = v;
    fclose(f);
  }
  return last;
}

// dropCapabilities(keep: number[]): void — the calling thread only (see above).
Napi::Value DropCapabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) {
    Napi::TypeError::New(env, "keep must be an array of capability numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  const int last = LastCap();
  uint64_t keep = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    int64_t c = arr.Get(i).ToNumber().Int64Value();
    if (c < 0 || c > last) {
      Napi::RangeError::New(env, "capability number out of range").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    keep |= uint64_t{1} << c;
  }

  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capget, &hdr, data) != 0) {
    SystemError(env, errno, "capget", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uint64_t permitted = uint64_t{data[0].permitted} | (uint64_t{data[1].permitted} << 32);
  const uint64_t effective = uint64_t{data[0].effective} | (uint64_t{data[1].effective} << 32);
  keep &= permitted;  // what we do not hold cannot be kept

  // The bounding set first: dropping from it needs CAP_SETPCAP, which the capset below removes.
  // Without CAP_SETPCAP (the usual case for a non-root process) it stays; no_new_privs and the
  // empty permitted set already keep an exec from using it.
  if (effective & (uint64_t{1} << CAP_SETPCAP)) {
    for (int c = 0; c <= last; c++) {
      if ((keep & (uint64_t{1} << c)) == 0 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
          prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
        SystemError(env, errno, "prctl(PR_CAPBSET_DROP)", "").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    SystemError(env, errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (int w = 0; w < 2; w++) {
    const uint32_t k = static_cast<uint32_t>(keep >> (32 * w));
    data[w].effective = k;
    data[w].permitted = k;
    data[w].inheritable = k;  // ambient needs inheritable; nothing else is inherited
  }
  if (syscall(SYS_capset, &hdr, data) != 0) {
    SystemError(env, errno, "capset", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // A kept capability survives the exec of a non-root program only through the ambient set.
  for (int c = 0; c <= last; c++) {
    if ((keep & (uint64_t{1} << c)) != 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) {
      SystemError(env, errno, "prctl(PR_CAP_AMBIENT_RAISE)", "").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    SystemError(env, errno, "prctl(PR_SET_NO_NEW_PRIVS)", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return env.Undefined();
}

bool StringList(Napi::Env env, Napi::Value v, const char* what, std::vector<std::string>* out) {
  if (!v.IsArray()) {
    Napi::TypeError::New(env, std::string(what) + " must be an array of strings").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) {
      Napi::TypeError::New(env, std::string(what) + " must be an array of strings").ThrowAsJavaScriptException();
      return false;
    }
    out->push_back(s.As<Napi::String>().Utf8Value());
  }
  return true;
}

// execve(file: string, argv: string[], env: string[], keepFd: number | number[]): never
// (several fds: the queues of a multi-queue device, src/workers/supervisor.ts)
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !(info[3].IsNumber() || info[3].IsArray())) {
    Napi::TypeError::New(env, "execve(file, argv, env, keepFd)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv, envv;
  if (!StringList(env, info[1], "argv", &argv) || !StringList(env, info[2], "env", &envv)) return env.Undefined();
  // keepFds and stdio stay open across the exec: libuv marks the stdio fds close-on-exec when it
  // reopens a tty, and the new program's logs must go where this one's went.
  std::vector<int> fds = {0, 1, 2};
  if (info[3].IsNumber()) {
    fds.push_back(info[3].As<Napi::Number>().Int32Value());
  } else {
    Napi::Array a = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).ToNumber().Int32Value());
  }
  std::vector<char*> av, ev;
  for (auto& s : argv) av.push_back(s.data());
  av.push_back(nullptr);
  for (auto& s : envv) ev.push_back(s.data());
  ev.push_back(nullptr);

  std::vector<int> saved(fds.size(), -1);
  for (size_t i = 0; i < fds.size(); i++) {
    if (fds[i] < 0 || (i >= 3 && fds[i] <= 2)) continue;
    saved[i] = fcntl(fds[i], F_GETFD);
    if (saved[i] < 0) {
      if (i < 3) continue;  // a closed stdio fd stays closed
      const int err = errno;
      for (size_t j = 0; j < i; j++) if (saved[j] >= 0) fcntl(fds[j], F_SETFD, saved[j]);
      SystemError(env, err, "fcntl(F_GETFD)", "").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (fcntl(fds[i], F_SETFD, saved[i] & ~FD_CLOEXEC) != 0) {
      const int err = errno;
      for (size_t j = 0; j < i; j++) if (saved[j] >= 0) fcntl(fds[j], F_SETFD, saved[j]);
      SystemError(env, err, "fcntl(F_SETFD)", "").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  execve(file.c_str(), av.data(), ev.data());
  const int err = errno;
  for (size_t i = 0; i < fds.size(); i++) if (saved[i] >= 0) fcntl(fds[i], F_SETFD, saved[i]);
  SystemError(env, err, "execve", file).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

void InitCaps(Napi::Env env, Napi::Object exports) {
  exports.Set("dropCapabilities", Napi::Function::New(env, DropCapabilities, "dropCapabilities"));
  exports.Set("execve", Napi::Function::New(env, Execve, "execve"));
}

}  // namespace synfin
