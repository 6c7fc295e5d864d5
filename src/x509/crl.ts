/**
 * Certificate revocation lists (CRLs), PEM (one file may hold several) or DER, loaded into
 * OpenSSL `X509_CRL` objects for a trust store.
 *
 * @module
 */
import type { NativeHandle } from "../core/ownership.ts";
import { openssl } from "../core/native.ts";
import { loadObjects, type PemObjectKind, type PemOrDer } from "./certificate.ts";

const CRLS: PemObjectKind = {
  type: "X509_CRL",
  pemBlock: "X509 CRL",
  noun: "CRL",
  noneFound: 'no CRL found in the PEM text (a CRL starts with "-----BEGIN X509 CRL-----"; ' +
    "make one with openssl ca -gencrl)",
  // Skips PEM blocks of other types (a CA certificate in the same file) by itself.
  readPem: (bio) => openssl().PEM_read_bio_X509_CRL(bio, null, null, null),
  readDer: (bio) => openssl().d2i_X509_CRL_bio(bio, null),
  free: (p) => openssl().X509_CRL_free(p),
};

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
  return loadObjects(input, label, CRLS);
}
