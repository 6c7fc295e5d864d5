/**
 * Pre-shared keys (PSK), the data side: the key types users give, their validation, the wire
 * format of offered identities, and the `SSL_SESSION` a TLS 1.3 PSK is handed to OpenSSL as. The
 * handshake side (options, callbacks) is `psk.ts`.
 *
 * How OpenSSL 3.0 runs PSK (SSL_CTX_set_psk_client_callback(3), SSL_CTX_set_psk_server_callback(3),
 * SSL_CTX_set_psk_use_session_callback(3), SSL_CTX_set_psk_find_session_callback(3)):
 * - TLS 1.3 client: the use_session callback runs while the ClientHello is built (before the
 *   version is known), and again after a HelloRetryRequest with the hash of the server's suite.
 *   The PSK is an `SSL_SESSION` (key, a TLS 1.3 suite naming the hash, version TLS 1.3).
 * - TLS 1.3 server: the find_session callback runs once per identity the client offers.
 * - TLS 1.2: the client callback runs while the ClientKeyExchange is built, with the server's
 *   identity hint; the server callback with the client's identity. Only PSK cipher suites use
 *   them.
 * - OpenSSL also calls the TLS 1.2 callbacks in TLS 1.3 when the session callbacks produced no
 *   PSK (with SHA-256): the engine declines those calls, so the user's function runs once per
 *   version.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { isThenable } from "../core/values.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import {
  openssl,
  type Pointer,
  PSK_MAX_IDENTITY_LEN,
  PSK_MAX_PSK_LEN,
  TLS13_CIPHER_SUITES,
  TLS_VERSION,
} from "../core/native.ts";

/**
 * A client's pre-shared key: the identity sent to the server (a string is sent as UTF-8), the
 * secret key, and, for TLS 1.3, the cipher suite whose hash the key is bound to.
 *
 * @example
 * ```ts
 * import { connect, type PskClientKey } from "../../mod.ts";
 * const psk: PskClientKey = { identity: "device-17", key: crypto.getRandomValues(new Uint8Array(32)) };
 * await using conn = await connect({ hostname: "127.0.0.1", port: 4433, psk });
 * console.log(conn.pskIdentity); // "device-17": the server accepted it
 * ```
 */
export interface PskClientKey {
  /**
   * The PSK identity: 1 to 256 bytes (OpenSSL's `PSK_MAX_IDENTITY_LEN`). TLS 1.2 sends it as a C
   * string, so an identity with a NUL byte needs `minVersion: "TLSv1.3"`.
   */
  identity: string | Uint8Array;
  /** The key: 1 to 512 bytes (OpenSSL's `PSK_MAX_PSK_LEN`). */
  key: Uint8Array;
  /**
   * TLS 1.3 only: the suite whose hash the PSK uses, e.g. `"TLS_AES_256_GCM_SHA384"` (SHA-384).
   * Default `"TLS_AES_128_GCM_SHA256"` (SHA-256, RFC 8446's default for external PSKs, and what
   * `openssl s_server -psk` uses). The server may still pick any suite with the same hash.
   */
  cipherSuite?: string;
}

/**
 * What a client's PSK function is told besides the hint.
 *
 * @example
 * ```ts
 * import type { PskClientRequest } from "../../mod.ts";
 * const request: PskClientRequest = { version: "TLSv1.3" };
 * console.log(request.version);
 * ```
 */
export interface PskClientRequest {
  /**
   * `"TLSv1.3"`: the PSK offered in the ClientHello (called before the version is negotiated,
   * always with hint `null`). `"TLSv1.2"`: TLS 1.2 with a PSK cipher suite was negotiated.
   */
  readonly version: "TLSv1.3" | "TLSv1.2";
}

/**
 * A client's PSK function: called with the server's identity hint (TLS 1.2 only; `null` when it
 * sent none, and always `null` for TLS 1.3), returns the key to use, or `null` to offer none.
 * Synchronous: OpenSSL cannot suspend a handshake here.
 *
 * @example
 * ```ts
 * import { connect, type PskClientCallback } from "../../mod.ts";
 * const keys = new Map([["hint-a", new Uint8Array(32)]]);
 * const psk: PskClientCallback = (hint) =>
 *   ({ identity: "me", key: keys.get(hint ?? "hint-a") ?? new Uint8Array(32) });
 * await using conn = await connect({ hostname: "127.0.0.1", port: 4433, psk });
 * ```
 */
export type PskClientCallback = (
  hint: string | null,
  request: PskClientRequest,
) => PskClientKey | null;

/**
 * A client's `psk` option: one key, or a function choosing it per handshake.
 *
 * @example
 * ```ts
 * import type { PskClientOption } from "../../mod.ts";
 * const psk: PskClientOption = { identity: "me", key: new Uint8Array(32) };
 * console.log(typeof psk);
 * ```
 */
export type PskClientOption = PskClientKey | PskClientCallback;

/**
 * What a server's PSK function may return for a known identity.
 *
 * @example
 * ```ts
 * import type { PskServerKey } from "../../mod.ts";
 * const k: PskServerKey = { key: new Uint8Array(48), cipherSuite: "TLS_AES_256_GCM_SHA384" };
 * console.log(k.cipherSuite);
 * ```
 */
export interface PskServerKey {
  /** The key: 1 to 512 bytes. */
  key: Uint8Array;
  /** TLS 1.3 only, as {@link PskClientKey.cipherSuite}; ignored in TLS 1.2. */
  cipherSuite?: string;
}

/**
 * What a server's PSK function is told besides the identity.
 *
 * @example
 * ```ts
 * import type { PskServerRequest } from "../../mod.ts";
 * const request: PskServerRequest = { version: "TLSv1.2" };
 * console.log(request.version);
 * ```
 */
export interface PskServerRequest {
  /** The protocol version being negotiated. */
  readonly version: "TLSv1.3" | "TLSv1.2";
}

/**
 * A server's `psk` option: called with each identity a client offers, returns its key (bytes or
 * `{ key, cipherSuite }`), or `null` for an unknown identity. The identity is a string when it
 * is valid UTF-8 without control characters, else the raw bytes. Synchronous.
 *
 * An unknown identity is refused: TLS 1.2 with alert unknown_psk_identity (115); TLS 1.3 just
 * ignores the PSK, so the handshake goes on with the server's certificate if it has one, and
 * fails without one.
 *
 * @example
 * ```ts
 * import { listen, type PskServerCallback } from "../../mod.ts";
 * const keys = new Map([["device-17", new Uint8Array(32)]]);
 * const psk: PskServerCallback = (identity) =>
 *   typeof identity === "string" ? keys.get(identity) ?? null : null;
 * await using server = listen({ port: 4433, psk, pskIdentityHint: "devices" });
 * for await (const conn of server) console.log(conn.pskIdentity);
 * ```
 */
export type PskServerCallback = (
  identity: string | Uint8Array,
  request: PskServerRequest,
) => Uint8Array | PskServerKey | null;

/**
 * TLS 1.3 PSK key exchange modes (RFC 8446 §4.2.9). `"psk_dhe_ke"` (default): PSK with (EC)DHE,
 * forward secret. `"allow_psk_ke"` sets `SSL_OP_ALLOW_NO_DHE_KEX`: clients offer psk_ke (PSK
 * alone, no forward secrecy) besides psk_dhe_ke, servers accept it. OpenSSL 3.0 always offers
 * psk_dhe_ke too, and an OpenSSL 3.0 server prefers it whenever the client sent a usable key
 * share: psk_ke is used against a peer that offers only it, or when no group is shared.
 *
 * @example
 * ```ts
 * import type { PskKeyExchange } from "../../mod.ts";
 * const mode: PskKeyExchange = "allow_psk_ke";
 * console.log(mode);
 * ```
 */
export type PskKeyExchange = "psk_dhe_ke" | "allow_psk_ke";

/**
 * The TLS 1.2 PSK cipher suites enabled (after the default ones) when `psk` is given and
 * `ciphers` is not: ECDHE-PSK (forward secret) first, then plain PSK. OpenSSL 3.0 has no
 * ECDHE-PSK AES-GCM suites; DHE-PSK would need DH parameters on the server.
 *
 * @example
 * ```ts
 * import { DEFAULT_PSK_TLS12_CIPHERS } from "../../mod.ts";
 * console.log(DEFAULT_PSK_TLS12_CIPHERS.split(":")[0]); // "ECDHE-PSK-CHACHA20-POLY1305"
 * ```
 */
export const DEFAULT_PSK_TLS12_CIPHERS: string = [
  "ECDHE-PSK-CHACHA20-POLY1305",
  "PSK-AES256-GCM-SHA384",
  "PSK-AES128-GCM-SHA256",
  "PSK-CHACHA20-POLY1305",
].join(":");

/**
 * The default TLS 1.3 suite of a PSK: SHA-256.
 *
 * @example
 * ```ts
 * import { DEFAULT_PSK_CIPHER_SUITE } from "../../mod.ts";
 * console.log(DEFAULT_PSK_CIPHER_SUITE); // "TLS_AES_128_GCM_SHA256"
 * ```
 */
export const DEFAULT_PSK_CIPHER_SUITE = "TLS_AES_128_GCM_SHA256";

/** A validated key: bytes, and the TLS 1.3 suite. @internal */
export interface ResolvedPsk {
  /** The identity as bytes (clients), or the identity as the server saw it. */
  readonly identity: Uint8Array;
  /** The identity as the user gave it (clients) or as handed to the user (servers). */
  readonly shown: string | Uint8Array;
  readonly key: Uint8Array;
  readonly cipherSuite: string;
}

function checkCipherSuite(name: string, value: unknown): string {
  if (value === undefined) return DEFAULT_PSK_CIPHER_SUITE;
  if (typeof value !== "string" || !Object.hasOwn(TLS13_CIPHER_SUITES, value)) {
    throw new RangeError(
      `${name} must be a TLS 1.3 cipher suite (${
        Object.keys(TLS13_CIPHER_SUITES).join(", ")
      }), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function checkKey(name: string, key: unknown): Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (key.length === 0) throw new RangeError(`${name} is empty`);
  if (key.length > PSK_MAX_PSK_LEN) {
    throw new RangeError(
      `${name} is ${key.length} bytes; OpenSSL takes at most ${PSK_MAX_PSK_LEN} (PSK_MAX_PSK_LEN)`,
    );
  }
  return key;
}

/**
 * Validates a client key (from the options or returned by the PSK function).
 *
 * @throws {TypeError | RangeError} naming what is wrong. @internal
 */
export function resolveClientKey(value: unknown, name: string): ResolvedPsk {
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`${name} must be { identity, key, cipherSuite? }`);
  }
  const { identity, key, cipherSuite } = value as Partial<PskClientKey>;
  let bytes: Uint8Array;
  if (typeof identity === "string") bytes = new TextEncoder().encode(identity);
  else if (identity instanceof Uint8Array) bytes = identity.slice();
  else throw new TypeError(`${name}.identity must be a string or a Uint8Array`);
  if (bytes.length === 0) throw new RangeError(`${name}.identity is empty`);
  if (bytes.length > PSK_MAX_IDENTITY_LEN) {
    throw new RangeError(
      `${name}.identity is ${bytes.length} bytes; OpenSSL takes at most ${PSK_MAX_IDENTITY_LEN} ` +
        "(PSK_MAX_IDENTITY_LEN)",
    );
  }
  return {
    identity: bytes,
    shown: typeof identity === "string" ? identity : bytes.slice(),
    key: checkKey(`${name}.key`, key).slice(),
    cipherSuite: checkCipherSuite(`${name}.cipherSuite`, cipherSuite),
  };
}

/**
 * Validates what a server's PSK function returned (`null`: unknown identity).
 *
 * @throws {TypeError | RangeError} @internal
 */
export function resolveServerKey(
  value: unknown,
  identity: Uint8Array,
  shown: string | Uint8Array,
): ResolvedPsk | null {
  if (value === null) return null;
  if (value instanceof Uint8Array) {
    return {
      identity,
      shown,
      key: checkKey("psk()'s key", value).slice(),
      cipherSuite: DEFAULT_PSK_CIPHER_SUITE,
    };
  }
  if (typeof value === "object" && value !== null && !isThenable(value)) {
    const { key, cipherSuite } = value as Partial<PskServerKey>;
    return {
      identity,
      shown,
      key: checkKey("psk()'s key", key).slice(),
      cipherSuite: checkCipherSuite("psk()'s cipherSuite", cipherSuite),
    };
  }
  throw new TypeError(
    "the server's psk function must return a Uint8Array, { key, cipherSuite? } or null " +
      "(synchronously: not a Promise)",
  );
}

/**
 * The identity as handed to user code: a string when it is valid UTF-8 without control
 * characters (C0, DEL, C1), else a copy of the bytes. @internal
 */
export function presentIdentity(bytes: Uint8Array): string | Uint8Array {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return bytes.slice();
  }
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(text) ? bytes.slice() : text;
}

/** The NID of the hash of a TLS 1.3 suite of {@link TLS13_CIPHER_SUITES}. @internal */
export function hashNidOf(cipherSuite: string): number {
  return TLS13_CIPHER_SUITES[cipherSuite]!.hashNid;
}

/**
 * A TLS 1.3 PSK as OpenSSL wants it: a new `SSL_SESSION` with the key as its master key, the
 * suite naming its hash, and version TLS 1.3. Returned as an owned handle: `release()` it when
 * handing it to OpenSSL (`*sess`), which owns it from then on. @internal
 */
export function newPskSession(ssl: Pointer, psk: ResolvedPsk): NativeHandle {
  const o = openssl();
  const suite = TLS13_CIPHER_SUITES[psk.cipherSuite]!;
  const cipher = o.SSL_CIPHER_find(ssl, Uint8Array.from(suite.id)); // borrowed
  if (cipher === null) {
    throw new TlsError("INTERNAL", `OpenSSL does not know ${psk.cipherSuite}`, {
      openssl: drainErrorQueue(),
    });
  }
  const p = o.SSL_SESSION_new();
  if (p === null) throw new TlsError("INTERNAL", "SSL_SESSION_new failed (out of memory?)");
  const session = new NativeHandle("SSL_SESSION", p, (s) => o.SSL_SESSION_free(s));
  try {
    if (o.SSL_SESSION_set1_master_key(p, psk.key, psk.key.length) !== 1) {
      throw new RangeError(`this OpenSSL refuses a ${psk.key.length}-byte TLS 1.3 PSK`);
    }
    if (
      o.SSL_SESSION_set_cipher(p, cipher) !== 1 ||
      o.SSL_SESSION_set_protocol_version(p, TLS_VERSION.TLS1_3_VERSION) !== 1
    ) {
      throw new TlsError("INTERNAL", "cannot build the PSK session", {
        openssl: drainErrorQueue(),
      });
    }
    return session;
  } catch (error) {
    session.close();
    throw error;
  }
}

/**
 * The identities of a TLS 1.3 pre_shared_key extension in a ClientHello (RFC 8446 §4.2.11:
 * `identities<7..2^16-1>` of `{ opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age; }`,
 * then the binders). Malformed input gives what could be read. @internal
 */
export function offeredIdentities(ext: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (ext.length < 2) return out;
  const end = Math.min(ext.length, 2 + ((ext[0]! << 8) | ext[1]!));
  for (let i = 2; i + 2 <= end;) {
    const length = (ext[i]! << 8) | ext[i + 1]!;
    const start = i + 2;
    if (length === 0 || start + length + 4 > end) break;
    out.push(ext.slice(start, start + length));
    i = start + length + 4;
  }
  return out;
}

/** The TLS 1.3 suites with the hash of `cipherSuite`, that suite first. @internal */
export function suitesWithHashOf(cipherSuite: string): string {
  const nid = hashNidOf(cipherSuite);
  const same = ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
    .filter((s) => s !== cipherSuite && hashNidOf(s) === nid);
  return [cipherSuite, ...same].join(":");
}

/**
 * The TLS 1.3 suite order a client uses when its PSK's hash is known: the suites with that hash
 * first, so a server that follows the client's preference picks one the PSK works with (OpenSSL
 * servers choose the suite before looking at PSKs, and ignore a PSK whose hash differs). @internal
 */
export function ciphersuitesFor(cipherSuite: string): string {
  const nid = hashNidOf(cipherSuite);
  const defaults = [
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
  ];
  const first = [cipherSuite, ...defaults.filter((s) => s !== cipherSuite && hashNidOf(s) === nid)];
  return [...first, ...defaults.filter((s) => !first.includes(s))].join(":");
}
