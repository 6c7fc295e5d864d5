/**
 * `TlsError`: the one error type callers catch, with a stable string `code` and the drained
 * OpenSSL error queue. Bad arguments are `TypeError` / `RangeError`, thrown before any work.
 *
 * @module
 */
import type { OcspResponse } from "./ocsp_response.ts";

/**
 * Every `TlsError` code, in one place. Codes are stable: match on them, not on messages.
 *
 * | code | meaning |
 * |---|---|
 * | `LIBRARY_NOT_FOUND` | libssl/libcrypto could not be loaded; `message` lists every path tried |
 * | `LIBRARY_TOO_OLD` | the OpenSSL found is older than 1.1.1 |
 * | `PERMISSION_DENIED` | the runtime does not allow FFI (Deno without `--allow-ffi`, Node.js's permission model without `--allow-ffi`) or, on Deno, the network (`--allow-net`); `message` names the flag |
 * | `HANDSHAKE_FAILED` | the handshake failed for a reason not covered below |
 * | `CERT_VERIFY_FAILED` | the peer's certificate was rejected; see `verifyCode` / `verifyMessage` |
 * | `CERT_REVOKED` | a valid OCSP response says the peer's certificate is revoked; see `ocsp` |
 * | `OCSP_INVALID` | an OCSP response is missing (when required) or not acceptable; `message` says why |
 * | `ALERT_RECEIVED` | the peer sent a fatal alert; see `alert` |
 * | `UNEXPECTED_EOF` | the peer closed without close_notify: a truncation, never a clean end |
 * | `PROTOCOL_ERROR` | a TLS error after the handshake (e.g. a corrupted record) |
 * | `CALLBACK_ERROR` | a user callback threw or rejected; the user's error is `cause` |
 * | `INVALID_CERTIFICATE` | a certificate, CRL or PKCS#12 file could not be parsed (PEM/DER) |
 * | `INVALID_KEY` | a private key could not be parsed, or does not match its certificate |
 * | `BAD_PASSPHRASE` | an encrypted private key could not be decrypted with the passphrase given |
 * | `NETWORK_ERROR` | the transport failed (connection refused, host not found, I/O error); see `cause` |
 * | `TIMEOUT` | an operation did not finish in time |
 * | `ABORTED` | an `AbortSignal` fired; its reason is `cause` |
 * | `CLOSED` | the object was used after `close()` |
 * | `INTERNAL` | OpenSSL failed where it should not (e.g. out of memory) |
 * | `NOT_SUPPORTED` | the peer or the negotiated protocol cannot do what was asked (e.g. `requestClientCertificate()` on TLS 1.2, or with a client that did not offer post-handshake authentication) |
 */
export const TLS_ERROR_CODES = [
  "LIBRARY_NOT_FOUND",
  "LIBRARY_TOO_OLD",
  "PERMISSION_DENIED",
  "HANDSHAKE_FAILED",
  "CERT_VERIFY_FAILED",
  "CERT_REVOKED",
  "OCSP_INVALID",
  "ALERT_RECEIVED",
  "UNEXPECTED_EOF",
  "PROTOCOL_ERROR",
  "CALLBACK_ERROR",
  "INVALID_CERTIFICATE",
  "INVALID_KEY",
  "BAD_PASSPHRASE",
  "NETWORK_ERROR",
  "TIMEOUT",
  "ABORTED",
  "CLOSED",
  "INTERNAL",
  "NOT_SUPPORTED",
] as const;

/** One of {@link TLS_ERROR_CODES}. */
export type TlsErrorCode = typeof TLS_ERROR_CODES[number];

/** One entry of OpenSSL's error queue (`ERR_get_error`). */
export interface OpenSslErrorEntry {
  /** The packed error code, e.g. `0x0A000086`. */
  readonly code: number;
  /** `ERR_GET_LIB`: the library number (20 = SSL), or 2 (system) for system errors. */
  readonly library: number;
  /** `ERR_GET_REASON`: the reason number within the library. */
  readonly reason: number;
  /** `ERR_lib_error_string`, e.g. `"SSL routines"`, or `""`. */
  readonly libraryName: string;
  /** `ERR_reason_error_string`, e.g. `"certificate verify failed"`, or `""`. */
  readonly reasonText: string;
  /** `ERR_error_string_n`: `"error:0A000086:SSL routines::certificate verify failed"`. */
  readonly text: string;
}

/** A TLS alert (RFC 8446 §6). */
export interface TlsAlert {
  /** The alert description number, e.g. 40 (handshake_failure), 42 (bad_certificate). */
  readonly code: number;
  /** OpenSSL's long name for it, e.g. `"handshake failure"`. */
  readonly description: string;
}

/** Options for {@link TlsError}. */
export interface TlsErrorOptions {
  /** The underlying error: the user's exception, an AbortSignal reason, a load failure. */
  cause?: unknown;
  /** The drained OpenSSL error queue. */
  openssl?: readonly OpenSslErrorEntry[];
  /** For `CERT_VERIFY_FAILED`: OpenSSL's `X509_V_ERR_*` number. */
  verifyCode?: number;
  /** For `CERT_VERIFY_FAILED`: `X509_verify_cert_error_string(verifyCode)`. */
  verifyMessage?: string;
  /** For `ALERT_RECEIVED`: the alert the peer sent. */
  alert?: TlsAlert;
  /** For `CERT_REVOKED`: the verified OCSP response (revocation time and reason). */
  ocsp?: OcspResponse;
}

/**
 * The error every TLS failure is reported with.
 *
 * @example
 * ```ts
 * import { TlsError } from "./errors.ts";
 * try {
 *   throw new TlsError("CERT_VERIFY_FAILED", "certificate has expired", {
 *     verifyCode: 10,
 *     verifyMessage: "certificate has expired",
 *   });
 * } catch (e) {
 *   if (e instanceof TlsError && e.code === "CERT_VERIFY_FAILED") console.log(e.verifyCode); // 10
 * }
 * ```
 */
export class TlsError extends Error {
  /** The stable error code: one of {@link TLS_ERROR_CODES}. */
  readonly code: TlsErrorCode;
  /** The OpenSSL error queue as drained when the error happened (may be empty). */
  readonly openssl: readonly OpenSslErrorEntry[];
  /** For `CERT_VERIFY_FAILED`: OpenSSL's verify result (e.g. 10 = certificate has expired). */
  readonly verifyCode: number | undefined;
  /** For `CERT_VERIFY_FAILED`: OpenSSL's text for {@link verifyCode}. */
  readonly verifyMessage: string | undefined;
  /** For `ALERT_RECEIVED`: the alert the peer sent. */
  readonly alert: TlsAlert | undefined;
  /** For `CERT_REVOKED`: the verified OCSP response that says so. */
  readonly ocsp: OcspResponse | undefined;

  /** Creates a `TlsError`; `message` should say what failed in words a user can act on. */
  constructor(code: TlsErrorCode, message: string, options: TlsErrorOptions = {}) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "TlsError";
    this.code = code;
    this.openssl = options.openssl ?? [];
    this.verifyCode = options.verifyCode;
    this.verifyMessage = options.verifyMessage;
    this.alert = options.alert;
    this.ocsp = options.ocsp;
  }
}

/**
 * Alert names OpenSSL 3.0's `SSL_alert_desc_string_long` does not know (it answers "unknown"),
 * from RFC 8446 §6 and RFC 7507.
 */
const ALERT_NAMES: Readonly<Record<number, string>> = {
  86: "inappropriate fallback",
  109: "missing extension",
  116: "certificate required",
};

/**
 * The human name of TLS alert `code`: OpenSSL's own text, or the RFC's where OpenSSL has none.
 * @internal
 */
export function alertName(code: number, openssl: string): string {
  return openssl === "" || openssl === "unknown" ? ALERT_NAMES[code] ?? "unknown" : openssl;
}
