/* `exitprobe run WORKFLOW.yaml`: load, check the machine, run, report. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"
#include "controller.h"
#include "error.h"
#include "report_json.h"
#include "report_text.h"
#include "run_state.h"
#include "sandbox.h"
#include "workflow.h"
#include "yaml_doc.h"

#define DEFAULT_GRACE_MS 10000

struct run_args {
  const char *workflow_path;
  const char *report_path; /* NULL: reports/out/<name>.json */
  struct param_override *params;
  size_t n_params;
  int grace_ms;
  int color;               /* -1 auto, 0 never, 1 always */
  bool quiet;
  bool isolate_network;
  struct image_entrypoint *images;
  size_t n_images;
  const char *parameter_file;
};

static void print_run_usage(FILE *out) {
  fputs("Usage: exitprobe run [OPTIONS] WORKFLOW.yaml\n"
        "\n"
        "Run an Argo Workflow locally.  Every container/script step runs as a real\n"
        "process in its own PID, mount, UTS and IPC namespaces and cgroup, under a\n"
        "seccomp filter, on the host's root filesystem (read-only; images are not\n"
        "pulled).  Prints the node tree and the exit handler's output, and writes a\n"
        "JSON report.\n"
        "\n"
        "Options:\n"
        "  -p, --parameter NAME=VALUE  set a workflow argument (repeatable), as argo submit -p\n"
        "  -f, --parameter-file FILE   workflow arguments from a YAML/JSON mapping of\n"
        "                              NAME: VALUE, as argo submit --parameter-file\n"
        "  -r, --report FILE           JSON report path (default: reports/out/<workflow>.json)\n"
        "      --image IMAGE=PATH      run PATH as the entrypoint of IMAGE for containers\n"
        "                              without a command (argoproj/argosay:v2 is built in)\n"
        "      --grace-period DURATION time between SIGTERM and SIGKILL when stopping\n"
        "                              steps (default 10s; e.g. 500ms, 2s, 1m)\n"
        "      --isolate-network       give every step its own network namespace\n"
        "                              (loopback only); pods have a network by default\n"
        "      --color WHEN            auto (default), always or never; NO_COLOR is honoured\n"
        "  -q, --quiet                 no live progress lines on stderr\n"
        "  -h, --help                  show this help\n"
        "\n"
        "Interrupting (Ctrl-C, SIGTERM) stops the workflow like 'argo stop': steps get\n"
        "SIGTERM, the exit handler still runs, the report is marked interrupted.  A second\n"
        "interrupt terminates ('argo terminate'): the exit handler is killed too.\n"
        "\n"
        "Exit status: 0 Succeeded; 1 Failed or Error; 2 bad input or usage (nothing runs,\n"
        "no report); 3 a capability the run needs is missing; 70 internal error;\n"
        "130/143 interrupted by SIGINT/SIGTERM.\n",
        out);
}

/* "500ms", "2s", "1m", "1h", or a bare number of seconds. */
static int parse_duration_ms(const char *text, int *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (errno != 0 || end == text || v < 0)
    return -1;
  double factor;
  if (*end == '\0' || strcmp(end, "s") == 0)
    factor = 1000;
  else if (strcmp(end, "ms") == 0)
    factor = 1;
  else if (strcmp(end, "m") == 0)
    factor = 60000;
  else if (strcmp(end, "h") == 0)
    factor = 3600000;
  else
    return -1;
  double ms = v * factor;
  if (ms > 86400000.0)
    return -1;
  *out = (int)ms;
  return 0;
}

static int parse_args(int argc, char **argv, struct run_args *a, ep_error **err) {
  enum { OPT_GRACE = 256, OPT_COLOR, OPT_NET, OPT_IMAGE };
  static const struct option longopts[] = {
      {"parameter", required_argument, NULL, 'p'},
      {"parameter-file", required_argument, NULL, 'f'},
      {"image", required_argument, NULL, OPT_IMAGE},
      {"report", required_argument, NULL, 'r'},
      {"grace-period", required_argument, NULL, OPT_GRACE},
      {"color", required_argument, NULL, OPT_COLOR},
      {"isolate-network", no_argument, NULL, OPT_NET},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  a->grace_ms = DEFAULT_GRACE_MS;
  a->color = -1;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "p:f:r:qh", longopts, NULL)) != -1) {
    switch (opt) {
    case 'p': {
      char *eq = strchr(optarg, '=');
      if (eq == NULL || eq == optarg)
        return ep_error_set(err, EP_EXIT_USAGE, "-p expects NAME=VALUE, got '%s'", optarg);
      *eq = '\0';
      a->params = realloc(a->params, (a->n_params + 1) * sizeof(*a->params));
      if (a->params == NULL)
        abort();
      a->params[a->n_params++] = (struct param_override){optarg, eq + 1};
      break;
    }
    case 'r':
      a->report_path = optarg;
      break;
    case 'f':
      a->parameter_file = optarg;
      break;
    case OPT_IMAGE: {
      char *eq = strchr(optarg, '=');
      if (eq == NULL || eq == optarg || eq[1] == '\0')
        return ep_error_set(err, EP_EXIT_USAGE, "--image expects IMAGE=PATH, got '%s'", optarg);
      *eq = '\0';
      a->images = realloc(a->images, (a->n_images + 1) * sizeof(*a->images));
      if (a->images == NULL)
        abort();
      a->images[a->n_images++] = (struct image_entrypoint){optarg, eq + 1};
      break;
    }
    case OPT_GRACE:
      if (parse_duration_ms(optarg, &a->grace_ms) < 0)
        return ep_error_set(err, EP_EXIT_USAGE,
                            "--grace-period: '%s' is not a duration (e.g. 500ms, 10s, 1m)", optarg);
      break;
    case OPT_COLOR:
      if (strcmp(optarg, "auto") == 0)
        a->color = -1;
      else if (strcmp(optarg, "always") == 0)
        a->color = 1;
      else if (strcmp(optarg, "never") == 0)
        a->color = 0;
      else
        return ep_error_set(err, EP_EXIT_USAGE, "--color must be auto, always or never");
      break;
    case OPT_NET:
      a->isolate_network = true;
      break;
    case 'q':
      a->quiet = true;
      break;
    case 'h':
      return 1;
    default:
      if (optopt != 0 && optopt < 256)
        return ep_error_set(err, EP_EXIT_USAGE, "unknown or incomplete option '-%c'", optopt);
      return ep_error_set(err, EP_EXIT_USAGE, "unknown or incomplete option '%s'",
                          argv[optind - 1]);
    }
  }
  if (optind >= argc)
    return ep_error_set(err, EP_EXIT_USAGE, "run needs a workflow file (see exitprobe run --help)");
  if (optind + 1 < argc)
    return ep_error_set(err, EP_EXIT_USAGE,
                        "run takes one workflow file; unexpected '%s'", argv[optind + 1]);
  a->workflow_path = argv[optind];
  return 0;
}

/* argo submit --parameter-file: a mapping of NAME: VALUE.  Values from -p win. */
static int load_parameter_file(struct run_args *a, struct ydoc **doc_out, ep_error **err) {
  struct ydoc *doc = NULL;
  if (ydoc_load_file(a->parameter_file, NULL, &doc, err) < 0)
    return -1;
  *doc_out = doc;
  const struct ydoc_node *root = doc->root;
  if (root == NULL)
    return 0;
  if (root->kind != YDOC_MAPPING)
    return ep_error_at(err, EP_EXIT_USAGE, a->parameter_file, root->line, root->column,
                       "a parameter file is a mapping of NAME: VALUE");
  struct param_override *merged = calloc(root->n_pairs + a->n_params + 1, sizeof(*merged));
  if (merged == NULL)
    abort();
  size_t n = 0;
  for (size_t i = 0; i < root->n_pairs; i++) {
    const struct ydoc_node *v = root->pairs[i].value;
    if (v->kind != YDOC_SCALAR)
      return free(merged), ep_error_at(err, EP_EXIT_USAGE, a->parameter_file, v->line, v->column,
                                       "parameter '%s' must be a string, number or boolean",
                                       root->pairs[i].key->scalar);
    merged[n++] = (struct param_override){root->pairs[i].key->scalar, v->scalar};
  }
  for (size_t i = 0; i < a->n_params; i++)
    merged[n++] = a->params[i];
  free(a->params);
  a->params = merged;
  a->n_params = n;
  return 0;
}

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

static char *new_uid(void) {
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

static int exit_status_for(const struct run_state *st) {
  if (st->interrupted)
    return st->interrupt_signal == SIGTERM ? EP_EXIT_SIGTERM : EP_EXIT_SIGINT;
  return st->phase == PHASE_SUCCEEDED ? EP_EXIT_OK : EP_EXIT_FAILED;
}

static bool want_color(int setting) {
  if (setting >= 0)
    return setting == 1;
  const char *no_color = getenv("NO_COLOR");
  return (no_color == NULL || *no_color == '\0') && isatty(STDOUT_FILENO);
}

int cli_run(int argc, char **argv) {
  struct run_args a = {0};
  ep_error *err = NULL;
  struct workflow *wf = NULL;
  struct sandbox_context *sandbox = NULL;
  struct run_state *st = NULL;
  char *report_path = NULL;
  char work_dir[] = "/tmp/exitprobe-run-XXXXXX";
  struct ydoc *param_doc = NULL;
  char *argosay = NULL;
  int status = EP_EXIT_INTERNAL;

  int parsed = parse_args(argc, argv, &a, &err);
  if (parsed == 1) {
    print_run_usage(stdout);
    status = EP_EXIT_OK;
    goto out;
  }
  if (parsed < 0)
    goto fail;
  if (a.parameter_file != NULL && load_parameter_file(&a, &param_doc, &err) < 0)
    goto fail;
  if (workflow_load_file(a.workflow_path, a.params, a.n_params, &wf, &err) < 0)
    goto fail;
  for (size_t i = 0; i < wf->n_warnings; i++)
    fprintf(stderr, "%s\n", wf->warnings[i]);

  /* Block the interrupts before any step exists: the controller takes them
   * from a signalfd, and no step may be started between a signal and its handling. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  struct sandbox_options sopts = {.require_namespaces = true, .run_name = wf->name};
  if (sandbox_context_new(&sopts, &sandbox, &err) < 0)
    goto fail;

  st = run_state_new();
  st->workflow_name = strdup(wf->name);
  st->workflow_file = strdup(a.workflow_path);
  st->workflow_namespace = strdup(wf->namespace_);
  st->workflow_uid = new_uid();
  describe_environment(st, sandbox_context_capabilities(sandbox), a.isolate_network);
  for (size_t i = 0; i < wf->n_warnings; i++)
    run_state_add_warning(st, "%s", wf->warnings[i]);

  if (mkdtemp(work_dir) == NULL) {
    ep_error_set_errno(&err, EP_EXIT_INTERNAL, errno, "cannot create a work directory in /tmp");
    goto fail;
  }
  char *step_dirs = NULL;
  if (asprintf(&step_dirs, "%s/steps", work_dir) < 0)
    abort();
  argosay = find_argosay();
  struct controller_options copts = {
      .images = a.images,
      .n_images = a.n_images,
      .argosay_path = argosay,
      .time_scale = 1.0,
      .grace_period_ms = a.grace_ms,
      .network_isolated = a.isolate_network,
      .progress = a.quiet ? NULL : stderr,
      .work_dir = step_dirs,
  };
  if (!a.quiet)
    fprintf(stderr, "exitprobe: running workflow %s (%s)\n", wf->name, a.workflow_path);
  int rc = controller_run(wf, sandbox, &copts, st, &err);
  free(step_dirs);
  rmdir(work_dir);
  if (rc < 0)
    goto fail;

  if (a.report_path != NULL)
    report_path = strdup(a.report_path);
  else if (asprintf(&report_path, "reports/out/%s.json", wf->name) < 0)
    abort();
  struct text_options topts = {.color = want_color(a.color)};
  report_print_text(st, &topts, stdout);
  fflush(stdout);
  if (report_write_json(st, report_path, &err) < 0)
    goto fail;
  printf("Report: %s\n", report_path);
  status = exit_status_for(st);
  goto out;

fail:
  ep_error_print(err, stderr);
  status = err ? err->status : EP_EXIT_INTERNAL;
out:
  ep_error_free(&err);
  free(report_path);
  run_state_free(st);
  sandbox_context_free(sandbox);
  workflow_free(wf);
  free(a.params);
  free(a.images);
  free(argosay);
  ydoc_free(param_doc);
  return status;
}
