/**
 * This side's own certificate: `cert` (with its chain), `key` and `passphrase` on the context,
 * and {@link useIdentity}, which puts an {@link Identity} on one connection (for the identities
 * that `onClientCertificate` and `onServerName` choose during the handshake).
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import type { NativeHandle } from "../core/ownership.ts";
import { openssl, type Pointer } from "../core/native.ts";
import { checkPemOrDer, loadCertificates, type PemOrDer } from "../x509/certificate.ts";
import { loadPrivateKey, type Passphrase } from "../x509/private_key.ts";
import type { Feature, SchemaOf } from "./feature.ts";

/** A certificate (optionally followed by its chain, leaf first) and its private key. */
export interface Identity {
  /** The certificate, PEM (may hold the chain after the leaf) or DER. */
  cert: PemOrDer;
  /** The private key, PEM or DER. */
  key: PemOrDer;
  /** The passphrase of an encrypted key. Byte passphrases are zeroed after use. */
  passphrase?: Passphrase;
}

/** This side's certificate: options of both sides (required on servers without `psk`). */
export interface IdentityOptions {
  /** This side's certificate (PEM may carry the chain after the leaf). Required for servers. */
  cert?: PemOrDer;
  /** The private key for {@link cert}. */
  key?: PemOrDer;
  /** The passphrase of an encrypted {@link key}. */
  passphrase?: Passphrase;
}

/**
 * Uses `identity` for one connection (`SSL_use_cert_and_key`, with the whole chain: the man
 * page's one-certificate limit of `client_cert_cb` does not apply here). `from` names the
 * callback that chose it, for messages.
 */
export function useIdentity(ssl: Pointer, identity: Identity, from: string): void {
  if (typeof identity !== "object" || identity === null) {
    throw new TypeError(`${from} must return { cert, key } or null`);
  }
  const o = openssl();
  const certs = loadCertificates(identity.cert, `${from}: cert`);
  let key: NativeHandle | undefined;
  const chain = o.OPENSSL_sk_new_null();
  try {
    key = loadPrivateKey(identity.key, identity.passphrase, `${from}: key`);
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
    key?.close();
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
  } satisfies SchemaOf<IdentityOptions, IdentityOptions>,
  validate(_role, options) {
    checkPemOrDer("cert", options.cert);
    checkPemOrDer("key", options.key);
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("cert and key must be given together");
    }
  },
  configure({ ctx, options }) {
    if (options.cert === undefined || options.key === undefined) return;
    const o = openssl();
    const certs = loadCertificates(options.cert, "cert");
    try {
      const key = loadPrivateKey(options.key, options.passphrase, "key");
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
