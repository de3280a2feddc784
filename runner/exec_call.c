/* One step of a steps template or one task of a DAG: loop expansion,
 * `when`, arguments, and the hooks that run after or alongside it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"
#include "expr.h"

void node_list_push(struct node_list *l, struct wf_node *n) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = realloc(l->v, l->cap * sizeof(*l->v));
    if (l->v == NULL)
      abort();
  }
  l->v[l->n++] = n;
}

void node_list_free(struct node_list *l) {
  free(l->v);
  memset(l, 0, sizeof(*l));
}

static bool budget_allows(const struct call_site *site) {
  return site->budget == NULL || *site->budget != 0;
}

static void budget_take(const struct call_site *site) {
  if (site->budget != NULL && *site->budget > 0)
    (*site->budget)--;
}

static struct wf_node *new_child(struct controller *c, const struct call_site *site,
                                 const char *name, const char *display, enum node_type type,
                                 const char *template_name, const struct exec_ctx *x) {
  struct wf_node *n = run_state_add_node(c->st, name, display, type, template_name, x->boundary_id);
  if (site->link_parent)
    run_state_add_child(site->parent, n->id);
  c->changed = true;
  return n;
}

static int scope_lookup(void *ctx, const char *name, struct expr_value *out) {
  const struct var_scope *scope = ctx;
  const char *v = var_scope_get(scope, name);
  if (v == NULL)
    return 0;
  expr_value_set_string(out, v);
  return 1;
}

/* `when`: substitute, then evaluate as govaluate does.  Returns 1 run, 0 skip, -1 error. */
static int evaluate_when(const char *when, const struct var_scope *scope, char **shown,
                         char **why) {
  if (subst(when, scope, shown, why) < 0)
    return -1;
  bool run = false;
  ep_error *e = NULL;
  if (expr_eval_bool(*shown, EXPR_GOVALUATE, NULL, NULL, &run, &e) < 0) {
    *why = xasprintf("Invalid 'when' expression '%s': %s", *shown, e->message);
    ep_error_free(&e);
    return -1;
  }
  return run ? 1 : 0;
}

/* Run (or advance) the hook node named `<node>.<suffix>`; true when fulfilled. */
static bool run_hook(struct controller *c, struct wf_node *owner, const struct wf_hook *hook,
                     const char *suffix, const struct var_scope *scope, const struct exec_ctx *x) {
  char *name = xasprintf("%s.%s", owner->name, suffix);
  char *display = xasprintf("%s.%s", owner->display_name, suffix);
  const struct wf_template *t = workflow_find_template(c->wf, hook->template_name);
  struct wf_node *hn = run_state_find_name(c->st, name);
  struct var_scope inputs;
  var_scope_init(&inputs, &c->globals);
  char *why = NULL;
  if (hn == NULL || !node_phase_fulfilled(hn->phase)) {
    if (bind_inputs(t, hook->arguments, hook->n_arguments, scope, &inputs, &why) < 0) {
      if (hn == NULL) {
        hn = run_state_add_node(c->st, name, display, node_type_for(t), t->name, x->boundary_id);
        hn->hooked = true;
        run_state_add_child(owner, hn->id);
      }
      node_finish(hn, PHASE_ERROR, why);
    } else {
      struct exec_ctx hx = {.boundary_id = x->boundary_id, .in_exit_handler = x->in_exit_handler};
      bool created = hn == NULL;
      hn = execute_template(c, name, display, t, &inputs, owner, &hx);
      if (created)
        hn->hooked = true;
    }
  }
  bool done = node_phase_fulfilled(hn->phase);
  free(why);
  var_scope_clear(&inputs);
  free(name);
  free(display);
  return done;
}

/* Hooks of one step/task node.  The exit hook runs once the node is
 * completed; other hooks fire (once) when their expression holds.  Returns
 * true when nothing triggered is still running. */
static bool run_hooks(struct controller *c, const struct call_site *site, struct wf_node *node,
                      const struct var_scope *scope, const struct exec_ctx *x) {
  const struct wf_step *s = site->step;
  if (s->n_hooks == 0)
    return true;
  struct var_scope self;
  var_scope_init(&self, scope);
  bind_node_outputs(&self, site->scope_prefix, s->name, node);
  bool done = true;
  for (size_t h = 0; h < s->n_hooks; h++) {
    const struct wf_hook *hook = &s->hooks[h];
    if (strcmp(hook->name, "exit") == 0) {
      if (!node_phase_completed(node->phase))
        continue; /* Skipped/Omitted steps never run their exit hook */
      char *hname = xasprintf("%s.onExit", node->name);
      bool exists = run_state_find_name(c->st, hname) != NULL;
      free(hname);
      /* A step-level exit hook's expression is evaluated (unlike the workflow's). */
      bool run = true;
      if (!exists && hook->expression != NULL) {
        ep_error *e = NULL;
        if (expr_eval_bool(hook->expression, EXPR_EXPRLANG, scope_lookup, &self, &run, &e) < 0) {
          ep_error_free(&e);
          run = false;
        }
      }
      if (run)
        done &= run_hook(c, node, hook, "onExit", &self, x);
      continue;
    }
    char *suffix = xasprintf("hooks.%s", hook->name);
    char *hname = xasprintf("%s.%s", node->name, suffix);
    bool exists = run_state_find_name(c->st, hname) != NULL;
    bool fire = exists;
    if (!exists && !shutdown_applies(c, x)) {
      ep_error *e = NULL;
      if (expr_eval_bool(hook->expression, EXPR_EXPRLANG, scope_lookup, &self, &fire, &e) < 0) {
        ep_error_free(&e);
        fire = false;
      }
    }
    if (fire)
      done &= run_hook(c, node, hook, suffix, &self, x);
    free(suffix);
    free(hname);
  }
  var_scope_clear(&self);
  return done;
}

/* One invocation (one loop item, or the call itself). */
static struct wf_node *execute_single(struct controller *c, const struct call_site *site,
                                      const char *name, const char *display,
                                      const struct var_scope *scope, const struct exec_ctx *x,
                                      bool *fulfilled) {
  const struct wf_step *s = site->step;
  const struct wf_template *t = workflow_find_template(c->wf, s->template_name);
  struct wf_node *node = run_state_find_name(c->st, name);
  *fulfilled = false;
  if (node == NULL) {
    if (shutdown_applies(c, x)) {
      node = new_child(c, site, name, display, node_type_for(t), t->name, x);
      node_finish(node, PHASE_FAILED, shutdown_message(c));
    } else if (c->deadline_passed && !x->in_exit_handler) {
      node = new_child(c, site, name, display, node_type_for(t), t->name, x);
      node_finish(node, PHASE_FAILED, "Step exceeded its deadline");
    } else if (s->when != NULL) {
      char *shown = NULL, *why = NULL;
      int run = evaluate_when(s->when, scope, &shown, &why);
      if (run < 0 && strcmp(site->scope_prefix, "steps") == 0) {
        /* Argo fails the whole step group on a bad reference or condition. */
        char *msg = xasprintf("Failed to resolve references: %s", why);
        node_finish(site->parent, PHASE_ERROR, msg);
        free(msg);
        free(shown);
        free(why);
        *fulfilled = true;
        return NULL;
      }
      if (run <= 0) {
        node = new_child(c, site, name, display, NODE_SKIPPED, t->name, x);
        if (run < 0) {
          node_finish(node, PHASE_ERROR, why);
        } else {
          char *msg = xasprintf("when '%s' evaluated false", shown);
          node_finish(node, PHASE_SKIPPED, msg);
          free(msg);
        }
      }
      free(shown);
      free(why);
    }
    if (node == NULL && !budget_allows(site))
      return NULL; /* parallelism: not yet */
  }
  if (node == NULL || !node_phase_fulfilled(node->phase)) {
    struct var_scope inputs;
    var_scope_init(&inputs, &c->globals);
    char *why = NULL;
    bool is_new = node == NULL;
    if (bind_inputs(t, s->arguments, s->n_arguments, scope, &inputs, &why) < 0) {
      if (node == NULL)
        node = new_child(c, site, name, display, node_type_for(t), t->name, x);
      node_finish(node, PHASE_ERROR, why);
    } else {
      node = execute_template(c, name, display, t, &inputs, site->link_parent ? site->parent : NULL,
                              x);
    }
    if (is_new)
      budget_take(site);
    free(why);
    var_scope_clear(&inputs);
  }
  bool hooks_done = run_hooks(c, site, node, scope, x);
  *fulfilled = node_phase_fulfilled(node->phase) && hooks_done;
  return node;
}

static struct wf_node *finish_empty_loop(struct controller *c, const struct call_site *site,
                                         const struct exec_ctx *x) {
  struct wf_node *node = run_state_find_name(c->st, site->base_name);
  if (node == NULL) {
    const struct wf_template *t = workflow_find_template(c->wf, site->step->template_name);
    node = new_child(c, site, site->base_name, site->step->name, NODE_SKIPPED, t->name, x);
    node_finish(node, PHASE_SKIPPED, "Skipped, empty params");
  }
  return node;
}

bool execute_call(struct controller *c, const struct call_site *site,
                  const struct var_scope *scope, const struct exec_ctx *x,
                  struct node_list *out) {
  const struct wf_step *s = site->step;
  bool fulfilled = false;
  if (s->loop.kind == LOOP_NONE) {
    struct wf_node *n = execute_single(c, site, site->base_name, s->name, scope, x, &fulfilled);
    if (n != NULL)
      node_list_push(out, n);
    return n != NULL && fulfilled;
  }
  bool in_dag = strcmp(site->scope_prefix, "tasks") == 0;
  struct wf_node *group = NULL;
  struct call_site inner = *site;
  if (in_dag) {
    group = run_state_find_name(c->st, site->base_name);
    if (group != NULL && node_phase_fulfilled(group->phase)) {
      node_list_push(out, group);
      return true;
    }
  }
  struct loop_item *items = NULL;
  size_t n_items = 0;
  char *why = NULL;
  if (expand_loop(&s->loop, scope, &items, &n_items, &why) < 0) {
    struct wf_node *n = run_state_find_name(c->st, site->base_name);
    if (n == NULL) {
      n = new_child(c, site, site->base_name, s->name, NODE_SKIPPED, s->template_name, x);
      node_finish(n, PHASE_ERROR, why);
    }
    free(why);
    node_list_push(out, n);
    return true;
  }
  if (n_items == 0) {
    loop_items_free(items, 0);
    node_list_push(out, finish_empty_loop(c, site, x));
    return true;
  }
  if (in_dag) {
    if (group == NULL) {
      group = new_child(c, site, site->base_name, s->name, NODE_TASK_GROUP, NULL, x);
      group->phase = PHASE_RUNNING;
    }
    inner.parent = group;
    inner.link_parent = true; /* expansions hang under their TaskGroup */
  }
  bool all = true;
  enum node_phase worst = PHASE_SUCCEEDED;
  for (size_t i = 0; i < n_items; i++) {
    char *name = xasprintf("%s(%zu:%s)", site->base_name, i, items[i].label);
    char *display = xasprintf("%s(%zu:%s)", s->name, i, items[i].label);
    struct var_scope item_scope;
    var_scope_init(&item_scope, scope);
    var_scope_set(&item_scope, "item", items[i].value);
    for (size_t f = 0; f < items[i].n_fields; f++) {
      char *key = xasprintf("item.%s", items[i].fields[f].name);
      var_scope_set(&item_scope, key, items[i].fields[f].value);
      free(key);
    }
    bool done = false;
    struct wf_node *n = execute_single(c, &inner, name, display, &item_scope, x, &done);
    var_scope_clear(&item_scope);
    free(name);
    free(display);
    if (n == NULL) {
      all = false;
      continue;
    }
    if (!in_dag)
      node_list_push(out, n);
    all &= done;
    if (n->phase == PHASE_FAILED || n->phase == PHASE_ERROR)
      worst = worst == PHASE_ERROR ? PHASE_ERROR : n->phase;
  }
  loop_items_free(items, n_items);
  if (in_dag) {
    if (all)
      node_finish(group, worst, NULL);
    node_list_push(out, group);
  }
  return all;
}
