/**
 * `fetch` with mutual TLS, the client certificate chosen per server from the CAs the server
 * accepts: undici's `fetch` with this library as its TLS (`tlsConnector`), so every callback of
 * the library works inside `fetch` (client-certificate selection, verification and pinning,
 * verified OCSP, PSK).
 *
 *   deno run --allow-all examples/fetch_mtls.ts                  # the embedded demo (below)
 *   deno run --allow-all examples/fetch_mtls.ts https://mtls.example/ --ca ca.pem \
 *     --identity corp.pem:corp.key --identity lab.pem:lab.key [--ocsp require] [--h2]
 *   bun examples/fetch_mtls.ts ...   |   node examples/fetch_mtls.ts ...
 *
 * undici is the user's dependency, not the library's (`npm install undici`). Deno's and Bun's
 * global `fetch` ignore undici's `dispatcher` option: use undici's own `fetch`, as here.
 *
 * With no arguments: makes a throwaway PKI with the `openssl` CLI, starts two local
 * `openssl s_server -www` that demand a client certificate, each from another CA, and fetches
 * from both through one Agent that holds both identities: each server gets the one it accepts.
 * Exit codes: 0 done, 1 error, 2 usage.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import process from "node:process";
// "undici/index.js", not "undici": Bun answers a bare `undici` import with a built-in stand-in
// whose Agent does nothing (its fetch is Bun's own); the file path gets the real package.
import { Agent, fetch } from "undici/index.js";
import {
  Certificate,
  type Identity,
  identityForAcceptableIssuers,
  tlsConnector,
  TlsError,
} from "../mod.ts";
import { DemoPki } from "./demo_pki.ts";

const USAGE = `usage: fetch_mtls.ts [https://host[:port]/path --identity CERT:KEY ... ] [flags]
  --identity CERT:KEY  a client identity (PEM chain and key files; repeatable). The one whose
                       issuer the server accepts is sent.
  --ca FILE            trust this CA (PEM; repeatable). Default: the system trust store
  --ocsp MODE          request (default), require or off
  --h2                 allow HTTP/2 (ALPN h2, http/1.1)`;

interface Args {
  url: string;
  identities: Identity[];
  ca: string[];
  ocsp: "request" | "require" | "off";
  h2: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { url: "", identities: [], ca: [], ocsp: "request", h2: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === "--identity") {
      const [cert, key] = next().split(":");
      if (cert === undefined || key === undefined) throw new RangeError("--identity CERT:KEY");
      args.identities.push({ cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") });
    } else if (a === "--ca") args.ca.push(readFileSync(next(), "utf8"));
    else if (a === "--ocsp") {
      const mode = next();
      if (mode !== "request" && mode !== "require" && mode !== "off") {
        throw new RangeError("--ocsp request|require|off");
      }
      args.ocsp = mode;
    } else if (a === "--h2") args.h2 = true;
    else if (a.startsWith("https://") && args.url === "") args.url = a;
    else throw new RangeError(`unknown argument ${a}`);
  }
  if (args.url === "") throw new RangeError("an https:// URL is needed");
  return args;
}

/** Fetches `url` through `agent` and prints the status and the start of the body. */
async function show(agent: Agent, url: string): Promise<void> {
  const response = await fetch(url, { dispatcher: agent });
  const body = await response.text();
  console.log(`${url} -> ${response.status} (${body.length} bytes)`);
  if (!response.ok) console.log(body.slice(0, 500));
}

/** The Agent: undici's connection pool, with this library doing every TLS handshake. */
function agentFor(args: Omit<Args, "url">): Agent {
  const choose = identityForAcceptableIssuers(args.identities);
  return new Agent({
    allowH2: args.h2,
    connect: tlsConnector({
      ...(args.ca.length > 0 ? { caCerts: args.ca } : {}),
      ocsp: args.ocsp,
      // Called inside the handshake with the CA names the server accepts.
      onClientCertificate: (request) => {
        const identity = choose(request);
        const chosen = identity === null || typeof identity.cert !== "string"
          ? "none"
          : Certificate.fromPem(identity.cert).subject;
        const accepts = request.acceptableIssuers.map((i) => i.name).join("; ") || "any CA";
        console.log(`  server accepts ${accepts} -> sending ${chosen}`);
        return identity;
      },
    }),
  });
}

/** A free TCP port on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const address = s.address();
      s.close(() => typeof address === "object" && address ? resolve(address.port) : reject());
    });
  });
}

/** `openssl s_server -www` demanding a client certificate from `clientCa`, once it listens. */
async function sServer(pki: DemoPki, server: { cert: string; key: string }, clientCa: string) {
  const port = await freePort();
  const child = spawn("openssl", [
    "s_server",
    "-accept",
    `127.0.0.1:${port}`,
    "-cert",
    server.cert,
    "-key",
    server.key,
    "-CAfile",
    clientCa,
    "-Verify",
    "1",
    "-verify_return_error",
    "-www",
    "-quiet",
  ], { cwd: pki.dir, stdio: "ignore" });
  for (let i = 0; i < 250; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) return { port, child };
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill();
  throw new Error("openssl s_server did not start");
}

async function demo(): Promise<void> {
  using pki = DemoPki.temporary("fetch-mtls-demo-", { organization: "fetch_mtls demo" });
  const serverCa = pki.rootCa("server-ca", "Demo Server CA");
  const corpCa = pki.rootCa("corp-ca", "Corp Client CA");
  const labCa = pki.rootCa("lab-ca", "Lab Client CA");
  const server = pki.issue("server", {
    commonName: "localhost",
    issuer: serverCa,
    usage: "server",
  });
  const corp = pki.issue("corp", { commonName: "corp-laptop", issuer: corpCa, usage: "client" });
  const lab = pki.issue("lab", { commonName: "lab-bench", issuer: labCa, usage: "client" });
  const children: ChildProcess[] = [];
  try {
    const corpServer = await sServer(pki, server, corpCa.cert);
    const labServer = await sServer(pki, server, labCa.cert);
    children.push(corpServer.child, labServer.child);
    const agent = agentFor({
      identities: [corp, lab].map((id) => ({
        cert: readFileSync(id.cert, "utf8"),
        key: readFileSync(id.key, "utf8"),
      })),
      ca: [readFileSync(serverCa.cert, "utf8")],
      ocsp: "request",
      h2: false,
    });
    try {
      // s_server -www answers with a page that names the client certificate it got.
      await show(agent, `https://127.0.0.1:${corpServer.port}/`);
      await show(agent, `https://127.0.0.1:${labServer.port}/`);
    } finally {
      await agent.close();
    }
  } finally {
    for (const child of children) child.kill();
  }
}

try {
  if (process.argv.length <= 2) await demo();
  else {
    const { url, ...rest } = parseArgs(process.argv.slice(2));
    const agent = agentFor(rest);
    try {
      await show(agent, url);
    } finally {
      await agent.close();
    }
  }
} catch (error) {
  if (error instanceof RangeError) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  // undici reports a failed connection as "fetch failed" with our TlsError as its cause.
  const tls = error instanceof Error && error.cause instanceof TlsError ? error.cause : error;
  console.error(tls instanceof TlsError ? `TLS error ${tls.code}: ${tls.message}` : String(error));
  process.exit(1);
}
