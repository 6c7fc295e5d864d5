/**
 * UDP over the C library's own sockets and the epoll transport's reactor (`reactor.ts`): Deno's
 * UDP (`udp.ts` picks it where the socket calls load and Deno already grants the bound address;
 * `node:dgram` otherwise).
 *
 * Why: Deno's `node:dgram` makes every datagram an async op on the Rust side and a `Buffer` on
 * ours, and DTLS on Deno ran at half of Bun's rate over it (README, "DTLS"). Here a datagram is one
 * `recvfrom` or `sendto` through FFI; the socket waits (one trip through the shared `epoll_wait`)
 * only when nothing is queued, and takes every datagram that is queued when it wakes.
 *
 * Deno's permissions: `udp.ts` binds here only to an address Deno grants without asking (the
 * check `Deno.listenDatagram` would make), and each peer a datagram goes to is checked the same
 * way the first time (`allowed`), since `sendto` does not pass through Deno's own checks. A peer
 * that is not granted gets nothing, and `onError` a `PERMISSION_DENIED` error naming the flag.
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { ERRNO, type SocketAddress, type Sockets } from "../core/native.ts";
import { unrefTimer } from "../core/timers.ts";
import {
  addrKey,
  type BindUdpOptions,
  familyOf,
  type UdpAddr,
  type UdpSocket,
} from "./datagram.ts";
import { sockets, theReactor, watch, type Watcher } from "./reactor.ts";

/** The largest UDP payload (65,507 bytes over IPv4) fits: a datagram is never cut short. */
const RECEIVE_SIZE = 64 * 1024;
/** How long close() waits for datagrams still queued for a full send buffer. */
const CLOSE_FLUSH_MS = 1_000;

/** Whether Deno lets this program send to `host:port` without asking (see the module doc). */
export type NetAllowed = (hostname: string, port: number) => boolean;

function udpAddr(a: SocketAddress): UdpAddr {
  return { transport: "udp", hostname: a.hostname, port: a.port };
}

/**
 * Binds a UDP socket to `options.hostname` (an IP address: `udp.ts` sends nothing else here) and
 * starts receiving. Bound before it resolves; a failure to bind rejects with Deno's error names
 * (`AddrInUse`, ...).
 */
export function bindUdp(options: BindUdpOptions, allowed: NetAllowed): Promise<UdpSocket> {
  const s = sockets();
  const family = options.family ??
    (options.hostname === undefined ? 4 : familyOf(options.hostname));
  const hostname = options.hostname ?? (family === 6 ? "::" : "0.0.0.0");
  const port = options.port ?? 0;
  const ip = s.parseIp(hostname);
  if (ip === null) return Promise.reject(new TypeError(`not an IP address: ${hostname}`));
  const fd = s.udpSocket(family);
  if (fd < 0) return Promise.reject(s.error(-fd, "socket"));
  const at = `bind ${addrKey({ transport: "udp", hostname, port })}`;
  // An IPv4 address on an IPv6 socket (or the other way round) fails here with EINVAL, as in
  // node:dgram.
  const r = ip.family === family ? s.bind(fd, { ...ip, port }) : -ERRNO.EINVAL;
  const bound = r === 0 ? s.localAddress(fd) : null;
  if (r < 0 || bound === null) {
    s.close(fd);
    return Promise.reject(s.error(r < 0 ? -r : ERRNO.EADDRNOTAVAIL, at));
  }
  let watcher: Watcher;
  try {
    watcher = watch(s, fd, at); // closes fd when it throws
  } catch (error) {
    return Promise.reject(error);
  }
  return Promise.resolve(new EpollUdpSocket(s, watcher, udpAddr(bound), options, allowed));
}

/** A bound socket: sends are direct calls, and a loop receives until it is closed. */
class EpollUdpSocket implements UdpSocket {
  readonly #s: Sockets;
  readonly #watcher: Watcher;
  readonly #options: BindUdpOptions;
  readonly #allowed: NetAllowed;
  readonly localAddr: UdpAddr;
  #closed = false;
  /** The descriptor is closed (after close(), once what was queued went out). */
  #released = false;
  #closedPromise: Promise<void> | null = null;
  /** Called once the queue is empty after close() (see {@link close}). */
  #afterFlush: (() => void) | null = null;
  /** Datagrams the send buffer had no room for, in order, and where each goes. */
  #queue: [Uint8Array, Uint8Array][] = [];
  #flushing = false;
  /** Peers this socket may send to (granted by Deno), by `addrKey`, with their `sockaddr`. */
  #peers = new Map<string, Uint8Array | null>();
  /** The sender of the last datagram, as bytes and decoded: most datagrams come from it again. */
  #lastRaw: Uint8Array = new Uint8Array(0);
  #lastFrom: UdpAddr | null = null;
  /** The last peer sent to (the same object again: its `sockaddr` without a lookup). */
  #lastTo: UdpAddr | null = null;
  #lastToRaw: Uint8Array | null = null;

  constructor(
    s: Sockets,
    watcher: Watcher,
    localAddr: UdpAddr,
    options: BindUdpOptions,
    allowed: NetAllowed,
  ) {
    this.#s = s;
    this.#watcher = watcher;
    this.localAddr = localAddr;
    this.#options = options;
    this.#allowed = allowed;
    void this.#receive();
  }

  send(datagram: Uint8Array, to: UdpAddr): void {
    if (this.#closed) return;
    const raw = this.#sockaddrOf(to);
    if (raw === null) return;
    if (this.#queue.length > 0) {
      this.#queue.push([datagram.slice(), raw]); // behind those that wait: in order
      return;
    }
    const n = this.#s.sendTo(this.#watcher.fd, datagram, raw);
    if (n >= 0) return; // a datagram goes whole or not at all
    if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) {
      this.#queue.push([datagram.slice(), raw]); // the caller may reuse its buffer
      void this.#flush();
    } else {
      this.#report(this.#s.error(-n, `send to ${addrKey(to)}`));
    }
  }

  close(): Promise<void> {
    if (this.#closedPromise !== null) return this.#closedPromise;
    this.#closed = true;
    if (this.#queue.length === 0) {
      this.#release();
      return this.#closedPromise = Promise.resolve();
    }
    // Datagrams given to send() go out first (a close_notify among them), within a bound.
    return this.#closedPromise = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#queue = [];
        this.#release();
        resolve();
      };
      const timer = unrefTimer(setTimeout(done, CLOSE_FLUSH_MS));
      this.#afterFlush = done;
    });
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    theReactor().remove(this.#watcher); // the receive and flush loops wake and end
    this.#s.close(this.#watcher.fd);
  }

  /** The `sockaddr` for `to`, or null (reported) when it may not or cannot be sent to. */
  #sockaddrOf(to: UdpAddr): Uint8Array | null {
    // A client sends every datagram to one peer: no key string per datagram for it.
    if (to === this.#lastTo) return this.#lastToRaw;
    const raw = this.#lookUp(to);
    this.#lastTo = to;
    this.#lastToRaw = raw;
    return raw;
  }

  #lookUp(to: UdpAddr): Uint8Array | null {
    const key = addrKey(to);
    const known = this.#peers.get(key);
    if (known !== undefined) return known;
    let raw: Uint8Array | null = null;
    if (!this.#allowed(to.hostname, to.port)) {
      this.#report(
        new TlsError(
          "PERMISSION_DENIED",
          `Deno does not allow this program to send to ${key}: run it with --allow-net ` +
            `(or --allow-net=${key})`,
        ),
      );
    } else {
      const ip = this.#s.parseIp(to.hostname);
      if (ip === null) {
        this.#report(new TypeError(`not an IP address: ${to.hostname}`));
      } else {
        raw = this.#s.rawAddress({ ...ip, port: to.port });
      }
    }
    // Remembered either way, bounded: a server talks to many peers over its life.
    if (this.#peers.size >= 1024) this.#peers.clear();
    this.#peers.set(key, raw);
    return raw;
  }

  /** Sends what waited for room, waiting for room again as often as needed. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0 && !this.#released) {
        const [datagram, raw] = this.#queue[0]!;
        const n = this.#s.sendTo(this.#watcher.fd, datagram, raw);
        if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) {
          await theReactor().wait(this.#watcher, true);
          continue;
        }
        this.#queue.shift();
        if (n < 0) this.#report(this.#s.error(-n, "send"));
      }
    } finally {
      this.#flushing = false;
      if (this.#queue.length === 0) this.#afterFlush?.();
    }
  }

  /** Receives until closed: every queued datagram, then one wait for the next. */
  async #receive(): Promise<void> {
    const s = this.#s;
    const reactor = theReactor();
    const buffer = new Uint8Array(RECEIVE_SIZE);
    while (!this.#closed) {
      const n = s.recvFrom(this.#watcher.fd, buffer);
      if (n >= 0) {
        const from = this.#senderOf(s.lastSender());
        if (from !== null) this.#deliver(buffer.slice(0, n), from);
        // A peer that never pauses must not starve the event loop (see reactor.ts).
        const turn = reactor.spent();
        if (turn !== null) await turn;
      } else if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) {
        await reactor.wait(this.#watcher, false);
      } else {
        this.#report(s.error(-n, "receive"));
        await reactor.wait(this.#watcher, false);
      }
    }
  }

  /** The sender of the datagram just received (decoded once per new sender). */
  #senderOf(raw: Uint8Array): UdpAddr | null {
    const last = this.#lastRaw;
    if (last.length === raw.length && last.every((b, i) => b === raw[i])) return this.#lastFrom;
    const a = this.#s.decodeAddress(raw);
    this.#lastRaw = raw.slice();
    this.#lastFrom = a === null ? null : udpAddr(a);
    return this.#lastFrom;
  }

  #deliver(datagram: Uint8Array, from: UdpAddr): void {
    try {
      this.#options.onDatagram(datagram, from);
    } catch (error) {
      // As a throwing 'message' listener of node:dgram: an uncaught exception, and the socket
      // goes on receiving.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  #report(error: Error): void {
    if (!this.#closed) this.#options.onError?.(error);
  }
}
