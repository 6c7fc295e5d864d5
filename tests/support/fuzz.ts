/**
 * A deterministic, seeded mutation fuzzer for the engine (issue #17): real handshakes between two
 * in-memory {@link TlsEngine}s (TLS 1.3 and 1.2, client authentication, PSK on both versions,
 * resumption), with one flight (or, after the handshake, one application record) in one
 * direction mutated on its way: bits flipped, truncated, extended, spliced with an earlier
 * flight, repeated, its record length rewritten. Both engines are ours, so both sides' reactions
 * are checked.
 *
 * The invariants: every case ends in a success, in a `TlsError`, or stalled (one side waits for
 * bytes that will never come, which a real transport ends with its timeout); never another kind
 * of exception, never a crash; and after the run no native object is left (the caller checks).
 *
 * Used by `tests/fuzz_test.ts` (a short run in every test run) and `scripts/fuzz.ts` (`npm run
 * fuzz -- --cases N --seed S`, a long one).
 *
 * @example
 * ```ts
 * import { runFuzz } from "./fuzz.ts";
 * const report = await runFuzz({ cases: 100, seed: 1 });
 * console.log(report.outcomes); // { ok: ..., stalled: ..., "TlsError HANDSHAKE_FAILED": ... }
 * ```
 * @module
 */

import {
  TlsContext,
  type TlsContextOptions,
  TlsEngine,
  type TlsEngineOptions,
  TlsError,
} from "../../mod.ts";
import { sharedTestPki } from "./pki.ts";

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same cases everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One way of damaging bytes in flight. */
type Mutator = (bytes: Uint8Array, random: () => number, earlier: Uint8Array[]) => Uint8Array;

const int = (random: () => number, n: number) => Math.floor(random() * n);

/** The mutators, by name (the name is part of a case's description). */
export const MUTATORS: Readonly<Record<string, Mutator>> = {
  flipBits(bytes, random) {
    const out = bytes.slice();
    for (let i = 1 + int(random, 8); i > 0; i--) {
      out[int(random, out.length)]! ^= 1 << int(random, 8);
    }
    return out;
  },
  truncate(bytes, random) {
    return bytes.slice(0, int(random, bytes.length));
  },
  extend(bytes, random) {
    const extra = Uint8Array.from({ length: 1 + int(random, 64) }, () => int(random, 256));
    return concat(bytes, extra);
  },
  splice(bytes, random, earlier) {
    const other = earlier.length > 0 ? earlier[int(random, earlier.length)]! : bytes;
    return concat(
      bytes.subarray(0, int(random, bytes.length)),
      other.subarray(int(random, other.length)),
    );
  },
  repeat(bytes) {
    return concat(bytes, bytes);
  },
  replayEarlier(bytes, random, earlier) {
    return earlier.length > 0 ? earlier[int(random, earlier.length)]!.slice() : bytes;
  },
  setByte(bytes, random) {
    const out = bytes.slice();
    out[int(random, out.length)] = [0x00, 0xff, 0x7f, 0x80][int(random, 4)]!;
    return out;
  },
  recordLength(bytes, random) {
    // The first record header: type(1) version(2) length(2). Rewrite the length.
    if (bytes.length < 5) return bytes;
    const out = bytes.slice();
    const length = [0, 1, 0x3fff, 0x4000, 0x4001, 0xffff, int(random, 0x10000)][int(random, 7)]!;
    out[3] = length >> 8;
    out[4] = length & 0xff;
    return out;
  },
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A handshake configuration to fuzz. */
interface Scenario {
  name: string;
  client: TlsContextOptions;
  server: TlsContextOptions;
  engine: TlsEngineOptions;
}

/** The scenarios: every handshake shape the library supports in memory. */
function scenarios(): Scenario[] {
  const pki = sharedTestPki();
  const trust = { caCerts: [pki.rootCa.cert] };
  const serverId = { cert: pki.server.chainPem, key: pki.server.key };
  const key = new Uint8Array(32).fill(7);
  const psk = { psk: { identity: "fuzz", key } };
  const findPsk = { psk: (identity: string | Uint8Array) => (identity === "fuzz" ? key : null) };
  const sni = { servername: "localhost" };
  return [
    { name: "TLS 1.3", client: trust, server: serverId, engine: sni },
    {
      name: "TLS 1.2",
      client: { ...trust, maxVersion: "TLSv1.2" },
      server: serverId,
      engine: sni,
    },
    {
      name: "TLS 1.3 client auth",
      client: { ...trust, cert: pki.client.chainPem, key: pki.client.key },
      server: { ...serverId, ...trust, requestClientCert: "require" },
      engine: sni,
    },
    {
      name: "TLS 1.2 client auth",
      client: { ...trust, maxVersion: "TLSv1.2", cert: pki.client.chainPem, key: pki.client.key },
      server: { ...serverId, ...trust, requestClientCert: "require" },
      engine: sni,
    },
    { name: "TLS 1.3 PSK", client: psk, server: findPsk, engine: {} },
    { name: "TLS 1.2 PSK", client: { ...psk, maxVersion: "TLSv1.2" }, server: findPsk, engine: {} },
  ];
}

/** How one case ended: "ok", "stalled", or "TlsError <code>". */
type Outcome = string;

/** Moves `from`'s pending bytes to `to`, mutated when `mutate` says so; the bytes sent. */
function transfer(
  from: TlsEngine,
  to: TlsEngine,
  mutate: ((bytes: Uint8Array) => Uint8Array) | null,
): Uint8Array | null {
  const bytes = from.outgoing();
  if (bytes === null || to.closed) return null;
  const sent = mutate === null ? bytes : mutate(bytes);
  if (sent.length > 0) to.receive(sent);
  return bytes;
}

/**
 * One case: a fresh pair for `scenario`; the `target`-th transfer in `direction` (counting
 * handshake flights, then one application record each way) is mutated by `mutator`.
 */
async function runCase(
  scenario: Scenario,
  direction: "toServer" | "toClient",
  target: number,
  mutator: Mutator,
  random: () => number,
  session: Uint8Array | null,
): Promise<Outcome> {
  const clientContext = new TlsContext("client", scenario.client);
  const serverContext = new TlsContext("server", scenario.server);
  const client = new TlsEngine(
    clientContext,
    session === null ? scenario.engine : { ...scenario.engine, session },
  );
  const server = new TlsEngine(serverContext);
  const earlier: Record<"toServer" | "toClient", Uint8Array[]> = { toServer: [], toClient: [] };
  const counts = { toServer: 0, toClient: 0 };
  const move = (from: TlsEngine, to: TlsEngine, d: "toServer" | "toClient") => {
    const hit = d === direction && counts[d] === target;
    const sent = transfer(from, to, hit ? (b) => mutator(b, random, earlier[d]) : null);
    if (sent !== null) {
      counts[d]++;
      earlier[d].push(sent);
    }
  };
  try {
    for (let round = 0;; round++) {
      const c = client.handshake();
      move(client, server, "toServer");
      const s = server.handshake();
      move(server, client, "toClient");
      if (c.status === "done" && s.status === "done") break;
      if (c.status === "suspended" || s.status === "suspended") {
        await Promise.all([c, s].map((x) => (x.status === "suspended" ? x.until : null)));
        continue;
      }
      if (round > 20 && client.pendingOutgoing === 0 && server.pendingOutgoing === 0) {
        return "stalled";
      }
    }
    // Application data, one record each way (the mutation may land here too).
    client.write(new TextEncoder().encode("ping from the client"));
    move(client, server, "toServer");
    const buf = new Uint8Array(4096);
    server.read(buf);
    server.write(new TextEncoder().encode("pong from the server"));
    move(server, client, "toClient");
    client.read(buf);
    return "ok";
  } catch (error) {
    if (error instanceof TlsError) return `TlsError ${error.code}`;
    throw new Error(
      `${scenario.name}: ${direction} transfer ${target}: not a TlsError: ${String(error)}`,
      { cause: error },
    );
  } finally {
    client.close();
    server.close();
    clientContext.close();
    serverContext.close();
  }
}

/** What a fuzz run saw. */
export interface FuzzReport {
  cases: number;
  /** How many cases ended each way: `ok`, `stalled`, `TlsError <code>`. */
  outcomes: Record<string, number>;
  /** How many cases each mutator ran. */
  mutators: Record<string, number>;
}

/**
 * Runs `cases` seeded cases (deterministic for a seed). Throws at the first case that breaks an
 * invariant, naming the scenario, the mutation and the seed, so that it can be replayed.
 */
export async function runFuzz(options: { cases: number; seed: number }): Promise<FuzzReport> {
  const random = prng(options.seed);
  const all = scenarios();
  // Resumption: one clean TLS 1.3 handshake for a session to offer in the resumed cases.
  const session = await cleanSession(all[0]!);
  const names = Object.keys(MUTATORS);
  const report: FuzzReport = { cases: 0, outcomes: {}, mutators: {} };
  for (let i = 0; i < options.cases; i++) {
    const resumed = i % 7 === 6;
    const scenario = resumed ? all[0]! : all[int(random, all.length)]!;
    const name = names[int(random, names.length)]!;
    const direction = random() < 0.5 ? "toServer" : "toClient";
    const target = int(random, 4);
    let outcome: Outcome;
    try {
      outcome = await runCase(
        scenario,
        direction,
        target,
        MUTATORS[name]!,
        random,
        resumed ? session : null,
      );
    } catch (error) {
      throw new Error(
        `fuzz case ${i} (seed ${options.seed}, ${resumed ? "resumed " : ""}${scenario.name}, ` +
          `${name}): ${error instanceof Error ? error.message : error}`,
        { cause: error },
      );
    }
    report.cases++;
    report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    report.mutators[name] = (report.mutators[name] ?? 0) + 1;
  }
  return report;
}

/** A session from one clean handshake (with the tickets read), for the resumed cases. */
async function cleanSession(scenario: Scenario): Promise<Uint8Array | null> {
  const clientContext = new TlsContext("client", scenario.client);
  const serverContext = new TlsContext("server", scenario.server);
  const client = new TlsEngine(clientContext, scenario.engine);
  const server = new TlsEngine(serverContext);
  try {
    for (let round = 0; round < 50; round++) {
      const c = client.handshake();
      transfer(client, server, null);
      const s = server.handshake();
      transfer(server, client, null);
      if (c.status === "done" && s.status === "done") break;
      if (c.status === "suspended") await c.until;
      if (s.status === "suspended") await s.until;
    }
    client.read(new Uint8Array(1024)); // takes the TLS 1.3 tickets
    return client.session;
  } finally {
    client.close();
    server.close();
    clientContext.close();
    serverContext.close();
  }
}
