/**
 * The external server session cache: `onNewSession(id, session)` hands each new session to the
 * application (a shared store: Redis, memcached, a database), `onResumeSession(id)` asks it for
 * one, synchronously or with a Promise, so that several processes or machines resume each
 * other's TLS 1.2 sessions and TLS 1.3 (stateful) tickets; `onRemoveSession(id)` tells it of
 * sessions OpenSSL no longer wants resumed.
 *
 * How OpenSSL runs it (SSL_CTX_sess_set_new_cb(3), SSL_CTX_sess_set_get_cb(3),
 * SSL_CTX_set_session_cache_mode(3), SSL_CTX_set_options(3)):
 * - `SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL`: OpenSSL keeps no sessions of its own,
 *   every store goes to the new-session callback and every lookup to the get-session callback.
 * - `SSL_OP_NO_TICKET`: TLS 1.2 resumes by session id (no stateless tickets); a TLS 1.3 server
 *   then issues *stateful* tickets, whose identity is the session id, looked up the same way
 *   (only PSK identities of at most 32 bytes are). Stateless tickets would bypass the cache.
 * - Every listener sharing the cache needs the same session id context, or OpenSSL refuses the
 *   session (and a server verifying clients fails with "session id context uninitialized"
 *   without one): derived, as with shared `ticketKeys`, from the certificate and the
 *   client-certificate policy.
 * - The get-session callback cannot wait: mainline OpenSSL has no `SSL_magic_pending_session_ptr`
 *   / `SSL_ERROR_PENDING_SESSION` (those are BoringSSL's and Tongsuo's). The documented
 *   suspension point before the lookup is the client-hello callback
 *   (`SSL_CLIENT_HELLO_RETRY`): there the ids the ClientHello offers are read (the TLS 1.2
 *   session id, the TLS 1.3 pre_shared_key identities), `onResumeSession` runs for each, the
 *   handshake suspends while a Promise is pending, and the get-session callback is then
 *   answered from what arrived.
 *
 * A cache failure is never a handshake failure: a throw, a rejection or bytes that are not a
 * session mean a full handshake, and the error goes to `onSessionCacheError`.
 *
 * @module
 */
import { fail } from "../core/error_queue.ts";
import {
  EARLY_DATA,
  GET_SESSION_CB,
  openssl,
  type Pointer,
  REMOVE_SESSION_CB,
  SERVER_NEW_SESSION_CB,
  SSL_CLIENT_HELLO,
  SSL_OP,
  SSL_SESS_CACHE,
  TLSEXT_TYPE_psk,
} from "../core/native.ts";
import { trampoline } from "../core/trampolines.ts";
import { isThenable, messageOf, reportUncaught } from "../core/values.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { offeredIdentities } from "./psk_keys.ts";
import { linkOf, routedCallback } from "./routing.ts";
import { decodeSession, encodeSession } from "./session_codec.ts";
import { sessionIdContextOf } from "./sessions.ts";

/**
 * What a cache lookup may answer: the session's bytes, or none.
 *
 * @example
 * ```ts
 * import type { CachedSession } from "../../mod.ts";
 * const store = new Map<string, Uint8Array>();
 * const lookUp = (key: string): CachedSession => store.get(key) ?? null;
 * console.log(lookUp("00"));
 * ```
 */
export type CachedSession = Uint8Array | null | undefined;

/**
 * Server options: an external session cache shared by several servers.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listen, type SessionCacheServerOptions } from "../../mod.ts";
 * const store = new Map<string, Uint8Array>();
 * const key = (id: Uint8Array) => Array.from(id).join(",");
 * const cache: SessionCacheServerOptions = {
 *   onNewSession: (id, session) => void store.set(key(id), session),
 *   onResumeSession: async (id) => store.get(key(id)) ?? null,
 *   onSessionCacheError: (error, operation) => console.error(operation, error),
 * };
 * const server = listen({
 *   port: 8443,
 *   cert: readFileSync("server-chain.pem", "utf8"),
 *   key: readFileSync("server.key", "utf8"),
 *   ...cache,
 * });
 * server.close();
 * ```
 */
export interface SessionCacheServerOptions {
  /**
   * Called with each new session the server makes (TLS 1.2: at the end of a full handshake;
   * TLS 1.3: once per ticket sent, 2 after a full handshake by default): `id` is the session id
   * (the cache key; a TLS 1.3 stateful ticket's identity), `session` the serialised session
   * (`i2d_SSL_SESSION`). Both are copies the function may keep. Store them where every server
   * of the service can read them, with an expiry (TLS 1.2 sessions and TLS 1.3 tickets live
   * 2 hours by default on OpenSSL servers). The bytes hold the session's master secret: store
   * them like a key. A returned Promise is not waited for; a throw or rejection goes to
   * {@link onSessionCacheError}. Giving this or {@link onResumeSession} turns the server's own
   * cache and stateless tickets off (`SSL_OP_NO_TICKET`).
   */
  onNewSession?: (id: Uint8Array, session: Uint8Array) => void | Promise<void>;
  /**
   * Called with a session id a client wants to resume (TLS 1.2 session id, TLS 1.3 stateful
   * ticket): return the bytes {@link onNewSession} was given for it, or `null` / `undefined`
   * (a full handshake), or a Promise of either: the handshake waits for it (no other connection
   * does). A throw, a rejection, or bytes that are not a session also give a full handshake,
   * and go to {@link onSessionCacheError}. A session made by a server with another certificate
   * or client-certificate policy is refused by OpenSSL (a full handshake). `id` is a copy.
   */
  onResumeSession?: (id: Uint8Array) => CachedSession | Promise<CachedSession>;
  /**
   * Called with the id of a session OpenSSL says must not be resumed any more: a connection that
   * used it failed (a fatal alert, sent or received) or ended without this server sending
   * close_notify (`conn.abort()`, a dropped client; SSL_CTX_sess_set_remove_cb(3)). Delete it
   * from the store. Called after OpenSSL's call returned (in a microtask), never inside it; a
   * throw or rejection goes to {@link onSessionCacheError}. `id` is a copy.
   */
  onRemoveSession?: (id: Uint8Array) => void | Promise<void>;
  /**
   * Told of every failure of {@link onNewSession} / {@link onResumeSession} /
   * {@link onRemoveSession} (`operation` `"store"` / `"lookup"` / `"remove"`): a throw, a
   * rejection, or a lookup that answered something that is not a session. The handshake goes on
   * either way (a lookup failure means a full handshake). Default: a `console.warn` line. A throw
   * from here is reported as an uncaught error.
   */
  onSessionCacheError?: (error: unknown, operation: SessionCacheOperation) => void;
}

/**
 * What failed, for {@link SessionCacheServerOptions.onSessionCacheError}.
 *
 * @example
 * ```ts
 * import type { SessionCacheOperation } from "../../mod.ts";
 * const failures = new Map<SessionCacheOperation, number>();
 * const onSessionCacheError = (_error: unknown, operation: SessionCacheOperation) =>
 *   void failures.set(operation, (failures.get(operation) ?? 0) + 1);
 * console.log(onSessionCacheError);
 * ```
 */
export type SessionCacheOperation = "store" | "lookup" | "remove";

type Options = SessionCacheServerOptions & Parameters<typeof sessionIdContextOf>[0] & {
  maxVersion?: string;
};

/** Whether a server context uses the external cache. */
export function usesSessionCache(options: Readonly<SessionCacheServerOptions>): boolean {
  return options.onNewSession !== undefined || options.onResumeSession !== undefined;
}

function report(link: Link, error: unknown, operation: SessionCacheOperation): void {
  reportTo(link.options as Options, error, operation);
}

function reportTo(
  options: Readonly<Options>,
  error: unknown,
  operation: SessionCacheOperation,
): void {
  const handler = options.onSessionCacheError;
  if (handler === undefined) {
    console.warn(`libssl-ffi: the session cache's ${operation} failed: ${messageOf(error)}`);
    return;
  }
  try {
    handler(error, operation);
  } catch (thrown) {
    reportUncaught(thrown);
  }
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Checks a lookup's answer: the bytes, or `null` (with a report) for anything else. */
function checked(link: Link, value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (!(value instanceof Uint8Array) || value.length === 0) {
    report(
      link,
      new TypeError("onResumeSession must return the session's bytes (a Uint8Array) or null"),
      "lookup",
    );
    return null;
  }
  return value;
}

/**
 * Runs `onResumeSession(id)`: its checked answer, or a Promise of it that never rejects (a
 * failure is reported and answers `null`).
 */
function lookUp(link: Link, id: Uint8Array): Uint8Array | null | Promise<Uint8Array | null> {
  const handler = (link.options as Options).onResumeSession!;
  let result: unknown;
  try {
    result = handler(id.slice());
  } catch (error) {
    report(link, error, "lookup");
    return null;
  }
  if (!isThenable(result)) return checked(link, result);
  return Promise.resolve(result).then((value) => checked(link, value), (error) => {
    report(link, error, "lookup");
    return null;
  });
}

const settleKey = (id: Uint8Array) => `sessionCache:${hex(id)}`;

/** Reads a `const unsigned char **` out-parameter's bytes (`length` of them), or `null`. */
function outBytes(cell: BigUint64Array, length: number): Uint8Array | null {
  const o = openssl();
  const p = o.backend.fromAddress(cell[0]!);
  return p === null || length === 0 ? null : o.backend.readBytes(p, 0, length);
}

/**
 * The ids OpenSSL will look up for this ClientHello: the pre_shared_key identities short enough
 * to be stateful tickets when TLS 1.3 will be negotiated, else the TLS 1.2 session id. (A TLS 1.3
 * ClientHello's legacy session id is random, in middlebox compatibility mode: never looked up.)
 */
function offeredIds(link: Link): Uint8Array[] {
  const o = openssl();
  const cell = new BigUint64Array(1);
  const length = new BigUint64Array(1);
  let tls13 = false;
  if (
    (link.options as Options).maxVersion !== "TLSv1.2" &&
    o.SSL_client_hello_get0_ext(
        link.ssl,
        EARLY_DATA.TLSEXT_TYPE_supported_versions,
        cell,
        length,
      ) ===
      1
  ) {
    // uint8 length, then 2-byte versions.
    const ext = outBytes(cell, Number(length[0])) ?? new Uint8Array(0);
    for (let i = 1; i + 1 < ext.length; i += 2) {
      if (ext[i] === 0x03 && ext[i + 1] === 0x04) tls13 = true;
    }
  }
  if (tls13) {
    if (o.SSL_client_hello_get0_ext(link.ssl, TLSEXT_TYPE_psk, cell, length) !== 1) {
      return [];
    }
    const ext = outBytes(cell, Number(length[0]));
    if (ext === null) return [];
    return offeredIdentities(ext)
      .filter((id) => id.length <= EARLY_DATA.MAX_SESSION_ID_LENGTH)
      .slice(0, 4);
  }
  const n = o.SSL_client_hello_get0_session_id(link.ssl, cell);
  const id = n > 0 && n <= EARLY_DATA.MAX_SESSION_ID_LENGTH ? outBytes(cell, n) : null;
  return id === null ? [] : [id];
}

/**
 * Servers, in the client-hello callback: starts `onResumeSession` for each id this ClientHello
 * offers, and suspends the handshake (`SSL_CLIENT_HELLO_RETRY`) while one is pending. Called
 * again on resume (and after a HelloRetryRequest): the settled answers are kept per id.
 */
function prefetch(link: Link): number {
  if (link.role !== "server" || (link.options as Options).onResumeSession === undefined) {
    return SSL_CLIENT_HELLO.SUCCESS;
  }
  let waiting = false;
  for (const id of offeredIds(link)) {
    if (!link.callbacks.settle(settleKey(id), () => lookUp(link, id)).done) waiting = true;
  }
  return waiting ? SSL_CLIENT_HELLO.RETRY : SSL_CLIENT_HELLO.SUCCESS;
}

/**
 * `get_session_cb`: the answer the client-hello callback fetched for this id (or, for an id it
 * did not see, a synchronous answer; a Promise then is too late and means a full handshake).
 * `*copy = 0`: the decoded session's one reference becomes OpenSSL's.
 */
function getSession(ssl: Pointer | null, data: Pointer | null, len: number, copy: Pointer | null) {
  const link = linkOf(ssl);
  if (link === undefined || data === null || copy === null || len <= 0) return null;
  try {
    const o = openssl();
    const id = o.backend.readBytes(data, 0, len);
    const settled = link.callbacks.settle(settleKey(id), () => {
      const answer = lookUp(link, id);
      if (!isThenable(answer)) return answer;
      // Not seen by the client-hello callback: nothing can wait here any more.
      answer.then(() => {}, () => {});
      return null;
    });
    const bytes = settled.done ? settled.value : null;
    if (bytes === null) return null;
    let session: Pointer;
    try {
      session = decodeSession(bytes).release();
    } catch (error) {
      report(link, error, "lookup");
      return null;
    }
    o.backend.writeI32(copy, 0, 0);
    return session;
  } catch (error) {
    // Never into C: a bug here means a full handshake, reported.
    reportUncaught(error);
    return null;
  }
}

/** The server's new-session callback: serialise, hand over, keep no reference (returns 0). */
function onNewSession(link: Link, _ssl: Pointer | null, session: Pointer | null): number {
  const handler = (link.options as Options).onNewSession;
  if (handler === undefined || session === null) return 0;
  const o = openssl();
  if (o.SSL_SESSION_is_resumable(session) !== 1) return 0;
  const length = new Uint32Array(1);
  const p = o.SSL_SESSION_get_id(session, length);
  if (p === null || length[0] === 0) return 0;
  const id = o.backend.readBytes(p, 0, length[0]!);
  const bytes = encodeSession(session);
  if (bytes === null) return 0;
  try {
    const result = handler(id, bytes);
    if (isThenable(result)) {
      Promise.resolve(result).catch((error) => report(link, error, "store"));
    }
  } catch (error) {
    report(link, error, "store");
  }
  return 0;
}

/**
 * The options of each server context with `onRemoveSession`, by `SSL_CTX` address: the remove
 * callback gets the session context, not an `SSL` (and runs inside `SSL_free`, after the
 * connection's route is gone). Weak: the options live as long as the context or a connection of
 * it; a reused address is overwritten by the next context's `configure`.
 */
const removeRoutes = new Map<number, WeakRef<SessionCacheState>>();

/** Per context: its options, for the remove callback (see {@link removeRoutes}). */
interface SessionCacheState {
  readonly options: Readonly<Options>;
}

/** The remove callback: the id, copied, goes to `onRemoveSession` in a microtask. */
function onRemove(ctx: Pointer | null, session: Pointer | null): void {
  if (ctx === null || session === null) return;
  const o = openssl();
  const address = o.backend.address(ctx);
  const options = removeRoutes.get(address)?.deref()?.options;
  if (options === undefined) {
    removeRoutes.delete(address);
    return;
  }
  const handler = options.onRemoveSession;
  const length = new Uint32Array(1);
  const p = o.SSL_SESSION_get_id(session, length);
  if (handler === undefined || p === null || length[0] === 0) return;
  const id = o.backend.readBytes(p, 0, length[0]!);
  queueMicrotask(() => {
    try {
      const result = handler(id);
      if (isThenable(result)) {
        Promise.resolve(result).catch((error) => reportTo(options, error, "remove"));
      }
    } catch (error) {
      reportTo(options, error, "remove");
    }
  });
}

/** `onNewSession`, `onResumeSession`, `onRemoveSession`, `onSessionCacheError` (servers). */
export const sessionCache: Feature<Options, SessionCacheState> = {
  name: "external session cache",
  options: {
    onNewSession: { role: "server", scope: "context" },
    onResumeSession: { role: "server", scope: "context" },
    onRemoveSession: { role: "server", scope: "context" },
    onSessionCacheError: { role: "server", scope: "context" },
  } satisfies SchemaOf<Record<never, never>, SessionCacheServerOptions>,
  validate(_role, options) {
    const keys = ["onNewSession", "onResumeSession", "onRemoveSession", "onSessionCacheError"];
    for (const key of keys as (keyof SessionCacheServerOptions)[]) {
      if (options[key] !== undefined && typeof options[key] !== "function") {
        throw new TypeError(`${key} must be a function`);
      }
    }
    for (const key of ["onRemoveSession", "onSessionCacheError"] as const) {
      if (options[key] !== undefined && !usesSessionCache(options)) {
        throw new TypeError(`${key} needs onNewSession or onResumeSession`);
      }
    }
    if (usesSessionCache(options) && options.ticketKeys !== undefined) {
      throw new TypeError(
        "ticketKeys and an external session cache (onNewSession/onResumeSession) exclude each " +
          "other: with the cache, sessions live in the cache and no stateless tickets are issued",
      );
    }
  },
  contextState: (_role, options) => ({ options }),
  configure({ role, ctx, options, stateOf }) {
    if (role !== "server" || !usesSessionCache(options)) return;
    const o = openssl();
    o.SSL_CTX_set_session_cache_mode(
      ctx,
      SSL_SESS_CACHE.SERVER | SSL_SESS_CACHE.NO_INTERNAL_LOOKUP | SSL_SESS_CACHE.NO_INTERNAL_STORE,
    );
    // TLS 1.2: session ids, not tickets; TLS 1.3: stateful tickets (SSL_CTX_set_options(3)).
    o.SSL_CTX_set_options(ctx, SSL_OP.NO_TICKET);
    // Every server sharing the cache must have the same id context (see the module doc).
    const sidCtx = sessionIdContextOf(options);
    if (o.SSL_CTX_set_session_id_context(ctx, sidCtx, sidCtx.length) !== 1) {
      fail("SSL_CTX_set_session_id_context failed");
    }
    if (options.onNewSession !== undefined) {
      o.SSL_CTX_sess_set_new_cb(ctx, routedCallback(SERVER_NEW_SESSION_CB, onNewSession));
    }
    if (options.onRemoveSession !== undefined) {
      // The state lives as long as the context (and its connections, whose links hold it).
      removeRoutes.set(o.backend.address(ctx), new WeakRef(stateOf(sessionCache)));
      o.SSL_CTX_sess_set_remove_cb(ctx, trampoline(REMOVE_SESSION_CB, onRemove as never));
    }
    if (options.onResumeSession !== undefined) {
      o.SSL_CTX_sess_set_get_cb(
        ctx,
        trampoline(GET_SESSION_CB, getSession as (...args: never[]) => unknown),
      );
    }
  },
  wantsClientHello: (role, options) => role === "server" && options.onResumeSession !== undefined,
  onClientHello: prefetch,
};
