// The kernel's TCP sockets of this network namespace, and which of them are synfin's.
//
// Two things in the observability layer need the kernel's socket table: the state of synfin's
// own upstream sockets, including those still in TIME_WAIT after synfin closed them
// (synfin_upstream_sockets), and, in the sidecar topology, the true state of the app's socket by
// its 4-tuple (appState). With 10,000 connections the table has 20,000 sockets and more.
//
// Why here and not in TypeScript: /proc/net/tcp costs the kernel 20-60 ms to render at that size
// and a JavaScript parse ~10 ms more on the event loop; a sock_diag dump (netlink, binary
// records, Documentation/networking and include/uapi/linux/inet_diag.h) costs a few ms, runs
// in libuv's thread pool here, and lands in a hash table that the event loop only swaps in. The
// tuples synfin watches (its upstream sockets, live and recently closed) live in the same table
// object, so counting them by kernel state is a walk in C++ rather than 20,000 string keys in JS.
// If sock_diag is unavailable (a kernel without inet_diag/tcp_diag), the worker reads
// /proc/net/tcp{,6} instead, as ss(8) does.
//
// Threads: the JS thread owns `watched_`, `closedOrder_`, `snapshot_` and `counts_`; a refresh's
// worker only fills its own map, which the JS thread swaps in when the worker completes.

#include <napi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../addon.h"
#include "../common/napi-util.h"

namespace synfin {
namespace {

// Kernel TCP states are 1..12 (include/net/tcp_states.h); counts are indexed by state number.
constexpr int kStates = 13;
constexpr int kTcpListen = 10;
// A tuple as JavaScript passes it: [family, l0, l1, l2, l3, localPort, r0, r1, r2, r3, remotePort],
// address words in network order as numbers (the first octet is the most significant byte of
// word 0; an IPv4 address is word 3 with words 0-2 zero).
constexpr size_t kTupleWords = 11;

struct Tuple {
  uint32_t local[4];
  uint32_t remote[4];
  uint16_t localPort;
  uint16_t remotePort;
  uint32_t family;  // 4 or 6; IPv4-mapped IPv6 addresses are stored as family 4

  bool operator==(const Tuple& o) const { return memcmp(this, &o, sizeof *this) == 0; }
};
static_assert(sizeof(Tuple) == 40, "Tuple has no padding (it is hashed and compared as bytes)");

struct TupleHash {
  size_t operator()(const Tuple& t) const {
    // FNV-1a over the 10 words: cheap and well spread for addresses and ports. The words are
    // copied out, not read through a cast: the ports are uint16_t, and reading them through a
    // uint32_t pointer breaks strict aliasing (at -O3 the compiler hashed a tuple before its
    // ports were stored, and those sockets were never found).
    uint32_t w[sizeof(Tuple) / 4];
    memcpy(w, &t, sizeof w);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(Tuple) / 4; i++) {
      h ^= w[i];
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// The kernel's table as read: open addressing over one array of records, no allocation per
// socket (a node-based map spent more time allocating than the kernel spent dumping).
class SocketMap {
 public:
  struct Entry {
    Tuple tuple;
    uint8_t state;
    // The socket's inode (the name of its file, socket:[INODE], in its owners' /proc/PID/fd);
    // 0 when no file holds it any more (an orphan finishing its close, or TIME_WAIT).
    uint32_t inode;
  };

  void Reserve(size_t n) {
    entries_.reserve(n);
    size_t cap = 64;
    while (cap < 2 * n) cap <<= 1;
    if (cap > index_.size()) Rehash(cap);
  }

  void Set(const Tuple& t, uint8_t state, uint32_t inode) {
    if (2 * (entries_.size() + 1) > index_.size()) Rehash(index_.empty() ? 64 : 2 * index_.size());
    size_t mask = index_.size() - 1;
    for (size_t i = TupleHash()(t) & mask;; i = (i + 1) & mask) {
      int32_t e = index_[i];
      if (e < 0) {
        index_[i] = static_cast<int32_t>(entries_.size());
        entries_.push_back({t, state, inode});
        return;
      }
      if (entries_[e].tuple == t) {
        entries_[e].state = state;
        entries_[e].inode = inode;
        return;
      }
    }
  }

  // The state of `t`, 0 if absent.
  uint8_t Get(const Tuple& t) const {
    const Entry* e = Find(t);
    return e == nullptr ? 0 : e->state;
  }

  // The record of `t`, or null.
  const Entry* Find(const Tuple& t) const {
    if (index_.empty()) return nullptr;
    size_t mask = index_.size() - 1;
    for (size_t i = TupleHash()(t) & mask;; i = (i + 1) & mask) {
      int32_t e = index_[i];
      if (e < 0) return nullptr;
      if (entries_[e].tuple == t) return &entries_[e];
    }
  }

  size_t Size() const { return entries_.size(); }
  void Clear() {
    entries_.clear();
    std::fill(index_.begin(), index_.end(), -1);
  }

  const std::vector<Entry>& Entries() const { return entries_; }

 private:
  void Rehash(size_t cap) {
    index_.assign(cap, -1);
    size_t mask = cap - 1;
    for (size_t e = 0; e < entries_.size(); e++) {
      size_t i = TupleHash()(entries_[e].tuple) & mask;
      while (index_[i] >= 0) i = (i + 1) & mask;
      index_[i] = static_cast<int32_t>(e);
    }
  }

  std::vector<Entry> entries_;
  std::vector<int32_t> index_;
};

// IPv4 and IPv4-mapped IPv6 (::ffff:0:0/96) are one family: a dual-stack socket reports the
// mapped form, the kernel's table the IPv4 one.
void Normalize(Tuple* t) {
  bool mapped = t->local[0] == 0 && t->local[1] == 0 && t->local[2] == 0xffff && t->remote[0] == 0 &&
                t->remote[1] == 0 && t->remote[2] == 0xffff;
  if (t->family == 4 || mapped) {
    t->family = 4;
    t->local[0] = t->local[1] = t->local[2] = 0;
    t->remote[0] = t->remote[1] = t->remote[2] = 0;
  }
}

// A tuple from its 11 words [family, four local words, local port, four remote words, remote port].
template <typename W>
void TupleFromWords(const W* w, Tuple* out) {
  memset(out, 0, sizeof *out);
  out->family = static_cast<uint32_t>(w[0]);
  for (int i = 0; i < 4; i++) {
    out->local[i] = static_cast<uint32_t>(w[1 + i]);
    out->remote[i] = static_cast<uint32_t>(w[6 + i]);
  }
  out->localPort = static_cast<uint16_t>(w[5]);
  out->remotePort = static_cast<uint16_t>(w[10]);
  Normalize(out);
}

bool TupleFromArgs(const Napi::CallbackInfo& info, size_t index, Tuple* out) {
  uint32_t* w;
  size_t n;
  if (!GetTypedArray<uint32_t>(info, index, napi_uint32_array, "tuple", &w, &n)) return false;
  if (n < kTupleWords || (w[0] != 4 && w[0] != 6)) {
    Napi::RangeError::New(info.Env(), "tuple must be [family 4|6, 4 local words, local port, 4 remote words, remote port]")
        .ThrowAsJavaScriptException();
    return false;
  }
  memset(out, 0, sizeof *out);
  out->family = w[0];
  for (int i = 0; i < 4; i++) {
    out->local[i] = w[1 + i];
    out->remote[i] = w[6 + i];
  }
  out->localPort = static_cast<uint16_t>(w[5]);
  out->remotePort = static_cast<uint16_t>(w[10]);
  Normalize(out);
  return true;
}

// ---------------------------------------------------------------------------- sock_diag dump

// Every state but LISTEN: listeners have no remote end, so no 4-tuple anyone looks for.
constexpr uint32_t kStateMask = ((1u << kStates) - 1) & ~(1u << kTcpListen) & ~1u;

// Reads one dump's records into `into`; 0 or an errno.
int ReadDump(int fd, uint32_t seq, SocketMap* into) {
  // 32 KiB per read holds ~270 records; the kernel fills each read as far as it will go.
  alignas(struct nlmsghdr) static thread_local char buf[32768];
  for (;;) {
    // MSG_TRUNC: the datagram's real length, so a record cut off by a short buffer is an error
    // (the caller falls back to /proc), never silently missing sockets. The kernel sizes dump
    // datagrams to the reader's buffer, at most 32 KiB (net/netlink/af_netlink.c, netlink_dump).
    ssize_t n = recv(fd, buf, sizeof buf, MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EPROTO;
    if (static_cast<size_t>(n) > sizeof buf) return EMSGSIZE;
    int len = static_cast<int>(n);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        return e->error == 0 ? 0 : -e->error;
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
      const struct inet_diag_msg* m = static_cast<const struct inet_diag_msg*>(NLMSG_DATA(h));
      if (m->idiag_state >= kStates) continue;
      Tuple t;
      memset(&t, 0, sizeof t);
      t.family = m->idiag_family == AF_INET ? 4 : 6;
      if (t.family == 4) {
        t.local[3] = ntohl(m->id.idiag_src[0]);
        t.remote[3] = ntohl(m->id.idiag_dst[0]);
      } else {
        for (int i = 0; i < 4; i++) {
          t.local[i] = ntohl(m->id.idiag_src[i]);
          t.remote[i] = ntohl(m->id.idiag_dst[i]);
        }
      }
      t.localPort = ntohs(m->id.idiag_sport);
      t.remotePort = ntohs(m->id.idiag_dport);
      Normalize(&t);
      into->Set(t, m->idiag_state, m->idiag_inode);
    }
  }
}

int Send(int fd, const void* msg, size_t len) {
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  return sendto(fd, msg, len, 0, reinterpret_cast<const struct sockaddr*>(&kernel), sizeof kernel) < 0 ? errno : 0;
}

// Both families in one walk of the kernel's established hash: the legacy TCPDIAG_GETSOCK request
// dumps with sdiag_family = AF_UNSPEC (net/ipv4/inet_diag.c, inet_diag_dump_compat), where a
// SOCK_DIAG_BY_FAMILY request per family walks the whole hash once for each (that walk, not the
// records, is most of the cost: ~5 ms with 18,000 sockets here even when none matches).
int DumpBothFamilies(int fd, SocketMap* into) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = TCPDIAG_GETSOCK;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.idiag_family = AF_INET;
  msg.req.idiag_states = kStateMask;
  int err = Send(fd, &msg, sizeof msg);
  return err != 0 ? err : ReadDump(fd, 1, into);
}

// One family per request (the modern interface), if the legacy one is refused.
int DumpFamily(int fd, uint8_t family, uint32_t seq, SocketMap* into) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = kStateMask;
  int err = Send(fd, &msg, sizeof msg);
  return err != 0 ? err : ReadDump(fd, seq, into);
}

// `boundFd`: a sock_diag socket opened in another network namespace (OpenSockDiagIn), used and
// kept; -1: a socket of this thread's namespace, opened and closed for this dump.
int DumpSockDiag(SocketMap* into, int boundFd) {
  int fd = boundFd >= 0 ? boundFd : socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return errno;
  int err = DumpBothFamilies(fd, into);
  if (err != 0) {
    into->Clear();
    err = DumpFamily(fd, AF_INET, 2, into);
    if (err == 0) err = DumpFamily(fd, AF_INET6, 3, into);
  }
  if (fd != boundFd) close(fd);
  return err;
}

// A sock_diag socket of the network namespace at `nsPath` (/var/run/netns/NAME, /proc/PID/ns/net):
// a socket belongs to the namespace it was created in for its whole life, so this thread enters
// the namespace just for socket(2) and returns (setns(2) needs CAP_SYS_ADMIN, held at start).
// Returns the fd, or -errno.
int OpenSockDiagIn(const char* nsPath) {
  int target = open(nsPath, O_RDONLY | O_CLOEXEC);
  if (target < 0) return -errno;
  int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (own < 0) {
    int err = errno;
    close(target);
    return -err;
  }
  int fd = -1;
  int err = 0;
  if (setns(target, CLONE_NEWNET) != 0) {
    err = errno;
  } else {
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) err = errno;
    // Back to our own namespace, whatever happened: a thread left elsewhere would open every
    // later socket of the event loop there. If that fails there is no safe way on.
    if (setns(own, CLONE_NEWNET) != 0) abort();
  }
  close(own);
  close(target);
  return fd >= 0 ? fd : -err;
}

// ---------------------------------------------------------------------------- /proc fallback

uint32_t Hex(const char* s, int digits, bool* ok) {
  uint32_t v = 0;
  for (int i = 0; i < digits; i++) {
    char c = s[i];
    uint32_t d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else {
      *ok = false;
      return 0;
    }
    v = (v << 4) | d;
  }
  return v;
}

// /proc/net/tcp prints each 32-bit address word as %08X of the word in host (little-endian)
// order (net/ipv4/tcp_ipv4.c get_tcp4_sock): the byte-swap of the network-order number.
bool ParseEndpoint(const char* s, int words, uint32_t* addr, uint16_t* port) {
  bool ok = true;
  for (int i = 0; i < words; i++) addr[4 - words + i] = __builtin_bswap32(Hex(s + 8 * i, 8, &ok));
  if (s[8 * words] != ':') return false;
  *port = static_cast<uint16_t>(Hex(s + 8 * words + 1, 4, &ok));
  return ok;
}

int ReadProcFile(const char* path, int words, SocketMap* into) {
  FILE* f = fopen(path, "re");
  if (f == nullptr) return errno;
  char line[512];
  int width = 8 * words + 5;  // "AAAAAAAA:PPPP" per endpoint
  while (fgets(line, sizeof line, f) != nullptr) {
    const char* colon = strstr(line, ": ");
    if (colon == nullptr) continue;
    const char* local = colon + 2;
    size_t avail = strlen(local);
    if (avail < static_cast<size_t>(2 * width + 4) || local[width] != ' ' || local[2 * width + 1] != ' ') continue;
    Tuple t;
    memset(&t, 0, sizeof t);
    t.family = words == 1 ? 4 : 6;
    if (!ParseEndpoint(local, words, t.local, &t.localPort)) continue;
    if (!ParseEndpoint(local + width + 1, words, t.remote, &t.remotePort)) continue;
    bool ok = true;
    uint32_t state = Hex(local + 2 * width + 2, 2, &ok);
    if (!ok || state == 0 || state >= kStates || state == kTcpListen) continue;
    // After the state: tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode.
    unsigned long inode = 0;
    if (sscanf(local + 2 * width + 4, "%*x:%*x %*x:%*x %*x %*u %*d %lu", &inode) != 1) inode = 0;
    Normalize(&t);
    into->Set(t, static_cast<uint8_t>(state), static_cast<uint32_t>(inode));
  }
  fclose(f);
  return 0;
}

int ReadProc(SocketMap* into) {
  int err = ReadProcFile("/proc/net/tcp", 1, into);
  int err6 = ReadProcFile("/proc/net/tcp6", 4, into);
  return err != 0 ? err : (err6 == ENOENT ? 0 : err6);  // no tcp6 file: IPv6 disabled
}

// ---------------------------------------------------------------------------- the table object

// The tuples synfin watches: its live upstream sockets and the closed ones it remembers (up to
// maxClosed, 200,000 by default). Open addressing over an index into one dense array, as
// SocketMap, with deletion: every connection adds a tuple and, once the memory is full, forgets
// one, and the node-based std::unordered_map this replaces allocated and freed a node for each and
// missed the cache on every lookup (its operator[] was the largest native leaf of a short
// connection's user space, ~3 % of the samples of bench/connection-floor-js.mjs).
class WatchedSet {
 public:
  struct Entry {
    Tuple tuple;
    double closedAt;  // ms on the caller's clock, for closed ones
    uint32_t hash;
    bool live;
  };

  size_t Size() const { return entries_.size(); }
  const std::vector<Entry>& Entries() const { return entries_; }

  Entry* Find(const Tuple& t) {
    size_t i = Slot(t);
    return i == kNone ? nullptr : &entries_[index_[i].entry];
  }
  bool Contains(const Tuple& t) const { return Slot(t) != kNone; }

  // Insert, or update the tuple's record.
  void Set(const Tuple& t, bool live, double closedAt) {
    if (2 * (entries_.size() + 1) > index_.size()) Rehash(index_.empty() ? 64 : 2 * index_.size());
    uint32_t h = Hash(t);
    size_t mask = index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      int32_t e = index_[i].entry;
      if (e < 0) {
        index_[i] = {static_cast<int32_t>(entries_.size()), h};
        entries_.push_back({t, closedAt, h, live});
        return;
      }
      if (index_[i].hash == h && entries_[e].tuple == t) {
        entries_[e].live = live;
        entries_[e].closedAt = closedAt;
        return;
      }
    }
  }

  bool Erase(const Tuple& t) {
    size_t i = Slot(t);
    if (i == kNone) return false;
    int32_t e = index_[i].entry;
    RemoveSlot(i);
    // The last record moves into the hole; its index slot is found by its hash.
    int32_t last = static_cast<int32_t>(entries_.size()) - 1;
    if (e != last) {
      entries_[e] = entries_[last];
      size_t mask = index_.size() - 1;
      size_t j = entries_[e].hash & mask;
      while (index_[j].entry != last) j = (j + 1) & mask;
      index_[j].entry = e;
    }
    entries_.pop_back();
    if (index_.size() > 64 && 8 * entries_.size() < index_.size()) Rehash(index_.size() / 2);
    return true;
  }

 private:
  static constexpr size_t kNone = ~size_t{0};

  static uint32_t Hash(const Tuple& t) { return static_cast<uint32_t>(TupleHash()(t)); }

  size_t Slot(const Tuple& t) const {
    if (index_.empty()) return kNone;
    uint32_t h = Hash(t);
    size_t mask = index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      int32_t e = index_[i].entry;
      if (e < 0) return kNone;
      if (index_[i].hash == h && entries_[e].tuple == t) return i;
    }
  }

  // Linear probing's deletion without tombstones (Knuth 6.4, Algorithm R): later members of the
  // probe run move back into the hole unless their home slot lies cyclically in (hole, there].
  void RemoveSlot(size_t i) {
    size_t mask = index_.size() - 1;
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (index_[j].entry < 0) break;
      size_t k = index_[j].hash & mask;
      bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (stays) continue;
      index_[i] = index_[j];
      i = j;
    }
    index_[i] = kEmpty;
  }

  void Rehash(size_t cap) {
    index_.assign(cap, kEmpty);
    size_t mask = cap - 1;
    for (size_t e = 0; e < entries_.size(); e++) {
      uint32_t h = entries_[e].hash;
      size_t i = h & mask;
      while (index_[i].entry >= 0) i = (i + 1) & mask;
      index_[i] = {static_cast<int32_t>(e), h};
    }
  }

  // An index slot holds its record's hash beside the record's place: a probe past other tuples,
  // the backward shift's home slots and a new tuple's insertion read the index only, not the
  // records (at 200,000 remembered tuples the records are ~11 MB: each record read was a cache
  // miss, the largest part of the table's work per connection).
  struct IndexSlot {
    int32_t entry;
    uint32_t hash;
  };
  static constexpr IndexSlot kEmpty = {-1, 0};

  std::vector<Entry> entries_;
  std::vector<IndexSlot> index_;
};

class SocketTable : public Napi::ObjectWrap<SocketTable> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SocketTable",
                       {
                           InstanceMethod("watch", &SocketTable::Watch),
                           InstanceMethod("release", &SocketTable::Release),
                           InstanceMethod("apply", &SocketTable::Apply),
                           InstanceMethod("refresh", &SocketTable::Refresh),
                           InstanceMethod("counts", &SocketTable::Counts),
                           InstanceMethod("stateOf", &SocketTable::StateOf),
                           InstanceMethod("inodeOf", &SocketTable::InodeOf),
                           InstanceAccessor("size", &SocketTable::GetSize, nullptr),
                           InstanceAccessor("watched", &SocketTable::GetWatched, nullptr),
                           InstanceAccessor("source", &SocketTable::GetSource, nullptr),
                       });
  }

  // new SocketTable(closedMemoryMs: number, maxClosed: number, forceProc?: boolean)
  explicit SocketTable(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketTable>(info) {
    if (!info[0].IsNumber() || !info[1].IsNumber()) {
      Napi::TypeError::New(info.Env(), "SocketTable(closedMemoryMs, maxClosed)").ThrowAsJavaScriptException();
      return;
    }
    closedMemoryMs_ = info[0].As<Napi::Number>().DoubleValue();
    maxClosed_ = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    forceProc_ = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    memset(counts_, 0, sizeof counts_);
    // netnsPath: the table of another network namespace (sock_diag only: /proc/net/tcp is this one's).
    if (info.Length() > 3 && info[3].IsString()) {
      std::string nsPath = info[3].As<Napi::String>().Utf8Value();
      int fd = OpenSockDiagIn(nsPath.c_str());
      if (fd < 0) {
        Napi::Error e = Napi::Error::New(info.Env(), std::string("the network namespace ") + nsPath + ": " + strerror(-fd));
        e.Set("errno", Napi::Number::New(info.Env(), -fd));
        e.ThrowAsJavaScriptException();
        return;
      }
      boundFd_ = fd;
    }
  }

  ~SocketTable() {
    if (boundFd_ >= 0) close(boundFd_);
  }

  // The worker's result, swapped in on the JS thread.
  void Install(std::unique_ptr<SocketMap> fresh, bool fromProc, double nowMs) {
    snapshot_ = std::move(fresh);
    source_ = fromProc ? "proc" : "sock_diag";
    Expire(nowMs);
    Count();
    countsStale_ = false;
  }

 private:
  // watch(id: number, tuple: Uint32Array): a live upstream socket of connection `id`.
  Napi::Value Watch(const Napi::CallbackInfo& info) {
    Tuple t;
    uint32_t id;
    if (!GetUint32(info, 0, "id", &id) || !TupleFromArgs(info, 1, &t)) return info.Env().Undefined();
    DoWatch(id, t);
    return info.Env().Undefined();
  }

  // release(id: number, nowMs: number): connection `id`'s upstream socket closed; its tuple is
  // remembered (for its TIME_WAIT) for closedMemoryMs, the oldest forgotten beyond maxClosed.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    uint32_t id;
    if (!GetUint32(info, 0, "id", &id)) return info.Env().Undefined();
    double now = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    DoRelease(id, now);
    return info.Env().Undefined();
  }

  // apply(ops: Float64Array, count: number): `count` watch and release calls in one crossing, in
  // order, each kApplyStride numbers: [1, id, 0, the tuple's 11 words] for a watch, [2, id, nowMs,
  // ...] for a release. The JavaScript side queues them (one N-API call per batch of connections
  // instead of two per connection).
  Napi::Value Apply(const Napi::CallbackInfo& info) {
    double* ops;
    size_t n;
    if (!GetTypedArray<double>(info, 0, napi_float64_array, "ops", &ops, &n)) return info.Env().Undefined();
    size_t count = info[1].IsNumber() ? static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()) : 0;
    if (count > n / kApplyStride) count = n / kApplyStride;
    for (size_t k = 0; k < count; k++) {
      const double* op = ops + k * kApplyStride;
      uint32_t id = static_cast<uint32_t>(op[1]);
      if (op[0] == 1) {
        if (op[3] != 4 && op[3] != 6) continue;
        Tuple t;
        TupleFromWords(op + 3, &t);
        DoWatch(id, t);
      } else if (op[0] == 2) {
        DoRelease(id, op[2]);
      }
    }
    return info.Env().Undefined();
  }

  static constexpr size_t kApplyStride = 3 + kTupleWords;

  void DoWatch(uint32_t id, const Tuple& t) {
    auto old = ids_.find(id);
    if (old != ids_.end()) watched_.Erase(old->second);
    ids_[id] = t;
    watched_.Set(t, true, 0);
    countsStale_ = true;
  }

  void DoRelease(uint32_t id, double now) {
    auto it = ids_.find(id);
    if (it == ids_.end()) return;
    Tuple t = it->second;
    ids_.erase(it);
    watched_.Set(t, false, now);
    closedOrder_.push_back({t, now});
    while (closedOrder_.size() > maxClosed_) Forget(closedOrder_.front()), closedOrder_.pop_front();
    countsStale_ = true;
  }

  // refresh(nowMs: number, done: (err: Error | null) => void): read the kernel's table in the
  // thread pool. One at a time: the caller shares a pending refresh.
  Napi::Value Refresh(const Napi::CallbackInfo& info);

  // counts(out: Float64Array(13)): watched sockets by kernel state number, as of the last refresh.
  Napi::Value Counts(const Napi::CallbackInfo& info) {
    double* out;
    size_t n;
    if (!GetTypedArray<double>(info, 0, napi_float64_array, "out", &out, &n)) return info.Env().Undefined();
    // Watches and releases since the last refresh (queued ones reach the table later than the
    // calls did: kernel-sockets.ts applies them in batches) are counted against its snapshot.
    if (countsStale_ && snapshot_->Size() > 0) Count();
    countsStale_ = false;
    for (size_t i = 0; i < n && i < kStates; i++) out[i] = counts_[i];
    return info.Env().Undefined();
  }

  // stateOf(tuple: Uint32Array): the kernel state number of that socket in the last snapshot, 0 if absent.
  Napi::Value StateOf(const Napi::CallbackInfo& info) {
    Tuple t;
    if (!TupleFromArgs(info, 0, &t)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), snapshot_->Get(t));
  }

  // inodeOf(tuple: Uint32Array): that socket's inode in the last snapshot; 0 if it has none, -1 if absent.
  Napi::Value InodeOf(const Napi::CallbackInfo& info) {
    Tuple t;
    if (!TupleFromArgs(info, 0, &t)) return info.Env().Undefined();
    const SocketMap::Entry* e = snapshot_->Find(t);
    return Napi::Number::New(info.Env(), e == nullptr ? -1.0 : static_cast<double>(e->inode));
  }

  Napi::Value GetSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), snapshot_->Size()); }
  Napi::Value GetWatched(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), watched_.Size()); }
  Napi::Value GetSource(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), source_); }

  void Forget(const std::pair<Tuple, double>& closed) {
    WatchedSet::Entry* w = watched_.Find(closed.first);
    // A tuple reused by a later socket (live again, or closed again later) stays.
    if (w != nullptr && !w->live && w->closedAt == closed.second) watched_.Erase(closed.first);
  }

  void Expire(double nowMs) {
    while (!closedOrder_.empty() && nowMs - closedOrder_.front().second > closedMemoryMs_) {
      Forget(closedOrder_.front());
      closedOrder_.pop_front();
    }
  }

  // Walk the smaller side: the kernel's table, or the watched tuples looked up in it.
  void Count() {
    for (double& c : counts_) c = 0;
    if (watched_.Size() <= snapshot_->Size()) {
      for (const auto& w : watched_.Entries()) counts_[snapshot_->Get(w.tuple)]++;
      counts_[0] = 0;  // not in the kernel's table
    } else {
      for (const auto& s : snapshot_->Entries()) {
        if (watched_.Contains(s.tuple)) counts_[s.state]++;
      }
    }
  }

  double closedMemoryMs_ = 0;
  size_t maxClosed_ = 0;
  bool forceProc_ = false;
  int boundFd_ = -1;  // a sock_diag socket of another network namespace, or -1
  bool refreshing_ = false;
  const char* source_ = "none";
  std::unordered_map<uint32_t, Tuple> ids_;
  WatchedSet watched_;
  std::deque<std::pair<Tuple, double>> closedOrder_;
  std::unique_ptr<SocketMap> snapshot_ = std::make_unique<SocketMap>();
  double counts_[kStates];
  bool countsStale_ = false;

  friend class RefreshWorker;
};

class RefreshWorker : public Napi::AsyncWorker {
 public:
  RefreshWorker(SocketTable* table, Napi::Object self, Napi::Function done, double nowMs, bool forceProc, int boundFd, size_t sizeHint)
      : Napi::AsyncWorker(done, "synfin:socket-table"), table_(table), nowMs_(nowMs), forceProc_(forceProc), boundFd_(boundFd) {
    self_ = Napi::Persistent(self);  // keeps the table alive until the worker completes
    fresh_ = std::make_unique<SocketMap>();
    fresh_->Reserve(sizeHint + sizeHint / 4 + 64);
  }

  void Execute() override {
    int err = forceProc_ ? ENOSYS : DumpSockDiag(fresh_.get(), boundFd_);
    if (err != 0 && boundFd_ >= 0) {
      // Another namespace's table: /proc/net/tcp would be ours, so no fallback.
      SetError(std::string("reading the TCP table of the other network namespace: sock_diag: ") + strerror(err));
    } else if (err != 0) {
      // No sock_diag for TCP here (no inet_diag/tcp_diag in this kernel, or a filter refuses
      // NETLINK_SOCK_DIAG): the text table, as ss(8) falls back to.
      fresh_->Clear();
      fromProc_ = true;
      int perr = ReadProc(fresh_.get());
      if (perr != 0) SetError(std::string("reading the kernel's TCP table: sock_diag: ") + strerror(err) + "; /proc/net/tcp: " + strerror(perr));
    }
  }

  void OnOK() override {
    table_->refreshing_ = false;
    table_->Install(std::move(fresh_), fromProc_, nowMs_);
    Callback().Call({Env().Null()});
  }

  void OnError(const Napi::Error& e) override {
    table_->refreshing_ = false;
    Callback().Call({e.Value()});
  }

 private:
  SocketTable* table_;
  Napi::ObjectReference self_;
  std::unique_ptr<SocketMap> fresh_;
  double nowMs_;
  bool forceProc_;
  int boundFd_;
  bool fromProc_ = false;
};

Napi::Value SocketTable::Refresh(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "refresh(nowMs, done)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (refreshing_) {
    Napi::Error::New(env, "a refresh is already under way").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  refreshing_ = true;
  auto* w = new RefreshWorker(this, info.This().As<Napi::Object>(), info[1].As<Napi::Function>(),
                              info[0].As<Napi::Number>().DoubleValue(), forceProc_, boundFd_, snapshot_->Size());
  w->Queue();
  return env.Undefined();
}

}  // namespace

void InitSocketTable(Napi::Env env, Napi::Object exports) {
  exports.Set("SocketTable", SocketTable::Define(env));
}

}  // namespace synfin
