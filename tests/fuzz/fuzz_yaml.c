/* libFuzzer target: the YAML loader (ydoc_load_buffer) on arbitrary bytes,
 * then every helper the model uses on every node reachable from the root.
 * The walk is bounded: aliases make the tree a DAG whose expansion the
 * loader already capped, and a harness that hung on it would hide bugs. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "yaml_doc.h"

enum { WALK_BUDGET = 200000 };

static void touch(const struct ydoc_node *n) {
  bool b;
  long long v;
  (void)ydoc_is_null(n);
  (void)ydoc_as_bool(n, &b);
  (void)ydoc_as_int(n, &v);
  (void)ydoc_kind_name(n->kind);
  if (n->kind == YDOC_SCALAR && n->scalar[n->len] != '\0')
    abort(); /* scalars must be NUL-terminated at len */
}

static void walk(const struct ydoc_node *root) {
  const struct ydoc_node **stack = malloc(WALK_BUDGET * sizeof(*stack));
  size_t top = 0, visited = 0;
  if (stack == NULL)
    return;
  stack[top++] = root;
  while (top > 0 && visited++ < WALK_BUDGET) {
    const struct ydoc_node *n = stack[--top];
    touch(n);
    if (n->line < 1 || n->column < 1)
      abort(); /* every node must have a position for error messages */
    if (n->kind == YDOC_SEQUENCE) {
      for (size_t i = 0; i < n->n_items && top < WALK_BUDGET; i++)
        stack[top++] = n->items[i];
    } else if (n->kind == YDOC_MAPPING) {
      for (size_t i = 0; i < n->n_pairs && top + 1 < WALK_BUDGET; i++) {
        if (n->pairs[i].key->kind != YDOC_SCALAR)
          abort(); /* promised by yaml_doc.h */
        (void)ydoc_get(n, n->pairs[i].key->scalar);
        stack[top++] = n->pairs[i].value;
      }
    }
  }
  free(stack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct ydoc *doc = NULL;
  ep_error *err = NULL;
  if (ydoc_load_buffer("fuzz.yaml", (const char *)data, size, NULL, &doc, &err) == 0) {
    if (err != NULL || doc == NULL)
      abort(); /* success leaves no error and gives a document */
    if (doc->root != NULL)
      walk(doc->root);
    ydoc_free(doc);
  } else {
    if (err == NULL || doc != NULL || err->message == NULL)
      abort(); /* failure always explains itself and hands back nothing */
    ep_error_free(&err);
  }
  return 0;
}
