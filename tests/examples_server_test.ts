/**
 * `examples/server.ts` as a child process of the current runtime (Deno, Bun or Node.js), on a port it
 * picks (`--port 0`), with the test PKI: echo through `openssl s_client`, HTTP through our own
 * `connect()`, client certificates, SNI, version pinning, timeouts, signals, `--demo`, OCSP
 * stapling (`--ocsp-staple`, `--ocsp-auto` against `openssl ocsp -port`), pre-shared keys
 * (`--psk-file`, PSK-only or beside a certificate, against `openssl s_client -psk`, the example
 * client and `connect()`), usage.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { runtimeArgs, test } from "./harness.ts";
import {
  leafWithOcspUrl,
  OCSP_REQUEST_LOGGED,
  ocspFixtures,
  startOcspResponder,
} from "./support/ocsp.ts";
import { nameAfter, stapledResponse, statusReport } from "./support/cli_output.ts";
import { freePort } from "./support/peer_process.ts";
import { sharedTestPki } from "./support/pki.ts";
import { repoRoot } from "./support/subprocess.ts";
import {
  clearContextCache,
  connect,
  type Connection,
  type ConnectOptions,
  TlsError,
} from "../mod.ts";
import { assertNoLiveNativeObjects } from "./support/leaks.ts";

const SCRIPT = "examples/server.ts";
const TEST_TIMEOUT = 60_000;

/** A child process with its output collected, and a way to wait for a pattern in it. */
interface Child {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The first match of `pattern` in stdout (or stderr), waiting up to `ms`. */
  waitFor(pattern: RegExp, ms?: number, stream?: "stdout" | "stderr"): Promise<RegExpExecArray>;
  /** Exit code and signal, once the process exited and its pipes are drained. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** SIGTERM, then SIGKILL after 3 s; waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

function start(command: string, args: string[], stdin: "pipe" | "ignore" = "ignore"): Child {
  const child = spawn(command, args, { cwd: repoRoot, stdio: [stdin, "pipe", "pipe"] });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((l) => l());
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => ((out += chunk), changed()));
  child.stderr!.on("data", (chunk: string) => ((err += chunk), changed()));
  child.stdin?.on("error", () => {});
  let done = false;
  // 'close' comes once the process exited and stdout/stderr are drained.
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("close", (code, signal) => {
      done = true;
      resolve({ code, signal });
      changed();
    });
    child.once("error", (error) => {
      err += `spawn error: ${error}\n`;
      done = true;
      resolve({ code: null, signal: null });
      changed();
    });
  });
  const signal = (name: NodeJS.Signals) => {
    if (done || child.pid === undefined) return;
    try {
      process.kill(child.pid, name); // child.kill() is a no-op on Deno after its first call
    } catch {
      // Already gone.
    }
  };
  let stopping: Promise<void> | null = null;
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern, ms = 10_000, stream = "stdout") =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(stream === "stdout" ? out : err);
          if (m !== null) {
            cleanup();
            resolve(m);
          } else if (done) {
            cleanup();
            reject(new Error(`exited before ${pattern} appeared:\n${out}\n--- stderr ---\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${pattern} after ${ms} ms:\n${out}\n--- stderr ---\n${err}`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      }),
    exited,
    stop: () =>
      stopping ??= (async () => {
        signal("SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), 3000)));
        if ((await Promise.race([exited, grace])) === "late") {
          signal("SIGKILL");
          await exited;
        }
        clearTimeout(timer);
        child.stdin?.destroy();
      })(),
  };
}

/** Runs `examples/server.ts` with the current runtime. */
function startExample(args: string[]): Child {
  return start(process.execPath, runtimeArgs(SCRIPT, args));
}

/** Starts the example on a free port and waits for its "listening on" line. */
async function startServer(args: string[]): Promise<{ server: Child; port: number }> {
  const server = startExample(["--port", "0", ...args]);
  try {
    // The settings line follows in a second write: wait for it too, so that tests can match
    // server.stdout() against it at once.
    const m = await server.waitFor(/^listening on 127\.0\.0\.1:(\d+) .*\n {2}.*\n/m, 20_000);
    return { server, port: Number(m[1]) };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** Settles with the exit status, or rejects after `ms`. */
async function exitWithin(
  child: Child,
  ms: number,
): Promise<{ code: number | null; signal: string | null }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      child.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(`still running after ${ms} ms:\n${child.stdout()}\n${child.stderr()}`),
            ),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends an HTTP GET over a new connection; returns the whole response (read to close_notify). */
async function httpGet(
  port: number,
  options: Partial<ConnectOptions> = {},
): Promise<{ response: string; conn: Connection }> {
  const pki = sharedTestPki();
  const conn = await connect({
    hostname: "127.0.0.1",
    port,
    servername: "localhost",
    caCerts: [pki.rootCa.cert],
    handshakeTimeout: 10_000,
    ...options,
  });
  try {
    await conn.write(new TextEncoder().encode("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    return { response: await readAll(conn), conn };
  } finally {
    await conn[Symbol.asyncDispose]();
  }
}

async function readAll(conn: Connection): Promise<string> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(16 * 1024);
  let text = "";
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  return text;
}

function serverArgs(): string[] {
  const pki = sharedTestPki();
  return ["--cert", pki.server.chainPath, "--key", pki.server.keyPath];
}

test(
  "examples/server.ts: echo through openssl s_client, one line per connection, SIGINT",
  async () => {
    const pki = sharedTestPki();
    const { server, port } = await startServer(serverArgs());
    let client: Child | null = null;
    try {
      client = start("openssl", [
        "s_client",
        "-brief",
        "-connect",
        `127.0.0.1:${port}`,
        "-servername",
        "localhost",
        "-CAfile",
        pki.rootCaPath,
        "-verify_return_error",
      ], "pipe");
      await client.waitFor(/CONNECTION ESTABLISHED/, 10_000, "stderr");
      const token = `echo-${Math.random().toString(36).slice(2)}`;
      client.process.stdin!.write(`${token} first\n`);
      await client.waitFor(new RegExp(`${token} first`));
      client.process.stdin!.write(`${token} second\n`);
      await client.waitFor(new RegExp(`${token} second`));
      client.process.stdin!.end(); // s_client sends close_notify and exits
      const status = await exitWithin(client, 10_000);
      assert.equal(status.code, 0, client.stderr());
      await server.waitFor(
        /^127\.0\.0\.1:\d+ \| TLSv1\.3 \| TLS_\w+ \| ALPN \(none\) \| SNI localhost \| no client certificate$/m,
      );
      // A clean close: no error for this connection.
      await new Promise((r) => setTimeout(r, 200));
      assert.doesNotMatch(server.stderr(), /ended|failed/, server.stderr());

      // SIGINT closes the listener cleanly: exit code 0, and nothing listens any more.
      process.kill(server.process.pid!, "SIGINT");
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 0, server.stderr());
      assert.match(server.stdout(), /shutting down[\s\S]*stopped/);
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port });
        s.once("connect", () => (s.destroy(), resolve(false)));
        s.once("error", () => resolve(true));
      });
      assert.ok(refused, "the port still accepts connections after SIGINT");
    } finally {
      await client?.stop();
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts: HTTP GET gets 200 describing the connection; stalled clients block nobody",
  async () => {
    const { server, port } = await startServer([
      ...serverArgs(),
      "--alpn",
      "http/1.1",
      "--handshake-timeout",
      "1500",
    ]);
    const silentTcp = net.connect({ host: "127.0.0.1", port });
    silentTcp.on("error", () => {});
    let idleTls: Connection | null = null;
    try {
      await new Promise((resolve, reject) => {
        silentTcp.once("connect", resolve);
        silentTcp.once("error", reject);
      });
      // Handshaken, then says nothing: the server waits for its first bytes in its own task.
      idleTls = await connect({
        hostname: "127.0.0.1",
        port,
        servername: "localhost",
        caCerts: [sharedTestPki().rootCa.cert],
      });
      const { response, conn } = await httpGet(port, { alpnProtocols: ["http/1.1"] });
      assert.equal(conn.alpnProtocol, "http/1.1");
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /\r\nConnection: close\r\n/);
      const length = Number(/\r\nContent-Length: (\d+)\r\n/.exec(response)?.[1]);
      const body = response.slice(response.indexOf("\r\n\r\n") + 4);
      assert.equal(new TextEncoder().encode(body).length, length);
      assert.match(body, /^request {3}GET \/hello HTTP\/1\.1$/m);
      assert.match(body, /^protocol {2}TLSv1\.3$/m);
      assert.match(body, /^cipher {4}TLS_\w+$/m);
      assert.match(body, /^ALPN {6}http\/1\.1$/m);
      assert.match(body, /^SNI {7}localhost$/m);
      assert.match(body, /^client {4}no client certificate$/m);
      await server.waitFor(/\| TLSv1\.3 \| TLS_\w+ \| ALPN http\/1\.1 \| SNI localhost \|/);
      // The silent TCP client runs into --handshake-timeout; the server reports it and goes on.
      await server.waitFor(/^handshake failed from 127\.0\.0\.1:\d+: TIMEOUT: /m, 10_000, "stderr");
      const again = await httpGet(port);
      assert.match(again.response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(again.response, /^ALPN {6}\(none\)$/m);
    } finally {
      silentTcp.destroy();
      idleTls?.close();
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts --tls1.2 --once: pins the version, exits after one connection",
  async () => {
    const { server, port } = await startServer([...serverArgs(), "--tls1.2", "--once"]);
    try {
      // A client that only speaks TLS 1.3 is refused and does not count as "the" connection.
      await assert.rejects(
        httpGet(port, { minVersion: "TLSv1.3" }),
        (e) => e instanceof TlsError,
      );
      await server.waitFor(/^handshake failed from 127\.0\.0\.1:\d+: /m, 10_000, "stderr");
      const { response } = await httpGet(port);
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /^protocol {2}TLSv1\.2$/m);
      assert.match(response, /^cipher {4}ECDHE-ECDSA-\S+$/m);
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 0, server.stderr());
      assert.match(server.stdout(), /\| TLSv1\.2 \| ECDHE-ECDSA-[\w-]+ \|[\s\S]*stopped/);
    } finally {
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts --require-client-cert --ca: refuses a client without one, then serves one with one",
  async () => {
    const pki = sharedTestPki();
    const { server, port } = await startServer([
      ...serverArgs(),
      "--ca",
      pki.rootCaPath,
      "--require-client-cert",
    ]);
    try {
      // TLS 1.3: the client's handshake completes before the server has checked it; the refusal
      // (alert 116, certificate_required) arrives with the first read.
      await assert.rejects(httpGet(port), (e) => {
        assert.ok(e instanceof TlsError, String(e));
        assert.equal(e.code, "ALERT_RECEIVED", e.message);
        assert.equal(e.alert?.code, 116);
        return true;
      });
      await server.waitFor(
        /^handshake failed from 127\.0\.0\.1:\d+: HANDSHAKE_FAILED: .*did not return a certificate/m,
        10_000,
        "stderr",
      );
      // The server goes on: a client with a certificate from the trusted CA gets its page.
      const { response } = await httpGet(port, { cert: pki.client.chainPem, key: pki.client.key });
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /^client {4}CN=test-client,O=libssl-ffi tests$/m);
      await server.waitFor(/\| SNI localhost \| client CN=test-client,O=libssl-ffi tests$/m);
      assert.doesNotMatch(server.stdout(), /no client certificate/);
    } finally {
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts --request-client-cert: optional; with and without a certificate",
  async () => {
    const pki = sharedTestPki();
    const { server, port } = await startServer([
      ...serverArgs(),
      "--ca",
      pki.rootCaPath,
      "--request-client-cert",
    ]);
    try {
      const without = await httpGet(port);
      assert.match(without.response, /^client {4}no client certificate$/m);
      const withCert = await httpGet(port, { cert: pki.client.chainPem, key: pki.client.key });
      assert.match(withCert.response, /^client {4}CN=test-client,O=libssl-ffi tests$/m);
      assert.equal(server.stderr(), "");
    } finally {
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts --sni: another certificate for that name, the default for others",
  async () => {
    const pki = sharedTestPki();
    const other = pki.wrongHostServer; // CN and SAN wrong.example
    const { server, port } = await startServer([
      ...serverArgs(),
      "--sni",
      `wrong.example=${other.chainPath},${other.keyPath}`,
    ]);
    try {
      const sni = await httpGet(port, { servername: "wrong.example" });
      assert.equal(sni.conn.peerCertificate?.subject, "CN=wrong.example,O=libssl-ffi tests");
      assert.match(sni.response, /^SNI {7}wrong\.example$/m);
      // Names are case-insensitive.
      const upper = await httpGet(port, { servername: "WRONG.example" });
      assert.equal(upper.conn.peerCertificate?.subject, "CN=wrong.example,O=libssl-ffi tests");
      const plain = await httpGet(port);
      assert.equal(plain.conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
      const unknown = await httpGet(port, {
        servername: "unknown.example",
        unsafelyDisableVerification: true,
      });
      assert.equal(unknown.conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
      await server.waitFor(/\| SNI wrong\.example \| no client certificate$/m);
      await server.waitFor(/\| SNI unknown\.example \| no client certificate$/m);
    } finally {
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test("examples/server.ts --pass: an encrypted key; a wrong passphrase exits 1", async () => {
  const pki = sharedTestPki();
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-server-example-"));
  try {
    const encrypted = join(dir, "server.encrypted.key");
    execFileSync("openssl", [
      "pkcs8",
      "-topk8",
      "-v2",
      "aes-256-cbc",
      "-in",
      pki.server.keyPath,
      "-out",
      encrypted,
      "-passout",
      "pass:s3cret",
    ], { stdio: "pipe" });
    const args = ["--cert", pki.server.chainPath, "--key", encrypted];
    const wrong = startExample([...args, "--port", "0", "--pass", "nope"]);
    try {
      const exit = await exitWithin(wrong, 20_000);
      assert.equal(exit.code, 1, wrong.stdout() + wrong.stderr());
      assert.match(wrong.stderr(), /BAD_PASSPHRASE/);
    } finally {
      await wrong.stop();
    }
    const { server, port } = await startServer([...args, "--pass", "s3cret"]);
    try {
      const { response } = await httpGet(port);
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeout: TEST_TIMEOUT });

test(
  "examples/server.ts --demo --once: serves its throwaway PKI, prints commands, cleans up",
  async () => {
    const server = startExample(["--demo", "--port", "0", "--once"]);
    try {
      // The hint ends with this line: wait for all of it (stdout may arrive in several chunks).
      await server.waitFor(/^Ctrl-C stops the server\.$/m, 30_000);
      const m = /curl --cacert (\S+) https:\/\/localhost:(\d+)\//.exec(server.stdout());
      assert.ok(m !== null, server.stdout());
      const caPath = m[1]!;
      const port = Number(m[2]);
      assert.match(server.stdout(), /openssl s_client -brief -connect 127\.0\.0\.1:\d+/);
      const { response, conn } = await httpGet(port, {
        caCerts: [readFileSync(caPath, "utf8")],
        servername: "sni.test",
        alpnProtocols: ["h2", "http/1.1"],
      });
      assert.equal(conn.peerCertificate?.subject, "CN=sni.test,O=libssl-ffi server demo");
      assert.equal(conn.alpnProtocol, "http/1.1");
      assert.match(response, /^SNI {7}sni\.test$/m);
      const exit = await exitWithin(server, 10_000);
      assert.equal(exit.code, 0, server.stderr());
      assert.equal(existsSync(caPath), false, `${caPath} was left behind`);
    } finally {
      await server.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts: --help exits 0; missing --cert and bad flags exit 2; unreadable files 1",
  async () => {
    const run = async (args: string[]) => {
      const child = startExample(args);
      try {
        return { ...(await exitWithin(child, 20_000)), out: child.stdout(), err: child.stderr() };
      } finally {
        await child.stop();
      }
    };
    const help = await run(["--help"]);
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, /^usage: server\.ts --cert FILE --key FILE/);
    for (
      const flag of [
        "--require-client-cert",
        "--sni NAME=CERT,KEY",
        "--ocsp-staple FILE",
        "--ocsp-auto",
        "--once",
        "--demo",
        "--psk-file FILE",
        "--psk-hint HINT",
      ]
    ) {
      assert.ok(help.out.includes(flag), `usage lacks ${flag}`);
    }
    const none = await run([]);
    assert.equal(none.code, 2, none.out + none.err);
    assert.match(none.err, /--cert FILE and --key FILE are required/);
    const keyOnly = await run(["--key", "k.pem"]);
    assert.equal(keyOnly.code, 2);
    const bad = await run(["--cert", "c.pem", "--key", "k.pem", "--bogus"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unexpected argument --bogus/);
    // It speaks HTTP/1.1 only: offering h2 would make an h2 client pick it and read nothing.
    const h2 = await run([...serverArgs(), "--alpn", "h2,http/1.1"]);
    assert.equal(h2.code, 2);
    assert.match(h2.err, /--alpn: this example speaks HTTP\/1\.1 only/);
    const badSni = await run([...serverArgs(), "--sni", "nocomma"]);
    assert.equal(badSni.code, 2);
    assert.match(badSni.err, /--sni takes NAME=CERT,KEY/);
    assert.match(keyOnly.err, /--cert FILE and --key FILE go together/);
    const missing = await run(["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read \/nonexistent\/c\.pem/);
    const both = await run([...serverArgs(), "--ocsp-auto", "--ocsp-staple", "r.der"]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--ocsp-staple and --ocsp-auto exclude each other/);
    const demoOcsp = await run(["--demo", "--ocsp-auto"]);
    assert.equal(demoOcsp.code, 2);
    assert.match(demoOcsp.err, /need --cert, not --demo/);
    const noStaple = await run([...serverArgs(), "--ocsp-staple", "/nonexistent/r.der"]);
    assert.equal(noStaple.code, 1);
    assert.match(noStaple.err, /cannot read \/nonexistent\/r\.der/);
    // Pre-shared keys: usage (2), then bad files (1).
    const hintAlone = await run([...serverArgs(), "--psk-hint", "h"]);
    assert.equal(hintAlone.code, 2);
    assert.match(hintAlone.err, /--psk-hint needs --psk-file/);
    const noPskFile = await run(["--psk-file", "/nonexistent/keys.psk"]);
    assert.equal(noPskFile.code, 1);
    assert.match(noPskFile.err, /cannot read \/nonexistent\/keys\.psk/);
    const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-server-example-"));
    try {
      const file = join(dir, "keys.psk");
      writeFileSync(file, "ok:00ff\n");
      const pskOcsp = await run(["--psk-file", file, "--ocsp-auto"]);
      assert.equal(pskOcsp.code, 2);
      assert.match(pskOcsp.err, /--ocsp-auto: a PSK-only server has no certificate/);
      const bad: [string, RegExp][] = [
        ["# only a comment\n\n", /keys\.psk: no identity:hexkey line/],
        ["ok:00ff\nno-colon\n", /keys\.psk:2: expected identity:hexkey/],
        ["ok:0ff\n", /keys\.psk:1: the key must be hex digits, an even number of them/],
        ["ok:00ff\n:00ff\n", /keys\.psk:2: the identity must be 1 to 256 bytes, got 0/],
      ];
      for (const [text, message] of bad) {
        writeFileSync(file, text);
        const r = await run(["--psk-file", file, "--port", "0"]);
        assert.equal(r.code, 1, `${JSON.stringify(text)}: ${r.out}${r.err}`);
        assert.match(r.err, message);
        assert.doesNotMatch(r.out, /listening on/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: TEST_TIMEOUT },
);

/**
 * `openssl s_client -status` against the example: its OCSP report (stdout), up to the end of the
 * session. Stdin at EOF: s_client closes once the handshake is done.
 */
async function sClientStatus(port: number): Promise<string> {
  const pki = sharedTestPki();
  const client = start("openssl", [
    "s_client",
    "-status",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-CAfile",
    pki.rootCaPath,
    "-verify_return_error",
  ]);
  try {
    const status = await exitWithin(client, 10_000);
    assert.equal(status.code, 0, client.stdout() + client.stderr());
    return client.stdout();
  } finally {
    await client.stop();
  }
}

test(
  "examples/server.ts --ocsp-staple FILE: s_client -status sees it; connect() verifies it",
  async () => {
    const ocsp = ocspFixtures();
    const good = ocsp.responses.good;
    const other = ocsp.pki.wrongHostServer; // CN and SAN wrong.example
    const { server, port } = await startServer([
      ...serverArgs(),
      "--ocsp-staple",
      good.path,
      "--sni",
      `wrong.example=${other.chainPath},${other.keyPath}`,
    ]);
    try {
      // Checked at start, for the operator; then stapled as it is.
      assert.match(
        server.stdout(),
        new RegExp(`^OCSP staple ${escapeRegExp(good.path)}: good, valid \\S+Z \\.\\. \\S+Z$`, "m"),
      );
      await server.waitFor(/; OCSP stapling \S+good\.der$/m);
      const report = stapledResponse(await sClientStatus(port));
      assert.match(report, /OCSP Response Status: successful \(0x0\)/);
      assert.match(report, /Cert Status: good/);
      assert.deepEqual(nameAfter(report, "Responder Id"), [
        ["O", "libssl-ffi tests"],
        ["CN", "libssl-ffi Test Intermediate CA"],
      ]);
      const { conn } = await httpGet(port, { ocsp: "require" });
      assert.equal(conn.ocspResponse?.status, "good");
      assert.equal(conn.ocspResponse?.thisUpdate.getTime(), good.thisUpdate?.getTime());
      assert.equal(conn.ocspResponse?.nextUpdate?.getTime(), good.nextUpdate?.getTime());
      assert.deepEqual(conn.ocspResponse?.der, good.der);
      // The --sni certificate gets no staple (the response is about the --cert leaf).
      const sni = await httpGet(port, { servername: "wrong.example", ocsp: "request" });
      assert.equal(sni.conn.peerCertificate?.subject, "CN=wrong.example,O=libssl-ffi tests");
      assert.equal(sni.conn.ocspResponse, null);
      assert.equal(server.stderr(), "");
    } finally {
      await server.stop();
    }
    // A response about another certificate: a warning at start, and nothing stapled (on every
    // OpenSSL: the library checks what OpenSSL 3.6+ checks itself).
    const foreign = ocsp.responses.revoked; // about revokedServer, not pki.server
    const { server: warned, port: warnedPort } = await startServer([
      ...serverArgs(),
      "--ocsp-staple",
      foreign.path,
    ]);
    try {
      await warned.waitFor(
        /^warning: OCSP staple \S+revoked\.der: OCSP_INVALID: .*no entry for this certificate.*; clients that check will refuse it \(and one about another certificate is not stapled at all\)$/m,
        10_000,
        "stderr",
      );
      const report = await sClientStatus(warnedPort);
      // Nothing stapled (s_client's wording differs between releases: see cli_output.ts).
      assert.deepEqual(statusReport(report), { kind: "none" }, report);
      assert.doesNotMatch(report, /Cert Status/);
    } finally {
      await warned.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

test(
  "examples/server.ts --ocsp-auto: fetches from the AIA responder before listening and staples it",
  async () => {
    const ocspPort = await freePort();
    const leaf = leafWithOcspUrl(ocspPort); // before the responder starts: it reads its index once
    const args = ["--cert", leaf.chainPath, "--key", leaf.keyPath, "--ocsp-auto"];
    // No responder yet: the first fetch fails, the server does not start (exit 1).
    const early = startExample(["--port", "0", ...args]);
    try {
      const exit = await exitWithin(early, 20_000);
      assert.equal(exit.code, 1, early.stdout() + early.stderr());
      assert.match(
        early.stderr(),
        new RegExp(`--ocsp-auto: NETWORK_ERROR: OCSP request to ${escapeRegExp(leaf.ocspUrl)}`),
      );
      assert.doesNotMatch(early.stdout(), /listening on/);
    } finally {
      await early.stop();
    }
    const responder = await startOcspResponder({ port: ocspPort });
    try {
      const { server, port } = await startServer(args);
      try {
        assert.match(
          server.stdout(),
          new RegExp(
            `^OCSP response from ${escapeRegExp(leaf.ocspUrl)}: good, valid \\S+Z \\.\\. \\S+Z$`,
            "m",
          ),
        );
        assert.ok(
          server.stdout().indexOf("OCSP response from") < server.stdout().indexOf("listening on"),
          "fetched before listening",
        );
        await responder.waitFor(OCSP_REQUEST_LOGGED);
        const report = stapledResponse(await sClientStatus(port));
        assert.match(report, /OCSP Response Status: successful \(0x0\)/);
        assert.match(report, /Cert Status: good/);
        const { conn } = await httpGet(port, { ocsp: "require" });
        assert.equal(conn.ocspResponse?.status, "good");
        assert.equal(server.stderr(), "");
      } finally {
        await server.stop();
      }
    } finally {
      await responder.stop();
    }
  },
  { timeout: TEST_TIMEOUT },
);

// ---- pre-shared keys ---------------------------------------------------------------------------

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const ALICE_KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const BOB_KEY = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/**
 * A `--psk-file` in psktool's format: alice as text, bob written as hex bytes (`#626f62`, as
 * GnuTLS 3.7 reads it), with a comment, a blank line and a CRLF line end. Removed by `cleanup`.
 */
function writePskFile(): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-server-psk-"));
  const file = join(dir, "keys.psk");
  writeFileSync(
    file,
    `# made by psktool -u alice -p keys.psk\n\nalice:${hex(ALICE_KEY)}\r\n#626f62:${
      hex(BOB_KEY)
    }\n`,
  );
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `examples/client.ts` with the current runtime; its exit status and output. */
async function runClientExample(
  args: string[],
): Promise<{ code: number | null; out: string; err: string }> {
  const child = start(process.execPath, runtimeArgs("examples/client.ts", args));
  try {
    const { code } = await exitWithin(child, 30_000);
    return { code, out: child.stdout(), err: child.stderr() };
  } finally {
    await child.stop();
  }
}

/** `openssl s_client -psk` (stdin at EOF: it closes once the handshake is done). */
async function sClientPsk(
  port: number,
  tls: "1.3" | "1.2",
  identity: string,
  key: Uint8Array,
): Promise<{ code: number | null; out: string }> {
  const client = start("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    tls === "1.3" ? "-tls1_3" : "-tls1_2",
    ...(tls === "1.2" ? ["-cipher", "PSK"] : []), // s_client offers no PSK suite otherwise
    "-psk",
    hex(key),
    "-psk_identity",
    identity,
  ]);
  try {
    const { code } = await exitWithin(client, 10_000);
    return { code, out: client.stdout() + client.stderr() };
  } finally {
    await client.stop();
  }
}

test(
  "examples/server.ts --psk-file, PSK only: s_client 1.3/1.2, the example client, unknown refused",
  async () => {
    const { file, cleanup } = writePskFile();
    let server: Child | null = null;
    let echoClient: Child | null = null;
    try {
      const started = await startServer(["--psk-file", file, "--psk-hint", "plant-4"]);
      server = started.server;
      const { port } = started;
      await server.waitFor(
        /; PSK 2 identities from \S+keys\.psk \(hint "plant-4"\), no certificate \(PSK only\)$/m,
      );
      // TLS 1.3 external PSK, echo through s_client.
      echoClient = start("openssl", [
        "s_client",
        "-brief",
        "-connect",
        `127.0.0.1:${port}`,
        "-tls1_3",
        "-psk",
        hex(ALICE_KEY),
        "-psk_identity",
        "alice",
      ], "pipe");
      await echoClient.waitFor(/CONNECTION ESTABLISHED/, 10_000, "stderr");
      echoClient.process.stdin!.write("psk-echo-token\n");
      await echoClient.waitFor(/psk-echo-token/);
      echoClient.process.stdin!.end();
      assert.equal((await exitWithin(echoClient, 10_000)).code, 0, echoClient.stderr());
      await server.waitFor(
        /^127\.0\.0\.1:\d+ \| TLSv1\.3 \| TLS_\w+ \| ALPN \(none\) \| SNI \(none\) \| no client certificate \| PSK alice$/m,
      );
      // TLS 1.2 PSK suites, the hex-written identity, the hint.
      const tls12 = await sClientPsk(port, "1.2", "bob", BOB_KEY);
      assert.equal(tls12.code, 0, tls12.out);
      assert.match(tls12.out, /PSK identity hint: plant-4/);
      assert.match(tls12.out, /Cipher is \S*PSK\S*/);
      await server.waitFor(/\| TLSv1\.2 \| \S*PSK\S* \| .* \| PSK bob$/m);
      // The example client, both versions: the page names the identity.
      for (const version of [[], ["--tls1.2"]]) {
        const r = await runClientExample([
          `127.0.0.1:${port}`,
          "--psk",
          hex(ALICE_KEY),
          "--psk-identity",
          "alice",
          ...version,
        ]);
        assert.equal(r.code, 0, r.out + r.err);
        assert.match(r.out, /^ {2}PSK identity {2}alice$/m);
        assert.match(
          r.out,
          version.length === 0 ? /^protocol {2}TLSv1\.3$/m : /^protocol {2}TLSv1\.2$/m,
        );
        assert.match(r.out, /^PSK {7}alice$/m);
      }
      // Unknown identities are refused: TLS 1.2 with alert 115, TLS 1.3 fails (no certificate).
      const before = server.stderr().length;
      const unknown12 = await sClientPsk(port, "1.2", "mallory", ALICE_KEY);
      assert.notEqual(unknown12.code, 0, unknown12.out);
      assert.match(unknown12.out, /alert number 115|unknown psk identity/i);
      const unknown13 = await runClientExample([
        `127.0.0.1:${port}`,
        "--psk",
        hex(ALICE_KEY),
        "--psk-identity",
        "mallory",
      ]);
      assert.equal(unknown13.code, 1, unknown13.out + unknown13.err);
      assert.match(unknown13.err, /^TLS error ALERT_RECEIVED: /m);
      // A known identity with the wrong key: the binder does not verify.
      const wrongKey = await sClientPsk(port, "1.3", "alice", BOB_KEY);
      assert.notEqual(wrongKey.code, 0, wrongKey.out);
      await server.waitFor(
        /^handshake failed from 127\.0\.0\.1:\d+: HANDSHAKE_FAILED: unknown PSK identity "mallory"/m,
        10_000,
        "stderr",
      );
      await server.waitFor(/PSK identity "mallory" is unknown/m, 10_000, "stderr");
      // The wrong-key failure may be printed a moment after s_client exits: wait (bounded) for
      // all three lines, then require exactly three.
      const serverProcess = server;
      const failures = () =>
        serverProcess.stderr().slice(before).match(/^handshake failed from /gm);
      for (let i = 0; i < 100 && (failures()?.length ?? 0) < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(failures()?.length, 3, server.stderr());
      // ... and the server goes on.
      const { response, conn } = await httpGet(port, {
        psk: { identity: "alice", key: ALICE_KEY },
      });
      assert.equal(conn.pskIdentity, "alice");
      assert.equal(conn.peerCertificate, null);
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /^PSK {7}alice$/m);
    } finally {
      await echoClient?.stop();
      await server?.stop();
      cleanup();
    }
  },
  { timeout: 90_000 },
);

test(
  "examples/server.ts --psk-file with --cert: certificate clients and PSK clients, one listener",
  async () => {
    const { file, cleanup } = writePskFile();
    try {
      const { server, port } = await startServer([...serverArgs(), "--psk-file", file]);
      try {
        // Printed after the "listening on" line, possibly in a later chunk: wait for it.
        await server.waitFor(/; PSK 2 identities from \S+keys\.psk$/m);
        const plain = await httpGet(port);
        assert.equal(plain.conn.peerCertificate?.subject, "CN=localhost,O=libssl-ffi tests");
        assert.equal(plain.conn.pskIdentity, null);
        assert.doesNotMatch(plain.response, /^PSK/m);
        const psk = await httpGet(port, { psk: { identity: "bob", key: BOB_KEY } });
        assert.equal(psk.conn.pskIdentity, "bob");
        assert.equal(psk.conn.peerCertificate, null);
        assert.match(psk.response, /^PSK {7}bob$/m);
        await server.waitFor(/\| SNI localhost \| no client certificate$/m);
        await server.waitFor(/\| SNI localhost \| no client certificate \| PSK bob$/m);
        assert.equal(server.stderr(), "");
      } finally {
        await server.stop();
      }
    } finally {
      cleanup();
    }
  },
  { timeout: TEST_TIMEOUT },
);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("examples/server.ts tests leave no native object behind in this process", () => {
  // The connect() calls above share cached client contexts: release them, then check.
  clearContextCache();
  assertNoLiveNativeObjects();
});
