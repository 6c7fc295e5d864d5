/**
 * Signature algorithms and record sizes: `sigalgs` (`SSL_CTX_set1_sigalgs_list`), which
 * signature schemes this side offers and accepts; `maxSendFragment`
 * (`SSL_CTX_set_max_send_fragment`), the largest record it sends; and the scheme the peer signed
 * the handshake with (`conn.peerSignatureAlgorithm`: `SSL_get0_peer_signature_name` on OpenSSL
 * 3.5+, else named from `SSL_get_peer_signature_type_nid` and the digest). The TLS 1.3 cipher
 * suites are part of `ciphers` (`protocol.ts`).
 *
 * @module
 */
import { supports } from "../core/capabilities.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { openssl, type Pointer, SIGNATURE_NID } from "../core/native.ts";
import type { Feature, SchemaOf } from "./feature.ts";

/** Signature algorithm and record size options of both sides. */
export interface AlgorithmsOptions {
  /**
   * The signature schemes this side offers and accepts (`SSL_CTX_set1_sigalgs_list`), most
   * preferred first, by their TLS names (`"ecdsa_secp256r1_sha256"`, `"rsa_pss_rsae_sha256"`,
   * `"ed25519"`, ...) or OpenSSL's `"ECDSA+SHA256"` form; an array, or a colon-separated string
   * as Node's `sigalgs`. Clients offer them for the server's signature (and use them for their
   * own certificate); servers sign with one of them the client also offers, and ask clients for
   * certificates signed with them. A peer that has none in common fails the handshake (a server
   * without a usable one sends handshake_failure). Default: OpenSSL's list. A name this OpenSSL
   * does not know is a TypeError.
   */
  sigalgs?: string | readonly string[];
  /**
   * The largest plaintext this side puts in one record, in bytes: 512 to 16384 (the default,
   * TLS's maximum; `SSL_CTX_set_max_send_fragment`). Smaller records let a slow link start
   * decrypting sooner, at some bandwidth cost. Only what this side sends: the peer's records
   * keep their own size. Anything else is a RangeError.
   */
  maxSendFragment?: number;
}

/** The names in `sigalgs`, as given (a string is split at `:`). */
function namesOf(sigalgs: string | readonly string[]): readonly string[] {
  return typeof sigalgs === "string" ? sigalgs.split(":") : sigalgs;
}

/** `SSL_CTX_set1_sigalgs_list`, or a TypeError naming the first name OpenSSL does not know. */
function setSigalgs(ctx: Pointer, names: readonly string[]): void {
  const o = openssl();
  if (o.SSL_CTX_set1_sigalgs_list(ctx, names.join(":")) === 1) return;
  drainErrorQueue();
  // OpenSSL only says that the list failed: try each name alone to say which one.
  const unknown = names.find((name) => {
    const ok = o.SSL_CTX_set1_sigalgs_list(ctx, name) === 1;
    drainErrorQueue();
    return !ok;
  });
  throw new TypeError(
    `sigalgs: ${JSON.stringify(unknown ?? names.join(":"))} is not a signature algorithm ` +
      `${o.versionText} knows (use TLS names such as "ecdsa_secp256r1_sha256", ` +
      `"rsa_pss_rsae_sha256", "ed25519")`,
  );
}

const HASH_NAMES: Readonly<Record<number, string>> = {
  [SIGNATURE_NID.sha1]: "sha1",
  [SIGNATURE_NID.sha224]: "sha224",
  [SIGNATURE_NID.sha256]: "sha256",
  [SIGNATURE_NID.sha384]: "sha384",
  [SIGNATURE_NID.sha512]: "sha512",
};

/** ECDSA schemes by digest: since TLS 1.3 the name carries the curve (RFC 8446 4.2.3). */
const ECDSA_NAMES: Readonly<Record<string, string>> = {
  sha256: "ecdsa_secp256r1_sha256",
  sha384: "ecdsa_secp384r1_sha384",
  sha512: "ecdsa_secp521r1_sha512",
  sha224: "ecdsa_sha224",
  sha1: "ecdsa_sha1",
};

/** The key type (NID) of the peer's certificate, or 0. */
function peerKeyType(ssl: Pointer): number {
  const o = openssl();
  const get = o.SSL_get1_peer_certificate ?? o.SSL_get_peer_certificate;
  const x = get === null ? null : get(ssl);
  if (x === null || o.EVP_PKEY_get_base_id === null) {
    if (x !== null) o.X509_free(x);
    return 0;
  }
  try {
    const key = o.X509_get0_pubkey(x);
    return key === null ? 0 : o.EVP_PKEY_get_base_id(key);
  } finally {
    o.X509_free(x); // get1: we own a reference
  }
}

/**
 * The signature scheme the peer signed the handshake on `ssl` with, by its IANA name (e.g.
 * `"ecdsa_secp256r1_sha256"`, `"rsa_pss_rsae_sha256"`, `"ed25519"`), or `null` when it signed
 * nothing (a resumed session, a PSK, a client without a certificate). OpenSSL 3.5+ names it
 * (`SSL_get0_peer_signature_name`); before, the name is built from the signature type, the
 * digest and (to tell `rsa_pss_rsae_*` from `rsa_pss_pss_*`) the peer certificate's key type.
 */
export function peerSignatureAlgorithmOf(ssl: Pointer): string | null {
  const o = openssl();
  if (supports("peerSignatureName")) {
    const cell = new BigUint64Array(1); // const char **
    if (o.SSL_get0_peer_signature_name!(ssl, cell) !== 1) return null;
    const p = o.backend.fromAddress(cell[0]!);
    return p === null ? null : o.backend.readCString(p);
  }
  const typeCell = new Int32Array(1);
  if (o.SSL_get_peer_signature_type_nid(ssl, typeCell) !== 1) return null;
  const type = typeCell[0]!;
  if (type === SIGNATURE_NID.ED25519) return "ed25519";
  if (type === SIGNATURE_NID.ED448) return "ed448";
  const digest = o.SSL_get_peer_signature_nid(ssl);
  const hash = digest === null ? undefined : HASH_NAMES[digest];
  if (hash === undefined) return null;
  switch (type) {
    case SIGNATURE_NID.ecPublicKey:
      return ECDSA_NAMES[hash] ?? null;
    case SIGNATURE_NID.rsaEncryption:
      return `rsa_pkcs1_${hash}`;
    case SIGNATURE_NID.rsassaPss:
      // Both PSS schemes report EVP_PKEY_RSA_PSS: the certificate's key says which one.
      return peerKeyType(ssl) === SIGNATURE_NID.rsassaPss
        ? `rsa_pss_pss_${hash}`
        : `rsa_pss_rsae_${hash}`;
    default:
      return null;
  }
}

/** `sigalgs` and `maxSendFragment`. */
export const algorithms: Feature<AlgorithmsOptions> = {
  name: "signature algorithms and record size",
  options: {
    sigalgs: { role: "both", scope: "context" },
    maxSendFragment: { role: "both", scope: "context" },
  } satisfies SchemaOf<AlgorithmsOptions, AlgorithmsOptions>,
  validate(_role, { sigalgs, maxSendFragment }) {
    if (sigalgs !== undefined) {
      if (typeof sigalgs !== "string" && !Array.isArray(sigalgs)) {
        throw new TypeError("sigalgs must be an array of names or a colon-separated string");
      }
      const names = namesOf(sigalgs);
      if (names.length === 0) throw new TypeError("sigalgs must name at least one algorithm");
      for (const name of names) {
        if (typeof name !== "string" || !/^[A-Za-z0-9_.+-]+$/.test(name)) {
          throw new TypeError(`sigalgs: ${JSON.stringify(name)} is not a signature algorithm name`);
        }
      }
    }
    if (
      maxSendFragment !== undefined &&
      (!Number.isInteger(maxSendFragment) || maxSendFragment < 512 || maxSendFragment > 16384)
    ) {
      throw new RangeError(
        `maxSendFragment must be an integer from 512 to 16384, got ${String(maxSendFragment)}`,
      );
    }
  },
  configure({ ctx, options }) {
    if (options.sigalgs !== undefined) setSigalgs(ctx, namesOf(options.sigalgs));
    if (
      options.maxSendFragment !== undefined &&
      openssl().SSL_CTX_set_max_send_fragment(ctx, options.maxSendFragment) !== 1
    ) {
      throw new RangeError(`OpenSSL refused maxSendFragment ${options.maxSendFragment}`);
    }
  },
  explainFailure(link, _state, { phase, why }) {
    if (phase !== "handshake" || (link.options as AlgorithmsOptions).sigalgs === undefined) {
      return undefined;
    }
    if (!/signature algorithm|sigalg/i.test(why)) return undefined;
    return {
      code: "HANDSHAKE_FAILED",
      message: `no signature algorithm in common with the peer (sigalgs; OpenSSL: ${why})`,
    };
  },
};
