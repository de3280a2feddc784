/* The Argo conformance suite: every workflow in tests/conformance/ runs
 * through the real exitprobe binary, and its JSON report is compared with
 * the outcome Argo documents for it, written next to it in NAME.expect.yaml
 * (format: docs/CONFORMANCE.md).  One cmocka test per workflow, run one
 * after the other so timing-sensitive cases (deadlines, backoff, suspend)
 * are not starved.  Every mismatch of a case is listed before the case
 * fails, so one run shows everything that differs. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "yaml_doc.h"

#define EXPECT_SUFFIX ".expect.yaml"
#define DEFAULT_TIMEOUT_SECONDS 30
#define MAX_ARGS 64

/* ---- collecting mismatches ------------------------------------------- */

struct verdict {
  char *text; /* every mismatch, one per line */
  size_t len;
  size_t failures;
};

static void verdict_add(struct verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void verdict_add(struct verdict *v, const char *fmt, ...)
{
  va_list ap;
  char *line = NULL;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&line, fmt, ap);
  va_end(ap);
  assert_true(n >= 0);
  char *grown = realloc(v->text, v->len + (size_t)n + 4);
  assert_non_null(grown);
  v->text = grown;
  v->len += (size_t)sprintf(v->text + v->len, "  %s\n", line);
  v->failures++;
  free(line);
}

/* ---- small helpers over the expectation tree ------------------------- */

static const char *scalar(const struct ydoc_node *n)
{
  return (n && n->kind == YDOC_SCALAR) ? n->scalar : NULL;
}

/* A key that holds one string or a list of strings. */
static size_t string_list(const struct ydoc_node *n, const char **out, size_t max)
{
  size_t count = 0;

  if (!n)
    return 0;
  if (n->kind == YDOC_SCALAR) {
    out[0] = n->scalar;
    return 1;
  }
  if (n->kind != YDOC_SEQUENCE)
    return 0;
  /* More entries than the caller has room for is a mistake in the case,
   * not something to drop silently. */
  assert_true(n->n_items <= max);
  for (size_t i = 0; i < n->n_items && count < max; i++)
    if (n->items[i]->kind == YDOC_SCALAR)
      out[count++] = n->items[i]->scalar;
  return count;
}

static bool key_allowed(const char *key, const char *const *allowed)
{
  for (size_t i = 0; allowed[i]; i++)
    if (strcmp(key, allowed[i]) == 0)
      return true;
  return false;
}

/* A typo in an expectation would otherwise silently check nothing. */
static void check_keys(struct verdict *v, const char *where, const struct ydoc_node *map,
                       const char *const *allowed)
{
  if (!map)
    return;
  if (map->kind != YDOC_MAPPING) {
    verdict_add(v, "expectation error: %s must be a mapping (line %d)", where, map->line);
    return;
  }
  for (size_t i = 0; i < map->n_pairs; i++)
    if (!key_allowed(map->pairs[i].key->scalar, allowed))
      verdict_add(v, "expectation error: unknown key '%s' in %s (line %d)",
                  map->pairs[i].key->scalar, where, map->pairs[i].key->line);
}

/* ---- the report --------------------------------------------------------- */

static json_t *report_nodes(json_t *report)
{
  return json_object_get(json_object_get(report, "status"), "nodes");
}

static const char *jstr(json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

static const char *or_empty(const char *s)
{
  return s ? s : "";
}

/* A node by its full name, or else by its displayName when exactly one node
 * has it.  *ambiguous tells a reused displayName from a missing node. */
static json_t *find_node(json_t *report, const char *key, bool *ambiguous)
{
  json_t *nodes = report_nodes(report);
  json_t *node, *by_display = NULL;
  const char *id;
  size_t display_hits = 0;

  *ambiguous = false;
  json_object_foreach(nodes, id, node) {
    const char *name = jstr(node, "name");
    const char *display = jstr(node, "displayName");
    if (name && strcmp(name, key) == 0)
      return node;
    if (display && strcmp(display, key) == 0) {
      by_display = node;
      display_hits++;
    }
  }
  if (display_hits > 1) {
    *ambiguous = true;
    return NULL;
  }
  return by_display;
}

/* Expand {{id:KEY}} into the id of node KEY, so a message such as
 * "child '<id>' failed" can be written down without computing hashes. */
static char *expand_expected(json_t *report, const char *text, struct verdict *v)
{
  size_t cap = strlen(text) + 256, len = 0;
  char *out = malloc(cap);
  const char *p = text;

  assert_non_null(out);
  while (*p) {
    const char *open = strstr(p, "{{id:");
    const char *close = open ? strstr(open, "}}") : NULL;
    if (!open || !close) {
      size_t rest = strlen(p);
      if (len + rest + 1 > cap) {
        cap = len + rest + 1;
        out = realloc(out, cap);
        assert_non_null(out);
      }
      memcpy(out + len, p, rest);
      len += rest;
      break;
    }
    char key[512];
    size_t key_len = (size_t)(close - open) - 5;
    assert_true(key_len < sizeof key);
    memcpy(key, open + 5, key_len);
    key[key_len] = '\0';
    bool ambiguous;
    json_t *node = find_node(report, key, &ambiguous);
    const char *id = node ? jstr(node, "id") : NULL;
    if (!id) {
      verdict_add(v, "{{id:%s}}: no such node%s", key, ambiguous ? " (ambiguous)" : "");
      id = "?";
    }
    size_t need = len + (size_t)(open - p) + strlen(id) + 1;
    if (need > cap) {
      cap = need * 2;
      out = realloc(out, cap);
      assert_non_null(out);
    }
    memcpy(out + len, p, (size_t)(open - p));
    len += (size_t)(open - p);
    memcpy(out + len, id, strlen(id));
    len += strlen(id);
    p = close + 2;
  }
  out[len] = '\0';
  return out;
}

static void check_equal(struct verdict *v, json_t *report, const char *what, const char *actual,
                        const char *expected_raw)
{
  char *expected = expand_expected(report, expected_raw, v);
  const char *got = actual ? actual : "";

  if (strcmp(got, expected) != 0)
    verdict_add(v, "%s: expected \"%s\", got %s%s%s", what, expected, actual ? "\"" : "",
                actual ? actual : "(absent)", actual ? "\"" : "");
  free(expected);
}

static void check_contains(struct verdict *v, json_t *report, const char *what, const char *actual,
                           const struct ydoc_node *want, bool negate)
{
  const char *items[32];
  size_t n = string_list(want, items, 32);

  for (size_t i = 0; i < n; i++) {
    char *expected = expand_expected(report, items[i], v);
    bool found = actual && strstr(actual, expected);
    if (found == negate)
      verdict_add(v, "%s: expected %s \"%s\", got %s%s%s", what,
                  negate ? "not to contain" : "to contain", expected, actual ? "\"" : "",
                  actual ? actual : "(absent)", actual ? "\"" : "");
    free(expected);
  }
}

/* ---- per-node expectations -------------------------------------------- */

static const char *const node_keys[] = {
    "phase",   "type",        "templateName", "message",        "messageContains",
    "exitCode", "result",     "resultContains", "parameters",   "logContains",
    "logNotContains", "children", "boundary", NULL};

static const char *output_parameter(json_t *node, const char *name)
{
  json_t *params = json_object_get(json_object_get(node, "outputs"), "parameters");
  size_t i;
  json_t *p;

  json_array_foreach(params, i, p) {
    const char *pname = jstr(p, "name");
    if (pname && strcmp(pname, name) == 0)
      return jstr(p, "value");
  }
  return NULL;
}

static void check_node(struct verdict *v, json_t *report, const char *key,
                       const struct ydoc_node *want)
{
  bool ambiguous;
  json_t *node = find_node(report, key, &ambiguous);
  char what[768];

  check_keys(v, key, want, node_keys);
  if (!node) {
    verdict_add(v, "node %s: %s", key,
                ambiguous ? "displayName is not unique, use the full node name" : "missing");
    return;
  }
  if (!want || want->kind != YDOC_MAPPING)
    return;
  for (size_t i = 0; i < want->n_pairs; i++) {
    const char *field = want->pairs[i].key->scalar;
    const struct ydoc_node *val = want->pairs[i].value;
    const char *s = scalar(val);
    json_t *outputs = json_object_get(node, "outputs");

    snprintf(what, sizeof what, "node %s %s", key, field);
    if (strcmp(field, "phase") == 0 || strcmp(field, "type") == 0 ||
        strcmp(field, "templateName") == 0 || strcmp(field, "message") == 0) {
      check_equal(v, report, what, jstr(node, field), s ? s : "");
    } else if (strcmp(field, "messageContains") == 0) {
      check_contains(v, report, what, jstr(node, "message"), val, false);
    } else if (strcmp(field, "exitCode") == 0) {
      check_equal(v, report, what, jstr(outputs, "exitCode"), s ? s : "");
    } else if (strcmp(field, "result") == 0) {
      check_equal(v, report, what, jstr(outputs, "result"), s ? s : "");
    } else if (strcmp(field, "resultContains") == 0) {
      check_contains(v, report, what, jstr(outputs, "result"), val, false);
    } else if (strcmp(field, "logContains") == 0) {
      check_contains(v, report, what, jstr(node, "log"), val, false);
    } else if (strcmp(field, "logNotContains") == 0) {
      check_contains(v, report, what, jstr(node, "log"), val, true);
    } else if (strcmp(field, "children") == 0) {
      long long want_n = -1;
      size_t got = json_array_size(json_object_get(node, "children"));
      if (ydoc_as_int(val, &want_n) < 0 || want_n < 0)
        verdict_add(v, "expectation error: %s must be a count", what);
      else if ((long long)got != want_n)
        verdict_add(v, "%s: expected %lld, got %zu", what, want_n, got);
    } else if (strcmp(field, "boundary") == 0) {
      /* The boundary node, named like any other key. */
      const char *got_id = jstr(node, "boundaryID");
      bool amb;
      json_t *b = s ? find_node(report, s, &amb) : NULL;
      const char *want_id = b ? jstr(b, "id") : NULL;
      if (!want_id)
        verdict_add(v, "%s: boundary node %s not found", what, s ? s : "?");
      else if (!got_id || strcmp(got_id, want_id) != 0)
        verdict_add(v, "%s: expected %s (%s), got %s", what, s, want_id,
                    got_id ? got_id : "(none)");
    } else if (strcmp(field, "parameters") == 0 && val && val->kind == YDOC_MAPPING) {
      for (size_t j = 0; j < val->n_pairs; j++) {
        char pwhat[900];
        snprintf(pwhat, sizeof pwhat, "node %s output parameter %s", key,
                 val->pairs[j].key->scalar);
        check_equal(v, report, pwhat, output_parameter(node, val->pairs[j].key->scalar),
                    scalar(val->pairs[j].value) ? scalar(val->pairs[j].value) : "");
      }
    }
  }
}

/* ---- exit handler expectations ---------------------------------------- */

static const char *const exit_keys[] = {"declared",       "ran",          "runs",
                                        "phase",          "workflowStatus",
                                        "workflowFailuresContains",
                                        "logContains",    "logNotContains", NULL};

/* The handler's output: its own log and that of every node below it (a
 * steps or DAG handler prints from its children), in report order. */
static char *exit_handler_log(json_t *report)
{
  const char *wf = jstr(json_object_get(report, "workflow"), "name");
  json_t *node;
  const char *id;
  char prefix[512];
  size_t len = 0;
  char *all = calloc(1, 1);

  assert_non_null(all);
  snprintf(prefix, sizeof prefix, "%s.onExit", wf ? wf : "");
  json_object_foreach(report_nodes(report), id, node) {
    const char *name = jstr(node, "name");
    const char *log = jstr(node, "log");
    if (!name || !log || strncmp(name, prefix, strlen(prefix)) != 0)
      continue;
    all = realloc(all, len + strlen(log) + 1);
    assert_non_null(all);
    memcpy(all + len, log, strlen(log) + 1);
    len += strlen(log);
  }
  return all;
}

static void check_bool(struct verdict *v, const char *what, json_t *actual,
                       const struct ydoc_node *want)
{
  bool b;

  if (ydoc_as_bool(want, &b) < 0) {
    verdict_add(v, "expectation error: %s must be true or false", what);
    return;
  }
  if (!json_is_boolean(actual) || json_is_true(actual) != b)
    verdict_add(v, "%s: expected %s, got %s", what, b ? "true" : "false",
                json_is_boolean(actual) ? (json_is_true(actual) ? "true" : "false") : "(absent)");
}

static void check_exit_handler(struct verdict *v, json_t *report, const struct ydoc_node *want)
{
  json_t *eh = json_object_get(report, "exitHandler");

  check_keys(v, "exitHandler", want, exit_keys);
  if (!want || want->kind != YDOC_MAPPING)
    return;
  for (size_t i = 0; i < want->n_pairs; i++) {
    const char *field = want->pairs[i].key->scalar;
    const struct ydoc_node *val = want->pairs[i].value;
    char what[128];

    snprintf(what, sizeof what, "exitHandler.%s", field);
    if (strcmp(field, "declared") == 0 || strcmp(field, "ran") == 0) {
      check_bool(v, what, json_object_get(eh, field), val);
    } else if (strcmp(field, "runs") == 0) {
      long long n;
      json_t *got = json_object_get(eh, "runs");
      if (ydoc_as_int(val, &n) < 0)
        verdict_add(v, "expectation error: %s must be an integer", what);
      else if (!json_is_integer(got) || json_integer_value(got) != n)
        verdict_add(v, "%s: expected %lld, got %lld", what, n,
                    json_is_integer(got) ? (long long)json_integer_value(got) : -1LL);
    } else if (strcmp(field, "phase") == 0 || strcmp(field, "workflowStatus") == 0) {
      check_equal(v, report, what, jstr(eh, field), scalar(val) ? scalar(val) : "");
    } else if (strcmp(field, "workflowFailuresContains") == 0) {
      check_contains(v, report, what, jstr(eh, "workflowFailures"), val, false);
    } else {
      char *log = exit_handler_log(report);
      check_contains(v, report, "exit handler log", log, val,
                     strcmp(field, "logNotContains") == 0);
      free(log);
    }
  }
}

/* ---- one case ------------------------------------------------------------ */

static const char *const top_keys[] = {
    "phase",  "message",     "messageContains", "exitStatus", "stderrContains",
    "args",   "minSeconds",  "maxSeconds",      "timeoutSeconds",
    "nodes",  "absent",      "nodeCount",       "exitHandler", NULL};

struct conformance_case {
  char *workflow; /* path of NAME.yaml */
  char *expect;   /* path of NAME.expect.yaml */
  char *name;     /* NAME.yaml, the test's name */
  char *dir;      /* tests/conformance, for {{dir}} in args */
};

/* "{{dir}}" in an argument is the suite's directory, so a case can name a
 * side file (a --parameter-file) wherever the tests run from.  Expanded
 * strings are recorded in owned[] for the caller to free. */
static char *expand_dir(const char *arg, const char *dir, char **owned, size_t *n_owned)
{
  const char *at = strstr(arg, "{{dir}}");
  char *out;

  if (!at)
    return (char *)arg;
  if (asprintf(&out, "%.*s%s%s", (int)(at - arg), arg, dir, at + 7) < 0)
    abort();
  owned[(*n_owned)++] = out;
  return out;
}

static double now_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double number_or(const struct ydoc_node *n, double fallback)
{
  const char *s = scalar(n);
  char *end;
  double d;

  if (!s)
    return fallback;
  d = strtod(s, &end);
  return (end != s && *end == '\0') ? d : fallback;
}

/* Every workflow says where Argo documents its outcome: a "# Argo:" line
 * in the comment block at the top of the file. */
static void check_citation(struct verdict *v, const char *workflow)
{
  char *text = test_read_file(workflow);
  bool cited = false;

  if (!text) {
    verdict_add(v, "cannot read %s", workflow);
    return;
  }
  for (char *line = text; line && *line == '#';) {
    char *eol = strchr(line, '\n');
    if (strncmp(line, "# Argo:", 7) == 0)
      cited = true;
    line = eol ? eol + 1 : NULL;
  }
  if (!cited)
    verdict_add(v, "%s: no '# Argo:' citation in the leading comment block", workflow);
  free(text);
}

static void print_tree(json_t *report)
{
  json_t *node;
  const char *id;

  fprintf(stderr, "    workflow: %s \"%s\"\n", or_empty(jstr(json_object_get(report, "status"), "phase")),
          or_empty(jstr(json_object_get(report, "status"), "message")));
  json_object_foreach(report_nodes(report), id, node) {
    json_t *outputs = json_object_get(node, "outputs");
    fprintf(stderr, "    %-40s %-10s %-9s exit=%-4s %s\n", or_empty(jstr(node, "name")),
            or_empty(jstr(node, "type")), or_empty(jstr(node, "phase")),
            jstr(outputs, "exitCode") ? jstr(outputs, "exitCode") : "-",
            or_empty(jstr(node, "message")));
  }
}

static int build_argv(const struct conformance_case *c, const struct ydoc_node *expect,
                      const char *report, char **argv, char *timeout_buf, size_t timeout_size,
                      char **owned, size_t *n_owned)
{
  int argc = 0;
  const char *extra[MAX_ARGS];
  size_t n_extra = string_list(ydoc_get(expect, "args"), extra, MAX_ARGS - 16);
  double limit = number_or(ydoc_get(expect, "timeoutSeconds"), DEFAULT_TIMEOUT_SECONDS);

  /* A hung run must fail its own case, not stall the whole suite until
   * meson's timeout: coreutils timeout stops it (SIGTERM, then SIGKILL). */
  snprintf(timeout_buf, timeout_size, "%g", limit);
  if (access("/usr/bin/timeout", X_OK) == 0) {
    argv[argc++] = "/usr/bin/timeout";
    argv[argc++] = "--kill-after=5";
    argv[argc++] = timeout_buf;
  }
  argv[argc++] = (char *)test_exitprobe_bin();
  argv[argc++] = "run";
  argv[argc++] = "--quiet";
  argv[argc++] = "--color";
  argv[argc++] = "never";
  argv[argc++] = "--report";
  argv[argc++] = (char *)report;
  for (size_t i = 0; i < n_extra; i++)
    argv[argc++] = expand_dir(extra[i], c->dir, owned, n_owned);
  argv[argc++] = c->workflow;
  argv[argc] = NULL;
  return argc;
}

static int expected_status(const struct ydoc_node *expect)
{
  long long status;
  const char *phase = scalar(ydoc_get(expect, "phase"));

  if (ydoc_as_int(ydoc_get(expect, "exitStatus"), &status) == 0)
    return (int)status;
  return (phase && strcmp(phase, "Succeeded") == 0) ? 0 : 1;
}

static void check_report(struct verdict *v, json_t *report, const struct ydoc_node *expect)
{
  json_t *status = json_object_get(report, "status");
  const struct ydoc_node *nodes = ydoc_get(expect, "nodes");
  const struct ydoc_node *absent = ydoc_get(expect, "absent");
  const struct ydoc_node *count = ydoc_get(expect, "nodeCount");
  const struct ydoc_node *n;

  if ((n = ydoc_get(expect, "phase")))
    check_equal(v, report, "workflow phase", jstr(status, "phase"), scalar(n) ? scalar(n) : "");
  if ((n = ydoc_get(expect, "message")))
    check_equal(v, report, "workflow message", jstr(status, "message"), scalar(n) ? scalar(n) : "");
  if ((n = ydoc_get(expect, "messageContains")))
    check_contains(v, report, "workflow message", jstr(status, "message"), n, false);
  if (nodes && nodes->kind == YDOC_MAPPING)
    for (size_t i = 0; i < nodes->n_pairs; i++)
      check_node(v, report, nodes->pairs[i].key->scalar, nodes->pairs[i].value);
  if (absent) {
    const char *keys[128];
    size_t k = string_list(absent, keys, 128);
    for (size_t i = 0; i < k; i++) {
      bool ambiguous;
      if (find_node(report, keys[i], &ambiguous) || ambiguous)
        verdict_add(v, "node %s: expected absent, but it exists", keys[i]);
    }
  }
  if (count) {
    long long want;
    size_t got = json_object_size(report_nodes(report));
    if (ydoc_as_int(count, &want) < 0)
      verdict_add(v, "expectation error: nodeCount must be an integer");
    else if ((long long)got != want)
      verdict_add(v, "nodeCount: expected %lld, got %zu", want, got);
  }
  if ((n = ydoc_get(expect, "exitHandler")))
    check_exit_handler(v, report, n);
}

static void run_case(void **state)
{
  const struct conformance_case *c = *state;
  const char *why = test_sandbox_unavailable();
  struct verdict v = {0};
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  char *argv[MAX_ARGS + 16];
  char *owned[MAX_ARGS];
  size_t n_owned = 0;
  char timeout_buf[32];
  json_error_t jerr;
  json_t *report = NULL;

  if (why) {
    printf("skipped: %s\n", why);
    skip();
  }
  if (ydoc_load_file(c->expect, NULL, &doc, &err) < 0 || !doc->root)
    fail_msg("%s: cannot load expectations: %s", c->expect, err ? err->message : "empty");
  const struct ydoc_node *expect = doc->root;

  check_keys(&v, "expectations", expect, top_keys);
  if (!ydoc_get(expect, "phase") && !ydoc_get(expect, "exitStatus"))
    verdict_add(&v, "expectation error: give the workflow's phase, or exitStatus for rejected input");
  check_citation(&v, c->workflow);

  const char *dir = test_temp_dir();
  assert_non_null(dir);
  const char *report_path = test_path(dir, "report.json");
  build_argv(c, expect, report_path, argv, timeout_buf, sizeof timeout_buf, owned, &n_owned);

  double start = now_seconds();
  struct test_cmd_result r = test_run(argv);
  double elapsed = now_seconds() - start;
  for (size_t i = 0; i < n_owned; i++)
    free(owned[i]);

  int want_status = expected_status(expect);
  if (r.exit_status != want_status)
    verdict_add(&v, "exit status: expected %d, got %d%s", want_status, r.exit_status,
                r.exit_status == 124 ? " (timed out)" : "");
  check_contains(&v, NULL, "stderr", r.err, ydoc_get(expect, "stderrContains"), false);

  double min_s = number_or(ydoc_get(expect, "minSeconds"), 0);
  double max_s = number_or(ydoc_get(expect, "maxSeconds"), 1e9);
  if (elapsed < min_s)
    verdict_add(&v, "duration: expected at least %.2fs, took %.2fs", min_s, elapsed);
  if (elapsed > max_s)
    verdict_add(&v, "duration: expected at most %.2fs, took %.2fs", max_s, elapsed);

  if (want_status == 2) {
    /* Rejected input: nothing runs and no report is written. */
    if (access(report_path, F_OK) == 0)
      verdict_add(&v, "a report was written for rejected input");
  } else {
    report = json_load_file(report_path, 0, &jerr);
    if (!report)
      verdict_add(&v, "report unreadable: %s", jerr.text);
    else
      check_report(&v, report, expect);
  }

  printf("%s: %.2fs\n", c->name, elapsed);
  if (v.failures > 0) {
    fprintf(stderr, "%s: %zu mismatch(es):\n%s", c->name, v.failures, v.text);
    if (report)
      print_tree(report);
    if (!report || r.exit_status != want_status)
      fprintf(stderr, "    stderr: %.2000s\n", r.err ? r.err : "");
  }
  size_t failures = v.failures;
  free(v.text);
  json_decref(report);
  test_cmd_result_free(&r);
  ydoc_free(doc);
  ep_error_free(&err);
  if (failures > 0)
    fail_msg("%s does not end as Argo ends it (%zu mismatches)", c->name, failures);
}

/* ---- discovery ----------------------------------------------------------- */

static bool is_workflow(const char *name)
{
  size_t len = strlen(name), slen = strlen(EXPECT_SUFFIX);

  if (name[0] == '.' || len < 6 || strcmp(name + len - 5, ".yaml") != 0)
    return false;
  return !(len >= slen && strcmp(name + len - slen, EXPECT_SUFFIX) == 0);
}

static int compare_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted workflow file names in dir; *count receives how many. */
static char **list_workflows(const char *dir, size_t *count)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL;
  size_t n = 0;

  *count = 0;
  if (!d) {
    fprintf(stderr, "cannot open %s: %s\n", dir, strerror(errno));
    return NULL;
  }
  while ((e = readdir(d))) {
    if (!is_workflow(e->d_name))
      continue;
    char **grown = realloc(names, (n + 1) * sizeof *names);
    if (!grown)
      abort();
    names = grown;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, compare_names);
  *count = n;
  return names;
}

int main(int argc, char **argv)
{
  char dir[4096];
  size_t count = 0;
  char **names;
  struct CMUnitTest *tests;
  struct conformance_case *cases;
  int rc;
  const char *only = argc > 1 ? argv[1] : NULL; /* run one case by name, for debugging */

  snprintf(dir, sizeof dir, "%s/tests/conformance", test_source_root());
  names = list_workflows(dir, &count);
  if (count == 0) {
    fprintf(stderr, "no workflows in %s\n", dir);
    return 1;
  }
  tests = calloc(count, sizeof *tests);
  cases = calloc(count, sizeof *cases);
  if (!tests || !cases)
    abort();

  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    if (only && !strstr(names[i], only))
      continue;
    struct conformance_case *c = &cases[n];
    size_t base = strlen(names[i]) - 5;
    c->name = names[i];
    c->dir = dir;
    if (asprintf(&c->workflow, "%s/%s", dir, names[i]) < 0 ||
        asprintf(&c->expect, "%s/%.*s%s", dir, (int)base, names[i], EXPECT_SUFFIX) < 0)
      abort();
    if (access(c->expect, R_OK) != 0)
      fprintf(stderr, "warning: %s has no %s\n", names[i], EXPECT_SUFFIX);
    tests[n].name = c->name;
    tests[n].test_func = run_case;
    tests[n].initial_state = c;
    n++;
  }
  rc = _cmocka_run_group_tests("conformance", tests, n, NULL, NULL);
  for (size_t i = 0; i < n; i++) {
    free(cases[i].workflow);
    free(cases[i].expect);
  }
  for (size_t i = 0; i < count; i++)
    free(names[i]);
  free(names);
  free(cases);
  free(tests);
  return rc;
}
