/**
 * Option names from elsewhere: Deno's (`Deno.connectTls`, `Deno.listenTls`, also their old 1.x
 * names) and Node.js's (`tls.connect`, `tls.createServer`, `tls.createSecureContext`). Each is
 * either an alias (the same meaning, renamed to this library's option before anything else sees
 * it), a value that is accepted only where it states this library's fixed behaviour
 * (`rejectUnauthorized: true`), or refused with a TypeError that names the option to use
 * instead. And the "did you mean" suggestion for a key nobody knows. Plain data and string work:
 * `options.ts` applies it per entry point.
 *
 * @module
 */
import type { PemOrDer } from "../x509/certificate.ts";

/**
 * The foreign option names accepted as aliases, typed, so that options written for
 * `Deno.connectTls` / `Deno.listenTls` or Node's `tls` type-check. Each means exactly what the
 * option it stands for means; give one or the other, not both. (`host` for `hostname` and
 * Deno's `transport: "tcp"` are accepted at run time too; see the README's table.)
 */
export interface OptionAliases {
  /** @deprecated Deno 1.x's name for `cert`: use `cert`. */
  certChain?: PemOrDer;
  /** @deprecated Deno 1.x's name for `key`: use `key`. */
  privateKey?: PemOrDer;
  /** @deprecated Node's name for `caCerts` (one certificate or several): use `caCerts`. */
  ca?: PemOrDer | readonly PemOrDer[];
  /** @deprecated Node's name for `crls` (one CRL or several, PEM or DER): use `crls`. */
  crl?: PemOrDer | readonly PemOrDer[];
  /** @deprecated Node's name for `alpnProtocols` (a list of strings): use `alpnProtocols`. */
  ALPNProtocols?: readonly string[];
  /**
   * Node's option, accepted only as `true`, which is what this library always does (verify, and
   * fail the handshake on a bad certificate). `false` is refused: see `unsafelyDisableVerification`
   * and `onVerifyCertificate`.
   *
   * @deprecated Leave it out: verification is always on.
   */
  rejectUnauthorized?: true;
}

/** The entry points that take options (see `options.ts`). */
export type EntryPoint =
  | "connect"
  | "startTls"
  | "startTlsServer"
  | "listen"
  | "TlsContext"
  | "TlsEngine"
  | "connectDtls"
  | "listenDtls";

/** A foreign name accepted as one of this library's options (exactly the same meaning). */
export interface Alias {
  /** This library's name for it. */
  readonly canonical: string;
  /** Where the name comes from, for messages. */
  readonly origin: string;
  /** Node's `ca` takes one certificate or an array: one is wrapped as `[one]`. */
  readonly wrapInArray?: true;
}

/** Foreign names accepted as aliases, by name. */
export const ALIASES: Readonly<Record<string, Alias>> = Object.freeze({
  certChain: { canonical: "cert", origin: "Deno 1.x" },
  privateKey: { canonical: "key", origin: "Deno 1.x" },
  ca: { canonical: "caCerts", origin: "Node.js", wrapInArray: true },
  host: { canonical: "hostname", origin: "Node.js" },
  ALPNProtocols: { canonical: "alpnProtocols", origin: "Node.js" },
  crl: { canonical: "crls", origin: "Node.js" },
});

/**
 * Foreign names accepted only with the value that states what this library always does (the
 * key is then dropped); any other value is refused with `refusal`.
 */
export interface FixedName {
  /** The one accepted value. */
  readonly accepted: unknown;
  /** Where the name comes from, for messages. */
  readonly origin: string;
  /** Why another value is refused, and what to use instead. */
  readonly refusal: string;
  /** The entry points that accept it. */
  readonly entryPoints: readonly EntryPoint[];
}

/** Foreign names accepted with one value only, by name. */
export const FIXED_NAMES: Readonly<Record<string, FixedName>> = Object.freeze({
  rejectUnauthorized: {
    accepted: true,
    origin: "Node.js",
    entryPoints: ["connect", "startTls", "startTlsServer", "listen", "TlsContext"],
    refusal: "verification cannot be relaxed by a flag here. To accept a certificate the " +
      "checks reject, decide with onVerifyCertificate (e.g. pin its fingerprint256); only " +
      "for tests, a client may pass unsafelyDisableVerification: true",
  },
  transport: {
    accepted: "tcp",
    origin: "Deno",
    entryPoints: ["connect", "listen"],
    refusal: 'only "tcp" is supported (for other transports, use startTls over Web streams)',
  },
});

/** Foreign names refused, with what to use instead. */
export const REFUSED_NAMES: Readonly<Record<string, { origin: string; instead: string }>> = Object
  .freeze({
    certFile: {
      origin: "Deno 1.x",
      instead: "read the PEM file yourself and pass its text as cert (this side's certificate) " +
        "or caCerts (a CA to trust)",
    },
    keyFile: { origin: "Deno 1.x", instead: "read the PEM file yourself and pass it as key" },
    caFile: { origin: "Deno 1.x", instead: "read the PEM file yourself and pass caCerts: [pem]" },
    unsafelyIgnoreCertificateErrors: {
      origin: "Deno",
      instead: "use unsafelyDisableVerification: true (tests only), or onVerifyCertificate",
    },
    reusePort: { origin: "Deno", instead: "SO_REUSEPORT is not supported by listen()" },
    checkServerIdentity: {
      origin: "Node.js",
      instead: "use onVerifyCertificate: a host-name mismatch reaches it at depth 0 with " +
        "error 62 (64 for an IP address), and returning true accepts it",
    },
    requestCert: {
      origin: "Node.js",
      instead: 'use requestClientCert: "require" (a client without a valid certificate is ' +
        'refused) or "optional" (one without a certificate is accepted)',
    },
    SNICallback: {
      origin: "Node.js",
      instead: "use onServerName: (servername) => ({ cert, key }) or a TlsContext or null",
    },
    ALPNCallback: {
      origin: "Node.js",
      instead: "use alpnProtocols: (offered) => name | null (a selection function)",
    },
    secureContext: {
      origin: "Node.js",
      instead: "use context: a TlsContext (also exported as SecureContext)",
    },
    secureProtocol: { origin: "Node.js", instead: "use minVersion / maxVersion" },
    ecdhCurve: { origin: "Node.js", instead: "use groups" },
    pskCallback: { origin: "Node.js", instead: "use psk" },
    requestOCSP: {
      origin: "Node.js",
      instead: 'use ocsp: "request" (the default: a staple sent is verified), "require" or "off"',
    },
    enableTrace: { origin: "Node.js", instead: "use onHandshakeEvent (and onKeylog)" },
    socket: {
      origin: "Node.js",
      instead: "use startTls(transport, options) to run TLS over an existing stream",
    },
    timeout: {
      origin: "Node.js",
      instead:
        "use idleTimeout (no traffic for that long closes the connection), handshakeTimeout " +
        "(connect and handshake) or an AbortSignal (signal)",
    },
    noDelay: {
      origin: "Node.js",
      instead: "TCP_NODELAY is already on; call conn.setNoDelay(false) to turn it off",
    },
    keepAlive: { origin: "Node.js", instead: "call conn.setKeepAlive(true) on the connection" },
    sessionTimeout: { origin: "Node.js", instead: "session lifetimes are not configurable" },
    honorCipherOrder: {
      origin: "Node.js",
      instead: "not configurable (OpenSSL's server order applies)",
    },
  });

/**
 * The optimal string alignment distance (Damerau-Levenshtein with adjacent transpositions, no
 * substring edited twice) between `a` and `b`: `caCert` -> `caCerts` is 1, `alnpProtocols` ->
 * `alpnProtocols` is 1.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[(i - 1) * cols + j]! + 1,
        d[i * cols + j - 1]! + 1,
        d[(i - 1) * cols + j - 1]! + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      }
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * The candidate nearest to `key` (case-insensitively), if near enough to be a typo: at most 2
 * edits, and at most a third of the key's length (so `ca` suggests nothing unrelated).
 */
export function nearest(key: string, candidates: Iterable<string>): string | undefined {
  const lower = key.toLowerCase();
  const limit = Math.min(2, Math.max(1, Math.floor(key.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    const distance = c === lower ? 0 : editDistance(lower, c);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
