/**
 * Real TLS peers on loopback for tests: `openssl s_server`, `gnutls-serv`, a Node.js `tls` server
 * (the machine's real `node`, as a child process), plus in-process misbehaving TCP servers and
 * proxies. Only `node:` built-ins are used, so this runs identically under `deno test` and
 * `bun test`.
 *
 * Rules for tests:
 * - Always `await peer.stop()` in a `finally`. Every child is also killed (SIGKILL) by a process
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
 * import { startOpensslServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startOpensslServer({ cert: pki.server.certPath, key: pki.server.keyPath,
 *   chain: pki.intermediateCa.certPath });
 * try {
 *   // connect to 127.0.0.1:server.port with SNI "localhost", trusting pki.rootCaPath
 * } finally {
 *   await server.stop();
 * }
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
 * import { freePort } from "./peers.ts";
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
 * import { canConnect } from "./peers.ts";
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
 * import type { ExitStatus } from "./peers.ts";
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
 * import { startNodeTlsServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const peer = await startNodeTlsServer({ cert: pki.server.chainPath, key: pki.server.keyPath });
 * try {
 *   console.log(peer.port, peer.pid, peer.args.join(" "));
 *   await peer.waitFor(/LISTENING/);
 * } finally {
 *   await peer.stop();
 * }
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
   * Idempotent; always call it in a `finally`.
   */
  stop(): Promise<void>;
}

/**
 * The `openssl s_server` peer returned by {@link startOpensslServer}.
 *
 * @example
 * ```ts
 * import { type OpensslServer, startOpensslServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: OpensslServer = await startOpensslServer({ cert: pki.server.certPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type OpensslServer = PeerProcess;

/**
 * The `gnutls-serv` peer returned by {@link startGnutlsServer}.
 *
 * @example
 * ```ts
 * import { type GnutlsServer, startGnutlsServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: GnutlsServer = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type GnutlsServer = PeerProcess;

/**
 * The Node.js `tls` server peer returned by {@link startNodeTlsServer}.
 *
 * @example
 * ```ts
 * import { type NodeTlsServer, startNodeTlsServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server: NodeTlsServer = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
 * await server.stop();
 * ```
 */
export type NodeTlsServer = PeerProcess;

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
  bindFailedPattern?: RegExp;
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
    `${name} (${argv.map((arg) => (arg.includes("\n") ? "<script>" : arg)).join(" ")})` +
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
 * import type { CommandPeerOptions } from "./peers.ts";
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
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Run under `stdbuf -oL` when available. Default `true`. */
  lineBuffered?: boolean;
  /** Also wait for this in its output before it counts as ready. */
  readyPattern?: RegExp;
  /**
   * Count an IPv6 listener (e.g. on `[::]`, dual-stack) as ready, not only an IPv4 one.
   * Default `false`.
   */
  anyFamily?: boolean;
}

/**
 * Starts any listening command as a {@link PeerProcess}, with the same readiness check, output
 * capture and cleanup (exit hooks, reaper, `stop()`) as the TLS peers of this module.
 *
 * @example
 * ```ts
 * import { startCommandPeer } from "./peers.ts";
 * const peer = await startCommandPeer("nc", {
 *   command: "nc",
 *   args: (port) => ["-l", "127.0.0.1", String(port)],
 * });
 * try {
 *   console.log(peer.port);
 * } finally {
 *   await peer.stop();
 * }
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
  });
  if (options.port !== undefined) return spawnPeer(build(options.port), options.port, name);
  return startOnFreePort(name, build);
}

// ---------------------------------------------------------------------------------------------
// openssl s_server
// ---------------------------------------------------------------------------------------------

/**
 * A protocol version pin: the server accepts only this version.
 *
 * @example
 * ```ts
 * import type { TlsVersion } from "./peers.ts";
 * const version: TlsVersion = "1.3";
 * console.log(version);
 * ```
 */
export type TlsVersion = "1.0" | "1.1" | "1.2" | "1.3";

/**
 * Options for {@link startOpensslServer}. Paths are absolute (or relative to `wwwRoot` when set).
 *
 * @example
 * ```ts
 * import type { OpensslServerOptions } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: OpensslServerOptions = {
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 *   caFile: pki.rootCaPath, verify: "require", tls: "1.3", alpn: ["h2", "http/1.1"],
 * };
 * console.log(options);
 * ```
 */
export interface OpensslServerOptions {
  /**
   * `-cert`: the leaf. Only the FIRST certificate of the file is used (a leaf + intermediate file
   * serves the leaf alone): put intermediates in `chain`. Required unless `extraArgs` has
   * `-nocert`.
   */
  cert?: string;
  /** `-key`. */
  key?: string;
  /** `-cert_chain`: the intermediates sent after the leaf, e.g. `pki.intermediateCa.certPath`. */
  chain?: string;
  /**
   * `-CAfile`: trust for client certificates, the acceptable-CA list sent in a
   * CertificateRequest, AND extra material for the server's own chain building (so leave it out
   * of missing-intermediate tests).
   */
  caFile?: string;
  /**
   * Client certificates. `"none"` (default): not requested. `"request"`: `-verify 1` (asked for;
   * a missing or bad one is logged, the handshake goes on). `"require"`:
   * `-Verify 1 -verify_return_error` (a missing or unverifiable one fails the handshake).
   */
  verify?: "none" | "request" | "require";
  /**
   * Pin one version: `-tls1`, `-tls1_1`, `-tls1_2`, `-tls1_3`. For 1.0 and 1.1 the cipher string
   * defaults to `DEFAULT:@SECLEVEL=0` (they are refused at the system's default level).
   */
  tls?: TlsVersion;
  /** `-cipher`: TLS 1.2 and older cipher list. */
  cipher?: string;
  /** `-ciphersuites`: TLS 1.3 suites. */
  ciphersuites?: string;
  /** `-alpn a,b`: protocols the server accepts, in its preference order. */
  alpn?: string[];
  /** `-www`: answer `GET /` with an HTTP/1.0 status page (then close_notify + close). */
  www?: boolean;
  /**
   * `-WWW -http_server_binmode`, run in this dir: `GET /name HTTP/1.0` answers
   * `HTTP/1.0 200 ok` + `Content-type` header + the bytes of `./name`, then close_notify
   * (no Content-Length). For byte-exact bulk transfers.
   */
  wwwRoot?: string;
  /** `-rev`: every line received is sent back reversed; a line `CLOSE` ends the connection. */
  rev?: boolean;
  /**
   * `-quiet`: no connection reports. NOTE: with `-quiet` (or `-brief`) the stdin commands
   * (`K`, `k`, `R`, `r`, `c`, `q`, `Q`) are NOT interpreted: lines are sent as data.
   */
  quiet?: boolean;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /**
   * `-status_file`: a DER OCSP response stapled, as it is, to every handshake whose client asks
   * for one (`status_request`). `s_server` parses it per handshake and fails that handshake
   * (`cert_status: Error reading OCSP response`) if it is not DER of an `OCSPResponse`; a
   * well-formed tryLater, stale, wrongly signed or wrong-certificate response is served as it is.
   * Serve garbage or truncated bytes with `gnutls-serv` (`ocspResponse`) instead.
   */
  statusFile?: string;
  /** More arguments, e.g. `["-nocert", "-psk", hex]`. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The `openssl` executable. Default `openssl` from PATH. */
  openssl?: string;
}

const VERSION_FLAG: Record<TlsVersion, string> = {
  "1.0": "-tls1",
  "1.1": "-tls1_1",
  "1.2": "-tls1_2",
  "1.3": "-tls1_3",
};

/**
 * Builds the `openssl s_server` argument list (without the executable) for `options` and `port`.
 *
 * @example
 * ```ts
 * import { opensslServerArgs } from "./peers.ts";
 * console.log(opensslServerArgs({ cert: "/tmp/c.pem", key: "/tmp/k.pem", tls: "1.2" }, 4433).join(" "));
 * // s_server -accept 127.0.0.1:4433 -cert /tmp/c.pem -key /tmp/k.pem -tls1_2
 * ```
 */
export function opensslServerArgs(options: OpensslServerOptions, port: number): string[] {
  const args = ["s_server", "-accept", `${options.host ?? "127.0.0.1"}:${port}`];
  if (options.cert !== undefined) args.push("-cert", options.cert);
  if (options.key !== undefined) args.push("-key", options.key);
  if (options.chain !== undefined) args.push("-cert_chain", options.chain);
  if (options.caFile !== undefined) args.push("-CAfile", options.caFile);
  if (options.verify === "request") args.push("-verify", "1");
  if (options.verify === "require") args.push("-Verify", "1", "-verify_return_error");
  if (options.tls !== undefined) args.push(VERSION_FLAG[options.tls]);
  const cipher = options.cipher ??
    (options.tls === "1.0" || options.tls === "1.1" ? "DEFAULT:@SECLEVEL=0" : undefined);
  if (cipher !== undefined) args.push("-cipher", cipher);
  if (options.ciphersuites !== undefined) args.push("-ciphersuites", options.ciphersuites);
  if (options.alpn !== undefined) args.push("-alpn", options.alpn.join(","));
  if (options.www === true) args.push("-www");
  if (options.wwwRoot !== undefined) args.push("-WWW", "-http_server_binmode");
  if (options.rev === true) args.push("-rev");
  if (options.quiet === true) args.push("-quiet");
  if (options.statusFile !== undefined) args.push("-status_file", options.statusFile);
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * Starts `openssl s_server` on a free port of 127.0.0.1 and resolves once it listens.
 *
 * Behaviour worth knowing (OpenSSL 3.0):
 * - ONE connection at a time: a second client's handshake waits until the first one closes.
 * - Default mode (no `www`/`wwwRoot`/`rev`): after each handshake it prints the session and
 *   `CIPHER is ...`; bytes from the client are copied to stdout as they arrive; lines written
 *   with `send()` go to the client. Stdin commands (a whole line, not with `quiet`): `K` / `k`
 *   TLS 1.3 KeyUpdate with / without update_requested, `R` / `r` renegotiation with / without a
 *   certificate request (TLS 1.2), `c` TLS 1.3 post-handshake CertificateRequest, `q` close this
 *   connection (no close_notify), `Q` shut the server down. ANY line starting with `q`/`Q` is a
 *   command, so never send data lines starting with q. Stdin is read only while a client is
 *   connected; text sent earlier is delivered to the next client.
 * - It stops when stdin reaches EOF, so this keeps stdin open until `stop()`.
 * - `-www` / `-WWW` / `-rev` never read stdin.
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startOpensslServer({
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 *   tls: "1.3",
 * });
 * try {
 *   // ... connect a client to 127.0.0.1:server.port, then:
 *   await server.waitFor(/CIPHER is (\S+)/);
 *   server.send("K\n"); // KeyUpdate
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export function startOpensslServer(options: OpensslServerOptions): Promise<OpensslServer> {
  return startOnFreePort("openssl s_server", (port) => ({
    command: options.openssl ?? "openssl",
    args: opensslServerArgs(options, port),
    cwd: options.wwwRoot,
    env: options.env,
    lineBuffered: true,
    // Printed once it listens, unless -quiet or -brief: waiting for it too means output() holds
    // it before any test connects.
    readyPattern: [options.quiet === true ? "-quiet" : "", ...(options.extraArgs ?? [])]
        .some((arg) => arg === "-quiet" || arg === "-brief")
      ? undefined
      : /^ACCEPT$/m,
    // A host name or IPv6 address may give an IPv6 listener; 127.0.0.1 (default) an IPv4 one.
    anyFamily: !/^\d+\.\d+\.\d+\.\d+$/.test(options.host ?? "127.0.0.1"),
  }));
}

// ---------------------------------------------------------------------------------------------
// gnutls-serv
// ---------------------------------------------------------------------------------------------

/**
 * Options for {@link startGnutlsServer}.
 *
 * @example
 * ```ts
 * import type { GnutlsServerOptions } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: GnutlsServerOptions = {
 *   cert: pki.serverChainPath, key: pki.server.keyPath, tls: "1.3", echo: true,
 * };
 * console.log(options);
 * ```
 */
export interface GnutlsServerOptions {
  /** `--x509certfile`: leaf + intermediates (gnutls-serv has no separate chain option). */
  cert?: string;
  /** `--x509keyfile`. */
  key?: string;
  /** `--x509cafile`: trust for client certificates. */
  caFile?: string;
  /**
   * Client certificates. `"none"` (default): `-a`, not requested. `"request"`: requested, and
   * verified if sent (`--verify-client-cert`). `"require"`: `-r --verify-client-cert`.
   */
  clientCert?: "none" | "request" | "require";
  /** Pin one version (builds a `--priority`); ignored when `priority` is given. */
  tls?: "1.2" | "1.3";
  /** `--priority`, e.g. `"NORMAL:-VERS-ALL:+VERS-TLS1.2"`. */
  priority?: string;
  /** `--alpn` once per protocol. */
  alpn?: string[];
  /** `--alpn-fatal`: a client offering none of `alpn` gets a fatal alert. */
  alpnFatal?: boolean;
  /**
   * `--echo`: echo every record back (it logs "received cmd" lines). Default: HTTP mode, which
   * answers a `GET` with an HTML status page.
   */
  echo?: boolean;
  /**
   * `--ocsp-response FILE`, plus `--ignore-ocsp-response-errors` unless `ignoreOcspResponseErrors`
   * is `false`: staple these bytes as they are (garbage and truncated bytes included).
   */
  ocspResponse?: string;
  /**
   * With `ocspResponse`: pass `--ignore-ocsp-response-errors` (default `true`). With `false`
   * gnutls-serv checks the response when it loads it, and refuses to start on one it cannot use.
   */
  ignoreOcspResponseErrors?: boolean;
  /** More arguments. */
  extraArgs?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The executable. Default `gnutls-serv` from PATH. */
  gnutlsServ?: string;
}

/**
 * Builds the `gnutls-serv` argument list for `options` and `port`.
 *
 * @example
 * ```ts
 * import { gnutlsServerArgs } from "./peers.ts";
 * console.log(gnutlsServerArgs({ cert: "/tmp/c.pem", key: "/tmp/k.pem", tls: "1.3" }, 5556).join(" "));
 * ```
 */
export function gnutlsServerArgs(options: GnutlsServerOptions, port: number): string[] {
  const args = ["-p", String(port)];
  if (options.cert !== undefined) args.push("--x509certfile", options.cert);
  if (options.key !== undefined) args.push("--x509keyfile", options.key);
  if (options.caFile !== undefined) args.push("--x509cafile", options.caFile);
  const clientCert = options.clientCert ?? "none";
  if (clientCert === "none") args.push("-a");
  if (clientCert === "request") args.push("--verify-client-cert");
  if (clientCert === "require") args.push("-r", "--verify-client-cert");
  const priority = options.priority ??
    (options.tls === undefined ? undefined : `NORMAL:-VERS-ALL:+VERS-TLS${options.tls}`);
  if (priority !== undefined) args.push("--priority", priority);
  for (const protocol of options.alpn ?? []) args.push("--alpn", protocol);
  if (options.alpnFatal === true) args.push("--alpn-fatal");
  if (options.echo === true) args.push("--echo");
  if (options.ocspResponse !== undefined) {
    args.push("--ocsp-response", options.ocspResponse);
    if (options.ignoreOcspResponseErrors !== false) args.push("--ignore-ocsp-response-errors");
  }
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * Starts `gnutls-serv` on a free port and resolves once it listens on IPv4. It binds
 * `0.0.0.0:port` AND `[::]:port` (no option to bind one address), so the port is picked first:
 * with `-p 0` the two sockets get different ports and neither is printed usefully. When one of
 * the two binds fails it prints `bind() failed` and carries on with the other, so that output
 * counts as "port taken" and the start is retried on another port. It serves connections
 * concurrently, ignores stdin, and prints every peer certificate in full. Default mode is HTTP
 * (a `GET` gets an HTML status page); `echo` echoes.
 *
 * @example
 * ```ts
 * import { startGnutlsServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath, echo: true });
 * try {
 *   // ... connect to 127.0.0.1:server.port
 *   await server.waitFor(/Version: TLS1\.3/);
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export function startGnutlsServer(options: GnutlsServerOptions): Promise<GnutlsServer> {
  return startOnFreePort("gnutls-serv", (port) => ({
    command: options.gnutlsServ ?? "gnutls-serv",
    args: gnutlsServerArgs(options, port),
    env: options.env,
    lineBuffered: true,
    // It binds 0.0.0.0 and [::] in turn and carries on when one bind fails, e.g. serving only
    // [::]:port while another process owns 127.0.0.1:port. Only its IPv4 listener counts.
    bindFailedPattern: /bind\(\) failed/,
  }));
}

// ---------------------------------------------------------------------------------------------
// Node.js tls server (child process)
// ---------------------------------------------------------------------------------------------

/**
 * Options for {@link startNodeTlsServer}.
 *
 * @example
 * ```ts
 * import type { NodeTlsServerOptions } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const options: NodeTlsServerOptions = {
 *   cert: pki.serverChainPath, key: pki.server.keyPath, mode: "send", sendBytes: 1 << 20,
 *   serverOptions: { minVersion: "TLSv1.3" },
 * };
 * console.log(options);
 * ```
 */
export interface NodeTlsServerOptions {
  /** Path of the certificate chain PEM (leaf first). */
  cert?: string;
  /** Path of the key PEM. */
  key?: string;
  /** Path of the CA PEM used to verify client certificates. */
  ca?: string;
  /** Ask for a client certificate. */
  requestCert?: boolean;
  /** With `requestCert`: fail handshakes without a valid one. Default false. */
  rejectUnauthorized?: boolean;
  /** `ALPNProtocols`. */
  alpn?: string[];
  /**
   * What to do on each connection. `"echo"` (default): write back everything received, end when
   * the client ends. `"http"`: after a request head (`\r\n\r\n`), answer `HTTP/1.1 200 OK` with
   * `httpBody` and a Content-Length, then end. `"send"`: write `sendBytes` bytes of
   * {@link patternBytes} at once, then end (close_notify).
   */
  mode?: "echo" | "http" | "send";
  /** Body for `"http"`. Default `"hello from node\n"`. */
  httpBody?: string;
  /** Byte count for `"send"`. Default 1 MiB. */
  sendBytes?: number;
  /**
   * Any other JSON-serialisable `tls.createServer` options (`minVersion`, `maxVersion`,
   * `ciphers`, `sessionTimeout`, ...). Applied first; the fields above win.
   */
  serverOptions?: Record<string, unknown>;
  /** The node executable. Default `node` from PATH. */
  node?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * `length` bytes of the deterministic pattern `byte[i] = (offset + i) % 251` that the Node peer's
 * `"send"` mode writes. 251 is prime, so no record or buffer size lines up with the period.
 *
 * @example
 * ```ts
 * import { patternBytes } from "./peers.ts";
 * console.log(patternBytes(4)); // Uint8Array [0, 1, 2, 3]
 * ```
 */
export function patternBytes(length: number, offset = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (offset + i) % 251;
  return bytes;
}

// CommonJS, run with `node -e`. Configuration comes in LIBSSL_FFI_PEER_CONFIG (JSON).
// Prints: LISTENING <port>; SECURE <protocol> <cipher> alpn=<p|-> authorized=<bool> peer=<CN|->;
// TLSCLIENTERROR <code> <message>; SOCKETERROR <code> <message>; END (client ended); CLOSE.
// Stdin lines: "destroy" (drop every connection without close_notify), "end" (close_notify).
const NODE_SERVER_SCRIPT = String.raw`
"use strict";
const tls = require("node:tls");
const fs = require("node:fs");
const cfg = JSON.parse(process.env.LIBSSL_FFI_PEER_CONFIG);
const opts = Object.assign({}, cfg.serverOptions || {});
if (cfg.cert) opts.cert = fs.readFileSync(cfg.cert);
if (cfg.key) opts.key = fs.readFileSync(cfg.key);
if (cfg.ca) opts.ca = fs.readFileSync(cfg.ca);
if (cfg.requestCert !== undefined) opts.requestCert = cfg.requestCert;
if (cfg.rejectUnauthorized !== undefined) opts.rejectUnauthorized = cfg.rejectUnauthorized;
else if (opts.rejectUnauthorized === undefined) opts.rejectUnauthorized = false;
if (cfg.alpn) opts.ALPNProtocols = cfg.alpn;
const mode = cfg.mode || "echo";
const sockets = new Set();
function pattern(length) {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = i % 251;
  return b;
}
function sendPattern(socket, total) {
  const chunk = pattern(251 * 261);
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        socket.once("drain", pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}
const server = tls.createServer(opts, (socket) => {
  sockets.add(socket);
  const cert = socket.getPeerCertificate();
  const cn = cert && cert.subject && cert.subject.CN ? cert.subject.CN : "-";
  console.log("SECURE " + socket.getProtocol() + " " + socket.getCipher().name + " alpn=" +
    (socket.alpnProtocol || "-") + " authorized=" + socket.authorized + " peer=" + cn);
  socket.on("error", (e) => console.log("SOCKETERROR " + (e.code || "-") + " " + e.message));
  socket.on("end", () => console.log("END"));
  socket.on("close", () => { sockets.delete(socket); console.log("CLOSE"); });
  if (mode === "echo") {
    socket.pipe(socket);
  } else if (mode === "http") {
    let head = "";
    const onData = (d) => {
      head += d.toString("latin1");
      if (head.includes("\r\n\r\n")) {
        socket.removeListener("data", onData);
        const body = Buffer.from(cfg.httpBody === undefined ? "hello from node\n" : cfg.httpBody);
        socket.end(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: " +
          body.length + "\r\nConnection: close\r\n\r\n"), body]));
      }
    };
    socket.on("data", onData);
  } else {
    socket.resume();
    sendPattern(socket, cfg.sendBytes === undefined ? 1048576 : cfg.sendBytes);
  }
});
server.on("tlsClientError", (e) => console.log("TLSCLIENTERROR " + (e.code || "-") + " " + e.message));
server.on("error", (e) => { console.error("LISTENERROR " + (e.code || "-") + " " + e.message); process.exit(3); });
server.listen(cfg.port, cfg.host, () => console.log("LISTENING " + server.address().port));
let line = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => {
  line += d;
  let i;
  while ((i = line.indexOf("\n")) >= 0) {
    const cmd = line.slice(0, i).trim();
    line = line.slice(i + 1);
    for (const s of sockets) {
      if (cmd === "destroy") s.destroy();
      if (cmd === "end") s.end();
    }
  }
});
// The parent is gone (or stop() closed stdin): exit.
process.stdin.on("end", () => process.exit(0));
`;

/**
 * Starts a Node.js `tls.createServer` in the machine's real `node` (a child process, NOT in
 * this runtime, whose own `node:tls` may be the thing under test) on a free port of 127.0.0.1.
 * Unlike `s_server` it serves connections concurrently. It prints one `SECURE ...` line per
 * handshake (protocol, cipher, ALPN, client-certificate result), `TLSCLIENTERROR ...` for failed
 * handshakes, and accepts `destroy` / `end` lines on stdin (via `send`). It exits when its stdin
 * closes.
 *
 * @example
 * ```ts
 * import { startNodeTlsServer } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startNodeTlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath, mode: "echo" });
 * try {
 *   // ... connect to 127.0.0.1:server.port, then:
 *   const [, protocol] = await server.waitFor(/SECURE (\S+)/);
 *   console.log(protocol);
 *   server.send("destroy\n"); // drop the connection without close_notify
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export function startNodeTlsServer(options: NodeTlsServerOptions = {}): Promise<NodeTlsServer> {
  return startOnFreePort("node tls server", (port) => {
    const config = {
      port,
      host: "127.0.0.1",
      cert: options.cert,
      key: options.key,
      ca: options.ca,
      requestCert: options.requestCert,
      rejectUnauthorized: options.rejectUnauthorized,
      alpn: options.alpn,
      mode: options.mode,
      httpBody: options.httpBody,
      sendBytes: options.sendBytes,
      serverOptions: options.serverOptions,
    };
    return {
      command: options.node ?? "node",
      args: ["-e", NODE_SERVER_SCRIPT],
      env: { ...options.env, LIBSSL_FFI_PEER_CONFIG: JSON.stringify(config) },
      lineBuffered: false,
      readyPattern: /^LISTENING \d+$/m,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// In-process misbehaving servers and proxies
// ---------------------------------------------------------------------------------------------

/**
 * What a {@link startRawServer} does with each connection.
 * - `"reset"`: abort with a TCP RST (`resetAndDestroy()`).
 * - `"eof"`: send FIN, nothing else.
 * - `"http"`: `HTTP/1.1 400 Bad Request` with a small body, then FIN.
 * - `"garbage"`: 1 KiB of random bytes (never a valid record), then FIN.
 * - `"hugeRecord"`: a handshake record header claiming 65,535 bytes (`16 03 03 ff ff`), then
 *   nothing; the connection stays open.
 * - `"alertFirst"`: a fatal `handshake_failure` alert record (`15 03 03 00 02 02 28`), then FIN.
 * - `"silent"`: never writes, never closes (until `stop()`): for handshake timeouts.
 * - `{ write, then }`: writes these bytes, then `"end"` (FIN, the default), `"hold"` (stay
 *   open), or `"reset"` (RST). For truncated handshakes, data before the handshake, etc.
 *
 * @example
 * ```ts
 * import type { RawBehaviour } from "./peers.ts";
 * const truncatedServerHello: RawBehaviour = { write: new Uint8Array([0x16, 3, 3, 0, 80, 2, 0]), then: "hold" };
 * console.log(truncatedServerHello);
 * ```
 */
export type RawBehaviour =
  | "reset"
  | "eof"
  | "http"
  | "garbage"
  | "hugeRecord"
  | "alertFirst"
  | "silent"
  | { write: Uint8Array; then?: "end" | "hold" | "reset" };

/**
 * Options for {@link startRawServer}.
 *
 * @example
 * ```ts
 * import type { RawServerOptions } from "./peers.ts";
 * const options: RawServerOptions = { respondOn: "connect" };
 * console.log(options);
 * ```
 */
export interface RawServerOptions {
  /**
   * When to act: `"connect"` (at once) or `"data"` (on the client's first bytes, normally its
   * ClientHello). Default: `"connect"` for `"reset"` and `"eof"`, `"data"` for the rest.
   */
  respondOn?: "connect" | "data";
}

/**
 * A misbehaving in-process TCP server.
 *
 * @example
 * ```ts
 * import { type RawServer, startRawServer } from "./peers.ts";
 * const server: RawServer = await startRawServer("eof");
 * console.log(server.port, server.connections(), server.received().length);
 * await server.stop();
 * ```
 */
export interface RawServer {
  /** Its port on 127.0.0.1. */
  port: number;
  /** How many connections it has accepted. */
  connections(): number;
  /** Every byte clients sent it, concatenated in arrival order. */
  received(): Uint8Array;
  /** Destroys every open connection and closes the listener. Idempotent. */
  stop(): Promise<void>;
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return bytes;
}

function rawAction(
  behaviour: RawBehaviour,
): { write: Uint8Array | null; then: "end" | "hold" | "reset" } {
  const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
  switch (behaviour) {
    case "reset":
      return { write: null, then: "reset" };
    case "eof":
      return { write: null, then: "end" };
    case "http": {
      const body = "this is not TLS\n";
      return {
        write: ascii(
          `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}` +
            `\r\nConnection: close\r\n\r\n${body}`,
        ),
        then: "end",
      };
    }
    case "garbage": {
      // Random bytes, but never starting like a TLS record (content types 20-24).
      const bytes = randomBytes(1024);
      bytes[0] = 0xab;
      return { write: bytes, then: "end" };
    }
    case "hugeRecord":
      return { write: new Uint8Array([0x16, 0x03, 0x03, 0xff, 0xff]), then: "hold" };
    case "alertFirst":
      return { write: new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]), then: "end" };
    case "silent":
      return { write: null, then: "hold" };
    default:
      return { write: behaviour.write, then: behaviour.then ?? "end" };
  }
}

/** Closes `server` and waits for every socket in `sockets` to be fully closed. */
async function closeAll(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  const socketsClosed = [...sockets].map((socket) =>
    new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.destroy();
    })
  );
  const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
  // A socket that was already fully closed never emits 'close' again: do not wait forever.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all([...socketsClosed, serverClosed]),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 1_000))),
  ]);
  clearTimeout(timer);
  sockets.clear();
}

function listenLocal(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.removeListener("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
  });
}

/**
 * Starts an in-process TCP server on 127.0.0.1 that misbehaves as `behaviour` says, for every
 * connection. `node:net` is used, which both runtimes implement natively (not on top of the
 * TLS library under test).
 *
 * @example
 * ```ts
 * import { startRawServer } from "./peers.ts";
 * const server = await startRawServer("alertFirst");
 * try {
 *   // ... a TLS client connecting to 127.0.0.1:server.port must fail with handshake_failure
 * } finally {
 *   await server.stop();
 * }
 * ```
 */
export async function startRawServer(
  behaviour: RawBehaviour,
  options: RawServerOptions = {},
): Promise<RawServer> {
  const action = rawAction(behaviour);
  const respondOn = options.respondOn ??
    (behaviour === "reset" || behaviour === "eof" ? "connect" : "data");
  const sockets = new Set<net.Socket>();
  const chunks: Uint8Array[] = [];
  let accepted = 0;

  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {}); // EPIPE / ECONNRESET from the client are expected
    let acted = false;
    const act = (): void => {
      if (acted || socket.destroyed) return;
      acted = true;
      if (action.write !== null) socket.write(action.write);
      if (action.then === "end") socket.end();
      if (action.then === "reset") socket.resetAndDestroy();
    };
    socket.on("data", (chunk: Uint8Array) => {
      chunks.push(new Uint8Array(chunk));
      if (respondOn === "data") act();
    });
    if (respondOn === "connect") act();
  });
  const port = await listenLocal(server);

  let stopping: Promise<void> | null = null;
  return {
    port,
    connections: () => accepted,
    received: () => concat(chunks),
    stop: () => (stopping ??= closeAll(server, sockets)),
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * What a {@link startTcpProxy} does to the bytes it forwards.
 * - `"pass"`: forwards unchanged.
 * - `"drip"`: forwards one byte per write (Nagle off), with `dripDelayMs` between bytes.
 *   With the default 0 (`setImmediate`, ~20 ms for a 2 KB handshake flight), a receiver in
 *   another process or on Bun sees one-byte reads, but a receiver in this same Deno process sees
 *   reads of ~20-40 bytes (Deno runs many immediates between socket reads). `dripDelayMs: 1`
 *   gives one-byte reads everywhere, at ~1-2 ms per byte (a handshake then takes seconds).
 *   A TLS handshake through it must still succeed.
 * - `"flipBit"`: forwards unchanged, except that the byte at offset `flipAfter` of each
 *   affected stream is XORed with `flipMask`: exactly one bit with the default mask.
 *
 * @example
 * ```ts
 * import type { ProxyMode } from "./peers.ts";
 * const mode: ProxyMode = "drip";
 * console.log(mode);
 * ```
 */
export type ProxyMode = "pass" | "drip" | "flipBit";

/**
 * Options for {@link startTcpProxy}.
 *
 * @example
 * ```ts
 * import type { TcpProxyOptions } from "./peers.ts";
 * const options: TcpProxyOptions = { flipAfter: 100, flipMask: 0x80, direction: "toClient" };
 * console.log(options);
 * ```
 */
export interface TcpProxyOptions {
  /** Which stream(s) the mode applies to; the other passes unchanged. Default `"toClient"`. */
  direction?: "toClient" | "toServer" | "both";
  /** `"flipBit"`: offset of the byte to corrupt in the stream. Default 4096. */
  flipAfter?: number;
  /** `"flipBit"`: XOR mask. Default `0x01`. */
  flipMask?: number;
  /** `"drip"`: milliseconds between bytes; 0 (default) uses `setImmediate`. */
  dripDelayMs?: number;
  /** The target host. Default `127.0.0.1`. */
  targetHost?: string;
}

/**
 * An in-process TCP proxy.
 *
 * @example
 * ```ts
 * import { startTcpProxy, type TcpProxy } from "./peers.ts";
 * const proxy: TcpProxy = await startTcpProxy(4433, "pass");
 * console.log(proxy.port, proxy.connections(), proxy.flips(), proxy.bytes());
 * await proxy.stop();
 * ```
 */
export interface TcpProxy {
  /** Its port on 127.0.0.1: connect here instead of the target. */
  port: number;
  /** How many connections it has accepted. */
  connections(): number;
  /** How many bytes were corrupted so far (`"flipBit"`). */
  flips(): number;
  /** Bytes received for forwarding so far in each direction (dripped ones may still be queued). */
  bytes(): { toServer: number; toClient: number };
  /** Destroys every open connection (both legs) and closes the listener. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts an in-process TCP proxy on 127.0.0.1 that forwards every connection to
 * `targetHost:targetPort`, applying `mode` to the server-to-client stream (see `direction`).
 * Half-closes are forwarded (FIN after the last byte), so close_notify + EOF ordering survives;
 * an error or reset on one leg destroys the other.
 *
 * @example
 * ```ts
 * import { startOpensslServer, startTcpProxy } from "./peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * const server = await startOpensslServer({
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 * });
 * const proxy = await startTcpProxy(server.port, "drip");
 * try {
 *   // ... a TLS client connecting to 127.0.0.1:proxy.port must still complete its handshake
 * } finally {
 *   await proxy.stop();
 *   await server.stop();
 * }
 * ```
 */
export async function startTcpProxy(
  targetPort: number,
  mode: ProxyMode,
  options: TcpProxyOptions = {},
): Promise<TcpProxy> {
  const direction = options.direction ?? "toClient";
  const flipAfter = options.flipAfter ?? 4096;
  const flipMask = options.flipMask ?? 0x01;
  const dripDelayMs = options.dripDelayMs ?? 0;
  const sockets = new Set<net.Socket>();
  const counts = { toServer: 0, toClient: 0 };
  let accepted = 0;
  let flipped = 0;

  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };

  /** Forwards `from` to `to`, applying `applied` mode; counts into `counts[key]`. */
  const forward = (
    from: net.Socket,
    to: net.Socket,
    applied: ProxyMode,
    key: "toServer" | "toClient",
  ): void => {
    let offset = 0;
    let ended = false;
    const queue: Uint8Array[] = [];
    let queued = 0;
    let dripping = false;
    const finish = (): void => {
      if (!to.destroyed) to.end();
    };
    const drip = (): void => {
      if (to.destroyed) return;
      const head = queue[0];
      if (head === undefined) {
        dripping = false;
        if (ended) finish();
        return;
      }
      to.write(head.subarray(0, 1));
      queued--;
      if (head.length === 1) queue.shift();
      else queue[0] = head.subarray(1);
      if (queued < 65_536 && from.isPaused()) from.resume();
      if (dripDelayMs > 0) setTimeout(drip, dripDelayMs);
      else setImmediate(drip);
    };
    from.on("data", (data: Uint8Array) => {
      const chunk = new Uint8Array(data);
      counts[key] += chunk.length;
      if (applied === "flipBit" && offset <= flipAfter && flipAfter < offset + chunk.length) {
        chunk[flipAfter - offset]! ^= flipMask;
        flipped++;
      }
      offset += data.length;
      if (applied === "drip") {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= 65_536) from.pause();
        if (!dripping) {
          dripping = true;
          drip();
        }
        return;
      }
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    from.on("end", () => {
      ended = true;
      if (!dripping) finish();
    });
  };

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    accepted++;
    track(client);
    client.setNoDelay(true);
    const upstream = net.connect({
      port: targetPort,
      host: options.targetHost ?? "127.0.0.1",
      allowHalfOpen: true,
    });
    track(upstream);
    upstream.setNoDelay(true);
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", kill);
    upstream.on("error", kill);
    // Once both legs are fully closed there is nothing left; if one closes early (destroyed),
    // take the other down too.
    client.on("close", () => upstream.destroyed || upstream.end());
    upstream.on("close", () => client.destroyed || client.end());
    const toClient = direction === "toClient" || direction === "both" ? mode : "pass";
    const toServer = direction === "toServer" || direction === "both" ? mode : "pass";
    forward(upstream, client, toClient, "toClient");
    forward(client, upstream, toServer, "toServer");
    upstream.once("connect", () => client.resume());
  });
  const port = await listenLocal(server);

  let stopping: Promise<void> | null = null;
  return {
    port,
    connections: () => accepted,
    flips: () => flipped,
    bytes: () => ({ ...counts }),
    stop: () => (stopping ??= closeAll(server, sockets)),
  };
}
