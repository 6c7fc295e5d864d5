/**
 * The native side of a `TlsContext`, kept out of its public API: its `SSL_CTX *` and its
 * per-feature state, found from the context object. Below the handshake features, so that they
 * can use a context (`onServerName` may return one) without importing the class.
 *
 * @module
 */
import type { Pointer } from "../core/native.ts";
import type { AnyFeature, Role } from "../handshake/feature.ts";

/** What `src/` may know of a context beyond its public API. */
export interface ContextInternals {
  /** The context's role. */
  readonly role: Role;
  /** A DTLS context (`DTLS_method`, `src/dtls/`). */
  readonly datagram: boolean;
  /** Its validated options. */
  readonly options: Readonly<Record<string, unknown>>;
  /**
   * The `SSL_CTX *`, for a new connection (`SSL_new` takes its own reference, so the context may
   * be closed while connections made from it live on). Throws `CLOSED` once the context is.
   */
  ctx(): Pointer;
  /** The context's state for `feature` (made when the context was). */
  stateOf(feature: AnyFeature): unknown;
}

const internals = new WeakMap<object, ContextInternals>();

/** Records the internals of a new context. */
export function registerContext(context: object, inner: ContextInternals): void {
  internals.set(context, inner);
}

/** The internals of `context` if it is a `TlsContext`, else `undefined`. */
export function contextInternals(context: unknown): ContextInternals | undefined {
  return typeof context === "object" && context !== null ? internals.get(context) : undefined;
}

/** The internals of a `TlsContext` (a TypeError for anything else). */
export function internalsOf(context: object): ContextInternals {
  const inner = internals.get(context);
  if (inner === undefined) throw new TypeError("not a TlsContext");
  return inner;
}
