/**
 * The floor of an OpenSSL binding on whichever runtime runs it: a bare client that makes the same
 * OpenSSL calls as a C program (our `TlsContext`'s `SSL_CTX`, a bare `SSL` with memory BIOs, no
 * `TlsEngine`, no `Connection`, no promise per record) over the cheapest socket the runtime has
 * (Deno: the epoll transport's libc calls and its shared waits, `src/net/reactor.ts`, without
 * its stream objects; Bun: `Bun.connect` with plain callbacks; Node.js: `node:net` with plain
 * `data` events), interleaved with the whole `connect()`, against the benchmark's native server
 * (`bench/native/server.c`):
 *
 *   bash bench/native/build.sh
 *   taskset -c 0 bench/native/build/server 0 server.pem server.key      # prints LISTENING <port>
 *   taskset -c 1 node_modules/.bin/deno run -A bench/floor.ts handshakes <port> ca.pem [seconds]
 *   taskset -c 0 node_modules/.bin/bun bench/floor.ts rtt <port> ca.pem [seconds]
 *
 * Works: `handshakes` (a new TCP connection and a full handshake, `PING`/`PONG`, then closed
 * without close_notify, as the native client does), `rtt` (1 KiB echoed on one connection) and
 * `idle <count>` (`count` connections that sent `IDLE` and stay open, then `count` more: RSS
 * growth and malloc heap per connection over the second batch; one layer per process, the first
 * of `FLOOR_LAYERS`).
 * Prints, per layer and round, the rate and the process's CPU per operation (user + system, all
 * threads), and last one JSON line with the first layer's median rate (as the benchmark's clients
 * do: `bench/run.ts` runs the bare client as its "floor" rows). `FLOOR_ROUNDS` sets the rounds
 * (default 3); `FLOOR_LAYERS=bare` or `FLOOR_LAYERS=connect()` runs only that one (e.g. under a
 * profiler). A rate of the bare client below the bar (0.95x the native C client for handshakes,
 * 1.0x the built-in TLS for round trips) says that no design over this runtime's FFI and sockets
 * reaches it; the distance from the bare client to `connect()` is this library's own share.
 * Measured 2026-12-07: README, "What the profiles say", "The floor".
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { connect, nativeMemoryInUse } from "../mod.ts";
import { ERRNO, loadSockets } from "../src/core/native.ts";
import { TlsContext } from "../src/tls/context.ts";
import { internalsOf } from "../src/tls/native_context.ts";
import { theReactor, watch } from "../src/net/reactor.ts";
import { type BareSocket, BareTls } from "./bare_tls.ts";

// The benchmark clients' arguments (bench/README.md), so that bench/run.ts can run it as one.
const [work, portArg, caPath, secondsArg] = process.argv.slice(2);
if (
  (work !== "handshakes" && work !== "rtt" && work !== "idle") || portArg === undefined ||
  caPath === undefined
) {
  throw new Error("usage: floor.ts handshakes|rtt <port> <ca.pem> [seconds] | idle ... [count]");
}
const port = Number(portArg);
const seconds = Number(secondsArg ?? 3);
const rounds = Number(process.env.FLOOR_ROUNDS ?? 3);
const caPem = readFileSync(caPath, "utf8");
const context = new TlsContext("client", { caCerts: [caPem] });
const ctx = internalsOf(context).ctx();
const encoder = new TextEncoder();
const ping = encoder.encode("PING\n");
const SIZE = 1024;
const message = new Uint8Array(SIZE).fill(0x61);
const echo = encoder.encode(`ECHO ${SIZE}\n`);
const scratch = new Uint8Array(64 * 1024);

type Opener = (onData: (chunk: Uint8Array) => void) => Promise<BareSocket>;

/**
 * A TLS session over the bare socket: the handshake, then `exchange(out, inSize)` sends `out` and
 * resolves once `inSize` bytes came back. One promise per exchange, none per record.
 */
async function bareSession(open: Opener) {
  const tls = new BareTls(ctx, "client");
  let want = 0;
  let have = 0;
  let into: Uint8Array = scratch;
  let done: (() => void) | null = null;
  let fail: ((e: unknown) => void) | null = null;
  let handshaking = true;
  const onData = (chunk: Uint8Array) => {
    try {
      tls.input(chunk);
      if (handshaking) {
        if (!tls.step()) return socket.want();
        handshaking = false;
        if (done !== null) done();
        return;
      }
      have = tls.read(into.subarray(0, want), have);
      if (have < want) socket.want();
      else if (done !== null) done();
    } catch (error) {
      fail?.(error);
    }
  };
  const socket = await open(onData);
  tls.attach(socket);
  await new Promise<void>((resolve, reject) => {
    done = resolve;
    fail = reject;
    if (tls.step()) resolve();
    else socket.want();
  });
  return {
    exchange(out: Uint8Array, inSize: number, target: Uint8Array = scratch): Promise<void> {
      want = inSize;
      have = 0;
      into = target;
      return new Promise<void>((resolve, reject) => {
        done = resolve;
        fail = reject;
        tls.write(out);
        if (inSize === 0) resolve(); // nothing comes back (a command line)
        else socket.want();
      });
    },
    free: () => tls.free(),
    renewBios: () => tls.renewBios(),
  };
}

/**
 * Deno: the epoll transport's libc calls and its waits (`reactor.ts`: one `epoll_wait` on a worker
 * thread, issued only while someone waits for input, as the transport does), no stream object.
 */
function denoOpener(): Opener {
  const s = loadSockets();
  if (s === null) throw new Error("Deno without the libc socket calls (Linux only)");
  const to = s.rawAddress({ family: 4, hostname: "127.0.0.1", port });
  const input = new Uint8Array(64 * 1024);
  return (onData) => {
    const fd = s.tcpSocket(4);
    s.setOption(fd, "noDelay", true);
    const r = s.connect(fd, to);
    if (r !== 0 && r !== -ERRNO.EINPROGRESS) throw s.error(-r, "connect");
    if (r !== 0 && s.connectedNow(fd) !== 0) throw new Error("loopback connect not done at once");
    const watcher = watch(s, fd, "connect");
    let reading = false;
    let closed = false;
    const pump = async () => {
      while (!closed) {
        const n = s.recv(fd, input);
        if (n > 0) {
          reading = false;
          onData(input.subarray(0, n));
          return;
        }
        if (n !== -ERRNO.EAGAIN) throw s.error(-n, "read");
        await theReactor().wait(watcher, false);
      }
    };
    return Promise.resolve({
      send(bytes: Uint8Array) {
        if (s.send(fd, bytes) !== bytes.length) throw new Error("short send");
      },
      want() {
        if (reading) return;
        reading = true;
        void pump();
      },
      close() {
        closed = true;
        theReactor().remove(watcher);
        s.close(fd);
      },
    });
  };
}

/** Bun: `Bun.connect` with plain callbacks. */
function bunOpener(): Opener {
  // deno-lint-ignore no-explicit-any
  const B = (globalThis as any).Bun;
  return async (onData) => {
    const socket = await B.connect({
      hostname: "127.0.0.1",
      port,
      binaryType: "uint8array",
      socket: { data: (_s: unknown, chunk: Uint8Array) => onData(chunk) },
    });
    socket.setNoDelay(true);
    return {
      send(bytes: Uint8Array) {
        if (socket.write(bytes) !== bytes.length) throw new Error("short send");
      },
      want() {},
      close: () => socket.terminate(),
    };
  };
}

/** Node.js: `node:net` with plain `data` events. */
async function nodeOpener(): Promise<Opener> {
  const net = await import("node:net");
  return (onData) =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
      socket.on("data", (chunk: Uint8Array) => onData(chunk));
      socket.once("error", reject);
      socket.once("connect", () =>
        resolve({
          send: (bytes: Uint8Array) => void socket.write(bytes),
          want() {},
          close: () => void socket.destroy(),
        }));
    });
}

const open: Opener = "Deno" in globalThis
  ? denoOpener()
  : "Bun" in globalThis
  ? bunOpener()
  : await nodeOpener();

const pong = new Uint8Array(5);
const back = new Uint8Array(SIZE);

/** One bare handshake: connect, handshake, PING/PONG, close (no close_notify). */
async function bareHandshake(): Promise<void> {
  const session = await bareSession(open);
  await session.exchange(ping, pong.length, pong);
  session.free();
}

/** One `connect()` handshake, the same exchange, closed without close_notify. */
async function wholeHandshake(): Promise<void> {
  const conn = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [caPem],
  });
  await conn.write(ping);
  for (let got = 0; got < pong.length;) {
    const n = await conn.read(pong.subarray(got));
    if (n === null) throw new Error("end of stream");
    got += n;
  }
  conn.abort();
}

/** A round-trip session: one exchange per call. */
interface RoundTrips {
  roundTrip(): Promise<void>;
  close(): void;
}

async function bareRoundTrips(): Promise<RoundTrips> {
  const session = await bareSession(open);
  // The command line first; the server echoes what follows.
  await session.exchange(echo, 0);
  return { roundTrip: () => session.exchange(message, SIZE, back), close: () => session.free() };
}

async function wholeRoundTrips(): Promise<RoundTrips> {
  const conn = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [caPem],
  });
  await conn.write(echo);
  return {
    async roundTrip() {
      await conn.write(message);
      for (let got = 0; got < SIZE;) {
        const n = await conn.read(back.subarray(got));
        if (n === null) throw new Error("end of stream");
        got += n;
      }
    },
    close: () => conn.abort(),
  };
}

const idleCommand = encoder.encode("IDLE\n");

/**
 * Opens `count` connections that each sent `IDLE` and stay open, then `count` more: the RSS
 * growth and the malloc heap in use (OpenSSL's allocations and the runtime's own) per connection
 * over the second batch, as the benchmark's idle work measures them.
 */
async function idleLayer(
  layer: "bare" | "connect()",
  count: number,
): Promise<[number, number, number]> {
  const openOne = async (): Promise<() => void> => {
    if (layer === "bare") {
      const session = await bareSession(open);
      await session.exchange(idleCommand, 0);
      session.renewBios();
      return () => session.free();
    }
    const conn = await connect({
      hostname: "127.0.0.1",
      servername: "localhost",
      port,
      caCerts: [caPem],
    });
    await conn.write(idleCommand);
    return () => conn.close();
  };
  const closers: (() => void)[] = [];
  const openIdle = async () => void closers.push(await openOne());
  // The benchmark's two batches (bench/run.ts, "idle"): one-off costs land in the first.
  await openIdle();
  const start = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const before = process.memoryUsage().rss;
  const heapBefore = nativeMemoryInUse() ?? NaN;
  for (let i = 0; i < count; i++) await openIdle();
  const rss = (process.memoryUsage().rss - before) / count;
  const heap = ((nativeMemoryInUse() ?? NaN) - heapBefore) / count;
  for (const close of closers) close();
  return [rss, heap, (before - start) / count];
}

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Runs `op` for `seconds` after a 300 ms warm-up: the rate and the CPU per operation. */
async function measure(op: () => Promise<void>): Promise<[number, number]> {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await op();
  let count = 0;
  const cpu = cpuSeconds();
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    await op();
    count++;
  }
  const elapsed = (performance.now() - started) / 1000;
  return [count / elapsed, ((cpuSeconds() - cpu) / count) * 1e6];
}

const unit = work === "handshakes"
  ? "handshakes/s"
  : work === "rtt"
  ? "round trips/s"
  : "bytes/connection";
// FLOOR_LAYERS=connect() runs only that layer (e.g. under a profiler).
const only = process.env.FLOOR_LAYERS?.split(",");
const layers = (["bare", "connect()"] as const).filter((l) =>
  only === undefined || only.includes(l)
);
if (work === "idle") {
  // Memory is measured once per process (what one layer leaves behind would count for the next):
  // the first layer only.
  const layer = layers[0]!;
  const count = Number(secondsArg ?? 1000);
  const [rss, heap, first] = await idleLayer(layer, count);
  console.log(
    `${layer.padEnd(10)} ${(rss / 1024).toFixed(1)} KiB per idle connection (RSS, second ` +
      `batch), malloc heap ${(heap / 1024).toFixed(1)} KiB; first batch ` +
      `${(first / 1024).toFixed(1)} KiB`,
  );
  console.log(JSON.stringify({
    work,
    value: rss,
    unit,
    native: Number.isFinite(heap) ? heap : undefined,
    first,
    layer,
  }));
  process.exit(0);
}
const rates = new Map<string, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const layer of layers) {
    let result: [number, number];
    if (work === "handshakes") {
      result = await measure(layer === "bare" ? bareHandshake : wholeHandshake);
    } else {
      const session = await (layer === "bare" ? bareRoundTrips() : wholeRoundTrips());
      result = await measure(() => session.roundTrip());
      session.close();
    }
    const [rate, cpuUs] = result;
    rates.set(layer, [...(rates.get(layer) ?? []), rate]);
    console.log(
      `${layer.padEnd(10)} ${rate.toFixed(0)} ${unit}, CPU per operation ${cpuUs.toFixed(1)} us`,
    );
  }
}
// Last, as the benchmark clients do: one JSON line, the first layer's median rate.
const first = (rates.get(layers[0]!) ?? []).sort((a, b) => a - b);
const median = first[Math.floor(first.length / 2)] ?? NaN;
console.log(JSON.stringify({ work, value: median, unit, layer: layers[0] }));
process.exit(0);
