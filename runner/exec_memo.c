/* A small pointer-keyed hash map: see exec_memo.h. */
#include "exec_memo.h"

#include <stdint.h>
#include <stdlib.h>

#include "xalloc.h"

static size_t slot_of(const struct exec_memo *m, const void *key) {
  uintptr_t h = (uintptr_t)key;
  h ^= h >> 17;
  h *= (uintptr_t)0x9E3779B97F4A7C15u;
  h ^= h >> 29;
  return (size_t)h & (m->cap - 1);
}

void *exec_memo_get(const struct exec_memo *m, const void *key) {
  if (m->cap == 0)
    return NULL;
  for (size_t k = slot_of(m, key); m->slots[k].key != NULL; k = (k + 1) & (m->cap - 1))
    if (m->slots[k].key == key)
      return m->slots[k].value;
  return NULL;
}

static void insert(struct exec_memo *m, struct exec_memo_entry e) {
  size_t k = slot_of(m, e.key);
  while (m->slots[k].key != NULL)
    k = (k + 1) & (m->cap - 1);
  m->slots[k] = e;
  m->n++;
}

void exec_memo_put(struct exec_memo *m, const void *key, void *value,
                   void (*free_value)(void *value)) {
  if (2 * (m->n + 1) > m->cap) {
    struct exec_memo old = *m;
    m->cap = old.cap ? 2 * old.cap : 16;
    m->slots = xcalloc(m->cap, sizeof(*m->slots));
    m->n = 0;
    for (size_t k = 0; k < old.cap; k++)
      if (old.slots[k].key != NULL)
        insert(m, old.slots[k]);
    free(old.slots);
  }
  insert(m, (struct exec_memo_entry){key, value, free_value});
}

void exec_memo_clear(struct exec_memo *m) {
  for (size_t k = 0; k < m->cap; k++)
    if (m->slots[k].key != NULL && m->slots[k].free_value != NULL)
      m->slots[k].free_value(m->slots[k].value);
  free(m->slots);
  m->slots = NULL;
  m->cap = m->n = 0;
}
