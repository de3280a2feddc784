/* The control FIFO of a running `exitprobe run` (see run_control.h). */
#include "run_control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* One request line: "stop", "terminate", "resume", or "set" NODE \t PARAM \t VALUE.
 * Anything else is noise. */
static void parse_request(char *line, struct run_control_requests *out) {
  if (strcmp(line, "terminate") == 0) {
    out->shutdown = RUN_CONTROL_TERMINATE;
  } else if (strcmp(line, "stop") == 0) {
    if (out->shutdown == RUN_CONTROL_NONE)
      out->shutdown = RUN_CONTROL_STOP;
  } else if (strcmp(line, "resume") == 0) {
    out->resume = true;
  } else if (strncmp(line, "set\t", 4) == 0) {
    char *node = line + 4, *param = strchr(node, '\t');
    char *value = param ? strchr(param + 1, '\t') : NULL;
    if (value == NULL)
      return;
    *param++ = '\0';
    *value++ = '\0';
    out->sets = xreallocarray(out->sets, out->n_sets + 1, sizeof(*out->sets));
    out->sets[out->n_sets++] = (struct run_control_set){xstrdup(node), xstrdup(param),
                                                        xstrdup(value)};
  }
}

void run_control_read(int fd, struct run_control_requests *out) {
  char buf[2 * PIPE_BUF + 1];
  size_t have = 0;
  ssize_t n;
  memset(out, 0, sizeof(*out));
  /* Each writer's request is one write shorter than PIPE_BUF, so it arrives
   * whole; a line cut by the end of a read waits for the next read. */
  while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0 || (n < 0 && errno == EINTR)) {
    if (n < 0)
      continue;
    have += (size_t)n;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      parse_request(line, out);
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
    if (have == sizeof(buf) - 1)
      have = 0; /* a line longer than any request: noise */
  }
}

void run_control_requests_free(struct run_control_requests *r) {
  for (size_t i = 0; i < r->n_sets; i++) {
    free(r->sets[i].node);
    free(r->sets[i].param);
    free(r->sets[i].value);
  }
  free(r->sets);
  memset(r, 0, sizeof(*r));
}

static int send_text(const char *run, const char *text, ep_error **err);

int run_control_send(const char *run, enum run_control_request req, ep_error **err) {
  return send_text(run, req == RUN_CONTROL_TERMINATE ? "terminate\n" : "stop\n", err);
}

int run_control_send_resume(const char *run, const struct run_control_set *sets, size_t n_sets,
                            ep_error **err) {
  char *text = xstrdup("");
  for (size_t i = 0; i < n_sets; i++) {
    char *more = xasprintf("%sset\t%s\t%s\t%s\n", text, sets[i].node, sets[i].param,
                           sets[i].value);
    free(text);
    text = more;
  }
  char *all = xasprintf("%sresume\n", text);
  free(text);
  int rc;
  if (strlen(all) >= PIPE_BUF)
    rc = ep_error_set(err, EP_EXIT_USAGE, "the values given with --set are too long (%zu bytes, "
                                          "at most %d in all)",
                      strlen(all), PIPE_BUF - 1);
  else
    rc = send_text(run, all, err);
  free(all);
  return rc;
}

static int send_text(const char *run, const char *line, ep_error **err) {
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
