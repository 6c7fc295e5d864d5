/**
 * The engine under a seeded mutation fuzzer (`tests/support/fuzz.ts`, issue #17): a short run in
 * every test run. Every case ends in success, a `TlsError` or a stall; never another exception
 * or a crash; no native object is left. `npm run fuzz -- --cases N --seed S` runs a long one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "./harness.ts";
import { runFuzz } from "./support/fuzz.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";

/** The seed of the CI run: fixed, so a failure is replayed exactly (`--seed 20261206`). */
const SEED = 20261206;

test("fuzz: 400 mutated handshakes and records end in success, TlsError or a stall", async () => {
  const report = await runFuzz({ cases: 400, seed: SEED });
  assert.equal(report.cases, 400);
  const errors = Object.entries(report.outcomes).filter(([k]) => k.startsWith("TlsError"));
  // The fuzzer does what it should: many cases are refused with typed errors, and some mutations
  // (e.g. of a record the peer never needed) still end well.
  assert.ok(errors.reduce((n, [, v]) => n + v, 0) > 120, JSON.stringify(report.outcomes));
  assert.ok((report.outcomes.ok ?? 0) > 0, JSON.stringify(report.outcomes));
  assert.equal(Object.keys(report.mutators).length, 8, JSON.stringify(report.mutators));
  clearCacheAndAssertNoLeaks();
}, { timeout: 120_000 });
