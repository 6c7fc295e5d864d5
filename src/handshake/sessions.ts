/**
 * Session resumption in the handshake. Clients: `session` (offered only where it is safe) and
 * `onSession` (each new session, serialised). Servers: `sessionTickets`, `ticketCount`,
 * `ticketKeys` and key rotation. The session codec and the ticket key ring are in
 * `session_codec.ts`, which also explains how OpenSSL runs resumption.
 *
 * A resumed handshake verifies nothing again, so a client offers a session only to the server
 * name it was made for, and only from a context that verifies the way the session's did (its
 * "scope", stored as the session id context).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { supports } from "../core/capabilities.ts";
import { drainErrorQueue, fail } from "../core/error_queue.ts";
import {
  NEW_SESSION_CB,
  openssl,
  type Pointer,
  SSL_OP,
  SSL_SESS_CACHE,
  TICKET_KEY_CB,
  TICKET_KEY_LENGTH,
  TLS_VERSION,
} from "../core/native.ts";
import type { ContextSetup, Feature, Link, Role, SchemaOf } from "./feature.ts";
import { type OcspClientOptions, ocspModeOf } from "./ocsp.ts";
import { routedCallback } from "./routing.ts";
import {
  bindSession,
  checkTicketKeys,
  decodeSession,
  encodeSession,
  generateTicketKeys,
  sessionHostname,
  sessionIdContext,
  sessionInScope,
  TicketKeyRing,
} from "./session_codec.ts";

/** Per-connection client options. */
export interface SessionClientOptions {
  /**
   * A session to resume: `conn.session` of an earlier connection to the same server name
   * (`null`: none). Resumption skips the certificate exchange (`conn.sessionReused` says whether
   * it happened). It is offered only when it was made for the same `servername` by a connection
   * that verified the server the way this one does (the same trust anchors and OCSP mode, and no
   * `onVerifyCertificate` or `psk`: a context with those resumes only its own sessions); one the
   * server does not accept (another server, an expired ticket, tickets off, a version not
   * allowed) gives a full handshake. Bytes that are not a serialised session are a TypeError.
   */
  session?: Uint8Array | null;
  /**
   * Called with each new session as it arrives (serialised: the bytes `conn.session` then
   * returns): TLS 1.2 when the handshake completes, TLS 1.3 once per ticket the server sends, on
   * the reads after the handshake. Synchronous; a throw fails the connection (`CALLBACK_ERROR`).
   */
  onSession?: (session: Uint8Array) => void;
}

/** Server options. */
export interface SessionServerOptions {
  /**
   * Whether to issue session tickets (stateless resumption, TLS 1.2 and 1.3). Default `true`.
   * `false` sets `SSL_OP_NO_TICKET` and `SSL_CTX_set_num_tickets(ctx, 0)`: TLS 1.3 clients
   * cannot resume; TLS 1.2 clients still can through session IDs, from this context's in-memory
   * session cache (OpenSSL's server default, kept).
   */
  sessionTickets?: boolean;
  /**
   * TLS 1.3: how many tickets to send after a full handshake (`SSL_CTX_set_num_tickets`).
   * Default 2 (OpenSSL's); a resumed handshake always gets at most 1. 0 to 10.
   */
  ticketCount?: number;
  /**
   * The session ticket key, 80 bytes (a 16-byte key name, a 32-byte HMAC-SHA256 key, a 32-byte
   * AES-256 key, as `SSL_CTX_set_tlsext_ticket_keys` takes them; see `generateTicketKeys()`).
   * Default: a random key per context. Give every server of a service the same key (and the same
   * certificate and client-certificate settings) so that a ticket from one resumes on another or
   * after a restart; rotate it with `rotateTicketKeys()`. Anyone holding it can decrypt the
   * sessions of every ticket sealed with it: keep it secret, rotate it often.
   */
  ticketKeys?: Uint8Array;
}

/** What the scope and the server's session id context are derived from. */
type Options = SessionServerOptions & OcspClientOptions & {
  caCerts?: readonly (string | Uint8Array)[];
  cert?: string | Uint8Array;
  requestClientCert?: unknown;
  onVerifyCertificate?: unknown;
  psk?: unknown;
  unsafelyDisableVerification?: boolean;
};

/** Per context: the client's session scope, and the server's ticket keys once rotated. */
interface SessionContextState {
  readonly scope: Uint8Array;
  ring: TicketKeyRing | undefined;
}

/** Per client connection: the newest session, serialised, and who wants each new one. */
interface SessionState {
  session: Uint8Array | null;
  onSession: ((session: Uint8Array) => void) | undefined;
}

/**
 * What a client session's verification depended on, as 32 bytes: a session is offered only to
 * contexts with the same scope, because a resumed handshake verifies nothing. Plain settings
 * (trust anchors, OCSP mode) hash to the same scope in every process, so stored sessions survive
 * restarts; a context whose verdict came from code (`onVerifyCertificate`, a PSK,
 * `ocsp.onResponse`) or that verifies nothing gets a random scope of its own.
 */
function sessionScope(options: Readonly<Options>): Uint8Array {
  const ocsp = options.ocsp;
  if (
    options.onVerifyCertificate !== undefined || options.psk !== undefined ||
    options.unsafelyDisableVerification === true ||
    (typeof ocsp === "object" && ocsp?.onResponse !== undefined)
  ) {
    return crypto.getRandomValues(new Uint8Array(32));
  }
  const trust = options.caCerts === undefined
    ? ["system"]
    : options.caCerts.map((c) => typeof c === "string" ? c : btoa(String.fromCharCode(...c)));
  const hash = createHash("sha256").update(JSON.stringify({ trust, mode: ocspModeOf(options) }));
  return new Uint8Array(hash.digest());
}

/**
 * A server's session id context derived from what decides whether a session may resume there:
 * its identity and its client-certificate policy (and trust). Servers configured alike get the
 * same (shared `ticketKeys`, and the external session cache of `session_cache.ts`).
 */
export function sessionIdContextOf(options: Readonly<Options>): Uint8Array {
  const hash = createHash("sha256");
  hash.update("libssl-ffi session id context v1\0");
  const add = (part: unknown) => {
    if (part instanceof Uint8Array) hash.update(part);
    else hash.update(JSON.stringify(part ?? null));
    hash.update("\0");
  };
  add(options.cert);
  add(options.requestClientCert ?? false);
  for (const ca of options.caCerts ?? []) add(ca);
  add(options.psk === undefined ? "no-psk" : "psk");
  return new Uint8Array(hash.digest());
}

/** The session scope of a connection's context (see `sessionScope`). */
export function sessionScopeOf(link: Link): Uint8Array {
  return link.contextStateOf(sessions).scope;
}

/**
 * Clients: binds a new session to the server name (when this connection verified it), serialises
 * it and hands it on. From the new-session callback (TLS 1.2: end of a full handshake; TLS 1.3:
 * each NewSessionTicket), and for a resumed TLS 1.2 handshake.
 */
function onNewSession(link: Link, session: Pointer): void {
  const o = openssl();
  if (o.SSL_SESSION_is_resumable(session) !== 1) return;
  // OpenSSL records the name only when the server acknowledged SNI (never for IP addresses):
  // write it ourselves. On a client OpenSSL reads a session's host name only for early data
  // (early_data.ts sends early data only when the name is the SNI sent), so this changes nothing
  // else. A connection whose server sent no certificate (a PSK handshake) verified none: its
  // sessions carry no name.
  const get = o.SSL_get1_peer_certificate ?? o.SSL_get_peer_certificate;
  const peer = get === null ? null : get(link.ssl);
  if (peer !== null) o.X509_free(peer); // get1: a reference of our own
  const verified = link.verifying && peer !== null;
  bindSession(session, verified ? link.servername ?? null : null, sessionScopeOf(link));
  const bytes = encodeSession(session);
  if (bytes === null) return;
  const state = link.stateOf(sessions);
  state.session = bytes;
  state.onSession?.(bytes.slice());
}

/**
 * Offers `bytes` for resumption (`SSL_set_session`), if it was made for this server name by a
 * verifying connection; else the handshake is a full one. OpenSSL itself falls back to a full
 * handshake for sessions the server refuses, expired tickets, and versions not allowed here.
 */
function offerSession(link: Link, bytes: Uint8Array): void {
  const o = openssl();
  const session = decodeSession(bytes);
  try {
    // A resumed handshake skips certificate verification: the session must come from a verified
    // connection to this very name (sessions from unverified connections carry no name).
    // Connections that verify nothing may use any session.
    const bound = sessionHostname(session.ptr);
    if (link.verifying && (bound === null || bound !== link.servername)) return;
    // ...and verified the way this context verifies (trust anchors, OCSP mode, no callbacks).
    if (link.verifying && !sessionInScope(session.ptr, sessionScopeOf(link))) return;
    if (!link.verifying) {
      // Verifying nothing, any session will do: adopt its id context, which OpenSSL checks
      // against this connection's when the server resumes it.
      const scope = sessionIdContext(session.ptr);
      if (scope !== null) o.SSL_set_session_id_context(link.ssl, scope, scope.length);
    }
    if (o.SSL_set_session(link.ssl, session.ptr) !== 1) {
      // E.g. a session of a version this context does not allow: a full handshake.
      drainErrorQueue();
    }
  } finally {
    session.close(); // SSL_set_session took its own reference
  }
}

/** Clients: the newest session of the connection, serialised, or `null`. */
export function sessionOf(link: Link): Uint8Array | null {
  const session = link.stateOf(sessions).session;
  return session === null ? null : session.slice();
}

function configureServer({ ctx, options }: ContextSetup<Options>): void {
  const o = openssl();
  // Sessions are bound to the context that made them (OpenSSL refuses, with a full handshake, a
  // session whose id context differs). Without a session id context a server that verifies
  // clients fails every resumption attempt with "session id context uninitialized" instead of
  // falling back to a full handshake. Random by default; with shared ticketKeys, derived from
  // what decides whether a session may resume (identity, client-certificate policy), so that
  // servers configured alike, and restarts, accept each other's tickets.
  const sidCtx = options.ticketKeys === undefined
    ? crypto.getRandomValues(new Uint8Array(32))
    : sessionIdContextOf(options);
  if (o.SSL_CTX_set_session_id_context(ctx, sidCtx, sidCtx.length) !== 1) {
    fail("SSL_CTX_set_session_id_context failed");
  }
  if (options.sessionTickets === false) {
    // NO_TICKET alone still lets a TLS 1.3 server issue (stateful) tickets: also send none.
    o.SSL_CTX_set_options(ctx, SSL_OP.NO_TICKET);
    if (o.SSL_CTX_set_num_tickets(ctx, 0) !== 1) fail("SSL_CTX_set_num_tickets failed");
  } else if (
    options.ticketCount !== undefined && o.SSL_CTX_set_num_tickets(ctx, options.ticketCount) !== 1
  ) {
    fail("SSL_CTX_set_num_tickets failed");
  }
  if (options.ticketKeys !== undefined) {
    const keys = checkTicketKeys("ticketKeys", options.ticketKeys);
    const ok = o.SSL_CTX_set_tlsext_ticket_keys(ctx, keys) === 1;
    keys.fill(0);
    if (!ok) fail("SSL_CTX_set_tlsext_ticket_keys failed");
  }
}

function configureClient({ ctx, stateOf }: ContextSetup<Options>): void {
  const o = openssl();
  // Client session caching on, so that OpenSSL calls the new-session callback (for every TLS 1.3
  // ticket too); NO_INTERNAL_STORE: the engine serialises each session at once and the context
  // keeps none (sessions are offered explicitly with SSL_set_session).
  o.SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE.CLIENT | SSL_SESS_CACHE.NO_INTERNAL_STORE);
  // Always 0: the session is serialised during the call and no pointer kept, so OpenSSL releases
  // the reference it took on our behalf.
  const cb = routedCallback(NEW_SESSION_CB, (link: Link, _ssl: Pointer | null, session) => {
    if (session !== null) onNewSession(link, session as Pointer);
    return 0;
  });
  o.SSL_CTX_sess_set_new_cb(ctx, cb);
  // A client's session id context is never sent; OpenSSL copies it into each new session and
  // refuses ("attempt to reuse session in different context") to resume a session whose own
  // differs. It carries the scope of how this context verifies (see sessionScope), and only
  // sessions of the same scope are offered.
  const scope = stateOf(sessions).scope;
  if (o.SSL_CTX_set_session_id_context(ctx, scope, scope.length) !== 1) {
    fail("SSL_CTX_set_session_id_context failed");
  }
}

/**
 * Servers: makes `keys` (default: fresh random ones) the session ticket key of the context whose
 * `SSL_CTX` `ctxOf` gives (see `TlsContext.rotateTicketKeys` for the semantics). The first rotation
 * installs the ticket key callback, which reads the replaced key back from OpenSSL.
 */
export function rotateTicketKeys(
  ctxOf: () => Pointer,
  role: Role,
  options: Readonly<SessionServerOptions>,
  state: SessionContextState,
  keys: Uint8Array | undefined,
): void {
  if (role !== "server") throw new TypeError("rotateTicketKeys() is for server contexts");
  if (options.sessionTickets === false) {
    throw new TypeError("this context issues no session tickets (sessionTickets: false)");
  }
  const next = keys === undefined ? generateTicketKeys() : checkTicketKeys("keys", keys);
  const ctx = ctxOf(); // CLOSED once the context is
  const o = openssl();
  if (state.ring !== undefined) {
    state.ring.rotate(next);
    return;
  }
  if (!supports("ticketKeyEvp") || o.EVP_MAC_CTX_set_params === null) {
    // 1.1.1: one key only.
    if (o.SSL_CTX_set_tlsext_ticket_keys(ctx, next) !== 1) {
      fail("SSL_CTX_set_tlsext_ticket_keys failed");
    }
    return;
  }
  // The key in use so far: the one given as ticketKeys, or OpenSSL's random one.
  const current = new Uint8Array(TICKET_KEY_LENGTH);
  if (o.SSL_CTX_get_tlsext_ticket_keys(ctx, current) !== 1) {
    fail("SSL_CTX_get_tlsext_ticket_keys failed");
  }
  const ring = new TicketKeyRing(current, null);
  ring.rotate(next);
  state.ring = ring;
  // enc 1: seal a new ticket; enc 0: open one (see TICKET_KEY_CB). 0 = no ticket / cannot open
  // it: a full handshake.
  const cb = routedCallback(
    TICKET_KEY_CB,
    (link: Link, _ssl, keyName, iv, cipherCtx, hmacCtx, enc) => {
      if (keyName === null || iv === null || cipherCtx === null || hmacCtx === null) return 0;
      const current = link.contextStateOf(sessions).ring;
      return current?.handle(
        keyName as Pointer,
        iv as Pointer,
        cipherCtx as Pointer,
        hmacCtx as Pointer,
        enc as number,
      ) ?? 0;
    },
  );
  if (o.SSL_CTX_set_tlsext_ticket_key_evp_cb!(ctx, cb) !== 1) {
    state.ring = undefined;
    fail("SSL_CTX_set_tlsext_ticket_key_evp_cb failed");
  }
}

/** Sessions and tickets, both sides. */
export const sessions: Feature<Options, SessionContextState, SessionState> = {
  name: "sessions and tickets",
  options: {
    session: { role: "client", scope: "connection" },
    onSession: { role: "client", scope: "connection" },
    sessionTickets: { role: "server", scope: "context", otherSide: "session" },
    ticketCount: { role: "server", scope: "context", otherSide: "session" },
    ticketKeys: { role: "server", scope: "context", otherSide: "session" },
  } satisfies SchemaOf<SessionClientOptions, SessionServerOptions>,
  validate(_role, { sessionTickets, ticketCount, ticketKeys }) {
    if (sessionTickets !== undefined && typeof sessionTickets !== "boolean") {
      throw new TypeError("sessionTickets must be a boolean");
    }
    if (ticketCount !== undefined) {
      if (!Number.isInteger(ticketCount) || ticketCount < 0 || ticketCount > 10) {
        throw new RangeError(`ticketCount must be an integer from 0 to 10, got ${ticketCount}`);
      }
      if (sessionTickets === false && ticketCount > 0) {
        throw new TypeError("ticketCount > 0 contradicts sessionTickets: false");
      }
    }
    if (ticketKeys !== undefined) {
      checkTicketKeys("ticketKeys", ticketKeys);
      if (sessionTickets === false) throw new TypeError("ticketKeys needs sessionTickets");
    }
  },
  validateConnection(_role, _contextOptions, { session, onSession }) {
    // Parses it: a TypeError for garbage, before any I/O.
    if (session !== undefined && session !== null) decodeSession(session).close();
    if (onSession !== undefined && typeof onSession !== "function") {
      throw new TypeError("onSession must be a function");
    }
  },
  contextState: (role, options) => ({
    scope: role === "client" ? sessionScope(options) : new Uint8Array(0),
    ring: undefined,
  }),
  configure(setup) {
    if (setup.role === "server") configureServer(setup);
    else configureClient(setup);
  },
  connectionState: () => ({ session: null, onSession: undefined }),
  setupConnection(link, { session, onSession }) {
    if (link.role !== "client") return;
    // Every client connection has the state: `conn.session` and the TLS 1.2 resumption hook use it.
    const state = link.stateOf(sessions);
    if (onSession !== undefined) state.onSession = onSession as (session: Uint8Array) => void;
    if (session !== undefined && session !== null) offerSession(link, session as Uint8Array);
  },
  handshakeDone(link, state) {
    // A resumed TLS 1.2 handshake makes no new session (no callback): the resumed one, with a
    // ticket the server may have renewed, is this connection's session.
    const o = openssl();
    if (
      link.role !== "client" || state.session !== null ||
      o.SSL_session_reused(link.ssl) !== 1 || o.SSL_version(link.ssl) === TLS_VERSION.TLS1_3_VERSION
    ) {
      return;
    }
    const current = o.SSL_get1_session(link.ssl);
    if (current === null) return;
    try {
      onNewSession(link, current);
    } finally {
      o.SSL_SESSION_free(current);
    }
  },
};
