/* The idempotency check: after a run, the exit handler runs a second time
 * on the state the first run left -- as a redelivery after a crash would,
 * with the same {{workflow.status}}, {{workflow.failures}}, parameters and
 * EXITPROBE_IDEMPOTENCY_KEY as the watchdog's compensation -- and the
 * workspace (and a stateProbe's output) after one run is compared with the
 * same after two. */
#ifndef EXITPROBE_IDEMPOTENCY_H
#define EXITPROBE_IDEMPOTENCY_H

#include "controller.h"
#include "error.h"
#include "run_state.h"
#include "sandbox.h"
#include "workflow.h"

struct idempotency_request {
  const struct workflow *wf;
  struct sandbox_context *sandbox;
  const struct controller_options *opts; /* the first run's; faults are not applied again */
  const char *workspace_dir;
  const char *state_probe; /* host shell command, or NULL */
};

/* Fills st->idempotency.  -1 only on an internal failure; an exit handler
 * that is missing or did not run makes the record inconclusive instead. */
int idempotency_check(const struct idempotency_request *req, struct run_state *st,
                      ep_error **err);

#endif
