/**
 * Benchmark server: `node:tls` `createServer`, plain JS so that it runs unchanged under Node
 * ("Node tls") and Bun ("Bun node:tls").
 *
 *   node bench/servers/node_tls.mjs <port> <cert-chain.pem> <key.pem>
 *   bun bench/servers/node_tls.mjs <port> <cert-chain.pem> <key.pem>
 *
 * Listens on 127.0.0.1:<port> (0 picks a free port), TLS 1.3 only, prints `LISTENING <port>`,
 * and serves bench/native/server.c's protocol: after the handshake the client sends one line,
 * `BULK <n>\n` (answer: n bytes, then close_notify) or `PING\n` (answer: `PONG\n`, then
 * close_notify); the client closes. Failed connections are logged to stderr.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import process from "node:process";
import tls from "node:tls";

const CHUNK = 256 * 1024;
const bulkData = Buffer.alloc(CHUNK, 0x78); // "x", as server.c sends

const [portArg, certPath, keyPath] = process.argv.slice(2);
if (portArg === undefined || certPath === undefined || keyPath === undefined) {
  console.error("usage: node_tls.mjs <port> <cert-chain.pem> <key.pem>");
  process.exit(2);
}

/**
 * Writes `bytes` bytes of "x" with backpressure, then ends the stream (close_notify, then FIN).
 * @param {tls.TLSSocket} socket
 * @param {number} bytes
 */
function sendBulk(socket, bytes) {
  let left = bytes;
  const more = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      left -= n;
      if (!socket.write(n === CHUNK ? bulkData : bulkData.subarray(0, n))) {
        socket.once("drain", more);
        return;
      }
    }
    socket.end();
  };
  more();
}

/** @param {tls.TLSSocket} socket */
function onConnection(socket) {
  socket.setNoDelay(true);
  let line = "";
  const onData = (/** @type {Buffer} */ chunk) => {
    line += chunk.toString("latin1");
    const nl = line.indexOf("\n");
    if (nl < 0) {
      if (line.length > 256) socket.destroy(new Error("command line too long"));
      return;
    }
    socket.off("data", onData);
    socket.on("data", () => {}); // and wait for the client to close
    const command = line.slice(0, nl);
    if (command.startsWith("BULK ")) {
      sendBulk(socket, Number(command.slice(5)));
    } else if (command === "PING") {
      socket.end("PONG\n");
    } else {
      socket.destroy(new Error(`unknown command ${JSON.stringify(command.slice(0, 40))}`));
    }
  };
  socket.on("data", onData);
  socket.on("end", () => socket.destroy());
  socket.on("error", (error) => {
    // A PING client closes once it has PONG, possibly before our close_notify arrives.
    if (/** @type {NodeJS.ErrnoException} */ (error).code !== "ECONNRESET") {
      console.error(`node_tls server: ${error.message}`);
    }
  });
}

const server = tls.createServer({
  cert: readFileSync(certPath, "utf8"),
  key: readFileSync(keyPath, "utf8"),
  minVersion: "TLSv1.3",
}, onConnection);
server.on(
  "tlsClientError",
  (error) => console.error(`node_tls server: handshake: ${error.message}`),
);
server.listen(Number(portArg), "127.0.0.1", () => {
  const address = server.address();
  console.log(`LISTENING ${typeof address === "object" && address !== null ? address.port : "?"}`);
});
