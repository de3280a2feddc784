/* Reading a saved JSON report back (`exitprobe report`): checking that a
 * file is an exitprobe report, and the outcome the CI formats need from it.
 * (The run state a report describes comes from runner/state_load.h.) */
#ifndef EXITPROBE_REPORT_LOAD_H
#define EXITPROBE_REPORT_LOAD_H

#include <stdbool.h>

#include <jansson.h>

#include "../runner/error.h"
#include "../runner/run_state.h"

/* Parse path and check it is a report (report_check).  Errors are
 * EP_EXIT_USAGE and name the file (with line:column for JSON syntax). */
int report_load_file(const char *path, json_t **out, ep_error **err);

/* An exitprobe report: an object with apiVersion "exitprobe/v1", kind
 * "Report", a status object holding a nodes object, an exitHandler
 * object.  path only names the report in the error. */
int report_check(const json_t *report, const char *path, ep_error **err);

/* What a CI format shows for one report.  A scenario report carries its
 * verdict; a plain workflow report gets one derived from the question the
 * tool answers (docs in `exitprobe report --help`):
 *   exit handler declared: passed when it ran exactly once and Succeeded;
 *   none declared:         passed when the workflow Succeeded. */
struct report_outcome {
  const char *name;    /* scenario name, else workflow name, else "unnamed" */
  const char *file;    /* scenario file, else workflow file; NULL if neither */
  const char *verdict; /* "passed", "failed", "inconclusive" or "error" */
  char *reason;        /* why not passed (or the report's verdictReason); NULL if none */
  bool scenario;       /* the verdict is the report's own */
};

/* Strings are borrowed from the report except reason. */
void report_outcome_of(const json_t *report, struct report_outcome *out);
/* The same for a report built without its nodes (report_build_head) from st. */
void report_outcome_of_run(const json_t *head, const struct run_state *st,
                           struct report_outcome *out);
void report_outcome_free(struct report_outcome *o);

#endif
