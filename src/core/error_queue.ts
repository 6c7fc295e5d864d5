/**
 * Reading OpenSSL's per-thread error queue. Every operation clears it first
 * (`ERR_clear_error`) and drains it completely after a failure, or stale errors would show up on
 * the next connection.
 *
 * @module
 */
import { type OpenSslErrorEntry, TlsError, type TlsErrorCode } from "./errors.ts";
import { openssl, type Pointer } from "./native.ts";

const textBuffer = new Uint8Array(256);
const decoder = new TextDecoder();

function cStringAt(p: Pointer | null): string {
  return p === null ? "" : openssl().backend.readCString(p);
}

/** Removes and returns every entry of the error queue, oldest first. */
export function drainErrorQueue(): OpenSslErrorEntry[] {
  const o = openssl();
  const out: OpenSslErrorEntry[] = [];
  for (let e = o.ERR_get_error(); e !== 0; e = o.ERR_get_error()) {
    // ERR_GET_LIB / ERR_GET_REASON are inline functions in 3.0: re-implemented here.
    const system = e >= 0x80000000;
    const library = system ? 2 : Math.floor(e / 0x800000) & 0xff;
    const reason = system ? e & 0x7fffffff : e & 0x7fffff;
    o.ERR_error_string_n(e, textBuffer, textBuffer.length);
    const end = textBuffer.indexOf(0);
    out.push({
      code: e,
      library,
      reason,
      libraryName: cStringAt(o.ERR_lib_error_string(e)),
      reasonText: cStringAt(o.ERR_reason_error_string(e)),
      text: decoder.decode(textBuffer.subarray(0, end < 0 ? textBuffer.length : end)),
    });
  }
  return out;
}

/**
 * Empties the error queue: call before every OpenSSL operation whose errors we will read.
 *
 * Looks first (`ERR_peek_error`, ~30 ns through FFI) and clears only when something is there:
 * `ERR_clear_error` walks all 16 slots of the thread's queue every time (~130-170 ns), and the
 * queue is almost always empty here, since every failure drains it. On the hot path this runs
 * before each `SSL_read` / `SSL_write`.
 */
export function clearErrorQueue(): void {
  const o = openssl();
  if (o.ERR_peek_error() !== 0) o.ERR_clear_error();
}

/**
 * Throws a `TlsError` (`INTERNAL` unless told otherwise) for an OpenSSL call that failed, with the
 * drained error queue attached.
 */
export function fail(what: string, code: TlsErrorCode = "INTERNAL"): never {
  throw new TlsError(code, what, { openssl: drainErrorQueue() });
}
