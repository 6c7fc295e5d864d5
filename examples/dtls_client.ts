/**
 * A friendly `openssl s_client -dtls`: connects to a DTLS server over UDP, prints what was
 * negotiated, sends each line of stdin as one datagram and prints each datagram received.
 *
 *   deno run --allow-all examples/dtls_client.ts 127.0.0.1:4433 --ca ca.pem --servername localhost
 *   deno run --allow-all examples/dtls_client.ts 127.0.0.1:5684 --psk device-1:00112233...
 *   bun examples/dtls_client.ts ...                                   # the same on Bun
 *   node examples/dtls_client.ts ...                                  # and Node.js 24+
 *
 * Flags: --ca FILE (trusted CAs; default: the system store), --servername NAME (default: the
 * host), --cert FILE --key FILE (a client certificate, if the server asks), --psk ID:HEXKEY (a
 * pre-shared key instead of certificates), --mtu N (UDP payload limit, default 1200),
 * --alpn LIST, --send TEXT (send one datagram, print the first reply, then close and exit),
 * --timeout MS (handshake timeout, default 10000), --help.
 *
 * Exit codes: 0 done, 1 error (handshake failed, timeout), 2 usage.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { connectDtls, type DtlsConnectOptions, TlsError } from "../mod.ts";

const USAGE =
  `usage: dtls_client.ts HOST:PORT [--ca FILE] [--servername NAME] [--cert FILE --key FILE]
       [--psk ID:HEXKEY] [--mtu N] [--alpn a,b] [--send TEXT] [--timeout MS]`;

function usage(message?: string): never {
  if (message !== undefined) console.error(`dtls_client: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

function fromHex(hex: string): Uint8Array {
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) usage("the PSK key must be hex digits");
  return Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
}

const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(USAGE);
  process.exit(0);
}
const target = args.shift();
if (target === undefined || target.startsWith("--")) usage("HOST:PORT is missing");
const colon = target.lastIndexOf(":");
const hostname = target.slice(0, colon).replace(/^\[|\]$/g, "");
const port = Number(target.slice(colon + 1));
if (colon < 1 || !Number.isInteger(port)) usage(`bad target ${target}`);

const options: DtlsConnectOptions = { hostname, port, handshakeTimeout: 10_000 };
let sendOne: string | null = null;
for (let i = 0; i < args.length; i++) {
  const flag = args[i]!;
  const value = () => args[++i] ?? usage(`${flag} needs a value`);
  switch (flag) {
    case "--ca":
      options.caCerts = [readFileSync(value(), "utf8")];
      break;
    case "--servername":
      options.servername = value();
      break;
    case "--cert":
      options.cert = readFileSync(value(), "utf8");
      break;
    case "--key":
      options.key = readFileSync(value(), "utf8");
      break;
    case "--psk": {
      const v = value();
      const at = v.indexOf(":");
      if (at < 1) usage("--psk takes ID:HEXKEY");
      options.psk = { identity: v.slice(0, at), key: fromHex(v.slice(at + 1)) };
      break;
    }
    case "--mtu":
      options.mtu = Number(value());
      break;
    case "--alpn":
      options.alpnProtocols = value().split(",");
      break;
    case "--send":
      sendOne = value();
      break;
    case "--timeout":
      options.handshakeTimeout = Number(value());
      break;
    default:
      usage(`unknown flag ${flag}`);
  }
}

const decoder = new TextDecoder();
try {
  const conn = await connectDtls(options);
  const who = conn.pskIdentity !== null
    ? `psk identity ${String(conn.pskIdentity)}`
    : `peer ${conn.peerCertificate?.subject ?? "(no certificate)"}`;
  console.log(
    `connected to ${conn.remoteAddr.hostname}:${conn.remoteAddr.port}: ${conn.protocol} ` +
      `${conn.cipher}, ${who}, alpn ${conn.alpnProtocol ?? "none"}, ` +
      `max datagram ${conn.maxDatagramSize} bytes`,
  );
  if (sendOne !== null) {
    conn.send(new TextEncoder().encode(sendOne));
    const reply = await conn.receive();
    console.log(reply === null ? "(closed by the server)" : `received: ${decoder.decode(reply)}`);
    await conn.close(); // the close_notify leaves before the process ends
    process.exit(0);
  }
  (async () => {
    for (let d = await conn.receive(); d !== null; d = await conn.receive()) {
      console.log(`received: ${decoder.decode(d)}`);
    }
    console.log("(closed by the server)");
    process.exit(0);
  })().catch((error) => {
    if (error instanceof TlsError && error.code === "CLOSED") return; // our own close, below
    console.error(`dtls_client: ${error instanceof TlsError ? error.code : ""} ${error.message}`);
    process.exit(1);
  });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) conn.send(new TextEncoder().encode(line));
  await conn.close();
  process.exit(0);
} catch (error) {
  const e = error as Error;
  console.error(`dtls_client: ${error instanceof TlsError ? `${error.code}: ` : ""}${e.message}`);
  process.exit(1);
}
