#include "image_config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xalloc.h"
#include "yaml_doc.h"

static void *own(struct image_set *s, void *p) {
  s->owned = xreallocarray(s->owned, s->n_owned + 1, sizeof(*s->owned));
  s->owned[s->n_owned++] = p;
  return p;
}

static struct image_entrypoint *add_entry(struct image_set *s, const char *image) {
  s->images = xreallocarray(s->images, s->n_images + 1, sizeof(*s->images));
  struct image_entrypoint *e = &s->images[s->n_images++];
  memset(e, 0, sizeof(*e));
  e->image = own(s, xstrdup(image));
  return e;
}

/* An absolute, resolved directory (the step's init pivots into it), or NULL
 * with errno. */
static char *rootfs_dir(const char *path) {
  char *real = realpath(path, NULL);
  if (real == NULL)
    return NULL;
  struct stat st;
  if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
    free(real);
    errno = ENOTDIR;
    return NULL;
  }
  return real;
}

int image_set_add_arg(struct image_set *s, const char *arg, ep_error **err) {
  const char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg || eq[1] == '\0')
    return ep_error_set(err, EP_EXIT_USAGE, "--image expects IMAGE=PATH or IMAGE=DIR/, got '%s'",
                        arg);
  char *name = xstrndup(arg, (size_t)(eq - arg));
  const char *path = eq + 1;
  struct stat st;
  bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  if (!is_dir && path[strlen(path) - 1] == '/') {
    free(name);
    return ep_error_set(err, EP_EXIT_USAGE, "--image %s: '%s' is not a directory", arg, path);
  }
  struct image_entrypoint *e = add_entry(s, name);
  free(name);
  if (!is_dir) {
    e->entrypoint = path;
    return 0;
  }
  char *real = rootfs_dir(path);
  if (real == NULL)
    return ep_error_set_errno(err, EP_EXIT_USAGE, errno, "--image %s", arg);
  e->rootfs = own(s, real);
  return 0;
}

static int scalar(ep_error **err, const char *file, const struct ydoc_node *n, const char *what,
                  const char **out) {
  if (ydoc_expect_kind(err, file, n, YDOC_SCALAR, what) < 0)
    return -1;
  *out = n->scalar;
  return 0;
}

static int string_list(struct image_set *s, ep_error **err, const char *file,
                       const struct ydoc_node *n, const char *what, char *const **out) {
  if (ydoc_expect_kind(err, file, n, YDOC_SEQUENCE, what) < 0)
    return -1;
  char **v = own(s, xcalloc(n->n_items + 1, sizeof(char *)));
  for (size_t i = 0; i < n->n_items; i++) {
    const char *str;
    if (scalar(err, file, n->items[i], what, &str) < 0)
      return -1;
    v[i] = own(s, xstrdup(str));
  }
  *out = v;
  return 0;
}

static int env_map(struct image_set *s, ep_error **err, const char *file,
                   const struct ydoc_node *n, char *const **out) {
  if (ydoc_expect_kind(err, file, n, YDOC_MAPPING, "env") < 0)
    return -1;
  char **v = own(s, xcalloc(n->n_pairs + 1, sizeof(char *)));
  for (size_t i = 0; i < n->n_pairs; i++) {
    const char *value;
    if (scalar(err, file, n->pairs[i].value, "an env value", &value) < 0)
      return -1;
    v[i] = own(s, xasprintf("%s=%s", n->pairs[i].key->scalar, value));
  }
  *out = v;
  return 0;
}

static int load_image(struct image_set *s, ep_error **err, const char *file,
                      const struct ydoc_pair *pair) {
  const struct ydoc_node *n = pair->value;
  if (ydoc_expect_kind(err, file, n, YDOC_MAPPING, "an image") < 0)
    return -1;
  struct image_entrypoint *e = add_entry(s, pair->key->scalar);
  for (size_t i = 0; i < n->n_pairs; i++) {
    const char *key = n->pairs[i].key->scalar;
    const struct ydoc_node *v = n->pairs[i].value;
    const char *str;
    if (strcmp(key, "rootfs") == 0) {
      if (scalar(err, file, v, "rootfs", &str) < 0)
        return -1;
      char *real = rootfs_dir(str);
      if (real == NULL)
        return ydoc_fail(err, file, v, "rootfs '%s': %s", str, strerror(errno));
      e->rootfs = own(s, real);
    } else if (strcmp(key, "entrypoint") == 0) {
      if (string_list(s, err, file, v, "entrypoint", &e->entrypoint_argv) < 0)
        return -1;
    } else if (strcmp(key, "cmd") == 0) {
      if (string_list(s, err, file, v, "cmd", &e->cmd) < 0)
        return -1;
    } else if (strcmp(key, "env") == 0) {
      if (env_map(s, err, file, v, &e->env) < 0)
        return -1;
    } else if (strcmp(key, "workingDir") == 0) {
      if (scalar(err, file, v, "workingDir", &str) < 0)
        return -1;
      if (str[0] != '/')
        return ydoc_fail(err, file, v, "workingDir must be an absolute path, not '%s'", str);
      e->working_dir = own(s, xstrdup(str));
    } else {
      return ydoc_fail(err, file, n->pairs[i].key,
                       "unknown field '%s' (known: rootfs, entrypoint, cmd, env, workingDir)",
                       key);
    }
  }
  return 0;
}

int image_set_load(struct image_set *s, const char *path, ep_error **err) {
  struct ydoc *doc = NULL;
  if (ydoc_load_file(path, NULL, &doc, err) < 0)
    return -1;
  int rc = -1;
  const struct ydoc_node *root = doc->root;
  if (root == NULL || root->kind != YDOC_MAPPING) {
    ydoc_fail(err, path, root, "an image config is a mapping with the key 'images'");
    goto out;
  }
  for (size_t i = 0; i < root->n_pairs; i++)
    if (strcmp(root->pairs[i].key->scalar, "images") != 0) {
      ydoc_fail(err, path, root->pairs[i].key, "unknown field '%s' (known: images)",
                root->pairs[i].key->scalar);
      goto out;
    }
  const struct ydoc_node *images = ydoc_get(root, "images");
  if (images == NULL) {
    ydoc_fail(err, path, root, "an image config is a mapping with the key 'images'");
    goto out;
  }
  if (ydoc_expect_kind(err, path, images, YDOC_MAPPING, "images") < 0)
    goto out;
  for (size_t i = 0; i < images->n_pairs; i++)
    if (load_image(s, err, path, &images->pairs[i]) < 0)
      goto out;
  rc = 0;
out:
  ydoc_free(doc);
  return rc;
}

void image_set_free(struct image_set *s) {
  for (size_t i = 0; i < s->n_owned; i++)
    free(s->owned[i]);
  free(s->owned);
  free(s->images);
  memset(s, 0, sizeof(*s));
}
