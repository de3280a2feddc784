/* `exitprobe matrix WORKFLOW.yaml` and `exitprobe replay REPORT.json`
 * (docs/MATRIX.md).  The matrix enumerates the faults a workflow can meet
 * -- every step under exit 1, SIGKILL, SIGTERM, a hang past a deadline and
 * OOM; every controller crash point under restart, lose-state, stay-down;
 * stop and terminate -- writes one scenario per cell and runs each as its
 * own `exitprobe run` child process in its own process group, several at a
 * time.  Children rather than threads: a run blocks signals, owns cgroups
 * and may fork a supervised controller, and only a process boundary lets a
 * cell be killed without taking the others with it.  Each cell's report
 * carries its scenario and workflow text, so `replay` can run it again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "atomic_file.h"
#include "matrix_summary.h"
#include "report_json.h"
#include "xalloc.h"
#include "../injector/scenario.h"

#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)
#define STOP_AGAIN_MS 250   /* a second SIGTERM turns the child's stop into terminate */
#define KILL_AFTER_MS 3000  /* then SIGKILL for the whole process group */

/* The fault families a cell can apply; --faults selects among them. */
enum cell_kind {
  CELL_EXIT,
  CELL_SIGKILL,
  CELL_SIGTERM,
  CELL_DEADLINE,
  CELL_OOM,
  CELL_CRASH_RESTART,
  CELL_CRASH_LOSE_STATE,
  CELL_CRASH_STAY_DOWN,
  CELL_STOP,
  CELL_TERMINATE,
  CELL_KINDS,
};

static const char *const kind_names[CELL_KINDS] = {
    "exit", "sigkill", "sigterm", "deadline", "oom", "restart", "lose-state", "stay-down",
    "stop", "terminate",
};

enum cell_state { CELL_PENDING, CELL_RUNNING, CELL_DONE };

/* How a cell ended, as far as the matrix is concerned. */
enum cell_outcome { OUT_NONE, OUT_RAN, OUT_SKIPPED, OUT_TIMED_OUT, OUT_ERROR, OUT_INTERRUPTED };

static const char *const outcome_names[] = {"not run", "ran", "skipped", "timed out", "error",
                                            "interrupted"};

/* What the cell's report says. */
struct cell_result {
  char *phase;   /* status.phase */
  char *saw;     /* exitHandler.workflowStatus, NULL when none */
  char *by;      /* controller / watchdog / none */
  int runs;
  bool fired;    /* every fault of the cell fired */
  char *note;    /* "did not fire: ...", or why the cell has no result */
  unsigned long long seed;
  const char *idempotent; /* "yes" / "no" from the idempotency check, else "unknown" */
};

struct cell {
  size_t index;       /* position in the full matrix: stable across --faults and --shard */
  enum cell_kind kind;
  char *target;       /* node target or crash point */
  char *label;        /* "SIGKILL @ work" */
  char *scenario;     /* the scenario text */
  char *report_path;
  enum cell_state state;
  enum cell_outcome outcome;
  pid_t pid;          /* also the process group */
  int64_t deadline_ms;
  int64_t next_kill_ms; /* 0: no kill scheduled */
  int kills;          /* escalation steps taken: SIGTERM, SIGTERM, SIGKILL */
  int wait_status;
  struct cell_result res;
};

struct matrix {
  const char *workflow_path; /* as given, for the reader */
  char *workflow_text;
  char *tmpdir;
  const char *report_dir;    /* NULL: reports in tmpdir, discarded */
  struct cell *cells;
  size_t n;
  size_t cells_total;        /* cells --faults selects over all shards */
  long jobs;
  int64_t timeout_ms;
  unsigned long long seed;
  bool color;
  bool idempotency;          /* every cell runs the idempotency check (--idempotency) */
  bool tty;                  /* progress bar on stderr */
  sigset_t old_mask;
  int sigfd;
  int interrupted;           /* SIGINT / SIGTERM that interrupted the matrix, 0 if none */
  size_t running, finished;
  int64_t last_draw_ms;
};

static void matrix_free(struct matrix *m);
static int matrix_status(const struct matrix *m, bool require_once);

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cell_result_clear(struct cell_result *r) {
  free(r->phase);
  free(r->saw);
  free(r->by);
  free(r->note);
  memset(r, 0, sizeof(*r));
}

static void cell_clear(struct cell *c) {
  free(c->target);
  free(c->label);
  free(c->scenario);
  free(c->report_path);
  cell_result_clear(&c->res);
}

static char *read_text_file(const char *path, ep_error **err) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    ep_error_set_errno(err, EP_EXIT_USAGE, errno, "cannot read %s", path);
    return NULL;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  char buf[8192];
  size_t got;
  while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
    fwrite(buf, 1, got, mem);
  fclose(f);
  fclose(mem);
  return text;
}

static int write_text_file(const char *path, const char *text, ep_error **err) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot write %s", path);
  fputs(text, f);
  if (fclose(f) != 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot write %s", path);
  return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* ---- the cells ---------------------------------------------------------- */

/* A step node the static walk finds: what a fault targets and, for a hang
 * past a deadline, which deadline can reach it. */
struct step_node {
  char *target;
  char *scope; /* "workflow", or the template for the exit handler's steps */
};

struct step_list {
  struct step_node *v;
  size_t n;
};

static void step_add(struct step_list *l, const char *target, const char *scope) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].target, target) == 0)
      return;
  l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
  l->v[l->n++] = (struct step_node){xstrdup(target), xstrdup(scope)};
}

/* The leaf steps as crash_points.c walks them, by the display names a run
 * gives them.  A generated workflow name changes from run to run, so nodes
 * named after it are targeted by a name that does not contain it. */
static void walk_steps(const struct workflow *wf, const struct wf_template *t, const char *display,
                       bool in_handler, struct step_list *l, int depth) {
  if (t == NULL || depth > 32)
    return;
  switch (t->kind) {
  case TEMPLATE_CONTAINER:
  case TEMPLATE_SCRIPT: {
    /* The exit handler is exempt from the workflow's deadline: its own
     * template's deadline is the one that can stop it. */
    const char *scope = in_handler ? t->name : "workflow";
    if (wf->generate_name != NULL && strcmp(display, wf->name) == 0)
      step_add(l, t->name, scope);
    else if (wf->generate_name != NULL && depth == 0 && in_handler)
      step_add(l, "*.onExit", scope);
    else
      step_add(l, display, scope);
    return;
  }
  case TEMPLATE_STEPS:
    for (size_t g = 0; g < t->n_groups; g++)
      for (size_t s = 0; s < t->groups[g].n_steps; s++) {
        const struct wf_step *st = &t->groups[g].steps[s];
        walk_steps(wf, workflow_find_template(wf, st->template_name), st->name, in_handler, l,
                   depth + 1);
      }
    return;
  case TEMPLATE_DAG:
    for (size_t i = 0; i < t->n_tasks; i++)
      walk_steps(wf, workflow_find_template(wf, t->tasks[i].template_name), t->tasks[i].name,
                 in_handler, l, depth + 1);
    return;
  case TEMPLATE_SUSPEND:
  case TEMPLATE_RESOURCE:
  case TEMPLATE_HTTP:
  case TEMPLATE_PLUGIN:
    return;
  }
}

static void step_list_clear(struct step_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].target);
    free(l->v[i].scope);
  }
  free(l->v);
}

/* A YAML double-quoted scalar. */
static void yaml_quote(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\x%02x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void fault_hang(FILE *f, const char *target) {
  fputs("  - {target: ", f);
  yaml_quote(f, target);
  fputs(", action: hang}\n", f);
}

/* The scenario of one cell: the workflow copy next to it, the seed, the faults. */
static char *cell_scenario(const struct cell *c, const char *scope, unsigned long long seed) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  fprintf(f, "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata:\n  name: matrix-cell-%03zu\n"
             "  description: ",
          c->index);
  yaml_quote(f, c->label);
  fprintf(f, "\nspec:\n  workflow: workflow.yaml\n  seed: %llu\n", seed);
  if (c->kind == CELL_DEADLINE)
    fputs("  timeScale: 0.25\n", f);
  fputs("  faults:\n", f);
  switch (c->kind) {
  case CELL_EXIT:
    fputs("  - {target: ", f);
    yaml_quote(f, c->target);
    fputs(", action: exit, code: 1}\n", f);
    break;
  case CELL_SIGKILL:
  case CELL_SIGTERM:
    fault_hang(f, c->target);
    fputs("  - {target: ", f);
    yaml_quote(f, c->target);
    fprintf(f, ", action: signal, signal: %s, after: 100ms}\n",
            c->kind == CELL_SIGKILL ? "SIGKILL" : "SIGTERM");
    break;
  case CELL_DEADLINE:
    fault_hang(f, c->target);
    fputs("  - {action: deadline, scope: ", f);
    yaml_quote(f, scope);
    fputs(", activeDeadlineSeconds: 1}\n", f);
    break;
  case CELL_OOM:
    fputs("  - {target: ", f);
    yaml_quote(f, c->target);
    fputs(", action: oom, limit: 16Mi}\n", f);
    break;
  case CELL_CRASH_RESTART:
  case CELL_CRASH_LOSE_STATE:
  case CELL_CRASH_STAY_DOWN:
    fputs("  - {action: controller-crash, at: ", f);
    yaml_quote(f, c->target);
    fprintf(f, ", then: %s}\n", kind_names[c->kind]);
    break;
  case CELL_STOP:
  case CELL_TERMINATE:
    fault_hang(f, c->target);
    fputs("  - {action: shutdown, strategy: ", f);
    fprintf(f, "%s, target: ", kind_names[c->kind]);
    yaml_quote(f, c->target);
    fputs(", after: 100ms}\n", f);
    break;
  case CELL_KINDS:
    break;
  }
  fclose(f);
  return text;
}

static char *cell_label(enum cell_kind kind, const char *target) {
  switch (kind) {
  case CELL_EXIT:
    return xasprintf("exit 1 @ %s", target);
  case CELL_SIGKILL:
    return xasprintf("SIGKILL @ %s", target);
  case CELL_SIGTERM:
    return xasprintf("SIGTERM @ %s", target);
  case CELL_DEADLINE:
    return xasprintf("hang past deadline @ %s", target);
  case CELL_OOM:
    return xasprintf("OOM 16Mi @ %s", target);
  case CELL_CRASH_RESTART:
  case CELL_CRASH_LOSE_STATE:
  case CELL_CRASH_STAY_DOWN:
    return xasprintf("crash %s, %s", target, kind_names[kind]);
  case CELL_STOP:
  case CELL_TERMINATE:
    return xasprintf("%s @ %s", kind_names[kind], target);
  case CELL_KINDS:
    break;
  }
  return xstrdup("?");
}

/* Cells are numbered over the full matrix; only selected ones are kept. */
struct selection {
  unsigned kinds;           /* bit per enum cell_kind */
  unsigned shard, n_shards; /* 1-based; 0/0 for all */
  size_t position;          /* among the cells --faults selects, for --shard */
};

static void add_cell(struct matrix *m, struct selection *sel, size_t *index, enum cell_kind kind,
                     const char *target, const char *scope) {
  size_t i = (*index)++;
  if (!(sel->kinds & (1u << kind)))
    return;
  size_t pos = sel->position++;
  if (sel->n_shards > 0 && pos % sel->n_shards != sel->shard - 1)
    return;
  m->cells = xreallocarray(m->cells, m->n + 1, sizeof(*m->cells));
  struct cell *c = &m->cells[m->n++];
  memset(c, 0, sizeof(*c));
  c->index = i;
  c->kind = kind;
  c->target = xstrdup(target);
  c->label = cell_label(kind, target);
  c->scenario = cell_scenario(c, scope, m->seed);
}

/* A crash point names nodes after the workflow; a generated name is
 * different in every run, so it becomes a glob. */
static char *portable_crash_point(const struct workflow *wf, const char *point) {
  const char *at = wf->generate_name != NULL ? strstr(point, wf->name) : NULL;
  if (at == NULL)
    return xstrdup(point);
  return xasprintf("%.*s*%s", (int)(at - point), point, at + strlen(wf->name));
}

static void build_cells(struct matrix *m, const struct workflow *wf, struct selection *sel) {
  struct step_list steps = {0};
  walk_steps(wf, workflow_find_template(wf, wf->entrypoint), wf->name, false, &steps, 0);
  size_t n_main = steps.n;
  if (wf->on_exit != NULL) {
    char *handler = xasprintf("%s.onExit", wf->name);
    walk_steps(wf, workflow_find_template(wf, wf->on_exit), handler, true, &steps, 0);
    free(handler);
  }
  size_t index = 0;
  for (size_t s = 0; s < steps.n; s++)
    for (enum cell_kind k = CELL_EXIT; k <= CELL_OOM; k++)
      add_cell(m, sel, &index, k, steps.v[s].target, steps.v[s].scope);
  char **points = NULL;
  size_t n_points = 0;
  crash_points_list(wf, &points, &n_points);
  for (size_t p = 0; p < n_points; p++) {
    char *point = portable_crash_point(wf, points[p]);
    for (enum cell_kind k = CELL_CRASH_RESTART; k <= CELL_CRASH_STAY_DOWN; k++)
      add_cell(m, sel, &index, k, point, NULL);
    free(point);
    free(points[p]);
  }
  free(points);
  /* Stop and terminate while the first step hangs: the workflow is surely
   * running when the shutdown comes. */
  if (n_main > 0) {
    add_cell(m, sel, &index, CELL_STOP, steps.v[0].target, NULL);
    add_cell(m, sel, &index, CELL_TERMINATE, steps.v[0].target, NULL);
  }
  m->cells_total = sel->position;
  step_list_clear(&steps);
}

/* ---- reading a cell's report ----------------------------------------- */

static char *json_str_dup(const json_t *v) {
  return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static void result_from_report(const json_t *report, struct cell_result *r) {
  const json_t *eh = json_object_get(report, "exitHandler");
  r->phase = json_str_dup(json_object_get(json_object_get(report, "status"), "phase"));
  r->saw = json_str_dup(json_object_get(eh, "workflowStatus"));
  r->by = json_str_dup(json_object_get(eh, "by"));
  r->runs = (int)json_integer_value(json_object_get(eh, "runs"));
  r->seed = (unsigned long long)json_integer_value(
      json_object_get(json_object_get(report, "run"), "seed"));
  const json_t *idem = json_object_get(report, "idempotency");
  r->idempotent = !json_is_true(json_object_get(idem, "conclusive")) ? "unknown"
                  : json_is_true(json_object_get(idem, "idempotent")) ? "yes"
                                                                      : "no";
  r->fired = true;
  const json_t *faults = json_object_get(report, "faults");
  for (size_t i = 0; i < json_array_size(faults); i++) {
    const json_t *f = json_array_get(faults, i);
    if (json_is_true(json_object_get(f, "fired")))
      continue;
    r->fired = false;
    if (r->note == NULL) {
      const char *asked = json_string_value(json_object_get(f, "asked"));
      const char *detail = json_string_value(json_object_get(f, "detail"));
      r->note = xasprintf("did not fire: %s", detail ? detail : asked ? asked : "?");
    }
  }
}

/* The last line a child wrote other than the scenario count, to say why
 * it produced no report. */
static char *log_tail(const char *path) {
  ep_error *err = NULL;
  char *text = read_text_file(path, &err);
  ep_error_free(&err);
  if (text == NULL)
    return NULL;
  char *found = NULL, *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    line += strspn(line, " \t");
    if (*line != '\0' && strncmp(line, "scenarios:", 10) != 0)
      found = line;
  }
  char *tail = found ? xstrdup(found) : NULL;
  free(text);
  return tail;
}

static json_t *cell_object(const struct matrix *m, const struct cell *c) {
  json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "index", (json_int_t)c->index,
                        "fault", c->label, "kind", kind_names[c->kind], "target", c->target,
                        "matrixWorkflow", m->workflow_path, "seed", (json_int_t)m->seed,
                        "scenarioText", c->scenario, "workflowText", m->workflow_text);
  if (o == NULL)
    abort();
  return o;
}

static const char *runs_word(int runs) { return runs == 1 ? "run" : "runs"; }

static void progress(struct matrix *m, const struct cell *done) {
  if (m->tty) {
    int64_t now = now_ms();
    if (done == NULL && now - m->last_draw_ms < 200)
      return;
    m->last_draw_ms = now;
    enum { WIDTH = 30 };
    size_t filled = m->n ? m->finished * WIDTH / m->n : WIDTH;
    char bar[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++)
      bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu cells, %zu running%s", bar, m->finished, m->n,
            m->running, m->interrupted ? ", interrupted: stopping" : "");
    return;
  }
  if (done == NULL)
    return;
  if (done->outcome == OUT_RAN)
    fprintf(stderr, "[%zu/%zu] cell-%03zu %s: workflow %s, exit handler %d %s (%s)%s\n",
            m->finished, m->n, done->index, done->label, done->res.phase ? done->res.phase : "?",
            done->res.runs, runs_word(done->res.runs), done->res.by ? done->res.by : "none",
            done->res.fired ? "" : ", fault did not fire");
  else
    fprintf(stderr, "[%zu/%zu] cell-%03zu %s: %s%s%s\n", m->finished, m->n, done->index,
            done->label, outcome_names[done->outcome], done->res.note ? ": " : "",
            done->res.note ? done->res.note : "");
}

/* A finished child: its report (extended with the cell, for replay), or why there is none. */
static void collect_cell(struct matrix *m, struct cell *c) {
  c->state = CELL_DONE;
  m->running--;
  m->finished++;
  json_error_t jerr;
  json_t *report = json_load_file(c->report_path, 0, &jerr);
  char *log = xasprintf("%s/cell-%03zu.log", m->tmpdir, c->index);
  if (report != NULL && c->outcome == OUT_NONE) {
    c->outcome = OUT_RAN;
    result_from_report(report, &c->res);
    json_object_set_new(report, "cell", cell_object(m, c));
    ep_error *err = NULL;
    if (report_write_object(report, c->report_path, &err) < 0) {
      c->outcome = OUT_ERROR;
      c->res.note = xstrdup(err->message);
      ep_error_free(&err);
    }
  } else if (c->outcome == OUT_NONE) {
    char *tail = log_tail(log);
    int code = WIFEXITED(c->wait_status) ? WEXITSTATUS(c->wait_status) : -1;
    /* 3 without a report: the machine lacks what the fault needs. */
    c->outcome = code == EP_EXIT_ENVIRONMENT ? OUT_SKIPPED : OUT_ERROR;
    if (WIFSIGNALED(c->wait_status))
      c->res.note = xasprintf("exitprobe run killed by SIG%s%s%s",
                              sigabbrev_np(WTERMSIG(c->wait_status)), tail ? ": " : "",
                              tail ? tail : "");
    else
      c->res.note = xasprintf("exitprobe run exited %d without a report%s%s", code,
                              tail ? ": " : "", tail ? tail : "");
    free(tail);
  } else if (c->outcome == OUT_TIMED_OUT) {
    c->res.note = xasprintf("no result within %gs: killed", (double)m->timeout_ms / 1000);
  }
  free(log);
  json_decref(report);
  progress(m, c);
}

/* ---- running the cells ------------------------------------------------ */

static int spawn_cell(struct matrix *m, struct cell *c, ep_error **err) {
  char *scenario = xasprintf("%s/cell-%03zu.yaml", m->tmpdir, c->index);
  char *log = xasprintf("%s/cell-%03zu.log", m->tmpdir, c->index);
  int rc = write_text_file(scenario, c->scenario, err);
  /* A report left by an earlier matrix must not pass for this run's. */
  if (rc == 0 && unlink(c->report_path) < 0 && errno != ENOENT)
    rc = ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot remove %s", c->report_path);
  if (rc < 0)
    goto out;
  char *argv[] = {"exitprobe", "run", "-q", "--color", "never", "--report", c->report_path,
                  scenario, m->idempotency ? "--idempotency" : NULL, NULL};
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    rc = ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "fork");
    goto out;
  }
  if (pid == 0) {
    /* Its own group first, so that a signal meant for it can reach its
     * controller and steps, and a terminal's Ctrl-C reaches only us. */
    setpgid(0, 0);
    /* Should the matrix itself be killed outright, its cells stop (a
     * stopped run cleans up after itself) instead of running on unowned. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != parent)
      _exit(EP_EXIT_INTERNAL);
    int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
      _exit(EP_EXIT_INTERNAL);
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  setpgid(pid, pid); /* EACCES once it exec'd: it did it itself */
  c->pid = pid;
  c->state = CELL_RUNNING;
  c->deadline_ms = now_ms() + m->timeout_ms;
  m->running++;
out:
  free(scenario);
  free(log);
  return rc;
}

/* Escalation, for a timed-out cell and for an interrupted matrix: the first
 * SIGTERM stops the workflow (as argo stop), the second terminates it, and
 * SIGKILL ends whatever is left in the group. */
static void escalate(struct cell *c, int64_t now) {
  int sig = c->kills < 2 ? SIGTERM : SIGKILL;
  kill(-c->pid, sig);
  c->kills++;
  c->next_kill_ms = c->kills == 1 ? now + STOP_AGAIN_MS
                    : c->kills == 2 ? now + KILL_AFTER_MS
                                    : 0;
}

static struct cell *cell_by_pid(struct matrix *m, pid_t pid) {
  for (size_t i = 0; i < m->n; i++)
    if (m->cells[i].state == CELL_RUNNING && m->cells[i].pid == pid)
      return &m->cells[i];
  return NULL;
}

/* Reaps cells and, being a subreaper, whatever they left behind. */
static void reap(struct matrix *m) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    struct cell *c = cell_by_pid(m, pid);
    if (c == NULL)
      continue;
    /* Nothing of a finished run may outlive it. */
    kill(-pid, SIGKILL);
    c->wait_status = status;
    collect_cell(m, c);
  }
}

static void interrupt_all(struct matrix *m, int sig) {
  int64_t now = now_ms();
  bool again = m->interrupted != 0;
  if (!again)
    m->interrupted = sig;
  for (size_t i = 0; i < m->n; i++) {
    struct cell *c = &m->cells[i];
    if (c->state != CELL_RUNNING)
      continue;
    c->outcome = OUT_INTERRUPTED;
    if (again) { /* a second interrupt: no more patience */
      kill(-c->pid, SIGKILL);
      c->kills = 3;
      c->next_kill_ms = 0;
    } else if (c->kills == 0) {
      escalate(c, now);
    }
  }
}

static void check_clocks(struct matrix *m) {
  int64_t now = now_ms();
  for (size_t i = 0; i < m->n; i++) {
    struct cell *c = &m->cells[i];
    if (c->state != CELL_RUNNING)
      continue;
    if (c->kills == 0 && now >= c->deadline_ms) {
      c->outcome = OUT_TIMED_OUT;
      escalate(c, now);
    } else if (c->next_kill_ms != 0 && now >= c->next_kill_ms) {
      escalate(c, now);
    }
  }
}

static int poll_timeout(const struct matrix *m) {
  int64_t now = now_ms(), next = now + (m->tty ? 200 : 60000);
  for (size_t i = 0; i < m->n; i++) {
    const struct cell *c = &m->cells[i];
    if (c->state != CELL_RUNNING)
      continue;
    int64_t t = c->kills == 0 ? c->deadline_ms : c->next_kill_ms;
    if (t != 0 && t < next)
      next = t;
  }
  return next <= now ? 0 : (int)(next - now);
}

/* Children of ours that are no cell: what a cell's run left (its
 * controller, say) after the run itself was killed.  Reparented to us as
 * the subreaper; killed and reaped so that nothing outlives the matrix. */
static void kill_leftovers(void) {
  for (int round = 0; round < 50; round++) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    if (f == NULL)
      return;
    long pid;
    int found = 0;
    while (fscanf(f, "%ld", &pid) == 1) {
      kill((pid_t)pid, SIGKILL);
      found++;
    }
    fclose(f);
    if (found == 0)
      return;
    usleep(10000);
  }
}

static int run_cells(struct matrix *m, ep_error **err) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, &m->old_mask);
  m->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (m->sigfd < 0) {
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "signalfd");
  }
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int rc = 0;
  size_t next = 0;
  for (;;) {
    while (rc == 0 && !m->interrupted && next < m->n && (long)m->running < m->jobs)
      if (spawn_cell(m, &m->cells[next++], err) < 0) {
        rc = -1;
        interrupt_all(m, SIGTERM);
        m->interrupted = 0;
      }
    if (m->running == 0 && (rc < 0 || m->interrupted || next >= m->n))
      break;
    struct pollfd pfd = {.fd = m->sigfd, .events = POLLIN};
    if (poll(&pfd, 1, poll_timeout(m)) > 0) {
      struct signalfd_siginfo si;
      while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
          interrupt_all(m, (int)si.ssi_signo);
    }
    reap(m);
    check_clocks(m);
    progress(m, NULL);
  }
  if (m->tty)
    fputs("\r\033[K", stderr);
  kill_leftovers();
  close(m->sigfd);
  m->sigfd = -1;
  sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
  return rc;
}

/* ---- the table and the summary ---------------------------------------- */

static bool handler_once(const struct cell *c) {
  return c->outcome == OUT_RAN && c->res.runs == 1;
}

static int label_width(const struct matrix *m) {
  int w = 5;
  for (size_t i = 0; i < m->n; i++) {
    int l = (int)strlen(m->cells[i].label);
    if (l > w)
      w = l;
  }
  return w;
}

static void print_header(FILE *out, int w) {
  fprintf(out, "  %-4s  %-*s  %-9s  %-9s  %-4s  %-10s  %-10s  %s\n", "CELL", w, "FAULT", "WORKFLOW",
          "SAW", "RUNS", "BY", "IDEMPOTENT", "NOTE");
}

/* One row; the marker column is '!' when the handler did not run exactly
 * once and '?' when the cell has no result, colour or not. */
static void print_row(FILE *out, const struct cell *c, int w, bool color) {
  bool ran = c->outcome == OUT_RAN;
  char mark = !ran ? '?' : handler_once(c) ? ' ' : '!';
  const char *on = "";
  if (color && mark != ' ')
    on = !ran ? "\033[35m" : c->res.runs == 0 ? "\033[1;31m" : "\033[1;33m";
  char runs[16];
  snprintf(runs, sizeof(runs), "%d", c->res.runs);
  const char *by = c->res.by && strcmp(c->res.by, "none") != 0 ? c->res.by : "-";
  const char *note = c->res.note ? c->res.note : "";
  if (!ran && c->res.note == NULL)
    note = outcome_names[c->outcome];
  fprintf(out, "%s%c %03zu   %-*s  %-9s  %-9s  %-4s  %-10s  %-*s%s%s%s\n", on, mark, c->index, w,
          c->label, ran && c->res.phase ? c->res.phase : "-", ran && c->res.saw ? c->res.saw : "-",
          ran ? runs : "-", ran ? by : "-", *note ? 10 : 0,
          ran && c->res.idempotent ? c->res.idempotent : "unknown", *note ? "  " : "", note,
          *on ? "\033[0m" : "");
}

static void print_table(const struct matrix *m) {
  int w = label_width(m);
  print_header(stdout, w);
  size_t once = 0, never = 0, twice = 0, no_result = 0, not_fired = 0, shown = 0;
  for (size_t i = 0; i < m->n; i++) {
    const struct cell *c = &m->cells[i];
    if (c->state != CELL_DONE || c->outcome == OUT_INTERRUPTED)
      continue;
    print_row(stdout, c, w, m->color);
    shown++;
    if (c->outcome != OUT_RAN)
      no_result++;
    else if (c->res.runs == 1)
      once++;
    else if (c->res.runs == 0)
      never++;
    else
      twice++;
    if (c->outcome == OUT_RAN && !c->res.fired)
      not_fired++;
  }
  printf("\n%zu cell%s: exit handler once in %zu, never in %zu, more than once in %zu", shown,
         shown == 1 ? "" : "s", once, never, twice);
  if (no_result)
    printf(", no result in %zu", no_result);
  if (not_fired)
    printf("; the fault did not fire in %zu", not_fired);
  printf("\n");
  if (m->interrupted)
    printf("interrupted: %zu of %zu cells not finished\n", m->n - shown, m->n);
}

static json_t *summary_cell(const struct matrix *m, const struct cell *c) {
  json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "index", (json_int_t)c->index, "fault", c->label,
                        "kind", kind_names[c->kind], "target", c->target);
  bool ran = c->outcome == OUT_RAN;
  json_object_set_new(o, "outcome", json_string(outcome_names[c->outcome]));
  json_object_set_new(o, "workflowPhase", ran && c->res.phase ? json_string(c->res.phase)
                                                              : json_null());
  json_object_set_new(o, "workflowStatusSeen", ran && c->res.saw ? json_string(c->res.saw)
                                                                 : json_null());
  json_object_set_new(o, "handlerRuns", ran ? json_integer(c->res.runs) : json_null());
  json_object_set_new(o, "by", json_string(ran && c->res.by ? c->res.by : "none"));
  json_object_set_new(o, "idempotent", json_string(ran && c->res.idempotent ? c->res.idempotent
                                                                            : "unknown"));
  json_object_set_new(o, "fired", json_boolean(ran && c->res.fired));
  if (c->res.note != NULL)
    json_object_set_new(o, "note", json_string(c->res.note));
  char *base = xasprintf("cell-%03zu.json", c->index);
  json_object_set_new(o, "report", ran ? json_string(base) : json_null());
  free(base);
  json_object_set_new(o, "seed", json_integer((json_int_t)(ran ? c->res.seed : m->seed)));
  return o;
}

/* Identifies the workflow a summary was made from, so that `report --merge`
 * refuses shards of different files; not a defence against forgery. */
static char *workflow_digest(const char *text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    h = (h ^ *p) * 0x100000001b3ULL;
  return xasprintf("fnv1a64:%016llx", (unsigned long long)h);
}

static int write_summary(const struct matrix *m, const char *faults, const char *shard,
                         ep_error **err) {
  json_t *cells = json_array();
  size_t finished = 0;
  for (size_t i = 0; i < m->n; i++) {
    const struct cell *c = &m->cells[i];
    if (c->state != CELL_DONE || c->outcome == OUT_INTERRUPTED)
      continue;
    json_array_append_new(cells, summary_cell(m, c));
    finished++;
  }
  char *digest = workflow_digest(m->workflow_text);
  json_t *root = json_pack(
      "{s:s, s:s, s:s, s:s, s:I, s:s, s:s?, s:I, s:I, s:I, s:I, s:b, s:b, s:o}", "apiVersion",
      REPORT_API_VERSION, "kind", "MatrixSummary", "workflow", m->workflow_path, "workflowDigest",
      digest, "seed", (json_int_t)m->seed, "faults", faults, "shard", shard, "jobs",
      (json_int_t)m->jobs, "cellsTotal", (json_int_t)m->cells_total, "cellsSelected",
      (json_int_t)m->n, "cellsFinished", (json_int_t)finished, "complete", (int)(finished == m->n),
      "interrupted", (int)(m->interrupted != 0), "cells", cells);
  free(digest);
  if (root == NULL)
    abort();
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  size_t len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  text[len] = '\0';
  char *path = xasprintf("%s/summary.json", m->report_dir);
  int rc = atomic_write_file(path, text, len, err);
  free(path);
  free(text);
  return rc;
}

static bool name_index(const char *const *names, size_t n, const char *name, size_t *out) {
  for (size_t i = 0; name != NULL && i < n; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = i;
      return true;
    }
  return false;
}

/* The inverse of summary_cell, for a summary read back. */
static int cell_from_summary(const char *path, const json_t *o, struct cell *c, ep_error **err) {
  size_t kind = 0, outcome = 0;
  const char *label = json_string_value(json_object_get(o, "fault"));
  if (!json_is_integer(json_object_get(o, "index")) || label == NULL ||
      !name_index(kind_names, CELL_KINDS, json_string_value(json_object_get(o, "kind")), &kind) ||
      !name_index(outcome_names, sizeof(outcome_names) / sizeof(outcome_names[0]),
                  json_string_value(json_object_get(o, "outcome")), &outcome))
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "a cell without a valid index, fault, kind or outcome: not a summary "
                       "written by 'exitprobe matrix'");
  c->index = (size_t)json_integer_value(json_object_get(o, "index"));
  c->kind = (enum cell_kind)kind;
  c->label = xstrdup(label);
  c->target = json_str_dup(json_object_get(o, "target"));
  c->state = CELL_DONE;
  c->outcome = (enum cell_outcome)outcome;
  c->res.phase = json_str_dup(json_object_get(o, "workflowPhase"));
  c->res.saw = json_str_dup(json_object_get(o, "workflowStatusSeen"));
  c->res.by = json_str_dup(json_object_get(o, "by"));
  c->res.runs = (int)json_integer_value(json_object_get(o, "handlerRuns"));
  c->res.fired = json_is_true(json_object_get(o, "fired"));
  c->res.note = json_str_dup(json_object_get(o, "note"));
  return 0;
}

int matrix_summary_table(const char *path, const json_t *summary, int color, bool require_once,
                         ep_error **err) {
  const json_t *cells = json_object_get(summary, "cells");
  struct matrix m = {.sigfd = -1, .color = cli_want_color(color)};
  m.cells = xcalloc(json_array_size(cells) + 1, sizeof(*m.cells));
  int status = -1;
  for (size_t i = 0; i < json_array_size(cells); i++, m.n++)
    if (cell_from_summary(path, json_array_get(cells, i), &m.cells[i], err) < 0)
      goto out;
  print_table(&m);
  status = matrix_status(&m, require_once);
  /* Cells an interrupted matrix did not finish have no result. */
  size_t total = (size_t)json_integer_value(json_object_get(summary, "cellsSelected"));
  if (m.n < total) {
    printf("incomplete: %zu of %zu cells not finished\n", total - m.n, total);
    if (status == EP_EXIT_OK)
      status = EP_EXIT_ENVIRONMENT;
  }
out:
  matrix_free(&m);
  return status;
}

/* ---- command lines ------------------------------------------------------ */

static void print_matrix_usage(FILE *out) {
  fputs("Usage: exitprobe matrix [OPTIONS] WORKFLOW.yaml\n"
        "\n"
        "Run the workflow under every fault it can meet, one cell per fault, and print\n"
        "whether, how often and by whom its exit handler ran:\n"
        "  every step node (the exit handler's too) under exit 1 (exit), SIGKILL (sigkill),\n"
        "  SIGTERM (sigterm), a hang past a deadline (deadline) and a 16Mi memory limit\n"
        "  (oom); every controller crash point (exitprobe crash-points) under restart,\n"
        "  lose-state and stay-down (crash: all three); stop and terminate while the\n"
        "  first step runs.  Each cell is an 'exitprobe run' of a generated scenario.\n"
        "\n"
        "Options:\n"
        "      --faults LIST        only these families, comma-separated: exit, sigkill,\n"
        "                           sigterm, deadline, oom, crash, restart, lose-state,\n"
        "                           stay-down, stop, terminate, steps (the first five), all\n"
        "      --shard I/N          only the cells whose position in the selection,\n"
        "                           modulo N, is I-1 (spreads a matrix over N CI jobs;\n"
        "                           'exitprobe report --merge' joins their summaries)\n"
        "  -j, --jobs N             cells run at once (default: online CPUs)\n"
        "      --report-dir DIR     DIR/cell-NNN.json per cell and DIR/summary.json\n"
        "      --require-once       exit 1 when a cell (terminate excepted) did not run\n"
        "                           the exit handler exactly once\n"
        "      --seed N             seed recorded in every cell (default 0)\n"
        "      --timeout DURATION   give up on a cell after this long (default 10m)\n"
        "      --color WHEN         auto (default), always or never; NO_COLOR is honoured\n"
        "      --list               print the selected cells and run nothing\n"
        "      --idempotency        every cell also runs the exit handler a second time and\n"
        "                           compares the workspace: the IDEMPOTENT column says\n"
        "                           yes/no (off by default: it costs a second handler run)\n"
        "  -h, --help               show this help\n"
        "\n"
        "Rows where the exit handler did not run exactly once are marked '!'; rows\n"
        "without a result (timed out, error) '?'.  'exitprobe replay DIR/cell-NNN.json'\n"
        "runs one cell again.  Ctrl-C stops the running cells, keeps the finished ones\n"
        "and writes a partial summary.\n"
        "\n"
        "Exit status: 0 every cell ran, whatever it found; 1 --require-once and a cell\n"
        "ran the handler other than once; 2 bad input or usage; 3 a cell timed out or\n"
        "the machine lacks what its fault needs; 4 the selection is empty; 70 a cell\n"
        "could not run (internal error); 130/143 interrupted by SIGINT/SIGTERM.\n",
        out);
}

static int parse_faults(const char *list, unsigned *kinds, ep_error **err) {
  char *copy = xstrdup(list), *save = NULL;
  *kinds = 0;
  int rc = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    unsigned bits = 0;
    if (strcmp(tok, "all") == 0)
      bits = (1u << CELL_KINDS) - 1;
    else if (strcmp(tok, "crash") == 0)
      bits = (1u << CELL_CRASH_RESTART) | (1u << CELL_CRASH_LOSE_STATE) |
             (1u << CELL_CRASH_STAY_DOWN);
    else if (strcmp(tok, "steps") == 0)
      bits = (1u << CELL_CRASH_RESTART) - 1;
    for (enum cell_kind k = 0; k < CELL_KINDS && bits == 0; k++)
      if (strcmp(tok, kind_names[k]) == 0)
        bits = 1u << k;
    if (bits == 0) {
      rc = ep_error_set(err, EP_EXIT_USAGE,
                        "--faults: unknown fault '%s' (exit, sigkill, sigterm, deadline, oom, "
                        "crash, restart, lose-state, stay-down, stop, terminate, steps, all)",
                        tok);
      break;
    }
    *kinds |= bits;
  }
  free(copy);
  if (rc == 0 && *kinds == 0)
    rc = ep_error_set(err, EP_EXIT_USAGE, "--faults: empty list");
  return rc;
}

static int parse_shard(const char *text, unsigned *shard, unsigned *n, ep_error **err) {
  char tail;
  if (sscanf(text, "%u/%u%c", shard, n, &tail) != 2 || *n == 0 || *shard == 0 || *shard > *n)
    return ep_error_set(err, EP_EXIT_USAGE, "--shard: expected I/N with 1 <= I <= N, got '%s'",
                        text);
  return 0;
}

static int parse_long(const char *opt, const char *text, long min, long *out, ep_error **err) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min)
    return ep_error_set(err, EP_EXIT_USAGE, "%s: expected an integer >= %ld, got '%s'", opt, min,
                        text);
  *out = v;
  return 0;
}

static int parse_timeout(const char *text, int64_t *ms, ep_error **err) {
  if (scenario_parse_duration(text, ms) < 0 || *ms <= 0)
    return ep_error_set(err, EP_EXIT_USAGE, "--timeout: '%s' is not a duration (e.g. 30s, 5m)",
                        text);
  return 0;
}

struct matrix_args {
  const char *workflow;
  const char *faults;
  const char *shard;
  const char *report_dir;
  unsigned kinds, shard_i, shard_n;
  long jobs, seed;
  int64_t timeout_ms;
  int color;
  bool require_once, list, idempotency;
};

static int parse_matrix_args(int argc, char **argv, struct matrix_args *a, ep_error **err) {
  enum { OPT_FAULTS = 256, OPT_SHARD, OPT_REPORT_DIR, OPT_REQUIRE_ONCE, OPT_SEED, OPT_TIMEOUT,
         OPT_COLOR, OPT_LIST, OPT_IDEMPOTENCY };
  static const struct option longopts[] = {
      {"faults", required_argument, NULL, OPT_FAULTS},
      {"shard", required_argument, NULL, OPT_SHARD},
      {"jobs", required_argument, NULL, 'j'},
      {"report-dir", required_argument, NULL, OPT_REPORT_DIR},
      {"require-once", no_argument, NULL, OPT_REQUIRE_ONCE},
      {"seed", required_argument, NULL, OPT_SEED},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"color", required_argument, NULL, OPT_COLOR},
      {"list", no_argument, NULL, OPT_LIST},
      {"idempotency", no_argument, NULL, OPT_IDEMPOTENCY},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  a->kinds = (1u << CELL_KINDS) - 1;
  a->faults = "all";
  a->jobs = sysconf(_SC_NPROCESSORS_ONLN);
  if (a->jobs < 1)
    a->jobs = 1;
  a->timeout_ms = DEFAULT_TIMEOUT_MS;
  a->color = -1;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "j:h", longopts, NULL)) != -1) {
    int rc = 0;
    switch (opt) {
    case OPT_FAULTS:
      a->faults = optarg;
      rc = parse_faults(optarg, &a->kinds, err);
      break;
    case OPT_SHARD:
      a->shard = optarg;
      rc = parse_shard(optarg, &a->shard_i, &a->shard_n, err);
      break;
    case 'j':
      rc = parse_long("-j", optarg, 1, &a->jobs, err);
      break;
    case OPT_REPORT_DIR:
      a->report_dir = optarg;
      break;
    case OPT_REQUIRE_ONCE:
      a->require_once = true;
      break;
    case OPT_SEED:
      rc = parse_long("--seed", optarg, 0, &a->seed, err);
      break;
    case OPT_TIMEOUT:
      rc = parse_timeout(optarg, &a->timeout_ms, err);
      break;
    case OPT_COLOR:
      rc = cli_parse_color(optarg, &a->color, err);
      break;
    case OPT_LIST:
      a->list = true;
      break;
    case OPT_IDEMPOTENCY:
      a->idempotency = true;
      break;
    case 'h':
      return 1;
    default:
      if (optopt != 0 && optopt < 256)
        return ep_error_set(err, EP_EXIT_USAGE, "unknown or incomplete option '-%c'", optopt);
      return ep_error_set(err, EP_EXIT_USAGE, "unknown or incomplete option '%s'",
                          argv[optind - 1]);
    }
    if (rc < 0)
      return -1;
  }
  if (optind != argc - 1)
    return ep_error_set(err, EP_EXIT_USAGE,
                        "matrix needs exactly one workflow file (see exitprobe matrix --help)");
  a->workflow = argv[optind];
  return 0;
}

static void matrix_free(struct matrix *m) {
  for (size_t i = 0; i < m->n; i++)
    cell_clear(&m->cells[i]);
  free(m->cells);
  free(m->workflow_text);
  if (m->tmpdir != NULL) {
    nftw(m->tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(m->tmpdir);
  }
}

/* The temporary directory with the workflow copy every cell's scenario
 * names, and the report path of each cell. */
static int matrix_prepare(struct matrix *m, ep_error **err) {
  char dir[] = "/tmp/exitprobe-matrix-XXXXXX";
  if (mkdtemp(dir) == NULL)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create a directory in /tmp");
  m->tmpdir = xstrdup(dir);
  char *wf = xasprintf("%s/workflow.yaml", m->tmpdir);
  int rc = write_text_file(wf, m->workflow_text, err);
  free(wf);
  if (rc < 0)
    return -1;
  if (m->report_dir != NULL && mkdir(m->report_dir, 0755) < 0 && errno != EEXIST)
    return ep_error_set_errno(err, EP_EXIT_USAGE, errno, "--report-dir: cannot create %s",
                              m->report_dir);
  for (size_t i = 0; i < m->n; i++)
    m->cells[i].report_path = xasprintf("%s/cell-%03zu.json",
                                        m->report_dir ? m->report_dir : m->tmpdir,
                                        m->cells[i].index);
  return 0;
}

static int matrix_status(const struct matrix *m, bool require_once) {
  if (m->interrupted)
    return m->interrupted == SIGTERM ? EP_EXIT_SIGTERM : EP_EXIT_SIGINT;
  bool error = false, violation = false, undecided = false;
  for (size_t i = 0; i < m->n; i++) {
    const struct cell *c = &m->cells[i];
    if (c->outcome == OUT_ERROR)
      error = true;
    else if (c->outcome != OUT_RAN)
      undecided = true;
    else if (c->kind != CELL_TERMINATE && c->res.runs != 1)
      violation = true;
  }
  return error                        ? EP_EXIT_INTERNAL
         : require_once && violation  ? EP_EXIT_FAILED
         : undecided                  ? EP_EXIT_ENVIRONMENT
                                      : EP_EXIT_OK;
}

int cli_matrix(int argc, char **argv) {
  ep_error *err = NULL;
  struct matrix_args a = {0};
  struct matrix m = {.sigfd = -1};
  struct workflow *wf = NULL;
  int status = EP_EXIT_INTERNAL;
  int prc = parse_matrix_args(argc, argv, &a, &err);
  if (prc > 0) {
    print_matrix_usage(stdout);
    return EP_EXIT_OK;
  }
  if (prc < 0)
    goto fail;
  if (workflow_load_file(a.workflow, NULL, 0, &wf, &err) < 0)
    goto fail;
  m.workflow_text = read_text_file(a.workflow, &err);
  if (m.workflow_text == NULL)
    goto fail;
  m.workflow_path = a.workflow;
  m.report_dir = a.report_dir;
  m.jobs = a.jobs;
  m.timeout_ms = a.timeout_ms;
  m.seed = (unsigned long long)a.seed;
  m.idempotency = a.idempotency;
  m.color = cli_want_color(a.color);
  m.tty = isatty(STDERR_FILENO);
  struct selection sel = {.kinds = a.kinds, .shard = a.shard_i, .n_shards = a.shard_n};
  build_cells(&m, wf, &sel);
  if (m.n == 0) {
    fprintf(stderr, "exitprobe: matrix: no cell selected (%s%s%s): nothing was exercised\n",
            a.faults, a.shard ? ", shard " : "", a.shard ? a.shard : "");
    status = 4;
    goto out;
  }
  if (a.list) {
    for (size_t i = 0; i < m.n; i++)
      printf("%03zu  %s\n", m.cells[i].index, m.cells[i].label);
    status = EP_EXIT_OK;
    goto out;
  }
  if (matrix_prepare(&m, &err) < 0)
    goto fail;
  if (wf->on_exit == NULL)
    fprintf(stderr, "exitprobe: %s declares no exit handler (spec.onExit): no cell can run one\n",
            a.workflow);
  fprintf(stderr, "exitprobe: matrix of %s: %zu cell%s, %ld at a time\n", wf->name, m.n,
          m.n == 1 ? "" : "s", (size_t)m.jobs < m.n ? m.jobs : (long)m.n);
  int rc = run_cells(&m, &err);
  print_table(&m);
  if (m.report_dir != NULL) {
    ep_error *werr = NULL;
    if (write_summary(&m, a.faults, a.shard, &werr) < 0) {
      ep_error_print(werr, stderr);
      ep_error_free(&werr);
      if (rc == 0)
        rc = -1;
    } else {
      printf("reports: %s/cell-NNN.json, summary: %s/summary.json\n", m.report_dir, m.report_dir);
    }
  }
  if (rc < 0 && err != NULL)
    goto fail;
  status = rc < 0 ? EP_EXIT_INTERNAL : matrix_status(&m, a.require_once);
  goto out;
fail:
  ep_error_print(err, stderr);
  status = err ? err->status : EP_EXIT_INTERNAL;
out:
  ep_error_free(&err);
  workflow_free(wf);
  matrix_free(&m);
  return status;
}

/* ---- replay -------------------------------------------------------------- */

static void print_replay_usage(FILE *out) {
  fputs("Usage: exitprobe replay [OPTIONS] REPORT.json\n"
        "\n"
        "Run one cell of an 'exitprobe matrix' again, alone: the same workflow text,\n"
        "seed and fault schedule, taken from the cell's report (DIR/cell-NNN.json).\n"
        "Prints the cell's row as recorded and as replayed.\n"
        "\n"
        "Options:\n"
        "  -r, --report FILE        keep the replay's report (replayable in turn)\n"
        "      --timeout DURATION   give up after this long (default 10m)\n"
        "      --color WHEN         auto (default), always or never; NO_COLOR is honoured\n"
        "  -h, --help               show this help\n"
        "\n"
        "Exit status: 0 the replay gave the recorded row; 1 it differs; 2 bad input (not\n"
        "a matrix cell's report); 3 timed out or a capability is missing; 70 internal\n"
        "error; 130/143 interrupted.\n",
        out);
}

static bool same_str(const char *x, const char *y) {
  return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static bool same_result(const struct cell_result *x, const struct cell_result *y) {
  return same_str(x->phase, y->phase) && same_str(x->saw, y->saw) && same_str(x->by, y->by) &&
         x->runs == y->runs && x->fired == y->fired &&
         same_str(x->idempotent, y->idempotent);
}

/* The cell a report was made for, or a usage error naming what is missing. */
static int cell_from_report(const char *path, const json_t *report, struct matrix *m,
                            struct cell *c, ep_error **err) {
  const json_t *cell = json_object_get(report, "cell");
  const char *scenario = json_string_value(json_object_get(cell, "scenarioText"));
  const char *workflow = json_string_value(json_object_get(cell, "workflowText"));
  const char *kind = json_string_value(json_object_get(cell, "kind"));
  const char *label = json_string_value(json_object_get(cell, "fault"));
  const char *target = json_string_value(json_object_get(cell, "target"));
  const char *source = json_string_value(json_object_get(cell, "matrixWorkflow"));
  if (scenario == NULL || workflow == NULL || kind == NULL || label == NULL || target == NULL)
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "not the report of a matrix cell (no 'cell' with scenarioText and "
                       "workflowText): replay runs what 'exitprobe matrix --report-dir' wrote");
  c->kind = CELL_KINDS;
  for (enum cell_kind k = 0; k < CELL_KINDS; k++)
    if (strcmp(kind, kind_names[k]) == 0)
      c->kind = k;
  if (c->kind == CELL_KINDS)
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0, "cell.kind '%s' is unknown", kind);
  c->index = (size_t)json_integer_value(json_object_get(cell, "index"));
  c->label = xstrdup(label);
  c->target = xstrdup(target);
  c->scenario = xstrdup(scenario);
  m->workflow_text = xstrdup(workflow);
  m->workflow_path = source ? source : path;
  m->seed = (unsigned long long)json_integer_value(json_object_get(cell, "seed"));
  return 0;
}

int cli_replay(int argc, char **argv) {
  enum { OPT_TIMEOUT = 256, OPT_COLOR };
  static const struct option longopts[] = {
      {"report", required_argument, NULL, 'r'},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"color", required_argument, NULL, OPT_COLOR},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  ep_error *err = NULL;
  struct matrix m = {.sigfd = -1, .jobs = 1, .timeout_ms = DEFAULT_TIMEOUT_MS};
  struct cell recorded = {0};
  json_t *report = NULL;
  const char *keep = NULL;
  int color = -1, status = EP_EXIT_INTERNAL, opt;
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "r:h", longopts, NULL)) != -1) {
    int rc = 0;
    if (opt == 'r')
      keep = optarg;
    else if (opt == OPT_TIMEOUT)
      rc = parse_timeout(optarg, &m.timeout_ms, &err);
    else if (opt == OPT_COLOR)
      rc = cli_parse_color(optarg, &color, &err);
    else if (opt == 'h') {
      print_replay_usage(stdout);
      return EP_EXIT_OK;
    } else
      rc = ep_error_set(&err, EP_EXIT_USAGE, "unknown or incomplete option '%s'",
                        argv[optind - 1]);
    if (rc < 0)
      goto fail;
  }
  if (optind != argc - 1) {
    print_replay_usage(stderr);
    return EP_EXIT_USAGE;
  }
  const char *path = argv[optind];
  json_error_t jerr;
  report = json_load_file(path, 0, &jerr);
  if (report == NULL) {
    ep_error_at(&err, EP_EXIT_USAGE, path, jerr.line, jerr.column, "%s", jerr.text);
    goto fail;
  }
  m.cells = xcalloc(1, sizeof(*m.cells));
  m.n = 1;
  if (cell_from_report(path, report, &m, &m.cells[0], &err) < 0)
    goto fail;
  recorded.index = m.cells[0].index;
  recorded.kind = m.cells[0].kind;
  recorded.label = xstrdup(m.cells[0].label);
  recorded.state = CELL_DONE;
  recorded.outcome = OUT_RAN;
  result_from_report(report, &recorded.res);
  /* A cell recorded with the idempotency check is replayed with it. */
  m.idempotency = json_is_object(json_object_get(report, "idempotency"));
  m.color = cli_want_color(color);
  m.tty = isatty(STDERR_FILENO);
  if (matrix_prepare(&m, &err) < 0)
    goto fail;
  if (keep != NULL) {
    free(m.cells[0].report_path);
    m.cells[0].report_path = xstrdup(keep);
  }
  if (run_cells(&m, &err) < 0)
    goto fail;
  if (m.interrupted) {
    status = m.interrupted == SIGTERM ? EP_EXIT_SIGTERM : EP_EXIT_SIGINT;
    goto out;
  }
  const struct cell *c = &m.cells[0];
  int w = label_width(&m);
  print_header(stdout, w);
  print_row(stdout, c, w, m.color);
  if (c->outcome != OUT_RAN) {
    status = c->outcome == OUT_ERROR ? EP_EXIT_INTERNAL : EP_EXIT_ENVIRONMENT;
    goto out;
  }
  bool same = same_result(&recorded.res, &c->res);
  if (same) {
    printf("replayed cell %03zu of %s: same as recorded in %s\n", c->index, m.workflow_path, path);
  } else {
    printf("replayed cell %03zu of %s: differs from the recorded row:\n", c->index,
           m.workflow_path);
    print_row(stdout, &recorded, w, m.color);
  }
  if (keep != NULL)
    printf("report: %s\n", keep);
  status = same ? EP_EXIT_OK : EP_EXIT_FAILED;
  goto out;
fail:
  ep_error_print(err, stderr);
  status = err ? err->status : EP_EXIT_INTERNAL;
out:
  ep_error_free(&err);
  json_decref(report);
  cell_clear(&recorded);
  matrix_free(&m);
  return status;
}
