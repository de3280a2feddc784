/* YAML document tree built from libyaml's event stream (see yaml_doc.h).
 *
 * The builder is iterative: an explicit frame per open collection, and one
 * shared scratch vector holding the children of every open collection, so
 * nesting costs no C stack and each collection is copied into the arena once,
 * when it ends.  Hostile input is bounded on every axis: file size, scalar
 * size, created nodes, nesting, and the size of the tree with aliases
 * expanded (tracked per anchor so each alias costs O(1)).
 *
 * A document consisting only of "---" yields what libyaml reports for it: a
 * root that is an empty plain scalar, which ydoc_is_null() accepts.  Only a
 * stream with no document at all (empty file, only comments) has root NULL. */
#include "yaml_doc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

const struct ydoc_limits ydoc_default_limits = {
    .max_file_bytes = 16u * 1024 * 1024,
    .max_depth = 256,
    .max_nodes = 1000000,
    .max_expanded_nodes = 1000000,
    .max_scalar_bytes = 4u * 1024 * 1024,
};

#define TAG_MERGE "tag:yaml.org,2002:merge"
#define TAG_NULL "tag:yaml.org,2002:null"
#define TAG_BOOL "tag:yaml.org,2002:bool"

/* ---- arena ------------------------------------------------------------- */

enum { ARENA_CHUNK = 64 * 1024, ARENA_ALIGN = alignof(max_align_t) };

struct arena_chunk {
  struct arena_chunk *next;
  size_t used;
  size_t cap;
};

struct ydoc_arena {
  struct arena_chunk *head;
};

/* Payload starts after the header, rounded up so every block is aligned. */
#define CHUNK_HDR (((sizeof(struct arena_chunk)) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static void *arena_alloc(struct ydoc_arena *a, size_t size) {
  if (size == 0)
    size = 1;
  if (size > SIZE_MAX - ARENA_ALIGN - CHUNK_HDR)
    return NULL;
  size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  struct arena_chunk *c = a->head;
  if (c == NULL || c->cap - c->used < size) {
    /* Big blocks get a chunk of their own so the current one keeps its
     * free tail for the small nodes that follow. */
    size_t cap = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
    struct arena_chunk *n = malloc(CHUNK_HDR + cap);
    if (n == NULL)
      return NULL;
    n->used = 0;
    n->cap = cap;
    if (cap != ARENA_CHUNK && c != NULL) {
      n->next = c->next;
      c->next = n;
    } else {
      n->next = c;
      a->head = n;
    }
    c = n;
  }
  void *p = (unsigned char *)c + CHUNK_HDR + c->used;
  c->used += size;
  return p;
}

static void arena_free(struct ydoc_arena *a) {
  if (a == NULL)
    return;
  struct arena_chunk *c = a->head;
  while (c != NULL) {
    struct arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  free(a);
}

static char *arena_strndup(struct ydoc_arena *a, const char *s, size_t len) {
  char *p = arena_alloc(a, len + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

/* ---- loader state ------------------------------------------------------ */

/* The public node plus what only the loader needs.  canon points at the
 * first key node seen with the same text, so key comparisons are pointer
 * comparisons and a long key is hashed and compared once, not once per
 * mapping it is merged into. */
struct ynode {
  struct ydoc_node pub;
  const struct ynode *canon;
};

static struct ynode *ynode_of(const struct ydoc_node *n) {
  return (struct ynode *)(void *)n; /* pub is the first member */
}

struct anchor {
  const char *name; /* NULL: empty slot */
  size_t hash;
  struct ynode *node;
  size_t expanded; /* size of node with its own aliases expanded */
  bool complete;   /* false while the anchored collection is still open */
};

struct intern_slot {
  size_t hash;
  const struct ynode *node;
};

struct keyset_slot {
  const struct ynode *canon;
  int first_line;
};

/* A child of an open collection and where it appeared: for an alias that is
 * the alias itself, not the anchored node, so errors point at the right place. */
struct child {
  struct ynode *node;
  int line;
  int column;
};

struct frame {
  struct ynode *node;
  size_t start;    /* first child in the scratch vector */
  size_t expanded; /* running expanded size of this collection */
  const char *anchor;
};

struct loader {
  yaml_parser_t parser;
  const char *name;
  const char *buf;
  size_t len;
  const struct ydoc_limits *lim;
  struct ydoc *doc;
  ep_error **err;
  size_t n_nodes;
  bool seen_document;
  bool done;

  struct frame *frames;
  size_t n_frames, cap_frames;
  struct child *scratch;
  size_t n_scratch, cap_scratch;

  struct anchor *anchors;
  size_t n_anchors, cap_anchors; /* cap is 0 or a power of two */
  struct intern_slot *interned;
  size_t n_interned, cap_interned;
  struct keyset_slot *keyset;
  size_t cap_keyset;
  size_t keyset_mask; /* slots in use for the mapping being finished, minus 1 */
};

static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

static int mark_line(yaml_mark_t m) { return clamp_int(m.line + 1); }
static int mark_column(yaml_mark_t m) { return clamp_int(m.column + 1); }

static int fail_at(struct loader *L, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct loader *L, int line, int column, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return ep_error_at(L->err, EP_EXIT_USAGE, L->name, line, column, "%s", msg);
}

static int fail_oom(struct loader *L) {
  return ep_error_at(L->err, EP_EXIT_INTERNAL, L->name, 0, 0, "out of memory while loading YAML");
}

static size_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return (size_t)h;
}

static size_t hash_ptr(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (size_t)h;
}

static int grow(void **vec, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 16;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem)
      return -1;
    n *= 2;
  }
  void *p = realloc(*vec, n * elem);
  if (p == NULL)
    return -1;
  *vec = p;
  *cap = n;
  return 0;
}

/* ---- anchors ------------------------------------------------------------- */

static struct anchor *anchor_find(struct loader *L, const char *name, size_t hash) {
  if (L->cap_anchors == 0)
    return NULL;
  size_t mask = L->cap_anchors - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    struct anchor *a = &L->anchors[i];
    if (a->name == NULL)
      return NULL;
    if (a->hash == hash && strcmp(a->name, name) == 0)
      return a;
  }
}

static int anchor_rehash(struct loader *L) {
  size_t cap = L->cap_anchors ? L->cap_anchors * 2 : 64;
  struct anchor *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return -1;
  for (size_t i = 0; i < L->cap_anchors; i++) {
    struct anchor *a = &L->anchors[i];
    if (a->name == NULL)
      continue;
    size_t j = a->hash & (cap - 1);
    while (slots[j].name != NULL)
      j = (j + 1) & (cap - 1);
    slots[j] = *a;
  }
  free(L->anchors);
  L->anchors = slots;
  L->cap_anchors = cap;
  return 0;
}

/* A later anchor with the same name replaces the earlier one, as YAML says. */
static int anchor_define(struct loader *L, const char *name, struct ynode *node, size_t expanded,
                         bool complete) {
  size_t hash = hash_bytes(name, strlen(name));
  struct anchor *a = anchor_find(L, name, hash);
  if (a == NULL) {
    if ((L->n_anchors + 1) * 2 > L->cap_anchors && anchor_rehash(L) < 0)
      return fail_oom(L);
    size_t mask = L->cap_anchors - 1;
    size_t i = hash & mask;
    while (L->anchors[i].name != NULL)
      i = (i + 1) & mask;
    a = &L->anchors[i];
    a->name = name;
    a->hash = hash;
    L->n_anchors++;
  }
  a->node = node;
  a->expanded = expanded;
  a->complete = complete;
  return 0;
}

/* ---- key interning ------------------------------------------------------- */

static int intern_rehash(struct loader *L) {
  size_t cap = L->cap_interned ? L->cap_interned * 2 : 256;
  struct intern_slot *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return -1;
  for (size_t i = 0; i < L->cap_interned; i++) {
    if (L->interned[i].node == NULL)
      continue;
    size_t j = L->interned[i].hash & (cap - 1);
    while (slots[j].node != NULL)
      j = (j + 1) & (cap - 1);
    slots[j] = L->interned[i];
  }
  free(L->interned);
  L->interned = slots;
  L->cap_interned = cap;
  return 0;
}

static int intern_key(struct loader *L, struct ynode *key) {
  if (key->canon != NULL)
    return 0;
  if ((L->n_interned + 1) * 2 > L->cap_interned && intern_rehash(L) < 0)
    return fail_oom(L);
  size_t hash = hash_bytes(key->pub.scalar, key->pub.len);
  size_t mask = L->cap_interned - 1;
  size_t i = hash & mask;
  for (; L->interned[i].node != NULL; i = (i + 1) & mask) {
    const struct ynode *other = L->interned[i].node;
    if (L->interned[i].hash == hash && other->pub.len == key->pub.len &&
        memcmp(other->pub.scalar, key->pub.scalar, key->pub.len) == 0) {
      key->canon = other;
      return 0;
    }
  }
  L->interned[i].hash = hash;
  L->interned[i].node = key;
  L->n_interned++;
  key->canon = key;
  return 0;
}

/* ---- per-mapping key set -------------------------------------------------- */

static int keyset_reset(struct loader *L, size_t n_keys) {
  size_t need = 16;
  while (need / 2 < n_keys) {
    if (need > SIZE_MAX / 4 / sizeof(struct keyset_slot))
      return fail_oom(L);
    need *= 2;
  }
  if (need > L->cap_keyset) {
    free(L->keyset);
    L->keyset = malloc(need * sizeof(*L->keyset));
    if (L->keyset == NULL) {
      L->cap_keyset = 0;
      return fail_oom(L);
    }
    L->cap_keyset = need;
  }
  memset(L->keyset, 0, need * sizeof(*L->keyset));
  L->keyset_mask = need - 1;
  return 0;
}

/* Returns the line of the earlier key with the same text, or 0 after
 * inserting this one. */
static int keyset_insert(struct loader *L, const struct ynode *key, int line) {
  size_t mask = L->keyset_mask;
  for (size_t i = hash_ptr(key->canon) & mask;; i = (i + 1) & mask) {
    struct keyset_slot *s = &L->keyset[i];
    if (s->canon == NULL) {
      s->canon = key->canon;
      s->first_line = line > 0 ? line : 1;
      return 0;
    }
    if (s->canon == key->canon)
      return s->first_line;
  }
}

/* ---- node construction ---------------------------------------------------- */

static struct ynode *new_node(struct loader *L, enum ydoc_kind kind, const yaml_event_t *ev,
                              const yaml_char_t *tag) {
  int line = mark_line(ev->start_mark), column = mark_column(ev->start_mark);
  if (L->n_nodes >= L->lim->max_nodes) {
    fail_at(L, line, column, "document has more than %zu nodes", L->lim->max_nodes);
    return NULL;
  }
  struct ynode *n = arena_alloc(L->doc->arena, sizeof(*n));
  if (n == NULL) {
    fail_oom(L);
    return NULL;
  }
  memset(n, 0, sizeof(*n));
  n->pub.kind = kind;
  n->pub.line = line;
  n->pub.column = column;
  if (tag != NULL) {
    n->pub.tag = arena_strndup(L->doc->arena, (const char *)tag, strlen((const char *)tag));
    if (n->pub.tag == NULL) {
      fail_oom(L);
      return NULL;
    }
  }
  L->n_nodes++;
  return n;
}

static bool is_merge_key(const struct ynode *key) {
  const struct ydoc_node *k = &key->pub;
  return k->kind == YDOC_SCALAR && k->plain && k->len == 2 && memcmp(k->scalar, "<<", 2) == 0 &&
         (k->tag == NULL || strcmp(k->tag, TAG_MERGE) == 0);
}

/* Attach a finished node (or an alias's target) to the open collection, or
 * make it the root.  expanded is its size with aliases expanded; line and
 * column are where it appeared, which for an alias is the alias itself. */
static int attach(struct loader *L, struct ynode *node, size_t expanded, int line, int column) {
  size_t cap = L->lim->max_expanded_nodes;
  if (expanded > cap)
    return fail_at(L, line, column, "alias expansion exceeds %zu nodes", cap);
  if (L->n_frames == 0) {
    L->doc->root = &node->pub;
    return 0;
  }
  struct frame *f = &L->frames[L->n_frames - 1];
  if (f->node->pub.kind == YDOC_MAPPING && (L->n_scratch - f->start) % 2 == 0) {
    if (node->pub.kind != YDOC_SCALAR)
      return fail_at(L, line, column, "mapping keys must be scalars, found a %s",
                     ydoc_kind_name(node->pub.kind));
    if (intern_key(L, node) < 0)
      return -1;
  }
  /* Every ancestor's size includes this one, so checking the innermost open
   * collection as it grows is enough, and the sum can never overflow. */
  if (f->expanded > cap - expanded)
    return fail_at(L, line, column, "alias expansion exceeds %zu nodes", cap);
  f->expanded += expanded;
  if (grow((void **)&L->scratch, &L->cap_scratch, L->n_scratch + 1, sizeof(*L->scratch)) < 0)
    return fail_oom(L);
  L->scratch[L->n_scratch++] = (struct child){.node = node, .line = line, .column = column};
  return 0;
}

static int on_scalar(struct loader *L, const yaml_event_t *ev) {
  const char *value = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  int line = mark_line(ev->start_mark), column = mark_column(ev->start_mark);
  if (len > L->lim->max_scalar_bytes)
    return fail_at(L, line, column, "scalar is %zu bytes, larger than the limit of %zu", len,
                   L->lim->max_scalar_bytes);
  /* A "\0" escape would silently cut the string short for every C consumer. */
  if (memchr(value, '\0', len) != NULL)
    return fail_at(L, line, column, "scalar contains a NUL character");
  struct ynode *n = new_node(L, YDOC_SCALAR, ev, ev->data.scalar.tag);
  if (n == NULL)
    return -1;
  n->pub.scalar = arena_strndup(L->doc->arena, value, len);
  if (n->pub.scalar == NULL)
    return fail_oom(L);
  n->pub.len = len;
  n->pub.plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (ev->data.scalar.anchor != NULL) {
    const char *name = (const char *)ev->data.scalar.anchor;
    char *copy = arena_strndup(L->doc->arena, name, strlen(name));
    if (copy == NULL)
      return fail_oom(L);
    if (anchor_define(L, copy, n, 1, true) < 0)
      return -1;
  }
  return attach(L, n, 1, line, column);
}

static int on_alias(struct loader *L, const yaml_event_t *ev) {
  const char *name = (const char *)ev->data.alias.anchor;
  int line = mark_line(ev->start_mark), column = mark_column(ev->start_mark);
  struct anchor *a = anchor_find(L, name, hash_bytes(name, strlen(name)));
  if (a == NULL)
    return fail_at(L, line, column, "undefined alias '*%.64s'", name);
  if (!a->complete)
    return fail_at(L, line, column, "alias '*%.64s' refers to a node that contains it", name);
  return attach(L, a->node, a->expanded, line, column);
}

static int on_collection_start(struct loader *L, const yaml_event_t *ev, enum ydoc_kind kind) {
  const yaml_char_t *tag, *anchor;
  if (kind == YDOC_SEQUENCE) {
    tag = ev->data.sequence_start.tag;
    anchor = ev->data.sequence_start.anchor;
  } else {
    tag = ev->data.mapping_start.tag;
    anchor = ev->data.mapping_start.anchor;
  }
  if (L->n_frames >= L->lim->max_depth)
    return fail_at(L, mark_line(ev->start_mark), mark_column(ev->start_mark),
                   "nesting deeper than %zu levels", L->lim->max_depth);
  struct ynode *n = new_node(L, kind, ev, tag);
  if (n == NULL)
    return -1;
  const char *anchor_copy = NULL;
  if (anchor != NULL) {
    anchor_copy = arena_strndup(L->doc->arena, (const char *)anchor, strlen((const char *)anchor));
    if (anchor_copy == NULL)
      return fail_oom(L);
    if (anchor_define(L, anchor_copy, n, 0, false) < 0)
      return -1;
  }
  if (grow((void **)&L->frames, &L->cap_frames, L->n_frames + 1, sizeof(*L->frames)) < 0)
    return fail_oom(L);
  L->frames[L->n_frames++] =
      (struct frame){.node = n, .start = L->n_scratch, .expanded = 1, .anchor = anchor_copy};
  return 0;
}

static int finish_sequence(struct loader *L, const struct frame *f) {
  size_t n = L->n_scratch - f->start;
  struct ydoc_node *node = &f->node->pub;
  if (n == 0)
    return 0;
  node->items = arena_alloc(L->doc->arena, n * sizeof(*node->items));
  if (node->items == NULL)
    return fail_oom(L);
  for (size_t i = 0; i < n; i++)
    node->items[i] = &L->scratch[f->start + i].node->pub;
  node->n_items = n;
  return 0;
}

/* Check a merge value and count the pairs it can contribute. */
static int merge_sources(struct loader *L, const struct child *value, size_t *n_pairs) {
  const struct ydoc_node *v = &value->node->pub;
  if (v->kind == YDOC_MAPPING) {
    *n_pairs += v->n_pairs;
    return 0;
  }
  if (v->kind != YDOC_SEQUENCE)
    return fail_at(L, value->line, value->column,
                   "the value of a merge key '<<' must be a mapping or a list of mappings");
  for (size_t i = 0; i < v->n_items; i++) {
    const struct ydoc_node *item = v->items[i];
    if (item->kind != YDOC_MAPPING)
      return fail_at(L, item->line, item->column,
                     "a merge key '<<' list may only contain mappings, found a %s",
                     ydoc_kind_name(item->kind));
    *n_pairs += item->n_pairs;
  }
  return 0;
}

static void merge_from(struct loader *L, const struct ydoc_node *src, struct ydoc_pair *pairs,
                       size_t *out) {
  for (size_t i = 0; i < src->n_pairs; i++)
    if (keyset_insert(L, ynode_of(src->pairs[i].key), src->pairs[i].key->line) == 0)
      pairs[(*out)++] = src->pairs[i];
}

/* Keys written in the mapping win over merged ones wherever they appear; among
 * several merged mappings the earlier one wins.  Merged pairs take the place
 * of the '<<' key so document order is kept.  Merged pairs are shared, and
 * their number is bounded because each merged alias already paid its
 * expanded size. */
static int finish_mapping(struct loader *L, const struct frame *f) {
  size_t n = (L->n_scratch - f->start) / 2;
  /* Before any child was stored, scratch is NULL and even NULL + 0 is
   * undefined behaviour (clang's UBSan reports "{}" as the first node). */
  if (n == 0)
    return 0;
  const struct child *kv = L->scratch + f->start;
  struct ydoc_node *node = &f->node->pub;
  const struct child *merge_key = NULL;
  size_t n_keys = 0;
  for (size_t i = 0; i < n; i++) {
    const struct child *key = &kv[2 * i];
    if (!is_merge_key(key->node)) {
      n_keys++;
      continue;
    }
    if (merge_key != NULL)
      return fail_at(L, key->line, key->column, "duplicate key '<<' (first at line %d)",
                     merge_key->line);
    merge_key = key;
    if (merge_sources(L, &kv[2 * i + 1], &n_keys) < 0)
      return -1;
  }
  if (n_keys == 0)
    return 0;
  if (keyset_reset(L, n_keys) < 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const struct child *key = &kv[2 * i];
    if (is_merge_key(key->node))
      continue;
    int first_line = keyset_insert(L, key->node, key->line);
    if (first_line != 0) {
      const struct ydoc_node *k = &key->node->pub;
      return fail_at(L, key->line, key->column, "duplicate key '%.80s%s' (first at line %d)",
                     k->scalar, k->len > 80 ? "..." : "", first_line);
    }
  }
  node->pairs = arena_alloc(L->doc->arena, n_keys * sizeof(*node->pairs));
  if (node->pairs == NULL)
    return fail_oom(L);
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    struct ydoc_node *key = &kv[2 * i].node->pub;
    struct ydoc_node *value = &kv[2 * i + 1].node->pub;
    if (!is_merge_key(kv[2 * i].node)) {
      node->pairs[out++] = (struct ydoc_pair){.key = key, .value = value};
    } else if (value->kind == YDOC_MAPPING) {
      merge_from(L, value, node->pairs, &out);
    } else {
      for (size_t j = 0; j < value->n_items; j++)
        merge_from(L, value->items[j], node->pairs, &out);
    }
  }
  node->n_pairs = out;
  return 0;
}

static int on_collection_end(struct loader *L) {
  /* libyaml only emits balanced events; an empty stack would be its bug. */
  if (L->n_frames == 0)
    return ep_error_at(L->err, EP_EXIT_INTERNAL, L->name, 0, 0, "unbalanced YAML events");
  const struct frame f = L->frames[L->n_frames - 1];
  int rc = f.node->pub.kind == YDOC_SEQUENCE ? finish_sequence(L, &f) : finish_mapping(L, &f);
  if (rc < 0)
    return -1;
  L->n_frames--;
  L->n_scratch = f.start;
  if (f.anchor != NULL) {
    struct anchor *a = anchor_find(L, f.anchor, hash_bytes(f.anchor, strlen(f.anchor)));
    /* An inner anchor may have reused the name; then it is no longer ours. */
    if (a != NULL && a->node == f.node) {
      a->expanded = f.expanded;
      a->complete = true;
    }
  }
  return attach(L, f.node, f.expanded, f.node->pub.line, f.node->pub.column);
}

/* ---- libyaml errors -------------------------------------------------------- */

/* Reader errors (bad UTF-8, control characters) carry only a byte offset. */
static void offset_position(const char *buf, size_t len, size_t offset, int *line, int *column) {
  size_t l = 1, c = 1;
  if (offset > len)
    offset = len;
  for (size_t i = 0; i < offset; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch == '\n' || (ch == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) {
      l++;
      c = 1;
    } else if ((ch & 0xC0) != 0x80) {
      c++; /* count characters, not continuation bytes, as libyaml does */
    }
  }
  *line = clamp_int(l);
  *column = clamp_int(c);
}

/* libyaml reports a bad continuation byte at its own offset; the character
 * a reader sees as broken starts at the lead byte before it. */
static size_t broken_char_offset(const char *buf, size_t len, size_t offset) {
  size_t k = offset;
  if (offset == 0 || offset > len)
    return offset;
  while (k > 0 && offset - k < 3 && ((unsigned char)buf[k - 1] & 0xC0) == 0x80)
    k--;
  if (k > 0 && ((unsigned char)buf[k - 1] & 0xC0) == 0xC0)
    return k - 1;
  return offset;
}

/* A quote or bracket still open at the end of the input: libyaml's own
 * position is then the end of the file, which says nothing, so the error
 * points at where the unclosed construct starts.  Returns its name ("quoted
 * scalar") or NULL when the rule does not apply. */
static const char *unclosed_at_end(const struct loader *L) {
  static const char *const contexts[] = {"while scanning a quoted scalar",
                                         "while parsing a flow sequence",
                                         "while parsing a flow mapping", NULL};
  const yaml_parser_t *p = &L->parser;
  if (p->context == NULL)
    return NULL;
  const char *what = NULL;
  for (const char *const *c = contexts; *c != NULL && what == NULL; c++)
    if (strcmp(p->context, *c) == 0)
      what = strstr(*c, " a ") + 3;
  if (what == NULL)
    return NULL;
  int end_line, end_column;
  offset_position(L->buf, L->len, L->len, &end_line, &end_column);
  bool at_end = (p->problem != NULL && strstr(p->problem, "end of stream") != NULL) ||
                (mark_line(p->problem_mark) == end_line &&
                 mark_column(p->problem_mark) == end_column);
  return at_end ? what : NULL;
}

static int parser_error(struct loader *L) {
  const yaml_parser_t *p = &L->parser;
  const char *problem = p->problem ? p->problem : "unknown YAML error";
  int line, column;
  const char *unclosed;
  switch (p->error) {
  case YAML_MEMORY_ERROR:
    return fail_oom(L);
  case YAML_READER_ERROR:
    offset_position(L->buf, L->len,
                    strcmp(problem, "invalid trailing UTF-8 octet") == 0
                        ? broken_char_offset(L->buf, L->len, p->problem_offset)
                        : p->problem_offset,
                    &line, &column);
    if (p->problem_value >= 0)
      return ep_error_at(L->err, EP_EXIT_USAGE, L->name, line, column,
                         "invalid input: %s (0x%02X at byte offset %zu)", problem,
                         (unsigned)p->problem_value, p->problem_offset);
    return ep_error_at(L->err, EP_EXIT_USAGE, L->name, line, column, "invalid input: %s", problem);
  default:
    if ((unclosed = unclosed_at_end(L)) != NULL)
      return ep_error_at(L->err, EP_EXIT_USAGE, L->name, mark_line(p->context_mark),
                         mark_column(p->context_mark),
                         "the %s that starts here is never closed (%s)", unclosed, problem);
    line = mark_line(p->problem_mark);
    column = mark_column(p->problem_mark);
    if (p->context != NULL)
      return ep_error_at(L->err, EP_EXIT_USAGE, L->name, line, column,
                         "%s (%s started at line %zu, column %zu)", problem, p->context,
                         p->context_mark.line + 1, p->context_mark.column + 1);
    return ep_error_at(L->err, EP_EXIT_USAGE, L->name, line, column, "%s", problem);
  }
}

/* ---- driver ----------------------------------------------------------------- */

static int on_event(struct loader *L, const yaml_event_t *ev) {
  switch (ev->type) {
  case YAML_DOCUMENT_START_EVENT:
    if (L->seen_document)
      return fail_at(L, mark_line(ev->start_mark), mark_column(ev->start_mark),
                     "multiple YAML documents in one file are not supported; "
                     "found a second document");
    L->seen_document = true;
    return 0;
  case YAML_STREAM_END_EVENT:
    L->done = true;
    return 0;
  case YAML_SCALAR_EVENT:
    return on_scalar(L, ev);
  case YAML_ALIAS_EVENT:
    return on_alias(L, ev);
  case YAML_SEQUENCE_START_EVENT:
    return on_collection_start(L, ev, YDOC_SEQUENCE);
  case YAML_MAPPING_START_EVENT:
    return on_collection_start(L, ev, YDOC_MAPPING);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    return on_collection_end(L);
  default:
    return 0;
  }
}

static int run_parser(struct loader *L) {
  while (!L->done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&L->parser, &ev))
      return parser_error(L); /* libyaml leaves ev empty on failure */
    int rc = on_event(L, &ev);
    yaml_event_delete(&ev);
    if (rc < 0)
      return -1;
  }
  return 0;
}

static void loader_release(struct loader *L) {
  free(L->frames);
  free(L->scratch);
  free(L->anchors);
  free(L->interned);
  free(L->keyset);
}

int ydoc_load_buffer(const char *name, const char *buf, size_t len,
                     const struct ydoc_limits *limits, struct ydoc **out, ep_error **err) {
  *out = NULL;
  if (limits == NULL)
    limits = &ydoc_default_limits;
  if (name == NULL)
    name = "<buffer>";
  if (len > limits->max_file_bytes)
    return ep_error_at(err, EP_EXIT_USAGE, name, 0, 0,
                       "file is %zu bytes, larger than the limit of %zu", len,
                       limits->max_file_bytes);

  int rc = -1;
  struct loader L = {.name = name, .buf = buf, .len = len, .lim = limits, .err = err};
  bool parser_ready = false;
  struct ydoc *doc = calloc(1, sizeof(*doc));
  if (doc == NULL || (doc->arena = calloc(1, sizeof(*doc->arena))) == NULL) {
    fail_oom(&L);
    goto cleanup;
  }
  L.doc = doc;
  if ((doc->file = arena_strndup(doc->arena, name, strlen(name))) == NULL) {
    fail_oom(&L);
    goto cleanup;
  }
  if (!yaml_parser_initialize(&L.parser)) {
    fail_oom(&L);
    goto cleanup;
  }
  parser_ready = true;
  yaml_parser_set_input_string(&L.parser, (const unsigned char *)(buf ? buf : ""), len);
  rc = run_parser(&L);

cleanup:
  if (parser_ready)
    yaml_parser_delete(&L.parser);
  loader_release(&L);
  if (rc < 0)
    ydoc_free(doc);
  else
    *out = doc;
  return rc;
}

static int file_error(ep_error **err, const char *path, int os_errno, const char *what) {
  bool fresh = err != NULL && *err == NULL;
  ep_error_set_errno(err, EP_EXIT_USAGE, os_errno, "cannot %s '%s'", what, path);
  if (fresh && (*err)->file == NULL && ((*err)->file = strdup(path)) == NULL)
    abort(); /* as error.c does: an error object we cannot build is fatal */
  return -1;
}

static int read_all(int fd, const char *path, size_t max, char **out, size_t *out_len,
                    ep_error **err) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return file_error(err, path, errno, "stat");
  if (S_ISDIR(st.st_mode))
    return file_error(err, path, EISDIR, "read");
  if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max)
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "file is %jd bytes, larger than the limit of %zu", (intmax_t)st.st_size,
                       max);
  /* Size from fstat is only a hint: pipes report 0 and files can grow. */
  size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 64 * 1024;
  size_t len = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    goto oom;
  for (;;) {
    if (len == cap) {
      if (cap > max) {
        free(buf);
        return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                           "file is larger than the limit of %zu bytes", max);
      }
      size_t ncap = cap * 2;
      char *nbuf = realloc(buf, ncap);
      if (nbuf == NULL)
        goto oom;
      buf = nbuf;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int saved = errno;
      free(buf);
      return file_error(err, path, saved, "read");
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  if (len > max) {
    free(buf);
    return ep_error_at(err, EP_EXIT_USAGE, path, 0, 0,
                       "file is %zu bytes, larger than the limit of %zu", len, max);
  }
  *out = buf;
  *out_len = len;
  return 0;
oom:
  free(buf);
  return ep_error_at(err, EP_EXIT_INTERNAL, path, 0, 0, "out of memory reading file");
}

int ydoc_load_file(const char *path, const struct ydoc_limits *limits, struct ydoc **out,
                   ep_error **err) {
  *out = NULL;
  if (limits == NULL)
    limits = &ydoc_default_limits;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return file_error(err, path, errno, "open");
  char *buf = NULL;
  size_t len = 0;
  int rc = read_all(fd, path, limits->max_file_bytes, &buf, &len, err);
  close(fd);
  if (rc == 0)
    rc = ydoc_load_buffer(path, buf, len, limits, out, err);
  free(buf);
  return rc;
}

void ydoc_free(struct ydoc *doc) {
  if (doc == NULL)
    return;
  arena_free(doc->arena);
  free(doc);
}

/* ---- helpers for the model -------------------------------------------------- */

static struct ydoc_node *patch_key(const struct ydoc_node *mapping, const char *key) {
  for (size_t i = 0; i < mapping->n_pairs; i++)
    if (strcmp(mapping->pairs[i].key->scalar, key) == 0)
      return mapping->pairs[i].key;
  return NULL;
}

const struct ydoc_node *ydoc_get(const struct ydoc_node *mapping, const char *key) {
  if (mapping == NULL || key == NULL || mapping->kind != YDOC_MAPPING)
    return NULL;
  size_t len = strlen(key);
  for (size_t i = 0; i < mapping->n_pairs; i++) {
    const struct ydoc_node *k = mapping->pairs[i].key;
    if (k->len == len && memcmp(k->scalar, key, len) == 0)
      return mapping->pairs[i].value;
  }
  return NULL;
}

static const struct ydoc_node *merge_nodes(struct ydoc_arena *a, const struct ydoc_node *base,
                                           const struct ydoc_node *patch,
                                           bool (*keep_base)(const char *key, void *ctx),
                                           void *ctx) {
  if (patch == NULL || ydoc_is_null(patch))
    return base;
  if (base == NULL || base->kind != YDOC_MAPPING || patch->kind != YDOC_MAPPING)
    return patch;
  struct ynode *m = arena_alloc(a, sizeof(*m));
  struct ydoc_pair *pairs = arena_alloc(a, (base->n_pairs + patch->n_pairs) * sizeof(*pairs));
  if (m == NULL || pairs == NULL)
    return NULL;
  memset(m, 0, sizeof(*m));
  m->pub = *patch;
  m->pub.pairs = pairs;
  m->pub.n_pairs = 0;
  for (size_t i = 0; i < base->n_pairs; i++) {
    const char *key = base->pairs[i].key->scalar;
    if (keep_base != NULL && !keep_base(key, ctx))
      continue;
    const struct ydoc_node *v =
        merge_nodes(a, base->pairs[i].value, ydoc_get(patch, key), NULL, NULL);
    if (v == NULL)
      return NULL;
    pairs[m->pub.n_pairs].key = ydoc_get(patch, key) != NULL && !ydoc_is_null(ydoc_get(patch, key))
                                    ? patch_key(patch, key)
                                    : base->pairs[i].key;
    pairs[m->pub.n_pairs++].value = (struct ydoc_node *)(void *)v;
  }
  for (size_t i = 0; i < patch->n_pairs; i++) {
    const char *key = patch->pairs[i].key->scalar;
    bool in_base = false;
    for (size_t k = 0; k < m->pub.n_pairs && !in_base; k++)
      in_base = strcmp(pairs[k].key->scalar, key) == 0;
    if (!in_base)
      pairs[m->pub.n_pairs++] = patch->pairs[i];
  }
  return &m->pub;
}

const struct ydoc_node *ydoc_merge(struct ydoc *doc, const struct ydoc_node *base,
                                   const struct ydoc_node *patch,
                                   bool (*keep_base)(const char *key, void *ctx), void *ctx) {
  return merge_nodes(doc->arena, base, patch, keep_base, ctx);
}

bool ydoc_is_null(const struct ydoc_node *node) {
  if (node == NULL)
    return true;
  if (node->kind != YDOC_SCALAR || !node->plain)
    return false;
  if (node->tag != NULL && strcmp(node->tag, TAG_NULL) != 0)
    return false;
  const char *s = node->scalar;
  return node->len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
         strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Plain scalars only: a quoted "true" is a string to Kubernetes, and Go's
 * JSON decoder refuses a string for a bool field.  The YAML 1.1 spellings
 * are accepted because sigs.k8s.io/yaml resolves them to booleans too. */
int ydoc_as_bool(const struct ydoc_node *node, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "y"};
  static const char *const no[] = {"false", "no", "off", "n"};
  if (node == NULL || node->kind != YDOC_SCALAR)
    return -1;
  bool tagged_bool = node->tag != NULL && strcmp(node->tag, TAG_BOOL) == 0;
  if (node->tag != NULL && !tagged_bool)
    return -1;
  if (!node->plain && !tagged_bool)
    return -1;
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(node->scalar, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(node->scalar, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

/* Leading zeros are refused: YAML 1.1 reads 010 as octal 8, and guessing
 * either way would silently change a retry limit or a timeout. */
int ydoc_as_int(const struct ydoc_node *node, long long *out) {
  if (node == NULL || node->kind != YDOC_SCALAR || node->len == 0)
    return -1;
  const char *s = node->scalar;
  bool negative = false;
  if (*s == '+' || *s == '-')
    negative = *s++ == '-';
  if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
    return -1;
  unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
  unsigned long long v = 0;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    unsigned d = (unsigned)(*s - '0');
    if (v > (limit - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (negative)
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
  else
    *out = (long long)v;
  return 0;
}

const char *ydoc_kind_name(enum ydoc_kind kind) {
  switch (kind) {
  case YDOC_SCALAR:
    return "scalar";
  case YDOC_SEQUENCE:
    return "sequence";
  case YDOC_MAPPING:
    return "mapping";
  }
  return "unknown";
}

int ydoc_fail(ep_error **err, const char *file, const struct ydoc_node *n, const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  int rc = vasprintf(&msg, fmt, ap);
  va_end(ap);
  if (rc < 0)
    abort();
  ep_error_at(err, EP_EXIT_USAGE, file, n ? n->line : 0, n ? n->column : 0, "%s", msg);
  free(msg);
  return -1;
}

int ydoc_expect_kind(ep_error **err, const char *file, const struct ydoc_node *n,
                     enum ydoc_kind kind, const char *what) {
  if (n->kind != kind)
    return ydoc_fail(err, file, n, "%s must be a %s, not a %s", what, ydoc_kind_name(kind),
                     ydoc_kind_name(n->kind));
  return 0;
}
