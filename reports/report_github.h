/* The GitHub Actions format (`exitprobe report --format github`): workflow
 * commands a step prints to annotate the run, and a Markdown job summary.
 *
 *   ::error file=F,line=L,col=C,title=T::M   a violated expectation (F is the
 *                                           scenario file, L:C the expectation),
 *                                           or a failed workflow report
 *   ::warning ...                           an inconclusive scenario
 *   ::notice ...                            a pass
 *
 * GitHub shows 10 annotations of each kind per step (50 per job) and drops
 * the rest without a word, so errors come first, and when any annotation
 * had to be left out the last notice says how many and where they are.
 * Messages are cut at 4000 bytes (the runner keeps 4096 characters), titles
 * at 255 characters; '%', CR and LF are escaped in messages, and ':' and ','
 * too in properties; a file under $GITHUB_WORKSPACE is named relative to it.
 * Each report's details follow in a ::group::. */
#ifndef EXITPROBE_REPORT_GITHUB_H
#define EXITPROBE_REPORT_GITHUB_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define GITHUB_ANNOTATIONS_PER_KIND 10
#define GITHUB_MESSAGE_MAX 4000
#define GITHUB_TITLE_MAX 255
#define GITHUB_SUMMARY_MAX (1024 * 1024) /* bytes per step */

/* sources[i] is the report's path (may be NULL). */
void report_github_annotations(const json_t *const *reports, const char *const *sources, size_t n,
                               FILE *out);

/* The job summary in Markdown: a heading, one table row per report
 * (verdict, workflow phase, exit handler ran / runs / by / what it saw), the
 * failed expectations.  At most max_bytes: rows that do not fit are counted
 * in a last line instead.  NULL when not even the heading fits.  malloc'd. */
char *report_github_summary(const json_t *const *reports, const char *const *sources, size_t n,
                            size_t max_bytes);

#endif
