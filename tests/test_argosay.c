/* exitprobe-argosay, the built-in stand-in for argoproj/argosay:v2's
 * entrypoint, run as a real process (ARGOSAY_BIN): exit codes, stdout and
 * files must be those of the image's script, since Argo's own e2e
 * workflows assert on them. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_helpers.h"

static const char *argosay_bin(void)
{
  const char *bin = getenv("ARGOSAY_BIN");
  if (bin == NULL || bin[0] == '\0') {
    printf("skipped: ARGOSAY_BIN is not set (path of the built exitprobe-argosay)\n");
    skip();
  }
  return bin;
}

/* Runs argosay with up to four arguments (NULL ends the list early). */
static struct test_cmd_result say(const char *a, const char *b, const char *c, const char *d)
{
  char *argv[] = {(char *)argosay_bin(), (char *)a, (char *)b, (char *)c, (char *)d, NULL};
  return test_run(argv);
}

/* Frees r before asserting, so that a failure leaks nothing under ASan. */
static void expect(struct test_cmd_result r, int status, const char *out)
{
  int got = r.exit_status;
  bool same_out = strcmp(r.out, out) == 0;

  if (got != status || !same_out)
    fprintf(stderr, "want status %d stdout [%s]; got %d [%s], stderr [%s]\n",
            status, out, got, r.out, r.err);
  test_cmd_result_free(&r);
  assert_int_equal(got, status);
  assert_true(same_out);
}

static double now_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_no_args_says_hello(void **state)
{
  (void)state;
  expect(say(NULL, NULL, NULL, NULL), 0, "hello argo\n");
  expect(say("", NULL, NULL, NULL), 0, "hello argo\n");
  expect(say("echo", NULL, NULL, NULL), 0, "hello argo\n");
}

static void test_echo_to_stdout(void **state)
{
  (void)state;
  expect(say("echo", "hello world", NULL, NULL), 0, "hello world\n");
  /* dash's echo: escapes are always on, \c ends the output, a lone -n is an option */
  expect(say("echo", "a\\tb", NULL, NULL), 0, "a\tb\n");
  expect(say("echo", "a\\cb", NULL, NULL), 0, "a");
  expect(say("echo", "-n", NULL, NULL), 0, "");
  /* the script's catch-all is a literal `default)` pattern: nothing matches */
  expect(say("echo", "a", "b", "c"), 0, "");
}

static void test_echo_to_file_then_cat(void **state)
{
  (void)state;
  argosay_bin();
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  const char *file = test_path(dir, "made/by/echo/out.txt");

  expect(say("echo", "hi there", file, NULL), 0, "");
  char *text = test_read_file(file);
  assert_non_null(text);
  assert_string_equal(text, "hi there\n");
  free(text);

  expect(say("cat", file, NULL, NULL), 0, "hi there\n");
  expect(say("cat", test_path(dir, "missing"), NULL, NULL), 1, "");
  expect(say("cat", NULL, NULL, NULL), 2, "");  /* set -u on "$2" */

  /* writing over a directory is a failed redirection: the shell's 2 */
  expect(say("echo", "x", dir, NULL), 2, "");
}

static void test_exit_codes(void **state)
{
  (void)state;
  expect(say("exit", "3", NULL, NULL), 3, "");
  expect(say("exit", NULL, NULL, NULL), 0, "");
  expect(say("exit", "0", NULL, NULL), 0, "");
  expect(say("exit", "300", NULL, NULL), 300 & 0xff, "");
  expect(say("exit", "abc", NULL, NULL), 2, "");
  expect(say("exit", "-1", NULL, NULL), 2, "");
}

static void test_sleep(void **state)
{
  (void)state;
  argosay_bin();
  double start = now_seconds();
  expect(say("sleep", "0.1", NULL, NULL), 0, "");
  /* No upper bound: a loaded machine may take much longer. */
  assert_true(now_seconds() - start >= 0.1);

  start = now_seconds();
  expect(say("sleep", "0.002m", NULL, NULL), 0, "");
  assert_true(now_seconds() - start >= 0.12);

  /* coreutils sleep, not Go durations: the image rejects 100ms with 1 */
  expect(say("sleep", "100ms", NULL, NULL), 1, "");
  expect(say("sleep", "-1", NULL, NULL), 1, "");
  expect(say("sleep", NULL, NULL, NULL), 2, "");
}

static void test_assert_contains(void **state)
{
  (void)state;
  argosay_bin();
  const char *file = test_write_temp("data.txt", "alpha\nbeta gamma\ndelta");
  assert_non_null(file);

  expect(say("assert_contains", file, "gamma", NULL), 0, "beta gamma\n");
  expect(say("assert_contains", file, "elt", NULL), 0, "delta\n");
  expect(say("assert_contains", file, "omega", NULL), 1, "");
  expect(say("assert_contains", test_path(test_temp_dir(), "nope"), "x", NULL), 2, "");
  expect(say("assert_contains", file, NULL, NULL), 2, "");
}

static void test_sh_runs_script(void **state)
{
  (void)state;
  argosay_bin();
  const char *script = test_write_temp("step.sh", "echo from-sh\nexit 7\n");
  assert_non_null(script);
  expect(say("sh", script, NULL, NULL), 7, "from-sh\n");
}

static void test_unknown_verb_fails(void **state)
{
  (void)state;
  struct test_cmd_result r = say("frobnicate", "x", NULL, NULL);
  int got = r.exit_status;
  bool quiet_stdout = r.out[0] == '\0';
  bool named = strstr(r.err, "frobnicate") != NULL;
  test_cmd_result_free(&r);
  assert_int_equal(got, 1);
  assert_true(quiet_stdout);
  assert_true(named);
  expect(say("ECHO", "x", NULL, NULL), 1, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_no_args_says_hello),
    cmocka_unit_test(test_echo_to_stdout),
    cmocka_unit_test(test_echo_to_file_then_cat),
    cmocka_unit_test(test_exit_codes),
    cmocka_unit_test(test_sleep),
    cmocka_unit_test(test_assert_contains),
    cmocka_unit_test(test_sh_runs_script),
    cmocka_unit_test(test_unknown_verb_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
