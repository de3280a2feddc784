/* How many times the workflow's exit handler really executed, as a witness
 * of its steps would count them: the most launches of any one of the
 * handler's pod nodes (a node's id is its name's hash, so a handler run
 * again from scratch launches the same nodes again, while a restarted
 * controller that carries on a handler launches only what had not
 * finished).  A handler intent with no pod launched (a handler whose steps
 * were all skipped, or that failed before a launch) is one run. */
#ifndef EXITPROBE_HANDLER_RUNS_H
#define EXITPROBE_HANDLER_RUNS_H

#include <stddef.h>

struct handler_runs {
  char *prefix; /* "<workflow>.onExit": the handler node's name */
  size_t prefix_len;
  struct handler_launches *nodes;
  size_t n_nodes;
  int intents;
};

/* On a zeroed struct handler_runs: whose exit handler is counted. */
void handler_runs_set_workflow(struct handler_runs *h, const char *workflow_name);
/* A durable exit-handler intent. */
void handler_runs_note_intent(struct handler_runs *h);
/* A pod node launched (a node-started record), of the handler or not. */
void handler_runs_note_launch(struct handler_runs *h, const char *node_name);
int handler_runs_count(const struct handler_runs *h);
void handler_runs_free(struct handler_runs *h);

#endif
