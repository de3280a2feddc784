/* libFuzzer target: the expression evaluator.  The first byte chooses
 * what to do: bit 0 the mode (govaluate for `when`, expr-lang for
 * depends/hooks/retry), bit 1 whether a lookup resolves names like the
 * controller's does, bit 2 expr_eval_bool instead of expr_eval.  The rest,
 * up to a NUL, is the expression. */
#include <stdbool.h>

#include "expr.h"
#include "fuzz_common.h"

/* A side-effect-free lookup over a fixed table, as expr.h requires. */
static int lookup(void *ctx, const char *name, struct expr_value *out) {
  (void)ctx;
  static const struct {
    const char *name;
    enum expr_type type;
    const char *text;
    double num;
  } vars[] = {
      {"steps.flip.outputs.result", EXPR_STRING, "heads", 0},
      {"steps.step-1.status", EXPR_STRING, "Succeeded", 0},
      {"tasks.a.status", EXPR_STRING, "Failed", 0},
      {"lastRetry.exitCode", EXPR_NUMBER, NULL, 137},
      {"lastRetry.status", EXPR_STRING, "Error", 0},
      {"lastRetry.duration", EXPR_NUMBER, NULL, 1.5},
      {"retries", EXPR_NUMBER, NULL, 2},
      {"task-a.Succeeded", EXPR_BOOL, NULL, 1},
      {"task_a.Succeeded", EXPR_BOOL, NULL, 1},
      {"task-b.Failed", EXPR_BOOL, NULL, 0},
      {"1st.Failed", EXPR_BOOL, NULL, 0},
      {"workflow.status", EXPR_STRING, "Running", 0},
      {"nothing", EXPR_NIL, NULL, 0},
  };
  if (strcmp(name, "fail.lookup") == 0)
    return -1;
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
    if (strcmp(vars[i].name, name) != 0)
      continue;
    switch (vars[i].type) {
    case EXPR_NIL:
      expr_value_set_nil(out);
      break;
    case EXPR_BOOL:
      expr_value_set_bool(out, vars[i].num != 0);
      break;
    case EXPR_NUMBER:
      expr_value_set_number(out, vars[i].num);
      break;
    case EXPR_STRING:
      expr_value_set_string(out, vars[i].text);
      break;
    }
    return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  unsigned flags = data[0];
  char *text = fuzz_cstring(data + 1, size - 1);
  if (text == NULL)
    return 0;
  enum expr_mode mode = (flags & 1) ? EXPR_EXPRLANG : EXPR_GOVALUATE;
  expr_lookup_fn fn = (flags & 2) ? lookup : NULL;
  ep_error *err = NULL;
  if (flags & 4) {
    bool b = false;
    if (expr_eval_bool(text, mode, fn, NULL, &b, &err) < 0 && err == NULL)
      abort();
  } else {
    struct expr_value v = {0};
    if (expr_eval(text, mode, fn, NULL, &v, &err) == 0) {
      char *s = expr_value_to_string(&v);
      if (s == NULL)
        abort();
      (void)expr_type_name(v.type);
      free(s);
    } else if (err == NULL || v.type != EXPR_NIL) {
      abort(); /* failure fills err and leaves the value nil */
    }
    expr_value_clear(&v);
  }
  ep_error_free(&err);
  free(text);
  return 0;
}
