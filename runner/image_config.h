/* What the user tells of images, which are not pulled: `--image
 * NAME=PATH` (an entrypoint program on the host), `--image NAME=DIR` (a
 * directory: the image's unpacked root filesystem) and `--image-config
 * FILE` (rootfs, entrypoint, cmd, env, workingDir per image).  Lookups
 * take the first match, so the command line's entries, added first, win
 * over the file's. */
#ifndef EXITPROBE_IMAGE_CONFIG_H
#define EXITPROBE_IMAGE_CONFIG_H

#include <stddef.h>

#include "controller.h"
#include "error.h"

struct image_set {
  struct image_entrypoint *images;
  size_t n_images;
  void **owned; /* every string and vector the entries point to */
  size_t n_owned;
};

/* One --image argument.  Bad ones: EP_EXIT_USAGE. */
int image_set_add_arg(struct image_set *s, const char *arg, ep_error **err);

/* An --image-config file:
 *   images:
 *     "python:3.12": {rootfs: DIR, entrypoint: [..], cmd: [..], env: {K: V}, workingDir: /x}
 * Bad input: EP_EXIT_USAGE with file:line:column. */
int image_set_load(struct image_set *s, const char *path, ep_error **err);

void image_set_free(struct image_set *s);

#endif
