/**
 * What `Connection` costs per 1 KiB round trip, on whichever runtime runs it: the same echo
 * exchange through `TlsEngine` driven by hand over this library's own transport (`connectTcp`:
 * the epoll transport on Deno, `Bun.connect` on Bun, `node:net` on Node.js), and through the
 * whole `connect()`, interleaved in one process, against the native server of the benchmark
 * (`bench/native/server.c`, `ECHO <size>`):
 *
 *   bash bench/native/build.sh
 *   taskset -c 0 bench/native/build/server 0 server.pem server.key      # prints LISTENING <port>
 *   taskset -c 0 node_modules/.bin/deno run -A bench/rtt_layers.ts <port> ca.pem [seconds] [rounds]
 *   taskset -c 0 node_modules/.bin/bun bench/rtt_layers.ts <port> ca.pem [seconds] [rounds]
 *
 * Prints, per layer and round, the round trips per second and the process's CPU per round trip
 * (user + system, all threads). `RTT_LAYERS=connect()` runs only that layer (e.g. under `perf`).
 * Both layers use the same `TlsContext` configuration, the same
 * socket and the same OpenSSL calls per record; what differs is `Connection`'s write batch, read
 * queue and their promises. Measured 2026-12-07: README, "What the profiles say", round trips.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { connect, type Connection, TlsContext, TlsEngine } from "../mod.ts";
import { connectTcp } from "../src/net/tcp.ts";

const [portArg, caPath, secondsArg, roundsArg] = process.argv.slice(2);
if (portArg === undefined || caPath === undefined) {
  throw new Error("usage: rtt_layers.ts <port> <ca.pem> [seconds] [rounds]");
}
const port = Number(portArg);
const seconds = Number(secondsArg ?? 3);
const rounds = Number(roundsArg ?? 3);
const caPem = readFileSync(caPath, "utf8");
const SIZE = 1024;
const message = new Uint8Array(SIZE).fill(0x61);
const back = new Uint8Array(SIZE);
const command = new TextEncoder().encode(`ECHO ${SIZE}\n`);

/** One echo session: a round trip, and how to end it. */
interface Session {
  roundTrip(): Promise<void>;
  close(): void;
}

/** `TlsEngine` over `connectTcp`'s stream, driven by hand: no `Connection`. */
async function engineSession(context: TlsContext): Promise<Session> {
  const stream = await connectTcp({ hostname: "127.0.0.1", port });
  const engine = new TlsEngine(context, { servername: "localhost" });
  const input = new Uint8Array(64 * 1024);
  const flush = async () => {
    const out = engine.outgoing();
    if (out !== null) await stream.write(out);
  };
  const receive = async () => {
    const n = await stream.read(input);
    if (n === null) throw new Error("end of stream");
    engine.receive(input.subarray(0, n));
  };
  for (;;) {
    const step = engine.handshake();
    await flush();
    if (step.status === "done") break;
    if (step.status !== "want-read") throw new Error(`handshake: ${step.status}`);
    await receive();
  }
  engine.write(command);
  await flush();
  return {
    async roundTrip() {
      engine.write(message);
      await flush();
      for (let got = 0; got < SIZE;) {
        const n = engine.read(back.subarray(got));
        if (n === null) throw new Error("end of stream");
        if (n > 0) got += n;
        else await receive();
      }
    },
    close() {
      engine.close();
      stream.close();
    },
  };
}

/** The whole `connect()` and `Connection`. */
async function connectSession(): Promise<Session> {
  const conn: Connection = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [caPem],
  });
  await conn.write(command);
  return {
    async roundTrip() {
      await conn.write(message);
      for (let got = 0; got < SIZE;) {
        const n = await conn.read(back.subarray(got));
        if (n === null) throw new Error("end of stream");
        got += n;
      }
    },
    close: () => conn.close(),
  };
}

/** Round trips for `seconds` after a 300 ms warm-up: the rate and the CPU per round trip. */
async function measure(session: Session): Promise<{ rate: number; cpuUs: number }> {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await session.roundTrip();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const end = started + seconds * 1000;
  let count = 0;
  while (performance.now() < end) {
    await session.roundTrip();
    count++;
  }
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rate: count / elapsed, cpuUs: (used.user + used.system) / count };
}

const context = new TlsContext("client", { caCerts: [caPem] });
const only = process.env.RTT_LAYERS?.split(",");
const layers = ([
  ["engine", () => engineSession(context)],
  ["connect()", connectSession],
] as [string, () => Promise<Session>][]).filter(([name]) => only?.includes(name) ?? true);
for (let round = 0; round < rounds; round++) {
  for (const [name, open] of layers) {
    const session = await open();
    const { rate, cpuUs } = await measure(session);
    session.close();
    console.log(
      `${name.padEnd(10)} ${Math.round(rate)} round trips/s, CPU per round trip ${
        cpuUs.toFixed(1)
      } us`,
    );
  }
}
context.close();
