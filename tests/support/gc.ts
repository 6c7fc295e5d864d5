/**
 * Forces garbage collection in tests, to exercise the FinalizationRegistry backstop.
 * Deno needs `--v8-flags=--expose-gc` (scripts/test.sh passes it), Node.js `--expose-gc` (so does
 * scripts/test.sh); Bun has `Bun.gc(true)`.
 *
 * @example
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * await collectGarbage();
 * ```
 * @module
 */

/** Whether this process can force a collection. */
export function canCollectGarbage(): boolean {
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  return typeof g.gc === "function" || g.Bun !== undefined;
}

/** Runs a full collection, then yields so finalizers get to run. */
export async function collectGarbage(): Promise<void> {
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (g.Bun === undefined && !("Deno" in globalThis) && typeof g.gc === "function") {
    return await settleNode(g.gc);
  }
  for (let i = 0; i < 3; i++) {
    if (g.Bun !== undefined) g.Bun.gc(true);
    else if (typeof g.gc === "function") g.gc();
    else throw new Error("cannot force GC: run deno with --v8-flags=--expose-gc");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Node.js (`node --expose-gc`): after a full GC the C heap goes on shrinking for a while (on
 * Node.js 24 by up to 2 MB over the next second: memory of finished connections, released late by
 * the runtime), so a heap reading right after `gc()` catches it half-released (and on Node.js 24
 * made the leak tests fail, where 6 collections 300 ms apart brought it back to the baseline
 * within 6 KB). So: three quick collections, then three more 300 ms apart.
 */
async function settleNode(gc: () => void): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    await new Promise((r) => setTimeout(r, i < 3 ? 10 : 300));
  }
}
