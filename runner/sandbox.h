/* Launching one workflow step as an isolated process tree.
 *
 * A step gets new PID, mount, UTS and IPC namespaces (network optional).
 * PID 1 of the namespace is a tiny init -- the cloned child, playing the
 * part of Argo's emissary -- which sets up the mounts and runs the step's
 * command as its child, then (as a 5 KB program of its own, see
 * init_launch.h) forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it,
 * reaps orphans, and exits with the command's status (128+signal when the
 * command was killed).  When init exits the kernel kills everything left in
 * the namespace; the step's cgroups are emptied and go back to a pool.
 *
 * Inside: host root (or an image's root filesystem, spec.rootfs)
 * read-only (recursively), private tmpfs on /tmp and
 * /dev/shm, fresh /proc, hostname = pod name, no_new_privs, a baseline
 * seccomp filter (compiled once per context, loaded just before exec).
 *
 * The context owns run-level state: the cgroup parent found and created
 * through libcgroup, the compiled seccomp program, and what the machine can
 * do (recorded for the report). */
#ifndef EXITPROBE_SANDBOX_H
#define EXITPROBE_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define SANDBOX_DEFAULT_MEMORY_LIMIT (512ULL * 1024 * 1024) /* bytes */
#define SANDBOX_DEFAULT_PIDS_LIMIT 1024
#define SANDBOX_TMP_SIZE "256m"
/* What a container gets when its image sets no PATH: Docker's default, plus
 * /usr/games, where images such as docker/whalesay (Argo's older examples)
 * keep cowsay and where Debian installs it. */
#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games"

enum sandbox_cgroup_mode {
  SANDBOX_CGROUP_NONE,   /* no usable cgroup hierarchy: limits not enforced */
  SANDBOX_CGROUP_V1,     /* controllers on v1 only */
  SANDBOX_CGROUP_HYBRID, /* controllers on v1, plus a (usually empty) v2 hierarchy */
  SANDBOX_CGROUP_V2,     /* unified */
};

struct sandbox_capabilities {
  bool namespaces;       /* PID+mount+UTS+IPC can be created */
  bool net_namespace;
  bool seccomp;
  enum sandbox_cgroup_mode cgroup;
  bool memory_limit;     /* a memory controller is usable */
  bool pids_limit;
  bool freezer;
  /* Human-readable notes for the report: what is missing and why. */
  char **notes;
  size_t n_notes;
};

struct sandbox_context; /* opaque */

struct sandbox_options {
  bool require_namespaces; /* fail with EP_EXIT_ENVIRONMENT when unavailable */
  const char *run_name;    /* used to name the run's cgroup: exitprobe/<run_name>-<pid> */
};

/* Probe the machine, create the run's cgroup parent(s), compile seccomp.
 * Missing namespaces with require_namespaces => EP_EXIT_ENVIRONMENT error
 * naming the capability (e.g. "creating a PID namespace needs CAP_SYS_ADMIN").
 * Missing cgroups or seccomp degrade and are noted in caps. */
int sandbox_context_new(const struct sandbox_options *opts, struct sandbox_context **out,
                        ep_error **err);
const struct sandbox_capabilities *sandbox_context_capabilities(const struct sandbox_context *ctx);
/* Kill everything in the step groups of this run that another process made
 * (a controller forked from this context that died): the supervisor's
 * fence.  Returns how many groups were removed. */
int sandbox_context_fence_foreign(struct sandbox_context *ctx);

/* The run-level cgroup of this context in its i-th hierarchy, NULL past the
 * end (the ledger records them for `exitprobe watchdog`). */
const char *sandbox_context_cgroup_path(const struct sandbox_context *ctx, size_t i);

/* Kill every step still running, remove every cgroup this context created. */
void sandbox_context_free(struct sandbox_context *ctx);

/* A system call made to fail inside the step (a scenario's syscall fault). */
struct sandbox_syscall_fault {
  int nr;            /* native syscall number */
  int errno_value;   /* what the call returns, as -errno (always only) */
  bool always;       /* fail every call in the filter itself; otherwise the
                        supervisor decides each call (seccomp user notification) */
  size_t tag;        /* passed back to the decision callback */
};

/* A host directory shown inside the step (a volume mount). */
struct sandbox_bind {
  const char *host_dir; /* absolute host path, a directory (a regular file if file) */
  const char *path;     /* absolute path inside the step, normalised, not "/" */
  bool read_only;
  bool file; /* one file (an input artifact), mounted on a file at path */
};
#define SANDBOX_MAX_BINDS 64

struct sandbox_step_spec {
  const char *name;        /* unique per context (node id): names the step cgroup */
  const char *hostname;    /* pod name; truncated to 63 bytes */
  char *const *argv;       /* argv[0] resolved through PATH inside the sandbox */
  char *const *envp;       /* complete environment of the command */
  const char *working_dir; /* NULL: "/" */
  const char *script_source; /* non-NULL: written to /tmp/argo/staging/script inside;
                                the caller appends that path to argv itself */
  const char *tmp_host_dir; /* non-NULL: this host directory (created by the caller)
                               is bind-mounted at /tmp instead of a private tmpfs, so
                               the controller can read output files after the step
                               ended; NULL: a private tmpfs */
  const char *rootfs;      /* non-NULL: this host directory (an image's unpacked
                              filesystem) is the step's root, read-only, instead of
                              the host's; it needs /proc, /tmp and /dev directories */
  uint64_t memory_limit;   /* bytes; 0 = default */
  int64_t pids_limit;      /* 0 = default; -1 = unlimited */
  bool network_isolated;   /* new network namespace with loopback only */
  const struct sandbox_syscall_fault *syscall_faults;
  size_t n_syscall_faults;
  /* Volume mounts, applied in this order after the root was made read-only
   * and /tmp, /dev, /proc were set up (parents before children: sort by
   * path).  A missing mount point is created (see sandbox_binds.h). */
  const struct sandbox_bind *binds;
  size_t n_binds;
  /* A supervised step outlives its controller (a restarted one adopts it,
   * sandbox_adopt).  Non-NULL: its stdout and stderr go to the files
   * "<io_prefix>.stdout" and ".stderr" (sandbox_step's fds then read them:
   * regular files, not pollable), its init writes the command's wait
   * status to "<io_prefix>.status" (created empty here) just before it
   * exits, and the init is born the child of the caller's parent
   * (CLONE_PARENT: the supervisor, whose death kills it), so the caller
   * cannot wait for it: sandbox_reap goes by its pidfd and that file. */
  const char *io_prefix;
};

struct sandbox_step {
  pid_t pid;     /* host pid of the step's init */
  int pidfd;     /* readable when init exits; owned */
  int stdout_fd; /* read ends, non-blocking, CLOEXEC; owned; -1 once closed */
  int stderr_fd;
  int notify_fd; /* seccomp user-notification listener when a syscall fault needs the
                    supervisor to decide (readable when a call waits); -1 otherwise;
                    non-blocking, CLOEXEC; owned: sandbox_reap closes it */
  struct sandbox_step_private *priv; /* cgroup paths etc. */
};

/* Decide one trapped call: return an errno to make it fail, 0 to let it run. */
typedef int (*sandbox_syscall_decider)(void *ctx, size_t tag, int nr);

/* Call when step->notify_fd is readable: receives one notification, asks
 * decide(ctx, tag, nr) and answers the kernel.  A call of a process that is
 * gone is ignored. */
int sandbox_handle_notification(struct sandbox_step *step, sandbox_syscall_decider decide,
                                 void *ctx, ep_error **err);

struct sandbox_result {
  int exit_code;        /* the step's status as Argo reports it: N, or 128+signal */
  int signal;           /* signal that killed the command (or init), 0 if it exited */
  bool oom_killed;      /* the memory cgroup's oom_kill counter went up */
  bool pids_limited;    /* a fork failed on the pids limit */
  bool setup_failed;    /* sandbox set-up inside the child failed: exit code 64 */
  char setup_error[256];
  uint64_t memory_peak; /* bytes, 0 when unknown */
};

/* Start a step.  Returns once the command has been exec'd (or set-up failed:
 * then the step still has to be reaped, and its result says setup_failed).
 * With a notify_fd it may return earlier, when the command's own execve is
 * trapped and waits for sandbox_handle_notification; set-up failures then
 * reach the result only. */
int sandbox_launch(struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                   struct sandbox_step *out, ep_error **err);

/* Deliver a signal to the step (its init forwards catchable ones to the command;
 * SIGKILL kills the whole namespace). */
int sandbox_signal(struct sandbox_step *step, int sig, ep_error **err);

/* Deliver a signal to every process of the step (its cgroup), the init
 * excepted; SIGKILL, or a step without a cgroup, goes to the init instead.
 * Returns how many processes got it (0: the step had no process left). */
int sandbox_signal_all(struct sandbox_step *step, int sig, ep_error **err);

/* Freeze/thaw the whole step via the freezer (later issues); ENOTSUP when absent. */
int sandbox_freeze(struct sandbox_step *step, bool frozen, ep_error **err);

/* Call once step->pidfd is readable (or to wait for it: blocks).  Collects
 * the status, reads the cgroup's OOM/pids/peak counters, kills anything left
 * in the step's cgroup and removes it, closes pidfd.  Pipes are left to the
 * caller, which drains them to EOF. */
int sandbox_reap(struct sandbox_context *ctx, struct sandbox_step *step,
                 struct sandbox_result *result, ep_error **err);

/* A step launched with io_prefix by a controller that died, adopted by its
 * successor: its cgroup (named after spec.name) is taken over and its init
 * found there (ep_cg_step_find_init: never by a bare PID).  On 1 the step
 * is out's as if launched here, its output fds reading the files from the
 * start; 0: no live init (see sandbox_status_file). */
int sandbox_adopt(struct sandbox_context *ctx, const char *name, const char *io_prefix,
                  struct sandbox_step *out, ep_error **err);

enum sandbox_status_file {
  SANDBOX_STATUS_NONE,     /* no status file: the step was never launched, or released */
  SANDBOX_STATUS_EMPTY,    /* launched, and its init died without a word: killed */
  SANDBOX_STATUS_WRITTEN,  /* *result filled from the command's wait status */
};
/* What "<io_prefix>.status" says of a step nobody watched end. */
enum sandbox_status_file sandbox_status_file(const char *io_prefix, struct sandbox_result *result);

#endif
