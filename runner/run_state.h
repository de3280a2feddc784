/* The state of one run: Argo's `status` (workflow phase and node map) plus
 * what the harness itself observed (exit handler runs, environment,
 * interruption).  The controller mutates it; reports are rendered from it. */
#ifndef EXITPROBE_RUN_STATE_H
#define EXITPROBE_RUN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum node_phase {
  PHASE_PENDING,
  PHASE_RUNNING,
  PHASE_SUCCEEDED,
  PHASE_FAILED,
  PHASE_ERROR,
  PHASE_SKIPPED,
  PHASE_OMITTED,
};

enum node_type {
  NODE_POD,
  NODE_STEPS,
  NODE_STEP_GROUP,
  NODE_DAG,
  NODE_TASK_GROUP,
  NODE_RETRY,
  NODE_SKIPPED,
  NODE_SUSPEND,
  NODE_HTTP,   /* an http template (only ever mocked locally) */
  NODE_PLUGIN, /* a plugin template (only ever mocked locally) */
};

const char *node_phase_name(enum node_phase phase);
const char *node_type_name(enum node_type type);
/* Argo's predicates (types.go): completed = Succeeded|Failed|Error;
 * fulfilled = completed or Skipped or Omitted. */
bool node_phase_completed(enum node_phase phase);
bool node_phase_fulfilled(enum node_phase phase);

struct name_value {
  char *name;
  char *value;
};

struct wf_node {
  struct run_state *owner; /* the state holding the node: node_finish counts there */
  char *id;
  char *name;
  char *display_name;
  char *template_name; /* NULL for step groups */
  char *boundary_id;   /* NULL at the workflow roots */
  char *pod_name;      /* Pod nodes only */
  enum node_type type;
  enum node_phase phase;
  char *message;              /* NULL when empty */
  int64_t started_at_us;      /* CLOCK_REALTIME, µs; 0 = not started */
  int64_t finished_at_us;     /* 0 = not finished */
  char **children;            /* child node ids, in creation order; append only with run_state_add_child */
  size_t n_children;
  struct child_set *child_set; /* private to run_state.c: dedupe index over children */
  bool hooked;                /* an exit-handler/hook node (Argo's nodeFlag.hooked) */
  bool retried;               /* an attempt under a Retry node (nodeFlag.retried) */
  bool mocked;                /* a scenario's mock stood in for the template (spec.mocks) */
  /* Outputs (Pod nodes) */
  bool has_exit_code;
  int exit_code;
  char *result;               /* stdout, one trailing newline removed; NULL if none */
  struct name_value *output_parameters;
  size_t n_output_parameters;
  /* What the harness saw of the process */
  char *log;                  /* stdout+stderr interleaved by line; NUL-terminated; append only with node_append_log */
  size_t log_len;
  bool log_truncated;
  uint64_t memory_peak;       /* bytes; 0 unknown */
  bool oom_killed;
  bool pids_limited;          /* a fork failed on the step's pids limit */
  int signal;                 /* killing signal, 0 if none */
};

enum exit_handler_by { BY_NONE, BY_CONTROLLER, BY_WATCHDOG };

struct exit_handler_record {
  bool declared;
  bool ran;
  int runs;                  /* how many times its node was started */
  enum node_phase phase;     /* of its node, when ran */
  char *workflow_status;     /* {{workflow.status}} it was given */
  char *workflow_failures;   /* {{workflow.failures}} it was given (substituted text) */
  enum exit_handler_by by;
  char *node_id;
};

/* The idempotency check: the exit handler run a second time on the state
 * the first run left, and the workspace compared after one and two runs. */
struct idempotency_change {
  char *path;   /* relative to the workspace root: "<claim>/file" */
  char *change; /* "added" | "removed" | "changed" */
  char *before; /* description, or NULL when absent */
  char *after;
};

struct idempotency_record {
  bool checked;      /* --idempotency or a scenario asked */
  bool conclusive;   /* false: no exit handler, or the second run could not happen */
  bool idempotent;   /* conclusive and nothing changed */
  char *reason;      /* one line: what was found, or why it is inconclusive */
  bool second_ran;
  enum node_phase second_phase;
  struct idempotency_change *changes;
  size_t n_changes;
  size_t n_files;    /* entries in the workspace after the first run */
  char *probe;       /* the stateProbe command, or NULL */
  char *probe_before, *probe_after; /* its stdout after one and after two runs */
  bool probe_changed;
};

/* A fault a scenario asked for, and what became of it. */
struct fault_record {
  char *action;       /* "signal", "oom", ... */
  char *description;  /* "signal SIGKILL to 'work' after 200ms" */
  char *target;       /* NULL for workflow-level faults */
  bool fired;
  int64_t fired_at_us;
  char *node_id;      /* the node it fired on, NULL if none */
  char *detail;       /* what was observed, e.g. "oom_kill counter 0 -> 1" */
};

struct run_state {
  char *workflow_name;
  char *workflow_file;
  char *workflow_namespace;
  char *workflow_uid;
  enum node_phase phase;     /* workflow: Pending/Running/Succeeded/Failed/Error */
  char *message;
  int64_t started_at_us;
  int64_t finished_at_us;

  struct wf_node **nodes;    /* creation order */
  size_t n_nodes, cap_nodes;
  size_t n_finishes;         /* node_finish calls: a reconcile pass that ended a node
                                made progress even if it created none */
  struct node_index *index;  /* name -> node */

  struct exit_handler_record exit_handler;
  struct idempotency_record idempotency;

  bool interrupted;
  int interrupt_signal;      /* SIGINT/SIGTERM that interrupted the run, 0 if none */
  char *shutdown;            /* "Stop" / "Terminate" when a shutdown is in effect */

  /* Environment the run had, for the report */
  char *cgroup_mode;         /* "v1" | "hybrid" | "v2" | "none" */
  char **namespaces;         /* e.g. "pid","mount","uts","ipc" */
  size_t n_namespaces;
  bool seccomp;
  char **notes;              /* everything the user should know: image not pulled, ... */
  size_t n_notes;
  char **warnings;           /* unsupported fields and the like, with file:line:col */
  size_t n_warnings;

  /* Supervised runs: what the watchdog did */
  char **watchdog_actions;
  size_t n_watchdog_actions;
  char *watchdog_delivery;   /* its delivery policy ("at-least-once"), NULL when unsupervised */

  /* Scenario runs */
  struct fault_record *faults;
  size_t n_faults;
  bool has_seed;
  uint64_t seed;
  double time_scale;         /* 0 = not scaled (1) */
};

struct run_state *run_state_new(void);
void run_state_clear_idempotency(struct idempotency_record *r);
void run_state_free(struct run_state *st);

/* Node id as Argo derives it: the workflow name for the entry node, otherwise
 * "<wf>-<FNV-1a 32 of the node name, decimal>". Caller frees. */
char *run_state_node_id(const char *workflow_name, const char *node_name);
uint32_t fnv1a32(const char *s);
/* Pod name as Argo derives it (pod-name version v2, the default): the workflow
 * name for the entry node, otherwise "<wf>-<template>-<FNV-1a 32 of the node
 * name>" with the prefix cut to 242 characters.  run_state_add_node sets it on
 * Pod nodes; {{workflow.failures}} needs it for every node.  Caller frees. */
char *run_state_pod_name(const char *workflow_name, const char *node_name,
                         const char *template_name);

/* Create a node (Pending, started now) or return the existing one with that name. */
struct wf_node *run_state_add_node(struct run_state *st, const char *name,
                                   const char *display_name, enum node_type type,
                                   const char *template_name, const char *boundary_id);
struct wf_node *run_state_find_name(const struct run_state *st, const char *name);
struct wf_node *run_state_find_id(const struct run_state *st, const char *id);
void run_state_add_child(struct wf_node *parent, const char *child_id);

/* Mark a node finished with a phase (and message, may be NULL) at time now. */
void node_finish(struct wf_node *node, enum node_phase phase, const char *message);
void node_set_message(struct wf_node *node, const char *message);
void node_append_log(struct wf_node *node, const char *data, size_t len);

void run_state_add_note(struct run_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void run_state_add_watchdog_action(struct run_state *st, const char *text);
void run_state_add_warning(struct run_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int64_t now_realtime_us(void);
/* RFC 3339 UTC with seconds, as Kubernetes writes times: "2026-11-27T03:35:51Z". */
void format_rfc3339(int64_t us, char buf[32]);

#define NODE_LOG_MAX (1024 * 1024) /* bytes kept per node; the rest is counted as truncated */

#endif
