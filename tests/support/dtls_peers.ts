/**
 * DTLS peers for the tests: `openssl s_server -dtls1_2` / `s_client -dtls1_2` and `gnutls-serv
 * --udp` / `gnutls-cli --udp` as child processes on UDP ports of 127.0.0.1, and a lossy UDP proxy
 * (seeded drops, duplicates and reordering). The TCP peers' readiness check (`peer_process.ts`
 * looks for a listening TCP socket) does not apply to UDP: these wait for the peer's own
 * "listening" line instead.
 *
 * @example
 * ```ts
 * import { startDtlsServer } from "./dtls_peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using peer = await startDtlsServer("openssl", ["-cert", pki.server.certPath, "-key", pki.server.keyPath]);
 * console.log(peer.port);
 * ```
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { captureOutput, type ChildOutput, trackChild, waitForOutput } from "./children.ts";
import { prng } from "./fuzz.ts";

/**
 * A UDP port that was free on 127.0.0.1 a moment ago.
 *
 * @example
 * ```ts
 * import { freeUdpPort } from "./dtls_peers.ts";
 * console.log(await freeUdpPort() > 0);
 * ```
 */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * A DTLS peer process (server or client).
 *
 * @example
 * ```ts
 * import type { DtlsPeer } from "./dtls_peers.ts";
 * const show = (peer: DtlsPeer) => console.log(peer.port, peer.output());
 * console.log(typeof show);
 * ```
 */
export interface DtlsPeer {
  /** The UDP port (servers: theirs; clients: the one they connect to). */
  readonly port: number;
  /** The child process. */
  readonly process: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Writes to its stdin. */
  send(text: string): void;
  /** Waits until its output matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves when it has exited. */
  readonly exited: Promise<number | null>;
  /** Kills it (SIGTERM) and waits. Idempotent. */
  stop(): Promise<void>;
  /** Same as {@link stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

function startPeer(command: string, args: string[], port: number): DtlsPeer {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
  const untrack = trackChild(child);
  const output: ChildOutput = captureOutput(child);
  let over = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      over = true;
      untrack();
      output.changed();
      resolve(code);
    });
    child.once("error", (error) => {
      over = true;
      output.appendError(`spawn error: ${error.message}`);
      untrack();
      output.changed();
      resolve(null);
    });
  });
  const stop = async () => {
    if (!over) child.kill("SIGTERM");
    await exited;
  };
  return {
    port,
    process: child,
    output: () => output.output(),
    send: (text) => void child.stdin?.write(text),
    waitFor: (pattern, timeoutMs = 10_000) =>
      waitForOutput(output, pattern, {
        timeoutMs,
        isOver: () => over,
        describe: () => `${command} ${args.join(" ")}\n${output.output()}`,
      }),
    exited,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Starts `openssl s_server -dtls1_2` or `gnutls-serv --udp` on a free UDP port of 127.0.0.1 with
 * `args` added, and resolves once it listens. s_server's stdin stays open (it quits at EOF).
 *
 * @example
 * ```ts
 * import { startDtlsServer } from "./dtls_peers.ts";
 * await using peer = await startDtlsServer("gnutls", ["--echo", "--pskpasswd", "/tmp/psk.txt"]);
 * console.log(peer.port);
 * ```
 */
export async function startDtlsServer(
  kind: "openssl" | "gnutls",
  args: string[],
): Promise<DtlsPeer> {
  const port = await freeUdpPort();
  const peer = kind === "openssl"
    ? startPeer("openssl", ["s_server", "-dtls1_2", "-accept", `127.0.0.1:${port}`, ...args], port)
    : startPeer("gnutls-serv", ["--udp", "-p", String(port), ...args], port);
  try {
    await peer.waitFor(kind === "openssl" ? /^ACCEPT/m : /listening on IPv4/);
  } catch (error) {
    await peer.stop();
    throw error;
  }
  return peer;
}

/**
 * `openssl s_server`'s arguments for the test PKI's server certificate, its key and the
 * intermediate CA as its chain (the client sees three certificates with the root).
 *
 * @example
 * ```ts
 * import { serverChainArgs, startDtlsServer } from "./dtls_peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * await using peer = await startDtlsServer("openssl", serverChainArgs(sharedTestPki()));
 * ```
 */
export function serverChainArgs(
  pki: { server: { certPath: string; keyPath: string }; intermediateCa: { certPath: string } },
): string[] {
  return [
    "-cert",
    pki.server.certPath,
    "-key",
    pki.server.keyPath,
    "-cert_chain",
    pki.intermediateCa.certPath,
  ];
}

/**
 * Starts `openssl s_client -dtls1_2` or `gnutls-cli --udp` against 127.0.0.1:`port`.
 *
 * @example
 * ```ts
 * import { startDtlsClient } from "./dtls_peers.ts";
 * await using client = startDtlsClient("openssl", 4433, ["-psk", "00ff", "-psk_identity", "a"]);
 * await client.waitFor(/CONNECTED/);
 * ```
 */
export function startDtlsClient(
  kind: "openssl" | "gnutls",
  port: number,
  args: string[],
): DtlsPeer {
  return kind === "openssl"
    ? startPeer("openssl", ["s_client", "-dtls1_2", "-connect", `127.0.0.1:${port}`, ...args], port)
    : startPeer("gnutls-cli", ["--udp", "-p", String(port), ...args, "127.0.0.1"], port);
}

/**
 * Options of {@link startLossyProxy}: fractions of the datagrams in each direction.
 *
 * @example
 * ```ts
 * import type { LossyProxyOptions } from "./dtls_peers.ts";
 * const options: LossyProxyOptions = { target: 4433, seed: 1, drop: 0.15, duplicate: 0.1, reorder: 0.1 };
 * console.log(options);
 * ```
 */
export interface LossyProxyOptions {
  /** The server's UDP port on 127.0.0.1. */
  target: number;
  /** The PRNG seed (the same seed makes the same decisions for the same traffic). */
  seed: number;
  /** Dropped. */
  drop: number;
  /** Sent twice. */
  duplicate: number;
  /** Held back and sent after the next datagram (or after 30 ms). */
  reorder: number;
}

/**
 * A UDP proxy on 127.0.0.1 for ONE client at a time: datagrams from the target go to the last
 * client seen; each datagram is dropped, duplicated or held back (reordered) at random (seeded).
 *
 * @example
 * ```ts
 * import { startLossyProxy } from "./dtls_peers.ts";
 * await using proxy = await startLossyProxy({ target: 4433, seed: 7, drop: 0.15, duplicate: 0.1, reorder: 0.1 });
 * console.log(proxy.port, proxy.stats);
 * ```
 */
export async function startLossyProxy(options: LossyProxyOptions): Promise<{
  port: number;
  stats: { forwarded: number; dropped: number; duplicated: number; reordered: number };
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const random = prng(options.seed);
  const socket = dgram.createSocket("udp4");
  const stats = { forwarded: 0, dropped: 0, duplicated: 0, reordered: 0 };
  let client: { address: string; port: number } | null = null;
  let held: { data: Uint8Array; to: { address: string; port: number } } | null = null;
  let heldTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const out = (data: Uint8Array, to: { address: string; port: number }) => {
    if (!closed) socket.send(data, to.port, to.address);
  };
  const releaseHeld = () => {
    clearTimeout(heldTimer);
    if (held !== null) out(held.data, held.to);
    held = null;
  };
  socket.on("message", (data: Uint8Array, rinfo: { address: string; port: number }) => {
    const fromTarget = rinfo.port === options.target;
    if (!fromTarget) client = { address: rinfo.address, port: rinfo.port };
    const to = fromTarget ? client : { address: "127.0.0.1", port: options.target };
    if (to === null) return;
    const r = random();
    if (r < options.drop) {
      stats.dropped++;
      return;
    }
    stats.forwarded++;
    if (r < options.drop + options.reorder && held === null) {
      stats.reordered++;
      held = { data, to };
      heldTimer = setTimeout(releaseHeld, 30);
      return;
    }
    out(data, to);
    if (r > 1 - options.duplicate) {
      stats.duplicated++;
      out(data, to);
    }
    releaseHeld();
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const close = async () => {
    if (closed) return;
    closed = true;
    clearTimeout(heldTimer);
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  };
  return { port: socket.address().port, stats, close, [Symbol.asyncDispose]: close };
}
