/* What the controller remembers between reconcile passes about a node or a
 * template (a steps node's finished groups, a DAG node's ready tasks, a DAG
 * template's graph), keyed by its address.  Node phases only move forward,
 * so a pass can start from what the last one found instead of re-deriving
 * it from the first group or task: that re-derivation made every pass O(n)
 * and a run O(n^2).  A restarted controller starts with an empty memo and
 * re-derives once. */
#ifndef EXITPROBE_EXEC_MEMO_H
#define EXITPROBE_EXEC_MEMO_H

#include <stddef.h>

struct exec_memo_entry {
  const void *key;
  void *value;
  void (*free_value)(void *value);
};

struct exec_memo {
  struct exec_memo_entry *slots; /* open addressing; key NULL = empty */
  size_t cap, n;                 /* cap: 0 or a power of two, at least twice n */
};

void *exec_memo_get(const struct exec_memo *m, const void *key);
/* key must not be present yet; free_value(value) runs at exec_memo_clear. */
void exec_memo_put(struct exec_memo *m, const void *key, void *value,
                   void (*free_value)(void *value));
void exec_memo_clear(struct exec_memo *m);

#endif
