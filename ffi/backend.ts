/**
 * Chooses the runtime backend once, at module load, and imports only that one (so `bun:ffi` is
 * never touched on Deno, `Deno.*` never on Bun, and koffi never outside Node.js):
 *
 * | runtime | backend |
 * |---|---|
 * | Bun (`globalThis.Bun`) | `backend_bun.ts` over `bun:ffi` |
 * | Deno (`globalThis.Deno`) | `backend_deno.ts` over `Deno.dlopen` (needs `--allow-ffi`) |
 * | Node.js 26.9+, or 26.1-26.8 with `--experimental-ffi` | `backend_node_ffi.ts` over `node:ffi` |
 * | Node.js 22 and 24 (and 26 without `node:ffi`) | `backend_koffi.ts` over the koffi package |
 *
 * `LIBSSL_FFI_BACKEND=koffi` (or `=node:ffi`) overrides the choice on Node.js. Anything else
 * (an older Node.js, Node.js without koffi, a browser, another runtime) fails here, at import,
 * with an error that says what was detected and what is supported.
 *
 * @module
 */
import type { Backend } from "./types.ts";

/** What this library runs on, for the error an unsupported runtime gets. */
export const SUPPORTED_RUNTIMES =
  "Deno 2 (with --allow-ffi), Bun 1.x, Node.js 26.9+ (its built-in node:ffi; 26.1-26.8 with " +
  "--experimental-ffi), and Node.js 22 and 24 with the koffi package installed";

/** The oldest Node.js major we run on (koffi 3 and type stripping both need 22). */
const NODE_MIN_MAJOR = 22;

interface NodeProcess {
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
}

function unsupported(detected: string, why: string, cause?: unknown): Error {
  return new Error(
    `libssl-ffi cannot run on ${detected}: ${why}. Supported: ${SUPPORTED_RUNTIMES}.`,
    cause === undefined ? undefined : { cause },
  );
}

async function nodeBackend(version: string, env: NodeProcess["env"]): Promise<Backend> {
  const detected = `Node.js ${version}`;
  const major = Number(version.split(".")[0]);
  if (!(major >= NODE_MIN_MAJOR)) {
    throw unsupported(detected, `Node.js ${NODE_MIN_MAJOR} or later is required`);
  }
  const wanted = env?.LIBSSL_FFI_BACKEND;
  if (wanted !== undefined && wanted !== "" && wanted !== "koffi" && wanted !== "node:ffi") {
    throw new Error(
      `LIBSSL_FFI_BACKEND=${wanted} is not a Node.js backend: use "node:ffi" or "koffi"`,
    );
  }
  if (wanted !== "koffi") {
    const nodeFfi = await import("./backend_node_ffi.ts").catch((error: unknown) => {
      if (wanted === "node:ffi") {
        throw unsupported(
          detected,
          "LIBSSL_FFI_BACKEND=node:ffi, but node:ffi is not available (it needs Node.js " +
            "26.1+, and --experimental-ffi before 26.9)",
          error,
        );
      }
      return null;
    });
    if (nodeFfi !== null) return nodeFfi.nodeFfiBackend;
  }
  try {
    return (await import("./backend_koffi.ts")).koffiBackend;
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    const why = code === "ERR_DLOPEN_DISABLED" || code === "ERR_ACCESS_DENIED"
      ? "the koffi package (a native addon) may not load: Node.js runs with the permission " +
        "model; add --allow-addons"
      : code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
      ? `this Node.js has no node:ffi, and the koffi package is not installed (npm install koffi${
        major >= 26 ? ", or run Node.js with --experimental-ffi" : ""
      })`
      : `this Node.js has no node:ffi, and the koffi package failed to load (${
        error instanceof Error ? error.message : String(error)
      })`;
    throw unsupported(detected, why, error);
  }
}

async function choose(): Promise<Backend> {
  const g = globalThis as { Bun?: unknown; Deno?: unknown; process?: NodeProcess };
  // Bun and Deno both define `process.versions.node` too: they are recognised first.
  if ("Bun" in globalThis) return (await import("./backend_bun.ts")).bunBackend;
  if (g.Deno !== undefined) return (await import("./backend_deno.ts")).denoBackend;
  const node = g.process?.versions?.node;
  if (typeof node === "string") return await nodeBackend(node, g.process?.env);
  throw unsupported(
    typeof navigator === "object" && typeof navigator.userAgent === "string"
      ? `"${navigator.userAgent}"`
      : "an unknown JavaScript runtime",
    "no FFI this library knows (it needs to load the C libraries libssl and libcrypto)",
  );
}

/** The backend for the runtime we are running on. */
export const backend: Backend = await choose();
