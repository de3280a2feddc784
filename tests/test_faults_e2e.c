/* Every fault action end to end: a scenario from tests/data/faults run by
 * the real binary in the real sandbox.  Each test checks the effect the
 * step itself saw or suffered (its exit code, its log, the kernel's OOM
 * kill, the interfaces it could see) AND that the report says the fault
 * fired, on which node, with the node as Argo would report it. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_helpers.h"

#define ANY_VERDICT (-1)

/* One run of exitprobe on a fixture, with its report loaded. */
struct fault_run {
  int status;
  char *out;
  char *err;
  json_t *report;
  double seconds; /* wall time of the whole exitprobe run */
};

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *fixture(const char *name) {
  return test_path(test_path(test_data_dir(), "faults"), name);
}

static void fault_run_free(struct fault_run *r) {
  free(r->out);
  free(r->err);
  json_decref(r->report);
  memset(r, 0, sizeof(*r));
}

/* Run argv (whose report goes to report_path) and insist on want_status
 * (ANY_VERDICT: 0, 1 or 3, the statuses of a scenario that ran).  A
 * scenario the machine cannot exercise (a missing capability makes it
 * inconclusive) is a skip with its reason, never a pass. */
static struct fault_run run_exitprobe(char *const argv[], const char *report_path,
                                      int want_status) {
  struct fault_run run = {0};
  double t0 = now_seconds();
  struct test_cmd_result r = test_run(argv);
  run.seconds = now_seconds() - t0;
  run.status = r.exit_status;
  run.out = r.out;
  run.err = r.err;
  if (run.status == 3 && want_status != 3 && strstr(run.out, "capability") != NULL) {
    printf("skipped: this machine cannot carry out the fault:\n%s", run.out);
    fault_run_free(&run);
    skip();
  }
  bool ran = run.status == 0 || run.status == 1 || run.status == 3;
  if (want_status == ANY_VERDICT ? !ran : run.status != want_status)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", run.status, want_status,
             run.out, run.err);
  json_error_t jerr;
  run.report = json_load_file(report_path, 0, &jerr);
  if (run.report == NULL)
    fail_msg("report %s unreadable: %s\nstdout:\n%s\nstderr:\n%s", report_path, jerr.text,
             run.out, run.err);
  return run;
}

static struct fault_run run_fixture(const char *name, int want_status) {
  skip_without_sandbox();
  const char *report = test_path(test_temp_dir(), "report.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "--report", (char *)report,
                  (char *)fixture(name), NULL};
  return run_exitprobe(argv, report, want_status);
}

/* ---- reading the report ----------------------------------------------- */

static const char *opt_str(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *req_str(const json_t *obj, const char *key) {
  const char *s = opt_str(obj, key);
  if (s == NULL) {
    char *dump = json_dumps(obj, JSON_INDENT(2));
    fail_msg("no string '%s' in %s", key, dump ? dump : "(null)");
  }
  return s;
}

static json_t *find_node(const json_t *report, const char *display) {
  json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  json_t *node;
  json_object_foreach(nodes, id, node) {
    const char *d = opt_str(node, "displayName");
    if (d != NULL && strcmp(d, display) == 0)
      return node;
  }
  return NULL;
}

static json_t *node(const json_t *report, const char *display) {
  json_t *n = find_node(report, display);
  if (n == NULL)
    fail_msg("no node with displayName '%s' in the report", display);
  return n;
}

static const char *exit_code(const json_t *n) {
  return req_str(json_object_get(n, "outputs"), "exitCode");
}

/* The log, "" when the step printed nothing (the report omits it then). */
static const char *node_log(const json_t *n) {
  const char *log = opt_str(n, "log");
  return log ? log : "";
}

static void assert_contains(const char *text, const char *needle) {
  if (text == NULL || strstr(text, needle) == NULL)
    fail_msg("expected to find \"%s\" in:\n%s", needle, text ? text : "(null)");
}

static void assert_not_contains(const char *text, const char *needle) {
  if (text != NULL && strstr(text, needle) != NULL)
    fail_msg("did not expect \"%s\" in:\n%s", needle, text);
}

static json_t *fault_at(const json_t *report, size_t i, const char *action) {
  json_t *faults = json_object_get(report, "faults");
  if (json_array_size(faults) <= i)
    fail_msg("the report lists %zu faults, wanted at least %zu", json_array_size(faults), i + 1);
  json_t *f = json_array_get(faults, i);
  assert_string_equal(req_str(f, "action"), action);
  assert_non_null(req_str(f, "asked"));
  return f;
}

/* faults[i] is `action`, fired, and (for a step fault) fired on on_node. */
static json_t *assert_fired(const json_t *report, size_t i, const char *action,
                            const json_t *on_node) {
  json_t *f = fault_at(report, i, action);
  if (!json_is_true(json_object_get(f, "fired"))) {
    char *dump = json_dumps(f, JSON_INDENT(2));
    fail_msg("fault %zu (%s) did not fire: %s", i, action, dump ? dump : "");
  }
  if (on_node != NULL)
    assert_string_equal(req_str(f, "node"), req_str(on_node, "id"));
  return f;
}

static double fired_after(const json_t *fault) {
  const json_t *v = json_object_get(fault, "firedAfterSeconds");
  if (!json_is_number(v))
    fail_msg("fault has no firedAfterSeconds");
  return json_number_value(v);
}

static void assert_exit_handler(const json_t *report, bool ran, const char *workflow_status) {
  const json_t *eh = json_object_get(report, "exitHandler");
  assert_non_null(eh);
  assert_int_equal(json_is_true(json_object_get(eh, "ran")), ran);
  assert_int_equal(json_integer_value(json_object_get(eh, "runs")), ran ? 1 : 0);
  if (workflow_status != NULL)
    assert_string_equal(req_str(eh, "workflowStatus"), workflow_status);
}

static const char *workflow_phase(const json_t *report) {
  return req_str(json_object_get(report, "status"), "phase");
}

static void assert_verdict(const json_t *report, const char *verdict) {
  assert_string_equal(req_str(report, "verdict"), verdict);
  const json_t *results = json_object_get(report, "expectations");
  assert_true(json_is_array(results));
  size_t i;
  const json_t *res;
  json_array_foreach(results, i, res) {
    if (strcmp(verdict, "passed") == 0 && !json_is_true(json_object_get(res, "ok"))) {
      char *dump = json_dumps(res, 0);
      fail_msg("expectation failed: %s", dump ? dump : "");
    }
  }
}

/* ---- exit --------------------------------------------------------------- */

static void test_exit_instead(void **state) {
  (void)state;
  struct fault_run r = run_fixture("exit-instead.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(exit_code(work), "7");
  assert_string_equal(req_str(work, "message"), "main: Error (exit code 7)");
  /* The command was replaced: what it would have printed is not there. */
  assert_not_contains(node_log(work), "Doing work...");
  json_t *f = assert_fired(r.report, 0, "exit", work);
  assert_contains(req_str(f, "detail"), "7");
  assert_string_equal(workflow_phase(r.report), "Failed");
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_exit_after(void **state) {
  (void)state;
  struct fault_run r = run_fixture("exit-after.yaml", 0);
  json_t *work = node(r.report, "work");
  /* The command ran (its output is there) and exited 0; the step exits 5. */
  assert_contains(node_log(work), "Doing work...\n");
  assert_string_equal(exit_code(work), "5");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"), "main: Error (exit code 5)");
  assert_fired(r.report, 0, "exit", work);
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- signal ------------------------------------------------------------- */

static void test_signal_at_start_sigkill(void **state) {
  (void)state;
  struct fault_run r = run_fixture("signal-at-start.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(exit_code(work), "137");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"), "main: Error (exit code 137)");
  assert_string_equal(req_str(work, "signal"), "SIGKILL");
  assert_fired(r.report, 0, "signal", work);
  /* The step was `sleep 5`: killed at start, the run is nowhere near 5 s.
   * (Not an upper bound on the harness: a kill that missed would take 5 s.) */
  assert_true(r.seconds < 4.5);
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* REPORT.md: "Signals are names: SIGKILL".  The fault's detail text
 * should say the signal the way the rest of the report does. */
static void test_signal_detail_names_the_signal(void **state) {
  (void)state;
  struct fault_run r = run_fixture("signal-at-start.yaml", 0);
  json_t *f = assert_fired(r.report, 0, "signal", node(r.report, "work"));
  assert_contains(req_str(f, "asked"), "SIGKILL");
  assert_contains(req_str(f, "detail"), "SIGKILL");
  fault_run_free(&r);
}

static void test_signal_after_sigterm(void **state) {
  (void)state;
  struct fault_run r = run_fixture("signal-after.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(exit_code(work), "143");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"), "main: Error (exit code 143)");
  assert_string_equal(req_str(work, "signal"), "SIGTERM");
  json_t *f = assert_fired(r.report, 0, "signal", work);
  /* Node times in the report are whole seconds (as Argo's); the step's
   * sub-second life shows in when the fault fired and in the wall time. */
  double at = fired_after(f);
  if (at < 0.3)
    fail_msg("SIGTERM fired %.3fs after the start, asked for 300ms", at);
  if (r.seconds < 0.3)
    fail_msg("the run took %.3fs, the step should have lived at least 0.3s", r.seconds);
  assert_true(strcmp(req_str(work, "finishedAt"), req_str(work, "startedAt")) >= 0);
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_signal_on_output(void **state) {
  (void)state;
  struct fault_run r = run_fixture("signal-on-output.yaml", 0);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  /* The lines up to the match are in the log, in order; the anchored regex
   * did not fire on "not BOOM yet"; the step died before its last line. */
  assert_contains(log, "line one\nnot BOOM yet\nBOOM\n");
  assert_not_contains(log, "never printed");
  assert_string_equal(exit_code(work), "137");
  assert_string_equal(req_str(work, "signal"), "SIGKILL");
  assert_fired(r.report, 0, "signal", work);
  assert_true(r.seconds < 4.5); /* it did not sleep its 5 s */
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* atStart means "as soon as it starts": the signal must land before the
 * command can finish, so a step that is over in a millisecond still dies
 * of the SIGKILL, run after run -- not killed on some runs and
 * inconclusive (or worse, exit 1) on others. */
static void test_signal_at_start_beats_a_fast_step(void **state) {
  (void)state;
  for (int i = 0; i < 30; i++) {
    struct fault_run r = run_fixture("signal-at-start-fast.yaml", ANY_VERDICT);
    json_t *work = node(r.report, "work");
    if (strcmp(exit_code(work), "137") != 0)
      fail_msg("run %d: SIGKILL at start, yet work exited %s by itself (fault fired: %s)\n%s", i,
               exit_code(work),
               json_is_true(json_object_get(fault_at(r.report, 0, "signal"), "fired")) ? "true"
                                                                                      : "false",
               r.out);
    assert_int_equal(r.status, 0);
    assert_string_equal(req_str(work, "signal"), "SIGKILL");
    assert_fired(r.report, 0, "signal", work);
    fault_run_free(&r);
  }
}

/* A line read after the step exited can no longer be answered with a
 * signal.  Whatever the timing, "fired" must mean the signal landed. */
static void test_signal_on_output_fired_means_delivered(void **state) {
  (void)state;
  for (int i = 0; i < 30; i++) {
    struct fault_run r = run_fixture("signal-on-last-line.yaml", ANY_VERDICT);
    json_t *work = node(r.report, "work");
    bool fired = json_is_true(json_object_get(fault_at(r.report, 0, "signal"), "fired"));
    bool killed = strcmp(exit_code(work), "137") == 0;
    if (fired != killed)
      fail_msg("run %d: the report says the SIGKILL %s, and work exited %s", i,
               fired ? "fired" : "did not fire", exit_code(work));
    assert_int_equal(r.status, fired ? 0 : 3);
    fault_run_free(&r);
  }
}

/* SCENARIOS.md: "The signal is delivered to every process of the step's
 * cgroup" -- not only to the main process. */
static void test_signal_reaches_every_process_of_the_step(void **state) {
  (void)state;
  struct fault_run r = run_fixture("signal-whole-cgroup.yaml", ANY_VERDICT);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  assert_contains(log, "main got TERM\n");
  assert_contains(log, "child got TERM\n");
  assert_fired(r.report, 0, "signal", work);
  assert_int_equal(r.status, 0);
  fault_run_free(&r);
}

/* ---- hang and deadline ---------------------------------------------------- */

static void test_hang_ended_by_template_timeout_fault(void **state) {
  (void)state;
  struct fault_run r = run_fixture("hang-template-timeout.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"),
                      "Pod was active on the node longer than the specified deadline");
  assert_fired(r.report, 0, "hang", work);
  json_t *d = assert_fired(r.report, 1, "deadline", NULL);
  assert_contains(req_str(d, "detail"), "timeout");
  /* timeout 1s at timeScale 0.3: the step lived about 0.3 s. */
  if (r.seconds < 0.3)
    fail_msg("the run took %.3fs: the 0.3 s (scaled) timeout cannot have run out", r.seconds);
  assert_string_equal(workflow_phase(r.report), "Failed");
  assert_exit_handler(r.report, true, "Failed");
  assert_true(json_number_value(json_object_get(json_object_get(r.report, "run"), "timeScale")) ==
              0.3);
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_hang_ended_by_workflow_deadline_fault(void **state) {
  (void)state;
  struct fault_run r = run_fixture("hang-workflow-deadline.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"), "Step exceeded its deadline");
  assert_fired(r.report, 0, "hang", work);
  json_t *d = assert_fired(r.report, 1, "deadline", NULL);
  assert_contains(req_str(d, "detail"), "activeDeadlineSeconds");
  /* 2 s from startedAt truncated to whole seconds: at least 1 s. */
  if (r.seconds < 1.0)
    fail_msg("the run took %.3fs: a 2 s workflow deadline cannot have run out", r.seconds);
  assert_string_equal(workflow_phase(r.report), "Failed");
  /* The exit handler is exempt from the workflow deadline. */
  assert_exit_handler(r.report, true, "Failed");
  assert_string_equal(req_str(node(r.report, "fault-probe.onExit"), "phase"), "Succeeded");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* timeScale 0.3 turns activeDeadlineSeconds 1 into 0.3 s of real time.
 * The step must get to start (the hang fires) and the run must last the
 * scaled deadline: SCENARIOS.md promises "0.01 makes a 60 s deadline
 * scenario take 0.6 s". */
static void test_deadline_fault_scaled_by_time_scale(void **state) {
  (void)state;
  struct fault_run r = run_fixture("deadline-workflow-scaled.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "message"), "Step exceeded its deadline");
  assert_fired(r.report, 0, "hang", work);
  assert_fired(r.report, 1, "deadline", NULL);
  if (r.seconds < 0.3)
    fail_msg("the run took %.3fs, the scaled deadline is 0.3s", r.seconds);
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* REPORT.md: firedAt and firedAfterSeconds are there "when fired". */
static void test_fired_deadline_fault_says_when(void **state) {
  (void)state;
  struct fault_run r = run_fixture("hang-template-timeout.yaml", 0);
  json_t *d = assert_fired(r.report, 1, "deadline", NULL);
  assert_non_null(req_str(d, "firedAt"));
  assert_true(fired_after(d) >= 0);
  fault_run_free(&r);
}

/* ---- delay and freeze ------------------------------------------------------ */

static void test_delay(void **state) {
  (void)state;
  struct fault_run r = run_fixture("delay.yaml", 0);
  json_t *work = node(r.report, "work");
  /* Late, but it ran as written. */
  assert_string_equal(req_str(work, "phase"), "Succeeded");
  assert_string_equal(exit_code(work), "0");
  assert_contains(node_log(work), "Doing work...\n");
  json_t *f = assert_fired(r.report, 0, "delay", work);
  double at = fired_after(f);
  if (at < 0.5)
    fail_msg("work started %.3fs after the workflow, asked for a 500ms delay", at);
  assert_contains(req_str(f, "detail"), "late");
  if (r.seconds < 0.5)
    fail_msg("the run took %.3fs despite a 500ms delay", r.seconds);
  assert_exit_handler(r.report, true, "Succeeded");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* "<word> <seconds.nanoseconds>" on a line of log, as `date +%s.%N` prints. */
static double stamp(const char *log, const char *word) {
  char key[64];
  snprintf(key, sizeof(key), "%s ", word);
  const char *at = strstr(log, key);
  if (at == NULL)
    fail_msg("no '%s' line in the log:\n%s", word, log);
  return strtod(at + strlen(key), NULL);
}

static void test_freeze(void **state) {
  (void)state;
  struct fault_run r = run_fixture("freeze.yaml", 0);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  /* The step slept 0.4 s between its two clocks; frozen 600ms in the
   * middle, it saw at least the freeze pass, and it was thawed to finish. */
  double gap = stamp(log, "after") - stamp(log, "before");
  if (gap < 0.6)
    fail_msg("the step's clock moved %.3fs across a 600ms freeze:\n%s", gap, log);
  assert_string_equal(req_str(work, "phase"), "Succeeded");
  json_t *f = assert_fired(r.report, 0, "freeze", work);
  assert_true(fired_after(f) >= 0.1);
  assert_contains(req_str(f, "detail"), "frozen");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- oom and pids ---------------------------------------------------------- */

static void test_oom(void **state) {
  (void)state;
  struct fault_run r = run_fixture("oom.yaml", 0);
  json_t *work = node(r.report, "work");
  assert_true(json_is_true(json_object_get(work, "oomKilled")));
  assert_string_equal(exit_code(work), "137");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_contains(req_str(work, "message"), "OOMKilled");
  assert_string_equal(req_str(work, "message"), "main: OOMKilled (exit code 137)");
  /* It started, asked for 256 MiB and never got there: the cgroup's peak
   * stayed at the 32 MiB limit. */
  assert_contains(node_log(work), "allocating\n");
  assert_not_contains(node_log(work), "allocated");
  json_int_t peak = json_integer_value(json_object_get(work, "memoryPeakBytes"));
  if (peak <= 0 || peak > 32 * 1024 * 1024 + 1024 * 1024)
    fail_msg("memory peak %lld bytes: not held at the 32 MiB limit", (long long)peak);
  json_t *f = assert_fired(r.report, 0, "oom", work);
  assert_contains(req_str(f, "detail"), "OOM");
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_pids(void **state) {
  (void)state;
  struct fault_run r = run_fixture("pids.yaml", 0);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  /* The shell met the limit: it could not fork (dash says "Cannot fork",
   * others print strerror(EAGAIN)) and never started all 40 sleeps. */
  if (strstr(log, "fork") == NULL && strstr(log, "Resource temporarily unavailable") == NULL)
    fail_msg("no fork failure in the step's log:\n%s", log);
  assert_not_contains(log, "started 40");
  assert_string_equal(req_str(work, "phase"), "Failed");
  json_t *f = assert_fired(r.report, 0, "pids", work);
  assert_contains(req_str(f, "detail"), "8");
  /* The host is fine: nothing of the step is left running. */
  assert_int_equal(test_count_processes("sleep 7.7731"), 0);
  assert_exit_handler(r.report, true, "Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- network ----------------------------------------------------------------- */

/* The interface names of a /proc/net/dev listing, space-separated. */
static void interfaces(const char *listing, char *names, size_t size) {
  names[0] = '\0';
  const char *line = listing;
  while (line != NULL && *line) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    const char *colon = memchr(line, ':', len);
    /* Two header lines have '|' but no ':'. */
    if (colon != NULL && memchr(line, '|', len) == NULL) {
      const char *s = line;
      while (s < colon && *s == ' ')
        s++;
      size_t used = strlen(names);
      snprintf(names + used, size - used, "%s%.*s", used ? " " : "", (int)(colon - s), s);
    }
    line = end ? end + 1 : NULL;
  }
}

static void test_network_off(void **state) {
  (void)state;
  char names[1024];
  struct fault_run control = run_fixture("network-on.yaml", 0);
  interfaces(node_log(node(control.report, "work")), names, sizeof(names));
  printf("without the fault the step sees: %s\n", names);
  fault_run_free(&control);

  struct fault_run r = run_fixture("network-off.yaml", 0);
  json_t *work = node(r.report, "work");
  interfaces(node_log(work), names, sizeof(names));
  if (strcmp(names, "lo") != 0)
    fail_msg("with network off the step sees interfaces '%s', want only 'lo':\n%s", names,
             node_log(work));
  assert_string_equal(req_str(work, "phase"), "Succeeded");
  assert_fired(r.report, 0, "network", work);
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- shutdown ---------------------------------------------------------------- */

static void test_shutdown_stop(void **state) {
  (void)state;
  struct fault_run r = run_fixture("shutdown-stop.yaml", 0);
  const json_t *status = json_object_get(r.report, "status");
  assert_string_equal(req_str(status, "phase"), "Failed");
  assert_string_equal(req_str(status, "message"), "Stopped with strategy 'Stop'");
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "phase"), "Failed");
  assert_string_equal(req_str(work, "message"), "workflow shutdown with strategy:  Stop");
  assert_fired(r.report, 0, "hang", work);
  json_t *f = assert_fired(r.report, 1, "shutdown", NULL);
  assert_true(fired_after(f) >= 0.3);
  assert_string_equal(req_str(json_object_get(r.report, "run"), "shutdown"), "Stop");
  /* Stop still runs the exit handler, and it sees Failed. */
  assert_exit_handler(r.report, true, "Failed");
  json_t *handler = node(r.report, "fault-probe.onExit");
  assert_string_equal(req_str(handler, "phase"), "Succeeded");
  assert_contains(node_log(handler), "Workflow status: Failed");
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_shutdown_terminate(void **state) {
  (void)state;
  struct fault_run r = run_fixture("shutdown-terminate.yaml", 0);
  const json_t *status = json_object_get(r.report, "status");
  assert_string_equal(req_str(status, "phase"), "Failed");
  assert_string_equal(req_str(status, "message"), "Stopped with strategy 'Terminate'");
  json_t *work = node(r.report, "work");
  assert_string_equal(req_str(work, "message"), "workflow shutdown with strategy:  Terminate");
  assert_fired(r.report, 0, "hang", work);
  assert_fired(r.report, 1, "shutdown", NULL);
  assert_string_equal(req_str(json_object_get(r.report, "run"), "shutdown"), "Terminate");
  /* Terminate does not run the exit handler: no node, no run. */
  assert_exit_handler(r.report, false, NULL);
  assert_null(find_node(r.report, "fault-probe.onExit"));
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- syscall ------------------------------------------------------------------ */

static void test_syscall_every_call_fails_with_enospc(void **state) {
  (void)state;
  struct fault_run r = run_fixture("syscall-every.yaml", 0);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  assert_contains(log, "/tmp/d1: No space left on device\n");
  assert_contains(log, "/tmp/d2: No space left on device\n");
  assert_contains(log, "/tmp/d3: No space left on device\n");
  assert_fired(r.report, 0, "syscall", work);
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

static void test_syscall_fails_from_the_nth_call(void **state) {
  (void)state;
  struct fault_run r = run_fixture("syscall-nth.yaml", 0);
  json_t *work = node(r.report, "work");
  const char *log = node_log(work);
  assert_contains(log, "/tmp/d1: ok\n/tmp/d2: No space left on device\n"
                       "/tmp/d3: No space left on device\n");
  assert_fired(r.report, 0, "syscall", work);
  assert_verdict(r.report, "passed");
  fault_run_free(&r);
}

/* ---- a fault that cannot fire ----------------------------------------------- */

static void test_unfirable_fault_is_inconclusive(void **state) {
  (void)state;
  struct fault_run r = run_fixture("never-fires.yaml", 3);
  assert_contains(r.out, "SKIP  fault-never-fires");
  assert_contains(r.out, "scenarios: 0 passed, 0 failed, 1 skipped");
  json_t *f = fault_at(r.report, 0, "signal");
  assert_true(json_is_false(json_object_get(f, "fired")));
  assert_null(json_object_get(f, "firedAt"));
  assert_null(json_object_get(f, "node"));
  /* Its expectation held: inconclusive, not passed and not failed. */
  assert_verdict(r.report, "inconclusive");
  assert_contains(req_str(r.report, "verdictReason"), "did not fire");
  assert_string_equal(exit_code(node(r.report, "work")), "0");
  fault_run_free(&r);
}

/* ---- --fault on a plain workflow -------------------------------------------- */

static void test_quick_fault_on_plain_workflow(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *report = test_path(test_temp_dir(), "report.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "--quiet", "--color", "never",
                  "--report", (char *)report, (char *)fixture("workflows/probe.yaml"),
                  "--fault", "work:exit=3", NULL};
  /* The workflow fails (work exits 3): exit status 1, as for any workflow. */
  struct fault_run r = run_exitprobe(argv, report, 1);
  json_t *work = node(r.report, "work");
  assert_string_equal(exit_code(work), "3");
  assert_string_equal(req_str(work, "message"), "main: Error (exit code 3)");
  assert_not_contains(node_log(work), "Doing work...");
  json_t *f = assert_fired(r.report, 0, "exit", work);
  assert_string_equal(req_str(f, "target"), "work");
  assert_contains(req_str(f, "asked"), "exit 3");
  assert_exit_handler(r.report, true, "Failed");
  fault_run_free(&r);
}

/* SCENARIOS.md: "A fault that did not fire makes the run inconclusive,
 * never a silent pass" -- and --fault faults are "checked and carried out
 * exactly like a scenario's".  A quick try whose fault missed must say so
 * and exit 3 (inconclusive), not 0. */
static void test_quick_fault_that_did_not_fire_is_not_a_silent_pass(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *report = test_path(test_temp_dir(), "report.json");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "--quiet", "--color", "never",
                  "--report", (char *)report, (char *)fixture("workflows/probe.yaml"),
                  "--fault", "work:signal=SIGKILL@10s", NULL};
  struct fault_run r = run_exitprobe(argv, report, ANY_VERDICT);
  json_t *f = fault_at(r.report, 0, "signal");
  assert_true(json_is_false(json_object_get(f, "fired")));
  if (strstr(r.out, "did not fire") == NULL && strstr(r.err, "did not fire") == NULL)
    fail_msg("nothing says the fault did not fire:\nstdout:\n%s\nstderr:\n%s", r.out, r.err);
  assert_int_equal(r.status, 3);
  fault_run_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_instead),
      cmocka_unit_test(test_exit_after),
      cmocka_unit_test(test_signal_at_start_sigkill),
      cmocka_unit_test(test_signal_detail_names_the_signal),
      cmocka_unit_test(test_signal_after_sigterm),
      cmocka_unit_test(test_signal_on_output),
      cmocka_unit_test(test_signal_at_start_beats_a_fast_step),
      cmocka_unit_test(test_signal_on_output_fired_means_delivered),
      cmocka_unit_test(test_signal_reaches_every_process_of_the_step),
      cmocka_unit_test(test_hang_ended_by_template_timeout_fault),
      cmocka_unit_test(test_hang_ended_by_workflow_deadline_fault),
      cmocka_unit_test(test_deadline_fault_scaled_by_time_scale),
      cmocka_unit_test(test_fired_deadline_fault_says_when),
      cmocka_unit_test(test_delay),
      cmocka_unit_test(test_freeze),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_pids),
      cmocka_unit_test(test_network_off),
      cmocka_unit_test(test_shutdown_stop),
      cmocka_unit_test(test_shutdown_terminate),
      cmocka_unit_test(test_syscall_every_call_fails_with_enospc),
      cmocka_unit_test(test_syscall_fails_from_the_nth_call),
      cmocka_unit_test(test_unfirable_fault_is_inconclusive),
      cmocka_unit_test(test_quick_fault_on_plain_workflow),
      cmocka_unit_test(test_quick_fault_that_did_not_fire_is_not_a_silent_pass),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
