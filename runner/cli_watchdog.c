/* `exitprobe watchdog RUN_DIR`: the watchdog on its own, for a run whose
 * `exitprobe run` process (its supervisor) was killed. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "image_config.h"
#include "error.h"
#include "../watchdog/reconcile.h"

static void print_watchdog_usage(FILE *out) {
  fputs("Usage: exitprobe watchdog [OPTIONS] RUN_DIR\n"
        "\n"
        "Reconcile a supervised run whose `exitprobe run` process died (run with\n"
        "--run-dir, or a scenario that crashes the controller): read its ledger (a torn\n"
        "tail is cut and said so; damage in the middle is refused with its byte offset),\n"
        "make sure the run is dead (the ledger's lock, which its supervisor held, is\n"
        "free), kill what is left of it through its cgroups, run the exit handler as\n"
        "compensation if the ledger does not show it finished (at-least-once: an intent\n"
        "without an outcome is run again; at-most-once: it is recorded as outcome\n"
        "unknown), write the report and remove the step directories.  Running it again\n"
        "is safe: the ledger holds exactly one outcome.\n"
        "\n"
        "Options:\n"
        "  -r, --report FILE    JSON report path (default: RUN_DIR/report.json)\n"
        "      --wait DURATION  how long to wait for a live run's lock (default 3s)\n"
        "      --image IMAGE=PATH  as for exitprobe run\n"
        "  -q, --quiet          print nothing but errors\n"
        "  -h, --help           show this help\n"
        "\n"
        "Exit status: 0 reconciled; 2 bad usage or not a run directory; 3 the run is\n"
        "still live; 70 the ledger is corrupt or an internal error.\n",
        out);
}

int cli_watchdog(int argc, char **argv) {
  enum { OPT_WAIT = 256, OPT_IMAGE };
  static const struct option longopts[] = {
      {"report", required_argument, NULL, 'r'}, {"wait", required_argument, NULL, OPT_WAIT},
      {"image", required_argument, NULL, OPT_IMAGE}, {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  struct reconcile_options o = {.lock_wait_ms = 3000, .progress = stderr};
  struct image_set images = {0};
  ep_error *err = NULL;
  int status = EP_EXIT_OK;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, ":r:qh", longopts, NULL)) != -1) {
    switch (opt) {
    case 'r':
      o.report_path = optarg;
      break;
    case OPT_WAIT: {
      double secs;
      if (parse_duration_seconds(optarg, true, &secs) < 0 || secs > 3600) {
        ep_error_set(&err, EP_EXIT_USAGE, "--wait: '%s' is not a duration (e.g. 500ms, 3s)",
                     optarg);
        goto fail;
      }
      o.lock_wait_ms = (int)(secs * 1000);
      break;
    }
    case OPT_IMAGE:
      if (image_set_add_arg(&images, optarg, &err) < 0)
        goto fail;
      o.images = images.images;
      o.n_images = images.n_images;
      break;
    case 'q':
      o.progress = NULL;
      break;
    case 'h':
      print_watchdog_usage(stdout);
      goto out;
    case ':':
      ep_error_set(&err, EP_EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
      goto fail;
    default:
      ep_error_set(&err, EP_EXIT_USAGE, "unknown option '%s'", argv[optind - 1]);
      goto fail;
    }
  }
  if (optind + 1 != argc) {
    ep_error_set(&err, EP_EXIT_USAGE, "watchdog needs exactly one RUN_DIR (see --help)");
    goto fail;
  }
  o.run_dir = argv[optind];
  /* The compensation's controller takes interrupts from a signalfd. */
  cli_block_interrupts();
  struct reconcile_summary sum;
  if (reconcile_run_dir(&o, &sum, &err) < 0)
    goto fail;
  goto out;
fail:
  ep_error_print(err, stderr);
  status = err->status;
out:
  ep_error_free(&err);
  image_set_free(&images);
  return status;
}
