/**
 * How a call from OpenSSL reaches the right connection.
 *
 * - Trampolines: one native callback per callback *signature* for the whole process, created on
 *   first use and never closed (so a fixed, small number; and no `UnsafeCallback.close()` can
 *   ever run inside a callback, which crashes Deno).
 * - Routes: each connection registers its `SSL *` with its {@link Link} while it lives; a
 *   trampoline finds the link from the `SSL *` it is given (or, for verification, from the
 *   `X509_STORE_CTX`), and runs the feature's handler through the link's `CallbackState`: a throw
 *   is stored and the callback's failure code returned, so no JS exception crosses into C.
 *
 * A feature defines its callback with {@link routedCallback} and installs the returned pointer
 * in its `configure` step; nothing else needs to know about it.
 *
 * @module
 */
import { type CallbackSignature, openssl, type Pointer } from "../core/native.ts";
import { trampoline } from "../core/trampolines.ts";
import type { Link } from "./feature.ts";

// Weak: a connection a caller forgot to close can still be collected (its SSL is then freed by
// the FinalizationRegistry backstop, whose free function also unregisters it).
const routes = new Map<number, WeakRef<Link>>();

/** Routes OpenSSL's callbacks for `ssl` to `link` until {@link unregisterSsl}. */
export function registerSsl(ssl: Pointer, link: Link): void {
  routes.set(openssl().backend.address(ssl), new WeakRef(link));
}

/** Stops routing callbacks for `ssl` (call just before `SSL_free`). */
export function unregisterSsl(ssl: Pointer): void {
  routes.delete(openssl().backend.address(ssl));
}

/**
 * How many SSL objects are registered for callbacks (tests use it to prove nothing leaks).
 *
 * @example
 * ```ts
 * import { registeredConnections } from "../../mod.ts";
 * console.log(registeredConnections()); // 0 once every connection is closed
 * ```
 */
export function registeredConnections(): number {
  return routes.size;
}

/** The link registered for `ssl`, if it is one of ours and still alive. */
export function linkOf(ssl: Pointer | null): Link | undefined {
  return ssl === null ? undefined : routes.get(openssl().backend.address(ssl))?.deref();
}

let exDataIndex: number | undefined;

/** The SSL behind an `X509_STORE_CTX` during a handshake's verification. */
export function sslOfStoreCtx(storeCtx: Pointer | null): Pointer | null {
  if (storeCtx === null) return null;
  const o = openssl();
  exDataIndex ??= o.SSL_get_ex_data_X509_STORE_CTX_idx();
  if (exDataIndex < 0) return null;
  return o.X509_STORE_CTX_get_ex_data(storeCtx, exDataIndex);
}

/** How {@link routedCallback} finds the connection and answers for calls that are not ours. */
export interface RouteOptions<A extends unknown[]> {
  /** The `SSL *` the call is about. Default: the first argument. */
  sslOf?: (...args: A) => Pointer | null;
  /**
   * The return value for an `SSL *` that is not ours (cannot happen: only our contexts install
   * these callbacks) and for a NULL argument the handler needs. Default 0.
   */
  notOurs?: number | ((...args: A) => number);
}

/**
 * The process-wide trampoline for `signature` that routes each call to its connection's
 * {@link Link} and runs `handler` there. The handler's throw becomes the stored error of the
 * connection and `signature.failure` the answer to OpenSSL; `void` callbacks ignore the result.
 *
 * One trampoline per signature OBJECT: the first handler given for a signature constant is the
 * one every later call with that constant gets. Two features with the same C signature and
 * different handlers (the client's and the server's new-session callbacks) each need a constant
 * of their own in ffi/callback_signatures.ts (see `SERVER_NEW_SESSION_CB`).
 */
export function routedCallback<A extends unknown[]>(
  signature: CallbackSignature,
  handler: (link: Link, ...args: A) => number | void,
  options: RouteOptions<A> = {},
): Pointer {
  const { sslOf, notOurs = 0 } = options;
  const failure = signature.failure ?? 0;
  return trampoline(
    signature,
    ((...args: A) => {
      const link = linkOf(sslOf === undefined ? (args[0] as Pointer | null) : sslOf(...args));
      if (link === undefined) return typeof notOurs === "function" ? notOurs(...args) : notOurs;
      return link.callbacks.run(failure, () => handler(link, ...args) ?? 0);
    }) as (...args: never[]) => unknown,
  );
}
