/**
 * Forces garbage collection in tests, to exercise the FinalizationRegistry backstop.
 * Deno needs `--v8-flags=--expose-gc` (scripts/test.sh passes it); Bun has `Bun.gc(true)`.
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
  for (let i = 0; i < 3; i++) {
    if (g.Bun !== undefined) g.Bun.gc(true);
    else if (typeof g.gc === "function") g.gc();
    else throw new Error("cannot force GC: run deno with --v8-flags=--expose-gc");
    await new Promise((r) => setTimeout(r, 10));
  }
}
