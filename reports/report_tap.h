/* The TAP format (`exitprobe report --format tap`): TAP version 14, one
 * test point per report ("ok 1 - seed-work-fails"), a scenario's
 * expectations as a subtest (a 4-space indented stream after a
 * "# Subtest: NAME" comment), an inconclusive run as "# SKIP reason",
 * failures with a YAML diagnostic block indented two spaces past their test
 * point (message, severity, expected/observed, at: file:line:column).
 * Every value in a YAML block is written as a JSON string or number, which
 * YAML reads unchanged, so step output can never end the block or forge a
 * test line. */
#ifndef EXITPROBE_REPORT_TAP_H
#define EXITPROBE_REPORT_TAP_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* sources[i] (the report's path, may be NULL) goes into the diagnostics. */
void report_tap_render(const json_t *const *reports, const char *const *sources, size_t n,
                       FILE *out);

#endif
