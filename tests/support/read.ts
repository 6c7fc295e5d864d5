/**
 * Reading a `Connection` in tests.
 *
 * @example
 * ```ts
 * import { readToEnd } from "./read.ts";
 * import { connect } from "../../mod.ts";
 * const conn = await connect({ hostname: "localhost", port: 8443 });
 * console.log((await readToEnd(conn)).length); // everything up to the peer's close_notify
 * ```
 * @module
 */
import type { Connection } from "../../mod.ts";

/** Reads until the clean end of stream (close_notify) and returns everything read. */
export async function readToEnd(conn: Connection): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
