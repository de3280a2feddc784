/* `exitprobe stop RUN`, `exitprobe terminate RUN` and `exitprobe resume RUN`:
 * Argo's `argo stop`, `argo terminate` and `argo node set` + `argo resume`
 * for a running `exitprobe run` (run_control.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "run_control.h"
#include "xalloc.h"

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

static void resume_usage(FILE *out) {
  fprintf(out,
          "Usage: exitprobe resume RUN [--set NODE.PARAM=VALUE]...\n"
          "\n"
          "Resume every suspended node of a running 'exitprobe run', as 'argo resume' does:\n"
          "each node ends Succeeded and the workflow carries on.  --set gives an output\n"
          "parameter with valueFrom.supplied its value first, as 'argo node set\n"
          "--output-parameter PARAM=VALUE' does; NODE is the node's name or display name\n"
          "(a step's name).  A supplied output with neither a value nor a default, or a\n"
          "--set naming no such output, makes the run refuse the whole resume, which it\n"
          "says on its stderr.  RUN is as for 'exitprobe stop'.\n"
          "\n"
          "Exit status: 0 the request was delivered; 2 bad arguments or no such run.\n");
}

/* NODE.PARAM=VALUE: a node name may hold dots, a parameter name does not. */
static int parse_set(const char *arg, struct run_control_set *out) {
  const char *eq = strchr(arg, '=');
  if (eq == NULL || strchr(eq + 1, '\n') != NULL || strchr(eq + 1, '\t') != NULL)
    return -1;
  const char *dot = NULL;
  for (const char *p = arg; p < eq; p++)
    if (*p == '.')
      dot = p;
  if (dot == NULL || dot == arg || dot + 1 == eq)
    return -1;
  out->node = xasprintf("%.*s", (int)(dot - arg), arg);
  out->param = xasprintf("%.*s", (int)(eq - dot - 1), dot + 1);
  out->value = xstrdup(eq + 1);
  if (strchr(out->node, '\t') != NULL || strchr(out->node, '\n') != NULL) {
    free(out->node);
    free(out->param);
    free(out->value);
    return -1;
  }
  return 0;
}

int cli_resume(int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    resume_usage(stdout);
    return EP_EXIT_OK;
  }
  const char *run = NULL;
  struct run_control_set *sets = xcalloc((size_t)argc, sizeof(*sets));
  size_t n_sets = 0;
  int status = EP_EXIT_USAGE;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
      if (parse_set(argv[++i], &sets[n_sets]) < 0) {
        fprintf(stderr, "exitprobe resume: --set takes NODE.PARAM=VALUE (one line), not '%s'\n",
                argv[i]);
        goto out;
      }
      n_sets++;
    } else if (argv[i][0] != '-' && run == NULL) {
      run = argv[i];
    } else {
      resume_usage(stderr);
      goto out;
    }
  }
  if (run == NULL) {
    resume_usage(stderr);
    goto out;
  }
  ep_error *err = NULL;
  if (run_control_send_resume(run, sets, n_sets, &err) < 0) {
    ep_error_print(err, stderr);
    status = err->status;
    ep_error_free(&err);
    goto out;
  }
  printf("resume requested for run %s\n", run);
  status = EP_EXIT_OK;
out:
  for (size_t k = 0; k < n_sets; k++) {
    free(sets[k].node);
    free(sets[k].param);
    free(sets[k].value);
  }
  free(sets);
  return status;
}
