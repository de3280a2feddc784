/* Carrying out a scenario's faults during a run.  The controller calls in
 * at fixed points -- a step about to launch, a line of output, the clock,
 * a step's end -- and the injector changes the step or acts on it, and
 * records whether each fault fired, when and on which node.  Each fault is
 * real: the process really dies, hangs, runs out of memory. */
#ifndef EXITPROBE_FAULTS_H
#define EXITPROBE_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runner/run_state.h"
#include "../runner/sandbox.h"
#include "scenario.h"

struct fault_plan;

/* faults must outlive the plan.  seed drives every probability. */
struct fault_plan *fault_plan_new(const struct fault *faults, size_t n, uint64_t seed,
                                  double time_scale);
void fault_plan_free(struct fault_plan *plan);

/* Does fault f target this node (display name, template name or node name,
 * globs allowed; attempt k of a retried step is node "X(k)")? */
bool fault_targets_node(const struct fault *f, const struct wf_node *node);

/* Step-level effects, collected when the step is about to launch. */
struct step_faults {
  size_t *indices;      /* faults of the plan that target this step */
  size_t n;
  int64_t launched_us;
  bool frozen;
  char **argv;          /* replacement argv when an exit/hang fault rewrote it (owned) */
  /* syscall faults, decided call by call (so that a firing is observed) */
  struct sandbox_syscall_fault syscalls[8];
  size_t syscall_fault[8]; /* plan index of each */
  int64_t syscall_calls[8];
  uint64_t syscall_rng[8]; /* one random stream per fault on this step */
  size_t n_syscalls;
};

/* Decide one trapped call of a syscall fault (sandbox_syscall_decider):
 * 0 lets it run, an errno fails it -- from the nth call on, each with the
 * fault's probability drawn from the seed. */
int fault_plan_decide_syscall(struct fault_plan *plan, const struct wf_node *node,
                              struct step_faults *sf, size_t tag, int64_t now_us);

/* How long the step must still wait (delay faults), in µs from now; 0 = go. */
int64_t fault_plan_delay(struct fault_plan *plan, const struct wf_node *node, int64_t now_us);

/* Adjust the launch: exit/hang rewrite argv, oom/pids set limits, network
 * isolates, syscall faults add seccomp rules.  spec->argv may be replaced
 * (owned by sf).  Call fault_plan_step_started once the step runs. */
void fault_plan_prepare_step(struct fault_plan *plan, const struct wf_node *node,
                             struct sandbox_step_spec *spec, struct step_faults *sf);
void fault_plan_step_started(struct fault_plan *plan, const struct wf_node *node,
                             struct step_faults *sf, struct sandbox_step *step, int64_t now_us);

/* Timed faults (signal after, freeze/thaw): act on what is due; returns the
 * next time (µs) the step needs attention, 0 for none. */
int64_t fault_plan_tick(struct fault_plan *plan, const struct wf_node *node,
                        struct step_faults *sf, struct sandbox_step *step, int64_t now_us);

/* A complete line of the step's output (signal onOutput). */
void fault_plan_output_line(struct fault_plan *plan, const struct wf_node *node,
                            struct step_faults *sf, struct sandbox_step *step, const char *line,
                            size_t len, int64_t now_us);

/* The step ended: record exit-after, oom and pids faults as fired or not. */
void fault_plan_step_ended(struct fault_plan *plan, const struct wf_node *node,
                           struct step_faults *sf, const struct sandbox_result *result,
                           int64_t now_us);
void step_faults_clear(struct step_faults *sf);

/* Workflow-level: a shutdown fault due now?  Returns 1 and the strategy
 * ("Stop"/"Terminate") when one fires; *next_us gets the next due time. */
int fault_plan_shutdown_due(struct fault_plan *plan, int64_t started_us, int64_t now_us,
                            const struct run_state *st, const char **strategy, int64_t *next_us);

/* Deadline overrides: for scope "workflow" or a template name, the
 * activeDeadlineSeconds / timeout to use in ms (returns 1), or 0. */
int fault_plan_deadline(struct fault_plan *plan, const char *scope,
                        enum fault_deadline_field field, int64_t *ms);

/* The first fault of this action, for the supervisor (controller crashes). */
const struct fault *fault_plan_find(const struct fault_plan *plan, enum fault_action action);
/* Record that it fired (now), with what was seen. */
void fault_plan_mark_fired(struct fault_plan *plan, const struct fault *f, const char *detail);

/* Fold the plan's records into the run state (report's "faults"). */
void fault_plan_record(const struct fault_plan *plan, struct run_state *st);
/* Did every fault fire?  (A fault that never fired makes a scenario inconclusive.) */
bool fault_plan_all_fired(const struct fault_plan *plan);

#endif
