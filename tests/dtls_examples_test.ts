/**
 * The DTLS examples run as users run them: `examples/dtls_server.ts --psk-file` served to
 * `examples/dtls_client.ts --psk` and to `openssl s_client -dtls1_2 -psk`; `--cert`/`--key`
 * served to `s_client` (verified); `examples/dtls_client.ts --ca` against `gnutls-serv --udp`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { runtimeArgs, test } from "./harness.ts";
import { trackChild } from "./support/children.ts";
import { type DtlsPeer, startDtlsClient, startDtlsServer } from "./support/dtls_peers.ts";
import { sharedTestPki } from "./support/pki.ts";
import { repoRoot } from "./support/subprocess.ts";

const pki = sharedTestPki();
const KEY_HEX = "00112233445566778899aabbccddeeff";

/** Runs an example; resolves with its exit code and output. */
function run(
  script: string,
  args: string[],
  onStdout?: (text: string) => void,
): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill(): void } {
  const child = spawn(process.execPath, runtimeArgs(script, args), {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const untrack = trackChild(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
    onStdout?.(stdout);
  });
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      untrack();
      resolve({ code, stdout, stderr });
    })
  );
  return { done, kill: () => child.kill("SIGTERM") };
}

/** Starts examples/dtls_server.ts and resolves with its port once it listens. */
async function startServerExample(args: string[]) {
  let announce: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (announce = resolve));
  const server = run("examples/dtls_server.ts", ["--port", "0", ...args], (out) => {
    const m = /listening on udp \S+:(\d+)/.exec(out);
    if (m !== null) announce(Number(m[1]));
  });
  const listening = await Promise.race([
    port,
    server.done.then((r) => assert.fail(`dtls_server exited: ${r.stdout}${r.stderr}`)),
  ]);
  return { server, port: listening };
}

test("examples: dtls_server --psk-file with dtls_client --psk and s_client -psk", async () => {
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-dtls-"));
  try {
    const file = join(dir, "keys.psk");
    writeFileSync(file, `# devices\ndevice-1:${KEY_HEX}\n`);
    const args = ["--psk-file", file, "--psk-hint", "h", "--once"];
    const first = await startServerExample(args);
    const client = await run("examples/dtls_client.ts", [
      `127.0.0.1:${first.port}`,
      "--psk",
      `device-1:${KEY_HEX}`,
      "--send",
      "hello psk",
    ]).done;
    assert.equal(client.code, 0, client.stderr);
    assert.match(client.stdout, /DTLSv1\.2 \S*PSK\S*, psk identity device-1/);
    assert.match(client.stdout, /received: hello psk/);
    const r1 = await first.server.done; // --once: the client's close_notify ends it
    assert.equal(r1.code, 0, `${r1.stdout}\n${r1.stderr}`);
    assert.match(r1.stdout, /psk device-1/);

    const second = await startServerExample(args);
    await using s: DtlsPeer = startDtlsClient("openssl", second.port, [
      "-psk",
      KEY_HEX,
      "-psk_identity",
      "device-1",
    ]);
    await s.waitFor(/Cipher is \S*PSK/);
    s.send("from s_client\n");
    await s.waitFor(/^from s_client$/m);
    s.send("Q\n");
    const r2 = await second.server.done;
    assert.equal(r2.code, 0, `${r2.stdout}\n${r2.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { timeout: 60_000 });

test(
  "examples: dtls_server --cert served to s_client (verified); dtls_client --ca against gnutls-serv",
  async () => {
    const { server, port } = await startServerExample([
      "--cert",
      pki.serverChainPath,
      "--key",
      pki.server.keyPath,
      "--once",
    ]);
    try {
      await using s = startDtlsClient("openssl", port, [
        "-CAfile",
        pki.rootCaPath,
        "-servername",
        "localhost",
        "-verify_return_error",
      ]);
      await s.waitFor(/Verify return code: 0 \(ok\)/);
      s.send("echo me\n");
      await s.waitFor(/^echo me$/m);
      s.send("Q\n"); // s_client: close_notify and quit; the --once server then exits
      await s.exited;
    } finally {
      const r = await server.done; // --once: exits after s_client closes (killed by the dispose)
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /DTLSv1\.2 ECDHE-/);
    }
    await using peer = await startDtlsServer("gnutls", [
      "--echo",
      "--x509certfile",
      pki.serverChainPath,
      "--x509keyfile",
      pki.server.keyPath,
    ]);
    const client = await run("examples/dtls_client.ts", [
      `127.0.0.1:${peer.port}`,
      "--ca",
      pki.rootCaPath,
      "--servername",
      "localhost",
      "--send",
      "to gnutls",
    ]).done;
    assert.equal(client.code, 0, client.stderr);
    assert.match(client.stdout, /peer CN=localhost/);
    assert.match(client.stdout, /received: to gnutls/);
  },
  { timeout: 60_000 },
);
