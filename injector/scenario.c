#include "scenario.h"
#include "../runner/xalloc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "../reports/expectations.h"
#include "mocks.h"

/* Where errors go and which file they are about. */
struct parse_ctx {
  const char *file;
  ep_error **err;
};



/* Errors at a node go through yaml_doc's one reporter. */
#define fail_at(ctx, n, ...) ydoc_fail((ctx)->err, (ctx)->file, (n), __VA_ARGS__)
#define expect_kind(ctx, n, kind, what) ydoc_expect_kind((ctx)->err, (ctx)->file, (n), (kind), (what))

static struct src_pos pos_of(const struct ydoc_node *n) {
  struct src_pos p = {0, 0};
  if (n != NULL) {
    p.line = n->line;
    p.column = n->column;
  }
  return p;
}

/* "a, b, c" from a NULL-terminated list. */
static char *join_names(const char *const *names) {
  size_t len = 1;
  for (const char *const *p = names; *p != NULL; p++)
    len += strlen(*p) + 2;
  char *out = xcalloc(len, 1);
  for (const char *const *p = names; *p != NULL; p++) {
    if (p != names)
      strcat(out, ", ");
    strcat(out, *p);
  }
  return out;
}

static bool in_list(const char *const *names, const char *s) {
  for (const char *const *p = names; *p != NULL; p++)
    if (strcmp(*p, s) == 0)
      return true;
  return false;
}

/* ---- scalar readers ----------------------------------------------------- */

/* Scenarios are our format: a key nobody reads is a typo, never ignored. */
static int check_keys(struct parse_ctx *ctx, const struct ydoc_node *map, const char *where,
                      const char *const *allowed) {
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key;
    if (in_list(allowed, key->scalar))
      continue;
    char *list = join_names(allowed);
    fail_at(ctx, key, "unknown field '%s' in %s (expected one of: %s)", key->scalar, where, list);
    free(list);
    return -1;
  }
  return 0;
}

static int get_string(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                      const char **out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  if (n->len == 0)
    return fail_at(ctx, n, "%s must not be empty", what);
  if (strlen(n->scalar) != n->len)
    return fail_at(ctx, n, "%s must not contain a NUL character", what);
  *out = n->scalar;
  return 0;
}

static int get_int(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                   long long min, long long max, long long *out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  long long v = 0;
  if (ydoc_as_int(n, &v) < 0)
    return fail_at(ctx, n, "%s must be an integer, not '%s'", what, n->scalar);
  if (v < min || v > max) {
    if (max == LLONG_MAX)
      return fail_at(ctx, n, "%s must be at least %lld, not %lld", what, min, v);
    return fail_at(ctx, n, "%s must be between %lld and %lld, not %lld", what, min, max, v);
  }
  *out = v;
  return 0;
}

static int get_bool(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                    bool *out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  if (ydoc_as_bool(n, out) < 0)
    return fail_at(ctx, n, "%s must be true or false, not '%s'", what, n->scalar);
  return 0;
}

/* A decimal number: strtod alone would also take "inf", "nan" and hex. */
static int parse_decimal(const char *s, double *out) {
  const char *p = s;
  if (*p == '+' || *p == '-')
    p++;
  if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
    return -1;
  for (const char *q = p; *q != '\0'; q++)
    if (!isdigit((unsigned char)*q) && *q != '.' && *q != 'e' && *q != 'E' && *q != '+' &&
        *q != '-')
      return -1;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

static int get_number(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                      double *out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  if (parse_decimal(n->scalar, out) < 0)
    return fail_at(ctx, n, "%s must be a number, not '%s'", what, n->scalar);
  return 0;
}

/* ---- durations, signals, errno names ------------------------------------ */

__extension__ typedef unsigned __int128 u128;

/* Nothing in a scenario needs more than a few years; the cap keeps the
 * arithmetic far from overflow. */
#define DURATION_MAX_NS ((u128)1000000000000000000ULL)

static int duration_unit(const char **p, uint64_t *ns_per_unit) {
  static const struct {
    const char *name;
    uint64_t ns;
  } units[] = {
      /* "ms" before "m"; the micro signs as Go accepts them. */
      {"ns", 1},
      {"us", 1000},
      {"\xc2\xb5s", 1000},
      {"\xce\xbcs", 1000},
      {"ms", 1000000},
      {"s", 1000000000ULL},
      {"m", 60000000000ULL},
      {"h", 3600000000000ULL},
  };
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    size_t len = strlen(units[i].name);
    if (strncmp(*p, units[i].name, len) == 0) {
      *p += len;
      *ns_per_unit = units[i].ns;
      return 0;
    }
  }
  return -1;
}

int scenario_parse_duration(const char *text, int64_t *ms) {
  const char *p = text;
  u128 total = 0;
  if (p == NULL || *p == '\0')
    return -1;
  while (*p != '\0') {
    u128 whole = 0, frac = 0, scale = 1;
    bool digits = false;
    for (; isdigit((unsigned char)*p); p++, digits = true) {
      whole = whole * 10 + (u128)(*p - '0');
      if (whole > DURATION_MAX_NS)
        return -1;
    }
    if (*p == '.') {
      for (p++; isdigit((unsigned char)*p); p++, digits = true) {
        /* Digits past 1e-18 of a unit cannot change a millisecond. */
        if (scale < (u128)1000000000000000000ULL) {
          frac = frac * 10 + (u128)(*p - '0');
          scale *= 10;
        }
      }
    }
    uint64_t unit = 0;
    if (!digits || duration_unit(&p, &unit) < 0)
      return -1;
    total += whole * unit + frac * unit / scale;
    if (total > DURATION_MAX_NS)
      return -1;
  }
  *ms = (int64_t)((total + 999999) / 1000000);
  return 0;
}

int scenario_parse_signal(const char *text, int *sig) {
  if (text == NULL || *text == '\0')
    return -1;
  if (isdigit((unsigned char)*text)) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0')
      return -1;
    /* 32 and 33 are glibc's own and never mean anything to a step. */
    if ((v >= 1 && v < 32) || (v >= SIGRTMIN && v <= SIGRTMAX)) {
      *sig = (int)v;
      return 0;
    }
    return -1;
  }
  const char *name = text;
  if (strncasecmp(name, "SIG", 3) == 0)
    name += 3;
  for (int s = 1; s < 32; s++) {
    const char *abbrev = sigabbrev_np(s);
    if (abbrev != NULL && strcasecmp(abbrev, name) == 0) {
      *sig = s;
      return 0;
    }
  }
  return -1;
}

int scenario_parse_errno(const char *text, int *value) {
  /* Synonyms that strerrorname_np never returns. */
  static const struct {
    const char *name;
    int value;
  } aliases[] = {{"EWOULDBLOCK", EWOULDBLOCK}, {"EDEADLOCK", EDEADLOCK}, {"ENOTSUP", ENOTSUP}};
  if (text == NULL || *text == '\0')
    return -1;
  for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
    if (strcasecmp(text, aliases[i].name) == 0) {
      *value = aliases[i].value;
      return 0;
    }
  }
  for (int e = 1; e < 4096; e++) {
    const char *name = strerrorname_np(e);
    if (name != NULL && strcasecmp(name, text) == 0) {
      *value = e;
      return 0;
    }
  }
  return -1;
}

static int get_duration(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                        int64_t *out) {
  if (expect_kind(ctx, n, YDOC_SCALAR, what) < 0)
    return -1;
  double plain = 0;
  if (parse_decimal(n->scalar, &plain) == 0)
    return fail_at(ctx, n, "%s '%s' needs a unit: write %sms or %ss", what, n->scalar, n->scalar,
                   n->scalar);
  if (scenario_parse_duration(n->scalar, out) < 0)
    return fail_at(ctx, n,
                   "%s '%s' is not a duration (such as 200ms, 1.5s, 1m30s; units ns, us, ms, s, "
                   "m, h)",
                   what, n->scalar);
  return 0;
}

/* ---- globs -------------------------------------------------------------- */

/* fnmatch has no error for a malformed pattern: it takes the '[' literally,
 * so a typo would silently never match.  Say so instead. */
static const char *glob_problem(const char *p) {
  if (*p == '\0')
    return "is empty";
  for (size_t i = 0; p[i] != '\0'; i++) {
    if (p[i] == '\\') {
      if (p[i + 1] == '\0')
        return "ends with a lone backslash";
      i++;
    } else if (p[i] == '[') {
      size_t j = i + 1;
      if (p[j] == '!' || p[j] == '^')
        j++;
      if (p[j] == ']')
        j++;
      while (p[j] != '\0' && p[j] != ']') {
        if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
          char close = p[j + 1];
          const char *end = NULL;
          for (const char *q = p + j + 2; *q != '\0' && end == NULL; q++)
            if (q[0] == close && q[1] == ']')
              end = q;
          if (end == NULL)
            return "has an unterminated character class";
          j = (size_t)(end - p) + 2;
          continue;
        }
        j++;
      }
      if (p[j] == '\0')
        return "has '[' without a closing ']'";
      i = j;
    }
  }
  return NULL;
}

static int get_target(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                      const char **out) {
  if (get_string(ctx, n, what, out) < 0)
    return -1;
  const char *problem = glob_problem(*out);
  if (problem != NULL)
    return fail_at(ctx, n, "%s '%s' %s", what, *out, problem);
  return 0;
}

/* ---- faults ------------------------------------------------------------- */

struct action_def {
  const char *name;
  enum fault_action action;
  enum { TARGET_REQUIRED, TARGET_OPTIONAL, TARGET_NONE } target;
  const char *const *fields; /* besides action and target */
};

static const char *const exit_fields[] = {"attempt", "code", "when", NULL};
static const char *const signal_fields[] = {"attempt", "signal", "after", "atStart", "onOutput",
                                            NULL};
static const char *const hang_fields[] = {"attempt", NULL};
static const char *const delay_fields[] = {"attempt", "duration", NULL};
static const char *const freeze_fields[] = {"attempt", "after", "duration", NULL};
static const char *const limit_fields[] = {"attempt", "limit", NULL};
static const char *const syscall_fields[] = {"attempt", "syscall", "errno", "nth", "probability",
                                             NULL};
static const char *const network_fields[] = {"attempt", "network", NULL};
static const char *const deadline_fields[] = {"scope", "activeDeadlineSeconds", "timeout", NULL};
static const char *const shutdown_fields[] = {"strategy", "after", NULL};
static const char *const crash_fields[] = {"at", "then", NULL};
static const char *const controller_hang_fields[] = {"at", "then", "duration", "lease", NULL};

static const struct action_def action_defs[] = {
    {"exit", FAULT_EXIT, TARGET_REQUIRED, exit_fields},
    {"signal", FAULT_SIGNAL, TARGET_REQUIRED, signal_fields},
    {"hang", FAULT_HANG, TARGET_REQUIRED, hang_fields},
    {"delay", FAULT_DELAY, TARGET_REQUIRED, delay_fields},
    {"freeze", FAULT_FREEZE, TARGET_REQUIRED, freeze_fields},
    {"oom", FAULT_OOM, TARGET_REQUIRED, limit_fields},
    {"pids", FAULT_PIDS, TARGET_REQUIRED, limit_fields},
    {"syscall", FAULT_SYSCALL, TARGET_REQUIRED, syscall_fields},
    {"network", FAULT_NETWORK, TARGET_REQUIRED, network_fields},
    {"deadline", FAULT_DEADLINE, TARGET_NONE, deadline_fields},
    {"shutdown", FAULT_SHUTDOWN, TARGET_OPTIONAL, shutdown_fields},
    {"controller-crash", FAULT_CONTROLLER_CRASH, TARGET_NONE, crash_fields},
    {"controller-hang", FAULT_CONTROLLER_HANG, TARGET_NONE, controller_hang_fields},
};
#define N_ACTIONS (sizeof(action_defs) / sizeof(action_defs[0]))

const char *fault_action_name(enum fault_action action) {
  for (size_t i = 0; i < N_ACTIONS; i++)
    if (action_defs[i].action == action)
      return action_defs[i].name;
  return "unknown";
}

/* "an exit fault", "a signal fault". */
static const char *article(const char *word) {
  return strchr("aeiou", word[0]) != NULL ? "an" : "a";
}

static char *action_list(void) {
  const char *names[N_ACTIONS + 1];
  for (size_t i = 0; i < N_ACTIONS; i++)
    names[i] = action_defs[i].name;
  names[N_ACTIONS] = NULL;
  return join_names(names);
}

static int check_fault_keys(struct parse_ctx *ctx, const struct ydoc_node *map,
                            const struct action_def *def) {
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key;
    const char *k = key->scalar;
    if (strcmp(k, "action") == 0 || in_list(def->fields, k))
      continue;
    if (strcmp(k, "target") == 0) {
      if (def->target != TARGET_NONE)
        continue;
      return fail_at(ctx, key, "%s %s fault has no target: scope names the workflow or a template",
                     article(def->name), def->name);
    }
    char *list = join_names(def->fields);
    bool elsewhere = false;
    for (size_t a = 0; a < N_ACTIONS; a++)
      elsewhere = elsewhere || in_list(action_defs[a].fields, k);
    if (elsewhere)
      fail_at(ctx, key, "'%s' is not a field of %s %s fault (its fields: %s%s)", k,
              article(def->name), def->name, def->target == TARGET_NONE ? "" : "target, ", list);
    else
      fail_at(ctx, key, "unknown field '%s' in %s %s fault (its fields: action, %s%s)", k,
              article(def->name), def->name, def->target == TARGET_NONE ? "" : "target, ", list);
    free(list);
    return -1;
  }
  return 0;
}

static const struct ydoc_node *require(struct parse_ctx *ctx, const struct ydoc_node *map,
                                       const char *key, const char *what) {
  const struct ydoc_node *n = ydoc_get(map, key);
  if (n == NULL)
    fail_at(ctx, map, "%s needs '%s'", what, key);
  return n;
}

static int parse_exit(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *code = require(ctx, map, "code", "an exit fault");
  long long v = 0;
  if (code == NULL || get_int(ctx, code, "code", 0, 255, &v) < 0)
    return -1;
  f->exit_code = (int)v;
  const struct ydoc_node *when = ydoc_get(map, "when");
  if (when == NULL)
    return 0;
  const char *s = NULL;
  if (get_string(ctx, when, "when", &s) < 0)
    return -1;
  if (strcmp(s, "instead") == 0)
    f->when = FAULT_WHEN_INSTEAD;
  else if (strcmp(s, "after") == 0)
    f->when = FAULT_WHEN_AFTER;
  else
    return fail_at(ctx, when, "when must be 'instead' or 'after', not '%s'", s);
  return 0;
}

static int parse_regex(struct parse_ctx *ctx, const struct ydoc_node *n, const char *what,
                       regex_t *re, char **source) {
  const char *s = NULL;
  if (get_string(ctx, n, what, &s) < 0)
    return -1;
  int rc = regcomp(re, s, SCENARIO_REGEX_FLAGS);
  if (rc != 0) {
    char buf[256];
    regerror(rc, re, buf, sizeof(buf));
    return fail_at(ctx, n, "%s '%s' is not a valid extended regular expression: %s", what, s,
                   buf);
  }
  *source = xstrdup(s);
  return 0;
}

static int parse_signal_fault(struct parse_ctx *ctx, const struct ydoc_node *map,
                              struct fault *f) {
  const struct ydoc_node *sig = require(ctx, map, "signal", "a signal fault");
  const char *s = NULL;
  if (sig == NULL || get_string(ctx, sig, "signal", &s) < 0)
    return -1;
  if (scenario_parse_signal(s, &f->signal) < 0)
    return fail_at(ctx, sig, "unknown signal '%s' (write SIGKILL, KILL or 9)", s);

  /* Exactly one trigger: with two it would be unclear which one fires. */
  const struct ydoc_node *first = NULL;
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key, *value = map->pairs[i].value;
    bool trigger = true;
    if (strcmp(key->scalar, "after") == 0) {
      if (get_duration(ctx, value, "after", &f->after_ms) < 0)
        return -1;
    } else if (strcmp(key->scalar, "atStart") == 0) {
      if (get_bool(ctx, value, "atStart", &f->at_start) < 0)
        return -1;
      if (!f->at_start)
        return fail_at(ctx, value, "atStart: false sends nothing: give after or onOutput instead");
    } else if (strcmp(key->scalar, "onOutput") == 0) {
      if (first == NULL &&
          parse_regex(ctx, value, "onOutput", &f->on_output_re, &f->on_output) < 0)
        return -1;
    } else {
      trigger = false;
    }
    if (trigger && first != NULL)
      return fail_at(ctx, key, "give only one of after, atStart and onOutput (%s is already set)",
                     first->scalar);
    if (trigger)
      first = key;
  }
  if (first == NULL)
    return fail_at(ctx, map,
                   "a signal fault needs when to send it: after: DURATION, atStart: true or "
                   "onOutput: REGEX");
  return 0;
}

static int parse_delay(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *d = require(ctx, map, "duration", "a delay fault");
  return d == NULL ? -1 : get_duration(ctx, d, "duration", &f->duration_ms);
}

static int parse_freeze(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *d = require(ctx, map, "duration", "a freeze fault");
  if (d == NULL || get_duration(ctx, d, "duration", &f->duration_ms) < 0)
    return -1;
  const struct ydoc_node *after = ydoc_get(map, "after");
  f->after_ms = 0;
  return after == NULL ? 0 : get_duration(ctx, after, "after", &f->after_ms);
}

static int parse_oom(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *n = require(ctx, map, "limit", "an oom fault");
  if (n == NULL || expect_kind(ctx, n, YDOC_SCALAR, "limit") < 0)
    return -1;
  if (parse_memory_quantity(n->scalar, &f->memory_limit) < 0 || f->memory_limit == 0)
    return fail_at(ctx, n, "limit must be a memory quantity above zero such as 64Mi, not '%s'",
                   n->scalar);
  return 0;
}

static int parse_pids(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *n = require(ctx, map, "limit", "a pids fault");
  long long v = 0;
  if (n == NULL || get_int(ctx, n, "limit", 1, INT32_MAX, &v) < 0)
    return -1;
  f->pids_limit = v;
  return 0;
}

static int parse_syscall(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *sc = require(ctx, map, "syscall", "a syscall fault");
  const char *s = NULL;
  if (sc == NULL || get_string(ctx, sc, "syscall", &s) < 0)
    return -1;
  int nr = seccomp_syscall_resolve_name(s);
  if (nr == __NR_SCMP_ERROR)
    return fail_at(ctx, sc, "unknown system call '%s'", s);
  if (nr < 0)
    return fail_at(ctx, sc, "system call '%s' does not exist on this architecture", s);
  f->syscall = xstrdup(s);
  f->syscall_nr = nr;

  const struct ydoc_node *en = require(ctx, map, "errno", "a syscall fault");
  if (en == NULL || get_string(ctx, en, "errno", &s) < 0)
    return -1;
  if (scenario_parse_errno(s, &f->errno_value) < 0)
    return fail_at(ctx, en, "unknown errno name '%s' (such as ENOSPC, EIO, EPERM)", s);
  f->errno_name = xstrdup(strerrorname_np(f->errno_value));

  const struct ydoc_node *nth = ydoc_get(map, "nth");
  long long v = 0;
  if (nth != NULL) {
    if (get_int(ctx, nth, "nth", 1, LLONG_MAX, &v) < 0)
      return -1;
    f->nth = v;
  }
  const struct ydoc_node *p = ydoc_get(map, "probability");
  if (p != NULL) {
    if (get_number(ctx, p, "probability", &f->probability) < 0)
      return -1;
    if (f->probability < 0 || f->probability > 1)
      return fail_at(ctx, p, "probability must be between 0 and 1, not %s", p->scalar);
  }
  return 0;
}

static int parse_network(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *n = require(ctx, map, "network", "a network fault");
  if (n == NULL || expect_kind(ctx, n, YDOC_SCALAR, "network") < 0)
    return -1;
  /* Plain `off` is a YAML 1.1 boolean to Kubernetes; here it names the mode. */
  if (strcmp(n->scalar, "off") != 0)
    return fail_at(ctx, n, "network must be 'off' (the only mode), not '%s'", n->scalar);
  f->network = FAULT_NETWORK_OFF;
  return 0;
}

static int parse_deadline(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *scope = ydoc_get(map, "scope");
  const char *s = "workflow";
  if (scope != NULL && get_string(ctx, scope, "scope", &s) < 0)
    return -1;
  f->scope = xstrdup(s);
  const struct ydoc_node *ads = ydoc_get(map, "activeDeadlineSeconds");
  const struct ydoc_node *timeout = ydoc_get(map, "timeout");
  if (ads != NULL && timeout != NULL)
    return fail_at(ctx, timeout, "give activeDeadlineSeconds or timeout, not both");
  if (ads == NULL && timeout == NULL)
    return fail_at(ctx, map, "a deadline fault needs activeDeadlineSeconds or timeout");
  if (ads != NULL) {
    long long v = 0;
    if (get_int(ctx, ads, "activeDeadlineSeconds", 0, INT32_MAX, &v) < 0)
      return -1;
    f->deadline_field = FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS;
    f->deadline_ms = v * 1000;
    return 0;
  }
  if (strcmp(f->scope, "workflow") == 0)
    return fail_at(ctx, timeout,
                   "a workflow has no timeout field: use activeDeadlineSeconds for scope workflow");
  f->deadline_field = FAULT_DEADLINE_TIMEOUT;
  return get_duration(ctx, timeout, "timeout", &f->deadline_ms);
}

static int parse_shutdown(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  const struct ydoc_node *st = require(ctx, map, "strategy", "a shutdown fault");
  const char *s = NULL;
  if (st == NULL || get_string(ctx, st, "strategy", &s) < 0)
    return -1;
  if (strcmp(s, "stop") == 0 || strcmp(s, "Stop") == 0)
    f->strategy = FAULT_SHUTDOWN_STOP;
  else if (strcmp(s, "terminate") == 0 || strcmp(s, "Terminate") == 0)
    f->strategy = FAULT_SHUTDOWN_TERMINATE;
  else
    return fail_at(ctx, st, "strategy must be 'stop' or 'terminate', not '%s'", s);
  const struct ydoc_node *after = ydoc_get(map, "after");
  f->after_ms = 0;
  return after == NULL ? 0 : get_duration(ctx, after, "after", &f->after_ms);
}

/* Crash points are named by stage (exitprobe crash-points lists them). */
static bool crash_point_form_ok(const char *at) {
  static const char *const fixed[] = {"before:exit-handler", "during:exit-handler",
                                      "after:exit-handler", "before:workflow-finished", NULL};
  for (const char *const *p = fixed; *p; p++)
    if (fnmatch(at, *p, 0) == 0)
      return true;
  return (strncmp(at, "after:node-started:", 19) == 0 && at[19] != '\0') ||
         (strncmp(at, "after:node-finished:", 20) == 0 && at[20] != '\0') ||
         strchr(at, '*') != NULL;
}

static int parse_controller_crash(struct parse_ctx *ctx, const struct ydoc_node *map,
                                  struct fault *f) {
  const struct ydoc_node *at = require(ctx, map, "at", "a controller-crash fault");
  const char *text = NULL;
  if (at == NULL || get_string(ctx, at, "at", &text) < 0)
    return -1;
  if (!crash_point_form_ok(text))
    return fail_at(ctx, at,
                   "'%s' is not a crash point: use before:exit-handler, during:exit-handler, "
                   "after:exit-handler, before:workflow-finished, after:node-started:<node> or "
                   "after:node-finished:<node> (see exitprobe crash-points WORKFLOW)",
                   text);
  f->crash_at = xstrdup(text);
  const struct ydoc_node *then = ydoc_get(map, "then");
  const char *mode = "restart";
  if (then != NULL && get_string(ctx, then, "then", &mode) < 0)
    return -1;
  if (strcmp(mode, "restart") == 0)
    f->crash_then = CRASH_THEN_RESTART;
  else if (strcmp(mode, "lose-state") == 0)
    f->crash_then = CRASH_THEN_LOSE_STATE;
  else if (strcmp(mode, "stay-down") == 0)
    f->crash_then = CRASH_THEN_STAY_DOWN;
  else
    return fail_at(ctx, then, "then must be restart, lose-state or stay-down, not '%s'", mode);
  return 0;
}

/* Stopped (SIGSTOP) at a crash point for `duration`, then woken: with a
 * duration past the lease the supervisor has fenced it by then. */
static int parse_controller_hang(struct parse_ctx *ctx, const struct ydoc_node *map,
                                 struct fault *f) {
  if (parse_controller_crash(ctx, map, f) < 0)
    return -1;
  const struct ydoc_node *d = require(ctx, map, "duration", "a controller-hang fault");
  if (d == NULL || get_duration(ctx, d, "duration", &f->duration_ms) < 0)
    return -1;
  f->lease_ms = 1000;
  const struct ydoc_node *lease = ydoc_get(map, "lease");
  if (lease != NULL && get_duration(ctx, lease, "lease", &f->lease_ms) < 0)
    return -1;
  if (f->lease_ms < 10)
    return fail_at(ctx, lease, "lease must be at least 10ms");
  return 0;
}

static int parse_action_fields(struct parse_ctx *ctx, const struct ydoc_node *map,
                               struct fault *f) {
  switch (f->action) {
  case FAULT_EXIT:
    return parse_exit(ctx, map, f);
  case FAULT_SIGNAL:
    return parse_signal_fault(ctx, map, f);
  case FAULT_HANG:
    return 0;
  case FAULT_DELAY:
    return parse_delay(ctx, map, f);
  case FAULT_FREEZE:
    return parse_freeze(ctx, map, f);
  case FAULT_OOM:
    return parse_oom(ctx, map, f);
  case FAULT_PIDS:
    return parse_pids(ctx, map, f);
  case FAULT_SYSCALL:
    return parse_syscall(ctx, map, f);
  case FAULT_NETWORK:
    return parse_network(ctx, map, f);
  case FAULT_DEADLINE:
    return parse_deadline(ctx, map, f);
  case FAULT_SHUTDOWN:
    return parse_shutdown(ctx, map, f);
  case FAULT_CONTROLLER_CRASH:
    return parse_controller_crash(ctx, map, f);
  case FAULT_CONTROLLER_HANG:
    return parse_controller_hang(ctx, map, f);
  }
  return 0;
}

static int parse_fault(struct parse_ctx *ctx, const struct ydoc_node *map, struct fault *f) {
  f->attempt = -1;
  f->after_ms = -1;
  f->duration_ms = -1;
  f->nth = 1;
  f->probability = 1.0;
  f->node = map;
  f->pos = pos_of(map);
  if (expect_kind(ctx, map, YDOC_MAPPING, "a fault") < 0)
    return -1;

  const struct ydoc_node *action = ydoc_get(map, "action");
  const char *name = NULL;
  if (action == NULL) {
    char *list = action_list();
    fail_at(ctx, map, "a fault needs an action (one of: %s)", list);
    free(list);
    return -1;
  }
  if (get_string(ctx, action, "action", &name) < 0)
    return -1;
  const struct action_def *def = NULL;
  for (size_t i = 0; i < N_ACTIONS && def == NULL; i++)
    if (strcmp(action_defs[i].name, name) == 0)
      def = &action_defs[i];
  if (def == NULL) {
    char *list = action_list();
    fail_at(ctx, action, "unknown action '%s' (one of: %s)", name, list);
    free(list);
    return -1;
  }
  f->action = def->action;
  f->action_pos = pos_of(action);
  if (check_fault_keys(ctx, map, def) < 0)
    return -1;

  const struct ydoc_node *target = ydoc_get(map, "target");
  if (target == NULL && def->target == TARGET_REQUIRED)
    return fail_at(ctx, map, "%s %s fault needs a target (a step, task, template or node name)",
                   article(def->name), def->name);
  if (target != NULL) {
    const char *t = NULL;
    if (get_target(ctx, target, "target", &t) < 0)
      return -1;
    f->target = xstrdup(t);
    f->target_pos = pos_of(target);
  }
  const struct ydoc_node *attempt = ydoc_get(map, "attempt");
  long long v = 0;
  if (attempt != NULL) {
    if (get_int(ctx, attempt, "attempt", 0, INT32_MAX, &v) < 0)
      return -1;
    f->attempt = (int)v;
  }
  return parse_action_fields(ctx, map, f);
}

static void fault_free(struct fault *f) {
  free(f->target);
  if (f->on_output != NULL)
    regfree(&f->on_output_re);
  free(f->on_output);
  free(f->syscall);
  free(f->errno_name);
  free(f->scope);
  free(f->crash_at);
}

static int parse_faults(struct parse_ctx *ctx, const struct ydoc_node *n, struct scenario *sc) {
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_SEQUENCE, "faults") < 0)
    return -1;
  sc->faults = xcalloc(n->n_items, sizeof(*sc->faults));
  for (size_t i = 0; i < n->n_items; i++) {
    sc->n_faults++;
    if (parse_fault(ctx, n->items[i], &sc->faults[i]) < 0)
      return -1;
  }
  return 0;
}

/* ---- the rest of the document ------------------------------------------- */

static int parse_name(struct parse_ctx *ctx, const struct ydoc_node *n, char **out) {
  const char *s = NULL;
  if (get_string(ctx, n, "metadata.name", &s) < 0)
    return -1;
  /* It names the report file in --report-dir and the JUnit test case. */
  bool ok = isalnum((unsigned char)s[0]) && strlen(s) <= 253;
  for (const char *p = s; ok && *p != '\0'; p++)
    ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.';
  if (!ok)
    return fail_at(ctx, n,
                   "metadata.name '%s' must start with a letter or digit and contain only "
                   "letters, digits, '-', '_' and '.' (at most 253)",
                   s);
  *out = xstrdup(s);
  return 0;
}

static int parse_metadata(struct parse_ctx *ctx, const struct ydoc_node *root,
                          struct scenario *sc) {
  static const char *const keys[] = {"name", "description", NULL};
  const struct ydoc_node *md = require(ctx, root, "metadata", "a Scenario");
  if (md == NULL || expect_kind(ctx, md, YDOC_MAPPING, "metadata") < 0 ||
      check_keys(ctx, md, "metadata", keys) < 0)
    return -1;
  const struct ydoc_node *name = require(ctx, md, "name", "metadata");
  if (name == NULL || parse_name(ctx, name, &sc->name) < 0)
    return -1;
  const struct ydoc_node *desc = ydoc_get(md, "description");
  const char *s = NULL;
  if (desc != NULL) {
    if (get_string(ctx, desc, "metadata.description", &s) < 0)
      return -1;
    sc->description = xstrdup(s);
  }
  return 0;
}

/* Relative to the scenario file, so that a scenario directory can move. */
static char *resolve_relative(const char *scenario_file, const char *path) {
  const char *slash = strrchr(scenario_file, '/');
  char *out = NULL;
  if (path[0] == '/' || slash == NULL)
    return xstrdup(path);
  if (asprintf(&out, "%.*s/%s", (int)(slash - scenario_file), scenario_file, path) < 0)
    abort();
  return out;
}

static int parse_workflow_ref(struct parse_ctx *ctx, const struct ydoc_node *spec,
                              struct scenario *sc) {
  const struct ydoc_node *path = ydoc_get(spec, "workflow");
  const struct ydoc_node *inline_wf = ydoc_get(spec, "workflowSpec");
  if (path != NULL && inline_wf != NULL)
    return fail_at(ctx, inline_wf, "give either workflow (a file) or workflowSpec, not both");
  if (path == NULL && inline_wf == NULL)
    return fail_at(ctx, spec,
                   "spec needs workflow (a path relative to the scenario) or workflowSpec (an "
                   "inline Workflow)");
  if (inline_wf != NULL) {
    if (expect_kind(ctx, inline_wf, YDOC_MAPPING, "workflowSpec") < 0)
      return -1;
    sc->workflow_spec = inline_wf;
    sc->workflow_pos = pos_of(inline_wf);
    return 0;
  }
  const char *s = NULL;
  if (get_string(ctx, path, "workflow", &s) < 0)
    return -1;
  sc->workflow_path = resolve_relative(ctx->file, s);
  sc->workflow_pos = pos_of(path);
  struct stat st;
  if (stat(sc->workflow_path, &st) < 0)
    return fail_at(ctx, path, "workflow file '%s' (resolved to '%s'): %s", s, sc->workflow_path,
                   strerror(errno));
  if (!S_ISREG(st.st_mode))
    return fail_at(ctx, path, "workflow '%s' (resolved to '%s') is not a regular file", s,
                   sc->workflow_path);
  return 0;
}

static int parse_arguments(struct parse_ctx *ctx, const struct ydoc_node *n,
                           struct scenario *sc) {
  static const char *const arg_keys[] = {"parameters", NULL};
  static const char *const param_keys[] = {"name", "value", NULL};
  if (n == NULL || ydoc_is_null(n))
    return 0;
  if (expect_kind(ctx, n, YDOC_MAPPING, "arguments") < 0 ||
      check_keys(ctx, n, "arguments", arg_keys) < 0)
    return -1;
  const struct ydoc_node *list = ydoc_get(n, "parameters");
  if (list == NULL || ydoc_is_null(list))
    return 0;
  if (expect_kind(ctx, list, YDOC_SEQUENCE, "arguments.parameters") < 0)
    return -1;
  sc->params = xcalloc(list->n_items, sizeof(*sc->params));
  for (size_t i = 0; i < list->n_items; i++) {
    const struct ydoc_node *item = list->items[i];
    const char *name = NULL;
    if (expect_kind(ctx, item, YDOC_MAPPING, "a parameter") < 0 ||
        check_keys(ctx, item, "a parameter", param_keys) < 0)
      return -1;
    const struct ydoc_node *nn = require(ctx, item, "name", "a parameter");
    if (nn == NULL || get_string(ctx, nn, "parameter name", &name) < 0)
      return -1;
    const struct ydoc_node *vn = require(ctx, item, "value", "a parameter");
    if (vn == NULL || expect_kind(ctx, vn, YDOC_SCALAR, "parameter value") < 0)
      return -1;
    for (size_t j = 0; j < sc->n_params; j++)
      if (strcmp(sc->params[j].name, name) == 0)
        return fail_at(ctx, nn, "parameter '%s' is given twice (first at line %d)", name,
                       sc->params[j].pos.line);
    struct scenario_param *p = &sc->params[sc->n_params++];
    p->name = xstrdup(name);
    p->value = xstrdup(vn->scalar);
    p->pos = pos_of(item);
  }
  sc->overrides = xcalloc(sc->n_params, sizeof(*sc->overrides));
  for (size_t i = 0; i < sc->n_params; i++) {
    sc->overrides[i].name = sc->params[i].name;
    sc->overrides[i].value = sc->params[i].value;
  }
  return 0;
}

static int parse_spec(struct parse_ctx *ctx, const struct ydoc_node *root, struct scenario *sc) {
  static const char *const keys[] = {"workflow",  "workflowSpec", "arguments", "seed",
                                     "timeScale", "faults",       "expect",    "delivery",
                                     "compensate", "stateProbe", "mocks", NULL};
  const struct ydoc_node *spec = require(ctx, root, "spec", "a Scenario");
  if (spec == NULL || expect_kind(ctx, spec, YDOC_MAPPING, "spec") < 0 ||
      check_keys(ctx, spec, "spec", keys) < 0 || parse_workflow_ref(ctx, spec, sc) < 0 ||
      parse_arguments(ctx, ydoc_get(spec, "arguments"), sc) < 0)
    return -1;

  const struct ydoc_node *seed = ydoc_get(spec, "seed");
  if (seed != NULL) {
    long long v = 0;
    if (get_int(ctx, seed, "seed", 0, LLONG_MAX, &v) < 0)
      return -1;
    sc->seed = (uint64_t)v;
    sc->seed_given = true;
  }
  const struct ydoc_node *scale = ydoc_get(spec, "timeScale");
  if (scale != NULL) {
    if (get_number(ctx, scale, "timeScale", &sc->time_scale) < 0)
      return -1;
    if (!(sc->time_scale > 0))
      return fail_at(ctx, scale, "timeScale must be above 0, not %s", scale->scalar);
  }
  if (parse_faults(ctx, ydoc_get(spec, "faults"), sc) < 0 ||
      mocks_parse(ctx->file, ydoc_get(spec, "mocks"), &sc->mocks, &sc->n_mocks, ctx->err) < 0)
    return -1;
  const struct ydoc_node *delivery = ydoc_get(spec, "delivery");
  if (delivery != NULL) {
    const char *d = NULL;
    if (get_string(ctx, delivery, "delivery", &d) < 0)
      return -1;
    if (strcmp(d, "at-most-once") == 0)
      sc->at_most_once = true;
    else if (strcmp(d, "at-least-once") != 0)
      return fail_at(ctx, delivery, "delivery must be at-least-once or at-most-once, not '%s'", d);
  }
  const struct ydoc_node *compensate = ydoc_get(spec, "compensate");
  if (compensate != NULL && compensate->kind == YDOC_MAPPING) {
    /* Inline: a template like the workflow's own, checked when it joins it. */
    const struct ydoc_node *name = require(ctx, compensate, "name", "an inline compensate template");
    if (name == NULL || get_string(ctx, name, "name", &sc->compensate) < 0)
      return -1;
    sc->compensate_node = compensate;
    sc->compensate_inline = true;
  } else if (compensate != NULL) {
    if (get_string(ctx, compensate, "compensate", &sc->compensate) < 0)
      return -1;
    sc->compensate_node = compensate;
  }
  const struct ydoc_node *probe = ydoc_get(spec, "stateProbe");
  if (probe != NULL) {
    if (get_string(ctx, probe, "stateProbe", &sc->state_probe) < 0)
      return -1;
  }
  const struct ydoc_node *expect = ydoc_get(spec, "expect");
  if (expect != NULL && !ydoc_is_null(expect)) {
    if (expectations_validate(ctx->file, expect, ctx->err) < 0)
      return -1;
    sc->expect = expect;
  }
  return 0;
}

static int parse_document(struct parse_ctx *ctx, const struct ydoc_node *root,
                          struct scenario *sc) {
  static const char *const keys[] = {"apiVersion", "kind", "metadata", "spec", NULL};
  if (root == NULL)
    return ep_error_at(ctx->err, EP_EXIT_USAGE, ctx->file, 1, 1,
                       "the file is empty: expected a Scenario");
  if (expect_kind(ctx, root, YDOC_MAPPING, "a Scenario document") < 0)
    return -1;
  const struct ydoc_node *kind = require(ctx, root, "kind", "a Scenario");
  if (kind == NULL || expect_kind(ctx, kind, YDOC_SCALAR, "kind") < 0)
    return -1;
  if (strcmp(kind->scalar, SCENARIO_KIND) != 0)
    return fail_at(ctx, kind, "kind must be %s, not '%s'", SCENARIO_KIND, kind->scalar);
  const struct ydoc_node *api = require(ctx, root, "apiVersion", "a Scenario");
  if (api == NULL || expect_kind(ctx, api, YDOC_SCALAR, "apiVersion") < 0)
    return -1;
  if (strcmp(api->scalar, SCENARIO_API_VERSION) != 0)
    return fail_at(ctx, api, "apiVersion must be %s, not '%s'", SCENARIO_API_VERSION,
                   api->scalar);
  if (check_keys(ctx, root, "a Scenario", keys) < 0 || parse_metadata(ctx, root, sc) < 0 ||
      parse_spec(ctx, root, sc) < 0)
    return -1;
  return 0;
}

int scenario_load_file(const char *path, struct scenario **out, ep_error **err) {
  struct ydoc *doc = NULL;
  *out = NULL;
  if (ydoc_load_file(path, NULL, &doc, err) < 0)
    return -1;
  struct scenario *sc = xcalloc(1, sizeof(*sc));
  sc->doc = doc;
  sc->file = xstrdup(path);
  sc->time_scale = 1.0;
  struct parse_ctx ctx = {.file = path, .err = err};
  if (parse_document(&ctx, doc->root, sc) < 0) {
    scenario_free(sc);
    return -1;
  }
  *out = sc;
  return 0;
}

void scenario_free(struct scenario *sc) {
  if (sc == NULL)
    return;
  free(sc->file);
  free(sc->name);
  free(sc->description);
  free(sc->workflow_path);
  for (size_t i = 0; i < sc->n_params; i++) {
    free(sc->params[i].name);
    free(sc->params[i].value);
  }
  free(sc->params);
  free(sc->overrides);
  for (size_t i = 0; i < sc->n_faults; i++)
    fault_free(&sc->faults[i]);
  free(sc->faults);
  mocks_free(sc->mocks, sc->n_mocks);
  ydoc_free(sc->doc);
  free(sc);
}

/* ---- the workflow document ---------------------------------------------- */

static struct ydoc_node *mapping_value(struct ydoc_node *map, const char *key) {
  if (map == NULL || map->kind != YDOC_MAPPING)
    return NULL;
  for (size_t i = 0; i < map->n_pairs; i++)
    if (strcmp(map->pairs[i].key->scalar, key) == 0)
      return map->pairs[i].value;
  return NULL;
}

int scenario_load_workflow_doc(const struct scenario *sc, struct ydoc **out, ep_error **err) {
  *out = NULL;
  if (sc->workflow_path != NULL)
    return ydoc_load_file(sc->workflow_path, NULL, out, err);
  /* A second copy: the workflow takes ownership of its document while the
   * scenario keeps its own for sc->expect. */
  struct ydoc *doc = NULL;
  if (ydoc_load_file(sc->file, NULL, &doc, err) < 0)
    return -1;
  struct ydoc_node *wf = mapping_value(mapping_value(doc->root, "spec"), "workflowSpec");
  if (wf == NULL || wf->line != sc->workflow_pos.line || wf->column != sc->workflow_pos.column) {
    ydoc_free(doc);
    return ep_error_at(err, EP_EXIT_USAGE, sc->file, sc->workflow_pos.line,
                       sc->workflow_pos.column, "the scenario file changed while it was in use");
  }
  doc->root = wf;
  *out = doc;
  return 0;
}

/* ---- targets against the workflow --------------------------------------- */

static bool name_matches(const char *pattern, const char *name) {
  return name != NULL && (strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0);
}

struct name_set {
  char **names;
  size_t n, cap;
};

static void name_set_add(struct name_set *s, const char *name) {
  if (name == NULL)
    return;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->names[i], name) == 0)
      return;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->names = realloc(s->names, s->cap * sizeof(char *));
    if (s->names == NULL)
      abort();
  }
  s->names[s->n++] = xstrdup(name);
}

static void name_set_free(struct name_set *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->names[i]);
  free(s->names);
}

static void collect_names(const struct workflow *wf, struct name_set *s) {
  char *on_exit = NULL;
  name_set_add(s, wf->name);
  if (asprintf(&on_exit, "%s.onExit", wf->name) < 0)
    abort();
  name_set_add(s, on_exit);
  free(on_exit);
  for (size_t i = 0; i < wf->n_templates; i++) {
    const struct wf_template *t = &wf->templates[i];
    name_set_add(s, t->name);
    for (size_t g = 0; g < t->n_groups; g++)
      for (size_t k = 0; k < t->groups[g].n_steps; k++)
        name_set_add(s, t->groups[g].steps[k].name);
    for (size_t k = 0; k < t->n_tasks; k++)
      name_set_add(s, t->tasks[k].name);
  }
}

static int check_one_target(struct parse_ctx *ctx, const struct name_set *names,
                            const char *target, const struct ydoc_node *at, const char *what,
                            const char *wf_name) {
  /* Hierarchical names (wf[0].work, work(1)) are only known at run time. */
  if (strpbrk(target, ".[(") != NULL)
    return 0;
  for (size_t i = 0; i < names->n; i++)
    if (name_matches(target, names->names[i]))
      return 0;
  /* List what could have been meant, without flooding the terminal. */
  char list[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < names->n && used < sizeof(list) - 64; i++) {
    int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names->names[i]);
    if (w > 0)
      used += (size_t)w;
  }
  if (used >= sizeof(list) - 64 && used < sizeof(list))
    snprintf(list + used, sizeof(list) - used, ", ...");
  return fail_at(ctx, at, "%s '%s' matches no node of workflow '%s' (names: %s)", what, target,
                 wf_name, list);
}

static int check_expect_targets(struct parse_ctx *ctx, const struct name_set *names,
                                const struct ydoc_node *expect, const char *section,
                                const char *wf_name) {
  const struct ydoc_node *map = ydoc_get(expect, section);
  if (map == NULL || map->kind != YDOC_MAPPING)
    return 0;
  char what[32];
  snprintf(what, sizeof(what), "%s target", section);
  for (size_t i = 0; i < map->n_pairs; i++) {
    const struct ydoc_node *key = map->pairs[i].key;
    if (check_one_target(ctx, names, key->scalar, key, what, wf_name) < 0)
      return -1;
  }
  return 0;
}

int scenario_add_compensate(const struct scenario *sc, struct workflow *wf, ep_error **err) {
  if (!sc->compensate_inline)
    return 0;
  return workflow_add_template(wf, sc->file, sc->compensate_node, err);
}

int scenario_check_targets(const struct scenario *sc, const struct workflow *wf, ep_error **err) {
  struct parse_ctx ctx = {.file = sc->file, .err = err};
  struct name_set names = {0};
  int rc = -1;
  collect_names(wf, &names);
  for (size_t i = 0; i < sc->n_faults; i++) {
    const struct fault *f = &sc->faults[i];
    if (f->target != NULL &&
        check_one_target(&ctx, &names, f->target, ydoc_get(f->node, "target"), "target",
                         wf->name) < 0)
      goto out;
    if (f->action == FAULT_DEADLINE && strcmp(f->scope, "workflow") != 0 &&
        workflow_find_template(wf, f->scope) == NULL) {
      const struct ydoc_node *scope = ydoc_get(f->node, "scope");
      fail_at(&ctx, scope ? scope : f->node,
              "scope '%s' is neither 'workflow' nor a template of workflow '%s'", f->scope,
              wf->name);
      goto out;
    }
  }
  if (sc->compensate != NULL && !sc->compensate_inline &&
      workflow_find_template(wf, sc->compensate) == NULL) {
    fail_at(&ctx, sc->compensate_node, "compensate: '%s' is not a template of workflow '%s'",
            sc->compensate, wf->name);
    goto out;
  }
  if (check_expect_targets(&ctx, &names, sc->expect, "nodes", wf->name) < 0 ||
      check_expect_targets(&ctx, &names, sc->expect, "logs", wf->name) < 0 ||
      mocks_check(sc->file, sc->mocks, sc->n_mocks, wf, err) < 0)
    goto out;
  rc = 0;
out:
  name_set_free(&names);
  return rc;
}

/* ---- finding scenarios -------------------------------------------------- */

/* Fallback for files that do not parse: a scenario with a syntax error must
 * still be picked up so that its error is reported rather than skipped. */
static bool text_says_scenario(const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "kind:", 5) != 0)
      continue;
    const char *p = line + 5;
    p += strspn(p, " \t\"'");
    if (strncmp(p, SCENARIO_KIND, strlen(SCENARIO_KIND)) == 0) {
      p += strlen(SCENARIO_KIND);
      p += strspn(p, " \t\"'");
      found = *p == '\0' || *p == '\n' || *p == '\r' || *p == '#';
    }
  }
  fclose(f);
  return found;
}

bool scenario_file_looks_like_scenario(const char *path) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  if (ydoc_load_file(path, NULL, &doc, &err) < 0) {
    ep_error_free(&err);
    return text_says_scenario(path);
  }
  const struct ydoc_node *kind = ydoc_get(doc->root, "kind");
  bool yes = kind != NULL && kind->kind == YDOC_SCALAR && strcmp(kind->scalar, SCENARIO_KIND) == 0;
  ydoc_free(doc);
  return yes;
}

struct path_list {
  char **paths;
  size_t n, cap;
};

static void path_list_add(struct path_list *l, char *path) {
  if (l->n + 1 >= l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->paths = realloc(l->paths, l->cap * sizeof(char *));
    if (l->paths == NULL)
      abort();
  }
  l->paths[l->n++] = path;
  l->paths[l->n] = NULL;
}

static bool has_yaml_suffix(const char *name) {
  size_t len = strlen(name);
  return (len > 5 && strcmp(name + len - 5, ".yaml") == 0) ||
         (len > 4 && strcmp(name + len - 4, ".yml") == 0);
}

enum { COLLECT_MAX_DEPTH = 64 };

static int collect(const char *dir, int depth, struct path_list *out, ep_error **err) {
  if (depth > COLLECT_MAX_DEPTH)
    return ep_error_set(err, EP_EXIT_USAGE, "'%s': directories nested deeper than %d", dir,
                        COLLECT_MAX_DEPTH);
  DIR *d = opendir(dir);
  if (d == NULL)
    return ep_error_set_errno(err, EP_EXIT_USAGE, errno, "cannot read directory '%s'", dir);
  size_t dir_len = strlen(dir);
  const char *sep = dir_len > 0 && dir[dir_len - 1] == '/' ? "" : "/";
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char *path = NULL;
    if (asprintf(&path, "%s%s%s", dir, sep, e->d_name) < 0)
      abort();
    struct stat st;
    /* lstat: a symlinked directory could lead back up the tree. */
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      rc = collect(path, depth + 1, out, err);
      free(path);
    } else if (has_yaml_suffix(e->d_name) && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
               scenario_file_looks_like_scenario(path)) {
      path_list_add(out, path);
    } else {
      free(path);
    }
  }
  if (rc == 0 && errno != 0)
    rc = ep_error_set_errno(err, EP_EXIT_USAGE, errno, "cannot read directory '%s'", dir);
  closedir(d);
  return rc;
}

static int compare_paths(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int scenario_collect_dir(const char *dir, char ***paths, size_t *n, ep_error **err) {
  struct path_list list = {0};
  *paths = NULL;
  *n = 0;
  if (collect(dir, 0, &list, err) < 0) {
    scenario_paths_free(list.paths, list.n);
    return -1;
  }
  if (list.paths == NULL)
    list.paths = xcalloc(1, sizeof(char *));
  qsort(list.paths, list.n, sizeof(char *), compare_paths);
  *paths = list.paths;
  *n = list.n;
  return 0;
}

void scenario_paths_free(char **paths, size_t n) {
  if (paths == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    free(paths[i]);
  free(paths);
}

/* ---- describing a fault ------------------------------------------------- */

static void format_ms(char *buf, size_t size, int64_t ms) {
  if (ms != 0 && ms % 3600000 == 0)
    snprintf(buf, size, "%" PRId64 "h", ms / 3600000);
  else if (ms != 0 && ms % 60000 == 0)
    snprintf(buf, size, "%" PRId64 "m", ms / 60000);
  else if (ms != 0 && ms % 1000 == 0)
    snprintf(buf, size, "%" PRId64 "s", ms / 1000);
  else
    snprintf(buf, size, "%" PRId64 "ms", ms);
}

static void signal_text(int sig, char *buf, size_t size) {
  if (sig < 32 && sigabbrev_np(sig) != NULL)
    snprintf(buf, size, "SIG%s", sigabbrev_np(sig));
  else
    snprintf(buf, size, "signal %d", sig);
}

static const char *shutdown_verb(const struct fault *f) {
  return f->strategy == FAULT_SHUTDOWN_STOP ? "stop" : "terminate";
}

static int describe_action(const struct fault *f, char **what) {
  char a[32], b[32];
  const char *t = f->target ? f->target : "";
  bool whole = f->scope != NULL && strcmp(f->scope, "workflow") == 0;
  switch (f->action) {
  case FAULT_EXIT:
    if (f->when == FAULT_WHEN_INSTEAD)
      return asprintf(what, "exit %d instead of running '%s'", f->exit_code, t);
    return asprintf(what, "exit %d after '%s' runs", f->exit_code, t);
  case FAULT_SIGNAL:
    signal_text(f->signal, b, sizeof(b));
    if (f->on_output != NULL)
      return asprintf(what, "send %s to '%s' when its output matches /%s/", b, t, f->on_output);
    if (f->at_start)
      return asprintf(what, "send %s to '%s' at start", b, t);
    format_ms(a, sizeof(a), f->after_ms);
    return asprintf(what, "send %s to '%s' after %s", b, t, a);
  case FAULT_HANG:
    return asprintf(what, "hang '%s' (it never ends by itself)", t);
  case FAULT_DELAY:
    format_ms(a, sizeof(a), f->duration_ms);
    return asprintf(what, "delay the start of '%s' by %s", t, a);
  case FAULT_FREEZE:
    format_ms(a, sizeof(a), f->after_ms);
    format_ms(b, sizeof(b), f->duration_ms);
    return asprintf(what, "freeze '%s' after %s for %s", t, a, b);
  case FAULT_OOM:
    return asprintf(what, "limit '%s' to %" PRIu64 " bytes of memory", t, f->memory_limit);
  case FAULT_PIDS:
    return asprintf(what, "limit '%s' to %" PRId64 " processes", t, f->pids_limit);
  case FAULT_SYSCALL:
    return asprintf(what, "fail %s() with %s in '%s' from call %" PRId64 " on, probability %g",
                    f->syscall, f->errno_name, t, f->nth, f->probability);
  case FAULT_NETWORK:
    return asprintf(what, "network off for '%s'", t);
  case FAULT_DEADLINE:
    format_ms(a, sizeof(a), f->deadline_ms);
    return asprintf(what, "set %s of %s%s%s to %s",
                    f->deadline_field == FAULT_DEADLINE_TIMEOUT ? "timeout"
                                                                : "activeDeadlineSeconds",
                    whole ? "the workflow" : "template '", whole ? "" : f->scope,
                    whole ? "" : "'", a);
  case FAULT_CONTROLLER_CRASH:
    return asprintf(what, "crash the controller (SIGKILL) at %s, then %s", f->crash_at,
                    f->crash_then == CRASH_THEN_RESTART      ? "restart it"
                    : f->crash_then == CRASH_THEN_LOSE_STATE ? "restart it with its state lost"
                                                             : "leave it down");
  case FAULT_CONTROLLER_HANG:
    format_ms(a, sizeof(a), f->duration_ms);
    format_ms(b, sizeof(b), f->lease_ms);
    return asprintf(what, "stop the controller (SIGSTOP) at %s for %s (lease %s), then %s",
                    f->crash_at, a, b,
                    f->crash_then == CRASH_THEN_RESTART      ? "restart it"
                    : f->crash_then == CRASH_THEN_LOSE_STATE ? "restart it with its state lost"
                                                             : "leave it down");
  case FAULT_SHUTDOWN:
    format_ms(a, sizeof(a), f->after_ms);
    if (f->target != NULL)
      return asprintf(what, "%s the workflow %s after '%s' starts", shutdown_verb(f), a, t);
    return asprintf(what, "%s the workflow after %s", shutdown_verb(f), a);
  }
  return asprintf(what, "unknown fault");
}

char *fault_describe(const struct fault *f) {
  char *what = NULL, *out = NULL;
  if (describe_action(f, &what) < 0)
    abort();
  if (f->attempt < 0)
    return what;
  if (asprintf(&out, "%s (attempt %d only)", what, f->attempt) < 0)
    abort();
  free(what);
  return out;
}
