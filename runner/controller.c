#include "controller.h"

#include <errno.h>
#include <fcntl.h>
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

#include "step_output.h"
#include "template_vars.h"

#define MAX_TEMPLATE_DEPTH 128
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum watch_kind { WATCH_PIDFD, WATCH_STDOUT, WATCH_STDERR, WATCH_SIGNAL, WATCH_TIMER };

struct watch {
  enum watch_kind kind;
  struct pod *pod;
};

/* A launched step, from clone to the moment its node gets its final phase. */
struct pod {
  struct wf_node *node;
  const struct wf_template *tmpl;
  struct sandbox_step step;
  struct step_output output;
  struct sandbox_result result;
  struct watch watches[3];
  char *tmp_dir;           /* host directory bound at the step's /tmp */
  bool exited, stdout_eof, stderr_eof;
  bool in_exit_handler;    /* exempt from Stop */
  bool killed_by_shutdown;
  struct pod *next;
};

struct controller {
  const struct workflow *wf;
  struct sandbox_context *sandbox;
  const struct controller_options *opts;
  struct run_state *st;
  ep_error **err;
  struct var_scope globals;
  int epfd, sigfd, timerfd;
  struct watch sig_watch, timer_watch;
  struct pod *pods;        /* in flight */
  size_t n_pods;
  bool stopping;           /* Stop in effect */
  bool terminating;        /* Terminate in effect */
  bool internal_error;
  int depth;
  unsigned step_seq;
};

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  va_end(ap);
  return s;
}

static void progress(struct controller *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress(struct controller *c, const char *fmt, ...) {
  if (c->opts->progress == NULL)
    return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(c->opts->progress, fmt, ap);
  va_end(ap);
  fputc('\n', c->opts->progress);
  fflush(c->opts->progress);
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
  var_scope_set(&c->globals, "workflow.status", "Running");
  var_scope_set(&c->globals, "workflow.mainEntrypoint", wf->entrypoint);
  var_scope_set(&c->globals, "workflow.serviceAccountName", "default");
  char ts[32];
  format_rfc3339(c->st->started_at_us, ts);
  var_scope_set(&c->globals, "workflow.creationTimestamp", ts);
  var_scope_set(&c->globals, "workflow.creationTimestamp.RFC3339", ts);
  char secs[32];
  snprintf(secs, sizeof(secs), "%" PRId64, c->st->started_at_us / 1000000);
  var_scope_set(&c->globals, "workflow.creationTimestamp.s", secs);
  var_scope_set(&c->globals, "workflow.failures", "\"null\"");
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

/* ---- launching and collecting steps ---------------------------------- */

static int epoll_add(struct controller *c, int fd, struct watch *w) {
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
  char **envp;
  char *working_dir;
  char *source;
};

static void resolved_step_free(struct resolved_step *r) {
  free_strv(r->argv);
  free_strv(r->envp);
  free(r->working_dir);
  free(r->source);
}

static int subst(const char *in, const struct var_scope *scope, char **out, char **why) {
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

static int resolve_step(const struct wf_template *t, const struct var_scope *scope,
                        const char *hostname, struct resolved_step *r, char **why) {
  size_t n_argv = t->n_command + t->n_args + (t->kind == TEMPLATE_SCRIPT ? 1 : 0);
  r->argv = calloc(n_argv + 1, sizeof(char *));
  r->envp = calloc(t->n_env + 4, sizeof(char *));
  if (r->argv == NULL || r->envp == NULL)
    abort();
  size_t a = 0;
  for (size_t i = 0; i < t->n_command; i++)
    if (subst(t->command[i], scope, &r->argv[a++], why) < 0)
      return -1;
  if (t->kind == TEMPLATE_SCRIPT) {
    r->argv[a++] = strdup("/tmp/argo/staging/script");
    if (subst(t->source, scope, &r->source, why) < 0)
      return -1;
  }
  for (size_t i = 0; i < t->n_args; i++)
    if (subst(t->args[i], scope, &r->argv[a++], why) < 0)
      return -1;
  size_t e = 0;
  r->envp[e++] = strdup("PATH=" DEFAULT_PATH);
  r->envp[e++] = xasprintf("HOSTNAME=%s", hostname);
  r->envp[e++] = strdup("HOME=/root");
  for (size_t i = 0; i < t->n_env; i++) {
    char *value = NULL;
    if (subst(t->env[i].value, scope, &value, why) < 0)
      return -1;
    char *entry = xasprintf("%s=%s", t->env[i].name, value);
    free(value);
    /* A later definition of the same name wins, as in a container spec. */
    size_t name_len = strlen(t->env[i].name) + 1;
    size_t k;
    for (k = 0; k < e; k++)
      if (strncmp(r->envp[k], entry, name_len) == 0)
        break;
    if (k < e) {
      free(r->envp[k]);
      r->envp[k] = entry;
    } else {
      r->envp[e++] = entry;
    }
  }
  if (t->working_dir != NULL && subst(t->working_dir, scope, &r->working_dir, why) < 0)
    return -1;
  return 0;
}

static void pod_free(struct pod *p) {
  step_output_free(&p->output);
  if (p->step.stdout_fd >= 0)
    close(p->step.stdout_fd);
  if (p->step.stderr_fd >= 0)
    close(p->step.stderr_fd);
  free(p->tmp_dir);
  free(p);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_tree(const char *path) {
  if (path != NULL)
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void launch_pod(struct controller *c, struct wf_node *node, const struct wf_template *t,
                       const struct var_scope *scope, bool in_exit_handler) {
  struct resolved_step r = {0};
  char *why = NULL;
  ep_error *e = NULL;
  struct pod *p = calloc(1, sizeof(*p));
  if (p == NULL)
    abort();
  p->step.stdout_fd = p->step.stderr_fd = p->step.pidfd = -1;
  free(node->pod_name);
  node->pod_name = pod_name_for(c, node);
  struct var_scope local;
  var_scope_init(&local, scope);
  var_scope_set(&local, "pod.name", node->pod_name);
  var_scope_set(&local, "node.name", node->name);
  if (resolve_step(t, &local, node->pod_name, &r, &why) < 0) {
    node_finish(node, PHASE_ERROR, why);
    goto done;
  }
  p->tmp_dir = xasprintf("%s/%s", c->opts->work_dir, node->id);
  if (mkdir(p->tmp_dir, 0777) < 0 && errno != EEXIST) {
    char *msg = xasprintf("cannot create the step's /tmp (%s): %s", p->tmp_dir, strerror(errno));
    node_finish(node, PHASE_ERROR, msg);
    free(msg);
    goto done;
  }
  chmod(p->tmp_dir, 01777);
  struct sandbox_step_spec spec = {
      .name = node->id,
      .hostname = node->pod_name,
      .argv = r.argv,
      .envp = r.envp,
      .working_dir = r.working_dir,
      .script_source = r.source,
      .tmp_host_dir = p->tmp_dir,
      .memory_limit = t->memory_limit,
      .pids_limit = t->pids_limit,
      .network_isolated = c->opts->network_isolated,
  };
  if (sandbox_launch(c->sandbox, &spec, &p->step, &e) < 0) {
    /* A launch the machine refused is the machinery failing: Error, not Failed. */
    char *msg = xasprintf("failed to start the step: %s", e->message);
    node_finish(node, PHASE_ERROR, msg);
    free(msg);
    ep_error_free(&e);
    goto done;
  }
  p->node = node;
  p->tmpl = t;
  p->in_exit_handler = in_exit_handler;
  p->watches[0] = (struct watch){WATCH_PIDFD, p};
  p->watches[1] = (struct watch){WATCH_STDOUT, p};
  p->watches[2] = (struct watch){WATCH_STDERR, p};
  if (epoll_add(c, p->step.pidfd, &p->watches[0]) < 0 ||
      epoll_add(c, p->step.stdout_fd, &p->watches[1]) < 0 ||
      epoll_add(c, p->step.stderr_fd, &p->watches[2]) < 0) {
    c->internal_error = true;
    sandbox_signal(&p->step, SIGKILL, NULL);
  }
  node->phase = PHASE_RUNNING;
  p->next = c->pods;
  c->pods = p;
  c->n_pods++;
  p = NULL;
  progress(c, "  started  %s (%s)", node->display_name, node->pod_name);
done:
  if (p != NULL) {
    remove_tree(p->tmp_dir);
    pod_free(p);
  }
  var_scope_clear(&local);
  resolved_step_free(&r);
  free(why);
}

/* Output parameters are read from the step's files after it ended; only
 * its /tmp survives the step (the rest of its view was read-only). */
static int collect_output_parameters(struct pod *p, char **why) {
  const struct wf_template *t = p->tmpl;
  for (size_t i = 0; i < t->n_outputs; i++) {
    const struct wf_parameter *out = &t->outputs[i];
    char *value = NULL;
    if (out->value_from_path != NULL) {
      const char *path = out->value_from_path;
      if (strncmp(path, "/tmp/", 5) == 0) {
        char *host = xasprintf("%s/%s", p->tmp_dir, path + 5);
        FILE *f = fopen(host, "r");
        free(host);
        if (f != NULL) {
          size_t cap = 4096, len = 0;
          value = malloc(cap);
          size_t got;
          while (value != NULL && (got = fread(value + len, 1, cap - len - 1, f)) > 0) {
            len += got;
            if (len + 1 == cap && cap < (1u << 24))
              value = realloc(value, cap *= 2);
            else if (len + 1 == cap)
              break;
          }
          fclose(f);
          if (value == NULL)
            abort();
          if (len > 0 && value[len - 1] == '\n')
            len--;
          value[len] = '\0';
        }
      }
      if (value == NULL && out->default_value != NULL)
        value = strdup(out->default_value);
      if (value == NULL) {
        *why = xasprintf("failed to read output parameter '%s' from %s%s", out->name, path,
                         strncmp(path, "/tmp/", 5) == 0
                             ? ": no such file"
                             : ": exitprobe collects output files only from the step's /tmp");
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
  node->has_exit_code = true;
  node->exit_code = res->exit_code;
  node->signal = res->signal;
  node->oom_killed = res->oom_killed;
  node->memory_peak = res->memory_peak;
  free(node->result);
  node->result = step_output_result(&p->output);
  enum node_phase phase;
  char *msg = NULL;
  if (res->setup_failed && strncmp(res->setup_error, "exec", 4) != 0) {
    phase = PHASE_ERROR;
    msg = xasprintf("sandbox set-up failed: %s", res->setup_error);
  } else if (res->setup_failed) {
    phase = PHASE_FAILED;
    msg = xasprintf("main: Error (exit code %d): %s", res->exit_code, res->setup_error);
  } else if (p->killed_by_shutdown) {
    phase = PHASE_FAILED;
    msg = xasprintf("workflow shutdown with strategy:  %s", c->terminating ? "Terminate" : "Stop");
  } else if (res->exit_code == 0) {
    phase = PHASE_SUCCEEDED;
  } else if (res->oom_killed) {
    phase = PHASE_FAILED;
    msg = xasprintf("main: OOMKilled (exit code %d)", res->exit_code);
  } else {
    phase = PHASE_FAILED;
    msg = xasprintf("main: Error (exit code %d)", res->exit_code);
  }
  if (phase == PHASE_SUCCEEDED) {
    char *why = NULL;
    if (collect_output_parameters(p, &why) < 0) {
      phase = PHASE_ERROR;
      msg = why;
    }
  }
  node_finish(node, phase, msg);
  progress(c, "  finished %s: %s%s%s", node->display_name, node_phase_name(phase), msg ? ": " : "",
           msg ? msg : "");
  free(msg);
}

static void maybe_finish_pod(struct controller *c, struct pod *p) {
  if (!(p->exited && p->stdout_eof && p->stderr_eof))
    return;
  step_output_flush(&p->output, 1, p->node);
  step_output_flush(&p->output, 2, p->node);
  settle_pod(c, p);
  for (struct pod **pp = &c->pods; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  c->n_pods--;
  remove_tree(p->tmp_dir);
  pod_free(p);
}

static void drain_pipe(struct controller *c, struct pod *p, int stream) {
  int *fd = stream == 1 ? &p->step.stdout_fd : &p->step.stderr_fd;
  char buf[65536];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n > 0) {
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

static void reap_pod(struct controller *c, struct pod *p) {
  ep_error *e = NULL;
  epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->step.pidfd, NULL);
  if (sandbox_reap(c->sandbox, &p->step, &p->result, &e) < 0) {
    p->result.setup_failed = true;
    snprintf(p->result.setup_error, sizeof(p->result.setup_error), "reaping the step: %s",
             e->message);
    ep_error_free(&e);
  }
  p->exited = true;
}

/* ---- templates -------------------------------------------------------- */

struct exec_ctx {
  const char *boundary_id;
  bool in_exit_handler;
};

static struct wf_node *execute_template(struct controller *c, const char *name,
                                        const char *display, const struct wf_template *t,
                                        const struct var_scope *inputs, struct wf_node *parent,
                                        const struct exec_ctx *x);

static bool shutdown_applies(const struct controller *c, const struct exec_ctx *x) {
  return c->terminating || (c->stopping && !x->in_exit_handler);
}

/* Bind inputs.parameters.* for a template from the values passed to it. */
static int bind_inputs(const struct wf_template *t, const struct wf_parameter *args,
                       size_t n_args, const struct var_scope *arg_scope, struct var_scope *out,
                       char **why) {
  for (size_t i = 0; i < t->n_inputs; i++) {
    const struct wf_parameter *in = &t->inputs[i];
    const char *value = NULL;
    char *resolved = NULL;
    for (size_t a = 0; a < n_args; a++) {
      if (strcmp(args[a].name, in->name) != 0 || args[a].value == NULL)
        continue;
      if (arg_scope != NULL) {
        if (subst(args[a].value, arg_scope, &resolved, why) < 0)
          return -1;
        value = resolved;
      } else {
        value = args[a].value;
      }
    }
    if (value == NULL)
      value = in->value ? in->value : in->default_value;
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

/* steps.NAME.* of a finished step, visible to the groups after it. */
static void bind_step_outputs(struct var_scope *scope, const char *step, const struct wf_node *n) {
  char *key;
#define BIND(field, value)                                                                     \
  do {                                                                                         \
    key = xasprintf("steps.%s.%s", step, field);                                               \
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

static enum node_type node_type_for(const struct wf_template *t) {
  switch (t->kind) {
  case TEMPLATE_STEPS:
    return NODE_STEPS;
  case TEMPLATE_DAG:
    return NODE_DAG;
  case TEMPLATE_SUSPEND:
    return NODE_SUSPEND;
  default:
    return NODE_POD;
  }
}

static bool step_failure_counts(const struct wf_step *s, enum node_phase phase) {
  if (phase == PHASE_FAILED)
    return !s->continue_on_failed;
  if (phase == PHASE_ERROR)
    return !s->continue_on_error;
  return false;
}

/* One step group: all its steps run in parallel.  Returns the group node. */
static struct wf_node *execute_group(struct controller *c, struct wf_node *steps_node,
                                     const struct wf_template *t, size_t gi,
                                     struct var_scope *scope, struct wf_node *prev_group,
                                     const struct exec_ctx *x) {
  char *gname = xasprintf("%s[%zu]", steps_node->name, gi);
  char display[32];
  snprintf(display, sizeof(display), "[%zu]", gi);
  struct wf_node *group = run_state_find_name(c->st, gname);
  if (group == NULL) {
    group = run_state_add_node(c->st, gname, display, NODE_STEP_GROUP, NULL, steps_node->id);
    group->phase = PHASE_RUNNING;
    /* Argo chains groups: group i+1 hangs under every step of group i. */
    if (prev_group == NULL) {
      run_state_add_child(steps_node, group->id);
    } else {
      for (size_t k = 0; k < prev_group->n_children; k++)
        run_state_add_child(run_state_find_id(c->st, prev_group->children[k]), group->id);
    }
  }
  free(gname);
  if (node_phase_fulfilled(group->phase))
    return group;
  const struct wf_step_group *g = &t->groups[gi];
  struct exec_ctx child_x = {.boundary_id = steps_node->id, .in_exit_handler = x->in_exit_handler};
  bool all_done = true;
  const struct wf_node *failed = NULL;
  for (size_t si = 0; si < g->n_steps; si++) {
    const struct wf_step *s = &g->steps[si];
    const struct wf_template *target = workflow_find_template(c->wf, s->template_name);
    char *cname = xasprintf("%s.%s", group->name, s->name);
    struct wf_node *child = run_state_find_name(c->st, cname);
    if (child == NULL && shutdown_applies(c, x)) {
      child = run_state_add_node(c->st, cname, s->name, node_type_for(target), target->name,
                                 steps_node->id);
      run_state_add_child(group, child->id);
      node_finish(child, PHASE_FAILED, c->terminating
                                           ? "workflow shutdown with strategy: Terminate"
                                           : "workflow shutdown with strategy: Stop");
    } else if (child == NULL || !node_phase_fulfilled(child->phase)) {
      struct var_scope inputs;
      var_scope_init(&inputs, &c->globals);
      char *why = NULL;
      if (bind_inputs(target, s->arguments, s->n_arguments, scope, &inputs, &why) < 0) {
        if (child == NULL) {
          child = run_state_add_node(c->st, cname, s->name, node_type_for(target), target->name,
                                     steps_node->id);
          run_state_add_child(group, child->id);
        }
        node_finish(child, PHASE_ERROR, why);
        free(why);
      } else {
        child = execute_template(c, cname, s->name, target, &inputs, group, &child_x);
      }
      var_scope_clear(&inputs);
    }
    free(cname);
    if (child == NULL)
      return group; /* internal error, already recorded */
    if (!node_phase_fulfilled(child->phase))
      all_done = false;
    else if (failed == NULL && step_failure_counts(s, child->phase))
      failed = child;
  }
  if (!all_done)
    return group;
  if (failed != NULL) {
    char *msg = xasprintf("child '%s' failed", failed->id);
    node_finish(group, PHASE_FAILED, msg);
    free(msg);
  } else {
    node_finish(group, PHASE_SUCCEEDED, NULL);
  }
  return group;
}

static void execute_steps(struct controller *c, struct wf_node *node, const struct wf_template *t,
                          const struct var_scope *inputs, const struct exec_ctx *x) {
  struct var_scope scope;
  var_scope_init(&scope, inputs);
  struct wf_node *prev = NULL;
  for (size_t gi = 0; gi < t->n_groups; gi++) {
    struct wf_node *group = execute_group(c, node, t, gi, &scope, prev, x);
    if (c->internal_error || !node_phase_fulfilled(group->phase))
      goto out;
    if (group->phase == PHASE_FAILED || group->phase == PHASE_ERROR) {
      /* Steps roll up as Failed (never Error) with the group's message. */
      node_finish(node, PHASE_FAILED, group->message);
      goto out;
    }
    for (size_t si = 0; si < t->groups[gi].n_steps; si++) {
      char *cname = xasprintf("%s.%s", group->name, t->groups[gi].steps[si].name);
      const struct wf_node *child = run_state_find_name(c->st, cname);
      free(cname);
      if (child != NULL)
        bind_step_outputs(&scope, t->groups[gi].steps[si].name, child);
    }
    prev = group;
  }
  node_finish(node, PHASE_SUCCEEDED, NULL);
out:
  var_scope_clear(&scope);
}

static struct wf_node *execute_template(struct controller *c, const char *name,
                                        const char *display, const struct wf_template *t,
                                        const struct var_scope *inputs, struct wf_node *parent,
                                        const struct exec_ctx *x) {
  struct wf_node *node = run_state_find_name(c->st, name);
  if (node != NULL && node_phase_fulfilled(node->phase))
    return node;
  if (node == NULL) {
    node = run_state_add_node(c->st, name, display, node_type_for(t), t->name, x->boundary_id);
    node->hooked = x->in_exit_handler && parent == NULL;
    if (parent != NULL)
      run_state_add_child(parent, node->id);
  }
  if (c->depth >= MAX_TEMPLATE_DEPTH) {
    node_finish(node, PHASE_ERROR, "maximum recursion depth exceeded");
    return node;
  }
  c->depth++;
  switch (t->kind) {
  case TEMPLATE_CONTAINER:
  case TEMPLATE_SCRIPT:
    if (node->phase == PHASE_PENDING) {
      if (shutdown_applies(c, x))
        node_finish(node, PHASE_FAILED, c->terminating ? "workflow shutdown with strategy: Terminate"
                                                       : "workflow shutdown with strategy: Stop");
      else
        launch_pod(c, node, t, inputs, x->in_exit_handler);
    }
    break;
  case TEMPLATE_STEPS:
    node->phase = PHASE_RUNNING;
    {
      struct exec_ctx inner = {.boundary_id = node->id, .in_exit_handler = x->in_exit_handler};
      execute_steps(c, node, t, inputs, &inner);
    }
    break;
  default:
    node_finish(node, PHASE_ERROR, "template kind not supported by exitprobe yet");
    break;
  }
  c->depth--;
  return node;
}

/* ---- the workflow ----------------------------------------------------- */

static const struct wf_template *template_or_die(const struct controller *c, const char *name) {
  const struct wf_template *t = workflow_find_template(c->wf, name);
  if (t == NULL)
    abort(); /* validation guarantees it */
  return t;
}

static struct wf_node *run_top(struct controller *c, const char *name, const char *tmpl_name,
                               bool exit_handler) {
  const struct wf_template *t = template_or_die(c, tmpl_name);
  struct var_scope inputs;
  var_scope_init(&inputs, &c->globals);
  struct exec_ctx x = {.boundary_id = NULL, .in_exit_handler = exit_handler};
  struct wf_node *node = run_state_find_name(c->st, name);
  char *why = NULL;
  if (node == NULL &&
      bind_inputs(t, c->wf->arguments, c->wf->n_arguments, NULL, &inputs, &why) < 0) {
    node = run_state_add_node(c->st, name, name, node_type_for(t), t->name, NULL);
    node->hooked = exit_handler;
    node_finish(node, PHASE_ERROR, why);
    free(why);
  } else {
    if (node != NULL)
      bind_inputs(t, c->wf->arguments, c->wf->n_arguments, NULL, &inputs, &why);
    free(why);
    node = execute_template(c, name, name, t, &inputs, NULL, &x);
  }
  var_scope_clear(&inputs);
  return node;
}

/* One pass over the workflow, Argo's operate(): advance the entry node,
 * then -- once it is fulfilled -- the exit handler, then settle the phase. */
static void reconcile(struct controller *c) {
  struct run_state *st = c->st;
  if (node_phase_fulfilled(st->phase) && st->phase != PHASE_RUNNING)
    return;
  set_duration(c);
  struct wf_node *entry = run_top(c, c->wf->name, c->wf->entrypoint, false);
  if (c->internal_error || !node_phase_fulfilled(entry->phase))
    return;
  const char *status = workflow_status_of(entry->phase);
  struct wf_node *handler = NULL;
  if (c->wf->on_exit != NULL) {
    char *name = xasprintf("%s.onExit", c->wf->name);
    handler = run_state_find_name(st, name);
    if (handler == NULL && !c->terminating) {
      var_scope_set(&c->globals, "workflow.status", status);
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
    if (handler != NULL || !c->terminating)
      handler = run_top(c, name, c->wf->on_exit, true);
    free(name);
    if (handler != NULL) {
      free(st->exit_handler.node_id);
      st->exit_handler.node_id = strdup(handler->id);
      st->exit_handler.phase = handler->phase;
      if (!node_phase_fulfilled(handler->phase))
        return;
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
  char *stopped = NULL;
  if (phase != PHASE_SUCCEEDED && st->shutdown != NULL)
    msg = stopped = xasprintf("Stopped with strategy '%s'", st->shutdown);
  st->phase = phase;
  free(st->message);
  st->message = msg ? strdup(msg) : NULL;
  st->finished_at_us = now_realtime_us();
  free(stopped);
}

/* ---- signals and shutdown -------------------------------------------- */

static void signal_pods(struct controller *c, int sig, bool include_exit_handler) {
  for (struct pod *p = c->pods; p; p = p->next) {
    if (p->exited || (p->in_exit_handler && !include_exit_handler))
      continue;
    p->killed_by_shutdown = true;
    sandbox_signal(&p->step, sig, NULL);
  }
}

static void arm_timer(struct controller *c, int ms) {
  struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L}};
  if (ms == 0)
    its.it_value.tv_nsec = 1;
  timerfd_settime(c->timerfd, 0, &its, NULL);
}

static void on_signal(struct controller *c) {
  struct signalfd_siginfo si;
  while (read(c->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (c->st->interrupt_signal == 0)
      c->st->interrupt_signal = (int)si.ssi_signo;
    c->st->interrupted = true;
    if (!c->stopping) {
      /* First interrupt: Argo's `stop` -- steps get SIGTERM, the exit handler still runs. */
      c->stopping = true;
      free(c->st->shutdown);
      c->st->shutdown = strdup("Stop");
      progress(c, "  interrupted (%s): stopping steps; the exit handler still runs. "
                  "Interrupt again to terminate.",
               strsignal((int)si.ssi_signo));
      signal_pods(c, SIGTERM, false);
      arm_timer(c, c->opts->grace_period_ms);
    } else if (!c->terminating) {
      /* Second interrupt: `terminate` -- everything, exit handler included, is killed. */
      c->terminating = true;
      free(c->st->shutdown);
      c->st->shutdown = strdup("Terminate");
      progress(c, "  interrupted again: terminating, exit handler included");
      signal_pods(c, SIGKILL, true);
    }
  }
}

static void on_timer(struct controller *c) {
  uint64_t expirations;
  if (read(c->timerfd, &expirations, sizeof(expirations)) < 0)
    return;
  /* The grace period is over: what Stop asked politely is now enforced. */
  signal_pods(c, SIGKILL, c->terminating);
}

static int setup_loop(struct controller *c) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
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
  return 0;
}

static bool run_finished(const struct controller *c) {
  return c->n_pods == 0 && c->st->phase != PHASE_RUNNING && c->st->phase != PHASE_PENDING;
}

static void kill_all_pods(struct controller *c) {
  while (c->pods != NULL) {
    struct pod *p = c->pods;
    if (!p->exited) {
      sandbox_signal(&p->step, SIGKILL, NULL);
      reap_pod(c, p);
    }
    c->pods = p->next;
    remove_tree(p->tmp_dir);
    pod_free(p);
  }
  c->n_pods = 0;
}

int controller_run(const struct workflow *wf, struct sandbox_context *sandbox,
                   const struct controller_options *opts, struct run_state *st, ep_error **err) {
  struct controller c = {.wf = wf, .sandbox = sandbox, .opts = opts, .st = st, .err = err,
                         .epfd = -1, .sigfd = -1, .timerfd = -1};
  int rc = -1;
  st->phase = PHASE_RUNNING;
  if (st->started_at_us == 0)
    st->started_at_us = now_realtime_us();
  st->exit_handler.declared = wf->on_exit != NULL;
  init_globals(&c);
  if (mkdir(opts->work_dir, 0700) < 0 && errno != EEXIST) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create %s", opts->work_dir);
    goto out;
  }
  if (setup_loop(&c) < 0)
    goto out;
  reconcile(&c);
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
      case WATCH_PIDFD:
        reap_pod(&c, w->pod);
        break;
      case WATCH_STDOUT:
        drain_pipe(&c, w->pod, 1);
        break;
      case WATCH_STDERR:
        drain_pipe(&c, w->pod, 2);
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
  if (c.epfd >= 0)
    close(c.epfd);
  if (c.sigfd >= 0)
    close(c.sigfd);
  if (c.timerfd >= 0)
    close(c.timerfd);
  return rc;
}
