/**
 * Real TLS clients, run as child processes against a port on 127.0.0.1, for testing our server
 * (`listen()`): `openssl s_client`, `gnutls-cli`, a Node `tls.connect` script (the machine's
 * `node`), a Bun `node:tls` script, a `Deno.connectTls` script, and this library's own client
 * (and server) on the OTHER runtime. The scripts are files in `tests/fixtures/`. (The
 * in-process misbehaving raw TCP client is `startRawClient` in `raw_peers.ts`.)
 *
 * Rules:
 * - Every child is spawned asynchronously (the server under test runs in this process's event
 *   loop: a synchronous spawn would deadlock it), has a timeout after which it is SIGKILLed, and
 *   must be stopped: `await using`, or in a `finally` ({@link ClientProcess.stop} or
 *   {@link stopAllClients}). A process `exit` / `unload` hook kills whatever is left.
 * - `result` resolves only once the child has exited AND its stdout/stderr are drained, so a test
 *   that awaited it leaves no open resource behind (Deno's sanitizers).
 * - The echo convention of the interop tests: the client sends one line, the server answers
 *   `echo:<line>`, then sends close_notify and closes. Clients that can wait for the server's
 *   close (`s_client -ign_eof`, the scripts) get their input at once; `gnutls-cli` quits at
 *   stdin EOF, so its caller waits for the echo before {@link ClientProcess.end}.
 *
 * Only `node:` built-ins are used, so this runs identically under `deno test` and `bun test`.
 *
 * @example
 * ```ts
 * import { opensslClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const client = opensslClient({ port: 8443, caFile: pki.rootCaPath, tls: "1.3", input: "ping\n" });
 * try {
 *   const result = await client.result;
 *   console.log(result.code, result.stdout, result.stderr);
 * } finally {
 *   await client.stop();
 * }
 * ```
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { captureOutput, trackChild, waitForOutput } from "./children.ts";

/**
 * The repository root (absolute, with a trailing slash).
 *
 * @example
 * ```ts
 * import { REPO_ROOT } from "./clients.ts";
 * console.log(`${REPO_ROOT}mod.ts`);
 * ```
 */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The repository's pinned runtime binaries (`npm install` puts them there).
 *
 * @example
 * ```ts
 * import { RUNTIME_BINARIES } from "./clients.ts";
 * console.log(RUNTIME_BINARIES.deno, RUNTIME_BINARIES.bun);
 * ```
 */
export const RUNTIME_BINARIES: Readonly<Record<"deno" | "bun", string>> = {
  deno: `${REPO_ROOT}node_modules/.bin/deno`,
  bun: `${REPO_ROOT}node_modules/.bin/bun`,
};

/**
 * The runtime this process is NOT running on: the one to run the other side of a cross-runtime
 * test with.
 *
 * @example
 * ```ts
 * import { otherRuntime } from "./clients.ts";
 * console.log(otherRuntime()); // "deno" under bun test, "bun" under deno test and node --test
 * ```
 */
export function otherRuntime(): "deno" | "bun" {
  return "Bun" in globalThis ? "deno" : "bun";
}

// ---------------------------------------------------------------------------------------------
// Generic child processes
// ---------------------------------------------------------------------------------------------

/**
 * How a client child process ended, and everything it printed.
 *
 * @example
 * ```ts
 * import type { ClientResult } from "./clients.ts";
 * const r: ClientResult = { code: 0, signal: null, stdout: "", stderr: "", timedOut: false };
 * console.log(r);
 * ```
 */
export interface ClientResult {
  /** Exit code, or `null` when killed by a signal. */
  code: number | null;
  /** The signal that ended it, or `null`. */
  signal: string | null;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
  /** Whether it was killed because its timeout ran out. */
  timedOut: boolean;
}

/**
 * A running client child process.
 *
 * @example
 * ```ts
 * import { spawnClient, type ClientProcess } from "./clients.ts";
 * const child: ClientProcess = spawnClient("sh", ["-c", "read x; echo got $x"], { input: "hi\n" });
 * console.log((await child.result).stdout); // "got hi\n"
 * ```
 */
export interface ClientProcess {
  /** The command line (executable first). */
  args: readonly string[];
  /** The child's pid (-1 if the spawn failed). */
  pid: number;
  /** stdout so far. */
  stdout(): string;
  /** stderr so far. */
  stderr(): string;
  /** stdout and stderr so far, interleaved in arrival order. */
  output(): string;
  /** Writes to its stdin. */
  write(text: string): void;
  /** Closes its stdin (EOF). */
  end(): void;
  /**
   * The first match of `pattern` in {@link output}, waiting for more output if needed. Rejects
   * after `timeoutMs` (default 10,000) or when the child is gone without a match.
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Settles once the child exited and its output is complete. Never rejects. */
  result: Promise<ClientResult>;
  /** Kills it (SIGKILL) if still running and waits for {@link result}. Idempotent. */
  stop(): Promise<ClientResult>;
  /** {@link stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Options for {@link spawnClient}.
 *
 * @example
 * ```ts
 * import type { SpawnClientOptions } from "./clients.ts";
 * const options: SpawnClientOptions = { input: "ping\n", endInput: false, timeout: 5_000 };
 * console.log(options);
 * ```
 */
export interface SpawnClientOptions {
  /** Written to stdin at once. */
  input?: string;
  /** Close stdin after `input`. Default `true`. */
  endInput?: boolean;
  /** SIGKILL after this many ms. Default 15,000. */
  timeout?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. Default: the repository root. */
  cwd?: string;
}

const stoppers = new Set<() => Promise<ClientResult>>();

/**
 * Spawns `command` asynchronously with piped stdio, a timeout (SIGKILL) and tracking, so that
 * {@link stopAllClients} and the exit hook can kill it.
 *
 * @example
 * ```ts
 * import { spawnClient } from "./clients.ts";
 * const child = spawnClient("echo", ["hello"]);
 * try {
 *   const r = await child.result;
 *   console.log(r.code, r.stdout); // 0 "hello\n"
 * } finally {
 *   await child.stop();
 * }
 * ```
 */
export function spawnClient(
  command: string,
  args: readonly string[],
  options: SpawnClientOptions = {},
): ClientProcess {
  const child = spawn(command, [...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const untrack = trackChild(child);
  const output = captureOutput(child);
  let timedOut = false;
  let done = false;
  let exitCode: number | null = null;
  let exitSignal: string | null = null;

  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, options.timeout ?? 15_000);

  const kill = (): void => {
    if (done || child.pid === undefined || child.exitCode !== null) return;
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };

  const result = new Promise<ClientResult>((resolve) => {
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      untrack();
      child.stdin?.destroy();
      resolve({
        code: exitCode,
        signal: exitSignal,
        stdout: output.stdout(),
        stderr: output.stderr(),
        timedOut,
      });
      output.changed();
    };
    child.once("exit", (code, signal) => {
      exitCode = code;
      exitSignal = signal;
    });
    // 'close' follows 'exit' once stdout and stderr are drained.
    child.once("close", (code, signal) => {
      exitCode ??= code;
      exitSignal ??= signal;
      finish();
    });
    child.once("error", (error) => {
      output.appendError(`spawn error: ${String(error)}\n`);
      finish();
    });
  });

  if (options.input !== undefined) child.stdin?.write(options.input);
  if (options.endInput ?? true) child.stdin?.end();

  const describe = (): string =>
    `${[command, ...args].join(" ")}; output:\n${output.output().trimEnd() || "(none)"}`;

  const stop = (): Promise<ClientResult> => {
    kill();
    return result;
  };
  stoppers.add(stop);
  void result.then(() => stoppers.delete(stop));

  return {
    args: [command, ...args],
    pid: child.pid ?? -1,
    stdout: output.stdout,
    stderr: output.stderr,
    output: output.output,
    write: (text) => {
      child.stdin?.write(text);
    },
    end: () => {
      child.stdin?.end();
    },
    waitFor: (pattern, timeoutMs = 10_000) =>
      waitForOutput(output, pattern, {
        timeoutMs,
        isOver: () => done,
        describe,
        gonePrefix: "the client is gone: ",
      }),
    result,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}

/**
 * Kills every client child still running (SIGKILL) and waits for them all. For a test's
 * `finally`.
 *
 * @example
 * ```ts
 * import { spawnClient, stopAllClients } from "./clients.ts";
 * spawnClient("sleep", ["10"]);
 * await stopAllClients(); // returns at once: the sleep is killed
 * ```
 */
export async function stopAllClients(): Promise<void> {
  await Promise.all([...stoppers].map((stop) => stop()));
}

// ---------------------------------------------------------------------------------------------
// openssl s_client
// ---------------------------------------------------------------------------------------------

/**
 * Options shared by the client helpers.
 *
 * @example
 * ```ts
 * import type { ClientTarget } from "./clients.ts";
 * const target: ClientTarget = { port: 8443, caFile: "/tmp/root.pem", servername: "localhost" };
 * console.log(target);
 * ```
 */
export interface ClientTarget {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** The CA file to trust (PEM). */
  caFile: string;
  /** SNI (and, where the client checks it, the name verified). Default `"localhost"`. */
  servername?: string;
  /** Kill the client after this many ms. Default 15,000. */
  timeout?: number;
}

/**
 * Options for {@link opensslClient}.
 *
 * @example
 * ```ts
 * import type { OpensslClientOptions } from "./clients.ts";
 * const options: OpensslClientOptions = {
 *   port: 8443, caFile: "/tmp/root.pem", tls: "1.2", alpn: ["h2", "http/1.1"], input: "ping\n",
 * };
 * console.log(options);
 * ```
 */
export interface OpensslClientOptions extends ClientTarget {
  /** `-tls1_2` / `-tls1_3`. Default: either. */
  tls?: "1.2" | "1.3";
  /** `-cert`: the client leaf (only the first certificate of the file is sent). */
  cert?: string;
  /** `-key`. */
  key?: string;
  /** `-cert_chain`: intermediates sent after the leaf. */
  chain?: string;
  /** `-alpn a,b`. */
  alpn?: string[];
  /**
   * Written to stdin, which is then closed. `-ign_eof` keeps the client reading until the server
   * closes. Default: nothing.
   */
  input?: string;
  /** `-noservername` instead of `-servername`: send no SNI. */
  noServername?: boolean;
  /** More arguments. */
  extraArgs?: string[];
}

/**
 * Runs `openssl s_client -connect 127.0.0.1:<port> -servername <name> -CAfile <ca>
 * -verify_return_error -ign_eof -nocommands` with the given version, client certificate and
 * ALPN. stdout holds the session summary (`New, TLSv1.3, Cipher is ...`, `ALPN protocol: ...`,
 * `Verify return code: ...`) and the data received; stderr the verify trace and errors such as
 * `... tlsv13 alert certificate required ... SSL alert number 116`.
 *
 * @example
 * ```ts
 * import { opensslClient, parseOpensslClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const c = opensslClient({ port: 8443, caFile: pki.rootCaPath, tls: "1.3", input: "ping\n" });
 * try {
 *   console.log(parseOpensslClient(await c.result));
 * } finally {
 *   await c.stop();
 * }
 * ```
 */
export function opensslClient(options: OpensslClientOptions): ClientProcess {
  const args = [
    "s_client",
    "-connect",
    `127.0.0.1:${options.port}`,
    ...(options.noServername === true
      ? ["-noservername"]
      : ["-servername", options.servername ?? "localhost"]),
    "-CAfile",
    options.caFile,
    "-verify_return_error",
    "-ign_eof",
    "-nocommands",
  ];
  if (options.tls !== undefined) args.push(options.tls === "1.2" ? "-tls1_2" : "-tls1_3");
  if (options.cert !== undefined) args.push("-cert", options.cert);
  if (options.key !== undefined) args.push("-key", options.key);
  if (options.chain !== undefined) args.push("-cert_chain", options.chain);
  if (options.alpn !== undefined) args.push("-alpn", options.alpn.join(","));
  args.push(...(options.extraArgs ?? []));
  return spawnClient("openssl", args, {
    input: options.input ?? "",
    timeout: options.timeout ?? 15_000,
  });
}

/**
 * What `s_client` reported, parsed from its output.
 *
 * @example
 * ```ts
 * import type { OpensslClientReport } from "./clients.ts";
 * const r: OpensslClientReport = {
 *   protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", alpn: null, verifyCode: 0,
 *   alerts: [], code: 0,
 * };
 * console.log(r);
 * ```
 */
export interface OpensslClientReport {
  /** From `New, TLSv1.3, Cipher is X`, or `null` without a completed handshake. */
  protocol: string | null;
  /** The cipher from the same line. */
  cipher: string | null;
  /** `ALPN protocol: X`, or `null` (`No ALPN negotiated` or no handshake). */
  alpn: string | null;
  /** `Verify return code: N`, or `null`. */
  verifyCode: number | null;
  /** Every alert s_client received, as `{ number, text }` from its error lines. */
  alerts: { number: number; text: string }[];
  /** Its exit code. */
  code: number | null;
}

/**
 * Parses an `s_client` run (see {@link opensslClient}).
 *
 * @example
 * ```ts
 * import { parseOpensslClient } from "./clients.ts";
 * const report = parseOpensslClient({
 *   code: 1, signal: null, timedOut: false, stdout: "",
 *   stderr: "error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:x.c:1:SSL alert number 48\n",
 * });
 * console.log(report.alerts); // [{ number: 48, text: "tlsv1 alert unknown ca" }]
 * ```
 */
export function parseOpensslClient(result: ClientResult): OpensslClientReport {
  const all = `${result.stdout}\n${result.stderr}`;
  const session = /^New, (\S+), Cipher is (\S+)$/m.exec(result.stdout);
  const alpn = /^ALPN protocol: (\S+)$/m.exec(result.stdout);
  const verify = /Verify return code: (\d+)/.exec(result.stdout);
  const alerts = [...all.matchAll(/:([^:\n]*alert [^:\n]*):[^\n]*SSL alert number (\d+)/g)].map(
    (m) => ({ number: Number(m[2]), text: m[1]! }),
  );
  return {
    protocol: session?.[1] ?? null,
    cipher: session?.[2] ?? null,
    alpn: alpn?.[1] ?? null,
    verifyCode: verify === null ? null : Number(verify[1]),
    alerts,
    code: result.code,
  };
}

// ---------------------------------------------------------------------------------------------
// gnutls-cli
// ---------------------------------------------------------------------------------------------

/**
 * Options for {@link gnutlsClient}.
 *
 * @example
 * ```ts
 * import type { GnutlsClientOptions } from "./clients.ts";
 * const options: GnutlsClientOptions = { port: 8443, caFile: "/tmp/root.pem", tls: "1.2" };
 * console.log(options);
 * ```
 */
export interface GnutlsClientOptions extends ClientTarget {
  /** Pins the version with `--priority NORMAL:-VERS-ALL:+VERS-TLS1.x`. Default: either. */
  tls?: "1.2" | "1.3";
  /** `--alpn` per protocol. */
  alpn?: string[];
}

/**
 * Runs `gnutls-cli 127.0.0.1 -p <port> --x509cafile <ca> --sni-hostname <name>
 * --verify-hostname <name>` with stdin left OPEN: gnutls-cli quits at stdin EOF, so write the
 * request with `write()`, wait for the answer with `waitFor()`, then `end()`. It prints
 * `- Description: (TLS1.3-X.509)-(ECDHE-SECP256R1)-...` and `- Simple Client Mode:` once the
 * handshake is done.
 *
 * @example
 * ```ts
 * import { gnutlsClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const c = gnutlsClient({ port: 8443, caFile: sharedTestPki().rootCaPath, tls: "1.3" });
 * try {
 *   await c.waitFor(/Simple Client Mode/);
 *   c.write("ping\n");
 *   await c.waitFor(/echo:ping/);
 *   c.end();
 * } finally {
 *   await c.stop();
 * }
 * ```
 */
export function gnutlsClient(options: GnutlsClientOptions): ClientProcess {
  const name = options.servername ?? "localhost";
  const args = [
    "127.0.0.1",
    "-p",
    String(options.port),
    "--x509cafile",
    options.caFile,
    "--sni-hostname",
    name,
    "--verify-hostname",
    name,
  ];
  if (options.tls !== undefined) {
    args.push("--priority", `NORMAL:-VERS-ALL:+VERS-TLS${options.tls}`);
  }
  for (const p of options.alpn ?? []) args.push("--alpn", p);
  return spawnClient("gnutls-cli", args, {
    endInput: false,
    timeout: options.timeout ?? 15_000,
  });
}

// ---------------------------------------------------------------------------------------------
// Scripted clients: Node tls, Bun node:tls, Deno.connectTls, this library on the other runtime
// ---------------------------------------------------------------------------------------------

/**
 * What a scripted client ({@link scriptClient}, {@link denoConnectTlsClient},
 * {@link libraryClient}) printed on its `RESULT` line, or on its `ERROR` line.
 *
 * @example
 * ```ts
 * import type { ScriptClientReport } from "./clients.ts";
 * const r: ScriptClientReport = { ok: true, protocol: "TLSv1.3", alpn: "h2", received: "echo:x\n" };
 * console.log(r);
 * ```
 */
export interface ScriptClientReport {
  /** Handshake and echo completed. */
  ok: boolean;
  /** The negotiated version (not reported by `Deno.connectTls`). */
  protocol?: string;
  /** The negotiated cipher (not reported by `Deno.connectTls`). */
  cipher?: string;
  /** The ALPN protocol, or `null`. */
  alpn?: string | null;
  /** Everything received until the server closed. */
  received?: string;
  /** On failure: an error code (`TlsError.code`, Node's `err.code`, Deno's error name). */
  code?: string;
  /** On failure: the error message. */
  message?: string;
  /** Free-form extras (e.g. how the Deno client connected). */
  [extra: string]: unknown;
}

/**
 * Options for the scripted clients.
 *
 * @example
 * ```ts
 * import type { ScriptClientOptions } from "./clients.ts";
 * const options: ScriptClientOptions = {
 *   port: 8443, caFile: "/tmp/root.pem", alpn: ["h2"], input: "ping\n", maxVersion: "TLSv1.2",
 * };
 * console.log(options);
 * ```
 */
export interface ScriptClientOptions extends ClientTarget {
  /** ALPN offer. */
  alpn?: string[];
  /** The line to send. Default `"ping\n"`. */
  input?: string;
  /** Client certificate (chain) file. */
  cert?: string;
  /** Its key file. */
  key?: string;
  /** Highest version (Node/Bun/our library only). */
  maxVersion?: "TLSv1.2" | "TLSv1.3";
}

/**
 * What the scripted clients (`tests/fixtures/node_tls_client.mjs`,
 * `deno_connect_tls_client.ts`, `interop_client.ts`) read from their first argument, as JSON.
 *
 * @example
 * ```ts
 * import type { ScriptClientConfig } from "./clients.ts";
 * const config: ScriptClientConfig = {
 *   port: 8443, ca: "/tmp/root.pem", servername: "localhost", input: "ping\n",
 * };
 * console.log(JSON.stringify(config));
 * ```
 */
export interface ScriptClientConfig {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** The CA file to trust (PEM). */
  ca: string;
  /** SNI, and the name verified. */
  servername: string;
  /** ALPN offer. */
  alpn?: string[] | undefined;
  /** Sent once connected. */
  input: string;
  /** Client certificate (chain) file. */
  cert?: string | undefined;
  /** Its key file. */
  key?: string | undefined;
  /** Highest version (Node/Bun/our library only). */
  maxVersion?: "TLSv1.2" | "TLSv1.3" | undefined;
}

function scriptConfig(options: ScriptClientOptions): string {
  const config: ScriptClientConfig = {
    port: options.port,
    ca: options.caFile,
    servername: options.servername ?? "localhost",
    alpn: options.alpn,
    input: options.input ?? "ping\n",
    cert: options.cert,
    key: options.key,
    maxVersion: options.maxVersion,
  };
  return JSON.stringify(config);
}

/**
 * The report on a scripted client's `RESULT {json}` or `ERROR {json}` line, or an `ok: false`
 * report with the whole output when there is neither.
 *
 * @example
 * ```ts
 * import { parseScriptClient } from "./clients.ts";
 * const r = parseScriptClient({
 *   code: 0, signal: null, timedOut: false, stderr: "",
 *   stdout: 'RESULT {"ok":true,"received":"echo:ping\\n"}\n',
 * });
 * console.log(r.ok, r.received);
 * ```
 */
export function parseScriptClient(result: ClientResult): ScriptClientReport {
  const line = /^(?:RESULT|ERROR) (\{.*\})$/m.exec(result.stdout);
  if (line !== null) return JSON.parse(line[1]!) as ScriptClientReport;
  return {
    ok: false,
    code: result.timedOut ? "CHILD_TIMEOUT" : "NO_RESULT",
    message: `exit ${result.code ?? result.signal}; stdout: ${result.stdout}; stderr: ${
      result
        .stderr.slice(-2000)
    }`,
  };
}

/**
 * Runs a `node:tls` client (`tests/fixtures/node_tls_client.mjs`) on the machine's `node` or on
 * Bun (the repository's binary):
 * connects to 127.0.0.1 with SNI `servername`, trusting `caFile`, sends `input`, reads until the
 * server closes, and prints `RESULT {"ok":true,"protocol":...,"cipher":...,"alpn":...,
 * "authorized":...,"received":...}` (or `ERROR {...}`, exit 1). Parse it with
 * {@link parseScriptClient}.
 *
 * @example
 * ```ts
 * import { parseScriptClient, scriptClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const c = scriptClient("bun", { port: 8443, caFile: sharedTestPki().rootCaPath, alpn: ["h2"] });
 * try {
 *   console.log(parseScriptClient(await c.result));
 * } finally {
 *   await c.stop();
 * }
 * ```
 */
export function scriptClient(
  runtime: "node" | "bun",
  options: ScriptClientOptions,
): ClientProcess {
  // Plain JavaScript, so that the same file runs on both.
  const script = "tests/fixtures/node_tls_client.mjs";
  const command = runtime === "node" ? "node" : RUNTIME_BINARIES.bun;
  return spawnClient(command, [script, scriptConfig(options)], {
    timeout: options.timeout ?? 15_000,
  });
}

/**
 * Runs a `Deno.connectTls` client (`tests/fixtures/deno_connect_tls_client.ts`) in a Deno child
 * process (`--allow-net --allow-read` only):
 * connects with SNI `servername` (falling back to `Deno.connect(127.0.0.1)` + `Deno.startTls`
 * if the name resolves elsewhere), trusting `caFile`, sends `input`, reads until the server
 * closes, prints `RESULT {"ok":true,"alpn":...,"received":...,"via":...}` or `ERROR {...}`.
 * `Deno.connectTls` tells neither the protocol nor the cipher.
 *
 * @example
 * ```ts
 * import { denoConnectTlsClient, parseScriptClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const c = denoConnectTlsClient({ port: 8443, caFile: sharedTestPki().rootCaPath });
 * try {
 *   console.log(parseScriptClient(await c.result));
 * } finally {
 *   await c.stop();
 * }
 * ```
 */
export function denoConnectTlsClient(options: ScriptClientOptions): ClientProcess {
  return spawnClient(
    RUNTIME_BINARIES.deno,
    [
      "run",
      "--no-prompt",
      "--allow-net",
      "--allow-read",
      "tests/fixtures/deno_connect_tls_client.ts",
      scriptConfig(options),
    ],
    { timeout: options.timeout ?? 20_000, env: { DENO_NO_UPDATE_CHECK: "1" } },
  );
}

/** Deno flags for this library's fixtures: FFI plus what loading OpenSSL and sockets need. */
const DENO_LIBRARY_FLAGS = [
  "--no-prompt",
  "--allow-ffi",
  "--allow-read",
  "--allow-env",
  "--allow-net",
];

/**
 * Runs this library's `connect()` client (`tests/fixtures/interop_client.ts`) on `runtime`
 * (normally {@link otherRuntime}): sends `input`, reads until the server closes, prints
 * `RESULT {"ok":true,"protocol":...,"cipher":...,"alpn":...,"peerSubject":...,"received":...}` or
 * `ERROR {"ok":false,"code":<TlsError code>,...}`.
 *
 * @example
 * ```ts
 * import { libraryClient, otherRuntime, parseScriptClient } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const c = libraryClient(otherRuntime(), { port: 8443, caFile: sharedTestPki().rootCaPath });
 * try {
 *   console.log(parseScriptClient(await c.result));
 * } finally {
 *   await c.stop();
 * }
 * ```
 */
export function libraryClient(
  runtime: "deno" | "bun",
  options: ScriptClientOptions,
): ClientProcess {
  const script = "tests/fixtures/interop_client.ts";
  const args = runtime === "deno"
    ? ["run", ...DENO_LIBRARY_FLAGS, script, scriptConfig(options)]
    : [script, scriptConfig(options)];
  return spawnClient(RUNTIME_BINARIES[runtime], args, {
    timeout: options.timeout ?? 20_000,
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
}

/**
 * Options for {@link startLibraryServer}.
 *
 * @example
 * ```ts
 * import type { LibraryServerOptions } from "./clients.ts";
 * const options: LibraryServerOptions = {
 *   cert: "/tmp/chain.pem", key: "/tmp/key.pem", alpn: ["http/1.1", "h2"],
 * };
 * console.log(options);
 * ```
 */
export interface LibraryServerOptions {
  /** Certificate chain file (leaf first). */
  cert: string;
  /** Key file. */
  key: string;
  /** CA file for client certificates. */
  ca?: string;
  /** `requestClientCert`. */
  requestClientCert?: false | "optional" | "require";
  /** Server ALPN preference list. */
  alpn?: string[];
  /** Kill after this many ms. Default 30,000. */
  timeout?: number;
}

/**
 * A running {@link startLibraryServer}.
 *
 * @example
 * ```ts
 * import type { LibraryServer } from "./clients.ts";
 * const describe = (s: LibraryServer) => `${s.port} ${s.process.pid}`;
 * console.log(describe);
 * ```
 */
export interface LibraryServer {
  /** Its port on 127.0.0.1. */
  port: number;
  /** The child: `ACCEPTED {json}` / `HANDSHAKEERROR {json}` lines appear in its output. */
  process: ClientProcess;
  /** Closes its stdin (it closes its listener and exits), then waits; SIGKILL after 3 s. */
  stop(): Promise<ClientResult>;
  /** {@link LibraryServer.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts this library's `listen()` server (`tests/fixtures/interop_server.ts`) on `runtime`
 * (normally {@link otherRuntime}) on 127.0.0.1 port 0, and resolves once it printed
 * `LISTENING <port>`. Each connection: it prints `ACCEPTED {"protocol":...,"cipher":...,
 * "alpn":...,"servername":...,"peerSubject":...}`, reads one line, answers `echo:<line>`, sends
 * close_notify and closes. Failed handshakes print `HANDSHAKEERROR {"code":...}`.
 *
 * @example
 * ```ts
 * import { otherRuntime, startLibraryServer } from "./clients.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startLibraryServer(otherRuntime(), {
 *   cert: pki.server.chainPath, key: pki.server.keyPath,
 * });
 * try {
 *   console.log(server.port);
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export async function startLibraryServer(
  runtime: "deno" | "bun",
  options: LibraryServerOptions,
): Promise<LibraryServer> {
  const script = "tests/fixtures/interop_server.ts";
  const config = JSON.stringify(options);
  const args = runtime === "deno"
    ? ["run", ...DENO_LIBRARY_FLAGS, script, config]
    : [script, config];
  const child = spawnClient(RUNTIME_BINARIES[runtime], args, {
    endInput: false,
    timeout: options.timeout ?? 30_000,
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
  const stop = async (): Promise<ClientResult> => {
    child.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, 3_000)));
    await Promise.race([child.result, grace]);
    clearTimeout(timer);
    return await child.stop();
  };
  try {
    const [, port] = await child.waitFor(/^LISTENING (\d+)$/m, 15_000);
    return {
      port: Number(port),
      process: child,
      stop,
      [Symbol.asyncDispose]: async () => void await stop(),
    };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
