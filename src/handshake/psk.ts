/**
 * Pre-shared keys in the handshake: TLS 1.3 external PSKs (`SSL_SESSION`s handed over by the
 * use_session / find_session callbacks) and TLS 1.2 PSK cipher suites (the client / server
 * callbacks), on both sides. The key types and their codecs are in `psk_keys.ts`.
 *
 * OpenSSL 3.0 quirks met here:
 * - it picks the TLS 1.3 suite before it looks at PSKs and ignores a PSK whose hash differs from
 *   the suite's: clients put the PSK's suites first, servers restrict a connection's suites to the
 *   hash of the first identity they know (in the client-hello callback);
 * - it also calls the TLS 1.2 callbacks in TLS 1.3 when the session callbacks produced no PSK:
 *   those calls are declined, so the user's function runs once per version.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import {
  cString,
  openssl,
  type Pointer,
  PSK_CLIENT_CB,
  PSK_FIND_SESSION_CB,
  PSK_MAX_IDENTITY_LEN,
  PSK_SERVER_CB,
  PSK_USE_SESSION_CB,
  sizeT,
  SSL_CLIENT_HELLO,
  SSL_OP,
  TLS_VERSION,
  TLSEXT_TYPE_psk,
} from "../core/native.ts";
import { isThenable } from "../core/values.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { DEFAULT_TLS12_CIPHERS, setCipherList, splitCiphers } from "./protocol.ts";
import {
  ciphersuitesFor,
  DEFAULT_PSK_CIPHER_SUITE,
  DEFAULT_PSK_TLS12_CIPHERS,
  hashNidOf,
  newPskSession,
  offeredIdentities,
  presentIdentity,
  type PskClientCallback,
  type PskClientOption,
  type PskKeyExchange,
  type PskServerCallback,
  resolveClientKey,
  type ResolvedPsk,
  resolveServerKey,
  suitesWithHashOf,
} from "./psk_keys.ts";
import { routedCallback } from "./routing.ts";
import { sessionScopeOf } from "./sessions.ts";

/** PSK options of clients. */
export interface PskClientOptions {
  /**
   * A pre-shared key: `{ identity, key, cipherSuite? }` (`PskClientKey`), or a function
   * `(hint, { version }) => key | null` (synchronous). TLS 1.3 offers it in the ClientHello (with
   * (EC)DHE unless `pskKeyExchange` allows psk_ke); TLS 1.2 uses it with a PSK cipher suite
   * (enabled first unless `ciphers` is given). A server that accepts it sends no certificate; one
   * that sends a certificate instead is verified as usual (and with no `servername`, where its
   * name cannot be checked, the handshake fails; so a client with `psk` may omit `servername`).
   * `conn.pskIdentity` tells whether the PSK was used.
   */
  psk?: PskClientOption;
  /** TLS 1.3 PSK key exchange modes; see {@link PskKeyExchange}. Default `"psk_dhe_ke"`. */
  pskKeyExchange?: PskKeyExchange;
}

/** PSK options of servers. */
export interface PskServerOptions {
  /**
   * Pre-shared keys: called with each identity a client offers (a string when it is printable
   * UTF-8, else the bytes); returns its key (`Uint8Array` or `{ key, cipherSuite? }`), or `null`
   * for an unknown identity (TLS 1.2: alert unknown_psk_identity, 115; TLS 1.3: the PSK is
   * ignored and the certificate, if any, is used). Synchronous. With `psk`, `cert` and `key` are
   * optional (a PSK-only server); with both, PSK and certificate clients are served alike.
   * `conn.pskIdentity` names the identity a connection used.
   */
  psk?: PskServerCallback;
  /** TLS 1.2: the identity hint sent to clients (`SSL_CTX_use_psk_identity_hint`). */
  pskIdentityHint?: string;
  /** TLS 1.3 PSK key exchange modes; see {@link PskKeyExchange}. Default `"psk_dhe_ke"`. */
  pskKeyExchange?: PskKeyExchange;
}

/** PSK options as a `TlsContext` takes them (the `psk` of its role). */
export interface PskOptions {
  /** Clients: see {@link PskClientOptions.psk}. Servers: see {@link PskServerOptions.psk}. */
  psk?: PskClientOption | PskServerCallback;
  /** Servers: see {@link PskServerOptions.pskIdentityHint}. */
  pskIdentityHint?: string;
  /** See {@link PskKeyExchange}. Default `"psk_dhe_ke"`. */
  pskKeyExchange?: PskKeyExchange;
}

type Options = PskOptions & { ciphers?: string; minVersion?: string; maxVersion?: string };

/** A connection's PSK bookkeeping. */
interface PskState {
  /**
   * Clients, TLS 1.3: the PSK offered in the ClientHello (`undefined`: not asked yet; `null`:
   * none), and the identity bytes OpenSSL was pointed at: `OPENSSL_malloc`'d, owned here and
   * freed once the handshake ends (the man page lets OpenSSL read them until then), never a JS
   * buffer the GC could move or free.
   */
  offer: ResolvedPsk | null | undefined;
  identityMemory: NativeHandle | null;
  /** TLS 1.2 (both sides) and TLS 1.3 servers: the PSK the callbacks handed to OpenSSL. */
  used: ResolvedPsk | null;
  /** Servers: the user's answers per identity and version, for this handshake. */
  serverKeys: Map<string, ResolvedPsk | null>;
  /** Servers: the first identity the user did not know (for the error message). */
  unknown: string | Uint8Array | undefined;
  /** Clients with `psk` and no `servername`: the handshake must end up using the PSK. */
  required: boolean;
}

function describeIdentity(identity: string | Uint8Array): string {
  return typeof identity === "string"
    ? JSON.stringify(identity)
    : `0x${Array.from(identity, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

function isTls13(ssl: Pointer): boolean {
  return openssl().SSL_version(ssl) === TLS_VERSION.TLS1_3_VERSION;
}

/** Clients: the user's key for `version` (`null`: none). */
function clientKey(link: Link, hint: string | null, version: "TLSv1.3" | "TLSv1.2") {
  const option = (link.options as Options).psk as PskClientOption | undefined;
  if (option === undefined) return null;
  if (typeof option !== "function") return resolveClientKey(option, "psk");
  const value = (option as PskClientCallback)(hint, Object.freeze({ version }));
  if (value === null) return null;
  if (isThenable(value)) {
    throw new TypeError("the psk function must return synchronously (not a Promise)");
  }
  return resolveClientKey(value, "psk()'s result");
}

/**
 * Servers: the user's key for `identity` (`null`: unknown). Asked once per identity and
 * version per handshake (the ClientHello callback and find_session share the answer).
 */
function serverKey(link: Link, identity: Uint8Array, version: "TLSv1.3" | "TLSv1.2") {
  const handler = (link.options as Options).psk as PskServerCallback | undefined;
  if (handler === undefined) return null;
  const state = link.stateOf(psk);
  const cacheKey = `${version}:${identity.join(",")}`;
  const known = state.serverKeys.get(cacheKey);
  if (known !== undefined) return known;
  const shown = presentIdentity(identity);
  const key = resolveServerKey(handler(shown, Object.freeze({ version })), identity, shown);
  state.serverKeys.set(cacheKey, key);
  if (key === null) state.unknown ??= shown;
  return key;
}

/**
 * TLS 1.3 clients, building the ClientHello (and again after a HelloRetryRequest, with the hash
 * the server's suite needs in `md`). The user's function runs once per handshake. `*sess` NULL
 * (and 1): "no PSK", the handshake goes on without one.
 */
function onUseSession(
  link: Link,
  _ssl: Pointer | null,
  md: Pointer | null,
  id: Pointer | null,
  idlen: Pointer | null,
  sess: Pointer | null,
): number {
  if (id === null || idlen === null || sess === null) return 1;
  const o = openssl();
  const state = link.stateOf(psk);
  if (state.offer === undefined) state.offer = clientKey(link, null, "TLSv1.3");
  const key = state.offer;
  // The man page: after a HelloRetryRequest the PSK must match the hash of the suite the server
  // chose; otherwise return success with *sess NULL (offer no PSK).
  const type = o.EVP_MD_get_type ?? o.EVP_MD_type;
  if (key === null || (md !== null && (type === null || type(md) !== hashNidOf(key.cipherSuite)))) {
    o.backend.writePointer(sess, 0, null);
    return 1;
  }
  if (state.identityMemory === null) {
    const p = o.OPENSSL_malloc(key.identity.length);
    if (p === null) throw new TlsError("INTERNAL", "out of memory");
    state.identityMemory = new NativeHandle("PSK_IDENTITY", p, (q) => o.OPENSSL_free(q));
    o.backend.writeBytes(p, 0, key.identity);
  }
  // A new SSL_SESSION per call: OpenSSL takes ownership of each one it is given. It carries this
  // connection's session id context, or OpenSSL refuses the PSK once the server takes it
  // ("attempt to reuse session in different context").
  const session = newPskSession(link.ssl, key);
  const scope = sessionScopeOf(link);
  if (o.SSL_SESSION_set1_id_context(session.ptr, scope, scope.length) !== 1) {
    session.close();
    throw new TlsError("INTERNAL", "SSL_SESSION_set1_id_context failed");
  }
  o.backend.writePointer(sess, 0, session.release());
  o.backend.writePointer(id, 0, state.identityMemory.ptr);
  o.backend.writeBytes(idlen, 0, sizeT(key.identity.length));
  return 1;
}

/** TLS 1.3 servers, once per identity the client offers (`*sess` NULL: unknown, go on). */
function onFindSession(
  link: Link,
  _ssl: Pointer | null,
  identity: Pointer | null,
  identityLength: number | bigint,
  sess: Pointer | null,
): number {
  if (sess === null) return 1;
  const b = openssl().backend;
  const length = Number(identityLength);
  const bytes = identity === null || length === 0
    ? new Uint8Array(0)
    : b.readBytes(identity, 0, length);
  const key = serverKey(link, bytes, "TLSv1.3");
  if (key === null) {
    b.writePointer(sess, 0, null); // unknown: OpenSSL ignores this PSK and goes on
    return 1;
  }
  const session = newPskSession(link.ssl, key);
  // OpenSSL stops at the first identity it can use: the last one accepted here is it (and
  // pskIdentity reports it only if the handshake did use a PSK).
  link.stateOf(psk).used = key;
  b.writePointer(sess, 0, session.release());
  return 1;
}

/**
 * TLS 1.2 clients, building the ClientKeyExchange with the server's identity hint. Writes a
 * NUL-terminated identity and the key into OpenSSL's buffers (`maxIdentity` excludes the NUL
 * OpenSSL left room for) and returns the key length; 0 fails the handshake.
 */
function onClient(
  link: Link,
  _ssl: Pointer | null,
  hint: Pointer | null,
  identityOut: Pointer | null,
  maxIdentity: number,
  keyOut: Pointer | null,
  maxKey: number,
): number {
  if (identityOut === null || keyOut === null) return 0;
  // OpenSSL 3.0 also calls this in TLS 1.3 when the use_session callback offered no PSK (to try
  // its SHA-256 fallback): decline, the user already answered for TLS 1.3.
  if (isTls13(link.ssl)) return 0;
  const b = openssl().backend;
  const hintText = hint === null ? null : b.readCString(hint);
  const key = clientKey(link, hintText, "TLSv1.2");
  if (key === null) {
    // OpenSSL then fails with handshake_failure; our error says why.
    link.reject(
      new TlsError(
        "HANDSHAKE_FAILED",
        `the server chose a TLS 1.2 PSK cipher suite (identity hint ${
          JSON.stringify(hintText)
        }) and the psk function returned null`,
      ),
    );
    return 0;
  }
  if (key.identity.includes(0)) {
    throw new TypeError("a TLS 1.2 PSK identity cannot contain NUL bytes (it is a C string)");
  }
  if (key.identity.length > maxIdentity) {
    throw new RangeError(
      `the PSK identity is ${key.identity.length} bytes; OpenSSL has room for ${maxIdentity}`,
    );
  }
  if (key.key.length > maxKey) {
    throw new RangeError(`the PSK is ${key.key.length} bytes; OpenSSL has room for ${maxKey}`);
  }
  link.stateOf(psk).used = key;
  b.writeBytes(identityOut, 0, key.identity);
  b.writeBytes(identityOut, key.identity.length, Uint8Array.of(0));
  b.writeBytes(keyOut, 0, key.key);
  return key.key.length;
}

/** The bytes of the NUL-terminated string at `p`, without the NUL (at most `max` bytes read). */
function cStringBytes(p: Pointer, max: number): Uint8Array {
  const b = openssl().backend;
  // Read byte by byte: reading a block could run past the end of OpenSSL's allocation.
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const byte = b.readBytes(p, i, 1)[0]!;
    if (byte === 0) break;
    out.push(byte);
  }
  return Uint8Array.from(out);
}

/** TLS 1.2 servers, with the client's identity: the key length written, 0 for unknown (115). */
function onServer(
  link: Link,
  _ssl: Pointer | null,
  identity: Pointer | null,
  keyOut: Pointer | null,
  maxKey: number,
): number {
  if (identity === null || keyOut === null) return 0;
  // OpenSSL 3.0 also calls this in TLS 1.3 for identities the find_session callback did not
  // know: decline, the user already answered.
  if (isTls13(link.ssl)) return 0;
  const bytes = cStringBytes(identity, 65_536);
  const key = serverKey(link, bytes, "TLSv1.2");
  if (key === null) {
    link.reject(
      new TlsError(
        "HANDSHAKE_FAILED",
        `unknown PSK identity ${describeIdentity(presentIdentity(bytes))} (the client ` +
          "was sent alert unknown_psk_identity, 115)",
      ),
    );
    return 0;
  }
  if (key.key.length > maxKey) {
    throw new RangeError(`the PSK is ${key.key.length} bytes; OpenSSL has room for ${maxKey}`);
  }
  link.stateOf(psk).used = key;
  openssl().backend.writeBytes(keyOut, 0, key.key);
  return key.key.length;
}

/**
 * Servers, in the ClientHello callback: look at the offered identities first, and restrict this
 * connection's TLS 1.3 suites to those with the hash of the first known one (see the module doc).
 */
function steerSuites(link: Link): number {
  const options = link.options as Options;
  if (link.role !== "server" || options.psk === undefined) return SSL_CLIENT_HELLO.SUCCESS;
  if (options.maxVersion === "TLSv1.2") return SSL_CLIENT_HELLO.SUCCESS;
  const o = openssl();
  const outPtr = new BigUint64Array(1);
  const outLen = new BigUint64Array(1);
  if (o.SSL_client_hello_get0_ext(link.ssl, TLSEXT_TYPE_psk, outPtr, outLen) !== 1) {
    return SSL_CLIENT_HELLO.SUCCESS;
  }
  const p = o.backend.fromAddress(outPtr[0]!);
  const length = Number(outLen[0]);
  if (p === null || length === 0) return SSL_CLIENT_HELLO.SUCCESS;
  for (const identity of offeredIdentities(o.backend.readBytes(p, 0, length))) {
    const key = serverKey(link, identity, "TLSv1.3");
    if (key === null) continue;
    if (o.SSL_set_ciphersuites(link.ssl, cString(suitesWithHashOf(key.cipherSuite))) !== 1) {
      throw new TlsError("INTERNAL", "SSL_set_ciphersuites failed", {
        openssl: drainErrorQueue(),
      });
    }
    break;
  }
  return SSL_CLIENT_HELLO.SUCCESS;
}

/**
 * The PSK identity the handshake used, or `null` when it used none. Clients: the identity sent
 * and accepted, as given. Servers: the client's, as the `psk` function was given it.
 */
export function pskIdentityOf(link: Link): string | Uint8Array | null {
  // Read for every connection when its handshake ends: no state made where no PSK was used.
  const state = link.peekStateOf(psk);
  if (!link.established || state === undefined) return null;
  if (isTls13(link.ssl)) {
    const o = openssl();
    // A TLS 1.3 PSK handshake is a "resumption" of the PSK's session; nothing else resumes here.
    if (o.SSL_session_reused(link.ssl) !== 1) return null;
    if (link.role === "client") {
      // Offering a PSK and a ticket, the client cannot tell which one the server took from
      // "reused" alone: a resumed ticket session has a ticket, an external PSK's has none.
      const current = o.SSL_get_session(link.ssl);
      if (current === null || o.SSL_SESSION_has_ticket(current) === 1) return null;
      return state.offer?.shown ?? null;
    }
  }
  return state.used?.shown ?? null;
}

/** `psk`, `pskIdentityHint`, `pskKeyExchange`. */
export const psk: Feature<Options, undefined, PskState> = {
  name: "PSK",
  options: {
    psk: { role: "both", scope: "context" },
    pskIdentityHint: { role: "server", scope: "context" },
    pskKeyExchange: { role: "both", scope: "context" },
  } satisfies SchemaOf<PskClientOptions, PskServerOptions>,
  validate(role, options) {
    const { psk: option, pskIdentityHint, pskKeyExchange } = options;
    if (option !== undefined) {
      if (role === "server") {
        if (typeof option !== "function") {
          throw new TypeError("a server's psk must be a function (identity) => key | null");
        }
      } else if (typeof option !== "function") {
        const resolved = resolveClientKey(option, "psk");
        if (resolved.identity.includes(0) && options.minVersion !== "TLSv1.3") {
          throw new TypeError(
            'psk.identity contains a NUL byte: TLS 1.2 cannot send it; set minVersion: "TLSv1.3"',
          );
        }
      }
    }
    if (pskIdentityHint !== undefined) {
      if (option === undefined) throw new TypeError("pskIdentityHint needs psk");
      if (typeof pskIdentityHint !== "string" || pskIdentityHint.includes("\0")) {
        throw new TypeError("pskIdentityHint must be a string without NUL characters");
      }
      const length = new TextEncoder().encode(pskIdentityHint).length;
      if (length > PSK_MAX_IDENTITY_LEN) {
        throw new RangeError(
          `pskIdentityHint is ${length} bytes; OpenSSL takes at most ${PSK_MAX_IDENTITY_LEN}`,
        );
      }
    }
    if (pskKeyExchange !== undefined) {
      if (pskKeyExchange !== "psk_dhe_ke" && pskKeyExchange !== "allow_psk_ke") {
        throw new TypeError(
          `pskKeyExchange must be "psk_dhe_ke" or "allow_psk_ke", got ${
            JSON.stringify(pskKeyExchange)
          }`,
        );
      }
      if (option === undefined) throw new TypeError("pskKeyExchange needs psk");
    }
  },
  configure({ role, ctx, options }) {
    if (options.psk === undefined) return;
    const o = openssl();
    // TLS 1.2 needs PSK cipher suites (none are in the default list). Clients put them first, so
    // a server that also has a certificate does not pick a certificate suite over them.
    // (`ciphers` with only TLS 1.3 suites leaves the TLS 1.2 list to its default: this one.)
    if (splitCiphers(options.ciphers).tls12 === undefined) {
      const list = role === "client"
        ? `${DEFAULT_PSK_TLS12_CIPHERS}:${DEFAULT_TLS12_CIPHERS}`
        : `${DEFAULT_TLS12_CIPHERS}:${DEFAULT_PSK_TLS12_CIPHERS}`;
      setCipherList(ctx, list, undefined);
    }
    if (role === "client") {
      // TLS 1.3: offer the suites with the PSK's hash first (SHA-256 when a function decides
      // later), so servers that follow the client's order can use it.
      const suite = typeof options.psk === "function"
        ? DEFAULT_PSK_CIPHER_SUITE
        : options.psk.cipherSuite ?? DEFAULT_PSK_CIPHER_SUITE;
      // (Unless `ciphers` chose the TLS 1.3 suites: then the user's order stands.)
      if (
        splitCiphers(options.ciphers).tls13 === undefined &&
        o.SSL_CTX_set_ciphersuites(ctx, cString(ciphersuitesFor(suite))) !== 1
      ) {
        fail("SSL_CTX_set_ciphersuites failed");
      }
      o.SSL_CTX_set_psk_use_session_callback(
        ctx,
        routedCallback(PSK_USE_SESSION_CB, onUseSession, { notOurs: 1 }),
      );
      o.SSL_CTX_set_psk_client_callback(ctx, routedCallback(PSK_CLIENT_CB, onClient));
    } else {
      o.SSL_CTX_set_psk_find_session_callback(
        ctx,
        routedCallback(PSK_FIND_SESSION_CB, onFindSession, { notOurs: 1 }),
      );
      // Also what makes an OpenSSL 3.0 server without a certificate prefer SHA-256 suites in
      // TLS 1.3 (ssl3_choose_cipher), so that clients with RFC 8446's default PSK hash succeed.
      o.SSL_CTX_set_psk_server_callback(ctx, routedCallback(PSK_SERVER_CB, onServer));
      if (
        options.pskIdentityHint !== undefined &&
        o.SSL_CTX_use_psk_identity_hint(ctx, cString(options.pskIdentityHint)) !== 1
      ) {
        fail("SSL_CTX_use_psk_identity_hint failed");
      }
    }
    // SSL_OP_ALLOW_NO_DHE_KEX: clients also offer psk_ke, servers accept it.
    if (options.pskKeyExchange === "allow_psk_ke") {
      o.SSL_CTX_set_options(ctx, SSL_OP.ALLOW_NO_DHE_KEX);
    }
  },
  setupConnection(link, { servername }) {
    const options = link.options as Options;
    if (
      link.role === "client" && link.verifying && servername === undefined &&
      options.psk !== undefined
    ) {
      link.stateOf(psk).required = true;
    }
  },
  wantsClientHello: (role, options) => role === "server" && options.psk !== undefined,
  onClientHello: steerSuites,
  connectionState: () => ({
    offer: undefined,
    identityMemory: null,
    used: null,
    serverKeys: new Map(),
    unknown: undefined,
    required: false,
  }),
  handshakeDone(link, state) {
    state.identityMemory?.close(); // OpenSSL is done with the identity
    if (state.required && pskIdentityOf(link) === null) {
      link.reject(
        new TlsError(
          "HANDSHAKE_FAILED",
          "the server did not use the PSK and sent a certificate instead, whose name cannot " +
            "be checked without servername: give servername to accept certificate servers too",
        ),
      );
    }
  },
  // A TLS 1.3 server ignores an unknown PSK and goes on without it: say so, OpenSSL's reason is
  // about what failed next (e.g. "no suitable signature algorithm" without a certificate).
  explainFailure: (_link, state, { phase, why }) =>
    phase !== "handshake" || state?.unknown === undefined ? undefined : {
      message: `TLS handshake failed: the client's PSK identity ${
        describeIdentity(state.unknown)
      } is unknown, and the server could not go on with a certificate instead (OpenSSL: ${why})`,
    },
  free(state) {
    state.identityMemory?.close(); // after SSL_free: nothing can read it any more
  },
};
