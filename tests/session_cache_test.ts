/**
 * The external server session cache (`onNewSession` / `onResumeSession`): two listeners, each in
 * a child process of its own (`tests/fixtures/session_cache_listener.ts`) with the same
 * certificate, share a cache (one file per session in a shared directory). A client that got
 * its session from the first resumes on the second: our client (`session`) and
 * `openssl s_client -sess_out / -sess_in` (`-no_ticket` for TLS 1.2), TLS 1.2 and 1.3, with a
 * synchronous cache and an asynchronous one (a Promise after 100 ms: the handshake suspends). A
 * rejecting lookup falls back to a full handshake and is reported. In process: bad answers and
 * throwing callbacks (a full handshake, a report, never a crash), and the option checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  connect,
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
  TlsContext,
} from "../mod.ts";
import { runtimeArgs, test } from "./harness.ts";
import { type ClientProcess, opensslClient, REPO_ROOT, spawnClient } from "./support/clients.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { localClientOptions as client, localServerOptions, until } from "./support/listener.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
type Mode = "sync" | "async" | "reject";

interface Listener {
  port: number;
  child: ClientProcess;
}

/** Starts one cache-sharing listener in a child process on the runtime under test. */
async function startListener(dir: string, mode: Mode): Promise<Listener> {
  const script = join(REPO_ROOT, "tests/fixtures/session_cache_listener.ts");
  const config = JSON.stringify({
    cert: pki.server.chainPath,
    key: pki.server.keyPath,
    dir,
    mode,
  });
  const child = spawnClient(process.execPath, runtimeArgs(script, [config]), {
    endInput: false,
    timeout: 60_000,
    env: { DENO_NO_UPDATE_CHECK: "1" },
  });
  try {
    const [, port] = await child.waitFor(/^LISTENING (\d+)$/m, 20_000);
    return { port: Number(port), child };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** Two listeners sharing one cache directory; `fn` runs with them, then both are stopped. */
async function withTwoListeners(
  mode: Mode,
  fn: (a: Listener, b: Listener, dir: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-cache-"));
  const started: Listener[] = [];
  try {
    const [a, b] = await Promise.all([startListener(dir, mode), startListener(dir, mode)]);
    started.push(a!, b!);
    await fn(a!, b!, dir);
  } finally {
    await Promise.all(started.map(async (l) => {
      l.child.end();
      await Promise.race([l.child.result, new Promise((r) => setTimeout(r, 3_000))]);
      await l.child.stop();
    }));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readToEnd(conn: Connection): Promise<string> {
  const buf = new Uint8Array(4096);
  let out = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return out;
    out += new TextDecoder().decode(buf.subarray(0, n));
  }
}

/** Connects, reads the greeting (and with it any TLS 1.3 tickets), closes. */
async function visit(port: number, extra: Partial<ConnectOptions> = {}) {
  const conn = await connect(client(port, extra));
  try {
    const greeting = await readToEnd(conn);
    return { reused: conn.sessionReused, session: conn.session, greeting };
  } finally {
    conn.close();
  }
}

/** Waits until a listener printed `count` lines matching `pattern` (its output is a pipe). */
async function printed(l: Listener, pattern: RegExp, count = 1): Promise<void> {
  const g = new RegExp(pattern.source, "gm");
  await until(`${count} × ${pattern}`, () => (l.child.output().match(g)?.length ?? 0) >= count);
}

/** The `ACCEPTED {json}` lines of a listener, once there are `count` of them. */
async function accepted(
  l: Listener,
  count: number,
): Promise<{ reused: boolean; protocol: string }[]> {
  await printed(l, /^ACCEPTED /, count);
  return [...l.child.output().matchAll(/^ACCEPTED (.*)$/gm)].map((m) => JSON.parse(m[1]!));
}

// ---- two listeners, one cache ------------------------------------------------------------------

for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
  for (const mode of ["sync", "async"] as const) {
    test(`cache, ${version}, ${mode} lookups: a session from listener A resumes on B`, async () => {
      await withTwoListeners(mode, async (a, b, dir) => {
        const first = await visit(a.port, { maxVersion: version });
        assert.equal(first.reused, false);
        assert.equal(first.greeting, "hello\n");
        assert.ok(first.session !== null);
        // TLS 1.2: one session per full handshake; TLS 1.3: one per (stateful) ticket, 2 here.
        assert.equal(readdirSync(dir).length, version === "TLSv1.3" ? 2 : 1);
        await printed(a, /^STORED [0-9a-f]+$/, version === "TLSv1.3" ? 2 : 1);

        const second = await visit(b.port, { maxVersion: version, session: first.session });
        assert.equal(second.reused, true, b.child.output());
        assert.equal(second.greeting, "hello\n");
        await printed(b, /^LOOKUP [0-9a-f]+ hit$/);
        assert.deepEqual(await accepted(b, 1), [{ reused: true, protocol: version }]);
        assert.deepEqual(await accepted(a, 1), [{ reused: false, protocol: version }]);

        // And back: B's new session (TLS 1.3: the ticket of the resumption) resumes on A.
        const third = await visit(a.port, { maxVersion: version, session: second.session });
        assert.equal(third.reused, true);
      });
      finish();
    }, { timeout: 60_000 });
  }
}

for (const version of ["1.2", "1.3"] as const) {
  test(`cache, s_client -tls${version} -sess_out on A, -sess_in on B: Reused`, async () => {
    await withTwoListeners("async", async (a, b, dir) => {
      const sessFile = join(dir, "s_client.pem");
      // TLS 1.2: -no_ticket, so that the session id (the cache) carries the resumption.
      const noTicket = version === "1.2" ? ["-no_ticket"] : [];
      const first = await opensslClient({
        port: a.port,
        caFile: pki.rootCaPath,
        tls: version,
        extraArgs: [...noTicket, "-sess_out", sessFile],
      }).result;
      assert.match(first.stdout, new RegExp(`^New, TLSv${version}, Cipher is`, "m"));
      assert.match(readFileSync(sessFile, "utf8"), /BEGIN SSL SESSION PARAMETERS/);
      const second = await opensslClient({
        port: b.port,
        caFile: pki.rootCaPath,
        tls: version,
        extraArgs: [...noTicket, "-sess_in", sessFile],
      }).result;
      assert.match(
        second.stdout,
        new RegExp(`^Reused, TLSv${version}, Cipher is`, "m"),
        second.stdout + second.stderr + b.child.output(),
      );
      assert.match(second.stdout, /hello/);
      assert.deepEqual(await accepted(b, 1), [{ reused: true, protocol: `TLSv${version}` }]);
    });
    finish();
  }, { timeout: 60_000 });
}

test("cache: a rejecting lookup gives a full handshake and is reported", async () => {
  await withTwoListeners("reject", async (a, b) => {
    for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
      const first = await visit(a.port, { maxVersion: version });
      const second = await visit(b.port, { maxVersion: version, session: first.session });
      assert.equal(second.reused, false);
      assert.equal(second.greeting, "hello\n");
    }
    await printed(b, /^CACHEERROR lookup the cache is down$/, 2);
    assert.deepEqual((await accepted(b, 2)).map((x) => x.reused), [false, false]);
    assert.doesNotMatch(b.child.output(), /HANDSHAKEERROR/);
  });
  finish();
}, { timeout: 60_000 });

// ---- in process: what a cache may get wrong ------------------------------------------------------

/** A listener greeting each client with "hello\n"; `reused` records each connection. */
function greeter(extra: Partial<ListenOptions>) {
  const server = listen(localServerOptions({ handshakeTimeout: 5_000, ...extra }));
  const reused: boolean[] = [];
  const handlers: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of server) {
      reused.push(conn.sessionReused);
      handlers.push(
        (async () => {
          try {
            await conn.write(new TextEncoder().encode("hello\n"));
            await conn.closeWrite();
            await conn.read(new Uint8Array(64)).catch(() => null);
          } finally {
            conn.close();
          }
        })().catch(() => {}),
      );
    }
  })();
  const stop = async () => {
    await server[Symbol.asyncDispose]();
    await loop;
    await Promise.all(handlers);
  };
  return { server, reused, stop };
}

test("cache: ids and bytes are copies; garbage and throws mean a full handshake plus a report", async () => {
  const store = new Map<string, Uint8Array>();
  const errors: string[] = [];
  const key = (id: Uint8Array) => Array.from(id).join(",");
  let answer: "stored" | "garbage" | "wrong type" | "throw" = "stored";
  const g = greeter({
    onNewSession(id, session) {
      store.set(key(id), session);
      id.fill(0); // a copy: OpenSSL's session id is untouched
      if (store.size > 100) throw new Error("never");
    },
    onResumeSession(id) {
      switch (answer) {
        case "stored":
          return store.get(key(id)) ?? null;
        case "garbage":
          return new Uint8Array([1, 2, 3]);
        case "wrong type":
          return "session" as unknown as Uint8Array;
        case "throw":
          throw new Error("lookup exploded");
      }
    },
    onSessionCacheError: (error, operation) =>
      errors.push(`${operation}: ${error instanceof Error ? error.message : error}`),
  });
  try {
    const port = g.server.addr.port;
    const first = await visit(port, { maxVersion: "TLSv1.2" });
    assert.equal(
      (await visit(port, { maxVersion: "TLSv1.2", session: first.session })).reused,
      true,
    );
    for (const mode of ["garbage", "wrong type", "throw"] as const) {
      answer = mode;
      const r = await visit(port, { maxVersion: "TLSv1.2", session: first.session });
      assert.equal(r.reused, false, mode);
      assert.equal(r.greeting, "hello\n");
    }
    assert.equal(errors.length, 3, errors.join("\n"));
    assert.match(errors[0]!, /^lookup: session is not a serialised TLS session/);
    assert.match(errors[1]!, /^lookup: onResumeSession must return/);
    assert.equal(errors[2], "lookup: lookup exploded");
  } finally {
    await g.stop();
    finish();
  }
});

test("cache: a session from a server with another client-certificate policy does not resume", async () => {
  const store = new Map<string, Uint8Array>();
  const key = (id: Uint8Array) => Array.from(id).join(",");
  const cache: Partial<ListenOptions> = {
    onNewSession: (id, session) => void store.set(key(id), session),
    onResumeSession: (id) => store.get(key(id)) ?? null,
  };
  const a = greeter(cache);
  // Asks for (optional) client certificates: another session id context, so OpenSSL refuses
  // A's sessions there even though the shared cache hands them over.
  const b = greeter({ ...cache, requestClientCert: "optional", caCerts: [pki.rootCa.cert] });
  try {
    for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
      const first = await visit(a.server.addr.port, { maxVersion: version });
      const other = await visit(b.server.addr.port, {
        maxVersion: version,
        session: first.session,
      });
      assert.equal(other.reused, false, version);
      assert.equal(other.greeting, "hello\n");
      const same = await visit(a.server.addr.port, { maxVersion: version, session: first.session });
      assert.equal(same.reused, true, version);
    }
  } finally {
    await a.stop();
    await b.stop();
    finish();
  }
});

test("cache: a throwing or rejecting onNewSession is reported; the handshake goes on", async () => {
  const errors: string[] = [];
  let calls = 0;
  const g = greeter({
    onNewSession() {
      calls++;
      if (calls === 1) throw new Error("store failed");
      return Promise.reject(new Error("store rejected"));
    },
    onSessionCacheError: (error, operation) =>
      errors.push(`${operation}: ${(error as Error).message}`),
  });
  try {
    const r = await visit(g.server.addr.port); // TLS 1.3: 2 tickets, 2 stores
    assert.equal(r.greeting, "hello\n");
    assert.equal(calls, 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(errors, ["store: store failed", "store: store rejected"]);
  } finally {
    await g.stop();
    finish();
  }
});

test("cache: onRemoveSession hears of a session whose connection ended without close_notify", async () => {
  const store = new Map<string, Uint8Array>();
  const removed: string[] = [];
  const key = (id: Uint8Array) => Array.from(id).join(",");
  let abortNext = false;
  const server = listen(localServerOptions({
    handshakeTimeout: 5_000,
    onNewSession: (id, session) => void store.set(key(id), session),
    onResumeSession: (id) => store.get(key(id)) ?? null,
    onRemoveSession: (id) => {
      removed.push(key(id));
      store.delete(key(id));
    },
  }));
  const loop = (async () => {
    for await (const conn of server) {
      if (abortNext) {
        conn.abort(); // no close_notify: OpenSSL calls the session bad
        continue;
      }
      await conn.write(new TextEncoder().encode("hello\n")).catch(() => {});
      await conn.closeWrite().catch(() => {});
      await conn.read(new Uint8Array(64)).catch(() => null);
      conn.close();
    }
  })();
  try {
    const port = server.addr.port;
    const first = await visit(port, { maxVersion: "TLSv1.2" });
    assert.equal(store.size, 1);
    const [id] = [...store.keys()];
    assert.equal(
      (await visit(port, { maxVersion: "TLSv1.2", session: first.session })).reused,
      true,
    );
    assert.deepEqual(removed, [], "connections closed with close_notify keep their session");

    abortNext = true;
    const conn = await connect(client(port, { maxVersion: "TLSv1.2", session: first.session }));
    assert.equal(conn.sessionReused, true);
    await conn.read(new Uint8Array(64)).catch(() => null); // the server dropped it
    conn.close();
    abortNext = false;
    await until("onRemoveSession", () => removed.length > 0);
    assert.deepEqual(removed, [id]);
    assert.equal(store.size, 0);
    // The store forgot it: a full handshake.
    assert.equal(
      (await visit(port, { maxVersion: "TLSv1.2", session: first.session })).reused,
      false,
    );
  } finally {
    await server[Symbol.asyncDispose]();
    await loop;
    finish();
  }
});

test("cache: option checks", () => {
  const base = localServerOptions();
  assert.throws(
    () => listen({ ...base, onResumeSession: "x" as never }),
    /onResumeSession must be a function/,
  );
  assert.throws(
    () => listen({ ...base, onSessionCacheError: () => {} }),
    /onSessionCacheError needs onNewSession or onResumeSession/,
  );
  assert.throws(
    () => listen({ ...base, onRemoveSession: () => {} }),
    /onRemoveSession needs onNewSession or onResumeSession/,
  );
  assert.throws(
    () => listen({ ...base, onNewSession: () => {}, ticketKeys: new Uint8Array(80) }),
    /ticketKeys and an external session cache/,
  );
  assert.throws(
    () => new TlsContext("client", { onNewSession: () => {} } as never),
    /onNewSession is for servers only/,
  );
  finish();
});
