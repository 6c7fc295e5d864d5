/**
 * What a failed `SSL_*` call means, as a `TlsError`. OpenSSL reports a failure as an
 * `SSL_get_error` code plus its error queue, and the useful part is spread over both:
 *
 * - a truncation: `SSL_R_UNEXPECTED_EOF_WHILE_READING` (3.0+), or SYSCALL with an empty queue
 *   after the transport ended (1.1.1);
 * - an alert: OpenSSL files a received fatal alert under reason `SSL_AD_REASON_OFFSET + code`,
 *   but it also uses reasons of that range for errors it finds itself and answers with that
 *   alert (3.6 does so for an unparsable OCSP staple, 113). Which one it was is told by where it
 *   came from: reading a fatal alert sets `SSL_RECEIVED_SHUTDOWN`, never sending one;
 * - a verification failure, with its verify result;
 * - otherwise a reason text: the most specific entry, not a generic wrapper OpenSSL 3.5+ queues
 *   after it ("record layer failure" after "decryption failed or bad record mac").
 *
 * A handshake feature may explain a failure better (`Feature.explainFailure`).
 *
 * @module
 */
import { alertName, type OpenSslErrorEntry, TlsError, type TlsErrorCode } from "../core/errors.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import {
  ERR_LIB_SSL,
  openssl,
  type Pointer,
  SSL_AD_REASON_OFFSET,
  SSL_ERROR,
  SSL_R,
  SSL_SHUTDOWN,
} from "../core/native.ts";
import type { FailureFacts } from "../handshake/feature.ts";

/** The engine operation that failed. */
export type Phase = "handshake" | "read" | "write";

/** Reasons that only wrap the real one (see the module doc). */
const GENERIC_REASONS: ReadonlySet<number> = new Set([SSL_R.RECORD_LAYER_FAILURE]);

function isAlertReason(entry: OpenSslErrorEntry): boolean {
  return entry.library === ERR_LIB_SSL && entry.reason >= SSL_AD_REASON_OFFSET &&
    entry.reason < SSL_AD_REASON_OFFSET + 256;
}

function alertDescription(code: number): string {
  const p = openssl().SSL_alert_desc_string_long(code);
  return alertName(code, p === null ? "" : openssl().backend.readCString(p));
}

/** The entry that says why: the last one of the SSL library that is not a generic wrapper. */
function mostSpecific(entries: readonly OpenSslErrorEntry[]): OpenSslErrorEntry | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.library === ERR_LIB_SSL && !GENERIC_REASONS.has(e.reason)) return e;
  }
  return entries[entries.length - 1];
}

/**
 * The error for a failed call on `ssl` (drains the error queue). `receivedEof`: the transport
 * has ended. `explain` may give a better code and message, from the facts gathered here.
 */
export function failureOf(
  ssl: Pointer,
  sslError: number,
  phase: Phase,
  receivedEof: boolean,
  explain: (facts: FailureFacts) => { code?: TlsErrorCode; message: string } | undefined,
): TlsError {
  const o = openssl();
  const entries = drainErrorQueue();
  const sslEntries = entries.filter((e) => e.library === ERR_LIB_SSL);
  const base = { openssl: entries };
  const eof = sslEntries.some((e) => e.reason === SSL_R.UNEXPECTED_EOF_WHILE_READING) ||
    (sslError === SSL_ERROR.SYSCALL && entries.length === 0 && receivedEof);
  if (eof) {
    return new TlsError(
      "UNEXPECTED_EOF",
      `the peer closed the connection without close_notify during ${phase} (truncation)`,
      base,
    );
  }
  const alertEntry = sslEntries.find(isAlertReason);
  const received = alertEntry !== undefined &&
    (o.SSL_get_shutdown(ssl) & SSL_SHUTDOWN.RECEIVED) !== 0;
  if (received) {
    const code = alertEntry.reason - SSL_AD_REASON_OFFSET;
    const description = alertDescription(code);
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
  const specific = mostSpecific(entries);
  const why = specific !== undefined
    ? (specific.reasonText || specific.text)
    : `SSL_get_error ${sslError} with an empty error queue`;
  // An alert reason we did not receive: OpenSSL found the problem itself and sent that alert.
  const sentAlert = alertEntry === undefined ? null : alertEntry.reason - SSL_AD_REASON_OFFSET;
  const explained = explain({ phase, why, sentAlert });
  if (explained !== undefined) {
    return new TlsError(explained.code ?? code, explained.message, base);
  }
  const sent = sentAlert === null
    ? ""
    : ` (the peer was sent alert ${alertDescription(sentAlert)}, ${sentAlert})`;
  return new TlsError(code, `TLS ${phase} failed: ${why}${sent}`, base);
}
