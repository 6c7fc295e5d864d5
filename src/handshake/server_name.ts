/**
 * The server's name, both ways. Clients: `servername`, sent as SNI and checked against the
 * server's certificate (an IP address is checked as an IP and sends no SNI). Servers:
 * `onServerName`, which picks the certificate for the name a client asked for, from the raw
 * ClientHello (sync or async).
 *
 * @module
 */
import { TlsError } from "../core/errors.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import {
  cString,
  openssl,
  type Pointer,
  SSL_CLIENT_HELLO,
  TLSEXT_TYPE_server_name,
  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
} from "../core/native.ts";
import { isIpAddress } from "../net/address.ts";
import { type ContextInternals, contextInternals } from "../tls/native_context.ts";
import type { Feature, SchemaOf } from "./feature.ts";
import { type Identity, useIdentity } from "./identity.ts";

/** Per-connection client option. */
export interface ServerNameClientOptions {
  /**
   * The name sent as SNI and verified against the server's certificate. `connect()` defaults it
   * to `hostname`. An IP address is verified as an IP (`X509_VERIFY_PARAM_set1_ip_asc`) and
   * sends no SNI. Required for clients unless verification is (unsafely) disabled or the context
   * has a `psk` (a server that then authenticates with a certificate instead of the PSK fails the
   * handshake: its name cannot be checked).
   */
  servername?: string;
}

/**
 * Server option. `Context` is `TlsContext` (a type parameter only because `TlsContext`'s own
 * options include this one: see `ServerNameResult`).
 */
export interface ServerNameServerOptions<Context> {
  /**
   * Called with the host name a client asked for (SNI, read from the ClientHello) before the
   * server picks its certificate. Return the {@link Identity} to use for that name, a server
   * `TlsContext` whose certificate, chain and key to use (parsed once, so cheaper per
   * handshake than an `Identity`), `null` to keep this context's own `cert`/`key`, or a Promise
   * of any of these (the handshake suspends until it settles). Only the identity is taken from a
   * returned context: trust, versions and callbacks stay this context's. Not called when the
   * client sent no name. A throw or rejection fails the handshake (the client gets an
   * internal_error alert, 80).
   */
  onServerName?: (
    serverName: string,
  ) => Identity | Context | null | Promise<Identity | Context | null>;
}

type Options = ServerNameServerOptions<object> & {
  unsafelyDisableVerification?: boolean;
  psk?: unknown;
};

/** Clients: SNI, and the name (or IP) the certificate is verified against. */
function setServerName(ssl: Pointer, name: string, verifying: boolean): void {
  const o = openssl();
  if (isIpAddress(name)) {
    // RFC 6066: SNI carries host names only. The IP is checked against the SAN iPAddress
    // entries; a mismatch is verify error 64.
    if (
      verifying && o.X509_VERIFY_PARAM_set1_ip_asc(o.SSL_get0_param(ssl), cString(name)) !== 1
    ) {
      throw new TypeError(`servername ${name} is not a valid IP address`);
    }
    return;
  }
  if (o.SSL_set_tlsext_host_name(ssl, name) !== 1) {
    throw new TypeError(`servername ${JSON.stringify(name)} is not a valid host name`);
  }
  if (verifying) {
    // Checked during verification; a mismatch is verify error 62.
    o.SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (o.SSL_set1_host(ssl, cString(name)) !== 1) {
      throw new TlsError("INTERNAL", "SSL_set1_host failed", { openssl: drainErrorQueue() });
    }
  }
}

/**
 * The SNI host name, read from the raw extension: in the client-hello callback OpenSSL has not
 * parsed it yet (`SSL_get_servername` is still NULL). RFC 6066 §3:
 * `ServerNameList { uint16 length; { uint8 type; uint16 length; bytes }* }`, type 0 = host_name.
 */
function clientHelloServerName(ssl: Pointer): string | undefined {
  const o = openssl();
  const outPtr = new BigUint64Array(1);
  const outLen = new BigUint64Array(1);
  if (o.SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, outPtr, outLen) !== 1) {
    return undefined;
  }
  const length = Number(outLen[0]);
  const p = o.backend.fromAddress(outPtr[0]!);
  if (p === null || length < 5 || length > 65_535) return undefined;
  const ext = o.backend.readBytes(p, 0, length);
  const listLength = (ext[0]! << 8) | ext[1]!;
  for (let i = 2; i + 3 <= Math.min(ext.length, 2 + listLength);) {
    const type = ext[i]!;
    const nameLength = (ext[i + 1]! << 8) | ext[i + 2]!;
    const start = i + 3;
    if (start + nameLength > ext.length) return undefined;
    if (type === 0) {
      const name = new TextDecoder().decode(ext.subarray(start, start + nameLength));
      // A host name is ASCII without NULs; anything else is not a name we hand to user code.
      return /^[\x21-\x7e]+$/.test(name) ? name.toLowerCase() : undefined;
    }
    i = start + nameLength;
  }
  return undefined;
}

/** Uses a server context's certificate, chain and key for this connection (SNI). */
function useContextIdentity(ssl: Pointer, context: ContextInternals): void {
  if (context.role !== "server") {
    throw new TypeError("onServerName must return a server TlsContext (it has the identity)");
  }
  const o = openssl();
  const ctx = context.ctx();
  const x509 = o.SSL_CTX_get0_certificate(ctx); // all three borrowed from the context
  const pkey = o.SSL_CTX_get0_privatekey(ctx);
  if (x509 === null || pkey === null) {
    throw new TypeError("the TlsContext returned by onServerName has no certificate");
  }
  // Takes its own references: the context may be closed while this connection lives.
  if (o.SSL_use_cert_and_key(ssl, x509, pkey, o.SSL_CTX_get0_chain_certs(ctx), 1) !== 1) {
    throw new TlsError("INTERNAL", "SSL_use_cert_and_key failed", { openssl: drainErrorQueue() });
  }
}

/** `servername` (clients) and `onServerName` (servers). */
export const serverName: Feature<Options> = {
  name: "server name",
  options: {
    servername: { role: "client", scope: "connection" },
    onServerName: { role: "server", scope: "context" },
  } satisfies SchemaOf<ServerNameClientOptions, ServerNameServerOptions<object>>,
  validate(_role, options) {
    if (options.onServerName !== undefined && typeof options.onServerName !== "function") {
      throw new TypeError("onServerName must be a function");
    }
  },
  validateConnection(role, contextOptions, { servername }) {
    if (servername !== undefined) {
      if (typeof servername !== "string" || servername === "" || servername.includes("\0")) {
        throw new TypeError("servername must be a non-empty string without NUL characters");
      }
    }
    const verifying = contextOptions.unsafelyDisableVerification !== true;
    if (
      role === "client" && verifying && servername === undefined &&
      contextOptions.psk === undefined
    ) {
      throw new TypeError(
        "a client needs servername: it is the name the server's certificate is verified against",
      );
    }
  },
  setupConnection(link, { servername }) {
    if (link.role === "client" && typeof servername === "string") {
      setServerName(link.ssl, servername, link.verifying);
    }
  },
  wantsClientHello: (role, options) => role === "server" && options.onServerName !== undefined,
  onClientHello(link) {
    const handler = (link.options as Options).onServerName;
    if (handler === undefined) return SSL_CLIENT_HELLO.SUCCESS;
    const name = clientHelloServerName(link.ssl);
    if (name === undefined) return SSL_CLIENT_HELLO.SUCCESS;
    // Also called again for the second ClientHello after a HelloRetryRequest: same answer.
    const settled = link.callbacks.settle("serverName", () => handler(name));
    if (!settled.done) return SSL_CLIENT_HELLO.RETRY;
    const result = settled.value;
    const context = contextInternals(result);
    if (context !== undefined) useContextIdentity(link.ssl, context);
    else if (result !== null) useIdentity(link.ssl, result as Identity, "onServerName");
    return SSL_CLIENT_HELLO.SUCCESS;
  },
};
