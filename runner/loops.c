/* withItems / withParam / withSequence: the list a looped step expands to,
 * with each item's {{item}} text, {{item.KEY}} fields and node-name label
 * (argo-semantics §3.6). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_internal.h"

void loop_items_free(struct loop_item *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(items[i].value);
    free(items[i].label);
    for (size_t f = 0; f < items[i].n_fields; f++) {
      free(items[i].fields[f].name);
      free(items[i].fields[f].value);
    }
    free(items[i].fields);
  }
  free(items);
}

/* A scalar YAML item keeps its text; YAML numbers and booleans stay
 * unquoted when an item is rendered as JSON. */
static json_t *yaml_to_json(const struct ydoc_node *n) {
  switch (n->kind) {
  case YDOC_SCALAR: {
    long long iv;
    bool bv;
    if (n->plain && ydoc_as_int(n, &iv) == 0)
      return json_integer(iv);
    if (n->plain && ydoc_as_bool(n, &bv) == 0)
      return json_boolean(bv);
    if (n->plain && ydoc_is_null(n))
      return json_null();
    if (n->plain) {
      char *end = NULL;
      double d = strtod(n->scalar, &end);
      if (end != n->scalar && *end == '\0')
        return json_real(d);
    }
    return json_string(n->scalar);
  }
  case YDOC_SEQUENCE: {
    json_t *a = json_array();
    for (size_t i = 0; i < n->n_items; i++)
      json_array_append_new(a, yaml_to_json(n->items[i]));
    return a;
  }
  case YDOC_MAPPING: {
    json_t *o = json_object();
    for (size_t i = 0; i < n->n_pairs; i++)
      json_object_set_new(o, n->pairs[i].key->scalar, yaml_to_json(n->pairs[i].value));
    return o;
  }
  }
  return json_null();
}

/* {{item}} of a JSON value: strings as themselves, the rest as compact JSON. */
static char *json_text(const json_t *v) {
  if (json_is_string(v))
    return strdup(json_string_value(v));
  if (json_is_integer(v))
    return xasprintf("%lld", (long long)json_integer_value(v));
  if (json_is_real(v)) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
    return strdup(buf);
  }
  char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  return s ? s : strdup("");
}

/* Node names drop parentheses from the item; maps read "k:v,k2:v2" sorted. */
static char *item_label(const json_t *v) {
  char *text;
  if (json_is_object(v)) {
    const char **keys = calloc(json_object_size(v) + 1, sizeof(char *));
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) keys[n++] = k;
    for (size_t i = 1; i < n; i++)
      for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
        const char *t = keys[j];
        keys[j] = keys[j - 1];
        keys[j - 1] = t;
      }
    text = strdup("");
    for (size_t i = 0; i < n; i++) {
      char *vt = json_text(json_object_get(v, keys[i]));
      char *next = xasprintf("%s%s%s:%s", text, i ? "," : "", keys[i], vt);
      free(vt);
      free(text);
      text = next;
    }
    free(keys);
  } else {
    text = json_text(v);
  }
  char *w = text;
  for (char *r = text; *r; r++)
    if (*r != '(' && *r != ')')
      *w++ = *r;
  *w = '\0';
  return text;
}

static void item_from_json(struct loop_item *item, const json_t *v) {
  item->value = json_text(v);
  item->label = item_label(v);
  if (json_is_object(v)) {
    item->fields = calloc(json_object_size(v) + 1, sizeof(struct name_value));
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) {
      item->fields[item->n_fields].name = strdup(k);
      item->fields[item->n_fields].value = json_text(val);
      item->n_fields++;
    }
  }
}

static int items_from_array(const json_t *array, struct loop_item **items, size_t *n) {
  size_t len = json_array_size(array);
  *items = calloc(len + 1, sizeof(**items));
  if (*items == NULL)
    abort();
  for (size_t i = 0; i < len; i++)
    item_from_json(&(*items)[i], json_array_get(array, i));
  *n = len;
  return 0;
}

/* printf-style withSequence format restricted to one integer conversion
 * (%d, %x, %X, %o with '-', '0' and a width), formatted here rather than
 * handed to the C library, so a workflow cannot smuggle in other conversions. */
static int format_sequence(const char *fmt, long long v, char *out, size_t size) {
  const char *pct = NULL;
  for (const char *p = fmt; *p; p++) {
    if (*p != '%')
      continue;
    if (p[1] == '%') {
      p++;
      continue;
    }
    if (pct != NULL)
      return -1;
    pct = p;
  }
  if (pct == NULL)
    return -1;
  const char *q = pct + 1;
  bool left = false, zero = false;
  for (; *q == '-' || *q == '0'; q++)
    *(*q == '-' ? &left : &zero) = true;
  int width = 0;
  for (; *q >= '0' && *q <= '9' && width < 64; q++)
    width = width * 10 + (*q - '0');
  if (*q == '\0' || !strchr("dxXo", *q))
    return -1;
  unsigned base = *q == 'd' ? 10 : *q == 'o' ? 8 : 16;
  const char *digits = *q == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
  bool negative = base == 10 && v < 0;
  unsigned long long u = negative ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  char num[80];
  size_t n = 0;
  do {
    num[n++] = digits[u % base];
    u /= base;
  } while (u != 0 && n < sizeof(num) - 1);
  if (negative)
    num[n++] = '-';
  char field[160];
  size_t f = 0;
  int pad = width > (int)n ? width - (int)n : 0;
  if (!left && !zero)
    for (; pad > 0; pad--)
      field[f++] = ' ';
  if (negative && zero && !left)
    field[f++] = num[--n];
  if (zero && !left)
    for (; pad > 0; pad--)
      field[f++] = '0';
  while (n > 0)
    field[f++] = num[--n];
  for (; left && pad > 0; pad--)
    field[f++] = ' ';
  field[f] = '\0';
  /* The literal text around the conversion keeps "%%" as "%". */
  size_t o = 0;
  for (const char *p = fmt; *p && o + 1 < size; p++) {
    if (p == pct) {
      for (size_t k = 0; field[k] && o + 1 < size; k++)
        out[o++] = field[k];
      p = q;
      continue;
    }
    if (p[0] == '%' && p[1] == '%')
      p++;
    out[o++] = *p;
  }
  out[o] = '\0';
  return 0;
}

static int seq_number(const char *text, const struct var_scope *scope, long long *out, char **why) {
  char *v = NULL;
  if (subst(text, scope, &v, why) < 0)
    return -1;
  char *end = NULL;
  *out = strtoll(v, &end, 10);
  bool ok = end != v && *end == '\0';
  if (!ok)
    *why = xasprintf("withSequence: '%s' is not an integer", v);
  free(v);
  return ok ? 0 : -1;
}

static int expand_sequence(const struct wf_loop *loop, const struct var_scope *scope,
                           struct loop_item **items, size_t *n, char **why) {
  long long start = 0, end = 0, count = 0;
  if (loop->seq_start && seq_number(loop->seq_start, scope, &start, why) < 0)
    return -1;
  if (loop->seq_count) {
    if (seq_number(loop->seq_count, scope, &count, why) < 0)
      return -1;
    if (count < 0 || count > 100000) {
      *why = xasprintf("withSequence.count %lld is out of range", count);
      return -1;
    }
    end = start + count - 1;
  } else if (seq_number(loop->seq_end, scope, &end, why) < 0) {
    return -1;
  }
  long long len = loop->seq_count ? count : (end >= start ? end - start + 1 : start - end + 1);
  if (len > 100000) {
    *why = xasprintf("withSequence expands to %lld items, more than 100000", len);
    return -1;
  }
  *items = calloc((size_t)len + 1, sizeof(**items));
  if (*items == NULL)
    abort();
  char *fmt = NULL;
  if (loop->seq_format && subst(loop->seq_format, scope, &fmt, why) < 0) {
    free(*items);
    *items = NULL;
    return -1;
  }
  for (long long i = 0; i < len; i++) {
    long long v = end >= start ? start + i : start - i;
    char buf[256];
    if (fmt != NULL) {
      if (format_sequence(fmt, v, buf, sizeof(buf)) < 0) {
        *why = xasprintf("withSequence.format '%s' must hold one integer conversion such as %%d",
                         fmt);
        loop_items_free(*items, (size_t)i);
        *items = NULL;
        free(fmt);
        return -1;
      }
    } else {
      snprintf(buf, sizeof(buf), "%lld", v);
    }
    (*items)[i].value = strdup(buf);
    (*items)[i].label = strdup(buf);
  }
  free(fmt);
  *n = (size_t)len;
  return 0;
}

int expand_loop(const struct wf_loop *loop, const struct var_scope *scope,
                struct loop_item **items, size_t *n_items, char **why) {
  *items = NULL;
  *n_items = 0;
  switch (loop->kind) {
  case LOOP_NONE:
    return 0;
  case LOOP_ITEMS: {
    json_t *array = yaml_to_json(loop->items);
    /* Items are substituted like the rest of the template. */
    char *text = json_dumps(array, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(array);
    char *resolved = NULL;
    if (subst(text, scope, &resolved, why) < 0) {
      free(text);
      return -1;
    }
    free(text);
    json_error_t jerr;
    array = json_loads(resolved, 0, &jerr);
    free(resolved);
    if (!json_is_array(array)) {
      json_decref(array);
      *why = strdup("withItems could not be resolved to a list");
      return -1;
    }
    items_from_array(array, items, n_items);
    json_decref(array);
    return 0;
  }
  case LOOP_PARAM: {
    char *text = NULL;
    if (subst(loop->param, scope, &text, why) < 0)
      return -1;
    json_error_t jerr;
    json_t *array = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!json_is_array(array)) {
      *why = xasprintf("withParam value could not be parsed as a JSON list: %s", text);
      json_decref(array);
      free(text);
      return -1;
    }
    free(text);
    items_from_array(array, items, n_items);
    json_decref(array);
    return 0;
  }
  case LOOP_SEQUENCE:
    return expand_sequence(loop, scope, items, n_items, why);
  }
  return 0;
}

/* Outputs of a looped step: lists over the expansions that Succeeded, in
 * loop order (argo-semantics §3.6). */
void bind_aggregate_outputs(struct var_scope *scope, const char *prefix, const char *name,
                            struct wf_node *const *children, size_t n) {
  json_t *results = json_array();
  json_t *params = json_array();
  json_t *by_name = json_object();
  for (size_t i = 0; i < n; i++) {
    const struct wf_node *child = children[i];
    if (child->phase != PHASE_SUCCEEDED)
      continue;
    if (child->result != NULL) {
      json_error_t jerr;
      json_t *parsed = json_loads(child->result, JSON_DECODE_ANY, &jerr);
      json_array_append_new(results, parsed ? parsed : json_string(child->result));
    }
    json_t *map = json_object();
    for (size_t p = 0; p < child->n_output_parameters; p++) {
      const struct name_value *nv = &child->output_parameters[p];
      json_object_set_new(map, nv->name, json_string(nv->value ? nv->value : ""));
      json_t *list = json_object_get(by_name, nv->name);
      if (list == NULL) {
        list = json_array();
        json_object_set_new(by_name, nv->name, list);
      }
      json_array_append_new(list, json_string(nv->value ? nv->value : ""));
    }
    json_array_append_new(params, map);
  }
  char *key = xasprintf("%s.%s.outputs.result", prefix, name);
  char *text = json_dumps(results, JSON_COMPACT);
  var_scope_set(scope, key, text);
  free(key);
  free(text);
  key = xasprintf("%s.%s.outputs.parameters", prefix, name);
  text = json_dumps(params, JSON_COMPACT);
  var_scope_set(scope, key, text);
  free(key);
  free(text);
  const char *pname;
  json_t *list;
  json_object_foreach(by_name, pname, list) {
    key = xasprintf("%s.%s.outputs.parameters.%s", prefix, name, pname);
    text = json_dumps(list, JSON_COMPACT);
    var_scope_set(scope, key, text);
    free(key);
    free(text);
  }
  json_decref(results);
  json_decref(params);
  json_decref(by_name);
}
