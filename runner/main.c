/* exitprobe: entry point and dispatch to sub-commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "exitprobe_config.h"

static void print_usage(FILE *out) {
  fputs("Usage: exitprobe [--help] [--version] COMMAND [ARGS]\n"
        "\n"
        "Fault-injection harness for workflow exit handlers: runs Argo Workflow YAML\n"
        "locally, every step a sandboxed process, and reports whether the exit handler\n"
        "ran, how often and what it saw.\n"
        "\n"
        "Commands:\n"
        "  run WORKFLOW.yaml    run a workflow and write a JSON report\n"
        "  run SCENARIO|DIR...  run scenarios: inject faults, check expectations\n"
        "  validate FILE...     check workflows and scenarios without running them\n"
        "  crash-points WORKFLOW  list the controller crash points of a workflow\n"
        "  demo [--html DIR]    the seed lesson under every way a run can end\n"
        "  report REPORT|DIR    render saved JSON reports: text, html, junit, tap, github\n"
        "  matrix WORKFLOW.yaml run the workflow under every fault and crash point: a table\n"
        "  replay REPORT.json   run one matrix cell again, alone\n"
        "  watchdog RUN_DIR     reconcile a supervised run whose exitprobe process died\n"
        "  export SCENARIO --target argo  the scenario as a Workflow manifest for a cluster\n"
        "  verify SCENARIO STATUS.json    check expectations against argo get -o json\n"
        "  stop RUN             argo stop for a running 'exitprobe run' (exit handler runs)\n"
        "  terminate RUN        argo terminate for a running 'exitprobe run'\n"
        "  resume RUN [--set NODE.PARAM=VALUE]...\n"
        "                       argo node set + argo resume: suspended nodes carry on\n"
        "\n"
        "Run 'exitprobe COMMAND --help' for a command's options.\n"
        "\n"
        "Exit status: 0 the workflow Succeeded; 1 it ended Failed or Error; 2 bad input or\n"
        "usage; 3 the machine cannot run it (a capability is missing); 70 internal error;\n"
        "130/143 interrupted by SIGINT/SIGTERM.\n",
        out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return EP_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    print_usage(stdout);
    return EP_EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("exitprobe %s\n", EXITPROBE_VERSION);
    return EP_EXIT_OK;
  }
  if (strcmp(cmd, "run") == 0)
    return cli_run(argc - 1, argv + 1);
  if (strcmp(cmd, "validate") == 0)
    return cli_validate(argc - 1, argv + 1);
  if (strcmp(cmd, "demo") == 0)
    return cli_demo(argc - 1, argv + 1);
  if (strcmp(cmd, "crash-points") == 0)
    return cli_crash_points(argc - 1, argv + 1);
  if (strcmp(cmd, "report") == 0)
    return cli_report(argc - 1, argv + 1);
  if (strcmp(cmd, "matrix") == 0)
    return cli_matrix(argc - 1, argv + 1);
  if (strcmp(cmd, "replay") == 0)
    return cli_replay(argc - 1, argv + 1);
  if (strcmp(cmd, "verify") == 0)
    return cli_verify(argc - 1, argv + 1);
  if (strcmp(cmd, "watchdog") == 0)
    return cli_watchdog(argc - 1, argv + 1);
  if (strcmp(cmd, "export") == 0)
    return cli_export(argc - 1, argv + 1);
  if (strcmp(cmd, "stop") == 0)
    return cli_stop(argc - 1, argv + 1);
  if (strcmp(cmd, "terminate") == 0)
    return cli_terminate(argc - 1, argv + 1);
  if (strcmp(cmd, "resume") == 0)
    return cli_resume(argc - 1, argv + 1);
  fprintf(stderr, "exitprobe: unknown command '%s'\n\n", cmd);
  print_usage(stderr);
  return EP_EXIT_USAGE;
}
