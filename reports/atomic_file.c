#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The report path comes from the user: a path we may not write, that runs
 * through a regular file or a read-only mount is their input being wrong,
 * not our bug. */
static int status_for_errno(int e) {
  switch (e) {
  case EACCES:
  case EPERM:
  case ENOTDIR:
  case EISDIR:
  case EROFS:
  case ENAMETOOLONG:
  case ELOOP:
    return EP_EXIT_USAGE;
  default:
    return EP_EXIT_INTERNAL;
  }
}

static int fail_errno(ep_error **err, int e, const char *what, const char *path) {
  return ep_error_set_errno(err, status_for_errno(e), e, "%s '%s'", what, path);
}

/* The temporary file is removed on failure: the message names the file the
 * user asked for, and says it was not touched (a full disk is the usual
 * case, and the question then is whether the previous report survived). */
static int fail_unchanged(ep_error **err, int e, const char *what, const char *path) {
  return ep_error_set_errno(err, status_for_errno(e), e,
                            "cannot write '%s' (%s its temporary file failed; '%s' is left as "
                            "it was)",
                            path, what, path);
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
}

static void free_str(char **s) { free(*s); }

/* mkdir -p of every directory above the last component of path. */
static int make_parents(const char *path, ep_error **err) {
  __attribute__((cleanup(free_str))) char *buf = strdup(path);
  if (buf == NULL)
    abort();
  char *slash = strrchr(buf, '/');
  if (slash == NULL || slash == buf)
    return 0;
  *slash = '\0';

  for (char *p = buf + 1;; p++) {
    bool last = (*p == '\0');
    if (*p != '/' && !last)
      continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, 0755) < 0) {
      int e = errno;
      struct stat sb;
      if (e != EEXIST)
        return fail_errno(err, e, "cannot create directory", buf);
      if (stat(buf, &sb) < 0)
        return fail_errno(err, errno, "cannot create directory", buf);
      if (!S_ISDIR(sb.st_mode))
        return fail_errno(err, ENOTDIR, "cannot create directory", buf);
    }
    *p = saved;
    if (last)
      break;
    /* Collapse runs of slashes: "a//b" must not try to mkdir "a/" twice. */
    while (p[1] == '/')
      p++;
  }
  return 0;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The rename is only durable once the directory entry is on disk. */
static int fsync_parent_dir(const char *path, ep_error **err) {
  __attribute__((cleanup(free_str))) char *dir = strdup(path);
  if (dir == NULL)
    abort();
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    strcpy(dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';

  __attribute__((cleanup(close_fd))) int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno(err, errno, "cannot open directory", dir);
  /* Some filesystems cannot fsync a directory; the rename has still happened. */
  if (fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
    return fail_errno(err, errno, "cannot sync directory", dir);
  return 0;
}

struct buffer {
  const char *data;
  size_t len;
};

static int write_buffer(int fd, void *ctx) {
  const struct buffer *b = ctx;
  return write_all(fd, b->data, b->len);
}

int atomic_write_file(const char *path, const char *data, size_t len, ep_error **err) {
  struct buffer b = {data, len};
  return atomic_write_with(path, write_buffer, &b, err);
}

int atomic_write_with(const char *path, int (*fill)(int fd, void *ctx), void *ctx,
                      ep_error **err) {
  if (path == NULL || path[0] == '\0')
    return ep_error_set(err, EP_EXIT_USAGE, "empty output path");
  size_t plen = strlen(path);
  if (path[plen - 1] == '/')
    return ep_error_set_errno(err, EP_EXIT_USAGE, EISDIR, "cannot write '%s'", path);

  if (make_parents(path, err) < 0)
    return -1;

  static const char suffix[] = ".tmp-XXXXXX";
  __attribute__((cleanup(free_str))) char *tmp = malloc(plen + sizeof(suffix));
  if (tmp == NULL)
    abort();
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, suffix, sizeof(suffix));

  int ret = -1;
  int fd_to_close;
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0)
    return fail_unchanged(err, errno, "creating", path);

  /* mkstemp creates 0600; a report is meant to be read by others. */
  if (fchmod(fd, 0644) < 0) {
    fail_errno(err, errno, "cannot set mode of", tmp);
    goto cleanup;
  }
  if (fill(fd, ctx) < 0) {
    fail_unchanged(err, errno, "writing", path);
    goto cleanup;
  }
  if (fsync(fd) < 0) {
    fail_unchanged(err, errno, "syncing", path);
    goto cleanup;
  }
  /* close() can report a deferred write error (NFS); it must be checked. */
  fd_to_close = fd;
  fd = -1;
  if (close(fd_to_close) < 0) {
    fail_unchanged(err, errno, "closing", path);
    goto cleanup;
  }
  if (rename(tmp, path) < 0) {
    fail_errno(err, errno, "cannot rename temporary file to", path);
    goto cleanup;
  }
  tmp[0] = '\0'; /* renamed: nothing left to remove */
  if (fsync_parent_dir(path, err) < 0)
    goto cleanup;
  ret = 0;

cleanup:
  if (fd >= 0)
    close(fd);
  if (tmp[0] != '\0')
    unlink(tmp);
  return ret;
}
