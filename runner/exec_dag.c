/* DAG templates: tasks start when their dependencies are fulfilled and
 * their `depends` expression holds; the DAG's phase follows Argo's
 * assessDAGPhase (argo-semantics §3.5). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "dag_graph.h"
#include "expr.h"

/* A DAG node's scheduling state, kept between reconcile passes (exec_memo):
 * a pass visits only the ready tasks, and a task that finishes releases
 * only its dependents. */
struct task_set {
  size_t *v; /* ascending */
  size_t n, cap;
};

struct dag_progress {
  const struct dag_graph *g;
  struct wf_node **task_nodes; /* per task, NULL until created */
  bool *done;                  /* node and its hooks fulfilled */
  bool *needed;                /* a target or an ancestor of one */
  size_t *unfinished;          /* dependencies not done yet */
  size_t n_open;               /* needed tasks not done */
  struct task_set started;     /* ready, needed, not done: visited every pass */
  struct task_set waiting;     /* the same, but a Pod node waiting for a spec.parallelism slot */
  struct var_scope scope;      /* tasks.NAME.* of the done tasks; parent: this pass's inputs */
};

struct dag_run {
  struct controller *c;
  const struct wf_template *t;
  struct wf_node *node;
  const struct exec_ctx *x;
  struct dag_progress *p;
};

static bool name_char(char ch) { return isalnum((unsigned char)ch) || ch == '_' || ch == '-'; }

static size_t set_lower_bound(const struct task_set *s, size_t i) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->v[mid] < i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void set_add(struct task_set *s, size_t i) {
  size_t at = set_lower_bound(s, i);
  if (at < s->n && s->v[at] == i)
    return;
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
  }
  memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(*s->v));
  s->v[at] = i;
  s->n++;
}

static void set_remove(struct task_set *s, size_t i) {
  size_t at = set_lower_bound(s, i);
  if (at == s->n || s->v[at] != i)
    return;
  memmove(s->v + at, s->v + at + 1, (s->n - at - 1) * sizeof(*s->v));
  s->n--;
}

/* The smallest member >= from. */
static bool set_next(const struct task_set *s, size_t from, size_t *out) {
  size_t at = set_lower_bound(s, from);
  if (at == s->n)
    return false;
  *out = s->v[at];
  return true;
}

static void free_graph(void *g) {
  dag_graph_free(g);
  free(g);
}

static const struct dag_graph *graph_of(struct controller *c, const struct wf_template *t) {
  struct dag_graph *g = exec_memo_get(&c->memo, t);
  if (g == NULL) {
    g = xcalloc(1, sizeof(*g));
    dag_graph_build(t, g);
    exec_memo_put(&c->memo, t, g, free_graph);
  }
  return g;
}

static void free_progress(void *v) {
  struct dag_progress *p = v;
  free(p->task_nodes);
  free(p->done);
  free(p->needed);
  free(p->unfinished);
  free(p->started.v);
  free(p->waiting.v);
  var_scope_clear(&p->scope);
  free(p);
}

static long task_index(const struct dag_run *d, const char *name, size_t len) {
  return dag_graph_task(d->p->g, d->t, name, len);
}

/* i and its ancestors are needed: iterative, a chain is as deep as it is long. */
static void mark_needed(struct dag_run *d, size_t i, size_t *stack) {
  const struct dag_graph *g = d->p->g;
  size_t depth = 0;
  stack[depth++] = i;
  while (depth > 0) {
    size_t j = stack[--depth];
    if (d->p->needed[j])
      continue;
    d->p->needed[j] = true;
    d->p->n_open++;
    for (size_t e = g->dep_start[j]; e < g->dep_start[j + 1]; e++)
      if (!d->p->needed[g->deps[e]])
        stack[depth++] = g->deps[e];
  }
}

static void find_targets(struct dag_run *d, const struct var_scope *scope) {
  const struct wf_template *t = d->t;
  /* Each task is pushed at most once per edge into it, plus once as a root. */
  size_t *stack = xcalloc(d->p->g->dep_start[t->n_tasks] + t->n_tasks + 1, sizeof(size_t));
  if (t->dag_target != NULL) {
    char *target = NULL, *why = NULL;
    if (subst(t->dag_target, scope, &target, &why) < 0)
      target = strdup(t->dag_target);
    free(why);
    char *save = NULL;
    for (char *tok = strtok_r(target, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
      long i = task_index(d, tok, strlen(tok));
      if (i >= 0)
        mark_needed(d, (size_t)i, stack);
    }
    free(target);
  } else {
    /* By default: every task nobody depends on, with its ancestors (= all). */
    for (size_t i = 0; i < t->n_tasks; i++)
      mark_needed(d, i, stack);
  }
  free(stack);
}

static struct dag_progress *progress_of(struct controller *c, struct wf_node *node,
                                        const struct wf_template *t,
                                        const struct var_scope *inputs) {
  struct dag_progress *p = exec_memo_get(&c->memo, node);
  if (p != NULL) {
    p->scope.parent = inputs;
    return p;
  }
  p = xcalloc(1, sizeof(*p));
  p->g = graph_of(c, t);
  p->task_nodes = xcalloc(t->n_tasks + 1, sizeof(*p->task_nodes));
  p->done = xcalloc(t->n_tasks + 1, sizeof(bool));
  p->needed = xcalloc(t->n_tasks + 1, sizeof(bool));
  p->unfinished = xcalloc(t->n_tasks + 1, sizeof(size_t));
  var_scope_init(&p->scope, inputs);
  exec_memo_put(&c->memo, node, p, free_progress);
  struct dag_run d = {.c = c, .t = t, .node = node, .p = p};
  find_targets(&d, &p->scope);
  for (size_t i = 0; i < t->n_tasks; i++) {
    p->unfinished[i] = p->g->dep_start[i + 1] - p->g->dep_start[i];
    if (p->needed[i] && p->unfinished[i] == 0)
      set_add(&p->started, i);
  }
  return p;
}

/* Task i is done: its dependents whose dependencies are all done become ready. */
static void mark_done(struct dag_run *d, size_t i) {
  struct dag_progress *p = d->p;
  if (p->done[i])
    return;
  p->done[i] = true;
  p->n_open--;
  set_remove(&p->started, i);
  set_remove(&p->waiting, i);
  for (size_t e = p->g->rdep_start[i]; e < p->g->rdep_start[i + 1]; e++) {
    size_t j = p->g->rdeps[e];
    if (--p->unfinished[j] == 0 && p->needed[j] && !p->done[j])
      set_add(&p->started, j);
  }
}

static bool task_is_target(const struct dag_graph *g, size_t i) { return g->is_target[i]; }

/* Task result predicates (argo-semantics §3.5). */
static bool task_result(const struct dag_run *d, long i, const char *result, size_t len) {
  const struct wf_node *n = d->p->task_nodes[i];
  if (n == NULL)
    return false;
#define IS(r) (len == strlen(r) && strncmp(result, r, len) == 0)
  if (IS("Succeeded"))
    return n->phase == PHASE_SUCCEEDED;
  if (IS("Failed"))
    return n->phase == PHASE_FAILED;
  if (IS("Errored"))
    return n->phase == PHASE_ERROR;
  if (IS("Skipped"))
    return n->phase == PHASE_SKIPPED;
  if (IS("Omitted"))
    return n->phase == PHASE_OMITTED;
  if (IS("Daemoned"))
    return false;
  if (IS("AnySucceeded") || IS("AllFailed")) {
    bool any = false, all = false;
    size_t name_len = strlen(n->name), seen = 0;
    for (size_t k = 0; k < n->n_children; k++) {
      const struct wf_node *ch = run_state_find_id(d->c->st, n->children[k]);
      /* Only the loop's expansions "name(i:item)", not nodes hung under it. */
      if (ch == NULL || strncmp(ch->name, n->name, name_len) != 0 || ch->name[name_len] != '(')
        continue;
      all = seen++ == 0 ? ch->phase == PHASE_FAILED : all && ch->phase == PHASE_FAILED;
      any |= ch->phase == PHASE_SUCCEEDED;
    }
    return IS("AnySucceeded") ? any : all;
  }
#undef IS
  return false;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
  if (*len + n + 1 > *cap) {
    *cap = (*len + n + 1) * 2;
    *buf = realloc(*buf, *cap);
    if (*buf == NULL)
      abort();
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = '\0';
}

static bool bare_dependency_holds(const struct dag_run *d, long i) {
  /* A bare name: Succeeded, Skipped or Daemoned, widened by continueOn. */
  const struct wf_step *dep = &d->t->tasks[i];
  return task_result(d, i, "Succeeded", 9) || task_result(d, i, "Skipped", 7) ||
         (dep->continue_on_failed && task_result(d, i, "Failed", 6)) ||
         (dep->continue_on_error && task_result(d, i, "Errored", 7));
}

/* Rewrite the depends expression into true/false literals, then evaluate. */
static int evaluate_depends(const struct dag_run *d, const struct wf_step *task, bool *out,
                            char **why) {
  if (task->depends == NULL) {
    /* dependencies: [A, B, ...] is an AND of bare names: no expression to
     * parse, however many there are (a fan-in of thousands). */
    *out = true;
    for (size_t k = 0; k < task->n_dependencies && *out; k++) {
      const char *name = task->dependencies[k];
      long i = task_index(d, name, strlen(name));
      *out = i >= 0 && bare_dependency_holds(d, i);
    }
    return 0;
  }
  const char *expr = task->depends;
  char *out_expr = NULL;
  size_t olen = 0, ocap = 0;
  append(&out_expr, &olen, &ocap, "", 0);
  for (const char *p = expr; *p;) {
    if (!name_char(*p)) {
      append(&out_expr, &olen, &ocap, p, 1);
      p++;
      continue;
    }
    const char *start = p;
    while (name_char(*p))
      p++;
    long i = task_index(d, start, (size_t)(p - start));
    if (i < 0) {
      append(&out_expr, &olen, &ocap, start, (size_t)(p - start));
      continue;
    }
    bool value;
    if (*p == '.') {
      const char *r = ++p;
      while (isalpha((unsigned char)*p))
        p++;
      value = task_result(d, i, r, (size_t)(p - r));
    } else {
      value = bare_dependency_holds(d, i);
    }
    append(&out_expr, &olen, &ocap, value ? "true" : "false", value ? 4 : 5);
  }
  ep_error *e = NULL;
  int rc = expr_eval_bool(out_expr, EXPR_GOVALUATE, NULL, NULL, out, &e);
  if (rc < 0) {
    *why = xasprintf("invalid depends expression '%s': %s", task->depends ? task->depends : "",
                     e->message);
    ep_error_free(&e);
  }
  free(out_expr);
  return rc;
}

/* Branch phase of every task, as Argo's assessDAGPhase carries it down the
 * graph: a completed task's own phase; a Skipped/Omitted (or never created)
 * task inherits the worst completed phase on its paths, however far up.
 * One pass in dependency order: O(tasks + edges). */
static void branch_phases(const struct dag_run *d, enum node_phase *out) {
  const struct dag_graph *g = d->p->g;
  size_t *order = xcalloc(g->n + 1, sizeof(size_t));
  size_t placed = dag_graph_topological_order(g, order);
  for (size_t k = 0; k < placed; k++) {
    size_t i = order[k];
    const struct wf_node *n = d->p->task_nodes[i];
    if (n == NULL) {
      out[i] = PHASE_SUCCEEDED;
      continue;
    }
    if (node_phase_completed(n->phase)) {
      out[i] = n->phase;
      continue;
    }
    enum node_phase worst = PHASE_SUCCEEDED;
    for (size_t e = g->dep_start[i]; e < g->dep_start[i + 1]; e++) {
      enum node_phase p = out[g->deps[e]];
      if (p == PHASE_ERROR || (p == PHASE_FAILED && worst != PHASE_ERROR))
        worst = p;
    }
    out[i] = worst;
  }
  free(order);
}

static bool covered_by_continue_on(const struct wf_step *task, enum node_phase p) {
  return (p == PHASE_FAILED && task->continue_on_failed) ||
         (p == PHASE_ERROR && task->continue_on_error);
}

static void link_task(struct dag_run *d, struct wf_node *n, const size_t *deps, size_t nd) {
  if (nd == 0) {
    run_state_add_child(d->node, n->id);
    return;
  }
  for (size_t k = 0; k < nd; k++)
    if (d->p->task_nodes[deps[k]] != NULL)
      attach_after(d->c, d->p->task_nodes[deps[k]], n);
}

/* A Pod node that can only wait for a spec.parallelism slot: visiting it
 * while every slot is taken would do nothing (execute_body -> launch_pod
 * stops at the slot check), so a pass skips the whole waiting set then. */
static bool waits_for_slot(const struct dag_run *d, size_t i) {
  const struct wf_node *n = d->p->task_nodes[i];
  return n != NULL && n->type == NODE_POD && n->phase == PHASE_PENDING &&
         d->t->tasks[i].n_hooks == 0;
}

static bool slots_full(const struct dag_run *d) {
  const struct controller *c = d->c;
  return c->wf->parallelism > 0 && (long)c->n_pods >= c->wf->parallelism &&
         !shutdown_applies(c, d->x) && !(c->deadline_passed && !d->x->in_exit_handler);
}

/* One ready task; returns whether anything new was created or finished. */
static bool visit_task(struct dag_run *d, size_t i, struct var_scope *scope, int *budget) {
  struct controller *c = d->c;
  struct dag_progress *p = d->p;
  const struct wf_step *task = &d->t->tasks[i];
  const size_t *deps = p->g->deps + p->g->dep_start[i];
  size_t nd = p->g->dep_start[i + 1] - p->g->dep_start[i];
  bool progressed = false;
  char *base = xasprintf("%s.%s", d->node->name, task->name);
  struct wf_node *existing = run_state_find_name(c->st, base);
  /* Tasks hang under the outbound nodes of the tasks they depend on, as
   * Argo links them (connectDependencies); the first ones under the DAG. */
  struct wf_node *parent = d->node;
  if (existing == NULL && (nd > 0 || task->depends != NULL)) {
    bool run = true;
    char *why = NULL;
    if (evaluate_depends(d, task, &run, &why) < 0 || !run) {
      const struct wf_template *tt = workflow_find_template(c->wf, task->template_name);
      struct wf_node *n = run_state_add_node(c->st, base, task->name, NODE_SKIPPED, tt->name,
                                             d->node->id);
      link_task(d, n, deps, nd);
      if (why != NULL)
        node_finish(n, PHASE_ERROR, why);
      else
        node_finish(n, PHASE_OMITTED, "omitted: depends condition not met");
      free(why);
      p->task_nodes[i] = n;
      mark_done(d, i);
      if (task->referenced)
        bind_node_outputs(scope, "tasks", task->name, n);
      free(base);
      return true;
    }
  }
  struct call_site site = {.step = task, .parent = parent, .base_name = base,
                           .scope_prefix = "tasks", .budget = budget,
                           .link_parent = nd > 0 ? false : true};
  struct node_list nodes = {0};
  bool done = execute_call(c, &site, scope, d->x, &nodes);
  if (nodes.n > 0) {
    if (existing == NULL && nd > 0)
      link_task(d, nodes.v[0], deps, nd);
    p->task_nodes[i] = nodes.v[0];
    if (existing == NULL)
      progressed = true;
  }
  if (done && nodes.n > 0) {
    mark_done(d, i);
    if (!task->referenced) {
      /* nobody reads tasks.NAME.*: nothing to bind */
    } else if (task->loop.kind != LOOP_NONE && nodes.v[0]->type == NODE_TASK_GROUP) {
      struct node_list kids = {0};
      for (size_t k = 0; k < nodes.v[0]->n_children; k++)
        node_list_push(&kids, run_state_find_id(c->st, nodes.v[0]->children[k]));
      bind_aggregate_outputs(scope, "tasks", task->name, kids.v, kids.n);
      node_list_free(&kids);
      char *key = xasprintf("tasks.%s.status", task->name);
      var_scope_set(scope, key, node_phase_name(nodes.v[0]->phase));
      free(key);
    } else {
      bind_node_outputs(scope, "tasks", task->name, nodes.v[0]);
    }
    progressed = true;
  } else if (waits_for_slot(d, i)) {
    set_remove(&p->started, i);
    set_add(&p->waiting, i);
  } else {
    set_remove(&p->waiting, i);
    set_add(&p->started, i);
  }
  node_list_free(&nodes);
  free(base);
  return progressed;
}

/* One pass over the ready tasks in task order (a task made ready during the
 * pass is visited in it when it comes later); returns whether anything new
 * was created or finished. */
static bool schedule_pass(struct dag_run *d, struct var_scope *scope, int *budget) {
  bool progressed = false;
  size_t from = 0;
  for (;;) {
    size_t a = 0, b = 0;
    bool has_a = set_next(&d->p->started, from, &a);
    bool has_b = !slots_full(d) && set_next(&d->p->waiting, from, &b);
    if (!has_a && !has_b)
      break;
    size_t i = has_a && (!has_b || a < b) ? a : b;
    progressed |= visit_task(d, i, scope, budget);
    from = i + 1;
  }
  return progressed;
}

static bool any_task_running(const struct dag_run *d) {
  const struct task_set *sets[2] = {&d->p->started, &d->p->waiting};
  for (int s = 0; s < 2; s++)
    for (size_t k = 0; k < sets[s]->n; k++)
      if (d->p->task_nodes[sets[s]->v[k]] != NULL)
        return true;
  return false;
}

static void assess(struct dag_run *d) {
  const struct wf_template *t = d->t;
  if (shutdown_applies(d->c, d->x)) {
    if (!any_task_running(d))
      node_finish(d->node, PHASE_FAILED, NULL);
    return;
  }
  if (d->p->n_open > 0)
    return; /* still Running */
  enum node_phase *branch = xcalloc(t->n_tasks + 1, sizeof(*branch));
  branch_phases(d, branch);
  for (size_t i = 0; i < t->n_tasks; i++) {
    if (!d->p->needed[i] || !task_is_target(d->p->g, i))
      continue;
    enum node_phase p = branch[i];
    if ((p == PHASE_FAILED || p == PHASE_ERROR) && !covered_by_continue_on(&t->tasks[i], p)) {
      /* The DAG's message stays empty on failure, as Argo leaves it. */
      node_finish(d->node, p, NULL);
      free(branch);
      return;
    }
  }
  free(branch);
  node_finish(d->node, PHASE_SUCCEEDED, NULL);
}

void execute_dag(struct controller *c, struct wf_node *node, const struct wf_template *t,
                 const struct var_scope *inputs, const struct exec_ctx *x) {
  struct dag_run d = {.c = c, .t = t, .node = node, .x = x,
                      .p = progress_of(c, node, t, inputs)};
  struct var_scope *scope = &d.p->scope;
  /* parallelism counts the DAG's running work, wherever it hangs in the
   * graph: every unfinished pod or nested template inside this boundary. */
  int active = 0;
  if (t->parallelism > 0)
    for (size_t i = 0; i < c->st->n_nodes; i++) {
      const struct wf_node *n = c->st->nodes[i];
      active += n->boundary_id != NULL && strcmp(n->boundary_id, node->id) == 0 &&
                (n->type == NODE_POD || n->type == NODE_STEPS || n->type == NODE_DAG ||
                 n->type == NODE_SUSPEND) &&
                !node_phase_fulfilled(n->phase);
    }
  int budget = t->parallelism > 0 ? (int)t->parallelism - active : -1;
  if (t->parallelism > 0 && budget < 0)
    budget = 0;
  /* Passes until nothing new: an Omitted task can unblock the next at once. */
  for (int pass = 0; pass <= (int)t->n_tasks + 1; pass++)
    if (!schedule_pass(&d, scope, &budget) || c->internal_error)
      break;
  assess(&d);
  settle_template_outputs(c, node, t, scope);
}

bool dag_outbound_nodes(const struct controller *c, struct wf_node *node, struct node_list *out) {
  const struct wf_template *t = node->template_name ? workflow_find_template(c->wf, node->template_name) : NULL;
  if (t == NULL || t->kind != TEMPLATE_DAG)
    return false;
  /* The graph the DAG ran with; a resumed run may not have built it yet. */
  struct dag_graph own = {0};
  const struct dag_graph *g = exec_memo_get(&c->memo, t);
  if (g == NULL) {
    dag_graph_build(t, &own);
    g = &own;
  }
  size_t before = out->n;
  for (size_t i = 0; i < t->n_tasks; i++) {
    if (!task_is_target(g, i))
      continue;
    char *name = xasprintf("%s.%s", node->name, t->tasks[i].name);
    struct wf_node *n = run_state_find_name(c->st, name);
    free(name);
    if (n != NULL)
      outbound_nodes(c, n, out);
  }
  dag_graph_free(&own);
  return out->n > before;
}
