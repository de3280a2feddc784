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
#include "image_config.h"
#include "run_once.h"
#include "run_control.h"
#include "../injector/faults.h"
#include "../injector/scenario.h"
#include <sys/stat.h>
#include "controller.h"
#include "error.h"
#include "report_json.h"
#include "report_text.h"
#include "report_text_json.h"
#include "run_state.h"
#include "sandbox.h"
#include "workflow.h"
#include "yaml_doc.h"

#define DEFAULT_GRACE_MS 10000


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
        "      --image IMAGE=DIR/      run IMAGE's steps in DIR (its unpacked filesystem,\n"
        "                              e.g. from docker export) as their read-only root\n"
        "      --image-config FILE     images' rootfs, entrypoint, cmd, env, workingDir\n"
        "                              (YAML; --image wins over it)\n"
        "      --grace-period DURATION time between SIGTERM and SIGKILL when stopping\n"
        "                              steps (default 10s; e.g. 500ms, 2s, 1m)\n"
        "      --isolate-network       give every step its own network namespace\n"
        "                              (loopback only); pods have a network by default\n"
        "      --color WHEN            auto (default), always or never; NO_COLOR is honoured\n"
        "  -q, --quiet                 no live progress lines on stderr\n"
        "      --run-dir DIR           keep the run's directory (ledger, controller state)\n"
        "                              in DIR and supervise the run, so that `exitprobe\n"
        "                              watchdog DIR` can reconcile it if this process dies\n"
        "      --idempotency           after the run, run the exit handler a second time on\n"
        "                              the state the first left and compare the workspace\n"
        "                              (claim volumes); exit 1 when anything changed\n"
        "      --state-probe COMMAND   with --idempotency: a host shell command (cwd and\n"
        "                              $EXITPROBE_WORKSPACE = the workspace) whose output is\n"
        "                              compared as well\n"
        "      --keep-workspace DIR    copy the workspace (claim volumes) to DIR, which must\n"
        "                              not exist, at the end of the run\n"
        "      --fault TARGET:ACTION[=VALUE][@AFTER]\n"
        "                              inject a fault for a quick try (repeatable), e.g.\n"
        "                              work:exit=3, work:signal=SIGKILL@200ms, work:hang,\n"
        "                              work:oom=32Mi, work:pids=8, work:network=off,\n"
        "                              work:delay=1s, work:freeze=2s@100ms, :stop@1s\n"
        "\n"
        "Scenarios (kind: Scenario; a directory runs every scenario below it):\n"
        "      --report-dir DIR        one report per scenario, DIR/<scenario>.json\n"
        "      --junit FILE            JUnit XML, one testcase per scenario\n"
        "      --dry-run               print what would be injected where; run nothing\n"
        "      --require CAPABILITY    fail instead of skipping when it is missing\n"
        "                              (namespaces, cgroup, memory, pids, freezer, seccomp)\n"
        "  -h, --help                  show this help\n"
        "\n"
        "Interrupting (Ctrl-C, SIGTERM) stops the workflow like 'argo stop': steps get\n"
        "SIGTERM, the exit handler still runs, the report is marked interrupted.  A second\n"
        "interrupt terminates ('argo terminate'): the exit handler is killed too.\n"
        "SIGUSR1 asks for 'argo stop' and SIGUSR2 for 'argo terminate' without marking\n"
        "the run interrupted: the exit status then follows the workflow's phase.\n"
        "\n"
        "Exit status for a workflow: 0 Succeeded; 1 Failed or Error; 2 bad input or usage\n"
        "(nothing runs, no report); 3 a capability the run needs is missing; 70 internal\n"
        "error; 130/143 interrupted by SIGINT/SIGTERM.\n"
        "For scenarios: 0 every expectation held; 1 one was violated; 2 bad input (nothing\n"
        "runs); 3 inconclusive (a fault did not fire, a capability is missing); 4 nothing\n"
        "was exercised.\n",
        out);
}

/* A Go duration ("500ms", "2s", "1m30s") or bare seconds, at most a day. */
static int parse_duration_ms(const char *text, int *out) {
  double secs;
  if (parse_duration_seconds(text, true, &secs) < 0 || secs > 86400)
    return -1;
  *out = (int)(secs * 1000);
  return 0;
}
static int parse_args(int argc, char **argv, struct run_args *a, ep_error **err) {
  enum { OPT_GRACE = 256, OPT_COLOR, OPT_NET, OPT_IMAGE, OPT_REPORT_DIR, OPT_JUNIT, OPT_DRY_RUN,
         OPT_REQUIRE, OPT_FAULT, OPT_RUN_DIR, OPT_IDEMPOTENCY, OPT_STATE_PROBE,
         OPT_KEEP_WORKSPACE, OPT_IMAGE_CONFIG };
  static const struct option longopts[] = {
      {"parameter", required_argument, NULL, 'p'},
      {"parameter-file", required_argument, NULL, 'f'},
      {"image", required_argument, NULL, OPT_IMAGE},
      {"image-config", required_argument, NULL, OPT_IMAGE_CONFIG},
      {"report-dir", required_argument, NULL, OPT_REPORT_DIR},
      {"junit", required_argument, NULL, OPT_JUNIT},
      {"dry-run", no_argument, NULL, OPT_DRY_RUN},
      {"require", required_argument, NULL, OPT_REQUIRE},
      {"fault", required_argument, NULL, OPT_FAULT},
      {"run-dir", required_argument, NULL, OPT_RUN_DIR},
      {"report", required_argument, NULL, 'r'},
      {"grace-period", required_argument, NULL, OPT_GRACE},
      {"color", required_argument, NULL, OPT_COLOR},
      {"isolate-network", no_argument, NULL, OPT_NET},
      {"quiet", no_argument, NULL, 'q'},
      {"idempotency", no_argument, NULL, OPT_IDEMPOTENCY},
      {"state-probe", required_argument, NULL, OPT_STATE_PROBE},
      {"keep-workspace", required_argument, NULL, OPT_KEEP_WORKSPACE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  a->grace_ms = DEFAULT_GRACE_MS;
  a->color = -1;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, ":p:f:r:qh", longopts, NULL)) != -1) {
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
    case OPT_IMAGE:
      if (image_set_add_arg(&a->image_set, optarg, err) < 0)
        return -1;
      break;
    case OPT_IMAGE_CONFIG:
      a->image_config = optarg;
      break;
    case OPT_GRACE:
      if (parse_duration_ms(optarg, &a->grace_ms) < 0)
        return ep_error_set(err, EP_EXIT_USAGE,
                            "--grace-period: '%s' is not a duration (e.g. 500ms, 10s, 1m)", optarg);
      break;
    case OPT_COLOR:
      if (cli_parse_color(optarg, &a->color, err) < 0)
        return -1;
      break;
    case OPT_NET:
      a->isolate_network = true;
      break;
    case OPT_REPORT_DIR:
      a->report_dir = optarg;
      break;
    case OPT_JUNIT:
      a->junit_path = optarg;
      break;
    case OPT_DRY_RUN:
      a->dry_run = true;
      break;
    case OPT_REQUIRE:
      if (cli_push(&a->requires, &a->n_requires, optarg) < 0 ||
          !capability_name_known(optarg))
        return ep_error_set(err, EP_EXIT_USAGE,
                            "--require: unknown capability '%s' (namespaces, cgroup, memory, "
                            "pids, freezer, seccomp)", optarg);
      break;
    case OPT_FAULT:
      cli_push(&a->quick_faults, &a->n_quick_faults, optarg);
      break;
    case OPT_RUN_DIR:
      a->run_dir = optarg;
      break;
    case 'q':
      a->quiet = true;
      break;
    case OPT_IDEMPOTENCY:
      a->idempotency = true;
      break;
    case OPT_STATE_PROBE:
      a->state_probe = optarg;
      break;
    case OPT_KEEP_WORKSPACE: {
      struct stat sb;
      if (lstat(optarg, &sb) == 0)
        return ep_error_set(err, EP_EXIT_USAGE, "--keep-workspace: %s exists; name a new "
                                                "directory", optarg);
      a->keep_workspace = optarg;
      break;
    }
    case 'h':
      return 1;
    case ':':
      return ep_error_set(err, EP_EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
    default:
      if (optopt != 0 && optopt < 256)
        return ep_error_set(err, EP_EXIT_USAGE, "unknown option '-%c'", optopt);
      return ep_error_set(err, EP_EXIT_USAGE, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (a->state_probe != NULL && !a->idempotency)
    return ep_error_set(err, EP_EXIT_USAGE, "--state-probe needs --idempotency");
  if (optind >= argc)
    return ep_error_set(err, EP_EXIT_USAGE, "run needs a workflow file (see exitprobe run --help)");
  a->paths = (const char **)&argv[optind];
  a->n_paths = (size_t)(argc - optind);
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

int exit_status_for(const struct run_state *st) {
  if (st->interrupted)
    return st->interrupt_signal == SIGTERM ? EP_EXIT_SIGTERM : EP_EXIT_SIGINT;
  return st->phase == PHASE_SUCCEEDED ? EP_EXIT_OK : EP_EXIT_FAILED;
}

int cli_parse_color(const char *text, int *color, ep_error **err) {
  if (strcmp(text, "auto") == 0)
    *color = -1;
  else if (strcmp(text, "always") == 0)
    *color = 1;
  else if (strcmp(text, "never") == 0)
    *color = 0;
  else
    return ep_error_set(err, EP_EXIT_USAGE, "--color must be auto, always or never");
  return 0;
}

bool cli_want_color(int setting) {
  if (setting >= 0)
    return setting == 1;
  const char *no_color = getenv("NO_COLOR");
  return (no_color == NULL || *no_color == '\0') && isatty(STDOUT_FILENO);
}

void cli_block_interrupts(void) {
  /* Before any step exists: no step may start between a signal and its handling. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigprocmask(SIG_BLOCK, &mask, NULL);
}

/* An error found in the scenario --fault options were turned into names
 * the option the user wrote, not the temporary file (its fault i is on
 * line 7 + i, see cli_quick_faults.c). */
static void quick_fault_error(const struct run_args *a, ep_error *e) {
  if (e == NULL || e->file == NULL || strstr(e->file, "exitprobe-faults-") == NULL)
    return;
  int i = e->line - 7;
  if (i >= 0 && (size_t)i < a->n_quick_faults)
    ep_error_wrap(e, "--fault '%s'", a->quick_faults[i]);
  else
    ep_error_wrap(e, "--fault");
  free(e->file);
  e->file = NULL;
  e->line = e->column = 0;
}

/* --idempotency: a change on the second run fails even a Succeeded run; a
 * check that could not be made is never a silent pass (exit 3). */
static int idempotency_status(const struct idempotency_record *r, int status) {
  if (!r->checked || (status != EP_EXIT_OK && status != EP_EXIT_FAILED))
    return status;
  if (!r->conclusive) {
    fprintf(stderr, "exitprobe: idempotency check inconclusive: %s\n", r->reason);
    return EP_EXIT_ENVIRONMENT;
  }
  if (!r->idempotent) {
    fprintf(stderr, "exitprobe: the exit handler is not idempotent: %s\n", r->reason);
    return EP_EXIT_FAILED;
  }
  return status;
}

/* A single workflow (with --fault quick faults, if any). */
static int run_single_workflow(struct run_args *a, ep_error **err) {
  struct workflow *wf = NULL;
  struct sandbox_context *sandbox = NULL;
  struct run_state *st = NULL;
  struct scenario *quick = NULL;
  struct fault_plan *plan = NULL;
  char *report_path = NULL;
  struct run_control control = {.read_fd = -1, .keep_fd = -1};
  int status = EP_EXIT_INTERNAL;
  if (workflow_load_file(a->workflow_path, a->params, a->n_params, &wf, err) < 0 ||
      workflow_check_runnable(wf, NULL, 0, err) < 0)
    goto fail;
  for (size_t i = 0; i < wf->n_warnings; i++)
    fprintf(stderr, "%s\n", wf->warnings[i]);
  if (a->n_quick_faults > 0) {
    if (quick_faults_scenario(a, &quick, err) < 0 || scenario_check_targets(quick, wf, err) < 0) {
      quick_fault_error(a, *err);
      goto fail;
    }
    plan = fault_plan_new(quick->faults, quick->n_faults, quick->seed, 1.0);
  }
  if (a->dry_run) {
    printf("%s: workflow %s\n", a->workflow_path, wf->name);
    if (quick == NULL || quick->n_faults == 0)
      printf("  no faults\n");
    for (size_t i = 0; quick && i < quick->n_faults; i++) {
      char *d = fault_describe(&quick->faults[i]);
      printf("  would inject: %s\n", d);
      free(d);
    }
    status = EP_EXIT_OK;
    goto out;
  }
  cli_block_interrupts();
  struct sandbox_options sopts = {.require_namespaces = true, .run_name = wf->name};
  if (sandbox_context_new(&sopts, &sandbox, err) < 0)
    goto fail;
  if (run_control_open(wf->name, &control, err) < 0)
    goto fail;
  if (!a->quiet)
    fprintf(stderr,
            "exitprobe: running workflow %s (%s); stop it with 'exitprobe stop %s' or "
            "'exitprobe terminate %s'\n",
            wf->name, a->workflow_path, control.name, control.name);
  struct run_request req = {
      .wf = wf, .workflow_file = a->workflow_path, .sandbox = sandbox, .faults = plan,
      .grace_ms = a->grace_ms, .isolate_network = a->isolate_network, .quiet = a->quiet,
      .images = a->images, .n_images = a->n_images, .run_dir = a->run_dir,
      .params = a->params, .n_params = a->n_params,
      .idempotency = a->idempotency, .state_probe = a->state_probe,
      .keep_workspace = a->keep_workspace,
      .has_control = true, .control_fd = control.read_fd,
  };
  int run_rc = run_workflow(&req, &st, err);
  run_control_close(&control);
  if (run_rc < 0)
    goto fail;
  fault_plan_record(plan, st);
  if (a->report_path != NULL)
    report_path = strdup(a->report_path);
  else if (asprintf(&report_path, "reports/out/%s.json", wf->name) < 0)
    abort();
  /* What a person reads is rendered from the report's view of the run, so
   * `run` and `exitprobe report --format text` print the same thing
   * (timeline included); neither the text nor the writer holds a JSON tree
   * of every node. */
  struct text_options topts = {.color = cli_want_color(a->color)};
  report_print_text_state(st, &topts, stdout);
  fflush(stdout);
  if (report_write_json(st, report_path, err) < 0)
    goto fail;
  printf("Report: %s\n", report_path);
  status = exit_status_for(st);
  /* A fault that did not fire is never a silent pass: say so, and exit 3. */
  for (size_t i = 0; i < st->n_faults; i++) {
    if (st->faults[i].fired)
      continue;
    fprintf(stderr, "exitprobe: fault did not fire: %s%s%s%s\n", st->faults[i].description,
            st->faults[i].detail ? " (" : "", st->faults[i].detail ? st->faults[i].detail : "",
            st->faults[i].detail ? ")" : "");
    if (status == EP_EXIT_OK || status == EP_EXIT_FAILED)
      status = EP_EXIT_ENVIRONMENT;
  }
  status = idempotency_status(&st->idempotency, status);
  goto out;
fail:
  ep_error_print(*err, stderr);
  status = *err ? (*err)->status : EP_EXIT_INTERNAL;
out:
  run_control_close(&control);
  free(report_path);
  run_state_free(st);
  sandbox_context_free(sandbox);
  fault_plan_free(plan);
  scenario_free(quick);
  workflow_free(wf);
  return status;
}

int cli_run(int argc, char **argv) {
  struct run_args a = {0};
  ep_error *err = NULL;
  struct ydoc *param_doc = NULL;
  int status;
  int parsed = parse_args(argc, argv, &a, &err);
  if (parsed == 1) {
    print_run_usage(stdout);
    status = EP_EXIT_OK;
    goto out;
  }
  if (parsed < 0 ||
      (a.parameter_file != NULL && load_parameter_file(&a, &param_doc, &err) < 0) ||
      (a.image_config != NULL && image_set_load(&a.image_set, a.image_config, &err) < 0)) {
    ep_error_print(err, stderr);
    status = err ? err->status : EP_EXIT_INTERNAL;
    goto out;
  }
  a.images = a.image_set.images;
  a.n_images = a.image_set.n_images;
  bool scenario_mode = a.n_paths > 1 || a.report_dir != NULL || a.junit_path != NULL;
  for (size_t i = 0; i < a.n_paths && !scenario_mode; i++) {
    struct stat sb;
    scenario_mode = (stat(a.paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) ||
                    scenario_file_looks_like_scenario(a.paths[i]);
  }
  if (scenario_mode) {
    cli_block_interrupts();
    status = cli_run_scenarios(&a);
  } else {
    status = run_single_workflow(&a, &err);
  }
out:
  ep_error_free(&err);
  free(a.params);
  image_set_free(&a.image_set);
  free(a.requires);
  free(a.quick_faults);
  ydoc_free(param_doc);
  return status;
}
