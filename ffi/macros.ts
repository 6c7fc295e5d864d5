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
const SSL_CTRL_SET_SESS_CACHE_MODE = 44;
const SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58;
const SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59;
const SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_TYPE = 65;
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_OCSP_RESP = 70;
const SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71;
const TLSEXT_STATUSTYPE_ocsp = 1;
const SSL_CTRL_CHAIN_CERT = 89;
const SSL_CTRL_SET_GROUPS_LIST = 92;
const SSL_CTRL_GET_NEGOTIATED_GROUP = 134;
const SSL_CTRL_GET_CHAIN_CERTS = 115;
const SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
const SSL_CTRL_SET_MAX_PROTO_VERSION = 124;
const SSL_CTRL_SET_DH_AUTO = 118;
const SSL_CTRL_SET_RETRY_VERIFY = 136;
const TLSEXT_NAMETYPE_host_name = 0;
// keying material, KeyUpdate, algorithms
const SSL_CTRL_SET_MAX_SEND_FRAGMENT = 52;
const SSL_CTRL_SET_SIGALGS_LIST = 98;
const SSL_CTRL_GET_PEER_SIGNATURE_NID = 108;
const SSL_CTRL_GET_EXTMS_SUPPORT = 122;
const SSL_CTRL_SET_MTU = 17;
// dtls1.h
const DTLS_CTRL_GET_TIMEOUT = 73;
const DTLS_CTRL_HANDLE_TIMEOUT = 74;
const DTLS_CTRL_SET_LINK_MTU = 120;
// bio.h
const BIO_CTRL_PENDING = 10;
const BIO_C_SET_BUF_MEM_EOF_RETURN = 130;

// core.h: OSSL_PARAM { const char *key; unsigned int data_type; void *data; size_t data_size;
// size_t return_size; } is 40 bytes on LP64.
const OSSL_PARAM_SIZE = 40;
const OSSL_PARAM_UTF8_STRING = 4;
const OSSL_PARAM_OCTET_STRING = 5;

type Lib = Symbols<typeof sslSymbols> & Symbols<typeof cryptoSymbols>;

/** The memory operations {@link createMacros} needs from the backend. */
export interface MacroMemory {
  fromAddress(a: bigint): Pointer | null;
  address(p: Pointer): number;
  writeBytes(p: Pointer, offset: number, bytes: Uint8Array): void;
}

/** A `size_t` as 8 little-endian bytes (LP64), for out-parameters and parameter blocks. */
export function sizeT(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

const utf8 = new TextEncoder();

/** A NUL-terminated UTF-8 copy of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  // Host names, cipher lists and the like are ASCII: copied in a loop, which is several times
  // faster than a TextEncoder call for strings this short (Deno's is an op call per string).
  const out = new Uint8Array(s.length + 1);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return utf8WithNul(s);
    out[i] = c;
  }
  return out;
}

function utf8WithNul(s: string): Uint8Array<ArrayBuffer> {
  const bytes = utf8.encode(s);
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
  /**
   * `SSL_CTX_set_dh_auto(ctx, on)`: a server picks built-in FFDHE parameters (RFC 7919) sized to
   * its certificate's key for the DHE suites; without parameters those suites are never chosen.
   */
  SSL_CTX_set_dh_auto(ctx: Pointer, on: number): number;
  /** `SSL_CTX_set_session_cache_mode(ctx, mode)`: returns the previous mode. */
  SSL_CTX_set_session_cache_mode(ctx: Pointer, mode: number): number;
  /**
   * `SSL_CTX_set_tlsext_ticket_keys(ctx, keys, 80)`: the key (name 16, HMAC 32, AES 32 bytes)
   * that encrypts and decrypts session tickets when no ticket key callback is set. 1 on success.
   */
  SSL_CTX_set_tlsext_ticket_keys(ctx: Pointer, keys: Uint8Array): number;
  /** `SSL_CTX_get_tlsext_ticket_keys(ctx, keys, 80)`: reads that key into `keys`. 1 on success. */
  SSL_CTX_get_tlsext_ticket_keys(ctx: Pointer, keys: Uint8Array): number;
  /**
   * `EVP_MAC_CTX_set_params(hctx, { OSSL_MAC_PARAM_KEY: key, OSSL_MAC_PARAM_DIGEST: digest })`
   * (3.0): keys an HMAC context, e.g. in the ticket key callback. The `OSSL_PARAM` array is built
   * in `OPENSSL_malloc`'d memory for the call (`OSSL_PARAM_construct_*` return structs, which
   * Bun's FFI cannot receive). 1 on success; 0 when the function is missing (1.1.1).
   */
  EVP_MAC_CTX_set_hmac_key(hctx: Pointer, key: Uint8Array, digest: string): number;
  /** `SSL_CTX_add1_chain_cert(ctx, x509)`: adds to the chain sent; takes its own reference. */
  SSL_CTX_add1_chain_cert(ctx: Pointer, x509: Pointer): number;
  /**
   * `SSL_CTX_get0_chain_certs(ctx, &sk)`: the extra chain certificates of the context's current
   * certificate (borrowed; `null` when there are none).
   */
  SSL_CTX_get0_chain_certs(ctx: Pointer): Pointer | null;
  /**
   * `SSL_get0_chain_certs(ssl, &sk)`: the extra chain certificates of the connection's current
   * certificate (the context's, or one set on the connection by SNI; borrowed; `null` if none).
   */
  SSL_get0_chain_certs(ssl: Pointer): Pointer | null;
  /**
   * `SSL_CTX_set1_groups_list(ctx, "X25519MLKEM768:X25519")`: the key exchange groups offered
   * (clients) or accepted (servers), in preference order. 1 on success, 0 for a name this OpenSSL
   * does not know.
   */
  SSL_CTX_set1_groups_list(ctx: Pointer, list: string): number;
  /**
   * `SSL_get_negotiated_group(ssl)`: the NID of the key exchange group used (3.0+; groups with
   * no NID, like 3.5's hybrids, come back as `TLSEXT_nid_unknown | id`, which
   * `SSL_group_to_name` still names). 0 when there is none.
   */
  SSL_get_negotiated_group(ssl: Pointer): number;
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
  /**
   * `DTLSv1_get_timeout(ssl, &tv)`: milliseconds until the DTLS retransmission timer expires
   * (0: expired now), or -1 when no timer runs.
   */
  DTLSv1_get_timeout(ssl: Pointer): number;
  /**
   * `DTLSv1_handle_timeout(ssl)`: after the timer expired, retransmits the last flight into the
   * write BIO. 1 retransmitted, 0 nothing to do, -1 failed (too many retransmissions).
   */
  DTLSv1_handle_timeout(ssl: Pointer): number;
  /** `SSL_set_mtu(ssl, mtu)`: the datagram payload size, without IP/UDP headers. 1 on success. */
  SSL_set_mtu(ssl: Pointer, mtu: number): number;
  /** `DTLS_set_link_mtu(ssl, mtu)`: the link MTU (payload plus IP/UDP headers). 1 on success. */
  DTLS_set_link_mtu(ssl: Pointer, mtu: number): number;
  /** `OPENSSL_malloc(n)`: memory OpenSSL may later free itself. */
  OPENSSL_malloc(n: number): Pointer | null;
  /** `OPENSSL_free(p)`. */
  OPENSSL_free(p: Pointer | null): void;
  // ---- keying material, KeyUpdate, algorithms ----
  /**
   * `SSL_get_extms_support(ssl)`: 1 when the handshake used the extended master secret
   * (RFC 7627), 0 when not, -1 before the handshake.
   */
  SSL_get_extms_support(ssl: Pointer): number;
  /**
   * `SSL_CTX_set1_sigalgs_list(ctx, "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256")`: the
   * signature algorithms offered (clients; servers also for client certificates) and accepted for
   * this side's own signatures. 1 on success, 0 for a name this OpenSSL does not know.
   */
  SSL_CTX_set1_sigalgs_list(ctx: Pointer, list: string): number;
  /** `SSL_CTX_set_max_send_fragment(ctx, n)`: the largest plaintext per record (512..16384). */
  SSL_CTX_set_max_send_fragment(ctx: Pointer, n: number): number;
  /**
   * `SSL_get_peer_signature_nid(ssl, &nid)`: the NID of the digest the peer signed the handshake
   * with, or `null` when it signed nothing (PSK, resumption) or the handshake is not done.
   */
  SSL_get_peer_signature_nid(ssl: Pointer): number | null;
}

/** Builds the {@link Macros} over a loaded library. */
export function createMacros(lib: Lib, memory: MacroMemory): Macros {
  const fromAddress = (a: bigint) => memory.fromAddress(a);
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
    SSL_CTX_set_dh_auto: (ctx, on) => lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_DH_AUTO, on, null),
    SSL_CTX_set_session_cache_mode: (ctx, mode) =>
      lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, mode, null),
    SSL_CTX_set_tlsext_ticket_keys: (ctx, keys) =>
      lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, keys.length, keys),
    SSL_CTX_get_tlsext_ticket_keys: (ctx, keys) =>
      lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_GET_TLSEXT_TICKET_KEYS, keys.length, keys),
    EVP_MAC_CTX_set_hmac_key: (hctx, key, digest) => {
      const setParams = lib.EVP_MAC_CTX_set_params;
      if (setParams === null || key.length === 0) return 0;
      const keyName = cString("key"); // OSSL_MAC_PARAM_KEY
      const digestName = cString("digest"); // OSSL_MAC_PARAM_DIGEST
      const digestValue = cString(digest);
      // [param key][param digest][end marker, all zero] then the strings and the key bytes.
      const strings = 3 * OSSL_PARAM_SIZE;
      const total = strings + keyName.length + digestName.length + digestValue.length +
        key.length;
      const mem = lib.CRYPTO_malloc(total, null, 0);
      if (mem === null) return 0;
      try {
        const base = BigInt(memory.address(mem));
        memory.writeBytes(mem, 0, new Uint8Array(total)); // zeroes the end marker too
        let off = strings;
        const place = (bytes: Uint8Array): bigint => {
          memory.writeBytes(mem, off, bytes);
          const at = base + BigInt(off);
          off += bytes.length;
          return at;
        };
        const param = (
          index: number,
          name: bigint,
          type: number,
          data: bigint,
          size: number,
        ): void => {
          const at = index * OSSL_PARAM_SIZE;
          const cell = new Uint8Array(OSSL_PARAM_SIZE);
          const view = new DataView(cell.buffer);
          view.setBigUint64(0, name, true);
          view.setUint32(8, type, true);
          view.setBigUint64(16, data, true);
          cell.set(sizeT(size), 24);
          view.setBigUint64(32, 0xffffffffffffffffn, true); // OSSL_PARAM_UNMODIFIED
          memory.writeBytes(mem, at, cell);
        };
        const keyNameAt = place(keyName);
        const digestNameAt = place(digestName);
        const digestAt = place(digestValue);
        const keyAt = place(key);
        param(0, keyNameAt, OSSL_PARAM_OCTET_STRING, keyAt, key.length);
        // A UTF-8 string's data_size excludes the NUL (OSSL_PARAM_construct_utf8_string).
        param(1, digestNameAt, OSSL_PARAM_UTF8_STRING, digestAt, digestValue.length - 1);
        return setParams(hctx, mem);
      } finally {
        // The key was copied into the MAC context: wipe ours before freeing it.
        memory.writeBytes(mem, 0, new Uint8Array(total));
        lib.CRYPTO_free(mem, null, 0);
      }
    },
    SSL_CTX_add1_chain_cert: (ctx, x509) => lib.SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, x509),
    SSL_CTX_get0_chain_certs: (ctx) => {
      const cell = new BigUint64Array(1); // STACK_OF(X509) **
      if (lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_GET_CHAIN_CERTS, 0, cell) !== 1) return null;
      return fromAddress(cell[0]!);
    },
    SSL_get0_chain_certs: (ssl) => {
      const cell = new BigUint64Array(1); // STACK_OF(X509) **
      if (lib.SSL_ctrl_buf(ssl, SSL_CTRL_GET_CHAIN_CERTS, 0, cell) !== 1) return null;
      return fromAddress(cell[0]!);
    },
    SSL_CTX_set1_groups_list: (ctx, list) =>
      lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, cString(list)),
    SSL_get_negotiated_group: (ssl) => lib.SSL_ctrl(ssl, SSL_CTRL_GET_NEGOTIATED_GROUP, 0, null),
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
    DTLSv1_get_timeout: (ssl) => {
      const tv = new BigInt64Array(2); // struct timeval { time_t tv_sec; suseconds_t tv_usec; } (LP64)
      if (lib.SSL_ctrl_buf(ssl, DTLS_CTRL_GET_TIMEOUT, 0, tv) !== 1) return -1;
      return Math.ceil(Number(tv[0]!) * 1000 + Number(tv[1]!) / 1000);
    },
    DTLSv1_handle_timeout: (ssl) => lib.SSL_ctrl(ssl, DTLS_CTRL_HANDLE_TIMEOUT, 0, null),
    SSL_set_mtu: (ssl, mtu) => lib.SSL_ctrl(ssl, SSL_CTRL_SET_MTU, mtu, null),
    DTLS_set_link_mtu: (ssl, mtu) => lib.SSL_ctrl(ssl, DTLS_CTRL_SET_LINK_MTU, mtu, null),
    OPENSSL_malloc: (n) => lib.CRYPTO_malloc(n, null, 0),
    OPENSSL_free: (p) => lib.CRYPTO_free(p, null, 0),
    // ---- keying material, KeyUpdate, algorithms ----
    SSL_get_extms_support: (ssl) => lib.SSL_ctrl(ssl, SSL_CTRL_GET_EXTMS_SUPPORT, 0, null),
    SSL_CTX_set1_sigalgs_list: (ctx, list) =>
      lib.SSL_CTX_ctrl_buf(ctx, SSL_CTRL_SET_SIGALGS_LIST, 0, cString(list)),
    SSL_CTX_set_max_send_fragment: (ctx, n) =>
      lib.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MAX_SEND_FRAGMENT, n, null),
    SSL_get_peer_signature_nid: (ssl) => {
      const cell = new Int32Array(1); // int *
      return lib.SSL_ctrl_buf(ssl, SSL_CTRL_GET_PEER_SIGNATURE_NID, 0, cell) === 1
        ? cell[0]!
        : null;
    },
  };
}
