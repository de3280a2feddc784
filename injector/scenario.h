/* The scenario file: which workflow to run, which faults to inject, what
 * must hold afterwards (docs/SCENARIOS.md).  Scenarios are exitprobe's own
 * format, so unlike a Workflow nothing in them is ignored: an unknown key,
 * a wrong type or an unknown name is an error with file:line:column, and a
 * scenario that loads is one the injector can carry out as written. */
#ifndef EXITPROBE_SCENARIO_H
#define EXITPROBE_SCENARIO_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../runner/controller.h"
#include "../runner/error.h"
#include "../runner/workflow.h"
#include "../runner/yaml_doc.h"

#define SCENARIO_API_VERSION "exitprobe/v1"
#define SCENARIO_KIND "Scenario"

enum fault_action {
  FAULT_EXIT,
  FAULT_SIGNAL,
  FAULT_HANG,
  FAULT_DELAY,
  FAULT_FREEZE,
  FAULT_OOM,
  FAULT_PIDS,
  FAULT_SYSCALL,
  FAULT_NETWORK,
  FAULT_DEADLINE,
  FAULT_SHUTDOWN,
  FAULT_CONTROLLER_CRASH,
  FAULT_CONTROLLER_HANG,
};

/* exit: replace the step's command, or let it run and then exit with the code. */
enum fault_when { FAULT_WHEN_INSTEAD, FAULT_WHEN_AFTER };

enum fault_network { FAULT_NETWORK_OFF };

/* deadline: which of Argo's fields the fault overrides. */
enum fault_deadline_field { FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS, FAULT_DEADLINE_TIMEOUT };

/* controller-crash: what happens after the SIGKILL. */
enum fault_crash_then {
  CRASH_THEN_RESTART,    /* a new controller, same state */
  CRASH_THEN_LOSE_STATE, /* a new controller, state gone (lost persistence) */
  CRASH_THEN_STAY_DOWN,  /* nobody restarts it: the watchdog takes over */
};

/* shutdown: Argo's spec.shutdown strategies. */
enum fault_shutdown { FAULT_SHUTDOWN_STOP, FAULT_SHUTDOWN_TERMINATE };

/* Compile flags of every regex in a scenario (onOutput, matches): POSIX
 * extended syntax, and ^ $ . work per line since outputs are line based. */
#define SCENARIO_REGEX_FLAGS (REG_EXTENDED | REG_NOSUB | REG_NEWLINE)

struct fault {
  enum fault_action action;
  /* Glob (fnmatch, no flags) or exact name matched against a node's
   * displayName, templateName and name.  NULL for deadline, and for a
   * shutdown without target (then `after` counts from the workflow start;
   * with one, from the start of the first matching node). */
  char *target;
  int attempt; /* retry attempt, 0-based as in node names "work(0)"; -1 = every attempt */

  /* exit */
  int exit_code;
  enum fault_when when;

  /* signal: exactly one of after_ms >= 0, at_start, on_output is set */
  int signal;
  bool at_start;
  char *on_output;      /* regex source, NULL when absent */
  regex_t on_output_re; /* compiled with SCENARIO_REGEX_FLAGS when on_output != NULL */

  /* signal, freeze (default 0), shutdown (default 0): -1 when not given */
  int64_t after_ms;
  /* delay, freeze: -1 when not given */
  int64_t duration_ms;

  /* oom: bytes (> 0) */
  uint64_t memory_limit;
  /* pids: >= 1 */
  int64_t pids_limit;

  /* syscall: from the nth call on (1 = every call), each failing with
   * `probability` (1 = always; drawn from the scenario's seed) */
  char *syscall;
  int syscall_nr; /* native number from seccomp_syscall_resolve_name */
  int errno_value;
  char *errno_name;
  int64_t nth;
  double probability;

  /* network */
  enum fault_network network;

  /* deadline */
  char *scope; /* "workflow" or a template name */
  enum fault_deadline_field deadline_field;
  int64_t deadline_ms; /* activeDeadlineSeconds * 1000, or timeout */

  /* shutdown */
  enum fault_shutdown strategy;

  /* controller-crash, controller-hang: the crash point (glob allowed, see
   * exitprobe crash-points) and what follows the controller's death */
  char *crash_at;
  enum fault_crash_then crash_then;
  /* controller-hang: stopped for duration_ms (real time); the supervisor's
   * lease on the controller is lease_ms (default 1 s) */
  int64_t lease_ms;

  struct src_pos pos;        /* the fault's mapping */
  struct src_pos action_pos; /* its `action:` value */
  struct src_pos target_pos; /* its `target:` value, 0:0 when absent */
  const struct ydoc_node *node;
};

struct scenario_param {
  char *name;
  char *value;
  struct src_pos pos;
};

struct scenario {
  char *file;        /* as given to scenario_load_file */
  char *name;        /* metadata.name: [A-Za-z0-9][A-Za-z0-9._-]*, usable as a file name */
  char *description; /* metadata.description or NULL */

  /* Exactly one of the two is set. */
  char *workflow_path; /* spec.workflow resolved against the scenario's directory */
  const struct ydoc_node *workflow_spec; /* spec.workflowSpec: an inline Workflow manifest */
  struct src_pos workflow_pos;           /* position of whichever was given */

  struct scenario_param *params; /* spec.arguments.parameters */
  size_t n_params;
  struct param_override *overrides; /* the same, in the form workflow_load_file takes */

  uint64_t seed;   /* spec.seed; 0 when absent so that runs stay reproducible */
  bool seed_given;
  double time_scale; /* spec.timeScale, > 0, default 1 */

  struct fault *faults;
  size_t n_faults;

  /* spec.delivery: the compensating cleanup's delivery policy.  false:
   * at-least-once (default, for cleanup); true: at-most-once (notifications). */
  bool at_most_once;
  /* spec.compensate: the template the watchdog runs as the compensation
   * instead of the onExit template -- a template of the workflow by name, or
   * an inline template (a mapping, compensate_inline), added to the workflow
   * by scenario_add_compensate.  NULL when absent. */
  const char *compensate;
  const struct ydoc_node *compensate_node;
  bool compensate_inline;
  /* spec.stateProbe: a host shell command whose output the idempotency
   * check compares after one and two exit handler runs; NULL when absent.
   * Points into doc. */
  const char *state_probe;
  struct template_mock *mocks; /* spec.mocks (mocks.h) */
  size_t n_mocks;

  /* spec.expect, validated by expectations_validate; NULL when absent. */
  const struct ydoc_node *expect;

  struct ydoc *doc; /* owns every node above */
};

/* Load and validate a scenario.  Every error is EP_EXIT_USAGE with
 * file:line:column (a missing or unreadable file names the path). */
int scenario_load_file(const char *path, struct scenario **out, ep_error **err);
void scenario_free(struct scenario *sc);

/* A new document for the scenario's workflow, for workflow_from_doc (which
 * takes ownership of it).  For spec.workflow the referenced file is loaded;
 * for spec.workflowSpec the scenario file is loaded again and the new
 * document's root is the inline manifest, so the workflow's error messages
 * point into the scenario file while sc->expect stays valid. */
int scenario_load_workflow_doc(const struct scenario *sc, struct ydoc **out, ep_error **err);

/* Static check of the names a scenario uses against the loaded workflow:
 * every fault target and every nodes/logs expectation target must be able
 * to match a node (a step or DAG task name, a template name, the workflow
 * name or "<workflow>.onExit"), and a deadline scope must be "workflow" or
 * a template.  Targets containing '.', '[' or '(' may name hierarchical
 * node names only known at run time and are accepted.  EP_EXIT_USAGE with
 * the target's line:column. */
int scenario_check_targets(const struct scenario *sc, const struct workflow *wf, ep_error **err);

/* An inline compensate: template joins the workflow (no-op otherwise). */
int scenario_add_compensate(const struct scenario *sc, struct workflow *wf, ep_error **err);

/* For `exitprobe run PATH`: is this YAML file a Scenario (kind: Scenario)
 * rather than a Workflow?  A file that does not parse counts as a scenario
 * when a line reads `kind: Scenario`, so that its error is reported. */
bool scenario_file_looks_like_scenario(const char *path);

/* Every scenario below dir: recursive (not into dot-directories, not
 * through symbolic links to directories), *.yaml and *.yml files whose kind
 * is Scenario, sorted by path.  *paths is a NULL-terminated array; free it
 * with scenario_paths_free. */
int scenario_collect_dir(const char *dir, char ***paths, size_t *n, ep_error **err);
void scenario_paths_free(char **paths, size_t n);

const char *fault_action_name(enum fault_action action);
/* One line: "signal SIGKILL to 'work' after 200ms" (for --dry-run and logs).  malloc'd. */
char *fault_describe(const struct fault *f);

/* Go-style duration ("200ms", "1.5s", "1m30s", "2h") to milliseconds,
 * rounded up.  Units ns us µs ms s m h; a bare number is refused. */
int scenario_parse_duration(const char *text, int64_t *ms);
/* "SIGKILL", "KILL", "kill", "9" to a signal number. */
int scenario_parse_signal(const char *text, int *sig);
/* "ENOSPC" to ENOSPC. */
int scenario_parse_errno(const char *text, int *value);

#endif
