/**
 * Benchmark client: `node:tls`, plain JS so that it runs unchanged under Node ("Node's tls") and
 * Bun ("Bun's node:tls").
 *
 *   node bench/clients/node_tls.mjs <work> <port> <ca.pem> [args]
 *   bun bench/clients/node_tls.mjs <work> <port> <ca.pem> [args]
 *
 * Works: `bulk <bytes>`, `handshakes <seconds>`, `rtt <seconds> <size>`, `idle <count>`.
 * Connects to 127.0.0.1 with SNI "localhost", verifies the chain against <ca.pem> and the name
 * "localhost". Prints one JSON line: `{"work","value","unit"}`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import process from "node:process";
import tls from "node:tls";
import { longLived } from "./long_lived.ts";

const WARM_UP_MS = 300;

const [work, portArg, caPath, ...rest] = process.argv.slice(2);
if (work === undefined || portArg === undefined || caPath === undefined) {
  console.error("usage: node_tls.mjs <work> <port> <ca.pem> [args]");
  process.exit(2);
}
/** @type {tls.ConnectionOptions} */
const options = {
  host: "127.0.0.1",
  port: Number(portArg),
  servername: "localhost",
  ca: readFileSync(caPath, "utf8"),
  minVersion: "TLSv1.3",
};

/** The process's CPU seconds so far (user + system). */
function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * @param {number} value
 * @param {string} unit
 * @param {{ first?: number }} [extra]
 */
function report(value, unit, extra = {}) {
  // CPU seconds (user + system) of the whole process: steadier than wall time on a busy machine.
  console.log(JSON.stringify({ work, value, unit, cpu: cpuSeconds(), ...extra }));
}

/**
 * A new TCP connection with a completed, verified handshake.
 * @returns {Promise<tls.TLSSocket>}
 */
function open() {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(options);
    // Node's tls.connect ignores a `noDelay` option (no TCP_NODELAY under strace); this works on
    // Node and Bun alike.
    socket.setNoDelay(true);
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

/**
 * Writes the command; `onData` sees every chunk until the end of the stream or an error.
 * @param {tls.TLSSocket} socket
 * @param {string} command
 * @param {(chunk: Buffer) => void} onData
 * @returns {Promise<void>}
 */
function run(socket, command, onData) {
  return new Promise((resolve, reject) => {
    socket.on("data", onData);
    socket.once("end", resolve);
    socket.once("error", reject);
    socket.write(command);
  });
}

/**
 * Receives `bytes` on one connection: MB/s and the CPU seconds it took.
 * @param {number} bytes
 * @returns {Promise<{ mbps: number, cpu: number }>}
 */
async function receive(bytes) {
  const socket = await open();
  let total = 0;
  const started = performance.now();
  const cpu = cpuSeconds();
  await run(socket, `BULK ${bytes}\n`, (chunk) => {
    total += chunk.length;
  });
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  if (total !== bytes) throw new Error(`received ${total} of ${bytes} bytes`);
  return { mbps: bytes / seconds / 1e6, cpu: cpuSeconds() - cpu };
}

/** @param {number} bytes */
async function bulk(bytes) {
  const { mbps, cpu } = await receive(bytes);
  console.log(JSON.stringify({ work, value: mbps, unit: "MB/s", cpu }));
}

async function oneHandshake() {
  const socket = await open();
  await /** @type {Promise<void>} */ (new Promise((resolve, reject) => {
    let got = "";
    socket.on("data", (/** @type {Buffer} */ chunk) => {
      got += chunk.toString("latin1");
      if (got.length < 5) return;
      if (got.slice(0, 5) !== "PONG\n") reject(new Error(`bad answer ${JSON.stringify(got)}`));
      resolve();
    });
    socket.once("error", reject);
    socket.once("end", () => reject(new Error("EOF before PONG")));
    socket.write("PING\n");
  }));
  socket.destroy();
}

/** @param {number} seconds */
async function handshakes(seconds) {
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

/** @param {number} seconds @param {number} size */
async function rtt(seconds, size) {
  const socket = await open();
  const message = Buffer.alloc(size, 0x61);
  socket.write(`ECHO ${size}\n`);
  // Event-driven request/response: the next message goes out once `size` bytes are back.
  const value = await /** @type {Promise<number>} */ (new Promise((resolve, reject) => {
    const warmUntil = performance.now() + WARM_UP_MS;
    let started = 0;
    let end = 0;
    let count = 0;
    let pending = size;
    socket.once("error", reject);
    socket.once("end", () => reject(new Error("EOF during round trips")));
    socket.on("data", (/** @type {Buffer} */ chunk) => {
      pending -= chunk.length;
      if (pending > 0) return;
      if (pending < 0) {
        reject(new Error("more bytes back than sent"));
        return;
      }
      pending = size;
      const now = performance.now();
      if (started === 0) {
        if (now >= warmUntil) {
          started = now;
          end = now + seconds * 1000;
        }
      } else {
        count++;
        if (now >= end) {
          resolve(count / ((now - started) / 1000));
          return;
        }
      }
      socket.write(message);
    });
    socket.write(message);
  }));
  report(value, "round trips/s");
  socket.destroy();
}

/** @param {number} count */
async function idle(count) {
  /** @type {tls.TLSSocket[]} */
  const sockets = [];
  const openIdle = async () => {
    const socket = await open();
    socket.write("IDLE\n");
    sockets.push(socket);
  };
  // The protocol's two batches (bench/run.ts, "idle"): one-off costs land in the first.
  await openIdle();
  const start = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) await openIdle();
  const after = process.memoryUsage().rss;
  report((after - before) / count, "bytes/connection", { first: (before - start) / count });
  for (const socket of sockets) socket.destroy();
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
    process.exit(2);
}
