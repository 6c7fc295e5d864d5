/**
 * Independent probes for checking the test support itself (the peers in `*_peer_test.ts`,
 * `raw_peers_test.ts`, `peer_process_test.ts`; the OCSP fixtures in `ocsp_test.ts`): the
 * `openssl` CLI (`s_client` and the rest), and `node:tls` / `node:net` clients in this process
 * (fine for checking a peer; both runtimes ship them). Everything trusts the shared test PKI's
 * root and sends SNI `localhost`.
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./openssl_peer.ts";
 * import { assertStopped, pki, runOpenssl, sClient } from "./probes.ts";
 * const server = await startOpensslServer({ cert: pki.server.certPath, key: pki.server.keyPath,
 *   chain: pki.intermediateCa.certPath });
 * try {
 *   console.log((await runOpenssl(sClient(server.port))).output);
 * } finally {
 *   await assertStopped(server);
 * }
 * ```
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import tls from "node:tls";
import { canConnect, type PeerProcess } from "./peer_process.ts";
import { sharedTestPki, type TestPki } from "./pki.ts";

/** The test PKI the peers are started with: its root is what the probes trust. */
export const pki: TestPki = sharedTestPki();
const rootCa = readFileSync(pki.rootCaPath, "utf8");

/**
 * The test PKI's server for `startOpensslServer`: its leaf, its key, and the intermediate as
 * the chain it sends.
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./openssl_peer.ts";
 * import { assertStopped, serverFiles } from "./probes.ts";
 * await assertStopped(await startOpensslServer({ ...serverFiles, tls: "1.3" }));
 * ```
 */
export const serverFiles = {
  cert: pki.server.certPath,
  key: pki.server.keyPath,
  chain: pki.intermediateCa.certPath,
};

/** How an `openssl` run ended, and everything it printed. */
export interface RunResult {
  /** Its exit code (`null` when killed). */
  status: number | null;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
  /** stdout and stderr, interleaved in arrival order. */
  output: string;
}

/**
 * Runs `openssl args` asynchronously (in-process peers must keep running), stdin from `input`;
 * rejects if it is still running after `timeoutMs`.
 *
 * @example
 * ```ts
 * import { runOpenssl, sClient } from "./probes.ts";
 * const r = await runOpenssl(sClient(4433, "-tls1_3"));
 * console.log(r.status, r.output);
 * ```
 */
export function runOpenssl(args: string[], input?: string, timeoutMs = 8_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("openssl", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let output = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => ((stdout += chunk), (output += chunk)));
    child.stderr.on("data", (chunk: string) => ((stderr += chunk), (output += chunk)));
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`openssl ${args.join(" ")} timed out; output:\n${output}`));
    }, timeoutMs);
    child.once("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, output });
    });
  });
}

/**
 * `s_client` arguments that send the test PKI's client certificate, with the intermediate as
 * its chain (the server trusts the root only).
 *
 * @example
 * ```ts
 * import { clientCertArgs, runOpenssl, sClient } from "./probes.ts";
 * console.log((await runOpenssl(sClient(4433, ...clientCertArgs))).status);
 * ```
 */
export const clientCertArgs: readonly string[] = [
  "-cert",
  pki.client.certPath,
  "-cert_chain",
  pki.intermediateCa.certPath,
  "-key",
  pki.client.keyPath,
];

/**
 * `s_client` arguments for 127.0.0.1:port with SNI and host-name check `localhost`, trusting
 * the test root, `-brief`, then `extra`.
 *
 * @example
 * ```ts
 * import { sClient } from "./probes.ts";
 * console.log(sClient(4433, "-tls1_2").join(" "));
 * ```
 */
export function sClient(port: number, ...extra: string[]): string[] {
  return [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    pki.rootCaPath,
    "-servername",
    "localhost",
    "-verify_hostname",
    "localhost",
    "-brief",
    ...extra,
  ];
}

/** What {@link collect} saw on a socket. */
export interface Collected {
  /** Every byte received, concatenated. */
  data: Uint8Array;
  /** How many reads delivered them. */
  chunks: number;
  /** The first socket error, or `null`. */
  error: (Error & { code?: string }) | null;
  /** Whether the peer ended the stream (FIN) before we gave up. */
  ended: boolean;
}

/**
 * Collects everything `socket` delivers until it closes (or `settleMs` passes without close, then
 * destroys it). Resolves, never rejects: the error is part of the result.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { collect } from "./probes.ts";
 * const r = await collect(net.connect({ host: "127.0.0.1", port: 4433 }), 300);
 * console.log(r.data.length, r.ended, r.error);
 * ```
 */
export function collect(socket: net.Socket, settleMs = 5_000): Promise<Collected> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let error: Collected["error"] = null;
    let ended = false;
    let gaveUp = false;
    const timer = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, settleMs);
    socket.on("data", (chunk: Uint8Array) => chunks.push(new Uint8Array(chunk)));
    // Bun emits 'end' when WE destroy a socket that never received a FIN: ignore that one.
    socket.on("end", () => (ended ||= !gaveUp));
    socket.on("error", (e: Error) => (error ??= e));
    socket.on("close", () => {
      clearTimeout(timer);
      const data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const c of chunks) {
        data.set(c, offset);
        offset += c.length;
      }
      resolve({ data, chunks: chunks.length, error, ended });
    });
  });
}

/**
 * A `node:tls` client to 127.0.0.1:port, SNI localhost, trusting only the test root.
 *
 * @example
 * ```ts
 * import { secureConnected, tlsClient } from "./probes.ts";
 * const socket = tlsClient(4433, { ALPNProtocols: ["h2"] });
 * await secureConnected(socket);
 * socket.destroy();
 * ```
 */
export function tlsClient(port: number, options: tls.ConnectionOptions = {}): tls.TLSSocket {
  return tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: rootCa, ...options });
}

/**
 * Resolves once `socket`'s handshake is done; rejects on its first error.
 *
 * @example
 * ```ts
 * import { secureConnected, tlsClient } from "./probes.ts";
 * await secureConnected(tlsClient(4433));
 * ```
 */
export function secureConnected(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
}

/**
 * Resolves once `socket` has received `text` (as latin1), with everything received so far;
 * rejects after `timeoutMs`.
 *
 * @example
 * ```ts
 * import { receive, tlsClient } from "./probes.ts";
 * const socket = tlsClient(4433);
 * socket.write("hello\n");
 * await receive(socket, "olleh"); // s_server -rev
 * ```
 */
export function receive(socket: net.Socket, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => {
      socket.removeListener("data", onData);
      reject(new Error(`did not receive ${JSON.stringify(text)}; got ${JSON.stringify(seen)}`));
    }, timeoutMs);
    const onData = (chunk: Uint8Array): void => {
      seen += Buffer.from(chunk).toString("latin1");
      if (seen.includes(text)) {
        clearTimeout(timer);
        socket.removeListener("data", onData);
        resolve(seen);
      }
    };
    socket.on("data", onData);
  });
}

/**
 * `bytes` as latin1 text (one character per byte, whatever the bytes are).
 *
 * @example
 * ```ts
 * import { text } from "./probes.ts";
 * console.log(text(new Uint8Array([0x48, 0x69]))); // "Hi"
 * ```
 */
export const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

/**
 * Whether process `pid` still exists (signal 0).
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { isAlive } from "./probes.ts";
 * console.log(isAlive(process.pid)); // true
 * ```
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops `peer`, then asserts that the child is gone and its port refuses connections.
 *
 * @example
 * ```ts
 * import { startGnutlsServer } from "./gnutls_peer.ts";
 * import { assertStopped, pki } from "./probes.ts";
 * const server = await startGnutlsServer({ cert: pki.serverChainPath, key: pki.server.keyPath });
 * await assertStopped(server);
 * ```
 */
export async function assertStopped(peer: PeerProcess): Promise<void> {
  await peer.stop();
  assert.equal(isAlive(peer.pid), false, `pid ${peer.pid} still alive`);
  assert.equal(await canConnect(peer.port), false, `port ${peer.port} still accepts`);
}

/**
 * A new temporary directory; the caller removes it.
 *
 * @example
 * ```ts
 * import { rmSync } from "node:fs";
 * import { tempDir } from "./probes.ts";
 * const dir = tempDir();
 * rmSync(dir, { recursive: true, force: true });
 * ```
 */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "libssl-ffi-peers-"));
}
