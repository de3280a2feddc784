/* bench_matrix: how many matrix cells per second `exitprobe matrix` runs.
 *
 *   bench_matrix [-e EXITPROBE] [-j JOBS] [-r REPEATS] [-o JSON] WORKFLOW...
 *
 * For each workflow (default: the seed), in the same run:
 *   cells       how many cells its full matrix has (`matrix --list`)
 *   baseline    one plain `exitprobe run -q` of the workflow, best of REPEATS:
 *               what a cell would cost if a cell were only a run
 *   -j1, -jN    the full matrix with 1 and with JOBS (default: online CPUs)
 *               cells at once, best of REPEATS; wall time and cells/s
 * and prints the per-cell cost against the baseline run (the harness's
 * own overhead per cell: scenario generation, the child process, the
 * report) and the speed-up of -jN over -j1.  Crash cells are dearer than a
 * plain run (a supervised controller, a ledger with fdatasync), so the
 * per-cell ratio is above 1 by design.  Never passes or fails on time:
 * the exit status is non-zero only when a run could not be carried out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run argv with stdout to `out_fd` (or /dev/null when -1) and stderr to
 * /dev/null; return the wall time, or a negative value when it failed. */
static double timed_run(char *const argv[], int out_fd, int *exit_status) {
  double start = now_seconds();
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
      _exit(127);
    dup2(out_fd >= 0 ? out_fd : null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    dup2(null_fd, STDIN_FILENO);
    execv(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  double wall = now_seconds() - start;
  *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return wall;
}

/* Number of cells `matrix --list` prints. */
static long count_cells(const char *exitprobe, const char *workflow) {
  char path[] = "/tmp/exitprobe-bench-matrix-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  unlink(path);
  char *argv[] = {(char *)exitprobe, "matrix", "--list", (char *)workflow, NULL};
  int status = 0;
  long cells = -1;
  if (timed_run(argv, fd, &status) >= 0 && status == 0) {
    cells = 0;
    char buf[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
      for (ssize_t i = 0; i < n; i++)
        cells += buf[i] == '\n';
  }
  close(fd);
  return cells;
}

/* Best wall time of `repeats` runs; negative when any run failed.  A plain
 * run exits 0 or 1 (the workflow failed: the seed's lesson); the matrix 0. */
static double best_of(char *const argv[], int repeats, bool plain_run) {
  double best = -1;
  for (int i = 0; i < repeats; i++) {
    int status = 0;
    double wall = timed_run(argv, -1, &status);
    bool ok = wall >= 0 && (status == 0 || (plain_run && status == 1));
    if (!ok) {
      fprintf(stderr, "bench_matrix: %s %s exited %d\n", argv[0], argv[1], status);
      return -1;
    }
    if (best < 0 || wall < best)
      best = wall;
  }
  return best;
}

struct matrix_figures {
  const char *workflow;
  long cells;
  double run_s, j1_s, jn_s;
};

static int bench_workflow(const char *exitprobe, const char *workflow, int jobs, int repeats,
                          struct matrix_figures *fig) {
  char jobs_text[16];
  snprintf(jobs_text, sizeof(jobs_text), "%d", jobs);
  char report[] = "/tmp/exitprobe-bench-matrix-report-XXXXXX";
  int fd = mkstemp(report);
  if (fd < 0)
    return -1;
  close(fd);
  char *run_argv[] = {(char *)exitprobe, "run", "-q", "--report", report, (char *)workflow, NULL};
  char *j1_argv[] = {(char *)exitprobe, "matrix", "-j", "1", (char *)workflow, NULL};
  char *jn_argv[] = {(char *)exitprobe, "matrix", "-j", jobs_text, (char *)workflow, NULL};
  fig->workflow = workflow;
  fig->cells = count_cells(exitprobe, workflow);
  fig->run_s = best_of(run_argv, repeats, true);
  fig->j1_s = best_of(j1_argv, repeats, false);
  fig->jn_s = best_of(jn_argv, repeats, false);
  unlink(report);
  return fig->cells > 0 && fig->run_s > 0 && fig->j1_s > 0 && fig->jn_s > 0 ? 0 : -1;
}

static void print_row(const struct matrix_figures *f, int jobs) {
  double per_cell_j1 = f->j1_s / (double)f->cells;
  printf("%-44s %5ld %8.1f %8.2f %8.1f %8.2f %8.1f %6.2fx %6.2fx\n", f->workflow, f->cells,
         f->run_s * 1e3, f->j1_s, (double)f->cells / f->j1_s, f->jn_s, (double)f->cells / f->jn_s,
         per_cell_j1 / f->run_s, f->j1_s / f->jn_s);
  (void)jobs;
}

static json_t *figures_json(const struct matrix_figures *f, int jobs) {
  return json_pack("{s:s, s:I, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:f}", "workflow", f->workflow,
                   "cells", (json_int_t)f->cells, "plain_run_ms", f->run_s * 1e3, "j1_seconds",
                   f->j1_s, "j1_cells_per_second", (double)f->cells / f->j1_s, "jobs", jobs,
                   "jn_seconds", f->jn_s, "jn_cells_per_second", (double)f->cells / f->jn_s,
                   "cell_vs_plain_run", f->j1_s / (double)f->cells / f->run_s,
                   "speedup_jn_over_j1", f->j1_s / f->jn_s);
}

int main(int argc, char **argv) {
  const char *exitprobe = "build/exitprobe", *json_out = NULL;
  int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN), repeats = 3, opt;
  while ((opt = getopt(argc, argv, "e:j:r:o:")) != -1) {
    switch (opt) {
    case 'e': exitprobe = optarg; break;
    case 'j': jobs = atoi(optarg); break;
    case 'r': repeats = atoi(optarg); break;
    case 'o': json_out = optarg; break;
    default:
      fprintf(stderr, "usage: bench_matrix [-e EXITPROBE] [-j JOBS] [-r REPEATS] [-o JSON] "
                      "WORKFLOW...\n");
      return 2;
    }
  }
  if (jobs < 1 || repeats < 1) {
    fprintf(stderr, "bench_matrix: -j and -r take a positive number\n");
    return 2;
  }
  const char *default_workflows[] = {"scenarios/exit-handler-workflow.yaml"};
  const char **workflows = optind < argc ? (const char **)argv + optind : default_workflows;
  size_t n_workflows = optind < argc ? (size_t)(argc - optind) : 1;

  printf("matrix throughput, best of %d; plain run = one `exitprobe run` of the workflow\n",
         repeats);
  printf("%-44s %5s %8s %8s %8s %8s %8s %7s %7s\n", "workflow", "cells", "run ms", "-j1 s",
         "cells/s", "-jN s", "cells/s", "cell/run", "jN/j1");
  json_t *rows = json_array();
  int status = 0;
  for (size_t i = 0; i < n_workflows; i++) {
    struct matrix_figures fig = {0};
    if (bench_workflow(exitprobe, workflows[i], jobs, repeats, &fig) < 0) {
      fprintf(stderr, "bench_matrix: %s could not be measured\n", workflows[i]);
      status = 1;
      continue;
    }
    print_row(&fig, jobs);
    json_array_append_new(rows, figures_json(&fig, jobs));
  }
  printf("-jN = -j %d; cell/run: a -j1 cell's wall time over one plain run (crash cells run a "
         "supervised controller and a synced ledger); jN/j1: the speed-up\n",
         jobs);
  if (json_out != NULL && json_dump_file(rows, json_out, JSON_INDENT(2)) != 0) {
    fprintf(stderr, "bench_matrix: cannot write %s\n", json_out);
    status = 1;
  }
  json_decref(rows);
  return status;
}
