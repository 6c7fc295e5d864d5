/**
 * The sans-I/O engine, end to end, with no network: a throwaway CA and server certificate made
 * with the `openssl` CLI in a temp dir, a client and a server `TlsEngine` pumping bytes to each
 * other in memory, a JS verify callback running inside the handshake, and a message each way.
 *
 *   deno run --allow-ffi --allow-env --allow-read --allow-write --allow-run examples/engine_demo.ts
 *   bun examples/engine_demo.ts
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { opensslVersion, TlsContext, TlsEngine, type TlsEngine as Engine } from "../mod.ts";

/** Makes a CA and a `localhost` server certificate (EC P-256) in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=Demo CA",
  );
  writeFileSync(
    join(dir, "ext.cnf"),
    "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "ext.cnf",
    "-out",
    "server.pem",
  );
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return { ca: read("ca.pem"), cert: read("server.pem"), key: read("server.key") };
}

/** Moves pending ciphertext from one engine to the other. */
function pump(from: Engine, to: Engine): void {
  const bytes = from.outgoing();
  if (bytes !== null) to.receive(bytes);
}

const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-demo-"));
try {
  const v = opensslVersion();
  console.log(`${v.text} (${v.libssl}) on ${v.runtime}`);
  const pki = makeCertificates(dir);

  using clientContext = new TlsContext("client", {
    caCerts: [pki.ca],
    onVerifyCertificate: (info) => {
      console.log(
        `  verify depth ${info.depth}: ${info.certificate.subject} -> ${info.errorMessage}`,
      );
      return info.preverified;
    },
  });
  using serverContext = new TlsContext("server", { cert: pki.cert, key: pki.key });
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
  rmSync(dir, { recursive: true, force: true });
}
