/* `exitprobe report REPORT.json|DIR... --format FORMAT`: render saved JSON
 * reports for people (text, html) and for CI (junit, tap, github). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "atomic_file.h"
#include "cli.h"
#include "error.h"
#include "junit.h"
#include "matrix_summary.h"
#include "report_github.h"
#include "report_html.h"
#include "report_load.h"
#include "report_tap.h"
#include "report_text_json.h"
#include "state_load.h"

enum format { FORMAT_TEXT, FORMAT_HTML, FORMAT_JUNIT, FORMAT_TAP, FORMAT_GITHUB };

struct report_args {
  const char **paths;
  size_t n_paths;
  enum format format;
  const char *output;
  const char *summary;
  int color; /* -1 auto, 0 never, 1 always */
  bool format_given;
  bool merge;        /* --merge: the inputs are a matrix's shard summaries */
  bool require_once; /* with --merge, as for the matrix */
};

/* The reports to render, in order, and where each came from. */
struct inputs {
  char **paths;
  json_t **docs;
  size_t n;
};

static void print_report_usage(FILE *out) {
  fputs("Usage: exitprobe report [OPTIONS] REPORT.json|DIR...\n"
        "       exitprobe report --merge [--require-once] SUMMARY.json|DIR... -o OUT.json\n"
        "\n"
        "Render JSON reports written by 'exitprobe run'.  A directory stands for every\n"
        "*.json file directly in it, in byte order of their names.\n"
        "\n"
        "Options:\n"
        "      --format FORMAT  text (default), html, junit, tap or github\n"
        "  -o, --output FILE    write to FILE instead of standard output; the file is\n"
        "                       replaced whole or not at all\n"
        "      --summary FILE   also append a Markdown job summary to FILE (with\n"
        "                       --format github, $GITHUB_STEP_SUMMARY when set)\n"
        "      --color WHEN     text: auto (default), always or never; NO_COLOR is honoured\n"
        "      --merge          the inputs are the summary.json files (or their\n"
        "                       directories) of 'exitprobe matrix --shard I/N' for\n"
        "                       I = 1..N: check that they are the shards of one matrix,\n"
        "                       each once, none missing, write the whole matrix's\n"
        "                       summary to -o and print the matrix's table\n"
        "      --require-once   with --merge: exit 1 as 'exitprobe matrix --require-once'\n"
        "  -h, --help           show this help\n"
        "\n"
        "Formats:\n"
        "  text    the node tree and exit handler output 'exitprobe run' prints, then a\n"
        "          timeline (steps started and ended, faults fired, the exit handler\n"
        "          started with its {{workflow.status}}), the faults and expectations\n"
        "  html    one self-contained page (nothing is fetched): the workflow graph\n"
        "          as Argo's UI draws it, the exit handler apart, the timeline,\n"
        "          expectations, faults and every node's details and log\n"
        "  junit   JUnit XML, one testsuite with one testcase per report\n"
        "  tap     TAP version 14, one test point per report, a scenario's\n"
        "          expectations as a subtest\n"
        "  github  GitHub Actions annotations (::error for a violated expectation at\n"
        "          its line in the scenario, ::warning for inconclusive, ::notice for\n"
        "          a pass; 10 of each kind per step, the rest counted in a last notice)\n"
        "\n"
        "Pass or fail: a scenario report carries its verdict (passed, failed,\n"
        "inconclusive = skipped).  A plain workflow report answers the question the\n"
        "tool asks: with an exit handler declared it passes when the handler ran\n"
        "exactly once and Succeeded, whatever the workflow's phase (the seed workflow\n"
        "fails on purpose and passes); without one it passes when the workflow\n"
        "Succeeded.\n"
        "\n"
        "Exit status: 0 rendered (whatever the verdicts); 2 bad input or usage (a file\n"
        "unreadable, not JSON or not an exitprobe report; nothing is written); 70\n"
        "internal error.  With --merge, the matrix's statuses (0, 1, 3, 70) for the\n"
        "merged cells, and 2 (nothing written) for summaries of different matrices,\n"
        "a shard given twice or a shard missing.\n",
        out);
}

static int parse_format(const char *name, enum format *out) {
  static const struct {
    const char *name;
    enum format format;
  } formats[] = {{"text", FORMAT_TEXT}, {"html", FORMAT_HTML}, {"junit", FORMAT_JUNIT},
                 {"tap", FORMAT_TAP},   {"github", FORMAT_GITHUB}};
  for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
    if (strcmp(name, formats[i].name) == 0) {
      *out = formats[i].format;
      return 0;
    }
  return -1;
}

/* Returns 1 when --help was asked for. */
static int parse_args(int argc, char **argv, struct report_args *a, ep_error **err) {
  enum { OPT_FORMAT = 256, OPT_SUMMARY, OPT_COLOR, OPT_MERGE, OPT_REQUIRE_ONCE };
  static const struct option longopts[] = {
      {"format", required_argument, NULL, OPT_FORMAT},
      {"output", required_argument, NULL, 'o'},
      {"summary", required_argument, NULL, OPT_SUMMARY},
      {"color", required_argument, NULL, OPT_COLOR},
      {"merge", no_argument, NULL, OPT_MERGE},
      {"require-once", no_argument, NULL, OPT_REQUIRE_ONCE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  a->format = FORMAT_TEXT;
  a->color = -1;
  optind = 1;
  opterr = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_FORMAT:
      if (parse_format(optarg, &a->format) < 0)
        return ep_error_set(err, EP_EXIT_USAGE,
                            "unknown format '%s' (expected text, html, junit, tap or github)",
                            optarg);
      a->format_given = true;
      break;
    case OPT_MERGE:
      a->merge = true;
      break;
    case OPT_REQUIRE_ONCE:
      a->require_once = true;
      break;
    case 'o':
      a->output = optarg;
      break;
    case OPT_SUMMARY:
      a->summary = optarg;
      break;
    case OPT_COLOR:
      if (cli_parse_color(optarg, &a->color, err) < 0)
        return -1;
      break;
    case 'h':
      return 1;
    case ':':
      return ep_error_set(err, EP_EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
    default:
      return ep_error_set(err, EP_EXIT_USAGE, "unknown option '%s'", argv[optind - 1]);
    }
  }
  for (int i = optind; i < argc; i++)
    if (cli_push(&a->paths, &a->n_paths, argv[i]) < 0)
      return ep_error_set(err, EP_EXIT_INTERNAL, "out of memory");
  if (a->n_paths == 0)
    return ep_error_set(err, EP_EXIT_USAGE, "no report given: exitprobe report REPORT.json|DIR");
  if (a->merge && (a->format_given || a->summary != NULL))
    return ep_error_set(err, EP_EXIT_USAGE,
                        "--merge writes a matrix summary: --format and --summary do not apply");
  if (a->merge && a->output == NULL)
    return ep_error_set(err, EP_EXIT_USAGE, "--merge needs -o OUT.json for the merged summary");
  if (a->require_once && !a->merge)
    return ep_error_set(err, EP_EXIT_USAGE, "--require-once only applies with --merge");
  return 0;
}

/* ---- the inputs ------------------------------------------------------------ */

static void inputs_add(struct inputs *in, char *path) {
  char **grown = realloc(in->paths, (in->n + 1) * sizeof(char *));
  if (grown == NULL)
    abort();
  in->paths = grown;
  in->paths[in->n++] = path;
}

static void inputs_free(struct inputs *in) {
  for (size_t i = 0; i < in->n; i++) {
    free(in->paths[i]);
    if (in->docs != NULL)
      json_decref(in->docs[i]);
  }
  free(in->paths);
  free(in->docs);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_json_name(const char *name) {
  size_t len = strlen(name);
  return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* In a folder, other JSON files (a matrix's summary.json, say) are not
 * reports and are passed over; a file named on the command line is checked
 * strictly instead. */
static bool looks_like_report(const char *path) {
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  const char *kind = json_string_value(json_object_get(root, "kind"));
  bool report = kind == NULL || strcmp(kind, "Report") == 0;
  json_decref(root);
  return report;
}

static int add_directory(struct inputs *in, const char *dir, ep_error **err) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    int e = errno;
    return ep_error_set_errno(err, EP_EXIT_USAGE, e, "cannot read directory %s", dir);
  }
  size_t first = in->n;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (!is_json_name(ent->d_name))
      continue;
    char *path = NULL;
    const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
    if (asprintf(&path, "%s%s%s", dir, sep, ent->d_name) < 0)
      abort();
    struct stat sb;
    if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode) || !looks_like_report(path)) {
      free(path);
      continue;
    }
    inputs_add(in, path);
  }
  closedir(d);
  if (in->n == first)
    return ep_error_at(err, EP_EXIT_USAGE, dir, 0, 0, "no *.json report in this directory");
  qsort(in->paths + first, in->n - first, sizeof(char *), cmp_str);
  return 0;
}

/* Every report is read and checked before anything is written: bad input
 * writes nothing. */
static int load_inputs(const struct report_args *a, struct inputs *in, ep_error **err) {
  for (size_t i = 0; i < a->n_paths; i++) {
    struct stat sb;
    if (stat(a->paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      if (add_directory(in, a->paths[i], err) < 0)
        return -1;
      continue;
    }
    char *path = strdup(a->paths[i]);
    if (path == NULL)
      abort();
    inputs_add(in, path);
  }
  in->docs = calloc(in->n + 1, sizeof(json_t *));
  if (in->docs == NULL)
    abort();
  for (size_t i = 0; i < in->n; i++)
    if (report_load_file(in->paths[i], &in->docs[i], err) < 0)
      return -1;
  return 0;
}

/* ---- rendering -------------------------------------------------------------- */

static double seconds_between(const json_t *obj) {
  int64_t a = parse_rfc3339_us(json_string_value(json_object_get(obj, "startedAt")));
  int64_t b = parse_rfc3339_us(json_string_value(json_object_get(obj, "finishedAt")));
  if (a == 0 || b < a)
    return 0;
  return (double)(b - a) / 1e6;
}

struct junit_extra {
  char *system_out;
  char *runs;
  char *seed;
  struct junit_property props[6];
};

static void render_junit(const struct inputs *in, FILE *out) {
  struct junit_case *cases = calloc(in->n + 1, sizeof(*cases));
  struct report_outcome *outcomes = calloc(in->n + 1, sizeof(*outcomes));
  struct junit_extra *extra = calloc(in->n + 1, sizeof(*extra));
  if (cases == NULL || outcomes == NULL || extra == NULL)
    abort();
  for (size_t i = 0; i < in->n; i++) {
    const json_t *r = in->docs[i];
    const json_t *status = json_object_get(r, "status");
    const json_t *eh = json_object_get(r, "exitHandler");
    const json_t *results = json_object_get(r, "expectations");
    struct junit_extra *x = &extra[i];
    report_outcome_of(r, &outcomes[i]);
    int64_t started = parse_rfc3339_us(json_string_value(json_object_get(status, "startedAt")));
    const char *phase = json_string_value(json_object_get(status, "phase"));
    const char *seen = json_string_value(json_object_get(eh, "workflowStatus"));
    if (asprintf(&x->system_out, "workflow %s; exit handler %s%s%s\nreport: %s\n",
                 phase ? phase : "?",
                 !json_is_true(json_object_get(eh, "declared")) ? "none declared"
                 : json_is_true(json_object_get(eh, "ran"))     ? "ran"
                                                                : "did not run",
                 seen ? ", saw {{workflow.status}}=" : "", seen ? seen : "", in->paths[i]) < 0 ||
        asprintf(&x->runs, "%lld", (long long)json_integer_value(json_object_get(eh, "runs"))) < 0)
      abort();
    const json_t *seed = json_object_get(json_object_get(r, "run"), "seed");
    if (json_is_integer(seed) && asprintf(&x->seed, "%lld", (long long)json_integer_value(seed)) < 0)
      abort();
    size_t np = 0;
    x->props[np++] = (struct junit_property){
        "workflow", json_string_value(json_object_get(json_object_get(r, "workflow"), "name"))};
    x->props[np++] = (struct junit_property){"workflowPhase", phase};
    x->props[np++] = (struct junit_property){"exitHandlerRuns", x->runs};
    x->props[np++] = (struct junit_property){"exitHandlerSaw", seen};
    x->props[np++] = (struct junit_property){"seed", x->seed};
    x->props[np++] = (struct junit_property){"report", in->paths[i]};
    cases[i] = (struct junit_case){
        .name = outcomes[i].name,
        .file = outcomes[i].file,
        .verdict = outcomes[i].verdict,
        .time_seconds = seconds_between(status),
        .started = (time_t)(started / 1000000),
        .expectations = json_is_array(results) ? results : NULL,
        .reason = outcomes[i].reason,
        .system_out = x->system_out,
        .properties = x->props,
        .n_properties = np,
    };
  }
  char *doc = junit_render(cases, in->n, NULL);
  fputs(doc, out);
  free(doc);
  for (size_t i = 0; i < in->n; i++) {
    report_outcome_free(&outcomes[i]);
    free(extra[i].system_out);
    free(extra[i].runs);
    free(extra[i].seed);
  }
  free(extra);
  free(outcomes);
  free(cases);
}

static void render_text(const struct inputs *in, bool color, FILE *out) {
  struct text_options opts = {.color = color};
  for (size_t i = 0; i < in->n; i++) {
    if (in->n > 1)
      fprintf(out, "%s==> %s <==\n", i > 0 ? "\n" : "", in->paths[i]);
    report_print_text_json(in->docs[i], &opts, out);
  }
}

static char *render(const struct report_args *a, const struct inputs *in, size_t *len) {
  char *doc = NULL;
  FILE *out = open_memstream(&doc, len);
  if (out == NULL)
    abort();
  const json_t *const *docs = (const json_t *const *)in->docs;
  const char *const *paths = (const char *const *)in->paths;
  switch (a->format) {
  case FORMAT_TEXT:
    render_text(in, a->output == NULL ? cli_want_color(a->color) : a->color == 1, out);
    break;
  case FORMAT_HTML:
    report_html_render(docs, paths, in->n, out);
    break;
  case FORMAT_JUNIT:
    render_junit(in, out);
    break;
  case FORMAT_TAP:
    report_tap_render(docs, paths, in->n, out);
    break;
  case FORMAT_GITHUB:
    report_github_annotations(docs, paths, in->n, out);
    break;
  }
  if (fclose(out) != 0 || doc == NULL)
    abort();
  return doc;
}

static int write_stdout(const char *doc, size_t len, ep_error **err) {
  if (fwrite(doc, 1, len, stdout) != len || fflush(stdout) != 0) {
    int e = errno;
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "cannot write to standard output");
  }
  return 0;
}

static bool usage_errno(int e) {
  return e == EACCES || e == EPERM || e == EROFS || e == ENOTDIR || e == EISDIR || e == ENOENT;
}

/* Appended in one write: a summary is shared by every command of the step. */
static int append_summary(const char *path, const struct inputs *in, ep_error **err) {
  struct stat sb;
  size_t have = stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0;
  size_t room = have < GITHUB_SUMMARY_MAX ? GITHUB_SUMMARY_MAX - have : 0;
  char *text = report_github_summary((const json_t *const *)in->docs,
                                     (const char *const *)in->paths, in->n, room);
  if (text == NULL) {
    fprintf(stderr, "exitprobe: %s: no room left in the job summary (%d bytes per step)\n", path,
            GITHUB_SUMMARY_MAX);
    return 0;
  }
  int rc = 0;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  size_t len = strlen(text), done = 0;
  while (fd >= 0 && done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    done += (size_t)w;
  }
  if (fd < 0 || done < len) {
    int e = errno;
    rc = ep_error_set_errno(err, usage_errno(e) ? EP_EXIT_USAGE : EP_EXIT_INTERNAL, e,
                            "cannot append the job summary to %s", path);
  }
  if (fd >= 0 && close(fd) < 0 && rc == 0) {
    int e = errno;
    rc = ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "cannot append the job summary to %s",
                            path);
  }
  free(text);
  return rc;
}

int cli_report(int argc, char **argv) {
  ep_error *err = NULL;
  struct report_args a = {0};
  struct inputs in = {0};
  char *doc = NULL;
  int status = EP_EXIT_OK;
  int p = parse_args(argc, argv, &a, &err);
  if (p == 1) {
    print_report_usage(stdout);
    goto out;
  }
  if (p == 0 && a.merge) {
    status = matrix_merge_summaries(a.paths, a.n_paths, a.output, a.require_once, a.color);
    goto out;
  }
  if (p < 0 || load_inputs(&a, &in, &err) < 0)
    goto fail;
  size_t len = 0;
  doc = render(&a, &in, &len);
  if (a.output != NULL ? atomic_write_file(a.output, doc, len, &err) < 0
                       : write_stdout(doc, len, &err) < 0)
    goto fail;
  const char *summary = a.summary;
  if (summary == NULL && a.format == FORMAT_GITHUB) {
    const char *env = getenv("GITHUB_STEP_SUMMARY");
    summary = env != NULL && env[0] != '\0' ? env : NULL;
  }
  if (summary != NULL && append_summary(summary, &in, &err) < 0)
    goto fail;
  goto out;
fail:
  ep_error_print(err, stderr);
  if (err != NULL && err->status == EP_EXIT_USAGE && p < 0)
    fputs("Run 'exitprobe report --help' for the options.\n", stderr);
  status = err != NULL ? err->status : EP_EXIT_INTERNAL;
out:
  free(doc);
  inputs_free(&in);
  free(a.paths);
  ep_error_free(&err);
  return status;
}
