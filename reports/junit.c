#include "junit.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "expectations.h"

/* Step output can be large; CI pages show the start, the report has the rest. */
enum { SYSTEM_OUT_MAX_BYTES = 64 * 1024 };

/* ---- XML text ----------------------------------------------------------- */

/* One UTF-8 sequence: its code point, or U+FFFD for a malformed one
 * (overlong, surrogate, beyond U+10FFFF, cut short).  Returns its length. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
  static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
  unsigned char c = s[0];
  size_t need;
  uint32_t v;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if ((c & 0xE0) == 0xC0) {
    need = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    need = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    need = 4;
    v = c & 0x07;
  } else {
    *cp = 0xFFFD;
    return 1;
  }
  if (need > len) {
    *cp = 0xFFFD;
    return 1;
  }
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      *cp = 0xFFFD;
      return 1;
    }
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min_for_len[need] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
    v = 0xFFFD;
  *cp = v;
  return need;
}

/* XML 1.0's Char production: anything else cannot appear even escaped. */
static bool xml_char(uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* Escaped text or attribute value.  In attributes, line breaks and tabs are
 * written as references: a parser would otherwise turn them into spaces. */
static void put_escaped(FILE *out, const char *text, size_t len, bool attribute) {
  const unsigned char *s = (const unsigned char *)(text ? text : "");
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n = utf8_next(s + i, len - i, &cp);
    if (!xml_char(cp)) {
      i += n;
      continue;
    }
    if (cp == '&')
      fputs("&amp;", out);
    else if (cp == '<')
      fputs("&lt;", out);
    else if (cp == '>')
      fputs("&gt;", out);
    else if (attribute && cp == '"')
      fputs("&quot;", out);
    else if (attribute && (cp == '\n' || cp == '\r' || cp == '\t'))
      fprintf(out, "&#%u;", (unsigned)cp);
    else if (cp == 0xFFFD)
      fputs("\xEF\xBF\xBD", out); /* also for malformed input, never its raw bytes */
    else
      fwrite(s + i, 1, n, out);
    i += n;
  }
}

static void put_attr(FILE *out, const char *name, const char *value) {
  fprintf(out, " %s=\"", name);
  put_escaped(out, value, value ? strlen(value) : 0, true);
  fputc('"', out);
}

static void put_text(FILE *out, const char *text) {
  put_escaped(out, text, text ? strlen(text) : 0, false);
}

/* ---- one scenario ------------------------------------------------------- */

struct counts {
  int failures, errors, skipped;
};

enum verdict { V_PASSED, V_FAILED, V_INCONCLUSIVE, V_ERROR };

static enum verdict verdict_of(const struct junit_case *c) {
  const char *v = c->verdict ? c->verdict : "";
  if (strcmp(v, "passed") == 0)
    return V_PASSED;
  if (strcmp(v, "failed") == 0)
    return V_FAILED;
  if (strcmp(v, "inconclusive") == 0)
    return V_INCONCLUSIVE;
  /* Anything else is the harness's problem, never a silent pass. */
  return V_ERROR;
}

/* "scenarios/work-killed.yaml" -> "scenarios.work-killed", as a class name. */
static char *classname_of(const struct junit_case *c) {
  const char *file = c->file;
  if (file == NULL || *file == '\0')
    return strdup("exitprobe");
  while (strncmp(file, "./", 2) == 0)
    file += 2;
  char *out = strdup(file);
  if (out == NULL)
    return NULL;
  size_t len = strlen(out);
  if (len > 5 && strcmp(out + len - 5, ".yaml") == 0)
    out[len - 5] = '\0';
  else if (len > 4 && strcmp(out + len - 4, ".yml") == 0)
    out[len - 4] = '\0';
  for (char *p = out; *p != '\0'; p++)
    if (*p == '/')
      *p = '.';
    else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      *p = '_';
  while (out[0] == '.')
    memmove(out, out + 1, strlen(out));
  if (out[0] == '\0') {
    free(out);
    return strdup("exitprobe");
  }
  return out;
}

static void format_seconds(char *buf, size_t size, double t) {
  if (!isfinite(t) || t < 0)
    t = 0;
  snprintf(buf, size, "%.3f", t);
}

/* Every failing expectation, one per line, with its place in the scenario. */
static char *failure_body(const struct junit_case *c) {
  char *body = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&body, &size);
  if (out == NULL)
    abort();
  size_t total = json_array_size(c->expectations), failed = 0, i;
  const json_t *r;
  json_array_foreach(c->expectations, i, r) {
    if (json_is_true(json_object_get(r, "ok")))
      continue;
    char *text = expectation_result_text(r);
    fprintf(out, "%s", text);
    if (c->file != NULL && json_integer_value(json_object_get(r, "line")) > 0)
      fprintf(out, " (%s:%lld:%lld)", c->file,
              (long long)json_integer_value(json_object_get(r, "line")),
              (long long)json_integer_value(json_object_get(r, "column")));
    fputc('\n', out);
    free(text);
    failed++;
  }
  if (failed == 0 && c->reason != NULL)
    fprintf(out, "%s\n", c->reason);
  fprintf(out, "%zu of %zu expectations failed", failed, total);
  fclose(out);
  return body;
}

static char *first_failure_text(const struct junit_case *c) {
  size_t i;
  const json_t *r;
  json_array_foreach(c->expectations, i, r) {
    if (!json_is_true(json_object_get(r, "ok")))
      return expectation_result_text(r);
  }
  return strdup(c->reason ? c->reason : "failed");
}

static void put_outcome(FILE *out, const struct junit_case *c, enum verdict v) {
  if (v == V_FAILED) {
    char *message = first_failure_text(c);
    char *body = failure_body(c);
    fputs("      <failure", out);
    put_attr(out, "message", message);
    put_attr(out, "type", "expectation");
    fputs(">", out);
    put_text(out, body);
    fputs("</failure>\n", out);
    free(message);
    free(body);
  } else if (v == V_INCONCLUSIVE) {
    fputs("      <skipped", out);
    put_attr(out, "message", c->reason ? c->reason : "inconclusive");
    fputs("/>\n", out);
  } else if (v == V_ERROR) {
    const char *why = c->reason ? c->reason : "the run did not complete";
    fputs("      <error", out);
    put_attr(out, "message", why);
    put_attr(out, "type", c->verdict ? c->verdict : "error");
    fputs(">", out);
    put_text(out, why);
    fputs("</error>\n", out);
  }
}

/* What a reader of the CI page wants first: the verdict and every check. */
static char *system_out_of(const struct junit_case *c) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  if (out == NULL)
    abort();
  fprintf(out, "verdict: %s\n", c->verdict ? c->verdict : "error");
  if (c->reason != NULL)
    fprintf(out, "reason: %s\n", c->reason);
  size_t i;
  const json_t *r;
  json_array_foreach(c->expectations, i, r) {
    char *line = expectation_result_text(r);
    fprintf(out, "%s %s\n", json_is_true(json_object_get(r, "ok")) ? "ok  " : "FAIL", line);
    free(line);
  }
  if (c->system_out != NULL)
    fprintf(out, "%s", c->system_out);
  fclose(out);
  if (size > SYSTEM_OUT_MAX_BYTES) {
    size_t cut = SYSTEM_OUT_MAX_BYTES;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
      cut--;
    snprintf(text + cut, size + 1 - cut, "\n[cut at %d bytes]\n", SYSTEM_OUT_MAX_BYTES);
  }
  return text;
}

static void put_suite(FILE *out, const struct junit_case *c, size_t id, const char *hostname,
                      time_t now) {
  enum verdict v = verdict_of(c);
  char *classname = classname_of(c);
  char seconds[64], stamp[32], idbuf[32];
  struct tm tm;
  time_t started = c->started != 0 ? c->started : now;
  if (gmtime_r(&started, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
    snprintf(stamp, sizeof(stamp), "1970-01-01T00:00:00");
  format_seconds(seconds, sizeof(seconds), c->time_seconds);
  snprintf(idbuf, sizeof(idbuf), "%zu", id);
  const char *name = c->name != NULL && c->name[0] != '\0' ? c->name : "unnamed";

  fputs("  <testsuite", out);
  put_attr(out, "name", name);
  put_attr(out, "package", classname ? classname : "exitprobe");
  put_attr(out, "id", idbuf);
  put_attr(out, "timestamp", stamp);
  put_attr(out, "hostname", hostname);
  fprintf(out, " tests=\"1\" failures=\"%d\" errors=\"%d\" skipped=\"%d\"", v == V_FAILED,
          v == V_ERROR, v == V_INCONCLUSIVE);
  put_attr(out, "time", seconds);
  fputs(">\n    <properties>\n", out);
  const struct junit_property fixed[] = {{"verdict", c->verdict ? c->verdict : "error"},
                                         {"file", c->file}};
  for (size_t i = 0; i < 2 + c->n_properties; i++) {
    const struct junit_property *p = i < 2 ? &fixed[i] : &c->properties[i - 2];
    if (p->name == NULL || p->name[0] == '\0' || p->value == NULL)
      continue;
    fputs("      <property", out);
    put_attr(out, "name", p->name);
    put_attr(out, "value", p->value);
    fputs("/>\n", out);
  }
  fputs("    </properties>\n    <testcase", out);
  put_attr(out, "name", name);
  put_attr(out, "classname", classname ? classname : "exitprobe");
  put_attr(out, "time", seconds);
  if (v == V_PASSED) {
    fputs("/>\n", out);
  } else {
    fputs(">\n", out);
    put_outcome(out, c, v);
    fputs("    </testcase>\n", out);
  }
  char *sysout = system_out_of(c);
  fputs("    <system-out>", out);
  put_text(out, sysout);
  fputs("</system-out>\n    <system-err/>\n  </testsuite>\n", out);
  free(sysout);
  free(classname);
}

char *junit_render(const struct junit_case *cases, size_t n, const char *hostname) {
  char host[256];
  if (hostname == NULL) {
    if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
      snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    hostname = host;
  }
  char *doc = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&doc, &size);
  if (out == NULL)
    abort();
  time_t now = time(NULL);
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n", out);
  for (size_t i = 0; i < n; i++)
    put_suite(out, &cases[i], i, hostname, now);
  fputs("</testsuites>\n", out);
  if (fclose(out) != 0 || doc == NULL)
    abort();
  return doc;
}

int junit_write_file(const char *path, const struct junit_case *cases, size_t n, ep_error **err) {
  char *doc = junit_render(cases, n, NULL);
  int rc = atomic_write_file(path, doc, strlen(doc), err);
  if (rc < 0 && err != NULL && *err != NULL)
    ep_error_wrap(*err, "writing JUnit XML");
  free(doc);
  return rc;
}
