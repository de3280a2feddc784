/* One run of a workflow, from a loaded model to a finished run state: the
 * shared core of `exitprobe run` for workflows and for scenarios. */
#ifndef EXITPROBE_RUN_ONCE_H
#define EXITPROBE_RUN_ONCE_H

#include <stdbool.h>
#include <stddef.h>

#include "controller.h"
#include "error.h"
#include "run_state.h"
#include "sandbox.h"
#include "workflow.h"

struct run_request {
  const struct workflow *wf;
  const char *workflow_file;
  struct sandbox_context *sandbox;
  struct fault_plan *faults;   /* NULL: no faults */
  double time_scale;           /* 0 or 1: real time */
  bool has_seed;
  unsigned long long seed;
  int grace_ms;
  bool isolate_network;
  bool quiet;                  /* no live progress on stderr */
  const struct image_entrypoint *images;
  size_t n_images;
  /* --run-dir: the run directory is placed here and kept, and the run is
   * supervised (ledger, separate controller process) even without a
   * controller fault, so that `exitprobe watchdog DIR` can reconcile it if
   * this process is killed.  NULL: /tmp/exitprobe-run-<pid>-XXXXXX, removed. */
  const char *run_dir;
  const char *scenario_file;     /* the scenario run, or NULL (for the ledger) */
  const struct param_override *params; /* -p overrides (for the ledger) */
  size_t n_params;
  int delivery;                  /* enum delivery_policy of the compensation */
  const char *compensate;        /* scenario's compensate: template, or NULL */
  bool idempotency;            /* run the exit handler again and compare (idempotency.h) */
  const char *state_probe;     /* with idempotency: host command whose output is compared */
  const char *keep_workspace;  /* copy the workspace here at the end (must not exist), or NULL */
  const struct template_mock *mocks; /* a scenario's spec.mocks */
  size_t n_mocks;
  bool has_control;            /* control_fd: the run's control FIFO (run_control.h) */
  int control_fd;
};

/* Run to the end.  *out is the run's state (the caller frees it) on
 * success; on an internal failure -1 and err. */
int run_workflow(const struct run_request *req, struct run_state **out, ep_error **err);

/* exitprobe-argosay beside the binary or in the build tree, or NULL.  malloc'd. */
char *find_argosay(void);

/* Kubernetes-style random identity for a run. */
char *new_workflow_uid(void);

#endif
