/* The step sandbox: see sandbox.h for the contract, docs/SANDBOX.md for
 * the design and the measured costs.
 *
 * Process layout of one step:
 *
 *   runner --clone3(CLONE_VM|CLONE_VFORK|CLONE_PIDFD|CLONE_NEW*)--> init (pid 1)
 *   init --vfork--> command (pid 2); init --execveat--> init program (step_init.c)
 *
 * The init shares the runner's memory (no page-table copy, whatever the
 * runner's size) only while the runner waits: once the command runs, it
 * execs the small init program from a memfd, which supervises the command
 * for the rest of the step; that exec releases the runner.  Sharing for the
 * step's life would put the init on the runner's TLS and make an OOM kill
 * of the init kill the runner too.  Where the program cannot run, and for
 * steps whose command must reach the runner before its exec (a seccomp
 * listener), the init is a fork-style clone that supervises the command
 * itself (supervise()).  Everything the children use is prepared by the
 * parent before the clone (struct launch_plan); the children never allocate.
 *
 * Three channels connect the parent and the init:
 *   - sync pipe (CLOEXEC): a set-up failure message, or EOF once the command
 *     has been exec'd (the init's copy closes at its own exec or after the
 *     vfork returns, the command's copy closes at exec);
 *   - pidfd: readable when the init exits;
 *   - status pipe: the command's raw wait status, written by the init just
 *     before it exits, so that the parent can tell "the command was killed
 *     by SIGTERM" from "the command exited 143".
 * A step with a syscall fault that the supervisor decides per call has a
 * fourth: a socketpair over which the command, right after loading its
 * filter, passes the seccomp listener to the parent (SCM_RIGHTS). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox_binds.h"
#include "init_launch.h"
#include "seccomp_filter.h"

#define SETUP_FAILED_EXIT 64 /* like Argo's emissary */
#define MSG_MAX 256
#define HOSTNAME_MAX 63
#define SCRIPT_DIR "/tmp/argo/staging"
#define SCRIPT_PATH SCRIPT_DIR "/script"
#define NO_MOUNT_SETATTR_ENV "EXITPROBE_SANDBOX_NO_MOUNT_SETATTR"

/* The CLONE_VM init's stack: its set-up and the command's pre-exec code
 * (vfork, same stack) need ~25 KB at most (mountinfo buffer, PATH search). */
#define INIT_STACK_SIZE (256 * 1024)

#define NS_FLAGS ((uint64_t)(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC))

#define CAPBIT(c) (1ULL << (c))
/* Docker's (and so a default Kubernetes pod's) capability set: what an Argo
 * step running as root actually has.  Without this a step could, e.g.,
 * write the host's block devices: a read-only mount does not protect
 * device nodes. */
#define DEFAULT_CAPS                                                                       \
  (CAPBIT(CAP_CHOWN) | CAPBIT(CAP_DAC_OVERRIDE) | CAPBIT(CAP_FSETID) | CAPBIT(CAP_FOWNER) |  \
   CAPBIT(CAP_MKNOD) | CAPBIT(CAP_NET_RAW) | CAPBIT(CAP_SETGID) | CAPBIT(CAP_SETUID) |      \
   CAPBIT(CAP_SETFCAP) | CAPBIT(CAP_SETPCAP) | CAPBIT(CAP_NET_BIND_SERVICE) |               \
   CAPBIT(CAP_SYS_CHROOT) | CAPBIT(CAP_KILL) | CAPBIT(CAP_AUDIT_WRITE))

/* Signals the init passes on to the command (the rest of its set is SIGCHLD). */
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

struct sandbox_context {
  struct sandbox_capabilities caps;
  struct ep_cg_manager *cg;            /* NULL when cgroups are not used at all */
  struct ep_seccomp_program *seccomp; /* NULL: seccomp unavailable */
  int devnull_fd;
  int last_cap;
  bool drop_caps;
  bool use_mount_setattr;
  bool no_clone_into_cgroup; /* the kernel refused CLONE_INTO_CGROUP once */
  bool seccomp_notify;       /* SECCOMP_RET_USER_NOTIF is available */
  int init_prog_fd;          /* the embedded init program (init_launch.h); -1: fork-style inits */
  void *init_stack;          /* where a CLONE_VM init runs (INIT_STACK_SIZE, guard page below) */
  struct sandbox_step_private *live; /* launched, not yet reaped */
};

/* What the supervisor needs to answer a trapped call. */
struct notify_fault {
  int nr;
  size_t tag;
  bool baseline_denied; /* "let it run" still means EPERM */
};

struct sandbox_step_private {
  struct sandbox_step_private *prev, *next;
  struct ep_cg_step *cg;
  int status_fd; /* read end: the command's raw wait status (4 bytes), written by the
                    init just before it exits, so that "killed by SIGTERM" and "exited
                    143" differ; non-blocking */
  int pidfd;     /* the same descriptor as sandbox_step.pidfd */
  int notify_fd; /* the same descriptor as sandbox_step.notify_fd */
  int sync_fd;   /* still open when launch returned before the exec: read at reap */
  bool foreign;      /* not our child (io_prefix): reaped by the supervisor, its status
                        read from status_path */
  char *status_path;
  bool has_file_status; /* file_status read from status_path at reap */
  int file_status;
  struct notify_fault *faults; /* the notify ones */
  size_t n_faults;
  bool setup_failed;
  char setup_error[MSG_MAX];
};

/* The message carrying the listener.  Prepared by the parent at an address
 * the filter knows (see plan_faults); the command fills in the descriptor. */
struct listener_handoff {
  struct msghdr msg;
  struct iovec iov;
  char byte;
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
};

/* Everything the init and the command need, built before the clone. */
struct launch_plan {
  const struct sandbox_step_spec *spec;
  const struct sock_fprog *seccomp;
  const char *path;    /* command search path, from the step's environment */
  const char *workdir; /* never NULL */
  size_t hostname_len;
  bool namespaces;
  bool mount_setattr;
  bool drop_caps;
  bool listener; /* load with a listener and hand it over on handoff_w */
  int last_cap;
  int sync_w, out_w, err_w, devnull, handoff_w, status_w;
  int init_prog; /* exec this once the command runs (CLONE_VM init); -1: stay */
  struct listener_handoff *handoff;
  int cg_fds[EP_CG_MAX_GROUPS];
  size_t n_cg;
};

/* ------------------------------------------------------------------------
 * Child side.  Runs after clone in a copy of the parent: no allocation
 * (the parent may hold a malloc lock in another thread), no stdio. */

struct msg {
  char s[MSG_MAX];
  size_t n;
};

static void msg_add(struct msg *m, const char *str) {
  while (*str != '\0' && m->n + 1 < sizeof(m->s))
    m->s[m->n++] = *str++;
  m->s[m->n] = '\0';
}

static const char *errno_text(int e) {
  const char *d = strerrordesc_np(e);
  return d != NULL ? d : "Unknown error";
}

/* "what \"arg\": strerror" to the parent, then exit 64. */
static _Noreturn void init_fail(const struct launch_plan *p, const char *what, const char *arg,
                                int err) {
  struct msg m = {.n = 0};
  msg_add(&m, what);
  if (arg != NULL) {
    msg_add(&m, " \"");
    msg_add(&m, arg);
    msg_add(&m, "\"");
  }
  msg_add(&m, ": ");
  msg_add(&m, errno_text(err));
  if (write(p->sync_w, m.s, m.n) < 0) {
    /* nothing left to tell it with: the exit code still says set-up failed */
  }
  _exit(SETUP_FAILED_EXIT);
}

static void raise_low_fd(int *fd) {
  if (*fd >= 0 && *fd < 3) {
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved >= 0)
      *fd = moved;
  }
}

static void close_fd_range(unsigned lo, unsigned hi) {
  if (lo > hi)
    return;
  if (syscall(SYS_close_range, lo, hi, 0) == 0)
    return;
  struct rlimit rl;
  unsigned top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (unsigned)rl.rlim_cur
                                                                             : 65536;
  for (unsigned fd = lo; fd <= hi && fd < top; fd++)
    (void)close((int)fd);
}

/* The init starts with every descriptor the runner had (other steps' pipes,
 * the runner's stdin/stdout...): keep only its own, so that nothing of the
 * runner's is held open for the life of the step.  The runner's stderr
 * stays, for a crash report (sanitizers) of the init itself; the command
 * never sees it. */
static void tidy_fds(struct launch_plan *p) {
  int *mine[8 + EP_CG_MAX_GROUPS];
  int stderr_fd = STDERR_FILENO;
  size_t n = 0;
  mine[n++] = &p->sync_w;
  mine[n++] = &p->status_w;
  mine[n++] = &p->init_prog;
  mine[n++] = &p->out_w;
  mine[n++] = &p->err_w;
  mine[n++] = &p->devnull;
  mine[n++] = &p->handoff_w;
  for (size_t i = 0; i < p->n_cg; i++)
    mine[n++] = &p->cg_fds[i];
  /* 0-2 get replaced by dup2 in the command; ours must not sit there. */
  for (size_t i = 0; i < n; i++)
    raise_low_fd(mine[i]);
  mine[n++] = &stderr_fd;
  int keep[8 + EP_CG_MAX_GROUPS];
  for (size_t i = 0; i < n; i++) {
    int v = *mine[i];
    size_t j = i;
    for (; j > 0 && keep[j - 1] > v; j--)
      keep[j] = keep[j - 1];
    keep[j] = v;
  }
  unsigned from = 0;
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < 0)
      continue;
    if ((unsigned)keep[i] > from)
      close_fd_range(from, (unsigned)keep[i] - 1);
    if ((unsigned)keep[i] + 1 > from)
      from = (unsigned)keep[i] + 1;
  }
  close_fd_range(from, ~0U);
}

/* Self-attach: "0" means the writer (see ep_cg_step_join for why v1 groups
 * are joined through "tasks"). */
static void join_cgroups(struct launch_plan *p) {
  for (size_t i = 0; i < p->n_cg; i++) {
    if (write(p->cg_fds[i], "0", 1) != 1)
      init_fail(p, "joining the step's cgroup", NULL, errno);
    close(p->cg_fds[i]);
    p->cg_fds[i] = -1;
  }
}

static unsigned long mount_flags_of(char *opts) {
  static const struct {
    const char *name;
    unsigned long flag;
  } known[] = {
      {"nosuid", MS_NOSUID},         {"nodev", MS_NODEV},       {"noexec", MS_NOEXEC},
      {"noatime", MS_NOATIME},       {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME},
      {"strictatime", MS_STRICTATIME},
  };
  unsigned long flags = 0;
  char *save = NULL;
  for (char *tok = strtok_r(opts, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
      if (strcmp(tok, known[i].name) == 0)
        flags |= known[i].flag;
  return flags;
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s) {
  char *out = s;
  for (char *in = s; *in != '\0'; in++) {
    if (in[0] == '\\' && in[1] >= '0' && in[1] <= '7' && in[2] >= '0' && in[2] <= '7' &&
        in[3] >= '0' && in[3] <= '7') {
      *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
      in += 3;
    } else {
      *out++ = *in;
    }
  }
  *out = '\0';
}

/* One mountinfo line: "id parent maj:min root mountpoint options ...". */
static void remount_line_readonly(const struct launch_plan *p, char *line) {
  char *field[6];
  char *save = NULL;
  char *tok = strtok_r(line, " ", &save);
  for (int i = 0; i < 6; i++) {
    if (tok == NULL)
      return;
    field[i] = tok;
    tok = strtok_r(NULL, " ", &save);
  }
  char *target = field[4];
  unescape_octal(target);
  /* Keep the mount's own nosuid/nodev/noexec/atime flags: a bind remount replaces them all. */
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | mount_flags_of(field[5]);
  /* ENOENT: hidden under a later mount, unreachable anyway. */
  if (mount(NULL, target, NULL, flags, NULL) < 0 && errno != ENOENT)
    init_fail(p, "remounting read-only", target, errno);
}

/* Fallback for kernels without mount_setattr (< 5.12): one remount per mount. */
static void remount_all_readonly(const struct launch_plan *p) {
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    init_fail(p, "open", "/proc/self/mountinfo", errno);
  char buf[16384];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      init_fail(p, "read", "/proc/self/mountinfo", errno);
    len += (size_t)r;
    buf[len] = '\0';
    char *start = buf;
    char *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + len - start))) != NULL) {
      *nl = '\0';
      remount_line_readonly(p, start);
      start = nl + 1;
    }
    size_t rest = (size_t)(buf + len - start);
    if (r == 0) {
      if (rest > 0)
        remount_line_readonly(p, start);
      break;
    }
    if (rest == sizeof(buf) - 1)
      init_fail(p, "read", "/proc/self/mountinfo", ENAMETOOLONG);
    memmove(buf, start, rest);
    len = rest;
  }
  close(fd);
}

static void make_root_readonly(const struct launch_plan *p) {
  if (p->mount_setattr) {
    /* Per-mount flag on our namespace's copies: the host's mounts stay rw. */
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr)) == 0)
      return;
    if (errno != ENOSYS)
      init_fail(p, "mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE)", "/", errno);
  }
  remount_all_readonly(p);
}

static void mount_tmpfs(const struct launch_plan *p, const char *target, bool required) {
  if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=" SANDBOX_TMP_SIZE) ==
      0)
    return;
  if (!required && errno == ENOENT)
    return;
  init_fail(p, "mount tmpfs on", target, errno);
}

/* Root in the step may not retune the host kernel through /proc/sys. */
static void bind_readonly(const struct launch_plan *p, const char *path) {
  if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
    if (errno == ENOENT)
      return;
    init_fail(p, "bind mount", path, errno);
  }
  if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            NULL) < 0)
    init_fail(p, "remounting read-only", path, errno);
}

/* The caller's host directory as /tmp, so that it can read the step's
 * output files after the step has ended. */
static void bind_host_tmp(const struct launch_plan *p, int dir_fd, bool detached,
                          const char *dir) {
  if (sandbox_tree_mount(dir_fd, "/tmp", detached) < 0)
    init_fail(p, "bind mount on /tmp of", dir, errno);
  close(dir_fd);
  /* The new mount copied the read-only flag its source mount got just before. */
  if (mount(NULL, "/tmp", NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
    init_fail(p, "remounting read-write", "/tmp", errno);
}

/* A private /dev: the harmless character devices a program expects, bound
 * from the host's, a fresh devpts, and nothing else -- no disks, no kmsg,
 * no loop or kvm devices, which read-only mounts would not protect. */
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
enum { N_DEV_NODES = sizeof(dev_nodes) / sizeof(dev_nodes[0]) };

/* The host's nodes, opened while the host's /dev is still in view. */
static void open_dev_nodes(int *fds) {
  char path[64];
  for (size_t i = 0; i < N_DEV_NODES; i++) {
    snprintf(path, sizeof(path), "/dev/%s", dev_nodes[i]);
    fds[i] = open(path, O_PATH | O_CLOEXEC);
  }
}

static void setup_dev(const struct launch_plan *p, int *fds, bool detached) {
  static const char *const *const nodes = dev_nodes;
  enum { N_NODES = N_DEV_NODES };
  char path[64];
  /* nodev: a node the step makes here itself (it has CAP_MKNOD) must not
   * open a host disk; the bound nodes are mounts of their own. */
  if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=0755,size=65536") <
      0)
    init_fail(p, "mount tmpfs on", "/dev", errno);
  for (size_t i = 0; i < N_NODES; i++) {
    if (fds[i] < 0)
      continue;
    snprintf(path, sizeof(path), "/dev/%s", nodes[i]);
    int f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (f < 0)
      init_fail(p, "creating", path, errno);
    close(f);
    if (sandbox_tree_mount(fds[i], path, detached) < 0)
      init_fail(p, "bind mount", path, errno);
    close(fds[i]);
  }
  if (mkdir("/dev/pts", 0755) == 0 &&
      mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620") == 0)
    (void)symlink("pts/ptmx", "/dev/ptmx");
  (void)mkdir("/dev/shm", 01777);
  (void)symlink("/proc/self/fd", "/dev/fd");
  (void)symlink("/proc/self/fd/0", "/dev/stdin");
  (void)symlink("/proc/self/fd/1", "/dev/stdout");
  (void)symlink("/proc/self/fd/2", "/dev/stderr");
}

/* An image's root filesystem as "/": bound recursively, made read-only
 * (as the host's root is otherwise), and pivoted into, the host's root
 * detached below it.  Whatever is needed from the host was opened before. */
static void enter_rootfs(const struct launch_plan *p, const char *dir) {
  static const char *const needed[] = {"/proc", "/tmp", "/dev"};
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    init_fail(p, "opening the image's root filesystem", dir, errno);
  for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
    struct stat st;
    if (fstatat(dfd, needed[i] + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
      init_fail(p, "the image's root filesystem lacks the mount point", needed[i], errno);
    if (!S_ISDIR(st.st_mode))
      init_fail(p, "the image's root filesystem lacks the mount point", needed[i], ENOTDIR);
  }
  close(dfd);
  if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
    init_fail(p, "bind mount of the image's root filesystem", dir, errno);
  bool done = false;
  if (p->mount_setattr) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, AT_FDCWD, dir, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
      done = true;
    else if (errno != ENOSYS)
      init_fail(p, "mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE)", dir, errno);
  }
  if (!done && mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    init_fail(p, "remounting read-only", dir, errno);
  if (chdir(dir) < 0)
    init_fail(p, "chdir", dir, errno);
  /* pivot_root(".", "."): the old root ends up stacked on the new one,
   * where one lazy unmount of "." takes it (and every host mount) away. */
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    init_fail(p, "pivot_root into", dir, errno);
  if (umount2(".", MNT_DETACH) < 0)
    init_fail(p, "detaching the host's root", NULL, errno);
  if (chdir("/") < 0)
    init_fail(p, "chdir", "/", errno);
}

static void mount_proc(const struct launch_plan *p) {
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    init_fail(p, "mount proc on", "/proc", errno);
}

static void setup_mounts(const struct launch_plan *p) {
  /* Nothing we mount may propagate back to the host's namespace. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    init_fail(p, "making mounts private", "/", errno);
  int bind_fds[SANDBOX_MAX_BINDS];
  struct bind_failure bf = {NULL, NULL};
  if (sandbox_binds_open(p->spec->binds, p->spec->n_binds, bind_fds, &bf) < 0)
    init_fail(p, bf.what, bf.path, errno);
  int dev_fds[N_DEV_NODES];
  open_dev_nodes(dev_fds);
  int tmp_fd = -1;
  if (p->spec->tmp_host_dir != NULL &&
      (tmp_fd = open(p->spec->tmp_host_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
    init_fail(p, "opening", p->spec->tmp_host_dir, errno);
  const char *rootfs = p->spec->rootfs;
  bool detached = rootfs != NULL;
  if (detached) {
    for (size_t i = 0; i < p->spec->n_binds; i++)
      if (sandbox_tree_detach(&bind_fds[i]) < 0)
        init_fail(p, "copying the mount of", p->spec->binds[i].host_dir, errno);
    for (size_t i = 0; i < N_DEV_NODES; i++)
      if (dev_fds[i] >= 0 && sandbox_tree_detach(&dev_fds[i]) < 0)
        init_fail(p, "copying the mount of the device", dev_nodes[i], errno);
    if (tmp_fd >= 0 && sandbox_tree_detach(&tmp_fd) < 0)
      init_fail(p, "copying the mount of", p->spec->tmp_host_dir, errno);
    enter_rootfs(p, rootfs);
    mount_proc(p);
  } else {
    make_root_readonly(p);
  }
  if (tmp_fd >= 0)
    bind_host_tmp(p, tmp_fd, detached, p->spec->tmp_host_dir);
  else
    mount_tmpfs(p, "/tmp", true);
  setup_dev(p, dev_fds, detached);
  mount_tmpfs(p, "/dev/shm", false);
  /* The host's /run holds daemons' sockets (docker.sock, systemd's). */
  mount_tmpfs(p, "/run", false);
  if (rootfs == NULL)
    mount_proc(p);
  bind_readonly(p, "/proc/sys");
  bind_readonly(p, "/proc/sysrq-trigger");
  if (sandbox_binds_apply(p->spec->binds, p->spec->n_binds, bind_fds, detached, &bf) < 0)
    init_fail(p, bf.what, bf.path, errno);
  for (size_t i = 0; i < p->spec->n_binds; i++)
    close(bind_fds[i]);
}

static void loopback_up(const struct launch_plan *p) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    init_fail(p, "socket for", "lo", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, "lo", 3);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    init_fail(p, "SIOCGIFFLAGS", "lo", errno);
  ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    init_fail(p, "bringing up", "lo", errno);
  close(s);
}

static void write_script(const struct launch_plan *p) {
  if (mkdir("/tmp/argo", 0755) < 0 && errno != EEXIST)
    init_fail(p, "mkdir", "/tmp/argo", errno);
  if (mkdir(SCRIPT_DIR, 0755) < 0 && errno != EEXIST)
    init_fail(p, "mkdir", SCRIPT_DIR, errno);
  int fd = open(SCRIPT_PATH, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0755);
  if (fd < 0)
    init_fail(p, "creating", SCRIPT_PATH, errno);
  const char *src = p->spec->script_source;
  size_t len = strlen(src);
  while (len > 0) {
    ssize_t w = write(fd, src, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      init_fail(p, "writing", SCRIPT_PATH, w < 0 ? errno : EIO);
    src += w;
    len -= (size_t)w;
  }
  /* The umask inherited from the runner must not decide the mode. */
  if (fchmod(fd, 0755) < 0)
    init_fail(p, "chmod", SCRIPT_PATH, errno);
  close(fd);
}

static void noop_handler(int sig) { (void)sig; }

static void block_waited_signals(sigset_t *waited) {
  sigemptyset(waited);
  for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
    sigaddset(waited, forwarded_signals[i]);
  sigaddset(waited, SIGCHLD);
  /* First thing: a SIGTERM sent right after launch must wait for us. */
  sigprocmask(SIG_SETMASK, waited, NULL);
}

/* Dispositions are inherited from the runner: an ignored SIGPIPE would
 * survive exec into the command.  The waited signals get a handler, not
 * SIG_DFL, because a PID-namespace init drops default-action signals. */
static void reset_signal_handlers(const sigset_t *waited) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  struct sigaction noop = dfl;
  noop.sa_handler = noop_handler;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP)
      continue;
    (void)sigaction(sig, sigismember(waited, sig) ? &noop : &dfl, NULL);
  }
}

/* Root commands get Docker's capability set; the bounding set limits what
 * exec grants to uid 0, the capset covers inheritable capabilities. */
static int drop_capabilities(const struct launch_plan *p) {
  for (int cap = 0; cap <= p->last_cap; cap++) {
    if ((DEFAULT_CAPS & CAPBIT(cap)) != 0)
      continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      return -errno;
  }
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) < 0)
    return -errno;
  for (int i = 0; i < 2; i++) {
    uint32_t keep = (uint32_t)(DEFAULT_CAPS >> (32 * i));
    data[i].effective &= keep;
    data[i].permitted &= keep;
    data[i].inheritable &= keep;
  }
  if (syscall(SYS_capset, &hdr, data) < 0)
    return -errno;
  return 0;
}

/* execvpe() would take PATH from the runner's environment, not the step's. */
static int exec_search(const char *file, char *const argv[], char *const envp[],
                       const char *path) {
  if (*file == '\0')
    return ENOENT;
  if (strchr(file, '/') != NULL) {
    execve(file, argv, envp);
    return errno;
  }
  size_t flen = strlen(file);
  char buf[4096];
  bool eacces = false;
  int last = ENOENT;
  for (const char *dir = path;;) {
    const char *end = strchrnul(dir, ':');
    size_t dlen = (size_t)(end - dir);
    if (dlen == 0) { /* empty entry: the working directory */
      dir = ".";
      dlen = 1;
    }
    if (dlen + 1 + flen + 1 > sizeof(buf)) {
      last = ENAMETOOLONG;
    } else {
      memcpy(buf, dir, dlen);
      buf[dlen] = '/';
      memcpy(buf + dlen + 1, file, flen + 1);
      execve(buf, argv, envp);
      last = errno;
      if (errno == EACCES)
        eacces = true;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV)
        return errno;
    }
    if (*end == '\0')
      break;
    dir = end + 1;
  }
  return eacces ? EACCES : last;
}

static void set_oom_score_adj(const char *value) {
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  if (write(fd, value, strlen(value)) < 0) {
    /* lowering needs CAP_SYS_RESOURCE, which some hosts withhold even from root */
  }
  close(fd);
}

enum command_stage { STAGE_OK, STAGE_STDIO, STAGE_CAPS, STAGE_SECCOMP, STAGE_HANDOFF, STAGE_EXEC };

struct command_failure {
  int stage;
  int err;
};

/* From here on every call the command makes may be trapped, and only the
 * parent can answer once it holds the listener: so the only call between
 * the load and execve is the hand-off itself, which the filter exempts by
 * its msghdr address.  The listener is O_CLOEXEC: the message in flight
 * keeps it alive past the exec.  A failed exec then waits for the parent's
 * answers like any other trapped call. */
static int load_and_hand_over(const struct launch_plan *p, int *stage) {
  int fd = ep_seccomp_load_with_listener(p->seccomp);
  if (fd < 0)
    return fd;
  *stage = STAGE_HANDOFF;
  memcpy(CMSG_DATA(&p->handoff->control.align), &fd, sizeof(fd));
  if (syscall(SYS_sendmsg, p->handoff_w, &p->handoff->msg, MSG_NOSIGNAL) < 0)
    return -errno;
  return 0;
}

/* vfork child: shares the init's memory until exec, writes only *f
 * (and, with a listener, the descriptor into *p->handoff). */
static _Noreturn void command_main(const struct launch_plan *p, volatile struct command_failure *f) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  int stage = STAGE_STDIO;
  int rc = 0;
  if (dup2(p->devnull, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0) {
    rc = -errno;
    goto fail;
  }
  /* The init's RSS is the runner's (a fork copy), so the memcg OOM killer
   * could pick it over the command and report the wrong death; the command
   * is made the preferred victim, as a BestEffort pod's container is.  A
   * vfork child's setting is its own: it does not spread to the init. */
  set_oom_score_adj("1000");
  stage = STAGE_CAPS;
  if (p->drop_caps && (rc = drop_capabilities(p)) < 0)
    goto fail;
  stage = STAGE_SECCOMP;
  if (p->listener)
    rc = load_and_hand_over(p, &stage);
  else if (p->seccomp != NULL)
    rc = ep_seccomp_load(p->seccomp);
  else if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    rc = -errno;
  if (rc < 0)
    goto fail;
  stage = STAGE_EXEC;
  rc = -exec_search(p->spec->argv[0], p->spec->argv, p->spec->envp, p->path);
fail:
  f->err = -rc;
  f->stage = stage;
  _exit(127);
}

/* Kept tiny: nothing of ours lives across the vfork but *f. */
static pid_t start_command(const struct launch_plan *p, volatile struct command_failure *f) {
  pid_t pid = vfork();
  if (pid == 0)
    command_main(p, f);
  return pid;
}

static _Noreturn void report_command_failure(const struct launch_plan *p,
                                             const volatile struct command_failure *f) {
  switch (f->stage) {
  case STAGE_STDIO:
    init_fail(p, "redirecting stdio", NULL, f->err);
  case STAGE_CAPS:
    init_fail(p, "dropping capabilities", NULL, f->err);
  case STAGE_SECCOMP:
    init_fail(p, "loading the seccomp filter", NULL, f->err);
  case STAGE_HANDOFF:
    init_fail(p, "passing the seccomp listener to the runner", NULL, f->err);
  default:
    init_fail(p, "exec", p->spec->argv[0], f->err);
  }
}

static _Noreturn void finish(const struct launch_plan *p, int status) {
  if (write(p->status_w, &status, sizeof(status)) < 0) {
    /* the parent then goes by the exit code alone */
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* Forward signals, reap everything, exit when the command does (the kernel
 * then kills whatever is left in the namespace). */
static _Noreturn void supervise(const struct launch_plan *p, pid_t cmd, const sigset_t *waited) {
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(waited, &si);
    if (sig < 0)
      continue;
    if (sig != SIGCHLD) {
      (void)kill(cmd, sig);
      continue;
    }
    int status;
    pid_t w;
    while ((w = waitpid(-1, &status, WNOHANG)) > 0)
      if (w == cmd)
        finish(p, status);
  }
}

static char *decimal(char *end, long v) {
  *--end = '\0';
  do
    *--end = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  return end;
}

/* A CLONE_VM init shares the runner's memory while the runner waits: it
 * hands over to the tiny init program (runner/step_init.c), which has the
 * same job as supervise() and reports the same way.  Its exec closes the
 * sync pipe (EOF for the parent) and releases the runner.  Signals stay
 * blocked across the exec and pending ones stay pending. */
static _Noreturn void exec_step_init(const struct launch_plan *p, pid_t cmd) {
  char pid_buf[24], fd_buf[24];
  char *argv[] = {"exitprobe-step-init", decimal(pid_buf + sizeof(pid_buf), cmd),
                  decimal(fd_buf + sizeof(fd_buf), p->status_w), NULL};
  char *envp[] = {NULL};
  int e = fcntl(p->status_w, F_SETFD, 0) < 0 ? errno : 0;
  if (e == 0) {
    syscall(SYS_execveat, p->init_prog, "", argv, envp, AT_EMPTY_PATH);
    e = errno;
  }
  (void)kill(cmd, SIGKILL);
  init_fail(p, "exec of the step's init program", NULL, e);
}

static _Noreturn void init_main(struct launch_plan *p) {
  /* The runner dying must not leave steps behind. */
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t waited;
  block_waited_signals(&waited);
  tidy_fds(p);
  join_cgroups(p);
  if (p->namespaces) {
    setup_mounts(p);
    if (p->hostname_len > 0 && sethostname(p->spec->hostname, p->hostname_len) < 0)
      init_fail(p, "sethostname", NULL, errno);
    if (p->spec->network_isolated)
      loopback_up(p);
  } else {
    /* Not pid 1: become the reaper of the command's orphans at least. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  }
  if (p->spec->script_source != NULL)
    write_script(p);
  if (chdir(p->workdir) < 0)
    init_fail(p, "chdir", p->workdir, errno);
  reset_signal_handlers(&waited);

  volatile struct command_failure f = {.stage = STAGE_OK, .err = 0};
  pid_t cmd = start_command(p, &f);
  if (cmd < 0)
    init_fail(p, "starting the command", NULL, errno);
  if (f.stage != STAGE_OK) {
    (void)waitpid(cmd, NULL, 0);
    report_command_failure(p, &f);
  }
  close(p->out_w);
  close(p->err_w);
  close(p->devnull);
  if (p->handoff_w >= 0)
    close(p->handoff_w);
  if (p->init_prog >= 0)
    exec_step_init(p, cmd);
  close(p->sync_w); /* EOF for the parent: the command is running */
  /* Where permitted, the init is never an OOM victim at all. */
  set_oom_score_adj("-1000");
  supervise(p, cmd, &waited);
}

static int init_entry(void *plan) { init_main(plan); }

/* ------------------------------------------------------------------------
 * Parent side. */


/* Fork-style clone returning twice, with a pidfd, born in cgroup_fd's
 * cgroup2 group when cgroup_fd >= 0.  exit_signal 0: the init is a "clone
 * child" - no SIGCHLD to the runner, never auto-reaped even if the runner
 * ignores SIGCHLD, invisible to a stray waitpid(-1); only our
 * waitid(P_PIDFD, __WALL) collects it. */
static pid_t clone_with_pidfd(uint64_t flags, int cgroup_fd, int *pidfd) {
  struct ep_clone_args args;
  memset(&args, 0, sizeof(args));
  args.flags = flags | CLONE_PIDFD;
  args.pidfd = (uint64_t)(uintptr_t)pidfd;
  args.exit_signal = 0;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)cgroup_fd;
  }
  long rc = syscall(SYS_clone3, &args, sizeof(args));
  if (rc < 0 && errno == ENOSYS && cgroup_fd < 0) /* kernel < 5.3; CLONE_PIDFD needs 5.2 */
    rc = syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD), NULL, pidfd, NULL, 0);
  return (pid_t)rc;
}

static int wait_pidfd(int pidfd, siginfo_t *si) {
  memset(si, 0, sizeof(*si));
  while (waitid(P_PIDFD, (id_t)pidfd, si, WEXITED | __WALL) < 0) {
    if (errno != EINTR)
      return -errno;
  }
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void add_cap_note(struct sandbox_capabilities *caps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_cap_note(struct sandbox_capabilities *caps, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  va_end(ap);
  char **n = realloc(caps->notes, (caps->n_notes + 1) * sizeof(*n));
  if (n == NULL)
    abort();
  caps->notes = n;
  caps->notes[caps->n_notes++] = s;
}

/* A short-lived child in new namespaces that makes / private, as every
 * step's init will.  Returns 0, or the errno that stopped it. */
static int probe_namespaces(uint64_t flags) {
  int pidfd = -1;
  pid_t pid = clone_with_pidfd(flags, -1, &pidfd);
  if (pid < 0)
    return errno;
  if (pid == 0)
    _exit(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 ? 0 : 1);
  siginfo_t si;
  int rc = wait_pidfd(pidfd, &si);
  close(pidfd);
  if (rc < 0)
    return -rc;
  return si.si_code == CLD_EXITED && si.si_status == 0 ? 0 : EPERM;
}

static int probe_capabilities(struct sandbox_context *ctx, const struct sandbox_options *opts,
                              ep_error **err) {
  struct sandbox_capabilities *caps = &ctx->caps;
  int e = probe_namespaces(NS_FLAGS | CLONE_NEWNET);
  if (e == 0) {
    caps->namespaces = caps->net_namespace = true;
  } else {
    e = probe_namespaces(NS_FLAGS);
    caps->namespaces = e == 0;
  }
  if (!caps->namespaces) {
    if (opts->require_namespaces)
      return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                          "cannot create PID/mount namespaces: clone: %s (needs CAP_SYS_ADMIN: "
                          "run as root)",
                          strerror(e));
    add_cap_note(caps,
                 "namespaces unavailable (%s): steps share the host's PID, mount, UTS and IPC "
                 "namespaces, no read-only root, no private /tmp",
                 strerror(e));
  } else {
    add_cap_note(caps, "namespaces: PID, mount, UTS, IPC per step; read-only root, private /tmp");
    add_cap_note(caps, caps->net_namespace
                           ? "network namespace available but off by default (per step opt-in)"
                           : "network namespace unavailable: network isolation cannot be used");
  }
  return 0;
}

static void setup_seccomp(struct sandbox_context *ctx) {
  struct sandbox_capabilities *caps = &ctx->caps;
  uint32_t action = SECCOMP_RET_ERRNO;
  if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0) {
    add_cap_note(caps, "seccomp filters unavailable (%s): no syscall filter", strerror(errno));
    return;
  }
  ep_error *e = NULL;
  if (ep_seccomp_build(&ctx->seccomp, &e) < 0) {
    add_cap_note(caps, "seccomp filter not built: %s", e->message);
    ep_error_free(&e);
    return;
  }
  caps->seccomp = true;
  add_cap_note(caps, "seccomp: default-allow filter, %zu syscalls denied with EPERM (%u BPF insns)",
               ctx->seccomp->n_denied, (unsigned)ctx->seccomp->fprog.len);
  action = SECCOMP_RET_USER_NOTIF;
  ctx->seccomp_notify = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
  if (!ctx->seccomp_notify)
    add_cap_note(caps, "seccomp user notification unavailable (%s): syscall faults decided per "
                       "call cannot be used", strerror(errno));
}

static void setup_cgroups(struct sandbox_context *ctx, const struct sandbox_options *opts) {
  struct sandbox_capabilities *caps = &ctx->caps;
  ep_error *e = NULL;
  if (ep_cg_manager_new(opts->run_name, &ctx->cg, &e) < 0) {
    add_cap_note(caps, "cgroups unusable: %s", e->message);
    ep_error_free(&e);
    ctx->cg = NULL;
    return;
  }
  const struct ep_cg_info *in = ep_cg_manager_info(ctx->cg);
  caps->cgroup = in->mode;
  caps->memory_limit = in->memory;
  caps->pids_limit = in->pids;
  caps->freezer = in->freezer;
  size_t n = 0;
  const char *const *notes = ep_cg_manager_notes(ctx->cg, &n);
  for (size_t i = 0; i < n; i++)
    add_cap_note(caps, "%s", notes[i]);
}

struct init_probe {
  int prog;
};

static int probe_init_entry(void *arg) {
  const struct init_probe *pr = arg;
  char *argv[] = {"exitprobe-step-init", NULL};
  char *envp[] = {NULL};
  syscall(SYS_execveat, pr->prog, "", argv, envp, AT_EMPTY_PATH);
  _exit(127);
}

/* CLONE_VM inits need the embedded program, a stack for them, and a kernel
 * that runs the program from its memfd: tried once here, with no
 * namespaces (the program exits 0 without arguments). */
static void setup_init_program(struct sandbox_context *ctx) {
  size_t page = (size_t)getpagesize();
  int fd = ep_init_program_open();
  if (fd < 0) {
    if (errno != ENOSYS)
      add_cap_note(&ctx->caps, "launch: step inits are fork-style clones (init program: %s)",
                   strerror(errno));
    return;
  }
  char *map = mmap(NULL, INIT_STACK_SIZE + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) {
    close(fd);
    return;
  }
  (void)mprotect(map, page, PROT_NONE); /* guard page: an overflow faults */
  ctx->init_stack = map + page;
  struct init_probe pr = {.prog = fd};
  int pidfd = -1;
  struct ep_clone_args a;
  memset(&a, 0, sizeof(a));
  a.flags = CLONE_PIDFD;
  a.pidfd = (uint64_t)(uintptr_t)&pidfd;
  a.stack = (uint64_t)(uintptr_t)ctx->init_stack;
  a.stack_size = INIT_STACK_SIZE;
  pid_t pid = ep_clone_vm_vfork(&a, probe_init_entry, &pr);
  siginfo_t si;
  bool ok = pid > 0 && wait_pidfd(pidfd, &si) == 0 && si.si_code == CLD_EXITED && si.si_status == 0;
  if (pidfd >= 0)
    close(pidfd);
  if (ok) {
    ctx->init_prog_fd = fd;
    return;
  }
  add_cap_note(&ctx->caps, "launch: step inits are fork-style clones (CLONE_VM init unavailable)");
  close(fd);
}

static int read_last_cap(void) {
  int last = CAP_LAST_CAP;
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  if (f != NULL) {
    if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
      last = CAP_LAST_CAP;
    fclose(f);
  }
  return last;
}

static void free_notes(struct sandbox_capabilities *caps) {
  for (size_t i = 0; i < caps->n_notes; i++)
    free(caps->notes[i]);
  free(caps->notes);
  caps->notes = NULL;
  caps->n_notes = 0;
}

int sandbox_context_new(const struct sandbox_options *opts, struct sandbox_context **out,
                        ep_error **err) {
  struct sandbox_context *ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    abort();
  ctx->init_prog_fd = -1;
  ctx->devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (ctx->devnull_fd < 0) {
    ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "open /dev/null");
    goto fail;
  }
  if (probe_capabilities(ctx, opts, err) < 0)
    goto fail;
  ctx->last_cap = read_last_cap();
  ctx->drop_caps = ctx->caps.namespaces && geteuid() == 0;
  if (ctx->drop_caps)
    add_cap_note(&ctx->caps, "capabilities: steps run with Docker's default set");
  /* A way to exercise (and fall back to) the pre-5.12 remount path. */
  ctx->use_mount_setattr = getenv(NO_MOUNT_SETATTR_ENV) == NULL;
  setup_seccomp(ctx);
  setup_cgroups(ctx, opts);
  setup_init_program(ctx);
  *out = ctx;
  return 0;
fail:
  close_fd(&ctx->devnull_fd);
  free_notes(&ctx->caps);
  free(ctx);
  return -1;
}

const struct sandbox_capabilities *sandbox_context_capabilities(const struct sandbox_context *ctx) {
  return &ctx->caps;
}

static void link_live(struct sandbox_context *ctx, struct sandbox_step_private *priv) {
  priv->prev = NULL;
  priv->next = ctx->live;
  if (ctx->live != NULL)
    ctx->live->prev = priv;
  ctx->live = priv;
}

static void unlink_live(struct sandbox_context *ctx, struct sandbox_step_private *priv) {
  if (priv->prev != NULL)
    priv->prev->next = priv->next;
  else if (ctx->live == priv)
    ctx->live = priv->next;
  if (priv->next != NULL)
    priv->next->prev = priv->prev;
  priv->prev = priv->next = NULL;
}

/* Removes the step's cgroups (killing stragglers) and frees priv. */
static void release_private(struct sandbox_context *ctx, struct sandbox_step_private *priv) {
  if (priv->cg != NULL) {
    ep_error *e = NULL;
    /* On failure the group stays with the manager, which retries at the end. */
    (void)ep_cg_step_destroy(ctx->cg, priv->cg, &e);
    ep_error_free(&e);
  }
  close_fd(&priv->status_fd);
  close_fd(&priv->sync_fd);
  close_fd(&priv->notify_fd);
  free(priv->faults);
  free(priv->status_path);
  free(priv);
}

static const char *find_path(char *const *envp) {
  for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
    if (strncmp(envp[i], "PATH=", 5) == 0)
      return envp[i] + 5;
  return SANDBOX_DEFAULT_PATH;
}

static int set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Blocks until the init closes the sync pipe: after exec, or after it wrote
 * why set-up failed. */
static void read_setup_result(int fd, struct sandbox_step_private *priv) {
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, priv->setup_error + got, sizeof(priv->setup_error) - 1 - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
    if (got == sizeof(priv->setup_error) - 1)
      break;
  }
  priv->setup_error[got] = '\0';
  priv->setup_failed = got > 0;
}

static void plan_fill(const struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                      struct sandbox_step_private *priv, struct launch_plan *p) {
  memset(p, 0, sizeof(*p));
  p->spec = spec;
  p->seccomp = ctx->seccomp != NULL ? &ctx->seccomp->fprog : NULL;
  p->path = find_path(spec->envp);
  p->workdir = spec->working_dir != NULL && *spec->working_dir != '\0' ? spec->working_dir : "/";
  size_t hl = spec->hostname != NULL ? strlen(spec->hostname) : 0;
  p->hostname_len = hl > HOSTNAME_MAX ? HOSTNAME_MAX : hl;
  p->namespaces = ctx->caps.namespaces;
  p->mount_setattr = ctx->use_mount_setattr;
  p->drop_caps = ctx->drop_caps;
  p->last_cap = ctx->last_cap;
  p->devnull = ctx->devnull_fd;
  p->handoff_w = -1;
  p->status_w = -1;
  p->init_prog = -1;
}

static void handoff_prepare(struct listener_handoff *h) {
  memset(h, 0, sizeof(*h));
  h->iov.iov_base = &h->byte;
  h->iov.iov_len = 1;
  h->msg.msg_iov = &h->iov;
  h->msg.msg_iovlen = 1;
  h->msg.msg_control = h->control.buf;
  h->msg.msg_controllen = sizeof(h->control.buf);
  struct cmsghdr *c = CMSG_FIRSTHDR(&h->msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
}

/* The step's own filter when it has faults, compiled here in the parent
 * (the child never calls libseccomp).  Records in priv what the supervisor
 * needs; *prog stays NULL for a step without faults. */
static int plan_faults(const struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                       struct sandbox_step_private *priv, struct listener_handoff *handoff,
                       struct ep_seccomp_program **prog, ep_error **err) {
  int ret = -1;
  *prog = NULL;
  size_t n = spec->n_syscall_faults;
  if (n == 0)
    return 0;
  const char *step = spec->name != NULL ? spec->name : "?";
  if (ctx->seccomp == NULL)
    return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                        "step %s has syscall faults, but seccomp filters are unavailable here", step);
  struct ep_seccomp_fault *f = calloc(n, sizeof(*f));
  priv->faults = calloc(n, sizeof(*priv->faults));
  if (f == NULL || priv->faults == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    const struct sandbox_syscall_fault *sf = &spec->syscall_faults[i];
    f[i] = (struct ep_seccomp_fault){
        .nr = sf->nr, .errno_value = sf->errno_value, .notify = !sf->always};
    if (sf->always)
      continue;
    priv->faults[priv->n_faults++] = (struct notify_fault){
        .nr = sf->nr, .tag = sf->tag, .baseline_denied = ep_seccomp_baseline_denies(sf->nr)};
  }
  if (priv->n_faults > 0 && !ctx->seccomp_notify) {
    ep_error_set(err, EP_EXIT_ENVIRONMENT,
                 "step %s has syscall faults decided per call, but seccomp user notification is "
                 "unavailable here", step);
    goto cleanup;
  }
  handoff_prepare(handoff);
  struct ep_seccomp_exemption exempt = {
      .nr = priv->n_faults > 0 ? (int)SYS_sendmsg : -1,
      .arg1 = (uint64_t)(uintptr_t)&handoff->msg};
  if (ep_seccomp_build_with_faults(f, n, &exempt, prog, err) < 0) {
    ep_error_wrap(*err, "step %s", step);
    goto cleanup;
  }
  ret = 0;
cleanup:
  free(f);
  return ret;
}

/* Blocks until the command has passed its listener, or until the step got
 * so far as to make that impossible (EOF: every holder of the write end is
 * gone or exec'd; set-up failed before the filter was loaded). */
static int receive_listener(int sock, int *out) {
  struct listener_handoff h;
  handoff_prepare(&h);
  ssize_t r;
  do
    r = recvmsg(sock, &h.msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -errno;
  *out = -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&h.msg);
  if (r > 0 && c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
      c->cmsg_len == CMSG_LEN(sizeof(int)))
    memcpy(out, CMSG_DATA(c), sizeof(*out));
  return 0;
}

/* With a listener the command's own execve may be trapped and wait for an
 * answer only the caller can give (it has the decider): so stop waiting for
 * the exec as soon as a call waits.  Returns true once the sync pipe has
 * something (a message or EOF). */
static bool wait_exec_or_trap(int sync_fd, int notify_fd) {
  for (;;) {
    struct pollfd p[2] = {{sync_fd, POLLIN, 0}, {notify_fd, POLLIN, 0}};
    int rc = poll(p, 2, -1);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0 || p[0].revents != 0)
      return true;
    if (p[1].revents & POLLIN)
      return false;
    if (p[1].revents != 0) /* HUP: every process under the filter is gone */
      return true;
  }
}

/* Which groups the child joins itself: all v1 ones, plus the cgroup2 one
 * unless it is born there.  Returns the CLONE_INTO_CGROUP fd or -1. */
static int plan_cgroups(const struct ep_cg_join *j, bool clone_into, struct launch_plan *p) {
  p->n_cg = 0;
  for (size_t i = 0; i < j->n; i++)
    p->cg_fds[p->n_cg++] = j->fds[i];
  if (j->clone_into >= 0 && clone_into)
    return j->clone_into;
  if (j->fallback_fd >= 0)
    p->cg_fds[p->n_cg++] = j->fallback_fd;
  return -1;
}

static int check_spec(const struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                      ep_error **err) {
  if (spec == NULL || spec->argv == NULL || spec->argv[0] == NULL)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_launch: step has no command");
  if (spec->n_syscall_faults > 0 && spec->syscall_faults == NULL)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_launch: syscall faults missing");
  if (spec->n_binds > SANDBOX_MAX_BINDS || (spec->n_binds > 0 && spec->binds == NULL))
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_launch: bad volume mounts");
  if (spec->n_binds > 0 && !ctx->caps.namespaces)
    return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                        "step %s mounts volumes, which needs a mount namespace, and namespaces "
                        "cannot be created here",
                        spec->name != NULL ? spec->name : "?");
  if (spec->rootfs != NULL && !ctx->caps.namespaces)
    return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                        "step %s runs in an image's root filesystem, which needs a mount "
                        "namespace, and namespaces cannot be created here",
                        spec->name != NULL ? spec->name : "?");
  if (spec->network_isolated && !ctx->caps.net_namespace)
    return ep_error_set(err, EP_EXIT_ENVIRONMENT,
                        "step %s asks for network isolation, but network namespaces cannot be "
                        "created here",
                        spec->name != NULL ? spec->name : "?");
  return 0;
}

/* After the clone: take the listener, then wait for the exec (or for the
 * first trapped call, see wait_exec_or_trap). */
static void await_command(int *sync_fd, int handoff_fd, struct sandbox_step_private *priv) {
  if (handoff_fd >= 0) {
    int rc = receive_listener(handoff_fd, &priv->notify_fd);
    if (rc < 0) {
      /* The command cannot be supervised: it must not run at all. */
      (void)syscall(SYS_pidfd_send_signal, priv->pidfd, SIGKILL, NULL, 0);
      priv->setup_failed = true;
      snprintf(priv->setup_error, sizeof(priv->setup_error),
               "receiving the seccomp listener: %s", strerror(-rc));
      return;
    }
    if (priv->notify_fd >= 0 && set_nonblocking(priv->notify_fd) < 0) {
      /* Cannot happen; sandbox_handle_notification polls before receiving anyway. */
    }
  }
  if (priv->notify_fd < 0 || wait_exec_or_trap(*sync_fd, priv->notify_fd)) {
    read_setup_result(*sync_fd, priv);
    return;
  }
  /* The init has exited by the time of the reap: its message, if any, is
   * all there by then, and reading must not wait for a command that may
   * still hold the pipe (no PID namespace). */
  priv->sync_fd = *sync_fd;
  *sync_fd = -1;
  if (set_nonblocking(priv->sync_fd) < 0) {
    /* Cannot happen for a pipe. */
  }
}

/* The init: CLONE_VM on its own stack where the init program is at hand;
 * fork-style when a listener must reach the runner before the command's
 * exec (the runner waits, CLONE_VFORK, until the init execs, and the
 * command's execve, if trapped, would wait for the runner's answer), and
 * where CLONE_VM inits are unavailable. */
static pid_t start_init(struct sandbox_context *ctx, uint64_t flags, int into, int *pidfd,
                        struct launch_plan *plan) {
  if (ctx->init_prog_fd >= 0 && !plan->listener) {
    plan->init_prog = ctx->init_prog_fd;
    struct ep_clone_args a;
    memset(&a, 0, sizeof(a));
    a.flags = flags | CLONE_PIDFD;
    a.pidfd = (uint64_t)(uintptr_t)pidfd;
    a.exit_signal = 0; /* as clone_with_pidfd: only our waitid collects it */
    a.stack = (uint64_t)(uintptr_t)ctx->init_stack;
    a.stack_size = INIT_STACK_SIZE;
    if (into >= 0) {
      a.flags |= CLONE_INTO_CGROUP;
      a.cgroup = (uint64_t)into;
    }
    return ep_clone_vm_vfork(&a, init_entry, plan);
  }
  plan->init_prog = -1;
  pid_t pid = clone_with_pidfd(flags, into, pidfd);
  if (pid == 0)
    init_main(plan);
  return pid;
}

static int open_io_file(const char *prefix, const char *suffix, int flags, char **path_out,
                        ep_error **err) {
  char *path = NULL;
  if (asprintf(&path, "%s.%s", prefix, suffix) < 0)
    abort();
  int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot open %s", path);
  if (path_out != NULL && fd >= 0)
    *path_out = path;
  else
    free(path);
  return fd;
}

/* A supervised step's output and status go to files that outlive its
 * controller (see sandbox_step_spec.io_prefix); laid out as the pipes they
 * replace: [0] what the runner reads, [1] what the step writes. */
static int open_io_files(const char *prefix, struct sandbox_step_private *priv, int out_p[2],
                         int err_p[2], int status_p[2], ep_error **err) {
  static const int create = O_WRONLY | O_CREAT | O_TRUNC;
  priv->foreign = true;
  if ((out_p[1] = open_io_file(prefix, "stdout", create, NULL, err)) < 0 ||
      (out_p[0] = open_io_file(prefix, "stdout", O_RDONLY, NULL, err)) < 0 ||
      (err_p[1] = open_io_file(prefix, "stderr", create, NULL, err)) < 0 ||
      (err_p[0] = open_io_file(prefix, "stderr", O_RDONLY, NULL, err)) < 0 ||
      (status_p[1] = open_io_file(prefix, "status", create, &priv->status_path, err)) < 0)
    return -1;
  return 0;
}

int sandbox_launch(struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                   struct sandbox_step *out, ep_error **err) {
  out->pid = -1;
  out->pidfd = out->stdout_fd = out->stderr_fd = out->notify_fd = -1;
  out->priv = NULL;
  if (check_spec(ctx, spec, err) < 0)
    return -1;

  int ret = -1;
  int sync_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, handoff[2] = {-1, -1};
  int status_p[2] = {-1, -1};
  int pidfd = -1;
  struct ep_seccomp_program *step_filter = NULL;
  struct listener_handoff handoff_msg;
  struct sandbox_step_private *priv = calloc(1, sizeof(*priv));
  if (priv == NULL)
    abort();
  priv->pidfd = priv->notify_fd = priv->sync_fd = priv->status_fd = -1;
  if (plan_faults(ctx, spec, priv, &handoff_msg, &step_filter, err) < 0)
    goto cleanup;
  if (ctx->cg != NULL) {
    struct ep_cg_limits lim = {
        .memory = spec->memory_limit != 0 ? spec->memory_limit : SANDBOX_DEFAULT_MEMORY_LIMIT,
        .pids = spec->pids_limit != 0 ? spec->pids_limit : SANDBOX_DEFAULT_PIDS_LIMIT,
    };
    if (lim.pids < 0)
      lim.pids = -1;
    if (ep_cg_step_create(ctx->cg, spec->name != NULL ? spec->name : "step", &lim, &priv->cg,
                          err) < 0)
      goto cleanup;
  }
  if (spec->io_prefix != NULL) {
    if (pipe2(sync_p, O_CLOEXEC) < 0) {
      ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "pipe2");
      goto cleanup;
    }
    if (open_io_files(spec->io_prefix, priv, out_p, err_p, status_p, err) < 0)
      goto cleanup;
  } else if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
             pipe2(err_p, O_CLOEXEC) < 0 || pipe2(status_p, O_CLOEXEC | O_NONBLOCK) < 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "pipe2");
    goto cleanup;
  }

  struct launch_plan plan;
  plan_fill(ctx, spec, priv, &plan);
  plan.sync_w = sync_p[1];
  plan.out_w = out_p[1];
  plan.err_w = err_p[1];
  plan.status_w = status_p[1];
  if (step_filter != NULL) {
    plan.seccomp = &step_filter->fprog;
    plan.listener = step_filter->notify;
  }
  if (plan.listener) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, handoff) < 0) {
      ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "socketpair");
      goto cleanup;
    }
    plan.handoff_w = handoff[1];
    plan.handoff = &handoff_msg;
  }
  uint64_t flags = 0;
  if (ctx->caps.namespaces)
    flags = NS_FLAGS | (spec->network_isolated ? (uint64_t)CLONE_NEWNET : 0);
  if (priv->foreign)
    flags |= CLONE_PARENT;
  struct ep_cg_join join = {.clone_into = -1, .fallback_fd = -1, .n = 0};
  if (priv->cg != NULL)
    ep_cg_step_join(priv->cg, &join);
  int into = plan_cgroups(&join, !ctx->no_clone_into_cgroup, &plan);
  pid_t pid = start_init(ctx, flags, into, &pidfd, &plan);
  if (pid < 0 && into >= 0) {
    /* Older kernel (E2BIG/EINVAL): the child joins cgroup2 itself. */
    int first = errno;
    (void)plan_cgroups(&join, false, &plan);
    pid = start_init(ctx, flags, -1, &pidfd, &plan);
    if (pid > 0)
      ctx->no_clone_into_cgroup = true;
    else
      errno = first;
  }
  if (pid < 0) {
    ep_error_set_errno(err, errno == EPERM ? EP_EXIT_ENVIRONMENT : EP_EXIT_INTERNAL, errno,
                       "clone (step %s)", spec->name != NULL ? spec->name : "?");
    goto cleanup;
  }
  close_fd(&sync_p[1]);
  close_fd(&out_p[1]);
  close_fd(&err_p[1]);
  close_fd(&handoff[1]);
  close_fd(&status_p[1]);
  priv->status_fd = status_p[0];
  status_p[0] = -1;
  if (priv->cg != NULL)
    ep_cg_step_close_join_fds(priv->cg);
  priv->pidfd = pidfd;
  await_command(&sync_p[0], handoff[0], priv);
  if (!priv->foreign && (set_nonblocking(out_p[0]) < 0 || set_nonblocking(err_p[0]) < 0)) {
    /* Cannot happen for a fresh pipe; the step still has to be reaped. */
  }
  out->pid = pid;
  out->pidfd = pidfd;
  out->stdout_fd = out_p[0];
  out->stderr_fd = err_p[0];
  out->notify_fd = priv->notify_fd;
  out->priv = priv;
  out_p[0] = err_p[0] = -1;
  link_live(ctx, priv);
  priv = NULL;
  ret = 0;
cleanup:
  close_fd(&sync_p[0]);
  close_fd(&sync_p[1]);
  close_fd(&out_p[0]);
  close_fd(&out_p[1]);
  close_fd(&err_p[0]);
  close_fd(&err_p[1]);
  close_fd(&handoff[0]);
  close_fd(&handoff[1]);
  close_fd(&status_p[0]);
  close_fd(&status_p[1]);
  ep_seccomp_free(step_filter);
  if (priv != NULL)
    release_private(ctx, priv);
  return ret;
}

int sandbox_signal_all(struct sandbox_step *step, int sig, ep_error **err) {
  if (sig == SIGKILL || step->priv == NULL || step->priv->cg == NULL)
    return sandbox_signal(step, sig, err) < 0 ? -1 : 1;
  /* The init is left out: it would forward the signal to the command, which
   * then would get it twice. */
  int sent = ep_cg_step_signal(step->priv->cg, sig, step->pid);
  if (sent < 0)
    return sandbox_signal(step, sig, err) < 0 ? -1 : 1;
  return sent;
}

int sandbox_signal(struct sandbox_step *step, int sig, ep_error **err) {
  if (step->pidfd < 0)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_signal: step already reaped");
  if (syscall(SYS_pidfd_send_signal, step->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "pidfd_send_signal(%d)", sig);
  return 0;
}

int sandbox_freeze(struct sandbox_step *step, bool frozen, ep_error **err) {
  if (step->priv == NULL || step->priv->cg == NULL)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, ENOTSUP,
                              "freezing a step needs a cgroup freezer");
  return ep_cg_step_freeze(step->priv->cg, frozen, err);
}

static const struct notify_fault *find_notify_fault(const struct sandbox_step_private *priv,
                                                   int nr) {
  for (size_t i = 0; i < priv->n_faults; i++)
    if (priv->faults[i].nr == nr)
      return &priv->faults[i];
  return NULL;
}

/* The kernel's answer for one trapped call.  Continuing is safe here: the
 * decision never looks at the call's arguments (what makes CONTINUE racy,
 * and what SECCOMP_IOCTL_NOTIF_ID_VALID guards, is reading the target's
 * memory), so a continued call runs exactly as without the filter. */
static void decide_call(const struct sandbox_step_private *priv, const struct seccomp_notif *req,
                        sandbox_syscall_decider decide, void *ctx, struct seccomp_notif_resp *resp) {
  memset(resp, 0, sizeof(*resp));
  resp->id = req->id;
  const struct notify_fault *f = find_notify_fault(priv, req->data.nr);
  int e = f != NULL ? decide(ctx, f->tag, req->data.nr) : 0;
  if (e < 0 && e >= -4095) /* -errno is taken to mean the same */
    e = -e;
  else if (e < 0 || e > 4095) /* not an errno: the caller would see a success */
    e = EIO;
  if (e == 0 && f != NULL && f->baseline_denied)
    e = EPERM; /* a fault never opens a hole in the baseline */
  if (e != 0)
    resp->error = -e;
  else
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
}

int sandbox_handle_notification(struct sandbox_step *step, sandbox_syscall_decider decide,
                                void *ctx, ep_error **err) {
  if (step->priv == NULL || step->notify_fd < 0)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_handle_notification: step has no listener");
  if (decide == NULL)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_handle_notification: no decider");
  /* RECV blocks whatever O_NONBLOCK says: never call it with nothing queued. */
  struct pollfd p = {step->notify_fd, POLLIN, 0};
  int rc;
  while ((rc = poll(&p, 1, 0)) < 0 && errno == EINTR)
    ;
  if (rc < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "poll(seccomp listener)");
  if (!(p.revents & POLLIN))
    return 0;
  struct seccomp_notif req;
  memset(&req, 0, sizeof(req)); /* the kernel insists */
  while ((rc = ioctl(step->notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) < 0 && errno == EINTR)
    memset(&req, 0, sizeof(req));
  if (rc < 0) {
    if (errno == ENOENT) /* the caller was killed before we got to it */
      return 0;
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "SECCOMP_IOCTL_NOTIF_RECV");
  }
  struct seccomp_notif_resp resp;
  decide_call(step->priv, &req, decide, ctx, &resp);
  while ((rc = ioctl(step->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp)) < 0 && errno == EINTR)
    ;
  if (rc < 0 && errno != ENOENT) /* ENOENT: the caller died meanwhile */
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "SECCOMP_IOCTL_NOTIF_SEND");
  return 0;
}

/* The command's raw wait status, when the init got to write it. */
static bool read_command_status(int fd, int *status) {
  ssize_t r;
  do
    r = read(fd, status, sizeof(*status));
  while (r < 0 && errno == EINTR);
  return r == (ssize_t)sizeof(*status);
}

static void classify(const siginfo_t *si, const struct sandbox_step_private *priv,
                     struct sandbox_result *r) {
  if (si->si_code == CLD_EXITED) {
    int st = priv->file_status;
    if (priv->has_file_status ||
        (priv->status_fd >= 0 && read_command_status(priv->status_fd, &st))) {
      if (WIFSIGNALED(st)) {
        r->signal = WTERMSIG(st);
        r->exit_code = 128 + r->signal;
      } else {
        r->exit_code = WEXITSTATUS(st);
      }
      return;
    }
    r->exit_code = si->si_status;
  } else { /* the init itself was killed: SIGKILL from us, or the OOM killer */
    r->signal = si->si_status;
    r->exit_code = 128 + si->si_status;
  }
  if (priv->setup_failed) {
    r->setup_failed = true;
    snprintf(r->setup_error, sizeof(r->setup_error), "%s", priv->setup_error);
  }
}

/* The wait status an init left in its status file: 1 read, 0 empty, -1 no file. */
static int read_status_file(const char *path, int *status) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  bool got = read_command_status(fd, status);
  close(fd);
  return got ? 1 : 0;
}

/* A step that is not our child: its pidfd turns readable when the init
 * exits (the supervisor reaps it); what waitid would say is rebuilt from
 * the status file -- exited with the command's code, or, with no word
 * written, killed (SIGKILL: ours, the fence's, or the OOM killer's). */
static int wait_foreign(int pidfd, struct sandbox_step_private *priv, siginfo_t *si) {
  struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
  while (poll(&pfd, 1, -1) < 0)
    if (errno != EINTR)
      return -errno;
  memset(si, 0, sizeof(*si));
  int status = 0;
  if (priv->status_path != NULL && read_status_file(priv->status_path, &status) == 1) {
    priv->has_file_status = true;
    priv->file_status = status;
    si->si_code = CLD_EXITED;
    si->si_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else if (priv->setup_failed) {
    si->si_code = CLD_EXITED;
    si->si_status = SETUP_FAILED_EXIT;
  } else {
    si->si_code = CLD_KILLED;
    si->si_status = SIGKILL;
  }
  return 0;
}

int sandbox_reap(struct sandbox_context *ctx, struct sandbox_step *step,
                 struct sandbox_result *result, ep_error **err) {
  memset(result, 0, sizeof(*result));
  struct sandbox_step_private *priv = step->priv;
  if (priv == NULL || step->pidfd < 0)
    return ep_error_set(err, EP_EXIT_INTERNAL, "sandbox_reap: step not running");
  siginfo_t si;
  int rc = priv->foreign ? wait_foreign(step->pidfd, priv, &si) : wait_pidfd(step->pidfd, &si);
  if (rc < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, -rc, "waitid(step init %d)", (int)step->pid);
  if (priv->sync_fd >= 0) {
    read_setup_result(priv->sync_fd, priv);
    close_fd(&priv->sync_fd);
  }
  classify(&si, priv, result);
  if (priv->cg != NULL) {
    struct ep_cg_stats st;
    ep_cg_step_stats(priv->cg, &st);
    result->oom_killed = st.oom_kills > 0;
    result->pids_limited = st.pids_max_hits > 0;
    result->memory_peak = st.memory_peak;
  }
  unlink_live(ctx, priv);
  release_private(ctx, priv); /* closes notify_fd */
  step->notify_fd = -1;
  close_fd(&step->pidfd);
  step->priv = NULL;
  return 0;
}

int sandbox_adopt(struct sandbox_context *ctx, const char *name, const char *io_prefix,
                  struct sandbox_step *out, ep_error **err) {
  (void)err;
  out->pid = -1;
  out->pidfd = out->stdout_fd = out->stderr_fd = out->notify_fd = -1;
  out->priv = NULL;
  struct ep_cg_step *cg = NULL;
  if (ctx->cg == NULL || ep_cg_step_adopt(ctx->cg, name, &cg) == 0)
    return 0;
  struct sandbox_step_private *priv = calloc(1, sizeof(*priv));
  if (priv == NULL)
    abort();
  priv->pidfd = priv->notify_fd = priv->sync_fd = priv->status_fd = -1;
  priv->cg = cg;
  priv->foreign = true;
  if (asprintf(&priv->status_path, "%s.status", io_prefix) < 0)
    abort();
  int pidfd = -1;
  pid_t pid = -1;
  if (ep_cg_step_find_init(cg, &pidfd, &pid) == 0) {
    release_private(ctx, priv); /* whatever is left in the group goes with it */
    return 0;
  }
  priv->pidfd = pidfd;
  ep_error *ignored = NULL;
  out->stdout_fd = open_io_file(io_prefix, "stdout", O_RDONLY, NULL, &ignored);
  ep_error_free(&ignored);
  out->stderr_fd = open_io_file(io_prefix, "stderr", O_RDONLY, NULL, &ignored);
  ep_error_free(&ignored);
  out->pid = pid;
  out->pidfd = pidfd;
  out->priv = priv;
  link_live(ctx, priv);
  return 1;
}

enum sandbox_status_file sandbox_status_file(const char *io_prefix, struct sandbox_result *result) {
  memset(result, 0, sizeof(*result));
  char *path = NULL;
  if (asprintf(&path, "%s.status", io_prefix) < 0)
    abort();
  int status = 0;
  int rc = read_status_file(path, &status);
  free(path);
  if (rc < 0)
    return SANDBOX_STATUS_NONE;
  if (rc == 0)
    return SANDBOX_STATUS_EMPTY;
  if (WIFSIGNALED(status)) {
    result->signal = WTERMSIG(status);
    result->exit_code = 128 + result->signal;
  } else {
    result->exit_code = WEXITSTATUS(status);
  }
  return SANDBOX_STATUS_WRITTEN;
}

int sandbox_context_fence_foreign(struct sandbox_context *ctx) {
  return ctx->cg != NULL ? ep_cg_manager_sweep_foreign(ctx->cg) : 0;
}

const char *sandbox_context_cgroup_path(const struct sandbox_context *ctx, size_t i) {
  return ctx->cg != NULL ? ep_cg_manager_run_path(ctx->cg, i) : NULL;
}

void sandbox_context_free(struct sandbox_context *ctx) {
  if (ctx == NULL)
    return;
  while (ctx->live != NULL) {
    struct sandbox_step_private *priv = ctx->live;
    /* SIGKILL of a PID-namespace init takes the whole namespace. */
    (void)syscall(SYS_pidfd_send_signal, priv->pidfd, SIGKILL, NULL, 0);
    siginfo_t si;
    if (priv->foreign)
      (void)wait_foreign(priv->pidfd, priv, &si);
    else
      (void)wait_pidfd(priv->pidfd, &si);
    close_fd(&priv->pidfd);
    unlink_live(ctx, priv);
    release_private(ctx, priv);
  }
  ep_cg_manager_free(ctx->cg);
  ep_seccomp_free(ctx->seccomp);
  close_fd(&ctx->devnull_fd);
  close_fd(&ctx->init_prog_fd);
  if (ctx->init_stack != NULL)
    munmap((char *)ctx->init_stack - getpagesize(), INIT_STACK_SIZE + (size_t)getpagesize());
  free_notes(&ctx->caps);
  free(ctx);
}
