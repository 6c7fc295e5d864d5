/**
 * The epoll transport's core, shared by TCP (`tcp_epoll.ts`) and UDP (`udp_epoll.ts`): the C
 * library's socket calls (`ffi/sockets.ts`), loaded on first use, and the {@link Reactor}, one
 * `epoll` set for every socket of the process whose `epoll_wait` runs on one of Deno's worker
 * threads.
 *
 * A call that completes at once settles its promise without a trip through the event loop, so a
 * peer that keeps a socket busy (a bulk transfer) would starve every timer and every other socket
 * of the process: after {@link DIRECT_BUDGET} such calls in a row the next one first yields to the
 * event loop (`setImmediate`, ~2 us; callers ask {@link Reactor.spent}).
 *
 * The reactor's pending wait keeps the process alive only while a socket that is not unref'd
 * waits; otherwise it is unref'd (`Backend.nonblocking.setRef`).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { loadSockets, type Sockets } from "../core/native.ts";

/** Whether the socket calls load here (glibc on Linux x86-64 or aarch64, and Deno). */
export function epollAvailable(): boolean {
  return loadSockets() !== null;
}

/** The socket calls; throws where this transport cannot run (check {@link epollAvailable}). */
export function sockets(): Sockets {
  const s = loadSockets();
  if (s === null) throw new Error("the epoll transport is not available here");
  return s;
}

/** Deno's message for an operation on a closed resource, so callers see the same failure. */
export function closedError(): Error {
  const error = new Error("Bad resource ID: the socket is closed");
  error.name = "BadResource";
  return error;
}

/**
 * Calls that may complete without waiting, in a row, before one yields to the event loop. 16
 * reads of up to 256 KiB is ~2 ms of a 1.7 GB/s transfer; a round trip waits anyway.
 */
const DIRECT_BUDGET = 16;

/** What waits on one descriptor: the reactor wakes its readers and writers. */
export class Watcher {
  readonly fd: number;
  /** Whether its waits keep the process alive. */
  refed = true;
  /** Whether the poller reports it writable (see `Poller.watchWrites`). */
  writesWatched = false;
  readers: (() => void)[] = [];
  writers: (() => void)[] = [];

  constructor(fd: number) {
    this.fd = fd;
  }
}

/**
 * The one `epoll` set and the loop that waits on it. A descriptor is added once, edge-triggered,
 * for reading; for writing as well from its first wait to write. A caller waits only after its
 * call said EAGAIN, and the next edge (data, room, FIN, error) wakes it to try again. Edges that
 * come while nobody waits are dropped: the next caller tries its call before it waits.
 */
export class Reactor {
  readonly #s: Sockets;
  readonly #poller: ReturnType<Sockets["poller"]>;
  readonly #watchers = new Map<number, Watcher>();
  /** Waiting readers and writers, and those of them whose socket is ref'd. */
  #waiting = 0;
  #refWaiting = 0;
  #looping = false;
  #pending: Promise<number> | null = null;
  #pendingRefed = true;
  /** Calls completed without a wait since the event loop last ran (see {@link DIRECT_BUDGET}). */
  #direct = 0;
  #yielding: Promise<void> | null = null;

  constructor(s: Sockets) {
    this.#s = s;
    this.#poller = s.poller();
  }

  /** Watches `fd`: 0, or -errno. */
  add(fd: number): Watcher | number {
    const r = this.#poller.add(fd);
    if (r < 0) return r;
    const watcher = new Watcher(fd);
    this.#watchers.set(fd, watcher);
    return watcher;
  }

  /** Stops watching (before the descriptor is closed) and wakes whoever waits on it. */
  remove(watcher: Watcher): void {
    if (this.#watchers.get(watcher.fd) !== watcher) return;
    this.#watchers.delete(watcher.fd);
    this.#poller.remove(watcher.fd);
    this.#wake(watcher, true, true);
  }

  /** Resolves at the next edge of `fd` for reading (or writing). */
  wait(watcher: Watcher, write: boolean): Promise<void> {
    if (write && !watcher.writesWatched) {
      const r = this.#poller.watchWrites(watcher.fd);
      // Fails for a watched descriptor only without kernel memory (ENOMEM): the writer then
      // tries again on the next event-loop turn (waiting for an edge that is never reported
      // would hang it).
      if (r < 0) return new Promise<void>((resolve) => setImmediate(resolve));
      watcher.writesWatched = true;
    }
    return new Promise<void>((resolve) => {
      (write ? watcher.writers : watcher.readers).push(resolve);
      this.#waiting++;
      if (watcher.refed) this.#refWaiting++;
      if (!this.#looping) {
        this.#looping = true;
        void this.#loop();
      } else {
        this.#syncRef();
      }
    });
  }

  /**
   * After a call that completed without waiting: `null` to go on at once, or the promise of the
   * next event-loop turn to wait for first (one shared by everyone who asks meanwhile).
   */
  spent(): Promise<void> | null {
    if (++this.#direct < DIRECT_BUDGET) return null;
    return this.#yielding ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.#direct = 0;
        this.#yielding = null;
        resolve();
      })
    );
  }

  /** After `watcher.refed` changed: counts its waits again. */
  setRef(watcher: Watcher, ref: boolean): void {
    if (watcher.refed === ref) return;
    watcher.refed = ref;
    const waits = watcher.readers.length + watcher.writers.length;
    this.#refWaiting += ref ? waits : -waits;
    this.#syncRef();
  }

  #wake(watcher: Watcher, read: boolean, write: boolean): void {
    // Taken (not copied) before anyone runs: a woken caller that waits again joins a fresh list.
    const readers = read && watcher.readers.length > 0 ? watcher.readers : null;
    const writers = write && watcher.writers.length > 0 ? watcher.writers : null;
    if (readers === null && writers === null) return;
    if (readers !== null) watcher.readers = [];
    if (writers !== null) watcher.writers = [];
    const count = (readers?.length ?? 0) + (writers?.length ?? 0);
    this.#waiting -= count;
    if (watcher.refed) this.#refWaiting -= count;
    readers?.forEach((resolve) => resolve());
    writers?.forEach((resolve) => resolve());
    this.#syncRef();
  }

  /** The pending wait keeps the process alive exactly while a ref'd socket waits. */
  #syncRef(): void {
    const want = this.#refWaiting > 0;
    if (this.#pending !== null && want !== this.#pendingRefed) {
      this.#pendingRefed = want;
      this.#poller.setRef(this.#pending, want);
    }
  }

  async #loop(): Promise<void> {
    const poller = this.#poller;
    try {
      while (this.#waiting > 0) {
        const pending = poller.wait();
        this.#pending = pending;
        this.#pendingRefed = true;
        this.#syncRef();
        const n = await pending;
        this.#pending = null;
        this.#direct = 0; // a wait's completion is an event-loop turn
        for (let i = 0; i < n; i++) {
          const watcher = this.#watchers.get(poller.readyFd(i));
          if (watcher !== undefined) this.#wake(watcher, poller.readable(i), poller.writable(i));
        }
      }
    } finally {
      this.#looping = false;
      this.#pending = null;
    }
  }
}

let reactor: Reactor | undefined;

/** The process's one reactor, made on first use. */
export function theReactor(): Reactor {
  return reactor ??= new Reactor(sockets());
}

/** A watched socket for `fd`, or the error (the descriptor is closed then). */
export function watch(s: Sockets, fd: number, what: string): Watcher {
  const watcher = theReactor().add(fd);
  if (typeof watcher === "number") {
    s.close(fd);
    throw s.error(-watcher, what);
  }
  return watcher;
}
