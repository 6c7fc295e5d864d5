/**
 * ALPN (RFC 7301). Clients offer a list (per context, or per connection); servers pick from the
 * client's offer by preference or with a selection function (`SSL_CTX_set_alpn_select_cb`), and
 * refuse with no_application_protocol (alert 120) when nothing matches.
 *
 * @module
 */
import { ALPN_SELECT_CB, openssl, type Pointer, SSL_TLSEXT_ERR } from "../core/native.ts";
import { fail } from "../core/error_queue.ts";
import type { Feature, Link, SchemaOf } from "./feature.ts";
import { routedCallback } from "./routing.ts";

/**
 * A server's ALPN choice: called with the client's offers (in the client's order); returns one of
 * them, or `null` to refuse the connection (alert 120, no_application_protocol). Synchronous.
 */
export type AlpnSelector = (offered: readonly string[]) => string | null;

/** ALPN options of both sides. */
export interface AlpnOptions {
  /**
   * ALPN. Clients: the protocols to offer, most preferred first (e.g. `["h2", "http/1.1"]`; on a
   * `TlsContext`, the default offer of its connections). When the server picks none, the
   * connection's `alpnProtocol` is `null` (RFC 7301 lets servers ignore ALPN). Servers: the
   * protocols this server speaks, most preferred first (the first of these the client also
   * offers wins), or a function that picks one of the client's offers. When nothing matches (or
   * the function returns `null`) the handshake fails with no_application_protocol (alert 120),
   * as RFC 7301 asks; a client that offers no ALPN at all is accepted without it.
   */
  alpnProtocols?: readonly string[] | AlpnSelector;
}

/** The per-connection ALPN option of clients. */
export interface AlpnClientOptions {
  /**
   * The ALPN protocols to offer, most preferred first, e.g. `["h2", "http/1.1"]`. When the
   * server picks none, the connection's `alpnProtocol` is `null` (RFC 7301 lets servers ignore
   * ALPN; the handshake still succeeds).
   */
  alpnProtocols?: readonly string[];
}

/** ALPN's wire format: each protocol name prefixed by its length (RFC 7301 §3.1). */
export function encodeAlpn(protocols: readonly string[]): Uint8Array {
  if (!Array.isArray(protocols) || protocols.length === 0) {
    throw new TypeError("alpnProtocols must be a non-empty array of strings");
  }
  const encoded = protocols.map((p) => {
    if (typeof p !== "string") throw new TypeError("alpnProtocols must contain strings");
    const bytes = new TextEncoder().encode(p);
    if (bytes.length < 1 || bytes.length > 255) {
      throw new RangeError(`ALPN protocol names are 1 to 255 bytes long: ${JSON.stringify(p)}`);
    }
    return bytes;
  });
  const out = new Uint8Array(encoded.reduce((n, b) => n + 1 + b.length, 0));
  let off = 0;
  for (const b of encoded) {
    out[off++] = b.length;
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/**
 * Picks the ALPN protocol from the client's offer (wire format, already length-checked by
 * OpenSSL): the server's first preference the client offered, or the selection function's
 * choice. Returns where the choice sits in `offered`, or null for "no overlap".
 */
function choose(
  policy: readonly string[] | AlpnSelector,
  offered: Uint8Array,
): { offset: number; length: number } | null {
  const names: { name: string; offset: number; length: number }[] = [];
  const decoder = new TextDecoder();
  for (let i = 0; i < offered.length;) {
    const length = offered[i]!;
    if (length === 0 || i + 1 + length > offered.length) break;
    names.push({
      name: decoder.decode(offered.subarray(i + 1, i + 1 + length)),
      offset: i + 1,
      length,
    });
    i += 1 + length;
  }
  if (typeof policy === "function") {
    const choice = policy(Object.freeze(names.map((n) => n.name)));
    if (choice === null) return null;
    const hit = names.find((n) => n.name === choice);
    if (hit === undefined) {
      throw new TypeError(
        `the ALPN selection function returned ${JSON.stringify(choice)}, which the client did ` +
          "not offer: return one of the offered names or null",
      );
    }
    return hit;
  }
  for (const wanted of policy) {
    const hit = names.find((n) => n.name === wanted);
    if (hit !== undefined) return hit;
  }
  return null;
}

/** `SSL_CTX_set_alpn_select_cb`'s callback (servers). */
function onAlpnSelect(
  link: Link,
  _ssl: Pointer | null,
  out: Pointer | null,
  outlen: Pointer | null,
  input: Pointer | null,
  inlen: number,
): number {
  if (out === null || outlen === null || input === null) return SSL_TLSEXT_ERR.NOACK;
  const policy = (link.options as AlpnOptions).alpnProtocols;
  const b = openssl().backend;
  const choice = policy === undefined ? null : choose(policy, b.readBytes(input, 0, inlen));
  if (choice === null) return SSL_TLSEXT_ERR.ALERT_FATAL; // no_application_protocol (120)
  // *out must point into OpenSSL's own copy of the client's list (it is not copied), and
  // *outlen is an unsigned char.
  b.writePointer(out, 0, b.fromAddress(b.address(input) + choice.offset));
  b.writeBytes(outlen, 0, Uint8Array.of(choice.length));
  return SSL_TLSEXT_ERR.OK;
}

/** `alpnProtocols`: the client's offer, the server's choice. */
export const alpn: Feature<AlpnOptions> = {
  name: "ALPN",
  options: {
    alpnProtocols: {
      role: "both",
      scope: { client: "connection", server: "context" },
      contextDefault: true,
    },
  } satisfies SchemaOf<AlpnClientOptions, AlpnOptions>,
  validate(role, { alpnProtocols }) {
    if (alpnProtocols === undefined) return;
    if (typeof alpnProtocols === "function") {
      if (role === "client") throw new TypeError("an ALPN selection function is for servers only");
    } else {
      encodeAlpn(alpnProtocols); // validates
    }
  },
  validateConnection(_role, _contextOptions, { alpnProtocols }) {
    if (alpnProtocols !== undefined) encodeAlpn(alpnProtocols as readonly string[]);
  },
  configure({ role, ctx, options }) {
    if (options.alpnProtocols === undefined) return;
    const o = openssl();
    if (role === "server") {
      const cb = routedCallback(ALPN_SELECT_CB, onAlpnSelect, { notOurs: SSL_TLSEXT_ERR.NOACK });
      o.SSL_CTX_set_alpn_select_cb(ctx, cb, null);
      return;
    }
    const wire = encodeAlpn(options.alpnProtocols as readonly string[]);
    // Returns 0 on success, unlike almost everything else in OpenSSL.
    if (o.SSL_CTX_set_alpn_protos(ctx, wire, wire.length) !== 0) {
      fail("SSL_CTX_set_alpn_protos failed");
    }
  },
  setupConnection(link, { alpnProtocols }) {
    if (link.role !== "client" || alpnProtocols === undefined) return;
    const wire = encodeAlpn(alpnProtocols as readonly string[]);
    // Returns 0 on success, unlike almost everything else in OpenSSL.
    if (openssl().SSL_set_alpn_protos(link.ssl, wire, wire.length) !== 0) {
      fail("SSL_set_alpn_protos failed");
    }
  },
};
