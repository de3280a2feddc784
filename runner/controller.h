/* The controller: executes a Workflow the way Argo's workflow controller
 * does, as a level-triggered reconcile over the node map.  Every event (a
 * step exited, a signal arrived, a timer fired) is followed by one pass of
 * `reconcile`, which walks the templates from the entrypoint, creates the
 * nodes whose turn has come, launches their steps and rolls phases up.
 * Because a pass derives everything from the node map, a pass can be
 * repeated at any time -- the property a restarted controller relies on. */
#ifndef EXITPROBE_CONTROLLER_H
#define EXITPROBE_CONTROLLER_H

#include <stdbool.h>
#include <stdio.h>

#include "error.h"
#include "run_state.h"
#include "sandbox.h"
#include "workflow.h"

/* What is known of an image, since images are not pulled: --image
 * NAME=PATH (an entrypoint program on the host), --image NAME=DIR/ (its
 * unpacked root filesystem), or an --image-config entry. */
struct image_entrypoint {
  const char *image;      /* "repo/name:tag", or "repo/name" for any tag */
  const char *entrypoint; /* host path of the program to run, or NULL */
  const char *rootfs;     /* absolute host directory used as the step's root, or NULL */
  /* The image's ENTRYPOINT and CMD (paths inside rootfs, or the host's),
   * its ENV ("K=V"), NULL-terminated, NULL when unset; its WORKDIR or NULL. */
  char *const *entrypoint_argv;
  char *const *cmd;
  char *const *env;
  const char *working_dir;
};

struct fault_plan;

/* A scenario's stand-in for a template that only a cluster can run
 * (resource, http, plugin): the node ends at once as the mock says. */
struct template_mock {
  char *template_name;
  enum node_phase phase; /* Succeeded, Failed or Error */
  char *message;         /* the node's message, or NULL */
  char *result;          /* outputs.result, or NULL */
  struct name_value *parameters; /* outputs.parameters */
  size_t n_parameters;
  struct src_pos pos;
};

struct controller_options {
  struct fault_plan *faults; /* a scenario's faults, or NULL */
  const struct image_entrypoint *images;
  size_t n_images;
  const char *argosay_path; /* built-in entrypoint of argoproj/argosay:v2, or NULL */
  double time_scale;        /* multiplies deadlines, backoffs, durations; 1 = real time */
  int grace_period_ms;     /* Stop: SIGTERM, then SIGKILL after this long */
  bool network_isolated;   /* every step in its own network namespace */
  FILE *progress;          /* live progress lines, or NULL */
  const char *work_dir;    /* per-run scratch (step /tmp dirs); created and removed */
  const char *workspace_dir; /* the run's claim volumes live here (see workspace.h); kept */
  const char *workflow_failures; /* {{workflow.failures}} from the start (a second exit
                                    handler run), or NULL */
  bool exit_handler_only;  /* wf->entrypoint is the exit handler, run again with the exit
                              hook's arguments and an exit handler's exemptions */

  /* Runs under a supervisor (watchdog/supervisor.c), which owns the ledger:
   * every event is sent as a line on journal_fd and acknowledged with one
   * byte on ack_fd once it is durable, before the controller goes on. */
  bool supervised;
  int journal_fd, ack_fd;
  const char *crash_at;        /* crash point (glob) at which to die by SIGKILL, or NULL */
  int64_t hang_ms;             /* > 0: at crash_at stop (SIGSTOP) instead, once: controller-hang */
  int lease_ms;                /* > 0: renew the supervisor's lease at least every third of it */
  const char *state_path;      /* persist the state (report JSON) after every pass, or NULL */
  bool resume;                 /* st holds a persisted state to carry on from */
  const char *step_env;        /* "NAME=VALUE" added to every step's environment, or NULL */
  const char *workflow_status; /* {{workflow.status}} from the start (compensation), or NULL */

  const struct template_mock *mocks; /* a scenario's spec.mocks */
  size_t n_mocks;

  /* `exitprobe stop|terminate RUN` arrive on this fd (run_control.h). */
  bool has_control;
  int control_fd;
};

/* Every crash point a run of wf can meet, one name each ("after:node-started:work"). */
int crash_points_list(const struct workflow *wf, char ***out, size_t *n);

/* Run wf to its end.  SIGINT and SIGTERM must be blocked in the calling
 * thread: the controller takes them from a signalfd.  The first one stops
 * the workflow (Argo's `stop`: steps get SIGTERM, the exit handler still
 * runs); a second one terminates it (exit handler killed or not started).
 * Returns 0 when the run reached a final phase (read st->phase), -1 on an
 * internal failure (every step is killed before returning). */
int controller_run(const struct workflow *wf, struct sandbox_context *sandbox,
                   const struct controller_options *opts, struct run_state *st, ep_error **err);

#endif
