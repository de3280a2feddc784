/* The JSON Schema of the report (docs/report.schema.json) against the
 * reports the binary writes: the seed workflow, the scenario library, the
 * fault scenarios, the conformance workflows, a --fault quick run; and
 * against the hand-written reports of tests/data/reports/.
 *
 * The validator is small and written here (jansson and POSIX regex): it
 * knows the keywords the schema uses and fails on any other, so a schema
 * change cannot slip past it unchecked.  Where python3 has the jsonschema
 * module the same reports are also checked with it, as a second opinion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_helpers.h"

/* ---- the validator ------------------------------------------------------------ */

static const char *const supported_keywords[] = {
    "$schema", "$id",       "title",     "description", "$defs",   "$ref",
    "type",    "const",     "enum",      "required",    "properties",
    "additionalProperties", "items",     "pattern",     "minimum", "exclusiveMinimum",
    "minLength", "maxLength", "minItems", "minProperties", "if",   "then",
    "dependentRequired",    NULL};

struct regex_entry {
  char *pattern;
  regex_t re;
};

struct validator {
  const json_t *schema; /* the whole document, for $ref */
  struct regex_entry *regexes;
  size_t n_regexes;
  FILE *log;            /* one line per violation */
  size_t errors;
};

static void violation(struct validator *v, bool report, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void violation(struct validator *v, bool report, const char *path, const char *fmt, ...) {
  if (!report)
    return;
  v->errors++;
  fprintf(v->log, "%s: ", path[0] != '\0' ? path : "/");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(v->log, fmt, ap);
  va_end(ap);
  fputc('\n', v->log);
}

static const regex_t *regex_for(struct validator *v, const char *pattern) {
  for (size_t i = 0; i < v->n_regexes; i++)
    if (strcmp(v->regexes[i].pattern, pattern) == 0)
      return &v->regexes[i].re;
  v->regexes = realloc(v->regexes, (v->n_regexes + 1) * sizeof(*v->regexes));
  assert_non_null(v->regexes);
  struct regex_entry *e = &v->regexes[v->n_regexes];
  if (regcomp(&e->re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
    fail_msg("schema pattern is not a POSIX extended regex: %s", pattern);
  e->pattern = strdup(pattern);
  v->n_regexes++;
  return &e->re;
}

static const json_t *resolve_ref(const struct validator *v, const char *ref) {
  if (strncmp(ref, "#/", 2) != 0)
    fail_msg("only local references are supported: %s", ref);
  const json_t *at = v->schema;
  char *copy = strdup(ref + 2);
  char *save = NULL;
  for (char *part = strtok_r(copy, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save))
    at = json_object_get(at, part);
  free(copy);
  if (at == NULL)
    fail_msg("unresolved $ref %s", ref);
  return at;
}

static bool type_matches(const char *type, const json_t *inst) {
  if (strcmp(type, "object") == 0)
    return json_is_object(inst);
  if (strcmp(type, "array") == 0)
    return json_is_array(inst);
  if (strcmp(type, "string") == 0)
    return json_is_string(inst);
  if (strcmp(type, "integer") == 0)
    return json_is_integer(inst) ||
           (json_is_real(inst) && json_real_value(inst) == (double)(long long)json_real_value(inst));
  if (strcmp(type, "number") == 0)
    return json_is_number(inst);
  if (strcmp(type, "boolean") == 0)
    return json_is_boolean(inst);
  if (strcmp(type, "null") == 0)
    return json_is_null(inst);
  fail_msg("unknown type in the schema: %s", type);
  return false;
}

static size_t code_points(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80)
      n++;
  return n;
}

static char *child_path(const char *path, const char *key) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", path, key) < 0)
    abort();
  return p;
}

static bool validate(struct validator *v, const json_t *schema, const json_t *inst,
                     const char *path, bool report);

static bool validate_object(struct validator *v, const json_t *schema, const json_t *inst,
                            const char *path, bool report) {
  bool ok = true;
  const json_t *props = json_object_get(schema, "properties");
  const json_t *additional = json_object_get(schema, "additionalProperties");
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)inst, key, value) {
    char *p = child_path(path, key);
    const json_t *sub = json_object_get(props, key);
    if (sub != NULL)
      ok &= validate(v, sub, value, p, report);
    else if (additional != NULL)
      ok &= validate(v, additional, value, p, report);
    free(p);
  }
  size_t i;
  const json_t *name;
  json_array_foreach(json_object_get(schema, "required"), i, name) {
    if (json_object_get(inst, json_string_value(name)) == NULL) {
      violation(v, report, path, "required property '%s' is missing", json_string_value(name));
      ok = false;
    }
  }
  const json_t *deps = json_object_get(schema, "dependentRequired");
  json_object_foreach((json_t *)deps, key, value) {
    if (json_object_get(inst, key) == NULL)
      continue;
    json_array_foreach(value, i, name) {
      if (json_object_get(inst, json_string_value(name)) == NULL) {
        violation(v, report, path, "'%s' is present, so '%s' is required", key,
                  json_string_value(name));
        ok = false;
      }
    }
  }
  const json_t *min = json_object_get(schema, "minProperties");
  if (min != NULL && json_object_size(inst) < (size_t)json_integer_value(min)) {
    violation(v, report, path, "fewer than %lld properties", (long long)json_integer_value(min));
    ok = false;
  }
  return ok;
}

static bool validate_array(struct validator *v, const json_t *schema, const json_t *inst,
                           const char *path, bool report) {
  bool ok = true;
  const json_t *items = json_object_get(schema, "items");
  size_t i;
  const json_t *item;
  json_array_foreach(inst, i, item) {
    if (items == NULL)
      break;
    char idx[32];
    snprintf(idx, sizeof(idx), "%zu", i);
    char *p = child_path(path, idx);
    ok &= validate(v, items, item, p, report);
    free(p);
  }
  const json_t *min = json_object_get(schema, "minItems");
  if (min != NULL && json_array_size(inst) < (size_t)json_integer_value(min)) {
    violation(v, report, path, "fewer than %lld items", (long long)json_integer_value(min));
    ok = false;
  }
  return ok;
}

static bool validate_string(struct validator *v, const json_t *schema, const json_t *inst,
                            const char *path, bool report) {
  bool ok = true;
  const char *s = json_string_value(inst);
  size_t len = code_points(s, json_string_length(inst));
  const json_t *min = json_object_get(schema, "minLength");
  const json_t *max = json_object_get(schema, "maxLength");
  if (min != NULL && len < (size_t)json_integer_value(min)) {
    violation(v, report, path, "shorter than %lld characters", (long long)json_integer_value(min));
    ok = false;
  }
  if (max != NULL && len > (size_t)json_integer_value(max)) {
    violation(v, report, path, "longer than %lld characters", (long long)json_integer_value(max));
    ok = false;
  }
  const char *pattern = json_string_value(json_object_get(schema, "pattern"));
  if (pattern != NULL && regexec(regex_for(v, pattern), s, 0, NULL, 0) != 0) {
    violation(v, report, path, "\"%.80s\" does not match /%s/", s, pattern);
    ok = false;
  }
  return ok;
}

static bool validate_number(struct validator *v, const json_t *schema, const json_t *inst,
                            const char *path, bool report) {
  bool ok = true;
  double x = json_number_value(inst);
  const json_t *min = json_object_get(schema, "minimum");
  const json_t *xmin = json_object_get(schema, "exclusiveMinimum");
  if (min != NULL && x < json_number_value(min)) {
    violation(v, report, path, "%g is less than the minimum %g", x, json_number_value(min));
    ok = false;
  }
  if (xmin != NULL && x <= json_number_value(xmin)) {
    violation(v, report, path, "%g is not more than %g", x, json_number_value(xmin));
    ok = false;
  }
  return ok;
}

static bool validate_type(struct validator *v, const json_t *type, const json_t *inst,
                          const char *path, bool report) {
  if (type == NULL)
    return true;
  if (json_is_string(type) && type_matches(json_string_value(type), inst))
    return true;
  size_t i;
  const json_t *t;
  json_array_foreach(type, i, t) {
    if (type_matches(json_string_value(t), inst))
      return true;
  }
  char *text = json_dumps(type, JSON_ENCODE_ANY | JSON_COMPACT);
  violation(v, report, path, "not of type %s", text);
  free(text);
  return false;
}

static bool validate(struct validator *v, const json_t *schema, const json_t *inst,
                     const char *path, bool report) {
  if (json_is_true(schema))
    return true;
  if (json_is_false(schema)) {
    violation(v, report, path, "not allowed here");
    return false;
  }
  const char *ref = json_string_value(json_object_get(schema, "$ref"));
  if (ref != NULL && !validate(v, resolve_ref(v, ref), inst, path, report))
    return false;
  if (!validate_type(v, json_object_get(schema, "type"), inst, path, report))
    return false;
  bool ok = true;
  const json_t *cnst = json_object_get(schema, "const");
  if (cnst != NULL && !json_equal(cnst, inst)) {
    char *want = json_dumps(cnst, JSON_ENCODE_ANY | JSON_COMPACT);
    violation(v, report, path, "is not %s", want);
    free(want);
    ok = false;
  }
  const json_t *en = json_object_get(schema, "enum");
  if (en != NULL) {
    bool found = false;
    size_t i;
    const json_t *option;
    json_array_foreach(en, i, option) found = found || json_equal(option, inst);
    if (!found) {
      char *got = json_dumps(inst, JSON_ENCODE_ANY | JSON_COMPACT);
      violation(v, report, path, "%.80s is not one of the allowed values", got);
      free(got);
      ok = false;
    }
  }
  if (json_is_object(inst))
    ok &= validate_object(v, schema, inst, path, report);
  else if (json_is_array(inst))
    ok &= validate_array(v, schema, inst, path, report);
  else if (json_is_string(inst))
    ok &= validate_string(v, schema, inst, path, report);
  else if (json_is_number(inst))
    ok &= validate_number(v, schema, inst, path, report);
  const json_t *cond = json_object_get(schema, "if");
  const json_t *then = json_object_get(schema, "then");
  if (cond != NULL && then != NULL && validate(v, cond, inst, path, false))
    ok &= validate(v, then, inst, path, report);
  return ok;
}

/* Every subschema uses only keywords the validator knows. */
static void check_keywords(const json_t *schema, const char *where) {
  if (json_is_boolean(schema))
    return;
  if (!json_is_object(schema))
    fail_msg("%s: a schema must be an object or a boolean", where);
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)schema, key, value) {
    bool known = false;
    for (size_t i = 0; supported_keywords[i] != NULL && !known; i++)
      known = strcmp(key, supported_keywords[i]) == 0;
    if (!known)
      fail_msg("%s: keyword '%s' is not supported by this validator", where, key);
    char *p = child_path(where, key);
    if (strcmp(key, "properties") == 0 || strcmp(key, "$defs") == 0) {
      const char *name;
      json_t *sub;
      json_object_foreach(value, name, sub) {
        char *q = child_path(p, name);
        check_keywords(sub, q);
        free(q);
      }
    } else if (strcmp(key, "additionalProperties") == 0 || strcmp(key, "items") == 0 ||
               strcmp(key, "if") == 0 || strcmp(key, "then") == 0) {
      check_keywords(value, p);
    }
    free(p);
  }
}

static json_t *load_json(const char *path) {
  json_error_t jerr;
  json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &jerr);
  if (doc == NULL)
    fail_msg("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
  return doc;
}

static json_t *load_schema(void) {
  json_t *schema = load_json(test_path(test_source_root(), "docs/report.schema.json"));
  check_keywords(schema, "#");
  return schema;
}

/* Violations of one document, one per line ("" when valid).  malloc'd. */
static char *violations(const json_t *schema, const json_t *doc) {
  char *text = NULL;
  size_t size = 0;
  struct validator v = {.schema = schema, .log = open_memstream(&text, &size)};
  assert_non_null(v.log);
  validate(&v, schema, doc, "", true);
  fclose(v.log);
  for (size_t i = 0; i < v.n_regexes; i++) {
    regfree(&v.regexes[i].re);
    free(v.regexes[i].pattern);
  }
  free(v.regexes);
  return text;
}

/* ---- the schema itself -------------------------------------------------------- */

static void test_schema_is_supported(void **state) {
  (void)state;
  json_t *schema = load_schema();
  const char *dialect = json_string_value(json_object_get(schema, "$schema"));
  assert_non_null(dialect);
  assert_string_equal(dialect, "https://json-schema.org/draft/2020-12/schema");
  /* Everything docs/REPORT.md lists at the top level is declared. */
  const char *top[] = {"apiVersion", "kind",     "workflow",     "status",  "exitHandler",
                       "run",        "environment", "warnings",  "scenario", "faults",
                       "expectations", "verdict", "verdictReason", "watchdog", "idempotency"};
  for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
    if (json_object_get(json_object_get(schema, "properties"), top[i]) == NULL)
      fail_msg("the schema does not declare '%s'", top[i]);
  json_decref(schema);
}

/* ---- the validator catches what it must ---------------------------------------- */

struct mutation {
  const char *what;
  const char *path; /* where the violation must be reported */
  void (*apply)(json_t *report);
};

static json_t *at(json_t *root, const char *a, const char *b, const char *c) {
  json_t *x = json_object_get(root, a);
  if (b != NULL)
    x = json_object_get(x, b);
  if (c != NULL)
    x = json_object_get(x, c);
  assert_non_null(x);
  return x;
}

static json_t *main_node(json_t *r) { return at(r, "status", "nodes", "inc"); }

static void m_no_api(json_t *r) { json_object_del(r, "apiVersion"); }
static void m_api_v2(json_t *r) { json_object_set_new(r, "apiVersion", json_string("exitprobe/v2")); }
static void m_extra(json_t *r) { json_object_set_new(r, "extra", json_integer(1)); }
static void m_phase(json_t *r) { json_object_set_new(at(r, "status", NULL, NULL), "phase", json_string("Skipped")); }
static void m_time(json_t *r) { json_object_set_new(main_node(r), "startedAt", json_string("2026-01-02 03:04:05")); }
static void m_runs(json_t *r) { json_object_set_new(at(r, "exitHandler", NULL, NULL), "runs", json_integer(-1)); }
static void m_eh_phase(json_t *r) { json_object_del(at(r, "exitHandler", NULL, NULL), "phase"); }
static void m_exit_code(json_t *r) { json_object_set_new(at(r, "status", "nodes", "inc"), "outputs", json_pack("{s:i}", "exitCode", 0)); }
static void m_no_scenario(json_t *r) { json_object_del(r, "scenario"); }
static void m_children(json_t *r) { json_object_set_new(main_node(r), "children", json_array()); }
static void m_time_scale(json_t *r) { json_object_set_new(at(r, "run", NULL, NULL), "timeScale", json_real(0)); }
static void m_outputs(json_t *r) { json_object_set_new(main_node(r), "outputs", json_object()); }
static void m_name(json_t *r) { json_object_set_new(at(r, "scenario", NULL, NULL), "name", json_string("")); }
static void m_pod_name(json_t *r) { json_object_del(main_node(r), "podName"); }
static void m_cgroup(json_t *r) { json_object_set_new(at(r, "environment", NULL, NULL), "cgroup", json_string("v3")); }
static void m_node_flag(json_t *r) { json_object_set_new(main_node(r), "nodeFlag", json_pack("{s:b}", "hooked", 0)); }
static void m_fault_action(json_t *r) { json_object_set_new(json_array_get(at(r, "faults", NULL, NULL), 0), "action", json_string("meteor")); }
static void m_expectation(json_t *r) { json_object_del(json_array_get(at(r, "expectations", NULL, NULL), 0), "line"); }
static void m_verdict(json_t *r) { json_object_set_new(r, "verdict", json_string("maybe")); }
static void m_delivery(json_t *r) {
  json_object_set_new(r, "watchdog", json_pack("{s:[s], s:s}", "actions", "compensated", "delivery",
                                               "exactly-once"));
}

static void test_validator_catches_violations(void **state) {
  (void)state;
  const struct mutation mutations[] = {
      {"apiVersion missing", "/", m_no_api},
      {"another apiVersion", "/apiVersion", m_api_v2},
      {"an undeclared field", "/extra", m_extra},
      {"a workflow phase that nodes only have", "/status/phase", m_phase},
      {"a time not in RFC 3339", "/status/nodes/inc/startedAt", m_time},
      {"a negative count", "/exitHandler/runs", m_runs},
      {"ran without a phase", "/exitHandler", m_eh_phase},
      {"exitCode as a number", "/status/nodes/inc/outputs/exitCode", m_exit_code},
      {"a verdict without a scenario", "/", m_no_scenario},
      {"empty children", "/status/nodes/inc/children", m_children},
      {"timeScale 0", "/run/timeScale", m_time_scale},
      {"empty outputs", "/status/nodes/inc/outputs", m_outputs},
      {"an empty scenario name", "/scenario/name", m_name},
      {"a Pod without podName", "/status/nodes/inc", m_pod_name},
      {"an unknown cgroup layout", "/environment/cgroup", m_cgroup},
      {"hooked: false", "/status/nodes/inc/nodeFlag/hooked", m_node_flag},
      {"an unknown fault action", "/faults/0/action", m_fault_action},
      {"an expectation without its line", "/expectations/0", m_expectation},
      {"an unknown verdict", "/verdict", m_verdict},
      {"a delivery policy nobody can promise", "/watchdog/delivery", m_delivery},
  };
  json_t *schema = load_schema();
  json_t *base = load_json(test_path(test_data_dir(), "reports/inconclusive.json"));
  char *clean = violations(schema, base);
  if (clean[0] != '\0')
    fail_msg("the base report is not valid:\n%s", clean);
  free(clean);
  for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]); i++) {
    json_t *r = json_deep_copy(base);
    mutations[i].apply(r);
    char *found = violations(schema, r);
    char want[256];
    snprintf(want, sizeof(want), "%s: ", mutations[i].path);
    bool hit = false;
    for (const char *line = found; line != NULL && *line != '\0' && !hit;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
      hit = strncmp(line, want, strlen(want)) == 0;
    if (found[0] == '\0' || !hit)
      fail_msg("%s: expected a violation at %s, got:\n%s", mutations[i].what, mutations[i].path,
               found[0] ? found : "(none)");
    free(found);
    json_decref(r);
  }
  json_decref(base);
  json_decref(schema);
}

/* ---- reports --------------------------------------------------------------------- */

static size_t validate_dir(const json_t *schema, const char *dir, bool recursive, char **failures) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *path = strdup(test_path(dir, e->d_name));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    size_t len = strlen(e->d_name);
    if (S_ISDIR(sb.st_mode) && recursive) {
      n += validate_dir(schema, path, true, failures);
    } else if (S_ISREG(sb.st_mode) && len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
      json_t *doc = load_json(path);
      char *found = violations(schema, doc);
      if (found[0] != '\0') {
        char *more = NULL;
        if (asprintf(&more, "%s%s:\n%s", *failures ? *failures : "", path, found) < 0)
          abort();
        free(*failures);
        *failures = more;
      }
      free(found);
      json_decref(doc);
      n++;
    }
    free(path);
  }
  closedir(d);
  return n;
}

static void test_hand_written_reports(void **state) {
  (void)state;
  json_t *schema = load_schema();
  char *failures = NULL;
  size_t n = validate_dir(schema, test_path(test_data_dir(), "reports"), false, &failures);
  assert_true(n >= 5);
  if (failures != NULL)
    fail_msg("reports in tests/data/reports/ do not match the schema:\n%s", failures);
  const char *invalid[] = {"reports/bad/wrong-api.json", "reports/bad/no-nodes.json"};
  for (size_t i = 0; i < 2; i++) {
    json_t *doc = load_json(test_path(test_data_dir(), invalid[i]));
    char *found = violations(schema, doc);
    if (found[0] == '\0')
      fail_msg("%s passes the schema", invalid[i]);
    free(found);
    json_decref(doc);
  }
  json_decref(schema);
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Run exitprobe with a time limit; what it exits with does not matter here,
 * only the report it leaves. */
static void run_exitprobe(char **args, size_t n_args) {
  char *argv[32];
  size_t argc = 0;
  argv[argc++] = "/usr/bin/timeout";
  argv[argc++] = "--kill-after=5";
  argv[argc++] = "120";
  argv[argc++] = (char *)test_exitprobe_bin();
  for (size_t i = 0; i < n_args && argc < 31; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status == 124 || r.exit_status >= 128 || r.exit_status == 70)
    fail_msg("exitprobe %s %s: exit status %d\n%s", args[0], args[1], r.exit_status, r.err);
  test_cmd_result_free(&r);
}

static void python_second_opinion(const char *dir) {
  char *probe[] = {"/usr/bin/env", "python3", "-c", "import jsonschema", NULL};
  struct test_cmd_result r = test_run(probe);
  bool available = r.exit_status == 0;
  test_cmd_result_free(&r);
  if (!available) {
    printf("# python3 jsonschema not installed: the built-in validator alone\n");
    return;
  }
  const char *script =
      "import glob, json, os, sys, jsonschema\n"
      "schema = json.load(open(sys.argv[1]))\n"
      "jsonschema.Draft202012Validator.check_schema(schema)\n"
      "v = jsonschema.Draft202012Validator(schema)\n"
      "bad = 0\n"
      "for f in sorted(glob.glob(os.path.join(sys.argv[2], '**', '*.json'), recursive=True)):\n"
      "    for e in v.iter_errors(json.load(open(f))):\n"
      "        bad += 1\n"
      "        print(f, '/' + '/'.join(map(str, e.absolute_path)), e.message[:200])\n"
      "sys.exit(1 if bad else 0)\n";
  char *schema = strdup(test_path(test_source_root(), "docs/report.schema.json"));
  char *argv[] = {"/usr/bin/env", "python3", "-c", (char *)script, schema, (char *)dir, NULL};
  r = test_run(argv);
  if (r.exit_status != 0)
    fail_msg("python jsonschema disagrees:\n%s%s", r.out, r.err);
  test_cmd_result_free(&r);
  free(schema);
}

static void test_reports_the_binary_writes(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("# skipped: %s\n", why);
    skip();
  }
  const char *out = test_temp_dir();
  assert_non_null(out);
  const char *root = test_source_root();
  char *seed = strdup(test_path(root, "scenarios/exit-handler-workflow.yaml"));

  char *seed_report = strdup(test_path(out, "seed.json"));
  char *a1[] = {"run", seed, "--report", seed_report, "-q", "--color", "never"};
  run_exitprobe(a1, 7);
  char *quick_report = strdup(test_path(out, "quick-fault.json"));
  char *a2[] = {"run", seed, "--report", quick_report, "-q", "--fault", "work:signal=SIGKILL@100ms"};
  run_exitprobe(a2, 7);

  char *lib = strdup(test_path(root, "scenarios"));
  char *lib_out = strdup(test_path(out, "scenarios"));
  char *a3[] = {"run", lib, "--report-dir", lib_out};
  run_exitprobe(a3, 4);
  char *good = strdup(test_path(root, "tests/data/scenarios/good"));
  char *good_out = strdup(test_path(out, "good"));
  char *a4[] = {"run", good, "--report-dir", good_out};
  run_exitprobe(a4, 4);

  /* The fault scenarios (top level only: cli/ holds deliberate mistakes),
   * then every conformance workflow. */
  const char *dirs[] = {"tests/data/faults", "tests/conformance"};
  for (size_t k = 0; k < 2; k++) {
    char *dir = strdup(test_path(root, dirs[k]));
    DIR *d = opendir(dir);
    if (d == NULL) {
      printf("# %s: not present\n", dirs[k]);
      free(dir);
      continue;
    }
    char *sub_out = strdup(test_path(out, k == 0 ? "faults" : "conformance"));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!has_suffix(e->d_name, ".yaml") || has_suffix(e->d_name, ".expect.yaml"))
        continue;
      char *file = strdup(test_path(dir, e->d_name));
      char *report = NULL;
      if (asprintf(&report, "%s/%.*s.json", sub_out, (int)(strlen(e->d_name) - 5), e->d_name) < 0)
        abort();
      char *args[] = {"run", file, "--report", report, "-q", "--color", "never"};
      run_exitprobe(args, 7);
      free(report);
      free(file);
    }
    closedir(d);
    free(sub_out);
    free(dir);
  }

  json_t *schema = load_schema();
  char *failures = NULL;
  size_t n = validate_dir(schema, out, true, &failures);
  printf("# %zu reports checked against docs/report.schema.json\n", n);
  if (failures != NULL)
    fail_msg("reports written by exitprobe do not match the schema:\n%s", failures);
  /* The seed, the quick run, 8+ scenarios and the conformance suite. */
  assert_true(n >= 20);
  json_t *quick = load_json(quick_report);
  assert_non_null(json_object_get(quick, "faults"));
  json_decref(quick);
  json_decref(schema);
  python_second_opinion(out);

  free(seed);
  free(seed_report);
  free(quick_report);
  free(lib);
  free(lib_out);
  free(good);
  free(good_out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema_is_supported),
      cmocka_unit_test(test_validator_catches_violations),
      cmocka_unit_test(test_hand_written_reports),
      cmocka_unit_test(test_reports_the_binary_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
