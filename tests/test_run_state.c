/* Unit tests for the run state: Argo's node ids and pod names, the node
 * index at loop scale, children, logs, phase predicates, time formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_state.h"

static void test_fnv1a32_known_values(void **state) {
  (void)state;
  /* Offset basis for the empty string; published FNV-1a test vectors. */
  assert_int_equal(fnv1a32(""), 2166136261u);
  assert_int_equal(fnv1a32("a"), 0xe40c292cu);
  assert_int_equal(fnv1a32("foobar"), 0xbf9cf968u);
}

static void test_node_id_argo_example(void **state) {
  (void)state;
  /* workflow/controller/exit_handler_test.go */
  char *id = run_state_node_id("exit-handler-with-param-96rrj",
                               "exit-handler-with-param-96rrj.step-1");
  assert_string_equal(id, "exit-handler-with-param-96rrj-588897729");
  free(id);

  id = run_state_node_id("exit-handler-with-param-96rrj", "exit-handler-with-param-96rrj");
  assert_string_equal(id, "exit-handler-with-param-96rrj");
  free(id);
}

static void test_add_node_uses_id_rule(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = strdup("exit-handler-with-param-96rrj");
  struct wf_node *entry =
      run_state_add_node(st, "exit-handler-with-param-96rrj", NULL, NODE_STEPS, "main", NULL);
  struct wf_node *step =
      run_state_add_node(st, "exit-handler-with-param-96rrj.step-1", "step-1", NODE_POD,
                         "whalesay", entry->id);
  assert_string_equal(entry->id, "exit-handler-with-param-96rrj");
  assert_string_equal(entry->display_name, "exit-handler-with-param-96rrj");
  assert_null(entry->boundary_id);
  assert_null(entry->pod_name);
  assert_string_equal(step->id, "exit-handler-with-param-96rrj-588897729");
  assert_string_equal(step->display_name, "step-1");
  assert_string_equal(step->boundary_id, "exit-handler-with-param-96rrj");
  assert_string_equal(step->pod_name, "exit-handler-with-param-96rrj-whalesay-588897729");
  assert_int_equal(step->phase, PHASE_PENDING);
  assert_true(step->started_at_us > 0);
  assert_int_equal(step->finished_at_us, 0);

  /* Adding the same name again returns the existing node. */
  assert_ptr_equal(run_state_add_node(st, "exit-handler-with-param-96rrj.step-1", "x", NODE_POD,
                                      "other", NULL),
                   step);
  assert_int_equal(st->n_nodes, 2);
  run_state_free(st);
}

static void test_pod_name_rule(void **state) {
  (void)state;
  char *p = run_state_pod_name("wf", "wf", "main");
  assert_string_equal(p, "wf");
  free(p);
  p = run_state_pod_name("wf", "wf.onExit", NULL);
  char want[64];
  snprintf(want, sizeof(want), "wf-%u", (unsigned)fnv1a32("wf.onExit"));
  assert_string_equal(p, want);
  free(p);

  /* The prefix is cut so the name fits Kubernetes' 253-character limit. */
  char tmpl[300];
  memset(tmpl, 't', sizeof(tmpl) - 1);
  tmpl[sizeof(tmpl) - 1] = '\0';
  p = run_state_pod_name("wf", "wf.x", tmpl);
  snprintf(want, sizeof(want), "-%u", (unsigned)fnv1a32("wf.x"));
  assert_int_equal(strlen(p), 242 + strlen(want));
  assert_string_equal(p + 242, want);
  assert_memory_equal(p, "wf-ttt", 6);
  free(p);
}

#define MANY 20000

static void test_many_nodes(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = strdup("loop");
  struct wf_node *group = run_state_add_node(st, "loop[0]", "[0]", NODE_STEP_GROUP, NULL, "loop");
  int64_t t0 = now_realtime_us();
  char name[96];
  for (int i = 0; i < MANY; i++) {
    snprintf(name, sizeof(name), "loop[0].work(%d:item-%d)", i, i);
    struct wf_node *n = run_state_add_node(st, name, NULL, NODE_POD, "work", "loop");
    run_state_add_child(group, n->id);
  }
  for (int i = 0; i < MANY; i++) {
    snprintf(name, sizeof(name), "loop[0].work(%d:item-%d)", i, i);
    struct wf_node *n = run_state_find_name(st, name);
    assert_non_null(n);
    assert_string_equal(n->name, name);
    assert_ptr_equal(st->nodes[i + 1], n); /* creation order */
    assert_ptr_equal(run_state_find_id(st, n->id), n);
    /* A reconcile re-adds everything: nothing may be duplicated. */
    assert_ptr_equal(run_state_add_node(st, name, NULL, NODE_POD, "work", "loop"), n);
    run_state_add_child(group, n->id);
  }
  int64_t elapsed = now_realtime_us() - t0;
  assert_int_equal(st->n_nodes, MANY + 1);
  assert_int_equal(group->n_children, MANY);
  assert_null(run_state_find_name(st, "loop[0].work(20000:item-20000)"));
  assert_null(run_state_find_id(st, "loop-1"));
  assert_null(run_state_find_name(st, "loop[0].work(1:item-1) "));
  /* Quadratic behaviour would take tens of seconds here, even unsanitized. */
  assert_true(elapsed < 5 * 1000000);
  run_state_free(st);
}

static void test_children_dedupe_and_order(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = strdup("wf");
  struct wf_node *p = run_state_add_node(st, "wf", NULL, NODE_STEPS, "main", NULL);
  run_state_add_child(p, "wf-1");
  run_state_add_child(p, "wf-2");
  run_state_add_child(p, "wf-1");
  run_state_add_child(p, "wf-3");
  run_state_add_child(p, "wf-2");
  assert_int_equal(p->n_children, 3);
  assert_string_equal(p->children[0], "wf-1");
  assert_string_equal(p->children[1], "wf-2");
  assert_string_equal(p->children[2], "wf-3");

  /* Past the point where a set takes over from the scan. */
  char id[32];
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 100; i++) {
      snprintf(id, sizeof(id), "wf-%d", i);
      run_state_add_child(p, id);
    }
  assert_int_equal(p->n_children, 100);
  assert_string_equal(p->children[0], "wf-1");
  assert_string_equal(p->children[2], "wf-3");
  assert_string_equal(p->children[3], "wf-0");
  assert_string_equal(p->children[99], "wf-99");
  for (int i = 0; i < 100; i++)
    for (int j = i + 1; j < 100; j++)
      assert_string_not_equal(p->children[i], p->children[j]);
  run_state_free(st);
}

static void test_finish_and_message(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = strdup("wf");
  struct wf_node *n = run_state_add_node(st, "wf", NULL, NODE_POD, "main", NULL);
  assert_string_equal(n->pod_name, "wf");
  node_finish(n, PHASE_FAILED, "main: Error (exit code 1)");
  assert_int_equal(n->phase, PHASE_FAILED);
  assert_string_equal(n->message, "main: Error (exit code 1)");
  assert_true(n->finished_at_us >= n->started_at_us);
  node_set_message(n, "");
  assert_null(n->message);
  node_set_message(n, "again");
  node_finish(n, PHASE_ERROR, NULL);
  assert_null(n->message);
  assert_int_equal(n->phase, PHASE_ERROR);
  run_state_free(st);
}

static void test_log_truncation(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  struct wf_node *n = run_state_add_node(st, "wf.a", NULL, NODE_POD, "a", NULL);
  node_append_log(n, "hello\n", 6);
  node_append_log(n, "", 0);
  assert_int_equal(n->log_len, 6);
  assert_string_equal(n->log, "hello\n");
  assert_false(n->log_truncated);

  size_t chunk = 65536;
  char *buf = malloc(chunk);
  assert_non_null(buf);
  memset(buf, 'x', chunk);
  for (size_t total = 0; total < NODE_LOG_MAX; total += chunk)
    node_append_log(n, buf, chunk);
  assert_int_equal(n->log_len, NODE_LOG_MAX);
  assert_true(n->log_truncated);
  assert_memory_equal(n->log, "hello\nxxx", 9);
  assert_int_equal(n->log[NODE_LOG_MAX - 1], 'x');
  assert_int_equal(n->log[NODE_LOG_MAX], '\0');
  node_append_log(n, "more", 4);
  assert_int_equal(n->log_len, NODE_LOG_MAX);
  free(buf);

  /* Exactly at the limit is not truncation. */
  struct wf_node *m = run_state_add_node(st, "wf.b", NULL, NODE_POD, "b", NULL);
  char *big = malloc(NODE_LOG_MAX);
  assert_non_null(big);
  memset(big, 'y', NODE_LOG_MAX);
  node_append_log(m, big, NODE_LOG_MAX);
  assert_int_equal(m->log_len, NODE_LOG_MAX);
  assert_false(m->log_truncated);
  free(big);
  run_state_free(st);
}

static void test_phase_predicates_and_names(void **state) {
  (void)state;
  const struct {
    enum node_phase phase;
    const char *name;
    bool completed, fulfilled;
  } cases[] = {
      {PHASE_PENDING, "Pending", false, false},  {PHASE_RUNNING, "Running", false, false},
      {PHASE_SUCCEEDED, "Succeeded", true, true}, {PHASE_FAILED, "Failed", true, true},
      {PHASE_ERROR, "Error", true, true},         {PHASE_SKIPPED, "Skipped", false, true},
      {PHASE_OMITTED, "Omitted", false, true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_string_equal(node_phase_name(cases[i].phase), cases[i].name);
    assert_int_equal(node_phase_completed(cases[i].phase), cases[i].completed);
    assert_int_equal(node_phase_fulfilled(cases[i].phase), cases[i].fulfilled);
  }
  assert_string_equal(node_type_name(NODE_POD), "Pod");
  assert_string_equal(node_type_name(NODE_STEPS), "Steps");
  assert_string_equal(node_type_name(NODE_STEP_GROUP), "StepGroup");
  assert_string_equal(node_type_name(NODE_DAG), "DAG");
  assert_string_equal(node_type_name(NODE_TASK_GROUP), "TaskGroup");
  assert_string_equal(node_type_name(NODE_RETRY), "Retry");
  assert_string_equal(node_type_name(NODE_SKIPPED), "Skipped");
  assert_string_equal(node_type_name(NODE_SUSPEND), "Suspend");
}

static void test_notes_warnings_and_time(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  run_state_add_note(st, "cgroup %s", "v1");
  run_state_add_warning(st, "%s:%d:%d: unsupported field '%s'", "wf.yaml", 3, 5, "volumes");
  assert_int_equal(st->n_notes, 1);
  assert_string_equal(st->notes[0], "cgroup v1");
  assert_int_equal(st->n_warnings, 1);
  assert_string_equal(st->warnings[0], "wf.yaml:3:5: unsupported field 'volumes'");
  run_state_free(st);
  run_state_free(NULL);

  char buf[32];
  format_rfc3339(0, buf);
  assert_string_equal(buf, "1970-01-01T00:00:00Z");
  format_rfc3339(1795750551999999, buf); /* sub-second part is dropped */
  assert_string_equal(buf, "2026-11-27T03:35:51Z");
  int64_t now = now_realtime_us();
  assert_true(now > 1700000000LL * 1000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fnv1a32_known_values),
      cmocka_unit_test(test_node_id_argo_example),
      cmocka_unit_test(test_add_node_uses_id_rule),
      cmocka_unit_test(test_pod_name_rule),
      cmocka_unit_test(test_many_nodes),
      cmocka_unit_test(test_children_dedupe_and_order),
      cmocka_unit_test(test_finish_and_message),
      cmocka_unit_test(test_log_truncation),
      cmocka_unit_test(test_phase_predicates_and_names),
      cmocka_unit_test(test_notes_warnings_and_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
