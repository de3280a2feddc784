/* Expectations against a report (reports/expectations.c) and the JUnit XML
 * written from the results (reports/junit.c). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "expectations.h"
#include "junit.h"
#include "test_helpers.h"
#include "yaml_doc.h"

/* A run of a seed-like workflow: work killed by SIGKILL, the exit handler
 * ran, a retried step that succeeded on its second attempt, an OOM kill. */
static const char report_text[] =
    "{\"apiVersion\": \"exitprobe/v1\", \"kind\": \"Report\","
    " \"status\": {\"phase\": \"Failed\", \"message\": \"child 'wf-1' failed\","
    "  \"nodes\": {"
    "   \"wf\": {\"id\": \"wf\", \"name\": \"wf\", \"displayName\": \"wf\", \"type\": \"Steps\","
    "     \"templateName\": \"main\", \"phase\": \"Failed\", \"message\": \"child 'wf-1' failed\","
    "     \"children\": [\"wf-0\"]},"
    "   \"wf-0\": {\"id\": \"wf-0\", \"name\": \"wf[0]\", \"displayName\": \"[0]\","
    "     \"type\": \"StepGroup\", \"phase\": \"Failed\"},"
    "   \"wf-1\": {\"id\": \"wf-1\", \"name\": \"wf[0].work\", \"displayName\": \"work\","
    "     \"type\": \"Pod\", \"templateName\": \"do-work\", \"phase\": \"Failed\","
    "     \"message\": \"main: Error (exit code 137): signal: killed\","
    "     \"outputs\": {\"exitCode\": \"137\"}, \"log\": \"Doing work...\\n\","
    "     \"signal\": \"SIGKILL\"},"
    "   \"wf-2\": {\"id\": \"wf-2\", \"name\": \"wf[0].flaky\", \"displayName\": \"flaky\","
    "     \"type\": \"Retry\", \"templateName\": \"flaky-t\", \"phase\": \"Succeeded\","
    "     \"children\": [\"wf-3\", \"wf-4\"]},"
    "   \"wf-3\": {\"id\": \"wf-3\", \"name\": \"wf[0].flaky(0)\", \"displayName\": \"flaky(0)\","
    "     \"type\": \"Pod\", \"templateName\": \"flaky-t\", \"phase\": \"Failed\","
    "     \"message\": \"main: Error (exit code 1)\", \"outputs\": {\"exitCode\": \"1\"},"
    "     \"log\": \"try 0\\n\"},"
    "   \"wf-4\": {\"id\": \"wf-4\", \"name\": \"wf[0].flaky(1)\", \"displayName\": \"flaky(1)\","
    "     \"type\": \"Pod\", \"templateName\": \"flaky-t\", \"phase\": \"Succeeded\","
    "     \"outputs\": {\"exitCode\": \"0\"}, \"log\": \"try 1\\n\"},"
    "   \"wf-5\": {\"id\": \"wf-5\", \"name\": \"wf[0].hog\", \"displayName\": \"hog\","
    "     \"type\": \"Pod\", \"templateName\": \"hog\", \"phase\": \"Failed\","
    "     \"message\": \"main: OOMKilled (exit code 137)\", \"outputs\": {\"exitCode\": \"137\"},"
    "     \"oomKilled\": true},"
    "   \"wf-6\": {\"id\": \"wf-6\", \"name\": \"wf.onExit\", \"displayName\": \"wf.onExit\","
    "     \"type\": \"Pod\", \"templateName\": \"cleanup\", \"phase\": \"Succeeded\","
    "     \"nodeFlag\": {\"hooked\": true}, \"outputs\": {\"exitCode\": \"0\"},"
    "     \"log\": \"Workflow status: Failed\\nCleaning up resources...\\n"
    "Sending failure notification\\n\"}"
    "  }},"
    " \"exitHandler\": {\"declared\": true, \"ran\": true, \"runs\": 1, \"phase\": \"Succeeded\","
    "  \"workflowStatus\": \"Failed\", \"by\": \"controller\", \"node\": \"wf-6\"}}";

static json_t *report(void) {
  json_error_t jerr;
  json_t *r = json_loads(report_text, 0, &jerr);
  if (r == NULL)
    fail_msg("test report: %s at %d:%d", jerr.text, jerr.line, jerr.column);
  return r;
}

/* Validate and evaluate an `expect` mapping written as YAML. */
static json_t *evaluate_with(const char *yaml, const json_t *rep) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  assert_int_equal(ydoc_load_buffer("s.yaml", yaml, strlen(yaml), NULL, &doc, &err), 0);
  if (expectations_validate("s.yaml", doc->root, &err) < 0) {
    ep_error_print(err, stderr);
    fail_msg("the expectations should be valid");
  }
  json_t *results = NULL;
  assert_int_equal(expectations_evaluate("s.yaml", doc->root, rep, &results, &err), 0);
  assert_null(err);
  assert_true(json_is_array(results));
  ydoc_free(doc);
  return results;
}

static json_t *evaluate(const char *yaml) {
  json_t *rep = report();
  json_t *results = evaluate_with(yaml, rep);
  json_decref(rep);
  return results;
}

static const json_t *result_at(const json_t *results, size_t i) {
  const json_t *r = json_array_get(results, i);
  if (r == NULL)
    fail_msg("no result %zu (have %zu)", i, json_array_size(results));
  return r;
}

static void assert_result(const json_t *results, size_t i, const char *path, bool ok,
                          const char *text) {
  const json_t *r = result_at(results, i);
  char *got = expectation_result_text(r);
  if (strcmp(json_string_value(json_object_get(r, "path")), path) != 0 ||
      json_is_true(json_object_get(r, "ok")) != ok || (text != NULL && strcmp(got, text) != 0))
    fail_msg("result %zu: got '%s' ok=%d, want path %s ok=%d text '%s'", i, got,
             json_is_true(json_object_get(r, "ok")), path, ok, text ? text : "(any)");
  free(got);
}

static void assert_json(const json_t *value, const char *want) {
  json_error_t jerr;
  json_t *w = json_loads(want, JSON_DECODE_ANY, &jerr);
  assert_non_null(w);
  if (!json_equal(value, w)) {
    char *got = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    fail_msg("got %s, want %s", got ? got : "NULL", want);
  }
  json_decref(w);
}

/* ---- evaluation --------------------------------------------------------- */

static void test_issue_example_passes(void **state) {
  (void)state;
  json_t *results = evaluate("workflow: {phase: Failed}\n"
                             "exitHandler: {ran: true, runs: 1, workflowStatus: Failed}\n"
                             "nodes:\n"
                             "  work: {phase: Failed, exitCode: 137, message: {contains: signal}}\n"
                             "logs:\n"
                             "  cleanup: {contains: [\"Sending failure notification\"],"
                             " notContains: [\"Succeeded\"]}\n");
  assert_int_equal(json_array_size(results), 9);
  for (size_t i = 0; i < json_array_size(results); i++) {
    if (!json_is_true(json_object_get(result_at(results, i), "ok"))) {
      char *text = expectation_result_text(result_at(results, i));
      fail_msg("should hold: %s", text);
    }
  }
  assert_json(result_at(results, 0),
              "{\"path\": \"workflow.phase\", \"expected\": \"Failed\", \"actual\": \"Failed\","
              " \"ok\": true, \"line\": 1, \"column\": 19}");
  assert_result(results, 1, "exitHandler.ran", true, "exitHandler.ran: expected true, got true");
  assert_result(results, 2, "exitHandler.runs", true, NULL);
  assert_result(results, 3, "exitHandler.workflowStatus", true, NULL);
  assert_result(results, 4, "nodes.work.phase", true, NULL);
  /* Argo's string "137" and the scenario's integer 137 are the same exit code. */
  assert_json(json_object_get(result_at(results, 5), "actual"), "137");
  assert_json(json_object_get(result_at(results, 5), "expected"), "137");
  assert_json(json_object_get(result_at(results, 6), "expected"), "{\"contains\": \"signal\"}");
  assert_result(results, 7, "logs.cleanup", true, NULL);
  assert_json(json_object_get(result_at(results, 8), "expected"),
              "{\"notContains\": \"Succeeded\"}");
  assert_string_equal(expectations_verdict(results, false), "passed");
  assert_int_equal(expectations_failed_count(results), 0);
  json_decref(results);
}

static void test_failure_reports_path_expected_actual(void **state) {
  (void)state;
  json_t *results = evaluate("nodes:\n  work: {exitCode: 1, phase: Succeeded}\n"
                             "workflow: {phase: Succeeded}\n");
  assert_int_equal(json_array_size(results), 3);
  const json_t *r = result_at(results, 0);
  assert_json(r, "{\"path\": \"nodes.work.exitCode\", \"expected\": 1, \"actual\": 137,"
                 " \"ok\": false, \"line\": 2, \"column\": 20}");
  assert_result(results, 0, "nodes.work.exitCode", false,
                "nodes.work.exitCode: expected 1, got 137");
  assert_result(results, 1, "nodes.work.phase", false,
                "nodes.work.phase: expected \"Succeeded\", got \"Failed\"");
  assert_result(results, 2, "workflow.phase", false,
                "workflow.phase: expected \"Succeeded\", got \"Failed\"");
  assert_string_equal(expectations_verdict(results, false), "failed");
  assert_int_equal(expectations_failed_count(results), 3);
  json_decref(results);
}

static void test_missing_node(void **state) {
  (void)state;
  json_t *results = evaluate("nodes:\n  nope: {phase: Failed, attempts: 0}\n"
                             "logs:\n  nope: {notContains: x}\n");
  assert_int_equal(json_array_size(results), 3);
  for (size_t i = 0; i < 3; i++) {
    const json_t *r = result_at(results, i);
    /* Even attempts: 0 and notContains fail: the target itself is wrong. */
    assert_false(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_null(json_object_get(r, "actual")));
  }
  assert_result(results, 0, "nodes.nope.phase", false,
                "nodes.nope.phase: expected \"Failed\", got no node matches 'nope' (by "
                "displayName, templateName or name)");
  assert_result(results, 2, "logs.nope", false, NULL);
  json_decref(results);
}

static void test_globs_and_names(void **state) {
  (void)state;
  json_t *results = evaluate("nodes:\n"
                             "  \"*.onExit\": {phase: Succeeded, exitCode: 0}\n"
                             "  do-*: {exitCode: 137}\n"
                             "  \"wf[0].work\": {phase: Failed}\n"
                             "  \"wf\\\\[0\\\\].w*\": {phase: Failed}\n"
                             "  cleanup: {phase: Succeeded}\n"
                             "  main: {phase: Failed}\n"
                             "  \"[[]0]\": {phase: Failed}\n");
  assert_int_equal(json_array_size(results), 8);
  for (size_t i = 0; i < 8; i++) {
    char *text = expectation_result_text(result_at(results, i));
    if (!json_is_true(json_object_get(result_at(results, i), "ok")))
      fail_msg("should hold: %s", text);
    free(text);
  }
  /* A target with a dot is quoted in the path, as jq writes it. */
  assert_result(results, 0, "nodes.\"*.onExit\".phase", true, NULL);
  json_decref(results);
}

static void test_several_nodes_must_all_hold(void **state) {
  (void)state;
  /* "*" selects every Pod node: five of them, not all Failed. */
  json_t *results = evaluate("nodes:\n  \"*\": {phase: Failed}\n  flaky-t: {phase: Failed}\n");
  const json_t *r = result_at(results, 0);
  assert_false(json_is_true(json_object_get(r, "ok")));
  assert_json(json_object_get(r, "actual"),
              "[\"Failed\", \"Failed\", \"Succeeded\", \"Failed\", \"Succeeded\"]");
  /* flaky-t names the Retry node and its two pods: the pods are checked. */
  assert_json(json_object_get(result_at(results, 1), "actual"), "[\"Failed\", \"Succeeded\"]");
  json_decref(results);

  results = evaluate("nodes:\n  \"*\": {message: {notContains: Segmentation}}\n");
  assert_true(json_is_true(json_object_get(result_at(results, 0), "ok")));
  json_decref(results);
}

static void test_matchers(void **state) {
  (void)state;
  json_t *results = evaluate(
      "workflow: {message: {matches: \"^child '.*' failed$\"}}\n"         /* 0 ok */
      "exitHandler: {runs: {atLeast: 1, atMost: 1}}\n"                    /* 1, 2 ok */
      "logs:\n"
      "  cleanup: {contains: nope, notContains: Failed,"                  /* 3, 4 fail */
      " matches: [\"^Sending\", \"^Cleaning up resources\\\\.\\\\.\\\\.$\", \"^resources\"]}\n"
      "nodes:\n"
      "  \"*.onExit\": {message: \"\", exitCode: {atMost: 0}}\n"          /* 8, 9 ok */
      "  work: {exitCode: {atLeast: 138}}\n"                              /* 10 fail */
      "  hog: {message: {matches: OOMKilled}}\n");                         /* 11 ok */
  assert_int_equal(json_array_size(results), 12);
  assert_result(results, 0, "workflow.message", true, NULL);
  assert_result(results, 1, "exitHandler.runs", true, "exitHandler.runs: expected at least 1, got 1");
  assert_result(results, 2, "exitHandler.runs", true, "exitHandler.runs: expected at most 1, got 1");
  assert_result(results, 3, "logs.cleanup", false,
                "logs.cleanup: expected to contain \"nope\", got \"Workflow status: "
                "Failed\\nCleaning up resources...\\nSending failure notification\\n\"");
  assert_result(results, 4, "logs.cleanup", false,
                "logs.cleanup: expected not to contain \"Failed\", got \"Workflow status: "
                "Failed\\nCleaning up resources...\\nSending failure notification\\n\"");
  /* Regexes work per line: ^ and $ at line breaks. */
  assert_result(results, 5, "logs.cleanup", true, NULL);
  assert_result(results, 6, "logs.cleanup", true, NULL);
  assert_result(results, 7, "logs.cleanup", false, NULL);
  char *text = expectation_result_text(result_at(results, 7));
  assert_non_null(strstr(text, "expected to match /^resources/, got"));
  free(text);
  assert_result(results, 8, "nodes.\"*.onExit\".message", true, NULL);
  assert_result(results, 9, "nodes.\"*.onExit\".exitCode", true, NULL);
  assert_result(results, 10, "nodes.work.exitCode", false,
                "nodes.work.exitCode: expected at least 138, got 137");
  assert_result(results, 11, "nodes.hog.message", true, NULL);
  assert_int_equal(expectations_failed_count(results), 4);
  json_decref(results);
}

static void test_retries_and_oom(void **state) {
  (void)state;
  json_t *results = evaluate("nodes:\n"
                             "  flaky: {attempts: 2, phase: Succeeded, exitCode: 0}\n"
                             "  \"flaky(0)\": {exitCode: 1, attempts: {atMost: 1}}\n"
                             "  hog: {oomKilled: true, exitCode: 137}\n"
                             "  work: {oomKilled: false, attempts: 1}\n"
                             "logs:\n"
                             "  flaky: {contains: [\"try 0\", \"try 1\"]}\n");
  assert_int_equal(json_array_size(results), 11);
  for (size_t i = 0; i < 11; i++) {
    char *text = expectation_result_text(result_at(results, i));
    if (!json_is_true(json_object_get(result_at(results, i), "ok")))
      fail_msg("should hold: %s", text);
    free(text);
  }
  json_decref(results);

  results = evaluate("nodes:\n  work: {oomKilled: true}\n  flaky: {attempts: 1}\n");
  assert_result(results, 0, "nodes.work.oomKilled", false,
                "nodes.work.oomKilled: expected true, got false");
  assert_result(results, 1, "nodes.flaky.attempts", false,
                "nodes.flaky.attempts: expected 1, got 2");
  json_decref(results);
}

static void test_exit_handler_absent(void **state) {
  (void)state;
  /* A terminated run: the handler never started, the report says so. */
  json_t *rep = report();
  json_object_set_new(rep, "exitHandler",
                      json_pack("{s:b, s:b, s:i, s:s}", "declared", 1, "ran", 0, "runs", 0, "by",
                                "none"));
  json_t *results = evaluate_with("exitHandler: {ran: false, runs: 0, by: none, phase: Succeeded}\n",
                                  rep);
  assert_result(results, 0, "exitHandler.ran", true, NULL);
  assert_result(results, 1, "exitHandler.runs", true, NULL);
  assert_result(results, 2, "exitHandler.by", true, NULL);
  assert_result(results, 3, "exitHandler.phase", false,
                "exitHandler.phase: expected \"Succeeded\", got null");
  json_decref(results);
  json_decref(rep);
}

static void test_idempotent(void **state) {
  (void)state;
  json_t *rep = report();
  json_object_set_new(
      rep, "idempotency",
      json_pack("{s:b, s:b, s:b, s:[{s:s, s:s}, {s:s, s:s}]}", "checked", 1, "conclusive", 1,
                "idempotent", 0, "changes", "path", "books/counter", "change", "changed",
                "path", "books/new", "change", "added"));
  json_t *results = evaluate_with("exitHandler: {idempotent: true}\n", rep);
  /* The failure names each file the second run touched. */
  assert_result(results, 0, "exitHandler.idempotent", false,
                "exitHandler.idempotent: expected true, got false: books/counter changed; "
                "books/new added");
  json_decref(results);
  results = evaluate_with("exitHandler: {idempotent: false}\n", rep);
  assert_result(results, 0, "exitHandler.idempotent", true, NULL);
  json_decref(results);
  /* Inconclusive: no result at all (the scenario says why, and is inconclusive). */
  json_object_set_new(rep, "idempotency",
                      json_pack("{s:b, s:b, s:n}", "checked", 1, "conclusive", 0, "idempotent"));
  results = evaluate_with("exitHandler: {idempotent: true}\n", rep);
  assert_int_equal(json_array_size(results), 0);
  json_decref(results);
  json_decref(rep);
}

static void test_long_values_are_shortened(void **state) {
  (void)state;
  json_t *rep = report();
  size_t n = 100000;
  char *big = malloc(n + 1);
  assert_non_null(big);
  memset(big, 'x', n);
  memcpy(big + 10, "\xc3\xa9\xc3\xa9\xc3\xa9", 6); /* é: must not be cut in half */
  big[n] = '\0';
  json_t *work = json_object_get(json_object_get(json_object_get(rep, "status"), "nodes"), "wf-1");
  json_object_set_new(work, "log", json_string(big));
  json_t *results = evaluate_with("logs:\n  work: {contains: needle}\n", rep);
  const json_t *r = result_at(results, 0);
  const char *actual = json_string_value(json_object_get(r, "actual"));
  assert_non_null(actual);
  assert_true(strlen(actual) < 4200);
  assert_non_null(strstr(actual, "[100000 bytes in all]"));
  char *text = expectation_result_text(r);
  assert_true(strlen(text) < 400);
  assert_non_null(strstr(text, "logs.work: expected to contain \"needle\", got \"xxxxxxxxxx"));
  free(text);
  json_decref(results);
  free(big);
  json_decref(rep);
}

static void test_verdicts(void **state) {
  (void)state;
  json_t *none = json_array();
  assert_string_equal(expectations_verdict(none, false), "passed");
  assert_string_equal(expectations_verdict(none, true), "inconclusive");
  json_t *passing = evaluate("workflow: {phase: Failed}\n");
  assert_string_equal(expectations_verdict(passing, false), "passed");
  assert_string_equal(expectations_verdict(passing, true), "inconclusive");
  json_t *failing = evaluate("workflow: {phase: Succeeded}\n");
  /* A broken promise outranks a fault that did not fire. */
  assert_string_equal(expectations_verdict(failing, false), "failed");
  assert_string_equal(expectations_verdict(failing, true), "failed");
  json_t *results = NULL;
  ep_error *err = NULL;
  assert_int_equal(expectations_evaluate("s.yaml", NULL, passing, &results, &err), 0);
  assert_int_equal(json_array_size(results), 0);
  json_decref(results);
  json_decref(none);
  json_decref(passing);
  json_decref(failing);
}

/* ---- JUnit -------------------------------------------------------------- */

/* Just enough XML to catch what an escaping bug would produce: unbalanced or
 * crossed tags, a raw '<' or '&' in text, bytes XML 1.0 forbids. */
static const char *xml_problem(const char *doc) {
  const char *stack[32];
  size_t depth = 0, lens[32];
  const char *p = doc;
  if (strncmp(p, "<?xml ", 6) != 0)
    return "no XML declaration";
  p = strstr(p, "?>") + 2;
  while (*p != '\0') {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 && c != '\n' && c != '\t' && c != '\r')
      return "a control character";
    if (c == '&') {
      size_t n = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz#0123456789");
      if (p[1 + n] != ';' || n == 0)
        return "a bare '&'";
      p += n + 2;
      continue;
    }
    if (c == '>')
      return "a bare '>' in text";
    if (c != '<') {
      p++;
      continue;
    }
    const char *end = strchr(p, '>');
    if (end == NULL)
      return "an unterminated tag";
    for (const char *q = p + 1; q < end; q++)
      if (*q == '<')
        return "a '<' inside a tag";
    bool closing = p[1] == '/', empty = end[-1] == '/';
    const char *name = p + (closing ? 2 : 1);
    size_t len = strcspn(name, " />");
    if (closing) {
      if (depth == 0 || lens[depth - 1] != len || strncmp(stack[depth - 1], name, len) != 0)
        return "a closing tag that does not match";
      depth--;
    } else if (!empty) {
      if (depth == 32)
        return "too deep";
      stack[depth] = name;
      lens[depth++] = len;
    }
    p = end + 1;
  }
  return depth == 0 ? NULL : "an unclosed element";
}

static char *find_in_path(const char *prog) {
  const char *path = getenv("PATH");
  char *copy = strdup(path ? path : "/usr/bin:/bin");
  char *found = NULL, *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir != NULL && found == NULL;
       dir = strtok_r(NULL, ":", &save)) {
    char *candidate = NULL;
    if (asprintf(&candidate, "%s/%s", dir, prog) < 0)
      abort();
    if (access(candidate, X_OK) == 0)
      found = candidate;
    else
      free(candidate);
  }
  free(copy);
  return found;
}

struct junit_fixture {
  json_t *passing, *failing;
  struct junit_case cases[4];
  struct junit_property props[2];
};

static void junit_cases(struct junit_fixture *fx) {
  memset(fx, 0, sizeof(*fx));
  fx->passing = evaluate("workflow: {phase: Failed}\nexitHandler: {ran: true}\n");
  fx->failing = evaluate("nodes:\n  work: {exitCode: 1, phase: Failed}\n"
                         "logs:\n  cleanup: {notContains: Failed}\n");
  fx->props[0] = (struct junit_property){"seed", "42"};
  fx->props[1] = (struct junit_property){"timeScale", "0.01"};
  fx->cases[0] = (struct junit_case){.name = "work-fails",
                                     .file = "scenarios/work-fails.yaml",
                                     .verdict = "passed",
                                     .time_seconds = 1.25,
                                     .started = 1795750551, /* 2026-11-27T03:35:51Z */
                                     .expectations = fx->passing,
                                     .system_out = "exit handler ran once\n",
                                     .properties = fx->props,
                                     .n_properties = 2};
  fx->cases[1] = (struct junit_case){.name = "work-killed",
                                     .file = "./scenarios/sub/work-killed.yml",
                                     .verdict = "failed",
                                     .time_seconds = 0.5,
                                     .started = 1795750551,
                                     .expectations = fx->failing};
  fx->cases[2] = (struct junit_case){.name = "freeze",
                                     .verdict = "inconclusive",
                                     .started = 1795750551,
                                     .reason = "capability <cgroup freezer> & \"v1\" missing"};
  fx->cases[3] = (struct junit_case){
      .name = "broken",
      .file = "scenarios/broken.yaml",
      .verdict = "error",
      .time_seconds = -3,
      .started = 1795750551,
      .reason = "step said \x01\x1b[31mred\x1b[0m and \xff\xfe bytes]]>\ttab\nline",
      .system_out = "controller\x07 output\n"};
}

static void junit_fixture_free(struct junit_fixture *fx) {
  json_decref(fx->passing);
  json_decref(fx->failing);
}

static void assert_contains(const char *doc, const char *needle) {
  /* doc checked too: gcc -O2 with the sanitizers cannot see it is never NULL. */
  if (doc == NULL || strstr(doc, needle) == NULL)
    fail_msg("missing: %s\n--- document ---\n%s", needle, doc != NULL ? doc : "(none)");
}

static void test_junit_content(void **state) {
  (void)state;
  struct junit_fixture fx;
  junit_cases(&fx);
  char *doc = junit_render(fx.cases, 4, "ci-runner");
  const char *problem = xml_problem(doc);
  if (problem != NULL)
    fail_msg("not well-formed: %s\n%s", problem, doc);

  assert_contains(doc, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
  assert_contains(doc, "<testsuite name=\"work-fails\" package=\"scenarios.work-fails\" id=\"0\""
                       " timestamp=\"2026-11-27T03:35:51\" hostname=\"ci-runner\" tests=\"1\""
                       " failures=\"0\" errors=\"0\" skipped=\"0\" time=\"1.250\">");
  assert_contains(doc, "<property name=\"seed\" value=\"42\"/>");
  assert_contains(doc, "<property name=\"verdict\" value=\"passed\"/>");
  assert_contains(doc, "<testcase name=\"work-fails\" classname=\"scenarios.work-fails\""
                       " time=\"1.250\"/>");
  assert_contains(doc, "ok   workflow.phase: expected \"Failed\", got \"Failed\"\n");

  assert_contains(doc, "package=\"scenarios.sub.work-killed\" id=\"1\"");
  assert_contains(doc, "failures=\"1\" errors=\"0\" skipped=\"0\" time=\"0.500\"");
  assert_contains(doc, "<failure message=\"nodes.work.exitCode: expected 1, got 137\""
                       " type=\"expectation\">nodes.work.exitCode: expected 1, got 137"
                       " (./scenarios/sub/work-killed.yml:2:20)\n"
                       "logs.cleanup: expected not to contain \"Failed\", got ");
  assert_contains(doc, "2 of 3 expectations failed</failure>");

  assert_contains(doc, "<testsuite name=\"freeze\" package=\"exitprobe\" id=\"2\"");
  assert_contains(doc, "<skipped message=\"capability &lt;cgroup freezer&gt; &amp; &quot;v1&quot;"
                       " missing\"/>");
  assert_contains(doc, "failures=\"0\" errors=\"0\" skipped=\"1\"");

  /* Control characters go, bad bytes become U+FFFD, line breaks survive in attributes. */
  assert_contains(doc, "<error message=\"step said [31mred[0m and \xef\xbf\xbd\xef\xbf\xbd"
                       " bytes]]&gt;&#9;tab&#10;line\" type=\"error\">");
  assert_contains(doc, "controller output");
  assert_contains(doc, "errors=\"1\" skipped=\"0\" time=\"0.000\"");
  assert_null(strchr(doc, '\x1b'));
  assert_null(strchr(doc, '\x07'));
  free(doc);

  /* Unknown verdicts are errors, never passes. */
  struct junit_case odd = {.name = "odd", .verdict = "weird"};
  doc = junit_render(&odd, 1, NULL);
  assert_contains(doc, "errors=\"1\"");
  assert_contains(doc, "<error message=\"the run did not complete\" type=\"weird\">");
  assert_null(xml_problem(doc));
  free(doc);
  junit_fixture_free(&fx);
}

static void test_junit_file_validates(void **state) {
  (void)state;
  struct junit_fixture fx;
  junit_cases(&fx);
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char *path = NULL, *xsd = NULL;
  if (asprintf(&path, "%s/out/junit.xml", dir) < 0 ||
      asprintf(&xsd, "%s/scenarios/junit-common.xsd", test_data_dir()) < 0)
    abort();
  ep_error *err = NULL;
  if (junit_write_file(path, fx.cases, 4, &err) < 0) {
    ep_error_print(err, stderr);
    fail_msg("junit_write_file failed");
  }
  char *text = test_read_file(path);
  assert_non_null(text);
  assert_null(xml_problem(text));
  free(text);

  char *xmllint = find_in_path("xmllint");
  if (xmllint == NULL) {
    free(path);
    free(xsd);
    junit_fixture_free(&fx);
    fprintf(stderr, "xmllint not installed (Debian: libxml2-utils): schema check skipped\n");
    skip();
  }
  char *argv[] = {xmllint, "--noout", "--schema", xsd, path, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 0)
    fail_msg("xmllint: %d\n%s%s", r.exit_status, r.out ? r.out : "", r.err ? r.err : "");
  test_cmd_result_free(&r);

  /* And the check can fail: a document the schema refuses. */
  char *bad = NULL;
  if (asprintf(&bad, "%s/bad.xml", dir) < 0)
    abort();
  FILE *f = fopen(bad, "w");
  assert_non_null(f);
  fputs("<?xml version=\"1.0\"?>\n<testsuites name=\"x\"/>\n", f);
  fclose(f);
  char *argv_bad[] = {xmllint, "--noout", "--schema", xsd, bad, NULL};
  r = test_run(argv_bad);
  assert_int_not_equal(r.exit_status, 0);
  test_cmd_result_free(&r);

  free(bad);
  free(xmllint);
  free(path);
  free(xsd);
  junit_fixture_free(&fx);
}

static void test_junit_write_error(void **state) {
  (void)state;
  struct junit_case c = {.name = "x", .verdict = "passed"};
  ep_error *err = NULL;
  const char *file = test_write_temp("file", "not a directory");
  assert_non_null(file);
  char *path = NULL;
  if (asprintf(&path, "%s/junit.xml", file) < 0)
    abort();
  assert_int_equal(junit_write_file(path, &c, 1, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_non_null(strstr(err->message, "writing JUnit XML"));
  ep_error_free(&err);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_issue_example_passes),
      cmocka_unit_test(test_failure_reports_path_expected_actual),
      cmocka_unit_test(test_missing_node),
      cmocka_unit_test(test_globs_and_names),
      cmocka_unit_test(test_several_nodes_must_all_hold),
      cmocka_unit_test(test_matchers),
      cmocka_unit_test(test_retries_and_oom),
      cmocka_unit_test(test_exit_handler_absent),
      cmocka_unit_test(test_idempotent),
      cmocka_unit_test(test_long_values_are_shortened),
      cmocka_unit_test(test_verdicts),
      cmocka_unit_test(test_junit_content),
      cmocka_unit_test(test_junit_file_validates),
      cmocka_unit_test(test_junit_write_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
