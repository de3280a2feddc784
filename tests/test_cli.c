/* The command line as a user and a CI job meet it: help, exit statuses,
 * errors that name file:line:column, interruption, nothing left behind. */
#include <dirent.h>
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

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

static struct test_cmd_result run3(const char *a, const char *b, const char *c) {
  char *argv[] = {(char *)test_exitprobe_bin(), (char *)a, (char *)b, (char *)c, NULL};
  return test_run(argv);
}

static void test_help_and_version(void **state) {
  (void)state;
  struct test_cmd_result r = run3("--help", NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(strstr(r.out, "Usage: exitprobe"));
  test_cmd_result_free(&r);
  r = run3("run", "--help", NULL);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(strstr(r.out, "--report"));
  assert_non_null(strstr(r.out, "Exit status"));
  test_cmd_result_free(&r);
  r = run3("--version", NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(strstr(r.out, "exitprobe "));
  test_cmd_result_free(&r);
}

static void test_usage_errors_exit_2(void **state) {
  (void)state;
  struct test_cmd_result r = run3(NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  test_cmd_result_free(&r);
  r = run3("frobnicate", NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
  test_cmd_result_free(&r);
  r = run3("run", NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "needs a workflow file"));
  test_cmd_result_free(&r);
  r = run3("run", "--no-such-flag", "x.yaml");
  assert_int_equal(r.exit_status, 2);
  test_cmd_result_free(&r);
  r = run3("run", "-p", "novalue");
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "NAME=VALUE"));
  test_cmd_result_free(&r);
  r = run3("run", "/nonexistent/wf.yaml", NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "/nonexistent/wf.yaml"));
  test_cmd_result_free(&r);
}

static void test_bad_yaml_names_position_and_writes_no_report(void **state) {
  (void)state;
  const char *wf = test_write_temp("bad.yaml", "apiVersion: argoproj.io/v1alpha1\n"
                                               "kind: Workflow\n"
                                               "metadata: {name: bad}\n"
                                               "spec:\n"
                                               "  entrypoint: main\n"
                                               "  templates:\n"
                                               "  - name: main\n"
                                               "    steps:\n"
                                               "    - - name: a\n"
                                               "        template: nowhere\n");
  const char *report = test_path(test_temp_dir(), "r.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "--report", (char *)report, (char *)wf,
                  NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 2);
  char want[4200];
  snprintf(want, sizeof(want), "%s:10:19: error:", wf);
  if (strstr(r.err, want) == NULL)
    fail_msg("stderr lacks '%s':\n%s", want, r.err);
  assert_non_null(strstr(r.err, "nowhere"));
  assert_int_equal(access(report, F_OK), -1);
  test_cmd_result_free(&r);

  const char *syntax = test_write_temp("syntax.yaml", "kind: Workflow\nspec: [unclosed\n");
  char *argv2[] = {(char *)test_exitprobe_bin(), "run", (char *)syntax, NULL};
  r = test_run(argv2);
  assert_int_equal(r.exit_status, 2);
  snprintf(want, sizeof(want), "%s:", syntax);
  assert_non_null(strstr(r.err, want));
  test_cmd_result_free(&r);
}

static void test_background_child_does_not_survive(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_write_temp(
      "bg.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                 "metadata: {name: escape-artist}\n"
                 "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    container:\n"
                 "      command: [sh, -c]\n"
                 "      args: [\"(setsid sh -c 'sleep 777 & sleep 778' &) ; echo forked\"]\n");
  const char *report = test_path(test_temp_dir(), "bg.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  (char *)wf, NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 0);
  test_cmd_result_free(&r);
  assert_int_equal(test_count_processes("sleep 777"), 0);
  assert_int_equal(test_count_processes("sleep 778"), 0);
  assert_int_equal(test_count_cgroups_named("escape-artist"), 0);
}

static pid_t spawn(char *const argv[], int *out_fd) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(p[1], 1);
    dup2(devnull, 2);
    close(p[0]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

static void wait_for_process(const char *needle) {
  for (int i = 0; i < 200; i++) {
    if (test_count_processes(needle) > 0)
      return;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  fail_msg("'%s' never started", needle);
}

static void test_interrupt_stops_runs_exit_handler_and_marks_report(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_write_temp(
      "long.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                   "metadata: {name: interrupted}\n"
                   "spec:\n  entrypoint: main\n  onExit: bye\n  templates:\n"
                   "  - name: main\n    steps:\n    - - {name: long, template: sleepy}\n"
                   "  - name: sleepy\n    container: {command: [sleep, '4242']}\n"
                   "  - name: bye\n    container:\n      command: [sh, -c]\n"
                   "      args: ['echo handler saw {{workflow.status}}']\n");
  const char *report = test_path(test_temp_dir(), "int.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  (char *)wf, NULL};
  int out_fd;
  pid_t pid = spawn(argv, &out_fd);
  wait_for_process("sleep 4242");
  kill(pid, SIGINT);
  char buf[65536];
  size_t len = 0;
  ssize_t n;
  while ((n = read(out_fd, buf + len, sizeof(buf) - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(out_fd);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 130);
  assert_int_equal(test_count_processes("sleep 4242"), 0);
  assert_non_null(strstr(buf, "handler saw Failed"));

  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  assert_non_null(root);
  json_t *run = json_object_get(root, "run");
  assert_true(json_is_true(json_object_get(run, "interrupted")));
  assert_string_equal(json_string_value(json_object_get(run, "signal")), "SIGINT");
  json_t *status_obj = json_object_get(root, "status");
  assert_string_equal(json_string_value(json_object_get(status_obj, "phase")), "Failed");
  assert_string_equal(json_string_value(json_object_get(status_obj, "message")),
                      "Stopped with strategy 'Stop'");
  json_t *eh = json_object_get(root, "exitHandler");
  assert_true(json_is_true(json_object_get(eh, "ran")));
  assert_string_equal(json_string_value(json_object_get(eh, "workflowStatus")), "Failed");
  json_decref(root);
}

/* SIGUSR2 is argo terminate: the exit handler does not run, the run is not
 * "interrupted", and the exit status follows the Failed workflow. */
static void test_sigusr2_terminates_without_exit_handler(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *wf = test_write_temp(
      "term.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                   "metadata: {name: terminated}\n"
                   "spec:\n  entrypoint: main\n  onExit: bye\n  templates:\n"
                   "  - name: main\n    steps:\n    - - {name: long, template: sleepy}\n"
                   "  - name: sleepy\n    container: {command: [sleep, '4343']}\n"
                   "  - name: bye\n    container: {command: [echo, handler-ran]}\n");
  const char *report = test_path(test_temp_dir(), "term.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", (char *)report,
                  (char *)wf, NULL};
  int out_fd;
  pid_t pid = spawn(argv, &out_fd);
  wait_for_process("sleep 4343");
  kill(pid, SIGUSR2);
  char buf[65536];
  size_t len = 0;
  ssize_t n;
  while ((n = read(out_fd, buf + len, sizeof(buf) - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(out_fd);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 1);
  assert_null(strstr(buf, "handler-ran"));
  assert_int_equal(test_count_processes("sleep 4343"), 0);
  json_error_t jerr;
  json_t *root = json_load_file(report, 0, &jerr);
  assert_non_null(root);
  assert_true(json_is_false(json_object_get(json_object_get(root, "run"), "interrupted")));
  assert_string_equal(json_string_value(json_object_get(json_object_get(root, "status"), "message")),
                      "Stopped with strategy 'Terminate'");
  assert_true(json_is_false(json_object_get(json_object_get(root, "exitHandler"), "ran")));
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_and_version),
      cmocka_unit_test(test_usage_errors_exit_2),
      cmocka_unit_test(test_bad_yaml_names_position_and_writes_no_report),
      cmocka_unit_test(test_background_child_does_not_survive),
      cmocka_unit_test(test_interrupt_stops_runs_exit_handler_and_marks_report),
      cmocka_unit_test(test_sigusr2_terminates_without_exit_handler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
