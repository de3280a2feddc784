/* Tests for the step sandbox (runner/sandbox.c, cgroup.c, seccomp_filter.c).
 * They launch real processes in real namespaces and cgroups, so they need
 * root; each test skips with the reason when the machine cannot do it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox.h"
#include "seccomp_filter.h"

#define RUN_NAME "sbxtest"
#define STEP_TIMEOUT_MS 30000

struct fixture {
  struct sandbox_context *ctx; /* NULL when the sandbox cannot run here */
  char why[512];               /* reason to skip */
};

/* Set by the group set-up: main turns an all-skipped run into exit 77,
 * which meson reports as SKIP rather than OK. */
static bool sandbox_unavailable;

struct captured {
  struct sandbox_result res;
  char out[8192];
  char err[8192];
};

static char *const test_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                                 "HOME=/root", "LANG=C", NULL};

/* ---- small local helpers ------------------------------------------------ */

static int group_setup(void **state) {
  struct fixture *fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  if (geteuid() != 0) {
    snprintf(fx->why, sizeof(fx->why), "needs root (namespaces, mounts, cgroups)");
  } else {
    struct sandbox_options opts = {.require_namespaces = true, .run_name = RUN_NAME};
    ep_error *err = NULL;
    if (sandbox_context_new(&opts, &fx->ctx, &err) < 0) {
      snprintf(fx->why, sizeof(fx->why), "sandbox unavailable: %s", err->message);
      ep_error_free(&err);
      fx->ctx = NULL;
    }
  }
  sandbox_unavailable = fx->ctx == NULL;
  if (sandbox_unavailable)
    print_message("sandbox tests skipped: %s\n", fx->why);
  *state = fx;
  return 0;
}

static int group_teardown(void **state) {
  struct fixture *fx = *state;
  sandbox_context_free(fx->ctx);
  free(fx);
  return 0;
}

static struct sandbox_context *need_sandbox(void **state) {
  struct fixture *fx = *state;
  if (fx->ctx == NULL) {
    print_message("skipped: %s\n", fx->why);
    skip();
  }
  return fx->ctx;
}

static void need_cgroup_feature(struct sandbox_context *ctx, bool have, const char *what) {
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(ctx);
  if (caps->cgroup == SANDBOX_CGROUP_NONE || !have) {
    print_message("skipped: no usable cgroup %s on this host\n", what);
    skip();
  }
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Read both pipes to EOF (the kernel closes every writer when the step's
 * PID namespace dies), answering trapped calls with decide meanwhile (as
 * the controller does), then reap. */
static void collect_supervised(struct sandbox_context *ctx, struct sandbox_step *step,
                               sandbox_syscall_decider decide, void *decide_ctx,
                               struct captured *c) {
  size_t n_out = 0, n_err = 0;
  int fds[2] = {step->stdout_fd, step->stderr_fd};
  char *bufs[2] = {c->out, c->err};
  size_t *lens[2] = {&n_out, &n_err};
  int notify = decide != NULL ? step->notify_fd : -1;
  long deadline = now_ms() + STEP_TIMEOUT_MS;
  while (fds[0] >= 0 || fds[1] >= 0) {
    struct pollfd p[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {notify, POLLIN, 0}};
    int rc = poll(p, 3, 200);
    if (now_ms() > deadline) {
      ep_error *e = NULL;
      (void)sandbox_signal(step, SIGKILL, &e);
      ep_error_free(&e);
      fail_msg("step did not finish within %d ms", STEP_TIMEOUT_MS);
    }
    if (rc <= 0)
      continue;
    if (p[2].revents & POLLIN) {
      ep_error *e = NULL;
      if (sandbox_handle_notification(step, decide, decide_ctx, &e) < 0)
        fail_msg("sandbox_handle_notification: %s", e->message);
    } else if (p[2].revents != 0) {
      notify = -1; /* HUP: nothing under the filter is left */
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i] < 0 || p[i].revents == 0)
        continue;
      size_t room = sizeof(c->out) - 1 - *lens[i];
      char sink[4096];
      ssize_t r = room > 0 ? read(fds[i], bufs[i] + *lens[i], room) : read(fds[i], sink, sizeof(sink));
      if (r > 0 && room > 0)
        *lens[i] += (size_t)r;
      else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        fds[i] = -1;
    }
  }
  c->out[n_out] = '\0';
  c->err[n_err] = '\0';
  close(step->stdout_fd);
  close(step->stderr_fd);
  step->stdout_fd = step->stderr_fd = -1;
  ep_error *err = NULL;
  if (sandbox_reap(ctx, step, &c->res, &err) < 0)
    fail_msg("sandbox_reap: %s", err->message);
}

static void collect(struct sandbox_context *ctx, struct sandbox_step *step, struct captured *c) {
  collect_supervised(ctx, step, NULL, NULL, c);
}

static void launch(struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                   struct sandbox_step *step) {
  ep_error *err = NULL;
  if (sandbox_launch(ctx, spec, step, &err) < 0)
    fail_msg("sandbox_launch: %s", err->message);
}

static struct sandbox_step_spec sh_spec(const char *name, const char *script, char **argv) {
  argv[0] = "sh";
  argv[1] = "-c";
  argv[2] = (char *)script;
  argv[3] = NULL;
  struct sandbox_step_spec spec = {
      .name = name, .hostname = name, .argv = argv, .envp = test_env};
  return spec;
}

static void run_sh(struct sandbox_context *ctx, const char *name, const char *script,
                   struct captured *c) {
  char *argv[4];
  struct sandbox_step_spec spec = sh_spec(name, script, argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  collect(ctx, &step, c);
}

/* Host processes whose command line contains needle. */
static int count_processes(const char *needle) {
  DIR *d = opendir("/proc");
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9' || atoi(de->d_name) == getpid())
      continue;
    char path[300], buf[4096];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0)
      continue;
    for (ssize_t i = 0; i < r; i++)
      if (buf[i] == '\0')
        buf[i] = ' ';
    buf[r] = '\0';
    if (strstr(buf, needle) != NULL)
      n++;
  }
  closedir(d);
  return n;
}

/* nftw has no user pointer: the walk's parameters live here for its duration. */
static struct {
  const char *name;
  int found;
  char first[4096];
} dir_search;

static int dir_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  if (type == FTW_D && strcmp(path + ftw->base, dir_search.name) == 0) {
    if (dir_search.found++ == 0)
      snprintf(dir_search.first, sizeof(dir_search.first), "%s", path);
  }
  return 0;
}

/* Directories called name anywhere under /sys/fs/cgroup. */
static int count_cgroup_dirs(const char *name, char *first, size_t size) {
  dir_search.name = name;
  dir_search.found = 0;
  dir_search.first[0] = '\0';
  (void)nftw("/sys/fs/cgroup", dir_visit, 32, FTW_PHYS);
  if (first != NULL)
    snprintf(first, size, "%s", dir_search.first);
  return dir_search.found;
}

static struct {
  const char *run_dir;
  int processes;
} procs_search;

static int procs_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type != FTW_D || strstr(path, procs_search.run_dir) == NULL)
    return 0;
  char file[4200];
  snprintf(file, sizeof(file), "%s/cgroup.procs", path);
  FILE *f = fopen(file, "re");
  if (f == NULL)
    return 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    procs_search.processes++;
  fclose(f);
  return 0;
}

static struct {
  const char *run_dir, *name;
  int found;
} run_dirs_search;

static int run_dirs_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  if (type == FTW_D && strstr(path, run_dirs_search.run_dir) != NULL &&
      strcmp(path + ftw->base, run_dirs_search.name) == 0)
    run_dirs_search.found++;
  return 0;
}

/* Directories called name below run directory run_dir, in every hierarchy. */
static int count_run_dirs(const char *run_dir, const char *name) {
  run_dirs_search.run_dir = run_dir;
  run_dirs_search.name = name;
  run_dirs_search.found = 0;
  (void)nftw("/sys/fs/cgroup", run_dirs_visit, 32, FTW_PHYS);
  return run_dirs_search.found;
}

/* Processes in the groups of run directory run_dir (every hierarchy counted). */
static int count_run_processes(const char *run_dir) {
  procs_search.run_dir = run_dir;
  procs_search.processes = 0;
  (void)nftw("/sys/fs/cgroup", procs_visit, 32, FTW_PHYS);
  return procs_search.processes;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_capabilities_reported(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(ctx);
  assert_true(caps->namespaces);
  assert_true(caps->n_notes > 0);
  bool mentions_cgroup = false;
  for (size_t i = 0; i < caps->n_notes; i++)
    if (strstr(caps->notes[i], "cgroup") != NULL)
      mentions_cgroup = true;
  assert_true(mentions_cgroup);
}

static void test_pid_namespace(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  struct captured c;
  run_sh(ctx, "pidns", "echo $$ $PPID; ls /proc | grep -c '^[0-9]'", &c);
  assert_int_equal(c.res.exit_code, 0);
  int self = -1, parent = -1, visible = -1;
  assert_int_equal(sscanf(c.out, "%d %d %d", &self, &parent, &visible), 3);
  assert_int_equal(parent, 1); /* the init */
  assert_int_equal(self, 2);   /* its first and only child */
  /* init, sh, ls, grep at most: the host's processes are invisible. */
  assert_true(visible >= 2 && visible <= 5);
}

static void test_hostname(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[4];
  struct sandbox_step_spec spec = sh_spec("host", "cat /proc/sys/kernel/hostname", argv);
  spec.hostname = "wf-hello-1234567890";
  struct sandbox_step step;
  struct captured c;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "wf-hello-1234567890\n");

  /* Longer than a DNS label: truncated to 63 bytes. */
  char longname[100];
  memset(longname, 'x', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  spec.hostname = longname;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(strlen(c.out), 64); /* 63 + newline */
}

static void test_root_read_only(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char script[256], host_path[128];
  snprintf(host_path, sizeof(host_path), "/exitprobe-test-%d", (int)getpid());
  snprintf(script, sizeof(script), "touch %s", host_path);
  struct captured c;
  run_sh(ctx, "rootro", script, &c);
  assert_int_not_equal(c.res.exit_code, 0);
  assert_non_null(strstr(c.err, "Read-only file system"));
  assert_int_equal(access(host_path, F_OK), -1);
  /* /proc/sys as well: root in the step must not retune the host. */
  run_sh(ctx, "procsysro", "echo 1 > /proc/sys/vm/drop_caches", &c);
  assert_int_not_equal(c.res.exit_code, 0);
}

static void test_tmp_private(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char script[512], host_path[128];
  snprintf(host_path, sizeof(host_path), "/tmp/exitprobe-private-%d", (int)getpid());
  snprintf(script, sizeof(script),
           "echo data > %s && cat %s && echo shm > /dev/shm/x && cat /dev/shm/x", host_path,
           host_path);
  struct captured c;
  run_sh(ctx, "tmp", script, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "data\nshm\n");
  assert_int_equal(access(host_path, F_OK), -1);
}

static void test_tmp_host_dir(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char dir[] = "/tmp/sbxhost-XXXXXX";
  assert_non_null(mkdtemp(dir));
  assert_int_equal(chmod(dir, 01777), 0);
  char *argv[4];
  struct sandbox_step_spec spec = sh_spec(
      "hosttmp", "echo hello > /tmp/out.txt && cat /tmp/argo/staging/script; touch /x 2>/dev/null",
      argv);
  spec.tmp_host_dir = dir;
  spec.script_source = "echo in-script\n";
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  char path[128], buf[64] = "";
  snprintf(path, sizeof(path), "%s/out.txt", dir);
  FILE *f = fopen(path, "re");
  bool found = f != NULL && fgets(buf, sizeof(buf), f) != NULL;
  if (f != NULL)
    fclose(f);
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  assert_string_equal(c.out, "echo in-script\n");
  assert_int_not_equal(c.res.exit_code, 0); /* the root is still read-only */
  assert_true(found);
  assert_string_equal(buf, "hello\n");
}

/* The controller waits on the pidfd with epoll: it must become readable. */
static void test_pidfd_readable(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[4];
  struct sandbox_step_spec spec = sh_spec("pidfd", "sleep 0.2", argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct pollfd p = {step.pidfd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 0), 0); /* still running */
  assert_int_equal(poll(&p, 1, 10000), 1);
  assert_true(p.revents & POLLIN);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(step.pidfd, -1);
}

static void test_exit_code(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  struct captured c;
  run_sh(ctx, "exit3", "exit 3", &c);
  assert_int_equal(c.res.exit_code, 3);
  assert_int_equal(c.res.signal, 0);
  assert_false(c.res.setup_failed);
  assert_false(c.res.oom_killed);
  /* A plain exit 137 is not a SIGKILL: the init reports the raw status. */
  run_sh(ctx, "exit137", "exit 137", &c);
  assert_int_equal(c.res.exit_code, 137);
  assert_int_equal(c.res.signal, 0);
}

static void test_stdout_stderr_separate(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  struct captured c;
  run_sh(ctx, "stdio", "echo to-out; echo to-err >&2; read x; echo \"stdin=[$x]\"", &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "to-out\nstdin=[]\n");
  assert_string_equal(c.err, "to-err\n");
}

static void test_sigterm(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"sleep", "100", NULL};
  struct sandbox_step_spec spec = {.name = "sigterm", .hostname = "sigterm", .argv = argv,
                                   .envp = test_env};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  ep_error *err = NULL;
  assert_int_equal(sandbox_signal(&step, SIGTERM, &err), 0);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 143);
  assert_int_equal(c.res.signal, SIGTERM);
}

static void test_signal_forwarded_to_trap(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[4];
  struct sandbox_step_spec spec =
      sh_spec("trap", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
              argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  /* Wait for "ready": the trap must be installed before the signal. */
  char buf[16] = "";
  struct pollfd p = {step.stdout_fd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 10000), 1);
  assert_true(read(step.stdout_fd, buf, sizeof(buf) - 1) > 0);
  assert_non_null(strstr(buf, "ready"));
  ep_error *err = NULL;
  assert_int_equal(sandbox_signal(&step, SIGTERM, &err), 0);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 7);
  assert_int_equal(c.res.signal, 0);
  assert_non_null(strstr(c.out, "got-term"));
}

static void test_sigkill_init(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"sleep", "100", NULL};
  struct sandbox_step_spec spec = {.name = "sigkill", .argv = argv, .envp = test_env};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  ep_error *err = NULL;
  assert_int_equal(sandbox_signal(&step, SIGKILL, &err), 0);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 137);
  assert_int_equal(c.res.signal, SIGKILL);
}

static void test_missing_command(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"exitprobe-no-such-command", "arg", NULL};
  struct sandbox_step_spec spec = {.name = "missing", .argv = argv, .envp = test_env};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_true(c.res.setup_failed);
  assert_int_equal(c.res.exit_code, 64);
  assert_non_null(strstr(c.res.setup_error, "exec \"exitprobe-no-such-command\""));
  assert_non_null(strstr(c.res.setup_error, "No such file or directory"));
}

/* PATH comes from the step's environment, not the runner's. */
static void test_path_from_step_env(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"true", NULL};
  char *env[] = {"PATH=/nonexistent-dir", NULL};
  struct sandbox_step_spec spec = {.name = "pathenv", .argv = argv, .envp = env};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_true(c.res.setup_failed);
  assert_non_null(strstr(c.res.setup_error, "exec \"true\""));

  char *abs_argv[] = {"/bin/true", NULL};
  spec.argv = abs_argv;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_false(c.res.setup_failed);
  assert_int_equal(c.res.exit_code, 0);
}

static void test_missing_working_dir(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"true", NULL};
  struct sandbox_step_spec spec = {.name = "nowd", .argv = argv, .envp = test_env,
                                   .working_dir = "/no/such/dir"};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_true(c.res.setup_failed);
  assert_int_equal(c.res.exit_code, 64);
  assert_non_null(strstr(c.res.setup_error, "chdir \"/no/such/dir\""));

  spec.working_dir = "/usr";
  char *pwd_argv[] = {"pwd", NULL};
  spec.argv = pwd_argv;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "/usr\n");
}

static void test_script_source(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char *argv[] = {"sh", "/tmp/argo/staging/script", NULL};
  struct sandbox_step_spec spec = {
      .name = "script",
      .argv = argv,
      .envp = test_env,
      .script_source = "echo from-script\nstat -c %a /tmp/argo/staging/script\n"};
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "from-script\n755\n");
}

static void test_seccomp(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  if (!sandbox_context_capabilities(ctx)->seccomp) {
    print_message("skipped: seccomp unavailable\n");
    skip();
  }
  struct captured c;
  run_sh(ctx, "secmount", "mount -t tmpfs none /mnt", &c);
  assert_int_not_equal(c.res.exit_code, 0);
  /* keyctl needs no capability, so only the filter can refuse it:
   * KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3). */
  if (access("/usr/bin/perl", X_OK) == 0) {
    run_sh(ctx, "seckeyctl",
           "perl -e '$r = syscall(250, 0, -3, 0); print $r < 0 ? \"errno=\" . ($!+0) : \"ok\"'", &c);
    assert_int_equal(c.res.exit_code, 0);
    assert_string_equal(c.out, "errno=1");
  }
}

static void test_capabilities_dropped(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  struct captured c;
  run_sh(ctx, "caps", "grep -E '^Cap(Eff|Bnd)' /proc/self/status", &c);
  assert_int_equal(c.res.exit_code, 0);
  unsigned long long eff = ~0ULL, bnd = ~0ULL;
  const char *e = strstr(c.out, "CapEff:");
  const char *b = strstr(c.out, "CapBnd:");
  assert_non_null(e);
  assert_non_null(b);
  eff = strtoull(e + 7, NULL, 16);
  bnd = strtoull(b + 7, NULL, 16);
  const unsigned long long sys_admin = 1ULL << 21, sys_module = 1ULL << 16, chown = 1ULL << 0;
  assert_int_equal(eff & sys_admin, 0);
  assert_int_equal(bnd & sys_module, 0);
  assert_int_not_equal(eff & chown, 0);
}

static void test_network_isolated(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  if (!sandbox_context_capabilities(ctx)->net_namespace) {
    print_message("skipped: network namespaces unavailable\n");
    skip();
  }
  char *argv[4];
  struct sandbox_step_spec spec =
      sh_spec("netns", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", argv);
  spec.network_isolated = true;
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "lo\n");
}

static void test_memory_limit(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_cgroup_feature(ctx, sandbox_context_capabilities(ctx)->memory_limit, "memory controller");
  char *argv[4];
  const char *script = access("/usr/bin/perl", X_OK) == 0
                           ? "perl -e '$x = \"a\" x (100*1024*1024); print length($x)'"
                           : "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}";
  /* exec so that the allocating process is the command itself */
  char buf[256];
  snprintf(buf, sizeof(buf), "exec %s", script);
  struct sandbox_step_spec spec = sh_spec("oom", buf, argv);
  spec.memory_limit = 32ULL * 1024 * 1024;
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_true(c.res.oom_killed);
  assert_int_equal(c.res.exit_code, 137);
  assert_int_equal(c.res.signal, SIGKILL);
  assert_true(c.res.memory_peak > 16ULL * 1024 * 1024);
  assert_true(c.res.memory_peak <= 33ULL * 1024 * 1024);

  /* Same program, enough memory: no OOM. */
  spec.memory_limit = 0;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_false(c.res.oom_killed);
  assert_int_equal(c.res.exit_code, 0);
}

static void test_pids_limit(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_cgroup_feature(ctx, sandbox_context_capabilities(ctx)->pids_limit, "pids controller");
  char *argv[4];
  struct sandbox_step_spec spec =
      sh_spec("pids", "for i in $(seq 1 40); do sleep 3 & done 2>/dev/null; echo forked", argv);
  spec.pids_limit = 16;
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct captured c;
  collect(ctx, &step, &c);
  assert_true(c.res.pids_limited);

  spec.pids_limit = 0; /* default 1024: 40 sleeps fit */
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_false(c.res.pids_limited);
  assert_int_equal(c.res.exit_code, 0);
}

static void test_background_process_killed(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char needle[64], script[256];
  snprintf(needle, sizeof(needle), "sleep 1000.%d", (int)getpid());
  /* The needle must not appear in sh's own command line: built by sh. */
  snprintf(script, sizeof(script), "n=%d; (sleep 1000.$n >/dev/null 2>&1 &); sleep 0.5; exit 0",
           (int)getpid());
  char *argv[4];
  char step_name[64];
  snprintf(step_name, sizeof(step_name), "daemon-%d", (int)getpid());
  struct sandbox_step_spec spec = sh_spec(step_name, script, argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  usleep(200 * 1000);
  /* While it runs: the daemon exists, in the step's cgroup (groups are
   * reused between steps, so they are named for their slot, not the step). */
  assert_int_equal(count_processes(needle), 1);
  char run_dir[64];
  snprintf(run_dir, sizeof(run_dir), "/" RUN_NAME "-%d/", (int)getpid());
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(ctx);
  if (caps->cgroup != SANDBOX_CGROUP_NONE)
    assert_true(count_run_processes(run_dir) >= 1);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(count_processes(needle), 0);
  /* Its group may host the next step: nothing of this one is left in it. */
  assert_int_equal(count_run_processes(run_dir), 0);
}

static void test_freeze(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_cgroup_feature(ctx, sandbox_context_capabilities(ctx)->freezer, "freezer");
  char step_name[64];
  snprintf(step_name, sizeof(step_name), "freeze-%d", (int)getpid());
  char *argv[4];
  struct sandbox_step_spec spec =
      sh_spec(step_name, "while :; do echo tick; sleep 0.02; done", argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  ep_error *err = NULL;
  assert_int_equal(sandbox_freeze(&step, true, &err), 0);
  usleep(100 * 1000);
  /* Drain what was written before the freeze took hold, then expect silence. */
  char sink[4096];
  while (read(step.stdout_fd, sink, sizeof(sink)) > 0) {
  }
  usleep(200 * 1000);
  assert_true(read(step.stdout_fd, sink, sizeof(sink)) < 0 && errno == EAGAIN);
  assert_int_equal(sandbox_freeze(&step, false, &err), 0);
  struct pollfd p = {step.stdout_fd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 5000), 1); /* ticking again */
  assert_int_equal(sandbox_signal(&step, SIGKILL, &err), 0);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 137);
}

static void test_concurrent_steps(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  enum { N = 4 };
  struct sandbox_step steps[N];
  char *argvs[N][4];
  char scripts[N][64], names[N][32];
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof(scripts[i]), "sleep 0.%d; echo step%d; exit %d", N - i, i, 10 + i);
    snprintf(names[i], sizeof(names[i]), "conc%d", i);
    struct sandbox_step_spec spec = sh_spec(names[i], scripts[i], argvs[i]);
    launch(ctx, &spec, &steps[i]);
  }
  for (int i = N - 1; i >= 0; i--) {
    struct captured c;
    collect(ctx, &steps[i], &c);
    char want[16];
    snprintf(want, sizeof(want), "step%d\n", i);
    assert_string_equal(c.out, want);
    assert_int_equal(c.res.exit_code, 10 + i);
  }
}

/* Contexts of their own: these check what sandbox_context_free leaves behind. */
static struct sandbox_context *own_context(void **state, const char *run_name) {
  (void)need_sandbox(state);
  struct sandbox_options opts = {.require_namespaces = true, .run_name = run_name};
  struct sandbox_context *ctx = NULL;
  ep_error *err = NULL;
  if (sandbox_context_new(&opts, &ctx, &err) < 0)
    fail_msg("sandbox_context_new: %s", err->message);
  return ctx;
}

static void test_context_free_cleans_up(void **state) {
  struct sandbox_context *ctx = own_context(state, "sbxfree");
  char run_dir[64], needle[64], script[160];
  snprintf(run_dir, sizeof(run_dir), "sbxfree-%d", (int)getpid());
  snprintf(needle, sizeof(needle), "sleep 1001.%d", (int)getpid());
  snprintf(script, sizeof(script), "n=%d; sleep 1001.$n & sleep 1001.$n", (int)getpid());
  char *argv[4];
  struct sandbox_step_spec spec = sh_spec("left-running", script, argv);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  usleep(100 * 1000);
  /* Checked after the free, so that a failure does not leak the context. */
  int running = count_processes(needle);
  bool has_cgroups = sandbox_context_capabilities(ctx)->cgroup != SANDBOX_CGROUP_NONE;
  int groups = count_cgroup_dirs(run_dir, NULL, 0);
  /* Not reaped: the context must kill and remove it. */
  sandbox_context_free(ctx);
  close(step.stdout_fd);
  close(step.stderr_fd);
  assert_int_equal(running, 2);
  if (has_cgroups)
    assert_true(groups >= 1);
  assert_int_equal(count_processes(needle), 0);
  char first[4096];
  int left = count_cgroup_dirs(run_dir, first, sizeof(first));
  if (left != 0)
    fail_msg("cgroup left behind: %s", first);
}

/* Steps one after another share a pooled group set, and each finds it
 * clean: no OOM kill, refused fork or peak of the steps before, not frozen
 * (a frozen set is discarded), nothing of them left running, the limits
 * its own. */
static void test_pooled_groups_clean_between_steps(void **state) {
  struct sandbox_context *ctx = own_context(state, "sbxpool");
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(ctx);
  if (caps->cgroup == SANDBOX_CGROUP_NONE || !caps->memory_limit || !caps->pids_limit ||
      !caps->freezer) {
    sandbox_context_free(ctx);
    print_message("skipped: needs memory, pids and freezer cgroups\n");
    skip();
  }
  char *argv[4];
  struct captured c;
  struct sandbox_step step;
  ep_error *err = NULL;
  char run_dir[64];
  snprintf(run_dir, sizeof(run_dir), "/sbxpool-%d/", (int)getpid());

  /* Two steps one after the other: one set serves both. */
  run_sh(ctx, "first", "true", &c);
  run_sh(ctx, "second", "true", &c);
  int slot1 = count_run_dirs(run_dir, "slot-1");
  int slot2 = count_run_dirs(run_dir, "slot-2");

  struct sandbox_step_spec spec = sh_spec("hog", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}", argv);
  spec.memory_limit = 32ULL * 1024 * 1024;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  bool oom = c.res.oom_killed;

  spec = sh_spec("forker", "for i in $(seq 1 20); do sleep 2 & done 2>/dev/null; true", argv);
  spec.pids_limit = 8;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  bool limited = c.res.pids_limited;

  /* Leaves a process behind in its group when the PID namespace cannot
   * take it along (no namespaces); killed with the step otherwise. */
  char needle[64], script[160];
  snprintf(needle, sizeof(needle), "sleep 1002.%d", (int)getpid());
  snprintf(script, sizeof(script), "n=%d; (sleep 1002.$n >/dev/null 2>&1 &); exit 0",
           (int)getpid());
  run_sh(ctx, "leaver", script, &c);
  int left_running = count_processes(needle);

  spec = sh_spec("frozen", "while :; do sleep 0.02; done", argv);
  launch(ctx, &spec, &step);
  bool froze = sandbox_freeze(&step, true, &err) == 0;
  ep_error_free(&err);
  assert_int_equal(sandbox_signal(&step, SIGKILL, &err), 0);
  collect(ctx, &step, &c);

  /* The next step: default limits, nothing inherited. */
  run_sh(ctx, "after", "echo ok", &c);
  int in_groups = count_run_processes(run_dir);
  sandbox_context_free(ctx);

  assert_true(slot1 >= 1);
  assert_int_equal(slot2, 0);
  assert_true(oom);
  assert_true(limited);
  assert_true(froze);
  assert_int_equal(left_running, 0);
  assert_string_equal(c.out, "ok\n");
  assert_int_equal(c.res.exit_code, 0);
  assert_false(c.res.oom_killed);
  assert_false(c.res.pids_limited);
  assert_true(c.res.memory_peak < 16ULL * 1024 * 1024);
  assert_int_equal(in_groups, 0);
}

static void test_run_groups_removed_after_free(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  char run_dir[64];
  snprintf(run_dir, sizeof(run_dir), RUN_NAME "-%d", (int)getpid());
  if (sandbox_context_capabilities(ctx)->cgroup != SANDBOX_CGROUP_NONE)
    assert_true(count_cgroup_dirs(run_dir, NULL, 0) >= 1);
  /* The group fixture's context must not count: use a second one. */
  struct sandbox_context *own = own_context(state, "sbxgone");
  char own_dir[64];
  snprintf(own_dir, sizeof(own_dir), "sbxgone-%d", (int)getpid());
  struct captured c;
  run_sh(own, "one", "true", &c);
  assert_int_equal(c.res.exit_code, 0);
  sandbox_context_free(own);
  char first[4096];
  int left = count_cgroup_dirs(own_dir, first, sizeof(first));
  if (left != 0)
    fail_msg("cgroup left behind: %s", first);
}

/* A runner killed before its clean-up leaves empty groups: the next context
 * removes those whose pid is gone. */
static void test_stale_runs_swept(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  if (sandbox_context_capabilities(ctx)->cgroup == SANDBOX_CGROUP_NONE) {
    print_message("skipped: no cgroups\n");
    skip();
  }
  pid_t dead = fork();
  assert_true(dead >= 0);
  if (dead == 0)
    _exit(0);
  assert_int_equal(waitpid(dead, NULL, 0), dead);
  char run_dir[64], first[4096], stale[4200], stale_step[4300];
  snprintf(run_dir, sizeof(run_dir), RUN_NAME "-%d", (int)getpid());
  assert_true(count_cgroup_dirs(run_dir, first, sizeof(first)) >= 1);
  char *slash = strrchr(first, '/');
  assert_non_null(slash);
  *slash = '\0'; /* the shared "exitprobe" directory */
  snprintf(stale, sizeof(stale), "%s/sbxstale-%d", first, (int)dead);
  snprintf(stale_step, sizeof(stale_step), "%s/left-behind", stale);
  assert_int_equal(mkdir(stale, 0755), 0);
  assert_int_equal(mkdir(stale_step, 0755), 0);
  struct sandbox_context *own = own_context(state, "sbxsweeper");
  sandbox_context_free(own);
  assert_int_equal(access(stale, F_OK), -1);
}

static void test_remount_fallback(void **state) {
  (void)need_sandbox(state);
  setenv("EXITPROBE_SANDBOX_NO_MOUNT_SETATTR", "1", 1);
  struct sandbox_context *ctx = own_context(state, "sbxremount");
  unsetenv("EXITPROBE_SANDBOX_NO_MOUNT_SETATTR");
  char script[512], host_path[128];
  snprintf(host_path, sizeof(host_path), "/exitprobe-remount-%d", (int)getpid());
  snprintf(script, sizeof(script),
           "touch %s; r1=$?; touch /tmp/ok; r2=$?; "
           /* (/dev is the step's own small tmpfs now, writable by design) */
           "awk '$5 == \"/\" || $5 == \"/sys\" {print $5, substr($6, 1, 2)}' "
           "/proc/self/mountinfo | sort -u; echo $r1 $r2",
           host_path);
  struct captured c;
  run_sh(ctx, "remount", script, &c);
  sandbox_context_free(ctx);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(access(host_path, F_OK), -1);
  assert_null(strstr(c.out, " rw"));
  assert_non_null(strstr(c.out, "/ ro"));
  assert_non_null(strstr(c.out, "1 0\n"));
}

static void test_seccomp_program(void **state) {
  (void)state;
  struct ep_seccomp_program *prog = NULL;
  ep_error *err = NULL;
  assert_int_equal(ep_seccomp_build(&prog, &err), 0);
  assert_true(prog->n_denied >= 30);
  /* Small on purpose: load cost grows with length (~0.1 ms at ~50 insns). */
  assert_true(prog->fprog.len > prog->n_denied && prog->fprog.len < 100);
  size_t n = 0;
  const char *const *names = ep_seccomp_denied_names(&n);
  bool has_mount = false;
  for (size_t i = 0; i < n; i++)
    has_mount |= strcmp(names[i], "mount") == 0;
  assert_true(has_mount);
  ep_seccomp_free(prog);
}

static void test_require_namespaces_error(void **state) {
  (void)state;
  if (geteuid() != 0) {
    /* The real thing: an unprivileged run must get the environment error. */
    struct sandbox_options opts = {.require_namespaces = true, .run_name = "x"};
    struct sandbox_context *ctx = NULL;
    ep_error *err = NULL;
    int rc = sandbox_context_new(&opts, &ctx, &err);
    if (rc == 0) { /* user namespaces could make this work one day */
      sandbox_context_free(ctx);
      skip();
    }
    assert_int_equal(err->status, EP_EXIT_ENVIRONMENT);
    assert_non_null(strstr(err->message, "CAP_SYS_ADMIN"));
    ep_error_free(&err);
    return;
  }
  /* As root, check it in a child that drops to nobody first. */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgid(65534) < 0 || setuid(65534) < 0)
      _exit(2);
    struct sandbox_options opts = {.require_namespaces = true, .run_name = "x"};
    struct sandbox_context *ctx = NULL;
    ep_error *err = NULL;
    int rc = sandbox_context_new(&opts, &ctx, &err);
    if (rc == 0) {
      sandbox_context_free(ctx);
      _exit(3);
    }
    int ok = err->status == EP_EXIT_ENVIRONMENT && strstr(err->message, "CAP_SYS_ADMIN") != NULL;
    ep_error_free(&err);
    _exit(ok ? 0 : 4);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Without privileges and without require_namespaces the sandbox degrades:
 * no namespaces, no cgroups, but the step still runs under seccomp. */
static int degraded_child(void) {
  if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
    return 2;
  struct sandbox_options opts = {.require_namespaces = false, .run_name = "sbxnobody"};
  struct sandbox_context *ctx = NULL;
  ep_error *err = NULL;
  if (sandbox_context_new(&opts, &ctx, &err) < 0)
    return 3;
  const struct sandbox_capabilities *caps = sandbox_context_capabilities(ctx);
  int rc = 0;
  if (caps->namespaces || caps->cgroup != SANDBOX_CGROUP_NONE)
    rc = 4;
  char *argv[] = {"sh", "-c", "echo degraded; exit 4", NULL};
  struct sandbox_step_spec spec = {.name = "nobody", .argv = argv, .envp = test_env};
  struct sandbox_step step;
  if (rc == 0 && sandbox_launch(ctx, &spec, &step, &err) < 0)
    rc = 5;
  if (rc == 0) {
    char buf[64] = "";
    size_t n = 0;
    struct pollfd p = {step.stdout_fd, POLLIN, 0};
    while (n < sizeof(buf) - 1 && poll(&p, 1, 10000) == 1) {
      ssize_t r = read(step.stdout_fd, buf + n, sizeof(buf) - 1 - n);
      if (r <= 0)
        break;
      n += (size_t)r;
    }
    buf[n] = '\0';
    struct sandbox_result res;
    if (sandbox_reap(ctx, &step, &res, &err) < 0)
      rc = 6;
    else if (res.exit_code != 4 || strcmp(buf, "degraded\n") != 0)
      rc = 7;
    close(step.stdout_fd);
    close(step.stderr_fd);
  }
  sandbox_context_free(ctx);
  ep_error_free(&err);
  return rc;
}

static void test_unprivileged_degrades(void **state) {
  (void)need_sandbox(state);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(degraded_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- syscall faults --------------------------------------------------------- */

static void need_faults(struct sandbox_context *ctx) {
  if (!sandbox_context_capabilities(ctx)->seccomp) {
    print_message("skipped: seccomp unavailable\n");
    skip();
  }
  if (access("/usr/bin/perl", X_OK) != 0) {
    print_message("skipped: the fault tests drive syscalls with /usr/bin/perl\n");
    skip();
  }
}

/* Counts the calls it is asked about; fails from call fail_from (1-based) on. */
struct decider_state {
  int calls;
  int fail_from; /* 0: never */
  int errno_value;
  size_t want_tag;
  int want_nr;
  int bad_args; /* calls with another tag or number */
};

static int counting_decider(void *ctx, size_t tag, int nr) {
  struct decider_state *d = ctx;
  d->calls++;
  if (tag != d->want_tag || nr != d->want_nr)
    d->bad_args++;
  return d->fail_from > 0 && d->calls >= d->fail_from ? d->errno_value : 0;
}

/* One mkdir per line of output: "ok" or perl's text for errno. */
static char *const mkdir3_argv[] = {
    "perl", "-e", "for (1..3) { print mkdir(\"/tmp/d$_\") && -d \"/tmp/d$_\" ? \"ok\\n\" : \"$!\\n\" }",
    NULL};

static struct sandbox_step_spec perl_spec(const char *name, char *const *argv,
                                          const struct sandbox_syscall_fault *faults, size_t n) {
  struct sandbox_step_spec spec = {.name = name, .hostname = name, .argv = argv, .envp = test_env,
                                   .syscall_faults = faults, .n_syscall_faults = n};
  return spec;
}

static void test_fault_always(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  char *argv[] = {"perl", "-e", "print mkdir(\"/tmp/d\") ? \"ok\\n\" : \"$!\\n\"", NULL};
  struct sandbox_syscall_fault fault = {.nr = SYS_mkdir, .errno_value = ENOSPC, .always = true};
  struct sandbox_step_spec spec = perl_spec("fault-always", argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  assert_int_equal(step.notify_fd, -1); /* decided in the filter: no listener */
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "No space left on device\n");

  /* The shell's view: mkdir(1) fails, everything else still works. */
  char *sh_argv[4];
  spec = sh_spec("fault-always-sh", "mkdir /tmp/d 2>/dev/null; echo rc=$?", sh_argv);
  spec.syscall_faults = &fault;
  spec.n_syscall_faults = 1;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_string_equal(c.out, "rc=1\n");

  /* Same steps without the fault. */
  spec.n_syscall_faults = 0;
  launch(ctx, &spec, &step);
  assert_int_equal(step.notify_fd, -1);
  collect(ctx, &step, &c);
  assert_string_equal(c.out, "rc=0\n");
  spec = perl_spec("fault-none", argv, NULL, 0);
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_string_equal(c.out, "ok\n");
}

static void test_fault_notify_decides_each_call(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  struct sandbox_syscall_fault fault = {.nr = SYS_mkdir, .always = false, .tag = 42};
  struct sandbox_step_spec spec = perl_spec("fault-notify", mkdir3_argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  assert_true(step.notify_fd >= 0);
  int fl = fcntl(step.notify_fd, F_GETFL);
  assert_true(fl >= 0 && (fl & O_NONBLOCK));
  assert_int_equal(fcntl(step.notify_fd, F_GETFD), FD_CLOEXEC);
  struct decider_state d = {.fail_from = 2, .errno_value = ENOSPC, .want_tag = 42,
                            .want_nr = SYS_mkdir};
  struct captured c;
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  assert_int_equal(step.notify_fd, -1); /* closed by the reap */
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "ok\nNo space left on device\nNo space left on device\n");
  assert_int_equal(d.calls, 3);
  assert_int_equal(d.bad_args, 0);
}

static void test_fault_notify_continue(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  struct sandbox_syscall_fault fault = {.nr = SYS_mkdir, .always = false, .tag = 1};
  struct sandbox_step_spec spec = perl_spec("fault-continue", mkdir3_argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct decider_state d = {.want_tag = 1, .want_nr = SYS_mkdir};
  struct captured c;
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  assert_int_equal(c.res.exit_code, 0);
  assert_string_equal(c.out, "ok\nok\nok\n"); /* the directories really exist */
  assert_int_equal(d.calls, 3);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test hung: a trapped call was never answered\n";
  if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
  }
  _exit(99);
}

/* Hangs (and is cut short by the alarm) if launch waited for an exec that
 * waits for the caller. */
static void arm_hang_guard(void) {
  signal(SIGALRM, on_alarm);
  alarm(60);
}

/* The command's own execve is the first call decided: launch must return
 * while it waits, and the decision counts like any other. */
static void test_fault_notify_exec(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  arm_hang_guard();
  char *argv[] = {"/bin/sh", "-c", "/bin/true; echo rc=$?", NULL};
  struct sandbox_syscall_fault fault = {.nr = SYS_execve, .always = false, .tag = 3};
  struct sandbox_step_spec spec = perl_spec("fault-exec", argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct decider_state d = {.fail_from = 2, .errno_value = EACCES, .want_tag = 3,
                            .want_nr = SYS_execve};
  struct captured c;
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  assert_false(c.res.setup_failed);
  assert_int_equal(d.calls, 2);
  assert_string_equal(c.out, "rc=126\n");
  assert_non_null(strstr(c.err, "Permission denied"));

  /* Refusing the first one is a set-up failure, reported at the reap. */
  d = (struct decider_state){.fail_from = 1, .errno_value = EACCES, .want_tag = 3,
                             .want_nr = SYS_execve};
  launch(ctx, &spec, &step);
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  alarm(0);
  assert_int_equal(d.calls, 1);
  assert_true(c.res.setup_failed);
  assert_int_equal(c.res.exit_code, 64);
  assert_non_null(strstr(c.res.setup_error, "exec \"/bin/sh\": Permission denied"));
}

/* The listener's hand-off is a sendmsg: faults on sendmsg must not catch it. */
static void test_fault_handoff_exempt(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  arm_hang_guard();
  struct sandbox_syscall_fault faults[] = {
      {.nr = SYS_sendmsg, .errno_value = EIO, .always = true, .tag = 1},
      {.nr = SYS_mkdir, .always = false, .tag = 2},
  };
  struct sandbox_step_spec spec = perl_spec("fault-handoff", mkdir3_argv, faults, 2);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  assert_true(step.notify_fd >= 0);
  struct decider_state d = {.fail_from = 3, .errno_value = EROFS, .want_tag = 2,
                            .want_nr = SYS_mkdir};
  struct captured c;
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  assert_false(c.res.setup_failed);
  assert_string_equal(c.out, "ok\nok\nRead-only file system\n");
  assert_int_equal(d.calls, 3);

  struct sandbox_syscall_fault notify_sendmsg = {.nr = SYS_sendmsg, .always = false, .tag = 5};
  char *argv[] = {"/bin/true", NULL};
  spec = perl_spec("fault-handoff2", argv, &notify_sendmsg, 1);
  d = (struct decider_state){.want_tag = 5, .want_nr = SYS_sendmsg};
  launch(ctx, &spec, &step);
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  alarm(0);
  assert_false(c.res.setup_failed);
  assert_int_equal(c.res.exit_code, 0);
  assert_int_equal(d.calls, 0);
}

/* Letting a call through never lets through what the baseline denies. */
static void test_fault_notify_baseline_denied(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  char *argv[] = {"perl", "-e",
                  "$r = syscall(250, 0, -3, 0); print $r < 0 ? \"errno=\" . ($!+0) : \"ok\"",
                  NULL};
  struct sandbox_syscall_fault fault = {.nr = SYS_keyctl, .always = false, .tag = 9};
  struct sandbox_step_spec spec = perl_spec("fault-keyctl", argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct decider_state d = {.want_tag = 9, .want_nr = SYS_keyctl};
  struct captured c;
  collect_supervised(ctx, &step, counting_decider, &d, &c);
  assert_int_equal(d.calls, 1);
  assert_string_equal(c.out, "errno=1");
  /* A filter-side fault replaces the baseline's errno. */
  fault.always = true;
  fault.errno_value = ENOSYS;
  launch(ctx, &spec, &step);
  collect(ctx, &step, &c);
  assert_string_equal(c.out, "errno=38");
}

static void expect_launch_error(struct sandbox_context *ctx, const struct sandbox_step_spec *spec,
                                const char *needle) {
  struct sandbox_step step;
  ep_error *err = NULL;
  assert_int_equal(sandbox_launch(ctx, spec, &step, &err), -1);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_non_null(strstr(err->message, needle));
  assert_int_equal(step.notify_fd, -1);
  assert_int_equal(step.pidfd, -1);
  ep_error_free(&err);
}

static void test_fault_invalid(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  char *argv[] = {"/bin/true", NULL};
  struct sandbox_syscall_fault twice[] = {
      {.nr = SYS_mkdir, .errno_value = EIO, .always = true},
      {.nr = SYS_mkdir, .always = false},
  };
  struct sandbox_step_spec spec = perl_spec("fault-bad", argv, twice, 2);
  expect_launch_error(ctx, &spec, "two syscall faults");
  struct sandbox_syscall_fault no_errno = {.nr = SYS_mkdir, .errno_value = 0, .always = true};
  spec = perl_spec("fault-bad", argv, &no_errno, 1);
  expect_launch_error(ctx, &spec, "errno 0 out of range");
  struct sandbox_syscall_fault bad_nr = {.nr = -5, .errno_value = EIO, .always = true};
  spec = perl_spec("fault-bad", argv, &bad_nr, 1);
  expect_launch_error(ctx, &spec, "no syscall number -5");
  /* Nothing was left behind: a good step still runs under the same name. */
  struct captured c;
  run_sh(ctx, "fault-bad", "true", &c);
  assert_int_equal(c.res.exit_code, 0);
}

static bool wait_trapped(const struct sandbox_step *step) {
  struct pollfd p = {step->notify_fd, POLLIN, 0};
  return poll(&p, 1, 10000) == 1 && (p.revents & POLLIN);
}

/* A step killed while a call waits for a decision: nothing hangs, and a
 * notification of a caller that is gone is ignored. */
static void test_fault_killed_while_trapped(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  arm_hang_guard();
  char *argv[] = {"perl", "-e", "select(undef, undef, undef, 0.2); mkdir \"/tmp/x\"; print \"done\"",
                  NULL};
  struct sandbox_syscall_fault fault = {.nr = SYS_mkdir, .always = false};
  struct sandbox_step_spec spec = perl_spec("fault-kill", argv, &fault, 1);
  struct sandbox_step step;
  launch(ctx, &spec, &step);
  struct decider_state d = {.want_nr = SYS_mkdir};
  ep_error *err = NULL;
  /* Nothing waits yet: returns at once without asking. */
  assert_int_equal(sandbox_handle_notification(&step, counting_decider, &d, &err), 0);
  assert_int_equal(d.calls, 0);
  assert_true(wait_trapped(&step));
  assert_int_equal(sandbox_signal(&step, SIGKILL, &err), 0);
  struct pollfd p = {step.pidfd, POLLIN, 0};
  assert_int_equal(poll(&p, 1, 10000), 1);
  assert_int_equal(sandbox_handle_notification(&step, counting_decider, &d, &err), 0);
  assert_int_equal(d.calls, 0);
  struct captured c;
  collect(ctx, &step, &c);
  assert_int_equal(c.res.exit_code, 137);
  assert_string_equal(c.out, "");

  /* Freeing the context with a call still waiting must not hang either. */
  struct sandbox_context *own = own_context(state, "sbxtrapped");
  spec.name = "fault-free";
  launch(own, &spec, &step);
  assert_true(wait_trapped(&step));
  sandbox_context_free(own);
  alarm(0);
  close(step.stdout_fd);
  close(step.stderr_fd);
}

/* Unprivileged, without namespaces: the listener still reaches the runner. */
static int degraded_fault_child(void) {
  if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
    return 2;
  struct sandbox_options opts = {.require_namespaces = false, .run_name = "sbxnobodyf"};
  struct sandbox_context *ctx = NULL;
  ep_error *err = NULL;
  if (sandbox_context_new(&opts, &ctx, &err) < 0)
    return 3;
  char script[200];
  snprintf(script, sizeof(script), "print mkdir(\"/tmp/exitprobe-nobody-%d\") ? \"ok\" : \"$!\"",
           (int)getpid());
  char *argv[] = {"perl", "-e", script, NULL};
  struct sandbox_syscall_fault fault = {.nr = SYS_mkdir, .always = false};
  struct sandbox_step_spec spec = perl_spec("nobodyf", argv, &fault, 1);
  struct sandbox_step step;
  int rc = 0;
  if (sandbox_launch(ctx, &spec, &step, &err) < 0 || step.notify_fd < 0)
    rc = 4;
  struct decider_state d = {.fail_from = 1, .errno_value = EDQUOT, .want_nr = SYS_mkdir};
  char buf[64] = "";
  size_t n = 0;
  while (rc == 0) {
    struct pollfd p[2] = {{step.stdout_fd, POLLIN, 0}, {step.notify_fd, POLLIN, 0}};
    if (poll(p, 2, 10000) <= 0) {
      rc = 5;
      break;
    }
    if ((p[1].revents & POLLIN) && sandbox_handle_notification(&step, counting_decider, &d, &err) < 0)
      rc = 6;
    if (p[0].revents != 0) {
      ssize_t r = read(step.stdout_fd, buf + n, sizeof(buf) - 1 - n);
      if (r <= 0)
        break;
      n += (size_t)r;
    }
  }
  buf[n] = '\0';
  if (rc == 0) {
    struct sandbox_result res;
    if (sandbox_reap(ctx, &step, &res, &err) < 0)
      rc = 7;
    else if (d.calls != 1 || strcmp(buf, "Disk quota exceeded") != 0 || step.notify_fd != -1)
      rc = 8;
    close(step.stdout_fd);
    close(step.stderr_fd);
  }
  sandbox_context_free(ctx);
  ep_error_free(&err);
  return rc;
}

static void test_fault_unprivileged(void **state) {
  struct sandbox_context *ctx = need_sandbox(state);
  need_faults(ctx);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(degraded_fault_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seccomp_program),
      cmocka_unit_test(test_require_namespaces_error),
      cmocka_unit_test(test_capabilities_reported),
      cmocka_unit_test(test_pid_namespace),
      cmocka_unit_test(test_hostname),
      cmocka_unit_test(test_root_read_only),
      cmocka_unit_test(test_tmp_private),
      cmocka_unit_test(test_tmp_host_dir),
      cmocka_unit_test(test_pidfd_readable),
      cmocka_unit_test(test_exit_code),
      cmocka_unit_test(test_stdout_stderr_separate),
      cmocka_unit_test(test_sigterm),
      cmocka_unit_test(test_signal_forwarded_to_trap),
      cmocka_unit_test(test_sigkill_init),
      cmocka_unit_test(test_missing_command),
      cmocka_unit_test(test_path_from_step_env),
      cmocka_unit_test(test_missing_working_dir),
      cmocka_unit_test(test_script_source),
      cmocka_unit_test(test_seccomp),
      cmocka_unit_test(test_capabilities_dropped),
      cmocka_unit_test(test_network_isolated),
      cmocka_unit_test(test_memory_limit),
      cmocka_unit_test(test_pids_limit),
      cmocka_unit_test(test_background_process_killed),
      cmocka_unit_test(test_freeze),
      cmocka_unit_test(test_concurrent_steps),
      cmocka_unit_test(test_context_free_cleans_up),
      cmocka_unit_test(test_pooled_groups_clean_between_steps),
      cmocka_unit_test(test_run_groups_removed_after_free),
      cmocka_unit_test(test_stale_runs_swept),
      cmocka_unit_test(test_remount_fallback),
      cmocka_unit_test(test_unprivileged_degrades),
      cmocka_unit_test(test_fault_always),
      cmocka_unit_test(test_fault_notify_decides_each_call),
      cmocka_unit_test(test_fault_notify_continue),
      cmocka_unit_test(test_fault_notify_exec),
      cmocka_unit_test(test_fault_handoff_exempt),
      cmocka_unit_test(test_fault_notify_baseline_denied),
      cmocka_unit_test(test_fault_invalid),
      cmocka_unit_test(test_fault_killed_while_trapped),
      cmocka_unit_test(test_fault_unprivileged),
  };
  int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
  return failed == 0 && sandbox_unavailable ? 77 : failed;
}
