// @ts-check
// Summarises the JUnit XML reports written by `deno test --junit-path` and
// `bun test --reporter=junit --reporter-outfile`, and prints as its LAST line exactly
// `N passed, N failed` (summed over all reports).
//
// Usage: node scripts/junit_summary.mjs [--exit-code LABEL=CODE]... FILE...
//
// Each FILE is labelled by its base name without `.xml` (`.test-results/deno.xml` -> `deno`).
// `--exit-code deno=1` tells the summary how the runner that wrote `deno.xml` exited: neither
// runner records errors thrown outside a test (a module that fails to load, an uncaught error
// between tests) in its XML, so a runner that exited nonzero without a single failing testcase
// in its report is counted as one extra failure instead of passing silently.
//
// Testcases are counted from the `<testcase>` elements and their `<failure>`, `<error>` and
// `<skipped>` children, not from the summary attributes. Skipped and todo tests are counted
// as neither passed nor failed, and are listed by name.
//
// Exit code: 0 when every report exists, parses, has at least one testcase and has no failures
// (and no runner exited nonzero); 1 otherwise; 2 on a usage error.

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import process from "node:process";

/**
 * @typedef {{ name: string, attrs: Record<string, string>, children: XmlElement[], text: string }} XmlElement
 */

// Sticky: matches a start tag exactly at `lastIndex`.
const START_TAG =
  /<([A-Za-z_:][-\w.:]*)((?:\s+[A-Za-z_:][-\w.:]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;

const ENTITIES = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/** @param {string} s */
function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref) => {
    if (ref[0] === "#") {
      const code = ref[1] === "x" || ref[1] === "X"
        ? parseInt(ref.slice(2), 16)
        : parseInt(ref.slice(1), 10);
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return Object.hasOwn(ENTITIES, ref) ? ENTITIES[/** @type {keyof ENTITIES} */ (ref)] : whole;
  });
}

/**
 * A small, strict-enough XML parser: elements, attributes, text, CDATA, comments, processing
 * instructions and a DOCTYPE without an internal subset. Throws on malformed input
 * (unterminated constructs, mismatched or unclosed tags, no root element).
 * @param {string} xml
 * @returns {XmlElement}
 */
function parseXml(xml) {
  /** @type {XmlElement} */
  const doc = { name: "#document", attrs: {}, children: [], text: "" };
  /** @type {XmlElement[]} */
  const stack = [doc];
  let i = 0;
  const top = () => /** @type {XmlElement} */ (stack[stack.length - 1]);
  const expectEnd = (/** @type {string} */ end, /** @type {string} */ what) => {
    const j = xml.indexOf(end, i);
    if (j < 0) throw new Error(`unterminated ${what} at offset ${i}`);
    return j;
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt < 0) {
      top().text += decodeEntities(xml.slice(i));
      break;
    }
    if (lt > i) top().text += decodeEntities(xml.slice(i, lt));
    i = lt;
    if (xml.startsWith("<!--", i)) {
      i = expectEnd("-->", "comment") + 3;
    } else if (xml.startsWith("<![CDATA[", i)) {
      const j = expectEnd("]]>", "CDATA section");
      top().text += xml.slice(i + 9, j);
      i = j + 3;
    } else if (xml.startsWith("<?", i)) {
      i = expectEnd("?>", "processing instruction") + 2;
    } else if (xml.startsWith("<!", i)) {
      i = expectEnd(">", "declaration") + 1;
    } else if (xml.startsWith("</", i)) {
      const j = expectEnd(">", "end tag");
      const name = xml.slice(i + 2, j).trim();
      const open = top();
      if (stack.length === 1 || open.name !== name) {
        throw new Error(`unexpected </${name}> at offset ${i}, open element is <${open.name}>`);
      }
      stack.pop();
      i = j + 1;
    } else {
      START_TAG.lastIndex = i;
      const m = START_TAG.exec(xml);
      if (m === null) throw new Error(`malformed tag at offset ${i}`);
      const [whole, name = "", rawAttrs = "", selfClosing] = m;
      /** @type {Record<string, string>} */
      const attrs = {};
      for (const a of rawAttrs.matchAll(/([A-Za-z_:][-\w.:]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        attrs[/** @type {string} */ (a[1])] = decodeEntities(a[2] ?? a[3] ?? "");
      }
      /** @type {XmlElement} */
      const el = { name, attrs, children: [], text: "" };
      if (stack.length === 1 && doc.children.length > 0) {
        throw new Error(`second root element <${name}> at offset ${i}`);
      }
      top().children.push(el);
      if (!selfClosing) stack.push(el);
      i += whole.length;
    }
  }
  if (stack.length > 1) throw new Error(`unclosed element <${top().name}> at end of file`);
  const root = doc.children[0];
  if (root === undefined) throw new Error("no root element");
  return root;
}

/**
 * Every `<testcase>` with its enclosing `<testsuite>` (if any).
 * @param {XmlElement} root
 * @returns {{ tc: XmlElement, suite: XmlElement | undefined }[]}
 */
function testcases(root) {
  /** @type {{ tc: XmlElement, suite: XmlElement | undefined }[]} */
  const out = [];
  const walk = (/** @type {XmlElement} */ e, /** @type {XmlElement | undefined} */ suite) => {
    for (const c of e.children) {
      if (c.name === "testcase") out.push({ tc: c, suite });
      else walk(c, c.name === "testsuite" ? c : suite);
    }
  };
  walk(root, root.name === "testsuite" ? root : undefined);
  return out;
}

/**
 * ` [file]` for a testcase, or "" when the report does not know the test's file. Deno records
 * where `Deno.test()` was called, which for tests registered through tests/harness.ts is the
 * harness itself for every test; that location is useless and is left out.
 * @param {XmlElement} tc
 * @param {XmlElement | undefined} suite
 */
function location(tc, suite) {
  const where = tc.attrs.file || suite?.attrs.file || suite?.attrs.name || tc.attrs.classname ||
    "";
  return where === "" || /(^|\/)harness\.[cm]?[jt]s$/.test(where) ? "" : ` [${where}]`;
}

/** The first few non-empty lines of a failure message, on one line. @param {string} s */
function brief(s) {
  const text = s.split("\n").map((l) => l.trim()).filter((l) => l !== "").slice(0, 3).join(" | ");
  return text.length > 240 ? `${text.slice(0, 237)}...` : text;
}

/** @param {string[]} argv */
function parseArgs(argv) {
  /** @type {Map<string, number>} */
  const exitCodes = new Map();
  /** @type {string[]} */
  const files = [];
  for (let k = 0; k < argv.length; k++) {
    const arg = /** @type {string} */ (argv[k]);
    let spec;
    if (arg === "--exit-code") spec = argv[++k];
    else if (arg.startsWith("--exit-code=")) spec = arg.slice("--exit-code=".length);
    else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}`);
    else {
      files.push(arg);
      continue;
    }
    const m = /^([^=]+)=(-?\d+)$/.exec(spec ?? "");
    if (m === null) throw new Error(`--exit-code expects LABEL=CODE, got ${spec ?? "nothing"}`);
    exitCodes.set(/** @type {string} */ (m[1]), Number(m[2]));
  }
  if (files.length === 0) throw new Error("no report files given");
  return { exitCodes, files };
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`junit_summary: ${e instanceof Error ? e.message : e}`);
    console.error("usage: node scripts/junit_summary.mjs [--exit-code LABEL=CODE]... FILE...");
    return 2;
  }
  let totalPassed = 0;
  let totalFailed = 0;
  let bad = false;

  for (const file of args.files) {
    const label = basename(file).replace(/\.xml$/i, "");
    const exitCode = args.exitCodes.get(label);
    const crashed = exitCode !== undefined && exitCode !== 0;
    const how = crashed ? ` (the runner exited with code ${exitCode})` : "";

    let root;
    try {
      root = parseXml(readFileSync(file, "utf8"));
    } catch (e) {
      const reason = /** @type {{ code?: string }} */ (e)?.code === "ENOENT"
        ? "is missing: the runner did not write it (crashed, or failed type-checking or loading)"
        : `could not be parsed: ${e instanceof Error ? e.message : e}`;
      console.log(`${label}: FAILED, report ${file} ${reason}${how}; counted as 1 failed`);
      totalFailed += 1;
      bad = true;
      continue;
    }

    let passed = 0;
    /** @type {string[]} */
    const failures = [];
    /** @type {string[]} */
    const skipped = [];
    const cases = testcases(root);
    for (const { tc, suite } of cases) {
      const name = `${tc.attrs.name ?? "(unnamed)"}${location(tc, suite)}`;
      const failure = tc.children.find((c) => c.name === "failure" || c.name === "error");
      const skip = tc.children.find((c) => c.name === "skipped");
      if (failure !== undefined) {
        const msg = brief(failure.attrs.message || failure.text);
        failures.push(msg ? `${name}: ${msg}` : name);
      } else if (skip !== undefined) {
        const msg = skip.attrs.message;
        skipped.push(msg ? `${name} (${msg})` : name);
      } else {
        passed++;
      }
    }

    /** @type {string[]} */
    const notes = [];
    if (cases.length === 0) {
      failures.push(`(no testcases: report ${file} contains no <testcase> at all)${how}`);
      notes.push("report has zero testcases, counted as 1 failed");
    } else if (crashed && failures.length === 0) {
      failures.push(
        `(runner exited with code ${exitCode} but recorded no failing test: an error outside any` +
          " test, such as a module that failed to load or an uncaught error between tests;" +
          " see the runner output above)",
      );
      notes.push("runner failed outside the tests, counted as 1 failed");
    }

    const summary =
      `${label}: ${passed} passed, ${failures.length} failed, ${skipped.length} skipped`;
    console.log(notes.length > 0 ? `${summary} (${notes.join("; ")})` : summary);
    for (const f of failures) console.log(`  FAILED  ${f}`);
    if (skipped.length > 0) {
      console.log(
        `  WARNING: ${label} skipped ${skipped.length} test(s); they count as neither passed nor failed:`,
      );
      for (const s of skipped) console.log(`  SKIPPED ${s}`);
    }
    totalPassed += passed;
    totalFailed += failures.length;
    if (failures.length > 0) bad = true;
  }

  console.log(`${totalPassed} passed, ${totalFailed} failed`);
  return bad || totalFailed > 0 ? 1 : 0;
}

process.exitCode = main();
