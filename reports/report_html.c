#include "report_html.h"
#include "../runner/xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expectations.h"
#include "report_load.h"
#include "report_timeline.h"
#include "../runner/state_load.h"

#define NONE SIZE_MAX

/* Graph geometry, in SVG user units (CSS pixels). */
#define BOX_W 210
#define BOX_H 46
#define GAP_X 28
#define GAP_Y 46
#define MARGIN 24
#define FRAME_PAD 18
#define FRAME_GAP 90
#define LABEL_MAX_CHARS 24

/* Logs past this are cut on the page; the JSON report has them whole. */
#define HTML_LOG_MAX (256 * 1024)

/* ---- escaping ------------------------------------------------------------ */

/* Text and attribute values: the five markup characters as references,
 * control characters (not tab, LF, CR) as U+FFFD.  Jansson hands us valid
 * UTF-8, and NUL only with an explicit length. */
static void put_esc_n(FILE *out, const char *s, size_t len) {
  for (size_t i = 0; s != NULL && i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '&':
      fputs("&amp;", out);
      break;
    case '<':
      fputs("&lt;", out);
      break;
    case '>':
      fputs("&gt;", out);
      break;
    case '"':
      fputs("&quot;", out);
      break;
    case '\'':
      fputs("&#39;", out);
      break;
    default:
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
        fputs("\xEF\xBF\xBD", out);
      else
        fputc(c, out);
    }
  }
}

static void put_esc(FILE *out, const char *s) { put_esc_n(out, s, s != NULL ? strlen(s) : 0); }

static void put_attr(FILE *out, const char *name, const char *value) {
  fprintf(out, " %s=\"", name);
  put_esc(out, value);
  fputc('"', out);
}

/* At most max code points, with an ellipsis when cut. */
static void put_esc_cut(FILE *out, const char *s, size_t max) {
  size_t chars = 0, i = 0;
  if (s == NULL)
    return;
  for (; s[i] != '\0'; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80) {
      if (chars == max)
        break;
      chars++;
    }
  }
  if (s[i] == '\0') {
    put_esc(out, s);
    return;
  }
  /* Keep room for the ellipsis: back off one character. */
  size_t cut = i;
  do
    cut--;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80);
  put_esc_n(out, s, cut);
  fputs("\xE2\x80\xA6", out);
}

/* A phase as a class name: letters only, "Unknown" otherwise. */
static const char *phase_class(const char *phase) {
  static const char *const known[] = {"Pending", "Running",  "Succeeded", "Failed",
                                      "Error",   "Skipped",  "Omitted"};
  for (size_t i = 0; phase != NULL && i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(phase, known[i]) == 0)
      return known[i];
  return "Unknown";
}

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static const char *nonempty(const char *s) { return s != NULL && s[0] != '\0' ? s : NULL; }


static void format_bytes(uint64_t bytes, char *buf, size_t size) {
  if (bytes >= 1024ull * 1024 * 1024)
    snprintf(buf, size, "%.1f GiB", (double)bytes / (1024.0 * 1024 * 1024));
  else if (bytes >= 1024ull * 1024)
    snprintf(buf, size, "%.1f MiB", (double)bytes / (1024.0 * 1024));
  else if (bytes >= 1024)
    snprintf(buf, size, "%.0f KiB", (double)bytes / 1024.0);
  else
    snprintf(buf, size, "%" PRIu64 " B", bytes);
}

static void format_seconds(int64_t secs, char *buf, size_t size) {
  if (secs < 0)
    secs = 0;
  if (secs < 60)
    snprintf(buf, size, "%" PRId64 "s", secs);
  else if (secs < 3600)
    snprintf(buf, size, "%" PRId64 "m%02" PRId64 "s", secs / 60, secs % 60);
  else
    snprintf(buf, size, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", secs / 3600,
             (secs / 60) % 60, secs % 60);
}

static bool duration_of(const json_t *obj, char *buf, size_t size) {
  int64_t a = parse_rfc3339_us(str_at(obj, "startedAt"));
  int64_t b = parse_rfc3339_us(str_at(obj, "finishedAt"));
  if (a == 0 || b == 0)
    return false;
  format_seconds((b - a) / 1000000, buf, size);
  return true;
}

/* ---- the page ----------------------------------------------------------- */

static const char page_css[] =
    ":root{--ok:#18be94;--fail:#e96d76;--skip:#ccd6dd;--run:#f4c030;--unknown:#8a99a8;"
    "--ink:#1f2a33;--muted:#6b7b8a;--line:#d5dde3;--bg:#f6f8fa}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "color:var(--ink);background:#fff}\n"
    "main{padding:16px 24px 48px}\n"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;"
    "border-bottom:1px solid var(--line);padding-bottom:4px}\n"
    "section.report{margin-bottom:48px}\n"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;"
    "font-weight:600;vertical-align:middle;color:#fff;background:var(--unknown)}\n"
    ".badge.phase-Succeeded,.badge.verdict-passed{background:var(--ok)}\n"
    ".badge.phase-Failed,.badge.phase-Error,.badge.verdict-failed,.badge.verdict-error"
    "{background:var(--fail)}\n"
    ".badge.phase-Skipped,.badge.phase-Omitted{background:var(--skip);color:var(--ink)}\n"
    ".badge.phase-Running,.badge.phase-Pending,.badge.verdict-inconclusive"
    "{background:var(--run);color:var(--ink)}\n"
    ".facts{color:var(--muted);margin:2px 0}\n"
    ".handler-summary{margin:10px 0;padding:8px 12px;border-left:4px solid var(--unknown);"
    "background:var(--bg)}\n"
    ".handler-summary.ran{border-color:var(--ok)}.handler-summary.missing{border-color:var(--fail)}\n"
    ".graph{overflow:auto;border:1px solid var(--line);border-radius:6px;background:var(--bg);"
    "max-height:80vh}\n"
    "svg.workflow{display:block}\n"
    "svg .edge{fill:none;stroke:#8a99a8;stroke-width:1.5}\n"
    "svg .edge.on-exit{stroke-dasharray:6 4}\n"
    "svg .node rect,svg .node circle{fill:var(--unknown);stroke:#fff;stroke-width:1.5}\n"
    "svg .node.phase-Succeeded rect,svg .node.phase-Succeeded circle{fill:var(--ok)}\n"
    "svg .node.phase-Failed rect,svg .node.phase-Failed circle,svg .node.phase-Error rect,"
    "svg .node.phase-Error circle{fill:var(--fail)}\n"
    "svg .node.phase-Skipped rect,svg .node.phase-Skipped circle,svg .node.phase-Omitted rect,"
    "svg .node.phase-Omitted circle{fill:var(--skip)}\n"
    "svg .node.phase-Running rect,svg .node.phase-Running circle,svg .node.phase-Pending rect,"
    "svg .node.phase-Pending circle{fill:var(--run)}\n"
    "svg .node text{font-size:12px;fill:#fff}\n"
    "svg .node .label{font-weight:600;font-size:13px}\n"
    "svg .node.phase-Skipped text,svg .node.phase-Omitted text,svg .node.phase-Running text,"
    "svg .node.phase-Pending text{fill:var(--ink)}\n"
    "svg .node.small text{fill:var(--muted);font-weight:400;font-size:11px}\n"
    "svg .node.exit-handler rect{stroke:var(--ink);stroke-width:2.5}\n"
    "svg .frame{fill:#fff;stroke:var(--ink);stroke-dasharray:5 4;stroke-width:1.2}\n"
    "svg .frame-label{font-size:12px;font-weight:700;fill:var(--ink);letter-spacing:.04em}\n"
    "svg .edge-label{font-size:11px;fill:var(--muted)}\n"
    "svg a:hover rect,svg a:hover circle{stroke:var(--ink)}\n"
    ".legend{margin:6px 0;color:var(--muted);font-size:12px}\n"
    ".legend span{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px;"
    "vertical-align:middle}\n"
    "ol.timeline{list-style:none;padding:0;margin:0;font-family:ui-monospace,Menlo,Consolas,"
    "monospace;font-size:13px}\n"
    "ol.timeline li{padding:2px 0 2px 8px;border-left:3px solid transparent}\n"
    "ol.timeline .t{display:inline-block;min-width:7em;color:var(--muted)}\n"
    "ol.timeline a{color:inherit;text-decoration:none}ol.timeline a:hover{text-decoration:underline}\n"
    "ol.timeline li[data-kind=fault-fired]{border-color:var(--run);background:#fff8e1}\n"
    "ol.timeline li[data-kind=exit-handler-started]{border-color:var(--ink);font-weight:700}\n"
    "ol.timeline li[data-kind=exit-handler-missing]{border-color:var(--fail);font-weight:700;"
    "color:#b3261e}\n"
    "ol.timeline li.phase-Failed,ol.timeline li.phase-Error{color:#b3261e}\n"
    "ol.timeline li.phase-Succeeded{color:#0b7a5c}\n"
    "ol.timeline li[data-kind=node-skipped]{color:var(--muted)}\n"
    "table{border-collapse:collapse;width:100%;font-size:13px}\n"
    "th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}\n"
    "td code,dd code{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;"
    "word-break:break-word}\n"
    "tr.expectation[data-ok=false] td:first-child{color:#b3261e;font-weight:700}\n"
    "tr.expectation[data-ok=true] td:first-child{color:#0b7a5c}\n"
    "details.node-details{border:1px solid var(--line);border-left:6px solid var(--unknown);"
    "border-radius:4px;margin:6px 0;padding:4px 10px}\n"
    "details.node-details.phase-Succeeded{border-left-color:var(--ok)}\n"
    "details.node-details.phase-Failed,details.node-details.phase-Error"
    "{border-left-color:var(--fail)}\n"
    "details.node-details.phase-Skipped,details.node-details.phase-Omitted"
    "{border-left-color:var(--skip)}\n"
    "details.node-details.phase-Running,details.node-details.phase-Pending"
    "{border-left-color:var(--run)}\n"
    "details.node-details:target{outline:2px solid var(--ink)}\n"
    "summary{cursor:pointer;font-weight:600}\n"
    "summary .type,summary .tag{font-weight:400;color:var(--muted);margin-left:6px}\n"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}\n"
    "dt{color:var(--muted)}dd{margin:0;word-break:break-word}\n"
    "pre.log{background:#1f2a33;color:#e8eef2;padding:8px 10px;border-radius:4px;overflow:auto;"
    "max-height:40em;font-size:12px;white-space:pre-wrap;word-break:break-all}\n"
    ".note{color:var(--muted);font-size:12px}\n"
    "nav.overview table{width:auto}\n";

/* Clicking a node (graph or timeline) opens its details; no network use. */
static const char page_js[] =
    "document.addEventListener('click',function(e){"
    "var a=e.target.closest?e.target.closest('a'):null;if(!a)return;"
    "var h=a.getAttribute('href')||'';if(h.charAt(0)!=='#')return;"
    "var d=document.getElementById(h.slice(1));"
    "if(d&&d.tagName==='DETAILS')d.open=true;});\n";

/* ---- one report: the node table ------------------------------------------ */

struct gnode {
  const char *id;
  const json_t *obj;
  bool handler;  /* part of the exit handler's subgraph */
  bool small;    /* a step or task group: a dot, as Argo draws it */
  size_t layer;
  double order;  /* barycentre while ordering */
  size_t col;
  double x, y;   /* top-left of the slot */
  size_t indeg;
};

struct gedge {
  size_t from, to;
};

struct view {
  FILE *out;
  const json_t *report;
  size_t r;             /* report number on the page */
  size_t n;
  struct gnode *nodes;
  json_t *index;        /* id -> position */
  struct gedge *edges;
  size_t n_edges;
  size_t *out_start;    /* edges leaving node i: edges[out_start[i] .. out_start[i + 1]) */
  size_t eh_root;       /* the exit handler's node, NONE if none */
  size_t entry;         /* the entry node, NONE if not found */
  double width, height; /* of the SVG */
  double frame_x, frame_y, frame_w, frame_h;
};

static size_t position_of(const struct view *v, const char *id) {
  const json_t *p = id != NULL ? json_object_get(v->index, id) : NULL;
  return p != NULL ? (size_t)json_integer_value(p) : NONE;
}

static const char *label_of(const struct gnode *g) {
  const char *s = nonempty(str_at(g->obj, "displayName"));
  if (s == NULL)
    s = nonempty(str_at(g->obj, "name"));
  return s != NULL ? s : g->id;
}

/* In a box: "onExit" for "<wf>.onExit", as the workflow's name is on the
 * page already; the whole name is in the tooltip and the details. */
static const char *box_label(const struct view *v, const struct gnode *g) {
  const char *label = label_of(g);
  const char *wf = str_at(json_object_get(v->report, "workflow"), "name");
  size_t len = wf != NULL ? strlen(wf) : 0;
  if (len > 0 && strncmp(label, wf, len) == 0 && label[len] == '.' && label[len + 1] != '\0')
    return label + len + 1;
  return label;
}

static void load_view(struct view *v) {
  const json_t *nodes = json_object_get(json_object_get(v->report, "status"), "nodes");
  v->n = json_object_size(nodes);
  v->nodes = xcalloc(v->n, sizeof(*v->nodes));
  v->index = json_object();
  if (v->index == NULL)
    abort();
  size_t i = 0, n_edges = 0;
  const char *key;
  json_t *obj;
  json_object_foreach((json_t *)nodes, key, obj) {
    v->nodes[i].id = key;
    v->nodes[i].obj = obj;
    const char *type = str_at(obj, "type");
    v->nodes[i].small =
        type != NULL && (strcmp(type, "StepGroup") == 0 || strcmp(type, "TaskGroup") == 0);
    json_object_set_new(v->index, key, json_integer((json_int_t)i));
    n_edges += json_array_size(json_object_get(obj, "children"));
    i++;
  }
  v->edges = xcalloc(n_edges, sizeof(*v->edges));
  for (i = 0; i < v->n; i++) {
    size_t k;
    const json_t *child;
    json_array_foreach(json_object_get(v->nodes[i].obj, "children"), k, child) {
      size_t c = position_of(v, json_string_value(child));
      if (c != NONE && c != i)
        v->edges[v->n_edges++] = (struct gedge){i, c};
    }
  }
  /* Edges were made node by node, so they are grouped by their source. */
  v->out_start = xcalloc(v->n + 1, sizeof(size_t));
  for (size_t e = 0; e < v->n_edges; e++)
    v->out_start[v->edges[e].from + 1]++;
  for (i = 0; i < v->n; i++)
    v->out_start[i + 1] += v->out_start[i];
  const json_t *eh = json_object_get(v->report, "exitHandler");
  v->eh_root = position_of(v, str_at(eh, "node"));
  const char *wf = str_at(json_object_get(v->report, "workflow"), "name");
  if (v->eh_root == NONE && wf != NULL) {
    /* Argo names the workflow-level exit handler's node <wf>.onExit. */
    for (i = 0; i < v->n && v->eh_root == NONE; i++) {
      const char *name = str_at(v->nodes[i].obj, "name");
      if (name != NULL && strncmp(name, wf, strlen(wf)) == 0 &&
          strcmp(name + strlen(wf), ".onExit") == 0)
        v->eh_root = i;
    }
  }
  v->entry = position_of(v, wf);
  if (v->entry == v->eh_root)
    v->entry = NONE;
}

/* Everything reachable from the exit handler's node is drawn in its frame. */
static void mark_handler(struct view *v) {
  if (v->eh_root == NONE)
    return;
  size_t *stack = xcalloc(v->n, sizeof(size_t));
  size_t top = 0;
  v->nodes[v->eh_root].handler = true;
  stack[top++] = v->eh_root;
  while (top > 0) {
    size_t p = stack[--top];
    for (size_t e = v->out_start[p]; e < v->out_start[p + 1]; e++) {
      size_t c = v->edges[e].to;
      if (!v->nodes[c].handler && c != v->entry) {
        v->nodes[c].handler = true;
        stack[top++] = c;
      }
    }
  }
  free(stack);
}

/* ---- layout: layers by longest path from the roots, barycentre order ------ */

static bool same_part(const struct view *v, const struct gedge *e) {
  return v->nodes[e->from].handler == v->nodes[e->to].handler;
}

static void assign_layers(struct view *v) {
  for (size_t e = 0; e < v->n_edges; e++)
    if (same_part(v, &v->edges[e]))
      v->nodes[v->edges[e].to].indeg++;

  /* Kahn's algorithm; a cycle (corrupt input only) is entered at its
   * first node in report order. */
  size_t *queue = xcalloc(v->n, sizeof(size_t));
  bool *done = xcalloc(v->n, sizeof(bool));
  size_t head = 0, tail = 0, next_unseen = 0;
  for (size_t i = 0; i < v->n; i++)
    if (v->nodes[i].indeg == 0) {
      queue[tail++] = i;
      done[i] = true;
    }
  while (head < v->n) {
    if (head == tail) {
      while (done[next_unseen])
        next_unseen++;
      done[next_unseen] = true;
      queue[tail++] = next_unseen;
    }
    size_t p = queue[head++];
    for (size_t k = v->out_start[p]; k < v->out_start[p + 1]; k++) {
      size_t c = v->edges[k].to;
      if (done[c] || !same_part(v, &v->edges[k]))
        continue;
      if (v->nodes[p].layer + 1 > v->nodes[c].layer)
        v->nodes[c].layer = v->nodes[p].layer + 1;
      if (--v->nodes[c].indeg == 0) {
        done[c] = true;
        queue[tail++] = c;
      }
    }
  }
  free(queue);
  free(done);
}

struct layer_sort {
  size_t *members;
  size_t count;
};

static int cmp_order(const void *a, const void *b, void *arg) {
  const struct gnode *nodes = arg;
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  if (nodes[x].order != nodes[y].order)
    return nodes[x].order < nodes[y].order ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* Lay out one part (main graph or exit handler) with its top-left at
 * (x0, y0); returns its size. */
static void layout_part(struct view *v, bool handler, double x0, double y0, double *w, double *h) {
  size_t layers = 0;
  for (size_t i = 0; i < v->n; i++)
    if (v->nodes[i].handler == handler && v->nodes[i].layer + 1 > layers)
      layers = v->nodes[i].layer + 1;
  *w = *h = 0;
  if (layers == 0)
    return;
  struct layer_sort *ls = xcalloc(layers, sizeof(*ls));
  for (size_t i = 0; i < v->n; i++)
    if (v->nodes[i].handler == handler)
      ls[v->nodes[i].layer].count++;
  for (size_t l = 0; l < layers; l++) {
    ls[l].members = xcalloc(ls[l].count, sizeof(size_t));
    ls[l].count = 0;
  }
  for (size_t i = 0; i < v->n; i++)
    if (v->nodes[i].handler == handler) {
      struct layer_sort *L = &ls[v->nodes[i].layer];
      L->members[L->count++] = i;
    }
  /* Top-down: each node goes under the mean column of its parents in the
   * layer above, so a step's children sit below it. */
  double *sum = xcalloc(v->n, sizeof(double));
  size_t *cnt = xcalloc(v->n, sizeof(size_t));
  size_t widest = 0;
  for (size_t l = 0; l < layers; l++) {
    struct layer_sort *L = &ls[l];
    for (size_t k = 0; k < L->count; k++) {
      size_t i = L->members[k];
      v->nodes[i].order = cnt[i] > 0 ? sum[i] / (double)cnt[i] : (double)k;
    }
    qsort_r(L->members, L->count, sizeof(size_t), cmp_order, v->nodes);
    for (size_t k = 0; k < L->count; k++)
      v->nodes[L->members[k]].col = k;
    for (size_t k = 0; k < L->count; k++) {
      size_t p = L->members[k];
      for (size_t e = v->out_start[p]; e < v->out_start[p + 1]; e++) {
        size_t c = v->edges[e].to;
        if (!same_part(v, &v->edges[e]) || v->nodes[c].layer != l + 1)
          continue;
        sum[c] += (double)v->nodes[p].col;
        cnt[c]++;
      }
    }
    if (L->count > widest)
      widest = L->count;
  }
  double part_w = (double)widest * BOX_W + (double)(widest - 1) * GAP_X;
  for (size_t l = 0; l < layers; l++) {
    struct layer_sort *L = &ls[l];
    double row_w = (double)L->count * BOX_W + (double)(L->count - 1) * GAP_X;
    double left = x0 + (part_w - row_w) / 2;
    for (size_t k = 0; k < L->count; k++) {
      struct gnode *g = &v->nodes[L->members[k]];
      g->x = left + (double)k * (BOX_W + GAP_X);
      g->y = y0 + (double)l * (BOX_H + GAP_Y);
    }
    free(L->members);
  }
  free(ls);
  free(sum);
  free(cnt);
  *w = part_w;
  *h = (double)layers * BOX_H + (double)(layers - 1) * GAP_Y;
}

static void layout(struct view *v) {
  assign_layers(v);
  double mw, mh, hw, hh;
  layout_part(v, false, MARGIN, MARGIN, &mw, &mh);
  double fx = MARGIN + (mw > 0 ? mw + FRAME_GAP : 0);
  double label_h = 22;
  layout_part(v, true, fx + FRAME_PAD, MARGIN + FRAME_PAD + label_h, &hw, &hh);
  v->width = MARGIN * 2 + mw;
  v->height = MARGIN * 2 + mh;
  if (hw > 0) {
    v->frame_x = fx;
    v->frame_y = MARGIN;
    v->frame_w = hw + 2 * FRAME_PAD;
    v->frame_h = hh + 2 * FRAME_PAD + label_h;
    v->width = fx + v->frame_w + MARGIN;
    if (MARGIN * 2 + v->frame_h > v->height)
      v->height = MARGIN * 2 + v->frame_h;
  }
  if (v->width < 200)
    v->width = 200;
  if (v->height < 80)
    v->height = 80;
}

/* ---- drawing ------------------------------------------------------------ */

static void node_anchor(const struct view *v, size_t i, bool bottom, double *x, double *y) {
  const struct gnode *g = &v->nodes[i];
  *x = g->x + BOX_W / 2.0;
  if (g->small)
    *y = g->y + BOX_H / 2.0 + (bottom ? 10 : -10);
  else
    *y = g->y + (bottom ? BOX_H : 0);
}

static void draw_edges(const struct view *v) {
  FILE *out = v->out;
  for (size_t e = 0; e < v->n_edges; e++) {
    const struct gedge *ed = &v->edges[e];
    if (!same_part(v, ed))
      continue;
    double x1, y1, x2, y2;
    node_anchor(v, ed->from, true, &x1, &y1);
    node_anchor(v, ed->to, false, &x2, &y2);
    double dy = (y2 - y1) / 2;
    if (dy < 20)
      dy = 20;
    fprintf(out,
            "<path class=\"edge\" marker-end=\"url(#r%zu-arrow)\" d=\"M%.1f %.1fC%.1f %.1f %.1f "
            "%.1f %.1f %.1f\"/>\n",
            v->r, x1, y1, x1, y1 + dy, x2, y2 - dy, x2, y2);
  }
  if (v->entry != NONE && v->eh_root != NONE && v->frame_w > 0) {
    const struct gnode *a = &v->nodes[v->entry], *b = &v->nodes[v->eh_root];
    double x1 = a->x + BOX_W, y1 = a->y + BOX_H / 2.0, x2 = b->x, y2 = b->y + BOX_H / 2.0;
    fprintf(out,
            "<path class=\"edge on-exit\" marker-end=\"url(#r%zu-arrow)\" d=\"M%.1f %.1fC%.1f "
            "%.1f %.1f %.1f %.1f %.1f\"/>\n",
            v->r, x1, y1, x1 + 40, y1, x2 - 40, y2, x2, y2);
    fprintf(out, "<text class=\"edge-label\" x=\"%.1f\" y=\"%.1f\">onExit</text>\n",
            x1 + 10, y1 - 6);
  }
}

static void node_subline(FILE *out, const json_t *obj) {
  const char *type = str_at(obj, "type");
  const char *phase = str_at(obj, "phase");
  const char *code = str_at(json_object_get(obj, "outputs"), "exitCode");
  const char *sig = str_at(obj, "signal");
  put_esc(out, type ? type : "?");
  fputs(" \xC2\xB7 ", out);
  put_esc(out, phase ? phase : "?");
  if (json_is_true(json_object_get(obj, "oomKilled")))
    fputs(" \xC2\xB7 OOMKilled", out);
  else if (sig != NULL) {
    fputs(" \xC2\xB7 ", out);
    put_esc_cut(out, sig, 10);
  } else if (code != NULL) {
    fputs(" \xC2\xB7 exit ", out);
    put_esc_cut(out, code, 6);
  }
}

static void draw_node(const struct view *v, size_t i) {
  FILE *out = v->out;
  const struct gnode *g = &v->nodes[i];
  const char *phase = str_at(g->obj, "phase");
  const char *type = str_at(g->obj, "type");
  const char *msg = nonempty(str_at(g->obj, "message"));
  fprintf(out, "<a href=\"#r%zu-node-%zu\">", v->r, i);
  fprintf(out, "<g class=\"node phase-%s%s%s\" id=\"r%zu-graph-node-%zu\"", phase_class(phase),
          g->small ? " small" : "", g->handler ? " exit-handler" : "", v->r, i);
  put_attr(out, "data-node-id", g->id);
  put_attr(out, "data-name", label_of(g));
  put_attr(out, "data-phase", phase ? phase : "");
  put_attr(out, "data-type", type ? type : "");
  if (g->handler)
    fputs(" data-exit-handler=\"true\"", out);
  fprintf(out, " transform=\"translate(%.1f %.1f)\">", g->x, g->y);
  fputs("<title>", out);
  put_esc(out, str_at(g->obj, "name") ? str_at(g->obj, "name") : g->id);
  fputs(" \xE2\x80\x94 ", out);
  put_esc(out, phase ? phase : "?");
  if (msg != NULL) {
    fputs(": ", out);
    put_esc(out, msg);
  }
  fputs("</title>", out);
  if (g->small) {
    fprintf(out, "<circle cx=\"%d\" cy=\"%d\" r=\"10\"/>", BOX_W / 2, BOX_H / 2);
    fprintf(out, "<text x=\"%d\" y=\"%d\">", BOX_W / 2 + 16, BOX_H / 2 + 4);
    put_esc_cut(out, label_of(g), LABEL_MAX_CHARS - 6);
    fputs("</text>", out);
  } else {
    fprintf(out, "<rect width=\"%d\" height=\"%d\" rx=\"6\"/>", BOX_W, BOX_H);
    /* Long names are cut to fit; the whole name is in the tooltip and the details. */
    fprintf(out, "<g clip-path=\"url(#r%zu-clip)\"><text class=\"label\" x=\"10\" y=\"19\">", v->r);
    put_esc_cut(out, box_label(v, g), LABEL_MAX_CHARS);
    fputs("</text><text class=\"sub\" x=\"10\" y=\"37\">", out);
    node_subline(out, g->obj);
    fputs("</text></g>", out);
  }
  fputs("</g></a>\n", out);
}

static void draw_graph(const struct view *v) {
  FILE *out = v->out;
  fprintf(out,
          "<div class=\"graph\"><svg class=\"workflow\" xmlns=\"http://www.w3.org/2000/svg\" "
          "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\"",
          v->width, v->height, v->width, v->height);
  put_attr(out, "aria-label", "workflow graph");
  fprintf(out,
          ">\n<defs><marker id=\"r%zu-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
          "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0 0L10 "
          "5L0 10z\" fill=\"#8a99a8\"/></marker><clipPath id=\"r%zu-clip\"><rect x=\"4\" y=\"0\" "
          "width=\"%d\" height=\"%d\"/></clipPath></defs>\n",
          v->r, v->r, BOX_W - 12, BOX_H);
  if (v->frame_w > 0) {
    fprintf(out,
            "<g class=\"exit-handler-frame\"><rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" "
            "width=\"%.1f\" height=\"%.1f\" rx=\"8\"/><text class=\"frame-label\" x=\"%.1f\" "
            "y=\"%.1f\">EXIT HANDLER (onExit)</text></g>\n",
            v->frame_x, v->frame_y, v->frame_w, v->frame_h, v->frame_x + FRAME_PAD,
            v->frame_y + FRAME_PAD + 4);
  }
  draw_edges(v);
  for (size_t i = 0; i < v->n; i++)
    draw_node(v, i);
  if (v->n == 0)
    fprintf(out, "<text x=\"%d\" y=\"%d\">no nodes</text>\n", MARGIN, MARGIN + 14);
  fputs("</svg></div>\n", out);
  fputs("<p class=\"legend\"><span style=\"background:var(--ok)\"></span>Succeeded"
        "<span style=\"background:var(--fail)\"></span>Failed / Error"
        "<span style=\"background:var(--skip)\"></span>Skipped / Omitted"
        "<span style=\"background:var(--run)\"></span>Running / Pending"
        " \xC2\xB7 dots are step and task groups \xC2\xB7 click a node for its details</p>\n",
        out);
}

/* ---- header, timeline, expectations, faults ------------------------------ */

static void put_badge(FILE *out, const char *cls, const char *text) {
  fprintf(out, "<span class=\"badge %s\">", cls);
  put_esc(out, text);
  fputs("</span>", out);
}

static void put_phase_badge(FILE *out, const char *phase) {
  char cls[40];
  snprintf(cls, sizeof(cls), "phase-%s", phase_class(phase));
  put_badge(out, cls, phase ? phase : "unknown");
}

static void render_header(const struct view *v, const char *source) {
  FILE *out = v->out;
  const json_t *r = v->report;
  const json_t *wf = json_object_get(r, "workflow");
  const json_t *status = json_object_get(r, "status");
  struct report_outcome o;
  report_outcome_of(r, &o);
  fputs("<h1>Workflow ", out);
  put_esc(out, str_at(wf, "name") ? str_at(wf, "name") : "(unnamed)");
  fputc(' ', out);
  put_phase_badge(out, str_at(status, "phase"));
  fputs("</h1>\n", out);
  if (o.scenario) {
    char cls[40];
    snprintf(cls, sizeof(cls), "verdict-%s", o.verdict);
    fputs("<p class=\"scenario\">Scenario <strong>", out);
    put_esc(out, o.name);
    fputs("</strong> ", out);
    put_badge(out, cls, o.verdict);
    if (o.reason != NULL) {
      fputs(" ", out);
      put_esc(out, o.reason);
    }
    fputs("</p>\n", out);
  }
  const char *msg = nonempty(str_at(status, "message"));
  if (msg != NULL) {
    fputs("<p class=\"facts\">", out);
    put_esc(out, msg);
    fputs("</p>\n", out);
  }
  fputs("<p class=\"facts\">", out);
  if (o.file != NULL) {
    fputs("file <code>", out);
    put_esc(out, o.file);
    fputs("</code> \xC2\xB7 ", out);
  }
  if (source != NULL) {
    fputs("report <code>", out);
    put_esc(out, source);
    fputs("</code> \xC2\xB7 ", out);
  }
  if (str_at(status, "startedAt") != NULL) {
    fputs("started ", out);
    put_esc(out, str_at(status, "startedAt"));
  }
  char dur[32];
  if (duration_of(status, dur, sizeof(dur)))
    fprintf(out, " \xC2\xB7 took %s", dur);
  if (str_at(status, "progress") != NULL) {
    fputs(" \xC2\xB7 progress ", out);
    put_esc(out, str_at(status, "progress"));
  }
  const json_t *run = json_object_get(r, "run");
  if (json_is_true(json_object_get(run, "interrupted"))) {
    fputs(" \xC2\xB7 interrupted", out);
    if (str_at(run, "signal")) {
      fputs(" by ", out);
      put_esc(out, str_at(run, "signal"));
    }
  }
  if (str_at(run, "shutdown") != NULL) {
    fputs(" \xC2\xB7 shutdown ", out);
    put_esc(out, str_at(run, "shutdown"));
  }
  if (json_is_integer(json_object_get(run, "seed")))
    fprintf(out, " \xC2\xB7 seed %lld", (long long)json_integer_value(json_object_get(run, "seed")));
  fputs("</p>\n", out);

  const json_t *eh = json_object_get(r, "exitHandler");
  bool declared = json_is_true(json_object_get(eh, "declared"));
  bool ran = json_is_true(json_object_get(eh, "ran"));
  fprintf(out, "<p class=\"handler-summary %s\" data-declared=\"%s\" data-ran=\"%s\">",
          !declared ? "none" : ran ? "ran" : "missing", declared ? "true" : "false",
          ran ? "true" : "false");
  if (!declared) {
    fputs("No exit handler declared.", out);
  } else if (!ran) {
    fputs("<strong>Exit handler declared but did not run.</strong>", out);
  } else {
    json_int_t runs = json_integer_value(json_object_get(eh, "runs"));
    fprintf(out, "<strong>Exit handler ran</strong> %lld time%s, by the ", (long long)runs,
            runs == 1 ? "" : "s");
    put_esc(out, str_at(eh, "by") ? str_at(eh, "by") : "?");
    fputs(", ended ", out);
    put_phase_badge(out, str_at(eh, "phase"));
    if (str_at(eh, "workflowStatus") != NULL) {
      fputs("; it saw <code>{{workflow.status}}</code> = <code>", out);
      put_esc(out, str_at(eh, "workflowStatus"));
      fputs("</code>", out);
    }
    fputs(".", out);
  }
  fputs("</p>\n", out);
  report_outcome_free(&o);
}

static void render_timeline(const struct view *v) {
  FILE *out = v->out;
  struct timeline tl;
  timeline_build(v->report, &tl);
  fputs("<h2>Timeline</h2>\n<ol class=\"timeline\">\n", out);
  for (size_t i = 0; i < tl.n; i++) {
    const struct timeline_event *ev = &tl.events[i];
    char t[64];
    timeline_format_offset(ev, t, sizeof(t));
    fprintf(out, "<li class=\"event%s%s\" data-kind=\"%s\">", ev->phase ? " phase-" : "",
            ev->phase ? phase_class(ev->phase) : "", timeline_kind_name(ev->kind));
    fputs("<span class=\"t\">", out);
    put_esc(out, t);
    fputs("</span>", out);
    size_t node = position_of(v, ev->node_id);
    if (node != NONE)
      fprintf(out, "<a href=\"#r%zu-node-%zu\">", v->r, node);
    put_esc(out, ev->text);
    if (node != NONE)
      fputs("</a>", out);
    fputs("</li>\n", out);
  }
  fputs("</ol>\n<p class=\"note\">Node times have whole seconds, as Argo records them; fault "
        "times are exact.</p>\n",
        out);
  timeline_free(&tl);
}

static void render_watchdog(const struct view *v) {
  FILE *out = v->out;
  const json_t *actions = json_object_get(json_object_get(v->report, "watchdog"), "actions");
  if (json_array_size(actions) == 0)
    return;
  fputs("<h2>Watchdog</h2>\n<p class=\"note\">The controller died; what the harness did, in "
        "order:</p>\n<ol class=\"watchdog\">\n",
        out);
  size_t i;
  const json_t *a;
  json_array_foreach(actions, i, a) {
    fputs("<li>", out);
    put_esc(out, json_string_value(a));
    fputs("</li>\n", out);
  }
  fputs("</ol>\n", out);
}

static void put_json_value(FILE *out, const json_t *value) {
  char *text = value != NULL ? json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  fputs("<code>", out);
  put_esc(out, text != NULL ? text : "null");
  fputs("</code>", out);
  free(text);
}

static void render_expectations(const struct view *v) {
  FILE *out = v->out;
  const json_t *results = json_object_get(v->report, "expectations");
  if (!json_is_array(results))
    return;
  const char *file = str_at(json_object_get(v->report, "scenario"), "file");
  fputs("<h2>Expectations</h2>\n<table class=\"expectations\"><tr><th></th><th>path</th>"
        "<th>expected</th><th>actual</th><th>where</th></tr>\n",
        out);
  size_t i;
  const json_t *res;
  json_array_foreach(results, i, res) {
    bool ok = json_is_true(json_object_get(res, "ok"));
    fprintf(out, "<tr class=\"expectation\" data-ok=\"%s\"><td>%s</td><td><code>",
            ok ? "true" : "false", ok ? "ok" : "FAIL");
    put_esc(out, str_at(res, "path"));
    fputs("</code></td><td>", out);
    put_json_value(out, json_object_get(res, "expected"));
    fputs("</td><td>", out);
    put_json_value(out, json_object_get(res, "actual"));
    if (str_at(res, "note") != NULL) {
      fputs("<br><span class=\"note\">", out);
      put_esc(out, str_at(res, "note"));
      fputs("</span>", out);
    }
    fputs("</td><td>", out);
    put_esc(out, file ? file : "line");
    fprintf(out, ":%lld:%lld</td></tr>\n",
            (long long)json_integer_value(json_object_get(res, "line")),
            (long long)json_integer_value(json_object_get(res, "column")));
  }
  fputs("</table>\n", out);
}

static void put_fault_line(FILE *out, const json_t *f) {
  bool fired = json_is_true(json_object_get(f, "fired"));
  put_esc(out, str_at(f, "asked") ? str_at(f, "asked") : str_at(f, "action"));
  if (fired && json_is_number(json_object_get(f, "firedAfterSeconds")))
    fprintf(out, " \xE2\x80\x94 fired at +%.3fs",
            json_number_value(json_object_get(f, "firedAfterSeconds")));
  else if (!fired)
    fputs(" \xE2\x80\x94 <strong>did not fire</strong>", out);
  if (str_at(f, "detail") != NULL) {
    fputs(" (", out);
    put_esc(out, str_at(f, "detail"));
    fputs(")", out);
  }
}

static void render_faults(const struct view *v) {
  FILE *out = v->out;
  const json_t *faults = json_object_get(v->report, "faults");
  if (json_array_size(faults) == 0)
    return;
  fputs("<h2>Faults</h2>\n<table class=\"faults\"><tr><th>action</th><th>target</th>"
        "<th>asked</th><th>fired</th><th>node</th></tr>\n",
        out);
  size_t i;
  const json_t *f;
  json_array_foreach(faults, i, f) {
    bool fired = json_is_true(json_object_get(f, "fired"));
    fprintf(out, "<tr class=\"fault\" data-fired=\"%s\"><td>", fired ? "true" : "false");
    put_esc(out, str_at(f, "action"));
    fputs("</td><td><code>", out);
    put_esc(out, str_at(f, "target") ? str_at(f, "target") : "(workflow)");
    fputs("</code></td><td>", out);
    put_fault_line(out, f);
    fprintf(out, "</td><td>%s</td><td>", fired ? "yes" : "no");
    size_t node = position_of(v, str_at(f, "node"));
    if (node != NONE) {
      fprintf(out, "<a href=\"#r%zu-node-%zu\">", v->r, node);
      put_esc(out, label_of(&v->nodes[node]));
      fputs("</a>", out);
    }
    fputs("</td></tr>\n", out);
  }
  fputs("</table>\n", out);
}

/* ---- node details --------------------------------------------------------- */

static void put_dt(FILE *out, const char *term) { fprintf(out, "<dt>%s</dt><dd>", term); }

static void put_fact(FILE *out, const char *term, const char *value, bool code) {
  if (value == NULL)
    return;
  put_dt(out, term);
  if (code)
    fputs("<code>", out);
  put_esc(out, value);
  fputs(code ? "</code></dd>\n" : "</dd>\n", out);
}

static void put_node_faults(const struct view *v, const char *id) {
  FILE *out = v->out;
  const json_t *faults = json_object_get(v->report, "faults");
  bool any = false;
  size_t i;
  const json_t *f;
  json_array_foreach(faults, i, f) {
    const char *node = str_at(f, "node");
    if (node == NULL || strcmp(node, id) != 0)
      continue;
    if (!any)
      fputs("<dt>faults injected</dt><dd><ul>", out);
    any = true;
    fputs("<li>", out);
    put_fault_line(out, f);
    fputs("</li>", out);
  }
  if (any)
    fputs("</ul></dd>\n", out);
}

static void put_outputs(FILE *out, const json_t *outputs) {
  put_fact(out, "exit code", str_at(outputs, "exitCode"), true);
  const json_t *params = json_object_get(outputs, "parameters");
  if (json_array_size(params) == 0)
    return;
  put_dt(out, "output parameters");
  size_t i;
  const json_t *p;
  json_array_foreach(params, i, p) {
    fputs("<code>", out);
    put_esc(out, str_at(p, "name"));
    fputs("</code> = <code>", out);
    put_esc(out, str_at(p, "value") ? str_at(p, "value") : "");
    fputs("</code><br>", out);
  }
  fputs("</dd>\n", out);
}

static void put_log(FILE *out, const json_t *obj) {
  const json_t *log = json_object_get(obj, "log");
  if (!json_is_string(log) || json_string_length(log) == 0)
    return;
  const char *s = json_string_value(log);
  size_t len = json_string_length(log), shown = len;
  if (shown > HTML_LOG_MAX) {
    shown = HTML_LOG_MAX;
    while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
      shown--;
  }
  fputs("<pre class=\"log\">", out);
  put_esc_n(out, s, shown);
  fputs("</pre>\n", out);
  if (shown < len)
    fprintf(out, "<p class=\"note\">Log cut at %zu of %zu bytes here; the JSON report has it "
                 "all.</p>\n",
            shown, len);
  if (json_is_true(json_object_get(obj, "logTruncated")))
    fputs("<p class=\"note\">The step wrote more than 1 MiB; the report kept the first "
          "1 MiB.</p>\n",
          out);
}

static void render_node_details(const struct view *v, size_t i) {
  FILE *out = v->out;
  const struct gnode *g = &v->nodes[i];
  const json_t *o = g->obj;
  const char *phase = str_at(o, "phase");
  const char *type = str_at(o, "type");
  bool failed = phase != NULL && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Error") == 0);
  bool open = i == v->eh_root || (failed && type != NULL && strcmp(type, "Pod") == 0);
  fprintf(out, "<details class=\"node-details phase-%s\" id=\"r%zu-node-%zu\"%s",
          phase_class(phase), v->r, i, open ? " open" : "");
  put_attr(out, "data-node-id", g->id);
  put_attr(out, "data-phase", phase ? phase : "");
  fputs("><summary>", out);
  put_esc(out, label_of(g));
  fputc(' ', out);
  put_phase_badge(out, phase);
  fputs("<span class=\"type\">", out);
  put_esc(out, type ? type : "");
  fputs("</span>", out);
  if (i == v->eh_root)
    fputs("<span class=\"tag\">exit handler</span>", out);
  else if (g->handler)
    fputs("<span class=\"tag\">in the exit handler</span>", out);
  fputs("</summary>\n<dl>\n", out);
  put_fact(out, "name", str_at(o, "name"), true);
  put_fact(out, "id", g->id, true);
  put_fact(out, "template", str_at(o, "templateName"), true);
  put_fact(out, "pod", str_at(o, "podName"), true);
  put_fact(out, "message", nonempty(str_at(o, "message")), false);
  put_outputs(out, json_object_get(o, "outputs"));
  put_fact(out, "signal", str_at(o, "signal"), true);
  if (json_is_true(json_object_get(o, "oomKilled")))
    put_fact(out, "OOM killed", "yes: the kernel's OOM killer killed a process of the step", false);
  json_int_t peak = json_integer_value(json_object_get(o, "memoryPeakBytes"));
  if (peak > 0) {
    char buf[64], text[128];
    format_bytes((uint64_t)peak, buf, sizeof(buf));
    snprintf(text, sizeof(text), "%s (%lld bytes)", buf, (long long)peak);
    put_fact(out, "memory peak", text, false);
  }
  put_fact(out, "started", str_at(o, "startedAt"), false);
  put_fact(out, "finished", str_at(o, "finishedAt"), false);
  char dur[32];
  if (duration_of(o, dur, sizeof(dur)))
    put_fact(out, "duration", dur, false);
  put_node_faults(v, g->id);
  put_fact(out, "result", str_at(json_object_get(o, "outputs"), "result"), true);
  fputs("</dl>\n", out);
  put_log(out, o);
  fputs("</details>\n", out);
}

static void put_string_list(FILE *out, const char *title, const json_t *list) {
  if (json_array_size(list) == 0)
    return;
  fprintf(out, "<h3>%s</h3><ul>", title);
  size_t i;
  const json_t *s;
  json_array_foreach(list, i, s) {
    fputs("<li>", out);
    put_esc(out, json_string_value(s));
    fputs("</li>", out);
  }
  fputs("</ul>\n", out);
}

static void render_environment(const struct view *v) {
  FILE *out = v->out;
  const json_t *env = json_object_get(v->report, "environment");
  fputs("<h2>Environment</h2>\n<dl>\n", out);
  put_fact(out, "cgroup", str_at(env, "cgroup"), true);
  const json_t *ns = json_object_get(env, "namespaces");
  if (json_array_size(ns) > 0) {
    put_dt(out, "namespaces");
    size_t i;
    const json_t *s;
    json_array_foreach(ns, i, s) {
      if (i > 0)
        fputs(", ", out);
      put_esc(out, json_string_value(s));
    }
    fputs("</dd>\n", out);
  }
  if (json_is_boolean(json_object_get(env, "seccomp")))
    put_fact(out, "seccomp", json_is_true(json_object_get(env, "seccomp")) ? "yes" : "no", false);
  put_fact(out, "image", str_at(env, "image"), false);
  fputs("</dl>\n", out);
  put_string_list(out, "Notes", json_object_get(env, "notes"));
  put_string_list(out, "Warnings", json_object_get(v->report, "warnings"));
}

static void render_report(FILE *out, const json_t *report, const char *source, size_t r) {
  struct view v = {.out = out, .report = report, .r = r};
  load_view(&v);
  mark_handler(&v);
  layout(&v);
  fprintf(out, "<section class=\"report\" id=\"r%zu\">\n", r);
  render_header(&v, source);
  fputs("<h2>Graph</h2>\n", out);
  draw_graph(&v);
  render_timeline(&v);
  render_watchdog(&v);
  render_expectations(&v);
  render_faults(&v);
  fputs("<h2>Nodes</h2>\n", out);
  for (size_t i = 0; i < v.n; i++)
    render_node_details(&v, i);
  render_environment(&v);
  fputs("</section>\n", out);
  free(v.nodes);
  free(v.edges);
  free(v.out_start);
  json_decref(v.index);
}

static void render_overview(FILE *out, const json_t *const *reports, size_t n) {
  fputs("<nav class=\"overview\"><h2>Reports</h2><table><tr><th>report</th><th>verdict</th>"
        "<th>workflow</th><th>exit handler</th></tr>\n",
        out);
  for (size_t i = 0; i < n; i++) {
    struct report_outcome o;
    report_outcome_of(reports[i], &o);
    const json_t *eh = json_object_get(reports[i], "exitHandler");
    char cls[40];
    snprintf(cls, sizeof(cls), "verdict-%s", o.verdict);
    fprintf(out, "<tr><td><a href=\"#r%zu\">", i);
    put_esc(out, o.name);
    fputs("</a></td><td>", out);
    put_badge(out, cls, o.verdict);
    fputs("</td><td>", out);
    put_phase_badge(out, str_at(json_object_get(reports[i], "status"), "phase"));
    fputs("</td><td>", out);
    if (!json_is_true(json_object_get(eh, "declared")))
      fputs("none declared", out);
    else if (!json_is_true(json_object_get(eh, "ran")))
      fputs("<strong>did not run</strong>", out);
    else
      fprintf(out, "ran %lld\xC3\x97",
              (long long)json_integer_value(json_object_get(eh, "runs")));
    fputs("</td></tr>\n", out);
    report_outcome_free(&o);
  }
  fputs("</table></nav>\n", out);
}

void report_html_render(const json_t *const *reports, const char *const *sources, size_t n,
                        FILE *out) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"exitprobe report\">\n<title>",
        out);
  if (n == 1) {
    const char *name = str_at(json_object_get(reports[0], "workflow"), "name");
    const char *phase = str_at(json_object_get(reports[0], "status"), "phase");
    put_esc(out, name ? name : "workflow");
    fputs(" \xE2\x80\x94 ", out);
    put_esc(out, phase ? phase : "?");
    fputs(" \xE2\x80\x94 exitprobe", out);
  } else {
    fprintf(out, "exitprobe: %zu reports", n);
  }
  fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body data-reports=\"%zu\">\n<main>\n",
          page_css, n);
  if (n > 1)
    render_overview(out, reports, n);
  for (size_t i = 0; i < n; i++)
    render_report(out, reports[i], sources != NULL ? sources[i] : NULL, i);
  fprintf(out, "</main>\n<script>\n%s</script>\n</body>\n</html>\n", page_js);
}
