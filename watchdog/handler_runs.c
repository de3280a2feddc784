#include "handler_runs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../runner/xalloc.h"

struct handler_launches {
  char *node;
  int launches;
};

void handler_runs_set_workflow(struct handler_runs *h, const char *workflow_name) {
  free(h->prefix);
  h->prefix = xasprintf("%s.onExit", workflow_name ? workflow_name : "");
  h->prefix_len = strlen(h->prefix);
}

void handler_runs_note_intent(struct handler_runs *h) { h->intents++; }

/* The handler node and its descendants: "<wf>.onExit", then a step group
 * ("[0]"), a step or task (".name") or a retry/loop child ("(0)"). */
static bool in_handler(const struct handler_runs *h, const char *name) {
  if (h->prefix == NULL || strncmp(name, h->prefix, h->prefix_len) != 0)
    return false;
  char next = name[h->prefix_len];
  return next == '\0' || next == '.' || next == '[' || next == '(';
}

void handler_runs_note_launch(struct handler_runs *h, const char *node_name) {
  if (node_name == NULL || !in_handler(h, node_name))
    return;
  for (size_t i = 0; i < h->n_nodes; i++)
    if (strcmp(h->nodes[i].node, node_name) == 0) {
      h->nodes[i].launches++;
      return;
    }
  h->nodes = xrealloc(h->nodes, (h->n_nodes + 1) * sizeof(*h->nodes));
  h->nodes[h->n_nodes++] = (struct handler_launches){.node = xstrdup(node_name), .launches = 1};
}

int handler_runs_count(const struct handler_runs *h) {
  int most = 0;
  for (size_t i = 0; i < h->n_nodes; i++)
    if (h->nodes[i].launches > most)
      most = h->nodes[i].launches;
  return most == 0 && h->intents > 0 ? 1 : most;
}

void handler_runs_free(struct handler_runs *h) {
  for (size_t i = 0; i < h->n_nodes; i++)
    free(h->nodes[i].node);
  free(h->nodes);
  free(h->prefix);
  *h = (struct handler_runs){0};
}
