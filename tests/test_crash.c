/* Controller crashes at every crash point of six workflows, under each of
 * restart, lose-state and stay-down: the exit handler's promise is checked
 * at each (it ran, by whom, at least once and at most twice -- once under
 * restart, whose controller adopts the running steps), the crash
 * fault really fired, and nothing of the run is left behind. */
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

#include "ledger.h"
#include "test_helpers.h"

static const char *const workflows[] = {
    "scenarios/exit-handler-workflow.yaml",  "tests/data/crash/parallel-steps.yaml",
    "tests/data/crash/dag-exit-hook.yaml",   "tests/data/crash/retries.yaml",
    "tests/data/crash/deadline.yaml",        "tests/data/crash/failing-handler.yaml",
};
static const char *const modes[] = {"restart", "lose-state", "stay-down"};

static char **crash_points(const char *wf, size_t *n) {
  char *argv[] = {(char *)test_exitprobe_bin(), "crash-points", (char *)wf, NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 0);
  char **points = NULL;
  *n = 0;
  char *save = NULL;
  for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    points = realloc(points, (*n + 1) * sizeof(char *));
    points[(*n)++] = strdup(line);
  }
  test_cmd_result_free(&r);
  return points;
}

struct tally {
  int cells, by_controller, by_watchdog, twice, not_reached;
};

static int count_terminal(void *ctx, const struct ledger_record *rec, ep_error **err) {
  (void)err;
  int *n = ctx;
  *n += rec->type == LEDGER_T_EXIT_HANDLER_DONE || rec->type == LEDGER_T_COMPENSATION_DONE ||
        rec->type == LEDGER_T_OUTCOME_UNKNOWN;
  return 0;
}

/* Terminal records of the exit handler in the run's ledger: its outcome,
 * by the controller or the watchdog, or "unknown" -- exactly one. */
static int terminal_records(const char *run_dir) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/ledger.log", run_dir);
  struct ledger *l = NULL;
  struct ledger_options lo = {.flags = LEDGER_RDONLY};
  ep_error *e = NULL;
  int n = 0;
  if (ledger_open(path, &lo, &l, NULL, &e) < 0 || ledger_foreach(l, count_terminal, &n, &e) < 0)
    fail_msg("%s: %s", path, e ? e->message : "?");
  ledger_close(&l);
  return n;
}

/* One cell of the table printed for docs/CRASH-POINTS.md (scripts/crash-table.sh). */
static void run_cell(const char *wf, const char *point, const char *mode, struct tally *t,
                     char *cell, size_t cell_size) {
  struct test_crash_cell run;
  test_run_crash_cell(test_path(test_source_root(), wf), point, mode, &run);
  struct test_cmd_result r = run.r;
  const char *report = run.report, *run_dir = run.run_dir;
  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  if (root == NULL)
    fail_msg("%s at %s (%s): no report (exit %d)\n%s", wf, point, mode, r.exit_status, r.err);
  json_t *fault = json_array_get(json_object_get(root, "faults"), 0);
  bool fired = json_is_true(json_object_get(fault, "fired"));
  json_t *eh = json_object_get(root, "exitHandler");
  int runs = (int)json_integer_value(json_object_get(eh, "runs"));
  const char *by = json_string_value(json_object_get(eh, "by"));
  t->cells++;
  int terminal = terminal_records(run_dir);
  if (terminal != 1)
    fail_msg("%s at %s (%s): %d terminal records of the exit handler in the ledger", wf, point,
             mode, terminal);
  if (!fired)
    snprintf(cell, cell_size, "not reached");
  else
    snprintf(cell, cell_size, "%s, %d run%s", by ? by : "none", runs, runs == 1 ? "" : "s");
  if (!fired) {
    /* A point the run never met (a node that did not run): inconclusive, said so. */
    assert_int_equal(r.exit_status, 3);
    t->not_reached++;
  } else {
    /* The promise: the handler ran -- by the controller or, when the
     * controller stayed down before it finished, by the watchdog -- at
     * least once and, under at-least-once delivery, at most twice. */
    if (runs < 1 || runs > 2)
      fail_msg("%s at %s (%s): the exit handler ran %d times", wf, point, mode, runs);
    assert_true(json_is_true(json_object_get(eh, "ran")));
    if (strcmp(by, "watchdog") == 0) {
      assert_string_equal(mode, "stay-down");
      t->by_watchdog++;
    } else {
      assert_string_equal(by, "controller");
      t->by_controller++;
    }
    /* Under restart the state shows every running step, so the restarted
     * controller adopts the handler's pod instead of running it again. */
    if (strcmp(mode, "restart") == 0 && runs != 1)
      fail_msg("%s at %s (restart): the exit handler ran %d times; its pod should have been "
               "adopted", wf, point, runs);
    if (runs == 2)
      t->twice++;
    assert_true(r.exit_status == 0 || r.exit_status == 1);
  }
  json_decref(root);
  test_cmd_result_free(&r);
}

static void test_every_crash_point_every_mode(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
  struct tally t = {0};
  size_t total_points = 0;
  for (size_t w = 0; w < sizeof(workflows) / sizeof(workflows[0]); w++) {
    size_t n = 0;
    char **points = crash_points(test_path(test_source_root(), workflows[w]), &n);
    assert_true(n >= 4);
    total_points += n;
    printf("table: \ntable: `%s`\ntable: \n", workflows[w]);
    printf("table: | crash point | restart | lose-state | stay-down |\ntable: |---|---|---|---|\n");
    for (size_t p = 0; p < n; p++) {
      char cells[3][128];
      for (size_t m = 0; m < 3; m++)
        run_cell(workflows[w], points[p], modes[m], &t, cells[m], sizeof(cells[m]));
      printf("table: | `%s` | %s | %s | %s |\n", points[p], cells[0], cells[1], cells[2]);
      free(points[p]);
    }
    free(points);
  }
  printf("crash points: %zu over %zu workflows, %d cells: exit handler by controller %d, by "
         "watchdog %d, twice %d, point not reached %d\n",
         total_points, sizeof(workflows) / sizeof(workflows[0]), t.cells, t.by_controller,
         t.by_watchdog, t.twice, t.not_reached);
  /* Nothing of any run is left: no step process, no step cgroup. */
  assert_int_equal(test_count_processes("sleep 29.87"), 0);
  /* (Only the workflows named crash-*: other tests may be running the seed right now.) */
  assert_int_equal(test_count_cgroups_named("crash-"), 0);
  assert_true(t.by_watchdog > 0);
  assert_true(t.not_reached * 4 < t.cells);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_crash_point_every_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
