/* A small, immutable YAML document tree built from libyaml events.
 *
 * Every node remembers where it started (line and column, 1-based) so that
 * the model can say exactly where bad input is.  Aliases are resolved by
 * sharing the anchored node (the tree is a DAG), and the *expanded* size is
 * counted against a cap so that "billion laughs" inputs fail fast instead of
 * exhausting memory when a consumer walks the tree.  All nodes live in one
 * arena owned by the document and are freed together. */
#ifndef EXITPROBE_YAML_DOC_H
#define EXITPROBE_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

enum ydoc_kind { YDOC_SCALAR, YDOC_SEQUENCE, YDOC_MAPPING };

struct ydoc_node;

struct ydoc_pair {
  struct ydoc_node *key; /* always a scalar: non-scalar keys are rejected */
  struct ydoc_node *value;
};

struct ydoc_node {
  enum ydoc_kind kind;
  int line;   /* 1-based */
  int column; /* 1-based */
  /* YDOC_SCALAR */
  char *scalar; /* NUL-terminated; len excludes the NUL */
  size_t len;
  bool plain; /* unquoted plain scalar: only plain scalars can be null/bool/int */
  char *tag;  /* explicit tag such as "!!str", or NULL */
  /* YDOC_SEQUENCE */
  struct ydoc_node **items;
  size_t n_items;
  /* YDOC_MAPPING (in document order; duplicate keys are rejected) */
  struct ydoc_pair *pairs;
  size_t n_pairs;
};

struct ydoc_limits {
  size_t max_file_bytes;      /* input size */
  size_t max_depth;           /* nesting of sequences/mappings */
  size_t max_nodes;           /* nodes created while parsing */
  size_t max_expanded_nodes;  /* nodes reachable with aliases expanded */
  size_t max_scalar_bytes;    /* one scalar */
};

/* Defaults generous for any real workflow, tight enough for hostile input. */
extern const struct ydoc_limits ydoc_default_limits;

struct ydoc_arena;

struct ydoc {
  struct ydoc_node *root; /* NULL for an empty document */
  char *file;             /* name used in error messages */
  struct ydoc_arena *arena;
};

/* Load exactly one document.  Errors (status EP_EXIT_USAGE) carry file, line
 * and column: syntax errors, a second document, duplicate keys, non-scalar
 * keys, undefined aliases, and every limit above.  An empty file yields a
 * document whose root is NULL.  limits may be NULL for the defaults. */
int ydoc_load_file(const char *path, const struct ydoc_limits *limits, struct ydoc **out,
                   ep_error **err);
int ydoc_load_buffer(const char *name, const char *buf, size_t len,
                     const struct ydoc_limits *limits, struct ydoc **out, ep_error **err);
void ydoc_free(struct ydoc *doc);

/* Helpers for the model.  Lookups return NULL when absent or the wrong kind. */
const struct ydoc_node *ydoc_get(const struct ydoc_node *mapping, const char *key);
/* True for a plain scalar spelled null, Null, NULL, ~ or empty. */
bool ydoc_is_null(const struct ydoc_node *node);
/* YAML 1.1/1.2 booleans as Kubernetes reads them (true/false, any case). */
int ydoc_as_bool(const struct ydoc_node *node, bool *out);
/* Decimal integer scalar (optionally signed) that fits in long long. */
int ydoc_as_int(const struct ydoc_node *node, long long *out);
const char *ydoc_kind_name(enum ydoc_kind kind);

/* patch merged over base the way a JSON merge patch merges objects: two
 * mappings merge key by key, recursively, in base's key order then patch's
 * new keys; any other patch value replaces base's; a null in patch (a field
 * Go would omit) keeps base's.  keep_base(key, ctx), when given, drops
 * top-level keys of base.  New nodes live in doc's arena and keep the
 * positions of the nodes they come from; NULL when out of memory. */
const struct ydoc_node *ydoc_merge(struct ydoc *doc, const struct ydoc_node *base,
                                   const struct ydoc_node *patch,
                                   bool (*keep_base)(const char *key, void *ctx), void *ctx);

/* Bad input at node n of file: EP_EXIT_USAGE with its line and column (0:0
 * when n is NULL).  Returns -1.  Every model read from YAML reports this way. */
int ydoc_fail(ep_error **err, const char *file, const struct ydoc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* n must be of kind: else "<what> must be a <kind>, not a <kind>" at n. */
int ydoc_expect_kind(ep_error **err, const char *file, const struct ydoc_node *n,
                     enum ydoc_kind kind, const char *what);

#endif
