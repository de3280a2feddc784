/* The Workflow model: what is accepted, and where bad input is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workflow.h"
#include "yaml_doc.h"

static struct workflow *load_ok(const char *text, const struct param_override *p, size_t n) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  assert_int_equal(ydoc_load_buffer("wf.yaml", text, strlen(text), NULL, &doc, &err), 0);
  struct workflow *wf = NULL;
  if (workflow_from_doc(doc, p, n, &wf, &err) < 0) {
    ep_error_print(err, stderr);
    fail_msg("expected the workflow to load");
  }
  return wf;
}

/* Expect an error at line:column whose message contains needle. */
static void load_fails(const char *text, int line, int column, const char *needle) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  struct workflow *wf = NULL;
  int rc = ydoc_load_buffer("wf.yaml", text, strlen(text), NULL, &doc, &err);
  if (rc == 0) {
    rc = workflow_from_doc(doc, NULL, 0, &wf, &err);
    if (rc < 0)
      ydoc_free(doc);
  }
  assert_int_equal(rc, -1);
  assert_non_null(err);
  assert_int_equal(err->status, EP_EXIT_USAGE);
  assert_string_equal(err->file, "wf.yaml");
  if (strstr(err->message, needle) == NULL || err->line != line || err->column != column)
    fail_msg("got %d:%d '%s', want %d:%d containing '%s'", err->line, err->column, err->message,
             line, column, needle);
  ep_error_free(&err);
}

#define HEADER "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: t\n"

static const char seed[] =
    "apiVersion: argoproj.io/v1alpha1\n"
    "kind: Workflow\n"
    "metadata:\n"
    "  name: exit-handler-workflow\n"
    "  namespace: argo\n"
    "spec:\n"
    "  entrypoint: main\n"
    "  onExit: cleanup\n"
    "  templates:\n"
    "  - name: main\n"
    "    steps:\n"
    "    - - name: work\n"
    "        template: do-work\n"
    "  - name: do-work\n"
    "    container:\n"
    "      image: alpine\n"
    "      command: [sh, -c]\n"
    "      args: [\"echo 'Doing work...'; exit 1\"]\n"
    "  - name: cleanup\n"
    "    container:\n"
    "      image: alpine\n"
    "      command: [sh, -c]\n"
    "      args:\n"
    "      - |\n"
    "        echo \"Workflow status: {{workflow.status}}\"\n";

static void test_seed_model(void **state) {
  (void)state;
  struct workflow *wf = load_ok(seed, NULL, 0);
  assert_string_equal(wf->name, "exit-handler-workflow");
  assert_string_equal(wf->namespace_, "argo");
  assert_string_equal(wf->entrypoint, "main");
  assert_string_equal(wf->on_exit, "cleanup");
  assert_int_equal(wf->n_templates, 3);
  const struct wf_template *main_t = workflow_find_template(wf, "main");
  assert_int_equal(main_t->kind, TEMPLATE_STEPS);
  assert_int_equal(main_t->n_groups, 1);
  assert_string_equal(main_t->groups[0].steps[0].name, "work");
  const struct wf_template *work = workflow_find_template(wf, "do-work");
  assert_int_equal(work->kind, TEMPLATE_CONTAINER);
  assert_int_equal(work->n_command, 2);
  assert_string_equal(work->args[0], "echo 'Doing work...'; exit 1");
  assert_int_equal(wf->n_warnings, 0);
  workflow_free(wf);
}

static void test_generate_name(void **state) {
  (void)state;
  struct workflow *wf = load_ok("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                                "metadata: {generateName: hello-}\n"
                                "spec:\n  entrypoint: a\n  templates:\n"
                                "  - name: a\n    container: {image: x, command: [\"true\"]}\n",
                                NULL, 0);
  assert_int_equal(strlen(wf->name), strlen("hello-") + 5);
  assert_memory_equal(wf->name, "hello-", 6);
  assert_string_equal(wf->namespace_, "default");
  workflow_free(wf);
}

static void test_parameters_and_overrides(void **state) {
  (void)state;
  const char *text = HEADER "spec:\n  entrypoint: a\n  arguments:\n    parameters:\n"
                            "    - name: msg\n      value: hi\n    - {name: n, value: 3}\n"
                            "  templates:\n  - name: a\n    inputs:\n      parameters:\n"
                            "      - name: msg\n    container:\n      command: [echo]\n"
                            "      args: [\"{{inputs.parameters.msg}} {{workflow.parameters.n}}\"]\n";
  struct param_override p[] = {{"msg", "bye"}, {"extra", "1"}};
  struct workflow *wf = load_ok(text, p, 2);
  assert_int_equal(wf->n_arguments, 3);
  assert_string_equal(wf->arguments[0].value, "bye");
  assert_string_equal(wf->arguments[1].value, "3");
  assert_string_equal(wf->arguments[2].name, "extra");
  workflow_free(wf);
}

static void test_memory_quantities(void **state) {
  (void)state;
  uint64_t b;
  assert_int_equal(parse_memory_quantity("64Mi", &b), 0);
  assert_int_equal(b, 64ULL << 20);
  assert_int_equal(parse_memory_quantity("1G", &b), 0);
  assert_int_equal(b, 1000000000ULL);
  assert_int_equal(parse_memory_quantity("1.5Gi", &b), 0);
  assert_int_equal(b, 3ULL << 29);
  assert_int_equal(parse_memory_quantity("512", &b), 0);
  assert_int_equal(b, 512);
  assert_int_equal(parse_memory_quantity("12XB", &b), -1);
  assert_int_equal(parse_memory_quantity("-1Mi", &b), -1);
  assert_int_equal(parse_memory_quantity("", &b), -1);
}

static void test_unused_fields_warn(void **state) {
  (void)state;
  struct workflow *wf = load_ok(HEADER "spec:\n  entrypoint: a\n  serviceAccountName: x\n"
                                       "  bogus: 1\n  templates:\n"
                                       "  - name: a\n    container: {image: x, command: [\"true\"]}\n",
                                NULL, 0);
  assert_int_equal(wf->n_warnings, 2);
  assert_non_null(strstr(wf->warnings[0], "wf.yaml:7:3: warning"));
  assert_non_null(strstr(wf->warnings[1], "unknown field 'spec.bogus'"));
  workflow_free(wf);
}

static void test_hooks_exit_is_the_exit_handler(void **state) {
  (void)state;
  struct workflow *wf = load_ok(HEADER "spec:\n  entrypoint: a\n  hooks:\n    exit:\n"
                                       "      template: a\n  templates:\n"
                                       "  - name: a\n    container: {command: [\"true\"]}\n",
                                NULL, 0);
  assert_string_equal(wf->on_exit, "a");
  workflow_free(wf);
}

/* Init containers keep their order and name; mirrorVolumeMounts adds main's
 * mounts after their own; main's name is the only one that warns. */
static void test_init_containers(void **state) {
  (void)state;
  struct workflow *wf = load_ok(
      HEADER "spec:\n  entrypoint: a\n  volumes: [{name: v, emptyDir: {}}]\n  templates:\n"
             "  - name: a\n    initContainers:\n"
             "    - {name: one, image: x, command: [\"true\"], mirrorVolumeMounts: true,\n"
             "       volumeMounts: [{name: v, mountPath: /own}]}\n"
             "    - {name: two, args: [echo, hi], mirrorVolumeMounts: false}\n"
             "    container:\n      name: main\n      command: [\"true\"]\n"
             "      volumeMounts: [{name: v, mountPath: /shared, readOnly: true}]\n",
      NULL, 0);
  const struct wf_template *t = &wf->templates[0];
  assert_int_equal(t->n_init_containers, 2);
  assert_string_equal(t->init_containers[0].name, "one");
  assert_int_equal(t->init_containers[0].n_mounts, 2);
  assert_string_equal(t->init_containers[0].mounts[0].mount_path, "/own");
  assert_string_equal(t->init_containers[0].mounts[1].mount_path, "/shared");
  assert_true(t->init_containers[0].mounts[1].read_only);
  assert_string_equal(t->init_containers[1].name, "two");
  assert_int_equal(t->init_containers[1].n_mounts, 0);
  assert_int_equal(t->init_containers[1].n_args, 2);
  assert_int_equal(wf->n_warnings, 1);
  assert_non_null(strstr(wf->warnings[0], "'container.name' has no effect"));
  workflow_free(wf);
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    initContainers:\n"
                    "    - {name: x, command: [\"true\"]}\n    - {name: x, command: [\"true\"]}\n"
                    "    container: {command: [\"true\"]}\n",
             11, 7, "init container name 'x' is used twice");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    initContainers:\n"
                    "    - {name: main, command: [\"true\"]}\n"
                    "    container: {command: [\"true\"]}\n",
             10, 14, "init container name 'main' is reserved");
  /* Their tags are checked at load like main's, at the item that holds one. */
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    initContainers:\n"
                    "    - {name: x, command: [\"{{inputs.parameters.nope}}\"]}\n"
                    "    container: {command: [\"true\"]}\n",
             10, 27, "failed to resolve {{inputs.parameters.nope}}");
}

static void test_bad_inputs(void **state) {
  (void)state;
  load_fails("apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: t}\n", 2, 7,
             "unknown kind 'CronWorkflow'");
  load_fails(HEADER "spec:\n  templates:\n  - name: a\n    container: {command: [x]}\n", 6, 3,
             "spec.entrypoint is required");
  load_fails(HEADER "spec:\n  entrypoint: nope\n  templates:\n  - name: a\n"
                    "    container: {command: [x]}\n",
             6, 15, "entrypoint template 'nope' is not defined");
  load_fails(HEADER "spec:\n  entrypoint: a\n  onExit: gone\n  templates:\n  - name: a\n"
                    "    container: {command: [x]}\n",
             7, 11, "onExit template 'gone' is not defined");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    steps:\n"
                    "    - - name: s\n        template: missing\n",
             11, 19, "template 'missing', which is not defined");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    container: {command: [x]}\n"
                    "  - name: a\n    container: {command: [y]}\n",
             10, 5, "duplicate template name 'a' (first defined at line 8)");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n"
                    "    container:\n      command: [echo, \"{{workflow.nope}}\"]\n",
             10, 23, "failed to resolve {{workflow.nope}}");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n"
                    "    container:\n      command: [echo, \"{{inputs.parameters.x}}\"]\n",
             10, 23, "failed to resolve {{inputs.parameters.x}}");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    steps:\n"
                    "    - - name: s\n        template: b\n"
                    "        arguments: {parameters: [{name: p, value: \"{{steps.t.outputs.result}}\"}]}\n"
                    "    - - name: t\n        template: b\n"
                    "  - name: b\n    inputs: {parameters: [{name: p, default: d}]}\n"
                    "    container: {command: [x]}\n",
             12, 51, "failed to resolve {{steps.t.outputs.result}}");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    steps:\n"
                    "    - name: s\n      template: a\n",
             10, 7, "list of lists");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n", 8, 5, "has no body");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n    container:\n"
                    "      command: [x]\n      resources: {limits: {memory: lots}}\n",
             11, 36, "not a memory quantity");
  load_fails(HEADER "spec:\n  entrypoint: a\n  templates:\n  - name: a\n"
                    "    inputs: {parameters: [{name: x}]}\n    container: {command: [x]}\n",
             6, 15, "inputs.parameters.x of template 'a' was not supplied");
  load_fails(HEADER "spec: [1]\n", 5, 7, "spec must be a mapping");
  load_fails("", 1, 1, "empty");
  load_fails("kind: Workflow\n---\nkind: Workflow\n", 2, 1, "second document");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seed_model),
      cmocka_unit_test(test_generate_name),
      cmocka_unit_test(test_parameters_and_overrides),
      cmocka_unit_test(test_memory_quantities),
      cmocka_unit_test(test_unused_fields_warn),
      cmocka_unit_test(test_hooks_exit_is_the_exit_handler),
      cmocka_unit_test(test_init_containers),
      cmocka_unit_test(test_bad_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
