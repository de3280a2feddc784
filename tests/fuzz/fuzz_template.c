/* libFuzzer target: Argo's {{...}} substitution.  The input is the text
 * to substitute, optionally followed by a NUL and NAME=VALUE lines that
 * are bound in a child scope on top of a fixed parent scope, so both
 * lookups through the parent chain and rebinding are exercised. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "template_vars.h"

static int count_tag(void *ctx, const char *name, size_t offset) {
  (void)name;
  (void)offset;
  (*(size_t *)ctx)++;
  return 0;
}

static void bind_lines(struct var_scope *scope, char *lines) {
  char *save = NULL;
  for (char *line = strtok_r(lines, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *eq = strchr(line, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    var_scope_set(scope, line, eq + 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstring(data, size);
  if (text == NULL)
    return 0;
  size_t text_len = strlen(text);
  char *rest = text_len < size ? fuzz_cstring(data + text_len + 1, size - text_len - 1) : NULL;

  struct var_scope globals, local;
  var_scope_init(&globals, NULL);
  var_scope_set(&globals, "workflow.name", "wf-abc12");
  var_scope_set(&globals, "workflow.status", "Failed");
  var_scope_set(&globals, "workflow.failures", "[{\"displayName\":\"work\"}]");
  var_scope_set(&globals, "inputs.parameters.message", "{{inputs.parameters.message}}");
  var_scope_set(&globals, "item", "");
  var_scope_init(&local, &globals);
  var_scope_set(&local, "steps.work.outputs.result", "heads");
  var_scope_set(&local, "item", "x");
  if (rest != NULL)
    bind_lines(&local, rest);

  char *out = NULL, *missing = NULL;
  ep_error *err = NULL;
  if (template_substitute(text, &local, &out, &missing, &err) == 0) {
    if (out == NULL || err != NULL || missing != NULL)
      abort();
    char *quoted = json_quote_string(out);
    free(quoted);
    free(out);
  } else {
    if (err == NULL)
      abort();
    free(missing);
    ep_error_free(&err);
  }
  size_t tags = 0;
  (void)template_for_each_tag(text, count_tag, &tags);

  var_scope_clear(&local);
  var_scope_clear(&globals);
  free(rest);
  free(text);
  return 0;
}
