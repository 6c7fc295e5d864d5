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
import { liveNativeObjects, registeredConnections } from "../../mod.ts";

/** Asserts that this library owns no native object and routes no callbacks right now. */
export function assertNoLiveNativeObjects(): void {
  const live = liveNativeObjects();
  assert.equal(live.total, 0, `live native objects: ${JSON.stringify(live.byKind)}`);
  assert.equal(registeredConnections(), 0, "SSL objects still registered for callbacks");
}
