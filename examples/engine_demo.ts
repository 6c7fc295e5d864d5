/**
 * The sans-I/O engine, end to end, with no network: a throwaway CA and server certificate made
 * with the `openssl` CLI in a temp dir (`demo_pki.ts`), a client and a server `TlsEngine`
 * pumping bytes to each other in memory, a JS verify callback running inside the handshake, and
 * a message each way.
 *
 *   deno run --allow-ffi --allow-env --allow-read --allow-write --allow-run examples/engine_demo.ts
 *   bun examples/engine_demo.ts
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { opensslVersion, TlsContext, TlsEngine, type TlsEngine as Engine } from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

/** Makes a CA and a `localhost` server certificate (EC P-256) in `pki`; returns their PEM. */
function makeCertificates(pki: DemoPki): { ca: string; cert: string; key: string } {
  const ca = pki.rootCa("ca", "Demo CA");
  const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  const read = (path: string) => readFileSync(path, "utf8");
  return { ca: read(ca.cert), cert: read(server.cert), key: read(server.key) };
}

/** Moves pending ciphertext from one engine to the other. */
function pump(from: Engine, to: Engine): void {
  const bytes = from.outgoing();
  if (bytes !== null) to.receive(bytes);
}

const pki = DemoPki.temporary("libssl-ffi-demo-");
try {
  const v = opensslVersion();
  console.log(`${v.text} (${v.libssl}) on ${v.runtime}`);
  const pem = makeCertificates(pki);

  using clientContext = new TlsContext("client", {
    caCerts: [pem.ca],
    onVerifyCertificate: (info) => {
      console.log(
        `  verify depth ${info.depth}: ${info.certificate.subject} -> ${info.errorMessage}`,
      );
      return info.preverified;
    },
  });
  using serverContext = new TlsContext("server", { cert: pem.cert, key: pem.key });
  using client = new TlsEngine(clientContext, { servername: "localhost" });
  using server = new TlsEngine(serverContext);

  console.log("handshake:");
  // Step both sides every round (each may be waiting for the other), moving bytes in between.
  for (let done = false; !done;) {
    const c = client.handshake();
    pump(client, server);
    const s = server.handshake();
    pump(server, client);
    done = c.status === "done" && s.status === "done";
  }
  console.log(`  ${client.protocol} ${client.cipher}, server saw SNI "${server.servername}"`);

  const buf = new Uint8Array(1024);
  client.write(new TextEncoder().encode("hello from the client"));
  pump(client, server);
  console.log(`server read: ${new TextDecoder().decode(buf.subarray(0, server.read(buf) ?? 0))}`);
  server.write(new TextEncoder().encode("hello from the server"));
  server.closeWrite();
  pump(server, client);
  console.log(`client read: ${new TextDecoder().decode(buf.subarray(0, client.read(buf) ?? 0))}`);
  console.log(`client read after close_notify: ${client.read(buf)} (clean end of stream)`);
} finally {
  pki.remove();
}
