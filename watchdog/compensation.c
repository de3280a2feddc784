#include "compensation.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runner/xalloc.h"

const char *delivery_policy_name(enum delivery_policy d) {
  return d == DELIVERY_AT_MOST_ONCE ? "at-most-once" : "at-least-once";
}

char *compensation_key(const char *workflow_uid) {
  uint64_t h = 1469598103934665603ULL;
  const char *parts[2] = {workflow_uid ? workflow_uid : "", "compensate"};
  for (int k = 0; k < 2; k++)
    for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++)
      h = (h ^ *p) * 1099511628211ULL;
  return xasprintf("%016" PRIx64, h);
}

const char *compensation_status(const struct run_state *st) {
  const struct wf_node *entry = st->n_nodes ? st->nodes[0] : NULL;
  if (entry == NULL || !node_phase_completed(entry->phase))
    return "Error"; /* the run never finished: the machinery failed */
  return entry->phase == PHASE_SUCCEEDED ? "Succeeded"
         : entry->phase == PHASE_FAILED  ? "Failed"
                                         : "Error";
}

/* The handler's node, as the watchdog ran it, in the run's report. */
static void adopt_handler_node(const struct workflow *wf, const char *template_name,
                               const struct run_state *cs, struct run_state *st,
                               enum node_phase *phase) {
  char *name = xasprintf("%s.onExit", wf->name);
  const struct wf_node *done = cs->n_nodes ? cs->nodes[0] : NULL;
  struct wf_node *n = run_state_find_name(st, name);
  if (n == NULL)
    n = run_state_add_node(st, name, name, done ? done->type : NODE_POD, template_name, NULL);
  n->hooked = true;
  if (done != NULL) {
    free(n->log);
    n->log = NULL;
    n->log_len = 0;
    for (size_t i = 0; i < cs->n_nodes; i++)
      if (cs->nodes[i]->log)
        node_append_log(n, cs->nodes[i]->log, cs->nodes[i]->log_len);
    n->has_exit_code = done->has_exit_code;
    n->exit_code = done->exit_code;
    node_finish(n, done->phase, "run by the watchdog (compensating cleanup)");
    *phase = done->phase;
  }
  free(st->exit_handler.node_id);
  st->exit_handler.node_id = strdup(n->id);
  free(name);
}

int compensation_run(const struct workflow *wf, const char *template_name,
                     struct sandbox_context *sandbox, const struct controller_options *base,
                     const char *key, const char *status, struct run_state *st,
                     enum node_phase *phase, ep_error **err) {
  if (template_name == NULL)
    template_name = wf->on_exit;
  struct workflow comp = *wf; /* shallow: the handler as the entrypoint, nothing after it */
  comp.entrypoint = (char *)template_name;
  comp.on_exit = NULL;
  char *env = xasprintf("EXITPROBE_IDEMPOTENCY_KEY=%s", key);
  struct controller_options o = *base;
  o.workflow_status = status;
  o.step_env = env;
  o.supervised = false;
  o.crash_at = NULL;
  o.state_path = NULL;
  o.resume = false;
  struct run_state *cs = run_state_new();
  cs->workflow_name = strdup(wf->name);
  cs->workflow_uid = strdup(st->workflow_uid ? st->workflow_uid : "");
  *phase = PHASE_ERROR;
  int rc = controller_run(&comp, sandbox, &o, cs, err);
  if (rc == 0)
    adopt_handler_node(wf, template_name, cs, st, phase);
  free(st->exit_handler.workflow_status);
  st->exit_handler.workflow_status = strdup(status);
  run_state_free(cs);
  free(env);
  return rc;
}
