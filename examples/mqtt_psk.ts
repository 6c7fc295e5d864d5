/**
 * An MQTT device over TLS with a pre-shared key (no certificates): MQTT.js with this library as
 * its transport (`nodeConnect`), against a broker such as Mosquitto with `psk_hint` / `psk_file`.
 * Subscribes to a topic, publishes one message to it and prints what comes back.
 *
 *   deno run --allow-all examples/mqtt_psk.ts                       # the embedded demo (below)
 *   deno run --allow-all examples/mqtt_psk.ts 127.0.0.1:8883 --psk-file device.psk \
 *     [--topic devices/7/status] [--message hello]
 *   bun examples/mqtt_psk.ts ...   |   node examples/mqtt_psk.ts ...
 *
 * `--psk-file` holds one `identity:hexkey` line (the format of Mosquitto's `psk_file` and
 * GnuTLS's `psktool`). MQTT.js is the user's dependency, not the library's (`npm install mqtt`).
 *
 * With no arguments: writes a throwaway key, starts a local `mosquitto` (Debian: `apt-get install
 * mosquitto`) with a PSK listener, and talks to it. Exit codes: 0 done, 1 error, 2 usage.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { MqttClient } from "mqtt";
import { nodeConnect, TlsError } from "../mod.ts";

const USAGE = `usage: mqtt_psk.ts [host:port --psk-file FILE] [--topic TOPIC] [--message TEXT]`;

interface Args {
  host: string;
  port: number;
  identity: string;
  key: Uint8Array;
  topic: string;
  message: string;
}

/** One `identity:hexkey` line. */
function readPsk(file: string): { identity: string; key: Uint8Array } {
  const line = readFileSync(file, "utf8").split("\n").find((l) => l.trim() !== "");
  const match = /^([^:]+):([0-9a-fA-F]+)$/.exec(line?.trim() ?? "");
  if (match === null || match[2]!.length % 2 !== 0) {
    throw new RangeError(`${file}: expected one identity:hexkey line`);
  }
  return {
    identity: match[1]!,
    key: Uint8Array.from(match[2]!.match(/../g)!, (h) => parseInt(h, 16)),
  };
}

function parseArgs(argv: string[]): Args {
  let target = "";
  let psk: { identity: string; key: Uint8Array } | null = null;
  let topic = "devices/demo/status";
  let message = "hello from libssl-ffi";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === "--psk-file") psk = readPsk(next());
    else if (a === "--topic") topic = next();
    else if (a === "--message") message = next();
    else if (!a.startsWith("--") && target === "") target = a;
    else throw new RangeError(`unknown argument ${a}`);
  }
  const match = /^(.+):(\d+)$/.exec(target);
  if (match === null) throw new RangeError("host:port is needed");
  if (psk === null) throw new RangeError("--psk-file is needed");
  return { host: match[1]!, port: Number(match[2]), ...psk, topic, message };
}

/** Connects, subscribes, publishes, prints the message that comes back, disconnects. */
async function run(args: Args): Promise<void> {
  // MQTT.js calls this for every (re)connection; the socket it returns connects in the
  // background and MQTT.js writes its CONNECT packet as soon as the handshake is done.
  const client = new MqttClient(
    () =>
      nodeConnect({
        hostname: args.host,
        port: args.port,
        psk: { identity: args.identity, key: args.key },
      }),
    { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000 },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    console.log(`connected to ${args.host}:${args.port} as PSK identity ${args.identity}`);
    const received = new Promise<string>((resolve) =>
      client.once("message", (topic, payload) => resolve(`${topic}: ${payload.toString()}`))
    );
    await client.subscribeAsync(args.topic, { qos: 1 });
    await client.publishAsync(args.topic, args.message, { qos: 1 });
    console.log(`received ${await received}`);
  } finally {
    await client.endAsync();
  }
}

/** A local mosquitto with a PSK listener on a free port, and the arguments to reach it. */
async function demo(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-psk-demo-"));
  const key = randomBytes(32);
  let broker: ChildProcess | null = null;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const address = s.address();
        s.close(() => typeof address === "object" && address ? resolve(address.port) : reject());
      });
    });
    writeFileSync(join(dir, "psk"), `demo-device:${key.toString("hex")}\n`);
    const root = typeof process.getuid === "function" && process.getuid() === 0;
    writeFileSync(
      join(dir, "mosquitto.conf"),
      [
        "allow_anonymous true",
        // As root mosquitto would switch to its own user, who cannot read this directory.
        ...(root ? ["user root"] : []),
        `listener ${port} 127.0.0.1`,
        "psk_hint demo-broker",
        `psk_file ${join(dir, "psk")}`,
      ].join("\n") + "\n",
    );
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    const binary = existsSync("/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "mosquitto";
    broker = spawn(binary, ["-c", join(dir, "mosquitto.conf")], { stdio: "ignore" });
    const failed = new Promise<boolean>((_, reject) => {
      broker!.once(
        "error",
        () => reject(new Error("mosquitto is not installed (Debian: apt-get install mosquitto)")),
      );
      broker!.once("exit", (code) => reject(new Error(`mosquitto exited (${code})`)));
    });
    failed.catch(() => {});
    for (let tries = 0;; tries++) {
      const up = await Promise.race([
        failed,
        new Promise<boolean>((resolve) => {
          const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
          s.once("error", () => resolve(false));
        }),
      ]);
      if (up) break;
      if (tries === 250) throw new Error("mosquitto did not listen within 5 s");
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`mosquitto -c mosquitto.conf: a PSK listener on 127.0.0.1:${port}`);
    await run({
      host: "127.0.0.1",
      port,
      identity: "demo-device",
      key,
      topic: "devices/demo/status",
      message: "hello from libssl-ffi",
    });
  } finally {
    broker?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  if (process.argv.length <= 2) await demo();
  else await run(parseArgs(process.argv.slice(2)));
} catch (error) {
  if (error instanceof RangeError) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  console.error(
    error instanceof TlsError ? `TLS error ${error.code}: ${error.message}` : String(error),
  );
  process.exit(1);
}
