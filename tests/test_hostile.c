/* End to end: hostile workflow steps through the real exitprobe binary,
 * then a look at the HOST to see that the sandbox held (docs/SECURITY.md);
 * and exitprobe itself when its own environment fails: a full disk under
 * the report, the JUnit XML or the report directory; twenty runs at once;
 * SIGKILL in the middle of a run, and what it leaves behind.
 *
 * The workflows are in tests/data/hostile/.  Each hostile step prints one
 * KEY=VALUE line per attempt (VALUE "ok" or the errno it got); the tests
 * read them from the node's log in the report and check the host
 * themselves: a step's own word is never the only evidence.  Every attempt
 * is built to be harmless even on a sandbox that does not hold (see the
 * comments in the workflows). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_helpers.h"

#define RUN_TIMEOUT_S 120
#define CONCURRENT_RUNS 20
#define SEED_WORKFLOW "scenarios/exit-handler-workflow.yaml"
#define SEED_NAME "exit-handler-workflow"
/* Docker's default capability set (bits of linux/capability.h): CHOWN,
 * DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
 * NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP. */
#define DOCKER_DEFAULT_CAPS 0xa80425fbULL
#define ALL_CAPS_41 0x1ffffffffffULL

/* Host directories the writes workflow tries to create files in. */
static const char *const write_dirs[] = {
    "/",    "/etc",  "/usr", "/usr/bin", "/usr/local", "/root", "/var", "/var/tmp", "/var/lib",
    "/opt", "/home", "/srv", "/boot",    "/bin",       "/sbin", "/lib", "/mnt",
    /* (not /run: the step gets a private tmpfs there, see sockets.yaml) */
};

struct run {
  pid_t pid;
  int status;     /* exit code, or 128+signal; -1 when it could not run */
  bool timed_out; /* killed by the test after its deadline */
  long maxrss_kb; /* wait4: exitprobe's peak, or a descendant's if larger */
  double seconds;
  char report[PATH_MAX];
  char logs[PATH_MAX]; /* <logs>.stdout, <logs>.stderr */
  char *out;
  char *err;
  json_t *json; /* the report, NULL when missing or unreadable */
};

/* What one test made on the host and must undo, even after a failed assertion. */
struct fixture {
  char token[32];
  char victim_dir[PATH_MAX]; /* /var/tmp/exitprobe-hostile-XXXXXX, or "" */
  pid_t decoy;               /* a host process the step tries to kill, or 0 */
  char mount_dir[PATH_MAX];  /* a tmpfs to unmount, or "" */
  /* Command-line needles of processes a failed test may leave running
   * (a step init outliving its runner is a clone of exitprobe: it is
   * found by the report path on its command line). */
  char leftover[2][PATH_MAX];
  struct run runs[CONCURRENT_RUNS]; /* freed by the teardown, failed or not */
  char saved[16384];                /* a file's bytes, to compare with later */
  char run_dir[PATH_MAX];           /* a killed run's directory to remove, or "" */
  char stale_group[PATH_MAX];       /* a made-up stale run cgroup to remove, or "" */
  pid_t sleeper;                    /* a process put into it, or 0 */
  char socket_path[100];            /* a listening socket's file, or "" */
  int listener;                     /* its descriptor, or -1 */
};

static void run_free(struct run *r);

/* ---- fixture ------------------------------------------------------------ */

static int fixture_setup(void **state) {
  static unsigned counter;
  struct fixture *fx = calloc(1, sizeof(*fx));
  if (fx == NULL)
    return -1;
  fx->listener = -1;
  /* Digits only: it also becomes part of sleep(1) durations. */
  snprintf(fx->token, sizeof(fx->token), "%ld%02u", (long)getpid(), ++counter % 100);
  *state = fx;
  return 0;
}

static void remove_host_leftovers(const struct fixture *fx) {
  char path[PATH_MAX];
  /* Only what a sandbox that failed would have left: named after the token. */
  for (size_t i = 0; i < sizeof(write_dirs) / sizeof(write_dirs[0]); i++) {
    const char *d = strcmp(write_dirs[i], "/") == 0 ? "" : write_dirs[i];
    snprintf(path, sizeof(path), "%s/exitprobe-hostile-%s", d, fx->token);
    (void)unlink(path);
    snprintf(path, sizeof(path), "%s/exitprobe-hostile-%s.d", d, fx->token);
    (void)rmdir(path);
  }
  snprintf(path, sizeof(path), "/dev/shm/exitprobe-hostile-%s", fx->token);
  (void)unlink(path);
  snprintf(path, sizeof(path), "/tmp/exitprobe-hostile-%s", fx->token);
  (void)unlink(path);
}

static void remove_victim_dir(const char *dir) {
  static const char *const names[] = {"victim", "victim.moved", "link", "hardlink"};
  char path[PATH_MAX + 32];
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    (void)unlink(path);
  }
  (void)rmdir(dir);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  (void)remove(path);
  return 0;
}

static bool is_pid_name(const char *name) {
  if (*name == '\0')
    return false;
  for (; *name != '\0'; name++)
    if (*name < '0' || *name > '9')
      return false;
  return true;
}

/* SIGKILL each process whose command line contains needle, by its pid. */
static void kill_leftovers(const char *needle) {
  DIR *proc = opendir("/proc");
  if (proc == NULL)
    return;
  struct dirent *de;
  while ((de = readdir(proc)) != NULL) {
    if (!is_pid_name(de->d_name) || atol(de->d_name) == (long)getpid())
      continue;
    char path[300];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    char cmd[8192];
    ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
      continue;
    for (ssize_t i = 0; i < n; i++)
      if (cmd[i] == '\0')
        cmd[i] = ' ';
    cmd[n] = '\0';
    if (strstr(cmd, needle) != NULL) {
      print_message("cleanup: killing leftover %s: %s\n", de->d_name, cmd);
      kill((pid_t)atol(de->d_name), SIGKILL);
    }
  }
  closedir(proc);
}

static int fixture_teardown(void **state) {
  struct fixture *fx = *state;
  if (fx == NULL)
    return 0;
  for (size_t i = 0; i < CONCURRENT_RUNS; i++) {
    struct run *r = &fx->runs[i];
    if (r->pid > 0 && r->status == -1) { /* started, never waited for */
      kill(r->pid, SIGKILL);
      waitpid(r->pid, NULL, 0);
    }
  }
  for (size_t i = 0; i < 2; i++)
    if (fx->leftover[i][0] != '\0')
      kill_leftovers(fx->leftover[i]);
  if (fx->decoy > 0) {
    kill(fx->decoy, SIGKILL);
    waitpid(fx->decoy, NULL, 0);
  }
  if (fx->victim_dir[0] != '\0')
    remove_victim_dir(fx->victim_dir);
  if (fx->mount_dir[0] != '\0')
    (void)umount2(fx->mount_dir, MNT_DETACH);
  if (fx->listener >= 0)
    close(fx->listener);
  if (fx->socket_path[0] != '\0')
    (void)unlink(fx->socket_path);
  if (fx->run_dir[0] != '\0')
    (void)nftw(fx->run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (fx->sleeper > 0) {
    kill(fx->sleeper, SIGKILL);
    waitpid(fx->sleeper, NULL, 0);
  }
  if (fx->stale_group[0] != '\0') {
    char step[PATH_MAX + 8];
    snprintf(step, sizeof(step), "%s/step", fx->stale_group);
    (void)rmdir(step);
    (void)rmdir(fx->stale_group);
  }
  remove_host_leftovers(fx);
  for (size_t i = 0; i < CONCURRENT_RUNS; i++)
    run_free(&fx->runs[i]);
  free(fx);
  *state = NULL;
  return 0;
}

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    print_message("skipped: %s\n", why);
    skip();
  }
}

static void skip_unless_x86_64(void) {
#if !defined(__x86_64__)
  print_message("skipped: the hostile workflows call syscalls by their x86_64 numbers\n");
  skip();
#endif
}

/* ---- running exitprobe ---------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *hostile_workflow(const char *name) {
  static char buf[PATH_MAX];
  snprintf(buf, sizeof(buf), "%s/hostile/%s", test_data_dir(), name);
  return buf;
}

static const char *seed_workflow(void) {
  static char buf[PATH_MAX];
  snprintf(buf, sizeof(buf), "%s/%s", test_source_root(), SEED_WORKFLOW);
  return buf;
}

static void child_exec(char *const argv[], const char *out_path, const char *err_path) {
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
    _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  execv(argv[0], argv);
  dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* Starts `exitprobe run` on workflow with "-p" params (NULL-terminated).
 * Stdout and stderr go to files in dir (a fresh directory when NULL), the
 * report too unless report_name is an absolute path. */
static void run_start(struct run *r, const char *workflow, const char *const *params,
                      const char *dir, const char *report_name, bool quiet) {
  run_free(r);
  memset(r, 0, sizeof(*r));
  r->status = -1;
  if (dir == NULL)
    dir = test_temp_dir();
  assert_non_null(dir);
  if (report_name == NULL)
    report_name = "report.json";
  if (report_name[0] == '/') {
    snprintf(r->report, sizeof(r->report), "%s", report_name);
    snprintf(r->logs, sizeof(r->logs), "%s/exitprobe", dir);
  } else {
    snprintf(r->report, sizeof(r->report), "%s/%s", dir, report_name);
    snprintf(r->logs, sizeof(r->logs), "%s", r->report);
  }
  char out_path[PATH_MAX + 16], err_path[PATH_MAX + 16];
  snprintf(out_path, sizeof(out_path), "%s.stdout", r->logs);
  snprintf(err_path, sizeof(err_path), "%s.stderr", r->logs);

  char *argv[40];
  size_t n = 0;
  argv[n++] = (char *)test_exitprobe_bin();
  argv[n++] = "run";
  if (quiet)
    argv[n++] = "--quiet";
  argv[n++] = "--color";
  argv[n++] = "never";
  argv[n++] = "--report";
  argv[n++] = r->report;
  for (size_t i = 0; params != NULL && params[i] != NULL && n < 36; i++) {
    argv[n++] = "-p";
    argv[n++] = (char *)params[i];
  }
  argv[n++] = (char *)workflow;
  argv[n] = NULL;

  fflush(NULL);
  r->seconds = now_s();
  r->pid = fork();
  assert_true(r->pid >= 0);
  if (r->pid == 0)
    child_exec(argv, out_path, err_path);
}

/* Waits (killing it at the deadline), then collects output and report. */
static void run_finish(struct run *r, int timeout_s) {
  double deadline = now_s() + timeout_s;
  struct rusage ru;
  int st = 0;
  for (;;) {
    pid_t got = wait4(r->pid, &st, WNOHANG, &ru);
    if (got == r->pid)
      break;
    if (got < 0 && errno != EINTR)
      fail_msg("wait4: %s", strerror(errno));
    if (now_s() > deadline && !r->timed_out) {
      r->timed_out = true;
      kill(r->pid, SIGKILL);
    }
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  r->seconds = now_s() - r->seconds;
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r->maxrss_kb = ru.ru_maxrss;
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s.stdout", r->logs);
  r->out = test_read_file(path);
  snprintf(path, sizeof(path), "%s.stderr", r->logs);
  r->err = test_read_file(path);
  if (r->out == NULL)
    r->out = strdup("");
  if (r->err == NULL)
    r->err = strdup("");
  json_error_t jerr;
  r->json = json_load_file(r->report, 0, &jerr);
}

static void run_free(struct run *r) {
  free(r->out);
  free(r->err);
  json_decref(r->json);
  r->out = r->err = NULL;
  r->json = NULL;
}

static void run_workflow(struct run *r, const char *workflow, const char *const *params) {
  run_start(r, workflow, params, NULL, NULL, true);
  run_finish(r, RUN_TIMEOUT_S);
}

/* The run must have ended on its own with want and written a report. */
static void expect_run(const struct run *r, int want) {
  if (r->timed_out)
    fail_msg("exitprobe still running after %d s: killed\nstderr:\n%s", RUN_TIMEOUT_S, r->err);
  if (r->status != want)
    fail_msg("exitprobe exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r->status, want, r->out,
             r->err);
  if (r->json == NULL)
    fail_msg("no readable report at %s\nstderr:\n%s", r->report, r->err);
}

/* ---- reading the report ----------------------------------------------------- */

static json_t *node_of_template(const struct run *r, const char *template_name) {
  json_t *nodes = json_object_get(json_object_get(r->json, "status"), "nodes");
  const char *id;
  json_t *node;
  json_object_foreach(nodes, id, node) {
    const char *t = json_string_value(json_object_get(node, "templateName"));
    const char *type = json_string_value(json_object_get(node, "type"));
    if (t != NULL && type != NULL && strcmp(t, template_name) == 0 && strcmp(type, "Pod") == 0)
      return node;
  }
  fail_msg("no Pod node of template %s in %s", template_name, r->report);
  return NULL;
}

static const char *node_str(json_t *node, const char *key) {
  const char *s = json_string_value(json_object_get(node, key));
  return s != NULL ? s : "";
}

static const char *node_log(json_t *node) { return node_str(node, "log"); }

static const char *node_exit_code(json_t *node) {
  const char *s = json_string_value(json_object_get(json_object_get(node, "outputs"), "exitCode"));
  return s != NULL ? s : "";
}

/* The value of the first "KEY=value" line of log, or false. */
static bool log_value(const char *log, const char *key, char *out, size_t size) {
  size_t klen = strlen(key);
  for (const char *p = log; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, key, klen) != 0 || p[klen] != '=')
      continue;
    const char *v = p + klen + 1;
    size_t len = strcspn(v, "\n");
    if (len >= size)
      len = size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
  }
  return false;
}

static void need_value(const char *log, const char *key, char *out, size_t size) {
  if (!log_value(log, key, out, size))
    fail_msg("the step printed no %s= line; its log:\n%s", key, log);
}

static long log_long(const char *log, const char *key) {
  char v[64];
  need_value(log, key, v, sizeof(v));
  char *end = NULL;
  long n = strtol(v, &end, 10);
  if (end == v || *end != '\0')
    fail_msg("%s=%s is not a number; log:\n%s", key, v, log);
  return n;
}

/* A probe's outcome: 0 when the call worked ("ok"), else its errno. */
static int probe(const char *log, const char *key) {
  char v[64];
  need_value(log, key, v, sizeof(v));
  if (strcmp(v, "ok") == 0)
    return 0;
  char *end = NULL;
  long e = strtol(v, &end, 10);
  if (end == v || *end != '\0' || e <= 0)
    fail_msg("%s=%s is neither ok nor an errno; log:\n%s", key, v, log);
  return (int)e;
}

static void expect_probe(const char *log, const char *key, int want) {
  int got = probe(log, key);
  if (got != want)
    fail_msg("%s: got %s (%d), want %s (%d); the step's log:\n%s", key,
             got == 0 ? "success" : strerror(got), got, strerror(want), want, log);
}

static void expect_probe_failed(const char *log, const char *key) {
  if (probe(log, key) == 0)
    fail_msg("%s succeeded in the step; its log:\n%s", key, log);
}

/* Every line "PREFIX...=ok" of the log, one per line, in out. */
static size_t lines_ok(const char *log, const char *prefix, char *out, size_t size, size_t *seen) {
  size_t n = 0, plen = strlen(prefix);
  out[0] = '\0';
  *seen = 0;
  for (const char *p = log; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, prefix, plen) != 0)
      continue;
    (*seen)++;
    size_t len = strcspn(p, "\n");
    if (len >= 3 && strncmp(p + len - 3, "=ok", 3) == 0) {
      n++;
      size_t used = strlen(out);
      snprintf(out + used, size - used, "  %.*s\n", (int)len, p);
    }
  }
  return n;
}

static bool exit_handler_ran(const struct run *r) {
  return json_is_true(json_object_get(json_object_get(r->json, "exitHandler"), "ran"));
}

/* ---- looking at the host -------------------------------------------------------- */

static bool host_path_exists(const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0;
}

/* Directories called name below dir (cgroupfs: a few dozen entries). */
static int count_dirs_named(const char *dir, const char *name, int depth) {
  if (depth > 12)
    return 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int found = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= (int)sizeof(sub))
      continue;
    if (strcmp(de->d_name, name) == 0)
      found++;
    found += count_dirs_named(sub, name, depth + 1);
  }
  closedir(d);
  return found;
}

/* The run-level cgroups of exitprobe process pid running workflow name. */
static int run_cgroups(const char *workflow_name, pid_t pid) {
  char name[256];
  snprintf(name, sizeof(name), "%s-%ld", workflow_name, (long)pid);
  return count_dirs_named("/sys/fs/cgroup", name, 0);
}

/* Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
static unsigned long long start_ticks(const char *pid) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  char *text = test_read_file(path);
  assert_non_null(text);
  char *p = strrchr(text, ')');
  assert_non_null(p);
  p += 2; /* field 3 */
  for (int field = 3; field < 22 && p != NULL; field++) {
    p = strchr(p, ' ');
    if (p != NULL)
      p++;
  }
  assert_non_null(p);
  unsigned long long t = strtoull(p, NULL, 10);
  free(text);
  return t;
}

static bool process_alive(pid_t pid) {
  /* Our own child: a zombie would still answer kill(0). */
  return waitpid(pid, NULL, WNOHANG) == 0 && kill(pid, 0) == 0;
}

static bool wait_for_processes(const char *needle, int want, double timeout_s) {
  double deadline = now_s() + timeout_s;
  for (;;) {
    if (test_count_processes(needle) == want)
      return true;
    if (now_s() > deadline)
      return false;
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* The run directory (/tmp/exitprobe-run-XXXXXX) whose step wrote marker. */
static bool find_run_dir(const char *marker, char *out, size_t size) {
  DIR *tmp = opendir("/tmp");
  if (tmp == NULL)
    return false;
  bool found = false;
  struct dirent *de;
  while (!found && (de = readdir(tmp)) != NULL) {
    if (strncmp(de->d_name, "exitprobe-run-", 14) != 0)
      continue;
    char steps[PATH_MAX];
    snprintf(steps, sizeof(steps), "/tmp/%s/steps", de->d_name);
    DIR *sd = opendir(steps);
    if (sd == NULL)
      continue;
    struct dirent *se;
    while (!found && (se = readdir(sd)) != NULL) {
      char path[PATH_MAX * 2];
      snprintf(path, sizeof(path), "%s/%s/exitprobe-marker", steps, se->d_name);
      char *text = test_read_file(path);
      if (text != NULL && strncmp(text, marker, strlen(marker)) == 0 &&
          text[strlen(marker)] == '\n') {
        snprintf(out, size, "/tmp/%s", de->d_name);
        found = true;
      }
      free(text);
    }
    closedir(sd);
  }
  closedir(tmp);
  return found;
}

/* ---- the sandbox holds ---------------------------------------------------------- */

static void test_writes_outside_tmp_fail(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  snprintf(fx->victim_dir, sizeof(fx->victim_dir), "/var/tmp/exitprobe-hostile-XXXXXX");
  if (mkdtemp(fx->victim_dir) == NULL) {
    fx->victim_dir[0] = '\0';
    fail_msg("mkdtemp in /var/tmp: %s", strerror(errno));
  }
  char victim[PATH_MAX + 16];
  snprintf(victim, sizeof(victim), "%s/victim", fx->victim_dir);
  FILE *f = fopen(victim, "we");
  assert_non_null(f);
  fputs("original\n", f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(victim, 0644), 0);
  struct stat before;
  assert_int_equal(stat(victim, &before), 0);

  char token_arg[64], victim_arg[PATH_MAX + 16];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  snprintf(victim_arg, sizeof(victim_arg), "victim=%s", fx->victim_dir);
  const char *params[] = {token_arg, victim_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("writes.yaml"), params);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "writes"));
  assert_int_equal(log_long(log, "DONE"), 1);
  char seen[16];
  need_value(log, "VICTIM_SEEN", seen, sizeof(seen));
  assert_string_equal(seen, "yes"); /* else the attempts below prove nothing */

  for (size_t i = 0; i < sizeof(write_dirs) / sizeof(write_dirs[0]); i++) {
    struct stat sb;
    if (stat(write_dirs[i], &sb) < 0 || !S_ISDIR(sb.st_mode))
      continue;
    char key[64], path[PATH_MAX];
    const char *d = strcmp(write_dirs[i], "/") == 0 ? "" : write_dirs[i];
    snprintf(key, sizeof(key), "CREATE %s", write_dirs[i]);
    expect_probe(log, key, EROFS);
    snprintf(key, sizeof(key), "MKDIR %s", write_dirs[i]);
    expect_probe(log, key, EROFS);
    snprintf(path, sizeof(path), "%s/exitprobe-hostile-%s", d, fx->token);
    if (host_path_exists(path))
      fail_msg("the step created %s on the host", path);
    snprintf(path, sizeof(path), "%s/exitprobe-hostile-%s.d", d, fx->token);
    if (host_path_exists(path))
      fail_msg("the step created %s on the host", path);
  }
  static const char *const victim_ops[] = {"TRUNCATE", "APPEND", "UNLINK",  "RENAME", "CHMOD",
                                           "CHOWN",    "UTIME",  "SYMLINK", "LINK"};
  for (size_t i = 0; i < sizeof(victim_ops) / sizeof(victim_ops[0]); i++)
    expect_probe(log, victim_ops[i], EROFS);
  assert_int_not_equal(log_long(log, "RM_RF"), 0);

  /* Sensitive host files and the step's own cgroup limits: never writable. */
  char opened[4096];
  size_t tried = 0;
  if (lines_ok(log, "OPEN_W ", opened, sizeof(opened), &tried) > 0)
    fail_msg("the step could open host files for writing:\n%s", opened);
  assert_true(tried >= 3); /* core_pattern, hostname, drop_caches at least */

  /* Its /tmp and /dev/shm are its own: writable inside, invisible outside. */
  expect_probe(log, "TMP", 0);
  expect_probe(log, "SHM", 0);
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "/tmp/exitprobe-hostile-%s", fx->token);
  assert_false(host_path_exists(path));
  snprintf(path, sizeof(path), "/dev/shm/exitprobe-hostile-%s", fx->token);
  assert_false(host_path_exists(path));

  /* The victim on the host: same inode, bytes, mode, owner, times; alone. */
  struct stat after;
  assert_int_equal(stat(victim, &after), 0);
  assert_int_equal(after.st_ino, before.st_ino);
  assert_int_equal(after.st_mode, before.st_mode);
  assert_int_equal(after.st_uid, before.st_uid);
  assert_int_equal(after.st_gid, before.st_gid);
  assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  char *content = test_read_file(victim);
  assert_non_null(content);
  assert_string_equal(content, "original\n");
  free(content);
  DIR *d = opendir(fx->victim_dir);
  assert_non_null(d);
  struct dirent *de;
  int entries = 0;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      entries++;
  closedir(d);
  assert_int_equal(entries, 1);
  run_free(r);
}

static void test_host_processes_invisible_and_unreachable(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  skip_unless_x86_64();
  fflush(NULL);
  fx->decoy = fork();
  assert_true(fx->decoy >= 0);
  if (fx->decoy == 0) {
    execl("/bin/sleep", "sleep", "300", (char *)NULL);
    _exit(127);
  }
  char host_pidns[128];
  ssize_t n = readlink("/proc/self/ns/pid", host_pidns, sizeof(host_pidns) - 1);
  assert_true(n > 0);
  host_pidns[n] = '\0';
  unsigned long long host_init_start = start_ticks("1");
  unsigned long long own_start = start_ticks("self");

  char decoy_arg[64];
  snprintf(decoy_arg, sizeof(decoy_arg), "decoy=%ld", (long)fx->decoy);
  const char *params[] = {decoy_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("processes.yaml"), params);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "processes"));
  assert_int_equal(log_long(log, "DONE"), 1);

  /* Only the step's own processes: its init and the probe. */
  long pids = log_long(log, "PIDS");
  if (pids < 1 || pids > 4)
    fail_msg("the step sees %ld processes; its log:\n%s", pids, log);
  char pidns[128];
  need_value(log, "PIDNS", pidns, sizeof(pidns));
  assert_string_not_equal(pidns, host_pidns);
  /* Its pid 1 (which kill -0 1 reaches) was born during this test: not the host's init. */
  long init_start = log_long(log, "INIT_START");
  assert_true((unsigned long long)init_start != host_init_start);
  assert_true((unsigned long long)init_start >= own_start);
  expect_probe(log, "KILL0_INIT", 0);

  char seen[16];
  need_value(log, "SEE_DECOY", seen, sizeof(seen));
  assert_string_equal(seen, "no");
  expect_probe(log, "KILL_DECOY", ESRCH);
  expect_probe(log, "TERM_DECOY", ESRCH);
  expect_probe(log, "KILL_DECOY_GROUP", ESRCH);
  expect_probe(log, "TGKILL_DECOY", ESRCH);
  expect_probe(log, "PIDFD_DECOY", ESRCH);
  if (!process_alive(fx->decoy))
    fail_msg("the decoy host process %ld was killed", (long)fx->decoy);

  /* The init keeps every capability: the step must not reach into it. */
  expect_probe(log, "PTRACE_INIT", EPERM);
  expect_probe_failed(log, "INIT_ENVIRON");
  expect_probe_failed(log, "INIT_MEM");
  expect_probe_failed(log, "INIT_NS_MNT");
  run_free(r);
}

static void test_privileged_syscalls_denied(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  skip_unless_x86_64();
  struct utsname host_before, host_after;
  assert_int_equal(uname(&host_before), 0);

  char token_arg[64];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  const char *params[] = {token_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("privileged.yaml"), params);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "privileged"));
  assert_int_equal(log_long(log, "DONE"), 1);

  /* EPERM: refused outright (by the filter or for want of a capability).
   * EINVAL from any of them would mean the kernel got to look at the
   * (deliberately invalid) arguments: nothing stood in the way. */
  char denied[] = "MOUNT REMOUNT_ROOT_RW MOUNT_SETATTR OPEN_TREE FSOPEN FSPICK PIVOT_ROOT "
                  "UMOUNT_PROC INIT_MODULE FINIT_MODULE DELETE_MODULE BPF PERF_EVENT_OPEN "
                  "REBOOT KEXEC_LOAD KEXEC_FILE_LOAD SETHOSTNAME SETDOMAINNAME SWAPON SWAPOFF "
                  "ACCT SETTIMEOFDAY CLOCK_SETTIME ADJTIMEX CLOCK_ADJTIME SYSLOG IOPL IOPERM "
                  "OPEN_BY_HANDLE_AT USERFAULTFD";
  char *save = NULL;
  for (char *key = strtok_r(denied, " ", &save); key != NULL; key = strtok_r(NULL, " ", &save))
    expect_probe(log, key, EPERM);

  /* After the mount attempts the root is still read-only and /proc still the step's. */
  expect_probe(log, "CREATE_ETC", EROFS);
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "/etc/exitprobe-hostile-%s", fx->token);
  assert_false(host_path_exists(path));
  long pids = log_long(log, "PIDS_AFTER_UMOUNT");
  assert_true(pids >= 1 && pids <= 4);

  /* Host name: the host's unchanged; the step's still its pod name. */
  assert_int_equal(uname(&host_after), 0);
  assert_string_equal(host_after.nodename, host_before.nodename);
  assert_string_equal(host_after.domainname, host_before.domainname);
  char inside[128];
  need_value(log, "HOSTNAME_AFTER", inside, sizeof(inside));
  assert_string_equal(inside, "hostile-privileged");

  expect_probe_failed(log, "OPEN_INIT_NS");
  /* A user namespace gives the step every capability inside it (mount
   * namespaces, netfilter, ...): the kernel attack surface Docker's
   * default seccomp profile closes by refusing it. */
  expect_probe(log, "UNSHARE_USER", EPERM);
  run_free(r);
}

static void test_host_devices_closed(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  skip_unless_x86_64();
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("devices.yaml"), NULL);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "devices"));
  assert_int_equal(log_long(log, "DONE"), 1);

  /* Device nodes the step makes itself: its writable mounts are nodev. */
  char opened[8192];
  size_t tried = 0;
  if (lines_ok(log, "OPEN_MKNOD ", opened, sizeof(opened), &tried) > 0)
    fail_msg("a device node made in the step could be opened:\n%s", opened);

  /* The host's own device nodes. */
  if (lines_ok(log, "OPEN_W /dev/", opened, sizeof(opened), &tried) > 0)
    fail_msg("the step could open host devices for writing (of %zu tried):\n%s"
             "(a read-only mount does not protect a device; a step needs a /dev of its own)",
             tried, opened);
  long blk = log_long(log, "BLOCKDEVS");
  if (blk != 0) {
    char list[4096];
    need_value(log, "BLOCKDEV_LIST", list, sizeof(list));
    fail_msg("the step sees %ld host block devices: %s", blk, list);
  }
  run_free(r);
}

static void test_fork_bomb_contained(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char token_arg[64], needle[64];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  snprintf(needle, sizeof(needle), "sleep 1000.%s", fx->token);
  snprintf(fx->leftover[0], sizeof(fx->leftover[0]), "%s", needle);
  const char *params[] = {token_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("forkbomb.yaml"), params);
  expect_run(r, 1);
  assert_true(r->seconds < 60);
  json_t *bomb = node_of_template(r, "bomb");
  const char *log = node_log(bomb);
  assert_string_equal(node_str(bomb, "phase"), "Failed");
  assert_string_equal(node_exit_code(bomb), "3");
  long forked = log_long(log, "FORKED"), failed = log_long(log, "FORK_FAILED");
  if (forked >= 32 || failed <= 0)
    fail_msg("pids limit 32 did not hold: %ld forks, %ld refused", forked, failed);
  assert_int_equal(log_long(log, "FORK_ERRNO"), EAGAIN);
  assert_true(exit_handler_ran(r));
  /* Everything it forked died with the step; so did its cgroups. */
  assert_int_equal(test_count_processes(needle), 0);
  assert_int_equal(run_cgroups("hostile-forkbomb", r->pid), 0);
  /* The report says why the forks failed, as it says oomKilled. */
  if (!json_is_true(json_object_get(bomb, "pidsLimited"))) {
    char text[4096];
    size_t len = json_dumpb(bomb, text, sizeof(text) - 1, JSON_INDENT(1));
    text[len < sizeof(text) ? len : sizeof(text) - 1] = '\0';
    fail_msg("the report does not say the step hit its pids limit (no \"pidsLimited\": true "
             "on the node); node:\n%s",
             text);
  }
  run_free(r);
}

static void test_memory_bomb_oom_killed(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("membomb.yaml"), NULL);
  expect_run(r, 1);
  assert_true(r->seconds < 60);
  json_t *bomb = node_of_template(r, "bomb");
  const char *log = node_log(bomb);
  assert_non_null(strstr(log, "ALLOCATING"));
  assert_null(strstr(log, "ALLOCATED="));
  assert_string_equal(node_str(bomb, "phase"), "Failed");
  assert_true(json_is_true(json_object_get(bomb, "oomKilled")));
  assert_string_equal(node_exit_code(bomb), "137");
  assert_non_null(strstr(node_str(bomb, "message"), "OOMKilled"));
  json_int_t peak = json_integer_value(json_object_get(bomb, "memoryPeakBytes"));
  assert_true(peak > 0 && peak <= 65 * 1024 * 1024);
  assert_true(exit_handler_ran(r));
  /* The runner itself never held the step's memory. */
  assert_true(r->maxrss_kb < 256 * 1024);
  run_free(r);
}

static void test_escaped_daemons_killed(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char token_arg[64], needle0[64], needle1[64];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  snprintf(needle0, sizeof(needle0), "sleep 1000.%s", fx->token);
  snprintf(needle1, sizeof(needle1), "sleep 1001.%s", fx->token);
  snprintf(fx->leftover[0], sizeof(fx->leftover[0]), "%s", needle0);
  snprintf(fx->leftover[1], sizeof(fx->leftover[1]), "%s", needle1);
  const char *params[] = {token_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("escape.yaml"), params);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "escape"));
  /* Both daemons were running, in sessions of their own, orphaned. */
  assert_int_equal(log_long(log, "DAEMONS"), 2);
  char list[256];
  need_value(log, "DAEMON_LIST", list, sizeof(list));
  const char *first = strstr(list, "ppid=1,");
  assert_non_null(first);
  assert_non_null(strstr(first + 1, "ppid=1,"));
  /* The step exited 0; its daemons did not outlive it. */
  assert_int_equal(test_count_processes(needle0), 0);
  assert_int_equal(test_count_processes(needle1), 0);
  assert_int_equal(run_cgroups("hostile-escape", r->pid), 0);
  run_free(r);
}

static unsigned long long status_hex(const char *log, const char *key) {
  const char *p = strstr(log, key);
  if (p == NULL)
    fail_msg("no %s in the step's output:\n%s", key, log);
  return strtoull(p + strlen(key), NULL, 16);
}

static void test_capabilities_no_new_privs_seccomp(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("capabilities.yaml"), NULL);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "status"));
  unsigned long long eff = status_hex(log, "CapEff:"), prm = status_hex(log, "CapPrm:");
  unsigned long long bnd = status_hex(log, "CapBnd:"), inh = status_hex(log, "CapInh:");
  unsigned long long amb = status_hex(log, "CapAmb:");
  assert_true(eff != ALL_CAPS_41);
  /* Nothing beyond Docker's default set, in any set an exec could draw from. */
  if ((eff | prm | bnd | inh | amb) & ~DOCKER_DEFAULT_CAPS)
    fail_msg("capabilities beyond Docker's default set: eff %llx prm %llx bnd %llx inh %llx "
             "amb %llx",
             eff, prm, bnd, inh, amb);
  const unsigned long long dangerous =
      (1ULL << 21) /* SYS_ADMIN */ | (1ULL << 16) /* MODULE */ | (1ULL << 17) /* RAWIO */ |
      (1ULL << 19) /* PTRACE */ | (1ULL << 22) /* BOOT */ | (1ULL << 25) /* TIME */ |
      (1ULL << 12) /* NET_ADMIN */ | (1ULL << 2) /* DAC_READ_SEARCH */;
  assert_int_equal(bnd & dangerous, 0);
  assert_int_equal(amb, 0);
  assert_int_equal(strtol(strstr(log, "NoNewPrivs:") + 11, NULL, 10), 1);
  assert_non_null(strstr(log, "Seccomp:"));
  assert_int_equal(strtol(strstr(log, "Seccomp:") + 8, NULL, 10), 2); /* filter mode */
  run_free(r);
}

static void test_output_symlink_not_followed(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  /* In the host's /tmp, which the step's own /tmp hides. */
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char secret_path[PATH_MAX], secret[96];
  snprintf(secret_path, sizeof(secret_path), "%s/secret", dir);
  snprintf(secret, sizeof(secret), "exitprobe-host-secret-%ld-%ld", (long)getpid(),
           (long)time(NULL));
  FILE *f = fopen(secret_path, "we");
  assert_non_null(f);
  fprintf(f, "%s\n", secret);
  assert_int_equal(fclose(f), 0);

  char secret_arg[PATH_MAX + 16];
  snprintf(secret_arg, sizeof(secret_arg), "secret=%s", secret_path);
  const char *params[] = {secret_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("output-symlink.yaml"), params);
  if (r->timed_out)
    fail_msg("exitprobe did not end");
  assert_non_null(r->json);
  const char *log = node_log(node_of_template(r, "leak"));
  char v[16];
  need_value(log, "STEP_CAN_READ", v, sizeof(v));
  assert_string_equal(v, "no"); /* the step alone cannot read it */
  assert_int_equal(log_long(log, "LINKED"), 1);
  char *report_text = test_read_file(r->report);
  assert_non_null(report_text);
  bool leaked = strstr(report_text, secret) != NULL || strstr(r->out, secret) != NULL;
  free(report_text);
  if (leaked)
    fail_msg("the runner followed the step's /tmp/out symlink to the host file %s: its "
             "content is in the report",
             secret_path);
  run_free(r);
}

static void test_output_fifo_does_not_hang(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char token_arg[64];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  const char *params[] = {token_arg, NULL};
  struct run *r = &fx->runs[0];
  run_start(r, hostile_workflow("output-fifo.yaml"), params, NULL, NULL, true);
  run_finish(r, 30);
  if (r->timed_out) {
    /* Killed: its run directory is left for the teardown to remove. */
    if (!find_run_dir(fx->token, fx->run_dir, sizeof(fx->run_dir)))
      fx->run_dir[0] = '\0';
    fail_msg("exitprobe hung for 30 s on a step whose output file is a FIFO with no writer "
             "(killed)");
  }
  assert_non_null(r->json);
  assert_int_equal(log_long(node_log(node_of_template(r, "fifo")), "FIFO"), 1);
}

static void test_log_flood_bounded(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("log-flood.yaml"), NULL);
  expect_run(r, 0);
  json_t *node = node_of_template(r, "flood");
  assert_true(json_is_true(json_object_get(node, "logTruncated")));
  /* 256 MiB without a newline; the runner keeps 1 MiB of log.  (wait4's
   * peak also covers the step's processes: head and tr, a few MiB.) */
  if (r->maxrss_kb > 128 * 1024)
    fail_msg("exitprobe peaked at %ld MiB for a step that wrote 256 MiB without a newline: "
             "its memory follows the step's output",
             r->maxrss_kb / 1024);
  run_free(r);
}

static void test_tmp_disk_bounded(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("tmp-size.yaml"), NULL);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "size"));
  long long bytes = 0;
  char v[64], fstype[64];
  need_value(log, "TMP_BYTES", v, sizeof(v));
  bytes = strtoll(v, NULL, 10);
  assert_true(bytes > 0);
  need_value(log, "TMP_FSTYPE", fstype, sizeof(fstype));
  /* The documented private /tmp is 256m; anything up to 1 GiB is a limit. */
  if (bytes > 1024LL * 1024 * 1024)
    fail_msg("the step's /tmp is %lld MiB of %s: a step filling it fills the host's disk "
             "(its /tmp is a host directory with no size limit)",
             bytes / (1024 * 1024), fstype);
}

static void test_host_run_sockets_unreachable(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  struct stat sb;
  if (stat("/run", &sb) < 0 || !S_ISDIR(sb.st_mode)) {
    print_message("skipped: no /run on this host\n");
    skip();
  }
  snprintf(fx->socket_path, sizeof(fx->socket_path), "/run/exitprobe-hostile-%s.sock", fx->token);
  fx->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(fx->listener >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, fx->socket_path, sizeof(fx->socket_path));
  if (bind(fx->listener, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    int e = errno;
    fx->socket_path[0] = '\0';
    print_message("skipped: cannot bind a socket in /run: %s\n", strerror(e));
    skip();
  }
  assert_int_equal(listen(fx->listener, 4), 0);

  char socket_arg[PATH_MAX + 16];
  snprintf(socket_arg, sizeof(socket_arg), "socket=%s", fx->socket_path);
  const char *params[] = {socket_arg, NULL};
  struct run *r = &fx->runs[0];
  run_workflow(r, hostile_workflow("sockets.yaml"), params);
  expect_run(r, 0);
  const char *log = node_log(node_of_template(r, "sockets"));
  assert_int_equal(log_long(log, "DONE"), 1);
  int conn = accept4(fx->listener, NULL, NULL, SOCK_CLOEXEC);
  if (conn >= 0)
    close(conn);
  if (conn >= 0 || probe(log, "CONNECT") == 0)
    fail_msg("the step connected to a host daemon's socket in /run (%s): so could it to "
             "/run/docker.sock, /run/systemd/private, /run/containerd/containerd.sock; the "
             "step's log:\n%s",
             fx->socket_path, log);
}

/* ---- faults of the tool's own environment --------------------------------------- */

static char *read_bytes(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat sb;
  assert_int_equal(fstat(fd, &sb), 0);
  char *buf = malloc((size_t)sb.st_size + 1);
  assert_non_null(buf);
  ssize_t n = read(fd, buf, (size_t)sb.st_size);
  close(fd);
  assert_int_equal(n, sb.st_size);
  *len = (size_t)n;
  return buf;
}

/* A 16k tmpfs in a mount namespace of our own: it vanishes with this
 * process whatever happens; exitprobe, our child, sees it.  Skips when the
 * machine cannot. */
static const char *small_disk(struct fixture *fx) {
  skip_without_sandbox();
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    print_message("skipped: no private mount namespace: %s\n", strerror(errno));
    skip();
  }
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  snprintf(fx->mount_dir, sizeof(fx->mount_dir), "%s", dir);
  if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,mode=0755") < 0) {
    int e = errno;
    fx->mount_dir[0] = '\0';
    print_message("skipped: cannot mount a tmpfs: %s\n", strerror(e));
    skip();
  }
  return fx->mount_dir;
}

/* Fills the disk under dir to the last byte. */
static void fill_disk(const char *dir) {
  char fill[PATH_MAX + 8];
  snprintf(fill, sizeof(fill), "%s/fill", dir);
  int fd = open(fill, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  char block[4096];
  memset(block, 'f', sizeof(block));
  size_t chunk = sizeof(block);
  for (;;) {
    ssize_t n = write(fd, block, chunk);
    if (n >= 0)
      continue;
    assert_int_equal(errno, ENOSPC);
    if (chunk == 1)
      break;
    chunk = 1;
  }
  close(fd);
}

/* Keeps the bytes of path in fx->saved; returns their length. */
static size_t save_file(struct fixture *fx, const char *path) {
  size_t len = 0;
  char *bytes = read_bytes(path, &len);
  if (bytes == NULL)
    fail_msg("no %s to keep", path);
  bool fits = len > 0 && len <= sizeof(fx->saved);
  if (fits)
    memcpy(fx->saved, bytes, len);
  free(bytes);
  assert_true(fits);
  return len;
}

/* After a write failed for lack of space: exit 70 (EP_EXIT_INTERNAL, what
 * an I/O failure is, see README), a plain message naming the file and the
 * errno, the previous file byte for byte, and no temporary file in its
 * directory (only the names in keep). */
static void expect_kept_on_full_disk(const struct fixture *fx, int status, const char *said,
                                     const char *path, size_t prev_len, const char *dir,
                                     const char *const *keep) {
  if (status != 70)
    fail_msg("exit %d with %s unwritten, want 70\noutput:\n%s", status, path, said);
  if (strstr(said, "No space left on device") == NULL || strstr(said, path) == NULL)
    fail_msg("the output does not say the disk under %s is full:\n%s", path, said);
  if (strstr(said, "is left as it was") == NULL)
    fail_msg("the output does not say %s was left as it was:\n%s", path, said);
  size_t now_len = 0;
  char *now = read_bytes(path, &now_len);
  assert_non_null(now);
  bool same = now_len == prev_len && memcmp(now, fx->saved, prev_len) == 0;
  free(now);
  if (!same)
    fail_msg("the previous %s was changed (%zu bytes, was %zu)", path, now_len, prev_len);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    for (size_t i = 0; !known && keep[i] != NULL; i++)
      known = strcmp(de->d_name, keep[i]) == 0;
    if (known)
      continue;
    closedir(d);
    fail_msg("left behind on the full disk: %s/%s", dir, de->d_name);
  }
  closedir(d);
}

static void test_disk_full_keeps_previous_report(void **state) {
  struct fixture *fx = *state;
  const char *dir = small_disk(fx);
  /* Only the report is on the small disk: stdout and stderr go elsewhere. */
  char report[PATH_MAX];
  snprintf(report, sizeof(report), "%s/report.json", dir);
  struct run *r = &fx->runs[0];
  run_start(r, seed_workflow(), NULL, NULL, report, true);
  run_finish(r, RUN_TIMEOUT_S);
  expect_run(r, 1);
  size_t prev_len = save_file(fx, report);
  fill_disk(dir);

  run_start(r, seed_workflow(), NULL, NULL, report, true);
  run_finish(r, RUN_TIMEOUT_S);
  if (r->timed_out)
    fail_msg("exitprobe did not end with its report's disk full");
  static const char *const keep[] = {"report.json", "fill", NULL};
  expect_kept_on_full_disk(fx, r->status, r->err, report, prev_len, dir, keep);
}

/* `exitprobe run` of the seed scenario 03 with extra arguments (before the
 * scenario); stdout and stderr together. */
static struct test_cmd_result run_scenario(const char *const *extra) {
  char scenario[PATH_MAX];
  snprintf(scenario, sizeof(scenario), "%s/scenarios/seed/03-work-killed.yaml",
           test_source_root());
  char *argv[16];
  size_t n = 0;
  argv[n++] = (char *)test_exitprobe_bin();
  argv[n++] = "run";
  argv[n++] = "--quiet";
  for (size_t i = 0; extra[i] != NULL && n < 14; i++)
    argv[n++] = (char *)extra[i];
  argv[n++] = scenario;
  argv[n] = NULL;
  struct test_cmd_result r = test_run(argv);
  size_t lo = strlen(r.out), le = strlen(r.err);
  char *both = malloc(lo + le + 1);
  assert_non_null(both);
  memcpy(both, r.out, lo);
  memcpy(both + lo, r.err, le + 1);
  free(r.out);
  r.out = both;
  return r;
}

static void test_disk_full_keeps_previous_junit(void **state) {
  struct fixture *fx = *state;
  const char *dir = small_disk(fx);
  char junit[PATH_MAX], report[PATH_MAX];
  snprintf(junit, sizeof(junit), "%s/junit.xml", dir);
  /* The report goes elsewhere: only the JUnit XML is on the small disk. */
  snprintf(report, sizeof(report), "%s", test_path(test_temp_dir(), "report.json"));
  const char *const args[] = {"--report", report, "--junit", junit, NULL};
  struct test_cmd_result r = run_scenario(args);
  if (r.exit_status != 0)
    fail_msg("exit %d\n%s", r.exit_status, r.out);
  test_cmd_result_free(&r);
  size_t prev_len = save_file(fx, junit);
  fill_disk(dir);

  r = run_scenario(args);
  static const char *const keep[] = {"junit.xml", "fill", NULL};
  expect_kept_on_full_disk(fx, r.exit_status, r.out, junit, prev_len, dir, keep);
  test_cmd_result_free(&r);
}

static void test_disk_full_keeps_previous_report_dir(void **state) {
  struct fixture *fx = *state;
  const char *dir = small_disk(fx);
  char reports[PATH_MAX], report[PATH_MAX + 32];
  snprintf(reports, sizeof(reports), "%s/reports", dir);
  snprintf(report, sizeof(report), "%s/seed-work-killed.json", reports);
  const char *const args[] = {"--report-dir", reports, NULL};
  struct test_cmd_result r = run_scenario(args);
  if (r.exit_status != 0)
    fail_msg("exit %d\n%s", r.exit_status, r.out);
  test_cmd_result_free(&r);
  size_t prev_len = save_file(fx, report);
  fill_disk(dir);

  r = run_scenario(args);
  static const char *const keep[] = {"seed-work-killed.json", NULL};
  expect_kept_on_full_disk(fx, r.exit_status, r.out, report, prev_len, reports, keep);
  test_cmd_result_free(&r);
}

/* Every /proc/self/cgroup line a step of run pid printed is a step group
 * (its node's own, or a pooled slot-N set) directly below that run's group. */
static bool own_step_group(const char *group, size_t len, const char *node_id) {
  if (len == strlen(node_id) && strncmp(group, node_id, len) == 0)
    return true;
  if (len <= 5 || strncmp(group, "slot-", 5) != 0)
    return false;
  for (size_t i = 5; i < len; i++)
    if (group[i] < '0' || group[i] > '9')
      return false;
  return true;
}

static void expect_own_cgroups(const char *log, pid_t pid, const char *node_id) {
  char want[256];
  snprintf(want, sizeof(want), "/exitprobe/concurrent-parallel-%ld/", (long)pid);
  size_t groups = 0;
  for (const char *line = strchr(log, '\n'); line != NULL && line[1] != '\0';
       line = strchr(line + 1, '\n')) {
    const char *end = strchr(line + 1, '\n');
    const char *found = strstr(line + 1, want);
    const char *group = found ? found + strlen(want) : NULL;
    if (end == NULL || group == NULL || group > end ||
        !own_step_group(group, (size_t)(end - group), node_id))
      fail_msg("a step of run %ld is in a cgroup not its own: %.*s", (long)pid,
               (int)(end ? end - line - 1 : 80), line + 1);
    groups++;
  }
  if (groups == 0)
    fail_msg("a step of run %ld printed no cgroup:\n%s", (long)pid, log);
}

static void check_parallel_run(const struct run *r) {
  expect_run(r, 0);
  const char *uid = json_string_value(json_object_get(json_object_get(r->json, "workflow"), "uid"));
  assert_non_null(uid);
  const json_t *nodes = json_object_get(json_object_get(r->json, "status"), "nodes");
  static const char *const words[] = {"a", "alpha", "b", "beta", "c", "gamma"};
  for (size_t w = 0; w < 6; w += 2) {
    const json_t *node = NULL, *n;
    const char *key;
    json_object_foreach((json_t *)nodes, key, n) {
      const char *name = json_string_value(json_object_get(n, "displayName"));
      if (name != NULL && strcmp(name, words[w]) == 0)
        node = n;
    }
    if (node == NULL)
      fail_msg("run %ld: no node %s", (long)r->pid, words[w]);
    const char *log = json_string_value(json_object_get(node, "log"));
    char first[128];
    snprintf(first, sizeof(first), "%s %s\n", words[w + 1], uid);
    if (log == NULL || strncmp(log, first, strlen(first)) != 0)
      fail_msg("run %ld: step %s's log is not its own: %s", (long)r->pid, words[w],
               log ? log : "(none)");
    expect_own_cgroups(log, r->pid, json_string_value(json_object_get(node, "id")));
  }
  char handler[128];
  snprintf(handler, sizeof(handler), "handler %s Succeeded\n", uid);
  const char *log = node_log(node_of_template(r, "handler"));
  if (log == NULL || strcmp(log, handler) != 0)
    fail_msg("run %ld: the exit handler's log is not its own: %s", (long)r->pid,
             log ? log : "(none)");
}

/* No /tmp/exitprobe-run-<pid>-* of exitprobe process pid. */
static bool run_dir_left(pid_t pid) {
  char prefix[64];
  snprintf(prefix, sizeof(prefix), "exitprobe-run-%ld-", (long)pid);
  DIR *d = opendir("/tmp");
  assert_non_null(d);
  struct dirent *de;
  bool found = false;
  while (!found && (de = readdir(d)) != NULL)
    found = strncmp(de->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return found;
}

/* Half the seed workflow, half three parallel steps and a handler: twenty
 * exitprobe processes, eighty-odd step sandboxes, each with its report. */
static void test_concurrent_runs_do_not_interfere(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  struct run *runs = fx->runs;
  for (int i = 0; i < CONCURRENT_RUNS; i++) {
    char name[32];
    snprintf(name, sizeof(name), "report-%02d.json", i);
    run_start(&runs[i], i % 2 ? hostile_workflow("parallel.yaml") : seed_workflow(), NULL, dir,
              name, true);
  }
  for (int i = 0; i < CONCURRENT_RUNS; i++)
    run_finish(&runs[i], RUN_TIMEOUT_S);

  for (int i = 0; i < CONCURRENT_RUNS; i++) {
    struct run *r = &runs[i];
    if (i % 2) {
      check_parallel_run(r);
    } else {
      expect_run(r, 1); /* the seed fails by design */
      assert_string_equal(
          json_string_value(json_object_get(json_object_get(r->json, "status"), "phase")),
          "Failed");
      assert_true(exit_handler_ran(r));
      /* Each run's logs are its own: nothing crossed over from another run. */
      assert_string_equal(node_log(node_of_template(r, "do-work")), "Doing work...\n");
      assert_non_null(
          strstr(node_log(node_of_template(r, "cleanup")), "Workflow status: Failed"));
    }
    const char *uid =
        json_string_value(json_object_get(json_object_get(r->json, "workflow"), "uid"));
    assert_non_null(uid);
    for (int j = 0; j < i; j++) {
      const char *other =
          json_string_value(json_object_get(json_object_get(runs[j].json, "workflow"), "uid"));
      if (other != NULL && strcmp(uid, other) == 0)
        fail_msg("runs %d and %d wrote the same workflow uid %s", j, i, uid);
    }
  }
  /* Every exitprobe (and every step init: a clone of it) names dir on its command line. */
  assert_true(wait_for_processes(dir, 0, 2.0));
  for (int i = 0; i < CONCURRENT_RUNS; i++) {
    const char *name = i % 2 ? "concurrent-parallel" : SEED_NAME;
    if (run_cgroups(name, runs[i].pid) != 0)
      fail_msg("run %d (pid %ld) left its cgroups behind", i, (long)runs[i].pid);
    if (run_dir_left(runs[i].pid))
      fail_msg("run %d (pid %ld) left its run directory in /tmp", i, (long)runs[i].pid);
    /* None took another's live directory or group for a leftover. */
    for (int j = 0; j < CONCURRENT_RUNS; j++) {
      char gone[64];
      snprintf(gone, sizeof(gone), "exitprobe process %ld, which is gone", (long)runs[j].pid);
      if (strstr(runs[i].err, gone) != NULL)
        fail_msg("run %d removed what run %d, alive, had made:\n%s", i, j, runs[i].err);
    }
  }
  for (int i = 0; i < CONCURRENT_RUNS; i++)
    run_free(&runs[i]);
}

/* Starts the long-sleep workflow and waits until its step sleeps. */
static void start_long_sleep(struct fixture *fx, struct run *r, char *needle, size_t needle_size) {
  char token_arg[64];
  snprintf(token_arg, sizeof(token_arg), "token=%s", fx->token);
  snprintf(needle, needle_size, "sleep 4747.%s", fx->token);
  const char *params[] = {token_arg, NULL};
  run_start(r, hostile_workflow("long-sleep.yaml"), params, NULL, NULL, true);
  snprintf(fx->leftover[0], sizeof(fx->leftover[0]), "%s", r->report);
  snprintf(fx->leftover[1], sizeof(fx->leftover[1]), "%s", needle);
  if (!wait_for_processes(needle, 1, 30.0)) {
    kill(r->pid, SIGKILL);
    run_finish(r, 5);
    fail_msg("the step never started sleeping; exit %d\nstderr:\n%s", r->status, r->err);
  }
  if (!find_run_dir(fx->token, fx->run_dir, sizeof(fx->run_dir)))
    fx->run_dir[0] = '\0';
}

static void kill_runner(struct run *r) {
  assert_int_equal(kill(r->pid, SIGKILL), 0);
  run_finish(r, 10);
  assert_int_equal(r->status, 128 + SIGKILL);
}

static void run_seed_after(struct run *next, bool quiet) {
  run_start(next, seed_workflow(), NULL, NULL, NULL, quiet);
  run_finish(next, RUN_TIMEOUT_S);
  expect_run(next, 1);
}

static void test_sigkill_leaves_no_process_and_stale_cgroup_swept(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char needle[64];
  struct run *r = &fx->runs[0];
  start_long_sleep(fx, r, needle, sizeof(needle));
  pid_t runner = r->pid;
  assert_true(run_cgroups("hostile-long-sleep", runner) >= 1);

  kill_runner(r);
  /* The step's init died with the runner (PDEATHSIG), its namespace with it.
   * The init is a clone of exitprobe: its command line names the report. */
  if (!wait_for_processes(needle, 0, 2.0))
    fail_msg("the step (%s) outlived the SIGKILLed runner by 2 s", needle);
  if (!wait_for_processes(r->report, 0, 2.0))
    fail_msg("a process of the SIGKILLed runner (its step's init?) is still there");

  struct run *next = &fx->runs[1];
  run_seed_after(next, true);
  if (run_cgroups("hostile-long-sleep", runner) != 0)
    fail_msg("the next run left the cgroups of the killed run (hostile-long-sleep-%ld)",
             (long)runner);
  /* And said so, one line per group, even with --quiet. */
  char said[128];
  snprintf(said, sizeof(said), "/exitprobe/hostile-long-sleep-%ld (", (long)runner);
  if (strstr(next->err, "exitprobe: removed cgroup ") == NULL || strstr(next->err, said) == NULL)
    fail_msg("the next run did not say it removed the cgroups of the killed run; stderr:\n%s",
             next->err);
  run_free(next);
  run_free(r);
}

static void test_sigkill_run_dir_removed_and_reported(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char needle[64], run_dir[PATH_MAX];
  struct run *r = &fx->runs[0];
  start_long_sleep(fx, r, needle, sizeof(needle));
  snprintf(run_dir, sizeof(run_dir), "%s", fx->run_dir);
  if (run_dir[0] == '\0') {
    kill_runner(r);
    fail_msg("cannot find the run directory of the long-sleep run in /tmp");
  }
  kill_runner(r);
  assert_true(wait_for_processes(needle, 0, 2.0));
  assert_true(host_path_exists(run_dir)); /* nothing removed it yet */

  struct run *next = &fx->runs[1];
  run_seed_after(next, false);
  if (host_path_exists(run_dir))
    fail_msg("the next run left the killed run's directory %s behind", run_dir);
  if (strstr(next->err, run_dir) == NULL)
    fail_msg("the next run did not say it removed %s; its stderr:\n%s", run_dir, next->err);
  run_free(next);
  run_free(r);
}

/* A run in another PID namespace sharing /tmp: the pid in its directory's
 * name means nothing here (it may name no process at all, as below), but
 * the run holds the lock on its directory, so the next run leaves it be. */
static void test_live_run_dir_of_another_pid_namespace_kept(void **state) {
  struct fixture *fx = *state;
  (void)fx;
  skip_without_sandbox();
  pid_t gone = fork();
  assert_true(gone >= 0);
  if (gone == 0)
    _exit(0);
  assert_int_equal(waitpid(gone, NULL, 0), gone);
  char run_dir[PATH_MAX];
  snprintf(run_dir, sizeof(run_dir), "/tmp/exitprobe-run-%d-otherns", (int)gone);
  assert_int_equal(mkdir(run_dir, 0700), 0);
  int lock = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(lock >= 0);
  assert_int_equal(flock(lock, LOCK_EX), 0);

  struct run *next = &fx->runs[1];
  run_seed_after(next, false);
  bool kept = host_path_exists(run_dir);
  bool said = strstr(next->err, run_dir) != NULL;
  /* Unlocked, it is a killed run's leftover: the next run removes it. */
  close(lock);
  struct run *after = &fx->runs[2];
  run_seed_after(after, false);
  bool removed_after = !host_path_exists(run_dir);
  rmdir(run_dir);
  if (!kept || said)
    fail_msg("a live (locked) run directory was removed or reported; stderr:\n%s", next->err);
  if (!removed_after)
    fail_msg("the run directory was not removed once its lock was free; stderr:\n%s",
             after->err);
  run_free(after);
  run_free(next);
}

/* The exitprobe group of the pids hierarchy this process is in (cgroup v1
 * pids, else cgroup2), where exitprobe makes its run groups; "" if none. */
static void exitprobe_cgroup_base(char *out, size_t size) {
  out[0] = '\0';
  char *text = test_read_file("/proc/self/cgroup");
  if (text == NULL)
    return;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *path = strchr(line, ':');
    path = path ? strchr(path + 1, ':') : NULL;
    if (path == NULL)
      continue;
    const char *mount_point = NULL;
    if (strstr(line, ":pids:") != NULL)
      mount_point = "/sys/fs/cgroup/pids";
    else if (strncmp(line, "0::", 3) == 0 && out[0] == '\0')
      mount_point = host_path_exists("/sys/fs/cgroup/unified/cgroup.procs")
                        ? "/sys/fs/cgroup/unified"
                        : "/sys/fs/cgroup";
    if (mount_point == NULL)
      continue;
    snprintf(out, size, "%s%s/exitprobe", mount_point, strcmp(path + 1, "/") == 0 ? "" : path + 1);
    if (strstr(line, ":pids:") != NULL)
      break;
  }
  free(text);
}

/* A pid that was ours and is gone. */
static pid_t dead_pid(void) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(0);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
  return pid;
}

/* The same for run cgroups: a live run in another PID namespace holds the
 * lock on its group, whatever the pid in the group's name says here; the
 * process in it is left alone.  Unlocked, the group is a leftover. */
static void test_live_cgroup_of_another_pid_namespace_kept(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char base[PATH_MAX];
  exitprobe_cgroup_base(base, sizeof(base));
  if (base[0] == '\0' || (mkdir(base, 0755) < 0 && errno != EEXIST)) {
    print_message("skipped: no pids or cgroup2 hierarchy to make a group in (%s)\n", base);
    skip();
  }
  pid_t gone = dead_pid();
  if (snprintf(fx->stale_group, sizeof(fx->stale_group), "%s/hostile-otherns-%ld", base, (long)gone) >=
      (int)sizeof(fx->stale_group))
    fail_msg("cgroup path too long: %s", base);
  char procs[PATH_MAX + 32];
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", fx->stale_group);
  if (mkdir(fx->stale_group, 0755) < 0) {
    int e = errno;
    fx->stale_group[0] = '\0';
    print_message("skipped: cannot make a cgroup under %s: %s\n", base, strerror(e));
    skip();
  }
  int lock = open(fx->stale_group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(lock >= 0);
  assert_int_equal(flock(lock, LOCK_EX), 0);
  fx->sleeper = fork();
  assert_true(fx->sleeper >= 0);
  if (fx->sleeper == 0) {
    for (;;)
      pause();
  }
  FILE *f = fopen(procs, "w");
  assert_non_null(f);
  fprintf(f, "%ld\n", (long)fx->sleeper);
  assert_int_equal(fclose(f), 0);

  struct run *next = &fx->runs[0];
  run_seed_after(next, true);
  bool alive = waitpid(fx->sleeper, NULL, WNOHANG) == 0;
  bool kept = host_path_exists(fx->stale_group);
  bool said = strstr(next->err, "hostile-otherns-") != NULL;
  /* Out of the group, and the lock given up: now it is a leftover. */
  kill(fx->sleeper, SIGKILL);
  waitpid(fx->sleeper, NULL, 0);
  fx->sleeper = 0;
  close(lock);
  struct run *after = &fx->runs[1];
  run_seed_after(after, true);
  bool removed_after = !host_path_exists(fx->stale_group);
  if (!alive || !kept || said)
    fail_msg("a live (locked) run cgroup was swept (process alive: %d, group kept: %d); the "
             "run said:\n%s",
             alive, kept, next->err);
  if (!removed_after)
    fail_msg("the cgroup was not removed once its lock was free; the run said:\n%s", after->err);
  fx->stale_group[0] = '\0';
}

/* A run group whose exitprobe is gone but whose step still has a process
 * (a step init that missed its runner's death, or one someone moved in):
 * the next run kills it, removes the groups and says so. */
static void test_stale_cgroup_member_killed_and_reported(void **state) {
  struct fixture *fx = *state;
  skip_without_sandbox();
  char base[PATH_MAX];
  exitprobe_cgroup_base(base, sizeof(base));
  if (base[0] == '\0' || (mkdir(base, 0755) < 0 && errno != EEXIST)) {
    print_message("skipped: no pids or cgroup2 hierarchy to make a group in (%s)\n", base);
    skip();
  }
  pid_t gone = dead_pid();
  if (snprintf(fx->stale_group, sizeof(fx->stale_group), "%s/hostile-stale-%ld", base, (long)gone) >=
      (int)sizeof(fx->stale_group))
    fail_msg("cgroup path too long: %s", base);
  char step[PATH_MAX + 8], procs[PATH_MAX + 32];
  snprintf(step, sizeof(step), "%s/step", fx->stale_group);
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", step);
  if (mkdir(fx->stale_group, 0755) < 0 || mkdir(step, 0755) < 0) {
    int e = errno;
    fx->stale_group[0] = '\0';
    print_message("skipped: cannot make a cgroup under %s: %s\n", base, strerror(e));
    skip();
  }
  fx->sleeper = fork();
  assert_true(fx->sleeper >= 0);
  if (fx->sleeper == 0) {
    for (;;)
      pause();
  }
  FILE *f = fopen(procs, "w");
  assert_non_null(f);
  fprintf(f, "%ld\n", (long)fx->sleeper);
  assert_int_equal(fclose(f), 0);

  struct run *next = &fx->runs[0];
  run_seed_after(next, true);
  /* Our own child: it is a zombie until we wait, and must have been killed. */
  int status = 0;
  double deadline = now_s() + 5.0;
  pid_t got = 0;
  while ((got = waitpid(fx->sleeper, &status, WNOHANG)) == 0 && now_s() < deadline) {
    struct timespec pause_ts = {0, 20 * 1000 * 1000};
    nanosleep(&pause_ts, NULL);
  }
  if (got != fx->sleeper)
    fail_msg("the process in the stale group is still alive; the run said:\n%s", next->err);
  fx->sleeper = 0;
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  if (host_path_exists(fx->stale_group))
    fail_msg("the stale group %s is still there; the run said:\n%s", fx->stale_group, next->err);
  char said[PATH_MAX + 64];
  snprintf(said, sizeof(said), "exitprobe: removed cgroup %s (1 step group, 1 process killed)",
           fx->stale_group);
  if (strstr(next->err, said) == NULL)
    fail_msg("the run did not say '%s'; its stderr:\n%s", said, next->err);
  fx->stale_group[0] = '\0';
  run_free(next);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_writes_outside_tmp_fail, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_host_processes_invisible_and_unreachable, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_privileged_syscalls_denied, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_host_devices_closed, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_fork_bomb_contained, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_memory_bomb_oom_killed, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_escaped_daemons_killed, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_capabilities_no_new_privs_seccomp, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_output_symlink_not_followed, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_output_fifo_does_not_hang, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_log_flood_bounded, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_tmp_disk_bounded, fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_host_run_sockets_unreachable, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_runs_do_not_interfere, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_sigkill_leaves_no_process_and_stale_cgroup_swept,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_live_run_dir_of_another_pid_namespace_kept,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_live_cgroup_of_another_pid_namespace_kept,
                                      fixture_setup, fixture_teardown),
      cmocka_unit_test_setup_teardown(test_stale_cgroup_member_killed_and_reported, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_sigkill_run_dir_removed_and_reported, fixture_setup,
                                      fixture_teardown),
      /* Last: it moves this process into a mount namespace of its own. */
      cmocka_unit_test_setup_teardown(test_disk_full_keeps_previous_junit, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_disk_full_keeps_previous_report_dir, fixture_setup,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_disk_full_keeps_previous_report, fixture_setup,
                                      fixture_teardown),
  };
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    return 77;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
