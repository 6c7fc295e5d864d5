/**
 * What a handshake settled, read off an `SSL`: protocol, cipher, names, the peer's certificate
 * and verified chain. Plain reads, no state: `TlsEngine`'s getters and the features share them.
 *
 * @module
 */
import { openssl, type Pointer } from "../core/native.ts";
import { Certificate } from "../x509/certificate.ts";

function text(p: Pointer | null): string {
  return p === null ? "" : openssl().backend.readCString(p);
}

/** The negotiated protocol (`SSL_get_version`), e.g. `"TLSv1.3"`. */
export function protocolOf(ssl: Pointer): string {
  return text(openssl().SSL_get_version(ssl));
}

/** The negotiated cipher suite, e.g. `"TLS_AES_256_GCM_SHA384"`, or `""`. */
export function cipherOf(ssl: Pointer): string {
  const o = openssl();
  const c = o.SSL_get_current_cipher(ssl);
  return c === null ? "" : text(o.SSL_CIPHER_get_name(c));
}

/** Servers: the SNI host name the client sent (`SSL_get_servername`), or `undefined`. */
export function requestedServerName(ssl: Pointer): string | undefined {
  const p = openssl().SSL_get_servername(ssl, 0 /* TLSEXT_NAMETYPE_host_name */);
  return p === null ? undefined : text(p);
}

/** The ALPN protocol the peers agreed on (`SSL_get0_alpn_selected`), or `null`. */
export function selectedAlpn(ssl: Pointer): string | null {
  const o = openssl();
  const data = new BigUint64Array(1);
  const len = new Uint32Array(1);
  o.SSL_get0_alpn_selected(ssl, data, len);
  const p = o.backend.fromAddress(data[0]!);
  if (p === null || len[0] === 0) return null;
  return new TextDecoder().decode(o.backend.readBytes(p, 0, len[0]!));
}

/** The peer's certificate, or `null` (e.g. a client that sent none, a PSK handshake). */
export function peerCertificateOf(ssl: Pointer): Certificate | null {
  const o = openssl();
  const get = o.SSL_get1_peer_certificate ?? o.SSL_get_peer_certificate;
  const x = get === null ? null : get(ssl);
  if (x === null) return null;
  try {
    return Certificate.fromX509(x);
  } finally {
    o.X509_free(x); // get1: we own a reference
  }
}

/** The verified chain, leaf first (empty if the peer was not verified). */
export function verifiedChainOf(ssl: Pointer): Certificate[] {
  const o = openssl();
  const sk = o.SSL_get0_verified_chain(ssl); // borrowed
  const out: Certificate[] = [];
  for (let i = 0; i < o.sk_num(sk); i++) {
    const x = o.sk_value(sk!, i);
    if (x !== null) out.push(Certificate.fromX509(x));
  }
  return out;
}

/**
 * This side's certificate (`SSL_get_certificate`), or `null`. The pointer is borrowed (the
 * `SSL`'s, no reference taken): its DER is copied out at once and the pointer not kept.
 */
export function localCertificateOf(ssl: Pointer): Certificate | null {
  const x = openssl().SSL_get_certificate(ssl);
  return x === null ? null : Certificate.fromX509(x);
}
