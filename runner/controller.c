#include "controller.h"
#include "xalloc.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "controller_internal.h"
#include "expr.h"
#include "report_json.h"
#include "run_control.h"
#include <fnmatch.h>
#include "../injector/faults.h"


void progress(struct controller *c, const char *fmt, ...) {
  if (c->opts->progress == NULL)
    return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(c->opts->progress, fmt, ap);
  va_end(ap);
  fputc('\n', c->opts->progress);
  fflush(c->opts->progress);
}

void want_wakeup(struct controller *c, int64_t at_us) {
  if (c->next_wakeup_us == 0 || at_us < c->next_wakeup_us)
    c->next_wakeup_us = at_us;
}

/* ---- supervision: events, crash points, persisted state ------------------ */

/* The state snapshot is a whole report: O(n) to write.  Written with every
 * event it made the run O(n^2) (hours at 10,000 steps), so an ordinary
 * event writes it only when the last write is old enough that writing
 * costs at most a tenth of the time; the exit handler's intent and outcome
 * and the workflow's end always write it, and so does every event of a
 * controller that has a crash planned (crash_at).  The ledger stays
 * the record of every event; a restart from a lagging snapshot re-runs the
 * steps that ended and were released, or were launched, after it
 * (at-least-once; a step it shows Running is adopted, pod_adopt.c). */
#define PERSIST_COST_SHARE 10

static void persist_state(struct controller *c, bool now) {
  if (c->opts->state_path == NULL)
    return;
  int64_t start = now_realtime_us();
  /* A controller with a crash planned keeps every snapshot: what a crash
   * point leaves on disk is part of what the scenario tests. */
  if (!now && c->opts->crash_at == NULL && start < c->persist_not_before_us) {
    want_wakeup(c, c->persist_not_before_us);
    return;
  }
  ep_error *e = NULL;
  if (report_write_json(c->st, c->opts->state_path, &e) < 0) {
    progress(c, "  cannot persist the controller's state: %s", e->message);
    ep_error_free(&e);
  }
  int64_t end = now_realtime_us();
  c->persist_not_before_us = end + (PERSIST_COST_SHARE - 1) * (end - start);
}

/* One line on the supervisor's journal, acknowledged.  Every line also
 * renews the controller's lease. */
static void journal_send(struct controller *c, const char *type, const struct wf_node *node,
                         bool sync) {
  if (!c->opts->supervised)
    return;
  char line[2048];
  int len = snprintf(line, sizeof(line), "%s\t%d\t%s\t%s\t%s\n", type, sync ? 1 : 0,
                     node ? node->name : "", node ? node->display_name : "",
                     node ? node_phase_name(node->phase) : "");
  if (len > 0 && (size_t)len < sizeof(line)) {
    char ack;
    /* The event is durable once acknowledged; a supervisor gone means we are fenced. */
    if (write(c->opts->journal_fd, line, (size_t)len) != len ||
        read(c->opts->ack_fd, &ack, 1) != 1)
      _exit(EP_EXIT_INTERNAL);
  }
  c->lease_renewed_us = now_realtime_us();
}

/* A quiet controller still renews its lease, so that one whose lease runs
 * out is one that hangs. */
static void renew_lease(struct controller *c) {
  if (!c->opts->supervised || c->opts->lease_ms <= 0)
    return;
  int64_t period = (int64_t)c->opts->lease_ms * 1000 / 3;
  if (now_realtime_us() - c->lease_renewed_us >= period)
    journal_send(c, "lease", NULL, false);
  want_wakeup(c, c->lease_renewed_us + period);
}

void crash_point(struct controller *c, const char *point) {
  if (c->opts->crash_at == NULL || fnmatch(c->opts->crash_at, point, 0) != 0)
    return;
  if (c->opts->hang_ms > 0) {
    if (c->hang_fired)
      return;
    c->hang_fired = true;
    progress(c, "  controller hangs at %s (SIGSTOP)", point);
    /* Announced first: the supervisor wakes it when the hang is over. */
    journal_send(c, "hang", NULL, true);
    raise(SIGSTOP);
    /* Woken: within the lease (a supervisor past it has killed us). */
    progress(c, "  controller woke up at %s", point);
    return;
  }
  progress(c, "  controller crashes at %s (SIGKILL)", point);
  raise(SIGKILL);
}

void controller_event(struct controller *c, const char *type, const struct wf_node *node,
                      bool sync) {
  /* The controller's own state is persisted as Argo persists the
   * workflow's status with the changes it acts on (bounded: persist_state). */
  persist_state(c, sync);
  journal_send(c, type, node, sync);
  /* The crash point after this durable write. */
  char point[2048] = "";
  if (node != NULL)
    snprintf(point, sizeof(point), "after:%s:%s", type, node->display_name);
  else if (strcmp(type, "exit-handler-done") == 0)
    snprintf(point, sizeof(point), "after:exit-handler");
  if (point[0] != '\0')
    crash_point(c, point);
}

static char *pod_name_for(const struct controller *c, const struct wf_node *node) {
  return run_state_pod_name(c->wf->name, node->name, node->template_name);
}

/* ---- workflow-level variables ---------------------------------------- */

static void set_duration(struct controller *c) {
  double secs = (double)(now_realtime_us() - c->st->started_at_us) / 1e6;
  char buf[64];
  snprintf(buf, sizeof(buf), "%f", secs);
  var_scope_set(&c->globals, "workflow.duration", buf);
}

static void init_globals(struct controller *c) {
  const struct workflow *wf = c->wf;
  var_scope_init(&c->globals, NULL);
  var_scope_set(&c->globals, "workflow.name", wf->name);
  var_scope_set(&c->globals, "workflow.namespace", wf->namespace_);
  var_scope_set(&c->globals, "workflow.uid", c->st->workflow_uid);
  var_scope_set(&c->globals, "workflow.status",
                c->opts->workflow_status ? c->opts->workflow_status : "Running");
  var_scope_set(&c->globals, "workflow.mainEntrypoint", wf->entrypoint);
  var_scope_set(&c->globals, "workflow.serviceAccountName", "default");
  char ts[32];
  format_rfc3339(c->st->started_at_us, ts);
  var_scope_set(&c->globals, "workflow.creationTimestamp", ts);
  var_scope_set(&c->globals, "workflow.creationTimestamp.RFC3339", ts);
  char secs[32];
  snprintf(secs, sizeof(secs), "%" PRId64, c->st->started_at_us / 1000000);
  var_scope_set(&c->globals, "workflow.creationTimestamp.s", secs);
  var_scope_set(&c->globals, "workflow.failures",
                c->opts->workflow_failures ? c->opts->workflow_failures : "\"null\"");
  /* workflow.parameters as JSON: [{"name":..,"value":..}] */
  size_t cap = 64;
  char *json = strdup("[");
  for (size_t i = 0; i < wf->n_arguments; i++) {
    const struct wf_parameter *p = &wf->arguments[i];
    char *qn = json_quote_string(p->name), *qv = json_quote_string(p->value ? p->value : "");
    char *next = xasprintf("%s%s{\"name\":%s,\"value\":%s}", json, i ? "," : "", qn, qv);
    free(json), free(qn), free(qv);
    json = next;
    if (p->value != NULL) {
      char *key = xasprintf("workflow.parameters.%s", p->name);
      var_scope_set(&c->globals, key, p->value);
      free(key);
    }
  }
  (void)cap;
  char *closed = xasprintf("%s]", json);
  var_scope_set(&c->globals, "workflow.parameters", closed);
  var_scope_set(&c->globals, "workflow.parameters.json", closed);
  free(json), free(closed);
  set_duration(c);
}

/* {{workflow.failures}}: every Failed/Error node, marshalled as Argo does
 * and then quoted as a string literal (see argo-semantics §5.3). */
static char *failures_text(const struct controller *c) {
  char *json = NULL;
  for (size_t i = 0; i < c->st->n_nodes; i++) {
    const struct wf_node *n = c->st->nodes[i];
    if (n->phase != PHASE_FAILED && n->phase != PHASE_ERROR)
      continue;
    char *pod = pod_name_for(c, n);
    char finished[32] = "";
    if (n->finished_at_us)
      format_rfc3339(n->finished_at_us, finished);
    char *f[6] = {json_quote_string(n->display_name), json_quote_string(n->message ? n->message : ""),
                  json_quote_string(n->template_name ? n->template_name : ""),
                  json_quote_string(node_phase_name(n->phase)), json_quote_string(pod),
                  json_quote_string(finished)};
    char *obj = xasprintf("{\"displayName\":%s,\"message\":%s,\"templateName\":%s,\"phase\":%s,"
                          "\"podName\":%s,\"finishedAt\":%s}",
                          f[0], f[1], f[2], f[3], f[4], f[5]);
    char *next = xasprintf("%s%s", json ? json : "[", json ? "," : "");
    char *joined = xasprintf("%s%s", next, obj);
    free(next), free(obj), free(json), free(pod);
    for (int k = 0; k < 6; k++)
      free(f[k]);
    json = joined;
  }
  char *inner = json ? xasprintf("%s]", json) : strdup("null");
  free(json);
  char *quoted = json_quote_string(inner);
  free(inner);
  return quoted;
}

/* Entry node phase -> {{workflow.status}} (Skipped/Omitted count as Succeeded). */
static const char *workflow_status_of(enum node_phase phase) {
  switch (phase) {
  case PHASE_SUCCEEDED:
  case PHASE_SKIPPED:
  case PHASE_OMITTED:
    return "Succeeded";
  case PHASE_FAILED:
    return "Failed";
  case PHASE_ERROR:
    return "Error";
  case PHASE_PENDING:
    return "Pending";
  case PHASE_RUNNING:
    return "Running";
  }
  return "Error";
}

/* ---- the workflow ----------------------------------------------------- */

static struct wf_node *run_top(struct controller *c, const char *name, const char *tmpl_name,
                               const struct wf_parameter *args, size_t n_args, bool exit_handler) {
  const struct wf_template *t = workflow_find_template(c->wf, tmpl_name);
  struct var_scope inputs;
  var_scope_init(&inputs, &c->globals);
  struct exec_ctx x = {.boundary_id = NULL, .in_exit_handler = exit_handler};
  struct wf_node *node = run_state_find_name(c->st, name);
  char *why = NULL;
  /* An exit hook with arguments gets those, resolved against the globals;
   * otherwise the workflow's own arguments feed it (Argo's GetExitHook /
   * WithArgs, argo-semantics §5.2). */
  int rc = n_args > 0 ? bind_inputs(t, args, n_args, &c->globals, &inputs, &why)
                      : bind_inputs(t, c->wf->arguments, c->wf->n_arguments, NULL, &inputs, &why);
  if (rc < 0 && node == NULL) {
    node = run_state_add_node(c->st, name, name, node_type_for(t), t->name, NULL);
    node->hooked = exit_handler;
    node_finish(node, PHASE_ERROR, why);
  } else if (node == NULL || !node_phase_fulfilled(node->phase)) {
    bool created = node == NULL;
    node = execute_template(c, name, name, t, &inputs, NULL, &x);
    if (created)
      node->hooked = exit_handler;
  }
  free(why);
  var_scope_clear(&inputs);
  return node;
}

void publish_node_global_outputs(struct controller *c, const struct wf_node *n) {
  if (n->phase != PHASE_SUCCEEDED || n->template_name == NULL ||
      (n->type != NODE_POD && n->type != NODE_STEPS && n->type != NODE_DAG &&
       n->type != NODE_HTTP && n->type != NODE_PLUGIN))
    return;
  const struct wf_template *t = workflow_find_template(c->wf, n->template_name);
  for (size_t o = 0; t && o < t->n_outputs; o++) {
    if (t->outputs[o].global_name == NULL)
      continue;
    for (size_t k = 0; k < n->n_output_parameters; k++) {
      if (strcmp(n->output_parameters[k].name, t->outputs[o].name) != 0 ||
          n->output_parameters[k].value == NULL)
        continue;
      char *key = xasprintf("workflow.outputs.parameters.%s", t->outputs[o].global_name);
      var_scope_set(&c->globals, key, n->output_parameters[k].value);
      free(key);
    }
  }
}

/* workflow.outputs.parameters.* from every Succeeded node's globalName
 * outputs (again after a restart, which rebuilds the globals). */
static void publish_global_outputs(struct controller *c) {
  for (size_t i = 0; i < c->st->n_nodes; i++)
    publish_node_global_outputs(c, c->st->nodes[i]);
}

static int globals_lookup(void *ctx, const char *name, struct expr_value *out) {
  const struct var_scope *scope = ctx;
  const char *v = var_scope_get(scope, name);
  if (v == NULL)
    return 0;
  expr_value_set_string(out, v);
  return 1;
}

/* Workflow-level lifecycle hooks: fire once when their expression holds;
 * returns true when no triggered hook is still running. */
static bool run_workflow_hooks(struct controller *c, struct wf_node *entry) {
  bool done = true;
  for (size_t h = 0; h < c->wf->n_hooks; h++) {
    const struct wf_hook *hook = &c->wf->hooks[h];
    char *name = xasprintf("%s.hooks.%s", c->wf->name, hook->name);
    struct wf_node *hn = run_state_find_name(c->st, name);
    bool fire = hn != NULL;
    if (hn == NULL && !c->terminating && !c->stopping) {
      ep_error *e = NULL;
      if (expr_eval_bool(hook->expression, EXPR_EXPRLANG, globals_lookup, &c->globals, &fire,
                         &e) < 0) {
        ep_error_free(&e);
        fire = false;
      }
    }
    if (fire && (hn == NULL || !node_phase_fulfilled(hn->phase))) {
      const struct wf_template *t = workflow_find_template(c->wf, hook->template_name);
      struct var_scope inputs;
      var_scope_init(&inputs, &c->globals);
      char *why = NULL;
      struct exec_ctx x = {.boundary_id = entry->id, .in_exit_handler = false};
      if (bind_inputs(t, hook->arguments, hook->n_arguments, &c->globals, &inputs, &why) < 0) {
        if (hn == NULL) {
          hn = run_state_add_node(c->st, name, name, node_type_for(t), t->name, entry->id);
          run_state_add_child(entry, hn->id);
        }
        node_finish(hn, PHASE_ERROR, why);
      } else {
        bool created = hn == NULL;
        hn = execute_template(c, name, name, t, &inputs, entry, &x);
        if (created)
          hn->hooked = true;
      }
      free(why);
      var_scope_clear(&inputs);
    }
    if (hn != NULL && !node_phase_fulfilled(hn->phase))
      done = false;
    free(name);
  }
  return done;
}

static void check_shutdown_faults(struct controller *c) {
  const char *strategy = NULL;
  int64_t next = 0;
  if (fault_plan_shutdown_due(c->opts->faults, c->st->started_at_us, now_realtime_us(), c->st,
                              &strategy, &next) == 1) {
    bool terminate = strcmp(strategy, "Terminate") == 0;
    begin_shutdown(c, terminate, terminate ? "terminate (fault)" : "stop (fault)");
  }
  if (next != 0)
    want_wakeup(c, next);
}

static void check_workflow_deadline(struct controller *c) {
  if (c->deadline_us == 0 || c->deadline_passed)
    return;
  if (now_realtime_us() >= c->deadline_us) {
    c->deadline_passed = true;
    progress(c, "  workflow deadline (activeDeadlineSeconds) passed: stopping steps");
  } else {
    want_wakeup(c, c->deadline_us);
  }
}

/* One pass over the workflow, Argo's operate(): advance the entry node and
 * the hooks, then -- once they are fulfilled -- the exit handler, then
 * settle the phase. */
static void reconcile_once(struct controller *c) {
  struct run_state *st = c->st;
  if (st->phase != PHASE_RUNNING)
    return;
  set_duration(c);
  check_workflow_deadline(c);
  tend_pods(c);
  check_shutdown_faults(c);
  if (!c->globals_restored) {
    /* Nodes publish as they succeed; those a restarted controller found
     * finished in its state are published once, before the first pass
     * reads them (a walk of every node on every pass would be O(n^2)). */
    publish_global_outputs(c);
    c->globals_restored = true;
  }
  /* A redelivered exit handler (opts->exit_handler_only) gets its hook's arguments. */
  bool handler_only = c->opts->exit_handler_only;
  struct wf_node *entry =
      run_top(c, c->wf->name, c->wf->entrypoint, handler_only ? c->wf->exit_arguments : NULL,
              handler_only ? c->wf->n_exit_arguments : 0, handler_only);
  if (c->internal_error)
    return;
  if (node_phase_fulfilled(entry->phase))
    var_scope_set(&c->globals, "workflow.status", workflow_status_of(entry->phase));
  bool hooks_done = run_workflow_hooks(c, entry);
  if (!node_phase_fulfilled(entry->phase) || !hooks_done)
    return;
  const char *status = workflow_status_of(entry->phase);
  struct wf_node *handler = NULL;
  if (c->wf->on_exit != NULL) {
    char *name = xasprintf("%s.onExit", c->wf->name);
    handler = run_state_find_name(st, name);
    if (handler == NULL && !c->terminating)
      crash_point(c, "before:exit-handler");
    if (!c->terminating && !c->handler_intent_sent &&
        (handler == NULL || !node_phase_fulfilled(handler->phase))) {
      /* The intent is durable before the handler starts (a restarted
       * controller that runs it again journals a second intent). */
      c->handler_intent_sent = true;
      controller_event(c, "exit-handler-intent", NULL, true);
    }
    if (handler == NULL && !c->terminating) {
      char *failures = failures_text(c);
      var_scope_set(&c->globals, "workflow.failures", failures);
      struct exit_handler_record *eh = &st->exit_handler;
      eh->ran = true;
      eh->runs++;
      eh->by = BY_CONTROLLER;
      free(eh->workflow_status);
      eh->workflow_status = strdup(status);
      free(eh->workflow_failures);
      eh->workflow_failures = failures;
      progress(c, "  exit handler %s starts with {{workflow.status}}=%s", c->wf->on_exit, status);
    }
    if (handler != NULL || !c->terminating) {
      handler = run_top(c, name, c->wf->on_exit, c->wf->exit_arguments, c->wf->n_exit_arguments,
                        true);
      crash_point(c, "during:exit-handler");
    }
    free(name);
    if (handler != NULL) {
      free(st->exit_handler.node_id);
      st->exit_handler.node_id = strdup(handler->id);
      st->exit_handler.phase = handler->phase;
      if (!node_phase_fulfilled(handler->phase))
        return;
      if (!c->handler_done_sent) {
        c->handler_done_sent = true;
        controller_event(c, "exit-handler-done", NULL, true);
      }
    }
  }
  /* Final phase (argo-semantics §5.1 step 9). */
  enum node_phase phase;
  const char *msg = NULL;
  if (entry->phase == PHASE_FAILED || entry->phase == PHASE_ERROR) {
    phase = entry->phase;
    msg = entry->message;
  } else if (handler != NULL && (handler->phase == PHASE_FAILED || handler->phase == PHASE_ERROR)) {
    phase = handler->phase;
    msg = handler->message;
  } else {
    phase = PHASE_SUCCEEDED;
  }
  crash_point(c, "before:workflow-finished");
  char *stopped = NULL;
  if (phase != PHASE_SUCCEEDED && st->shutdown != NULL)
    msg = stopped = xasprintf("Stopped with strategy '%s'", st->shutdown);
  st->phase = phase;
  free(st->message);
  st->message = msg ? strdup(msg) : NULL;
  st->finished_at_us = now_realtime_us();
  free(stopped);
  controller_event(c, "workflow-finished", NULL, true);
}

/* Passes until one changes nothing: a node that ends at creation (skipped,
 * omitted, failed to start) can unblock the next at once, and so can a node
 * that ends during a pass after its parent was visited (a steps template
 * under parallelism whose last child just finished): nothing else would
 * wake the controller for it. */
static void reconcile(struct controller *c) {
  c->next_wakeup_us = 0;
  for (int pass = 0; pass < 64; pass++) {
    c->changed = false;
    size_t nodes_before = c->st->n_nodes, finishes_before = c->st->n_finishes;
    reconcile_once(c);
    if (!c->changed && c->st->n_nodes == nodes_before && c->st->n_finishes == finishes_before)
      break;
  }
}

/* ---- signals and shutdown -------------------------------------------- */

void begin_shutdown(struct controller *c, bool terminate, const char *why) {
  if (!c->stopping && !terminate) {
    /* Argo's stop: steps get SIGTERM, the exit handler still runs. */
    c->stopping = true;
    free(c->st->shutdown);
    c->st->shutdown = strdup("Stop");
    progress(c, "  %s: stopping steps; the exit handler still runs", why);
    signal_pods(c, SIGTERM, false, KILL_SHUTDOWN);
  } else if (!c->terminating) {
    /* terminate: everything, the exit handler included, is killed. */
    c->stopping = true;
    c->terminating = true;
    free(c->st->shutdown);
    c->st->shutdown = strdup("Terminate");
    progress(c, "  %s: terminating, exit handler included", why);
    signal_pods(c, SIGKILL, true, KILL_SHUTDOWN);
  }
}

static void on_signal(struct controller *c) {
  struct signalfd_siginfo si;
  while (read(c->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    /* SIGUSR1/SIGUSR2 ask for argo stop / argo terminate; the run then ends
     * as the workflow ends, not as an interrupted run. */
    if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
      begin_shutdown(c, si.ssi_signo == SIGUSR2,
                     si.ssi_signo == SIGUSR2 ? "terminate requested (SIGUSR2)"
                                             : "stop requested (SIGUSR1)");
      continue;
    }
    if (c->st->interrupt_signal == 0)
      c->st->interrupt_signal = (int)si.ssi_signo;
    c->st->interrupted = true;
    /* First interrupt stops, a second one terminates. */
    begin_shutdown(c, c->stopping, c->stopping ? "interrupted again"
                                               : "interrupted; interrupt again to terminate");
  }
}

/* `exitprobe stop` / `exitprobe terminate`: a repeated stop stays a stop.
 * `exitprobe resume`: the active suspend nodes succeed; what cannot be
 * resumed is said on stderr, since the request has no way back. */
static void on_control(struct controller *c) {
  struct run_control_requests req;
  run_control_read(c->opts->control_fd, &req);
  if (req.resume) {
    size_t resumed = 0;
    char *why = NULL;
    if (resume_suspend_nodes(c, req.sets, req.n_sets, &resumed, &why) < 0) {
      fprintf(stderr, "exitprobe: resume refused: %s\n", why);
      free(why);
    } else {
      progress(c, "resume requested (exitprobe resume): %zu suspended node(s) resumed", resumed);
    }
  }
  if (req.shutdown == RUN_CONTROL_TERMINATE)
    begin_shutdown(c, true, "terminate requested (exitprobe terminate)");
  else if (req.shutdown == RUN_CONTROL_STOP && !c->stopping)
    begin_shutdown(c, false, "stop requested (exitprobe stop)");
  run_control_requests_free(&req);
}

static void on_timer(struct controller *c) {
  uint64_t expirations;
  if (read(c->timerfd, &expirations, sizeof(expirations)) < 0)
    return;
  /* Nothing else to do: the reconcile that follows every event looks at the clock. */
}

/* Arm the timer for the earliest moment a pass must look at the clock again. */
static void arm_wakeup(struct controller *c) {
  struct itimerspec its = {0};
  if (c->next_wakeup_us != 0) {
    int64_t delta = c->next_wakeup_us - now_realtime_us();
    if (delta < 1000)
      delta = 1000;
    its.it_value.tv_sec = delta / 1000000;
    its.it_value.tv_nsec = (long)(delta % 1000000) * 1000;
  }
  timerfd_settime(c->timerfd, 0, &its, NULL);
}

static int setup_loop(struct controller *c) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  c->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (c->epfd < 0)
    return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "epoll_create1");
  c->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (c->sigfd < 0)
    return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "signalfd");
  c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (c->timerfd < 0)
    return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "timerfd_create");
  c->sig_watch = (struct watch){WATCH_SIGNAL, NULL};
  c->timer_watch = (struct watch){WATCH_TIMER, NULL};
  if (epoll_add(c, c->sigfd, &c->sig_watch) < 0 || epoll_add(c, c->timerfd, &c->timer_watch) < 0)
    return -1;
  c->control_watch = (struct watch){WATCH_CONTROL, NULL};
  if (c->opts->has_control && epoll_add(c, c->opts->control_fd, &c->control_watch) < 0)
    return -1;
  return 0;
}

static bool run_finished(const struct controller *c) {
  return c->n_pods == 0 && c->st->phase != PHASE_RUNNING && c->st->phase != PHASE_PENDING;
}

/* A restarted controller: pods still Running on record are adopted
 * (adopt_pods) when their steps could outlive the dead controller; other
 * unfinished pods go back to Pending and run again, as Argo re-creates a
 * Pending node's missing pod.  Composite nodes are re-evaluated from their
 * children. */
static void prepare_resume(struct run_state *st, bool adopting) {
  for (size_t i = 0; i < st->n_nodes; i++) {
    struct wf_node *n = st->nodes[i];
    if (adopting && n->phase == PHASE_RUNNING)
      continue;
    if (n->type == NODE_POD && !node_phase_fulfilled(n->phase)) {
      n->phase = PHASE_PENDING;
      free(n->log);
      n->log = NULL;
      n->log_len = 0;
    }
  }
}

/* Argo counts the workflow deadline from startedAt truncated to seconds.
 * Under a scenario's timeScale that truncation would not be scaled with
 * the rest, so a scaled deadline counts from the exact start. */
static int64_t deadline_start(const struct run_state *st, const struct controller_options *opts) {
  if (opts->time_scale != 1.0)
    return st->started_at_us;
  return st->started_at_us / 1000000 * 1000000;
}

int controller_run(const struct workflow *wf, struct sandbox_context *sandbox,
                   const struct controller_options *opts, struct run_state *st, ep_error **err) {
  struct controller c = {.wf = wf, .sandbox = sandbox, .opts = opts, .st = st, .err = err,
                         .epfd = -1, .sigfd = -1, .timerfd = -1, .inotify_fd = -1};
  int rc = -1;
  st->phase = PHASE_RUNNING;
  if (st->started_at_us == 0)
    st->started_at_us = now_realtime_us();
  if (opts->resume)
    prepare_resume(st, opts->supervised);
  if (opts->resume && st->shutdown != NULL) {
    /* A stop or terminate the dead controller had begun still holds. */
    c.stopping = true;
    c.terminating = strcmp(st->shutdown, "Terminate") == 0;
  }
  st->exit_handler.declared = wf->on_exit != NULL;
  int64_t override_ms = 0;
  if (fault_plan_deadline(opts->faults, "workflow", FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS,
                          &override_ms) == 1) {
    c.deadline_us = deadline_start(st, opts) + (int64_t)((double)override_ms * 1000.0 * opts->time_scale);
  } else if (wf->active_deadline_seconds != NULL) {
    double secs = 0;
    if (parse_duration_seconds(wf->active_deadline_seconds, true, &secs) < 0) {
      ep_error_set(err, EP_EXIT_USAGE, "spec.activeDeadlineSeconds: '%s' is not a number of "
                                       "seconds", wf->active_deadline_seconds);
      goto out;
    }
    c.deadline_us = deadline_start(st, opts) + (int64_t)(secs * 1e6 * opts->time_scale);
  }
  init_globals(&c);
  if (mkdir(opts->work_dir, 0700) < 0 && errno != EEXIST) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create %s", opts->work_dir);
    goto out;
  }
  if (setup_loop(&c) < 0)
    goto out;
  if (opts->resume && opts->supervised)
    adopt_pods(&c);
  reconcile(&c);
  renew_lease(&c);
  arm_wakeup(&c);
  while (!c.internal_error && !run_finished(&c)) {
    struct epoll_event events[32];
    int n = epoll_wait(c.epfd, events, 32, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "epoll_wait");
      goto out;
    }
    for (int i = 0; i < n; i++) {
      struct watch *w = events[i].data.ptr;
      switch (w->kind) {
      case WATCH_SIGNAL:
        on_signal(&c);
        break;
      case WATCH_TIMER:
        on_timer(&c);
        break;
      case WATCH_CONTROL:
        on_control(&c);
        break;
      case WATCH_PIDFD:
        reap_pod(&c, w->pod);
        break;
      case WATCH_STDOUT:
        drain_pipe(&c, w->pod, 1);
        break;
      case WATCH_STDERR:
        drain_pipe(&c, w->pod, 2);
        break;
      case WATCH_NOTIFY:
        answer_syscall(&c, w->pod, events[i].events);
        break;
      case WATCH_OUTPUT_FILES:
        drain_output_files(&c);
        break;
      }
    }
    /* Settle pods only after the whole batch: a pod freed here may still
     * have events later in the same batch. */
    for (struct pod *p = c.pods, *next; p; p = next) {
      next = p->next;
      maybe_finish_pod(&c, p);
    }
    reconcile(&c);
    renew_lease(&c);
    persist_state(&c, false);
    arm_wakeup(&c);
  }
  if (c.internal_error) {
    if (err != NULL && *err == NULL)
      ep_error_set(err, EP_EXIT_INTERNAL, "the controller failed");
    goto out;
  }
  rc = 0;
out:
  kill_all_pods(&c);
  remove_tree(opts->work_dir);
  var_scope_clear(&c.globals);
  exec_memo_clear(&c.memo);
  if (c.epfd >= 0)
    close(c.epfd);
  if (c.sigfd >= 0)
    close(c.sigfd);
  if (c.timerfd >= 0)
    close(c.timerfd);
  if (c.inotify_fd >= 0)
    close(c.inotify_fd);
  return rc;
}
