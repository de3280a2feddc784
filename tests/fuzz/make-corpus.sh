#!/usr/bin/env bash
# Seed corpora for the libFuzzer targets in tests/fuzz/, from the YAML the
# project already has (scenarios/, tests/data/, tests/conformance/):
#
#   OUT/yaml/      every YAML file
#   OUT/workflow/  files with kind: Workflow (and every scenario's inline one
#                  comes along with the scenario seeds)
#   OUT/scenario/  files with kind: Scenario
#   OUT/template/  every line holding a {{...}} tag, plus a few with bindings
#   OUT/expr/      when/depends/expression values and hand-written
#                  expressions, each prefixed by the flag byte fuzz_expr.c reads
#
# Seeds are named by their SHA-1 like libFuzzer's own corpus files, so
# running this again over an existing OUT only adds.
#
#   tests/fuzz/make-corpus.sh OUT_DIR
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$out"/{yaml,workflow,scenario,template,expr}

# seed DIR: store stdin under its hash.
seed() {
  local tmp
  tmp=$(mktemp "$1/.seed.XXXXXX")
  cat > "$tmp"
  mv -f "$tmp" "$1/$(sha1sum < "$tmp" | cut -c1-40)"
}

# Inputs above libFuzzer's useful size only slow it down.
mapfile -t files < <(cd "$root" && find scenarios tests/data tests/conformance \
  \( -name '*.yaml' -o -name '*.yml' \) -type f -size -64k 2>/dev/null | sort)

for f in "${files[@]}"; do
  path="$root/$f"
  seed "$out/yaml" < "$path"
  if grep -qE '^kind:[[:space:]]*Workflow[[:space:]]*$' "$path"; then
    seed "$out/workflow" < "$path"
  elif grep -qE '^kind:[[:space:]]*Scenario[[:space:]]*$' "$path"; then
    seed "$out/scenario" < "$path"
  fi
done

# Template text: lines holding a tag, without the YAML around them.
for f in "${files[@]}"; do
  grep -hoE '\{\{[^}]*\}\}.*|[^"]*\{\{[^}]*\}\}[^"]*' "$root/$f" || true
done | sort -u | awk 'NR <= 2000' | while IFS= read -r line; do
  printf '%s' "$line" | seed "$out/template"
done
# With bindings after a NUL (see fuzz_template.c).
printf 'echo {{inputs.parameters.x}} {{ item.a }}\0inputs.parameters.x=1\nitem.a=two\n' |
  seed "$out/template"
printf '{{=sprig.upper(inputs.parameters.x)}} {{workflow.failures}}' | seed "$out/template"
printf '{{ {{ }} }} {{}} {{unclosed' | seed "$out/template"

# Expressions.  Flag byte: bit 0 expr-lang, bit 1 with a lookup, bit 2 bool.
expr_seed() { # FLAGS TEXT
  # shellcheck disable=SC2059  # the format is the flag byte's escape
  { printf "\\x$1"; printf '%s' "$2"; } | seed "$out/expr"
}
for f in "${files[@]}"; do
  sed -nE 's/^[[:space:]-]*when:[[:space:]]*//p' "$root/$f"
done | sed -E "s/^'(.*)'\$/\\1/; s/^\"(.*)\"\$/\\1/" | sort -u | awk 'NR <= 500' |
  while IFS= read -r e; do expr_seed 06 "$e"; expr_seed 00 "$e"; done
for f in "${files[@]}"; do
  sed -nE 's/^[[:space:]-]*(depends|expression):[[:space:]]*//p' "$root/$f"
done | sed -E "s/^'(.*)'\$/\\1/; s/^\"(.*)\"\$/\\1/" | sort -u | awk 'NR <= 500' |
  while IFS= read -r e; do expr_seed 07 "$e"; expr_seed 03 "$e"; done
while IFS= read -r e; do
  [[ -z "$e" ]] && continue
  for flags in 00 01 02 03 06 07; do expr_seed "$flags" "$e"; done
done <<'EXPRS'
tails == heads
heads == heads && 5 > 3
'say "hi"'
v1.2 == 1
foo-bar
1.2.3
3abc
5 == "5"
!true || false ? 1 : 2
x in (a, b, c)
0x1F + .5 * 2 ** 3 % 2
steps.flip.outputs.result =~ "^h.*s$"
steps.flip.outputs.result !~ '(?i)TAILS'
[any text] == [any text]
nil ?? 1 + 1
task-a.Succeeded && !task-b.Failed
task_a.Succeeded || 1st.Failed
lastRetry.exitCode == 137 and lastRetry.status != "Error"
asInt(lastRetry.exitCode) > 1 or int("7") in [1, 7]
string(1e21) + lower("ABC") startsWith "1"
len(trim("  a ")) == 1 && upper('x') endsWith 'X'
retries < 3 ? "again" : "stop"
"a\u00e9\x41\101\n" contains `raw\n`
1_000 + 0o17 + 0b101 + 1.5e3
workflow.status not in ["Failed", "Error"]
a?.b["c-d"][0] == nil
"abc" matches "a(?:b)c\\d*\\s?\\w+"
"x" matches "a{1001}"
"x" matches "(a{100}){100}"
-(-(-1)) ** 2 ** 3
not not true != !false
fail.lookup == 1
((((((((((1))))))))))
EXPRS

for d in yaml workflow scenario template expr; do
  printf '%-9s %5d seeds\n' "$d" "$(find "$out/$d" -type f ! -name '.*' | wc -l)"
done
