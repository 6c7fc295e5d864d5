/**
 * Checks the import structure of the library (run by `.ci/run`, and by hand:
 * `deno run --allow-read scripts/check_imports.ts`):
 *
 * - no import cycles among `src/` and `ffi/` files, type-only imports included;
 * - `ffi/` (the only code that knows C) imports nothing above it;
 * - in `src/`, only `src/core/native.ts` imports `ffi/`;
 * - `src/integrations/` (the node:stream adapters) sits on top of the library: nothing else in
 *   `src/` or `ffi/` imports it (only `mod.ts` re-exports it).
 *
 * Prints each problem and exits with 1 if there is any.
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** Relative specifiers of every static `import`/`export ... from` and dynamic `import("...")`. */
function importsOf(file: string): string[] {
  // Comments first: JSDoc examples import "../mod.ts" and are not part of the graph.
  const text = readFileSync(join(ROOT, file), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const specifiers: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) {
      const specifier = match[1]!;
      if (specifier.startsWith(".")) specifiers.push(normalize(join(dirname(file), specifier)));
    }
  }
  return specifiers;
}

const files = [...listTs("src"), ...listTs("ffi")];
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const problems: string[] = [];

for (const [file, deps] of graph) {
  for (const dep of deps) {
    if (file.startsWith("ffi/") && !dep.startsWith("ffi/")) {
      problems.push(`${file} imports ${dep}: ffi/ must not import anything above it`);
    }
    if (file.startsWith("src/") && dep.startsWith("ffi/") && file !== "src/core/native.ts") {
      problems.push(`${file} imports ${dep}: only src/core/native.ts may import ffi/`);
    }
    if (dep.startsWith("src/integrations/") && !file.startsWith("src/integrations/")) {
      problems.push(`${file} imports ${dep}: src/integrations/ sits above the library`);
    }
  }
}

// Tarjan's strongly connected components: every component with more than one file, or a file
// importing itself, is a cycle.
let index = 0;
const indexOf = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
function visit(file: string): void {
  indexOf.set(file, index);
  low.set(file, index);
  index++;
  stack.push(file);
  onStack.add(file);
  for (const dep of graph.get(file) ?? []) {
    if (!graph.has(dep)) continue;
    if (!indexOf.has(dep)) {
      visit(dep);
      low.set(file, Math.min(low.get(file)!, low.get(dep)!));
    } else if (onStack.has(dep)) {
      low.set(file, Math.min(low.get(file)!, indexOf.get(dep)!));
    }
  }
  if (low.get(file) === indexOf.get(file)) {
    const component: string[] = [];
    for (;;) {
      const top = stack.pop()!;
      onStack.delete(top);
      component.push(top);
      if (top === file) break;
    }
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) {
      problems.push(`import cycle: ${component.sort().join(" <-> ")}`);
    }
  }
}
for (const file of files) if (!indexOf.has(file)) visit(file);

for (const p of problems) console.error(p);
console.log(
  `${files.length} files in src/ and ffi/: ` +
    (problems.length === 0 ? "no import cycles, layers respected" : `${problems.length} problems`),
);
if (problems.length > 0) Deno.exit(1);
