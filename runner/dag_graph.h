/* A DAG template's dependencies resolved to task indices once: who each
 * task depends on, who depends on it, which tasks are targets, and a name
 * index.  Resolving names on every readiness check made a DAG of n tasks
 * cost O(n^2) per scheduling pass. */
#ifndef EXITPROBE_DAG_GRAPH_H
#define EXITPROBE_DAG_GRAPH_H

#include <stdbool.h>
#include <stddef.h>

#include "workflow.h"

struct dag_graph {
  size_t n;
  size_t *dep_start;  /* n + 1 offsets into deps */
  size_t *deps;       /* what each task depends on: ascending, no duplicates */
  size_t *rdep_start; /* n + 1 offsets into rdeps */
  size_t *rdeps;      /* who depends on each task: ascending */
  bool *is_target;    /* named by dag.target, or (without one) nobody depends on it */
  size_t *slots;      /* name index: open addressing, task index + 1, 0 = empty */
  size_t n_slots;     /* a power of two */
};

/* Names that are not tasks are left out (validation reports them). */
void dag_graph_build(const struct wf_template *t, struct dag_graph *g);
void dag_graph_free(struct dag_graph *g);
/* Index of the task called name[0..len), or -1. */
long dag_graph_task(const struct dag_graph *g, const struct wf_template *t, const char *name,
                    size_t len);
/* A task on a dependency cycle: the first one a depth-first search from the
 * tasks in order, dependencies in task order, finds on its own path; -1 if
 * the graph is acyclic.  Iterative: a chain of 10,000 tasks is 10,000 deep. */
long dag_graph_find_cycle(const struct dag_graph *g);

/* The tasks in an order where every task comes after its dependencies
 * (Kahn's algorithm); returns how many were placed, n when acyclic. */
size_t dag_graph_topological_order(const struct dag_graph *g, size_t *order);

#endif
