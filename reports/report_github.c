#include "report_github.h"
#include "../runner/xalloc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "expectations.h"
#include "report_load.h"

enum level { LEVEL_ERROR, LEVEL_WARNING, LEVEL_NOTICE, N_LEVELS };

static const char *const level_names[N_LEVELS] = {"error", "warning", "notice"};

struct annotation {
  enum level level;
  const char *file; /* borrowed from the report */
  long long line, col;
  char *title;
  char *message;
};

struct annotations {
  struct annotation *v;
  size_t n, cap;
};

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}



/* Cut s (in place) to at most max bytes on a character boundary, marking the cut. */
static void cut_text(char **s, size_t max, const char *mark) {
  size_t len = strlen(*s), mark_len = strlen(mark);
  if (len <= max || max <= mark_len)
    return;
  size_t cut = max - mark_len;
  while (cut > 0 && ((unsigned char)(*s)[cut] & 0xC0) == 0x80)
    cut--;
  memcpy(*s + cut, mark, mark_len + 1);
}

/* At most max characters (code points), for the title. */
static void cut_chars(char *s, size_t max) {
  size_t chars = 0;
  for (size_t i = 0; s[i] != '\0'; i++) {
    if (((unsigned char)s[i] & 0xC0) == 0x80)
      continue;
    if (chars == max) {
      s[i] = '\0';
      return;
    }
    chars++;
  }
}

static void add(struct annotations *a, enum level level, const char *file, long long line,
                long long col, char *title, char *message) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->v = realloc(a->v, a->cap * sizeof(*a->v));
    if (a->v == NULL)
      abort();
  }
  cut_chars(title, GITHUB_TITLE_MAX);
  cut_text(&message, GITHUB_MESSAGE_MAX, "\xE2\x80\xA6 (cut; the JSON report has it all)");
  a->v[a->n++] = (struct annotation){level, file, line, col, title, message};
}

/* ---- what each report says ------------------------------------------------ */

static char *handler_words(const json_t *report) {
  const json_t *eh = json_object_get(report, "exitHandler");
  const char *phase = str_at(json_object_get(report, "status"), "phase");
  if (!json_is_true(json_object_get(eh, "declared")))
    return xasprintf("workflow %s; no exit handler declared", phase ? phase : "?");
  if (!json_is_true(json_object_get(eh, "ran")))
    return xasprintf("workflow %s; the exit handler did not run", phase ? phase : "?");
  json_int_t runs = json_integer_value(json_object_get(eh, "runs"));
  const char *seen = str_at(eh, "workflowStatus");
  return xasprintf("workflow %s; the exit handler ran %lld time%s (by the %s), ended %s%s%s",
                   phase ? phase : "?", (long long)runs, runs == 1 ? "" : "s",
                   str_at(eh, "by") ? str_at(eh, "by") : "?",
                   str_at(eh, "phase") ? str_at(eh, "phase") : "?",
                   seen ? ", saw {{workflow.status}}=" : "", seen ? seen : "");
}

static void collect(struct annotations *a, const json_t *report) {
  struct report_outcome o;
  report_outcome_of(report, &o);
  const json_t *results = json_object_get(report, "expectations");
  size_t failed = 0;
  size_t i;
  const json_t *r;
  json_array_foreach(results, i, r) {
    if (json_is_true(json_object_get(r, "ok")))
      continue;
    failed++;
    add(a, LEVEL_ERROR, o.file, json_integer_value(json_object_get(r, "line")),
        json_integer_value(json_object_get(r, "column")),
        xasprintf("%s: %s", o.name, str_at(r, "path") ? str_at(r, "path") : "expectation"),
        expectation_result_text(r));
  }
  char *words = handler_words(report);
  if (strcmp(o.verdict, "passed") == 0) {
    add(a, LEVEL_NOTICE, o.file, 0, 0, xasprintf("%s: passed", o.name),
        json_array_size(results) > 0
            ? xasprintf("%zu expectation%s held; %s", json_array_size(results),
                        json_array_size(results) == 1 ? "" : "s", words)
            : xasprintf("%s", words));
  } else if (strcmp(o.verdict, "inconclusive") == 0) {
    add(a, LEVEL_WARNING, o.file, 0, 0, xasprintf("%s: inconclusive", o.name),
        xasprintf("%s; %s", o.reason ? o.reason : "inconclusive", words));
  } else if (failed == 0) {
    /* A failed workflow report, or a scenario that failed without a
     * failing expectation (a harness error). */
    add(a, LEVEL_ERROR, o.file, 0, 0, xasprintf("%s: %s", o.name, o.verdict),
        xasprintf("%s; %s", o.reason ? o.reason : o.verdict, words));
  }
  free(words);
  report_outcome_free(&o);
}

/* ---- workflow commands ----------------------------------------------------- */

static void put_data(FILE *out, const char *s, bool property) {
  for (const char *c = s ? s : ""; *c != '\0'; c++) {
    if (*c == '%')
      fputs("%25", out);
    else if (*c == '\r')
      fputs("%0D", out);
    else if (*c == '\n')
      fputs("%0A", out);
    else if (property && *c == ':')
      fputs("%3A", out);
    else if (property && *c == ',')
      fputs("%2C", out);
    else
      fputc(*c, out);
  }
}

/* GitHub places an annotation by a path relative to the repository: an
 * absolute path inside $GITHUB_WORKSPACE is made relative to it. */
static const char *repository_path(const char *file) {
  const char *ws = getenv("GITHUB_WORKSPACE");
  size_t len = ws != NULL ? strlen(ws) : 0;
  while (len > 1 && ws[len - 1] == '/')
    len--;
  if (file[0] == '/' && len > 0 && strncmp(file, ws, len) == 0 && file[len] == '/')
    return file + len + 1;
  return file;
}

static void put_annotation(FILE *out, const struct annotation *an) {
  fprintf(out, "::%s ", level_names[an->level]);
  bool first = true;
  if (an->file != NULL) {
    fputs("file=", out);
    put_data(out, repository_path(an->file), true);
    first = false;
    if (an->line > 0) {
      fprintf(out, ",line=%lld", an->line);
      if (an->col > 0)
        fprintf(out, ",col=%lld", an->col);
    }
  }
  fputs(first ? "title=" : ",title=", out);
  put_data(out, an->title, true);
  fputs("::", out);
  put_data(out, an->message, false);
  fputc('\n', out);
}

/* A line inside a group: ours first, so that nothing a step printed can
 * start a workflow command (the runner looks at the start of the trimmed line). */
static void put_line(FILE *out, const char *lead, const char *text) {
  fprintf(out, "  %s", lead);
  for (const unsigned char *c = (const unsigned char *)(text ? text : ""); *c != '\0'; c++)
    fputc((*c < 0x20 || *c == 0x7f) ? ' ' : *c, out);
  fputc('\n', out);
}

static void put_group(FILE *out, const json_t *report, const char *source) {
  struct report_outcome o;
  report_outcome_of(report, &o);
  char *title = xasprintf("%s: %s", o.name, o.verdict);
  fputs("::group::", out);
  put_data(out, title, false);
  fputc('\n', out);
  free(title);
  char *words = handler_words(report);
  put_line(out, "result: ", words);
  free(words);
  if (o.reason != NULL)
    put_line(out, "reason: ", o.reason);
  const json_t *results = json_object_get(report, "expectations");
  size_t i;
  const json_t *r;
  json_array_foreach(results, i, r) {
    char *text = expectation_result_text(r);
    put_line(out, json_is_true(json_object_get(r, "ok")) ? "ok   " : "FAIL ", text);
    free(text);
  }
  json_array_foreach(json_object_get(json_object_get(report, "watchdog"), "actions"), i, r)
    put_line(out, "watchdog: ", json_string_value(r));
  if (o.file != NULL)
    put_line(out, "file: ", o.file);
  if (source != NULL)
    put_line(out, "report: ", source);
  fputs("::endgroup::\n", out);
  report_outcome_free(&o);
}

void report_github_annotations(const json_t *const *reports, const char *const *sources, size_t n,
                               FILE *out) {
  struct annotations a = {0};
  for (size_t i = 0; i < n; i++)
    collect(&a, reports[i]);
  size_t total[N_LEVELS] = {0}, dropped[N_LEVELS] = {0};
  for (size_t i = 0; i < a.n; i++)
    total[a.v[i].level]++;
  size_t budget[N_LEVELS];
  for (int l = 0; l < N_LEVELS; l++)
    budget[l] = GITHUB_ANNOTATIONS_PER_KIND;
  bool overflow = total[LEVEL_ERROR] > budget[LEVEL_ERROR] ||
                  total[LEVEL_WARNING] > budget[LEVEL_WARNING] ||
                  total[LEVEL_NOTICE] > budget[LEVEL_NOTICE];
  /* The last notice slot is kept for saying what was left out. */
  if (overflow)
    budget[LEVEL_NOTICE]--;
  for (int l = 0; l < N_LEVELS; l++) {
    size_t shown = 0;
    for (size_t i = 0; i < a.n; i++) {
      if ((int)a.v[i].level != l)
        continue;
      if (shown < budget[l]) {
        put_annotation(out, &a.v[i]);
        shown++;
      } else {
        dropped[l]++;
      }
    }
  }
  if (overflow) {
    size_t all = dropped[0] + dropped[1] + dropped[2];
    char *msg = xasprintf("%zu more annotation%s not shown (%zu errors, %zu warnings, %zu notices): "
                          "GitHub shows %d of each kind per step. Every result is in the job "
                          "summary and the JSON reports.",
                          all, all == 1 ? "" : "s", dropped[0], dropped[1], dropped[2],
                          GITHUB_ANNOTATIONS_PER_KIND);
    struct annotation more = {LEVEL_NOTICE, NULL, 0, 0, (char *)"exitprobe: more results", msg};
    put_annotation(out, &more);
    free(msg);
  }
  for (size_t i = 0; i < a.n; i++) {
    free(a.v[i].title);
    free(a.v[i].message);
  }
  free(a.v);
  for (size_t i = 0; i < n; i++)
    put_group(out, reports[i], sources != NULL ? sources[i] : NULL);
}

/* ---- job summary ------------------------------------------------------------ */

/* Text in a Markdown table cell: nothing that could end the cell, start
 * markup or be read as HTML. */
static void put_md(FILE *out, const char *s) {
  for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c != '\0'; c++) {
    if (*c < 0x20 || *c == 0x7f)
      fputc(' ', out);
    else if (*c == '<')
      fputs("&lt;", out);
    else if (*c == '>')
      fputs("&gt;", out);
    else if (*c == '&')
      fputs("&amp;", out);
    else if (strchr("\\`*_[]|~#!{}", *c) != NULL) {
      fputc('\\', out);
      fputc(*c, out);
    } else
      fputc(*c, out);
  }
}

static const char *verdict_mark(const char *verdict) {
  if (strcmp(verdict, "passed") == 0)
    return "\xE2\x9C\x85"; /* check mark */
  if (strcmp(verdict, "inconclusive") == 0)
    return "\xE2\x9A\xA0\xEF\xB8\x8F"; /* warning sign */
  return "\xE2\x9D\x8C"; /* cross */
}

static char *summary_row(const json_t *report) {
  char *row = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&row, &size);
  if (out == NULL)
    abort();
  struct report_outcome o;
  report_outcome_of(report, &o);
  const json_t *eh = json_object_get(report, "exitHandler");
  bool declared = json_is_true(json_object_get(eh, "declared"));
  bool ran = json_is_true(json_object_get(eh, "ran"));
  fprintf(out, "| %s | ", verdict_mark(o.verdict));
  put_md(out, o.name);
  fprintf(out, " | %s | ", o.verdict);
  put_md(out, str_at(json_object_get(report, "status"), "phase"));
  fprintf(out, " | %s | ", !declared ? "none declared" : ran ? "ran" : "**did not run**");
  if (declared)
    fprintf(out, "%lld", (long long)json_integer_value(json_object_get(eh, "runs")));
  fputs(" | ", out);
  if (ran)
    put_md(out, str_at(eh, "by"));
  fputs(" | ", out);
  put_md(out, str_at(eh, "workflowStatus"));
  fputs(" |\n", out);
  report_outcome_free(&o);
  fclose(out);
  return row;
}

static char *summary_failures(const json_t *report) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  if (out == NULL)
    abort();
  struct report_outcome o;
  report_outcome_of(report, &o);
  if (strcmp(o.verdict, "passed") != 0) {
    size_t i;
    const json_t *r;
    bool any = false;
    json_array_foreach(json_object_get(report, "expectations"), i, r) {
      if (json_is_true(json_object_get(r, "ok")))
        continue;
      char *line = expectation_result_text(r);
      fputs("- **", out);
      put_md(out, o.name);
      fputs("** ", out);
      put_md(out, o.file);
      fprintf(out, ":%lld:%lld: ", (long long)json_integer_value(json_object_get(r, "line")),
              (long long)json_integer_value(json_object_get(r, "column")));
      put_md(out, line);
      fputc('\n', out);
      free(line);
      any = true;
    }
    if (!any || o.reason != NULL) {
      fputs("- **", out);
      put_md(out, o.name);
      fputs("** ", out);
      put_md(out, o.reason ? o.reason : o.verdict);
      fputc('\n', out);
    }
  }
  report_outcome_free(&o);
  fclose(out);
  return text;
}

char *report_github_summary(const json_t *const *reports, const char *const *sources, size_t n,
                            size_t max_bytes) {
  (void)sources;
  size_t count[4] = {0}; /* passed, failed, inconclusive, error */
  for (size_t i = 0; i < n; i++) {
    struct report_outcome o;
    report_outcome_of(reports[i], &o);
    count[strcmp(o.verdict, "passed") == 0         ? 0
          : strcmp(o.verdict, "failed") == 0       ? 1
          : strcmp(o.verdict, "inconclusive") == 0 ? 2
                                                   : 3]++;
    report_outcome_free(&o);
  }
  char *errors = count[3] > 0 ? xasprintf(", %zu error", count[3]) : xasprintf("%s", "");
  char *head = xasprintf("### exitprobe: %zu report%s \xE2\x80\x94 %zu passed, %zu failed, %zu "
                         "inconclusive%s\n\n"
                         "| | Report | Verdict | Workflow | Exit handler | Runs | By | Saw "
                         "`{{workflow.status}}` |\n|---|---|---|---|---|---|---|---|\n",
                         n, n == 1 ? "" : "s", count[0], count[1], count[2], errors);
  free(errors);
  /* The footer that says rows were left out must always fit. */
  enum { FOOTER_RESERVE = 200 };
  if (strlen(head) + FOOTER_RESERVE > max_bytes) {
    free(head);
    return NULL;
  }
  size_t budget = max_bytes - FOOTER_RESERVE;
  char *doc = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&doc, &size);
  if (out == NULL)
    abort();
  fputs(head, out);
  size_t used = strlen(head);
  free(head);
  size_t listed = 0;
  for (; listed < n; listed++) {
    char *row = summary_row(reports[listed]);
    size_t len = strlen(row);
    if (used + len > budget) {
      free(row);
      break;
    }
    fputs(row, out);
    used += len;
    free(row);
  }
  bool any_failure_heading = false;
  for (size_t i = 0; i < listed; i++) {
    char *text = summary_failures(reports[i]);
    size_t len = strlen(text) + (any_failure_heading ? 0 : 32);
    if (text[0] != '\0' && used + len <= budget) {
      if (!any_failure_heading)
        fputs("\n**Not passed**\n\n", out);
      any_failure_heading = true;
      fputs(text, out);
      used += len;
    }
    free(text);
  }
  if (listed < n)
    fprintf(out, "\n%zu more report%s not listed: a step summary holds at most %d bytes.\n",
            n - listed, n - listed == 1 ? "" : "s", GITHUB_SUMMARY_MAX);
  fputc('\n', out);
  fclose(out);
  return doc;
}
