/* The text format of a saved report (`exitprobe report --format text`):
 * the summary `exitprobe run` prints (report_text.c, from the run state the
 * report describes), then the timeline, what the watchdog did, the faults
 * asked for and, for a scenario, every expectation and the verdict. */
#ifndef EXITPROBE_REPORT_TEXT_JSON_H
#define EXITPROBE_REPORT_TEXT_JSON_H

#include <stdio.h>

#include <jansson.h>

#include "report_text.h"

void report_print_text_json(const json_t *report, const struct text_options *opts, FILE *out);

/* The same text at the end of `exitprobe run`, for the report of st: what
 * report_print_text_json prints for it, made without a JSON tree of every
 * node (49 MiB at 20,000 nodes). */
void report_print_text_state(const struct run_state *st, const struct text_options *opts,
                             FILE *out);

#endif
