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

/* How many lines of the witness file are exactly `mark`. */
static int marks(const char *text, const char *mark) {
  int n = 0;
  size_t len = strlen(mark);
  for (const char *p = text; p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t line = nl ? (size_t)(nl - p) : strlen(p);
    n += line == len && strncmp(p, mark, len) == 0;
    p = nl ? nl + 1 : NULL;
  }
  return n;
}

struct cell {
  const char *at, *then;
  int first, second; /* the witness's counts */
};

static void run_cell(const struct cell *c) {
  char text[4096];
  snprintf(text, sizeof(text),
           "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: witness-cell}\n"
           "spec:\n  workflow: %s\n  timeScale: 0.2\n  faults:\n"
           "  - {action: controller-crash, at: \"%s\", then: %s}\n",
           test_path(test_data_dir(), "crash/witness-handler.yaml"), c->at, c->then);
  const char *scenario = test_write_temp("cell.yaml", text);
  const char *report = test_path(test_temp_dir(), "cell.json");
  char run_dir[1024];
  snprintf(run_dir, sizeof(run_dir), "%s", test_path(test_temp_dir(), "run"));
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  "--run-dir", run_dir, (char *)scenario, NULL};
  struct test_cmd_result r = test_run(argv);
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
  int first = marks(witness, "first"), second = marks(witness, "second");
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
