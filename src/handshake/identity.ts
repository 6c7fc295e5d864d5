/**
 * This side's own certificate: `cert` (with its chain), `key` and `passphrase` on the context,
 * or `pfx` (a PKCS#12 file) and `passphrase`; and {@link useIdentity}, which puts an {@link Identity} on one connection (for the identities
 * that `onClientCertificate` and `onServerName` choose during the handshake).
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import type { NativeHandle } from "../core/ownership.ts";
import { openssl, type Pointer } from "../core/native.ts";
import { checkPemOrDer, loadCertificates, type PemOrDer } from "../x509/certificate.ts";
import { loadPkcs12 } from "../x509/pkcs12.ts";
import { loadPrivateKey, type Passphrase } from "../x509/private_key.ts";
import type { Feature, SchemaOf } from "./feature.ts";

/**
 * A certificate and its private key: PEM/DER ({@link PemIdentity}) or a PKCS#12 file
 * ({@link Pkcs12Identity}).
 */
export type Identity = PemIdentity | Pkcs12Identity;

/**
 * A certificate (optionally followed by its chain, leaf first) and its private key.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import type { PemIdentity } from "../../mod.ts";
 * const id: PemIdentity = {
 *   cert: readFileSync("client-chain.pem", "utf8"),
 *   key: readFileSync("client.key", "utf8"),
 * };
 * console.log(id.cert.length);
 * ```
 */
export interface PemIdentity {
  /** The certificate, PEM (may hold the chain after the leaf) or DER. */
  cert: PemOrDer;
  /** The private key, PEM or DER. */
  key: PemOrDer;
  /** The passphrase of an encrypted key. Byte passphrases are zeroed after use. */
  passphrase?: Passphrase;
  /** Not with `cert`/`key`: see {@link Pkcs12Identity}. */
  pfx?: never;
}

/**
 * A PKCS#12 file (`.p12` / `.pfx`): the key, its certificate and the chain in one encrypted
 * file, as `openssl pkcs12 -export` and Windows/macOS/Java key stores write it.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connect, type Pkcs12Identity } from "../../mod.ts";
 * const id: Pkcs12Identity = { pfx: readFileSync("client.p12"), passphrase: "secret" };
 * const conn = await connect({
 *   hostname: "mtls.example",
 *   port: 443,
 *   onClientCertificate: () => id,
 * });
 * conn.close();
 * ```
 */
export interface Pkcs12Identity {
  /** The PKCS#12 file's bytes (DER). Its certificates after the key's own are the chain. */
  pfx: Uint8Array;
  /**
   * The passphrase that opens it (absent or `""` for a file exported with an empty one). Byte
   * passphrases are zeroed after use.
   */
  passphrase?: Passphrase;
  /** Not with `pfx`. */
  cert?: never;
  /** Not with `pfx`. */
  key?: never;
}

/** This side's certificate: options of both sides (required on servers without `psk`). */
export interface IdentityOptions {
  /** This side's certificate (PEM may carry the chain after the leaf). Required for servers. */
  cert?: PemOrDer;
  /** The private key for {@link cert}. */
  key?: PemOrDer;
  /** The passphrase of an encrypted {@link key}, or of {@link pfx}. */
  passphrase?: Passphrase;
  /**
   * This side's certificate, chain and key as one PKCS#12 file (`.p12` / `.pfx` bytes), instead
   * of `cert` and `key`; opened with {@link passphrase}. Files with OpenSSL 3's default AES
   * encryption load as they are; legacy RC2-40 / 3DES files (`openssl pkcs12 -export -legacy`,
   * older Windows exports) load through OpenSSL's legacy provider, loaded for the process the
   * first time one is met. A wrong passphrase is `BAD_PASSPHRASE`; bytes that are not PKCS#12,
   * `INVALID_CERTIFICATE`.
   */
  pfx?: Uint8Array;
}

/** The certificates (leaf first) and key of `identity`, owned by the caller. */
function loadIdentity(
  identity: { cert?: PemOrDer; key?: PemOrDer; pfx?: Uint8Array; passphrase?: Passphrase },
  prefix: string,
): { certs: NativeHandle[]; key: NativeHandle } {
  if (identity.pfx !== undefined) {
    const { certs, key } = loadPkcs12(identity.pfx, identity.passphrase, `${prefix}pfx`);
    return { certs: [...certs], key };
  }
  const certs = loadCertificates(identity.cert!, `${prefix}cert`);
  try {
    return { certs, key: loadPrivateKey(identity.key!, identity.passphrase, `${prefix}key`) };
  } catch (error) {
    for (const c of certs) c.close();
    throw error;
  }
}

/**
 * Uses `identity` for one connection (`SSL_use_cert_and_key`, with the whole chain: the man
 * page's one-certificate limit of `client_cert_cb` does not apply here). `from` names the
 * callback that chose it, for messages.
 */
export function useIdentity(ssl: Pointer, identity: Identity, from: string): void {
  if (typeof identity !== "object" || identity === null) {
    throw new TypeError(`${from} must return { cert, key }, { pfx, passphrase } or null`);
  }
  if (identity.pfx !== undefined && (identity.cert !== undefined || identity.key !== undefined)) {
    throw new TypeError(`${from} must return either { cert, key } or { pfx }, not both`);
  }
  const o = openssl();
  const { certs, key } = loadIdentity(identity, `${from}: `);
  const chain = o.OPENSSL_sk_new_null();
  try {
    if (chain === null) throw new TlsError("INTERNAL", "out of memory");
    for (const c of certs.slice(1)) o.OPENSSL_sk_push(chain, c.ptr);
    // SSL_use_cert_and_key takes its own references to everything.
    if (o.SSL_use_cert_and_key(ssl, certs[0]!.ptr, key.ptr, chain, 1) !== 1) {
      throw new TlsError("INVALID_KEY", `${from}: the key does not match its certificate`, {
        openssl: drainErrorQueue(),
      });
    }
  } finally {
    if (chain !== null) o.OPENSSL_sk_free(chain); // frees the stack, not the certificates
    key.close();
    for (const c of certs) c.close();
  }
}

/** The context's own certificate, chain and key. */
export const identity: Feature<IdentityOptions> = {
  name: "identity",
  options: {
    cert: { role: "both", scope: "context" },
    key: { role: "both", scope: "context" },
    passphrase: { role: "both", scope: "context" },
    pfx: { role: "both", scope: "context" },
  } satisfies SchemaOf<IdentityOptions, IdentityOptions>,
  validate(_role, options) {
    checkPemOrDer("cert", options.cert);
    checkPemOrDer("key", options.key);
    if (options.pfx !== undefined) {
      if (!(options.pfx instanceof Uint8Array)) {
        throw new TypeError(
          'pfx must be the bytes of a PKCS#12 file (a Uint8Array), e.g. readFileSync("id.p12")',
        );
      }
      if (options.cert !== undefined || options.key !== undefined) {
        throw new TypeError("give either pfx or cert and key, not both");
      }
    }
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("cert and key must be given together");
    }
  },
  configure({ ctx, options }) {
    if ((options.cert === undefined || options.key === undefined) && options.pfx === undefined) {
      return;
    }
    const o = openssl();
    const { certs, key } = loadIdentity(options, "");
    try {
      try {
        if (o.SSL_CTX_use_certificate(ctx, certs[0]!.ptr) !== 1) {
          fail("the certificate was refused (SSL_CTX_use_certificate)", "INVALID_KEY");
        }
        for (const extra of certs.slice(1)) {
          if (o.SSL_CTX_add1_chain_cert(ctx, extra.ptr) !== 1) {
            fail("a chain certificate was refused", "INVALID_KEY");
          }
        }
        if (
          o.SSL_CTX_use_PrivateKey(ctx, key.ptr) !== 1 || o.SSL_CTX_check_private_key(ctx) !== 1
        ) {
          fail("the private key does not match the certificate", "INVALID_KEY");
        }
      } finally {
        key.close();
      }
    } finally {
      for (const c of certs) c.close();
    }
  },
};
