#include "leftovers.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A stale step group's processes may take a moment to exit after SIGKILL. */
#define BUSY_RETRIES 50
#define BUSY_WAIT_NS (10 * 1000 * 1000)

/* ---- run directories ----------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void detach_step_mounts(const char *dir) {
  char *steps = xasprintf("%s/steps", dir);
  DIR *sd = opendir(steps);
  struct dirent *se;
  while (sd != NULL && (se = readdir(sd)) != NULL) {
    if (se->d_name[0] == '.')
      continue;
    char *step = xasprintf("%s/%s", steps, se->d_name);
    (void)umount2(step, MNT_DETACH);
    free(step);
  }
  if (sd != NULL)
    closedir(sd);
  free(steps);
}

/* The directory is first renamed to a name of our own: of two runs
 * sweeping at once, only the one whose rename succeeded removes and
 * reports it. */
static bool remove_stale_run_dir(const char *tmp_dir, const char *name, long pid, FILE *log) {
  char *dir = xasprintf("%s/%s", tmp_dir, name);
  char *claimed = xasprintf("%s/.exitprobe-sweep-%ld-%s", tmp_dir, (long)getpid(), name);
  detach_step_mounts(dir);
  bool removed = rename(dir, claimed) == 0;
  if (removed) {
    nftw(claimed, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (log != NULL)
      fprintf(log, "exitprobe: removed %s, left by exitprobe process %ld, which is gone\n", dir,
              pid);
  }
  free(claimed);
  free(dir);
  return removed;
}

/* A run directory's owner holds an exclusive flock on it for the life of
 * the run (leftovers_make_run_dir); the kernel drops it when the owner dies,
 * whatever PID namespace either side is in. */
size_t leftovers_sweep_run_dirs(const char *tmp_dir, leftovers_keep_fn keep, void *keep_ctx,
                                FILE *log) {
  DIR *d = opendir(tmp_dir);
  if (d == NULL)
    return 0;
  size_t removed = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid = 0, used = 0;
    if (sscanf(e->d_name, "exitprobe-run-%d-%n", &pid, &used) != 1 || used == 0)
      continue;
    int lock_fd = leftovers_lock_if_stale_at(dirfd(d), e->d_name);
    if (lock_fd < 0)
      continue;
    char *dir = xasprintf("%s/%s", tmp_dir, e->d_name);
    bool kept = keep != NULL && keep(dir, keep_ctx);
    free(dir);
    if (!kept && remove_stale_run_dir(tmp_dir, e->d_name, pid, log))
      removed++;
    close(lock_fd);
  }
  closedir(d);
  return removed;
}

int leftovers_make_run_dir(const char *tmp_dir, char *path, size_t path_size, int *lock_fd,
                           ep_error **err) {
  /* Made under a name the sweep ignores, locked, then renamed: the sweep
   * never sees it unlocked. */
  char *fresh = xasprintf("%s/.exitprobe-new-%d-XXXXXX", tmp_dir, (int)getpid());
  int fd = -1, rc = -1;
  if (mkdtemp(fresh) == NULL) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create a work directory in %s",
                       tmp_dir);
    goto out;
  }
  const char *suffix = strrchr(fresh, '-') + 1;
  if ((size_t)snprintf(path, path_size, "%s/exitprobe-run-%d-%s", tmp_dir, (int)getpid(),
                       suffix) >= path_size) {
    ep_error_set(err, EP_EXIT_INTERNAL, "work directory name too long");
    goto remove_fresh;
  }
  fd = open(fresh, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || flock(fd, LOCK_EX) < 0 ||
      renameat2(AT_FDCWD, fresh, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot set up the work directory %s",
                       path);
    goto remove_fresh;
  }
  *lock_fd = fd;
  fd = -1;
  rc = 0;
  goto out;
remove_fresh:
  rmdir(fresh);
out:
  if (fd >= 0)
    close(fd);
  free(fresh);
  return rc;
}

/* ---- cgroups ------------------------------------------------------------- */

/* The pid in "<run>-<pid>", for the message only (0 when the name has none). */
static long run_group_pid(const char *name) {
  const char *dash = strrchr(name, '-');
  if (dash == NULL || dash[1] == '\0')
    return 0;
  char *end = NULL;
  long pid = strtol(dash + 1, &end, 10);
  return *end == '\0' ? pid : 0;
}

int leftovers_lock_if_stale_at(int dir_fd, const char *name) {
  int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int leftovers_lock_new_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat opened, named;
  /* A sweep that locked it first (it was still unlocked) may have removed
   * it: the lock must be on the directory that bears the name. */
  if (flock(fd, LOCK_EX) < 0 || fstat(fd, &opened) < 0 || stat(path, &named) < 0 ||
      opened.st_ino != named.st_ino || opened.st_dev != named.st_dev) {
    close(fd);
    return -1;
  }
  return fd;
}

/* SIGKILL to every process listed in a group's cgroup.procs. */
static size_t kill_members(int group_fd) {
  int fd = openat(group_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
  if (f == NULL) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  size_t killed = 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
      killed++;
  fclose(f);
  return killed;
}

/* rmdir, waiting out EBUSY while killed members exit; true when this call
 * removed it (ENOENT: someone else did). */
static bool rmdir_at(int dir_fd, const char *name) {
  struct timespec pause = {0, BUSY_WAIT_NS};
  for (int i = 0; i < BUSY_RETRIES; i++) {
    if (unlinkat(dir_fd, name, AT_REMOVEDIR) == 0)
      return true;
    if (errno != EBUSY)
      return false;
    nanosleep(&pause, NULL);
  }
  return false;
}

/* The step groups below a stale run group, then the group itself; true
 * when this call removed the run group. */
static bool remove_stale_group(int base_fd, const char *name, size_t *steps, size_t *killed) {
  int run_fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *rd = run_fd >= 0 ? fdopendir(run_fd) : NULL;
  if (rd == NULL) {
    if (run_fd >= 0)
      close(run_fd);
    return false;
  }
  struct dirent *se;
  while ((se = readdir(rd)) != NULL) {
    if (se->d_type != DT_DIR || se->d_name[0] == '.')
      continue;
    int step_fd = openat(dirfd(rd), se->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (step_fd >= 0) {
      *killed += kill_members(step_fd);
      close(step_fd);
    }
    if (rmdir_at(dirfd(rd), se->d_name))
      (*steps)++;
  }
  *killed += kill_members(dirfd(rd));
  closedir(rd);
  return rmdir_at(base_fd, name);
}

/* The base directory, opened and flock'ed (shared or exclusive), if it is
 * still the one at path; -1 otherwise. */
static int lock_base(const char *path, int how) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat opened, named;
  if (flock(fd, how) < 0 || fstat(fd, &opened) < 0 || stat(path, &named) < 0 ||
      opened.st_ino != named.st_ino || opened.st_dev != named.st_dev) {
    close(fd);
    return -1;
  }
  return fd;
}

int leftovers_hold_cgroup_base(const char *base) { return lock_base(base, LOCK_SH); }

size_t leftovers_sweep_cgroups(const char *base, FILE *log) {
  /* Exclusive on the base: no run is between making its group and locking it. */
  int base_lock = lock_base(base, LOCK_EX);
  if (base_lock < 0)
    return 0;
  DIR *d = fdopendir(base_lock);
  if (d == NULL) {
    close(base_lock);
    return 0;
  }
  size_t removed = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_type != DT_DIR || de->d_name[0] == '.')
      continue;
    int lock_fd = leftovers_lock_if_stale_at(dirfd(d), de->d_name);
    if (lock_fd < 0)
      continue; /* live: its run holds the lock */
    long pid = run_group_pid(de->d_name);
    size_t steps = 0, killed = 0;
    bool gone = remove_stale_group(dirfd(d), de->d_name, &steps, &killed);
    int saved = errno;
    close(lock_fd);
    if (!gone) {
      if (log != NULL && saved != ENOENT)
        fprintf(log, "exitprobe: cannot remove the stale cgroup %s/%s: %s\n", base, de->d_name,
                strerror(saved));
      continue;
    }
    removed++;
    if (log == NULL)
      continue;
    fprintf(log, "exitprobe: removed cgroup %s/%s (%zu step group%s", base, de->d_name, steps,
            steps == 1 ? "" : "s");
    if (killed > 0)
      fprintf(log, ", %zu process%s killed", killed, killed == 1 ? "" : "es");
    if (pid > 0)
      fprintf(log, "), left by exitprobe process %ld, which is gone\n", pid);
    else
      fprintf(log, "), left by a run that is gone\n");
  }
  closedir(d);
  return removed;
}
