/**
 * `CallbackState`: how a user's function runs inside an OpenSSL callback. A throw is stored, the
 * native callback returns its failure code, and the caller rethrows the stored error (as `cause`)
 * once the OpenSSL call has returned: JS exceptions never cross into C. A returned Promise
 * suspends the handshake; its settled value is kept under a key, so the user's function runs
 * once per key per handshake while OpenSSL calls the callback again on resume.
 *
 * Used by every per-connection callback (through `handshake/routing.ts`) and by the passphrase
 * callback of key loading.
 *
 * @module
 */
import { isThenable } from "./values.ts";

/** The outcome of {@link CallbackState.settle}. */
export type Settled<T> = { readonly done: true; readonly value: T } | { readonly done: false };

interface Slot {
  settled: boolean;
  ok: boolean;
  value: unknown;
  error: unknown;
  promise: Promise<void>;
}

/**
 * A connection's callback bookkeeping: the first error a user callback raised, and the user
 * Promises the handshake is suspended on.
 *
 * @example
 * ```ts
 * import { CallbackState } from "./callback_state.ts";
 * const state = new CallbackState();
 * const code = state.run(0, () => { throw new Error("boom"); }); // 0, error kept
 * console.log(code, state.takeError()); // 0 Error: boom
 * ```
 */
export class CallbackState {
  #error: { value: unknown } | undefined;
  /** Made by the first callback that is settled through it; dropped by {@link reset}. */
  #slots: Map<string, Slot> | null = null;

  /**
   * Runs `fn`; if it throws, keeps the (first) error and returns `failure` instead. Used by every
   * trampoline so that no JS exception crosses into C.
   */
  run(failure: number, fn: () => number): number {
    try {
      return fn();
    } catch (error) {
      this.fail(error);
      return failure;
    }
  }

  /** Records a callback failure (the first one wins). */
  fail(error: unknown): void {
    this.#error ??= { value: error };
  }

  /** Whether a callback failed since the last {@link takeError}. */
  get failed(): boolean {
    return this.#error !== undefined;
  }

  /** Returns and clears the stored callback error (`undefined` if none). */
  takeError(): unknown {
    const e = this.#error;
    this.#error = undefined;
    return e?.value;
  }

  /**
   * Calls `start` once per `key` per handshake. A plain value is returned at once. A Promise
   * suspends: `{ done: false }` until it settles, then its value (a rejection is thrown, to be
   * caught by {@link run}).
   */
  settle<T>(key: string, start: () => T | Promise<T>): Settled<T> {
    const slots = this.#slots ??= new Map();
    const slot = slots.get(key);
    if (slot !== undefined) {
      if (!slot.settled) return { done: false };
      if (!slot.ok) throw slot.error;
      return { done: true, value: slot.value as T };
    }
    const result = start();
    if (!isThenable(result)) {
      slots.set(key, {
        settled: true,
        ok: true,
        value: result,
        error: undefined,
        promise: Promise.resolve(),
      });
      return { done: true, value: result };
    }
    const fresh: Slot = {
      settled: false,
      ok: false,
      value: undefined,
      error: undefined,
      promise: Promise.resolve(),
    };
    fresh.promise = Promise.resolve(result).then(
      (value) => {
        fresh.settled = true;
        fresh.ok = true;
        fresh.value = value;
      },
      (error) => {
        fresh.settled = true;
        fresh.error = error;
      },
    );
    slots.set(key, fresh);
    return { done: false };
  }

  /** A Promise that resolves (never rejects) once every pending callback settled, or `null`. */
  pending(): Promise<void> | null {
    if (this.#slots === null) return null;
    const waiting = [...this.#slots.values()].filter((s) => !s.settled).map((s) => s.promise);
    return waiting.length === 0 ? null : Promise.all(waiting).then(() => undefined);
  }

  /** Forgets settled values (at the end of a handshake). */
  reset(): void {
    this.#slots = null;
  }
}
