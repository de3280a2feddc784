/* `exitprobe report --merge SUMMARY... -o OUT.json`: the summaries that
 * `exitprobe matrix --shard I/N --report-dir DIR` wrote on N CI runners,
 * made into the summary of the whole matrix (docs/MATRIX.md).  Summaries of
 * different matrices, a shard given twice or a shard missing are refused
 * before anything is written: a merged summary that silently lacks cells
 * would read as a matrix that passed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "atomic_file.h"
#include "matrix_summary.h"
#include "xalloc.h"

struct shard {
  char *path;
  json_t *doc;
  unsigned i, n; /* 1-based; 0/0: the whole matrix (no --shard) */
};

struct merge {
  struct shard *v;
  size_t n;
};

static void merge_free(struct merge *m) {
  for (size_t k = 0; k < m->n; k++) {
    free(m->v[k].path);
    json_decref(m->v[k].doc);
  }
  free(m->v);
}

/* A directory stands for the summary.json `matrix --report-dir` wrote in it. */
static char *summary_path(const char *arg) {
  struct stat sb;
  if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode))
    return xasprintf("%s%ssummary.json", arg, arg[strlen(arg) - 1] == '/' ? "" : "/");
  return xstrdup(arg);
}

static int load_shard(struct shard *s, ep_error **err) {
  json_error_t jerr;
  s->doc = json_load_file(s->path, 0, &jerr);
  if (s->doc == NULL)
    return ep_error_at(err, EP_EXIT_USAGE, s->path, jerr.line, jerr.column, "%s", jerr.text);
  const char *kind = json_string_value(json_object_get(s->doc, "kind"));
  if (kind == NULL || strcmp(kind, "MatrixSummary") != 0)
    return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                       "not a matrix summary (kind '%s', expected 'MatrixSummary'): --merge "
                       "takes the summary.json files of 'exitprobe matrix --report-dir'",
                       kind ? kind : "none");
  if (!json_is_string(json_object_get(s->doc, "workflowDigest")) ||
      !json_is_integer(json_object_get(s->doc, "cellsTotal")) ||
      !json_is_integer(json_object_get(s->doc, "cellsSelected")) ||
      !json_is_array(json_object_get(s->doc, "cells")))
    return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                       "no workflowDigest, cellsTotal, cellsSelected or cells: written by an "
                       "exitprobe without --merge support; run the shard again");
  const json_t *shard = json_object_get(s->doc, "shard");
  char tail;
  if (json_is_null(shard))
    return 0;
  const char *text = json_string_value(shard);
  if (text == NULL || sscanf(text, "%u/%u%c", &s->i, &s->n, &tail) != 2 || s->n == 0 ||
      s->i == 0 || s->i > s->n)
    return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0, "shard is not I/N");
  return 0;
}

/* Shards of one matrix: the same workflow text, fault selection and seed. */
static int same_matrix(const struct shard *first, const struct shard *s, ep_error **err) {
  static const char *const keys[] = {"workflowDigest", "faults", "seed", "cellsTotal"};
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    const json_t *a = json_object_get(first->doc, keys[k]);
    const json_t *b = json_object_get(s->doc, keys[k]);
    if (json_equal(a, b))
      continue;
    char *va = json_dumps(a, JSON_ENCODE_ANY), *vb = json_dumps(b, JSON_ENCODE_ANY);
    ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                "not a shard of the same matrix as %s: %s is %s there, %s here%s", first->path,
                keys[k], va ? va : "null", vb ? vb : "null",
                strcmp(keys[k], "workflowDigest") == 0 ? " (a different workflow file)" : "");
    free(va);
    free(vb);
    return -1;
  }
  return 0;
}

static size_t cells_of_shard(size_t total, unsigned i, unsigned n) {
  return i - 1 < total ? (total - (i - 1) + n - 1) / n : 0;
}

/* Each shard 1/N..N/N exactly once, with the cells its position selects. */
static int check_shards(const struct merge *m, ep_error **err) {
  const struct shard *first = &m->v[0];
  for (size_t k = 0; k < m->n; k++) {
    const struct shard *s = &m->v[k];
    if (s->n == 0 && m->n > 1)
      return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                         "the summary of the whole matrix (run without --shard): it overlaps "
                         "every other summary given");
    if (s->n != first->n)
      return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                         "shard %u/%u, but %s is shard %u/%u: the shards of one merge split "
                         "the matrix the same way",
                         s->i, s->n, first->path, first->i, first->n);
    for (size_t j = 0; j < k; j++)
      if (m->v[j].i == s->i)
        return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                           "shard %u/%u overlaps %s, which is shard %u/%u too", s->i, s->n,
                           m->v[j].path, s->i, s->n);
    size_t total = (size_t)json_integer_value(json_object_get(s->doc, "cellsTotal"));
    size_t want = s->n == 0 ? total : cells_of_shard(total, s->i, s->n);
    size_t got = (size_t)json_integer_value(json_object_get(s->doc, "cellsSelected"));
    if (got != want)
      return ep_error_at(err, EP_EXIT_USAGE, s->path, 0, 0,
                         "cellsSelected is %zu, but shard %u/%u of %zu cells has %zu", got, s->i,
                         s->n, total, want);
  }
  if (first->n == 0 || m->n == first->n)
    return 0;
  char *missing = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&missing, &len);
  if (f == NULL)
    abort();
  const char *sep = "";
  for (unsigned i = 1; i <= first->n; i++) {
    bool have = false;
    for (size_t k = 0; k < m->n && !have; k++)
      have = m->v[k].i == i;
    if (!have) {
      fprintf(f, "%s%u/%u", sep, i, first->n);
      sep = ", ";
    }
  }
  fclose(f);
  ep_error_set(err, EP_EXIT_USAGE,
               "shard%s %s missing: a merge needs the summaries of all %u shards (%zu given)",
               m->n + 1 < first->n ? "s" : "", missing, first->n, m->n);
  free(missing);
  return -1;
}

static int cmp_cell_index(const void *a, const void *b) {
  json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "index"));
  json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "index"));
  return x < y ? -1 : x > y;
}

/* Every cell in index order, as the unsharded matrix lists them; a cell
 * listed twice means the summaries were edited or mixed up. */
static json_t *merged_cells(const struct merge *m, ep_error **err) {
  size_t n = 0;
  for (size_t k = 0; k < m->n; k++)
    n += json_array_size(json_object_get(m->v[k].doc, "cells"));
  json_t **cells = xcalloc(n + 1, sizeof(*cells));
  size_t at = 0;
  for (size_t k = 0; k < m->n; k++) {
    const json_t *list = json_object_get(m->v[k].doc, "cells");
    for (size_t c = 0; c < json_array_size(list); c++)
      cells[at++] = json_array_get(list, c);
  }
  qsort(cells, n, sizeof(*cells), cmp_cell_index);
  json_t *out = json_array();
  for (size_t c = 0; c < n; c++) {
    if (c > 0 && cmp_cell_index(&cells[c - 1], &cells[c]) == 0) {
      ep_error_set(err, EP_EXIT_USAGE, "cell %03lld is listed by more than one summary",
                   (long long)json_integer_value(json_object_get(cells[c], "index")));
      json_decref(out);
      out = NULL;
      break;
    }
    json_array_append_new(out, json_deep_copy(cells[c]));
  }
  free(cells);
  return out;
}

static json_t *merged_summary(const struct merge *m, json_t *cells) {
  const json_t *first = m->v[0].doc;
  json_int_t jobs = 0, selected = 0, finished = 0;
  bool complete = true, interrupted = false;
  json_t *sources = json_array();
  for (size_t k = 0; k < m->n; k++) {
    const json_t *d = m->v[k].doc;
    jobs += json_integer_value(json_object_get(d, "jobs"));
    selected += json_integer_value(json_object_get(d, "cellsSelected"));
    finished += json_integer_value(json_object_get(d, "cellsFinished"));
    complete = complete && json_is_true(json_object_get(d, "complete"));
    interrupted = interrupted || json_is_true(json_object_get(d, "interrupted"));
    json_array_append_new(sources, json_pack("{s:s, s:O}", "summary", m->v[k].path, "shard",
                                             json_object_get(d, "shard")));
  }
  json_t *root = json_pack(
      "{s:O, s:s, s:O, s:O, s:O, s:O, s:n, s:I, s:O, s:I, s:I, s:b, s:b, s:o, s:o}",
      "apiVersion", json_object_get(first, "apiVersion"), "kind", "MatrixSummary", "workflow",
      json_object_get(first, "workflow"), "workflowDigest", json_object_get(first, "workflowDigest"),
      "seed", json_object_get(first, "seed"), "faults", json_object_get(first, "faults"), "shard",
      "jobs", jobs, "cellsTotal", json_object_get(first, "cellsTotal"), "cellsSelected", selected,
      "cellsFinished", finished, "complete", (int)complete, "interrupted", (int)interrupted,
      "mergedFrom", sources, "cells", cells);
  if (root == NULL)
    abort();
  return root;
}

static int write_summary_file(const char *output, const json_t *root, ep_error **err) {
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text == NULL)
    abort();
  size_t len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  text[len] = '\0';
  int rc = atomic_write_file(output, text, len, err);
  free(text);
  return rc;
}

int matrix_merge_summaries(const char *const *paths, size_t n, const char *output,
                           bool require_once, int color) {
  ep_error *err = NULL;
  struct merge m = {.v = xcalloc(n + 1, sizeof(struct shard)), .n = n};
  json_t *merged = NULL;
  int status = EP_EXIT_INTERNAL;
  for (size_t k = 0; k < n; k++) {
    m.v[k].path = summary_path(paths[k]);
    if (load_shard(&m.v[k], &err) < 0 || same_matrix(&m.v[0], &m.v[k], &err) < 0)
      goto fail;
  }
  if (check_shards(&m, &err) < 0)
    goto fail;
  json_t *cells = merged_cells(&m, &err);
  if (cells == NULL)
    goto fail;
  merged = merged_summary(&m, cells);
  /* The table first, as the matrix prints it before its summary; a cell
   * the table cannot read is bad input, and nothing is written then. */
  status = matrix_summary_table(m.v[0].path, merged, color, require_once, &err);
  if (status < 0 || write_summary_file(output, merged, &err) < 0)
    goto fail;
  printf("merged %zu summar%s of %s: %s\n", m.n, m.n == 1 ? "y" : "ies",
         json_string_value(json_object_get(merged, "workflow")), output);
  goto out;
fail:
  ep_error_print(err, stderr);
  status = err != NULL ? err->status : EP_EXIT_INTERNAL;
out:
  json_decref(merged);
  merge_free(&m);
  ep_error_free(&err);
  return status;
}
