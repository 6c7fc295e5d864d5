import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { opensslVersion } from "../mod.ts";
import { runtime, test } from "./harness.ts";

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
