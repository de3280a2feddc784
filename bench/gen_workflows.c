/* Every step and task gets its own name, as Argo's validation demands for
 * steps of one template and tasks of one DAG; the controller therefore
 * binds a distinct steps.<name>.* / tasks.<name>.* set for each, which is
 * what a real large workflow costs it. */
#include "gen_workflows.h"

#include <errno.h>
#include <string.h>

static const char *const shape_names[SHAPE_COUNT] = {
    [SHAPE_SEQ] = "seq",
    [SHAPE_WIDE] = "wide",
    [SHAPE_FANOUT] = "fanout",
    [SHAPE_CHAIN] = "chain",
};

const char *gen_shape_name(enum wf_shape shape) {
  return shape < SHAPE_COUNT ? shape_names[shape] : "?";
}

int gen_shape_from_name(const char *name) {
  for (int s = 0; s < SHAPE_COUNT; s++)
    if (strcmp(name, shape_names[s]) == 0)
      return s;
  return -1;
}

static size_t wide_groups(const struct gen_params *p) {
  size_t w = p->width ? p->width : 1;
  return (p->steps + w - 1) / w;
}

size_t gen_expected_nodes(const struct gen_params *p) {
  switch (p->shape) {
  case SHAPE_SEQ:
    return 1 + 2 * p->steps;
  case SHAPE_WIDE:
    return 1 + wide_groups(p) + p->steps;
  default:
    return 1 + p->steps;
  }
}

static void write_header(const struct gen_params *p, FILE *out) {
  fprintf(out,
          "apiVersion: argoproj.io/v1alpha1\n"
          "kind: Workflow\n"
          "metadata:\n"
          "  name: %s-%zu\n"
          "spec:\n"
          "  entrypoint: main\n",
          gen_shape_name(p->shape), p->steps);
  if (p->parallelism > 0)
    fprintf(out, "  parallelism: %ld\n", p->parallelism);
  fprintf(out, "  templates:\n"
               "  - name: main\n");
}

static void write_step_template(const struct gen_params *p, FILE *out) {
  fprintf(out,
          "  - name: step\n"
          "    container:\n"
          "      image: busybox\n"
          "      command: [%s]\n",
          p->command);
}

static void write_seq(const struct gen_params *p, FILE *out) {
  fprintf(out, "    steps:\n");
  for (size_t i = 0; i < p->steps; i++)
    fprintf(out, "    - - name: s%zu\n        template: step\n", i);
}

static void write_wide(const struct gen_params *p, FILE *out) {
  size_t w = p->width ? p->width : 1;
  fprintf(out, "    steps:\n");
  for (size_t i = 0; i < p->steps; i++)
    fprintf(out, "    %s name: w%zu\n        template: step\n", i % w == 0 ? "- -" : "  -", i);
}

static void write_fanout(const struct gen_params *p, FILE *out) {
  size_t fan = p->steps - 2;
  fprintf(out, "    dag:\n      tasks:\n"
               "      - name: root\n        template: step\n");
  for (size_t i = 0; i < fan; i++)
    fprintf(out, "      - name: f%zu\n        template: step\n        dependencies: [root]\n", i);
  fprintf(out, "      - name: sink\n        template: step\n        dependencies:\n");
  for (size_t i = 0; i < fan; i++)
    fprintf(out, "        - f%zu\n", i);
}

static void write_chain(const struct gen_params *p, FILE *out) {
  fprintf(out, "    dag:\n      tasks:\n");
  for (size_t i = 0; i < p->steps; i++) {
    fprintf(out, "      - name: c%zu\n        template: step\n", i);
    if (i > 0)
      fprintf(out, "        dependencies: [c%zu]\n", i - 1);
  }
}

int gen_write_workflow(const struct gen_params *p, FILE *out) {
  if (p->shape >= SHAPE_COUNT || p->steps == 0 || (p->shape == SHAPE_FANOUT && p->steps < 3) ||
      p->command == NULL) {
    errno = EINVAL;
    return -1;
  }
  write_header(p, out);
  switch (p->shape) {
  case SHAPE_SEQ:
    write_seq(p, out);
    break;
  case SHAPE_WIDE:
    write_wide(p, out);
    break;
  case SHAPE_FANOUT:
    write_fanout(p, out);
    break;
  default:
    write_chain(p, out);
    break;
  }
  write_step_template(p, out);
  if (ferror(out)) {
    errno = EIO;
    return -1;
  }
  return 0;
}
