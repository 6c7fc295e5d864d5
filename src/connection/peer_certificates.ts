/**
 * The peer's certificates of a connection (TLS or DTLS), copied out of OpenSSL when first asked
 * for, not at the end of every handshake: a DER copy of each, for every connection, was most of
 * an idle connection's ArrayBuffer memory. The connection keeps what {@link copyPeerCertificates}
 * returned, and copies them before the `SSL` goes away (if nobody asked), so they outlive it.
 *
 * @example
 * ```ts ignore
 * let peer: PeerCertificates | undefined;
 * const peerCertificates = () => (peer ??= engine.closed ? NO_PEER : copyPeerCertificates(engine));
 * ```
 * @module
 */
import type { TlsEngine } from "../tls/engine.ts";
import type { Certificate } from "../x509/certificate.ts";

/** The peer's certificate and verified chain. */
export interface PeerCertificates {
  readonly leaf: Certificate | null;
  readonly chain: readonly Certificate[];
}

/** No certificates: a closed engine's, or what a failed copy leaves. */
export const NO_PEER: PeerCertificates = Object.freeze({ leaf: null, chain: Object.freeze([]) });

/** Copies the peer's certificate and verified chain out of `engine` (an open one). */
export function copyPeerCertificates(engine: TlsEngine): PeerCertificates {
  const chain = engine.peerCertificateChain;
  // The verified chain starts with the peer's certificate: no second copy out of OpenSSL.
  return { leaf: chain[0] ?? engine.peerCertificate, chain: Object.freeze(chain) };
}
