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
 * The least-squares slope of `ys` against their index (0, 1, 2, ...): how much a series of
 * readings grows per step, with the noise of single readings averaged out
 * (`slope([10, 12, 11, 13])` is 0.8).
 */
function slope(ys: readonly number[]): number {
  const n = ys.length;
  if (n < 2) throw new RangeError("slope: needs at least two readings");
  const meanX = (n - 1) / 2;
  const meanY = ys.reduce((sum, y) => sum + y, 0) / n;
  let covariance = 0;
  let variance = 0;
  for (let i = 0; i < n; i++) {
    covariance += (i - meanX) * (ys[i]! - meanY);
    variance += (i - meanX) ** 2;
  }
  return covariance / variance;
}

/** Options of {@link assertHeapLevelsOff}. */
export interface HeapTrendOptions {
  /** One round of work: the same operations every time. */
  round: () => Promise<void>;
  /** Settles the runtime (garbage collection, late releases) and reads the native heap. */
  read: () => Promise<number>;
  /** Operations per round, to state the bound and the trend per operation. */
  operationsPerRound: number;
  /** The largest trend that passes, in bytes per operation. */
  maxBytesPerOperation: number;
  /** Rounds before the first judgement. */
  minRounds: number;
  /** Rounds after which a trend above the bound fails. */
  maxRounds: number;
}

/**
 * Runs `round` again and again, reads the native heap after each, and fails only when the
 * readings keep a trend above `maxBytesPerOperation`. The trend is the least-squares slope of
 * every reading so far (the one before the first round included).
 *
 * Why a trend and not "the last reading minus the first": the process-wide malloc figure of
 * Deno and Node.js moves by 1-2 MB between settled readings with no leak (the runtime's own
 * buffers; measured over 21,000 DTLS handshakes on Node.js 24 with OpenSSL 4.0: 12.7-14.8 MB, no
 * trend), and a run of four rising readings happens in such noise now and then (it failed CI
 * once, +2.2 MB over 2,000 handshakes). A leak keeps its slope however many rounds run; noise
 * averages out. So when the trend after `minRounds` is above the bound, more rounds run, judged
 * again after each, up to `maxRounds`: a passing judgement ends it, a trend still above the bound
 * at `maxRounds` fails with every reading.
 *
 * @example
 * ```ts
 * import { assertHeapLevelsOff } from "./support/leaks.ts";
 * import { nativeMemoryInUse } from "../../mod.ts";
 * await assertHeapLevelsOff({
 *   round: async () => {
 *     // 500 connections
 *   },
 *   read: async () => nativeMemoryInUse()!,
 *   operationsPerRound: 500,
 *   maxBytesPerOperation: 500,
 *   minRounds: 7,
 *   maxRounds: 16,
 * });
 * ```
 * @returns every reading, the one before the first round first.
 */
export async function assertHeapLevelsOff(options: HeapTrendOptions): Promise<number[]> {
  const { operationsPerRound, maxBytesPerOperation, minRounds, maxRounds } = options;
  const readings = [await options.read()];
  let perOperation = Infinity;
  for (let round = 1; round <= maxRounds; round++) {
    await options.round();
    readings.push(await options.read());
    if (round < minRounds) continue;
    perOperation = slope(readings) / operationsPerRound;
    if (perOperation < maxBytesPerOperation) return readings;
  }
  assert.fail(
    `native heap keeps growing: ${perOperation.toFixed(0)} bytes per operation over ${maxRounds} ` +
      `rounds of ${operationsPerRound} (bound ${maxBytesPerOperation}); readings: ${
        readings.join(", ")
      }`,
  );
}
