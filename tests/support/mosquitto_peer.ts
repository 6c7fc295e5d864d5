/**
 * Mosquitto (Debian `mosquitto`) as a test peer: an MQTT broker with one TLS listener on a free
 * port of 127.0.0.1, configured by the test (see `peer_process.ts` for how peers start, are found
 * ready and are stopped).
 *
 * Mosquitto traps, met here:
 * - Started as root it switches to the `mosquitto` user, which cannot read the test's key files
 *   in a private temp dir: as root the configuration says `user root`.
 * - 2.x refuses clients without a username unless `allow_anonymous true`.
 * - A TLS-PSK listener (`psk_hint`, `psk_file` of `identity:hexkey` lines) takes no certificate;
 *   mosquitto offers PSK on TLS 1.2 and TLS 1.3 (OpenSSL's PSK callbacks) on the same listener.
 *
 * @example
 * ```ts
 * import { startMosquitto } from "./mosquitto_peer.ts";
 * import { sharedTestPki } from "./pki.ts";
 * const pki = sharedTestPki();
 * await using broker = await startMosquitto({
 *   tls: { cert: pki.server.certPath, key: pki.server.keyPath, ca: pki.rootCaPath },
 * });
 * // mqtts://127.0.0.1:${broker.port}, SNI "localhost", a client certificate from pki.client
 * ```
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type PeerProcess, startCommandPeer } from "./peer_process.ts";

/**
 * Options for {@link startMosquitto}: a certificate listener (`tls`) or a PSK listener (`psk`).
 *
 * @example
 * ```ts
 * import type { MosquittoOptions } from "./mosquitto_peer.ts";
 * const options: MosquittoOptions = { psk: { hint: "broker", identity: "device-7", key: "00ff" } };
 * console.log(options);
 * ```
 */
export interface MosquittoOptions {
  /**
   * A certificate listener: `certfile` (the leaf; mosquitto sends the whole file, so a chain file
   * works), `keyfile`, and `cafile` with `require_certificate true`: a client certificate is
   * required and verified against `ca`.
   */
  tls?: { cert: string; key: string; ca: string };
  /** A TLS-PSK listener: `psk_hint`, and one `identity:key` (key in hex) in the `psk_file`. */
  psk?: { hint: string; identity: string; key: string };
}

/** Whether this process runs as root (mosquitto would then switch to its own user). */
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** The broker binary: on PATH, or Debian's /usr/sbin (not on a non-root user's PATH). */
function mosquittoBinary(): string {
  for (const candidate of ["mosquitto", "/usr/sbin/mosquitto"]) {
    try {
      execFileSync(candidate, ["-h"], { stdio: "ignore" });
      return candidate;
    } catch (error) {
      // `mosquitto -h` exits with 3 after printing its help: it exists.
      if ((error as { status?: number }).status === 3) return candidate;
    }
  }
  throw new Error(
    "mosquitto is not installed: apt-get install -y mosquitto (scripts/test.sh does it)",
  );
}

/** The mosquitto.conf for `options`, listening on 127.0.0.1:`port`. */
export function mosquittoConfig(options: MosquittoOptions, port: number, dir: string): string {
  const lines = [
    "per_listener_settings false",
    "allow_anonymous true",
    "persistence false",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    ...(isRoot ? ["user root"] : []),
    `listener ${port} 127.0.0.1`,
  ];
  if (options.tls !== undefined) {
    lines.push(
      `certfile ${options.tls.cert}`,
      `keyfile ${options.tls.key}`,
      `cafile ${options.tls.ca}`,
      "require_certificate true",
    );
  }
  if (options.psk !== undefined) {
    lines.push(`psk_hint ${options.psk.hint}`, `psk_file ${join(dir, "psk.txt")}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Starts mosquitto with {@link mosquittoConfig}. Stop it with `await using` or `stop()`; its
 * temp dir is removed then.
 */
export async function startMosquitto(options: MosquittoOptions): Promise<PeerProcess> {
  if ((options.tls === undefined) === (options.psk === undefined)) {
    throw new TypeError("startMosquitto: give exactly one of tls and psk");
  }
  const binary = mosquittoBinary();
  const dir = mkdtempSync(join(tmpdir(), "libssl-ffi-mosquitto-"));
  if (options.psk !== undefined) {
    writeFileSync(join(dir, "psk.txt"), `${options.psk.identity}:${options.psk.key}\n`);
  }
  try {
    const peer = await startCommandPeer("mosquitto", {
      command: binary,
      args: (port) => {
        writeFileSync(join(dir, "mosquitto.conf"), mosquittoConfig(options, port, dir));
        return ["-c", join(dir, "mosquitto.conf")];
      },
      lineBuffered: false,
      bindFailedPattern: /Address already in use/,
    });
    const stop = peer.stop.bind(peer);
    const stopAndClean = async (): Promise<void> => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    };
    return Object.assign(peer, { stop: stopAndClean, [Symbol.asyncDispose]: stopAndClean });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
