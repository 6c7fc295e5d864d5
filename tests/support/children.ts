/**
 * What the child-process helpers (peer_process.ts for servers, clients.ts for clients) share: a
 * registry that SIGKILLs every tracked child when this process exits, the capture of a child's
 * stdout and stderr, and waiting for a pattern in that output.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process";
 * import { captureOutput, trackChild, waitForOutput } from "./children.ts";
 * const child = spawn("echo", ["hello"], { stdio: ["pipe", "pipe", "pipe"] });
 * const untrack = trackChild(child);
 * const output = captureOutput(child);
 * let over = false;
 * child.once("close", () => ((over = true), untrack(), output.changed()));
 * await waitForOutput(output, /hello/, {
 *   timeoutMs: 5_000,
 *   isOver: () => over,
 *   describe: () => output.output(),
 * });
 * ```
 * @module
 */
import type { ChildProcess } from "node:child_process";
import process from "node:process";

/** Every child started by a helper and not yet reaped, whichever module started it. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllChildrenNow(): void {
  for (const child of liveChildren) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  liveChildren.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", killAllChildrenNow);
  const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
  target.addEventListener?.("unload", killAllChildrenNow);
}

/**
 * Tracks `child` so that it is SIGKILLed if this process exits while it runs (`exit` and
 * `unload` hooks, installed once). Returns the function that stops tracking it: call it once
 * the child has exited.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process";
 * import { trackChild } from "./children.ts";
 * const child = spawn("sleep", ["10"]);
 * const untrack = trackChild(child);
 * child.once("exit", untrack);
 * child.kill();
 * ```
 */
export function trackChild(child: ChildProcess): () => void {
  installExitHook();
  liveChildren.add(child);
  return () => void liveChildren.delete(child);
}

/**
 * A child's output so far, as captured by {@link captureOutput}.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process";
 * import { captureOutput, type ChildOutput } from "./children.ts";
 * const output: ChildOutput = captureOutput(spawn("echo", ["hi"]));
 * const unsubscribe = output.subscribe(() => console.log(output.stdout()));
 * unsubscribe();
 * ```
 */
export interface ChildOutput {
  /** Everything it printed to stdout so far. */
  stdout(): string;
  /** Everything it printed to stderr so far. */
  stderr(): string;
  /** stdout and stderr so far, interleaved in the order the chunks arrived here. */
  output(): string;
  /** Adds `text` to stderr and to the output, e.g. `spawn error: ...`. */
  appendError(text: string): void;
  /** Calls `listener` after every chunk and every {@link ChildOutput.changed}; returns the unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** Tells the subscribers that something changed (e.g. the child exited). */
  changed(): void;
}

/**
 * Collects `child`'s stdout and stderr (as UTF-8 text), and ignores EPIPE on its stdin (writing
 * to a child that already quit must never crash the test run).
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process";
 * import { captureOutput } from "./children.ts";
 * const child = spawn("sh", ["-c", "echo out; echo err >&2"]);
 * const output = captureOutput(child);
 * child.once("close", () => console.log(output.stdout(), output.stderr()));
 * ```
 */
export function captureOutput(child: ChildProcess): ChildOutput {
  let out = "";
  let err = "";
  let all = "";
  const listeners = new Set<() => void>();
  const changed = (): void => {
    for (const listener of [...listeners]) listener();
  };
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    out += chunk;
    all += chunk;
    changed();
  });
  child.stderr?.on("data", (chunk: string) => {
    err += chunk;
    all += chunk;
    changed();
  });
  child.stdin?.on("error", () => {});
  return {
    stdout: () => out,
    stderr: () => err,
    output: () => all,
    appendError: (text) => {
      err += text;
      all += text;
    },
    subscribe: (listener) => {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    changed,
  };
}

/**
 * How {@link waitForOutput} waits.
 *
 * @example
 * ```ts
 * import type { WaitForOutputOptions } from "./children.ts";
 * const options: WaitForOutputOptions = { timeoutMs: 5_000, isOver: () => false, describe: () => "peer" };
 * console.log(options);
 * ```
 */
export interface WaitForOutputOptions {
  /** Reject after this many milliseconds. */
  timeoutMs: number;
  /** Only look at `output().slice(since)`. Default 0. */
  since?: number;
  /** Whether no more output can come (then a missing match rejects at once). */
  isOver(): boolean;
  /** The child and its output, for the rejection messages. */
  describe(): string;
  /** Put between `waitFor(pattern): ` and the description when the child is gone. Default "". */
  gonePrefix?: string;
}

/**
 * Resolves with the first match of `pattern` (its `g`/`y` flags ignored) in the child's
 * interleaved output, waiting for more output if needed; rejects after `timeoutMs`, or once
 * `isOver()` with still no match, with the output in the message.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process";
 * import { captureOutput, waitForOutput } from "./children.ts";
 * const child = spawn("echo", ["ready 42"]);
 * const output = captureOutput(child);
 * let over = false;
 * child.once("close", () => ((over = true), output.changed()));
 * const m = await waitForOutput(output, /ready (\d+)/, {
 *   timeoutMs: 5_000,
 *   isOver: () => over,
 *   describe: () => output.output(),
 * });
 * console.log(m[1]); // 42
 * ```
 */
export function waitForOutput(
  output: ChildOutput,
  pattern: RegExp,
  options: WaitForOutputOptions,
): Promise<RegExpExecArray> {
  const { timeoutMs, since = 0, isOver, describe, gonePrefix = "" } = options;
  return new Promise((resolve, reject) => {
    const regexp = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
    const check = (): void => {
      const match = regexp.exec(output.output().slice(since));
      if (match !== null) {
        cleanup();
        resolve(match);
      } else if (isOver()) {
        cleanup();
        reject(new Error(`waitFor(${pattern}): ${gonePrefix}${describe()}`));
      }
    };
    const unsubscribe = output.subscribe(check);
    const cleanup = (): void => {
      clearTimeout(timer);
      unsubscribe();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`waitFor(${pattern}) timed out after ${timeoutMs} ms: ${describe()}`));
    }, timeoutMs);
    check();
  });
}
