/* Outputs of steps and DAG templates (Argo's getTemplateOutputsFromScope):
 * once the template has succeeded, each declared output parameter takes its
 * value from one of its own steps or tasks (valueFrom.parameter) or from an
 * expression over them (valueFrom.expression), falling back to
 * valueFrom.default; globalName publishes it like a pod's output. */
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "expr.h"

/* "{{ steps.x.outputs.result }}" or "steps.x.outputs.result" -> the name. */
static char *reference_name(const char *text) {
  const char *start = text, *end = text + strlen(text);
  if (strncmp(start, "{{", 2) == 0)
    start += 2;
  if (end - start >= 2 && strncmp(end - 2, "}}", 2) == 0)
    end -= 2;
  while (start < end && *start == ' ')
    start++;
  while (end > start && end[-1] == ' ')
    end--;
  return xasprintf("%.*s", (int)(end - start), start);
}

/* Argo's wfScope.resolveVar: only steps.*, tasks.* and workflow.* names. */
static char *resolve_reference(const char *text, const struct var_scope *scope, char **why) {
  char *name = reference_name(text);
  const char *value = NULL;
  if (strncmp(name, "steps.", 6) == 0 || strncmp(name, "tasks.", 6) == 0 ||
      strncmp(name, "workflow.", 9) == 0)
    value = var_scope_get(scope, name);
  if (value == NULL) {
    *why = xasprintf("Unable to resolve: {{%s}}", name);
    free(name);
    return NULL;
  }
  free(name);
  return xstrdup(value);
}

static char *evaluate(const char *expression, const struct var_scope *scope, char **why) {
  struct expr_value v = {0};
  ep_error *e = NULL;
  if (expr_eval(expression, EXPR_EXPRLANG, var_scope_expr_lookup, (void *)scope, &v, &e) < 0) {
    *why = xasprintf("failed to evaluate expression '%s': %s", expression, e->message);
    ep_error_free(&e);
    return NULL;
  }
  if (v.type == EXPR_NIL) {
    /* An unknown name: expr-lang refuses to compile it against Argo's scope. */
    *why = xasprintf("failed to evaluate expression '%s': it reads a name that is not bound",
                     expression);
    return NULL;
  }
  char *text = expr_value_to_string(&v);
  expr_value_clear(&v);
  return text;
}

static int output_value(const struct wf_parameter *p, const struct var_scope *scope,
                        char **value, char **why) {
  if (!p->has_value_from) {
    *why = xstrdup("output parameters must have a valueFrom specified");
    return -1;
  }
  *value = p->value_from_expression != NULL ? evaluate(p->value_from_expression, scope, why)
           : p->value_from_parameter != NULL
               ? resolve_reference(p->value_from_parameter, scope, why)
               : NULL;
  if (*value != NULL)
    return 0;
  if (p->value_from_default != NULL) {
    free(*why);
    *why = NULL;
    *value = xstrdup(p->value_from_default);
    return 0;
  }
  if (*why == NULL)
    *why = xasprintf("output parameter '%s' has no value", p->name);
  return -1;
}

void settle_template_outputs(struct controller *c, struct wf_node *node,
                             const struct wf_template *t, const struct var_scope *scope) {
  if (node->phase != PHASE_SUCCEEDED || t->n_outputs == 0)
    return;
  struct name_value *values = xcalloc(t->n_outputs, sizeof(*values));
  char *why = NULL;
  for (size_t i = 0; i < t->n_outputs; i++) {
    values[i].name = xstrdup(t->outputs[i].name);
    if (output_value(&t->outputs[i], scope, &values[i].value, &why) < 0) {
      /* Argo marks the node Error with the resolution's message. */
      for (size_t k = 0; k <= i; k++) {
        free(values[k].name);
        free(values[k].value);
      }
      free(values);
      node_finish(node, PHASE_ERROR, why);
      free(why);
      return;
    }
  }
  for (size_t i = 0; i < node->n_output_parameters; i++) {
    free(node->output_parameters[i].name);
    free(node->output_parameters[i].value);
  }
  free(node->output_parameters);
  node->output_parameters = values;
  node->n_output_parameters = t->n_outputs;
  publish_node_global_outputs(c, node);
}
