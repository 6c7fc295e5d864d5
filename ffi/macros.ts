/**
 * OpenSSL's macros, re-implemented as small functions over `SSL_ctrl`, `SSL_CTX_ctrl` and
 * `BIO_ctrl`: macros are not exported symbols, so FFI must call their expansion. The safe layer
 * (`src/`) calls these by their C names and never sees a ctrl number.
 *
 * Ctrl numbers are from the 3.0 headers (checked with a C program against /usr/include/openssl).
 *
 * @module
 */
import type { Pointer } from "./types.ts";
import type { cryptoSymbols, sslSymbols, Symbols } from "./symbols.ts";

// ssl.h
const SSL_CTRL_MODE = 33;
const SSL_CTRL_OPTIONS = 32;
const SSL_CTRL_SET_READ_AHEAD = 41;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE = 65;
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP = 70;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71;
const TLSEXT_STATUSTYPE_ocsp = 1;
const SSL_CTRL_CHAIN_CERT = 89;
const SSL_CTRL_GET_CHAIN_CERTS = 115;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;
const SSL_CTRL_SET_RETRY_VERIFY = 136;
const TLSEXT_NAMETYPE_host_name = 0;
// bio.h
const BIO_CTRL_PENDING = 10;
const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

type Lib = Symbols<typeof sslSymbols> & Symbols<typeof cryptoSymbols>;

/** A NUL-terminated UTF-8 copy of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The macros this library needs, bound to a loaded library. */
export interface Macros {
  /** `SSL_CTX_set_min_proto_version(ctx, version)`: 1 on success. */
  SSL_CTX_set_min_proto_version(ctx: Pointer, version: number): number;
  /** `SSL_CTX_set_max_proto_version(ctx, version)`: 1 on success; 0 = highest supported. */
  SSL_CTX_set_max_proto_version(ctx: Pointer, version: number): number;
  /** `SSL_CTX_set_mode(ctx, mode)`: returns the new mode bits. */
  SSL_CTX_set_mode(ctx: Pointer, mode: number): number;
  /**
   * `SSL_CTX_set_options(ctx, op)`: a real function in 3.0 (uint64_t), a macro over ctrl 32 in
   * 1.1.1 (unsigned long). Returns the new option bits.
   */
  SSL_CTX_set_options(ctx: Pointer, op: bigint): number;
  /** `SSL_CTX_set_read_ahead(ctx, yes)`: read as many records as the buffer holds at once. */
  SSL_CTX_set_read_ahead(ctx: Pointer, yes: number): number;
  /** `SSL_CTX_add1_chain_cert(ctx, x509)`: adds to the chain sent; takes its own reference. */
  SSL_CTX_add1_chain_cert(ctx: Pointer, x509: Pointer): number;
  /**
   * `SSL_CTX_get0_chain_certs(ctx, &sk)`: the extra chain certificates of the context's current
   * certificate (borrowed; `null` when there are none).
   */
  SSL_CTX_get0_chain_certs(ctx: Pointer): Pointer | null;
  /**
   * `SSL_CTX_set_tlsext_status_cb(ctx, cb)`: OCSP stapling. Clients: called with the staple (or
   * none); servers: called to provide one.
   */
  SSL_CTX_set_tlsext_status_cb(ctx: Pointer, cb: Pointer | null): number;
  /** `SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp)`: a client asks for a staple. */
  SSL_set_tlsext_status_type_ocsp(ssl: Pointer): number;
  /**
   * `SSL_get_tlsext_status_ocsp_resp(ssl, &p)`: the staple the server sent (borrowed), or null.
   */
  SSL_get_tlsext_status_ocsp_resp(ssl: Pointer): { data: Pointer; length: number } | null;
  /**
   * `SSL_set_tlsext_status_ocsp_resp(ssl, p, len)`: the staple a server sends. Takes ownership of
   * `p`, which must come from `OPENSSL_malloc` (OpenSSL frees it).
   */
  SSL_set_tlsext_status_ocsp_resp(ssl: Pointer, p: Pointer, length: number): number;
  /** `SSL_set_tlsext_host_name(ssl, name)`: sends SNI; 1 on success. */
  SSL_set_tlsext_host_name(ssl: Pointer, name: string): number;
  /**
   * `SSL_set_retry_verify(ssl)` (3.0.2+): from the verify callback, suspend the handshake with
   * `SSL_ERROR_WANT_RETRY_VERIFY`. 1 on success.
   */
  SSL_set_retry_verify(ssl: Pointer): number;
  /** `BIO_set_mem_eof_return(bio, v)`: what an empty memory BIO reads as (-1 = retry, 0 = EOF). */
  BIO_set_mem_eof_return(bio: Pointer, value: number): number;
  /** `BIO_pending(bio)`: bytes waiting to be read. */
  BIO_pending(bio: Pointer): number;
  /** `sk_num(sk)` for any `STACK_OF(T)` (0 for NULL, where C gives -1). */
  sk_num(sk: Pointer | null): number;
  /** `sk_value(sk, i)` for any `STACK_OF(T)`. */
  sk_value(sk: Pointer, i: number): Pointer | null;
  /** `OPENSSL_malloc(n)`: memory OpenSSL may later free itself. */
  OPENSSL_malloc(n: number): Pointer | null;
  /** `OPENSSL_free(p)`. */
  OPENSSL_free(p: Pointer | null): void;
}

/** Builds the {@link Macros} over a loaded library. */
export function createMacros(lib: Lib, fromAddress: (a: bigint) => Pointer | null): Macros {
  const sslCtxOptions = lib.SSL_CTX_set_options_fn;
  return {
    SSL_CTX_set_min_proto_version: (ctx, v) =>
      lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, v, null),
    SSL_CTX_set_max_proto_version: (ctx, v) =>
      lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, v, null),
    SSL_CTX_set_mode: (ctx, mode) => lib.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, mode, null),
    SSL_CTX_set_options: (ctx, op) =>
      sslCtxOptions !== null
        ? sslCtxOptions(ctx, op)
        : lib.SSL_CTX_ctrl(ctx, SSL_CTRL_OPTIONS, op, null),
    SSL_CTX_set_read_ahead: (ctx, yes) => lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, yes, null),
    SSL_CTX_add1_chain_cert: (ctx, x509) => lib.SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, x509),
    SSL_CTX_get0_chain_certs: (ctx) => {
      const cell = new BigUint64Array(1); // STACK_OF(X509) **
      if (lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_GET_CHAIN_CERTS, 0, cell) !== 1) return null;
      return fromAddress(cell[0]!);
    },
    SSL_CTX_set_tlsext_status_cb: (ctx, cb) =>
      lib.SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB, cb),
    SSL_set_tlsext_status_type_ocsp: (ssl) =>
      lib.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE, TLSEXT_STATUSTYPE_ocsp, null),
    SSL_get_tlsext_status_ocsp_resp: (ssl) => {
      const cell = new BigUint64Array(1); // unsigned char **
      const length = lib.SSL_ctrl_buf(ssl, SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP, 0, cell);
      const data = fromAddress(cell[0]!);
      return data === null || length <= 0 ? null : { data, length };
    },
    SSL_set_tlsext_status_ocsp_resp: (ssl, p, length) =>
      lib.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, length, p),
    SSL_set_tlsext_host_name: (ssl, name) =>
      lib.SSL_ctrl_buf(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, cString(name)),
    SSL_set_retry_verify: (ssl) => lib.SSL_ctrl(ssl, SSL_CTRL_SET_RETRY_VERIFY, 0, null),
    BIO_set_mem_eof_return: (bio, v) => lib.BIO_ctrl(bio, BIO_C_SET_BUF_MEM_EOF_RETURN, v, null),
    BIO_pending: (bio) => lib.BIO_ctrl(bio, BIO_CTRL_PENDING, 0, null),
    sk_num: (sk) => (sk === null ? 0 : Math.max(0, lib.OPENSSL_sk_num(sk))),
    sk_value: (sk, i) => lib.OPENSSL_sk_value(sk, i),
    OPENSSL_malloc: (n) => lib.CRYPTO_malloc(n, null, 0),
    OPENSSL_free: (p) => lib.CRYPTO_free(p, null, 0),
  };
}
