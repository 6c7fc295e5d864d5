/**
 * Benchmark client: Deno's own TLS (`Deno.connect` + `Deno.startTls`, rustls underneath).
 *
 *   deno run -A bench/clients/deno_tls.ts <work> <port> <ca.pem> [args]
 *
 * Works: `bulk <bytes>`, `handshakes <seconds>`, `rtt <seconds> <size>`, `idle <count>`,
 * `longlived <bytes> <handshakes>`.
 * Connects to 127.0.0.1 with TCP_NODELAY, SNI "localhost", verifies the chain against <ca.pem> and
 * the name "localhost". Prints one JSON line: `{"work","value","unit"}`.
 *
 * @module
 */
import process from "node:process";
import { longLived } from "./long_lived.ts";

const WARM_UP_MS = 300;

const [work, portArg, caPath, ...rest] = Deno.args;
if (work === undefined || portArg === undefined || caPath === undefined) {
  console.error("usage: deno_tls.ts <work> <port> <ca.pem> [args]");
  Deno.exit(2);
}
const port = Number(portArg);
const caCerts = [Deno.readTextFileSync(caPath)];
const encoder = new TextEncoder();

/** The process's CPU seconds so far (user + system). */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function report(value: number, unit: string, extra: { first?: number } = {}): void {
  // CPU seconds (user + system) of the whole process: steadier than wall time on a busy machine.
  console.log(JSON.stringify({ work, value, unit, cpu: cpuSeconds(), ...extra }));
}

/** A new TCP connection with a completed, verified handshake. */
async function open(): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, { hostname: "localhost", caCerts });
  await conn.handshake();
  return conn;
}

async function writeAll(conn: Deno.Conn, p: Uint8Array): Promise<void> {
  for (let off = 0; off < p.length;) off += await conn.write(p.subarray(off));
}

async function readExactly(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const n = await conn.read(buf.subarray(off));
    if (n === null) throw new Error("unexpected EOF");
    off += n;
  }
}

/** Receives `bytes` on one connection: MB/s and the CPU seconds it took. */
async function receive(bytes: number): Promise<{ mbps: number; cpu: number }> {
  const conn = await open();
  const buf = new Uint8Array(256 * 1024);
  const started = performance.now();
  const cpu = cpuSeconds();
  await writeAll(conn, encoder.encode(`BULK ${bytes}\n`));
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
  const conn = await open();
  await writeAll(conn, encoder.encode("PING\n"));
  const pong = new Uint8Array(5);
  await readExactly(conn, pong);
  if (new TextDecoder().decode(pong) !== "PONG\n") throw new Error("bad answer to PING");
  conn.close();
}

async function handshakes(seconds: number): Promise<void> {
  const warmUntil = performance.now() + WARM_UP_MS;
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
  const conn = await open();
  await writeAll(conn, encoder.encode(`ECHO ${size}\n`));
  const message = new Uint8Array(size).fill(0x61);
  const back = new Uint8Array(size);
  const warmUntil = performance.now() + WARM_UP_MS;
  while (performance.now() < warmUntil) {
    await writeAll(conn, message);
    await readExactly(conn, back);
  }
  let count = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    await writeAll(conn, message);
    await readExactly(conn, back);
    count++;
  }
  report(count / ((performance.now() - started) / 1000), "round trips/s");
  conn.close();
}

async function idle(count: number): Promise<void> {
  const conns: Deno.TlsConn[] = [];
  const openIdle = async () => {
    const conn = await open();
    await writeAll(conn, encoder.encode("IDLE\n"));
    conns.push(conn);
  };
  // The protocol's two batches (bench/run.ts, "idle"): one-off costs land in the first.
  await openIdle();
  const start = Deno.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const before = Deno.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const after = Deno.memoryUsage().rss;
  report((after - before) / count, "bytes/connection", { first: (before - start) / count });
  for (const conn of conns) conn.close();
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
    console.error(`unknown work ${work}`);
    Deno.exit(2);
}
