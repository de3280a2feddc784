/* `exitprobe watchdog RUN_DIR`: reconcile a run whose supervisor died (the
 * `exitprobe run` process was SIGKILLed).  The run's ledger decides:
 * nothing is guessed from PIDs.  The ledger's write lock (a flock the live
 * supervisor holds, released by the kernel when the last process of the run
 * is gone) says whether the run is dead; its run-started record names the
 * run's cgroups, which are fenced; its intent and outcome records say
 * whether the exit handler finished.  If not, the compensation runs with
 * intent before and outcome after, so that a watchdog killed and run again
 * leaves exactly one terminal record. */
#ifndef EXITPROBE_RECONCILE_H
#define EXITPROBE_RECONCILE_H

#include <stdbool.h>
#include <stdio.h>

#include "../runner/controller.h"
#include "../runner/error.h"

struct reconcile_options {
  const char *run_dir;
  const char *report_path;  /* NULL: RUN_DIR/report.json */
  int lock_wait_ms;         /* how long a held ledger lock is waited for */
  FILE *progress;           /* what the watchdog does, line by line, or NULL */
  const struct image_entrypoint *images;
  size_t n_images;
};

struct reconcile_summary {
  bool was_finished;      /* the ledger already held run-finished */
  bool compensated;       /* this watchdog ran the compensation */
  bool outcome_unknown;   /* at-most-once: an intent without outcome, left unrun */
  int cgroups_removed;
  int processes_killed;
  uint64_t truncated_bytes; /* torn tail cut on open */
};

/* 0 when the run is reconciled (report written, run dir cleaned); -1 with
 * err otherwise: a live run (EP_EXIT_ENVIRONMENT), a corrupt ledger
 * (refused with the byte offset), no ledger (EP_EXIT_USAGE). */
int reconcile_run_dir(const struct reconcile_options *o, struct reconcile_summary *out,
                      ep_error **err);

/* For the sweep of stale run directories at the start of `exitprobe run`:
 * the directory holds a ledger whose run is live (its lock is held) or
 * unfinished (no run-finished record): it must be left for `exitprobe
 * watchdog`.  False when there is no ledger. */
bool run_dir_needs_watchdog(const char *dir, bool *live);

/* Detach the step /tmp mounts below RUN_DIR/steps and remove the directory. */
void run_dir_release_steps(const char *run_dir);

#endif
