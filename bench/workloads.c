// Benchmark workloads: each times its own loop (CLOCK_MONOTONIC) and prints
// "elapsed_ns N" on stdout, so the tracer's start-up is not counted.
//   syscalls N          N read(2)s of 1 byte from /dev/zero
//   connect N PORT      N sequential TCP connects to 127.0.0.1:PORT, 1-byte request, close
//                       (the bench points it at the sink's one-thread epoll server: a thread per
//                       connection made the untraced loop 10-25x slower than its connects)
//   send N PORT         N send(2)s on one connected UDP socket
//   sendto N PORT       N sendto(2)s with an address on one bound UDP socket
//   sendmsg N PORT      N sendmsg(2)s with an address on one bound UDP socket (QUIC's pattern)
//   dns N PORT          N exchanges, each from a fresh UDP socket: sendto, recv (the resolver's)
//   bulk MB PORT        MB mebibytes over one TCP connection
//   pingpong N PORT     N exchanges of 100 bytes each way on one TCP connection to PORT+3
//                       (TCP_NODELAY): small packets, two a exchange, the per-packet costs of a
//                       capture
//   many N PORT [M]     N TCP connections to 127.0.0.1:PORT opened and kept open at once, then
//                       M (default 1,000) more connect()s timed one by one with those present
//                       (connect_p50_ns, connect_p99_ns; open_ns: the first N), then all closed
//                       with a reset (no TIME_WAIT left behind for the next round)
//   uring N             N io_uring_enter(2)s, each submitting a NOP, with 300 files open
//   churn N PORT RATE [EVERY]  N short TCP connections at RATE a second (0: at once), "made K"
//                       on stdout every EVERY (default 10,000)
//   sink PORT           (server) accept TCP connections and read them to EOF, forever; and
//                       answer every UDP datagram to PORT+1 (the dns workload's server); and
//                       on PORT+2 hold any number of connections in one epoll thread (many's
//                       server: a thread per connection would be 11,000 threads); and on
//                       PORT+3 echo what each connection sends (pingpong's server)
// With BENCH_WAIT_TRACER=1 in the environment a workload first waits (up to 20 s) until a
// tracer has attached to it, so attach mode is timed from the attach on.
// With BENCH_SECCOMP_ALLOW=1 a workload first installs a one-instruction allow-all seccomp
// filter (no tracer at all): the cost of seccomp's syscall entry path alone, the floor of any
// seccomp-filtered tracer.
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static void *drain(void *arg) {
  int fd = (int)(long)arg;
  char buf[1 << 16];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return NULL;
}

static int traced(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int pid = 0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "TracerPid:", 10)) pid = atoi(line + 10);
  if (f) fclose(f);
  return pid != 0;
}

static int allow_all_seccomp(void) {
  struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {1, &allow};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void wait_for_tracer(void) {
  for (int i = 0; i < 20000 && !traced(); i++) usleep(1000);
  usleep(100000);  // every thread seized and the capture settled
}

static void *echo_connection(void *arg) {
  int fd = (int)(long)arg;
  char buf[1 << 16];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0)
    if (write(fd, buf, (size_t)r) != r) break;
  close(fd);
  return NULL;
}

static void *tcp_echo(void *arg) {
  struct sockaddr_in a = loopback((int)(long)arg);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) return perror("echo"), NULL;
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    pthread_create(&t, NULL, echo_connection, (void *)(long)c);
    pthread_detach(t);
  }
  return NULL;
}

static void *udp_echo(void *arg) {
  int port = (int)(long)arg;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = loopback(port), from;
  if (bind(s, (struct sockaddr *)&a, sizeof a)) return perror("udp echo"), NULL;
  char buf[2048];
  for (;;) {
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n >= 0) sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
  return NULL;
}

// Enough file descriptors for `want` (root may raise the hard limit too).
static void raise_nofile(rlim_t want) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur >= want) return;
  struct rlimit up = {want, want > r.rlim_max ? want : r.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &up)) {
    up.rlim_cur = up.rlim_max = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &up);
  }
}

// many's server: accepts without limit and reads every connection to its end, in one thread.
static void *many_sink(void *arg) {
  int port = (int)(long)arg, one = 1;
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(port);
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096)) return perror("many sink"), NULL;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = s}, got[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, got, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = got[i].data.fd;
      if (fd == s) {
        int c;
        while ((c = accept4(s, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        if (errno == EMFILE || errno == ENFILE) perror("many sink: accept");
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) close(fd);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *what = argv[1];
  long n = atol(argv[2]);
  int port = argc > 3 ? atoi(argv[3]) : 0;
  if (!strcmp(what, "sink")) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback((int)n);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) return perror("sink"), 1;
    raise_nofile(65536);
    pthread_t echo, many, tcp;
    pthread_create(&echo, NULL, udp_echo, (void *)(long)(n + 1));
    pthread_create(&many, NULL, many_sink, (void *)(long)(n + 2));
    pthread_create(&tcp, NULL, tcp_echo, (void *)(long)(n + 3));
    printf("ready\n");
    fflush(stdout);
    for (;;) {
      int c = accept(s, NULL, NULL);
      if (c < 0) continue;
      pthread_t t;
      pthread_create(&t, NULL, drain, (void *)(long)c);
      pthread_detach(t);
    }
  }
  if (getenv("BENCH_WAIT_TRACER")) wait_for_tracer();
  if (getenv("BENCH_SECCOMP_ALLOW") && allow_all_seccomp()) return perror("seccomp"), 1;
  long long t0 = now_ns();
  if (!strcmp(what, "syscalls")) {
    int fd = open("/dev/zero", O_RDONLY);
    char c;
    for (long i = 0; i < n; i++)
      if (read(fd, &c, 1) != 1) return 1;
  } else if (!strcmp(what, "connect")) {
    struct sockaddr_in a = loopback(port);
    long long *each = calloc(n, sizeof *each);  // each connect() on its own: median and p99
    for (long i = 0; i < n; i++) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      long long c0 = now_ns();
      if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
      each[i] = now_ns() - c0;
      if (write(s, "x", 1) != 1) return 1;
      close(s);
    }
    qsort(each, n, sizeof *each, cmp_ll);
    printf("connect_p50_ns %lld\nconnect_p99_ns %lld\n", each[n / 2], each[n * 99 / 100]);
    free(each);
  } else if (!strcmp(what, "send") || !strcmp(what, "sendto")) {
    struct sockaddr_in a = loopback(port);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    char msg[32] = "bench";
    if (!strcmp(what, "send")) {
      if (connect(s, (struct sockaddr *)&a, sizeof a)) return 1;
      for (long i = 0; i < n; i++) send(s, msg, sizeof msg, 0);
    } else {
      struct sockaddr_in any = loopback(0);
      any.sin_addr.s_addr = htonl(INADDR_ANY);
      bind(s, (struct sockaddr *)&any, sizeof any);
      for (long i = 0; i < n; i++) sendto(s, msg, sizeof msg, 0, (struct sockaddr *)&a, sizeof a);
    }
  } else if (!strcmp(what, "sendmsg")) {
    struct sockaddr_in a = loopback(port), any = loopback(0);
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    bind(s, (struct sockaddr *)&any, sizeof any);
    char msg[32] = "bench";
    struct iovec iov = {msg, sizeof msg};
    struct msghdr mh = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1};
    for (long i = 0; i < n; i++) sendmsg(s, &mh, 0);
  } else if (!strcmp(what, "dns")) {
    struct sockaddr_in a = loopback(port);
    char q[40] = "query", r[512];
    struct timeval tv = {1, 0};
    for (long i = 0; i < n; i++) {
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (sendto(s, q, sizeof q, 0, (struct sockaddr *)&a, sizeof a) < 0) return perror("sendto"), 1;
      if (recv(s, r, sizeof r, 0) < 0) return perror("recv (is the echo server up?)"), 1;
      close(s);
    }
  } else if (!strcmp(what, "many")) {
    long m = argc > 4 ? atol(argv[4]) : 1000;
    raise_nofile((rlim_t)(n + m + 64));
    struct sockaddr_in a = loopback(port);
    int *fds = calloc(n + m, sizeof *fds);
    long long *each = calloc(m, sizeof *each);
    for (long i = 0; i < n; i++) {
      if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0) return perror("socket"), 1;
      if (connect(fds[i], (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
    }
    long long opened = now_ns() - t0;
    for (long i = 0; i < m; i++) {
      int s = fds[n + i] = socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0) return perror("socket"), 1;
      long long c0 = now_ns();
      if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
      each[i] = now_ns() - c0;
    }
    struct linger abort_close = {1, 0};
    for (long i = 0; i < n + m; i++) {
      setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
      close(fds[i]);
    }
    qsort(each, m, sizeof *each, cmp_ll);
    printf("open_ns %lld\nconnect_p50_ns %lld\nconnect_p99_ns %lld\n", opened, each[m / 2], each[m * 99 / 100]);
    free(each);
    free(fds);
  } else if (!strcmp(what, "uring")) {
    // uring N: N io_uring_enter calls, each submitting a NOP, with 300 files open: what a
    // program using io_uring pays per call under a tracer that looks at its fd table then.
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    int ring = (int)syscall(SYS_io_uring_setup, 8, &params);
    if (ring < 0) return perror("io_uring_setup"), 1;
    // the submission ring and its entries, mapped as liburing does (one NOP each time)
    size_t sq_len = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    struct io_uring_sqe *sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    size_t cq_len = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    if (sq == MAP_FAILED || sqes == MAP_FAILED || cq == MAP_FAILED) return perror("mmap"), 1;
    unsigned *sq_tail = (unsigned *)(sq + params.sq_off.tail), *sq_array = (unsigned *)(sq + params.sq_off.array);
    unsigned *cq_head = (unsigned *)(cq + params.cq_off.head);
    unsigned mask = *(unsigned *)(sq + params.sq_off.ring_mask);
    for (int i = 0; i < 300; i++) open("/dev/null", O_RDONLY);  // a program's files, pipes...
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
      unsigned tail = *sq_tail, slot = tail & mask;
      memset(&sqes[slot], 0, sizeof sqes[slot]);
      sqes[slot].opcode = IORING_OP_NOP;
      sq_array[slot] = slot;
      __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
      if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) != 1) return perror("io_uring_enter"), 1;
      __atomic_store_n(cq_head, *cq_head + 1, __ATOMIC_RELEASE);  // the NOP's completion, seen
    }
  } else if (!strcmp(what, "churn")) {
    // churn N PORT RATE: N short connections (connect, one byte, close) at RATE a second (0: as
    // fast as they go); "made K" on stdout every `every` connections, for the memory samples.
    long rate = argc > 4 ? atol(argv[4]) : 0;
    long every = argc > 5 ? atol(argv[5]) : 10000;
    struct sockaddr_in a = loopback(port);
    for (long i = 0; i < n; i++) {
      if (rate > 0) {
        long long due = t0 + i * 1000000000LL / rate;
        long long now = now_ns();
        if (due > now) {
          struct timespec d = {(time_t)((due - now) / 1000000000LL), (long)((due - now) % 1000000000LL)};
          nanosleep(&d, NULL);
        }
      }
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
      if (write(s, "x", 1) != 1) return 1;
      close(s);
      if ((i + 1) % every == 0) {
        printf("made %ld\n", i + 1);
        fflush(stdout);
      }
    }
  } else if (!strcmp(what, "bulk")) {
    struct sockaddr_in a = loopback(port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
    static char buf[1 << 16];
    long long left = n * 1024LL * 1024;
    while (left > 0) {
      ssize_t w = write(s, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
      if (w <= 0) return 1;
      left -= w;
    }
    close(s);
  } else if (!strcmp(what, "pingpong")) {
    struct sockaddr_in a = loopback(port + 3);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) return perror("connect"), 1;
    static char msg[100];
    for (long i = 0; i < n; i++) {
      if (write(s, msg, sizeof msg) != (ssize_t)sizeof msg) return 1;
      for (size_t got = 0; got < sizeof msg;) {
        ssize_t r = read(s, msg + got, sizeof msg - got);
        if (r <= 0) return 1;
        got += (size_t)r;
      }
    }
    close(s);
  } else {
    return 2;
  }
  printf("elapsed_ns %lld\n", now_ns() - t0);
  return 0;
}
