/**
 * One shared internal `TlsContext` per distinct configuration, so `connect()` does not build an
 * `SSL_CTX` (and parse a trust store: ~30 ms for the system bundle) per connection.
 *
 * Only configurations made of plain data are shared; options holding callbacks get a context of
 * their own, closed with their connection. Evicted contexts are closed at once: connections made
 * from them keep working (each `SSL` holds its own reference to the `SSL_CTX`).
 *
 * @module
 */
import { TlsContext, type TlsContextOptions } from "./context.ts";

const MAX_CONTEXTS = 32;
const cache = new Map<string, TlsContext>();

function keyPart(value: unknown): unknown {
  if (value instanceof Uint8Array) return { der: btoa(String.fromCharCode(...value)) };
  if (Array.isArray(value)) return value.map(keyPart);
  return value;
}

/** The cache key for `options`, or `null` when they cannot be shared (callbacks). */
function keyOf(role: string, options: TlsContextOptions): string | null {
  const entries = Object.entries(options).filter(([, v]) => v !== undefined).sort();
  if (entries.some(([, v]) => typeof v === "function")) return null;
  return JSON.stringify([role, entries.map(([k, v]) => [k, keyPart(v)])]);
}

/**
 * A context for `options`: a shared one (`owned: false`) or, when the options hold callbacks, a
 * new one the caller must close (`owned: true`).
 */
export function contextFor(
  role: "client" | "server",
  options: TlsContextOptions,
): { context: TlsContext; owned: boolean } {
  const key = keyOf(role, options);
  if (key === null) return { context: new TlsContext(role, options), owned: true };
  const hit = cache.get(key);
  if (hit !== undefined && !hit.closed) {
    cache.delete(key); // most recently used goes last
    cache.set(key, hit);
    return { context: hit, owned: false };
  }
  const context = new TlsContext(role, options);
  cache.set(key, context);
  if (cache.size > MAX_CONTEXTS) {
    const [oldestKey, oldest] = cache.entries().next().value as [string, TlsContext];
    cache.delete(oldestKey);
    oldest.close();
  }
  return { context, owned: false };
}

/** Closes every cached context (tests use it to prove nothing leaks). */
export function clearContextCache(): void {
  for (const context of cache.values()) context.close();
  cache.clear();
}
