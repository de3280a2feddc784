/* Expression evaluation for the conditions Argo attaches to steps, tasks,
 * retries and hooks.  Argo uses two engines and the runner must reproduce
 * both, because a condition that errors in Argo errors its node:
 *
 *  EXPR_GOVALUATE - step/task `when`, evaluated with govaluate AFTER the
 *    {{...}} tags were substituted.  Argo turns every bare word govaluate
 *    reads as a variable into a string literal, so `tails == heads` compares
 *    two strings.  What this mode accepts:
 *      literals   numbers (`5`, `1.5`, `.5`, `0x1F`; always float64),
 *                 'single' or "double" quoted strings, `true`, `false`
 *      words      a letter then letters, digits, `_` or `.`; `[any text]`
 *      operators  `!` `-` (prefix), `**`, `* / %`, `+ -`,
 *                 `== != < > <= >= =~ !~ in`, `&&`, `||`, `??`, `? :`,
 *                 parentheses, `x in (a, b, c)`
 *    govaluate quirks kept on purpose (Argo shows them too):
 *      - a quoted string ends at the first quote of EITHER kind:
 *        'say "hi"' is the string `say ` followed by garbage, an error;
 *        a backslash makes the next character literal;
 *      - a bare word containing a dot (`v1.2`, `foo.bar`) is a parameter
 *        accessor, not a string: unless the lookup resolves it, it errors;
 *      - `foo-bar` is `foo - bar` and errors (strings cannot be subtracted);
 *        `1.2.3` is a malformed number and errors; `3abc` errors;
 *      - `==` is false between different types (`5 == "5"`), `< > <= >=`
 *        need two numbers or two strings, `=~` needs strings, `&& || !`
 *        need booleans; `+` concatenates when either side is a string.
 *    Differences from govaluate, accepted: quoted strings that look like
 *    dates stay strings (govaluate turns them into Unix times), bitwise
 *    operators (`& | ^ ~ << >>`) are rejected, and words starting with `_`
 *    are rejected as in govaluate.
 *
 *  EXPR_EXPRLANG - expr-lang (github.com/expr-lang/expr), used by Argo for
 *    DAG `depends` (after rewriting task-name dashes to `_`),
 *    retryStrategy.expression, lifecycle-hook `expression` and `{{= }}`.
 *      literals   numbers (`1_000`, `0x1F`, `0o17`, `0b101`, `1.5e3`, `.5`),
 *                 "..." or '...' with Go escapes, `raw` in backquotes,
 *                 `true`, `false`, `nil`, lists `[a, b]` (only as the
 *                 right side of `in`)
 *      names      `a`, `a.b`, `a?.b`, `a["b-c"]`, `a[expr]`: the dotted
 *                 path ("steps.step-1.status") is resolved by the lookup;
 *                 an unknown path is nil
 *      operators  `not` `!` `-` `+` (prefix), `??`, `**` (right assoc.),
 *                 `* / %`, `+ -`, `== != < > <= >= in matches contains
 *                 startsWith endsWith` (each of the last five negatable
 *                 as `not in`, `not matches`, ...), `and` `&&`, `or` `||`,
 *                 `? :`, parentheses, with expr-lang's precedences
 *                 (note `!a == b` is `(!a) == b` and `a ?? b + 1` is
 *                 `(a ?? b) + 1`)
 *      functions  asInt, int, asFloat, float, string, len, lower, upper,
 *                 trim (one argument each); Argo's toJson(v) and
 *                 jsonpath(json, "$.a['b'][0]") (a map or list found comes
 *                 back as its compact JSON text); Sprig's, written
 *                 `sprig.NAME(...)` as Argo has them: trim, upper, lower,
 *                 int (0 when it does not convert), trimPrefix(prefix, s),
 *                 trimSuffix(suffix, s), replace(old, new, s),
 *                 default(fallback, v)
 *    Numbers are doubles: `/` gives a fraction like expr-lang, `%` needs two
 *    integral numbers.  `==` between different types is false; ordering,
 *    arithmetic and string operators on mismatched types are errors.
 *    Not supported: maps, closures, pipes `|`, ranges `..`, comments,
 *    `let`/`if`, and the other Sprig functions.
 *
 *  Both modes, with a lookup: a word containing dashes or starting with a
 *  digit (`task-a.Succeeded`, `1st.Failed`) is taken whole when the lookup
 *  knows that exact name; otherwise it lexes normally (and usually errors).
 *  The lookup is therefore called during lexing as a probe as well as
 *  during evaluation, so it must be side-effect free.
 *
 *  Regular expressions (`=~`, `!~`, `matches`) use POSIX ERE (regcomp) with
 *  a translation of the RE2 forms people write: \d \D \s \S \w \W (also
 *  inside brackets: \d \s \w), \A \z, \t \n \r \f \v, escaped punctuation
 *  (also `\]` `\-` `\^` inside brackets), (?:...), (?P<n>...), a leading
 *  (?i), and lazy quantifiers (`*?` and friends become greedy, which gives
 *  the same match/no-match answer).  As in Go, a repeat count above 1000,
 *  or nested counts multiplying beyond 1000, is an error (glibc would
 *  build a huge automaton), and a match anywhere in the string counts.
 *  Differences from RE2: other flag groups, \pN classes, \Q..\E and
 *  back-references are rejected; matching is bytewise in the C locale
 *  (`.` matches one byte, not one UTF-8 character); \b is the GNU word
 *  boundary.
 *
 *  Conversions to text (string(), `+` concatenation in govaluate mode,
 *  expr_value_to_string) write integral numbers below 1e21 without
 *  decimals ("3"), others in the shortest form that reads back exactly
 *  ("0.1", "1.5e-07", "1e+21"), NaN as "NaN", infinities as "+Inf"/"-Inf",
 *  nil as "<nil>".  (Go's %v would print 1e+06 for a float64 million.)
 *
 *  Errors are EP_EXIT_USAGE errors whose message ends in "at offset N"
 *  (0-based byte offset into the text) when a position is known, e.g.
 *  "unexpected end of expression at offset 4" for `a ==`.  Messages about
 *  characters no token can start with begin with "invalid token", which is
 *  when Argo adds its hint to wrap the value in quotes.  The caller adds
 *  its own context ("Invalid 'when' expression '...': ").  An empty or
 *  blank text is an error ("empty expression"): the caller decides what an
 *  absent condition means.
 *
 *  Hostile input is bounded: at most EXPR_MAX_LENGTH bytes and
 *  EXPR_MAX_TOKENS tokens, parentheses /
 *  prefix operators nested at most EXPR_MAX_NESTING deep, and syntax trees
 *  at most EXPR_MAX_TREE_DEPTH deep (a chain `a && b && ...` of more than
 *  that many terms is rejected rather than risking the stack). */
#ifndef EXITPROBE_EXPR_H
#define EXITPROBE_EXPR_H

#include <stdbool.h>

#include "error.h"

#define EXPR_MAX_LENGTH (1024 * 1024)
#define EXPR_MAX_NESTING 256
#define EXPR_MAX_TREE_DEPTH 1024
#define EXPR_MAX_TOKENS 65536

enum expr_mode {
  EXPR_GOVALUATE,
  EXPR_EXPRLANG,
};

enum expr_type {
  EXPR_NIL,
  EXPR_BOOL,
  EXPR_NUMBER,
  EXPR_STRING,
};

/* A zero-initialised value is nil.  str is owned (malloc'd) and set only for
 * EXPR_STRING; expr_value_clear frees it. */
struct expr_value {
  enum expr_type type;
  bool b;
  double num;
  char *str;
};

/* Resolve name ("lastRetry.exitCode", "steps.step-1.status",
 * "task-a.Succeeded") into *out, which arrives as nil.  Return 1 when found
 * (the evaluator takes ownership of out->str), 0 when unknown, -1 on
 * failure (evaluation stops with "cannot resolve '<name>'").  Called more
 * than once per name; must not have side effects. */
typedef int (*expr_lookup_fn)(void *ctx, const char *name, struct expr_value *out);

/* Evaluate text.  lookup may be NULL (govaluate: every word is a string;
 * expr-lang: every name is nil).  On success *out holds the result (free
 * with expr_value_clear); on failure *out is nil and err is filled. */
int expr_eval(const char *text, enum expr_mode mode, expr_lookup_fn lookup, void *ctx,
              struct expr_value *out, ep_error **err);

/* Same, but the result must be a boolean: anything else is the error
 * "expression does not evaluate to a boolean (got string "heads")". */
int expr_eval_bool(const char *text, enum expr_mode mode, expr_lookup_fn lookup, void *ctx,
                   bool *out, ep_error **err);

void expr_value_clear(struct expr_value *v);

/* Setters for lookup callbacks; each first clears *v.  Strings are copied. */
void expr_value_set_nil(struct expr_value *v);
void expr_value_set_bool(struct expr_value *v, bool b);
void expr_value_set_number(struct expr_value *v, double num);
void expr_value_set_string(struct expr_value *v, const char *s);

/* The value as text (see the conversion rules above); caller frees. */
char *expr_value_to_string(const struct expr_value *v);

/* "nil", "bool", "number", "string". */
const char *expr_type_name(enum expr_type type);

#endif
