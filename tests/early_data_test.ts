/**
 * TLS 1.3 0-RTT early data: our client (`earlyData`, `conn.earlyDataAccepted`) against
 * `openssl s_server -early_data` (which prints the early data it read) and against our own
 * listener (`maxEarlyData`, `conn.earlyData`), with OpenSSL's replay protection: the same
 * session used twice has its early data accepted the first time only; the second time it is
 * rejected, and the library resends the bytes as ordinary data, so they still arrive. Plus what
 * never goes as early data (no session, a server that does not allow it, too many bytes), and
 * the option checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
} from "../mod.ts";
import { test } from "./harness.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { localClientOptions as client, localServerOptions } from "./support/listener.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { sharedTestPki } from "./support/pki.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array | null) => b === null ? null : new TextDecoder().decode(b);

// ---- against openssl s_server -early_data ------------------------------------------------------

test("s_server -early_data: a resumed session carries earlyData once; a replay is rejected and resent", async () => {
  const peer = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    tls: "1.3",
    extraArgs: ["-early_data"],
  });
  try {
    let session: Uint8Array | null = null;
    const results: { accepted: boolean; reused: boolean; log: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const since = peer.output().length;
      const conn = await connect(client(peer.port, {
        session: i === 0 ? null : session,
        earlyData: text(`early ${i}\n`),
        onSession: (s) => (session ??= s),
      }));
      try {
        await peer.waitFor(/CIPHER is/, 5_000, since);
        // s_server's data comes after its tickets: reading it processes them.
        peer.send(`hello ${i}\n`);
        const buf = new Uint8Array(64);
        const n = await conn.read(buf);
        assert.equal(decode(buf.subarray(0, n ?? 0)), `hello ${i}\n`);
        // The early data (or its resent copy) reached s_server either way.
        await peer.waitFor(new RegExp(`early ${i}`), 5_000, since);
        results.push({
          accepted: conn.earlyDataAccepted,
          reused: conn.sessionReused,
          log: peer.output().slice(since),
        });
      } finally {
        await conn.closeWrite().catch(() => {});
        conn.close();
      }
    }
    // 0: no session yet: sent after the handshake.
    assert.equal(results[0]!.accepted, false);
    assert.match(results[0]!.log, /No early data received/);
    // 1: resumed with early data, printed by s_server as such.
    assert.equal(results[1]!.reused, true);
    assert.equal(results[1]!.accepted, true, results[1]!.log);
    assert.match(results[1]!.log, /Early data received:\nearly 1\n\nEnd of early data/);
    // 2: the same session again: s_server's anti-replay refuses the ticket; a full handshake,
    // the early data rejected and resent as ordinary data.
    assert.equal(results[2]!.reused, false);
    assert.equal(results[2]!.accepted, false);
    assert.match(results[2]!.log, /Early data was rejected/);
    assert.doesNotMatch(results[2]!.log, /Early data received/);
  } finally {
    await peer.stop();
    finish();
  }
});

// ---- our client against our listener ----------------------------------------------------------

interface Seen {
  earlyData: string | null;
  accepted: boolean;
  reused: boolean;
  firstRead: string;
}

/**
 * A listener with `extra` that records, per connection, its early data and the first bytes of
 * the stream, then answers "bye" and closes.
 */
function recorder(extra: Partial<ListenOptions>) {
  const server = listen(localServerOptions({ handshakeTimeout: 5_000, ...extra }));
  const seen: Seen[] = [];
  const handlers: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of server) {
      handlers.push(
        (async () => {
          try {
            // The stream up to the client's own line (which ends with ".\n"): a resent
            // earlyData comes first, possibly in a record of its own.
            const buf = new Uint8Array(256);
            let stream = "";
            while (!stream.endsWith(".\n")) {
              const n = await conn.read(buf);
              if (n === null) break;
              stream += decode(buf.subarray(0, n));
            }
            seen.push({
              earlyData: decode(conn.earlyData),
              accepted: conn.earlyDataAccepted,
              reused: conn.sessionReused,
              firstRead: stream,
            });
            await conn.write(text("bye\n"));
            await conn.closeWrite();
            await conn.read(buf).catch(() => null);
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
  return { server, seen, stop };
}

/** Connects with `extra`, sends `line`, reads to the end; returns what the client saw. */
async function exchange(port: number, line: string, extra: Partial<ConnectOptions>) {
  const conn: Connection = await connect(client(port, extra));
  try {
    await conn.write(text(line));
    const buf = new Uint8Array(256);
    while ((await conn.read(buf)) !== null) { /* tickets, "bye" */ }
    return { accepted: conn.earlyDataAccepted, reused: conn.sessionReused, session: conn.session };
  } finally {
    conn.close();
  }
}

test("listen({ maxEarlyData }): accepted once per ticket, a replay arrives as ordinary data", async () => {
  const r = recorder({ maxEarlyData: 1024 });
  try {
    const port = r.server.addr.port;
    const first = await exchange(port, "one.\n", {});
    assert.ok(first.session !== null);
    const a = await exchange(port, "two.\n", {
      session: first.session,
      earlyData: text("GET /a\n"),
    });
    assert.deepEqual([a.reused, a.accepted], [true, true]);
    // The very same session again: OpenSSL removed it from the server's cache when it was
    // resumed, so this is a full handshake and the early data is rejected (then resent).
    const b = await exchange(port, "three.\n", {
      session: first.session,
      earlyData: text("GET /b\n"),
    });
    assert.deepEqual([b.reused, b.accepted], [false, false]);
    // A fresh ticket (from the accepted connection) works once more.
    const c = await exchange(port, "four.\n", { session: a.session, earlyData: text("GET /c\n") });
    assert.deepEqual([c.reused, c.accepted], [true, true]);

    assert.deepEqual(r.seen, [
      { earlyData: null, accepted: false, reused: false, firstRead: "one.\n" },
      { earlyData: "GET /a\n", accepted: true, reused: true, firstRead: "two.\n" },
      // Rejected: not conn.earlyData; the client resent it ahead of its first write.
      { earlyData: null, accepted: false, reused: false, firstRead: "GET /b\nthree.\n" },
      { earlyData: "GET /c\n", accepted: true, reused: true, firstRead: "four.\n" },
    ]);
  } finally {
    await r.stop();
    finish();
  }
});

test("earlyData never goes as 0-RTT without a session allowing it; it still arrives", async () => {
  const off = recorder({}); // maxEarlyData off: tickets allow no early data
  const small = recorder({ maxEarlyData: 4 });
  try {
    // No session.
    const none = await exchange(off.server.addr.port, "x.\n", { earlyData: text("E1\n") });
    assert.equal(none.accepted, false);
    // A session whose server does not allow early data: resumed, data sent after the handshake.
    const later = await exchange(off.server.addr.port, "y.\n", {
      session: none.session,
      earlyData: text("E2\n"),
    });
    assert.deepEqual([later.reused, later.accepted], [true, false]);
    // More bytes than the ticket allows (4): not tried as early data.
    const first = await exchange(small.server.addr.port, "z.\n", {});
    const big = await exchange(small.server.addr.port, "w.\n", {
      session: first.session,
      earlyData: text("too long\n"),
    });
    assert.deepEqual([big.reused, big.accepted], [true, false]);
    // TLS 1.2 (no early data in it) with a server reading early data: just a handshake.
    const tls12 = await exchange(small.server.addr.port, "v.\n", {
      maxVersion: "TLSv1.2",
      earlyData: text("E3\n"),
    });
    const tls12Again = await exchange(small.server.addr.port, "u.\n", {
      maxVersion: "TLSv1.2",
      session: tls12.session,
      earlyData: text("E4\n"),
    });
    assert.deepEqual([tls12.accepted, tls12Again.reused, tls12Again.accepted], [
      false,
      true,
      false,
    ]);
    assert.deepEqual(off.seen.map((s) => [s.earlyData, s.firstRead]), [
      [null, "E1\nx.\n"],
      [null, "E2\ny.\n"],
    ]);
    assert.deepEqual(small.seen.map((s) => [s.earlyData, s.firstRead]), [
      [null, "z.\n"],
      [null, "too long\nw.\n"],
      [null, "E3\nv.\n"],
      [null, "E4\nu.\n"],
    ]);
  } finally {
    await off.stop();
    await small.stop();
    finish();
  }
});

test("early data: option checks", () => {
  const base = localServerOptions();
  assert.throws(() => listen({ ...base, maxEarlyData: -1 }), RangeError);
  assert.throws(() => listen({ ...base, maxEarlyData: 1.5 }), RangeError);
  assert.throws(
    () => listen({ ...base, maxEarlyData: 100, sessionTickets: false }),
    /maxEarlyData cannot be combined with sessionTickets: false/,
  );
  assert.throws(
    () => listen({ ...base, maxEarlyData: 100, ticketKeys: new Uint8Array(80) }),
    /maxEarlyData cannot be combined with ticketKeys/,
  );
  assert.throws(
    () => listen({ ...base, maxEarlyData: 100, onResumeSession: () => null }),
    /maxEarlyData cannot be combined with an external session cache/,
  );
  assert.throws(
    () => listen({ ...base, earlyData: text("x") } as never),
    /earlyData is for clients only/,
  );
  return assert.rejects(
    connect(client(1, { earlyData: "GET /" as never })),
    /earlyData must be a non-empty Uint8Array/,
  ).then(finish);
});
