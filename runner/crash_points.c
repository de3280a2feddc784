/* The crash points of a workflow, listed statically from its templates in
 * the order a run meets them: after each step starts and finishes, around
 * the exit handler, before the workflow is finished.  Node names are the
 * display names a run gives the leaf nodes (steps and tasks, or the
 * workflow itself for a single-template entrypoint). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"

struct point_list {
  char **v;
  size_t n, cap;
};

static void add(struct point_list *l, const char *stage, const char *node) {
  char *p = NULL;
  if (asprintf(&p, "%s%s%s", stage, node ? ":" : "", node ? node : "") < 0)
    abort();
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], p) == 0) {
      free(p);
      return;
    }
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->v = realloc(l->v, l->cap * sizeof(char *));
    if (l->v == NULL)
      abort();
  }
  l->v[l->n++] = p;
}

static void walk(const struct workflow *wf, const struct wf_template *t, const char *display,
                 struct point_list *l, int depth) {
  if (t == NULL || depth > 32) /* recursive templates: the first levels are enough */
    return;
  switch (t->kind) {
  case TEMPLATE_CONTAINER:
  case TEMPLATE_SCRIPT:
    add(l, "after:node-started", display);
    add(l, "after:node-finished", display);
    return;
  case TEMPLATE_STEPS:
    for (size_t g = 0; g < t->n_groups; g++)
      for (size_t s = 0; s < t->groups[g].n_steps; s++) {
        const struct wf_step *st = &t->groups[g].steps[s];
        walk(wf, workflow_find_template(wf, st->template_name), st->name, l, depth + 1);
      }
    return;
  case TEMPLATE_DAG:
    for (size_t i = 0; i < t->n_tasks; i++)
      walk(wf, workflow_find_template(wf, t->tasks[i].template_name), t->tasks[i].name, l,
           depth + 1);
    return;
  case TEMPLATE_SUSPEND:
  case TEMPLATE_RESOURCE: /* mocked: ends within the pass that starts it */
  case TEMPLATE_HTTP:
  case TEMPLATE_PLUGIN:
    return;
  }
}

int crash_points_list(const struct workflow *wf, char ***out, size_t *n) {
  struct point_list l = {0};
  walk(wf, workflow_find_template(wf, wf->entrypoint), wf->name, &l, 0);
  if (wf->on_exit != NULL) {
    char *handler = NULL;
    if (asprintf(&handler, "%s.onExit", wf->name) < 0)
      abort();
    add(&l, "before:exit-handler", NULL);
    size_t first = l.n;
    walk(wf, workflow_find_template(wf, wf->on_exit), handler, &l, 0);
    /* "during" is met once the handler's first step has started. */
    add(&l, "during:exit-handler", NULL);
    if (l.n > first + 1) {
      char *during = l.v[l.n - 1];
      memmove(&l.v[first + 2], &l.v[first + 1], (l.n - first - 2) * sizeof(char *));
      l.v[first + 1] = during;
    }
    add(&l, "after:exit-handler", NULL);
    free(handler);
  }
  add(&l, "before:workflow-finished", NULL);
  *out = l.v;
  *n = l.n;
  return 0;
}
