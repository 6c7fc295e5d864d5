/**
 * The one option schema: every option of `TlsContext`, `TlsEngine`, `connect()`, `listen()` and
 * `startTls()`, with the side that understands it and where it is applied. The features declare
 * their own entries (see `handshake/feature.ts`); this module adds the call options and derives
 * what the entry points need: the role checks with their "option of the other side" errors, the
 * refusal of unknown keys (with the nearest known one suggested) and of foreign names (Deno's,
 * Node's: see `option_names.ts`), and the split of a flat options object into context and
 * connection options.
 *
 * @module
 */
import {
  type AnyFeature,
  appliesTo,
  type OptionScope,
  type OptionSpec,
  type Role,
  scopeOf,
  wrongSideError,
} from "../handshake/feature.ts";
import { FEATURES } from "../handshake/features.ts";
import { ALIASES, type EntryPoint, FIXED_NAMES, nearest, REFUSED_NAMES } from "./option_names.ts";

export type { EntryPoint };

/** The default `handshakeTimeout` of clients and servers: 30 seconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;

/**
 * Checks `idleTimeout` (milliseconds without bytes in either direction after the handshake) and
 * returns it, 0 meaning "no limit" (absent, 0 or `Infinity`).
 */
export function checkIdleTimeout(value: unknown): number {
  if (value === undefined || value === Infinity) return 0;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new RangeError(
      `idleTimeout must be a number of milliseconds >= 0 (0 or Infinity: no limit), got ${
        String(value)
      }`,
    );
  }
  return value;
}

/**
 * Checks the call options every entry point shares (`handshakeTimeout`, `signal`) and returns
 * the handshake timeout in milliseconds.
 */
export function checkCallOptions(
  options: { handshakeTimeout?: unknown; signal?: unknown },
): number {
  const t = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  if (typeof t !== "number" || Number.isNaN(t) || t <= 0) {
    throw new RangeError("handshakeTimeout must be a positive number of milliseconds");
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
  return t;
}

function merge(list: readonly AnyFeature[]): Readonly<Record<string, OptionSpec>> {
  const schema: Record<string, OptionSpec> = {};
  for (const feature of list) {
    for (const [key, spec] of Object.entries(feature.options)) {
      if (key in schema) throw new Error(`option ${key} is owned by two features`);
      schema[key] = spec;
    }
  }
  return Object.freeze(schema);
}

/** Every feature option, by name. */
export const FEATURE_OPTIONS: Readonly<Record<string, OptionSpec>> = merge(FEATURES);

/** The names of the options of `role` applied at `scope`. */
export function optionKeys(role: Role, scope: OptionScope): readonly string[] {
  return Object.entries(FEATURE_OPTIONS)
    .filter(([, spec]) => appliesTo(spec, role) && scopeOf(spec, role) === scope)
    .map(([key]) => key);
}

/**
 * Throws a TypeError for the first option in `options` (given, not `undefined`) that belongs to
 * the other side: plain JavaScript callers get no type error for it, so say so rather than
 * ignore it.
 */
export function refuseOtherSide(role: Role, options: object): void {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const spec = FEATURE_OPTIONS[key];
    if (spec !== undefined && !appliesTo(spec, role)) throw wrongSideError(key, spec);
  }
}

/** A flat options object split by scope, for `role`; `undefined` values are left out. */
export interface SplitOptions {
  /** Options that configure the `TlsContext`. */
  readonly context: Record<string, unknown>;
  /** Options given per connection (the `TlsEngine`'s). */
  readonly connection: Record<string, unknown>;
}

/**
 * Splits the options of an entry point (already role-checked) into context and connection
 * options. With `context` given, context options are refused: they would be silently ignored.
 */
export function splitOptions(role: Role, options: Readonly<Record<string, unknown>>): SplitOptions {
  const context: Record<string, unknown> = {};
  const connection: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const spec = FEATURE_OPTIONS[key];
    if (value === undefined || spec === undefined || !appliesTo(spec, role)) continue;
    const scope = scopeOf(spec, role);
    if (scope === "context") context[key] = value;
    else if (scope === "connection") connection[key] = value;
  }
  if (options.context !== undefined && Object.keys(context).length > 0) {
    throw new TypeError(
      `with context, do not also give ${
        optionKeys(role, "context").join("/")
      } (the context has them)`,
    );
  }
  return { context, connection };
}

/** Each entry point's name in messages, and the keys it takes besides the schema's. */
const ENTRY_POINTS: Readonly<Record<EntryPoint, { name: string; callKeys: readonly string[] }>> = {
  connect: {
    name: "connect()",
    callKeys: ["hostname", "port", "signal", "handshakeTimeout", "idleTimeout", "context"],
  },
  startTls: {
    name: "startTls()",
    callKeys: ["role", "hostname", "signal", "handshakeTimeout", "idleTimeout", "context"],
  },
  startTlsServer: {
    name: 'startTls() with role "server"',
    callKeys: ["role", "signal", "handshakeTimeout", "idleTimeout", "context"],
  },
  listen: {
    name: "listen()",
    callKeys: [
      "hostname",
      "port",
      "signal",
      "handshakeTimeout",
      "idleTimeout",
      "context",
      "onError",
      "maxPendingConnections",
      "maxPendingPerAddress",
      "clientHelloTimeout",
    ],
  },
  TlsContext: { name: "TlsContext", callKeys: [] },
  TlsEngine: { name: "TlsEngine", callKeys: [] },
  // DTLS (src/dtls/)
  connectDtls: {
    name: "connectDtls()",
    callKeys: [
      "hostname",
      "port",
      "signal",
      "handshakeTimeout",
      "idleTimeout",
      "mtu",
      "srtpProfiles",
    ],
  },
  listenDtls: {
    name: "listenDtls()",
    callKeys: [
      "hostname",
      "port",
      "handshakeTimeout",
      "idleTimeout",
      "mtu",
      "srtpProfiles",
      "maxConnections",
      "onError",
    ],
  },
};

/** Whether `entry` takes the schema option `spec` for `role`. */
function takes(entry: EntryPoint, role: Role, spec: OptionSpec): boolean {
  if (!appliesTo(spec, role)) return false;
  const scope = scopeOf(spec, role);
  if (entry === "TlsContext") return scope === "context" || spec.contextDefault === true;
  if (entry === "TlsEngine") return scope === "connection";
  return true;
}

const knownCache = new Map<string, ReadonlySet<string>>();

/** Every key `entry` takes for `role`: its schema options and its own (call) options. */
export function knownOptionKeys(entry: EntryPoint, role: Role): ReadonlySet<string> {
  const id = `${entry}:${role}`;
  let known = knownCache.get(id);
  if (known === undefined) {
    known = new Set([
      ...Object.entries(FEATURE_OPTIONS).filter(([, spec]) => takes(entry, role, spec)).map((
        [key],
      ) => key),
      ...ENTRY_POINTS[entry].callKeys,
    ]);
    knownCache.set(id, known);
  }
  return known;
}

/** The error for a schema option that `entry` does not take for `role` (scope, not side). */
function notHereError(entry: EntryPoint, role: Role, key: string): TypeError {
  if (entry === "TlsEngine") {
    return new TypeError(`${key} is a TlsContext option on ${role}s: give it to the context`);
  }
  return new TypeError(
    `${key} is a per-connection option: give it to connect(), startTls() or TlsEngine (a ` +
      "TlsContext is shared by many connections)",
  );
}

/** The error for a key nobody knows: the nearest known key (or alias) suggested, else the list. */
function unknownError(entry: EntryPoint, key: string, known: ReadonlySet<string>): TypeError {
  const name = ENTRY_POINTS[entry].name;
  const aliases = Object.keys(ALIASES).filter((a) => known.has(ALIASES[a]!.canonical));
  const guess = nearest(key, [...known, ...aliases]);
  if (guess !== undefined) {
    const alias = ALIASES[guess];
    const what = alias === undefined
      ? guess
      : `${alias.canonical} (or ${guess}, ${alias.origin}'s name for it)`;
    return new TypeError(`${name} has no option ${JSON.stringify(key)}: did you mean ${what}?`);
  }
  return new TypeError(
    `${name} has no option ${JSON.stringify(key)}; its options are ${[...known].sort().join(", ")}`,
  );
}

/**
 * Checks every key of `options` for `entry` (with the role `role`) and returns the options with
 * foreign aliases renamed (a new object only when one was; `options` itself otherwise). Throws a
 * TypeError, before any I/O or native work, for: an option of the other side (naming where it
 * belongs), a schema option this entry point does not take, a foreign name that is refused
 * (naming this library's option), an alias given together with its canonical option, and an
 * unknown key (suggesting the nearest known one). Keys whose value is `undefined` are absent.
 */
export function normalizeOptions<T extends object>(entry: EntryPoint, role: Role, options: T): T {
  const known = knownOptionKeys(entry, role);
  const given = options as Readonly<Record<string, unknown>>;
  let out: Record<string, unknown> | null = null; // a copy, made on the first rename
  for (const key of Object.keys(options)) {
    const value = given[key];
    if (value === undefined || known.has(key)) continue;
    const spec = FEATURE_OPTIONS[key];
    if (spec !== undefined) {
      throw appliesTo(spec, role) ? notHereError(entry, role, key) : wrongSideError(key, spec);
    }
    const alias = ALIASES[key];
    if (alias !== undefined && known.has(alias.canonical)) {
      if (given[alias.canonical] !== undefined) {
        throw new TypeError(
          `give ${alias.canonical} or ${key} (${alias.origin}'s name for it), not both`,
        );
      }
      out ??= { ...given };
      delete out[key];
      out[alias.canonical] = alias.wrapInArray === true && !Array.isArray(value) ? [value] : value;
      continue;
    }
    const fixed = FIXED_NAMES[key];
    if (fixed !== undefined && fixed.entryPoints.includes(entry)) {
      if (value !== fixed.accepted) {
        throw new TypeError(
          `${key}: ${JSON.stringify(value)} (${fixed.origin}'s option) is not supported: ` +
            fixed.refusal,
        );
      }
      out ??= { ...given };
      delete out[key];
      continue;
    }
    const refused = REFUSED_NAMES[key];
    if (refused !== undefined) {
      throw new TypeError(
        `${key} is ${refused.origin}'s option, not one of ${ENTRY_POINTS[entry].name}: ` +
          refused.instead,
      );
    }
    throw unknownError(entry, key, known);
  }
  return (out ?? options) as T;
}
