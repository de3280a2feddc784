/* Steps outlive a controller crash and the restarted controller adopts
 * them, as Argo's adopts the pods a crashed controller left: a step that
 * spans the crash runs once and ends with its own exit code and its whole
 * log; an adopted step is still killed by its deadline, counted from its
 * start; a step that ended while no controller watched is finished from
 * its status file; lose-state still fences them (they run again); and
 * nothing of any run is left.  Each step appends to a witness file in a
 * claim volume when it starts (tests/data/crash/adoption.yaml). */
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

struct run {
  json_t *report;
  char *witness;
  char run_dir[1024];
};

static void run_fault(const char *fault, struct run *out) {
  char text[4096];
  snprintf(text, sizeof(text),
           "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: adoption}\n"
           "spec:\n  workflow: %s\n  timeScale: 0.2\n  faults:\n  - %s\n",
           test_path(test_data_dir(), "crash/adoption.yaml"), fault);
  const char *scenario = test_write_temp("adoption.yaml", text);
  const char *report = test_path(test_temp_dir(), "adoption.json");
  snprintf(out->run_dir, sizeof(out->run_dir), "%s", test_path(test_temp_dir(), "run"));
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  "--run-dir", out->run_dir, (char *)scenario, NULL};
  struct test_cmd_result r = test_run(argv);
  json_error_t jerr;
  out->report = json_load_file(report, 0, &jerr);
  if (out->report == NULL)
    fail_msg("%s: no report (exit %d)\n%s", fault, r.exit_status, r.err);
  json_t *f = json_array_get(json_object_get(out->report, "faults"), 0);
  if (!json_is_true(json_object_get(f, "fired")))
    fail_msg("%s: the fault did not fire", fault);
  char path[2048];
  snprintf(path, sizeof(path), "%s/workspace/witness/witness", out->run_dir);
  out->witness = test_read_file(path);
  assert_non_null(out->witness);
  test_cmd_result_free(&r);
}

static void run_free(struct run *r) {
  json_decref(r->report);
  free(r->witness);
}

static json_t *node_named(const struct run *r, const char *display) {
  json_t *nodes = json_object_get(json_object_get(r->report, "status"), "nodes");
  const char *key;
  json_t *n;
  json_object_foreach(nodes, key, n) {
    const char *d = json_string_value(json_object_get(n, "displayName"));
    if (d != NULL && strcmp(d, display) == 0)
      return n;
  }
  fail_msg("no node %s in the report", display);
  return NULL;
}

static const char *str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s != NULL ? s : "";
}

static const char *exit_code(json_t *node) {
  return str(json_object_get(node, "outputs"), "exitCode");
}

static bool has_note(const struct run *r, const char *needle) {
  json_t *notes = json_object_get(json_object_get(r->report, "environment"), "notes");
  size_t i;
  json_t *v;
  json_array_foreach(notes, i, v) {
    if (strstr(json_string_value(v) ? json_string_value(v) : "", needle) != NULL)
      return true;
  }
  return false;
}

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

static void assert_nothing_left(void) {
  assert_int_equal(test_count_processes("sleep 29.73"), 0);
  assert_int_equal(test_count_cgroups_named("adopt-step"), 0);
}

/* long runs across the crash: adopted, once, with its exit code and log. */
static void test_step_spans_the_crash(void **state) {
  (void)state;
  skip_without_sandbox();
  struct run r;
  run_fault("{action: controller-crash, at: \"after:node-started:long\", then: restart}", &r);
  json_t *long_node = node_named(&r, "long");
  printf("long: %s, exit %s, log %s", str(long_node, "phase"), exit_code(long_node),
         str(long_node, "log"));
  assert_int_equal(test_count_lines_equal(r.witness, "long"), 1);
  assert_string_equal(str(long_node, "phase"), "Failed");
  assert_string_equal(exit_code(long_node), "3");
  assert_string_equal(str(long_node, "message"), "main: Error (exit code 3)");
  assert_string_equal(str(long_node, "log"), "before\nafter\n");
  assert_true(has_note(&r, "long: adopted"));
  json_t *eh = json_object_get(r.report, "exitHandler");
  assert_int_equal(json_integer_value(json_object_get(eh, "runs")), 1);
  run_free(&r);
  assert_nothing_left();
}

/* slow is adopted and its deadline, counted from its start, still kills it. */
static void test_adopted_step_meets_its_deadline(void **state) {
  (void)state;
  skip_without_sandbox();
  struct run r;
  run_fault("{action: controller-crash, at: \"after:node-started:slow\", then: restart}", &r);
  json_t *slow = node_named(&r, "slow");
  assert_int_equal(test_count_lines_equal(r.witness, "slow"), 1);
  assert_string_equal(str(slow, "phase"), "Failed");
  assert_string_equal(str(slow, "message"),
                      "Pod was active on the node longer than the specified deadline");
  assert_true(has_note(&r, "slow: adopted"));
  run_free(&r);
  assert_nothing_left();
}

/* The controller hangs past its lease right after quick started, is fenced,
 * and its successor comes after quick ended: finished from its status file. */
static void test_step_ended_while_nobody_watched(void **state) {
  (void)state;
  skip_without_sandbox();
  struct run r;
  run_fault("{action: controller-hang, at: \"after:node-started:quick\", then: restart, "
            "duration: 1500ms, lease: 100ms}",
            &r);
  json_t *quick = node_named(&r, "quick");
  assert_int_equal(test_count_lines_equal(r.witness, "quick"), 1);
  assert_string_equal(str(quick, "phase"), "Failed");
  assert_string_equal(exit_code(quick), "5");
  assert_string_equal(str(quick, "log"), "quick-out\n");
  assert_true(has_note(&r, "quick: ended while no controller watched"));
  run_free(&r);
  assert_nothing_left();
}

/* With the state lost there is nothing to adopt into: the supervisor fences
 * the old steps and the workflow starts over. */
static void test_lose_state_fences(void **state) {
  (void)state;
  skip_without_sandbox();
  struct run r;
  run_fault("{action: controller-crash, at: \"after:node-started:long\", then: lose-state}", &r);
  assert_int_equal(test_count_lines_equal(r.witness, "quick"), 2);
  assert_int_equal(test_count_lines_equal(r.witness, "long"), 2);
  assert_int_equal(test_count_lines_equal(r.witness, "slow"), 1);
  json_t *actions = json_object_get(json_object_get(r.report, "watchdog"), "actions");
  bool fenced = false;
  size_t i;
  json_t *v;
  json_array_foreach(actions, i, v) fenced |= strstr(json_string_value(v), "fenced") != NULL;
  assert_true(fenced);
  assert_string_equal(exit_code(node_named(&r, "long")), "3");
  run_free(&r);
  assert_nothing_left();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_spans_the_crash),
      cmocka_unit_test(test_adopted_step_meets_its_deadline),
      cmocka_unit_test(test_step_ended_while_nobody_watched),
      cmocka_unit_test(test_lose_state_fences),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
