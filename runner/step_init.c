/* The step's init after the launch: a freestanding x86-64 program (no libc,
 * a few KB) that the init execs once the command runs, so that it stops
 * sharing the runner's memory (it was started with CLONE_VM | CLONE_VFORK,
 * see sandbox.c) at the cost of one tiny exec.  Built without sanitizers
 * and embedded in the runner (runner/embed_blob.py); run from a memfd.
 *
 *   exitprobe-step-init <command pid> <status fd>
 *
 * The waited signals arrive blocked (the mask survives exec; so do pending
 * signals, a SIGCHLD of a command that has already exited included).  It
 * forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the command,
 * reaps every child, and when the command is reaped writes its raw wait
 * status (4 bytes) to the status fd and exits with its code, or 128+signal.
 * Without arguments it exits 0: the runner's probe. */

#define NR_WRITE 1
#define NR_RT_SIGTIMEDWAIT 128
#define NR_EXIT 60
#define NR_WAIT4 61
#define NR_KILL 62
#define NR_PRCTL 157
#define PR_SET_NAME 15

#define SIGHUP 1
#define SIGINT 2
#define SIGQUIT 3
#define SIGUSR1 10
#define SIGUSR2 12
#define SIGTERM 15
#define SIGCHLD 17
#define WNOHANG 1
#define SIGINFO_SIZE 128

#define BIT(s) (1UL << ((s) - 1))

typedef unsigned long ulong;

static long sys4(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return r;
}

static _Noreturn void sys_exit(int code) {
  for (;;)
    (void)sys4(NR_EXIT, code, 0, 0, 0);
}

static long parse_long(const char *s) {
  long v = 0;
  if (s == 0 || *s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

static _Noreturn void finish(int status_fd, int status) {
  (void)sys4(NR_WRITE, status_fd, (long)&status, sizeof(status), 0);
  int sig = status & 0x7f;
  sys_exit(sig == 0 ? (status >> 8) & 0xff : 128 + sig);
}

_Noreturn void ep_step_init_main(long *sp);
_Noreturn void ep_step_init_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (argc < 3)
    sys_exit(0);
  /* Run from a memfd, it would be called after the descriptor ("5"). */
  (void)sys4(NR_PRCTL, PR_SET_NAME, (long)"ep-step-init", 0, 0);
  long cmd = parse_long(argv[1]);
  long status_fd = parse_long(argv[2]);
  if (cmd <= 0 || status_fd < 0)
    sys_exit(64);
  const ulong forwarded =
      BIT(SIGTERM) | BIT(SIGINT) | BIT(SIGHUP) | BIT(SIGQUIT) | BIT(SIGUSR1) | BIT(SIGUSR2);
  ulong waited = forwarded | BIT(SIGCHLD);
  long info[SIGINFO_SIZE / sizeof(long)];
  for (;;) {
    long sig = sys4(NR_RT_SIGTIMEDWAIT, (long)&waited, (long)info, 0, sizeof(waited));
    if (sig <= 0)
      continue;
    if (sig != SIGCHLD) {
      if (forwarded & BIT(sig))
        (void)sys4(NR_KILL, cmd, sig, 0, 0);
      continue;
    }
    int status = 0;
    long w;
    while ((w = sys4(NR_WAIT4, -1, (long)&status, WNOHANG, 0)) > 0)
      if (w == cmd)
        finish((int)status_fd, status);
  }
}

__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call ep_step_init_main\n"
        "  hlt\n");
