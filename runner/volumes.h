/* Declared volumes: reading `volumes`, `volumeClaimTemplates` and
 * `volumeMounts` into the model (errors with file:line:column), and, at
 * run time, the host directories a step's mounts bind (see workspace.h for
 * where those live). */
#ifndef EXITPROBE_VOLUMES_H
#define EXITPROBE_VOLUMES_H

#include <stddef.h>

#include "error.h"
#include "sandbox.h"
#include "workflow.h"
#include "yaml_doc.h"

/* spec.volumes or a template's volumes: appended to *list. */
int volumes_parse(const char *file, const struct ydoc_node *n, const char *where,
                  struct wf_volume **list, size_t *n_list, ep_error **err);
/* spec.volumeClaimTemplates: appended to *list as claims. */
int volumes_parse_claim_templates(const char *file, const struct ydoc_node *n,
                                  struct wf_volume **list, size_t *n_list, ep_error **err);
/* A container's volumeMounts. */
int volumes_parse_mounts(const char *file, const struct ydoc_node *n,
                         struct wf_volume_mount **out, size_t *n_out, ep_error **err);
/* Every mount names a volume the pod has; names and claim directories are unique. */
int volumes_validate(const struct workflow *wf, ep_error **err);

void volumes_free(struct wf_volume *list, size_t n);
void volume_mounts_free(struct wf_volume_mount *list, size_t n);

/* A step's binds, sorted by path (parents first).  Claim directories are
 * made under workspace_dir, emptyDirs fresh under empty_dir_root (one per
 * pod: the caller removes it with the pod).  On failure -1 and *why. */
struct step_binds {
  struct sandbox_bind *binds;
  size_t n;
};
int volumes_prepare_step(const struct workflow *wf, const struct wf_template *t,
                         const char *workspace_dir, const char *empty_dir_root,
                         struct step_binds *out, char **why);
void step_binds_free(struct step_binds *b);

/* The host directory behind a path the step saw, when a volume of t is
 * mounted there: *dir (malloc'd) and *rest (into path, relative, may be
 * "").  -1 when no mount covers path. */
int volumes_locate(const struct workflow *wf, const struct wf_template *t,
                   const char *workspace_dir, const char *empty_dir_root, const char *path,
                   char **dir, const char **rest);

#endif
