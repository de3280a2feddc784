/* `exitprobe report`: reading saved reports back and rendering them as
 * text, HTML, JUnit, TAP and GitHub annotations.  Hand-written reports in
 * tests/data/reports/ cover the edges (markup and workflow commands in
 * logs and names, a children cycle, a watchdog that ran the handler twice,
 * an inconclusive scenario); tests/data/reports/bad/ holds files that are
 * not reports.  Real reports come from the binary when the sandbox can run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report_github.h"
#include "report_html.h"
#include "report_json.h"
#include "report_load.h"
#include "report_tap.h"
#include "report_text_json.h"
#include "report_timeline.h"
#include "run_state.h"
#include "state_load.h"
#include "test_helpers.h"

#define WF "exit-handler-workflow"

/* ---- helpers ---------------------------------------------------------------- */

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  assert_non_null(d);
  return d;
}

static const char *data_report(const char *name) {
  return test_path(test_path(test_data_dir(), "reports"), name);
}

static json_t *load(const char *path) {
  json_t *doc = NULL;
  ep_error *err = NULL;
  if (report_load_file(path, &doc, &err) < 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
    fail_msg("cannot load %s", path);
  }
  return doc;
}

static json_t *load_data(const char *name) { return load(data_report(name)); }

static size_t count(const char *hay, const char *needle) {
  size_t n = 0, len = strlen(needle);
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + len, needle))
    n++;
  return n;
}

enum fmt { F_TEXT, F_HTML, F_TAP, F_GITHUB };

/* noinline: gcc 12 at -O2 mistakes open_memstream's buffer for a dangling local. */
__attribute__((noinline)) static char *render(enum fmt f, json_t **docs, const char **sources,
                                              size_t n) {
  char *out = NULL;
  size_t size = 0;
  FILE *fp = open_memstream(&out, &size);
  assert_non_null(fp);
  struct text_options opts = {.color = false};
  switch (f) {
  case F_TEXT:
    for (size_t i = 0; i < n; i++)
      report_print_text_json(docs[i], &opts, fp);
    break;
  case F_HTML:
    report_html_render((const json_t *const *)docs, sources, n, fp);
    break;
  case F_TAP:
    report_tap_render((const json_t *const *)docs, sources, n, fp);
    break;
  case F_GITHUB:
    report_github_annotations((const json_t *const *)docs, sources, n, fp);
    break;
  }
  assert_int_equal(fclose(fp), 0);
  return out;
}

static char *render_one(enum fmt f, json_t *doc) { return render(f, &doc, NULL, 1); }

/* The seed workflow after a run, with the kill of scenario 03 on `work`:
 * built through run_state and report_build, as `exitprobe run` does. */
static struct run_state *seed_state(bool with_fault) {
  struct run_state *st = run_state_new();
  st->workflow_name = xstrdup(WF);
  st->workflow_file = xstrdup("exit-handler-workflow.yaml");
  st->started_at_us = 1795750551000000;
  struct wf_node *entry = run_state_add_node(st, WF, NULL, NODE_STEPS, "main", NULL);
  struct wf_node *group = run_state_add_node(st, WF "[0]", "[0]", NODE_STEP_GROUP, NULL, entry->id);
  run_state_add_child(entry, group->id);
  struct wf_node *work = run_state_add_node(st, WF "[0].work", "work", NODE_POD, "do-work", entry->id);
  run_state_add_child(group, work->id);
  work->has_exit_code = true;
  work->exit_code = 1;
  node_append_log(work, "Doing work...\n", 14);
  work->memory_peak = 434176;
  node_finish(work, PHASE_FAILED, "main: Error (exit code 1)");
  char msg[128];
  snprintf(msg, sizeof(msg), "child '%s' failed", work->id);
  node_finish(group, PHASE_FAILED, msg);
  node_finish(entry, PHASE_FAILED, msg);
  struct wf_node *onexit = run_state_add_node(st, WF ".onExit", NULL, NODE_POD, "cleanup", NULL);
  onexit->hooked = true;
  onexit->has_exit_code = true;
  const char *log = "Workflow status: Failed\nCleaning up resources...\nSending failure notification\n";
  node_append_log(onexit, log, strlen(log));
  node_finish(onexit, PHASE_SUCCEEDED, NULL);
  /* Same second for everything, as a real seed run: order must come from causality. */
  for (size_t i = 0; i < st->n_nodes; i++)
    st->nodes[i]->started_at_us = st->nodes[i]->finished_at_us = st->started_at_us + 200000;
  st->phase = PHASE_FAILED;
  st->message = xstrdup(msg);
  st->finished_at_us = st->started_at_us + 300000;
  st->exit_handler = (struct exit_handler_record){
      .declared = true, .ran = true, .runs = 1, .phase = PHASE_SUCCEEDED,
      .workflow_status = xstrdup("Failed"), .by = BY_CONTROLLER, .node_id = xstrdup(onexit->id)};
  if (with_fault) {
    st->faults = calloc(1, sizeof(*st->faults));
    assert_non_null(st->faults);
    st->faults[0] = (struct fault_record){
        .action = xstrdup("signal"), .description = xstrdup("send SIGKILL to 'work' after 200ms"),
        .target = xstrdup("work"), .fired = true, .fired_at_us = st->started_at_us + 200000,
        .node_id = xstrdup(work->id), .detail = xstrdup("KILL")};
    st->n_faults = 1;
  }
  return st;
}

static json_t *seed_report(bool with_fault) {
  struct run_state *st = seed_state(with_fault);
  json_t *r = report_build(st);
  run_state_free(st);
  return r;
}

/* ---- loading ---------------------------------------------------------------- */

static void test_load_rejects_what_is_not_a_report(void **state) {
  (void)state;
  const char *bad[] = {"not-json.json", "not-object.json", "wrong-api.json", "no-nodes.json",
                       "empty.json", "does-not-exist.json"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *path = xstrdup(test_path(test_path(test_data_dir(), "reports/bad"), bad[i]));
    json_t *doc = NULL;
    ep_error *err = NULL;
    assert_int_equal(report_load_file(path, &doc, &err), -1);
    assert_null(doc);
    assert_non_null(err);
    assert_int_equal(err->status, EP_EXIT_USAGE);
    /* The message names the file, as file:line:col or in the text. */
    bool named = (err->file != NULL && strstr(err->file, bad[i]) != NULL) ||
                 strstr(err->message, bad[i]) != NULL;
    if (!named)
      fail_msg("%s: the error does not name the file: %s", bad[i], err->message);
    if (strcmp(bad[i], "not-json.json") == 0)
      assert_int_equal(err->line, 3);
    ep_error_free(&err);
    free(path);
  }
}

static void test_load_accepts_every_good_report(void **state) {
  (void)state;
  const char *good[] = {"hostile.json", "watchdog-twice.json", "plain-succeeded.json",
                        "inconclusive.json", "cycle.json"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    json_decref(load_data(good[i]));
}

static void test_outcome_of_workflow_reports(void **state) {
  (void)state;
  struct {
    const char *file, *verdict, *reason_part;
  } cases[] = {
      {"plain-succeeded.json", "passed", NULL},
      {"watchdog-twice.json", "failed", "ran 2 times"},
      {"cycle.json", "failed", "Terminate"},
      {"inconclusive.json", "inconclusive", "did not fire"},
      {"hostile.json", "failed", "did not fire"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *r = load_data(cases[i].file);
    struct report_outcome o;
    report_outcome_of(r, &o);
    assert_string_equal(o.verdict, cases[i].verdict);
    if (cases[i].reason_part != NULL) {
      assert_non_null(o.reason);
      assert_non_null(strstr(o.reason, cases[i].reason_part));
    } else {
      assert_null(o.reason);
    }
    report_outcome_free(&o);
    json_decref(r);
  }
  /* The seed: the workflow fails on purpose, the handler ran once: a pass. */
  json_t *seed = seed_report(false);
  struct report_outcome o;
  report_outcome_of(seed, &o);
  assert_string_equal(o.verdict, "passed");
  assert_string_equal(o.name, WF);
  assert_false(o.scenario);
  report_outcome_free(&o);
  /* The same report with the handler missing fails. */
  json_object_set_new(json_object_get(seed, "exitHandler"), "ran", json_false());
  report_outcome_of(seed, &o);
  assert_string_equal(o.verdict, "failed");
  report_outcome_free(&o);
  json_decref(seed);
}

/* ---- timeline ------------------------------------------------------------------ */

static size_t index_of_kind(const struct timeline *tl, enum timeline_kind kind, size_t from) {
  for (size_t i = from; i < tl->n; i++)
    if (tl->events[i].kind == kind)
      return i;
  fail_msg("no %s event", timeline_kind_name(kind));
  return SIZE_MAX;
}

static size_t index_of_text(const struct timeline *tl, const char *text) {
  for (size_t i = 0; i < tl->n; i++)
    if (strstr(tl->events[i].text, text) != NULL)
      return i;
  fail_msg("no timeline event says '%s'", text);
  return SIZE_MAX;
}

static void test_timeline_orders_one_second_by_cause(void **state) {
  (void)state;
  json_t *r = seed_report(true);
  struct timeline tl;
  timeline_build(r, &tl);
  /* Everything happened within one second: the order is what must have
   * come first, not the order of the nodes. */
  size_t started = index_of_kind(&tl, TIMELINE_WORKFLOW_STARTED, 0);
  size_t work_started = index_of_text(&tl, "work started");
  size_t fault = index_of_kind(&tl, TIMELINE_FAULT_FIRED, 0);
  size_t work_failed = index_of_text(&tl, "work Failed: main: Error (exit code 1)");
  size_t handler = index_of_kind(&tl, TIMELINE_EXIT_HANDLER_STARTED, 0);
  size_t finished = index_of_kind(&tl, TIMELINE_WORKFLOW_FINISHED, 0);
  assert_true(started < work_started);
  assert_true(work_started < fault);
  assert_true(fault < work_failed);
  assert_true(work_failed < handler);
  assert_true(handler < finished);
  assert_int_equal(finished, tl.n - 1);
  assert_non_null(strstr(tl.events[handler].text, "{{workflow.status}}=Failed"));
  assert_non_null(strstr(tl.events[handler].text, "controller"));
  assert_true(tl.events[fault].precise);
  assert_non_null(strstr(tl.events[fault].text, "send SIGKILL to 'work' after 200ms"));
  /* Step groups and the Steps node are structure, not events. */
  for (size_t i = 0; i < tl.n; i++)
    assert_null(strstr(tl.events[i].text, "[0]"));
  timeline_free(&tl);
  json_decref(r);
}

static void test_timeline_watchdog_retries_and_skips(void **state) {
  (void)state;
  json_t *r = load_data("watchdog-twice.json");
  struct timeline tl;
  timeline_build(r, &tl);
  /* Attempt 0 ends before attempt 1 starts, though both are at second 2. */
  assert_true(index_of_text(&tl, "test(0) Failed") < index_of_text(&tl, "test(1) started"));
  assert_true(index_of_text(&tl, "build Succeeded") < index_of_text(&tl, "test(0) started"));
  size_t handler = index_of_kind(&tl, TIMELINE_EXIT_HANDLER_STARTED, 0);
  assert_non_null(strstr(tl.events[handler].text, "watchdog took over"));
  assert_non_null(strstr(tl.events[handler].text, "2 times"));
  assert_true(index_of_text(&tl, "notify started") > handler);
  size_t skipped = index_of_kind(&tl, TIMELINE_NODE_SKIPPED, 0);
  assert_non_null(strstr(tl.events[skipped].text, "lint Skipped"));
  char buf[32];
  timeline_format_offset(&tl.events[index_of_text(&tl, "test(1) started")], buf, sizeof(buf));
  assert_string_equal(buf, "+2s");
  timeline_free(&tl);
  json_decref(r);
}

static void test_timeline_survives_a_cycle(void **state) {
  (void)state;
  json_t *r = load_data("cycle.json");
  struct timeline tl;
  timeline_build(r, &tl);
  assert_true(tl.n >= 3);
  /* Unfinished and the handler never ran: that is the last word. */
  assert_int_equal(tl.events[tl.n - 1].kind, TIMELINE_EXIT_HANDLER_MISSING);
  assert_non_null(strstr(tl.events[tl.n - 1].text, "Terminate"));
  timeline_free(&tl);
  json_decref(r);
}

/* ---- text ------------------------------------------------------------------------ */

static void test_text_has_tree_timeline_and_expectations(void **state) {
  (void)state;
  json_t *seed = seed_report(true);
  char *text = render_one(F_TEXT, seed);
  assert_non_null(strstr(text, "Workflow " WF));
  assert_non_null(strstr(text, "work"));
  assert_non_null(strstr(text, "Timeline"));
  assert_non_null(strstr(text, "started by the controller with {{workflow.status}}=Failed"));
  assert_non_null(strstr(text, "Sending failure notification"));
  assert_non_null(strstr(text, "Result: passed"));
  assert_null(strchr(text, '\033'));
  free(text);
  json_decref(seed);

  json_t *wd = load_data("watchdog-twice.json");
  text = render_one(F_TEXT, wd);
  assert_non_null(strstr(text, "\nWatchdog:\n  controller died (SIGKILL)\n  fenced"));
  assert_non_null(strstr(text, "test            Retry"));
  free(text);
  json_decref(wd);

  json_t *hostile = load_data("hostile.json");
  text = render_one(F_TEXT, hostile);
  assert_non_null(strstr(text, "Scenario hostile"));
  assert_non_null(strstr(text, "FAIL  nodes.<img*.exitCode: expected 137"));
  assert_non_null(strstr(text, "NOT FIRED  exit 3 instead of running 'nobody'"));
  assert_non_null(strstr(text, "Verdict: failed"));
  /* A message with a line break stays on its line. */
  assert_null(strstr(text, "failed\nsecond line"));
  free(text);
  json_decref(hostile);
}

/* ---- HTML ------------------------------------------------------------------------- */

static void assert_self_contained(const char *html) {
  const char *forbidden[] = {"<link",  "<img",        "<iframe",     "<object",  "<embed",
                             " src=\"", "@import",     "href=\"http", "href=\"//", "url(http",
                             "url(//",  "url(\"http", "url('http"};
  for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
    if (strstr(html, forbidden[i]) != NULL)
      fail_msg("the page refers to something outside itself: %s", forbidden[i]);
  assert_non_null(strstr(html, "default-src 'none'"));
  /* One script element: ours. */
  assert_int_equal(count(html, "<script"), 1);
}

static void test_html_seed_graph(void **state) {
  (void)state;
  json_t *seed = seed_report(true);
  char *html = render_one(F_HTML, seed);
  assert_self_contained(html);
  assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
  assert_non_null(strstr(html, "data-name=\"work\" data-phase=\"Failed\" data-type=\"Pod\""));
  assert_non_null(strstr(html, "<g class=\"node phase-Failed\" id=\"r0-graph-node-2\""));
  /* The handler apart, in its frame, and marked. */
  assert_non_null(strstr(html, "class=\"node phase-Succeeded exit-handler\""));
  assert_non_null(strstr(html, "data-exit-handler=\"true\""));
  assert_int_equal(count(html, "data-exit-handler=\"true\""), 1);
  assert_non_null(strstr(html, "EXIT HANDLER (onExit)"));
  /* Every node twice: in the graph and in the details. */
  assert_int_equal(count(html, "<g class=\"node "), 4);
  assert_int_equal(count(html, "<details class=\"node-details"), 4);
  assert_non_null(strstr(html, "data-kind=\"exit-handler-started\""));
  assert_non_null(strstr(html, "{{workflow.status}}=Failed"));
  assert_non_null(strstr(html, "<pre class=\"log\">Doing work...\n</pre>"));
  assert_non_null(strstr(html, "424 KiB (434176 bytes)"));
  assert_non_null(strstr(html, "send SIGKILL to &#39;work&#39; after 200ms"));
  assert_non_null(strstr(html, "data-kind=\"fault-fired\""));
  free(html);
  json_decref(seed);
}

static void test_html_escapes_everything(void **state) {
  (void)state;
  json_t *r = load_data("hostile.json");
  const char *src = "dir/<report>.json";
  char *html = render(F_HTML, &r, &src, 1);
  assert_self_contained(html);
  const char *raw[] = {"<script>alert", "<img src=x", "<b>bold", "</pre></details>\n::error",
                       "<i>", "&#39; </table>", "</td> sent", "<report>"};
  for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
    if (strstr(html, raw[i]) != NULL)
      fail_msg("unescaped in the page: %s", raw[i]);
  assert_non_null(strstr(html, "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;"));
  assert_non_null(strstr(html, "&lt;img src=x onerror=alert(1)&gt;"));
  assert_non_null(strstr(html, "no node matched &#39;nobody&#39; &lt;/table&gt;"));
  assert_non_null(strstr(html, "&amp;amp; &quot;quotes&quot;"));
  /* Control characters and NUL become U+FFFD, the emoji stays. */
  assert_non_null(strstr(html, "\xEF\xBF\xBD control \xEF\xBF\xBD NUL"));
  assert_non_null(strstr(html, "\xF0\x9F\x98\x80 emoji"));
  assert_non_null(strstr(html, "data-ok=\"false\""));
  assert_int_equal(count(html, "<tr class=\"expectation\""), 3);
  assert_int_equal(count(html, "<tr class=\"fault\""), 2);
  free(html);
  json_decref(r);
}

static json_t *wide_report(size_t n_pods) {
  json_t *nodes = json_object();
  json_t *kids = json_array();
  for (size_t i = 0; i < n_pods; i++) {
    char id[64], name[64], disp[32];
    snprintf(id, sizeof(id), "big-%zu", i);
    snprintf(name, sizeof(name), "big[0].step(%zu)", i);
    snprintf(disp, sizeof(disp), "step(%zu)", i);
    json_array_append_new(kids, json_string(id));
    json_object_set_new(nodes, id,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id,
                                  "name", name, "displayName", disp, "type", "Pod",
                                  "templateName", "t", "phase", i % 7 == 3 ? "Failed" : "Succeeded",
                                  "boundaryID", "big", "startedAt", "2026-01-02T03:04:05Z",
                                  "finishedAt", "2026-01-02T03:04:06Z", "podName", id));
  }
  json_t *group = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:{}}", "id", "big-g",
                            "name", "big[0]", "displayName", "[0]", "type", "StepGroup", "phase",
                            "Failed", "boundaryID", "big", "startedAt", "2026-01-02T03:04:05Z",
                            "children", kids, "nodeFlag");
  json_t *entry = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s]}", "id", "big", "name", "big",
                            "displayName", "big", "type", "Steps", "phase", "Failed", "startedAt",
                            "2026-01-02T03:04:05Z", "children", "big-g");
  json_t *all = json_object();
  json_object_set_new(all, "big", entry);
  json_object_set_new(all, "big-g", group);
  json_object_update(all, nodes);
  json_decref(nodes);
  json_t *r = json_pack(
      "{s:s, s:s, s:{s:s, s:n, s:n, s:n}, s:{s:s, s:s, s:s, s:o}, s:{s:b, s:b, s:i, s:s},"
      " s:{s:b}, s:{s:n, s:[], s:b, s:s, s:[]}, s:[]}",
      "apiVersion", "exitprobe/v1", "kind", "Report", "workflow", "name", "big", "namespace",
      "uid", "file", "status", "phase", "Failed", "startedAt", "2026-01-02T03:04:05Z", "progress",
      "0/0", "nodes", all, "exitHandler", "declared", 0, "ran", 0, "runs", 0, "by", "none", "run",
      "interrupted", 0, "environment", "cgroup", "namespaces", "seccomp", 0, "image",
      "not pulled: steps run on the host root filesystem", "notes", "warnings");
  assert_non_null(r);
  ep_error *err = NULL;
  assert_int_equal(report_check(r, "wide", &err), 0);
  return r;
}

static void test_html_a_thousand_nodes(void **state) {
  (void)state;
  json_t *r = wide_report(1000);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char *html = render_one(F_HTML, r);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (secs > 5)
    fail_msg("1000 nodes took %.1fs to render", secs);
  assert_int_equal(count(html, "<g class=\"node "), 1002);
  assert_int_equal(count(html, "<details class=\"node-details"), 1002);
  assert_int_equal(count(html, "<g class=\"node phase-Failed"), 2 + 143);
  /* Ids are unique per node. */
  assert_non_null(strstr(html, "id=\"r0-node-1001\""));
  assert_null(strstr(html, "id=\"r0-node-1002\""));
  assert_int_equal(count(html, "id=\"r0-node-17\""), 1);
  /* One edge per child link. */
  assert_int_equal(count(html, "<path class=\"edge\""), 1001);
  free(html);

  char *text = render_one(F_TEXT, r);
  assert_int_equal(count(text, " step("), 1000 + 1000 * 2);
  free(text);
  json_decref(r);
}

static void test_html_several_reports(void **state) {
  (void)state;
  json_t *docs[3] = {load_data("plain-succeeded.json"), load_data("watchdog-twice.json"),
                     load_data("cycle.json")};
  const char *src[3] = {"a.json", "b.json", "c.json"};
  char *html = render(F_HTML, docs, src, 3);
  assert_self_contained(html);
  assert_non_null(strstr(html, "<body data-reports=\"3\">"));
  assert_non_null(strstr(html, "<nav class=\"overview\">"));
  for (int i = 0; i < 3; i++) {
    char id[64];
    snprintf(id, sizeof(id), "<section class=\"report\" id=\"r%d\">", i);
    assert_non_null(strstr(html, id));
  }
  assert_non_null(strstr(html, "id=\"r1-node-0\""));
  assert_non_null(strstr(html, "id=\"r2-node-2\""));
  assert_non_null(strstr(html, "<ol class=\"watchdog\">\n<li>controller died (SIGKILL)</li>"));
  /* The watchdog's handler: a Steps subgraph, all of it in the frame. */
  assert_int_equal(count(html, "data-exit-handler=\"true\""), 4);
  free(html);
  for (int i = 0; i < 3; i++)
    json_decref(docs[i]);
}

/* ---- TAP ---------------------------------------------------------------------------- */

static const char *const all_good[] = {"cycle.json", "hostile.json", "inconclusive.json",
                                       "plain-succeeded.json", "watchdog-twice.json"};
#define N_GOOD (sizeof(all_good) / sizeof(all_good[0]))

static void load_all_good(json_t **docs) {
  for (size_t i = 0; i < N_GOOD; i++)
    docs[i] = load_data(all_good[i]);
}

/* ---- `exitprobe run`'s text: from the state, the same as from the report ---- */

/* noinline: as render() above. */
__attribute__((noinline)) static char *text_of_state(const struct run_state *st, bool color) {
  char *out = NULL;
  size_t size = 0;
  FILE *fp = open_memstream(&out, &size);
  assert_non_null(fp);
  struct text_options opts = {.color = color};
  report_print_text_state(st, &opts, fp);
  assert_int_equal(fclose(fp), 0);
  return out;
}

__attribute__((noinline)) static char *text_of_report(const struct run_state *st, bool color) {
  json_t *r = report_build(st);
  char *out = NULL;
  size_t size = 0;
  FILE *fp = open_memstream(&out, &size);
  assert_non_null(fp);
  struct text_options opts = {.color = color};
  report_print_text_json(r, &opts, fp);
  assert_int_equal(fclose(fp), 0);
  json_decref(r);
  return out;
}

static void assert_same_text(const struct run_state *st, const char *what) {
  for (int color = 0; color < 2; color++) {
    char *direct = text_of_state(st, color);
    char *via_json = text_of_report(st, color);
    if (strcmp(direct, via_json) != 0)
      fail_msg("%s (color %d): the text from the state differs from the report's:\n%s\n----\n%s",
               what, color, direct, via_json);
    free(direct);
    free(via_json);
  }
}

/* What the report keeps coarser or cleaner than the state: sub-second times,
 * bytes that are not UTF-8, a real-time signal, a handler that failed. */
static void test_run_text_is_the_report_text(void **state) {
  (void)state;
  struct run_state *st = seed_state(true);
  assert_same_text(st, "seed");
  struct wf_node *work = run_state_find_name(st, WF "[0].work");
  struct wf_node *onexit = run_state_find_name(st, WF ".onExit");
  assert_non_null(work);
  assert_non_null(onexit);
  work->started_at_us += 654321;
  work->finished_at_us += 1987654;
  static const char bad[] = "bad \xff\xfe bytes\n";
  node_append_log(work, bad, sizeof(bad) - 1);
  work->signal = SIGRTMIN + 3;
  work->oom_killed = true;
  node_set_message(onexit, "cleanup: Error \xc3(exit code 2)");
  onexit->phase = PHASE_FAILED;
  st->exit_handler.phase = PHASE_FAILED;
  st->finished_at_us += 2750000;
  struct wf_node *skipped =
      run_state_add_node(st, WF "[1].late", "late", NODE_SKIPPED, "do-work", NULL);
  node_finish(skipped, PHASE_SKIPPED, "when 'false' evaluated false");
  run_state_add_watchdog_action(st, "controller died: ran the exit handler");
  assert_same_text(st, "edges");
  run_state_free(st);
}

/* Every hand-written report, read back as a state and rendered both ways. */
static void test_run_text_of_loaded_reports(void **state) {
  (void)state;
  size_t rendered = 0;
  for (size_t i = 0; i < N_GOOD; i++) {
    json_t *doc = load_data(all_good[i]);
    struct run_state *st = NULL;
    ep_error *err = NULL;
    if (run_state_from_report(doc, &st, &err) == 0) {
      assert_same_text(st, all_good[i]);
      rendered++;
    }
    ep_error_free(&err);
    run_state_free(st);
    json_decref(doc);
  }
  assert_true(rendered >= N_GOOD - 1);
}

static bool starts(const char *line, const char *prefix) {
  return strncmp(line, prefix, strlen(prefix)) == 0;
}

static void test_tap_is_tap14(void **state) {
  (void)state;
  json_t *docs[N_GOOD];
  load_all_good(docs);
  char *tap = render(F_TAP, docs, NULL, N_GOOD);
  assert_true(starts(tap, "TAP version 14\n1..5\n"));
  assert_non_null(strstr(tap, "\nnot ok 1 - cycle\n"));
  assert_non_null(strstr(tap, "\nnot ok 2 - hostile \\# scenario \\\\ name <i>\n"));
  assert_non_null(strstr(tap, "\nok 3 - never-fires # SKIP fault did not fire"));
  assert_non_null(strstr(tap, "\nok 4 - plain-ok\n"));
  assert_non_null(strstr(tap, "\nnot ok 5 - retry-dag\n"));
  assert_non_null(strstr(tap, "\n# Subtest: hostile \\# scenario \\\\ name <i>\n    1..3\n"));
  assert_non_null(strstr(tap, "\n    not ok 2 - nodes.<img*.exitCode\n      ---\n"));
  assert_non_null(strstr(tap, "      at: \"tests/data/reports/hostile,scenario:%1.yaml:12:7\"\n"));
  assert_non_null(strstr(tap, "  message: \"the exit handler ran 2 times; Argo runs it once\"\n"));

  /* Line by line: at the top level only our own lines; YAML blocks closed;
   * nothing a step printed can pass for a test line or a bail out. */
  size_t top_points = 0;
  bool in_yaml = false;
  char *save = NULL;
  for (char *line = strtok_r(tap, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    const char *t = line + strspn(line, " ");
    if (in_yaml) {
      if (strcmp(t, "...") == 0)
        in_yaml = false;
      else
        assert_true(t > line + 1); /* indented */
      continue;
    }
    if (strcmp(t, "---") == 0) {
      in_yaml = true;
      continue;
    }
    if (line[0] != ' ') {
      bool ours = starts(line, "TAP version 14") || starts(line, "1..") ||
                  starts(line, "# Subtest: ") || starts(line, "ok ") || starts(line, "not ok ");
      if (!ours)
        fail_msg("unexpected top-level TAP line: %s", line);
      if (starts(line, "ok ") || starts(line, "not ok "))
        top_points++;
    } else {
      assert_true(starts(line, "    ok ") || starts(line, "    not ok ") ||
                  starts(line, "    1.."));
    }
    assert_null(strstr(line, "Bail out!"));
  }
  assert_false(in_yaml);
  assert_int_equal(top_points, N_GOOD);
  free(tap);
  for (size_t i = 0; i < N_GOOD; i++)
    json_decref(docs[i]);
}

/* ---- GitHub -------------------------------------------------------------------------- */

static size_t count_lines_starting(const char *text, const char *prefix) {
  size_t n = starts(text, prefix) ? 1 : 0;
  for (const char *p = strchr(text, '\n'); p != NULL; p = strchr(p + 1, '\n'))
    if (starts(p + 1, prefix))
      n++;
  return n;
}

static void test_github_annotations(void **state) {
  (void)state;
  json_t *docs[N_GOOD];
  load_all_good(docs);
  char *gh = render(F_GITHUB, docs, NULL, N_GOOD);
  assert_non_null(strstr(gh, "::error file=tests/data/reports/hostile%2Cscenario%3A%251.yaml,"
                             "line=12,col=7,title=hostile # scenario \\ name <i>%3A "
                             "nodes.<img*.exitCode::nodes.<img*.exitCode: expected 137, got"));
  assert_non_null(strstr(gh, "::warning file=tests/data/reports/never-fires.yaml,"
                             "title=never-fires%3A inconclusive::"));
  assert_non_null(strstr(gh, "::notice title=plain-ok%3A passed::"));
  free(gh);
  /* An absolute scenario path inside the workspace is made relative to it. */
  json_object_set_new(json_object_get(docs[2], "scenario"), "file",
                      json_string("/home/runner/work/repo/scenarios/x.yaml"));
  setenv("GITHUB_WORKSPACE", "/home/runner/work/repo/", 1);
  gh = render(F_GITHUB, docs, NULL, N_GOOD);
  unsetenv("GITHUB_WORKSPACE");
  assert_non_null(strstr(gh, "::warning file=scenarios/x.yaml,title=never-fires"));
  assert_int_equal(count_lines_starting(gh, "::error "), 4);
  /* Errors first. */
  assert_true(strstr(gh, "::error ") < strstr(gh, "::warning "));
  assert_true(strstr(gh, "::warning ") < strstr(gh, "::notice "));
  /* Every line is a command we wrote or an indented line inside a group:
   * the forged "::error" and "::warning" in the logs and messages never
   * start a line. */
  char *save = NULL;
  for (char *line = strtok_r(gh, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    bool ok = starts(line, "::error ") || starts(line, "::warning ") ||
              starts(line, "::notice ") || starts(line, "::group::") ||
              strcmp(line, "::endgroup::") == 0 ||
              (starts(line, "  ") && line[2 + strspn(line + 2, " ")] != ':');
    if (!ok)
      fail_msg("unexpected line: %s", line);
  }
  free(gh);
  for (size_t i = 0; i < N_GOOD; i++)
    json_decref(docs[i]);
}

static void test_github_limits(void **state) {
  (void)state;
  /* 30 failing scenarios with 2 failed expectations each, 30 passing reports. */
  enum { N = 60 };
  json_t *docs[N];
  json_t *hostile = load_data("hostile.json");
  json_t *plain = load_data("plain-succeeded.json");
  char *huge = malloc(20001);
  assert_non_null(huge);
  memset(huge, 'x', 20000);
  huge[20000] = '\0';
  for (int i = 0; i < N; i++) {
    docs[i] = json_deep_copy(i < 30 ? hostile : plain);
    if (i == 0)
      json_object_set_new(json_array_get(json_object_get(docs[i], "expectations"), 1), "path",
                          json_string(huge));
  }
  free(huge);
  char *gh = render(F_GITHUB, docs, NULL, N);
  assert_int_equal(count_lines_starting(gh, "::error "), GITHUB_ANNOTATIONS_PER_KIND);
  assert_int_equal(count_lines_starting(gh, "::notice "), GITHUB_ANNOTATIONS_PER_KIND);
  assert_non_null(strstr(gh, "::notice title=exitprobe%3A more results::71 more annotations not "
                             "shown (50 errors, 0 warnings, 21 notices)"));
  /* The last notice is the one that says what is missing. */
  char *last_notice = strstr(gh, "::notice title=exitprobe%3A more results");
  assert_null(strstr(last_notice + 1, "::notice "));
  /* No annotation line is longer than the limits allow (escaping included). */
  char *save = NULL;
  for (char *line = strtok_r(gh, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    if (!starts(line, "::error ") && !starts(line, "::notice "))
      continue;
    char *msg = strstr(line + 2, "::");
    assert_non_null(msg);
    char *title = strstr(line, "title=");
    assert_non_null(title);
    if (msg - (title + 6) > GITHUB_TITLE_MAX * 3)
      fail_msg("annotation title of %zu bytes", (size_t)(msg - (title + 6)));
    assert_true(strlen(msg + 2) <= GITHUB_MESSAGE_MAX * 3);
    size_t raw = strlen(msg + 2) - 2 * count(msg + 2, "%");
    if (raw > GITHUB_MESSAGE_MAX)
      fail_msg("annotation message of %zu bytes", raw);
  }
  assert_non_null(strstr(gh, "(cut; the JSON report has it all)"));
  free(gh);

  char *summary = report_github_summary((const json_t *const *)docs, NULL, N, GITHUB_SUMMARY_MAX);
  assert_non_null(summary);
  assert_int_equal(count_lines_starting(summary, "| "), N + 1);
  assert_non_null(strstr(summary, "### exitprobe: 60 reports \xE2\x80\x94 30 passed, 30 failed"));
  assert_non_null(strstr(summary, "hostile \\# scenario \\\\ name &lt;i&gt;"));
  free(summary);
  /* A small budget: rows are left out and counted, the size is kept. */
  summary = report_github_summary((const json_t *const *)docs, NULL, N, 1500);
  assert_non_null(summary);
  assert_true(strlen(summary) <= 1500);
  assert_non_null(strstr(summary, "more reports not listed"));
  free(summary);
  assert_null(report_github_summary((const json_t *const *)docs, NULL, N, 100));
  for (int i = 0; i < N; i++)
    json_decref(docs[i]);
  json_decref(hostile);
  json_decref(plain);
}

/* ---- the command ---------------------------------------------------------------------- */

static struct test_cmd_result run_report(const char *a1, const char *a2, const char *a3,
                                         const char *a4, const char *a5, const char *a6) {
  char *argv[] = {(char *)test_exitprobe_bin(), "report", (char *)a1, (char *)a2, (char *)a3,
                  (char *)a4, (char *)a5, (char *)a6, NULL};
  return test_run(argv);
}

static bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static void test_cli_bad_input_writes_nothing(void **state) {
  (void)state;
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char *out = xstrdup(test_path(dir, "out.html"));
  char *bad = xstrdup(test_path(test_data_dir(), "reports/bad/not-json.json"));
  struct test_cmd_result r = run_report(bad, "--format", "html", "-o", out, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "not-json.json:3:"));
  assert_false(exists(out));
  test_cmd_result_free(&r);

  /* A good report and a bad one: nothing at all is written. */
  char *good = xstrdup(data_report("plain-succeeded.json"));
  r = run_report(good, bad, "--format", "tap", "-o", out);
  assert_int_equal(r.exit_status, 2);
  assert_false(exists(out));
  test_cmd_result_free(&r);

  /* A directory with a bad report in it. */
  char *bad_dir = xstrdup(test_path(test_data_dir(), "reports/bad"));
  r = run_report(bad_dir, "--format", "junit", NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_string_equal(r.out, "");
  assert_non_null(strstr(r.err, "bad/"));
  test_cmd_result_free(&r);

  r = run_report(test_path(dir, "missing.json"), NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "missing.json"));
  test_cmd_result_free(&r);

  r = run_report(dir, NULL, NULL, NULL, NULL, NULL); /* empty directory */
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "no *.json report"));
  test_cmd_result_free(&r);

  r = run_report(good, "--format", "pdf", NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  assert_non_null(strstr(r.err, "unknown format 'pdf'"));
  test_cmd_result_free(&r);

  r = run_report(NULL, NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  test_cmd_result_free(&r);

  /* An existing output is left as it was. */
  FILE *f = fopen(out, "w");
  assert_non_null(f);
  fputs("previous\n", f);
  fclose(f);
  r = run_report(bad, "-o", out, NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 2);
  char *kept = test_read_file(out);
  assert_string_equal(kept, "previous\n");
  free(kept);
  test_cmd_result_free(&r);
  free(out);
  free(bad);
  free(good);
  free(bad_dir);
}

static void test_cli_formats_and_outputs(void **state) {
  (void)state;
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char *reports = xstrdup(test_path(test_data_dir(), "reports"));

  struct test_cmd_result r = run_report("--help", NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(strstr(r.out, "exactly once and Succeeded"));
  test_cmd_result_free(&r);

  /* A directory: every report, in name order; verdicts do not change the status. */
  r = run_report(reports, "--format", "tap", NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_true(starts(r.out, "TAP version 14\n1..5\n"));
  assert_true(strstr(r.out, "not ok 1 - cycle") < strstr(r.out, "ok 4 - plain-ok"));
  assert_non_null(strstr(r.out, "report: \""));
  test_cmd_result_free(&r);

  char *xml = xstrdup(test_path(dir, "nested/dir/junit.xml"));
  r = run_report(reports, "--format", "junit", "--output", xml, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_string_equal(r.out, "");
  test_cmd_result_free(&r);
  char *doc = test_read_file(xml);
  assert_non_null(doc);
  assert_int_equal(count(doc, "<testsuite "), 5);
  assert_int_equal(count(doc, "<failure "), 3);
  assert_int_equal(count(doc, "<skipped "), 1);
  assert_non_null(strstr(doc, "message=\"the exit handler ran 2 times; Argo runs it once\""));
  free(doc);
  if (access("/usr/bin/xmllint", X_OK) == 0) {
    char *xsd = xstrdup(test_path(test_data_dir(), "scenarios/junit-common.xsd"));
    char *argv[] = {"/usr/bin/xmllint", "--noout", "--schema", xsd, xml, NULL};
    r = test_run(argv);
    if (r.exit_status != 0)
      fail_msg("xmllint: %s", r.err);
    test_cmd_result_free(&r);
    free(xsd);
  } else {
    printf("# xmllint not installed: JUnit schema check left out\n");
  }

  /* Text: colours only when asked for (standard output is a pipe here). */
  char *plain = xstrdup(data_report("plain-succeeded.json"));
  r = run_report(plain, NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  assert_null(strchr(r.out, '\033'));
  assert_non_null(strstr(r.out, "Timeline"));
  test_cmd_result_free(&r);
  r = run_report(plain, "--color", "always", NULL, NULL, NULL);
  assert_non_null(strchr(r.out, '\033'));
  test_cmd_result_free(&r);

  /* GitHub: the summary goes to --summary, or to $GITHUB_STEP_SUMMARY. */
  char *summary = xstrdup(test_path(dir, "summary.md"));
  FILE *f = fopen(summary, "w");
  assert_non_null(f);
  fputs("earlier step output\n", f);
  fclose(f);
  setenv("GITHUB_STEP_SUMMARY", summary, 1);
  r = run_report(reports, "--format", "github", NULL, NULL, NULL);
  unsetenv("GITHUB_STEP_SUMMARY");
  assert_int_equal(r.exit_status, 0);
  assert_non_null(strstr(r.out, "::error "));
  test_cmd_result_free(&r);
  char *md = test_read_file(summary);
  assert_true(starts(md, "earlier step output\n### exitprobe: 5 reports"));
  assert_int_equal(count(md, "\n| "), 6);
  free(md);
  char *summary2 = xstrdup(test_path(dir, "summary2.md"));
  r = run_report(plain, "--format", "github", "--summary", summary2, NULL);
  assert_int_equal(r.exit_status, 0);
  test_cmd_result_free(&r);
  md = test_read_file(summary2);
  assert_non_null(md);
  assert_non_null(strstr(md, "| \xE2\x9C\x85 | plain-ok | passed |"));
  free(md);

  /* An output path that is a directory is bad input. */
  r = run_report(plain, "--format", "html", "-o", dir, NULL);
  assert_int_equal(r.exit_status, 2);
  test_cmd_result_free(&r);

  free(summary);
  free(summary2);
  free(plain);
  free(xml);
  free(reports);
}

/* Real reports: the seed workflow and the scenario library, run by the binary. */
static void test_real_reports_render(void **state) {
  (void)state;
  const char *why = test_sandbox_unavailable();
  if (why != NULL) {
    printf("# skipped: %s\n", why);
    skip();
  }
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char *seed_json = xstrdup(test_path(dir, "seed.json"));
  char *out_dir = xstrdup(test_path(dir, "scenarios"));
  char *workflow = xstrdup(test_path(test_source_root(), "scenarios/exit-handler-workflow.yaml"));
  char *library = xstrdup(test_path(test_source_root(), "scenarios"));
  char *run1[] = {(char *)test_exitprobe_bin(), "run", workflow, "--report", seed_json, "-q",
                  "--color", "never", NULL};
  struct test_cmd_result r = test_run(run1);
  assert_int_equal(r.exit_status, 1); /* the seed workflow fails on purpose */
  test_cmd_result_free(&r);
  char *run2[] = {(char *)test_exitprobe_bin(), "run", library, "--report-dir", out_dir, NULL};
  r = test_run(run2);
  assert_true(r.exit_status == 0 || r.exit_status == 1 || r.exit_status == 3);
  test_cmd_result_free(&r);

  r = run_report(seed_json, "--color", "never", NULL, NULL, NULL);
  assert_int_equal(r.exit_status, 0);
  const char *t = r.out;
  const char *steps[] = {"workflow " WF " started", "work started", "work Failed",
                         ("exit handler (cleanup) started by the controller with "
                          "{{workflow.status}}=Failed"),
                         "exit handler Succeeded", "workflow Failed", "Result: passed"};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    const char *at = strstr(t, steps[i]);
    if (at == NULL)
      fail_msg("'%s' missing or out of order in:\n%s", steps[i], r.out);
    t = at;
  }
  test_cmd_result_free(&r);

  const char *formats[] = {"text", "html", "junit", "tap", "github"};
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
    r = run_report(out_dir, seed_json, "--format", formats[i], NULL, NULL);
    if (r.exit_status != 0)
      fail_msg("--format %s: %d: %s", formats[i], r.exit_status, r.err);
    assert_true(strlen(r.out) > 100);
    test_cmd_result_free(&r);
  }
  r = run_report(seed_json, "--format", "html", NULL, NULL, NULL);
  assert_non_null(strstr(r.out, "data-name=\"work\" data-phase=\"Failed\""));
  assert_non_null(strstr(r.out, "data-exit-handler=\"true\""));
  assert_self_contained(r.out);
  test_cmd_result_free(&r);
  free(seed_json);
  free(out_dir);
  free(workflow);
  free(library);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_rejects_what_is_not_a_report),
      cmocka_unit_test(test_load_accepts_every_good_report),
      cmocka_unit_test(test_outcome_of_workflow_reports),
      cmocka_unit_test(test_timeline_orders_one_second_by_cause),
      cmocka_unit_test(test_timeline_watchdog_retries_and_skips),
      cmocka_unit_test(test_timeline_survives_a_cycle),
      cmocka_unit_test(test_text_has_tree_timeline_and_expectations),
      cmocka_unit_test(test_html_seed_graph),
      cmocka_unit_test(test_html_escapes_everything),
      cmocka_unit_test(test_html_a_thousand_nodes),
      cmocka_unit_test(test_html_several_reports),
      cmocka_unit_test(test_run_text_is_the_report_text),
      cmocka_unit_test(test_run_text_of_loaded_reports),
      cmocka_unit_test(test_tap_is_tap14),
      cmocka_unit_test(test_github_annotations),
      cmocka_unit_test(test_github_limits),
      cmocka_unit_test(test_cli_bad_input_writes_nothing),
      cmocka_unit_test(test_cli_formats_and_outputs),
      cmocka_unit_test(test_real_reports_render),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
