#include "report_timeline.h"
#include "../runner/xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report_json.h"
#include "../runner/state_load.h"

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_RED "\033[31m"
#define ANSI_GREEN "\033[32m"
#define ANSI_YELLOW "\033[33m"
#define ANSI_GREY "\033[90m"

#define NONE SIZE_MAX

/* One event while ordering; the public event is made for the ones shown. */
struct item {
  enum timeline_kind kind;
  int64_t second;   /* whole seconds since the epoch; the sort key */
  bool has_time;
  int64_t key;      /* second, or for an event without a time the latest of its predecessors */
  size_t node;      /* index into the node table, NONE for workflow events */
  size_t fault;     /* index into faults, NONE otherwise */
  size_t indegree;
  bool queued, emitted;
};

struct edge {
  size_t from, to;
};

/* What the timeline reads of a node, from a report's JSON or straight from
 * a run state (`exitprobe run` then never holds a JSON tree of every node).
 * Strings are borrowed, except the two made from numbers, kept in buf_*. */
struct tl_node {
  const char *id, *name, *display_name, *type, *template_name, *phase, *boundary_id, *message;
  const char *signal, *exit_code;
  int64_t started_us, finished_us; /* 0: none (or unreadable) */
  bool has_finished;               /* finishedAt present */
  bool oom_killed;
  const char *const *children;
  size_t n_children;
  char buf_signal[32], buf_exit_code[16];
};

/* id -> position, sorted by id for bsearch. */
struct tl_index {
  const char *id;
  size_t pos;
};

struct builder {
  const json_t *report;
  const json_t *faults;
  size_t n_nodes;
  const char **ids;
  const struct tl_node *nodes;
  struct tl_index *index;
  size_t eh_node;      /* position of the exit handler's node, NONE if none */
  size_t *start_ev, *finish_ev;
  struct item *items;
  size_t n_items, cap_items;
  struct edge *edges;
  size_t n_edges, cap_edges;
  int64_t wf_start_us;
  bool has_wf_start;
};

static void *grow(void *p, size_t *cap, size_t size) {
  *cap = *cap != 0 ? *cap * 2 : 16;
  void *q = realloc(p, *cap * size);
  if (q == NULL)
    abort();
  return q;
}

static char *event_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Like xasprintf, but one line per event whatever a message or a name holds. */
static char *event_text(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  int r = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (r < 0)
    abort();
  /* One line per event, whatever a message or a name holds. */
  for (unsigned char *c = (unsigned char *)s; *c != '\0'; c++)
    if (*c < 0x20 || *c == 0x7f)
      *c = ' ';
  return s;
}

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static const char *nonempty(const char *s) { return s != NULL && s[0] != '\0' ? s : NULL; }

static bool is_type(const struct tl_node *node, const char *type) {
  return node->type != NULL && strcmp(node->type, type) == 0;
}

static bool is_holder(const struct tl_node *node) {
  return is_type(node, "StepGroup") || is_type(node, "TaskGroup") || is_type(node, "Retry");
}

static bool phase_is(const char *phase, const char *const *set) {
  for (size_t i = 0; phase != NULL && set[i] != NULL; i++)
    if (strcmp(phase, set[i]) == 0)
      return true;
  return false;
}

static const char *const skipped_phases[] = {"Skipped", "Omitted", NULL};
static const char *const final_phases[] = {"Succeeded", "Failed", "Error", "Skipped", "Omitted",
                                           NULL};
static const char *const completed_phases[] = {"Succeeded", "Failed", "Error", NULL};

static int cmp_index(const void *a, const void *b) {
  return strcmp(((const struct tl_index *)a)->id, ((const struct tl_index *)b)->id);
}

static size_t position_of(const struct builder *b, const char *id) {
  if (id == NULL)
    return NONE;
  struct tl_index key = {.id = id};
  const struct tl_index *hit = bsearch(&key, b->index, b->n_nodes, sizeof(key), cmp_index);
  return hit != NULL ? hit->pos : NONE;
}

/* ---- events and what must come before what ----------------------------- */

static size_t add_item(struct builder *b, enum timeline_kind kind, int64_t us, size_t node,
                       size_t fault) {
  if (b->n_items == b->cap_items)
    b->items = grow(b->items, &b->cap_items, sizeof(*b->items));
  struct item *it = &b->items[b->n_items];
  memset(it, 0, sizeof(*it));
  it->kind = kind;
  it->node = node;
  it->fault = fault;
  if (us != 0) {
    it->has_time = true;
    it->second = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  }
  return b->n_items++;
}

static void add_edge(struct builder *b, size_t from, size_t to) {
  if (from == NONE || to == NONE || from == to)
    return;
  if (b->n_edges == b->cap_edges)
    b->edges = grow(b->edges, &b->cap_edges, sizeof(*b->edges));
  b->edges[b->n_edges++] = (struct edge){from, to};
}

static double fault_offset(const json_t *f, bool *known) {
  const json_t *after = json_object_get(f, "firedAfterSeconds");
  *known = json_is_number(after);
  return *known ? json_number_value(after) : 0;
}

static int cmp_fault_offset(const void *a, const void *b, void *arg) {
  const json_t *faults = arg;
  bool ka, kb;
  double x = fault_offset(json_array_get(faults, *(const size_t *)a), &ka);
  double y = fault_offset(json_array_get(faults, *(const size_t *)b), &kb);
  if (x != y)
    return x < y ? -1 : 1;
  return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Creation order doubles as the tie-break within a second: every start
 * before any fault, every fault before any end, so that steps running side
 * by side read "A started, B started, A ended, B ended". */
static void create_items(struct builder *b, size_t *wf_start, size_t *wf_finish, size_t *missing) {
  const json_t *status = json_object_get(b->report, "status");
  *wf_start = add_item(b, TIMELINE_WORKFLOW_STARTED, b->wf_start_us, NONE, NONE);
  for (size_t i = 0; i < b->n_nodes; i++)
    b->start_ev[i] = add_item(b, TIMELINE_NODE_STARTED, b->nodes[i].started_us, i, NONE);

  size_t n_faults = json_array_size(b->faults);
  size_t *order = xcalloc(n_faults, sizeof(size_t));
  for (size_t j = 0; j < n_faults; j++)
    order[j] = j;
  qsort_r(order, n_faults, sizeof(size_t), cmp_fault_offset, (void *)b->faults);
  for (size_t k = 0; k < n_faults; k++) {
    const json_t *f = json_array_get(b->faults, order[k]);
    if (!json_is_true(json_object_get(f, "fired")))
      continue;
    size_t ev = add_item(b, TIMELINE_FAULT_FIRED, parse_rfc3339_us(str_at(f, "firedAt")),
                         position_of(b, str_at(f, "node")), order[k]);
    bool known;
    double after = fault_offset(f, &known);
    if (!b->items[ev].has_time && known && b->has_wf_start) {
      b->items[ev].has_time = true;
      b->items[ev].second = (b->wf_start_us + (int64_t)(after * 1e6)) / 1000000;
    }
  }
  free(order);

  for (size_t i = 0; i < b->n_nodes; i++) {
    const struct tl_node *n = &b->nodes[i];
    b->finish_ev[i] = NONE;
    if (n->has_finished || phase_is(n->phase, final_phases))
      b->finish_ev[i] = add_item(b, TIMELINE_NODE_FINISHED, n->finished_us, i, NONE);
  }
  *wf_finish = NONE;
  if (str_at(status, "finishedAt") != NULL || phase_is(str_at(status, "phase"), completed_phases))
    *wf_finish = add_item(b, TIMELINE_WORKFLOW_FINISHED,
                          parse_rfc3339_us(str_at(status, "finishedAt")), NONE, NONE);
  const json_t *eh = json_object_get(b->report, "exitHandler");
  *missing = NONE;
  if (json_is_true(json_object_get(eh, "declared")) && !json_is_true(json_object_get(eh, "ran")))
    *missing = add_item(b, TIMELINE_EXIT_HANDLER_MISSING,
                        parse_rfc3339_us(str_at(status, "finishedAt")), NONE, NONE);
}

/* A child inside its parent (started after it, ended before it) rather than
 * after it: the parent is its boundary, or holds it (a step group, task
 * group or retry). */
static bool contains(const struct builder *b, size_t parent, size_t child) {
  const char *boundary = b->nodes[child].boundary_id;
  return is_holder(&b->nodes[parent]) ||
         (boundary != NULL && strcmp(boundary, b->ids[parent]) == 0);
}

/* Nodes of the exit handler: its node and everything below it. */
static bool *handler_nodes(const struct builder *b) {
  bool *in = xcalloc(b->n_nodes, sizeof(bool));
  size_t *stack = xcalloc(b->n_nodes, sizeof(size_t));
  size_t top = 0;
  in[b->eh_node] = true;
  stack[top++] = b->eh_node;
  while (top > 0) {
    size_t p = stack[--top];
    for (size_t k = 0; k < b->nodes[p].n_children; k++) {
      size_t c = position_of(b, b->nodes[p].children[k]);
      if (c != NONE && !in[c]) {
        in[c] = true;
        stack[top++] = c;
      }
    }
  }
  free(stack);
  return in;
}

static void order_around_crash(struct builder *b, size_t crash) {
  bool *in_handler = handler_nodes(b);
  for (size_t i = 0; i < b->n_nodes; i++) {
    if (in_handler[i])
      continue;
    add_edge(b, b->start_ev[i], crash);
    add_edge(b, b->finish_ev[i], crash);
  }
  add_edge(b, crash, b->start_ev[b->eh_node]);
  free(in_handler);
}

static void create_edges(struct builder *b, size_t wf_start, size_t wf_finish, size_t missing) {
  for (size_t i = 0; i < b->n_nodes; i++) {
    add_edge(b, wf_start, b->start_ev[i]);
    add_edge(b, b->start_ev[i], b->finish_ev[i]);
    add_edge(b, b->finish_ev[i], wf_finish);
    size_t boundary = position_of(b, b->nodes[i].boundary_id);
    if (boundary != NONE) {
      add_edge(b, b->start_ev[boundary], b->start_ev[i]);
      add_edge(b, b->finish_ev[i], b->finish_ev[boundary]);
    }
    for (size_t k = 0; k < b->nodes[i].n_children; k++) {
      size_t c = position_of(b, b->nodes[i].children[k]);
      if (c == NONE || c == i)
        continue;
      if (contains(b, i, c)) {
        add_edge(b, b->start_ev[i], b->start_ev[c]);
        add_edge(b, b->finish_ev[c], b->finish_ev[i]);
      } else {
        /* The next step group, or a task depending on this one. */
        add_edge(b, b->finish_ev[i], b->start_ev[c]);
      }
    }
  }
  const json_t *eh = json_object_get(b->report, "exitHandler");
  const char *by = str_at(eh, "by");
  bool by_watchdog = by != NULL && strcmp(by, "watchdog") == 0;
  for (size_t e = 0; e < b->n_items; e++) {
    const struct item *it = &b->items[e];
    if (it->kind != TIMELINE_FAULT_FIRED)
      continue;
    add_edge(b, wf_start, e);
    add_edge(b, e, wf_finish);
    if (it->node != NONE) {
      add_edge(b, b->start_ev[it->node], e);
      add_edge(b, e, b->finish_ev[it->node]);
    }
    /* The watchdog runs the handler because the controller crashed and
     * stayed down: what the controller recorded came before the crash. */
    const char *action = str_at(json_array_get(b->faults, it->fault), "action");
    if (by_watchdog && b->eh_node != NONE && action != NULL &&
        strcmp(action, "controller-crash") == 0)
      order_around_crash(b, e);
  }
  /* Attempts of a retry run one after the other. */
  for (size_t i = 0; i < b->n_nodes; i++) {
    if (!is_type(&b->nodes[i], "Retry"))
      continue;
    size_t prev = NONE;
    for (size_t k = 0; k < b->nodes[i].n_children; k++) {
      size_t c = position_of(b, b->nodes[i].children[k]);
      if (c == NONE || c == i)
        continue;
      if (prev != NONE)
        add_edge(b, b->finish_ev[prev], b->start_ev[c]);
      prev = c;
    }
  }
  /* The workflow-level exit handler runs once the entry node has ended. */
  const char *wf_name = str_at(json_object_get(b->report, "workflow"), "name");
  size_t entry = position_of(b, wf_name);
  if (b->eh_node != NONE && entry != NONE && entry != b->eh_node)
    add_edge(b, b->finish_ev[entry], b->start_ev[b->eh_node]);
  add_edge(b, wf_finish, missing);
  /* An unfinished run: "did not run" is still the last word. */
  for (size_t e = 0; wf_finish == NONE && missing != NONE && e < b->n_items; e++)
    add_edge(b, e, missing);
}

/* ---- ordering: Kahn's algorithm, earliest second first ------------------ */

struct heap {
  size_t *v;
  size_t n;
  const struct item *items;
};

static bool before(const struct heap *h, size_t a, size_t b) {
  const struct item *x = &h->items[a], *y = &h->items[b];
  if (x->key != y->key)
    return x->key < y->key;
  return a < b;
}

static void heap_push(struct heap *h, size_t ev) {
  size_t i = h->n++;
  h->v[i] = ev;
  while (i > 0 && before(h, h->v[i], h->v[(i - 1) / 2])) {
    size_t p = (i - 1) / 2, t = h->v[p];
    h->v[p] = h->v[i];
    h->v[i] = t;
    i = p;
  }
}

static size_t heap_pop(struct heap *h) {
  size_t top = h->v[0];
  h->v[0] = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && before(h, h->v[l], h->v[m]))
      m = l;
    if (r < h->n && before(h, h->v[r], h->v[m]))
      m = r;
    if (m == i)
      break;
    size_t t = h->v[m];
    h->v[m] = h->v[i];
    h->v[i] = t;
    i = m;
  }
  return top;
}

static int cmp_by_key(const void *a, const void *b, void *arg) {
  const struct item *items = arg;
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  if (items[x].key != items[y].key)
    return items[x].key < items[y].key ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* The events in display order.  A cycle (only a corrupt report has one) is
 * broken by taking the earliest remaining event. */
static size_t *order_items(struct builder *b) {
  size_t n = b->n_items;
  size_t *out_start = xcalloc(n + 1, sizeof(size_t));
  size_t *adj = xcalloc(b->n_edges, sizeof(size_t));
  for (size_t e = 0; e < b->n_edges; e++) {
    out_start[b->edges[e].from + 1]++;
    b->items[b->edges[e].to].indegree++;
  }
  for (size_t i = 0; i < n; i++)
    out_start[i + 1] += out_start[i];
  size_t *fill = xcalloc(n, sizeof(size_t));
  for (size_t e = 0; e < b->n_edges; e++) {
    size_t from = b->edges[e].from;
    adj[out_start[from] + fill[from]++] = b->edges[e].to;
  }
  free(fill);

  int64_t *pred_max = xcalloc(n, sizeof(int64_t));
  for (size_t i = 0; i < n; i++) {
    pred_max[i] = INT64_MIN;
    b->items[i].key = b->items[i].has_time ? b->items[i].second : INT64_MIN;
  }
  size_t *fallback = xcalloc(n, sizeof(size_t));
  for (size_t i = 0; i < n; i++)
    fallback[i] = i;
  qsort_r(fallback, n, sizeof(size_t), cmp_by_key, b->items);
  size_t next_fallback = 0;

  struct heap h = {.v = xcalloc(n, sizeof(size_t)), .items = b->items};
  for (size_t i = 0; i < n; i++)
    if (b->items[i].indegree == 0) {
      b->items[i].queued = true;
      heap_push(&h, i);
    }
  size_t *order = xcalloc(n, sizeof(size_t));
  size_t done = 0;
  while (done < n) {
    if (h.n == 0) {
      while (b->items[fallback[next_fallback]].queued)
        next_fallback++;
      b->items[fallback[next_fallback]].queued = true;
      heap_push(&h, fallback[next_fallback]);
    }
    size_t ev = heap_pop(&h);
    b->items[ev].emitted = true;
    order[done++] = ev;
    for (size_t k = out_start[ev]; k < out_start[ev + 1]; k++) {
      struct item *to = &b->items[adj[k]];
      if (b->items[ev].key > pred_max[adj[k]])
        pred_max[adj[k]] = b->items[ev].key;
      if (to->indegree > 0)
        to->indegree--;
      if (to->indegree == 0 && !to->queued) {
        if (!to->has_time)
          to->key = pred_max[adj[k]];
        to->queued = true;
        heap_push(&h, adj[k]);
      }
    }
  }
  free(h.v);
  free(fallback);
  free(pred_max);
  free(adj);
  free(out_start);
  return order;
}

/* ---- what each event says ------------------------------------------------- */

static const char *label_of(const struct tl_node *node, const char *id) {
  const char *s = nonempty(node->display_name);
  if (s == NULL)
    s = nonempty(node->name);
  return s != NULL ? s : id;
}

static bool shown(const struct builder *b, const struct item *it) {
  if (it->node == NONE)
    return true;
  if (it->kind == TIMELINE_FAULT_FIRED || it->node == b->eh_node)
    return true;
  const struct tl_node *n = &b->nodes[it->node];
  if (!(is_type(n, "Pod") || is_type(n, "Suspend") || is_type(n, "Skipped")))
    return false;
  /* A skipped step never started: one "skipped" line says it all. */
  return !(it->kind == TIMELINE_NODE_STARTED && phase_is(n->phase, skipped_phases));
}

static char *finished_text(const struct tl_node *n, const char *label, const char *phase) {
  const char *msg = nonempty(n->message);
  const char *sig = nonempty(n->signal);
  const char *code = n->exit_code;
  bool oom = n->oom_killed;
  char *extra = event_text("%s%s%s%s", sig && !(msg && strstr(msg, sig)) ? " (killed by " : "",
                          sig && !(msg && strstr(msg, sig)) ? sig : "",
                          sig && !(msg && strstr(msg, sig)) ? ")" : "",
                          oom && !(msg && strstr(msg, "OOM")) ? " (OOMKilled)" : "");
  char *text;
  if (msg != NULL)
    text = event_text("%s %s: %s%s", label, phase, msg, extra);
  else if (code != NULL && strcmp(code, "0") != 0)
    text = event_text("%s %s (exit code %s)%s", label, phase, code, extra);
  else
    text = event_text("%s %s%s", label, phase, extra);
  free(extra);
  return text;
}

static char *eh_started_text(const struct builder *b, const struct tl_node *node) {
  const json_t *eh = json_object_get(b->report, "exitHandler");
  const char *status = str_at(eh, "workflowStatus");
  const char *tmpl = nonempty(node->template_name);
  json_int_t runs = json_integer_value(json_object_get(eh, "runs"));
  const char *by = str_at(eh, "by");
  char *seen = status ? event_text(" with {{workflow.status}}=%s", status) : event_text("%s", "");
  char *times = runs > 1 ? event_text(" (started %lld times in all; Argo starts it once)",
                                     (long long)runs)
                         : event_text("%s", "");
  char *what = tmpl ? event_text("exit handler (%s)", tmpl) : event_text("exit handler");
  char *text;
  if (by != NULL && strcmp(by, "watchdog") == 0)
    text = event_text("watchdog took over: %s started%s; the controller did not start it%s", what,
                     seen, times);
  else
    text = event_text("%s started by the %s%s%s", what, by && strcmp(by, "none") != 0 ? by : "controller",
                     seen, times);
  free(seen);
  free(times);
  free(what);
  return text;
}

static char *missing_text(const json_t *report) {
  const json_t *run = json_object_get(report, "run");
  const char *shutdown = str_at(run, "shutdown");
  if (shutdown != NULL && strcmp(shutdown, "Terminate") == 0)
    return event_text("exit handler did not run: the shutdown strategy Terminate skips it");
  if (json_is_true(json_object_get(run, "interrupted")))
    return event_text("exit handler did not run: the run was interrupted");
  return event_text("exit handler declared but did not run");
}

static char *workflow_finished_text(const json_t *report) {
  const json_t *status = json_object_get(report, "status");
  const json_t *run = json_object_get(report, "run");
  const char *phase = nonempty(str_at(status, "phase")) ? str_at(status, "phase") : "ended";
  const char *msg = nonempty(str_at(status, "message"));
  const char *shutdown = nonempty(str_at(run, "shutdown"));
  const char *sig = nonempty(str_at(run, "signal"));
  bool interrupted = json_is_true(json_object_get(run, "interrupted"));
  char *how = shutdown ? event_text(" (shutdown strategy %s)", shutdown) : event_text("%s", "");
  char *why = !interrupted ? event_text("%s", "")
              : sig        ? event_text(" (interrupted by %s)", sig)
                           : event_text(" (interrupted)");
  char *text = event_text("workflow %s%s%s%s%s", phase, msg ? ": " : "", msg ? msg : "", how, why);
  free(how);
  free(why);
  return text;
}

static char *fault_text(const struct builder *b, const struct item *it) {
  const json_t *f = json_array_get(b->faults, it->fault);
  const char *asked = nonempty(str_at(f, "asked"));
  const char *detail = nonempty(str_at(f, "detail"));
  if (asked == NULL)
    asked = nonempty(str_at(f, "action")) ? str_at(f, "action") : "fault";
  if (it->node != NONE)
    return event_text("fault fired on %s: %s%s%s%s", label_of(&b->nodes[it->node], b->ids[it->node]),
                     asked, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
  return event_text("fault fired: %s%s%s%s", asked, detail ? " (" : "", detail ? detail : "",
                   detail ? ")" : "");
}

static void describe(const struct builder *b, const struct item *it, struct timeline_event *ev) {
  const json_t *report = b->report;
  const struct tl_node *node = it->node != NONE ? &b->nodes[it->node] : NULL;
  const char *label = node != NULL ? label_of(node, b->ids[it->node]) : NULL;
  const char *phase = node != NULL ? nonempty(node->phase) : NULL;
  ev->kind = it->kind;
  ev->node_id = node != NULL ? b->ids[it->node] : NULL;
  switch (it->kind) {
  case TIMELINE_WORKFLOW_STARTED: {
    const char *name = str_at(json_object_get(report, "workflow"), "name");
    ev->text = event_text("workflow %s started", name ? name : "(unnamed)");
    break;
  }
  case TIMELINE_NODE_STARTED:
    if (it->node == b->eh_node) {
      ev->kind = TIMELINE_EXIT_HANDLER_STARTED;
      ev->text = eh_started_text(b, node);
    } else {
      ev->text = event_text("%s started", label);
    }
    break;
  case TIMELINE_NODE_FINISHED:
    ev->phase = phase;
    if (phase_is(phase, skipped_phases)) {
      ev->kind = TIMELINE_NODE_SKIPPED;
      const char *msg = nonempty(node->message);
      ev->text = event_text("%s %s%s%s", label, phase, msg ? ": " : "", msg ? msg : "");
    } else {
      ev->text = finished_text(node, it->node == b->eh_node ? "exit handler" : label,
                               phase ? phase : "ended");
    }
    break;
  case TIMELINE_FAULT_FIRED:
    ev->text = fault_text(b, it);
    break;
  case TIMELINE_WORKFLOW_FINISHED:
    ev->phase = nonempty(str_at(json_object_get(report, "status"), "phase"));
    ev->text = workflow_finished_text(report);
    break;
  case TIMELINE_EXIT_HANDLER_MISSING:
    ev->text = missing_text(report);
    break;
  case TIMELINE_NODE_SKIPPED:
  case TIMELINE_EXIT_HANDLER_STARTED:
    ev->text = event_text("%s", label ? label : "");
    break;
  }
}

static void set_offset(const struct builder *b, const struct item *it, struct timeline_event *ev) {
  if (it->kind == TIMELINE_FAULT_FIRED) {
    bool known;
    double after = fault_offset(json_array_get(b->faults, it->fault), &known);
    if (known && isfinite(after)) {
      ev->has_time = ev->precise = true;
      ev->offset_seconds = after;
      return;
    }
  }
  if (it->has_time && b->has_wf_start) {
    int64_t start_second = b->wf_start_us / 1000000;
    ev->has_time = true;
    ev->offset_seconds = (double)(it->second - start_second);
  }
}

/* ---- public ------------------------------------------------------------- */

static void find_exit_handler_node(struct builder *b) {
  const json_t *eh = json_object_get(b->report, "exitHandler");
  b->eh_node = position_of(b, str_at(eh, "node"));
  if (b->eh_node != NONE || !json_is_true(json_object_get(eh, "ran")))
    return;
  /* An older report without exitHandler.node: Argo names the node <wf>.onExit. */
  const char *wf = str_at(json_object_get(b->report, "workflow"), "name");
  char *name = event_text("%s.onExit", wf ? wf : "");
  for (size_t i = 0; i < b->n_nodes && b->eh_node == NONE; i++) {
    const char *n = b->nodes[i].name;
    if (n != NULL && strcmp(n, name) == 0)
      b->eh_node = i;
  }
  free(name);
}

/* The events of b (its report and nodes set), in order, into out. */
static void build(struct builder *b, struct timeline *out) {
  memset(out, 0, sizeof(*out));
  b->faults = json_object_get(b->report, "faults");
  b->wf_start_us = parse_rfc3339_us(str_at(json_object_get(b->report, "status"), "startedAt"));
  b->has_wf_start = b->wf_start_us != 0;
  b->ids = xcalloc(b->n_nodes, sizeof(char *));
  b->index = xcalloc(b->n_nodes, sizeof(*b->index));
  b->start_ev = xcalloc(b->n_nodes, sizeof(size_t));
  b->finish_ev = xcalloc(b->n_nodes, sizeof(size_t));
  for (size_t i = 0; i < b->n_nodes; i++) {
    b->ids[i] = b->nodes[i].id;
    b->index[i] = (struct tl_index){.id = b->nodes[i].id, .pos = i};
  }
  qsort(b->index, b->n_nodes, sizeof(*b->index), cmp_index);
  find_exit_handler_node(b);

  size_t wf_start, wf_finish, missing;
  create_items(b, &wf_start, &wf_finish, &missing);
  create_edges(b, wf_start, wf_finish, missing);
  size_t *order = order_items(b);

  out->events = xcalloc(b->n_items, sizeof(*out->events));
  for (size_t k = 0; k < b->n_items; k++) {
    const struct item *it = &b->items[order[k]];
    if (!shown(b, it))
      continue;
    struct timeline_event *ev = &out->events[out->n++];
    describe(b, it, ev);
    set_offset(b, it, ev);
  }
  free(order);
  free(b->items);
  free(b->edges);
  free(b->ids);
  free(b->index);
  free(b->start_ev);
  free(b->finish_ev);
}

void timeline_build(const json_t *report, struct timeline *out) {
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  size_t n = json_object_size(nodes), n_children = 0;
  const char *key;
  json_t *o;
  json_object_foreach((json_t *)nodes, key, o)
    n_children += json_array_size(json_object_get(o, "children"));
  struct tl_node *tn = xcalloc(n, sizeof(*tn));
  const char **children = xcalloc(n_children, sizeof(char *));
  size_t i = 0, c = 0;
  json_object_foreach((json_t *)nodes, key, o) {
    struct tl_node *t = &tn[i++];
    t->id = key;
    t->name = str_at(o, "name");
    t->display_name = str_at(o, "displayName");
    t->type = str_at(o, "type");
    t->template_name = str_at(o, "templateName");
    t->phase = str_at(o, "phase");
    t->boundary_id = str_at(o, "boundaryID");
    t->message = str_at(o, "message");
    t->signal = str_at(o, "signal");
    t->exit_code = str_at(json_object_get(o, "outputs"), "exitCode");
    t->started_us = parse_rfc3339_us(str_at(o, "startedAt"));
    t->finished_us = parse_rfc3339_us(str_at(o, "finishedAt"));
    t->has_finished = str_at(o, "finishedAt") != NULL;
    t->oom_killed = json_is_true(json_object_get(o, "oomKilled"));
    /* A child that is not a string stays NULL: position_of finds no node. */
    t->children = &children[c];
    size_t k;
    const json_t *child;
    json_array_foreach(json_object_get(o, "children"), k, child) children[c++] = json_string_value(child);
    t->n_children = (size_t)(&children[c] - t->children);
  }
  struct builder b = {.report = report, .nodes = tn, .n_nodes = n};
  build(&b, out);
  free(children);
  free(tn);
}

/* A time as the report writes it (RFC 3339, whole seconds, rounded down). */
static int64_t whole_second_us(int64_t us) {
  int64_t secs = us / 1000000;
  if (us % 1000000 < 0)
    secs--;
  return secs * 1000000;
}

void timeline_build_run(const json_t *head, const struct run_state *st, struct timeline *out) {
  struct tl_node *tn = xcalloc(st->n_nodes, sizeof(*tn));
  for (size_t i = 0; i < st->n_nodes; i++) {
    const struct wf_node *n = st->nodes[i];
    struct tl_node *t = &tn[i];
    t->id = n->id;
    t->name = n->name;
    t->display_name = n->display_name != NULL ? n->display_name : n->name;
    t->type = node_type_name(n->type);
    t->template_name = n->template_name;
    t->phase = node_phase_name(n->phase);
    t->boundary_id = n->boundary_id;
    t->message = n->message;
    if (n->signal != 0) {
      report_signal_name(n->signal, t->buf_signal, sizeof(t->buf_signal));
      t->signal = t->buf_signal;
    }
    if (n->has_exit_code) {
      snprintf(t->buf_exit_code, sizeof(t->buf_exit_code), "%d", n->exit_code);
      t->exit_code = t->buf_exit_code;
    }
    /* As the report writes them: whole seconds, absent when 0. */
    t->started_us = whole_second_us(n->started_at_us);
    t->finished_us = whole_second_us(n->finished_at_us);
    t->has_finished = n->finished_at_us != 0;
    t->oom_killed = n->oom_killed;
    t->children = (const char *const *)n->children;
    t->n_children = n->n_children;
  }
  struct builder b = {.report = head, .nodes = tn, .n_nodes = st->n_nodes};
  build(&b, out);
  free(tn);
}

void timeline_free(struct timeline *tl) {
  for (size_t i = 0; i < tl->n; i++)
    free(tl->events[i].text);
  free(tl->events);
  tl->events = NULL;
  tl->n = 0;
}

const char *timeline_kind_name(enum timeline_kind kind) {
  switch (kind) {
  case TIMELINE_WORKFLOW_STARTED:
    return "workflow-started";
  case TIMELINE_NODE_STARTED:
    return "node-started";
  case TIMELINE_NODE_FINISHED:
    return "node-finished";
  case TIMELINE_NODE_SKIPPED:
    return "node-skipped";
  case TIMELINE_FAULT_FIRED:
    return "fault-fired";
  case TIMELINE_EXIT_HANDLER_STARTED:
    return "exit-handler-started";
  case TIMELINE_EXIT_HANDLER_MISSING:
    return "exit-handler-missing";
  case TIMELINE_WORKFLOW_FINISHED:
    return "workflow-finished";
  }
  return "event";
}

void timeline_format_offset(const struct timeline_event *ev, char *buf, size_t size) {
  if (!ev->has_time) {
    snprintf(buf, size, "?");
    return;
  }
  double t = ev->offset_seconds;
  const char *sign = t < 0 ? "-" : "+";
  t = fabs(t);
  if (ev->precise && t < 60) {
    snprintf(buf, size, "%s%.3fs", sign, t);
    return;
  }
  int64_t secs = (int64_t)llround(t);
  if (secs < 60)
    snprintf(buf, size, "%s%" PRId64 "s", sign, secs);
  else if (secs < 3600)
    snprintf(buf, size, "%s%" PRId64 "m%02" PRId64 "s", sign, secs / 60, secs % 60);
  else
    snprintf(buf, size, "%s%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", sign, secs / 3600,
             (secs / 60) % 60, secs % 60);
}

static const char *event_color(const struct timeline_event *ev) {
  switch (ev->kind) {
  case TIMELINE_FAULT_FIRED:
    return ANSI_YELLOW;
  case TIMELINE_EXIT_HANDLER_STARTED:
    return ANSI_BOLD;
  case TIMELINE_EXIT_HANDLER_MISSING:
    return ANSI_BOLD ANSI_RED;
  case TIMELINE_NODE_SKIPPED:
    return ANSI_GREY;
  case TIMELINE_NODE_FINISHED:
  case TIMELINE_WORKFLOW_FINISHED:
    if (ev->phase != NULL && strcmp(ev->phase, "Succeeded") == 0)
      return ANSI_GREEN;
    if (ev->phase != NULL && (strcmp(ev->phase, "Failed") == 0 || strcmp(ev->phase, "Error") == 0))
      return ANSI_RED;
    return "";
  case TIMELINE_WORKFLOW_STARTED:
  case TIMELINE_NODE_STARTED:
    return "";
  }
  return "";
}

void timeline_print_text(const struct timeline *tl, bool color, FILE *out) {
  fputs("Timeline (steps in whole seconds, as Argo records them; faults to the millisecond):\n", out);
  if (tl->n == 0) {
    fputs("  (no events)\n", out);
    return;
  }
  int width = 0;
  char buf[64];
  for (size_t i = 0; i < tl->n; i++) {
    timeline_format_offset(&tl->events[i], buf, sizeof(buf));
    if ((int)strlen(buf) > width)
      width = (int)strlen(buf);
  }
  for (size_t i = 0; i < tl->n; i++) {
    const struct timeline_event *ev = &tl->events[i];
    timeline_format_offset(ev, buf, sizeof(buf));
    const char *c = color ? event_color(ev) : "";
    fprintf(out, "  %-*s  %s%s%s\n", width, buf, c, ev->text, c[0] != '\0' ? ANSI_RESET : "");
  }
}
