/* The baseline seccomp program every step runs under.
 *
 * Built once per sandbox context with libseccomp (default allow, a short
 * list of host-affecting syscalls fail with EPERM) and exported as raw BPF,
 * so that the per-step cost is only the kernel's load (~0.1 ms) and the
 * child never calls into libseccomp after clone. */
#ifndef EXITPROBE_SECCOMP_FILTER_H
#define EXITPROBE_SECCOMP_FILTER_H

#include <linux/filter.h>
#include <stddef.h>

#include "error.h"

struct ep_seccomp_program {
  struct sock_fprog fprog; /* filter points into memory owned by this struct */
  size_t n_denied;         /* syscalls the running architecture knows and the filter denies */
};

/* Names of the syscalls the baseline filter denies with EPERM, in documentation order. */
const char *const *ep_seccomp_denied_names(size_t *n);

/* Compile the baseline filter for the native architecture only.  Other ABIs
 * (i386 via int 0x80, x32) hit libseccomp's bad-arch action and are killed
 * with SIGSYS, so they cannot bypass it; adding them as filter arches would
 * triple the program and cost ~0.2 ms more per load (measured). */
int ep_seccomp_build(struct ep_seccomp_program **out, ep_error **err);
void ep_seccomp_free(struct ep_seccomp_program *prog);

/* Set no_new_privs and install prog on the calling thread.  Makes only two
 * syscalls, touches no heap: safe in a vfork-style child.  Returns 0 or -errno. */
int ep_seccomp_load(const struct sock_fprog *prog);

#endif
