/**
 * Revocation by CRL: `crls` (certificate revocation lists added to the trust store) and
 * `crlCheck` (`X509_V_FLAG_CRL_CHECK` for the peer's certificate only, or with
 * `X509_V_FLAG_CRL_CHECK_ALL` for every certificate of its chain), on clients and on servers that
 * verify client certificates. A revoked certificate fails verification with verify code 23
 * (`X509_V_ERR_CERT_REVOKED`), a certificate whose issuer's CRL is missing with 3
 * (`X509_V_ERR_UNABLE_TO_GET_CRL`), an expired CRL with 12 (`X509_V_ERR_CRL_HAS_EXPIRED`): all as
 * `CERT_VERIFY_FAILED` with `verifyCode`.
 *
 * @module
 */
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import { openssl, X509_V_FLAG_CRL } from "../core/native.ts";
import { checkPemOrDer, type PemOrDer } from "../x509/certificate.ts";
import { loadCrls } from "../x509/crl.ts";
import type { Feature, SchemaOf } from "./feature.ts";
import { verifiesPeer } from "./verification.ts";

/**
 * Which certificates of the peer's chain need a valid CRL from their issuer: `"leaf"` only the
 * peer's own certificate (`X509_V_FLAG_CRL_CHECK`); `"chain"` every certificate, intermediates
 * included (`X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL`).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { type CrlCheck, TlsContext } from "../../mod.ts";
 * const crlCheck: CrlCheck = "leaf"; // only the issuing CA's CRL is at hand
 * using context = new TlsContext("client", {
 *   caCerts: [readFileSync("root.pem", "utf8")],
 *   crls: [readFileSync("issuing-ca.crl.pem", "utf8")],
 *   crlCheck,
 * });
 * ```
 */
export type CrlCheck = "leaf" | "chain";

/**
 * Revocation options of both sides (servers: with `requestClientCert`).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connect } from "../../mod.ts";
 * const conn = await connect({
 *   hostname: "internal.example",
 *   port: 443,
 *   caCerts: [readFileSync("root.pem", "utf8")],
 *   // one CRL per CA of the chain (root's, listing revoked intermediates; the intermediate's,
 *   // listing revoked leaves): crlCheck defaults to "chain"
 *   crls: [readFileSync("root.crl.pem", "utf8"), readFileSync("intermediate.crl.pem", "utf8")],
 * });
 * conn.close();
 * ```
 */
export interface RevocationOptions {
  /**
   * Certificate revocation lists to check the peer's chain against: PEM (a text may hold
   * several `X509 CRL` blocks) or DER, one or an array, added to the trust store
   * (`X509_STORE_add_crl`). Giving `crls` turns on `crlCheck` (default `"chain"`, as Node.js
   * does with its `crl` option: then every CA of the chain needs its CRL here; use
   * `crlCheck: "leaf"` to check only the peer's own certificate). A revoked certificate fails
   * the handshake with `CERT_VERIFY_FAILED`, verify code 23; a CA whose CRL is missing, verify
   * code 3; a CRL past its nextUpdate, 12. CRLs are not fetched from distribution points.
   * Servers: only with `requestClientCert`.
   */
  crls?: PemOrDer | readonly PemOrDer[];
  /**
   * Check revocation by CRL: `"leaf"` (the peer's own certificate) or `"chain"` (every
   * certificate of its chain). Default: `"chain"` when `crls` is given, else off. Without
   * `crls`, the CRLs come from the trust store itself: `X509 CRL` blocks in `caCerts` PEM text
   * (as in OpenSSL's CA files), or the `openssl rehash` `.r0` files of the system store's
   * directory (`SSL_CERT_DIR`).
   */
  crlCheck?: CrlCheck;
}

type Options = RevocationOptions & Parameters<typeof verifiesPeer>[1] & {
  caCerts?: readonly PemOrDer[];
};

const decoder = new TextDecoder();

/** Whether PEM text (or PEM bytes) holds an `X509 CRL` block. */
function holdsPemCrl(input: PemOrDer): boolean {
  const text = typeof input === "string" ? input : decoder.decode(input);
  return text.includes("-----BEGIN X509 CRL-----");
}

/** `crls` as an array. */
function crlList(crls: PemOrDer | readonly PemOrDer[]): readonly PemOrDer[] {
  return Array.isArray(crls) ? crls : [crls as PemOrDer];
}

/** `crls`, `crlCheck`. */
export const revocation: Feature<Options> = {
  name: "revocation",
  options: {
    crls: { role: "both", scope: "context" },
    crlCheck: { role: "both", scope: "context" },
  } satisfies SchemaOf<RevocationOptions, RevocationOptions>,
  validate(role, options) {
    const { crls, crlCheck } = options;
    if (crls !== undefined) {
      if (Array.isArray(crls)) crls.forEach((c, i) => checkPemOrDer(`crls[${i}]`, c));
      else checkPemOrDer("crls", crls);
    }
    if (crlCheck !== undefined && crlCheck !== "leaf" && crlCheck !== "chain") {
      throw new TypeError(`crlCheck must be "leaf" or "chain", got ${JSON.stringify(crlCheck)}`);
    }
    if ((crls !== undefined || crlCheck !== undefined) && !verifiesPeer(role, options)) {
      const which = crls !== undefined ? "crls" : "crlCheck";
      throw new TypeError(
        role === "server"
          ? `${which} needs requestClientCert: a server checks revocation only of the client ` +
            "certificates it asks for"
          : `${which} cannot be combined with unsafelyDisableVerification (nothing is verified)`,
      );
    }
  },
  configure({ ctx, options }) {
    const mode = options.crlCheck ?? (options.crls === undefined ? undefined : "chain");
    if (mode === undefined) return;
    const o = openssl();
    // CRL blocks in a caCerts PEM bundle count too, as in OpenSSL's own CA files
    // (X509_load_cert_crl_file): the CRLs that are "in the trust store" given as text.
    const sources: [PemOrDer, string][] = (options.caCerts ?? [])
      .map((input, i): [PemOrDer, string] => [input, `caCerts[${i}]`])
      .filter(([input]) => holdsPemCrl(input));
    if (options.crls !== undefined) {
      const many = Array.isArray(options.crls);
      for (const [i, input] of crlList(options.crls).entries()) {
        sources.push([input, many ? `crls[${i}]` : "crls"]);
      }
    }
    if (sources.length > 0) {
      const store = o.SSL_CTX_get_cert_store(ctx);
      if (store === null) fail("SSL_CTX_get_cert_store failed");
      for (const [input, label] of sources) {
        for (const crl of loadCrls(input, label)) {
          try {
            // Takes its own reference; the same CRL twice is not an error.
            if (o.X509_STORE_add_crl(store, crl.ptr) !== 1) {
              fail(`${label}: X509_STORE_add_crl failed`);
            }
          } finally {
            crl.close();
          }
        }
      }
      drainErrorQueue();
    }
    // On the context's verify parameters, not on the store: the store's own flags would also
    // apply to OCSP_basic_verify of stapled responses (ocsp.ts verifies with this store), whose
    // responder certificates have no CRL here. Each SSL inherits these flags (SSL_new copies
    // them, and ssl_verify_cert_chain ORs them into the verification's parameters).
    const param = o.SSL_CTX_get0_param(ctx);
    if (param === null) fail("SSL_CTX_get0_param failed");
    const flags = mode === "chain"
      ? X509_V_FLAG_CRL.CHECK | X509_V_FLAG_CRL.CHECK_ALL
      : X509_V_FLAG_CRL.CHECK;
    if (o.X509_VERIFY_PARAM_set_flags(param, flags) !== 1) {
      fail("X509_VERIFY_PARAM_set_flags failed");
    }
  },
};
