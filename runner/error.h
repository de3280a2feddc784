/* Error objects shared by every module: a failing call fills one and
 * returns -1, the caller decides how to report it.  Modelled on crun's
 * libcrun_error_t: the error carries the exit status class it maps to so
 * that the CLI never has to guess whether a failure was bad input (2), a
 * missing capability (3) or our own fault (70). */
#ifndef EXITPROBE_ERROR_H
#define EXITPROBE_ERROR_H

#include <stdio.h>

enum ep_exit {
  EP_EXIT_OK = 0,
  EP_EXIT_FAILED = 1,      /* workflow ended Failed/Error */
  EP_EXIT_USAGE = 2,       /* bad input or usage: nothing ran */
  EP_EXIT_ENVIRONMENT = 3, /* the machine cannot run it (capability missing) */
  EP_EXIT_INTERNAL = 70,   /* EX_SOFTWARE: a bug or an unexpected OS failure */
  EP_EXIT_SIGINT = 130,
  EP_EXIT_SIGTERM = 143,
};

typedef struct ep_error {
  int status;    /* enum ep_exit */
  int os_errno;  /* errno at the failure, 0 if none */
  char *file;    /* input file the error is about, or NULL */
  int line;      /* 1-based; 0 when unknown */
  int column;    /* 1-based; 0 when unknown */
  char *message;
} ep_error;

/* Always returns -1 so that `return ep_error_set(...)` reads naturally. */
int ep_error_set(ep_error **err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ep_error_set_errno(ep_error **err, int status, int os_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ep_error_at(ep_error **err, int status, const char *file, int line, int column,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Prefix an existing error's message: "context: old message". */
void ep_error_wrap(ep_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "file:line:column: error: message" (the form compilers and editors parse). */
void ep_error_print(const ep_error *err, FILE *out);
void ep_error_free(ep_error **err);

static inline void ep_error_cleanup(ep_error **err) { ep_error_free(err); }
#define cleanup_ep_error __attribute__((cleanup(ep_error_cleanup)))

#endif
