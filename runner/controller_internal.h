/* Shared between the controller's files: the controller's state, the
 * launched pods, and the template executors.  Not a public interface. */
#ifndef EXITPROBE_CONTROLLER_INTERNAL_H
#define EXITPROBE_CONTROLLER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "controller.h"
#include "exec_memo.h"
#include "step_output.h"
#include "template_vars.h"
#include "xalloc.h"
#include "../injector/faults.h"

#define MAX_TEMPLATE_DEPTH 128

enum watch_kind {
  WATCH_PIDFD,
  WATCH_STDOUT,
  WATCH_STDERR,
  WATCH_NOTIFY,
  WATCH_SIGNAL,
  WATCH_TIMER,
  WATCH_CONTROL, /* the run's control FIFO */
  WATCH_OUTPUT_FILES, /* inotify: a supervised step wrote to its output files */
};

struct pod;

struct watch {
  enum watch_kind kind;
  struct pod *pod;
};

/* Why the controller asked a pod to end: decides its node's message. */
enum kill_reason {
  KILL_NONE,
  KILL_SHUTDOWN,     /* stop / terminate */
  KILL_WF_DEADLINE,  /* spec.activeDeadlineSeconds */
  KILL_POD_DEADLINE, /* template activeDeadlineSeconds / timeout */
};

struct pod_pending;

/* A launched step, from clone to the moment its node gets its final phase. */
struct pod {
  struct wf_node *node;
  const struct wf_template *tmpl;
  struct sandbox_step step;
  struct step_output output;
  struct sandbox_result result;
  struct watch watches[4];
  char *tmp_dir;           /* host directory bound at the step's /tmp */
  char *volumes_dir;       /* the pod's emptyDir volumes (removed with the pod), or NULL */
  bool exited, stdout_eof, stderr_eof;
  bool output_files;       /* supervised: output and status in files beside tmp_dir, so
                              that the step outlives this controller (io_prefix) */
  int wd_stdout, wd_stderr; /* their inotify watches, -1 when none */
  bool in_exit_handler;    /* exempt from Stop and the workflow deadline */
  enum kill_reason kill_reason;
  int64_t term_sent_us;    /* when SIGTERM was sent, 0 = not yet */
  bool kill_sent;
  int64_t deadline_us;     /* pod deadline (realtime µs), 0 = none */
  struct step_faults faults; /* the scenario's faults aimed at this step */
  struct controller *owner;
  /* Init containers run first, one at a time: step, tmp_dir and output are
   * then the current init container's, and main waits in pending (pods.c). */
  size_t stage;                /* < tmpl->n_init_containers: that init container runs */
  struct pod_pending *pending; /* NULL once main started */
  struct pod *next;
};

struct node_list {
  struct wf_node **v;
  size_t n, cap;
};
void node_list_push(struct node_list *l, struct wf_node *n);
void node_list_free(struct node_list *l);

/* Where a template runs: its boundary and whether it belongs to an exit handler. */
struct exec_ctx {
  const char *boundary_id;
  bool in_exit_handler;
};

struct controller {
  const struct workflow *wf;
  struct sandbox_context *sandbox;
  const struct controller_options *opts;
  struct run_state *st;
  ep_error **err;
  struct var_scope globals;
  int epfd, sigfd, timerfd;
  struct watch sig_watch, timer_watch, control_watch, output_files_watch;
  int inotify_fd;           /* supervised steps' output files, -1 until the first */
  struct pod *pods; /* in flight */
  size_t n_pods;
  bool stopping;    /* Stop in effect */
  bool terminating; /* Terminate in effect */
  int64_t deadline_us;      /* workflow deadline, 0 = none */
  bool deadline_passed;
  bool internal_error;
  bool changed;             /* a reconcile pass changed something: run another */
  int depth;
  int64_t next_wakeup_us;   /* earliest time a pass must run again, 0 = none */
  bool handler_intent_sent; /* this controller process journaled the exit handler's start */
  bool handler_done_sent;
  bool hang_fired;          /* controller-hang: this process already stopped once */
  int64_t lease_renewed_us; /* last line on the supervisor's journal */
  struct exec_memo memo;    /* per steps/DAG node and DAG template, between passes */
  int64_t persist_not_before_us; /* the state snapshot's next ordinary write (persist_state) */
  bool globals_restored;    /* finished nodes' global outputs published after a (re)start */
};

/* A durable event for the supervisor ("node-started", ...), then the crash
 * point after it ("after:node-started:<display name>"). */
void controller_event(struct controller *c, const char *type, const struct wf_node *node,
                      bool sync);
/* Die here (SIGKILL) if the scenario's controller crash is aimed at point. */
void crash_point(struct controller *c, const char *point);

void progress(struct controller *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void want_wakeup(struct controller *c, int64_t at_us);
/* A node that just Succeeded publishes its globalName outputs at once, as
 * Argo does when it records them: later steps of the same pass see them. */
void publish_node_global_outputs(struct controller *c, const struct wf_node *n);
/* Begin Argo's stop or terminate (from a signal or a shutdown fault). */
void begin_shutdown(struct controller *c, bool terminate, const char *why);

/* `exitprobe resume`: Argo's `argo node set` + `argo resume` over every
 * active suspend node, all or none: each supplied output takes the value
 * set for it, else its default.  -1 with *why when a set names nothing or
 * a supplied output has neither (then nothing is resumed). */
struct run_control_set;
int resume_suspend_nodes(struct controller *c, const struct run_control_set *sets, size_t n_sets,
                         size_t *resumed, char **why);

/* Substitute one string; on an unresolvable tag *why gets Argo's message. */
int subst(const char *in, const struct var_scope *scope, char **out, char **why);

/* pods.c */
/* A pod not yet launched: its files are supervised ones when the run is. */
struct pod *pod_new(struct controller *c);
/* Watch a launched (or adopted) pod and count it in flight; its node Running. */
void pod_register(struct controller *c, struct pod *p);
/* A pod whose step ended unwatched (p->result filled, its output fds open on
 * the files): read them and settle its node now. */
void pod_settle_ended(struct controller *c, struct pod *p);
/* Free a pod that is not in flight, its /tmp and files with it. */
void pod_discard(struct pod *p);
/* A leaf's deadline counted from `from` (realtime µs): activeDeadlineSeconds
 * or timeout, and outside exit handlers never past the workflow's. */
int pod_deadline(struct controller *c, const struct wf_template *t, const struct var_scope *scope,
                 bool in_exit_handler, int64_t from, int64_t *out, char **why);
void launch_pod(struct controller *c, struct wf_node *node, const struct wf_template *t,
                const struct var_scope *scope, const struct exec_ctx *x);
void reap_pod(struct controller *c, struct pod *p);
void drain_pipe(struct controller *c, struct pod *p, int stream);
/* Output files of supervised steps changed: read what is new. */
void drain_output_files(struct controller *c);
/* A restarted controller takes over the pods its predecessor left running
 * (sandbox_adopt), finishes those that ended meanwhile from their status
 * files, marks those that vanished Error ("pod deleted", as Argo), and
 * sends those never launched or already released back to Pending. */
void adopt_pods(struct controller *c);
/* A trapped syscall of a step under a syscall fault (events: epoll flags). */
void answer_syscall(struct controller *c, struct pod *p, uint32_t events);
void maybe_finish_pod(struct controller *c, struct pod *p);
/* Deadlines, grace periods and timed faults of running pods. */
void tend_pods(struct controller *c);
void signal_pods(struct controller *c, int sig, bool include_exit_handler, enum kill_reason why);
void kill_all_pods(struct controller *c);
int epoll_add(struct controller *c, int fd, struct watch *w);
/* rm -rf without following symlinks. */
void remove_tree(const char *path);

/* exec_template.c */
bool shutdown_applies(const struct controller *c, const struct exec_ctx *x);
const char *shutdown_message(const struct controller *c);
enum node_type node_type_for(const struct wf_template *t);
struct wf_node *execute_template(struct controller *c, const char *name, const char *display,
                                 const struct wf_template *t, const struct var_scope *inputs,
                                 struct wf_node *parent, const struct exec_ctx *x);
/* Attempts of a Retry node (children flagged retried), with the first and last. */
size_t retry_attempts(const struct controller *c, const struct wf_node *node,
                      struct wf_node **first, struct wf_node **last);
/* Argo's outbound nodes (getOutboundNodes): where whatever comes next is
 * attached -- a pod itself, a loop's expansions, a retry's last attempt, a
 * nested steps/DAG's last pods. */
void outbound_nodes(const struct controller *c, struct wf_node *node, struct node_list *out);
/* Add child under every outbound node of parent. */
void attach_after(struct controller *c, struct wf_node *parent, struct wf_node *child);

/* Bind inputs.parameters.* from arguments (substituted in arg_scope when non-NULL). */
int bind_inputs(const struct wf_template *t, const struct wf_parameter *args, size_t n_args,
                const struct var_scope *arg_scope, struct var_scope *out, char **why);
/* <prefix>.<name>.* of a finished step/task (prefix "steps" or "tasks"). */
void bind_node_outputs(struct var_scope *scope, const char *prefix, const char *name,
                       const struct wf_node *n);

/* exec_call.c: one step or DAG task: loops, when, hooks. */
struct call_site {
  const struct wf_step *step;
  struct wf_node *parent;   /* group or DAG node the call's nodes hang under */
  const char *base_name;    /* node name without loop suffix */
  const char *scope_prefix; /* "steps" or "tasks" */
  int *budget;              /* new nodes that may still start (parallelism); NULL = any */
  bool link_parent;         /* new nodes become children of parent (false: the caller links) */
};
/* Run one call.  Appends the nodes that stand for it to *out: the loop's
 * expansions for steps, the TaskGroup for a looped DAG task, else the one
 * node.  Returns true when they, and every hook they triggered, are fulfilled. */
bool execute_call(struct controller *c, const struct call_site *site,
                  const struct var_scope *scope, const struct exec_ctx *x,
                  struct node_list *out);

/* exec_steps.c / exec_dag.c */
void execute_steps(struct controller *c, struct wf_node *node, const struct wf_template *t,
                   const struct var_scope *inputs, const struct exec_ctx *x);
void execute_dag(struct controller *c, struct wf_node *node, const struct wf_template *t,
                 const struct var_scope *inputs, const struct exec_ctx *x);
/* Outbound nodes of a DAG node: those of its target tasks.  False if none exist yet. */
bool dag_outbound_nodes(const struct controller *c, struct wf_node *node, struct node_list *out);

/* exec_mock.c: a resource, http or plugin node ends as the scenario's mock
 * says (Error when there is none: such templates cannot run locally). */
void execute_mock(struct controller *c, struct wf_node *node, const struct wf_template *t);

/* template_outputs.c: a Succeeded steps or DAG node takes its template's
 * output parameters from scope (its children's outputs); one that cannot be
 * resolved turns the node into Error. */
void settle_template_outputs(struct controller *c, struct wf_node *node,
                             const struct wf_template *t, const struct var_scope *scope);

/* loops.c */
struct loop_item {
  char *value;  /* {{item}} */
  char *label;  /* the node-name suffix text */
  struct name_value *fields; /* {{item.KEY}} for map items */
  size_t n_fields;
};
int expand_loop(const struct wf_loop *loop, const struct var_scope *scope,
                struct loop_item **items, size_t *n_items, char **why);
void loop_items_free(struct loop_item *items, size_t n);

/* Aggregated outputs of loop expansions (outputs.result as a JSON list, ...). */
void bind_aggregate_outputs(struct var_scope *scope, const char *prefix, const char *name,
                            struct wf_node *const *children, size_t n);

#endif
