/*
 * Benchmark client, the native limit (OpenSSL, blocking sockets, one thread).
 *
 *   client <work> <port> <ca.pem> [args]
 *
 * Works:
 *   bulk <bytes>          BULK <bytes>; MB/s (10^6 bytes) from the command to the clean EOF
 *   handshakes <seconds> [line]
 *                         sequential new TCP connection + full handshake + PING/PONG + close;
 *                         [line] replaces PING (`openssl s_server -rev` answers GNOP with PONG)
 *   rtt <seconds> <size>  ECHO <size> on one connection; write size bytes, read size bytes back
 *   idle <count>          count connections (handshake + IDLE), then count more, all kept open:
 *                         RSS growth per connection over the second batch ("first": the first)
 *   drain <bytes>         (server check, not a client figure) BULK <bytes>, then count the raw
 *                         ciphertext off the socket without decrypting it; MB/s of ciphertext
 *
 * Connects to 127.0.0.1 with SNI "localhost", verifies the chain against <ca.pem> and the name
 * "localhost". Never resumes a session. Prints one JSON line:
 *   {"work":"bulk","value":1234.5,"unit":"MB/s","cpu":0.8,"cipher":"...","tickets":0}
 * with the CPU seconds of the work, the last connection's cipher and how many session tickets its
 * server sent (counted, never used).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE (256 * 1024)
#define WARM_UP 0.3

static SSL_CTX *ctx;
static int port;
static const char *work;
static unsigned char buf[BUF_SIZE];
static const char *last_cipher = "none";
static int tickets; /* session tickets received on the current connection */

static void die(const char *what) {
  fprintf(stderr, "client: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process's CPU seconds so far (user + system). */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
static double cpu_baseline = 0;

/* idle: the malloc heap in use per connection (OpenSSL's allocations), or -1 (other works). */
static double native_per_conn = -1;
/* idle: the RSS growth per connection over the first batch (with the one-off costs). */
static double first_per_conn = -1;
static long rss_start, rss_before;
static size_t heap_before;

static void report(double value, const char *unit) {
  /* CPU seconds since the baseline (the transfer only): steadier than wall time. */
  printf("{\"work\":\"%s\",\"value\":%.1f,\"unit\":\"%s\",\"cpu\":%.3f,\"cipher\":\"%s\","
         "\"tickets\":%d",
         work, value, unit, cpu_seconds() - cpu_baseline, last_cipher, tickets);
  if (native_per_conn >= 0) printf(",\"native\":%.1f", native_per_conn);
  if (first_per_conn >= 0) printf(",\"first\":%.1f", first_per_conn);
  printf("}\n");
  fflush(stdout);
}

/* New TCP connection + verified TLS 1.3 handshake. */
static SSL *open_tls(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("client: connect");
    exit(1);
  }
  SSL *ssl = SSL_new(ctx);
  if (!ssl || !SSL_set_fd(ssl, fd) || !SSL_set_tlsext_host_name(ssl, "localhost") ||
      !SSL_set1_host(ssl, "localhost"))
    die("SSL_new");
  tickets = 0;
  if (SSL_connect(ssl) != 1) die("handshake failed");
  last_cipher = SSL_get_cipher_name(ssl); /* a static string */
  return ssl;
}

static void close_tls(SSL *ssl) {
  int fd = SSL_get_fd(ssl);
  SSL_free(ssl);
  close(fd);
}

static void write_all(SSL *ssl, const void *p, int n) {
  const unsigned char *b = p;
  while (n > 0) {
    int w = SSL_write(ssl, b, n);
    if (w <= 0) die("SSL_write");
    b += w;
    n -= w;
  }
}

static void read_exactly(SSL *ssl, unsigned char *p, int n) {
  while (n > 0) {
    int r = SSL_read(ssl, p, n);
    if (r <= 0) die("unexpected EOF or error");
    p += r;
    n -= r;
  }
}

static void command(SSL *ssl, const char *fmt, unsigned long long arg) {
  char line[64];
  int n = snprintf(line, sizeof line, fmt, arg);
  write_all(ssl, line, n);
}

static void bulk(unsigned long long bytes) {
  SSL *ssl = open_tls();
  double started = now();
  cpu_baseline = cpu_seconds(); /* CPU is counted from here: the transfer only */
  command(ssl, "BULK %llu\n", bytes);
  unsigned long long total = 0;
  for (;;) {
    int n = SSL_read(ssl, buf, BUF_SIZE);
    if (n > 0) {
      total += (unsigned long long)n;
      continue;
    }
    if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) break; /* close_notify */
    die("bulk: read error or EOF without close_notify");
  }
  double seconds = now() - started;
  close_tls(ssl);
  if (total != bytes) {
    fprintf(stderr, "client: received %llu of %llu bytes\n", total, bytes);
    exit(1);
  }
  report((double)bytes / seconds / 1e6, "MB/s");
}

static void drain(unsigned long long bytes) {
  SSL *ssl = open_tls();
  int fd = SSL_get_fd(ssl);
  double started = now();
  command(ssl, "BULK %llu\n", bytes);
  unsigned long long total = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, BUF_SIZE, 0);
    if (n <= 0) break;
    total += (unsigned long long)n;
  }
  double seconds = now() - started;
  close_tls(ssl);
  if (total < bytes) {
    fprintf(stderr, "client: received %llu bytes of ciphertext for %llu\n", total, bytes);
    exit(1);
  }
  report((double)total / seconds / 1e6, "MB/s");
}

/* Counts a session ticket; returning 0 lets OpenSSL drop it (the client never resumes). */
static int count_ticket(SSL *ssl, SSL_SESSION *session) {
  (void)ssl;
  (void)session;
  tickets++;
  return 0;
}

static char ping_line[64] = "PING\n";

static void one_handshake(void) {
  SSL *ssl = open_tls();
  write_all(ssl, ping_line, (int)strlen(ping_line));
  unsigned char pong[5];
  read_exactly(ssl, pong, 5);
  if (memcmp(pong, "PONG\n", 5) != 0) die("bad PONG");
  close_tls(ssl);
}

static void handshakes(double seconds) {
  double warm_until = now() + WARM_UP;
  while (now() < warm_until) one_handshake();
  long count = 0;
  double started = now(), end = started + seconds;
  while (now() < end) {
    one_handshake();
    count++;
  }
  report((double)count / (now() - started), "handshakes/s");
}

static void rtt(double seconds, int size) {
  if (size <= 0 || size > BUF_SIZE) die("bad size");
  SSL *ssl = open_tls();
  command(ssl, "ECHO %llu\n", (unsigned long long)size);
  unsigned char *message = malloc((size_t)size);
  if (!message) die("malloc");
  memset(message, 'a', (size_t)size);
  double warm_until = now() + WARM_UP;
  while (now() < warm_until) {
    write_all(ssl, message, size);
    read_exactly(ssl, buf, size);
  }
  long count = 0;
  double started = now(), end = started + seconds;
  while (now() < end) {
    write_all(ssl, message, size);
    read_exactly(ssl, buf, size);
    count++;
  }
  report((double)count / (now() - started), "round trips/s");
  free(message);
  close_tls(ssl);
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) die("/proc/self/statm");
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

static void idle(int count) {
  if (count <= 0) die("bad count");
  int total = 1 + 2 * count;
  SSL **conns = calloc((size_t)total, sizeof *conns);
  if (!conns) die("calloc");
  /* The protocol's two batches (bench/run.ts, "idle"): one-off costs land in the first. */
  for (int i = 0; i < total; i++) {
    if (i == 1) rss_start = rss_bytes();
    if (i == 1 + count) {
      rss_before = rss_bytes();
      heap_before = mallinfo2().uordblks;
    }
    conns[i] = open_tls();
    write_all(conns[i], "IDLE\n", 5);
  }
  long after = rss_bytes();
  native_per_conn = (double)(mallinfo2().uordblks - heap_before) / count;
  first_per_conn = (double)(rss_before - rss_start) / count;
  report((double)(after - rss_before) / count, "bytes/connection");
  for (int i = 0; i < total; i++) close_tls(conns[i]);
  free(conns);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: %s <work> <port> <ca.pem> [args]\n"
            "  bulk <bytes> | handshakes <seconds> [line] | rtt <seconds> <size> | idle <count>"
            " | drain <bytes>\n",
            argv[0]);
    return 2;
  }
  work = argv[1];
  port = atoi(argv[2]);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
      SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1)
    die("cannot set up the SSL_CTX");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_read_ahead(ctx, 1);
  /* No resumption: no session is ever set on a connection; new tickets are only counted. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, count_ticket);

  if (strcmp(work, "bulk") == 0) {
    bulk(strtoull(argv[4], NULL, 10));
  } else if (strcmp(work, "drain") == 0) {
    drain(strtoull(argv[4], NULL, 10));
  } else if (strcmp(work, "handshakes") == 0) {
    if (argc > 5 && snprintf(ping_line, sizeof ping_line, "%s\n", argv[5]) >= (int)sizeof ping_line)
      die("line too long");
    handshakes(atof(argv[4]));
  } else if (strcmp(work, "rtt") == 0) {
    rtt(atof(argv[4]), argc > 5 ? atoi(argv[5]) : 1024);
  } else if (strcmp(work, "idle") == 0) {
    idle(atoi(argv[4]));
  } else {
    fprintf(stderr, "client: unknown work '%s'\n", work);
    return 2;
  }
  SSL_CTX_free(ctx);
  return 0;
}
