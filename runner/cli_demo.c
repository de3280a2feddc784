/* `exitprobe demo`: the seed lesson under every way a run can end,
 * observed rather than asserted.  Each case is a scenario around the seed
 * workflow, run for real; the demo prints what happened and why, and one
 * table at the end. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "atomic_file.h"
#include "report_html.h"
#include "report_json.h"
#include "run_once.h"
#include "../injector/faults.h"
#include "../injector/scenario.h"

/* The seed lesson's workflow, as the lesson gives it. */
static const char seed_workflow[] =
    "apiVersion: argoproj.io/v1alpha1\n"
    "kind: Workflow\n"
    "metadata:\n"
    "  name: exit-handler-workflow\n"
    "  namespace: argo\n"
    "spec:\n"
    "  entrypoint: main\n"
    "  onExit: cleanup # Always runs this template at the end\n"
    "  templates:\n"
    "  - name: main\n"
    "    steps:\n"
    "    - - name: work\n"
    "        template: do-work\n"
    "  - name: do-work\n"
    "    container:\n"
    "      image: alpine\n"
    "      command: [sh, -c]\n"
    "      args: [\"echo 'Doing work...'; exit 1\"] # This fails intentionally\n"
    "  - name: cleanup\n"
    "    container:\n"
    "      image: alpine\n"
    "      command: [sh, -c]\n"
    "      args:\n"
    "      - |\n"
    "        echo \"Workflow status: {{workflow.status}}\"\n"
    "        echo \"Cleaning up resources...\"\n"
    "        if [ \"{{workflow.status}}\" = \"Failed\" ]; then\n"
    "          echo \"Sending failure notification\"\n"
    "        fi\n";

struct demo_case {
  const char *name;
  const char *story; /* what the case shows, one line */
  const char *faults; /* YAML list items, or "" */
};

static const struct demo_case cases[] = {
    {"succeeds", "work forced to exit 0: the handler sees Succeeded, no notification",
     "  - {target: work, action: exit, code: 0}\n"},
    {"fails", "the lesson as written: work exits 1, the handler still runs and sees Failed", ""},
    {"killed", "work killed by SIGKILL mid-run: exit code 137, the handler runs",
     "  - {target: work, action: hang}\n"
     "  - {target: work, action: signal, signal: SIGKILL, after: 100ms}\n"},
    {"deadline", "work hangs past the workflow's deadline; the handler is exempt and runs",
     "  - {target: work, action: hang}\n"
     "  - {action: deadline, scope: workflow, activeDeadlineSeconds: 2}\n"},
    {"stopped", "argo stop while work runs: steps stopped, the handler still runs",
     "  - {target: work, action: hang}\n"
     "  - {action: shutdown, strategy: stop, target: work, after: 100ms}\n"},
    {"terminated", "argo terminate while work runs: the handler does NOT run",
     "  - {target: work, action: hang}\n"
     "  - {action: shutdown, strategy: terminate, target: work, after: 100ms}\n"},
    {"crash+restart", "controller killed while the handler runs, restarted: it adopts the pod",
     "  - {action: controller-crash, at: \"during:exit-handler\", then: restart}\n"},
    {"crash+stay-down", "controller killed before the handler, never back: the watchdog runs it",
     "  - {action: controller-crash, at: \"before:exit-handler\", then: stay-down}\n"},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -1;
  fputs(text, f);
  return fclose(f);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

struct demo_row {
  char phase[16];
  char ran[8];
  char by[16];
  char saw[16];
  int runs;
};

/* One case: scenario file, load, run, and the facts for the table. */
static int run_case(const char *dir, const struct demo_case *dc, struct sandbox_context *sandbox,
                    const char *html_dir, struct demo_row *row, ep_error **err) {
  char path[4096], *text = NULL;
  snprintf(path, sizeof(path), "%s/%s.yaml", dir, dc->name);
  if (asprintf(&text,
               "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: demo-%s}\n"
               "spec:\n  workflow: seed.yaml\n  timeScale: 0.25\n%s%s",
               strchr(dc->name, '+') ? "crash" : dc->name, *dc->faults ? "  faults:\n" : "",
               dc->faults) < 0)
    abort();
  int rc = write_text(path, text);
  free(text);
  if (rc < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot write %s", path);
  struct scenario *sc = NULL;
  struct workflow *wf = NULL;
  struct ydoc *doc = NULL;
  struct run_state *st = NULL;
  struct fault_plan *plan = NULL;
  rc = -1;
  if (scenario_load_file(path, &sc, err) < 0 || scenario_load_workflow_doc(sc, &doc, err) < 0)
    goto out;
  if (workflow_from_doc(doc, NULL, 0, &wf, err) < 0) {
    ydoc_free(doc);
    goto out;
  }
  plan = fault_plan_new(sc->faults, sc->n_faults, sc->seed, sc->time_scale);
  struct run_request req = {.wf = wf, .workflow_file = path, .sandbox = sandbox, .faults = plan,
                            .time_scale = sc->time_scale, .grace_ms = 2000, .quiet = true};
  if (run_workflow(&req, &st, err) < 0)
    goto out;
  fault_plan_record(plan, st);
  const struct exit_handler_record *eh = &st->exit_handler;
  snprintf(row->phase, sizeof(row->phase), "%s", node_phase_name(st->phase));
  snprintf(row->ran, sizeof(row->ran), "%s", eh->ran ? "yes" : "no");
  snprintf(row->by, sizeof(row->by), "%s",
           eh->by == BY_WATCHDOG ? "watchdog" : eh->by == BY_CONTROLLER ? "controller" : "-");
  snprintf(row->saw, sizeof(row->saw), "%s", eh->workflow_status ? eh->workflow_status : "-");
  row->runs = eh->runs;
  printf("%-17s %s\n", dc->name, dc->story);
  printf("%-17s -> workflow %s; exit handler %s", "", row->phase,
         eh->ran ? "ran" : "did not run");
  if (eh->ran)
    printf(" %d time%s, by the %s, saw {{workflow.status}}=%s", eh->runs,
           eh->runs == 1 ? "" : "s", row->by, row->saw);
  printf("\n");
  if (html_dir != NULL) {
    json_t *report = report_build(st);
    char out_path[4096];
    snprintf(out_path, sizeof(out_path), "%s/%s.html", html_dir, dc->name);
    char *html = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&html, &len);
    const json_t *reports[1] = {report};
    const char *sources[1] = {dc->name};
    report_html_render(reports, sources, 1, mem);
    fclose(mem);
    json_decref(report);
    int wrc = atomic_write_file(out_path, html, len, err);
    free(html);
    if (wrc < 0)
      goto out;
  }
  rc = 0;
out:
  run_state_free(st);
  fault_plan_free(plan);
  workflow_free(wf);
  scenario_free(sc);
  return rc;
}

int cli_demo(int argc, char **argv) {
  const char *html_dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--html") == 0 && i + 1 < argc) {
      html_dir = argv[++i];
    } else {
      FILE *out = strcmp(argv[i], "--help") == 0 ? stdout : stderr;
      fputs("Usage: exitprobe demo [--html DIR]\n\n"
            "Run the seed lesson's workflow under every way a run can end -- succeeds, fails,\n"
            "killed, deadline, stopped, terminated, controller crash then restart, controller\n"
            "down with the watchdog compensating -- and show what the exit handler did.\n"
            "--html DIR writes each run's graph as DIR/<case>.html.\n",
            out);
      return out == stdout ? EP_EXIT_OK : EP_EXIT_USAGE;
    }
  }
  ep_error *err = NULL;
  char dir[] = "/tmp/exitprobe-demo-XXXXXX";
  struct sandbox_context *sandbox = NULL;
  int status = EP_EXIT_INTERNAL;
  struct demo_row rows[N_CASES];
  memset(rows, 0, sizeof(rows));
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "exitprobe: cannot create a directory in /tmp: %s\n", strerror(errno));
    return EP_EXIT_INTERNAL;
  }
  char seed_path[4096];
  snprintf(seed_path, sizeof(seed_path), "%s/seed.yaml", dir);
  if (write_text(seed_path, seed_workflow) < 0 ||
      (html_dir != NULL && mkdir(html_dir, 0755) < 0 && errno != EEXIST)) {
    fprintf(stderr, "exitprobe: cannot write the demo files: %s\n", strerror(errno));
    goto out;
  }
  struct sandbox_options sopts = {.require_namespaces = true, .run_name = "demo"};
  if (sandbox_context_new(&sopts, &sandbox, &err) < 0)
    goto fail;
  printf("The seed lesson: 'work' fails on purpose; 'cleanup' is spec.onExit.\n\n");
  for (size_t i = 0; i < N_CASES; i++)
    if (run_case(dir, &cases[i], sandbox, html_dir, &rows[i], &err) < 0)
      goto fail;
  printf("\n| case | workflow | exit handler ran? | runs | by | saw {{workflow.status}} |\n");
  printf("|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_CASES; i++)
    printf("| %s | %s | %s | %d | %s | %s |\n", cases[i].name, rows[i].phase, rows[i].ran,
           rows[i].runs, rows[i].by, rows[i].saw);
  if (html_dir != NULL)
    printf("\nGraphs: %s/<case>.html\n", html_dir);
  status = EP_EXIT_OK;
  goto out;
fail:
  ep_error_print(err, stderr);
  status = err ? err->status : EP_EXIT_INTERNAL;
out:
  ep_error_free(&err);
  sandbox_context_free(sandbox);
  nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
  return status;
}
