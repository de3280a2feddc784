#include "expectations.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The same flags as every regex of a scenario (injector/scenario.h):
 * extended syntax, ^ $ . per line because logs are line based. */
#define EXPECT_REGEX_FLAGS (REG_EXTENDED | REG_NOSUB | REG_NEWLINE)

/* An actual value shown in a result is cut here: the whole log is already
 * in the report's node, the result only has to show why it failed. */
enum { ACTUAL_MAX_BYTES = 4096, TEXT_MAX_BYTES = 200 };

/* ---- the shape ---------------------------------------------------------- */

enum value_type { V_STRING, V_INT, V_BOOL };

struct field {
  const char *key;
  enum value_type type;
  const char *const *values; /* allowed exact values, or NULL for any */
};

static const char *const workflow_phases[] = {"Pending", "Running", "Succeeded", "Failed",
                                              "Error",   NULL};
static const char *const node_phases[] = {"Pending", "Running", "Succeeded", "Failed",
                                          "Error",   "Skipped", "Omitted",   NULL};
static const char *const workflow_statuses[] = {"Succeeded", "Failed", "Error", NULL};
static const char *const handler_by[] = {"controller", "watchdog", "none", NULL};

static const struct field workflow_fields[] = {
    {"phase", V_STRING, workflow_phases},
    {"message", V_STRING, NULL},
    {NULL, V_STRING, NULL},
};
static const struct field handler_fields[] = {
    {"ran", V_BOOL, NULL},
    {"runs", V_INT, NULL},
    {"phase", V_STRING, node_phases},
    {"workflowStatus", V_STRING, workflow_statuses},
    {"by", V_STRING, handler_by},
    {"idempotent", V_BOOL, NULL}, /* from the report's `idempotency` (a second run) */
    {NULL, V_STRING, NULL},
};
static const struct field node_fields[] = {
    {"phase", V_STRING, node_phases},
    {"exitCode", V_INT, NULL},
    {"message", V_STRING, NULL},
    {"oomKilled", V_BOOL, NULL},
    {"attempts", V_INT, NULL},
    {NULL, V_STRING, NULL},
};

static const char *const string_matchers[] = {"contains", "notContains", "matches", NULL};
static const char *const int_matchers[] = {"atLeast", "atMost", NULL};
static const char *const sections[] = {"workflow", "exitHandler", "nodes", "logs", NULL};

static const char *type_name(enum value_type t) {
  return t == V_STRING ? "a string" : t == V_INT ? "an integer" : "true or false";
}

static char *join(const char *const *names) {
  size_t len = 1;
  for (const char *const *p = names; *p != NULL; p++)
    len += strlen(*p) + 2;
  char *out = calloc(len, 1);
  if (out == NULL)
    abort();
  for (const char *const *p = names; *p != NULL; p++) {
    if (p != names)
      strcat(out, ", ");
    strcat(out, *p);
  }
  return out;
}

static bool in_list(const char *const *names, const char *s) {
  for (const char *const *p = names; p != NULL && *p != NULL; p++)
    if (strcmp(*p, s) == 0)
      return true;
  return false;
}

static const struct field *find_field(const struct field *fields, const char *key) {
  for (const struct field *f = fields; f->key != NULL; f++)
    if (strcmp(f->key, key) == 0)
      return f;
  return NULL;
}

/* "nodes.work.exitCode"; a target with dots or spaces is quoted, as jq
 * would: nodes."*.onExit".phase. */
static char *make_path(const char *section, const char *target, const char *field) {
  char *out = NULL;
  int rc;
  if (target == NULL)
    rc = asprintf(&out, "%s%s%s", section, field ? "." : "", field ? field : "");
  else if (strpbrk(target, ". \"") != NULL)
    rc = asprintf(&out, "%s.\"%s\"%s%s", section, target, field ? "." : "", field ? field : "");
  else
    rc = asprintf(&out, "%s.%s%s%s", section, target, field ? "." : "", field ? field : "");
  if (rc < 0)
    abort();
  return out;
}

struct vctx {
  const char *file;
  ep_error **err;
};

#define vfail(c, n, ...) ydoc_fail((c)->err, (c)->file, (n), __VA_ARGS__)

static int validate_regex(struct vctx *c, const struct ydoc_node *n, const char *path) {
  regex_t re;
  int rc = regcomp(&re, n->scalar, EXPECT_REGEX_FLAGS);
  if (rc != 0) {
    char buf[256];
    regerror(rc, &re, buf, sizeof(buf));
    return vfail(c, n, "%s: matches '%s' is not a valid extended regular expression: %s", path,
                 n->scalar, buf);
  }
  regfree(&re);
  return 0;
}

/* contains / notContains / matches: one string or a non-empty list of them. */
static int validate_text_operand(struct vctx *c, const struct ydoc_node *n, const char *path,
                                 const char *op) {
  const struct ydoc_node *single[1] = {n};
  const struct ydoc_node *const *items = single;
  size_t count = 1;
  if (n->kind == YDOC_SEQUENCE) {
    if (n->n_items == 0)
      return vfail(c, n, "%s: %s needs at least one string", path, op);
    items = (const struct ydoc_node *const *)n->items;
    count = n->n_items;
  }
  for (size_t i = 0; i < count; i++) {
    if (items[i]->kind != YDOC_SCALAR || ydoc_is_null(items[i]))
      return vfail(c, items[i], "%s: %s takes a string or a list of strings", path, op);
    if (strcmp(op, "matches") == 0 && validate_regex(c, items[i], path) < 0)
      return -1;
  }
  return 0;
}

static int validate_matcher(struct vctx *c, const struct ydoc_node *m, const char *path,
                            enum value_type type) {
  const char *const *allowed = type == V_STRING ? string_matchers
                               : type == V_INT  ? int_matchers
                                                : NULL;
  if (allowed == NULL)
    return vfail(c, m, "%s takes true or false, not a matcher", path);
  if (m->n_pairs == 0)
    return vfail(c, m, "%s: the matcher is empty (use %s)", path,
                 type == V_STRING ? "contains, notContains or matches" : "atLeast or atMost");
  long long bounds[2] = {0, 0};
  bool have[2] = {false, false};
  for (size_t i = 0; i < m->n_pairs; i++) {
    const struct ydoc_node *key = m->pairs[i].key, *value = m->pairs[i].value;
    if (!in_list(allowed, key->scalar)) {
      char *list = join(allowed);
      vfail(c, key, "unknown matcher '%s' for %s (expected one of: %s)", key->scalar, path, list);
      free(list);
      return -1;
    }
    if (type == V_STRING) {
      if (validate_text_operand(c, value, path, key->scalar) < 0)
        return -1;
      continue;
    }
    size_t which = strcmp(key->scalar, "atLeast") == 0 ? 0 : 1;
    if (value->kind != YDOC_SCALAR || ydoc_as_int(value, &bounds[which]) < 0)
      return vfail(c, value, "%s: %s takes an integer", path, key->scalar);
    have[which] = true;
  }
  if (have[0] && have[1] && bounds[0] > bounds[1])
    return vfail(c, m, "%s: atLeast %lld is above atMost %lld: nothing can match", path,
                 bounds[0], bounds[1]);
  return 0;
}

static int validate_leaf(struct vctx *c, const struct ydoc_node *n, const char *path,
                         const struct field *f) {
  if (n->kind == YDOC_MAPPING)
    return validate_matcher(c, n, path, f->type);
  if (n->kind != YDOC_SCALAR)
    return vfail(c, n, "%s must be a value or a matcher mapping, not a %s", path,
                 ydoc_kind_name(n->kind));
  if (ydoc_is_null(n))
    return vfail(c, n, "%s has no value", path);
  long long i = 0;
  bool b = false;
  switch (f->type) {
  case V_STRING:
    if (f->values != NULL && !in_list(f->values, n->scalar)) {
      char *list = join(f->values);
      vfail(c, n, "%s must be one of %s, not '%s'", path, list, n->scalar);
      free(list);
      return -1;
    }
    return 0;
  case V_INT:
    if (ydoc_as_int(n, &i) < 0)
      return vfail(c, n, "%s must be %s, not '%s'", path, type_name(f->type), n->scalar);
    return 0;
  case V_BOOL:
    if (ydoc_as_bool(n, &b) < 0)
      return vfail(c, n, "%s must be %s, not '%s'", path, type_name(f->type), n->scalar);
    return 0;
  }
  return 0;
}

static int validate_fields(struct vctx *c, const struct ydoc_node *map, const char *section,
                           const char *target, const struct field *fields) {
  char *where = make_path(section, target, NULL);
  int rc = 0;
  if (map->kind != YDOC_MAPPING) {
    rc = vfail(c, map, "%s must be a mapping, not a %s", where, ydoc_kind_name(map->kind));
    goto out;
  }
  for (size_t i = 0; i < map->n_pairs && rc == 0; i++) {
    const struct ydoc_node *key = map->pairs[i].key;
    const struct field *f = find_field(fields, key->scalar);
    if (f == NULL) {
      const char *names[8];
      size_t n = 0;
      for (const struct field *g = fields; g->key != NULL && n < 7; g++)
        names[n++] = g->key;
      names[n] = NULL;
      char *list = join(names);
      rc = vfail(c, key, "unknown field '%s' in %s (expected one of: %s)", key->scalar, where,
                 list);
      free(list);
      break;
    }
    char *path = make_path(section, target, key->scalar);
    rc = validate_leaf(c, map->pairs[i].value, path, f);
    free(path);
  }
out:
  free(where);
  return rc;
}

static int validate_target_key(struct vctx *c, const struct ydoc_node *key, const char *section) {
  if (key->len == 0)
    return vfail(c, key, "%s: a target must not be empty", section);
  /* The same check as for fault targets: fnmatch takes a stray '[' literally. */
  int brackets = 0;
  for (const char *p = key->scalar; *p != '\0'; p++) {
    if (*p == '\\' && p[1] != '\0')
      p++;
    else if (*p == '[')
      brackets++;
    else if (*p == ']' && brackets > 0)
      brackets--;
  }
  if (brackets > 0)
    return vfail(c, key, "%s target '%s' has '[' without a closing ']'", section, key->scalar);
  return 0;
}

static int validate_targets(struct vctx *c, const struct ydoc_node *map, const char *section) {
  if (map->kind != YDOC_MAPPING)
    return vfail(c, map, "%s must be a mapping of targets, not a %s", section,
                 ydoc_kind_name(map->kind));
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key, *value = map->pairs[i].value;
    if (validate_target_key(c, key, section) < 0)
      return -1;
    if (strcmp(section, "nodes") == 0) {
      if (validate_fields(c, value, section, key->scalar, node_fields) < 0)
        return -1;
      continue;
    }
    char *path = make_path(section, key->scalar, NULL);
    int rc = value->kind == YDOC_MAPPING
                 ? validate_matcher(c, value, path, V_STRING)
                 : vfail(c, value, "%s must be a matcher mapping (contains, notContains, matches)",
                         path);
    free(path);
    if (rc < 0)
      return -1;
  }
  return 0;
}

int expectations_validate(const char *file, const struct ydoc_node *expect, ep_error **err) {
  struct vctx c = {.file = file, .err = err};
  if (expect == NULL || ydoc_is_null(expect))
    return 0;
  if (expect->kind != YDOC_MAPPING)
    return vfail(&c, expect, "expect must be a mapping, not a %s", ydoc_kind_name(expect->kind));
  for (size_t i = 0; i < expect->n_pairs; i++) {
    const struct ydoc_node *key = expect->pairs[i].key, *value = expect->pairs[i].value;
    const char *k = key->scalar;
    int rc;
    if (strcmp(k, "workflow") == 0)
      rc = validate_fields(&c, value, k, NULL, workflow_fields);
    else if (strcmp(k, "exitHandler") == 0)
      rc = validate_fields(&c, value, k, NULL, handler_fields);
    else if (strcmp(k, "nodes") == 0 || strcmp(k, "logs") == 0)
      rc = validate_targets(&c, value, k);
    else {
      char *list = join(sections);
      rc = vfail(&c, key, "unknown field '%s' in expect (expected one of: %s)", k, list);
      free(list);
    }
    if (rc < 0)
      return -1;
  }
  return 0;
}

/* ---- evaluation --------------------------------------------------------- */

struct ectx {
  const char *file;
  json_t *results;
  ep_error **err;
  const json_t *report;
};

/* Targets name nodes as a user sees them; the exact comparison comes first
 * so that "wf[0].work" matches itself although '[0]' is a bracket class. */
static bool target_matches(const char *target, const json_t *node) {
  static const char *const keys[] = {"displayName", "templateName", "name"};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    const char *name = json_string_value(json_object_get(node, keys[i]));
    if (name != NULL && (strcmp(name, target) == 0 || fnmatch(target, name, 0) == 0))
      return true;
  }
  return false;
}

static bool node_is(const json_t *node, const char *type) {
  const char *t = json_string_value(json_object_get(node, "type"));
  return t != NULL && strcmp(t, type) == 0;
}

/* The Pod nodes the target matches, or every matched node when none of
 * them is a Pod (a Steps, DAG or Retry node named on purpose). */
static json_t *select_nodes(const json_t *report, const char *target) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  json_t *all = json_array(), *pods = json_array();
  const char *id;
  json_t *node;
  json_object_foreach((json_t *)nodes, id, node) {
    (void)id;
    if (!target_matches(target, node))
      continue;
    json_array_append(all, node);
    if (node_is(node, "Pod"))
      json_array_append(pods, node);
  }
  if (json_array_size(pods) > 0) {
    json_decref(all);
    return pods;
  }
  json_decref(pods);
  return all;
}

static const json_t *node_by_id(const json_t *report, const char *id) {
  return json_object_get(json_object_get(json_object_get(report, "status"), "nodes"), id);
}

/* A Retry node stands for its attempts: its last child for facts a Retry
 * node may not carry itself (exit code, OOM kill). */
static const json_t *last_attempt(const json_t *report, const json_t *node) {
  const json_t *children = json_object_get(node, "children");
  size_t n = json_array_size(children);
  if (!node_is(node, "Retry") || n == 0)
    return node;
  const json_t *child = node_by_id(report, json_string_value(json_array_get(children, n - 1)));
  return child != NULL ? child : node;
}

static json_t *exit_code_of(const json_t *report, const json_t *node) {
  const json_t *code = json_object_get(json_object_get(node, "outputs"), "exitCode");
  if (code == NULL)
    code = json_object_get(json_object_get(last_attempt(report, node), "outputs"), "exitCode");
  const char *s = json_string_value(code);
  if (s == NULL)
    return json_null();
  /* Argo stores the exit code as a string; compare it as the number it is. */
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (*s != '\0' && *end == '\0')
    return json_integer(v);
  return json_string(s);
}

static json_t *oom_of(const json_t *report, const json_t *node) {
  if (json_is_true(json_object_get(node, "oomKilled")))
    return json_true();
  return json_boolean(json_is_true(json_object_get(last_attempt(report, node), "oomKilled")));
}

static json_t *string_or_empty(const json_t *v) {
  return json_string(json_is_string(v) ? json_string_value(v) : "");
}

static json_t *node_field(const json_t *report, const json_t *node, const char *field) {
  if (strcmp(field, "phase") == 0) {
    json_t *v = json_object_get(node, "phase");
    return v != NULL ? json_incref(v) : json_null();
  }
  if (strcmp(field, "message") == 0)
    return string_or_empty(json_object_get(node, "message"));
  if (strcmp(field, "exitCode") == 0)
    return exit_code_of(report, node);
  if (strcmp(field, "oomKilled") == 0)
    return oom_of(report, node);
  return json_null();
}

static size_t count_attempts(const json_t *report, const json_t *selected) {
  size_t n = 0, i;
  const json_t *node;
  json_array_foreach(selected, i, node) {
    if (node_is(node, "Pod")) {
      n++;
      continue;
    }
    if (!node_is(node, "Retry"))
      continue;
    size_t j;
    const json_t *id;
    json_array_foreach(json_object_get(node, "children"), j, id) {
      const json_t *child = node_by_id(report, json_string_value(id));
      if (child != NULL && node_is(child, "Pod"))
        n++;
    }
  }
  return n;
}

static void append_log(const json_t *node, char **buf, size_t *len) {
  const json_t *log = json_object_get(node, "log");
  size_t n = json_string_length(log);
  if (n == 0)
    return;
  *buf = realloc(*buf, *len + n + 1);
  if (*buf == NULL)
    abort();
  memcpy(*buf + *len, json_string_value(log), n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* The logs of the selected nodes in report order; a Retry node's are its attempts'. */
static json_t *logs_of(const json_t *report, const json_t *selected) {
  char *buf = NULL;
  size_t len = 0, i;
  const json_t *node;
  json_array_foreach(selected, i, node) {
    if (!node_is(node, "Retry")) {
      append_log(node, &buf, &len);
      continue;
    }
    size_t j;
    const json_t *id;
    json_array_foreach(json_object_get(node, "children"), j, id) {
      const json_t *child = node_by_id(report, json_string_value(id));
      if (child != NULL)
        append_log(child, &buf, &len);
    }
  }
  json_t *out = json_stringn(buf ? buf : "", len);
  free(buf);
  return out != NULL ? out : json_string("");
}

/* One check against one value. */
enum op { OP_EQUAL, OP_CONTAINS, OP_NOT_CONTAINS, OP_MATCHES, OP_AT_LEAST, OP_AT_MOST };

struct check {
  enum op op;
  json_t *operand; /* expected value, or the operand of the matcher */
  regex_t re;      /* OP_MATCHES */
};

static bool holds(const struct check *ch, const json_t *v) {
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  const char *needle = json_string_value(ch->operand);
  switch (ch->op) {
  case OP_EQUAL:
    return json_equal(v, ch->operand);
  case OP_CONTAINS:
    return s != NULL && memmem(s, len, needle, strlen(needle)) != NULL;
  case OP_NOT_CONTAINS:
    return s == NULL || memmem(s, len, needle, strlen(needle)) == NULL;
  case OP_MATCHES:
    return s != NULL && regexec(&ch->re, s, 0, NULL, 0) == 0;
  case OP_AT_LEAST:
    return json_is_integer(v) && json_integer_value(v) >= json_integer_value(ch->operand);
  case OP_AT_MOST:
    return json_is_integer(v) && json_integer_value(v) <= json_integer_value(ch->operand);
  }
  return false;
}

static const char *op_name(enum op op) {
  static const char *const names[] = {"equal", "contains", "notContains",
                                      "matches", "atLeast", "atMost"};
  return names[op];
}

/* Keep a shown value short and valid UTF-8 (never cut inside a character). */
static json_t *shorten(json_t *v) {
  size_t len = json_string_length(v);
  if (!json_is_string(v) || len <= ACTUAL_MAX_BYTES)
    return v;
  const char *s = json_string_value(v);
  size_t cut = ACTUAL_MAX_BYTES;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
    cut--;
  char *text = NULL;
  if (asprintf(&text, "%.*s... [%zu bytes in all]", (int)cut, s, len) < 0)
    abort();
  json_t *out = json_string(text);
  free(text);
  json_decref(v);
  return out != NULL ? out : json_string("");
}

static void add_result(struct ectx *ev, const char *path, const struct ydoc_node *at,
                       const struct check *ch, const json_t *values, const char *note) {
  size_t n = json_array_size(values);
  bool ok = n > 0;
  for (size_t i = 0; i < n && ok; i++)
    ok = holds(ch, json_array_get(values, i));
  json_t *expected = ch->op == OP_EQUAL ? json_incref(ch->operand) : json_object();
  if (ch->op != OP_EQUAL)
    json_object_set(expected, op_name(ch->op), ch->operand);
  json_t *actual;
  if (n == 0)
    actual = json_null();
  else if (n == 1)
    actual = shorten(json_incref(json_array_get(values, 0)));
  else {
    actual = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(actual, shorten(json_incref(json_array_get(values, i))));
  }
  json_t *r = json_object();
  json_object_set_new(r, "path", json_string(path));
  json_object_set_new(r, "expected", expected);
  json_object_set_new(r, "actual", actual);
  json_object_set_new(r, "ok", json_boolean(ok));
  json_object_set_new(r, "line", json_integer(at->line));
  json_object_set_new(r, "column", json_integer(at->column));
  if (n == 0 && note != NULL)
    json_object_set_new(r, "note", json_string(note));
  json_array_append_new(ev->results, r);
}

static json_t *scalar_json(const struct ydoc_node *n, enum value_type type) {
  long long i = 0;
  bool b = false;
  if (type == V_INT && ydoc_as_int(n, &i) == 0)
    return json_integer(i);
  if (type == V_BOOL && ydoc_as_bool(n, &b) == 0)
    return json_boolean(b);
  return json_stringn(n->scalar, n->len);
}

static int run_check(struct ectx *ev, const char *path, const struct ydoc_node *at,
                     enum op op, json_t *operand, const json_t *values, const char *note) {
  struct check ch = {.op = op, .operand = operand};
  if (operand == NULL)
    return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, at->line, at->column,
                       "%s: the expected value is not valid UTF-8", path);
  if (op == OP_MATCHES) {
    int rc = regcomp(&ch.re, json_string_value(operand), EXPECT_REGEX_FLAGS);
    if (rc != 0) {
      json_decref(operand);
      return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, at->line, at->column,
                         "%s: matches is not a valid extended regular expression", path);
    }
  }
  add_result(ev, path, at, &ch, values, note);
  if (op == OP_MATCHES)
    regfree(&ch.re);
  json_decref(operand);
  return 0;
}

static int run_text_matcher(struct ectx *ev, const char *path, enum op op,
                            const struct ydoc_node *operand, const json_t *values,
                            const char *note) {
  if (operand->kind == YDOC_SCALAR)
    return run_check(ev, path, operand, op, json_stringn(operand->scalar, operand->len), values,
                     note);
  for (size_t i = 0; i < operand->n_items; i++) {
    const struct ydoc_node *item = operand->items[i];
    if (item->kind != YDOC_SCALAR ||
        run_check(ev, path, item, op, json_stringn(item->scalar, item->len), values, note) < 0)
      return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, item->line, item->column,
                         "%s: expected a string", path);
  }
  return 0;
}

/* One leaf: an exact value or a matcher mapping, checked on every value. */
static int eval_leaf(struct ectx *ev, const char *path, const struct ydoc_node *leaf,
                     enum value_type type, const json_t *values, const char *note) {
  if (leaf->kind == YDOC_SCALAR)
    return run_check(ev, path, leaf, OP_EQUAL, scalar_json(leaf, type), values, note);
  if (leaf->kind != YDOC_MAPPING)
    return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, leaf->line, leaf->column,
                       "%s: expected a value or a matcher", path);
  for (size_t i = 0; i < leaf->n_pairs; i++) {
    const char *k = leaf->pairs[i].key->scalar;
    const struct ydoc_node *v = leaf->pairs[i].value;
    long long bound = 0;
    int rc;
    if (strcmp(k, "contains") == 0)
      rc = run_text_matcher(ev, path, OP_CONTAINS, v, values, note);
    else if (strcmp(k, "notContains") == 0)
      rc = run_text_matcher(ev, path, OP_NOT_CONTAINS, v, values, note);
    else if (strcmp(k, "matches") == 0)
      rc = run_text_matcher(ev, path, OP_MATCHES, v, values, note);
    else if ((strcmp(k, "atLeast") == 0 || strcmp(k, "atMost") == 0) &&
             ydoc_as_int(v, &bound) == 0)
      rc = run_check(ev, path, v, k[2] == 'L' ? OP_AT_LEAST : OP_AT_MOST, json_integer(bound),
                     values, note);
    else
      rc = ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, v->line, v->column,
                       "%s: unknown matcher '%s'", path, k);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static json_t *one(json_t *v) {
  json_t *a = json_array();
  json_array_append_new(a, v);
  return a;
}

/* The idempotency result shows what changed, file by file, wherever it
 * is read (text, JUnit): "false: books/counter changed; ...". */
static void name_changes(json_t *result, const json_t *idem) {
  const json_t *changes = json_object_get(idem, "changes");
  bool probe = json_is_true(json_object_get(json_object_get(idem, "stateProbe"), "changed"));
  if (result == NULL || (json_array_size(changes) == 0 && !probe))
    return;
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  if (out == NULL)
    abort();
  fputs(json_is_true(json_object_get(idem, "idempotent")) ? "true" : "false", out);
  size_t i;
  const json_t *c;
  json_array_foreach(changes, i, c) {
    fprintf(out, "%s %s %s", i == 0 ? ":" : ";",
            json_string_value(json_object_get(c, "path")),
            json_string_value(json_object_get(c, "change")));
  }
  if (probe)
    fprintf(out, "%s the stateProbe's output changed", json_array_size(changes) ? ";" : ":");
  fclose(out);
  json_object_set_new(result, "note", json_string(text));
  free(text);
}

static int eval_fixed(struct ectx *ev, const struct ydoc_node *map, const char *section,
                      const json_t *source, const struct field *fields) {
  for (size_t i = 0; i < map->n_pairs; i++) {
    const char *k = map->pairs[i].key->scalar;
    const struct field *f = find_field(fields, k);
    if (f == NULL)
      return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, map->pairs[i].key->line,
                         map->pairs[i].key->column, "unknown field '%s' in %s", k, section);
    json_t *v = json_object_get(source, k);
    if (strcmp(k, "idempotent") == 0) {
      /* An inconclusive check is no result at all: the run says why, and
       * the scenario is inconclusive rather than failed. */
      const json_t *idem = json_object_get(ev->report, "idempotency");
      if (!json_is_true(json_object_get(idem, "conclusive")))
        continue;
      v = json_object_get(idem, "idempotent");
    }
    /* Argo omits an empty message; for the check it is the empty string. */
    json_t *values = one(strcmp(k, "message") == 0 ? string_or_empty(v)
                         : v != NULL               ? json_incref(v)
                                                   : json_null());
    char *path = make_path(section, NULL, k);
    int rc = eval_leaf(ev, path, map->pairs[i].value, f->type, values, NULL);
    free(path);
    if (rc == 0 && strcmp(k, "idempotent") == 0)
      name_changes(json_array_get(ev->results, json_array_size(ev->results) - 1),
                   json_object_get(ev->report, "idempotency"));
    json_decref(values);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static char *no_node_note(const char *target) {
  char *note = NULL;
  if (asprintf(&note, "no node matches '%s' (by displayName, templateName or name)", target) < 0)
    abort();
  return note;
}

static int eval_node(struct ectx *ev, const json_t *report, const char *target,
                     const struct ydoc_node *map) {
  json_t *selected = select_nodes(report, target);
  char *note = no_node_note(target);
  int rc = 0;
  for (size_t i = 0; i < map->n_pairs && rc == 0; i++) {
    const char *k = map->pairs[i].key->scalar;
    const struct field *f = find_field(node_fields, k);
    if (f == NULL) {
      rc = ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, map->pairs[i].key->line,
                       map->pairs[i].key->column, "unknown field '%s' in nodes", k);
      break;
    }
    json_t *values = json_array();
    size_t j;
    const json_t *node;
    if (strcmp(k, "attempts") == 0) {
      if (json_array_size(selected) > 0)
        json_array_append_new(values, json_integer((json_int_t)count_attempts(report, selected)));
    } else {
      json_array_foreach(selected, j, node) {
        json_array_append_new(values, node_field(report, node, k));
      }
    }
    char *path = make_path("nodes", target, k);
    rc = eval_leaf(ev, path, map->pairs[i].value, f->type, values, note);
    free(path);
    json_decref(values);
  }
  free(note);
  json_decref(selected);
  return rc;
}

static int eval_log(struct ectx *ev, const json_t *report, const char *target,
                    const struct ydoc_node *matcher) {
  json_t *selected = select_nodes(report, target);
  json_t *values = json_array();
  if (json_array_size(selected) > 0)
    json_array_append_new(values, logs_of(report, selected));
  char *note = no_node_note(target);
  char *path = make_path("logs", target, NULL);
  int rc = eval_leaf(ev, path, matcher, V_STRING, values, note);
  free(path);
  free(note);
  json_decref(values);
  json_decref(selected);
  return rc;
}

static int eval_targets(struct ectx *ev, const json_t *report, const struct ydoc_node *map,
                        bool logs) {
  if (map->kind != YDOC_MAPPING)
    return ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, map->line, map->column,
                       "expected a mapping of targets");
  for (size_t i = 0; i < map->n_pairs; i++) {
    const char *target = map->pairs[i].key->scalar;
    const struct ydoc_node *value = map->pairs[i].value;
    int rc = logs ? eval_log(ev, report, target, value)
             : value->kind == YDOC_MAPPING
                 ? eval_node(ev, report, target, value)
                 : ep_error_at(ev->err, EP_EXIT_USAGE, ev->file, value->line, value->column,
                               "nodes.%s: expected a mapping", target);
    if (rc < 0)
      return -1;
  }
  return 0;
}

int expectations_evaluate(const char *file, const struct ydoc_node *expect, const json_t *report,
                          json_t **results, ep_error **err) {
  struct ectx ev = {.file = file, .results = json_array(), .err = err, .report = report};
  *results = NULL;
  int rc = 0;
  if (expect != NULL && expect->kind == YDOC_MAPPING) {
    for (size_t i = 0; i < expect->n_pairs && rc == 0; i++) {
      const char *k = expect->pairs[i].key->scalar;
      const struct ydoc_node *value = expect->pairs[i].value;
      if (strcmp(k, "nodes") == 0 || strcmp(k, "logs") == 0) {
        rc = eval_targets(&ev, report, value, k[0] == 'l');
        continue;
      }
      bool wf = strcmp(k, "workflow") == 0;
      if (!wf && strcmp(k, "exitHandler") != 0) {
        rc = ep_error_at(err, EP_EXIT_USAGE, file, expect->pairs[i].key->line,
                         expect->pairs[i].key->column, "unknown field '%s' in expect", k);
        break;
      }
      if (value->kind != YDOC_MAPPING) {
        rc = ep_error_at(err, EP_EXIT_USAGE, file, value->line, value->column,
                         "%s: expected a mapping", k);
        break;
      }
      rc = eval_fixed(&ev, value, k,
                      json_object_get(report, wf ? "status" : "exitHandler"),
                      wf ? workflow_fields : handler_fields);
    }
  }
  if (rc < 0) {
    json_decref(ev.results);
    return -1;
  }
  *results = ev.results;
  return 0;
}

bool expectations_want_idempotency(const struct ydoc_node *expect) {
  const struct ydoc_node *eh = expect != NULL && expect->kind == YDOC_MAPPING
                                   ? ydoc_get(expect, "exitHandler")
                                   : NULL;
  return eh != NULL && eh->kind == YDOC_MAPPING && ydoc_get(eh, "idempotent") != NULL;
}

/* ---- verdict and text --------------------------------------------------- */

size_t expectations_failed_count(const json_t *results) {
  size_t n = 0, i;
  const json_t *r;
  json_array_foreach(results, i, r) {
    if (!json_is_true(json_object_get(r, "ok")))
      n++;
  }
  return n;
}

const char *expectations_verdict(const json_t *results, bool inconclusive) {
  if (expectations_failed_count(results) > 0)
    return "failed";
  return inconclusive ? "inconclusive" : "passed";
}

/* JSON text of a value, cut to TEXT_MAX_BYTES on a character boundary. */
static char *value_text(const json_t *v) {
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (s == NULL)
    s = strdup("?");
  if (s == NULL)
    abort();
  size_t len = strlen(s);
  if (len <= TEXT_MAX_BYTES)
    return s;
  size_t cut = TEXT_MAX_BYTES;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
    cut--;
  char *out = NULL;
  if (asprintf(&out, "%.*s...", (int)cut, s) < 0)
    abort();
  free(s);
  return out;
}

static char *expected_text(const json_t *expected) {
  static const struct {
    const char *op;
    const char *words;
  } ops[] = {{"contains", "to contain "},   {"notContains", "not to contain "},
             {"matches", "to match /"},     {"atLeast", "at least "},
             {"atMost", "at most "}};
  char *out = NULL;
  if (json_is_object(expected) && json_object_size(expected) == 1) {
    const char *key = json_object_iter_key(json_object_iter((json_t *)expected));
    const json_t *operand = json_object_iter_value(json_object_iter((json_t *)expected));
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
      if (strcmp(key, ops[i].op) != 0)
        continue;
      bool regex = strcmp(key, "matches") == 0;
      char *v = regex ? strdup(json_string_value(operand) ? json_string_value(operand) : "")
                      : value_text(operand);
      if (v == NULL || asprintf(&out, "expected %s%s%s", ops[i].words, v, regex ? "/" : "") < 0)
        abort();
      free(v);
      return out;
    }
  }
  char *v = value_text(expected);
  if (asprintf(&out, "expected %s", v) < 0)
    abort();
  free(v);
  return out;
}

char *expectation_result_text(const json_t *result) {
  const char *path = json_string_value(json_object_get(result, "path"));
  const char *note = json_string_value(json_object_get(result, "note"));
  char *expected = expected_text(json_object_get(result, "expected"));
  char *actual = note != NULL ? strdup(note) : value_text(json_object_get(result, "actual"));
  char *out = NULL;
  if (actual == NULL || asprintf(&out, "%s: %s, got %s", path ? path : "?", expected, actual) < 0)
    abort();
  free(expected);
  free(actual);
  return out;
}
