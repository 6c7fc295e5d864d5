/**
 * OpenSSL constants, from the 3.0 headers (`ssl.h`, `x509_vfy.h`, `err.h`, `tls1.h`).
 * Only `ffi/` uses the ctrl numbers; `src/` uses the named constants below.
 *
 * @module
 */

/** `SSL_get_error()` results (ssl.h). */
export const SSL_ERROR = {
  NONE: 0,
  SSL: 1,
  WANT_READ: 2,
  WANT_WRITE: 3,
  WANT_X509_LOOKUP: 4,
  SYSCALL: 5,
  ZERO_RETURN: 6,
  WANT_CONNECT: 7,
  WANT_ACCEPT: 8,
  WANT_ASYNC: 9,
  WANT_ASYNC_JOB: 10,
  WANT_CLIENT_HELLO_CB: 11,
  WANT_RETRY_VERIFY: 12,
} as const;

/** `SSL_VERIFY_*` modes for `SSL_CTX_set_verify` (ssl.h). */
export const SSL_VERIFY = {
  NONE: 0,
  PEER: 1,
  FAIL_IF_NO_PEER_CERT: 2,
  CLIENT_ONCE: 4,
  POST_HANDSHAKE: 8,
} as const;

/** Protocol version numbers for min/max proto version (tls1.h). */
export const TLS_VERSION = {
  TLS1_VERSION: 0x301,
  TLS1_1_VERSION: 0x302,
  TLS1_2_VERSION: 0x303,
  TLS1_3_VERSION: 0x304,
} as const;

/** `SSL_OP_*` options (uint64_t in 3.0). */
export const SSL_OP = {
  IGNORE_UNEXPECTED_EOF: 0x80n,
  ALLOW_NO_DHE_KEX: 0x400n,
  NO_TICKET: 0x4000n,
  NO_COMPRESSION: 0x20000n,
  CIPHER_SERVER_PREFERENCE: 0x400000n,
  NO_RENEGOTIATION: 0x40000000n,
} as const;

/** `SSL_SESS_CACHE_*` modes for `SSL_CTX_set_session_cache_mode` (ssl.h). */
export const SSL_SESS_CACHE = {
  OFF: 0x0,
  CLIENT: 0x1,
  SERVER: 0x2,
  NO_INTERNAL_LOOKUP: 0x100,
  NO_INTERNAL_STORE: 0x200,
} as const;

/**
 * The size of a session ticket key as `SSL_CTX_set_tlsext_ticket_keys` takes it: a 16-byte key
 * name, a 32-byte HMAC-SHA256 key, a 32-byte AES-256 key (ssl_local.h, 3.0).
 */
export const TICKET_KEY_LENGTH = 80;

/** `EVP_MAX_IV_LENGTH` (evp.h): the room OpenSSL gives the ticket callback for the IV. */
export const EVP_MAX_IV_LENGTH = 16;

/** `SSL_MODE_*` bits for `SSL_set_mode` (ssl.h). */
export const SSL_MODE = {
  ENABLE_PARTIAL_WRITE: 0x1,
  ACCEPT_MOVING_WRITE_BUFFER: 0x2,
  AUTO_RETRY: 0x4,
  RELEASE_BUFFERS: 0x10,
} as const;

/** `SSL_TLSEXT_ERR_*`: what servername, ALPN and status callbacks return. */
export const SSL_TLSEXT_ERR = { OK: 0, ALERT_WARNING: 1, ALERT_FATAL: 2, NOACK: 3 } as const;

/** `SSL_CLIENT_HELLO_*` results for the client hello callback. */
export const SSL_CLIENT_HELLO = { SUCCESS: 1, ERROR: 0, RETRY: -1 } as const;

/** `OpenSSL_version()` selectors (crypto.h). */
export const OPENSSL_VERSION_SELECTOR = { VERSION: 0, DIR: 4 } as const;

/**
 * `OPENSSL_INIT_NO_ATEXIT` (crypto.h, 1.1.1b+): the `OPENSSL_init_crypto` option that keeps
 * OpenSSL 3.x from registering `OPENSSL_cleanup` as a libc `atexit` handler.
 */
export const OPENSSL_INIT_NO_ATEXIT = 0x00080000;

/** The ERR library number of libssl (`ERR_LIB_SSL`, err.h). */
export const ERR_LIB_SSL = 20;

/** The ERR library number of the PEM routines (`ERR_LIB_PEM`, err.h). */
export const ERR_LIB_PEM = 9;

/** `ERR_LIB_OCSP` (err.h): errors raised by OCSP functions. */
export const ERR_LIB_OCSP = 39;

/** `PEM_R_NO_START_LINE` (pemerr.h): no further PEM block; how reading a PEM list ends. */
export const PEM_R_NO_START_LINE = 108;

/**
 * Received alerts are reported as reason `SSL_AD_REASON_OFFSET + alert description`
 * (`SSL_R_SSLV3_ALERT_*` / `SSL_R_TLSV1_ALERT_*`, ssl.h).
 */
export const SSL_AD_REASON_OFFSET = 1000;

/** `X509_V_OK` and the verify codes the library names (x509_vfy.h). */
export const X509_V = {
  OK: 0,
  ERR_UNSPECIFIED: 1,
  ERR_CERT_NOT_YET_VALID: 9,
  ERR_CERT_HAS_EXPIRED: 10,
  ERR_DEPTH_ZERO_SELF_SIGNED_CERT: 18,
  ERR_SELF_SIGNED_CERT_IN_CHAIN: 19,
  ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 20,
  ERR_INVALID_PURPOSE: 26,
  ERR_CERT_REJECTED: 28,
  ERR_APPLICATION_VERIFICATION: 50,
  ERR_HOSTNAME_MISMATCH: 62,
  ERR_IP_ADDRESS_MISMATCH: 64,
} as const;

/** `X509_V_FLAG_CRL_CHECK` / `X509_V_FLAG_CRL_CHECK_ALL` (x509_vfy.h): CRLs for the leaf / every certificate. */
export const X509_V_FLAG_CRL = { CHECK: 0x4, CHECK_ALL: 0x8 } as const;

/** `XN_FLAG_RFC2253` for `X509_NAME_print_ex` (x509.h): `CN=leaf,O=Org` order and escaping. */
export const XN_FLAG_RFC2253 = 0x1110317;

/** Lowest OpenSSL we accept at all (1.1.1, best-effort; 3.0.2+ is what we test). */
export const OPENSSL_MIN_VERSION = 0x1010100f;

/** `SSL_R_*` reasons the library recognises (sslerr.h). */
export const SSL_R = {
  CERTIFICATE_VERIFY_FAILED: 134,
  PEER_DID_NOT_RETURN_A_CERTIFICATE: 199,
  BAD_PSK: 219,
  PSK_IDENTITY_NOT_FOUND: 223,
  BINDER_DOES_NOT_VERIFY: 253,
  CALLBACK_FAILED: 234,
  UNEXPECTED_EOF_WHILE_READING: 294,
  /**
   * A generic wrapper OpenSSL 3.5+ queues after the real reason of a record-layer failure (e.g.
   * after "decryption failed or bad record mac"): never the reason worth reporting.
   */
  RECORD_LAYER_FAILURE: 313,
} as const;

/**
 * `SSL_get_shutdown()` bits. OpenSSL sets `SSL_RECEIVED_SHUTDOWN` when it reads close_notify or a
 * fatal alert from the peer, and `SSL_SENT_SHUTDOWN` when it sends one: how a failure tells an
 * alert the peer sent from one we sent (both leave an "alert" reason in the error queue).
 */
export const SSL_SHUTDOWN = { SENT: 1, RECEIVED: 2 } as const;

/** `X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS` (x509v3.h): `*.example.com` yes, `w*.example.com` no. */
export const X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS = 0x4;

/** What a certificate callback returns to suspend the handshake (`SSL_ERROR_WANT_X509_LOOKUP`). */
export const CERT_CB_SUSPEND = -1;

/** `TLSEXT_TYPE_server_name` (tls1.h): the SNI extension's type number. */
export const TLSEXT_TYPE_server_name = 0;

/** `TLSEXT_TYPE_psk` (tls1.h): the TLS 1.3 pre_shared_key extension's type number. */
export const TLSEXT_TYPE_psk = 41;

/** `NID_subject_alt_name` (obj_mac.h). */
export const NID_subject_alt_name = 85;

/** `GENERAL_NAME` types (x509v3.h) for subjectAltName entries. */
export const GEN = { EMAIL: 1, DNS: 2, URI: 6, IPADD: 7 } as const;

/**
 * Layouts of the two C structs we read (LP64 glibc, checked with offsetof):
 * `struct tm` (56 bytes; int fields) and `GENERAL_NAME` ({ int type; union { ptr } d; }).
 */
export const STRUCT = {
  TM_SIZE: 56,
  TM_SEC: 0,
  TM_MIN: 4,
  TM_HOUR: 8,
  TM_MDAY: 12,
  TM_MON: 16,
  TM_YEAR: 20,
  GENERAL_NAME_TYPE: 0,
  GENERAL_NAME_D: 8,
} as const;

/** `SSL_CB_*` bits of the info callback's `where` (ssl.h). */
export const SSL_CB = {
  LOOP: 0x01,
  EXIT: 0x02,
  READ: 0x04,
  WRITE: 0x08,
  ALERT: 0x4000,
  HANDSHAKE_START: 0x10,
  HANDSHAKE_DONE: 0x20,
} as const;

/** `NID_tlsfeature` (obj_mac.h): the TLS feature extension (RFC 7633, "must-staple"). */
export const NID_tlsfeature = 1020;

/** The TLS feature number of `status_request` (RFC 7633: OCSP must-staple). */
export const TLS_FEATURE_STATUS_REQUEST = 5;

/** `X509_V_FLAG_PARTIAL_CHAIN`: a trusted intermediate may end a chain (x509_vfy.h). */
export const X509_V_FLAG_PARTIAL_CHAIN = 0x80000;

/** `OCSP_RESPONSE_STATUS_*` (ocsp.h), by number. */
export const OCSP_RESPONSE_STATUS: Readonly<Record<number, string>> = {
  0: "successful",
  1: "malformedRequest",
  2: "internalError",
  3: "tryLater",
  5: "sigRequired",
  6: "unauthorized",
};

/** `V_OCSP_CERTSTATUS_*` (ocsp.h). */
export const V_OCSP_CERTSTATUS = { GOOD: 0, REVOKED: 1, UNKNOWN: 2 } as const;

/**
 * `PSK_MAX_IDENTITY_LEN` / `PSK_MAX_PSK_LEN` (ssl.h, 3.0; 128 and 256 in 1.1.1): the sizes of the
 * buffers OpenSSL hands the TLS 1.2 PSK callbacks (the identity buffer has one more byte, for the
 * NUL), and the longest identity its TLS 1.3 fallback to those callbacks accepts.
 */
export const PSK_MAX_IDENTITY_LEN = 256;
/** See {@link PSK_MAX_IDENTITY_LEN}. */
export const PSK_MAX_PSK_LEN = 512;

/** `TLS1_AD_UNKNOWN_PSK_IDENTITY` (tls1.h): the alert a TLS 1.2 server sends for an unknown identity. */
export const TLS1_AD_UNKNOWN_PSK_IDENTITY = 115;

/**
 * The TLS 1.3 cipher suites by name, with their 2-byte IANA ids (RFC 8446 B.4; `TLS1_3_CK_*` in
 * tls1.h without the 0x0300 prefix) for `SSL_CIPHER_find`, and the NID of their hash
 * (`NID_sha256` 672, `NID_sha384` 673, obj_mac.h).
 */
export const TLS13_CIPHER_SUITES: Readonly<
  Record<string, { readonly id: readonly [number, number]; readonly hashNid: number }>
> = {
  TLS_AES_128_GCM_SHA256: { id: [0x13, 0x01], hashNid: 672 },
  TLS_AES_256_GCM_SHA384: { id: [0x13, 0x02], hashNid: 673 },
  TLS_CHACHA20_POLY1305_SHA256: { id: [0x13, 0x03], hashNid: 672 },
  TLS_AES_128_CCM_SHA256: { id: [0x13, 0x04], hashNid: 672 },
  TLS_AES_128_CCM_8_SHA256: { id: [0x13, 0x05], hashNid: 672 },
};

// ---- keying material, KeyUpdate, signature algorithms ----

/** `SSL_KEY_UPDATE_*` (ssl.h): the `updatetype` of `SSL_key_update`. */
export const SSL_KEY_UPDATE = { NONE: -1, NOT_REQUESTED: 0, REQUESTED: 1 } as const;

/**
 * NIDs (obj_mac.h) that `SSL_get_peer_signature_type_nid` / `SSL_get_peer_signature_nid` report:
 * key types (`EVP_PKEY_*` are these NIDs) and digests.
 */
export const SIGNATURE_NID = {
  rsaEncryption: 6,
  rsassaPss: 912,
  ecPublicKey: 408,
  ED25519: 1087,
  ED448: 1088,
  sha1: 64,
  sha224: 675,
  sha256: 672,
  sha384: 673,
  sha512: 674,
} as const;

/**
 * External server session cache and early data (ssl.h): `SSL_get_early_data_status` results,
 * `SSL_read_early_data` results, and `SSL_MAX_SSL_SESSION_ID_LENGTH` (the longest session id; a
 * TLS 1.3 stateful ticket is a session id, so OpenSSL looks up only PSK identities this short in
 * the session cache). `TLSEXT_TYPE_supported_versions` (tls1.h) is the extension a TLS 1.3
 * ClientHello lists its versions in.
 */
export const EARLY_DATA = {
  NOT_SENT: 0,
  REJECTED: 1,
  ACCEPTED: 2,
  READ_ERROR: 0,
  READ_SUCCESS: 1,
  READ_FINISH: 2,
  MAX_SESSION_ID_LENGTH: 32,
  TLSEXT_TYPE_supported_versions: 43,
} as const;

/**
 * `SSL_R_*` reasons `SSL_verify_client_post_handshake` fails with (sslerr.h): the client did not
 * offer post-handshake authentication, a request is already queued or sent, the server's verify
 * mode does not ask for a certificate.
 */
export const SSL_R_POST_HANDSHAKE = {
  EXTENSION_NOT_RECEIVED: 279,
  INVALID_CONFIG: 283,
  REQUEST_PENDING: 285,
  REQUEST_SENT: 286,
} as const;

/** DTLS protocol version numbers for min/max proto version (dtls1.h). */
export const DTLS_VERSION = { DTLS1_2_VERSION: 0xfefd, DTLS1_3_VERSION: 0xfefc } as const;

/**
 * DTLS constants (dtls1.h, ssl.h): the record header length (type, version 2, epoch 2, sequence
 * 6, length 2), the longest cookie, and the options a memory-BIO transport needs.
 */
export const DTLS = {
  RT_HEADER_LENGTH: 13,
  COOKIE_LENGTH: 255,
  /** `SSL_OP_NO_QUERY_MTU`: do not ask the BIO for the MTU (a memory BIO knows none). */
  OP_NO_QUERY_MTU: 0x1000n,
  /** `SSL_OP_COOKIE_EXCHANGE`: servers send a HelloVerifyRequest. */
  OP_COOKIE_EXCHANGE: 0x2000n,
} as const;
