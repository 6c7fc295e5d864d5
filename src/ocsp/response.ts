/**
 * OCSP responses, parsed and verified properly. OpenSSL's stapling API hands over raw bytes and
 * accepts anything: a revoked, stale, forged or foreign response passes unless someone checks it.
 * This module is that check, used by the client's status callback and by
 * {@link parseOcspResponse} for responses obtained elsewhere.
 *
 * A response is valid when: its response status is `successful`; its signature verifies, made by
 * the certificate's issuer or by a responder the issuer delegated to (with the OCSP-signing
 * extended key usage) whose chain leads to the trust store (`OCSP_basic_verify`); it holds an
 * entry for exactly this certificate (issuer name and key hash, serial: `OCSP_resp_find_status`);
 * and `thisUpdate` is not in the future nor `nextUpdate` in the past, give or take the leeway
 * (`OCSP_check_validity`). A valid response may still say "revoked" or "unknown".
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { fromDer, hexWithColons } from "../core/der.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import {
  ERR_LIB_OCSP,
  NID_tlsfeature,
  OCSP_RESPONSE_STATUS,
  openssl,
  type Pointer,
  TLS_FEATURE_STATUS_REQUEST,
  V_OCSP_CERTSTATUS,
  X509_V_FLAG_PARTIAL_CHAIN,
} from "../core/native.ts";
import {
  Certificate,
  loadCertificates,
  nameToString,
  type PemOrDer,
  timeToDate,
} from "../x509/certificate.ts";
import type { OcspResponse } from "../core/ocsp_response.ts";

export type { OcspResponse };

/** Options for {@link parseOcspResponse}. */
export interface OcspCheckOptions {
  /** The certificate the response is about. */
  certificate: PemOrDer | Certificate;
  /** Its issuer (the CA that signed it). */
  issuer: PemOrDer | Certificate;
  /**
   * Trust anchors for the responder's signature. Default: the issuer alone (a response signed by
   * the issuer, or by a responder the issuer certified, verifies).
   */
  trust?: readonly (PemOrDer | Certificate)[];
  /** More certificates that may help find the responder's certificate (untrusted). */
  untrusted?: readonly (PemOrDer | Certificate)[];
  /** Clock skew allowed on `thisUpdate` / `nextUpdate`, in seconds. Default 300. */
  leewaySeconds?: number;
}

/** The default {@link OcspCheckOptions.leewaySeconds}: five minutes. */
export const DEFAULT_OCSP_LEEWAY_SECONDS = 300;

function invalid(why: string): TlsError {
  return new TlsError("OCSP_INVALID", `the OCSP response is not acceptable: ${why}`, {
    openssl: drainErrorQueue(),
  });
}

/** The DER-decoded response, freed with its handle. */
function decodeResponse(der: Uint8Array): NativeHandle {
  const o = openssl();
  if (der.length === 0) throw invalid("it is empty");
  const resp = fromDer(der, (cell, n) => o.d2i_OCSP_RESPONSE(null, cell, n));
  if (resp === null) throw invalid("it is not a DER OCSP response (garbage or truncated)");
  return new NativeHandle("OCSP_RESPONSE", resp, (p) => o.OCSP_RESPONSE_free(p));
}

/** `OCSP_resp_get0_id`: the responder's name, or its key hash. */
function responderIdOf(basic: Pointer): string {
  const o = openssl();
  const keyCell = new BigUint64Array(1);
  const nameCell = new BigUint64Array(1);
  if (o.OCSP_resp_get0_id(basic, keyCell, nameCell) !== 1) return "";
  const name = o.backend.fromAddress(nameCell[0]!);
  if (name !== null) return nameToString(name);
  const key = o.backend.fromAddress(keyCell[0]!);
  if (key === null) return "";
  const data = o.ASN1_STRING_get0_data(key);
  const length = o.ASN1_STRING_length(key);
  if (data === null || length <= 0) return "";
  return `keyid:${hexWithColons(o.backend.readBytes(data, 0, length))}`;
}

/**
 * Whether the DER OCSP response `der` is a successful response holding an entry for `leaf`
 * (issued by `issuer`): the test a server applies before stapling, the way OpenSSL 3.6+ does
 * itself, so that every version staples the same. Signature and validity are the client's to
 * check. Never throws; borrowed pointers only.
 */
export function coversCertificate(der: Uint8Array, leaf: Pointer, issuer: Pointer): boolean {
  const o = openssl();
  const resp = fromDer(der, (cell, n) => o.d2i_OCSP_RESPONSE(null, cell, n));
  if (resp === null) {
    drainErrorQueue();
    return false;
  }
  const basic = o.OCSP_response_status(resp) === 0 ? o.OCSP_response_get1_basic(resp) : null;
  const id = basic === null ? null : o.OCSP_cert_to_id(null, leaf, issuer); // SHA-1, as clients
  try {
    if (basic === null || id === null) return false;
    const cells = [new Int32Array(1), new Int32Array(1)] as const;
    const times = [new BigUint64Array(1), new BigUint64Array(1), new BigUint64Array(1)] as const;
    return o.OCSP_resp_find_status(basic, id, cells[0], cells[1], ...times) === 1;
  } finally {
    if (id !== null) o.OCSP_CERTID_free(id);
    if (basic !== null) o.OCSP_BASICRESP_free(basic);
    o.OCSP_RESPONSE_free(resp);
    drainErrorQueue();
  }
}

/**
 * Verifies a DER OCSP response for `leaf` (issued by `issuer`) against `store`, with `untrusted`
 * (a `STACK_OF(X509)` or null) to find the responder's certificate. Borrowed pointers only.
 * Returns what it says; throws `OCSP_INVALID` for anything that is not a valid answer.
 * @internal
 */
export function verifyOcspResponse(
  der: Uint8Array,
  leaf: Pointer,
  issuer: Pointer,
  untrusted: Pointer | null,
  store: Pointer,
  leewaySeconds: number,
): OcspResponse {
  const o = openssl();
  clearErrorQueue();
  const resp = decodeResponse(der);
  try {
    const code = o.OCSP_response_status(resp.ptr);
    if (code !== 0) {
      throw invalid(
        `the responder answered ${OCSP_RESPONSE_STATUS[code] ?? "status"} (${code}), not a status`,
      );
    }
    const basicPtr = o.OCSP_response_get1_basic(resp.ptr);
    if (basicPtr === null) throw invalid("it holds no basic response");
    const basic = new NativeHandle("OCSP_BASICRESP", basicPtr, (p) => o.OCSP_BASICRESP_free(p));
    try {
      // The signer must be the issuer, or carry OCSP-signing and be certified by the issuer; its
      // chain must reach `store`. (OCSP_NOVERIFY, OCSP_NOCHECKS, OCSP_TRUSTOTHER: never set.)
      const verified = o.OCSP_basic_verify(basicPtr, untrusted, store, 0);
      if (verified !== 1) {
        const entries = drainErrorQueue();
        // OpenSSL retries verification in other ways after the first failure, so the last entry
        // is often a follow-up ("root ca not trusted"); the OCSP library's own entry says why
        // (e.g. "missing ocspsigning usage").
        const why = entries.find((e) => e.library === ERR_LIB_OCSP) ?? entries[entries.length - 1];
        throw new TlsError(
          "OCSP_INVALID",
          `the OCSP response is not acceptable: its signature or signer is not trusted (${
            why?.reasonText || why?.text || "OCSP_basic_verify failed"
          })`,
          { openssl: entries },
        );
      }
      const idPtr = o.OCSP_cert_to_id(null, leaf, issuer); // SHA-1, as responders index
      if (idPtr === null) throw invalid("cannot compute the certificate's OCSP id");
      const id = new NativeHandle("OCSP_CERTID", idPtr, (p) => o.OCSP_CERTID_free(p));
      try {
        const status = new Int32Array(1);
        const reason = new Int32Array([-1]);
        const revoked = new BigUint64Array(1);
        const thisCell = new BigUint64Array(1);
        const nextCell = new BigUint64Array(1);
        if (
          o.OCSP_resp_find_status(basicPtr, idPtr, status, reason, revoked, thisCell, nextCell) !==
            1
        ) {
          throw invalid("it holds no entry for this certificate (a response for another one?)");
        }
        const thisUpdate = o.backend.fromAddress(thisCell[0]!);
        const nextUpdate = o.backend.fromAddress(nextCell[0]!);
        if (o.OCSP_check_validity(thisUpdate, nextUpdate, leewaySeconds, -1) !== 1) {
          const now = new Date().toISOString();
          throw invalid(
            `it is outside its validity window (thisUpdate ${
              timeToDate(thisUpdate).toISOString()
            }, nextUpdate ${
              nextUpdate === null ? "none" : timeToDate(nextUpdate).toISOString()
            }, now ${now}, leeway ${leewaySeconds} s)`,
          );
        }
        const s = status[0]!;
        const result: {
          -readonly [K in keyof OcspResponse]: OcspResponse[K];
        } = {
          status: s === V_OCSP_CERTSTATUS.GOOD
            ? "good"
            : s === V_OCSP_CERTSTATUS.REVOKED
            ? "revoked"
            : "unknown",
          responseStatus: "successful",
          thisUpdate: timeToDate(thisUpdate),
          nextUpdate: nextUpdate === null ? null : timeToDate(nextUpdate),
          producedAt: timeToDate(o.OCSP_resp_get0_produced_at(basicPtr)),
          responderId: responderIdOf(basicPtr),
          der: der.slice(),
        };
        if (result.status === "revoked") {
          result.revocationTime = timeToDate(o.backend.fromAddress(revoked[0]!));
          if (reason[0]! >= 0) {
            const text = o.OCSP_crl_reason_str(reason[0]!);
            if (text !== null) result.revocationReason = o.backend.readCString(text);
          }
        }
        return Object.freeze(result);
      } finally {
        id.close();
      }
    } finally {
      basic.close();
    }
  } finally {
    resp.close();
  }
}

/**
 * Whether a certificate carries the TLS feature extension with `status_request` (RFC 7633,
 * "OCSP must-staple"): a client must then insist on a valid staple. The extension's value is
 * `SEQUENCE OF INTEGER`; read from its DER here (no ASN.1 template needed for five bytes).
 * @internal
 */
export function requiresStaple(x509: Pointer): boolean {
  const o = openssl();
  const at = o.X509_get_ext_by_NID(x509, NID_tlsfeature, -1);
  if (at < 0) return false;
  const ext = o.X509_get_ext(x509, at);
  const data = ext === null ? null : o.X509_EXTENSION_get_data(ext);
  if (data === null) return false;
  const p = o.ASN1_STRING_get0_data(data);
  const length = o.ASN1_STRING_length(data);
  if (p === null || length < 2) return false;
  const der = o.backend.readBytes(p, 0, length);
  if (der[0] !== 0x30) return false; // SEQUENCE
  for (let i = 2; i + 2 <= der.length;) {
    const tag = der[i]!;
    const len = der[i + 1]!;
    if (tag !== 0x02 || len < 1 || len > 4 || i + 2 + len > der.length) return false;
    let value = 0;
    for (let k = 0; k < len; k++) value = value * 256 + der[i + 2 + k]!;
    if (value === TLS_FEATURE_STATUS_REQUEST) return true;
    i += 2 + len;
  }
  return false;
}

function derOf(input: PemOrDer | Certificate): PemOrDer {
  return input instanceof Certificate ? input.der : input;
}

/**
 * Parses and verifies an OCSP response obtained elsewhere (a staple, a responder's answer, a
 * file), for `certificate` issued by `issuer`. Returns what it says about the certificate; a
 * revoked certificate is a valid answer (`status: "revoked"`), not an exception.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { parseOcspResponse } from "../../mod.ts";
 * const der = await Deno.readFile("staple.der");
 * const info = parseOcspResponse(der, {
 *   certificate: readFileSync("server.pem", "utf8"),
 *   issuer: readFileSync("intermediate.pem", "utf8"),
 * });
 * console.log(info.status, info.thisUpdate, info.nextUpdate, info.revocationReason);
 * ```
 * @throws {TlsError} `OCSP_INVALID` (with the reason) for garbage, truncated, unsigned, wrongly
 * signed, stale, future-dated or foreign responses and non-successful response statuses;
 * `INVALID_CERTIFICATE` for unparsable certificates.
 * @throws {TypeError | RangeError} for bad options.
 */
export function parseOcspResponse(der: Uint8Array, options: OcspCheckOptions): OcspResponse {
  if (!(der instanceof Uint8Array)) throw new TypeError("der must be a Uint8Array");
  if (typeof options !== "object" || options === null) {
    throw new TypeError("options must be an object");
  }
  const leeway = options.leewaySeconds ?? DEFAULT_OCSP_LEEWAY_SECONDS;
  if (!Number.isFinite(leeway) || leeway < 0) {
    throw new RangeError("leewaySeconds must be a non-negative number");
  }
  const o = openssl();
  const owned: NativeHandle[] = [];
  const load = (input: PemOrDer | Certificate) => {
    const handles = loadCertificates(derOf(input));
    owned.push(...handles);
    return handles;
  };
  const storePtr = o.X509_STORE_new();
  if (storePtr === null) throw new TlsError("INTERNAL", "X509_STORE_new failed");
  const store = new NativeHandle("X509_STORE", storePtr, (p) => o.X509_STORE_free(p));
  const untrusted = o.OPENSSL_sk_new_null();
  try {
    if (untrusted === null) throw new TlsError("INTERNAL", "out of memory");
    const leaf = load(options.certificate)[0]!;
    const issuer = load(options.issuer)[0]!;
    const anchors = options.trust === undefined ? [issuer] : options.trust.flatMap(load);
    // The issuer may be an intermediate: let it end the responder's chain as a trust anchor.
    if (options.trust === undefined) o.X509_STORE_set_flags(storePtr, X509_V_FLAG_PARTIAL_CHAIN);
    for (const anchor of anchors) o.X509_STORE_add_cert(storePtr, anchor.ptr); // own references
    o.OPENSSL_sk_push(untrusted, issuer.ptr);
    for (const extra of (options.untrusted ?? []).flatMap(load)) {
      o.OPENSSL_sk_push(untrusted, extra.ptr);
    }
    drainErrorQueue(); // "cert already in hash table" is harmless
    return verifyOcspResponse(der, leaf.ptr, issuer.ptr, untrusted, storePtr, leeway);
  } finally {
    if (untrusted !== null) o.OPENSSL_sk_free(untrusted); // the stack only, not the certificates
    store.close();
    for (const h of owned) h.close();
  }
}
