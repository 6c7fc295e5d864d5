/**
 * Client certificates chosen during the handshake: `onClientCertificate` (sync or async) is asked
 * when the server requests a certificate, with the server's acceptable issuers; and
 * {@link identityForAcceptableIssuers}, the common answer done the way browsers do it (the
 * OpenSSL FAQ's advice): send the first certificate whose chain leads to a CA the server named.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { CERT_CB, CERT_CB_SUSPEND, openssl } from "../core/native.ts";
import { Certificate, nameToDer, nameToString } from "../x509/certificate.ts";
import { loadPkcs12 } from "../x509/pkcs12.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { type Identity, useIdentity } from "./identity.ts";
import { routedCallback } from "./routing.ts";

/** A distinguished name as text (RFC 2253) and DER. */
export interface DistinguishedName {
  /** e.g. `"CN=Test Root CA,O=libssl-ffi"`. */
  readonly name: string;
  /** The DER encoding. */
  readonly der: Uint8Array;
}

/** What {@link ClientCertificateOptions.onClientCertificate} is told about the server's request. */
export interface CertificateRequest {
  /** The CAs the server accepts (`SSL_get_client_CA_list`); may be empty. */
  readonly acceptableIssuers: readonly DistinguishedName[];
  /** The server name this connection asked for (SNI), if any. */
  readonly serverName: string | undefined;
}

/** Client options. */
export interface ClientCertificateOptions {
  /**
   * Called when the server asks for a certificate and no static `cert` was given. Return an
   * {@link Identity}, `null` to send none, or a Promise of either (the handshake suspends until it
   * settles). Called at most once per handshake, and once per post-handshake request (TLS 1.3,
   * with `postHandshakeAuth: true`).
   */
  onClientCertificate?: (
    request: CertificateRequest,
  ) => Identity | null | Promise<Identity | null>;
}

type Options = ClientCertificateOptions & { cert?: unknown; pfx?: unknown };

function requestOf(link: Link): CertificateRequest {
  const o = openssl();
  const sk = o.SSL_get_client_CA_list(link.ssl); // borrowed
  const issuers: DistinguishedName[] = [];
  for (let i = 0; i < o.sk_num(sk); i++) {
    const name = o.sk_value(sk!, i);
    if (name !== null) issuers.push({ name: nameToString(name), der: nameToDer(name) });
  }
  return { acceptableIssuers: issuers, serverName: link.servername };
}

/**
 * `SSL_CTX_set_cert_cb`'s callback (clients: the server asked for a certificate). -1
 * (`CERT_CB_SUSPEND`) suspends with `SSL_ERROR_WANT_X509_LOOKUP` while the user's Promise runs.
 */
function onCert(link: Link): number {
  const options = link.options as Options;
  const handler = options.onClientCertificate;
  if (handler === undefined || link.role !== "client") return 1;
  // A static identity in the context wins; OpenSSL sends it.
  if (options.cert !== undefined || options.pfx !== undefined) return 1;
  const settled = link.callbacks.settle("clientCertificate", () => handler(requestOf(link)));
  if (!settled.done) return CERT_CB_SUSPEND;
  // A post-handshake request (post_handshake_auth.ts): forget the answer, the next one asks anew.
  if (link.established) link.callbacks.reset();
  const chosen = settled.value;
  if (chosen === null) return 1; // send no certificate
  try {
    useIdentity(link.ssl, chosen, "onClientCertificate");
  } catch (error) {
    // The identity the callback returned does not load (an encrypted key without its
    // passphrase, a broken PEM): that is this library's finding, reported as itself
    // (BAD_PASSPHRASE, INVALID_KEY, ...), not as a failure of the user's callback.
    if (!(error instanceof TlsError)) throw error;
    link.reject(error);
    return 0;
  }
  return 1;
}

/** `onClientCertificate`. */
export const clientCertificate: Feature<Options> = {
  name: "client certificate",
  options: {
    onClientCertificate: { role: "client", scope: "context" },
  } satisfies SchemaOf<ClientCertificateOptions, Record<never, never>>,
  validate(_role, options) {
    if (
      options.onClientCertificate !== undefined && typeof options.onClientCertificate !== "function"
    ) {
      throw new TypeError("onClientCertificate must be a function");
    }
  },
  configure({ ctx, options }) {
    if (options.onClientCertificate === undefined) return;
    openssl().SSL_CTX_set_cert_cb(ctx, routedCallback(CERT_CB, onCert, { notOurs: 1 }), null);
  },
};

const chains = new WeakMap<Identity, readonly Certificate[]>();

/**
 * The certificates of a PKCS#12 identity (opening it needs the passphrase, which is kept: the
 * identity may be used afterwards).
 */
function pkcs12Chain(pfx: Uint8Array, identity: Identity): Certificate[] {
  const { key, certs } = loadPkcs12(pfx, identity.passphrase, "pfx", true);
  try {
    return certs.map((c) => Certificate.fromX509(c.ptr));
  } finally {
    key.close();
    for (const c of certs) c.close();
  }
}

function chainOf(identity: Identity): readonly Certificate[] {
  let chain = chains.get(identity);
  if (chain === undefined) {
    chain = identity.pfx !== undefined
      ? pkcs12Chain(identity.pfx, identity)
      : Certificate.parseAll(identity.cert);
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
 * import { readFileSync } from "node:fs";
 * import { matchesAcceptableIssuers } from "../../mod.ts";
 * const clientChainPem = readFileSync("client-chain.pem", "utf8");
 * const clientKeyPem = readFileSync("client.key", "utf8");
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
 * Options for {@link identityForAcceptableIssuers}.
 *
 * @example
 * ```ts
 * import type { IdentityChoiceOptions } from "../../mod.ts";
 * const options: IdentityChoiceOptions = { whenNoIssuersNamed: "none" };
 * console.log(options);
 * ```
 */
export interface IdentityChoiceOptions {
  /**
   * What to send when the server asks for a certificate but names no acceptable CA (allowed in
   * TLS 1.2 and 1.3; Mosquitto, and servers with `-verify` but no client CA file, do it):
   * `"first"` (the default) sends the first identity, `"none"` sends no certificate. A server
   * that names CAs always gets the first identity matching them, or none.
   */
  whenNoIssuersNamed?: "first" | "none";
}

/**
 * An `onClientCertificate` callback that answers with the first of `identities` matching the
 * server's acceptable issuers, or `null` (send no certificate) when none does. When the server
 * names no issuer at all, `options.whenNoIssuersNamed` decides (default: the first identity).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connect, identityForAcceptableIssuers } from "../../mod.ts";
 * const corpChainPem = readFileSync("corp-chain.pem", "utf8");
 * const corpKeyPem = readFileSync("corp.key", "utf8");
 * const labChainPem = readFileSync("lab-chain.pem", "utf8");
 * const labKeyPem = readFileSync("lab.key", "utf8");
 * const conn = await connect({
 *   hostname: "internal.example",
 *   port: 443,
 *   onClientCertificate: identityForAcceptableIssuers([
 *     { cert: corpChainPem, key: corpKeyPem },
 *     { cert: labChainPem, key: labKeyPem, passphrase: "..." },
 *   ], { whenNoIssuersNamed: "none" }), // never send a certificate to a server that names no CA
 * });
 * ```
 * @throws {TypeError} for a non-array `identities` or an unknown `whenNoIssuersNamed`.
 * @throws {TlsError} `INVALID_CERTIFICATE` (from the callback, so as a `CALLBACK_ERROR` cause)
 * when an identity's certificate does not parse.
 */
export function identityForAcceptableIssuers(
  identities: readonly Identity[],
  options: IdentityChoiceOptions = {},
): (request: CertificateRequest) => Identity | null {
  if (!Array.isArray(identities)) throw new TypeError("identities must be an array");
  const whenNone = options.whenNoIssuersNamed ?? "first";
  if (whenNone !== "first" && whenNone !== "none") {
    throw new TypeError(
      `whenNoIssuersNamed must be "first" or "none", got ${JSON.stringify(whenNone)}`,
    );
  }
  const list = [...identities];
  return (request) => {
    if (request.acceptableIssuers.length === 0) {
      return whenNone === "first" ? list[0] ?? null : null;
    }
    return list.find((identity) => matchesAcceptableIssuers(identity, request)) ?? null;
  };
}
