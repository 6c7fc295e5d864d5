/*
 * Benchmark DTLS 1.2 client, the native limit (OpenSSL, blocking UDP sockets, one thread).
 *
 *   dtls_client <work> <port> <ca.pem> [args]
 *
 * Works:
 *   handshakes <seconds> [line] [reply]
 *                           sequential new UDP socket + full handshake (with the cookie
 *                           exchange) + one datagram "<line>\n" answered by "<reply>\n" +
 *                           close_notify; line PING, reply = line (an echo) by default
 *   datagrams <seconds> <size>
 *                           one association; send a <size>-byte datagram, wait for its echo,
 *                           again: echoed datagrams per second
 *
 * Sends to 127.0.0.1 with SNI "localhost", verifies the chain against <ca.pem> and the name
 * "localhost", MTU 1200 (the library's default). Never resumes a session. Prints one JSON line:
 *   {"work":"handshakes","value":123.4,"unit":"handshakes/s","cpu":0.8,"cipher":"..."}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MTU 1200
#define WARM_UP 0.3

static SSL_CTX *ctx;
static int port;
static const char *work;
static unsigned char buf[16384 + 2048];
static const char *last_cipher = "none";

static void die(const char *what) {
  fprintf(stderr, "dtls_client: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
static double cpu_baseline = 0;

static void report(double value, const char *unit) {
  printf("{\"work\":\"%s\",\"value\":%.1f,\"unit\":\"%s\",\"cpu\":%.3f,\"cipher\":\"%s\"}\n", work,
         value, unit, cpu_seconds() - cpu_baseline, last_cipher);
  fflush(stdout);
}

/* A new connected UDP socket + verified DTLS 1.2 handshake. */
static SSL *open_dtls(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
  /* A lost datagram after the handshake would block forever: give up after 5 s. */
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  BIO *bio = BIO_new_dgram(fd, BIO_CLOSE);
  BIO_ADDR *peer = BIO_ADDR_new();
  struct in_addr loopback = {htonl(INADDR_LOOPBACK)};
  if (bio == NULL || peer == NULL ||
      !BIO_ADDR_rawmake(peer, AF_INET, &loopback, sizeof loopback, htons((unsigned short)port)))
    die("BIO_new_dgram");
  BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer);
  BIO_ADDR_free(peer);
  SSL *ssl = SSL_new(ctx);
  if (!ssl || !SSL_set_tlsext_host_name(ssl, "localhost") || !SSL_set1_host(ssl, "localhost"))
    die("SSL_new");
  SSL_set_bio(ssl, bio, bio);
  SSL_set_mtu(ssl, MTU);
  if (SSL_connect(ssl) != 1) die("handshake failed");
  last_cipher = SSL_get_cipher_name(ssl);
  return ssl;
}

/* close_notify (not waiting for the server's), then the socket (BIO_CLOSE) with the SSL. */
static void close_dtls(SSL *ssl) {
  SSL_shutdown(ssl);
  SSL_free(ssl);
}

static void exchange(SSL *ssl, const void *out, int n, const void *expect, int m) {
  if (SSL_write(ssl, out, n) != n) die("SSL_write");
  int r = SSL_read(ssl, buf, sizeof buf);
  if (r != m || memcmp(buf, expect, (size_t)m) != 0) die("no echo (or a wrong one)");
}

static char line[64] = "PING\n";
static char reply[64] = "PING\n";

static void one_handshake(void) {
  SSL *ssl = open_dtls();
  exchange(ssl, line, (int)strlen(line), reply, (int)strlen(reply));
  close_dtls(ssl);
}

static void handshakes(double seconds) {
  double warm_until = now() + WARM_UP;
  while (now() < warm_until) one_handshake();
  cpu_baseline = cpu_seconds();
  long count = 0;
  double started = now(), end = started + seconds;
  while (now() < end) {
    one_handshake();
    count++;
  }
  report((double)count / (now() - started), "handshakes/s");
}

static void datagrams(double seconds, int size) {
  if (size <= 0 || size > 16384) die("bad size");
  SSL *ssl = open_dtls();
  unsigned char *message = malloc((size_t)size);
  if (!message) die("malloc");
  memset(message, 'a', (size_t)size);
  double warm_until = now() + WARM_UP;
  while (now() < warm_until) exchange(ssl, message, size, message, size);
  cpu_baseline = cpu_seconds();
  long count = 0;
  double started = now(), end = started + seconds;
  while (now() < end) {
    exchange(ssl, message, size, message, size);
    count++;
  }
  report((double)count / (now() - started), "datagrams/s");
  free(message);
  close_dtls(ssl);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: %s <work> <port> <ca.pem> [args]\n"
            "  handshakes <seconds> [line] [reply] | datagrams <seconds> <size>\n",
            argv[0]);
    return 2;
  }
  work = argv[1];
  port = atoi(argv[2]);
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(DTLS_client_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) ||
      SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1)
    die("cannot set up the SSL_CTX");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  if (strcmp(work, "handshakes") == 0) {
    if (argc > 5 && snprintf(line, sizeof line, "%s\n", argv[5]) >= (int)sizeof line)
      die("line too long");
    const char *r = argc > 6 ? argv[6] : argc > 5 ? argv[5] : "PING";
    if (snprintf(reply, sizeof reply, "%s\n", r) >= (int)sizeof reply) die("reply too long");
    handshakes(atof(argv[4]));
  } else if (strcmp(work, "datagrams") == 0) {
    datagrams(atof(argv[4]), argc > 5 ? atoi(argv[5]) : 1024);
  } else {
    fprintf(stderr, "dtls_client: unknown work '%s'\n", work);
    return 2;
  }
  SSL_CTX_free(ctx);
  return 0;
}
