/* DAG templates: tasks start when their dependencies are fulfilled and
 * their `depends` expression holds; the DAG's phase follows Argo's
 * assessDAGPhase (argo-semantics §3.5). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "expr.h"

struct dag_run {
  struct controller *c;
  const struct wf_template *t;
  struct wf_node *node;
  const struct exec_ctx *x;
  struct wf_node **task_nodes; /* per task, NULL until created */
  bool *done;                  /* node and its hooks fulfilled */
  bool *needed;                /* a target or an ancestor of one */
};

static bool name_char(char ch) { return isalnum((unsigned char)ch) || ch == '_' || ch == '-'; }

static int task_index(const struct wf_template *t, const char *name, size_t len) {
  for (size_t i = 0; i < t->n_tasks; i++)
    if (strlen(t->tasks[i].name) == len && strncmp(t->tasks[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

/* Indices of the tasks a task depends on. */
static size_t dependencies_of(const struct wf_template *t, const struct wf_step *task, int *out) {
  size_t n = 0;
  for (size_t d = 0; d < task->n_dependencies; d++) {
    int j = task_index(t, task->dependencies[d], strlen(task->dependencies[d]));
    if (j >= 0)
      out[n++] = j;
  }
  for (const char *p = task->depends; p && *p;) {
    if (!name_char(*p) || (p > task->depends && (p[-1] == '.'))) {
      p++;
      continue;
    }
    const char *start = p;
    while (name_char(*p))
      p++;
    int j = task_index(t, start, (size_t)(p - start));
    bool seen = false;
    for (size_t k = 0; k < n; k++)
      seen |= out[k] == j;
    if (j >= 0 && !seen)
      out[n++] = j;
  }
  return n;
}

static void mark_needed(struct dag_run *d, size_t i, int *scratch) {
  if (d->needed[i])
    return;
  d->needed[i] = true;
  int *deps = calloc(d->t->n_tasks + 1, sizeof(int));
  size_t n = dependencies_of(d->t, &d->t->tasks[i], deps);
  for (size_t k = 0; k < n; k++)
    mark_needed(d, (size_t)deps[k], scratch);
  free(deps);
}

static void find_targets(struct controller *c, struct dag_run *d, const struct var_scope *scope) {
  const struct wf_template *t = d->t;
  int *deps = calloc(t->n_tasks + 1, sizeof(int));
  if (t->dag_target != NULL) {
    char *target = NULL, *why = NULL;
    if (subst(t->dag_target, scope, &target, &why) < 0)
      target = strdup(t->dag_target);
    free(why);
    char *save = NULL;
    for (char *tok = strtok_r(target, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
      int i = task_index(t, tok, strlen(tok));
      if (i >= 0)
        mark_needed(d, (size_t)i, deps);
    }
    free(target);
  } else {
    /* By default: every task nobody depends on, with its ancestors (= all). */
    for (size_t i = 0; i < t->n_tasks; i++)
      mark_needed(d, i, deps);
  }
  free(deps);
  (void)c;
}

static bool task_is_target(const struct wf_template *t, size_t i) {
  if (t->dag_target != NULL) {
    const char *p = t->dag_target;
    size_t len = strlen(t->tasks[i].name);
    for (const char *q = strstr(p, t->tasks[i].name); q; q = strstr(q + 1, t->tasks[i].name))
      if ((q == p || q[-1] == ' ') && (q[len] == '\0' || q[len] == ' '))
        return true;
    return false;
  }
  int *deps = calloc(t->n_tasks + 1, sizeof(int));
  bool depended_on = false;
  for (size_t j = 0; j < t->n_tasks && !depended_on; j++) {
    size_t n = dependencies_of(t, &t->tasks[j], deps);
    for (size_t k = 0; k < n; k++)
      depended_on |= deps[k] == (int)i;
  }
  free(deps);
  return !depended_on;
}

/* Task result predicates (argo-semantics §3.5). */
static bool task_result(const struct dag_run *d, int i, const char *result, size_t len) {
  const struct wf_node *n = d->task_nodes[i];
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

static bool bare_dependency_holds(const struct dag_run *d, int i) {
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
      int i = task_index(d->t, name, strlen(name));
      *out = i >= 0 && bare_dependency_holds(d, i);
    }
    return 0;
  }
  char *expr = NULL;
  size_t len = 0, cap = 0;
  append(&expr, &len, &cap, "", 0);
  if (task->depends == NULL) {
    /* dependencies: [A, B] is A && B, each bare. */
    for (size_t k = 0; k < task->n_dependencies; k++) {
      if (k)
        append(&expr, &len, &cap, " && ", 4);
      append(&expr, &len, &cap, task->dependencies[k], strlen(task->dependencies[k]));
    }
  } else {
    append(&expr, &len, &cap, task->depends, strlen(task->depends));
  }
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
    int i = task_index(d->t, start, (size_t)(p - start));
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
  free(expr);
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

/* Branch phase of a target: its own when completed; a Skipped/Omitted task
 * inherits the worst completed phase on its path. */
static enum node_phase branch_phase(const struct dag_run *d, size_t i, int depth) {
  const struct wf_node *n = d->task_nodes[i];
  if (n == NULL)
    return PHASE_SUCCEEDED;
  if (node_phase_completed(n->phase) || depth > 64)
    return n->phase;
  int *deps = calloc(d->t->n_tasks + 1, sizeof(int));
  size_t nd = dependencies_of(d->t, &d->t->tasks[i], deps);
  enum node_phase worst = PHASE_SUCCEEDED;
  for (size_t k = 0; k < nd; k++) {
    enum node_phase p = branch_phase(d, (size_t)deps[k], depth + 1);
    if (p == PHASE_ERROR || (p == PHASE_FAILED && worst != PHASE_ERROR))
      worst = p;
  }
  free(deps);
  return worst;
}

static bool covered_by_continue_on(const struct wf_step *task, enum node_phase p) {
  return (p == PHASE_FAILED && task->continue_on_failed) ||
         (p == PHASE_ERROR && task->continue_on_error);
}

static void link_task(struct dag_run *d, struct wf_node *n, const int *deps, size_t nd) {
  if (nd == 0) {
    run_state_add_child(d->node, n->id);
    return;
  }
  for (size_t k = 0; k < nd; k++)
    if (d->task_nodes[deps[k]] != NULL)
      attach_after(d->c, d->task_nodes[deps[k]], n);
}

/* One pass over the tasks; returns whether anything new was created. */
static bool schedule_pass(struct dag_run *d, struct var_scope *scope, int *budget) {
  struct controller *c = d->c;
  const struct wf_template *t = d->t;
  bool progressed = false;
  int *deps = calloc(t->n_tasks + 1, sizeof(int));
  for (size_t i = 0; i < t->n_tasks; i++) {
    if (!d->needed[i] || d->done[i])
      continue;
    const struct wf_step *task = &t->tasks[i];
    size_t nd = dependencies_of(t, task, deps);
    bool ready = true;
    for (size_t k = 0; k < nd; k++)
      ready &= d->done[deps[k]];
    if (!ready)
      continue;
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
        d->task_nodes[i] = n;
        d->done[i] = true;
        if (task->referenced)
          bind_node_outputs(scope, "tasks", task->name, n);
        progressed = true;
        free(base);
        continue;
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
      d->task_nodes[i] = nodes.v[0];
      if (existing == NULL)
        progressed = true;
    }
    if (done && nodes.n > 0) {
      d->done[i] = true;
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
    }
    node_list_free(&nodes);
    free(base);
  }
  free(deps);
  return progressed;
}

static void assess(struct dag_run *d) {
  struct controller *c = d->c;
  const struct wf_template *t = d->t;
  if (shutdown_applies(c, d->x)) {
    bool active = false;
    for (size_t i = 0; i < t->n_tasks; i++)
      active |= d->task_nodes[i] != NULL && !d->done[i];
    if (!active)
      node_finish(d->node, PHASE_FAILED, NULL);
    return;
  }
  for (size_t i = 0; i < t->n_tasks; i++)
    if (d->needed[i] && !d->done[i])
      return; /* still Running */
  for (size_t i = 0; i < t->n_tasks; i++) {
    if (!d->needed[i] || !task_is_target(t, i))
      continue;
    enum node_phase p = branch_phase(d, i, 0);
    if ((p == PHASE_FAILED || p == PHASE_ERROR) && !covered_by_continue_on(&t->tasks[i], p)) {
      /* The DAG's message stays empty on failure, as Argo leaves it. */
      node_finish(d->node, p, NULL);
      return;
    }
  }
  node_finish(d->node, PHASE_SUCCEEDED, NULL);
}

void execute_dag(struct controller *c, struct wf_node *node, const struct wf_template *t,
                 const struct var_scope *inputs, const struct exec_ctx *x) {
  struct dag_run d = {.c = c, .t = t, .node = node, .x = x};
  d.task_nodes = calloc(t->n_tasks + 1, sizeof(*d.task_nodes));
  d.done = calloc(t->n_tasks + 1, sizeof(bool));
  d.needed = calloc(t->n_tasks + 1, sizeof(bool));
  if (d.task_nodes == NULL || d.done == NULL || d.needed == NULL)
    abort();
  struct var_scope scope;
  var_scope_init(&scope, inputs);
  find_targets(c, &d, &scope);
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
    if (!schedule_pass(&d, &scope, &budget) || c->internal_error)
      break;
  assess(&d);
  settle_template_outputs(c, node, t, &scope);
  var_scope_clear(&scope);
  free(d.task_nodes);
  free(d.done);
  free(d.needed);
}

bool dag_outbound_nodes(const struct controller *c, struct wf_node *node, struct node_list *out) {
  const struct wf_template *t = node->template_name ? workflow_find_template(c->wf, node->template_name) : NULL;
  if (t == NULL || t->kind != TEMPLATE_DAG)
    return false;
  size_t before = out->n;
  for (size_t i = 0; i < t->n_tasks; i++) {
    if (!task_is_target(t, i))
      continue;
    char *name = xasprintf("%s.%s", node->name, t->tasks[i].name);
    struct wf_node *n = run_state_find_name(c->st, name);
    free(name);
    if (n != NULL)
      outbound_nodes(c, n, out);
  }
  return out->n > before;
}
