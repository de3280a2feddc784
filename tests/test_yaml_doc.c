/* Tests for the YAML document tree (runner/yaml_doc.c). */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "yaml_doc.h"

/* The seed lesson's workflow, copied unchanged into scenarios/. */
static const char *seed_workflow(void) {
  static char path[4096];
  const char *root = getenv("EXITPROBE_SOURCE_ROOT");
  snprintf(path, sizeof(path), "%s/scenarios/exit-handler-workflow.yaml", root ? root : ".");
  return path;
}
#define SEED_WORKFLOW seed_workflow()

/* ---- helpers ------------------------------------------------------------- */

static struct ydoc *load_ok_n(const char *text, size_t len, const struct ydoc_limits *lim) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  int rc = ydoc_load_buffer("t.yaml", text, len, lim, &doc, &err);
  if (rc != 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
  }
  assert_int_equal(rc, 0);
  assert_null(err);
  assert_non_null(doc);
  return doc;
}

static struct ydoc *load_ok(const char *text) { return load_ok_n(text, strlen(text), NULL); }

static ep_error *load_err_n(const char *text, size_t len, const struct ydoc_limits *lim) {
  struct ydoc *doc = (struct ydoc *)&doc; /* must be reset to NULL */
  ep_error *err = NULL;
  int rc = ydoc_load_buffer("t.yaml", text, len, lim, &doc, &err);
  assert_int_equal(rc, -1);
  assert_null(doc);
  assert_non_null(err);
  assert_non_null(err->message);
  return err;
}

static ep_error *load_err(const char *text, const struct ydoc_limits *lim) {
  return load_err_n(text, strlen(text), lim);
}

/* Asserts status, position and a message fragment, then frees the error. */
static void check_error(ep_error *err, int line, int column, const char *fragment) {
  if (strstr(err->message, fragment) == NULL || err->line != line || err->column != column)
    fprintf(stderr, "got %d:%d '%s', want %d:%d '%s'\n", err->line, err->column, err->message, line,
            column, fragment);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_non_null(err->file);
  assert_string_equal(err->file, "t.yaml");
  assert_non_null(strstr(err->message, fragment));
  assert_int_equal(err->line, line);
  assert_int_equal(err->column, column);
  ep_error_free(&err);
}

static void expect_error(const char *text, int line, int column, const char *fragment) {
  check_error(load_err(text, NULL), line, column, fragment);
}

static const struct ydoc_node *path_get(const struct ydoc_node *n, const char *a, const char *b) {
  n = ydoc_get(n, a);
  return b ? ydoc_get(n, b) : n;
}

static void assert_scalar(const struct ydoc_node *n, const char *text) {
  assert_non_null(n);
  assert_int_equal(n->kind, YDOC_SCALAR);
  assert_string_equal(n->scalar, text);
  assert_int_equal(n->len, strlen(text));
}

static void assert_pos(const struct ydoc_node *n, int line, int column) {
  assert_non_null(n);
  assert_int_equal(n->line, line);
  assert_int_equal(n->column, column);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* tests/data, from the environment meson sets, else next to this file. */
static const char *data_path(const char *name) {
  static char buf[4096];
  const char *dir = getenv("EXITPROBE_TEST_DATA");
  if (dir != NULL && *dir != '\0') {
    snprintf(buf, sizeof(buf), "%s/yaml/%s", dir, name);
  } else {
    const char *self = __FILE__;
    const char *slash = strrchr(self, '/');
    int dirlen = slash ? (int)(slash - self) : 1;
    snprintf(buf, sizeof(buf), "%.*s/data/yaml/%s", dirlen, slash ? self : ".", name);
  }
  return buf;
}

/* Nine levels of ten aliases each: 10^9 nodes if anyone expanded it. */
static char *billion_laughs(int levels) {
  size_t cap = 80 + (size_t)levels * 80;
  char *s = malloc(cap);
  assert_non_null(s);
  int off = snprintf(s, cap, "l0: &l0 [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
  for (int i = 1; i < levels; i++) {
    off += snprintf(s + off, cap - (size_t)off, "l%d: &l%d [", i, i);
    for (int j = 0; j < 10; j++)
      off += snprintf(s + off, cap - (size_t)off, "%s*l%d", j ? "," : "", i - 1);
    off += snprintf(s + off, cap - (size_t)off, "]\n");
  }
  return s;
}

/* ---- structure and positions ---------------------------------------------- */

static void test_structure_and_positions(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("apiVersion: v1\n"
                             "spec:\n"
                             "  list:\n"
                             "    - one\n"
                             "    - \"two\"\n"
                             "  empty:\n"
                             "  nested: {a: 1, b: [x, y]}\n");
  const struct ydoc_node *root = doc->root;
  assert_int_equal(root->kind, YDOC_MAPPING);
  assert_pos(root, 1, 1);
  assert_int_equal(root->n_pairs, 2);
  assert_scalar(root->pairs[0].key, "apiVersion");
  assert_pos(root->pairs[0].key, 1, 1);
  assert_scalar(root->pairs[0].value, "v1");
  assert_pos(root->pairs[0].value, 1, 13);
  assert_scalar(root->pairs[1].key, "spec");

  const struct ydoc_node *spec = ydoc_get(root, "spec");
  assert_int_equal(spec->kind, YDOC_MAPPING);
  assert_pos(spec, 3, 3);
  assert_int_equal(spec->n_pairs, 3);

  const struct ydoc_node *list = ydoc_get(spec, "list");
  assert_int_equal(list->kind, YDOC_SEQUENCE);
  assert_pos(list, 4, 5);
  assert_int_equal(list->n_items, 2);
  assert_scalar(list->items[0], "one");
  assert_pos(list->items[0], 4, 7);
  assert_true(list->items[0]->plain);
  assert_scalar(list->items[1], "two");
  assert_pos(list->items[1], 5, 7);
  assert_false(list->items[1]->plain);

  const struct ydoc_node *empty = ydoc_get(spec, "empty");
  assert_non_null(empty);
  assert_true(ydoc_is_null(empty));
  assert_pos(empty, 6, 9);

  const struct ydoc_node *nested = ydoc_get(spec, "nested");
  assert_int_equal(nested->kind, YDOC_MAPPING);
  assert_pos(nested, 7, 11);
  const struct ydoc_node *b = ydoc_get(nested, "b");
  assert_int_equal(b->kind, YDOC_SEQUENCE);
  assert_pos(b, 7, 21);
  assert_scalar(b->items[1], "y");
  assert_pos(b->items[1], 7, 25);

  assert_null(ydoc_get(spec, "missing"));
  assert_null(ydoc_get(list, "one"));
  assert_null(ydoc_get(NULL, "x"));
  assert_string_equal(doc->file, "t.yaml");
  ydoc_free(doc);
}

static void test_scalar_styles_and_tags(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("plain: hello world\n"
                             "single: 'it''s'\n"
                             "double: \"tab\\there\"\n"
                             "str: !!str 5\n"
                             "custom: !thing x\n"
                             "untagged: 5\n"
                             "quoted_null: \"null\"\n");
  const struct ydoc_node *r = doc->root;
  assert_scalar(ydoc_get(r, "plain"), "hello world");
  assert_true(ydoc_get(r, "plain")->plain);
  assert_scalar(ydoc_get(r, "single"), "it's");
  assert_false(ydoc_get(r, "single")->plain);
  assert_scalar(ydoc_get(r, "double"), "tab\there");
  assert_false(ydoc_get(r, "double")->plain);
  assert_string_equal(ydoc_get(r, "str")->tag, "tag:yaml.org,2002:str");
  assert_true(ydoc_get(r, "str")->plain);
  assert_string_equal(ydoc_get(r, "custom")->tag, "!thing");
  assert_null(ydoc_get(r, "untagged")->tag);
  assert_false(ydoc_is_null(ydoc_get(r, "quoted_null")));
  ydoc_free(doc);
}

static void test_block_scalars(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("literal: |\n"
                             "  line one\n"
                             "    indented\n"
                             "  line three\n"
                             "folded: >\n"
                             "  a\n"
                             "  b\n"
                             "strip: |-\n"
                             "  x\n"
                             "after: 1\n");
  assert_scalar(ydoc_get(doc->root, "literal"), "line one\n  indented\nline three\n");
  assert_false(ydoc_get(doc->root, "literal")->plain);
  assert_pos(ydoc_get(doc->root, "literal"), 1, 10);
  assert_scalar(ydoc_get(doc->root, "folded"), "a b\n");
  assert_scalar(ydoc_get(doc->root, "strip"), "x");
  ydoc_free(doc);
}

/* ---- anchors, aliases, merge keys ---------------------------------------- */

static bool drop_name(const char *key, void *ctx) {
  (void)ctx;
  return strcmp(key, "name") != 0;
}

/* spec.templateDefaults under a template: mappings merge recursively, the
 * patch wins on scalars and lists, a null in the patch keeps the base, and
 * keep_base drops top-level keys of the base only. */
static void test_merge(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("base:\n  name: d\n  timeout: 30s\n  retry: {limit: '2', policy: Always}\n"
                             "  list: [1, 2]\n  keep: k\n"
                             "patch:\n  name: t\n  retry: {limit: '5'}\n  list: [3]\n  keep: ~\n"
                             "  extra: x\n");
  const struct ydoc_node *base = ydoc_get(doc->root, "base"), *patch = ydoc_get(doc->root, "patch");
  const struct ydoc_node *m = ydoc_merge(doc, base, patch, drop_name, NULL);
  assert_non_null(m);
  assert_int_equal(m->kind, YDOC_MAPPING);
  assert_string_equal(ydoc_get(m, "name")->scalar, "t");
  assert_string_equal(ydoc_get(m, "timeout")->scalar, "30s");
  assert_string_equal(ydoc_get(ydoc_get(m, "retry"), "limit")->scalar, "5");
  assert_string_equal(ydoc_get(ydoc_get(m, "retry"), "policy")->scalar, "Always");
  assert_int_equal(ydoc_get(m, "list")->n_items, 1);
  assert_string_equal(ydoc_get(m, "keep")->scalar, "k");
  assert_string_equal(ydoc_get(m, "extra")->scalar, "x");
  assert_int_equal(m->n_pairs, 6);
  /* The inputs are untouched and positions come from where a value was written. */
  assert_string_equal(ydoc_get(ydoc_get(base, "retry"), "limit")->scalar, "2");
  assert_int_equal(ydoc_get(m, "timeout")->line, 3);
  ydoc_free(doc);
}

static void test_anchors_share_nodes(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("base: &base\n"
                             "  image: alpine\n"
                             "  command: [sh]\n"
                             "a: *base\n"
                             "b: *base\n"
                             "s: &s text\n"
                             "t: *s\n"
                             "r: &s redefined\n"
                             "u: *s\n");
  const struct ydoc_node *base = ydoc_get(doc->root, "base");
  assert_int_equal(base->kind, YDOC_MAPPING);
  assert_ptr_equal(ydoc_get(doc->root, "a"), base);
  assert_ptr_equal(ydoc_get(doc->root, "b"), base);
  /* An alias has the anchored node's position; an anchored collection
   * starts at its anchor, as libyaml marks it. */
  assert_pos(ydoc_get(doc->root, "a"), 1, 7);
  assert_ptr_equal(ydoc_get(doc->root, "t"), ydoc_get(doc->root, "s"));
  /* A redefined anchor refers to the latest definition from then on. */
  assert_scalar(ydoc_get(doc->root, "u"), "redefined");
  ydoc_free(doc);
}

static void test_alias_as_key(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("k: &k name\n*k : 2\n");
  assert_scalar(ydoc_get(doc->root, "name"), "2");
  ydoc_free(doc);
  expect_error("&k a: 1\n*k : 2\n", 2, 1, "duplicate key 'a' (first at line 1)");
}

static void test_alias_errors(void **state) {
  (void)state;
  expect_error("a: 1\nb: *nope\n", 2, 4, "undefined alias '*nope'");
  expect_error("a: &a [1, *a]\n", 1, 11, "refers to a node that contains it");
  expect_error("a: &a {k: *a}\n", 1, 11, "refers to a node that contains it");
}

static void test_merge_keys(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("defaults: &defaults\n"
                             "  image: alpine\n"
                             "  imagePullPolicy: Always\n"
                             "  env: prod\n"
                             "extra: &extra\n"
                             "  env: staging\n"
                             "  cpu: \"1\"\n"
                             "one:\n"
                             "  name: x\n"
                             "  <<: *defaults\n"
                             "  image: busybox\n"
                             "two:\n"
                             "  <<: [*extra, *defaults]\n"
                             "three:\n"
                             "  <<: {k: v}\n"
                             "  k: mine\n"
                             "four:\n"
                             "  \"<<\": quoted is an ordinary key\n");
  const struct ydoc_node *one = ydoc_get(doc->root, "one");
  assert_int_equal(one->n_pairs, 4);
  /* Merged pairs take the place of '<<'; the mapping's own key wins even
   * when written after the merge. */
  assert_scalar(one->pairs[0].key, "name");
  assert_scalar(one->pairs[1].key, "imagePullPolicy");
  assert_scalar(one->pairs[2].key, "env");
  assert_scalar(one->pairs[3].key, "image");
  assert_scalar(ydoc_get(one, "image"), "busybox");
  assert_scalar(ydoc_get(one, "env"), "prod");
  assert_null(ydoc_get(one, "<<"));
  const struct ydoc_node *defaults = ydoc_get(doc->root, "defaults");
  assert_ptr_equal(ydoc_get(one, "imagePullPolicy"), ydoc_get(defaults, "imagePullPolicy"));
  assert_int_equal(defaults->n_pairs, 3); /* the source is untouched */

  const struct ydoc_node *two = ydoc_get(doc->root, "two");
  assert_int_equal(two->n_pairs, 4);
  assert_scalar(ydoc_get(two, "env"), "staging"); /* earlier source wins */
  assert_scalar(ydoc_get(two, "cpu"), "1");
  assert_scalar(ydoc_get(two, "image"), "alpine");
  assert_scalar(ydoc_get(two, "imagePullPolicy"), "Always");

  const struct ydoc_node *three = ydoc_get(doc->root, "three");
  assert_int_equal(three->n_pairs, 1);
  assert_scalar(ydoc_get(three, "k"), "mine");

  assert_scalar(ydoc_get(ydoc_get(doc->root, "four"), "<<"), "quoted is an ordinary key");
  ydoc_free(doc);
}

static void test_merge_key_errors(void **state) {
  (void)state;
  expect_error("s: &s 1\nm:\n  <<: *s\n", 3, 7, "merge key '<<' must be a mapping");
  expect_error("m: {<<: [{a: 1}, 5]}\n", 1, 18, "may only contain mappings");
  expect_error("a: &a {x: 1}\nm:\n  <<: *a\n  <<: *a\n", 4, 3,
               "duplicate key '<<' (first at line 3)");
  /* Merging does not hide real duplicates. */
  expect_error("a: &a {x: 1}\nm:\n  <<: *a\n  y: 1\n  y: 2\n", 5, 3,
               "duplicate key 'y' (first at line 4)");
}

static void test_merge_bomb_is_bounded(void **state) {
  (void)state;
  /* A 500-key mapping merged into 5000 mappings would copy 2.5M pairs. */
  size_t cap = 64 * 1024 + 5000 * 16;
  char *s = malloc(cap);
  assert_non_null(s);
  int off = snprintf(s, cap, "base: &b {");
  for (int i = 0; i < 500; i++)
    off += snprintf(s + off, cap - (size_t)off, "%sk%d: v", i ? ", " : "", i);
  off += snprintf(s + off, cap - (size_t)off, "}\nlist:\n");
  for (int i = 0; i < 5000; i++)
    off += snprintf(s + off, cap - (size_t)off, "- <<: *b\n");
  ep_error *err = load_err(s, NULL);
  assert_non_null(strstr(err->message, "alias expansion exceeds 1000000 nodes"));
  ep_error_free(&err);
  free(s);
}

static void test_billion_laughs_fails_fast(void **state) {
  (void)state;
  char *s = billion_laughs(9);
  double t0 = now_seconds();
  ep_error *err = load_err(s, NULL);
  double elapsed = now_seconds() - t0;
  /* l5 reaches 1 + 10 * 111111 nodes at its tenth alias (column 46). */
  check_error(err, 6, 46, "alias expansion exceeds 1000000 nodes");
  assert_true(elapsed < 0.5);
  free(s);
}

static void test_billion_laughs_fixture(void **state) {
  (void)state;
  struct ydoc *doc = (struct ydoc *)&doc;
  ep_error *err = NULL;
  const char *path = data_path("billion-laughs.yaml");
  assert_int_equal(ydoc_load_file(path, NULL, &doc, &err), -1);
  assert_null(doc);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_string_equal(err->file, path);
  assert_int_equal(err->line, 7);
  assert_non_null(strstr(err->message, "alias expansion exceeds"));
  ep_error_free(&err);
}

static void test_expansion_counting_never_overflows(void **state) {
  (void)state;
  struct ydoc_limits lim = ydoc_default_limits;
  lim.max_expanded_nodes = SIZE_MAX;
  /* With no cap the DAG is small: sharing keeps 10^9 nodes in ~100. */
  char *s = billion_laughs(9);
  struct ydoc *doc = load_ok_n(s, strlen(s), &lim);
  const struct ydoc_node *l8 = ydoc_get(doc->root, "l8");
  assert_int_equal(l8->n_items, 10);
  assert_ptr_equal(l8->items[0], ydoc_get(doc->root, "l7"));
  ydoc_free(doc);
  free(s);
  /* 10^20 is more than SIZE_MAX: the count must saturate into an error. */
  s = billion_laughs(21);
  ep_error *err = load_err(s, &lim);
  assert_non_null(strstr(err->message, "alias expansion exceeds"));
  assert_int_equal(err->line, 20);
  ep_error_free(&err);
  free(s);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_duplicate_keys(void **state) {
  (void)state;
  expect_error("metadata:\n"
               "  name: a\n"
               "  labels: {}\n"
               "  name: b\n",
               4, 3, "duplicate key 'name' (first at line 2)");
  expect_error("{a: 1, b: 2, a: 3}\n", 1, 14, "duplicate key 'a' (first at line 1)");
  /* Keys compare by text: a quoted and a plain spelling collide. */
  expect_error("1: x\n\"1\": y\n", 2, 1, "duplicate key '1'");
}

static void test_many_keys_are_fast(void **state) {
  (void)state;
  /* Quadratic duplicate detection would take minutes here; linear takes a
   * fraction of a second, or seconds under valgrind. */
  enum { N = 400000 };
  size_t cap = (size_t)N * 24 + 64;
  char *s = malloc(cap);
  assert_non_null(s);
  int off = 0;
  for (int i = 0; i < N; i++)
    off += snprintf(s + off, cap - (size_t)off, "key%d: %d\n", i, i);
  double t0 = now_seconds();
  struct ydoc *doc = load_ok(s);
  assert_int_equal(doc->root->n_pairs, N);
  long long v = 0;
  assert_int_equal(ydoc_as_int(ydoc_get(doc->root, "key399999"), &v), 0);
  assert_int_equal(v, 399999);
  ydoc_free(doc);
  /* The same with a duplicate at the very end. */
  snprintf(s + off, cap - (size_t)off, "key7: again\n");
  check_error(load_err(s, NULL), N + 1, 1, "duplicate key 'key7' (first at line 8)");
  assert_true(now_seconds() - t0 < 30.0);
  free(s);
}

static void test_non_scalar_keys(void **state) {
  (void)state;
  expect_error("? [a, b]\n: 1\n", 1, 3, "mapping keys must be scalars, found a sequence");
  expect_error("{x: 1}: 2\n", 1, 1, "mapping keys must be scalars, found a mapping");
  expect_error("m: &m {a: 1}\n*m : 2\n", 2, 1, "found a mapping");
}

static void test_second_document(void **state) {
  (void)state;
  expect_error("a: 1\n---\nb: 2\n", 2, 1,
               "multiple YAML documents in one file are not supported; "
               "found a second document");
  expect_error("---\na: 1\n---\n", 3, 1, "found a second document");
  expect_error("a: 1\n...\n--- x\n", 3, 1, "found a second document");
  /* An explicit end marker alone is still one document. */
  struct ydoc *doc = load_ok("---\na: 1\n...\n");
  assert_scalar(ydoc_get(doc->root, "a"), "1");
  ydoc_free(doc);
}

static void test_syntax_errors(void **state) {
  (void)state;
  /* Bad indentation: a deeper key after a scalar value. */
  expect_error("a: 1\n  b: 2\n", 2, 4, "mapping values are not allowed in this context");
  /* Bad indentation: a key indented less than its siblings. */
  expect_error("a:\n  b: 1\n c: 2\n", 3, 2, "did not find expected key");
  /* Unclosed quote: reported where the quote opens, not past the last line. */
  expect_error("a: \"abc\nb: 2\n", 1, 4,
               "the quoted scalar that starts here is never closed (found unexpected end of "
               "stream)");
  /* Tab used for indentation. */
  expect_error("a:\n\tb: 1\n", 2, 1, "found character that cannot start any token");
  expect_error("a:\n  b: 1\n\tc: 2\n", 3, 1, "found a tab character that violates indentation");
  expect_error("a: [1, 2\nb: 3\n", 2, 2,
               "did not find expected ',' or ']' (while parsing a flow sequence started at line "
               "1, column 4)");
}

static void test_invalid_bytes(void **state) {
  (void)state;
  static const char nul[] = "a: 1\nb: x\0y\n";
  check_error(load_err_n(nul, sizeof(nul) - 1, NULL), 2, 5, "control characters are not allowed");
  static const char bad[] = "a: 1\nbc: \xff\n";
  check_error(load_err_n(bad, sizeof(bad) - 1, NULL), 2, 5, "invalid leading UTF-8 octet");
  /* Column counts characters: the two-byte é is one column. */
  static const char ctl[] = "a: \xc3\xa9x\x01\n";
  check_error(load_err_n(ctl, sizeof(ctl) - 1, NULL), 1, 6, "control characters are not allowed");
  /* An escaped NUL inside a quoted scalar would truncate C strings. */
  expect_error("a: 1\nb: \"x\\0y\"\n", 2, 4, "scalar contains a NUL character");
  /* A UTF-8 byte order mark is fine. */
  struct ydoc *doc = load_ok("\xef\xbb\xbf"
                             "a: \xc3\xa9\n");
  assert_scalar(ydoc_get(doc->root, "a"), "\xc3\xa9");
  ydoc_free(doc);
}

/* ---- limits -------------------------------------------------------------- */

static char *nested(int depth) {
  char *s = malloc((size_t)depth * 2 + 2);
  assert_non_null(s);
  memset(s, '[', (size_t)depth);
  memset(s + depth, ']', (size_t)depth);
  s[2 * depth] = '\n';
  s[2 * depth + 1] = '\0';
  return s;
}

static void test_depth_limit(void **state) {
  (void)state;
  char *s = nested(300);
  expect_error(s, 1, 257, "nesting deeper than 256 levels");
  free(s);
  s = nested(256);
  struct ydoc *doc = load_ok(s);
  const struct ydoc_node *n = doc->root;
  int depth = 0;
  for (; n != NULL && n->kind == YDOC_SEQUENCE; depth++)
    n = n->n_items ? n->items[0] : NULL;
  assert_int_equal(depth, 256);
  ydoc_free(doc);
  free(s);
  /* Block nesting counts the same way. */
  struct ydoc_limits lim = ydoc_default_limits;
  lim.max_depth = 2;
  check_error(load_err("a:\n  b:\n    c: 1\n", &lim), 3, 5, "nesting deeper than 2 levels");
}

static void test_node_and_scalar_limits(void **state) {
  (void)state;
  struct ydoc_limits lim = ydoc_default_limits;
  lim.max_nodes = 3;
  check_error(load_err("[1, 2, 3]\n", &lim), 1, 8, "document has more than 3 nodes");
  struct ydoc *doc = load_ok_n("[1, 2]", 6, &lim);
  ydoc_free(doc);

  lim = ydoc_default_limits;
  lim.max_scalar_bytes = 4;
  check_error(load_err("a: 1234\nb: hello\n", &lim), 2, 4,
              "scalar is 5 bytes, larger than the limit of 4");

  lim = ydoc_default_limits;
  lim.max_file_bytes = 5;
  check_error(load_err("a: 123", &lim), 0, 0, "file is 6 bytes, larger than the limit of 5");

  lim = ydoc_default_limits;
  lim.max_expanded_nodes = 6; /* root, a, [1, 2] and b fit; the alias does not */
  check_error(load_err("a: &a [1, 2]\nb: *a\n", &lim), 2, 4, "alias expansion exceeds 6 nodes");
  lim.max_expanded_nodes = 9;
  ydoc_free(load_ok_n("a: &a [1, 2]\nb: *a\n", 18, &lim));
}

static void test_default_limits(void **state) {
  (void)state;
  assert_int_equal(ydoc_default_limits.max_file_bytes, 16u * 1024 * 1024);
  assert_int_equal(ydoc_default_limits.max_depth, 256);
  assert_int_equal(ydoc_default_limits.max_nodes, 1000000);
  assert_int_equal(ydoc_default_limits.max_expanded_nodes, 1000000);
  assert_int_equal(ydoc_default_limits.max_scalar_bytes, 4u * 1024 * 1024);
}

/* ---- empty input ------------------------------------------------------------ */

static void test_empty_documents(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("");
  assert_null(doc->root);
  ydoc_free(doc);
  doc = load_ok("# only\n   # comments\n\n");
  assert_null(doc->root);
  ydoc_free(doc);
  /* "---" alone is a document holding a null scalar, as libyaml reports it. */
  doc = load_ok("---\n");
  assert_non_null(doc->root);
  assert_int_equal(doc->root->kind, YDOC_SCALAR);
  assert_true(ydoc_is_null(doc->root));
  ydoc_free(doc);
  doc = load_ok_n(NULL, 0, NULL);
  assert_null(doc->root);
  ydoc_free(doc);
}

/* ---- files ------------------------------------------------------------------- */

static void test_file_errors(void **state) {
  (void)state;
  struct ydoc *doc = (struct ydoc *)&doc;
  ep_error *err = NULL;
  assert_int_equal(ydoc_load_file("/nonexistent/exitprobe/wf.yaml", NULL, &doc, &err), -1);
  assert_null(doc);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_int_equal(err->os_errno, ENOENT);
  assert_string_equal(err->file, "/nonexistent/exitprobe/wf.yaml");
  assert_non_null(strstr(err->message, "No such file or directory"));
  ep_error_free(&err);

  assert_int_equal(ydoc_load_file("/", NULL, &doc, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_int_equal(err->os_errno, EISDIR);
  ep_error_free(&err);

  /* Too large, judged before parsing. */
  struct ydoc_limits lim = ydoc_default_limits;
  lim.max_file_bytes = 10;
  const char *path = data_path("anchors-merge.yaml");
  assert_int_equal(ydoc_load_file(path, &lim, &doc, &err), -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_int_equal(err->line, 0);
  assert_non_null(strstr(err->message, "bytes, larger than the limit of 10"));
  ep_error_free(&err);
}

static void test_fixture_anchors_merge(void **state) {
  (void)state;
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  const char *path = data_path("anchors-merge.yaml");
  if (ydoc_load_file(path, NULL, &doc, &err) != 0) {
    ep_error_print(err, stderr);
    fail_msg("cannot load %s", path);
  }
  assert_string_equal(doc->file, path);
  const struct ydoc_node *templates = path_get(doc->root, "spec", "templates");
  assert_int_equal(templates->kind, YDOC_SEQUENCE);
  assert_int_equal(templates->n_items, 2);
  const struct ydoc_node *main_c = ydoc_get(templates->items[0], "container");
  const struct ydoc_node *cleanup_c = ydoc_get(templates->items[1], "container");
  assert_scalar(ydoc_get(cleanup_c, "image"), "alpine:3.19");
  assert_ptr_equal(ydoc_get(cleanup_c, "command"), ydoc_get(main_c, "command"));
  assert_scalar(ydoc_get(cleanup_c, "args")->items[0], "echo cleanup {{workflow.status}}");
  assert_scalar(ydoc_get(main_c, "args")->items[0], "echo main");
  assert_int_equal(cleanup_c->n_pairs, 4);
  assert_pos(ydoc_get(cleanup_c, "args"), 20, 13);
  ydoc_free(doc);
}

static void test_seed_workflow(void **state) {
  (void)state;
  if (access(SEED_WORKFLOW, R_OK) != 0) {
    printf("skipping: %s is not readable here\n", SEED_WORKFLOW);
    skip();
  }
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  if (ydoc_load_file(SEED_WORKFLOW, NULL, &doc, &err) != 0) {
    ep_error_print(err, stderr);
    fail_msg("seed workflow did not load");
  }
  const struct ydoc_node *spec = ydoc_get(doc->root, "spec");
  assert_scalar(ydoc_get(spec, "onExit"), "cleanup");
  const struct ydoc_node *templates = ydoc_get(spec, "templates");
  assert_int_equal(templates->n_items, 3);
  assert_scalar(ydoc_get(templates->items[2], "name"), "cleanup");
  const struct ydoc_node *args = path_get(templates->items[2], "container", "args");
  assert_int_equal(args->kind, YDOC_SEQUENCE);
  assert_int_equal(args->n_items, 1);
  const struct ydoc_node *script = args->items[0];
  assert_int_equal(script->kind, YDOC_SCALAR);
  assert_false(script->plain);
  assert_non_null(strstr(script->scalar, "Workflow status: {{workflow.status}}"));
  assert_non_null(strstr(script->scalar, "\nfi\n"));
  assert_pos(script, 24, 9);
  const struct ydoc_node *work_args = path_get(templates->items[1], "container", "args");
  assert_scalar(work_args->items[0], "echo 'Doing work...'; exit 1");
  ydoc_free(doc);
}

/* ---- helpers for the model -------------------------------------------------- */

static void test_is_null(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("- ~\n- null\n- Null\n- NULL\n-\n- ''\n- \"null\"\n- nULL\n"
                             "- !!str null\n- !!null ~\n- 0\n");
  const struct ydoc_node *s = doc->root;
  bool want[] = {true, true, true, true, true, false, false, false, false, true, false};
  assert_int_equal(s->n_items, sizeof(want) / sizeof(want[0]));
  for (size_t i = 0; i < s->n_items; i++) {
    if (ydoc_is_null(s->items[i]) != want[i])
      fail_msg("item %zu ('%s') null=%d", i, s->items[i]->scalar, !want[i]);
  }
  assert_true(ydoc_is_null(NULL));
  ydoc_free(doc);
  doc = load_ok("{}");
  assert_false(ydoc_is_null(doc->root));
  ydoc_free(doc);
}

static void test_as_bool(void **state) {
  (void)state;
  struct ydoc *doc =
      load_ok("t: [true, True, TRUE, yes, Yes, YES, on, On, ON, y, Y]\n"
              "f: [false, False, FALSE, no, NO, off, OFF, n, N]\n"
              "bad: ['true', \"false\", !!str true, maybe, 1, 0, '', truex, [true], {a: b}]\n"
              "tagged: !!bool \"true\"\n");
  bool b;
  const struct ydoc_node *t = ydoc_get(doc->root, "t");
  for (size_t i = 0; i < t->n_items; i++) {
    b = false;
    assert_int_equal(ydoc_as_bool(t->items[i], &b), 0);
    assert_true(b);
  }
  const struct ydoc_node *f = ydoc_get(doc->root, "f");
  for (size_t i = 0; i < f->n_items; i++) {
    b = true;
    assert_int_equal(ydoc_as_bool(f->items[i], &b), 0);
    assert_false(b);
  }
  const struct ydoc_node *bad = ydoc_get(doc->root, "bad");
  assert_int_equal(bad->n_items, 10);
  for (size_t i = 0; i < bad->n_items; i++) {
    b = false;
    if (ydoc_as_bool(bad->items[i], &b) != -1)
      fail_msg("item %zu was read as a boolean", i);
    assert_false(b); /* untouched on failure */
  }
  assert_int_equal(ydoc_as_bool(NULL, &b), -1);
  assert_int_equal(ydoc_as_bool(ydoc_get(doc->root, "tagged"), &b), 0);
  assert_true(b);
  ydoc_free(doc);
}

static void test_as_int(void **state) {
  (void)state;
  struct ydoc *doc = load_ok("good: [0, 42, -7, +3, '15', \"-0\", 9223372036854775807, "
                             "-9223372036854775808]\n"
                             "bad: [9223372036854775808, -9223372036854775809, 1.5, '', 12a, ' 1', "
                             "0x10, 010, '-', '+', 1_000, ~, [1]]\n");
  static const long long want[] = {0, 42, -7, 3, 15, 0, LLONG_MAX, LLONG_MIN};
  const struct ydoc_node *good = ydoc_get(doc->root, "good");
  assert_int_equal(good->n_items, sizeof(want) / sizeof(want[0]));
  for (size_t i = 0; i < good->n_items; i++) {
    long long v = 12345;
    assert_int_equal(ydoc_as_int(good->items[i], &v), 0);
    assert_true(v == want[i]);
  }
  const struct ydoc_node *bad = ydoc_get(doc->root, "bad");
  assert_int_equal(bad->n_items, 13);
  for (size_t i = 0; i < bad->n_items; i++) {
    long long v = 12345;
    if (ydoc_as_int(bad->items[i], &v) != -1)
      fail_msg("item %zu ('%s') was read as %lld", i, bad->items[i]->scalar, v);
    assert_true(v == 12345);
  }
  long long v;
  assert_int_equal(ydoc_as_int(NULL, &v), -1);
  ydoc_free(doc);
}

static void test_kind_name(void **state) {
  (void)state;
  assert_string_equal(ydoc_kind_name(YDOC_SCALAR), "scalar");
  assert_string_equal(ydoc_kind_name(YDOC_SEQUENCE), "sequence");
  assert_string_equal(ydoc_kind_name(YDOC_MAPPING), "mapping");
}

static void test_first_error_is_kept(void **state) {
  (void)state;
  /* error.c keeps the first error; the loader must not clobber or leak it. */
  ep_error *err = NULL;
  ep_error_set(&err, EP_EXIT_INTERNAL, "earlier");
  struct ydoc *doc = NULL;
  assert_int_equal(ydoc_load_buffer("t.yaml", "a: [", 4, NULL, &doc, &err), -1);
  assert_null(doc);
  assert_string_equal(err->message, "earlier");
  ep_error_free(&err);
  /* A NULL error pointer is allowed too. */
  assert_int_equal(ydoc_load_buffer("t.yaml", "a: [", 4, NULL, &doc, NULL), -1);
  assert_int_equal(ydoc_load_file("/nonexistent/x.yaml", NULL, &doc, NULL), -1);
  assert_null(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_structure_and_positions),
      cmocka_unit_test(test_scalar_styles_and_tags),
      cmocka_unit_test(test_block_scalars),
      cmocka_unit_test(test_anchors_share_nodes),
      cmocka_unit_test(test_merge),
      cmocka_unit_test(test_alias_as_key),
      cmocka_unit_test(test_alias_errors),
      cmocka_unit_test(test_merge_keys),
      cmocka_unit_test(test_merge_key_errors),
      cmocka_unit_test(test_merge_bomb_is_bounded),
      cmocka_unit_test(test_billion_laughs_fails_fast),
      cmocka_unit_test(test_billion_laughs_fixture),
      cmocka_unit_test(test_expansion_counting_never_overflows),
      cmocka_unit_test(test_duplicate_keys),
      cmocka_unit_test(test_many_keys_are_fast),
      cmocka_unit_test(test_non_scalar_keys),
      cmocka_unit_test(test_second_document),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_invalid_bytes),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_node_and_scalar_limits),
      cmocka_unit_test(test_default_limits),
      cmocka_unit_test(test_empty_documents),
      cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_fixture_anchors_merge),
      cmocka_unit_test(test_seed_workflow),
      cmocka_unit_test(test_is_null),
      cmocka_unit_test(test_as_bool),
      cmocka_unit_test(test_as_int),
      cmocka_unit_test(test_kind_name),
      cmocka_unit_test(test_first_error_is_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
