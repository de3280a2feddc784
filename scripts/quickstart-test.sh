#!/usr/bin/env bash
# Set up, build and run the whole test suite: once as built, once under
# AddressSanitizer+UndefinedBehaviorSanitizer.  This is what CI runs.
#
#   sudo scripts/quickstart-test.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# "passed failed skipped" counted from meson's log of the last run in $1.
count_results() {
  python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            result = json.loads(line).get("result", "")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
except FileNotFoundError:
    pass
print(passed, failed, skipped)
PY
}

total_passed=0 total_failed=0 total_skipped=0

# Runs one suite, prints its tally, and remembers whether it failed.
run_suite() {
  local label="$1" dir="$2"
  shift 2
  local status=0 passed failed skipped
  # A stale log would count an earlier run's results as this one's.
  rm -f "$dir/meson-logs/testlog.json"
  printf '==> %s\n' "$*"
  "$@" || status=$?
  read -r passed failed skipped < <(count_results "$dir")
  printf '%s: %d passed, %d failed, %d skipped\n' "$label" "$passed" "$failed" "$skipped"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
  if ((status == 0 && passed + failed + skipped == 0)); then
    echo "quickstart-test.sh: $label ran no test" >&2
    status=1
  fi
  return "$status"
}

finish() {
  printf 'total: %d passed, %d failed, %d skipped\n' \
    "$total_passed" "$total_failed" "$total_skipped"
  exit "$1"
}

scripts/setup.sh

status=0
run_suite build build meson test -C build --print-errorlogs || status=$?
((status == 0)) || finish "$status"
run_suite sanitizers build-asan scripts/sanitize-test.sh || status=$?
((status == 0)) || finish "$status"
# A bounded fuzz run of every input path (longer runs: scripts/fuzz.sh 600).
echo "==> scripts/fuzz.sh ${EXITPROBE_FUZZ_SECONDS:-15}"
scripts/fuzz.sh "${EXITPROBE_FUZZ_SECONDS:-15}" || status=$?
finish "$status"
