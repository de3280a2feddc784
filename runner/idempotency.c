/* The idempotency check: see idempotency.h. */
#include "idempotency.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../watchdog/compensation.h"
#include "workspace.h"
#include "xalloc.h"

#define PROBE_OUTPUT_MAX (1024 * 1024)

static _Noreturn void probe_child(const char *command, const char *workspace, int out_w) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(out_w, STDOUT_FILENO) < 0 || chdir(workspace) < 0 ||
      setenv("EXITPROBE_WORKSPACE", workspace, 1) < 0)
    _exit(127);
  execl("/bin/sh", "sh", "-c", command, (char *)NULL);
  _exit(127);
}

/* The stateProbe's stdout (at most 1 MiB), run on the host with the
 * workspace as its working directory. */
static int run_probe(const char *command, const char *workspace, char **out, ep_error **err) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "pipe for the stateProbe");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "fork for the stateProbe");
  }
  if (pid == 0)
    probe_child(command, workspace, fds[1]);
  close(fds[1]);
  size_t len = 0, cap = 4096;
  char *buf = xmalloc(cap);
  for (;;) {
    if (len + 1 == cap && cap < PROBE_OUTPUT_MAX)
      buf = xrealloc(buf, cap *= 2);
    ssize_t n = len + 1 < cap ? read(fds[0], buf + len, cap - len - 1)
                              : read(fds[0], (char[4096]){0}, 4096); /* drain past the cap */
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (len + 1 < cap)
      len += (size_t)n;
  }
  buf[len] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    free(buf);
    return ep_error_set(err, EP_EXIT_ENVIRONMENT, "stateProbe '%s' failed (%s %d)", command,
                        WIFEXITED(status) ? "exit status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  *out = buf;
  return 0;
}

static void inconclusive(struct idempotency_record *r, const char *why) {
  r->conclusive = false;
  r->idempotent = false;
  free(r->reason);
  r->reason = xstrdup(why);
}

/* The exit handler again, alone, as the watchdog's compensation runs it. */
static int run_handler_again(const struct idempotency_request *req, const struct run_state *st,
                             enum node_phase *phase, ep_error **err) {
  const struct workflow *wf = req->wf;
  struct workflow again = *wf; /* shallow: the handler as the entrypoint, nothing after it */
  again.entrypoint = wf->on_exit;
  again.on_exit = NULL;
  char *key = compensation_key(st->workflow_uid);
  char *env = xasprintf("EXITPROBE_IDEMPOTENCY_KEY=%s", key);
  struct controller_options o = *req->opts;
  o.faults = NULL; /* a redelivery meets the machinery working */
  o.workflow_status = st->exit_handler.workflow_status ? st->exit_handler.workflow_status
                                                       : "Error";
  o.workflow_failures = st->exit_handler.workflow_failures;
  o.step_env = env;
  o.exit_handler_only = true;
  o.supervised = false;
  o.crash_at = NULL;
  o.state_path = NULL;
  o.resume = false;
  if (o.progress != NULL)
    fprintf(o.progress, "exitprobe: idempotency: running the exit handler %s a second time "
                        "({{workflow.status}}=%s, EXITPROBE_IDEMPOTENCY_KEY=%s)\n",
            wf->on_exit, o.workflow_status, key);
  struct run_state *again_st = run_state_new();
  again_st->workflow_name = xstrdup(wf->name);
  again_st->workflow_uid = xstrdup(st->workflow_uid ? st->workflow_uid : "");
  again_st->time_scale = st->time_scale;
  int rc = controller_run(&again, req->sandbox, &o, again_st, err);
  if (rc == 0)
    *phase = again_st->n_nodes > 0 ? again_st->nodes[0]->phase : again_st->phase;
  run_state_free(again_st);
  free(env);
  free(key);
  return rc;
}

static void record_changes(struct idempotency_record *r, const struct ws_diff *d) {
  r->changes = d->n ? xcalloc(d->n, sizeof(*r->changes)) : NULL;
  for (size_t i = 0; i < d->n; i++) {
    r->changes[i].path = xstrdup(d->v[i].path);
    r->changes[i].change = xstrdup(ws_change_name(d->v[i].kind));
    r->changes[i].before = d->v[i].before ? xstrdup(d->v[i].before) : NULL;
    r->changes[i].after = d->v[i].after ? xstrdup(d->v[i].after) : NULL;
  }
  r->n_changes = d->n;
}

/* "books/counter changed, books/ledger.txt changed": the reason is what
 * one-line outputs (stderr, JUnit, TAP, GitHub annotations) show. */
static char *changed_names(const struct idempotency_record *r) {
  enum { SHOWN = 5 };
  char *out = xstrdup("");
  for (size_t i = 0; i < r->n_changes && i < SHOWN; i++) {
    char *next = xasprintf("%s%s%s %s", out, i ? ", " : "", r->changes[i].path,
                           r->changes[i].change);
    free(out);
    out = next;
  }
  if (r->n_changes > SHOWN) {
    char *next = xasprintf("%s and %zu more", out, r->n_changes - SHOWN);
    free(out);
    out = next;
  }
  return out;
}

static void conclude(struct idempotency_record *r) {
  r->conclusive = true;
  r->idempotent = r->n_changes == 0 && !r->probe_changed && r->second_phase == PHASE_SUCCEEDED;
  if (r->second_phase != PHASE_SUCCEEDED && r->n_changes == 0 && !r->probe_changed)
    r->reason = xasprintf("the second run of the exit handler ended %s",
                          node_phase_name(r->second_phase));
  else if (r->idempotent && r->n_files == 0)
    r->reason = xasprintf("a second run of the exit handler ended Succeeded; the workspace is "
                          "empty (no claim volume holds a file), so nothing else was compared%s",
                          r->probe ? " but the stateProbe's output, unchanged" : "");
  else if (r->idempotent)
    r->reason = xasprintf("a second run of the exit handler left the workspace (%zu entr%s)%s "
                          "as the first did",
                          r->n_files, r->n_files == 1 ? "y" : "ies",
                          r->probe ? " and the stateProbe's output" : "");
  else {
    char *names = changed_names(r);
    r->reason = xasprintf("a second run of the exit handler changed %zu workspace entr%s%s%s%s",
                          r->n_changes, r->n_changes == 1 ? "y" : "ies",
                          r->probe_changed ? " and the stateProbe's output" : "",
                          names[0] ? ": " : "", names);
    free(names);
  }
}

int idempotency_check(const struct idempotency_request *req, struct run_state *st,
                      ep_error **err) {
  struct idempotency_record *r = &st->idempotency;
  run_state_clear_idempotency(r);
  r->checked = true;
  r->probe = req->state_probe ? xstrdup(req->state_probe) : NULL;
  if (req->wf->on_exit == NULL) {
    inconclusive(r, "the workflow declares no exit handler (spec.onExit or spec.hooks.exit): "
                    "there is nothing to run twice");
    return 0;
  }
  if (st->interrupted) {
    inconclusive(r, "the run was interrupted: the exit handler is not run again");
    return 0;
  }
  if (!st->exit_handler.ran && st->exit_handler.runs == 0) {
    inconclusive(r, "the exit handler did not run, so there is no first run to repeat");
    return 0;
  }
  (void)mkdir(req->workspace_dir, 0755);
  struct ws_snapshot before = {0}, after = {0};
  struct ws_diff diff = {0};
  ep_error *probe_err = NULL;
  int rc = -1;
  if (ws_snapshot_take(req->workspace_dir, &before, err) < 0)
    goto out;
  r->n_files = before.n;
  if (r->probe && run_probe(r->probe, req->workspace_dir, &r->probe_before, &probe_err) < 0)
    goto probe_failed;
  if (run_handler_again(req, st, &r->second_phase, err) < 0)
    goto out;
  r->second_ran = true;
  if (ws_snapshot_take(req->workspace_dir, &after, err) < 0)
    goto out;
  if (r->probe && run_probe(r->probe, req->workspace_dir, &r->probe_after, &probe_err) < 0)
    goto probe_failed;
  r->probe_changed = r->probe && strcmp(r->probe_before, r->probe_after) != 0;
  ws_diff_compute(&before, &after, &diff);
  record_changes(r, &diff);
  conclude(r);
  rc = 0;
  goto out;
probe_failed:
  inconclusive(r, probe_err->message);
  ep_error_free(&probe_err);
  rc = 0;
out:
  ws_diff_free(&diff);
  ws_snapshot_free(&before);
  ws_snapshot_free(&after);
  return rc;
}
