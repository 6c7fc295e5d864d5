/**
 * Keying material, channel binding and key updates, with our own server and client on loopback:
 * both sides export the same keying material and the same `tls-exporter` binding (what SCRAM's
 * `-PLUS` mechanisms send to prove both ends see the same TLS connection), the client updates
 * the keys (asking the server to update its own too), and data flows both ways under the new
 * keys. Also prints the signature scheme the server signed with.
 *
 *   deno run --allow-ffi --allow-env --allow-read --allow-write --allow-run --allow-net examples/channel_binding.ts
 *   bun examples/channel_binding.ts
 *   node examples/channel_binding.ts
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { connect, type HandshakeEvent, listen } from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const keyUpdates = (who: string) => (e: HandshakeEvent) => {
  if (e.type !== "keyUpdate") return;
  const what = e.keyUpdate!.sent
    ? `sent a KeyUpdate${e.keyUpdate!.requestPeer ? " (update requested)" : ""}`
    : "read a KeyUpdate";
  console.log(`  ${who} ${what}`);
};

const pki = DemoPki.temporary("libssl-ffi-binding-");
try {
  const ca = pki.rootCa("ca", "Demo CA");
  const leaf = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  const read = (path: string) => readFileSync(path, "utf8");

  await using server = listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: read(leaf.cert),
    key: read(leaf.key),
    onHandshakeEvent: keyUpdates("server"),
  });
  const accepted = server.accept();
  await using client = await connect({
    hostname: "127.0.0.1",
    servername: "localhost",
    port: server.addr.port,
    caCerts: [read(ca.cert)],
    onHandshakeEvent: keyUpdates("client"),
  });
  await using conn = await accepted;
  await conn.handshake();
  console.log(`${client.protocol} ${client.cipher}, signed with ${client.peerSignatureAlgorithm}`);

  const label = "EXPORTER-example";
  const ours = hex(client.exportKeyingMaterial(32, label));
  const theirs = hex(conn.exportKeyingMaterial(32, label));
  console.log(`keying material: ${ours === theirs ? "equal" : "DIFFERENT"} (${ours})`);
  const binding = hex(client.channelBinding("tls-exporter"));
  const serverBinding = hex(conn.channelBinding("tls-exporter"));
  console.log(`tls-exporter: ${binding === serverBinding ? "equal" : "DIFFERENT"} (${binding})`);

  console.log("key update:");
  await client.updateKeys({ requestPeer: true });
  const buf = new Uint8Array(100);
  await client.write(new TextEncoder().encode("ping"));
  const n = (await conn.read(buf)) ?? 0;
  await conn.write(buf.slice(0, n)); // the server's answer goes out first
  const m = (await client.read(buf)) ?? 0;
  console.log(`echo after the update: ${new TextDecoder().decode(buf.subarray(0, m))}`);
} finally {
  pki.remove();
}
