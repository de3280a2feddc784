/* Executing one template into one node: the body by kind (pod, steps,
 * DAG, suspend) and the retry wrapper Argo puts around any of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller_internal.h"
#include "expr.h"
#include "run_control.h"

bool shutdown_applies(const struct controller *c, const struct exec_ctx *x) {
  return c->terminating || (c->stopping && !x->in_exit_handler);
}

const char *shutdown_message(const struct controller *c) {
  return c->terminating ? "workflow shutdown with strategy: Terminate"
                        : "workflow shutdown with strategy: Stop";
}

enum node_type node_type_for(const struct wf_template *t) {
  switch (t->kind) {
  case TEMPLATE_STEPS:
    return NODE_STEPS;
  case TEMPLATE_DAG:
    return NODE_DAG;
  case TEMPLATE_SUSPEND:
    return NODE_SUSPEND;
  case TEMPLATE_HTTP:
    return NODE_HTTP;
  case TEMPLATE_PLUGIN:
    return NODE_PLUGIN;
  default:
    return NODE_POD; /* container, script, and resource (Argo runs it in a pod) */
  }
}

int bind_inputs(const struct wf_template *t, const struct wf_parameter *args, size_t n_args,
                const struct var_scope *arg_scope, struct var_scope *out, char **why) {
  for (size_t i = 0; i < t->n_inputs; i++) {
    const struct wf_parameter *in = &t->inputs[i];
    const char *value = NULL;
    char *resolved = NULL;
    for (size_t a = 0; a < n_args; a++) {
      if (strcmp(args[a].name, in->name) != 0 || args[a].value == NULL)
        continue;
      free(resolved);
      resolved = NULL;
      if (arg_scope != NULL) {
        if (subst(args[a].value, arg_scope, &resolved, why) < 0)
          return -1;
        value = resolved;
      } else {
        value = args[a].value;
      }
    }
    if (value == NULL) {
      value = in->value ? in->value : in->default_value;
      /* Argo substitutes the global scope into the whole template, its
       * input values and defaults included, before it binds the inputs
       * (ProcessArgs / substituteParams). */
      if (value != NULL && out->parent != NULL) {
        if (subst(value, out->parent, &resolved, why) < 0)
          return -1;
        value = resolved;
      }
    }
    if (value == NULL) {
      *why = xasprintf("inputs.parameters.%s was not supplied", in->name);
      return -1;
    }
    if (in->n_enum_values > 0) {
      bool ok = false;
      for (size_t k = 0; k < in->n_enum_values; k++)
        ok |= strcmp(in->enum_values[k], value) == 0;
      if (!ok) {
        *why = xasprintf("value '%s' of inputs.parameters.%s is not one of its enum values",
                         value, in->name);
        free(resolved);
        return -1;
      }
    }
    char *key = xasprintf("inputs.parameters.%s", in->name);
    var_scope_set(out, key, value);
    free(key);
    free(resolved);
  }
  return 0;
}

void bind_node_outputs(struct var_scope *scope, const char *prefix, const char *name,
                       const struct wf_node *n) {
  char *key;
#define BIND(field, value)                                                                     \
  do {                                                                                         \
    key = xasprintf("%s.%s.%s", prefix, name, field);                                          \
    var_scope_set(scope, key, value);                                                          \
    free(key);                                                                                 \
  } while (0)
  BIND("status", node_phase_name(n->phase));
  BIND("id", n->id);
  char ts[32];
  if (n->started_at_us) {
    format_rfc3339(n->started_at_us, ts);
    BIND("startedAt", ts);
  }
  if (n->finished_at_us) {
    format_rfc3339(n->finished_at_us, ts);
    BIND("finishedAt", ts);
  }
  if (n->has_exit_code) {
    char code[16];
    snprintf(code, sizeof(code), "%d", n->exit_code);
    BIND("exitCode", code);
  }
  if (n->result != NULL)
    BIND("outputs.result", n->result);
  for (size_t i = 0; i < n->n_output_parameters; i++) {
    char *field = xasprintf("outputs.parameters.%s", n->output_parameters[i].name);
    if (n->output_parameters[i].value != NULL)
      BIND(field, n->output_parameters[i].value);
    free(field);
  }
#undef BIND
}

/* A Retry parent or a composite node takes over its deciding child's outputs. */
static void copy_outputs(struct wf_node *to, const struct wf_node *from) {
  to->has_exit_code = from->has_exit_code;
  to->exit_code = from->exit_code;
  free(to->result);
  to->result = from->result ? strdup(from->result) : NULL;
  for (size_t i = 0; i < to->n_output_parameters; i++) {
    free(to->output_parameters[i].name);
    free(to->output_parameters[i].value);
  }
  free(to->output_parameters);
  to->output_parameters = NULL;
  to->n_output_parameters = 0;
  if (from->n_output_parameters > 0) {
    to->output_parameters = calloc(from->n_output_parameters, sizeof(struct name_value));
    if (to->output_parameters == NULL)
      abort();
    for (size_t i = 0; i < from->n_output_parameters; i++) {
      to->output_parameters[i].name = strdup(from->output_parameters[i].name);
      to->output_parameters[i].value =
          from->output_parameters[i].value ? strdup(from->output_parameters[i].value) : NULL;
    }
    to->n_output_parameters = from->n_output_parameters;
  }
}

static void free_values(struct name_value *values, size_t n) {
  for (size_t k = 0; k < n; k++) {
    free(values[k].name);
    free(values[k].value);
  }
  free(values);
}

static bool set_names(const struct run_control_set *s, const struct wf_node *node) {
  return strcmp(s->node, node->name) == 0 ||
         (node->display_name != NULL && strcmp(s->node, node->display_name) == 0);
}

/* The valueFrom.supplied outputs of a suspend node being resumed: the last
 * value set for it, else the default; one with neither cannot resume
 * (Argo's ResumeWorkflow / OverrideOutputParametersWithDefault). */
static int supplied_values(const struct wf_node *node, const struct wf_template *t,
                           const struct run_control_set *sets, size_t n_sets,
                           struct name_value **out, size_t *n_out, char **why) {
  struct name_value *values = xcalloc(t->n_outputs ? t->n_outputs : 1, sizeof(*values));
  size_t n = 0;
  for (size_t i = 0; i < t->n_outputs; i++) {
    const struct wf_parameter *p = &t->outputs[i];
    if (!p->value_from_supplied)
      continue;
    const char *value = p->value_from_default;
    for (size_t k = 0; k < n_sets; k++)
      if (set_names(&sets[k], node) && strcmp(sets[k].param, p->name) == 0)
        value = sets[k].value;
    if (value == NULL) {
      *why = xasprintf("raw output parameter '%s' has not been set and does not have a default "
                       "value",
                       p->name);
      free_values(values, n);
      return -1;
    }
    values[n].name = xstrdup(p->name);
    values[n].value = xstrdup(value);
    n++;
  }
  *out = values;
  *n_out = n;
  return 0;
}

static void finish_resumed(struct wf_node *node, struct name_value *values, size_t n) {
  if (n > 0) {
    free_values(node->output_parameters, node->n_output_parameters);
    node->output_parameters = values;
    node->n_output_parameters = n;
  } else {
    free(values);
  }
  node_finish(node, PHASE_SUCCEEDED, NULL);
}

/* A suspend node whose duration ran out resumes without supplied values. */
static void finish_resumed_suspend(struct wf_node *node, const struct wf_template *t) {
  struct name_value *values = NULL;
  size_t n = 0;
  char *why = NULL;
  if (supplied_values(node, t, NULL, 0, &values, &n, &why) < 0) {
    node_finish(node, PHASE_ERROR, why);
    free(why);
    return;
  }
  finish_resumed(node, values, n);
}

static bool active_suspend(const struct wf_node *n) {
  return n->type == NODE_SUSPEND && n->phase == PHASE_RUNNING;
}

int resume_suspend_nodes(struct controller *c, const struct run_control_set *sets, size_t n_sets,
                         size_t *resumed, char **why) {
  *resumed = 0;
  /* `argo node set` refuses what names no supplied output of a suspended node. */
  for (size_t k = 0; k < n_sets; k++) {
    bool found = false;
    for (size_t i = 0; i < c->st->n_nodes && !found; i++) {
      const struct wf_node *n = c->st->nodes[i];
      if (!active_suspend(n) || !set_names(&sets[k], n))
        continue;
      const struct wf_template *t = workflow_find_template(c->wf, n->template_name);
      for (size_t o = 0; t != NULL && o < t->n_outputs && !found; o++)
        found = t->outputs[o].value_from_supplied && strcmp(t->outputs[o].name, sets[k].param) == 0;
    }
    if (!found) {
      *why = xasprintf("--set %s.%s: no suspended node '%s' with a supplied output '%s'",
                       sets[k].node, sets[k].param, sets[k].node, sets[k].param);
      return -1;
    }
  }
  /* All or nothing, as Argo's ResumeWorkflow updates the workflow once. */
  size_t n_active = 0;
  for (size_t i = 0; i < c->st->n_nodes; i++)
    n_active += active_suspend(c->st->nodes[i]);
  struct name_value **values = xcalloc(n_active ? n_active : 1, sizeof(*values));
  size_t *counts = xcalloc(n_active ? n_active : 1, sizeof(*counts));
  size_t a = 0;
  int rc = 0;
  for (size_t i = 0; i < c->st->n_nodes && rc == 0; i++) {
    const struct wf_node *n = c->st->nodes[i];
    if (!active_suspend(n))
      continue;
    rc = supplied_values(n, workflow_find_template(c->wf, n->template_name), sets, n_sets,
                         &values[a], &counts[a], why);
    if (rc == 0)
      a++;
  }
  a = 0;
  for (size_t i = 0; i < c->st->n_nodes; i++) {
    struct wf_node *n = c->st->nodes[i];
    if (!active_suspend(n))
      continue;
    if (rc == 0 && a < n_active) {
      finish_resumed(n, values[a], counts[a]);
      c->changed = true;
    } else if (a < n_active && values[a] != NULL) {
      free_values(values[a], counts[a]);
    }
    a++;
  }
  free(values);
  free(counts);
  if (rc == 0)
    *resumed = n_active;
  return rc;
}

static void execute_suspend(struct controller *c, struct wf_node *node,
                            const struct wf_template *t, const struct var_scope *inputs,
                            const struct exec_ctx *x) {
  if (shutdown_applies(c, x)) {
    node_finish(node, PHASE_FAILED, c->terminating ? "Stopped with strategy 'Terminate'"
                                                   : "Stopped with strategy 'Stop'");
    return;
  }
  if (c->deadline_passed && !x->in_exit_handler) {
    node_finish(node, PHASE_FAILED, "Step exceeded its deadline");
    return;
  }
  node->phase = PHASE_RUNNING;
  if (t->suspend_duration == NULL)
    return; /* until resumed: only a stop, terminate or deadline ends it */
  char *text = NULL, *why = NULL;
  double secs = 0;
  if (subst(t->suspend_duration, inputs, &text, &why) < 0 ||
      parse_duration_seconds(text, true, &secs) < 0) {
    char *msg = why ? why : xasprintf("invalid suspend duration '%s'", text ? text : "");
    node_finish(node, PHASE_ERROR, msg);
    free(msg);
    free(text);
    return;
  }
  free(text);
  int64_t until = node->started_at_us + (int64_t)(secs * 1e6 * c->opts->time_scale);
  if (now_realtime_us() >= until)
    finish_resumed_suspend(node, t);
  else
    want_wakeup(c, until);
}

/* A Pending leaf may start unless a shutdown or the workflow's deadline
 * (outside the exit handler) fails it first. */
static bool pending_may_start(struct controller *c, struct wf_node *node,
                              const struct exec_ctx *x) {
  if (node->phase != PHASE_PENDING)
    return false;
  if (shutdown_applies(c, x))
    node_finish(node, PHASE_FAILED, shutdown_message(c));
  else if (c->deadline_passed && !x->in_exit_handler)
    node_finish(node, PHASE_FAILED, "Step exceeded its deadline");
  else
    return true;
  return false;
}

static void execute_body(struct controller *c, struct wf_node *node, const struct wf_template *t,
                         const struct var_scope *inputs, const struct exec_ctx *x) {
  struct exec_ctx inner = {.boundary_id = node->id, .in_exit_handler = x->in_exit_handler};
  switch (t->kind) {
  case TEMPLATE_CONTAINER:
  case TEMPLATE_SCRIPT:
    if (pending_may_start(c, node, x))
      launch_pod(c, node, t, inputs, x);
    break;
  case TEMPLATE_STEPS:
    node->phase = PHASE_RUNNING;
    execute_steps(c, node, t, inputs, &inner);
    break;
  case TEMPLATE_DAG:
    node->phase = PHASE_RUNNING;
    execute_dag(c, node, t, inputs, &inner);
    break;
  case TEMPLATE_SUSPEND:
    execute_suspend(c, node, t, inputs, x);
    break;
  case TEMPLATE_RESOURCE:
  case TEMPLATE_HTTP:
  case TEMPLATE_PLUGIN:
    if (pending_may_start(c, node, x))
      execute_mock(c, node, t);
    break;
  }
}

/* ---- retries (argo-semantics §8) ------------------------------------- */

static const struct wf_retry *retry_of(const struct controller *c, const struct wf_template *t) {
  if (t->retry.present)
    return &t->retry;
  if (c->wf->retry.present)
    return &c->wf->retry;
  return NULL;
}

struct retry_lookup {
  const struct var_scope *scope;
};

static int lookup_scope(void *ctx, const char *name, struct expr_value *out) {
  const struct retry_lookup *l = ctx;
  const char *v = var_scope_get(l->scope, name);
  if (v == NULL)
    return 0;
  expr_value_set_string(out, v);
  return 1;
}

static bool message_is_transient(const char *msg) {
  static const char *const patterns[] = {"i/o timeout", "connection reset by peer",
                                         "connection refused", "TLS handshake timeout", "EOF",
                                         "transport is closing", "too many requests", NULL};
  if (msg == NULL)
    return false;
  const char *env = getenv("TRANSIENT_ERROR_PATTERN");
  if (env != NULL && *env && strstr(msg, env))
    return true;
  for (const char *const *p = patterns; *p; p++)
    if (strstr(msg, *p))
      return true;
  return false;
}

static double backoff_seconds(const struct wf_retry *r, const struct var_scope *scope,
                              size_t attempts, char **why) {
  if (r->backoff_duration == NULL)
    return 0;
  char *text = NULL;
  double base = 0, factor = 1, cap = 0;
  if (subst(r->backoff_duration, scope, &text, why) < 0)
    return -1;
  if (parse_duration_seconds(text, true, &base) < 0) {
    *why = xasprintf("invalid retryStrategy.backoff.duration '%s'", text);
    free(text);
    return -1;
  }
  free(text);
  if (r->backoff_factor != NULL) {
    if (subst(r->backoff_factor, scope, &text, why) < 0)
      return -1;
    factor = strtod(text, NULL);
    free(text);
  }
  if (r->backoff_cap != NULL) {
    if (subst(r->backoff_cap, scope, &text, why) < 0)
      return -1;
    parse_duration_seconds(text, true, &cap);
    free(text);
  }
  double wait = base * pow(factor > 0 ? factor : 1, (double)(attempts - 1));
  if (cap > 0 && wait > cap)
    wait = cap;
  return wait;
}

static double max_duration_seconds(const struct wf_retry *r, const struct var_scope *scope) {
  double secs = 0;
  char *text = NULL, *why = NULL;
  if (r->backoff_max_duration == NULL || subst(r->backoff_max_duration, scope, &text, &why) < 0) {
    free(why);
    return 0;
  }
  if (parse_duration_seconds(text, true, &secs) < 0)
    secs = 0;
  free(text);
  return secs;
}

/* Go's time.Time String() of a UTC instant, as Argo prints the workflow
 * deadline: "2026-09-19 02:29:38 +0000 UTC" (fraction only when not zero). */
static void format_go_time(int64_t us, char *buf, size_t size) {
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char frac[16] = "";
  if (us % 1000000 != 0) {
    snprintf(frac, sizeof(frac), ".%06lld", (long long)(us % 1000000));
    for (size_t n = strlen(frac); n > 1 && frac[n - 1] == '0'; n--)
      frac[n - 1] = '\0';
  }
  snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d%s +0000 UTC", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* Decide after a finished attempt: retry now, later, or settle the parent. */
static void settle_or_retry(struct controller *c, struct wf_node *node,
                            const struct wf_template *t, const struct wf_retry *r,
                            const struct var_scope *inputs, const struct exec_ctx *x,
                            struct wf_node *last, size_t attempts, bool *start_next) {
  *start_next = false;
  if (last->phase == PHASE_SUCCEEDED) {
    copy_outputs(node, last);
    node_finish(node, PHASE_SUCCEEDED, NULL);
    return;
  }
  if (shutdown_applies(c, x)) {
    copy_outputs(node, last);
    node_finish(node, last->phase, c->terminating ? "Stopped with strategy 'Terminate'"
                                                  : "Stopped with strategy 'Stop'");
    return;
  }
  if (c->deadline_passed) {
    /* Argo's processNodeRetries: no attempt after the workflow deadline
     * (exit handlers included: the check does not exempt them). */
    char when[64];
    format_go_time(c->deadline_us, when, sizeof(when));
    char *msg = xasprintf("retry exceeded workflow deadline %s", when);
    copy_outputs(node, last);
    node_finish(node, last->phase, msg);
    free(msg);
    return;
  }
  const char *policy = r->policy ? r->policy : (r->expression ? "Always" : "OnFailure");
  bool retryable;
  if (strcmp(policy, "Always") == 0)
    retryable = true;
  else if (strcmp(policy, "OnError") == 0)
    retryable = last->phase == PHASE_ERROR;
  else if (strcmp(policy, "OnTransientError") == 0)
    retryable = message_is_transient(last->message);
  else
    retryable = last->phase == PHASE_FAILED;
  char *why = NULL;
  if (!retryable) {
    copy_outputs(node, last);
    node_finish(node, last->phase, last->message);
    return;
  }
  struct var_scope scope;
  var_scope_init(&scope, inputs);
  char buf[64];
  snprintf(buf, sizeof(buf), "%zu", attempts - 1);
  var_scope_set(&scope, "retries", buf);
  snprintf(buf, sizeof(buf), "%d", last->has_exit_code ? last->exit_code : -1);
  var_scope_set(&scope, "lastRetry.exitCode", buf);
  var_scope_set(&scope, "lastRetry.status", node_phase_name(last->phase));
  var_scope_set(&scope, "lastRetry.message", last->message ? last->message : "");
  /* Argo computes FinishedAt - StartedAt from times it stores in whole
   * seconds (the node's persisted startedAt, the container's termination
   * time), and fmt.Sprint prints a whole float64 without a fraction: "3",
   * which asInt() accepts (expr-lang's int() is strconv.Atoi on a string). */
  snprintf(buf, sizeof(buf), "%lld",
           (long long)(last->finished_at_us / 1000000 - last->started_at_us / 1000000));
  var_scope_set(&scope, "lastRetry.duration", buf);
  if (r->limit != NULL) {
    char *text = NULL;
    long long limit = 0;
    if (subst(r->limit, &scope, &text, &why) < 0 || sscanf(text, "%lld", &limit) != 1) {
      char *msg = why ? why : xasprintf("invalid retryStrategy.limit '%s'", text ? text : "");
      node_finish(node, PHASE_ERROR, msg);
      free(msg);
      free(text);
      goto out;
    }
    free(text);
    if ((long long)attempts > limit) {
      copy_outputs(node, last);
      node_finish(node, last->phase, "No more retries left");
      goto out;
    }
  }
  if (r->expression != NULL) {
    struct retry_lookup l = {&scope};
    bool ok = false;
    ep_error *e = NULL;
    char *expression = NULL;
    /* The retryStrategy is part of the template Argo substitutes its
     * inputs into, so {{inputs.parameters.X}} is text by the time the
     * expression is compiled. */
    if (subst(r->expression, &scope, &expression, &why) < 0) {
      char *msg = xasprintf("retryStrategy.expression: %s", why);
      node_finish(node, PHASE_ERROR, msg);
      free(msg);
      goto out;
    }
    int rc = expr_eval_bool(expression, EXPR_EXPRLANG, lookup_scope, &l, &ok, &e);
    free(expression);
    if (rc < 0) {
      char *msg = xasprintf("retryStrategy.expression: %s", e->message);
      node_finish(node, PHASE_ERROR, msg);
      free(msg);
      ep_error_free(&e);
      goto out;
    }
    if (!ok) {
      copy_outputs(node, last);
      node_finish(node, last->phase, "retryStrategy.expression evaluated to false");
      goto out;
    }
  }
  /* Backoff waits apply only when a limit is set (Argo's processNodeRetries). */
  double wait = r->limit ? backoff_seconds(r, &scope, attempts, &why) : 0;
  if (wait < 0) {
    node_finish(node, PHASE_ERROR, why);
    goto out;
  }
  /* A scenario's timeScale shrinks the controller's clocks, not the steps'. */
  wait *= c->opts->time_scale;
  double max = max_duration_seconds(r, &scope) * c->opts->time_scale;
  struct wf_node *first, *newest;
  retry_attempts(c, node, &first, &newest);
  int64_t now = now_realtime_us();
  if (max > 0 && first != NULL) {
    int64_t limit_at = first->started_at_us + (int64_t)(max * 1e6);
    if (now >= limit_at) {
      copy_outputs(node, last);
      node_finish(node, last->phase, "Max duration limit exceeded");
      goto out;
    }
    if (now + (int64_t)(wait * 1e6) > limit_at) {
      copy_outputs(node, last);
      node_finish(node, last->phase, "Backoff would exceed max duration limit");
      goto out;
    }
  }
  int64_t next_at = last->finished_at_us + (int64_t)(wait * 1e6);
  if (now < next_at) {
    char *msg = xasprintf("Backoff for %gs", wait);
    node_set_message(node, msg);
    free(msg);
    want_wakeup(c, next_at);
    goto out;
  }
  node_set_message(node, NULL);
  *start_next = true;
out:
  free(why);
  var_scope_clear(&scope);
  (void)t;
}

/* The attempts of a Retry node, in order: its children flagged retried (hook
 * nodes and dependents hang there too). */
size_t retry_attempts(const struct controller *c, const struct wf_node *node,
                      struct wf_node **first, struct wf_node **last) {
  size_t n = 0;
  *first = *last = NULL;
  for (size_t i = 0; i < node->n_children; i++) {
    struct wf_node *ch = run_state_find_id(c->st, node->children[i]);
    if (ch == NULL || !ch->retried)
      continue;
    if (n++ == 0)
      *first = ch;
    *last = ch;
  }
  return n;
}

static void execute_with_retries(struct controller *c, struct wf_node *node,
                                 const struct wf_template *t, const struct wf_retry *r,
                                 const struct var_scope *inputs, const struct exec_ctx *x) {
  node->phase = PHASE_RUNNING;
  for (;;) {
    struct wf_node *first_attempt, *last;
    size_t attempts = retry_attempts(c, node, &first_attempt, &last);
    if (last != NULL && !node_phase_fulfilled(last->phase)) {
      /* Keep the running attempt moving. */
      struct var_scope scope;
      var_scope_init(&scope, inputs);
      char buf[32];
      snprintf(buf, sizeof(buf), "%zu", attempts - 1);
      var_scope_set(&scope, "retries", buf);
      execute_template(c, last->name, last->display_name, t, &scope, node, x);
      var_scope_clear(&scope);
      if (!node_phase_fulfilled(last->phase))
        return;
    }
    bool start_next = last == NULL;
    if (last != NULL)
      settle_or_retry(c, node, t, r, inputs, x, last, attempts, &start_next);
    if (!start_next)
      return;
    if (shutdown_applies(c, x)) {
      node_finish(node, PHASE_FAILED, shutdown_message(c));
      return;
    }
    char *name = xasprintf("%s(%zu)", node->name, attempts);
    char *display = xasprintf("%s(%zu)", node->display_name, attempts);
    struct var_scope scope;
    var_scope_init(&scope, inputs);
    char buf[32];
    snprintf(buf, sizeof(buf), "%zu", attempts);
    var_scope_set(&scope, "retries", buf);
    struct exec_ctx inner = {.boundary_id = x->boundary_id, .in_exit_handler = x->in_exit_handler};
    struct wf_node *attempt = run_state_add_node(c->st, name, display, node_type_for(t), t->name,
                                                 x->boundary_id);
    attempt->retried = true;
    run_state_add_child(node, attempt->id);
    c->depth++;
    execute_body(c, attempt, t, &scope, &inner);
    c->depth--;
    var_scope_clear(&scope);
    free(name);
    free(display);
    if (!node_phase_fulfilled(attempt->phase))
      return;
    /* An attempt that ended at once (an error before launch): decide again. */
  }
}

#define LOCK_WAIT_PREFIX "Waiting for "

static bool template_holds(const struct wf_template *t, const char *mutex) {
  for (size_t i = 0; t != NULL && i < t->n_mutexes; i++)
    if (strcmp(t->mutexes[i], mutex) == 0)
      return true;
  return false;
}

/* Argo's template-level mutex: a node takes every mutex of its template
 * before it runs and holds them until it is fulfilled; meanwhile another
 * node wanting one waits Pending with Argo's message (a mutex is a
 * semaphore of limit 1, named <namespace>/Mutex/<name>).  Holding is read
 * off the nodes, so a resumed run needs no lock table. */
static bool take_mutexes(struct controller *c, struct wf_node *node, const struct wf_template *t,
                         const struct exec_ctx *x) {
  for (size_t m = 0; m < t->n_mutexes; m++) {
    for (size_t i = 0; i < c->st->n_nodes; i++) {
      const struct wf_node *n = c->st->nodes[i];
      if (n == node || node_phase_fulfilled(n->phase) || n->retried || n->template_name == NULL)
        continue;
      if (n->phase == PHASE_PENDING && n->message != NULL &&
          strncmp(n->message, LOCK_WAIT_PREFIX, strlen(LOCK_WAIT_PREFIX)) == 0)
        continue; /* waiting itself */
      if (!template_holds(workflow_find_template(c->wf, n->template_name), t->mutexes[m]))
        continue;
      if (shutdown_applies(c, x)) {
        node_finish(node, PHASE_FAILED, c->terminating ? "Stopped with strategy 'Terminate'"
                                                       : "Stopped with strategy 'Stop'");
        return false;
      }
      if (c->deadline_passed && !x->in_exit_handler) {
        node_finish(node, PHASE_FAILED, "Step exceeded its deadline");
        return false;
      }
      char *msg = xasprintf(LOCK_WAIT_PREFIX "%s/Mutex/%s lock. Lock status: 0/1",
                            c->wf->namespace_ ? c->wf->namespace_ : "default", t->mutexes[m]);
      if (node->message == NULL || strcmp(node->message, msg) != 0) {
        node_set_message(node, msg);
        c->changed = true;
      }
      free(msg);
      return false;
    }
  }
  if (node->message != NULL && strncmp(node->message, LOCK_WAIT_PREFIX, strlen(LOCK_WAIT_PREFIX)) == 0)
    node_set_message(node, NULL);
  return true;
}

struct wf_node *execute_template(struct controller *c, const char *name, const char *display,
                                 const struct wf_template *t, const struct var_scope *inputs,
                                 struct wf_node *parent, const struct exec_ctx *x) {
  struct wf_node *node = run_state_find_name(c->st, name);
  if (node != NULL && node_phase_fulfilled(node->phase))
    return node;
  const struct wf_retry *r = retry_of(c, t);
  bool is_attempt = node != NULL && node->retried;
  if (node == NULL) {
    node = run_state_add_node(c->st, name, display, r ? NODE_RETRY : node_type_for(t), t->name,
                              x->boundary_id);
    if (parent != NULL)
      run_state_add_child(parent, node->id);
    c->changed = true;
  }
  if (c->depth >= MAX_TEMPLATE_DEPTH) {
    node_finish(node, PHASE_ERROR, "maximum recursion depth exceeded");
    return node;
  }
  if (!is_attempt && t->n_mutexes > 0 && !take_mutexes(c, node, t, x))
    return node;
  c->depth++;
  if (r != NULL && !is_attempt)
    execute_with_retries(c, node, t, r, inputs, x);
  else
    execute_body(c, node, t, inputs, x);
  c->depth--;
  return node;
}

void outbound_nodes(const struct controller *c, struct wf_node *node, struct node_list *out) {
  switch (node->type) {
  case NODE_RETRY: {
    struct wf_node *first, *last;
    if (retry_attempts(c, node, &first, &last) > 0) {
      outbound_nodes(c, last, out);
      return;
    }
    break;
  }
  case NODE_TASK_GROUP: {
    size_t len = strlen(node->name);
    bool any = false;
    for (size_t i = 0; i < node->n_children; i++) {
      struct wf_node *ch = run_state_find_id(c->st, node->children[i]);
      if (ch && strncmp(ch->name, node->name, len) == 0 && ch->name[len] == '(') {
        outbound_nodes(c, ch, out);
        any = true;
      }
    }
    if (any)
      return;
    break;
  }
  case NODE_STEPS: {
    /* The last group that ran: the outbound nodes of its steps. */
    struct wf_node *last_group = NULL;
    for (size_t i = 0; i < c->st->n_nodes; i++) {
      struct wf_node *n = c->st->nodes[i];
      if (n->type == NODE_STEP_GROUP && n->boundary_id && strcmp(n->boundary_id, node->id) == 0)
        last_group = n;
    }
    if (last_group != NULL && last_group->n_children > 0) {
      for (size_t i = 0; i < last_group->n_children; i++) {
        struct wf_node *ch = run_state_find_id(c->st, last_group->children[i]);
        if (ch && ch->type != NODE_STEP_GROUP && !ch->hooked)
          outbound_nodes(c, ch, out);
      }
      return;
    }
    break;
  }
  case NODE_DAG:
    if (dag_outbound_nodes(c, node, out))
      return;
    break;
  default:
    break;
  }
  node_list_push(out, node);
}

void attach_after(struct controller *c, struct wf_node *parent, struct wf_node *child) {
  struct node_list out = {0};
  outbound_nodes(c, parent, &out);
  for (size_t i = 0; i < out.n; i++)
    if (out.v[i] != child)
      run_state_add_child(out.v[i], child->id);
  node_list_free(&out);
}
