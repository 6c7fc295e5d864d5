/**
 * Key exchange groups: `groups`, the ordered list a client offers (and sends key shares for, the
 * first ones) or a server accepts, through `SSL_CTX_set1_groups_list`; and the group a handshake
 * used. OpenSSL 3.5+ offers and prefers the post-quantum hybrid `X25519MLKEM768` by default; 3.0
 * knows no hybrid. A name the loaded OpenSSL does not know is a TypeError naming the version.
 *
 * @module
 */
import { supports } from "../core/capabilities.ts";
import { drainErrorQueue } from "../core/error_queue.ts";
import { openssl, type Pointer } from "../core/native.ts";
import type { Feature, SchemaOf } from "./feature.ts";
import { sharedText } from "./negotiated.ts";

/** Key exchange options of both sides. */
export interface GroupsOptions {
  /**
   * The key exchange groups (TLS "supported groups"), most preferred first, e.g.
   * `["X25519MLKEM768", "X25519", "P-256"]`. Clients offer them in this order (with key shares
   * for the first); servers pick the first of their own list the client offers. Default:
   * OpenSSL's own list (3.5+: `X25519MLKEM768` first, a post-quantum hybrid; 3.0: `X25519`,
   * `P-256`, ...). A name this OpenSSL does not know is a TypeError (`X25519MLKEM768` needs 3.5).
   * The group a connection used is `conn.group`.
   */
  groups?: readonly string[];
}

/** `SSL_CTX_set1_groups_list` for `names`, or a TypeError naming the first unknown one. */
function setGroups(ctx: Pointer, names: readonly string[]): void {
  const o = openssl();
  if (o.SSL_CTX_set1_groups_list(ctx, names.join(":")) === 1) return;
  drainErrorQueue();
  // Which name it was: OpenSSL only says that the list failed.
  const unknown = names.find((name) => {
    const ok = o.SSL_CTX_set1_groups_list(ctx, name) === 1;
    drainErrorQueue();
    return !ok;
  });
  throw new TypeError(
    `groups: ${JSON.stringify(unknown ?? names.join(":"))} is not a key exchange group ` +
      `${o.versionText} knows (X25519MLKEM768 and the other hybrids need OpenSSL 3.5)`,
  );
}

/**
 * The key exchange group the handshake on `ssl` used, e.g. `"X25519"` or `"X25519MLKEM768"`;
 * `null` when there was none (TLS 1.2 RSA key exchange, a PSK-only handshake) or it cannot be
 * named.
 */
export function negotiatedGroup(ssl: Pointer): string | null {
  const o = openssl();
  // A name from the SSL_CTX's group list: one shared copy per process (see sharedText).
  if (supports("groupName")) {
    const p = o.SSL_get0_group_name!(ssl);
    return p === null ? null : sharedText(p);
  }
  const nid = o.SSL_get_negotiated_group(ssl);
  if (nid === 0 || !supports("groupToName")) return null;
  const p = o.SSL_group_to_name!(ssl, nid);
  return p === null ? null : sharedText(p);
}

/** `groups`. */
export const groups: Feature<GroupsOptions> = {
  name: "key exchange groups",
  options: {
    groups: { role: "both", scope: "context" },
  } satisfies SchemaOf<GroupsOptions, GroupsOptions>,
  validate(_role, { groups }) {
    if (groups === undefined) return;
    if (!Array.isArray(groups) || groups.length === 0) {
      throw new TypeError("groups must be a non-empty array of group names");
    }
    for (const name of groups) {
      if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name)) {
        throw new TypeError(`groups: ${JSON.stringify(name)} is not a group name`);
      }
    }
  },
  configure({ ctx, options }) {
    if (options.groups !== undefined) setGroups(ctx, options.groups);
  },
};
