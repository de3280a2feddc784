/* spec.mocks: resource, http and plugin templates cannot run locally, so a
 * workflow with one is refused unless a scenario mocks it; a mocked node
 * ends as the mock says, with its outputs, and is flagged in the report. */
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

static const char *mock_file(const char *name) {
  static char path[4][1024];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, sizeof(path[0]), "%s/mocks/%s", test_data_dir(), name);
  return p;
}

static struct test_cmd_result exitprobe(const char *verb, const char *a1, const char *a2,
                                        const char *a3) {
  char *argv[] = {(char *)test_exitprobe_bin(), (char *)verb, (char *)a1, (char *)a2,
                  (char *)a3, NULL};
  return test_run(argv);
}

static void expect_refused(const char *verb, const char *file, const char *where,
                           const char *what) {
  struct test_cmd_result r = exitprobe(verb, mock_file(file), NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, where));
  assert_non_null(strstr(r.err, what));
  test_cmd_result_free(&r);
}

static void test_unmocked_workflow_is_refused(void **state) {
  (void)state;
  expect_refused("run", "cluster-templates.yaml", "cluster-templates.yaml:23:5:",
                 "template 'fetch': http templates are not supported locally");
  expect_refused("validate", "cluster-templates.yaml", "cluster-templates.yaml:23:5:",
                 "mock it in a scenario (spec.mocks)");
}

static void test_bad_mocks_are_refused(void **state) {
  (void)state;
  expect_refused("run", "unmocked.yaml", "cluster-templates.yaml:26:5:",
                 "template 'create-job': resource templates are not supported locally");
  expect_refused("run", "mock-container.yaml", "mock-container.yaml:10:5:",
                 "only resource, http and plugin templates can be mocked");
  expect_refused("run", "bad-phase.yaml", "bad-phase.yaml:7:30:",
                 "phase must be Succeeded, Failed or Error");
}

static json_t *node_named(json_t *root, const char *display) {
  json_t *nodes = json_object_get(json_object_get(root, "status"), "nodes");
  const char *id;
  json_t *n;
  json_object_foreach(nodes, id, n) {
    if (strcmp(json_string_value(json_object_get(n, "displayName")), display) == 0)
      return n;
  }
  fail_msg("no node %s", display);
  return NULL;
}

static json_t *run_scenario(const char *file, const char *name, int want_status) {
  if (test_sandbox_unavailable() != NULL)
    return NULL;
  const char *dir = test_temp_dir();
  struct test_cmd_result r = exitprobe("run", "--report-dir", dir, mock_file(file));
  if (r.exit_status != want_status)
    fail_msg("exit status %d, expected %d\n%s%s", r.exit_status, want_status, r.out, r.err);
  test_cmd_result_free(&r);
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s.json", dir, name);
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  assert_non_null(root);
  return root;
}

static void test_mocks_stand_in(void **state) {
  (void)state;
  if (test_sandbox_unavailable() != NULL)
    skip();
  json_t *root = run_scenario("succeed.yaml", "mock-succeed", 0);
  json_t *call = node_named(root, "call"), *apply = node_named(root, "apply"),
         *notify = node_named(root, "notify"), *use = node_named(root, "use");
  assert_string_equal(json_string_value(json_object_get(call, "type")), "HTTP");
  assert_string_equal(json_string_value(json_object_get(apply, "type")), "Pod");
  assert_string_equal(json_string_value(json_object_get(notify, "type")), "Plugin");
  assert_true(json_is_true(json_object_get(call, "mocked")));
  assert_true(json_is_true(json_object_get(apply, "mocked")));
  assert_null(json_object_get(use, "mocked")); /* a real step */
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(call, "outputs"), "result")),
      "{\"replicas\":3}");
  /* The real step saw the mocked outputs and the global they published. */
  assert_non_null(strstr(json_string_value(json_object_get(use, "log")),
                         "job=work-abc12 global=work-abc12"));
  json_decref(root);
}

static void test_failed_mock_fails_the_workflow(void **state) {
  (void)state;
  if (test_sandbox_unavailable() != NULL)
    skip();
  json_t *root = run_scenario("fail.yaml", "mock-fail", 0); /* its expectations hold */
  json_t *call = node_named(root, "call");
  assert_string_equal(json_string_value(json_object_get(call, "phase")), "Failed");
  assert_string_equal(json_string_value(json_object_get(call, "message")),
                      "received non-2XX response code 503");
  json_t *status = json_object_get(root, "status");
  assert_string_equal(json_string_value(json_object_get(status, "phase")), "Failed");
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unmocked_workflow_is_refused),
      cmocka_unit_test(test_bad_mocks_are_refused),
      cmocka_unit_test(test_mocks_stand_in),
      cmocka_unit_test(test_failed_mock_fails_the_workflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
