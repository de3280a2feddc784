#!/usr/bin/env bash
# Quick start: set up, build, and run the seed workflow once.
#
#   sudo scripts/quickstart-run.sh
#
# The seed workflow ends Failed on purpose (its main step exits 1) so that
# its exit handler has a failure to react to; exitprobe therefore exits 1.
# This script exits 0 when that is what happened and the report shows the
# exit handler ran, and passes any other failure through.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scenario=scenarios/exit-handler-workflow.yaml
report=reports/out/exit-handler-workflow.json

scripts/setup.sh

# A report left by an earlier run must not stand in for this one.
rm -f "$report"
printf '==> ./build/exitprobe run %s --report %s\n' "$scenario" "$report"
status=0
./build/exitprobe run "$scenario" --report "$report" || status=$?

echo
case "$status" in
  0) echo "exitprobe exited 0: the workflow Succeeded." ;;
  1) echo "exitprobe exited 1: the workflow ended Failed, as the lesson intends" \
          "(its main step fails on purpose so the exit handler has something to report)." ;;
  *) echo "quickstart-run.sh: exitprobe failed with exit status $status" >&2
     exit "$status" ;;
esac

if [[ ! -f "$report" ]]; then
  echo "quickstart-run.sh: no report was written to $report" >&2
  exit 1
fi
if grep -Eq '"ran"[[:space:]]*:[[:space:]]*true' "$report"; then
  echo "The exit handler (spec.onExit) ran; full report: $report"
else
  echo "quickstart-run.sh: the report says the exit handler did not run: $report" >&2
  exit 1
fi
