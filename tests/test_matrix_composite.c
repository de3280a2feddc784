/* The fault matrix of a workflow with parallel steps, a DAG and an exit
 * handler of two steps (tests/data/matrix/composite.yaml): every cell --
 * each step family on every step node, every crash point under restart,
 * lose-state and stay-down, stop and terminate -- agrees with the same fault
 * run alone as a single scenario, and the matrix leaves nothing behind. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_helpers.h"

static const char *str_field(const json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? v : "(null)";
}

static json_int_t int_field(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* Run the cell's own scenario as a plain `exitprobe run`, next to a copy of
 * the workflow (the scenario names it `workflow.yaml`), and return its report. */
static json_t *run_alone(const json_t *cell_report, const char *workflow_text) {
  const json_t *cell = json_object_get(cell_report, "cell");
  const char *scenario_text = str_field(cell, "scenarioText");
  const char *dir = test_temp_dir();
  char path[4096];
  snprintf(path, sizeof(path), "%s/workflow.yaml", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(workflow_text, f);
  fclose(f);
  char scenario[4096], report[4096];
  snprintf(scenario, sizeof(scenario), "%s/scenario.yaml", dir);
  snprintf(report, sizeof(report), "%s/report.json", dir);
  f = fopen(scenario, "w");
  assert_non_null(f);
  fputs(scenario_text, f);
  fclose(f);
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", report, scenario, NULL};
  struct test_cmd_result r = test_run(argv);
  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  if (root == NULL)
    fail_msg("cell scenario run alone wrote no report (exit %d):\n%s\n%s", r.exit_status, r.out,
             r.err);
  test_cmd_result_free(&r);
  return root;
}

/* What a single run says, in the terms of a summary cell. */
struct outcome {
  const char *phase, *seen, *by;
  json_int_t runs;
};

static struct outcome outcome_of_report(const json_t *report) {
  const json_t *eh = json_object_get(report, "exitHandler");
  struct outcome o = {
      .phase = str_field(json_object_get(report, "status"), "phase"),
      .seen = json_is_true(json_object_get(eh, "ran")) ? str_field(eh, "workflowStatus") : "(null)",
      .by = json_is_true(json_object_get(eh, "ran")) ? str_field(eh, "by") : "none",
      .runs = int_field(eh, "runs"),
  };
  return o;
}

static void test_composite_matrix_agrees_with_single_runs(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
  const char *workflow = test_path(test_data_dir(), "matrix/composite.yaml");
  char *workflow_text = test_read_file(workflow);
  assert_non_null(workflow_text);
  char *dir = strdup(test_path(test_temp_dir(), "cells"));
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "steps,crash,stop,terminate",
                  "-j", "2", "--report-dir", dir, (char *)workflow, NULL};
  struct test_cmd_result m = test_run(argv);
  if (m.exit_status != 0)
    fail_msg("matrix exited %d:\n%s\n%s", m.exit_status, m.out, m.err);
  json_error_t jerr;
  json_t *summary = json_load_file(test_path(dir, "summary.json"), 0, &jerr);
  assert_non_null(summary);
  assert_true(json_is_true(json_object_get(summary, "complete")));
  const json_t *cells = json_object_get(summary, "cells");
  /* Seven step nodes (fetch, build, test, lint, publish, release-lock, notify). */
  assert_true(json_array_size(cells) >= 7 * 5 + 2);

  int disagreements = 0, crash_cells = 0, twice = 0;
  for (size_t i = 0; i < json_array_size(cells); i++) {
    const json_t *c = json_array_get(cells, i);
    if (strcmp(str_field(c, "outcome"), "ran") != 0)
      fail_msg("cell %s: %s", str_field(c, "fault"), str_field(c, "outcome"));
    json_t *cell_report = json_load_file(test_path(dir, str_field(c, "report")), 0, &jerr);
    assert_non_null(cell_report);
    json_t *alone = run_alone(cell_report, workflow_text);
    struct outcome o = outcome_of_report(alone);
    const char *kind = str_field(c, "kind");
    bool crash = strcmp(kind, "restart") == 0 || strcmp(kind, "lose-state") == 0 ||
                 strcmp(kind, "stay-down") == 0;
    crash_cells += crash;
    twice += int_field(c, "handlerRuns") == 2;
    if (strcmp(o.phase, str_field(c, "workflowPhase")) != 0 ||
        strcmp(o.seen, str_field(c, "workflowStatusSeen")) != 0 ||
        strcmp(o.by, str_field(c, "by")) != 0 || o.runs != int_field(c, "handlerRuns")) {
      printf("disagrees: %s: matrix %s/%s/%lld/%s, alone %s/%s/%lld/%s\n", str_field(c, "fault"),
             str_field(c, "workflowPhase"), str_field(c, "workflowStatusSeen"),
             (long long)int_field(c, "handlerRuns"), str_field(c, "by"), o.phase, o.seen,
             (long long)o.runs, o.by);
      disagreements++;
    }
    /* Under a fault that does not touch the handler's promise, it ran exactly once. */
    if (!crash && strcmp(kind, "terminate") != 0 && int_field(c, "handlerRuns") != 1)
      fail_msg("%s: the exit handler ran %lld times", str_field(c, "fault"),
               (long long)int_field(c, "handlerRuns"));
    json_decref(alone);
    json_decref(cell_report);
  }
  printf("composite matrix: %zu cells (%d crash cells, %d with the handler run twice), %d "
         "disagreements with single runs\n",
         json_array_size(cells), crash_cells, twice, disagreements);
  assert_int_equal(disagreements, 0);
  assert_true(crash_cells > 0);

  /* The two-step handler: a failing first step still lets the workflow's
   * phase be decided by the handler (Failed), and the handler saw Succeeded. */
  for (size_t i = 0; i < json_array_size(cells); i++) {
    const json_t *c = json_array_get(cells, i);
    if (strcmp(str_field(c, "fault"), "exit 1 @ release-lock") == 0) {
      assert_string_equal(str_field(c, "workflowPhase"), "Failed");
      assert_string_equal(str_field(c, "workflowStatusSeen"), "Succeeded");
    }
    if (strcmp(str_field(c, "fault"), "exit 1 @ test") == 0)
      assert_string_equal(str_field(c, "workflowStatusSeen"), "Failed");
  }
  /* Nothing of any cell is left. */
  assert_int_equal(test_count_processes("matrix-composite"), 0);
  json_decref(summary);
  test_cmd_result_free(&m);
  free(dir);
  free(workflow_text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_composite_matrix_agrees_with_single_runs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
