/* `exitprobe stop RUN` and `exitprobe terminate RUN`: Argo's `argo stop` and
 * `argo terminate` for a running `exitprobe run` (run_control.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "run_control.h"

static void usage(FILE *out, const char *verb) {
  fprintf(out,
          "Usage: exitprobe %s RUN\n"
          "\n"
          "%s a running 'exitprobe run', as 'argo %s' does on a cluster:\n"
          "%s"
          "RUN is the name 'exitprobe run' printed when it started (the workflow's name,\n"
          "or NAME-PID when that name was taken), or the path of its control FIFO.\n"
          "Runs are found under $EXITPROBE_RUN_DIR, else $XDG_RUNTIME_DIR/exitprobe, else\n"
          "/run/exitprobe (root) or /tmp/exitprobe-UID.\n"
          "\n"
          "Exit status: 0 the request was delivered; 2 no such run is running.\n",
          verb, strcmp(verb, "stop") == 0 ? "Stop" : "Terminate", verb,
          strcmp(verb, "stop") == 0
              ? "running steps get SIGTERM (SIGKILL after the grace period), steps not yet\n"
                "started fail, and the exit handler still runs.\n"
              : "every step is killed, and the exit handler does not run (or is killed).\n");
}

static int control_command(int argc, char **argv, enum run_control_request req) {
  const char *verb = argv[0];
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout, verb);
    return EP_EXIT_OK;
  }
  if (argc != 2 || argv[1][0] == '-') {
    usage(stderr, verb);
    return EP_EXIT_USAGE;
  }
  ep_error *err = NULL;
  if (run_control_send(argv[1], req, &err) < 0) {
    ep_error_print(err, stderr);
    int status = err->status;
    ep_error_free(&err);
    return status;
  }
  printf("%s requested for run %s\n", verb, argv[1]);
  return EP_EXIT_OK;
}

int cli_stop(int argc, char **argv) { return control_command(argc, argv, RUN_CONTROL_STOP); }

int cli_terminate(int argc, char **argv) {
  return control_command(argc, argv, RUN_CONTROL_TERMINATE);
}
