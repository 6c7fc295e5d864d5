/**
 * Small helpers about JavaScript values that several layers need: whether a user's answer is a
 * Promise, the text of anything thrown, and reporting an error nobody can catch.
 *
 * @module
 */

/** Whether `value` is a Promise or another thenable (a user callback that went async). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

/** The message of anything thrown: an Error's `message`, else its string form. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Rethrows `error` from a fresh microtask: an uncaught error the runtime reports, for errors that
 * have no caller to go to (a throwing `onError` handler, a bug inside a native callback). Never
 * swallowed, never thrown into C.
 */
export function reportUncaught(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
