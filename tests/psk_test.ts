/**
 * Pre-shared keys, both sides: our client against `openssl s_server -psk` and `gnutls-serv
 * --pskpasswd` (TLS 1.3 and 1.2), our listener against `openssl s_client -psk` and `gnutls-cli
 * --pskusername`, our client against our server in memory and over TCP (SHA-256 and SHA-384
 * PSKs, TLS 1.2, psk_ke, PSK next to certificates), and the failures: wrong key, unknown identity,
 * empty and oversized identities and keys, a callback returning null or throwing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connect,
  type Connection,
  type ConnectOptions,
  listen,
  type ListenOptions,
  type PskServerCallback,
  startTls,
  TlsContext,
  type TlsContextOptions,
  TlsEngine,
  TlsError,
  type TlsListener,
} from "../mod.ts";
import { test } from "./harness.ts";
import { sharedTestPki } from "./support/pki.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";
import { handshakePair, makePair } from "./support/memory_pair.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { startGnutlsServer } from "./support/gnutls_peer.ts";
import { spawnClient } from "./support/clients.ts";
import { badBinderAlert } from "./support/cli_output.ts";

const pki = sharedTestPki();
const text = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const KEY384 = Uint8Array.from({ length: 48 }, (_, i) => 200 - i);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 100 + i);

/** A server's key table: "alice" (SHA-256), "bob" (SHA-384). */
const serverKeys: PskServerCallback = (identity) =>
  identity === "alice"
    ? KEY
    : identity === "bob"
    ? { key: KEY384, cipherSuite: "TLS_AES_256_GCM_SHA384" }
    : null;

async function rejects(
  p: Promise<unknown>,
  check: (e: TlsError) => void,
): Promise<void> {
  try {
    await p;
  } catch (error) {
    assert.ok(error instanceof TlsError, `not a TlsError: ${error}`);
    check(error);
    return;
  }
  assert.fail("expected a rejection");
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

function client(port: number, extra: Partial<ConnectOptions>): ConnectOptions {
  return { hostname: "127.0.0.1", port, handshakeTimeout: 5_000, ...extra };
}

function server(extra: Partial<ListenOptions>): ListenOptions {
  return { hostname: "127.0.0.1", port: 0, handshakeTimeout: 5_000, ...extra };
}

/** Accepts one connection, greets it with its PSK identity, and closes. */
async function greetOne(listener: TlsListener): Promise<Connection> {
  const conn = await listener.accept();
  try {
    await conn.write(text(`hello ${String(conn.pskIdentity)}\n`));
    await conn.closeWrite();
  } finally {
    conn.close();
  }
  return conn;
}

// ---- our client against openssl s_server and gnutls-serv ---------------------------------------

test("client, TLS 1.3: s_server -nocert -psk; no certificate, sessionReused, pskIdentity", async () => {
  const peer = await startOpensslServer({
    tls: "1.3",
    extraArgs: ["-nocert", "-psk", hex(KEY), "-psk_identity", "alice"],
  });
  try {
    await using conn = await connect(client(peer.port, { psk: { identity: "alice", key: KEY } }));
    assert.equal(conn.protocol, "TLSv1.3");
    assert.equal(conn.cipher, "TLS_AES_128_GCM_SHA256"); // s_server's PSK is SHA-256
    assert.equal(conn.peerCertificate, null);
    assert.equal(conn.sessionReused, true); // OpenSSL reports a TLS 1.3 PSK as a resumption
    assert.equal(conn.pskIdentity, "alice");
    await conn.write(text("ping-psk\n"));
    await peer.waitFor(/ping-psk/);
  } finally {
    await peer.stop();
    finish();
  }
});

test("client, TLS 1.3: s_server with a wrong key: the binder fails, alert 47 or 51 by release", async () => {
  const peer = await startOpensslServer({
    tls: "1.3",
    extraArgs: ["-nocert", "-psk", hex(OTHER_KEY), "-psk_identity", "alice"],
  });
  try {
    await rejects(connect(client(peer.port, { psk: { identity: "alice", key: KEY } })), (e) => {
      assert.equal(e.code, "ALERT_RECEIVED");
      // The PSK binder did not verify: s_server up to OpenSSL 3.3 sends illegal_parameter (47),
      // from 3.4 decrypt_error (51), which RFC 8446 §6.2 asks for (see badBinderAlert).
      assert.equal(e.alert?.code, badBinderAlert().code);
    });
  } finally {
    await peer.stop();
    finish();
  }
});

test("client, TLS 1.2: s_server -cipher PSK -psk_hint; the function sees the hint", async () => {
  const peer = await startOpensslServer({
    tls: "1.2",
    cipher: "PSK",
    extraArgs: ["-nocert", "-psk", hex(KEY), "-psk_identity", "alice", "-psk_hint", "hint-1"],
  });
  const calls: [string | null, string][] = [];
  try {
    await using conn = await connect(client(peer.port, {
      psk: (hint, { version }) => {
        calls.push([hint, version]);
        return { identity: "alice", key: KEY };
      },
    }));
    assert.equal(conn.protocol, "TLSv1.2");
    assert.match(conn.cipher, /PSK/);
    assert.equal(conn.peerCertificate, null);
    assert.equal(conn.sessionReused, false);
    assert.equal(conn.pskIdentity, "alice");
    // First for the ClientHello's TLS 1.3 offer (no hint exists there), then for TLS 1.2.
    assert.deepEqual(calls, [[null, "TLSv1.3"], ["hint-1", "TLSv1.2"]]);
  } finally {
    await peer.stop();
    finish();
  }
});

test("client, TLS 1.2: s_server with a wrong key fails with an alert, no crash", async () => {
  const peer = await startOpensslServer({
    tls: "1.2",
    cipher: "PSK",
    extraArgs: ["-nocert", "-psk", hex(OTHER_KEY), "-psk_identity", "alice"],
  });
  try {
    await rejects(connect(client(peer.port, { psk: { identity: "alice", key: KEY } })), (e) => {
      // The server cannot decrypt our Finished: bad_record_mac (20) or decrypt_error (51).
      assert.equal(e.code, "ALERT_RECEIVED");
      assert.ok([20, 51].includes(e.alert!.code), `alert ${e.alert?.code}`);
    });
  } finally {
    await peer.stop();
    finish();
  }
});

async function withPskFile<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-psk-"));
  const path = join(dir, "psk.txt");
  writeFileSync(path, `alice:${hex(KEY)}\n`);
  try {
    return await fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("client: gnutls-serv --pskpasswd, TLS 1.3 and TLS 1.2; unknown identity refused", async () => {
  await withPskFile(async (file) => {
    const peer = await startGnutlsServer({
      priority: "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK",
      echo: true,
      extraArgs: ["--pskpasswd", file],
    });
    try {
      {
        await using conn = await connect(
          client(peer.port, { psk: { identity: "alice", key: KEY } }),
        );
        assert.equal(conn.protocol, "TLSv1.3");
        assert.equal(conn.pskIdentity, "alice");
        assert.equal(conn.sessionReused, true);
        assert.equal(conn.peerCertificate, null);
      }
      {
        await using conn = await connect(client(peer.port, {
          psk: { identity: "alice", key: KEY },
          maxVersion: "TLSv1.2",
        }));
        assert.equal(conn.protocol, "TLSv1.2");
        assert.match(conn.cipher, /PSK/);
        assert.equal(conn.pskIdentity, "alice");
      }
      // gnutls answers an unknown identity as if the key were wrong (no identity probing): it
      // cannot decrypt our Finished, bad_record_mac (20).
      await rejects(
        connect(
          client(peer.port, { psk: { identity: "mallory", key: KEY }, maxVersion: "TLSv1.2" }),
        ),
        (e) => {
          assert.equal(e.code, "ALERT_RECEIVED");
          assert.equal(e.alert?.code, 20);
        },
      );
    } finally {
      await peer.stop();
      finish();
    }
  });
});

test("client, pskKeyExchange: gnutls-serv accepting only psk_ke needs allow_psk_ke", async () => {
  await withPskFile(async (file) => {
    const peer = await startGnutlsServer({
      priority: "NORMAL:-KX-ALL:+PSK", // TLS 1.3: psk_ke only (no (EC)DHE)
      echo: true,
      extraArgs: ["--pskpasswd", file],
    });
    try {
      // OpenSSL offers psk_dhe_ke only by default: no mode in common.
      await rejects(
        connect(client(peer.port, { psk: { identity: "alice", key: KEY } })),
        (e) => assert.equal(e.code, "ALERT_RECEIVED"),
      );
      await using conn = await connect(client(peer.port, {
        psk: { identity: "alice", key: KEY },
        pskKeyExchange: "allow_psk_ke",
      }));
      assert.equal(conn.protocol, "TLSv1.3");
      assert.equal(conn.pskIdentity, "alice");
    } finally {
      await peer.stop();
      finish();
    }
  });
});

// ---- our server against openssl s_client and gnutls-cli ----------------------------------------

for (const tls of ["1.3", "1.2"] as const) {
  test(`server, TLS ${tls}: s_client -psk against a PSK-only listener`, async () => {
    const identities: (string | Uint8Array)[] = [];
    const listener = listen(server({
      psk: (identity, request) => {
        identities.push(identity);
        return serverKeys(identity, request);
      },
      pskIdentityHint: "our-hint",
    }));
    const child = spawnClient("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${listener.addr.port}`,
      tls === "1.3" ? "-tls1_3" : "-tls1_2",
      ...(tls === "1.2" ? ["-cipher", "PSK"] : []),
      "-psk",
      hex(KEY),
      "-psk_identity",
      "alice",
      "-ign_eof",
    ]);
    try {
      const conn = await greetOne(listener);
      const result = await child.result;
      assert.match(result.stdout, /hello alice/);
      assert.equal(conn.pskIdentity, "alice");
      assert.equal(conn.protocol, tls === "1.3" ? "TLSv1.3" : "TLSv1.2");
      assert.equal(conn.sessionReused, tls === "1.3");
      assert.ok(identities.every((i) => i === "alice"));
      if (tls === "1.2") assert.match(result.stdout + result.stderr, /our-hint/);
    } finally {
      await child.stop();
      listener.close();
      finish();
    }
  });
}

test("server, TLS 1.2: an unknown identity from s_client gets alert 115; onError says why", async () => {
  const errors: TlsError[] = [];
  const listener = listen(server({ psk: serverKeys, onError: (e) => errors.push(e) }));
  const child = spawnClient("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${listener.addr.port}`,
    "-tls1_2",
    "-cipher",
    "PSK",
    "-psk",
    hex(KEY),
    "-psk_identity",
    "mallory",
  ]);
  try {
    const result = await child.result;
    assert.match(result.stderr, /alert number 115|unknown psk identity/i);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(errors[0]?.code, "HANDSHAKE_FAILED");
    assert.match(errors[0]!.message, /unknown PSK identity "mallory"/);
  } finally {
    await child.stop();
    listener.close();
    finish();
  }
});

for (const tls of ["1.3", "1.2"] as const) {
  test(`server, TLS ${tls}: gnutls-cli --pskusername --pskkey`, async () => {
    const listener = listen(server({ psk: serverKeys }));
    const child = spawnClient("gnutls-cli", [
      "127.0.0.1",
      "-p",
      String(listener.addr.port),
      "--pskusername",
      "alice",
      "--pskkey",
      hex(KEY),
      "--priority",
      // gnutls-cli 3.7.9 crashes (SIGSEGV) after a TLS 1.2 ECDHE-PSK handshake, against
      // s_server too: plain PSK there.
      tls === "1.3"
        ? "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+PSK"
        : "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK",
    ], { endInput: false });
    try {
      const conn = await greetOne(listener);
      await child.waitFor(/hello alice/);
      child.end();
      assert.equal(conn.pskIdentity, "alice");
      assert.equal(conn.protocol, `TLSv${tls}`);
    } finally {
      await child.stop();
      listener.close();
      finish();
    }
  });
}

test("server, pskKeyExchange: a psk_ke-only gnutls-cli needs allow_psk_ke on the listener", async () => {
  const errors: TlsError[] = [];
  for (const mode of ["psk_dhe_ke", "allow_psk_ke"] as const) {
    const listener = listen(
      server({ psk: serverKeys, pskKeyExchange: mode, onError: (e) => errors.push(e) }),
    );
    const child = spawnClient("gnutls-cli", [
      "127.0.0.1",
      "-p",
      String(listener.addr.port),
      "--pskusername",
      "alice",
      "--pskkey",
      hex(KEY),
      "--priority",
      "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK",
    ], { endInput: false });
    try {
      if (mode === "psk_dhe_ke") {
        const result = await child.result;
        assert.notEqual(result.code, 0);
        assert.equal(errors[0]?.code, "HANDSHAKE_FAILED");
      } else {
        const conn = await greetOne(listener);
        await child.waitFor(/hello alice/);
        child.end();
        assert.equal(conn.pskIdentity, "alice");
      }
    } finally {
      await child.stop();
      listener.close();
    }
  }
  finish();
});

// ---- our client against our server ---------------------------------------------------------------

test("in-process over TCP, TLS 1.3: SHA-256 and SHA-384 PSKs on a PSK-only listener", async () => {
  const listener = listen(server({ psk: serverKeys }));
  try {
    for (
      const [identity, key, suite, cipher] of [
        ["alice", KEY, undefined, "TLS_AES_128_GCM_SHA256"],
        ["bob", KEY384, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"],
      ] as const
    ) {
      const accepted = greetOne(listener);
      await using conn = await connect(client(listener.addr.port, {
        psk: { identity, key, ...(suite === undefined ? {} : { cipherSuite: suite }) },
      }));
      assert.equal(conn.cipher, cipher);
      assert.equal(conn.pskIdentity, identity);
      assert.equal(await readToEnd(conn), `hello ${identity}\n`);
      const s = await accepted;
      assert.equal(s.pskIdentity, identity);
      assert.equal(s.sessionReused, true);
      assert.equal(s.peerCertificate, null);
    }
  } finally {
    listener.close();
    finish();
  }
});

test("in-process over TCP, TLS 1.2 with a hint; startTls with psk needs no hostname", async () => {
  const listener = listen(server({ psk: serverKeys, pskIdentityHint: "h", maxVersion: "TLSv1.2" }));
  try {
    const accepted = greetOne(listener);
    let seenHint: string | null = null;
    await using conn = await connect(client(listener.addr.port, {
      psk: (hint) => {
        seenHint = hint;
        return { identity: "alice", key: KEY };
      },
    }));
    assert.equal(conn.protocol, "TLSv1.2");
    assert.equal(seenHint, "h");
    assert.equal(conn.pskIdentity, "alice");
    assert.equal((await accepted).pskIdentity, "alice");

    // startTls over a plain TCP stream, no hostname: PSK is the only authentication.
    const accepted2 = greetOne(listener);
    const net = await import("node:net");
    const { Duplex } = await import("node:stream");
    const socket = net.connect(listener.addr.port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    await using conn2 = await startTls(Duplex.toWeb(socket) as never, {
      psk: { identity: "alice", key: KEY },
    });
    assert.equal(conn2.pskIdentity, "alice");
    assert.equal(await readToEnd(conn2), "hello alice\n");
    await accepted2;
  } finally {
    listener.close();
    finish();
  }
});

test("PSK and certificates on one listener: PSK clients, certificate clients, unknown identities", async () => {
  const listener = listen(
    server({ psk: serverKeys, cert: pki.server.chainPem, key: pki.server.key }),
  );
  const trust = { caCerts: [pki.rootCa.cert], servername: "localhost" };
  try {
    {
      const accepted = greetOne(listener);
      await using conn = await connect(client(listener.addr.port, {
        ...trust,
        psk: { identity: "alice", key: KEY },
      }));
      assert.equal(conn.pskIdentity, "alice");
      assert.equal(conn.peerCertificate, null);
      await accepted;
    }
    {
      const accepted = greetOne(listener);
      await using conn = await connect(client(listener.addr.port, trust));
      assert.equal(conn.pskIdentity, null);
      assert.match(conn.peerCertificate!.subject, /CN=localhost/);
      assert.equal((await accepted).pskIdentity, null);
    }
    {
      // Unknown identity in TLS 1.3: the server ignores the PSK and authenticates with its
      // certificate, which the client verifies as usual.
      const accepted = greetOne(listener);
      await using conn = await connect(client(listener.addr.port, {
        ...trust,
        psk: { identity: "mallory", key: KEY },
      }));
      assert.equal(conn.pskIdentity, null);
      assert.equal(conn.sessionReused, false);
      assert.match(conn.peerCertificate!.subject, /CN=localhost/);
      await accepted;
    }
    // ... and that certificate is still verified: an untrusted one fails.
    await rejects(
      connect(client(listener.addr.port, {
        servername: "localhost",
        caCerts: [pki.otherRootCa.cert],
        psk: { identity: "mallory", key: KEY },
      })),
      (e) => assert.equal(e.code, "CERT_VERIFY_FAILED"),
    );
  } finally {
    listener.close();
    finish();
  }
});

// ---- in memory: key exchange modes, callbacks, errors -------------------------------------------

async function memoryHandshake(
  clientOptions: TlsContextOptions,
  serverOptions: TlsContextOptions,
  engineOptions: { servername?: string } = {},
): Promise<{ client: TlsEngine; server: TlsEngine; close(): void }> {
  const pair = makePair(clientOptions, serverOptions, engineOptions);
  try {
    await handshakePair(pair.client, pair.server);
  } catch (error) {
    pair.close();
    throw error;
  }
  return pair;
}

test("in memory: every pskKeyExchange combination completes with the PSK", async () => {
  for (
    const [c, s] of [["allow_psk_ke", "psk_dhe_ke"], ["psk_dhe_ke", "allow_psk_ke"], [
      "allow_psk_ke",
      "allow_psk_ke",
    ]] as const
  ) {
    const pair = await memoryHandshake(
      { psk: { identity: "alice", key: KEY }, pskKeyExchange: c },
      { psk: serverKeys, pskKeyExchange: s },
    );
    try {
      assert.equal(pair.client.pskIdentity, "alice");
      assert.equal(pair.server.pskIdentity, "alice");
    } finally {
      pair.close();
    }
  }
  finish();
});

test("in memory: wrong key, unknown identity, null and throwing callbacks are typed errors", async () => {
  const fails = async (
    c: TlsContextOptions,
    s: TlsContextOptions,
    check: (e: TlsError) => void,
  ) => {
    try {
      const pair = await memoryHandshake(c, s);
      pair.close();
      assert.fail("expected the handshake to fail");
    } catch (error) {
      assert.ok(error instanceof TlsError, String(error));
      check(error);
    }
  };
  // TLS 1.3 wrong key: the server's binder check fails.
  await fails({ psk: { identity: "alice", key: OTHER_KEY } }, { psk: serverKeys }, (e) => {
    assert.equal(e.code, "HANDSHAKE_FAILED");
    assert.match(e.message, /binder does not verify/);
  });
  // TLS 1.3 unknown identity at a PSK-only server: nothing to fall back to.
  await fails({ psk: { identity: "mallory", key: KEY } }, { psk: serverKeys }, (e) => {
    assert.equal(e.code, "HANDSHAKE_FAILED");
    assert.match(e.message, /PSK identity "mallory" is unknown/);
  });
  // TLS 1.2 unknown identity: alert 115.
  await fails(
    { psk: { identity: "mallory", key: KEY }, maxVersion: "TLSv1.2" },
    { psk: serverKeys },
    (e) => assert.match(e.message, /unknown PSK identity "mallory".*115/),
  );
  // Server callback returns null for everyone.
  await fails({ psk: { identity: "alice", key: KEY } }, { psk: () => null }, (e) => {
    assert.equal(e.code, "HANDSHAKE_FAILED");
  });
  // Client callback returns null: TLS 1.3 offers no PSK; the PSK-only server cannot go on.
  await fails({ psk: () => null }, { psk: serverKeys }, (e) => {
    assert.equal(e.code, "HANDSHAKE_FAILED");
  });
  // Client callback returns null for TLS 1.2.
  await fails(
    { psk: () => null, maxVersion: "TLSv1.2" },
    { psk: serverKeys },
    (e) => assert.match(e.message, /psk function returned null/),
  );
  // Throwing callbacks: CALLBACK_ERROR with the user's error as cause, on either side.
  const boom = new Error("boom");
  await fails(
    {
      psk: () => {
        throw boom;
      },
    },
    { psk: serverKeys },
    (e) => {
      assert.equal(e.code, "CALLBACK_ERROR");
      assert.equal(e.cause, boom);
    },
  );
  await fails({ psk: { identity: "alice", key: KEY } }, {
    psk: () => {
      throw boom;
    },
  }, (e) => {
    assert.equal(e.code, "CALLBACK_ERROR");
    assert.equal(e.cause, boom);
  });
  // A callback returning bad values: CALLBACK_ERROR with a TypeError/RangeError cause.
  await fails(
    { psk: () => ({ identity: "x".repeat(300), key: KEY }) },
    { psk: serverKeys },
    (e) => {
      assert.equal(e.code, "CALLBACK_ERROR");
      assert.ok(e.cause instanceof RangeError);
    },
  );
  await fails(
    { psk: { identity: "alice", key: KEY } },
    { psk: () => new Uint8Array(513) },
    (e) => {
      assert.equal(e.code, "CALLBACK_ERROR");
      assert.ok(e.cause instanceof RangeError);
    },
  );
  await fails(
    { psk: { identity: "alice", key: KEY } },
    { psk: (() => Promise.resolve(KEY)) as unknown as PskServerCallback },
    (e) => {
      assert.equal(e.code, "CALLBACK_ERROR");
      assert.ok(e.cause instanceof TypeError);
    },
  );
  finish();
});

test("in memory: byte identities; the server sees non-printable identities as bytes", async () => {
  const raw = Uint8Array.of(0, 1, 2, 0xff);
  const seen: (string | Uint8Array)[] = [];
  const pair = await memoryHandshake(
    { psk: { identity: raw, key: KEY }, minVersion: "TLSv1.3" },
    {
      psk: (identity: string | Uint8Array) => {
        seen.push(identity);
        return identity instanceof Uint8Array ? KEY : null;
      },
    },
  );
  try {
    assert.deepEqual(seen.map((s) => s instanceof Uint8Array ? [...s] : s), [[0, 1, 2, 0xff]]);
    assert.deepEqual([...(pair.server.pskIdentity as Uint8Array)], [0, 1, 2, 0xff]);
    assert.deepEqual([...(pair.client.pskIdentity as Uint8Array)], [0, 1, 2, 0xff]);
  } finally {
    pair.close();
    finish();
  }
});

test("options: bad identities and keys are TypeError/RangeError before connecting", async () => {
  const ctx = (psk: unknown, extra: TlsContextOptions = {}) => () =>
    new TlsContext("client", { psk: psk as never, ...extra });
  assert.throws(ctx({ identity: "", key: KEY }), RangeError);
  assert.throws(ctx({ identity: new Uint8Array(0), key: KEY }), RangeError);
  assert.throws(ctx({ identity: "a".repeat(257), key: KEY }), /at most 256/);
  assert.throws(ctx({ identity: "alice", key: new Uint8Array(0) }), RangeError);
  assert.throws(ctx({ identity: "alice", key: new Uint8Array(513) }), /at most 512/);
  assert.throws(ctx({ identity: "alice", key: "secret" }), TypeError);
  assert.throws(ctx({ identity: 42, key: KEY }), TypeError);
  assert.throws(ctx({ identity: "alice", key: KEY, cipherSuite: "AES128-SHA" }), RangeError);
  assert.throws(ctx({ identity: "a\0b", key: KEY }), /NUL/);
  new TlsContext("client", { psk: { identity: "a\0b", key: KEY }, minVersion: "TLSv1.3" }).close();
  new TlsContext("client", { psk: { identity: "a".repeat(256), key: new Uint8Array(512) } })
    .close();
  assert.throws(
    () => new TlsContext("server", { psk: { identity: "a", key: KEY } as never }),
    TypeError,
  );
  assert.throws(() => new TlsContext("client", { pskIdentityHint: "h" }), TypeError);
  assert.throws(
    () => new TlsContext("server", { psk: serverKeys, pskIdentityHint: "h".repeat(257) }),
    RangeError,
  );
  assert.throws(
    () =>
      new TlsContext("client", { psk: { identity: "a", key: KEY }, pskKeyExchange: "x" as never }),
    TypeError,
  );
  assert.throws(() => new TlsContext("server", {}), /cert and key \(or pfx, or psk\)/);
  assert.throws(() => listen(server({})), TypeError);
  // connect() validates before any I/O (port 1 is never dialled).
  await assert.rejects(
    connect(client(1, { psk: { identity: "alice", key: new Uint8Array(600) } })),
    RangeError,
  );
  // Without psk a client engine needs servername; with it, not.
  const plain = new TlsContext("client", {});
  assert.throws(() => new TlsEngine(plain), /servername/);
  plain.close();
  const c = new TlsContext("client", { psk: { identity: "a", key: KEY } });
  new TlsEngine(c).close();
  c.close();
  finish();
});
