import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { clearContextCache, opensslVersion } from "../mod.ts";
import { runtime, runtimeArgs, test } from "./harness.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";
import { ocspFixtures } from "./support/ocsp.ts";
import { startOpensslServer } from "./support/openssl_peer.ts";
import { repoRoot, runScript, type ScriptResult } from "./support/subprocess.ts";
import { badBinderAlert, cliAtLeast } from "./support/cli_output.ts";

/**
 * Runs an example with the current runtime, asynchronously (the test's event loop stays free);
 * SIGKILLed after `timeout` ms (then `signal` is set) and in any case before this settles.
 */
async function runExample(
  script: string,
  args: string[],
  timeout = 30_000,
): Promise<ScriptResult> {
  const child = spawn(process.execPath, runtimeArgs(script, args), {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  const kill = () => {
    if (done || child.pid === undefined) return;
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  try {
    return await new Promise<ScriptResult>((resolve) => {
      timer = setTimeout(kill, timeout);
      child.once("error", (error) => {
        done = true;
        resolve({ status: null, signal: null, stdout, stderr: `${stderr}spawn error: ${error}` });
      });
      // 'close': exited, and stdout/stderr are drained.
      child.once("close", (status, signal) => {
        done = true;
        resolve({ status, signal, stdout, stderr });
      });
    });
  } finally {
    clearTimeout(timer);
    kill();
  }
}

/** `2026-01-02T03:04:05Z`, as the client example prints OCSP times. */
function isoSeconds(d: Date | null): string {
  assert.ok(d !== null);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("examples/engine_demo.ts runs to the end and reports the session", () => {
  const r = runScript("examples/engine_demo.ts", [], {
    denoFlags: ["--allow-ffi", "--allow-env", "--allow-read", "--allow-write", "--allow-run"],
    timeout: 30_000,
  });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  // The library the example loaded is the one this process loaded (same discovery, same env).
  const v = opensslVersion();
  assert.equal(r.stdout.split("\n")[0], `${v.text} (${v.libssl}) on ${runtime}`);
  assert.match(r.stdout, /verify depth 1: CN=Demo CA -> ok/);
  assert.match(r.stdout, /verify depth 0: CN=localhost -> ok/);
  assert.match(r.stdout, /TLSv1\.3 TLS_\w+, server saw SNI "localhost"/);
  assert.match(r.stdout, /server read: hello from the client/);
  assert.match(r.stdout, /client read: hello from the server/);
  assert.match(r.stdout, /client read after close_notify: null/);
}, { timeout: 60_000 });

test("examples/client.ts with no arguments: the embedded demo against openssl s_server", () => {
  const r = runScript("examples/client.ts", [], {
    denoFlags: [
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-net",
    ],
    timeout: 60_000,
  });
  assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /protocol {6}TLSv1\.3/);
  assert.match(r.stdout, /ALPN {10}http\/1\.1/);
  assert.match(r.stdout, /0\. CN=localhost,O=libssl-ffi demo/);
  assert.match(r.stdout, /2\. CN=Demo Root CA,O=libssl-ffi demo/);
  assert.match(r.stdout, /names DNS:localhost, IP:127\.0\.0\.1/);
  assert.match(r.stdout, /acceptable issuers: CN=Lab Client CA,O=libssl-ffi demo/);
  assert.match(r.stdout, /not "corp": its chain reaches none of them/);
  assert.match(r.stdout, /chose "lab" \(CN=alice@lab,O=libssl-ffi demo\)/);
  assert.match(r.stdout, /HTTP\/1\.0 200 ok/);
  assert.match(r.stdout, /Client certificate/);
  assert.match(r.stdout, /end of stream \(close_notify received\)/);
  // OCSP: the first server staples a good response (required), the second a revoked one.
  assert.match(
    r.stdout,
    /^ {2}OCSP {10}staple good, valid \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \.\. \d{4}-\d\d-\d\dT\S+Z$/m,
  );
  assert.match(r.stdout, /^ {16}produced \S+Z by CN=Demo Intermediate CA,O=libssl-ffi demo$/m);
  assert.match(r.stdout, /refused, as it should be:\n {2}TLS error CERT_REVOKED: /);
  assert.match(r.stdout, /^ {4}OCSP staple: revoked, valid \S+Z \.\. \S+Z$/m);
  assert.match(r.stdout, /^ {17}revoked at \S+Z, reason keyCompromise$/m);
  assert.ok(
    r.stdout.indexOf("staple good") < r.stdout.indexOf("CERT_REVOKED"),
    "the good staple comes first",
  );
  // Last, a TLS 1.3 PSK against `s_server -nocert -psk ... -rev`: no certificate anywhere.
  const psk = r.stdout.slice(r.stdout.indexOf("CERT_REVOKED"));
  assert.match(
    psk,
    /openssl s_server -nocert -psk [0-9a-f]{8}\.\.\. -psk_identity demo-device -rev/,
  );
  assert.match(psk, /^ {2}protocol {6}TLSv1\.3$/m);
  assert.match(psk, /^ {2}cipher {8}TLS_AES_128_GCM_SHA256$/m);
  assert.match(psk, /^ {2}PSK identity {2}demo-device$/m);
  assert.match(psk, /^ {2}sessionReused true /m);
  assert.match(psk, /^ {2}server {8}authenticated by the pre-shared key \(no certificate\)$/m);
  assert.match(psk, /^yek derahs-erp a revo olleh$/m);
  assert.match(psk, /end of stream \(close_notify received\)/);
  // The demo cleans up after itself: its temp dir is gone.
  const dir = /certificates in (\S+)\)/.exec(r.stdout)?.[1];
  assert.ok(dir !== undefined);
  assert.equal(existsSync(dir), false, `${dir} was left behind`);
}, { timeout: 90_000 });

test("examples/client.ts reports a connection failure as a typed error, exit code 1", () => {
  // Nothing listens on port 1.
  const r = runScript("examples/client.ts", ["127.0.0.1:1"], { timeout: 30_000 });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /TLS error NETWORK_ERROR: cannot connect to 127\.0\.0\.1:1/);
}, { timeout: 60_000 });

test(
  "examples/client.ts --pin accepts a pinned self-signed server; --trace and --keylog work",
  async () => {
    const { sharedTestPki } = await import("./support/pki.ts");
    const { startOpensslServer } = await import("./support/openssl_peer.ts");
    const { Certificate } = await import("../mod.ts");
    const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const pki = sharedTestPki();
    const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-example-"));
    const server = await startOpensslServer({
      cert: pki.selfSignedServer.certPath,
      key: pki.selfSignedServer.keyPath,
      www: true,
    });
    try {
      const pin = Certificate.fromPem(pki.selfSignedServer.cert).fingerprint256;
      const keylog = join(dir, "keys.txt");
      const target = `localhost:${server.port}`;
      const ok = runScript(
        "examples/client.ts",
        [
          target,
          "--pin",
          pin,
          "--trace",
          "--keylog",
          keylog,
          "--request",
          "GET / HTTP/1.0\\r\\n\\r\\n",
        ],
        { timeout: 30_000 },
      );
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /pinned leaf accepted despite: self-signed certificate/);
      assert.match(ok.stdout, /\[trace\] start/);
      assert.match(ok.stdout, /\[trace\] loop {2}SSLv3\/TLS write client hello/);
      assert.match(ok.stdout, /\[trace\] done/);
      assert.match(ok.stdout, /HTTP\/1\.0 200 ok/);
      assert.equal(
        readFileSync(keylog, "utf8").trim().split("\n").length,
        5,
        "TLS 1.3: five secrets",
      );
      // Another pin: refused, with the verification error.
      const wrong = runScript("examples/client.ts", [target, "--pin", "00".repeat(32)], {
        timeout: 30_000,
      });
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /TLS error CERT_VERIFY_FAILED/);
      // Said once, in the message, and no OpenSSL error lines after a self-explaining error.
      assert.equal(wrong.stderr.match(/verify error \d+/g)?.length ?? 0, 1, wrong.stderr);
      assert.doesNotMatch(wrong.stderr, /error:[0-9A-F]{8}:/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 90_000 },
);

test("examples/client.ts --ocsp: a good staple, a revoked one, none, and bad usage", async () => {
  const ocsp = ocspFixtures();
  const { pki } = ocsp;
  const good = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    statusFile: ocsp.responses.good.path,
    www: true,
  });
  try {
    const revoked = await startOpensslServer({
      cert: ocsp.revokedServer.certPath,
      key: ocsp.revokedServer.keyPath,
      chain: pki.intermediateCa.certPath,
      statusFile: ocsp.responses.revoked.path,
      www: true,
    });
    try {
      const request = ["--request", "GET / HTTP/1.0\\r\\n\\r\\n"];
      const args = (port: number, mode: string) => [
        `localhost:${port}`,
        "--ca",
        pki.rootCaPath,
        "--ocsp",
        mode,
        ...request,
      ];
      // require + a good staple: the status and its window, as the response says.
      const ok = await runExample("examples/client.ts", args(good.port, "require"));
      assert.equal(ok.signal, null, `killed (hung?): ${ok.stderr}`);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      const { thisUpdate, nextUpdate } = ocsp.responses.good;
      assert.match(
        ok.stdout,
        new RegExp(
          `^ {2}OCSP {10}staple good, valid ${escape(isoSeconds(thisUpdate))} \\.\\. ${
            escape(isoSeconds(nextUpdate))
          }$`,
          "m",
        ),
      );
      assert.match(
        ok.stdout,
        /^ {16}produced \S+Z by CN=libssl-ffi Test Intermediate CA,O=libssl-ffi tests$/m,
      );
      assert.match(ok.stdout, /HTTP\/1\.0 200 ok/);

      // A revoked staple: refused (exit 1), with the revocation time and reason.
      const bad = await runExample("examples/client.ts", args(revoked.port, "require"));
      assert.equal(bad.signal, null, `killed (hung?): ${bad.stderr}`);
      assert.equal(bad.status, 1, bad.stdout + bad.stderr);
      assert.match(bad.stderr, /^TLS error CERT_REVOKED: /m);
      assert.match(
        bad.stderr,
        new RegExp(
          `^ {15}revoked at ${escape(isoSeconds(ocsp.revokedAt))}, reason keyCompromise$`,
          "m",
        ),
      );
      assert.doesNotMatch(bad.stdout, /^connected to/m);
      // The default mode (request) refuses it too.
      const byDefault = await runExample("examples/client.ts", [
        `localhost:${revoked.port}`,
        "--ca",
        pki.rootCaPath,
        ...request,
      ]);
      assert.equal(byDefault.status, 1, byDefault.stdout + byDefault.stderr);
      assert.match(byDefault.stderr, /^TLS error CERT_REVOKED: /m);
      // --ocsp off: no staple asked for, none checked; the handshake goes on.
      const off = await runExample("examples/client.ts", args(revoked.port, "off"));
      assert.equal(off.status, 0, off.stdout + off.stderr);
      assert.match(off.stdout, /^ {2}OCSP {10}no OCSP staple \(not requested: --ocsp off\)$/m);
    } finally {
      await revoked.stop();
    }
  } finally {
    await good.stop();
  }
  // A server without a staple: fine for request, OCSP_INVALID for require.
  const none = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    www: true,
  });
  try {
    const base = [`localhost:${none.port}`, "--ca", pki.rootCaPath];
    const request = ["--request", "GET / HTTP/1.0\\r\\n\\r\\n"];
    const asked = await runExample("examples/client.ts", [
      ...base,
      "--ocsp",
      "request",
      ...request,
    ]);
    assert.equal(asked.status, 0, asked.stdout + asked.stderr);
    assert.match(asked.stdout, /^ {2}OCSP {10}no OCSP staple$/m);
    const required = await runExample("examples/client.ts", [...base, "--ocsp", "require"]);
    assert.equal(required.status, 1, required.stdout + required.stderr);
    assert.match(required.stderr, /^TLS error OCSP_INVALID: the server sent no OCSP staple/m);
  } finally {
    await none.stop();
  }
  const usage = await runExample("examples/client.ts", ["localhost:1", "--ocsp", "maybe"]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--ocsp takes request, require or off, got maybe/);
  const help = await runExample("examples/client.ts", ["--help"]);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^ {2}--ocsp MODE {8}OCSP stapling: request/m);
}, { timeout: 120_000 });

const PSK_HEX = Array.from({ length: 32 }, (_, i) => (i + 1).toString(16).padStart(2, "0"))
  .join("");
const OTHER_PSK_HEX = "ab".repeat(32);

test(
  "examples/client.ts --psk --psk-identity: certificate-less s_server, TLS 1.3 and --tls1.2",
  async () => {
    const pskArgs = (port: number, hex = PSK_HEX) => [
      `127.0.0.1:${port}`,
      "--psk",
      hex,
      "--psk-identity",
      "device-17",
      "--request",
      "GET / HTTP/1.0\\r\\n\\r\\n",
    ];
    const tls13 = await startOpensslServer({
      tls: "1.3",
      www: true,
      extraArgs: ["-nocert", "-psk", PSK_HEX, "-psk_identity", "device-17"],
    });
    try {
      const ok = await runExample("examples/client.ts", pskArgs(tls13.port));
      assert.equal(ok.signal, null, `killed (hung?): ${ok.stderr}`);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /^ {2}protocol {6}TLSv1\.3$/m);
      assert.match(ok.stdout, /^ {2}cipher {8}TLS_AES_128_GCM_SHA256$/m); // s_server's PSK: SHA-256
      assert.match(ok.stdout, /^ {2}PSK identity {2}device-17$/m);
      assert.match(ok.stdout, /^ {2}sessionReused true \(OpenSSL counts a TLS 1\.3 external PSK/m);
      assert.match(ok.stdout, /^ {2}server {8}authenticated by the pre-shared key/m);
      assert.match(ok.stdout, /HTTP\/1\.0 200 ok/);
      // A wrong key: the PSK binder does not verify; a typed error, exit 1.
      const wrong = await runExample("examples/client.ts", pskArgs(tls13.port, OTHER_PSK_HEX));
      assert.equal(wrong.signal, null, `killed (hung?): ${wrong.stderr}`);
      assert.equal(wrong.status, 1, wrong.stdout + wrong.stderr);
      // s_server's alert for a bad binder: 47 up to OpenSSL 3.3, 51 from 3.4 (badBinderAlert).
      const alert = badBinderAlert();
      assert.match(
        wrong.stderr,
        new RegExp(`^TLS error ALERT_RECEIVED: .*${alert.text} \\(${alert.code}\\)$`, "m"),
      );
      assert.match(wrong.stderr, new RegExp(`^ {2}alert ${alert.code} \\(${alert.text}\\)$`, "m"));
      assert.match(wrong.stderr, /^ {2}\(--psk: does the server know the identity "device-17"/m);
      assert.doesNotMatch(wrong.stdout, /^connected to/m);
    } finally {
      await tls13.stop();
    }
    const tls12 = await startOpensslServer({
      tls: "1.2",
      cipher: "PSK",
      www: true,
      extraArgs: ["-nocert", "-psk", PSK_HEX, "-psk_identity", "device-17", "-psk_hint", "h"],
    });
    try {
      const ok = await runExample("examples/client.ts", [...pskArgs(tls12.port), "--tls1.2"]);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /^ {2}protocol {6}TLSv1\.2$/m);
      assert.match(ok.stdout, /^ {2}cipher {8}\S*PSK\S*$/m);
      assert.match(ok.stdout, /^ {2}PSK identity {2}device-17$/m);
      assert.match(ok.stdout, /^ {2}sessionReused false$/m);
      assert.match(ok.stdout, /HTTP\/1\.0 200 ok/);
      const wrong = await runExample("examples/client.ts", [
        ...pskArgs(tls12.port, OTHER_PSK_HEX),
        "--tls1.2",
      ]);
      assert.equal(wrong.status, 1, wrong.stdout + wrong.stderr);
      // The server cannot decrypt our Finished: bad_record_mac (20) or decrypt_error (51).
      assert.match(wrong.stderr, /^TLS error ALERT_RECEIVED: .*\((20|51)\)$/m);
    } finally {
      await tls12.stop();
    }
  },
  { timeout: 90_000 },
);

test("examples/client.ts --psk: bad usage exits 2 before connecting", async () => {
  const cases: [string[], RegExp][] = [
    [["--psk", "abc", "--psk-identity", "x"], /--psk takes the key in hex: .*got "abc"/],
    [["--psk", "zz", "--psk-identity", "x"], /--psk takes the key in hex/],
    [["--psk", "", "--psk-identity", "x"], /--psk takes the key in hex/],
    [["--psk", "00".repeat(513), "--psk-identity", "x"], /--psk is 513 bytes; .* at most 512/],
    [["--psk", PSK_HEX], /--psk HEX and --psk-identity ID go together/],
    [["--psk-identity", "x"], /--psk HEX and --psk-identity ID go together/],
    [["--psk", PSK_HEX, "--psk-identity", "x".repeat(257)], /--psk-identity takes 1 to 256/],
    [["--psk"], /--psk needs a value/],
  ];
  for (const [flags, message] of cases) {
    // Port 1: nothing listens there, so reaching connect() would give exit 1, not 2.
    const r = await runExample("examples/client.ts", ["127.0.0.1:1", ...flags]);
    assert.equal(r.status, 2, `${flags.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /NETWORK_ERROR/);
  }
  const help = await runExample("examples/client.ts", ["--help"]);
  assert.match(help.stdout, /^ {2}--psk HEX --psk-identity ID$/m);
}, { timeout: 90_000 });

test("examples/client.ts tests leave no native object behind in this process", () => {
  clearContextCache();
  assertNoLiveNativeObjects();
});

test("examples/client.ts --reconnect resumes the session s_server issued (TLS 1.3 and 1.2)", async () => {
  const { sharedTestPki } = await import("./support/pki.ts");
  const pki = sharedTestPki();
  const server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    www: true,
  });
  try {
    for (const version of ["--tls1.3", "--tls1.2"]) {
      const r = await runExample("examples/client.ts", [
        `localhost:${server.port}`,
        "--ca",
        pki.rootCaPath,
        version,
        "--reconnect",
        "--request",
        "GET / HTTP/1.0\\r\\n\\r\\n",
      ]);
      assert.equal(r.status, 0, `${version}: ${r.stderr}`);
      assert.match(r.stdout, /sessionReused false/, version); // the first connection
      assert.match(
        r.stdout,
        new RegExp(`reconnected in [\\d.]+ ms: TLSv1\\.${version.slice(-1)}, sessionReused true`),
        version,
      );
    }
  } finally {
    await server.stop();
  }
});

test("examples/client.ts --groups: the group s_server used is printed; an unknown one is exit 1", async () => {
  const { sharedTestPki } = await import("./support/pki.ts");
  const pki = sharedTestPki();
  await using server = await startOpensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediateCa.certPath,
    www: true,
  });
  const base = [`localhost:${server.port}`, "--ca", pki.rootCaPath, "--tls1.3"];
  const request = ["--request", "GET / HTTP/1.0\\r\\n\\r\\n"];
  const r = await runExample("examples/client.ts", [
    ...base,
    "--groups",
    "P-384,X25519",
    ...request,
  ]);
  assert.equal(r.status, 0, r.stderr);
  // In TLS 1.3 the server picks. s_server up to OpenSSL 3.4 takes the client's first choice
  // (P-384, the key share offered); from 3.5 it ranks by its own default group list, whose
  // tuples put X25519 before P-384, and asks for X25519 with a HelloRetryRequest.
  const group = cliAtLeast(3, 5) ? "x25519" : "secp384r1";
  assert.match(r.stdout, new RegExp(`^ {2}group {9}${group}$`, "m"));
  const bad = await runExample("examples/client.ts", [...base, "--groups", "NO-SUCH-GROUP"]);
  assert.equal(bad.status, 1, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /"NO-SUCH-GROUP" is not a key exchange group OpenSSL/);
});

test(
  "examples/https_server.ts with no arguments: curl over HTTP/1.1 and HTTP/2, client cert",
  () => {
    const r = runScript("examples/https_server.ts", [], {
      denoFlags: ["--allow-all"],
      timeout: 30_000,
    });
    assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /curl --http1\.1: hello over HTTP\/1\.1 \(TLSv1\.3, ALPN http\/1\.1\), client: CN=alice/,
    );
    assert.match(
      r.stdout,
      /curl --http2: hello over HTTP\/2 \(TLSv1\.3, ALPN h2\), client: CN=alice/,
    );
  },
  { timeout: 60_000 },
);

test(
  "examples/websocket.ts with no arguments: messages both ways over wss://, a clean close",
  () => {
    const r = runScript("examples/websocket.ts", [], {
      denoFlags: ["--allow-all"],
      timeout: 30_000,
    });
    assert.equal(r.signal, null, `killed (hung?): ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /client got: welcome \(TLSv1\.3, TLS_\w+\)/);
    assert.match(r.stdout, /client sent: hello; got: echo: hello/);
    assert.match(r.stdout, /closed: 1000 bye/);
    const bad = runScript("examples/websocket.ts", ["http://x"], { denoFlags: ["--allow-all"] });
    assert.equal(bad.status, 2, bad.stderr);
  },
  { timeout: 60_000 },
);
