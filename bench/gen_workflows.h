/* Synthetic Argo workflows for the controller benchmark: N steps of
 * /bin/true in four shapes, with spec.parallelism set. */
#ifndef EXITPROBE_BENCH_GEN_WORKFLOWS_H
#define EXITPROBE_BENCH_GEN_WORKFLOWS_H

#include <stddef.h>
#include <stdio.h>

enum wf_shape {
  SHAPE_SEQ,    /* steps: N groups of one step */
  SHAPE_WIDE,   /* steps: groups of `width` parallel steps */
  SHAPE_FANOUT, /* dag: root -> N-2 parallel tasks -> sink depending on all of them */
  SHAPE_CHAIN,  /* dag: t0 -> t1 -> ... -> tN-1 */
  SHAPE_COUNT
};

struct gen_params {
  enum wf_shape shape;
  size_t steps;       /* pods the workflow runs (>= 3 for a fan-out) */
  size_t width;       /* wide: steps per group */
  long parallelism;   /* spec.parallelism; 0 = none */
  const char *command; /* what every step runs, e.g. /bin/true */
};

const char *gen_shape_name(enum wf_shape shape);
/* -1 when the name is none of seq, wide, fanout, chain. */
int gen_shape_from_name(const char *name);
/* Nodes Argo creates for it: pods plus the Steps/StepGroup/DAG nodes. */
size_t gen_expected_nodes(const struct gen_params *p);
/* Writes the YAML; the workflow is named "<shape>-<steps>".  0 or -1 (errno). */
int gen_write_workflow(const struct gen_params *p, FILE *out);

#endif
