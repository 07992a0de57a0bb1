/*
 * nfq-impair: the kernel baseline's equivalent of synfin's --impair (src/stack/fault.ts): seeded
 * loss and a fixed one-way delay, applied by holding NFQUEUE verdicts in userspace (this kernel has
 * no netem). Two queues, one per direction, each with its own PRNG, like synfin's ImpairedRx and
 * ImpairedTx:
 *
 *   nfq-impair OUT_QUEUE IN_QUEUE LOSS DELAY_MS SEED
 *
 * The queues ask for whole GSO packets (NFQA_CFG_F_GSO), so a "packet" is what the sending stack
 * hands to its device, as it is for synfin's injector on the TUN device. Each packet is dropped
 * with probability LOSS (verdict NF_DROP) or accepted DELAY_MS later (verdicts are issued in FIFO
 * order: a fixed delay keeps the order). On SIGTERM/SIGINT prints one JSON line of counters.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif
#define RING 65536 /* packets held per direction at most (power of two) */

struct direction {
  struct nfq_q_handle *qh;
  uint32_t rng;
  uint32_t ids[RING];
  double due[RING];
  unsigned head, count;
  unsigned long passed, dropped, overflow;
};

static double loss, delay_s;
static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mulberry32, the same generator family as synfin's SeededRandom. */
static double next_random(uint32_t *state) {
  uint32_t t = (*state += 0x6d2b79f5u);
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (double)(t ^ (t >> 14)) / 4294967296.0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
  (void)msg;
  struct direction *d = data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (loss > 0 && next_random(&d->rng) < loss) {
    d->dropped++;
    return nfq_set_verdict(qh, id, NF_DROP, 0, NULL);
  }
  if (delay_s <= 0 || d->count == RING) {
    if (d->count == RING) d->overflow++;
    d->passed++;
    return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
  }
  unsigned slot = (d->head + d->count) & (RING - 1);
  d->ids[slot] = id;
  d->due[slot] = now_s() + delay_s;
  d->count++;
  return 0;
}

static void release(struct direction *d, double now) {
  while (d->count > 0 && d->due[d->head] <= now) {
    nfq_set_verdict(d->qh, d->ids[d->head], NF_ACCEPT, 0, NULL);
    d->passed++;
    d->head = (d->head + 1) & (RING - 1);
    d->count--;
  }
}

static struct direction *open_queue(struct nfq_handle *h, int num, uint32_t seed) {
  struct direction *d = calloc(1, sizeof *d);
  d->rng = seed;
  d->qh = nfq_create_queue(h, (uint16_t)num, on_packet, d);
  if (d->qh == NULL) { fprintf(stderr, "nfq_create_queue %d: %s\n", num, strerror(errno)); exit(1); }
  if (nfq_set_mode(d->qh, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); exit(1); }
  nfq_set_queue_maxlen(d->qh, RING);
  if (nfq_set_queue_flags(d->qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) { perror("nfq_set_queue_flags GSO"); exit(1); }
  return d;
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: nfq-impair OUT_QUEUE IN_QUEUE LOSS DELAY_MS SEED\n"); return 2; }
  loss = atof(argv[3]);
  delay_s = atof(argv[4]) / 1000.0;
  uint32_t seed = (uint32_t)strtoul(argv[5], NULL, 10);
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct nfq_handle *h = nfq_open();
  if (h == NULL) { perror("nfq_open"); return 1; }
  /* Seeds as synfin's --impair derives them: Tx (toward the app) seed ^ 0x5bd1e995, Rx seed + 1. */
  struct direction *out = open_queue(h, atoi(argv[1]), (seed + 1u));
  struct direction *in = open_queue(h, atoi(argv[2]), seed ^ 0x5bd1e995u);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 64u << 20);
  int fd = nfq_fd(h);
  int on = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
  printf("ready\n");
  fflush(stdout);

  char buf[65536] __attribute__((aligned));
  unsigned long recv_errors = 0;
  while (!stop) {
    double t = now_s();
    release(out, t);
    release(in, t);
    double next = 1e18;
    if (out->count) next = out->due[out->head];
    if (in->count && in->due[in->head] < next) next = in->due[in->head];
    int timeout_ms = next == 1e18 ? 100 : (int)((next - t) * 1000.0);
    if (timeout_ms < 0) timeout_ms = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) <= 0) continue;
    for (;;) {
      ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) recv_errors++;
        break;
      }
      nfq_handle_packet(h, buf, (int)r);
    }
  }
  /* Let everything still held through before the queues go away. */
  release(out, 1e18);
  release(in, 1e18);
  printf("{\"out\":{\"passed\":%lu,\"dropped\":%lu,\"overflow\":%lu},\"in\":{\"passed\":%lu,\"dropped\":%lu,\"overflow\":%lu},\"recvErrors\":%lu}\n",
         out->passed, out->dropped, out->overflow, in->passed, in->dropped, in->overflow, recv_errors);
  nfq_destroy_queue(out->qh);
  nfq_destroy_queue(in->qh);
  nfq_close(h);
  return 0;
}
