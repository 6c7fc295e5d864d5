/**
 * PKCS#12 identities (`pfx` + `passphrase`), with files made by `openssl pkcs12 -export` from the
 * shared test PKI: modern (AES-256, the OpenSSL 3 default) and `-legacy` (RC2-40 / 3DES, through
 * OpenSSL's legacy provider), with and without the intermediate (`-certfile`), with an empty
 * passphrase (`-passout pass:`):
 * - our client (a `pfx` option, and an `Identity` from `onClientCertificate`) against
 *   `openssl s_server -Verify 1 -verify_return_error`, trusting only the root (so the chain from
 *   the file is needed);
 * - our server against `openssl s_client -verify_return_error`, trusting only the root;
 * - a wrong or missing passphrase (`BAD_PASSPHRASE`), bytes that are not PKCS#12, a legacy file
 *   when the legacy provider cannot load (a child process with `OPENSSL_MODULES` elsewhere).
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  connect,
  type ConnectOptions,
  identityForAcceptableIssuers,
  listen,
  type ListenOptions,
  type Pkcs12Identity,
  TlsContext,
  TlsError,
} from "../mod.ts";
import { test } from "./harness.ts";
import { runIn, sharedTestPki } from "./support/pki.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { opensslClient, parseOpensslClient } from "./support/clients.ts";
import { rejectsWithTlsError, withEchoServer } from "./support/listener.ts";
import { clearCacheAndAssertNoLeaks } from "./support/leaks.ts";
import { runScript } from "./support/subprocess.ts";

const pki = sharedTestPki();
const PASS = "p12-pass";

/** `openssl pkcs12 -export` of `leaf` into `<name>.p12` in the PKI's dir; returns its path. */
function exportP12(
  name: string,
  leaf: { certPath: string; keyPath: string },
  options: { chain: boolean; legacy?: boolean; pass?: string },
): string {
  const out = join(pki.dir, `${name}.p12`);
  runIn("pkcs12", pki.dir, {}, "openssl", [
    "pkcs12",
    "-export",
    "-in",
    leaf.certPath,
    "-inkey",
    leaf.keyPath,
    ...(options.chain ? ["-certfile", pki.intermediateCa.certPath] : []),
    ...(options.legacy === true ? ["-legacy"] : []),
    "-passout",
    `pass:${options.pass ?? PASS}`,
    "-out",
    out,
  ]);
  return out;
}

const read = (path: string) => new Uint8Array(readFileSync(path));
const files = {
  clientModern: read(exportP12("client-modern", pki.client, { chain: true })),
  clientLegacy: read(exportP12("client-legacy", pki.client, { chain: true, legacy: true })),
  clientNoChain: read(exportP12("client-nochain", pki.client, { chain: false })),
  serverModern: read(exportP12("server-modern", pki.server, { chain: true })),
  serverLegacyPath: exportP12("server-legacy", pki.server, { chain: true, legacy: true }),
  serverNoPass: read(exportP12("server-nopass", pki.server, { chain: true, pass: "" })),
  /** CN=wrong.example: tells apart the identity onServerName chose from the listener's own. */
  otherServer: read(exportP12("other-server", pki.wrongHostServer, { chain: true })),
};
const serverLegacy = read(files.serverLegacyPath);
const CLIENT_SUBJECT = /subject=.*CN ?= ?test-client/;

/** Our client's options against `port`, trusting the root. */
function clientOptions(port: number, extra: Partial<ConnectOptions>): ConnectOptions {
  return {
    hostname: "127.0.0.1",
    servername: "localhost",
    port,
    caCerts: [pki.rootCa.cert],
    handshakeTimeout: 5_000,
    ...extra,
  };
}

/**
 * Connects with `extra` to `s_server -Verify 1 -verify_return_error` trusting only the root,
 * sends a line and reads s_server's echo of the client certificate's subject; or expects the
 * server to refuse the client with `refusal`.
 */
async function againstVerifyingServer(
  extra: Partial<ConnectOptions>,
  refusal?: RegExp,
): Promise<void> {
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
  });
  try {
    const conn = await connect(clientOptions(server.port, extra));
    try {
      if (refusal === undefined) {
        await conn.write(new TextEncoder().encode("hello from pfx\n"));
        await server.waitFor(/hello from pfx/);
        assert.match(server.output(), CLIENT_SUBJECT);
      } else {
        // TLS 1.3: the server's verdict on our certificate arrives on the first read.
        await assert.rejects(conn.read(new Uint8Array(16)), TlsError);
        await server.waitFor(refusal);
      }
    } finally {
      conn.close();
    }
  } finally {
    await server.stop();
  }
  clearCacheAndAssertNoLeaks();
}

// ---- our client against openssl s_server -Verify --------------------------------------------

test("client pfx (AES, with the intermediate) against s_server -Verify: accepted", async () => {
  await againstVerifyingServer({ pfx: files.clientModern, passphrase: PASS });
});

test("client pfx without the intermediate: s_server cannot verify it (the file's chain is what is sent)", async () => {
  await againstVerifyingServer(
    { pfx: files.clientNoChain, passphrase: PASS },
    /unable to get local issuer certificate/,
  );
});

test("client pfx -legacy (RC2-40 / 3DES) loads through the legacy provider: accepted", async () => {
  await againstVerifyingServer({
    pfx: files.clientLegacy,
    passphrase: new TextEncoder().encode(PASS),
  });
});

test("onClientCertificate returning { pfx, passphrase }: accepted", async () => {
  let asked = 0;
  await againstVerifyingServer({
    onClientCertificate: () => {
      asked++;
      return { pfx: files.clientModern, passphrase: PASS };
    },
  });
  assert.equal(asked, 1);
});

test("identityForAcceptableIssuers picks a PKCS#12 identity by its chain (the byte passphrase survives the match)", async () => {
  const other: Pkcs12Identity = {
    pfx: read(exportP12("other-root-client", pki.otherRootClient, { chain: false })),
    passphrase: PASS,
  };
  const mine: Pkcs12Identity = {
    pfx: files.clientModern,
    passphrase: new TextEncoder().encode(PASS),
  };
  await againstVerifyingServer({
    onClientCertificate: identityForAcceptableIssuers([other, mine]),
  });
  assert.deepEqual(mine.passphrase, new Uint8Array(PASS.length), "zeroed after use");
});

test("onClientCertificate returning a pfx with a wrong passphrase: BAD_PASSPHRASE", async () => {
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
  });
  try {
    await rejectsWithTlsError(
      connect(clientOptions(server.port, {
        onClientCertificate: () => ({ pfx: files.clientModern, passphrase: "wrong" }),
      })),
      "BAD_PASSPHRASE",
      /^onClientCertificate: pfx: the passphrase does not open the PKCS#12 file/,
    );
  } finally {
    await server.stop();
  }
  clearCacheAndAssertNoLeaks();
});

// ---- openssl s_client against our server ------------------------------------------------------

const SERVER_FILES = [
  { name: "AES, passphrase", pfx: files.serverModern, passphrase: PASS as string | undefined },
  { name: "-legacy", pfx: serverLegacy, passphrase: PASS },
  {
    name: "empty passphrase (-passout pass:), none given",
    pfx: files.serverNoPass,
    passphrase: undefined,
  },
];

for (const f of SERVER_FILES) {
  test(`server pfx (${f.name}) against s_client -verify_return_error: verified chain`, async () => {
    await withEchoServer(
      // No cert/key from localServerOptions: the identity is the file's.
      {
        cert: undefined,
        key: undefined,
        pfx: f.pfx,
        ...(f.passphrase === undefined ? {} : { passphrase: f.passphrase }),
      } as unknown as Partial<ListenOptions>,
      (conn) => ({ protocol: conn.protocol }),
      async (server) => {
        for (const version of ["1.3", "1.2"] as const) {
          const client = opensslClient({
            port: server.port,
            caFile: pki.rootCaPath,
            tls: version,
            input: `ping ${version}\n`,
          });
          const result = await client.result;
          const report = parseOpensslClient(result);
          assert.equal(report.code, 0, result.stderr);
          assert.equal(report.verifyCode, 0);
          assert.match(result.stdout, new RegExp(`echo:ping ${version}`));
        }
        assert.deepEqual(server.errors, []);
      },
    );
  });
}

test("a TlsContext with pfx serves as an onServerName context; { pfx } as an onServerName Identity", async () => {
  for (const kind of ["context", "identity"] as const) {
    const sni = kind === "context"
      ? new TlsContext("server", { pfx: files.otherServer, passphrase: PASS })
      : null;
    await withEchoServer(
      { onServerName: () => sni ?? { pfx: files.otherServer, passphrase: PASS } },
      (conn) => ({ protocol: conn.protocol }),
      async (server) => {
        try {
          const client = opensslClient({
            port: server.port,
            caFile: pki.rootCaPath,
            input: "sni\n",
          });
          const result = await client.result;
          assert.equal(parseOpensslClient(result).verifyCode, 0, result.stderr);
          assert.match(result.stdout, /echo:sni/);
          assert.match(result.stdout, /subject=.*CN ?= ?wrong\.example/);
          assert.deepEqual(server.errors, []);
        } finally {
          sni?.close(); // before withEchoServer's leak check
        }
      },
    );
  }
});

// ---- errors -----------------------------------------------------------------------------------

test("wrong or missing passphrase: BAD_PASSPHRASE; not PKCS#12: INVALID_CERTIFICATE naming pfx", () => {
  const make = (options: Record<string, unknown>) => () =>
    new TlsContext("server", options as never);
  assert.throws(make({ pfx: files.serverModern, passphrase: "nope" }), (e) => {
    assert.ok(e instanceof TlsError && e.code === "BAD_PASSPHRASE", String(e));
    assert.equal(e.message, "pfx: the passphrase does not open the PKCS#12 file");
    return true;
  });
  assert.throws(make({ pfx: files.serverModern }), (e) => {
    assert.ok(e instanceof TlsError && e.code === "BAD_PASSPHRASE", String(e));
    assert.match(e.message, /protected by a passphrase and none was given/);
    return true;
  });
  assert.throws(make({ pfx: new TextEncoder().encode(pki.server.cert) }), (e) => {
    assert.ok(e instanceof TlsError && e.code === "INVALID_CERTIFICATE", String(e));
    assert.match(e.message, /^pfx: not a PKCS#12 file/);
    return true;
  });
  // A legacy file: the MAC (SHA-1) is checked before any legacy cipher is needed.
  assert.throws(make({ pfx: serverLegacy, passphrase: "nope" }), (e) => {
    assert.ok(e instanceof TlsError && e.code === "BAD_PASSPHRASE", String(e));
    return true;
  });
  // A passphrase function is asked once; its throw is CALLBACK_ERROR with the cause.
  let asked = 0;
  new TlsContext("server", {
    pfx: files.serverModern,
    passphrase: ({ maxLength }) => {
      asked++;
      assert.ok(maxLength >= 64);
      return PASS;
    },
  }).close();
  assert.equal(asked, 1);
  const boom = new Error("no keychain");
  assert.throws(
    make({
      pfx: files.serverModern,
      passphrase: () => {
        throw boom;
      },
    }),
    (e) => {
      assert.ok(e instanceof TlsError && e.code === "CALLBACK_ERROR", String(e));
      assert.equal(e.cause, boom);
      assert.match(e.message, /^pfx: the passphrase function failed: no keychain/);
      return true;
    },
  );
  // The empty-passphrase file opens with "" too.
  new TlsContext("server", { pfx: files.serverNoPass, passphrase: "" }).close();
  assert.throws(
    make({ pfx: "server.p12" }),
    new TypeError(
      'pfx must be the bytes of a PKCS#12 file (a Uint8Array), e.g. readFileSync("id.p12")',
    ),
  );
  assert.throws(
    make({ pfx: files.serverModern, cert: pki.server.cert, key: pki.server.key }),
    new TypeError("give either pfx or cert and key, not both"),
  );
  assert.throws(
    make({ passphrase: PASS }),
    new TypeError("a server context needs cert and key (or pfx, or psk)"),
  );
  assert.throws(
    () => listen({ port: 0, passphrase: PASS }),
    /a server needs cert and key \(or pfx, or psk, or a server context\)/,
  );
  clearCacheAndAssertNoLeaks();
});

test("a legacy file when the legacy provider cannot load: a message that says so and how to fix it", () => {
  const r = runScript("tests/fixtures/pkcs12_load.ts", [files.serverLegacyPath, PASS], {
    env: { OPENSSL_MODULES: join(pki.dir, "no-modules-here") },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.equal(out.code, "INVALID_CERTIFICATE", out.message);
  assert.match(out.message, /^pfx: the PKCS#12 file uses legacy encryption/);
  assert.match(out.message, /legacy provider did not load/);
  assert.match(out.message, /OPENSSL_MODULES/);
  assert.match(out.message, /openssl pkcs12 -export/);
  // The same file loads in a child with the default module directory.
  const ok = runScript("tests/fixtures/pkcs12_load.ts", [files.serverLegacyPath, PASS]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout.trim().split("\n").at(-1)!), { ok: true });
});

// ---- the client example -----------------------------------------------------------------------

test("examples/client.ts --pfx --pass against s_server -Verify -www: the PKCS#12 identity is accepted", async () => {
  const path = join(pki.dir, "client-modern.p12");
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    caFile: pki.rootCaPath,
    verify: "require",
    www: true,
  });
  try {
    const base = [`localhost:${server.port}`, "--ca", pki.rootCaPath, "--pfx", path];
    const request = ["--request", "GET / HTTP/1.0\\r\\n\\r\\n"];
    const r = runScript("examples/client.ts", [...base, "--pass", PASS, ...request]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /HTTP\/1\.0 200 ok/);
    const wrong = runScript("examples/client.ts", [...base, "--pass", "nope", ...request]);
    assert.equal(wrong.status, 1, wrong.stdout + wrong.stderr);
    assert.match(
      wrong.stderr,
      /BAD_PASSPHRASE: pfx: the passphrase does not open the PKCS#12 file/,
    );
  } finally {
    await server.stop();
  }
});
