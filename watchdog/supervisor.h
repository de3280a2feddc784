/* The supervisor: runs the controller as a separate process, owns the
 * ledger (the controller journals every event through it and waits for the
 * acknowledgement), detects the controller's death through a pidfd, fences
 * what it left, and then restarts it (same state or state lost) or -- when
 * it stays down -- performs the compensating cleanup itself: the exit
 * handler, with an idempotency key, exactly once on record. */
#ifndef EXITPROBE_SUPERVISOR_H
#define EXITPROBE_SUPERVISOR_H

#include "../injector/faults.h"
#include "compensation.h"
#include "../runner/controller.h"
#include "../runner/error.h"
#include "../runner/run_state.h"
#include "../runner/workflow.h"

struct supervise_request {
  const struct workflow *wf;
  struct sandbox_context *sandbox;
  struct fault_plan *plan;        /* holds the controller-crash fault */
  const struct fault *crash;      /* the controller-crash fault, or NULL (--run-dir): a
                                     controller that dies anyway is restarted */
  const char *run_dir;            /* ledger.log, state.json, final.json live here */
  struct controller_options opts; /* as for an unsupervised run */
  struct run_state *fresh;        /* the initial state (identity, environment); consumed */
  /* Recorded in the run-started record, for `exitprobe watchdog RUN_DIR`
   * to reload the workflow and fence the run's cgroups. */
  const char *source_file;        /* the workflow or scenario file the run was given */
  bool source_is_scenario;
  const struct param_override *params; /* -p overrides of a workflow run */
  size_t n_params;
  enum delivery_policy delivery;
  const char *compensate;         /* template run as compensation; NULL: the onExit template */
};

/* Run to the end; *out is the state to report.  -1 on an internal failure. */
int supervise(const struct supervise_request *req, struct run_state **out, ep_error **err);

#endif
