/**
 * Verifying the peer: trust anchors (`caCerts` or the system store), the verification mode
 * (clients always; servers when they ask for client certificates), and `onVerifyCertificate`,
 * the user's verdict on each certificate of the chain (sync, or async on clients).
 *
 * The name the certificate must match is set per connection by `server_name.ts`.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import { openssl, type Pointer, SSL_VERIFY, VERIFY_CB, X509_V } from "../core/native.ts";
import {
  Certificate,
  checkPemOrDer,
  loadCertificates,
  type PemOrDer,
} from "../x509/certificate.ts";
import type { Feature, Link, Role, SchemaOf } from "./feature.ts";
import { routedCallback, sslOfStoreCtx } from "./routing.ts";

/** What {@link VerificationOptions.onVerifyCertificate} is told about one certificate. */
export interface VerifyCertificateInfo {
  /** Whether OpenSSL's own checks accepted this certificate at this point. */
  readonly preverified: boolean;
  /** 0 for the peer's own (leaf) certificate, counting up towards the root. */
  readonly depth: number;
  /** OpenSSL's verify code (`X509_V_ERR_*`, 0 = OK), e.g. 10 = expired, 62 = host mismatch. */
  readonly error: number;
  /** OpenSSL's text for {@link error}. */
  readonly errorMessage: string;
  /** The certificate at this depth. */
  readonly certificate: Certificate;
}

/** Verification options of both sides. */
export interface VerificationOptions {
  /**
   * Trusted CA certificates (PEM text, which may hold several, or DER). Absent: the system
   * trust store (OpenSSL's default paths; `SSL_CERT_FILE` / `SSL_CERT_DIR` override it). On
   * servers: the CAs whose client certificates are accepted with `requestClientCert` (their
   * subjects are sent as the acceptable-issuer list).
   */
  caCerts?: readonly PemOrDer[];
  /**
   * Called for each certificate of the peer's chain during verification (OpenSSL's
   * `SSL_CTX_set_verify` callback), after OpenSSL's own checks. Return `true` to accept, `false`
   * to reject; a throw rejects. On clients a Promise suspends the handshake until it settles
   * (servers: synchronous only). Host-name mismatches are reported at depth 0 with error 62 (or
   * 64 for IP addresses): returning `true` there accepts the mismatch.
   */
  onVerifyCertificate?: (info: VerifyCertificateInfo) => boolean | Promise<boolean>;
}

/** Verification options of clients. */
export interface ClientVerificationOptions {
  /**
   * Turns off verification of the server's certificate and name. UNSAFE: anyone on the path can
   * impersonate the server. For tests and pinning done elsewhere only.
   */
  unsafelyDisableVerification?: boolean;
}

/** Verification options of servers. */
export interface ServerVerificationOptions {
  /**
   * Whether to ask clients for a certificate (`SSL_VERIFY_PEER`; the request lists the subjects
   * of `caCerts` as acceptable issuers). `false` (default): never ask; `"optional"`: ask, and
   * verify against `caCerts` what is sent, but accept clients that send none; `"require"`: also
   * fail the handshake when the client sends none (`SSL_VERIFY_FAIL_IF_NO_PEER_CERT`). A
   * certificate that fails verification always fails the handshake (unless
   * `onVerifyCertificate` accepts it).
   */
  requestClientCert?: false | "optional" | "require";
}

type Options = VerificationOptions & ClientVerificationOptions & ServerVerificationOptions;

/** Whether a context of `role` with `options` verifies its peer at all. */
export function verifiesPeer(role: Role, options: Readonly<Options>): boolean {
  if (options.unsafelyDisableVerification === true) return false;
  return role === "client" || (options.requestClientCert ?? false) !== false;
}

function noCurrentCertificate(): never {
  throw new TlsError("INTERNAL", "OpenSSL called the verify callback without a certificate");
}

/**
 * `SSL_CTX_set_verify`'s callback: the user's verdict on one certificate. A Promise (clients)
 * suspends with `SSL_set_retry_verify` (`SSL_ERROR_WANT_RETRY_VERIFY`); OpenSSL re-runs the
 * verification on resume, and the settled verdict is reused (keyed by depth and error: depth 0
 * is checked twice when the host name mismatches).
 */
function onVerify(link: Link, preverifyOk: number, storeCtx: Pointer | null): number {
  const handler = (link.options as Options).onVerifyCertificate;
  if (handler === undefined || storeCtx === null) return preverifyOk;
  const o = openssl();
  const depth = o.X509_STORE_CTX_get_error_depth(storeCtx);
  const error = o.X509_STORE_CTX_get_error(storeCtx);
  const settled = link.callbacks.settle(`verify:${depth}:${error}`, () => {
    const current = o.X509_STORE_CTX_get_current_cert(storeCtx);
    const messagePtr = o.X509_verify_cert_error_string(error);
    const info: VerifyCertificateInfo = {
      preverified: preverifyOk === 1,
      depth,
      error,
      errorMessage: messagePtr === null ? "" : o.backend.readCString(messagePtr),
      certificate: Certificate.fromX509(current ?? noCurrentCertificate()),
    };
    return handler(info);
  });
  if (!settled.done) {
    if (link.role !== "client") {
      throw new TypeError(
        "onVerifyCertificate may return a Promise only on clients: OpenSSL cannot suspend " +
          "a server's verification",
      );
    }
    if (o.SSL_set_retry_verify(link.ssl) !== 1) {
      throw new TlsError("INTERNAL", "SSL_set_retry_verify failed (OpenSSL older than 3.0.2?)");
    }
    return 1;
  }
  if (typeof settled.value !== "boolean") {
    throw new TypeError("onVerifyCertificate must return a boolean (or a Promise of one)");
  }
  if (settled.value) {
    // Accepting overrides OpenSSL's verdict: clear the error, or SSL_get_verify_result keeps it.
    if (error !== X509_V.OK) o.X509_STORE_CTX_set_error(storeCtx, X509_V.OK);
    return 1;
  }
  if (error === X509_V.OK) {
    o.X509_STORE_CTX_set_error(storeCtx, X509_V.ERR_APPLICATION_VERIFICATION);
  }
  return 0;
}

/** Trust anchors, verification mode and the verify callback. */
export const verification: Feature<Options> = {
  name: "verification",
  options: {
    caCerts: { role: "both", scope: "context" },
    onVerifyCertificate: { role: "both", scope: "context" },
    unsafelyDisableVerification: { role: "client", scope: "context" },
    requestClientCert: { role: "server", scope: "context" },
  } satisfies SchemaOf<
    VerificationOptions & ClientVerificationOptions,
    VerificationOptions & ServerVerificationOptions
  >,
  validate(_role, options) {
    if (options.caCerts !== undefined) {
      if (!Array.isArray(options.caCerts)) throw new TypeError("caCerts must be an array");
      options.caCerts.forEach((c, i) => checkPemOrDer(`caCerts[${i}]`, c));
    }
    if (
      options.onVerifyCertificate !== undefined && typeof options.onVerifyCertificate !== "function"
    ) {
      throw new TypeError("onVerifyCertificate must be a function");
    }
    const request = options.requestClientCert;
    if (
      request !== undefined && request !== false && request !== "optional" &&
      request !== "require"
    ) {
      throw new TypeError(
        `requestClientCert must be false, "optional" or "require", got ${JSON.stringify(request)}`,
      );
    }
  },
  configure({ role, ctx, options }) {
    const o = openssl();
    if (options.caCerts !== undefined) {
      const store = o.SSL_CTX_get_cert_store(ctx);
      if (store === null) fail("SSL_CTX_get_cert_store failed");
      for (const [i, input] of options.caCerts.entries()) {
        for (const cert of loadCertificates(input, `caCerts[${i}]`)) {
          try {
            // X509_STORE_add_cert takes its own reference. Adding the same CA twice is harmless.
            o.X509_STORE_add_cert(store, cert.ptr);
            if (role === "server") o.SSL_CTX_add_client_CA(ctx, cert.ptr);
          } finally {
            cert.close();
          }
        }
      }
      drainErrorQueue(); // "cert already in hash table" is not an error for us
    } else if (verifiesPeer(role, options) && o.SSL_CTX_set_default_verify_paths(ctx) !== 1) {
      // Parsing the system bundle costs ~30 ms: only when this context verifies anyone.
      fail("cannot load the system trust store");
    }
    const mode = !verifiesPeer(role, options)
      ? SSL_VERIFY.NONE
      : role === "server" && options.requestClientCert === "require"
      ? SSL_VERIFY.PEER | SSL_VERIFY.FAIL_IF_NO_PEER_CERT
      : SSL_VERIFY.PEER;
    // Without a user callback OpenSSL's own verdict stands: no trampoline, no per-cert JS call.
    const callback = options.onVerifyCertificate === undefined ? null : routedCallback(
      VERIFY_CB,
      onVerify,
      // Not one of ours (cannot happen: only our contexts use it): keep OpenSSL's verdict.
      { sslOf: (_ok, storeCtx) => sslOfStoreCtx(storeCtx), notOurs: (ok) => ok },
    );
    o.SSL_CTX_set_verify(ctx, mode, callback);
  },
};
