/**
 * TCP through `node:net`: used on Node.js. Adapts node's pushed reads to pull-based reads, with
 * backpressure (the socket is paused while unread data exceeds a high-water mark): a client socket
 * reads through `onread` into one shared buffer, copied straight into the reader's buffer
 * ({@link NodeClientTcpStream}); an accepted one through its 'data' events.
 *
 * It works on Bun too, and was used there until `tcp_bun.ts`, which is faster there: measured on
 * Bun 1.4.5 (2 shared cores, against the native C server, medians of 12 interleaved runs),
 * `Bun.connect` gives 1.24x the 1 KiB round trips through `connect()` (node:net costs ~4-8 us
 * per round trip, depending on load), 1.05x the sequential handshakes, 14% less memory per idle
 * connection (39 vs 46 KB), and the same bulk throughput, client and server side.
 *
 * @module
 */
import net from "node:net";
import type {
  ByteStream,
  NetAddr,
  ReadBuffers,
  TcpConnectOptions,
  TcpListener,
  TcpListenOptions,
} from "./stream.ts";
import { socketAddresses } from "./address.ts";
import { PushedStream } from "./pushed_stream.ts";

/**
 * Writes of at least this size are released (see `ByteStream.releasesWrites`) once flushed: bulk
 * sends then reuse one buffer instead of a fresh ArrayBuffer per 256 KiB, whose pages may be
 * mapped fresh each time (measured on Bun, when it used this file: half of a server's bulk-send
 * CPU was the kernel zeroing them).
 */
const RELEASE_AFTER_FLUSH = 64 * 1024;

/**
 * node:net's read buffer for every client socket of the process (`onread`, see
 * {@link NodeClientTcpStream}). One is enough: node:net reads into it and calls back at once,
 * and the callback copies the bytes out before it returns.
 */
const ONREAD_BUFFER = new Uint8Array(64 * 1024);

/** A TCP connection over a node:net socket: pull-based reads over its 'data' events. */
class NodeTcpStream<A extends NetAddr | null> extends PushedStream implements ByteStream<A> {
  #socket: net.Socket;
  readonly localAddr: A;
  readonly remoteAddr: A;
  readonly releasesWrites = RELEASE_AFTER_FLUSH;
  /** node:net hands out a fresh Buffer per 'data' event and never writes to it again. */
  readonly chunksStayIntact = true;

  constructor(socket: net.Socket, addresses: { local: A; remote: A }) {
    super(socket);
    this.#socket = socket;
    this.localAddr = addresses.local;
    this.remoteAddr = addresses.remote;
    // A socket made with `onread` gets its data there, never as 'data' events; the listener
    // still keeps it flowing, which is what makes node:net report the end as 'end'.
    socket.on("data", (chunk: Uint8Array) => this.pushed(chunk));
    socket.on("end", () => this.ended());
    socket.on("error", (error) => {
      this.fail(error);
      this.ended();
    });
    socket.on("close", () => this.ended());
  }

  write(data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the stream is closed"));
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      // Large writes resolve only once node:net has flushed them (its callback), so that the
      // caller may reuse the buffer (see releasesWrites); small ones as soon as they are queued,
      // which keeps round trips fast.
      const waitForFlush = data.length >= RELEASE_AFTER_FLUSH;
      const queued = this.#socket.write(data, (error) => {
        if (!error) {
          if (waitForFlush || !queued) resolve();
        } else if ((error as { code?: unknown }).code === "ECANCELED") {
          // A reset destroys the socket, and node:net cancels the writes still queued with
          // ECANCELED; the reset itself comes as the 'error' event, a tick later. Report the
          // reset (what the connection recognises), or the cancel if there was none.
          setImmediate(() => reject(this.failure ?? error));
        } else {
          reject(error);
        }
      });
      if (queued && !waitForFlush) resolve();
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  ref(): void {
    this.#socket.ref();
  }

  unref(): void {
    this.#socket.unref();
  }

  setNoDelay(noDelay: boolean): void {
    this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    this.#socket.setKeepAlive(keepAlive);
  }

  close(): void {
    if (!this.closeInput()) return;
    this.#socket.destroy();
    this.ended();
  }
}

/**
 * A client socket made with node:net's `onread` option: node:net reads into one buffer
 * ({@link ONREAD_BUFFER}) and passes each read to a callback, instead of allocating a 64 KiB
 * Buffer per read and emitting it through its stream machinery. The callback copies the bytes
 * straight into the buffer of the read that waits (`readLazily`, the connection's own read
 * buffers, which it may lend to OpenSSL). Measured on Node 24 and 26 against the native server
 * (3 interleaved runs each): receiving 1 GiB took 35-45% less client CPU (1.12-1.41 -> 0.71-0.86
 * s) at 1.2-1.5x the throughput, and 1 KiB round trips went 3-12% faster. `net.Server` has no such
 * option: accepted sockets keep the 'data' events.
 */
class NodeClientTcpStream<A extends NetAddr | null> extends NodeTcpStream<A> {
  /** A read of node:net's, in {@link ONREAD_BUFFER} until this returns. */
  onRead(view: Uint8Array): void {
    this.pushedView(view);
  }

  readLazily(buffers: ReadBuffers): Promise<number | null> {
    return this.readCopied(buffers);
  }
}

/** Opens a TCP connection with TCP_NODELAY set. */
export function connectTcp(options: TcpConnectOptions): Promise<ByteStream<NetAddr>> {
  return new Promise((resolve, reject) => {
    let stream: NodeClientTcpStream<NetAddr> | undefined;
    const socket = net.connect({
      host: options.hostname,
      port: options.port,
      onread: {
        buffer: ONREAD_BUFFER,
        // Reading starts once connected, when the stream exists. True: go on reading (the
        // stream pauses the socket itself when too much is unread).
        callback: (n: number, buffer: Uint8Array) => {
          stream?.onRead(buffer.subarray(0, n));
          return true;
        },
      },
    });
    const onError = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      const addresses = socketAddresses(socket);
      if (addresses === null) {
        // Reset before we asked for the addresses: report the reset node:net is about to emit.
        socket.once("error", onError);
        socket.once("close", () => {
          reject(new Error("the connection was reset by the peer as soon as it was made"));
        });
        return;
      }
      // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
      socket.setNoDelay(true);
      stream = new NodeClientTcpStream(socket, addresses);
      resolve(stream);
    });
  });
}

/** `net.Server`'s binding step, which `listen()` runs (see {@link bind}). */
type Listen2 = (
  address: string,
  port: number,
  addressType: number,
  backlog: number,
  fd: undefined,
  flags: number,
) => void;

/**
 * Binds `server` to `hostname:port`, synchronously where the runtime allows, so that `addr` (and
 * the port picked for port 0) is known when `listen()` returns. A failure arrives as an 'error'
 * event a tick later everywhere.
 *
 * - Bun binds synchronously in `listen()` itself.
 * - Node.js's `listen()` resolves the host with `dns.lookup` first (a tick later even for an IP
 *   literal) and binds in its callback, through `server._listen2()`. That method is internal but
 *   kept under this name on purpose ("to avoid breaking code that wraps this method", lib/net.js;
 *   Node.js 22 to 26): for an IP literal we call it directly, as `listen()` would, minus the
 *   lookup. A host name still goes through `listen()` (bound a tick later).
 */
function bind(server: net.Server, hostname: string, port: number): boolean {
  const family = net.isIP(hostname);
  const listen2 = (server as unknown as { _listen2?: Listen2 })._listen2;
  if (!("Bun" in globalThis) && family !== 0 && typeof listen2 === "function") {
    // Node's defaults: backlog 511, no fd, no flags (dual-stack on "::", as listen() gives).
    listen2.call(server, hostname, port, family, 511, undefined, 0);
    return true;
  }
  server.listen({ host: hostname, port });
  return "Bun" in globalThis;
}

class NodeTcpListener implements TcpListener {
  #server: net.Server;
  #queue: ByteStream<NetAddr | null>[] = [];
  #waiter: (() => void) | null = null;
  #error: Error | null = null;
  #closed = false;
  #maxQueued: number;

  constructor(options: TcpListenOptions) {
    this.#maxQueued = options.maxQueued;
    this.#server = net.createServer((socket) => {
      if (this.#closed || this.#queue.length >= this.#maxQueued) {
        // node:net pushes connections at us and cannot pause accepting: shed the excess.
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      // A client already gone has no addresses any more: passed on, so that it is reported.
      const addresses = socketAddresses(socket) ?? { local: null, remote: null };
      this.#queue.push(new NodeTcpStream(socket, addresses)); // listens for data from now on
      this.#wake();
    });
    this.#server.on("error", (error) => {
      this.#error ??= error;
      this.#wake();
    });
    const synchronous = bind(this.#server, options.hostname, options.port);
    if (synchronous && this.#server.address() === null) {
      // The bind failed; node:net says why only in an 'error' event a tick later (handled above,
      // so never uncaught). Failing now gives listen() one behaviour on every runtime, as
      // Deno.listen throws at once.
      this.#closed = true;
      this.#server.close();
      throw new Error(
        `cannot bind ${options.hostname}:${options.port}: the address is in use or not ` +
          "available to this process (EADDRINUSE / EADDRNOTAVAIL / EACCES)",
      );
    }
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  get addr(): NetAddr {
    const a = this.#server.address();
    if (a === null || typeof a === "string") {
      throw this.#error ?? new Error("the listener is not bound (yet)");
    }
    return { transport: "tcp", hostname: a.address, port: a.port };
  }

  async accept(): Promise<ByteStream<NetAddr | null> | null> {
    for (;;) {
      if (this.#closed) return null;
      const next = this.#queue.shift();
      if (next !== undefined) return next;
      const error = this.#error;
      if (error !== null) {
        // Once bound, an error (e.g. EMFILE on one accept) is reported once, not forever.
        if (this.#server.listening) this.#error = null;
        throw error;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const stream of this.#queue.splice(0)) stream.close();
    this.#server.close();
    this.#wake();
  }
}

/**
 * Listens on a TCP port. On Bun, and on Node.js for an IP address, the port is bound before this
 * returns.
 */
export function listenTcp(options: TcpListenOptions): TcpListener {
  return new NodeTcpListener(options);
}
