/* Bad input, as a user meets it: each case runs the real binary
 * (EXITPROBE_BIN) as `exitprobe run` and `exitprobe validate` on a file
 * from tests/data/bad/ (or one made at test time when it is binary or
 * large) and checks what the issue promises for bad input:
 *
 *   - exit status 2 (nothing ran), never a signal or a sanitizer report;
 *   - stderr names FILE:LINE:COLUMN with the position where a reader would
 *     want the caret, and a key phrase of the message;
 *   - no report is written.
 *
 * The positions are the ones a human wants (the offending value, the
 * duplicate key, the unclosed quote), decided case by case, not whatever
 * the binary happened to print.  Command-line misuse is checked the same
 * way without a position.  A workflow that recurses without end is not bad
 * input in Argo (recursive templates are valid): it must run, stop at the
 * recursion limit with an error node, and run its exit handler. */
#include <dirent.h>
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

/* Generated inputs share this header; the bad part is on line 6. */
#define WF_HEAD "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: gen\nspec:\n"

typedef int (*generate_fn)(const char *path);

struct bad_case {
  const char *file;  /* name in tests/data/bad/, or of the generated file */
  int line, column;  /* where the caret belongs; 0 when no position applies */
  const char *phrase;
  generate_fn generate; /* NULL: the file is committed */
};

/* ---- generated inputs ------------------------------------------------------ */

static int write_bytes(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  return close(fd);
}

#define WRITE_LITERAL(path, lit) write_bytes(path, lit, sizeof(lit) - 1)

static int gen_invalid_utf8_lead(const char *path) {
  return WRITE_LITERAL(path, WF_HEAD "  entrypoint: ma\xffin\n");
}

/* "é", "t", "é", then a lead byte followed by '(' instead of a continuation. */
static int gen_invalid_utf8_trailing(const char *path) {
  return WRITE_LITERAL(path, WF_HEAD "  entrypoint: \xc3\xa9t\xc3\xa9\xc3(\n");
}

static int gen_nul_byte(const char *path) {
  return WRITE_LITERAL(path, WF_HEAD "  entrypoint: ma\0in\n");
}

static int gen_control_char(const char *path) {
  return WRITE_LITERAL(path, WF_HEAD "  entrypoint: ma\x01in\n");
}

/* A "\0" escape is valid YAML but would cut every C string short. */
static int gen_nul_escape(const char *path) {
  return WRITE_LITERAL(path, WF_HEAD "  entrypoint: \"ma\\0in\"\n");
}

static int gen_repeated(const char *path, const char *head, const char *open, size_t n,
                        const char *close, const char *tail) {
  size_t hl = strlen(head), ol = strlen(open), cl = strlen(close), tl = strlen(tail);
  size_t len = hl + n * (ol + cl) + tl;
  char *buf = malloc(len);
  if (buf == NULL)
    return -1;
  char *p = buf;
  memcpy(p, head, hl);
  p += hl;
  for (size_t i = 0; i < n; i++, p += ol)
    memcpy(p, open, ol);
  for (size_t i = 0; i < n; i++, p += cl)
    memcpy(p, close, cl);
  memcpy(p, tail, tl);
  int rc = write_bytes(path, buf, len);
  free(buf);
  return rc;
}

/* 300 nested flow sequences: the root and spec mappings are 2 levels, so
 * the 255th '[' (column 15 + 254) is the 257th level, one past the limit. */
static int gen_deep_nesting(const char *path) {
  return gen_repeated(path, WF_HEAD "  entrypoint: ", "[", 300, "]", "\n");
}

/* A 5 MiB scalar against the 4 MiB limit, made here rather than committed. */
static int gen_huge_scalar(const char *path) {
  return gen_repeated(path, WF_HEAD "  entrypoint: ", "x", 5u * 1024 * 1024, "", "\n");
}

/* 17 MiB against the 16 MiB file limit; sparse, so it costs no disk. */
static int gen_huge_file(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  int rc = ftruncate(fd, 17 * 1024 * 1024);
  return close(fd) < 0 ? -1 : rc;
}

/* A flow sequence of 1,000,100 items: the loader stops at its node limit.
 * The header makes 13 nodes (mappings, keys, values, the sequence), so
 * item 999,988 is node 1,000,001; items are "a," from column 16. */
static int gen_too_many_nodes(const char *path) {
  return gen_repeated(path, WF_HEAD "  entrypoint: [", "a,", 1000100, "", "a]\n");
}

/* ---- the table --------------------------------------------------------------- */

static const struct bad_case cases[] = {
    /* YAML syntax and the loader's limits */
    {"yaml-bad-indent.yaml", 7, 2, "did not find expected key", NULL},
    {"yaml-tab-indent.yaml", 5, 1, "found character that cannot start any token", NULL},
    {"yaml-unclosed-double-quote.yaml", 7, 15, "quoted scalar that starts here is never closed",
     NULL},
    {"yaml-unclosed-single-quote.yaml", 13, 14, "quoted scalar that starts here is never closed",
     NULL},
    {"yaml-unclosed-bracket.yaml", 12, 16, "flow sequence that starts here is never closed", NULL},
    /* Not at the end of the file: libyaml's position, with where the '{' began. */
    {"yaml-unclosed-brace.yaml", 5, 5, "flow mapping started at line 4, column 11", NULL},
    {"yaml-multiple-documents.yaml", 11, 1, "found a second document", NULL},
    {"yaml-duplicate-key.yaml", 11, 3, "duplicate key 'entrypoint' (first at line 7)", NULL},
    {"yaml-billion-laughs.yaml", 12, 39, "alias expansion exceeds 1000000 nodes", NULL},
    {"yaml-undefined-alias.yaml", 7, 15, "undefined alias '*main'", NULL},
    {"yaml-complex-key.yaml", 7, 3, "mapping keys must be scalars, found a sequence", NULL},
    {"yaml-merge-scalar.yaml", 6, 7, "merge key '<<' must be a mapping", NULL},
    {"yaml-colon-in-value.yaml", 7, 19, "mapping values are not allowed in this context", NULL},
    {"yaml-item-in-mapping.yaml", 8, 3, "did not find expected key", NULL},
    {"gen-invalid-utf8-lead.yaml", 6, 17, "invalid leading UTF-8 octet", gen_invalid_utf8_lead},
    {"gen-invalid-utf8-trailing.yaml", 6, 18, "invalid trailing UTF-8 octet",
     gen_invalid_utf8_trailing},
    {"gen-nul-byte.yaml", 6, 17, "control characters are not allowed (0x00", gen_nul_byte},
    {"gen-control-char.yaml", 6, 17, "control characters are not allowed (0x01",
     gen_control_char},
    {"gen-nul-escape.yaml", 6, 15, "scalar contains a NUL character", gen_nul_escape},
    {"gen-deep-nesting.yaml", 6, 269, "nesting deeper than 256 levels", gen_deep_nesting},
    {"gen-huge-scalar.yaml", 6, 15, "scalar is 5242880 bytes, larger than the limit",
     gen_huge_scalar},
    {"gen-huge-file.yaml", 0, 0, "larger than the limit of 16777216", gen_huge_file},
    {"gen-too-many-nodes.yaml", 6, 16 + 2 * (999988 - 1), "more than 1000000 nodes",
     gen_too_many_nodes},

    /* The Workflow model: shapes and types */
    {"wf-empty.yaml", 1, 1, "the file is empty", NULL},
    {"wf-root-list.yaml", 2, 1, "a Workflow document must be a mapping, not a sequence", NULL},
    {"wf-unknown-kind.yaml", 3, 7, "unknown kind 'CronWorkflow'", NULL},
    {"wf-bad-api-version.yaml", 2, 13, "apiVersion must be argoproj.io/v1alpha1", NULL},
    {"wf-spec-list.yaml", 7, 3, "spec must be a mapping, not a sequence", NULL},
    {"wf-templates-map.yaml", 9, 5, "spec.templates must be a sequence, not a mapping", NULL},
    {"wf-command-string.yaml", 12, 16, "command must be a sequence, not a scalar", NULL},
    {"wf-parallelism-string.yaml", 8, 16, "parallelism must be a non-negative integer", NULL},
    /* A missing key points at the mapping that lacks it (its first key). */
    {"wf-missing-entrypoint.yaml", 7, 3, "spec.entrypoint is required", NULL},
    {"wf-no-body.yaml", 9, 5, "template 'main' has no body", NULL},
    {"wf-two-bodies.yaml", 9, 5, "more than one body", NULL},
    {"wf-script-no-source.yaml", 11, 7, "needs a source", NULL},
    {"wf-unsupported-field.yaml", 9, 16, "'spec.synchronization' semaphores are not supported", NULL},
    {"wf-output-artifact.yaml", 11, 7, "'outputs.artifacts' is not supported", NULL},
    /* Volumes: at the name, path or source a reader would fix */
    {"wf-volume-unknown-name.yaml", 16, 16, "volumeMount 'dta' in template 'main': no volume",
     NULL},
    {"wf-volume-mount-root.yaml", 17, 20, "mountPath must not be /", NULL},
    {"wf-volume-mount-tmp.yaml", 16, 36, "mountPath /tmp is not supported locally", NULL},
    {"wf-volume-mount-escape.yaml", 16, 33, "mountPath '/data/../etc' must not contain '..'",
     NULL},
    {"wf-volume-subpath-escape.yaml", 16, 49, "subPath '../../etc' must be a relative path",
     NULL},
    {"wf-volume-host-path.yaml", 10, 15, "hostPath volumes are not supported locally", NULL},
    {"wf-volume-duplicate.yaml", 11, 22, "volume 'data' is declared twice", NULL},
    /* Init containers */
    {"wf-init-container-no-name.yaml", 12, 7, "an init container needs a name", NULL},
    {"wf-init-container-unknown-volume.yaml", 15, 15,
     "volumeMount 'scrach' in template 'main': no volume", NULL},
    {"wf-mirror-mounts-on-main.yaml", 13, 27,
     "'mirrorVolumeMounts' belongs in an init container, not in container", NULL},
    {"wf-init-containers-on-steps.yaml", 11, 5,
     "initContainers belong to a container or script template", NULL},
    {"wf-bad-name.yaml", 5, 9, "metadata.name 'My_Workflow' is not a valid name", NULL},
    {"wf-steps-not-nested.yaml", 11, 7, "steps must be a list of lists of steps", NULL},
    {"wf-continue-on-bool.yaml", 14, 19, "continueOn.failed must be true or false, not 'maybe'",
     NULL},
    {"wf-loop-two-kinds.yaml", 11, 9, "only one of withItems, withParam and withSequence", NULL},
    {"wf-hook-no-expression.yaml", 14, 11, "expression is required", NULL},
    {"wf-depends-in-steps.yaml", 15, 18, "belong to DAG tasks, not steps", NULL},
    /* Durations, quantities, enumerations */
    {"wf-timeout-no-unit.yaml", 10, 14, "timeout: '10' is not a duration with a unit", NULL},
    {"wf-backoff-duration.yaml", 13, 19, "backoff.duration: 'abc' is not a duration", NULL},
    {"wf-memory-quantity.yaml", 15, 19, "'64MB' is not a memory quantity", NULL},
    {"wf-retry-policy.yaml", 12, 20, "retryPolicy must be Always, OnFailure, OnError or", NULL},
    {"wf-retry-limit.yaml", 11, 14, "retryStrategy.limit must be a non-negative integer", NULL},
    {"wf-active-deadline.yaml", 10, 28, "activeDeadlineSeconds must be a non-negative integer",
     NULL},
    /* The offending value, `blue`, not the parameter's first key. */
    {"wf-enum-value.yaml", 12, 14, "value 'blue' of parameter 'colour' is not one of its enum",
     NULL},
    /* References to templates */
    {"wf-unknown-entrypoint.yaml", 7, 15, "entrypoint template 'mian' is not defined", NULL},
    {"wf-unknown-onexit.yaml", 8, 11, "onExit template 'clean-up' is not defined", NULL},
    {"wf-unknown-step-template.yaml", 12, 19, "refers to template 'do-wrok', which is not defined",
     NULL},
    {"wf-unknown-task-template.yaml", 16, 19, "refers to template 'nope', which is not defined",
     NULL},
    /* At the hook's `template:` value, like every other unknown template. */
    {"wf-unknown-hook-template.yaml", 15, 23, "refers to template 'notify', which is not defined",
     NULL},
    {"wf-unknown-workflow-hook-template.yaml", 11, 17,
     "refers to template 'announce', which is not defined", NULL},
    {"wf-duplicate-template.yaml", 11, 5, "duplicate template name 'main'", NULL},
    {"wf-duplicate-step.yaml", 13, 9, "duplicate step name 'work'", NULL},
    {"wf-duplicate-task.yaml", 14, 9, "duplicate task name 'a'", NULL},
    {"wf-missing-input.yaml", 11, 9, "inputs.parameters.msg of template 'echo' was not supplied",
     NULL},
    /* DAGs */
    {"wf-dag-cycle.yaml", 12, 9, "dependency cycle in template 'main'", NULL},
    {"wf-dag-self-dependency.yaml", 12, 9, "dependency cycle in template 'main'", NULL},
    {"wf-depends-unknown-task.yaml", 15, 18, "depends on 'x', which is not a task", NULL},
    /* At the list item `x`, not the list. */
    {"wf-dependencies-unknown-task.yaml", 15, 27, "depends on 'x', which is not a task", NULL},
    {"wf-depends-bad-result.yaml", 15, 18, "'Succeded' is not a task result", NULL},
    {"wf-dag-target.yaml", 11, 15, "dag.target names 'z', which is not a task", NULL},
    /* {{variables}} that cannot resolve, at the text that holds them */
    {"wf-unresolved-input.yaml", 17, 14, "failed to resolve {{inputs.parameters.mesage}}", NULL},
    {"wf-unresolved-workflow-param.yaml", 12, 25,
     "failed to resolve {{workflow.parameters.nope}}", NULL},
    {"wf-unresolved-step-output.yaml", 22, 20, "failed to resolve {{steps.frist.outputs.result}}",
     NULL},
    {"wf-unresolved-when.yaml", 15, 15, "failed to resolve {{steps.flip.outputs.result}}", NULL},

    /* Scenarios: exitprobe's own format, so unknown names are errors too */
    {"sc-bad-signal.yaml", 10, 13, "unknown signal 'SIGFOO'", NULL},
    {"sc-state-probe-empty.yaml", 7, 15, "stateProbe must not be empty", NULL},
    {"sc-idempotent-not-bool.yaml", 8, 31,
     "exitHandler.idempotent must be true or false, not 'maybe'", NULL},
    {"sc-bad-errno.yaml", 11, 12, "unknown errno name 'ENOPE'", NULL},
    {"sc-bad-syscall.yaml", 10, 14, "unknown system call 'opne'", NULL},
    {"sc-bad-glob.yaml", 8, 14, "target 'work[' has '[' without a closing ']'", NULL},
    {"sc-bad-regex.yaml", 11, 15, "is not a valid extended regular expression", NULL},
    {"sc-probability.yaml", 12, 18, "probability must be between 0 and 1, not 2", NULL},
    {"sc-unknown-action.yaml", 9, 13, "unknown action 'explode'", NULL},
    {"sc-unknown-expect-key.yaml", 9, 5, "unknown field 'exitHandlers' in expect", NULL},
    {"sc-unknown-fault-field.yaml", 11, 5, "unknown field 'exitCode' in an exit fault", NULL},
    {"sc-impossible-target.yaml", 8, 13, "target 'wrok' matches no node of workflow 'ok'", NULL},
    {"sc-impossible-expect-target.yaml", 9, 7, "nodes target 'wrok' matches no node", NULL},
    {"sc-duration-no-unit.yaml", 11, 12, "after '200' needs a unit", NULL},
    {"sc-two-triggers.yaml", 12, 5, "give only one of after, atStart and onOutput", NULL},
    {"sc-exit-code-range.yaml", 8, 40, "code must be between 0 and 255, not 256", NULL},
    {"sc-deadline-scope.yaml", 9, 12, "scope 'do-wrok' is neither 'workflow' nor a template",
     NULL},
    {"sc-missing-workflow-file.yaml", 6, 13, "workflow file 'no-such-workflow.yaml'", NULL},
    {"sc-bad-api-version.yaml", 2, 13, "apiVersion must be exitprobe/v1", NULL},
    {"sc-pids-zero.yaml", 8, 41, "limit must be between 1 and", NULL},
    {"sc-oom-limit.yaml", 8, 40, "limit must be a memory quantity", NULL},
    {"sc-faults-map.yaml", 8, 5, "faults must be a sequence, not a mapping", NULL},
    {"sc-bad-name.yaml", 4, 18, "metadata.name '../escape' must start with a letter or digit",
     NULL},
    {"sc-expect-bad-phase.yaml", 8, 23, "workflow.phase must be one of", NULL},
    {"sc-syntax-error.yaml", 8, 5, "flow mapping that starts here is never closed", NULL},
    {"sc-inline-workflow-error.yaml", 16, 23, "refers to template 'missing', which is not defined",
     NULL},
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* ---- running one case -------------------------------------------------------- */

static char work_dir[4096]; /* the tests' cwd: a default report would land here */

static void assert_no_sanitizer_report(const char *what, const char *err) {
  static const char *const markers[] = {"AddressSanitizer", "LeakSanitizer",
                                        "UndefinedBehaviorSanitizer", "runtime error:", NULL};
  for (const char *const *m = markers; *m != NULL; m++)
    if (strstr(err, *m) != NULL)
      fail_msg("%s: sanitizer report on stderr:\n%s", what, err);
}

/* The first stderr line that starts with prefix, or NULL. */
static const char *line_starting(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *p = text; p != NULL && *p != '\0';) {
    if (strncmp(p, prefix, n) == 0)
      return p;
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return NULL;
}

static bool line_contains(const char *line, const char *phrase) {
  const char *end = strchr(line, '\n');
  size_t len = end ? (size_t)(end - line) : strlen(line);
  char *copy = strndup(line, len);
  bool found = copy != NULL && strstr(copy, phrase) != NULL;
  free(copy);
  return found;
}

static void check_bad(const char *what, const struct test_cmd_result *r, const char *prefix,
                      const char *phrase) {
  assert_no_sanitizer_report(what, r->err);
  if (r->exit_status != 2)
    fail_msg("%s: exit status %d, want 2; stderr:\n%s", what, r->exit_status, r->err);
  const char *line = line_starting(r->err, prefix);
  if (line == NULL)
    fail_msg("%s: no stderr line starts with '%s'; stderr:\n%s", what, prefix, r->err);
  if (!line_contains(line, phrase))
    fail_msg("%s: the error lacks '%s'; stderr:\n%s", what, phrase, r->err);
}

static void assert_no_report(const char *what, const char *report) {
  if (access(report, F_OK) == 0)
    fail_msg("%s: a report was written to %s", what, report);
  char default_dir[4200];
  snprintf(default_dir, sizeof(default_dir), "%s/reports", work_dir);
  if (access(default_dir, F_OK) == 0)
    fail_msg("%s: something was written to %s", what, default_dir);
}

static void test_bad_case(void **state) {
  const struct bad_case *c = *state;
  char path[4096], prefix[4300], what[4400];
  const char *dir = c->generate ? test_temp_dir() : test_path(test_data_dir(), "bad");
  assert_non_null(dir);
  snprintf(path, sizeof(path), "%s/%s", dir, c->file);
  if (c->generate != NULL && c->generate(path) < 0)
    fail_msg("cannot write %s: %s", path, strerror(errno));
  if (c->line > 0)
    snprintf(prefix, sizeof(prefix), "%s:%d:%d: error: ", path, c->line, c->column);
  else
    snprintf(prefix, sizeof(prefix), "%s: error: ", path);

  char report[4200];
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());
  char *run_argv[] = {(char *)test_exitprobe_bin(), "run", "--report", report, path, NULL};
  struct test_cmd_result r = test_run(run_argv);
  snprintf(what, sizeof(what), "exitprobe run %s", c->file);
  check_bad(what, &r, prefix, c->phrase);
  assert_no_report(what, report);
  test_cmd_result_free(&r);

  char *validate_argv[] = {(char *)test_exitprobe_bin(), "validate", path, NULL};
  r = test_run(validate_argv);
  snprintf(what, sizeof(what), "exitprobe validate %s", c->file);
  check_bad(what, &r, prefix, c->phrase);
  if (strstr(r.out, "valid") != NULL)
    fail_msg("%s: stdout says valid: %s", what, r.out);
  test_cmd_result_free(&r);
}

/* ---- command-line misuse ----------------------------------------------------- */

struct cli_case {
  const char *name;
  const char *argv[8]; /* after the binary; "@WF" is a valid workflow, "@LIST" a YAML list */
  const char *prefix;  /* start of the error line; NULL: "exitprobe: error: " */
  const char *phrase;
  const char *also;    /* a second phrase the line must hold, or NULL */
  const char *never;   /* must not appear on stderr, or NULL */
};

static const struct cli_case cli_cases[] = {
    {"-p without =", {"run", "-p", "novalue", "@WF"}, NULL, "-p expects NAME=VALUE", NULL, NULL},
    {"-p with an empty name", {"run", "-p", "=v", "@WF"}, NULL, "-p expects NAME=VALUE", NULL,
     NULL},
    {"--grace-period abc", {"run", "--grace-period", "abc", "@WF"}, NULL,
     "--grace-period: 'abc' is not a duration", NULL, NULL},
    {"--grace-period negative", {"run", "--grace-period=-1s", "@WF"}, NULL,
     "--grace-period: '-1s' is not a duration", NULL, NULL},
    {"--color sometimes", {"run", "--color", "sometimes", "@WF"}, NULL,
     "--color must be auto, always or never", NULL, NULL},
    {"--image without =", {"run", "--image", "alpine", "@WF"}, NULL, "--image expects IMAGE=PATH",
     NULL, NULL},
    {"--image with an empty image", {"run", "--image", "=/bin/true", "@WF"}, NULL,
     "--image expects IMAGE=PATH", NULL, NULL},
    {"unknown long option", {"run", "--frobnicate", "@WF"}, NULL, "'--frobnicate'", NULL, NULL},
    {"unknown short option", {"run", "-Z", "@WF"}, NULL, "'-Z'", NULL, NULL},
    /* The option as the user typed it, not its short form. */
    {"--report without its argument", {"run", "@WF", "--report"}, NULL, "'--report'", NULL, NULL},
    {"-p without its argument", {"run", "@WF", "-p"}, NULL, "'-p'", NULL, NULL},
    {"run with no file", {"run"}, NULL, "run needs a workflow file", NULL, NULL},
    {"run -q with no file", {"run", "-q"}, NULL, "run needs a workflow file", NULL, NULL},
    {"--require unknown", {"run", "--require", "bogus", "@WF"}, NULL,
     "--require: unknown capability 'bogus'", NULL, NULL},
    {"--fault without an action", {"run", "--fault", "work", "@WF"}, NULL,
     "--fault 'work': expected TARGET:ACTION", NULL, NULL},
    {"--fault unknown action", {"run", "--fault", "work:explode", "@WF"}, NULL,
     "unknown action 'explode'", NULL, NULL},
    /* The user wrote no file: the error must not name the temporary
     * scenario the option is turned into, but the option itself. */
    {"--fault impossible target", {"run", "--fault", "nowhere:exit=3", "@WF"}, NULL,
     "--fault 'nowhere:exit=3'", "matches no node", "exitprobe-faults-"},
    {"--fault bad value", {"run", "--fault", "work:exit=abc", "@WF"}, NULL,
     "--fault 'work:exit=abc'", "code must be an integer", "exitprobe-faults-"},
    {"missing file", {"run", "/nonexistent/wf.yaml"}, "/nonexistent/wf.yaml: error: ",
     "cannot open", NULL, NULL},
    {"parameter file that is a list", {"run", "-f", "@LIST", "@WF"}, "@LIST:2:1: error: ",
     "a parameter file is a mapping", NULL, NULL},
    {"validate with no file", {"validate"}, "Usage: exitprobe validate", "", NULL, NULL},
    {"unknown command", {"frobnicate"}, "exitprobe: unknown command 'frobnicate'", "", NULL, NULL},
};

#define N_CLI_CASES (sizeof(cli_cases) / sizeof(cli_cases[0]))

static const char *expand(const char *arg, const char *wf, const char *list) {
  if (arg != NULL && strcmp(arg, "@WF") == 0)
    return wf;
  if (arg != NULL && strcmp(arg, "@LIST") == 0)
    return list;
  return arg;
}

static void test_cli_case(void **state) {
  const struct cli_case *c = *state;
  char wf[4096], list[4096], report[4200], prefix[4400];
  snprintf(wf, sizeof(wf), "%s", test_path(test_data_dir(), "bad/ok-workflow.yaml"));
  snprintf(list, sizeof(list), "%s", test_path(test_data_dir(), "bad/wf-root-list.yaml"));
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());

  char *argv[16];
  size_t n = 0;
  argv[n++] = (char *)test_exitprobe_bin();
  for (size_t i = 0; c->argv[i] != NULL; i++) {
    argv[n++] = (char *)expand(c->argv[i], wf, list);
    /* A run that got as far as running would write its report here. */
    if (i == 0 && strcmp(c->argv[0], "run") == 0) {
      argv[n++] = "--report";
      argv[n++] = report;
    }
  }
  argv[n] = NULL;
  if (c->prefix == NULL)
    snprintf(prefix, sizeof(prefix), "exitprobe: error: ");
  else if (strncmp(c->prefix, "@LIST", 5) == 0)
    snprintf(prefix, sizeof(prefix), "%s%s", list, c->prefix + 5);
  else
    snprintf(prefix, sizeof(prefix), "%s", c->prefix);

  struct test_cmd_result r = test_run(argv);
  check_bad(c->name, &r, prefix, c->phrase);
  if (c->also != NULL && !line_contains(line_starting(r.err, prefix), c->also))
    fail_msg("%s: the error lacks '%s'; stderr:\n%s", c->name, c->also, r.err);
  if (c->never != NULL && strstr(r.err, c->never) != NULL)
    fail_msg("%s: stderr mentions '%s':\n%s", c->name, c->never, r.err);
  assert_no_report(c->name, report);
  test_cmd_result_free(&r);
}

/* ---- sanity of the table ------------------------------------------------------ */

/* The cases are only worth something if the good file they build on is good. */
static void test_reference_workflow_is_valid(void **state) {
  (void)state;
  char *argv[] = {(char *)test_exitprobe_bin(), "validate",
                  (char *)test_path(test_data_dir(), "bad/ok-workflow.yaml"), NULL};
  struct test_cmd_result r = test_run(argv);
  assert_no_sanitizer_report("validate ok-workflow.yaml", r.err);
  if (r.exit_status != 0)
    fail_msg("ok-workflow.yaml does not validate (%d):\n%s", r.exit_status, r.err);
  test_cmd_result_free(&r);
}

/* A file in tests/data/bad/ without a row would silently test nothing. */
static void test_every_file_has_a_case(void **state) {
  (void)state;
  DIR *d = opendir(test_path(test_data_dir(), "bad"));
  assert_non_null(d);
  size_t files = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    if (name[0] == '.' || strcmp(name, "ok-workflow.yaml") == 0)
      continue;
    files++;
    bool found = false;
    for (size_t i = 0; i < N_CASES && !found; i++)
      found = cases[i].generate == NULL && strcmp(cases[i].file, name) == 0;
    if (!found)
      fail_msg("tests/data/bad/%s has no row in test_bad_inputs.c", name);
  }
  closedir(d);
  assert_true(files >= 40);
  assert_true(N_CASES + N_CLI_CASES >= 50);
}

/* ---- recursion without end ------------------------------------------------- */

static const char recursive_workflow[] =
    "apiVersion: argoproj.io/v1alpha1\n"
    "kind: Workflow\n"
    "metadata:\n"
    "  name: forever\n"
    "spec:\n"
    "  entrypoint: main\n"
    "  onExit: cleanup\n"
    "  templates:\n"
    "  - name: main\n"
    "    steps:\n"
    "    - - name: again\n"
    "        template: main\n"
    "  - name: cleanup\n"
    "    container:\n"
    "      image: alpine\n"
    "      command: [sh, -c, \"echo cleanup saw {{workflow.status}}\"]\n";

/* Valid in Argo, so it runs: the call that goes past the recursion limit
 * becomes an Error node ("maximum recursion depth exceeded"), its parents
 * fail, the workflow ends Failed (exit 1), and the exit handler still runs
 * once.  What must not happen is a crash or a run that never ends. */
static void test_recursion_without_end_stops(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("skipped: %s\n", why);
    skip();
  }
  const char *wf = test_write_temp("forever.yaml", recursive_workflow);
  assert_non_null(wf);
  char report[4200];
  snprintf(report, sizeof(report), "%s/report.json", test_temp_dir());
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", report, (char *)wf,
                  NULL};
  struct test_cmd_result r = test_run(argv);
  assert_no_sanitizer_report("recursive workflow", r.err);
  if (r.exit_status != 1)
    fail_msg("exit status %d, want 1; stderr:\n%s", r.exit_status, r.err);

  json_error_t jerr;
  json_t *doc = json_load_file(report, 0, &jerr);
  if (doc == NULL)
    fail_msg("no readable report at %s: %s", report, jerr.text);
  const json_t *status = json_object_get(doc, "status");
  assert_string_equal(json_string_value(json_object_get(status, "phase")), "Failed");
  const char *key;
  json_t *node;
  size_t errors = 0;
  json_object_foreach(json_object_get(status, "nodes"), key, node) {
    const char *phase = json_string_value(json_object_get(node, "phase"));
    const char *message = json_string_value(json_object_get(node, "message"));
    if (phase != NULL && strcmp(phase, "Error") == 0) {
      errors++;
      if (message == NULL || strcasestr(message, "recursion depth exceeded") == NULL)
        fail_msg("error node '%s' says '%s'", key, message ? message : "");
    }
  }
  assert_int_equal(errors, 1);
  const json_t *handler = json_object_get(doc, "exitHandler");
  assert_true(json_is_true(json_object_get(handler, "ran")));
  assert_int_equal(json_integer_value(json_object_get(handler, "runs")), 1);
  json_decref(doc);
  test_cmd_result_free(&r);
}

/* ---- main ------------------------------------------------------------------- */

static int enter_work_dir(void **state) {
  (void)state;
  return chdir(work_dir);
}

int main(void) {
  const char *dir = test_temp_dir();
  if (dir == NULL)
    return 1;
  snprintf(work_dir, sizeof(work_dir), "%s", dir);
  /* Relative defaults (reports/out/...) must land somewhere we can watch. */
  if (chdir(work_dir) < 0)
    return 1;

  size_t n = 3 + N_CASES + N_CLI_CASES;
  struct CMUnitTest *tests = calloc(n, sizeof(*tests));
  char **names = calloc(n, sizeof(*names));
  if (tests == NULL || names == NULL)
    return 1;
  size_t k = 0;
  tests[k++] = (struct CMUnitTest)cmocka_unit_test(test_reference_workflow_is_valid);
  tests[k++] = (struct CMUnitTest)cmocka_unit_test(test_every_file_has_a_case);
  for (size_t i = 0; i < N_CASES; i++) {
    if (asprintf(&names[k], "bad input %s", cases[i].file) < 0)
      return 1;
    tests[k] = (struct CMUnitTest){names[k], test_bad_case, enter_work_dir, NULL,
                                   (void *)&cases[i]};
    k++;
  }
  for (size_t i = 0; i < N_CLI_CASES; i++) {
    if (asprintf(&names[k], "command line: %s", cli_cases[i].name) < 0)
      return 1;
    tests[k] = (struct CMUnitTest){names[k], test_cli_case, enter_work_dir, NULL,
                                   (void *)&cli_cases[i]};
    k++;
  }
  tests[k++] = (struct CMUnitTest)cmocka_unit_test(test_recursion_without_end_stops);
  int rc = _cmocka_run_group_tests("bad_inputs", tests, k, NULL, NULL);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  free(tests);
  return rc;
}
