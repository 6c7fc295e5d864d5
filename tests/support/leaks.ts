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

/**
 * Asserts that native heap readings taken after equal rounds of the same work (after a GC each)
 * show no steady growth: the median growth per round stays below `perRoundLimit`.
 *
 * This is the heap check on Node.js. There the C heap also holds the runtime's own allocations,
 * which grow in isolated steps with no relation to our objects: on Node.js 24 a main-thread
 * allocation doubles at fixed points (about +0.3, +0.6, +1.2 MB after 4,000, 8,000 and 16,000
 * in-memory handshakes), with the very same library and koffi that stay flat on Node.js 22 and
 * 26, and plain `node:net` connections alone move it by up to 0.3 MB per 2,000. A leak shows in
 * every round; such a step in one or two of them.
 *
 * @example
 * ```ts
 * import { assertNoSteadyHeapGrowth } from "./support/leaks.ts";
 * assertNoSteadyHeapGrowth([8_000_000, 8_010_000, 8_900_000, 8_905_000], 150_000, "rounds");
 * ```
 */
export function assertNoSteadyHeapGrowth(
  readings: readonly number[],
  perRoundLimit: number,
  what: string,
): void {
  const growth = readings.slice(1).map((h, i) => h - readings[i]!);
  assert.ok(growth.length >= 3, "at least three rounds, for a median that ignores a step");
  const median = [...growth].sort((a, b) => a - b)[Math.floor(growth.length / 2)]!;
  assert.ok(
    median < perRoundLimit,
    `native heap grows steadily: ${median} bytes per round of ${what} (median; each round: ` +
      `${growth.join(", ")})`,
  );
}
