/**
 * Runs a TypeScript file in a child process of the same runtime (deno, bun or node), for behaviour
 * that is per process: environment variables read by C, library loading, crashes.
 *
 * @example
 * ```ts
 * import { runScript } from "./subprocess.ts";
 * const r = runScript("tests/fixtures/system_store_handshake.ts", ["a.pem", "a.key"], { env: { SSL_CERT_FILE: "/tmp/ca.pem" } });
 * console.log(r.status, r.stdout);
 * ```
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtimeArgs } from "../harness.ts";

/** Options for {@link runScript}. */
export interface RunScriptOptions {
  /** Extra environment variables (merged over this process's environment). */
  env?: Record<string, string>;
  /** Deno permission flags. Default: `--allow-all`. Ignored on Bun. */
  denoFlags?: string[];
  /** Kill after this many milliseconds. Default 30,000. */
  timeout?: number;
}

/** What the child did. */
export interface ScriptResult {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Runs `script` (a path relative to the repository root) with the current runtime. */
export function runScript(
  script: string,
  args: string[] = [],
  options: RunScriptOptions = {},
): ScriptResult {
  const argv = runtimeArgs(script, args, options.denoFlags);
  const r = spawnSync(process.execPath, argv, {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    timeout: options.timeout ?? 30_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}
