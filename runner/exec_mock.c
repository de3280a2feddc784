/* Templates only a cluster can carry out (resource, http, plugin) run
 * locally as a scenario's mock: the node ends at once with the mock's
 * phase, message and outputs, and is flagged as mocked in the report. */
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"

static const struct template_mock *find_mock(const struct controller *c, const char *name) {
  for (size_t i = 0; i < c->opts->n_mocks; i++)
    if (strcmp(c->opts->mocks[i].template_name, name) == 0)
      return &c->opts->mocks[i];
  return NULL;
}

static void set_outputs(struct wf_node *node, const struct template_mock *m) {
  free(node->result);
  node->result = m->result != NULL ? xstrdup(m->result) : NULL;
  for (size_t i = 0; i < node->n_output_parameters; i++) {
    free(node->output_parameters[i].name);
    free(node->output_parameters[i].value);
  }
  free(node->output_parameters);
  node->output_parameters = NULL;
  node->n_output_parameters = m->n_parameters;
  if (m->n_parameters == 0)
    return;
  node->output_parameters = xcalloc(m->n_parameters, sizeof(*node->output_parameters));
  for (size_t i = 0; i < m->n_parameters; i++) {
    node->output_parameters[i].name = xstrdup(m->parameters[i].name);
    node->output_parameters[i].value = xstrdup(m->parameters[i].value);
  }
}

void execute_mock(struct controller *c, struct wf_node *node, const struct wf_template *t) {
  const struct template_mock *m = find_mock(c, t->name);
  if (m == NULL) {
    /* Callers refuse such a workflow before it runs; this is the backstop. */
    char *msg = xasprintf("%s templates are not supported locally: template '%s' needs a mock "
                          "in a scenario (spec.mocks)",
                          workflow_cluster_only_kind(t), t->name);
    node_finish(node, PHASE_ERROR, msg);
    free(msg);
    return;
  }
  node->mocked = true;
  /* As Argo records it, a Failed or Error pod keeps no outputs; an http
   * node keeps the response it got, so a mock's outputs are always kept. */
  set_outputs(node, m);
  node_finish(node, m->phase, m->message);
  publish_node_global_outputs(c, node);
  progress(c, "  mocked %s: %s%s%s", node->display_name, node_phase_name(m->phase),
           m->message ? ": " : "", m->message ? m->message : "");
  c->changed = true;
}
