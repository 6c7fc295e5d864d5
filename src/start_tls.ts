/**
 * `startTls()`: TLS over an existing byte stream (STARTTLS-style protocols), as a client (the
 * default) or, with `role: "server"`, as a server. Each role's work lives with that role
 * (`connect.ts`, `server.ts`); this module only picks one.
 *
 * @module
 */
import { abortedError, Deadline } from "./core/deadline.ts";
import { stripBrackets } from "./net/address.ts";
import { webByteStream, type WebTransport } from "./net/web_stream.ts";
import type { Connection } from "./connection/connection.ts";
import { establish, prepareClient, type PreparedClient, type TlsClientOptions } from "./connect.ts";
import { startTlsServer, type StartTlsServerOptions } from "./server/server.ts";
import type { NetAddr } from "./net/stream.ts";
import { checkCallOptions, normalizeOptions } from "./tls/options.ts";

export type { WebTransport };

/** Options for {@link startTls} as a client (the default role). */
export interface StartTlsOptions extends TlsClientOptions {
  /** `"client"` (the default). */
  role?: "client";
  /** The server's host name (used as `servername` when that is absent). */
  hostname?: string;
}

/**
 * Upgrades an existing byte stream to TLS (STARTTLS-style protocols): anything with
 * `{ readable, writable }` Web streams, e.g. a `Deno.Conn` or node's `Duplex.toWeb(socket)`.
 * Resolves once the handshake is done. The transport belongs to the connection from then on.
 * With `role: "server"` it runs the server side (the options of `listen()`).
 *
 * @example
 * ```ts
 * import { startTls } from "../mod.ts";
 * const tcp = await Deno.connect({ hostname: "mail.example.com", port: 587 });
 * // ... speak SMTP until the server says "220 Ready to start TLS" ...
 * await using conn = await startTls(tcp, { hostname: "mail.example.com" });
 * ```
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { startTls } from "../mod.ts";
 * const cert = readFileSync("server.pem", "utf8");
 * const key = readFileSync("server.key", "utf8");
 * using tcpListener = Deno.listen({ port: 2525 });
 * const tcp = await tcpListener.accept();
 * // ... answer "STARTTLS" with "220 Ready to start TLS" ...
 * await using conn = await startTls(tcp, { role: "server", cert, key });
 * ```
 * @throws {TypeError} without `hostname`/`servername` (clients, unless verification is
 * disabled), without `cert`/`key` (servers).
 * @throws {TlsError} as {@link connect}.
 */
export async function startTls(
  transport: WebTransport,
  given: StartTlsOptions | StartTlsServerOptions = {},
): Promise<Connection<NetAddr | null>> {
  if (typeof given !== "object" || given === null) {
    throw new TypeError("options must be an object");
  }
  if (given.role === "server") return await startTlsServer(transport, given);
  if (given.role !== undefined && given.role !== "client") {
    throw new TypeError(`role must be "client" or "server", got ${JSON.stringify(given.role)}`);
  }
  const timeout = checkCallOptions(given);
  const stream = webByteStream(transport);
  let prepared: PreparedClient;
  try {
    const options = normalizeOptions("startTls", "client", given);
    const host = options.hostname === undefined ? undefined : stripBrackets(options.hostname);
    if (options.signal?.aborted) throw abortedError(options.signal);
    prepared = prepareClient(options, host);
  } catch (error) {
    stream.close();
    throw error;
  }
  // Awaited here so that every failure above is a rejection, never a synchronous throw.
  return await establish(
    stream,
    prepared,
    new Deadline(timeout, given.signal, "the TLS handshake"),
  );
}
