#!/usr/bin/env bash
# Build the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan, no
# meson needed) and run each for a time budget.  Any crash, leak, timeout
# or sanitizer report fails the run; the input that caused it is kept in
# build-fuzz/artifacts/<target>/ and libFuzzer prints how to replay it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default 60 s, every target
#   FUZZ_BUILD_DIR=dir  build and corpus directory (default build-fuzz)
#   FUZZ_JOBS=N         libFuzzer worker processes per target (default 1)
#   CC=clang-14         the compiler (default clang)
#
# The corpus grows in build-fuzz/corpus/<target>/ from run to run; seeds
# come from tests/fuzz/make-corpus.sh and the reproducers of fixed bugs in
# tests/fuzz/regressions/<target>/.  Replay one input:
#   build-fuzz/fuzz_yaml build-fuzz/artifacts/yaml/crash-...
# A longer run by hand, e.g. an hour per target on 2 cores:
#   FUZZ_JOBS=2 scripts/fuzz.sh 3600
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS] [TARGET...]  (targets: yaml workflow scenario template expr)" >&2
  exit 2
fi
all_targets=(yaml workflow scenario template expr)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")

build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}
cc=${CC:-clang}
say() { printf '==> %s\n' "$*"; }

# The shared helpers every target links, then its own sources from the one
# list tests/fuzz/meson.build reads too.
common="runner/error.c runner/xalloc.c"
sources_for() {
  local line
  line=$(grep -E "^$1:" tests/fuzz/sources.txt) || {
    echo "unknown fuzz target '$1' (yaml workflow scenario template expr)" >&2
    return 1
  }
  echo "$common ${line#*:}"
}

# The project's warning flags, so a harness cannot hide a warning the build
# would reject.  -fno-sanitize-recover: a UBSan report must stop the run.
# shellcheck disable=SC2054  # the commas belong to -fsanitize=
cflags=(-std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
        -Wno-unused-parameter -fno-strict-aliasing
        -Irunner -Ireports -Iinjector -I.)
read -r -a pkg_flags <<< "$(pkg-config --cflags --libs yaml-0.1 libseccomp jansson)"

mkdir -p "$build"
for t in "${targets[@]}"; do
  srcs=$(sources_for "$t")
  say "building $build/fuzz_$t"
  # shellcheck disable=SC2086
  "$cc" "${cflags[@]}" -o "$build/fuzz_$t" "tests/fuzz/fuzz_$t.c" $srcs "${pkg_flags[@]}" -lm
done

say "seed corpora: tests/fuzz/make-corpus.sh $build/seeds"
rm -rf "$build/seeds"
tests/fuzz/make-corpus.sh "$build/seeds" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  artifacts="$build/artifacts/$t/"
  log="$build/fuzz_$t.log"
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus" "$build/seeds/$t")
  [[ -d tests/fuzz/regressions/$t ]] && inputs+=("tests/fuzz/regressions/$t")
  opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts")
  [[ -f tests/fuzz/$t.dict ]] && opts+=(-dict="tests/fuzz/$t.dict")
  if [[ $jobs -gt 1 ]]; then
    opts+=(-fork="$jobs" -ignore_crashes=0)
  fi
  say "fuzz_$t for ${seconds}s (log: $log)"
  rc=0
  "$build/fuzz_$t" "${opts[@]}" "${inputs[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [[ -z "$execs" ]] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  if [[ $rc -ne 0 ]]; then
    failed+=("$t")
    summary+=("$(printf '%-9s %12s execs  FAILED (exit %d): %s' "$t" "${execs:-?}" "$rc" \
      "$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log" || true)")")
    grep -A40 -m1 -E 'ERROR: |runtime error:' "$log" >&2 || tail -n 40 "$log" >&2
  else
    summary+=("$(printf '%-9s %12s execs  ok, corpus %d inputs' "$t" "${execs:-?}" \
      "$(find "$corpus" -type f | wc -l)")")
  fi
done

say "summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found problems in: ${failed[*]}; inputs in $build/artifacts/" >&2
  exit 1
fi
