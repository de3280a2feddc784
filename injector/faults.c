#include "faults.h"
#include "../runner/xalloc.h"

#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What became of one fault during the run. */
struct fault_state {
  bool sent;      /* a signal fault's signal reached a live process of the step */
  bool sent_tried;
  int64_t sent_at_us;
  bool fired;
  int64_t fired_at_us;
  char *node_id;
  char *detail;
  /* delay: when the target was first seen waiting, per plan (first node only) */
  int64_t delay_started_us;
  char *delay_node;
  /* freeze: when to thaw */
  int64_t thaw_at_us;
};

struct fault_plan {
  const struct fault *faults;
  size_t n;
  struct fault_state *states;
  uint64_t rng;
  double time_scale;
  int64_t shutdown_anchor_us; /* start of the first node a targeted shutdown names */
};


struct fault_plan *fault_plan_new(const struct fault *faults, size_t n, uint64_t seed,
                                  double time_scale) {
  struct fault_plan *p = calloc(1, sizeof(*p));
  if (p == NULL)
    abort();
  p->faults = faults;
  p->n = n;
  p->states = calloc(n + 1, sizeof(*p->states));
  if (p->states == NULL)
    abort();
  /* splitmix64 seeding: the same seed gives the same draws, run after run. */
  p->rng = seed ^ 0x9e3779b97f4a7c15ULL;
  p->time_scale = time_scale > 0 ? time_scale : 1.0;
  return p;
}

void fault_plan_free(struct fault_plan *plan) {
  if (plan == NULL)
    return;
  for (size_t i = 0; i < plan->n; i++) {
    free(plan->states[i].node_id);
    free(plan->states[i].detail);
    free(plan->states[i].delay_node);
  }
  free(plan->states);
  free(plan);
}

/* Fault times are real time: timeScale shrinks the controller's clocks
 * (deadlines, backoff), not the moments a fault is aimed at. */
static int64_t scaled_us(const struct fault_plan *plan, int64_t ms) {
  (void)plan;
  return ms * 1000;
}

static void fire(struct fault_plan *plan, size_t i, const struct wf_node *node, int64_t now,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fire(struct fault_plan *plan, size_t i, const struct wf_node *node, int64_t now,
                 const char *fmt, ...) {
  struct fault_state *s = &plan->states[i];
  if (s->fired)
    return;
  s->fired = true;
  s->fired_at_us = now;
  if (node != NULL)
    s->node_id = xstrdup(node->id);
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s->detail, fmt, ap) < 0)
      abort();
    va_end(ap);
  }
}

static bool glob_match(const char *pattern, const char *name) {
  return name != NULL && (strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0);
}

/* "X(k)" with k the attempt, for attempts under a Retry node. */
static int attempt_of(const struct wf_node *node) {
  if (!node->retried)
    return 0;
  const char *open = strrchr(node->name, '(');
  return open ? atoi(open + 1) : 0;
}

/* The name a target matches for an attempt is the retried step's: "work"
 * for "work(1)". */
static bool matches_base(const char *pattern, const char *name, bool retried) {
  if (!retried || name == NULL)
    return glob_match(pattern, name);
  const char *open = strrchr(name, '(');
  if (open == NULL)
    return glob_match(pattern, name);
  char *base = strndup(name, (size_t)(open - name));
  bool m = glob_match(pattern, base) || glob_match(pattern, name);
  free(base);
  return m;
}

bool fault_targets_node(const struct fault *f, const struct wf_node *node) {
  if (f->target == NULL)
    return false;
  if (f->attempt >= 0 && attempt_of(node) != f->attempt)
    return false;
  return matches_base(f->target, node->display_name, node->retried) ||
         glob_match(f->target, node->template_name) ||
         matches_base(f->target, node->name, node->retried);
}

static bool step_level(enum fault_action a) {
  return a != FAULT_DEADLINE && a != FAULT_SHUTDOWN;
}

int64_t fault_plan_delay(struct fault_plan *plan, const struct wf_node *node, int64_t now_us) {
  int64_t wait = 0;
  for (size_t i = 0; plan && i < plan->n; i++) {
    const struct fault *f = &plan->faults[i];
    struct fault_state *s = &plan->states[i];
    if (f->action != FAULT_DELAY || !fault_targets_node(f, node))
      continue;
    if (s->delay_node != NULL && strcmp(s->delay_node, node->id) != 0)
      continue; /* a delay holds back the first matching step */
    if (s->delay_node == NULL) {
      s->delay_node = xstrdup(node->id);
      s->delay_started_us = now_us;
    }
    int64_t until = s->delay_started_us + scaled_us(plan, f->duration_ms);
    if (now_us < until) {
      if (until - now_us > wait)
        wait = until - now_us;
    } else {
      fire(plan, i, node, now_us, "started %.3fs late",
           (double)(now_us - s->delay_started_us) / 1e6);
    }
  }
  return wait;
}

static char **strv_dup_prefixed(const char *const *prefix, size_t n_prefix, char *const *argv) {
  size_t n = 0;
  while (argv && argv[n])
    n++;
  char **out = calloc(n_prefix + n + 1, sizeof(char *));
  if (out == NULL)
    abort();
  for (size_t i = 0; i < n_prefix; i++)
    out[i] = xstrdup(prefix[i]);
  for (size_t i = 0; i < n; i++)
    out[n_prefix + i] = xstrdup(argv[i]);
  return out;
}

static void replace_argv(struct step_faults *sf, struct sandbox_step_spec *spec, char **argv) {
  if (sf->argv != NULL) {
    for (char **p = sf->argv; *p; p++)
      free(*p);
    free(sf->argv);
  }
  sf->argv = argv;
  spec->argv = argv;
}

void fault_plan_prepare_step(struct fault_plan *plan, const struct wf_node *node,
                             struct sandbox_step_spec *spec, struct step_faults *sf) {
  memset(sf, 0, sizeof(*sf));
  if (plan == NULL)
    return;
  sf->indices = calloc(plan->n + 1, sizeof(size_t));
  if (sf->indices == NULL)
    abort();
  for (size_t i = 0; i < plan->n; i++) {
    const struct fault *f = &plan->faults[i];
    if (!step_level(f->action) || !fault_targets_node(f, node))
      continue;
    /* Step faults fire once: on the first step they match. */
    if (plan->states[i].fired && f->action != FAULT_OOM && f->action != FAULT_PIDS)
      continue;
    sf->indices[sf->n++] = i;
    char code[16];
    snprintf(code, sizeof(code), "%d", f->exit_code);
    switch (f->action) {
    case FAULT_EXIT:
      if (f->when == FAULT_WHEN_INSTEAD) {
        const char *argv[] = {"/bin/sh", "-c", "exit \"$1\"", "exitprobe-fault", code};
        replace_argv(sf, spec, strv_dup_prefixed(argv, 5, NULL));
      } else {
        /* Run the step, then exit with the code whatever it returned. */
        const char *prefix[] = {"/bin/sh", "-c", "code=$1; shift; \"$@\"; exit \"$code\"",
                                "exitprobe-fault", code};
        replace_argv(sf, spec, strv_dup_prefixed(prefix, 5, spec->argv));
      }
      break;
    case FAULT_SIGNAL:
      if (f->at_start) {
        /* "As soon as it starts": the step's first act is to receive the
         * signal, so a fast command cannot finish before it lands. */
        char script[96];
        snprintf(script, sizeof(script), "kill -s %s $$; exec \"$@\"", sigabbrev_np(f->signal));
        const char *prefix[] = {"/bin/sh", "-c", script, "exitprobe-fault"};
        replace_argv(sf, spec, strv_dup_prefixed(prefix, 4, spec->argv));
      }
      break;
    case FAULT_HANG: {
      const char *argv[] = {"/bin/sh", "-c", "while :; do sleep 3600; done"};
      replace_argv(sf, spec, strv_dup_prefixed(argv, 3, NULL));
      break;
    }
    case FAULT_OOM:
      spec->memory_limit = f->memory_limit;
      break;
    case FAULT_PIDS:
      spec->pids_limit = f->pids_limit;
      break;
    case FAULT_NETWORK:
      spec->network_isolated = true;
      break;
    case FAULT_SYSCALL:
      if (sf->n_syscalls < sizeof(sf->syscalls) / sizeof(sf->syscalls[0])) {
        size_t k = sf->n_syscalls++;
        /* Through the supervisor even for "every call": then a firing is seen, not assumed. */
        sf->syscalls[k] = (struct sandbox_syscall_fault){
            .nr = f->syscall_nr, .errno_value = f->errno_value, .always = false, .tag = k};
        sf->syscall_fault[k] = i;
        sf->syscall_rng[k] = plan->rng ^ ((uint64_t)fnv1a32(node->name) << 32) ^ (uint64_t)i;
        spec->syscall_faults = sf->syscalls;
        spec->n_syscall_faults = sf->n_syscalls;
      }
      break;
    default:
      break;
    }
  }
}

/* splitmix64: a small, well-distributed generator.  Each (fault, step)
 * pair draws from its own stream seeded from the scenario's seed, the fault
 * and the node's name, so the same seed gives the same decisions however
 * parallel steps interleave. */
static double next_uniform(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

int fault_plan_decide_syscall(struct fault_plan *plan, const struct wf_node *node,
                              struct step_faults *sf, size_t tag, int64_t now_us) {
  if (plan == NULL || tag >= sf->n_syscalls)
    return 0;
  size_t i = sf->syscall_fault[tag];
  const struct fault *f = &plan->faults[i];
  int64_t call = ++sf->syscall_calls[tag];
  if (call < f->nth)
    return 0;
  if (f->probability < 1.0 && next_uniform(&sf->syscall_rng[tag]) >= f->probability)
    return 0;
  fire(plan, i, node, now_us, "%s failed with %s from call %lld on", f->syscall, f->errno_name,
       (long long)call);
  return f->errno_value;
}

/* A signal fault fires when the step dies of the signal; a step that
 * ended before the signal reached it makes the fault not fire. */
static void send_signal(struct fault_plan *plan, size_t i, struct sandbox_step *step,
                        int64_t now_us) {
  struct fault_state *s = &plan->states[i];
  s->sent_at_us = now_us;
  s->sent = sandbox_signal_all(step, plan->faults[i].signal, NULL) > 0;
  s->sent_tried = true;
}

void fault_plan_step_started(struct fault_plan *plan, const struct wf_node *node,
                             struct step_faults *sf, struct sandbox_step *step, int64_t now_us) {
  sf->launched_us = now_us;
  for (size_t k = 0; plan && k < sf->n; k++) {
    size_t i = sf->indices[k];
    const struct fault *f = &plan->faults[i];
    switch (f->action) {
    case FAULT_EXIT:
      if (f->when == FAULT_WHEN_INSTEAD)
        fire(plan, i, node, now_us, "command replaced by exit %d", f->exit_code);
      break;
    case FAULT_HANG:
      fire(plan, i, node, now_us, "command replaced by an endless wait");
      break;
    case FAULT_NETWORK:
      fire(plan, i, node, now_us, "own network namespace: loopback only");
      break;
    case FAULT_SIGNAL:
      if (f->at_start) {
        plan->states[i].sent = plan->states[i].sent_tried = true; /* the wrapper delivers it */
        plan->states[i].sent_at_us = now_us;
      }
      break;
    default:
      break;
    }
  }
}

int64_t fault_plan_tick(struct fault_plan *plan, const struct wf_node *node,
                        struct step_faults *sf, struct sandbox_step *step, int64_t now_us) {
  int64_t next = 0;
#define WANT(t)                                                                                \
  do {                                                                                         \
    if (next == 0 || (t) < next)                                                               \
      next = (t);                                                                              \
  } while (0)
  for (size_t k = 0; plan && k < sf->n; k++) {
    size_t i = sf->indices[k];
    const struct fault *f = &plan->faults[i];
    struct fault_state *s = &plan->states[i];
    if (f->action == FAULT_SIGNAL && !s->sent_tried && f->after_ms >= 0 && !f->at_start &&
        f->on_output == NULL) {
      int64_t at = sf->launched_us + scaled_us(plan, f->after_ms);
      if (now_us >= at) {
        send_signal(plan, i, step, now_us);
      } else {
        WANT(at);
      }
    } else if (f->action == FAULT_FREEZE) {
      int64_t at = sf->launched_us + scaled_us(plan, f->after_ms > 0 ? f->after_ms : 0);
      if (!s->fired) {
        if (now_us >= at) {
          ep_error *e = NULL;
          if (sandbox_freeze(step, true, &e) == 0) {
            sf->frozen = true;
            s->thaw_at_us = now_us + scaled_us(plan, f->duration_ms > 0 ? f->duration_ms : 0);
            fire(plan, i, node, now_us, "frozen for %.3fs",
                 (double)(s->thaw_at_us - now_us) / 1e6);
            WANT(s->thaw_at_us);
          } else {
            s->detail = strdup(e->message);
            ep_error_free(&e);
          }
        } else {
          WANT(at);
        }
      } else if (sf->frozen) {
        if (now_us >= s->thaw_at_us) {
          sandbox_freeze(step, false, NULL);
          sf->frozen = false;
        } else {
          WANT(s->thaw_at_us);
        }
      }
    }
  }
#undef WANT
  return next;
}

void fault_plan_output_line(struct fault_plan *plan, const struct wf_node *node,
                            struct step_faults *sf, struct sandbox_step *step, const char *line,
                            size_t len, int64_t now_us) {
  for (size_t k = 0; plan && k < sf->n; k++) {
    size_t i = sf->indices[k];
    const struct fault *f = &plan->faults[i];
    if (f->action != FAULT_SIGNAL || f->on_output == NULL || plan->states[i].fired)
      continue;
    char *text = strndup(line, len);
    if (text == NULL)
      abort();
    if (len > 0 && text[len - 1] == '\n')
      text[len - 1] = '\0';
    if (!plan->states[i].sent_tried && regexec(&f->on_output_re, text, 0, NULL, 0) == 0)
      send_signal(plan, i, step, now_us);
    free(text);
  }
}

void fault_plan_step_ended(struct fault_plan *plan, const struct wf_node *node,
                           struct step_faults *sf, const struct sandbox_result *result,
                           int64_t now_us) {
  for (size_t k = 0; plan && k < sf->n; k++) {
    size_t i = sf->indices[k];
    const struct fault *f = &plan->faults[i];
    switch (f->action) {
    case FAULT_EXIT:
      if (f->when == FAULT_WHEN_AFTER && !result->setup_failed)
        fire(plan, i, node, now_us, "ran, then exited %d", f->exit_code);
      break;
    case FAULT_OOM:
      if (result->oom_killed)
        fire(plan, i, node, now_us, "the kernel's OOM killer ended the step (memory peak %llu bytes)",
             (unsigned long long)result->memory_peak);
      else if (plan->states[i].detail == NULL &&
               asprintf(&plan->states[i].detail,
                        "the step stayed under the %llu-byte limit: no OOM kill",
                        (unsigned long long)f->memory_limit) < 0)
        abort();
      break;
    case FAULT_SIGNAL: {
      struct fault_state *st = &plan->states[i];
      if (!st->sent_tried)
        break;
      /* Fired: the signal reached a live process -- for SIGKILL, the step died of it. */
      bool died_of_it = result->signal == f->signal || result->exit_code == 128 + f->signal;
      if (st->sent && (f->signal != SIGKILL || died_of_it)) {
        fire(plan, i, node, st->sent_at_us, "SIG%s delivered %.3fs after the start; the step "
                                           "ended with exit code %d",
             sigabbrev_np(f->signal), (double)(st->sent_at_us - sf->launched_us) / 1e6,
             result->exit_code);
      } else if (st->detail == NULL &&
                 asprintf(&st->detail, "SIG%s found no process left: the step had already "
                                       "ended (exit code %d)",
                          sigabbrev_np(f->signal), result->exit_code) < 0) {
        abort();
      }
      break;
    }
    case FAULT_PIDS:
      if (result->pids_limited)
        fire(plan, i, node, now_us, "a fork failed on the limit of %lld processes",
             (long long)f->pids_limit);
      break;
    default:
      break;
    }
  }
}

void step_faults_clear(struct step_faults *sf) {
  if (sf->argv != NULL) {
    for (char **p = sf->argv; *p; p++)
      free(*p);
    free(sf->argv);
  }
  free(sf->indices);
  memset(sf, 0, sizeof(*sf));
}

int fault_plan_shutdown_due(struct fault_plan *plan, int64_t started_us, int64_t now_us,
                            const struct run_state *st, const char **strategy, int64_t *next_us) {
  *next_us = 0;
  for (size_t i = 0; plan && i < plan->n; i++) {
    const struct fault *f = &plan->faults[i];
    if (f->action != FAULT_SHUTDOWN || plan->states[i].fired)
      continue;
    int64_t anchor = started_us;
    const struct wf_node *on = NULL;
    if (f->target != NULL) {
      anchor = 0;
      for (size_t n = 0; n < st->n_nodes; n++)
        if (st->nodes[n]->type == NODE_POD && st->nodes[n]->phase != PHASE_PENDING &&
            fault_targets_node(f, st->nodes[n])) {
          on = st->nodes[n];
          anchor = on->started_at_us;
          break;
        }
      if (anchor == 0)
        continue;
    }
    int64_t at = anchor + scaled_us(plan, f->after_ms > 0 ? f->after_ms : 0);
    if (now_us >= at) {
      *strategy = f->strategy == FAULT_SHUTDOWN_STOP ? "Stop" : "Terminate";
      fire(plan, i, on, now_us, "%s after %.3fs", *strategy, (double)(now_us - anchor) / 1e6);
      return 1;
    }
    if (*next_us == 0 || at < *next_us)
      *next_us = at;
  }
  return 0;
}

int fault_plan_deadline(struct fault_plan *plan, const char *scope,
                        enum fault_deadline_field field, int64_t *ms) {
  for (size_t i = 0; plan && i < plan->n; i++) {
    const struct fault *f = &plan->faults[i];
    if (f->action != FAULT_DEADLINE || f->scope == NULL || strcmp(f->scope, scope) != 0 ||
        f->deadline_field != field)
      continue;
    *ms = f->deadline_ms;
    if (!plan->states[i].fired)
      fire(plan, i, NULL, now_realtime_us(), "%s of %s set to %.3fs",
           field == FAULT_DEADLINE_TIMEOUT ? "timeout" : "activeDeadlineSeconds", scope,
           (double)f->deadline_ms / 1000.0);
    return 1;
  }
  return 0;
}

void fault_plan_record(const struct fault_plan *plan, struct run_state *st) {
  if (plan == NULL || plan->n == 0)
    return;
  if (st->n_faults == plan->n) {
    /* Records from the controller's process are there already (a supervised
     * run): add what the supervisor's own plan saw fire. */
    for (size_t i = 0; i < plan->n; i++) {
      const struct fault_state *s = &plan->states[i];
      struct fault_record *r = &st->faults[i];
      if (!s->fired || r->fired)
        continue;
      r->fired = true;
      r->fired_at_us = s->fired_at_us;
      free(r->detail);
      r->detail = s->detail ? xstrdup(s->detail) : NULL;
    }
    return;
  }
  st->faults = calloc(plan->n, sizeof(*st->faults));
  if (st->faults == NULL)
    abort();
  for (size_t i = 0; i < plan->n; i++) {
    const struct fault *f = &plan->faults[i];
    const struct fault_state *s = &plan->states[i];
    struct fault_record *r = &st->faults[i];
    r->action = xstrdup(fault_action_name(f->action));
    r->description = fault_describe(f);
    r->target = f->target ? xstrdup(f->target) : NULL;
    r->fired = s->fired;
    r->fired_at_us = s->fired_at_us;
    r->node_id = s->node_id ? xstrdup(s->node_id) : NULL;
    r->detail = s->detail ? xstrdup(s->detail) : NULL;
  }
  st->n_faults = plan->n;
}

bool fault_plan_all_fired(const struct fault_plan *plan) {
  for (size_t i = 0; plan && i < plan->n; i++)
    if (!plan->states[i].fired)
      return false;
  return true;
}

const struct fault *fault_plan_find(const struct fault_plan *plan, enum fault_action action) {
  for (size_t i = 0; plan && i < plan->n; i++)
    if (plan->faults[i].action == action)
      return &plan->faults[i];
  return NULL;
}

void fault_plan_mark_fired(struct fault_plan *plan, const struct fault *f, const char *detail) {
  size_t i = (size_t)(f - plan->faults);
  if (i < plan->n)
    fire(plan, i, NULL, now_realtime_us(), "%s", detail);
}
