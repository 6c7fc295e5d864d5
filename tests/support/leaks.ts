/**
 * Leak assertions: every test that makes native objects ends by proving they are all gone.
 *
 * @example
 * ```ts
 * import { assertNoLiveNativeObjects } from "./support/leaks.ts";
 * assertNoLiveNativeObjects();
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { clearContextCache, liveNativeObjects, registeredConnections } from "../../mod.ts";

/** Asserts that this library owns no native object and routes no callbacks right now. */
export function assertNoLiveNativeObjects(): void {
  const live = liveNativeObjects();
  assert.equal(live.total, 0, `live native objects: ${JSON.stringify(live.byKind)}`);
  assert.equal(registeredConnections(), 0, "SSL objects still registered for callbacks");
}

/**
 * Drops the cached client contexts (`clearContextCache()`), then asserts that nothing native is
 * left: the usual last step of a test that made connections.
 *
 * @example
 * ```ts
 * import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
 * try {
 *   // ... connect(), listen() ...
 * } finally {
 *   clearCacheAndAssertNoLeaks();
 * }
 * ```
 */
export function clearCacheAndAssertNoLeaks(): void {
  clearContextCache();
  assertNoLiveNativeObjects();
}
