/* The control channel of a running `exitprobe run`: Argo's `argo stop` and
 * `argo terminate` for a local run.  Each run owns a FIFO,
 * <base>/<run>/control, where <base> is $EXITPROBE_RUN_DIR, else
 * $XDG_RUNTIME_DIR/exitprobe, else /run/exitprobe for root and
 * /tmp/exitprobe-<uid> for others, and <run> is the workflow's name (or
 * <name>-<pid> when a live run already holds that name).  `exitprobe stop RUN`
 * writes "stop\n" into it, `exitprobe terminate RUN` "terminate\n"; the
 * controller reads it in its epoll loop.  The run keeps a write end open
 * itself, so the FIFO never reports end-of-file and a request written while
 * a supervised controller is being restarted waits in the pipe for the next
 * one.  A FIFO nobody reads (its run is gone) refuses a writer (ENXIO): that
 * is how a stale one is told from a live one. */
#ifndef EXITPROBE_RUN_CONTROL_H
#define EXITPROBE_RUN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum run_control_request {
  RUN_CONTROL_NONE,
  RUN_CONTROL_STOP,
  RUN_CONTROL_TERMINATE,
};

struct run_control {
  char *name;  /* what `exitprobe stop` takes */
  char *dir;   /* <base>/<name> */
  char *fifo;  /* <dir>/control */
  int read_fd; /* non-blocking; the controller polls it */
  int keep_fd; /* our own write end */
};

/* Create the run's directory and FIFO.  On failure rc is left closed. */
int run_control_open(const char *workflow_name, struct run_control *rc, ep_error **err);
/* Remove the FIFO and the directory, close both ends. */
void run_control_close(struct run_control *rc);

/* `exitprobe resume RUN --set NODE.PARAM=VALUE`: Argo's `argo node set`
 * of a supplied output, then `argo resume`. */
struct run_control_set {
  char *node;  /* a node's name or display name */
  char *param; /* an output parameter with valueFrom.supplied */
  char *value;
};

/* What arrived on the FIFO since the last read. */
struct run_control_requests {
  enum run_control_request shutdown; /* the strongest: terminate over stop */
  bool resume;                       /* "resume": every active suspend node */
  struct run_control_set *sets;      /* "set" lines, in order */
  size_t n_sets;
};

/* Drain what arrived on fd into out (zeroed first). */
void run_control_read(int fd, struct run_control_requests *out);
void run_control_requests_free(struct run_control_requests *r);

/* Deliver a request to run (a run name, or a path to its FIFO). */
int run_control_send(const char *run, enum run_control_request req, ep_error **err);
/* Deliver "set" lines and "resume" in one atomic write. */
int run_control_send_resume(const char *run, const struct run_control_set *sets, size_t n_sets,
                            ep_error **err);

#endif
