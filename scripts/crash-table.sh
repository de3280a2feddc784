#!/usr/bin/env bash
# Print, as Markdown tables, what happens to the exit handler when the
# controller is killed at each crash point of the six workflows of
# tests/test_crash.c, under each of restart / lose-state / stay-down: who ran
# it, and how many runs the ledger records.  The tables are the test's own
# output (its "table:" lines), so docs/CRASH-POINTS.md shows what the test
# checked.  Usage (as root, after `meson setup build && ninja -C build`):
#   scripts/crash-table.sh > /tmp/tables.md
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$repo_root/build"
EXITPROBE_BIN="$build/exitprobe" EXITPROBE_SOURCE_ROOT="$repo_root" \
  EXITPROBE_TEST_DATA="$repo_root/tests/data" ARGOSAY_BIN="$build/runner/exitprobe-argosay" \
  "$build/tests/test_crash" | sed -n 's/^table: \{0,1\}//p'
