/* Controller crashes at every crash point of six workflows, under each of
 * restart, lose-state and stay-down: the exit handler's promise is checked
 * at each (it ran, by whom, at least once and at most twice), the crash
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

#include "test_helpers.h"

static const char *const workflows[] = {
    "scenarios/exit-handler-workflow.yaml",  "tests/data/crash/parallel-steps.yaml",
    "tests/data/crash/dag-exit-hook.yaml",   "tests/data/crash/retries.yaml",
    "tests/data/crash/deadline.yaml",        "tests/data/crash/failing-handler.yaml",
};
static const char *const modes[] = {"restart", "lose-state", "stay-down"};

static int count_dirs_named(const char *dir, const char *prefix, int depth) {
  if (depth == 0)
    return 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.')
      continue;
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      n++;
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
    n += count_dirs_named(sub, prefix, depth - 1);
  }
  closedir(d);
  return n;
}

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

static void run_cell(const char *wf, const char *point, const char *mode, struct tally *t) {
  char text[4096];
  snprintf(text, sizeof(text),
           "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: crash-cell}\n"
           "spec:\n  workflow: %s\n  timeScale: 0.2\n  faults:\n"
           "  - {action: controller-crash, at: \"%s\", then: %s}\n",
           test_path(test_source_root(), wf), point, mode);
  const char *scenario = test_write_temp("cell.yaml", text);
  const char *report = test_path(test_temp_dir(), "cell.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  (char *)scenario, NULL};
  struct test_cmd_result r = test_run(argv);
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
    for (size_t p = 0; p < n; p++) {
      for (size_t m = 0; m < 3; m++)
        run_cell(workflows[w], points[p], modes[m], &t);
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
  assert_int_equal(count_dirs_named("/sys/fs/cgroup", "crash-", 6), 0);
  assert_true(t.by_watchdog > 0);
  assert_true(t.not_reached * 4 < t.cells);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_crash_point_every_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
