/**
 * In-process misbehaving TCP peers, on plain `node:net` sockets (which both runtimes implement
 * natively, not on top of the TLS library under test): servers that reset, hang up, answer in
 * HTTP or garbage ({@link startRawServer}), a proxy that drips or corrupts what a real peer sends
 * ({@link startTcpProxy}), and a client that does the same to our server
 * ({@link startRawClient}). No child processes: `stop()` (or `await using`) closes everything.
 *
 * @example
 * ```ts
 * import { startRawServer } from "./raw_peers.ts";
 * await using server = await startRawServer("reset");
 * // a TLS client connecting to 127.0.0.1:server.port must fail with a typed network error
 * console.log(server.connections());
 * ```
 * @module
 */

import { Buffer } from "node:buffer";
import net from "node:net";

// ---------------------------------------------------------------------------------------------
// Servers and proxies
// ---------------------------------------------------------------------------------------------

/**
 * What a {@link startRawServer} does with each connection.
 * - `"reset"`: abort with a TCP RST (`resetAndDestroy()`).
 * - `"eof"`: send FIN, nothing else.
 * - `"http"`: `HTTP/1.1 400 Bad Request` with a small body, then FIN.
 * - `"garbage"`: 1 KiB of random bytes after `ab ff` (never a record header), then FIN.
 * - `"hugeRecord"`: a handshake record header claiming 65,535 bytes (`16 03 03 ff ff`), then
 *   nothing; the connection stays open.
 * - `"alertFirst"`: a fatal `handshake_failure` alert record (`15 03 03 00 02 02 28`), then FIN.
 * - `"silent"`: never writes, never closes (until `stop()`): for handshake timeouts.
 * - `{ write, then }`: writes these bytes, then `"end"` (FIN, the default), `"hold"` (stay
 *   open), or `"reset"` (RST). For truncated handshakes, data before the handshake, etc.
 *
 * @example
 * ```ts
 * import type { RawBehaviour } from "./raw_peers.ts";
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
 * import type { RawServerOptions } from "./raw_peers.ts";
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
 * import { type RawServer, startRawServer } from "./raw_peers.ts";
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
  /** The same as {@link RawServer.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
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
      // Random bytes, but never starting like a TLS record: no content type (20-24), and no
      // major version 3 either. With a random 3 there (1 in 256), OpenSSL took the header for a
      // record's and, for a random length of 1 KiB to 18 KiB, waited for the rest: the FIN then
      // made it a truncation (UNEXPECTED_EOF), a rare failure of this test on any version.
      const bytes = randomBytes(1024);
      bytes[0] = 0xab;
      bytes[1] = 0xff;
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

/**
 * `stop()` for a server of this module: closes `server` and every socket in `sockets`, once
 * (later calls return the same promise); also as `[Symbol.asyncDispose]`.
 */
function stopper(
  server: net.Server,
  sockets: Set<net.Socket>,
): { stop(): Promise<void>; [Symbol.asyncDispose](): Promise<void> } {
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= closeAll(server, sockets));
  return { stop, [Symbol.asyncDispose]: stop };
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
 * import { startRawServer } from "./raw_peers.ts";
 * await using server = await startRawServer("alertFirst");
 * // ... a TLS client connecting to 127.0.0.1:server.port must fail with handshake_failure
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

  return {
    port,
    connections: () => accepted,
    // A plain Uint8Array, not a Buffer: tests compare it with assert.deepEqual (strict).
    received: () => new Uint8Array(Buffer.concat(chunks)),
    ...stopper(server, sockets),
  };
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
 * import type { ProxyMode } from "./raw_peers.ts";
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
 * import type { TcpProxyOptions } from "./raw_peers.ts";
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
 * import { startTcpProxy, type TcpProxy } from "./raw_peers.ts";
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
  /** The same as {@link TcpProxy.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts an in-process TCP proxy on 127.0.0.1 that forwards every connection to
 * `targetHost:targetPort`, applying `mode` to the server-to-client stream (see `direction`).
 * Half-closes are forwarded (FIN after the last byte), so close_notify + EOF ordering survives;
 * an error or reset on one leg destroys the other.
 *
 * @example
 * ```ts
 * import { startOpensslServer } from "./openssl_peer.ts";
 * import { startTcpProxy } from "./raw_peers.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using server = await startOpensslServer({
 *   cert: pki.server.certPath, key: pki.server.keyPath, chain: pki.intermediateCa.certPath,
 * });
 * await using proxy = await startTcpProxy(server.port, "drip");
 * // ... a TLS client connecting to 127.0.0.1:proxy.port must still complete its handshake
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

  return {
    port,
    connections: () => accepted,
    flips: () => flipped,
    bytes: () => ({ ...counts }),
    ...stopper(server, sockets),
  };
}

// ---------------------------------------------------------------------------------------------
// In-process misbehaving clients
// ---------------------------------------------------------------------------------------------

/**
 * What a {@link startRawClient} does once connected.
 * - `"silent"`: nothing (holds the connection open until the server closes it or `stop()`).
 * - `"garbage"`: 1 KiB of random bytes after `ab ff 00`: never a TLS record header, nor an
 *   SSLv2-style ClientHello (OpenSSL reports "wrong version number" at once).
 * - `"http"`: a plain `GET / HTTP/1.1` request.
 * - `"reset"`: a TCP RST at once (`resetAndDestroy()`).
 *
 * @example
 * ```ts
 * import type { RawClientBehaviour } from "./raw_peers.ts";
 * const b: RawClientBehaviour = "garbage";
 * console.log(b);
 * ```
 */
export type RawClientBehaviour = "silent" | "garbage" | "http" | "reset";

/**
 * A raw TCP client started by {@link startRawClient}.
 *
 * @example
 * ```ts
 * import type { RawClient } from "./raw_peers.ts";
 * const show = (c: RawClient) => c.received().length;
 * console.log(show);
 * ```
 */
export interface RawClient {
  /** Everything the server sent (e.g. a TLS alert record). */
  received(): Uint8Array;
  /** Resolves when the socket is fully closed (by the server, or by `stop()`). */
  closed: Promise<void>;
  /** Whether the server closed the connection (FIN or RST) before `stop()`. */
  closedByServer(): boolean;
  /** Destroys the socket and waits for it to close. Idempotent. */
  stop(): Promise<void>;
  /** The same as {@link RawClient.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Connects a plain `node:net` socket to 127.0.0.1:`port` and misbehaves as `behaviour` says.
 * Resolves once connected (and the misbehaviour was sent).
 *
 * @example
 * ```ts
 * import { startRawClient } from "./raw_peers.ts";
 * await using c = await startRawClient(8443, "http");
 * await c.closed; // the server drops it after its alert
 * console.log(c.received()); // 15 03 03 00 02 02 ...: a fatal alert record
 * ```
 */
export function startRawClient(port: number, behaviour: RawClientBehaviour): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Uint8Array[] = [];
    let stopping = false;
    let byServer = false;
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.on("data", (d: Uint8Array) => chunks.push(new Uint8Array(d)));
    socket.on("end", () => {
      if (!stopping) byServer = true;
      socket.end();
    });
    socket.on("close", () => {
      if (!stopping) byServer = true;
    });
    socket.once("error", (error) => {
      if (!connected) reject(error);
    });
    socket.on("error", () => {}); // ECONNRESET from the server is an expected outcome
    let connected = false;
    socket.once("connect", () => {
      connected = true;
      if (behaviour === "garbage") {
        const bytes = randomBytes(1024);
        // Never a TLS record (content types 20-24), and never what OpenSSL takes for an SSLv2
        // ClientHello (high bit set and byte 2 == 1: it would then wait for ~11 KB more).
        bytes[0] = 0xab;
        bytes[1] = 0xff;
        bytes[2] = 0x00;
        socket.write(bytes);
      } else if (behaviour === "http") {
        socket.write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      } else if (behaviour === "reset") {
        stopping = true;
        socket.resetAndDestroy();
      }
      const stop = async (): Promise<void> => {
        stopping = true;
        socket.destroy();
        await closed;
      };
      resolve({
        received: () => Buffer.concat(chunks),
        closed,
        closedByServer: () => byServer,
        stop,
        [Symbol.asyncDispose]: stop,
      });
    });
  });
}
