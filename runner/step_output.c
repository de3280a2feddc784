#include "step_output.h"

#include <stdlib.h>
#include <string.h>

static void lb_append(struct line_buffer *b, const char *data, size_t len) {
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len + 1)
      cap *= 2;
    b->data = realloc(b->data, cap);
    if (b->data == NULL)
      abort();
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

/* Keep only the last STEP_RESULT_MAX bytes of stdout, as the executor does,
 * without letting a chatty step grow the buffer without bound. */
static void keep_result_tail(struct step_output *out) {
  struct line_buffer *b = &out->stdout_all;
  if (b->len <= 2 * STEP_RESULT_MAX)
    return;
  memmove(b->data, b->data + b->len - STEP_RESULT_MAX, STEP_RESULT_MAX);
  b->len = STEP_RESULT_MAX;
  b->data[b->len] = '\0';
  out->stdout_truncated = true;
}

void step_output_feed(struct step_output *out, int stream, const char *data, size_t len,
                      struct wf_node *node) {
  struct line_buffer *pending = &out->pending[stream == 2];
  if (stream == 1) {
    lb_append(&out->stdout_all, data, len);
    keep_result_tail(out);
  }
  while (len > 0) {
    const char *nl = memchr(data, '\n', len);
    if (nl == NULL) {
      lb_append(pending, data, len);
      /* A "line" that never ends must not grow the runner without bound:
       * past the cap it is logged as it stands, cut. */
      if (pending->len >= STEP_LINE_MAX) {
        lb_append(pending, "\n", 1);
        node_append_log(node, pending->data, pending->len);
        if (out->on_line)
          out->on_line(out->on_line_ctx, pending->data, pending->len);
        pending->len = 0;
      }
      return;
    }
    size_t line_len = (size_t)(nl - data) + 1;
    if (pending->len > 0) {
      lb_append(pending, data, line_len);
      node_append_log(node, pending->data, pending->len);
      if (out->on_line)
        out->on_line(out->on_line_ctx, pending->data, pending->len);
      pending->len = 0;
    } else {
      node_append_log(node, data, line_len);
      if (out->on_line)
        out->on_line(out->on_line_ctx, data, line_len);
    }
    data += line_len;
    len -= line_len;
  }
}

void step_output_flush(struct step_output *out, int stream, struct wf_node *node) {
  struct line_buffer *pending = &out->pending[stream == 2];
  if (pending->len > 0) {
    lb_append(pending, "\n", 1);
    node_append_log(node, pending->data, pending->len);
    if (out->on_line)
      out->on_line(out->on_line_ctx, pending->data, pending->len);
    pending->len = 0;
  }
}

char *step_output_result(const struct step_output *out) {
  const struct line_buffer *b = &out->stdout_all;
  size_t start = b->len > STEP_RESULT_MAX ? b->len - STEP_RESULT_MAX : 0;
  size_t len = b->len - start;
  if (len > 0 && b->data[start + len - 1] == '\n')
    len--;
  char *result = malloc(len + 1);
  if (result == NULL)
    abort();
  if (len > 0)
    memcpy(result, b->data + start, len);
  result[len] = '\0';
  return result;
}

void step_output_free(struct step_output *out) {
  free(out->pending[0].data);
  free(out->pending[1].data);
  free(out->stdout_all.data);
  memset(out, 0, sizeof(*out));
}
