/* The JSON report: the machine-readable record of a run.  Its `status`
 * mirrors Argo's Workflow status (`argo get -o json`) so the same checks run
 * against a real cluster; the rest is what the harness observed.  The schema
 * is documented in docs/REPORT.md. */
#ifndef EXITPROBE_REPORT_JSON_H
#define EXITPROBE_REPORT_JSON_H

#include <jansson.h>

#include "../runner/error.h"
#include "../runner/run_state.h"

#define REPORT_API_VERSION "exitprobe/v1"

/* A JSON string of any bytes: invalid UTF-8 is replaced as everywhere in
 * the report (file names and probe output are not text one can trust). */
json_t *report_json_text(const char *s, size_t n);

/* v, or abort when jansson ran out of memory (v == NULL). */
json_t *report_json_must(json_t *v);
/* obj[key] = value (a new reference; aborts when out of memory). */
void report_json_set(json_t *obj, const char *key, json_t *value);

/* The `idempotency` object (report_idempotency.c). */
json_t *report_idempotency_json(const struct idempotency_record *r);

/* Build the report object.  Never fails short of memory exhaustion (aborts). */
json_t *report_build(const struct run_state *st);

/* The same with status.nodes empty: what a renderer needs besides the
 * nodes, which it reads from st (a few KiB instead of ~2.5 KiB a node). */
json_t *report_build_head(const struct run_state *st);

/* One node of status.nodes, as the report writes it (key: n->id). */
json_t *report_node_json(const struct run_state *st, const struct wf_node *n);

/* A signal as the report names it: "SIGKILL", "SIGRTMIN+3", or its number. */
void report_signal_name(int sig, char *buf, size_t size);

/* Build and write atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory): readers see the old file or the whole new
 * one, never half of it.  Creates missing parent directories. */
int report_write_json(const struct run_state *st, const char *path, ep_error **err);

/* Write an already built (and perhaps extended) report object atomically. */
int report_write_object(const json_t *root, const char *path, ep_error **err);

#endif
