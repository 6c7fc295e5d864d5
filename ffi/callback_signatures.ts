/**
 * The C signatures of the callbacks OpenSSL calls, and the value each returns when the JS side
 * failed (the right failure code differs per callback; see each man page). The JS side of each
 * lives with the handshake feature that installs it (`src/handshake/`).
 *
 * @module
 */
import type { CallbackDef } from "./types.ts";

/** A callback signature plus the return value that means "fail" to OpenSSL. */
export interface CallbackSignature extends CallbackDef {
  /** What the trampoline returns if the JS side throws (null for `void` callbacks). */
  readonly failure: number | null;
}

/**
 * `int verify_callback(int preverify_ok, X509_STORE_CTX *x509_ctx)` (SSL_CTX_set_verify(3)).
 * Returning 0 fails the handshake with the error stored in the X509_STORE_CTX.
 */
export const VERIFY_CB: CallbackSignature = { args: ["i32", "ptr"], ret: "i32", failure: 0 };

/**
 * `int cert_cb(SSL *ssl, void *arg)` (SSL_CTX_set_cert_cb(3)): 1 success, 0 error (the
 * handshake fails with internal_error), -1 suspend with `SSL_ERROR_WANT_X509_LOOKUP`.
 */
export const CERT_CB: CallbackSignature = { args: ["ptr", "ptr"], ret: "i32", failure: 0 };

/**
 * `int client_hello_cb(SSL *s, int *al, void *arg)` (SSL_CTX_set_client_hello_cb(3)):
 * `SSL_CLIENT_HELLO_SUCCESS` (1), `_ERROR` (0; the handshake fails with the alert in `*al`,
 * internal_error by default), `_RETRY` (-1; suspends with `SSL_ERROR_WANT_CLIENT_HELLO_CB`).
 */
export const CLIENT_HELLO_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr"],
  ret: "i32",
  failure: 0,
};

/**
 * `void keylog_cb(const SSL *ssl, const char *line)` (SSL_CTX_set_keylog_callback(3)): one NSS
 * key log line, without the newline.
 */
export const KEYLOG_CB: CallbackSignature = { args: ["ptr", "ptr"], ret: "void", failure: null };

/**
 * `void info_cb(const SSL *ssl, int where, int ret)` (SSL_CTX_set_info_callback(3)): `where` is a
 * mask of `SSL_CB_*`; for alerts `ret` is `(level << 8) | description`.
 */
export const INFO_CB: CallbackSignature = {
  args: ["ptr", "i32", "i32"],
  ret: "void",
  failure: null,
};

/**
 * `int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
 * const unsigned char *in, unsigned int inlen, void *arg)` (SSL_CTX_set_alpn_select_cb(3)):
 * `in` is the client's list in wire format; point `*out` into it (OpenSSL does not copy) and
 * return `SSL_TLSEXT_ERR_OK` (0), `_NOACK` (3: no ALPN) or `_ALERT_FATAL` (2: the handshake fails
 * with no_application_protocol, 120).
 */
export const ALPN_SELECT_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr", "ptr", "u32", "ptr"],
  ret: "i32",
  failure: 2,
};

/**
 * `int status_cb(SSL *s, void *arg)` (SSL_CTX_set_tlsext_status_cb(3)). Clients: > 0 accept the
 * staple (or its absence), 0 reject (alert 113, bad_certificate_status_response), < 0 error.
 * Servers: `SSL_TLSEXT_ERR_OK` (0) a staple was set, `_NOACK` (3) none, `_ALERT_FATAL` (2) fail.
 * The failure code differs by side; the handler picks it (see `src/handshake/ocsp.ts`).
 */
export const STATUS_CB: CallbackSignature = { args: ["ptr", "ptr"], ret: "i32", failure: -1 };

/**
 * `int pem_password_cb(char *buf, int size, int rwflag, void *u)` (pem_password_cb(3)): write the
 * passphrase into `buf` (at most `size` bytes) and return its length; -1 fails the decryption.
 */
export const PASSWORD_CB: CallbackSignature = {
  args: ["ptr", "i32", "i32", "ptr"],
  ret: "i32",
  failure: -1,
};

/**
 * `int psk_use_session_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
 * SSL_SESSION **sess)` (SSL_CTX_set_psk_use_session_callback(3)): TLS 1.3 clients, while
 * building the ClientHello. `md` is NULL on the first call; a second call after a
 * HelloRetryRequest gives the hash of the suite the server chose. 1 success (`*sess` NULL: offer
 * no PSK), 0 fails the handshake (internal_error, "bad psk"). `*sess` becomes OpenSSL's.
 */
export const PSK_USE_SESSION_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr", "ptr", "ptr"],
  ret: "i32",
  failure: 0,
};

/**
 * `int psk_find_session_cb(SSL *ssl, const unsigned char *identity, size_t identity_len,
 * SSL_SESSION **sess)` (SSL_CTX_set_psk_find_session_callback(3)): TLS 1.3 servers, once per
 * identity the client offers. 1 success (`*sess` NULL: unknown identity, the handshake goes on
 * without it), 0 fails the handshake (internal_error). `*sess` becomes OpenSSL's.
 */
export const PSK_FIND_SESSION_CB: CallbackSignature = {
  args: ["ptr", "ptr", "usize", "ptr"],
  ret: "i32",
  failure: 0,
};

/**
 * `unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
 * unsigned int max_identity_len, unsigned char *psk, unsigned int max_psk_len)`
 * (SSL_CTX_set_psk_client_callback(3)): TLS 1.2 clients, while building the ClientKeyExchange
 * (`hint`: the server's identity hint or NULL). Write a NUL-terminated identity of at most
 * `max_identity_len` bytes plus the NUL, the key into `psk`, and return the key length; 0 fails
 * the handshake (handshake_failure, "psk identity not found"). OpenSSL 3.0 also calls it in TLS
 * 1.3 (hint NULL, SHA-256) when the use_session callback offered no PSK.
 */
export const PSK_CLIENT_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr", "u32", "ptr", "u32"],
  ret: "u32",
  failure: 0,
};

/**
 * `unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
 * unsigned int max_psk_len)` (SSL_CTX_set_psk_server_callback(3)): TLS 1.2 servers, with the
 * client's identity. Returns the key length written into `psk`; 0 refuses the identity (alert
 * unknown_psk_identity, 115). OpenSSL 3.0 also calls it in TLS 1.3 (SHA-256 PSKs) for identities
 * the find_session callback did not know.
 */
export const PSK_SERVER_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr", "u32"],
  ret: "u32",
  failure: 0,
};

/**
 * `int new_session_cb(SSL *ssl, SSL_SESSION *sess)` (SSL_CTX_sess_set_new_cb(3)): a client got a
 * new session (TLS 1.2: during the handshake; TLS 1.3: once per NewSessionTicket, after it).
 * OpenSSL took a reference for us: 1 keeps it (we must `SSL_SESSION_free` it), 0 hands it back.
 */
export const NEW_SESSION_CB: CallbackSignature = { args: ["ptr", "ptr"], ret: "i32", failure: 0 };

/**
 * `int ticket_key_cb(SSL *s, unsigned char key_name[16], unsigned char *iv,
 * EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx, int enc)` (SSL_CTX_set_tlsext_ticket_key_evp_cb(3)).
 * `enc` 1: a new ticket (write the name and a random IV, key both contexts), return 1 (0: issue
 * none). `enc` 0: a ticket to open (name and IV read from it); 1 use it, 2 use it and issue a
 * fresh one (renewal), 0 unknown key (full handshake), < 0 error.
 */
export const TICKET_KEY_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr", "ptr", "ptr", "i32"],
  ret: "i32",
  failure: 0,
};

/**
 * `SSL_SESSION *get_session_cb(SSL *ssl, const unsigned char *data, int len, int *copy)`
 * (SSL_CTX_sess_set_get_cb(3)): a server looks up session id (TLS 1.2) or stateful ticket
 * (TLS 1.3) `data` in an external cache. Returns the session or NULL (a full handshake); with
 * `*copy` set to 0 the returned reference becomes OpenSSL's. Mainline OpenSSL has no way to
 * suspend here (`SSL_magic_pending_session_ptr` is BoringSSL's): async lookups run earlier, in the
 * client-hello callback. A failure returns NULL.
 */
export const GET_SESSION_CB: CallbackSignature = {
  args: ["ptr", "ptr", "i32", "ptr"],
  ret: "ptr",
  failure: null,
};

/**
 * The server's `new_session_cb` (same C signature as {@link NEW_SESSION_CB}): a separate object
 * because trampolines are made per signature object, and this one routes to the server's external
 * session cache. Returns 0: the session is serialised during the call, no reference kept.
 */
export const SERVER_NEW_SESSION_CB: CallbackSignature = {
  args: ["ptr", "ptr"],
  ret: "i32",
  failure: 0,
};

/**
 * `void remove_session_cb(SSL_CTX *ctx, SSL_SESSION *sess)` (SSL_CTX_sess_set_remove_cb(3)): a
 * server's session is no longer to be resumed: a connection that used it ended without sending
 * close_notify, or with a fatal alert (`ssl_clear_bad_session`, `ssl3_send_alert`), or it was
 * removed from the cache. Called with the session context, not an `SSL` (also from `SSL_free`).
 */
export const REMOVE_SESSION_CB: CallbackSignature = {
  args: ["ptr", "ptr"],
  ret: "void",
  failure: null,
};

/**
 * `int app_gen_cookie_cb(SSL *ssl, unsigned char *cookie, unsigned int *cookie_len)`
 * (SSL_CTX_set_cookie_generate_cb(3)), called by `DTLSv1_listen` for a HelloVerifyRequest: write
 * at most `DTLS1_COOKIE_LENGTH` (255) bytes into `cookie`, their count into `*cookie_len`, and
 * return 1; 0 fails.
 */
export const COOKIE_GENERATE_CB: CallbackSignature = {
  args: ["ptr", "ptr", "ptr"],
  ret: "i32",
  failure: 0,
};

/**
 * `int app_verify_cookie_cb(SSL *ssl, const unsigned char *cookie, unsigned int cookie_len)`
 * (SSL_CTX_set_cookie_verify_cb(3)): 1 the cookie is valid, 0 it is not (another
 * HelloVerifyRequest is sent).
 */
export const COOKIE_VERIFY_CB: CallbackSignature = {
  args: ["ptr", "ptr", "u32"],
  ret: "i32",
  failure: 0,
};

/** `int (*compar)(const void *, const void *)`: used by the backend conformance test only. */
export const COMPARE_CB: CallbackSignature = { args: ["ptr", "ptr"], ret: "i32", failure: 0 };
