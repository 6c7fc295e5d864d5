/**
 * TCP on Bun through its native socket API, `Bun.connect` and `Bun.listen`: the only file that
 * touches `Bun.*`. Measured against `node:net` on Bun 1.4.5 (2 cores, a native C peer): 1 KiB
 * round trips ~20% faster, as node:net's streams cost ~6 us per round trip there.
 *
 * Bun facts this relies on (each checked on Bun 1.4.5; `tests/tcp_bun_test.ts` re-checks the
 * ones the connection's copy-free paths depend on):
 * - Handlers are given once per `connect()` / `listen()` call and shared by its sockets; a
 *   socket's own state lives in `socket.data` (here: its {@link BunTcpStream}).
 * - Every `data` callback gets a fresh buffer: Bun copies the bytes out of its one receive
 *   buffer (up to 512 KiB) into a new ArrayBuffer and never touches it again. So the chunks are
 *   handed on without a copy, and `chunksStayIntact` holds.
 * - `socket.write(bytes)` is one `send()`: it returns how many bytes the kernel took (-1 once
 *   the socket is closed or shut down) and neither copies nor keeps the rest. The caller writes
 *   the rest when the `drain` handler runs, so nothing references the bytes once a write has
 *   resolved: `releasesWrites` is true.
 * - `pause()` / `resume()` stop and restart reading from the kernel (no `data` callbacks while
 *   paused; node:net on Bun goes on reading into its stream instead). Unread data is bounded by
 *   pausing above HIGH_WATER and resuming below half of it.
 * - A reset arrives as the `close` handler's error, with `code` "ECONNRESET"; `error` is not
 *   called. A failed connect rejects with `code` "ECONNREFUSED" for every errno but ENOENT (so
 *   also for an unreachable network) and the message "Failed to connect", which is rewritten
 *   here to node's `connect ECONNREFUSED host:port`.
 * - Without `allowHalfOpen` Bun closes a socket as soon as the peer's FIN arrives; with it the
 *   FIN is the `end` handler and this side can still write, as on Deno. A socket that already
 *   sent its own FIN gets no `end`, only `close`: both mean end of stream.
 *
 * `Bun`'s types are declared below (only what is used), so that `deno check` and the Node.js
 * build type-check this file too.
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

/** The `Bun.connect` / `Bun.listen` socket methods used here. */
interface BunSocket {
  data: unknown;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  write(data: Uint8Array): number;
  shutdown(): void;
  close(): void;
  pause(): void;
  resume(): void;
  ref(): void;
  unref(): void;
  setNoDelay(noDelay: boolean): boolean;
  setKeepAlive(keepAlive: boolean): boolean;
}

/** The socket handlers (`Bun.SocketHandler`). */
interface BunHandlers {
  open?(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

/** A `Bun.listen` listener. */
interface BunListener {
  readonly port: number;
  getsockname?(out: { address?: string; port?: number }): void;
  stop(closeActiveConnections?: boolean): void;
}

/** The part of the `Bun` global used here. */
interface BunApi {
  connect(options: {
    hostname: string;
    port: number;
    allowHalfOpen: boolean;
    binaryType: "uint8array";
    socket: BunHandlers;
  }): Promise<BunSocket>;
  listen(options: {
    hostname: string;
    port: number;
    allowHalfOpen: boolean;
    binaryType: "uint8array";
    socket: BunHandlers;
  }): BunListener;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

/** Unread bytes above which the socket is paused; it resumes below half of it. */
const HIGH_WATER = 1 << 20;
const RESOLVED = Promise.resolve();

/** A read waiting for data: `into` for `read()`, `null` for `readChunk()`. */
interface Reader {
  into: Uint8Array | null;
  resolve(value: Uint8Array | number | null): void;
  reject(error: unknown): void;
}

/** A write (or, `shutdown`, the FIN of closeWrite) waiting for the kernel to take it. */
interface Writer {
  data: Uint8Array;
  shutdown: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

function addr(address: string | undefined, port: number | undefined): NetAddr | null {
  return address === undefined || port === undefined
    ? null
    : { transport: "tcp", hostname: address, port };
}

/**
 * A socket's two addresses, read once when it opens (Bun answers `undefined` once it is closed),
 * or `null` when it no longer has them (a client already gone).
 */
function addressesOf(socket: BunSocket): { local: NetAddr; remote: NetAddr } | null {
  const local = addr(socket.localAddress, socket.localPort);
  const remote = addr(socket.remoteAddress, socket.remotePort);
  return local === null || remote === null ? null : { local, remote };
}

/** node:net's error for a write to a socket that is gone: EPIPE, which the connection knows. */
function brokenPipe(): Error {
  return Object.assign(new Error("write EPIPE: the connection is closed"), { code: "EPIPE" });
}

/** A TCP connection over a Bun socket: pull-based reads over Bun's pushed `data` callbacks. */
class BunTcpStream<A extends NetAddr | null> implements ByteStream<A> {
  #socket: BunSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #paused = false;
  #readers: Reader[] = [];
  #writers: Writer[] = [];
  /** End of stream: the peer's FIN, or the socket closed. */
  #ended = false;
  /** What the socket failed with (a reset), reported after the data that came before it. */
  #error: Error | null = null;
  /** close() was called. */
  #closed = false;
  readonly localAddr: A;
  readonly remoteAddr: A;
  /** Bun never keeps what `socket.write` did not take: once a write resolved, it holds nothing. */
  readonly releasesWrites = true;
  /** Each `data` callback's buffer is a fresh copy that Bun never writes to again. */
  readonly chunksStayIntact = true;

  /** @internal The handlers of every socket: each dispatches to the socket's stream, if any. */
  static readonly handlers: BunHandlers = {
    data(socket, chunk) {
      if (socket.data instanceof BunTcpStream) socket.data.#onData(chunk);
    },
    drain(socket) {
      if (socket.data instanceof BunTcpStream) socket.data.#flush();
    },
    end(socket) {
      if (socket.data instanceof BunTcpStream) socket.data.#onEnd(null);
    },
    close(socket, error) {
      if (socket.data instanceof BunTcpStream) socket.data.#onEnd(error);
    },
    // Bun calls it for what a handler threw, and for socket errors it does not report as close.
    error(socket, error) {
      if (socket.data instanceof BunTcpStream) socket.data.#onEnd(error);
    },
  };

  constructor(socket: BunSocket, addresses: { local: A; remote: A }) {
    this.#socket = socket;
    this.localAddr = addresses.local;
    this.remoteAddr = addresses.remote;
    socket.data = this;
    // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
    socket.setNoDelay(true);
  }

  #onData(chunk: Uint8Array): void {
    const reader = this.#readers.shift();
    if (reader === undefined) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > HIGH_WATER && !this.#paused) {
        this.#paused = true;
        this.#socket.pause();
      }
    } else if (reader.into === null) {
      reader.resolve(chunk);
    } else {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      reader.resolve(this.#copyInto(reader.into));
    }
  }

  /** The peer's FIN (`error` null), the socket closed (`undefined`: cleanly), or its failure. */
  #onEnd(error: Error | null | undefined): void {
    if (error !== null) {
      if (error !== undefined) this.#error ??= error;
      this.#failWrites(); // the socket is gone: what was not written never will be
    }
    this.#ended = true;
    // Readers only wait while nothing is buffered: each gets the end (or the error) now.
    for (const reader of this.#readers.splice(0)) this.#settle(reader);
  }

  #settle(reader: Reader): void {
    if (this.#closed) reader.reject(new Error("the stream is closed"));
    else if (this.#error !== null) reader.reject(this.#error);
    else reader.resolve(null);
  }

  #failWrites(): void {
    for (const writer of this.#writers.splice(0)) writer.reject(this.#writeError());
  }

  #writeError(): Error {
    return this.#closed ? new Error("the stream is closed") : this.#error ?? brokenPipe();
  }

  /** Copies buffered chunks into `into`; at least one must be buffered. */
  #copyInto(into: Uint8Array): number {
    let n = 0;
    while (n < into.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, into.length - n);
      into.set(take === chunk.length ? chunk : chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#consumed(n);
    return n;
  }

  #consumed(n: number): void {
    this.#buffered -= n;
    if (this.#paused && this.#buffered <= HIGH_WATER / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  /** Waits for data, the end or an error. */
  #wait<T extends Uint8Array | number | null>(into: Uint8Array | null): Promise<T> {
    return new Promise((resolve, reject) => {
      const reader = { into, resolve, reject } as Reader;
      if (this.#closed || this.#ended) this.#settle(reader);
      else this.#readers.push(reader);
    });
  }

  readChunk(): Promise<Uint8Array | null> {
    if (this.#chunks.length === 0 || this.#closed) return this.#wait(null);
    const chunk = this.#chunks.shift()!;
    this.#consumed(chunk.length);
    return Promise.resolve(chunk);
  }

  read(into: Uint8Array): Promise<number | null> {
    if (this.#chunks.length === 0 || this.#closed) return this.#wait(into);
    return Promise.resolve(this.#copyInto(into));
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#error !== null) return Promise.reject(this.#writeError());
    if (this.#writers.length === 0) {
      // The common case: the kernel takes it all at once.
      const n = this.#socket.write(data);
      if (n === data.length) return RESOLVED;
      if (n < 0) return Promise.reject(this.#writeError()); // closed or shut down
      data = data.subarray(n);
    }
    // After the writes before it; the rest goes out from the drain handler.
    return new Promise((resolve, reject) => {
      this.#writers.push({ data, shutdown: false, resolve, reject });
    });
  }

  /** Writes what waits, in order, as far as the kernel takes it (the `drain` handler). */
  #flush(): void {
    for (let writer = this.#writers[0]; writer !== undefined; writer = this.#writers[0]) {
      if (writer.shutdown) {
        this.#socket.shutdown();
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

  closeWrite(): Promise<void> {
    if (this.#closed || this.#error !== null) return Promise.reject(this.#writeError());
    return new Promise((resolve, reject) => {
      this.#writers.push({ data: new Uint8Array(0), shutdown: true, resolve, reject });
      // After the writes still waiting: then the kernel sends the FIN after their bytes.
      if (this.#writers.length === 1) this.#flush();
    });
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
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
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
  return Object.assign(
    new Error(`${e.syscall ?? "connect"} ${e.code} ${target}`, { cause: error }),
    {
      code: e.code,
      errno: e.errno,
      syscall: e.syscall,
    },
  );
}

/**
 * The handlers of connecting sockets. The stream is made in `open`, which runs before the
 * promise of `Bun.connect` settles and before any `data` callback: bytes that arrive before
 * connectTcp() returns are kept, not dropped.
 */
const CONNECT_HANDLERS: BunHandlers = {
  ...BunTcpStream.handlers,
  open(socket) {
    const addresses = addressesOf(socket);
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
  #listener: BunListener;
  #queue: ByteStream<NetAddr | null>[] = [];
  #waiter: (() => void) | null = null;
  #closed = false;
  #maxQueued: number;
  readonly addr: NetAddr;

  constructor(options: TcpListenOptions) {
    this.#maxQueued = options.maxQueued;
    const handlers: BunHandlers = {
      ...BunTcpStream.handlers,
      open: (socket) => {
        if (this.#closed || this.#queue.length >= this.#maxQueued) {
          // Bun pushes connections at us and cannot pause accepting: shed the excess.
          socket.close();
          return;
        }
        // A client already gone has no addresses: passed on, so that it is reported.
        const addresses = addressesOf(socket) ?? { local: null, remote: null };
        this.#queue.push(new BunTcpStream(socket, addresses)); // takes its data from now on
        const w = this.#waiter;
        this.#waiter = null;
        w?.();
      },
    };
    try {
      // Binds synchronously, and throws (EADDRINUSE, EADDRNOTAVAIL, EACCES) when it cannot.
      this.#listener = Bun.listen({
        hostname: options.hostname,
        port: options.port,
        allowHalfOpen: true,
        binaryType: "uint8array",
        socket: handlers,
      });
    } catch (error) {
      throw new Error(
        `cannot bind ${options.hostname}:${options.port}: the address is in use or not ` +
          "available to this process (EADDRINUSE / EADDRNOTAVAIL / EACCES)",
        { cause: error },
      );
    }
    // The bound address ("::", "0.0.0.0", the one "localhost" resolved to), not the name given.
    const bound: { address?: string; port?: number } = {};
    this.#listener.getsockname?.(bound);
    this.addr = {
      transport: "tcp",
      hostname: bound.address ?? options.hostname,
      port: bound.port ?? this.#listener.port,
    };
  }

  async accept(): Promise<ByteStream<NetAddr | null> | null> {
    for (;;) {
      if (this.#closed) return null;
      const next = this.#queue.shift();
      if (next !== undefined) return next;
      // Bun reports no accept errors (it retries, or drops the connection, natively).
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const stream of this.#queue.splice(0)) stream.close();
    this.#listener.stop(false); // connections already accepted stay open
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }
}

/** Listens on a TCP port; bound before it returns (a failure is thrown at once). */
export function listenTcp(options: TcpListenOptions): TcpListener {
  return new BunTcpListener(options);
}
