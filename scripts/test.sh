#!/usr/bin/env bash
# Runs the test suite on Deno and then on Bun, and prints as its last line `N passed, N failed`
# (summed over both runtimes). `npm test` runs this script.
#
#   bash scripts/test.sh                       # every tests/**/*_test.ts on both runtimes
#   bash scripts/test.sh tests/foo_test.ts     # only these test files, on both runtimes
#   npm test -- tests/foo_test.ts              # the same through npm
#
# JUnit reports are written to .test-results/run-PID/{deno,bun}.xml (or $TEST_RESULTS/).
# Exit code: 0 when both runtimes pass; 1 when a test fails, a runner fails or a report is
# missing; 2 when a prerequisite is missing (npm install not run, system peers not installed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DENO=node_modules/.bin/deno
BUN=node_modules/.bin/bun
# One directory per run (TEST_RESULTS overrides it), so that runs at the same time cannot
# delete or overwrite each other's reports.
RESULTS=${TEST_RESULTS:-.test-results/run-$$}

# --- prerequisites -------------------------------------------------------------------------

if [[ ! -x $DENO || ! -x $BUN ]]; then
  echo "run npm install first" >&2
  exit 2
fi

# The tests talk to the `openssl` CLI, to `gnutls-serv`/`gnutls-cli` and use `faketime`.
# Prints the Debian packages that provide the missing commands, in a fixed order.
missing_packages() {
  local pkgs=()
  if ! command -v gnutls-serv >/dev/null 2>&1 || ! command -v gnutls-cli >/dev/null 2>&1; then
    pkgs+=(gnutls-bin)
  fi
  command -v faketime >/dev/null 2>&1 || pkgs+=(faketime)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  echo "${pkgs[*]}"
}

missing="$(missing_packages)"
if [[ -n $missing ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing missing test peers: $missing" >&2
    # shellcheck disable=SC2086 # $missing is a space-separated list of package names
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; then
      echo "test.sh: apt-get install failed; running apt-get update and retrying once" >&2
      DEBIAN_FRONTEND=noninteractive apt-get update || true
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || true
    fi
    missing="$(missing_packages)"
    if [[ -n $missing ]]; then
      echo "test.sh: could not install the test peers; install them and re-run:" >&2
      echo "apt-get install -y $missing" >&2
      exit 2
    fi
  else
    echo "test.sh: the tests need these system packages, which are not installed:" >&2
    echo "sudo apt-get install -y $missing" >&2
    exit 2
  fi
fi

# --- test selection ------------------------------------------------------------------------

# No arguments: the whole tests/ directory. Arguments: test files (or directories), passed to
# both runners. Bun treats a bare argument as a substring filter on paths, so existing relative
# paths get a `./` prefix to make Bun take them as paths, as Deno does.
deno_targets=()
bun_targets=()
if [[ $# -eq 0 ]]; then
  deno_targets=(tests/)
  bun_targets=(./tests/)
else
  for arg in "$@"; do
    if [[ $arg == -* ]]; then
      echo "test.sh: only test file paths are accepted as arguments, got: $arg" >&2
      exit 2
    fi
    deno_targets+=("$arg")
    if [[ -e $arg && $arg != /* && $arg != ./* && $arg != ../* ]]; then
      bun_targets+=("./$arg")
    else
      bun_targets+=("$arg")
    fi
  done
fi

# --- run -----------------------------------------------------------------------------------

mkdir -p "$RESULTS"
# A stale report from an earlier run must never be summarised as this run's result.
rm -f "$RESULTS/deno.xml" "$RESULTS/bun.xml"

unset DENO_DIR
export DENO_NO_UPDATE_CHECK=1

echo "=== deno test ==="
deno_rc=0
"$DENO" test --no-prompt \
  --allow-all \
  --v8-flags=--expose-gc \
  --junit-path="$RESULTS/deno.xml" \
  "${deno_targets[@]}" || deno_rc=$?

echo
echo "=== bun test ==="
bun_rc=0
"$BUN" test --reporter=junit --reporter-outfile="$RESULTS/bun.xml" \
  "${bun_targets[@]}" || bun_rc=$?

echo
echo "=== summary ==="
summary_rc=0
node scripts/junit_summary.mjs \
  --exit-code "deno=$deno_rc" --exit-code "bun=$bun_rc" \
  "$RESULTS/deno.xml" "$RESULTS/bun.xml" || summary_rc=$?

if [[ $deno_rc -ne 0 || $bun_rc -ne 0 || $summary_rc -ne 0 ]]; then
  exit 1
fi
