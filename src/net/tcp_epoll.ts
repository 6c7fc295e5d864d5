/**
 * TCP over the C library's own sockets, with one `epoll` set for the whole process: the Deno
 * transport (`tcp.ts` picks it where `ffi/sockets.ts` can load, and `Deno.connect` otherwise).
 *
 * Why: on Deno every `conn.read()` / `conn.write()` is an async op, and a 1 KiB round trip pays for
 * two of them plus their promise hops. Here a read or write is first a plain `recv` / `send`
 * through FFI, which is all it takes while data or room is there (bulk transfers, and the reply
 * that is already waiting). Only a call that would block (EAGAIN) waits, and all waiting sockets
 * share one `epoll_wait` running on one of Deno's worker threads (`reactor.ts`, which also says
 * how a socket that never waits still lets the event loop run). Measured on the benchmark's 1 KiB
 * round trips: see README "Benchmark".
 *
 * The reactor's pending wait keeps the process alive only while a socket that is not
 * {@link EpollTcpStream.unref}'d waits.
 *
 * @module
 */
import { ERRNO, type SocketAddress, type Sockets } from "../core/native.ts";
import { closedError, sockets, theReactor, watch, type Watcher } from "./reactor.ts";
import type {
  ByteStream,
  NetAddr,
  ReadBuffers,
  TcpConnectOptions,
  TcpListener,
  TcpListenOptions,
} from "./stream.ts";

export { epollAvailable } from "./reactor.ts";

function netAddr(a: SocketAddress): NetAddr {
  return { transport: "tcp", hostname: a.hostname, port: a.port };
}

/** The buffers of a plain read(): always the one given. */
class OneBuffer implements ReadBuffers {
  #buffer: Uint8Array;
  constructor(buffer: Uint8Array) {
    this.#buffer = buffer;
  }
  take(): Uint8Array {
    return this.#buffer;
  }
  giveBack(): void {}
}

/**
 * An address as the stream keeps it: decoded, or still the `sockaddr` bytes it was read as
 * (decoding is `inet_ntop` and a string, ~1 us, and most connections never ask).
 */
type KeptAddr<A> = A | Uint8Array;

/** A connected socket: reads and writes are direct calls until one would block. */
class EpollTcpStream<A extends NetAddr | null> implements ByteStream<A> {
  readonly #s: Sockets;
  readonly #watcher: Watcher;
  #closed = false;
  /** closeWrite() sent our FIN already. */
  #finSent = false;
  #local: KeptAddr<A>;
  #remote: KeptAddr<A>;
  /** `send` copies into the kernel before it returns: the buffer is ours again at once. */
  readonly releasesWrites = true;

  constructor(s: Sockets, watcher: Watcher, local: KeptAddr<A>, remote: KeptAddr<A>) {
    this.#s = s;
    this.#watcher = watcher;
    this.#local = local;
    this.#remote = remote;
  }

  get localAddr(): A {
    const a = this.#local;
    return a instanceof Uint8Array ? this.#local = this.#decode(a) : a;
  }

  get remoteAddr(): A {
    const a = this.#remote;
    return a instanceof Uint8Array ? this.#remote = this.#decode(a) : a;
  }

  #decode(raw: Uint8Array): A {
    // Bytes from getsockname or our own connect target: always an IPv4 or IPv6 address.
    const a = this.#s.decodeAddress(raw);
    return (a === null ? null : netAddr(a)) as A;
  }

  read(into: Uint8Array): Promise<number | null> {
    return this.readLazily(new OneBuffer(into));
  }

  /**
   * {@link read}, with a buffer taken for each attempt and given back before each wait (an
   * edge-triggered wait follows a `recv` that found nothing, in the same turn: no edge is missed).
   */
  readLazily(buffers: ReadBuffers): Promise<number | null> {
    if (this.#closed) return Promise.reject(closedError());
    const into = buffers.take();
    const n = this.#s.recv(this.#watcher.fd, into);
    if (n > 0) {
      const turn = theReactor().spent();
      return turn === null ? Promise.resolve(n) : turn.then(() => n);
    }
    if (n === 0) return Promise.resolve(into.length === 0 ? 0 : null);
    if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) {
      buffers.giveBack(into);
      return this.#readLazilyLater(buffers);
    }
    return Promise.reject(this.#s.error(-n, "read"));
  }

  async #readLazilyLater(buffers: ReadBuffers): Promise<number | null> {
    for (;;) {
      await theReactor().wait(this.#watcher, false);
      if (this.#closed) throw closedError();
      const into = buffers.take();
      const n = this.#s.recv(this.#watcher.fd, into);
      if (n > 0) return n;
      if (n === 0) return null;
      if (n !== -ERRNO.EAGAIN && n !== -ERRNO.EINTR) throw this.#s.error(-n, "read");
      buffers.giveBack(into);
    }
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    const n = data.length === 0 ? 0 : this.#s.send(this.#watcher.fd, data);
    if (n === data.length) return theReactor().spent() ?? Promise.resolve();
    if (n >= 0 || n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) {
      return this.#writeLater(data, Math.max(n, 0));
    }
    return Promise.reject(this.#s.error(-n, "write"));
  }

  async #writeLater(data: Uint8Array, sent: number): Promise<void> {
    while (sent < data.length) {
      await theReactor().wait(this.#watcher, true);
      if (this.#closed) throw closedError();
      const n = this.#s.send(this.#watcher.fd, data.subarray(sent));
      if (n >= 0) sent += n;
      else if (n !== -ERRNO.EAGAIN && n !== -ERRNO.EINTR) throw this.#s.error(-n, "write");
    }
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    this.#finSent = true;
    const r = this.#s.shutdownWrite(this.#watcher.fd);
    // ENOTCONN: the peer reset it first; as Deno, that is no error for a half-close.
    if (r < 0 && r !== -ERRNO.ENOTCONN) return Promise.reject(this.#s.error(-r, "shutdown"));
    return Promise.resolve();
  }

  ref(): void {
    theReactor().setRef(this.#watcher, true);
  }

  unref(): void {
    theReactor().setRef(this.#watcher, false);
  }

  setNoDelay(noDelay: boolean): void {
    if (!this.#closed) this.#s.setOption(this.#watcher.fd, "noDelay", noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (!this.#closed) this.#s.setOption(this.#watcher.fd, "keepAlive", keepAlive);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    theReactor().remove(this.#watcher); // wakes pending reads and writes: they fail as closed
    // FIN first, as Deno's close does: closing a socket with unread input (a TLS 1.3 server's
    // session tickets) makes the kernel send only a reset, and a peer that sees the reset
    // before our last bytes loses them (an abort() then reads as a reset, not a truncation).
    if (!this.#finSent) this.#s.shutdownWrite(this.#watcher.fd);
    this.#s.close(this.#watcher.fd);
  }
}

async function connectTo(s: Sockets, to: SocketAddress): Promise<EpollTcpStream<NetAddr>> {
  const fd = s.tcpSocket(to.family);
  if (fd < 0) throw s.error(-fd, "socket");
  // Without it a small write after the handshake waits ~40 ms (Nagle + delayed ACK).
  s.setOption(fd, "noDelay", true);
  const watcher = watch(s, fd, "connect");
  const fail = (error: unknown) => {
    theReactor().remove(watcher);
    s.close(fd);
    return error;
  };
  // The peer's address is the one we connect to: kept as bytes, no getpeername.
  const remote = s.rawAddress(to);
  let r = s.connect(fd, remote);
  if (r === -ERRNO.EINPROGRESS) {
    // Loopback and nearby peers are connected by the time we look: no trip through the poller.
    r = s.connectedNow(fd);
    if (r === 1) {
      await theReactor().wait(watcher, true);
      r = s.pendingError(fd);
    }
  }
  if (r < 0) throw fail(s.error(-r, "connect"));
  // A peer that reset the connection meanwhile is seen by the first read or write, as on any
  // connected socket; getsockname itself fails only without kernel memory.
  const local = s.rawLocalAddress(fd);
  if (typeof local === "number") throw fail(s.error(-local, "getsockname"));
  return new EpollTcpStream<NetAddr>(s, watcher, local, remote);
}

/**
 * Opens a TCP connection with TCP_NODELAY set. A host name is resolved on a worker thread and its
 * addresses are tried in the resolver's order; the last failure is the error.
 */
export async function connectTcp(options: TcpConnectOptions): Promise<ByteStream<NetAddr>> {
  const s = sockets();
  const ip = s.parseIp(options.hostname);
  const targets = ip !== null ? [ip] : await s.resolve(options.hostname);
  if (targets.length === 0) throw s.error(ERRNO.EADDRNOTAVAIL, `connect to ${options.hostname}`);
  let last: unknown;
  for (const target of targets) {
    try {
      return await connectTo(s, { ...target, port: options.port });
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

class EpollTcpListener implements TcpListener {
  readonly #s: Sockets;
  readonly #watcher: Watcher;
  #closed = false;
  readonly addr: NetAddr;

  constructor(s: Sockets, watcher: Watcher, addr: SocketAddress) {
    this.#s = s;
    this.#watcher = watcher;
    this.addr = netAddr(addr);
  }

  async accept(): Promise<ByteStream<NetAddr | null> | null> {
    // Pull-based: while nobody calls accept(), new connections wait in the kernel's backlog.
    const s = this.#s;
    for (;;) {
      if (this.#closed) return null;
      const fd = s.accept(this.#watcher.fd);
      if (fd >= 0) {
        const turn = theReactor().spent(); // a flood of clients must not starve the rest
        if (turn !== null) await turn;
        if (this.#closed) {
          s.close(fd); // closed meanwhile: as a connection still in the backlog
          return null;
        }
        return this.#stream(fd);
      }
      const errno = -fd;
      if (errno === ERRNO.EAGAIN) await theReactor().wait(this.#watcher, false);
      // A client gone between its SYN and our accept, or a signal: take the next one.
      else if (errno !== ERRNO.EINTR && errno !== ERRNO.ECONNABORTED && errno !== ERRNO.EPROTO) {
        throw s.error(errno, "accept"); // EMFILE and the like: the server backs off
      }
    }
  }

  #stream(fd: number): ByteStream<NetAddr | null> {
    const s = this.#s;
    s.setOption(fd, "noDelay", true);
    const watcher = watch(s, fd, "accept");
    // The server reads the peer's address at once (its per-address limit); the local one is
    // kept as bytes until asked for.
    const remote = s.remoteAddress(fd);
    const local = remote === null ? -ERRNO.ENOTCONN : s.rawLocalAddress(fd);
    // Gone before we got to it (getpeername: ENOTCONN): a stream without addresses, which the
    // server reports as such.
    if (remote === null || typeof local === "number") {
      return new EpollTcpStream(s, watcher, null, null);
    }
    return new EpollTcpStream<NetAddr | null>(s, watcher, local, netAddr(remote));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    theReactor().remove(this.#watcher); // a waiting accept() wakes and returns null
    this.#s.close(this.#watcher.fd);
  }
}

/** How many connections the kernel queues for accept() (it caps this at net.core.somaxconn). */
const BACKLOG = 1024;

/**
 * Listens on a TCP port; bound before it returns (throws `AddrInUse` etc. at once). `hostname`
 * must be an IP address (`tcp.ts` sends host names to `Deno.listen`, which resolves them
 * synchronously).
 */
export function listenTcp(options: TcpListenOptions): TcpListener {
  const s = sockets();
  const ip = s.parseIp(options.hostname);
  if (ip === null) throw new TypeError(`not an IP address: ${options.hostname}`);
  const fd = s.tcpSocket(ip.family);
  if (fd < 0) throw s.error(-fd, "socket");
  const at = `listen on ${options.hostname}:${options.port}`;
  // As Deno (and every server): a restarted server can bind while old connections linger.
  s.setOption(fd, "reuseAddress", true);
  let r = s.bind(fd, { ...ip, port: options.port });
  if (r === 0) r = s.listen(fd, BACKLOG);
  const bound = r === 0 ? s.localAddress(fd) : null;
  if (r < 0 || bound === null) {
    s.close(fd);
    throw s.error(r < 0 ? -r : ERRNO.EADDRNOTAVAIL, at);
  }
  return new EpollTcpListener(s, watch(s, fd, at), bound);
}
