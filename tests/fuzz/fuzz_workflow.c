/* libFuzzer target: a Workflow manifest through the YAML loader and the
 * workflow model (workflow_from_doc), with one -p override so that the
 * override path runs too.  Any validation error must carry a message;
 * crashes, leaks and sanitizer reports are the findings. */
#include "fuzz_common.h"
#include "workflow.h"
#include "yaml_doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct param_override overrides[] = {{"message", "{{workflow.name}}"}};
  struct ydoc *doc = NULL;
  struct workflow *wf = NULL;
  ep_error *err = NULL;
  if (ydoc_load_buffer("fuzz.yaml", (const char *)data, size, NULL, &doc, &err) < 0) {
    ep_error_free(&err);
    return 0;
  }
  if (workflow_from_doc(doc, overrides, 1, &wf, &err) < 0) {
    if (err == NULL || err->message == NULL)
      abort();
    ep_error_free(&err);
    ydoc_free(doc); /* still ours on failure */
    return 0;
  }
  for (size_t i = 0; i < wf->n_templates; i++)
    if (workflow_find_template(wf, wf->templates[i].name) == NULL)
      abort();
  workflow_free(wf); /* frees doc as well */
  return 0;
}
