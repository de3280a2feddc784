/* Shared helpers for the cmocka tests. */
#ifndef EXITPROBE_TEST_HELPERS_H
#define EXITPROBE_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

/* Path of the built exitprobe binary (EXITPROBE_BIN), the source root and tests/data. */
const char *test_exitprobe_bin(void);
const char *test_source_root(void);
const char *test_data_dir(void);
/* "<dir>/<name>" in a static rotating buffer set; fine for a few at a time. */
const char *test_path(const char *dir, const char *name);

/* Why the sandbox cannot be tested here, or NULL when it can (root, namespaces). */
const char *test_sandbox_unavailable(void);

/* Write text to a fresh file in a private temporary directory; returns its path (static buffer set). */
const char *test_write_temp(const char *name, const char *text);
/* A fresh private temporary directory (static buffer set). */
const char *test_temp_dir(void);

struct test_cmd_result {
  int exit_status;  /* exit code, or 128+signal */
  char *out;        /* stdout, NUL-terminated; free() */
  char *err;        /* stderr */
};
/* Run argv (argv[0] a path) with stdin from /dev/null; capture stdout/stderr. */
struct test_cmd_result test_run(char *const argv[]);
void test_cmd_result_free(struct test_cmd_result *r);

/* Read a whole file; NULL if missing.  free() the result. */
char *test_read_file(const char *path);

/* How many lines of text are exactly line. */
int test_count_lines_equal(const char *text, const char *line);

/* A one-fault scenario `{action: controller-crash, at: AT, then: THEN}` on
 * workflow (time scale 0.2), run as `exitprobe run -q --report REPORT
 * --run-dir RUN_DIR` with both in a fresh temporary directory. */
struct test_crash_cell {
  char report[1024];  /* exists when the run wrote a report */
  char run_dir[1024]; /* kept: the ledger, the workspace */
  struct test_cmd_result r;
};
void test_run_crash_cell(const char *workflow, const char *at, const char *then,
                         struct test_crash_cell *cell);

/* Number of cgroup directories under /sys/fs/cgroup (6 levels deep) whose
 * name starts with prefix; each one found is printed, for the failure. */
int test_count_cgroups_named(const char *prefix);

/* Number of processes on the host whose cmdline contains needle (excluding us). */
int test_count_processes(const char *needle);

#endif
