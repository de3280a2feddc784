/* Volume mounts in the step's view: see sandbox_binds.h. */
#include "sandbox_binds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Where a root scaffold is built before it is moved onto "/": the step's
 * /tmp is the one writable place of its view that is not a volume. */
#define ROOT_SCAFFOLD "/tmp/.exitprobe-root"
#define SCAFFOLD_OPTS "mode=0755,size=1m"

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int fail(struct bind_failure *why, const char *what, const char *path) {
  why->what = what;
  why->path = path;
  return -1;
}

static void fd_path(char *buf, size_t size, int fd, const char *name) {
  if (name != NULL)
    snprintf(buf, size, "/proc/self/fd/%d/%s", fd, name);
  else
    snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int sandbox_binds_open(const struct sandbox_bind *binds, size_t n, int *fds,
                       struct bind_failure *why) {
  for (size_t i = 0; i < n; i++) {
    /* No link is followed: a step may have planted one in a volume. */
    struct open_how how = {.flags = O_PATH | (binds[i].file ? 0 : O_DIRECTORY) | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    fds[i] = (int)syscall(SYS_openat2, AT_FDCWD, binds[i].host_dir, &how, sizeof(how));
    if (fds[i] < 0)
      return fail(why, "opening the volume directory", binds[i].host_dir);
  }
  return 0;
}

/* mkdir -p; a component that exists is fine. */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof(buf)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
      return -1;
    buf[i] = saved;
  }
  struct stat sb;
  if (stat(path, &sb) < 0)
    return -1;
  if (!S_ISDIR(sb.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* The deepest ancestor of path that exists, into anc. */
static void existing_ancestor(const char *path, char *anc, size_t size) {
  snprintf(anc, size, "%s", path);
  struct stat sb;
  while (strcmp(anc, "/") != 0 && stat(anc, &sb) < 0) {
    char *slash = strrchr(anc, '/');
    if (slash == anc)
      slash[1] = '\0';
    else
      *slash = '\0';
  }
}

/* Recreate every entry of old (a directory descriptor) in dest, each bound
 * from the original: the scaffold shows what was there before. */
static int mirror_entries(int old, const char *dest, struct bind_failure *why) {
  _Alignas(8) char buf[4096];
  const char *prefix = strcmp(dest, "/") == 0 ? "" : dest;
  for (;;) {
    long got = syscall(SYS_getdents64, old, buf, sizeof(buf));
    if (got < 0)
      return fail(why, "reading the directory under", dest);
    if (got == 0)
      return 0;
    for (long off = 0; off < got;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
      off += d->d_reclen;
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
        continue;
      char dst[PATH_MAX], src[PATH_MAX];
      snprintf(dst, sizeof(dst), "%s/%s", prefix, d->d_name);
      struct stat sb;
      if (fstatat(old, d->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        continue; /* gone meanwhile */
      if (S_ISLNK(sb.st_mode)) {
        ssize_t len = readlinkat(old, d->d_name, src, sizeof(src) - 1);
        if (len < 0)
          return fail(why, "reading the link", dst);
        src[len] = '\0';
        if (symlink(src, dst) < 0)
          return fail(why, "recreating the link", dst);
        continue;
      }
      if (S_ISDIR(sb.st_mode)) {
        if (mkdir(dst, 0755) < 0)
          return fail(why, "recreating the directory", dst);
      } else {
        int f = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (f < 0)
          return fail(why, "recreating the file", dst);
        close(f);
      }
      fd_path(src, sizeof(src), old, d->d_name);
      if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        return fail(why, "bind mount", dst);
    }
  }
}

/* A tmpfs over anc (not "/") that looks like anc but accepts new directories. */
static int scaffold_dir(const char *anc, struct bind_failure *why) {
  int old = open(anc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat sb;
  if (old < 0 || fstat(old, &sb) < 0)
    return fail(why, "opening", anc);
  int rc = -1;
  if (mount("tmpfs", anc, "tmpfs", MS_NOSUID | MS_NODEV, SCAFFOLD_OPTS) < 0) {
    fail(why, "mount tmpfs on", anc);
    goto out;
  }
  (void)chmod(anc, sb.st_mode & 07777);
  rc = mirror_entries(old, anc, why);
out:
  close(old);
  return rc;
}

/* "/" itself cannot be covered in place: the scaffold is built in /tmp,
 * moved onto "/" and entered, the way switch_root enters a new root. */
static int scaffold_root(struct bind_failure *why) {
  int old = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (old < 0)
    return fail(why, "opening", "/");
  int rc = -1;
  if (mkdir(ROOT_SCAFFOLD, 0700) < 0 ||
      mount("tmpfs", ROOT_SCAFFOLD, "tmpfs", MS_NOSUID | MS_NODEV, SCAFFOLD_OPTS) < 0) {
    fail(why, "mount tmpfs on", ROOT_SCAFFOLD);
    goto out;
  }
  (void)chmod(ROOT_SCAFFOLD, 0755);
  if (mirror_entries(old, ROOT_SCAFFOLD, why) < 0)
    goto out;
  if (chdir(ROOT_SCAFFOLD) < 0 || mount(ROOT_SCAFFOLD, "/", NULL, MS_MOVE, NULL) < 0 ||
      chroot(".") < 0 || chdir("/") < 0) {
    fail(why, "entering the new root built in", ROOT_SCAFFOLD);
    goto out;
  }
  /* /tmp was mirrored while it held the scaffold: drop that copy. */
  (void)umount2(ROOT_SCAFFOLD, MNT_DETACH);
  (void)rmdir(ROOT_SCAFFOLD);
  rc = 0;
out:
  close(old);
  return rc;
}

/* A directory at target; *scaffold_len > 0 when a scaffold was laid for it
 * (target[0.. len) is the scaffold's path; 1 for "/"). */
static int ensure_mount_point(const char *target, size_t *scaffold_len, struct bind_failure *why) {
  *scaffold_len = 0;
  if (make_dirs(target) == 0)
    return 0;
  if (errno != EROFS && errno != EACCES && errno != EPERM)
    return fail(why, "creating the mount point", target);
  char anc[PATH_MAX];
  existing_ancestor(target, anc, sizeof(anc));
  struct stat sb;
  if (stat(anc, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
    errno = ENOTDIR;
    return fail(why, "creating the mount point", target);
  }
  if ((strcmp(anc, "/") == 0 ? scaffold_root(why) : scaffold_dir(anc, why)) < 0)
    return -1;
  *scaffold_len = strlen(anc);
  if (make_dirs(target) < 0)
    return fail(why, "creating the mount point", target);
  return 0;
}

/* A regular file at target for a file bind: its directory made as above,
 * then the file; on a read-only directory, a scaffold laid over it. */
static int ensure_file_mount_point(const char *target, size_t *scaffold_len,
                                   struct bind_failure *why) {
  struct stat sb;
  *scaffold_len = 0;
  if (stat(target, &sb) == 0) {
    if (S_ISREG(sb.st_mode))
      return 0;
    errno = EISDIR;
    return fail(why, "creating the mount point", target);
  }
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", target);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  if (strcmp(dir, "/") != 0 && ensure_mount_point(dir, scaffold_len, why) < 0)
    return -1;
  int f = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (f < 0 && *scaffold_len == 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
    if ((strcmp(dir, "/") == 0 ? scaffold_root(why) : scaffold_dir(dir, why)) < 0)
      return -1;
    *scaffold_len = strlen(dir);
    f = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  }
  if (f < 0)
    return fail(why, "creating the mount point", target);
  close(f);
  return 0;
}

int sandbox_tree_detach(int *fd) {
  int c = open_tree(*fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (c < 0)
    return -1;
  close(*fd);
  *fd = c;
  return 0;
}

int sandbox_tree_mount(int fd, const char *target, bool detached) {
  if (detached)
    return move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
  char src[64];
  fd_path(src, sizeof(src), fd, NULL);
  return mount(src, target, NULL, MS_BIND, NULL);
}

static int bind_one(const struct sandbox_bind *b, int fd, bool detached,
                    struct bind_failure *why) {
  if (sandbox_tree_mount(fd, b->path, detached) < 0)
    return fail(why, "bind mount", b->path);
  /* The bind copied the read-only flag the root's mounts got before. */
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV;
  if (b->read_only)
    flags |= MS_RDONLY;
  if (mount(NULL, b->path, NULL, flags, NULL) < 0)
    return fail(why, "remounting", b->path);
  return 0;
}

int sandbox_binds_apply(const struct sandbox_bind *binds, size_t n, const int *fds,
                        bool detached, struct bind_failure *why) {
  size_t scaffold[SANDBOX_MAX_BINDS];
  for (size_t i = 0; i < n; i++) {
    int rc = binds[i].file ? ensure_file_mount_point(binds[i].path, &scaffold[i], why)
                           : ensure_mount_point(binds[i].path, &scaffold[i], why);
    if (rc < 0 || bind_one(&binds[i], fds[i], detached, why) < 0)
      return -1;
  }
  /* Scaffolds stay writable until every mount point exists, then not. */
  for (size_t i = 0; i < n; i++) {
    if (scaffold[i] == 0)
      continue;
    char at[PATH_MAX];
    snprintf(at, sizeof(at), "%.*s", (int)scaffold[i], binds[i].path);
    if (scaffold[i] == 1)
      at[0] = '/', at[1] = '\0';
    if (mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      return fail(why, "remounting the scaffold read-only under", binds[i].path);
  }
  return 0;
}
