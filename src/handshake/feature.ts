/**
 * The contract every handshake feature implements, and what it is given.
 *
 * A feature (client certificates, ALPN, OCSP, PSK, ...) owns, in one module: its slice of the
 * public options (types with their docs, which role and scope each belongs to, validation), its
 * `SSL_CTX` configuration step, its per-connection state and the OpenSSL callbacks it handles.
 * `TlsContext` runs the configuration steps in the order of `features.ts`; `TlsEngine` drives the
 * handshake and routes each callback to the feature that installed it (see `routing.ts`).
 *
 * Nothing here knows a concrete feature: the list lives in `features.ts`, and reaches the hooks
 * that need it (the client-hello dispatcher) through {@link ContextSetup.features} and
 * {@link Link.features}.
 *
 * @module
 */
import type { CallbackState } from "../core/callback_state.ts";
import type { TlsError, TlsErrorCode } from "../core/errors.ts";
import type { Pointer } from "../core/native.ts";

/** What is known of a failed `SSL_*` call, for {@link Feature.explainFailure}. */
export interface FailureFacts {
  /** The operation that failed. */
  readonly phase: "handshake" | "read" | "write";
  /** OpenSSL's most specific reason text. */
  readonly why: string;
  /** The alert OpenSSL sent the peer for a problem it found itself, if any (never a received one). */
  readonly sentAlert: number | null;
}

/** A side of a TLS connection. */
export type Role = "client" | "server";

/**
 * Where an option belongs: `"context"` options configure the shared `SSL_CTX`; `"connection"`
 * options are given per connection (the engine's options). The options of one call
 * (`signal`, `handshakeTimeout`, `context`) are the entry points' own and not in the schema.
 */
export type OptionScope = "context" | "connection";

/** The schema entry of one option: which side understands it, and where it is applied. */
export interface OptionSpec {
  /** The side that understands it (`"both"`: either). */
  readonly role: Role | "both";
  /** Where it is applied; per role when the sides differ (client ALPN is per connection). */
  readonly scope: OptionScope | { readonly client: OptionScope; readonly server: OptionScope };
  /** The option the other side uses instead, for the error message (e.g. `ocsp` / `ocspStaple`). */
  readonly otherSide?: string;
  /**
   * A per-connection option that a `TlsContext` also takes, as the default of its connections
   * (client ALPN).
   */
  readonly contextDefault?: true;
}

/** A feature's slice of the option schema: one entry per option it owns. */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/**
 * The schema slice for a feature whose client options are `C` and server options `S`, checked
 * at compile time (`options: { ... } satisfies SchemaOf<C, S>`): exactly one entry per option of
 * the two interfaces, and its `role` must say which of them the option is in. So the interfaces
 * (types and docs) and the schema (role, scope) cannot drift apart.
 */
export type SchemaOf<C, S> = {
  readonly [K in keyof Required<C> | keyof Required<S>]: OptionSpec & {
    readonly role: K extends keyof C ? K extends keyof S ? "both" : "client" : "server";
  };
};

/** The scope of `spec` for `role`. */
export function scopeOf(spec: OptionSpec, role: Role): OptionScope {
  return typeof spec.scope === "string" ? spec.scope : spec.scope[role];
}

/** Whether `spec` applies to `role`. */
export function appliesTo(spec: OptionSpec, role: Role): boolean {
  return spec.role === "both" || spec.role === role;
}

/**
 * The error for an option given to the side that does not understand it. One wording for every
 * entry point, naming where the option belongs and what to use instead.
 */
export function wrongSideError(key: string, spec: OptionSpec): TypeError {
  const side = spec.role === "server" ? "servers" : "clients";
  const where = spec.role === "server"
    ? 'a server option (listen(), startTls with role "server", a server TlsContext)'
    : "a client option (connect(), startTls, a client TlsContext)";
  const instead = spec.otherSide === undefined ? "" : `; the other side's is ${spec.otherSide}`;
  return new TypeError(`${key} is for ${side} only: it is ${where}${instead}`);
}

/** What a feature's `SSL_CTX` configuration step is given. */
export interface ContextSetup<O> {
  /** The context's role. */
  readonly role: Role;
  /** The `SSL_CTX` being configured (owned by the context). */
  readonly ctx: Pointer;
  /** The context's validated options. */
  readonly options: Readonly<O>;
  /** Whether the context is for DTLS (`DTLS_method`), not TLS: see `src/dtls/`. */
  readonly datagram: boolean;
  /** Every feature, in configuration order. */
  readonly features: readonly AnyFeature[];
  /** This context's state for `feature` (made by its `contextState`). */
  stateOf<C>(feature: Feature<never, C, unknown>): C;
}

/**
 * One connection as a feature sees it inside a callback or hook: its `SSL`, its context's options
 * and state, its callback bookkeeping, and the feature states of this connection.
 */
export interface Link {
  /** The connection's role. */
  readonly role: Role;
  /** The `SSL *` (valid while the connection is open: callbacks only run then). */
  readonly ssl: Pointer;
  /** The context's validated options (each feature reads only its own slice). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Clients: the server name asked for (`servername`), if any. */
  readonly servername: string | undefined;
  /** Clients: whether the server's certificate is verified (not unsafely disabled). */
  readonly verifying: boolean;
  /** Whether the handshake has completed. */
  readonly established: boolean;
  /** Every feature, in configuration order. */
  readonly features: readonly AnyFeature[];
  /** Runs user functions, keeps their errors and Promises (see `CallbackState`). */
  readonly callbacks: CallbackState;
  /**
   * Raises `error` as this handshake's own error (thrown as it is once OpenSSL returns, not
   * wrapped as `CALLBACK_ERROR`).
   */
  reject(error: TlsError): void;
  /** This connection's state for `feature`, made by its `connectionState` on first use. */
  stateOf<S>(feature: Feature<never, unknown, S>): S;
  /** This connection's state for `feature` if it was made, else `undefined` (makes none). */
  peekStateOf<S>(feature: Feature<never, unknown, S>): S | undefined;
  /** The context's state for `feature`. */
  contextStateOf<C>(feature: Feature<never, C, unknown>): C;
}

/**
 * A handshake feature. `O` is its slice of the context options, `C` its per-context state, `S`
 * its per-connection state. Every hook is optional; hooks that take a state run only on
 * connections where the state was made (so an unused feature costs nothing per connection).
 */
export interface Feature<O, C = undefined, S = undefined> {
  /** A short name, for messages and the architecture docs. */
  readonly name: string;
  /** The options this feature owns (context, connection and call scope alike). */
  readonly options: OptionSpecs;
  /**
   * Checks this feature's context options (TypeError / RangeError), before any native work.
   * Role checks are already done from {@link options}.
   */
  validate?(role: Role, options: Readonly<O>): void;
  /**
   * Checks this feature's per-connection options against the context's options. Runs before any
   * I/O (so `connect()` fails before connecting).
   */
  validateConnection?(
    role: Role,
    contextOptions: Readonly<O>,
    connectionOptions: Readonly<Record<string, unknown>>,
  ): void;
  /** Makes this feature's per-context state (before {@link configure}). */
  contextState?(role: Role, options: Readonly<O>): C;
  /** Configures the `SSL_CTX`: settings, and the callbacks this feature handles. */
  configure?(setup: ContextSetup<O>): void;
  /** Configures a new `SSL` from the per-connection options (SNI, ALPN offer, a session). */
  setupConnection?(link: Link, connectionOptions: Readonly<Record<string, unknown>>): void;
  /** Makes this feature's state for one connection (on first use). */
  connectionState?(link: Link): S;
  /**
   * Servers, in the client-hello callback: runs before the server chooses anything. Returns
   * `SSL_CLIENT_HELLO.SUCCESS` or `.RETRY` (a user Promise is pending).
   */
  onClientHello?(link: Link): number;
  /** Wants the client-hello callback on this context (see {@link onClientHello}). */
  wantsClientHello?(role: Role, options: Readonly<O>): boolean;
  /** After a completed handshake (may throw the connection's error). */
  handshakeDone?(link: Link, state: S): void;
  /**
   * A better code and message for a failed call, when this feature knows why; else undefined.
   * Runs on every connection that fails (`state` is undefined where none was made).
   */
  explainFailure?(
    link: Link,
    state: S | undefined,
    facts: FailureFacts,
  ): { code?: TlsErrorCode; message: string } | undefined;
  /** Releases what the state holds, after `SSL_free`. */
  free?(state: S): void;
}

/** A feature of any slice and states, as lists hold them. */
// deno-lint-ignore no-explicit-any
export type AnyFeature = Feature<any, any, any>;
