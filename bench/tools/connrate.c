/*
 * connrate: short TCP connections as fast as they go, with connect latency.
 *
 *   connrate HOST PORT SECONDS CONCURRENCY [PAYLOAD_BYTES] [echo|eof]
 *
 * Keeps CONCURRENCY connections in flight. Mode echo (default, against `tcpserv PORT echo`): each
 * connection does a non-blocking connect(), then (once writable) sends PAYLOAD_BYTES, reads the
 * server's reply, close() (the client closes first, so the client's kernel keeps the TIME-WAIT
 * and, with net.ipv4.tcp_tw_reuse=1 and a narrow ip_local_port_range, reuses those ports for new
 * connections). Mode eof (against `tcpserv PORT greet`): the client sends nothing, reads until the
 * server closes (at least PAYLOAD_BYTES must arrive), then closes: the server closes first.
 * New connections start for SECONDS; then the ones in flight get up to 5 s to finish and any
 * left count as "timeout". Prints one JSON object: counts, errors by errno name, rate, and
 * percentiles (µs) of the connect latency (connect() to writable) and of the first-byte latency
 * (connect() to the first byte of the server's reply).
 * With CONNRATE_SAMPLES=FILE in the environment, every sample is also written to FILE, one line
 * each: "c|f START_US LATENCY_US", START_US the connect() call on CLOCK_MONOTONIC (the clock of
 * every process on the machine, so samples can be lined up with another program's events).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum phase { IDLE, CONNECTING, WAITING_REPLY };

struct slot {
  int fd;
  enum phase phase;
  double started; /* seconds, CLOCK_MONOTONIC */
  size_t got;
  int got_first;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Failures by errno (index errno, 0..255) plus "timeout" and "short_reply". */
static unsigned long err_count[256];
static unsigned long timeouts, short_replies;

struct samples {
  float *us;
  size_t n, cap;
};
static struct samples connect_lat, first_byte_lat;
static FILE *sample_file;

static void trace_sample(char kind, double started, double us) {
  if (sample_file) fprintf(sample_file, "%c %.1f %.1f\n", kind, started * 1e6, us);
}

static void add_latency(struct samples *s, double us) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1 << 16;
    s->us = realloc(s->us, s->cap * sizeof *s->us);
    if (!s->us) { perror("realloc"); exit(1); }
  }
  s->us[s->n++] = (float)us;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double pct(const struct samples *s, double p) {
  if (s->n == 0) return 0;
  size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
  return s->us[i];
}

static void print_latency(const char *name, struct samples *s) {
  qsort(s->us, s->n, sizeof *s->us, cmp_float);
  printf("\"%s\":{\"count\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},", name, s->n,
         pct(s, 0.5), pct(s, 0.9), pct(s, 0.99), pct(s, 0.999), s->n ? s->us[s->n - 1] : 0.0);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: connrate HOST PORT SECONDS CONCURRENCY [PAYLOAD_BYTES] [echo|eof]\n");
    return 2;
  }
  struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", argv[1]); return 2; }
  double seconds = atof(argv[3]);
  int conc = atoi(argv[4]);
  size_t payload = argc > 5 ? (size_t)atoi(argv[5]) : 64;
  int eof_mode = argc > 6 && strcmp(argv[6], "eof") == 0;
  if (argc > 6 && !eof_mode && strcmp(argv[6], "echo") != 0) { fprintf(stderr, "mode must be echo or eof\n"); return 2; }
  if (conc < 1 || conc > 10000 || payload < 1 || payload > 4096) { fprintf(stderr, "bad arguments\n"); return 2; }

  const char *sample_path = getenv("CONNRATE_SAMPLES");
  if (sample_path && *sample_path) {
    sample_file = fopen(sample_path, "w");
    if (!sample_file) { perror(sample_path); return 1; }
  }
  struct rlimit rl = { 65536, 65536 };
  setrlimit(RLIMIT_NOFILE, &rl);

  char msg[4096], buf[4096];
  memset(msg, 'x', payload);
  int ep = epoll_create1(0);
  struct slot *slots = calloc((size_t)conc, sizeof *slots);
  for (int i = 0; i < conc; i++) slots[i].fd = -1;
  unsigned long ok = 0, failed = 0, started = 0;

  double t0 = now_s(), deadline = t0 + seconds, hard_end = deadline + 5.0;
  int in_flight = 0;
  struct epoll_event evs[256];

  for (;;) {
    double t = now_s();
    /* Start new connections while inside the measuring window. */
    for (int i = 0; i < conc && t < deadline; i++) {
      struct slot *s = &slots[i];
      if (s->phase != IDLE) continue;
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) { perror("socket"); return 1; }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      s->fd = fd;
      s->got = 0;
      s->got_first = 0;
      s->started = now_s();
      started++;
      int rc = connect(fd, (struct sockaddr *)&dst, sizeof dst);
      if (rc < 0 && errno != EINPROGRESS) {
        err_count[errno & 255]++;
        failed++;
        close(fd);
        s->fd = -1;
        /* Port exhaustion and the like: do not spin. */
        struct timespec pause = { 0, 1000000 };
        nanosleep(&pause, NULL);
        continue;
      }
      s->phase = CONNECTING;
      in_flight++;
      struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    if (t >= deadline && in_flight == 0) break;
    if (t >= hard_end) {
      for (int i = 0; i < conc; i++) if (slots[i].phase != IDLE) { timeouts++; failed++; close(slots[i].fd); slots[i].phase = IDLE; }
      break;
    }
    int n = epoll_wait(ep, evs, 256, 50);
    for (int k = 0; k < n; k++) {
      struct slot *s = &slots[evs[k].data.u32];
      int fd = s->fd;
      if (s->phase == CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0) {
          err_count[soerr & 255]++;
          failed++;
          goto done;
        }
        double connect_us = (now_s() - s->started) * 1e6;
        add_latency(&connect_lat, connect_us);
        trace_sample('c', s->started, connect_us);
        if (!eof_mode && write(fd, msg, payload) != (ssize_t)payload) {
          err_count[errno & 255]++;
          failed++;
          goto done;
        }
        s->phase = WAITING_REPLY;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[k].data.u32 };
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        continue;
      }
      /* WAITING_REPLY: echo: the server answers with as many bytes as it got; eof: until it closes. */
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        if (!s->got_first) {
          s->got_first = 1;
          double fb_us = (now_s() - s->started) * 1e6;
          add_latency(&first_byte_lat, fb_us);
          trace_sample('f', s->started, fb_us);
        }
        s->got += (size_t)r;
        if (eof_mode || s->got < payload) continue;
        ok++;
        goto done;
      }
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r == 0 && eof_mode && s->got >= payload) {
        ok++;
        goto done;
      }
      if (r < 0) err_count[errno & 255]++;
      else short_replies++;
      failed++;
    done:
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      close(fd);
      s->fd = -1;
      s->phase = IDLE;
      in_flight--;
    }
  }
  double elapsed = now_s() - t0;
  printf("{\"started\":%lu,\"ok\":%lu,\"failed\":%lu,\"seconds\":%.3f,\"rate\":%.1f,", started, ok, failed, elapsed,
         (double)ok / (elapsed < seconds ? elapsed : seconds));
  print_latency("connectUs", &connect_lat);
  print_latency("firstByteUs", &first_byte_lat);
  printf("\"errors\":{");
  int first = 1;
  for (int e = 0; e < 256; e++) {
    if (!err_count[e]) continue;
    const char *name = strerrorname_np(e);
    printf("%s\"%s\":%lu", first ? "" : ",", name ? name : "errno", err_count[e]);
    first = 0;
  }
  if (timeouts) { printf("%s\"timeout\":%lu", first ? "" : ",", timeouts); first = 0; }
  if (short_replies) { printf("%s\"short_reply\":%lu", first ? "" : ",", short_replies); first = 0; }
  printf("}}\n");
  if (sample_file) fclose(sample_file);
  return 0;
}
