/* A scenario's spec.mocks: stand-ins for the templates only a cluster can
 * carry out (resource, http, plugin), so that a workflow using them can run
 * locally.  Each mock names a template and says how its node ends:
 *
 *   mocks:
 *   - template: fetch-config            # a resource, http or plugin template
 *     phase: Succeeded                  # Succeeded (default), Failed or Error
 *     message: "..."                    # the node's message (optional)
 *     outputs:
 *       result: '{"replicas": 3}'       # {{steps.X.outputs.result}}
 *       parameters: {replicas: "3"}     # {{steps.X.outputs.parameters.replicas}}
 */
#ifndef EXITPROBE_MOCKS_H
#define EXITPROBE_MOCKS_H

#include <stddef.h>

#include "../runner/controller.h"
#include "../runner/error.h"
#include "../runner/workflow.h"
#include "../runner/yaml_doc.h"

/* Parse spec.mocks (NULL or null: none).  EP_EXIT_USAGE with file:line:column. */
int mocks_parse(const char *file, const struct ydoc_node *list, struct template_mock **out,
                size_t *n_out, ep_error **err);
void mocks_free(struct template_mock *mocks, size_t n);

/* Every mock names a resource, http or plugin template of wf, at most once. */
int mocks_check(const char *file, const struct template_mock *mocks, size_t n,
                const struct workflow *wf, ep_error **err);

/* The workflow can run locally with these mocks: every resource, http and
 * plugin template has one (workflow_check_runnable). */
int mocks_cover_workflow(const struct template_mock *mocks, size_t n, const struct workflow *wf,
                         ep_error **err);

#endif
