/* spec.mocks of a scenario (see mocks.h). */
#include "mocks.h"

#include <stdlib.h>
#include <string.h>

#include "../runner/xalloc.h"

static int mock_string(const char *file, const struct ydoc_node *n, const char *what, char **out,
                       ep_error **err) {
  if (ydoc_expect_kind(err, file, n, YDOC_SCALAR, what) < 0)
    return -1;
  *out = xstrdup(n->scalar);
  return 0;
}

static int parse_phase(const char *file, const struct ydoc_node *n, enum node_phase *out,
                       ep_error **err) {
  if (ydoc_expect_kind(err, file, n, YDOC_SCALAR, "phase") < 0)
    return -1;
  static const struct {
    const char *name;
    enum node_phase phase;
  } phases[] = {{"Succeeded", PHASE_SUCCEEDED}, {"Failed", PHASE_FAILED}, {"Error", PHASE_ERROR}};
  for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
    if (strcmp(n->scalar, phases[i].name) == 0) {
      *out = phases[i].phase;
      return 0;
    }
  return ydoc_fail(err, file, n, "phase must be Succeeded, Failed or Error, not '%s'",
                   n->scalar);
}

static int parse_outputs(const char *file, const struct ydoc_node *n, struct template_mock *m,
                         ep_error **err) {
  if (ydoc_expect_kind(err, file, n, YDOC_MAPPING, "outputs") < 0)
    return -1;
  for (size_t i = 0; i < n->n_pairs; i++) {
    const char *key = n->pairs[i].key->scalar;
    const struct ydoc_node *v = n->pairs[i].value;
    if (strcmp(key, "result") == 0) {
      if (mock_string(file, v, "outputs.result", &m->result, err) < 0)
        return -1;
    } else if (strcmp(key, "parameters") == 0) {
      if (ydoc_expect_kind(err, file, v, YDOC_MAPPING, "outputs.parameters") < 0)
        return -1;
      m->parameters = xcalloc(v->n_pairs + 1, sizeof(*m->parameters));
      for (size_t k = 0; k < v->n_pairs; k++) {
        m->parameters[k].name = xstrdup(v->pairs[k].key->scalar);
        m->n_parameters++;
        if (mock_string(file, v->pairs[k].value, "an output parameter's value",
                        &m->parameters[k].value, err) < 0)
          return -1;
      }
    } else {
      return ydoc_fail(err, file, n->pairs[i].key,
                       "unknown key 'outputs.%s' in a mock (result, parameters)", key);
    }
  }
  return 0;
}

static int parse_mock(const char *file, const struct ydoc_node *n, struct template_mock *m,
                      ep_error **err) {
  if (ydoc_expect_kind(err, file, n, YDOC_MAPPING, "a mock") < 0)
    return -1;
  m->pos = (struct src_pos){.line = n->line, .column = n->column};
  m->phase = PHASE_SUCCEEDED;
  for (size_t i = 0; i < n->n_pairs; i++) {
    const char *key = n->pairs[i].key->scalar;
    const struct ydoc_node *v = n->pairs[i].value;
    int rc;
    if (strcmp(key, "template") == 0)
      rc = mock_string(file, v, "template", &m->template_name, err);
    else if (strcmp(key, "phase") == 0)
      rc = parse_phase(file, v, &m->phase, err);
    else if (strcmp(key, "message") == 0)
      rc = mock_string(file, v, "message", &m->message, err);
    else if (strcmp(key, "outputs") == 0)
      rc = parse_outputs(file, v, m, err);
    else
      rc = ydoc_fail(err, file, n->pairs[i].key,
                     "unknown key '%s' in a mock (template, phase, message, outputs)", key);
    if (rc < 0)
      return -1;
  }
  if (m->template_name == NULL)
    return ydoc_fail(err, file, n, "a mock needs a template");
  return 0;
}

int mocks_parse(const char *file, const struct ydoc_node *list, struct template_mock **out,
                size_t *n_out, ep_error **err) {
  *out = NULL;
  *n_out = 0;
  if (list == NULL || ydoc_is_null(list))
    return 0;
  if (ydoc_expect_kind(err, file, list, YDOC_SEQUENCE, "mocks") < 0)
    return -1;
  *out = xcalloc(list->n_items + 1, sizeof(**out));
  for (size_t i = 0; i < list->n_items; i++) {
    (*n_out)++;
    if (parse_mock(file, list->items[i], &(*out)[i], err) < 0)
      return -1;
  }
  return 0;
}

void mocks_free(struct template_mock *mocks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(mocks[i].template_name);
    free(mocks[i].message);
    free(mocks[i].result);
    for (size_t k = 0; k < mocks[i].n_parameters; k++) {
      free(mocks[i].parameters[k].name);
      free(mocks[i].parameters[k].value);
    }
    free(mocks[i].parameters);
  }
  free(mocks);
}

int mocks_check(const char *file, const struct template_mock *mocks, size_t n,
                const struct workflow *wf, ep_error **err) {
  for (size_t i = 0; i < n; i++) {
    const struct template_mock *m = &mocks[i];
    const struct wf_template *t = workflow_find_template(wf, m->template_name);
    if (t == NULL)
      return ep_error_at(err, EP_EXIT_USAGE, file, m->pos.line, m->pos.column,
                         "mock for template '%s', which workflow '%s' does not have",
                         m->template_name, wf->name);
    if (workflow_cluster_only_kind(t) == NULL)
      return ep_error_at(err, EP_EXIT_USAGE, file, m->pos.line, m->pos.column,
                         "template '%s' runs locally; only resource, http and plugin templates "
                         "can be mocked (use faults to change how a step ends)",
                         m->template_name);
    for (size_t k = 0; k < i; k++)
      if (strcmp(mocks[k].template_name, m->template_name) == 0)
        return ep_error_at(err, EP_EXIT_USAGE, file, m->pos.line, m->pos.column,
                           "template '%s' is mocked twice (first at line %d)", m->template_name,
                           mocks[k].pos.line);
  }
  return 0;
}

int mocks_cover_workflow(const struct template_mock *mocks, size_t n, const struct workflow *wf,
                         ep_error **err) {
  const char **names = xcalloc(n + 1, sizeof(*names));
  for (size_t i = 0; i < n; i++)
    names[i] = mocks[i].template_name;
  int rc = workflow_check_runnable(wf, names, n, err);
  free(names);
  return rc;
}
