/* `exitprobe export --target argo` and `exitprobe verify`: every seed
 * scenario exports to a manifest that Argo's schema accepts, with its
 * faults written in or listed; verify gives a local run's verdict back from
 * its report, and from the same run dressed as `argo get -o json` it gives
 * that verdict where a cluster can tell, inconclusive where it cannot. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_helpers.h"

#define SCHEMA_PATH "/work/shared/argo/workflow.schema.json"

static void assert_contains(const char *text, const char *needle) {
  if (text == NULL || strstr(text, needle) == NULL)
    fail_msg("expected to find \"%s\" in:\n%s", needle, text ? text : "(null)");
}

static void assert_status(const struct test_cmd_result *r, int want) {
  if (r->exit_status != want)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r->exit_status, want, r->out,
             r->err);
}

static struct test_cmd_result exitprobe(const char *first, ...) __attribute__((sentinel));
static struct test_cmd_result exitprobe(const char *first, ...) {
  char *argv[18] = {"/usr/bin/timeout", "--kill-after=5", "120", (char *)test_exitprobe_bin()};
  size_t n = 4;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && n < 17; a = va_arg(ap, const char *))
    argv[n++] = (char *)a;
  va_end(ap);
  argv[n] = NULL;
  return test_run(argv);
}

/* Sorted seed scenario file names. */
static size_t seed_scenarios(char ***out) {
  const char *dir = test_path(test_source_root(), "scenarios/seed");
  struct dirent **list = NULL;
  int n = scandir(dir, &list, NULL, alphasort);
  assert_true(n > 0);
  char **names = calloc((size_t)n + 1, sizeof(char *));
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(list[i]->d_name);
    if (len > 5 && strcmp(list[i]->d_name + len - 5, ".yaml") == 0)
      names[k++] = strdup(list[i]->d_name);
    free(list[i]);
  }
  free(list);
  *out = names;
  return k;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static char *seed_path(const char *name) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/scenarios/seed/%s", test_source_root(), name) > 0);
  return p;
}

static json_t *load_json(const char *path) {
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  if (j == NULL)
    fail_msg("%s: %s", path, e.text);
  return j;
}

/* The structure Argo's schema requires of a Workflow, checked without
 * python: it must hold even where jsonschema is not installed. */
static void check_structure(const json_t *wf, const char *file) {
  const char *what = NULL;
  const json_t *meta = json_object_get(wf, "metadata"), *spec = json_object_get(wf, "spec");
  if (!json_is_string(json_object_get(wf, "apiVersion")) ||
      strcmp(json_string_value(json_object_get(wf, "apiVersion")), "argoproj.io/v1alpha1") != 0)
    what = "apiVersion";
  else if (!json_is_string(json_object_get(wf, "kind")) ||
           strcmp(json_string_value(json_object_get(wf, "kind")), "Workflow") != 0)
    what = "kind";
  else if (!json_is_object(meta) || !json_is_object(spec))
    what = "metadata and spec";
  else if (!json_is_array(json_object_get(spec, "templates")))
    what = "spec.templates";
  if (what != NULL)
    fail_msg("%s: bad %s", file, what);
  size_t i;
  const json_t *tpl;
  json_array_foreach(json_object_get(spec, "templates"), i, tpl) {
    assert_true(json_is_string(json_object_get(tpl, "name")));
    const json_t *c = json_object_get(tpl, "container");
    if (c == NULL)
      c = json_object_get(tpl, "script");
    if (c == NULL)
      continue;
    assert_true(json_is_string(json_object_get(c, "image")));
    const char *lists[] = {"command", "args"};
    for (size_t l = 0; l < 2; l++) {
      const json_t *a = json_object_get(c, lists[l]), *s;
      size_t k;
      if (a == NULL)
        continue;
      assert_true(json_is_array(a));
      json_array_foreach(a, k, s) assert_true(json_is_string(s));
    }
    const json_t *mem =
        json_object_get(json_object_get(json_object_get(c, "resources"), "limits"), "memory");
    if (mem != NULL)
      assert_true(json_is_string(mem));
  }
}

static bool have_jsonschema(void) {
  char *probe[] = {"/usr/bin/env", "python3", "-c", "import jsonschema", NULL};
  struct test_cmd_result r = test_run(probe);
  bool ok = r.exit_status == 0;
  test_cmd_result_free(&r);
  return ok;
}

/* Every file against the whole schema (its oneOf over Argo's kinds) and
 * against the Workflow definition alone, whose errors say where. */
static const char validate_py[] =
    "import json, sys, jsonschema\n"
    "schema = json.load(open(sys.argv[1]))\n"
    "whole = jsonschema.Draft202012Validator(schema)\n"
    "only = {k: v for k, v in schema.items() if k != 'oneOf'}\n"
    "only['$ref'] = '#/definitions/io.argoproj.workflow.v1alpha1.Workflow'\n"
    "wf = jsonschema.Draft202012Validator(only)\n"
    "bad = 0\n"
    "for f in sys.argv[2:]:\n"
    "    doc = json.load(open(f))\n"
    "    for e in list(wf.iter_errors(doc)) + list(whole.iter_errors(doc)):\n"
    "        bad += 1\n"
    "        print(f, '/' + '/'.join(map(str, e.absolute_path)), e.message[:300])\n"
    "sys.exit(1 if bad else 0)\n";

static int schema_validate(const char *const *files, size_t n, char **output) {
  char *argv[64] = {"/usr/bin/env", "python3", "-c", (char *)validate_py, SCHEMA_PATH};
  size_t k = 5;
  for (size_t i = 0; i < n && k < 63; i++)
    argv[k++] = (char *)files[i];
  argv[k] = NULL;
  struct test_cmd_result r = test_run(argv);
  int status = r.exit_status;
  if (asprintf(output, "%s%s", r.out, r.err) < 0)
    abort();
  test_cmd_result_free(&r);
  return status;
}

static void test_every_seed_exports_and_validates(void **state) {
  (void)state;
  char **names = NULL;
  size_t n = seed_scenarios(&names);
  const char *dir = test_temp_dir();
  char **files = calloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    char *sc = seed_path(names[i]);
    files[i] = strdup(test_path(dir, names[i]));
    struct test_cmd_result r = exitprobe("export", sc, "--target", "argo", "-o", files[i], NULL);
    assert_status(&r, 0);
    json_t *wf = load_json(files[i]);
    check_structure(wf, files[i]);
    const json_t *meta = json_object_get(wf, "metadata");
    const char *label =
        json_string_value(json_object_get(json_object_get(meta, "labels"), "exitprobe.io/scenario"));
    assert_non_null(label);
    assert_true(strncmp(label, "seed-", 5) == 0);
    /* What could not be written in is said on stderr and in the manifest. */
    const char *listed = json_string_value(json_object_get(json_object_get(meta, "annotations"),
                                                           "exitprobe.io/not-expressible"));
    if (strstr(names[i], "controller-") != NULL || strstr(names[i], "network") != NULL ||
        strstr(names[i], "enospc") != NULL) {
      assert_non_null(listed);
      assert_contains(r.err, "not expressible on a cluster");
    } else {
      assert_null(listed);
    }
    json_decref(wf);
    test_cmd_result_free(&r);
    free(sc);
  }
  if (!have_jsonschema()) {
    printf("# python3 jsonschema not installed: structural checks only\n");
  } else {
    char *out = NULL;
    if (schema_validate((const char *const *)files, n, &out) != 0)
      fail_msg("Argo's schema rejects an exported manifest:\n%s", out);
    free(out);
  }
  free_names(files, n);
  free_names(names, n);
}

/* The validator must be able to say no, or the test above proves nothing. */
static void test_schema_check_rejects_a_broken_manifest(void **state) {
  (void)state;
  if (!have_jsonschema()) {
    printf("# skipped: python3 jsonschema not installed\n");
    skip();
  }
  const char *bad = test_write_temp(
      "bad.json", "{\"apiVersion\": \"argoproj.io/v1alpha1\", \"kind\": \"Workflow\", "
                  "\"metadata\": {\"name\": \"x\"}, \"spec\": {\"templates\": [{\"name\": \"a\", "
                  "\"container\": {\"image\": \"alpine\", \"command\": \"exit 1\"}}]}}");
  const char *files[] = {bad};
  char *out = NULL;
  assert_int_not_equal(schema_validate(files, 1, &out), 0);
  assert_contains(out, "command");
  free(out);
}

static json_t *export_json(const char *seed) {
  char *sc = seed_path(seed);
  const char *file = test_path(test_temp_dir(), "wf.json");
  struct test_cmd_result r = exitprobe("export", sc, "--target", "argo", "-o", file, NULL);
  assert_status(&r, 0);
  test_cmd_result_free(&r);
  free(sc);
  return load_json(file);
}

static json_t *template_container(json_t *wf, const char *name) {
  size_t i;
  json_t *tpl;
  json_array_foreach(json_object_get(json_object_get(wf, "spec"), "templates"), i, tpl) {
    if (strcmp(json_string_value(json_object_get(tpl, "name")), name) == 0)
      return json_object_get(tpl, "container");
  }
  fail_msg("no template %s", name);
  return NULL;
}

static char *argv_text(const json_t *c) {
  char *s = json_dumps(json_object_get(c, "command"), JSON_COMPACT);
  assert_non_null(s);
  return s;
}

static void test_faults_are_written_into_the_manifest(void **state) {
  (void)state;
  json_t *wf = export_json("02-work-succeeds.yaml");
  char *cmd = argv_text(template_container(wf, "do-work"));
  assert_string_equal(cmd, "[\"sh\",\"-c\",\"exit 0\"]");
  assert_null(json_object_get(template_container(wf, "do-work"), "args"));
  /* The exit handler is not the target and stays as written. */
  assert_non_null(json_object_get(template_container(wf, "cleanup"), "args"));
  free(cmd);
  json_decref(wf);

  wf = export_json("03-work-killed.yaml");
  cmd = argv_text(template_container(wf, "do-work"));
  assert_string_equal(cmd, "[\"sh\",\"-c\",\"(sleep 0.200; kill -9 $$) & exec \\\"$@\\\"\","
                           "\"sh\",\"sh\",\"-c\",\"sleep 86400\"]");
  free(cmd);
  json_decref(wf);

  wf = export_json("04-work-hangs-past-deadline.yaml");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(wf, "spec"),
                                                      "activeDeadlineSeconds")),
                   2);
  json_decref(wf);

  wf = export_json("05-work-oom-killed.yaml");
  const json_t *c = template_container(wf, "do-work");
  assert_string_equal(
      json_string_value(json_object_get(
          json_object_get(json_object_get(c, "resources"), "limits"), "memory")),
      "33554432");
  json_decref(wf);

  wf = export_json("08-stop.yaml");
  const json_t *ann = json_object_get(json_object_get(wf, "metadata"), "annotations");
  assert_string_equal(json_string_value(json_object_get(ann, "exitprobe.io/shutdown")), "Stop");
  assert_string_equal(json_string_value(json_object_get(ann, "exitprobe.io/shutdown-after")),
                      "300ms");
  assert_string_equal(json_string_value(json_object_get(ann, "exitprobe.io/shutdown-target")),
                      "work");
  json_decref(wf);
}

static void test_export_bad_input(void **state) {
  (void)state;
  char *sc = seed_path("01-work-fails.yaml");
  struct test_cmd_result r = exitprobe("export", sc, "--target", "k8s", NULL);
  assert_status(&r, 2);
  assert_contains(r.err, "unknown target");
  test_cmd_result_free(&r);
  r = exitprobe("export", "/nonexistent.yaml", "--target", "argo", NULL);
  assert_status(&r, 2);
  test_cmd_result_free(&r);
  free(sc);
}

/* A hand-written `argo get -o json` of the seed workflow as a cluster ends
 * it (reference note argo-cluster-path.md §3): work exits `code`, the exit
 * handler node present or not, spec.shutdown as argo stop/terminate set it. */
static const char *cluster_status(const char *name, const char *code, bool handler,
                                  const char *shutdown) {
  char msg[64];
  snprintf(msg, sizeof(msg), "main: Error (exit code %s)", code);
  json_t *nodes = json_pack(
      "{s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}}",
      "exit-handler-workflow", "id", "exit-handler-workflow", "name", "exit-handler-workflow",
      "displayName", "exit-handler-workflow", "type", "Steps", "templateName", "main", "phase",
      "Failed", "exit-handler-workflow-920599587", "id", "exit-handler-workflow-920599587",
      "name", "exit-handler-workflow[0].work", "displayName", "work", "type", "Pod",
      "templateName", "do-work", "boundaryID", "exit-handler-workflow", "phase", "Failed",
      "message", msg, "outputs", "exitCode", code);
  if (handler)
    json_object_set_new(nodes, "exit-handler-workflow-1124056625",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b}}", "id",
                                  "exit-handler-workflow-1124056625", "name",
                                  "exit-handler-workflow.onExit", "displayName",
                                  "exit-handler-workflow.onExit", "type", "Pod", "templateName",
                                  "cleanup", "phase", "Succeeded", "nodeFlag", "hooked", 1));
  json_t *spec = json_pack("{s:s, s:s}", "entrypoint", "main", "onExit", "cleanup");
  if (shutdown != NULL)
    json_object_set_new(spec, "shutdown", json_string(shutdown));
  char *wf_message = NULL;
  if (shutdown != NULL)
    assert_true(asprintf(&wf_message, "Stopped with strategy '%s'", shutdown) > 0);
  else
    wf_message = strdup("child 'exit-handler-workflow-920599587' failed");
  json_t *wf = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:{s:s, s:s, s:o}}", "apiVersion",
                         "argoproj.io/v1alpha1", "kind", "Workflow", "metadata", "name",
                         "exit-handler-workflow", "namespace", "argo", "spec", spec, "status",
                         "phase", "Failed", "message", wf_message, "nodes", nodes);
  assert_non_null(wf);
  char *text = json_dumps(wf, JSON_INDENT(1));
  const char *path = test_write_temp(name, text);
  free(text);
  free(wf_message);
  json_decref(wf);
  return path;
}

static void test_verify_a_cluster_status(void **state) {
  (void)state;
  char *sc = seed_path("01-work-fails.yaml");
  /* Everything a cluster can tell holds; the logs and the handler's
   * {{workflow.status}} it cannot: inconclusive, never a pass. */
  const char *st = cluster_status("ok.json", "1", true, NULL);
  struct test_cmd_result r = exitprobe("verify", sc, st, NULL);
  assert_status(&r, 3);
  assert_contains(r.out, "SKIP  seed-work-fails (verify cluster)");
  assert_contains(r.out, "not checked: logs.cleanup: node logs are not in argo get -o json");
  assert_contains(r.out, "not checked: exitHandler.workflowStatus");
  assert_contains(r.out, "scenarios: 0 passed, 0 failed, 1 skipped");
  test_cmd_result_free(&r);

  st = cluster_status("code.json", "2", true, NULL);
  r = exitprobe("verify", sc, st, NULL);
  assert_status(&r, 1);
  assert_contains(r.out, "01-work-fails.yaml:14:");
  assert_contains(r.out, "nodes.work.exitCode: expected 1, got 2");
  test_cmd_result_free(&r);

  st = cluster_status("nohandler.json", "1", false, NULL);
  r = exitprobe("verify", sc, st, NULL);
  assert_status(&r, 1);
  assert_contains(r.out, "exitHandler.ran: expected true, got false");
  test_cmd_result_free(&r);

  /* A scenario whose expectations a cluster can all check passes outright. */
  char *term = seed_path("09-terminate.yaml");
  st = cluster_status("term.json", "143", false, "Terminate");
  r = exitprobe("verify", term, st, NULL);
  assert_status(&r, 0);
  assert_contains(r.out, "PASS  seed-terminate (verify cluster)");
  test_cmd_result_free(&r);
  /* Without the shutdown on record the fault did not happen. */
  st = cluster_status("noterm.json", "143", false, NULL);
  r = exitprobe("verify", term, st, NULL);
  assert_true(r.exit_status == 1 || r.exit_status == 3);
  assert_contains(r.out, "shutdown fault not applied: spec.shutdown is absent");
  test_cmd_result_free(&r);
  free(term);
  free(sc);
}

static void test_verify_bad_input(void **state) {
  (void)state;
  char *sc = seed_path("01-work-fails.yaml");
  struct test_cmd_result r = exitprobe("verify", sc, "/nonexistent.json", NULL);
  assert_status(&r, 2);
  test_cmd_result_free(&r);
  const char *st = test_write_temp("nostatus.json", "{\"kind\": \"Workflow\", \"spec\": {}}");
  r = exitprobe("verify", sc, st, NULL);
  assert_status(&r, 2);
  assert_contains(r.err, "no status.nodes object");
  test_cmd_result_free(&r);
  st = test_write_temp("syntax.json", "{\"status\": ");
  r = exitprobe("verify", sc, st, NULL);
  assert_status(&r, 2);
  test_cmd_result_free(&r);
  r = exitprobe("verify", sc, NULL);
  assert_status(&r, 2);
  test_cmd_result_free(&r);
  free(sc);
}

/* The report dressed as `argo get -o json`: the exported manifest's
 * metadata and spec (spec.shutdown as argo stop/terminate set it), the
 * report's status without what only the harness records. */
static json_t *as_cluster_object(const json_t *report, const char *manifest_path) {
  json_t *wf = load_json(manifest_path);
  json_t *status = json_deep_copy(json_object_get(report, "status"));
  const char *key;
  json_t *node;
  static const char *const harness_only[] = {"log",         "logTruncated", "memoryPeakBytes",
                                             "oomKilled",   "pidsLimited",  "signal",
                                             "podName"};
  json_object_foreach(json_object_get(status, "nodes"), key, node) {
    for (size_t i = 0; i < sizeof(harness_only) / sizeof(harness_only[0]); i++)
      json_object_del(node, harness_only[i]);
  }
  json_object_set_new(wf, "status", status);
  json_object_set(json_object_get(wf, "metadata"), "name",
                  json_object_get(json_object_get(report, "workflow"), "name"));
  json_t *shutdown = json_object_get(json_object_get(report, "run"), "shutdown");
  if (shutdown != NULL)
    json_object_set(json_object_get(wf, "spec"), "shutdown", shutdown);
  return wf;
}

static bool cluster_cannot_check(const char *path) {
  return strncmp(path, "logs.", 5) == 0 || strcmp(path, "exitHandler.workflowStatus") == 0;
}

/* What verify must say about the cluster form of a local run, for a
 * scenario all of whose faults a cluster can carry out. */
static int expected_cluster_status(const json_t *report) {
  bool failed = false, unchecked = false;
  size_t i;
  const json_t *res;
  json_array_foreach(json_object_get(report, "expectations"), i, res) {
    const char *path = json_string_value(json_object_get(res, "path"));
    if (cluster_cannot_check(path))
      unchecked = true;
    else if (!json_is_true(json_object_get(res, "ok")))
      failed = true;
  }
  const char *verdict = json_string_value(json_object_get(report, "verdict"));
  if (failed)
    return 1;
  if (unchecked || strcmp(verdict, "inconclusive") == 0)
    return 3;
  return strcmp(verdict, "passed") == 0 ? 0 : 1;
}

static int status_of_verdict(const char *verdict) {
  return strcmp(verdict, "passed") == 0 ? 0 : strcmp(verdict, "failed") == 0 ? 1 : 3;
}

static void test_round_trip_every_seed(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("# skipped: %s\n", why);
    skip();
  }
  char **names = NULL;
  size_t n = seed_scenarios(&names);
  const char *dir = test_temp_dir();
  for (size_t i = 0; i < n; i++) {
    char *sc = seed_path(names[i]);
    char *report_path = strdup(test_path(dir, "report.json"));
    char *manifest = strdup(test_path(dir, "manifest.json"));
    char *cluster = strdup(test_path(dir, "cluster.json"));
    struct test_cmd_result run = exitprobe("run", sc, "--report", report_path, "-q", NULL);
    if (run.exit_status != 0 && run.exit_status != 1 && run.exit_status != 3)
      fail_msg("%s: run exit status %d\n%s%s", names[i], run.exit_status, run.out, run.err);
    json_t *report = load_json(report_path);
    const char *verdict = json_string_value(json_object_get(report, "verdict"));
    assert_non_null(verdict);
    assert_int_equal(run.exit_status, status_of_verdict(verdict));

    /* The report itself: the same verdict, the same exit status. */
    struct test_cmd_result v = exitprobe("verify", sc, report_path, NULL);
    if (v.exit_status != run.exit_status)
      fail_msg("%s: verify of the report gave %d, the run %d\n%s", names[i], v.exit_status,
               run.exit_status, v.out);
    test_cmd_result_free(&v);

    /* Exported, run, seen through argo get -o json. */
    struct test_cmd_result ex = exitprobe("export", sc, "--target", "argo", "-o", manifest, NULL);
    assert_status(&ex, 0);
    bool all_expressible = strstr(ex.err, "not expressible") == NULL;
    test_cmd_result_free(&ex);
    json_t *obj = as_cluster_object(report, manifest);
    assert_int_equal(json_dump_file(obj, cluster, JSON_INDENT(1)), 0);
    v = exitprobe("verify", sc, cluster, NULL);
    assert_contains(v.out, "(verify cluster)");
    if (all_expressible) {
      int want = expected_cluster_status(report);
      if (v.exit_status != want)
        fail_msg("%s: verify of the cluster form gave %d, want %d (local verdict %s)\n%s",
                 names[i], v.exit_status, want, verdict, v.out);
    } else {
      /* A fault the cluster could not carry out: never a pass. */
      if (v.exit_status != 1 && v.exit_status != 3)
        fail_msg("%s: verify of the cluster form gave %d\n%s", names[i], v.exit_status, v.out);
      assert_contains(v.out, "fault not carried out on a cluster");
    }
    printf("# %s: local %s, cluster form %d\n", names[i], verdict, v.exit_status);
    test_cmd_result_free(&v);
    json_decref(obj);
    json_decref(report);
    test_cmd_result_free(&run);
    free(cluster);
    free(manifest);
    free(report_path);
    free(sc);
  }
  free_names(names, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_seed_exports_and_validates),
      cmocka_unit_test(test_schema_check_rejects_a_broken_manifest),
      cmocka_unit_test(test_faults_are_written_into_the_manifest),
      cmocka_unit_test(test_export_bad_input),
      cmocka_unit_test(test_verify_a_cluster_status),
      cmocka_unit_test(test_verify_bad_input),
      cmocka_unit_test(test_round_trip_every_seed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
