/**
 * A listening child process as a test peer: started on a free port of 127.0.0.1, ready once it
 * listens, its output captured, and always cleaned up. The TLS peers (`openssl_peer.ts`,
 * `gnutls_peer.ts`, `node_peer.ts`) and the OCSP responder (`ocsp.ts`) are built on
 * {@link startCommandPeer}. Only `node:` built-ins are used, so this runs identically under
 * `deno test` and `bun test`.
 *
 * Rules for tests:
 * - Always stop a peer: `await using peer = await start...()` (it has `[Symbol.asyncDispose]`),
 *   or `await peer.stop()` in a `finally`. Every child is also killed (SIGKILL) by a process
 *   `exit` / `unload` hook and by a detached reaper shell that outlives this process by at most
 *   1 s, because neither hook fires at the end of `bun test` and a timed-out test never reaches
 *   its `finally`.
 * - Connect to `127.0.0.1`, not `localhost` (which may resolve to `::1` first, where most of these
 *   peers do not listen). Send SNI `localhost`: the test PKI's server leaves name
 *   `localhost` and `127.0.0.1`.
 * - Ports are picked first ({@link freePort}) and passed to the peer; if another process steals
 *   the port in between, the start is retried on a new port.
 * - Readiness is "the child itself owns a listening IPv4 socket on the port" (read from `/proc`
 *   every 20 ms), plus its own announcement where it makes one (`ACCEPT` from `s_server` without
 *   `-quiet`/`-brief`, `LISTENING <port>` from the Node peer). No probe connection shows up in the
 *   peer's output (a connect probe makes `s_server` print `ERROR ... unexpected eof` and
 *   `gnutls-serv` print `Error in handshake`). Without `/proc` it falls back to polling a TCP
 *   connect every 20 ms. Either way it gives up after 10 s with the peer's output in the error.
 * - `openssl` and `gnutls-serv` fully buffer stdout into a pipe, so they run under
 *   `stdbuf -oL` (when `stdbuf` is on `PATH`): `output()` and `waitFor()` then see each line as
 *   it is printed.
 *
 * @example
 * ```ts
 * import { startCommandPeer } from "./peer_process.ts";
 * await using peer = await startCommandPeer("openssl s_server (PSK)", {
 *   command: "openssl",
 *   args: (port) => ["s_server", "-accept", `127.0.0.1:${port}`, "-nocert", "-psk", "00ff"],
 *   readyPattern: /^ACCEPT$/m,
 * });
 * console.log(peer.port, peer.pid);
 * ```
 * @module
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync, readlinkSync } from "node:fs";
import net from "node:net";
import process from "node:process";
import { captureOutput, trackChild, waitForOutput } from "./children.ts";

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/**
 * A TCP port that was free on 127.0.0.1 a moment ago: binds port 0, reads the port, closes.
 *
 * @example
 * ```ts
 * import { freePort } from "./peer_process.ts";
 * const port = await freePort();
 * console.log(port > 0);
 * ```
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close((error) => {
        if (error !== undefined) reject(error);
        else if (port === 0) reject(new Error(`freePort: no port from ${String(address)}`));
        else resolve(port);
      });
    });
  });
}

/**
 * Whether a TCP connection to `host:port` is accepted now. The probe socket is destroyed at once.
 *
 * @example
 * ```ts
 * import { canConnect } from "./peer_process.ts";
 * console.log(await canConnect(1)); // false: nothing listens on port 1
 * ```
 */
export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Whether process `pid` owns a listening TCP socket on `port`, from `/proc`: IPv4 only, or
 * IPv4 or IPv6 with `anyFamily`. `null` when `/proc` cannot tell (not Linux, or not readable).
 */
function ownsListener(pid: number, port: number, anyFamily: boolean): boolean | null {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  let tables = 0;
  for (const table of anyFamily ? ["/proc/net/tcp", "/proc/net/tcp6"] : ["/proc/net/tcp"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    tables++;
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      const local = fields[1];
      const state = fields[3];
      const inode = fields[9];
      if (local === undefined || inode === undefined) continue;
      if (state === "0A" && local.endsWith(`:${hexPort}`)) inodes.add(inode);
    }
  }
  if (tables === 0) return null;
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match?.[1] !== undefined && inodes.has(match[1])) return true;
    } catch {
      // The fd closed while we looked.
    }
  }
  return false;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/**
 * How a child process ended.
 *
 * @example
 * ```ts
 * import type { ExitStatus } from "./peer_process.ts";
 * const status: ExitStatus = { code: null, signal: "SIGTERM" };
 * console.log(status);
 * ```
 */
export interface ExitStatus {
  /** The exit code, or `null` if it was killed by a signal. */
  code: number | null;
  /** The signal that killed it, or `null`. */
  signal: string | null;
}

/**
 * A TLS peer running as a child process, listening on `127.0.0.1:port` (gnutls-serv: on
 * `0.0.0.0:port` and `[::]:port`).
 *
 * @example
 * ```ts
 * import { startNodeTlsServer } from "./node_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using peer = await startNodeTlsServer({ cert: pki.server.chainPath, key: pki.server.keyPath });
 * console.log(peer.port, peer.pid, peer.args.join(" "));
 * await peer.waitFor(/LISTENING/);
 * ```
 */
export interface PeerProcess {
  /** The TCP port it listens on. */
  port: number;
  /** The child's process id (after `stop()`, `process.kill(pid, 0)` throws). */
  pid: number;
  /** The underlying child. Its stdout and stderr are already consumed by this module. */
  process: ChildProcess;
  /** The command line it was started with (`stdbuf -oL` included when used). */
  args: string[];
  /** Everything it printed to stdout so far. */
  stdout(): string;
  /** Everything it printed to stderr so far. */
  stderr(): string;
  /** stdout and stderr so far, interleaved in the order the chunks arrived here. */
  output(): string;
  /** Writes `text` to its stdin, e.g. `"K\n"` for `s_server`. */
  send(text: string): void;
  /**
   * Resolves with the first match of `pattern` in `output().slice(since)`, waiting for more
   * output if needed. Rejects after `timeoutMs` (default 5,000) or if the process exits first,
   * with the output in the message. Pass `since: peer.output().length` to ignore older output.
   */
  waitFor(pattern: RegExp, timeoutMs?: number, since?: number): Promise<RegExpExecArray>;
  /** Resolves when the process has exited. */
  exited: Promise<ExitStatus>;
  /** Sends a signal (default SIGTERM) and returns at once. */
  kill(signal?: NodeJS.Signals): void;
  /**
   * Kills it (SIGTERM, then SIGKILL after 2 s), waits for it to exit and closes its pipes.
   * Idempotent; call it in a `finally`, or start the peer with `await using`.
   */
  stop(): Promise<void>;
  /** The same as {@link stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

// Kills $2 with SIGKILL once $1 (this process) is gone; exits as soon as $2 is gone.
const REAPER = 'while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; ' +
  'done; kill -9 "$2" 2>/dev/null';

/**
 * Starts a detached `sh` that kills `pid` after this process dies. Started through a synchronous
 * `sh` that exits at once, so neither runtime tracks it (no sanitizer noise, nothing to wait for).
 */
function startReaper(pid: number): void {
  try {
    execFileSync(
      "sh",
      [
        "-c",
        `(${REAPER}) </dev/null >/dev/null 2>&1 &`,
        "peer-reaper",
        String(process.pid),
        String(pid),
      ],
      { stdio: "ignore" },
    );
  } catch {
    // No `sh`: the exit hooks still cover normal exits.
  }
}

let stdbufPath: string | null | undefined;

/** `stdbuf` if it is on PATH (coreutils), else `null`. */
function findStdbuf(): string | null {
  if (stdbufPath !== undefined) return stdbufPath;
  stdbufPath = null;
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    try {
      accessSync(`${dir}/stdbuf`, constants.X_OK);
      stdbufPath = `${dir}/stdbuf`;
      break;
    } catch {
      // Not here.
    }
  }
  return stdbufPath;
}

interface SpawnSpec {
  command: string;
  args: string[];
  cwd?: string | undefined;
  env?: Record<string, string> | undefined;
  /** Run under `stdbuf -oL` (line-buffered stdout) when available. */
  lineBuffered: boolean;
  /** Also wait for this in the output (before the listener check), e.g. `ACCEPT`. */
  readyPattern?: RegExp | undefined;
  /** Ready on an IPv6 listener too (default: only an IPv4 one counts). */
  anyFamily?: boolean;
  /** Output meaning "could not bind the port" even though the process keeps running. */
  bindFailedPattern?: RegExp | undefined;
}

/** Thrown when the child exited before it was ready and the output says the port was taken. */
class PortTakenError extends Error {}

const READY_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
const TERM_GRACE_MS = 2_000;

async function spawnPeer(spec: SpawnSpec, port: number, name: string): Promise<PeerProcess> {
  const stdbuf = spec.lineBuffered ? findStdbuf() : null;
  const argv = stdbuf === null
    ? [spec.command, ...spec.args]
    : [stdbuf, "-oL", spec.command, ...spec.args];
  const [command, ...rest] = argv as [string, ...string[]];
  const child = spawn(command, rest, {
    cwd: spec.cwd,
    env: { ...process.env, ...spec.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const untrack = trackChild(child);
  const output = captureOutput(child);
  let exitStatus: ExitStatus | null = null;

  // 'close' comes after 'exit' once stdout and stderr are drained: only then is the output
  // complete (the last lines can arrive after 'exit').
  let outputComplete = false;
  const closed = new Promise<void>((resolve) =>
    child.once("close", () => {
      outputComplete = true;
      resolve();
      output.changed();
    })
  );
  const exited = new Promise<ExitStatus>((resolve) => {
    let settled = false;
    const finish = (status: ExitStatus): void => {
      if (settled) return;
      settled = true;
      exitStatus = status;
      untrack();
      resolve(status);
      output.changed();
    };
    child.once("exit", (code, signal) => finish({ code, signal }));
    child.once("error", (error) => {
      output.appendError(`spawn error: ${String(error)}\n`);
      outputComplete = true;
      finish({ code: null, signal: null });
    });
  });

  const describe = (): string =>
    `${name} (${argv.join(" ")})` +
    (exitStatus === null ? "" : ` exited with ${JSON.stringify(exitStatus)}`) +
    `; output:\n${output.output().trim() === "" ? "(none)" : output.output().trimEnd()}`;

  const waitFor = (pattern: RegExp, timeoutMs = 5_000, since = 0): Promise<RegExpExecArray> =>
    waitForOutput(output, pattern, {
      timeoutMs,
      since,
      isOver: () => outputComplete,
      describe,
    });

  // process.kill, not child.kill(): Deno's ChildProcess.kill() is a silent no-op once it has been
  // called (so SIGTERM then SIGKILL would never send the SIGKILL), and after any kill it reports
  // the first signal sent as the exit signal, whatever actually ended the child.
  const signal = (name: NodeJS.Signals): void => {
    if (exitStatus !== null || child.pid === undefined) return;
    try {
      process.kill(child.pid, name);
    } catch {
      // Already gone (ESRCH).
    }
  };

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitStatus === null) {
        signal("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const graceOver = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), TERM_GRACE_MS);
        });
        const result = await Promise.race([exited, graceOver]);
        clearTimeout(timer);
        if (result === "timeout") {
          signal("SIGKILL");
          await exited;
        }
      }
      child.stdin?.destroy();
      // 'close' follows once stdout and stderr are drained; do not hang if something holds them.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        closed,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, 500))),
      ]);
      clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
    })();
    return stopping;
  };

  const peer: PeerProcess = {
    port,
    pid: child.pid ?? -1,
    process: child,
    args: argv,
    stdout: output.stdout,
    stderr: output.stderr,
    output: output.output,
    send: (text) => {
      child.stdin?.write(text);
    },
    waitFor,
    exited,
    kill: (name = "SIGTERM") => signal(name),
    stop,
    [Symbol.asyncDispose]: stop,
  };

  if (child.pid !== undefined) startReaper(child.pid);

  // Readiness.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    if (spec.readyPattern !== undefined) await waitFor(spec.readyPattern, READY_TIMEOUT_MS);
    for (;;) {
      if (exitStatus !== null) throw new Error("exited before listening");
      if (spec.bindFailedPattern?.test(output.output()) === true) {
        throw new Error(`could not bind port ${port}`);
      }
      const owns = child.pid === undefined
        ? null
        : ownsListener(child.pid, port, spec.anyFamily === true);
      if (owns === true) break;
      if (owns === null && (await canConnect(port))) break;
      if (Date.now() > deadline) {
        throw new Error(
          `not listening on port ${port} after ${READY_TIMEOUT_MS} ms`,
        );
      }
      await delay(POLL_MS);
    }
  } catch (error) {
    await stop(); // also waits for the rest of the output
    const reason = error instanceof Error ? error.message.replace(/: [\s\S]*$/, "") : "";
    const message = `${name} did not start (${reason}): ${describe()}`;
    if (/in use|EADDRINUSE|bind\(\) failed/i.test(output.output())) {
      throw new PortTakenError(message, { cause: error });
    }
    throw new Error(message, { cause: error });
  }
  return peer;
}

/** Picks a free port and starts the peer on it, retrying on a new port if the port was taken. */
async function startOnFreePort(
  name: string,
  build: (port: number) => SpawnSpec,
): Promise<PeerProcess> {
  for (let attempt = 1;; attempt++) {
    const port = await freePort();
    try {
      return await spawnPeer(build(port), port, name);
    } catch (error) {
      if (!(error instanceof PortTakenError) || attempt >= 3) throw error;
    }
  }
}

/**
 * Options for {@link startCommandPeer}.
 *
 * @example
 * ```ts
 * import type { CommandPeerOptions } from "./peer_process.ts";
 * const options: CommandPeerOptions = {
 *   command: "openssl",
 *   args: (port) => ["s_server", "-accept", `127.0.0.1:${port}`, "-nocert", "-psk", "00ff"],
 *   readyPattern: /^ACCEPT/m,
 * };
 * console.log(options);
 * ```
 */
export interface CommandPeerOptions {
  /** The executable. */
  command: string;
  /** Its arguments, given the port it must listen on. */
  args: (port: number) => string[];
  /**
   * Listen on this port. Default: a free one, picked first and retried (up to 3 times) if another
   * process takes it in between. A given port is not retried: the start fails if it is taken.
   */
  port?: number;
  /** Working directory. Default: this process's. */
  cwd?: string | undefined;
  /** Extra environment variables. */
  env?: Record<string, string> | undefined;
  /** Run under `stdbuf -oL` when available. Default `true`. */
  lineBuffered?: boolean;
  /** Also wait for this in its output before it counts as ready. */
  readyPattern?: RegExp | undefined;
  /**
   * Count an IPv6 listener (e.g. on `[::]`, dual-stack) as ready, not only an IPv4 one.
   * Default `false`.
   */
  anyFamily?: boolean;
  /**
   * Output meaning "could not bind the port" although the process keeps running (e.g.
   * `gnutls-serv`, which carries on with whichever of its two listeners it got): the start then
   * counts as "port taken" and is retried on another port.
   */
  bindFailedPattern?: RegExp;
}

/**
 * Starts any listening command as a {@link PeerProcess}, with the same readiness check, output
 * capture and cleanup (exit hooks, reaper, `stop()`) as the TLS peers built on it
 * (`openssl_peer.ts`, `gnutls_peer.ts`, `node_peer.ts`).
 *
 * @example
 * ```ts
 * import { startCommandPeer } from "./peer_process.ts";
 * await using peer = await startCommandPeer("nc", {
 *   command: "nc",
 *   args: (port) => ["-l", "127.0.0.1", String(port)],
 * });
 * console.log(peer.port);
 * ```
 */
export function startCommandPeer(name: string, options: CommandPeerOptions): Promise<PeerProcess> {
  const build = (port: number): SpawnSpec => ({
    command: options.command,
    args: options.args(port),
    cwd: options.cwd,
    env: options.env,
    lineBuffered: options.lineBuffered ?? true,
    readyPattern: options.readyPattern,
    anyFamily: options.anyFamily ?? false,
    bindFailedPattern: options.bindFailedPattern,
  });
  if (options.port !== undefined) return spawnPeer(build(options.port), options.port, name);
  return startOnFreePort(name, build);
}
