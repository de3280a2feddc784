/* `exitprobe run` over scenarios as a CI job meets it: one line per
 * scenario, the closing count, the exit statuses 0/1/2/3/4, one report per
 * scenario, JUnit XML, --dry-run, `exitprobe validate`, and the same seed
 * giving the same run. */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static const char *fixture(const char *name) {
  return test_path(test_path(test_data_dir(), "faults"), name);
}

static void assert_contains(const char *text, const char *needle) {
  if (text == NULL || strstr(text, needle) == NULL)
    fail_msg("expected to find \"%s\" in:\n%s", needle, text ? text : "(null)");
}

static void assert_not_contains(const char *text, const char *needle) {
  if (text != NULL && strstr(text, needle) != NULL)
    fail_msg("did not expect \"%s\" in:\n%s", needle, text);
}

static void assert_status(const struct test_cmd_result *r, int want) {
  if (r->exit_status != want)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r->exit_status, want, r->out,
             r->err);
}

/* `exitprobe ARGS...` (NULL-terminated, at most 16). */
static struct test_cmd_result exitprobe(const char *first, ...) __attribute__((sentinel));
static struct test_cmd_result exitprobe(const char *first, ...) {
  char *argv[18] = {(char *)test_exitprobe_bin()};
  size_t n = 1;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && n < 17; a = va_arg(ap, const char *))
    argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  return test_run(argv);
}

/* Lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix) {
  int n = 0;
  size_t len = strlen(prefix);
  for (const char *line = text; line != NULL && *line;) {
    if (strncmp(line, prefix, len) == 0)
      n++;
    const char *end = strchr(line, '\n');
    line = end ? end + 1 : NULL;
  }
  return n;
}

static int count_substrings(const char *text, const char *needle) {
  int n = 0;
  for (const char *at = text; at != NULL && (at = strstr(at, needle)) != NULL; at++)
    n++;
  return n;
}

/* The last non-empty line of text. */
static char *last_line(const char *text) {
  size_t len = strlen(text);
  while (len > 0 && text[len - 1] == '\n')
    len--;
  size_t start = len;
  while (start > 0 && text[start - 1] != '\n')
    start--;
  return strndup(text + start, len - start);
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Scenario files below dir as SCENARIOS.md says `run DIR` finds them:
 * *.yaml / *.yml with a `kind: Scenario` line, not in dot-directories. */
static int count_scenario_files(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    fail_msg("cannot open %s", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(path, &sb) < 0)
      continue;
    if (S_ISDIR(sb.st_mode)) {
      n += count_scenario_files(path);
    } else if (S_ISREG(sb.st_mode) && (has_suffix(path, ".yaml") || has_suffix(path, ".yml"))) {
      char *text = test_read_file(path);
      if (text != NULL && (strncmp(text, "kind: Scenario\n", 15) == 0 ||
                           strstr(text, "\nkind: Scenario\n") != NULL))
        n++;
      free(text);
    }
  }
  closedir(d);
  return n;
}

/* Names of the *.json files in dir; NULL-terminated, *n set.  A missing
 * directory has none. */
static char **json_files(const char *dir, int *n) {
  char **names = calloc(1, sizeof(char *));
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return names;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!has_suffix(e->d_name, ".json"))
      continue;
    names = realloc(names, (size_t)(*n + 2) * sizeof(char *));
    names[(*n)++] = strdup(e->d_name);
    names[*n] = NULL;
  }
  closedir(d);
  return names;
}

static void free_names(char **names) {
  for (char **p = names; p && *p; p++)
    free(*p);
  free(names);
}

static bool dir_is_absent_or_empty(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return true;
  struct dirent *e;
  bool empty = true;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      empty = false;
  closedir(d);
  return empty;
}

static json_t *load_json(const char *path) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (root == NULL)
    fail_msg("%s unreadable: %s", path, jerr.text);
  return root;
}

static const char *req_str(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  if (!json_is_string(v))
    fail_msg("no string '%s'", key);
  return json_string_value(v);
}

/* The shipped library run from the source root, as CI runs it:
 * `cd ROOT && exitprobe run scenarios/ EXTRA...`. */
static struct test_cmd_result run_library(const char *extra1, const char *extra2,
                                          const char *extra3, const char *extra4) {
  char bin[PATH_MAX];
  if (realpath(test_exitprobe_bin(), bin) == NULL)
    fail_msg("exitprobe binary %s not found", test_exitprobe_bin());
  char *argv[] = {"/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh",
                  (char *)test_source_root(), bin, "run", "scenarios/", (char *)extra1,
                  (char *)extra2, (char *)extra3, (char *)extra4, NULL};
  return test_run(argv);
}

/* ---- the shipped library ------------------------------------------------- */

static void test_library_passes_with_one_report_each(void **state) {
  (void)state;
  skip_without_sandbox();
  int n = count_scenario_files(test_path(test_source_root(), "scenarios"));
  assert_true(n > 0);
  char reports[PATH_MAX];
  snprintf(reports, sizeof(reports), "%s/reports", test_temp_dir());
  struct test_cmd_result r = run_library("--report-dir", reports, NULL, NULL);
  assert_status(&r, 0);
  if (count_lines(r.out, "PASS  ") != n)
    fail_msg("%d PASS lines for %d scenarios:\n%s", count_lines(r.out, "PASS  "), n, r.out);
  assert_int_equal(count_lines(r.out, "FAIL"), 0);
  assert_int_equal(count_lines(r.out, "SKIP"), 0);
  assert_int_equal(count_lines(r.out, "ERROR"), 0);
  char want[128];
  snprintf(want, sizeof(want), "scenarios: %d passed, 0 failed, 0 skipped", n);
  char *last = last_line(r.out);
  assert_string_equal(last, want);
  free(last);

  int n_reports = 0;
  char **names = json_files(reports, &n_reports);
  assert_int_equal(n_reports, n);
  for (char **name = names; *name; name++) {
    json_t *report = load_json(test_path(reports, *name));
    const json_t *sc = json_object_get(report, "scenario");
    const char *sc_name = req_str(sc, "name");
    /* DIR/<scenario>.json, and the scenario's PASS line names it. */
    char file[300];
    snprintf(file, sizeof(file), "%s.json", sc_name);
    assert_string_equal(*name, file);
    char line[300];
    snprintf(line, sizeof(line), "PASS  %s ", sc_name);
    assert_contains(r.out, line);
    assert_int_equal(strncmp(req_str(sc, "file"), "scenarios/", 10), 0);
    assert_string_equal(req_str(report, "verdict"), "passed");
    const json_t *results = json_object_get(report, "expectations");
    if (!json_is_array(results) || json_array_size(results) == 0)
      fail_msg("%s: no expectations array", *name);
    size_t i;
    const json_t *res;
    json_array_foreach(results, i, res) {
      assert_true(json_is_true(json_object_get(res, "ok")));
      assert_non_null(json_object_get(res, "path"));
      assert_non_null(json_object_get(res, "expected"));
      assert_true(json_is_integer(json_object_get(res, "line")));
    }
    json_decref(report);
  }
  free_names(names);
  test_cmd_result_free(&r);
}

/* xmllint on file (and against the JUnit subset schema the project
 * states); a skip of this check only, with its reason, without xmllint. */
static void check_xml(const char *file) {
  char *version[] = {"xmllint", "--version", NULL};
  struct test_cmd_result v = test_run(version);
  bool have = v.exit_status == 0;
  test_cmd_result_free(&v);
  if (!have) {
    printf("xmllint not installed: JUnit XML not validated (install libxml2-utils)\n");
    return;
  }
  char *noout[] = {"xmllint", "--noout", (char *)file, NULL};
  struct test_cmd_result r = test_run(noout);
  if (r.exit_status != 0)
    fail_msg("xmllint --noout %s: %s", file, r.err);
  test_cmd_result_free(&r);
  const char *xsd = test_path(test_data_dir(), "scenarios/junit-common.xsd");
  if (access(xsd, R_OK) == 0) {
    char *schema[] = {"xmllint", "--noout", "--schema", (char *)xsd, (char *)file, NULL};
    r = test_run(schema);
    if (r.exit_status != 0)
      fail_msg("xmllint --schema %s %s: %s", xsd, file, r.err);
    test_cmd_result_free(&r);
  }
}

static void test_library_junit(void **state) {
  (void)state;
  skip_without_sandbox();
  int n = count_scenario_files(test_path(test_source_root(), "scenarios"));
  const char *dir = test_temp_dir();
  char junit[PATH_MAX], reports[PATH_MAX];
  snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
  snprintf(reports, sizeof(reports), "%s/reports", dir);
  struct test_cmd_result r = run_library("--junit", junit, "--report-dir", reports);
  assert_status(&r, 0);
  char *xml = test_read_file(junit);
  assert_non_null(xml);
  assert_int_equal(strncmp(xml, "<?xml", 5), 0);
  assert_int_equal(count_substrings(xml, "<testcase "), n);
  assert_int_equal(count_substrings(xml, "<testsuite "), n);
  assert_int_equal(count_substrings(xml, "<failure"), 0);
  assert_int_equal(count_substrings(xml, "<error"), 0);
  assert_int_equal(count_substrings(xml, "<skipped"), 0);
  assert_contains(xml, "<testcase name=\"seed-work-fails\"");
  assert_contains(xml, "<testcase name=\"seed-terminate\"");
  check_xml(junit);
  free(xml);
  test_cmd_result_free(&r);
}

/* ---- a violated expectation ----------------------------------------------- */

static void test_wrong_expectation_exits_1_and_says_what(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *dir = test_temp_dir();
  char junit[PATH_MAX];
  snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
  const char *scenario = fixture("cli/wrong-expectation.yaml");
  struct test_cmd_result r =
      exitprobe("run", "--report-dir", dir, "--junit", junit, scenario, NULL);
  assert_status(&r, 1);
  assert_contains(r.out, "FAIL  cli-wrong-expectation ");
  /* file:line:col, the expectation's path, expected and actual values. */
  char want[PATH_MAX + 100];
  snprintf(want, sizeof(want), "%s:12:39: nodes.work.exitCode: expected 137, got 1\n", scenario);
  assert_contains(r.out, want);
  char *last = last_line(r.out);
  assert_string_equal(last, "scenarios: 0 passed, 1 failed, 0 skipped");
  free(last);

  json_t *report = load_json(test_path(dir, "cli-wrong-expectation.json"));
  assert_string_equal(req_str(report, "verdict"), "failed");
  const json_t *results = json_object_get(report, "expectations");
  size_t i;
  const json_t *res;
  int broken = 0;
  json_array_foreach(results, i, res) {
    if (json_is_true(json_object_get(res, "ok")))
      continue;
    broken++;
    assert_string_equal(req_str(res, "path"), "nodes.work.exitCode");
    assert_int_equal(json_integer_value(json_object_get(res, "expected")), 137);
    assert_int_equal(json_integer_value(json_object_get(res, "actual")), 1);
    assert_int_equal(json_integer_value(json_object_get(res, "line")), 12);
    assert_int_equal(json_integer_value(json_object_get(res, "column")), 39);
  }
  assert_int_equal(broken, 1);
  assert_true(json_array_size(results) == 3);
  json_decref(report);

  char *xml = test_read_file(junit);
  assert_non_null(xml);
  assert_int_equal(count_substrings(xml, "<failure"), 1);
  assert_contains(xml, "nodes.work.exitCode: expected 137, got 1");
  check_xml(junit);
  free(xml);
  test_cmd_result_free(&r);
}

/* A violation is a finding even when another scenario is inconclusive. */
static void test_failure_takes_precedence_over_inconclusive(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *dir = test_temp_dir();
  struct test_cmd_result r = exitprobe("run", "--report-dir", dir, fixture("never-fires.yaml"),
                                       fixture("cli/wrong-expectation.yaml"), NULL);
  assert_status(&r, 1);
  assert_contains(r.out, "SKIP  fault-never-fires ");
  assert_contains(r.out, "FAIL  cli-wrong-expectation ");
  char *last = last_line(r.out);
  assert_string_equal(last, "scenarios: 0 passed, 1 failed, 1 skipped");
  free(last);
  test_cmd_result_free(&r);
}

/* JUnit for every outcome: a failure with the expectation that broke, an
 * inconclusive scenario as skipped with why, and the seed in effect as a
 * property (SCENARIOS.md's example: <property name="seed" value="42"/>). */
static void test_junit_outcomes_and_seed(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *dir = test_temp_dir();
  char junit[PATH_MAX];
  snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
  struct test_cmd_result r =
      exitprobe("run", "--report-dir", dir, "--junit", junit, fixture("never-fires.yaml"),
                fixture("cli/wrong-expectation.yaml"), fixture("seeded.yaml"), NULL);
  assert_status(&r, 1);
  char *xml = test_read_file(junit);
  assert_non_null(xml);
  assert_int_equal(count_substrings(xml, "<testcase "), 3);
  assert_int_equal(count_substrings(xml, "<failure "), 1);
  assert_contains(xml, "<failure message=\"nodes.work.exitCode: expected 137, got 1\" "
                       "type=\"expectation\">");
  assert_contains(xml, "<skipped message=\"fault did not fire: send SIGKILL to 'work' after "
                       "10s\"/>");
  check_xml(junit);
  assert_contains(xml, "<property name=\"seed\" value=\"42\"/>");
  free(xml);
  test_cmd_result_free(&r);
}

/* ---- bad input, nothing to do ---------------------------------------------- */

static void test_bad_scenario_in_directory_runs_nothing(void **state) {
  (void)state;
  const char *dir = test_temp_dir();
  char reports[PATH_MAX], junit[PATH_MAX];
  snprintf(reports, sizeof(reports), "%s/reports", dir);
  snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
  const char *bad_dir = fixture("cli/bad-dir");
  struct test_cmd_result r =
      exitprobe("run", "--report-dir", reports, "--junit", junit, bad_dir, NULL);
  assert_status(&r, 2);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "%s/02-bad.yaml:9:5: error:", bad_dir);
  assert_contains(r.err, want);
  assert_contains(r.err, "exitHandlr");
  /* Everything is checked before anything runs: the good scenarios on
   * either side of the bad one did not run either. */
  assert_not_contains(r.out, "PASS");
  assert_not_contains(r.out, "scenarios:");
  assert_true(dir_is_absent_or_empty(reports));
  assert_int_equal(access(junit, F_OK), -1);
  test_cmd_result_free(&r);
}

static void test_nothing_to_exercise_exits_4(void **state) {
  (void)state;
  const char *empty = test_temp_dir();
  struct test_cmd_result r = exitprobe("run", empty, NULL);
  assert_status(&r, 4);
  assert_contains(r.err, "nothing was exercised");
  test_cmd_result_free(&r);
  /* Workflows below a directory are not scenarios: still nothing to run. */
  r = exitprobe("run", fixture("workflows"), NULL);
  assert_status(&r, 4);
  test_cmd_result_free(&r);
}

/* ---- --dry-run --------------------------------------------------------------- */

static void test_dry_run_prints_and_runs_nothing(void **state) {
  (void)state;
  char reports[PATH_MAX];
  snprintf(reports, sizeof(reports), "%s/reports", test_temp_dir());
  struct test_cmd_result r = exitprobe("run", "--dry-run", "--report-dir", reports,
                                       fixture("shutdown-stop.yaml"), fixture("oom.yaml"), NULL);
  assert_status(&r, 0);
  assert_contains(r.out, "would inject: hang 'work' (it never ends by itself)\n");
  assert_contains(r.out, "would inject: stop the workflow after 300ms\n");
  assert_contains(r.out, "would inject: limit 'work' to 33554432 bytes of memory\n");
  assert_int_equal(count_substrings(r.out, "would inject"), 3);
  assert_not_contains(r.out, "PASS");
  assert_true(dir_is_absent_or_empty(reports));
  test_cmd_result_free(&r);
}

/* `exitprobe run wf.yaml --dry-run --fault work:exit=3`: --help says
 * --dry-run prints what would be injected where, and --fault is how faults
 * are given for a plain workflow. */
static void test_dry_run_with_quick_faults(void **state) {
  (void)state;
  char report[PATH_MAX];
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());
  struct test_cmd_result r = exitprobe("run", "--dry-run", "--report", report,
                                       fixture("workflows/probe.yaml"), "--fault", "work:exit=3",
                                       NULL);
  assert_status(&r, 0);
  assert_contains(r.out, "would inject: exit 3 instead of running 'work'");
  assert_int_equal(access(report, F_OK), -1);
  test_cmd_result_free(&r);
}

/* ---- validate ------------------------------------------------------------------- */

static void test_validate_good_and_bad(void **state) {
  (void)state;
  const char *good = fixture("shutdown-stop.yaml");
  const char *wrong = fixture("cli/wrong-expectation.yaml"); /* valid; only wrong when run */
  const char *workflow = fixture("workflows/probe.yaml");
  struct test_cmd_result r = exitprobe("validate", good, wrong, workflow, NULL);
  assert_status(&r, 0);
  assert_int_equal(count_substrings(r.out, ": valid scenario"), 2);
  assert_int_equal(count_substrings(r.out, ": valid workflow"), 1);
  test_cmd_result_free(&r);

  char bad[PATH_MAX];
  snprintf(bad, sizeof(bad), "%s/02-bad.yaml", fixture("cli/bad-dir"));
  r = exitprobe("validate", bad, NULL);
  assert_status(&r, 2);
  char want[PATH_MAX + 32];
  snprintf(want, sizeof(want), "%s:9:5: error:", bad);
  assert_contains(r.err, want);
  test_cmd_result_free(&r);

  /* One bad file among good ones: 2, and the good ones are still judged. */
  r = exitprobe("validate", good, bad, workflow, NULL);
  assert_status(&r, 2);
  assert_contains(r.err, want);
  assert_int_equal(count_substrings(r.out, ": valid "), 2);
  test_cmd_result_free(&r);
}

/* ---- the same seed, the same run ------------------------------------------------ */

struct seeded_run {
  int status;
  json_t *report;
};

static struct seeded_run run_seeded(void) {
  const char *report = test_path(test_temp_dir(), "report.json");
  struct test_cmd_result r =
      exitprobe("run", "--report", report, fixture("seeded.yaml"), NULL);
  struct seeded_run s = {.status = r.exit_status};
  if (r.exit_status != 1 && r.exit_status != 0 && r.exit_status != 3)
    fail_msg("exit status %d\nstdout:\n%s\nstderr:\n%s", r.exit_status, r.out, r.err);
  s.report = load_json(report);
  test_cmd_result_free(&r);
  return s;
}

/* "1 1 0": fired or not, per fault. */
static void fired_pattern(const json_t *report, char *out, size_t size) {
  out[0] = '\0';
  size_t i;
  const json_t *f;
  json_array_foreach(json_object_get(report, "faults"), i, f) {
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s%d", i ? " " : "",
             json_is_true(json_object_get(f, "fired")));
  }
}

static const char *work_log(const json_t *report) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  const json_t *node;
  json_object_foreach((json_t *)nodes, id, node) {
    const json_t *d = json_object_get(node, "displayName");
    if (json_is_string(d) && strcmp(json_string_value(d), "work") == 0) {
      const json_t *log = json_object_get(node, "log");
      return json_is_string(log) ? json_string_value(log) : "";
    }
  }
  fail_msg("no node 'work' in the report");
  return NULL;
}

static void test_same_seed_same_verdict_and_faults(void **state) {
  (void)state;
  skip_without_sandbox();
  struct seeded_run a = run_seeded(), b = run_seeded();
  assert_int_equal(a.status, b.status);
  assert_string_equal(req_str(a.report, "verdict"), req_str(b.report, "verdict"));
  char pa[64], pb[64];
  fired_pattern(a.report, pa, sizeof(pa));
  fired_pattern(b.report, pb, sizeof(pb));
  assert_string_equal(pa, pb);
  /* The delay of cleanup fired, the SIGKILL 10 s into it could not: an
   * inconclusive scenario, both times. */
  assert_int_equal(strlen(pa), 5);
  assert_int_equal(pa[2], '1');
  assert_int_equal(pa[4], '0');
  assert_string_equal(req_str(a.report, "verdict"), "inconclusive");
  assert_int_equal(a.status, 3);
  for (int k = 0; k < 2; k++) {
    const json_t *run = json_object_get(k ? b.report : a.report, "run");
    assert_int_equal(json_integer_value(json_object_get(run, "seed")), 42);
  }
  json_decref(a.report);
  json_decref(b.report);
}

/* The randomised syscall fault (probability 0.5 from seed 42) fails the
 * same mkdir calls run after run. */
static void test_same_seed_same_syscall_draws(void **state) {
  (void)state;
  skip_without_sandbox();
  struct seeded_run a = run_seeded(), b = run_seeded();
  const char *la = work_log(a.report), *lb = work_log(b.report);
  assert_int_equal(count_lines(la, "d"), 16);
  /* Both outcomes occur (16 draws at p = 0.5), and in the same places. */
  assert_contains(la, ": ok\n");
  assert_contains(la, ": No space left on device\n");
  assert_string_equal(la, lb);
  assert_true(json_is_true(json_object_get(json_array_get(json_object_get(a.report, "faults"), 0),
                                           "fired")));
  json_decref(a.report);
  json_decref(b.report);
}

/* The log of the Pod node displayed as name, "" when it printed nothing. */
static const char *pod_log(const json_t *report, const char *name) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  const json_t *node;
  json_object_foreach((json_t *)nodes, id, node) {
    const json_t *d = json_object_get(node, "displayName");
    if (json_is_string(d) && strcmp(json_string_value(d), name) == 0) {
      const json_t *log = json_object_get(node, "log");
      return json_is_string(log) ? json_string_value(log) : "";
    }
  }
  fail_msg("no node '%s' in the report", name);
  return NULL;
}

/* Two steps at once, each with its own randomised syscall fault: which of
 * a step's calls fail must depend on the seed and that step's own calls,
 * not on how the two steps' calls interleaved this time. */
static void test_same_seed_same_draws_with_parallel_steps(void **state) {
  (void)state;
  skip_without_sandbox();
  json_t *first = NULL;
  for (int k = 0; k < 3; k++) {
    const char *report = test_path(test_temp_dir(), "report.json");
    struct test_cmd_result r =
        exitprobe("run", "--report", report, fixture("seeded-parallel.yaml"), NULL);
    assert_status(&r, 0);
    test_cmd_result_free(&r);
    json_t *now = load_json(report);
    for (const char *const *step = (const char *const[]){"a", "b", NULL}; *step; step++) {
      const char *log = pod_log(now, *step);
      assert_int_equal(count_lines(log, "d"), 16);
      assert_contains(log, ": ok\n");
      assert_contains(log, ": No space left on device\n");
      if (first != NULL && strcmp(log, pod_log(first, *step)) != 0)
        fail_msg("seed 7, run %d: step %s failed other calls than in run 0:\n%s\nvs\n%s", k,
                 *step, log, pod_log(first, *step));
    }
    if (first == NULL)
      first = now;
    else
      json_decref(now);
  }
  json_decref(first);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_library_passes_with_one_report_each),
      cmocka_unit_test(test_library_junit),
      cmocka_unit_test(test_wrong_expectation_exits_1_and_says_what),
      cmocka_unit_test(test_failure_takes_precedence_over_inconclusive),
      cmocka_unit_test(test_junit_outcomes_and_seed),
      cmocka_unit_test(test_bad_scenario_in_directory_runs_nothing),
      cmocka_unit_test(test_nothing_to_exercise_exits_4),
      cmocka_unit_test(test_dry_run_prints_and_runs_nothing),
      cmocka_unit_test(test_dry_run_with_quick_faults),
      cmocka_unit_test(test_validate_good_and_bad),
      cmocka_unit_test(test_same_seed_same_verdict_and_faults),
      cmocka_unit_test(test_same_seed_same_syscall_draws),
      cmocka_unit_test(test_same_seed_same_draws_with_parallel_steps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
