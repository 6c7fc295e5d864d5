/**
 * Certificate revocation lists (CRLs), PEM (one file may hold several) or DER, loaded into
 * OpenSSL `X509_CRL` objects for a trust store.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import { ERR_LIB_PEM, openssl, PEM_R_NO_START_LINE } from "../core/native.ts";
import {
  describe,
  isPem,
  memoryBioFrom,
  notPemError,
  type PemOrDer,
  toBytes,
} from "./certificate.ts";

/**
 * Parses one or more CRLs. PEM input may hold several `X509 CRL` blocks (other blocks, such as
 * certificates, are skipped); DER input holds exactly one. Returns owned `X509_CRL` handles; the
 * caller closes them.
 *
 * @param label What the input is called in error messages: the option, e.g. `"crls[1]"`.
 * @throws {TlsError} `INVALID_CERTIFICATE` if no CRL parses, a CRL block is broken, or DER input
 * has trailing bytes; the message names `label`.
 */
export function loadCrls(input: PemOrDer, label = "CRL"): NativeHandle[] {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new TypeError(`${label} must be a PEM string or a Uint8Array`);
  }
  const o = openssl();
  const bytes = toBytes(input);
  if (typeof input === "string" && !isPem(bytes)) {
    throw notPemError(input, label, "X509 CRL", "INVALID_CERTIFICATE");
  }
  const out: NativeHandle[] = [];
  clearErrorQueue();
  const bio = memoryBioFrom(bytes);
  try {
    if (isPem(bytes)) {
      for (;;) {
        // Skips PEM blocks of other types (a CA certificate in the same file) by itself.
        const crl = o.PEM_read_bio_X509_CRL(bio.ptr, null, null, null);
        if (crl === null) break;
        out.push(new NativeHandle("X509_CRL", crl, (p) => o.X509_CRL_free(p)));
      }
      const errors = drainErrorQueue();
      const broken = errors.some((e) =>
        !(e.library === ERR_LIB_PEM && e.reason === PEM_R_NO_START_LINE)
      );
      if (out.length === 0 || broken) {
        for (const h of out) h.close();
        throw new TlsError(
          "INVALID_CERTIFICATE",
          out.length === 0 && !broken
            ? `${label}: no CRL found in the PEM text (a CRL starts with ` +
              `"-----BEGIN X509 CRL-----"; make one with openssl ca -gencrl)`
            : `${label}: could not parse ${describe(input, "CRL")} as PEM`,
          { openssl: errors },
        );
      }
    } else {
      const crl = o.d2i_X509_CRL_bio(bio.ptr, null);
      if (crl === null || o.BIO_ctrl_pending(bio.ptr) !== 0) {
        if (crl !== null) o.X509_CRL_free(crl);
        throw new TlsError(
          "INVALID_CERTIFICATE",
          `${label}: could not parse ${describe(input, "CRL")} as DER`,
          { openssl: drainErrorQueue() },
        );
      }
      out.push(new NativeHandle("X509_CRL", crl, (p) => o.X509_CRL_free(p)));
    }
  } finally {
    bio.close();
  }
  return out;
}
