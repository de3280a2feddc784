#include "state_load.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *str(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *dup_or_null(const char *s) {
  if (s == NULL)
    return NULL;
  char *d = strdup(s);
  if (d == NULL)
    abort();
  return d;
}

int64_t parse_rfc3339_us(const char *text) {
  if (text == NULL)
    return 0;
  struct tm tm = {0};
  const char *end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == NULL)
    return 0;
  return (int64_t)timegm(&tm) * 1000000;
}

static int phase_from(const char *name, enum node_phase *out) {
  static const char *const names[] = {"Pending", "Running", "Succeeded", "Failed",
                                      "Error",   "Skipped", "Omitted"};
  for (int i = 0; i < 7; i++)
    if (name != NULL && strcmp(name, names[i]) == 0) {
      *out = (enum node_phase)i;
      return 0;
    }
  return -1;
}

static int type_from(const char *name, enum node_type *out) {
  static const char *const names[] = {"Pod",   "Steps",   "StepGroup", "DAG",
                                      "TaskGroup", "Retry", "Skipped", "Suspend",
                                      "HTTP",      "Plugin"};
  for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
    if (name != NULL && strcmp(name, names[i]) == 0) {
      *out = (enum node_type)i;
      return 0;
    }
  return -1;
}

/* The report's names (report_signal_name): "SIGKILL", "SIGRTMIN+3", "70". */
static int signal_from(const char *name) {
  if (name == NULL)
    return 0;
  for (int k = 1; k < 65; k++)
    if (sigabbrev_np(k) != NULL && strncmp(name, "SIG", 3) == 0 &&
        strcmp(name + 3, sigabbrev_np(k)) == 0)
      return k;
  int v, used = 0;
  if (sscanf(name, "SIGRTMIN+%d%n", &v, &used) == 1 && name[used] == '\0' && v >= 0 &&
      v <= SIGRTMAX - SIGRTMIN)
    return SIGRTMIN + v;
  if (sscanf(name, "%d%n", &v, &used) == 1 && name[used] == '\0' && v > 0)
    return v;
  return 0;
}

static void load_outputs(struct wf_node *n, const json_t *outputs) {
  const char *code = str(outputs, "exitCode");
  if (code != NULL) {
    n->has_exit_code = true;
    n->exit_code = atoi(code);
  }
  n->result = dup_or_null(str(outputs, "result"));
  const json_t *params = json_object_get(outputs, "parameters");
  size_t count = json_array_size(params);
  if (count == 0)
    return;
  n->output_parameters = calloc(count, sizeof(*n->output_parameters));
  if (n->output_parameters == NULL)
    abort();
  for (size_t i = 0; i < count; i++) {
    const json_t *p = json_array_get(params, i);
    n->output_parameters[i].name = dup_or_null(str(p, "name"));
    n->output_parameters[i].value = dup_or_null(str(p, "value"));
  }
  n->n_output_parameters = count;
}

static int load_node(struct run_state *st, const json_t *o, ep_error **err) {
  enum node_type type;
  enum node_phase phase;
  const char *name = str(o, "name");
  if (name == NULL || type_from(str(o, "type"), &type) < 0 ||
      phase_from(str(o, "phase"), &phase) < 0)
    return ep_error_set(err, EP_EXIT_USAGE, "state: a node lacks a valid name, type or phase");
  struct wf_node *n = run_state_add_node(st, name, str(o, "displayName"), type,
                                         str(o, "templateName"), str(o, "boundaryID"));
  n->phase = phase;
  if (str(o, "message") != NULL)
    node_set_message(n, str(o, "message"));
  n->started_at_us = parse_rfc3339_us(str(o, "startedAt"));
  n->finished_at_us = parse_rfc3339_us(str(o, "finishedAt"));
  const json_t *flag = json_object_get(o, "nodeFlag");
  n->hooked = json_is_true(json_object_get(flag, "hooked"));
  n->retried = json_is_true(json_object_get(flag, "retried"));
  load_outputs(n, json_object_get(o, "outputs"));
  const json_t *log = json_object_get(o, "log");
  if (json_is_string(log))
    node_append_log(n, json_string_value(log), json_string_length(log));
  n->log_truncated = json_is_true(json_object_get(o, "logTruncated"));
  n->signal = signal_from(str(o, "signal"));
  n->oom_killed = json_is_true(json_object_get(o, "oomKilled"));
  n->mocked = json_is_true(json_object_get(o, "mocked"));
  n->pids_limited = json_is_true(json_object_get(o, "pidsLimited"));
  n->memory_peak = (uint64_t)json_integer_value(json_object_get(o, "memoryPeakBytes"));
  return 0;
}

static void load_strings(const json_t *array, char ***out, size_t *n) {
  size_t count = json_array_size(array);
  if (count == 0)
    return;
  *out = calloc(count, sizeof(char *));
  if (*out == NULL)
    abort();
  for (size_t i = 0; i < count; i++)
    if (json_is_string(json_array_get(array, i)))
      (*out)[(*n)++] = dup_or_null(json_string_value(json_array_get(array, i)));
}

/* Environment, warnings, run details and fault records. */
static void load_rest(struct run_state *st, const json_t *report) {
  const json_t *env = json_object_get(report, "environment");
  st->cgroup_mode = dup_or_null(str(env, "cgroup"));
  load_strings(json_object_get(env, "namespaces"), &st->namespaces, &st->n_namespaces);
  st->seccomp = json_is_true(json_object_get(env, "seccomp"));
  load_strings(json_object_get(env, "notes"), &st->notes, &st->n_notes);
  load_strings(json_object_get(report, "warnings"), &st->warnings, &st->n_warnings);
  const json_t *run = json_object_get(report, "run");
  st->shutdown = dup_or_null(str(run, "shutdown"));
  st->interrupted = json_is_true(json_object_get(run, "interrupted"));
  const char *isig = str(run, "signal");
  st->interrupt_signal = isig == NULL ? 0 : strcmp(isig, "SIGTERM") == 0 ? SIGTERM : SIGINT;
  const json_t *actions = json_object_get(json_object_get(report, "watchdog"), "actions");
  for (size_t i = 0; i < json_array_size(actions); i++)
    if (json_is_string(json_array_get(actions, i)))
      run_state_add_watchdog_action(st, json_string_value(json_array_get(actions, i)));
  const char *delivery = str(json_object_get(report, "watchdog"), "delivery");
  if (delivery != NULL)
    st->watchdog_delivery = strdup(delivery);
  if (json_is_integer(json_object_get(run, "seed"))) {
    st->has_seed = true;
    st->seed = (uint64_t)json_integer_value(json_object_get(run, "seed"));
  }
  if (json_is_number(json_object_get(run, "timeScale")))
    st->time_scale = json_number_value(json_object_get(run, "timeScale"));
  const json_t *faults = json_object_get(report, "faults");
  size_t n = json_array_size(faults);
  if (n == 0)
    return;
  st->faults = calloc(n, sizeof(*st->faults));
  if (st->faults == NULL)
    abort();
  for (size_t i = 0; i < n; i++) {
    const json_t *f = json_array_get(faults, i);
    struct fault_record *r = &st->faults[i];
    r->action = dup_or_null(str(f, "action"));
    r->description = dup_or_null(str(f, "asked"));
    r->target = dup_or_null(str(f, "target"));
    r->fired = json_is_true(json_object_get(f, "fired"));
    r->fired_at_us = parse_rfc3339_us(str(f, "firedAt"));
    r->node_id = dup_or_null(str(f, "node"));
    r->detail = dup_or_null(str(f, "detail"));
  }
  st->n_faults = n;
}

int run_state_add_report_node(struct run_state *st, const char *id, const json_t *node,
                              ep_error **err) {
  if (load_node(st, node, err) < 0)
    return -1;
  struct wf_node *n = run_state_find_id(st, id);
  const json_t *children = json_object_get(node, "children");
  for (size_t i = 0; n != NULL && i < json_array_size(children); i++)
    run_state_add_child(n, json_string_value(json_array_get(children, i)));
  return 0;
}

int run_state_from_report(const json_t *report, struct run_state **out, ep_error **err) {
  const json_t *wf = json_object_get(report, "workflow");
  const json_t *status = json_object_get(report, "status");
  const json_t *nodes = json_object_get(status, "nodes");
  if (!json_is_object(wf) || !json_is_object(status) || !json_is_object(nodes))
    return ep_error_set(err, EP_EXIT_USAGE, "state: not an exitprobe report");
  struct run_state *st = run_state_new();
  st->workflow_name = dup_or_null(str(wf, "name"));
  st->workflow_namespace = dup_or_null(str(wf, "namespace"));
  st->workflow_uid = dup_or_null(str(wf, "uid"));
  st->workflow_file = dup_or_null(str(wf, "file"));
  if (phase_from(str(status, "phase"), &st->phase) < 0)
    st->phase = PHASE_RUNNING;
  st->message = dup_or_null(str(status, "message"));
  st->started_at_us = parse_rfc3339_us(str(status, "startedAt"));
  st->finished_at_us = parse_rfc3339_us(str(status, "finishedAt"));
  const char *id;
  json_t *node;
  json_object_foreach((json_t *)nodes, id, node) {
    if (load_node(st, node, err) < 0) {
      run_state_free(st);
      return -1;
    }
  }
  /* Children after every node exists, in the order they were recorded. */
  json_object_foreach((json_t *)nodes, id, node) {
    struct wf_node *n = run_state_find_id(st, id);
    const json_t *children = json_object_get(node, "children");
    for (size_t i = 0; n != NULL && i < json_array_size(children); i++)
      run_state_add_child(n, json_string_value(json_array_get(children, i)));
  }
  const json_t *eh = json_object_get(report, "exitHandler");
  st->exit_handler.declared = json_is_true(json_object_get(eh, "declared"));
  st->exit_handler.ran = json_is_true(json_object_get(eh, "ran"));
  st->exit_handler.runs = (int)json_integer_value(json_object_get(eh, "runs"));
  phase_from(str(eh, "phase"), &st->exit_handler.phase);
  st->exit_handler.workflow_status = dup_or_null(str(eh, "workflowStatus"));
  st->exit_handler.workflow_failures = dup_or_null(str(eh, "workflowFailures"));
  st->exit_handler.node_id = dup_or_null(str(eh, "node"));
  const char *by = str(eh, "by");
  st->exit_handler.by = by && strcmp(by, "controller") == 0 ? BY_CONTROLLER
                        : by && strcmp(by, "watchdog") == 0 ? BY_WATCHDOG
                                                            : BY_NONE;
  load_rest(st, report);
  *out = st;
  return 0;
}

int run_state_load_file(const char *path, struct run_state **out, ep_error **err) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (root == NULL)
    return ep_error_at(err, EP_EXIT_USAGE, path, jerr.line, jerr.column, "%s", jerr.text);
  int rc = run_state_from_report(root, out, err);
  json_decref(root);
  return rc;
}
