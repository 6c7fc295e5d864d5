/**
 * TCP and UDP sockets and epoll straight from glibc: the C half of the epoll transport
 * (`src/net/tcp_epoll.ts`). Everything here is synchronous and non-blocking except
 * {@link Poller.wait} and {@link Sockets.resolve}, which run on one of the runtime's worker threads
 * (`epoll_wait` and `getaddrinfo` block), so it exists only where the backend has such calls
 * ({@link Backend.nonblocking}: Deno) and on Linux x86-64 and aarch64 (the two layouts of
 * `struct epoll_event` we know). {@link loadSockets} says `null` everywhere else.
 *
 * Results are plain numbers, never exceptions, on the hot path: a count or descriptor, or
 * `-errno`. {@link Sockets.error} turns an errno into the `Error` a caller throws, with `code`
 * (`"ECONNRESET"`), `errno`, and the `name` Deno gives the same failure (`"ConnectionReset"`).
 *
 * @module
 */
import { backend } from "./backend.ts";
import type { NativeLibrary, Pointer, SymbolTable } from "./types.ts";

/** Linux errno values this transport acts on (asm-generic/errno*.h; the same on x86-64 and arm64). */
export const ERRNO = {
  EPERM: 1,
  EINTR: 4,
  EAGAIN: 11,
  EACCES: 13,
  EINVAL: 22,
  EPIPE: 32,
  EPROTO: 71,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EINPROGRESS: 115,
} as const;

/** errno -> the `Deno.errors` class name of the same failure (what callers already test for). */
const DENO_NAMES: Readonly<Record<number, string>> = {
  [ERRNO.EPERM]: "PermissionDenied",
  [ERRNO.EACCES]: "PermissionDenied",
  [ERRNO.EPIPE]: "BrokenPipe",
  [ERRNO.EADDRINUSE]: "AddrInUse",
  [ERRNO.EADDRNOTAVAIL]: "AddrNotAvailable",
  [ERRNO.ENETUNREACH]: "NetworkUnreachable",
  [ERRNO.ECONNABORTED]: "ConnectionAborted",
  [ERRNO.ECONNRESET]: "ConnectionReset",
  [ERRNO.ENOTCONN]: "NotConnected",
  [ERRNO.ETIMEDOUT]: "TimedOut",
  [ERRNO.ECONNREFUSED]: "ConnectionRefused",
  [ERRNO.EHOSTUNREACH]: "HostUnreachable",
};

// sys/socket.h, netinet/in.h, netinet/tcp.h, sys/epoll.h, netdb.h (Linux values).
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_WR = 1;
/** No SIGPIPE on a write to a reset connection: EPIPE instead (a signal would kill the process). */
const MSG_NOSIGNAL = 0x4000;
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLLRDHUP = 0x2000;
const EPOLLET = 0x80000000;
/** How many ready descriptors one `epoll_wait` reports at most (the rest: the next call). */
const MAX_EVENTS = 256;

const symbols = {
  // int socket(int domain, int type, int protocol);
  socket: { args: ["i32", "i32", "i32"], ret: "i32" },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len);
  connect: { args: ["i32", "buf", "u32"], ret: "i32" },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len);
  bind: { args: ["i32", "buf", "u32"], ret: "i32" },
  // int listen(int fd, int backlog);
  listen: { args: ["i32", "i32"], ret: "i32" },
  // int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);  (addr NULL)
  accept4: { args: ["i32", "ptr", "ptr", "i32"], ret: "i32" },
  // int getsockname(int fd, struct sockaddr *addr, socklen_t *len);
  getsockname: { args: ["i32", "buf", "buf"], ret: "i32" },
  // int getpeername(int fd, struct sockaddr *addr, socklen_t *len);
  getpeername: { args: ["i32", "buf", "buf"], ret: "i32" },
  // int setsockopt(int fd, int level, int name, const void *value, socklen_t len);
  setsockopt: { args: ["i32", "i32", "i32", "buf", "u32"], ret: "i32" },
  // int getsockopt(int fd, int level, int name, void *value, socklen_t *len);
  getsockopt: { args: ["i32", "i32", "i32", "buf", "buf"], ret: "i32" },
  // ssize_t send(int fd, const void *buf, size_t n, int flags);  read as i32: callers pass
  // n < 2^31, and -1 stays -1 in the low 32 bits.
  send: { args: ["i32", "buf", "usize", "i32"], ret: "i32" },
  // ssize_t recv(int fd, void *buf, size_t n, int flags);  (i32 as for send)
  recv: { args: ["i32", "buf", "usize", "i32"], ret: "i32" },
  // ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
  //                socklen_t len);  (i32 as for send: a datagram is under 64 KiB)
  sendto: { args: ["i32", "buf", "usize", "i32", "buf", "u32"], ret: "i32" },
  // ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
  //                  socklen_t *len);  (i32 as for recv)
  recvfrom: { args: ["i32", "buf", "usize", "i32", "buf", "buf"], ret: "i32" },
  // int shutdown(int fd, int how);
  shutdown: { args: ["i32", "i32"], ret: "i32" },
  // int close(int fd);
  close: { args: ["i32"], ret: "i32" },
  // int poll(struct pollfd *fds, nfds_t n, int timeout);  (timeout 0 only: never blocks)
  poll: { args: ["buf", "u64", "i32"], ret: "i32" },
  // int epoll_create1(int flags);
  epoll_create1: { args: ["i32"], ret: "i32" },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
  epoll_ctl: { args: ["i32", "i32", "i32", "buf"], ret: "i32" },
  // int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout);  (blocks)
  epoll_wait: { args: ["i32", "buf", "i32", "i32"], ret: "i32", nonblocking: true },
  // int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
  //                 struct addrinfo **res);  (blocks: DNS)
  getaddrinfo: { args: ["buf", "ptr", "buf", "buf"], ret: "i32", nonblocking: true },
  // void freeaddrinfo(struct addrinfo *res);
  freeaddrinfo: { args: ["ptr"], ret: "void" },
  // const char *gai_strerror(int code);
  gai_strerror: { args: ["i32"], ret: "ptr" },
  // int inet_pton(int af, const char *src, void *dst);
  inet_pton: { args: ["i32", "buf", "buf"], ret: "i32" },
  // const char *inet_ntop(int af, const void *src, char *dst, socklen_t size);
  inet_ntop: { args: ["i32", "buf", "buf", "u32"], ret: "ptr" },
  // char *strerror(int errnum);  (the JS thread is the only caller, so its static buffer is ours)
  strerror: { args: ["i32"], ret: "ptr" },
  // int *__errno_location(void);  (glibc's errno: thread-local, read right after the failed call)
  __errno_location: { args: [], ret: "ptr" },
} as const satisfies SymbolTable;

type I32Fn<A extends unknown[]> = (...args: A) => number;

interface Libc {
  socket: I32Fn<[number, number, number]>;
  connect: I32Fn<[number, Uint8Array, number]>;
  bind: I32Fn<[number, Uint8Array, number]>;
  listen: I32Fn<[number, number]>;
  accept4: I32Fn<[number, null, null, number]>;
  getsockname: I32Fn<[number, Uint8Array, Uint8Array]>;
  getpeername: I32Fn<[number, Uint8Array, Uint8Array]>;
  setsockopt: I32Fn<[number, number, number, Uint8Array, number]>;
  getsockopt: I32Fn<[number, number, number, Uint8Array, Uint8Array]>;
  send: I32Fn<[number, Uint8Array, number, number]>;
  recv: I32Fn<[number, Uint8Array, number, number]>;
  sendto: I32Fn<[number, Uint8Array, number, number, Uint8Array, number]>;
  recvfrom: I32Fn<[number, Uint8Array, number, number, Uint8Array, Uint8Array]>;
  shutdown: I32Fn<[number, number]>;
  close: I32Fn<[number]>;
  poll: I32Fn<[Uint8Array, number, number]>;
  epoll_create1: I32Fn<[number]>;
  epoll_ctl: I32Fn<[number, number, number, Uint8Array]>;
  epoll_wait: (epfd: number, events: Uint8Array, max: number, timeout: number) => Promise<number>;
  getaddrinfo: (
    node: Uint8Array,
    service: null,
    hints: Uint8Array,
    res: Uint8Array,
  ) => Promise<number>;
  freeaddrinfo: (res: Pointer) => void;
  gai_strerror: (code: number) => Pointer | null;
  inet_pton: I32Fn<[number, Uint8Array, Uint8Array]>;
  inet_ntop: (af: number, src: Uint8Array, dst: Uint8Array, size: number) => Pointer | null;
  strerror: (errnum: number) => Pointer | null;
  __errno_location: () => Pointer;
}

/** An IP address and port, as `getsockname`, `getaddrinfo` and `connect` see them. */
export interface SocketAddress {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** The address, printed by `inet_ntop` (`"127.0.0.1"`, `"::1"`, `"::ffff:10.0.0.1"`). */
  readonly hostname: string;
  /** The port. */
  readonly port: number;
}

/** The socket options {@link Sockets.setOption} sets. */
export type SocketOption = "noDelay" | "keepAlive" | "reuseAddress";

/**
 * One epoll set. Descriptors are added edge-triggered for reading, and for writing too once
 * something had to wait to write ({@link watchWrites}).
 */
export interface Poller {
  /** Watches `fd` for reading (0, or -errno). */
  add(fd: number): number;
  /**
   * Watches `fd` for writing as well, from now on (0, or -errno). Not from the start: a socket
   * becomes writable when its connect completes, and an accepted one is writable when it is
   * added, and either edge would wake the waiting thread for nobody (a trip through Deno's
   * worker pool per connection, on both ends). Reported at once when `fd` is writable already.
   */
  watchWrites(fd: number): number;
  /** Stops watching `fd` (before it is closed, so that a reused number starts clean). */
  remove(fd: number): void;
  /**
   * Waits on a worker thread until some descriptor is ready; resolves to how many are
   * ({@link readyFd} and {@link readyEvents} of 0 .. n-1). Only one wait at a time: the results
   * live in one buffer until the next. -1 (e.g. EINTR on the worker thread) means "ask again".
   */
  wait(): Promise<number>;
  /** The descriptor of ready entry `i` of the last wait. */
  readyFd(i: number): number;
  /** Whether ready entry `i` may be read (data, end of stream, or an error to collect). */
  readable(i: number): boolean;
  /** Whether ready entry `i` may be written (room, or an error to collect). */
  writable(i: number): boolean;
  /** Whether the pending {@link wait} keeps the process alive (it does when it starts). */
  setRef(pending: Promise<number>, ref: boolean): void;
}

/** The socket calls (see the module doc). */
export interface Sockets {
  /** A non-blocking, close-on-exec TCP socket of `family`: the descriptor, or -errno. */
  tcpSocket(family: 4 | 6): number;
  /** A non-blocking, close-on-exec UDP socket of `family`: the descriptor, or -errno. */
  udpSocket(family: 4 | 6): number;
  /**
   * Starts connecting to `to`, a `sockaddr` from {@link rawAddress}: 0, `-EINPROGRESS` (see
   * {@link connectedNow}), or -errno.
   */
  connect(fd: number, to: Uint8Array): number;
  /** Binds `fd` to a local address: 0 or -errno. */
  bind(fd: number, to: SocketAddress): number;
  /** Starts listening: 0 or -errno. */
  listen(fd: number, backlog: number): number;
  /** A non-blocking, close-on-exec accepted descriptor, or -errno (`-EAGAIN`: none waiting). */
  accept(fd: number): number;
  /** The bound address, or `null` when the socket has none (any more). */
  localAddress(fd: number): SocketAddress | null;
  /** The peer's address, or `null` when it is no longer connected. */
  remoteAddress(fd: number): SocketAddress | null;
  /**
   * `to` as a `sockaddr` of its own, for {@link connect} and {@link decodeAddress}: a client
   * knows its peer's address without asking the kernel (`getpeername`).
   */
  rawAddress(to: SocketAddress): Uint8Array;
  /** The bound address as a `sockaddr` of its own (decoded when asked for), or -errno. */
  rawLocalAddress(fd: number): Uint8Array | number;
  /** The address in a `sockaddr` from {@link rawAddress} or {@link rawLocalAddress}. */
  decodeAddress(raw: Uint8Array): SocketAddress | null;
  /** Sets a boolean socket option: 0 or -errno. */
  setOption(fd: number, option: SocketOption, on: boolean): number;
  /**
   * How a connect that said EINPROGRESS stands, without waiting: 0 connected, 1 still going (wait
   * until writable, then {@link pendingError}), or -errno. One `poll` with timeout 0: a connect to
   * a nearby peer is usually done a few microseconds after EINPROGRESS, which this sees without a
   * trip through the poller. `SO_ERROR` is read only when the poll reports an error or hang-up (a
   * successful connect is plain POLLOUT).
   */
  connectedNow(fd: number): number;
  /** `SO_ERROR`: how a non-blocking connect ended (0, or -errno). */
  pendingError(fd: number): number;
  /** Sends what the socket takes now: the count, or -errno (`-EAGAIN`: full). Never SIGPIPE. */
  send(fd: number, data: Uint8Array): number;
  /** Receives into `into`: the count, 0 at end of stream, or -errno (`-EAGAIN`: nothing yet). */
  recv(fd: number, into: Uint8Array): number;
  /**
   * Sends one datagram to `to` (a `sockaddr` from {@link rawAddress}): its length, or -errno
   * (`-EAGAIN`: the socket's send buffer is full).
   */
  sendTo(fd: number, datagram: Uint8Array, to: Uint8Array): number;
  /**
   * Receives one datagram into `into`: its length (cut to `into`'s if longer), or -errno
   * (`-EAGAIN`: none waiting). Its sender's `sockaddr` is then {@link lastSender} until the next
   * call.
   */
  recvFrom(fd: number, into: Uint8Array): number;
  /** The sender of the datagram the last {@link recvFrom} returned: a view, valid until the next. */
  lastSender(): Uint8Array;
  /** Half-closes the sending side (TCP FIN): 0 or -errno. */
  shutdownWrite(fd: number): number;
  /** Closes the descriptor. */
  close(fd: number): void;
  /** The family and bytes of an IP literal, or `null` for anything else (a host name). */
  parseIp(text: string): SocketAddress | null;
  /** Resolves a host name on a worker thread (`getaddrinfo`): its addresses, port 0. */
  resolve(host: string): Promise<SocketAddress[]>;
  /** A new epoll set (throws when the process is out of descriptors). */
  poller(): Poller;
  /** The `Error` for `errno` in `what` ("connect", "write", ...): `code`, `errno`, Deno's `name`. */
  error(errno: number, what: string): Error & { code: string; errno: number };
}

const CODE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ERRNO).map(([name, value]) => [value, name]),
);

let loaded: Sockets | null | undefined;

/** The socket calls, or `null` where this transport cannot run (see the module doc). Loaded once. */
export function loadSockets(): Sockets | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  const nonblocking = backend.nonblocking;
  if (nonblocking === undefined || backend.os !== "linux") return loaded;
  if (backend.arch !== "x86_64" && backend.arch !== "aarch64") return loaded;
  let lib: NativeLibrary;
  try {
    lib = backend.open("libc.so.6", symbols);
  } catch {
    return loaded; // not glibc (musl names its library differently)
  }
  loaded = makeSockets(lib.symbols as unknown as Libc, nonblocking);
  return loaded;
}

function makeSockets(c: Libc, nonblocking: NonNullable<typeof backend.nonblocking>): Sockets {
  const errnoCell = c.__errno_location();
  const errno = () => backend.readI32(errnoCell);
  /** A libc result: the value, or -errno when it is -1. */
  const result = (r: number) => (r === -1 ? -errno() : r);
  const int = new Uint8Array(4);
  const intView = new DataView(int.buffer);
  const sockaddr = new Uint8Array(28); // sockaddr_in6, the larger of the two
  const sockaddrView = new DataView(sockaddr.buffer);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  const text = new Uint8Array(64); // INET6_ADDRSTRLEN is 46
  const pollfd = new Uint8Array(8);
  const pollView = new DataView(pollfd.buffer);
  const from = new Uint8Array(28); // recvfrom's sockaddr (its own: sockaddr serves the others)
  const fromLength = new Uint8Array(4);
  const fromLengthView = new DataView(fromLength.buffer);
  let fromSize = 0;
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();

  /** Fills `sockaddr` for `to`; its length. */
  function encode(to: SocketAddress): number {
    sockaddr.fill(0);
    const ip = packed(to);
    sockaddrView.setUint16(0, to.family === 4 ? AF_INET : AF_INET6, true);
    sockaddrView.setUint16(2, to.port, false); // network byte order
    // sockaddr_in: the address at 4; sockaddr_in6: flowinfo at 4, the address at 8.
    sockaddr.set(ip, to.family === 4 ? 4 : 8);
    return to.family === 4 ? 16 : 28;
  }

  /** The 4 or 16 address bytes of an address printed by inet_ntop (or typed by a user). */
  function packed(address: SocketAddress): Uint8Array {
    const out = new Uint8Array(address.family === 4 ? 4 : 16);
    const r = c.inet_pton(
      address.family === 4 ? AF_INET : AF_INET6,
      encoder.encode(`${address.hostname}\0`),
      out,
    );
    if (r !== 1) throw new TypeError(`not an IPv${address.family} address: ${address.hostname}`);
    return out;
  }

  /** The address in `bytes` (a sockaddr), or `null` for another family. */
  function decode(bytes: Uint8Array): SocketAddress | null {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const af = view.getUint16(0, true);
    if (af !== AF_INET && af !== AF_INET6) return null;
    const ip = af === AF_INET ? bytes.slice(4, 8) : bytes.slice(8, 24);
    if (c.inet_ntop(af, ip, text, text.length) === null) return null;
    const end = text.indexOf(0);
    return {
      family: af === AF_INET ? 4 : 6,
      hostname: decoder.decode(text.subarray(0, end < 0 ? text.length : end)),
      port: view.getUint16(2, false),
    };
  }

  /** Fills `sockaddr` through `getsockname` or `getpeername`: its length, or -errno. */
  function name(
    call: (fd: number, addr: Uint8Array, len: Uint8Array) => number,
    fd: number,
  ): number {
    lengthView.setUint32(0, sockaddr.length, true);
    const r = result(call(fd, sockaddr, length));
    return r < 0 ? r : Math.min(lengthView.getUint32(0, true), sockaddr.length);
  }

  /** `poll` of `fd` for writing, timeout 0: the `revents` (0 when nothing is ready). */
  function pollNow(fd: number): number {
    // struct pollfd { int fd; short events; short revents; }
    pollView.setInt32(0, fd, true);
    pollView.setInt16(4, POLLOUT, true);
    pollView.setInt16(6, 0, true);
    return c.poll(pollfd, 1, 0) === 1 ? pollView.getInt16(6, true) : 0;
  }

  function pendingError(fd: number): number {
    lengthView.setUint32(0, 4, true);
    const r = result(c.getsockopt(fd, SOL_SOCKET, SO_ERROR, int, length));
    return r < 0 ? r : -intView.getInt32(0, true);
  }

  const OPTIONS: Record<SocketOption, [number, number]> = {
    noDelay: [IPPROTO_TCP, TCP_NODELAY],
    keepAlive: [SOL_SOCKET, SO_KEEPALIVE],
    reuseAddress: [SOL_SOCKET, SO_REUSEADDR],
  };

  // struct epoll_event { uint32_t events; epoll_data_t data; }: packed (12 bytes) on x86-64,
  // naturally aligned (16, data at 8) everywhere else.
  const EVENT_SIZE = backend.arch === "x86_64" ? 12 : 16;
  const DATA_AT = backend.arch === "x86_64" ? 4 : 8;

  return {
    tcpSocket: (family) =>
      result(
        c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      ),
    udpSocket: (family) =>
      result(
        c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      ),
    connect: (fd, to) => result(c.connect(fd, to, to.length)),
    bind: (fd, to) => result(c.bind(fd, sockaddr, encode(to))),
    listen: (fd, backlog) => result(c.listen(fd, backlog)),
    accept: (fd) => result(c.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC)),
    localAddress: (fd) => (name(c.getsockname, fd) < 0 ? null : decode(sockaddr)),
    remoteAddress: (fd) => (name(c.getpeername, fd) < 0 ? null : decode(sockaddr)),
    rawAddress: (to) => sockaddr.slice(0, encode(to)),
    rawLocalAddress(fd) {
      const n = name(c.getsockname, fd);
      return n < 0 ? n : sockaddr.slice(0, n);
    },
    decodeAddress: decode,
    setOption(fd, option, on) {
      const [level, opt] = OPTIONS[option];
      intView.setInt32(0, on ? 1 : 0, true);
      return result(c.setsockopt(fd, level, opt, int, 4));
    },
    connectedNow(fd) {
      const revents = pollNow(fd);
      if ((revents & (POLLERR | POLLHUP)) !== 0) return pendingError(fd);
      return (revents & POLLOUT) !== 0 ? 0 : 1;
    },
    pendingError,
    send: (fd, data) => result(c.send(fd, data, data.length, MSG_NOSIGNAL)),
    recv: (fd, into) => result(c.recv(fd, into, into.length, 0)),
    sendTo: (fd, datagram, to) =>
      result(c.sendto(fd, datagram, datagram.length, MSG_NOSIGNAL, to, to.length)),
    recvFrom(fd, into) {
      fromLengthView.setUint32(0, from.length, true);
      const n = result(c.recvfrom(fd, into, into.length, 0, from, fromLength));
      fromSize = n < 0 ? 0 : Math.min(fromLengthView.getUint32(0, true), from.length);
      return n;
    },
    lastSender: () => from.subarray(0, fromSize),
    shutdownWrite: (fd) => result(c.shutdown(fd, SHUT_WR)),
    close(fd) {
      c.close(fd); // EINTR/EIO from close: the descriptor is gone on Linux either way
    },
    parseIp(host) {
      const bytes = encoder.encode(`${host}\0`);
      const scratch = new Uint8Array(16);
      if (c.inet_pton(AF_INET, bytes, scratch) === 1) return { family: 4, hostname: host, port: 0 };
      if (c.inet_pton(AF_INET6, bytes, scratch) === 1) {
        return { family: 6, hostname: host, port: 0 };
      }
      return null;
    },
    async resolve(host) {
      // struct addrinfo { int flags, family, socktype, protocol; socklen_t addrlen;
      //                   struct sockaddr *addr (24); char *canonname (32); addrinfo *next (40) }
      const hints = new Uint8Array(48);
      new DataView(hints.buffer).setInt32(8, SOCK_STREAM, true); // AF_UNSPEC: both families
      const out = new Uint8Array(8);
      const status = await c.getaddrinfo(encoder.encode(`${host}\0`), null, hints, out);
      if (status !== 0) {
        const why = c.gai_strerror(status);
        const message = why === null ? `error ${status}` : backend.readCString(why);
        throw Object.assign(new Error(`cannot resolve ${host}: ${message}`), {
          name: "NotFound",
          code: "ENOTFOUND",
        });
      }
      const first = backend.fromAddress(new DataView(out.buffer).getBigUint64(0, true));
      const found: SocketAddress[] = [];
      try {
        for (let ai = first; ai !== null; ai = backend.readPointer(ai, 40)) {
          const addr = backend.readPointer(ai, 24);
          const len = backend.readI32(ai, 16);
          if (addr === null || len < 16) continue;
          const a = decode(backend.readBytes(addr, 0, Math.min(len, 28)));
          if (a !== null && !found.some((f) => f.hostname === a.hostname)) found.push(a);
        }
      } finally {
        if (first !== null) c.freeaddrinfo(first);
      }
      return found;
    },
    poller() {
      const epfd = result(c.epoll_create1(EPOLL_CLOEXEC));
      if (epfd < 0) throw makeError(-epfd, "epoll_create1");
      const one = new Uint8Array(EVENT_SIZE);
      const oneView = new DataView(one.buffer);
      // The worker thread writes here during a wait: nothing else touches it until it resolves.
      const events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
      const eventsView = new DataView(events.buffer);
      const flags = (i: number) => eventsView.getUint32(i * EVENT_SIZE, true);
      const control = (op: number, fd: number, events: number) => {
        oneView.setUint32(0, events, true);
        oneView.setUint32(DATA_AT, fd, true);
        oneView.setUint32(DATA_AT + 4, 0, true);
        return result(c.epoll_ctl(epfd, op, fd, one));
      };
      return {
        // Edge-triggered: one wake-up per change, none while a descriptor stays readable.
        // Callers always try the call first and wait only after EAGAIN, which re-arms it.
        add: (fd) => control(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP | EPOLLET),
        // EPOLL_CTL_MOD checks readiness at once: room that came since the EAGAIN is not missed.
        watchWrites: (fd) => control(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET),
        remove(fd) {
          c.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, one);
        },
        wait: () => c.epoll_wait(epfd, events, MAX_EVENTS, -1),
        readyFd: (i) => eventsView.getUint32(i * EVENT_SIZE + DATA_AT, true),
        readable: (i) => (flags(i) & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !== 0,
        writable: (i) => (flags(i) & (EPOLLOUT | EPOLLHUP | EPOLLERR)) !== 0,
        setRef: (pending, ref) => nonblocking.setRef(pending, ref),
      };
    },
    error: makeError,
  };

  function makeError(errnum: number, what: string): Error & { code: string; errno: number } {
    const why = c.strerror(errnum);
    const text = why === null ? `error ${errnum}` : backend.readCString(why);
    const error = new Error(`${what}: ${text} (os error ${errnum})`) as Error & {
      code: string;
      errno: number;
    };
    error.name = DENO_NAMES[errnum] ?? "Error";
    error.code = CODE_NAMES[errnum] ?? `E${errnum}`;
    error.errno = errnum;
    return error;
  }
}
