/* Turning a step's two output pipes into what Argo records: a log with
 * stdout and stderr interleaved line by line (in arrival order), and
 * `outputs.result` (stdout only, last 256 kB, one trailing newline removed). */
#ifndef EXITPROBE_STEP_OUTPUT_H
#define EXITPROBE_STEP_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "run_state.h"

#define STEP_RESULT_MAX (256 * 1024)
#define STEP_LINE_MAX (64 * 1024) /* a longer line is logged in pieces */

struct line_buffer {
  char *data;
  size_t len, cap;
};

struct step_output {
  struct line_buffer pending[2]; /* [0] stdout, [1] stderr: bytes after the last newline */
  /* Called with each complete line (newline included) as it is logged. */
  void (*on_line)(void *ctx, const char *line, size_t len);
  void *on_line_ctx;
  struct line_buffer stdout_all;
  bool stdout_truncated;
};

/* stream: 1 = stdout, 2 = stderr.  Complete lines go to node's log. */
void step_output_feed(struct step_output *out, int stream, const char *data, size_t len,
                      struct wf_node *node);
/* End of a stream: an unterminated last line still goes to the log. */
void step_output_flush(struct step_output *out, int stream, struct wf_node *node);
/* stdout with one trailing newline removed; caller frees. */
char *step_output_result(const struct step_output *out);
void step_output_free(struct step_output *out);

#endif
