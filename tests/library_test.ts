/**
 * Library discovery: `libraryCandidates()` as a unit, and the whole loader (`LIBSSL_PATH`,
 * `LIBCRYPTO_PATH`, the Deno environment permission) in subprocesses of the same runtime, since
 * the loader caches its result per process.
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type Backend, backend, libraryCandidates, loadOpenSslWith } from "../ffi/mod.ts";
import { runtime, runtimeArgs, test } from "./harness.ts";
import { opensslVersion } from "../mod.ts";
import { runScript } from "./support/subprocess.ts";

// --- libraryCandidates() with a fake backend -----------------------------------------------

/** The real backend with a fake OS and environment: only `os` and `env` matter here. */
function fakeBackend(os: Backend["os"], env: Record<string, string> = {}): Backend {
  return { ...backend, os, env: (name: string) => env[name] };
}

test("libraryCandidates: Linux tries libssl.so.4, .so.3, then .so.1.1, each with its libcrypto", () => {
  const expected = [
    { ssl: "libssl.so.4", crypto: "libcrypto.so.4" },
    { ssl: "libssl.so.3", crypto: "libcrypto.so.3" },
    { ssl: "libssl.so.1.1", crypto: "libcrypto.so.1.1" },
  ];
  assert.deepEqual(libraryCandidates(fakeBackend("linux")), expected);
  // Unknown systems get the same ELF sonames; an empty LIBSSL_PATH counts as unset.
  assert.deepEqual(libraryCandidates(fakeBackend("other")), expected);
  assert.deepEqual(libraryCandidates(fakeBackend("linux", { LIBSSL_PATH: "" })), expected);
});

test("libraryCandidates: macOS uses Homebrew, never the system /usr/lib/libcrypto.dylib", () => {
  const candidates = libraryCandidates(fakeBackend("darwin"));
  const brew = (prefix: string, formula: string, suffix: string) => ({
    ssl: `${prefix}/${formula}/lib/libssl.${suffix}.dylib`,
    crypto: `${prefix}/${formula}/lib/libcrypto.${suffix}.dylib`,
  });
  assert.deepEqual(candidates, [
    brew("/opt/homebrew/opt", "openssl@4", "4"),
    brew("/opt/homebrew/opt", "openssl@3", "3"),
    brew("/opt/homebrew/opt", "openssl@1.1", "1.1"),
    brew("/usr/local/opt", "openssl@4", "4"),
    brew("/usr/local/opt", "openssl@3", "3"),
    brew("/usr/local/opt", "openssl@1.1", "1.1"),
  ]);
  for (const { ssl, crypto } of candidates) {
    for (const path of [ssl, crypto]) {
      assert.ok(!path.startsWith("/usr/lib/"), `${path}: Apple's shim aborts the process`);
      assert.ok(path.startsWith("/"), `${path}: absolute (no dyld search of system paths)`);
    }
  }
});

test("libraryCandidates: Windows names", () => {
  assert.deepEqual(libraryCandidates(fakeBackend("windows")), [
    { ssl: "libssl-4-x64.dll", crypto: "libcrypto-4-x64.dll" },
    { ssl: "libssl-3-x64.dll", crypto: "libcrypto-3-x64.dll" },
    { ssl: "libssl-1_1-x64.dll", crypto: "libcrypto-1_1-x64.dll" },
  ]);
});

test("libraryCandidates: LIBSSL_PATH overrides, with or without LIBCRYPTO_PATH", () => {
  // Without LIBCRYPTO_PATH: the file next to LIBSSL_PATH with the matching name.
  assert.deepEqual(
    libraryCandidates(fakeBackend("linux", { LIBSSL_PATH: "/opt/ssl/lib/libssl.so.3" })),
    [{ ssl: "/opt/ssl/lib/libssl.so.3", crypto: "/opt/ssl/lib/libcrypto.so.3" }],
  );
  // Only the file name is rewritten, not a directory that happens to contain "libssl".
  assert.deepEqual(
    libraryCandidates(fakeBackend("linux", { LIBSSL_PATH: "/libssl/libssl.so.1.1" })),
    [{ ssl: "/libssl/libssl.so.1.1", crypto: "/libssl/libcrypto.so.1.1" }],
  );
  assert.deepEqual(
    libraryCandidates(fakeBackend("darwin", { LIBSSL_PATH: "/x/lib/libssl.3.dylib" })),
    [{ ssl: "/x/lib/libssl.3.dylib", crypto: "/x/lib/libcrypto.3.dylib" }],
  );
  assert.deepEqual(
    libraryCandidates(fakeBackend("windows", { LIBSSL_PATH: "C:\\ssl\\bin\\libssl-3-x64.dll" })),
    [{ ssl: "C:\\ssl\\bin\\libssl-3-x64.dll", crypto: "C:\\ssl\\bin\\libcrypto-3-x64.dll" }],
  );
  // With LIBCRYPTO_PATH: taken as is; an empty one counts as unset.
  assert.deepEqual(
    libraryCandidates(
      fakeBackend("linux", {
        LIBSSL_PATH: "/a/libssl.so.3",
        LIBCRYPTO_PATH: "/b/custom-crypto.so",
      }),
    ),
    [{ ssl: "/a/libssl.so.3", crypto: "/b/custom-crypto.so" }],
  );
  assert.deepEqual(
    libraryCandidates(fakeBackend("linux", { LIBSSL_PATH: "/a/libssl.so.3", LIBCRYPTO_PATH: "" })),
    [{ ssl: "/a/libssl.so.3", crypto: "/a/libcrypto.so.3" }],
  );
  // The override is the only candidate: no silent fallback to the system library.
  assert.equal(
    libraryCandidates(fakeBackend("darwin", { LIBSSL_PATH: "/a/libssl.3.dylib" })).length,
    1,
  );
});

// --- the loader, in subprocesses ---------------------------------------------------------

const REPO = fileURLToPath(new URL("..", import.meta.url));

/** What the child script prints. */
interface ChildResult {
  ok: boolean;
  code?: string;
  message?: string;
  libssl?: string;
  libcrypto?: string;
  runtime?: string;
}

/** Loads OpenSSL and prints a {@link ChildResult} as JSON. */
const SCRIPT = "tests/fixtures/load_openssl.ts";

/**
 * Runs the script in a fresh process of this runtime, with `env` on top of ours (LIBSSL_PATH and
 * LIBCRYPTO_PATH removed first). `allowEnv: false` drops Deno's `--allow-env`.
 */
function runChild(env: Record<string, string>, allowEnv = true): ChildResult {
  const args = runtimeArgs(SCRIPT, [], [
    "--allow-ffi",
    ...(allowEnv ? ["--allow-env"] : []),
    "--allow-read",
  ]);
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== "LIBSSL_PATH" && k !== "LIBCRYPTO_PATH") childEnv[k] = v;
  }
  Object.assign(childEnv, env);
  const r = spawnSync(process.execPath, args, {
    cwd: REPO,
    env: childEnv,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"], // stdin closed: a permission prompt could never be answered
    timeout: 50_000,
  });
  const detail = `exit ${r.status}, signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.error, undefined, `spawn failed: ${String(r.error)}`);
  assert.equal(r.status, 0, detail);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  let parsed: ChildResult;
  try {
    parsed = JSON.parse(line) as ChildResult;
  } catch {
    assert.fail(`no JSON result line\n${detail}`);
  }
  assert.equal(typeof parsed.ok, "boolean", detail);
  return parsed;
}

const SLOW = { timeout: 60_000 };

test("loader: an OpenSSL older than 1.1.1 is refused with LIBRARY_TOO_OLD, saying so", () => {
  // A backend whose libcrypto reports 1.0.2u (0x1000215f); everything else is the real one.
  const opened: string[] = [];
  const old: Backend = {
    ...backend,
    os: "linux",
    env: () => undefined,
    open(path, table) {
      opened.push(path);
      const lib = backend.open(path, table);
      if (!path.includes("libcrypto")) return lib;
      return { ...lib, symbols: { ...lib.symbols, OpenSSL_version_num: () => 0x1000215f } };
    },
  };
  const result = loadOpenSslWith(old);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.failure.code, "LIBRARY_TOO_OLD");
  assert.match(result.failure.message, /OpenSSL 1\.1\.1 or later is required/);
  assert.match(result.failure.message, /libcrypto\.so\.3 is 0x1000215f/);
  assert.ok(
    !opened.some((p) => p.includes("libssl")),
    "libssl is not opened after a too-old libcrypto",
  );
});

test("loader: a libssl and a libcrypto of two releases are refused, saying which", () => {
  // A backend whose libssl was linked against another release's libcrypto (0x4000fff0, a 4.0.255
  // no system has) than the libcrypto opened: as with LIBCRYPTO_PATH pointing at the wrong one.
  // Every candidate is refused; the message names the pair default discovery loads here
  // (libssl.so.3 with 3.x, libssl.so.4 with 4.0).
  const loaded = opensslVersion();
  const closed: string[] = [];
  const mixed: Backend = {
    ...backend,
    os: "linux",
    env: () => undefined,
    open(path, table) {
      const lib = backend.open(path, table);
      const close = () => {
        closed.push(path);
        lib.close();
      };
      if (!path.includes("libssl")) return { ...lib, close };
      return {
        ...lib,
        close,
        symbols: { ...lib.symbols, libssl_OpenSSL_version_num: () => 0x4000fff0 },
      };
    },
  };
  const result = loadOpenSslWith(mixed);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.failure.code, "LIBRARY_NOT_FOUND");
  assert.ok(
    result.failure.message.includes(
      `mismatch: ${loaded.libssl} is built for OpenSSL 0x4000fff0 but ${loaded.libcrypto} is 0x${
        loaded.number.toString(16)
      }`,
    ),
    result.failure.message,
  );
  assert.match(result.failure.message, /LIBCRYPTO_PATH/);
  // Every pair it opened, it closed again.
  assert.ok(closed.includes(loaded.libssl) && closed.includes(loaded.libcrypto), String(closed));
});

test("loader: every candidate tried is named with why it failed (no runtime's wording)", () => {
  const r = runChild({ LIBSSL_PATH: "libssl.so.99" });
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.equal(
    r.message,
    "could not load libssl/libcrypto (set LIBSSL_PATH, and LIBCRYPTO_PATH if its name differs); " +
      "tried: libcrypto.so.99: not found by the dynamic linker (not installed, or not on its " +
      "search path)",
  );
}, SLOW);

test("loader: a LIBSSL_PATH that does not exist gives LIBRARY_NOT_FOUND naming it", () => {
  const r = runChild({ LIBSSL_PATH: "/nonexistent/libssl.so.3" });
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.equal(r.code, "LIBRARY_NOT_FOUND", JSON.stringify(r));
  const message = r.message ?? "";
  assert.ok(
    message.includes("/nonexistent/libcrypto.so.3") || message.includes("/nonexistent/libssl.so.3"),
    message,
  );
  assert.ok(message.includes("LIBSSL_PATH"), `the message says how to override: ${message}`);
  // No fallback to the system sonames was tried ("tried: a; b" would list bare names).
  assert.ok(!/(tried: |; )lib(ssl|crypto)\.so/.test(message), message);
}, SLOW);

test("loader: LIBSSL_PATH alone loads that file, with libcrypto derived from it", () => {
  const ssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  const crypto = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";
  assert.ok(existsSync(ssl) && existsSync(crypto), "Debian's multiarch path");
  const r = runChild({ LIBSSL_PATH: ssl });
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.libssl, ssl);
  assert.equal(r.libcrypto, crypto);
  assert.equal(r.runtime, runtime);
}, SLOW);

test("loader: LIBCRYPTO_PATH is honoured beside LIBSSL_PATH", () => {
  const r = runChild({
    LIBSSL_PATH: "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    LIBCRYPTO_PATH: "/nonexistent/elsewhere/libcrypto.so.3",
  });
  assert.equal(r.ok, false, JSON.stringify(r));
  assert.equal(r.code, "LIBRARY_NOT_FOUND");
  assert.ok((r.message ?? "").includes("/nonexistent/elsewhere/libcrypto.so.3"), r.message);
}, SLOW);

test(
  "loader: without the env permission (Deno) LIBSSL_PATH is not read and nothing prompts",
  () => {
    // Deno: no --allow-env, --no-prompt, stdin closed: the variable must be skipped silently and
    // the system library loaded. Bun has no permissions: the variable is honoured.
    const r = runChild({ LIBSSL_PATH: "/nonexistent/libssl.so.3" }, false);
    if (runtime === "deno") {
      // What default discovery loads here, as in this process (libssl.so.3, or .so.4 with 4.0).
      const loaded = opensslVersion();
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(r.libssl, loaded.libssl);
      assert.equal(r.libcrypto, loaded.libcrypto);
    } else {
      assert.equal(r.ok, false, JSON.stringify(r));
      assert.equal(r.code, "LIBRARY_NOT_FOUND");
    }
  },
  SLOW,
);

test(
  "loader: OpenSSL's exit-time cleanup is off (an OPENSSL_atexit handler never runs)",
  () => {
    // The fixture registers libc's abort() with OPENSSL_atexit. OpenSSL 3.x runs that list from
    // OPENSSL_cleanup, its atexit handler, unless the loader said OPENSSL_INIT_NO_ATEXIT first:
    // without it the child dies of SIGABRT after printing. Bun skips libc's atexit handlers at
    // exit anyway; OpenSSL 4.0 has no exit handler and no OPENSSL_atexit. Deno and Node.js on 3.x
    // are where this can fail.
    const r = runScript("tests/fixtures/exit_cleanup.ts", [], { timeout: 50_000 });
    const detail = `exit ${r.status}, signal ${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    const major = Number(opensslVersion().version.split(".")[0]);
    assert.equal(r.stdout.trim(), major >= 4 ? "no OPENSSL_atexit" : "registered", detail);
    assert.equal(r.signal, null, detail);
    assert.equal(r.status, 0, detail);
  },
  SLOW,
);

test("loader: a runtime that forbids FFI is PERMISSION_DENIED, naming the flag", () => {
  // In-process: a backend whose runtime says no is never asked to open anything.
  const opened: string[] = [];
  const denied: Backend = {
    ...backend,
    missingPermission: () => "Deno needs --allow-ffi to load OpenSSL",
    open(path, table) {
      opened.push(path);
      return backend.open(path, table);
    },
  };
  const result = loadOpenSslWith(denied);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.failure.code, "PERMISSION_DENIED");
  assert.equal(result.failure.message, "Deno needs --allow-ffi to load OpenSSL");
  assert.deepEqual(opened, [], "no library was tried");

  // And for real, where the runtime has permissions: Deno without --allow-ffi (--no-prompt, no
  // terminal: denied at once), Node.js's permission model without --allow-ffi. Bun has none.
  const argv = runtime === "deno"
    ? runtimeArgs(SCRIPT, [], ["--allow-env", "--allow-read"])
    : runtime === "node"
    ? ["--permission", "--allow-fs-read=*", "--allow-child-process", ...runtimeArgs(SCRIPT)]
    : null;
  if (argv === null) {
    assert.equal(backend.missingPermission(), null, "Bun has no permission system");
    return;
  }
  const r = spawnSync(process.execPath, argv, {
    cwd: REPO,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 50_000,
  });
  const detail = `exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  const line = r.stdout.trim().split("\n").pop() ?? "";
  const child = JSON.parse(line) as ChildResult;
  if (runtime === "node" && backend.ffi === "koffi") {
    // koffi is a native addon: under the permission model the import of the library fails.
    assert.equal(child.code, "NOT_A_TLS_ERROR", detail);
    assert.match(child.message ?? "", /--allow-addons/, detail);
    return;
  }
  assert.equal(child.ok, false, detail);
  assert.equal(child.code, "PERMISSION_DENIED", detail);
  assert.match(child.message ?? "", /--allow-ffi/, detail);
  assert.doesNotMatch(child.message ?? "", /libcrypto|not found/, detail);
}, SLOW);

if (runtime === "node") {
  test(
    "Node.js: LIBSSL_FFI_BACKEND picks the backend; an unknown or missing one fails at import",
    () => {
      const run = (value: string) => {
        const r = spawnSync(process.execPath, runtimeArgs(SCRIPT), {
          cwd: REPO,
          env: { ...process.env, LIBSSL_FFI_BACKEND: value },
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 50_000,
        });
        return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as ChildResult;
      };
      const koffi = run("koffi");
      assert.equal(koffi.ok, true, JSON.stringify(koffi));
      const bogus = run("ctypes");
      assert.equal(bogus.code, "NOT_A_TLS_ERROR");
      assert.match(bogus.message ?? "", /LIBSSL_FFI_BACKEND=ctypes is not a Node\.js backend/);
      const nodeFfi = run("node:ffi");
      if (backend.ffi === "node:ffi") {
        assert.equal(nodeFfi.ok, true, JSON.stringify(nodeFfi));
      } else {
        // Node.js 24: what was detected, and what is supported.
        assert.equal(nodeFfi.code, "NOT_A_TLS_ERROR");
        assert.match(nodeFfi.message ?? "", /cannot run on Node\.js \d+\.\d+\.\d+/);
        assert.match(nodeFfi.message ?? "", /node:ffi is not available/);
        assert.match(nodeFfi.message ?? "", /Supported: Deno 2 .*Bun 1\.x.*Node\.js 26\.9\+/);
      }
    },
    SLOW,
  );
}
