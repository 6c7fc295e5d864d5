/**
 * Drives two {@link TlsEngine}s against each other in memory: no sockets, just byte copies.
 *
 * @example
 * ```ts
 * import { handshakePair, makePair } from "./memory_pair.ts";
 * const { client, server, close } = makePair(clientOptions, serverOptions);
 * await handshakePair(client, server);
 * close();
 * ```
 * @module
 */
import { TlsContext, type TlsContextOptions, TlsEngine, type TlsEngineOptions } from "../../mod.ts";

/** Moves every pending byte from `from` to `to`; returns how many moved. */
export function transfer(from: TlsEngine, to: TlsEngine): number {
  const bytes = from.outgoing();
  if (bytes === null || to.closed) return 0;
  to.receive(bytes);
  return bytes.length;
}

/**
 * Runs both handshakes to completion, awaiting suspended callbacks. Throws the first error
 * either side throws; before rethrowing, it delivers the failing side's last bytes (its alert)
 * to the other side and gives that side one more step, so both sides' errors can be observed.
 */
export async function handshakePair(client: TlsEngine, server: TlsEngine): Promise<void> {
  for (let rounds = 0; rounds < 1000; rounds++) {
    const c = client.handshake();
    transfer(client, server);
    const s = server.handshake();
    transfer(server, client);
    if (c.status === "done" && s.status === "done") {
      // TLS 1.3: the server's tickets may still be in flight; leave them for the first read.
      return;
    }
    const waits: Promise<void>[] = [];
    if (c.status === "suspended") waits.push(c.until);
    if (s.status === "suspended") waits.push(s.until);
    if (waits.length > 0) await Promise.all(waits);
    else if (
      c.status !== "done" && s.status !== "done" && client.pendingOutgoing === 0 &&
      server.pendingOutgoing === 0 && rounds > 10
    ) {
      throw new Error("handshake made no progress");
    }
  }
  throw new Error("handshake did not finish in 1000 rounds");
}

/** Reads everything currently decryptable from `engine` into one array (`null` at EOF). */
export function readAll(engine: TlsEngine, chunk = 65536): Uint8Array | null {
  const parts: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(chunk);
  for (;;) {
    const n = engine.read(buf);
    if (n === null) {
      if (total === 0) return null;
      break;
    }
    if (n === 0) break;
    parts.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A client and a server engine with their contexts; `close()` closes all four. */
export interface Pair {
  client: TlsEngine;
  server: TlsEngine;
  clientContext: TlsContext;
  serverContext: TlsContext;
  close(): void;
}

/** Creates contexts and engines for an in-memory pair. */
export function makePair(
  clientOptions: TlsContextOptions,
  serverOptions: TlsContextOptions,
  engineOptions: TlsEngineOptions = { servername: "localhost" },
): Pair {
  const clientContext = new TlsContext("client", clientOptions);
  const serverContext = new TlsContext("server", serverOptions);
  const client = new TlsEngine(clientContext, engineOptions);
  const server = new TlsEngine(serverContext);
  return {
    client,
    server,
    clientContext,
    serverContext,
    close() {
      client.close();
      server.close();
      clientContext.close();
      serverContext.close();
    },
  };
}
