#include "cgroup.h"
#include "leftovers.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libcgroup.h>
#include <linux/magic.h>
#include <mntent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 150
/* How long a step's groups may stay busy after its init has been reaped.
 * The PID namespace is empty by then, so this only covers stragglers
 * (processes someone else moved in) and the kernel finishing exits. */
#define DESTROY_TIMEOUT_MS 2000
#define FINAL_DESTROY_TIMEOUT_MS 5000
/* Idle groups kept for reuse: as many as steps ever ran at once, up to this. */
#define POOL_MAX 64
/* How long a released group may take to empty before it is discarded. */
#define POOL_EMPTY_TIMEOUT_MS 20
/* Memory still charged to an empty group (kernel objects, page cache of
 * files a step wrote to a host directory) beyond which it is reclaimed, and
 * if that fails the group is not reused: it would count against the next
 * step's limit and show in its peak. */
#define POOL_MAX_RESIDUAL (2 * 1024 * 1024)

enum cg_kind { CG_MEMORY_V1, CG_PIDS_V1, CG_FREEZER_V1, CG_UNIFIED };

static const char *const kind_names[] = {
    [CG_MEMORY_V1] = "memory (v1)",
    [CG_PIDS_V1] = "pids (v1)",
    [CG_FREEZER_V1] = "freezer (v1)",
    [CG_UNIFIED] = "cgroup2",
};

struct cg_hier {
  enum cg_kind kind;
  char *base_path; /* <mount><own>/exitprobe: removed at the end if empty */
  char *run_path;  /* <base_path>/<run>-<pid> */
  int run_fd;      /* O_PATH directory of run_path: steps are made relative to it */
  int lock_fd;     /* run_path, flock'ed while the run lives (leftovers.h) */
  bool created_base;
  bool has_memsw;  /* v1: memory.memsw.* exist (swap accounting on) */
  bool v2_memory;  /* cgroup2: memory controller enabled for step groups */
  bool v2_pids;
  bool v2_swap;    /* cgroup2: memory.swap.max exists */
  bool has_kill;   /* cgroup2: cgroup.kill */
  bool has_freeze; /* cgroup2: cgroup.freeze */
};

struct ep_cg_manager {
  struct cg_hier h[EP_CG_MAX_GROUPS];
  size_t n;
  struct ep_cg_info info;
  char **notes;
  size_t n_notes;
  struct ep_cg_step *steps; /* live step groups, for the final sweep */
  struct ep_cg_step *idle;  /* pooled groups between steps: empty, limits as last written */
  size_t n_idle;
  pid_t owner;    /* the pool is this process's: a forked controller makes fresh groups */
  bool poolable;  /* every counter a step reports can be reset or taken as a delta */
  unsigned long seq;
};

struct ep_cg_step {
  struct ep_cg_step *prev, *next;
  const struct ep_cg_manager *m;
  char *name;
  int dir_fd[EP_CG_MAX_GROUPS];  /* O_PATH; -1: not created, or already removed */
  int join_fd[EP_CG_MAX_GROUPS]; /* v1: "tasks"; cgroup2: cgroup.procs (fallback) */
  int into_fd;                   /* cgroup2 directory for CLONE_INTO_CGROUP */
  char *path[EP_CG_MAX_GROUPS];
  bool pooled;               /* a reusable group: released to m->idle, not removed */
  bool dirty;                /* frozen once: not reused */
  struct ep_cg_limits cur;   /* as written in the groups */
  uint64_t base_oom_kills;   /* counters at the start of the step (v1's cannot be reset) */
  uint64_t base_pids_max_hits;
};

/* What discovery found: mount points and our own path per hierarchy. */
struct layout {
  char *mount[3]; /* memory, pids, freezer; NULL when not mounted */
  bool is_v2[3];  /* that controller lives in the cgroup2 hierarchy */
  char *v2_mount;
  char *own_v1[3];
  char *own_v2;
};

static const char *const ctrl_names[3] = {"memory", "pids", "freezer"};
enum { CTRL_MEMORY, CTRL_PIDS, CTRL_FREEZER };



static void add_note(struct ep_cg_manager *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_note(struct ep_cg_manager *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  va_end(ap);
  char **n = realloc(m->notes, (m->n_notes + 1) * sizeof(*n));
  if (n == NULL)
    abort();
  m->notes = n;
  m->notes[m->n_notes++] = s;
}

/* Cgroup names become directory names: keep them to a safe alphabet. */
static void sanitize_name(const char *in, char *out, size_t size) {
  size_t j = 0;
  for (size_t i = 0; in != NULL && in[i] != '\0' && j + 1 < size; i++) {
    char c = in[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (c == '.' && j > 0);
    out[j++] = ok ? c : '_';
  }
  if (j == 0 && size > 1)
    out[j++] = '_';
  out[j] = '\0';
}

static int write_at(int dirfd, const char *file, const char *value) {
  int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = strlen(value);
  ssize_t w = write(fd, value, len);
  int rc = w == (ssize_t)len ? 0 : (w < 0 ? -errno : -EIO);
  close(fd);
  return rc;
}

/* Reads a small control file; returns bytes read (NUL-terminated) or -errno. */
static ssize_t read_at(int dirfd, const char *file, char *buf, size_t size) {
  int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t got = 0;
  while (got + 1 < size) {
    ssize_t r = read(fd, buf + got, size - 1 - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  buf[got] = '\0';
  close(fd);
  return (ssize_t)got;
}

/* Value of "key N" in a flat-keyed control file (memory.events, pids.events...). */
static bool keyed_value(const char *text, const char *key, uint64_t *value) {
  size_t klen = strlen(key);
  for (const char *line = text; line != NULL && *line != '\0';) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
      *value = strtoull(line + klen + 1, NULL, 10);
      return true;
    }
    line = strchr(line, '\n');
    if (line != NULL)
      line++;
  }
  return false;
}

static bool read_u64_at(int dirfd, const char *file, uint64_t *value) {
  char buf[64];
  if (read_at(dirfd, file, buf, sizeof(buf)) <= 0)
    return false;
  *value = strtoull(buf, NULL, 10);
  return true;
}

static bool fs_is(const char *path, long magic) {
  struct statfs sf;
  return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void silent_logger(void *userdata, int level, const char *fmt, va_list ap) {
  (void)userdata;
  (void)level;
  (void)fmt;
  (void)ap;
}

/* libcgroup knows where each controller is mounted (v1, or the cgroup2 mount
 * when the controller is on v2).  It does not report a cgroup2 hierarchy
 * without controllers, so that one is looked up in the mount table. */
static void discover_mounts(struct ep_cg_manager *m, struct layout *l) {
  /* libcgroup's default logger prints to stdout, which is the report's. */
  cgroup_set_logger(silent_logger, CGROUP_LOG_ERROR, NULL);
  int rc = cgroup_init();
  if (rc != 0) {
    add_note(m, "libcgroup: cgroup_init: %s", cgroup_strerror(rc));
  } else {
    for (int c = 0; c < 3; c++) {
      char *mp = NULL;
      if (cgroup_get_subsys_mount_point(ctrl_names[c], &mp) == 0 && mp != NULL) {
        if (fs_is(mp, CGROUP_SUPER_MAGIC)) {
          l->mount[c] = mp;
          mp = NULL;
        } else if (fs_is(mp, CGROUP2_SUPER_MAGIC)) {
          l->is_v2[c] = true;
        }
      }
      free(mp);
    }
  }
  FILE *f = setmntent("/proc/self/mounts", "re");
  if (f == NULL)
    return;
  struct mntent *me;
  while ((me = getmntent(f)) != NULL) {
    if (strcmp(me->mnt_type, "cgroup2") == 0) {
      l->v2_mount = xstrdup(me->mnt_dir);
      break;
    }
  }
  endmntent(f);
}

static bool list_has(const char *list, const char *item) {
  size_t n = strlen(item);
  for (const char *p = list; p != NULL && *p != '\0';) {
    if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == ':' || p[n] == '\0' ||
                                      p[n] == ' ' || p[n] == '\n'))
      return true;
    p = strpbrk(p, ", ");
    if (p != NULL)
      p++;
  }
  return false;
}

/* Our own place in each hierarchy ("4:memory:/process_api/<hash>", "0::/"). */
static void discover_own_paths(struct layout *l) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (f == NULL)
    return;
  char line[4096];
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL)
      continue;
    *c2 = '\0';
    const char *ctrls = c1 + 1;
    const char *path = c2 + 1;
    if (strcmp(line, "0") == 0 && *ctrls == '\0') {
      free(l->own_v2);
      l->own_v2 = xstrdup(path);
      continue;
    }
    for (int c = 0; c < 3; c++) {
      if (list_has(ctrls, ctrl_names[c])) {
        free(l->own_v1[c]);
        l->own_v1[c] = xstrdup(path);
      }
    }
  }
  fclose(f);
}

static void layout_free(struct layout *l) {
  for (int c = 0; c < 3; c++) {
    free(l->mount[c]);
    free(l->own_v1[c]);
  }
  free(l->v2_mount);
  free(l->own_v2);
}

/* <mount><own>, or the mount root when our path is not visible there (a
 * container that bind-mounts its own subtree without a cgroup namespace). */
static char *own_dir(struct ep_cg_manager *m, const char *mount, const char *own,
                     const char *what) {
  if (own == NULL || strcmp(own, "/") == 0)
    return xstrdup(mount);
  char *dir = xasprintf("%s%s", mount, own);
  if (is_dir(dir))
    return dir;
  add_note(m, "%s: own cgroup %s not visible under %s; using the mount root", what, own, mount);
  free(dir);
  return xstrdup(mount);
}

static int enable_v2_controller(const char *dir, const char *ctrl) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
  FILE *f = fopen(path, "re");
  if (f != NULL) {
    char buf[512] = "";
    bool have = fgets(buf, sizeof(buf), f) != NULL && list_has(buf, ctrl);
    fclose(f);
    if (have)
      return 0;
  }
  char val[64];
  snprintf(val, sizeof(val), "+%s", ctrl);
  return write_at(AT_FDCWD, path, val);
}

/* On cgroup2 a controller reaches our step groups only if every ancestor
 * from our own cgroup down enables it; our own cgroup holds processes (us),
 * so unless it is the root the kernel refuses ("no internal processes"). */
static void enable_v2_controllers(struct ep_cg_manager *m, struct cg_hier *h, const char *own,
                                  const struct layout *l) {
  for (int c = CTRL_MEMORY; c <= CTRL_PIDS; c++) {
    if (!l->is_v2[c])
      continue;
    const char *dirs[] = {own, h->base_path, h->run_path};
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++)
      rc = enable_v2_controller(dirs[i], ctrl_names[c]);
    if (rc < 0) {
      add_note(m,
               "cgroup2: cannot enable %s for step groups below %s (%s): %s limits off "
               "(run exitprobe in a cgroup with no other processes, or as the root cgroup)",
               ctrl_names[c], own, strerror(-rc), ctrl_names[c]);
      continue;
    }
    if (c == CTRL_MEMORY)
      h->v2_memory = true;
    else
      h->v2_pids = true;
  }
}

static void rmdir_quiet(const char *path) {
  if (path != NULL)
    (void)rmdir(path);
}

/* Creates <dir>/exitprobe/<run_dir> and locks it for the life of the run
 * (leftovers.h: the lock, not the pid in the name, tells a sweep that the
 * run is live); false (with a note) when unusable. */
static bool hier_open(struct ep_cg_manager *m, struct cg_hier *h, enum cg_kind kind,
                      const char *dir, const char *run_dir) {
  memset(h, 0, sizeof(*h));
  h->kind = kind;
  h->run_fd = -1;
  h->lock_fd = -1;
  h->base_path = xasprintf("%s/exitprobe", dir);
  h->run_path = xasprintf("%s/%s", h->base_path, run_dir);
  /* Another run may remove the shared "exitprobe" between our two mkdirs,
   * or sweep our group in the instant before we lock it: try again. */
  for (int attempt = 0; attempt < 5 && h->lock_fd < 0; attempt++) {
    if (mkdir(h->base_path, 0755) == 0)
      h->created_base = true;
    else if (errno != EEXIST)
      goto fail;
    /* Groups of runs that were killed before they could remove them. */
    leftovers_sweep_cgroups(h->base_path, stderr);
    int base_lock = leftovers_hold_cgroup_base(h->base_path);
    if (base_lock < 0)
      continue;
    if (mkdir(h->run_path, 0755) == 0) {
      h->lock_fd = leftovers_lock_new_dir(h->run_path);
    } else if (errno == EEXIST) {
      /* Live and of the same name: a run with our pid in another PID namespace. */
      free(h->run_path);
      h->run_path = xasprintf("%s/%s.%d", h->base_path, run_dir, attempt + 2);
    } else if (errno != ENOENT) {
      close(base_lock);
      goto fail;
    }
    close(base_lock);
  }
  if (h->lock_fd < 0)
    goto fail;
  h->run_fd = open(h->run_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (h->run_fd < 0)
    goto fail;
  return true;
fail:
  add_note(m, "%s: cannot create %s: %s", kind_names[kind], h->run_path, strerror(errno));
  if (h->lock_fd >= 0)
    close(h->lock_fd);
  h->lock_fd = -1;
  rmdir_quiet(h->run_path);
  if (h->created_base)
    rmdir_quiet(h->base_path);
  free(h->base_path);
  free(h->run_path);
  h->base_path = h->run_path = NULL;
  return false;
}

static void hier_close(struct cg_hier *h) {
  if (h->run_fd >= 0)
    close(h->run_fd);
  h->run_fd = -1;
  if (h->run_path != NULL) {
    for (int i = 0; i < 50 && rmdir(h->run_path) < 0 && errno == EBUSY; i++)
      usleep(10000);
  }
  if (h->lock_fd >= 0)
    close(h->lock_fd); /* after the rmdir: never unlocked while it exists */
  h->lock_fd = -1;
  /* Other runs may share "exitprobe": only removed when empty. */
  rmdir_quiet(h->base_path);
  free(h->base_path);
  free(h->run_path);
  h->base_path = h->run_path = NULL;
}

static void add_v1(struct ep_cg_manager *m, const struct layout *l, int ctrl, enum cg_kind kind,
                   const char *run_dir) {
  if (l->mount[ctrl] == NULL)
    return;
  char *dir = own_dir(m, l->mount[ctrl], l->own_v1[ctrl], kind_names[kind]);
  struct cg_hier *h = &m->h[m->n];
  if (hier_open(m, h, kind, dir, run_dir)) {
    if (kind == CG_MEMORY_V1)
      h->has_memsw = faccessat(h->run_fd, "memory.memsw.limit_in_bytes", F_OK, 0) == 0;
    m->n++;
  }
  free(dir);
}

static void add_v2(struct ep_cg_manager *m, const struct layout *l, const char *run_dir) {
  if (l->v2_mount == NULL)
    return;
  char *dir = own_dir(m, l->v2_mount, l->own_v2, kind_names[CG_UNIFIED]);
  struct cg_hier *h = &m->h[m->n];
  if (hier_open(m, h, CG_UNIFIED, dir, run_dir)) {
    enable_v2_controllers(m, h, dir, l);
    h->has_kill = faccessat(h->run_fd, "cgroup.kill", F_OK, 0) == 0;
    h->has_freeze = faccessat(h->run_fd, "cgroup.freeze", F_OK, 0) == 0;
    /* memory.swap.max appears in the children once memory is enabled here. */
    h->v2_swap = h->v2_memory && faccessat(h->run_fd, "memory.swap.max", F_OK, 0) == 0;
    m->n++;
  }
  free(dir);
}

static const struct cg_hier *find_kind(const struct ep_cg_manager *m, enum cg_kind kind) {
  for (size_t i = 0; i < m->n; i++)
    if (m->h[i].kind == kind)
      return &m->h[i];
  return NULL;
}

static enum sandbox_cgroup_mode layout_mode(const struct layout *l) {
  bool v1 = l->mount[CTRL_MEMORY] != NULL || l->mount[CTRL_PIDS] != NULL ||
            l->mount[CTRL_FREEZER] != NULL;
  if (v1)
    return l->v2_mount != NULL ? SANDBOX_CGROUP_HYBRID : SANDBOX_CGROUP_V1;
  return l->v2_mount != NULL ? SANDBOX_CGROUP_V2 : SANDBOX_CGROUP_NONE;
}

static void summarize(struct ep_cg_manager *m, const struct layout *l) {
  const struct cg_hier *mem1 = find_kind(m, CG_MEMORY_V1);
  const struct cg_hier *pids1 = find_kind(m, CG_PIDS_V1);
  const struct cg_hier *frz1 = find_kind(m, CG_FREEZER_V1);
  const struct cg_hier *v2 = find_kind(m, CG_UNIFIED);
  struct ep_cg_info *in = &m->info;
  in->memory = mem1 != NULL || (v2 != NULL && v2->v2_memory);
  in->pids = pids1 != NULL || (v2 != NULL && v2->v2_pids);
  in->freezer = frz1 != NULL || (v2 != NULL && v2->has_freeze);
  in->kill = v2 != NULL && v2->has_kill;
  in->mode = m->n == 0 ? SANDBOX_CGROUP_NONE : layout_mode(l);

  if (!in->memory && !l->is_v2[CTRL_MEMORY] && l->mount[CTRL_MEMORY] == NULL)
    add_note(m, "no memory controller (not mounted on v1, not offered by cgroup2): memory "
                "limits and OOM detection off");
  if (!in->pids && !l->is_v2[CTRL_PIDS] && l->mount[CTRL_PIDS] == NULL)
    add_note(m, "no pids controller (not mounted on v1, not offered by cgroup2): pids limits off");
  static const char *const mode_names[] = {"none", "v1", "hybrid", "v2"};
  if (m->n == 0) {
    add_note(m, "cgroup none: no memory/pids limits, no freezer; a step's processes end with "
                "its PID namespace%s",
             geteuid() != 0 ? " (creating cgroups needs root)" : "");
    return;
  }
  add_note(m, "cgroup %s: memory limit %s, pids limit %s, kill via %s, freeze via %s",
           mode_names[in->mode],
           mem1 != NULL ? "via v1" : in->memory ? "via cgroup2" : "unavailable",
           pids1 != NULL ? "via v1" : in->pids ? "via cgroup2" : "unavailable",
           in->kill ? "cgroup2 cgroup.kill" : "pid-namespace init + cgroup.procs",
           v2 != NULL && v2->has_freeze ? "cgroup2 cgroup.freeze"
           : frz1 != NULL               ? "v1 freezer.state"
                                        : "unavailable");
  if (mem1 != NULL && !mem1->has_memsw)
    add_note(m, "cgroup v1 memory: no memory.memsw.* (swap accounting off): swap use not limited");
}

int ep_cg_manager_new(const char *run_name, struct ep_cg_manager **out, ep_error **err) {
  (void)err; /* nothing here is fatal: unusable hierarchies are noted and skipped */
  struct ep_cg_manager *m = calloc(1, sizeof(*m));
  if (m == NULL)
    abort();
  char clean[NAME_MAX_LEN + 1];
  sanitize_name(run_name != NULL && *run_name != '\0' ? run_name : "run", clean, 101);
  char *run_dir = xasprintf("%s-%ld", clean, (long)getpid());

  struct layout l = {0};
  discover_mounts(m, &l);
  discover_own_paths(&l);
  add_v1(m, &l, CTRL_MEMORY, CG_MEMORY_V1, run_dir);
  add_v1(m, &l, CTRL_PIDS, CG_PIDS_V1, run_dir);
  add_v2(m, &l, run_dir);
  /* The v1 freezer costs another mkdir per step: only when cgroup2 cannot freeze. */
  const struct cg_hier *v2 = find_kind(m, CG_UNIFIED);
  if (v2 == NULL || !v2->has_freeze)
    add_v1(m, &l, CTRL_FREEZER, CG_FREEZER_V1, run_dir);
  summarize(m, &l);
  /* cgroup2's memory.peak cannot be reset before 6.12 (and then only per
   * open file): with memory on cgroup2 every step gets fresh groups. */
  v2 = find_kind(m, CG_UNIFIED);
  m->poolable = m->n > 0 && (v2 == NULL || !v2->v2_memory);
  m->owner = getpid();
  layout_free(&l);
  free(run_dir);
  *out = m;
  return 0;
}

const struct ep_cg_info *ep_cg_manager_info(const struct ep_cg_manager *m) { return &m->info; }

const char *const *ep_cg_manager_notes(const struct ep_cg_manager *m, size_t *n) {
  *n = m->n_notes;
  return (const char *const *)m->notes;
}

static void limit_text(char *buf, size_t size, bool unlimited, uint64_t v, const char *none) {
  if (unlimited)
    snprintf(buf, size, "%s", none);
  else
    snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every
 * moment: raise memsw first, lower it last. */
static int write_v1_memory(const struct cg_hier *h, int dirfd, uint64_t old, uint64_t lim) {
  char val[32];
  limit_text(val, sizeof(val), lim == 0, lim, "-1");
  bool raising = lim == 0 || (old != 0 && lim > old);
  if (raising && h->has_memsw)
    (void)write_at(dirfd, "memory.memsw.limit_in_bytes", val);
  int rc = write_at(dirfd, "memory.limit_in_bytes", val);
  /* memory+swap: without it a step could page out past its limit. */
  if (rc == 0 && !raising && h->has_memsw)
    (void)write_at(dirfd, "memory.memsw.limit_in_bytes", val);
  return rc;
}

/* Writes what differs between the limits in force (old; a fresh group has
 * none: {0, -1}) and the step's. */
static int write_limits(const struct cg_hier *h, int dirfd, const struct ep_cg_limits *old,
                        const struct ep_cg_limits *lim) {
  char val[32];
  bool mem = old->memory != lim->memory;
  bool pids = (old->pids < 0 ? -1 : old->pids) != (lim->pids < 0 ? -1 : lim->pids);
  int rc = 0;
  switch (h->kind) {
  case CG_MEMORY_V1:
    if (mem)
      rc = write_v1_memory(h, dirfd, old->memory, lim->memory);
    break;
  case CG_PIDS_V1:
    if (pids) {
      limit_text(val, sizeof(val), lim->pids < 0, (uint64_t)lim->pids, "max");
      rc = write_at(dirfd, "pids.max", val);
    }
    break;
  case CG_UNIFIED:
    if (h->v2_memory && mem) {
      limit_text(val, sizeof(val), lim->memory == 0, lim->memory, "max");
      rc = write_at(dirfd, "memory.max", val);
      if (rc == 0 && h->v2_swap && old->memory == 0)
        (void)write_at(dirfd, "memory.swap.max", "0");
    }
    if (rc == 0 && h->v2_pids && pids) {
      limit_text(val, sizeof(val), lim->pids < 0, (uint64_t)lim->pids, "max");
      rc = write_at(dirfd, "pids.max", val);
    }
    break;
  case CG_FREEZER_V1:
    break;
  }
  return rc;
}

static struct ep_cg_step *step_alloc(const struct ep_cg_manager *m) {
  struct ep_cg_step *s = calloc(1, sizeof(*s));
  if (s == NULL)
    abort();
  s->m = m;
  for (size_t i = 0; i < EP_CG_MAX_GROUPS; i++)
    s->dir_fd[i] = s->join_fd[i] = -1;
  s->into_fd = -1;
  return s;
}

static void link_step(struct ep_cg_manager *m, struct ep_cg_step *s) {
  s->prev = NULL;
  s->next = m->steps;
  if (m->steps != NULL)
    m->steps->prev = s;
  m->steps = s;
}

static void unlink_step(struct ep_cg_manager *m, struct ep_cg_step *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else if (m->steps == s)
    m->steps = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void close_join_fds(struct ep_cg_step *s) {
  for (size_t i = 0; i < EP_CG_MAX_GROUPS; i++) {
    if (s->join_fd[i] >= 0)
      close(s->join_fd[i]);
    s->join_fd[i] = -1;
  }
  if (s->into_fd >= 0)
    close(s->into_fd);
  s->into_fd = -1;
}

static void step_free(struct ep_cg_step *s) {
  close_join_fds(s);
  for (size_t i = 0; i < EP_CG_MAX_GROUPS; i++) {
    if (s->dir_fd[i] >= 0)
      close(s->dir_fd[i]);
    free(s->path[i]);
  }
  free(s->name);
  free(s);
}

/* What the child needs to join the groups; closed again once it exists. */
static int open_join_fds(struct ep_cg_step *s) {
  for (size_t i = 0; i < s->m->n; i++) {
    const struct cg_hier *h = &s->m->h[i];
    bool v2 = h->kind == CG_UNIFIED;
    s->join_fd[i] = openat(s->dir_fd[i], v2 ? "cgroup.procs" : "tasks", O_WRONLY | O_CLOEXEC);
    if (s->join_fd[i] < 0)
      return -errno;
    if (v2) {
      s->into_fd = openat(h->run_fd, s->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (s->into_fd < 0)
        return -errno;
    }
  }
  return 0;
}

/* Creates the group in every hierarchy; -EEXIST means: pick another name. */
static int step_mkdirs(struct ep_cg_step *s, const struct ep_cg_limits *lim, const char **what) {
  static const struct ep_cg_limits unlimited = {.memory = 0, .pids = -1};
  const struct ep_cg_manager *m = s->m;
  for (size_t i = 0; i < m->n; i++) {
    const struct cg_hier *h = &m->h[i];
    *what = kind_names[h->kind];
    if (mkdirat(h->run_fd, s->name, 0755) < 0)
      return -errno;
    s->path[i] = xasprintf("%s/%s", h->run_path, s->name);
    s->dir_fd[i] = openat(h->run_fd, s->name, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd[i] < 0) {
      int e = errno;
      (void)unlinkat(h->run_fd, s->name, AT_REMOVEDIR);
      return -e;
    }
    int rc = write_limits(h, s->dir_fd[i], &unlimited, lim);
    if (rc < 0)
      return rc;
  }
  return open_join_fds(s);
}

static int step_group(const struct ep_cg_step *s, enum cg_kind kind, const struct cg_hier **h) {
  for (size_t i = 0; i < s->m->n; i++) {
    if (s->m->h[i].kind == kind && s->dir_fd[i] >= 0) {
      if (h != NULL)
        *h = &s->m->h[i];
      return s->dir_fd[i];
    }
  }
  return -1;
}

static int remove_groups(struct ep_cg_step *s, int *first_error);
static int step_teardown(struct ep_cg_step *s, long timeout_ms);
static void read_events(const struct ep_cg_step *s, uint64_t *oom_kills, uint64_t *pids_max_hits);

static bool pool_usable(const struct ep_cg_manager *m) {
  return m->poolable && m->owner == getpid();
}

static struct ep_cg_limits normalized(const struct ep_cg_limits *lim) {
  struct ep_cg_limits l = *lim;
  if (l.pids < 0)
    l.pids = -1;
  return l;
}

/* An idle group made ready for the next step: its limits, peak and
 * failure counts reset, the counters that cannot be reset recorded. */
static int slot_prepare(struct ep_cg_step *s, const struct ep_cg_limits *lim) {
  for (size_t i = 0; i < s->m->n; i++) {
    int rc = write_limits(&s->m->h[i], s->dir_fd[i], &s->cur, lim);
    if (rc < 0)
      return rc;
  }
  s->cur = normalized(lim);
  int fd = step_group(s, CG_MEMORY_V1, NULL);
  if (fd >= 0 && (write_at(fd, "memory.max_usage_in_bytes", "0") < 0 ||
                  write_at(fd, "memory.failcnt", "0") < 0))
    return -EIO;
  read_events(s, &s->base_oom_kills, &s->base_pids_max_hits);
  /* Not kept open between steps: a thousand parallel steps would hold
   * seven descriptors each. */
  int rc = open_join_fds(s);
  if (rc < 0)
    close_join_fds(s);
  return rc;
}

/* Not reusable: removed now, or left to ep_cg_manager_free when busy. */
static void slot_discard(struct ep_cg_manager *m, struct ep_cg_step *s) {
  if (step_teardown(s, DESTROY_TIMEOUT_MS) < 0) {
    link_step(m, s);
    return;
  }
  step_free(s);
}

static struct ep_cg_step *pool_take(struct ep_cg_manager *m, const struct ep_cg_limits *lim) {
  while (m->idle != NULL) {
    struct ep_cg_step *s = m->idle;
    m->idle = s->next;
    s->next = NULL;
    m->n_idle--;
    if (slot_prepare(s, lim) == 0)
      return s;
    slot_discard(m, s);
  }
  return NULL;
}

int ep_cg_step_create(struct ep_cg_manager *m, const char *name, const struct ep_cg_limits *lim,
                      struct ep_cg_step **out, ep_error **err) {
  char clean[NAME_MAX_LEN + 1];
  bool pooled = pool_usable(m) && !lim->fresh;
  if (pooled) {
    struct ep_cg_step *s = pool_take(m, lim);
    if (s != NULL) {
      link_step(m, s);
      *out = s;
      return 0;
    }
    /* Named for the slot, not the step: it will host many. */
    snprintf(clean, sizeof(clean), "slot-%lu", ++m->seq);
  } else {
    sanitize_name(name, clean, sizeof(clean));
  }
  for (int attempt = 0; attempt < 100; attempt++) {
    struct ep_cg_step *s = step_alloc(m);
    s->name = attempt == 0 ? xstrdup(clean) : xasprintf("%s.%lu", clean, ++m->seq);
    const char *what = "";
    int rc = step_mkdirs(s, lim, &what);
    if (rc == 0) {
      s->pooled = pooled;
      s->cur = normalized(lim);
      link_step(m, s);
      *out = s;
      return 0;
    }
    int ignored = 0;
    close_join_fds(s);
    (void)remove_groups(s, &ignored); /* fresh and empty: cannot be busy */
    step_free(s);
    if (rc != -EEXIST)
      return ep_error_set_errno(err, EP_EXIT_INTERNAL, -rc, "creating the %s cgroup for step %s",
                                what, clean);
  }
  return ep_error_set(err, EP_EXIT_INTERNAL, "no free cgroup name for step %s", clean);
}

void ep_cg_step_join(const struct ep_cg_step *s, struct ep_cg_join *j) {
  j->clone_into = s->into_fd;
  j->fallback_fd = -1;
  j->n = 0;
  for (size_t i = 0; i < s->m->n; i++) {
    if (s->join_fd[i] < 0)
      continue;
    if (s->m->h[i].kind == CG_UNIFIED)
      j->fallback_fd = s->join_fd[i];
    else
      j->fds[j->n++] = s->join_fd[i];
  }
}

void ep_cg_step_close_join_fds(struct ep_cg_step *s) { close_join_fds(s); }

const char *ep_cg_step_path(const struct ep_cg_step *s, size_t i) {
  return i < s->m->n ? s->path[i] : NULL;
}

/* The raw counters, since the group was made. */
static void read_events(const struct ep_cg_step *s, uint64_t *oom_kills, uint64_t *pids_max_hits) {
  *oom_kills = *pids_max_hits = 0;
  char buf[1024];
  const struct cg_hier *h = NULL;
  int fd = step_group(s, CG_MEMORY_V1, NULL);
  if (fd >= 0) {
    if (read_at(fd, "memory.oom_control", buf, sizeof(buf)) > 0)
      (void)keyed_value(buf, "oom_kill", oom_kills);
  } else if ((fd = step_group(s, CG_UNIFIED, &h)) >= 0 && h->v2_memory) {
    if (read_at(fd, "memory.events", buf, sizeof(buf)) > 0)
      (void)keyed_value(buf, "oom_kill", oom_kills);
  }
  fd = step_group(s, CG_PIDS_V1, NULL);
  if (fd < 0 && (fd = step_group(s, CG_UNIFIED, &h)) >= 0 && !h->v2_pids)
    fd = -1;
  if (fd >= 0 && read_at(fd, "pids.events", buf, sizeof(buf)) > 0)
    (void)keyed_value(buf, "max", pids_max_hits);
}

/* oom_kill and pids.events cannot be reset: a reused group reports what
 * they gained since slot_prepare.  The peak was reset there (v1); a group
 * whose peak cannot be reset (cgroup2) is never reused. */
void ep_cg_step_stats(const struct ep_cg_step *s, struct ep_cg_stats *st) {
  memset(st, 0, sizeof(*st));
  uint64_t oom = 0, hits = 0;
  read_events(s, &oom, &hits);
  st->oom_kills = oom >= s->base_oom_kills ? oom - s->base_oom_kills : oom;
  st->pids_max_hits = hits >= s->base_pids_max_hits ? hits - s->base_pids_max_hits : hits;
  const struct cg_hier *h = NULL;
  int fd = step_group(s, CG_MEMORY_V1, NULL);
  if (fd >= 0)
    (void)read_u64_at(fd, "memory.max_usage_in_bytes", &st->memory_peak);
  else if ((fd = step_group(s, CG_UNIFIED, &h)) >= 0 && h->v2_memory)
    (void)read_u64_at(fd, "memory.peak", &st->memory_peak);
}

int ep_cg_step_freeze(struct ep_cg_step *s, bool frozen, ep_error **err) {
  const struct cg_hier *h = NULL;
  int fd = step_group(s, CG_UNIFIED, &h);
  int rc;
  if (fd >= 0 && h->has_freeze) {
    rc = write_at(fd, "cgroup.freeze", frozen ? "1" : "0");
  } else if ((fd = step_group(s, CG_FREEZER_V1, NULL)) >= 0) {
    rc = write_at(fd, "freezer.state", frozen ? "FROZEN" : "THAWED");
  } else {
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, ENOTSUP,
                              "freezing step %s: no cgroup freezer on this host", s->name);
  }
  /* A group left frozen would freeze the next step it hosts. */
  if (frozen)
    s->dirty = true;
  if (rc < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, -rc, "%s step %s",
                              frozen ? "freezing" : "thawing", s->name);
  return 0;
}

/* rmdir every group still there; returns how many are busy. */
static int remove_groups(struct ep_cg_step *s, int *first_error) {
  int busy = 0;
  for (size_t i = 0; i < s->m->n; i++) {
    if (s->dir_fd[i] < 0)
      continue;
    if (unlinkat(s->m->h[i].run_fd, s->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
      if (errno == EBUSY) {
        busy++;
        continue;
      }
      if (*first_error == 0)
        *first_error = errno;
      continue;
    }
    close(s->dir_fd[i]);
    s->dir_fd[i] = -1;
  }
  return busy;
}

static void signal_listed(int dirfd, int sig, pid_t except, int *sent) {
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  FILE *f = fdopen(fd, "r");
  if (f == NULL) {
    close(fd);
    return;
  }
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    if (pid > 0 && (pid_t)pid != except && kill((pid_t)pid, sig) == 0 && sent != NULL)
      (*sent)++;
  fclose(f);
}

static void kill_listed(int dirfd) { signal_listed(dirfd, SIGKILL, 0, NULL); }

/* Groups below the run's group that this process did not create (steps of a
 * controller that died): kill what is in them and remove them. */
int ep_cg_manager_sweep_foreign(struct ep_cg_manager *m) {
  int removed = 0;
  for (int round = 0; round < 50; round++) {
    int left = 0;
    for (size_t i = 0; i < m->n; i++) {
      if (m->h[i].run_fd < 0)
        continue;
      int dfd = openat(m->h[i].run_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
      if (d == NULL) {
        if (dfd >= 0)
          close(dfd);
        continue;
      }
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
          continue;
        bool ours = false;
        for (const struct ep_cg_step *s = m->steps; s != NULL && !ours; s = s->next)
          ours = strcmp(s->name, e->d_name) == 0;
        for (const struct ep_cg_step *s = m->idle; s != NULL && !ours; s = s->next)
          ours = strcmp(s->name, e->d_name) == 0;
        if (ours)
          continue;
        int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sub >= 0) {
          kill_listed(sub);
          close(sub);
        }
        if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0)
          removed++;
        else
          left++;
      }
      closedir(d);
    }
    if (left == 0)
      break;
    usleep(2000);
  }
  return removed;
}

int ep_cg_step_signal(const struct ep_cg_step *s, int sig, pid_t except) {
  int sent = 0;
  for (size_t i = 0; i < s->m->n; i++)
    if (s->dir_fd[i] >= 0) {
      signal_listed(s->dir_fd[i], sig, except, &sent);
      return sent; /* every hierarchy holds the same processes: one list is enough */
    }
  return -1;
}

/* cgroup.kill takes the whole group atomically, forks included; without it
 * we read cgroup.procs and kill each, repeated by the caller until empty. */
static void kill_all(const struct ep_cg_step *s) {
  const struct cg_hier *h = NULL;
  int fd = step_group(s, CG_UNIFIED, &h);
  if (fd >= 0 && h->has_kill && write_at(fd, "cgroup.kill", "1") == 0)
    return;
  for (size_t i = 0; i < s->m->n; i++)
    if (s->dir_fd[i] >= 0)
      kill_listed(s->dir_fd[i]);
}

static long elapsed_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Returns 0 when every group is gone, else -errno (EBUSY when time ran out). */
static int step_teardown(struct ep_cg_step *s, long timeout_ms) {
  close_join_fds(s);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long delay_us = 500;
  for (;;) {
    int first_error = 0;
    int busy = remove_groups(s, &first_error);
    if (busy == 0)
      return first_error != 0 ? -first_error : 0;
    if (elapsed_ms(&t0) > timeout_ms)
      return -EBUSY;
    kill_all(s);
    usleep((useconds_t)delay_us);
    if (delay_us < 50000)
      delay_us *= 2;
  }
}

static bool group_empty(const struct ep_cg_step *s) {
  for (size_t i = 0; i < s->m->n; i++) {
    if (s->dir_fd[i] < 0)
      continue;
    char buf[16];
    /* Every hierarchy holds the same processes: one list is enough. */
    return read_at(s->dir_fd[i], "cgroup.procs", buf, sizeof(buf)) == 0;
  }
  return false;
}

/* Whether a released group can host another step: nothing of this one
 * may be left in it (anything found is killed, briefly waited for), and
 * little memory may stay charged to it. */
static bool slot_settle(struct ep_cg_step *s) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long delay_us = 100;
  while (!group_empty(s)) {
    if (elapsed_ms(&t0) > POOL_EMPTY_TIMEOUT_MS)
      return false;
    kill_all(s);
    usleep((useconds_t)delay_us);
    delay_us *= 2;
  }
  uint64_t usage = 0;
  int fd = step_group(s, CG_MEMORY_V1, NULL);
  if (fd < 0 || !read_u64_at(fd, "memory.usage_in_bytes", &usage) || usage <= POOL_MAX_RESIDUAL)
    return true;
  /* Kernel objects and page cache the steps left (~0.1-0.3 MB a step):
   * reclaimed once they add up, rather than giving the set up. */
  (void)write_at(fd, "memory.force_empty", "0");
  return read_u64_at(fd, "memory.usage_in_bytes", &usage) && usage <= POOL_MAX_RESIDUAL;
}

int ep_cg_step_destroy(struct ep_cg_manager *m, struct ep_cg_step *s, ep_error **err) {
  if (s->pooled && !s->dirty && pool_usable(m) && m->n_idle < POOL_MAX && slot_settle(s)) {
    unlink_step(m, s);
    s->next = m->idle;
    m->idle = s;
    m->n_idle++;
    return 0;
  }
  int rc = step_teardown(s, DESTROY_TIMEOUT_MS);
  if (rc < 0) {
    /* Stays on the manager's list: ep_cg_manager_free tries again. */
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, -rc, "removing the cgroups of step %s",
                              s->name);
  }
  unlink_step(m, s);
  step_free(s);
  return 0;
}

void ep_cg_manager_free(struct ep_cg_manager *m) {
  if (m == NULL)
    return;
  while (m->steps != NULL) {
    struct ep_cg_step *s = m->steps;
    (void)step_teardown(s, FINAL_DESTROY_TIMEOUT_MS);
    unlink_step(m, s);
    step_free(s);
  }
  while (m->idle != NULL) {
    struct ep_cg_step *s = m->idle;
    m->idle = s->next;
    /* A forked copy of the manager must not remove its parent's pool. */
    if (m->owner == getpid())
      (void)step_teardown(s, FINAL_DESTROY_TIMEOUT_MS);
    step_free(s);
  }
  for (size_t i = 0; i < m->n; i++)
    hier_close(&m->h[i]);
  for (size_t i = 0; i < m->n_notes; i++)
    free(m->notes[i]);
  free(m->notes);
  free(m);
}

const char *ep_cg_manager_run_path(const struct ep_cg_manager *m, size_t i) {
  size_t k = 0;
  for (size_t j = 0; m != NULL && j < m->n; j++)
    if (m->h[j].run_path != NULL && k++ == i)
      return m->h[j].run_path;
  return NULL;
}

/* A member is signalled through a pidfd opened while it is listed, and only
 * if it is still listed after: a PID recycled between the read of
 * cgroup.procs and the open is not a member, so it is never signalled. */
static int kill_members_by_pidfd(int dirfd) {
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  FILE *f = fdopen(fd, "r");
  if (f == NULL) {
    close(fd);
    return 0;
  }
  long pids[256];
  size_t n = 0;
  long pid;
  while (n < 256 && fscanf(f, "%ld", &pid) == 1)
    pids[n++] = pid;
  fclose(f);
  int killed = 0;
  for (size_t i = 0; i < n; i++) {
    int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pids[i], 0);
    if (pfd < 0)
      continue;
    bool listed = false;
    fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    f = fd >= 0 ? fdopen(fd, "r") : NULL;
    while (f != NULL && !listed && fscanf(f, "%ld", &pid) == 1)
      listed = pid == pids[i];
    if (f != NULL)
      fclose(f);
    else if (fd >= 0)
      close(fd);
    if (listed && syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0)
      killed++;
    close(pfd);
  }
  return killed;
}

static int fence_tree(int group_fd, int *killed, int *busy) {
  int removed = 0;
  if (write_at(group_fd, "cgroup.kill", "1") != 0)
    *killed += kill_members_by_pidfd(group_fd);
  int dup_fd = openat(group_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
  if (d == NULL) {
    if (dup_fd >= 0)
      close(dup_fd);
    return 0;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.')
      continue;
    int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sub < 0)
      continue;
    removed += fence_tree(sub, killed, busy);
    close(sub);
    if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) == 0)
      removed++;
    else if (errno != ENOENT)
      (*busy)++;
  }
  closedir(d);
  return removed;
}

int ep_cg_fence_path(const char *path, int *killed) {
  int removed = 0, dummy = 0;
  if (killed == NULL)
    killed = &dummy;
  for (int round = 0; round < 400; round++) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
      return errno == ENOENT ? removed : -1;
    int busy = 0;
    removed += fence_tree(dfd, killed, &busy);
    close(dfd);
    if (busy == 0 && rmdir(path) == 0)
      return removed + 1;
    if (errno == ENOENT)
      return removed;
    usleep(5000);
  }
  return -1;
}

/* A step group another process of this run made (a controller that died):
 * taken over as if this manager had made it, so that sweeping the rest
 * spares it and destroying it at reap removes it.  Returns 1 when found,
 * 0 when no hierarchy holds a group of that name. */
int ep_cg_step_adopt(struct ep_cg_manager *m, const char *name, struct ep_cg_step **out) {
  char clean[NAME_MAX_LEN + 1];
  sanitize_name(name, clean, sizeof(clean));
  struct ep_cg_step *s = step_alloc(m);
  s->name = xstrdup(clean);
  bool found = false;
  for (size_t i = 0; i < m->n; i++) {
    const struct cg_hier *h = &m->h[i];
    if (h->run_fd < 0)
      continue;
    s->dir_fd[i] = openat(h->run_fd, clean, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd[i] < 0)
      continue;
    s->path[i] = xasprintf("%s/%s", h->run_path, clean);
    found = true;
  }
  if (!found) {
    step_free(s);
    return 0;
  }
  s->cur = (struct ep_cg_limits){.memory = 0, .pids = -1, .fresh = true};
  link_step(m, s);
  *out = s;
  return 1;
}

/* Whether /proc says pid is the init of its own PID namespace (its
 * innermost NSpid is 1). */
static bool is_namespace_init(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  bool init = false;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "NSpid:", 6) != 0)
      continue;
    char *last = strrchr(line, '\t');
    init = last != NULL && strtol(last + 1, NULL, 10) == 1 && strchr(line + 7, '\t') != NULL;
    break;
  }
  fclose(f);
  return init;
}

static bool listed(int dirfd, pid_t want) {
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
  if (f == NULL) {
    if (fd >= 0)
      close(fd);
    return false;
  }
  long pid;
  bool found = false;
  while (!found && fscanf(f, "%ld", &pid) == 1)
    found = (pid_t)pid == want;
  fclose(f);
  return found;
}

int ep_cg_step_find_init(const struct ep_cg_step *s, int *pidfd, pid_t *pid) {
  int dirfd = -1;
  for (size_t i = 0; i < s->m->n && dirfd < 0; i++)
    dirfd = s->dir_fd[i];
  if (dirfd < 0)
    return 0;
  int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
  if (f == NULL) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  long p;
  int found = 0;
  while (!found && fscanf(f, "%ld", &p) == 1) {
    int pfd = (int)syscall(SYS_pidfd_open, (pid_t)p, 0);
    if (pfd < 0)
      continue;
    /* The pidfd pins the process; still listed in the step's group after
     * it was taken, it is the step's and not a recycled PID. */
    if (is_namespace_init((pid_t)p) && listed(dirfd, (pid_t)p)) {
      *pidfd = pfd;
      *pid = (pid_t)p;
      found = 1;
    } else {
      close(pfd);
    }
  }
  fclose(f);
  return found;
}
