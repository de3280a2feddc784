/* Argo's simple template tags: "{{name}}" (spaces allowed inside the braces)
 * replaced by the value bound to name in a scope.  Expression tags "{{= ...}}"
 * are recognised and reported as unsupported until the expression engine lands. */
#ifndef EXITPROBE_TEMPLATE_VARS_H
#define EXITPROBE_TEMPLATE_VARS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct var_binding {
  char *name;
  char *value;
};

/* A set of bindings (setting a bound name replaces its value), with a hash
 * index: a steps template binds steps.NAME.* for every finished step, so a
 * linear scan would make a long workflow quadratic per reconcile pass. */
struct var_scope {
  struct var_binding *bindings;
  size_t n, cap;
  size_t *index;     /* open addressing: binding position + 1, 0 = empty */
  size_t index_cap;  /* a power of two, at least twice n */
  const struct var_scope *parent; /* consulted when a name is not bound here */
};

void var_scope_init(struct var_scope *scope, const struct var_scope *parent);
void var_scope_set(struct var_scope *scope, const char *name, const char *value);
const char *var_scope_get(const struct var_scope *scope, const char *name);
void var_scope_clear(struct var_scope *scope);

/* Replace every tag.  On an unbound name: returns -1 with *missing set to the
 * name (caller frees) and *out untouched; err describes it. */
int template_substitute(const char *in, const struct var_scope *scope, char **out,
                        char **missing, ep_error **err);

/* Call visit(name, offset) for every simple tag in the text, for validation. */
typedef int (*template_visit_fn)(void *ctx, const char *name, size_t offset);
int template_for_each_tag(const char *in, template_visit_fn visit, void *ctx);

/* An expr_lookup_fn (expr.h) over a scope: a bound name is a string.
 * ctx is the const struct var_scope *. */
struct expr_value;
int var_scope_expr_lookup(void *ctx, const char *name, struct expr_value *out);

/* JSON string literal for value, with quotes: how Argo inserts workflow.failures. */
char *json_quote_string(const char *value);

#endif
