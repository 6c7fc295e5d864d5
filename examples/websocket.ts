/**
 * WebSockets over this library: the `ws` package's `WebSocket` client connects through
 * `nodeConnect()` (its `createConnection` option), and its `WebSocketServer` runs on `node:http`
 * served over `listen()` with `serveHttp()`.
 *
 *   deno run --allow-all examples/websocket.ts                      # the embedded demo
 *   deno run --allow-all examples/websocket.ts wss://localhost:8443/chat --ca ca.pem
 *   bun examples/websocket.ts ...  /  node examples/websocket.ts ...  # the same
 *
 * With a URL: connects (verifying the server against --ca FILE, or the system's CAs), sends
 * "hello", prints the first message it gets, closes (code 1000) and exits. Exit codes: 0 done,
 * 1 error, 2 usage.
 *
 * With no arguments: makes a throwaway PKI in a temp dir, starts a wss:// echo server on a free
 * port, connects to it, exchanges messages both ways, closes cleanly, and exits.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import process from "node:process";
import WebSocket, { WebSocketServer } from "ws";
import { listen, nodeConnect, type NodeTlsSocket, serveHttp } from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

/** A `ws` client whose TLS is this library's (`caCerts` as given, or the system's). */
function openClient(url: URL, caCerts: string[] | undefined): WebSocket {
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  return new WebSocket(url, {
    // ws calls it with Node's option names (host, port, servername) and its types expect a
    // net.Socket; the NodeTlsSocket has the same interface.
    createConnection: (() =>
      nodeConnect({
        hostname,
        port: Number(url.port || 443),
        alpnProtocols: ["http/1.1"],
        ...(caCerts === undefined ? {} : { caCerts }),
      })) as unknown as typeof net.createConnection,
  });
}

/** Sends `text`, resolves with the next message. */
function exchange(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once("message", (data) => resolve(String(data)));
    ws.once("error", reject);
    ws.send(text);
  });
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

function closed(ws: WebSocket): Promise<[number, string]> {
  return new Promise((resolve) => ws.once("close", (code, why) => resolve([code, String(why)])));
}

async function demo(): Promise<void> {
  using pki = DemoPki.temporary("libssl-ffi-ws-");
  const ca = pki.rootCa("ca", "Demo Root CA");
  const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  const read = (path: string) => readFileSync(path, "utf8");

  // The server: ws on node:http, over our listener.
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on("connection", (ws, req) => {
    const socket = req.socket as unknown as NodeTlsSocket;
    ws.send(`welcome (${socket.getProtocol()}, ${socket.getCipher()?.name})`);
    ws.on("message", (data) => ws.send(`echo: ${data}`));
  });
  const listener = listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: read(server.cert),
    key: read(server.key),
    alpnProtocols: ["http/1.1"],
  });
  const serving = serveHttp(listener, httpServer);
  const url = new URL(`wss://localhost:${listener.addr.port}/chat`);
  console.log(`server: ${url}`);

  try {
    const ws = openClient(url, [read(ca.cert)]);
    const welcome = new Promise<string>((resolve) => ws.once("message", (d) => resolve(String(d))));
    await opened(ws);
    console.log(`client got: ${await welcome}`);
    for (const text of ["hello", "how are you?"]) {
      console.log(`client sent: ${text}; got: ${await exchange(ws, text)}`);
    }
    const done = closed(ws);
    ws.close(1000, "bye");
    const [code, reason] = await done;
    console.log(`closed: ${code} ${reason}`);
  } finally {
    listener.close();
    wss.close();
    httpServer.closeAllConnections();
    await new Promise((resolve) => httpServer.close(resolve));
    await serving;
  }
}

async function main(args: string[]): Promise<void> {
  if (args.length === 0) return demo();
  let url: URL | undefined;
  let ca: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--ca") {
      const path = args[++i];
      if (path === undefined) usage("--ca needs a file");
      ca = readFileSync(path, "utf8");
    } else if (url === undefined) {
      try {
        url = new URL(arg);
      } catch {
        usage(`not a URL: ${arg}`);
      }
    } else {
      usage(`unexpected argument ${arg}`);
    }
  }
  if (url === undefined || url.protocol !== "wss:") usage("give a wss:// URL");
  const ws = openClient(url, ca === undefined ? undefined : [ca]);
  const first = new Promise<string>((resolve) => ws.once("message", (d) => resolve(String(d))));
  await opened(ws);
  ws.send("hello");
  console.log(`got: ${await first}`);
  const done = closed(ws);
  ws.close(1000, "bye");
  console.log(`closed: ${(await done)[0]}`);
}

function usage(message: string): never {
  console.error(`${message}\nusage: websocket.ts [wss://host:port/path [--ca FILE]]`);
  process.exit(2);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`error: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
