/* `exitprobe stop RUN` and `exitprobe terminate RUN` against a real running
 * `exitprobe run`: the run's control FIFO appears, the request is delivered,
 * the workflow ends as Argo's stop / terminate end it, and neither the FIFO
 * nor any step process outlives the run. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_helpers.h"

/* A marker in the steps' command lines, to count leftover processes. */
#define MARKER "ctl-marker-31337"

static const char *workflow_text(const char *name) {
  static char text[2048];
  snprintf(text, sizeof(text),
           "apiVersion: argoproj.io/v1alpha1\n"
           "kind: Workflow\n"
           "metadata: {name: %s}\n"
           "spec:\n"
           "  entrypoint: main\n"
           "  onExit: report\n"
           "  templates:\n"
           "  - name: main\n"
           "    steps:\n"
           "    - - {name: slow, template: slow}\n"
           "    - - {name: never, template: slow}\n"
           "  - name: slow\n"
           "    container:\n"
           "      image: alpine:3.19\n"
           "      command: [sh, -c, \"sleep 60; echo " MARKER "\"]\n"
           "  - name: report\n"
           "    container:\n"
           "      image: alpine:3.19\n"
           "      command: [sh, -c, \"echo handler-saw={{workflow.status}}\"]\n",
           name);
  return text;
}

struct running {
  pid_t pid;
  char dir[512];
  char report[600];
};

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Start `exitprobe run` of text in the background with its own run directory. */
static void start_run_text(struct running *r, const char *text) {
  snprintf(r->dir, sizeof(r->dir), "%s", test_temp_dir());
  char wf[600], runs[600];
  snprintf(wf, sizeof(wf), "%s/wf.yaml", r->dir);
  snprintf(runs, sizeof(runs), "%s/runs", r->dir);
  snprintf(r->report, sizeof(r->report), "%s/report.json", r->dir);
  FILE *f = fopen(wf, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(setenv("EXITPROBE_RUN_DIR", runs, 1), 0);
  r->pid = fork();
  assert_true(r->pid >= 0);
  if (r->pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execl(test_exitprobe_bin(), test_exitprobe_bin(), "run", "--grace-period", "1s", "--report",
          r->report, wf, (char *)NULL);
    _exit(127);
  }
}

static void start_run(struct running *r, const char *name) {
  start_run_text(r, workflow_text(name));
}

/* Wait for the run's FIFO: the run is then listening.  Bounded, so a run
 * that never gets there fails the test instead of hanging it. */
static void wait_for_fifo(const struct running *r, const char *name) {
  char fifo[700];
  snprintf(fifo, sizeof(fifo), "%s/runs/%s/control", r->dir, name);
  struct stat sb;
  for (int i = 0; i < 600; i++) {
    if (stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode))
      return;
    sleep_ms(50);
  }
  fail_msg("the control FIFO %s never appeared", fifo);
}

static int control(const char *verb, const char *run) {
  char *argv[] = {(char *)test_exitprobe_bin(), (char *)verb, (char *)run, NULL};
  struct test_cmd_result res = test_run(argv);
  int status = res.exit_status;
  test_cmd_result_free(&res);
  return status;
}

static int wait_run(const struct running *r) {
  int status = 0;
  for (int i = 0; i < 1200; i++) {
    pid_t got = waitpid(r->pid, &status, WNOHANG);
    if (got == r->pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    sleep_ms(50);
  }
  kill(r->pid, SIGKILL);
  waitpid(r->pid, &status, 0);
  fail_msg("the run did not end after the request");
  return -1;
}

static void check_report(const struct running *r, const char *message, bool handler_ran) {
  json_error_t jerr;
  json_t *root = json_load_file(r->report, 0, &jerr);
  assert_non_null(root);
  json_t *status = json_object_get(root, "status");
  assert_string_equal(json_string_value(json_object_get(status, "phase")), "Failed");
  assert_string_equal(json_string_value(json_object_get(status, "message")), message);
  json_t *handler = json_object_get(root, "exitHandler");
  assert_int_equal(json_is_true(json_object_get(handler, "ran")), handler_ran);
  json_t *nodes = json_object_get(status, "nodes");
  const char *id;
  json_t *node;
  json_object_foreach(nodes, id, node) {
    /* The second group never started: no node for `never`. */
    assert_string_not_equal(json_string_value(json_object_get(node, "displayName")), "never");
  }
  json_decref(root);
}

static void check_nothing_left(const struct running *r, const char *name) {
  char dir[700];
  snprintf(dir, sizeof(dir), "%s/runs/%s", r->dir, name);
  struct stat sb;
  assert_int_equal(stat(dir, &sb), -1);
  assert_int_equal(test_count_processes(MARKER), 0);
}

static int skip_without_sandbox(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    return -1;
  }
  return 0;
}

static void test_stop_runs_the_exit_handler(void **state) {
  (void)state;
  if (skip_without_sandbox(state) < 0)
    skip();
  struct running r;
  start_run(&r, "ctl-stop");
  wait_for_fifo(&r, "ctl-stop");
  assert_int_equal(control("stop", "ctl-stop"), 0);
  assert_int_equal(wait_run(&r), 1);
  check_report(&r, "Stopped with strategy 'Stop'", true);
  check_nothing_left(&r, "ctl-stop");
}

/* `exitprobe resume RUN --set NODE.PARAM=VALUE`: the suspended node ends
 * Succeeded with the supplied output, which the next step reads. */
static void test_resume_with_set(void **state) {
  (void)state;
  if (skip_without_sandbox(state) < 0)
    skip();
  static const char text[] =
      "apiVersion: argoproj.io/v1alpha1\n"
      "kind: Workflow\n"
      "metadata: {name: ctl-resume}\n"
      "spec:\n"
      "  entrypoint: main\n"
      "  templates:\n"
      "  - name: main\n"
      "    steps:\n"
      "    - - {name: approve, template: approval}\n"
      "    - - name: show\n"
      "        template: show\n"
      "        arguments: {parameters: [{name: a, value: '{{steps.approve.outputs.parameters.answer}}'}]}\n"
      "  - name: approval\n"
      "    suspend: {}\n"
      "    outputs:\n"
      "      parameters:\n"
      "      - {name: answer, valueFrom: {supplied: {}}}\n"
      "  - name: show\n"
      "    inputs: {parameters: [{name: a}]}\n"
      "    container:\n"
      "      image: alpine:3.19\n"
      "      command: [sh, -c, 'echo answer={{inputs.parameters.a}}']\n";
  struct running r;
  start_run_text(&r, text);
  wait_for_fifo(&r, "ctl-resume");
  /* Until the suspend node is active a resume finds nothing to resume and
   * the --set names nothing: the run refuses it and waits on, so repeat. */
  int status = -1, exit_code = -1;
  for (int i = 0; i < 300 && exit_code < 0; i++) {
    char *argv[] = {(char *)test_exitprobe_bin(), "resume", "ctl-resume", "--set",
                    "approve.answer=yes", NULL};
    struct test_cmd_result res = test_run(argv);
    test_cmd_result_free(&res);
    sleep_ms(100);
    if (waitpid(r.pid, &status, WNOHANG) == r.pid)
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  if (exit_code < 0)
    exit_code = wait_run(&r);
  assert_int_equal(exit_code, 0);
  json_error_t jerr;
  json_t *root = json_load_file(r.report, 0, &jerr);
  assert_non_null(root);
  json_t *status_obj = json_object_get(root, "status");
  assert_string_equal(json_string_value(json_object_get(status_obj, "phase")), "Succeeded");
  bool saw_output = false;
  const char *id;
  json_t *node;
  json_object_foreach(json_object_get(status_obj, "nodes"), id, node) {
    const char *log = json_string_value(json_object_get(node, "log"));
    if (log != NULL && strstr(log, "answer=yes") != NULL)
      saw_output = true;
  }
  assert_true(saw_output);
  json_decref(root);
  char dir[700];
  struct stat sb;
  snprintf(dir, sizeof(dir), "%s/runs/ctl-resume", r.dir);
  assert_int_equal(stat(dir, &sb), -1);
}

static void test_terminate_skips_the_exit_handler(void **state) {
  (void)state;
  if (skip_without_sandbox(state) < 0)
    skip();
  struct running r;
  start_run(&r, "ctl-terminate");
  wait_for_fifo(&r, "ctl-terminate");
  assert_int_equal(control("terminate", "ctl-terminate"), 0);
  assert_int_equal(wait_run(&r), 1);
  check_report(&r, "Stopped with strategy 'Terminate'", false);
  check_nothing_left(&r, "ctl-terminate");
}

/* The FIFO given by path works as well as the name. */
static void test_stop_by_fifo_path(void **state) {
  (void)state;
  if (skip_without_sandbox(state) < 0)
    skip();
  struct running r;
  start_run(&r, "ctl-path");
  wait_for_fifo(&r, "ctl-path");
  char fifo[700];
  snprintf(fifo, sizeof(fifo), "%s/runs/ctl-path/control", r.dir);
  assert_int_equal(control("stop", fifo), 0);
  assert_int_equal(wait_run(&r), 1);
  check_report(&r, "Stopped with strategy 'Stop'", true);
  check_nothing_left(&r, "ctl-path");
}

/* Under a controller crash the controller is a forked process the
 * supervisor restarts: the FIFO belongs to `exitprobe run`, so a stop sent
 * after the restart reaches the new controller. */
static void test_stop_after_controller_restart(void **state) {
  (void)state;
  if (skip_without_sandbox(state) < 0)
    skip();
  struct running r;
  snprintf(r.dir, sizeof(r.dir), "%s", test_temp_dir());
  char wf[600], sc[600], runs[600], reports[600];
  snprintf(wf, sizeof(wf), "%s/wf.yaml", r.dir);
  snprintf(sc, sizeof(sc), "%s/scenario.yaml", r.dir);
  snprintf(runs, sizeof(runs), "%s/runs", r.dir);
  snprintf(reports, sizeof(reports), "%s/reports", r.dir);
  snprintf(r.report, sizeof(r.report), "%s/reports/ctl-supervised.json", r.dir);
  FILE *f = fopen(wf, "w");
  assert_non_null(f);
  fputs(workflow_text("ctl-supervised"), f);
  fclose(f);
  f = fopen(sc, "w");
  assert_non_null(f);
  fputs("apiVersion: exitprobe/v1\n"
        "kind: Scenario\n"
        "metadata: {name: ctl-supervised}\n"
        "spec:\n"
        "  workflow: wf.yaml\n"
        "  faults:\n"
        "  - {action: controller-crash, at: \"after:node-started:slow\", then: restart}\n"
        "  expect:\n"
        "    workflow: {phase: Failed}\n"
        "    exitHandler: {ran: true}\n",
        f);
  fclose(f);
  assert_int_equal(setenv("EXITPROBE_RUN_DIR", runs, 1), 0);
  r.pid = fork();
  assert_true(r.pid >= 0);
  if (r.pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execl(test_exitprobe_bin(), test_exitprobe_bin(), "run", "--grace-period", "1s",
          "--report-dir", reports, sc, (char *)NULL);
    _exit(127);
  }
  wait_for_fifo(&r, "ctl-supervised");
  /* The crash comes right after the first start of `slow`: wait until the
   * restarted controller has started it again (a second `sleep 60`). */
  for (int i = 0; i < 600 && test_count_processes(MARKER) < 1; i++)
    sleep_ms(50);
  sleep_ms(300);
  assert_int_equal(control("stop", "ctl-supervised"), 0);
  assert_int_equal(wait_run(&r), 0); /* the scenario's expectations held */
  check_report(&r, "Stopped with strategy 'Stop'", true);
  check_nothing_left(&r, "ctl-supervised");
}

static void test_no_such_run(void **state) {
  (void)state;
  const char *dir = test_temp_dir();
  char runs[600], stale[700];
  snprintf(runs, sizeof(runs), "%s/runs", dir);
  assert_int_equal(setenv("EXITPROBE_RUN_DIR", runs, 1), 0);
  assert_int_equal(control("stop", "nobody"), 2);
  /* A FIFO left by a run that died: nobody reads it, so it is refused. */
  assert_int_equal(mkdir(runs, 0700), 0);
  snprintf(stale, sizeof(stale), "%s/gone", runs);
  assert_int_equal(mkdir(stale, 0700), 0);
  snprintf(stale, sizeof(stale), "%s/gone/control", runs);
  assert_int_equal(mkfifo(stale, 0600), 0);
  char *argv[] = {(char *)test_exitprobe_bin(), "terminate", "gone", NULL};
  struct test_cmd_result res = test_run(argv);
  assert_int_equal(res.exit_status, 2);
  assert_non_null(strstr(res.err, "is not running any more"));
  test_cmd_result_free(&res);
  assert_int_equal(control("stop", "--bogus"), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_such_run),
      cmocka_unit_test(test_stop_runs_the_exit_handler),
      cmocka_unit_test(test_terminate_skips_the_exit_handler),
      cmocka_unit_test(test_stop_by_fifo_path),
      cmocka_unit_test(test_resume_with_set),
      cmocka_unit_test(test_stop_after_controller_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
