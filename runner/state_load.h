/* A run state read back from a report (report_json's shape): what a
 * restarted controller resumes from, and what the supervisor reports when
 * the controller died.  Times come back at the report's one-second
 * precision. */
#ifndef EXITPROBE_STATE_LOAD_H
#define EXITPROBE_STATE_LOAD_H

#include <jansson.h>

#include "error.h"
#include "run_state.h"

int run_state_from_report(const json_t *report, struct run_state **out, ep_error **err);
int run_state_load_file(const char *path, struct run_state **out, ep_error **err);

/* One node of a report's status.nodes (id its key), with its children,
 * into st: a state read back one node at a time, with no tree of them all. */
int run_state_add_report_node(struct run_state *st, const char *id, const json_t *node,
                              ep_error **err);

/* "2026-11-27T04:30:31Z" to µs since the epoch; 0 when absent or malformed. */
int64_t parse_rfc3339_us(const char *text);

#endif
