import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { opensslVersion } from "../mod.ts";
import { runtime, test } from "./harness.ts";
import { freeBuffersFixedIn } from "../src/core/capabilities.ts";

test("opensslVersion() reports the loaded library, matching the openssl CLI", () => {
  const v = opensslVersion();
  assert.equal(v.runtime, runtime);
  const ffis = { deno: ["Deno.dlopen"], bun: ["bun:ffi"], node: ["node:ffi", "koffi"] };
  assert.ok(ffis[runtime].includes(v.ffi), `${v.ffi} on ${runtime}`);
  assert.match(v.text, /^OpenSSL \d+\.\d+\.\d+/);
  assert.match(v.version, /^\d+\.\d+\.\d+$/);
  assert.ok(v.number >= 0x30000020, `we test OpenSSL 3.0.2+, got 0x${v.number.toString(16)}`);
  assert.ok(v.text.startsWith(`OpenSSL ${v.version}`), `${v.text} vs ${v.version}`);
  // Debian's CLI and library come from the same package version.
  const cli = execFileSync("openssl", ["version"], { encoding: "utf8" });
  assert.ok(cli.includes(`Library: ${v.text}`) || cli.startsWith(v.text), cli);
  // Default discovery loads the soname of the release it found: libssl.so.3 for 3.x,
  // libssl.so.4 for 4.x.
  const major = Number(v.version.split(".")[0]);
  assert.equal(v.libssl, `libssl.so.${major}`);
  assert.equal(v.libcrypto, `libcrypto.so.${major}`);
});

test("SSL_free_buffers is used only on releases with the CVE-2024-4741 fix", () => {
  const cases: [string, number, boolean][] = [
    ["3.0.2", 0x30000020, false],
    ["3.0.13", 0x300000d0, false],
    ["3.0.14", 0x300000e0, true],
    ["3.0.19", 0x30000130, true],
    ["3.1.5", 0x30100050, false],
    ["3.1.6", 0x30100060, true],
    ["3.2.1", 0x30200010, false],
    ["3.2.2", 0x30200020, true],
    ["3.3.0", 0x30300000, false],
    ["3.3.1", 0x30300010, true],
    ["3.4.0", 0x30400000, true],
    ["3.5.9", 0x30500090, true],
    ["4.0.0", 0x40000000, true],
  ];
  for (const [version, n, fixed] of cases) assert.equal(freeBuffersFixedIn(n), fixed, version);
});
