/* Shared by the libFuzzer harnesses: the entry point's prototype (the
 * project builds with -Wmissing-prototypes) and a NUL-terminated copy of
 * the input for APIs that take C strings. */
#ifndef EXITPROBE_FUZZ_COMMON_H
#define EXITPROBE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input up to its first NUL, as a string; NULL when out of memory. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, '\0', size);
  size_t len = nul ? (size_t)(nul - data) : size;
  char *s = malloc(len + 1);
  if (s != NULL) {
    memcpy(s, data, len);
    s[len] = '\0';
  }
  return s;
}

#endif
