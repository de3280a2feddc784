/* The same scenario on a real Argo cluster (docs/CLUSTER.md):
 *
 *   exitprobe export SCENARIO --target argo [-o FILE]
 *     the scenario's workflow as a Workflow manifest, with the faults a
 *     cluster can express written into it and the others listed;
 *   exitprobe verify SCENARIO STATUS.json
 *     the scenario's expectations checked against `argo get NAME -o json`
 *     (or against an exitprobe report), with the verdict line and exit
 *     status of a local run.
 *
 * Both work on the manifest as JSON: a Workflow is JSON to the API server,
 * and JSON is valid YAML for argo and kubectl. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cli.h"
#include "expectations.h"
#include "report_load.h"
#include "../injector/scenario.h"
#include "../reports/atomic_file.h"

#define LABEL_SCENARIO "exitprobe.io/scenario"
#define ANNOTATION_FILE "exitprobe.io/scenario-file"
#define ANNOTATION_NOT_EXPRESSIBLE "exitprobe.io/not-expressible"
#define ANNOTATION_MANUAL "exitprobe.io/manual-steps"
#define ANNOTATION_SHUTDOWN "exitprobe.io/shutdown"
#define ANNOTATION_SHUTDOWN_AFTER "exitprobe.io/shutdown-after"
#define ANNOTATION_SHUTDOWN_TARGET "exitprobe.io/shutdown-target"
#define ANNOTATION_NOTES "exitprobe.io/notes"

/* A long sleep rather than `sleep infinity`: busybox's sleep (alpine)
 * does not know `infinity`, and a day outlives any deadline a scenario sets. */
#define HANG_COMMAND "sleep 86400"

/* ---- YAML tree to JSON ---------------------------------------------------- */

static bool tag_is(const struct ydoc_node *n, const char *suffix) {
  size_t lt = strlen(n->tag), ls = strlen(suffix);
  return lt >= ls && strcmp(n->tag + lt - ls, suffix) == 0;
}

/* A plain scalar that YAML reads as a float (1.5, -2e3, .5). */
static bool looks_like_float(const char *s) {
  const char *p = s;
  bool digits = false;
  if (*p == '+' || *p == '-')
    p++;
  while (*p >= '0' && *p <= '9')
    p++, digits = true;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++)
      digits = true;
  if (!digits)
    return false;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return false;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return *p == '\0';
}

/* Scalars are typed the way Kubernetes' YAML reader types them, so that
 * `retries: 2` stays a number and `value: "2"` a string. */
static json_t *scalar_to_json(const struct ydoc_node *n) {
  if (n->tag != NULL && tag_is(n, ":str"))
    return json_stringn(n->scalar, n->len);
  if (!n->plain && n->tag == NULL)
    return json_stringn(n->scalar, n->len);
  bool b;
  long long i;
  if (ydoc_is_null(n))
    return json_null();
  if (ydoc_as_bool(n, &b) == 0)
    return json_boolean(b);
  if (ydoc_as_int(n, &i) == 0)
    return json_integer((json_int_t)i);
  if (n->plain && looks_like_float(n->scalar))
    return json_real(strtod(n->scalar, NULL));
  return json_stringn(n->scalar, n->len);
}

static json_t *ydoc_to_json(const struct ydoc_node *n) {
  if (n == NULL)
    return json_null();
  json_t *out;
  switch (n->kind) {
  case YDOC_MAPPING:
    out = json_object();
    for (size_t i = 0; i < n->n_pairs; i++)
      json_object_set_new(out, n->pairs[i].key->scalar, ydoc_to_json(n->pairs[i].value));
    return out;
  case YDOC_SEQUENCE:
    out = json_array();
    for (size_t i = 0; i < n->n_items; i++)
      json_array_append_new(out, ydoc_to_json(n->items[i]));
    return out;
  case YDOC_SCALAR:
  default:
    out = scalar_to_json(n);
    return out != NULL ? out : json_string("");
  }
}

/* ---- small JSON helpers --------------------------------------------------- */

static json_t *object_at(json_t *parent, const char *key) {
  json_t *v = json_object_get(parent, key);
  if (!json_is_object(v)) {
    v = json_object();
    json_object_set_new(parent, key, v);
  }
  return v;
}

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static void push_text(json_t *list, const char *text) { json_array_append_new(list, json_string(text)); }

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
  va_list ap;
  char *out = NULL;
  va_start(ap, fmt);
  int rc = vasprintf(&out, fmt, ap);
  va_end(ap);
  if (rc < 0)
    abort();
  return out;
}

static char *join_texts(const json_t *list, const char *sep) {
  size_t i, len = 1;
  const json_t *s;
  json_array_foreach(list, i, s) len += strlen(json_string_value(s)) + strlen(sep);
  char *out = calloc(1, len);
  if (out == NULL)
    abort();
  json_array_foreach(list, i, s) {
    if (i > 0)
      strcat(out, sep);
    strcat(out, json_string_value(s));
  }
  return out;
}

/* "1.5" from 1500 ms: sleep(1) in busybox and coreutils takes fractions. */
static char *seconds_text(int64_t ms) {
  if (ms % 1000 == 0)
    return xprintf("%lld", (long long)(ms / 1000));
  return xprintf("%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* ---- fault translation ---------------------------------------------------- */

struct translation {
  json_t *wf;              /* the manifest, changed in place */
  const struct scenario *sc;
  json_t *not_expressible; /* strings: what the cluster cannot do */
  json_t *manual;          /* strings: what the user must do by hand (shutdown) */
  json_t *notes;           /* strings: differences worth knowing */
  const struct fault *shutdown; /* the shutdown fault, for the annotations */
};

static void cannot(struct translation *t, const struct fault *f, const char *why) {
  char *d = fault_describe(f);
  char *line = xprintf("%s: %s", d, why);
  push_text(t->not_expressible, line);
  free(line);
  free(d);
}

static json_t *templates_of(json_t *wf) {
  return json_object_get(json_object_get(wf, "spec"), "templates");
}

static json_t *find_template(json_t *wf, const char *name) {
  size_t i;
  json_t *tpl;
  json_array_foreach(templates_of(wf), i, tpl) {
    const char *n = str_at(tpl, "name");
    if (n != NULL && strcmp(n, name) == 0)
      return tpl;
  }
  return NULL;
}

static bool name_matches(const char *target, const char *name) {
  return name != NULL && (strcmp(target, name) == 0 || fnmatch(target, name, 0) == 0);
}

static const char *workflow_name(const json_t *wf) {
  const json_t *meta = json_object_get(wf, "metadata");
  const char *n = str_at(meta, "name");
  return n != NULL ? n : str_at(meta, "generateName");
}

/* Does a step or DAG task calling template `tname` carry a name the target matches? */
static bool caller_matches(json_t *wf, const char *tname, const char *target) {
  size_t i, j, k;
  json_t *tpl, *group, *step;
  json_array_foreach(templates_of(wf), i, tpl) {
    json_array_foreach(json_object_get(tpl, "steps"), j, group) {
      json_array_foreach(group, k, step) {
        const char *ref = str_at(step, "template");
        if (ref != NULL && strcmp(ref, tname) == 0 && name_matches(target, str_at(step, "name")))
          return true;
      }
    }
    json_array_foreach(json_object_get(json_object_get(tpl, "dag"), "tasks"), j, step) {
      const char *ref = str_at(step, "template");
      if (ref != NULL && strcmp(ref, tname) == 0 && name_matches(target, str_at(step, "name")))
        return true;
    }
  }
  return false;
}

/* The names a node of template `tname` can carry that do not depend on
 * the run: the template's own, the workflow's for the entrypoint and
 * "<wf>.onExit" for the exit handler (docs/SCENARIOS.md "Targets"). */
static bool template_targeted(json_t *wf, const char *tname, const char *target) {
  if (name_matches(target, tname) || caller_matches(wf, tname, target))
    return true;
  const json_t *spec = json_object_get(wf, "spec");
  const char *wname = workflow_name(wf);
  const char *entry = str_at(spec, "entrypoint");
  if (wname != NULL && entry != NULL && strcmp(entry, tname) == 0 && name_matches(target, wname))
    return true;
  const char *on_exit = str_at(spec, "onExit");
  if (on_exit == NULL)
    on_exit = str_at(json_object_get(json_object_get(spec, "hooks"), "exit"), "template");
  if (wname != NULL && on_exit != NULL && strcmp(on_exit, tname) == 0) {
    char *n = xprintf("%s.onExit", wname);
    bool hit = name_matches(target, n);
    free(n);
    return hit;
  }
  return false;
}

/* The container object (container: or script:) of every template a fault's
 * target reaches.  An empty array when none. */
static json_t *target_containers(json_t *wf, const char *target) {
  json_t *out = json_array();
  size_t i;
  json_t *tpl;
  json_array_foreach(templates_of(wf), i, tpl) {
    const char *tname = str_at(tpl, "name");
    json_t *c = json_object_get(tpl, "container");
    if (!json_is_object(c))
      c = json_object_get(tpl, "script");
    if (tname != NULL && json_is_object(c) && template_targeted(wf, tname, target))
      json_array_append(out, c);
  }
  return out;
}

static void replace_command(json_t *c, const char *shell_line) {
  if (json_object_get(c, "source") != NULL) {
    /* script: Argo runs command + the source file, so the source is the line. */
    json_object_set_new(c, "command", json_pack("[s]", "sh"));
    json_object_set_new(c, "source", json_string(shell_line));
    return;
  }
  json_object_set_new(c, "command", json_pack("[s,s,s]", "sh", "-c", shell_line));
  json_object_del(c, "args");
}

/* command := [sh, -c, WRAP, sh, ...command]; args stay as they are, and
 * Kubernetes (or Argo, for a script's source file) appends them, so "$@"
 * inside WRAP is the original argv. */
static int wrap_command(json_t *c, const char *wrap) {
  json_t *cmd = json_object_get(c, "command");
  if (!json_is_array(cmd) || json_array_size(cmd) == 0)
    return -1;
  json_t *wrapped = json_pack("[s,s,s,s]", "sh", "-c", wrap, "sh");
  json_array_extend(wrapped, cmd);
  json_object_set_new(c, "command", wrapped);
  return 0;
}

/* Wrappers nest: the ones applied first end up innermost.  exit-after must
 * sit right around the command, a signal's clock starts after a delay. */
enum stage { STAGE_REPLACE, STAGE_EXIT_AFTER, STAGE_SIGNAL, STAGE_DELAY, STAGE_OTHER };

static enum stage stage_of(const struct fault *f) {
  switch (f->action) {
  case FAULT_EXIT:
    return f->when == FAULT_WHEN_INSTEAD ? STAGE_REPLACE : STAGE_EXIT_AFTER;
  case FAULT_HANG:
    return STAGE_REPLACE;
  case FAULT_SIGNAL:
    return STAGE_SIGNAL;
  case FAULT_DELAY:
    return STAGE_DELAY;
  default:
    return STAGE_OTHER;
  }
}

static char *wrapper_for(const struct fault *f) {
  char *s, *out;
  switch (f->action) {
  case FAULT_EXIT:
    return xprintf("\"$@\"; exit %d", f->exit_code);
  case FAULT_SIGNAL:
    /* $$ is the shell that execs into the command, so the command gets the
     * signal; PID 1 would not (it is argoexec, or immune inside its namespace). */
    s = seconds_text(f->at_start ? 0 : f->after_ms);
    out = xprintf("(sleep %s; kill -%d $$) & exec \"$@\"", s, f->signal);
    free(s);
    return out;
  case FAULT_DELAY:
    s = seconds_text(f->duration_ms);
    out = xprintf("sleep %s; exec \"$@\"", s);
    free(s);
    return out;
  default:
    return NULL;
  }
}

static void apply_to_container(struct translation *t, const struct fault *f, json_t *c) {
  char *line;
  switch (f->action) {
  case FAULT_EXIT:
    if (f->when == FAULT_WHEN_INSTEAD) {
      line = xprintf("exit %d", f->exit_code);
      replace_command(c, line);
      free(line);
      return;
    }
    break;
  case FAULT_HANG:
    replace_command(c, HANG_COMMAND);
    return;
  case FAULT_OOM:
    line = xprintf("%llu", (unsigned long long)f->memory_limit);
    json_object_set_new(object_at(object_at(c, "resources"), "limits"), "memory",
                        json_string(line));
    /* A request above the limit is rejected by the API server. */
    json_t *requests = json_object_get(json_object_get(c, "resources"), "requests");
    if (json_object_get(requests, "memory") != NULL)
      json_object_set_new(requests, "memory", json_string(line));
    free(line);
    return;
  default:
    break;
  }
  line = wrapper_for(f);
  if (wrap_command(c, line) < 0)
    cannot(t, f, "the template has no command (the image's entrypoint is not known here)");
  free(line);
}

static void apply_deadline(struct translation *t, const struct fault *f) {
  json_t *where;
  if (strcmp(f->scope, "workflow") == 0) {
    where = object_at(t->wf, "spec");
  } else {
    where = find_template(t->wf, f->scope);
    if (where == NULL) {
      cannot(t, f, "no template by that name in the manifest");
      return;
    }
  }
  if (f->deadline_field == FAULT_DEADLINE_ACTIVE_DEADLINE_SECONDS) {
    json_object_set_new(where, "activeDeadlineSeconds", json_integer(f->deadline_ms / 1000));
    return;
  }
  char *d = f->deadline_ms % 1000 == 0 ? xprintf("%llds", (long long)(f->deadline_ms / 1000))
                                       : xprintf("%lldms", (long long)f->deadline_ms);
  json_object_set_new(where, "timeout", json_string(d));
  free(d);
}

static void note_shutdown(struct translation *t, const struct fault *f) {
  const char *verb = f->strategy == FAULT_SHUTDOWN_STOP ? "stop" : "terminate";
  char *after = seconds_text(f->after_ms < 0 ? 0 : f->after_ms);
  char *line = f->target != NULL
                   ? xprintf("run `argo %s NAME` %ss after node '%s' started", verb, after,
                             f->target)
                   : xprintf("run `argo %s NAME` %ss after the workflow started", verb, after);
  push_text(t->manual, line);
  free(line);
  free(after);
  t->shutdown = f;
}

/* Why a fault has no cluster form, or NULL when it has one. */
static const char *inexpressible_reason(const struct fault *f) {
  switch (f->action) {
  case FAULT_CONTROLLER_CRASH:
  case FAULT_CONTROLLER_HANG:
    return "the controller's crash points are exitprobe's own; on a cluster kill the "
           "workflow-controller pod by hand (kubectl -n argo delete pod -l "
           "app=workflow-controller), at no precise point";
  case FAULT_SYSCALL:
    return "a pod spec cannot make one system call fail (seccomp profiles deny, they do not "
           "inject errno per call)";
  case FAULT_FREEZE:
    return "Kubernetes has no pod freeze";
  case FAULT_NETWORK:
    return "needs a NetworkPolicy, which is not part of a Workflow manifest";
  case FAULT_PIDS:
    return "the pids limit is per node (kubelet podPidsLimit), not per pod";
  case FAULT_SIGNAL:
    if (f->on_output != NULL)
      return "a signal on an output line needs a watcher the manifest cannot carry";
    break;
  default:
    break;
  }
  if (f->attempt >= 0 && f->action != FAULT_DEADLINE && f->action != FAULT_SHUTDOWN)
    return "a fault for one retry attempt only changes the template for every attempt";
  return NULL;
}

static void translate_one(struct translation *t, const struct fault *f) {
  const char *why = inexpressible_reason(f);
  if (why != NULL) {
    cannot(t, f, why);
    return;
  }
  if (f->action == FAULT_DEADLINE) {
    apply_deadline(t, f);
    return;
  }
  if (f->action == FAULT_SHUTDOWN) {
    note_shutdown(t, f);
    return;
  }
  json_t *containers = target_containers(t->wf, f->target);
  if (json_array_size(containers) == 0) {
    cannot(t, f, "the target reaches no container or script template by name");
  } else {
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c) apply_to_container(t, f, c);
  }
  json_decref(containers);
}

static void apply_parameters(struct translation *t) {
  if (t->sc->n_params == 0)
    return;
  json_t *args = object_at(object_at(t->wf, "spec"), "arguments");
  json_t *params = json_object_get(args, "parameters");
  if (!json_is_array(params)) {
    params = json_array();
    json_object_set_new(args, "parameters", params);
  }
  for (size_t i = 0; i < t->sc->n_params; i++) {
    const struct scenario_param *p = &t->sc->params[i];
    json_t *found = NULL, *item;
    size_t k;
    json_array_foreach(params, k, item) {
      const char *n = str_at(item, "name");
      if (n != NULL && strcmp(n, p->name) == 0)
        found = item;
    }
    if (found == NULL) {
      found = json_pack("{s:s}", "name", p->name);
      json_array_append_new(params, found);
    }
    json_object_set_new(found, "value", json_string(p->value));
  }
}

/* Apply every fault in stage order, so that wrappers nest as they should. */
static void translate_faults(struct translation *t) {
  apply_parameters(t);
  for (int stage = STAGE_REPLACE; stage <= STAGE_OTHER; stage++)
    for (size_t i = 0; i < t->sc->n_faults; i++)
      if ((int)stage_of(&t->sc->faults[i]) == stage)
        translate_one(t, &t->sc->faults[i]);
  if (t->sc->time_scale != 1) {
    char *line = xprintf("timeScale %g is not applied: on a cluster deadlines and backoff run "
                         "in real time",
                         t->sc->time_scale);
    push_text(t->notes, line);
    free(line);
  }
}

/* Kubernetes label values: at most 63 characters, alphanumeric at both ends. */
static bool valid_label_value(const char *v) {
  size_t n = strlen(v);
  if (n == 0 || n > 63)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.')))
      return false;
  }
  return true;
}

static void label_manifest(struct translation *t) {
  json_t *meta = object_at(t->wf, "metadata");
  json_t *labels = object_at(meta, "labels");
  json_t *ann = object_at(meta, "annotations");
  if (valid_label_value(t->sc->name))
    json_object_set_new(labels, LABEL_SCENARIO, json_string(t->sc->name));
  else
    json_object_set_new(ann, LABEL_SCENARIO, json_string(t->sc->name));
  json_object_set_new(ann, ANNOTATION_FILE, json_string(t->sc->file));
  struct {
    const char *key;
    const json_t *list;
  } lists[] = {{ANNOTATION_NOT_EXPRESSIBLE, t->not_expressible},
               {ANNOTATION_MANUAL, t->manual},
               {ANNOTATION_NOTES, t->notes}};
  for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
    if (json_array_size(lists[i].list) == 0)
      continue;
    char *text = join_texts(lists[i].list, "\n");
    json_object_set_new(ann, lists[i].key, json_string(text));
    free(text);
  }
  if (t->shutdown != NULL) {
    /* Machine-readable for scripts/argo-cluster.sh. */
    const struct fault *f = t->shutdown;
    char *after = xprintf("%lldms", (long long)(f->after_ms < 0 ? 0 : f->after_ms));
    json_object_set_new(ann, ANNOTATION_SHUTDOWN,
                        json_string(f->strategy == FAULT_SHUTDOWN_STOP ? "Stop" : "Terminate"));
    json_object_set_new(ann, ANNOTATION_SHUTDOWN_AFTER, json_string(after));
    if (f->target != NULL)
      json_object_set_new(ann, ANNOTATION_SHUTDOWN_TARGET, json_string(f->target));
    free(after);
  }
}

/* ---- loading -------------------------------------------------------------- */

struct loaded {
  struct scenario *sc;
  struct workflow *wf;
  json_t *manifest; /* the workflow as written, before any fault */
};

static void loaded_clear(struct loaded *l) {
  json_decref(l->manifest);
  workflow_free(l->wf);
  scenario_free(l->sc);
}

/* The scenario with every check `exitprobe run` makes, and its workflow as
 * JSON.  Every failure is bad input. */
static int load_all(const char *path, struct loaded *l, ep_error **err) {
  struct ydoc *doc = NULL;
  if (!scenario_file_looks_like_scenario(path))
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0, "not a scenario (kind: Scenario)");
  if (scenario_load_file(path, &l->sc, err) < 0)
    return -1;
  if (scenario_load_workflow_doc(l->sc, &doc, err) < 0)
    return -1;
  l->manifest = ydoc_to_json(doc->root);
  if (workflow_from_doc(doc, l->sc->overrides, l->sc->n_params, &l->wf, err) < 0) {
    ydoc_free(doc);
    return -1;
  }
  return scenario_check_targets(l->sc, l->wf, err);
}

static void translation_init(struct translation *t, const struct loaded *l) {
  *t = (struct translation){.wf = json_deep_copy(l->manifest),
                            .sc = l->sc,
                            .not_expressible = json_array(),
                            .manual = json_array(),
                            .notes = json_array()};
  translate_faults(t);
}

static void translation_clear(struct translation *t) {
  json_decref(t->wf);
  json_decref(t->not_expressible);
  json_decref(t->manual);
  json_decref(t->notes);
}

/* ---- export --------------------------------------------------------------- */

static void export_usage(FILE *out) {
  fputs("Usage: exitprobe export SCENARIO.yaml --target argo [-o FILE]\n"
        "\n"
        "Write the scenario's workflow as an Argo Workflow manifest (JSON, which argo and\n"
        "kubectl read as YAML) with the scenario's faults written in where a cluster can\n"
        "express them: exit codes, hangs, signals after a delay, start delays, memory\n"
        "limits, deadlines.  A shutdown is a step to take by hand (argo stop/terminate) and\n"
        "is printed and recorded in annotations; controller crashes, syscall errors,\n"
        "freezes, network and pids faults cannot be expressed and are listed on stderr and\n"
        "in the annotation " ANNOTATION_NOT_EXPRESSIBLE ".  See docs/CLUSTER.md.\n"
        "\n"
        "  --target argo   the only target\n"
        "  -o FILE         write there (atomically) instead of stdout\n"
        "\n"
        "Exit status: 0 written (even with faults left out: they are listed); 2 bad input.\n",
        out);
}

static void print_lists(const struct translation *t, const char *name) {
  size_t i;
  const json_t *s;
  json_array_foreach(t->not_expressible, i, s) {
    fprintf(stderr, "exitprobe: export: %s: not expressible on a cluster: %s\n", name,
            json_string_value(s));
  }
  json_array_foreach(t->manual, i, s) {
    fprintf(stderr, "exitprobe: export: %s: by hand: %s\n", name, json_string_value(s));
  }
  json_array_foreach(t->notes, i, s) {
    fprintf(stderr, "exitprobe: export: %s: note: %s\n", name, json_string_value(s));
  }
}

int cli_export(int argc, char **argv) {
  const char *scenario_path = NULL, *target = NULL, *out_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      export_usage(stdout);
      return EP_EXIT_OK;
    } else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
      target = argv[++i];
    } else if (strncmp(argv[i], "--target=", 9) == 0) {
      target = argv[i] + 9;
    } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
      out_path = argv[++i];
    } else if (argv[i][0] != '-' && scenario_path == NULL) {
      scenario_path = argv[i];
    } else {
      fprintf(stderr, "exitprobe: export: unexpected argument '%s'\n\n", argv[i]);
      export_usage(stderr);
      return EP_EXIT_USAGE;
    }
  }
  if (scenario_path == NULL || target == NULL || strcmp(target, "argo") != 0) {
    if (target != NULL && strcmp(target, "argo") != 0)
      fprintf(stderr, "exitprobe: export: unknown target '%s' (the only one is argo)\n\n",
              target);
    export_usage(stderr);
    return EP_EXIT_USAGE;
  }
  ep_error *err = NULL;
  struct loaded l = {0};
  struct translation t = {0};
  int status = EP_EXIT_OK;
  if (load_all(scenario_path, &l, &err) < 0) {
    ep_error_print(err, stderr);
    status = err->status;
    goto out;
  }
  translation_init(&t, &l);
  label_manifest(&t);
  char *body = json_dumps(t.wf, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (body == NULL)
    abort();
  char *text = xprintf("%s\n", body);
  free(body);
  size_t len = strlen(text);
  if (out_path == NULL) {
    fwrite(text, 1, len, stdout);
  } else if (atomic_write_file(out_path, text, len, &err) < 0) {
    ep_error_print(err, stderr);
    status = err->status;
  }
  free(text);
  print_lists(&t, l.sc->name);
out:
  ep_error_free(&err);
  translation_clear(&t);
  loaded_clear(&l);
  return status;
}

/* ---- verify --------------------------------------------------------------- */

static void verify_usage(FILE *out) {
  fputs("Usage: exitprobe verify SCENARIO.yaml STATUS.json\n"
        "\n"
        "Check the scenario's expectations against a finished workflow on a cluster\n"
        "(`argo get NAME -o json`: a Workflow object) or against an exitprobe report, and\n"
        "print the verdict as `exitprobe run` does.  From a Workflow object the exit handler\n"
        "is read off its node <wf>.onExit (ran, runs 0 or 1, phase, by controller).  What\n"
        "the object cannot tell -- node logs and the {{workflow.status}} the handler saw --\n"
        "is listed as not checked and makes the verdict inconclusive, never a pass; so does\n"
        "a scenario fault the cluster could not carry out (see `exitprobe export`).\n"
        "\n"
        "Exit status: 0 passed; 1 an expectation failed; 2 bad input; 3 inconclusive.\n",
        out);
}

/* The workflow-level exit handler node: named "<wf>.onExit", a root
 * (no boundaryID), unlike a step's own onExit node. */
static const json_t *exit_handler_node(const json_t *status, const char *wf_name) {
  const char *key;
  const json_t *node;
  json_object_foreach((json_t *)json_object_get(status, "nodes"), key, node) {
    const char *name = str_at(node, "name");
    if (name == NULL)
      continue;
    size_t n = strlen(name);
    bool suffix = n >= 7 && strcmp(name + n - 7, ".onExit") == 0;
    if (!suffix)
      continue;
    if (wf_name != NULL ? strncmp(name, wf_name, n - 7) == 0 && strlen(wf_name) == n - 7
                        : json_object_get(node, "boundaryID") == NULL)
      return node;
  }
  return NULL;
}

/* A report-shaped object from `argo get -o json`: the status as it is, the
 * exit handler derived from it, oomKilled from Argo's message. */
static json_t *report_from_workflow(const json_t *obj, const struct workflow *wf) {
  const json_t *meta = json_object_get(obj, "metadata");
  const json_t *spec = json_object_get(obj, "spec");
  const char *name = str_at(meta, "name");
  json_t *status = json_deep_copy(json_object_get(obj, "status"));
  const char *key;
  json_t *node;
  json_object_foreach(json_object_get(status, "nodes"), key, node) {
    const char *msg = str_at(node, "message");
    if (msg != NULL && strstr(msg, "OOMKilled") != NULL)
      json_object_set_new(node, "oomKilled", json_true());
  }
  bool declared = spec != NULL ? (json_object_get(spec, "onExit") != NULL ||
                                  json_object_get(json_object_get(spec, "hooks"), "exit") != NULL)
                               : wf->on_exit != NULL;
  const json_t *eh = exit_handler_node(status, name);
  json_t *handler = json_pack("{s:b, s:b, s:i}", "declared", declared, "ran", eh != NULL, "runs",
                              eh != NULL ? 1 : 0);
  if (eh != NULL) {
    json_object_set(handler, "phase", json_object_get(eh, "phase"));
    json_object_set(handler, "node", json_object_get(eh, "id"));
  }
  json_object_set_new(handler, "by", json_string(eh != NULL ? "controller" : "none"));
  return json_pack("{s:s, s:s, s:{s:s?, s:s?}, s:o, s:o}", "apiVersion", "exitprobe/v1", "kind",
                   "Report", "workflow", "name", name, "namespace", str_at(meta, "namespace"),
                   "status", status, "exitHandler", handler);
}

/* What a Workflow object cannot say, or NULL when the result can be checked. */
static const char *unknowable(const char *path) {
  if (strncmp(path, "logs.", 5) == 0)
    return "node logs are not in argo get -o json (argo logs has them)";
  if (strcmp(path, "exitHandler.workflowStatus") == 0)
    return "the {{workflow.status}} the handler received is not in argo get -o json";
  return NULL;
}

struct verdict {
  json_t *results;   /* checked */
  json_t *unchecked; /* {result, why} */
  json_t *reasons;   /* strings: why inconclusive */
  const char *verdict;
};

static void split_unknowable(struct verdict *v) {
  json_t *kept = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(v->results, i, r) {
    const char *why = unknowable(str_at(r, "path"));
    if (why == NULL) {
      json_array_append(kept, r);
      continue;
    }
    json_t *copy = json_deep_copy(r);
    json_object_set_new(copy, "ok", json_null());
    json_object_set_new(copy, "note", json_string(why));
    json_array_append_new(v->unchecked, copy);
  }
  json_decref(v->results);
  v->results = kept;
  if (json_array_size(v->unchecked) > 0)
    push_text(v->reasons, "some expectations cannot be checked from argo get -o json");
}

/* Faults on a cluster: those export could not write in did not happen; a
 * shutdown happened when spec.shutdown says so. */
static void cluster_fault_reasons(struct verdict *v, const struct loaded *l, const json_t *obj) {
  struct translation t;
  translation_init(&t, l);
  size_t i;
  const json_t *s;
  json_array_foreach(t.not_expressible, i, s) {
    char *line = xprintf("fault not carried out on a cluster: %s", json_string_value(s));
    push_text(v->reasons, line);
    free(line);
  }
  if (t.shutdown != NULL) {
    const char *want = t.shutdown->strategy == FAULT_SHUTDOWN_STOP ? "Stop" : "Terminate";
    const char *seen = str_at(json_object_get(obj, "spec"), "shutdown");
    if (seen == NULL || strcasecmp(seen, want) != 0) {
      char *line = xprintf("shutdown fault not applied: spec.shutdown is %s, expected %s "
                           "(argo %s NAME)",
                           seen ? seen : "absent", want,
                           t.shutdown->strategy == FAULT_SHUTDOWN_STOP ? "stop" : "terminate");
      push_text(v->reasons, line);
      free(line);
    }
  }
  translation_clear(&t);
}

/* As a local run: a fault that did not fire makes the verdict inconclusive. */
static void report_fault_reasons(struct verdict *v, const json_t *report) {
  size_t i;
  const json_t *f;
  json_array_foreach(json_object_get(report, "faults"), i, f) {
    if (json_is_true(json_object_get(f, "fired")))
      continue;
    const char *asked = str_at(f, "asked"), *detail = str_at(f, "detail");
    char *line = detail ? xprintf("fault did not fire: %s (%s)", asked ? asked : "?", detail)
                        : xprintf("fault did not fire: %s", asked ? asked : "?");
    push_text(v->reasons, line);
    free(line);
  }
}

static void print_verdict(const struct verdict *v, const struct loaded *l, const char *source,
                          const json_t *report) {
  const char *word = strcmp(v->verdict, "passed") == 0   ? "PASS"
                     : strcmp(v->verdict, "failed") == 0 ? "FAIL"
                                                         : "SKIP";
  const json_t *eh = json_object_get(report, "exitHandler");
  const char *wname = str_at(json_object_get(report, "workflow"), "name");
  const char *phase = str_at(json_object_get(report, "status"), "phase");
  json_int_t runs = json_integer_value(json_object_get(eh, "runs"));
  printf("%-5s %s (verify %s): workflow %s %s; exit handler %s (%lld run%s)\n", word,
         l->sc->name, source, wname ? wname : l->wf->name, phase && *phase ? phase : "(no phase)",
         json_is_true(json_object_get(eh, "ran")) ? "ran" : "did not run", (long long)runs,
         runs == 1 ? "" : "s");
  size_t i;
  const json_t *r;
  json_array_foreach(v->results, i, r) {
    if (json_is_true(json_object_get(r, "ok")))
      continue;
    char *text = expectation_result_text(r);
    printf("      %s:%lld:%lld: %s\n", l->sc->file,
           (long long)json_integer_value(json_object_get(r, "line")),
           (long long)json_integer_value(json_object_get(r, "column")), text);
    free(text);
  }
  json_array_foreach(v->unchecked, i, r) {
    printf("      %s:%lld:%lld: not checked: %s: %s\n", l->sc->file,
           (long long)json_integer_value(json_object_get(r, "line")),
           (long long)json_integer_value(json_object_get(r, "column")), str_at(r, "path"),
           str_at(r, "note"));
  }
  json_array_foreach(v->reasons, i, r) printf("      %s\n", json_string_value(r));
  printf("scenarios: %d passed, %d failed, %d skipped\n", word[0] == 'P', word[0] == 'F',
         word[0] == 'S');
}

static int load_status(const char *path, json_t **out, ep_error **err) {
  json_error_t jerr;
  json_t *obj = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (obj == NULL)
    return ep_error_at(err, EP_EXIT_USAGE, path, jerr.line > 0 ? jerr.line : 0,
                       jerr.column > 0 ? jerr.column : 0, "%s", jerr.text);
  if (!json_is_object(obj) || !json_is_object(json_object_get(obj, "status")) ||
      !json_is_object(json_object_get(json_object_get(obj, "status"), "nodes"))) {
    json_decref(obj);
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "not a Workflow with a status (argo get NAME -o json) nor an exitprobe "
                       "report: no status.nodes object");
  }
  *out = obj;
  return 0;
}

int cli_verify(int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    verify_usage(stdout);
    return EP_EXIT_OK;
  }
  if (argc != 3) {
    verify_usage(stderr);
    return EP_EXIT_USAGE;
  }
  ep_error *err = NULL;
  struct loaded l = {0};
  json_t *obj = NULL, *report = NULL;
  struct verdict v = {.unchecked = json_array(), .reasons = json_array()};
  int status;
  if (load_all(argv[1], &l, &err) < 0 || load_status(argv[2], &obj, &err) < 0)
    goto bad;
  bool is_report = str_at(obj, "kind") != NULL && strcmp(str_at(obj, "kind"), "Report") == 0;
  if (is_report) {
    if (report_check(obj, argv[2], &err) < 0)
      goto bad;
    report = json_incref(obj);
  } else {
    report = report_from_workflow(obj, l.wf);
    const char *phase = str_at(json_object_get(obj, "status"), "phase");
    if (phase == NULL || strcmp(phase, "Running") == 0 || strcmp(phase, "Pending") == 0 ||
        *phase == '\0')
      fprintf(stderr, "exitprobe: verify: workflow is not finished (phase %s): run argo wait "
                      "first\n",
              phase && *phase ? phase : "unset");
  }
  if (expectations_evaluate(l.sc->file, l.sc->expect, report, &v.results, &err) < 0)
    goto bad;
  if (is_report) {
    report_fault_reasons(&v, report);
  } else {
    split_unknowable(&v);
    cluster_fault_reasons(&v, &l, obj);
  }
  v.verdict = expectations_verdict(v.results, json_array_size(v.reasons) > 0);
  print_verdict(&v, &l, is_report ? "report" : "cluster", report);
  status = strcmp(v.verdict, "passed") == 0   ? EP_EXIT_OK
           : strcmp(v.verdict, "failed") == 0 ? EP_EXIT_FAILED
                                              : EP_EXIT_ENVIRONMENT;
  goto out;
bad:
  ep_error_print(err, stderr);
  status = err != NULL ? err->status : EP_EXIT_USAGE;
out:
  ep_error_free(&err);
  json_decref(v.results);
  json_decref(v.unchecked);
  json_decref(v.reasons);
  json_decref(report);
  json_decref(obj);
  loaded_clear(&l);
  return status;
}
