/* Template tag substitution: what a step's command line becomes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "template_vars.h"

static char *subst_ok(const struct var_scope *scope, const char *in) {
  char *out = NULL, *missing = NULL;
  ep_error *err = NULL;
  assert_int_equal(template_substitute(in, scope, &out, &missing, &err), 0);
  assert_null(err);
  return out;
}

static void test_simple_and_spaced_tags(void **state) {
  (void)state;
  struct var_scope s;
  var_scope_init(&s, NULL);
  var_scope_set(&s, "workflow.status", "Failed");
  char *out = subst_ok(&s, "echo \"Workflow status: {{workflow.status}}\" {{ workflow.status }}");
  assert_string_equal(out, "echo \"Workflow status: Failed\" Failed");
  free(out);
  out = subst_ok(&s, "no closing tag: a lone {{ stays");
  assert_string_equal(out, "no closing tag: a lone {{ stays");
  free(out);
  var_scope_clear(&s);
}

static void test_values_are_not_rescanned(void **state) {
  (void)state;
  struct var_scope s;
  var_scope_init(&s, NULL);
  var_scope_set(&s, "a", "{{b}}");
  char *out = subst_ok(&s, "x{{a}}y");
  assert_string_equal(out, "x{{b}}y");
  free(out);
  var_scope_clear(&s);
}

static void test_unresolved_names_the_variable(void **state) {
  (void)state;
  struct var_scope s;
  var_scope_init(&s, NULL);
  char *out = NULL, *missing = NULL;
  ep_error *err = NULL;
  assert_int_equal(template_substitute("a {{steps.x.outputs.result}} b", &s, &out, &missing, &err), -1);
  assert_null(out);
  assert_string_equal(missing, "steps.x.outputs.result");
  assert_non_null(strstr(err->message, "failed to resolve {{steps.x.outputs.result}}"));
  free(missing);
  ep_error_free(&err);
}

static void test_parent_scope_and_override(void **state) {
  (void)state;
  struct var_scope parent, child;
  var_scope_init(&parent, NULL);
  var_scope_set(&parent, "g", "global");
  var_scope_set(&parent, "x", "outer");
  var_scope_init(&child, &parent);
  var_scope_set(&child, "x", "inner");
  var_scope_set(&child, "x", "inner2");
  char *out = subst_ok(&child, "{{g}}/{{x}}");
  assert_string_equal(out, "global/inner2");
  free(out);
  assert_int_equal(child.n, 1);
  var_scope_clear(&child);
  var_scope_clear(&parent);
}

static void test_expression_tags(void **state) {
  (void)state;
  struct var_scope s;
  var_scope_init(&s, NULL);
  var_scope_set(&s, "inputs.parameters.n", "41");
  char *out = subst_ok(&s, "n={{= asInt(inputs.parameters.n) + 1 }}");
  assert_string_equal(out, "n=42");
  free(out);
  char *missing = NULL;
  ep_error *err = NULL;
  out = NULL;
  assert_int_equal(template_substitute("{{= 1 + }}", &s, &out, &missing, &err), -1);
  assert_non_null(strstr(err->message, "failed to evaluate {{= 1 +}}"));
  free(missing);
  ep_error_free(&err);
  var_scope_clear(&s);
}

static void test_json_quote_like_go(void **state) {
  (void)state;
  char *q = json_quote_string("[{\"m\":\"a<b & c>\\\n\"}]");
  assert_string_equal(q, "\"[{\\\"m\\\":\\\"a\\u003cb \\u0026 c\\u003e\\\\\\n\\\"}]\"");
  free(q);
  q = json_quote_string("null");
  assert_string_equal(q, "\"null\"");
  free(q);
}

static int count_tag(void *ctx, const char *name, size_t offset) {
  (void)offset;
  int *n = ctx;
  if (strcmp(name, "a.b") == 0)
    (*n)++;
  return 0;
}

static void test_for_each_tag(void **state) {
  (void)state;
  int n = 0;
  assert_int_equal(template_for_each_tag("{{a.b}} {{ a.b }} {{c}}", count_tag, &n), 0);
  assert_int_equal(n, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_and_spaced_tags),
      cmocka_unit_test(test_values_are_not_rescanned),
      cmocka_unit_test(test_unresolved_names_the_variable),
      cmocka_unit_test(test_parent_scope_and_override),
      cmocka_unit_test(test_expression_tags),
      cmocka_unit_test(test_json_quote_like_go),
      cmocka_unit_test(test_for_each_tag),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
