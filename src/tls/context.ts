/**
 * `TlsContext`: one configured `SSL_CTX` (trust, identity, versions, callbacks), shared by any
 * number of connections. Secure by default: peer verification on, TLS 1.2 minimum, a modern
 * TLS 1.2 cipher list, no renegotiation, truncation is an error.
 *
 * The configuration itself is done by the handshake features (`handshake/features.ts`), each
 * owning its options: this class validates the options against the schema, makes the `SSL_CTX`
 * and runs each feature's configuration step, in order.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { clearErrorQueue, fail } from "../core/error_queue.ts";
import { NativeHandle } from "../core/ownership.ts";
import { openssl } from "../core/native.ts";
import type { AnyFeature, ContextSetup, Role } from "../handshake/feature.ts";
import { type ContextFeatureOptions, FEATURES } from "../handshake/features.ts";
import type { Identity } from "../handshake/identity.ts";
import { rotateTicketKeys, sessions } from "../handshake/sessions.ts";
import { trace } from "../handshake/trace.ts";
import { internalsOf, registerContext } from "./native_context.ts";
import type { OptionAliases } from "./option_names.ts";
import { normalizeOptions } from "./options.ts";

/** What {@link TlsContextOptions.onServerName} may return. */
export type ServerNameResult = Identity | TlsContext | null;

/**
 * Options for {@link TlsContext}: the context options of both sides (each documented in its
 * feature's interface). Options of the other side, per-connection options and unknown keys are
 * refused with a TypeError.
 */
export interface TlsContextOptions extends ContextFeatureOptions<TlsContext>, OptionAliases {}

/**
 * Validates `options` for a context of `role`: every key (from the schema; aliases renamed),
 * then each feature's own checks. TypeError / RangeError, before any native work. Returns the
 * options with aliases renamed.
 */
function validate(role: Role, given: TlsContextOptions): TlsContextOptions {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  const options = normalizeOptions("TlsContext", role, given);
  // The one rule across features: a server authenticates with a certificate, a PSK, or both.
  if (
    role === "server" && options.cert === undefined && options.pfx === undefined &&
    options.psk === undefined
  ) {
    throw new TypeError("a server context needs cert and key (or pfx, or psk)");
  }
  for (const feature of FEATURES) feature.validate?.(role, options);
  return options;
}

/**
 * A TLS configuration: one `SSL_CTX`, shared by every connection made from it. Close it when
 * done; connections still open keep the native object alive (OpenSSL refcounts it) until they
 * close too.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { TlsContext, TlsEngine } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * using context = new TlsContext("client", { caCerts: [caPem] });
 * using engine = new TlsEngine(context, { servername: "localhost" });
 * engine.handshake(); // "want-read": send engine.outgoing() to the server, feed its reply back
 * ```
 */
export class TlsContext {
  /** `"client"` or `"server"`. */
  readonly role: "client" | "server";
  /** The (validated) options this context was made with. */
  readonly options: Readonly<TlsContextOptions>;
  /** `SSLKEYLOGFILE` as it was when the context was made: key log lines are appended there. */
  readonly keylogFile: string | undefined;
  #ctx: NativeHandle;
  #states = new Map<AnyFeature, unknown>();
  #closed = false;

  /**
   * Creates and configures the `SSL_CTX`.
   *
   * @throws {TypeError | RangeError} for bad options, before any native work.
   * @throws {TlsError} `INVALID_CERTIFICATE`, `INVALID_KEY`, `BAD_PASSPHRASE`, `LIBRARY_NOT_FOUND`.
   */
  constructor(
    role: "client" | "server",
    options: TlsContextOptions = {},
    /** @internal A DTLS context (`DTLS_method`), for `src/dtls/` only. */
    datagram = false,
  ) {
    if (role !== "client" && role !== "server") {
      throw new TypeError(`role must be "client" or "server", got ${JSON.stringify(role)}`);
    }
    this.role = role;
    this.options = { ...validate(role, options) };
    const o = openssl();
    for (const feature of FEATURES) {
      if (feature.contextState !== undefined) {
        this.#states.set(feature, feature.contextState(role, this.options));
      }
    }
    this.keylogFile = (this.#states.get(trace) as { keylogFile: string | undefined }).keylogFile;
    clearErrorQueue();
    const ctx = o.SSL_CTX_new(datagram ? o.DTLS_method() : o.TLS_method());
    if (ctx === null) fail("SSL_CTX_new failed");
    this.#ctx = new NativeHandle("SSL_CTX", ctx, (p) => o.SSL_CTX_free(p));
    registerContext(this, {
      role,
      datagram,
      options: this.options as Readonly<Record<string, unknown>>,
      ctx: () => {
        if (this.#closed) throw new TlsError("CLOSED", "the TlsContext is closed");
        return this.#ctx.ptr;
      },
      stateOf: (feature) => this.#states.get(feature),
    });
    const setup: ContextSetup<TlsContextOptions> = {
      role,
      ctx,
      options: this.options,
      datagram,
      features: FEATURES,
      stateOf: <C>(feature: unknown) => this.#states.get(feature as AnyFeature) as C,
    };
    try {
      for (const feature of FEATURES) feature.configure?.(setup);
    } catch (error) {
      this.#ctx.close();
      throw error;
    }
  }

  /**
   * Servers: makes `keys` (80 bytes; default: fresh random ones) the session ticket key. New
   * tickets are sealed with it; tickets sealed with the key it replaces still resume (and are
   * renewed: the client gets a ticket under the new key), older ones fall back to a full
   * handshake. So rotating more often than tickets live (TLS 1.3 tickets: 2 hours, OpenSSL's
   * default session timeout) ends resumption for clients that stayed away longer. The first
   * rotation installs the ticket key callback (`SSL_CTX_set_tlsext_ticket_key_evp_cb`), which
   * reads the replaced key back from OpenSSL; connections in progress are unaffected.
   *
   * On OpenSSL 1.1.1 (no EVP ticket callback) the key is replaced outright: earlier tickets stop
   * resuming.
   *
   * @example
   * ```ts
   * import { readFileSync } from "node:fs";
   * import { generateTicketKeys, listen } from "../../mod.ts";
   * const cert = readFileSync("server.pem", "utf8");
   * const key = readFileSync("server.key", "utf8");
   * const server = listen({ port: 8443, cert, key, ticketKeys: generateTicketKeys() });
   * setInterval(() => server.rotateTicketKeys(), 60 * 60 * 1000); // hourly
   * ```
   * @throws {TypeError} on client contexts, with `sessionTickets: false`, or when closed;
   * {@link RangeError} when `keys` is not 80 bytes.
   */
  rotateTicketKeys(keys?: Uint8Array): void {
    const state = this.#states.get(sessions) as Parameters<typeof rotateTicketKeys>[3];
    rotateTicketKeys(() => internalsOf(this).ctx(), this.role, this.options, state, keys);
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases this context's reference to the `SSL_CTX`. Idempotent. Connections already made keep
   * working: each holds its own reference (OpenSSL's refcount), freed when it closes.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Node's name for {@link TlsContext}: one `SSL_CTX` with its trust store and identity, shared by
 * many connections. `connect()`, `startTls()` and `listen()` all take one as `context`.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { connect, SecureContext } from "../../mod.ts";
 * const caPem = readFileSync("ca.pem", "utf8");
 * using shared = new SecureContext("client", { caCerts: [caPem] });
 * await using a = await connect({ hostname: "localhost", port: 8443, context: shared });
 * await using b = await connect({ hostname: "localhost", port: 8443, context: shared });
 * ```
 */
export const SecureContext: typeof TlsContext = TlsContext;
/** Node's name for {@link TlsContext}. */
export type SecureContext = TlsContext;
