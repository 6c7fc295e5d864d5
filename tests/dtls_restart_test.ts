/**
 * A DTLS client that restarts from the same address and port while its old session is alive on
 * the server (RFC 6347 4.2.8): `openssl s_client -dtls1_2 -bind` killed without close_notify and
 * started again on the same port gets a session at once (not after the idle timeout), and the
 * old session ends with `UNEXPECTED_EOF`. Through a relay (one fixed UDP port for every client):
 * replayed ClientHellos of the live session (the same random) and a new ClientHello without a
 * cookie leave the session alone; only a new client that returns its cookie replaces it.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  connectDtls,
  type DtlsConnection,
  type DtlsListener,
  listenDtls,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { freeUdpPort, startDtlsClient } from "./support/dtls_peers.ts";
import { clearCacheAndAssertNoLeaks as finish } from "./support/leaks.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const KEY = Uint8Array.from({ length: 32 }, (_, i) => 90 + i);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Serves every connection: each datagram comes back as "echo:" + datagram. */
function echo(server: DtlsListener): { served: DtlsConnection[]; ended: Promise<unknown>[] } {
  const served: DtlsConnection[] = [];
  const ended: Promise<unknown>[] = [];
  (async () => {
    for await (const conn of server) {
      served.push(conn);
      ended.push((async () => {
        try {
          for (let d = await conn.receive(); d !== null; d = await conn.receive()) {
            conn.send(text(`echo:${str(d)}`));
          }
          return null;
        } catch (error) {
          return error;
        } finally {
          void conn.close();
        }
      })());
    }
  })();
  return { served, ended };
}

async function pskServer(errors: TlsError[]): Promise<DtlsListener> {
  return await listenDtls({
    hostname: "127.0.0.1",
    psk: (identity) => (identity === "restarting" ? KEY : null),
    idleTimeout: 120_000, // far beyond the test: the old session must end another way
    onError: (e) => errors.push(e),
  });
}

async function waitUntil(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

function assertRestarted(error: unknown): void {
  assert.ok(error instanceof TlsError, String(error));
  assert.equal(error.code, "UNEXPECTED_EOF");
  assert.match(error.message, /restarted/);
}

test("listenDtls: s_client -bind killed, then again from the same port: a session at once", async () => {
  try {
    const errors: TlsError[] = [];
    await using server = await pskServer(errors);
    const { served, ended } = echo(server);
    const local = await freeUdpPort();
    // -ign_eof: a read of the (non-blocking, on Deno) stdin pipe that finds nothing would
    // otherwise end s_client with a close_notify ("DONE").
    const args = [
      "-bind",
      `127.0.0.1:${local}`,
      "-psk",
      hex(KEY),
      "-psk_identity",
      "restarting",
      "-ign_eof",
    ];
    const first = startDtlsClient("openssl", server.addr.port, args);
    await first.waitFor(/Cipher is \S*PSK/);
    first.send("one\n");
    await first.waitFor(/echo:one/);
    first.process.kill("SIGKILL"); // no close_notify: the server still holds its session
    await first.exited;
    assert.equal(server.connectionCount, 1);
    assert.equal(served[0]!.remoteAddr.port, local);

    await using second = startDtlsClient("openssl", server.addr.port, args);
    // Without RFC 6347 4.2.8 handling this waits for the old session's idle timeout (120 s).
    await second.waitFor(/Cipher is \S*PSK/, 8_000);
    second.send("two\n");
    await second.waitFor(/echo:two/);
    assert.equal(served.length, 2);
    assert.equal(served[1]!.remoteAddr.port, local);
    assertRestarted(await ended[0]);
    assert.equal(served[0]!.closed, true);
    assert.equal(server.connectionCount, 1);
    assert.deepEqual(errors, []);
  } finally {
    finish();
  }
});

/** A UDP relay on one fixed port: to the server from it, back to the last client seen. */
async function startRelay(target: number) {
  const socket = dgram.createSocket("udp4");
  const fromClients: Uint8Array[] = [];
  let client: { address: string; port: number } | null = null;
  socket.on("message", (data: Uint8Array, rinfo: { address: string; port: number }) => {
    if (rinfo.port === target) {
      if (client !== null) socket.send(data, client.port, client.address);
      return;
    }
    client = { address: rinfo.address, port: rinfo.port };
    fromClients.push(new Uint8Array(data));
    socket.send(data, target, "127.0.0.1");
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  let closed = false;
  return {
    port: socket.address().port,
    fromClients,
    /** Sends `data` to the server from the relay's port (as its client would). */
    inject: (data: Uint8Array) => socket.send(data, target, "127.0.0.1"),
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/** An epoch-0 ClientHello (record type 22, epoch 0, handshake type 1). */
const isClientHello = (d: Uint8Array) => d[0] === 22 && d[3] === 0 && d[4] === 0 && d[13] === 1;

test("listenDtls: replayed ClientHellos keep the session; a cookieless new one too; a restart replaces it", async () => {
  try {
    const errors: TlsError[] = [];
    await using server = await pskServer(errors);
    const { served, ended } = echo(server);
    const relay = await startRelay(server.addr.port);
    const options = {
      hostname: "127.0.0.1",
      port: relay.port,
      psk: { identity: "restarting", key: KEY },
      handshakeTimeout: 8_000,
    };
    const first = await connectDtls(options);
    try {
      first.send(text("a"));
      assert.equal(str(await first.receive()), "echo:a");
      const hellos = relay.fromClients.filter(isClientHello);
      assert.ok(hellos.length >= 2, `${hellos.length} ClientHellos`); // without, then with the cookie

      // Late duplicates of both ClientHellos (the same random): the session's, dropped there.
      for (const hello of hellos) relay.inject(hello);
      // A new random without a cookie: a HelloVerifyRequest, nothing else.
      const changed = hellos[0]!.slice();
      changed[27]! ^= 0xff;
      relay.inject(changed);
      await delay(300);
      first.send(text("b"));
      assert.equal(str(await first.receive()), "echo:b");
      assert.equal(served.length, 1);
      assert.equal(served[0]!.closed, false);
      assert.equal(server.connectionCount, 1);

      // The client restarts (a new socket behind the same relay port) and returns its cookie.
      await using second = await connectDtls(options);
      second.send(text("c"));
      assert.equal(str(await second.receive()), "echo:c");
      await waitUntil("the second session", () => served.length === 2);
      assertRestarted(await ended[0]);
      assert.equal(server.connectionCount, 1);
      assert.deepEqual(errors, []);
    } finally {
      await relay.close();
      await first.close(); // its close_notify goes nowhere
    }
  } finally {
    finish();
  }
});
