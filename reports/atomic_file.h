/* Writing a file so that readers see the old content or the new, never a mix. */
#ifndef EXITPROBE_ATOMIC_FILE_H
#define EXITPROBE_ATOMIC_FILE_H

#include <stddef.h>

#include "../runner/error.h"

/* mkdir -p of the parent directories, then write to "<path>.tmp-XXXXXX",
 * fsync, rename over path, fsync the directory. */
int atomic_write_file(const char *path, const char *data, size_t len, ep_error **err);

#endif
