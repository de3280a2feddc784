/* Starting a step's init without copying the runner's page tables.
 *
 * A fork-style clone copies the runner's page tables (~0.2 ms for a few MB,
 * ~8 ms at 256 MiB of touched heap) and tears the copy down again when the
 * init exits.  Instead the init is cloned with CLONE_VM | CLONE_VFORK on a
 * stack of its own: it shares the runner's memory while the runner waits,
 * sets the step up, starts the command, and then execs a tiny init program
 * (runner/step_init.c, embedded, run from a memfd) that supervises the
 * command for the rest of the step.  The runner resumes at that exec. */
#ifndef EXITPROBE_INIT_LAUNCH_H
#define EXITPROBE_INIT_LAUNCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ep_clone_args { /* struct clone_args up to CLONE_ARGS_SIZE_VER2 */
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* The embedded init program in a sealed memfd (close-on-exec), or -1 with
 * errno (ENOSYS on architectures it is not built for). */
int ep_init_program_open(void);

/* clone3 with args->flags | CLONE_VM | CLONE_VFORK, the child running
 * fn(arg) on args->stack; fn must exec or _exit, never return.  Returns
 * (once the child has exec'd or exited) its pid, or -1 with errno; ENOSYS
 * where this is not implemented. */
pid_t ep_clone_vm_vfork(struct ep_clone_args *args, int (*fn)(void *), void *arg);

#endif
