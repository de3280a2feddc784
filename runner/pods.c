/* Launched steps ("pods"): starting them in the sandbox, collecting their
 * output, deadlines and kills, and turning their fate into a node phase
 * (argo-semantics §2). */
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller_internal.h"
#include "volumes.h"

int epoll_add(struct controller *c, int fd, struct watch *w) {
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
  if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "epoll_ctl");
  return 0;
}

static void free_strv(char **v) {
  if (v == NULL)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

/* Substitute every string the step runs with; the first unresolvable
 * variable becomes the node's Error message as in Argo. */
struct resolved_step {
  char **argv;
  bool argv0_from_image; /* argv[0] is an image's entrypoint (--image, argosay), not the YAML's */
  char **envp;
  char *working_dir;
  char *source;
  const char *rootfs; /* the image's root filesystem, or NULL */
};

static void resolved_step_free(struct resolved_step *r) {
  free_strv(r->argv);
  free_strv(r->envp);
  free(r->working_dir);
  free(r->source);
}

/* A pod with init containers keeps, while they run one after the other,
 * what it resolved for each of them at creation and what main will start
 * with: its command, binds and /tmp (input artifacts already in it). */
struct pod_pending {
  struct resolved_step *init; /* one per init container */
  size_t n_init;
  struct resolved_step main;
  struct step_binds main_binds;
  char *main_tmp_dir;
};

static void pod_pending_free(struct pod_pending *q) {
  if (q == NULL)
    return;
  for (size_t i = 0; i < q->n_init; i++)
    resolved_step_free(&q->init[i]);
  free(q->init);
  resolved_step_free(&q->main);
  step_binds_free(&q->main_binds);
  if (q->main_tmp_dir != NULL) {
    remove_tree(q->main_tmp_dir);
    free(q->main_tmp_dir);
  }
  free(q);
}

int subst(const char *in, const struct var_scope *scope, char **out, char **why) {
  ep_error *e = NULL;
  char *missing = NULL;
  if (template_substitute(in, scope, out, &missing, &e) < 0) {
    *why = strdup(e->message);
    free(missing);
    ep_error_free(&e);
    return -1;
  }
  return 0;
}

/* What the user told of an image that is not pulled (--image,
 * --image-config), or NULL. */
static const struct image_entrypoint *image_lookup(const struct controller_options *o,
                                                   const char *ref) {
  for (size_t i = 0; i < o->n_images; i++) {
    size_t len = strlen(o->images[i].image);
    if (strcmp(ref, o->images[i].image) == 0 ||
        (strncmp(ref, o->images[i].image, len) == 0 && ref[len] == ':' &&
         strchr(o->images[i].image, ':') == NULL))
      return &o->images[i];
  }
  return NULL;
}

static const char *image_ref(const char *image) {
  if (strncmp(image, "index.docker.io/", 16) == 0)
    return image + 16;
  if (strncmp(image, "docker.io/", 10) == 0)
    return image + 10;
  return image;
}

/* The entrypoint of an image that is not pulled: a mapping the user gave
 * (--image), the built-in argosay, or none -- then args run as the command,
 * which is what Kubernetes does for images without an ENTRYPOINT. */
static const char *image_entrypoint(const struct controller_options *o, const char *image) {
  if (image == NULL)
    return NULL;
  const char *ref = image_ref(image);
  const struct image_entrypoint *m = image_lookup(o, ref);
  if (m != NULL)
    return m->entrypoint;
  if (o->argosay_path != NULL && strncmp(ref, "argoproj/argosay:v2", 19) == 0)
    return o->argosay_path;
  return NULL;
}

static size_t strv_len(char *const *v) {
  size_t n = 0;
  while (v != NULL && v[n] != NULL)
    n++;
  return n;
}

/* A later definition of the same name wins, as in a container spec. */
static void env_put(char **envp, size_t *e, char *entry) {
  size_t name_len = strcspn(entry, "=") + 1;
  for (size_t k = 0; k < *e; k++)
    if (strncmp(envp[k], entry, name_len) == 0) {
      free(envp[k]);
      envp[k] = entry;
      return;
    }
  envp[(*e)++] = entry;
}

static int resolve_step(const struct controller *c, const struct wf_template *t,
                        const struct var_scope *scope, const char *hostname,
                        struct resolved_step *r, char **why) {
  const struct image_entrypoint *img =
      t->image != NULL ? image_lookup(c->opts, image_ref(t->image)) : NULL;
  const char *entrypoint = t->n_command == 0 ? image_entrypoint(c->opts, t->image) : NULL;
  /* Docker's ENTRYPOINT and CMD as Kubernetes combines them: command
   * replaces the entrypoint (and drops CMD), args replace CMD. */
  char *const *image_ep = t->n_command == 0 && entrypoint == NULL && img != NULL
                              ? img->entrypoint_argv : NULL;
  char *const *image_cmd =
      t->n_command == 0 && t->n_args == 0 && img != NULL ? img->cmd : NULL;
  /* argosay's own path, spelled out in a command, is its built-in too. */
  bool argosay_cmd = t->n_command > 0 && strcmp(t->command[0], "/argosay") == 0 &&
                     c->opts->argosay_path != NULL && image_entrypoint(c->opts, t->image) != NULL;
  size_t n_argv = t->n_command + t->n_args + (t->kind == TEMPLATE_SCRIPT ? 1 : 0) + 1 +
                  strv_len(image_ep) + strv_len(image_cmd);
  size_t n_image_env = img != NULL ? strv_len(img->env) : 0;
  r->argv = calloc(n_argv + 1, sizeof(char *));
  r->envp = calloc(t->n_env + n_image_env + 5, sizeof(char *));
  if (r->argv == NULL || r->envp == NULL)
    abort();
  size_t a = 0;
  r->rootfs = img != NULL ? img->rootfs : NULL;
  /* Inside an image's root an entrypoint is the image's own file. */
  r->argv0_from_image =
      ((entrypoint != NULL || image_ep != NULL) && r->rootfs == NULL) || argosay_cmd;
  if (entrypoint != NULL)
    r->argv[a++] = strdup(entrypoint);
  for (size_t i = 0; i < strv_len(image_ep); i++)
    r->argv[a++] = strdup(image_ep[i]);
  for (size_t i = 0; i < strv_len(image_cmd); i++)
    r->argv[a++] = strdup(image_cmd[i]);
  if (a == 0 && t->n_command == 0 && t->n_args == 0) {
    *why = xasprintf("container has neither command nor args, and the entrypoint of image '%s' "
                     "is not known (images are not pulled): map it with --image %s=PATH",
                     t->image ? t->image : "", t->image ? t->image : "IMAGE");
    return -1;
  }
  for (size_t i = 0; i < t->n_command; i++) {
    if (i == 0 && argosay_cmd) {
      r->argv[a++] = strdup(c->opts->argosay_path);
      continue;
    }
    if (subst(t->command[i], scope, &r->argv[a++], why) < 0)
      return -1;
  }
  if (t->kind == TEMPLATE_SCRIPT) {
    r->argv[a++] = strdup("/tmp/argo/staging/script");
    if (subst(t->source, scope, &r->source, why) < 0)
      return -1;
  }
  for (size_t i = 0; i < t->n_args; i++)
    if (subst(t->args[i], scope, &r->argv[a++], why) < 0)
      return -1;
  size_t e = 0;
  r->envp[e++] = strdup("PATH=" SANDBOX_DEFAULT_PATH);
  r->envp[e++] = xasprintf("HOSTNAME=%s", hostname);
  r->envp[e++] = strdup("HOME=/root");
  if (c->opts->step_env != NULL)
    r->envp[e++] = strdup(c->opts->step_env);
  for (size_t i = 0; i < n_image_env; i++)
    env_put(r->envp, &e, strdup(img->env[i]));
  for (size_t i = 0; i < t->n_env; i++) {
    char *value = NULL;
    if (subst(t->env[i].value, scope, &value, why) < 0)
      return -1;
    env_put(r->envp, &e, xasprintf("%s=%s", t->env[i].name, value));
    free(value);
  }
  if (t->working_dir != NULL && subst(t->working_dir, scope, &r->working_dir, why) < 0)
    return -1;
  if (t->working_dir == NULL && img != NULL && img->working_dir != NULL)
    r->working_dir = strdup(img->working_dir);
  return 0;
}

static void pod_free(struct pod *p) {
  pod_pending_free(p->pending);
  step_output_free(&p->output);
  step_faults_clear(&p->faults);
  if (p->step.stdout_fd >= 0)
    close(p->step.stdout_fd);
  if (p->step.stderr_fd >= 0)
    close(p->step.stderr_fd);
  free(p->tmp_dir);
  if (p->volumes_dir != NULL) {
    /* Kubernetes deletes a pod's emptyDir with the pod. */
    remove_tree(p->volumes_dir);
    free(p->volumes_dir);
  }
  free(p);
}

struct pod *pod_new(struct controller *c) {
  struct pod *p = calloc(1, sizeof(*p));
  if (p == NULL)
    abort();
  p->step.stdout_fd = p->step.stderr_fd = p->step.pidfd = p->step.notify_fd = -1;
  p->wd_stdout = p->wd_stderr = -1;
  /* Supervised steps outlive a controller crash, to be adopted by the
   * next one -- where their groups can be found again and fenced. */
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(c->sandbox);
  p->output_files = c->opts->supervised && caps->namespaces && caps->cgroup != SANDBOX_CGROUP_NONE;
  return p;
}

static void remove_output_files(const struct pod *p) {
  static const char *const suffixes[] = {"stdout", "stderr", "status"};
  for (size_t i = 0; p->output_files && p->tmp_dir != NULL && i < 3; i++) {
    char *path = xasprintf("%s.%s", p->tmp_dir, suffixes[i]);
    unlink(path);
    free(path);
  }
}

void pod_discard(struct pod *p) {
  remove_tree(p->tmp_dir);
  remove_output_files(p);
  pod_free(p);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* A step's /tmp is a tmpfs mounted on its host directory (so the step
 * cannot fill the host's disk, and the runner can still read its output
 * files after it ended); removing the directory unmounts it first. */
static void unmount_step_tmp(const char *path) { (void)umount2(path, MNT_DETACH); }

void remove_tree(const char *path) {
  if (path != NULL)
    unmount_step_tmp(path);
  if (path != NULL)
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A leaf's deadline: template activeDeadlineSeconds or timeout from its
 * start, and -- outside exit handlers -- never past the workflow's. */
int pod_deadline(struct controller *c, const struct wf_template *t, const struct var_scope *scope,
                 bool in_exit_handler, int64_t from, int64_t *out, char **why) {
  int64_t now = from, deadline = 0;
  const char *texts[2] = {t->active_deadline_seconds, t->timeout};
  static const enum fault_deadline_field fields[2] = {FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS,
                                                      FAULT_DEADLINE_TIMEOUT};
  for (int i = 0; i < 2; i++) {
    int64_t override_ms;
    if (fault_plan_deadline(c->opts->faults, t->name, fields[i], &override_ms) == 1) {
      int64_t at = now + (int64_t)((double)override_ms * 1000.0 * c->opts->time_scale);
      if (deadline == 0 || at < deadline)
        deadline = at;
      continue;
    }
    if (texts[i] == NULL)
      continue;
    char *text = NULL;
    double secs;
    if (subst(texts[i], scope, &text, why) < 0)
      return -1;
    if (parse_duration_seconds(text, i == 0, &secs) < 0) {
      *why = xasprintf("invalid %s '%s'", i == 0 ? "activeDeadlineSeconds" : "timeout", text);
      free(text);
      return -1;
    }
    free(text);
    int64_t at = now + (int64_t)(secs * 1e6 * c->opts->time_scale);
    if (deadline == 0 || at < deadline)
      deadline = at;
  }
  if (!in_exit_handler && c->deadline_us != 0 && (deadline == 0 || c->deadline_us < deadline))
    deadline = c->deadline_us;
  *out = deadline;
  return 0;
}

/* An entrypoint program that lives under the host's /tmp (a build tree
 * there, say) is hidden by the step's own /tmp: copy it into that /tmp. */
static int stage_entrypoint(const char *tmp_dir, char **argv0) {
  char *dest = xasprintf("%s/.exitprobe-entrypoint", tmp_dir);
  int in = open(*argv0, O_RDONLY | O_CLOEXEC);
  int out = in < 0 ? -1 : open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  int rc = in < 0 || out < 0 ? -1 : 0;
  char buf[65536];
  ssize_t n;
  while (rc == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
    if (n < 0 || write(out, buf, (size_t)n) != n)
      rc = -1;
  }
  if (in >= 0)
    close(in);
  if (out >= 0 && close(out) < 0)
    rc = -1;
  free(dest);
  if (rc == 0) {
    free(*argv0);
    *argv0 = strdup("/tmp/.exitprobe-entrypoint");
  }
  return rc;
}

static void on_output_line(void *ctx, const char *line, size_t len) {
  struct pod *p = ctx;
  if (!p->exited)
    fault_plan_output_line(p->owner->opts->faults, p->node, &p->faults, &p->step, line, len,
                           now_realtime_us());
}

/* mkdir -p of path's parent directories, inside a directory we made. */
static int make_parents(char *path) {
  for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
    *p = '\0';
    int rc = mkdir(path, 0755);
    *p = '/';
    if (rc < 0 && errno != EEXIST)
      return -1;
  }
  return 0;
}

static int write_whole_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  size_t len = strlen(data), off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      close(fd);
      return -1;
    }
    off += (size_t)n;
  }
  return close(fd);
}

/* Raw input artifacts, as Argo's init container writes them before main
 * starts: one under /tmp is written into the step's own /tmp; one anywhere
 * else is written beside the step's volumes and bound onto a file at its
 * path (sandbox_binds.c makes that path exist on the read-only root). */
static int stage_input_artifacts(const struct wf_template *t, const struct var_scope *scope,
                                 const char *tmp_dir, const char *files_dir,
                                 struct step_binds *binds, char **why) {
  for (size_t i = 0; i < t->n_input_artifacts; i++) {
    const struct wf_artifact *a = &t->input_artifacts[i];
    char *data = NULL, *host = NULL;
    if (subst(a->raw_data, scope, &data, why) < 0)
      return -1;
    bool in_tmp = strncmp(a->path, "/tmp/", 5) == 0;
    if (!in_tmp && binds->n >= SANDBOX_MAX_BINDS) {
      free(data);
      *why = xasprintf("inputs.artifacts.%s: too many mounts in one step", a->name);
      return -1;
    }
    host = in_tmp ? xasprintf("%s%s", tmp_dir, a->path + 4)
                  : xasprintf("%s/.artifacts/%zu", files_dir, i);
    int rc = make_parents(host);
    if (rc == 0)
      rc = write_whole_file(host, data);
    free(data);
    if (rc < 0) {
      *why = xasprintf("inputs.artifacts.%s: cannot write %s: %s", a->name, host,
                       strerror(errno));
      free(host);
      return -1;
    }
    if (in_tmp) {
      free(host);
      continue;
    }
    binds->binds = xreallocarray(binds->binds, binds->n + 1, sizeof(*binds->binds));
    binds->binds[binds->n++] = (struct sandbox_bind){
        .host_dir = host, .path = xstrdup(a->path), .read_only = false, .file = true};
  }
  return 0;
}

/* A container's /tmp: a fresh tmpfs of its own (see unmount_step_tmp). */
static int make_step_tmp(const char *dir, char **why) {
  if ((mkdir(dir, 0777) < 0 && errno != EEXIST) ||
      (geteuid() == 0 &&
       mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=" SANDBOX_TMP_SIZE) <
           0 &&
       errno != EPERM)) {
    *why = xasprintf("cannot create the step's /tmp (%s): %s", dir, strerror(errno));
    return -1;
  }
  chmod(dir, 01777);
  return 0;
}

static int stage_image_entrypoint(const char *tmp_dir, struct resolved_step *r, char **why) {
  if (strncmp(r->argv[0], "/tmp/", 5) == 0 && r->argv0_from_image &&
      stage_entrypoint(tmp_dir, &r->argv[0]) < 0) {
    *why = xasprintf("cannot stage the image entrypoint %s in the step's /tmp", r->argv[0]);
    return -1;
  }
  return 0;
}

/* Start one container of the pod (ctr: the template, or one of its init
 * containers) in p->tmp_dir.  The scenario's faults aim at main only. */
static int start_container(struct controller *c, struct pod *p, const struct wf_template *ctr,
                           const struct resolved_step *r, const struct step_binds *binds,
                           bool is_main) {
  struct wf_node *node = p->node;
  ep_error *e = NULL;
  char *name = is_main ? xstrdup(node->id) : xasprintf("%s-init-%zu", node->id, p->stage);
  struct sandbox_step_spec spec = {
      .name = name,
      .hostname = node->pod_name,
      .argv = r->argv,
      .envp = r->envp,
      .working_dir = r->working_dir,
      .script_source = r->source,
      .tmp_host_dir = p->tmp_dir,
      .rootfs = r->rootfs,
      .memory_limit = ctr->memory_limit,
      .pids_limit = ctr->pids_limit,
      .network_isolated = c->opts->network_isolated,
      .binds = binds->binds,
      .n_binds = binds->n,
      .io_prefix = p->output_files ? p->tmp_dir : NULL,
  };
  if (is_main)
    fault_plan_prepare_step(c->opts->faults, node, &spec, &p->faults);
  int rc = sandbox_launch(c->sandbox, &spec, &p->step, &e);
  free(name);
  if (rc < 0) {
    /* A launch the machine refused is the machinery failing: Error, not Failed. */
    char *msg = xasprintf("failed to start the step: %s", e->message);
    node_finish(node, PHASE_ERROR, msg);
    free(msg);
    ep_error_free(&e);
    return -1;
  }
  if (is_main)
    fault_plan_step_started(c->opts->faults, node, &p->faults, &p->step, now_realtime_us());
  return 0;
}

/* Init container p->stage, in its own /tmp (Kubernetes gives each container
 * its own filesystem) but with the pod's volumes: its emptyDirs are main's. */
static int start_init_container(struct controller *c, struct pod *p) {
  const struct wf_template *t = p->tmpl, *ic = &t->init_containers[p->stage];
  struct resolved_step *r = &p->pending->init[p->stage];
  struct step_binds binds = {NULL, 0};
  char *why = NULL;
  int rc = -1;
  p->tmp_dir = xasprintf("%s/%s.init-%zu", c->opts->work_dir, p->node->id, p->stage);
  if (make_step_tmp(p->tmp_dir, &why) < 0 || stage_image_entrypoint(p->tmp_dir, r, &why) < 0)
    goto out;
  if (ic->n_mounts > 0) {
    struct wf_template pod_view = *t; /* the pod's volumes, this container's mounts */
    pod_view.mounts = ic->mounts;
    pod_view.n_mounts = ic->n_mounts;
    if (volumes_prepare_step(c->wf, &pod_view, c->opts->workspace_dir, p->volumes_dir, &binds,
                             &why) < 0)
      goto out;
  }
  rc = start_container(c, p, ic, r, &binds, false);
out:
  if (why != NULL)
    node_finish(p->node, PHASE_ERROR, why);
  free(why);
  step_binds_free(&binds);
  return rc;
}

static int start_main_container(struct controller *c, struct pod *p) {
  struct pod_pending *q = p->pending;
  p->tmp_dir = q->main_tmp_dir;
  q->main_tmp_dir = NULL;
  int rc = start_container(c, p, p->tmpl, &q->main, &q->main_binds, true);
  p->pending = NULL;
  pod_pending_free(q);
  return rc;
}

static bool has_mounts(const struct wf_template *t) {
  bool any = t->n_mounts > 0;
  for (size_t i = 0; i < t->n_init_containers; i++)
    any = any || t->init_containers[i].n_mounts > 0;
  return any;
}

void launch_pod(struct controller *c, struct wf_node *node, const struct wf_template *t,
                const struct var_scope *scope, const struct exec_ctx *x) {
  struct resolved_step r = {0};
  struct step_binds binds = {NULL, 0};
  char *why = NULL;
  struct pod *p = pod_new(c);
  struct var_scope local;
  var_scope_init(&local, scope);
  /* spec.parallelism: the node waits, Pending, for a free slot. */
  if (c->wf->parallelism > 0 && (long)c->n_pods >= c->wf->parallelism)
    goto done;
  int64_t delay = fault_plan_delay(c->opts->faults, node, now_realtime_us());
  if (delay > 0) {
    want_wakeup(c, now_realtime_us() + delay);
    goto done;
  }
  if (pod_deadline(c, t, scope, x->in_exit_handler, now_realtime_us(), &p->deadline_us, &why) <
      0) {
    node_finish(node, PHASE_ERROR, why);
    goto done;
  }
  free(node->pod_name);
  node->pod_name = run_state_pod_name(c->wf->name, node->name, node->template_name);
  var_scope_set(&local, "pod.name", node->pod_name);
  var_scope_set(&local, "node.name", node->name);
  if (resolve_step(c, t, &local, node->pod_name, &r, &why) < 0) {
    node_finish(node, PHASE_ERROR, why);
    goto done;
  }
  if (t->n_init_containers > 0) {
    /* The whole pod spec is resolved when the pod is created. */
    p->pending = xcalloc(1, sizeof(*p->pending));
    p->pending->init = xcalloc(t->n_init_containers, sizeof(*p->pending->init));
    p->pending->n_init = t->n_init_containers;
    for (size_t i = 0; i < t->n_init_containers; i++) {
      if (resolve_step(c, &t->init_containers[i], &local, node->pod_name, &p->pending->init[i],
                       &why) < 0) {
        node_finish(node, PHASE_ERROR, why);
        goto done;
      }
    }
  }
  p->tmp_dir = xasprintf("%s/%s", c->opts->work_dir, node->id);
  if (make_step_tmp(p->tmp_dir, &why) < 0 || stage_image_entrypoint(p->tmp_dir, &r, &why) < 0) {
    node_finish(node, PHASE_ERROR, why);
    goto done;
  }
  if (has_mounts(t)) {
    p->volumes_dir = xasprintf("%s/%s.volumes", c->opts->work_dir, node->id);
    remove_tree(p->volumes_dir); /* a retry's pod gets fresh emptyDirs too */
    if (volumes_prepare_step(c->wf, t, c->opts->workspace_dir, p->volumes_dir, &binds, &why) <
        0) {
      node_finish(node, PHASE_ERROR, why);
      goto done;
    }
  }
  if (t->n_input_artifacts > 0) {
    if (p->volumes_dir == NULL) {
      p->volumes_dir = xasprintf("%s/%s.volumes", c->opts->work_dir, node->id);
      remove_tree(p->volumes_dir);
    }
    if ((mkdir(p->volumes_dir, 0755) < 0 && errno != EEXIST) ||
        stage_input_artifacts(t, &local, p->tmp_dir, p->volumes_dir, &binds, &why) < 0) {
      if (why == NULL)
        why = xasprintf("cannot create %s: %s", p->volumes_dir, strerror(errno));
      node_finish(node, PHASE_ERROR, why);
      goto done;
    }
  }
  p->node = node;
  p->tmpl = t;
  p->owner = c;
  p->output.on_line = on_output_line;
  p->output.on_line_ctx = p;
  if (p->pending != NULL) {
    /* Main waits, with everything it needs, for the init containers. */
    p->pending->main = r;
    p->pending->main_binds = binds;
    p->pending->main_tmp_dir = p->tmp_dir;
    memset(&r, 0, sizeof(r));
    binds = (struct step_binds){NULL, 0};
    p->tmp_dir = NULL;
    p->stage = 0;
    if (start_init_container(c, p) < 0)
      goto done;
  } else if (start_container(c, p, t, &r, &binds, true) < 0) {
    goto done;
  }
  p->in_exit_handler = x->in_exit_handler;
  pod_register(c, p);
  p = NULL;
  progress(c, "  started  %s (%s)", node->display_name, node->pod_name);
  controller_event(c, "node-started", node, false);
done:
  if (p != NULL)
    pod_discard(p);
  var_scope_clear(&local);
  resolved_step_free(&r);
  step_binds_free(&binds);
  free(why);
}

/* Output parameters are read from the step's files after it ended; only
 * its /tmp survives the step (the rest of its view was read-only). */
/* A file the step left in its /tmp, read from the host without trusting
 * the step: resolved beneath that directory only (no symlink or ".." out
 * of it), never blocking on a FIFO, regular files only, at most 16 MiB.
 * One trailing newline is dropped, as Argo's executor does.  NULL if absent. */
static char *read_step_file(const char *tmp_dir, const char *relative) {
  enum { MAX_OUTPUT = 16 * 1024 * 1024 };
  int dir = open(tmp_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return NULL;
  struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, dir, relative, &how, sizeof(how));
  close(dir);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *value = xmalloc(cap);
  for (;;) {
    if (len + 1 == cap) {
      if (cap >= MAX_OUTPUT)
        break;
      value = xrealloc(value, cap *= 2);
    }
    ssize_t n = read(fd, value + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  if (len > 0 && value[len - 1] == '\n')
    len--;
  value[len] = '\0';
  return value;
}

static int collect_output_parameters(struct pod *p, char **why) {
  const struct wf_template *t = p->tmpl;
  for (size_t i = 0; i < t->n_outputs; i++) {
    const struct wf_parameter *out = &t->outputs[i];
    char *value = NULL;
    if (out->value_from_path != NULL) {
      const char *path = out->value_from_path;
      char *vol_dir = NULL;
      const char *vol_rest = NULL;
      bool in_volume = volumes_locate(p->owner->wf, t, p->owner->opts->workspace_dir,
                                      p->volumes_dir, path, &vol_dir, &vol_rest) == 0;
      if (in_volume) /* the step saw the volume there, not its /tmp */
        value = read_step_file(vol_dir, vol_rest);
      else if (strncmp(path, "/tmp/", 5) == 0)
        value = read_step_file(p->tmp_dir, path + 5);
      free(vol_dir);
      if (value == NULL && out->default_value != NULL)
        value = strdup(out->default_value);
      if (value == NULL) {
        *why = xasprintf("failed to read output parameter '%s' from %s%s", out->name, path,
                         in_volume || strncmp(path, "/tmp/", 5) == 0
                             ? ": no such file"
                             : ": exitprobe collects output files only from the step's /tmp "
                               "and its volumes");
        return -1;
      }
    } else if (out->value != NULL) {
      value = strdup(out->value);
    }
    struct wf_node *n = p->node;
    n->output_parameters =
        realloc(n->output_parameters, (n->n_output_parameters + 1) * sizeof(struct name_value));
    if (n->output_parameters == NULL)
      abort();
    n->output_parameters[n->n_output_parameters].name = strdup(out->name);
    n->output_parameters[n->n_output_parameters].value = value;
    n->n_output_parameters++;
  }
  return 0;
}

/* The pod's fate becomes its node's phase and message (argo-semantics §2.2). */
static void settle_pod(struct controller *c, struct pod *p) {
  struct wf_node *node = p->node;
  const struct sandbox_result *res = &p->result;
  /* An init container that failed fails the pod as Error, and main, never
   * started, leaves no exit code or result (argo-semantics §2.2). */
  const char *ctr = p->pending != NULL ? p->tmpl->init_containers[p->stage].name : "main";
  enum node_phase failed = p->pending != NULL ? PHASE_ERROR : PHASE_FAILED;
  if (p->pending == NULL) {
    fault_plan_step_ended(c->opts->faults, node, &p->faults, res, now_realtime_us());
    node->has_exit_code = true;
    node->exit_code = res->exit_code;
    node->signal = res->signal;
    node->oom_killed = res->oom_killed;
    node->pids_limited = res->pids_limited;
    node->memory_peak = res->memory_peak;
    free(node->result);
    node->result = step_output_result(&p->output);
  }
  enum node_phase phase;
  char *msg = NULL;
  if (res->setup_failed && strncmp(res->setup_error, "exec", 4) != 0) {
    phase = PHASE_ERROR;
    msg = xasprintf("sandbox set-up failed: %s", res->setup_error);
  } else if (res->setup_failed) {
    phase = failed;
    msg = xasprintf("%s: Error (exit code %d): %s", ctr, res->exit_code, res->setup_error);
  } else if (p->kill_reason == KILL_SHUTDOWN) {
    phase = PHASE_FAILED;
    msg = xasprintf("workflow shutdown with strategy:  %s", c->terminating ? "Terminate" : "Stop");
  } else if (p->kill_reason == KILL_WF_DEADLINE) {
    phase = PHASE_FAILED;
    msg = strdup("Step exceeded its deadline");
  } else if (p->kill_reason == KILL_POD_DEADLINE) {
    phase = PHASE_FAILED;
    msg = strdup("Pod was active on the node longer than the specified deadline");
  } else if (res->exit_code == 0) {
    phase = PHASE_SUCCEEDED;
  } else if (res->oom_killed) {
    phase = failed;
    msg = xasprintf("%s: OOMKilled (exit code %d)", ctr, res->exit_code);
  } else {
    phase = failed;
    msg = xasprintf("%s: Error (exit code %d)", ctr, res->exit_code);
  }
  if (phase == PHASE_SUCCEEDED) {
    char *why = NULL;
    if (collect_output_parameters(p, &why) < 0) {
      phase = PHASE_ERROR;
      msg = why;
    }
  }
  node_finish(node, phase, msg);
  publish_node_global_outputs(c, node);
  progress(c, "  finished %s: %s%s%s", node->display_name, node_phase_name(phase), msg ? ": " : "",
           msg ? msg : "");
  controller_event(c, "node-finished", node, false);
  free(msg);
}

static void pod_watch(struct controller *c, struct pod *p);

/* An init container ended well: the next one, or main, starts in the same
 * pod (same volumes, same deadline), in a /tmp of its own. */
static int start_next_container(struct controller *c, struct pod *p) {
  remove_tree(p->tmp_dir);
  remove_output_files(p);
  free(p->tmp_dir);
  p->tmp_dir = NULL;
  p->step = (struct sandbox_step){.pidfd = -1, .stdout_fd = -1, .stderr_fd = -1, .notify_fd = -1};
  memset(&p->result, 0, sizeof(p->result));
  p->exited = p->stdout_eof = p->stderr_eof = false;
  p->stage++;
  int rc = p->stage < p->tmpl->n_init_containers ? start_init_container(c, p)
                                                 : start_main_container(c, p);
  if (rc < 0) {
    controller_event(c, "node-finished", p->node, false);
    return -1;
  }
  pod_watch(c, p);
  return 0;
}

static bool init_container_passed(const struct pod *p) {
  return p->pending != NULL && p->kill_reason == KILL_NONE && !p->result.setup_failed &&
         p->result.exit_code == 0;
}

void maybe_finish_pod(struct controller *c, struct pod *p) {
  if (!(p->exited && p->stdout_eof && p->stderr_eof))
    return;
  if (init_container_passed(p)) {
    if (start_next_container(c, p) == 0)
      return;
  } else {
    if (p->pending == NULL) { /* an init container's output is not the node's log */
      step_output_flush(&p->output, 1, p->node);
      step_output_flush(&p->output, 2, p->node);
    }
    settle_pod(c, p);
  }
  for (struct pod **pp = &c->pods; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  c->n_pods--;
  pod_discard(p);
}

void drain_pipe(struct controller *c, struct pod *p, int stream) {
  int *fd = stream == 1 ? &p->step.stdout_fd : &p->step.stderr_fd;
  char buf[65536];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n > 0) {
      if (p->pending == NULL) /* an init container's output is not the node's log */
        step_output_feed(&p->output, stream, buf, (size_t)n, p->node);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return;
    /* EOF (or an error we cannot do better with): the stream is over. */
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, *fd, NULL);
    close(*fd);
    *fd = -1;
    if (stream == 1)
      p->stdout_eof = true;
    else
      p->stderr_eof = true;
    return;
  }
}

/* A supervised step's output file: read what it added (the end of the
 * file is not the end of the stream while the step runs). */
static void drain_file(struct pod *p, int stream) {
  int fd = stream == 1 ? p->step.stdout_fd : p->step.stderr_fd;
  char buf[65536];
  ssize_t n;
  while (fd >= 0 && ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0 && p->pending == NULL)
      step_output_feed(&p->output, stream, buf, (size_t)n, p->node);
}

/* Its init has exited, and with it every process of its PID namespace:
 * the files are complete. */
static void finish_output_files(struct controller *c, struct pod *p) {
  for (int stream = 1; stream <= 2; stream++) {
    int *fd = stream == 1 ? &p->step.stdout_fd : &p->step.stderr_fd;
    int *wd = stream == 1 ? &p->wd_stdout : &p->wd_stderr;
    drain_file(p, stream);
    if (*wd >= 0)
      inotify_rm_watch(c->inotify_fd, *wd);
    *wd = -1;
    if (*fd >= 0)
      close(*fd);
    *fd = -1;
  }
  p->stdout_eof = p->stderr_eof = true;
}

static int watch_output_files(struct controller *c, struct pod *p) {
  if (c->inotify_fd < 0) {
    c->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (c->inotify_fd < 0)
      return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "inotify_init1");
    c->output_files_watch = (struct watch){WATCH_OUTPUT_FILES, NULL};
    if (epoll_add(c, c->inotify_fd, &c->output_files_watch) < 0)
      return -1;
  }
  char *out = xasprintf("%s.stdout", p->tmp_dir), *err = xasprintf("%s.stderr", p->tmp_dir);
  p->wd_stdout = inotify_add_watch(c->inotify_fd, out, IN_MODIFY);
  p->wd_stderr = inotify_add_watch(c->inotify_fd, err, IN_MODIFY);
  free(out);
  free(err);
  if (p->wd_stdout < 0 || p->wd_stderr < 0)
    return ep_error_set_errno(c->err, EP_EXIT_INTERNAL, errno, "inotify_add_watch");
  /* What the step wrote before the watches existed. */
  drain_file(p, 1);
  drain_file(p, 2);
  return 0;
}

void drain_output_files(struct controller *c) {
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t n;
  while ((n = read(c->inotify_fd, buf, sizeof(buf))) > 0) {
    for (char *at = buf; at < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)at;
      at += sizeof(*ev) + ev->len;
      for (struct pod *p = c->pods; p; p = p->next) {
        if (p->exited || !p->output_files)
          continue;
        /* A lost queue (IN_Q_OVERFLOW, wd -1) means: read them all. */
        if (ev->wd == -1 || ev->wd == p->wd_stdout)
          drain_file(p, 1);
        if (ev->wd == -1 || ev->wd == p->wd_stderr)
          drain_file(p, 2);
      }
    }
  }
}

void pod_settle_ended(struct controller *c, struct pod *p) {
  p->exited = true;
  finish_output_files(c, p);
  p->next = c->pods;
  c->pods = p;
  c->n_pods++;
  maybe_finish_pod(c, p);
}

static void pod_watch(struct controller *c, struct pod *p) {
  p->watches[0] = (struct watch){WATCH_PIDFD, p};
  p->watches[1] = (struct watch){WATCH_STDOUT, p};
  p->watches[2] = (struct watch){WATCH_STDERR, p};
  p->watches[3] = (struct watch){WATCH_NOTIFY, p};
  bool pipes = !p->output_files;
  if (epoll_add(c, p->step.pidfd, &p->watches[0]) < 0 ||
      (pipes && epoll_add(c, p->step.stdout_fd, &p->watches[1]) < 0) ||
      (pipes && epoll_add(c, p->step.stderr_fd, &p->watches[2]) < 0) ||
      (p->output_files && watch_output_files(c, p) < 0) ||
      (p->step.notify_fd >= 0 && epoll_add(c, p->step.notify_fd, &p->watches[3]) < 0)) {
    c->internal_error = true;
    sandbox_signal(&p->step, SIGKILL, NULL);
  }
  p->node->phase = PHASE_RUNNING;
}

void pod_register(struct controller *c, struct pod *p) {
  pod_watch(c, p);
  p->next = c->pods;
  c->pods = p;
  c->n_pods++;
  if (p->deadline_us)
    want_wakeup(c, p->deadline_us);
}

static int decide_syscall(void *ctx, size_t tag, int nr) {
  struct pod *p = ctx;
  (void)nr;
  return fault_plan_decide_syscall(p->owner->opts->faults, p->node, &p->faults, tag,
                                   now_realtime_us());
}

void answer_syscall(struct controller *c, struct pod *p, uint32_t events) {
  if (p->step.notify_fd < 0)
    return;
  if (events & EPOLLIN) {
    ep_error *e = NULL;
    if (sandbox_handle_notification(&p->step, decide_syscall, p, &e) < 0) {
      progress(c, "  %s: answering a trapped syscall failed: %s", p->node->display_name,
               e->message);
      ep_error_free(&e);
    }
  } else if (events & (EPOLLHUP | EPOLLERR)) {
    /* Nothing under the filter is left: stop listening, the fd closes at reap. */
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->step.notify_fd, NULL);
  }
}

void reap_pod(struct controller *c, struct pod *p) {
  ep_error *e = NULL;
  epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->step.pidfd, NULL);
  if (p->step.notify_fd >= 0)
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->step.notify_fd, NULL);
  if (sandbox_reap(c->sandbox, &p->step, &p->result, &e) < 0) {
    p->result.setup_failed = true;
    snprintf(p->result.setup_error, sizeof(p->result.setup_error), "reaping the step: %s",
             e->message);
    ep_error_free(&e);
  }
  p->exited = true;
  if (p->output_files)
    finish_output_files(c, p);
}


/* Deadlines of running pods: SIGTERM when a deadline passes, SIGKILL when
 * the grace period after any SIGTERM is over. */
void tend_pods(struct controller *c) {
  int64_t now = now_realtime_us();
  int64_t grace = (int64_t)c->opts->grace_period_ms * 1000;
  for (struct pod *p = c->pods; p; p = p->next) {
    if (p->exited)
      continue;
    int64_t next =
        p->pending == NULL ? fault_plan_tick(c->opts->faults, p->node, &p->faults, &p->step, now) : 0;
    if (next != 0)
      want_wakeup(c, next);
    if (p->kill_reason == KILL_NONE && c->deadline_passed && !p->in_exit_handler) {
      p->kill_reason = KILL_WF_DEADLINE;
    } else if (p->kill_reason == KILL_NONE && p->deadline_us != 0 && now >= p->deadline_us) {
      p->kill_reason = p->deadline_us == c->deadline_us && !p->in_exit_handler
                           ? KILL_WF_DEADLINE
                           : KILL_POD_DEADLINE;
    } else if (p->deadline_us != 0 && p->kill_reason == KILL_NONE) {
      want_wakeup(c, p->deadline_us);
    }
    if (p->kill_reason != KILL_NONE && p->term_sent_us == 0) {
      p->term_sent_us = now;
      sandbox_signal(&p->step, SIGTERM, NULL);
    }
    if (p->term_sent_us != 0 && !p->kill_sent) {
      if (now >= p->term_sent_us + grace) {
        p->kill_sent = true;
        sandbox_signal(&p->step, SIGKILL, NULL);
      } else {
        want_wakeup(c, p->term_sent_us + grace);
      }
    }
  }
}

void signal_pods(struct controller *c, int sig, bool include_exit_handler, enum kill_reason why) {
  for (struct pod *p = c->pods; p; p = p->next) {
    if (p->exited || (p->in_exit_handler && !include_exit_handler))
      continue;
    if (p->kill_reason == KILL_NONE || why == KILL_SHUTDOWN)
      p->kill_reason = why;
    if (sig == SIGKILL)
      p->kill_sent = true;
    else if (p->term_sent_us == 0)
      p->term_sent_us = now_realtime_us();
    sandbox_signal(&p->step, sig, NULL);
  }
}

void kill_all_pods(struct controller *c) {
  while (c->pods != NULL) {
    struct pod *p = c->pods;
    if (!p->exited) {
      sandbox_signal(&p->step, SIGKILL, NULL);
      reap_pod(c, p);
    }
    c->pods = p->next;
    pod_discard(p);
  }
  c->n_pods = 0;
}
