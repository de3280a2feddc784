/* What happened when, derived from a JSON report: the workflow started,
 * steps started and ended, faults fired, the exit handler started (and with
 * which {{workflow.status}}, by the controller or the watchdog), the
 * workflow ended.  Used by the text and HTML formats.
 *
 * Node times in a report have whole seconds (as Argo writes them), so most
 * events of a short run share a second.  Within a second the order follows
 * what must have come first: a node starts before its children and ends
 * after them, a step ends before the steps that depend on it start, a fault
 * fires while its node runs, the exit handler starts after the entry node
 * has ended. */
#ifndef EXITPROBE_REPORT_TIMELINE_H
#define EXITPROBE_REPORT_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "../runner/run_state.h"

enum timeline_kind {
  TIMELINE_WORKFLOW_STARTED,
  TIMELINE_NODE_STARTED,
  TIMELINE_NODE_FINISHED,
  TIMELINE_NODE_SKIPPED,
  TIMELINE_FAULT_FIRED,
  TIMELINE_EXIT_HANDLER_STARTED,
  TIMELINE_EXIT_HANDLER_MISSING, /* declared, never started */
  TIMELINE_WORKFLOW_FINISHED,
};

struct timeline_event {
  enum timeline_kind kind;
  bool has_time;
  double offset_seconds; /* since status.startedAt, when has_time */
  bool precise;          /* offset known below the second (faults) */
  const char *node_id;   /* borrowed from the report (or state); NULL for workflow events */
  const char *phase;     /* phase reached (finished, skipped, workflow finished) or NULL */
  char *text;            /* one line: "work Failed: main: Error (exit code 1)" */
};

struct timeline {
  struct timeline_event *events;
  size_t n;
};

/* Never fails short of memory exhaustion (aborts).  Borrowed strings live
 * as long as the report. */
void timeline_build(const json_t *report, struct timeline *out);
/* The same from the report built without status.nodes (report_build_head)
 * and a run state holding its nodes as a report gives them back
 * (state_load.h): `exitprobe run` never holds a JSON tree of every node.
 * Borrowed strings live as long as both. */
void timeline_build_run(const json_t *head, const struct run_state *st, struct timeline *out);
void timeline_free(struct timeline *tl);

/* "workflow-started", "fault-fired", ... (stable: HTML data-kind values). */
const char *timeline_kind_name(enum timeline_kind kind);

/* "+0s", "+1m05s", "+0.302s" for a precise offset; "?" without a time. */
void timeline_format_offset(const struct timeline_event *ev, char *buf, size_t size);

/* The text form: "Timeline:" and one indented line per event. */
void timeline_print_text(const struct timeline *tl, bool color, FILE *out);

#endif
