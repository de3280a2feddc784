/* Allocation that cannot fail: exitprobe aborts on memory exhaustion (a
 * harness that ran out of memory has nothing trustworthy left to report),
 * so callers never carry an out-of-memory path. */
#ifndef EXITPROBE_XALLOC_H
#define EXITPROBE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
