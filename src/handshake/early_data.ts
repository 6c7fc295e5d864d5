/**
 * TLS 1.3 0-RTT early data: a client resuming a session sends `earlyData` with its ClientHello
 * (`SSL_write_early_data`), a server with `maxEarlyData` reads it before the handshake completes
 * (`SSL_read_early_data`) and shows it as `conn.earlyData`.
 *
 * How OpenSSL runs it (SSL_read_early_data(3)):
 * - A server advertises early data in its tickets (`SSL_CTX_set_max_early_data`) and must call
 *   `SSL_read_early_data` before the handshake, or it rejects all early data. The engine does
 *   that in its handshake step ({@link handshakeStep}).
 * - Replay protection: with `max_early_data > 0`, a TLS 1.3 OpenSSL server issues stateful
 *   tickets kept in its own session cache, and removes a session from the cache when a client
 *   resumes it: a ticket resumes once, and its early data is accepted once. A replay is a full
 *   handshake with the early data rejected. (`SSL_OP_NO_ANTI_REPLAY` would turn this off: never
 *   set here.) The protection is per server process, which is why `maxEarlyData` refuses
 *   `ticketKeys` and an external session cache: tickets valid on several servers could be replayed
 *   on each of them.
 * - A client may send early data only with a session whose ticket allows it
 *   (`SSL_SESSION_get_max_early_data`), and only the amount it allows; OpenSSL fails the
 *   handshake (internal_error) when the SNI or ALPN differ from the session's. The engine checks
 *   all of that first and otherwise does not try.
 * - OpenSSL does not resend rejected early data. This library does: whatever was not accepted as
 *   early data is written as ordinary application data right after the handshake, so `earlyData`
 *   always reaches the server once per connection, as early data (`earlyDataAccepted`) or as the
 *   first bytes of the stream.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, drainErrorQueue, fail } from "../core/error_queue.ts";
import { EARLY_DATA, openssl, type Pointer } from "../core/native.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { sessionHostname } from "./session_codec.ts";

/**
 * Per-connection client options.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connect } from "../../mod.ts";
 * const session = new Uint8Array(readFileSync("session.der")); // conn.session, stored earlier
 * const conn = await connect({
 *   hostname: "example.com",
 *   port: 443,
 *   session,
 *   earlyData: new TextEncoder().encode("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
 * });
 * console.log(conn.earlyDataAccepted);
 * conn.close();
 * ```
 */
export interface EarlyDataClientOptions {
  /**
   * Bytes to send first. With a resumed TLS 1.3 `session` whose server allows early data (and
   * at most as many bytes as it allows), they go as 0-RTT early data inside the first flight,
   * before the handshake completes; `conn.earlyDataAccepted` then says whether the server took
   * them. Otherwise (no session, TLS 1.2, a server that does not allow it, too many bytes), and
   * whenever the server rejects them (a replayed or unknown ticket, a server without
   * `maxEarlyData`), they are sent as ordinary data right after the handshake: they always arrive
   * exactly once per connection. Early data can be replayed by an attacker (to this or another
   * server): send only idempotent requests this way (see the README).
   */
  earlyData?: Uint8Array;
}

/**
 * Server options.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { listen } from "../../mod.ts";
 * const server = listen({
 *   port: 8443,
 *   cert: readFileSync("server-chain.pem", "utf8"),
 *   key: readFileSync("server.key", "utf8"),
 *   maxEarlyData: 16384,
 * });
 * for await (const conn of server) {
 *   console.log(conn.earlyData); // 0-RTT bytes (maybe a replay), or null
 *   conn.close();
 * }
 * ```
 */
export interface EarlyDataServerOptions {
  /**
   * TLS 1.3: accept up to this many bytes of 0-RTT early data from clients resuming a session
   * (`SSL_CTX_set_max_early_data`, `SSL_CTX_set_recv_max_early_data`); read it with
   * `conn.earlyData`. Default 0: off. 1 to 1048576. OpenSSL's replay protection stays on: tickets
   * become single-use entries of this server's own session cache (a ticket's early data is
   * accepted once; a replay gets a full handshake, its early data rejected). So tickets from
   * this server resume only on this server process, and `ticketKeys`, `sessionTickets: false` and
   * an external session cache (`onNewSession` / `onResumeSession`) are refused with it. Early
   * data may be a replay from before, anywhere: act on it only if doing so twice is harmless.
   */
  maxEarlyData?: number;
}

type Options = EarlyDataServerOptions & {
  sessionTickets?: boolean;
  ticketKeys?: Uint8Array;
  onNewSession?: unknown;
  onResumeSession?: unknown;
  maxVersion?: string;
  alpnProtocols?: readonly string[];
};

/** The largest `maxEarlyData`. */
const MAX_EARLY_DATA = 1_048_576;
/** SSL_read_early_data reads into a buffer of this size. */
const READ_CHUNK = 16_384;

/** Per connection: the data to send (clients) or received (servers), and the outcome. */
interface EarlyDataState {
  /** Clients: what to send first, until it is sent one way or the other. */
  toSend: Uint8Array | null;
  /** Clients: the ALPN protocols offered (OpenSSL requires the session's among them). */
  alpn: readonly string[] | undefined;
  /** The early-data phase of the handshake is over (written, or read to its end). */
  phaseDone: boolean;
  /** Clients: the bytes went out as early data. */
  sentEarly: boolean;
  /** `SSL_get_early_data_status() == SSL_EARLY_DATA_ACCEPTED`, once the handshake is done. */
  accepted: boolean;
  /** Servers: the early data read so far. */
  received: Uint8Array[];
  /** Servers: the early data, once the handshake accepted it. */
  data: Uint8Array | null;
}

const IP_LITERAL = /^(\d{1,3}(\.\d{1,3}){3}|.*:.*)$/;

/** Whether the client may try early data with the session it offers (see the module doc). */
function canSendEarly(link: Link, state: EarlyDataState, data: Uint8Array): boolean {
  const o = openssl();
  if ((link.options as Options).maxVersion === "TLSv1.2") return false;
  const session = o.SSL_get_session(link.ssl); // borrowed; the one SSL_set_session offered
  if (session === null) return false;
  const max = o.SSL_SESSION_get_max_early_data(session);
  if (max === 0 || data.length > max) return false;
  // OpenSSL: "inconsistent early data SNI" unless the session's name is the SNI sent now (IP
  // addresses are not sent as SNI).
  const bound = sessionHostname(session);
  if (bound !== null && (link.servername !== bound || IP_LITERAL.test(bound))) return false;
  // ...and "inconsistent early data ALPN" unless the session's protocol is offered again.
  const cell = new BigUint64Array(1);
  const length = new BigUint64Array(1);
  o.SSL_SESSION_get0_alpn_selected(session, cell, length);
  const p = o.backend.fromAddress(cell[0]!);
  if (p !== null && Number(length[0]) > 0) {
    const protocol = new TextDecoder().decode(o.backend.readBytes(p, 0, Number(length[0])));
    if (!(state.alpn ?? []).includes(protocol)) return false;
  }
  return true;
}

function clientStep(link: Link, state: EarlyDataState): number {
  const o = openssl();
  state.phaseDone = true;
  const data = state.toSend;
  if (data !== null && canSendEarly(link, state, data)) {
    const written = new BigUint64Array(1);
    // Writes the ClientHello and the early data into the (never full) memory BIO at once.
    const r = o.SSL_write_early_data(link.ssl, data, data.length, written);
    if (r !== 1) return r;
    state.sentEarly = true; // accepted or not: see handshakeDone
  }
  return o.SSL_do_handshake(link.ssl);
}

function serverStep(link: Link, state: EarlyDataState): number {
  const o = openssl();
  const buf = new Uint8Array(READ_CHUNK);
  const n = new BigUint64Array(1);
  for (;;) {
    n[0] = 0n;
    const r = o.SSL_read_early_data(link.ssl, buf, buf.length, n);
    const got = Number(n[0]);
    if (got > 0) state.received.push(buf.slice(0, got));
    if (r === EARLY_DATA.READ_SUCCESS) continue;
    if (r === EARLY_DATA.READ_FINISH) break;
    return 0; // SSL_READ_EARLY_DATA_ERROR: SSL_get_error says why (often WANT_READ)
  }
  state.phaseDone = true;
  return o.SSL_do_handshake(link.ssl);
}

/**
 * @internal The engine's handshake call on a connection with early data to send or read: the
 * early-data calls first, then `SSL_do_handshake`; returns the last call's result for
 * `SSL_get_error`. `undefined`: nothing to do here, call `SSL_do_handshake` itself.
 */
export function handshakeStep(link: Link): number | undefined {
  const state = link.peekStateOf(earlyData);
  if (state === undefined || state.phaseDone) return undefined;
  return link.role === "client" ? clientStep(link, state) : serverStep(link, state);
}

/** Whether the server accepted this connection's early data (after the handshake). */
export function earlyDataAcceptedOf(link: Link): boolean {
  return link.peekStateOf(earlyData)?.accepted ?? false;
}

/** Servers: the early data the handshake accepted, or `null`. */
export function earlyDataOf(link: Link): Uint8Array | null {
  return link.peekStateOf(earlyData)?.data?.slice() ?? null;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Writes `data` as ordinary application data (right after the handshake). */
function resend(ssl: Pointer, data: Uint8Array): void {
  const o = openssl();
  clearErrorQueue();
  if (o.SSL_write(ssl, data, data.length) !== data.length) {
    throw new TlsError("INTERNAL", "could not send earlyData after the handshake", {
      openssl: drainErrorQueue(),
    });
  }
}

/** `earlyData` (clients), `maxEarlyData` (servers). */
export const earlyData: Feature<Options, undefined, EarlyDataState> = {
  name: "early data",
  options: {
    earlyData: { role: "client", scope: "connection" },
    maxEarlyData: { role: "server", scope: "context" },
  } satisfies SchemaOf<EarlyDataClientOptions, EarlyDataServerOptions>,
  validate(_role, options) {
    const max = options.maxEarlyData;
    if (max === undefined || max === 0) return;
    if (!Number.isInteger(max) || max < 0 || max > MAX_EARLY_DATA) {
      throw new RangeError(
        `maxEarlyData must be an integer from 0 to ${MAX_EARLY_DATA}, got ${max}`,
      );
    }
    const why = options.sessionTickets === false
      ? "sessionTickets: false (early data needs a ticket)"
      : options.ticketKeys !== undefined
      ? "ticketKeys"
      : options.onNewSession !== undefined || options.onResumeSession !== undefined
      ? "an external session cache (onNewSession/onResumeSession)"
      : undefined;
    if (why !== undefined) {
      throw new TypeError(
        `maxEarlyData cannot be combined with ${why}: OpenSSL's replay protection keeps each ` +
          "ticket as a single-use entry of this server's own session cache",
      );
    }
  },
  validateConnection(_role, _contextOptions, { earlyData }) {
    if (earlyData === undefined) return;
    if (!(earlyData instanceof Uint8Array) || earlyData.length === 0) {
      throw new TypeError("earlyData must be a non-empty Uint8Array");
    }
  },
  configure({ role, ctx, options }) {
    const max = options.maxEarlyData ?? 0;
    if (role !== "server" || max === 0) return;
    const o = openssl();
    // What tickets advertise, and what this server reads (the latter defaults to 16384).
    if (o.SSL_CTX_set_max_early_data(ctx, max) !== 1) fail("SSL_CTX_set_max_early_data failed");
    if (o.SSL_CTX_set_recv_max_early_data(ctx, max) !== 1) {
      fail("SSL_CTX_set_recv_max_early_data failed");
    }
  },
  connectionState: () => ({
    toSend: null,
    alpn: undefined,
    phaseDone: false,
    sentEarly: false,
    accepted: false,
    received: [],
    data: null,
  }),
  setupConnection(link, { earlyData: data, alpnProtocols }) {
    const options = link.options as Options;
    if (link.role === "server") {
      if ((options.maxEarlyData ?? 0) > 0) link.stateOf(earlyData);
      return;
    }
    if (data === undefined) return;
    const state = link.stateOf(earlyData);
    state.toSend = (data as Uint8Array).slice();
    state.alpn = (alpnProtocols as readonly string[] | undefined) ?? options.alpnProtocols;
  },
  handshakeDone(link, state) {
    const o = openssl();
    state.accepted = o.SSL_get_early_data_status(link.ssl) === EARLY_DATA.ACCEPTED;
    if (link.role === "server") {
      state.data = state.accepted && state.received.length > 0 ? concat(state.received) : null;
      state.received = [];
      return;
    }
    // Rejected early data (or none sent): OpenSSL does not resend it; send it now.
    const data = state.toSend;
    state.toSend = null;
    if (data !== null && !(state.sentEarly && state.accepted)) resend(link.ssl, data);
  },
};
