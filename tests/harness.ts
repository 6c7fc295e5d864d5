/**
 * A tiny test harness that runs the same `*_test.ts` files under `deno test`, `bun test` and
 * `node --test`.
 *
 * `test()` maps to `Deno.test` on Deno, to `bun:test`'s `test` on Bun and to `node:test`'s `test`
 * on Node.js, with an explicit per-test timeout on all three (Deno has none by default, so a hung
 * test would hang CI; Bun's default of 5 s is too short for some of ours; node:test has none by
 * default either). Assertions come from `node:assert/strict`, which all three runtimes ship.
 *
 * @example
 * ```ts
 * import { test } from "./harness.ts";
 * import assert from "node:assert/strict";
 * test("adds", () => assert.equal(1 + 1, 2));
 * ```
 * @module
 */
import process from "node:process";

/** Options for one test. */
export interface TestOptions {
  /** Fail the test if it has not settled after this many milliseconds. Default 20,000. */
  timeout?: number;
}

/** A test body: synchronous or asynchronous. */
export type TestFn = () => void | Promise<void>;

/** The runtime the tests are running on. */
export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis
  ? "bun"
  : "Deno" in globalThis
  ? "deno"
  : "node";

const DEFAULT_TIMEOUT = 20_000;

/**
 * Node.js flags for a child process of the runtime under test: `node:ffi` prints an
 * ExperimentalWarning on stderr in every process (which the examples' tests read), and Node.js
 * 26.1-26.8 need `--experimental-ffi` for it, which the child inherits from this process.
 */
const NODE_CHILD_FLAGS: readonly string[] = runtime === "node"
  ? [
    "--disable-warning=ExperimentalWarning",
    ...process.execArgv.filter((flag) => flag === "--experimental-ffi"),
  ]
  : [];

/**
 * The arguments that run `script` with the runtime under test (`process.execPath`): `deno run
 * --no-prompt <denoFlags> script args`, `bun script args`, `node <flags> script args`.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { spawnSync } from "node:child_process";
 * import { runtimeArgs } from "./harness.ts";
 * spawnSync(process.execPath, runtimeArgs("examples/client.ts", ["--help"]));
 * ```
 */
export function runtimeArgs(
  script: string,
  args: readonly string[] = [],
  denoFlags: readonly string[] = ["--allow-all"],
): string[] {
  switch (runtime) {
    case "deno":
      return ["run", "--no-prompt", ...denoFlags, script, ...args];
    case "bun":
      return [script, ...args];
    case "node":
      return [...NODE_CHILD_FLAGS, script, ...args];
  }
}

interface BunTestModule {
  test(name: string, fn: () => Promise<void>, timeout: number): void;
}

// Loaded through a variable specifier so that `deno check` does not try to resolve `bun:test`.
const bunTestSpecifier = "bun:test";
const bunTest: BunTestModule | null = runtime === "bun"
  ? (await import(bunTestSpecifier)) as BunTestModule
  : null;

interface NodeTestModule {
  test(name: string, options: { timeout: number }, fn: () => Promise<void>): unknown;
}

// `node:test` exists on Deno and Bun too, but only Node's runs under `node --test`.
const nodeTestSpecifier = "node:test";
const nodeTest: NodeTestModule | null = runtime === "node"
  ? (await import(nodeTestSpecifier)) as NodeTestModule
  : null;

/** Rejects after `ms`, unless the body settles first; always clears its timer. */
async function withTimeout(name: string, fn: TestFn, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`test "${name}" timed out after ${ms} ms`)),
      ms,
    );
  });
  try {
    await Promise.race([Promise.resolve().then(fn), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Registers a test with the current runtime's runner.
 *
 * @example
 * ```ts
 * import { test } from "./harness.ts";
 * test("slow one", async () => { await new Promise((r) => setTimeout(r, 10)); }, { timeout: 60_000 });
 * ```
 */
export function test(name: string, fn: TestFn, options: TestOptions = {}): void {
  const ms = options.timeout ?? DEFAULT_TIMEOUT;
  if (bunTest !== null) {
    // Bun enforces the timeout itself; our own race gives the same message on both runtimes.
    bunTest.test(name, () => withTimeout(name, fn, ms), ms + 1_000);
  } else if (nodeTest !== null) {
    // The same: node:test's own timeout is only the backstop.
    nodeTest.test(name, { timeout: ms + 1_000 }, () => withTimeout(name, fn, ms));
  } else {
    Deno.test({ name, fn: () => withTimeout(name, fn, ms) });
  }
}
