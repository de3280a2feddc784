/* Cgroups for sandboxed steps: discovery and the run-level parent groups
 * (through libcgroup, once per run), and a pool of step groups written
 * directly in cgroupfs (libcgroup costs ~1.7 ms per step on this path; a
 * fresh memory group per step ~0.25 ms and a p99 of several ms).
 *
 * A step is placed in every hierarchy that is useful to it: the memory and
 * pids controllers wherever they live (v1 on hybrid hosts, v2 on unified
 * ones), the v1 freezer when there is no cgroup2, and a cgroup2 group
 * whenever a cgroup2 hierarchy exists, even one without controllers, for
 * cgroup.kill and cgroup.freeze.  Everything created is removed again: by
 * ep_cg_step_destroy at reap (unless pooled), or by ep_cg_manager_free at the end; what a
 * killed runner left behind is swept by the next ep_cg_manager_new. */
#ifndef EXITPROBE_CGROUP_H
#define EXITPROBE_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sandbox.h"

/* Hierarchies a step can be placed in: memory, pids, freezer, cgroup2. */
#define EP_CG_MAX_GROUPS 4

struct ep_cg_manager;
struct ep_cg_step;

struct ep_cg_info {
  enum sandbox_cgroup_mode mode;
  bool memory;  /* memory limits enforced and OOM kills counted */
  bool pids;    /* pids limits enforced */
  bool freezer; /* ep_cg_step_freeze works */
  bool kill;    /* cgroup.kill available (else: read cgroup.procs and kill each) */
};

/* Discover the hierarchies and create "exitprobe/<run_name>-<pid>" below our
 * own cgroup in each usable one.  Never fails for lack of cgroups: what is
 * unusable is left out and explained in the notes (mode NONE at worst). */
int ep_cg_manager_new(const char *run_name, struct ep_cg_manager **out, ep_error **err);
const struct ep_cg_info *ep_cg_manager_info(const struct ep_cg_manager *m);
/* Human-readable notes on what was found and what is missing. */
const char *const *ep_cg_manager_notes(const struct ep_cg_manager *m, size_t *n);
/* Kill what is left in every step group, remove them and the run-level groups. */
void ep_cg_manager_free(struct ep_cg_manager *m);

struct ep_cg_limits {
  uint64_t memory; /* bytes; 0 = no limit */
  int64_t pids;    /* -1 = no limit */
  bool fresh;      /* groups of its own, made and removed for this step, instead of
                      a pooled slot (the cost of a clean slate, measured by bench_launch) */
};

/* The step's groups, with its limits written and what the child needs to
 * join them opened (ep_cg_step_join).  Groups are pooled: a released one
 * that is empty (anything left is killed) and not frozen hosts the next
 * step, with its limits rewritten, its peak and failcnt reset and the
 * counters that cannot be reset (oom_kill, pids.events) taken as deltas;
 * the pool holds as many groups as steps ran at once.  Fresh groups (named
 * after the step, sanitised and made unique) are made instead when asked,
 * when the peak cannot be reset (memory on cgroup2), and in a process
 * forked from the manager's creator.  On a host without usable cgroups
 * this returns a step with no groups. */
int ep_cg_step_create(struct ep_cg_manager *m, const char *name, const struct ep_cg_limits *lim,
                      struct ep_cg_step **out, ep_error **err);
/* How a new process joins the step's groups.  Joining v1 hierarchies goes
 * through their "tasks" file: a thread moving itself that way skips the
 * global cgroup_threadgroup_rwsem, whose write side waits for an RCU grace
 * period after a quiet spell (measured here: 9-17 ms per attach through
 * cgroup.procs after 30 ms idle, 20 us through tasks).  The init is single
 * threaded, so moving the thread moves the process.  cgroup2 has no such
 * per-thread door for domain groups; there the child is born in the group
 * with clone3(CLONE_INTO_CGROUP). */
struct ep_cg_join {
  int clone_into;            /* cgroup2 group directory for CLONE_INTO_CGROUP, -1 if none */
  int fds[EP_CG_MAX_GROUPS]; /* the child writes "0" to each */
  size_t n;
  int fallback_fd; /* cgroup2 cgroup.procs, for the child to write "0" to when the
                      kernel refuses CLONE_INTO_CGROUP (< 5.7); -1 if none */
};
void ep_cg_step_join(const struct ep_cg_step *s, struct ep_cg_join *j);
/* The parent's copies are not needed once the child exists. */
void ep_cg_step_close_join_fds(struct ep_cg_step *s);
/* Absolute path of the step's i-th group, NULL past the end (diagnostics, tests). */
const char *ep_cg_step_path(const struct ep_cg_step *s, size_t i);

struct ep_cg_stats {
  uint64_t oom_kills;   /* OOM kills inside the group during its life */
  uint64_t pids_max_hits; /* forks refused by pids.max */
  uint64_t memory_peak; /* bytes, 0 when unknown */
};
void ep_cg_step_stats(const struct ep_cg_step *s, struct ep_cg_stats *st);

/* cgroup2 cgroup.freeze, else v1 freezer.state; ENOTSUP error without either. */
int ep_cg_step_freeze(struct ep_cg_step *s, bool frozen, ep_error **err);

/* Kill and remove every group below the run's group that this process did
 * not create (the steps of a controller that died); returns how many. */
int ep_cg_manager_sweep_foreign(struct ep_cg_manager *m);

/* Absolute path of the run-level group in the i-th usable hierarchy, NULL
 * past the end: recorded in the ledger so that `exitprobe watchdog` can
 * fence a run whose runner was killed by its cgroups, not by a PID. */
const char *ep_cg_manager_run_path(const struct ep_cg_manager *m, size_t i);

/* Fence another process's run by its group's path: kill every process in
 * the group and below (cgroup.kill where there is one, else each member
 * through a pidfd taken while it is still listed), remove the subgroups and
 * the group itself.  Returns the number of groups removed (0 when the path
 * is gone) and adds the processes signalled to *killed; -1 when something
 * is still busy after ~2 s. */
int ep_cg_fence_path(const char *path, int *killed);

/* Take over the step group `name` (as given to ep_cg_step_create, in a
 * process forked from the manager's creator) that another process of the
 * run made -- a controller that died -- so that a sweep spares it and
 * ep_cg_step_destroy removes it.  1: adopted; 0: no such group. */
int ep_cg_step_adopt(struct ep_cg_manager *m, const char *name, struct ep_cg_step **out);
/* The step's init (the init of a PID namespace listed in the step's group),
 * with a pidfd taken before its membership was confirmed, so that a
 * recycled PID is never mistaken for it.  1: found; 0: none left. */
int ep_cg_step_find_init(const struct ep_cg_step *s, int *pidfd, pid_t *pid);

/* Send sig to every process of the step's group but `except`; returns how
 * many were signalled, -1 when the step has no group. */
int ep_cg_step_signal(const struct ep_cg_step *s, int sig, pid_t except);

/* Return a pooled group that is empty to the pool; otherwise kill whatever
 * is still in the groups, remove them and free s.  If a group cannot be
 * removed in time it stays owned by the manager (retried by
 * ep_cg_manager_free) and an error says so; s is consumed either way. */
int ep_cg_step_destroy(struct ep_cg_manager *m, struct ep_cg_step *s, ep_error **err);

#endif
