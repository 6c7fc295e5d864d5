/**
 * Chooses the runtime backend once, at module load: Bun when `globalThis.Bun` exists, else Deno.
 * Only the chosen backend module is imported, so `bun:ffi` is never touched on Deno and
 * `Deno.*` never on Bun.
 *
 * @module
 */
import type { Backend } from "./types.ts";

/** The backend for the runtime we are running on. */
export const backend: Backend = "Bun" in globalThis
  ? (await import("./backend_bun.ts")).bunBackend
  : (await import("./backend_deno.ts")).denoBackend;
