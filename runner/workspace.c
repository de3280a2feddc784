/* The run's workspace: see workspace.h.
 *
 * Content is hashed with FNV-1a 64: the check compares one run's files with
 * the same files after a second run, to catch a cleanup that changes them,
 * not an adversary forging a collision; size and mode are compared as well,
 * and FNV needs no library and streams at memory speed. */
#include "workspace.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

#define FNV64_OFFSET 1469598103934665603ULL
#define FNV64_PRIME 1099511628211ULL

static uint64_t fnv64_update(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * FNV64_PRIME;
  return h;
}

static int hash_file(int dir, const char *name, uint64_t *out) {
  int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return -1;
  uint64_t h = FNV64_OFFSET;
  unsigned char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      close(fd);
      return -1;
    }
    h = fnv64_update(h, buf, (size_t)n);
  }
  close(fd);
  *out = h;
  return 0;
}

static void push(struct ws_snapshot *s, size_t *cap, struct ws_entry e) {
  if (s->n == *cap) {
    *cap = *cap ? *cap * 2 : 32;
    s->v = xreallocarray(s->v, *cap, sizeof(*s->v));
  }
  s->v[s->n++] = e;
}

static int walk(int dir, const char *rel, struct ws_snapshot *s, size_t *cap, ep_error **err) {
  DIR *d = fdopendir(dir);
  if (d == NULL) {
    close(dir);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot read the workspace at %s",
                              rel[0] ? rel : ".");
  }
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat sb;
    if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    struct ws_entry e = {.path = rel[0] ? xasprintf("%s/%s", rel, de->d_name)
                                        : xstrdup(de->d_name),
                         .mode = sb.st_mode & 07777, .hash = 0};
    if (S_ISREG(sb.st_mode)) {
      e.type = 'f';
      e.size = (uint64_t)sb.st_size;
      if (hash_file(dirfd(d), de->d_name, &e.hash) < 0)
        rc = ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot read %s in the workspace",
                                e.path);
    } else if (S_ISLNK(sb.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target));
      e.type = 'l';
      e.size = n > 0 ? (uint64_t)n : 0;
      e.hash = fnv64_update(FNV64_OFFSET, (const unsigned char *)target, n > 0 ? (size_t)n : 0);
    } else if (S_ISDIR(sb.st_mode)) {
      e.type = 'd';
    } else {
      e.type = 'o';
    }
    push(s, cap, e);
    if (rc == 0 && e.type == 'd') {
      int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      rc = sub < 0 ? ep_error_set_errno(err, EP_EXIT_INTERNAL, errno,
                                        "cannot open %s in the workspace", e.path)
                   : walk(sub, e.path, s, cap, err);
    }
  }
  closedir(d);
  return rc;
}

static int by_path(const void *a, const void *b) {
  return strcmp(((const struct ws_entry *)a)->path, ((const struct ws_entry *)b)->path);
}

int ws_snapshot_take(const char *root, struct ws_snapshot *out, ep_error **err) {
  out->v = NULL;
  out->n = 0;
  size_t cap = 0;
  int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return errno == ENOENT ? 0
                           : ep_error_set_errno(err, EP_EXIT_INTERNAL, errno,
                                                "cannot open the workspace %s", root);
  if (walk(dir, "", out, &cap, err) < 0) {
    ws_snapshot_free(out);
    return -1;
  }
  qsort(out->v, out->n, sizeof(*out->v), by_path);
  return 0;
}

void ws_snapshot_free(struct ws_snapshot *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].path);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

static char *describe(const struct ws_entry *e) {
  switch (e->type) {
  case 'f':
    return xasprintf("file, %" PRIu64 " bytes, mode %04o, fnv1a64 %016" PRIx64, e->size,
                     (unsigned)e->mode, e->hash);
  case 'l':
    return xasprintf("symlink, fnv1a64 of target %016" PRIx64, e->hash);
  case 'd':
    return xasprintf("directory, mode %04o", (unsigned)e->mode);
  default:
    return xasprintf("special file, mode %04o", (unsigned)e->mode);
  }
}

static bool same(const struct ws_entry *a, const struct ws_entry *b) {
  return a->type == b->type && a->mode == b->mode && a->size == b->size && a->hash == b->hash;
}

static void add(struct ws_diff *d, const char *path, enum ws_change_kind k,
                const struct ws_entry *before, const struct ws_entry *after) {
  d->v = xreallocarray(d->v, d->n + 1, sizeof(*d->v));
  d->v[d->n++] = (struct ws_change){.path = xstrdup(path), .kind = k,
                                    .before = before ? describe(before) : NULL,
                                    .after = after ? describe(after) : NULL};
}

void ws_diff_compute(const struct ws_snapshot *before, const struct ws_snapshot *after,
                     struct ws_diff *out) {
  out->v = NULL;
  out->n = 0;
  size_t i = 0, j = 0;
  while (i < before->n || j < after->n) {
    int cmp = i == before->n  ? 1
              : j == after->n ? -1
                              : strcmp(before->v[i].path, after->v[j].path);
    if (cmp < 0) {
      add(out, before->v[i].path, WS_REMOVED, &before->v[i], NULL);
      i++;
    } else if (cmp > 0) {
      add(out, after->v[j].path, WS_ADDED, NULL, &after->v[j]);
      j++;
    } else {
      if (!same(&before->v[i], &after->v[j]))
        add(out, before->v[i].path, WS_CHANGED, &before->v[i], &after->v[j]);
      i++, j++;
    }
  }
}

void ws_diff_free(struct ws_diff *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->v[i].path);
    free(d->v[i].before);
    free(d->v[i].after);
  }
  free(d->v);
  d->v = NULL;
  d->n = 0;
}

const char *ws_change_name(enum ws_change_kind k) {
  return k == WS_ADDED ? "added" : k == WS_REMOVED ? "removed" : "changed";
}

static int copy_file(int from_dir, const char *name, int to_dir, mode_t mode) {
  int in = openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (in < 0)
    return -1;
  int out = openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (out < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof(buf))) > 0)
    if (write(out, buf, (size_t)n) != n) {
      rc = -1;
      break;
    }
  if (n < 0)
    rc = -1;
  close(in);
  if (close(out) < 0)
    rc = -1;
  return rc;
}

static int copy_dir(int from, int to) {
  DIR *d = fdopendir(from);
  if (d == NULL) {
    close(from);
    return -1;
  }
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    struct stat sb;
    if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISREG(sb.st_mode)) {
      rc = copy_file(dirfd(d), de->d_name, to, sb.st_mode & 07777);
    } else if (S_ISLNK(sb.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
      if (n >= 0) {
        target[n] = '\0';
        rc = symlinkat(target, to, de->d_name);
      }
    } else if (S_ISDIR(sb.st_mode)) {
      int sub_from = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub_from < 0 || mkdirat(to, de->d_name, sb.st_mode & 07777) < 0) {
        if (sub_from >= 0)
          close(sub_from);
        rc = -1;
        break;
      }
      int sub_to = openat(to, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub_to < 0) {
        close(sub_from);
        rc = -1;
        break;
      }
      rc = copy_dir(sub_from, sub_to);
      close(sub_to);
    }
  }
  closedir(d);
  return rc;
}

int ws_copy_tree(const char *root, const char *dest, ep_error **err) {
  if (mkdir(dest, 0755) < 0)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno,
                              "cannot create %s to keep the workspace in", dest);
  int from = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (from < 0)
    return errno == ENOENT ? 0
                           : ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot open %s",
                                                root);
  int to = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (to < 0) {
    close(from);
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot open %s", dest);
  }
  int rc = copy_dir(from, to);
  close(to);
  if (rc < 0)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "copying the workspace to %s",
                              dest);
  return 0;
}
