#include "reconcile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "compensation.h"
#include "handler_runs.h"
#include "ledger.h"
#include "../injector/scenario.h"
#include "../reports/report_json.h"
#include "../runner/cgroup.h"
#include "../runner/run_once.h"
#include "../runner/sandbox.h"
#include "../runner/state_load.h"
#include "../runner/xalloc.h"

/* What the ledger says about the run. */
struct run_record {
  json_t *started; /* the run-started payload */
  int handler_intents, handler_done;
  struct handler_runs handler_runs; /* the controller's executions of the handler */
  int comp_intents, comp_done, outcome_unknown;
  bool workflow_finished, run_finished;
  char *final_phase; /* of workflow-finished, when recorded */
  char *handler_phase;
};

struct watchdog {
  const struct reconcile_options *o;
  struct ledger *ledger;
  json_t *actions;
};

static void say(struct watchdog *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct watchdog *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = NULL;
  if (vasprintf(&text, fmt, ap) < 0)
    abort();
  va_end(ap);
  json_array_append_new(w->actions, json_string(text));
  if (w->o->progress != NULL)
    fprintf(w->o->progress, "  watchdog: %s\n", text);
  free(text);
}

static int record(struct watchdog *w, uint16_t type, json_t *payload, ep_error **err) {
  char *text = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  int rc = ledger_append(w->ledger, type, text, strlen(text), LEDGER_SYNC, NULL, err);
  free(text);
  return rc;
}

static char *payload_string(const struct ledger_record *rec, const char *key) {
  json_t *j = json_loadb(rec->payload, rec->len, 0, NULL);
  const char *v = json_string_value(json_object_get(j, key));
  char *out = v ? strdup(v) : NULL;
  json_decref(j);
  return out;
}

static const char *started_str(const struct run_record *r, const char *key) {
  return json_string_value(json_object_get(r->started, key));
}

static int scan_record(void *ctx, const struct ledger_record *rec, ep_error **err) {
  (void)err;
  struct run_record *r = ctx;
  switch (rec->type) {
  case LEDGER_T_RUN_STARTED:
    json_decref(r->started);
    r->started = json_loadb(rec->payload, rec->len, 0, NULL);
    handler_runs_set_workflow(&r->handler_runs, started_str(r, "workflow"));
    break;
  case LEDGER_T_NODE_STARTED: {
    char *node = payload_string(rec, "node");
    handler_runs_note_launch(&r->handler_runs, node);
    free(node);
    break;
  }
  case LEDGER_T_EXIT_HANDLER_INTENT:
    r->handler_intents++;
    handler_runs_note_intent(&r->handler_runs);
    break;
  case LEDGER_T_EXIT_HANDLER_DONE:
    r->handler_done++;
    break;
  case LEDGER_T_COMPENSATION_INTENT:
    r->comp_intents++;
    break;
  case LEDGER_T_COMPENSATION_DONE:
    r->comp_done++;
    free(r->handler_phase);
    r->handler_phase = payload_string(rec, "phase");
    break;
  case LEDGER_T_OUTCOME_UNKNOWN:
    r->outcome_unknown++;
    break;
  case LEDGER_T_WORKFLOW_FINISHED:
    r->workflow_finished = true;
    free(r->final_phase);
    r->final_phase = payload_string(rec, "phase");
    break;
  case LEDGER_T_RUN_FINISHED:
    r->run_finished = true;
    break;
  default:
    break;
  }
  return 0;
}

static void run_record_free(struct run_record *r) {
  json_decref(r->started);
  handler_runs_free(&r->handler_runs);
  free(r->final_phase);
  free(r->handler_phase);
}

/* The write lock is the liveness test: the kernel drops it when the last
 * process holding the ledger open (the supervisor, its controller) is gone. */
static int open_locked(struct watchdog *w, const char *path, struct ledger_recovery *rep,
                       ep_error **err) {
  struct ledger_options lo = {0};
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    ep_error *e = NULL;
    if (ledger_open(path, &lo, &w->ledger, rep, &e) == 0)
      return 0;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    if (e->os_errno != EWOULDBLOCK || ms >= w->o->lock_wait_ms) {
      if (e->os_errno == EWOULDBLOCK) {
        ep_error_free(&e);
        return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                            "%s: the run is live (its supervisor holds the ledger's lock); "
                            "nothing done",
                            w->o->run_dir);
      }
      *err = e;
      return -1;
    }
    ep_error_free(&e);
    usleep(20000);
  }
}

static int fence_run(struct watchdog *w, const struct run_record *r,
                     struct reconcile_summary *sum, ep_error **err) {
  json_t *groups = json_object_get(r->started, "cgroups");
  for (size_t i = 0; i < json_array_size(groups); i++) {
    const char *path = json_string_value(json_array_get(groups, i));
    if (path == NULL)
      continue;
    int killed = 0;
    int removed = ep_cg_fence_path(path, &killed);
    if (removed < 0)
      return ep_error_set(err, EP_EXIT_INTERNAL, "cannot fence the run's cgroup %s: still busy",
                          path);
    sum->cgroups_removed += removed;
    sum->processes_killed += killed;
  }
  say(w, "fenced the run: %d process%s killed through its cgroups, %d group%s removed",
      sum->processes_killed, sum->processes_killed == 1 ? "" : "es", sum->cgroups_removed,
      sum->cgroups_removed == 1 ? "" : "s");
  return 0;
}

/* *sc (a scenario run) holds what an inline compensate: template points
 * into: it is freed after the workflow. */
static int load_workflow(const struct run_record *r, struct workflow **wf, char **compensate,
                         struct scenario **sc, ep_error **err) {
  const char *source = started_str(r, "source");
  if (source == NULL)
    return ep_error_set(err, EP_EXIT_USAGE, "the ledger does not say which file the run ran");
  const char *tmpl = started_str(r, "compensate");
  *compensate = tmpl ? strdup(tmpl) : NULL;
  if (strcmp(started_str(r, "kind") ? started_str(r, "kind") : "", "scenario") == 0) {
    struct ydoc *doc = NULL;
    if (scenario_load_file(source, sc, err) < 0 || scenario_load_workflow_doc(*sc, &doc, err) < 0)
      return -1;
    if (workflow_from_doc(doc, (*sc)->overrides, (*sc)->n_params, wf, err) < 0) {
      ydoc_free(doc);
      return -1;
    }
    return scenario_add_compensate(*sc, *wf, err);
  }
  json_t *params = json_object_get(r->started, "parameters");
  size_t n = json_object_size(params), i = 0;
  struct param_override *ov = xcalloc(n ? n : 1, sizeof(*ov));
  const char *k;
  json_t *v;
  json_object_foreach(params, k, v) {
    ov[i].name = k;
    ov[i++].value = json_string_value(v);
  }
  int rc = workflow_load_file(source, ov, i, wf, err);
  free(ov);
  return rc;
}

/* The base of the report: the controller's last persisted state. */
static struct run_state *report_base(const struct watchdog *w, const struct run_record *r) {
  struct run_state *st = NULL;
  const char *names[] = {"final.json", "state.json"};
  for (size_t i = 0; i < 2 && st == NULL; i++) {
    char *p = xasprintf("%s/%s", w->o->run_dir, names[i]);
    ep_error *e = NULL;
    if (run_state_load_file(p, &st, &e) < 0)
      ep_error_free(&e);
    free(p);
  }
  if (st == NULL) {
    st = run_state_new();
    st->workflow_name = strdup(started_str(r, "workflow") ? started_str(r, "workflow") : "");
    st->workflow_uid = strdup(started_str(r, "uid") ? started_str(r, "uid") : "");
    st->phase = PHASE_RUNNING;
  }
  return st;
}

static int run_compensation(struct watchdog *w, struct run_record *r, struct run_state *st,
                            enum delivery_policy delivery, struct reconcile_summary *sum,
                            ep_error **err) {
  struct workflow *wf = NULL;
  char *tmpl = NULL, *key = NULL, *work = NULL, *argosay = NULL;
  struct sandbox_context *sandbox = NULL;
  struct scenario *sc = NULL;
  int rc = -1;
  if (load_workflow(r, &wf, &tmpl, &sc, err) < 0)
    goto out;
  const char *name = tmpl ? tmpl : wf->on_exit;
  if (name == NULL) {
    say(w, "the workflow declares no exit handler: nothing to compensate");
    rc = 0;
    goto out;
  }
  struct sandbox_options so = {.require_namespaces = true, .run_name = wf->name};
  if (sandbox_context_new(&so, &sandbox, err) < 0)
    goto out;
  key = compensation_key(started_str(r, "uid"));
  const char *status = r->final_phase != NULL && strcmp(r->final_phase, "Succeeded") == 0 ? "Succeeded"
                       : r->final_phase != NULL && strcmp(r->final_phase, "Failed") == 0 ? "Failed"
                       : r->final_phase != NULL ? "Error"
                                                : compensation_status(st);
  int attempt = r->comp_intents + 1;
  if (record(w, LEDGER_T_COMPENSATION_INTENT,
             json_pack("{s:s, s:i, s:s, s:s, s:s}", "key", key, "attempt", attempt,
                       "workflowStatus", status, "template", name, "delivery",
                       delivery_policy_name(delivery)),
             err) < 0)
    goto out;
  r->comp_intents++;
  say(w, "the exit handler did not finish on record: running %s (attempt %d) with "
         "{{workflow.status}}=%s, EXITPROBE_IDEMPOTENCY_KEY=%s",
      name, attempt, status, key);
  work = xasprintf("%s/steps", w->o->run_dir);
  argosay = find_argosay();
  json_t *scale = json_object_get(r->started, "timeScale");
  struct controller_options co = {
      .images = w->o->images,
      .n_images = w->o->n_images,
      .argosay_path = argosay,
      .time_scale = json_is_number(scale) ? json_number_value(scale) : 1.0,
      .grace_period_ms = (int)json_integer_value(json_object_get(r->started, "graceMs")),
      .network_isolated = json_is_true(json_object_get(r->started, "networkIsolated")),
      .progress = NULL,
      .work_dir = work,
  };
  enum node_phase phase = PHASE_ERROR;
  if (compensation_run(wf, name, sandbox, &co, key, status, st, &phase, err) < 0)
    goto out;
  if (record(w, LEDGER_T_COMPENSATION_DONE,
             json_pack("{s:s, s:s, s:i}", "key", key, "phase", node_phase_name(phase),
                       "attempts", attempt),
             err) < 0)
    goto out;
  r->comp_done++;
  free(r->handler_phase);
  r->handler_phase = strdup(node_phase_name(phase));
  sum->compensated = true;
  say(w, "compensation finished: %s", node_phase_name(phase));
  rc = 0;
out:
  sandbox_context_free(sandbox);
  workflow_free(wf);
  scenario_free(sc);
  free(tmpl);
  free(key);
  free(work);
  free(argosay);
  return rc;
}

/* The handler's fate: already settled on record, not to be run again
 * (at-most-once), or run now. */
static int settle_handler(struct watchdog *w, struct run_record *r, struct run_state *st,
                          struct reconcile_summary *sum, ep_error **err) {
  const char *d = started_str(r, "delivery");
  enum delivery_policy delivery =
      d != NULL && strcmp(d, "at-most-once") == 0 ? DELIVERY_AT_MOST_ONCE : DELIVERY_AT_LEAST_ONCE;
  free(st->watchdog_delivery);
  st->watchdog_delivery = strdup(delivery_policy_name(delivery));
  if (r->handler_done + r->comp_done + r->outcome_unknown > 0) {
    say(w, "the ledger shows the exit handler's outcome: nothing to compensate");
    return 0;
  }
  bool open_intent = r->handler_intents + r->comp_intents > 0;
  if (open_intent && delivery == DELIVERY_AT_MOST_ONCE) {
    say(w, "the exit handler started but its outcome is not on record; delivery is "
           "at-most-once: not run again, outcome unknown");
    sum->outcome_unknown = true;
    r->outcome_unknown++;
    return record(w, LEDGER_T_OUTCOME_UNKNOWN,
                  json_pack("{s:s, s:s}", "reason", "intent without outcome", "delivery",
                            "at-most-once"),
                  err);
  }
  return run_compensation(w, r, st, delivery, sum, err);
}

static enum node_phase phase_named(const char *name) {
  for (int i = PHASE_PENDING; i <= PHASE_OMITTED; i++)
    if (strcmp(node_phase_name((enum node_phase)i), name) == 0)
      return (enum node_phase)i;
  return PHASE_ERROR;
}

static void finish_report(struct watchdog *w, const struct run_record *r, struct run_state *st) {
  struct exit_handler_record *eh = &st->exit_handler;
  eh->runs = handler_runs_count(&r->handler_runs) + r->comp_intents;
  eh->ran = eh->runs > 0;
  eh->declared = eh->declared || eh->ran || r->outcome_unknown > 0;
  if (r->comp_intents > 0) {
    eh->by = BY_WATCHDOG;
    if (r->handler_phase != NULL)
      eh->phase = phase_named(r->handler_phase);
  } else if (r->handler_intents > 0) {
    eh->by = BY_CONTROLLER;
  }
  if (!r->workflow_finished) {
    st->phase = PHASE_RUNNING;
    free(st->message);
    st->message = strdup("the supervisor died: the workflow did not finish");
  }
  for (size_t i = 0; i < json_array_size(w->actions); i++)
    run_state_add_watchdog_action(st, json_string_value(json_array_get(w->actions, i)));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void run_dir_release_steps(const char *run_dir) {
  char *steps = xasprintf("%s/steps", run_dir);
  DIR *d = opendir(steps);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *step = xasprintf("%s/%s", steps, e->d_name);
    (void)umount2(step, MNT_DETACH);
    free(step);
  }
  if (d != NULL)
    closedir(d);
  nftw(steps, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(steps);
}

int reconcile_run_dir(const struct reconcile_options *o, struct reconcile_summary *out,
                      ep_error **err) {
  struct watchdog w = {.o = o, .actions = json_array()};
  struct run_record r = {0};
  struct reconcile_summary sum = {0};
  struct run_state *st = NULL;
  char *path = xasprintf("%s/ledger.log", o->run_dir);
  char *report = o->report_path ? xstrdup(o->report_path) : xasprintf("%s/report.json", o->run_dir);
  int rc = -1;
  if (access(path, F_OK) < 0) {
    ep_error_set(err, EP_EXIT_USAGE, "%s: no ledger.log: not the run directory of a supervised run",
                 o->run_dir);
    goto out;
  }
  struct ledger_recovery rep;
  if (open_locked(&w, path, &rep, err) < 0)
    goto out;
  if (rep.status == LEDGER_RECOVERY_TRUNCATED) {
    sum.truncated_bytes = rep.truncated_bytes;
    say(&w, "cut a torn tail of %llu byte%s at offset %llu of the ledger (%s)",
        (unsigned long long)rep.truncated_bytes, rep.truncated_bytes == 1 ? "" : "s",
        (unsigned long long)rep.bad_offset, rep.reason ? rep.reason : "torn write");
  }
  if (ledger_foreach(w.ledger, scan_record, &r, err) < 0)
    goto out;
  if (r.started == NULL) {
    ep_error_set(err, EP_EXIT_USAGE, "%s: the ledger holds no run-started record", path);
    goto out;
  }
  sum.was_finished = r.run_finished;
  ledger_set_epoch(w.ledger, ledger_max_epoch(w.ledger) + 1);
  if (record(&w, LEDGER_T_WATCHDOG_STARTED,
             json_pack("{s:i, s:b, s:I}", "pid", (int)getpid(), "runFinished", r.run_finished,
                       "truncatedBytes", (json_int_t)rep.truncated_bytes),
             err) < 0)
    goto out;
  /* The lock is ours: no supervisor is left.  Fence before acting. */
  if (fence_run(&w, &r, &sum, err) < 0)
    goto out;
  if (!r.run_finished &&
      record(&w, LEDGER_T_TAKEOVER,
             json_pack("{s:s, s:i}", "reason", "supervisor gone", "epoch",
                       (int)ledger_epoch(w.ledger)),
             err) < 0)
    goto out;
  run_dir_release_steps(o->run_dir);
  if (r.run_finished) {
    say(&w, "the ledger shows the run finished: nothing to reconcile");
    if (access(report, F_OK) == 0) {
      /* Reconciled before: its report stands, written from the full state. */
      if (out != NULL)
        *out = sum;
      rc = 0;
      goto out;
    }
  }
  st = report_base(&w, &r);
  if (!r.run_finished && settle_handler(&w, &r, st, &sum, err) < 0)
    goto out;
  run_dir_release_steps(o->run_dir);
  finish_report(&w, &r, st);
  if (report_write_json(st, report, err) < 0)
    goto out;
  if (record(&w, LEDGER_T_CLEANUP_VERIFIED,
             json_pack("{s:i, s:i}", "procs", sum.processes_killed, "cgroupsRemoved",
                       sum.cgroups_removed),
             err) < 0)
    goto out;
  if (!r.run_finished &&
      record(&w, LEDGER_T_RUN_FINISHED,
             json_pack("{s:s, s:s, s:i}", "by", "watchdog", "phase", node_phase_name(st->phase),
                       "handlerRuns", st->exit_handler.runs),
             err) < 0)
    goto out;
  if (o->progress != NULL)
    fprintf(o->progress, "Report: %s\n", report);
  if (out != NULL)
    *out = sum;
  rc = 0;
out:
  run_state_free(st);
  run_record_free(&r);
  ledger_close(&w.ledger);
  json_decref(w.actions);
  free(path);
  free(report);
  return rc;
}

bool run_dir_needs_watchdog(const char *dir, bool *live) {
  char *path = xasprintf("%s/ledger.log", dir);
  *live = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    free(path);
    return false;
  }
  if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
    *live = errno == EWOULDBLOCK;
    close(fd);
    free(path);
    return true;
  }
  close(fd);
  struct ledger *l = NULL;
  struct ledger_options lo = {.flags = LEDGER_RDONLY};
  struct run_record r = {0};
  ep_error *e = NULL;
  bool unfinished = true; /* an unreadable ledger is left for a person to look at */
  if (ledger_open(path, &lo, &l, NULL, &e) == 0 && ledger_foreach(l, scan_record, &r, &e) == 0)
    unfinished = !r.run_finished;
  ep_error_free(&e);
  ledger_close(&l);
  run_record_free(&r);
  free(path);
  return unfinished;
}
