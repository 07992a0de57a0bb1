/*
 * tun-floor: the least a relay that answers the app's SYN itself, only once its upstream connection
 * is accepted (synfin's deferred handshake), can cost on this machine: no JavaScript, no TCP stack,
 * no bookkeeping beyond one slot per client port. Its connect and first-byte latency, and its short
 * connections per second, are the floor of that design on the TUN path (issue 24: the connect row).
 *
 *   tun-floor DEVICE UPSTREAM_IPV4
 *
 * Opens TUN device DEVICE (IFF_TUN | IFF_NO_PI, created if missing), prints "ready", then for every
 * IPv4 TCP SYN read from it: a non-blocking connect() to UPSTREAM_IPV4 on the SYN's destination
 * port; once that connects (seen by TCP_INFO right after connect(2), as synfin looks, or by epoll),
 * a SYN-ACK (MSS option only) written to the device; whatever the
 * destination sends is written to the app as it arrives, its EOF as our FIN (with the last data
 * when the FIN has arrived by the time of the read), and the upstream socket is closed at EOF; the app's FIN is ACKed
 * and the slot freed. Everything else is ignored (no retransmission, no window: the benchmark's
 * greet server sends 6 bytes and closes; the TUN path loses nothing). One read(2) and one write(2)
 * per packet, as synfin. Not a relay for anything but that benchmark.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

enum { FREE = 0, CONNECTING, OPEN, UPSTREAM_DONE };

struct flow {
  int fd;       /* upstream socket, -1 once closed */
  int state;
  uint32_t app_addr, our_addr; /* network order */
  uint16_t app_port, our_port; /* network order */
  uint32_t app_nxt;            /* the app's next sequence number (RCV.NXT) */
  uint32_t our_nxt;            /* our next sequence number (SND.NXT) */
};

static struct flow flows[65536];     /* by the app's port (one app address in the benchmark) */
static int32_t port_of_fd[1 << 16];  /* upstream fd -> app port (host order) */
static int tun_fd, ep;
static struct in_addr upstream;
/* Dials answered within connect(2) / by a later epoll event: printed at exit (SIGTERM, SIGINT). */
static unsigned long answered_at_once, answered_later;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  return sum;
}

/* One IPv4 + TCP segment from us (our_addr:our_port) to the app, written to the device. */
static void send_segment(struct flow *f, uint8_t flags, const uint8_t *data, size_t len) {
  uint8_t pkt[2048];
  size_t opt = (flags & TH_SYN) ? 4 : 0;
  size_t thl = 20 + opt, total = 20 + thl + len;
  memset(pkt, 0, 20 + thl);
  pkt[0] = 0x45;
  pkt[2] = total >> 8, pkt[3] = total & 0xff;
  pkt[6] = 0x40; /* DF */
  pkt[8] = 64;
  pkt[9] = IPPROTO_TCP;
  memcpy(pkt + 12, &f->our_addr, 4);
  memcpy(pkt + 16, &f->app_addr, 4);
  uint16_t ipc = csum_fold(csum_add(0, pkt, 20));
  pkt[10] = ipc >> 8, pkt[11] = ipc & 0xff;
  uint8_t *t = pkt + 20;
  memcpy(t, &f->our_port, 2);
  memcpy(t + 2, &f->app_port, 2);
  uint32_t seq = htonl(f->our_nxt), ack = htonl(f->app_nxt);
  memcpy(t + 4, &seq, 4);
  memcpy(t + 8, &ack, 4);
  t[12] = (uint8_t)((thl / 4) << 4);
  t[13] = flags;
  t[14] = 0xff, t[15] = 0xff; /* window 65535, unscaled */
  if (opt) t[20] = 2, t[21] = 4, t[22] = 1460 >> 8, t[23] = 1460 & 0xff;
  if (len) memcpy(t + thl, data, len);
  uint32_t s = csum_add(0, pkt + 12, 8);
  s += IPPROTO_TCP + (uint32_t)(thl + len);
  s = csum_add(s, t, thl + len);
  uint16_t tc = csum_fold(s);
  t[16] = tc >> 8, t[17] = tc & 0xff;
  if (write(tun_fd, pkt, total) < 0 && errno != EAGAIN) perror("write tun");
  f->our_nxt += (uint32_t)len + ((flags & (TH_SYN | TH_FIN)) ? 1 : 0);
}

static void answer_syn(struct flow *f, int fd, int op);
static int established(int fd);

static void close_upstream(struct flow *f) {
  if (f->fd < 0) return;
  port_of_fd[f->fd] = -1;
  close(f->fd);
  f->fd = -1;
}

static void on_syn(const uint8_t *ip, const uint8_t *t) {
  uint16_t port = (uint16_t)(t[0] << 8 | t[1]);
  struct flow *f = &flows[port];
  if (f->state != FREE) {
    if (f->state == CONNECTING) return; /* a retransmitted SYN: the answer is on its way */
    close_upstream(f);
  }
  memcpy(&f->app_addr, ip + 12, 4);
  memcpy(&f->our_addr, ip + 16, 4);
  memcpy(&f->app_port, t, 2);
  memcpy(&f->our_port, t + 2, 2);
  uint32_t iseq;
  memcpy(&iseq, t + 4, 4);
  f->app_nxt = ntohl(iseq) + 1;
  f->our_nxt = (uint32_t)random();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || fd >= (1 << 16)) {
    perror("socket");
    if (fd >= 0) close(fd);
    return;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = upstream};
  memcpy(&sa.sin_port, &f->our_port, 2);
  f->fd = fd;
  port_of_fd[fd] = port;
  f->state = CONNECTING;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    send_segment(f, TH_RST | TH_ACK, NULL, 0);
    close_upstream(f);
    f->state = FREE;
    return;
  }
  /* A destination on this host usually answers within connect(2) itself (its SYN-ACK is handled in
   * the same softirq): then the SYN-ACK goes out now, with no epoll round (synfin does the same). */
  if (established(fd)) {
    answered_at_once++;
    answer_syn(f, fd, EPOLL_CTL_ADD);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void on_app_segment(const uint8_t *ip, size_t n) {
  size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP || n < ihl + 20) return;
  const uint8_t *t = ip + ihl;
  uint8_t flags = t[13];
  if ((flags & TH_SYN) && !(flags & TH_ACK)) {
    on_syn(ip, t);
    return;
  }
  struct flow *f = &flows[(uint16_t)(t[0] << 8 | t[1])];
  if (f->state == FREE) return;
  if (flags & TH_RST) {
    close_upstream(f);
    f->state = FREE;
    return;
  }
  if (flags & TH_FIN) {
    size_t thl = (size_t)(t[12] >> 4) * 4;
    size_t total = (size_t)(ip[2] << 8 | ip[3]);
    uint32_t seq;
    memcpy(&seq, t + 4, 4);
    f->app_nxt = ntohl(seq) + (uint32_t)(total - ihl - thl) + 1;
    send_segment(f, TH_ACK, NULL, 0);
    close_upstream(f);
    f->state = FREE;
  }
}

/* The upstream connection is established: the SYN-ACK to the app, and watch for the destination's data. */
static void answer_syn(struct flow *f, int fd, int op) {
  send_segment(f, TH_SYN | TH_ACK, NULL, 0);
  f->state = OPEN;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
  epoll_ctl(ep, op, fd, &ev);
}

static int established(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_ESTABLISHED;
}

static void on_upstream(int fd, uint32_t events) {
  int32_t port = port_of_fd[fd];
  if (port < 0) return;
  struct flow *f = &flows[port];
  if (f->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      send_segment(f, TH_RST | TH_ACK, NULL, 0);
      close_upstream(f);
      f->state = FREE;
      return;
    }
    answered_later++;
    answer_syn(f, fd, EPOLL_CTL_MOD);
    return;
  }
  /* EPOLLRDHUP: the destination's FIN is queued behind its data, so a read that does not fill the
   * buffer took everything: data and FIN share one segment, one read(2), as synfin does. */
  uint8_t buf[1400];
  ssize_t r = read(fd, buf, sizeof buf);
  if (r > 0 && (size_t)r < sizeof buf && (events & EPOLLRDHUP)) {
    send_segment(f, TH_PSH | TH_ACK | TH_FIN, buf, (size_t)r);
  } else if (r > 0) {
    send_segment(f, TH_PSH | TH_ACK, buf, (size_t)r);
    return; /* level-triggered: called again for the rest */
  } else if (r == 0) {
    send_segment(f, TH_FIN | TH_ACK, NULL, 0);
  } else if (errno == EAGAIN || errno == EINTR) {
    return;
  } else {
    send_segment(f, TH_RST | TH_ACK, NULL, 0);
    close_upstream(f);
    f->state = FREE;
    return;
  }
  close_upstream(f);
  f->state = UPSTREAM_DONE;
}

int main(int argc, char **argv) {
  if (argc != 3 || inet_pton(AF_INET, argv[2], &upstream) != 1) {
    fprintf(stderr, "usage: tun-floor DEVICE UPSTREAM_IPV4\n");
    return 2;
  }
  memset(port_of_fd, 0xff, sizeof port_of_fd);
  for (int i = 0; i < 65536; i++) flows[i].fd = -1;
  tun_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (tun_fd < 0) {
    perror("open /dev/net/tun");
    return 1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
  if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) {
    perror("TUNSETIFF");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event tev = {.events = EPOLLIN, .data.fd = tun_fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, tun_fd, &tev);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("ready\n");
  fflush(stdout);
  struct epoll_event evs[64];
  uint8_t pkt[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    if (stopping) {
      fprintf(stderr, "dials answered within connect(2): %lu, after an epoll wait: %lu\n", answered_at_once, answered_later);
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd != tun_fd) {
        on_upstream(fd, evs[i].events);
        continue;
      }
      for (;;) {
        ssize_t r = read(tun_fd, pkt, sizeof pkt);
        if (r <= 0) break;
        on_app_segment(pkt, (size_t)r);
      }
    }
  }
}
