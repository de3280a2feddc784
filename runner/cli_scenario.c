/* `exitprobe run SCENARIO|DIR...` and `exitprobe validate`: load every
 * scenario first (bad input runs nothing), run them one by one, check their
 * expectations, write one report each, a JUnit file, and a one-line verdict
 * per scenario. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "expectations.h"
#include "junit.h"
#include "report_json.h"
#include "report_text.h"
#include "run_once.h"
#include "../injector/mocks.h"
#include "run_control.h"
#include "../injector/faults.h"
#include "../injector/scenario.h"

/* One scenario on its way through the run. */
struct scenario_run {
  char *path;
  struct scenario *sc;
  struct workflow *wf;
  const char *verdict; /* passed / failed / inconclusive / error */
  char *reason;        /* why inconclusive or error */
  json_t *results;     /* expectation results */
  double seconds;
  time_t started;
  char *report_path;
  char *summary;
};

int cli_push(const char ***list, size_t *n, const char *item) {
  *list = realloc(*list, (*n + 1) * sizeof(**list));
  if (*list == NULL)
    abort();
  (*list)[(*n)++] = item;
  return 0;
}

static const char *const capability_names[] = {"namespaces", "cgroup", "memory", "pids",
                                               "freezer", "seccomp", "network", NULL};

bool capability_name_known(const char *name) {
  for (const char *const *c = capability_names; *c; c++)
    if (strcmp(*c, name) == 0)
      return true;
  return false;
}

static bool has_capability(const struct sandbox_capabilities *caps, const char *name) {
  if (strcmp(name, "namespaces") == 0)
    return caps->namespaces;
  if (strcmp(name, "cgroup") == 0)
    return caps->cgroup != SANDBOX_CGROUP_NONE;
  if (strcmp(name, "memory") == 0)
    return caps->memory_limit;
  if (strcmp(name, "pids") == 0)
    return caps->pids_limit;
  if (strcmp(name, "freezer") == 0)
    return caps->freezer;
  if (strcmp(name, "seccomp") == 0)
    return caps->seccomp;
  if (strcmp(name, "network") == 0)
    return caps->net_namespace;
  return false;
}

/* The capability a fault cannot fire without, or NULL. */
static const char *capability_for(const struct fault *f) {
  switch (f->action) {
  case FAULT_OOM:
    return "memory";
  case FAULT_PIDS:
    return "pids";
  case FAULT_FREEZE:
    return "freezer";
  case FAULT_SYSCALL:
    return "seccomp";
  case FAULT_NETWORK:
    return "network";
  default:
    return NULL;
  }
}

static void collect_paths(struct run_args *a, char ***paths, size_t *n, ep_error **err) {
  for (size_t i = 0; i < a->n_paths; i++) {
    struct stat sb;
    if (stat(a->paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      char **found = NULL;
      size_t n_found = 0;
      if (scenario_collect_dir(a->paths[i], &found, &n_found, err) < 0)
        return;
      for (size_t k = 0; k < n_found; k++) {
        *paths = realloc(*paths, (*n + 1) * sizeof(char *));
        (*paths)[(*n)++] = strdup(found[k]);
      }
      scenario_paths_free(found, n_found);
    } else {
      *paths = realloc(*paths, (*n + 1) * sizeof(char *));
      (*paths)[(*n)++] = strdup(a->paths[i]);
    }
  }
}

/* Load a scenario and its workflow; every problem is bad input. */
static int load_scenario(const char *path, struct scenario_run *r, ep_error **err) {
  struct ydoc *doc = NULL;
  r->path = strdup(path);
  if (!scenario_file_looks_like_scenario(path))
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "not a scenario (kind: Scenario); run a workflow on its own");
  if (scenario_load_file(path, &r->sc, err) < 0)
    return -1;
  if (scenario_load_workflow_doc(r->sc, &doc, err) < 0)
    return -1;
  size_t n_overrides = r->sc->n_params;
  if (workflow_from_doc(doc, r->sc->overrides, n_overrides, &r->wf, err) < 0) {
    ydoc_free(doc);
    return -1;
  }
  if (scenario_add_compensate(r->sc, r->wf, err) < 0)
    return -1;
  /* Runs locally: what only a cluster can do must be mocked. */
  if (scenario_check_targets(r->sc, r->wf, err) < 0 ||
      mocks_cover_workflow(r->sc->mocks, r->sc->n_mocks, r->wf, err) < 0)
    return -1;
  return 0;
}

static void scenario_run_clear(struct scenario_run *r) {
  free(r->path);
  free(r->reason);
  free(r->report_path);
  free(r->summary);
  json_decref(r->results);
  workflow_free(r->wf);
  scenario_free(r->sc);
}

static char *report_path_for(const struct run_args *a, const struct scenario *sc, size_t n_total) {
  char *path = NULL;
  if (a->report_path != NULL && n_total == 1)
    path = strdup(a->report_path);
  else if (asprintf(&path, "%s/%s.json", a->report_dir ? a->report_dir : "reports/out",
                    sc->name) < 0)
    abort();
  return path;
}

static void print_dry_run(const struct scenario_run *r) {
  printf("%s (%s): workflow %s\n", r->sc->name, r->path, r->wf->name);
  if (r->sc->n_faults == 0)
    printf("  no faults\n");
  for (size_t i = 0; i < r->sc->n_faults; i++) {
    char *d = fault_describe(&r->sc->faults[i]);
    printf("  would inject: %s\n", d);
    free(d);
  }
}

/* Run one loaded scenario and judge it. */
static int run_one(struct run_args *a, struct scenario_run *r, struct sandbox_context *sandbox,
                   size_t n_total, ep_error **err) {
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(sandbox);
  for (size_t i = 0; i < r->sc->n_faults; i++) {
    const char *need = capability_for(&r->sc->faults[i]);
    if (need != NULL && !has_capability(caps, need)) {
      r->verdict = "inconclusive";
      if (asprintf(&r->reason, "fault '%s' needs the %s capability, which this machine lacks",
                   fault_action_name(r->sc->faults[i].action), need) < 0)
        abort();
      for (size_t k = 0; k < a->n_requires; k++)
        if (strcmp(a->requires[k], need) == 0)
          r->verdict = "failed";
      return 0;
    }
  }
  struct fault_plan *plan =
      fault_plan_new(r->sc->faults, r->sc->n_faults, r->sc->seed, r->sc->time_scale);
  struct run_state *st = NULL;
  struct run_request req = {
      .wf = r->wf, .workflow_file = r->sc->workflow_path ? r->sc->workflow_path : r->path,
      .sandbox = sandbox, .faults = plan, .time_scale = r->sc->time_scale, .has_seed = true,
      .seed = r->sc->seed, .grace_ms = a->grace_ms, .isolate_network = a->isolate_network,
      .quiet = true, .images = a->images, .n_images = a->n_images, .run_dir = a->run_dir,
      .scenario_file = r->path, .delivery = r->sc->at_most_once ? 1 : 0,
      .compensate = r->sc->compensate,
      .idempotency = a->idempotency || expectations_want_idempotency(r->sc->expect),
      .state_probe = r->sc->state_probe ? r->sc->state_probe : a->state_probe,
      .mocks = r->sc->mocks, .n_mocks = r->sc->n_mocks,
  };
  /* `exitprobe stop|terminate NAME` reach the scenario's run too (a stop
   * is then part of what the scenario saw). */
  struct run_control control;
  if (run_control_open(r->wf->name, &control, err) < 0) {
    fault_plan_free(plan);
    return -1;
  }
  req.has_control = true;
  req.control_fd = control.read_fd;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  r->started = time(NULL);
  int rc = run_workflow(&req, &st, err);
  run_control_close(&control);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (rc < 0) {
    fault_plan_free(plan);
    return -1;
  }
  fault_plan_record(plan, st);
  bool all_fired = fault_plan_all_fired(plan);
  fault_plan_free(plan);
  json_t *report = report_build(st);
  json_object_set_new(report, "scenario",
                      json_pack("{s:s, s:s}", "name", r->sc->name, "file", r->path));
  if (expectations_evaluate(r->path, r->sc->expect, report, &r->results, err) < 0) {
    json_decref(report);
    run_state_free(st);
    return -1;
  }
  for (size_t i = 0; !all_fired && i < st->n_faults && r->reason == NULL; i++) {
    const struct fault_record *f = &st->faults[i];
    if (f->fired)
      continue;
    int w = f->detail ? asprintf(&r->reason, "fault did not fire: %s (%s)", f->description,
                                 f->detail)
                      : asprintf(&r->reason, "fault did not fire: %s", f->description);
    if (w < 0)
      abort();
  }
  bool idem_doubt = st->idempotency.checked && !st->idempotency.conclusive;
  if (idem_doubt && r->reason == NULL &&
      asprintf(&r->reason, "idempotency check inconclusive: %s", st->idempotency.reason) < 0)
    abort();
  r->verdict = expectations_verdict(r->results, !all_fired || idem_doubt);
  /* --idempotency on the command line: a change fails the scenario even
   * when its expect does not mention the check. */
  if (a->idempotency && st->idempotency.conclusive && !st->idempotency.idempotent &&
      !expectations_want_idempotency(r->sc->expect)) {
    r->verdict = "failed";
    free(r->reason);
    if (asprintf(&r->reason, "--idempotency: the exit handler is not idempotent: %s",
                 st->idempotency.reason) < 0)
      abort();
  }
  json_object_set_new(report, "expectations", json_incref(r->results));
  json_object_set_new(report, "verdict", json_string(r->verdict));
  if (r->reason != NULL)
    json_object_set_new(report, "verdictReason", json_string(r->reason));
  r->report_path = report_path_for(a, r->sc, n_total);
  if (asprintf(&r->summary, "workflow %s %s; exit handler %s (%d run%s)", r->wf->name,
               node_phase_name(st->phase), st->exit_handler.ran ? "ran" : "did not run",
               st->exit_handler.runs, st->exit_handler.runs == 1 ? "" : "s") < 0)
    abort();
  rc = report_write_object(report, r->report_path, err);
  json_decref(report);
  run_state_free(st);
  return rc;
}

static void print_verdict(const struct scenario_run *r) {
  const char *word = strcmp(r->verdict, "passed") == 0   ? "PASS"
                     : strcmp(r->verdict, "failed") == 0 ? "FAIL"
                     : strcmp(r->verdict, "error") == 0  ? "ERROR"
                                                         : "SKIP";
  printf("%-5s %s (%.1fs)", word, r->sc ? r->sc->name : r->path, r->seconds);
  if (r->summary)
    printf(": %s", r->summary);
  printf("\n");
  for (size_t i = 0; r->results && i < json_array_size(r->results); i++) {
    const json_t *res = json_array_get(r->results, i);
    if (json_is_true(json_object_get(res, "ok")))
      continue;
    char *text = expectation_result_text(res);
    printf("      %s:%lld:%lld: %s\n", r->path,
           (long long)json_integer_value(json_object_get(res, "line")),
           (long long)json_integer_value(json_object_get(res, "column")), text);
    free(text);
  }
  if (r->reason)
    printf("      %s\n", r->reason);
  if (r->report_path)
    printf("      report: %s\n", r->report_path);
}

static int write_junit(const struct run_args *a, struct scenario_run *runs, size_t n,
                       ep_error **err) {
  struct junit_case *cases = calloc(n + 1, sizeof(*cases));
  struct junit_property *props = calloc(3 * n + 1, sizeof(*props));
  char (*seeds)[32] = calloc(n + 1, sizeof(*seeds));
  char (*scales)[32] = calloc(n + 1, sizeof(*scales));
  if (cases == NULL || props == NULL || seeds == NULL || scales == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    struct junit_property *p = &props[3 * i];
    size_t np = 0;
    if (runs[i].sc != NULL) {
      snprintf(seeds[i], sizeof(seeds[i]), "%llu", (unsigned long long)runs[i].sc->seed);
      snprintf(scales[i], sizeof(scales[i]), "%g", runs[i].sc->time_scale);
      p[np++] = (struct junit_property){"seed", seeds[i]};
      p[np++] = (struct junit_property){"timeScale", scales[i]};
    }
    if (runs[i].wf != NULL)
      p[np++] = (struct junit_property){"workflow", runs[i].wf->name};
    cases[i] = (struct junit_case){
        .name = runs[i].sc ? runs[i].sc->name : runs[i].path,
        .file = runs[i].path,
        .verdict = runs[i].verdict,
        .time_seconds = runs[i].seconds,
        .started = runs[i].started,
        .expectations = runs[i].results,
        .reason = runs[i].reason,
        .system_out = runs[i].summary,
        .properties = p,
        .n_properties = np,
    };
  }
  int rc = junit_write_file(a->junit_path, cases, n, err);
  free(cases);
  free(props);
  free(seeds);
  free(scales);
  return rc;
}

int cli_run_scenarios(struct run_args *a) {
  ep_error *err = NULL;
  char **paths = NULL;
  size_t n = 0;
  struct scenario_run *runs = NULL;
  struct sandbox_context *sandbox = NULL;
  int status = EP_EXIT_OK;
  collect_paths(a, &paths, &n, &err);
  if (err != NULL)
    goto bad_input;
  runs = calloc(n + 1, sizeof(*runs));
  /* Everything is loaded before anything runs: bad input runs nothing. */
  for (size_t i = 0; i < n; i++)
    if (load_scenario(paths[i], &runs[i], &err) < 0)
      goto bad_input;
  if (a->run_dir != NULL && n > 1) {
    err = NULL;
    ep_error_set(&err, EP_EXIT_USAGE, "--run-dir names one run directory but %zu scenarios were given", n);
    goto bad_input;
  }
  if (n == 0) {
    fprintf(stderr, "exitprobe: no scenario found in the paths given: nothing was exercised\n");
    status = 4;
    goto out;
  }
  if (a->dry_run) {
    for (size_t i = 0; i < n; i++)
      print_dry_run(&runs[i]);
    goto out;
  }
  struct sandbox_options sopts = {.require_namespaces = true, .run_name = "scenarios"};
  if (sandbox_context_new(&sopts, &sandbox, &err) < 0) {
    ep_error_print(err, stderr);
    status = err->status;
    goto out;
  }
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(sandbox);
  for (size_t k = 0; k < a->n_requires; k++)
    if (!has_capability(caps, a->requires[k])) {
      fprintf(stderr, "exitprobe: --require %s: this machine lacks it\n", a->requires[k]);
      status = EP_EXIT_FAILED;
      goto out;
    }
  size_t passed = 0, failed = 0, skipped = 0, errors = 0;
  if (a->report_path != NULL && n > 1)
    fprintf(stderr, "exitprobe: --report names one file but %zu scenarios run: reports go to "
                    "%s/<scenario>.json (use --report-dir)\n",
            n, a->report_dir ? a->report_dir : "reports/out");
  for (size_t i = 0; i < n; i++) {
    if (run_one(a, &runs[i], sandbox, n, &err) < 0) {
      runs[i].verdict = "error";
      runs[i].reason = strdup(err ? err->message : "internal error");
      ep_error_free(&err);
    }
    print_verdict(&runs[i]);
    fflush(stdout);
    if (strcmp(runs[i].verdict, "passed") == 0)
      passed++;
    else if (strcmp(runs[i].verdict, "inconclusive") == 0)
      skipped++;
    else if (strcmp(runs[i].verdict, "error") == 0)
      errors++;
    else
      failed++;
  }
  printf("scenarios: %zu passed, %zu failed, %zu skipped\n", passed, failed + errors, skipped);
  if (a->junit_path != NULL && write_junit(a, runs, n, &err) < 0) {
    ep_error_print(err, stderr);
    status = EP_EXIT_INTERNAL;
    goto out;
  }
  /* A harness error outranks a verdict: the run itself is not to be trusted. */
  status = errors    ? EP_EXIT_INTERNAL
           : failed  ? EP_EXIT_FAILED
           : skipped ? EP_EXIT_ENVIRONMENT
                     : EP_EXIT_OK;
  goto out;
bad_input:
  ep_error_print(err, stderr);
  status = err ? err->status : EP_EXIT_USAGE;
out:
  ep_error_free(&err);
  for (size_t i = 0; i < n; i++) {
    if (runs != NULL)
      scenario_run_clear(&runs[i]);
    free(paths[i]);
  }
  free(runs);
  free(paths);
  sandbox_context_free(sandbox);
  return status;
}

int cli_validate(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    FILE *out = argc < 2 ? stderr : stdout;
    fputs("Usage: exitprobe validate FILE...\n\n"
          "Check workflows and scenarios without running anything (as argo lint).\n"
          "Exit status: 0 all valid; 2 a file is invalid (file:line:column: error: ...).\n",
          out);
    return argc < 2 ? EP_EXIT_USAGE : EP_EXIT_OK;
  }
  int status = EP_EXIT_OK;
  for (int i = 1; i < argc; i++) {
    ep_error *err = NULL;
    struct scenario_run r = {0};
    struct workflow *wf = NULL;
    int rc;
    if (scenario_file_looks_like_scenario(argv[i]))
      rc = load_scenario(argv[i], &r, &err);
    else if ((rc = workflow_load_file(argv[i], NULL, 0, &wf, &err)) == 0)
      rc = workflow_check_runnable(wf, NULL, 0, &err);
    if (rc < 0) {
      ep_error_print(err, stderr);
      status = EP_EXIT_USAGE;
    } else {
      const struct workflow *w = wf ? wf : r.wf;
      for (size_t k = 0; k < w->n_warnings; k++)
        fprintf(stderr, "%s\n", w->warnings[k]);
      printf("%s: valid %s\n", argv[i], wf ? "workflow" : "scenario");
    }
    ep_error_free(&err);
    scenario_run_clear(&r);
    workflow_free(wf);
  }
  return status;
}

int cli_crash_points(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    bool help = argc == 2;
    fputs("Usage: exitprobe crash-points WORKFLOW.yaml\n\n"
          "List, one per line, the points at which a scenario's controller-crash fault\n"
          "can kill the controller (action: controller-crash, at: POINT).\n",
          help ? stdout : stderr);
    return help ? EP_EXIT_OK : EP_EXIT_USAGE;
  }
  ep_error *err = NULL;
  struct workflow *wf = NULL;
  if (workflow_load_file(argv[1], NULL, 0, &wf, &err) < 0) {
    ep_error_print(err, stderr);
    int status = err->status;
    ep_error_free(&err);
    return status;
  }
  char **points = NULL;
  size_t n = 0;
  crash_points_list(wf, &points, &n);
  for (size_t i = 0; i < n; i++) {
    printf("%s\n", points[i]);
    free(points[i]);
  }
  free(points);
  workflow_free(wf);
  return EP_EXIT_OK;
}
