/* The exitprobe command line: sub-commands and what they share. */
#ifndef EXITPROBE_CLI_H
#define EXITPROBE_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "controller.h"
#include "image_config.h"
#include "error.h"
#include "run_state.h"
#include "workflow.h"

struct scenario;

/* Options of `exitprobe run`. */
struct run_args {
  const char **paths;          /* workflow, scenario files or directories */
  size_t n_paths;
  const char *workflow_path;   /* paths[0] */
  const char *report_path;     /* NULL: reports/out/<name>.json */
  const char *report_dir;      /* scenarios: one report per scenario */
  const char *junit_path;
  struct param_override *params;
  size_t n_params;
  const char *parameter_file;
  struct image_entrypoint *images; /* image_set's, once every source was read */
  size_t n_images;
  struct image_set image_set;   /* --image, then --image-config */
  const char *image_config;
  const char **requires;       /* --require CAPABILITY */
  size_t n_requires;
  const char **quick_faults;   /* --fault TARGET:ACTION[=VALUE][@AFTER] */
  size_t n_quick_faults;
  const char *run_dir;         /* --run-dir: placed here, kept, supervised */
  int grace_ms;
  int color;                   /* -1 auto, 0 never, 1 always */
  bool quiet;
  bool isolate_network;
  bool dry_run;
  bool idempotency;            /* --idempotency: run the exit handler twice, compare */
  const char *state_probe;     /* --state-probe CMD (with --idempotency) */
  const char *keep_workspace;  /* --keep-workspace DIR */
};

/* `exitprobe run ...`: argv[0] is "run".  Returns the process exit status. */
int cli_run(int argc, char **argv);
/* `exitprobe demo [--html DIR]` */
int cli_demo(int argc, char **argv);
/* `exitprobe crash-points WORKFLOW`: one crash point per line. */
int cli_crash_points(int argc, char **argv);
/* `exitprobe validate FILE...` */
int cli_validate(int argc, char **argv);
/* `exitprobe report REPORT.json|DIR... --format ...` (cli_report.c) */
int cli_report(int argc, char **argv);
/* `exitprobe matrix WORKFLOW.yaml [--faults ...]` (cli_matrix.c) */
int cli_matrix(int argc, char **argv);
/* `exitprobe replay REPORT.json`: one matrix cell again (cli_matrix.c) */
int cli_replay(int argc, char **argv);
/* `exitprobe watchdog RUN_DIR`: reconcile a run whose supervisor died (cli_watchdog.c) */
int cli_watchdog(int argc, char **argv);
/* `exitprobe verify SCENARIO STATUS.json`: expectations against argo get -o json (cli_cluster.c) */
int cli_verify(int argc, char **argv);
/* `exitprobe export SCENARIO --target argo [-o FILE]`: a Workflow manifest for a cluster */
int cli_export(int argc, char **argv);

/* `exitprobe stop RUN` / `exitprobe terminate RUN` (cli_control.c): argv[0] is the verb. */
int cli_stop(int argc, char **argv);
int cli_terminate(int argc, char **argv);
int cli_resume(int argc, char **argv);

/* Scenario mode of `run` (cli_scenario.c). */
int cli_run_scenarios(struct run_args *a);
/* --fault options as a scenario around a.workflow_path (cli_quick_faults.c). */
int quick_faults_scenario(const struct run_args *a, struct scenario **out, ep_error **err);

int cli_push(const char ***list, size_t *n, const char *item);
bool capability_name_known(const char *name);
/* --color auto|always|never to -1/1/0. */
int cli_parse_color(const char *text, int *color, ep_error **err);
/* Colours wanted: the setting, or for auto a terminal on stdout and NO_COLOR unset. */
bool cli_want_color(int setting);
int exit_status_for(const struct run_state *st);
/* Block SIGINT, SIGTERM, SIGUSR1, SIGUSR2 before any step exists: the
 * controller takes them from a signalfd. */
void cli_block_interrupts(void);

#endif
