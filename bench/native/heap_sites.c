/*
 * What OpenSSL keeps per idle client connection, by call site: the floor of every OpenSSL
 * binding's idle memory (bench/run.ts, "idle").
 *
 *   heap_sites <port> <ca.pem> <count> [renew]
 *
 * Opens one connection to warm up, then `count` connections to the benchmark's native server
 * (bench/native/server.c), each a verified TLS handshake (SNI and host name "localhost") over
 * memory BIOs, as the library drives OpenSSL (SSL_MODE_RELEASE_BUFFERS on), then `IDLE\n`, and
 * all kept open. With `renew` each then gets fresh memory BIOs, as the library gives them after
 * the handshake (a memory BIO's buffer never shrinks). OpenSSL's allocations go through
 * CRYPTO_set_mem_functions, which passes each one's source file and line: prints the bytes still
 * allocated per connection, in all and by call site (the largest first).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SITES 4096

/* One call site: its live bytes and allocations. */
struct site {
  const char *file;
  int line;
  long bytes;
  long count;
};
static struct site sites[MAX_SITES];
static int site_count;
static int tracking; /* only the measured connections' allocations are counted */

/* Each allocation carries its site and size in front of it. */
struct header {
  int site;
  size_t size;
  size_t pad; /* keeps the block 16-byte aligned */
};

static int site_of(const char *file, int line) {
  for (int i = 0; i < site_count; i++)
    if (sites[i].line == line && sites[i].file == file) return i;
  if (site_count == MAX_SITES) return MAX_SITES - 1; /* folded into the last */
  sites[site_count].file = file;
  sites[site_count].line = line;
  return site_count++;
}

static void *tracked_malloc(size_t size, const char *file, int line) {
  struct header *h = malloc(sizeof *h + size);
  if (h == NULL) return NULL;
  h->site = tracking ? site_of(file, line) : -1;
  h->size = size;
  if (h->site >= 0) {
    sites[h->site].bytes += (long)size;
    sites[h->site].count++;
  }
  return h + 1;
}

static void tracked_free(void *p, const char *file, int line) {
  (void)file;
  (void)line;
  if (p == NULL) return;
  struct header *h = (struct header *)p - 1;
  if (h->site >= 0) {
    sites[h->site].bytes -= (long)h->size;
    sites[h->site].count--;
  }
  free(h);
}

static void *tracked_realloc(void *p, size_t size, const char *file, int line) {
  if (p == NULL) return tracked_malloc(size, file, line);
  if (size == 0) {
    tracked_free(p, file, line);
    return NULL;
  }
  struct header *h = (struct header *)p - 1;
  int site = h->site;
  size_t old = h->size;
  struct header *moved = realloc(h, sizeof *moved + size);
  if (moved == NULL) return NULL;
  if (site >= 0) sites[site].bytes += (long)size - (long)old;
  moved->size = size;
  return moved + 1;
}

static void die(const char *what) {
  fprintf(stderr, "heap_sites: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* Sends what OpenSSL wrote to the write BIO. */
static void flush(BIO *wbio, int fd) {
  unsigned char buf[16384];
  int n;
  while ((n = BIO_read(wbio, buf, sizeof buf)) > 0)
    if (write(fd, buf, (size_t)n) != n) die("short write");
}

static SSL *open_idle(SSL_CTX *ctx, int port, int renew, int *fd_out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  *fd_out = fd;
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
  SSL *ssl = SSL_new(ctx);
  BIO *rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(BIO_s_mem());
  if (ssl == NULL || rbio == NULL || wbio == NULL) die("SSL_new");
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  if (!SSL_set_tlsext_host_name(ssl, "localhost") || !SSL_set1_host(ssl, "localhost"))
    die("SSL_set1_host");
  unsigned char buf[16384];
  for (;;) {
    int r = SSL_do_handshake(ssl);
    flush(wbio, fd);
    if (r == 1) break;
    if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) die("handshake failed");
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) die("end of stream in the handshake");
    BIO_write(rbio, buf, (int)n);
  }
  if (SSL_write(ssl, "IDLE\n", 5) != 5) die("SSL_write");
  flush(wbio, fd);
  if (renew) SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem())); /* frees the old */
  return ssl;
}

static int by_bytes(const void *a, const void *b) {
  long x = ((const struct site *)a)->bytes, y = ((const struct site *)b)->bytes;
  return (y > x) - (y < x);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: heap_sites <port> <ca.pem> <count> [renew]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int count = atoi(argv[3]);
  int renew = argc > 4 && strcmp(argv[4], "renew") == 0;
  if (count <= 0) die("bad count");
  if (!CRYPTO_set_mem_functions(tracked_malloc, tracked_realloc, tracked_free))
    die("CRYPTO_set_mem_functions (must come before OpenSSL's first allocation)");
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[2], NULL) != 1) die("the CA file");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL **conns = calloc((size_t)count + 1, sizeof *conns);
  int *fds = calloc((size_t)count + 1, sizeof *fds);
  if (conns == NULL || fds == NULL) die("calloc");
  for (int i = 0; i <= count; i++) {
    tracking = i > 0; /* the first warms up (the trust store, method tables) */
    conns[i] = open_idle(ctx, port, renew, &fds[i]);
  }
  tracking = 0;
  long total = 0;
  for (int i = 0; i < site_count; i++) total += sites[i].bytes;
  qsort(sites, (size_t)site_count, sizeof *sites, by_bytes);
  printf("%s, %d connections%s: %.0f bytes live per connection\n", OpenSSL_version(OPENSSL_VERSION),
         count, renew ? ", memory BIOs renewed" : "", (double)total / count);
  for (int i = 0; i < site_count && i < 25; i++) {
    if (sites[i].bytes <= 0) break;
    printf("%8.0f bytes in %5.2f allocations  %s:%d\n", (double)sites[i].bytes / count,
           (double)sites[i].count / count, sites[i].file, sites[i].line);
  }
  for (int i = 0; i <= count; i++) {
    SSL_free(conns[i]);
    close(fds[i]);
  }
  free(conns);
  free(fds);
  SSL_CTX_free(ctx);
  return 0;
}
