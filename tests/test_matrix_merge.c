/* exitprobe report --merge, through the real binary: the seed matrix run
 * as three shards and merged is the unsharded matrix, cell by cell and row
 * by row; summaries of different matrices, a shard twice or a shard missing
 * are refused with exit 2 and nothing written.  Also: the CI examples in
 * docs/examples/ are YAML the project's own loader reads, and they shard
 * and merge with the commands this test runs. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../runner/yaml_doc.h"
#include "test_helpers.h"

#define SHARDS 3

struct merge_fixture {
  const char *skip_reason;
  char *workflow;
  char *dir;
  char *all;              /* the unsharded matrix's report dir */
  char *shard[SHARDS];    /* shard I's report dir */
  struct test_cmd_result all_run;
  int shard_status[SHARDS];
};

static char *dup_path(const char *dir, const char *name) { return strdup(test_path(dir, name)); }

static int run_matrix(const char *workflow, const char *faults, const char *shard,
                      const char *report_dir, struct test_cmd_result *keep) {
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)test_exitprobe_bin();
  argv[n++] = "matrix";
  argv[n++] = "-j";
  argv[n++] = "2";
  argv[n++] = "--color";
  argv[n++] = "never";
  if (faults != NULL) {
    argv[n++] = "--faults";
    argv[n++] = (char *)faults;
  }
  if (shard != NULL) {
    argv[n++] = "--shard";
    argv[n++] = (char *)shard;
  }
  argv[n++] = "--report-dir";
  argv[n++] = (char *)report_dir;
  argv[n++] = (char *)workflow;
  argv[n] = NULL;
  struct test_cmd_result r = test_run(argv);
  int status = r.exit_status;
  if (status != 0)
    fprintf(stderr, "matrix %s %s: exit %d\n%s\n", faults ? faults : "all", shard ? shard : "",
            status, r.err);
  if (keep != NULL)
    *keep = r;
  else
    test_cmd_result_free(&r);
  return status;
}

static int group_setup(void **state) {
  struct merge_fixture *fx = calloc(1, sizeof(*fx));
  *state = fx;
  fx->skip_reason = test_sandbox_unavailable();
  if (fx->skip_reason != NULL)
    return 0;
  fx->workflow = strdup(test_path(test_source_root(), "scenarios/exit-handler-workflow.yaml"));
  fx->dir = strdup(test_temp_dir());
  fx->all = dup_path(fx->dir, "all");
  run_matrix(fx->workflow, NULL, NULL, fx->all, &fx->all_run);
  for (int i = 0; i < SHARDS; i++) {
    char name[16], shard[16];
    snprintf(name, sizeof(name), "shard-%d", i + 1);
    snprintf(shard, sizeof(shard), "%d/%d", i + 1, SHARDS);
    fx->shard[i] = dup_path(fx->dir, name);
    fx->shard_status[i] = run_matrix(fx->workflow, NULL, shard, fx->shard[i], NULL);
  }
  return 0;
}

static int group_teardown(void **state) {
  struct merge_fixture *fx = *state;
  test_cmd_result_free(&fx->all_run);
  for (int i = 0; i < SHARDS; i++)
    free(fx->shard[i]);
  free(fx->all);
  free(fx->dir);
  free(fx->workflow);
  free(fx);
  return 0;
}

static struct merge_fixture *fixture(void **state) {
  struct merge_fixture *fx = *state;
  if (fx->skip_reason != NULL) {
    print_message("skipped: %s\n", fx->skip_reason);
    skip();
  }
  assert_int_equal(fx->all_run.exit_status, 0);
  for (int i = 0; i < SHARDS; i++)
    assert_int_equal(fx->shard_status[i], 0);
  return fx;
}

/* exitprobe report --merge [extra] PATHS... -o out */
static struct test_cmd_result merge(const char *out, const char *extra, const char *const *paths,
                                    size_t n) {
  char *argv[16];
  size_t k = 0;
  argv[k++] = (char *)test_exitprobe_bin();
  argv[k++] = "report";
  argv[k++] = "--merge";
  argv[k++] = "--color";
  argv[k++] = "never";
  if (extra != NULL)
    argv[k++] = (char *)extra;
  for (size_t i = 0; i < n && k < 12; i++)
    argv[k++] = (char *)paths[i];
  argv[k++] = "-o";
  argv[k++] = (char *)out;
  argv[k] = NULL;
  return test_run(argv);
}

static json_t *load_json(const char *path) {
  json_error_t jerr;
  json_t *doc = json_load_file(path, 0, &jerr);
  if (doc == NULL)
    fail_msg("%s: %s", path, jerr.text);
  return doc;
}

/* The table's lines: from the header to the count, nothing else. */
static char *table_of(const char *out) {
  const char *start = strstr(out, "  CELL  FAULT");
  assert_non_null(start);
  const char *count = strstr(start, " cells: exit handler once in ");
  assert_non_null(count);
  const char *end = strchr(count, '\n');
  assert_non_null(end);
  return strndup(start, (size_t)(end - start + 1));
}

static void test_three_shards_merge_to_the_unsharded_matrix(void **state) {
  struct merge_fixture *fx = fixture(state);
  const char *out = test_path(fx->dir, "merged/summary.json");
  char *merged_path = strdup(out);
  /* The shards in another order, as directories and as a file. */
  const char *paths[] = {fx->shard[2], test_path(fx->shard[0], "summary.json"), fx->shard[1]};
  struct test_cmd_result r = merge(merged_path, NULL, paths, 3);
  if (r.exit_status != 0)
    fail_msg("merge: exit %d\n%s%s", r.exit_status, r.out, r.err);
  json_t *all = load_json(test_path(fx->all, "summary.json"));
  json_t *merged = load_json(merged_path);
  const json_t *a = json_object_get(all, "cells"), *m = json_object_get(merged, "cells");
  assert_int_equal(json_array_size(a), 36);
  assert_int_equal(json_array_size(m), json_array_size(a));
  for (size_t i = 0; i < json_array_size(a); i++) {
    if (json_equal(json_array_get(a, i), json_array_get(m, i)))
      continue;
    char *x = json_dumps(json_array_get(a, i), JSON_COMPACT);
    char *y = json_dumps(json_array_get(m, i), JSON_COMPACT);
    fail_msg("cell %zu differs:\nunsharded %s\nmerged    %s", i, x, y);
  }
  static const char *const same[] = {"workflow", "workflowDigest", "seed", "faults", "cellsTotal",
                                     "cellsSelected", "cellsFinished", "complete", "interrupted"};
  for (size_t k = 0; k < sizeof(same) / sizeof(same[0]); k++)
    if (!json_equal(json_object_get(all, same[k]), json_object_get(merged, same[k])))
      fail_msg("%s differs between the unsharded and the merged summary", same[k]);
  assert_true(json_is_null(json_object_get(merged, "shard")));
  assert_int_equal(json_array_size(json_object_get(merged, "mergedFrom")), SHARDS);
  /* The table the matrix printed, row for row. */
  char *want = table_of(fx->all_run.out), *got = table_of(r.out);
  assert_string_equal(got, want);
  free(want);
  free(got);
  /* Written atomically: nothing but the summary in its directory. */
  const char *dir = test_path(fx->dir, "merged");
  char *listing = NULL;
  {
    char *argv[] = {"/bin/ls", "-A", (char *)dir, NULL};
    struct test_cmd_result ls = test_run(argv);
    listing = strdup(ls.out);
    test_cmd_result_free(&ls);
  }
  assert_string_equal(listing, "summary.json\n");
  free(listing);
  json_decref(all);
  json_decref(merged);
  free(merged_path);
  test_cmd_result_free(&r);
}

static void test_require_once_exits_as_the_matrix(void **state) {
  struct merge_fixture *fx = fixture(state);
  const char *paths[] = {fx->shard[0], fx->shard[1], fx->shard[2]};
  char *out = strdup(test_path(fx->dir, "require-once.json"));
  struct test_cmd_result r = merge(out, "--require-once", paths, 3);
  /* The seed's crash cells run the handler twice: the matrix exits 1. */
  assert_int_equal(r.exit_status, 1);
  struct stat sb;
  assert_int_equal(stat(out, &sb), 0); /* the summary is written all the same */
  test_cmd_result_free(&r);
  free(out);
}

/* A bad merge: exit 2, the message names what, nothing at out, and a file
 * already there is left as it was. */
static void expect_refused(const char *const *paths, size_t n, const char *dir, const char *needle1,
                           const char *needle2) {
  char *out = strdup(test_path(dir, "refused.json"));
  FILE *f = fopen(out, "w");
  assert_non_null(f);
  fputs("previous\n", f);
  fclose(f);
  struct test_cmd_result r = merge(out, NULL, paths, n);
  if (r.exit_status != 2)
    fail_msg("exit %d, expected 2\nstdout:\n%s\nstderr:\n%s", r.exit_status, r.out, r.err);
  if (strstr(r.err, needle1) == NULL || (needle2 != NULL && strstr(r.err, needle2) == NULL))
    fail_msg("stderr does not say '%s'%s%s:\n%s", needle1, needle2 ? " and " : "",
             needle2 ? needle2 : "", r.err);
  char *now = test_read_file(out);
  assert_non_null(now);
  assert_string_equal(now, "previous\n");
  free(now);
  test_cmd_result_free(&r);
  free(out);
}

static void test_missing_shard_refused(void **state) {
  struct merge_fixture *fx = fixture(state);
  const char *paths[] = {fx->shard[0], fx->shard[2]};
  expect_refused(paths, 2, fx->dir, "shard 2/3 missing", NULL);
  const char *one[] = {fx->shard[1]};
  expect_refused(one, 1, fx->dir, "shards 1/3, 3/3 missing", NULL);
}

static void test_overlapping_shards_refused(void **state) {
  struct merge_fixture *fx = fixture(state);
  char *twice = strdup(test_path(fx->shard[1], "summary.json"));
  const char *paths[] = {fx->shard[0], fx->shard[1], fx->shard[2], twice};
  expect_refused(paths, 4, fx->dir, twice, "overlaps");
  const char *whole[] = {fx->shard[0], fx->all};
  char *all = strdup(test_path(fx->all, "summary.json"));
  expect_refused(whole, 2, fx->dir, all, "whole matrix");
  free(all);
  free(twice);
}

static void test_different_matrices_refused(void **state) {
  struct merge_fixture *fx = fixture(state);
  /* The same workflow with one more line: another file, another matrix. */
  char *text = test_read_file(fx->workflow);
  assert_non_null(text);
  size_t len = strlen(text);
  char *changed = malloc(len + 32);
  snprintf(changed, len + 32, "%s# changed\n", text);
  char *other = strdup(test_write_temp("exit-handler-workflow.yaml", changed));
  char *d1 = dup_path(fx->dir, "exit-1"), *d2 = dup_path(fx->dir, "exit-2-other");
  char *d3 = dup_path(fx->dir, "exit-sigkill-2");
  assert_int_equal(run_matrix(fx->workflow, "exit", "1/2", d1, NULL), 0);
  assert_int_equal(run_matrix(other, "exit", "2/2", d2, NULL), 0);
  char *s2 = strdup(test_path(d2, "summary.json"));
  const char *paths[] = {d1, d2};
  expect_refused(paths, 2, fx->dir, s2, "workflowDigest");
  /* The same file, another --faults: other cells. */
  assert_int_equal(run_matrix(fx->workflow, "exit,sigkill", "2/2", d3, NULL), 0);
  const char *faults[] = {d1, d3};
  expect_refused(faults, 2, fx->dir, "faults", "\"exit,sigkill\"");
  /* Another split of the same matrix. */
  char *d4 = dup_path(fx->dir, "all-2-of-2");
  assert_int_equal(run_matrix(fx->workflow, NULL, "2/2", d4, NULL), 0);
  const char *split[] = {fx->shard[0], d4};
  expect_refused(split, 2, fx->dir, "shard 2/2, but", "is shard 1/3");
  free(d4);
  free(s2);
  free(d1);
  free(d2);
  free(d3);
  free(other);
  free(changed);
  free(text);
}

static void test_not_a_summary_refused(void **state) {
  struct merge_fixture *fx = fixture(state);
  char *cell = strdup(test_path(fx->shard[0], "cell-000.json"));
  const char *paths[] = {cell};
  expect_refused(paths, 1, fx->dir, cell, "not a matrix summary");
  free(cell);
  /* --merge without -o, or with --format: usage. */
  char *argv[] = {(char *)test_exitprobe_bin(), "report", "--merge", fx->shard[0], NULL};
  struct test_cmd_result r = test_run(argv);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "-o"));
  test_cmd_result_free(&r);
}

/* ---- the CI examples ----------------------------------------------------- */

static const struct ydoc_node *get_path(const struct ydoc_node *n, const char *const *keys) {
  for (; n != NULL && *keys != NULL; keys++)
    n = ydoc_get(n, *keys);
  return n;
}

/* Every scalar of the document, concatenated: the job scripts. */
static void all_scalars(const struct ydoc_node *n, FILE *out) {
  if (n == NULL)
    return;
  if (n->kind == YDOC_SCALAR) {
    fprintf(out, "%s\n", n->scalar);
    return;
  }
  for (size_t i = 0; i < n->n_items; i++)
    all_scalars(n->items[i], out);
  for (size_t i = 0; i < n->n_pairs; i++)
    all_scalars(n->pairs[i].value, out);
}

static struct ydoc *load_example(const char *name, char **text) {
  char rel[128];
  snprintf(rel, sizeof(rel), "docs/examples/%s", name);
  const char *path = test_path(test_source_root(), rel);
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  if (ydoc_load_file(path, NULL, &doc, &err) < 0)
    fail_msg("%s:%d:%d: %s", err->file ? err->file : path, err->line, err->column, err->message);
  assert_non_null(doc->root);
  assert_int_equal(doc->root->kind, YDOC_MAPPING);
  size_t len = 0;
  FILE *out = open_memstream(text, &len);
  all_scalars(doc->root, out);
  fclose(out);
  return doc;
}

static void expect_commands(const char *name, const char *text) {
  static const char *const needles[] = {"exitprobe matrix", "--shard", "--report-dir",
                                        "exitprobe report --merge", "--format junit"};
  for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
    if (strstr(text, needles[i]) == NULL)
      fail_msg("%s does not contain '%s'", name, needles[i]);
}

static void test_github_actions_example_parses(void **state) {
  (void)state;
  char *text = NULL;
  struct ydoc *doc = load_example("github-actions-matrix.yml", &text);
  static const char *const shard_path[] = {"jobs", "matrix", "strategy", "matrix", "shard", NULL};
  static const char *const merge_needs[] = {"jobs", "merge", "needs", NULL};
  const struct ydoc_node *shards = get_path(doc->root, shard_path);
  assert_non_null(shards);
  assert_int_equal(shards->kind, YDOC_SEQUENCE);
  assert_true(shards->n_items >= 2);
  assert_non_null(get_path(doc->root, merge_needs));
  expect_commands("github-actions-matrix.yml", text);
  free(text);
  ydoc_free(doc);
}

static void test_gitlab_ci_example_parses(void **state) {
  (void)state;
  char *text = NULL;
  struct ydoc *doc = load_example("gitlab-ci-matrix.yml", &text);
  static const char *const parallel[] = {"exitprobe-matrix", "parallel", NULL};
  static const char *const needs[] = {"exitprobe-merge", "needs", NULL};
  const struct ydoc_node *p = get_path(doc->root, parallel);
  assert_non_null(p);
  long long n = 0;
  assert_int_equal(ydoc_as_int(p, &n), 0);
  assert_true(n >= 2);
  assert_non_null(get_path(doc->root, needs));
  expect_commands("gitlab-ci-matrix.yml", text);
  /* GitLab numbers the parallel jobs 1..N in these two variables. */
  assert_non_null(strstr(text, "CI_NODE_INDEX"));
  assert_non_null(strstr(text, "CI_NODE_TOTAL"));
  free(text);
  ydoc_free(doc);
}

int main(void) {
  const struct CMUnitTest merges[] = {
      cmocka_unit_test(test_three_shards_merge_to_the_unsharded_matrix),
      cmocka_unit_test(test_require_once_exits_as_the_matrix),
      cmocka_unit_test(test_missing_shard_refused),
      cmocka_unit_test(test_overlapping_shards_refused),
      cmocka_unit_test(test_different_matrices_refused),
      cmocka_unit_test(test_not_a_summary_refused),
  };
  const struct CMUnitTest examples[] = {
      cmocka_unit_test(test_github_actions_example_parses),
      cmocka_unit_test(test_gitlab_ci_example_parses),
  };
  int failed = cmocka_run_group_tests_name("merge", merges, group_setup, group_teardown);
  failed += cmocka_run_group_tests_name("ci-examples", examples, NULL, NULL);
  return failed;
}
