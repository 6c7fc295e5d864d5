/**
 * Session resumption, both sides: our client against `openssl s_server` and against our own
 * listener (TLS 1.3 and 1.2), `openssl s_client -sess_out/-sess_in/-reconnect` against our
 * listener, the server options (`sessionTickets`, `ticketCount`, `ticketKeys`,
 * `rotateTicketKeys`), and what must not resume: a session for another server, for another host
 * name, from an unverified connection, and garbage bytes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connect,
  type Connection,
  type ConnectOptions,
  generateTicketKeys,
  listen,
  type ListenOptions,
  startTls,
  TlsContext,
  TlsError,
  type TlsListener,
} from "../mod.ts";
import { localClientOptions as client, localServerOptions } from "./support/listener.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { opensslClient } from "./support/clients.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);

type Version = "TLSv1.2" | "TLSv1.3";

function serverOptions(extra: Partial<ListenOptions> = {}): ListenOptions {
  return localServerOptions({ handshakeTimeout: 5_000, ...extra });
}

/**
 * A listener that greets every client with "hello\n" and a close_notify. Records whether each
 * server-side connection was a resumption.
 */
function greeter(extra: Partial<ListenOptions> = {}): {
  server: TlsListener;
  reused: boolean[];
  done: Promise<void>;
} {
  const server = listen(serverOptions(extra));
  const reused: boolean[] = [];
  const handlers: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of server) {
      reused.push(conn.sessionReused);
      handlers.push(
        (async () => {
          try {
            await conn.write(text("hello\n"));
            await conn.closeWrite();
            // Wait for the client to go, so its last reads see our close_notify.
            await conn.read(new Uint8Array(64)).catch(() => null);
          } finally {
            conn.close();
          }
        })().catch(() => {}),
      );
    }
  })();
  // Accepted connections outlive the listener: wait for every handler to close its own.
  const done = loop.then(async () => {
    await Promise.all(handlers);
  });
  return { server, reused, done };
}

/** Reads until the peer closes; returns the text. */
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
async function visit(
  port: number,
  extra: Partial<ConnectOptions> = {},
): Promise<{ reused: boolean; session: Uint8Array | null; verified: number; greeting: string }> {
  const conn = await connect(client(port, extra));
  try {
    const greeting = await readToEnd(conn);
    return {
      reused: conn.sessionReused,
      session: conn.session,
      verified: conn.peerCertificateChain.length,
      greeting,
    };
  } finally {
    conn.close();
  }
}

async function stop(g: ReturnType<typeof greeter>): Promise<void> {
  await g.server[Symbol.asyncDispose]();
  await g.done;
}

// ---- our client against our listener -----------------------------------------------------------

for (const version of ["TLSv1.3", "TLSv1.2"] as Version[]) {
  test(`listen, ${version}: the second connection resumes with conn.session`, async () => {
    const g = greeter();
    try {
      const seen: Uint8Array[] = [];
      const conn = await connect(client(g.server.addr.port, {
        maxVersion: version,
        onSession: (s) => seen.push(s),
      }));
      let first: Uint8Array | null;
      try {
        assert.equal(conn.sessionReused, false);
        if (version === "TLSv1.3") {
          // TLS 1.3 tickets arrive after the handshake: none yet.
          assert.equal(conn.session, null);
          assert.equal(seen.length, 0);
        } else {
          // TLS 1.2: the session is there when the handshake completes.
          assert.ok(conn.session instanceof Uint8Array);
        }
        assert.equal(await readToEnd(conn), "hello\n");
        // OpenSSL's server sends 2 tickets after a full TLS 1.3 handshake.
        assert.equal(seen.length, version === "TLSv1.3" ? 2 : 1);
        first = conn.session;
        assert.ok(first !== null && first.length > 0);
        assert.deepEqual(first, seen[seen.length - 1]);
      } finally {
        conn.close();
      }
      assert.deepEqual(conn.session, first, "still readable after close");

      const again = await visit(g.server.addr.port, { maxVersion: version, session: first });
      assert.equal(again.reused, true);
      assert.equal(again.greeting, "hello\n");
      assert.equal(again.verified, 0, "a resumed handshake verifies no certificate");
      assert.ok(again.session !== null, "a resumption gets a session too");
      assert.deepEqual(g.reused, [false, true]);
    } finally {
      await stop(g);
      finish();
    }
  });
}

test("listen, TLS 1.3: a resumed handshake gets 1 new ticket; the session chain goes on", async () => {
  const g = greeter();
  try {
    let session = (await visit(g.server.addr.port)).session;
    for (let i = 0; i < 3; i++) {
      let tickets = 0;
      const r = await visit(g.server.addr.port, { session, onSession: () => tickets++ });
      assert.equal(r.reused, true, `round ${i}`);
      assert.equal(tickets, 1);
      session = r.session;
    }
  } finally {
    await stop(g);
    finish();
  }
});

test("listen: sessionTickets: false; TLS 1.3 gets no session and never resumes", async () => {
  const g = greeter({ sessionTickets: false });
  try {
    const first = await visit(g.server.addr.port);
    assert.equal(first.session, null);
    const second = await visit(g.server.addr.port, { session: first.session });
    assert.equal(second.reused, false);
    assert.equal(second.verified > 0, true, "a full, verified handshake");
  } finally {
    await stop(g);
    finish();
  }
});

test("listen: sessionTickets: false; TLS 1.2 still resumes by session ID (server cache)", async () => {
  const g = greeter({ sessionTickets: false });
  try {
    const first = await visit(g.server.addr.port, { maxVersion: "TLSv1.2" });
    assert.ok(first.session !== null);
    const second = await visit(g.server.addr.port, {
      maxVersion: "TLSv1.2",
      session: first.session,
    });
    assert.equal(second.reused, true);
  } finally {
    await stop(g);
    finish();
  }
});

test("listen: ticketCount sets how many TLS 1.3 tickets a full handshake gets", async () => {
  const g = greeter({ ticketCount: 4 });
  try {
    let tickets = 0;
    await visit(g.server.addr.port, { onSession: () => tickets++ });
    assert.equal(tickets, 4);
  } finally {
    await stop(g);
    finish();
  }
});

test("a session from server A offered to server B (own context, own key): full handshake", async () => {
  const a = greeter();
  const b = greeter();
  try {
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as Version[]) {
      const fromA = await visit(a.server.addr.port, { maxVersion });
      const atB = await visit(b.server.addr.port, { maxVersion, session: fromA.session });
      assert.equal(atB.reused, false, maxVersion);
      assert.ok(atB.verified > 0, "verified");
      assert.equal(atB.greeting, "hello\n");
    }
  } finally {
    await stop(a);
    await stop(b);
    finish();
  }
});

test("a session for host name A is not offered for host name B: full, verified handshake", async () => {
  const g = greeter();
  try {
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as Version[]) {
      const { session } = await visit(g.server.addr.port, { maxVersion });
      // 127.0.0.1 is in the certificate too: the full handshake succeeds, verified.
      const other = await visit(g.server.addr.port, {
        maxVersion,
        servername: "127.0.0.1",
        session,
      });
      assert.equal(other.reused, false, maxVersion);
      assert.ok(other.verified > 0);
      // A name the certificate does not cover: had the session been offered, the server would
      // have resumed it (OpenSSL's server does not compare SNI with the session's in 3.0, see
      // below) and nothing would have been verified. Not offered, verification fails.
      await assert.rejects(
        connect(client(g.server.addr.port, { maxVersion, servername: "wrong.example", session })),
        (e: unknown) => e instanceof TlsError && e.code === "CERT_VERIFY_FAILED",
      );
    }
  } finally {
    await stop(g);
    finish();
  }
});

test("OpenSSL's server itself resumes a session under another SNI (why the client checks)", async () => {
  const g = greeter();
  try {
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as Version[]) {
      const { session } = await visit(g.server.addr.port, { maxVersion });
      // A connection that verifies nothing may use any session: this shows what the server does.
      const r = await visit(g.server.addr.port, {
        maxVersion,
        servername: "wrong.example",
        unsafelyDisableVerification: true,
        session,
      });
      assert.equal(r.reused, true, maxVersion);
    }
  } finally {
    await stop(g);
    finish();
  }
});

test("a session from an unverified connection is never offered by a verifying one", async () => {
  const g = greeter();
  try {
    const { session } = await visit(g.server.addr.port, {
      unsafelyDisableVerification: true,
    });
    assert.ok(session !== null);
    const r = await visit(g.server.addr.port, { session });
    assert.equal(r.reused, false);
    assert.ok(r.verified > 0);
  } finally {
    await stop(g);
    finish();
  }
});

test("garbage session bytes are a TypeError, before connecting; null is no session", async () => {
  const g = greeter();
  try {
    const { session } = await visit(g.server.addr.port);
    for (const bad of [new Uint8Array(0), text("not a session"), session!.subarray(0, 20)]) {
      await assert.rejects(connect(client(g.server.addr.port, { session: bad })), TypeError);
    }
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      connect(client(g.server.addr.port, { session: "abc" as any })),
      TypeError,
    );
    const r = await visit(g.server.addr.port, { session: null });
    assert.equal(r.reused, false);
    assert.equal(g.reused.length, 2, "the garbage attempts never connected");
  } finally {
    await stop(g);
    finish();
  }
});

test("startTls({ session }) resumes too", async () => {
  const g = greeter();
  try {
    const { session } = await visit(g.server.addr.port);
    const tcp = await import("node:net").then((net) =>
      new Promise<import("node:net").Socket>((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port: g.server.addr.port }, () => resolve(s));
        s.once("error", reject);
      })
    );
    const { Duplex } = await import("node:stream");
    const web = Duplex.toWeb(tcp) as unknown as {
      readable: ReadableStream<Uint8Array>;
      writable: WritableStream<Uint8Array>;
    };
    const conn = await startTls(web, {
      hostname: "localhost",
      caCerts: [pki.rootCa.cert],
      session,
    });
    try {
      assert.equal(conn.sessionReused, true);
      assert.equal(await readToEnd(conn), "hello\n");
    } finally {
      conn.close();
    }
  } finally {
    await stop(g);
    finish();
  }
});

test("server options are refused on clients, client options on servers", async () => {
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    connect(client(1, { sessionTickets: false } as any)),
    TypeError,
  );
  // deno-lint-ignore no-explicit-any
  assert.throws(() => listen(serverOptions({ session: new Uint8Array(1) } as any)), TypeError);
  assert.throws(() => listen(serverOptions({ ticketKeys: new Uint8Array(79) })), RangeError);
  assert.throws(() => listen(serverOptions({ ticketCount: -1 })), RangeError);
  const ctx = new TlsContext("client", {});
  try {
    assert.throws(() => ctx.rotateTicketKeys(), TypeError);
  } finally {
    ctx.close();
  }
  const noTickets = new TlsContext("server", {
    cert: pki.serverChainPem,
    key: pki.server.key,
    sessionTickets: false,
  });
  try {
    assert.throws(() => noTickets.rotateTicketKeys(), TypeError);
  } finally {
    noTickets.close();
  }
  finish();
});

// ---- ticket keys --------------------------------------------------------------------------------

test("ticketKeys: two servers (a restart) with the same key resume each other's tickets", async () => {
  const keys = generateTicketKeys();
  const a = greeter({ ticketKeys: keys });
  const b = greeter({ ticketKeys: keys });
  const c = greeter({ ticketKeys: generateTicketKeys() });
  try {
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as Version[]) {
      const { session } = await visit(a.server.addr.port, { maxVersion });
      assert.equal((await visit(b.server.addr.port, { maxVersion, session })).reused, true);
      assert.equal((await visit(c.server.addr.port, { maxVersion, session })).reused, false);
    }
  } finally {
    await stop(a);
    await stop(b);
    await stop(c);
    finish();
  }
});

for (const version of ["TLSv1.3", "TLSv1.2"] as Version[]) {
  test(`rotateTicketKeys, ${version}: the previous key still resumes (renewed), older not`, async () => {
    const g = greeter(); // OpenSSL's own random key at first
    try {
      const port = g.server.addr.port;
      const s0 = (await visit(port, { maxVersion: version })).session;
      g.server.rotateTicketKeys(); // key 1; key 0 (OpenSSL's) is the previous one
      const s1 = (await visit(port, { maxVersion: version })).session;
      const r0 = await visit(port, { maxVersion: version, session: s0 });
      assert.equal(r0.reused, true, "a ticket under the previous key resumes");
      assert.ok(r0.session !== null, "and is renewed");
      g.server.rotateTicketKeys(generateTicketKeys()); // key 2; key 1 previous, key 0 gone
      assert.equal((await visit(port, { maxVersion: version, session: s1 })).reused, true);
      const gone = await visit(port, { maxVersion: version, session: s0 });
      assert.equal(gone.reused, false, "key 0 is gone: a full handshake");
      assert.ok(gone.verified > 0);
      // The ticket renewed under key 1 resumes while key 1 is the previous key.
      assert.equal((await visit(port, { maxVersion: version, session: r0.session })).reused, true);
    } finally {
      await stop(g);
      finish();
    }
  });
}

// ---- our client against openssl s_server ------------------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`client vs s_server -tls${version}: resumes with conn.session`, async () => {
    const peer = await startOpensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediateCa.certPath,
      tls: version,
    });
    try {
      const sessions: Uint8Array[] = [];
      for (let i = 0; i < 2; i++) {
        const since = peer.output().length;
        const conn = await connect(client(peer.port, {
          session: sessions[0] ?? null,
          onSession: (s) => sessions.push(s),
        }));
        try {
          assert.equal(conn.protocol, `TLSv${version}`);
          assert.equal(conn.sessionReused, i === 1, `connection ${i}`);
          // s_server's data comes after its tickets: reading it processes them.
          await peer.waitFor(/CIPHER is/, 5_000, since);
          peer.send(`hello ${i}\n`);
          const buf = new Uint8Array(64);
          const n = await conn.read(buf);
          assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), `hello ${i}\n`);
          if (i === 0) assert.ok(conn.session !== null);
          if (i === 1) await peer.waitFor(/Reused session-id|Reused/, 5_000, since);
        } finally {
          await conn.closeWrite().catch(() => {});
          conn.close();
        }
        // s_server serves one client at a time: let it finish this one.
        await peer.waitFor(/CONNECTION CLOSED|DONE|shutting down SSL/, 5_000, since).catch(
          () => {},
        );
      }
    } finally {
      await peer.stop();
      finish();
    }
  });
}

// ---- openssl s_client against our listener -----------------------------------------------------

for (const version of ["1.3", "1.2"] as const) {
  test(`s_client -tls${version} -sess_out / -sess_in (1.2: -reconnect) against listen()`, async () => {
    const g = greeter();
    const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-sess-"));
    const sessFile = join(dir, "session.pem");
    try {
      const port = g.server.addr.port;
      const first = await opensslClient({
        port,
        caFile: pki.rootCaPath,
        tls: version,
        extraArgs: ["-sess_out", sessFile],
      }).result;
      assert.match(first.stdout, new RegExp(`^New, TLSv${version}, Cipher is`, "m"));
      assert.match(readFileSync(sessFile, "utf8"), /BEGIN SSL SESSION PARAMETERS/);
      const second = await opensslClient({
        port,
        caFile: pki.rootCaPath,
        tls: version,
        extraArgs: ["-sess_in", sessFile],
      }).result;
      assert.match(second.stdout, new RegExp(`^Reused, TLSv${version}, Cipher is`, "m"));
      // OpenSSL 3.0's `s_client -reconnect` drops each connection right after the handshake,
      // before TLS 1.3 tickets arrive: it never resumes TLS 1.3, against `s_server` either
      // (checked by hand). -sess_out/-sess_in above is how s_client resumes TLS 1.3.
      if (version === "1.3") return;
      const reconnect = await opensslClient({
        port,
        caFile: pki.rootCaPath,
        tls: version,
        extraArgs: ["-reconnect"],
      }).result;
      const reusedLines = reconnect.stdout.match(/^Reused, TLSv1\.2, Cipher is/gm) ?? [];
      // -reconnect: one full handshake, then 5 more with the session.
      assert.ok(
        reusedLines.length >= 4,
        `expected "Reused" lines:\n${reconnect.stdout}\n${reconnect.stderr}`,
      );
      assert.ok(g.reused.filter((r) => r).length >= 5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await stop(g);
      finish();
    }
  });
}
