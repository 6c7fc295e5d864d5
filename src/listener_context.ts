/**
 * `listener.setContext(contextOrOptions)`: what a listener's context may be replaced with, checked
 * before anything changes (certificates replaced without a restart, e.g. after a renewal).
 *
 * The listener hands its context to each new connection (`SSL_new` takes its own reference to
 * the `SSL_CTX`), so a replaced context lives on for as long as connections made from it do:
 * the listener only gives up its own reference (`TlsContext.close()`) when it owned it, and
 * OpenSSL frees the `SSL_CTX` with the last `SSL` that uses it.
 *
 * @module
 */
import type { ServerFeatureOptions } from "./handshake/features.ts";
import { TlsContext, type TlsContextOptions } from "./tls/context.ts";
import type { OptionAliases } from "./tls/option_names.ts";

/**
 * What `listener.setContext()` takes besides a `TlsContext`: the TLS options of `listen()`
 * (`cert`, `key`, `caCerts`, `requestClientCert`, `alpnProtocols`, ...), without its listener
 * options (`port`, `hostname`, timeouts, `onError`, limits, `signal`, `context`).
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import type { ListenerContextOptions } from "../mod.ts";
 * const options: ListenerContextOptions = {
 *   cert: readFileSync("renewed-chain.pem", "utf8"),
 *   key: readFileSync("renewed.key", "utf8"),
 * };
 * console.log(Object.keys(options));
 * ```
 */
export interface ListenerContextOptions extends ServerFeatureOptions<TlsContext>, OptionAliases {}

/** `listen()`'s own options: they configure the listener, not its context. */
const LISTENER_KEYS: ReadonlySet<string> = new Set([
  "hostname",
  "port",
  "signal",
  "handshakeTimeout",
  "idleTimeout",
  "onError",
  "maxPendingConnections",
  "maxPendingPerAddress",
  "clientHelloTimeout",
]);

/**
 * The context `given` asks for, validated: a server `TlsContext` as it is (not owned), or a new
 * one made from server TLS options (owned: the listener closes it when it is replaced or
 * closed).
 *
 * @throws {TypeError | RangeError} for a client or closed context, listener options, bad
 * options; {@link TlsError} `INVALID_CERTIFICATE`, `INVALID_KEY`, `BAD_PASSPHRASE`.
 */
export function replacementContext(
  given: TlsContext | ListenerContextOptions,
): { context: TlsContext; owned: boolean } {
  if (given instanceof TlsContext) {
    if (given.role !== "server") {
      throw new TypeError("setContext(): the context must be a server one");
    }
    if (given.closed) throw new TypeError("setContext(): the context is closed");
    return { context: given, owned: false };
  }
  if (typeof given !== "object" || given === null) {
    throw new TypeError("setContext() takes a server TlsContext or server TLS options");
  }
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined) continue;
    if (key === "context") {
      throw new TypeError("setContext(): give the TlsContext itself, not { context }");
    }
    if (LISTENER_KEYS.has(key)) {
      throw new TypeError(
        `setContext(): ${key} is an option of the listener, not of its context (it cannot ` +
          "change without a new listen()); give only TLS options (cert, key, caCerts, ...)",
      );
    }
  }
  // Validated (unknown keys, options of clients, cert and key or psk) and built as listen()
  // builds its own; nothing changes if this throws.
  return { context: new TlsContext("server", given as TlsContextOptions), owned: true };
}
