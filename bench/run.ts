/**
 * The benchmark: every client against one fast native OpenSSL server, in one run, interleaved
 * (A B C ... A B C ...), medians, and ratios to the same runtime's built-in TLS and to the native
 * C client. Timing thresholds (the performance bar) live here, never in tests.
 *
 *   npm run bench                       # full run: 1 GiB, 3 s per timed work, 1,000 idle, 3 rounds
 *   npm run bench -- --quick            # a fast smoke run (64 MiB, 1 s, 100 idle, 1 round)
 *   npm run bench -- --rounds 5 --only bulk,rtt
 *
 * Writes the table to stdout and to bench/results/latest.md.
 *
 * @module
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpus, tmpdir } from "node:os";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);

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
const only = value("--only", "bulk,handshakes,rtt,idle").split(",");

// ---- what runs ------------------------------------------------------------------------------

type Runtime = "deno" | "bun" | "node" | "native";
interface Client {
  name: string;
  runtime: Runtime;
  /** The same runtime's built-in TLS (for the ratio), or null. */
  builtIn: string | null;
  command: string[];
}

interface Work {
  key: string;
  title: string;
  args: string[];
  unit: string;
  higherIsBetter: boolean;
}

const works: Work[] = [
  {
    key: "bulk",
    title: `receive ${(bulkBytes / (1 << 20)).toFixed(0)} MiB`,
    args: ["bulk", String(bulkBytes)],
    unit: "MB/s",
    higherIsBetter: true,
  },
  {
    key: "handshakes",
    title: "sequential handshakes",
    args: ["handshakes", String(seconds)],
    unit: "handshakes/s",
    higherIsBetter: true,
  },
  {
    key: "rtt",
    title: "1 KiB round trips",
    args: ["rtt", String(seconds), "1024"],
    unit: "round trips/s",
    higherIsBetter: true,
  },
  {
    key: "idle",
    title: `memory per idle connection (${idleCount})`,
    args: ["idle", String(idleCount)],
    unit: "bytes/connection",
    higherIsBetter: false,
  },
].filter((w) => only.includes(w.key));

// ---- helpers --------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function makePki(dir: string): { ca: string; chain: string; key: string } {
  const openssl = (...a: string[]) => execFileSync("openssl", a, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  writeFileSync(
    join(dir, "leaf.cnf"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Bench CA",
  );
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "leaf.cnf",
    "-out",
    "server.pem",
  );
  return { ca: join(dir, "ca.pem"), chain: join(dir, "server.pem"), key: join(dir, "server.key") };
}

/** `taskset` (util-linux) pins processes to a CPU; without it runs are unpinned (noisier rtt). */
const haveTaskset = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
const pin = (command: string[]) => (haveTaskset ? ["taskset", "-c", "0", ...command] : command);

function startServer(server: string, pki: { chain: string; key: string }) {
  // The server lives on CPU 0. Bulk and handshake clients float (so they get CPU 1); round-trip
  // clients are pinned to CPU 0 too: on different CPUs every round trip pays ~70 us of cross-CPU
  // wake-up and all clients measure the same ~13k/s, which hides their own per-message cost.
  const [cmd, ...rest] = pin([server, "0", pki.chain, pki.key]);
  const child = spawn(cmd!, rest, { stdio: ["ignore", "pipe", "inherit"] });
  const port = new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Uint8Array) => {
      out += new TextDecoder().decode(d);
      const m = /LISTENING (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`bench server exited (${code}): ${out}`)));
  });
  return { child, port };
}

/** CPU seconds each client reported for its last bulk run, by client name. */
const bulkCpu = new Map<string, number[]>();

function runClient(client: Client, work: Work, port: number, ca: string): number | string {
  const [cmd, ...pre] = work.key === "rtt" ? pin(client.command) : client.command;
  const r = spawnSync(cmd!, [
    ...pre,
    ...work.args.slice(0, 1),
    String(port),
    ca,
    ...work.args.slice(1),
  ], {
    cwd: root,
    encoding: "utf8",
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    const parsed = JSON.parse(line) as { value: number; cpu?: number };
    if (typeof parsed.value !== "number" || !Number.isFinite(parsed.value)) throw new Error(line);
    if (work.key === "bulk" && typeof parsed.cpu === "number") {
      bulkCpu.set(client.name, [...(bulkCpu.get(client.name) ?? []), parsed.cpu]);
    }
    return parsed.value;
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
const buildDir = join(root, "bench", "native", "build");
let server: ReturnType<typeof startServer> | null = null;
try {
  const build = spawnSync("bash", [join(root, "bench", "native", "build.sh"), buildDir], {
    encoding: "utf8",
  });
  const haveNative = build.status === 0;
  if (!haveNative) {
    console.error(build.stderr || build.stdout);
    console.error(
      "bench: no C compiler or OpenSSL headers: the native server and client cannot be built.",
    );
    console.error("bench: install them (Debian: apt-get install -y gcc libssl-dev) and run again.");
    process.exit(3);
  }
  const pki = makePki(work);
  server = startServer(join(buildDir, "server"), pki);
  const port = await server.port;

  const clients: Client[] = [
    {
      name: "libssl-ffi on Deno",
      runtime: "deno",
      builtIn: "Deno.startTls",
      command: [bin("deno"), "run", "-A", "bench/clients/libssl_ffi.ts"],
    },
    {
      name: "libssl-ffi on Bun",
      runtime: "bun",
      builtIn: "Bun node:tls",
      command: [bin("bun"), "bench/clients/libssl_ffi.ts"],
    },
    {
      name: "Deno.startTls",
      runtime: "deno",
      builtIn: null,
      command: [bin("deno"), "run", "-A", "bench/clients/deno_tls.ts"],
    },
    {
      name: "Bun node:tls",
      runtime: "bun",
      builtIn: null,
      command: [bin("bun"), "bench/clients/node_tls.mjs"],
    },
    {
      name: "Node tls",
      runtime: "node",
      builtIn: null,
      command: ["node", "bench/clients/node_tls.mjs"],
    },
    {
      name: "native C (OpenSSL)",
      runtime: "native",
      builtIn: null,
      command: [join(buildDir, "client")],
    },
  ];

  // results[work][client] = values over rounds
  const results = new Map<string, Map<string, number[]>>();
  const failures: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const w of works) {
      for (const c of clients) {
        const v = runClient(c, w, port, pki.ca);
        const label = `round ${round}/${rounds} ${w.key.padEnd(10)} ${c.name.padEnd(20)}`;
        if (typeof v === "string") {
          failures.push(`${label}: ${v}`);
          console.error(`${label} ${v}`);
          continue;
        }
        console.error(`${label} ${v.toFixed(1)} ${w.unit}`);
        const byClient = results.get(w.key) ?? new Map<string, number[]>();
        byClient.set(c.name, [...(byClient.get(c.name) ?? []), v]);
        results.set(w.key, byClient);
      }
    }
  }

  // ---- report -------------------------------------------------------------------------------
  const med = (w: string, c: string) => {
    const xs = results.get(w)?.get(c);
    return xs === undefined || xs.length === 0 ? null : median(xs);
  };
  const fmt = (x: number | null, unit: string) =>
    x === null
      ? "n/a"
      : unit === "bytes/connection"
      ? `${Math.round(x / 1024)} KiB`
      : x >= 100
      ? x.toFixed(0)
      : x.toFixed(1);
  const ratio = (ours: number | null, ref: number | null, higher: boolean) =>
    ours === null || ref === null || ref === 0
      ? ""
      : `${(higher ? ours / ref : ref / ours).toFixed(2)}x`;

  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const lines: string[] = [];
  lines.push(
    `- Benchmark: ${
      new Date().toISOString().slice(0, 10)
    }, ${cpu}, ${cpus().length} cores, ${process.platform}`,
  );
  lines.push(
    `- Deno ${version(bin("deno"), ["--version"]).split(" ")[1]}, Bun ${
      version(bin("bun"), ["--version"])
    }, Node ${version("node", ["--version"])}, ${version("openssl", ["version"])}`,
  );
  lines.push(
    `- Medians of ${rounds} interleaved round(s); server: bench/native/server.c (TLS 1.3, ECDSA P-256, ` +
      `TLS_AES_256_GCM_SHA384 for every client), pinned to CPU 0${
        haveTaskset ? "" : " (taskset missing: unpinned)"
      }; ` +
      `round-trip clients pinned to the same CPU. Ratios: higher is better (for memory, the inverse ratio).`,
  );
  lines.push("");
  for (const w of works) {
    lines.push(
      `### ${w.title} (${w.unit}${w.higherIsBetter ? ", higher is better" : ", lower is better"})`,
    );
    lines.push("");
    lines.push("| client | median | vs same runtime's built-in | vs native C |");
    lines.push("|---|---|---|---|");
    const native = med(w.key, "native C (OpenSSL)");
    for (const c of clients) {
      const m = med(w.key, c.name);
      const vsBuiltIn = c.builtIn === null ? "" : ratio(m, med(w.key, c.builtIn), w.higherIsBetter);
      const vsNative = c.runtime === "native" ? "" : ratio(m, native, w.higherIsBetter);
      lines.push(`| ${c.name} | ${fmt(m, w.unit)} | ${vsBuiltIn} | ${vsNative} |`);
    }
    lines.push("");
  }

  // Client CPU per GiB for the bulk work: the busy-machine-proof view of efficiency (the whole
  // process, so it includes runtime start-up: a few tens of ms).
  if (works.some((w) => w.key === "bulk")) {
    const gib = bulkBytes / (1 << 30);
    const cpuMed = (c: string) => {
      const xs = bulkCpu.get(c);
      return xs === undefined || xs.length === 0 ? null : median(xs) / gib;
    };
    lines.push("### bulk receive: client CPU seconds per GiB (lower is better)");
    lines.push("");
    lines.push("| client | CPU s/GiB | vs same runtime's built-in | vs native C |");
    lines.push("|---|---|---|---|");
    for (const c of clients) {
      const m = cpuMed(c.name);
      const vsBuiltIn = c.builtIn === null ? "" : ratio(m, cpuMed(c.builtIn), false);
      const vsNative = c.runtime === "native" ? "" : ratio(m, cpuMed("native C (OpenSSL)"), false);
      lines.push(
        `| ${c.name} | ${m === null ? "n/a" : m.toFixed(2)} | ${vsBuiltIn} | ${vsNative} |`,
      );
    }
    lines.push("");
  }

  // The bar: >= 0.9x the same runtime's built-in TLS and >= 0.9x the native client.
  lines.push("### The bar (>= 0.9x built-in and >= 0.9x native, both runtimes)");
  lines.push("");
  for (const w of works) {
    for (const c of clients.filter((c) => c.builtIn !== null)) {
      const m = med(w.key, c.name);
      const b = med(w.key, c.builtIn!);
      const n = med(w.key, "native C (OpenSSL)");
      const r1 = m !== null && b !== null ? (w.higherIsBetter ? m / b : b / m) : NaN;
      const r2 = m !== null && n !== null ? (w.higherIsBetter ? m / n : n / m) : NaN;
      const ok = r1 >= 0.9 && r2 >= 0.9;
      lines.push(
        `- ${ok ? "PASS" : "MISS"} ${w.key} ${c.name}: ${r1.toFixed(2)}x ${c.builtIn}, ${
          r2.toFixed(2)
        }x native`,
      );
    }
  }
  if (failures.length > 0) {
    lines.push("", "### Failed runs", "", ...failures.map((f) => `- ${f}`));
  }
  const report = lines.join("\n") + "\n";
  console.log(report);
  mkdirSync(join(root, "bench", "results"), { recursive: true });
  writeFileSync(join(root, "bench", "results", quick ? "quick.md" : "latest.md"), report);
  if (failures.length > 0) process.exitCode = 1;
} finally {
  server?.child.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}
