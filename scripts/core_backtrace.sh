#!/usr/bin/env bash
# Prints what a crashed test process was doing: the backtrace of its core file, read with gdb.
# scripts/test.sh calls it when a process it ran left a core file; scripts/version_matrix.sh
# calls it on the host for the cores of a chroot run (no gdb inside the chroots), with the chroot
# as the sysroot, so that gdb finds the chroot's libraries (its OpenSSL), not the host's.
#
#   bash scripts/core_backtrace.sh [--sysroot DIR] EXECUTABLE CORE
#
# Prints the crashing thread's backtrace, then a few frames of every thread (a crash at exit can
# be another thread's doing). Without debug symbols the frames still name the exported function
# of each library (libcrypto's OPENSSL_cleanup, glibc's free), which is what tells a crash in
# OpenSSL from one in the runtime. Exit code: 0 when gdb read the core, 1 otherwise (no gdb:
# the install line is printed).
set -uo pipefail

sysroot=
if [[ ${1:-} == --sysroot ]]; then
  sysroot=$2
  shift 2
fi
if [[ $# -ne 2 ]]; then
  echo "usage: core_backtrace.sh [--sysroot DIR] EXECUTABLE CORE" >&2
  exit 2
fi
exe=$1
core=$2
if ! command -v gdb >/dev/null 2>&1; then
  echo "core_backtrace: no gdb to read $core (Debian: apt-get install -y gdb)"
  exit 1
fi
commands=(-ex "set pagination off" -ex "set width 0")
if [[ -n $sysroot ]]; then
  # Before the files load: the chroot's libraries, and its libthread_db (gdb declines to load
  # one from outside its safe path, and then shows no threads' names).
  commands+=(-iex "set sysroot $sysroot" -iex "set auto-load safe-path $sysroot")
fi
commands+=(
  -ex "file $exe" -ex "core-file $core"
  -ex "echo --- the crashing thread\n" -ex "bt 40"
  -ex "echo --- every thread\n" -ex "thread apply all bt 8"
)
# The whole of it can be long (Deno and Node.js run a dozen threads): the first 200 lines.
gdb -q -batch -nx "${commands[@]}" 2>&1 | grep -v "^warning: Section .\.reg-xstate" | head -n 200
exit "${PIPESTATUS[0]}"
