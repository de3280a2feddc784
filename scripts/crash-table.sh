#!/usr/bin/env bash
# Print, as a Markdown table, what happens to the exit handler when the
# controller is killed at each crash point of a workflow, under each of
# restart / lose-state / stay-down.  Usage (as root, after scripts/setup.sh):
#   scripts/crash-table.sh [WORKFLOW.yaml]      (default: the seed workflow)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo_root/build/exitprobe"
wf="$(realpath "${1:-$repo_root/scenarios/exit-handler-workflow.yaml}")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

field() { # field NAME FILE: the first "NAME": value in a report
  grep -m1 -o "\"$1\": [^,}]*" "$2" | sed 's/^[^:]*: //; s/"//g'
}

echo "| crash point | restart | lose-state | stay-down |"
echo "|---|---|---|---|"
"$bin" crash-points "$wf" | while read -r point; do
  row="| \`$point\` |"
  for mode in restart lose-state stay-down; do
    cat > "$tmp/s.yaml" <<YAML
apiVersion: exitprobe/v1
kind: Scenario
metadata: {name: crash-table}
spec:
  workflow: $wf
  faults:
  - {action: controller-crash, at: "$point", then: $mode}
YAML
    "$bin" run -q --report "$tmp/r.json" "$tmp/s.yaml" > /dev/null 2>&1 || true
    runs="$(field runs "$tmp/r.json")"
    by="$(field by "$tmp/r.json")"
    row="$row $by, $runs run$([ "$runs" = 1 ] || echo s) |"
  done
  echo "$row"
done
