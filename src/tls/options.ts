/**
 * The one option schema: every option of `TlsContext`, `TlsEngine`, `connect()`, `listen()` and
 * `startTls()`, with the side that understands it and where it is applied. The features declare
 * their own entries (see `handshake/feature.ts`); this module adds the call options and derives
 * what the entry points need: the role checks with their "option of the other side" errors, and
 * the split of a flat options object into context and connection options.
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

/** The default `handshakeTimeout` of clients and servers: 30 seconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;

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
