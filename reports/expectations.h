/* A scenario's `expect` tree, checked against a JSON report
 * (docs/SCENARIOS.md "Expectations", docs/REPORT.md for the report).
 *
 * The shape is validated when the scenario loads (unknown keys, wrong
 * types, phase names, regexes: errors with line:column) and evaluated after
 * the run into a list of results, one per checked value:
 *
 *   {"path": "nodes.work.exitCode", "expected": 137, "actual": 1, "ok": false,
 *    "line": 14, "column": 30}
 *
 * plus "note" when there is something to explain (no node matched). */
#ifndef EXITPROBE_EXPECTATIONS_H
#define EXITPROBE_EXPECTATIONS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../runner/error.h"
#include "../runner/yaml_doc.h"

/* Check the shape of an `expect` mapping.  NULL or an empty mapping is
 * fine.  Errors are EP_EXIT_USAGE at file:line:column. */
int expectations_validate(const char *file, const struct ydoc_node *expect, ep_error **err);

/* Evaluate a validated `expect` tree against a report (as report_build
 * makes it).  *results receives a new JSON array in document order, ready
 * for the report's "expectations".  Fails only for a tree that did not go
 * through expectations_validate (EP_EXIT_USAGE). */
int expectations_evaluate(const char *file, const struct ydoc_node *expect, const json_t *report,
                          json_t **results, ep_error **err);

/* "failed" when any result is not ok (a broken promise outranks a doubt),
 * else "inconclusive" when the caller says so (a fault did not fire, a
 * capability was missing), else "passed". */
const char *expectations_verdict(const json_t *results, bool inconclusive);

size_t expectations_failed_count(const json_t *results);

/* Does the tree ask for exitHandler.idempotent (so the run must make the
 * idempotency check)? */
bool expectations_want_idempotency(const struct ydoc_node *expect);

/* What a user reads: `nodes.work.exitCode: expected 137, got 1`,
 * `logs.cleanup: expected to contain "Sending", got "..."`.  Long values
 * are shortened.  malloc'd. */
char *expectation_result_text(const json_t *result);

#endif
