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
  const struct template_mock *mocks; /* a scenario's spec.mocks */
  size_t n_mocks;
  bool has_control;            /* control_fd: the run's control FIFO (run_control.h) */
  int control_fd;
};

/* Run to the end.  *out is the run's state (the caller frees it) on
 * success; on an internal failure -1 and err. */
int run_workflow(const struct run_request *req, struct run_state **out, ep_error **err);

/* Kubernetes-style random identity for a run. */
char *new_workflow_uid(void);

#endif
