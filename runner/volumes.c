/* Declared volumes: see volumes.h. */
#include "volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xalloc.h"

#define fail_at(err, file, n, ...) ydoc_fail((err), (file), (n), __VA_ARGS__)

static struct src_pos pos_of(const struct ydoc_node *n) {
  return (struct src_pos){n->line, n->column};
}

static int scalar(ep_error **err, const char *file, const struct ydoc_node *n, const char *what,
                  char **out) {
  if (ydoc_expect_kind(err, file, n, YDOC_SCALAR, what) < 0)
    return -1;
  *out = xstrdup(n->scalar);
  return 0;
}

/* Kubernetes names: DNS-1123 labels.  A claim name becomes a directory. */
static bool dns_label(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
      return false;
  return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The name; *pos becomes the name's position (where a duplicate is shown). */
static int named(ep_error **err, const char *file, const struct ydoc_node *n, const char *what,
                 char **out, struct src_pos *pos) {
  const struct ydoc_node *v = ydoc_get(n, "name");
  if (v == NULL)
    return fail_at(err, file, n, "%s needs a name", what);
  *pos = pos_of(v);
  if (scalar(err, file, v, "name", out) < 0)
    return -1;
  if (!dns_label(*out))
    return fail_at(err, file, v, "%s name '%s' is not a valid Kubernetes name (lower case "
                                 "letters, digits, '-', '.')", what, *out);
  return 0;
}

/* Sources a cluster would provide that have no faithful local equivalent. */
static const char *const foreign_sources[] = {
    "hostPath", "configMap", "secret", "nfs", "projected", "downwardAPI", "csi", "ephemeral",
    "iscsi", "gitRepo", "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile",
    "cephfs", "cinder", "fc", "flexVolume", "flocker", "glusterfs", "photonPersistentDisk",
    "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume", "image", NULL};

static int parse_source(ep_error **err, const char *file, const struct ydoc_node *n,
                        struct wf_volume *v) {
  for (const char *const *f = foreign_sources; *f; f++) {
    const struct ydoc_node *src = ydoc_get(n, *f);
    if (src != NULL)
      return fail_at(err, file, src, "volume '%s': %s volumes are not supported locally (only "
                                     "emptyDir, persistentVolumeClaim and volumeClaimTemplates "
                                     "are)", v->name, *f);
  }
  const struct ydoc_node *pvc = ydoc_get(n, "persistentVolumeClaim");
  const struct ydoc_node *empty = ydoc_get(n, "emptyDir");
  if (pvc != NULL && empty != NULL)
    return fail_at(err, file, pvc, "volume '%s' has more than one source", v->name);
  if (pvc == NULL) {
    /* The API server defaults a volume without a source to emptyDir. */
    v->kind = VOLUME_EMPTY_DIR;
    return empty == NULL || ydoc_is_null(empty) || empty->kind == YDOC_MAPPING
               ? 0
               : fail_at(err, file, empty, "volume '%s': emptyDir must be a mapping", v->name);
  }
  v->kind = VOLUME_CLAIM;
  if (ydoc_expect_kind(err, file, pvc, YDOC_MAPPING, "persistentVolumeClaim") < 0)
    return -1;
  const struct ydoc_node *c = ydoc_get(pvc, "claimName");
  if (c == NULL)
    return fail_at(err, file, pvc, "volume '%s': persistentVolumeClaim needs a claimName",
                   v->name);
  if (scalar(err, file, c, "claimName", &v->claim) < 0)
    return -1;
  if (!dns_label(v->claim))
    return fail_at(err, file, c, "claimName '%s' is not a valid Kubernetes name", v->claim);
  const struct ydoc_node *ro = ydoc_get(pvc, "readOnly");
  if (ro != NULL && (ro->kind != YDOC_SCALAR || ydoc_as_bool(ro, &v->read_only) < 0))
    return fail_at(err, file, ro, "readOnly must be true or false");
  return 0;
}

static struct wf_volume *grow(struct wf_volume **list, size_t *n) {
  *list = xreallocarray(*list, *n + 1, sizeof(**list));
  struct wf_volume *v = &(*list)[(*n)++];
  memset(v, 0, sizeof(*v));
  return v;
}

int volumes_parse(const char *file, const struct ydoc_node *n, const char *where,
                  struct wf_volume **list, size_t *n_list, ep_error **err) {
  if (ydoc_is_null(n))
    return 0;
  if (ydoc_expect_kind(err, file, n, YDOC_SEQUENCE, where) < 0)
    return -1;
  for (size_t i = 0; i < n->n_items; i++) {
    const struct ydoc_node *item = n->items[i];
    if (ydoc_expect_kind(err, file, item, YDOC_MAPPING, "a volume") < 0)
      return -1;
    struct wf_volume *v = grow(list, n_list);
    v->pos = pos_of(item);
    if (named(err, file, item, "a volume", &v->name, &v->pos) < 0 || parse_source(err, file, item, v) < 0)
      return -1;
  }
  return 0;
}

int volumes_parse_claim_templates(const char *file, const struct ydoc_node *n,
                                  struct wf_volume **list, size_t *n_list, ep_error **err) {
  if (ydoc_is_null(n))
    return 0;
  if (ydoc_expect_kind(err, file, n, YDOC_SEQUENCE, "spec.volumeClaimTemplates") < 0)
    return -1;
  for (size_t i = 0; i < n->n_items; i++) {
    const struct ydoc_node *item = n->items[i], *meta;
    if (ydoc_expect_kind(err, file, item, YDOC_MAPPING, "a volumeClaimTemplate") < 0)
      return -1;
    meta = ydoc_get(item, "metadata");
    if (meta == NULL || meta->kind != YDOC_MAPPING)
      return fail_at(err, file, item, "a volumeClaimTemplate needs metadata.name");
    struct wf_volume *v = grow(list, n_list);
    v->pos = pos_of(item);
    v->kind = VOLUME_CLAIM;
    if (named(err, file, meta, "a volumeClaimTemplate", &v->name, &v->pos) < 0)
      return -1;
    v->claim = xstrdup(v->name);
  }
  return 0;
}

/* "/a//b/./c/" to "/a/b/c"; NULL when a component is "..". */
static char *normalise(const char *path, bool absolute) {
  char *out = xmalloc(strlen(path) + 2);
  size_t len = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/')
      p++;
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      free(out);
      return NULL;
    }
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (absolute || len > 0)
        out[len++] = '/';
      memcpy(out + len, p, n);
      len += n;
    }
    p += n;
  }
  if (absolute && len == 0)
    out[len++] = '/';
  out[len] = '\0';
  return out;
}

static int parse_mount(ep_error **err, const char *file, const struct ydoc_node *n,
                       struct wf_volume_mount *m) {
  if (ydoc_expect_kind(err, file, n, YDOC_MAPPING, "a volumeMount") < 0)
    return -1;
  m->pos = pos_of(n);
  const struct ydoc_node *v = ydoc_get(n, "name");
  if (v == NULL)
    return fail_at(err, file, n, "a volumeMount needs the name of a volume");
  if (scalar(err, file, v, "name", &m->name) < 0)
    return -1;
  m->pos = pos_of(v); /* an unknown volume is shown at its name */
  if ((v = ydoc_get(n, "subPathExpr")) != NULL)
    return fail_at(err, file, v, "volumeMount '%s': subPathExpr is not supported locally; use "
                                 "subPath", m->name);
  if ((v = ydoc_get(n, "mountPath")) == NULL)
    return fail_at(err, file, n, "volumeMount '%s' needs a mountPath", m->name);
  char *raw = NULL;
  if (scalar(err, file, v, "mountPath", &raw) < 0)
    return -1;
  m->mount_path = raw[0] == '/' ? normalise(raw, true) : NULL;
  int rc = 0;
  if (raw[0] != '/')
    rc = fail_at(err, file, v, "mountPath '%s' must be an absolute path", raw);
  else if (m->mount_path == NULL)
    rc = fail_at(err, file, v, "mountPath '%s' must not contain '..'", raw);
  else if (strcmp(m->mount_path, "/") == 0)
    rc = fail_at(err, file, v, "mountPath must not be /: a volume cannot replace the root");
  else if (strcmp(m->mount_path, "/tmp") == 0)
    rc = fail_at(err, file, v, "mountPath /tmp is not supported locally: exitprobe keeps the "
                               "step's /tmp for scripts, entrypoints and output files; mount the "
                               "volume below it (/tmp/NAME) or elsewhere");
  else if (strlen(m->mount_path) >= 1024)
    rc = fail_at(err, file, v, "mountPath is too long");
  free(raw);
  if (rc < 0)
    return -1;
  if ((v = ydoc_get(n, "subPath")) != NULL && !ydoc_is_null(v)) {
    if (scalar(err, file, v, "subPath", &raw) < 0)
      return -1;
    m->sub_path = raw[0] != '/' ? normalise(raw, false) : NULL;
    if (m->sub_path == NULL)
      rc = fail_at(err, file, v, "subPath '%s' must be a relative path inside the volume", raw);
    free(raw);
    if (rc < 0)
      return -1;
    if (m->sub_path[0] == '\0') {
      free(m->sub_path);
      m->sub_path = NULL;
    }
  }
  if ((v = ydoc_get(n, "readOnly")) != NULL &&
      (v->kind != YDOC_SCALAR || ydoc_as_bool(v, &m->read_only) < 0))
    return fail_at(err, file, v, "readOnly must be true or false");
  return 0;
}

int volumes_parse_mounts(const char *file, const struct ydoc_node *n,
                         struct wf_volume_mount **out, size_t *n_out, ep_error **err) {
  if (ydoc_is_null(n))
    return 0;
  if (ydoc_expect_kind(err, file, n, YDOC_SEQUENCE, "volumeMounts") < 0)
    return -1;
  if (n->n_items > SANDBOX_MAX_BINDS)
    return fail_at(err, file, n, "more than %d volumeMounts", SANDBOX_MAX_BINDS);
  *out = xcalloc(n->n_items, sizeof(**out));
  for (size_t i = 0; i < n->n_items; i++) {
    (*n_out)++;
    if (parse_mount(err, file, n->items[i], &(*out)[i]) < 0)
      return -1;
    for (size_t j = 0; j < i; j++)
      if (strcmp((*out)[j].mount_path, (*out)[i].mount_path) == 0)
        return fail_at(err, file, n->items[i], "mountPath %s is mounted twice",
                       (*out)[i].mount_path);
  }
  return 0;
}

static const struct wf_volume *find_volume(const struct workflow *wf, const struct wf_template *t,
                                           const char *name) {
  for (size_t i = 0; i < t->n_volumes; i++)
    if (strcmp(t->volumes[i].name, name) == 0)
      return &t->volumes[i];
  for (size_t i = 0; i < wf->n_volumes; i++)
    if (strcmp(wf->volumes[i].name, name) == 0)
      return &wf->volumes[i];
  return NULL;
}

static int unique_names(const struct workflow *wf, const struct wf_volume *list, size_t n,
                        bool against_spec, ep_error **err) {
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < i; j++)
      if (strcmp(list[i].name, list[j].name) == 0)
        return ep_error_at(err, EP_EXIT_USAGE, wf->file, list[i].pos.line, list[i].pos.column,
                           "volume '%s' is declared twice", list[i].name);
    for (size_t j = 0; against_spec && j < wf->n_volumes; j++)
      if (strcmp(list[i].name, wf->volumes[j].name) == 0)
        return ep_error_at(err, EP_EXIT_USAGE, wf->file, list[i].pos.line, list[i].pos.column,
                           "volume '%s' is declared in the template and in the spec",
                           list[i].name);
  }
  return 0;
}

int volumes_validate(const struct workflow *wf, ep_error **err) {
  if (unique_names(wf, wf->volumes, wf->n_volumes, false, err) < 0)
    return -1;
  for (size_t i = 0; i < wf->n_templates; i++) {
    const struct wf_template *t = &wf->templates[i];
    if (unique_names(wf, t->volumes, t->n_volumes, true, err) < 0)
      return -1;
    /* Init containers are in the same pod: they see the template's volumes. */
    for (size_t c = 0; c <= t->n_init_containers; c++) {
      const struct wf_template *ctr = c == 0 ? t : &t->init_containers[c - 1];
      for (size_t m = 0; m < ctr->n_mounts; m++)
        if (find_volume(wf, t, ctr->mounts[m].name) == NULL)
          return ep_error_at(err, EP_EXIT_USAGE, wf->file, ctr->mounts[m].pos.line,
                             ctr->mounts[m].pos.column,
                             "volumeMount '%s' in template '%s': no volume of that name in the "
                             "template's volumes, spec.volumes or spec.volumeClaimTemplates",
                             ctr->mounts[m].name, t->name);
    }
  }
  return 0;
}

void volumes_free(struct wf_volume *list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(list[i].name);
    free(list[i].claim);
  }
  free(list);
}

void volume_mounts_free(struct wf_volume_mount *list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(list[i].name);
    free(list[i].mount_path);
    free(list[i].sub_path);
  }
  free(list);
}

/* mkdir -p of a host path, world-writable as a pod's volume is. */
static int host_dirs(const char *path) {
  char *buf = xstrdup(path);
  int rc = 0;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, 0777) == 0)
      (void)chmod(buf, 0777);
    else if (errno != EEXIST)
      rc = -1;
    *p = saved;
    if (saved == '\0' || rc < 0)
      break;
  }
  free(buf);
  return rc;
}

/* subPath components may have been written by steps: never follow a link
 * out of the volume (a symlink named like the subPath must not make the
 * host's /etc the mount's source). */
static int host_dirs_beneath(const char *base, const char *rel) {
  if (host_dirs(base) < 0)
    return -1;
  if (rel == NULL)
    return 0;
  int fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char *copy = xstrdup(rel), *save = NULL;
  int rc = 0;
  for (char *c = strtok_r(copy, "/", &save); c != NULL && rc == 0; c = strtok_r(NULL, "/", &save)) {
    if (mkdirat(fd, c, 0777) == 0)
      (void)fchmodat(fd, c, 0777, 0);
    int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0)
      rc = -1;
    close(fd);
    fd = next;
  }
  if (fd >= 0)
    close(fd);
  free(copy);
  return rc;
}

static int by_path(const void *a, const void *b) {
  return strcmp(((const struct sandbox_bind *)a)->path, ((const struct sandbox_bind *)b)->path);
}

int volumes_prepare_step(const struct workflow *wf, const struct wf_template *t,
                         const char *workspace_dir, const char *empty_dir_root,
                         struct step_binds *out, char **why) {
  out->binds = t->n_mounts ? xcalloc(t->n_mounts, sizeof(*out->binds)) : NULL;
  out->n = 0;
  for (size_t i = 0; i < t->n_mounts; i++) {
    const struct wf_volume_mount *m = &t->mounts[i];
    const struct wf_volume *v = find_volume(wf, t, m->name);
    if (v == NULL || workspace_dir == NULL) {
      *why = xasprintf("volume '%s' has no directory", m->name);
      return -1;
    }
    char *base = v->kind == VOLUME_CLAIM ? xasprintf("%s/%s", workspace_dir, v->claim)
                                         : xasprintf("%s/%s", empty_dir_root, v->name);
    char *dir = m->sub_path ? xasprintf("%s/%s", base, m->sub_path) : xstrdup(base);
    int made = host_dirs_beneath(base, m->sub_path);
    free(base);
    struct sandbox_bind *b = &out->binds[out->n++];
    b->host_dir = dir;
    b->path = xstrdup(m->mount_path);
    b->read_only = m->read_only || v->read_only;
    if (made < 0) {
      *why = xasprintf("cannot create the directory of volume '%s' (%s): %s", m->name, dir,
                       strerror(errno));
      return -1;
    }
  }
  if (out->n > 1)
    qsort(out->binds, out->n, sizeof(*out->binds), by_path);
  return 0;
}

void step_binds_free(struct step_binds *b) {
  for (size_t i = 0; i < b->n; i++) {
    free((char *)b->binds[i].host_dir);
    free((char *)b->binds[i].path);
  }
  free(b->binds);
  b->binds = NULL;
  b->n = 0;
}

int volumes_locate(const struct workflow *wf, const struct wf_template *t,
                   const char *workspace_dir, const char *empty_dir_root, const char *path,
                   char **dir, const char **rest) {
  const struct wf_volume_mount *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < t->n_mounts; i++) {
    size_t len = strlen(t->mounts[i].mount_path);
    if (strncmp(path, t->mounts[i].mount_path, len) == 0 && (path[len] == '/' || path[len] == 0) &&
        len > best_len) {
      best = &t->mounts[i];
      best_len = len;
    }
  }
  const struct wf_volume *v = best ? find_volume(wf, t, best->name) : NULL;
  if (v == NULL || workspace_dir == NULL || empty_dir_root == NULL)
    return -1;
  const char *base = v->kind == VOLUME_CLAIM ? workspace_dir : empty_dir_root;
  const char *leaf = v->kind == VOLUME_CLAIM ? v->claim : v->name;
  *dir = best->sub_path ? xasprintf("%s/%s/%s", base, leaf, best->sub_path)
                        : xasprintf("%s/%s", base, leaf);
  *rest = path + best_len + (path[best_len] == '/');
  return 0;
}
