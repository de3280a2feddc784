/* A matrix's summary.json (docs/MATRIX.md): its table, and one summary
 * made of the summaries of a matrix's shards (`exitprobe report --merge`). */
#ifndef EXITPROBE_MATRIX_SUMMARY_H
#define EXITPROBE_MATRIX_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "error.h"

/* Prints the table `exitprobe matrix` prints for the summary's cells
 * (cli_matrix.c) and returns the status the matrix would have exited with;
 * -1 (usage error naming path) when a cell is not one a matrix writes.
 * color: -1 auto, 0 never, 1 always. */
int matrix_summary_table(const char *path, const json_t *summary, int color, bool require_once,
                         ep_error **err);

/* Checks that the summaries are the shards 1/N..N/N of one matrix, each
 * once, writes their merged summary to output atomically, prints the table;
 * returns the process exit status (matrix_merge.c). */
int matrix_merge_summaries(const char *const *paths, size_t n, const char *output,
                           bool require_once, int color);

#endif
