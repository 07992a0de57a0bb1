/*
 * tcpserv: the benchmark's plain TCP server (runs in the server namespace).
 *
 *   tcpserv PORT echo   echo every byte back; close when the client closes (connection rate)
 *   tcpserv PORT hold   accept and keep every connection, reading and discarding (idle connections)
 *   tcpserv PORT greet  write "hello\n" to every connection it accepts and close it at once: the
 *                       server closes first (short connections; the first-byte latency)
 *
 * Single-threaded epoll. On SIGTERM/SIGINT prints one JSON line: accepted, open now, closed by
 * the peer normally, reset or failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: tcpserv PORT echo|hold|greet\n"); return 2; }
  int echo = strcmp(argv[2], "echo") == 0;
  int greet = strcmp(argv[2], "greet") == 0;
  if (!echo && !greet && strcmp(argv[2], "hold") != 0) { fprintf(stderr, "mode must be echo, hold or greet\n"); return 2; }
  struct rlimit rl = { 65536, 65536 };
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) { rl.rlim_cur = rl.rlim_max = 20000; setrlimit(RLIMIT_NOFILE, &rl); }
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4096) != 0) { perror("bind/listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("listening %s\n", argv[1]);
  fflush(stdout);

  unsigned long accepted = 0, open = 0, closed = 0, reset = 0;
  char buf[65536];
  struct epoll_event evs[512];
  while (!stop) {
    int n = epoll_wait(ep, evs, 512, 200);
    for (int k = 0; k < n; k++) {
      int fd = evs[k].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          accepted++;
          if (greet) {
            /* The client sends nothing, so close() sends a FIN (not a RST) after the greeting. */
            if (write(c, "hello\n", 6) == 6) closed++;
            else reset++;
            close(c);
            continue;
          }
          open++;
          struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        if (echo) (void)!write(fd, buf, (size_t)r); /* replies are small: the socket buffer takes them */
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r == 0) closed++;
      else reset++;
      open--;
      close(fd);
    }
  }
  printf("{\"accepted\":%lu,\"open\":%lu,\"closed\":%lu,\"reset\":%lu}\n", accepted, open, closed, reset);
  return 0;
}
