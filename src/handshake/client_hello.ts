/**
 * The client-hello callback (`SSL_CTX_set_client_hello_cb`), shared by the server features that
 * need to see the ClientHello before the server chooses anything (`onServerName`, PSK suite
 * steering). Installed when one of them wants it; calls each one's `onClientHello` in the order of
 * `features.ts` and stops at the first that suspends.
 *
 * @module
 */
import { CLIENT_HELLO_CB, openssl, SSL_CLIENT_HELLO } from "../core/native.ts";
import type { Feature } from "./feature.ts";
import { routedCallback } from "./routing.ts";

/** The dispatcher of the client-hello callback. */
export const clientHello: Feature<Record<string, unknown>> = {
  name: "client hello",
  options: {},
  configure({ role, ctx, options, features }) {
    if (!features.some((f) => f.wantsClientHello?.(role, options) === true)) return;
    // On failure `*al` keeps OpenSSL's default, internal_error (80).
    const cb = routedCallback(CLIENT_HELLO_CB, (link) => {
      if (link.role !== "server") return SSL_CLIENT_HELLO.SUCCESS;
      for (const feature of link.features) {
        if (feature.onClientHello === undefined) continue;
        const result = feature.onClientHello(link);
        if (result !== SSL_CLIENT_HELLO.SUCCESS) return result;
      }
      return SSL_CLIENT_HELLO.SUCCESS;
    }, { notOurs: 1 });
    openssl().SSL_CTX_set_client_hello_cb(ctx, cb, null);
  },
};
