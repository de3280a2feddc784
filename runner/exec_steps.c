/* Steps templates: groups run one after the other, the steps of a group in
 * parallel (argo-semantics §3.1, §3.3, §3.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"

#define FAIL_FAST_MESSAGE "template has failed or errored children and failFast enabled"

static bool counts_as_failure(const struct wf_step *s, enum node_phase phase) {
  if (phase == PHASE_FAILED)
    return !s->continue_on_failed;
  if (phase == PHASE_ERROR)
    return !s->continue_on_error;
  return false;
}

static struct wf_node *group_node(struct controller *c, struct wf_node *steps_node, size_t gi,
                                  struct wf_node *prev_group) {
  char *gname = xasprintf("%s[%zu]", steps_node->name, gi);
  struct wf_node *group = run_state_find_name(c->st, gname);
  if (group == NULL) {
    char display[32];
    snprintf(display, sizeof(display), "[%zu]", gi);
    group = run_state_add_node(c->st, gname, display, NODE_STEP_GROUP, NULL, steps_node->id);
    group->phase = PHASE_RUNNING;
    c->changed = true;
    /* Argo chains groups: group i+1 hangs under the outbound nodes of every
     * step of group i (a retry's last attempt, a loop's expansions...). */
    if (prev_group == NULL || prev_group->n_children == 0) {
      run_state_add_child(steps_node, group->id);
    } else {
      size_t n_prev = prev_group->n_children;
      for (size_t k = 0; k < n_prev; k++) {
        struct wf_node *step = run_state_find_id(c->st, prev_group->children[k]);
        if (step != NULL && step != group)
          attach_after(c, step, group);
      }
    }
  }
  free(gname);
  return group;
}

static int active_children(const struct controller *c, const struct wf_node *group) {
  int active = 0;
  for (size_t i = 0; i < group->n_children; i++) {
    const struct wf_node *n = run_state_find_id(c->st, group->children[i]);
    if (n != NULL && !node_phase_fulfilled(n->phase))
      active++;
  }
  return active;
}

/* A failure already recorded in the group, from any step or loop expansion.
 * Argo checks failFast before it starts each child (checkParallelism), so
 * the expansions of a looped step after a failed one are never created. */
static const struct wf_node *recorded_failure(const struct controller *c,
                                              const struct wf_node *group,
                                              const struct wf_step_group *g) {
  size_t group_len = strlen(group->name);
  for (size_t i = 0; i < group->n_children; i++) {
    const struct wf_node *n = run_state_find_id(c->st, group->children[i]);
    if (n == NULL || !node_phase_fulfilled(n->phase) ||
        strncmp(n->name, group->name, group_len) != 0 || n->name[group_len] != '.')
      continue;
    const char *rest = n->name + group_len + 1;
    for (size_t si = 0; si < g->n_steps; si++) {
      size_t len = strlen(g->steps[si].name);
      if (strncmp(rest, g->steps[si].name, len) == 0 &&
          (rest[len] == '\0' || rest[len] == '(') && counts_as_failure(&g->steps[si], n->phase))
        return n;
    }
  }
  return NULL;
}

/* One group; returns the group node (fulfilled when the group is over). */
static struct wf_node *execute_group(struct controller *c, struct wf_node *steps_node,
                                     const struct wf_template *t, size_t gi,
                                     const struct var_scope *scope, struct wf_node *prev,
                                     const struct exec_ctx *x) {
  struct wf_node *group = group_node(c, steps_node, gi, prev);
  if (node_phase_fulfilled(group->phase))
    return group;
  const struct wf_step_group *g = &t->groups[gi];
  int budget = -1;
  if (t->parallelism > 0) {
    budget = (int)t->parallelism - active_children(c, group);
    if (budget < 0)
      budget = 0;
  }
  bool all_done = true;
  const struct wf_node *failed = t->fail_fast ? recorded_failure(c, group, g) : NULL;
  for (size_t si = 0; si < g->n_steps; si++) {
    const struct wf_step *s = &g->steps[si];
    /* failFast: once a child failed, nothing new starts. */
    if (t->fail_fast && failed != NULL)
      budget = 0;
    char *base = xasprintf("%s.%s", group->name, s->name);
    struct call_site site = {.step = s, .parent = group, .base_name = base,
                             .scope_prefix = "steps", .budget = &budget, .link_parent = true};
    struct node_list nodes = {0};
    bool done = execute_call(c, &site, scope, x, &nodes);
    free(base);
    all_done &= done;
    for (size_t k = 0; k < nodes.n; k++)
      if (failed == NULL && node_phase_fulfilled(nodes.v[k]->phase) &&
          counts_as_failure(s, nodes.v[k]->phase))
        failed = nodes.v[k];
    node_list_free(&nodes);
  }
  if (node_phase_fulfilled(group->phase))
    return group; /* a step errored the whole group (e.g. an invalid `when`) */
  if (t->fail_fast && failed != NULL && active_children(c, group) == 0) {
    node_finish(group, PHASE_FAILED, FAIL_FAST_MESSAGE);
    return group;
  }
  if (!all_done)
    return group;
  if (failed != NULL) {
    char *msg = xasprintf("child '%s' failed", failed->id);
    node_finish(group, PHASE_FAILED, msg);
    free(msg);
  } else {
    node_finish(group, PHASE_SUCCEEDED, NULL);
  }
  return group;
}

/* steps.NAME.* of a finished group, visible to the groups after it. */
static void bind_group_outputs(struct controller *c, struct var_scope *scope,
                               const struct wf_step_group *g, const struct wf_node *group) {
  for (size_t si = 0; si < g->n_steps; si++) {
    const struct wf_step *s = &g->steps[si];
    if (!s->referenced)
      continue; /* nobody reads steps.NAME.*: binding it every pass would cost O(n^2) */
    char *base = xasprintf("%s.%s", group->name, s->name);
    struct wf_node *single = run_state_find_name(c->st, base);
    if (s->loop.kind == LOOP_NONE || single != NULL) {
      if (single != NULL)
        bind_node_outputs(scope, "steps", s->name, single);
    } else {
      struct node_list expansions = {0};
      size_t prefix_len = strlen(base);
      for (size_t k = 0; k < group->n_children; k++) {
        struct wf_node *n = run_state_find_id(c->st, group->children[k]);
        if (n != NULL && strncmp(n->name, base, prefix_len) == 0 && n->name[prefix_len] == '(')
          node_list_push(&expansions, n);
      }
      bind_aggregate_outputs(scope, "steps", s->name, expansions.v, expansions.n);
      node_list_free(&expansions);
    }
    free(base);
  }
}

/* A steps node's progress, kept between reconcile passes (exec_memo): the
 * groups before next_group are over and their steps.NAME.* are bound in
 * scope, so a pass starts at the first unfinished group. */
struct steps_progress {
  size_t next_group;
  struct wf_node *prev; /* group next_group - 1, NULL before the first */
  struct var_scope scope; /* parent: this pass's inputs */
};

static void free_steps_progress(void *v) {
  struct steps_progress *sp = v;
  var_scope_clear(&sp->scope);
  free(sp);
}

static struct steps_progress *steps_progress_of(struct controller *c, struct wf_node *node,
                                                const struct var_scope *inputs) {
  struct steps_progress *sp = exec_memo_get(&c->memo, node);
  if (sp == NULL) {
    sp = xcalloc(1, sizeof(*sp));
    var_scope_init(&sp->scope, inputs);
    exec_memo_put(&c->memo, node, sp, free_steps_progress);
  }
  sp->scope.parent = inputs;
  return sp;
}

void execute_steps(struct controller *c, struct wf_node *node, const struct wf_template *t,
                   const struct var_scope *inputs, const struct exec_ctx *x) {
  struct steps_progress *sp = steps_progress_of(c, node, inputs);
  for (size_t gi = sp->next_group; gi < t->n_groups; gi++) {
    struct wf_node *group = execute_group(c, node, t, gi, &sp->scope, sp->prev, x);
    if (c->internal_error || !node_phase_fulfilled(group->phase))
      return;
    if (group->phase == PHASE_FAILED || group->phase == PHASE_ERROR) {
      /* Steps roll up as Failed (never Error) with the group's message. */
      node_finish(node, PHASE_FAILED, group->message);
      return;
    }
    bind_group_outputs(c, &sp->scope, &t->groups[gi], group);
    sp->prev = group;
    sp->next_group = gi + 1;
  }
  node_finish(node, PHASE_SUCCEEDED, NULL);
  settle_template_outputs(c, node, t, &sp->scope);
}
