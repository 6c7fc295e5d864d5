/**
 * An HTTPS server: `node:http` and `node:http2` over this library's `listen()` (`serveHttp()`),
 * so that client-certificate verification, `onServerName`, PSK or OCSP stapling serve ordinary
 * HTTP clients. HTTP/2 and HTTP/1.1 are picked by ALPN.
 *
 *   deno run --allow-all examples/https_server.ts          # the embedded demo (see below)
 *   deno run --allow-all examples/https_server.ts --port 8443 --cert server.pem --key server.key
 *   deno run --allow-all examples/https_server.ts --port 8443 --cert c.pem --key k.pem --ca ca.pem
 *   bun examples/https_server.ts ...  /  node examples/https_server.ts ...   # the same
 *
 * Flags: --port N (default 8443), --hostname ADDR (default 127.0.0.1), --cert FILE --key FILE
 * (the server's chain and key), --ca FILE (require client certificates issued by this CA).
 * Serves until Ctrl-C. Exit codes: 0 done, 1 error, 2 usage.
 *
 * With no arguments: makes a throwaway PKI in a temp dir, serves with client certificates
 * required on a free port, fetches `/` with `curl` over HTTP/1.1 and HTTP/2 with a client
 * certificate, prints the answers, and exits.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import process from "node:process";
import { listen, type NodeTlsSocket, serveHttp } from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

/** What the server answers: the protocol and who the client is. */
function greeting(socket: NodeTlsSocket, version: string): string {
  const cert = socket.getPeerCertificate();
  const who = cert !== null && "subject" in cert ? `CN=${cert.subject.CN}` : "no certificate";
  return `hello over HTTP/${version} (${socket.getProtocol()}, ALPN ${socket.alpnProtocol}), ` +
    `client: ${who}\n`;
}

/** Node.js runs HTTP/2 over a non-native socket through a wrapper whose `stream` is ours. */
function socketOf(session: http2.Http2Session): NodeTlsSocket {
  const socket = session.socket as unknown as { stream?: unknown };
  return (socket.stream ?? socket) as NodeTlsSocket;
}

interface ServeOptions {
  hostname: string;
  port: number;
  cert: string;
  key: string;
  ca?: string;
}

/** Starts the servers; returns the port and a function that stops everything. */
function start(options: ServeOptions): { port: number; stop: () => Promise<void> } {
  const h1 = http.createServer((req, res) => {
    res.end(greeting(req.socket as unknown as NodeTlsSocket, req.httpVersion));
  });
  const h2 = http2.createServer();
  h2.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "text/plain" });
    stream.end(greeting(socketOf(stream.session!), "2"));
  });
  const listener = listen({
    hostname: options.hostname,
    port: options.port,
    cert: options.cert,
    key: options.key,
    alpnProtocols: ["h2", "http/1.1"],
    ...(options.ca === undefined ? {} : { caCerts: [options.ca], requestClientCert: "require" }),
    onError: (error, { remoteAddr }) =>
      console.error(`handshake with ${remoteAddr?.hostname ?? "?"} failed: ${error.message}`),
  });
  const serving = serveHttp(listener, (conn) => conn.alpnProtocol === "h2" ? h2 : h1);
  return {
    port: listener.addr.port,
    stop: async () => {
      listener.close();
      h1.closeAllConnections();
      await new Promise((resolve) => h1.close(resolve));
      await new Promise((resolve) => h2.close(resolve));
      await serving;
    },
  };
}

async function demo(): Promise<void> {
  using pki = DemoPki.temporary("libssl-ffi-https-");
  const ca = pki.rootCa("ca", "Demo Root CA");
  const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  const client = pki.issue("alice", { commonName: "alice", issuer: ca, usage: "client" });
  const read = (path: string) => readFileSync(path, "utf8");
  const { port, stop } = start({
    hostname: "127.0.0.1",
    port: 0,
    cert: read(server.cert),
    key: read(server.key),
    ca: read(ca.cert),
  });
  console.log(`serving https://localhost:${port}/ (client certificates required)`);
  try {
    for (const version of ["--http1.1", "--http2"]) {
      // curl runs in the background: this process serves it meanwhile.
      const answer = await new Promise<string>((resolve, reject) => {
        execFile(
          "curl",
          [
            "-sS",
            version,
            "--cacert",
            ca.cert,
            "--cert",
            client.cert,
            "--key",
            client.key,
            `https://localhost:${port}/`,
          ],
          (error, stdout) => (error ? reject(error) : resolve(stdout)),
        );
      });
      console.log(`curl ${version}: ${answer.trim()}`);
    }
  } finally {
    await stop();
  }
}

function usage(message: string): never {
  console.error(
    `${message}\nusage: https_server.ts [--port N] [--hostname ADDR] ` +
      "--cert FILE --key FILE [--ca FILE]",
  );
  process.exit(2);
}

async function main(args: string[]): Promise<void> {
  if (args.length === 0) return demo();
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]!;
    const value = args[i + 1];
    if (!["--port", "--hostname", "--cert", "--key", "--ca"].includes(flag)) {
      usage(`unknown flag ${flag}`);
    }
    if (value === undefined) usage(`${flag} needs a value`);
    flags[flag.slice(2)] = value;
  }
  if (flags.cert === undefined || flags.key === undefined) usage("--cert and --key are required");
  const port = Number(flags.port ?? "8443");
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port ${flags.port}`);
  const { port: bound, stop } = start({
    hostname: flags.hostname ?? "127.0.0.1",
    port,
    cert: readFileSync(flags.cert, "utf8"),
    key: readFileSync(flags.key, "utf8"),
    ...(flags.ca === undefined ? {} : { ca: readFileSync(flags.ca, "utf8") }),
  });
  console.log(`serving https://${flags.hostname ?? "127.0.0.1"}:${bound}/ (Ctrl-C stops)`);
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  await stop();
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`error: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
