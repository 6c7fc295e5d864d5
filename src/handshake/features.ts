/**
 * The handshake features, in the order a context is configured, and the option interfaces they
 * contribute to each entry point. Adding a feature is one module plus its line in the list (and
 * its option interfaces in the `extends` lists below): see docs/architecture.md.
 *
 * @module
 */
import { algorithms, type AlgorithmsOptions } from "./algorithms.ts";
import { alpn, type AlpnClientOptions, type AlpnOptions } from "./alpn.ts";
import { clientCertificate, type ClientCertificateOptions } from "./client_certificate.ts";
import { clientHello } from "./client_hello.ts";
import {
  earlyData,
  type EarlyDataClientOptions,
  type EarlyDataServerOptions,
} from "./early_data.ts";
import type { AnyFeature } from "./feature.ts";
import { groups, type GroupsOptions } from "./groups.ts";
import { identity, type IdentityOptions } from "./identity.ts";
import { ocsp, type OcspClientOptions, type OcspServerOptions } from "./ocsp.ts";
import { postHandshakeAuth, type PostHandshakeAuthClientOptions } from "./post_handshake_auth.ts";
import { protocol, type ProtocolOptions } from "./protocol.ts";
import { revocation, type RevocationOptions } from "./revocation.ts";
import { psk, type PskClientOptions, type PskOptions, type PskServerOptions } from "./psk.ts";
import {
  serverName,
  type ServerNameClientOptions,
  type ServerNameServerOptions,
} from "./server_name.ts";
import { sessionCache, type SessionCacheServerOptions } from "./session_cache.ts";
import { type SessionClientOptions, sessions, type SessionServerOptions } from "./sessions.ts";
import { trace, type TraceOptions } from "./trace.ts";
import {
  type ClientVerificationOptions,
  type ServerVerificationOptions,
  verification,
  type VerificationOptions,
} from "./verification.ts";

/** Every handshake feature, in configuration order. */
export const FEATURES: readonly AnyFeature[] = [
  protocol, // versions, ciphers, secure defaults
  groups, // key exchange groups
  verification, // trust anchors, verify mode, onVerifyCertificate
  revocation, // crls, crlCheck (after verification: adds to its trust store)
  identity, // cert, key, passphrase
  clientCertificate, // onClientCertificate
  serverName, // servername (SNI, name checks), onServerName
  alpn, // alpnProtocols
  ocsp, // ocsp, ocspStaple
  sessions, // session, onSession, tickets (before psk: its TLS 1.2 resumption hook runs first)
  sessionCache, // onNewSession, onResumeSession (after sessions: replaces its id context)
  earlyData, // earlyData, maxEarlyData (after sessions: sends early data with the offered session)
  psk, // psk, pskIdentityHint, pskKeyExchange (after protocol: replaces the default ciphers)
  trace, // onHandshakeEvent, onKeylog, SSLKEYLOGFILE
  postHandshakeAuth, // postHandshakeAuth (clients), requestClientCertificate (servers)
  algorithms, // sigalgs, maxSendFragment
  clientHello, // the client-hello callback, for the features above that want it
];

/** Every feature's client options: what `connect()` and `startTls()` take (with the call's own). */
export interface ClientFeatureOptions
  extends
    ProtocolOptions,
    GroupsOptions,
    VerificationOptions,
    ClientVerificationOptions,
    RevocationOptions,
    IdentityOptions,
    ClientCertificateOptions,
    ServerNameClientOptions,
    AlpnClientOptions,
    OcspClientOptions,
    SessionClientOptions,
    EarlyDataClientOptions,
    PskClientOptions,
    TraceOptions,
    PostHandshakeAuthClientOptions,
    AlgorithmsOptions {}

/**
 * Every feature's server options: what `listen()` and `startTls({ role: "server" })` take.
 * `Context` is `TlsContext` (which `onServerName` may return; a parameter here because
 * `TlsContext` itself sits above this module).
 */
export interface ServerFeatureOptions<Context>
  extends
    ProtocolOptions,
    GroupsOptions,
    VerificationOptions,
    ServerVerificationOptions,
    RevocationOptions,
    IdentityOptions,
    ServerNameServerOptions<Context>,
    AlpnOptions,
    OcspServerOptions,
    SessionServerOptions,
    SessionCacheServerOptions,
    EarlyDataServerOptions,
    PskServerOptions,
    TraceOptions,
    AlgorithmsOptions {}

/** Every feature's context options, of both sides: what `TlsContext` takes. */
export interface ContextFeatureOptions<Context>
  extends
    ProtocolOptions,
    GroupsOptions,
    VerificationOptions,
    ClientVerificationOptions,
    ServerVerificationOptions,
    RevocationOptions,
    IdentityOptions,
    ClientCertificateOptions,
    ServerNameServerOptions<Context>,
    AlpnOptions,
    OcspClientOptions,
    OcspServerOptions,
    SessionServerOptions,
    SessionCacheServerOptions,
    EarlyDataServerOptions,
    PskOptions,
    TraceOptions,
    PostHandshakeAuthClientOptions,
    AlgorithmsOptions {}
