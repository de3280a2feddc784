#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handler_runs.h"
#include "ledger.h"
#include "../reports/report_json.h"
#include "../runner/state_load.h"
#include "../runner/idempotency.h"

struct supervisor {
  const struct supervise_request *req;
  struct ledger *ledger;
  char *state_path, *final_path;
  json_t *actions; /* what the watchdog did, for the report */
  struct handler_runs handler_runs; /* executions, as a witness of its steps counts them */
  bool handler_done;
  bool handler_intent_open; /* an exit-handler intent without its outcome on record */
  bool compensated;
  enum node_phase compensation_phase;
  /* controller-hang and the lease */
  int64_t lease_renewed_ms; /* monotonic: the controller's last journal line */
  int64_t wake_at_ms;       /* monotonic: when the hung controller is woken, 0: not hung */
  bool hung;                /* the lease ran out: the controller was fenced as hung */
  bool hang_survived;       /* it was stopped and woken within its lease */
};

/* Supervised controllers renew a lease; a controller-hang fault sets its
 * length, otherwise it is long enough never to be mistaken on a busy machine. */
static int lease_ms_of(const struct supervise_request *req) {
  if (req->crash != NULL && req->crash->action == FAULT_CONTROLLER_HANG)
    return (int)req->crash->lease_ms;
  return 10000;
}

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *path_in(const char *dir, const char *name) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0)
    abort();
  return p;
}

static void action(struct supervisor *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void action(struct supervisor *s, const char *fmt, ...) {
  char *text = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&text, fmt, ap) < 0)
    abort();
  va_end(ap);
  json_array_append_new(s->actions, json_string(text));
  if (s->req->opts.progress)
    fprintf(s->req->opts.progress, "  watchdog: %s\n", text);
  free(text);
}

static int record(struct supervisor *s, uint16_t type, json_t *payload, bool sync, ep_error **err) {
  char *text = json_dumps(payload, JSON_COMPACT);
  json_decref(payload);
  int rc = ledger_append(s->ledger, type, text, strlen(text), sync ? LEDGER_SYNC : LEDGER_NOSYNC,
                         NULL, err);
  free(text);
  return rc;
}

static uint16_t event_type(const char *name) {
  static const struct {
    const char *name;
    uint16_t type;
  } map[] = {{"node-started", LEDGER_T_NODE_STARTED},
             {"node-finished", LEDGER_T_NODE_FINISHED},
             {"exit-handler-intent", LEDGER_T_EXIT_HANDLER_INTENT},
             {"exit-handler-done", LEDGER_T_EXIT_HANDLER_DONE},
             {"workflow-finished", LEDGER_T_WORKFLOW_FINISHED}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (strcmp(map[i].name, name) == 0)
      return map[i].type;
  return 0;
}

/* The controller process: runs the workflow and reports through the pipes. */
static _Noreturn void controller_main(struct supervisor *s, int journal_fd, int ack_fd,
                                      struct run_state *st, bool resume, bool crash) {
  struct controller_options o = s->req->opts;
  o.supervised = true;
  o.journal_fd = journal_fd;
  o.ack_fd = ack_fd;
  o.crash_at = crash && s->req->crash ? s->req->crash->crash_at : NULL;
  o.hang_ms = crash && s->req->crash && s->req->crash->action == FAULT_CONTROLLER_HANG
                  ? s->req->crash->duration_ms
                  : 0;
  o.lease_ms = lease_ms_of(s->req);
  o.state_path = s->state_path;
  o.resume = resume;
  ep_error *e = NULL;
  int rc = controller_run(s->req->wf, s->req->sandbox, &o, st, &e);
  if (rc == 0)
    rc = report_write_json(st, s->final_path, &e);
  if (rc < 0 && e != NULL)
    ep_error_print(e, stderr);
  /* No clean-up on the way out: the run's cgroups belong to the supervisor. */
  _exit(rc == 0 ? 0 : EP_EXIT_INTERNAL);
}

/* The controller-hang fault: the controller announces it is about to stop
 * itself; the supervisor records the fault and will wake it. */
static int hang_announced(struct supervisor *s, int ack_fd, ep_error **err) {
  const struct fault *f = s->req->crash;
  s->wake_at_ms = mono_ms() + (f ? f->duration_ms : 0);
  if (record(s, LEDGER_T_FAULT_INJECTED,
             json_pack("{s:s, s:s, s:I, s:I}", "action", "controller-hang", "at",
                       f ? f->crash_at : "", "durationMs", (json_int_t)(f ? f->duration_ms : 0),
                       "leaseMs", (json_int_t)(f ? f->lease_ms : 0)),
             true, err) < 0)
    return -1;
  return write(ack_fd, "k", 1) == 1 ? 0 : -1;
}

static int journal_line(struct supervisor *s, char *line, int ack_fd, ep_error **err) {
  char *fields[5] = {0}, *save = NULL, *p = line;
  for (int i = 0; i < 5; i++, p = NULL)
    fields[i] = strtok_r(p, "\t", &save);
  s->lease_renewed_ms = mono_ms();
  if (fields[0] != NULL && strcmp(fields[0], "lease") == 0)
    return write(ack_fd, "k", 1) == 1 ? 0 : -1;
  if (fields[0] != NULL && strcmp(fields[0], "hang") == 0)
    return hang_announced(s, ack_fd, err);
  uint16_t type = fields[0] ? event_type(fields[0]) : 0;
  if (type == 0)
    return 0;
  if (type == LEDGER_T_NODE_STARTED)
    handler_runs_note_launch(&s->handler_runs, fields[2]);
  if (type == LEDGER_T_EXIT_HANDLER_INTENT) {
    handler_runs_note_intent(&s->handler_runs);
    s->handler_intent_open = true;
  }
  if (type == LEDGER_T_EXIT_HANDLER_DONE) {
    s->handler_intent_open = false;
    if (s->handler_done) {
      /* A restarted controller reports an outcome already on record: the
       * ledger keeps exactly one terminal record per handler. */
      action(s, "the exit handler's outcome was reported again: already on record, not recorded twice");
      return write(ack_fd, "k", 1) == 1 ? 0 : -1;
    }
    s->handler_done = true;
  }
  json_t *payload = json_object();
  if (fields[2] && *fields[2])
    json_object_set_new(payload, "node", json_string(fields[2]));
  if (fields[3] && *fields[3])
    json_object_set_new(payload, "displayName", json_string(fields[3]));
  if (fields[4] && *fields[4])
    json_object_set_new(payload, "phase", json_string(fields[4]));
  /* A ledger that failed acknowledges nothing more: the controller stops. */
  if (record(s, type, payload, fields[1] && fields[1][0] == '1', err) < 0)
    return -1;
  return write(ack_fd, "k", 1) == 1 ? 0 : -1;
}

/* Journal the controller's events until it exits; signals meant for the
 * run (Ctrl-C, stop, terminate) are passed on to it.  Returns its wait
 * status. */
/* The lease ran out: kill the controller through its pidfd and confirm
 * its death (the pidfd turns readable) before anyone acts in its place. */
static void fence_hung(struct supervisor *s, int pidfd, int lease_ms) {
  s->hung = true;
  action(s, "lease expired (no journal line for %d ms): the controller is hung", lease_ms);
  (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  while (poll(&p, 1, -1) < 0 && errno == EINTR)
    ;
  action(s, "fenced the hung controller: SIGKILL through its pidfd, death confirmed");
}

/* The hang is over: SIGCONT through the pidfd, which cannot reach a
 * recycled PID.  A fenced controller is dead and stays so. */
static void wake_hung(struct supervisor *s, int pidfd) {
  int64_t now = mono_ms();
  if (s->wake_at_ms > now)
    usleep((useconds_t)(s->wake_at_ms - now) * 1000);
  s->wake_at_ms = 0;
  if (syscall(SYS_pidfd_send_signal, pidfd, SIGCONT, NULL, 0) == 0 && !s->hung) {
    s->hang_survived = true;
    action(s, "woke the stopped controller (SIGCONT) within its lease: it carries on");
  } else
    action(s, "woke the hung controller (SIGCONT through its pidfd): it was already dead, "
              "fenced; it did nothing after");
}

/* Steps are born children of the supervisor (CLONE_PARENT: they outlive a
 * controller crash, to be adopted, but not the supervisor, their
 * parent-death signal): their inits are reaped here as they end.  The
 * controller (`keep`) is left to follow_controller's own waitpid. */
static void reap_steps(pid_t keep) {
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) < 0 || si.si_pid == 0 ||
        si.si_pid == keep)
      return;
    (void)waitid(P_PID, (id_t)si.si_pid, &si, WEXITED | WNOHANG | __WALL);
  }
}

static int follow_controller(struct supervisor *s, pid_t pid, int journal_fd, int ack_fd,
                             ep_error **err) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* our unreaped child: cannot be recycled */
  int lease_ms = lease_ms_of(s->req);
  s->hung = false;
  s->lease_renewed_ms = mono_ms();
  s->wake_at_ms = 0;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigaddset(&mask, SIGCHLD);
  sigset_t chld, old_mask;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old_mask);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
  reap_steps(pid);
  char buf[8192];
  size_t len = 0;
  int rc = 0;
  for (;;) {
    struct pollfd pfd[2] = {{.fd = journal_fd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    int timeout = -1;
    int64_t now = mono_ms();
    if (lease_ms > 0 && pidfd >= 0 && !s->hung)
      timeout = (int)(s->lease_renewed_ms + lease_ms > now ? s->lease_renewed_ms + lease_ms - now : 0);
    if (s->wake_at_ms > 0 && pidfd >= 0) {
      int until_wake = (int)(s->wake_at_ms > now ? s->wake_at_ms - now : 0);
      if (timeout < 0 || until_wake < timeout)
        timeout = until_wake;
    }
    int ready = poll(pfd, sigfd >= 0 ? 2 : 1, timeout);
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (ready == 0) {
      now = mono_ms();
      if (s->wake_at_ms > 0 && now >= s->wake_at_ms)
        wake_hung(s, pidfd);
      else if (lease_ms > 0 && now >= s->lease_renewed_ms + lease_ms && !s->hung) {
        fence_hung(s, pidfd, lease_ms);
        if (s->wake_at_ms > 0)
          wake_hung(s, pidfd);
      }
      continue;
    }
    if (sigfd >= 0 && (pfd[1].revents & POLLIN)) {
      struct signalfd_siginfo si;
      if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
          reap_steps(pid);
        else
          kill(pid, (int)si.ssi_signo);
      }
    }
    if (!(pfd[0].revents & (POLLIN | POLLHUP)))
      continue;
    ssize_t n = read(journal_fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0)
      break; /* the controller closed its end: it exited or died */
    len += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + len - start))) != NULL) {
      *nl = '\0';
      if (rc == 0 && journal_line(s, start, ack_fd, err) < 0)
        rc = -1;
      start = nl + 1;
    }
    len = (size_t)(buf + len - start);
    memmove(buf, start, len);
    if (len == sizeof(buf) - 1)
      len = 0; /* an absurdly long line: dropped rather than wedging the journal */
  }
  if (sigfd >= 0)
    close(sigfd);
  if (pidfd >= 0)
    close(pidfd);
  close(journal_fd);
  close(ack_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  reap_steps(0);
  sigprocmask(SIG_SETMASK, &old_mask, NULL);
  return rc < 0 ? -1 : status;
}

static int run_generation(struct supervisor *s, struct run_state *st, bool resume, bool crash,
                          int *status, ep_error **err) {
  int journal[2], ack[2];
  if (pipe2(journal, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "pipe");
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "fork of the controller");
  if (pid == 0) {
    /* Its own process group: a terminal's Ctrl-C reaches the supervisor
     * alone, which passes it on once.  And it dies with the supervisor. */
    setpgid(0, 0);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
      _exit(EP_EXIT_INTERNAL);
    close(journal[0]);
    close(ack[1]);
    controller_main(s, journal[1], ack[0], st, resume, crash);
  }
  close(journal[1]);
  close(ack[0]);
  *status = follow_controller(s, pid, journal[0], ack[1], err);
  return *status < 0 ? -1 : 0;
}

/* After a crash: nothing of the dead controller may act any more. */
static void fence(struct supervisor *s) {
  int groups = sandbox_context_fence_foreign(s->req->sandbox);
  int reaped = 0;
  while (waitpid(-1, NULL, WNOHANG) > 0)
    reaped++;
  action(s, "fenced the dead controller's steps: %d step group%s removed, %d process%s reaped",
         groups, groups == 1 ? "" : "s", reaped, reaped == 1 ? "" : "es");
}

/* The exit handler, run by the watchdog when the record does not show it
 * finished: intent durable first, outcome durable after (a watchdog that
 * dies between the two leaves an intent the next one resolves). */
static int compensate(struct supervisor *s, struct run_state *st, ep_error **err) {
  const struct workflow *wf = s->req->wf;
  const char *tmpl = s->req->compensate ? s->req->compensate : wf->on_exit;
  if (s->handler_done) {
    action(s, "the ledger shows the exit handler finished: nothing to compensate");
    return 0;
  }
  if (tmpl == NULL) {
    action(s, "the workflow declares no exit handler: nothing to compensate");
    return 0;
  }
  if (s->handler_intent_open && s->req->delivery == DELIVERY_AT_MOST_ONCE) {
    /* It may have run: under at-most-once it is not run again. */
    action(s, "the exit handler started but its outcome is not on record; delivery is "
              "at-most-once: not run again, outcome unknown");
    return record(s, LEDGER_T_OUTCOME_UNKNOWN,
                  json_pack("{s:s, s:s}", "reason", "exit-handler intent without outcome",
                            "delivery", "at-most-once"),
                  true, err);
  }
  char *key = compensation_key(st->workflow_uid);
  const char *status = compensation_status(st);
  json_t *intent = json_pack("{s:s, s:i, s:s, s:s, s:s}", "key", key, "attempt", 1,
                             "workflowStatus", status, "template", tmpl, "delivery",
                             delivery_policy_name(s->req->delivery));
  if (record(s, LEDGER_T_COMPENSATION_INTENT, intent, true, err) < 0) {
    free(key);
    return -1;
  }
  action(s, "controller down and the exit handler not finished on record: running %s with "
            "{{workflow.status}}=%s, EXITPROBE_IDEMPOTENCY_KEY=%s",
         tmpl, status, key);
  int rc = compensation_run(wf, tmpl, s->req->sandbox, &s->req->opts, key, status, st,
                            &s->compensation_phase, err);
  if (rc == 0) {
    s->compensated = true;
    rc = record(s, LEDGER_T_COMPENSATION_DONE,
                json_pack("{s:s, s:s, s:i}", "key", key, "phase",
                          node_phase_name(s->compensation_phase), "attempts", 1),
                true, err);
    action(s, "compensation finished: %s", node_phase_name(s->compensation_phase));
  }
  free(key);
  return rc;
}

/* Everything `exitprobe watchdog RUN_DIR` needs to reconcile this run if
 * the supervisor dies: how to reload the workflow, the run's identity, its
 * cgroups (paths, not PIDs) and its delivery policy. */
static json_t *run_started_payload(const struct supervise_request *req) {
  char *source = req->source_file ? realpath(req->source_file, NULL) : NULL;
  json_t *params = json_object();
  for (size_t i = 0; i < req->n_params; i++)
    json_object_set_new(params, req->params[i].name, json_string(req->params[i].value));
  json_t *cgroups = json_array();
  for (size_t i = 0; sandbox_context_cgroup_path(req->sandbox, i) != NULL; i++)
    json_array_append_new(cgroups, json_string(sandbox_context_cgroup_path(req->sandbox, i)));
  json_t *p = json_pack("{s:s, s:s, s:s?, s:s, s:o, s:o, s:s, s:f, s:i, s:b, s:s?}", "workflow",
                        req->wf->name, "uid", req->fresh->workflow_uid ? req->fresh->workflow_uid : "",
                        "source", source, "kind", req->source_is_scenario ? "scenario" : "workflow",
                        "parameters", params, "cgroups", cgroups, "delivery",
                        delivery_policy_name(req->delivery), "timeScale",
                        req->opts.time_scale > 0 ? req->opts.time_scale : 1.0, "graceMs",
                        req->opts.grace_period_ms, "networkIsolated", req->opts.network_isolated,
                        "compensate", req->compensate);
  free(source);
  return p;
}

static const char *mode_name(enum fault_crash_then t) {
  return t == CRASH_THEN_RESTART ? "restart" : t == CRASH_THEN_LOSE_STATE ? "lose-state" : "stay-down";
}

int supervise(const struct supervise_request *req, struct run_state **out, ep_error **err) {
  struct supervisor s = {.req = req, .actions = json_array()};
  handler_runs_set_workflow(&s.handler_runs, req->wf->name);
  struct run_state *st = req->fresh, *result = NULL;
  char *uid = NULL;
  int rc = -1;
  s.state_path = path_in(req->run_dir, "state.json");
  s.final_path = path_in(req->run_dir, "final.json");
  char *ledger_path = path_in(req->run_dir, "ledger.log");
  struct ledger_options lo = {.flags = LEDGER_CREATE | LEDGER_EXCL};
  struct ledger_recovery rep;
  if (ledger_open(ledger_path, &lo, &s.ledger, &rep, err) < 0)
    goto out;
  if (record(&s, LEDGER_T_RUN_STARTED, run_started_payload(req), true, err) < 0)
    goto out;
  /* Steps of a dead controller are re-parented here, to be reaped. */
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  uid = strdup(req->fresh->workflow_uid ? req->fresh->workflow_uid : "");
  bool resume = false, crash_armed = true;
  for (int generation = 0;; generation++) {
    if (record(&s, LEDGER_T_CONTROLLER_STARTED, json_pack("{s:i}", "generation", generation),
               true, err) < 0)
      goto out;
    int status = 0;
    if (run_generation(&s, st, resume, crash_armed, &status, err) < 0)
      goto out;
    if (s.hang_survived && crash_armed) {
      char detail[512];
      snprintf(detail, sizeof(detail),
               "controller stopped (SIGSTOP) at %s for %" PRId64 " ms, within its %" PRId64
               " ms lease: woken, it carried on",
               req->crash->crash_at, req->crash->duration_ms, req->crash->lease_ms);
      fault_plan_mark_fired(req->plan, req->crash, detail);
      crash_armed = false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      run_state_free(st);
      st = NULL;
      if (run_state_load_file(s.final_path, &result, err) < 0)
        goto out;
      break;
    }
    if (!WIFSIGNALED(status)) {
      ep_error_set(err, EP_EXIT_INTERNAL, "the controller failed (exit status %d)",
                   WEXITSTATUS(status));
      goto out;
    }
    /* Death, seen through the kernel (the child's wait status), not a PID file. */
    /* A death nobody injected (--run-dir, a kill storm) is met as Argo's
     * Deployment meets it: a new controller with the persisted state. */
    enum fault_crash_then then = req->crash ? req->crash->crash_then : CRASH_THEN_RESTART;
    if (crash_armed && req->crash != NULL) {
      char detail[512];
      if (s.hung)
        snprintf(detail, sizeof(detail),
                 "controller stopped (SIGSTOP) at %s; its %" PRId64 " ms lease expired: fenced "
                 "(SIGKILL, death confirmed through its pidfd), woken after %" PRId64
                 " ms already dead; then %s",
                 req->crash->crash_at, req->crash->lease_ms, req->crash->duration_ms,
                 mode_name(then));
      else
        snprintf(detail, sizeof(detail), "controller killed by SIG%s at %s; then %s",
                 sigabbrev_np(WTERMSIG(status)), req->crash->crash_at, mode_name(then));
      fault_plan_mark_fired(req->plan, req->crash, detail);
    }
    crash_armed = false;
    ledger_set_epoch(s.ledger, ledger_max_epoch(s.ledger) + 1);
    if (record(&s, LEDGER_T_TAKEOVER,
               json_pack("{s:s, s:s}", "reason", s.hung ? "controller hung" : "controller died", "then",
                         mode_name(then)),
               true, err) < 0)
      goto out;
    if (!s.hung)
      action(&s, "controller died (SIG%s)", sigabbrev_np(WTERMSIG(status)));
    struct run_state *persisted = NULL;
    ep_error *load_err = NULL;
    if (run_state_load_file(s.state_path, &persisted, &load_err) < 0) {
      ep_error_free(&load_err);
      persisted = NULL;
    }
    /* Pods outlive a crashed Argo controller and its successor adopts them
     * (it fences what it does not adopt); with no state to adopt them into,
     * or nobody to come, they are fenced here. */
    if (then == CRASH_THEN_RESTART && persisted != NULL)
      action(&s, "left the dead controller's steps running, for the new controller to adopt");
    else
      fence(&s);
    if (then == CRASH_THEN_STAY_DOWN) {
      result = persisted ? persisted : st;
      if (result == st)
        st = NULL;
      run_state_free(st);
      st = NULL;
      if (compensate(&s, result, err) < 0)
        goto out;
      free(result->message);
      result->message = strdup("the controller stayed down: the workflow did not finish");
      result->phase = PHASE_RUNNING;
      break;
    }
    /* A new controller: with the persisted state (restart) or none (lose-state). */
    run_state_free(st);
    if (then == CRASH_THEN_RESTART && persisted != NULL) {
      st = persisted;
      resume = true;
      action(&s, "restarted the controller with its persisted state");
    } else {
      run_state_free(persisted);
      st = run_state_new();
      st->workflow_name = strdup(req->wf->name);
      st->workflow_namespace = strdup(req->wf->namespace_);
      st->workflow_uid = strdup(uid);
      resume = false;
      unlink(s.state_path);
      action(&s, "restarted the controller with its state lost: the workflow starts over");
    }
  }
  /* The record decides what the report says about the exit handler. */
  struct exit_handler_record *eh = &result->exit_handler;
  eh->declared = req->wf->on_exit != NULL;
  eh->runs = handler_runs_count(&s.handler_runs) + (s.compensated ? 1 : 0);
  eh->ran = eh->runs > 0;
  if (s.compensated) {
    eh->by = BY_WATCHDOG;
    eh->phase = s.compensation_phase;
  }
  if (record(&s, LEDGER_T_RUN_FINISHED,
             json_pack("{s:s, s:i}", "phase", node_phase_name(result->phase), "handlerRuns",
                       eh->runs),
             true, err) < 0)
    goto out;
  for (size_t i = 0; i < json_array_size(s.actions); i++)
    run_state_add_watchdog_action(result, json_string_value(json_array_get(s.actions, i)));
  free(result->watchdog_delivery);
  result->watchdog_delivery = strdup(delivery_policy_name(req->delivery));
  *out = result;
  result = NULL;
  rc = 0;
out:
  free(uid);
  run_state_free(st);
  run_state_free(result);
  json_decref(s.actions);
  handler_runs_free(&s.handler_runs);
  ledger_close(&s.ledger);
  free(ledger_path);
  free(s.state_path);
  free(s.final_path);
  return rc;
}
