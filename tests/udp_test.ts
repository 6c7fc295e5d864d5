/**
 * The UDP sockets DTLS runs over (`src/net/udp.ts`: on Deno both the libc sockets on the epoll
 * reactor and `node:dgram`, which it falls back to; `node:dgram` on Bun and Node.js), under what
 * the DTLS tests rarely reach: senders' addresses, bursts, the largest datagram, IPv6, bind errors,
 * close (datagrams given to `send()` before it still go out, none arrives after it), and, for our
 * own receive loop, a socket that never runs dry (no starved timers).
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { runtime, runtimeArgs, test as harnessTest } from "./harness.ts";
import { repoRoot } from "./support/subprocess.ts";
import * as chosen from "../src/net/udp.ts";
import type { BindUdpOptions, UdpAddr, UdpSocket } from "../src/net/udp.ts";

type Bind = (options: BindUdpOptions) => Promise<UdpSocket>;

/** Every UDP implementation of this runtime. */
const implementations: [string, Bind][] = runtime === "deno"
  ? [
    ["epoll", (o) => import("../src/net/udp_epoll.ts").then((m) => m.bindUdp(o, () => true))],
    ["node:dgram", (await import("../src/net/udp_dgram.ts")).bindUdp],
  ]
  : [["node:dgram", chosen.bindUdp]];
if (runtime === "deno") {
  // The implementation the suite's DTLS tests run on: where it cannot load, they do not test it.
  const { epollAvailable } = await import("../src/net/reactor.ts");
  assert.ok(epollAvailable(), "the epoll transport does not load on this Deno");
}

let bind: Bind = chosen.bindUdp;
/** The implementation under test. */
let label = "";

/**
 * Each test once per implementation, named after it (`only`: just that one, for a property of
 * our own code that a runtime's `node:dgram` does not promise).
 */
function test(
  name: string,
  fn: () => Promise<void>,
  options?: { timeout?: number; only?: string },
): void {
  for (const [which, implementation] of implementations) {
    if (options?.only !== undefined && which !== options.only) continue;
    harnessTest(`UDP ${which}: ${name}`, () => {
      bind = implementation;
      label = which;
      return fn();
    }, options);
  }
}

/** A bound socket that collects what it receives; `next()` waits for the next datagram. */
async function collector(options: Partial<BindUdpOptions> = {}): Promise<{
  socket: UdpSocket;
  received: [Uint8Array, UdpAddr][];
  errors: Error[];
  next(): Promise<[Uint8Array, UdpAddr]>;
}> {
  const received: [Uint8Array, UdpAddr][] = [];
  const errors: Error[] = [];
  let wake: (() => void) | null = null;
  let taken = 0;
  const socket = await bind({
    hostname: "127.0.0.1",
    ...options,
    onDatagram: (datagram, from) => {
      received.push([datagram, from]);
      wake?.();
    },
    onError: (error) => errors.push(error),
  });
  return {
    socket,
    received,
    errors,
    async next() {
      const deadline = Date.now() + 5_000;
      while (received.length <= taken) {
        if (Date.now() > deadline) throw new Error("no datagram within 5 s");
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
        wake = null;
      }
      return received[taken++]!;
    },
  };
}

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

test("datagrams both ways, each with its sender's address", async () => {
  const a = await collector();
  const b = await collector();
  try {
    assert.equal(a.socket.localAddr.transport, "udp");
    assert.equal(a.socket.localAddr.hostname, "127.0.0.1");
    assert.ok(a.socket.localAddr.port > 0);
    a.socket.send(bytes("ping"), b.socket.localAddr);
    const [ping, fromA] = await b.next();
    assert.equal(text(ping), "ping");
    assert.deepEqual(fromA, a.socket.localAddr);
    b.socket.send(bytes("pong"), fromA);
    const [pong, fromB] = await a.next();
    assert.equal(text(pong), "pong");
    assert.deepEqual(fromB, b.socket.localAddr);
    // A third socket: the receiver tells the two senders apart.
    const c = await collector();
    try {
      c.socket.send(bytes("from c"), b.socket.localAddr);
      a.socket.send(bytes("from a"), b.socket.localAddr);
      const got = [await b.next(), await b.next()].map(([d, from]) => `${text(d)}@${from.port}`);
      assert.deepEqual(got.sort(), [
        `from a@${a.socket.localAddr.port}`,
        `from c@${c.socket.localAddr.port}`,
      ]);
    } finally {
      await c.socket.close();
    }
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await a.socket.close();
    await b.socket.close();
  }
});

test("500 datagrams of 1 KiB, in bursts of 50: each arrives whole and stays as delivered", async () => {
  const a = await collector();
  const b = await collector();
  try {
    // Bursts small enough for the receiver's socket buffer (about 200 KiB by default): UDP drops
    // what does not fit, and one process cannot read while it is still sending.
    for (let burst = 0; burst < 10; burst++) {
      for (let i = burst * 50; i < (burst + 1) * 50; i++) {
        const datagram = new Uint8Array(1024).fill(i & 0xff);
        new DataView(datagram.buffer).setUint32(0, i);
        a.socket.send(datagram, b.socket.localAddr);
      }
      const order: number[] = [];
      for (let i = 0; i < 50; i++) {
        const [datagram] = await b.next();
        assert.equal(datagram.length, 1024);
        const index = new DataView(datagram.buffer, datagram.byteOffset).getUint32(0);
        assert.equal(datagram[1023], index & 0xff);
        order.push(index);
      }
      const sent = Array.from({ length: 50 }, (_, i) => burst * 50 + i);
      assert.deepEqual([...order].sort((x, y) => x - y), sent);
      // UDP promises no order, and Deno's node:dgram sends a burst last first; ours keeps it
      // (each sendto goes out before the next one is made, and loopback keeps their order).
      if (label === "epoll") assert.deepEqual(order, sent);
    }
    // Delivered datagrams are the handler's to keep: none was overwritten by a later one.
    for (const [datagram] of b.received) {
      const index = new DataView(datagram.buffer, datagram.byteOffset).getUint32(0);
      assert.ok(datagram.every((x, i) => i < 4 || x === (index & 0xff)));
    }
  } finally {
    await a.socket.close();
    await b.socket.close();
  }
});

test("the largest datagram (65,507 bytes) arrives whole", async () => {
  const a = await collector();
  const b = await collector();
  try {
    const big = new Uint8Array(65_507).map((_, i) => i * 7);
    a.socket.send(big, b.socket.localAddr);
    const [datagram] = await b.next();
    assert.equal(datagram.length, big.length);
    // (node:dgram delivers a Buffer: compared as plain bytes)
    assert.deepEqual(new Uint8Array(datagram.buffer, datagram.byteOffset, datagram.length), big);
  } finally {
    await a.socket.close();
    await b.socket.close();
  }
});

test("IPv6 loopback: both ways, with IPv6 addresses", async () => {
  const a = await collector({ hostname: "::1" });
  const b = await collector({ hostname: "::1" });
  try {
    assert.equal(a.socket.localAddr.hostname, "::1");
    a.socket.send(bytes("six"), b.socket.localAddr);
    const [datagram, from] = await b.next();
    assert.equal(text(datagram), "six");
    assert.deepEqual(from, a.socket.localAddr);
  } finally {
    await a.socket.close();
    await b.socket.close();
  }
});

test("binding a port in use rejects with EADDRINUSE; the failed socket leaves nothing open", async () => {
  const a = await collector();
  try {
    await assert.rejects(
      bind({ hostname: "127.0.0.1", port: a.socket.localAddr.port, onDatagram: () => {} }),
      (error: { code?: string }) => error.code === "EADDRINUSE",
    );
  } finally {
    await a.socket.close();
  }
});

test("close(): what was sent before it goes out, nothing is delivered after it; idempotent", async () => {
  const a = await collector();
  const b = await collector();
  a.socket.send(bytes("last words"), b.socket.localAddr);
  const closing = a.socket.close();
  assert.equal(a.socket.close(), closing, "a second close() returns the same promise");
  await closing;
  a.socket.send(bytes("after close"), b.socket.localAddr); // a no-op, no throw
  const [datagram] = await b.next();
  assert.equal(text(datagram), "last words");
  // Nothing reaches a closed socket's handler.
  const port = b.socket.localAddr;
  await b.socket.close();
  const c = await collector();
  try {
    c.socket.send(bytes("too late"), port);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(b.received.length, 1);
    assert.deepEqual(a.errors, []);
  } finally {
    await c.socket.close();
  }
});

// Ours only (Deno): our receive loop takes every queued datagram without waiting, so it must yield
// now and then. A runtime's node:dgram is that runtime's event loop: Bun's delivered every
// datagram of a flood (1,857 and 2,082 of them) before a timer ran, in the version matrix and on
// the host (Bun 1.4.5).
test(
  "a socket that never runs dry does not starve timers (a peer in another process floods it)",
  async () => {
    let received = 0;
    let firedAt = -1;
    const socket = await bind({
      hostname: "127.0.0.1",
      onDatagram: () => {
        if (received++ === 0) setTimeout(() => (firedAt = received), 0);
        // A slow consumer (50 us per datagram): the socket's queue never empties.
        const until = performance.now() + 0.05;
        while (performance.now() < until) { /* busy */ }
      },
    });
    const count = 20_000;
    const child = spawn(
      process.execPath,
      runtimeArgs("tests/fixtures/udp_flood.ts", [String(socket.localAddr.port), String(count)]),
      { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] },
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      assert.equal(await exited, 0);
      const deadline = Date.now() + 10_000;
      while (firedAt < 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await socket.close();
    }
    assert.ok(received > 0, "nothing arrived");
    // Receives that complete at once must still let the event loop run now and then: the timer
    // fires while datagrams are still arriving, not after the last one.
    assert.ok(
      firedAt >= 0 && firedAt < received,
      `the timer ran only after ${firedAt} of ${received} datagrams`,
    );
  },
  { timeout: 60_000, only: "epoll" },
);
