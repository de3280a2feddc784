/* exitHandler.runs counts the handler's executions as a witness of its
 * steps sees them: the counter on its own, then controller crashes at the
 * points of a two-step handler whose steps append to a witness file in a
 * claim volume -- the report's runs must equal the most times any one step
 * of the handler wrote its mark. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "handler_runs.h"
#include "test_helpers.h"

static void test_counter(void **state) {
  (void)state;
  struct handler_runs h = {0};
  handler_runs_set_workflow(&h, "wf");
  assert_int_equal(handler_runs_count(&h), 0);
  handler_runs_note_intent(&h);
  /* An intent without a launch (every step skipped): one run. */
  assert_int_equal(handler_runs_count(&h), 1);
  handler_runs_note_launch(&h, "wf[0].work");
  handler_runs_note_launch(&h, "wf.onExitX"); /* another node, not the handler */
  handler_runs_note_launch(&h, "wf.onExit[0].first");
  handler_runs_note_launch(&h, "wf.onExit[1].second");
  handler_runs_note_intent(&h); /* a restarted controller carries the handler on */
  assert_int_equal(handler_runs_count(&h), 1);
  handler_runs_note_launch(&h, "wf.onExit[1].second"); /* relaunched after a crash */
  assert_int_equal(handler_runs_count(&h), 2);
  handler_runs_note_launch(&h, "wf.onExit");
  handler_runs_note_launch(&h, "wf.onExit(0)");
  handler_runs_note_launch(&h, "wf.onExit.task");
  assert_int_equal(handler_runs_count(&h), 2);
  handler_runs_free(&h);
}

struct cell {
  const char *at, *then;
  int first, second; /* the witness's counts */
};

static void run_cell(const struct cell *c) {
  struct test_crash_cell cell;
  test_run_crash_cell(test_path(test_data_dir(), "crash/witness-handler.yaml"), c->at, c->then,
                      &cell);
  struct test_cmd_result r = cell.r;
  const char *report = cell.report, *run_dir = cell.run_dir;
  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  if (root == NULL)
    fail_msg("%s (%s): no report (exit %d)\n%s", c->at, c->then, r.exit_status, r.err);
  json_t *fault = json_array_get(json_object_get(root, "faults"), 0);
  if (!json_is_true(json_object_get(fault, "fired")))
    fail_msg("%s (%s): the crash did not fire (exit %d)\n%s", c->at, c->then, r.exit_status, r.err);
  int runs = (int)json_integer_value(json_object_get(json_object_get(root, "exitHandler"), "runs"));
  char witness_path[2048];
  snprintf(witness_path, sizeof(witness_path), "%s/workspace/witness/witness", run_dir);
  char *witness = test_read_file(witness_path);
  int first = test_count_lines_equal(witness, "first"), second = test_count_lines_equal(witness, "second");
  printf("%s, %s: first %d, second %d, runs %d\n", c->at, c->then, first, second, runs);
  if (first != c->first || second != c->second)
    fail_msg("%s (%s): the witness saw first %d, second %d times; expected %d, %d", c->at,
             c->then, first, second, c->first, c->second);
  if (runs != (first > second ? first : second))
    fail_msg("%s (%s): the report says %d runs, the witness saw first %d, second %d times",
             c->at, c->then, runs, first, second);
  free(witness);
  json_decref(root);
  test_cmd_result_free(&r);
}

static void test_runs_match_the_witness(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
  static const struct cell cells[] = {
      /* The restarted controller carries the handler on: no step twice, one run. */
      {"after:node-finished:first", "restart", 1, 1},
      {"after:node-finished:second", "restart", 1, 1},
      /* A running step outlives its controller and is adopted: once. */
      {"after:node-started:second", "restart", 1, 1},
      /* Stale state: the whole workflow, handler included, again. */
      {"after:exit-handler", "lose-state", 2, 2},
      {"after:node-finished:first", "lose-state", 2, 1},
      /* The watchdog runs the whole handler again. */
      {"after:node-finished:first", "stay-down", 2, 1},
      {"before:exit-handler", "stay-down", 1, 1},
  };
  for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++)
    run_cell(&cells[i]);
  assert_int_equal(test_count_cgroups_named("witness-handler"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counter),
      cmocka_unit_test(test_runs_match_the_witness),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
