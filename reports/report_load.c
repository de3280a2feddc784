#include "report_load.h"
#include "../runner/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_json.h"

/* ---- reading and recognising a report ---------------------------------- */

int report_check(const json_t *report, const char *path, ep_error **err) {
  const char *what = NULL;
  const char *api = json_string_value(json_object_get(report, "apiVersion"));
  const char *kind = json_string_value(json_object_get(report, "kind"));
  const json_t *status = json_object_get(report, "status");
  if (!json_is_object(report))
    what = "the document is not a JSON object";
  else if (api == NULL || strcmp(api, REPORT_API_VERSION) != 0)
    what = "apiVersion is not \"" REPORT_API_VERSION "\"";
  else if (kind == NULL || strcmp(kind, "Report") != 0)
    what = "kind is not \"Report\"";
  else if (!json_is_object(status) || !json_is_object(json_object_get(status, "nodes")))
    what = "status.nodes is missing or not an object";
  else if (!json_is_object(json_object_get(report, "exitHandler")))
    what = "exitHandler is missing or not an object";
  if (what == NULL)
    return 0;
  return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0, "not an exitprobe report: %s", what);
}

int report_load_file(const char *path, json_t **out, ep_error **err) {
  *out = NULL;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    int e = errno;
    return ep_error_set_errno(err, EP_EXIT_USAGE, e, "cannot read report %s", path);
  }
  json_error_t jerr;
  /* Step output may hold NUL bytes; report_json.c writes them as \u0000. */
  json_t *doc = json_loadf(f, JSON_ALLOW_NUL, &jerr);
  int read_errno = ferror(f) ? errno : 0;
  fclose(f);
  if (doc == NULL) {
    if (read_errno != 0)
      return ep_error_set_errno(err, EP_EXIT_USAGE, read_errno, "cannot read report %s",
                                path);
    return ep_error_at(err, EP_EXIT_USAGE, path, jerr.line > 0 ? jerr.line : 0,
                       jerr.column > 0 ? jerr.column : 0, "not valid JSON: %s", jerr.text);
  }
  if (report_check(doc, path, err) < 0) {
    json_decref(doc);
    return -1;
  }
  *out = doc;
  return 0;
}

/* ---- outcome ----------------------------------------------------------- */

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static const char *nonempty(const char *s) { return s != NULL && s[0] != '\0' ? s : NULL; }




static const char *known_verdict(const char *v) {
  static const char *const verdicts[] = {"passed", "failed", "inconclusive", "error"};
  for (size_t i = 0; v != NULL && i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
    if (strcmp(v, verdicts[i]) == 0)
      return verdicts[i];
  /* Anything else is the harness's problem, never a silent pass. */
  return "error";
}

/* The exit handler's own message, from its node, if it has one. */
/* nodes_st: the run state holding the report's nodes, NULL when the report
 * object holds them. */
static const char *handler_message(const json_t *report, const struct run_state *nodes_st) {
  const json_t *eh = json_object_get(report, "exitHandler");
  const char *node = str_at(eh, "node");
  if (node == NULL)
    return NULL;
  if (nodes_st != NULL) {
    const struct wf_node *n = run_state_find_id(nodes_st, node);
    return n != NULL ? nonempty(n->message) : NULL;
  }
  const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
  return nonempty(str_at(json_object_get(nodes, node), "message"));
}

/* A report with an idempotency check (--idempotency): a change fails it,
 * a check that could not be made leaves it inconclusive.  True when the
 * check decided the outcome. */
static bool idempotency_outcome(const json_t *report, struct report_outcome *o) {
  const json_t *idem = json_object_get(report, "idempotency");
  if (!json_is_true(json_object_get(idem, "checked")))
    return false;
  const char *reason = str_at(idem, "reason");
  if (!json_is_true(json_object_get(idem, "conclusive"))) {
    o->verdict = "inconclusive";
    o->reason = xasprintf("idempotency check inconclusive: %s", reason ? reason : "?");
    return true;
  }
  if (json_is_true(json_object_get(idem, "idempotent")))
    return false;
  o->verdict = "failed";
  o->reason = xasprintf("the exit handler is not idempotent: %s", reason ? reason : "?");
  return true;
}

static void derive_outcome(const json_t *report, const struct run_state *nodes_st,
                           struct report_outcome *o) {
  const json_t *eh = json_object_get(report, "exitHandler");
  const json_t *status = json_object_get(report, "status");
  const json_t *run = json_object_get(report, "run");
  const char *phase = nonempty(str_at(status, "phase")) ? str_at(status, "phase") : "unknown";
  o->verdict = "failed";
  if (json_is_true(json_object_get(eh, "declared"))) {
    json_int_t runs = json_integer_value(json_object_get(eh, "runs"));
    const char *eh_phase = str_at(eh, "phase");
    if (!json_is_true(json_object_get(eh, "ran"))) {
      const char *shutdown = str_at(run, "shutdown");
      o->reason = xasprintf("the exit handler was declared but did not run%s",
                            shutdown != NULL && strcmp(shutdown, "Terminate") == 0
                                ? " (shutdown strategy Terminate skips it)"
                            : json_is_true(json_object_get(run, "interrupted"))
                                ? " (the run was interrupted)"
                                : "");
    } else if (runs != 1) {
      o->reason = xasprintf("the exit handler ran %lld times; Argo runs it once", (long long)runs);
    } else if (eh_phase == NULL || strcmp(eh_phase, "Succeeded") != 0) {
      const char *msg = handler_message(report, nodes_st);
      o->reason = xasprintf("the exit handler ran but ended %s%s%s", eh_phase ? eh_phase : "unknown",
                            msg ? ": " : "", msg ? msg : "");
    } else if (!idempotency_outcome(report, o)) {
      o->verdict = "passed";
    }
    return;
  }
  if (idempotency_outcome(report, o))
    return;
  if (strcmp(phase, "Succeeded") == 0) {
    o->verdict = "passed";
    return;
  }
  const char *msg = nonempty(str_at(status, "message"));
  o->reason = xasprintf("the workflow ended %s%s%s (no exit handler declared)", phase,
                        msg ? ": " : "", msg ? msg : "");
}

static void outcome_of(const json_t *report, const struct run_state *nodes_st,
                       struct report_outcome *o) {
  memset(o, 0, sizeof(*o));
  const json_t *scenario = json_object_get(report, "scenario");
  const json_t *workflow = json_object_get(report, "workflow");
  o->name = nonempty(str_at(scenario, "name"));
  if (o->name == NULL)
    o->name = nonempty(str_at(workflow, "name"));
  if (o->name == NULL)
    o->name = "unnamed";
  o->file = nonempty(str_at(scenario, "file"));
  if (o->file == NULL)
    o->file = nonempty(str_at(workflow, "file"));
  const json_t *verdict = json_object_get(report, "verdict");
  if (verdict != NULL) {
    o->scenario = true;
    o->verdict = known_verdict(json_string_value(verdict));
    const char *reason = nonempty(str_at(report, "verdictReason"));
    if (reason != NULL)
      o->reason = xstrdup(reason);
    else if (strcmp(o->verdict, "error") == 0)
      o->reason = xstrdup("the run did not complete");
    return;
  }
  derive_outcome(report, nodes_st, o);
}

void report_outcome_of(const json_t *report, struct report_outcome *o) {
  outcome_of(report, NULL, o);
}

void report_outcome_of_run(const json_t *head, const struct run_state *st,
                           struct report_outcome *o) {
  outcome_of(head, st, o);
}

void report_outcome_free(struct report_outcome *o) {
  free(o->reason);
  o->reason = NULL;
}
