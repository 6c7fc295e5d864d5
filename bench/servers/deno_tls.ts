/**
 * Benchmark server: Deno's own TLS server (`Deno.listenTls`, rustls underneath).
 *
 *   deno run -A bench/servers/deno_tls.ts <port> <cert-chain.pem> <key.pem>
 *
 * Listens on 127.0.0.1:<port> (0 picks a free port), prints `LISTENING <port>`, and serves BULK
 * and PING as bench/native/server.c does (bench/servers/serve.ts). Failed connections are logged
 * to stderr.
 *
 * @module
 */
import { serve, serverArgs } from "./serve.ts";

const { port, certPath, keyPath } = serverArgs(Deno.args, "deno_tls.ts");
const listener = Deno.listenTls({
  hostname: "127.0.0.1",
  port,
  cert: Deno.readTextFileSync(certPath),
  key: Deno.readTextFileSync(keyPath),
});
console.log(`LISTENING ${listener.addr.port}`);
for await (const conn of listener) {
  conn.handshake().then(
    () => serve(conn),
    (error) => {
      conn.close();
      throw error;
    },
  ).catch((error) => console.error(`deno_tls server: ${error}`));
}
