#!/usr/bin/env bash
# Run one exitprobe scenario on a real Argo Workflows cluster and judge it
# with the same expectations as a local run (docs/CLUSTER.md).
#
#   scripts/argo-cluster.sh SCENARIO.yaml [-n NAMESPACE] [--out DIR] [--keep]
#
# Steps:
#   1. exitprobe export SCENARIO --target argo -o DIR/<scenario>.workflow.json
#      (faults a cluster cannot express are listed on stderr and the verdict
#      will be inconclusive for them);
#   2. argo submit DIR/<scenario>.workflow.json -o name (the manifest's fixed
#      metadata.name: a previous run of the same name is deleted first unless
#      --keep is given, since the API server refuses a second one);
#   3. if the scenario has a shutdown fault (annotation exitprobe.io/shutdown):
#      wait until the target node runs (or the workflow, without a target),
#      sleep the `after` time, then `argo stop` or `argo terminate`;
#   4. argo wait NAME (its exit status 1 for Failed/Error is expected and not
#      an error here);
#   5. argo get NAME -o json > DIR/<scenario>.status.json;
#      argo logs NAME > DIR/<scenario>.logs.txt (for a human: verify does not
#      read logs, so `logs` expectations are reported as not checked);
#   6. exitprobe verify SCENARIO DIR/<scenario>.status.json: its exit status
#      is this script's (0 passed, 1 failed, 2 bad input, 3 inconclusive).
#
# Needs: exitprobe (EXITPROBE, default: exitprobe on PATH), argo (ARGO), a
# kube context with the Argo controller installed, and jq for step 3.
#
# NOT TESTED HERE: the machine exitprobe is developed on has no cluster.
# The commands follow the Argo CLI as described in
# ../shared/reference/argo-cluster-path.md (argo v4.1 sources); the parts
# this repository's tests do cover are export, schema validation and verify
# against `argo get -o json`-shaped documents (tests/test_cluster.c).
set -euo pipefail

usage() {
  sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
}

EXITPROBE=${EXITPROBE:-exitprobe}
ARGO=${ARGO:-argo}
namespace=argo
out=.
keep=false
scenario=

while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--namespace) namespace=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "argo-cluster.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [[ -z "$scenario" ]] || { echo "argo-cluster.sh: one scenario at a time" >&2; exit 2; }
       scenario=$1; shift ;;
  esac
done
[[ -n "$scenario" ]] || { usage >&2; exit 2; }
mkdir -p "$out"

base=$(basename "$scenario"); base=${base%.yaml}; base=${base%.yml}
manifest="$out/$base.workflow.json"
status_json="$out/$base.status.json"

# 1. export
"$EXITPROBE" export "$scenario" --target argo -o "$manifest"

# 2. submit
if command -v jq >/dev/null; then
  wf_name=$(jq -r '.metadata.name // empty' "$manifest")
  if [[ -n "$wf_name" && $keep == false ]]; then
    "$ARGO" delete -n "$namespace" "$wf_name" >/dev/null 2>&1 || true
  fi
fi
name=$("$ARGO" submit -n "$namespace" "$manifest" -o name)
echo "argo-cluster.sh: submitted $name" >&2

# 3. shutdown fault, by hand as the manifest cannot carry it
strategy=; after_ms=0; target=
if command -v jq >/dev/null; then
  strategy=$(jq -r '.metadata.annotations["exitprobe.io/shutdown"] // empty' "$manifest")
  after=$(jq -r '.metadata.annotations["exitprobe.io/shutdown-after"] // "0ms"' "$manifest")
  after_ms=${after%ms}
  target=$(jq -r '.metadata.annotations["exitprobe.io/shutdown-target"] // empty' "$manifest")
elif grep -q '"exitprobe.io/shutdown"' "$manifest"; then
  echo "argo-cluster.sh: the scenario needs argo stop/terminate but jq is missing" >&2
fi
if [[ -n "$strategy" ]]; then
  # Poll until the target node runs (displayName, templateName or name equal
  # to the target; globs are not expanded here) or the workflow runs.
  for _ in $(seq 1 600); do
    if [[ -n "$target" ]]; then
      running=$("$ARGO" get -n "$namespace" "$name" -o json | jq -r --arg t "$target" \
        '[.status.nodes // {} | .[] | select(.phase == "Running")
          | select(.displayName == $t or .templateName == $t or .name == $t)] | length')
    else
      running=$("$ARGO" get -n "$namespace" "$name" -o json |
        jq -r 'if .status.phase == "Running" then 1 else 0 end')
    fi
    [[ "$running" -gt 0 ]] && break
    sleep 1
  done
  sleep "$(awk -v ms="$after_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
  if [[ "$strategy" == Stop ]]; then
    "$ARGO" stop -n "$namespace" "$name"
  else
    "$ARGO" terminate -n "$namespace" "$name"
  fi
fi

# 4. wait (exit status 1 means the workflow Failed: that is for verify to judge)
"$ARGO" wait -n "$namespace" "$name" || true

# 5. the final status, and the logs for a human
"$ARGO" get -n "$namespace" "$name" -o json > "$status_json"
"$ARGO" logs -n "$namespace" "$name" > "$out/$base.logs.txt" 2>&1 || true

# 6. the verdict
exec "$EXITPROBE" verify "$scenario" "$status_json"
