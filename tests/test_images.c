/* Images given to `exitprobe run`: a directory as an image's root
 * filesystem (--image NAME=DIR/) and the --image-config file, through the
 * real binary and sandbox.  The root filesystem is built here from the
 * host's /bin/sh and /bin/cat and the libraries ldd names for them. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_helpers.h"

static void skip_without_sandbox(void) {
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
}

static int make_parents(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = strchr(buf + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
    *p = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  return 0;
}

static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0 || make_parents(to) < 0)
    return -1;
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (out < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof(buf))) > 0)
    if (write(out, buf, (size_t)n) != n)
      rc = -1;
  if (n < 0)
    rc = -1;
  close(in);
  close(out);
  return rc;
}

/* A program and what its loader needs, at the same paths under root. */
static void copy_with_libs(const char *root, const char *program) {
  char to[4096];
  snprintf(to, sizeof(to), "%s%s", root, program);
  if (copy_file(program, to) < 0)
    fail_msg("copying %s: %s", program, strerror(errno));
  char *argv[] = {"/usr/bin/ldd", (char *)program, NULL};
  struct test_cmd_result r = test_run(argv);
  /* "libc.so.6 => /lib/.../libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
   * a static program has none. */
  for (char *line = strtok(r.out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    char *arrow = strstr(line, "=> ");
    char *path = arrow != NULL ? arrow + 3 : line + strspn(line, " \t");
    if (*path != '/')
      continue;
    path[strcspn(path, " ")] = '\0';
    snprintf(to, sizeof(to), "%s%s", root, path);
    if (copy_file(path, to) < 0)
      fail_msg("copying %s: %s", path, strerror(errno));
  }
  test_cmd_result_free(&r);
}

/* A tiny image: sh and cat, the mount points the sandbox needs (without
 * /proc when told), and a file no host has. */
static const char *make_rootfs(const char *marker, bool with_proc) {
  static char roots[4][512];
  static int next;
  char *root = roots[next++ % 4];
  snprintf(root, sizeof(roots[0]), "%s", test_temp_dir());
  static const char *const dirs[] = {"bin", "tmp", "dev", "etc", "proc"};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    if (!with_proc && strcmp(dirs[i], "proc") == 0)
      continue;
    if (mkdir(test_path(root, dirs[i]), 0755) < 0)
      fail_msg("mkdir %s: %s", dirs[i], strerror(errno));
  }
  copy_with_libs(root, "/bin/sh");
  copy_with_libs(root, "/bin/cat");
  FILE *f = fopen(test_path(root, "image-marker"), "w");
  assert_non_null(f);
  fprintf(f, "%s\n", marker);
  fclose(f);
  return root;
}

struct run {
  struct test_cmd_result r;
  json_t *report;
};

static struct run run_wf(const char *workflow, int want_status, const char *x1, const char *x2,
                         const char *x3, const char *x4) {
  char report[512];
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--color", "never", "--report",
                  report, (char *)workflow, (char *)x1, (char *)x2, (char *)x3, (char *)x4, NULL};
  struct run out = {.r = test_run(argv)};
  if (out.r.exit_status != want_status)
    fail_msg("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", out.r.exit_status, want_status,
             out.r.out, out.r.err);
  json_error_t jerr;
  out.report = json_load_file(report, 0, &jerr);
  return out;
}

static void run_free(struct run *r) {
  test_cmd_result_free(&r->r);
  json_decref(r->report);
}

static json_t *first_pod(const json_t *report) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  json_t *n;
  json_object_foreach((json_t *)nodes, id, n) {
    if (strcmp(json_string_value(json_object_get(n, "type")), "Pod") == 0)
      return n;
  }
  fail_msg("no pod node in the report");
  return NULL;
}

/* The value of an output parameter of whichever node has it. */
static const char *output_param(const json_t *report, const char *name) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  const char *id;
  json_t *n;
  json_object_foreach((json_t *)nodes, id, n) {
    const json_t *params = json_object_get(json_object_get(n, "outputs"), "parameters");
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p) {
      if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
        return json_string_value(json_object_get(p, "value"));
    }
  }
  fail_msg("no output parameter %s", name);
  return NULL;
}

static void assert_contains(const char *text, const char *part) {
  if (text == NULL || strstr(text, part) == NULL)
    fail_msg("'%s' not found in:\n%s", part, text ? text : "(null)");
}

static void assert_lacks(const char *text, const char *part) {
  if (text != NULL && strstr(text, part) != NULL)
    fail_msg("'%s' found in:\n%s", part, text);
}

/* Nothing of a run may stay: no mount of the image here, no cgroup. */
static void assert_nothing_left(const char *root) {
  char *mounts = test_read_file("/proc/self/mountinfo");
  assert_non_null(mounts);
  assert_lacks(mounts, root);
  free(mounts);
  assert_int_equal(test_count_cgroups_named("imgroot"), 0);
}

#define HEAD                                                                                       \
  "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: imgroot\nspec:\n"        \
  "  entrypoint: main\n  templates:\n  - name: main\n    outputs:\n      parameters:\n"           \
  "      - {name: log, valueFrom: {path: /tmp/log}}\n"                                           \
  "      - {name: out, valueFrom: {path: /tmp/out}}\n"

#define HEAD_OUT                                                                                   \
  "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: imgroot\nspec:\n"        \
  "  entrypoint: main\n  templates:\n  - name: main\n    outputs:\n      parameters:\n"           \
  "      - {name: out, valueFrom: {path: /tmp/out}}\n"

/* The command given in the YAML runs in the image's root: it sees the
 * image's file and not the host's, its PATH is searched there, nothing
 * outside /tmp is writable, and its output files still reach the runner. */
static void test_command_runs_in_rootfs(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *root = make_rootfs("from-the-image", true);
  const char *wf = test_write_temp(
      "wf.yaml", HEAD "    container:\n      image: tiny:1\n      command: [sh, -c]\n"
                      "      args: ['exec >/tmp/log 2>&1; cat /image-marker;"
                      " [ -e /usr/bin/env ] && echo host-usr-visible;"
                      " [ -e /proc/self/status ] && echo proc-ok;"
                      " [ -c /dev/null ] && echo dev-ok;"
                      " echo x > /etc/written || echo etc-read-only;"
                      " echo x > /written || echo root-read-only;"
                      " env; echo value > /tmp/out']\n");
  char image[600];
  snprintf(image, sizeof(image), "tiny=%s/", root);
  struct run r = run_wf(wf, 0, "--image", image, NULL, NULL);
  const char *log = output_param(r.report, "log");
  assert_contains(log, "from-the-image");
  assert_lacks(log, "host-usr-visible");
  assert_contains(log, "proc-ok");
  assert_contains(log, "dev-ok");
  assert_contains(log, "etc-read-only");
  assert_contains(log, "root-read-only");
  assert_string_equal(output_param(r.report, "out"), "value");
  struct stat st;
  assert_int_equal(stat(test_path(root, "written"), &st), -1);
  run_free(&r);
  assert_nothing_left(root);
}

/* Volumes land in the image's root too, where mount points that the
 * read-only image lacks (/data) are made on a scaffold; a script's source
 * is staged in its /tmp. */
static void test_volumes_and_script_in_rootfs(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *root = make_rootfs("image-file", true);
  const char *wf = test_write_temp(
      "wf.yaml",
      "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: imgroot\nspec:\n"
      "  entrypoint: main\n  volumeClaimTemplates:\n  - metadata: {name: work}\n"
      "  templates:\n  - name: main\n    steps:\n    - - {name: a, template: a}\n"
      "    - - {name: b, template: b}\n"
      "  - name: a\n    container:\n      image: tiny\n"
      "      command: [sh, -c, 'echo from-a > /data/f']\n"
      "      volumeMounts: [{name: work, mountPath: /data}]\n"
      "  - name: b\n    outputs:\n      parameters:\n"
      "      - {name: out, valueFrom: {path: /tmp/out}}\n"
      "    script:\n      image: tiny\n      command: [sh]\n"
      "      source: 'cat /data/f /image-marker > /tmp/out'\n"
      "      volumeMounts: [{name: work, mountPath: /data}]\n");
  char image[600];
  snprintf(image, sizeof(image), "tiny=%s/", root);
  struct run r = run_wf(wf, 0, "--image", image, NULL, NULL);
  assert_string_equal(output_param(r.report, "out"), "from-a\nimage-file");
  struct stat st;
  assert_int_equal(stat(test_path(root, "data"), &st), -1); /* the image was not written */
  run_free(&r);
  assert_nothing_left(root);
}

/* A program that only the host has is not found in the image. */
static void test_host_program_not_found(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *root = make_rootfs("x", true);
  const char *wf = test_write_temp(
      "wf.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: imgroot\n"
                 "spec:\n  entrypoint: main\n  templates:\n  - name: main\n    container:\n"
                 "      image: tiny\n      command: [env]\n");
  char image[600];
  snprintf(image, sizeof(image), "tiny=%s", root);
  struct run r = run_wf(wf, 1, "--image", image, NULL, NULL);
  /* As a container whose command is missing: Failed, the exec's error named. */
  assert_string_equal(json_string_value(json_object_get(first_pod(r.report), "phase")), "Failed");
  const char *msg = json_string_value(json_object_get(first_pod(r.report), "message"));
  assert_contains(msg, "exec \"env\"");
  assert_contains(msg, "No such file");
  run_free(&r);
  assert_nothing_left(root);
}

/* A root without /proc: the step fails set-up with a message naming it. */
static void test_rootfs_without_proc(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *root = make_rootfs("x", false);
  const char *wf = test_write_temp("wf.yaml", HEAD "    container:\n      image: tiny:1\n"
                                                   "      command: [sh, -c, 'true']\n");
  char image[600];
  snprintf(image, sizeof(image), "tiny=%s/", root);
  struct run r = run_wf(wf, 1, "--image", image, NULL, NULL);
  const char *msg = json_string_value(json_object_get(first_pod(r.report), "message"));
  assert_contains(msg, "set-up");
  assert_contains(msg, "\"/proc\"");
  run_free(&r);
  assert_nothing_left(root);
}

/* The config file's entrypoint, cmd, env and workingDir, combined the
 * Kubernetes way; --image on the command line wins over the file. */
static void test_image_config(void **state) {
  (void)state;
  skip_without_sandbox();
  const char *root = make_rootfs("config-image", true);
  const char *other = make_rootfs("command-line-image", true);
  char cfg[2048];
  snprintf(cfg, sizeof(cfg),
           "images:\n"
           "  tiny:\n"
           "    rootfs: %s\n"
           "    entrypoint: [/bin/sh, -c]\n"
           "    cmd: ['echo \"$GREETING $(pwd) $(cat /image-marker)\" > /tmp/out']\n"
           "    env: {GREETING: hello}\n"
           "    workingDir: /etc\n"
           "  other: {rootfs: %s}\n",
           root, other);
  const char *cfg_path = test_write_temp("images.yaml", cfg);
  const char *no_args = test_write_temp(
      "wf.yaml", HEAD_OUT "    container:\n      image: tiny:2\n");
  struct run r = run_wf(no_args, 0, "--image-config", cfg_path, NULL, NULL);
  assert_string_equal(output_param(r.report, "out"), "hello /etc config-image");
  run_free(&r);

  /* args replace cmd; the entrypoint stays. */
  const char *with_args = test_write_temp(
      "wf2.yaml", HEAD_OUT "    container:\n      image: tiny:2\n"
                       "      args: ['echo args $GREETING > /tmp/out']\n");
  r = run_wf(with_args, 0, "--image-config", cfg_path, NULL, NULL);
  assert_string_equal(output_param(r.report, "out"), "args hello");
  run_free(&r);

  /* The command line's mapping is looked up first. */
  char image[600];
  snprintf(image, sizeof(image), "tiny=%s/", other);
  const char *cmd = test_write_temp(
      "wf3.yaml", HEAD_OUT "    container:\n      image: tiny:2\n"
                       "      command: [sh, -c, 'cat /image-marker > /tmp/out']\n");
  r = run_wf(cmd, 0, "--image-config", cfg_path, "--image", image);
  assert_string_equal(output_param(r.report, "out"), "command-line-image");
  run_free(&r);
  assert_nothing_left(root);
  assert_nothing_left(other);
}

static void expect_bad_config(const char *text, const char *where, const char *what) {
  const char *cfg = test_write_temp("bad-images.yaml", text);
  const char *wf = test_write_temp("wf.yaml", HEAD "    container:\n      image: tiny\n");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--image-config", (char *)cfg,
                  (char *)wf, NULL};
  struct test_cmd_result r = test_run(argv);
  if (r.exit_status != 2)
    fail_msg("exit status %d, want 2\nstderr:\n%s", r.exit_status, r.err);
  char located[600];
  snprintf(located, sizeof(located), "%s:%s", cfg, where);
  assert_contains(r.err, located);
  assert_contains(r.err, what);
  test_cmd_result_free(&r);
}

static void test_bad_config_files(void **state) {
  (void)state;
  expect_bad_config("images:\n  tiny:\n    rootfs: /no/such/dir\n", "3:13", "No such file");
  expect_bad_config("images:\n  tiny:\n    cmd: echo\n", "3:10", "cmd must be a sequence");
  expect_bad_config("images:\n  tiny:\n    entrypoint: [[a]]\n", "3:18", "entrypoint");
  expect_bad_config("images:\n  tiny:\n    env: [A]\n", "3:10", "env must be a mapping");
  expect_bad_config("images:\n  tiny:\n    workingDir: rel\n", "3:17", "absolute");
  expect_bad_config("images:\n  tiny:\n    entrypiont: [x]\n", "3:5", "unknown field");
  expect_bad_config("image: {}\n", "1:1", "unknown field 'image'");
  expect_bad_config("images: [a, b]\n", "1:9", "images must be a mapping");
  expect_bad_config("images:\n  tiny: {cmd: [a}\n", "2:", "");
  expect_bad_config("images:\n  tiny: {rootfs: /etc/passwd}\n", "2:18", "Not a directory");
}

static void test_bad_image_argument(void **state) {
  (void)state;
  const char *wf = test_write_temp("wf.yaml", HEAD "    container:\n      image: tiny\n");
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--image", "tiny=/no/such/dir/",
                  (char *)wf, NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 2);
  assert_contains(r.err, "not a directory");
  test_cmd_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_runs_in_rootfs),
      cmocka_unit_test(test_volumes_and_script_in_rootfs),
      cmocka_unit_test(test_host_program_not_found),
      cmocka_unit_test(test_rootfs_without_proc),
      cmocka_unit_test(test_image_config),
      cmocka_unit_test(test_bad_config_files),
      cmocka_unit_test(test_bad_image_argument),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
