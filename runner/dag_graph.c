/* The dependency graph of a DAG template, resolved to indices. */
#include "dag_graph.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static bool name_char(char ch) { return isalnum((unsigned char)ch) || ch == '_' || ch == '-'; }

static size_t hash_name(const char *s, size_t len) {
  size_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

static void index_names(const struct wf_template *t, struct dag_graph *g) {
  g->n_slots = 16;
  while (g->n_slots < 2 * t->n_tasks)
    g->n_slots *= 2;
  g->slots = xcalloc(g->n_slots, sizeof(*g->slots));
  for (size_t i = 0; i < t->n_tasks; i++) {
    const char *name = t->tasks[i].name;
    size_t len = strlen(name);
    if (dag_graph_task(g, t, name, len) >= 0)
      continue; /* a duplicate name: the first task keeps it */
    size_t k = hash_name(name, len) & (g->n_slots - 1);
    while (g->slots[k] != 0)
      k = (k + 1) & (g->n_slots - 1);
    g->slots[k] = i + 1;
  }
}

long dag_graph_task(const struct dag_graph *g, const struct wf_template *t, const char *name,
                    size_t len) {
  if (g->slots == NULL)
    return -1;
  for (size_t k = hash_name(name, len) & (g->n_slots - 1); g->slots[k] != 0;
       k = (k + 1) & (g->n_slots - 1)) {
    const char *candidate = t->tasks[g->slots[k] - 1].name;
    if (strncmp(candidate, name, len) == 0 && candidate[len] == '\0')
      return (long)(g->slots[k] - 1);
  }
  return -1;
}

struct index_list {
  size_t *v;
  size_t n, cap;
};

static void push(struct index_list *l, size_t i) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
  }
  l->v[l->n++] = i;
}

static int by_index(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* The dependencies of one task: its `dependencies` list and every task name
 * in its `depends` expression (an identifier not after a '.'). */
static void task_dependencies(const struct dag_graph *g, const struct wf_template *t,
                              const struct wf_step *task, struct index_list *out) {
  size_t from = out->n;
  for (size_t d = 0; d < task->n_dependencies; d++) {
    long j = dag_graph_task(g, t, task->dependencies[d], strlen(task->dependencies[d]));
    if (j >= 0)
      push(out, (size_t)j);
  }
  for (const char *p = task->depends; p && *p;) {
    if (!name_char(*p) || (p > task->depends && p[-1] == '.')) {
      p++;
      continue;
    }
    const char *start = p;
    while (name_char(*p))
      p++;
    long j = dag_graph_task(g, t, start, (size_t)(p - start));
    if (j >= 0)
      push(out, (size_t)j);
  }
  if (out->n - from < 2)
    return;
  qsort(out->v + from, out->n - from, sizeof(*out->v), by_index);
  size_t w = from;
  for (size_t r = from; r < out->n; r++)
    if (w == from || out->v[w - 1] != out->v[r])
      out->v[w++] = out->v[r];
  out->n = w;
}

static void mark_targets(const struct wf_template *t, struct dag_graph *g) {
  if (t->dag_target == NULL) {
    for (size_t i = 0; i < g->n; i++)
      g->is_target[i] = g->rdep_start[i + 1] == g->rdep_start[i];
    return;
  }
  /* The target as written: a {{...}} in it names no task. */
  for (const char *p = t->dag_target; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    const char *start = p;
    while (*p && *p != ' ')
      p++;
    long i = dag_graph_task(g, t, start, (size_t)(p - start));
    if (i >= 0)
      g->is_target[i] = true;
  }
}

void dag_graph_build(const struct wf_template *t, struct dag_graph *g) {
  memset(g, 0, sizeof(*g));
  g->n = t->n_tasks;
  index_names(t, g);
  struct index_list deps = {0};
  g->dep_start = xcalloc(g->n + 1, sizeof(size_t));
  for (size_t i = 0; i < g->n; i++) {
    g->dep_start[i] = deps.n;
    task_dependencies(g, t, &t->tasks[i], &deps);
  }
  g->dep_start[g->n] = deps.n;
  g->deps = deps.v ? deps.v : xcalloc(1, sizeof(size_t));
  /* Reverse edges by counting: dependents come out in ascending order. */
  g->rdep_start = xcalloc(g->n + 1, sizeof(size_t));
  for (size_t e = 0; e < deps.n; e++)
    g->rdep_start[g->deps[e] + 1]++;
  for (size_t i = 0; i < g->n; i++)
    g->rdep_start[i + 1] += g->rdep_start[i];
  g->rdeps = xcalloc(deps.n + 1, sizeof(size_t));
  size_t *fill = xcalloc(g->n + 1, sizeof(size_t));
  for (size_t i = 0; i < g->n; i++)
    for (size_t e = g->dep_start[i]; e < g->dep_start[i + 1]; e++) {
      size_t j = g->deps[e];
      g->rdeps[g->rdep_start[j] + fill[j]++] = i;
    }
  free(fill);
  g->is_target = xcalloc(g->n + 1, sizeof(bool));
  mark_targets(t, g);
}

void dag_graph_free(struct dag_graph *g) {
  free(g->dep_start);
  free(g->deps);
  free(g->rdep_start);
  free(g->rdeps);
  free(g->is_target);
  free(g->slots);
  memset(g, 0, sizeof(*g));
}

long dag_graph_find_cycle(const struct dag_graph *g) {
  /* color: 0 unvisited, 1 on the current path, 2 finished.  next[i]: the
   * next of i's dependencies to look at. */
  unsigned char *color = xcalloc(g->n + 1, 1);
  size_t *next = xcalloc(g->n + 1, sizeof(size_t));
  size_t *stack = xcalloc(g->n + 1, sizeof(size_t));
  long found = -1;
  for (size_t root = 0; root < g->n && found < 0; root++) {
    if (color[root] != 0)
      continue;
    size_t depth = 0;
    stack[depth++] = root;
    color[root] = 1;
    next[root] = g->dep_start[root];
    while (depth > 0 && found < 0) {
      size_t i = stack[depth - 1];
      if (next[i] == g->dep_start[i + 1]) {
        color[i] = 2;
        depth--;
        continue;
      }
      size_t j = g->deps[next[i]++];
      if (color[j] == 1) {
        found = (long)j;
      } else if (color[j] == 0) {
        color[j] = 1;
        next[j] = g->dep_start[j];
        stack[depth++] = j;
      }
    }
  }
  free(color);
  free(next);
  free(stack);
  return found;
}

size_t dag_graph_topological_order(const struct dag_graph *g, size_t *order) {
  size_t *missing = xcalloc(g->n + 1, sizeof(size_t));
  size_t placed = 0;
  for (size_t i = 0; i < g->n; i++) {
    missing[i] = g->dep_start[i + 1] - g->dep_start[i];
    if (missing[i] == 0)
      order[placed++] = i;
  }
  for (size_t k = 0; k < placed; k++)
    for (size_t e = g->rdep_start[order[k]]; e < g->rdep_start[order[k] + 1]; e++)
      if (--missing[g->rdeps[e]] == 0)
        order[placed++] = g->rdeps[e];
  free(missing);
  return placed;
}
