/**
 * A small HTTPS-like echo server on `listen()`: prints what each client negotiated, answers HTTP
 * requests with a text page describing the connection, and echoes anything else back line by line
 * (for `openssl s_client` / `gnutls-cli`).
 *
 *   deno run --allow-all examples/server.ts --demo                # throwaway PKI, prints commands
 *   deno run --allow-all examples/server.ts --cert chain.pem --key server.key
 *   deno run --allow-all examples/server.ts --cert c.pem --key k.pem --ca clients.pem \
 *     --require-client-cert --alpn http/1.1 --sni other.example=other.pem,other.key
 *   deno run --allow-all examples/server.ts --psk-file keys.psk  # PSK only, no certificate
 *   bun examples/server.ts ...                                    # the same on Bun
 *
 * Flags: --port N (default 8443; 0 picks a free one), --hostname H (default 127.0.0.1),
 * --cert FILE --key FILE [--pass PASSPHRASE], --ca FILE (client CAs), --request-client-cert /
 * --require-client-cert, --sni NAME=CERT,KEY (repeatable), --alpn LIST, --tls1.2 / --tls1.3,
 * --handshake-timeout MS, --ocsp-staple FILE / --ocsp-auto (OCSP stapling), --psk-file FILE
 * [--psk-hint HINT] (pre-shared keys), --once (serve one connection, then exit), --demo, --help.
 *
 * Pre-shared keys: `--psk-file FILE` holds `identity:hexkey` lines, the format of GnuTLS's
 * `psktool` and `gnutls-serv --pskpasswd` (an identity that is not text is written `#` + its
 * bytes in hex, e.g. `#00ff:...`, as GnuTLS 3.7 reads it); blank lines and other lines starting
 * with `#` are ignored; for a repeated identity the first line counts. The file is read once, at
 * start. Clients with a listed identity and its key are accepted (TLS 1.3 external PSK, TLS 1.2
 * PSK suites, with `--psk-hint HINT` as the TLS 1.2 identity hint); without --cert/--key the
 * server is PSK-only, with them it serves both kinds of clients. An unknown identity is refused
 * (reported on stderr). The connection line and the HTTP page then name the identity.
 *
 * OCSP stapling: `--ocsp-staple FILE` staples that DER OCSP response, as it is, to handshakes
 * whose client asks for one (it is checked against --cert's chain at start and a warning printed
 * if it does not verify, but it is stapled anyway). `--ocsp-auto` uses `OcspStapler`: it asks the
 * responder named in the certificate's Authority Information Access extension (--cert must hold
 * the issuer after the leaf) before listening (failure: exit 1), then refreshes in the background
 * and prints failed refreshes to stderr (the last good response stays stapled until it expires).
 * Either way only the --cert certificate gets the staple, not --sni ones.
 *
 * Per connection it prints one line to stdout: the client's address, protocol, cipher, ALPN, SNI
 * name and client certificate. Failed handshakes go to stderr (from `onError`); the server goes
 * on. Each connection is served by its own async task, so a slow client holds up nobody else.
 * If the first bytes look like an HTTP/1 request (`GET `, `POST `, ...), it reads the request
 * head and answers `200 OK` with `Connection: close`, then close_notify; otherwise it echoes
 * bytes until the client closes. It speaks HTTP/1.1 only: do not offer `h2` with `--alpn` to
 * clients that would take it (curl).
 *
 * Ctrl-C (SIGINT) or SIGTERM closes the listener, sends close_notify on open connections and
 * exits with code 0. Exit codes: 0 done, 1 error (bad certificate, key or PSK file, port taken),
 * 2 usage.
 *
 * `--demo` makes a throwaway PKI with the `openssl` CLI in a temp dir (a root CA, a `localhost`
 * server certificate, a `sni.test` certificate served by SNI, a client certificate), serves it
 * with optional client certificates and ALPN http/1.1, prints `curl` and `openssl s_client`
 * command lines to try, and deletes the temp dir on exit.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import {
  Certificate,
  type Connection,
  listen,
  type ListenOptions,
  type NetAddr,
  type OcspResponse,
  OcspStapler,
  opensslVersion,
  parseOcspResponse,
  TlsContext,
  TlsError,
  type TlsVersion,
} from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

const USAGE = `usage: server.ts --cert FILE --key FILE [flags]    (or: server.ts --demo [flags])
       server.ts --psk-file FILE [flags]             (a PSK-only server: no certificate)
  --port N                 TCP port (default 8443; 0 picks a free one and prints it)
  --hostname H             address to listen on (default 127.0.0.1)
  --cert FILE --key FILE   the server's certificate (PEM, chain after the leaf) and key
  --pass PASSPHRASE        passphrase of an encrypted key (also used for --sni keys)
  --ca FILE                CAs whose client certificates are accepted (PEM)
  --request-client-cert    ask clients for a certificate (optional)
  --require-client-cert    refuse clients without a valid certificate
  --sni NAME=CERT,KEY      serve CERT/KEY to clients asking for NAME (repeatable; *.domain ok)
  --alpn LIST              ALPN protocols, most preferred first, e.g. http/1.1
  --tls1.2 | --tls1.3      only that protocol version
  --handshake-timeout MS   time a client has for its handshake (default 30000)
  --ocsp-staple FILE       staple this DER OCSP response (as it is) for --cert
  --ocsp-auto              fetch --cert's OCSP response from its AIA responder before listening
                           (--cert must hold the issuer after the leaf), refresh it in the
                           background, staple it; refresh errors go to stderr
  --psk-file FILE          accept these pre-shared keys: identity:hexkey lines (psktool's
                           format; # comments); with or without --cert/--key
  --psk-hint HINT          the PSK identity hint sent to TLS 1.2 clients
  --once                   serve one connection, then exit
  --demo                   make a throwaway PKI (openssl CLI) and serve with it
  --help                   this text
HTTP requests get a page describing the connection; anything else is echoed back.`;

/** A command-line mistake: exit code 2. */
class UsageError extends Error {}

interface SniEntry {
  name: string;
  certFile: string;
  keyFile: string;
}

interface Config {
  port: number;
  hostname: string;
  certFile: string | null;
  keyFile: string | null;
  passphrase: string | null;
  caFile: string | null;
  clientCert: false | "optional" | "require";
  sni: SniEntry[];
  alpn: string[] | null;
  version: TlsVersion | null;
  handshakeTimeout: number | null;
  ocspStapleFile: string | null;
  ocspAuto: boolean;
  pskFile: string | null;
  pskHint: string | null;
  once: boolean;
  demo: boolean;
  help: boolean;
}

function parseArgs(args: string[]): Config {
  const config: Config = {
    port: 8443,
    hostname: "127.0.0.1",
    certFile: null,
    keyFile: null,
    passphrase: null,
    caFile: null,
    clientCert: false,
    sni: [],
    alpn: null,
    version: null,
    handshakeTimeout: null,
    ocspStapleFile: null,
    ocspAuto: false,
    pskFile: null,
    pskHint: null,
    once: false,
    demo: false,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    const integer = (min: number, max: number) => {
      const text = value();
      const n = Number(text);
      if (!/^\d+$/.test(text) || n < min || n > max) {
        throw new UsageError(`${arg} takes a number from ${min} to ${max}, got ${text}`);
      }
      return n;
    };
    switch (arg) {
      case "--port":
        config.port = integer(0, 65535);
        break;
      case "--hostname":
        config.hostname = value();
        break;
      case "--cert":
        config.certFile = value();
        break;
      case "--key":
        config.keyFile = value();
        break;
      case "--pass":
        config.passphrase = value();
        break;
      case "--ca":
        config.caFile = value();
        break;
      case "--request-client-cert":
        if (config.clientCert !== "require") config.clientCert = "optional";
        break;
      case "--require-client-cert":
        config.clientCert = "require";
        break;
      case "--sni": {
        const spec = value();
        const m = /^([^=]+)=(.+),([^,]+)$/.exec(spec);
        if (m === null) throw new UsageError(`--sni takes NAME=CERT,KEY, got ${spec}`);
        config.sni.push({ name: m[1]!.toLowerCase(), certFile: m[2]!, keyFile: m[3]! });
        break;
      }
      case "--alpn":
        config.alpn = value().split(",").filter((p) => p !== "");
        if (config.alpn.length === 0) throw new UsageError("--alpn needs at least one protocol");
        // It answers in HTTP/1.1 only: agreeing on h2 would leave an h2 client (curl) with a
        // reply it cannot read.
        if (config.alpn.includes("h2")) {
          throw new UsageError(
            "--alpn: this example speaks HTTP/1.1 only, so it must not offer h2 (use --alpn http/1.1)",
          );
        }
        break;
      case "--tls1.2":
        config.version = "TLSv1.2";
        break;
      case "--tls1.3":
        config.version = "TLSv1.3";
        break;
      case "--handshake-timeout":
        config.handshakeTimeout = integer(1, 86_400_000);
        break;
      case "--ocsp-staple":
        config.ocspStapleFile = value();
        break;
      case "--ocsp-auto":
        config.ocspAuto = true;
        break;
      case "--psk-file":
        config.pskFile = value();
        break;
      case "--psk-hint": {
        const hint = value();
        const length = new TextEncoder().encode(hint).length;
        if (hint.includes("\0") || length > 256) {
          throw new UsageError("--psk-hint takes at most 256 bytes, without NUL");
        }
        config.pskHint = hint;
        break;
      }
      case "--once":
        config.once = true;
        break;
      case "--demo":
        config.demo = true;
        break;
      case "-h":
      case "--help":
        config.help = true;
        break;
      default:
        throw new UsageError(`unexpected argument ${arg}`);
    }
  }
  if (config.help) return config;
  if (config.ocspAuto && config.ocspStapleFile !== null) {
    throw new UsageError("--ocsp-staple and --ocsp-auto exclude each other");
  }
  if (config.demo) {
    if (config.certFile !== null || config.keyFile !== null || config.caFile !== null) {
      throw new UsageError("--demo makes its own certificates: drop --cert, --key and --ca");
    }
    if (config.ocspAuto || config.ocspStapleFile !== null) {
      throw new UsageError("--ocsp-staple and --ocsp-auto need --cert, not --demo");
    }
  } else if ((config.certFile === null) !== (config.keyFile === null)) {
    throw new UsageError("--cert FILE and --key FILE go together");
  } else if (config.certFile === null && config.pskFile === null) {
    throw new UsageError(
      "--cert FILE and --key FILE are required (or --psk-file FILE for a PSK-only server, or " +
        "--demo for a throwaway PKI)",
    );
  } else if (config.certFile === null) {
    const needCert = [
      ...(config.ocspAuto ? ["--ocsp-auto"] : []),
      ...(config.ocspStapleFile !== null ? ["--ocsp-staple"] : []),
      ...(config.sni.length > 0 ? ["--sni"] : []),
    ];
    if (needCert.length > 0) {
      throw new UsageError(`${needCert.join(", ")}: a PSK-only server has no certificate`);
    }
  }
  if (config.pskHint !== null && config.pskFile === null) {
    throw new UsageError("--psk-hint needs --psk-file");
  }
  return config;
}

// ---- reporting ----------------------------------------------------------------------------------

function formatAddr(addr: NetAddr | null): string {
  if (addr === null) return "(unknown)";
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function describeError(error: unknown): string {
  if (!(error instanceof TlsError)) return error instanceof Error ? error.message : String(error);
  let text = `${error.code}: ${error.message}`;
  if (error.verifyCode !== undefined) text += ` (verify error ${error.verifyCode})`;
  if (error.alert !== undefined) {
    text += ` (alert ${error.alert.code}, ${error.alert.description})`;
  }
  const reason = error.openssl.at(-1)?.reasonText;
  if (reason !== undefined && reason !== "" && !text.includes(reason)) text += ` [${reason}]`;
  return text;
}

/** `2026-01-02T03:04:05Z`: UTC to the second, as OCSP times are. */
function time(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `good, valid <thisUpdate> .. <nextUpdate>` (and the revocation, if revoked). */
function describeOcsp(r: OcspResponse): string {
  let text = `${r.status}, valid ${time(r.thisUpdate)} .. ${
    r.nextUpdate === null ? "(no nextUpdate)" : time(r.nextUpdate)
  }`;
  if (r.status === "revoked") {
    text += `; REVOKED at ${r.revocationTime === undefined ? "?" : time(r.revocationTime)}` +
      ` (${r.revocationReason ?? "no reason given"})`;
  }
  return text;
}

/** What a connection negotiated, as `label value` pairs. */
function connectionFacts(conn: Connection): [string, string][] {
  const client = conn.peerCertificate;
  const psk = conn.pskIdentity;
  return [
    ["protocol", conn.protocol],
    ["cipher", conn.cipher],
    ["ALPN", conn.alpnProtocol ?? "(none)"],
    ["SNI", conn.servername ?? "(none)"],
    ["client", client === null ? "no client certificate" : client.subject],
    ...(psk === null ? [] : [["PSK", showIdentity(psk)] as [string, string]]),
  ];
}

// ---- pre-shared keys ----------------------------------------------------------------------------

const hexOf = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const HEX_BYTES = /^(?:[0-9a-fA-F]{2})+$/;

function fromHex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!, (h) => parseInt(h, 16));
}

/** A PSK identity as printed: a string as it is, bytes as `#` + hex (the GnuTLS file form). */
function showIdentity(identity: string | Uint8Array): string {
  return typeof identity === "string" ? identity : `#${hexOf(identity)}`;
}

/**
 * A `--psk-file`: `identity:hexkey` lines (GnuTLS `psktool` / `--pskpasswd`), `#hexidentity:hexkey`
 * for an identity given as bytes; blank lines and other `#` lines are comments. Returns the keys
 * by the hex of the identity's bytes (the first line of an identity counts).
 *
 * @throws {Error} `FILE:LINE: what is wrong` (exit 1), or when no identity is listed.
 */
function readPskFile(file: string): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  read(file).split("\n").forEach((raw, i) => {
    const line = raw.trimEnd(); // CRLF files, trailing blanks (GnuTLS drops a trailing space too)
    const where = `${file}:${i + 1}`;
    if (line.trim() === "") return;
    const hexIdentity = /^#([0-9a-fA-F]+):([0-9a-fA-F]+)$/.exec(line);
    if (line.startsWith("#") && (hexIdentity === null || !HEX_BYTES.test(hexIdentity[1]!))) {
      return; // a comment
    }
    const colon = line.indexOf(":");
    if (colon === -1) throw new Error(`${where}: expected identity:hexkey`);
    const identity = hexIdentity === null
      ? new TextEncoder().encode(line.slice(0, colon))
      : fromHex(hexIdentity[1]!);
    const keyText = line.slice(colon + 1);
    if (identity.length === 0 || identity.length > 256) {
      throw new Error(`${where}: the identity must be 1 to 256 bytes, got ${identity.length}`);
    }
    if (!HEX_BYTES.test(keyText)) {
      throw new Error(`${where}: the key must be hex digits, an even number of them`);
    }
    const key = fromHex(keyText);
    if (key.length > 512) throw new Error(`${where}: the key is ${key.length} bytes; at most 512`);
    const id = hexOf(identity);
    if (keys.has(id)) {
      console.error(`warning: ${where}: identity listed again, ignored (the first line counts)`);
      return;
    }
    keys.set(id, key);
  });
  if (keys.size === 0) throw new Error(`${file}: no identity:hexkey line`);
  return keys;
}

// ---- one connection -----------------------------------------------------------------------------

const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"];
const MAX_HEAD = 16 * 1024;
const latin1 = new TextDecoder("latin1");

/** `"http"`, `"echo"`, or `"more"` when the bytes so far could still start an HTTP request. */
function classify(start: Uint8Array): "http" | "echo" | "more" {
  const text = latin1.decode(start.subarray(0, 8));
  let more = false;
  for (const method of HTTP_METHODS) {
    const token = `${method} `;
    if (text.startsWith(token)) return "http";
    if (token.startsWith(text)) more = true;
  }
  return more ? "more" : "echo";
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The end of the request head (after the blank line), or -1. */
function headEnd(bytes: Uint8Array): number {
  const text = latin1.decode(bytes);
  const crlf = text.indexOf("\r\n\r\n");
  if (crlf !== -1) return crlf + 4;
  const lf = text.indexOf("\n\n");
  return lf === -1 ? -1 : lf + 2;
}

async function answerHttp(conn: Connection, received: Uint8Array, buf: Uint8Array): Promise<void> {
  while (headEnd(received) === -1 && received.length <= MAX_HEAD) {
    const n = await conn.read(buf);
    if (n === null) return; // the client gave up before finishing its request
    received = concat(received, buf.subarray(0, n));
  }
  const head = latin1.decode(received.subarray(0, Math.max(0, headEnd(received))));
  const requestLine = head.split(/\r?\n/, 1)[0] ?? "";
  const tooLarge = headEnd(received) === -1;
  const body = tooLarge ? "request head too large\n" : [
    "hello from libssl-ffi (examples/server.ts)",
    `request   ${requestLine}`,
    ...connectionFacts(conn).map(([label, value]) => `${label.padEnd(9)} ${value}`),
    "",
  ].join("\n");
  const bodyBytes = new TextEncoder().encode(body);
  const status = tooLarge ? "431 Request Header Fields Too Large" : "200 OK";
  const response = `HTTP/1.1 ${status}\r\n` +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${bodyBytes.length}\r\n` +
    "Connection: close\r\n\r\n";
  // Head and body in one write: one TLS record (two writes would be two records, and two
  // packets on the wire).
  const headBytes = new TextEncoder().encode(response);
  const withBody = !requestLine.startsWith("HEAD ");
  const out = new Uint8Array(headBytes.length + (withBody ? bodyBytes.length : 0));
  out.set(headBytes);
  if (withBody) out.set(bodyBytes, headBytes.length);
  await conn.write(out);
  await conn.closeWrite(); // close_notify: the response is complete
  // Lingering close: read what the client still sends (a request body, its close_notify) for a
  // moment, so that closing with unread data does not reset the connection under the response.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drain = (async () => {
    while ((await conn.read(buf)) !== null);
  })();
  await Promise.race([drain, new Promise((r) => (timer = setTimeout(r, 2000)))])
    .catch(() => {}) // a client that just disconnects: fine, the response was sent
    .finally(() => clearTimeout(timer));
  drain.catch(() => {}); // still pending if the timer won: fails once the connection closes
}

async function echo(conn: Connection, received: Uint8Array, buf: Uint8Array): Promise<void> {
  if (received.length > 0) await conn.write(received);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    await conn.write(buf.subarray(0, n));
  }
}

/** Serves one handshaken connection: HTTP or echo, decided by its first bytes. */
async function serve(conn: Connection): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  let received: Uint8Array = new Uint8Array(0);
  while (classify(received) === "more") {
    const n = await conn.read(buf);
    if (n === null) break; // closed before saying anything (or mid-way): echo what came
    received = concat(received, buf.subarray(0, n));
  }
  if (classify(received) === "http") await answerHttp(conn, received, buf);
  else await echo(conn, received, buf);
}

// ---- the server ---------------------------------------------------------------------------------

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new Error(`cannot read ${file}: ${error instanceof Error ? error.message : error}`);
  }
}

/** Calls `handler` on SIGINT and SIGTERM; returns a function that removes it. */
function onShutdownSignal(handler: () => void): () => void {
  const signals = ["SIGINT", "SIGTERM"] as const;
  if (typeof Deno !== "undefined" && !("Bun" in globalThis)) {
    for (const s of signals) Deno.addSignalListener(s, handler);
    return () => signals.forEach((s) => Deno.removeSignalListener(s, handler));
  }
  for (const s of signals) process.on(s, handler);
  return () => signals.forEach((s) => process.off(s, handler));
}

/**
 * `--ocsp-staple FILE`: the file's bytes, stapled as they are to clients that ask, if they are
 * about the certificate served (the library staples nothing else). They are checked against the
 * certificate's chain first, for the operator's information.
 */
function stapleFromFile(file: string, certPem: string): Uint8Array {
  let der: Uint8Array;
  try {
    der = new Uint8Array(readFileSync(file));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${error instanceof Error ? error.message : error}`);
  }
  if (der.length === 0) throw new Error(`${file} is empty: not an OCSP response`);
  const [leaf, issuer] = Certificate.parseAll(certPem);
  if (issuer === undefined) {
    console.log(`OCSP staple ${file}: not checked (--cert holds no issuer after the leaf)`);
    return der;
  }
  try {
    const response = parseOcspResponse(der, { certificate: leaf!, issuer });
    console.log(`OCSP staple ${file}: ${describeOcsp(response)}`);
  } catch (error) {
    console.error(
      `warning: OCSP staple ${file}: ${describeError(error)}; clients that check will refuse it ` +
        "(and one about another certificate is not stapled at all)",
    );
  }
  return der;
}

/** `--ocsp-auto`: an `OcspStapler` with its first response (or the error: exit 1). */
async function startStapler(certPem: string): Promise<OcspStapler> {
  const stapler = new OcspStapler({
    certificate: certPem,
    onError: (error) => {
      console.error(
        `OCSP refresh failed (the last good response is stapled until it expires): ${
          describeError(error)
        }`,
      );
    },
  });
  try {
    const first = await stapler.start();
    console.log(`OCSP response from ${stapler.responderUrl}: ${describeOcsp(first)}`);
    return stapler;
  } catch (error) {
    stapler.close();
    throw new Error(`--ocsp-auto: ${describeError(error)}`, { cause: error });
  }
}

/** Runs the server until a signal (or, with --once, until its first connection is served). */
async function run(config: Config, demoHint: ((port: number) => void) | null): Promise<void> {
  const passphrase = config.passphrase === null ? {} : { passphrase: config.passphrase };
  // One server context per SNI name, parsed once: the callback hands it out per handshake.
  const sniContexts = new Map<string, TlsContext>();
  let stapler: OcspStapler | null = null;
  try {
    for (const entry of config.sni) {
      sniContexts.set(
        entry.name,
        new TlsContext("server", {
          cert: read(entry.certFile),
          key: read(entry.keyFile),
          ...passphrase,
        }),
      );
    }
    const cert = config.certFile === null ? null : read(config.certFile);
    const options: ListenOptions = {
      hostname: config.hostname,
      port: config.port,
      ...(cert === null ? {} : { cert, key: read(config.keyFile!), ...passphrase }),
      onError: (error, { remoteAddr }) => {
        console.error(`handshake failed from ${formatAddr(remoteAddr)}: ${describeError(error)}`);
      },
    };
    if (config.caFile !== null) options.caCerts = [read(config.caFile)];
    if (config.clientCert !== false) options.requestClientCert = config.clientCert;
    if (config.alpn !== null) options.alpnProtocols = config.alpn;
    if (config.version !== null) options.minVersion = options.maxVersion = config.version;
    if (config.handshakeTimeout !== null) options.handshakeTimeout = config.handshakeTimeout;
    let pskKeys: Map<string, Uint8Array> | null = null;
    if (config.pskFile !== null) {
      const keys = pskKeys = readPskFile(config.pskFile);
      const encoder = new TextEncoder();
      // The library hands over a text identity as a string, any other as bytes.
      options.psk = (identity) =>
        keys.get(hexOf(typeof identity === "string" ? encoder.encode(identity) : identity)) ??
          null; // null: unknown identity, refused
      if (config.pskHint !== null) options.pskIdentityHint = config.pskHint;
    }
    let stapling: string | null = null;
    if (config.ocspStapleFile !== null || config.ocspAuto) {
      let staple: () => Uint8Array | null;
      if (cert === null) throw new UsageError("OCSP stapling needs --cert"); // parseArgs checks
      if (config.ocspAuto) {
        stapler = await startStapler(cert);
        staple = stapler.staple;
        stapling = `OCSP stapling from ${stapler.responderUrl}`;
      } else {
        const der = stapleFromFile(config.ocspStapleFile!, cert);
        staple = () => der;
        stapling = `OCSP stapling ${config.ocspStapleFile}`;
      }
      // The response is about the --cert leaf: staple nothing for --sni certificates.
      const leaf = Certificate.parseAll(cert)[0]!.fingerprint256;
      options.ocspStaple = (request) =>
        request.certificate.fingerprint256 === leaf ? staple() : null;
    }
    if (sniContexts.size > 0) {
      options.onServerName = (name) => {
        const lower = name.toLowerCase();
        const dot = lower.indexOf(".");
        const wildcard = dot === -1 ? undefined : sniContexts.get(`*${lower.slice(dot)}`);
        return sniContexts.get(lower) ?? wildcard ?? null; // null: the default certificate
      };
    }

    const listener = listen(options);
    let addr: NetAddr;
    try {
      addr = listener.addr;
    } catch {
      // Bun reports a bind failure a tick after listen().
      await new Promise((r) => setTimeout(r, 0));
      try {
        addr = listener.addr;
      } catch (error) {
        listener.close();
        throw error;
      }
    }
    const v = opensslVersion();
    console.log(`listening on ${formatAddr(addr)} (${v.text}, ${v.runtime})`);
    const extras = [
      config.version ?? "TLSv1.2-1.3",
      `ALPN ${config.alpn?.join(",") ?? "(none)"}`,
      `client certificates ${
        config.clientCert === false
          ? "not requested"
          : config.clientCert === "require"
          ? "required"
          : "optional"
      }`,
      ...(config.sni.length > 0 ? [`SNI ${config.sni.map((e) => e.name).join(", ")}`] : []),
      ...(stapling === null ? [] : [stapling]),
      ...(pskKeys === null ? [] : [
        `PSK ${pskKeys.size} identit${pskKeys.size === 1 ? "y" : "ies"} from ${config.pskFile}` +
        (config.pskHint === null ? "" : ` (hint ${JSON.stringify(config.pskHint)})`) +
        (cert === null ? ", no certificate (PSK only)" : ""),
      ]),
      ...(config.once ? ["serving one connection"] : []),
    ];
    console.log(`  ${extras.join("; ")}`);
    demoHint?.(addr.port);

    const open = new Set<Connection>();
    const tasks = new Set<Promise<void>>();
    let stopping = false;
    const removeSignalHandler = onShutdownSignal(() => {
      if (stopping) {
        console.error("second signal: exiting now");
        process.exit(130);
      }
      stopping = true;
      console.log(`shutting down (${open.size} open connection(s))`);
      listener.close(); // ends the loop below
    });
    try {
      for await (const conn of listener) {
        const remote = formatAddr(conn.remoteAddr);
        const client = conn.peerCertificate;
        console.log(
          [
            remote,
            conn.protocol,
            conn.cipher,
            `ALPN ${conn.alpnProtocol ?? "(none)"}`,
            `SNI ${conn.servername ?? "(none)"}`,
            client === null ? "no client certificate" : `client ${client.subject}`,
            ...(conn.pskIdentity === null ? [] : [`PSK ${showIdentity(conn.pskIdentity)}`]),
          ].join(" | "),
        );
        open.add(conn);
        const task = serve(conn)
          .catch((error) => {
            if (!stopping) console.error(`connection ${remote} ended: ${describeError(error)}`);
          })
          .finally(async () => {
            await conn[Symbol.asyncDispose](); // close_notify if not sent yet, then close
            open.delete(conn);
            tasks.delete(task);
          });
        tasks.add(task);
        if (config.once) {
          await task;
          break;
        }
      }
    } finally {
      removeSignalHandler();
      await listener[Symbol.asyncDispose]();
      // Connections still open get close_notify (at most 1 s each, in parallel), then close.
      await Promise.all([...open].map((conn) => conn[Symbol.asyncDispose]()));
      await Promise.all(tasks);
      console.log("stopped");
    }
  } finally {
    stapler?.close();
    for (const context of sniContexts.values()) context.close();
  }
}

// ---- the demo -----------------------------------------------------------------------------------

/** The demo's files (paths). */
interface DemoFiles {
  ca: string;
  cert: string;
  key: string;
  sniCert: string;
  sniKey: string;
  clientCert: string;
  clientKey: string;
}

/** A root CA, a `localhost` server, a `sni.test` server and a client certificate (EC P-256). */
function makeDemoCertificates(pki: DemoPki): DemoFiles {
  const ca = pki.rootCa("ca", "Demo Root CA");
  const server = pki.issue("server", { commonName: "localhost", issuer: ca, usage: "server" });
  const sni = pki.issue("sni", { commonName: "sni.test", issuer: ca, usage: "server" });
  const client = pki.issue("client", { commonName: "alice", issuer: ca, usage: "client" });
  return {
    ca: ca.cert,
    cert: server.cert,
    key: server.key,
    sniCert: sni.cert,
    sniKey: sni.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

function demoHint(files: DemoFiles, dir: string): (port: number) => void {
  return (port) => {
    console.log(`demo certificates in ${dir} (deleted on exit); try, in another terminal:`);
    console.log(`  curl --cacert ${files.ca} https://localhost:${port}/`);
    console.log(
      `  curl --cacert ${files.ca} --cert ${files.clientCert} --key ${files.clientKey} ` +
        `https://localhost:${port}/`,
    );
    console.log(
      `  curl --cacert ${files.ca} --resolve sni.test:${port}:127.0.0.1 https://sni.test:${port}/`,
    );
    console.log(
      `  openssl s_client -brief -connect 127.0.0.1:${port} -servername localhost ` +
        `-CAfile ${files.ca}    (type lines: they come back)`,
    );
    console.log("Ctrl-C stops the server.");
  };
}

// ---- main ---------------------------------------------------------------------------------------

async function main(args: string[]): Promise<number> {
  let config: Config;
  try {
    config = parseArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`server.ts: ${error.message}\nrun with --help for the flags`);
    return 2;
  }
  if (config.help) {
    console.log(USAGE);
    return 0;
  }
  if (!config.demo) {
    await run(config, null);
    return 0;
  }
  const pki = DemoPki.temporary("libssl-ffi-server-demo-", {
    organization: "libssl-ffi server demo",
  });
  try {
    const files = makeDemoCertificates(pki);
    config.certFile = files.cert;
    config.keyFile = files.key;
    config.caFile = files.ca;
    if (config.clientCert === false) config.clientCert = "optional";
    config.sni.push({ name: "sni.test", certFile: files.sniCert, keyFile: files.sniKey });
    config.alpn ??= ["http/1.1"];
    await run(config, demoHint(files, pki.dir));
    return 0;
  } finally {
    pki.remove();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`server.ts: ${describeError(error)}`);
  process.exitCode = 1;
}
