#!/usr/bin/env bash
# Build the test suite with AddressSanitizer (+LeakSanitizer) and
# UndefinedBehaviorSanitizer in build-asan/ and run it there.  Any report
# from either sanitizer fails the run.
#
#   sudo scripts/sanitize-test.sh [extra meson test arguments]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

say() { printf '==> %s\n' "$*"; }

# b_lundef=false: with -fsanitize the runtime supplies symbols at load time,
# which meson's default -Wl,--no-undefined would reject.
setup_args=(--buildtype=debug "-Db_sanitize=address,undefined" -Db_lundef=false)

if [[ -f build-asan/meson-private/coredata.dat ]]; then
  say "meson setup --reconfigure build-asan ${setup_args[*]}"
  meson setup --reconfigure build-asan "${setup_args[@]}"
else
  if [[ -e build-asan ]]; then
    say "removing build-asan/: it is not a configured meson build directory"
    rm -rf build-asan
  fi
  say "meson setup build-asan ${setup_args[*]}"
  meson setup build-asan "${setup_args[@]}"
fi

say "meson compile -C build-asan"
meson compile -C build-asan

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
say "ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS meson test -C build-asan --print-errorlogs $*"
meson test -C build-asan --print-errorlogs "$@"
