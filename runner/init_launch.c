#include "init_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

/* AddressSanitizer keeps per-thread stack bounds and poisons frames in a
 * shadow the CLONE_VM child shares: a child on another stack that never
 * returns (it execs) trips it (stack-buffer-underflow in
 * __asan_handle_no_return, crashes in its vfork interceptor).  Sanitizer
 * builds therefore run fork-style inits. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define HAVE_CLONE_VM_INIT 1
#endif

/* runner/step_init_blob.c, generated at build time; empty where the init
 * program is not built. */
extern const unsigned char ep_step_init_elf[];
extern const size_t ep_step_init_elf_len;

int ep_init_program_open(void) {
#if defined(HAVE_CLONE_VM_INIT)
  bool usable = ep_step_init_elf_len > 0;
#else
  bool usable = false; /* built, but not usable here: see above */
#endif
  if (!usable) {
    errno = ENOSYS;
    return -1;
  }
  int fd = memfd_create("exitprobe-step-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -1;
  size_t done = 0;
  while (done < ep_step_init_elf_len) {
    ssize_t w = write(fd, ep_step_init_elf + done, ep_step_init_elf_len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      close(fd);
      errno = e;
      return -1;
    }
    done += (size_t)w;
  }
  /* Nothing in a step can rewrite what every later step's init runs. */
  (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  return fd;
}

#if defined(HAVE_CLONE_VM_INIT)
/* long ep_clone3_trampoline(args, size, fn, arg): the raw syscall, because
 * the child starts on a new stack and cannot return into a C caller.  fn
 * and arg travel in r8/r9, which the syscall preserves. */
long ep_clone3_trampoline(struct ep_clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl ep_clone3_trampoline\n"
        ".hidden ep_clone3_trampoline\n"
        ".type ep_clone3_trampoline, @function\n"
        "ep_clone3_trampoline:\n"
        "  mov %rdx, %r8\n"
        "  mov %rcx, %r9\n"
        "  mov $435, %eax\n" /* SYS_clone3 */
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jnz 1f\n"
        "  xor %ebp, %ebp\n"
        "  mov %r9, %rdi\n"
        "  call *%r8\n"
        "  mov %eax, %edi\n"
        "  mov $60, %eax\n" /* SYS_exit */
        "  syscall\n"
        "  hlt\n"
        "1:\n"
        "  ret\n"
        ".size ep_clone3_trampoline, .-ep_clone3_trampoline\n");

pid_t ep_clone_vm_vfork(struct ep_clone_args *args, int (*fn)(void *), void *arg) {
  struct ep_clone_args a = *args;
  a.flags |= CLONE_VM | CLONE_VFORK;
  int saved = errno;
  long rc = ep_clone3_trampoline(&a, sizeof(a), fn, arg);
  if (rc < 0) {
    errno = (int)-rc;
    return -1;
  }
  /* The child ran on our memory: errno is the thread's, and it used it. */
  errno = saved;
  return (pid_t)rc;
}
#else
pid_t ep_clone_vm_vfork(struct ep_clone_args *args, int (*fn)(void *), void *arg) {
  (void)args;
  (void)fn;
  (void)arg;
  errno = ENOSYS;
  return -1;
}
#endif
