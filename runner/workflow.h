/* The Workflow model: what the runner understands of an Argo Workflow
 * manifest, read from the YAML document tree and validated before anything
 * runs.  Every element keeps its source position so errors found later
 * (unknown template, unresolvable variable) still name file:line:column. */
#ifndef EXITPROBE_WORKFLOW_H
#define EXITPROBE_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "yaml_doc.h"

struct src_pos {
  int line;
  int column;
};

struct wf_parameter {
  char *name;
  char *value;         /* NULL when absent */
  char *default_value; /* NULL when absent */
  char **enum_values;
  size_t n_enum_values;
  char *value_from_path; /* outputs.parameters[].valueFrom.path */
  /* outputs of steps and DAG templates: valueFrom.parameter ("{{steps.X...}}"
   * or without braces), valueFrom.expression (expr-lang), valueFrom.default */
  char *value_from_parameter;
  char *value_from_expression;
  char *value_from_default;
  bool has_value_from;
  bool value_from_resource; /* valueFrom.jsonPath or jqFilter (resource templates) */
  bool value_from_supplied; /* valueFrom.supplied: given when a suspend node is resumed */
  char *global_name;
  struct src_pos pos;
  struct src_pos value_pos; /* of `value:`; 0:0 when absent or given with -p */
};

struct wf_env_var {
  char *name;
  char *value;
  struct src_pos pos;
};

/* A declared volume.  Claims (volumeClaimTemplates, persistentVolumeClaim)
 * are one host directory per run, named `claim`, shared by every step that
 * mounts them; an emptyDir is a fresh directory per pod. */
enum wf_volume_kind { VOLUME_EMPTY_DIR, VOLUME_CLAIM };

struct wf_volume {
  char *name;
  enum wf_volume_kind kind;
  char *claim; /* VOLUME_CLAIM: the directory's name in the run's workspace */
  bool read_only; /* persistentVolumeClaim.readOnly: every mount is read-only */
  struct src_pos pos;
};

struct wf_volume_mount {
  char *name;
  char *mount_path; /* absolute, normalised, not "/" */
  char *sub_path;   /* relative, normalised, or NULL */
  bool read_only;
  struct src_pos pos;
};

enum wf_template_kind {
  TEMPLATE_CONTAINER,
  TEMPLATE_SCRIPT,
  TEMPLATE_STEPS,
  TEMPLATE_DAG,
  TEMPLATE_SUSPEND,
  /* Bodies that only a cluster can carry out: they run only when a
   * scenario mocks them (spec.mocks); the body itself is not read. */
  TEMPLATE_RESOURCE,
  TEMPLATE_HTTP,
  TEMPLATE_PLUGIN,
};

enum wf_loop_kind { LOOP_NONE, LOOP_ITEMS, LOOP_PARAM, LOOP_SEQUENCE };

struct wf_loop {
  enum wf_loop_kind kind;
  const struct ydoc_node *items; /* withItems: the sequence node */
  char *param;                   /* withParam: text, substituted at run time */
  char *seq_count, *seq_start, *seq_end, *seq_format; /* withSequence, substituted */
  struct src_pos pos;
};

/* A lifecycle hook: `exit` (or the deprecated onExit) runs after the
 * step/task/workflow completes; other names run when `expression` holds. */
struct wf_hook {
  char *name;          /* "exit" for exit hooks */
  char *template_name;
  char *expression;    /* NULL for exit hooks */
  struct wf_parameter *arguments;
  size_t n_arguments;
  struct src_pos pos;
  struct src_pos template_pos;
};

/* A step of a steps template, or a task of a DAG. */
struct wf_step {
  char *name;
  char *template_name;
  struct wf_parameter *arguments;
  size_t n_arguments;
  char *when;
  bool continue_on_failed;
  bool continue_on_error;
  struct wf_hook *hooks; /* exit hook first when present */
  size_t n_hooks;
  struct wf_loop loop;
  /* DAG tasks only */
  char *depends;           /* depends expression, or NULL */
  char **dependencies;     /* legacy list */
  size_t n_dependencies;
  struct src_pos pos;
  struct src_pos template_pos;
  struct src_pos depends_pos;
  struct src_pos when_pos;
  const struct ydoc_node *dependencies_node; /* the list, for element positions */
  bool referenced; /* some {{steps.NAME.*}} / {{tasks.NAME.*}} names it (set by validation) */
};

struct wf_retry {
  bool present;
  char *limit;         /* NULL = unlimited; may hold {{...}} */
  char *policy;        /* Always|OnFailure|OnError|OnTransientError; NULL = default */
  char *expression;
  char *backoff_duration, *backoff_factor, *backoff_max_duration, *backoff_cap;
  struct src_pos pos;
};

struct wf_step_group {
  struct wf_step *steps;
  size_t n_steps;
  struct src_pos pos;
};

/* An input artifact with its content in the workflow (raw.data): written
 * at path in the step before it starts.  No other kind is supported. */
struct wf_artifact {
  char *name;
  char *path;     /* absolute, normalised */
  char *raw_data; /* may hold {{...}} */
  struct src_pos pos;
};

/* The name given to an `inline` template of a step or task ("inline:"
 * parent "." step): Argo's inline templates have none, and no name in
 * spec.templates can hold a ':'. */
#define WF_INLINE_TEMPLATE_PREFIX "inline:"

struct wf_template {
  char *name;
  enum wf_template_kind kind;
  struct src_pos pos;

  struct wf_parameter *inputs;
  size_t n_inputs;
  struct wf_parameter *outputs;
  size_t n_outputs;

  /* container / script */
  char *image;
  char **command;
  size_t n_command;
  char **args;
  size_t n_args;
  struct wf_env_var *env;
  size_t n_env;
  char *working_dir;
  char *source; /* script only */
  uint64_t memory_limit; /* resources.limits.memory in bytes, 0 = default */
  int64_t pids_limit;    /* resources.limits.pids (exitprobe extension), 0 = default */
  struct wf_volume_mount *mounts; /* container/script volumeMounts */
  size_t n_mounts;
  struct wf_volume *volumes; /* template-level volumes */
  size_t n_volumes;
  struct wf_artifact *input_artifacts; /* inputs.artifacts (raw only) */
  size_t n_input_artifacts;
  char **mutexes; /* synchronization.mutex(es) names: held while the node runs */
  size_t n_mutexes;
  /* initContainers: each a container (name = the container's name) run to
   * completion, in order, before main, in the same pod (its volumes). */
  struct wf_template *init_containers;
  size_t n_init_containers;

  struct src_pos body_pos; /* resource / http / plugin: the key of the body */

  /* steps */
  struct wf_step_group *groups;
  size_t n_groups;

  /* dag */
  struct wf_step *tasks;
  size_t n_tasks;
  char *dag_target;      /* space-separated, or NULL = tasks nobody depends on */
  bool dag_fail_fast;    /* dag.failFast, default true */

  /* suspend */
  char *suspend_duration; /* NULL = until resumed */

  /* control */
  struct wf_retry retry;
  char *timeout;                 /* leaf: duration with unit */
  char *active_deadline_seconds; /* leaf: seconds, may hold {{...}} */
  long parallelism;              /* steps/dag: max active children, 0 = unlimited */
  bool fail_fast;                /* steps/dag template-level failFast */

  /* the template's own node in the YAML, for fields later issues read */
  const struct ydoc_node *node;
};

struct workflow {
  char *file;
  char *name;          /* metadata.name, or generateName + 5 random characters */
  char *generate_name; /* as written, or NULL */
  char *namespace_;    /* metadata.namespace or "default" */
  char *entrypoint;
  struct src_pos entrypoint_pos;
  char *on_exit;       /* spec.onExit, else spec.hooks.exit.template, else NULL */
  struct src_pos on_exit_pos;
  struct wf_parameter *arguments; /* spec.arguments.parameters, -p applied */
  size_t n_arguments;
  struct wf_template *templates;
  size_t n_templates;
  long parallelism;            /* spec.parallelism, 0 = unlimited */
  char *active_deadline_seconds; /* spec.activeDeadlineSeconds, or NULL */
  struct wf_retry retry;       /* spec.retryStrategy: default for every template */
  struct wf_hook *hooks;       /* spec.hooks other than exit */
  size_t n_hooks;
  struct wf_parameter *exit_arguments; /* spec.hooks.exit.arguments */
  size_t n_exit_arguments;
  struct wf_volume *volumes; /* spec.volumes, then spec.volumeClaimTemplates */
  size_t n_volumes;
  char **warnings;     /* "file:line:col: warning: ..." for fields we do not act on */
  size_t n_warnings;
  struct ydoc *doc;
};

struct param_override {
  const char *name;
  const char *value;
};

/* Parse and validate.  Errors are EP_EXIT_USAGE with file:line:column. */
int workflow_load_file(const char *path, const struct param_override *overrides,
                       size_t n_overrides, struct workflow **out, ep_error **err);
int workflow_from_doc(struct ydoc *doc, const struct param_override *overrides,
                      size_t n_overrides, struct workflow **out, ep_error **err);
void workflow_free(struct workflow *wf);

const struct wf_template *workflow_find_template(const struct workflow *wf, const char *name);

/* Add one template given outside the workflow (a scenario's inline
 * `compensate:` template, a mapping in `file`), parsed and checked as the
 * workflow's own are; a name the workflow already uses is refused.  The
 * node must outlive wf.  EP_EXIT_USAGE errors at its line:column. */
int workflow_add_template(struct workflow *wf, const char *file, const struct ydoc_node *n,
                          ep_error **err);
/* "resource", "http" or "plugin" for a template only a cluster can run, else NULL. */
const char *workflow_cluster_only_kind(const struct wf_template *t);
/* Refuse a workflow with a resource, http or plugin template that is not in
 * mocked (template names): EP_EXIT_USAGE with the body's file:line:column. */
int workflow_check_runnable(const struct workflow *wf, const char *const *mocked,
                            size_t n_mocked, ep_error **err);

/* Go durations ("10s", "1m30s", "500ms") or, where Argo allows, bare seconds. */
int parse_duration_seconds(const char *text, bool allow_bare, double *out);

/* Kubernetes quantity ("64Mi", "1G", "512000") to bytes. */
int parse_memory_quantity(const char *text, uint64_t *out);

#endif
