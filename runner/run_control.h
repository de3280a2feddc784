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

/* Drain what arrived on fd: the strongest request among the lines read
 * (terminate over stop), RUN_CONTROL_NONE if none. */
enum run_control_request run_control_read(int fd);

/* Deliver a request to run (a run name, or a path to its FIFO). */
int run_control_send(const char *run, enum run_control_request req, ep_error **err);

#endif
