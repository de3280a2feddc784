/* libFuzzer target: a Scenario file through scenario_load_file, which only
 * takes a path, so the input goes into a memfd read back through
 * /proc/self/fd.  A scenario with an inline workflowSpec continues like
 * `exitprobe validate`: its workflow is built and the fault and
 * expectation targets are checked against it; every loaded fault is
 * described, and a loaded `expect` tree is evaluated against a small
 * report.  Paths in `workflow:` resolve below /proc/self/fd and are only
 * stat()ed, never loaded. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "../../injector/scenario.h"
#include "../../reports/expectations.h"
#include "fuzz_common.h"

static const char report_text[] =
    "{\"status\": {\"phase\": \"Failed\", \"nodes\": {"
    "\"wf\": {\"name\": \"wf\", \"displayName\": \"wf\", \"type\": \"Steps\", \"templateName\": "
    "\"main\", \"phase\": \"Failed\", \"message\": \"child failed\", \"children\": [\"w1\"]},"
    "\"w1\": {\"name\": \"wf[0].work\", \"displayName\": \"work\", \"type\": \"Retry\", "
    "\"templateName\": \"do-work\", \"phase\": \"Failed\", \"children\": [\"w2\"]},"
    "\"w2\": {\"name\": \"wf[0].work(0)\", \"displayName\": \"work(0)\", \"type\": \"Pod\", "
    "\"templateName\": \"do-work\", \"phase\": \"Failed\", \"message\": \"signal: killed\", "
    "\"outputs\": {\"exitCode\": \"137\"}, \"oomKilled\": false, \"log\": \"working\\n\"},"
    "\"c\": {\"name\": \"wf.onExit\", \"displayName\": \"wf.onExit\", \"type\": \"Pod\", "
    "\"templateName\": \"cleanup\", \"phase\": \"Succeeded\", \"outputs\": {\"exitCode\": \"0\"}, "
    "\"log\": \"Sending failure notification\\n\"}}},"
    "\"exitHandler\": {\"declared\": true, \"ran\": true, \"runs\": 1, \"phase\": \"Succeeded\", "
    "\"workflowStatus\": \"Failed\", \"by\": \"controller\"}}";

static void exercise(const struct scenario *sc) {
  for (size_t i = 0; i < sc->n_faults; i++) {
    char *d = fault_describe(&sc->faults[i]);
    if (d == NULL)
      abort();
    free(d);
    (void)fault_action_name(sc->faults[i].action);
  }
  if (sc->expect != NULL) {
    json_t *report = json_loads(report_text, 0, NULL);
    json_t *results = NULL;
    ep_error *err = NULL;
    if (report != NULL && expectations_evaluate(sc->file, sc->expect, report, &results, &err) == 0) {
      (void)expectations_verdict(results, false);
      for (size_t i = 0; i < json_array_size(results); i++)
        free(expectation_result_text(json_array_get(results, i)));
    }
    ep_error_free(&err);
    json_decref(results);
    json_decref(report);
  }
  if (sc->workflow_spec == NULL)
    return;
  struct ydoc *doc = NULL;
  struct workflow *wf = NULL;
  ep_error *err = NULL;
  if (scenario_load_workflow_doc(sc, &doc, &err) == 0) {
    if (workflow_from_doc(doc, sc->overrides, sc->n_params, &wf, &err) == 0)
      (void)scenario_check_targets(sc, wf, &err);
    else
      ydoc_free(doc);
  }
  workflow_free(wf);
  ep_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz-scenario", MFD_CLOEXEC);
  if (fd < 0)
    abort(); /* the harness cannot work without it; say so loudly */
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0)
      abort();
    done += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  struct scenario *sc = NULL;
  ep_error *err = NULL;
  if (scenario_load_file(path, &sc, &err) == 0) {
    exercise(sc);
    scenario_free(sc);
  } else if (err == NULL || err->message == NULL) {
    abort();
  }
  ep_error_free(&err);
  close(fd);
  return 0;
}
