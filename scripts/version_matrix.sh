#!/usr/bin/env bash
# The OpenSSL version matrix: runs the whole test suite (scripts/test.sh: Deno, Bun, Node.js 24
# and 26) inside Debian chroots that carry other OpenSSL releases than the host, and prints one
# line per version,
#   OpenSSL 3.5.9 (libssl.so.3), CLI 3.5.9, trixie [152s]: N passed, N failed
# (the library's version and file as its default discovery finds them inside, then the openssl
# command's, i.e. the peers'), and as its LAST line the plain `N passed, N failed` summed over
# every version. `.ci/run` runs it after the host's `npm test`.
#
#   bash scripts/version_matrix.sh                          # trixie and experimental, whole suite
#   bash scripts/version_matrix.sh trixie                   # one version
#   bash scripts/version_matrix.sh trixie -- tests/x509_test.ts   # one version, some test files
#   bash scripts/version_matrix.sh --build-only             # build (or check) the chroots only
#   bash scripts/version_matrix.sh --rebuild experimental   # throw the cached chroot away first
#   bash scripts/version_matrix.sh --bench trixie           # the benchmark against OpenSSL 3.5
#   bash scripts/version_matrix.sh --bench trixie -- --rounds 1 --only serve-bulk
#
# --bench runs bench/run.ts (with the arguments after --) inside each chroot instead of the
# suite, so that this library and the native C programs use that OpenSSL, and writes the report
# to bench/results/openssl-SUITE.md. The runtimes' built-in TLS stays what it is everywhere
# (Deno: rustls, Bun: BoringSSL, Node: its bundled OpenSSL). It first installs what the native
# programs are built with (gcc, libc6-dev, libssl-dev) into the cached chroot, once; CI never
# uses --bench. Never run it next to another benchmark or a test run.
#
# Suites (Debian's own packages; the library finds OpenSSL by its default discovery):
#   trixie        Debian 13, OpenSSL 3.5 LTS
#   sid           Debian unstable, OpenSSL 3.6 (not in the default list: not a release anyone
#                 ships for long; run it by name)
#   experimental  sid plus `experimental main` with `apt-get install -t experimental openssl
#                 libssl4`: OpenSSL 4.0 (libssl.so.4). libssl3t64 (3.6) stays installed because
#                 apt and nodejs depend on it, so the library has to pick libssl.so.4 by itself.
#
# How: `debootstrap --variant=minbase` from $DEBIAN_MIRROR (default http://deb.debian.org/debian,
# the only archive CI can reach), then inside `apt-get install --no-install-recommends` of the
# peers the suite spawns (node, openssl, gnutls-serv/gnutls-cli, faketime, curl, nginx, mosquitto;
# a policy-rc.d keeps the last two from starting as services) plus ca-certificates
# (with the host's /usr/local/share/ca-certificates/*.crt copied in) and procps. The repository,
# with the host's node_modules (the deno and bun binaries), is bind-mounted at /libssl-ffi inside;
# /proc, /sys, /dev and /dev/pts are mounted for the build and the run and unmounted in reverse
# order afterwards, also on failure or Ctrl-C (EXIT trap; processes still running inside the
# chroot are ended first, by pid). The chroot shares the host's network namespace, so the
# suite's loopback peers work. Results go to .test-results/openssl-SUITE/{deno,bun}.xml and the
# full log to .test-results/openssl-SUITE/test.log, never over the host run's reports.
#
# Cache: each chroot lives in $LIBSSL_FFI_CHROOTS/SUITE (default /var/cache/libssl-ffi-chroots,
# outside the repository) and is reused when its marker file .libssl-ffi-chroot holds this
# script's RECIPE number; the marker is written last, so a half-built chroot (an interrupted
# build) is rebuilt, never used. Builds happen in SUITE.partial and are renamed when complete.
# Bump RECIPE below whenever the recipe changes, and every cached chroot is rebuilt once.
# A per-suite lock file (flock) keeps two runs on the same machine from building or mounting
# the same chroot at once; the second one waits.
#
# By hand, one version, a shell inside it (after one run has built it):
#   bash scripts/version_matrix.sh --build-only trixie
#   R=/var/cache/libssl-ffi-chroots/trixie
#   for d in proc sys dev dev/pts; do mount --bind /$d $R/$d; done
#   mkdir -p $R/libssl-ffi && mount --bind "$PWD" $R/libssl-ffi
#   chroot $R bash -c 'cd /libssl-ffi && bash scripts/test.sh tests/x509_test.ts'
#   umount $R/libssl-ffi $R/dev/pts $R/dev $R/sys $R/proc
#
# MATRIX_LIBSSL_PATH / MATRIX_LIBCRYPTO_PATH (paths inside the chroot) are passed in as
# LIBSSL_PATH / LIBCRYPTO_PATH, to try a library by hand; the version line then says
# "LIBSSL_PATH override". CI never sets them: there the library's default discovery is tested.
# TEST_RUNTIMES (e.g. "node26") is passed in as it is: only those runtimes run (CI runs all).
#
# Needs root, debootstrap, mount, chroot and flock. As root with apt-get, a missing debootstrap
# is installed; otherwise the script stops and prints the install line.
# Exit code: 0 when every version built and passed; 1 when a build failed or a test failed;
# 2 on a usage error or a missing prerequisite.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

CACHE=$(realpath -m "${LIBSSL_FFI_CHROOTS:-/var/cache/libssl-ffi-chroots}")
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when anything in build_chroot changes: cached chroots with another number are rebuilt.
RECIPE=2
MARKER=.libssl-ffi-chroot
INSIDE=/libssl-ffi
DEFAULT_SUITES=(trixie experimental)
# What the suite spawns: node (fixtures, examples), openssl, gnutls-serv/gnutls-cli, faketime,
# curl, nginx and mosquitto (the ecosystem tests); ca-certificates for the system-store tests;
# procps (ps, kill) for looking into a run by hand.
PACKAGES=(nodejs openssl gnutls-bin faketime curl nginx mosquitto ca-certificates procps)

usage() {
  echo "usage: bash scripts/version_matrix.sh [--build-only] [--rebuild] [SUITE...] [-- TEST_FILE...]" >&2
  echo "       bash scripts/version_matrix.sh --bench [SUITE...] [-- BENCH_ARG...]" >&2
  echo "       SUITE: trixie, sid, experimental (default: ${DEFAULT_SUITES[*]})" >&2
}

# --- arguments -----------------------------------------------------------------------------

build_only=0
rebuild=0
bench=0
suites=()
test_files=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-only) build_only=1 ;;
    --rebuild) rebuild=1 ;;
    --bench) bench=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      test_files=("$@")
      break
      ;;
    trixie | sid | experimental) suites+=("$1") ;;
    *)
      echo "version_matrix: unknown argument: $1" >&2
      usage
      exit 2
      ;;
  esac
  shift
done
if [[ ${#suites[@]} -eq 0 ]]; then suites=("${DEFAULT_SUITES[@]}"); fi

# --- prerequisites -------------------------------------------------------------------------

is_root=0
if [[ $(id -u) -eq 0 ]]; then is_root=1; fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if [[ $is_root -eq 1 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "version_matrix: installing debootstrap" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y debootstrap || { apt-get update && apt-get install -y debootstrap; } || true
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "version_matrix: debootstrap is not installed; install it and re-run:" >&2
    if [[ $is_root -eq 1 ]]; then
      echo "apt-get install -y debootstrap" >&2
    else
      echo "sudo apt-get install -y debootstrap" >&2
    fi
    exit 2
  fi
fi
if [[ $is_root -eq 0 ]]; then
  echo "version_matrix: needs root (debootstrap, mount, chroot); run it as root or with sudo:" >&2
  echo "sudo bash scripts/version_matrix.sh ${suites[*]}" >&2
  exit 2
fi
for tool in mount umount mountpoint chroot flock realpath; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "version_matrix: $tool is missing (package util-linux / coreutils)" >&2
    exit 2
  fi
done
if [[ $build_only -eq 0 && (! -x node_modules/.bin/deno || ! -x node_modules/.bin/bun) ]]; then
  echo "version_matrix: run npm ci first (the chroots use the host's node_modules)" >&2
  exit 2
fi

# --- mounts and cleanup --------------------------------------------------------------------

# Mount points made by this script, in the order they were made.
MOUNTS=()
ROOT_IN_USE=""

# mount_into ROOT TARGET MOUNT-ARGS...: mounts and remembers TARGET (a path under ROOT).
mount_into() {
  local target=$1$2
  shift 2
  mkdir -p "$target" || return 1
  mount "$@" "$target" || return 1
  MOUNTS+=("$target")
}

# Every mount point at or below $1, deepest first (from /proc/self/mounts).
mounts_under() {
  awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# The pids of the processes whose root directory is $1.
processes_in() {
  local link pid
  for link in /proc/[0-9]*/root; do
    if [[ $(readlink "$link" 2>/dev/null || true) == "$1" ]]; then
      pid=${link#/proc/}
      echo "${pid%/root}"
    fi
  done
}

# Ends what still runs inside the chroot $1, by pid: the suite's peer reapers poll once a second
# and leave by themselves shortly after the runner exits, so first wait up to 5 s; whatever is
# left (an interrupted run) gets SIGTERM, then SIGKILL.
end_processes_in() {
  local root=$1 pid pids=() i
  for ((i = 0; i < 10; i++)); do
    mapfile -t pids < <(processes_in "$root")
    [[ ${#pids[@]} -gt 0 ]] || return 0
    sleep 0.5
  done
  echo "version_matrix: ending ${#pids[@]} process(es) still running in $root:" >&2
  for pid in "${pids[@]}"; do
    echo "  $pid $( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)" >&2
  done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 1
  mapfile -t pids < <(processes_in "$root")
  if [[ ${#pids[@]} -gt 0 ]]; then kill -KILL "${pids[@]}" 2>/dev/null || true; fi
}

# Unmounts everything this script mounted, in reverse order.
unmount_all() {
  if [[ -n $ROOT_IN_USE ]]; then end_processes_in "$ROOT_IN_USE"; fi
  local i target
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    target=${MOUNTS[i]}
    # Only a real mount point: umount takes an unmounted path's name as a source too, and
    # "proc" would then name the host's /proc.
    mountpoint -q "$target" || continue
    umount "$target" 2>/dev/null || umount -l "$target" ||
      echo "version_matrix: could not unmount $target" >&2
  done
  MOUNTS=()
  ROOT_IN_USE=""
}

# mount_system ROOT: /proc, /sys, /dev, /dev/pts, for apt's maintainer scripts and the tests.
mount_system() {
  ROOT_IN_USE=$1
  mount_into "$1" /proc -t proc proc &&
    mount_into "$1" /sys -t sysfs sysfs &&
    mount_into "$1" /dev --bind /dev &&
    mount_into "$1" /dev/pts --bind /dev/pts
}

# Deletes a chroot directory, but never while anything is mounted below it (a bind-mounted
# /dev or repository would be deleted with it).
remove_tree() {
  local dir=$1 left
  [[ -e $dir ]] || return 0
  left="$(mounts_under "$dir")"
  if [[ -n $left ]]; then
    echo "version_matrix: not deleting $dir, still mounted below it:" >&2
    echo "$left" >&2
    return 1
  fi
  rm -rf --one-file-system "$dir"
}

# shellcheck disable=SC2317 # invoked through traps
on_exit() {
  local rc=$?
  unmount_all
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# in_chroot ROOT COMMAND...: runs COMMAND inside ROOT with a small, clean environment.
in_chroot() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# --- building a chroot ---------------------------------------------------------------------

# build_chroot SUITE DIR: builds the chroot for SUITE in DIR (which must not exist).
# Every step checks its own status: `set -e` does not apply inside a function that is called
# as a condition (`if ! build_chroot ...`).
build_chroot() {
  local suite=$1 dir=$2 base=$1
  if [[ $suite == experimental ]]; then base=sid; fi

  debootstrap --variant=minbase "$base" "$dir" "$MIRROR" || return 1

  # sid's (and experimental's) Release file may be past its Valid-Until date when the mirror
  # lags; recommends would pull in far more than the suite needs.
  printf '%s\n' 'Acquire::Check-Valid-Until "false";' 'APT::Install-Recommends "false";' \
    'APT::Install-Suggests "false";' >"$dir/etc/apt/apt.conf.d/99libssl-ffi" || return 1
  if [[ $suite == experimental ]]; then
    echo "deb $MIRROR experimental main" >"$dir/etc/apt/sources.list.d/experimental.list" ||
      return 1
  fi
  # minbase writes no /etc/hosts; the tests connect to `localhost`.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts" ||
    return 1
  # The host's extra CA certificates (a proxy's, a company's), so that TLS clients inside trust
  # what they trust on the host; update-ca-certificates adds them to the system store.
  mkdir -p "$dir/usr/local/share/ca-certificates" || return 1
  local crt
  for crt in /usr/local/share/ca-certificates/*.crt; do
    if [[ -f $crt ]]; then cp "$crt" "$dir/usr/local/share/ca-certificates/" || return 1; fi
  done

  # No service may start inside the chroot while packages install (nginx would take port 80):
  # invoke-rc.d asks policy-rc.d first, and 101 means "not allowed".
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" || return 1
  chmod +x "$dir/usr/sbin/policy-rc.d" || return 1

  mount_system "$dir" || return 1
  in_chroot "$dir" apt-get update || return 1
  in_chroot "$dir" apt-get install -y "${PACKAGES[@]}" || return 1
  if [[ $suite == experimental ]]; then
    in_chroot "$dir" apt-get install -y -t experimental openssl libssl4 || return 1
  fi
  in_chroot "$dir" update-ca-certificates || return 1
  in_chroot "$dir" apt-get clean || return 1
  unmount_all

  # Check the result before calling it complete.
  local cmd
  for cmd in node openssl gnutls-serv gnutls-cli faketime curl /usr/sbin/nginx /usr/sbin/mosquitto; do
    if ! in_chroot "$dir" sh -c "command -v $cmd" >/dev/null; then
      echo "version_matrix: the $suite chroot has no $cmd after the install" >&2
      return 1
    fi
  done
  if [[ $suite == experimental ]] && ! compgen -G "$dir/usr/lib/*/libssl.so.4" >/dev/null; then
    echo "version_matrix: the experimental chroot has no libssl.so.4 after the install" >&2
    return 1
  fi
  in_chroot "$dir" openssl version || return 1
  # Written last: its presence means complete.
  echo "$RECIPE" >"$dir/$MARKER"
}

# ensure_chroot SUITE: a complete chroot for SUITE in $CACHE/SUITE, built if missing,
# incomplete or from another RECIPE.
ensure_chroot() {
  local suite=$1 dir=$CACHE/$1
  if [[ $rebuild -eq 0 && -f $dir/$MARKER && $(cat "$dir/$MARKER") == "$RECIPE" ]]; then
    echo "using the cached chroot $dir (recipe $RECIPE)"
    return 0
  fi
  echo "building the $suite chroot in $dir (recipe $RECIPE)"
  remove_tree "$dir.partial" || return 1
  if ! build_chroot "$suite" "$dir.partial"; then
    unmount_all
    echo "version_matrix: building the $suite chroot FAILED" >&2
    return 1
  fi
  remove_tree "$dir" || return 1
  mv "$dir.partial" "$dir"
}

# --- running the suite ---------------------------------------------------------------------

# mount_for_run ROOT: the system mounts and the repository at $INSIDE, for a run inside ROOT;
# on failure nothing stays mounted.
mount_for_run() {
  if ! mount_system "$1" || ! mount_into "$1" "$INSIDE" --bind "$REPO"; then
    echo "version_matrix: mounting into $1 failed" >&2
    unmount_all
    return 1
  fi
}

# run_suite SUITE LOG: runs scripts/test.sh inside the SUITE chroot; output to stdout and LOG.
run_suite() {
  local suite=$1 log=$2 root=$CACHE/$1
  local results=.test-results/openssl-$suite
  local env=(TEST_RESULTS="$results")
  if [[ -n ${MATRIX_LIBSSL_PATH:-} ]]; then env+=(LIBSSL_PATH="$MATRIX_LIBSSL_PATH"); fi
  if [[ -n ${MATRIX_LIBCRYPTO_PATH:-} ]]; then env+=(LIBCRYPTO_PATH="$MATRIX_LIBCRYPTO_PATH"); fi
  # Only some runtimes (scripts/test.sh's TEST_RUNTIMES), e.g. to soak one test on one of them.
  if [[ -n ${TEST_RUNTIMES:-} ]]; then env+=(TEST_RUNTIMES="$TEST_RUNTIMES"); fi

  mount_for_run "$root" || return 1
  # Leftovers of an interrupted run must not fill the cached chroot.
  find "$root/tmp" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +

  local rc=0
  # The library's own view: which libssl default discovery (or the override) picked.
  in_chroot "$root" "${env[@]}" sh -c "cd $INSIDE && node_modules/.bin/deno eval \
'import { opensslVersion as v } from \"./mod.ts\"; const o = v();
console.log(\"library-version \" + o.version + \" \" + o.libssl);'" 2>&1 | tee -a "$log" || true
  # shellcheck disable=SC2016 # expanded by the shell inside the chroot
  in_chroot "$root" sh -c 'echo "cli-version $(openssl version)"' | tee -a "$log"
  in_chroot "$root" "${env[@]}" bash -c "cd $INSIDE && exec bash scripts/test.sh \"\$@\"" \
    test.sh "${test_files[@]}" 2>&1 | tee -a "$log" || rc=$?
  unmount_all
  # Cores the suite kept (scripts/test.sh; there is no gdb inside): read with the host's gdb, the
  # chroot as the sysroot, so that the frames name the chroot's libraries (its OpenSSL).
  local exe_note core
  for exe_note in "$results"/cores/*.exe; do
    [[ -f $exe_note ]] || continue
    core=${exe_note%.exe}
    echo "version_matrix: $suite: what the crashed process was doing (${core##*/}):" | tee -a "$log"
    bash scripts/core_backtrace.sh --sysroot "$root" "$(cat "$exe_note")" "$core" 2>&1 |
      sed 's/^/  /' | tee -a "$log" || true
    rm -f "$core" "$exe_note"
  done
  return "$rc"
}

# run_bench SUITE: the benchmark inside the SUITE chroot (the arguments after -- go to it).
run_bench() {
  local suite=$1 root=$CACHE/$1
  mount_for_run "$root" || return 1
  local rc=0
  if ! in_chroot "$root" sh -c 'command -v gcc && test -f /usr/include/openssl/ssl.h' >/dev/null; then
    echo "installing gcc, libc6-dev and libssl-dev into the $suite chroot (for bench/native/)"
    # experimental: the headers of the OpenSSL 4.0 the chroot runs.
    local dev=libssl-dev
    if [[ $suite == experimental ]]; then dev=libssl-dev/experimental; fi
    { in_chroot "$root" apt-get update &&
      in_chroot "$root" apt-get install -y gcc libc6-dev "$dev" &&
      in_chroot "$root" apt-get clean; } || rc=$?
  fi
  if [[ $rc -eq 0 ]]; then
    in_chroot "$root" bash -c "cd $INSIDE && exec node_modules/.bin/deno run -A bench/run.ts \
      --report openssl-$suite \"\$@\"" run.ts "${test_files[@]}" || rc=$?
  fi
  unmount_all
  return "$rc"
}

# --- main ----------------------------------------------------------------------------------

mkdir -p "$CACHE"
summary_lines=()
total_passed=0
total_failed=0
status=0

for suite in "${suites[@]}"; do
  echo
  echo "=== OpenSSL matrix: $suite ==="
  exec {lock}>"$CACHE/$suite.lock"
  if ! flock -n "$lock"; then
    echo "waiting for another run that holds $CACHE/$suite.lock"
    flock "$lock"
  fi

  started=$SECONDS
  if ! ensure_chroot "$suite"; then
    summary_lines+=("OpenSSL ? ($suite): chroot build FAILED, counted as 0 passed, 1 failed")
    total_failed=$((total_failed + 1))
    status=1
    exec {lock}>&-
    continue
  fi
  build_seconds=$((SECONDS - started))
  [[ $build_seconds -le 1 ]] || echo "$suite chroot ready in ${build_seconds}s"

  if [[ $build_only -eq 1 ]]; then
    exec {lock}>&-
    continue
  fi
  if [[ $bench -eq 1 ]]; then
    bench_rc=0
    run_bench "$suite" || bench_rc=$?
    exec {lock}>&-
    summary_lines+=("bench $suite: exit code $bench_rc, report bench/results/openssl-$suite.md")
    if [[ $bench_rc -ne 0 ]]; then status=1; fi
    continue
  fi

  results=.test-results/openssl-$suite
  mkdir -p "$results"
  log=$results/test.log
  : >"$log"
  started=$SECONDS
  run_rc=0
  run_suite "$suite" "$log" || run_rc=$?
  run_seconds=$((SECONDS - started))
  exec {lock}>&-

  library="$(sed -n 's/^library-version \([^ ]*\) \(.*\)$/\1 (\2)/p' "$log" | tail -n 1)"
  cli="$(sed -n 's/^cli-version OpenSSL \([^ ]*\).*$/\1/p' "$log" | tail -n 1)"
  counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)"
  label="OpenSSL ${library:-? (the library did not load)}, CLI ${cli:-?}, $suite"
  if [[ -n ${MATRIX_LIBSSL_PATH:-}${MATRIX_LIBCRYPTO_PATH:-} ]]; then
    label="$label, LIBSSL_PATH override"
  fi
  if [[ -z $counts ]]; then
    summary_lines+=("$label: no 'N passed, N failed' line (exit code $run_rc), counted as 0 passed, 1 failed")
    total_failed=$((total_failed + 1))
    status=1
    continue
  fi
  passed=${counts%% passed*}
  failed=${counts#*passed, }
  failed=${failed%% failed}
  summary_lines+=("$label [${run_seconds}s]: $counts")
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [[ $run_rc -ne 0 || $failed -ne 0 ]]; then status=1; fi
done

echo
echo "=== OpenSSL version matrix ==="
if [[ $build_only -eq 1 || $bench -eq 1 ]]; then
  printf '%s\n' "${summary_lines[@]}" "done: ${suites[*]}"
  exit "$status"
fi
printf '%s\n' "${summary_lines[@]}"
echo "$total_passed passed, $total_failed failed"
exit "$status"
