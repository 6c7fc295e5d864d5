/**
 * Benchmark client for the "fetch" work: sequential `GET /` requests over one keep-alive HTTP/1.1
 * connection to an nginx that bench/run.ts starts, for a number of seconds, on whichever runtime
 * runs it, through one of two stacks:
 * - `libssl-ffi`: undici's `fetch` (the npm package) with `new Agent({ connect: tlsConnector() })`;
 * - `builtin`: the runtime's own `fetch` and TLS: Deno's with `Deno.createHttpClient({ caCerts })`,
 *   Bun's with `tls: { ca }`, Node's (undici inside, node:tls) with NODE_EXTRA_CA_CERTS set by the
 *   caller;
 * - `undici-node-tls`: undici's `fetch` with its own connector, i.e. the runtime's `node:tls`
 *   (`new Agent({ connect: { ca } })`): the same HTTP client as `libssl-ffi`, another TLS, so
 *   the difference between the two is the TLS layer's.
 *
 *   deno run -A bench/clients/fetch.ts fetch <port> <ca.pem> <seconds> <stack>
 *   bun bench/clients/fetch.ts fetch <port> <ca.pem> <seconds> <stack>
 *   NODE_EXTRA_CA_CERTS=<ca.pem> node bench/clients/fetch.ts fetch <port> <ca.pem> <seconds> builtin
 *
 * Prints one JSON line: `{"work","value","unit","cpu"}` (requests/s).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
// "undici/index.js", not "undici": Bun answers a bare `undici` import with a built-in stand-in
// whose Agent does nothing (its fetch is Bun's own); the file path gets the real package.
import { Agent, fetch as undiciFetch } from "undici/index.js";
import { tlsConnector } from "../../mod.ts";

const [work, portArg, caPath, secondsArg, stack] = process.argv.slice(2);
if (work !== "fetch" || portArg === undefined || caPath === undefined || stack === undefined) {
  throw new Error("usage: fetch.ts fetch <port> <ca.pem> <seconds> <stack>");
}
const ca = readFileSync(caPath, "utf8");
// 127.0.0.1 (in the certificate's subjectAltName), not localhost: nginx listens on IPv4 only.
const url = `https://127.0.0.1:${portArg}/`;

/** One GET, its body read to the end (so the connection is reusable). */
type Get = () => Promise<void>;

function libsslFfi(): Get {
  const agent = new Agent({
    connect: tlsConnector({ caCerts: [ca] }),
  });
  return async () => {
    const response = await undiciFetch(url, { dispatcher: agent });
    await response.arrayBuffer();
  };
}

function builtin(): Get {
  const deno = (globalThis as { Deno?: { createHttpClient(o: unknown): unknown } }).Deno;
  if (deno !== undefined) {
    const client = deno.createHttpClient({ caCerts: [ca] });
    return async () => {
      const response = await fetch(url, { client } as RequestInit);
      await response.arrayBuffer();
    };
  }
  if ("Bun" in globalThis) {
    return async () => {
      const response = await fetch(url, { tls: { ca } } as RequestInit);
      await response.arrayBuffer();
    };
  }
  return async () => {
    const response = await fetch(url);
    await response.arrayBuffer();
  };
}

function undiciNodeTls(): Get {
  const agent = new Agent({ connect: { ca } });
  return async () => {
    const response = await undiciFetch(url, { dispatcher: agent });
    await response.arrayBuffer();
  };
}

const stacks: Record<string, () => Get> = {
  "libssl-ffi": libsslFfi,
  builtin,
  "undici-node-tls": undiciNodeTls,
};
const make = stacks[stack];
if (make === undefined) {
  throw new Error(`unknown stack ${stack}: ${Object.keys(stacks).join(", ")}`);
}
const get = make();
const warmUntil = performance.now() + 300;
while (performance.now() < warmUntil) await get();
const cpuBefore = process.cpuUsage();
let count = 0;
const started = performance.now();
const end = started + Number(secondsArg) * 1000;
while (performance.now() < end) {
  await get();
  count++;
}
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
console.log(JSON.stringify({
  work,
  value: count / seconds,
  unit: "requests/s",
  cpu: (cpu.user + cpu.system) / 1e6,
}));
// Keep-alive sockets would hold the process open.
process.exit(0);
