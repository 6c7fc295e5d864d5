/**
 * Structure out of the `openssl` CLI's human-readable output, on every release the suite runs
 * against (3.0 on Debian 12, 3.5 on Debian 13, 3.6 and 4.0 in the version matrix,
 * `scripts/version_matrix.sh`), so that tests compare fields and not one release's prose:
 *
 * - {@link opensslCliVersion}: the OpenSSL behind the `openssl` command, i.e. behind the
 *   `s_server` / `s_client` / `ocsp` peers. Where a peer's behaviour changed between releases,
 *   tests ask this (never our own library's version: in the experimental chroot the CLI is 4.0
 *   while libssl.so.3 from 3.6 is installed too).
 * - {@link parseName} / {@link nameAfter}: distinguished names. 3.0 prints `O = x, CN = y`; 3.5+
 *   print `O=x, CN=y` in `x509 -text`, `-subject` and `s_client`'s CA list (OCSP's
 *   `Responder Id:` keeps the spaces). Both parse to `[["O", "x"], ["CN", "y"]]`.
 * - {@link acceptableCaNames}: `s_client`'s "Acceptable client certificate CA names".
 * - {@link statusReport}: what `s_client -status` printed about the stapled OCSP response. 3.0 to
 *   3.5: `OCSP response: no response sent` / `OCSP response: \n====...`. 3.6+, TLS 1.3 (several
 *   responses possible): `OCSP responses: no responses sent` / `OCSP responses: number of
 *   responses: N` then each response; 3.6+, TLS 1.2: `OCSP response: no OCSP response received`
 *   / `OCSP response: \n====...` as before.
 *
 * @example
 * ```ts
 * import { nameAfter, opensslCliVersion } from "./cli_output.ts";
 * console.log(opensslCliVersion().text);
 * console.log(nameAfter("        Subject: O=libssl-ffi tests, CN=localhost\n", "Subject"));
 * // [["O", "libssl-ffi tests"], ["CN", "localhost"]]
 * ```
 * @module
 */
import { execFileSync } from "node:child_process";

/**
 * An OpenSSL release as `openssl version` names it.
 *
 * @example
 * ```ts
 * import { type CliVersion, parseOpensslVersion } from "./cli_output.ts";
 * const v: CliVersion = parseOpensslVersion("OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)");
 * console.log(v.major, v.minor, v.patch); // 3 0 19
 * ```
 */
export interface CliVersion {
  major: number;
  minor: number;
  patch: number;
  /** The whole `openssl version` line. */
  text: string;
}

/**
 * Parses `openssl version`. When the command runs against another library than the one it was
 * built with, it adds `(Library: OpenSSL X.Y.Z ...)`: that library is what speaks TLS, so it
 * wins.
 *
 * @example
 * ```ts
 * import { parseOpensslVersion } from "./cli_output.ts";
 * console.log(parseOpensslVersion("OpenSSL 4.0.3 29 Sep 2026 (Library: OpenSSL 4.0.3 29 Sep 2026)").major); // 4
 * ```
 */
export function parseOpensslVersion(text: string): CliVersion {
  const m = /\(Library: OpenSSL (\d+)\.(\d+)\.(\d+)/.exec(text) ??
    /^OpenSSL (\d+)\.(\d+)\.(\d+)/.exec(text);
  if (m === null) throw new Error(`cannot parse \`openssl version\`: ${JSON.stringify(text)}`);
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: text.trim() };
}

let cliVersion: CliVersion | undefined;

/**
 * The OpenSSL release behind the `openssl` command on PATH (run once, then cached).
 *
 * @example
 * ```ts
 * import { opensslCliVersion } from "./cli_output.ts";
 * console.log(opensslCliVersion().text); // e.g. OpenSSL 3.0.19 27 Jan 2026 (Library: ...)
 * ```
 */
export function opensslCliVersion(): CliVersion {
  cliVersion ??= parseOpensslVersion(
    execFileSync("openssl", ["version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
  );
  return cliVersion;
}

/**
 * Whether the `openssl` command's OpenSSL is `major.minor` or newer.
 *
 * @example
 * ```ts
 * import { cliAtLeast } from "./cli_output.ts";
 * console.log(cliAtLeast(3, 6) ? "3.6+ stapling rules" : "3.0-3.5 stapling rules");
 * ```
 */
export function cliAtLeast(major: number, minor: number): boolean {
  const v = opensslCliVersion();
  return v.major > major || (v.major === major && v.minor >= minor);
}

/**
 * One attribute of a distinguished name: its short name and its (unescaped) value.
 *
 * @example
 * ```ts
 * import type { NameEntry } from "./cli_output.ts";
 * const cn: NameEntry = ["CN", "localhost"];
 * console.log(cn);
 * ```
 */
export type NameEntry = readonly [attribute: string, value: string];

/**
 * Parses a distinguished name as the CLI prints it (`X509_NAME_print_ex`, one line), in either
 * spacing: `O = x, CN = y` (3.0) or `O=x, CN=y` (3.5+). Attributes are split at unescaped `,`
 * and `+` (a multi-valued RDN comes out flat); `\,` and the other RFC 2253 escapes are undone.
 * Throws on anything that is not `ATTR=VALUE` pairs, so that a test cannot pass on prose.
 *
 * @example
 * ```ts
 * import { parseName } from "./cli_output.ts";
 * console.log(parseName("O = libssl-ffi tests, CN = localhost"));
 * console.log(parseName("O=libssl-ffi tests, CN=localhost")); // the same
 * ```
 */
export function parseName(text: string): NameEntry[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\" && i + 1 < text.length) {
      current += c + text[i + 1]!;
      i++;
    } else if (c === "," || c === "+") {
      parts.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts.map((part) => {
    const m = /^\s*([A-Za-z][\w-]*|\d+(?:\.\d+)+)\s*=\s?(.*?)\s*$/.exec(part);
    if (m === null) throw new Error(`not a distinguished name: ${JSON.stringify(text)}`);
    return [m[1]!, m[2]!.replace(/\\(.)/g, "$1")] as const;
  });
}

/**
 * The name on the one line `LABEL: NAME` of `text` (`Subject`, `Issuer` in `x509 -text`;
 * `Responder Id` in OCSP output). Throws if there is no such line or more than one.
 *
 * @example
 * ```ts
 * import { nameAfter } from "./cli_output.ts";
 * console.log(nameAfter("    Responder Id: O = t, CN = ca\n", "Responder Id")); // [["O","t"],["CN","ca"]]
 * ```
 */
export function nameAfter(text: string, label: string): NameEntry[] {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const lines = [...text.matchAll(new RegExp(`^[ \\t]*${escaped}: (.*)$`, "gm"))];
  if (lines.length !== 1) {
    throw new Error(`expected one "${label}:" line, found ${lines.length} in:\n${text}`);
  }
  return parseName(lines[0]![1]!);
}

/**
 * `s_client`'s list of acceptable client-certificate CA names (from the server's
 * CertificateRequest), one parsed name per line after "Acceptable client certificate CA names";
 * `[]` when it printed "No client certificate CA names sent". Throws if it printed neither.
 *
 * @example
 * ```ts
 * import { acceptableCaNames } from "./cli_output.ts";
 * const out = "---\nAcceptable client certificate CA names\nO=t, CN=root\nRequested Signature Algorithms: x\n";
 * console.log(acceptableCaNames(out)); // [[["O", "t"], ["CN", "root"]]]
 * ```
 */
export function acceptableCaNames(stdout: string): NameEntry[][] {
  if (/^No client certificate CA names sent$/m.test(stdout)) return [];
  const lines = stdout.split("\n");
  const start = lines.indexOf("Acceptable client certificate CA names");
  if (start < 0) throw new Error(`no client CA names section in:\n${stdout}`);
  const names: NameEntry[][] = [];
  // The names run until the next section: "Client Certificate Types: ...", "Requested
  // Signature Algorithms: ...", "---" (none of which starts with `ATTR=` / `ATTR =`).
  for (const line of lines.slice(start + 1)) {
    if (!/^[A-Za-z][\w.-]* ?= ?/.test(line)) break;
    names.push(parseName(line));
  }
  return names;
}

/**
 * What `s_client -status` reported about the server's staple: nothing sent, the responses it
 * printed (each as its `OCSP Response Data:` text), or a staple it could not parse (3.0-3.5 only:
 * from 3.6 libssl parses the staple itself and fails the handshake first, with "tlsv1 bad
 * certificate status response").
 *
 * @example
 * ```ts
 * import type { StatusReport } from "./cli_output.ts";
 * const report: StatusReport = { kind: "responses", responses: ["OCSP Response Data: ..."] };
 * console.log(report.kind);
 * ```
 */
export type StatusReport =
  | { kind: "none" }
  | { kind: "responses"; responses: string[] }
  | { kind: "parse-error" };

/**
 * Parses the OCSP part of `s_client -status` output (either release's form, see the module
 * doc). Throws when the output has no OCSP report at all (s_client not run with `-status`, or it
 * never got that far) or a form it does not know.
 *
 * @example
 * ```ts
 * import { statusReport } from "./cli_output.ts";
 * console.log(statusReport("CONNECTED(00000003)\nOCSP response: no response sent\n---\n")); // { kind: "none" }
 * console.log(statusReport("CONNECTED(00000003)\nOCSP responses: no responses sent\n---\n")); // the same
 * ```
 */
export function statusReport(stdout: string): StatusReport {
  // 3.0 - 3.5; 3.6+ on TLS 1.2 ("no OCSP response received" when nothing was stapled).
  if (/^OCSP response: (?:no response sent|no OCSP response received)$/m.test(stdout)) {
    return { kind: "none" };
  }
  if (/^OCSP response: response parse error$/m.test(stdout)) return { kind: "parse-error" };
  const one = /^OCSP response: \n(={10,})\n([\s\S]*?)\n\1$/m.exec(stdout);
  if (one !== null) return { kind: "responses", responses: [one[2]!.trim()] };
  // 3.6+ on TLS 1.3: a count, then each response between lines of `=`.
  if (/^OCSP responses: no responses sent$/m.test(stdout)) return { kind: "none" };
  const counted = /^OCSP responses: number of responses: (\d+)\n/m.exec(stdout);
  if (counted !== null) {
    const rest = stdout.slice(counted.index + counted[0].length);
    const end = rest.search(/^---$/m);
    const responses = (end < 0 ? rest : rest.slice(0, end))
      .split(/^={10,}$/m)
      .map((chunk) => chunk.trim())
      .filter((chunk) => chunk.startsWith("OCSP Response Data:"));
    if (responses.length !== Number(counted[1])) {
      throw new Error(`s_client announced ${counted[1]} OCSP responses, found ${responses.length}`);
    }
    return { kind: "responses", responses };
  }
  throw new Error(`no OCSP report (s_client -status) in:\n${stdout}`);
}

/**
 * The text of the one OCSP response `s_client -status` printed; throws (with the whole output)
 * if it reported none, several, or a parse error.
 *
 * @example
 * ```ts
 * import { stapledResponse } from "./cli_output.ts";
 * const out = "OCSP response: \n=====================\nOCSP Response Data:\n    Cert Status: good\n=====================\n---\n";
 * console.log(/Cert Status: good/.test(stapledResponse(out))); // true
 * ```
 */
export function stapledResponse(stdout: string): string {
  const report = statusReport(stdout);
  if (report.kind !== "responses" || report.responses.length !== 1) {
    throw new Error(
      `expected one stapled OCSP response, got ${JSON.stringify(report)} in:\n${stdout}`,
    );
  }
  return report.responses[0]!;
}

/**
 * A TLS alert as our errors name it: its number and OpenSSL's long description.
 *
 * @example
 * ```ts
 * import type { PeerAlert } from "./cli_output.ts";
 * const alert: PeerAlert = { code: 51, text: "decrypt error" };
 * console.log(alert);
 * ```
 */
export interface PeerAlert {
  code: number;
  text: string;
}

/**
 * The alert `openssl s_server` sends when a TLS 1.3 PSK binder does not verify (a wrong key):
 * illegal_parameter (47) up to OpenSSL 3.3, decrypt_error (51) from 3.4 on, as RFC 8446 §6.2
 * asks (openssl PR 25176, "Return SSL_AD_DECRYPT_ERROR alert on PSK binder validation failure").
 *
 * @example
 * ```ts
 * import { badBinderAlert } from "./cli_output.ts";
 * console.log(badBinderAlert()); // { code: 47, text: "illegal parameter" } on OpenSSL 3.0
 * ```
 */
export function badBinderAlert(): PeerAlert {
  return cliAtLeast(3, 4)
    ? { code: 51, text: "decrypt error" }
    : { code: 47, text: "illegal parameter" };
}
