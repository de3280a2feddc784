/* bench_launch: what a sandboxed step launch costs, against plain spawns.
 *
 *   bench_launch [-n N] [-r ROUNDS] [-m MIB] [-x] [-q]
 *
 * Runs N launches of /bin/true per configuration (default 300), split into
 * ROUNDS rounds (default 10) in which every configuration takes its turn,
 * so that drift on a noisy VM hits all of them alike.  Each sample is the
 * wall time from the first set-up action to the reap (and, for the sandbox,
 * the removal of the step's cgroups and the pipes' EOF).
 *
 * Configurations:
 *   fork+exec, posix_spawn      the two baselines
 *   sandbox                     sandbox_launch + drain + sandbox_reap, as the runner does
 *   sandbox+net                 the same with network_isolated
 *   L0..L5                      isolation layers added one at a time to a bare
 *                               clone3 child that execs /bin/true directly (no
 *                               init): clone, +PID ns, +mount/UTS/IPC ns with
 *                               read-only root, /proc and /tmp, +cgroups
 *                               (a pooled slot: reset, self-attach, release),
 *                               +seccomp load, +network ns with lo up; and L3
 *                               again with fresh
 *                               groups (mkdir, write limits, rmdir) per launch
 *   unshare, bwrap              the same work through external tools, when installed
 *
 * -m MIB touches that much heap first (the runner grown large): fork-style
 * clones pay for page tables, vfork-style ones do not.  -x skips the
 * external tools, -q runs only the baselines and the full sandbox.  Prints a table and ratios; never passes or fails. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox.h"
#include "seccomp_filter.h"

extern char **environ;

#define TRUE_BIN "/bin/true"

enum config_id {
  C_FORK,
  C_SPAWN,
  C_SANDBOX,
  C_SANDBOX_NET,
  C_L0,
  C_L1,
  C_L2,
  C_L3,
  C_L4,
  C_L5,
  C_L3_FRESH,
  C_UNSHARE,
  C_BWRAP,
  C_COUNT
};

static const char *const config_names[C_COUNT] = {
    [C_FORK] = "fork+exec+wait",
    [C_SPAWN] = "posix_spawn+wait",
    [C_SANDBOX] = "sandbox (full step)",
    [C_SANDBOX_NET] = "sandbox + network ns",
    [C_L0] = "L0 clone3 (fork-style)",
    [C_L1] = "L1 +PID ns",
    [C_L2] = "L2 +mnt/uts/ipc, ro /, /proc, /tmp",
    [C_L3] = "L3 +cgroups (pooled slot)",
    [C_L4] = "L4 +seccomp load",
    [C_L5] = "L5 +network ns, lo up",
    [C_L3_FRESH] = "L3 with fresh cgroups per launch",
    [C_UNSHARE] = "unshare -pf --mount-proc -ui",
    [C_BWRAP] = "bwrap --unshare-all --ro-bind / /",
};

struct samples {
  double *us;
  size_t n;
  size_t failures;
  bool enabled;
};

struct bench {
  struct samples s[C_COUNT];
  struct sandbox_context *ctx;
  struct ep_cg_manager *cg;
  struct ep_seccomp_program *seccomp;
  unsigned long seq;
};

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int wait_status_ok(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int run_fork(void) {
  char *argv[] = {TRUE_BIN, NULL};
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    execve(TRUE_BIN, argv, environ);
    _exit(127);
  }
  return wait_status_ok(pid);
}

static int run_spawn_argv(char *const argv[]) {
  pid_t pid;
  if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
    return -1;
  return wait_status_ok(pid);
}

static int run_spawn(void) {
  char *argv[] = {TRUE_BIN, NULL};
  return run_spawn_argv(argv);
}

/* Blocks in poll, not a sleep loop: EOF comes the moment the step's
 * namespace is gone, and a sleep would add its own latency to the sample. */
static void drain(int fd) {
  char buf[512];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r > 0)
      continue;
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLIN, 0};
      (void)poll(&p, 1, -1);
      continue;
    }
    break;
  }
}

static int run_sandbox(struct bench *b, bool net) {
  char *argv[] = {TRUE_BIN, NULL};
  char *envp[] = {"PATH=/usr/bin:/bin", NULL};
  char name[64];
  snprintf(name, sizeof(name), "bench-%lu", ++b->seq);
  struct sandbox_step_spec spec = {
      .name = name, .hostname = name, .argv = argv, .envp = envp, .network_isolated = net};
  struct sandbox_step step;
  ep_error *err = NULL;
  if (sandbox_launch(b->ctx, &spec, &step, &err) < 0) {
    fprintf(stderr, "sandbox_launch: %s\n", err->message);
    ep_error_free(&err);
    return -1;
  }
  drain(step.stdout_fd);
  drain(step.stderr_fd);
  close(step.stdout_fd);
  close(step.stderr_fd);
  struct sandbox_result res;
  if (sandbox_reap(b->ctx, &step, &res, &err) < 0) {
    fprintf(stderr, "sandbox_reap: %s\n", err->message);
    ep_error_free(&err);
    return -1;
  }
  return res.exit_code == 0 && !res.setup_failed ? 0 : -1;
}

/* ---- isolation layers, one at a time ------------------------------------- */

struct layer {
  uint64_t clone_flags;
  bool mounts;
  bool loopback;
  const int *cg_fds;
  size_t n_cg;
  const struct sock_fprog *seccomp;
};

struct clone3_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

static void layer_child(const struct layer *l) {
  for (size_t i = 0; i < l->n_cg; i++)
    if (write(l->cg_fds[i], "0", 1) != 1)
      _exit(10);
  if (l->mounts) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr)) < 0 ||
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m") < 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
      _exit(11);
  }
  if (l->loopback) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
      _exit(12);
    ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
      _exit(12);
    close(s);
  }
  if (l->seccomp != NULL && ep_seccomp_load(l->seccomp) < 0)
    _exit(13);
  char *argv[] = {TRUE_BIN, NULL};
  execve(TRUE_BIN, argv, environ);
  _exit(127);
}

static int run_layer(struct bench *b, enum config_id id) {
  bool fresh = id == C_L3_FRESH;
  if (fresh)
    id = C_L3;
  const uint64_t ns = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
  struct layer l = {0};
  if (id >= C_L1)
    l.clone_flags |= CLONE_NEWPID;
  if (id >= C_L2) {
    l.clone_flags |= ns;
    l.mounts = true;
  }
  struct ep_cg_step *cg = NULL;
  struct ep_cg_join join = {.clone_into = -1, .fallback_fd = -1, .n = 0};
  if (id >= C_L3 && b->cg != NULL) {
    char name[64];
    snprintf(name, sizeof(name), "layer-%lu", ++b->seq);
    struct ep_cg_limits lim = {.memory = SANDBOX_DEFAULT_MEMORY_LIMIT,
                               .pids = SANDBOX_DEFAULT_PIDS_LIMIT,
                               .fresh = fresh};
    ep_error *err = NULL;
    if (ep_cg_step_create(b->cg, name, &lim, &cg, &err) < 0) {
      fprintf(stderr, "%s\n", err->message);
      ep_error_free(&err);
      return -1;
    }
    /* Same joining as the sandbox: v1 "tasks", born in the cgroup2 group. */
    ep_cg_step_join(cg, &join);
    l.n_cg = join.n;
    l.cg_fds = join.fds;
  }
  if (id >= C_L4 && b->seccomp != NULL)
    l.seccomp = &b->seccomp->fprog;
  if (id >= C_L5) {
    l.clone_flags |= CLONE_NEWNET;
    l.loopback = true;
  }
  int pidfd = -1;
  struct clone3_args args = {.flags = l.clone_flags | CLONE_PIDFD,
                             .pidfd = (uint64_t)(uintptr_t)&pidfd,
                             .exit_signal = SIGCHLD};
  if (join.clone_into >= 0) {
    args.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
    args.cgroup = (uint64_t)join.clone_into;
  }
  long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0)
    layer_child(&l);
  int rc = -1;
  if (pid > 0) {
    if (cg != NULL)
      ep_cg_step_close_join_fds(cg);
    rc = wait_status_ok((pid_t)pid);
    close(pidfd);
  }
  if (cg != NULL) {
    ep_error *err = NULL;
    if (ep_cg_step_destroy(b->cg, cg, &err) < 0) {
      fprintf(stderr, "%s\n", err->message);
      ep_error_free(&err);
      rc = -1;
    }
  }
  return rc;
}

static int run_config(struct bench *b, enum config_id id) {
  static char *const unshare_argv[] = {"/usr/bin/unshare", "--pid",  "--fork", "--mount-proc",
                                       "--uts",            "--ipc", TRUE_BIN, NULL};
  static char *const bwrap_argv[] = {"/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/", "/",
                                     "--proc",         "/proc",         "--dev",     "/dev",
                                     TRUE_BIN,         NULL};
  switch (id) {
  case C_FORK:
    return run_fork();
  case C_SPAWN:
    return run_spawn();
  case C_SANDBOX:
    return run_sandbox(b, false);
  case C_SANDBOX_NET:
    return run_sandbox(b, true);
  case C_UNSHARE:
    return run_spawn_argv(unshare_argv);
  case C_BWRAP:
    return run_spawn_argv(bwrap_argv);
  default:
    return run_layer(b, id);
  }
}

/* ---- statistics ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p) {
  if (n == 0)
    return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return sorted[i < n ? i : n - 1];
}

struct summary {
  double min, median, p99;
};

static struct summary summarize(struct samples *s) {
  struct summary r = {0, 0, 0};
  if (s->n == 0)
    return r;
  qsort(s->us, s->n, sizeof(double), cmp_double);
  r.min = s->us[0];
  r.median = percentile(s->us, s->n, 0.5);
  r.p99 = percentile(s->us, s->n, 0.99);
  return r;
}

/* Kept until the end: the point is a large parent. */
static char *touch_heap(size_t mib) {
  if (mib == 0)
    return NULL;
  size_t size = mib * 1024 * 1024;
  char *p = malloc(size);
  if (p == NULL) {
    perror("malloc");
    exit(1);
  }
  memset(p, 1, size);
  return p;
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [-n launches] [-r rounds] [-m heap_MiB] [-x] [-q]\n", argv0);
  exit(2);
}

static void setup_sandbox(struct bench *b) {
  if (geteuid() != 0) {
    printf("not root: sandbox and layer configurations skipped\n");
    return;
  }
  struct sandbox_options opts = {.require_namespaces = true, .run_name = "bench"};
  ep_error *err = NULL;
  if (sandbox_context_new(&opts, &b->ctx, &err) < 0) {
    printf("sandbox unavailable (%s): sandbox and layer configurations skipped\n", err->message);
    ep_error_free(&err);
    b->ctx = NULL;
    return;
  }
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(b->ctx);
  for (size_t i = 0; i < caps->n_notes; i++)
    printf("  %s\n", caps->notes[i]);
  if (ep_cg_manager_new("bench-layers", &b->cg, &err) < 0) {
    ep_error_free(&err);
    b->cg = NULL;
  }
  if (ep_seccomp_build(&b->seccomp, &err) < 0) {
    ep_error_free(&err);
    b->seccomp = NULL;
  }
  for (int id = C_SANDBOX; id <= C_L3_FRESH; id++)
    b->s[id].enabled = true;
  b->s[C_SANDBOX_NET].enabled = caps->net_namespace;
  b->s[C_L5].enabled = caps->net_namespace;
  if (b->cg == NULL || ep_cg_manager_info(b->cg)->mode == SANDBOX_CGROUP_NONE)
    printf("  (no usable cgroups: L3 measures nothing extra)\n");
}

static void print_table(struct bench *b) {
  struct summary sum[C_COUNT];
  for (int id = 0; id < C_COUNT; id++)
    sum[id] = summarize(&b->s[id]);
  double spawn = sum[C_SPAWN].median, fork_med = sum[C_FORK].median;
  printf("\n%-36s %6s %9s %9s %9s %8s %9s\n", "configuration", "n", "min us", "median", "p99",
         "fails", "vs spawn");
  for (int id = 0; id < C_COUNT; id++) {
    const struct samples *s = &b->s[id];
    if (!s->enabled)
      continue;
    printf("%-36s %6zu %9.0f %9.0f %9.0f %8zu %8.2fx\n", config_names[id], s->n, sum[id].min,
           sum[id].median, sum[id].p99, s->failures, spawn > 0 ? sum[id].median / spawn : 0);
  }
  if (b->s[C_L1].enabled) {
    printf("\nlayer deltas (median, us): PID ns %+.0f, mount/uts/ipc+ro+proc+tmp %+.0f, "
           "cgroups %+.0f, seccomp %+.0f",
           sum[C_L1].median - sum[C_L0].median, sum[C_L2].median - sum[C_L1].median,
           sum[C_L3].median - sum[C_L2].median, sum[C_L4].median - sum[C_L3].median);
    if (b->s[C_L5].enabled)
      printf(", netns %+.0f", sum[C_L5].median - sum[C_L4].median);
    printf("\n");
    printf("cgroups: pooled slot %+.0f us, fresh groups per launch %+.0f us (median over L2)\n",
           sum[C_L3].median - sum[C_L2].median, sum[C_L3_FRESH].median - sum[C_L2].median);
    printf("init (program exec) + command split, caps, /dev, pipes, bookkeeping "
           "(sandbox - L4): %+.0f us\n",
           sum[C_SANDBOX].median - sum[C_L4].median);
  }
  if (b->s[C_SANDBOX].enabled) {
    printf("ratio sandboxed/plain (median): %.2fx vs fork+exec, %.2fx vs posix_spawn\n",
           fork_med > 0 ? sum[C_SANDBOX].median / fork_med : 0,
           spawn > 0 ? sum[C_SANDBOX].median / spawn : 0);
    printf("ratio sandboxed/plain (p99):    %.2fx vs fork+exec, %.2fx vs posix_spawn\n",
           sum[C_FORK].p99 > 0 ? sum[C_SANDBOX].p99 / sum[C_FORK].p99 : 0,
           sum[C_SPAWN].p99 > 0 ? sum[C_SANDBOX].p99 / sum[C_SPAWN].p99 : 0);
  }
}

int main(int argc, char **argv) {
  size_t n = 300, rounds = 10, heap_mib = 0;
  bool external = true, quick = false;
  int opt;
  while ((opt = getopt(argc, argv, "n:r:m:xqh")) != -1) {
    switch (opt) {
    case 'n':
      n = strtoul(optarg, NULL, 10);
      break;
    case 'r':
      rounds = strtoul(optarg, NULL, 10);
      break;
    case 'm':
      heap_mib = strtoul(optarg, NULL, 10);
      break;
    case 'x':
      external = false;
      break;
    case 'q':
      quick = true;
      external = false;
      break;
    default:
      usage(argv[0]);
    }
  }
  if (n == 0 || rounds == 0)
    usage(argv[0]);
  if (rounds > n)
    rounds = n;
  struct bench b;
  memset(&b, 0, sizeof(b));
  printf("bench_launch: %zu launches of %s per configuration, %zu interleaved rounds", n,
         TRUE_BIN, rounds);
  if (heap_mib > 0)
    printf(", parent heap %zu MiB touched", heap_mib);
  printf("\n");
  char *heap = touch_heap(heap_mib);
  b.s[C_FORK].enabled = b.s[C_SPAWN].enabled = true;
  setup_sandbox(&b);
  b.s[C_UNSHARE].enabled = external && geteuid() == 0 && access("/usr/bin/unshare", X_OK) == 0;
  b.s[C_BWRAP].enabled = external && access("/usr/bin/bwrap", X_OK) == 0;
  if (quick)
    for (int id = C_SANDBOX_NET; id <= C_L3_FRESH; id++)
      b.s[id].enabled = false;
  if (external && !b.s[C_BWRAP].enabled)
    printf("  bwrap not installed: skipped\n");
  for (int id = 0; id < C_COUNT; id++) {
    b.s[id].us = calloc(n, sizeof(double));
    if (b.s[id].us == NULL)
      return 1;
  }
  /* Warm-up: page cache, dentries, first cgroup creation. */
  for (int id = 0; id < C_COUNT; id++)
    for (int i = 0; i < 5 && b.s[id].enabled; i++)
      (void)run_config(&b, (enum config_id)id);
  for (size_t r = 0; r < rounds; r++) {
    size_t per = n / rounds + (r < n % rounds ? 1 : 0);
    for (int id = 0; id < C_COUNT; id++) {
      struct samples *s = &b.s[id];
      if (!s->enabled)
        continue;
      for (size_t i = 0; i < per; i++) {
        double t0 = now_us();
        int rc = run_config(&b, (enum config_id)id);
        double dt = now_us() - t0;
        if (rc < 0)
          s->failures++;
        else
          s->us[s->n++] = dt;
      }
    }
  }
  print_table(&b);
  sandbox_context_free(b.ctx);
  ep_cg_manager_free(b.cg);
  ep_seccomp_free(b.seccomp);
  for (int id = 0; id < C_COUNT; id++)
    free(b.s[id].us);
  free(heap);
  return 0;
}
