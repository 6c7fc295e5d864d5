/**
 * `Deadline`: the time limit and abort signal of one connection. TCP connect and handshake share
 * one limit (`handshakeTimeout`); the signal stays armed for the connection's whole life.
 *
 * @module
 */
import { TlsError } from "./errors.ts";

const noop = () => {};

/** The `ABORTED` error for an aborted `signal` (its reason as `cause`). */
export function abortedError(signal: AbortSignal): TlsError {
  return new TlsError("ABORTED", "the connection was aborted", { cause: signal.reason });
}

/**
 * Turns a timeout and an `AbortSignal` into one `TlsError` (`TIMEOUT` or `ABORTED`), delivered
 * once: as the rejection of what {@link race} awaits and to the {@link onInterrupt} handler. One owner
 * (`connect()` until the `Connection` exists, then the `Connection`); `dispose()` is idempotent.
 *
 * @example
 * ```ts
 * import { Deadline } from "./deadline.ts";
 * const deadline = new Deadline(5_000, undefined);
 * const slow = new Promise((resolve) => setTimeout(resolve, 10_000));
 * try {
 *   await deadline.race(slow); // rejects with TIMEOUT after 5 s
 * } finally {
 *   deadline.dispose();
 * }
 * ```
 */
export class Deadline {
  /**
   * Rejects with {@link error} when the deadline fires; never resolves. Only {@link race} needs
   * it: `null` once the timed part is over ({@link stopTimer}), so that an idle connection does
   * not keep it (and its reactions) alive.
   */
  #interrupted: Promise<never> | null;
  #error: TlsError | null = null;
  #reject: (error: TlsError) => void = noop;
  #handler: () => void = noop;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: () => void = noop;

  /**
   * Starts the clock (`Infinity`: no limit) and watches `signal`. `what` names the timed work in
   * the `TIMEOUT` message.
   */
  constructor(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what = "connecting and the TLS handshake",
  ) {
    this.#interrupted = new Promise<never>((_, reject) => (this.#reject = reject));
    this.#interrupted.catch(noop); // observed through race(); never an unhandled rejection
    if (Number.isFinite(timeoutMs)) {
      this.#timer = setTimeout(() => {
        this.#fire(
          new TlsError("TIMEOUT", `${what} took over ${timeoutMs} ms`),
        );
      }, timeoutMs);
    }
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => this.#fire(abortedError(signal));
      if (signal.aborted) this.#onAbort();
      else signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  #fire(error: TlsError): void {
    if (this.#error !== null) return;
    this.#error = error;
    this.#reject(error);
    this.dispose();
    this.#handler();
  }

  /** The `TIMEOUT` or `ABORTED` error once the deadline fired, else `null`. */
  get error(): TlsError | null {
    return this.#error;
  }

  /** Called once when the deadline fires (at once if it already has), e.g. to close a stream. */
  set onInterrupt(handler: () => void) {
    this.#handler = handler;
    if (this.#error !== null) handler();
  }

  /**
   * Awaits `p`, unless the deadline fires first. After {@link stopTimer} it is `p` itself: the
   * signal then only calls the {@link onInterrupt} handler.
   */
  race<T>(p: Promise<T>): Promise<T> {
    return this.#interrupted === null ? p : Promise.race([p, this.#interrupted]);
  }

  /**
   * Ends the time limit (the handshake is done); the signal stays armed, through the
   * {@link onInterrupt} handler only. Lets go of the timer and of the promise races used, and
   * without a signal of the handler too (nothing can fire any more): an idle connection keeps
   * none of them.
   */
  stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#interrupted = null;
    this.#reject = noop;
    if (this.#signal === undefined) this.#handler = noop;
  }

  /** Stops the timer and stops listening to the signal. Idempotent. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}
