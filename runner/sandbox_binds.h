/* Volume mounts inside a step's mount namespace (the sandbox's init side).
 *
 * Called by the init after the root has been made read-only: every bind
 * lands on a directory that exists in the step's view; one that does not
 * exist is created -- directly where the view is writable (/tmp), else on a
 * tmpfs "scaffold" laid over the deepest existing ancestor, holding bind
 * mounts of the ancestor's original entries plus the new mount point, then
 * made read-only (bubblewrap builds its whole root on a tmpfs for the same
 * reason).  No allocation: the init runs in a copy of the runner. */
#ifndef EXITPROBE_SANDBOX_BINDS_H
#define EXITPROBE_SANDBOX_BINDS_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox.h"

/* Where a failure happened, for the init's one-line set-up error. */
struct bind_failure {
  const char *what;
  const char *path;
};

/* Before the view changes (the host directories are reachable by path only
 * until /tmp is replaced): O_PATH descriptors of every source, CLOEXEC. */
int sandbox_binds_open(const struct sandbox_bind *binds, size_t n, int *fds,
                       struct bind_failure *why);

/* Mount them, in order (fds from sandbox_tree_detach when detached).
 * errno is set on failure. */
int sandbox_binds_apply(const struct sandbox_bind *binds, size_t n, const int *fds,
                        bool detached, struct bind_failure *why);

/* Replace an O_PATH descriptor by a detached copy of the tree under it
 * (open_tree's clone): a mount is bound from a path only while its source
 * is in the namespace, and an image's root filesystem detaches the host's. */
int sandbox_tree_detach(int *fd);

/* Mount what fd names on target: a bind, or the detached copy moved there. */
int sandbox_tree_mount(int fd, const char *target, bool detached);

#endif
