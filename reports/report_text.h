/* The human summary `exitprobe run` prints: node tree with phase, exit code
 * and duration; the exit handler's verdict and output. */
#ifndef EXITPROBE_REPORT_TEXT_H
#define EXITPROBE_REPORT_TEXT_H

#include <stdbool.h>
#include <stdio.h>

#include "../runner/run_state.h"

struct text_options {
  bool color; /* ANSI colours: on a terminal and NO_COLOR unset */
};

void report_print_text(const struct run_state *st, const struct text_options *opts, FILE *out);

#endif
