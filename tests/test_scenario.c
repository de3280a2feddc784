/* The scenario file model (injector/scenario.c): what loads, and where a
 * bad scenario is reported. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../injector/scenario.h"
#include "test_helpers.h"
#include "workflow.h"

static const char seed_workflow[] =
    "apiVersion: argoproj.io/v1alpha1\n"
    "kind: Workflow\n"
    "metadata: {name: exit-handler-workflow}\n"
    "spec:\n"
    "  entrypoint: main\n"
    "  onExit: cleanup\n"
    "  templates:\n"
    "  - name: main\n"
    "    steps:\n"
    "    - - name: work\n"
    "        template: do-work\n"
    "  - name: do-work\n"
    "    container: {image: alpine, command: [sh, -c, 'exit 1']}\n"
    "  - name: cleanup\n"
    "    container: {image: alpine, command: [sh, -c, 'echo done']}\n";

static char *fixture(const char *name) {
  char *path = NULL;
  if (asprintf(&path, "%s/scenarios/%s", test_data_dir(), name) < 0)
    abort();
  return path;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* A scenario s.yaml next to a workflow wf.yaml in a fresh directory. */
static char *write_case(const char *text) {
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char *wf = NULL, *sc = NULL;
  if (asprintf(&wf, "%s/wf.yaml", dir) < 0 || asprintf(&sc, "%s/s.yaml", dir) < 0)
    abort();
  write_file(wf, seed_workflow);
  write_file(sc, text);
  free(wf);
  return sc;
}

static struct scenario *load_ok(const char *path) {
  struct scenario *sc = NULL;
  ep_error *err = NULL;
  if (scenario_load_file(path, &sc, &err) < 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
    fail_msg("expected %s to load", path);
  }
  assert_null(err);
  return sc;
}

/* Exit status class 2, this file, this line:column, a message with needle. */
static void load_fails(const char *text, int line, int column, const char *needle) {
  char *path = write_case(text);
  struct scenario *sc = NULL;
  ep_error *err = NULL;
  assert_int_equal(scenario_load_file(path, &sc, &err), -1);
  assert_null(sc);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_non_null(err->file);
  assert_string_equal(err->file, path);
  if (err->line != line || err->column != column || strstr(err->message, needle) == NULL)
    fail_msg("got %d:%d '%s', want %d:%d containing '%s'", err->line, err->column, err->message,
             line, column, needle);
  ep_error_free(&err);
  free(path);
}

#define HEADER                                                                                   \
  "apiVersion: exitprobe/v1\n"                                                                   \
  "kind: Scenario\n"                                                                             \
  "metadata: {name: t}\n"                                                                        \
  "spec:\n"                                                                                      \
  "  workflow: wf.yaml\n"
#define FAULTS HEADER "  faults:\n" /* the first fault is on line 7, its '{' in column 5 */
#define EXPECT HEADER "  expect:\n" /* line 7 holds the first section */

/* ---- good scenarios ----------------------------------------------------- */

static void test_issue_example(void **state) {
  (void)state;
  char *path = fixture("good/work-killed.yaml");
  struct scenario *sc = load_ok(path);
  assert_string_equal(sc->name, "work-killed");
  assert_string_equal(sc->file, path);
  /* Relative to the scenario file, not to the current directory. */
  char *want = fixture("good/../workflows/seed.yaml");
  assert_string_equal(sc->workflow_path, want);
  assert_null(sc->workflow_spec);
  assert_int_equal(sc->workflow_pos.line, 7);
  assert_int_equal(sc->n_params, 1);
  assert_string_equal(sc->params[0].name, "x");
  assert_string_equal(sc->params[0].value, "1");
  assert_string_equal(sc->overrides[0].name, "x");
  assert_true(sc->seed_given);
  assert_int_equal(sc->seed, 42);
  assert_true(sc->time_scale == 1.0);
  assert_int_equal(sc->n_faults, 1);
  const struct fault *f = &sc->faults[0];
  assert_int_equal(f->action, FAULT_SIGNAL);
  assert_string_equal(f->target, "work");
  assert_int_equal(f->attempt, -1);
  assert_int_equal(f->signal, SIGKILL);
  assert_int_equal(f->after_ms, 200);
  assert_false(f->at_start);
  assert_null(f->on_output);
  assert_int_equal(f->pos.line, 11);
  assert_int_equal(f->pos.column, 7);
  assert_int_equal(f->target_pos.line, 11);
  assert_int_equal(f->target_pos.column, 16);
  assert_non_null(sc->expect);
  assert_non_null(ydoc_get(sc->expect, "nodes"));
  char *text = fault_describe(f);
  assert_string_equal(text, "send SIGKILL to 'work' after 200ms");
  free(text);
  scenario_free(sc);
  free(want);
  free(path);
}

static void test_every_action(void **state) {
  (void)state;
  char *path = fixture("good/all-faults.yaml");
  struct scenario *sc = load_ok(path);
  assert_string_equal(sc->description, "one fault of each kind");
  assert_false(sc->seed_given);
  assert_int_equal(sc->seed, 0);
  assert_true(sc->time_scale == 0.01);
  assert_int_equal(sc->n_faults, 15);
  const struct fault *f = sc->faults;

  assert_int_equal(f[0].action, FAULT_EXIT);
  assert_int_equal(f[0].exit_code, 3);
  assert_int_equal(f[0].when, FAULT_WHEN_INSTEAD);
  assert_int_equal(f[1].when, FAULT_WHEN_AFTER);
  assert_int_equal(f[1].attempt, 1);

  assert_int_equal(f[2].signal, SIGTERM);
  assert_true(f[2].at_start);
  assert_int_equal(f[2].after_ms, -1);
  assert_int_equal(f[3].signal, 9);
  assert_string_equal(f[3].target, "w*");
  assert_string_equal(f[3].on_output, "^Doing (work|nothing)");
  assert_int_equal(regexec(&f[3].on_output_re, "x\nDoing nothing\n", 0, NULL, 0), 0);
  assert_int_equal(regexec(&f[3].on_output_re, "Undoing work", 0, NULL, 0), REG_NOMATCH);

  assert_int_equal(f[4].action, FAULT_HANG);
  assert_int_equal(f[5].action, FAULT_DELAY);
  assert_int_equal(f[5].duration_ms, 1500);
  assert_int_equal(f[6].action, FAULT_FREEZE);
  assert_int_equal(f[6].after_ms, 100);
  assert_int_equal(f[6].duration_ms, 90000);
  assert_int_equal(f[7].action, FAULT_OOM);
  assert_int_equal(f[7].memory_limit, 64ull << 20);
  assert_int_equal(f[8].action, FAULT_PIDS);
  assert_int_equal(f[8].pids_limit, 16);

  assert_int_equal(f[9].action, FAULT_SYSCALL);
  assert_string_equal(f[9].syscall, "write");
  assert_true(f[9].syscall_nr >= 0);
  assert_int_equal(f[9].errno_value, ENOSPC);
  assert_string_equal(f[9].errno_name, "ENOSPC");
  assert_int_equal(f[9].nth, 3);
  assert_true(f[9].probability == 0.5);

  assert_int_equal(f[10].action, FAULT_NETWORK);
  assert_int_equal(f[10].network, FAULT_NETWORK_OFF);

  assert_int_equal(f[11].action, FAULT_DEADLINE);
  assert_null(f[11].target);
  assert_string_equal(f[11].scope, "workflow");
  assert_int_equal(f[11].deadline_field, FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS);
  assert_int_equal(f[11].deadline_ms, 60000);
  assert_string_equal(f[12].scope, "do-work");
  assert_int_equal(f[12].deadline_field, FAULT_DEADLINE_TIMEOUT);
  assert_int_equal(f[12].deadline_ms, 30000);

  assert_int_equal(f[13].action, FAULT_SHUTDOWN);
  assert_int_equal(f[13].strategy, FAULT_SHUTDOWN_STOP);
  assert_int_equal(f[13].after_ms, 2000);
  assert_null(f[13].target);
  assert_int_equal(f[14].strategy, FAULT_SHUTDOWN_TERMINATE);
  assert_int_equal(f[14].after_ms, 0);
  assert_string_equal(f[14].target, "work");

  assert_string_equal(fault_action_name(f[0].action), "exit");
  assert_string_equal(fault_action_name(f[9].action), "syscall");
  assert_string_equal(fault_action_name(f[14].action), "shutdown");

  /* Defaults that the injector relies on. */
  assert_int_equal(f[0].nth, 1);
  assert_true(f[0].probability == 1.0);

  static const char *const described[] = {
      "exit 3 instead of running 'work'",
      "exit 0 after 'work' runs (attempt 1 only)",
      "send SIGTERM to 'work' at start",
      "send SIGKILL to 'w*' when its output matches /^Doing (work|nothing)/",
      "hang 'work' (it never ends by itself)",
      "delay the start of 'work' by 1500ms",
      "freeze 'work' after 100ms for 90s",
      "limit 'work' to 67108864 bytes of memory",
      "limit 'work' to 16 processes",
      "fail write() with ENOSPC in 'cleanup' from call 3 on, probability 0.5",
      "network off for 'cleanup'",
      "set activeDeadlineSeconds of the workflow to 1m",
      "set timeout of template 'do-work' to 30s",
      "stop the workflow after 2s",
      "terminate the workflow 0ms after 'work' starts",
  };
  for (size_t i = 0; i < sc->n_faults; i++) {
    char *text = fault_describe(&f[i]);
    assert_string_equal(text, described[i]);
    free(text);
  }
  scenario_free(sc);
  free(path);
}

static void test_inline_workflow(void **state) {
  (void)state;
  char *path = fixture("good/inline.yml");
  struct scenario *sc = load_ok(path);
  assert_null(sc->workflow_path);
  assert_non_null(sc->workflow_spec);
  assert_int_equal(sc->workflow_pos.line, 6);
  assert_int_equal(sc->workflow_pos.column, 5);

  /* The lead builds the workflow from a document of its own. */
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  assert_int_equal(scenario_load_workflow_doc(sc, &doc, &err), 0);
  struct workflow *wf = NULL;
  if (workflow_from_doc(doc, sc->overrides, sc->n_params, &wf, &err) < 0) {
    ep_error_print(err, stderr);
    fail_msg("the inline workflow should load");
  }
  assert_string_equal(wf->name, "inline");
  assert_string_equal(wf->on_exit, "bye");
  assert_string_equal(wf->file, path);
  assert_int_equal(scenario_check_targets(sc, wf, &err), 0);
  workflow_free(wf);
  /* The scenario's own tree is still intact. */
  assert_non_null(ydoc_get(sc->expect, "logs"));
  scenario_free(sc);
  free(path);
}

static void test_workflow_doc_from_file(void **state) {
  (void)state;
  char *path = fixture("good/work-killed.yaml");
  struct scenario *sc = load_ok(path);
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  assert_int_equal(scenario_load_workflow_doc(sc, &doc, &err), 0);
  struct workflow *wf = NULL;
  assert_int_equal(workflow_from_doc(doc, NULL, 0, &wf, &err), 0);
  assert_string_equal(wf->name, "exit-handler-workflow");
  assert_int_equal(scenario_check_targets(sc, wf, &err), 0);
  workflow_free(wf);
  scenario_free(sc);
  free(path);
}

/* ---- the small parsers -------------------------------------------------- */

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t ms;
  } good[] = {{"200ms", 200}, {"1s", 1000},      {"1m", 60000},  {"1.5s", 1500},
              {"1m30s", 90000}, {"2h", 7200000}, {"0s", 0},      {"500us", 1},
              {"1ns", 1},     {".5s", 500},      {"0.1s", 100},  {"1h1m1s1ms", 3661001},
              {"1\xc2\xb5s", 1}};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    int64_t ms = -2;
    if (scenario_parse_duration(good[i].text, &ms) != 0 || ms != good[i].ms)
      fail_msg("'%s' gave %lld", good[i].text, (long long)ms);
  }
  static const char *const bad[] = {"", "200", "1", "s", "1.s.", "-1s", "1d", "1 s", "1sm",
                                    "99999999999999999999h", "1e3s"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t ms = 0;
    if (scenario_parse_duration(bad[i], &ms) == 0)
      fail_msg("'%s' should be refused, gave %lld", bad[i], (long long)ms);
  }
}

static void test_signals_and_errnos(void **state) {
  (void)state;
  int v = 0;
  assert_int_equal(scenario_parse_signal("SIGKILL", &v), 0);
  assert_int_equal(v, SIGKILL);
  assert_int_equal(scenario_parse_signal("KILL", &v), 0);
  assert_int_equal(v, SIGKILL);
  assert_int_equal(scenario_parse_signal("sigterm", &v), 0);
  assert_int_equal(v, SIGTERM);
  assert_int_equal(scenario_parse_signal("9", &v), 0);
  assert_int_equal(v, 9);
  assert_int_equal(scenario_parse_signal("USR1", &v), 0);
  assert_int_equal(v, SIGUSR1);
  assert_int_equal(scenario_parse_signal("SIGFOO", &v), -1);
  assert_int_equal(scenario_parse_signal("0", &v), -1);
  assert_int_equal(scenario_parse_signal("32", &v), -1);
  assert_int_equal(scenario_parse_signal("65", &v), -1);
  assert_int_equal(scenario_parse_signal("9x", &v), -1);

  assert_int_equal(scenario_parse_errno("ENOSPC", &v), 0);
  assert_int_equal(v, ENOSPC);
  assert_int_equal(scenario_parse_errno("EIO", &v), 0);
  assert_int_equal(v, EIO);
  assert_int_equal(scenario_parse_errno("EPERM", &v), 0);
  assert_int_equal(v, EPERM);
  assert_int_equal(scenario_parse_errno("EWOULDBLOCK", &v), 0);
  assert_int_equal(v, EAGAIN);
  assert_int_equal(scenario_parse_errno("ENOPE", &v), -1);
  assert_int_equal(scenario_parse_errno("28", &v), -1);
}

/* ---- bad scenarios: status 2 and the exact place ------------------------ */

static void test_bad_document(void **state) {
  (void)state;
  load_fails("apiVersion: exitprobe/v1\nkind: Workflow\nmetadata: {name: t}\nspec: {}\n", 2, 7,
             "kind must be Scenario");
  load_fails("apiVersion: exitprobe/v2\nkind: Scenario\nmetadata: {name: t}\nspec: {}\n", 1, 13,
             "apiVersion must be exitprobe/v1");
  load_fails("", 1, 1, "empty");
  load_fails("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: \"bad name\"}\n"
             "spec: {workflow: wf.yaml}\n",
             3, 18, "metadata.name 'bad name'");
  load_fails("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: t}\nstatus: {}\n"
             "spec: {workflow: wf.yaml}\n",
             4, 1, "unknown field 'status'");
  load_fails("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: t}\n", 1, 1,
             "a Scenario needs 'spec'");
}

static void test_bad_spec(void **state) {
  (void)state;
  load_fails(HEADER "  faultz: []\n", 6, 3, "unknown field 'faultz' in spec");
  load_fails("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: t}\nspec:\n"
             "  workflow: nope.yaml\n",
             5, 13, "workflow file 'nope.yaml'");
  load_fails(HEADER "  workflowSpec: {}\n", 6, 17, "not both");
  load_fails("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: t}\nspec:\n  seed: 1\n",
             5, 3, "spec needs workflow");
  load_fails(HEADER "  timeScale: 0\n", 6, 14, "timeScale must be above 0");
  load_fails(HEADER "  timeScale: fast\n", 6, 14, "timeScale must be a number");
  load_fails(HEADER "  seed: -1\n", 6, 9, "seed must be at least 0");
  load_fails(HEADER "  arguments:\n    parameters:\n    - {name: x, value: 1}\n"
                    "    - {name: x, value: 2}\n",
             9, 14, "parameter 'x' is given twice");
  load_fails(HEADER "  arguments: {parameters: [{name: x, valu: 1}]}\n", 6, 38,
             "unknown field 'valu'");
  load_fails(HEADER "  faults: {target: work}\n", 6, 11, "faults must be a sequence");
}

static void test_bad_faults(void **state) {
  (void)state;
  load_fails(FAULTS "  - {target: work, action: kil}\n", 7, 28, "unknown action 'kil'");
  load_fails(FAULTS "  - {target: work}\n", 7, 5, "a fault needs an action");
  load_fails(FAULTS "  - {action: hang}\n", 7, 5, "a hang fault needs a target");
  load_fails(FAULTS "  - {target: work, action: signal, signal: KILL, after: 200}\n", 7, 57,
             "needs a unit: write 200ms or 200s");
  load_fails(FAULTS "  - {target: work, action: signal, signal: KILL, after: 2 seconds}\n", 7, 57,
             "is not a duration");
  load_fails(FAULTS "  - {target: work, action: signal, signal: SIGFOO, atStart: true}\n", 7, 44,
             "unknown signal 'SIGFOO'");
  load_fails(FAULTS "  - {target: cleanup, action: syscall, syscall: write, errno: ENOPE}\n", 7, 63,
             "unknown errno name 'ENOPE'");
  load_fails(FAULTS "  - {target: cleanup, action: syscall, syscall: wrtie, errno: EIO}\n", 7, 49,
             "unknown system call 'wrtie'");
  load_fails(FAULTS "  - {target: work, action: signal, signal: KILL, onOutput: \"a(b\"}\n", 7, 60,
             "not a valid extended regular expression");
  load_fails(FAULTS "  - {target: \"wor[k\", action: hang}\n", 7, 14,
             "has '[' without a closing ']'");
  load_fails(FAULTS "  - {target: cleanup, action: syscall, syscall: write, errno: EIO, "
                    "probability: 1.5}\n",
             7, 81, "probability must be between 0 and 1");
  load_fails(FAULTS "  - {target: work, action: exit, code: 1, signal: KILL}\n", 7, 43,
             "'signal' is not a field of an exit fault");
  load_fails(FAULTS "  - {target: work, action: exit, code: 1, colour: red}\n", 7, 43,
             "unknown field 'colour' in an exit fault");
  load_fails(FAULTS "  - {target: work, action: signal, signal: KILL, after: 1s, atStart: true}\n",
             7, 61, "give only one of after, atStart and onOutput");
  load_fails(FAULTS "  - {target: work, action: signal, signal: KILL}\n", 7, 5,
             "needs when to send it");
  load_fails(FAULTS "  - {target: work, action: deadline, activeDeadlineSeconds: 5}\n", 7, 6,
             "a deadline fault has no target");
  load_fails(FAULTS "  - {target: work, action: exit, code: 300}\n", 7, 40,
             "code must be between 0 and 255");
  load_fails(FAULTS "  - {target: work, action: network, network: on}\n", 7, 46,
             "network must be 'off'");
  load_fails(FAULTS "  - {target: work, action: oom, limit: lots}\n", 7, 40,
             "limit must be a memory quantity");
  load_fails(FAULTS "  - {target: work, action: oom}\n", 7, 5, "an oom fault needs 'limit'");
  load_fails(FAULTS "  - {action: deadline, timeout: 30s}\n", 7, 33,
             "a workflow has no timeout field");
  load_fails(FAULTS "  - {target: work, action: pids, limit: 0}\n", 7, 41,
             "limit must be between 1 and");
  load_fails(FAULTS "  - {target: work, action: hang, attempt: -1}\n", 7, 43,
             "attempt must be between 0 and");
  load_fails(FAULTS "  - {action: shutdown, strategy: pause}\n", 7, 34,
             "strategy must be 'stop' or 'terminate'");
}

static void test_bad_expectations(void **state) {
  (void)state;
  load_fails(EXPECT "    workflw: {phase: Failed}\n", 7, 5, "unknown field 'workflw' in expect");
  load_fails(EXPECT "    nodes:\n      work: {phase: Faild}\n", 8, 21,
             "nodes.work.phase must be one of");
  load_fails(EXPECT "    nodes:\n      work: {exitCode: one}\n", 8, 24,
             "nodes.work.exitCode must be an integer");
  load_fails(EXPECT "    nodes:\n      work: {exitcode: 1}\n", 8, 14,
             "unknown field 'exitcode' in nodes.work");
  load_fails(EXPECT "    logs:\n      cleanup: {containz: bye}\n", 8, 17,
             "unknown matcher 'containz' for logs.cleanup");
  load_fails(EXPECT "    logs:\n      cleanup: bye\n", 8, 16, "logs.cleanup must be a matcher");
  load_fails(EXPECT "    workflow: {message: {matches: \"(\"}}\n", 7, 35,
             "not a valid extended regular expression");
  load_fails(EXPECT "    exitHandler: {ran: maybe}\n", 7, 24,
             "exitHandler.ran must be true or false");
  load_fails(EXPECT "    exitHandler: {runs: {atLeast: 3, atMost: 1}}\n", 7, 25,
             "atLeast 3 is above atMost 1");
  load_fails(EXPECT "    exitHandler: {ran: true, phase: {atLeast: 1}}\n", 7, 38,
             "unknown matcher 'atLeast' for exitHandler.phase");
  load_fails(EXPECT "    exitHandler: {ran: {contains: x}}\n", 7, 24,
             "exitHandler.ran takes true or false, not a matcher");
  load_fails(EXPECT "    nodes:\n      \"wor[k\": {phase: Failed}\n", 8, 7,
             "has '[' without a closing ']'");
  load_fails(EXPECT "    nodes:\n      work: {message: {contains: []}}\n", 8, 34,
             "contains needs at least one string");
}

/* ---- targets against the workflow --------------------------------------- */

static void check_targets_fail(const char *text, int line, int column, const char *needle) {
  char *path = write_case(text);
  struct scenario *sc = load_ok(path);
  struct workflow *wf = NULL;
  ep_error *err = NULL;
  assert_int_equal(workflow_load_file(sc->workflow_path, NULL, 0, &wf, &err), 0);
  assert_int_equal(scenario_check_targets(sc, wf, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_string_equal(err->file, path);
  if (err->line != line || err->column != column || strstr(err->message, needle) == NULL)
    fail_msg("got %d:%d '%s', want %d:%d containing '%s'", err->line, err->column, err->message,
             line, column, needle);
  ep_error_free(&err);
  workflow_free(wf);
  scenario_free(sc);
  free(path);
}

static void test_impossible_targets(void **state) {
  (void)state;
  check_targets_fail(FAULTS "  - {target: wrok, action: hang}\n", 7, 14,
                     "target 'wrok' matches no node of workflow 'exit-handler-workflow'");
  check_targets_fail(FAULTS "  - {action: deadline, scope: nowhere, timeout: 1s}\n", 7, 31,
                     "scope 'nowhere' is neither 'workflow' nor a template");
  check_targets_fail(EXPECT "    nodes:\n      clean*x: {phase: Failed}\n", 8, 7,
                     "nodes target 'clean*x' matches no node");
  check_targets_fail(EXPECT "    logs:\n      nobody: {contains: x}\n", 8, 7,
                     "logs target 'nobody' matches no node");

  /* Globs, template names, the onExit node and hierarchical names pass. */
  char *path = write_case(FAULTS "  - {target: \"w*\", action: hang}\n"
                                 "  - {target: do-work, action: hang}\n"
                                 "  - {action: deadline, scope: cleanup, timeout: 1s}\n"
                                 "  expect:\n"
                                 "    nodes:\n"
                                 "      exit-handler-workflow.onExit: {phase: Succeeded}\n"
                                 "      \"exit-handler-workflow[0].work\": {phase: Failed}\n"
                                 "      \"work(1)\": {phase: Failed}\n"
                                 "      exit-handler-workflow: {phase: Failed}\n");
  struct scenario *sc = load_ok(path);
  struct workflow *wf = NULL;
  ep_error *err = NULL;
  assert_int_equal(workflow_load_file(sc->workflow_path, NULL, 0, &wf, &err), 0);
  if (scenario_check_targets(sc, wf, &err) < 0) {
    ep_error_print(err, stderr);
    fail_msg("these targets can match");
  }
  workflow_free(wf);
  scenario_free(sc);
  free(path);
}

/* ---- delivery, compensate, controller-hang --------------------------------- */

static void test_watchdog_fields(void **state) {
  (void)state;
  char *path = write_case(HEADER "  delivery: at-most-once\n  compensate: cleanup\n  faults:\n"
                                 "  - {action: controller-hang, at: before:exit-handler, "
                                 "then: stay-down, duration: 2s}\n");
  struct scenario *sc = load_ok(path);
  assert_true(sc->at_most_once);
  assert_string_equal(sc->compensate, "cleanup");
  assert_int_equal(sc->faults[0].action, FAULT_CONTROLLER_HANG);
  assert_int_equal(sc->faults[0].duration_ms, 2000);
  assert_int_equal(sc->faults[0].lease_ms, 1000);
  assert_int_equal(sc->faults[0].crash_then, CRASH_THEN_STAY_DOWN);
  char *d = fault_describe(&sc->faults[0]);
  assert_non_null(strstr(d, "SIGSTOP"));
  free(d);
  scenario_free(sc);
  free(path);
  path = write_case(HEADER "  delivery: at-least-once\n");
  sc = load_ok(path);
  assert_false(sc->at_most_once);
  assert_null(sc->compensate);
  scenario_free(sc);
  free(path);

  load_fails(HEADER "  delivery: exactly-once\n", 6, 13, "at-least-once or at-most-once");
  load_fails(HEADER "  compensate: [a]\n", 6, 15, "compensate");
  load_fails(FAULTS "  - {action: controller-hang, at: before:exit-handler}\n", 7, 5,
             "needs 'duration'");
  load_fails(FAULTS "  - {action: controller-hang, at: before:exit-handler, duration: 1s, "
                    "lease: 1ms}\n",
             7, 77, "lease must be at least 10ms");
  check_targets_fail(HEADER "  compensate: undo\n", 6, 15,
                     "compensate: 'undo' is not a template of workflow 'exit-handler-workflow'");
}

/* ---- finding scenarios -------------------------------------------------- */

static void test_collect_dir(void **state) {
  (void)state;
  char *dir = fixture("");
  char **paths = NULL;
  size_t n = 0;
  ep_error *err = NULL;
  assert_int_equal(scenario_collect_dir(dir, &paths, &n, &err), 0);
  static const char *const want[] = {"good/all-faults.yaml", "good/inline.yml",
                                     "good/nested/terminate.yaml", "good/work-killed.yaml"};
  if (n != sizeof(want) / sizeof(want[0])) {
    for (size_t i = 0; i < n; i++)
      fprintf(stderr, "collected %s\n", paths[i]);
    fail_msg("collected %zu scenarios, want 4", n);
  }
  for (size_t i = 0; i < n; i++) {
    char *expected = fixture(want[i]);
    assert_string_equal(paths[i], expected);
    free(expected);
  }
  assert_null(paths[n]);
  scenario_paths_free(paths, n);
  free(dir);
}

static void test_looks_like_scenario(void **state) {
  (void)state;
  char *wf = fixture("workflows/seed.yaml"), *sc = fixture("good/work-killed.yaml");
  assert_false(scenario_file_looks_like_scenario(wf));
  assert_true(scenario_file_looks_like_scenario(sc));
  assert_false(scenario_file_looks_like_scenario("/nonexistent/x.yaml"));
  /* A broken scenario is still a scenario: its error must be reported. */
  const char *broken = test_write_temp("broken.yaml", "apiVersion: exitprobe/v1\n"
                                                      "kind: Scenario   # a comment\n"
                                                      "spec: [\n");
  assert_non_null(broken);
  assert_true(scenario_file_looks_like_scenario(broken));
  const char *broken_wf = test_write_temp("broken-wf.yaml", "kind: Workflow\nspec: [\n");
  assert_false(scenario_file_looks_like_scenario(broken_wf));
  free(wf);
  free(sc);
}

static void test_collect_errors(void **state) {
  (void)state;
  char **paths = NULL;
  size_t n = 5;
  ep_error *err = NULL;
  assert_int_equal(scenario_collect_dir("/nonexistent-exitprobe-dir", &paths, &n, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_non_null(strstr(err->message, "/nonexistent-exitprobe-dir"));
  assert_null(paths);
  assert_int_equal(n, 0);
  ep_error_free(&err);

  /* An empty directory is not an error: the caller reports "nothing ran" (4). */
  const char *empty = test_temp_dir();
  assert_int_equal(scenario_collect_dir(empty, &paths, &n, &err), 0);
  assert_int_equal(n, 0);
  assert_non_null(paths);
  assert_null(paths[0]);
  scenario_paths_free(paths, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_issue_example),
      cmocka_unit_test(test_every_action),
      cmocka_unit_test(test_inline_workflow),
      cmocka_unit_test(test_workflow_doc_from_file),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_signals_and_errnos),
      cmocka_unit_test(test_bad_document),
      cmocka_unit_test(test_bad_spec),
      cmocka_unit_test(test_bad_faults),
      cmocka_unit_test(test_bad_expectations),
      cmocka_unit_test(test_impossible_targets),
      cmocka_unit_test(test_watchdog_fields),
      cmocka_unit_test(test_collect_dir),
      cmocka_unit_test(test_looks_like_scenario),
      cmocka_unit_test(test_collect_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
