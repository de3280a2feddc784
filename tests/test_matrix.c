/* exitprobe matrix and replay, through the real binary: the seed
 * workflow's cells agree with the single-scenario runs (docs/CRASH-POINTS.md),
 * the summary lists every cell, --require-once gates, shards partition the
 * matrix, a cell replays to the same row, and an interrupted matrix leaves
 * no process behind. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_helpers.h"

#define SEED_FAULTS "exit,sigkill,crash"

/* A workflow whose steps take long enough to be caught running. */
static const char slow_workflow[] =
    "apiVersion: argoproj.io/v1alpha1\n"
    "kind: Workflow\n"
    "metadata: {name: matrix-slow}\n"
    "spec:\n"
    "  entrypoint: main\n"
    "  onExit: cleanup\n"
    "  templates:\n"
    "  - name: main\n"
    "    steps:\n"
    "    - - {name: nap, template: nap}\n"
    "  - name: nap\n"
    "    container: {image: alpine, command: [sh, -c, 'sleep 471']}\n"
    "  - name: cleanup\n"
    "    container: {image: alpine, command: [sh, -c, 'echo cleaning up']}\n";

/* The seed matrix, run once for the tests that read it. */
struct seed_matrix {
  const char *skip_reason;
  char *workflow;
  char *dir;
  struct test_cmd_result run;
  json_t *summary;
};

static char *seed_workflow_path(void) {
  return strdup(test_path(test_source_root(), "scenarios/exit-handler-workflow.yaml"));
}

static int group_setup(void **state) {
  struct seed_matrix *s = calloc(1, sizeof(*s));
  *state = s;
  s->skip_reason = test_sandbox_unavailable();
  if (s->skip_reason != NULL)
    return 0;
  s->workflow = seed_workflow_path();
  s->dir = strdup(test_path(test_temp_dir(), "reports"));
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", SEED_FAULTS, "-j", "2",
                  "--report-dir", s->dir, s->workflow, NULL};
  s->run = test_run(argv);
  json_error_t jerr;
  s->summary = json_load_file(test_path(s->dir, "summary.json"), 0, &jerr);
  return 0;
}

static int group_teardown(void **state) {
  struct seed_matrix *s = *state;
  json_decref(s->summary);
  test_cmd_result_free(&s->run);
  free(s->workflow);
  free(s->dir);
  free(s);
  return 0;
}

static struct seed_matrix *seed_or_skip(void **state) {
  struct seed_matrix *s = *state;
  if (s->skip_reason != NULL) {
    printf("skipped: %s\n", s->skip_reason);
    skip();
  }
  if (s->run.exit_status != 0)
    fail_msg("matrix exited %d:\n%s\n%s", s->run.exit_status, s->run.out, s->run.err);
  if (s->summary == NULL)
    fail_msg("no summary.json in %s", s->dir);
  return s;
}

/* The lines `exitprobe crash-points` prints for the workflow. */
static size_t count_crash_points(const char *workflow) {
  char *argv[] = {(char *)test_exitprobe_bin(), "crash-points", (char *)workflow, NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 0);
  size_t n = 0;
  for (const char *p = r.out; *p; p++)
    n += *p == '\n';
  test_cmd_result_free(&r);
  return n;
}

static const json_t *cell_named(const json_t *summary, const char *fault) {
  const json_t *cells = json_object_get(summary, "cells");
  for (size_t i = 0; i < json_array_size(cells); i++) {
    const json_t *c = json_array_get(cells, i);
    if (strcmp(json_string_value(json_object_get(c, "fault")), fault) == 0)
      return c;
  }
  fail_msg("summary has no cell '%s'", fault);
  return NULL;
}

static const char *str_field(const json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? v : "(null)";
}

/* The table row of a cell, whitespace collapsed, or NULL. */
static char *table_row(const char *out, const char *index_and_label) {
  char *copy = strdup(out), *save = NULL;
  char *found = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char norm[1024];
    size_t n = 0;
    bool space = false;
    for (const char *p = line; *p && n + 2 < sizeof(norm); p++) {
      if (*p == ' ') {
        space = n > 0;
        continue;
      }
      if (space)
        norm[n++] = ' ';
      space = false;
      norm[n++] = *p;
    }
    norm[n] = '\0';
    const char *body = norm[0] == '!' || norm[0] == '?' ? norm + 2 : norm;
    if (strncmp(body, index_and_label, strlen(index_and_label)) == 0) {
      found = strdup(norm);
      break;
    }
  }
  free(copy);
  return found;
}

static void test_seed_matrix_table_and_summary(void **state) {
  struct seed_matrix *s = seed_or_skip(state);
  /* Two step nodes (work, the handler) under exit and SIGKILL; every crash point three ways. */
  size_t expected = 2 * 2 + 3 * count_crash_points(s->workflow);
  const json_t *cells = json_object_get(s->summary, "cells");
  assert_int_equal(json_array_size(cells), expected);
  assert_true(json_is_true(json_object_get(s->summary, "complete")));
  assert_non_null(strstr(s->run.out, "FAULT"));
  assert_non_null(strstr(s->run.out, "IDEMPOTENT"));
  for (size_t i = 0; i < json_array_size(cells); i++) {
    const json_t *c = json_array_get(cells, i);
    assert_string_equal(str_field(c, "outcome"), "ran");
    assert_string_equal(str_field(c, "idempotent"), "unknown");
    assert_true(json_is_integer(json_object_get(c, "seed")));
    const char *report = str_field(c, "report");
    assert_int_equal(access(test_path(s->dir, report), R_OK), 0);
    char key[128];
    snprintf(key, sizeof(key), "%03lld %s", (long long)json_integer_value(json_object_get(c, "index")),
             str_field(c, "fault"));
    char *row = table_row(s->run.out, key);
    if (row == NULL)
      fail_msg("no table row '%s' in:\n%s", key, s->run.out);
    free(row);
  }
  /* The seed lesson: work exits 1, the controller runs the handler once and it sees Failed. */
  const json_t *exit_work = cell_named(s->summary, "exit 1 @ work");
  assert_int_equal(json_integer_value(json_object_get(exit_work, "handlerRuns")), 1);
  assert_string_equal(str_field(exit_work, "by"), "controller");
  assert_string_equal(str_field(exit_work, "workflowStatusSeen"), "Failed");
  assert_string_equal(str_field(exit_work, "workflowPhase"), "Failed");
  /* The controller dies before the handler and stays down: the watchdog runs it. */
  const json_t *down = cell_named(s->summary, "crash before:exit-handler, stay-down");
  assert_string_equal(str_field(down, "by"), "watchdog");
  assert_int_equal(json_integer_value(json_object_get(down, "handlerRuns")), 1);
  /* A crash during the handler under restart: its pod is adopted, one run. */
  const json_t *adopted = cell_named(s->summary, "crash during:exit-handler, restart");
  assert_int_equal(json_integer_value(json_object_get(adopted, "handlerRuns")), 1);
  /* With the state lost it runs again, and the table marks the row. */
  const json_t *twice = cell_named(s->summary, "crash during:exit-handler, lose-state");
  assert_int_equal(json_integer_value(json_object_get(twice, "handlerRuns")), 2);
  char key[128];
  snprintf(key, sizeof(key), "%03lld crash during:exit-handler, lose-state",
           (long long)json_integer_value(json_object_get(twice, "index")));
  char *row = table_row(s->run.out, key);
  if (row == NULL)
    fail_msg("no row '%s' in:\n%s", key, s->run.out);
  assert_int_equal(row[0], '!');
  assert_non_null(strstr(row, "Failed Failed 2 controller unknown"));
  free(row);
  snprintf(key, sizeof(key), "%03lld exit 1 @ work",
           (long long)json_integer_value(json_object_get(exit_work, "index")));
  row = table_row(s->run.out, key);
  assert_non_null(row);
  assert_int_not_equal(row[0], '!');
  assert_non_null(strstr(row, "Failed Failed 1 controller unknown"));
  free(row);
  /* Each cell's report carries its seed and exact fault schedule. */
  json_error_t jerr;
  json_t *report =
      json_load_file(test_path(s->dir, str_field(down, "report")), 0, &jerr);
  assert_non_null(report);
  assert_true(json_is_integer(json_object_get(json_object_get(report, "run"), "seed")));
  const json_t *faults = json_object_get(report, "faults");
  assert_int_equal(json_array_size(faults), 1);
  assert_string_equal(str_field(json_array_get(faults, 0), "action"), "controller-crash");
  assert_non_null(strstr(str_field(json_object_get(report, "cell"), "scenarioText"),
                         "at: \"before:exit-handler\", then: stay-down"));
  json_decref(report);
}

static void test_replay_reproduces_row(void **state) {
  struct seed_matrix *s = seed_or_skip(state);
  static const char *const faults[] = {"crash before:exit-handler, stay-down",
                                       "crash during:exit-handler, restart"};
  for (size_t i = 0; i < 2; i++) {
    const json_t *c = cell_named(s->summary, faults[i]);
    char key[128];
    snprintf(key, sizeof(key), "%03lld %s",
             (long long)json_integer_value(json_object_get(c, "index")), faults[i]);
    char *report = strdup(test_path(s->dir, str_field(c, "report")));
    char *argv[] = {(char *)test_exitprobe_bin(), "replay", report, NULL};
    struct test_cmd_result r = test_run(argv);
    if (r.exit_status != 0)
      fail_msg("replay of %s exited %d:\n%s\n%s", report, r.exit_status, r.out, r.err);
    char *was = table_row(s->run.out, key), *now = table_row(r.out, key);
    assert_non_null(was);
    if (now == NULL || strcmp(was, now) != 0)
      fail_msg("replay row differs:\nmatrix: %s\nreplay: %s", was, now ? now : "(none)");
    assert_non_null(strstr(r.out, "same as recorded"));
    free(was);
    free(now);
    free(report);
    test_cmd_result_free(&r);
  }
  /* A report that is no matrix cell's is bad input. */
  const char *plain = test_write_temp("plain.json", "{\"apiVersion\": \"exitprobe/v1\"}\n");
  char *argv[] = {(char *)test_exitprobe_bin(), "replay", (char *)plain, NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "not the report of a matrix cell"));
  test_cmd_result_free(&r);
}

static void test_require_once(void **state) {
  struct seed_matrix *s = seed_or_skip(state);
  /* lose-state after the handler ran replays the run: the handler runs twice. */
  char *twice[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "lose-state", "-j", "2",
                   "--require-once", s->workflow, NULL};
  struct test_cmd_result r = test_run(twice);
  if (r.exit_status != 1)
    fail_msg("--require-once with cells running the handler twice exited %d:\n%s\n%s",
             r.exit_status, r.out, r.err);
  assert_non_null(strstr(r.out, "\n! "));
  test_cmd_result_free(&r);
  /* terminate is excepted, and exit-1 cells run it once: the gate passes. */
  char *once[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit,terminate", "-j",
                  "2", "--require-once", s->workflow, NULL};
  r = test_run(once);
  if (r.exit_status != 0)
    fail_msg("--require-once over exit,terminate exited %d:\n%s\n%s", r.exit_status, r.out,
             r.err);
  assert_non_null(strstr(r.out, "terminate @ work"));
  test_cmd_result_free(&r);
}

static json_t *run_shard(const char *workflow, const char *shard, const char *dir) {
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit,restart", "-j", "2",
                  "--shard", (char *)shard, "--report-dir", (char *)dir, (char *)workflow, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 0)
    fail_msg("shard %s exited %d:\n%s\n%s", shard, r.exit_status, r.out, r.err);
  test_cmd_result_free(&r);
  json_error_t jerr;
  json_t *summary = json_load_file(test_path(dir, "summary.json"), 0, &jerr);
  assert_non_null(summary);
  return summary;
}

/* --idempotency: every cell makes the check; the ledger cleanup is caught
 * in every cell where the handler ran, and the column replays. */
static void test_idempotency_column(void **state) {
  (void)seed_or_skip(state);
  char wf[4096];
  snprintf(wf, sizeof(wf), "%s/scenarios/idempotency/ledger-cleanup-workflow.yaml",
           test_source_root());
  const char *dir = test_path(test_temp_dir(), "idem");
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit,terminate", "-j", "2",
                  "--idempotency", "--report-dir", (char *)dir, wf, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 0)
    fail_msg("matrix --idempotency exited %d:\n%s\n%s", r.exit_status, r.out, r.err);
  json_error_t jerr;
  json_t *summary = json_load_file(test_path(dir, "summary.json"), 0, &jerr);
  assert_non_null(summary);
  assert_string_equal(str_field(cell_named(summary, "exit 1 @ work"), "idempotent"), "no");
  /* terminate: the handler never ran, so there is nothing to compare. */
  assert_string_equal(str_field(cell_named(summary, "terminate @ work"), "idempotent"),
                      "unknown");
  char *report = strdup(test_path(dir, str_field(cell_named(summary, "exit 1 @ work"), "report")));
  char *rargv[] = {(char *)test_exitprobe_bin(), "replay", report, NULL};
  struct test_cmd_result rr = test_run(rargv);
  if (rr.exit_status != 0 || strstr(rr.out, " no") == NULL)
    fail_msg("replay exited %d:\n%s\n%s", rr.exit_status, rr.out, rr.err);
  free(report);
  test_cmd_result_free(&rr);
  json_decref(summary);
  test_cmd_result_free(&r);
  /* Off by default: the column stays unknown. */
  char *plain[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit", "-j", "2", wf,
                   NULL};
  r = test_run(plain);
  assert_int_equal(r.exit_status, 0);
  assert_null(strstr(r.out, "  no"));
  assert_non_null(strstr(r.out, "unknown"));
  test_cmd_result_free(&r);
}

static void test_shards_partition(void **state) {
  struct seed_matrix *s = seed_or_skip(state);
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit,restart", "--list",
                  s->workflow, NULL};
  struct test_cmd_result all = test_run(argv);
  assert_int_equal(all.exit_status, 0);
  size_t n_all = 0;
  int seen[256] = {0};
  for (const char *p = all.out; *p; p++)
    n_all += *p == '\n';
  assert_true(n_all > 2);
  const char *tmp = test_temp_dir();
  json_t *one = run_shard(s->workflow, "1/2", test_path(tmp, "one"));
  json_t *two = run_shard(s->workflow, "2/2", test_path(tmp, "two"));
  const json_t *lists[] = {json_object_get(one, "cells"), json_object_get(two, "cells")};
  size_t n = 0;
  for (size_t k = 0; k < 2; k++) {
    assert_true(json_array_size(lists[k]) > 0);
    for (size_t i = 0; i < json_array_size(lists[k]); i++) {
      json_int_t index = json_integer_value(json_object_get(json_array_get(lists[k], i), "index"));
      assert_true(index >= 0 && index < 256);
      seen[index]++;
      n++;
      char line[32];
      snprintf(line, sizeof(line), "%03lld  ", (long long)index);
      assert_non_null(strstr(all.out, line));
    }
  }
  assert_int_equal(n, n_all);
  for (size_t i = 0; i < 256; i++)
    assert_true(seen[i] <= 1);
  json_decref(one);
  json_decref(two);
  test_cmd_result_free(&all);
}

static void test_bad_usage(void **state) {
  struct seed_matrix *s = *state;
  char *workflow = seed_workflow_path();
  static const char *const bad[][3] = {
      {"--faults", "exit,bogus", "unknown fault 'bogus'"},
      {"--shard", "3/2", "--shard"},
      {"-j", "0", "-j"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *argv[] = {(char *)test_exitprobe_bin(), "matrix", (char *)bad[i][0],
                    (char *)bad[i][1], workflow, NULL};
    struct test_cmd_result r = test_run(argv);
    assert_int_equal(r.exit_status, 2);
    if (strstr(r.err, bad[i][2]) == NULL)
      fail_msg("'%s %s': stderr lacks '%s':\n%s", bad[i][0], bad[i][1], bad[i][2], r.err);
    test_cmd_result_free(&r);
  }
  (void)s;
  free(workflow);
}

/* Start the matrix with its output in files, as a CI job would. */
static pid_t start_matrix(char **argv, const char *out, const char *err) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (freopen(out, "w", stdout) == NULL || freopen(err, "w", stderr) == NULL)
      _exit(99);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static int wait_status(pid_t pid, int seconds) {
  for (int i = 0; i < seconds * 100; i++) {
    int status;
    pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void test_sigint_leaves_nothing(void **state) {
  (void)seed_or_skip(state);
  const char *workflow = test_write_temp("slow.yaml", slow_workflow);
  const char *tmp = test_temp_dir();
  char *dir = strdup(test_path(tmp, "reports"));
  char *out = strdup(test_path(tmp, "out.txt")), *err = strdup(test_path(tmp, "err.txt"));
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit,restart", "-j", "2",
                  "--report-dir", dir, (char *)workflow, NULL};
  pid_t pid = start_matrix(argv, out, err);
  /* Cell 0 (exit 1 instead of the nap) finishes at once; wait until it has
   * and the next cells' steps are asleep. */
  bool ready = false;
  for (int i = 0; i < 1000 && !ready; i++) {
    char *text = test_read_file(err);
    ready = text != NULL && strstr(text, "[1/") != NULL && test_count_processes("sleep 471") >= 2;
    free(text);
    if (!ready)
      usleep(10000);
  }
  assert_true(ready);
  kill(pid, SIGINT);
  int status = wait_status(pid, 30);
  char *text = test_read_file(out);
  if (status != 130)
    fail_msg("interrupted matrix exited %d:\n%s", status, text ? text : "");
  assert_int_equal(test_count_processes("sleep 471"), 0);
  assert_int_equal(test_count_processes(dir), 0);
  assert_non_null(strstr(text, "interrupted:"));
  free(text);
  json_error_t jerr;
  json_t *summary = json_load_file(test_path(dir, "summary.json"), 0, &jerr);
  assert_non_null(summary);
  assert_true(json_is_true(json_object_get(summary, "interrupted")));
  assert_true(json_is_false(json_object_get(summary, "complete")));
  const json_t *cells = json_object_get(summary, "cells");
  assert_true(json_array_size(cells) >= 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(cells, 0), "index")), 0);
  json_decref(summary);
  free(dir);
  free(out);
  free(err);
}

static void test_timeout_kills_cell(void **state) {
  (void)seed_or_skip(state);
  const char *workflow = test_write_temp("slow.yaml", slow_workflow);
  /* exit 1 on the handler leaves the nap running: that cell cannot finish. */
  char *argv[] = {(char *)test_exitprobe_bin(), "matrix", "--faults", "exit", "-j", "2",
                  "--timeout", "1s", (char *)workflow, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 3)
    fail_msg("matrix with a cell past --timeout exited %d:\n%s\n%s", r.exit_status, r.out, r.err);
  char *row = table_row(r.out, "005 exit 1 @ matrix-slow.onExit");
  if (row == NULL)
    fail_msg("no row for the handler's exit cell:\n%s", r.out);
  assert_int_equal(row[0], '?');
  assert_non_null(strstr(row, "no result within 1s"));
  free(row);
  assert_int_equal(test_count_processes("sleep 471"), 0);
  test_cmd_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seed_matrix_table_and_summary),
      cmocka_unit_test(test_replay_reproduces_row),
      cmocka_unit_test(test_require_once),
      cmocka_unit_test(test_idempotency_column),
      cmocka_unit_test(test_shards_partition),
      cmocka_unit_test(test_bad_usage),
      cmocka_unit_test(test_sigint_leaves_nothing),
      cmocka_unit_test(test_timeout_kills_cell),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
