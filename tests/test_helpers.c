/* Shared helpers for the cmocka tests: paths, temporary files that clean
 * themselves up, running a subprocess with its output captured, and
 * looking at the host's process table.  Failures here print why on stderr
 * and hand the test something it can assert on (NULL, -1), so a broken
 * helper shows up as a failing test rather than a crash. */
#include "test_helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATH_BUFFERS 8
#define TEMP_TEMPLATE "/tmp/exitprobe-test-XXXXXX"

/* ---- paths ------------------------------------------------------------ */

static int join_path(char *buf, size_t size, const char *dir, const char *name)
{
  size_t len = dir ? strlen(dir) : 0;
  const char *sep = (len > 0 && dir[len - 1] != '/') ? "/" : "";
  int n = snprintf(buf, size, "%s%s%s", dir ? dir : "", sep, name ? name : "");
  return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

const char *test_path(const char *dir, const char *name)
{
  static char buffers[PATH_BUFFERS][PATH_MAX];
  static unsigned next;
  char *buf = buffers[next++ % PATH_BUFFERS];

  if (join_path(buf, PATH_MAX, dir, name) < 0) {
    /* A silently truncated path would make a test look at the wrong file. */
    fprintf(stderr, "test_path: path too long: %s/%s\n", dir ? dir : "", name ? name : "");
    abort();
  }
  return buf;
}

static bool is_file(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *test_source_root(void)
{
  const char *env = getenv("EXITPROBE_SOURCE_ROOT");

  if (env && *env)
    return env;
  /* Run by hand from the source root or from a build directory inside it. */
  if (is_file("tests/test_helpers.h"))
    return ".";
  if (is_file("../tests/test_helpers.h"))
    return "..";
  return ".";
}

const char *test_exitprobe_bin(void)
{
  static char buf[PATH_MAX];
  const char *env = getenv("EXITPROBE_BIN");

  if (env && *env)
    return env;
  if (join_path(buf, sizeof buf, test_source_root(), "build/exitprobe") < 0)
    abort();
  return buf;
}

const char *test_data_dir(void)
{
  static char buf[PATH_MAX];
  const char *env = getenv("EXITPROBE_TEST_DATA");

  if (env && *env)
    return env;
  if (join_path(buf, sizeof buf, test_source_root(), "tests/data") < 0)
    abort();
  return buf;
}

/* ---- sandbox availability ---------------------------------------------- */

const char *test_sandbox_unavailable(void)
{
  static char reason[256];
  pid_t pid;
  int status;

  if (geteuid() != 0)
    return "not root: namespaces and cgroups need root";

  /* Try it in a throwaway child: unshare(CLONE_NEWPID) changes what our
   * own later children would be, and the test process must stay as it is. */
  pid = fork();
  if (pid < 0) {
    snprintf(reason, sizeof reason, "fork failed: %s", strerror(errno));
    return reason;
  }
  if (pid == 0)
    _exit(unshare(CLONE_NEWPID | CLONE_NEWNS) == 0 ? 0 : (errno & 0xff));

  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      snprintf(reason, sizeof reason, "waitpid failed: %s", strerror(errno));
      return reason;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return NULL;
  if (WIFEXITED(status))
    snprintf(reason, sizeof reason, "cannot create PID+mount namespaces: %s",
             strerror(WEXITSTATUS(status)));
  else
    snprintf(reason, sizeof reason, "namespace probe died with signal %d",
             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return reason;
}

/* ---- temporary directories ------------------------------------------ */

/* Directories made by this process, removed at exit.  The owner pid keeps
 * a forked child that calls exit() from deleting its parent's files. */
static struct {
  char **dirs;
  size_t count;
  pid_t owner;
} temp_registry;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  if (remove(path) < 0 && errno != ENOENT)
    fprintf(stderr, "test cleanup: cannot remove %s: %s\n", path, strerror(errno));
  return 0; /* keep going: remove as much as we can */
}

static void remove_temp_dirs(void)
{
  bool owner = getpid() == temp_registry.owner;

  for (size_t i = 0; i < temp_registry.count; i++) {
    /* FTW_PHYS: never follow a symlink out of the directory; FTW_MOUNT:
     * never descend into something a test left mounted there. */
    if (owner)
      nftw(temp_registry.dirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    free(temp_registry.dirs[i]);
  }
  free(temp_registry.dirs);
  temp_registry.dirs = NULL;
  temp_registry.count = 0;
}

static const char *register_temp_dir(const char *path)
{
  char **grown;
  char *copy;

  if (temp_registry.owner == 0) {
    temp_registry.owner = getpid();
    if (atexit(remove_temp_dirs) != 0)
      return NULL;
  }
  copy = strdup(path);
  if (!copy)
    return NULL;
  grown = realloc(temp_registry.dirs, (temp_registry.count + 1) * sizeof *grown);
  if (!grown) {
    free(copy);
    return NULL;
  }
  temp_registry.dirs = grown;
  temp_registry.dirs[temp_registry.count++] = copy;
  return copy;
}

const char *test_temp_dir(void)
{
  char path[] = TEMP_TEMPLATE;
  const char *registered;

  if (!mkdtemp(path)) {
    fprintf(stderr, "test_temp_dir: mkdtemp: %s\n", strerror(errno));
    return NULL;
  }
  registered = register_temp_dir(path);
  if (!registered) {
    fprintf(stderr, "test_temp_dir: out of memory\n");
    rmdir(path);
  }
  return registered;
}

/* Create the directories leading to path (for names like "sub/file"). */
static int make_parents(char *path)
{
  for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = '\0';
    int rc = mkdir(path, 0700);
    *p = '/';
    if (rc < 0 && errno != EEXIST)
      return -1;
  }
  return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

const char *test_write_temp(const char *name, const char *text)
{
  const char *dir = test_temp_dir();
  char *path;
  int fd;

  if (!dir)
    return NULL;
  path = (char *)test_path(dir, name);
  if (make_parents(path) < 0) {
    fprintf(stderr, "test_write_temp: mkdir for %s: %s\n", path, strerror(errno));
    return NULL;
  }
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "test_write_temp: open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  if (write_all(fd, text ? text : "", text ? strlen(text) : 0) < 0) {
    fprintf(stderr, "test_write_temp: write %s: %s\n", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (close(fd) < 0) {
    fprintf(stderr, "test_write_temp: close %s: %s\n", path, strerror(errno));
    return NULL;
  }
  return path;
}

/* ---- growable byte buffer ------------------------------------------- */

struct buf {
  char *data;
  size_t len;
  size_t cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
  size_t want = b->len + extra + 1;
  size_t cap = b->cap ? b->cap : 4096;
  char *grown;

  if (want <= b->cap)
    return 0;
  while (cap < want)
    cap *= 2;
  grown = realloc(b->data, cap);
  if (!grown)
    return -1;
  b->data = grown;
  b->cap = cap;
  return 0;
}

/* Always hands back a NUL-terminated string, empty when nothing was read. */
static char *buf_finish(struct buf *b)
{
  if (buf_reserve(b, 0) < 0) {
    free(b->data);
    return strdup("");
  }
  b->data[b->len] = '\0';
  return b->data;
}

/* Read what is there now; returns 1 at EOF, 0 otherwise, -1 on error. */
static int buf_read_some(struct buf *b, int fd)
{
  ssize_t n;

  if (buf_reserve(b, 4096) < 0)
    return -1;
  n = read(fd, b->data + b->len, b->cap - b->len - 1);
  if (n < 0)
    return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
  if (n == 0)
    return 1;
  b->len += (size_t)n;
  return 0;
}

/* ---- running commands ------------------------------------------------ */

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void child_exec(char *const argv[], int out_fd, int err_fd)
{
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

  if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
      dup2(err_fd, STDERR_FILENO) < 0)
    _exit(127);
  /* The test runner may ignore SIGPIPE; the command should see defaults. */
  signal(SIGPIPE, SIG_DFL);
  execvp(argv[0], argv);
  dprintf(STDERR_FILENO, "test_run: exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* Drain both pipes together so a child filling one never blocks on it. */
static int drain_pipes(int out_fd, int err_fd, struct buf *out, struct buf *err)
{
  struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
  struct buf *bufs[2] = {out, err};
  int open_count = 2;

  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      int rc = buf_read_some(bufs[i], fds[i].fd);
      if (rc < 0)
        return -1;
      if (rc == 1) {
        fds[i].fd = -1; /* poll ignores negative fds */
        open_count--;
      }
    }
  }
  return 0;
}

struct test_cmd_result test_run(char *const argv[])
{
  struct test_cmd_result result = {.exit_status = -1};
  struct buf out = {0}, err = {0};
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  pid_t pid = -1;
  int status;

  if (!argv || !argv[0]) {
    fprintf(stderr, "test_run: empty argv\n");
    goto cleanup;
  }
  if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
    fprintf(stderr, "test_run: pipe: %s\n", strerror(errno));
    goto cleanup;
  }
  /* Unwritten stdio would be flushed twice if the child reached exit(). */
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "test_run: fork: %s\n", strerror(errno));
    goto cleanup;
  }
  if (pid == 0)
    child_exec(argv, out_pipe[1], err_pipe[1]);

  close_fd(&out_pipe[1]);
  close_fd(&err_pipe[1]);
  if (drain_pipes(out_pipe[0], err_pipe[0], &out, &err) < 0)
    fprintf(stderr, "test_run: reading output of %s: %s\n", argv[0], strerror(errno));
  /* Close before waiting: a child still writing then gets EPIPE, not a hang. */
  close_fd(&out_pipe[0]);
  close_fd(&err_pipe[0]);

  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "test_run: waitpid: %s\n", strerror(errno));
      goto cleanup;
    }
  }
  if (WIFEXITED(status))
    result.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_status = 128 + WTERMSIG(status);

cleanup:
  close_fd(&out_pipe[0]);
  close_fd(&out_pipe[1]);
  close_fd(&err_pipe[0]);
  close_fd(&err_pipe[1]);
  result.out = buf_finish(&out);
  result.err = buf_finish(&err);
  return result;
}

void test_cmd_result_free(struct test_cmd_result *r)
{
  if (!r)
    return;
  free(r->out);
  free(r->err);
  r->out = NULL;
  r->err = NULL;
}

/* ---- files and processes --------------------------------------------- */

/* Reads to EOF rather than trusting st_size: /proc files report 0. */
static char *read_fd(int fd, size_t *len_out)
{
  struct buf b = {0};
  int rc;

  while ((rc = buf_read_some(&b, fd)) == 0)
    ;
  if (rc < 0) {
    free(b.data);
    return NULL;
  }
  if (len_out)
    *len_out = b.len;
  return buf_finish(&b);
}

char *test_read_file(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  char *text;

  if (fd < 0)
    return NULL;
  text = read_fd(fd, NULL);
  close(fd);
  return text;
}

static bool cmdline_contains(long pid, const char *needle)
{
  char path[64];
  char *cmdline;
  size_t len = 0;
  bool found;
  int fd;

  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false; /* gone already */
  cmdline = read_fd(fd, &len);
  close(fd);
  if (!cmdline)
    return false;
  /* Arguments are NUL-separated; join them with spaces, drop the last NUL. */
  while (len > 0 && cmdline[len - 1] == '\0')
    len--;
  for (size_t i = 0; i < len; i++)
    if (cmdline[i] == '\0')
      cmdline[i] = ' ';
  cmdline[len] = '\0';
  found = len > 0 && strstr(cmdline, needle) != NULL;
  free(cmdline);
  return found;
}

static bool is_pid_name(const char *name)
{
  if (!*name)
    return false;
  for (; *name; name++)
    if (*name < '0' || *name > '9')
      return false;
  return true;
}

int test_count_processes(const char *needle)
{
  DIR *proc = opendir("/proc");
  struct dirent *entry;
  pid_t self = getpid();
  int count = 0;

  if (!proc) {
    fprintf(stderr, "test_count_processes: /proc: %s\n", strerror(errno));
    return -1;
  }
  while ((entry = readdir(proc)) != NULL) {
    if (!is_pid_name(entry->d_name))
      continue;
    long pid = atol(entry->d_name);
    if (pid != (long)self && cmdline_contains(pid, needle))
      count++;
  }
  closedir(proc);
  return count;
}

static int count_dirs_named(const char *dir, const char *prefix, int depth) {
  if (depth == 0)
    return 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.')
      continue;
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      printf("left: cgroup %s\n", sub);
      n++;
    }
    n += count_dirs_named(sub, prefix, depth - 1);
  }
  closedir(d);
  return n;
}

int test_count_cgroups_named(const char *prefix) {
  return count_dirs_named("/sys/fs/cgroup", prefix, 6);
}

int test_count_lines_equal(const char *text, const char *line) {
  int n = 0;
  size_t len = strlen(line);
  for (const char *p = text; p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t this_len = nl ? (size_t)(nl - p) : strlen(p);
    n += this_len == len && strncmp(p, line, len) == 0;
    p = nl ? nl + 1 : NULL;
  }
  return n;
}

void test_run_crash_cell(const char *workflow, const char *at, const char *then,
                         struct test_crash_cell *cell) {
  char text[4096];
  snprintf(text, sizeof(text),
           "apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: crash-cell}\n"
           "spec:\n  workflow: %s\n  timeScale: 0.2\n  faults:\n"
           "  - {action: controller-crash, at: \"%s\", then: %s}\n",
           workflow, at, then);
  const char *scenario = test_write_temp("cell.yaml", text);
  const char *dir = test_temp_dir();
  snprintf(cell->report, sizeof(cell->report), "%s/cell.json", dir);
  snprintf(cell->run_dir, sizeof(cell->run_dir), "%s/run", dir);
  char *argv[] = {(char *)test_exitprobe_bin(), "run", "-q", "--report", cell->report,
                  "--run-dir", cell->run_dir, (char *)scenario, NULL};
  cell->r = test_run(argv);
}
