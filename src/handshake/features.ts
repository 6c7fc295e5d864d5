/**
 * The handshake features, in the order a context is configured. Adding a feature is one module
 * plus one line here (see docs/architecture.md).
 *
 * @module
 */
import { alpn } from "./alpn.ts";
import { clientCertificate } from "./client_certificate.ts";
import { clientHello } from "./client_hello.ts";
import type { AnyFeature } from "./feature.ts";
import { identity } from "./identity.ts";
import { ocsp } from "./ocsp.ts";
import { protocol } from "./protocol.ts";
import { psk } from "./psk.ts";
import { serverName } from "./server_name.ts";
import { sessions } from "./sessions.ts";
import { trace } from "./trace.ts";
import { verification } from "./verification.ts";

/** Every handshake feature, in configuration order. */
export const FEATURES: readonly AnyFeature[] = [
  protocol, // versions, ciphers, secure defaults
  verification, // trust anchors, verify mode, onVerifyCertificate
  identity, // cert, key, passphrase
  clientCertificate, // onClientCertificate
  serverName, // servername (SNI, name checks), onServerName
  alpn, // alpnProtocols
  ocsp, // ocsp, ocspStaple
  sessions, // session, onSession, tickets (before psk: its TLS 1.2 resumption hook runs first)
  psk, // psk, pskIdentityHint, pskKeyExchange (after protocol: replaces the default ciphers)
  trace, // onHandshakeEvent, onKeylog, SSLKEYLOGFILE
  clientHello, // the client-hello callback, for the features above that want it
];
