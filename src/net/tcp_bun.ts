/**
 * TCP on Bun through its native sockets, `Bun.connect` and `Bun.listen`: the only file that
 * touches `Bun.*`. On Bun 1.4.5 it beats `node:net` (~1.2x the 1 KiB round trips through
 * `connect()`, 14% less memory per idle connection; see `tcp_node.ts`).
 *
 * Bun facts this relies on (checked on Bun 1.4.5; `tests/tcp_test.ts` re-checks the buffer
 * promises, which the connection's copy-free paths depend on, and the backpressure):
 * - Handlers are given per `connect()` / `listen()` call and shared by its sockets; a socket's
 *   own state is its `socket.data` (here: its {@link BunTcpStream}).
 * - Each `data` callback gets a fresh buffer: Bun copies the bytes out of its one receive buffer
 *   (up to 512 KiB a time) into a new ArrayBuffer that it never touches again. Chunks are handed
 *   on uncopied, and `chunksStayIntact` holds.
 * - `socket.write(bytes)` is one `send()`: it returns how many bytes the kernel took (-1 once the
 *   socket is closed or shut down) and neither copies nor keeps the rest, which goes when the
 *   `drain` handler runs. Nothing references the bytes once a write resolved: `releasesWrites`.
 * - `pause()` / `resume()` stop and restart reading from the kernel (no `data` callbacks while
 *   paused): unread data is bounded (`pushed_stream.ts`).
 * - A reset is the `close` handler's error (`code` "ECONNRESET"); `error` is not called. A failed
 *   connect rejects with "Failed to connect" and `code` "ECONNREFUSED" for every errno but
 *   ENOENT (an unreachable network too); rewritten here as node's `connect ECONNREFUSED h:p`.
 * - Without `allowHalfOpen` Bun closes a socket when the peer's FIN arrives; with it the FIN is
 *   the `end` handler and this side can still write (as on Deno). A socket that sent its own FIN
 *   first gets `close` only: both are the end of the stream.
 *
 * Bun's types are declared here (only what is used), so that `deno check` and the Node.js build
 * type-check this file too.
 *
 * @module
 */
import type {
  ByteStream,
  NetAddr,
  TcpConnectOptions,
  TcpListener,
  TcpListenOptions,
} from "./stream.ts";
import { socketAddresses } from "./address.ts";
import { PushedStream } from "./pushed_stream.ts";

/** The `Bun.connect` / `Bun.listen` socket members used here. */
interface BunSocket {
  data: unknown;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  write(data: Uint8Array): number;
  shutdown(): void;
  close(): void;
  /** Called only if there (an older Bun may lack them: unread data is then unbounded). */
  pause?(): void;
  resume?(): void;
  ref(): void;
  unref(): void;
  setNoDelay(noDelay: boolean): boolean;
  setKeepAlive(keepAlive: boolean): boolean;
}

/** A socket event handler; what it returns is ignored. */
type On<T extends unknown[] = []> = (socket: BunSocket, ...args: T) => unknown;

/** The options given to `Bun.connect` and `Bun.listen`, `socket` being the handlers. */
interface BunSocketOptions {
  hostname: string;
  port: number;
  allowHalfOpen: true;
  binaryType: "uint8array";
  socket: BunHandlers;
}

/** The socket handlers (`Bun.SocketHandler`). */
interface BunHandlers {
  open?: On;
  data: On<[Uint8Array]>;
  drain: On;
  end: On;
  close: On<[Error | undefined]>;
  error: On<[Error]>;
}

/** The part of the `Bun` global used here: `connect`, and `listen` giving a listener. */
interface BunApi {
  connect(options: BunSocketOptions): Promise<BunSocket>;
  listen(options: BunSocketOptions): {
    readonly port: number;
    getsockname?(out: { address?: string; port?: number }): void;
    stop(closeActiveConnections?: boolean): void;
  };
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

const RESOLVED = Promise.resolve();

/** A write waiting for the kernel to take `data`; `null`: the FIN of closeWrite(). */
interface Writer {
  data: Uint8Array | null;
  resolve(): void;
  reject(error: unknown): void;
}

/** A TCP connection over a Bun socket: pull-based reads over Bun's pushed `data` callbacks. */
class BunTcpStream<A extends NetAddr | null> extends PushedStream implements ByteStream<A> {
  #socket: BunSocket;
  #writers: Writer[] = [];
  readonly localAddr: A;
  readonly remoteAddr: A;
  /** Bun never keeps what `socket.write` did not take: once a write resolved, it holds nothing. */
  readonly releasesWrites = true;
  /** Each `data` callback's buffer is a fresh copy that Bun never writes to again. */
  readonly chunksStayIntact = true;

  /**
   * @internal The handlers every socket shares: each passes the event to the socket's stream
   * (none for a connection the listener shed). `error` is what Bun calls for a throw in a handler
   * and for socket errors it does not report through `close`.
   */
  static readonly handlers: BunHandlers = {
    data: (s, chunk) => s.data instanceof BunTcpStream && s.data.pushed(chunk),
    drain: (s) => s.data instanceof BunTcpStream && s.data.#flush(),
    end: (s) => s.data instanceof BunTcpStream && s.data.#onEnd(null),
    close: (s, error) => s.data instanceof BunTcpStream && s.data.#onEnd(error),
    error: (s, error) => s.data instanceof BunTcpStream && s.data.#onEnd(error),
  };

  constructor(socket: BunSocket, addresses: { local: A; remote: A }) {
    super(socket);
    this.#socket = socket;
    this.localAddr = addresses.local;
    this.remoteAddr = addresses.remote;
    socket.data = this;
    // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
    socket.setNoDelay(true);
  }

  /** The peer's FIN (`error` null), the socket closed (`undefined`: cleanly), or its failure. */
  #onEnd(error: Error | null | undefined): void {
    if (error !== null) {
      if (error !== undefined) this.fail(error);
      this.#failWrites(); // the socket is gone: what was not written never will be
    }
    this.ended();
  }

  /** Fails every write still waiting (the socket is gone, or will not take more). */
  #failWrites(): void {
    for (const writer of this.#writers.splice(0)) writer.reject(this.#writeError());
  }

  /** What a write fails with: close() was called, the socket's failure, else node's EPIPE. */
  #writeError(): Error {
    if (this.closed) return new Error("the stream is closed");
    return this.failure ??
      Object.assign(new Error("write EPIPE: the connection is closed"), { code: "EPIPE" });
  }

  /** Resolves once the kernel took all of `data`: Bun holds no reference to it then. */
  write(data: Uint8Array): Promise<void> {
    if (this.closed || this.failure !== null) return Promise.reject(this.#writeError());
    if (this.#writers.length === 0) {
      // The common case: the kernel takes it all at once.
      const n = this.#socket.write(data);
      if (n === data.length) return RESOLVED;
      if (n < 0) return Promise.reject(this.#writeError()); // closed or shut down
      data = data.subarray(n);
    }
    // After the writes before it; the rest goes out from the drain handler.
    return new Promise((resolve, reject) => this.#writers.push({ data, resolve, reject }));
  }

  /** Sends the FIN (`shutdown()`) once the writes before it are out. */
  closeWrite(): Promise<void> {
    if (this.closed || this.failure !== null) return Promise.reject(this.#writeError());
    return new Promise((resolve, reject) => {
      this.#writers.push({ data: null, resolve, reject });
      if (this.#writers.length === 1) this.#flush(); // else after the writes still waiting
    });
  }

  /** Writes what waits, in order, as far as the kernel takes it (the `drain` handler). */
  #flush(): void {
    for (let writer = this.#writers[0]; writer !== undefined; writer = this.#writers[0]) {
      if (writer.data === null) {
        this.#socket.shutdown(); // the kernel sends the FIN after the bytes it holds
      } else {
        const n = this.#socket.write(writer.data);
        if (n < 0) return this.#failWrites(); // closed (the close handler follows) or shut down
        if (n < writer.data.length) {
          writer.data = writer.data.subarray(n); // the rest at the next drain
          return;
        }
      }
      this.#writers.shift();
      writer.resolve();
    }
  }

  /** The open socket keeps the process alive. */
  ref(): void {
    this.#socket.ref();
  }

  /** The open socket does not keep the process alive. */
  unref(): void {
    this.#socket.unref();
  }

  /** Sets or clears TCP_NODELAY. */
  setNoDelay(noDelay: boolean): void {
    this.#socket.setNoDelay(noDelay);
  }

  /** TCP keep-alive probes on or off, with the system's timings. */
  setKeepAlive(keepAlive: boolean): void {
    this.#socket.setKeepAlive(keepAlive);
  }

  /** Closes the socket (not a reset) and fails pending reads and writes. Idempotent. */
  close(): void {
    if (!this.closeInput()) return;
    // Runs the close handler at once (pending writes fail there); a no-op on a closed socket.
    this.#socket.close();
    this.#onEnd(undefined);
  }
}

/**
 * Bun's failed connect says only "Failed to connect": given node's message instead
 * (`connect ECONNREFUSED 127.0.0.1:1`), with Bun's error as the cause and its `code`.
 */
function connectError(error: unknown, options: TcpConnectOptions): unknown {
  const e = error as { code?: unknown; errno?: unknown; syscall?: unknown; message?: unknown };
  if (typeof e?.code !== "string" || String(e.message).includes(e.code)) return error;
  const target = `${options.hostname}:${options.port}`;
  const message = `${e.syscall ?? "connect"} ${e.code} ${target}`;
  return Object.assign(new Error(message, { cause: error }), { code: e.code, errno: e.errno });
}

/**
 * The handlers of connecting sockets. The stream is made in `open`, which runs before the
 * promise of `Bun.connect` settles and before any `data` callback: bytes that arrive before
 * connectTcp() returns are kept, not dropped.
 */
const CONNECT_HANDLERS: BunHandlers = {
  ...BunTcpStream.handlers,
  open(socket) {
    const addresses = socketAddresses(socket);
    socket.data = addresses === null ? null : new BunTcpStream(socket, addresses);
  },
};

/** Opens a TCP connection with TCP_NODELAY set. */
export async function connectTcp(options: TcpConnectOptions): Promise<ByteStream<NetAddr>> {
  let socket: BunSocket;
  try {
    socket = await Bun.connect({
      hostname: options.hostname,
      port: options.port,
      allowHalfOpen: true,
      binaryType: "uint8array",
      socket: CONNECT_HANDLERS,
    });
  } catch (error) {
    throw connectError(error, options);
  }
  const stream = socket.data as BunTcpStream<NetAddr> | null;
  if (stream === null) {
    socket.close();
    throw new Error("the connection was reset by the peer as soon as it was made");
  }
  return stream;
}

/** A `Bun.listen` listener, pull-based: Bun pushes connections, accept() takes them in order. */
class BunTcpListener implements TcpListener {
  #listener: ReturnType<BunApi["listen"]>;
  #queue: ByteStream<NetAddr | null>[] = [];
  #waiter: (() => void) | null = null;
  #closed = false;
  readonly addr: NetAddr;

  constructor({ hostname, port, maxQueued }: TcpListenOptions) {
    const open = (socket: BunSocket) => {
      if (this.#closed || this.#queue.length >= maxQueued) {
        socket.close(); // Bun pushes connections at us and cannot pause accepting: shed them
        return;
      }
      // A client already gone has no addresses: passed on, so that it is reported.
      const addresses = socketAddresses(socket) ?? { local: null, remote: null };
      this.#queue.push(new BunTcpStream(socket, addresses)); // takes its data from now on
      this.#wake();
    };
    const socket = { ...BunTcpStream.handlers, open };
    try {
      // Binds synchronously, and throws (EADDRINUSE, EADDRNOTAVAIL, EACCES) when it cannot.
      this.#listener = Bun.listen({
        hostname,
        port,
        allowHalfOpen: true,
        binaryType: "uint8array",
        socket,
      });
    } catch (error) {
      throw new Error(
        `cannot bind ${hostname}:${port}: the address is in use or not available to this ` +
          "process (EADDRINUSE / EADDRNOTAVAIL / EACCES)",
        { cause: error },
      );
    }
    // The bound address ("::", "0.0.0.0", the one "localhost" resolved to), not the name given.
    const bound: { address?: string; port?: number } = {};
    this.#listener.getsockname?.(bound);
    const boundPort = bound.port ?? this.#listener.port;
    this.addr = { transport: "tcp", hostname: bound.address ?? hostname, port: boundPort };
  }

  /** Wakes the accept() waiting, if any. */
  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /** The next connection Bun accepted, or `null` once closed. */
  async accept(): Promise<ByteStream<NetAddr | null> | null> {
    for (;;) {
      if (this.#closed) return null;
      const next = this.#queue.shift();
      if (next !== undefined) return next;
      // Bun reports no accept errors (it retries, or drops the connection, natively).
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  /** Stops listening, and closes the connections not taken yet. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const stream of this.#queue.splice(0)) stream.close();
    this.#listener.stop(false); // connections already accepted stay open
    this.#wake();
  }
}

/** Listens on a TCP port; bound before it returns (a failure is thrown at once). */
export function listenTcp(options: TcpListenOptions): TcpListener {
  return new BunTcpListener(options);
}
