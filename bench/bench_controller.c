/* bench_controller: what the controller costs per node as workflows grow.
 *
 *   bench_controller [-e EXITPROBE] [-s SIZES] [-c SHAPES] [-p PARALLELISM]
 *                    [-w WIDTH] [-t BUDGET_S] [-k DIR] [-j JSON] [-f] [-g] [-S]
 *
 * For every shape (seq, wide, fanout, chain; see gen_workflows.h) and every
 * size (default 100,1000,10000 steps of /bin/true, spec.parallelism = the
 * number of online CPUs), writes the workflow, runs `exitprobe run -q
 * --report FILE` on it as a child and measures:
 *   wall        fork of exitprobe to its reap
 *   baseline    the same number of plain fork+exec+wait of /bin/true, one at
 *               a time, measured just before the case; ratio = wall / baseline
 *   CPU         exitprobe's own CPU time, its steps excluded: schedstat's
 *               sum_exec_runtime (ns), read while it is a zombie, before the
 *               reap; also its run delay (time spent waiting for a CPU:
 *               other load on the machine) and the load average
 *   floor       a one-step workflow (best of 3), taken out of per-step figures
 *   peak RSS    ru_maxrss from wait4 (exitprobe, or a reaped descendant if larger)
 *   run / text / report+exit
 *               the wall time split at exitprobe's stdout: until its first
 *               byte (load, the workflow, the report's view of the run the
 *               text is made from), the text it prints (flushed before the
 *               report is written), and from the text's last byte to the reap
 *               (streaming the JSON report into its file, teardown)
 *   validate    `exitprobe validate FILE`: parsing and validation alone
 * and per-node growth against the previous size, next to what O(log n) allows.
 *
 * A size is skipped, with its wall time extrapolated from the two sizes
 * before it, when that estimate exceeds the budget (-t, default 600 s; -f runs
 * it anyway).  A run that outlives the budget is stopped as a user would:
 * SIGINT (Argo stop), 30 s later SIGINT again (terminate), 60 s later SIGKILL.
 *
 * -S adds an in-process measure that does not depend on the controller's
 * speed: a finished seq-shaped run state of each size is built directly and
 * its report printed as text and written as `exitprobe run` does at its end, in a child process whose peak RSS is reported.
 * -g only writes the workflows into -k DIR (for profiling by hand).
 * Prints a table; -j also writes the figures as JSON.  Never passes or fails
 * on time: the exit status is 0 unless a run could not be carried out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen_workflows.h"
#include "report_json.h"
#include "report_text_json.h"
#include "run_state.h"
#include "xalloc.h"

extern char **environ;

#define TRUE_BIN "/bin/true"
#define MAX_SIZES 16
#define SECOND_INTERRUPT_AFTER_S 30.0
#define KILL_AFTER_S 90.0

enum run_status { RUN_OK, RUN_FAILED, RUN_TIMEOUT, RUN_SKIPPED };

static const char *const status_names[] = {
    [RUN_OK] = "ok", [RUN_FAILED] = "failed", [RUN_TIMEOUT] = "timeout", [RUN_SKIPPED] = "skipped"};

struct options {
  const char *exitprobe;
  size_t sizes[MAX_SIZES];
  size_t n_sizes;
  bool shapes[SHAPE_COUNT];
  long parallelism;
  size_t width;
  double budget_s;
  const char *dir;
  bool keep_dir;
  const char *json_path;
  bool force;
  bool generate_only;
  bool synthetic;
};

struct case_result {
  enum wf_shape shape;
  size_t steps;
  size_t expected_nodes;
  enum run_status status;
  int exit_status;         /* exitprobe's, -1 when killed by a signal */
  double wall_s, baseline_s, cpu_s, run_s, text_s, report_s, validate_s;
  double runq_s;           /* exitprobe ready to run but waiting for a CPU */
  double load_before;      /* 1-minute load average when the case started */
  double predicted_s;      /* skipped: extrapolated wall time */
  double growth_exponent;  /* of the extrapolation */
  long maxrss_kib;
  size_t report_nodes;     /* nodes in the report, 0 when none was written */
  char phase[32];
  char progress[32];
};

struct synthetic_result {
  size_t steps, nodes;
  double build_s;  /* the run state */
  double text_s;   /* report_print_text_state to /dev/null */
  double write_s;  /* report_write_json: stream, fsync, rename */
  size_t heap_bytes, report_bytes;
  long maxrss_kib; /* of the child that built the state and wrote the report */
};

struct bench {
  struct options o;
  struct case_result *cases;
  size_t n_cases, cap_cases;
  struct synthetic_result synth[MAX_SIZES];
  size_t n_synth;
  double fork_exec_us; /* median single fork+exec+wait, from the first baseline */
  /* A one-step workflow: start-up and teardown, paid once per run whatever
   * its size, taken out of the per-step figures. */
  double floor_wall_s, floor_cpu_s;
  bool any_error;
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the baseline ------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int fork_exec_wait(void) {
  char *argv[] = {TRUE_BIN, NULL};
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    execve(TRUE_BIN, argv, environ);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* n plain spawns one after the other; returns their total wall time. */
static double baseline(size_t n, double *median_us) {
  double *us = xcalloc(n, sizeof(double));
  double t0 = now_s();
  for (size_t i = 0; i < n; i++) {
    double a = now_s();
    if (fork_exec_wait() < 0) {
      fprintf(stderr, "fork+exec+wait of %s failed\n", TRUE_BIN);
      exit(1);
    }
    us[i] = (now_s() - a) * 1e6;
  }
  double total = now_s() - t0;
  qsort(us, n, sizeof(double), cmp_double);
  *median_us = us[n / 2];
  free(us);
  return total;
}

/* ---- running exitprobe ------------------------------------------------- */

/* Where the wall time went, told by exitprobe's stdout. */
struct out_timing {
  double first, text_end, report_line;
  bool got_first, got_report;
};

/* exitprobe prints "Report: PATH" after writing the report; everything
 * before it was flushed before the report was built. */
static void note_chunk(struct out_timing *t, const char *buf, size_t len, double at) {
  if (!t->got_first) {
    t->got_first = true;
    t->first = t->text_end = at;
  }
  if (t->got_report)
    return;
  const char *tag = "Report: ";
  size_t tl = strlen(tag);
  for (size_t i = 0; i + tl <= len; i++) {
    if (memcmp(buf + i, tag, tl) == 0 && (i == 0 || buf[i - 1] == '\n')) {
      t->got_report = true;
      t->report_line = at;
      if (i > 0)
        t->text_end = at; /* tree and report line arrived together */
      return;
    }
  }
  t->text_end = at;
}

struct proc_times {
  double self_s, children_s; /* utime+stime, cutime+cstime (clock ticks) */
  double run_s, runq_s;      /* schedstat: on a CPU, waiting for one (ns) */
  bool ok, sched_ok;
};

static ssize_t read_small_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n >= 0)
    buf[n] = '\0';
  return n;
}

/* CPU times of a process not yet reaped.  schedstat has nanoseconds where
 * stat has clock ticks, and its run delay says how much a busy machine held
 * the controller back. */
static struct proc_times read_proc_times(pid_t pid) {
  struct proc_times r;
  memset(&r, 0, sizeof(r));
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  const char *p;
  unsigned long long ut, st;
  long long cut, cst;
  /* Fields 3..13 skipped, then 14..17. */
  if (read_small_file(path, buf, sizeof(buf)) > 0 && (p = strrchr(buf, ')')) != NULL &&
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ut, &st,
             &cut, &cst) == 4) {
    double tick = (double)sysconf(_SC_CLK_TCK);
    r.self_s = (double)(ut + st) / tick;
    r.children_s = (double)(cut + cst) / tick;
    r.ok = true;
  }
  unsigned long long run_ns, delay_ns;
  snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
  if (read_small_file(path, buf, sizeof(buf)) > 0 &&
      sscanf(buf, "%llu %llu", &run_ns, &delay_ns) == 2) {
    r.run_s = (double)run_ns / 1e9;
    r.runq_s = (double)delay_ns / 1e9;
    r.sched_ok = true;
  }
  return r;
}

static double loadavg1(void) {
  char buf[128];
  double l = -1;
  if (read_small_file("/proc/loadavg", buf, sizeof(buf)) > 0)
    (void)sscanf(buf, "%lf", &l);
  return l;
}

struct child_run {
  pid_t pid;
  int out_fd;
  double t0;
  struct out_timing timing;
  int wait_status;
  struct rusage ru;
  struct proc_times times;
  bool timed_out;
};

static int spawn_exitprobe(struct child_run *cr, char *const argv[], const char *stderr_path) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return -1;
  int errfd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (errfd < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  cr->t0 = now_s();
  cr->pid = fork();
  if (cr->pid == 0) {
    if (dup2(pipefd[1], STDOUT_FILENO) < 0 || dup2(errfd, STDERR_FILENO) < 0)
      _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, STDIN_FILENO);
    execve(argv[0], argv, environ);
    _exit(127);
  }
  close(pipefd[1]);
  close(errfd);
  if (cr->pid < 0) {
    close(pipefd[0]);
    return -1;
  }
  cr->out_fd = pipefd[0];
  return 0;
}

/* Stop an overrunning run the way a user would, harder as time goes on. */
static void escalate(struct child_run *cr, double deadline, int *stage) {
  double late = now_s() - deadline;
  if (*stage == 0 && late >= 0) {
    kill(cr->pid, SIGINT);
    cr->timed_out = true;
    (*stage)++;
  } else if (*stage == 1 && late >= SECOND_INTERRUPT_AFTER_S) {
    kill(cr->pid, SIGINT);
    (*stage)++;
  } else if (*stage == 2 && late >= KILL_AFTER_S) {
    fprintf(stderr, "  exitprobe %d ignored two interrupts: SIGKILL (its run-level cgroups "
                    "exitprobe/<workflow>-%d may be left behind)\n",
            (int)cr->pid, (int)cr->pid);
    kill(cr->pid, SIGKILL);
    (*stage)++;
  }
}

static int next_poll_ms(double deadline, int stage) {
  static const double offsets[] = {0, SECOND_INTERRUPT_AFTER_S, KILL_AFTER_S};
  if (stage > 2)
    return -1;
  double left = deadline + offsets[stage] - now_s();
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/* Read stdout to EOF, timing it; then the times of the zombie, then reap. */
static void wait_exitprobe(struct child_run *cr, double budget_s) {
  double deadline = cr->t0 + budget_s;
  int stage = 0;
  char buf[65536];
  for (;;) {
    struct pollfd p = {cr->out_fd, POLLIN, 0};
    int r = poll(&p, 1, next_poll_ms(deadline, stage));
    if (r < 0 && errno != EINTR)
      break;
    /* Also while output flows: a chatty run must not dodge the budget. */
    escalate(cr, deadline, &stage);
    if (r <= 0)
      continue;
    ssize_t n = read(cr->out_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    note_chunk(&cr->timing, buf, (size_t)n, now_s());
  }
  close(cr->out_fd);
  siginfo_t si;
  while (waitid(P_PID, (id_t)cr->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
    ;
  cr->times = read_proc_times(cr->pid);
  while (wait4(cr->pid, &cr->wait_status, 0, &cr->ru) < 0 && errno == EINTR)
    ;
}

static void read_report(const char *path, struct case_result *r) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (root == NULL)
    return;
  json_t *status = json_object_get(root, "status");
  const char *phase = json_string_value(json_object_get(status, "phase"));
  const char *progress = json_string_value(json_object_get(status, "progress"));
  snprintf(r->phase, sizeof(r->phase), "%s", phase ? phase : "?");
  snprintf(r->progress, sizeof(r->progress), "%s", progress ? progress : "?");
  r->report_nodes = json_object_size(json_object_get(status, "nodes"));
  json_decref(root);
}

static void show_stderr_tail(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  char line[512];
  int shown = 0;
  while (fgets(line, sizeof(line), f) != NULL && shown++ < 10)
    fprintf(stderr, "    | %s", line);
  fclose(f);
}

static double time_validate(const struct options *o, const char *wf_path) {
  char *argv[] = {(char *)o->exitprobe, "validate", (char *)wf_path, NULL};
  double t0 = now_s();
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    execve(argv[0], argv, environ);
    _exit(127);
  }
  int st = 0;
  if (pid < 0)
    return -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  double dt = now_s() - t0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? dt : -1;
}

/* ---- cases ------------------------------------------------------------- */

static int write_workflow(const struct options *o, enum wf_shape shape, size_t steps,
                          char **path_out) {
  struct gen_params gp = {.shape = shape, .steps = steps, .width = o->width,
                          .parallelism = o->parallelism, .command = TRUE_BIN};
  char *path = xasprintf("%s/%s-%zu.yaml", o->dir, gen_shape_name(shape), steps);
  FILE *f = fopen(path, "w");
  int rc = f != NULL ? gen_write_workflow(&gp, f) : -1;
  if (f != NULL && fclose(f) != 0)
    rc = -1;
  if (rc < 0) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    free(path);
    return -1;
  }
  *path_out = path;
  return 0;
}

static struct case_result *new_case(struct bench *b, enum wf_shape shape, size_t steps) {
  if (b->n_cases == b->cap_cases) {
    b->cap_cases = b->cap_cases ? b->cap_cases * 2 : 16;
    b->cases = xreallocarray(b->cases, b->cap_cases, sizeof(*b->cases));
  }
  struct case_result *r = &b->cases[b->n_cases++];
  memset(r, 0, sizeof(*r));
  r->shape = shape;
  r->steps = steps;
  struct gen_params gp = {.shape = shape, .steps = steps, .width = b->o.width};
  r->expected_nodes = gen_expected_nodes(&gp);
  r->exit_status = -1;
  return r;
}

/* The same shape at smaller sizes, latest first. */
static const struct case_result *previous(const struct bench *b, enum wf_shape shape,
                                          size_t before_index) {
  for (size_t i = before_index; i-- > 0;)
    if (b->cases[i].shape == shape && b->cases[i].status != RUN_SKIPPED)
      return &b->cases[i];
  return NULL;
}

/* Wall time at `steps` from the growth between the last two sizes
 * measured (never below linear); 0 when nothing is known. */
static double extrapolate(const struct bench *b, size_t index, size_t steps, double *exponent) {
  const struct case_result *p2 = previous(b, b->cases[index].shape, index);
  if (p2 == NULL)
    return 0;
  const struct case_result *p1 = previous(b, p2->shape, (size_t)(p2 - b->cases));
  double e = 1.0;
  if (p1 != NULL && p1->status == RUN_OK && p2->status == RUN_OK && p1->wall_s > 0 &&
      p2->steps > p1->steps)
    e = log(p2->wall_s / p1->wall_s) / log((double)p2->steps / (double)p1->steps);
  if (e < 1.0)
    e = 1.0;
  *exponent = e;
  return p2->wall_s * pow((double)steps / (double)p2->steps, e);
}

static void run_case(struct bench *b, struct case_result *r, const char *wf_path) {
  const struct options *o = &b->o;
  const char *name = gen_shape_name(r->shape);
  char *report = xasprintf("%s/%s-%zu.report.json", o->dir, name, r->steps);
  char *err_path = xasprintf("%s/%s-%zu.stderr", o->dir, name, r->steps);
  char *argv[] = {(char *)o->exitprobe, "run", "-q", "--color", "never", "--report", report,
                  (char *)wf_path, NULL};
  double median_us = 0;
  r->load_before = loadavg1();
  r->baseline_s = baseline(r->steps, &median_us);
  if (b->fork_exec_us == 0)
    b->fork_exec_us = median_us;
  r->validate_s = time_validate(o, wf_path);
  unlink(report);
  struct child_run cr = {0};
  if (spawn_exitprobe(&cr, argv, err_path) < 0) {
    fprintf(stderr, "cannot start %s: %s\n", o->exitprobe, strerror(errno));
    r->status = RUN_FAILED;
    b->any_error = true;
    goto out;
  }
  wait_exitprobe(&cr, o->budget_s);
  double end = now_s();
  r->wall_s = end - cr.t0;
  r->cpu_s = cr.times.sched_ok ? cr.times.run_s : cr.times.ok ? cr.times.self_s : -1;
  r->runq_s = cr.times.sched_ok ? cr.times.runq_s : -1;
  r->maxrss_kib = cr.ru.ru_maxrss;
  r->exit_status = WIFEXITED(cr.wait_status) ? WEXITSTATUS(cr.wait_status) : -1;
  if (cr.timing.got_first) {
    r->run_s = cr.timing.first - cr.t0;
    r->text_s = cr.timing.text_end - cr.timing.first;
    r->report_s = end - cr.timing.text_end;
  }
  read_report(report, r);
  if (cr.timed_out) {
    r->status = RUN_TIMEOUT;
  } else if (r->exit_status != 0 || strcmp(r->phase, "Succeeded") != 0) {
    r->status = RUN_FAILED;
    b->any_error = true;
    fprintf(stderr, "  %s-%zu: exit status %d, phase %s; stderr (%s):\n", name, r->steps,
            r->exit_status, r->phase[0] ? r->phase : "(no report)", err_path);
    show_stderr_tail(err_path);
  } else {
    r->status = RUN_OK;
  }
out:
  free(report);
  free(err_path);
}

static void print_progress_line(const struct case_result *r) {
  const char *name = gen_shape_name(r->shape);
  if (r->status == RUN_SKIPPED) {
    printf("  %-6s %6zu steps: skipped, extrapolated wall >= %.0f s (n^%.2f) > budget\n", name,
           r->steps, r->predicted_s, r->growth_exponent);
  } else {
    printf("  %-6s %6zu steps: %s, %.2f s wall, %.2f s baseline, %s %s\n", name, r->steps,
           status_names[r->status], r->wall_s, r->baseline_s, r->phase[0] ? r->phase : "-",
           r->progress[0] ? r->progress : "");
  }
  fflush(stdout);
}

static void measure_floor(struct bench *b) {
  char *wf_path = NULL;
  if (write_workflow(&b->o, SHAPE_SEQ, 1, &wf_path) < 0) {
    b->any_error = true;
    return;
  }
  for (int i = 0; i < 3; i++) {
    struct case_result r;
    memset(&r, 0, sizeof(r));
    r.shape = SHAPE_SEQ;
    r.steps = 1;
    run_case(b, &r, wf_path);
    if (r.status != RUN_OK)
      break;
    if (i == 0 || r.wall_s < b->floor_wall_s)
      b->floor_wall_s = r.wall_s;
    if (i == 0 || r.cpu_s < b->floor_cpu_s)
      b->floor_cpu_s = r.cpu_s;
  }
  printf("  floor (one-step workflow, best of 3): %.3f s wall, %.3f s exitprobe CPU\n",
         b->floor_wall_s, b->floor_cpu_s);
  fflush(stdout);
  free(wf_path);
}

/* Cost per step once the one-off start-up and teardown are taken out. */
static double per_step_us(double total_s, double floor_s, size_t steps) {
  double net = total_s - floor_s;
  return (net > 0 ? net : 0) * 1e6 / (double)steps;
}

static bool any_shape(const struct options *o) {
  for (int s = 0; s < SHAPE_COUNT; s++)
    if (o->shapes[s])
      return true;
  return false;
}

static void run_all(struct bench *b) {
  if (!any_shape(&b->o))
    return;
  measure_floor(b);
  const struct options *o = &b->o;
  for (size_t si = 0; si < o->n_sizes; si++) {
    for (int s = 0; s < SHAPE_COUNT; s++) {
      if (!o->shapes[s])
        continue;
      size_t steps = o->sizes[si];
      if (s == SHAPE_FANOUT && steps < 3)
        continue;
      char *wf_path = NULL;
      if (write_workflow(o, (enum wf_shape)s, steps, &wf_path) < 0) {
        b->any_error = true;
        continue;
      }
      struct case_result *r = new_case(b, (enum wf_shape)s, steps);
      size_t index = (size_t)(r - b->cases);
      double e = 1;
      double predicted = extrapolate(b, index, steps, &e);
      const struct case_result *prev = previous(b, r->shape, index);
      bool prev_over = prev != NULL && prev->status == RUN_TIMEOUT;
      if (!o->force && (predicted > o->budget_s || prev_over)) {
        r->status = RUN_SKIPPED;
        r->predicted_s = predicted;
        r->growth_exponent = e;
      } else {
        run_case(b, r, wf_path);
      }
      print_progress_line(r);
      free(wf_path);
    }
  }
}

/* ---- the report without the controller ---------------------------------- */

/* A finished seq-shaped run: entry, then per step a group and a pod, each
 * group hanging under the previous pod as Argo links them. */
static struct run_state *synthetic_state(size_t steps) {
  struct run_state *st = run_state_new();
  st->workflow_name = xasprintf("seq-%zu", steps);
  st->workflow_file = xasprintf("seq-%zu.yaml", steps);
  st->workflow_namespace = xstrdup("default");
  st->workflow_uid = xstrdup("00000000-0000-0000-0000-000000000000");
  st->cgroup_mode = xstrdup("hybrid");
  st->started_at_us = now_realtime_us();
  struct wf_node *entry =
      run_state_add_node(st, st->workflow_name, st->workflow_name, NODE_STEPS, "main", NULL);
  struct wf_node *prev = entry;
  for (size_t i = 0; i < steps; i++) {
    char *gname = xasprintf("%s[%zu]", st->workflow_name, i);
    char *gdisp = xasprintf("[%zu]", i);
    char *pname = xasprintf("%s.s%zu", gname, i);
    char *pdisp = xasprintf("s%zu", i);
    struct wf_node *g = run_state_add_node(st, gname, gdisp, NODE_STEP_GROUP, NULL, entry->id);
    run_state_add_child(prev, g->id);
    struct wf_node *pod = run_state_add_node(st, pname, pdisp, NODE_POD, "step", entry->id);
    run_state_add_child(g, pod->id);
    pod->has_exit_code = true;
    pod->exit_code = 0;
    node_finish(pod, PHASE_SUCCEEDED, NULL);
    node_finish(g, PHASE_SUCCEEDED, NULL);
    prev = pod;
    free(gname), free(gdisp), free(pname), free(pdisp);
  }
  node_finish(entry, PHASE_SUCCEEDED, NULL);
  st->phase = PHASE_SUCCEEDED;
  st->finished_at_us = now_realtime_us();
  return st;
}

/* In the child, the way `exitprobe run` ends (cli_run.c): print the text,
 * write the report.  Fills r. */
static int synthetic_child(const char *dir, struct synthetic_result *r) {
  struct mallinfo2 before = mallinfo2();
  double t0 = now_s();
  struct run_state *st = synthetic_state(r->steps);
  r->build_s = now_s() - t0;
  struct mallinfo2 after = mallinfo2();
  r->heap_bytes = after.uordblks > before.uordblks ? after.uordblks - before.uordblks : 0;
  r->nodes = st->n_nodes;
  char *path = xasprintf("%s/synthetic-%zu.report.json", dir, r->steps);
  int rc = 0;
  FILE *devnull = fopen("/dev/null", "w");
  if (devnull != NULL) {
    struct text_options topts = {.color = false};
    t0 = now_s();
    report_print_text_state(st, &topts, devnull);
    fflush(devnull);
    r->text_s = now_s() - t0;
    fclose(devnull);
  }
  ep_error *err = NULL;
  t0 = now_s();
  if (report_write_json(st, path, &err) < 0) {
    fprintf(stderr, "report_write_json: %s\n", err->message);
    ep_error_free(&err);
    rc = -1;
  }
  r->write_s = now_s() - t0;
  struct stat sb;
  r->report_bytes = stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
  (void)unlink(path);
  run_state_free(st);
  free(path);
  return rc;
}

/* In a child process of its own, so that its peak RSS is the state's and
 * the report's alone. */
static void run_synthetic(struct bench *b, size_t steps) {
  struct synthetic_result *r = &b->synth[b->n_synth++];
  memset(r, 0, sizeof(*r));
  r->steps = steps;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    perror("pipe2");
    b->any_error = true;
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int rc = synthetic_child(b->o.dir, r);
    ssize_t w = write(fds[1], r, sizeof(*r));
    _exit(rc == 0 && w == (ssize_t)sizeof(*r) ? 0 : 1);
  }
  close(fds[1]);
  ssize_t got = pid > 0 ? read(fds[0], r, sizeof(*r)) : -1;
  close(fds[0]);
  int st = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof(ru));
  while (pid > 0 && wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
    ;
  r->maxrss_kib = ru.ru_maxrss;
  if (got != (ssize_t)sizeof(*r) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "report-alone measure at %zu steps failed\n", steps);
    b->any_error = true;
  }
}

/* ---- output ------------------------------------------------------------ */

static double log_growth_allowed(size_t n_prev, size_t n) {
  return log((double)n) / log((double)n_prev);
}

/* v with `decimals` digits and a suffix, or "-" when not known. */
static void fmt_or_dash(char *buf, size_t len, int decimals, const char *suffix, double v,
                        bool known) {
  if (known)
    snprintf(buf, len, "%.*f%s", decimals, v, suffix);
  else
    snprintf(buf, len, "-");
}

static void print_case_row(const struct bench *b, size_t i) {
  const struct case_result *r = &b->cases[i];
  const struct case_result *prev = previous(b, r->shape, i);
  bool ran = r->status == RUN_OK || r->status == RUN_FAILED;
  bool measured = r->status != RUN_SKIPPED;
  char wall[24], base[24], ratio[24], us_step[24], cpu_step[24], growth[40], rss[24], rep[24],
      val[24], load[24], runq[24];
  if (r->status == RUN_SKIPPED)
    snprintf(wall, sizeof(wall), ">=%.0f*", r->predicted_s);
  else
    snprintf(wall, sizeof(wall), "%s%.2f", r->status == RUN_TIMEOUT ? ">" : "", r->wall_s);
  fmt_or_dash(ratio, sizeof(ratio), 2, "x", r->baseline_s > 0 ? r->wall_s / r->baseline_s : 0,
              ran && r->baseline_s > 0);
  if (r->status == RUN_SKIPPED)
    snprintf(us_step, sizeof(us_step), ">=%.0f*",
             per_step_us(r->predicted_s, b->floor_wall_s, r->steps));
  else if (ran)
    snprintf(us_step, sizeof(us_step), "%.0f", per_step_us(r->wall_s, b->floor_wall_s, r->steps));
  else
    snprintf(us_step, sizeof(us_step), "-");
  double cpu_now = per_step_us(r->cpu_s, b->floor_cpu_s, r->steps);
  fmt_or_dash(cpu_step, sizeof(cpu_step), 0, "", cpu_now, ran && r->cpu_s >= 0);
  snprintf(growth, sizeof(growth), "-");
  double cpu_prev = prev != NULL ? per_step_us(prev->cpu_s, b->floor_cpu_s, prev->steps) : 0;
  if (ran && prev != NULL && prev->status == RUN_OK && cpu_prev > 0 && cpu_now > 0) {
    double g = cpu_now / cpu_prev;
    snprintf(growth, sizeof(growth), "x%.2f (log: x%.2f)", g,
             log_growth_allowed(prev->steps, r->steps));
  }
  fmt_or_dash(rss, sizeof(rss), 1, "", (double)r->maxrss_kib / 1024.0, measured);
  fmt_or_dash(rep, sizeof(rep), 3, "", r->report_s, ran && r->report_s > 0);
  fmt_or_dash(val, sizeof(val), 3, "", r->validate_s, r->validate_s >= 0 && measured);
  fmt_or_dash(runq, sizeof(runq), 2, "", r->runq_s, measured && r->runq_s >= 0);
  fmt_or_dash(base, sizeof(base), 2, "", r->baseline_s, measured);
  fmt_or_dash(load, sizeof(load), 1, "", r->load_before, measured);
  printf("%-7s %6zu %6zu %10s %8s %8s %9s %9s %-20s %7s %8s %8s %5s %6s %s\n",
         gen_shape_name(r->shape), r->steps, r->expected_nodes, wall, base, ratio, us_step,
         cpu_step, growth, rss, rep, val, load, runq, status_names[r->status]);
}

static void print_case_table(const struct bench *b) {
  printf("\ncontroller overhead: /bin/true steps, spec.parallelism %ld; baseline = as many "
         "plain fork+exec+wait one at a time (median %.0f us each)\n",
         b->o.parallelism, b->fork_exec_us);
  printf("%-7s %6s %6s %10s %8s %8s %9s %9s %-20s %7s %8s %8s %5s %6s %s\n", "shape", "steps",
         "nodes", "wall s", "base s", "ratio", "us/step", "cpu/step", "cpu/step growth",
         "RSS MiB", "report s", "valid. s", "load", "runq s", "status");
  for (size_t i = 0; i < b->n_cases; i++)
    print_case_row(b, i);
  printf("  * not run: extrapolated from the last two sizes measured (wall ~ n^e, e >= 1); a\n"
         "    lower bound while the growth is still steepening (a cost a*n + b*n^k).\n"
         "  > stopped at the budget.  us/step, cpu/step: wall time and exitprobe's own CPU\n"
         "  time (its steps excluded) per step, the one-step floor taken out.  growth: cpu/step\n"
         "  against the previous size, next to what O(log n) per node allows.  report s: last\n"
         "  byte of the text to the reap (JSON report streamed into its file; teardown).\n"
         "  load: 1-min load average at the start; runq s: time exitprobe was ready to run but\n"
         "  waited for a CPU (other load on the machine).\n");
}

static void print_synthetic_table(const struct bench *b) {
  printf("\nreport alone (in-process, a finished seq-shaped run state, as `exitprobe run` ends):\n");
  printf("%8s %8s %9s %9s %9s %9s %11s %10s %8s\n", "steps", "nodes", "state s", "text s",
         "write s", "report s", "heap B/node", "JSON KiB", "RSS MiB");
  for (size_t i = 0; i < b->n_synth; i++) {
    const struct synthetic_result *s = &b->synth[i];
    char heap[24];
    fmt_or_dash(heap, sizeof(heap), 0, "", (double)s->heap_bytes / (double)s->nodes,
                s->heap_bytes > 0); /* mallinfo2 sees nothing under a sanitizer's allocator */
    printf("%8zu %8zu %9.3f %9.3f %9.3f %9.3f %11s %10.0f %8.1f\n", s->steps, s->nodes,
           s->build_s, s->text_s, s->write_s, s->text_s + s->write_s, heap,
           (double)s->report_bytes / 1024.0, (double)s->maxrss_kib / 1024.0);
  }
  printf("  report s = text + write: what the end of `exitprobe run` costs (no JSON tree of\n"
         "  the nodes is made).  RSS: peak of the process doing all of it.\n");
}

static void print_tables(const struct bench *b) {
  if (b->n_cases > 0)
    print_case_table(b);
  if (b->n_synth == 0)
    return;
  print_synthetic_table(b);
}

static json_t *num(double v) { return json_real(v); }

static json_t *case_json(const struct bench *b, const struct case_result *r) {
  json_t *o = json_object();
  json_object_set_new(o, "shape", json_string(gen_shape_name(r->shape)));
  json_object_set_new(o, "steps", json_integer((json_int_t)r->steps));
  json_object_set_new(o, "nodes", json_integer((json_int_t)r->expected_nodes));
  json_object_set_new(o, "status", json_string(status_names[r->status]));
  if (r->status == RUN_SKIPPED) {
    json_object_set_new(o, "extrapolated_wall_s", num(r->predicted_s));
    json_object_set_new(o, "extrapolation_exponent", num(r->growth_exponent));
    return o;
  }
  json_object_set_new(o, "wall_s", num(r->wall_s));
  json_object_set_new(o, "baseline_s", num(r->baseline_s));
  json_object_set_new(o, "cpu_s", num(r->cpu_s));
  if (r->status != RUN_TIMEOUT) {
    /* A stopped run did not do all its steps: no per-step figures. */
    json_object_set_new(o, "ratio", num(r->baseline_s > 0 ? r->wall_s / r->baseline_s : 0));
    json_object_set_new(o, "wall_us_per_step",
                        num(per_step_us(r->wall_s, b->floor_wall_s, r->steps)));
    json_object_set_new(o, "cpu_us_per_step", num(per_step_us(r->cpu_s, b->floor_cpu_s, r->steps)));
  }
  json_object_set_new(o, "runqueue_wait_s", num(r->runq_s));
  json_object_set_new(o, "load_avg_1m_before", num(r->load_before));
  json_object_set_new(o, "peak_rss_kib", json_integer(r->maxrss_kib));
  json_object_set_new(o, "run_s", num(r->run_s));
  json_object_set_new(o, "text_s", num(r->text_s));
  json_object_set_new(o, "report_s", num(r->report_s));
  json_object_set_new(o, "validate_s", num(r->validate_s));
  json_object_set_new(o, "exit_status", json_integer(r->exit_status));
  json_object_set_new(o, "phase", json_string(r->phase));
  json_object_set_new(o, "progress", json_string(r->progress));
  json_object_set_new(o, "report_nodes", json_integer((json_int_t)r->report_nodes));
  return o;
}

static int write_json(const struct bench *b) {
  json_t *root = json_object();
  struct utsname u;
  if (uname(&u) == 0) {
    json_object_set_new(root, "kernel", json_string(u.release));
    json_object_set_new(root, "host", json_string(u.nodename));
  }
  json_object_set_new(root, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
  json_object_set_new(root, "parallelism", json_integer(b->o.parallelism));
  json_object_set_new(root, "wide_width", json_integer((json_int_t)b->o.width));
  json_object_set_new(root, "budget_s", num(b->o.budget_s));
  json_object_set_new(root, "fork_exec_median_us", num(b->fork_exec_us));
  json_object_set_new(root, "floor_wall_s", num(b->floor_wall_s));
  json_object_set_new(root, "floor_cpu_s", num(b->floor_cpu_s));
  json_t *cases = json_array();
  for (size_t i = 0; i < b->n_cases; i++)
    json_array_append_new(cases, case_json(b, &b->cases[i]));
  json_object_set_new(root, "cases", cases);
  json_t *synth = json_array();
  for (size_t i = 0; i < b->n_synth; i++) {
    const struct synthetic_result *s = &b->synth[i];
    json_t *o = json_object();
    json_object_set_new(o, "steps", json_integer((json_int_t)s->steps));
    json_object_set_new(o, "nodes", json_integer((json_int_t)s->nodes));
    json_object_set_new(o, "state_build_s", num(s->build_s));
    json_object_set_new(o, "text_s", num(s->text_s));
    json_object_set_new(o, "report_write_s", num(s->write_s));
    json_object_set_new(o, "heap_bytes", json_integer((json_int_t)s->heap_bytes));
    json_object_set_new(o, "report_bytes", json_integer((json_int_t)s->report_bytes));
    json_object_set_new(o, "peak_rss_kib", json_integer(s->maxrss_kib));
    json_array_append_new(synth, o);
  }
  json_object_set_new(root, "report_alone", synth);
  int rc = json_dump_file(root, b->o.json_path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (rc < 0)
    fprintf(stderr, "cannot write %s\n", b->o.json_path);
  return rc;
}

/* ---- options ----------------------------------------------------------- */

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [-e exitprobe] [-s sizes] [-c shapes] [-p parallelism] [-w width]\n"
          "          [-t budget_s] [-k dir] [-j results.json] [-f] [-g] [-S]\n"
          "  sizes: comma list of step counts (default 100,1000,10000)\n"
          "  shapes: comma list of seq,wide,fanout,chain (default all), or none\n",
          argv0);
  exit(2);
}

static int parse_sizes(struct options *o, const char *arg) {
  char *copy = xstrdup(arg), *save = NULL;
  o->n_sizes = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *end;
    unsigned long v = strtoul(tok, &end, 10);
    if (*end != '\0' || v == 0 || o->n_sizes == MAX_SIZES) {
      free(copy);
      return -1;
    }
    o->sizes[o->n_sizes++] = v;
  }
  free(copy);
  /* Ascending: extrapolation reads the smaller sizes first. */
  for (size_t i = 1; i < o->n_sizes; i++)
    for (size_t j = i; j > 0 && o->sizes[j - 1] > o->sizes[j]; j--) {
      size_t t = o->sizes[j];
      o->sizes[j] = o->sizes[j - 1];
      o->sizes[j - 1] = t;
    }
  return o->n_sizes > 0 ? 0 : -1;
}

static int parse_shapes(struct options *o, const char *arg) {
  char *copy = xstrdup(arg), *save = NULL;
  memset(o->shapes, 0, sizeof(o->shapes));
  int rc = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int s = gen_shape_from_name(tok);
    if (strcmp(tok, "none") == 0)
      continue; /* -c none -S: the report measure alone */
    if (s < 0)
      rc = -1;
    else
      o->shapes[s] = true;
  }
  free(copy);
  return rc;
}

/* Next to this binary in the build tree: ../exitprobe. */
static const char *default_exitprobe(void) {
  static char path[4096];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
  if (n <= 0)
    return "exitprobe";
  path[n] = '\0';
  char *slash = strrchr(path, '/');
  if (slash == NULL)
    return "exitprobe";
  *slash = '\0';
  slash = strrchr(path, '/');
  if (slash == NULL)
    return "exitprobe";
  strcpy(slash, "/exitprobe");
  return path;
}

static void parse_options(int argc, char **argv, struct options *o) {
  o->exitprobe = NULL;
  parse_sizes(o, "100,1000,10000");
  for (int s = 0; s < SHAPE_COUNT; s++)
    o->shapes[s] = true;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  o->parallelism = cpus > 0 ? cpus : 2;
  o->width = 100;
  o->budget_s = 600;
  int opt;
  while ((opt = getopt(argc, argv, "e:s:c:p:w:t:k:j:fgSh")) != -1) {
    switch (opt) {
    case 'e':
      o->exitprobe = optarg;
      break;
    case 's':
      if (parse_sizes(o, optarg) < 0)
        usage(argv[0]);
      break;
    case 'c':
      if (parse_shapes(o, optarg) < 0)
        usage(argv[0]);
      break;
    case 'p':
      o->parallelism = strtol(optarg, NULL, 10);
      break;
    case 'w':
      o->width = strtoul(optarg, NULL, 10);
      break;
    case 't':
      o->budget_s = strtod(optarg, NULL);
      break;
    case 'k':
      o->dir = optarg;
      o->keep_dir = true;
      break;
    case 'j':
      o->json_path = optarg;
      break;
    case 'f':
      o->force = true;
      break;
    case 'g':
      o->generate_only = true;
      break;
    case 'S':
      o->synthetic = true;
      break;
    default:
      usage(argv[0]);
    }
  }
  if (optind != argc || o->width == 0 || o->budget_s <= 0 || o->parallelism < 0)
    usage(argv[0]);
  if (o->exitprobe == NULL)
    o->exitprobe = default_exitprobe();
}

static int generate_only(const struct options *o) {
  for (size_t si = 0; si < o->n_sizes; si++)
    for (int s = 0; s < SHAPE_COUNT; s++) {
      if (!o->shapes[s] || (s == SHAPE_FANOUT && o->sizes[si] < 3))
        continue;
      char *path = NULL;
      if (write_workflow(o, (enum wf_shape)s, o->sizes[si], &path) < 0)
        return 1;
      printf("%s\n", path);
      free(path);
    }
  return 0;
}

/* Only files this program wrote live there: no recursion needed. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      (void)unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
  (void)rmdir(dir);
}

int main(int argc, char **argv) {
  struct bench b;
  memset(&b, 0, sizeof(b));
  parse_options(argc, argv, &b.o);
  char tmpl[] = "/tmp/bench-controller-XXXXXX";
  if (b.o.dir == NULL) {
    if (mkdtemp(tmpl) == NULL) {
      perror("mkdtemp");
      return 1;
    }
    b.o.dir = tmpl;
  } else if (mkdir(b.o.dir, 0755) < 0 && errno != EEXIST) {
    perror(b.o.dir);
    return 1;
  }
  if (b.o.generate_only)
    return generate_only(&b.o);
  if (any_shape(&b.o) && access(b.o.exitprobe, X_OK) < 0) {
    fprintf(stderr, "%s: %s (use -e)\n", b.o.exitprobe, strerror(errno));
    return 1;
  }
  if (geteuid() != 0)
    printf("not root: exitprobe will refuse to create namespaces; runs will fail\n");
  printf("bench_controller: %s, sizes", b.o.exitprobe);
  for (size_t i = 0; i < b.o.n_sizes; i++)
    printf("%s%zu", i ? "," : " ", b.o.sizes[i]);
  printf(", spec.parallelism %ld, wide groups of %zu, budget %.0f s per run, files in %s\n",
         b.o.parallelism, b.o.width, b.o.budget_s, b.o.dir);
  fflush(stdout);
  run_all(&b);
  if (b.o.synthetic)
    for (size_t i = 0; i < b.o.n_sizes; i++)
      run_synthetic(&b, b.o.sizes[i]);
  print_tables(&b);
  if (b.o.json_path != NULL && write_json(&b) < 0)
    b.any_error = true;
  if (!b.o.keep_dir)
    remove_dir(b.o.dir);
  free(b.cases);
  return b.any_error ? 1 : 0;
}
