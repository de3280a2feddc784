#include "report_text.h"
#include "../runner/xalloc.h"

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_COLUMN_MAX 56     /* longer names break the alignment of their row only */
#define HANDLER_LOG_MAX_LINES 200 /* the full output is in the JSON report */
#define MAX_INDENT_BYTES 120      /* tree prefix beyond which nesting is no longer indented */

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_RED "\033[31m"
#define ANSI_GREEN "\033[32m"
#define ANSI_YELLOW "\033[33m"
#define ANSI_GREY "\033[90m"

struct glyphs {
  const char *tee, *elbow, *pipe, *blank;
  const char *ok, *fail, *error, *skip, *pending, *running;
};

static const struct glyphs glyphs_utf8 = {
    .tee = "├─", .elbow = "└─", .pipe = "│ ", .blank = "  ",
    .ok = "✔", .fail = "✖", .error = "✖", .skip = "○", .pending = "·", .running = "▸",
};

static const struct glyphs glyphs_ascii = {
    .tee = "|-", .elbow = "`-", .pipe = "| ", .blank = "  ",
    .ok = "+", .fail = "x", .error = "!", .skip = "-", .pending = ".", .running = ">",
};

struct row {
  char *lead; /* tree prefix and connector */
  const struct wf_node *node;
};

struct printer {
  FILE *out;
  const struct run_state *st;
  bool color;
  const struct glyphs *g;

  /* Display tree, by position in st->nodes. */
  const struct wf_node **sorted; /* node pointers sorted by address, to map pointer -> position */
  size_t *sorted_pos;
  size_t **kids;
  size_t *n_kids;
  bool *is_root;
  bool *visited;

  struct row *rows;
  size_t n_rows;
};

/* The locale is not set up by the CLI (it would change number formatting in
 * the JSON), so ask the environment the way setlocale would. */
static bool env_is_utf8(void) {
  const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
    const char *v = getenv(vars[i]);
    if (v == NULL || v[0] == '\0')
      continue;
    return strcasestr(v, "utf-8") != NULL || strcasestr(v, "utf8") != NULL;
  }
  return false;
}


/* Columns a UTF-8 string takes, counting each code point as one. */
static size_t display_width(const char *s) {
  size_t w = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
    if ((*p & 0xC0) != 0x80)
      w++;
  return w;
}

static void pad(FILE *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    fputc(' ', out);
}

static const char *phase_color(enum node_phase phase) {
  switch (phase) {
  case PHASE_SUCCEEDED:
    return ANSI_GREEN;
  case PHASE_FAILED:
  case PHASE_ERROR:
    return ANSI_RED;
  case PHASE_SKIPPED:
  case PHASE_OMITTED:
    return ANSI_GREY;
  case PHASE_PENDING:
  case PHASE_RUNNING:
    return ANSI_YELLOW;
  }
  return "";
}

static const char *phase_marker(const struct glyphs *g, enum node_phase phase) {
  switch (phase) {
  case PHASE_SUCCEEDED:
    return g->ok;
  case PHASE_FAILED:
    return g->fail;
  case PHASE_ERROR:
    return g->error;
  case PHASE_SKIPPED:
  case PHASE_OMITTED:
    return g->skip;
  case PHASE_PENDING:
    return g->pending;
  case PHASE_RUNNING:
    return g->running;
  }
  return "?";
}

static void put_colored(const struct printer *p, const char *color, const char *text) {
  if (p->color)
    fprintf(p->out, "%s%s%s", color, text, ANSI_RESET);
  else
    fputs(text, p->out);
}

/* Single-line fields (messages) must not break the table. */
static void put_oneline(FILE *out, const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++)
    fputc((*c < 0x20 || *c == 0x7f) ? ' ' : *c, out);
}

/* The same, cut after max bytes (on a character boundary); the report has it all. */
static void put_oneline_max(FILE *out, const char *s, size_t max) {
  size_t len = strlen(s);
  if (len <= max) {
    put_oneline(out, s);
    return;
  }
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  char *cut = strndup(s, max);
  if (cut == NULL)
    abort();
  put_oneline(out, cut);
  free(cut);
  fputs(" ... (see the JSON report)", out);
}

static void format_duration(int64_t us, char *buf, size_t size) {
  if (us < 0)
    us = 0;
  int64_t tenths = (us + 50000) / 100000;
  if (tenths < 600) {
    snprintf(buf, size, "%" PRId64 ".%" PRId64 "s", tenths / 10, tenths % 10);
    return;
  }
  int64_t secs = (us + 500000) / 1000000;
  if (secs < 3600)
    snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", secs / 60, secs % 60);
  else
    snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", secs / 3600,
             (secs / 60) % 60, secs % 60);
}

static void node_duration(int64_t start, int64_t end, char *buf, size_t size) {
  if (start == 0 || end == 0)
    snprintf(buf, size, "-");
  else
    format_duration(end - start, buf, size);
}

static void signal_name(int sig, char *buf, size_t size) {
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev != NULL)
    snprintf(buf, size, "SIG%s", abbrev);
  else
    snprintf(buf, size, "signal %d", sig);
}

/* ---- display tree ------------------------------------------------------ */

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (const struct wf_node *const *)a;
  uintptr_t y = (uintptr_t) * (const struct wf_node *const *)b;
  return x < y ? -1 : x > y;
}

static bool position_of(const struct printer *p, const struct wf_node *n, size_t *pos) {
  if (n == NULL)
    return false;
  const struct wf_node **hit =
      bsearch(&n, p->sorted, p->st->n_nodes, sizeof(*p->sorted), cmp_ptr);
  if (hit == NULL)
    return false;
  *pos = p->sorted_pos[hit - p->sorted];
  return true;
}

static bool is_holder(enum node_type t) {
  return t == NODE_STEP_GROUP || t == NODE_TASK_GROUP || t == NODE_RETRY;
}

/* Where a node is drawn.  Mostly its first parent; but inside a DAG the
 * children links encode dependencies (A -> B when B depends on A), which would
 * draw a pipeline as a staircase, so tasks hang from their DAG instead, as
 * `argo get` draws them.  Loop expansions and retry attempts stay under the
 * TaskGroup/Retry node that holds them. */
static void build_tree(struct printer *p) {
  const struct run_state *st = p->st;
  size_t n = st->n_nodes;
  size_t *first_parent = xcalloc(n, sizeof(size_t));
  size_t *holder = xcalloc(n, sizeof(size_t));
  size_t *display_parent = xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    first_parent[i] = holder[i] = SIZE_MAX;

  for (size_t i = 0; i < n; i++) {
    const struct wf_node *parent = st->nodes[i];
    for (size_t c = 0; c < parent->n_children; c++) {
      size_t pos;
      if (!position_of(p, run_state_find_id(st, parent->children[c]), &pos) || pos == i)
        continue;
      if (first_parent[pos] == SIZE_MAX)
        first_parent[pos] = i;
      if (holder[pos] == SIZE_MAX && is_holder(parent->type))
        holder[pos] = i;
    }
  }

  p->n_kids = xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    const struct wf_node *node = st->nodes[i];
    size_t parent = first_parent[i];
    size_t boundary;
    if (holder[i] != SIZE_MAX)
      parent = holder[i];
    else if (first_parent[i] != SIZE_MAX &&
             position_of(p, run_state_find_id(st, node->boundary_id), &boundary) &&
             st->nodes[boundary]->type == NODE_DAG && boundary != i)
      parent = boundary;
    display_parent[i] = parent;
    if (parent != SIZE_MAX)
      p->n_kids[parent]++;
  }

  p->kids = xcalloc(n, sizeof(size_t *));
  size_t *fill = xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    if (p->n_kids[i] > 0)
      p->kids[i] = xcalloc(p->n_kids[i], sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    size_t parent = display_parent[i];
    if (parent != SIZE_MAX)
      p->kids[parent][fill[parent]++] = i;
  }
  /* Nodes without a display parent are the roots (entry node, onExit). */
  p->is_root = xcalloc(n, sizeof(bool));
  for (size_t i = 0; i < n; i++)
    p->is_root[i] = (display_parent[i] == SIZE_MAX);
  free(fill);
  free(first_parent);
  free(holder);
  free(display_parent);
}

static char *concat(const char *a, const char *b) {
  char *s = NULL;
  if (asprintf(&s, "%s%s", a, b) < 0)
    abort();
  return s;
}

static void add_row(struct printer *p, char *lead, const struct wf_node *node) {
  p->rows[p->n_rows].lead = lead;
  p->rows[p->n_rows].node = node;
  p->n_rows++;
}

static void collect(struct printer *p, size_t pos, const char *prefix, const char *connector,
                    const char *child_prefix) {
  p->visited[pos] = true;
  add_row(p, concat(prefix, connector), p->st->nodes[pos]);
  /* Children already drawn elsewhere (a node with two parents, or a cycle in
   * corrupt state) are skipped so every node is drawn exactly once. */
  size_t last = SIZE_MAX;
  for (size_t k = 0; k < p->n_kids[pos]; k++)
    if (!p->visited[p->kids[pos][k]])
      last = k;
  for (size_t k = 0; k < p->n_kids[pos]; k++) {
    size_t kid = p->kids[pos][k];
    if (p->visited[kid])
      continue;
    bool is_last = (k == last);
    /* A recursive template can nest thousands deep; past a point more
     * indentation only costs memory (quadratic in the depth). */
    char *next = concat(child_prefix, strlen(child_prefix) >= MAX_INDENT_BYTES ? ""
                                      : is_last                                ? p->g->blank
                                                                               : p->g->pipe);
    collect(p, kid, child_prefix, is_last ? p->g->elbow : p->g->tee, next);
    free(next);
  }
}

static void collect_rows(struct printer *p) {
  size_t n = p->st->n_nodes;
  p->rows = xcalloc(n, sizeof(struct row));
  for (size_t i = 0; i < n; i++)
    if (p->is_root[i] && !p->visited[i])
      collect(p, i, " ", "", " ");
  /* Anything unreachable from a root (a parent cycle) is still shown. */
  for (size_t i = 0; i < n; i++)
    if (!p->visited[i])
      collect(p, i, " ", "", " ");
}

static size_t row_name_width(const struct printer *p, const struct row *r) {
  const struct wf_node *n = r->node;
  return display_width(r->lead) + display_width(phase_marker(p->g, n->phase)) + 1 +
         display_width(n->display_name != NULL ? n->display_name : n->name);
}

static void print_row(const struct printer *p, const struct row *r, size_t name_col) {
  const struct wf_node *n = r->node;
  FILE *out = p->out;
  const char *color = phase_color(n->phase);

  fputs(r->lead, out);
  put_colored(p, color, phase_marker(p->g, n->phase));
  fputc(' ', out);
  put_oneline(out, n->display_name != NULL ? n->display_name : n->name);
  size_t w = row_name_width(p, r);
  pad(out, w < name_col ? name_col - w : 0);

  fprintf(out, "  %-9s  ", node_type_name(n->type));
  const char *phase = node_phase_name(n->phase);
  put_colored(p, color, phase);
  pad(out, 9 - strlen(phase));

  char dur[32];
  node_duration(n->started_at_us, n->finished_at_us, dur, sizeof(dur));
  fprintf(out, "  %6s", dur);

  if (n->has_exit_code)
    fprintf(out, "  exit %d", n->exit_code);
  if (n->signal != 0) {
    char sig[32];
    signal_name(n->signal, sig, sizeof(sig));
    fprintf(out, "  killed by %s", sig);
  }
  if (n->oom_killed)
    fputs("  OOMKilled", out);
  if (n->message != NULL) {
    fputs("  ", out);
    put_oneline(out, n->message);
  }
  fputc('\n', out);
}

static void print_nodes(struct printer *p) {
  size_t n = p->st->n_nodes;
  if (n == 0) {
    fputs("Nodes: none\n", p->out);
    return;
  }
  p->sorted = xcalloc(n, sizeof(*p->sorted));
  p->sorted_pos = xcalloc(n, sizeof(size_t));
  p->visited = xcalloc(n, sizeof(bool));
  for (size_t i = 0; i < n; i++)
    p->sorted[i] = p->st->nodes[i];
  qsort(p->sorted, n, sizeof(*p->sorted), cmp_ptr);
  for (size_t i = 0; i < n; i++) {
    const struct wf_node **hit =
        bsearch(&p->st->nodes[i], p->sorted, n, sizeof(*p->sorted), cmp_ptr);
    p->sorted_pos[hit - p->sorted] = i;
  }
  build_tree(p);
  collect_rows(p);

  size_t name_col = 0;
  for (size_t i = 0; i < p->n_rows; i++) {
    size_t w = row_name_width(p, &p->rows[i]);
    if (w <= NAME_COLUMN_MAX && w > name_col)
      name_col = w;
  }
  fputs("Nodes:\n", p->out);
  for (size_t i = 0; i < p->n_rows; i++)
    print_row(p, &p->rows[i], name_col);
}

/* ---- workflow header and exit handler --------------------------------- */

static void print_header(const struct printer *p) {
  const struct run_state *st = p->st;
  FILE *out = p->out;
  fprintf(out, "Workflow %s  ", st->workflow_name != NULL ? st->workflow_name : "(unnamed)");
  const char *phase = node_phase_name(st->phase);
  if (p->color)
    fprintf(out, "%s%s%s%s", ANSI_BOLD, phase_color(st->phase), phase, ANSI_RESET);
  else
    fputs(phase, out);
  if (st->started_at_us != 0 && st->finished_at_us != 0) {
    char dur[32];
    format_duration(st->finished_at_us - st->started_at_us, dur, sizeof(dur));
    fprintf(out, "  (%s)", dur);
  }
  fputc('\n', out);
  if (st->workflow_file != NULL)
    fprintf(out, "  file: %s\n", st->workflow_file);
  if (st->message != NULL) {
    fputs("  message: ", out);
    put_oneline(out, st->message);
    fputc('\n', out);
  }
  if (st->interrupted) {
    char sig[32] = "a signal";
    if (st->interrupt_signal != 0)
      signal_name(st->interrupt_signal, sig, sizeof(sig));
    fprintf(out, "  interrupted by %s\n", sig);
  }
  if (st->shutdown != NULL)
    fprintf(out, "  shutdown: %s\n", st->shutdown);
}

static const struct wf_node *exit_handler_node(const struct run_state *st) {
  const struct exit_handler_record *eh = &st->exit_handler;
  if (eh->node_id != NULL)
    return run_state_find_id(st, eh->node_id);
  if (st->workflow_name == NULL)
    return NULL;
  char *name = concat(st->workflow_name, ".onExit");
  const struct wf_node *n = run_state_find_name(st, name);
  free(name);
  return n;
}

static void print_log(const struct printer *p, const char *title, const struct wf_node *n) {
  FILE *out = p->out;
  fprintf(out, "Exit handler output (%s):\n", title);
  if (n->log == NULL || n->log_len == 0) {
    fputs("    (no output)\n", out);
    return;
  }
  size_t lines = 0;
  const char *s = n->log, *end = n->log + n->log_len;
  while (s < end && lines < HANDLER_LOG_MAX_LINES) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
    fputs("    ", out);
    fwrite(s, 1, len, out);
    fputc('\n', out);
    lines++;
    s += len + (nl != NULL ? 1 : 0);
  }
  if (s < end) {
    size_t more = 0;
    for (const char *c = s; c < end; c++)
      more += (*c == '\n');
    if (end[-1] != '\n')
      more++;
    fprintf(out, "    ... %zu more line%s in the JSON report\n", more, more == 1 ? "" : "s");
  }
  if (n->log_truncated)
    fprintf(out, "    [output truncated at %d bytes]\n", NODE_LOG_MAX);
}

/* A steps/DAG handler's output is in its Pod descendants. */
static void print_pod_logs(const struct printer *p, const struct wf_node *n, bool *seen,
                           size_t depth) {
  size_t pos;
  if (!position_of(p, n, &pos) || seen[pos] || depth > p->st->n_nodes)
    return;
  seen[pos] = true;
  if (n->type == NODE_POD)
    print_log(p, n->display_name != NULL ? n->display_name : n->name, n);
  for (size_t i = 0; i < n->n_children; i++)
    print_pod_logs(p, run_state_find_id(p->st, n->children[i]), seen, depth + 1);
}

static void print_exit_handler(const struct printer *p) {
  const struct run_state *st = p->st;
  const struct exit_handler_record *eh = &st->exit_handler;
  FILE *out = p->out;

  if (!eh->declared) {
    fputs("Exit handler: none declared\n", out);
    return;
  }
  if (!eh->ran) {
    if (p->color)
      fputs(ANSI_BOLD ANSI_RED, out);
    fputs("!! Exit handler: DECLARED BUT DID NOT RUN", out);
    if (p->color)
      fputs(ANSI_RESET, out);
    if (st->shutdown != NULL && strcmp(st->shutdown, "Terminate") == 0)
      fputs(" (shutdown strategy Terminate skips it)", out);
    else if (st->interrupted)
      fputs(" (the run was interrupted)", out);
    fputc('\n', out);
    return;
  }

  fprintf(out, "Exit handler: ran %d time%s (by %s), ", eh->runs, eh->runs == 1 ? "" : "s",
          eh->by == BY_WATCHDOG ? "watchdog" : eh->by == BY_CONTROLLER ? "controller" : "?");
  put_colored(p, phase_color(eh->phase), node_phase_name(eh->phase));
  if (eh->workflow_status != NULL)
    fprintf(out, ", saw {{workflow.status}} = %s", eh->workflow_status);
  fputc('\n', out);
  if (eh->runs > 1)
    fprintf(out, "  warning: the exit handler ran %d times; Argo runs it once\n", eh->runs);
  if (eh->by == BY_WATCHDOG)
    fputs("  note: the watchdog ran it because the controller did not\n", out);
  if (eh->workflow_failures != NULL && strcmp(eh->workflow_failures, "null") != 0) {
    fputs("  saw {{workflow.failures}} = ", out);
    put_oneline_max(out, eh->workflow_failures, 300);
    fputc('\n', out);
  }

  const struct wf_node *n = exit_handler_node(st);
  if (n == NULL || st->n_nodes == 0)
    return;
  if (n->type == NODE_POD) {
    print_log(p, n->template_name != NULL ? n->template_name : n->display_name, n);
    return;
  }
  bool *seen = xcalloc(st->n_nodes, sizeof(bool));
  print_pod_logs(p, n, seen, 0);
  free(seen);
}

static void print_environment(const struct printer *p) {
  const struct run_state *st = p->st;
  FILE *out = p->out;
  for (size_t i = 0; i < st->n_notes; i++)
    fprintf(out, "note: %s\n", st->notes[i]);
  for (size_t i = 0; i < st->n_warnings; i++) {
    /* Warnings already read "file:line:column: warning: ..." */
    if (strstr(st->warnings[i], ": warning: ") == NULL)
      put_colored(p, ANSI_YELLOW, "warning: ");
    fprintf(out, "%s\n", st->warnings[i]);
  }
}

static void printer_free(struct printer *p) {
  for (size_t i = 0; i < p->n_rows; i++)
    free(p->rows[i].lead);
  free(p->rows);
  if (p->kids != NULL)
    for (size_t i = 0; i < p->st->n_nodes; i++)
      free(p->kids[i]);
  free(p->kids);
  free(p->n_kids);
  free(p->visited);
  free(p->is_root);
  free(p->sorted);
  free(p->sorted_pos);
}

void report_print_text(const struct run_state *st, const struct text_options *opts, FILE *out) {
  struct printer p = {
      .out = out,
      .st = st,
      .color = opts != NULL && opts->color,
      .g = env_is_utf8() ? &glyphs_utf8 : &glyphs_ascii,
  };
  print_header(&p);
  print_nodes(&p);
  fputc('\n', out);
  print_exit_handler(&p);
  fputc('\n', out);
  print_environment(&p);
  printer_free(&p);
  fflush(out);
}
