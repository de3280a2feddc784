#include "template_vars.h"
#include "expr.h"
#include "xalloc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>



void var_scope_init(struct var_scope *scope, const struct var_scope *parent) {
  memset(scope, 0, sizeof(*scope));
  scope->parent = parent;
}

static size_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return (size_t)h;
}

/* Position of name in scope's own bindings, or -1. */
static ptrdiff_t find_own(const struct var_scope *scope, const char *name) {
  if (scope->index_cap == 0)
    return -1;
  size_t mask = scope->index_cap - 1;
  for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
    size_t slot = scope->index[i];
    if (slot == 0)
      return -1;
    if (strcmp(scope->bindings[slot - 1].name, name) == 0)
      return (ptrdiff_t)(slot - 1);
  }
}

static void index_insert(struct var_scope *scope, size_t pos) {
  size_t mask = scope->index_cap - 1;
  size_t i = name_hash(scope->bindings[pos].name) & mask;
  while (scope->index[i] != 0)
    i = (i + 1) & mask;
  scope->index[i] = pos + 1;
}

static void index_grow(struct var_scope *scope) {
  size_t cap = scope->index_cap ? scope->index_cap * 2 : 32;
  free(scope->index);
  scope->index = xcalloc(cap, sizeof(size_t));
  scope->index_cap = cap;
  for (size_t i = 0; i < scope->n; i++)
    index_insert(scope, i);
}

void var_scope_set(struct var_scope *scope, const char *name, const char *value) {
  ptrdiff_t at = find_own(scope, name);
  if (at >= 0) {
    free(scope->bindings[at].value);
    scope->bindings[at].value = xstrdup(value);
    return;
  }
  if (scope->n == scope->cap) {
    scope->cap = scope->cap ? scope->cap * 2 : 16;
    scope->bindings = xrealloc(scope->bindings, scope->cap * sizeof(*scope->bindings));
  }
  scope->bindings[scope->n].name = xstrdup(name);
  scope->bindings[scope->n].value = xstrdup(value);
  scope->n++;
  if ((scope->n + 1) * 2 > scope->index_cap)
    index_grow(scope);
  else
    index_insert(scope, scope->n - 1);
}

const char *var_scope_get(const struct var_scope *scope, const char *name) {
  for (const struct var_scope *s = scope; s != NULL; s = s->parent) {
    ptrdiff_t at = find_own(s, name);
    if (at >= 0)
      return s->bindings[at].value;
  }
  return NULL;
}

void var_scope_clear(struct var_scope *scope) {
  for (size_t i = 0; i < scope->n; i++) {
    free(scope->bindings[i].name);
    free(scope->bindings[i].value);
  }
  free(scope->bindings);
  free(scope->index);
  scope->bindings = NULL;
  scope->index = NULL;
  scope->n = scope->cap = scope->index_cap = 0;
}

/* A growable string; abort on allocation failure like the rest of the tool. */
struct strbuf {
  char *data;
  size_t len, cap;
};

static void sb_append(struct strbuf *sb, const char *s, size_t n) {
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + n + 1)
      cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
  }
  memcpy(sb->data + sb->len, s, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
}

static void sb_append_char(struct strbuf *sb, char c) { sb_append(sb, &c, 1); }

/* Argo's tags are "{{" name "}}" with surrounding spaces trimmed; the name
 * itself runs to the first "}}". */
static int find_tag(const char *in, size_t from, size_t *open, size_t *close, char **name) {
  const char *start = strstr(in + from, "{{");
  if (start == NULL)
    return 0;
  const char *end = strstr(start + 2, "}}");
  if (end == NULL)
    return 0;
  const char *a = start + 2, *b = end;
  while (a < b && (*a == ' ' || *a == '\t'))
    a++;
  while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
    b--;
  *name = strndup(a, (size_t)(b - a));
  if (*name == NULL)
    abort();
  *open = (size_t)(start - in);
  *close = (size_t)(end - in) + 2;
  return 1;
}

int template_for_each_tag(const char *in, template_visit_fn visit, void *ctx) {
  size_t pos = 0, open, close;
  char *name;
  while (find_tag(in, pos, &open, &close, &name)) {
    int rc = visit(ctx, name, open);
    free(name);
    if (rc != 0)
      return rc;
    pos = close;
  }
  return 0;
}

int var_scope_expr_lookup(void *ctx, const char *name, struct expr_value *out) {
  const char *v = var_scope_get(ctx, name);
  if (v == NULL)
    return 0;
  expr_value_set_string(out, v);
  return 1;
}

static int evaluate_expression_tag(const char *expr, const struct var_scope *scope, char **out,
                                   ep_error **err) {
  struct expr_value v = {0};
  ep_error *e = NULL;
  if (expr_eval(expr, EXPR_EXPRLANG, var_scope_expr_lookup, (void *)scope, &v, &e) < 0) {
    ep_error_set(err, EP_EXIT_USAGE, "failed to evaluate {{=%s}}: %s", expr, e->message);
    ep_error_free(&e);
    return -1;
  }
  *out = expr_value_to_string(&v);
  expr_value_clear(&v);
  return 0;
}

int template_substitute(const char *in, const struct var_scope *scope, char **out,
                        char **missing, ep_error **err) {
  struct strbuf sb = {0};
  size_t pos = 0, open, close;
  char *name;
  sb_append(&sb, "", 0);
  while (find_tag(in, pos, &open, &close, &name)) {
    sb_append(&sb, in + pos, open - pos);
    if (name[0] == '=') {
      /* {{= expr }}: Argo's expr-lang tags, evaluated against the same
       * bindings (a subset of expr-lang: see expr.h). */
      char *value = NULL;
      if (evaluate_expression_tag(name + 1, scope, &value, err) < 0)
        goto fail;
      sb_append(&sb, value, strlen(value));
      free(value);
      free(name);
      pos = close;
      continue;
    }
    const char *value = var_scope_get(scope, name);
    if (value == NULL) {
      ep_error_set(err, EP_EXIT_USAGE, "failed to resolve {{%s}}", name);
      goto fail;
    }
    sb_append(&sb, value, strlen(value));
    free(name);
    pos = close;
  }
  sb_append(&sb, in + pos, strlen(in + pos));
  *out = sb.data;
  return 0;
fail:
  if (missing != NULL)
    *missing = name;
  else
    free(name);
  free(sb.data);
  return -1;
}

/* Go's json.Marshal escaping: quotes, backslash, control characters, and the
 * HTML-sensitive <, >, & as \u00XX (Argo marshals with the default encoder). */
static void json_escape_into(struct strbuf *sb, const char *value) {
  static const char hex[] = "0123456789abcdef";
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    switch (*p) {
    case '"': sb_append(sb, "\\\"", 2); break;
    case '\\': sb_append(sb, "\\\\", 2); break;
    case '\n': sb_append(sb, "\\n", 2); break;
    case '\r': sb_append(sb, "\\r", 2); break;
    case '\t': sb_append(sb, "\\t", 2); break;
    default:
      if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
        char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
        sb_append(sb, u, 6);
      } else {
        sb_append_char(sb, (char)*p);
      }
    }
  }
}

char *json_quote_string(const char *value) {
  struct strbuf sb = {0};
  sb_append_char(&sb, '"');
  json_escape_into(&sb, value);
  sb_append_char(&sb, '"');
  return sb.data;
}
