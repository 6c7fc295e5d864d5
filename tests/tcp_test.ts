/**
 * The TCP transports of the current runtime (`src/net/tcp.ts`: `Bun.connect` on Bun, on Deno both
 * the libc socket transport with its shared epoll waiter and `Deno.connect`, `node:net` on
 * Node.js) under what the rest of the suite rarely reaches: a reader much slower than its writer
 * (backpressure must reach the writer, memory must stay bounded), the promises a stream makes
 * about buffers (`chunksStayIntact`, `releasesWrites`: the connection skips copies on the strength
 * of them), a reset in the middle of a write, half-close, name resolution and error names, 200
 * connections at once, and a socket that never runs dry (no starved timers).
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { runtime, runtimeArgs, test as harnessTest } from "./harness.ts";
import { repoRoot } from "./support/subprocess.ts";
import * as chosen from "../src/net/tcp.ts";
import type { ByteStream, NetAddr, TcpTransport as Transport } from "../src/net/stream.ts";

/**
 * Every transport of this runtime. Deno has two: the epoll one `tcp.ts` picks, and
 * `Deno.connect`, which it falls back to (no permission granted up front, no libc, a host name
 * to listen on, `LIBSSL_FFI_TCP=runtime`).
 */
const transports: [string, Transport][] = runtime === "deno"
  ? [
    ["epoll", await import("../src/net/tcp_epoll.ts")],
    ["Deno.connect", await import("../src/net/tcp_deno.ts")],
  ]
  : [[runtime === "bun" ? "Bun.connect" : "node:net", chosen]];
if (runtime === "deno") {
  const epoll = await import("../src/net/tcp_epoll.ts");
  // The transport the suite runs on: where it cannot load, Deno's suite is not testing it.
  assert.ok(epoll.epollAvailable(), "the epoll transport does not load on this Deno");
}

let connectTcp: Transport["connectTcp"] = chosen.connectTcp;
let listenTcp: Transport["listenTcp"] = chosen.listenTcp;

/** Each test once per transport, named after it. */
function test(name: string, fn: () => Promise<void>, options?: { timeout?: number }): void {
  for (const [label, transport] of transports) {
    harnessTest(`${label}: ${name}`, () => {
      connectTcp = transport.connectTcp;
      listenTcp = transport.listenTcp;
      return fn();
    }, options);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connected pair over loopback: `client` from connectTcp, `server` from the listener. */
async function pair(): Promise<{
  client: ByteStream<NetAddr>;
  server: ByteStream<NetAddr | null>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 8 });
  const accepted = listener.accept();
  const client = await connectTcp({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = (await accepted)!;
  listener.close();
  return {
    client,
    server,
    [Symbol.asyncDispose]: () => {
      client.close();
      server.close();
      return Promise.resolve();
    },
  };
}

/** The byte at `offset` of the test pattern (period 251, so that chunk edges never line up). */
const patternAt = (offset: number) => offset % 251;

function pattern(offset: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = patternAt(offset + i);
  return bytes;
}

/** Checks that `chunk` holds the pattern from `offset` on (every 61st byte, and the last). */
function assertPattern(chunk: Uint8Array, offset: number): void {
  for (let i = 0; i < chunk.length; i += 61) {
    if (chunk[i] !== patternAt(offset + i)) assert.fail(`byte ${offset + i} is wrong`);
  }
  const last = chunk.length - 1;
  if (last >= 0 && chunk[last] !== patternAt(offset + last)) assert.fail("a chunk's end is wrong");
}

/**
 * Reads until the end as the connection does: with readLazily() when the stream has it (fresh
 * 256 KiB buffers), else with readChunk(), else read(); returns the chunks.
 */
async function readAll(stream: ByteStream<NetAddr | null>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  if (stream.readLazily !== undefined) {
    for (;;) {
      let taken = new Uint8Array(0);
      const n = await stream.readLazily({
        take: () => (taken = new Uint8Array(256 * 1024)),
        giveBack: () => {},
      });
      if (n === null) return chunks;
      chunks.push(taken.subarray(0, n));
    }
  }
  if (stream.readChunk !== undefined) {
    for (let c = await stream.readChunk(); c !== null; c = await stream.readChunk()) chunks.push(c);
    return chunks;
  }
  for (;;) {
    const buffer = new Uint8Array(256 * 1024);
    const n = await stream.read(buffer);
    if (n === null) return chunks;
    chunks.push(buffer.subarray(0, n));
  }
}

/** What Connection takes for a reset (connection.ts `isReset`), on every runtime. */
function isReset(error: unknown): boolean {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === "ConnectionReset" || e?.code === "ECONNRESET" || e?.code === "EPIPE" ||
    e?.name === "BrokenPipe";
}

for (const reader of ["server", "client"] as const) {
  test(
    `a reader that stops (the ${reader}): the writer is held back (bounded memory), then every ` +
      "byte arrives in order",
    async () => {
      await using p = await pair();
      // The client side is the one that reads through node:net's onread on Node.js.
      const [from, to] = reader === "server" ? [p.client, p.server] : [p.server, p.client];
      const total = 48 << 20;
      const piece = 64 * 1024;
      let sent = 0;
      const writing = (async () => {
        while (sent < total) {
          await from.write(pattern(sent, piece)); // a fresh buffer each time: no reuse question
          sent += piece;
        }
        await from.closeWrite();
      })();
      await sleep(400); // nobody reads meanwhile
      // What the writer got rid of sits in the kernel's buffers (a few MiB on loopback) and the
      // reading stream's own (node:net and Bun: paused above 1 MiB): far from all of it.
      assert.ok(sent < 24 << 20, `the writer was not held back: ${sent} bytes taken unread`);
      let received = 0;
      for (const chunk of await readAll(to)) {
        assertPattern(chunk, received);
        received += chunk.length;
      }
      await writing;
      assert.equal(received, total);
    },
    { timeout: 60_000 },
  );
}

test("chunksStayIntact: chunks kept from readChunk() still hold their bytes after later reads", async (): Promise<void> => {
  await using p = await pair();
  if (p.server.readChunk === undefined || p.server.chunksStayIntact !== true) return; // no claim
  const total = 16 << 20;
  const writing = (async () => {
    for (let off = 0; off < total; off += 256 * 1024) {
      await p.client.write(pattern(off, 256 * 1024));
    }
    await p.client.closeWrite();
  })();
  const chunks = await readAll(p.server); // all kept, checked only at the end
  await writing;
  let offset = 0;
  for (const chunk of chunks) {
    assertPattern(chunk, offset);
    offset += chunk.length;
  }
  assert.equal(offset, total);
});

// node:net's client sockets read through `onread` into one shared buffer: each read is copied
// into the buffer of the read that waits, taken only once bytes are there.
if (runtime !== "deno" && runtime !== "bun") {
  harnessTest(
    "node:net client: readLazily takes a buffer only once bytes are there; what does not fit " +
      "comes next, and the end after it",
    async () => {
      await using p = await pair();
      assert.ok(p.client.readLazily !== undefined, "the node:net client stream reads lazily");
      const events: string[] = [];
      const buffers = (size: number) => ({
        take: () => {
          events.push(`take ${size}`);
          return new Uint8Array(size);
        },
        giveBack: (buffer: Uint8Array) => events.push(`giveBack ${buffer.length}`),
      });
      let into = new Uint8Array(0);
      const lazy = buffers(100);
      const reading = p.client.readLazily({
        take: () => (into = lazy.take()),
        giveBack: lazy.giveBack,
      });
      await sleep(20);
      assert.deepEqual(events, [], "no buffer taken while nothing came");
      // 150 bytes into a 100-byte buffer: the first 100 now, the other 50 with the next read.
      await p.server.write(pattern(0, 150));
      assert.equal(await reading, 100);
      assertPattern(into, 0);
      const rest = new Uint8Array(64);
      assert.equal(await p.client.read(rest), 50);
      assertPattern(rest.subarray(0, 50), 100);
      await p.server.closeWrite();
      assert.equal(await p.client.readLazily(buffers(10)), null);
      assert.deepEqual(events, ["take 100"], "nothing given back, one buffer taken in all");
    },
  );
}

// The epoll transport reads lazily too (the others hand over chunks, or wait with the buffer).
if (runtime === "deno") {
  harnessTest(
    "epoll: readLazily gives its buffer back before it waits and takes one when bytes are there",
    async () => {
      connectTcp = transports[0]![1].connectTcp;
      listenTcp = transports[0]![1].listenTcp;
      await using p = await pair();
      assert.ok(p.client.readLazily !== undefined, "the epoll stream reads lazily");
      const events: string[] = [];
      const buffers = {
        take: () => {
          events.push("take");
          return new Uint8Array(100);
        },
        giveBack: (buffer: Uint8Array) => events.push(`giveBack ${buffer.length}`),
      };
      const reading = p.client.readLazily(buffers);
      // Nothing sent yet: the buffer was taken for one attempt and given back before the wait.
      await sleep(20);
      assert.deepEqual(events, ["take", "giveBack 100"]);
      await p.server.write(pattern(0, 10));
      assert.equal(await reading, 10);
      assert.deepEqual(events, ["take", "giveBack 100", "take"]);
      // Bytes already there: one take, nothing given back.
      await p.server.write(pattern(10, 5));
      await sleep(20);
      events.length = 0;
      assert.equal(await p.client.readLazily(buffers), 5);
      assert.deepEqual(events, ["take"]);
    },
  );
}

test("releasesWrites: a buffer rewritten once its write settled sends what it held then", async (): Promise<void> => {
  await using p = await pair();
  const releases = p.client.releasesWrites;
  if (releases !== true && typeof releases !== "number") return; // no claim
  // Large enough for the claim, and for partial writes while the reader is slow.
  const size = Math.max(typeof releases === "number" ? releases : 0, 512 * 1024);
  const total = 64 * size;
  const buffer = new Uint8Array(size);
  const writing = (async () => {
    for (let off = 0; off < total; off += size) {
      buffer.set(pattern(off, size));
      await p.client.write(buffer);
    }
    buffer.fill(0); // a stream still holding it would now send zeros
    await p.client.closeWrite();
  })();
  await sleep(100);
  let received = 0;
  for (const chunk of await readAll(p.server)) {
    assertPattern(chunk, received);
    received += chunk.length;
  }
  await writing;
  assert.equal(received, total);
});

test("read() into a buffer smaller than the chunks: every byte, in order", async () => {
  await using p = await pair();
  const total = 3 << 20;
  const writing = (async () => {
    await p.client.write(pattern(0, total));
    await p.client.closeWrite();
  })();
  const buffer = new Uint8Array(1000); // chunks are larger: each is read in several parts
  let received = 0;
  for (let n = await p.server.read(buffer); n !== null; n = await p.server.read(buffer)) {
    assertPattern(buffer.subarray(0, n), received);
    received += n;
  }
  await writing;
  assert.equal(received, total);
});

test("a reset while writing: the write rejects with a reset", async () => {
  await using p = await pair();
  let failure: unknown = null;
  const writing = (async () => {
    try {
      for (;;) await p.client.write(new Uint8Array(256 * 1024));
    } catch (error) {
      failure = error;
    }
  })();
  await sleep(200); // the buffers fill up: the writer waits
  // Closing with unread bytes makes the kernel answer with a reset (RFC 2525 2.17).
  p.server.close();
  await writing;
  // (node:net cancels a write still queued with ECANCELED: tcp_node.ts reports the reset.)
  assert.ok(isReset(failure), `not a reset: ${String(failure)}`);
  // What a read then gives differs (Deno: the end; Bun, node:net: the reset), but never data.
  const next = await p.client.read(new Uint8Array(16)).catch((e) => (isReset(e) ? null : e));
  assert.equal(next, null);
});

test("closeWrite: the peer reads everything, then the end; the other direction stays open", async () => {
  await using p = await pair();
  const size = 3 << 20;
  await p.client.write(pattern(0, size));
  await p.client.closeWrite();
  let received = 0;
  for (const chunk of await readAll(p.server)) {
    assertPattern(chunk, received);
    received += chunk.length;
  }
  assert.equal(received, size);
  // The server, after the client's FIN, still answers; the client still reads. (Not over
  // node:net, which is used without allowHalfOpen: it answers the FIN with its own.)
  if (runtime !== "node") {
    await p.server.write(new TextEncoder().encode("done"));
    await p.server.closeWrite();
  }
  const back = await readAll(p.client);
  assert.equal(new TextDecoder().decode(Buffer.concat(back)), runtime === "node" ? "" : "done");
  await assert.rejects(p.client.write(new Uint8Array(1))); // after closeWrite(): refused
});

test("close() fails a pending read and later writes; addresses and the listener's addr are known", async () => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 8 });
  assert.equal(listener.addr.hostname, "127.0.0.1");
  assert.ok(listener.addr.port > 0);
  const accepted = listener.accept();
  const client = await connectTcp({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = (await accepted)!;
  assert.deepEqual(server.remoteAddr, client.localAddr);
  assert.deepEqual(client.remoteAddr, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const pending = client.read(new Uint8Array(16));
  client.close();
  client.close(); // idempotent
  await assert.rejects(pending);
  await assert.rejects(client.write(new Uint8Array(1)));
  // The server sees the end (or a reset) of the client.
  const end = await server.read(new Uint8Array(16)).catch((e) => (isReset(e) ? null : e));
  assert.equal(end, null);
  server.close();
  const next = listener.accept();
  listener.close();
  assert.equal(await next, null);
  assert.equal(await listener.accept(), null);
});

test("a host name is resolved (localhost), and the connection works both ways", async () => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 8 });
  const accepted = listener.accept();
  // localhost may resolve to ::1 first: a refused ::1 must fall through to 127.0.0.1.
  const client = await connectTcp({ hostname: "localhost", port: listener.addr.port });
  const server = (await accepted)!;
  listener.close();
  assert.equal(client.remoteAddr.hostname, "127.0.0.1");
  await client.write(new TextEncoder().encode("ping"));
  const buffer = new Uint8Array(16);
  assert.equal(new TextDecoder().decode(buffer.subarray(0, (await server.read(buffer))!)), "ping");
  client.close();
  server.close();
});

test("errors carry what callers test: refused, address in use, unknown host", async () => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 8 });
  const port = listener.addr.port;
  // The same port again: in use, at once (listen binds synchronously).
  assert.throws(
    () => listenTcp({ hostname: "127.0.0.1", port, maxQueued: 8 }),
    // Bun.listen says only that it failed: tcp_bun.ts names the candidates in its message.
    (e: Error & { code?: string }) =>
      e.name === "AddrInUse" || e.code === "EADDRINUSE" || /EADDRINUSE/.test(e.message),
  );
  listener.close();
  await assert.rejects(
    connectTcp({ hostname: "127.0.0.1", port }),
    (e: Error & { code?: string }) =>
      (e.name === "ConnectionRefused" || e.code === "ECONNREFUSED") && /refused/i.test(e.message),
  );
  await assert.rejects(connectTcp({ hostname: "no-such-host.invalid", port: 443 }));
});

test("200 connections at once: every echo arrives on its own connection", async () => {
  const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 256 });
  const count = 200;
  const servers: ByteStream<NetAddr | null>[] = [];
  const serving = (async () => {
    for (let i = 0; i < count; i++) {
      const server = (await listener.accept())!;
      servers.push(server);
      // Echo until the end, one read at a time: many reads wait on the poller together.
      void (async () => {
        const buffer = new Uint8Array(4096);
        for (let n = await server.read(buffer); n !== null; n = await server.read(buffer)) {
          await server.write(buffer.slice(0, n));
        }
        await server.closeWrite();
      })().catch(() => {});
    }
  })();
  const clients = await Promise.all(
    Array.from(
      { length: count },
      () => connectTcp({ hostname: "127.0.0.1", port: listener.addr.port }),
    ),
  );
  await serving;
  listener.close();
  try {
    // Ten rounds, all clients at once: each gets back exactly its own bytes.
    for (let round = 0; round < 10; round++) {
      await Promise.all(clients.map(async (client, i) => {
        const message = new TextEncoder().encode(`${i}:${round};`);
        await client.write(message);
        const back = new Uint8Array(message.length);
        for (let got = 0; got < back.length;) {
          const n = await client.read(back.subarray(got));
          assert.notEqual(n, null);
          got += n!;
        }
        assert.deepEqual(back, message);
      }));
    }
  } finally {
    for (const c of clients) c.close();
    for (const s of servers) s.close();
  }
}, { timeout: 30_000 });

test(
  "a socket that never runs dry does not starve timers (a peer in another process fills it)",
  async () => {
    const listener = listenTcp({ hostname: "127.0.0.1", port: 0, maxQueued: 8 });
    const total = 48 << 20;
    const child = spawn(
      process.execPath,
      runtimeArgs("tests/fixtures/tcp_blast.ts", [String(listener.addr.port), String(total)]),
      { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] },
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const server = (await listener.accept())!;
    listener.close();
    let received = 0;
    let firedAt = -1;
    try {
      const buffer = new Uint8Array(256 * 1024);
      for (let n = await server.read(buffer); n !== null; n = await server.read(buffer)) {
        if (received === 0) setTimeout(() => (firedAt = received), 0);
        received += n;
        // A slow consumer (1 ms per read): the socket stays full, so no read ever waits.
        const until = performance.now() + 1;
        while (performance.now() < until) { /* busy */ }
      }
    } finally {
      server.close();
    }
    assert.equal(await exited, 0);
    assert.equal(received, total);
    // Reads that complete at once must still let the event loop run now and then: the timer fires
    // during the transfer, not after its last byte.
    assert.ok(
      firedAt >= 0 && firedAt < total,
      `the timer ran only after ${firedAt} of ${total} bytes`,
    );
  },
  { timeout: 60_000 },
);
