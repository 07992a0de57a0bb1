// Which process holds a socket: the owner of each wanted socket inode, found the way ss -p and
// lsof find it, by reading every visible process's fd table (/proc/PID/fd/N links to
// "socket:[INODE]", fs/proc/fd.c) and its command (/proc/PID/comm).
//
// Why here: a walk reads one link per open file of every process (2,000 and more in a busy pod).
// In JavaScript each readlink is a thread-pool round trip and a callback on the event loop; here
// the whole walk is one task of libuv's thread pool, and the event loop only builds the answer
// (a few numbers per wanted inode). A walk of given pids stops as soon as every wanted inode is
// found; a walk of every process reads them all, to name every process that holds a socket
// (where the caller looks first for sockets it will want next).
//
// Reading another process's fd links is a ptrace access check (PTRACE_MODE_READ_FSCREDS,
// proc_fd_access_allowed): the same uid and a subset of its capabilities, or CAP_SYS_PTRACE.
// Refusals are counted, so the caller
// can tell "held by a process we may not read" from "held by no process we can see".

#include <napi.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "../addon.h"
#include "../common/napi-util.h"

namespace synfin {
namespace {

// A positive decimal number (a pid or an fd), or -1.
long Decimal(const char* s) {
  if (*s == '\0') return -1;
  long v = 0;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9' || v > 100000000) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

class OwnersWorker : public Napi::AsyncWorker {
 public:
  OwnersWorker(Napi::Function done, std::string root, std::vector<uint32_t> inodes, std::vector<int32_t> pids)
      : Napi::AsyncWorker(done, "synfin:socket-owners"),
        root_(std::move(root)),
        inodes_(std::move(inodes)),
        pids_(std::move(pids)),
        pid_(inodes_.size(), 0),
        fd_(inodes_.size(), -1),
        command_(inodes_.size()) {
    for (size_t i = 0; i < inodes_.size(); i++) wanted_.emplace(inodes_[i], i);
  }

  void Execute() override {
    if (wanted_.empty()) return;
    if (!pids_.empty()) {
      for (int32_t pid : pids_) {
        if (pid > 0 && Process(pid)) return;
      }
      return;
    }
    DIR* proc = opendir(root_.c_str());
    if (proc == nullptr) {
      SetError(root_ + ": " + strerror(errno));
      return;
    }
    while (struct dirent* e = readdir(proc)) {
      long pid = Decimal(e->d_name);
      if (pid > 0) Process(static_cast<int32_t>(pid));
    }
    closedir(proc);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    Napi::Int32Array pid = Napi::Int32Array::New(env, inodes_.size());
    Napi::Int32Array fd = Napi::Int32Array::New(env, inodes_.size());
    Napi::Array command = Napi::Array::New(env, inodes_.size());
    for (size_t i = 0; i < inodes_.size(); i++) {
      pid[i] = pid_[i];
      fd[i] = fd_[i];
      command.Set(static_cast<uint32_t>(i), pid_[i] > 0 ? Napi::Value(Napi::String::New(env, command_[i])) : env.Null());
    }
    r.Set("pid", pid);
    r.Set("fd", fd);
    r.Set("command", command);
    r.Set("processes", Napi::Number::New(env, processes_));
    r.Set("denied", Napi::Number::New(env, denied_));
    r.Set("fds", Napi::Number::New(env, fds_));
    Napi::Int32Array holders = Napi::Int32Array::New(env, holders_.size());
    for (size_t i = 0; i < holders_.size(); i++) holders[i] = holders_[i];
    r.Set("socketHolders", holders);
    Callback().Call({env.Null(), r});
  }

 private:
  // Reads one process's fd table; true once every wanted inode is found.
  bool Process(int32_t pid) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%d/fd", root_.c_str(), pid);
    DIR* d = opendir(path);
    if (d == nullptr) {
      if (errno == EACCES || errno == EPERM) denied_++;
      return false;  // ENOENT: the process ended meanwhile
    }
    processes_++;
    int dfd = dirfd(d);
    char link[64];
    bool holder = false;
    while (struct dirent* e = readdir(d)) {
      long fd = Decimal(e->d_name);
      if (fd < 0) continue;
      ssize_t n = readlinkat(dfd, e->d_name, link, sizeof link - 1);
      if (n < 0 && (errno == EACCES || errno == EPERM)) {
        // The directory may be listed (its mode lets the uid in) while each link is a ptrace
        // read check, which also wants the target's permitted capabilities to be a subset of
        // ours (security/commoncap.c cap_ptrace_access_check): a root app with capabilities is
        // out of reach of a root synfin without them. The whole table is closed to us.
        denied_++;
        processes_--;
        break;
      }
      if (n <= 0) continue;
      fds_++;
      link[n] = '\0';
      if (strncmp(link, "socket:[", 8) != 0) continue;
      if (!holder) {
        holder = true;
        holders_.push_back(pid);
      }
      auto it = wanted_.find(static_cast<uint32_t>(strtoul(link + 8, nullptr, 10)));
      if (it == wanted_.end() || pid_[it->second] != 0) continue;
      pid_[it->second] = pid;
      fd_[it->second] = static_cast<int32_t>(fd);
      command_[it->second] = Command(pid);
      if (++found_ == wanted_.size() && !pids_.empty()) break;
    }
    closedir(d);
    return found_ == wanted_.size();
  }

  std::string Command(int32_t pid) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%d/comm", root_.c_str(), pid);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return "";
    char buf[64];
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return "";
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0')) n--;
    return std::string(buf, static_cast<size_t>(n));
  }

  std::string root_;
  std::vector<uint32_t> inodes_;
  std::vector<int32_t> pids_;
  std::unordered_map<uint32_t, size_t> wanted_;
  std::vector<int32_t> pid_;
  std::vector<int32_t> fd_;
  std::vector<std::string> command_;
  // Processes holding at least one socket (read up to where the walk stopped).
  std::vector<int32_t> holders_;
  size_t found_ = 0;
  double processes_ = 0;
  double denied_ = 0;
  double fds_ = 0;
};

// findSocketOwners(procRoot: string, inodes: Float64Array, pids: Int32Array | null,
//                  done: (err, { pid, fd, command, processes, denied, fds, socketHolders }) => void)
// Walks procRoot's processes (only `pids` when given) in the thread pool.
Napi::Value FindSocketOwners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[3].IsFunction()) {
    Napi::TypeError::New(env, "findSocketOwners(procRoot, inodes, pids, done)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double* in;
  size_t n;
  if (!GetTypedArray<double>(info, 1, napi_float64_array, "inodes", &in, &n)) return env.Undefined();
  std::vector<uint32_t> inodes;
  inodes.reserve(n);
  for (size_t i = 0; i < n; i++) inodes.push_back(static_cast<uint32_t>(in[i]));
  std::vector<int32_t> pids;
  if (!info[2].IsNull() && !info[2].IsUndefined()) {
    int32_t* p;
    size_t m;
    if (!GetTypedArray<int32_t>(info, 2, napi_int32_array, "pids", &p, &m)) return env.Undefined();
    pids.assign(p, p + m);
  }
  auto* w = new OwnersWorker(info[3].As<Napi::Function>(), info[0].As<Napi::String>().Utf8Value(), std::move(inodes), std::move(pids));
  w->Queue();
  return env.Undefined();
}

}  // namespace

void InitSocketOwners(Napi::Env env, Napi::Object exports) {
  exports.Set("findSocketOwners", Napi::Function::New(env, FindSocketOwners, "findSocketOwners"));
}

}  // namespace synfin
