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

/* Removes the run cgroups directly under base (a hierarchy's exitprobe/
 * group) whose lock is free, with their step groups; a process still in
 * one (a step init that missed its parent's death) is killed first.  A run
 * holds an exclusive flock on each of its run groups (cgroupfs supports
 * it) for as long as it lives.  Returns how many run groups were removed. */
size_t leftovers_sweep_cgroups(const char *base, FILE *log);

/* A shared lock on a hierarchy's exitprobe/ base (-1 if it is gone): held
 * while a run makes its run group and locks it, so that no sweep (which
 * holds the base exclusively) sees the group in between. */
int leftovers_hold_cgroup_base(const char *base);

/* Locks a directory just created at path for the life of the returned
 * descriptor; -1 when it could not be locked or is no longer the one at
 * path (a sweep removed it while it was still unlocked: make it again). */
int leftovers_lock_new_dir(const char *path);

/* The directory name under dir_fd, opened and locked by us, when nobody
 * holds its lock (its run is gone); -1 when it is live or gone. */
int leftovers_lock_if_stale_at(int dir_fd, const char *name);

#endif
