/* JUnit XML for CI systems (Jenkins, GitLab, GitHub test reporters): one
 * <testsuite> per scenario holding one <testcase>, a violated expectation
 * as <failure>, an inconclusive run as <skipped>, a harness problem as
 * <error>.  The output stays inside what both widely used schemas accept
 * (the Ant schema and Jenkins' junit-10.xsd): no attributes on
 * <testsuites>, properties / testcase / system-out / system-err in that
 * order, a timestamp without time zone (UTC). */
#ifndef EXITPROBE_JUNIT_H
#define EXITPROBE_JUNIT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "../runner/error.h"

struct junit_property {
  const char *name;
  const char *value;
};

struct junit_case {
  const char *name;         /* scenario name: testsuite and testcase name */
  const char *file;         /* scenario file; gives the classname, may be NULL */
  const char *verdict;      /* "passed", "failed", "inconclusive" or "error" */
  double time_seconds;
  time_t started;           /* 0: the time of the call */
  const json_t *expectations; /* results from expectations_evaluate, or NULL */
  const char *reason;       /* inconclusive: why it was skipped; error: what went wrong */
  const char *system_out;   /* a short summary for the reader, or NULL */
  const struct junit_property *properties; /* seed, workflow, timeScale, version ... */
  size_t n_properties;
};

/* The document as text.  hostname NULL: gethostname(), else "localhost".
 * malloc'd; never NULL. */
char *junit_render(const struct junit_case *cases, size_t n, const char *hostname);

/* Render and write atomically (reports/atomic_file.h). */
int junit_write_file(const char *path, const struct junit_case *cases, size_t n, ep_error **err);

#endif
