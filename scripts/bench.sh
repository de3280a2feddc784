#!/usr/bin/env bash
# Run every benchmark and keep the figures: step launch (bench_launch),
# controller overhead (bench_controller) and matrix throughput (bench_matrix).
# Each prints ratios against baselines it measures in the same run (plain
# fork+exec+wait / posix_spawn of /bin/true, one plain `exitprobe run`),
# because timings on a shared VM drift.  Nothing passes or
# fails on time: the exit status is non-zero only when a benchmark could not
# be built or run.
#
#   sudo scripts/bench.sh [--build DIR] [--out DIR] [--quick]
#                         [--sizes LIST] [--budget SECONDS] [--launches N]
#
#   --build DIR      meson build directory (default: build; set up if missing)
#   --out DIR        where results go (default: bench/results)
#   --quick          small sizes: launches 100, controller sizes 100,300, budget 120 s
#   --sizes LIST     controller workflow sizes in steps (default 100,1000,10000)
#   --budget S       per-run budget of the controller benchmark (default 600);
#                    sizes whose extrapolated time exceeds it are skipped and
#                    shown as estimates
#   --launches N     launches per configuration in bench_launch (default 300)
#
# Writes DIR/<UTC time>-<host>.txt (both tables, as printed) and .json (the
# machine, the launch table and the controller figures), and copies them to
# DIR/latest.txt and DIR/latest.json.  docs/BENCHMARKS.md explains every column.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

build=build
out=bench/results
sizes=100,1000,10000
budget=600
launches=300

usage() {
  sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --quick) sizes=100,300; budget=120; launches=100; shift ;;
    --sizes) sizes="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --launches) launches="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

say() { printf '==> %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  say "not root: the sandboxed configurations and every controller run need root; expect skips and failures"
fi

if [[ ! -f "$build/meson-private/coredata.dat" ]]; then
  say "meson setup $build"
  meson setup "$build" >/dev/null
fi
say "meson compile -C $build"
meson compile -C "$build" exitprobe bench/bench_launch bench/bench_controller bench/bench_matrix >/dev/null

mkdir -p "$out"
stamp="$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)"
txt="$out/$stamp.txt"
json="$out/$stamp.json"
work="$(mktemp -d /tmp/exitprobe-bench-XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Copied: a rebuild during the (long) run must not change the binary measured.
cp "$build/exitprobe" "$work/exitprobe"

cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
machine="$(uname -srm), ${cpu_model:-unknown CPU}, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- 2>/dev/null; then
  revision="$revision+dirty"
fi

{
  echo "exitprobe benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), revision $revision"
  echo "machine: $machine"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
} | tee "$txt"

status=0
say "bench_launch -n $launches"
if ! "$build/bench/bench_launch" -n "$launches" | tee "$work/launch.txt" | tee -a "$txt"; then
  say "bench_launch failed"
  status=1
fi
echo | tee -a "$txt"

# A runner grown large (a 10,000-node controller reaches 60-100 MB): what a
# launch costs when the launching process has touched 256 MiB of heap.
say "bench_launch -q -m 256 -n $launches"
if ! "$build/bench/bench_launch" -q -m 256 -n "$launches" | tee -a "$txt"; then
  say "bench_launch -m 256 failed"
  status=1
fi
echo | tee -a "$txt"

say "bench_controller -s $sizes -t $budget (sizes beyond the budget are extrapolated)"
if ! "$build/bench/bench_controller" -e "$work/exitprobe" -s "$sizes" -t "$budget" -S \
    -k "$work/controller" -j "$work/controller.json" | tee -a "$txt"; then
  say "bench_controller reported a failed run"
  status=1
fi
echo | tee -a "$txt"

say "bench_matrix (the seed's and a composite workflow's full matrix, -j 1 and -j $(nproc))"
if ! "$build/bench/bench_matrix" -e "$work/exitprobe" -o "$work/matrix.json" \
    scenarios/exit-handler-workflow.yaml tests/data/matrix/composite.yaml | tee -a "$txt"; then
  say "bench_matrix reported a failed run"
  status=1
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$txt"

python3 - "$work/launch.txt" "$work/controller.json" "$json" "$machine" "$revision" "$work/matrix.json" <<'PY'
import datetime, json, os, re, sys

launch_txt, controller_json, out, machine, revision, matrix_json = sys.argv[1:7]

# bench_launch's table: name (may hold spaces), n, min, median, p99, fails, ratio.
row = re.compile(r"^(.*\S)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)x$")
rows, notes, in_table = [], [], False
try:
    with open(launch_txt) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("configuration"):
                in_table = True
                continue
            m = row.match(line) if in_table else None
            if m:
                rows.append({"configuration": m.group(1), "n": int(m.group(2)),
                             "min_us": int(m.group(3)), "median_us": int(m.group(4)),
                             "p99_us": int(m.group(5)), "failures": int(m.group(6)),
                             "vs_posix_spawn": float(m.group(7))})
            elif in_table and line.strip():
                notes.append(line.strip())
except FileNotFoundError:
    pass
try:
    with open(controller_json) as f:
        controller = json.load(f)
except (FileNotFoundError, ValueError):
    controller = None
try:
    with open(matrix_json) as f:
        matrix = json.load(f)
except (FileNotFoundError, ValueError):
    matrix = None
with open("/proc/loadavg") as f:
    load_end = f.read().split()[:3]
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "revision": revision,
    "machine": machine,
    "load_average_end": [float(x) for x in load_end],
    "launch": {"rows": rows, "summary": notes},
    "controller": controller,
    "matrix": matrix,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PY

cp "$txt" "$out/latest.txt"
cp "$json" "$out/latest.json"
say "results: $txt, $json (also $out/latest.txt, latest.json)"
exit "$status"
