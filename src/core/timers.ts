/**
 * Timers that never keep the process alive on their own (a background refresh, an idle limit):
 * `timer.unref()` on Node.js and Bun, `Deno.unrefTimer(id)` on Deno.
 *
 * @module
 */

/** Lets the process exit while `timer` is pending; returns it. */
export function unrefTimer<T extends ReturnType<typeof setTimeout>>(timer: T): T {
  const t = timer as unknown as { unref?: () => void };
  if (typeof t.unref === "function") t.unref();
  else if ("Deno" in globalThis) {
    (globalThis as unknown as { Deno: { unrefTimer(id: number): void } }).Deno.unrefTimer(
      timer as unknown as number,
    );
  }
  return timer;
}
