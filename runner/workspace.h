/* The run's workspace: the host directories behind its claim volumes
 * (volumeClaimTemplates, persistentVolumeClaim), one per claim, under the
 * run directory, shared by every step that mounts them and by a restarted
 * controller or the watchdog's compensation; and snapshots of it, compared
 * file by file (the idempotency check). */
#ifndef EXITPROBE_WORKSPACE_H
#define EXITPROBE_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* One entry under the workspace root. */
struct ws_entry {
  char *path;       /* relative to the root: "<claim>/dir/file" */
  char type;        /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
  mode_t mode;      /* permission bits */
  uint64_t size;
  uint64_t hash;    /* FNV-1a 64 of the content (files) or the link target */
};

struct ws_snapshot {
  struct ws_entry *v; /* sorted by path */
  size_t n;
};

enum ws_change_kind { WS_ADDED, WS_REMOVED, WS_CHANGED };

struct ws_change {
  char *path;
  enum ws_change_kind kind;
  char *before; /* "file, 12 bytes, 0644, fnv1a64 0123..." or NULL when absent */
  char *after;
};

struct ws_diff {
  struct ws_change *v;
  size_t n;
};

/* Walk root (not following links).  A missing root is an empty snapshot. */
int ws_snapshot_take(const char *root, struct ws_snapshot *out, ep_error **err);
void ws_snapshot_free(struct ws_snapshot *s);
void ws_diff_compute(const struct ws_snapshot *before, const struct ws_snapshot *after,
                     struct ws_diff *out);
void ws_diff_free(struct ws_diff *d);
const char *ws_change_name(enum ws_change_kind k);

/* Copy the workspace to dest (which must not exist), for --keep-workspace. */
int ws_copy_tree(const char *root, const char *dest, ep_error **err);

#endif
