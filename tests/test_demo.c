/* exitprobe demo: the seed lesson under every ending, in seconds, with a
 * table that agrees with what the seed scenarios assert one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_helpers.h"

static void test_demo_table(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
  const char *html = test_path(test_temp_dir(), "graphs");
  char *argv[] = {(char *)test_exitprobe_bin(), "demo", "--html", (char *)html, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 0)
    fail_msg("demo exited %d:\n%s\n%s", r.exit_status, r.out, r.err);
  /* The same outcomes the seed scenarios (scenarios/seed/) expect, case by case. */
  static const char *const rows[] = {
      "| succeeds | Succeeded | yes | 1 | controller | Succeeded |",
      "| fails | Failed | yes | 1 | controller | Failed |",
      "| killed | Failed | yes | 1 | controller | Failed |",
      "| deadline | Failed | yes | 1 | controller | Failed |",
      "| stopped | Failed | yes | 1 | controller | Failed |",
      "| terminated | Failed | no | 0 | - | - |",
      "| crash+restart | Failed | yes | 1 | controller | Failed |",
      "| crash+stay-down | Running | yes | 1 | watchdog | Error |",
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
    if (strstr(r.out, rows[i]) == NULL)
      fail_msg("demo table lacks '%s':\n%s", rows[i], r.out);
  assert_int_equal(access(test_path(html, "terminated.html"), R_OK), 0);
  assert_int_equal(access(test_path(html, "crash+stay-down.html"), R_OK), 0);
  test_cmd_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_table)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
