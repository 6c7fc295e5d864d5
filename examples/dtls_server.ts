/**
 * A DTLS echo server on `listenDtls()`: each datagram a client sends comes back as it is. Prints
 * one line per client (address, protocol, cipher, PSK identity or client certificate).
 *
 *   deno run --allow-all examples/dtls_server.ts --cert chain.pem --key server.key
 *   deno run --allow-all examples/dtls_server.ts --psk-file keys.psk --psk-hint coap
 *   bun examples/dtls_server.ts ...   /   node examples/dtls_server.ts ...
 *
 * Try it with `openssl s_client -dtls1_2 -connect 127.0.0.1:4433 -CAfile ca.pem`, `gnutls-cli
 * --udp -p 4433 127.0.0.1`, or `examples/dtls_client.ts`.
 *
 * Flags: --port N (default 4433; 0 picks a free one), --hostname H (default 127.0.0.1),
 * --cert FILE --key FILE, --psk-file FILE [--psk-hint HINT] (pre-shared keys: `identity:hexkey`
 * lines, as `psktool` and `gnutls-serv --pskpasswd` write them; `#` lines are comments), --mtu N,
 * --max-connections N, --idle-timeout MS, --once (serve one client, then exit), --help.
 *
 * Ctrl-C (SIGINT) or SIGTERM closes the listener (close_notify to each client) and exits 0.
 * Exit codes: 0 done, 1 error (bad certificate, key or PSK file, port taken), 2 usage.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { type DtlsConnection, type DtlsListenOptions, listenDtls, TlsError } from "../mod.ts";

const USAGE = `usage: dtls_server.ts (--cert FILE --key FILE | --psk-file FILE [--psk-hint HINT])
       [--port N] [--hostname H] [--mtu N] [--max-connections N] [--idle-timeout MS] [--once]`;

function usage(message?: string): never {
  if (message !== undefined) console.error(`dtls_server: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

/** `identity:hexkey` lines (psktool's format); `#` lines and blank lines are skipped. */
function readPskFile(file: string): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  readFileSync(file, "utf8").split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([^:]+):((?:[0-9a-fA-F]{2})+)$/.exec(line);
    if (m === null) throw new Error(`${file}:${i + 1}: expected identity:hexkey`);
    if (!keys.has(m[1]!)) {
      keys.set(
        m[1]!,
        Uint8Array.from(m[2]!.match(/../g)!, (b) => parseInt(b, 16)),
      );
    }
  });
  if (keys.size === 0) throw new Error(`${file}: no keys`);
  return keys;
}

const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(USAGE);
  process.exit(0);
}
const options: DtlsListenOptions = { hostname: "127.0.0.1", port: 4433 };
let once = false;
let pskFile: string | null = null;
for (let i = 0; i < args.length; i++) {
  const flag = args[i]!;
  const value = () => args[++i] ?? usage(`${flag} needs a value`);
  switch (flag) {
    case "--port":
      options.port = Number(value());
      break;
    case "--hostname":
      options.hostname = value();
      break;
    case "--cert":
      options.cert = readFileSync(value(), "utf8");
      break;
    case "--key":
      options.key = readFileSync(value(), "utf8");
      break;
    case "--psk-file":
      pskFile = value();
      break;
    case "--psk-hint":
      options.pskIdentityHint = value();
      break;
    case "--mtu":
      options.mtu = Number(value());
      break;
    case "--max-connections":
      options.maxConnections = Number(value());
      break;
    case "--idle-timeout":
      options.idleTimeout = Number(value());
      break;
    case "--once":
      once = true;
      break;
    default:
      usage(`unknown flag ${flag}`);
  }
}
if (options.cert === undefined && pskFile === null) usage("give --cert and --key, or --psk-file");

try {
  if (pskFile !== null) {
    const keys = readPskFile(pskFile);
    options.psk = (identity) => (typeof identity === "string" ? keys.get(identity) ?? null : null);
  }
  options.onError = (error, { remoteAddr }) =>
    console.error(`${remoteAddr.hostname}:${remoteAddr.port}: ${error.code}: ${error.message}`);
  const server = await listenDtls(options);
  console.log(`listening on udp ${server.addr.hostname}:${server.addr.port}`);
  const stop = () => void server.close().then(() => process.exit(0));
  // Deno's node:process does not deliver SIGTERM to process.on: use its own signal API there.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    if (typeof Deno !== "undefined" && !("Bun" in globalThis)) Deno.addSignalListener(signal, stop);
    else process.on(signal, stop);
  }
  const serve = async (conn: DtlsConnection) => {
    for (let d = await conn.receive(); d !== null; d = await conn.receive()) conn.send(d);
    await conn.close();
  };
  for await (const conn of server) {
    const who = conn.pskIdentity !== null
      ? `psk ${String(conn.pskIdentity)}`
      : `client cert ${conn.peerCertificate?.subject ?? "none"}`;
    console.log(
      `${conn.remoteAddr.hostname}:${conn.remoteAddr.port} ${conn.protocol} ${conn.cipher} ${who}`,
    );
    const served = serve(conn).catch((error) => {
      console.error(`${conn.remoteAddr.port}: ${(error as Error).message}`);
      conn.close();
    });
    if (once) {
      await served;
      await server.close();
      process.exit(0);
    }
  }
} catch (error) {
  const e = error as Error;
  console.error(`dtls_server: ${error instanceof TlsError ? `${error.code}: ` : ""}${e.message}`);
  process.exit(1);
}
