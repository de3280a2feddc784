#include "report_text_json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "expectations.h"
#include "report_json.h"
#include "report_load.h"
#include "report_timeline.h"
#include "../runner/state_load.h"

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_RED "\033[31m"
#define ANSI_GREEN "\033[32m"
#define ANSI_YELLOW "\033[33m"

static const char *str_at(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static const char *verdict_color(const char *verdict) {
  if (strcmp(verdict, "passed") == 0)
    return ANSI_GREEN;
  if (strcmp(verdict, "inconclusive") == 0)
    return ANSI_YELLOW;
  return ANSI_RED;
}

static void put_verdict(FILE *out, bool color, const char *verdict) {
  if (color)
    fprintf(out, "%s%s%s%s", ANSI_BOLD, verdict_color(verdict), verdict, ANSI_RESET);
  else
    fputs(verdict, out);
}

/* Report text is the reader's, but one field must not break the layout. */
static void put_oneline(FILE *out, const char *s) {
  for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c != '\0'; c++)
    fputc((*c < 0x20 || *c == 0x7f) ? ' ' : *c, out);
}

static void print_scenario_header(const json_t *report, const struct report_outcome *o,
                                  bool color, FILE *out) {
  fputs("Scenario ", out);
  put_oneline(out, o->name);
  if (o->file != NULL) {
    fputs(" (", out);
    put_oneline(out, o->file);
    fputc(')', out);
  }
  fputs(": ", out);
  put_verdict(out, color, o->verdict);
  fputc('\n', out);
  const json_t *seed = json_object_get(json_object_get(report, "run"), "seed");
  if (json_is_integer(seed))
    fprintf(out, "  seed: %lld\n", (long long)json_integer_value(seed));
  fputc('\n', out);
}

/* nodes_st: the run state holding the report's nodes, NULL when the report
 * object holds them. */
static const char *node_label(const json_t *report, const struct run_state *nodes_st,
                              const char *id) {
  if (nodes_st == NULL) {
    const json_t *nodes = json_object_get(json_object_get(report, "status"), "nodes");
    return str_at(json_object_get(nodes, id ? id : ""), "displayName");
  }
  const struct wf_node *n = run_state_find_id(nodes_st, id);
  return n == NULL ? NULL : n->display_name != NULL ? n->display_name : n->name;
}

static void print_faults(const json_t *report, const struct run_state *nodes_st, FILE *out) {
  const json_t *faults = json_object_get(report, "faults");
  if (json_array_size(faults) == 0)
    return;
  fputs("\nFaults:\n", out);
  size_t i;
  const json_t *f;
  json_array_foreach(faults, i, f) {
    bool fired = json_is_true(json_object_get(f, "fired"));
    fprintf(out, "  %-9s  ", fired ? "fired" : "NOT FIRED");
    put_oneline(out, str_at(f, "asked") ? str_at(f, "asked") : str_at(f, "action"));
    const char *node = str_at(f, "node");
    const char *where = node_label(report, nodes_st, node);
    if (fired && (where != NULL || node != NULL)) {
      fputs(" on ", out);
      put_oneline(out, where != NULL ? where : node);
    }
    if (json_is_number(json_object_get(f, "firedAfterSeconds")))
      fprintf(out, " at +%.3fs", json_number_value(json_object_get(f, "firedAfterSeconds")));
    if (str_at(f, "detail") != NULL) {
      fputs(" (", out);
      put_oneline(out, str_at(f, "detail"));
      fputc(')', out);
    }
    fputc('\n', out);
  }
}

/* The idempotency check: its verdict and, for each file the second run of
 * the exit handler touched, what it was and what it became. */
static void print_idempotency(const json_t *report, FILE *out) {
  const json_t *idem = json_object_get(report, "idempotency");
  if (!json_is_object(idem))
    return;
  bool conclusive = json_is_true(json_object_get(idem, "conclusive"));
  bool ok = json_is_true(json_object_get(idem, "idempotent"));
  fprintf(out, "\nIdempotency: %s\n  ",
          !conclusive ? "INCONCLUSIVE" : ok ? "idempotent" : "NOT IDEMPOTENT");
  put_oneline(out, str_at(idem, "reason") ? str_at(idem, "reason") : "");
  fputc('\n', out);
  size_t i;
  const json_t *c;
  json_array_foreach(json_object_get(idem, "changes"), i, c) {
    const char *change = str_at(c, "change");
    fprintf(out, "  %-8s ", change ? change : "?");
    put_oneline(out, str_at(c, "path") ? str_at(c, "path") : "?");
    fputc('\n', out);
    if (str_at(c, "before") != NULL) {
      fputs("    before: ", out);
      put_oneline(out, str_at(c, "before"));
      fputc('\n', out);
    }
    if (str_at(c, "after") != NULL) {
      fputs("    after:  ", out);
      put_oneline(out, str_at(c, "after"));
      fputc('\n', out);
    }
  }
  const json_t *probe = json_object_get(idem, "stateProbe");
  if (json_is_true(json_object_get(probe, "changed"))) {
    fputs("  stateProbe output changed:\n    after one run:  ", out);
    put_oneline(out, str_at(probe, "before") ? str_at(probe, "before") : "");
    fputs("\n    after two runs: ", out);
    put_oneline(out, str_at(probe, "after") ? str_at(probe, "after") : "");
    fputc('\n', out);
  }
}

/* What the watchdog did when the controller died, in its order (no times). */
static void print_watchdog(const json_t *report, FILE *out) {
  const json_t *actions = json_object_get(json_object_get(report, "watchdog"), "actions");
  if (json_array_size(actions) == 0)
    return;
  fputs("\nWatchdog:\n", out);
  size_t i;
  const json_t *a;
  json_array_foreach(actions, i, a) {
    fputs("  ", out);
    put_oneline(out, json_string_value(a));
    fputc('\n', out);
  }
}

static void print_expectations(const json_t *report, const struct report_outcome *o, bool color,
                               FILE *out) {
  const json_t *results = json_object_get(report, "expectations");
  if (json_array_size(results) > 0) {
    fputs("\nExpectations:\n", out);
    size_t i;
    const json_t *r;
    json_array_foreach(results, i, r) {
      bool ok = json_is_true(json_object_get(r, "ok"));
      const char *word = ok ? "ok  " : "FAIL";
      if (color)
        fprintf(out, "  %s%s%s  ", ok ? ANSI_GREEN : ANSI_RED, word, ANSI_RESET);
      else
        fprintf(out, "  %s  ", word);
      char *text = expectation_result_text(r);
      put_oneline(out, text);
      free(text);
      json_int_t line = json_integer_value(json_object_get(r, "line"));
      if (line > 0)
        fprintf(out, "  (%s:%lld:%lld)", o->file ? o->file : "line", (long long)line,
                (long long)json_integer_value(json_object_get(r, "column")));
      fputc('\n', out);
    }
  }
  fputs(o->scenario ? "\nVerdict: " : "\nResult: ", out);
  put_verdict(out, color, o->verdict);
  if (o->reason != NULL) {
    fputs(": ", out);
    put_oneline(out, o->reason);
  }
  fputc('\n', out);
}

/* The one renderer of both entry points: tree is the node tree to print
 * (NULL: no_tree says why), nodes_st the state holding the report's nodes
 * (NULL: the report object holds them), tl the timeline made from them. */
static void print_report(const json_t *report, const struct report_outcome *o,
                         const struct run_state *tree, const char *no_tree,
                         const struct run_state *nodes_st, const struct timeline *tl,
                         const struct text_options *opts, FILE *out) {
  bool color = opts != NULL && opts->color;
  if (o->scenario)
    print_scenario_header(report, o, color, out);
  if (tree != NULL)
    report_print_text(tree, opts, out);
  else /* The timeline and the checks below are still worth reading. */
    fprintf(out, "(no node tree: %s)\n", no_tree);
  fputc('\n', out);
  timeline_print_text(tl, color, out);
  print_watchdog(report, out);
  print_faults(report, nodes_st, out);
  print_idempotency(report, out);
  print_expectations(report, o, color, out);
  fflush(out);
}

void report_print_text_json(const json_t *report, const struct text_options *opts, FILE *out) {
  struct report_outcome o;
  report_outcome_of(report, &o);
  struct run_state *st = NULL;
  ep_error *err = NULL;
  const char *no_tree = NULL;
  if (run_state_from_report(report, &st, &err) < 0)
    no_tree = err != NULL ? err->message : "unreadable nodes";
  struct timeline tl;
  timeline_build(report, &tl);
  print_report(report, &o, st, no_tree, NULL, &tl, opts, out);
  timeline_free(&tl);
  run_state_free(st);
  ep_error_free(&err);
  report_outcome_free(&o);
}

/* The run state a report of st describes, as `exitprobe report` reads it
 * back (whole-second times, text made valid UTF-8), made one node at a time:
 * the report's head is small, a tree of every node is not. */
static struct run_state *report_view(const struct run_state *st, const json_t *head) {
  struct run_state *view = NULL;
  ep_error *err = NULL;
  if (run_state_from_report(head, &view, &err) < 0)
    goto fail;
  for (size_t i = 0; i < st->n_nodes; i++) {
    json_t *node = report_node_json(st, st->nodes[i]);
    int r = run_state_add_report_node(view, st->nodes[i]->id, node, &err);
    json_decref(node);
    if (r < 0)
      goto fail;
  }
  return view;
fail:
  /* report_json.c writes every node this reader accepts. */
  fprintf(stderr, "exitprobe: internal error: %s\n", err != NULL ? err->message : "report view");
  abort();
}

void report_print_text_state(const struct run_state *st, const struct text_options *opts,
                             FILE *out) {
  json_t *head = report_build_head(st);
  struct run_state *view = report_view(st, head);
  struct report_outcome o;
  report_outcome_of_run(head, view, &o);
  struct timeline tl;
  timeline_build_run(head, view, &tl);
  print_report(head, &o, view, NULL, view, &tl, opts, out);
  timeline_free(&tl);
  report_outcome_free(&o);
  run_state_free(view);
  json_decref(head);
}
