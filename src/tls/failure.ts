/**
 * What a failed `SSL_*` call means, as a `TlsError`: OpenSSL reports a failure as an
 * `SSL_get_error` code plus its error queue, and the useful part is spread over both (a
 * truncation, a peer's alert, a verification failure, or a reason text).
 *
 * @module
 */
import { alertName, TlsError, type TlsErrorCode } from "../core/errors.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import {
  ERR_LIB_SSL,
  openssl,
  type Pointer,
  SSL_AD_REASON_OFFSET,
  SSL_ERROR,
  SSL_R,
} from "../core/native.ts";

/** The engine operation that failed. */
export type Phase = "handshake" | "read" | "write";

/**
 * The error for a failed call on `ssl` (drains the error queue). `receivedEof`: the transport
 * has ended (1.1.1 reports a truncation only as SYSCALL with an empty queue). `explain` may give
 * a better message for a handshake failure than OpenSSL's last reason, which it is given.
 */
export function failureOf(
  ssl: Pointer,
  sslError: number,
  phase: Phase,
  receivedEof: boolean,
  explain: (why: string) => string | undefined,
): TlsError {
  const o = openssl();
  const entries = drainErrorQueue();
  const sslEntries = entries.filter((e) => e.library === ERR_LIB_SSL);
  const base = { openssl: entries };
  const eof = sslEntries.some((e) => e.reason === SSL_R.UNEXPECTED_EOF_WHILE_READING) ||
    (sslError === SSL_ERROR.SYSCALL && entries.length === 0 && receivedEof);
  if (eof) {
    // 3.0 reports it as SSL_R_UNEXPECTED_EOF_WHILE_READING; 1.1.1 as SYSCALL with no error.
    return new TlsError(
      "UNEXPECTED_EOF",
      `the peer closed the connection without close_notify during ${phase} (truncation)`,
      base,
    );
  }
  const alertEntry = sslEntries.find((e) =>
    e.reason >= SSL_AD_REASON_OFFSET && e.reason < SSL_AD_REASON_OFFSET + 256
  );
  if (alertEntry !== undefined) {
    const code = alertEntry.reason - SSL_AD_REASON_OFFSET;
    const p = o.SSL_alert_desc_string_long(code);
    const description = alertName(code, p === null ? "" : o.backend.readCString(p));
    return new TlsError(
      "ALERT_RECEIVED",
      `the peer sent a fatal alert during ${phase}: ${description} (${code})`,
      { ...base, alert: { code, description } },
    );
  }
  if (sslEntries.some((e) => e.reason === SSL_R.CERTIFICATE_VERIFY_FAILED)) {
    const verifyCode = o.SSL_get_verify_result(ssl);
    const p = o.X509_verify_cert_error_string(verifyCode);
    const verifyMessage = p === null ? "unknown" : o.backend.readCString(p);
    return new TlsError(
      "CERT_VERIFY_FAILED",
      `the peer's certificate was rejected: ${verifyMessage} (verify error ${verifyCode})`,
      { ...base, verifyCode, verifyMessage },
    );
  }
  const code: TlsErrorCode = phase === "handshake" ? "HANDSHAKE_FAILED" : "PROTOCOL_ERROR";
  const last = entries[entries.length - 1];
  const why = last !== undefined
    ? (last.reasonText || last.text)
    : `SSL_get_error ${sslError} with an empty error queue`;
  const explained = phase === "handshake" ? explain(why) : undefined;
  return new TlsError(code, explained ?? `TLS ${phase} failed: ${why}`, base);
}
