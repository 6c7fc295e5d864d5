/*
 * Benchmark DTLS 1.2 server (OpenSSL, blocking UDP sockets, one thread per client).
 *
 *   dtls_server <port> <cert-chain.pem> <key.pem>
 *
 * Listens on UDP 127.0.0.1:<port> (0 picks a free port) and prints "LISTENING <port>" once ready.
 * Every ClientHello goes through DTLSv1_listen first (stateless cookie: HMAC-SHA256 of the
 * client's address under a random key, as src/dtls/cookies.ts does). A client that returns its
 * cookie gets its own socket, bound to the same address (SO_REUSEADDR) and connected to the
 * client, so the kernel hands it that client's datagrams, and a thread. After the handshake it
 * echoes every datagram until the client's close_notify (or 10 s without one). MTU 1200 (the
 * library's default), ECDHE-ECDSA-AES256-GCM-SHA384 unless BENCH_DTLS_CIPHERS (an OpenSSL cipher
 * list) says otherwise; the server's preference wins.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define MTU 1200
#define COOKIE_LENGTH 16
#define IDLE_SECONDS 10

static SSL_CTX *ctx;
static unsigned char cookie_secret[32];
static struct sockaddr_in local;

static void die(const char *what) {
  fprintf(stderr, "dtls_server: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* HMAC-SHA256(secret, peer address and port), cut to 16 bytes. */
static int cookie_of(SSL *ssl, unsigned char *out) {
  BIO_ADDR *peer = BIO_ADDR_new();
  if (peer == NULL) return 0;
  unsigned char raw[sizeof(struct in6_addr) + 2];
  size_t len = 0;
  int ok = BIO_dgram_get_peer(SSL_get_rbio(ssl), peer) > 0 &&
           BIO_ADDR_rawaddress(peer, raw, &len) && len <= sizeof(struct in6_addr);
  if (ok) {
    unsigned short port = BIO_ADDR_rawport(peer);
    memcpy(raw + len, &port, 2);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    ok = HMAC(EVP_sha256(), cookie_secret, sizeof cookie_secret, raw, len + 2, mac, &mac_len) !=
         NULL;
    if (ok) memcpy(out, mac, COOKIE_LENGTH);
  }
  BIO_ADDR_free(peer);
  return ok;
}

static int generate_cookie(SSL *ssl, unsigned char *cookie, unsigned int *cookie_len) {
  if (!cookie_of(ssl, cookie)) return 0;
  *cookie_len = COOKIE_LENGTH;
  return 1;
}

static int verify_cookie(SSL *ssl, const unsigned char *cookie, unsigned int cookie_len) {
  unsigned char expected[COOKIE_LENGTH];
  return cookie_len == COOKIE_LENGTH && cookie_of(ssl, expected) &&
         CRYPTO_memcmp(cookie, expected, COOKIE_LENGTH) == 0;
}

/* A UDP socket bound to the listening address, SO_REUSEADDR (the listener and every client's). */
static int bound_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
    perror("dtls_server: bind");
    exit(1);
  }
  return fd;
}

struct session {
  SSL *ssl;
  int fd;
};

static void *serve(void *arg) {
  struct session *s = arg;
  SSL *ssl = s->ssl;
  static __thread unsigned char buf[16384 + 2048];
  if (SSL_accept(ssl) == 1) {
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        if (SSL_write(ssl, buf, n) != n) break;
        continue;
      }
      if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) SSL_shutdown(ssl);
      break; /* close_notify, an error, or IDLE_SECONDS of silence */
    }
  } else if (getenv("BENCH_SERVER_LOG") != NULL) {
    fprintf(stderr, "dtls_server: handshake failed\n");
    ERR_print_errors_fp(stderr);
  }
  ERR_clear_error();
  SSL_free(ssl);
  close(s->fd);
  free(s);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s <port> <cert-chain.pem> <key.pem>\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (RAND_bytes(cookie_secret, sizeof cookie_secret) != 1) die("RAND_bytes");
  ctx = SSL_CTX_new(DTLS_server_method());
  const char *ciphers = getenv("BENCH_DTLS_CIPHERS");
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) ||
      SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
      !SSL_CTX_set_cipher_list(ctx, ciphers ? ciphers : "ECDHE-ECDSA-AES256-GCM-SHA384"))
    die("cannot set up the SSL_CTX");
  SSL_CTX_set_options(ctx, SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_QUERY_MTU |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_cookie_generate_cb(ctx, generate_cookie);
  SSL_CTX_set_cookie_verify_cb(ctx, verify_cookie);

  local.sin_family = AF_INET;
  local.sin_port = htons((unsigned short)atoi(argv[1]));
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int listen_fd = bound_socket();
  socklen_t local_len = sizeof local;
  getsockname(listen_fd, (struct sockaddr *)&local, &local_len); /* the port, if it was 0 */
  printf("LISTENING %d\n", ntohs(local.sin_port));
  fflush(stdout);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  BIO_ADDR *client = BIO_ADDR_new();
  if (client == NULL) die("BIO_ADDR_new");
  for (;;) {
    BIO *bio = BIO_new_dgram(listen_fd, BIO_NOCLOSE);
    SSL *ssl = SSL_new(ctx);
    if (bio == NULL || ssl == NULL) die("SSL_new");
    SSL_set_bio(ssl, bio, bio);
    SSL_set_mtu(ssl, MTU);
    /* 1: a ClientHello with a valid cookie (its peer in `client`); else try again. */
    while (DTLSv1_listen(ssl, client) <= 0) ERR_clear_error();
    int fd = bound_socket();
    struct sockaddr_in peer = {0};
    peer.sin_family = AF_INET;
    peer.sin_port = (unsigned short)BIO_ADDR_rawport(client);
    size_t len = sizeof peer.sin_addr;
    if (!BIO_ADDR_rawaddress(client, &peer.sin_addr, &len) ||
        connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
      close(fd);
      SSL_free(ssl);
      continue;
    }
    struct timeval idle = {IDLE_SECONDS, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    /* The session's own socket (the buffered ClientHello stays in the SSL). */
    BIO_set_fd(SSL_get_rbio(ssl), fd, BIO_NOCLOSE);
    BIO_ctrl(SSL_get_rbio(ssl), BIO_CTRL_DGRAM_SET_CONNECTED, 0, client);
    SSL_set_mtu(ssl, MTU);
    struct session *s = malloc(sizeof *s);
    if (s == NULL) die("malloc");
    s->ssl = ssl;
    s->fd = fd;
    pthread_t thread;
    if (pthread_create(&thread, &attr, serve, s) != 0) die("pthread_create");
  }
}
