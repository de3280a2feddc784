#include "workflow.h"
#include "dag_graph.h"
#include "xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "template_vars.h"
#include "volumes.h"

/* Parsing state: the file name for messages and where errors go. */
struct parse_ctx {
  const char *file;
  struct workflow *wf;
  ep_error **err;
  const char *tmpl_name; /* the template being parsed, to name its inline templates */
  /* Inline templates of steps and tasks, parsed while wf->templates is being
   * filled in place, so appended to it once every template is parsed. */
  struct wf_template *inlines;
  size_t n_inlines;
  const struct ydoc_node *template_defaults; /* spec.templateDefaults, or NULL */
};



/* Errors at a node go through yaml_doc's one reporter. */
#define fail_at(ctx, n, ...) ydoc_fail((ctx)->err, (ctx)->file, (n), __VA_ARGS__)
#define expect_kind(ctx, n, kind, what) ydoc_expect_kind((ctx)->err, (ctx)->file, (n), (kind), (what))

static struct src_pos pos_of(const struct ydoc_node *n) {
  struct src_pos p = {0, 0};
  if (n != NULL) {
    p.line = n->line;
    p.column = n->column;
  }
  return p;
}

static void warn_at(struct parse_ctx *ctx, const struct ydoc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn_at(struct parse_ctx *ctx, const struct ydoc_node *n, const char *fmt, ...) {
  char *msg = NULL, *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  if (asprintf(&line, "%s:%d:%d: warning: %s", ctx->file, n ? n->line : 0, n ? n->column : 0,
               msg) < 0)
    abort();
  free(msg);
  struct workflow *wf = ctx->wf;
  wf->warnings = realloc(wf->warnings, (wf->n_warnings + 1) * sizeof(char *));
  if (wf->warnings == NULL)
    abort();
  wf->warnings[wf->n_warnings++] = line;
}

/* A field that must be a string.  Kubernetes accepts numbers and booleans
 * where a string is expected (the YAML is converted to JSON first), so any
 * scalar is taken as its text. */
static int get_string(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                      char **out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  *out = xstrdup(n->scalar);
  return 0;
}

static int get_string_list(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                           char ***out, size_t *n_out) {
  if (expect_kind(ctx, n, YDOC_SEQUENCE, what) < 0)
    return -1;
  char **list = xcalloc(n->n_items + 1, sizeof(char *));
  *out = list;
  *n_out = 0;
  for (size_t i = 0; i < n->n_items; i++) {
    if (get_string(ctx, n->items[i], what, &list[i]) < 0)
      return -1;
    (*n_out)++;
  }
  return 0;
}

static int get_bool(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                    bool *out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  if (ydoc_as_bool(n, out) < 0)
    return fail_at(ctx, n, "%s must be true or false, not '%s'", what, n->scalar);
  return 0;
}

/* Fields a key may name, and what exitprobe does with the ones it does not use. */
struct field_rule {
  const char *key;
  enum { FIELD_USED, FIELD_NO_LOCAL_EFFECT, FIELD_UNSUPPORTED } how;
};

/* Warn about every key that is not used: silence would let a user believe a
 * field took effect. */
static int check_fields(struct parse_ctx *ctx, const struct ydoc_node *map, const char *where,
                        const struct field_rule *rules) {
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key;
    const struct field_rule *rule = NULL;
    for (const struct field_rule *r = rules; r->key != NULL; r++)
      if (strcmp(r->key, key->scalar) == 0)
        rule = r;
    if (rule == NULL)
      warn_at(ctx, key, "unknown field '%s.%s' is ignored", where, key->scalar);
    else if (rule->how == FIELD_NO_LOCAL_EFFECT)
      warn_at(ctx, key, "'%s.%s' has no effect when running locally and is ignored", where,
              key->scalar);
    else if (rule->how == FIELD_UNSUPPORTED)
      return fail_at(ctx, key, "'%s.%s' is not supported by exitprobe yet", where, key->scalar);
  }
  return 0;
}

static void parameter_free(struct wf_parameter *p) {
  free(p->name);
  free(p->value);
  free(p->default_value);
  for (size_t i = 0; i < p->n_enum_values; i++)
    free(p->enum_values[i]);
  free(p->enum_values);
  free(p->value_from_path);
  free(p->value_from_parameter);
  free(p->value_from_expression);
  free(p->value_from_default);
  free(p->global_name);
}

static const struct field_rule parameter_fields[] = {
    {"name", FIELD_USED},           {"value", FIELD_USED},
    {"default", FIELD_USED},        {"enum", FIELD_USED},
    {"valueFrom", FIELD_USED},      {"globalName", FIELD_USED},
    {"description", FIELD_NO_LOCAL_EFFECT}, {NULL, 0},
};

static const struct field_rule value_from_fields[] = {
    {"path", FIELD_USED},          {"default", FIELD_USED},
    {"parameter", FIELD_USED},     {"jsonPath", FIELD_USED},
    {"jqFilter", FIELD_USED},      {"expression", FIELD_USED},
    {"event", FIELD_UNSUPPORTED},  {"supplied", FIELD_USED},
    {"configMapKeyRef", FIELD_UNSUPPORTED}, {NULL, 0},
};

static int parse_parameter(struct parse_ctx *ctx, const struct ydoc_node *n, const char *where,
                           struct wf_parameter *p) {
  if (expect_kind(ctx, n, YDOC_MAPPING, where) < 0)
    return -1;
  p->pos = pos_of(n);
  if (check_fields(ctx, n, where, parameter_fields) < 0)
    return -1;
  const struct ydoc_node *name = ydoc_get(n, "name");
  if (name == NULL || ydoc_is_null(name))
    return fail_at(ctx, n, "%s: a parameter needs a name", where);
  if (get_string(ctx, name, "parameter name", &p->name) < 0)
    return -1;
  const struct ydoc_node *v;
  if ((v = ydoc_get(n, "value")) != NULL && !ydoc_is_null(v)) {
    p->value_pos = pos_of(v);
    if (get_string(ctx, v, "parameter value", &p->value) < 0)
      return -1;
  }
  if ((v = ydoc_get(n, "default")) != NULL && !ydoc_is_null(v) &&
      get_string(ctx, v, "parameter default", &p->default_value) < 0)
    return -1;
  if ((v = ydoc_get(n, "enum")) != NULL &&
      get_string_list(ctx, v, "parameter enum", &p->enum_values, &p->n_enum_values) < 0)
    return -1;
  if ((v = ydoc_get(n, "globalName")) != NULL &&
      get_string(ctx, v, "globalName", &p->global_name) < 0)
    return -1;
  if ((v = ydoc_get(n, "valueFrom")) != NULL) {
    if (expect_kind(ctx, v, YDOC_MAPPING, "valueFrom") < 0 ||
        check_fields(ctx, v, "valueFrom", value_from_fields) < 0)
      return -1;
    p->has_value_from = true;
    const struct ydoc_node *path = ydoc_get(v, "path");
    if (path != NULL && get_string(ctx, path, "valueFrom.path", &p->value_from_path) < 0)
      return -1;
    const struct ydoc_node *from = ydoc_get(v, "parameter"), *expr = ydoc_get(v, "expression");
    /* Resource templates' sources: only a mock gives such a parameter a value. */
    p->value_from_resource = ydoc_get(v, "jsonPath") != NULL || ydoc_get(v, "jqFilter") != NULL;
    p->value_from_supplied = ydoc_get(v, "supplied") != NULL;
    if (from != NULL &&
        get_string(ctx, from, "valueFrom.parameter", &p->value_from_parameter) < 0)
      return -1;
    if (expr != NULL &&
        get_string(ctx, expr, "valueFrom.expression", &p->value_from_expression) < 0)
      return -1;
    const struct ydoc_node *def = ydoc_get(v, "default");
    if (def != NULL && get_string(ctx, def, "valueFrom.default", &p->value_from_default) < 0)
      return -1;
    if (def != NULL && p->default_value == NULL)
      p->default_value = xstrdup(p->value_from_default);
    if ((path != NULL) + (from != NULL) + (expr != NULL) + p->value_from_resource +
            p->value_from_supplied >
        1)
      return fail_at(ctx, v, "%s: multiple valueFrom types specified. choose one of: path, "
                             "parameter, expression, supplied",
                     where);
    if (p->value_from_supplied && strcmp(where, "outputs") != 0)
      return fail_at(ctx, ydoc_get(v, "supplied"),
                     "%s: valueFrom.supplied is only valid in the outputs of a suspend template",
                     where);
    if (p->value != NULL && strcmp(where, "outputs") == 0)
      return fail_at(ctx, n, "%s: parameter '%s' has both valueFrom and value specified, "
                             "choose one",
                     where, p->name);
  }
  return 0;
}

static int parse_parameters(struct parse_ctx *ctx, const struct ydoc_node *n, const char *where,
                            struct wf_parameter **out, size_t *n_out) {
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_SEQUENCE, where) < 0)
    return -1;
  *out = xcalloc(n->n_items, sizeof(**out));
  for (size_t i = 0; i < n->n_items; i++) {
    (*n_out)++;
    if (parse_parameter(ctx, n->items[i], where, &(*out)[i]) < 0)
      return -1;
    for (size_t j = 0; j < i; j++)
      if (strcmp((*out)[j].name, (*out)[i].name) == 0)
        return fail_at(ctx, n->items[i], "%s: duplicate parameter '%s' (first at line %d)",
                       where, (*out)[i].name, (*out)[j].pos.line);
  }
  return 0;
}

/* "parameters" under arguments/inputs/outputs; artifacts only as raw
 * inputs (parse_input_artifacts), since the others need a repository. */
static int parse_io(struct parse_ctx *ctx, const struct ydoc_node *n, const char *where,
                    struct wf_parameter **out, size_t *n_out) {
  static const struct field_rule io_fields[] = {
      {"parameters", FIELD_USED},
      {"artifacts", FIELD_UNSUPPORTED},
      {"result", FIELD_NO_LOCAL_EFFECT},
      {"exitCode", FIELD_NO_LOCAL_EFFECT},
      {NULL, 0},
  };
  static const struct field_rule input_fields[] = {
      {"parameters", FIELD_USED},
      {"artifacts", FIELD_USED},
      {NULL, 0},
  };
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_MAPPING, where) < 0 ||
      check_fields(ctx, n, where, strcmp(where, "inputs") == 0 ? input_fields : io_fields) < 0)
    return -1;
  const struct ydoc_node *artifacts = ydoc_get(n, "artifacts");
  (void)artifacts;
  return parse_parameters(ctx, ydoc_get(n, "parameters"), where, out, n_out);
}

int parse_memory_quantity(const char *text, uint64_t *out) {
  static const struct {
    const char *suffix;
    double factor;
  } units[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0},
      {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
      {"m", 1e-3}, {"", 1.0},
  };
  if (text == NULL || *text == '\0')
    return -1;
  const char *p = text;
  if (!(*p >= '0' && *p <= '9') && *p != '.')
    return -1;
  char *end = NULL;
  errno = 0;
  double value = strtod(p, &end);
  if (errno != 0 || end == p || !isfinite(value) || value < 0)
    return -1;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(end, units[i].suffix) == 0) {
      double bytes = ceil(value * units[i].factor);
      if (bytes >= 1.8e19)
        return -1;
      *out = (uint64_t)bytes;
      return 0;
    }
  }
  return -1;
}

static void env_free(struct wf_env_var *e) {
  free(e->name);
  free(e->value);
}

static int parse_env(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_template *t) {
  static const struct field_rule env_fields[] = {
      {"name", FIELD_USED}, {"value", FIELD_USED}, {"valueFrom", FIELD_UNSUPPORTED}, {NULL, 0}};
  if (ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_SEQUENCE, "env") < 0)
    return -1;
  t->env = xcalloc(n->n_items, sizeof(*t->env));
  for (size_t i = 0; i < n->n_items; i++) {
    const struct ydoc_node *item = n->items[i];
    struct wf_env_var *e = &t->env[t->n_env++];
    if (expect_kind(ctx, item, YDOC_MAPPING, "env entry") < 0 ||
        check_fields(ctx, item, "env", env_fields) < 0)
      return -1;
    e->pos = pos_of(item);
    const struct ydoc_node *name = ydoc_get(item, "name");
    if (name == NULL)
      return fail_at(ctx, item, "env entry needs a name");
    if (get_string(ctx, name, "env name", &e->name) < 0)
      return -1;
    const struct ydoc_node *value = ydoc_get(item, "value");
    if (value == NULL || ydoc_is_null(value))
      e->value = xstrdup("");
    else if (get_string(ctx, value, "env value", &e->value) < 0)
      return -1;
  }
  return 0;
}

static int parse_resources(struct parse_ctx *ctx, const struct ydoc_node *n,
                           struct wf_template *t) {
  if (ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_MAPPING, "resources") < 0)
    return -1;
  const struct ydoc_node *limits = ydoc_get(n, "limits");
  if (limits == NULL || ydoc_is_null(limits))
    return 0;
  if (expect_kind(ctx, limits, YDOC_MAPPING, "resources.limits") < 0)
    return -1;
  for (size_t i = 0; i < limits->n_pairs; i++) {
    const struct ydoc_node *key = limits->pairs[i].key, *value = limits->pairs[i].value;
    if (strcmp(key->scalar, "memory") == 0) {
      if (expect_kind(ctx, value, YDOC_SCALAR, "resources.limits.memory") < 0)
        return -1;
      if (parse_memory_quantity(value->scalar, &t->memory_limit) < 0 || t->memory_limit == 0)
        return fail_at(ctx, value, "resources.limits.memory: '%s' is not a memory quantity "
                                   "(e.g. 64Mi, 1Gi, 500M)", value->scalar);
    } else if (strcmp(key->scalar, "pids") == 0) {
      long long pids;
      if (ydoc_as_int(value, &pids) < 0 || pids < 1)
        return fail_at(ctx, value, "resources.limits.pids must be a positive integer");
      t->pids_limit = pids;
    } else {
      warn_at(ctx, key, "resources.limits.%s is not enforced locally", key->scalar);
    }
  }
  return 0;
}

static const struct field_rule container_fields[] = {
    {"image", FIELD_USED},
    {"command", FIELD_USED},
    {"args", FIELD_USED},
    {"env", FIELD_USED},
    {"workingDir", FIELD_USED},
    {"resources", FIELD_USED},
    {"source", FIELD_USED}, /* script only; checked below */
    {"name", FIELD_USED}, /* an init container's; main's has no effect (below) */
    {"imagePullPolicy", FIELD_NO_LOCAL_EFFECT},
    {"ports", FIELD_NO_LOCAL_EFFECT},
    {"securityContext", FIELD_NO_LOCAL_EFFECT},
    {"livenessProbe", FIELD_NO_LOCAL_EFFECT},
    {"readinessProbe", FIELD_NO_LOCAL_EFFECT},
    {"startupProbe", FIELD_NO_LOCAL_EFFECT},
    {"terminationMessagePath", FIELD_NO_LOCAL_EFFECT},
    {"terminationMessagePolicy", FIELD_NO_LOCAL_EFFECT},
    {"stdin", FIELD_NO_LOCAL_EFFECT},
    {"tty", FIELD_NO_LOCAL_EFFECT},
    {"envFrom", FIELD_UNSUPPORTED},
    {"volumeMounts", FIELD_USED},
    {"volumeDevices", FIELD_UNSUPPORTED},
    {"lifecycle", FIELD_NO_LOCAL_EFFECT},
    {"mirrorVolumeMounts", FIELD_USED}, /* init containers only; checked below */
    {NULL, 0},
};

static int parse_container(struct parse_ctx *ctx, const struct ydoc_node *n, bool script,
                           bool init, struct wf_template *t) {
  const char *what = script ? "script" : "container";
  if (expect_kind(ctx, n, YDOC_MAPPING, what) < 0 || check_fields(ctx, n, what, container_fields) < 0)
    return -1;
  const struct ydoc_node *v;
  if ((v = ydoc_get(n, "image")) != NULL && !ydoc_is_null(v) &&
      get_string(ctx, v, "image", &t->image) < 0)
    return -1;
  if ((v = ydoc_get(n, "command")) != NULL && !ydoc_is_null(v) &&
      get_string_list(ctx, v, "command", &t->command, &t->n_command) < 0)
    return -1;
  if ((v = ydoc_get(n, "args")) != NULL && !ydoc_is_null(v) &&
      get_string_list(ctx, v, "args", &t->args, &t->n_args) < 0)
    return -1;
  if ((v = ydoc_get(n, "env")) != NULL && parse_env(ctx, v, t) < 0)
    return -1;
  if ((v = ydoc_get(n, "workingDir")) != NULL && !ydoc_is_null(v) &&
      get_string(ctx, v, "workingDir", &t->working_dir) < 0)
    return -1;
  if ((v = ydoc_get(n, "resources")) != NULL && parse_resources(ctx, v, t) < 0)
    return -1;
  if ((v = ydoc_get(n, "volumeMounts")) != NULL &&
      volumes_parse_mounts(ctx->file, v, &t->mounts, &t->n_mounts, ctx->err) < 0)
    return -1;
  v = ydoc_get(n, "source");
  if (script) {
    if (v == NULL)
      return fail_at(ctx, n, "script template '%s' needs a source", t->name);
    if (get_string(ctx, v, "source", &t->source) < 0)
      return -1;
    if (t->n_command == 0)
      return fail_at(ctx, n, "script template '%s' needs a command (e.g. [sh] or [python])",
                     t->name);
  } else if (v != NULL) {
    return fail_at(ctx, v, "'source' belongs in a script template, not a container");
  }
  for (size_t i = 0; !init && i < n->n_pairs; i++)
    if (strcmp(n->pairs[i].key->scalar, "name") == 0)
      warn_at(ctx, n->pairs[i].key, "'%s.name' has no effect when running locally and is ignored",
              what);
  if (!init && (v = ydoc_get(n, "mirrorVolumeMounts")) != NULL)
    return fail_at(ctx, v, "'mirrorVolumeMounts' belongs in an init container, not in %s", what);
  return 0;
}

static void template_free(struct wf_template *t);

static void copy_mounts(const struct wf_template *from, struct wf_template *to) {
  to->mounts = xreallocarray(to->mounts, to->n_mounts + from->n_mounts, sizeof(*to->mounts));
  for (size_t i = 0; i < from->n_mounts; i++) {
    const struct wf_volume_mount *m = &from->mounts[i];
    to->mounts[to->n_mounts++] = (struct wf_volume_mount){
        .name = xstrdup(m->name),
        .mount_path = xstrdup(m->mount_path),
        .sub_path = m->sub_path ? xstrdup(m->sub_path) : NULL,
        .read_only = m->read_only,
        .pos = m->pos,
    };
  }
}

/* One init container: a container with a name, and -- mirrorVolumeMounts --
 * main's volumeMounts added to its own, as Argo's executor does. */
static int parse_init_container(struct parse_ctx *ctx, const struct ydoc_node *n,
                                const struct wf_template *main_tmpl, struct wf_template *ic) {
  if (expect_kind(ctx, n, YDOC_MAPPING, "initContainers item") < 0)
    return -1;
  const struct ydoc_node *name = ydoc_get(n, "name"), *mirror = ydoc_get(n, "mirrorVolumeMounts");
  if (name == NULL)
    return fail_at(ctx, n, "an init container needs a name");
  if (get_string(ctx, name, "initContainers.name", &ic->name) < 0)
    return -1;
  if (strcmp(ic->name, "main") == 0 || strcmp(ic->name, "init") == 0 ||
      strcmp(ic->name, "wait") == 0)
    return fail_at(ctx, name, "init container name '%s' is reserved by Argo", ic->name);
  ic->kind = TEMPLATE_CONTAINER;
  ic->pos = pos_of(n);
  ic->node = n;
  bool mirror_mounts = false;
  if (mirror != NULL && get_bool(ctx, mirror, "mirrorVolumeMounts", &mirror_mounts) < 0)
    return -1;
  if (parse_container(ctx, n, false, true, ic) < 0)
    return -1;
  if (mirror_mounts)
    copy_mounts(main_tmpl, ic);
  return 0;
}

static int parse_init_containers(struct parse_ctx *ctx, const struct ydoc_node *n, bool pod,
                                 struct wf_template *t) {
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (!pod)
    return fail_at(ctx, n, "initContainers belong to a container or script template");
  if (expect_kind(ctx, n, YDOC_SEQUENCE, "initContainers") < 0)
    return -1;
  t->init_containers = xcalloc(n->n_items ? n->n_items : 1, sizeof(*t->init_containers));
  for (size_t i = 0; i < n->n_items; i++) {
    struct wf_template *ic = &t->init_containers[t->n_init_containers++];
    if (parse_init_container(ctx, n->items[i], t, ic) < 0)
      return -1;
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->init_containers[j].name, ic->name) == 0)
        return fail_at(ctx, n->items[i], "init container name '%s' is used twice", ic->name);
  }
  return 0;
}

static void hook_free(struct wf_hook *h) {
  free(h->name);
  free(h->template_name);
  free(h->expression);
  for (size_t i = 0; i < h->n_arguments; i++)
    parameter_free(&h->arguments[i]);
  free(h->arguments);
}

static void loop_free(struct wf_loop *l) {
  free(l->param);
  free(l->seq_count);
  free(l->seq_start);
  free(l->seq_end);
  free(l->seq_format);
}

static void step_free(struct wf_step *s) {
  free(s->name);
  free(s->template_name);
  for (size_t i = 0; i < s->n_arguments; i++)
    parameter_free(&s->arguments[i]);
  free(s->arguments);
  free(s->when);
  for (size_t i = 0; i < s->n_hooks; i++)
    hook_free(&s->hooks[i]);
  free(s->hooks);
  loop_free(&s->loop);
  free(s->depends);
  for (size_t i = 0; i < s->n_dependencies; i++)
    free(s->dependencies[i]);
  free(s->dependencies);
}

static const struct field_rule step_fields[] = {
    {"name", FIELD_USED},
    {"template", FIELD_USED},
    {"arguments", FIELD_USED},
    {"when", FIELD_USED},
    {"continueOn", FIELD_USED},
    {"onExit", FIELD_USED},
    {"hooks", FIELD_USED},
    {"withItems", FIELD_USED},
    {"withParam", FIELD_USED},
    {"withSequence", FIELD_USED},
    {"depends", FIELD_USED},
    {"dependencies", FIELD_USED},
    {"templateRef", FIELD_UNSUPPORTED},
    {"inline", FIELD_USED},
    {NULL, 0},
};

static int parse_template(struct parse_ctx *ctx, const struct ydoc_node *n,
                          struct wf_template *t);
static void template_free(struct wf_template *t);

/* An `inline` template of a step or task: a template without a name of its
 * own, run like a named one (Argo's Inline field).  It gets a name no
 * spec.templates entry can have, so that the rest of the runner looks it up
 * like any other. */
static int parse_inline(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                        struct wf_step *s) {
  struct wf_template t = {0};
  t.name = xasprintf("%s%s.%s", WF_INLINE_TEMPLATE_PREFIX,
                     ctx->tmpl_name + (strncmp(ctx->tmpl_name, WF_INLINE_TEMPLATE_PREFIX,
                                               strlen(WF_INLINE_TEMPLATE_PREFIX)) == 0
                                           ? strlen(WF_INLINE_TEMPLATE_PREFIX)
                                           : 0),
                     s->name);
  for (size_t i = 0; i < ctx->n_inlines; i++)
    if (strcmp(ctx->inlines[i].name, t.name) == 0) {
      free(t.name);
      return fail_at(ctx, n, "%s name '%s' is not unique in template '%s'", what, s->name,
                     ctx->tmpl_name);
    }
  const char *outer = ctx->tmpl_name;
  int rc = parse_template(ctx, n, &t);
  ctx->tmpl_name = outer;
  if (rc < 0) {
    template_free(&t);
    return -1;
  }
  s->template_name = xstrdup(t.name);
  s->template_pos = pos_of(n);
  ctx->inlines = xreallocarray(ctx->inlines, ctx->n_inlines + 1, sizeof(*ctx->inlines));
  ctx->inlines[ctx->n_inlines++] = t;
  return 0;
}

static void append_inlines(struct parse_ctx *ctx) {
  struct workflow *wf = ctx->wf;
  if (ctx->n_inlines == 0)
    return;
  wf->templates =
      xreallocarray(wf->templates, wf->n_templates + ctx->n_inlines, sizeof(*wf->templates));
  memcpy(&wf->templates[wf->n_templates], ctx->inlines, ctx->n_inlines * sizeof(*ctx->inlines));
  wf->n_templates += ctx->n_inlines;
  free(ctx->inlines);
  ctx->inlines = NULL;
  ctx->n_inlines = 0;
}

static void discard_inlines(struct parse_ctx *ctx) {
  for (size_t i = 0; i < ctx->n_inlines; i++)
    template_free(&ctx->inlines[i]);
  free(ctx->inlines);
  ctx->inlines = NULL;
  ctx->n_inlines = 0;
}

/* Kubernetes names for steps: DNS-1123-ish, since node and pod names derive from them. */
static bool valid_step_name(const char *s) {
  if (*s == '\0' || strlen(s) > 128)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      return false;
  return true;
}

static const struct field_rule hook_fields[] = {
    {"template", FIELD_USED},
    {"arguments", FIELD_USED},
    {"expression", FIELD_USED},
    {"templateRef", FIELD_UNSUPPORTED},
    {NULL, 0},
};

/* `hooks:` at workflow, step or task level.  The exit hook is put first. */
static int parse_hooks(struct parse_ctx *ctx, const struct ydoc_node *n, bool workflow_level,
                       struct wf_hook **out, size_t *n_out) {
  if (ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_MAPPING, "hooks") < 0)
    return -1;
  struct wf_hook *hooks = realloc(*out, (*n_out + n->n_pairs) * sizeof(*hooks));
  if (hooks == NULL)
    abort();
  *out = hooks;
  for (size_t i = 0; i < n->n_pairs; i++) {
    const struct ydoc_node *key = n->pairs[i].key, *value = n->pairs[i].value;
    struct wf_hook h = {0};
    h.pos = pos_of(key);
    h.name = xstrdup(key->scalar);
    int rc = -1;
    if (expect_kind(ctx, value, YDOC_MAPPING, "hook") < 0 ||
        check_fields(ctx, value, "hooks", hook_fields) < 0)
      goto bad;
    const struct ydoc_node *v = ydoc_get(value, "template");
    if (v == NULL) {
      fail_at(ctx, value, "hook '%s' needs a template", h.name);
      goto bad;
    }
    h.template_pos = pos_of(v);
    if (get_string(ctx, v, "hook template", &h.template_name) < 0)
      goto bad;
    if ((v = ydoc_get(value, "expression")) != NULL &&
        get_string(ctx, v, "hook expression", &h.expression) < 0)
      goto bad;
    if ((v = ydoc_get(value, "arguments")) != NULL &&
        parse_io(ctx, v, "hook arguments", &h.arguments, &h.n_arguments) < 0)
      goto bad;
    if (strcmp(h.name, "exit") == 0) {
      /* The workflow-level exit hook ignores its expression (Argo #8742). */
      if (workflow_level) {
        free(h.expression);
        h.expression = NULL;
      }
    } else if (h.expression == NULL) {
      fail_at(ctx, key, "hooks.%s: expression is required for hooks other than 'exit'", h.name);
      goto bad;
    }
    rc = 0;
  bad:
    if (rc < 0) {
      hook_free(&h);
      return -1;
    }
    if (strcmp(h.name, "exit") == 0 && *n_out > 0) {
      memmove(&hooks[1], &hooks[0], *n_out * sizeof(*hooks));
      hooks[0] = h;
    } else {
      hooks[*n_out] = h;
    }
    (*n_out)++;
  }
  return 0;
}

static int parse_loop(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_loop *l) {
  const struct ydoc_node *items = ydoc_get(n, "withItems"), *param = ydoc_get(n, "withParam"),
                         *seq = ydoc_get(n, "withSequence");
  if ((items != NULL) + (param != NULL) + (seq != NULL) > 1)
    return fail_at(ctx, n, "only one of withItems, withParam and withSequence may be given");
  if (items != NULL) {
    if (expect_kind(ctx, items, YDOC_SEQUENCE, "withItems") < 0)
      return -1;
    l->kind = LOOP_ITEMS;
    l->items = items;
    l->pos = pos_of(items);
  } else if (param != NULL) {
    l->kind = LOOP_PARAM;
    l->pos = pos_of(param);
    return get_string(ctx, param, "withParam", &l->param);
  } else if (seq != NULL) {
    static const struct field_rule seq_fields[] = {{"count", FIELD_USED}, {"start", FIELD_USED},
                                                   {"end", FIELD_USED},   {"format", FIELD_USED},
                                                   {NULL, 0}};
    if (expect_kind(ctx, seq, YDOC_MAPPING, "withSequence") < 0 ||
        check_fields(ctx, seq, "withSequence", seq_fields) < 0)
      return -1;
    l->kind = LOOP_SEQUENCE;
    l->pos = pos_of(seq);
    const struct ydoc_node *v;
    if ((v = ydoc_get(seq, "count")) && get_string(ctx, v, "withSequence.count", &l->seq_count) < 0)
      return -1;
    if ((v = ydoc_get(seq, "start")) && get_string(ctx, v, "withSequence.start", &l->seq_start) < 0)
      return -1;
    if ((v = ydoc_get(seq, "end")) && get_string(ctx, v, "withSequence.end", &l->seq_end) < 0)
      return -1;
    if ((v = ydoc_get(seq, "format")) && get_string(ctx, v, "withSequence.format", &l->seq_format) < 0)
      return -1;
    if (l->seq_count != NULL && l->seq_end != NULL)
      return fail_at(ctx, seq, "withSequence takes count or end, not both");
    if (l->seq_count == NULL && l->seq_end == NULL)
      return fail_at(ctx, seq, "withSequence needs count or end");
  }
  return 0;
}

static int parse_step(struct parse_ctx *ctx, const struct ydoc_node *n, bool is_task,
                      struct wf_step *s) {
  const char *what = is_task ? "task" : "step";
  if (expect_kind(ctx, n, YDOC_MAPPING, what) < 0 || check_fields(ctx, n, what, step_fields) < 0)
    return -1;
  s->pos = pos_of(n);
  const struct ydoc_node *v = ydoc_get(n, "name");
  if (v == NULL)
    return fail_at(ctx, n, "a %s needs a name", what);
  if (get_string(ctx, v, "name", &s->name) < 0)
    return -1;
  if (!valid_step_name(s->name))
    return fail_at(ctx, v, "%s name '%s' is invalid: use letters, digits, '-' and '_'", what,
                   s->name);
  v = ydoc_get(n, "template");
  const struct ydoc_node *inl = ydoc_get(n, "inline");
  if (v != NULL && inl != NULL)
    return fail_at(ctx, inl, "%s '%s' has both template and inline: give one", what, s->name);
  if (inl != NULL) {
    if (parse_inline(ctx, inl, what, s) < 0)
      return -1;
  } else {
    if (v == NULL)
      return fail_at(ctx, n, "%s '%s' needs a template", what, s->name);
    s->template_pos = pos_of(v);
    if (get_string(ctx, v, "template", &s->template_name) < 0)
      return -1;
  }
  if ((v = ydoc_get(n, "arguments")) != NULL &&
      parse_io(ctx, v, "arguments", &s->arguments, &s->n_arguments) < 0)
    return -1;
  if ((v = ydoc_get(n, "when")) != NULL) {
    s->when_pos = pos_of(v);
    if (get_string(ctx, v, "when", &s->when) < 0)
      return -1;
  }
  if ((v = ydoc_get(n, "continueOn")) != NULL && !ydoc_is_null(v)) {
    if (expect_kind(ctx, v, YDOC_MAPPING, "continueOn") < 0)
      return -1;
    const struct ydoc_node *f = ydoc_get(v, "failed"), *e = ydoc_get(v, "error");
    if (f != NULL && get_bool(ctx, f, "continueOn.failed", &s->continue_on_failed) < 0)
      return -1;
    if (e != NULL && get_bool(ctx, e, "continueOn.error", &s->continue_on_error) < 0)
      return -1;
  }
  if ((v = ydoc_get(n, "hooks")) != NULL && parse_hooks(ctx, v, false, &s->hooks, &s->n_hooks) < 0)
    return -1;
  if ((v = ydoc_get(n, "onExit")) != NULL) {
    /* The deprecated form; hooks.exit wins when both are present. */
    bool has_exit = s->n_hooks > 0 && strcmp(s->hooks[0].name, "exit") == 0;
    if (!has_exit) {
      struct wf_hook h = {.name = xstrdup("exit"), .pos = pos_of(v), .template_pos = pos_of(v)};
      if (get_string(ctx, v, "onExit", &h.template_name) < 0) {
        hook_free(&h);
        return -1;
      }
      s->hooks = realloc(s->hooks, (s->n_hooks + 1) * sizeof(*s->hooks));
      if (s->hooks == NULL)
        abort();
      memmove(&s->hooks[1], &s->hooks[0], s->n_hooks * sizeof(*s->hooks));
      s->hooks[0] = h;
      s->n_hooks++;
    }
  }
  if (parse_loop(ctx, n, &s->loop) < 0)
    return -1;
  v = ydoc_get(n, "depends");
  const struct ydoc_node *deps = ydoc_get(n, "dependencies");
  if (!is_task && (v != NULL || deps != NULL))
    return fail_at(ctx, v ? v : deps, "depends/dependencies belong to DAG tasks, not steps");
  if (v != NULL && deps != NULL)
    return fail_at(ctx, v, "task '%s' has both depends and dependencies: use one", s->name);
  if (v != NULL) {
    s->depends_pos = pos_of(v);
    if (get_string(ctx, v, "depends", &s->depends) < 0)
      return -1;
    if (s->continue_on_failed || s->continue_on_error)
      return fail_at(ctx, ydoc_get(n, "continueOn"),
                     "continueOn cannot be combined with depends (use depends: \"A.Failed\")");
  }
  if (deps != NULL) {
    s->depends_pos = pos_of(deps);
    s->dependencies_node = deps;
    if (get_string_list(ctx, deps, "dependencies", &s->dependencies, &s->n_dependencies) < 0)
      return -1;
  }
  return 0;
}

/* A step or task name seen before in its template is an error at the second
 * one, naming the line of the first.  seen maps names to that line. */
static int check_unique_name(struct parse_ctx *ctx, struct var_scope *seen,
                             const struct wf_step *s, const char *what, const char *tmpl) {
  const char *first = var_scope_get(seen, s->name);
  if (first != NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, s->pos.line, s->pos.column,
                       "duplicate %s name '%s' in template '%s' (first at line %s)", what, s->name,
                       tmpl, first);
  char line[24];
  snprintf(line, sizeof(line), "%d", s->pos.line);
  var_scope_set(seen, s->name, line);
  return 0;
}

static int parse_steps(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_template *t) {
  if (expect_kind(ctx, n, YDOC_SEQUENCE, "steps") < 0)
    return -1;
  t->groups = xcalloc(n->n_items, sizeof(*t->groups));
  for (size_t i = 0; i < n->n_items; i++) {
    const struct ydoc_node *group = n->items[i];
    struct wf_step_group *g = &t->groups[t->n_groups++];
    g->pos = pos_of(group);
    if (group->kind == YDOC_MAPPING)
      return fail_at(ctx, group, "steps must be a list of lists of steps: write '- - name: ...' "
                                 "(each inner list runs in parallel)");
    if (expect_kind(ctx, group, YDOC_SEQUENCE, "step group") < 0)
      return -1;
    g->steps = xcalloc(group->n_items, sizeof(*g->steps));
    for (size_t j = 0; j < group->n_items; j++) {
      g->n_steps++;
      if (parse_step(ctx, group->items[j], false, &g->steps[j]) < 0)
        return -1;
    }
  }
  /* Names are unique across the whole template: steps.NAME must be unambiguous.
   * A hashed set (name -> first line): 10,000 steps must not cost 10^8 compares. */
  struct var_scope seen;
  var_scope_init(&seen, NULL);
  int rc = 0;
  for (size_t i = 0; i < t->n_groups && rc == 0; i++)
    for (size_t j = 0; j < t->groups[i].n_steps && rc == 0; j++)
      rc = check_unique_name(ctx, &seen, &t->groups[i].steps[j], "step", t->name);
  var_scope_clear(&seen);
  return rc;
}

static int parse_parallelism(struct parse_ctx *ctx, const struct ydoc_node *n, long *out) {
  long long v;
  if (ydoc_as_int(n, &v) < 0 || v < 0 || v > 1000000)
    return fail_at(ctx, n, "parallelism must be a non-negative integer");
  *out = (long)v;
  return 0;
}

int parse_duration_seconds(const char *text, bool allow_bare, double *out) {
  if (text == NULL || *text == '\0')
    return -1;
  char *end = NULL;
  errno = 0;
  double bare = strtod(text, &end);
  if (*end == '\0') {
    if (!allow_bare || errno != 0 || bare < 0 || !isfinite(bare))
      return -1;
    *out = bare;
    return 0;
  }
  /* Go's time.ParseDuration: a sequence of decimal numbers with units. */
  static const struct {
    const char *unit;
    double secs;
  } units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"\u00b5s", 1e-6}, {"ms", 1e-3},
               {"s", 1},     {"m", 60},    {"h", 3600}};
  const char *p = text;
  double total = 0;
  while (*p) {
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno != 0 || v < 0 || !isfinite(v) || *p == '+' || *p == '-')
      return -1;
    p = end;
    size_t best = 0;
    double factor = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
      size_t len = strlen(units[i].unit);
      if (strncmp(p, units[i].unit, len) == 0 && len > best) {
        best = len;
        factor = units[i].secs;
      }
    }
    if (best == 0)
      return -1;
    total += v * factor;
    p += best;
  }
  if (total > 1e12)
    return -1;
  *out = total;
  return 0;
}

static void retry_free(struct wf_retry *r) {
  free(r->limit);
  free(r->policy);
  free(r->expression);
  free(r->backoff_duration);
  free(r->backoff_factor);
  free(r->backoff_max_duration);
  free(r->backoff_cap);
}

static int parse_retry(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_retry *r) {
  static const struct field_rule retry_fields[] = {
      {"limit", FIELD_USED},        {"retryPolicy", FIELD_USED},
      {"expression", FIELD_USED},   {"backoff", FIELD_USED},
      {"affinity", FIELD_NO_LOCAL_EFFECT}, {NULL, 0}};
  static const struct field_rule backoff_fields[] = {
      {"duration", FIELD_USED}, {"factor", FIELD_USED}, {"maxDuration", FIELD_USED},
      {"cap", FIELD_USED},      {NULL, 0}};
  if (ydoc_is_null(n)) {
    r->present = true;
    return 0;
  }
  if (expect_kind(ctx, n, YDOC_MAPPING, "retryStrategy") < 0 ||
      check_fields(ctx, n, "retryStrategy", retry_fields) < 0)
    return -1;
  r->present = true;
  r->pos = pos_of(n);
  const struct ydoc_node *v;
  if ((v = ydoc_get(n, "limit")) != NULL && !ydoc_is_null(v)) {
    if (get_string(ctx, v, "retryStrategy.limit", &r->limit) < 0)
      return -1;
    long long lim;
    if (strstr(r->limit, "{{") == NULL && (ydoc_as_int(v, &lim) < 0 || lim < 0))
      return fail_at(ctx, v, "retryStrategy.limit must be a non-negative integer");
  }
  if ((v = ydoc_get(n, "retryPolicy")) != NULL) {
    if (get_string(ctx, v, "retryStrategy.retryPolicy", &r->policy) < 0)
      return -1;
    if (strcmp(r->policy, "Always") && strcmp(r->policy, "OnFailure") &&
        strcmp(r->policy, "OnError") && strcmp(r->policy, "OnTransientError"))
      return fail_at(ctx, v, "retryPolicy must be Always, OnFailure, OnError or OnTransientError");
  }
  if ((v = ydoc_get(n, "expression")) != NULL &&
      get_string(ctx, v, "retryStrategy.expression", &r->expression) < 0)
    return -1;
  const struct ydoc_node *b = ydoc_get(n, "backoff");
  if (b != NULL && !ydoc_is_null(b)) {
    if (expect_kind(ctx, b, YDOC_MAPPING, "backoff") < 0 ||
        check_fields(ctx, b, "backoff", backoff_fields) < 0)
      return -1;
    struct {
      const char *key;
      char **dst;
    } fields[] = {{"duration", &r->backoff_duration},
                  {"factor", &r->backoff_factor},
                  {"maxDuration", &r->backoff_max_duration},
                  {"cap", &r->backoff_cap}};
    for (size_t i = 0; i < 4; i++) {
      if ((v = ydoc_get(b, fields[i].key)) == NULL)
        continue;
      if (get_string(ctx, v, fields[i].key, fields[i].dst) < 0)
        return -1;
      double secs;
      if (i != 1 && strstr(*fields[i].dst, "{{") == NULL &&
          parse_duration_seconds(*fields[i].dst, true, &secs) < 0)
        return fail_at(ctx, v, "backoff.%s: '%s' is not a duration (e.g. 10s, 2m, or 5)",
                       fields[i].key, *fields[i].dst);
    }
  }
  return 0;
}

static const struct field_rule dag_fields[] = {
    {"tasks", FIELD_USED}, {"target", FIELD_USED}, {"failFast", FIELD_USED}, {NULL, 0}};

static int parse_dag(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_template *t) {
  if (expect_kind(ctx, n, YDOC_MAPPING, "dag") < 0 || check_fields(ctx, n, "dag", dag_fields) < 0)
    return -1;
  t->dag_fail_fast = true;
  const struct ydoc_node *v;
  if ((v = ydoc_get(n, "failFast")) != NULL && get_bool(ctx, v, "dag.failFast", &t->dag_fail_fast) < 0)
    return -1;
  if ((v = ydoc_get(n, "target")) != NULL && get_string(ctx, v, "dag.target", &t->dag_target) < 0)
    return -1;
  const struct ydoc_node *tasks = ydoc_get(n, "tasks");
  if (tasks == NULL || ydoc_is_null(tasks))
    return fail_at(ctx, n, "dag template '%s' needs tasks", t->name);
  if (expect_kind(ctx, tasks, YDOC_SEQUENCE, "dag.tasks") < 0)
    return -1;
  t->tasks = xcalloc(tasks->n_items, sizeof(*t->tasks));
  struct var_scope seen;
  var_scope_init(&seen, NULL);
  for (size_t i = 0; i < tasks->n_items; i++) {
    t->n_tasks++;
    if (parse_step(ctx, tasks->items[i], true, &t->tasks[i]) < 0) {
      var_scope_clear(&seen);
      return -1;
    }
    if (check_unique_name(ctx, &seen, &t->tasks[i], "task", t->name) < 0) {
      var_scope_clear(&seen);
      return -1;
    }
  }
  var_scope_clear(&seen);
  return 0;
}

static int parse_suspend(struct parse_ctx *ctx, const struct ydoc_node *n, struct wf_template *t) {
  if (ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_MAPPING, "suspend") < 0)
    return -1;
  const struct ydoc_node *d = ydoc_get(n, "duration");
  if (d == NULL)
    return 0;
  if (get_string(ctx, d, "suspend.duration", &t->suspend_duration) < 0)
    return -1;
  double secs;
  if (strstr(t->suspend_duration, "{{") == NULL &&
      parse_duration_seconds(t->suspend_duration, true, &secs) < 0)
    return fail_at(ctx, d, "suspend.duration: '%s' is not a duration", t->suspend_duration);
  return 0;
}

static const struct field_rule template_fields[] = {
    {"name", FIELD_USED},
    {"inputs", FIELD_USED},
    {"outputs", FIELD_USED},
    {"container", FIELD_USED},
    {"script", FIELD_USED},
    {"steps", FIELD_USED},
    {"metadata", FIELD_NO_LOCAL_EFFECT},
    {"nodeSelector", FIELD_NO_LOCAL_EFFECT},
    {"affinity", FIELD_NO_LOCAL_EFFECT},
    {"tolerations", FIELD_NO_LOCAL_EFFECT},
    {"serviceAccountName", FIELD_NO_LOCAL_EFFECT},
    {"automountServiceAccountToken", FIELD_NO_LOCAL_EFFECT},
    {"securityContext", FIELD_NO_LOCAL_EFFECT},
    {"podSpecPatch", FIELD_NO_LOCAL_EFFECT},
    {"priorityClassName", FIELD_NO_LOCAL_EFFECT},
    {"schedulerName", FIELD_NO_LOCAL_EFFECT},
    {"archiveLocation", FIELD_NO_LOCAL_EFFECT},
    {"dag", FIELD_USED},
    {"suspend", FIELD_USED},
    {"resource", FIELD_USED},
    {"data", FIELD_UNSUPPORTED},
    {"http", FIELD_USED},
    {"plugin", FIELD_USED},
    {"containerSet", FIELD_UNSUPPORTED},
    {"retryStrategy", FIELD_USED},
    {"activeDeadlineSeconds", FIELD_USED},
    {"timeout", FIELD_USED},
    {"parallelism", FIELD_USED},
    {"failFast", FIELD_USED},
    {"daemon", FIELD_UNSUPPORTED},
    {"sidecars", FIELD_UNSUPPORTED},
    {"initContainers", FIELD_USED},
    {"volumes", FIELD_USED},
    {"synchronization", FIELD_USED},
    {"memoize", FIELD_UNSUPPORTED},
    {"hooks", FIELD_UNSUPPORTED},
    {NULL, 0},
};

static void artifact_free(struct wf_artifact *a) {
  free(a->name);
  free(a->path);
  free(a->raw_data);
}

static void template_free(struct wf_template *t) {
  free(t->name);
  for (size_t i = 0; i < t->n_input_artifacts; i++)
    artifact_free(&t->input_artifacts[i]);
  free(t->input_artifacts);
  for (size_t i = 0; i < t->n_mutexes; i++)
    free(t->mutexes[i]);
  free(t->mutexes);
  for (size_t i = 0; i < t->n_inputs; i++)
    parameter_free(&t->inputs[i]);
  free(t->inputs);
  for (size_t i = 0; i < t->n_outputs; i++)
    parameter_free(&t->outputs[i]);
  free(t->outputs);
  free(t->image);
  for (size_t i = 0; i < t->n_command; i++)
    free(t->command[i]);
  free(t->command);
  for (size_t i = 0; i < t->n_args; i++)
    free(t->args[i]);
  free(t->args);
  for (size_t i = 0; i < t->n_env; i++)
    env_free(&t->env[i]);
  free(t->env);
  free(t->working_dir);
  free(t->source);
  for (size_t i = 0; i < t->n_groups; i++) {
    for (size_t j = 0; j < t->groups[i].n_steps; j++)
      step_free(&t->groups[i].steps[j]);
    free(t->groups[i].steps);
  }
  free(t->groups);
  for (size_t i = 0; i < t->n_tasks; i++)
    step_free(&t->tasks[i]);
  free(t->tasks);
  free(t->dag_target);
  free(t->suspend_duration);
  retry_free(&t->retry);
  free(t->timeout);
  free(t->active_deadline_seconds);
  volume_mounts_free(t->mounts, t->n_mounts);
  volumes_free(t->volumes, t->n_volumes);
  for (size_t i = 0; i < t->n_init_containers; i++)
    template_free(&t->init_containers[i]);
  free(t->init_containers);
}

/* Where an output parameter's value comes from, by template kind, as Argo's
 * validateOutputs has it: a file for pods; another step's or task's output
 * (or an expression over them) for steps and DAGs.  kind_name is NULL for a
 * container or script template. */
static int check_output_source(struct parse_ctx *ctx, const struct wf_template *t,
                               const struct wf_parameter *p, const char *kind_name) {
  if (p->value == NULL && !p->has_value_from)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "output parameter '%s' needs valueFrom or value", p->name);
  if (!p->has_value_from)
    return 0;
  if (kind_name != NULL && strcmp(kind_name, "Resource") == 0 && !p->value_from_resource)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s .jqFilter or jsonPath must be "
                       "specified for Resource templates",
                       t->name, p->name);
  if (kind_name != NULL && (strcmp(kind_name, "HTTP") == 0 || strcmp(kind_name, "Plugin") == 0 ||
                            strcmp(kind_name, "Resource") == 0))
    return 0;
  if (p->value_from_supplied && (kind_name == NULL || strcmp(kind_name, "Suspend") != 0))
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s: valueFrom.supplied is only valid in "
                       "suspend templates",
                       t->name, p->name);
  if (p->value_from_resource)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s: valueFrom.jsonPath and jqFilter "
                       "are only valid in resource templates",
                       t->name, p->name);
  if (kind_name == NULL && p->value_from_path == NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s.path must be specified for %s "
                       "templates",
                       t->name, p->name, ydoc_get(t->node, "script") ? "Script" : "Container");
  bool composite = kind_name != NULL && strcmp(kind_name, "Suspend") != 0;
  if (composite && p->value_from_parameter == NULL && p->value_from_expression == NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s.parameter or expression must be "
                       "specified for %s templates",
                       t->name, p->name, kind_name);
  if (kind_name != NULL && p->value_from_path != NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, p->pos.line, p->pos.column,
                       "templates.%s.outputs.parameters.%s: valueFrom.path is only valid in "
                       "container and script templates",
                       t->name, p->name);
  return 0;
}

/* One mutex: {name, namespace?, database?}.  A database-backed mutex
 * (multi-cluster) behaves like any other within a single local run. */
static int parse_mutex(struct parse_ctx *ctx, const struct ydoc_node *m, const char *what,
                       char ***names, size_t *n_names) {
  static const struct field_rule fields[] = {{"name", FIELD_USED},
                                             {"namespace", FIELD_NO_LOCAL_EFFECT},
                                             {"database", FIELD_NO_LOCAL_EFFECT},
                                             {NULL, 0}};
  if (expect_kind(ctx, m, YDOC_MAPPING, what) < 0 || check_fields(ctx, m, what, fields) < 0)
    return -1;
  const struct ydoc_node *name = ydoc_get(m, "name");
  if (name == NULL || ydoc_is_null(name))
    return fail_at(ctx, m, "%s needs a name", what);
  char *text = NULL;
  if (get_string(ctx, name, "mutex name", &text) < 0)
    return -1;
  *names = xreallocarray(*names, *n_names + 1, sizeof(**names));
  (*names)[(*n_names)++] = text;
  return 0;
}

/* synchronization: mutexes are honoured (a run is one workflow, so only a
 * template's mutex can ever be contended); semaphores count against a
 * ConfigMap's limit, which a local run does not have. */
static int parse_synchronization(struct parse_ctx *ctx, const struct ydoc_node *n,
                                 const char *where, char ***names, size_t *n_names) {
  static const struct field_rule fields[] = {{"mutex", FIELD_USED},
                                             {"mutexes", FIELD_USED},
                                             {"semaphore", FIELD_USED},
                                             {"semaphores", FIELD_USED},
                                             {NULL, 0}};
  if (expect_kind(ctx, n, YDOC_MAPPING, where) < 0 || check_fields(ctx, n, where, fields) < 0)
    return -1;
  const struct ydoc_node *v;
  if ((v = ydoc_get(n, "semaphore")) != NULL || (v = ydoc_get(n, "semaphores")) != NULL)
    return fail_at(ctx, v, "'%s' semaphores are not supported: their limit lives in a ConfigMap "
                           "of the cluster; use a mutex, or parallelism",
                   where);
  if ((v = ydoc_get(n, "mutex")) != NULL && !ydoc_is_null(v) &&
      parse_mutex(ctx, v, "synchronization.mutex", names, n_names) < 0)
    return -1;
  if ((v = ydoc_get(n, "mutexes")) != NULL && !ydoc_is_null(v)) {
    if (expect_kind(ctx, v, YDOC_SEQUENCE, "synchronization.mutexes") < 0)
      return -1;
    for (size_t i = 0; i < v->n_items; i++)
      if (parse_mutex(ctx, v->items[i], "synchronization.mutexes[]", names, n_names) < 0)
        return -1;
  }
  return 0;
}

/* An absolute path without "." or ".." components, as the mount code needs. */
static bool artifact_path_ok(const char *path) {
  if (path[0] != '/' || strcmp(path, "/") == 0 || path[strlen(path) - 1] == '/')
    return false;
  for (const char *p = path; *p; p++)
    if (p[0] == '/' && (p[1] == '/' || (p[1] == '.' && (p[2] == '/' || p[2] == '\0')) ||
                        (p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
      return false;
  return true;
}

/* inputs.artifacts: only raw ones, whose content is in the workflow; any
 * other source (s3, git, http, from...) needs an artifact repository. */
static int parse_input_artifacts(struct parse_ctx *ctx, const struct ydoc_node *n,
                                 struct wf_template *t) {
  static const struct field_rule fields[] = {
      {"name", FIELD_USED},       {"path", FIELD_USED},     {"raw", FIELD_USED},
      {"mode", FIELD_NO_LOCAL_EFFECT}, {"optional", FIELD_NO_LOCAL_EFFECT},
      {"archive", FIELD_NO_LOCAL_EFFECT}, {NULL, 0}};
  static const struct field_rule raw_fields[] = {{"data", FIELD_USED}, {NULL, 0}};
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_SEQUENCE, "inputs.artifacts") < 0)
    return -1;
  t->input_artifacts = xcalloc(n->n_items ? n->n_items : 1, sizeof(*t->input_artifacts));
  for (size_t i = 0; i < n->n_items; i++) {
    const struct ydoc_node *a = n->items[i], *v;
    struct wf_artifact *art = &t->input_artifacts[i];
    t->n_input_artifacts++;
    art->pos = pos_of(a);
    if (expect_kind(ctx, a, YDOC_MAPPING, "inputs.artifacts[]") < 0)
      return -1;
    if ((v = ydoc_get(a, "name")) == NULL)
      return fail_at(ctx, a, "inputs.artifacts[]: an artifact needs a name");
    if (get_string(ctx, v, "artifact name", &art->name) < 0)
      return -1;
    const struct ydoc_node *raw = ydoc_get(a, "raw");
    if (raw == NULL) {
      for (size_t k = 0; k < a->n_pairs; k++) {
        const char *key = a->pairs[k].key->scalar;
        if (strcmp(key, "name") != 0 && strcmp(key, "path") != 0 && strcmp(key, "mode") != 0 &&
            strcmp(key, "optional") != 0 && strcmp(key, "archive") != 0)
          return fail_at(ctx, a->pairs[k].key,
                         "'inputs.artifacts.%s' is not supported: only raw artifacts can run "
                         "locally, the others need an artifact repository",
                         key);
      }
      return fail_at(ctx, a, "inputs.artifacts.%s needs a source: only raw artifacts are "
                             "supported locally",
                     art->name);
    }
    if (check_fields(ctx, a, "inputs.artifacts[]", fields) < 0 ||
        expect_kind(ctx, raw, YDOC_MAPPING, "raw") < 0 ||
        check_fields(ctx, raw, "raw", raw_fields) < 0)
      return -1;
    if ((v = ydoc_get(raw, "data")) == NULL)
      return fail_at(ctx, raw, "inputs.artifacts.%s.raw needs data", art->name);
    if (get_string(ctx, v, "raw.data", &art->raw_data) < 0)
      return -1;
    if ((v = ydoc_get(a, "path")) == NULL)
      return fail_at(ctx, a, "inputs.artifacts.%s.path not specified", art->name);
    if (get_string(ctx, v, "artifact path", &art->path) < 0)
      return -1;
    if (!artifact_path_ok(art->path))
      return fail_at(ctx, v, "inputs.artifacts.%s.path '%s' must be an absolute path to a file, "
                             "without '.' or '..' components",
                     art->name, art->path);
    for (size_t k = 0; k < i; k++)
      if (strcmp(t->input_artifacts[k].path, art->path) == 0)
        return fail_at(ctx, v, "inputs.artifacts.%s.path '%s' is used twice", art->name,
                       art->path);
  }
  return 0;
}

static bool is_body_key(const char *key) {
  static const char *const bodies[] = {"container", "script",   "steps",        "dag",  "suspend",
                                       "resource",  "http",     "plugin",       "data",
                                       "containerSet", NULL};
  for (size_t i = 0; bodies[i]; i++)
    if (strcmp(key, bodies[i]) == 0)
      return true;
  return false;
}

/* Which spec.templateDefaults fields a template takes: never a name, a body
 * only of its own kind (Argo restores the template's type after the merge),
 * and the pod deadlines only on leaves, where they mean something (Argo's
 * validation, which refuses them on steps and DAGs, runs before the merge). */
static bool default_applies(const char *key, void *ctx) {
  const struct ydoc_node *tmpl = ctx;
  if (strcmp(key, "name") == 0)
    return false;
  if (is_body_key(key))
    return ydoc_get(tmpl, key) != NULL;
  if (strcmp(key, "timeout") == 0 || strcmp(key, "activeDeadlineSeconds") == 0)
    return ydoc_get(tmpl, "container") != NULL || ydoc_get(tmpl, "script") != NULL ||
           ydoc_get(tmpl, "resource") != NULL || ydoc_get(tmpl, "http") != NULL ||
           ydoc_get(tmpl, "plugin") != NULL;
  return true;
}

static int parse_template(struct parse_ctx *ctx, const struct ydoc_node *n,
                          struct wf_template *t) {
  if (expect_kind(ctx, n, YDOC_MAPPING, "template") < 0)
    return -1;
  if (ctx->template_defaults != NULL) {
    /* Argo merges spec.templateDefaults under every template, the
     * template's own fields winning (mergedTemplateDefaultsInto). */
    const struct ydoc_node *merged =
        ydoc_merge(ctx->wf->doc, ctx->template_defaults, n, default_applies, (void *)n);
    if (merged == NULL)
      return fail_at(ctx, n, "out of memory merging spec.templateDefaults");
    n = merged;
  }
  t->pos = pos_of(n);
  t->node = n;
  const struct ydoc_node *v = ydoc_get(n, "name");
  if (t->name == NULL) { /* an inline template comes named */
    if (v == NULL)
      return fail_at(ctx, n, "a template needs a name");
    if (get_string(ctx, v, "template name", &t->name) < 0)
      return -1;
  }
  ctx->tmpl_name = t->name;
  if (check_fields(ctx, n, "template", template_fields) < 0)
    return -1;
  const struct ydoc_node *container = ydoc_get(n, "container"), *script = ydoc_get(n, "script"),
                         *steps = ydoc_get(n, "steps"), *dag = ydoc_get(n, "dag"),
                         *suspend = ydoc_get(n, "suspend"), *resource = ydoc_get(n, "resource"),
                         *http = ydoc_get(n, "http"), *plugin = ydoc_get(n, "plugin");
  int kinds = (container != NULL) + (script != NULL) + (steps != NULL) + (dag != NULL) +
              (suspend != NULL) + (resource != NULL) + (http != NULL) + (plugin != NULL);
  if (kinds == 0)
    return fail_at(ctx, n, "template '%s' has no body: it needs one of container, script, steps, "
                           "dag, suspend",
                   t->name);
  if (kinds > 1)
    return fail_at(ctx, n, "template '%s' has more than one body (container, script, steps...)",
                   t->name);
  if ((v = ydoc_get(n, "retryStrategy")) != NULL && parse_retry(ctx, v, &t->retry) < 0)
    return -1;
  /* Argo's validation (validateTemplate) refuses `timeout` on anything but
   * a leaf, and Kubernetes only enforces activeDeadlineSeconds on pods. */
  const char *kind_name = steps     ? "Steps"
                          : dag      ? "DAG"
                          : suspend  ? "Suspend"
                          : resource ? "Resource"
                          : http     ? "HTTP"
                          : plugin   ? "Plugin"
                                     : NULL;
  bool leaf = container != NULL || script != NULL || resource != NULL || http != NULL ||
              plugin != NULL;
  if ((v = ydoc_get(n, "timeout")) != NULL && !leaf)
    return fail_at(ctx, v, "templates.%s.timeout: %s template doesn't support timeout field",
                   t->name, kind_name);
  if ((v = ydoc_get(n, "activeDeadlineSeconds")) != NULL && !leaf)
    warn_at(ctx, v,
            "'templates.%s.activeDeadlineSeconds' has no effect on a %s template: Argo applies "
            "it only to container and script templates",
            t->name, kind_name);
  if ((v = ydoc_get(n, "timeout")) != NULL) {
    double secs;
    if (get_string(ctx, v, "timeout", &t->timeout) < 0)
      return -1;
    if (strstr(t->timeout, "{{") == NULL && parse_duration_seconds(t->timeout, false, &secs) < 0)
      return fail_at(ctx, v, "timeout: '%s' is not a duration with a unit (e.g. \"30s\")",
                     t->timeout);
  }
  if ((v = ydoc_get(n, "activeDeadlineSeconds")) != NULL) {
    long long secs;
    if (get_string(ctx, v, "activeDeadlineSeconds", &t->active_deadline_seconds) < 0)
      return -1;
    if (strstr(t->active_deadline_seconds, "{{") == NULL && (ydoc_as_int(v, &secs) < 0 || secs < 0))
      return fail_at(ctx, v, "activeDeadlineSeconds must be a non-negative integer");
  }
  if ((v = ydoc_get(n, "parallelism")) != NULL && parse_parallelism(ctx, v, &t->parallelism) < 0)
    return -1;
  if ((v = ydoc_get(n, "volumes")) != NULL &&
      volumes_parse(ctx->file, v, "volumes", &t->volumes, &t->n_volumes, ctx->err) < 0)
    return -1;
  if ((v = ydoc_get(n, "failFast")) != NULL && get_bool(ctx, v, "failFast", &t->fail_fast) < 0)
    return -1;
  if ((v = ydoc_get(n, "synchronization")) != NULL && !ydoc_is_null(v) &&
      parse_synchronization(ctx, v, "synchronization", &t->mutexes, &t->n_mutexes) < 0)
    return -1;
  if ((v = ydoc_get(n, "inputs")) != NULL && parse_io(ctx, v, "inputs", &t->inputs, &t->n_inputs) < 0)
    return -1;
  if (v != NULL && parse_input_artifacts(ctx, ydoc_get(v, "artifacts"), t) < 0)
    return -1;
  if ((v = ydoc_get(n, "outputs")) != NULL &&
      parse_io(ctx, v, "outputs", &t->outputs, &t->n_outputs) < 0)
    return -1;
  for (size_t i = 0; i < t->n_outputs; i++)
    if (check_output_source(ctx, t, &t->outputs[i], kind_name) < 0)
      return -1;
  if (container != NULL || script != NULL) {
    t->kind = container ? TEMPLATE_CONTAINER : TEMPLATE_SCRIPT;
    if (parse_container(ctx, container ? container : script, script != NULL, false, t) < 0)
      return -1;
  }
  if (parse_init_containers(ctx, ydoc_get(n, "initContainers"), container || script, t) < 0)
    return -1;
  if (container != NULL || script != NULL)
    return 0;
  if (dag != NULL) {
    t->kind = TEMPLATE_DAG;
    return parse_dag(ctx, dag, t);
  }
  if (suspend != NULL) {
    t->kind = TEMPLATE_SUSPEND;
    return parse_suspend(ctx, suspend, t);
  }
  const struct ydoc_node *body = resource ? resource : http ? http : plugin;
  if (body != NULL) {
    t->kind = resource ? TEMPLATE_RESOURCE : http ? TEMPLATE_HTTP : TEMPLATE_PLUGIN;
    /* The key, so that an error names the spot a reader looks for. */
    for (size_t i = 0; i < n->n_pairs; i++)
      if (n->pairs[i].value == body)
        t->body_pos = pos_of(n->pairs[i].key);
    return 0;
  }
  t->kind = TEMPLATE_STEPS;
  return parse_steps(ctx, steps, t);
}

int workflow_add_template(struct workflow *wf, const char *file, const struct ydoc_node *n,
                          ep_error **err) {
  struct parse_ctx ctx = {.file = file, .wf = wf, .err = err};
  struct wf_template t = {0};
  if (parse_template(&ctx, n, &t) < 0) {
    template_free(&t);
    discard_inlines(&ctx);
    return -1;
  }
  if (workflow_find_template(wf, t.name) != NULL) {
    const struct ydoc_node *name = ydoc_get(n, "name");
    fail_at(&ctx, name, "template '%s' already exists in workflow '%s'", t.name, wf->name);
    template_free(&t);
    return -1;
  }
  wf->templates = xreallocarray(wf->templates, wf->n_templates + 1, sizeof(*wf->templates));
  wf->templates[wf->n_templates++] = t;
  append_inlines(&ctx);
  return 0;
}

const char *workflow_cluster_only_kind(const struct wf_template *t) {
  switch (t->kind) {
  case TEMPLATE_RESOURCE:
    return "resource";
  case TEMPLATE_HTTP:
    return "http";
  case TEMPLATE_PLUGIN:
    return "plugin";
  default:
    return NULL;
  }
}

int workflow_check_runnable(const struct workflow *wf, const char *const *mocked,
                            size_t n_mocked, ep_error **err) {
  for (size_t i = 0; i < wf->n_templates; i++) {
    const struct wf_template *t = &wf->templates[i];
    const char *kind = workflow_cluster_only_kind(t);
    bool is_mocked = false;
    for (size_t m = 0; m < n_mocked && !is_mocked; m++)
      is_mocked = strcmp(mocked[m], t->name) == 0;
    if (kind != NULL && !is_mocked)
      return ep_error_at(err, EP_EXIT_USAGE, wf->file, t->body_pos.line, t->body_pos.column,
                         "template '%s': %s templates are not supported locally; mock it in a "
                         "scenario (spec.mocks) to run this workflow",
                         t->name, kind);
  }
  return 0;
}

const struct wf_template *workflow_find_template(const struct workflow *wf, const char *name) {
  for (size_t i = 0; i < wf->n_templates; i++)
    if (strcmp(wf->templates[i].name, name) == 0)
      return &wf->templates[i];
  return NULL;
}

/* Kubernetes' generateName suffix: 5 characters from an alphabet without
 * vowels or look-alikes. */
static char *generate_name(const char *prefix) {
  static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  unsigned char rnd[5];
  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    for (size_t i = 0; i < sizeof(rnd); i++)
      rnd[i] = (unsigned char)rand();
  char suffix[6];
  for (size_t i = 0; i < 5; i++)
    suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
  suffix[5] = '\0';
  char *name = NULL;
  if (asprintf(&name, "%s%s", prefix, suffix) < 0)
    abort();
  return name;
}

/* Kubernetes object names: lower-case alphanumerics, '-' and '.', at most 253. */
static bool valid_object_name(const char *s, bool prefix) {
  size_t len = strlen(s);
  if (len == 0 || len > 253)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
      return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
    return false;
  return prefix || s[len - 1] != '-';
}

static const struct field_rule metadata_fields[] = {
    {"name", FIELD_USED},
    {"generateName", FIELD_USED},
    {"namespace", FIELD_USED},
    {"labels", FIELD_NO_LOCAL_EFFECT},
    {"annotations", FIELD_NO_LOCAL_EFFECT},
    {NULL, 0},
};

static int parse_metadata(struct parse_ctx *ctx, const struct ydoc_node *root) {
  struct workflow *wf = ctx->wf;
  const struct ydoc_node *md = ydoc_get(root, "metadata");
  if (md == NULL)
    return fail_at(ctx, root, "metadata is required (with name or generateName)");
  if (expect_kind(ctx, md, YDOC_MAPPING, "metadata") < 0 ||
      check_fields(ctx, md, "metadata", metadata_fields) < 0)
    return -1;
  const struct ydoc_node *name = ydoc_get(md, "name"), *gen = ydoc_get(md, "generateName"),
                         *ns = ydoc_get(md, "namespace");
  if (name != NULL) {
    if (get_string(ctx, name, "metadata.name", &wf->name) < 0)
      return -1;
    if (!valid_object_name(wf->name, false))
      return fail_at(ctx, name, "metadata.name '%s' is not a valid name: lower-case letters, "
                                "digits, '-' and '.', starting and ending alphanumeric",
                     wf->name);
  }
  if (gen != NULL) {
    if (get_string(ctx, gen, "metadata.generateName", &wf->generate_name) < 0)
      return -1;
    if (!valid_object_name(wf->generate_name, true) || strlen(wf->generate_name) > 58)
      return fail_at(ctx, gen, "metadata.generateName '%s' is not a valid name prefix",
                     wf->generate_name);
  }
  if (wf->name == NULL && wf->generate_name == NULL)
    return fail_at(ctx, md, "metadata needs name or generateName");
  if (wf->name == NULL)
    wf->name = generate_name(wf->generate_name);
  if (ns != NULL) {
    if (get_string(ctx, ns, "metadata.namespace", &wf->namespace_) < 0)
      return -1;
  } else {
    wf->namespace_ = xstrdup("default");
  }
  return 0;
}

static const struct field_rule spec_fields[] = {
    {"entrypoint", FIELD_USED},
    {"onExit", FIELD_USED},
    {"hooks", FIELD_USED},
    {"arguments", FIELD_USED},
    {"templates", FIELD_USED},
    {"serviceAccountName", FIELD_NO_LOCAL_EFFECT},
    {"automountServiceAccountToken", FIELD_NO_LOCAL_EFFECT},
    {"executor", FIELD_NO_LOCAL_EFFECT},
    {"imagePullSecrets", FIELD_NO_LOCAL_EFFECT},
    {"nodeSelector", FIELD_NO_LOCAL_EFFECT},
    {"affinity", FIELD_NO_LOCAL_EFFECT},
    {"tolerations", FIELD_NO_LOCAL_EFFECT},
    {"securityContext", FIELD_NO_LOCAL_EFFECT},
    {"podGC", FIELD_NO_LOCAL_EFFECT},
    {"ttlStrategy", FIELD_NO_LOCAL_EFFECT},
    {"ttlSecondsAfterFinished", FIELD_NO_LOCAL_EFFECT},
    {"podMetadata", FIELD_NO_LOCAL_EFFECT},
    {"podPriorityClassName", FIELD_NO_LOCAL_EFFECT},
    {"priority", FIELD_NO_LOCAL_EFFECT},
    {"schedulerName", FIELD_NO_LOCAL_EFFECT},
    {"dnsPolicy", FIELD_NO_LOCAL_EFFECT},
    {"dnsConfig", FIELD_NO_LOCAL_EFFECT},
    {"hostNetwork", FIELD_NO_LOCAL_EFFECT},
    {"archiveLogs", FIELD_NO_LOCAL_EFFECT},
    {"artifactRepositoryRef", FIELD_NO_LOCAL_EFFECT},
    {"artifactGC", FIELD_NO_LOCAL_EFFECT},
    {"podDisruptionBudget", FIELD_NO_LOCAL_EFFECT},
    {"workflowMetadata", FIELD_NO_LOCAL_EFFECT},
    {"metrics", FIELD_NO_LOCAL_EFFECT},
    {"parallelism", FIELD_USED},
    {"activeDeadlineSeconds", FIELD_USED},
    {"retryStrategy", FIELD_USED},
    {"volumes", FIELD_USED},
    {"volumeClaimTemplates", FIELD_USED},
    {"workflowTemplateRef", FIELD_UNSUPPORTED},
    {"templateDefaults", FIELD_USED},
    {"suspend", FIELD_UNSUPPORTED},
    {"shutdown", FIELD_UNSUPPORTED},
    {"synchronization", FIELD_USED},
    {"podSpecPatch", FIELD_NO_LOCAL_EFFECT},
    {NULL, 0},
};

static int apply_overrides(struct parse_ctx *ctx, const struct param_override *overrides,
                           size_t n_overrides) {
  struct workflow *wf = ctx->wf;
  for (size_t i = 0; i < n_overrides; i++) {
    struct wf_parameter *p = NULL;
    for (size_t j = 0; j < wf->n_arguments; j++)
      if (strcmp(wf->arguments[j].name, overrides[i].name) == 0)
        p = &wf->arguments[j];
    if (p == NULL) {
      /* argo submit -p adds parameters the spec does not declare as well. */
      wf->arguments = realloc(wf->arguments, (wf->n_arguments + 1) * sizeof(*wf->arguments));
      if (wf->arguments == NULL)
        abort();
      p = &wf->arguments[wf->n_arguments++];
      memset(p, 0, sizeof(*p));
      p->name = xstrdup(overrides[i].name);
    }
    free(p->value);
    p->value = xstrdup(overrides[i].value);
    p->value_pos = (struct src_pos){0, 0}; /* a -p value has no place in the file */
  }
  return 0;
}

static int check_enum(struct parse_ctx *ctx, const struct wf_parameter *p, const char *value) {
  if (p->n_enum_values == 0 || value == NULL)
    return 0;
  for (size_t i = 0; i < p->n_enum_values; i++)
    if (strcmp(p->enum_values[i], value) == 0)
      return 0;
  struct src_pos at = p->value_pos.line ? p->value_pos : p->pos;
  return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, at.line, at.column,
                     "value '%s' of parameter '%s' is not one of its enum values", value,
                     p->name);
}

/* Where a variable reference is checked: which names a tag may use at
 * that point.  Argo rejects a workflow whose tags cannot resolve, before
 * anything runs; so do we. */
struct ref_check {
  struct parse_ctx *ctx;
  const struct workflow *wf;
  const struct wf_template *tmpl;
  const struct wf_step *const *visible; /* steps/tasks whose outputs are visible */
  size_t n_visible;
  const char *prefix;                   /* "steps." or "tasks." */
  bool in_loop;                         /* {{item}} is bound */
  const struct ydoc_node *where;
  const char *field;
};

static bool known_global(const struct workflow *wf, const char *name) {
  static const char *const globals[] = {
      "workflow.name", "workflow.namespace", "workflow.uid", "workflow.status",
      "workflow.failures", "workflow.duration", "workflow.mainEntrypoint",
      "workflow.serviceAccountName", "workflow.creationTimestamp", "workflow.parameters",
      "workflow.parameters.json", "workflow.priority", NULL};
  for (const char *const *g = globals; *g; g++)
    if (strcmp(*g, name) == 0)
      return true;
  if (strncmp(name, "workflow.creationTimestamp.", 27) == 0)
    return true;
  if (strncmp(name, "workflow.outputs.parameters.", 28) == 0) {
    for (size_t t = 0; t < wf->n_templates; t++)
      for (size_t o = 0; o < wf->templates[t].n_outputs; o++)
        if (wf->templates[t].outputs[o].global_name &&
            strcmp(wf->templates[t].outputs[o].global_name, name + 28) == 0)
          return true;
    for (size_t i = 0; i < wf->n_arguments; i++)
      if (strcmp(wf->arguments[i].name, name + 28) == 0)
        return true;
    return false;
  }
  if (strncmp(name, "workflow.parameters.", 20) == 0) {
    for (size_t i = 0; i < wf->n_arguments; i++)
      if (strcmp(wf->arguments[i].name, name + 20) == 0)
        return true;
  }
  return false;
}

static bool output_field_ok(const struct workflow *wf, const struct wf_step *s, const char *field) {
  static const char *const simple[] = {"status", "id", "startedAt", "finishedAt", "hostNodeName",
                                       "ip", "outputs.parameters", NULL};
  for (const char *const *f = simple; *f; f++)
    if (strcmp(field, *f) == 0)
      return true;
  const struct wf_template *t = workflow_find_template(wf, s->template_name);
  if (strcmp(field, "exitCode") == 0 || strcmp(field, "outputs.result") == 0)
    /* Argo's Template.HasOutput: only what runs a main container (or an
     * http/plugin call) has a result and an exit code; steps, DAG,
     * suspend and resource templates do not. */
    return t == NULL || t->kind == TEMPLATE_CONTAINER || t->kind == TEMPLATE_SCRIPT ||
           t->kind == TEMPLATE_HTTP || t->kind == TEMPLATE_PLUGIN;
  if (strncmp(field, "outputs.parameters.", 19) != 0)
    return false;
  if (t == NULL)
    return true; /* an unknown template is reported elsewhere */
  for (size_t o = 0; o < t->n_outputs; o++)
    if (strcmp(t->outputs[o].name, field + 19) == 0)
      return true;
  return false;
}

static bool step_ref_ok(const struct ref_check *rc, const char *name) {
  if (rc->prefix == NULL || strncmp(name, rc->prefix, strlen(rc->prefix)) != 0)
    return false;
  const char *rest = name + strlen(rc->prefix);
  for (size_t i = 0; i < rc->n_visible; i++) {
    size_t len = strlen(rc->visible[i]->name);
    if (strncmp(rest, rc->visible[i]->name, len) == 0 && rest[len] == '.') {
      /* The model is still being built here: remember who is read, so the
       * controller binds only the outputs someone reads. */
      ((struct wf_step *)rc->visible[i])->referenced = true;
      return output_field_ok(rc->wf, rc->visible[i], rest + len + 1);
    }
  }
  return false;
}

static void mark_all_referenced(const struct ref_check *rc) {
  for (size_t i = 0; i < rc->n_visible; i++)
    ((struct wf_step *)rc->visible[i])->referenced = true;
}

static int visit_ref(void *opaque, const char *name, size_t offset) {
  struct ref_check *rc = opaque;
  (void)offset;
  if (name[0] == '=') {
    /* Expression tags are checked when evaluated; what they read is not
     * known here, so every visible step's outputs stay bound. */
    mark_all_referenced(rc);
    return 0;
  }
  if (known_global(rc->wf, name))
    return 0;
  if (strncmp(name, "inputs.parameters.", 18) == 0) {
    for (size_t i = 0; i < rc->tmpl->n_inputs; i++)
      if (strcmp(rc->tmpl->inputs[i].name, name + 18) == 0)
        return 0;
  } else if (strcmp(name, "pod.name") == 0 || strcmp(name, "node.name") == 0 ||
             strcmp(name, "inputs.parameters") == 0 || strcmp(name, "retries") == 0 ||
             strncmp(name, "lastRetry.", 10) == 0) {
    return 0;
  } else if (rc->in_loop && (strcmp(name, "item") == 0 || strncmp(name, "item.", 5) == 0)) {
    return 0;
  } else if (step_ref_ok(rc, name)) {
    return 0;
  }
  return fail_at(rc->ctx, rc->where, "templates.%s: %s: failed to resolve {{%s}}", rc->tmpl->name,
                 rc->field, name);
}

static int check_refs(struct ref_check *rc, const struct ydoc_node *where, const char *field,
                      const char *text) {
  if (text == NULL)
    return 0;
  rc->where = where;
  rc->field = field;
  return template_for_each_tag(text, visit_ref, rc);
}

/* Find the YAML node of a list element for positions in errors. */
static const struct ydoc_node *nth(const struct ydoc_node *seq, size_t i) {
  if (seq == NULL || seq->kind != YDOC_SEQUENCE || i >= seq->n_items)
    return seq;
  return seq->items[i];
}

static struct ydoc_node pos_node(struct src_pos p) {
  struct ydoc_node n = {.line = p.line, .column = p.column};
  return n;
}

/* One container of the template's pod (ctr: main's fields, or an init
 * container's), written at body; tags resolve in the template's scope. */
static int validate_container_refs(struct ref_check *rc, const struct ydoc_node *body,
                                   const struct wf_template *ctr) {
  const struct ydoc_node *cmd = ydoc_get(body, "command"), *args = ydoc_get(body, "args");
  for (size_t i = 0; i < ctr->n_command; i++)
    if (check_refs(rc, nth(cmd, i), "command", ctr->command[i]) < 0)
      return -1;
  for (size_t i = 0; i < ctr->n_args; i++)
    if (check_refs(rc, nth(args, i), "args", ctr->args[i]) < 0)
      return -1;
  for (size_t i = 0; i < ctr->n_env; i++) {
    const struct ydoc_node *env = nth(ydoc_get(body, "env"), i);
    if (check_refs(rc, ydoc_get(env, "value") ? ydoc_get(env, "value") : env, "env",
                   ctr->env[i].value) < 0)
      return -1;
  }
  if (check_refs(rc, ydoc_get(body, "workingDir"), "workingDir", ctr->working_dir) < 0 ||
      check_refs(rc, ydoc_get(body, "source"), "source", ctr->source) < 0)
    return -1;
  return 0;
}

static int validate_leaf_refs(struct parse_ctx *ctx, const struct workflow *wf,
                              const struct wf_template *t) {
  struct ref_check rc = {.ctx = ctx, .wf = wf, .tmpl = t};
  if (t->kind != TEMPLATE_CONTAINER && t->kind != TEMPLATE_SCRIPT)
    return 0;
  const struct ydoc_node *body =
      ydoc_get(t->node, t->kind == TEMPLATE_SCRIPT ? "script" : "container");
  if (validate_container_refs(&rc, body, t) < 0)
    return -1;
  for (size_t i = 0; i < t->n_init_containers; i++)
    if (validate_container_refs(&rc, t->init_containers[i].node, &t->init_containers[i]) < 0)
      return -1;
  return 0;
}

/* Template exists, every input without a default is supplied. */
static int check_call(struct parse_ctx *ctx, const struct workflow *wf, const char *what,
                      const char *name, const char *template_name, struct src_pos tpos,
                      struct src_pos pos, const struct wf_parameter *args, size_t n_args) {
  const struct wf_template *target = workflow_find_template(wf, template_name);
  if (target == NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, tpos.line, tpos.column,
                       "%s '%s' refers to template '%s', which is not defined", what, name,
                       template_name);
  for (size_t a = 0; a < n_args; a++) {
    bool declared = false;
    for (size_t i = 0; i < target->n_inputs; i++)
      declared |= strcmp(target->inputs[i].name, args[a].name) == 0;
    if (!declared) {
      struct ydoc_node at = pos_node(args[a].pos);
      warn_at(ctx, &at, "argument '%s' of %s '%s' is not an input of template '%s'",
              args[a].name, what, name, target->name);
    }
  }
  for (size_t i = 0; i < target->n_inputs; i++) {
    const struct wf_parameter *in = &target->inputs[i];
    bool supplied = in->value != NULL || in->default_value != NULL;
    for (size_t a = 0; a < n_args; a++)
      supplied |= strcmp(args[a].name, in->name) == 0;
    if (!supplied)
      return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, pos.line, pos.column,
                         "%s '%s': inputs.parameters.%s of template '%s' was not supplied", what,
                         name, in->name, target->name);
  }
  return 0;
}

static int validate_call_site(struct parse_ctx *ctx, const struct workflow *wf,
                              struct ref_check *rc, const struct wf_step *step, const char *what) {
  if (check_call(ctx, wf, what, step->name, step->template_name, step->template_pos, step->pos,
                 step->arguments, step->n_arguments) < 0)
    return -1;
  rc->in_loop = step->loop.kind != LOOP_NONE;
  for (size_t a = 0; a < step->n_arguments; a++) {
    const struct wf_parameter *arg = &step->arguments[a];
    struct ydoc_node at = pos_node(arg->value_pos.line ? arg->value_pos : arg->pos);
    if (check_refs(rc, &at, "arguments", arg->value) < 0)
      return -1;
  }
  struct ydoc_node when_at = pos_node(step->when_pos.line ? step->when_pos : step->pos);
  struct ydoc_node param_at = pos_node(step->loop.pos.line ? step->loop.pos : step->pos);
  if (check_refs(rc, &when_at, "when", step->when) < 0 ||
      check_refs(rc, &param_at, "withParam", step->loop.param) < 0)
    return -1;
  for (size_t h = 0; h < step->n_hooks; h++) {
    const struct wf_hook *hook = &step->hooks[h];
    /* An expression hook may read other steps' outputs by name. */
    if (hook->expression != NULL &&
        (strstr(hook->expression, "steps") != NULL || strstr(hook->expression, "tasks") != NULL))
      mark_all_referenced(rc);
    char *hook_name = NULL;
    if (asprintf(&hook_name, "%s.hooks.%s", step->name, hook->name) < 0)
      abort();
    int rc2 = check_call(ctx, wf, what, hook_name, hook->template_name, hook->template_pos,
                         hook->pos, hook->arguments, hook->n_arguments);
    free(hook_name);
    if (rc2 < 0)
      return -1;
  }
  rc->in_loop = false;
  return 0;
}

/* A steps or DAG template's outputs read its own steps or tasks, all of
 * them finished by then. */
static int validate_composite_outputs(struct ref_check *rc) {
  const struct wf_template *t = rc->tmpl;
  for (size_t i = 0; i < t->n_outputs; i++) {
    const struct wf_parameter *p = &t->outputs[i];
    struct ydoc_node at = pos_node(p->pos);
    if (p->value_from_expression != NULL)
      mark_all_referenced(rc); /* what an expression reads is known only when it runs */
    if (p->value_from_parameter == NULL)
      continue;
    /* Argo accepts the reference with or without its braces. */
    char *tag = strstr(p->value_from_parameter, "{{") != NULL
                    ? xstrdup(p->value_from_parameter)
                    : xasprintf("{{%s}}", p->value_from_parameter);
    char *field = xasprintf("outputs.parameters.%s.valueFrom.parameter", p->name);
    int ret = check_refs(rc, &at, field, tag);
    free(field);
    free(tag);
    if (ret < 0)
      return -1;
  }
  return 0;
}

static int validate_steps(struct parse_ctx *ctx, const struct workflow *wf,
                          const struct wf_template *t) {
  size_t total = 0;
  for (size_t g = 0; g < t->n_groups; g++)
    total += t->groups[g].n_steps;
  const struct wf_step **visible = xcalloc(total + 1, sizeof(*visible));
  struct ref_check rc = {.ctx = ctx, .wf = wf, .tmpl = t, .visible = visible, .prefix = "steps."};
  int ret = -1;
  for (size_t g = 0; g < t->n_groups; g++) {
    for (size_t s = 0; s < t->groups[g].n_steps; s++) {
      /* Arguments and `when` see the steps of earlier groups only. */
      if (validate_call_site(ctx, wf, &rc, &t->groups[g].steps[s], "step") < 0)
        goto out;
    }
    for (size_t s = 0; s < t->groups[g].n_steps; s++)
      visible[rc.n_visible++] = &t->groups[g].steps[s];
  }
  if (validate_composite_outputs(&rc) < 0)
    goto out;
  ret = 0;
out:
  free(visible);
  return ret;
}

/* Task names a depends expression mentions: identifiers before a '.' or alone. */
static int check_depends_names(struct parse_ctx *ctx, const struct wf_template *t,
                               const struct dag_graph *g, const struct wf_step *task) {
  const char *p = task->depends;
  while (p != NULL && *p) {
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-')) {
      p++;
      continue;
    }
    const char *start = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == '-')
      p++;
    size_t len = (size_t)(p - start);
    if (dag_graph_task(g, t, start, len) < 0)
      return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, task->depends_pos.line,
                         task->depends_pos.column,
                         "task '%s' depends on '%.*s', which is not a task of template '%s'",
                         task->name, (int)len, start, t->name);
    if (*p == '.') {
      p++;
      static const char *const results[] = {"Succeeded", "Failed", "Errored", "Skipped",
                                             "Omitted", "Daemoned", "AnySucceeded", "AllFailed",
                                             NULL};
      const char *r0 = p;
      while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
        p++;
      bool ok = false;
      for (const char *const *r = results; *r; r++)
        ok |= strlen(*r) == (size_t)(p - r0) && strncmp(*r, r0, (size_t)(p - r0)) == 0;
      if (!ok)
        return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, task->depends_pos.line,
                           task->depends_pos.column,
                           "task '%s': '%.*s' is not a task result (Succeeded, Failed, Errored, "
                           "Skipped, Omitted, Daemoned, AnySucceeded, AllFailed)",
                           task->name, (int)(p - r0), r0);
    }
  }
  return 0;
}

static int validate_dag(struct parse_ctx *ctx, const struct workflow *wf,
                        const struct wf_template *t) {
  const struct wf_step **visible = xcalloc(t->n_tasks + 1, sizeof(*visible));
  struct ref_check rc = {.ctx = ctx, .wf = wf, .tmpl = t, .visible = visible, .prefix = "tasks."};
  int ret = -1;
  struct dag_graph g;
  dag_graph_build(t, &g);
  for (size_t i = 0; i < t->n_tasks; i++)
    visible[rc.n_visible++] = &t->tasks[i];
  for (size_t i = 0; i < t->n_tasks; i++) {
    const struct wf_step *task = &t->tasks[i];
    for (size_t d = 0; d < task->n_dependencies; d++)
      if (dag_graph_task(&g, t, task->dependencies[d], strlen(task->dependencies[d])) < 0) {
        const struct ydoc_node *at = nth(task->dependencies_node, d);
        ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, at ? at->line : task->depends_pos.line,
                    at ? at->column : task->depends_pos.column,
                    "task '%s' depends on '%s', which is not a task of template '%s'", task->name,
                    task->dependencies[d], t->name);
        goto out;
      }
    if (check_depends_names(ctx, t, &g, task) < 0 || validate_call_site(ctx, wf, &rc, task, "task") < 0)
      goto out;
  }
  if (t->dag_target != NULL) {
    char *copy = xstrdup(t->dag_target), *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
      if (strstr(tok, "{{") == NULL && dag_graph_task(&g, t, tok, strlen(tok)) < 0) {
        const struct ydoc_node *dag = ydoc_get(t->node, "dag");
        fail_at(ctx, ydoc_get(dag, "target"), "dag.target names '%s', which is not a task", tok);
        free(copy);
        goto out;
      }
    }
    free(copy);
  }
  long c = dag_graph_find_cycle(&g);
  if (c >= 0) {
    const struct wf_step *task = &t->tasks[c];
    ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, task->pos.line, task->pos.column,
                "dependency cycle in template '%s' through task '%s'", t->name, task->name);
    goto out;
  }
  if (validate_composite_outputs(&rc) < 0)
    goto out;
  ret = 0;
out:
  dag_graph_free(&g);
  free(visible);
  return ret;
}

/* The entrypoint and the exit handler take their inputs from the workflow's arguments. */
static int validate_top_inputs(struct parse_ctx *ctx, const struct workflow *wf,
                               const struct wf_template *t, struct src_pos pos,
                               const struct wf_parameter *extra, size_t n_extra) {
  for (size_t i = 0; i < t->n_inputs; i++) {
    const struct wf_parameter *in = &t->inputs[i];
    if (in->value != NULL || in->default_value != NULL)
      continue;
    bool supplied = false;
    for (size_t a = 0; a < wf->n_arguments; a++)
      supplied |= strcmp(wf->arguments[a].name, in->name) == 0 && wf->arguments[a].value;
    for (size_t a = 0; a < n_extra; a++)
      supplied |= strcmp(extra[a].name, in->name) == 0;
    if (!supplied)
      return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, pos.line, pos.column,
                         "inputs.parameters.%s of template '%s' was not supplied (pass it "
                         "with -p %s=VALUE)",
                         in->name, t->name, in->name);
  }
  return 0;
}

static int validate(struct parse_ctx *ctx) {
  struct workflow *wf = ctx->wf;
  for (size_t i = 0; i < wf->n_templates; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(wf->templates[i].name, wf->templates[j].name) == 0)
        return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, wf->templates[i].pos.line,
                           wf->templates[i].pos.column,
                           "duplicate template name '%s' (first defined at line %d)",
                           wf->templates[i].name, wf->templates[j].pos.line);
  const struct wf_template *entry = workflow_find_template(wf, wf->entrypoint);
  if (entry == NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, wf->entrypoint_pos.line,
                       wf->entrypoint_pos.column, "entrypoint template '%s' is not defined",
                       wf->entrypoint);
  if (validate_top_inputs(ctx, wf, entry, wf->entrypoint_pos, NULL, 0) < 0)
    return -1;
  if (wf->on_exit != NULL) {
    const struct wf_template *handler = workflow_find_template(wf, wf->on_exit);
    if (handler == NULL)
      return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, wf->on_exit_pos.line,
                         wf->on_exit_pos.column, "onExit template '%s' is not defined",
                         wf->on_exit);
    if (validate_top_inputs(ctx, wf, handler, wf->on_exit_pos, wf->exit_arguments,
                            wf->n_exit_arguments) < 0)
      return -1;
  }
  for (size_t h = 0; h < wf->n_hooks; h++)
    if (check_call(ctx, wf, "hook", wf->hooks[h].name, wf->hooks[h].template_name,
                   wf->hooks[h].template_pos, wf->hooks[h].pos, wf->hooks[h].arguments,
                   wf->hooks[h].n_arguments) < 0)
      return -1;
  for (size_t i = 0; i < wf->n_arguments; i++) {
    if (check_enum(ctx, &wf->arguments[i], wf->arguments[i].value) < 0)
      return -1;
    struct ref_check rc = {.ctx = ctx, .wf = wf, .tmpl = entry};
    const struct wf_parameter *arg = &wf->arguments[i];
    struct ydoc_node at = pos_node(arg->value_pos.line ? arg->value_pos : arg->pos);
    if (check_refs(&rc, &at, "arguments", wf->arguments[i].value) < 0)
      return -1;
  }
  for (size_t i = 0; i < wf->n_templates; i++) {
    const struct wf_template *t = &wf->templates[i];
    int rc;
    if (t->kind == TEMPLATE_STEPS)
      rc = validate_steps(ctx, wf, t);
    else if (t->kind == TEMPLATE_DAG)
      rc = validate_dag(ctx, wf, t);
    else
      rc = validate_leaf_refs(ctx, wf, t);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static int parse_spec(struct parse_ctx *ctx, const struct ydoc_node *root,
                      const struct param_override *overrides, size_t n_overrides) {
  struct workflow *wf = ctx->wf;
  const struct ydoc_node *spec = ydoc_get(root, "spec");
  if (spec == NULL)
    return fail_at(ctx, root, "spec is required");
  if (expect_kind(ctx, spec, YDOC_MAPPING, "spec") < 0 || check_fields(ctx, spec, "spec", spec_fields) < 0)
    return -1;
  const struct ydoc_node *v = ydoc_get(spec, "entrypoint");
  if (v == NULL || ydoc_is_null(v))
    return fail_at(ctx, spec, "spec.entrypoint is required: name the template to start with");
  wf->entrypoint_pos = pos_of(v);
  if (get_string(ctx, v, "spec.entrypoint", &wf->entrypoint) < 0)
    return -1;
  if ((v = ydoc_get(spec, "onExit")) != NULL && !ydoc_is_null(v)) {
    wf->on_exit_pos = pos_of(v);
    if (get_string(ctx, v, "spec.onExit", &wf->on_exit) < 0)
      return -1;
  }
  if ((v = ydoc_get(spec, "hooks")) != NULL) {
    if (parse_hooks(ctx, v, true, &wf->hooks, &wf->n_hooks) < 0)
      return -1;
    /* The exit hook is the exit handler; onExit wins when both are set
     * (Argo's GetExitHook).  Other hooks stay as lifecycle hooks. */
    if (wf->n_hooks > 0 && strcmp(wf->hooks[0].name, "exit") == 0) {
      struct wf_hook exit_hook = wf->hooks[0];
      memmove(&wf->hooks[0], &wf->hooks[1], (wf->n_hooks - 1) * sizeof(*wf->hooks));
      wf->n_hooks--;
      if (wf->on_exit == NULL) {
        wf->on_exit = exit_hook.template_name;
        wf->on_exit_pos = exit_hook.template_pos;
        wf->exit_arguments = exit_hook.arguments;
        wf->n_exit_arguments = exit_hook.n_arguments;
        exit_hook.template_name = NULL;
        exit_hook.arguments = NULL;
        exit_hook.n_arguments = 0;
      }
      hook_free(&exit_hook);
    }
  }
  if ((v = ydoc_get(spec, "parallelism")) != NULL && parse_parallelism(ctx, v, &wf->parallelism) < 0)
    return -1;
  if ((v = ydoc_get(spec, "activeDeadlineSeconds")) != NULL &&
      get_string(ctx, v, "spec.activeDeadlineSeconds", &wf->active_deadline_seconds) < 0)
    return -1;
  if ((v = ydoc_get(spec, "synchronization")) != NULL && !ydoc_is_null(v)) {
    /* A workflow-level mutex is taken by the whole run, the only workflow
     * there is: it is always free, so it is checked and has no effect. */
    char **names = NULL;
    size_t n_names = 0;
    int rc = parse_synchronization(ctx, v, "spec.synchronization", &names, &n_names);
    for (size_t i = 0; i < n_names; i++)
      free(names[i]);
    free(names);
    if (rc < 0)
      return -1;
  }
  if ((v = ydoc_get(spec, "retryStrategy")) != NULL && parse_retry(ctx, v, &wf->retry) < 0)
    return -1;
  if ((v = ydoc_get(spec, "arguments")) != NULL &&
      parse_io(ctx, v, "spec.arguments", &wf->arguments, &wf->n_arguments) < 0)
    return -1;
  if (apply_overrides(ctx, overrides, n_overrides) < 0)
    return -1;
  if ((v = ydoc_get(spec, "volumes")) != NULL &&
      volumes_parse(ctx->file, v, "spec.volumes", &wf->volumes, &wf->n_volumes, ctx->err) < 0)
    return -1;
  if ((v = ydoc_get(spec, "volumeClaimTemplates")) != NULL &&
      volumes_parse_claim_templates(ctx->file, v, &wf->volumes, &wf->n_volumes, ctx->err) < 0)
    return -1;
  if ((v = ydoc_get(spec, "templateDefaults")) != NULL && !ydoc_is_null(v)) {
    if (expect_kind(ctx, v, YDOC_MAPPING, "spec.templateDefaults") < 0)
      return -1;
    ctx->template_defaults = v;
  }
  v = ydoc_get(spec, "templates");
  if (v == NULL || ydoc_is_null(v))
    return fail_at(ctx, spec, "spec.templates is required");
  if (expect_kind(ctx, v, YDOC_SEQUENCE, "spec.templates") < 0)
    return -1;
  if (v->n_items == 0)
    return fail_at(ctx, v, "spec.templates is empty");
  wf->templates = xcalloc(v->n_items, sizeof(*wf->templates));
  for (size_t i = 0; i < v->n_items; i++) {
    wf->n_templates++;
    if (parse_template(ctx, v->items[i], &wf->templates[i]) < 0) {
      discard_inlines(ctx);
      return -1;
    }
  }
  append_inlines(ctx);
  if (volumes_validate(wf, ctx->err) < 0)
    return -1;
  return validate(ctx);
}

int workflow_from_doc(struct ydoc *doc, const struct param_override *overrides,
                      size_t n_overrides, struct workflow **out, ep_error **err) {
  struct workflow *wf = xcalloc(1, sizeof(*wf));
  struct parse_ctx ctx = {.file = doc->file, .wf = wf, .err = err};
  wf->doc = doc;
  wf->file = xstrdup(doc->file);
  const struct ydoc_node *root = doc->root;
  if (root == NULL) {
    ep_error_at(err, EP_EXIT_USAGE, doc->file, 1, 1, "the file is empty: expected a Workflow");
    goto fail;
  }
  if (expect_kind(&ctx, root, YDOC_MAPPING, "a Workflow document") < 0)
    goto fail;
  const struct ydoc_node *kind = ydoc_get(root, "kind"), *api = ydoc_get(root, "apiVersion");
  if (kind == NULL || kind->kind != YDOC_SCALAR) {
    fail_at(&ctx, root, "kind is missing: expected kind: Workflow");
    goto fail;
  }
  if (strcmp(kind->scalar, "Workflow") != 0) {
    fail_at(&ctx, kind, "unknown kind '%s': exitprobe runs kind: Workflow", kind->scalar);
    goto fail;
  }
  if (api == NULL || api->kind != YDOC_SCALAR || strcmp(api->scalar, "argoproj.io/v1alpha1") != 0) {
    fail_at(&ctx, api ? api : root, "apiVersion must be argoproj.io/v1alpha1");
    goto fail;
  }
  static const struct field_rule top_fields[] = {
      {"apiVersion", FIELD_USED}, {"kind", FIELD_USED}, {"metadata", FIELD_USED},
      {"spec", FIELD_USED}, {"status", FIELD_NO_LOCAL_EFFECT}, {NULL, 0}};
  if (check_fields(&ctx, root, "workflow", top_fields) < 0 || parse_metadata(&ctx, root) < 0 ||
      parse_spec(&ctx, root, overrides, n_overrides) < 0)
    goto fail;
  *out = wf;
  return 0;
fail:
  wf->doc = NULL; /* the caller still owns doc on failure */
  workflow_free(wf);
  return -1;
}

int workflow_load_file(const char *path, const struct param_override *overrides,
                       size_t n_overrides, struct workflow **out, ep_error **err) {
  struct ydoc *doc = NULL;
  if (ydoc_load_file(path, NULL, &doc, err) < 0)
    return -1;
  if (workflow_from_doc(doc, overrides, n_overrides, out, err) < 0) {
    ydoc_free(doc);
    return -1;
  }
  return 0;
}

void workflow_free(struct workflow *wf) {
  if (wf == NULL)
    return;
  free(wf->file);
  free(wf->name);
  free(wf->generate_name);
  free(wf->namespace_);
  free(wf->entrypoint);
  free(wf->on_exit);
  for (size_t i = 0; i < wf->n_arguments; i++)
    parameter_free(&wf->arguments[i]);
  free(wf->arguments);
  for (size_t i = 0; i < wf->n_templates; i++)
    template_free(&wf->templates[i]);
  free(wf->templates);
  for (size_t i = 0; i < wf->n_warnings; i++)
    free(wf->warnings[i]);
  free(wf->warnings);
  free(wf->active_deadline_seconds);
  retry_free(&wf->retry);
  for (size_t i = 0; i < wf->n_hooks; i++)
    hook_free(&wf->hooks[i]);
  free(wf->hooks);
  for (size_t i = 0; i < wf->n_exit_arguments; i++)
    parameter_free(&wf->exit_arguments[i]);
  free(wf->exit_arguments);
  volumes_free(wf->volumes, wf->n_volumes);
  ydoc_free(wf->doc);
  free(wf);
}
