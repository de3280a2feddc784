/* The report's `idempotency` object (docs/REPORT.md). */
#include "report_json.h"

#include <stdlib.h>
#include <string.h>

static void set(json_t *obj, const char *key, json_t *value) { report_json_set(obj, key, value); }

static json_t *text_or_null(const char *s) {
  return s != NULL ? report_json_text(s, strlen(s)) : json_null();
}

json_t *report_idempotency_json(const struct idempotency_record *r) {
  json_t *o = report_json_must(json_object());
  set(o, "checked", json_boolean(r->checked));
  set(o, "conclusive", json_boolean(r->conclusive));
  set(o, "idempotent", r->conclusive ? json_boolean(r->idempotent) : json_null());
  set(o, "reason", text_or_null(r->reason));
  json_t *second = report_json_must(json_object());
  set(second, "ran", json_boolean(r->second_ran));
  if (r->second_ran)
    set(second, "phase", json_string(node_phase_name(r->second_phase)));
  set(o, "secondRun", second);
  set(o, "entriesCompared", json_integer((json_int_t)r->n_files));
  json_t *changes = report_json_must(json_array());
  for (size_t i = 0; i < r->n_changes; i++) {
    const struct idempotency_change *c = &r->changes[i];
    json_t *ch = report_json_must(json_object());
    set(ch, "path", text_or_null(c->path));
    set(ch, "change", json_string(c->change));
    set(ch, "before", text_or_null(c->before));
    set(ch, "after", text_or_null(c->after));
    if (json_array_append_new(changes, ch) < 0)
      abort();
  }
  set(o, "changes", changes);
  if (r->probe != NULL) {
    json_t *p = report_json_must(json_object());
    set(p, "command", text_or_null(r->probe));
    set(p, "before", text_or_null(r->probe_before));
    set(p, "after", text_or_null(r->probe_after));
    set(p, "changed", json_boolean(r->probe_changed));
    set(o, "stateProbe", p);
  }
  return o;
}
