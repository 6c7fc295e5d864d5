/**
 * A friendly `openssl s_client` / curl: connects with libssl-ffi, prints what was negotiated and
 * the verified chain, sends an HTTP request and prints the response.
 *
 *   deno run --allow-all examples/client.ts                 # the embedded demo (see below)
 *   deno run --allow-all examples/client.ts https://example.com/
 *   deno run --allow-all examples/client.ts localhost:8443 --ca ca.pem --alpn h2,http/1.1
 *   deno run --allow-all examples/client.ts 127.0.0.1:4433 --psk 1a2b... --psk-identity dev-17
 *   bun examples/client.ts ...                              # the same on Bun
 *
 * Flags: --ca FILE (repeatable), --servername NAME, --alpn LIST, --cert FILE --key FILE [--pass P],
 * --pfx FILE [--pass P] (a PKCS#12 client identity), --crl FILE (repeatable) --crl-check leaf|chain
 * (revocation by CRL), --identity DIR (pick a client identity by the server's acceptable CAs),
 * --trace, --keylog FILE,
 * --pin SHA256, --tls1.2 / --tls1.3 (only that version), --groups LIST (key exchange groups, e.g.
 * X25519MLKEM768,X25519), --insecure (no verification: UNSAFE),
 * --ocsp request|require|off (OCSP stapling; default request), --psk HEX --psk-identity ID (a
 * pre-shared key instead of certificates), --request TEXT, --reconnect (a second connection
 * resuming the first one's session), --timeout MS. Exit codes: 0 done, 1
 * error (TLS, network, unreadable file), 2 usage.
 *
 * The report includes the server's OCSP staple (verified by the library): its status and validity
 * window, or "no OCSP staple". A staple saying "revoked" fails the connection with CERT_REVOKED,
 * printed with the revocation time and reason.
 *
 * With no arguments: makes a throwaway PKI with the `openssl` CLI in a temp dir, starts a local
 * `openssl s_server -www` that demands a client certificate from one of two client CAs and
 * staples a "good" OCSP response (made with `openssl ocsp` from the demo's index), connects to it
 * with two identities (the callback picks the one the server accepts) and `ocsp: "require"`,
 * prints the full report; then connects to a second s_server whose certificate is revoked
 * (keyCompromise) and staples so, and shows the refusal; last, connects with a pre-shared key to
 * a third s_server that has no certificate at all (`-nocert -psk`, TLS 1.3). Cleans up, even on
 * error or Ctrl-C.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import process from "node:process";
import {
  Certificate,
  connect,
  type ConnectOptions,
  matchesAcceptableIssuers,
  type OcspMode,
  type OcspResponse,
  opensslVersion,
  type PemIdentity,
  TlsError,
} from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

const USAGE = `usage: client.ts [host:port | https://host[:port]/path] [flags]
  --ca FILE          trust this CA (PEM; repeatable). Default: the system trust store
  --servername NAME  SNI and the name verified (default: the host)
  --alpn LIST        offer these ALPN protocols, e.g. h2,http/1.1
  --cert FILE --key FILE [--pass PASSPHRASE]   a client certificate
  --pfx FILE [--pass PASSPHRASE]               a client certificate from a PKCS#12 file
  --crl FILE         check the server's chain against this CRL (PEM or DER; repeatable)
  --crl-check MODE   leaf (only the server's certificate) or chain (default with --crl: every
                     CA of the chain needs its CRL)
  --tls1.2 | --tls1.3  only that protocol version
  --groups LIST      key exchange groups, most preferred first, e.g. X25519MLKEM768,X25519
                     (default: OpenSSL's; 3.5+ prefers the post-quantum hybrid X25519MLKEM768)
  --identity DIR     client identities NAME.pem + NAME.key: the one the server's CAs accept is sent
  --trace            print the handshake as OpenSSL walks through it
  --keylog FILE      append TLS secrets (NSS key log format, for Wireshark; SSLKEYLOGFILE works too)
  --pin SHA256       accept the server whose leaf has this SHA-256 fingerprint, trusted or not
  --insecure         do not verify the server (UNSAFE)
  --ocsp MODE        OCSP stapling: request (default: ask, verify a staple if one comes),
                     require (fail without a valid staple), off (do not ask)
  --psk HEX --psk-identity ID
                     authenticate with this pre-shared key (hex, e.g. from openssl rand -hex 32)
                     and identity: no certificates needed (TLS 1.3 external PSK; TLS 1.2 PSK
                     suites with --tls1.2). A server with a certificate is still verified
  --request TEXT     send TEXT instead of an HTTP GET (\\r\\n escapes allowed)
  --reconnect        then connect again with the session the server issued (resumption)
  --timeout MS       handshake timeout (default 30000)
With no arguments: a self-contained demo against local openssl s_servers (client certificate
selection, a good OCSP staple, a revoked one refused, a certificate-less PSK server).
Exit codes: 0 done, 1 error, 2 usage.`;

/** A command-line mistake: exit code 2. */
class UsageError extends Error {}

/** `HEX` as bytes; a {@link UsageError} naming `flag` unless it is an even number of hex digits. */
function parseHex(flag: string, text: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text)) {
    throw new UsageError(
      `${flag} takes the key in hex: an even number of the digits 0-9 a-f, got ${
        JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}...` : text)
      }`,
    );
  }
  return Uint8Array.from(text.match(/../g)!, (h) => parseInt(h, 16));
}

/** A PSK identity as printed: a string as it is, bytes as `#` + hex (the GnuTLS file form). */
function showIdentity(identity: string | Uint8Array): string {
  if (typeof identity === "string") return identity;
  return `#${Array.from(identity, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

interface Target {
  hostname: string;
  port: number;
  path: string;
}

/** `host:port`, `[v6]:port` or an https URL. */
function parseTarget(arg: string): Target {
  if (/^https:\/\//i.test(arg)) {
    const url = new URL(arg);
    return {
      hostname: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port === "" ? 443 : Number(url.port),
      path: `${url.pathname}${url.search}`,
    };
  }
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(arg);
  if (m === null) {
    throw new UsageError(`cannot parse ${JSON.stringify(arg)}: use host:port or https://...`);
  }
  return { hostname: m[1]!, port: Number(m[2]), path: "/" };
}

interface Parsed {
  target: Target | null;
  options: Omit<ConnectOptions, "hostname" | "port">;
  request: string | null;
  /** --identity DIR: NAME.pem (certificate, chain after the leaf) + NAME.key pairs. */
  identities: string | null;
  /** --trace: print the handshake events. */
  trace: boolean;
  /** --keylog FILE: append NSS key log lines. */
  keylog: string | null;
  /** --pin SHA256: accept a server whose leaf has this fingerprint, trusted or not. */
  pin: string | null;
  /** --reconnect: connect a second time with the first connection's session (resumption). */
  reconnect: boolean;
  /** The demo: show only the lines of s_server's status page that are about us. */
  brief?: boolean;
}

const NO_FLAGS = {
  identities: null,
  trace: false,
  keylog: null,
  pin: null,
  reconnect: false,
} as const;

function parseArgs(args: string[]): Parsed {
  const options: Omit<ConnectOptions, "hostname" | "port"> = {};
  const ca: string[] = [];
  let target: Target | null = null;
  let request: string | null = null;
  let identities: string | null = null;
  let trace = false;
  let keylog: string | null = null;
  let pin: string | null = null;
  let reconnect = false;
  let certFile: string | undefined;
  let keyFile: string | undefined;
  const crls: Uint8Array[] = [];
  let pskKey: Uint8Array | undefined;
  let pskIdentity: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case "--ca":
        ca.push(readFileSync(value(), "utf8"));
        break;
      case "--servername":
        options.servername = value();
        break;
      case "--alpn":
        options.alpnProtocols = value().split(",").filter((p) => p !== "");
        break;
      case "--cert":
        certFile = value();
        break;
      case "--key":
        keyFile = value();
        break;
      case "--pass":
        options.passphrase = value();
        break;
      case "--pfx":
        options.pfx = new Uint8Array(readFileSync(value()));
        break;
      case "--crl":
        crls.push(new Uint8Array(readFileSync(value()))); // PEM or DER: bytes either way
        break;
      case "--crl-check": {
        const mode = value();
        if (mode !== "leaf" && mode !== "chain") {
          throw new UsageError(`--crl-check takes leaf or chain, got ${mode}`);
        }
        options.crlCheck = mode;
        break;
      }
      case "--tls1.2":
        options.minVersion = options.maxVersion = "TLSv1.2";
        break;
      case "--tls1.3":
        options.minVersion = options.maxVersion = "TLSv1.3";
        break;
      case "--groups":
        options.groups = value().split(",").filter((g) => g !== "");
        break;
      case "--identity":
        identities = value();
        break;
      case "--trace":
        trace = true;
        break;
      case "--keylog":
        keylog = value();
        break;
      case "--pin":
        pin = value().replaceAll(":", "").toUpperCase();
        if (!/^[0-9A-F]{64}$/.test(pin)) throw new UsageError("--pin takes a SHA-256 fingerprint");
        break;
      case "--insecure":
        options.unsafelyDisableVerification = true;
        break;
      case "--reconnect":
        reconnect = true;
        break;
      case "--request":
        request = value().replaceAll("\\r", "\r").replaceAll("\\n", "\n");
        break;
      case "--psk":
        pskKey = parseHex(arg, value());
        if (pskKey.length > 512) {
          throw new UsageError(`--psk is ${pskKey.length} bytes; OpenSSL takes at most 512`);
        }
        break;
      case "--psk-identity": {
        pskIdentity = value();
        const length = new TextEncoder().encode(pskIdentity).length;
        if (length === 0 || length > 256) {
          throw new UsageError(`--psk-identity takes 1 to 256 bytes, got ${length}`);
        }
        break;
      }
      case "--timeout":
        options.handshakeTimeout = Number(value());
        break;
      case "--ocsp": {
        const mode = value();
        if (mode !== "request" && mode !== "require" && mode !== "off") {
          throw new UsageError(`--ocsp takes request, require or off, got ${mode}`);
        }
        options.ocsp = mode satisfies OcspMode;
        break;
      }
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        if (arg.startsWith("-") || target !== null) {
          throw new UsageError(`unexpected ${arg}\n${USAGE}`);
        }
        target = parseTarget(arg);
    }
  }
  if (ca.length > 0) options.caCerts = ca;
  if (crls.length > 0) options.crls = crls;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if ((pskKey === undefined) !== (pskIdentity === undefined)) {
    throw new UsageError("--psk HEX and --psk-identity ID go together");
  }
  if (pskKey !== undefined && pskIdentity !== undefined) {
    options.psk = { identity: pskIdentity, key: pskKey };
  }
  if (certFile !== undefined && keyFile !== undefined) {
    options.cert = readFileSync(certFile, "utf8");
    options.key = readFileSync(keyFile, "utf8");
  }
  return { target, options, request, identities, trace, keylog, pin, reconnect };
}

function date(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** `2026-01-02T03:04:05Z`: UTC to the second, as OCSP times are. */
function time(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The report lines for a verified OCSP response (`conn.ocspResponse` or `TlsError.ocsp`). */
function describeOcsp(r: OcspResponse): string[] {
  const lines = [
    `${r.status}, valid ${time(r.thisUpdate)} .. ${
      r.nextUpdate === null ? "(no nextUpdate)" : time(r.nextUpdate)
    }`,
  ];
  if (r.status === "revoked") {
    lines.push(
      `revoked at ${r.revocationTime === undefined ? "(unknown time)" : time(r.revocationTime)}, ` +
        `reason ${r.revocationReason ?? "(not given)"}`,
    );
  }
  lines.push(`produced ${time(r.producedAt)} by ${r.responderId}`);
  return lines;
}

const SELF_EXPLAINING = new Set<string>([
  "BAD_PASSPHRASE",
  "INVALID_KEY",
  "INVALID_CERTIFICATE",
  "CERT_VERIFY_FAILED",
  "CERT_REVOKED",
  "OCSP_INVALID",
  "TIMEOUT",
  "NETWORK_ERROR",
]);

/** A TlsError as the lines the command prints (to stderr, or stdout in the demo). */
function describeError(error: TlsError): string[] {
  const lines = [`TLS error ${error.code}: ${error.message}`];
  // The message names the verify error already when there is one; say it once.
  if (
    error.verifyCode !== undefined && !error.message.includes(`verify error ${error.verifyCode}`)
  ) {
    lines.push(`  verify error ${error.verifyCode}`);
  }
  if (error.alert !== undefined) {
    lines.push(`  alert ${error.alert.code} (${error.alert.description})`);
  }
  if (error.ocsp !== undefined) {
    const [first, ...rest] = describeOcsp(error.ocsp);
    lines.push(`  OCSP staple: ${first}`, ...rest.map((l) => `               ${l}`));
  }
  // OpenSSL's own error lines add nothing to errors the message already explains in full (a
  // bad passphrase, a broken certificate, a verification failure): only for the others.
  if (!SELF_EXPLAINING.has(error.code)) {
    for (const e of error.openssl) {
      lines.push(`  ${e.text}`);
    }
  }
  return lines;
}

/** Reads `NAME.pem` + `NAME.key` pairs from a directory. */
function loadIdentities(dir: string): { name: string; identity: PemIdentity }[] {
  const out: { name: string; identity: PemIdentity }[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".pem")) continue;
    const name = file.slice(0, -4);
    const keyFile = join(dir, `${name}.key`);
    try {
      out.push({
        name,
        identity: {
          cert: readFileSync(join(dir, file), "utf8"),
          key: readFileSync(keyFile, "utf8"),
        },
      });
    } catch {
      console.error(`  (skipping ${file}: no ${name}.key beside it)`);
    }
  }
  return out;
}

/** The callbacks the flags ask for. */
function callbacks(parsed: Parsed): Partial<ConnectOptions> {
  const out: Partial<ConnectOptions> = {};
  if (parsed.identities !== null) {
    const identities = loadIdentities(parsed.identities);
    out.onClientCertificate = (request) => {
      const names = request.acceptableIssuers.map((i) => i.name);
      console.log(
        `client certificate requested; acceptable issuers: ${names.join(" | ") || "(any)"}`,
      );
      for (const { name, identity } of identities) {
        if (matchesAcceptableIssuers(identity, request)) {
          const leaf = Certificate.parseAll(identity.cert)[0]!;
          console.log(`  chose "${name}" (${leaf.subject}): issued by ${leaf.issuer}`);
          return identity;
        }
        console.log(`  not "${name}": its chain reaches none of them`);
      }
      console.log("  no identity matches: sending none");
      return null;
    };
  }
  if (parsed.trace) {
    out.onHandshakeEvent = (e) => {
      if (e.type === "exit") return; // "waiting for data" noise
      const alert = e.alert === undefined
        ? ""
        : ` ${e.alert.sent ? "sent" : "received"} ${e.alert.level} alert: ${e.alert.description}`;
      console.log(`  [trace] ${e.type.padEnd(5)} ${e.stateLong}${alert}`);
    };
  }
  if (parsed.keylog !== null) {
    const file = parsed.keylog;
    out.onKeylog = (line) => appendFileSync(file, `${line}\n`, { mode: 0o600 });
  }
  if (parsed.pin !== null) {
    const pin = parsed.pin;
    out.onVerifyCertificate = (info) => {
      if (info.depth !== 0) return true; // the pin alone decides, at the leaf
      const matches = info.certificate.fingerprint256.replaceAll(":", "") === pin;
      if (matches && !info.preverified) {
        console.log(`  pinned leaf accepted despite: ${info.errorMessage}`);
      }
      return matches;
    };
  }
  return out;
}

/** Connects, reports, sends the request, prints the response. */
async function run(target: Target, parsed: Parsed): Promise<void> {
  const started = performance.now();
  const { hostname, port } = target; // (not its path: connect() refuses keys it does not know)
  await using conn = await connect({ ...parsed.options, ...callbacks(parsed), hostname, port });
  const ms = (performance.now() - started).toFixed(1);
  console.log(`connected to ${target.hostname}:${target.port} in ${ms} ms`);
  console.log(`  protocol      ${conn.protocol}`);
  console.log(`  cipher        ${conn.cipher}`);
  console.log(`  group         ${conn.group ?? "(none)"}`);
  console.log(`  ALPN          ${conn.alpnProtocol ?? "(none)"}`);
  const psk = conn.pskIdentity;
  if (psk !== null) {
    console.log(`  PSK identity  ${showIdentity(psk)}`);
  } else if (parsed.options.psk !== undefined) {
    console.log("  PSK identity  (not used: the server authenticated with its certificate)");
  }
  const note = psk !== null && conn.protocol === "TLSv1.3"
    ? " (OpenSSL counts a TLS 1.3 external PSK handshake as one)"
    : "";
  console.log(`  sessionReused ${conn.sessionReused}${note}`);
  const ocsp = conn.ocspResponse;
  if (ocsp === null) {
    const off = parsed.options.ocsp === "off";
    console.log(`  OCSP          no OCSP staple${off ? " (not requested: --ocsp off)" : ""}`);
  } else {
    const [first, ...rest] = describeOcsp(ocsp);
    console.log(`  OCSP          staple ${first}`);
    for (const line of rest) console.log(`                ${line}`);
  }
  const chain = conn.peerCertificateChain;
  if (chain.length === 0 && psk !== null && conn.peerCertificate === null) {
    console.log("  server        authenticated by the pre-shared key (no certificate)");
  } else if (chain.length === 0) {
    console.log("  chain         (not verified: --insecure)");
    const leaf = conn.peerCertificate;
    if (leaf !== null) console.log(`  server cert   ${leaf.subject}`);
  } else {
    console.log("  verified chain (leaf first):");
    chain.forEach((c, i) => {
      console.log(`    ${i}. ${c.subject}`);
      console.log(`       issuer ${c.issuer}`);
      console.log(`       valid ${date(c.notBefore)} .. ${date(c.notAfter)}`);
      if (c.subjectAltNames.length > 0) console.log(`       names ${c.subjectAltNames.join(", ")}`);
      console.log(`       SHA-256 ${c.fingerprint256}`);
    });
  }
  const request = parsed.request ??
    `GET ${target.path} HTTP/1.1\r\nHost: ${target.hostname}\r\nConnection: close\r\n\r\n`;
  await conn.write(new TextEncoder().encode(request));
  console.log(`--- response ---`);
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let page = "";
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    const text = decoder.decode(buf.subarray(0, n), { stream: true });
    if (parsed.brief === true) page += text;
    else process.stdout.write(text);
  }
  if (parsed.brief === true) {
    // s_server -www answers with ~130 lines about itself: its status line, and what it says
    // about the client certificate it got, tell the story.
    const lines = page.split("\n");
    const shown = lines.filter((line, i) =>
      i === 0 || /^Client certificate|^\s+Subject:|^New, TLS/.test(line) ||
      /^no client certificate/i.test(line)
    );
    console.log(shown.map((l) => l.trimEnd()).join("\n"));
    console.log(`(${lines.length - shown.length} more lines of the server's page not shown)`);
  }
  console.log(`\n--- end of stream (close_notify received) ---`);
  if (parsed.reconnect) {
    const session = conn.session; // the newest ticket (TLS 1.3 sends them after the handshake)
    await conn[Symbol.asyncDispose](); // some servers (s_server) serve one connection at a time
    await resume(target, parsed, session);
  }
}

/** --reconnect: a second connection offering the first one's session. */
async function resume(target: Target, parsed: Parsed, session: Uint8Array | null): Promise<void> {
  if (session === null) {
    console.log("reconnect: the server issued no session ticket (or resumption is off)");
    return;
  }
  const started = performance.now();
  await using again = await connect({
    ...parsed.options,
    ...callbacks(parsed),
    hostname: target.hostname,
    port: target.port,
    session,
  });
  const ms = (performance.now() - started).toFixed(1);
  console.log(
    `reconnected in ${ms} ms: ${again.protocol}, sessionReused ${again.sessionReused}` +
      (again.sessionReused ? " (no certificate exchange)" : " (the server refused the session)"),
  );
}

// ---- the embedded demo ----------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The demo's files (paths) and facts. */
interface DemoFiles {
  ca: string;
  cert: string;
  key: string;
  chain: string;
  /** The CA whose client certificates the demo server accepts. */
  clientCa: string;
  /** A directory of identities for `--identity`: `corp.pem`/`corp.key`, `lab.pem`/`lab.key`. */
  identities: string;
  /** A DER OCSP response, signed by the intermediate: `cert` is good. */
  goodStaple: string;
  /** A second `localhost` leaf (and key), revoked in the demo's OCSP index. */
  revokedCert: string;
  revokedKey: string;
  /** A DER OCSP response, signed by the intermediate: `revokedCert` is revoked. */
  revokedStaple: string;
  /** When and why `revokedCert` was revoked (whole seconds, as the index holds it). */
  revokedAt: Date;
  revocationReason: string;
}

/** `YYMMDDHHMMSSZ` (UTCTime), the form of times in an `openssl ca` index. */
function utcTime(d: Date): string {
  return d.toISOString().replace(/[-:T]|\.\d{3}/g, "").slice(2);
}

/**
 * The demo's PKI (EC P-256, openssl CLI, in `pki.dir`): a root, an intermediate and a
 * `localhost` server certificate; two client CAs ("Corp", "Lab"), each with one client
 * identity; a second `localhost` certificate, revoked; an OCSP index of the intermediate's two
 * leaves and, made from it by `openssl ocsp` acting as an offline responder, one OCSP response
 * for each.
 */
function makeDemoFiles(pki: DemoPki): DemoFiles {
  const dir = pki.dir;
  const ca = pki.rootCa("ca", "Demo Root CA");
  const int = pki.issue("int", { commonName: "Demo Intermediate CA", issuer: ca, usage: "ca" });
  const server = pki.issue("server", { commonName: "localhost", issuer: int, usage: "server" });
  const revoked = pki.issue("revoked", { commonName: "localhost", issuer: int, usage: "server" });
  const corpCa = pki.rootCa("corp-ca", "Corp Client CA");
  const labCa = pki.rootCa("lab-ca", "Lab Client CA");
  const clients = {
    corp: pki.issue("corp", { commonName: "alice@corp", issuer: corpCa, usage: "client" }),
    lab: pki.issue("lab", { commonName: "alice@lab", issuer: labCa, usage: "client" }),
  };
  const identities = join(dir, "identities");
  mkdirSync(identities);
  for (const [name, identity] of Object.entries(clients)) {
    writeFileSync(join(identities, `${name}.pem`), readFileSync(identity.cert));
    writeFileSync(join(identities, `${name}.key`), readFileSync(identity.key));
  }
  // The responder's database (`openssl ca` index format): server.pem valid, revoked.pem revoked.
  const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  const revocationReason = "keyCompromise";
  const indexLine = (cert: string, revocation: string) => {
    const out = pki.openssl(
      "x509",
      "-in",
      cert,
      "-noout",
      "-serial",
      "-enddate",
      "-dateopt",
      "iso_8601",
    );
    const serial = /^serial=(\w+)$/m.exec(out)?.[1];
    const notAfter = /^notAfter=(.+)$/m.exec(out)?.[1];
    if (serial === undefined || notAfter === undefined) throw new Error(`openssl x509: ${out}`);
    const expiry = utcTime(new Date(notAfter.replace(" ", "T")));
    const status = revocation === "" ? "V" : "R";
    return `${status}\t${expiry}\t${revocation}\t${serial}\tunknown\t/O=libssl-ffi demo/CN=localhost\n`;
  };
  writeFileSync(
    join(dir, "index.txt"),
    indexLine(server.cert, "") +
      indexLine(revoked.cert, `${utcTime(revokedAt)},${revocationReason}`),
  );
  writeFileSync(join(dir, "index.txt.attr"), "unique_subject = no\n"); // two CN=localhost
  const respond = (cert: string, out: string) =>
    pki.openssl(
      "ocsp",
      "-index",
      "index.txt",
      "-CA",
      int.cert,
      "-rsigner",
      int.cert,
      "-rkey",
      int.key,
      "-issuer",
      int.cert,
      "-cert",
      cert,
      "-no_nonce",
      "-ndays",
      "1",
      "-respout",
      out,
    );
  respond(server.cert, "good.der");
  respond(revoked.cert, "revoked.der");
  return {
    ca: ca.cert,
    cert: server.cert,
    key: server.key,
    chain: int.cert,
    clientCa: labCa.cert,
    identities,
    goodStaple: join(dir, "good.der"),
    revokedCert: revoked.cert,
    revokedKey: revoked.key,
    revokedStaple: join(dir, "revoked.der"),
    revokedAt,
    revocationReason,
  };
}

/** Starts `openssl s_server` with `args` on a free port; resolves with the port once it listens. */
async function startServer(
  args: string[],
  started: (server: ChildProcess) => void,
): Promise<number> {
  const port = await freePort();
  const server = spawn("openssl", ["s_server", "-accept", String(port), "-4", ...args], {
    stdio: ["pipe", "ignore", "ignore"], // stdin stays open: s_server quits at its EOF
  });
  started(server);
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline || server.exitCode !== null) {
      throw new Error("openssl s_server did not start");
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return port;
}

async function demo(): Promise<void> {
  const pki = DemoPki.temporary("libssl-ffi-client-demo-", { organization: "libssl-ffi demo" });
  const servers: ChildProcess[] = [];
  const cleanUp = () => {
    for (const server of servers.splice(0)) server.kill("SIGKILL");
    pki.remove();
  };
  const onSignal = () => {
    cleanUp();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const v = opensslVersion();
    console.log(`libssl-ffi demo: ${v.text} (${v.libssl}) through ${v.runtime}'s FFI`);
    const files = makeDemoFiles(pki);
    const ca = readFileSync(files.ca, "utf8");
    const port = await startServer([
      "-cert",
      files.cert,
      "-key",
      files.key,
      "-cert_chain",
      files.chain,
      "-www",
      "-alpn",
      "http/1.1",
      // Demands a client certificate from the Lab CA (and names that CA in its request).
      "-Verify",
      "1",
      "-verify_return_error",
      "-CAfile",
      files.clientCa,
      // Staples this OCSP response (made by `openssl ocsp` from the demo's index) as it is.
      "-status_file",
      files.goodStaple,
    ], (s) => servers.push(s));
    console.log(`started openssl s_server on 127.0.0.1:${port} (certificates in ${pki.dir})`);
    console.log(`the server demands a client certificate issued by "Lab Client CA";`);
    console.log(`we hold two identities (${files.identities}): corp (Corp CA) and lab (Lab CA)`);
    console.log(`it staples an OCSP response for its certificate; we require one (--ocsp require)`);
    await run({ hostname: "localhost", port, path: "/" }, {
      target: null,
      ...NO_FLAGS,
      options: { caCerts: [ca], alpnProtocols: ["h2", "http/1.1"], ocsp: "require" },
      request: "GET / HTTP/1.0\r\n\r\n",
      identities: files.identities,
      brief: true,
    });

    console.log();
    const revokedPort = await startServer([
      "-cert",
      files.revokedCert,
      "-key",
      files.revokedKey,
      "-cert_chain",
      files.chain,
      "-www",
      "-status_file",
      files.revokedStaple,
    ], (s) => servers.push(s));
    console.log(`started a second openssl s_server on 127.0.0.1:${revokedPort}: its certificate`);
    console.log(
      `was revoked (${files.revocationReason}, at ${time(files.revokedAt)}), and it staples the ` +
        `OCSP response saying so`,
    );
    try {
      await run({ hostname: "localhost", port: revokedPort, path: "/" }, {
        target: null,
        ...NO_FLAGS,
        options: { caCerts: [ca] }, // ocsp: "request", the default, suffices
        request: "GET / HTTP/1.0\r\n\r\n",
      });
      throw new Error("the revoked certificate was accepted");
    } catch (error) {
      if (!(error instanceof TlsError) || error.code !== "CERT_REVOKED") throw error;
      console.log("refused, as it should be:");
      for (const line of describeError(error)) console.log(`  ${line}`);
    }

    console.log();
    // No certificates at all: a TLS 1.3 external PSK, a fresh random one, known to both sides.
    const identity = "demo-device";
    const key = crypto.getRandomValues(new Uint8Array(32));
    const hex = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
    const pskPort = await startServer(
      ["-nocert", "-psk", hex, "-psk_identity", identity, "-rev"],
      (s) => servers.push(s),
    );
    console.log(`started a third openssl s_server on 127.0.0.1:${pskPort}: no certificate, a PSK`);
    console.log(
      `  openssl s_server -nocert -psk ${hex.slice(0, 8)}... -psk_identity ${identity} -rev`,
    );
    console.log(
      `we connect with the same key, as client.ts 127.0.0.1:${pskPort} --psk ${
        hex.slice(0, 8)
      }... ` +
        `--psk-identity ${identity} does (-rev sends lines back reversed)`,
    );
    await run({ hostname: "127.0.0.1", port: pskPort, path: "/" }, {
      target: null,
      ...NO_FLAGS,
      options: { psk: { identity, key } },
      request: "hello over a pre-shared key\nCLOSE\n", // CLOSE: -rev's way to end the session
    });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    cleanUp();
  }
}

// ---- main -----------------------------------------------------------------------------------

let parsed: Parsed | null = null;
try {
  parsed = parseArgs(process.argv.slice(2));
  if (parsed.target === null) await demo();
  else await run(parsed.target, parsed);
} catch (error) {
  if (error instanceof TlsError) {
    for (const line of describeError(error)) console.error(line);
    const psk = parsed?.options.psk;
    if (psk !== undefined && typeof psk !== "function" && error.code !== "NETWORK_ERROR") {
      console.error(
        `  (--psk: does the server know the identity ${
          JSON.stringify(showIdentity(psk.identity))
        } with this key, and a PSK cipher suite for TLS 1.2?)`,
      );
    }
  } else {
    console.error(error instanceof Error ? error.message : String(error));
  }
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
