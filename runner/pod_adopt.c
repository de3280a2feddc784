/* A restarted controller meets the pods its predecessor left (argo-semantics
 * §2.2, §11.1): a pod node Running in the persisted state whose step still
 * runs is adopted and watched to its end as if launched here; one whose step
 * ended while no controller watched is finished from the status file its
 * init left; one whose step vanished without a word is Error "pod deleted",
 * as Argo marks a pod deleted out of band.  A node with no trace at all (the
 * snapshot lagged behind a pod already released) goes back to Pending and is
 * re-created, as Argo re-creates a Pending node's missing pod. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller_internal.h"

/* Exit-handler nodes are exempt from Stop and the workflow deadline. */
static bool in_exit_handler(const struct controller *c, const struct wf_node *node) {
  size_t len = strlen(c->wf->name);
  const char *rest = node->name + len;
  return node->hooked || (strncmp(node->name, c->wf->name, len) == 0 &&
                          strncmp(rest, ".onExit", 7) == 0 && strchr(".[(", rest[7]) != NULL);
}

/* Its deadline still counts from its start, not from the adoption. */
static void adopted_deadline(struct controller *c, struct pod *p) {
  char *why = NULL;
  if (pod_deadline(c, p->tmpl, &c->globals, p->in_exit_handler,
                                      p->node->started_at_us, &p->deadline_us, &why) < 0) {
    progress(c, "  %s: its deadline cannot be computed again (%s): none applied",
             p->node->display_name, why);
    p->deadline_us = 0;
  }
  free(why);
}

static int open_output(const char *prefix, const char *suffix) {
  char *path = xasprintf("%s.%s", prefix, suffix);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  free(path);
  return fd;
}

static void adopt_one(struct controller *c, struct wf_node *node) {
  struct pod *p = pod_new(c);
  p->tmp_dir = xasprintf("%s/%s", c->opts->work_dir, node->id);
  p->node = node;
  p->owner = c;
  p->tmpl = node->template_name ? workflow_find_template(c->wf, node->template_name) : NULL;
  if (p->tmpl != NULL && p->tmpl->n_mounts > 0)
    p->volumes_dir = xasprintf("%s/%s.volumes", c->opts->work_dir, node->id);
  p->in_exit_handler = in_exit_handler(c, node);
  /* The files hold the whole log: it is read again from their start. */
  free(node->log);
  node->log = NULL;
  node->log_len = 0;
  if (p->tmpl == NULL) {
    /* Settling needs the template (outputs, deadline): one not found by
     * name (inline, templateRef) is launched again; its step is fenced. */
    node->phase = PHASE_PENDING;
    run_state_add_note(c->st, "%s: its template is not known by name here: run again instead of "
                       "adopted", node->display_name);
    pod_discard(p);
    return;
  }
  ep_error *e = NULL;
  int rc = p->output_files ? sandbox_adopt(c->sandbox, node->id, p->tmp_dir, &p->step, &e) : 0;
  ep_error_free(&e);
  if (rc == 1) {
    adopted_deadline(c, p);
    pod_register(c, p);
    progress(c, "  adopted  %s (%s): its step kept running", node->display_name, node->pod_name);
    run_state_add_note(c->st, "%s: adopted by the restarted controller, its step still running",
                       node->display_name);
    return;
  }
  switch (p->output_files ? sandbox_status_file(p->tmp_dir, &p->result)
                          : SANDBOX_STATUS_NONE) {
  case SANDBOX_STATUS_WRITTEN:
    /* Ended while nobody watched: settled from what it left. */
    p->step.stdout_fd = open_output(p->tmp_dir, "stdout");
    p->step.stderr_fd = open_output(p->tmp_dir, "stderr");
    run_state_add_note(c->st, "%s: ended while no controller watched; finished from its status "
                       "file (exit code %d)", node->display_name, p->result.exit_code);
    pod_settle_ended(c, p);
    return;
  case SANDBOX_STATUS_EMPTY:
    node_finish(node, PHASE_ERROR, "pod deleted");
    run_state_add_note(c->st, "%s: its step was gone without an exit status when the controller "
                       "restarted: pod deleted", node->display_name);
    controller_event(c, "node-finished", node, false);
    break;
  case SANDBOX_STATUS_NONE:
    node->phase = PHASE_PENDING;
    progress(c, "  %s: no trace of its pod: created again", node->display_name);
    break;
  }
  pod_discard(p);
}

void adopt_pods(struct controller *c) {
  struct run_state *st = c->st;
  /* Nodes may be added while settling (none are, but the count is taken once). */
  size_t n = st->n_nodes;
  for (size_t i = 0; i < n; i++) {
    struct wf_node *node = st->nodes[i];
    if (node->type == NODE_POD && node->phase == PHASE_RUNNING && !node->mocked)
      adopt_one(c, node);
  }
  /* What nobody adopted (launched after the last snapshot) is fenced. */
  int fenced = sandbox_context_fence_foreign(c->sandbox);
  if (fenced > 0)
    progress(c, "  removed %d step group%s no node claims", fenced, fenced == 1 ? "" : "s");
}
