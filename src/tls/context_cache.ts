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

// Serialising a trust list (PEM text, DER bytes) costs ~10 us; callers usually pass the same
// array every time, so its serialisation is remembered per array, together with the elements it
// was made from: a caller who changes the array afterwards gets a fresh key, never a stale one.
// (A Uint8Array changed in place is the one case this cannot see; its DER is re-read on a miss.)
const arrayKeys = new WeakMap<readonly unknown[], { items: unknown[]; key: string }>();

function keyOfValue(value: unknown): unknown {
  if (!Array.isArray(value)) return keyPart(value);
  const hit = arrayKeys.get(value);
  if (
    hit !== undefined && hit.items.length === value.length &&
    hit.items.every((item, i) => item === value[i]) &&
    !value.some((item) => item instanceof Uint8Array)
  ) {
    return hit.key;
  }
  const key = JSON.stringify(keyPart(value));
  arrayKeys.set(value, { items: [...value], key });
  return key;
}

/** The cache key for `options`, or `null` when they cannot be shared (callbacks). */
function keyOf(role: string, options: TlsContextOptions): string | null {
  const entries = Object.entries(options).filter(([, v]) => v !== undefined).sort();
  // Callbacks (also inside an options object, e.g. `ocsp.onResponse`) make a context unshareable.
  const holdsFunction = (v: unknown) =>
    typeof v === "function" ||
    (typeof v === "object" && v !== null && !ArrayBuffer.isView(v) &&
      Object.values(v).some((x) => typeof x === "function"));
  if (entries.some(([, v]) => holdsFunction(v))) return null;
  return JSON.stringify([role, entries.map(([k, v]) => [k, keyOfValue(v)])]);
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
