/* exitprobe-argosay: stand-in for the entrypoint of argoproj/argosay:v2.
 *
 * Argo's e2e workflows use that image with only `args` (echo, exit, sleep,
 * cat, assert_contains, sh), so its entrypoint decides their exit codes and
 * stdout.  exitprobe runs steps on the host without pulling images, and runs
 * this program in the entrypoint's place.
 *
 * The real entrypoint is a `set -eu` POSIX sh script (dash on Ubuntu) that
 * hands each verb to a shell builtin or coreutils.  What is reproduced here
 * is what a workflow can observe: exit statuses (2 for the shell's own
 * errors: an unset positional parameter, an illegal number, a failed
 * redirection), stdout bytes, and files written.  Only the wording of
 * stderr messages differs.  See docs/ARGOSAY.md.
 *
 * No signal handlers are installed: a kill must end the step with the
 * default disposition, exactly as it ends the real script. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The status dash exits with after its own errors (set -u, exit, redirection). */
#define SHELL_ERROR 2
/* GNU grep's status when the file cannot be read. */
#define GREP_TROUBLE 2

/* Verbs receive the whole argv so that argv[n] is the script's "$n". */
typedef int verb_fn(int argc, char **argv);

struct verb {
  const char *name;
  verb_fn *run;
};

/* `set -u` aborts the script on the first unset "$n" it expands. */
static int unset_param(int n)
{
  fprintf(stderr, "argosay: %d: parameter not set\n", n);
  return SHELL_ERROR;
}

static int flush_stdout(int fail_status)
{
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "argosay: write error: %s\n", strerror(errno));
    return fail_status;
  }
  return 0;
}

/* ---- sleep DURATION: GNU coreutils sleep, NUMBER[smhd] ---- */

static int sleep_seconds(double seconds)
{
  struct timespec deadline;

  /* A deadline far beyond any run stands in for "forever" (inf, 1e300). */
  if (seconds > 1e12)
    seconds = 1e12;
  long long whole = (long long)seconds;
  double frac_ns = (seconds - (double)whole) * 1e9;
  long nsec = (long)frac_ns;
  if ((double)nsec < frac_ns)  /* round up: never wake before the interval */
    nsec++;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  nsec += deadline.tv_nsec;
  deadline.tv_sec += (time_t)whole + nsec / 1000000000L;
  deadline.tv_nsec = nsec % 1000000000L;
  /* Absolute deadline: a stop/continue or stray EINTR never shortens it. */
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
    ;
  return 0;
}

/* Parses coreutils sleep's operand; false if it would reject it.  A leading
 * '-' is an option to GNU sleep, and an invalid one. */
static bool parse_interval(const char *arg, double *seconds)
{
  char *end;
  double value;

  if (arg[0] == '-')
    return false;
  value = strtod(arg, &end);  /* C locale: this program never sets one */
  if (end == arg)
    return false;
  switch (*end) {
  case '\0': case 's': break;
  case 'm': value *= 60; break;
  case 'h': value *= 60 * 60; break;
  case 'd': value *= 24 * 60 * 60; break;
  default: return false;
  }
  if (*end != '\0' && end[1] != '\0')
    return false;
  if (!(value >= 0))  /* also rejects NaN */
    return false;
  *seconds = value;
  return true;
}

static int verb_sleep(int argc, char **argv)
{
  double seconds;

  if (argc < 3)
    return unset_param(2);
  if (!parse_interval(argv[2], &seconds)) {
    fprintf(stderr, "sleep: invalid time interval '%s'\n", argv[2]);
    return 1;
  }
  return sleep_seconds(seconds);
}

/* ---- echo: dash's builtin, which always interprets backslash escapes ---- */

/* Reads up to max octal digits at *p, advancing it; returns the byte value. */
static int read_octal(const char **p, int max)
{
  int value = 0;
  for (int i = 0; i < max && **p >= '0' && **p <= '7'; i++, (*p)++)
    value = value * 8 + (**p - '0');
  return value & 0xff;
}

/* Writes one escape sequence starting after the backslash at *p; returns
 * false for \c, which ends all output (including the newline). */
static bool put_escape(FILE *out, const char **p)
{
  static const char letters[] = "abefnrtv\\";
  static const char values[] = "\a\b\033\f\n\r\t\v\\";
  const char *hit;
  char c = **p;

  if (c == 'c')
    return false;
  if (c == '0') {  /* \0nnn: the 0 is a marker, up to three digits follow */
    (*p)++;
    putc(read_octal(p, 3), out);
  } else if (c >= '1' && c <= '7') {
    putc(read_octal(p, 3), out);
  } else if (c != '\0' && (hit = strchr(letters, c)) != NULL) {
    putc(values[hit - letters], out);
    (*p)++;
  } else {
    putc('\\', out);  /* unknown or trailing: the backslash is literal */
  }
  return true;
}

static void echo_text(FILE *out, const char *text)
{
  if (strcmp(text, "-n") == 0)  /* dash takes a lone -n as its option */
    return;
  for (const char *p = text; *p != '\0';) {
    if (*p != '\\') {
      putc(*p++, out);
      continue;
    }
    p++;
    if (!put_escape(out, &p))
      return;
  }
  putc('\n', out);
}

static bool is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* `mkdir -p`: a failed mkdir is fine when a directory is there anyway (it
 * existed, or a concurrent step made it first). */
static int mkdir_p(char *path)
{
  for (char *slash = path;; slash++) {
    slash = strchr(slash + strspn(slash, "/"), '/');
    if (slash != NULL)
      *slash = '\0';
    if (mkdir(path, 0777) != 0) {
      int err = errno;
      if (!is_dir(path)) {
        fprintf(stderr, "mkdir: cannot create directory '%s': %s\n", path, strerror(err));
        return -1;
      }
    }
    if (slash == NULL)
      return 0;
    *slash = '/';
  }
}

/* echo TEXT FILE: mkdir -p "$(dirname FILE)"; echo TEXT > FILE; sleep 0.1 */
static int echo_to_file(const char *text, const char *file)
{
  /* The script's `mkdir -p ""` fails on an empty FILE; dirname("") would not. */
  if (file[0] == '\0') {
    fprintf(stderr, "mkdir: cannot create directory '': %s\n", strerror(ENOENT));
    return 1;
  }
  char *copy = strdup(file);
  int rc = copy == NULL ? -1 : mkdir_p(dirname(copy));
  free(copy);
  if (rc != 0)
    return 1;  /* mkdir's status, passed on by set -e */

  FILE *out = fopen(file, "w");
  if (out == NULL) {
    fprintf(stderr, "argosay: cannot create %s: %s\n", file, strerror(errno));
    return SHELL_ERROR;
  }
  echo_text(out, text);
  bool failed = ferror(out) != 0;
  if (fclose(out) != 0)
    failed = true;
  if (failed) {
    fprintf(stderr, "argosay: echo: I/O error\n");
    return 1;
  }
  /* The image pauses here (once for Argo's PNS executor); kept so that a
   * step's duration, and the window a fault can hit, match the real one. */
  return sleep_seconds(0.1);
}

static int verb_echo(int argc, char **argv)
{
  switch (argc - 1) {
  case 1:
    echo_text(stdout, "hello argo");
    return flush_stdout(1);
  case 2:
    echo_text(stdout, argv[2]);
    return flush_stdout(1);
  case 3:
    return echo_to_file(argv[2], argv[3]);
  default:
    /* The script's fallback arm is spelled `default)`, a literal pattern,
     * so four or more arguments match nothing and the script succeeds. */
    return 0;
  }
}

/* ---- cat FILE: only "$2"; further arguments are ignored by the script ---- */

static int copy_fd(int fd)
{
  char buf[65536];
  ssize_t n;

  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
      return -1;
  }
  return 0;
}

static int verb_cat(int argc, char **argv)
{
  if (argc < 3)
    return unset_param(2);
  const char *file = argv[2];
  bool is_stdin = strcmp(file, "-") == 0;
  int fd = is_stdin ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
  int rc = fd < 0 ? -1 : copy_fd(fd);

  if (rc != 0)
    fprintf(stderr, "cat: %s: %s\n", file, strerror(errno));
  if (fd >= 0 && !is_stdin)
    close(fd);
  if (flush_stdout(1) != 0)
    return 1;
  return rc == 0 ? 0 : 1;
}

/* ---- assert_contains FILE TEXT: `grep -F TEXT FILE` ---- */

/* grep -F takes every line of TEXT as a pattern and prints matching lines. */
static bool line_matches(const char *line, size_t len, const char *patterns)
{
  for (const char *p = patterns;;) {
    size_t plen = strcspn(p, "\n");
    if (memmem(line, len, p, plen) != NULL)
      return true;
    if (p[plen] == '\0')
      return false;
    p += plen + 1;
  }
}

static int verb_assert_contains(int argc, char **argv)
{
  if (argc < 4)
    return unset_param(3);  /* the script expands "$3" before "$2" */
  const char *file = argv[2];
  FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  bool found = false;
  int status;

  if (in == NULL) {
    fprintf(stderr, "grep: %s: %s\n", file, strerror(errno));
    return GREP_TROUBLE;
  }
  errno = 0;
  while ((len = getline(&line, &cap, in)) >= 0) {
    if (len > 0 && line[len - 1] == '\n')
      line[--len] = '\0';
    if (line_matches(line, (size_t)len, argv[3])) {
      found = true;
      fwrite(line, 1, (size_t)len, stdout);
      putchar('\n');  /* grep ends every printed line, even an unterminated last one */
    }
  }
  if (ferror(in)) {
    fprintf(stderr, "grep: %s: %s\n", file, strerror(errno));
    status = GREP_TROUBLE;
  } else {
    status = found ? 0 : 1;
  }
  free(line);
  if (in != stdin)
    fclose(in);
  if (flush_stdout(GREP_TROUBLE) != 0)
    return GREP_TROUBLE;
  return status;
}

/* ---- exit [CODE]: dash's `exit "${2:-0}"` ---- */

static int verb_exit(int argc, char **argv)
{
  const char *code = argc >= 3 && argv[2][0] != '\0' ? argv[2] : "0";
  char *end;

  /* dash's number(): strtoimax base 10 (so leading blanks and a sign are
   * fine), trailing blanks allowed, and the value must lie in 0..INT_MAX. */
  errno = 0;
  intmax_t value = strtoimax(code, &end, 10);
  bool parsed = errno == 0 && end != code;
  end += strspn(end, " \t\n\v\f\r");
  if (!parsed || *end != '\0' || value < 0 || value > INT_MAX) {
    fprintf(stderr, "argosay: exit: Illegal number: %s\n", code);
    return SHELL_ERROR;
  }
  return (int)(value & 0xff);  /* what the kernel keeps of exit(value) */
}

/* ---- sh FILE: `sh "${2:-0}"` ---- */

static int verb_sh(int argc, char **argv)
{
  char *script = argc >= 3 && argv[2][0] != '\0' ? argv[2] : "0";
  char *sh_argv[] = {"sh", script, NULL};

  fflush(NULL);
  execv("/bin/sh", sh_argv);
  fprintf(stderr, "argosay: /bin/sh: %s\n", strerror(errno));
  return 127;
}

static int say_hello(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  echo_text(stdout, "hello argo");
  return flush_stdout(1);
}

int main(int argc, char **argv)
{
  static const struct verb verbs[] = {
    {"", say_hello},  /* no arguments, or an empty first one: ${1:-} */
    {"assert_contains", verb_assert_contains},
    {"cat", verb_cat},
    {"echo", verb_echo},
    {"exit", verb_exit},
    {"sleep", verb_sleep},
    {"sh", verb_sh},
  };
  const char *name = argc >= 2 ? argv[1] : "";

  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (strcmp(name, verbs[i].name) == 0)
      return verbs[i].run(argc, argv);
  /* The image exits 1 silently; the message is ours, stderr only. */
  fprintf(stderr, "argosay: unknown verb '%s'\n", name);
  return 1;
}
