/* The control FIFO of a running `exitprobe run` (see run_control.h). */
#include "run_control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

static char *base_dir(void) {
  const char *env = getenv("EXITPROBE_RUN_DIR");
  if (env != NULL && *env)
    return xstrdup(env);
  env = getenv("XDG_RUNTIME_DIR");
  if (env != NULL && *env)
    return xasprintf("%s/exitprobe", env);
  if (geteuid() == 0)
    return xstrdup("/run/exitprobe");
  return xasprintf("/tmp/exitprobe-%u", (unsigned)geteuid());
}

/* mkdir -p, private at the last level. */
static int make_dirs(const char *path) {
  char *copy = xstrdup(path);
  for (char *p = copy + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
      free(copy);
      return -1;
    }
    *p = '/';
  }
  free(copy);
  return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* A reader holds the FIFO open: some run is alive behind it. */
static bool fifo_alive(const char *fifo) {
  int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return false;
  close(fd);
  return true;
}

static int claim(const char *base, const char *name, struct run_control *rc, ep_error **err) {
  rc->name = xstrdup(name);
  rc->dir = xasprintf("%s/%s", base, name);
  rc->fifo = xasprintf("%s/control", rc->dir);
  if (make_dirs(rc->dir) < 0)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot create %s", rc->dir);
  if (mkfifo(rc->fifo, 0600) < 0 && errno != EEXIST)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot create %s", rc->fifo);
  struct stat sb;
  if (lstat(rc->fifo, &sb) < 0 || !S_ISFIFO(sb.st_mode))
    return ep_error_set(err, EP_EXIT_ENVIRONMENT, "%s exists and is not a FIFO", rc->fifo);
  rc->read_fd = open(rc->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (rc->read_fd < 0)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot open %s", rc->fifo);
  rc->keep_fd = open(rc->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (rc->keep_fd < 0)
    return ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot open %s", rc->fifo);
  return 0;
}

static void release(struct run_control *rc) {
  if (rc->read_fd >= 0)
    close(rc->read_fd);
  if (rc->keep_fd >= 0)
    close(rc->keep_fd);
  free(rc->name);
  free(rc->dir);
  free(rc->fifo);
  *rc = (struct run_control){.read_fd = -1, .keep_fd = -1};
}

int run_control_open(const char *workflow_name, struct run_control *rc, ep_error **err) {
  *rc = (struct run_control){.read_fd = -1, .keep_fd = -1};
  char *base = base_dir();
  char *fifo = xasprintf("%s/%s/control", base, workflow_name);
  /* The same workflow may be running twice: the second run gets its pid. */
  char *name = fifo_alive(fifo) ? xasprintf("%s-%d", workflow_name, (int)getpid())
                                : xstrdup(workflow_name);
  int ret = claim(base, name, rc, err);
  if (ret < 0)
    release(rc);
  free(name);
  free(fifo);
  free(base);
  return ret;
}

void run_control_close(struct run_control *rc) {
  if (rc->fifo != NULL) {
    unlink(rc->fifo);
    rmdir(rc->dir);
  }
  release(rc);
}

enum run_control_request run_control_read(int fd) {
  enum run_control_request req = RUN_CONTROL_NONE;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf) - 1)) > 0 || (n < 0 && errno == EINTR)) {
    if (n < 0)
      continue;
    buf[n] = '\0';
    /* Requests are whole words on their own lines; anything else is noise. */
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
      if (strcmp(line, "terminate") == 0)
        req = RUN_CONTROL_TERMINATE;
      else if (strcmp(line, "stop") == 0 && req == RUN_CONTROL_NONE)
        req = RUN_CONTROL_STOP;
    }
  }
  return req;
}

int run_control_send(const char *run, enum run_control_request req, ep_error **err) {
  char *base = base_dir();
  char *fifo = strchr(run, '/') != NULL ? xstrdup(run) : xasprintf("%s/%s/control", base, run);
  int ret = -1;
  struct stat sb;
  if (stat(fifo, &sb) < 0 || !S_ISFIFO(sb.st_mode)) {
    ep_error_set(err, EP_EXIT_USAGE, "no exitprobe run named '%s' (no control FIFO %s)", run,
                 fifo);
    goto out;
  }
  int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENXIO)
      ep_error_set(err, EP_EXIT_USAGE, "exitprobe run '%s' is not running any more (%s)", run,
                   fifo);
    else
      ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno, "cannot open %s", fifo);
    goto out;
  }
  const char *line = req == RUN_CONTROL_TERMINATE ? "terminate\n" : "stop\n";
  /* Shorter than PIPE_BUF: the write is atomic, whatever else is writing. */
  ssize_t n = write(fd, line, strlen(line));
  int saved = errno;
  close(fd);
  if (n != (ssize_t)strlen(line)) {
    ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, saved, "cannot write to %s", fifo);
    goto out;
  }
  ret = 0;
out:
  free(fifo);
  free(base);
  return ret;
}
