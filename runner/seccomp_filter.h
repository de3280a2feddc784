/* The baseline seccomp program every step runs under.
 *
 * Built once per sandbox context with libseccomp (default allow, a short
 * list of host-affecting syscalls fail with EPERM) and exported as raw BPF,
 * so that the per-step cost is only the kernel's load (~0.1 ms) and the
 * child never calls into libseccomp after clone. */
#ifndef EXITPROBE_SECCOMP_FILTER_H
#define EXITPROBE_SECCOMP_FILTER_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ep_seccomp_program {
  struct sock_fprog fprog; /* filter points into memory owned by this struct */
  size_t n_denied;         /* syscalls the running architecture knows and the filter denies */
  bool notify;             /* some call returns SECCOMP_RET_USER_NOTIF: load with a listener */
};

/* A syscall made to fail: in the filter itself (errno_value), or decided
 * per call by a supervisor (notify; errno_value unused). */
struct ep_seccomp_fault {
  int nr;
  int errno_value;
  bool notify;
};

/* One call that the faults must not catch: the step's hand-off of its
 * listener to the runner, recognised by its second argument (the address
 * of a msghdr the runner chose).  nr < 0: none. */
struct ep_seccomp_exemption {
  int nr;
  uint64_t arg1;
};

/* Names of the syscalls the baseline filter denies with EPERM, in documentation order. */
const char *const *ep_seccomp_denied_names(size_t *n);

/* Compile the baseline filter for the native architecture only.  Other ABIs
 * (i386 via int 0x80, x32) hit libseccomp's bad-arch action and are killed
 * with SIGSYS, so they cannot bypass it; adding them as filter arches would
 * triple the program and cost ~0.2 ms more per load (measured). */
int ep_seccomp_build(struct ep_seccomp_program **out, ep_error **err);

/* The baseline plus per-step faults (~50 us: done per step in the parent,
 * only for steps that have faults).  A fault replaces the baseline's EPERM
 * for its syscall.  Two faults on one syscall, a negative or unknown number,
 * or an errno outside 1..4095 on a filter-side fault are EP_EXIT_USAGE. */
int ep_seccomp_build_with_faults(const struct ep_seccomp_fault *faults, size_t n_faults,
                                 const struct ep_seccomp_exemption *exempt,
                                 struct ep_seccomp_program **out, ep_error **err);

/* Whether the baseline denies nr (a supervisor letting such a call through
 * must still refuse it). */
bool ep_seccomp_baseline_denies(int nr);

void ep_seccomp_free(struct ep_seccomp_program *prog);

/* Set no_new_privs and install prog on the calling thread.  Makes only two
 * syscalls, touches no heap: safe in a vfork-style child.  Returns 0 or -errno. */
int ep_seccomp_load(const struct sock_fprog *prog);

/* The same for a program with notify rules: returns the new listener
 * (O_CLOEXEC, from the kernel) or -errno.  Where the kernel has it (5.19),
 * a call the supervisor has received waits killably only, so that a
 * signal cannot restart it and make the supervisor decide it twice. */
int ep_seccomp_load_with_listener(const struct sock_fprog *prog);

#endif
