#include "error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 7, 0)))
static int set_va(ep_error **err, int status, int os_errno, const char *file, int line,
                  int column, const char *fmt, va_list ap) {
  if (err == NULL)
    return -1;
  /* The first error wins: it is the cause, later ones are consequences. */
  if (*err != NULL)
    return -1;
  ep_error *e = calloc(1, sizeof(*e));
  if (e == NULL)
    abort();
  e->status = status;
  e->os_errno = os_errno;
  e->line = line;
  e->column = column;
  if (file != NULL && (e->file = strdup(file)) == NULL)
    abort();
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  if (os_errno != 0) {
    char *with = NULL;
    if (asprintf(&with, "%s: %s", msg, strerror(os_errno)) < 0)
      abort();
    free(msg);
    msg = with;
  }
  e->message = msg;
  *err = e;
  return -1;
}

int ep_error_set(ep_error **err, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_va(err, status, 0, NULL, 0, 0, fmt, ap);
  va_end(ap);
  return -1;
}

int ep_error_set_errno(ep_error **err, int status, int os_errno, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_va(err, status, os_errno, NULL, 0, 0, fmt, ap);
  va_end(ap);
  return -1;
}

int ep_error_at(ep_error **err, int status, const char *file, int line, int column,
                const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_va(err, status, 0, file, line, column, fmt, ap);
  va_end(ap);
  return -1;
}

void ep_error_wrap(ep_error *err, const char *fmt, ...) {
  if (err == NULL)
    return;
  char *prefix = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&prefix, fmt, ap) < 0)
    abort();
  va_end(ap);
  char *msg = NULL;
  if (asprintf(&msg, "%s: %s", prefix, err->message) < 0)
    abort();
  free(prefix);
  free(err->message);
  err->message = msg;
}

void ep_error_print(const ep_error *err, FILE *out) {
  if (err == NULL)
    return;
  if (err->file != NULL && err->line > 0)
    fprintf(out, "%s:%d:%d: error: %s\n", err->file, err->line, err->column, err->message);
  else if (err->file != NULL)
    fprintf(out, "%s: error: %s\n", err->file, err->message);
  else
    fprintf(out, "exitprobe: error: %s\n", err->message);
}

void ep_error_free(ep_error **err) {
  if (err == NULL || *err == NULL)
    return;
  free((*err)->file);
  free((*err)->message);
  free(*err);
  *err = NULL;
}
