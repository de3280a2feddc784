/* Volumes and the idempotency check, through the real binary and sandbox:
 * claim volumes shared by the steps of one run, emptyDir fresh per pod,
 * readOnly mounts, mount points on the read-only root, subPath links that
 * must not lead out, the workspace removed (or kept) at the end, and the
 * second exit handler run that must find a ledger cleanup out.  The
 * snapshot diff itself is tested without a sandbox. */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../runner/workspace.h"
#include "test_helpers.h"

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

struct run {
  struct test_cmd_result r;
  json_t *report;
};

/* exitprobe run WORKFLOW [EXTRA...] with a report in a fresh directory. */
static struct run run_wf(const char *workflow, int want_status, const char *x1, const char *x2,
                         const char *x3) {
  char report[512];
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--color", "never", "--report",
                  report, (char *)workflow, (char *)x1, (char *)x2, (char *)x3, NULL};
  struct run out = {.r = test_run(argv)};
  if (out.r.exit_status != want_status)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", out.r.exit_status, want_status,
             out.r.out, out.r.err);
  json_error_t jerr;
  out.report = json_load_file(report, 0, &jerr);
  if (out.report == NULL)
    fail_msg("report unreadable: %s", jerr.text);
  return out;
}

static void run_free(struct run *r) {
  test_cmd_result_free(&r->r);
  json_decref(r->report);
}

static json_t *node(const json_t *report, const char *display) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  json_t *n;
  json_object_foreach((json_t *)nodes, id, n) {
    if (strcmp(json_string_value(json_object_get(n, "displayName")), display) == 0)
      return n;
  }
  fail_msg("no node %s", display);
  return NULL;
}

static const char *log_of(const json_t *report, const char *display) {
  const char *log = json_string_value(json_object_get(node(report, display), "log"));
  return log ? log : "";
}

static const char *phase_of(const json_t *report, const char *display) {
  return json_string_value(json_object_get(node(report, display), "phase"));
}

static void assert_contains(const char *text, const char *part) {
  if (strstr(text, part) == NULL)
    fail_msg("'%s' not found in:\n%s", part, text);
}

#define HEAD                                                                                       \
  "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: vols\nspec:\n"           \
  "  entrypoint: main\n"

/* Two steps, one volume mounted by both; extra is the volumes section. */
static const char *two_steps(const char *volumes, const char *first, const char *second,
                             const char *mounts1, const char *mounts2) {
  static char text[4096];
  snprintf(text, sizeof(text),
           HEAD "%s"
                "  templates:\n"
                "  - name: main\n"
                "    steps:\n"
                "    - - {name: first, template: first}\n"
                "    - - {name: second, template: second}\n"
                "  - name: first\n"
                "    container:\n"
                "      image: alpine\n"
                "      command: [sh, -c, '%s']\n"
                "      volumeMounts: %s\n"
                "  - name: second\n"
                "    container:\n"
                "      image: alpine\n"
                "      command: [sh, -c, '%s']\n"
                "      volumeMounts: %s\n",
           volumes, first, mounts1, second, mounts2);
  return test_write_temp("wf.yaml", text);
}

#define CLAIM "  volumeClaimTemplates:\n  - metadata: {name: work}\n"

static void test_claim_is_shared_between_steps(void **state) {
  (void)state;
  skip_without_sandbox();
  /* /workspace does not exist on the host: its mount point is made on a
   * scaffold over the read-only root; /mnt/w under /mnt. */
  const char *wf = two_steps(CLAIM, "echo token-4711 > /workspace/f; echo sub > /mnt/w/g",
                             "cat /workspace/f; cat /mnt/w/g; ls /usr/bin/env",
                             "[{name: work, mountPath: /workspace}, {name: work, mountPath: "
                             "/mnt/w, subPath: deeper}]",
                             "[{name: work, mountPath: /workspace}, {name: work, mountPath: "
                             "/mnt/w, subPath: deeper}]");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_string_equal(phase_of(r.report, "second"), "Succeeded");
  assert_contains(log_of(r.report, "second"), "token-4711");
  assert_contains(log_of(r.report, "second"), "sub");
  /* The scaffold still shows what the root had. */
  assert_contains(log_of(r.report, "second"), "/usr/bin/env");
  run_free(&r);
}

static void test_output_parameter_from_a_volume(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_write_temp(
      "out.yaml", HEAD "  volumes:\n  - {name: s, emptyDir: {}}\n"
                       "  templates:\n"
                       "  - name: main\n"
                       "    steps:\n"
                       "    - - {name: make, template: make}\n"
                       "    - - name: show\n"
                       "        template: show\n"
                       "        arguments: {parameters: [{name: v, value: "
                       "'{{steps.make.outputs.parameters.o}}'}]}\n"
                       "  - name: make\n"
                       "    container: {image: alpine, command: [sh, -c, 'echo from-volume > "
                       "/data/out'], volumeMounts: [{name: s, mountPath: /data}]}\n"
                       "    outputs: {parameters: [{name: o, valueFrom: {path: /data/out}}]}\n"
                       "  - name: show\n"
                       "    inputs: {parameters: [{name: v}]}\n"
                       "    container: {image: alpine, command: [echo, 'got {{inputs.parameters.v}}']}\n");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_contains(log_of(r.report, "show"), "got from-volume");
  run_free(&r);
}

static void test_empty_dir_is_fresh_per_step(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = two_steps("  volumes:\n  - {name: scratch, emptyDir: {}}\n",
                             "echo x > /scratch/f; (sleep 987654 &); echo wrote",
                             "echo count=$(ls -A /scratch | wc -l)",
                             "[{name: scratch, mountPath: /scratch}]",
                             "[{name: scratch, mountPath: /scratch}]");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_contains(log_of(r.report, "first"), "wrote");
  /* Kubernetes gives every pod its own emptyDir. */
  assert_contains(log_of(r.report, "second"), "count=0");
  /* Nothing a step started outlives the run. */
  assert_int_equal(test_count_processes("sleep 987654"), 0);
  run_free(&r);
}

static void test_read_only_mount_refuses_writes(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = two_steps(CLAIM, "echo no > /ro/f && echo wrote || echo refused",
                             "ls -A /rw | wc -l | sed s/^/files=/",
                             "[{name: work, mountPath: /ro, readOnly: true}]",
                             "[{name: work, mountPath: /rw}]");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_contains(log_of(r.report, "first"), "refused");
  assert_contains(log_of(r.report, "second"), "files=0");
  run_free(&r);
}

static void test_scaffold_is_read_only(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = two_steps(CLAIM, "touch /usr/exitprobe-x && echo wrote || echo refused",
                             "touch /newdir-x && echo wrote || echo refused",
                             "[{name: work, mountPath: /usr/exitprobe-vol}]",
                             "[{name: work, mountPath: /exitprobe-vol}]");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_contains(log_of(r.report, "first"), "refused");
  assert_contains(log_of(r.report, "second"), "refused");
  struct stat sb;
  assert_int_equal(stat("/usr/exitprobe-vol", &sb), -1);
  assert_int_equal(stat("/exitprobe-vol", &sb), -1);
  run_free(&r);
}

static void test_sub_path_link_does_not_lead_out(void **state) {
  (void)state;
  skip_without_sandbox();
  unlink("/etc/exitprobe-escape-test");
  const char *wf = two_steps(CLAIM, "ln -s /etc /w/evil; ln -s /etc /w/evil2",
                             "touch /x/exitprobe-escape-test; echo done",
                             "[{name: work, mountPath: /w}]",
                             "[{name: work, mountPath: /x, subPath: evil/sub}]");
  struct run r = run_wf(wf, 1, NULL, NULL, NULL);
  assert_string_equal(phase_of(r.report, "second"), "Error");
  struct stat sb;
  assert_int_equal(stat("/etc/exitprobe-escape-test", &sb), -1);
  assert_int_equal(stat("/etc/sub", &sb), -1);
  run_free(&r);
}

static int count_glob(const char *pattern) {
  glob_t g;
  int n = glob(pattern, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
  globfree(&g);
  return n;
}

/* Init containers share the pod's emptyDir with main; whatever they start
 * (a background process, their group) is gone after the run, whether they
 * succeed, fail or are killed by the pod's deadline. */
static void test_init_containers_leave_nothing(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_write_temp(
      "init-leftovers.yaml",
      "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: init-leftovers}\n"
      "spec:\n  entrypoint: main\n  volumes:\n  - {name: scratch, emptyDir: {}}\n"
      "  templates:\n  - name: main\n    steps:\n"
      "    - - {name: good, template: good}\n"
      "      - {name: bad, template: bad, continueOn: {error: true}}\n"
      "      - {name: late, template: late, continueOn: {failed: true}}\n"
      "  - name: good\n    initContainers:\n"
      "    - {name: fill, command: [sh, -c, \"(sleep 987651 &); echo filled > /s/f\"],\n"
      "       volumeMounts: [{name: scratch, mountPath: /s}]}\n"
      "    container:\n      command: [sh, -c, \"cat /s/f\"]\n"
      "      volumeMounts: [{name: scratch, mountPath: /s}]\n"
      "  - name: bad\n    initContainers:\n"
      "    - {name: fail, command: [sh, -c, \"(sleep 987652 &); exit 4\"]}\n"
      "    container: {command: [sh, -c, \"echo main-ran\"]}\n"
      "  - name: late\n    activeDeadlineSeconds: 1\n    initContainers:\n"
      "    - {name: hold, command: [sh, -c, \"sleep 987653\"]}\n"
      "    container: {command: [sh, -c, \"echo main-ran\"]}\n");
  struct run r = run_wf(wf, 0, "--grace-period", "200ms", NULL);
  assert_contains(log_of(r.report, "good"), "filled");
  assert_string_equal(phase_of(r.report, "bad"), "Error");
  assert_string_equal(phase_of(r.report, "late"), "Failed");
  assert_null(strstr(log_of(r.report, "bad"), "main-ran"));
  assert_int_equal(test_count_processes("sleep 98765"), 0);
  assert_int_equal(test_count_cgroups_named("init-leftovers"), 0);
  run_free(&r);
}

static void test_workspace_removed_or_kept(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = two_steps(CLAIM, "echo kept > /w/token-93142", "true",
                             "[{name: work, mountPath: /w}]", "[{name: work, mountPath: /w}]");
  struct run r = run_wf(wf, 0, NULL, NULL, NULL);
  assert_int_equal(count_glob("/tmp/exitprobe-run-*/workspace/*/token-93142"), 0);
  run_free(&r);
  char keep[512];
  snprintf(keep, sizeof(keep), "%s/kept", test_temp_dir());
  r = run_wf(wf, 0, "--keep-workspace", keep, NULL);
  assert_int_equal(count_glob("/tmp/exitprobe-run-*/workspace/*/token-93142"), 0);
  char *text = test_read_file(test_path(keep, "work/token-93142"));
  assert_non_null(text);
  assert_string_equal(text, "kept\n");
  free(text);
  run_free(&r);
}

static void test_idempotency_catches_the_ledger(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_path(test_source_root(), "scenarios/idempotency/ledger-cleanup-workflow.yaml");
  struct run r = run_wf(wf, 1, "--idempotency", "--state-probe", "cat books/counter");
  assert_contains(r.r.out, "NOT IDEMPOTENT");
  assert_contains(r.r.out, "books/ledger.txt");
  assert_contains(r.r.out, "books/counter");
  const json_t *idem = json_object_get(r.report, "idempotency");
  assert_true(json_is_false(json_object_get(idem, "idempotent")));
  const json_t *changes = json_object_get(idem, "changes");
  assert_int_equal(json_array_size(changes), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(changes, 1), "path")),
                      "books/ledger.txt");
  assert_string_equal(json_string_value(json_object_get(json_array_get(changes, 1), "change")),
                      "changed");
  const json_t *probe = json_object_get(idem, "stateProbe");
  assert_string_equal(json_string_value(json_object_get(probe, "before")), "1\n");
  assert_string_equal(json_string_value(json_object_get(probe, "after")), "2\n");
  run_free(&r);
}

static void test_idempotent_cleanup_passes(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_path(test_source_root(), "scenarios/idempotency/idempotent-cleanup-workflow.yaml");
  struct run r = run_wf(wf, 0, "--idempotency", NULL, NULL);
  const json_t *idem = json_object_get(r.report, "idempotency");
  assert_true(json_is_true(json_object_get(idem, "idempotent")));
  assert_int_equal(json_array_size(json_object_get(idem, "changes")), 0);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(idem, "secondRun"), "phase")),
      "Succeeded");
  run_free(&r);
}

static void test_no_exit_handler_is_inconclusive(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = two_steps(CLAIM, "true", "true", "[]", "[]");
  struct run r = run_wf(wf, 3, "--idempotency", NULL, NULL);
  assert_contains(r.r.err, "no exit handler");
  assert_true(json_is_null(json_object_get(json_object_get(r.report, "idempotency"),
                                           "idempotent")));
  run_free(&r);
}

static void test_failing_probe_is_inconclusive(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_path(test_source_root(), "scenarios/idempotency/idempotent-cleanup-workflow.yaml");
  struct run r = run_wf(wf, 3, "--idempotency", "--state-probe", "exit 4");
  assert_contains(r.r.err, "stateProbe 'exit 4' failed (exit status 4)");
  run_free(&r);
}

/* ---- the snapshot diff, no sandbox needed ------------------------------- */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static const struct ws_change *change_at(const struct ws_diff *d, const char *path) {
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->v[i].path, path) == 0)
      return &d->v[i];
  fail_msg("no change at %s", path);
  return NULL;
}

static void test_snapshot_diff_names_each_file(void **state) {
  (void)state;
  const char *root = test_temp_dir();
  char p[600];
  snprintf(p, sizeof(p), "%s/c", root);
  assert_int_equal(mkdir(p, 0755), 0);
  snprintf(p, sizeof(p), "%s/c/same", root);
  write_file(p, "same");
  snprintf(p, sizeof(p), "%s/c/edited", root);
  write_file(p, "abc");
  snprintf(p, sizeof(p), "%s/c/gone", root);
  write_file(p, "x");
  snprintf(p, sizeof(p), "%s/c/chmod", root);
  write_file(p, "x");
  struct ws_snapshot before, after;
  ep_error *err = NULL;
  assert_int_equal(ws_snapshot_take(root, &before, &err), 0);
  snprintf(p, sizeof(p), "%s/c/edited", root);
  write_file(p, "abd"); /* same size, other content */
  snprintf(p, sizeof(p), "%s/c/gone", root);
  unlink(p);
  snprintf(p, sizeof(p), "%s/c/new", root);
  write_file(p, "n");
  snprintf(p, sizeof(p), "%s/c/chmod", root);
  chmod(p, 0600);
  assert_int_equal(ws_snapshot_take(root, &after, &err), 0);
  struct ws_diff d;
  ws_diff_compute(&before, &after, &d);
  assert_int_equal(d.n, 4);
  assert_int_equal(change_at(&d, "c/edited")->kind, WS_CHANGED);
  assert_int_equal(change_at(&d, "c/gone")->kind, WS_REMOVED);
  assert_null(change_at(&d, "c/gone")->after);
  assert_int_equal(change_at(&d, "c/new")->kind, WS_ADDED);
  assert_null(change_at(&d, "c/new")->before);
  assert_int_equal(change_at(&d, "c/chmod")->kind, WS_CHANGED);
  assert_non_null(strstr(change_at(&d, "c/chmod")->after, "0600"));
  ws_diff_free(&d);
  /* Unchanged: no difference at all. */
  ws_diff_compute(&after, &after, &d);
  assert_int_equal(d.n, 0);
  ws_diff_free(&d);
  ws_snapshot_free(&before);
  ws_snapshot_free(&after);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_snapshot_diff_names_each_file),
      cmocka_unit_test(test_claim_is_shared_between_steps),
      cmocka_unit_test(test_empty_dir_is_fresh_per_step),
      cmocka_unit_test(test_init_containers_leave_nothing),
      cmocka_unit_test(test_output_parameter_from_a_volume),
      cmocka_unit_test(test_read_only_mount_refuses_writes),
      cmocka_unit_test(test_scaffold_is_read_only),
      cmocka_unit_test(test_sub_path_link_does_not_lead_out),
      cmocka_unit_test(test_workspace_removed_or_kept),
      cmocka_unit_test(test_idempotency_catches_the_ledger),
      cmocka_unit_test(test_idempotent_cleanup_passes),
      cmocka_unit_test(test_no_exit_handler_is_inconclusive),
      cmocka_unit_test(test_failing_probe_is_inconclusive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
