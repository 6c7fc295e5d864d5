/**
 * The process-wide native callbacks: one per callback signature, created on first use and never
 * closed. A fixed, small number; and no `UnsafeCallback.close()` can ever run inside a callback,
 * which crashes Deno. Per-connection callbacks are built on this by `handshake/routing.ts`.
 *
 * @module
 */
import { type CallbackSignature, type NativeCallback, openssl, type Pointer } from "./native.ts";
import { reportUncaught } from "./values.ts";

const trampolines = new Map<CallbackSignature, NativeCallback>();

/**
 * The process-wide native callback for `signature`, created on first use and never closed. `fn`
 * must not throw (wrap it; a throw is reported as an uncaught error, never into C); it is the only
 * implementation for that signature.
 */
export function trampoline(
  signature: CallbackSignature,
  fn: (...args: never[]) => unknown,
): Pointer {
  let cb = trampolines.get(signature);
  if (cb === undefined) {
    cb = openssl().backend.callback(signature, fn, signature.failure, reportUncaught);
    trampolines.set(signature, cb);
  }
  return cb.pointer;
}
