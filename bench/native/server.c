/*
 * Benchmark TLS 1.3 server (OpenSSL, blocking sockets, one thread per connection from a pool).
 *
 *   server <port> <cert-chain.pem> <key.pem>
 *
 * Listens on 127.0.0.1:<port> (0 picks a free port) and prints "LISTENING <port>" once ready.
 * After the handshake the client sends one command line:
 *   BULK <n>\n    -> n bytes, then close_notify and close
 *   PING\n        -> "PONG\n", then close_notify and close
 *   ECHO <size>\n -> every byte received is written back until the client closes
 *   IDLE\n        -> nothing; the connection stays open until the client closes
 * Session tickets are off unless BENCH_SERVER_TICKETS=<n> asks for n per handshake (the benchmark
 * does when this server is the one measured, as OpenSSL's default server issues 2); clients never
 * resume, so every handshake is a full one either way. The server's cipher preference wins:
 * TLS_AES_256_GCM_SHA384 for every client unless BENCH_SERVER_CIPHERSUITES (an OpenSSL TLS 1.3
 * ciphersuites list, in preference order) says otherwise. BENCH_SERVER_LOG=1 logs the protocol,
 * cipher and command of every connection to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CHUNK (256 * 1024)
#define ECHO_BUF (64 * 1024)
#define THREAD_STACK (256 * 1024)
#define SPARE_WORKERS 4

static SSL_CTX *ctx;
static unsigned char bulk_data[CHUNK];
static int listen_fd;
static pthread_attr_t thread_attr;
static atomic_int idle_acceptors;
static int log_connections;

static void spawn_worker(void);

/* Sends close_notify, half-closes, then waits (bounded) for the client to close so that the
 * kernel never resets a connection whose last bytes the client has not read yet. */
static void finish(SSL *ssl, int fd) {
  SSL_shutdown(ssl);
  BIO_flush(SSL_get_wbio(ssl));
  shutdown(fd, SHUT_WR);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char sink[4096];
  while (recv(fd, sink, sizeof sink, 0) > 0) {
  }
}

/* Reads the command line; bytes after the newline are left in buf[*extra_at .. *len). */
static int read_command(SSL *ssl, char *buf, int cap, int *len, int *extra_at) {
  *len = 0;
  while (*len < cap) {
    int n = SSL_read(ssl, buf + *len, cap - *len);
    if (n <= 0) return -1;
    char *nl = memchr(buf + *len, '\n', (size_t)n);
    *len += n;
    if (nl) {
      *nl = '\0';
      *extra_at = (int)(nl - buf) + 1;
      return 0;
    }
  }
  return -1;
}

static int write_all(SSL *ssl, const void *p, int n) {
  const unsigned char *b = p;
  while (n > 0) {
    int w = SSL_write(ssl, b, n);
    if (w <= 0) return -1;
    b += w;
    n -= w;
  }
  return 0;
}

/* One connection, start to end; buf is the calling thread's ECHO_BUF-byte buffer. */
static void serve(int fd, char *buf) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1) goto out;
  int len, extra_at;
  if (read_command(ssl, buf, ECHO_BUF - 1, &len, &extra_at) != 0) goto out;
  if (log_connections)
    fprintf(stderr, "server: %s %s '%s'\n", SSL_get_version(ssl), SSL_get_cipher_name(ssl), buf);
  if (strncmp(buf, "BULK ", 5) == 0) {
    unsigned long long left = strtoull(buf + 5, NULL, 10);
    /* Records go through a buffer BIO so that each write(2) carries a whole 256 KiB chunk of
     * records instead of one 16 KiB record, and TCP_CORK keeps segments full: measured, roughly
     * half the server's kernel time of writing record by record. */
    BIO *wbio = BIO_new(BIO_f_buffer());
    BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);
    if (!wbio || !sock || BIO_set_write_buffer_size(wbio, CHUNK + 32 * 1024) != 1) {
      BIO_free(wbio);
      BIO_free(sock);
      goto out;
    }
    BIO_push(wbio, sock);
    SSL_set0_wbio(ssl, wbio); /* frees the old (shared) socket BIO's write reference */
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    while (left > 0) {
      int n = left < CHUNK ? (int)left : CHUNK;
      if (write_all(ssl, bulk_data, n) != 0 || BIO_flush(wbio) != 1) goto out;
      left -= (unsigned long long)n;
    }
    on = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    finish(ssl, fd);
  } else if (strcmp(buf, "PING") == 0) {
    if (write_all(ssl, "PONG\n", 5) != 0) goto out;
    finish(ssl, fd);
  } else if (strncmp(buf, "ECHO", 4) == 0) {
    if (len > extra_at && write_all(ssl, buf + extra_at, len - extra_at) != 0) goto out;
    for (;;) {
      int n = SSL_read(ssl, buf, ECHO_BUF);
      if (n <= 0) break;
      if (write_all(ssl, buf, n) != 0) break;
    }
  } else if (strcmp(buf, "IDLE") == 0) {
    while (SSL_read(ssl, buf, ECHO_BUF) > 0) {
    }
  } else {
    fprintf(stderr, "server: unknown command '%.40s'\n", buf);
  }
out:
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
}

/* Workers block in accept(2); whoever takes the last idle acceptor's place starts a new one, so
 * there is always someone accepting (1,000 IDLE connections = 1,000 threads), and sequential
 * connections reuse one thread instead of creating a thread per handshake. Surplus workers exit. */
static void *worker(void *unused) {
  (void)unused;
  char *buf = malloc(ECHO_BUF);
  if (!buf) {
    perror("server: malloc");
    exit(1);
  }
  for (;;) {
    atomic_fetch_add(&idle_acceptors, 1);
    int fd = accept(listen_fd, NULL, NULL);
    if (atomic_fetch_sub(&idle_acceptors, 1) == 1) spawn_worker();
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("server: accept");
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        usleep(10000);
        continue;
      }
      exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve(fd, buf);
    if (atomic_load(&idle_acceptors) >= SPARE_WORKERS) break;
  }
  free(buf);
  return NULL;
}

static void spawn_worker(void) {
  pthread_t t;
  int err = pthread_create(&t, &thread_attr, worker, NULL);
  if (err != 0) fprintf(stderr, "server: pthread_create: %s\n", strerror(err));
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <port> <cert-chain.pem> <key.pem>\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  memset(bulk_data, 'x', sizeof bulk_data);

  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
      SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "server: cannot set up the SSL_CTX\n");
    ERR_print_errors_fp(stderr);
    return 1;
  }
  /* Server preference, so that every client uses the same cipher (AES-256-GCM; BoringSSL in Bun
   * would otherwise pick AES-128-GCM, which is cheaper for both ends). */
  const char *suites = getenv("BENCH_SERVER_CIPHERSUITES");
  if (!suites) suites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
  if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
    fprintf(stderr, "server: bad BENCH_SERVER_CIPHERSUITES '%s'\n", suites);
    return 2;
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* Session tickets: none by default (the client side of the benchmark measures full handshakes
   * without ticket processing); BENCH_SERVER_TICKETS=<n> issues n per handshake, as OpenSSL's
   * default server (2) and every other server of the server side do. */
  const char *tickets = getenv("BENCH_SERVER_TICKETS");
  int num_tickets = tickets ? atoi(tickets) : 0;
  if (num_tickets <= 0) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  } else {
    SSL_CTX_set_num_tickets(ctx, (size_t)num_tickets);
  }
  SSL_CTX_set_read_ahead(ctx, 1); /* one recv(2) per record or more, not two (header, body) */

  log_connections = getenv("BENCH_SERVER_LOG") != NULL;
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof addr;
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(listen_fd, 4096) != 0 || getsockname(listen_fd, (struct sockaddr *)&addr, &alen) != 0) {
    perror("server: listen");
    return 1;
  }

  pthread_attr_init(&thread_attr);
  pthread_attr_setstacksize(&thread_attr, THREAD_STACK);
  pthread_attr_setdetachstate(&thread_attr, PTHREAD_CREATE_DETACHED);
  spawn_worker();
  printf("LISTENING %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  for (;;) pause();
}
