#include "report_json.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "atomic_file.h"

#define IMAGE_NOTE "not pulled: steps run on the host root filesystem"

json_t *report_json_must(json_t *v) {
  if (v == NULL)
    abort();
  return v;
}

static json_t *must(json_t *v) { return report_json_must(v); }

void report_json_set(json_t *obj, const char *key, json_t *value) {
  if (json_object_set_new(obj, key, must(value)) < 0)
    abort();
}

static void set(json_t *obj, const char *key, json_t *value) { report_json_set(obj, key, value); }

static void append(json_t *arr, json_t *value) {
  if (json_array_append_new(arr, must(value)) < 0)
    abort();
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid, as
 * in RFC 3629. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* Process output is arbitrary bytes (and a truncated log may end inside a
 * character) but JSON strings must be UTF-8: invalid bytes become U+FFFD
 * instead of losing the whole string. */
static json_t *jstrn(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  if (v != NULL)
    return v;
  if (n > (SIZE_MAX - 1) / 3)
    abort();
  char *buf = malloc(n * 3 + 1);
  if (buf == NULL)
    abort();
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq_len(u + i, n - i);
    if (l == 0) {
      memcpy(buf + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(buf + o, u + i, l);
      o += l;
      i += l;
    }
  }
  v = must(json_stringn_nocheck(buf, o));
  free(buf);
  return v;
}

static json_t *jstr(const char *s) { return jstrn(s, strlen(s)); }

json_t *report_json_text(const char *s, size_t n) { return jstrn(s, n); }

static void set_str(json_t *obj, const char *key, const char *value) {
  set(obj, key, jstr(value));
}

static void set_str_opt(json_t *obj, const char *key, const char *value) {
  if (value != NULL)
    set_str(obj, key, value);
}

static void set_time_opt(json_t *obj, const char *key, int64_t us) {
  if (us == 0)
    return;
  char buf[32];
  format_rfc3339(us, buf);
  set_str(obj, key, buf);
}

static json_t *strv_array(char *const *v, size_t n) {
  json_t *arr = must(json_array());
  for (size_t i = 0; i < n; i++)
    append(arr, jstr(v[i]));
  return arr;
}

/* "SIGKILL" rather than 9: what a reader greps for, and what run.signal uses. */
void report_signal_name(int sig, char *buf, size_t size) {
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev != NULL)
    snprintf(buf, size, "SIG%s", abbrev);
  else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
    snprintf(buf, size, "SIGRTMIN+%d", sig - SIGRTMIN);
  else
    snprintf(buf, size, "%d", sig);
}

static json_t *signal_json(int sig) {
  char buf[32];
  report_signal_name(sig, buf, sizeof(buf));
  return jstr(buf);
}

static json_t *node_outputs(const struct wf_node *n) {
  json_t *out = must(json_object());
  if (n->has_exit_code) {
    /* Argo stores the exit code as a string ("1"); checks compare strings. */
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", n->exit_code);
    set_str(out, "exitCode", buf);
  }
  set_str_opt(out, "result", n->result);
  if (n->n_output_parameters > 0) {
    json_t *params = must(json_array());
    for (size_t i = 0; i < n->n_output_parameters; i++) {
      json_t *p = must(json_object());
      set_str(p, "name", n->output_parameters[i].name != NULL ? n->output_parameters[i].name : "");
      set_str_opt(p, "value", n->output_parameters[i].value);
      append(params, p);
    }
    set(out, "parameters", params);
  }
  return out;
}

static json_t *node_json(const struct run_state *st, const struct wf_node *n) {
  json_t *o = must(json_object());
  set_str(o, "id", n->id);
  set_str(o, "name", n->name);
  set_str(o, "displayName", n->display_name != NULL ? n->display_name : n->name);
  set_str(o, "type", node_type_name(n->type));
  set_str_opt(o, "templateName", n->template_name);
  set_str(o, "phase", node_phase_name(n->phase));
  set_str_opt(o, "boundaryID", n->boundary_id);
  set_str_opt(o, "message", n->message);
  set_time_opt(o, "startedAt", n->started_at_us);
  set_time_opt(o, "finishedAt", n->finished_at_us);
  if (n->n_children > 0)
    set(o, "children", strv_array(n->children, n->n_children));
  if (n->type == NODE_POD) {
    if (n->pod_name != NULL) {
      set_str(o, "podName", n->pod_name);
    } else {
      char *pod = run_state_pod_name(st->workflow_name, n->name, n->template_name);
      set_str(o, "podName", pod);
      free(pod);
    }
  }
  /* As Argo writes it: {"hooked": true} on exit/hook nodes, {} on step groups. */
  if (n->hooked || n->retried || n->type == NODE_STEP_GROUP) {
    json_t *flag = must(json_object());
    if (n->hooked)
      set(flag, "hooked", json_true());
    if (n->retried)
      set(flag, "retried", json_true());
    set(o, "nodeFlag", flag);
  }
  json_t *outputs = node_outputs(n);
  if (json_object_size(outputs) > 0)
    set(o, "outputs", outputs);
  else
    json_decref(outputs);
  if (n->log != NULL && n->log_len > 0)
    set(o, "log", jstrn(n->log, n->log_len));
  if (n->log_truncated)
    set(o, "logTruncated", json_true());
  if (n->memory_peak > 0)
    set(o, "memoryPeakBytes", json_integer((json_int_t)n->memory_peak));
  if (n->oom_killed)
    set(o, "oomKilled", json_true());
  if (n->mocked)
    set(o, "mocked", json_true());
  if (n->pids_limited)
    set(o, "pidsLimited", json_true());
  if (n->signal != 0)
    set(o, "signal", signal_json(n->signal));
  return o;
}

/* Argo's workflow progress (workflow/progress/updater.go): over the
 * "executable" nodes (for us Pod and Suspend), a node counts as done only when
 * it Succeeded, was Skipped or Omitted; a Failed pod stays "0/1", so the seed
 * workflow ends at "1/2". */
static json_t *progress_json(const struct run_state *st) {
  size_t done = 0, total = 0;
  for (size_t i = 0; i < st->n_nodes; i++) {
    const struct wf_node *n = st->nodes[i];
    if (n->type != NODE_POD && n->type != NODE_SUSPEND)
      continue;
    total++;
    if (n->phase == PHASE_SUCCEEDED || n->phase == PHASE_SKIPPED || n->phase == PHASE_OMITTED)
      done++;
  }
  char buf[64];
  snprintf(buf, sizeof(buf), "%zu/%zu", done, total);
  return jstr(buf);
}

/* with_nodes false: status.nodes is left empty, for the writer to stream. */
static json_t *status_json(const struct run_state *st, bool with_nodes) {
  json_t *o = must(json_object());
  set_str(o, "phase", node_phase_name(st->phase));
  set_str_opt(o, "message", st->message);
  set_time_opt(o, "startedAt", st->started_at_us);
  set_time_opt(o, "finishedAt", st->finished_at_us);
  set(o, "progress", progress_json(st));
  json_t *nodes = must(json_object());
  for (size_t i = 0; with_nodes && i < st->n_nodes; i++)
    set(nodes, st->nodes[i]->id, node_json(st, st->nodes[i]));
  set(o, "nodes", nodes);
  return o;
}

static const char *by_name(enum exit_handler_by by) {
  switch (by) {
  case BY_CONTROLLER:
    return "controller";
  case BY_WATCHDOG:
    return "watchdog";
  case BY_NONE:
    break;
  }
  return "none";
}

static json_t *exit_handler_json(const struct exit_handler_record *eh) {
  json_t *o = must(json_object());
  set(o, "declared", json_boolean(eh->declared));
  set(o, "ran", json_boolean(eh->ran));
  set(o, "runs", json_integer(eh->runs));
  if (eh->ran)
    set_str(o, "phase", node_phase_name(eh->phase));
  set_str_opt(o, "workflowStatus", eh->workflow_status);
  set_str_opt(o, "workflowFailures", eh->workflow_failures);
  set_str(o, "by", by_name(eh->by));
  set_str_opt(o, "node", eh->node_id);
  return o;
}

static json_t *run_json(const struct run_state *st) {
  json_t *o = must(json_object());
  set(o, "interrupted", json_boolean(st->interrupted));
  if (st->interrupt_signal != 0)
    set(o, "signal", signal_json(st->interrupt_signal));
  set_str_opt(o, "shutdown", st->shutdown);
  if (st->has_seed)
    set(o, "seed", json_integer((json_int_t)st->seed));
  if (st->time_scale > 0 && st->time_scale != 1.0)
    set(o, "timeScale", json_real(st->time_scale));
  return o;
}

static json_t *environment_json(const struct run_state *st) {
  json_t *o = must(json_object());
  set(o, "cgroup", st->cgroup_mode != NULL ? jstr(st->cgroup_mode) : json_null());
  set(o, "namespaces", strv_array(st->namespaces, st->n_namespaces));
  set(o, "seccomp", json_boolean(st->seccomp));
  set_str(o, "image", IMAGE_NOTE);
  set(o, "notes", strv_array(st->notes, st->n_notes));
  return o;
}

/* Every fault asked for: whether it fired, when, and on which node. */
static json_t *faults_json(const struct run_state *st) {
  json_t *list = must(json_array());
  for (size_t i = 0; i < st->n_faults; i++) {
    const struct fault_record *f = &st->faults[i];
    json_t *o = must(json_object());
    set_str(o, "action", f->action);
    if (f->target != NULL)
      set_str(o, "target", f->target);
    set_str(o, "asked", f->description);
    set(o, "fired", json_boolean(f->fired));
    if (f->fired_at_us != 0) {
      char ts[32];
      format_rfc3339(f->fired_at_us, ts);
      set_str(o, "firedAt", ts);
      if (st->started_at_us != 0)
        set(o, "firedAfterSeconds",
            json_real((double)(f->fired_at_us - st->started_at_us) / 1e6));
    }
    if (f->node_id != NULL)
      set_str(o, "node", f->node_id);
    if (f->detail != NULL)
      set_str(o, "detail", f->detail);
    json_array_append_new(list, o);
  }
  return list;
}

static json_t *build(const struct run_state *st, bool with_nodes) {
  json_t *root = must(json_object());
  set_str(root, "apiVersion", REPORT_API_VERSION);
  set_str(root, "kind", "Report");

  json_t *wf = must(json_object());
  set(wf, "name", st->workflow_name != NULL ? jstr(st->workflow_name) : json_null());
  set(wf, "namespace", st->workflow_namespace != NULL ? jstr(st->workflow_namespace) : json_null());
  set(wf, "uid", st->workflow_uid != NULL ? jstr(st->workflow_uid) : json_null());
  set(wf, "file", st->workflow_file != NULL ? jstr(st->workflow_file) : json_null());
  set(root, "workflow", wf);

  set(root, "status", status_json(st, with_nodes));
  set(root, "exitHandler", exit_handler_json(&st->exit_handler));
  set(root, "run", run_json(st));
  set(root, "environment", environment_json(st));
  set(root, "warnings", strv_array(st->warnings, st->n_warnings));
  if (st->n_faults > 0)
    set(root, "faults", faults_json(st));
  if (st->idempotency.checked)
    set(root, "idempotency", report_idempotency_json(&st->idempotency));
  if (st->n_watchdog_actions > 0) {
    json_t *wd = must(json_object());
    set(wd, "actions", strv_array(st->watchdog_actions, st->n_watchdog_actions));
    if (st->watchdog_delivery != NULL)
      set(wd, "delivery", must(json_string(st->watchdog_delivery)));
    set(root, "watchdog", wd);
  }
  return root;
}

json_t *report_build(const struct run_state *st) { return build(st, true); }

json_t *report_build_head(const struct run_state *st) { return build(st, false); }

json_t *report_node_json(const struct run_state *st, const struct wf_node *n) {
  return node_json(st, n);
}

/* ---- writing ------------------------------------------------------------
 * The document is written as json_dumps(root, JSON_INDENT(2) |
 * JSON_PRESERVE_ORDER) would write it, but straight into the file, one value
 * at a time: at 20,000 nodes the serialised string alone was 9 MB, and for
 * report_write_json the node objects are made and freed one by one, so the
 * peak is the run state plus one node instead of a tree of them all. */

struct dump {
  FILE *f;
  const json_t *nodes_slot;    /* this (empty) object is written as st's nodes */
  const struct run_state *st;
};

static int dump_indent(FILE *f, int depth) {
  if (fputc('\n', f) == EOF)
    return -1;
  for (int i = 0; i < 2 * depth; i++)
    if (fputc(' ', f) == EOF)
      return -1;
  return 0;
}

static int dump_key(FILE *f, const char *key) {
  json_t *k = must(json_string(key));
  int r = json_dumpf(k, f, JSON_ENCODE_ANY);
  json_decref(k);
  return r == 0 && fputs(": ", f) != EOF ? 0 : -1;
}

static int dump_value(const struct dump *d, const json_t *v, int depth);

static int dump_nodes(const struct dump *d, int depth) {
  const struct run_state *st = d->st;
  if (st->n_nodes == 0)
    return fputs("{}", d->f) == EOF ? -1 : 0;
  if (fputc('{', d->f) == EOF)
    return -1;
  for (size_t i = 0; i < st->n_nodes; i++) {
    json_t *node = node_json(st, st->nodes[i]);
    int r = dump_indent(d->f, depth + 1) < 0 || dump_key(d->f, st->nodes[i]->id) < 0 ||
                    dump_value(d, node, depth + 1) < 0 ||
                    (i + 1 < st->n_nodes && fputc(',', d->f) == EOF)
                ? -1
                : 0;
    json_decref(node);
    if (r < 0)
      return -1;
  }
  return dump_indent(d->f, depth) < 0 || fputc('}', d->f) == EOF ? -1 : 0;
}

static int dump_value(const struct dump *d, const json_t *v, int depth) {
  if (v == d->nodes_slot)
    return dump_nodes(d, depth);
  if (json_is_object(v)) {
    if (json_object_size(v) == 0)
      return fputs("{}", d->f) == EOF ? -1 : 0;
    if (fputc('{', d->f) == EOF)
      return -1;
    size_t left = json_object_size(v);
    const char *key;
    json_t *member;
    json_object_foreach((json_t *)v, key, member) {
      if (dump_indent(d->f, depth + 1) < 0 || dump_key(d->f, key) < 0 ||
          dump_value(d, member, depth + 1) < 0 || (--left > 0 && fputc(',', d->f) == EOF))
        return -1;
    }
    return dump_indent(d->f, depth) < 0 || fputc('}', d->f) == EOF ? -1 : 0;
  }
  if (json_is_array(v)) {
    size_t n = json_array_size(v);
    if (n == 0)
      return fputs("[]", d->f) == EOF ? -1 : 0;
    if (fputc('[', d->f) == EOF)
      return -1;
    for (size_t i = 0; i < n; i++)
      if (dump_indent(d->f, depth + 1) < 0 || dump_value(d, json_array_get(v, i), depth + 1) < 0 ||
          (i + 1 < n && fputc(',', d->f) == EOF))
        return -1;
    return dump_indent(d->f, depth) < 0 || fputc(']', d->f) == EOF ? -1 : 0;
  }
  return json_dumpf(v, d->f, JSON_ENCODE_ANY);
}

struct dump_job {
  const json_t *root;
  const json_t *nodes_slot;
  const struct run_state *st;
};

static int dump_to_fd(int fd, void *ctx) {
  const struct dump_job *job = ctx;
  int copy = dup(fd);
  FILE *f = copy >= 0 ? fdopen(copy, "w") : NULL;
  if (f == NULL) {
    if (copy >= 0)
      close(copy);
    return -1;
  }
  struct dump d = {.f = f, .nodes_slot = job->nodes_slot, .st = job->st};
  int r = dump_value(&d, job->root, 0) < 0 || fputc('\n', f) == EOF ? -1 : 0;
  int saved = errno;
  if (fclose(f) != 0 && r == 0)
    return -1;
  errno = saved;
  if (r < 0 && errno == 0)
    errno = EIO;
  return r;
}

static int write_document(const struct dump_job *job, const char *path, ep_error **err) {
  bool had_error = err != NULL && *err != NULL;
  errno = 0;
  int r = atomic_write_with(path, dump_to_fd, (void *)job, err);
  if (r < 0 && !had_error && err != NULL && *err != NULL)
    ep_error_wrap(*err, "cannot write report");
  return r;
}

int report_write_json(const struct run_state *st, const char *path, ep_error **err) {
  json_t *root = build(st, false);
  struct dump_job job = {.root = root,
                         .nodes_slot = json_object_get(json_object_get(root, "status"), "nodes"),
                         .st = st};
  int r = write_document(&job, path, err);
  json_decref(root);
  return r;
}

int report_write_object(const json_t *root, const char *path, ep_error **err) {
  struct dump_job job = {.root = root};
  return write_document(&job, path, err);
}
