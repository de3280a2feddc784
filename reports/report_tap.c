#include "report_tap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "expectations.h"
#include "report_load.h"

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

/* A description or directive reason: one line, with '#' and '\' escaped
 * as TAP 14 asks (an unescaped '#' would start a directive). */
static void put_desc(FILE *out, const char *s) {
  for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c != '\0'; c++) {
    if (*c == '#' || *c == '\\')
      fputc('\\', out);
    fputc((*c < 0x20 || *c == 0x7f) ? ' ' : *c, out);
  }
}

/* A YAML scalar as a JSON value: quoted, escaped, on one line. */
static void put_yaml_value(FILE *out, const json_t *v) {
  char *text = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  fputs(text != NULL ? text : "null", out);
  free(text);
}

static void put_yaml_string(FILE *out, const char *indent, const char *key, const char *value) {
  if (value == NULL)
    return;
  json_t *s = json_string(value);
  if (s == NULL) /* not UTF-8: cannot come from a report jansson parsed */
    s = json_string("(not UTF-8)");
  fprintf(out, "%s%s: ", indent, key);
  put_yaml_value(out, s);
  fputc('\n', out);
  json_decref(s);
}

static void put_at(FILE *out, const char *indent, const char *file, const json_t *result) {
  char *at = NULL;
  if (asprintf(&at, "%s:%lld:%lld", file ? file : "scenario",
               (long long)json_integer_value(json_object_get(result, "line")),
               (long long)json_integer_value(json_object_get(result, "column"))) < 0)
    abort();
  put_yaml_string(out, indent, "at", at);
  free(at);
}

static void put_subtest(FILE *out, const json_t *results, const char *name, const char *file) {
  fputs("# Subtest: ", out);
  put_desc(out, name);
  fprintf(out, "\n    1..%zu\n", json_array_size(results));
  size_t i;
  const json_t *r;
  json_array_foreach(results, i, r) {
    bool ok = json_is_true(json_object_get(r, "ok"));
    fprintf(out, "    %s %zu - ", ok ? "ok" : "not ok", i + 1);
    put_desc(out, str_at(r, "path") ? str_at(r, "path") : "expectation");
    fputc('\n', out);
    if (ok)
      continue;
    char *text = expectation_result_text(r);
    fputs("      ---\n", out);
    put_yaml_string(out, "      ", "message", text);
    fputs("      severity: \"fail\"\n      expected: ", out);
    put_yaml_value(out, json_object_get(r, "expected"));
    fputs("\n      observed: ", out);
    put_yaml_value(out, json_object_get(r, "actual"));
    fputc('\n', out);
    put_yaml_string(out, "      ", "note", str_at(r, "note"));
    put_at(out, "      ", file, r);
    fputs("      ...\n", out);
    free(text);
  }
}

static void put_report_diagnostics(FILE *out, const json_t *report, const struct report_outcome *o,
                                   const char *source) {
  const json_t *status = json_object_get(report, "status");
  const json_t *eh = json_object_get(report, "exitHandler");
  const json_t *results = json_object_get(report, "expectations");
  size_t failed = expectations_failed_count(results);
  char *message = NULL;
  int w;
  if (failed > 0)
    w = asprintf(&message, "%zu of %zu expectations failed", failed, json_array_size(results));
  else
    w = asprintf(&message, "%s", o->reason ? o->reason : o->verdict);
  if (w < 0)
    abort();
  fputs("  ---\n", out);
  put_yaml_string(out, "  ", "message", message);
  put_yaml_string(out, "  ", "severity", strcmp(o->verdict, "error") == 0 ? "error" : "fail");
  put_yaml_string(out, "  ", "verdict", o->verdict);
  if (failed > 0)
    put_yaml_string(out, "  ", "reason", o->reason);
  put_yaml_string(out, "  ", "file", o->file);
  put_yaml_string(out, "  ", "report", source);
  put_yaml_string(out, "  ", "workflowPhase", str_at(status, "phase"));
  put_yaml_string(out, "  ", "workflowMessage", str_at(status, "message"));
  fprintf(out, "  exitHandler: {\"declared\": %s, \"ran\": %s, \"runs\": %lld",
          json_is_true(json_object_get(eh, "declared")) ? "true" : "false",
          json_is_true(json_object_get(eh, "ran")) ? "true" : "false",
          (long long)json_integer_value(json_object_get(eh, "runs")));
  if (str_at(eh, "workflowStatus") != NULL) {
    fputs(", \"workflowStatus\": ", out);
    put_yaml_value(out, json_object_get(eh, "workflowStatus"));
  }
  fputs("}\n  ...\n", out);
  free(message);
}

void report_tap_render(const json_t *const *reports, const char *const *sources, size_t n,
                       FILE *out) {
  fputs("TAP version 14\n", out);
  fprintf(out, "1..%zu\n", n);
  for (size_t i = 0; i < n; i++) {
    const json_t *report = reports[i];
    const char *source = sources != NULL ? sources[i] : NULL;
    struct report_outcome o;
    report_outcome_of(report, &o);
    const json_t *results = json_object_get(report, "expectations");
    if (json_array_size(results) > 0)
      put_subtest(out, results, o.name, o.file);
    bool passed = strcmp(o.verdict, "passed") == 0;
    bool skipped = strcmp(o.verdict, "inconclusive") == 0;
    fprintf(out, "%s %zu - ", passed || skipped ? "ok" : "not ok", i + 1);
    put_desc(out, o.name);
    if (skipped) {
      fputs(" # SKIP ", out);
      put_desc(out, o.reason ? o.reason : "inconclusive");
    }
    fputc('\n', out);
    if (!passed && !skipped)
      put_report_diagnostics(out, report, &o, source);
    report_outcome_free(&o);
  }
}
