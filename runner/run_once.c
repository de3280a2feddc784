#include "run_once.h"
#include "xalloc.h"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "../injector/faults.h"
#include "../watchdog/supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* exitprobe-argosay sits beside the binary (installed) or in runner/ (build tree). */
static char *find_argosay(void) {
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
                                 bool isolate_network) {
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
                         "mounted read-only");
  for (size_t i = 0; i < caps->n_notes; i++)
    run_state_add_note(st, "%s", caps->notes[i]);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_run_dir(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Run directories are named after their exitprobe process.  One whose
 * process is gone was left by a run that was killed: its step /tmp mounts
 * are detached and it is removed, and the user is told. */
static void sweep_stale_run_dirs(void) {
  DIR *d = opendir("/tmp");
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid = 0, used = 0;
    if (sscanf(e->d_name, "exitprobe-run-%d-%n", &pid, &used) != 1 || used == 0 || pid <= 0 ||
        pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
      continue;
    char *dir = xasprintf("/tmp/%s", e->d_name);
    char *steps = xasprintf("%s/steps", dir);
    DIR *sd = opendir(steps);
    struct dirent *se;
    while (sd != NULL && (se = readdir(sd)) != NULL) {
      if (se->d_name[0] == '.')
        continue;
      char *step = xasprintf("%s/%s", steps, se->d_name);
      (void)umount2(step, MNT_DETACH);
      free(step);
    }
    if (sd != NULL)
      closedir(sd);
    remove_run_dir(dir);
    fprintf(stderr, "exitprobe: removed %s, left by exitprobe process %d, which is gone\n", dir,
            pid);
    free(steps);
    free(dir);
  }
  closedir(d);
}

int run_workflow(const struct run_request *req, struct run_state **out, ep_error **err) {
  const struct workflow *wf = req->wf;
  struct run_state *st = run_state_new();
  char work_dir[64];
  snprintf(work_dir, sizeof(work_dir), "/tmp/exitprobe-run-%d-XXXXXX", (int)getpid());
  sweep_stale_run_dirs();
  char *step_dirs = NULL, *argosay = NULL;
  int rc = -1;
  st->workflow_name = strdup(wf->name);
  st->workflow_file = strdup(req->workflow_file);
  st->workflow_namespace = strdup(wf->namespace_);
  st->workflow_uid = new_workflow_uid();
  st->has_seed = req->has_seed;
  st->seed = req->seed;
  st->time_scale = req->time_scale > 0 ? req->time_scale : 1.0;
  describe_environment(st, sandbox_context_capabilities(req->sandbox), req->isolate_network);
  for (size_t i = 0; i < wf->n_warnings; i++)
    run_state_add_warning(st, "%s", wf->warnings[i]);
  if (mkdtemp(work_dir) == NULL) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create a work directory in /tmp");
    goto out;
  }
  if (asprintf(&step_dirs, "%s/steps", work_dir) < 0)
    abort();
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
      .mocks = req->mocks,
      .n_mocks = req->n_mocks,
      .has_control = req->has_control,
      .control_fd = req->control_fd,
  };
  const struct fault *crash = fault_plan_find(req->faults, FAULT_CONTROLLER_CRASH);
  if (crash != NULL) {
    /* A scenario crashes the controller: run it as a separate process under
     * the supervisor, which owns the ledger and takes over when it dies. */
    struct supervise_request sreq = {.wf = wf, .sandbox = req->sandbox, .plan = req->faults,
                                     .crash = crash, .run_dir = work_dir, .opts = copts,
                                     .fresh = st};
    struct run_state *result = NULL;
    st = NULL; /* consumed by supervise */
    rc = supervise(&sreq, &result, err);
    st = result;
  } else {
    rc = controller_run(wf, req->sandbox, &copts, st, err);
  }
  remove_run_dir(work_dir);
out:
  free(step_dirs);
  free(argosay);
  if (rc < 0 || st == NULL) {
    run_state_free(st);
    return -1;
  }
  *out = st;
  return 0;
}
