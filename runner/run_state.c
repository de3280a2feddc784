#include "run_state.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Two open-addressing tables (linear probing) over the same nodes, one keyed
 * by name and one by id.  The controller looks nodes up by name on every
 * step of every reconcile, so this must stay O(1) with tens of thousands of
 * loop expansions; a linear scan would make a 10,000-item withItems
 * quadratic. */
struct index_slot {
  uint64_t hash;
  struct wf_node *node; /* NULL = empty; nodes are never removed */
};

struct node_index {
  struct index_slot *by_name;
  struct index_slot *by_id;
  size_t cap; /* power of two, shared by both tables */
  size_t count;
};

#define INDEX_INITIAL_CAP 64



static char *xstrdup_or_null(const char *s) {
  if (s == NULL)
    return NULL;
  char *d = strdup(s);
  if (d == NULL)
    abort();
  return d;
}

uint32_t fnv1a32(const char *s) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return h;
}

/* The table hash is wider than Argo's so that ids, which are themselves
 * 32-bit FNV values, do not collide systematically with their own names. */
static uint64_t index_hash(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h;
}

static struct node_index *index_new(void) {
  struct node_index *ix = xcalloc(1, sizeof(*ix));
  ix->cap = INDEX_INITIAL_CAP;
  ix->by_name = xcalloc(ix->cap, sizeof(*ix->by_name));
  ix->by_id = xcalloc(ix->cap, sizeof(*ix->by_id));
  return ix;
}

static void index_free(struct node_index *ix) {
  if (ix == NULL)
    return;
  free(ix->by_name);
  free(ix->by_id);
  free(ix);
}

static void table_put(struct index_slot *table, size_t cap, uint64_t hash, struct wf_node *node) {
  size_t mask = cap - 1;
  size_t i = (size_t)hash & mask;
  while (table[i].node != NULL)
    i = (i + 1) & mask;
  table[i].hash = hash;
  table[i].node = node;
}

static void index_grow(struct node_index *ix) {
  size_t new_cap = ix->cap * 2;
  struct index_slot *names = xcalloc(new_cap, sizeof(*names));
  struct index_slot *ids = xcalloc(new_cap, sizeof(*ids));
  for (size_t i = 0; i < ix->cap; i++) {
    if (ix->by_name[i].node != NULL)
      table_put(names, new_cap, ix->by_name[i].hash, ix->by_name[i].node);
    if (ix->by_id[i].node != NULL)
      table_put(ids, new_cap, ix->by_id[i].hash, ix->by_id[i].node);
  }
  free(ix->by_name);
  free(ix->by_id);
  ix->by_name = names;
  ix->by_id = ids;
  ix->cap = new_cap;
}

static void index_insert(struct node_index *ix, struct wf_node *node) {
  /* Load factor at most 1/2 keeps probe sequences short. */
  if ((ix->count + 1) * 2 > ix->cap)
    index_grow(ix);
  table_put(ix->by_name, ix->cap, index_hash(node->name), node);
  table_put(ix->by_id, ix->cap, index_hash(node->id), node);
  ix->count++;
}

static struct wf_node *table_get(const struct index_slot *table, size_t cap, const char *key,
                                 bool by_id) {
  uint64_t hash = index_hash(key);
  size_t mask = cap - 1;
  for (size_t i = (size_t)hash & mask; table[i].node != NULL; i = (i + 1) & mask) {
    if (table[i].hash != hash)
      continue;
    const char *k = by_id ? table[i].node->id : table[i].node->name;
    if (strcmp(k, key) == 0)
      return table[i].node;
  }
  return NULL;
}

/* Children of one node: a StepGroup of a 10,000-item loop has 10,000, and
 * every reconcile re-adds them, so deduplication needs more than a scan once
 * the list is long.  Slots hold positions in parent->children, plus one. */
struct child_set {
  size_t *slots;
  size_t cap; /* power of two */
  size_t count;
};

#define CHILD_SET_THRESHOLD 16

static void child_set_free(struct child_set *cs) {
  if (cs == NULL)
    return;
  free(cs->slots);
  free(cs);
}

static void child_set_put(struct child_set *cs, char *const *children, size_t pos) {
  size_t mask = cs->cap - 1;
  size_t i = (size_t)index_hash(children[pos]) & mask;
  while (cs->slots[i] != 0)
    i = (i + 1) & mask;
  cs->slots[i] = pos + 1;
  cs->count++;
}

static void child_set_rebuild(struct wf_node *parent, size_t min_count) {
  struct child_set *cs = parent->child_set;
  if (cs == NULL)
    cs = parent->child_set = xcalloc(1, sizeof(*cs));
  size_t cap = 64;
  while (cap < min_count * 2)
    cap *= 2;
  free(cs->slots);
  cs->slots = xcalloc(cap, sizeof(size_t));
  cs->cap = cap;
  cs->count = 0;
  for (size_t i = 0; i < parent->n_children; i++)
    child_set_put(cs, parent->children, i);
}

static bool child_set_contains(const struct wf_node *parent, const char *id) {
  const struct child_set *cs = parent->child_set;
  size_t mask = cs->cap - 1;
  for (size_t i = (size_t)index_hash(id) & mask; cs->slots[i] != 0; i = (i + 1) & mask)
    if (strcmp(parent->children[cs->slots[i] - 1], id) == 0)
      return true;
  return false;
}

static bool has_child(struct wf_node *parent, const char *id) {
  size_t n = parent->n_children;
  /* Re-adding happens on every reconcile of the same step, so the most
   * recent child is checked first; it is almost always the one. */
  if (n > 0 && strcmp(parent->children[n - 1], id) == 0)
    return true;
  if (n < CHILD_SET_THRESHOLD) {
    for (size_t i = 0; i + 1 < n; i++)
      if (strcmp(parent->children[i], id) == 0)
        return true;
    return false;
  }
  /* The set is rebuilt if the list was changed behind our back. */
  if (parent->child_set == NULL || parent->child_set->count != n)
    child_set_rebuild(parent, n + 1);
  return child_set_contains(parent, id);
}

const char *node_phase_name(enum node_phase phase) {
  switch (phase) {
  case PHASE_PENDING:
    return "Pending";
  case PHASE_RUNNING:
    return "Running";
  case PHASE_SUCCEEDED:
    return "Succeeded";
  case PHASE_FAILED:
    return "Failed";
  case PHASE_ERROR:
    return "Error";
  case PHASE_SKIPPED:
    return "Skipped";
  case PHASE_OMITTED:
    return "Omitted";
  }
  return "Unknown";
}

const char *node_type_name(enum node_type type) {
  switch (type) {
  case NODE_POD:
    return "Pod";
  case NODE_STEPS:
    return "Steps";
  case NODE_STEP_GROUP:
    return "StepGroup";
  case NODE_DAG:
    return "DAG";
  case NODE_TASK_GROUP:
    return "TaskGroup";
  case NODE_RETRY:
    return "Retry";
  case NODE_SKIPPED:
    return "Skipped";
  case NODE_SUSPEND:
    return "Suspend";
  case NODE_HTTP:
    return "HTTP";
  case NODE_PLUGIN:
    return "Plugin";
  }
  return "Unknown";
}

bool node_phase_completed(enum node_phase phase) {
  return phase == PHASE_SUCCEEDED || phase == PHASE_FAILED || phase == PHASE_ERROR;
}

bool node_phase_fulfilled(enum node_phase phase) {
  return node_phase_completed(phase) || phase == PHASE_SKIPPED || phase == PHASE_OMITTED;
}

struct run_state *run_state_new(void) {
  struct run_state *st = xcalloc(1, sizeof(*st));
  st->phase = PHASE_PENDING;
  st->index = index_new();
  return st;
}

static void free_strv(char **v, size_t n) {
  if (v == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void node_free(struct wf_node *n) {
  if (n == NULL)
    return;
  free(n->id);
  free(n->name);
  free(n->display_name);
  free(n->template_name);
  free(n->boundary_id);
  free(n->pod_name);
  free(n->message);
  free_strv(n->children, n->n_children);
  child_set_free(n->child_set);
  free(n->result);
  for (size_t i = 0; i < n->n_output_parameters; i++) {
    free(n->output_parameters[i].name);
    free(n->output_parameters[i].value);
  }
  free(n->output_parameters);
  free(n->log);
  free(n);
}

void run_state_clear_idempotency(struct idempotency_record *r) {
  for (size_t i = 0; i < r->n_changes; i++) {
    free(r->changes[i].path);
    free(r->changes[i].change);
    free(r->changes[i].before);
    free(r->changes[i].after);
  }
  free(r->changes);
  free(r->reason);
  free(r->probe);
  free(r->probe_before);
  free(r->probe_after);
  memset(r, 0, sizeof(*r));
}

void run_state_free(struct run_state *st) {
  if (st == NULL)
    return;
  for (size_t i = 0; i < st->n_nodes; i++)
    node_free(st->nodes[i]);
  free(st->nodes);
  index_free(st->index);
  free(st->workflow_name);
  free(st->workflow_file);
  free(st->workflow_namespace);
  free(st->workflow_uid);
  free(st->message);
  free(st->exit_handler.workflow_status);
  free(st->exit_handler.workflow_failures);
  free(st->exit_handler.node_id);
  free(st->shutdown);
  free(st->cgroup_mode);
  free_strv(st->namespaces, st->n_namespaces);
  free_strv(st->notes, st->n_notes);
  free_strv(st->warnings, st->n_warnings);
  free_strv(st->watchdog_actions, st->n_watchdog_actions);
  free(st->watchdog_delivery);
  for (size_t i = 0; i < st->n_faults; i++) {
    struct fault_record *f = &st->faults[i];
    free(f->action);
    free(f->description);
    free(f->target);
    free(f->node_id);
    free(f->detail);
  }
  free(st->faults);
  run_state_clear_idempotency(&st->idempotency);
  free(st);
}

char *run_state_node_id(const char *workflow_name, const char *node_name) {
  const char *wf = workflow_name != NULL ? workflow_name : "";
  char *id = NULL;
  if (strcmp(wf, node_name) == 0)
    id = strdup(wf);
  else if (asprintf(&id, "%s-%" PRIu32, wf, fnv1a32(node_name)) < 0)
    id = NULL;
  if (id == NULL)
    abort();
  return id;
}

/* Argo's pod-name v2 rule; the prefix limit keeps room for the hash inside
 * the 253-character Kubernetes resource-name limit, as Argo's
 * ensurePodNamePrefixLength does. */
#define POD_NAME_MAX_PREFIX (253 - 10 - 1)

char *run_state_pod_name(const char *workflow_name, const char *node_name,
                         const char *template_name) {
  const char *wf = workflow_name != NULL ? workflow_name : "";
  char *name = NULL;
  if (strcmp(wf, node_name) == 0) {
    name = strdup(wf);
    if (name == NULL)
      abort();
    return name;
  }
  char *prefix = NULL;
  /* An inline template's internal name (it holds a ':', see workflow.h)
   * is no name in Kubernetes terms: such a pod is named like one without. */
  int r = (template_name != NULL && template_name[0] != '\0' && strchr(template_name, ':') == NULL)
              ? asprintf(&prefix, "%s-%s", wf, template_name)
              : asprintf(&prefix, "%s", wf);
  if (r < 0)
    abort();
  if (strlen(prefix) > POD_NAME_MAX_PREFIX)
    prefix[POD_NAME_MAX_PREFIX] = '\0';
  if (asprintf(&name, "%s-%" PRIu32, prefix, fnv1a32(node_name)) < 0)
    abort();
  free(prefix);
  return name;
}

struct wf_node *run_state_add_node(struct run_state *st, const char *name,
                                   const char *display_name, enum node_type type,
                                   const char *template_name, const char *boundary_id) {
  struct wf_node *existing = run_state_find_name(st, name);
  if (existing != NULL)
    return existing;

  struct wf_node *n = xcalloc(1, sizeof(*n));
  n->owner = st;
  n->name = xstrdup_or_null(name);
  n->id = run_state_node_id(st->workflow_name, name);
  n->display_name = xstrdup_or_null(display_name != NULL ? display_name : name);
  n->type = type;
  n->template_name = xstrdup_or_null(template_name);
  n->boundary_id = xstrdup_or_null(boundary_id);
  if (type == NODE_POD)
    n->pod_name = run_state_pod_name(st->workflow_name, name, template_name);
  n->phase = PHASE_PENDING;
  n->started_at_us = now_realtime_us();

  if (st->n_nodes == st->cap_nodes) {
    st->cap_nodes = st->cap_nodes != 0 ? st->cap_nodes * 2 : 16;
    st->nodes = xreallocarray(st->nodes, st->cap_nodes, sizeof(*st->nodes));
  }
  st->nodes[st->n_nodes++] = n;
  index_insert(st->index, n);
  return n;
}

struct wf_node *run_state_find_name(const struct run_state *st, const char *name) {
  if (st == NULL || st->index == NULL || name == NULL)
    return NULL;
  return table_get(st->index->by_name, st->index->cap, name, false);
}

struct wf_node *run_state_find_id(const struct run_state *st, const char *id) {
  if (st == NULL || st->index == NULL || id == NULL)
    return NULL;
  return table_get(st->index->by_id, st->index->cap, id, true);
}

void run_state_add_child(struct wf_node *parent, const char *child_id) {
  if (has_child(parent, child_id))
    return;
  /* Capacity is implied by the count (the next power of two), so growth is
   * geometric without a capacity field in the public struct. */
  size_t n = parent->n_children;
  if (n == 0 || (n >= 4 && (n & (n - 1)) == 0))
    parent->children = xreallocarray(parent->children, n == 0 ? 4 : n * 2, sizeof(char *));
  parent->children[parent->n_children++] = xstrdup_or_null(child_id);
  struct child_set *cs = parent->child_set;
  if (cs == NULL)
    return;
  if ((cs->count + 1) * 2 > cs->cap)
    child_set_rebuild(parent, parent->n_children);
  else
    child_set_put(cs, parent->children, parent->n_children - 1);
}

void node_set_message(struct wf_node *node, const char *message) {
  char *copy = (message != NULL && message[0] != '\0') ? xstrdup_or_null(message) : NULL;
  free(node->message);
  node->message = copy;
}

void node_finish(struct wf_node *node, enum node_phase phase, const char *message) {
  if (node->owner != NULL && node->phase != phase)
    node->owner->n_finishes++;
  node->phase = phase;
  node_set_message(node, message);
  node->finished_at_us = now_realtime_us();
}

static size_t log_capacity(size_t used) {
  size_t cap = 4096;
  while (cap < used)
    cap *= 2;
  return cap;
}

void node_append_log(struct wf_node *node, const char *data, size_t len) {
  if (len == 0)
    return;
  size_t room = node->log_len < NODE_LOG_MAX ? NODE_LOG_MAX - node->log_len : 0;
  size_t take = len < room ? len : room;
  if (take < len)
    node->log_truncated = true;
  if (take == 0)
    return;
  /* Output arrives in pipe-sized chunks: grow geometrically, with the
   * capacity implied by the length (the next power of two, at least 4 KiB). */
  size_t need = node->log_len + take + 1;
  size_t have = node->log != NULL ? log_capacity(node->log_len + 1) : 0;
  if (need > have)
    node->log = xreallocarray(node->log, log_capacity(need), 1);
  memcpy(node->log + node->log_len, data, take);
  node->log_len += take;
  node->log[node->log_len] = '\0';
}

static void strv_append_va(char ***v, size_t *n, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void strv_append_va(char ***v, size_t *n, const char *fmt, va_list ap) {
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  *v = xreallocarray(*v, *n + 1, sizeof(char *));
  (*v)[(*n)++] = s;
}

void run_state_add_note(struct run_state *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  strv_append_va(&st->notes, &st->n_notes, fmt, ap);
  va_end(ap);
}

void run_state_add_warning(struct run_state *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  strv_append_va(&st->warnings, &st->n_warnings, fmt, ap);
  va_end(ap);
}

int64_t now_realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void format_rfc3339(int64_t us, char buf[32]) {
  /* Floor division so that times before the epoch still round down. */
  int64_t secs = us / 1000000;
  if (us % 1000000 < 0)
    secs--;
  time_t t = (time_t)secs;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, 32, "1970-01-01T00:00:00Z");
}

void run_state_add_watchdog_action(struct run_state *st, const char *text) {
  st->watchdog_actions =
      realloc(st->watchdog_actions, (st->n_watchdog_actions + 1) * sizeof(char *));
  if (st->watchdog_actions == NULL || (st->watchdog_actions[st->n_watchdog_actions] = strdup(text)) == NULL)
    abort();
  st->n_watchdog_actions++;
}
