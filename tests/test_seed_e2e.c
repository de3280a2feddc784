/* The seed lesson end to end: the unchanged workflow through the real
 * binary, sandbox and report. */
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

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

static json_t *run_and_load(const char *workflow, int expect_status, char **stdout_text) {
  const char *report = test_path(test_temp_dir(), "report.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "--quiet", "--color", "never",
                  "--report", (char *)report, (char *)workflow, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != expect_status)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.exit_status, expect_status,
             r.out, r.err);
  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  if (root == NULL)
    fail_msg("report %s unreadable: %s", report, jerr.text);
  if (stdout_text != NULL)
    *stdout_text = strdup(r.out);
  test_cmd_result_free(&r);
  return root;
}

static json_t *node_by_display(json_t *root, const char *display) {
  json_t *nodes = json_object_get(json_object_get(root, "status"), "nodes");
  const char *id;
  json_t *node;
  json_object_foreach(nodes, id, node) {
    if (strcmp(json_string_value(json_object_get(node, "displayName")), display) == 0)
      return node;
  }
  fail_msg("no node with displayName %s", display);
  return NULL;
}

static const char *str(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  assert_non_null(v);
  return json_string_value(v);
}

static void test_seed_fails_and_exit_handler_reports_it(void **state) {
  (void)state;
  skip_without_sandbox();
  char *out = NULL;
  json_t *root = run_and_load(test_path(test_source_root(), "scenarios/exit-handler-workflow.yaml"),
                              1, &out);
  json_t *status = json_object_get(root, "status");
  assert_string_equal(str(status, "phase"), "Failed");
  assert_string_equal(str(json_object_get(root, "workflow"), "name"), "exit-handler-workflow");

  json_t *work = node_by_display(root, "work");
  assert_string_equal(str(work, "phase"), "Failed");
  assert_string_equal(str(work, "type"), "Pod");
  assert_string_equal(str(work, "name"), "exit-handler-workflow[0].work");
  assert_string_equal(str(json_object_get(work, "outputs"), "exitCode"), "1");
  assert_string_equal(str(work, "message"), "main: Error (exit code 1)");
  assert_non_null(strstr(str(work, "log"), "Doing work..."));

  json_t *entry = node_by_display(root, "exit-handler-workflow");
  assert_string_equal(str(entry, "type"), "Steps");
  assert_string_equal(str(entry, "id"), "exit-handler-workflow");
  assert_string_equal(str(node_by_display(root, "[0]"), "type"), "StepGroup");

  json_t *eh = json_object_get(root, "exitHandler");
  assert_true(json_is_true(json_object_get(eh, "declared")));
  assert_true(json_is_true(json_object_get(eh, "ran")));
  assert_int_equal(json_integer_value(json_object_get(eh, "runs")), 1);
  assert_string_equal(str(eh, "phase"), "Succeeded");
  assert_string_equal(str(eh, "workflowStatus"), "Failed");
  assert_string_equal(str(eh, "by"), "controller");

  json_t *handler = node_by_display(root, "exit-handler-workflow.onExit");
  assert_string_equal(str(handler, "phase"), "Succeeded");
  const char *log = str(handler, "log");
  assert_non_null(strstr(log, "Workflow status: Failed\n"));
  assert_non_null(strstr(log, "Cleaning up resources...\n"));
  assert_non_null(strstr(log, "Sending failure notification\n"));
  /* The summary a user reads shows the same. */
  assert_non_null(strstr(out, "Sending failure notification"));
  assert_non_null(strstr(out, "work"));
  free(out);
  json_decref(root);
}

static char *replace_once(char *text, const char *from, const char *to) {
  char *at = strstr(text, from);
  assert_non_null(at);
  size_t len = strlen(text) - strlen(from) + strlen(to) + 1;
  char *out = malloc(len);
  snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  free(text);
  return out;
}

static char *seed_with(const char *from, const char *to) {
  char *text = test_read_file(test_path(test_source_root(), "scenarios/exit-handler-workflow.yaml"));
  assert_non_null(text);
  return replace_once(text, from, to);
}

static void test_seed_succeeding_sends_no_notification(void **state) {
  (void)state;
  skip_without_sandbox();
  char *text = seed_with("exit 1", "exit 0");
  const char *wf = test_write_temp("ok.yaml", text);
  free(text);
  json_t *root = run_and_load(wf, 0, NULL);
  assert_string_equal(str(json_object_get(root, "status"), "phase"), "Succeeded");
  json_t *eh = json_object_get(root, "exitHandler");
  assert_string_equal(str(eh, "workflowStatus"), "Succeeded");
  const char *log = str(node_by_display(root, "exit-handler-workflow.onExit"), "log");
  assert_non_null(strstr(log, "Workflow status: Succeeded"));
  assert_null(strstr(log, "Sending failure notification"));
  json_decref(root);
}

static void test_failing_exit_handler_fails_a_succeeded_workflow(void **state) {
  (void)state;
  skip_without_sandbox();
  char *b = replace_once(seed_with("exit 1", "exit 0"), "        fi\n", "        fi\n        exit 3\n");
  const char *wf = test_write_temp("eh-fails.yaml", b);
  free(b);
  json_t *root = run_and_load(wf, 1, NULL);
  json_t *status = json_object_get(root, "status");
  assert_string_equal(str(status, "phase"), "Failed");
  assert_string_equal(str(status, "message"), "main: Error (exit code 3)");
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seed_fails_and_exit_handler_reports_it),
      cmocka_unit_test(test_seed_succeeding_sends_no_notification),
      cmocka_unit_test(test_failing_exit_handler_fails_a_succeeded_workflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
