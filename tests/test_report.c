/* Unit tests for the reports: the JSON document (Argo's status field names,
 * omissions, exitCode as a string), the atomic write, and the text summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic_file.h"
#include "report_json.h"
#include "report_text.h"
#include "run_state.h"

#define WF "exit-handler-workflow"

/* ---- fixtures ------------------------------------------------------------ */

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  assert_non_null(d);
  return d;
}

static void set_outputs(struct wf_node *n, int exit_code, const char *log) {
  n->has_exit_code = true;
  n->exit_code = exit_code;
  node_append_log(n, log, strlen(log));
}

/* The seed workflow after a run: main step fails with exit 1, the onExit
 * handler runs and sees workflow.status = Failed. */
static struct run_state *seed_state(void) {
  struct run_state *st = run_state_new();
  st->workflow_name = xstrdup(WF);
  st->workflow_namespace = xstrdup("argo");
  st->workflow_uid = xstrdup("0b9c6f1e-0000-4000-8000-000000000001");
  st->workflow_file = xstrdup("seed/exit-handler-workflow.yaml");
  st->started_at_us = 1795750551000000;

  struct wf_node *entry = run_state_add_node(st, WF, NULL, NODE_STEPS, "main", NULL);
  struct wf_node *group = run_state_add_node(st, WF "[0]", "[0]", NODE_STEP_GROUP, NULL, entry->id);
  run_state_add_child(entry, group->id);
  struct wf_node *work = run_state_add_node(st, WF "[0].work", "work", NODE_POD, "do-work", entry->id);
  run_state_add_child(group, work->id);
  set_outputs(work, 1, "Doing work...\n");
  work->result = xstrdup("Doing work...");
  work->memory_peak = 1 << 20;
  node_finish(work, PHASE_FAILED, "main: Error (exit code 1)");

  char msg[128];
  snprintf(msg, sizeof(msg), "child '%s' failed", work->id);
  node_finish(group, PHASE_FAILED, msg);
  node_finish(entry, PHASE_FAILED, msg);

  struct wf_node *onexit = run_state_add_node(st, WF ".onExit", NULL, NODE_POD, "cleanup", NULL);
  onexit->hooked = true;
  set_outputs(onexit, 0,
              "Workflow status: Failed\nCleaning up resources...\nSending failure notification\n");
  node_finish(onexit, PHASE_SUCCEEDED, NULL);

  st->phase = PHASE_FAILED;
  st->message = xstrdup(msg);
  st->finished_at_us = st->started_at_us + 1200000;

  st->exit_handler.declared = true;
  st->exit_handler.ran = true;
  st->exit_handler.runs = 1;
  st->exit_handler.phase = PHASE_SUCCEEDED;
  st->exit_handler.workflow_status = xstrdup("Failed");
  st->exit_handler.workflow_failures = xstrdup("[{\"displayName\":\"work\",\"phase\":\"Failed\"}]");
  st->exit_handler.by = BY_CONTROLLER;
  st->exit_handler.node_id = xstrdup(onexit->id);

  st->cgroup_mode = xstrdup("hybrid");
  const char *ns[] = {"pid", "mount", "uts", "ipc"};
  st->namespaces = calloc(4, sizeof(char *));
  assert_non_null(st->namespaces);
  for (size_t i = 0; i < 4; i++)
    st->namespaces[i] = xstrdup(ns[i]);
  st->n_namespaces = 4;
  st->seccomp = true;
  run_state_add_note(st, "memory limits use the v1 memory controller");
  run_state_add_warning(st, "%s:%d:%d: field '%s' is ignored", "wf.yaml", 12, 7, "volumes");
  return st;
}

static char *node_id(const char *name) { return run_state_node_id(WF, name); }

static json_t *node_of(json_t *report, const char *name) {
  char *id = node_id(name);
  json_t *n = json_object_get(json_object_get(json_object_get(report, "status"), "nodes"), id);
  free(id);
  assert_non_null(n);
  return n;
}

static const char *str_at(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  assert_non_null(v);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

/* ---- JSON content -------------------------------------------------------- */

static void test_json_seed_fields(void **state) {
  (void)state;
  struct run_state *st = seed_state();
  json_t *r = report_build(st);

  assert_string_equal(str_at(r, "apiVersion"), "exitprobe/v1");
  assert_string_equal(str_at(r, "kind"), "Report");
  json_t *wf = json_object_get(r, "workflow");
  assert_string_equal(str_at(wf, "name"), WF);
  assert_string_equal(str_at(wf, "namespace"), "argo");
  assert_string_equal(str_at(wf, "file"), "seed/exit-handler-workflow.yaml");
  assert_non_null(json_object_get(wf, "uid"));

  json_t *status = json_object_get(r, "status");
  assert_string_equal(str_at(status, "phase"), "Failed");
  assert_string_equal(str_at(status, "startedAt"), "2026-11-27T03:35:51Z");
  assert_string_equal(str_at(status, "finishedAt"), "2026-11-27T03:35:52Z");
  assert_string_equal(str_at(status, "progress"), "1/2");
  char *work_id = node_id(WF "[0].work");
  char want[128];
  snprintf(want, sizeof(want), "child '%s' failed", work_id);
  assert_string_equal(str_at(status, "message"), want);

  /* Nodes keyed by id, in creation order. */
  json_t *nodes = json_object_get(status, "nodes");
  assert_int_equal(json_object_size(nodes), 4);
  const char *order[] = {WF, WF "[0]", WF "[0].work", WF ".onExit"};
  size_t i = 0;
  for (void *it = json_object_iter(nodes); it != NULL; it = json_object_iter_next(nodes, it), i++) {
    char *id = node_id(order[i]);
    assert_string_equal(json_object_iter_key(it), id);
    assert_string_equal(str_at(json_object_iter_value(it), "id"), id);
    assert_string_equal(str_at(json_object_iter_value(it), "name"), order[i]);
    free(id);
  }

  json_t *entry = node_of(r, WF);
  assert_string_equal(str_at(entry, "type"), "Steps");
  assert_string_equal(str_at(entry, "templateName"), "main");
  assert_string_equal(str_at(entry, "displayName"), WF);
  assert_null(json_object_get(entry, "boundaryID"));
  assert_null(json_object_get(entry, "podName"));
  assert_null(json_object_get(entry, "outputs"));
  char *group_id = node_id(WF "[0]");
  json_t *children = json_object_get(entry, "children");
  assert_int_equal(json_array_size(children), 1);
  assert_string_equal(json_string_value(json_array_get(children, 0)), group_id);

  json_t *group = node_of(r, WF "[0]");
  assert_string_equal(str_at(group, "type"), "StepGroup");
  assert_string_equal(str_at(group, "displayName"), "[0]");
  assert_null(json_object_get(group, "templateName"));
  assert_string_equal(str_at(group, "boundaryID"), WF);
  assert_int_equal(json_object_size(json_object_get(group, "nodeFlag")), 0);

  json_t *work = node_of(r, WF "[0].work");
  assert_string_equal(str_at(work, "type"), "Pod");
  assert_string_equal(str_at(work, "phase"), "Failed");
  assert_string_equal(str_at(work, "message"), "main: Error (exit code 1)");
  assert_string_equal(str_at(work, "boundaryID"), WF);
  json_t *outputs = json_object_get(work, "outputs");
  assert_non_null(outputs);
  /* A string, as Argo writes it; an integer would break `== "1"` checks. */
  assert_string_equal(str_at(outputs, "exitCode"), "1");
  assert_string_equal(str_at(outputs, "result"), "Doing work...");
  assert_null(json_object_get(outputs, "parameters"));
  assert_string_equal(str_at(work, "log"), "Doing work...\n");
  assert_null(json_object_get(work, "logTruncated"));
  assert_null(json_object_get(work, "oomKilled"));
  assert_null(json_object_get(work, "signal"));
  assert_null(json_object_get(work, "nodeFlag"));
  assert_int_equal(json_integer_value(json_object_get(work, "memoryPeakBytes")), 1 << 20);
  snprintf(want, sizeof(want), WF "-do-work-%u", (unsigned)fnv1a32(WF "[0].work"));
  assert_string_equal(str_at(work, "podName"), want);
  assert_non_null(json_object_get(work, "startedAt"));
  assert_non_null(json_object_get(work, "finishedAt"));

  json_t *onexit = node_of(r, WF ".onExit");
  assert_string_equal(str_at(onexit, "phase"), "Succeeded");
  assert_string_equal(str_at(onexit, "displayName"), WF ".onExit");
  assert_null(json_object_get(onexit, "boundaryID"));
  assert_null(json_object_get(onexit, "message"));
  assert_true(json_is_true(json_object_get(json_object_get(onexit, "nodeFlag"), "hooked")));
  assert_string_equal(str_at(json_object_get(onexit, "outputs"), "exitCode"), "0");

  json_t *eh = json_object_get(r, "exitHandler");
  assert_true(json_is_true(json_object_get(eh, "declared")));
  assert_true(json_is_true(json_object_get(eh, "ran")));
  assert_int_equal(json_integer_value(json_object_get(eh, "runs")), 1);
  assert_string_equal(str_at(eh, "phase"), "Succeeded");
  assert_string_equal(str_at(eh, "workflowStatus"), "Failed");
  assert_string_equal(str_at(eh, "workflowFailures"),
                      "[{\"displayName\":\"work\",\"phase\":\"Failed\"}]");
  assert_string_equal(str_at(eh, "by"), "controller");
  char *onexit_id = node_id(WF ".onExit");
  assert_string_equal(str_at(eh, "node"), onexit_id);

  json_t *run = json_object_get(r, "run");
  assert_true(json_is_false(json_object_get(run, "interrupted")));
  assert_null(json_object_get(run, "signal"));
  assert_null(json_object_get(run, "shutdown"));

  json_t *env = json_object_get(r, "environment");
  assert_string_equal(str_at(env, "cgroup"), "hybrid");
  json_t *ns = json_object_get(env, "namespaces");
  assert_int_equal(json_array_size(ns), 4);
  assert_string_equal(json_string_value(json_array_get(ns, 1)), "mount");
  assert_true(json_is_true(json_object_get(env, "seccomp")));
  assert_string_equal(str_at(env, "image"), "not pulled: steps run on the host root filesystem");
  assert_int_equal(json_array_size(json_object_get(env, "notes")), 1);

  json_t *warnings = json_object_get(r, "warnings");
  assert_int_equal(json_array_size(warnings), 1);
  assert_string_equal(json_string_value(json_array_get(warnings, 0)),
                      "wf.yaml:12:7: field 'volumes' is ignored");

  free(work_id);
  free(group_id);
  free(onexit_id);
  json_decref(r);
  run_state_free(st);
}

static void test_json_omissions_and_observations(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = xstrdup("wf");
  st->phase = PHASE_RUNNING;
  struct wf_node *n = run_state_add_node(st, "wf", NULL, NODE_POD, "main", NULL);
  n->signal = SIGKILL;
  n->oom_killed = true;
  struct name_value *params = calloc(1, sizeof(*params));
  assert_non_null(params);
  params[0].name = xstrdup("out");
  params[0].value = xstrdup("42");
  n->output_parameters = params;
  n->n_output_parameters = 1;
  /* Process output is bytes: invalid UTF-8 must not lose the log. */
  node_append_log(n, "ok \xff\xfe end\n", 11);
  st->exit_handler.declared = true;
  st->interrupted = true;
  st->interrupt_signal = SIGTERM;
  st->shutdown = xstrdup("Terminate");

  json_t *r = report_build(st);
  json_t *status = json_object_get(r, "status");
  assert_string_equal(str_at(status, "phase"), "Running");
  assert_null(json_object_get(status, "message"));
  assert_null(json_object_get(status, "startedAt"));
  assert_null(json_object_get(status, "finishedAt"));
  assert_string_equal(str_at(status, "progress"), "0/1");

  json_t *node = json_object_get(json_object_get(status, "nodes"), "wf");
  assert_non_null(node);
  assert_string_equal(str_at(node, "podName"), "wf");
  assert_string_equal(str_at(node, "phase"), "Pending");
  assert_null(json_object_get(node, "finishedAt"));
  assert_null(json_object_get(node, "children"));
  assert_null(json_object_get(node, "message"));
  assert_null(json_object_get(node, "memoryPeakBytes"));
  assert_string_equal(str_at(node, "signal"), "SIGKILL");
  assert_true(json_is_true(json_object_get(node, "oomKilled")));
  json_t *outputs = json_object_get(node, "outputs");
  assert_null(json_object_get(outputs, "exitCode"));
  assert_null(json_object_get(outputs, "result"));
  json_t *p = json_array_get(json_object_get(outputs, "parameters"), 0);
  assert_string_equal(str_at(p, "name"), "out");
  assert_string_equal(str_at(p, "value"), "42");
  assert_string_equal(str_at(node, "log"), "ok \xEF\xBF\xBD\xEF\xBF\xBD end\n");

  json_t *eh = json_object_get(r, "exitHandler");
  assert_true(json_is_true(json_object_get(eh, "declared")));
  assert_true(json_is_false(json_object_get(eh, "ran")));
  assert_int_equal(json_integer_value(json_object_get(eh, "runs")), 0);
  assert_null(json_object_get(eh, "phase"));
  assert_null(json_object_get(eh, "workflowStatus"));
  assert_null(json_object_get(eh, "workflowFailures"));
  assert_null(json_object_get(eh, "node"));
  assert_string_equal(str_at(eh, "by"), "none");

  json_t *run = json_object_get(r, "run");
  assert_true(json_is_true(json_object_get(run, "interrupted")));
  assert_string_equal(str_at(run, "signal"), "SIGTERM");
  assert_string_equal(str_at(run, "shutdown"), "Terminate");

  json_t *env = json_object_get(r, "environment");
  assert_true(json_is_null(json_object_get(env, "cgroup")));
  assert_int_equal(json_array_size(json_object_get(env, "namespaces")), 0);
  assert_true(json_is_false(json_object_get(env, "seccomp")));
  assert_int_equal(json_array_size(json_object_get(r, "warnings")), 0);

  /* The whole document serialises (invalid UTF-8 would make this fail). */
  char *text = json_dumps(r, JSON_INDENT(2));
  assert_non_null(text);
  free(text);
  json_decref(r);
  run_state_free(st);
}

static void test_json_truncated_log(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  struct wf_node *n = run_state_add_node(st, "wf.a", NULL, NODE_POD, "a", NULL);
  char *big = malloc(NODE_LOG_MAX + 10);
  assert_non_null(big);
  /* A multi-byte character cut by the limit must not invalidate the log. */
  memset(big, 'a', NODE_LOG_MAX + 10);
  memcpy(big + NODE_LOG_MAX - 1, "\xC3\xA9", 2);
  node_append_log(n, big, NODE_LOG_MAX + 10);
  free(big);
  json_t *r = report_build(st);
  json_t *node = json_object_get(json_object_get(json_object_get(r, "status"), "nodes"), n->id);
  assert_true(json_is_true(json_object_get(node, "logTruncated")));
  const char *log = str_at(node, "log");
  assert_int_equal(strlen(log), NODE_LOG_MAX - 1 + 3);
  assert_string_equal(log + NODE_LOG_MAX - 1, "\xEF\xBF\xBD");
  json_decref(r);
  run_state_free(st);
}

/* ---- atomic write -------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int make_temp_dir(void **state) {
  char *dir = xstrdup("/tmp/exitprobe-test-report-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

static int remove_temp_dir(void **state) {
  char *dir = *state;
  if (dir == NULL)
    return 0;
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
  return 0;
}

static char *path_in(const char *dir, const char *rel) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", dir, rel) > 0);
  return p;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  assert_non_null(mem);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    fwrite(chunk, 1, n, mem);
  fclose(f);
  fclose(mem);
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Temporary files left anywhere under dir. */
static int count_temp_files(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (strstr(e->d_name, ".tmp-") != NULL)
      count++;
    if (e->d_type == DT_DIR) {
      char *sub = path_in(dir, e->d_name);
      count += count_temp_files(sub);
      free(sub);
    }
  }
  closedir(d);
  return count;
}

static void test_write_creates_parents_and_parses(void **state) {
  const char *dir = *state;
  struct run_state *st = seed_state();
  char *path = path_in(dir, "a/b/c/report.json");
  ep_error *err = NULL;
  assert_int_equal(report_write_json(st, path, &err), 0);
  assert_null(err);

  char *text = read_file(path);
  assert_non_null(text);
  assert_int_equal(text[strlen(text) - 1], '\n');
  assert_memory_equal(text, "{\n  \"apiVersion\": \"exitprobe/v1\",\n", 34);
  json_error_t jerr;
  json_t *r = json_loads(text, 0, &jerr);
  assert_non_null(r);
  assert_string_equal(str_at(json_object_get(r, "status"), "phase"), "Failed");
  assert_string_equal(str_at(json_object_get(node_of(r, WF "[0].work"), "outputs"), "exitCode"),
                      "1");

  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0644);
  char *parent = path_in(dir, "a/b");
  assert_int_equal(stat(parent, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  assert_int_equal(count_temp_files(dir), 0);

  free(parent);
  json_decref(r);
  free(text);
  free(path);
  run_state_free(st);
}

static void test_write_replaces_existing(void **state) {
  const char *dir = *state;
  char *path = path_in(dir, "report.json");
  write_file(path, "old content that is longer than nothing\n");
  struct stat before, after;
  assert_int_equal(stat(path, &before), 0);

  struct run_state *st = seed_state();
  ep_error *err = NULL;
  assert_int_equal(report_write_json(st, path, &err), 0);
  assert_null(err);
  char *text = read_file(path);
  json_t *r = json_loads(text, 0, NULL);
  assert_non_null(r);
  assert_string_equal(str_at(r, "kind"), "Report");
  /* Replaced by rename, not rewritten in place: readers never see half. */
  assert_int_equal(stat(path, &after), 0);
  assert_int_not_equal(before.st_ino, after.st_ino);
  assert_int_equal(count_temp_files(dir), 0);

  /* Plain data through the same path. */
  assert_int_equal(atomic_write_file(path, "x", 1, &err), 0);
  char *small = read_file(path);
  assert_string_equal(small, "x");
  free(small);

  json_decref(r);
  free(text);
  free(path);
  run_state_free(st);
}

static void test_write_under_regular_file_fails(void **state) {
  const char *dir = *state;
  char *file = path_in(dir, "plain");
  write_file(file, "keep me\n");
  struct run_state *st = seed_state();

  const char *bad[] = {"plain/report.json", "plain/deeper/report.json"};
  for (size_t i = 0; i < 2; i++) {
    char *path = path_in(dir, bad[i]);
    ep_error *err = NULL;
    assert_int_equal(report_write_json(st, path, &err), -1);
    assert_non_null(err);
    assert_int_equal(err->status, EP_EXIT_USAGE);
    assert_int_equal(err->os_errno, ENOTDIR);
    assert_non_null(strstr(err->message, "plain"));
    ep_error_free(&err);
    free(path);
  }
  char *kept = read_file(file);
  assert_string_equal(kept, "keep me\n");
  assert_int_equal(count_temp_files(dir), 0);

  /* A directory where the file should be: the temp file is created, then
   * the rename fails; it must be cleaned up. */
  char *sub = path_in(dir, "isdir");
  assert_int_equal(mkdir(sub, 0755), 0);
  ep_error *err = NULL;
  assert_int_equal(atomic_write_file(sub, "data", 4, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  ep_error_free(&err);
  assert_int_equal(count_temp_files(dir), 0);

  assert_int_equal(atomic_write_file("", "data", 4, &err), -1);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  ep_error_free(&err);

  free(sub);
  free(kept);
  free(file);
  run_state_free(st);
}

/* A directory the writer may not write to is the user's path being wrong
 * (exit 2), not an internal error.  Root bypasses permissions, so as root
 * the write is attempted from a child that dropped to nobody. */
static void test_write_permission_denied(void **state) {
  const char *dir = *state;
  assert_int_equal(chmod(dir, 0755), 0);
  char *ro = path_in(dir, "ro");
  assert_int_equal(mkdir(ro, 0555), 0);
  assert_int_equal(chmod(ro, 0555), 0);
  char *path = path_in(dir, "ro/sub/report.json");

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
      _exit(3);
    ep_error *err = NULL;
    int r = atomic_write_file(path, "x", 1, &err);
    _exit(r == -1 && err != NULL && err->status == EP_EXIT_USAGE && err->os_errno == EACCES
              ? 0
              : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 3) {
    print_message("cannot drop privileges to test permissions\n");
    skip();
  }
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(count_temp_files(dir), 0);
  chmod(ro, 0755);
  free(path);
  free(ro);
}

/* ---- text summary -------------------------------------------------------- */

static char *render(const struct run_state *st, bool color, const char *locale) {
  setenv("LC_ALL", locale, 1);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_non_null(out);
  struct text_options opts = {.color = color};
  report_print_text(st, &opts, out);
  fclose(out);
  return buf;
}

static const char *find_line(const char *text, const char *needle) {
  const char *hit = strstr(text, needle);
  if (hit == NULL)
    print_error("missing \"%s\" in:\n%s\n", needle, text);
  assert_non_null(hit);
  return hit;
}

static void test_text_seed(void **state) {
  (void)state;
  struct run_state *st = seed_state();
  char *text = render(st, false, "C");

  assert_null(strchr(text, '\033'));
  find_line(text, "Workflow " WF "  Failed  (1.2s)");
  find_line(text, "message: child '");
  const char *entry = find_line(text, "\n x " WF " ");
  const char *group = find_line(text, "\n `-x [0] ");
  const char *work = find_line(text, "\n   `-x work ");
  const char *onexit = find_line(text, "\n + " WF ".onExit ");
  assert_true(entry < group && group < work && work < onexit);
  find_line(work, "Pod        Failed");
  find_line(work, "exit 1  main: Error (exit code 1)");
  find_line(group, "StepGroup  Failed");
  find_line(onexit, "Pod        Succeeded");
  find_line(onexit, "exit 0");
  find_line(text, "Exit handler: ran 1 time (by controller), Succeeded, "
                  "saw {{workflow.status}} = Failed");
  const char *out = find_line(text, "Exit handler output (cleanup):\n");
  find_line(out, "\n    Workflow status: Failed\n"
                 "    Cleaning up resources...\n"
                 "    Sending failure notification\n");
  find_line(text, "note: memory limits use the v1 memory controller");
  find_line(text, "note: memory limits use the v1 memory controller");
  find_line(text, "warning: wf.yaml:12:7: field 'volumes' is ignored");
  /* The main step's output is not the exit handler's. */
  assert_null(strstr(text, "    Doing work..."));
  free(text);

  text = render(st, true, "C");
  assert_non_null(strstr(text, "\033[31mFailed\033[0m"));
  assert_non_null(strstr(text, "\033[32mSucceeded\033[0m"));
  free(text);

  text = render(st, false, "en_US.UTF-8");
  find_line(text, " ✖ " WF " ");
  find_line(text, " └─✖ [0] ");
  find_line(text, " ✔ " WF ".onExit ");
  free(text);
  run_state_free(st);
}

static void test_text_exit_handler_missing(void **state) {
  (void)state;
  struct run_state *st = seed_state();
  st->exit_handler.ran = false;
  st->exit_handler.runs = 0;
  st->exit_handler.by = BY_NONE;
  free(st->exit_handler.node_id);
  st->exit_handler.node_id = NULL;
  st->interrupted = true;
  st->interrupt_signal = SIGINT;
  char *text = render(st, false, "C");
  find_line(text, "DID NOT RUN");
  find_line(text, "interrupted by SIGINT");
  assert_null(strstr(text, "Exit handler output"));
  free(text);

  st->exit_handler.declared = false;
  text = render(st, false, "C");
  find_line(text, "Exit handler: none declared");
  free(text);
  run_state_free(st);
}

static void test_text_steps_handler_logs(void **state) {
  (void)state;
  struct run_state *st = run_state_new();
  st->workflow_name = xstrdup("wf");
  struct wf_node *entry = run_state_add_node(st, "wf", NULL, NODE_POD, "main", NULL);
  set_outputs(entry, 0, "main output\n");
  node_finish(entry, PHASE_SUCCEEDED, NULL);
  struct wf_node *h = run_state_add_node(st, "wf.onExit", NULL, NODE_STEPS, "exit", NULL);
  h->hooked = true;
  struct wf_node *g = run_state_add_node(st, "wf.onExit[0]", "[0]", NODE_STEP_GROUP, NULL, h->id);
  run_state_add_child(h, g->id);
  struct wf_node *a = run_state_add_node(st, "wf.onExit[0].notify", "notify", NODE_POD, "notify", h->id);
  struct wf_node *b = run_state_add_node(st, "wf.onExit[0].clean", "clean", NODE_POD, "clean", h->id);
  run_state_add_child(g, a->id);
  run_state_add_child(g, b->id);
  set_outputs(a, 0, "notified\nno newline at end");
  set_outputs(b, 2, "");
  node_finish(a, PHASE_SUCCEEDED, NULL);
  node_finish(b, PHASE_FAILED, "main: Error (exit code 2)");
  node_finish(g, PHASE_FAILED, NULL);
  node_finish(h, PHASE_FAILED, NULL);
  st->phase = PHASE_FAILED;
  st->exit_handler.declared = true;
  st->exit_handler.ran = true;
  st->exit_handler.runs = 2;
  st->exit_handler.phase = PHASE_FAILED;
  st->exit_handler.by = BY_WATCHDOG;
  st->exit_handler.workflow_status = xstrdup("Succeeded");

  char *text = render(st, false, "C");
  find_line(text, "Exit handler: ran 2 times (by watchdog), Failed");
  find_line(text, "ran 2 times; Argo runs it once");
  const char *na = find_line(text, "Exit handler output (notify):\n"
                                   "    notified\n"
                                   "    no newline at end\n");
  const char *nb = find_line(text, "Exit handler output (clean):\n    (no output)\n");
  assert_true(na < nb);
  find_line(text, "\n   |-+ notify ");
  find_line(text, "\n   `-x clean ");
  assert_null(strstr(text, "    main output"));
  assert_null(strchr(text, '\033'));
  free(text);
  run_state_free(st);
}

static void test_text_dag_and_durations(void **state) {
  (void)state;
  /* A DAG whose tasks depend on each other in a chain: each task lists its
   * dependent as a child, but all are drawn directly under the DAG. */
  struct run_state *st = run_state_new();
  st->workflow_name = xstrdup("d");
  struct wf_node *dag = run_state_add_node(st, "d", NULL, NODE_DAG, "main", NULL);
  struct wf_node *a = run_state_add_node(st, "d.A", "A", NODE_POD, "t", dag->id);
  struct wf_node *b = run_state_add_node(st, "d.B", "B", NODE_POD, "t", dag->id);
  struct wf_node *c = run_state_add_node(st, "d.C", "C", NODE_POD, "t", dag->id);
  run_state_add_child(dag, a->id);
  run_state_add_child(a, b->id);
  run_state_add_child(b, c->id);
  run_state_add_child(c, a->id); /* a cycle must not hang the printer */
  a->finished_at_us = a->started_at_us + 62000000;
  a->phase = PHASE_SUCCEEDED;
  b->finished_at_us = b->started_at_us + 800000;
  b->phase = PHASE_SUCCEEDED;
  c->phase = PHASE_RUNNING;
  char *text = render(st, false, "C");
  find_line(text, "\n |-+ A ");
  find_line(text, "\n |-+ B ");
  find_line(text, "\n `-> C ");
  find_line(text, "1m02s");
  find_line(text, "0.8s");
  find_line(text, "C  Pod        Running         -\n");
  free(text);
  run_state_free(st);
}

/* The writers stream the document (report_write_json makes one node object
 * at a time); the bytes must be what json_dumps of the whole tree gives. */
static void test_write_streams_what_json_dumps_gives(void **state) {
  const char *dir = *state;
  struct run_state *st = seed_state();
  st->time_scale = 0.25;
  st->n_faults = 1;
  st->faults = calloc(1, sizeof(*st->faults));
  st->faults[0] = (struct fault_record){.action = xstrdup("signal"),
                                        .description = xstrdup("signal SIGKILL to 'work'"),
                                        .fired = true,
                                        .fired_at_us = st->started_at_us + 1234567};
  run_state_add_watchdog_action(st, "ran the exit handler \"x\" \xc3\xa9");
  json_t *built = report_build(st);
  json_object_set_new(built, "extra", json_pack("{s:[], s:{}, s:[{s:[1, 2.5, null, true]}]}",
                                                "empty", "none", "nested", "k"));
  char *want = json_dumps(built, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  assert_non_null(want);
  char *path = path_in(dir, "object.json");
  ep_error *err = NULL;
  assert_int_equal(report_write_object(built, path, &err), 0);
  char *got = read_file(path);
  assert_int_equal(strlen(got), strlen(want) + 1);
  assert_memory_equal(got, want, strlen(want));
  assert_int_equal(got[strlen(want)], '\n');
  free(got);
  free(want);
  free(path);
  json_decref(built);

  built = report_build(st);
  want = json_dumps(built, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  path = path_in(dir, "state.json");
  assert_int_equal(report_write_json(st, path, &err), 0);
  got = read_file(path);
  assert_int_equal(strlen(got), strlen(want) + 1);
  assert_memory_equal(got, want, strlen(want));
  free(got);
  free(want);
  free(path);
  json_decref(built);
  run_state_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_seed_fields),
      cmocka_unit_test(test_json_omissions_and_observations),
      cmocka_unit_test(test_json_truncated_log),
      cmocka_unit_test_setup_teardown(test_write_creates_parents_and_parses, make_temp_dir,
                                      remove_temp_dir),
      cmocka_unit_test_setup_teardown(test_write_replaces_existing, make_temp_dir,
                                      remove_temp_dir),
      cmocka_unit_test_setup_teardown(test_write_under_regular_file_fails, make_temp_dir,
                                      remove_temp_dir),
      cmocka_unit_test_setup_teardown(test_write_permission_denied, make_temp_dir,
                                      remove_temp_dir),
      cmocka_unit_test_setup_teardown(test_write_streams_what_json_dumps_gives, make_temp_dir,
                                      remove_temp_dir),
      cmocka_unit_test(test_text_seed),
      cmocka_unit_test(test_text_exit_handler_missing),
      cmocka_unit_test(test_text_steps_handler_logs),
      cmocka_unit_test(test_text_dag_and_durations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
