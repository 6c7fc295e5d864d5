/**
 * Benchmark client: this library, on whichever runtime runs it.
 *
 *   deno run -A bench/clients/libssl_ffi.ts <work> <port> <ca.pem> [args]
 *   bun bench/clients/libssl_ffi.ts <work> <port> <ca.pem> [args]
 *   node bench/clients/libssl_ffi.ts <work> <port> <ca.pem> [args]  (Node 24, 26)
 *
 * Works (the protocol is in bench/README.md): `bulk <bytes>`, `handshakes <seconds>`,
 * `rtt <seconds> <size>`, `idle <count>`, `longlived <bytes> <handshakes>`. Prints one JSON line:
 * `{"work","value","unit"}`.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { connect, type Connection, nativeMemoryInUse } from "../../mod.ts";
import { longLived } from "./long_lived.ts";

const [work, portArg, caPath, ...rest] = process.argv.slice(2);
if (work === undefined || portArg === undefined || caPath === undefined) {
  throw new Error("usage: libssl_ffi.ts <work> <port> <ca.pem> [args]");
}
const options = {
  hostname: "127.0.0.1",
  servername: "localhost",
  port: Number(portArg),
  caCerts: [readFileSync(caPath, "utf8")],
};
const encoder = new TextEncoder();

/** The process's CPU seconds so far (user + system). */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function report(
  value: number,
  unit: string,
  extra: { native?: number | undefined; first?: number } = {},
): void {
  // CPU seconds (user + system) of the whole process: steadier than wall time on a busy machine.
  console.log(JSON.stringify({ work, value, unit, cpu: cpuSeconds(), ...extra }));
}

async function readExactly(conn: Connection, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const n = await conn.read(buf.subarray(off));
    if (n === null) throw new Error("unexpected EOF");
    off += n;
  }
}

/** Receives `bytes` on one connection: MB/s and the CPU seconds it took. */
async function receive(bytes: number): Promise<{ mbps: number; cpu: number }> {
  const conn = await connect(options);
  const buf = new Uint8Array(256 * 1024);
  const started = performance.now();
  const cpu = cpuSeconds();
  await conn.write(encoder.encode(`BULK ${bytes}\n`));
  let total = 0;
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) total += n;
  const seconds = (performance.now() - started) / 1000;
  conn.close();
  if (total !== bytes) throw new Error(`received ${total} of ${bytes} bytes`);
  return { mbps: bytes / seconds / 1e6, cpu: cpuSeconds() - cpu };
}

async function bulk(bytes: number): Promise<void> {
  const { mbps, cpu } = await receive(bytes);
  console.log(JSON.stringify({ work, value: mbps, unit: "MB/s", cpu }));
}

async function oneHandshake(): Promise<void> {
  const conn = await connect(options);
  await conn.write(encoder.encode("PING\n"));
  const buf = new Uint8Array(16);
  await readExactly(conn, buf.subarray(0, 5)); // "PONG\n"
  conn.close();
}

async function handshakes(seconds: number): Promise<void> {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await oneHandshake();
  let count = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    await oneHandshake();
    count++;
  }
  report(count / ((performance.now() - started) / 1000), "handshakes/s");
}

async function rtt(seconds: number, size: number): Promise<void> {
  const conn = await connect(options);
  await conn.write(encoder.encode(`ECHO ${size}\n`));
  const message = new Uint8Array(size).fill(0x61);
  const back = new Uint8Array(size);
  const roundTrip = async () => {
    await conn.write(message);
    await readExactly(conn, back);
  };
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await roundTrip();
  let count = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    await roundTrip();
    count++;
  }
  report(count / ((performance.now() - started) / 1000), "round trips/s");
  conn.close();
}

async function idle(count: number): Promise<void> {
  const conns: Connection[] = [];
  const openIdle = async () => {
    const conn = await connect(options);
    await conn.write(encoder.encode("IDLE\n"));
    conns.push(conn);
  };
  // The protocol's two batches (bench/run.ts, "idle"): one-off costs land in the first.
  await openIdle();
  const start = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const before = process.memoryUsage().rss;
  // The malloc heap in use (glibc: OpenSSL's allocations, plus the runtime's own malloc use).
  const heapBefore = nativeMemoryInUse();
  for (let i = 0; i < count; i++) await openIdle();
  const after = process.memoryUsage().rss;
  const heapAfter = nativeMemoryInUse();
  const native = heapBefore === null || heapAfter === null
    ? undefined
    : (heapAfter - heapBefore) / count;
  report((after - before) / count, "bytes/connection", { native, first: (before - start) / count });
  for (const c of conns) c.close();
}

switch (work) {
  case "bulk":
    await bulk(Number(rest[0]));
    break;
  case "handshakes":
    await handshakes(Number(rest[0]));
    break;
  case "rtt":
    await rtt(Number(rest[0]), Number(rest[1] ?? 1024));
    break;
  case "idle":
    await idle(Number(rest[0]));
    break;
  case "longlived":
    await longLived(
      () => receive(Number(rest[0])),
      oneHandshake,
      Number(rest[1]),
    );
    break;
  default:
    throw new Error(`unknown work ${work}`);
}
