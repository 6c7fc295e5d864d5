/**
 * Benchmark DTLS server: this library's `listenDtls()`, on whichever runtime runs it.
 *
 *   deno run -A bench/servers/libssl_ffi_dtls.ts <port> <cert-chain.pem> <key.pem>
 *   bun bench/servers/libssl_ffi_dtls.ts <port> <cert-chain.pem> <key.pem>
 *   node bench/servers/libssl_ffi_dtls.ts <port> <cert-chain.pem> <key.pem>
 *
 * Listens on UDP 127.0.0.1:<port> (0 picks a free port), prints `LISTENING <port>`, and echoes
 * every datagram of every client until its close_notify, as bench/native/dtls_server.c does
 * (cookies, defaults everywhere: MTU 1200). Handshake failures are logged to stderr.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { type DtlsConnection, listenDtls } from "../../mod.ts";
import { serverArgs } from "./serve.ts";

const { port, certPath, keyPath } = serverArgs(process.argv.slice(2), "libssl_ffi_dtls.ts");
const listener = await listenDtls({
  hostname: "127.0.0.1",
  port,
  cert: readFileSync(certPath, "utf8"),
  key: readFileSync(keyPath, "utf8"),
  onError: (error) => console.error(`libssl_ffi_dtls server: handshake: ${error.message}`),
});
console.log(`LISTENING ${listener.addr.port}`);

async function echo(conn: DtlsConnection): Promise<void> {
  try {
    for (let d = await conn.receive(); d !== null; d = await conn.receive()) conn.send(d);
  } finally {
    await conn.close();
  }
}

for await (const conn of listener) {
  echo(conn).catch((error) => console.error(`libssl_ffi_dtls server: ${error}`));
}
