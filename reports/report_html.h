/* The HTML format (`exitprobe report --format html`): one self-contained
 * page (inline CSS, SVG and a few lines of JS; nothing fetched, which a
 * Content-Security-Policy of default-src 'none' enforces) per set of
 * reports.  For each report: the workflow drawn as a graph the way Argo's UI
 * draws it (nodes as boxes, edges from the children lists, laid out
 * top-down by depth; Failed/Error red, Succeeded green, Skipped/Omitted
 * grey, Running/Pending yellow; the exit handler apart in a frame marked
 * "exit handler"), the timeline, the expectations and faults, and every
 * node's details and log.
 *
 * Elements a test (or a user's script) can find:
 *   graph node   g.node[data-node-id][data-name][data-phase][data-type],
 *                .exit-handler and data-exit-handler="true" on the handler's nodes
 *   details      details.node-details#<r>-node-<i>[data-node-id][data-phase]
 *   timeline     li.event[data-kind]
 *   expectation  tr.expectation[data-ok]
 * where <r> is "r0", "r1", ... for the reports in order. */
#ifndef EXITPROBE_REPORT_HTML_H
#define EXITPROBE_REPORT_HTML_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* sources[i] names reports[i] on the page (its path); may be NULL. */
void report_html_render(const json_t *const *reports, const char *const *sources, size_t n,
                        FILE *out);

#endif
