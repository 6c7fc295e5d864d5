/**
 * Choosing a client identity by the server's acceptable issuers: the common case of
 * `onClientCertificate`, done the way browsers do it (the OpenSSL FAQ's advice): send the first
 * certificate whose chain leads to a CA the server named.
 *
 * @module
 */
import type { CertificateRequest, Identity } from "./context.ts";
import { Certificate } from "./x509.ts";

const chains = new WeakMap<Identity, readonly Certificate[]>();

function chainOf(identity: Identity): readonly Certificate[] {
  let chain = chains.get(identity);
  if (chain === undefined) {
    chain = Certificate.parseAll(identity.cert);
    chains.set(identity, chain);
  }
  return chain;
}

/**
 * Whether `identity`'s certificate chain (leaf first, as given) was issued by, or contains, one of
 * `request`'s acceptable issuers. An empty list means the server accepts any issuer (TLS 1.2
 * servers may send none), so every identity matches.
 *
 * @example
 * ```ts
 * import { matchesAcceptableIssuers } from "../mod.ts";
 * const ok = matchesAcceptableIssuers(
 *   { cert: clientChainPem, key: clientKeyPem },
 *   { acceptableIssuers: [{ name: "CN=Corp Root,O=Corp", der: new Uint8Array() }], serverName: "x" },
 * );
 * ```
 */
export function matchesAcceptableIssuers(identity: Identity, request: CertificateRequest): boolean {
  if (request.acceptableIssuers.length === 0) return true;
  const wanted = new Set(request.acceptableIssuers.map((i) => i.name));
  return chainOf(identity).some((c) => wanted.has(c.issuer) || wanted.has(c.subject));
}

/**
 * An `onClientCertificate` callback that answers with the first of `identities` matching the
 * server's acceptable issuers, or `null` (send no certificate) when none does.
 *
 * @example
 * ```ts
 * import { connect, identityForAcceptableIssuers } from "../mod.ts";
 * const conn = await connect({
 *   hostname: "internal.example",
 *   port: 443,
 *   onClientCertificate: identityForAcceptableIssuers([
 *     { cert: corpChainPem, key: corpKeyPem },
 *     { cert: labChainPem, key: labKeyPem, passphrase: "..." },
 *   ]),
 * });
 * ```
 * @throws {TlsError} `INVALID_CERTIFICATE` (from the callback, so as a `CALLBACK_ERROR` cause)
 * when an identity's certificate does not parse.
 */
export function identityForAcceptableIssuers(
  identities: readonly Identity[],
): (request: CertificateRequest) => Identity | null {
  if (!Array.isArray(identities)) throw new TypeError("identities must be an array");
  const list = [...identities];
  return (request) => list.find((identity) => matchesAcceptableIssuers(identity, request)) ?? null;
}
