/* What a killed exitprobe leaves behind, and removing it.
 *
 * A run that is SIGKILLed cannot clean up: its steps die with it
 * (PR_SET_PDEATHSIG in the step init), but its run directory
 * /tmp/exitprobe-run-<pid>-XXXXXX and its cgroups <hierarchy>/exitprobe/
 * <workflow>-<pid> (one step group each below) stay.  Whoever comes next --
 * the next `exitprobe run`, `exitprobe watchdog` -- can tell that they are
 * stale: the run directory's lock is free, the cgroup's pid is gone.  Each
 * removal is said on the log, one line per leftover. */
#ifndef EXITPROBE_LEFTOVERS_H
#define EXITPROBE_LEFTOVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* True when no process has this pid (and it is not ours). */
bool leftovers_pid_gone(long pid);

/* Creates the run directory "<tmp_dir>/exitprobe-run-<pid>-XXXXXX" (its
 * name in path) holding an exclusive flock on it in *lock_fd: the run is
 * live for as long as that descriptor (or a copy in a forked controller)
 * is open.  The lock, not the pid in the name, is what the sweep trusts: a
 * pid means nothing to a run in another PID namespace sharing /tmp. */
int leftovers_make_run_dir(const char *tmp_dir, char *path, size_t path_size, int *lock_fd,
                           ep_error **err);

/* Removes the run directories in tmp_dir (normally "/tmp") whose lock is
 * free (their run is gone), detaching the step mounts in them first; keep
 * (may be NULL) is asked first and may keep one (it holds a ledger for
 * `exitprobe watchdog`).  Two
 * runs sweeping at once remove each directory once, and only the one that
 * removed it says so.  Returns how many were removed. */
typedef bool (*leftovers_keep_fn)(const char *dir, void *ctx);
size_t leftovers_sweep_run_dirs(const char *tmp_dir, leftovers_keep_fn keep, void *keep_ctx,
                                FILE *log);

/* Removes the run cgroups "<name>-<pid>" directly under base (a
 * hierarchy's exitprobe/ group) whose pid is gone, with their step groups;
 * a process still in one (a step init that missed its parent's death) is
 * killed first.  Returns how many run groups were removed. */
size_t leftovers_sweep_cgroups(const char *base, FILE *log);

#endif
