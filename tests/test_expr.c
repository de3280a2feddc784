/* Condition evaluation: Argo's govaluate `when` rules and the expr-lang
 * subset used by depends, retryStrategy.expression and hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expr.h"

/* ---- a table-driven lookup --------------------------------------------- */

struct binding {
  const char *name;
  enum expr_type type;
  bool b;
  double num;
  const char *str;
};

struct env {
  const struct binding *bindings;
  size_t n;
  int calls;
  const char *fail_on; /* name for which the lookup reports failure */
};

static int table_lookup(void *ctx, const char *name, struct expr_value *out) {
  struct env *env = ctx;
  env->calls++;
  if (env->fail_on != NULL && strcmp(name, env->fail_on) == 0)
    return -1;
  for (size_t i = 0; i < env->n; i++) {
    const struct binding *b = &env->bindings[i];
    if (strcmp(b->name, name) != 0)
      continue;
    switch (b->type) {
    case EXPR_NIL:
      expr_value_set_nil(out);
      break;
    case EXPR_BOOL:
      expr_value_set_bool(out, b->b);
      break;
    case EXPR_NUMBER:
      expr_value_set_number(out, b->num);
      break;
    case EXPR_STRING:
      expr_value_set_string(out, b->str);
      break;
    }
    return 1;
  }
  return 0;
}

#define ENV(table)                                                                                 \
  { .bindings = (table), .n = sizeof(table) / sizeof((table)[0]) }

static void check_bool(const char *text, enum expr_mode mode, struct env *env, bool expected) {
  ep_error *err = NULL;
  bool got = !expected;
  int rc = expr_eval_bool(text, mode, env != NULL ? table_lookup : NULL, env, &got, &err);
  if (rc != 0) {
    fail_msg("'%s' failed: %s", text, err != NULL ? err->message : "(no error object)");
  }
  assert_null(err);
  if (got != expected)
    fail_msg("'%s' evaluated %s, expected %s", text, got ? "true" : "false",
             expected ? "true" : "false");
}

#define GV_TRUE(text) check_bool((text), EXPR_GOVALUATE, NULL, true)
#define GV_FALSE(text) check_bool((text), EXPR_GOVALUATE, NULL, false)
#define EX_TRUE(text, env) check_bool((text), EXPR_EXPRLANG, (env), true)
#define EX_FALSE(text, env) check_bool((text), EXPR_EXPRLANG, (env), false)

/* The evaluation must fail and the message contain want. */
static void check_error(const char *text, enum expr_mode mode, struct env *env, const char *want) {
  ep_error *err = NULL;
  struct expr_value v = {.type = EXPR_BOOL, .b = true};
  int rc = expr_eval(text, mode, env != NULL ? table_lookup : NULL, env, &v, &err);
  if (rc != -1) {
    char *shown = expr_value_to_string(&v);
    fail_msg("'%s' should fail (wanted '%s') but gave %s", text, want, shown);
  }
  assert_int_equal(v.type, EXPR_NIL);
  assert_null(v.str);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  if (strstr(err->message, want) == NULL)
    fail_msg("'%s': error '%s' does not contain '%s'", text, err->message, want);
  ep_error_free(&err);
}

/* Evaluates and renders the result as text ("3", "true", "<nil>"). */
static char *eval_text(const char *text, enum expr_mode mode, struct env *env,
                       enum expr_type want_type) {
  ep_error *err = NULL;
  struct expr_value v;
  if (expr_eval(text, mode, env != NULL ? table_lookup : NULL, env, &v, &err) != 0)
    fail_msg("'%s' failed: %s", text, err->message);
  if (v.type != want_type)
    fail_msg("'%s' gave a %s, wanted a %s", text, expr_type_name(v.type),
             expr_type_name(want_type));
  char *s = expr_value_to_string(&v);
  expr_value_clear(&v);
  return s;
}

static void check_text(const char *text, enum expr_mode mode, struct env *env,
                       enum expr_type want_type, const char *want) {
  char *s = eval_text(text, mode, env, want_type);
  if (strcmp(s, want) != 0)
    fail_msg("'%s' gave '%s', wanted '%s'", text, s, want);
  free(s);
}

/* ---- govaluate `when` -------------------------------------------------- */

static void test_coin_flip(void **state) {
  (void)state;
  /* examples/coinflip.yaml after substitution */
  GV_TRUE("heads == heads");
  GV_FALSE("tails == heads");
  GV_TRUE("tails == tails");
  GV_TRUE("tails != heads");
  GV_TRUE("\"heads\" == heads");
  GV_TRUE("'heads' == \"heads\"");
  GV_FALSE("Failed == Succeeded");
  GV_TRUE("Succeeded == Succeeded");
  GV_FALSE("heads == Heads");
}

static void test_numbers_compare_numerically(void **state) {
  (void)state;
  GV_TRUE("5 > 3");
  GV_TRUE("3 < 12"); /* as strings "3" > "12": numbers must win */
  GV_FALSE("10 < 9");
  GV_TRUE("1.5 >= 1.5");
  GV_TRUE("2 == 2.0");
  GV_TRUE("05 == 5");
  GV_TRUE(".5 == 0.5");
  GV_TRUE("0x1F == 31");
  GV_TRUE("-2 < 0");
  GV_TRUE("7 <= 7");
  GV_FALSE("7 < 7");
  /* strings compare bytewise, like Go */
  GV_TRUE("abc < abd");
  GV_TRUE("'12' < '3'");
}

static void test_string_number_mixing(void **state) {
  (void)state;
  GV_FALSE("5 == five");
  GV_FALSE("'5' == 5");
  GV_TRUE("5 != '5'");
  GV_FALSE("true == 'true'");
  check_error("heads > 3", EXPR_GOVALUATE, NULL, "'>' needs two numbers or two strings");
  check_error("heads > 3", EXPR_GOVALUATE, NULL, "got string \"heads\" and number 3 at offset 6");
  check_error("'7' < 12", EXPR_GOVALUATE, NULL, "needs two numbers or two strings");
}

static void test_bools_not_and_precedence(void **state) {
  (void)state;
  GV_TRUE("true");
  GV_FALSE("false");
  GV_TRUE("true == true");
  GV_TRUE("!false");
  GV_TRUE("!(1 > 2)");
  GV_TRUE("!!true");
  GV_TRUE("!false == true"); /* prefix binds tightest */
  /* && binds tighter than || */
  GV_TRUE("true || false && false");
  GV_TRUE("false && true || true");
  GV_FALSE("(true || false) && false");
  GV_TRUE("heads == heads && 5 > 3 || tails == heads");
  GV_FALSE("heads == tails || (5 > 3 && 1 == 2)");
  check_error("!heads", EXPR_GOVALUATE, NULL, "'!' needs a boolean, got string \"heads\"");
  check_error("heads && true", EXPR_GOVALUATE, NULL, "'&&' needs booleans");
  check_error("true && 5", EXPR_GOVALUATE, NULL, "'&&' needs booleans, got number 5");
}

static void test_short_circuit(void **state) {
  (void)state;
  /* the right side would be an error if it were evaluated */
  GV_TRUE("true || heads > 3");
  GV_FALSE("false && heads > 3");
  static const struct binding table[] = {{.name = "B.Succeeded", .type = EXPR_BOOL, .b = true}};
  struct env env = ENV(table);
  EX_FALSE("false && B.Succeeded", &env);
  assert_int_equal(env.calls, 0);
  EX_TRUE("true && B.Succeeded", &env);
  assert_int_equal(env.calls, 1);
}

static void test_regex(void **state) {
  (void)state;
  GV_TRUE("'feature/abc' =~ '^feature/'");
  GV_FALSE("main =~ '^feature/'");
  GV_TRUE("main !~ '^feature/'");
  GV_TRUE("'abc123' =~ '\\\\d+$'"); /* govaluate strings take \\ as one backslash */
  GV_TRUE("'release-1.2' =~ 'release-[0-9]+\\\\.[0-9]+'");
  GV_FALSE("'release-1x2' =~ 'release-[0-9]+\\\\.[0-9]+'");
  GV_TRUE("'Hello' =~ '(?i)^hello$'");
  GV_TRUE("'aaa' =~ '^a+?$'");        /* lazy quantifier */
  GV_TRUE("'ab' =~ '^(?:a|x)b$'");    /* non-capturing group */
  GV_TRUE("'a]b' =~ '^a[\\\\]x]b$'"); /* escaped ] inside brackets */
  GV_TRUE("'a-b' =~ '^a[\\\\-x]b$'");
  GV_TRUE("'x y' =~ 'x\\\\sy'");
  GV_TRUE("'x_1' =~ '^[\\\\w]+$'");
  GV_FALSE("'x-1' =~ '^\\\\w+$'");
  GV_TRUE("'a.b' =~ 'a\\\\.b'");
  GV_FALSE("'axb' =~ 'a\\\\.b'");
  GV_TRUE("'a/b' =~ 'a\\\\/b'");
  GV_TRUE("'aa' =~ '^a{2}?$'");
  /* glibc alone would read `+?` as `(a+)?` and `{2}?` as optional */
  GV_FALSE("'' =~ '^a+?$'");
  GV_FALSE("'b' =~ '^a{2}?b$'");
  GV_TRUE("'b' =~ '^b}?$'"); /* a literal } is not a quantifier */
  check_error("a =~ '('", EXPR_GOVALUATE, NULL, "invalid regular expression '('");
  check_error("a =~ '(?s).'", EXPR_GOVALUATE, NULL, "unsupported group flags");
  check_error("a =~ '\\\\pL'", EXPR_GOVALUATE, NULL, "unsupported escape");
  check_error("5 =~ '5'", EXPR_GOVALUATE, NULL, "'=~' needs two strings");
  /* no back-references (expr-lang keeps the backslash, govaluate would eat it) */
  check_error("'a' matches '(a)\\\\1'", EXPR_EXPRLANG, NULL, "unsupported escape");
  /* Go's repeat limits keep glibc from building huge automata */
  GV_TRUE("'aaaa' =~ '^(a{2}){2}$'");
  GV_TRUE("'a' =~ '(a{10}){100}|a'");
  check_error("a =~ 'a{1001}'", EXPR_GOVALUATE, NULL, "invalid repeat count");
  check_error("a =~ 'a{3,2}'", EXPR_GOVALUATE, NULL, "invalid repeat count");
  check_error("a =~ '(a{10}){101}'", EXPR_GOVALUATE, NULL, "invalid nested repetition");
  check_error("a =~ '((a{1000})*){2}'", EXPR_GOVALUATE, NULL, "invalid nested repetition");
  GV_TRUE("'a{' =~ '^a{$'"); /* a brace starting no interval is literal, as in RE2 */
  GV_TRUE("'a{x}' =~ 'a{x}'");
}

static void test_quoted_strings(void **state) {
  (void)state;
  GV_TRUE("'hello world' == \"hello world\"");
  GV_FALSE("'hello world' == hello");
  GV_TRUE("'it\\'s' == \"it\\'s\"");
  check_error("'it\\'s' == \"it's\"", EXPR_GOVALUATE, NULL,
              "unterminated string literal at offset 16");
  GV_TRUE("'' == \"\"");
  GV_TRUE("'a' + 'b' == ab");
  GV_TRUE("a + 1 == a1"); /* govaluate concatenates when either side is a string */
  GV_TRUE("1 + 2 == 3");
  /* govaluate ends a string at the first quote of either kind */
  check_error("'say \"hi\"' == x", EXPR_GOVALUATE, NULL, "unexpected");
  check_error("'unterminated == x", EXPR_GOVALUATE, NULL,
              "unterminated string literal at offset 0");
}

static void test_govaluate_words_that_are_not_strings(void **state) {
  (void)state;
  /* `foo-bar` is a subtraction of two strings in govaluate */
  check_error("foo-bar == foo-bar", EXPR_GOVALUATE, NULL, "'-' needs numbers");
  /* dotted words are accessors: Argo fails on them */
  check_error("v1.2 == v1.2", EXPR_GOVALUATE, NULL, "no parameter 'v1.2' found");
  check_error("1.2.3 == 1.2.3", EXPR_GOVALUATE, NULL, "unable to parse numeric value '1.2.3'");
  check_error("x == 3abc", EXPR_GOVALUATE, NULL, "unexpected 'abc' at offset 6");
  check_error("a. == b", EXPR_GOVALUATE, NULL, "hanging accessor");
  check_error("x == in", EXPR_GOVALUATE, NULL, "unexpected 'in'");
  check_error("x # y", EXPR_GOVALUATE, NULL, "invalid token '#' at offset 2");
  check_error("_x == _x", EXPR_GOVALUATE, NULL, "invalid token '_'");
  check_error("foo(1) == 1", EXPR_GOVALUATE, NULL, "unexpected '('");
  /* [escaped name] is a word too */
  GV_TRUE("[hello world] == 'hello world'");
}

static void test_govaluate_misc_operators(void **state) {
  (void)state;
  GV_TRUE("b in (a, b, c)");
  GV_FALSE("d in (a, b)");
  GV_TRUE("2 IN (1, 2)");
  check_error("a in (a)", EXPR_GOVALUATE, NULL, "needs a list on its right");
  check_error("(a, b) == a", EXPR_GOVALUATE, NULL, "a list can only be used");
  GV_TRUE("10 % 3 == 1");
  GV_TRUE("2 ** 3 == 8");
  GV_TRUE("-2 ** 2 == 4"); /* govaluate's prefix binds tighter than ** */
  GV_TRUE("7 / 2 == 3.5");
  GV_TRUE("(1 < 2 ? yes : no) == yes");
  GV_TRUE("(1 > 2 ? yes : no) == no");
  GV_TRUE("1 - 2 - 3 == -4"); /* left associative */
  GV_TRUE("2 * 3 + 4 == 10");
  GV_TRUE("2 + 3 * 4 == 14");
}

/* ---- DAG depends through a lookup -------------------------------------- */

static const struct binding dag_results[] = {
    {.name = "A.Succeeded", .type = EXPR_BOOL, .b = true},
    {.name = "A.Failed", .type = EXPR_BOOL, .b = false},
    {.name = "B.Succeeded", .type = EXPR_BOOL, .b = false},
    {.name = "B.Failed", .type = EXPR_BOOL, .b = true},
    {.name = "C.Omitted", .type = EXPR_BOOL, .b = false},
    {.name = "C.Skipped", .type = EXPR_BOOL, .b = true},
    {.name = "task-a.Succeeded", .type = EXPR_BOOL, .b = true},
    {.name = "task-b.Failed", .type = EXPR_BOOL, .b = false},
    {.name = "1st.Failed", .type = EXPR_BOOL, .b = true},
};

static void test_depends_expressions(void **state) {
  (void)state;
  struct env env = ENV(dag_results);
  EX_TRUE("(A.Succeeded || B.Failed) && !C.Omitted", &env);
  EX_TRUE("A.Succeeded && B.Failed", &env);
  EX_FALSE("A.Failed || B.Succeeded", &env);
  EX_TRUE("!(A.Failed || B.Succeeded) && C.Skipped", &env);
  EX_TRUE("A.Succeeded and not B.Succeeded", &env);
  EX_TRUE("task-a.Succeeded", &env);
  EX_TRUE("task-a.Succeeded && !task-b.Failed", &env);
  EX_TRUE("(task-a.Succeeded||task-b.Failed)&&1st.Failed", &env);
  /* the same in govaluate mode: dotted names resolve through the lookup */
  check_bool("(A.Succeeded || B.Failed) && !C.Omitted", EXPR_GOVALUATE, &env, true);
  check_bool("task-a.Succeeded && !task-b.Failed", EXPR_GOVALUATE, &env, true);
  /* an unknown dashed task is not swallowed as a name */
  check_error("task-c.Succeeded", EXPR_EXPRLANG, &env, "'-' needs numbers");
  check_error("task-c.Succeeded", EXPR_GOVALUATE, &env, "no parameter 'c.Succeeded' found");
  /* an unknown result is nil in expr-lang, which && refuses */
  check_error("A.Succeeded && D.Succeeded", EXPR_EXPRLANG, &env, "'&&' needs booleans, got nil");
  env.fail_on = "B.Failed";
  check_error("A.Succeeded && B.Failed", EXPR_EXPRLANG, &env, "cannot resolve 'B.Failed'");
}

/* ---- expr-lang: retryStrategy.expression and hooks --------------------- */

static const struct binding retry_scope[] = {
    {.name = "lastRetry.exitCode", .type = EXPR_STRING, .str = "2"},
    {.name = "lastRetry.status", .type = EXPR_STRING, .str = "Error"},
    {.name = "lastRetry.duration", .type = EXPR_STRING, .str = "1.5"},
    {.name = "lastRetry.message", .type = EXPR_STRING, .str = "OOMKilled (exit code 137)"},
    {.name = "retries", .type = EXPR_NUMBER, .num = 2},
    {.name = "retriesText", .type = EXPR_STRING, .str = "2"}, /* how Argo binds `retries` */
    {.name = "workflow.status", .type = EXPR_STRING, .str = "Running"},
    {.name = "steps.step-1.status", .type = EXPR_STRING, .str = "Succeeded"},
    {.name = "tasks.A.status", .type = EXPR_STRING, .str = "Running"},
    {.name = "absent", .type = EXPR_NIL},
};

static void test_retry_expressions(void **state) {
  (void)state;
  struct env env = ENV(retry_scope);
  EX_TRUE("asInt(lastRetry.exitCode) > 1", &env);
  EX_FALSE("asInt(lastRetry.exitCode) > 2", &env);
  EX_TRUE("lastRetry.status == \"Error\"", &env);
  EX_TRUE("lastRetry.status == 'Error' && retries < 3", &env);
  EX_TRUE("retries < 3", &env);
  EX_FALSE("retries >= 3", &env);
  EX_TRUE("asInt(retriesText) < 3", &env);
  EX_TRUE("asFloat(lastRetry.duration) < 2.5", &env);
  EX_TRUE("float(lastRetry.duration) == 1.5", &env);
  EX_TRUE("lastRetry.message contains \"OOM\"", &env);
  EX_TRUE("lastRetry.message matches '^OOM'", &env);
  EX_TRUE("lastRetry.message not contains 'Evicted'", &env);
  EX_TRUE("lastRetry.status in ['Error', 'Failed']", &env);
  EX_FALSE("lastRetry.status not in ['Error', 'Failed']", &env);
  EX_TRUE("lastRetry.status == \"Failed\" or not (retries > 5)", &env);
  /* Argo binds retries and exit codes as strings: comparing them to a
   * number is an error there too */
  check_error("retriesText < 3", EXPR_EXPRLANG, &env, "'<' needs two numbers or two strings");
  check_error("lastRetry.exitCode > 1", EXPR_EXPRLANG, &env, "got string \"2\" and number 1");
  EX_FALSE("lastRetry.exitCode == 2", &env); /* different types are unequal */
}

static void test_hook_expressions(void **state) {
  (void)state;
  struct env env = ENV(retry_scope);
  EX_TRUE("workflow.status == \"Running\"", &env);
  EX_TRUE("steps[\"step-1\"].status == \"Succeeded\"", &env);
  EX_TRUE("steps['step-1'].status == 'Succeeded'", &env);
  EX_TRUE("steps[\"step-\" + \"1\"].status == \"Succeeded\"", &env);
  EX_TRUE("tasks.A.status == \"Running\"", &env);
  EX_TRUE("tasks?.A?.status == \"Running\"", &env);
  /* unknown names are nil, as with an expr-lang map environment */
  EX_FALSE("steps[\"step-2\"].status == \"Succeeded\"", &env);
  EX_TRUE("steps[\"step-2\"].status == nil", &env);
  EX_TRUE("absent == nil", &env);
  EX_TRUE("(absent ?? \"default\") == \"default\"", &env);
  EX_TRUE("absent ?? 'x' == 'x'", &env); /* ?? binds tighter than == */
  EX_TRUE("workflow.status ?? 'x' == 'Running'", &env);
  check_error("steps[true].status", EXPR_EXPRLANG, &env, "cannot be used as a member name");
}

static void test_exprlang_values_and_functions(void **state) {
  (void)state;
  check_text("1 + 2", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "3");
  check_text("7 / 2", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "3.5");
  check_text("7 % 2", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "1");
  check_text("2 ** 3 ** 2", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "512"); /* right assoc */
  check_text("-2 ** 2", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "-4");
  check_text("1_000 + 0x10 + 0o10 + 0b10", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "1026");
  check_text("1.5e3", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "1500");
  check_text("'a' + \"b\"", EXPR_EXPRLANG, NULL, EXPR_STRING, "ab");
  check_text("\"tab\\there \\u00e9\\x41\\101\"", EXPR_EXPRLANG, NULL, EXPR_STRING,
             "tab\there \xc3\xa9"
             "AA");
  check_text("`raw\\n`", EXPR_EXPRLANG, NULL, EXPR_STRING, "raw\\n");
  check_text("string(3)", EXPR_EXPRLANG, NULL, EXPR_STRING, "3");
  check_text("string(1.5)", EXPR_EXPRLANG, NULL, EXPR_STRING, "1.5");
  check_text("string(true)", EXPR_EXPRLANG, NULL, EXPR_STRING, "true");
  check_text("string(nil)", EXPR_EXPRLANG, NULL, EXPR_STRING, "<nil>");
  check_text("len(\"abc\")", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "3");
  check_text("int(\"7\") + 1", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "8");
  check_text("asInt(\"-1\")", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "-1");
  check_text("asInt(3.9)", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "3");
  check_text("asInt(-3.9)", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "-3");
  check_text("upper('ab') + lower('CD') + trim('  x ')", EXPR_EXPRLANG, NULL, EXPR_STRING, "ABcdx");
  check_text("1 < 2 ? 'go' : 'stop'", EXPR_EXPRLANG, NULL, EXPR_STRING, "go");
  check_text("false ? 1 : true ? 2 : 3", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "2");
  check_text("nil", EXPR_EXPRLANG, NULL, EXPR_NIL, "<nil>");
  check_text("'abc' startsWith 'ab' && 'abc' endsWith 'bc'", EXPR_EXPRLANG, NULL, EXPR_BOOL,
             "true");
  check_text("!true == false", EXPR_EXPRLANG, NULL, EXPR_BOOL, "true");
  check_text("not false", EXPR_EXPRLANG, NULL, EXPR_BOOL, "true");
  check_text("1 == 1.0", EXPR_EXPRLANG, NULL, EXPR_BOOL, "true");
  check_text(".5 + 1", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "1.5");
}

static void test_exprlang_errors(void **state) {
  (void)state;
  check_error("asInt(\"abc\")", EXPR_EXPRLANG, NULL,
              "'asInt' cannot convert to an integer, got string \"abc\"");
  check_error("asInt(\" 3\")", EXPR_EXPRLANG, NULL, "cannot convert to an integer");
  check_error("asInt(\"1.5\")", EXPR_EXPRLANG, NULL, "cannot convert to an integer");
  check_error("asInt(true)", EXPR_EXPRLANG, NULL, "cannot convert to an integer");
  check_error("asInt(1e300)", EXPR_EXPRLANG, NULL, "out of integer range");
  check_error("asFloat(\"x1\")", EXPR_EXPRLANG, NULL, "cannot convert to a float");
  check_error("len(5)", EXPR_EXPRLANG, NULL, "'len' needs a string");
  check_error("7.5 % 2", EXPR_EXPRLANG, NULL, "'%' needs integers");
  check_error("1 % 0", EXPR_EXPRLANG, NULL, "integer divide by zero");
  check_error("'a' + 1", EXPR_EXPRLANG, NULL, "'+' needs two numbers or two strings");
  check_error("foo(1)", EXPR_EXPRLANG, NULL, "unknown function 'foo' at offset 0");
  check_error("len()", EXPR_EXPRLANG, NULL, "takes exactly one argument, got 0");
  check_error("len('a', 'b')", EXPR_EXPRLANG, NULL, "takes exactly one argument, got 2");
  check_error("1 < 2 ? 3", EXPR_EXPRLANG, NULL, "missing ':' for the '?' at offset 6");
  check_error("'a' matches '['", EXPR_EXPRLANG, NULL, "invalid regular expression");
  check_error("'a' =~ 'a'", EXPR_EXPRLANG, NULL, "invalid token '='");
  check_error("'\\q'", EXPR_EXPRLANG, NULL, "invalid escape sequence at offset 1");
  check_error("'\\x00'", EXPR_EXPRLANG, NULL, "NUL character");
  check_error("12abc", EXPR_EXPRLANG, NULL, "bad number syntax");
  check_error("1e999", EXPR_EXPRLANG, NULL, "bad number syntax");
  check_error("let x = 1; x", EXPR_EXPRLANG, NULL, "unsupported keyword 'let'");
  check_error("[1, 2]", EXPR_EXPRLANG, NULL, "a list can only be used");
  check_error("x in 'abc'", EXPR_EXPRLANG, NULL, "needs a list on its right");
  check_error("-'a'", EXPR_EXPRLANG, NULL, "'-' needs a number");
  check_error("a.b.", EXPR_EXPRLANG, NULL, "unexpected end of expression at offset 4");
}

/* ---- syntax errors and hostile input ----------------------------------- */

static void test_syntax_errors(void **state) {
  (void)state;
  check_error("a ==", EXPR_GOVALUATE, NULL, "unexpected end of expression at offset 4");
  check_error("a == b &&", EXPR_GOVALUATE, NULL, "unexpected end of expression at offset 9");
  check_error("(a == b", EXPR_GOVALUATE, NULL, "missing ')' for the one opened at offset 0");
  check_error("a == b)", EXPR_GOVALUATE, NULL, "unexpected ')' at offset 6");
  check_error("((a == b)", EXPR_EXPRLANG, NULL, "missing ')'");
  check_error("(a == b] ", EXPR_EXPRLANG, NULL, "expected ')' (opened at offset 0) but found ']'");
  check_error("== a", EXPR_GOVALUATE, NULL, "unexpected '==' at offset 0");
  check_error("a b", EXPR_GOVALUATE, NULL, "unexpected 'b' at offset 2");
  check_error("a = b", EXPR_GOVALUATE, NULL, "invalid token '='");
  check_error("", EXPR_GOVALUATE, NULL, "empty expression");
  check_error("  \t\n", EXPR_EXPRLANG, NULL, "empty expression");
  check_error(NULL, EXPR_GOVALUATE, NULL, "empty expression");
  check_error("a == \x01", EXPR_GOVALUATE, NULL, "invalid token (byte 0x01)");
}

static void test_non_boolean_result(void **state) {
  (void)state;
  bool b = false;
  ep_error *err = NULL;
  assert_int_equal(expr_eval_bool("heads", EXPR_GOVALUATE, NULL, NULL, &b, &err), -1);
  assert_non_null(err);
  assert_string_equal(err->message,
                      "expression does not evaluate to a boolean (got string \"heads\")");
  ep_error_free(&err);
  assert_int_equal(expr_eval_bool("1 + 2", EXPR_EXPRLANG, NULL, NULL, &b, &err), -1);
  assert_non_null(strstr(err->message, "got number 3"));
  ep_error_free(&err);
  /* a NULL error pointer is allowed */
  assert_int_equal(expr_eval_bool("nil", EXPR_EXPRLANG, NULL, NULL, &b, NULL), -1);
}

static char *repeat(const char *unit, size_t times, const char *tail) {
  size_t ul = strlen(unit), tl = strlen(tail);
  char *s = malloc(ul * times + tl + 1);
  assert_non_null(s);
  for (size_t i = 0; i < times; i++)
    memcpy(s + i * ul, unit, ul);
  memcpy(s + ul * times, tail, tl + 1);
  return s;
}

static void test_hostile_nesting(void **state) {
  (void)state;
  char *s = repeat("(", 10000, "true");
  check_error(s, EXPR_GOVALUATE, NULL, "nested too deeply");
  check_error(s, EXPR_EXPRLANG, NULL, "nested too deeply");
  free(s);
  s = repeat("!", 10000, "true");
  check_error(s, EXPR_GOVALUATE, NULL, "nested too deeply");
  free(s);
  s = repeat("not ", 10000, "true");
  check_error(s, EXPR_EXPRLANG, NULL, "nested too deeply");
  free(s);
  s = repeat("2 ** ", 10000, "1");
  check_error(s, EXPR_EXPRLANG, NULL, "nested too deeply");
  free(s);
  s = repeat("true ? 1 : ", 10000, "2");
  check_error(s, EXPR_EXPRLANG, NULL, "nested too deeply");
  free(s);
  s = repeat("a[", 10000, "1");
  check_error(s, EXPR_EXPRLANG, NULL, "nested too deeply");
  free(s);
  /* a flat chain does not nest the parser but makes a deep tree */
  s = repeat("true && ", 5000, "true");
  check_error(s, EXPR_GOVALUATE, NULL, "too deeply nested");
  free(s);
  /* just inside the limits works */
  s = repeat("(", 200, "true");
  char *t = repeat(")", 200, "");
  char *both = malloc(strlen(s) + strlen(t) + 1);
  assert_non_null(both);
  strcpy(both, s);
  strcat(both, t);
  GV_TRUE(both);
  free(both);
  free(s);
  free(t);
  s = repeat("true && ", 500, "true");
  GV_TRUE(s);
  free(s);
}

static void test_too_long(void **state) {
  (void)state;
  char *s = repeat("a", (size_t)EXPR_MAX_LENGTH + 1, "");
  check_error(s, EXPR_GOVALUATE, NULL, "expression too long");
  free(s);
  s = repeat("1,", EXPR_MAX_TOKENS, "1");
  char *in_list = malloc(strlen(s) + 16);
  assert_non_null(in_list);
  sprintf(in_list, "1 in [%s]", s);
  check_error(in_list, EXPR_EXPRLANG, NULL, "too many tokens");
  free(in_list);
  free(s);
  /* a long flat list stays within every limit */
  s = repeat("1,", 20000, "2");
  in_list = malloc(strlen(s) + 16);
  assert_non_null(in_list);
  sprintf(in_list, "2 in [%s]", s);
  EX_TRUE(in_list, NULL);
  free(in_list);
  free(s);
  /* a long but legal operand is fine */
  s = repeat("x", 100000, "");
  size_t n = strlen(s);
  char *expr = malloc(2 * n + 16);
  assert_non_null(expr);
  snprintf(expr, 2 * n + 16, "'%s' == '%s'", s, s);
  GV_TRUE(expr);
  free(expr);
  free(s);
}

/* Random operator soup must never crash, leak or trip a sanitizer. */
static void test_random_input_does_not_crash(void **state) {
  (void)state;
  static const char *const pieces[] = {
      "(",   ")",      "[",    "]",   "a",     "b.c",   "task-a",  "1",        "2.5",  "0x",
      "'s'", "\"d\"",  "'",    "\"",  "`",     "\\",    "==",      "!=",       "<",    ">=",
      "=~",  "!~",     "&&",   "||",  "!",     "not",   "and",     "or",       "in",   "?",
      ":",   "??",     "+",    "-",   "*",     "/",     "%",       "**",       ",",    ".",
      "?.",  "asInt(", "len(", "nil", "true",  " ",     "matches", "contains", "\x80", "\xff",
      "1e",  "_",      "$",    "#",   "[x y]", "not in"};
  struct env env = ENV(dag_results);
  uint32_t seed = 12345;
  char buf[256];
  for (int round = 0; round < 20000; round++) {
    size_t len = 0;
    seed = seed * 1103515245u + 12345u;
    int count = (int)(seed >> 16) % 24;
    for (int k = 0; k < count; k++) {
      seed = seed * 1103515245u + 12345u;
      const char *piece = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
      size_t pl = strlen(piece);
      if (len + pl + 1 >= sizeof(buf))
        break;
      memcpy(buf + len, piece, pl);
      len += pl;
    }
    buf[len] = '\0';
    for (int mode = 0; mode < 2; mode++) {
      ep_error *err = NULL;
      struct expr_value v;
      int rc = expr_eval(buf, mode == 0 ? EXPR_GOVALUATE : EXPR_EXPRLANG,
                         (round & 1) ? table_lookup : NULL, &env, &v, &err);
      if (rc == 0) {
        assert_null(err);
        char *shown = expr_value_to_string(&v);
        free(shown);
        expr_value_clear(&v);
      } else {
        assert_int_equal(rc, -1);
        assert_non_null(err);
        assert_non_null(err->message);
        assert_int_equal(v.type, EXPR_NIL);
        ep_error_free(&err);
      }
    }
  }
}

/* ---- values ------------------------------------------------------------ */

/* Argo's toJson and jsonpath, and the Sprig functions its docs show, under `sprig.`. */
static void test_argo_and_sprig_functions(void **state) {
  (void)state;
  static const struct binding table[] = {
      {.name = "inputs.parameters.msg", .type = EXPR_STRING, .str = "  Hello World \n"},
      {.name = "inputs.parameters.branch", .type = EXPR_STRING, .str = "refs/heads/main"},
      {.name = "steps.gen.outputs.result", .type = EXPR_STRING,
       .str = "{\"approved\": true, \"score\": 92, \"tags\": [\"a\", \"b-c\"], "
              "\"who\": {\"name\": \"ann\"}, \"none\": null}"},
      {.name = "retries", .type = EXPR_STRING, .str = "2"},
  };
  struct env env = ENV(table);
  check_text("sprig.trim(inputs.parameters.msg)", EXPR_EXPRLANG, &env, EXPR_STRING,
             "Hello World");
  check_text("sprig.upper(sprig.trim(inputs.parameters.msg))", EXPR_EXPRLANG, &env,
             EXPR_STRING, "HELLO WORLD");
  check_text("sprig.lower('AbC')", EXPR_EXPRLANG, &env, EXPR_STRING, "abc");
  check_text("sprig.int(retries) + 1", EXPR_EXPRLANG, &env, EXPR_NUMBER, "3");
  check_text("sprig.int('x7')", EXPR_EXPRLANG, &env, EXPR_NUMBER, "0"); /* no error: Sprig */
  check_text("sprig.int('3.00') + sprig.int(4.7) + sprig.int('0x10')", EXPR_EXPRLANG, &env,
             EXPR_NUMBER, "23");
  check_text("sprig.trimPrefix('refs/heads/', inputs.parameters.branch)", EXPR_EXPRLANG, &env,
             EXPR_STRING, "main");
  check_text("sprig.trimSuffix('.tgz', 'a.tgz') + sprig.trimSuffix('x', 'a')", EXPR_EXPRLANG,
             &env, EXPR_STRING, "aa");
  check_text("sprig.replace('-', '_', 'a-b-c')", EXPR_EXPRLANG, &env, EXPR_STRING, "a_b_c");
  check_text("sprig.default('none', '') + sprig.default('none', 'x')", EXPR_EXPRLANG, &env,
             EXPR_STRING, "nonex");
  check_text("toJson('say \"hi\"')", EXPR_EXPRLANG, &env, EXPR_STRING, "\"say \\\"hi\\\"\"");
  check_text("toJson(3) + toJson(true) + toJson(nil)", EXPR_EXPRLANG, &env, EXPR_STRING,
             "3truenull");
  check_bool("jsonpath(steps.gen.outputs.result, '$.approved') == true", EXPR_EXPRLANG, &env,
             true);
  check_text("jsonpath(steps.gen.outputs.result, '$.score') + 1", EXPR_EXPRLANG, &env,
             EXPR_NUMBER, "93");
  check_text("jsonpath(steps.gen.outputs.result, '$.tags[1]')", EXPR_EXPRLANG, &env,
             EXPR_STRING, "b-c");
  check_text("jsonpath(steps.gen.outputs.result, \"$['who'].name\")", EXPR_EXPRLANG, &env,
             EXPR_STRING, "ann");
  check_text("jsonpath(steps.gen.outputs.result, '$.tags')", EXPR_EXPRLANG, &env, EXPR_STRING,
             "[\"a\",\"b-c\"]");
  check_text("jsonpath(steps.gen.outputs.result, '$.none')", EXPR_EXPRLANG, &env, EXPR_NIL,
             "<nil>");
  check_error("jsonpath(steps.gen.outputs.result, '$.missing')", EXPR_EXPRLANG, &env,
              "finds nothing");
  check_error("jsonpath('{not json', '$.a')", EXPR_EXPRLANG, &env, "as JSON");
  check_error("sprig.nosuch('a')", EXPR_EXPRLANG, &env, "unknown function 'sprig.nosuch'");
  check_error("sprig.trimPrefix('a')", EXPR_EXPRLANG, &env, "takes 2 arguments, got 1");
  check_error("sprig.replace(1, 'a', 'b')", EXPR_EXPRLANG, &env, "needs three strings");
  /* `sprig` alone is still a name (a path), not a function. */
  check_text("sprig.trim", EXPR_EXPRLANG, &env, EXPR_NIL, "<nil>");
}

static void check_number_text(double x, const char *want) {
  struct expr_value v = {.type = EXPR_NIL};
  expr_value_set_number(&v, x);
  char *s = expr_value_to_string(&v);
  if (strcmp(s, want) != 0)
    fail_msg("%.17g rendered as '%s', wanted '%s'", x, s, want);
  free(s);
}

static void test_number_formatting(void **state) {
  (void)state;
  check_number_text(3, "3");
  check_number_text(-3, "-3");
  check_number_text(-0.0, "0");
  check_number_text(1.5, "1.5");
  check_number_text(0.1, "0.1");
  check_number_text(0.1 + 0.2, "0.30000000000000004");
  check_number_text(123456789, "123456789");
  check_number_text(1e20, "100000000000000000000");
  check_number_text(1e21, "1e+21");
  check_number_text(1e-7, "1e-07");
  check_number_text(0.000001, "0.000001");
  check_number_text(2.5e-5, "0.000025");
  check_number_text(1.0 / 3.0, "0.3333333333333333");
  check_text("1 / 0", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "+Inf");
  check_text("-1 / 0", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "-Inf");
  check_text("0 / 0", EXPR_EXPRLANG, NULL, EXPR_NUMBER, "NaN");
  check_text("'v' + 1.5", EXPR_GOVALUATE, NULL, EXPR_STRING, "v1.5");
}

static void test_value_helpers(void **state) {
  (void)state;
  struct expr_value v = {.type = EXPR_NIL};
  expr_value_set_string(&v, "x");
  assert_int_equal(v.type, EXPR_STRING);
  assert_string_equal(v.str, "x");
  expr_value_set_bool(&v, true); /* frees the string */
  assert_int_equal(v.type, EXPR_BOOL);
  assert_null(v.str);
  expr_value_set_string(&v, NULL);
  assert_string_equal(v.str, "");
  expr_value_clear(&v);
  assert_int_equal(v.type, EXPR_NIL);
  expr_value_clear(NULL);
  assert_string_equal(expr_type_name(EXPR_NUMBER), "number");
  char *s = expr_value_to_string(NULL);
  assert_string_equal(s, "<nil>");
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_coin_flip),
      cmocka_unit_test(test_numbers_compare_numerically),
      cmocka_unit_test(test_string_number_mixing),
      cmocka_unit_test(test_bools_not_and_precedence),
      cmocka_unit_test(test_short_circuit),
      cmocka_unit_test(test_regex),
      cmocka_unit_test(test_quoted_strings),
      cmocka_unit_test(test_govaluate_words_that_are_not_strings),
      cmocka_unit_test(test_govaluate_misc_operators),
      cmocka_unit_test(test_depends_expressions),
      cmocka_unit_test(test_retry_expressions),
      cmocka_unit_test(test_hook_expressions),
      cmocka_unit_test(test_exprlang_values_and_functions),
      cmocka_unit_test(test_exprlang_errors),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_non_boolean_result),
      cmocka_unit_test(test_hostile_nesting),
      cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_random_input_does_not_crash),
      cmocka_unit_test(test_number_formatting),
      cmocka_unit_test(test_value_helpers),
      cmocka_unit_test(test_argo_and_sprig_functions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
