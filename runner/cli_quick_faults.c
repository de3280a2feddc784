/* `--fault TARGET:ACTION[=VALUE][@AFTER]`: faults for a quick try on a plain
 * workflow, turned into a scenario document so that they are checked and
 * carried out exactly like a scenario's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../injector/scenario.h"

/* YAML double-quoted scalar text for s. */
static void put_quoted(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fputc('\\', out);
    if ((unsigned char)*s < 0x20)
      continue;
    fputc(*s, out);
  }
  fputc('"', out);
}

/* One --fault into a YAML flow mapping. */
static int write_fault(FILE *out, const char *spec, ep_error **err) {
  char *copy = strdup(spec);
  char *colon = strchr(copy, ':');
  int rc = -1;
  if (colon == NULL) {
    ep_error_set(err, EP_EXIT_USAGE, "--fault '%s': expected TARGET:ACTION[=VALUE][@AFTER]",
                 spec);
    goto out;
  }
  *colon = '\0';
  const char *target = copy, *action = colon + 1;
  char *after = strrchr(action, '@');
  if (after != NULL)
    *after++ = '\0';
  char *value = strchr(action, '=');
  if (value != NULL)
    *value++ = '\0';
  fputs("  - {action: ", out);
  put_quoted(out, strcmp(action, "stop") == 0 || strcmp(action, "terminate") == 0 ? "shutdown"
                                                                                  : action);
  if (*target) {
    fputs(", target: ", out);
    put_quoted(out, target);
  }
  struct {
    const char *action, *field;
  } value_fields[] = {{"exit", "code"},       {"signal", "signal"}, {"delay", "duration"},
                      {"freeze", "duration"}, {"oom", "limit"},     {"pids", "limit"},
                      {"network", "network"}, {"stop", NULL},       {"terminate", NULL}};
  bool known = false;
  for (size_t i = 0; i < sizeof(value_fields) / sizeof(value_fields[0]); i++) {
    if (strcmp(action, value_fields[i].action) != 0)
      continue;
    known = true;
    if (value_fields[i].field != NULL && value != NULL) {
      fprintf(out, ", %s: ", value_fields[i].field);
      put_quoted(out, value);
    }
  }
  if (strcmp(action, "stop") == 0 || strcmp(action, "terminate") == 0)
    fprintf(out, ", strategy: %s", action); /* ":stop@1s" is a shutdown fault */
  if (strcmp(action, "signal") == 0 && after == NULL)
    fputs(", atStart: true", out);
  if (after != NULL) {
    fputs(", after: ", out);
    put_quoted(out, after);
  }
  fputs("}\n", out);
  if (!known && strcmp(action, "hang") != 0 && strcmp(action, "syscall") != 0) {
    ep_error_set(err, EP_EXIT_USAGE, "--fault '%s': unknown action '%s' (exit, signal, hang, "
                                     "delay, freeze, oom, pids, network, stop, terminate)",
                 spec, action);
    goto out;
  }
  rc = 0;
out:
  free(copy);
  return rc;
}

int quick_faults_scenario(const struct run_args *a, struct scenario **out, ep_error **err) {
  char path[] = "/tmp/exitprobe-faults-XXXXXX.yaml";
  int fd = mkstemps(path, 5);
  if (fd < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot create a temporary file");
  FILE *f = fdopen(fd, "w");
  if (f == NULL) {
    close(fd);
    unlink(path);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "cannot write a temporary file");
  }
  char *abs = realpath(a->workflow_path, NULL);
  fputs("apiVersion: exitprobe/v1\nkind: Scenario\nmetadata: {name: command-line}\nspec:\n"
        "  workflow: ", f);
  put_quoted(f, abs ? abs : a->workflow_path);
  fputs("\n  faults:\n", f);
  free(abs);
  int rc = 0;
  for (size_t i = 0; i < a->n_quick_faults && rc == 0; i++)
    rc = write_fault(f, a->quick_faults[i], err);
  fclose(f);
  if (rc == 0 && scenario_load_file(path, out, err) < 0)
    rc = -1; /* the caller names the option (the file is gone by then) */
  unlink(path);
  return rc;
}
