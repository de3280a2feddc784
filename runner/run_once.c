#include "leftovers.h"
#include "run_once.h"
#include "xalloc.h"

#include <ftw.h>
#include <sys/stat.h>

#include "../injector/faults.h"
#include "../watchdog/reconcile.h"
#include "idempotency.h"
#include "workspace.h"
#include "../watchdog/supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* exitprobe-argosay sits beside the binary (installed) or in runner/ (build tree). */
char *find_argosay(void) {
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0)
    return NULL;
  self[len] = '\0';
  char *slash = strrchr(self, '/');
  if (slash == NULL)
    return NULL;
  *slash = '\0';
  const char *candidates[] = {"", "/runner"};
  for (size_t i = 0; i < 2; i++) {
    char *path = NULL;
    if (asprintf(&path, "%s%s/exitprobe-argosay", self, candidates[i]) < 0)
      abort();
    if (access(path, X_OK) == 0)
      return path;
    free(path);
  }
  return NULL;
}

char *new_workflow_uid(void) {
  unsigned char b[16];
  if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
    for (size_t i = 0; i < sizeof(b); i++)
      b[i] = (unsigned char)rand();
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  char *s = NULL;
  if (asprintf(&s,
               "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
               b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
               b[13], b[14], b[15]) < 0)
    abort();
  return s;
}

static void list_push(char ***list, size_t *n, const char *s) {
  *list = realloc(*list, (*n + 1) * sizeof(char *));
  if (*list == NULL || ((*list)[*n] = strdup(s)) == NULL)
    abort();
  (*n)++;
}

static void describe_environment(struct run_state *st, const struct sandbox_capabilities *caps,
                                 bool isolate_network, bool has_rootfs) {
  static const char *const modes[] = {"none", "v1", "hybrid", "v2"};
  st->cgroup_mode = strdup(modes[caps->cgroup]);
  if (caps->namespaces) {
    list_push(&st->namespaces, &st->n_namespaces, "pid");
    list_push(&st->namespaces, &st->n_namespaces, "mount");
    list_push(&st->namespaces, &st->n_namespaces, "uts");
    list_push(&st->namespaces, &st->n_namespaces, "ipc");
    if (isolate_network)
      list_push(&st->namespaces, &st->n_namespaces, "network");
  }
  st->seccomp = caps->seccomp;
  run_state_add_note(st, "images are not pulled: steps ran on the host's root filesystem, "
                         "mounted read-only%s",
                     has_rootfs ? ", except those of images given a root filesystem" : "");
  for (size_t i = 0; i < caps->n_notes; i++)
    run_state_add_note(st, "%s", caps->notes[i]);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_run_dir(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A stale run directory holding a ledger is evidence and work for
 * `exitprobe watchdog`, which reconciles it (runs the compensation if the
 * record asks for it): the sweep keeps it and says so, since it runs
 * inside someone else's unrelated run. */
static bool keep_for_watchdog(const char *dir, void *ctx) {
  FILE *log = ctx;
  bool live = false;
  if (!run_dir_needs_watchdog(dir, &live))
    return false;
  if (!live && log != NULL)
    fprintf(log,
            "exitprobe: %s was left by a supervised run that did not finish: reconcile it with "
            "`exitprobe watchdog %s`\n",
            dir, dir);
  return true;
}

int run_workflow(const struct run_request *req, struct run_state **out, ep_error **err) {
  const struct workflow *wf = req->wf;
  struct run_state *st = run_state_new();
  char work_dir[4096] = "";
  int work_dir_lock = -1;
  if (req->run_dir != NULL)
    snprintf(work_dir, sizeof(work_dir), "%s", req->run_dir);
  /* Run directories of runs that were killed are removed, and the user is
   * told (leftovers.h: a run holds a lock on its directory while it lives). */
  leftovers_sweep_run_dirs("/tmp", keep_for_watchdog, stderr, stderr);
  char *step_dirs = NULL, *argosay = NULL, *workspace = NULL;
  int rc = -1;
  st->workflow_name = strdup(wf->name);
  st->workflow_file = strdup(req->workflow_file);
  st->workflow_namespace = strdup(wf->namespace_);
  st->workflow_uid = new_workflow_uid();
  st->has_seed = req->has_seed;
  st->seed = req->seed;
  st->time_scale = req->time_scale > 0 ? req->time_scale : 1.0;
  bool has_rootfs = false;
  for (size_t i = 0; i < req->n_images; i++)
    has_rootfs = has_rootfs || req->images[i].rootfs != NULL;
  describe_environment(st, sandbox_context_capabilities(req->sandbox), req->isolate_network,
                       has_rootfs);
  for (size_t i = 0; i < wf->n_warnings; i++)
    run_state_add_warning(st, "%s", wf->warnings[i]);
  if (req->run_dir != NULL) {
    /* An existing empty directory is fine; one holding another run is not. */
    if (mkdir(work_dir, 0700) < 0 && (errno != EEXIST || rmdir(work_dir) < 0 ||
                                       mkdir(work_dir, 0700) < 0)) {
      ep_error_set_errno(err, EP_EXIT_USAGE, errno,
                         "--run-dir %s: cannot create it, or it is not an empty directory",
                         work_dir);
      goto out;
    }
  } else if (leftovers_make_run_dir("/tmp", work_dir, sizeof(work_dir), &work_dir_lock, err) <
             0) {
    goto out;
  }
  if (asprintf(&step_dirs, "%s/steps", work_dir) < 0)
    abort();
  /* Claim volumes live in the run directory: a restarted controller and the
   * watchdog's compensation find them where the first controller left them. */
  workspace = xasprintf("%s/workspace", work_dir);
  if (mkdir(workspace, 0755) < 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create %s", workspace);
    remove_run_dir(work_dir);
    goto out;
  }
  argosay = find_argosay();
  struct controller_options copts = {
      .faults = req->faults,
      .images = req->images,
      .n_images = req->n_images,
      .argosay_path = argosay,
      .time_scale = st->time_scale,
      .grace_period_ms = req->grace_ms,
      .network_isolated = req->isolate_network,
      .progress = req->quiet ? NULL : stderr,
      .work_dir = step_dirs,
      .workspace_dir = workspace,
      .mocks = req->mocks,
      .n_mocks = req->n_mocks,
      .has_control = req->has_control,
      .control_fd = req->control_fd,
  };
  const struct fault *crash = fault_plan_find(req->faults, FAULT_CONTROLLER_CRASH);
  if (crash == NULL)
    crash = fault_plan_find(req->faults, FAULT_CONTROLLER_HANG);
  if (crash != NULL || req->run_dir != NULL) {
    /* A scenario crashes the controller: run it as a separate process under
     * the supervisor, which owns the ledger and takes over when it dies. */
    struct supervise_request sreq = {.wf = wf, .sandbox = req->sandbox, .plan = req->faults,
                                     .crash = crash, .run_dir = work_dir, .opts = copts,
                                     .fresh = st,
                                     .source_file = req->scenario_file ? req->scenario_file
                                                                       : req->workflow_file,
                                     .source_is_scenario = req->scenario_file != NULL,
                                     .params = req->params, .n_params = req->n_params,
                                     .delivery = (enum delivery_policy)req->delivery,
                                     .compensate = req->compensate};
    struct run_state *result = NULL;
    st = NULL; /* consumed by supervise */
    rc = supervise(&sreq, &result, err);
    st = result;
  } else {
    rc = controller_run(wf, req->sandbox, &copts, st, err);
  }
  if (rc == 0 && st != NULL && req->idempotency) {
    struct idempotency_request ireq = {.wf = wf, .sandbox = req->sandbox, .opts = &copts,
                                       .workspace_dir = workspace,
                                       .state_probe = req->state_probe};
    rc = idempotency_check(&ireq, st, err);
  }
  if (rc == 0 && st != NULL && req->keep_workspace != NULL) {
    if (ws_copy_tree(workspace, req->keep_workspace, err) < 0)
      rc = -1;
    else
      run_state_add_note(st, "the workspace was kept in %s", req->keep_workspace);
  }
  if (req->run_dir != NULL)
    run_dir_release_steps(work_dir); /* the ledger and states stay: the user asked for them */
  else
    remove_run_dir(work_dir);
out:
  if (work_dir_lock >= 0)
    close(work_dir_lock); /* after the directory is gone: never unlocked while it exists */
  free(workspace);
  free(step_dirs);
  free(argosay);
  if (rc < 0 || st == NULL) {
    run_state_free(st);
    return -1;
  }
  *out = st;
  return 0;
}
