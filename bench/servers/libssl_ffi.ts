/**
 * Benchmark server: this library's `listen()`, on whichever runtime runs it.
 *
 *   deno run -A bench/servers/libssl_ffi.ts <port> <cert-chain.pem> <key.pem>
 *   bun bench/servers/libssl_ffi.ts <port> <cert-chain.pem> <key.pem>
 *   node bench/servers/libssl_ffi.ts <port> <cert-chain.pem> <key.pem>
 *
 * Listens on 127.0.0.1:<port> (0 picks a free port), TLS 1.3 only, prints `LISTENING <port>`,
 * and serves BULK and PING as bench/native/server.c does (bench/servers/serve.ts). Handshake
 * failures and failed connections are logged to stderr.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { listen } from "../../mod.ts";
import { serve, serverArgs } from "./serve.ts";

const { port, certPath, keyPath } = serverArgs(process.argv.slice(2), "libssl_ffi.ts");
const listener = listen({
  hostname: "127.0.0.1",
  port,
  cert: readFileSync(certPath, "utf8"),
  key: readFileSync(keyPath, "utf8"),
  minVersion: "TLSv1.3",
  onError: (error) => console.error(`libssl_ffi server: handshake: ${error.message}`),
});
console.log(`LISTENING ${listener.addr.port}`);
for await (const conn of listener) {
  serve(conn).catch((error) => console.error(`libssl_ffi server: ${error}`));
}
