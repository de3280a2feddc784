/* The compensating cleanup: a workflow's exit handler (or the template a
 * scenario names in `compensate:`) run on its own, outside the controller
 * that should have run it, with the run's idempotency key in its
 * environment.  Shared by the supervisor (a controller that stays down) and
 * `exitprobe watchdog` (a run whose supervisor died). */
#ifndef EXITPROBE_COMPENSATION_H
#define EXITPROBE_COMPENSATION_H

#include "../runner/controller.h"
#include "../runner/error.h"
#include "../runner/run_state.h"
#include "../runner/workflow.h"

enum delivery_policy {
  DELIVERY_AT_LEAST_ONCE, /* default: an intent without an outcome is run again */
  DELIVERY_AT_MOST_ONCE,  /* notifications: such an intent is recorded outcome-unknown */
};

const char *delivery_policy_name(enum delivery_policy d);

/* The same for every attempt, by the controller or any watchdog: derived
 * from the workflow's uid alone.  malloc'd. */
char *compensation_key(const char *workflow_uid);

/* {{workflow.status}} for the handler: the recorded final phase, or Error
 * when the record does not say how the run ended. */
const char *compensation_status(const struct run_state *st);

/* Run `template_name` (NULL: wf->on_exit) as the entrypoint with
 * EXITPROBE_IDEMPOTENCY_KEY=key and {{workflow.status}}=status, and put its
 * node, "<workflow>.onExit", into st.  *phase is the node's final phase.
 * -1 only on an internal failure. */
int compensation_run(const struct workflow *wf, const char *template_name,
                     struct sandbox_context *sandbox, const struct controller_options *base,
                     const char *key, const char *status, struct run_state *st,
                     enum node_phase *phase, ep_error **err);

#endif
