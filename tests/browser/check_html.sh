#!/usr/bin/env bash
# The HTML report in a real browser: Debian's chromium, headless.
#
#  1. tests/data/reports/hostile.json (markup in names, messages and logs)
#     rendered to HTML and loaded: none of the markup becomes elements.
#  2. The seed workflow run by the real binary, its report rendered to HTML
#     and loaded: the `work` node is there, Failed and drawn red; the exit
#     handler node is there, green, apart and marked; the timeline says what
#     it saw.  Then a screenshot: $EXITPROBE_ARTIFACT_DIR/seed-report.png
#     (default reports/seed-report.png under the working directory), for CI
#     to keep.
#
# The checks run inside the page (check_*.js, injected into a copy of it)
# and write their results into the DOM that --dump-dom prints.
#
# Exit status: 0 passed; 77 skipped (no chromium, or the sandbox cannot run
# the seed workflow here: the reason is printed); 1 failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${EXITPROBE_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}"
bin="${EXITPROBE_BIN:-}"
artifacts="${EXITPROBE_ARTIFACT_DIR:-$PWD/reports}"

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[[ -n "$bin" && -x "$bin" ]] || fail "EXITPROBE_BIN is not set to the built exitprobe ('$bin')"
browser="$(command -v chromium || command -v chromium-browser || true)"
[[ -n "$browser" ]] || skip "chromium is not installed (scripts/setup.sh installs it)"

work="$(mktemp -d /tmp/exitprobe-browser-XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Headless, offline, a throwaway profile: nothing outside the page is used.
chrome() {
  local name="$1"
  shift
  timeout --kill-after=5 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile-$name" "$@" 2>"$work/chromium-$name.log"
}

# A copy of the page with a check script before </body>; prints what it found.
check_in_browser() {
  local name="$1" page="$2" script="$3"
  awk -v js="$script" '
    /<\/body>/ && !done { print "<script>"; while ((getline line < js) > 0) print line; print "</script>"; done = 1 }
    { print }' "$page" >"$work/$name-check.html"
  chrome "$name" --dump-dom "file://$work/$name-check.html" >"$work/$name-dom.html" ||
    fail "$name: chromium did not load the page: $(tail -n 3 "$work/chromium-$name.log")"
  local results
  results="$(sed -n '/<pre id="browser-check">/,/<\/pre>/p' "$work/$name-dom.html" |
    sed -e 's/.*<pre id="browser-check">//' -e 's/<\/pre>.*//' \
      -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&amp;/\&/g')"
  [[ -n "$results" ]] || fail "$name: the checks did not run (no results in the DOM)"
  echo "$results" | sed "s/^/  [$name] /"
  grep -q '^done [0-9]* checks$' <<<"$results" || fail "$name: the checks stopped early"
  if grep -q '^not ok' <<<"$results"; then
    fail "$name: the page is not what it should be"
  fi
}

# Things a page must not have: anything that loads from elsewhere.
self_contained() {
  local page="$1"
  if grep -E -q '<(link|img|iframe|object|embed)[ >]| src="|@import|url\((["'"'"'])?(https?:)?//' "$page"; then
    fail "$page refers to something outside itself"
  fi
}

# 1. Markup in the data stays text.
"$bin" report "$root/tests/data/reports/hostile.json" --format html -o "$work/hostile.html" ||
  fail "exitprobe report --format html failed on hostile.json"
self_contained "$work/hostile.html"
check_in_browser hostile "$work/hostile.html" "$here/check_hostile.js"

# 2. The seed workflow, run for real.
"$bin" run "$root/scenarios/exit-handler-workflow.yaml" --report "$work/seed.json" -q \
  --color never >"$work/run.out" 2>&1
status=$?
case "$status" in
  1) ;; # the seed workflow fails on purpose: its work step exits 1
  3) skip "the sandbox cannot run here: $(tail -n 1 "$work/run.out") (the hostile page passed)" ;;
  *) fail "exitprobe run exited $status: $(tail -n 5 "$work/run.out")" ;;
esac
"$bin" report "$work/seed.json" --format html -o "$work/seed.html" ||
  fail "exitprobe report --format html failed on the seed report"
self_contained "$work/seed.html"
check_in_browser seed "$work/seed.html" "$here/check_seed.js"

mkdir -p "$artifacts" || fail "cannot create $artifacts"
shot="$artifacts/seed-report.png"
rm -f "$shot"
chrome shot --screenshot="$shot" --window-size=1200,800 "file://$work/seed.html" >/dev/null ||
  fail "chromium could not take the screenshot: $(tail -n 3 "$work/chromium-shot.log")"
[[ -s "$shot" ]] || fail "no screenshot at $shot"
[[ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] ||
  fail "$shot is not a PNG"
size=$(stat -c %s "$shot")
((size > 10000)) || fail "$shot is only $size bytes: an empty page?"
echo "screenshot: $shot ($size bytes)"
echo "PASS"
