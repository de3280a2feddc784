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
#include <unistd.h>

#include "ledger.h"
#include "../reports/report_json.h"
#include "../runner/state_load.h"
#include "../runner/idempotency.h"

struct supervisor {
  const struct supervise_request *req;
  struct ledger *ledger;
  char *state_path, *final_path;
  json_t *actions; /* what the watchdog did, for the report */
  int handler_runs;
  bool handler_done;
  bool compensated;
  enum node_phase compensation_phase;
};

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
  o.crash_at = crash ? s->req->crash->crash_at : NULL;
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

static int journal_line(struct supervisor *s, char *line, int ack_fd, ep_error **err) {
  char *fields[5] = {0}, *save = NULL, *p = line;
  for (int i = 0; i < 5; i++, p = NULL)
    fields[i] = strtok_r(p, "\t", &save);
  uint16_t type = fields[0] ? event_type(fields[0]) : 0;
  if (type == 0)
    return 0;
  if (type == LEDGER_T_EXIT_HANDLER_INTENT)
    s->handler_runs++;
  if (type == LEDGER_T_EXIT_HANDLER_DONE)
    s->handler_done = true;
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
static int follow_controller(struct supervisor *s, pid_t pid, int journal_fd, int ack_fd,
                             ep_error **err) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
  char buf[8192];
  size_t len = 0;
  int rc = 0;
  for (;;) {
    struct pollfd pfd[2] = {{.fd = journal_fd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    if (poll(pfd, sigfd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (sigfd >= 0 && (pfd[1].revents & POLLIN)) {
      struct signalfd_siginfo si;
      if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        kill(pid, (int)si.ssi_signo);
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
  close(journal_fd);
  close(ack_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
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

/* A key the same across attempts and across controller, watchdog and the
 * idempotency check's second run (runner/idempotency.c). */
static char *idempotency_key(const struct run_state *st) {
  return exit_handler_idempotency_key(st->workflow_uid);
}

static const char *status_for_handler(const struct run_state *st) {
  const struct wf_node *entry = st->n_nodes ? st->nodes[0] : NULL;
  if (entry == NULL || !node_phase_completed(entry->phase))
    return "Error"; /* the run never finished: the machinery failed */
  return entry->phase == PHASE_SUCCEEDED ? "Succeeded"
         : entry->phase == PHASE_FAILED  ? "Failed"
                                         : "Error";
}

/* The exit handler, run by the watchdog when the record does not show it
 * finished: intent durable first, outcome durable after (a watchdog that
 * dies between the two leaves an intent the next one resolves). */
static int compensate(struct supervisor *s, struct run_state *st, ep_error **err) {
  const struct workflow *wf = s->req->wf;
  if (s->handler_done) {
    action(s, "the ledger shows the exit handler finished: nothing to compensate");
    return 0;
  }
  if (wf->on_exit == NULL) {
    action(s, "the workflow declares no exit handler: nothing to compensate");
    return 0;
  }
  char *key = idempotency_key(st);
  const char *status = status_for_handler(st);
  json_t *intent = json_pack("{s:s, s:i, s:s}", "key", key, "attempt", 1, "workflowStatus",
                             status);
  if (record(s, LEDGER_T_COMPENSATION_INTENT, intent, true, err) < 0) {
    free(key);
    return -1;
  }
  action(s, "controller down and the exit handler not finished on record: running %s with "
            "{{workflow.status}}=%s, EXITPROBE_IDEMPOTENCY_KEY=%s",
         wf->on_exit, status, key);
  struct workflow comp = *wf; /* shallow: the handler as the entrypoint, nothing after it */
  comp.entrypoint = wf->on_exit;
  comp.on_exit = NULL;
  char *env = NULL;
  if (asprintf(&env, "EXITPROBE_IDEMPOTENCY_KEY=%s", key) < 0)
    abort();
  struct controller_options o = s->req->opts;
  o.workflow_status = status;
  o.step_env = env;
  struct run_state *cs = run_state_new();
  cs->workflow_name = strdup(wf->name);
  cs->workflow_uid = strdup(st->workflow_uid ? st->workflow_uid : "");
  int rc = controller_run(&comp, s->req->sandbox, &o, cs, err);
  if (rc == 0) {
    /* The handler's node, as the watchdog ran it, in the run's report. */
    char *name = NULL;
    if (asprintf(&name, "%s.onExit", wf->name) < 0)
      abort();
    const struct wf_node *done = cs->n_nodes ? cs->nodes[0] : NULL;
    struct wf_node *n = run_state_find_name(st, name);
    if (n == NULL)
      n = run_state_add_node(st, name, name, done ? done->type : NODE_POD, wf->on_exit, NULL);
    n->hooked = true;
    if (done != NULL) {
      free(n->log);
      n->log = NULL;
      n->log_len = 0;
      for (size_t i = 0; i < cs->n_nodes; i++)
        if (cs->nodes[i]->log)
          node_append_log(n, cs->nodes[i]->log, cs->nodes[i]->log_len);
      n->has_exit_code = done->has_exit_code;
      n->exit_code = done->exit_code;
      node_finish(n, done->phase, "run by the watchdog (compensating cleanup)");
      s->compensation_phase = done->phase;
    }
    free(st->exit_handler.node_id);
    st->exit_handler.node_id = strdup(n->id);
    free(name);
    s->compensated = true;
    rc = record(s, LEDGER_T_COMPENSATION_DONE,
                json_pack("{s:s, s:s, s:i}", "key", key, "phase",
                          node_phase_name(s->compensation_phase), "attempts", 1),
                true, err);
    action(s, "compensation finished: %s", node_phase_name(s->compensation_phase));
  }
  free(st->exit_handler.workflow_status);
  st->exit_handler.workflow_status = strdup(status);
  run_state_free(cs);
  free(env);
  free(key);
  return rc;
}

static const char *mode_name(enum fault_crash_then t) {
  return t == CRASH_THEN_RESTART ? "restart" : t == CRASH_THEN_LOSE_STATE ? "lose-state" : "stay-down";
}

int supervise(const struct supervise_request *req, struct run_state **out, ep_error **err) {
  struct supervisor s = {.req = req, .actions = json_array()};
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
  if (record(&s, LEDGER_T_RUN_STARTED, json_pack("{s:s}", "workflow", req->wf->name), true,
             err) < 0)
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
    crash_armed = false;
    char detail[512];
    snprintf(detail, sizeof(detail), "controller killed by SIG%s at %s; then %s",
             sigabbrev_np(WTERMSIG(status)), req->crash->crash_at, mode_name(req->crash->crash_then));
    fault_plan_mark_fired(req->plan, req->crash, detail);
    ledger_set_epoch(s.ledger, ledger_max_epoch(s.ledger) + 1);
    if (record(&s, LEDGER_T_TAKEOVER,
               json_pack("{s:s, s:s}", "reason", "controller died", "then",
                         mode_name(req->crash->crash_then)),
               true, err) < 0)
      goto out;
    action(&s, "controller died (SIG%s)", sigabbrev_np(WTERMSIG(status)));
    fence(&s);
    struct run_state *persisted = NULL;
    ep_error *load_err = NULL;
    if (run_state_load_file(s.state_path, &persisted, &load_err) < 0) {
      ep_error_free(&load_err);
      persisted = NULL;
    }
    if (req->crash->crash_then == CRASH_THEN_STAY_DOWN) {
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
    if (req->crash->crash_then == CRASH_THEN_RESTART && persisted != NULL) {
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
  eh->runs = s.handler_runs + (s.compensated ? 1 : 0);
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
  *out = result;
  result = NULL;
  rc = 0;
out:
  free(uid);
  run_state_free(st);
  run_state_free(result);
  json_decref(s.actions);
  ledger_close(&s.ledger);
  free(ledger_path);
  free(s.state_path);
  free(s.final_path);
  return rc;
}
