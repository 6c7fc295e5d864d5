/**
 * Where a client handshake's time goes, layer by layer (Deno only: it needs the epoll transport's
 * socket calls). Starts from a bare client (our `TlsContext`'s `SSL_CTX`, a bare `SSL` with memory
 * BIOs, bare libc socket calls, one epoll set of its own) and adds this library's layers one at a
 * time: `TlsEngine` and its features, then the epoll transport, then the whole `connect()`. Each
 * handshake is a new TCP connection, `PING`/`PONG`, and an abortive close, against the native
 * server of the benchmark (`bench/native/server.c`):
 *
 *   bash bench/native/build.sh
 *   taskset -c 0 bench/native/build/server 0 server.pem server.key      # prints LISTENING <port>
 *   taskset -c 1 node_modules/.bin/deno run -A bench/handshake_layers.ts <port> ca.pem [seconds] [rounds]
 *
 * Prints, per layer and round, the handshake rate and the CPU per handshake of the main thread and
 * of the other threads (Linux `/proc`), the layers interleaved. `HANDSHAKE_LAYERS=bare,connect()`
 * runs only those layers (e.g. under `strace -c` or `--cpu-prof`). Measured 2026-12-07: README,
 * "What the profiles say", "Handshakes on Deno".
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { connect } from "../mod.ts";
import { ERRNO, loadSockets, openssl, SSL_ERROR } from "../src/core/native.ts";
import { TlsContext } from "../src/tls/context.ts";
import { internalsOf } from "../src/tls/native_context.ts";
import { TlsEngine } from "../src/tls/engine.ts";
import { connectTcp } from "../src/net/tcp.ts";

const [portArg, caPath, secondsArg, roundsArg] = process.argv.slice(2);
if (portArg === undefined || caPath === undefined) {
  throw new Error("usage: handshake_layers.ts <port> <ca.pem> [seconds] [rounds]");
}
const s = loadSockets();
if (s === null) throw new Error("needs the epoll transport's socket calls (Deno on Linux)");
const port = Number(portArg);
const seconds = Number(secondsArg ?? 3);
const rounds = Number(roundsArg ?? 3);
const caPem = readFileSync(caPath, "utf8");
const o = openssl();
const context = new TlsContext("client", { caCerts: [caPem] });
const ping = new TextEncoder().encode("PING\n");
const hostC = new TextEncoder().encode("localhost\0");
const pong = new Uint8Array(5);
const input = new Uint8Array(64 * 1024);
const output = new Uint8Array(64 * 1024);
const to = s.rawAddress({ family: 4, hostname: "127.0.0.1", port });

const poller = s.poller();

/** Waits until `fd` is readable (edge-triggered: the caller read until EAGAIN first). */
async function readable(fd: number): Promise<void> {
  for (;;) {
    const n = await poller.wait();
    for (let i = 0; i < n; i++) if (poller.readyFd(i) === fd) return;
  }
}

/** A connected, watched socket: what every layer but the transport's starts from. */
function bareSocket(): number {
  const fd = s!.tcpSocket(4);
  s!.setOption(fd, "noDelay", true);
  poller.add(fd);
  const r = s!.connect(fd, to);
  if (r !== 0 && s!.connectedNow(fd) !== 0) {
    throw new Error("loopback connect did not complete at once");
  }
  return fd;
}

/** Receives into `input`, waiting while there is nothing: the byte count. */
async function receive(fd: number): Promise<number> {
  for (;;) {
    const n = s!.recv(fd, input);
    if (n > 0) return n;
    if (n === 0) throw new Error("end of stream");
    if (n !== -ERRNO.EAGAIN) throw s!.error(-n, "read");
    await readable(fd);
  }
}

function bareClose(fd: number): void {
  poller.remove(fd);
  s!.close(fd);
}

/** A bare `SSL` on our `SSL_CTX`, memory BIOs, bare socket calls. */
async function bare(): Promise<void> {
  const fd = bareSocket();
  const ssl = o.SSL_new(internalsOf(context).ctx())!;
  const rbio = o.BIO_new(o.BIO_s_mem())!;
  const wbio = o.BIO_new(o.BIO_s_mem())!;
  o.SSL_set_bio(ssl, rbio, wbio); // the SSL owns both
  const flush = () => {
    const n = o.BIO_read(wbio, output, output.length);
    if (n > 0 && s!.send(fd, output.subarray(0, n)) !== n) throw new Error("short send");
  };
  o.SSL_set_connect_state(ssl);
  o.SSL_set_tlsext_host_name(ssl, "localhost");
  o.SSL_set1_host(ssl, hostC);
  for (;;) {
    const r = o.SSL_do_handshake(ssl);
    flush();
    if (r === 1) break;
    if (o.SSL_get_error(ssl, r) !== SSL_ERROR.WANT_READ) throw new Error("handshake failed");
    o.BIO_write(rbio, input, await receive(fd));
  }
  o.SSL_write(ssl, ping, ping.length);
  flush();
  for (let got = 0; got < pong.length;) {
    const r = o.SSL_read(ssl, pong.subarray(got), pong.length - got);
    if (r > 0) got += r;
    else if (o.SSL_get_error(ssl, r) === SSL_ERROR.WANT_READ) {
      o.BIO_write(rbio, input, await receive(fd));
    } else throw new Error("read failed");
  }
  bareClose(fd);
  o.SSL_free(ssl);
}

/** `TlsEngine` (and its features) over bare socket calls. */
async function engine(): Promise<void> {
  const fd = bareSocket();
  const e = new TlsEngine(context, { servername: "localhost" });
  const flush = () => {
    const out = e.outgoing();
    if (out !== null && s!.send(fd, out) !== out.length) throw new Error("short send");
  };
  for (;;) {
    const step = e.handshake();
    flush();
    if (step.status === "done") break;
    e.receive(input.subarray(0, await receive(fd)));
  }
  e.write(ping);
  flush();
  for (let got = 0; got < pong.length;) {
    const n = e.read(pong.subarray(got));
    if (n === null) throw new Error("end of stream");
    if (n > 0) got += n;
    else e.receive(input.subarray(0, await receive(fd)));
  }
  bareClose(fd);
  e.close();
}

/** `TlsEngine` over the epoll transport (`connectTcp`). */
async function transport(): Promise<void> {
  const stream = await connectTcp({ hostname: "127.0.0.1", port });
  const e = new TlsEngine(context, { servername: "localhost" });
  const flush = async () => {
    const out = e.outgoing();
    if (out !== null) await stream.write(out);
  };
  const fill = async () => {
    const n = await stream.read(input);
    if (n === null) throw new Error("end of stream");
    e.receive(input.subarray(0, n));
  };
  for (;;) {
    const step = e.handshake();
    await flush();
    if (step.status === "done") break;
    await fill();
  }
  e.write(ping);
  await flush();
  for (let got = 0; got < pong.length;) {
    const n = e.read(pong.subarray(got));
    if (n === null) throw new Error("end of stream");
    if (n > 0) got += n;
    else await fill();
  }
  stream.close();
  e.close();
}

/** The whole `connect()`, `Connection` included. */
async function whole(): Promise<void> {
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

/** CPU ticks (1/100 s) of each thread of this process, by thread id. */
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const task of Deno.readDirSync("/proc/self/task")) {
    try {
      const stat = Deno.readTextFileSync(`/proc/self/task/${task.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks.set(task.name, Number(fields[11]) + Number(fields[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return ticks;
}

async function measure(name: string, run: () => Promise<void>): Promise<void> {
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await run();
  const before = threadTicks();
  const started = performance.now();
  let count = 0;
  while (performance.now() < started + seconds * 1000) {
    await run();
    count++;
  }
  const wall = performance.now() - started;
  let main = 0;
  let other = 0;
  for (const [id, ticks] of threadTicks()) {
    const us = ((ticks - (before.get(id) ?? 0)) * 10_000) / count;
    if (id === String(Deno.pid)) main += us;
    else if (us > 0) other += us;
  }
  console.log(
    `${name.padEnd(10)} ${(count / wall * 1000).toFixed(0).padStart(5)} handshakes/s, ` +
      `CPU per handshake: main thread ${main.toFixed(0)} us, other threads ${other.toFixed(0)} us`,
  );
}

const layers: [string, () => Promise<void>][] = [
  ["bare", bare],
  ["engine", engine],
  ["transport", transport],
  ["connect()", whole],
];
// HANDSHAKE_LAYERS=bare,connect() measures only those layers (e.g. under `strace -c`).
const only = process.env.HANDSHAKE_LAYERS?.split(",");
for (let round = 1; round <= rounds; round++) {
  for (const [name, run] of layers) if (!only || only.includes(name)) await measure(name, run);
}
context.close();
