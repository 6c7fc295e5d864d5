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

/** The strings of {@link staticText}, by address. */
const interned = new Map<number, string>();
const MAX_INTERNED = 256;

/**
 * A NUL-terminated string that lives in libssl's static tables (a protocol or cipher name, never
 * freed while the library is loaded): read once per process and shared by every connection,
 * instead of a fresh string per handshake that each idle connection keeps. Group names are not
 * static: see {@link sharedText}.
 */
function staticText(p: Pointer): string {
  const backend = openssl().backend;
  const address = backend.address(p);
  let s = interned.get(address);
  if (s === undefined) {
    s = backend.readCString(p);
    if (interned.size < MAX_INTERNED) interned.set(address, s);
  }
  return s;
}

/** The canonical copies of {@link sharedText}. */
const canonical = new Map<string, string>();

/**
 * A NUL-terminated string that is one of a few names but not static in OpenSSL (a group name
 * lives in its `SSL_CTX`, whose memory a later one may reuse: not to be remembered by address):
 * read, then exchanged for the process's one copy of the same text, so that an idle connection
 * keeps no string of its own.
 */
export function sharedText(p: Pointer): string {
  const s = openssl().backend.readCString(p);
  const kept = canonical.get(s);
  if (kept !== undefined) return kept;
  if (canonical.size < MAX_INTERNED) canonical.set(s, s);
  return s;
}

/** The negotiated protocol (`SSL_get_version`, a static string), e.g. `"TLSv1.3"`. */
export function protocolOf(ssl: Pointer): string {
  const p = openssl().SSL_get_version(ssl);
  return p === null ? "" : staticText(p);
}

/** The negotiated cipher suite (`SSL_CIPHER_get_name`, static), e.g. `"TLS_AES_256_GCM_SHA384"`. */
export function cipherOf(ssl: Pointer): string {
  const o = openssl();
  const c = o.SSL_get_current_cipher(ssl);
  const p = c === null ? null : o.SSL_CIPHER_get_name(c);
  return p === null ? "" : staticText(p);
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
