/**
 * Benchmark DTLS client: this library's `connectDtls()`, on whichever runtime runs it.
 *
 *   deno run -A bench/clients/libssl_ffi_dtls.ts <work> <port> <ca.pem> [args]
 *   bun bench/clients/libssl_ffi_dtls.ts <work> <port> <ca.pem> [args]
 *   node bench/clients/libssl_ffi_dtls.ts <work> <port> <ca.pem> [args]  (Node 24, 26)
 *
 * Works, as bench/native/dtls_client.c does them against an echo server
 * (bench/native/dtls_server.c):
 * - `handshakes <seconds>`: sequential new association (new UDP socket, cookie exchange, full
 *   handshake) + one datagram `PING\n` and its echo + close_notify;
 * - `datagrams <seconds> <size>`: one association; a `size`-byte datagram, wait for its echo,
 *   again: echoed datagrams per second.
 *
 * Prints one JSON line: `{"work","value","unit","cpu","cipher"}`.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { connectDtls, type DtlsConnection } from "../../mod.ts";

const [work, portArg, caPath, ...rest] = process.argv.slice(2);
if (work === undefined || portArg === undefined || caPath === undefined) {
  throw new Error("usage: libssl_ffi_dtls.ts <work> <port> <ca.pem> [args]");
}
const options = {
  hostname: "127.0.0.1",
  servername: "localhost",
  port: Number(portArg),
  caCerts: [readFileSync(caPath, "utf8")],
};
const ping = new TextEncoder().encode("PING\n");
let cipher = "none";

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
let cpuBaseline = 0;

function report(value: number, unit: string): void {
  console.log(JSON.stringify({ work, value, unit, cpu: cpuSeconds() - cpuBaseline, cipher }));
}

/** Sends `message` and checks that the next datagram is its echo. */
async function exchange(conn: DtlsConnection, message: Uint8Array): Promise<void> {
  conn.send(message);
  const back = await conn.receive();
  if (back === null || back.length !== message.length || back[0] !== message[0]) {
    throw new Error(`no echo (got ${back === null ? "close_notify" : `${back.length} bytes`})`);
  }
}

async function oneHandshake(): Promise<void> {
  const conn = await connectDtls(options);
  cipher = conn.cipher;
  await exchange(conn, ping);
  await conn.close();
}

/** Runs `step` for `seconds` after a 300 ms warm-up; returns the steps per second. */
async function rate(seconds: number, step: () => Promise<void>): Promise<number> {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await step();
  cpuBaseline = cpuSeconds();
  let count = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    await step();
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

switch (work) {
  case "handshakes":
    report(await rate(Number(rest[0]), oneHandshake), "handshakes/s");
    break;
  case "datagrams": {
    const conn = await connectDtls(options);
    cipher = conn.cipher;
    const message = new Uint8Array(Number(rest[1] ?? 1024)).fill(0x61);
    report(await rate(Number(rest[0]), () => exchange(conn, message)), "datagrams/s");
    await conn.close();
    break;
  }
  default:
    throw new Error(`unknown work ${work}`);
}
