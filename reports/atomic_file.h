/* Writing a file so that readers see the old content or the new, never a mix. */
#ifndef EXITPROBE_ATOMIC_FILE_H
#define EXITPROBE_ATOMIC_FILE_H

#include <stddef.h>

#include "../runner/error.h"

/* mkdir -p of the parent directories, then write to "<path>.tmp-XXXXXX",
 * fsync, rename over path, fsync the directory. */
int atomic_write_file(const char *path, const char *data, size_t len, ep_error **err);
/* The same, with the content written by fill(fd, ctx), which returns 0, or
 * -1 with errno set: a large document need not exist in memory whole. */
int atomic_write_with(const char *path, int (*fill)(int fd, void *ctx), void *ctx,
                      ep_error **err);

#endif
