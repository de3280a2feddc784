/* Tests of the crash-safe ledger: round trips, torn tails cut at every byte
 * of the last record, every bit of a middle record and of the file header
 * refused with the right offset, sequence rules, size limits, injected and
 * real I/O failures (RLIMIT_FSIZE, a full tmpfs), a crash at every durable
 * operation, and random SIGKILLs of a writer that reports what it was told
 * is durable.  Also prints appends per second with and without fdatasync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "test_helpers.h"

/* ---- helpers ------------------------------------------------------------- */

static const char *fresh_ledger_path(void) {
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  return test_path(dir, "ledger.log");
}

static unsigned char *read_bytes(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  unsigned char *buf = malloc((size_t)st.st_size + 1);
  assert_non_null(buf);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    assert_true(n > 0);
    got += (size_t)n;
  }
  close(fd);
  *len = got;
  return buf;
}

static void write_bytes(const char *path, const unsigned char *buf, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    assert_true(n > 0);
    done += (size_t)n;
  }
  close(fd);
}

static void append_bytes(const char *path, const unsigned char *buf, size_t len) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, buf, len), (ssize_t)len);
  close(fd);
}

static off_t file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0)
    return -1;
  return st.st_size;
}

static struct ledger *open_ok(const char *path, unsigned flags, struct ledger_recovery *rep) {
  struct ledger_options o = {.flags = flags};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  if (ledger_open(path, &o, &l, rep, &err) < 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
    fail_msg("ledger_open(%s) failed", path);
  }
  return l;
}

/* Opening must fail; returns the error (caller frees). */
static ep_error *open_fails(const char *path, unsigned flags, struct ledger_recovery *rep) {
  struct ledger_options o = {.flags = flags};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  int rc = ledger_open(path, &o, &l, rep, &err);
  if (rc == 0) {
    ledger_close(&l);
    fail_msg("ledger_open(%s) succeeded but should have failed", path);
  }
  assert_null(l);
  assert_non_null(err);
  return err;
}

static uint64_t append_ok(struct ledger *l, uint16_t type, const char *text, unsigned flags) {
  ep_error *err = NULL;
  uint64_t seq = 0;
  if (ledger_append(l, type, text, strlen(text), flags, &seq, &err) < 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
    fail_msg("ledger_append failed");
  }
  return seq;
}

struct collected {
  size_t n, cap;
  struct ledger_record *recs; /* payload copied, NUL-terminated */
};

static int collect_cb(void *ctx, const struct ledger_record *rec, ep_error **err) {
  (void)err;
  struct collected *c = ctx;
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 64;
    c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
    assert_non_null(c->recs);
  }
  char *copy = malloc(rec->len + 1);
  assert_non_null(copy);
  memcpy(copy, rec->payload, rec->len);
  copy[rec->len] = '\0';
  c->recs[c->n] = *rec;
  c->recs[c->n].payload = copy;
  c->n++;
  return 0;
}

static struct collected collect(struct ledger *l) {
  struct collected c = {0};
  ep_error *err = NULL;
  if (ledger_foreach(l, collect_cb, &c, &err) < 0) {
    ep_error_print(err, stderr);
    ep_error_free(&err);
    fail_msg("ledger_foreach failed");
  }
  return c;
}

static void collected_free(struct collected *c) {
  for (size_t i = 0; i < c->n; i++)
    free((void *)c->recs[i].payload);
  free(c->recs);
  *c = (struct collected){0};
}

/* Byte offsets of each record, read back through foreach. */
static struct collected build_ledger(const char *path, size_t n) {
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  for (size_t i = 1; i <= n; i++) {
    char text[128];
    snprintf(text, sizeof(text), "{\"node\":\"step-%zu\",\"phase\":\"Running\",\"i\":%zu}", i, i);
    assert_int_equal(append_ok(l, LEDGER_T_NODE_STARTED, text, LEDGER_SYNC), i);
  }
  struct collected c = collect(l);
  ledger_close(&l);
  return c;
}

static void put_le(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* A record made by hand from the layout in docs/LEDGER.md: proves the
 * documentation and lets tests forge records a correct writer never makes. */
static size_t forge_record(unsigned char *out, uint32_t salt, uint16_t type, uint64_t seq,
                           uint32_t epoch, const char *payload) {
  size_t len = strlen(payload);
  memcpy(out, "EPRC", 4);
  put_le(out + 4, type, 2);
  put_le(out + 6, 0, 2);
  put_le(out + 8, len, 4);
  put_le(out + 12, epoch, 4);
  put_le(out + 16, seq, 8);
  put_le(out + 24, salt, 4);
  memcpy(out + 32, payload, len);
  uint32_t crc = ledger_crc32c(0, out, 28);
  crc = ledger_crc32c(crc, out + 32, len);
  put_le(out + 28, crc, 4);
  return 32 + len;
}

static uint32_t file_salt(const char *path) {
  size_t len;
  unsigned char *buf = read_bytes(path, &len);
  assert_true(len >= 32);
  uint32_t salt = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 | (uint32_t)buf[14] << 16 |
                  (uint32_t)buf[15] << 24;
  free(buf);
  return salt;
}

static int count_dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

static char *dir_part(const char *path) {
  char *d = strdup(path);
  assert_non_null(d);
  *strrchr(d, '/') = '\0';
  return d;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- CRC and names ----------------------------------------------------------- */

static void test_crc32c_vectors(void **state) {
  (void)state;
  /* The CRC-32C check value and the RFC 3720 (iSCSI) B.4 examples. */
  assert_int_equal(ledger_crc32c(0, "123456789", 9), 0xe3069283u);
  assert_int_equal(ledger_crc32c(0, "", 0), 0);
  unsigned char b[32];
  memset(b, 0, sizeof(b));
  assert_int_equal(ledger_crc32c(0, b, 32), 0x8a9136aau);
  memset(b, 0xff, sizeof(b));
  assert_int_equal(ledger_crc32c(0, b, 32), 0x62a8ab43u);
  for (int i = 0; i < 32; i++)
    b[i] = (unsigned char)i;
  assert_int_equal(ledger_crc32c(0, b, 32), 0x46dd794eu);
  /* Incremental equals one shot. */
  assert_int_equal(ledger_crc32c(ledger_crc32c(0, b, 13), b + 13, 19), 0x46dd794eu);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(ledger_type_name(LEDGER_T_NODE_STARTED), "node-started");
  assert_string_equal(ledger_type_name(LEDGER_T_RUN_FINISHED), "run-finished");
  assert_string_equal(ledger_type_name(LEDGER_T_RECOVERED), "recovered");
  assert_null(ledger_type_name(0));
  assert_null(ledger_type_name(999));
  for (uint16_t t = 1; t <= LEDGER_T_RUN_FINISHED; t++)
    assert_non_null(ledger_type_name(t));
  assert_string_equal(ledger_op_name(LEDGER_OP_APPEND_SYNC), "append.sync");
  assert_string_equal(ledger_op_name(LEDGER_OP_CREATE_LINK), "create.link");
}

/* ---- round trips ------------------------------------------------------------- */

static void test_round_trip_many(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  enum { N = 2000 };
  struct ledger_recovery rep;
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, &rep);
  assert_true(rep.created);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, 0);
  assert_int_equal(ledger_size(l), LEDGER_FILE_HEADER_SIZE);

  for (unsigned i = 1; i <= N; i++) {
    char text[256];
    /* Varying lengths, including empty payloads. */
    int n = snprintf(text, sizeof(text), "{\"i\":%u,\"pad\":\"%.*s\"}", i, (int)(i % 97),
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    if (i % 500 == 0)
      n = 0;
    ledger_set_epoch(l, i / 700);
    ep_error *err = NULL;
    uint64_t seq = 0;
    uint16_t type = (uint16_t)(1 + i % 20);
    assert_int_equal(ledger_append(l, type, text, (size_t)n, i % 10 == 0 ? LEDGER_SYNC : 0,
                                   &seq, &err),
                     0);
    assert_int_equal(seq, i);
  }
  assert_int_equal(ledger_last_seq(l), N);
  assert_true(ledger_synced_seq(l) == 2000 || ledger_synced_seq(l) == 1990);
  ep_error *err = NULL;
  assert_int_equal(ledger_sync(l, &err), 0);
  assert_int_equal(ledger_synced_seq(l), N);
  uint64_t size = ledger_size(l);
  assert_int_equal(file_size(path), (off_t)size);
  ledger_close(&l);
  assert_null(l);

  l = open_ok(path, 0, &rep);
  assert_false(rep.created);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, N);
  assert_int_equal(rep.last_seq, N);
  assert_int_equal(rep.valid_bytes, size);
  assert_int_equal(rep.truncated_bytes, 0);
  assert_int_equal(ledger_max_epoch(l), N / 700);
  struct collected c = collect(l);
  assert_int_equal(c.n, N);
  uint64_t off = LEDGER_FILE_HEADER_SIZE;
  for (unsigned i = 1; i <= N; i++) {
    const struct ledger_record *r = &c.recs[i - 1];
    assert_int_equal(r->seq, i);
    assert_int_equal(r->type, 1 + i % 20);
    assert_int_equal(r->epoch, i / 700);
    assert_int_equal(r->offset, off);
    if (i % 500 == 0) {
      assert_int_equal(r->len, 0);
    } else {
      char want[32];
      snprintf(want, sizeof(want), "{\"i\":%u,", i);
      assert_memory_equal(r->payload, want, strlen(want));
      assert_int_equal(r->len, strlen(want) + 9 + i % 97);
    }
    off += LEDGER_RECORD_HEADER_SIZE + r->len;
  }
  assert_int_equal(off, size);
  collected_free(&c);
  ledger_close(&l);
}

static void test_reopen_continues_sequence(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 3);
  collected_free(&c);
  struct ledger_recovery rep;
  struct ledger *l = open_ok(path, LEDGER_CREATE, &rep); /* exists: just opened */
  assert_false(rep.created);
  assert_int_equal(ledger_last_seq(l), 3);
  assert_int_equal(append_ok(l, LEDGER_T_NODE_FINISHED, "{}", LEDGER_SYNC), 4);
  assert_int_equal(append_ok(l, LEDGER_T_RUN_FINISHED, "{}", LEDGER_SYNC), 5);
  ledger_close(&l);
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.records, 5);
  c = collect(l);
  assert_int_equal(c.n, 5);
  assert_int_equal(c.recs[4].type, LEDGER_T_RUN_FINISHED);
  collected_free(&c);
  ledger_close(&l);
}

struct stop_ctx {
  int seen;
  int stop_at;
  int fail_at;
};

static int stop_cb(void *ctx, const struct ledger_record *rec, ep_error **err) {
  struct stop_ctx *s = ctx;
  s->seen++;
  if ((int)rec->seq == s->fail_at)
    return ep_error_set(err, EP_EXIT_INTERNAL, "callback refused seq %d", s->fail_at);
  return (int)rec->seq == s->stop_at ? 1 : 0;
}

static void test_foreach_stop_and_error(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 10);
  collected_free(&c);
  struct ledger *l = open_ok(path, LEDGER_RDONLY, NULL);
  ep_error *err = NULL;
  struct stop_ctx s = {0, 4, 0};
  assert_int_equal(ledger_foreach(l, stop_cb, &s, &err), 0);
  assert_int_equal(s.seen, 4);
  s = (struct stop_ctx){0, 0, 7};
  assert_int_equal(ledger_foreach(l, stop_cb, &s, &err), -1);
  assert_int_equal(s.seen, 7);
  assert_non_null(err);
  assert_non_null(strstr(err->message, "refused seq 7"));
  ep_error_free(&err);
  ledger_close(&l);
}

static void test_create_and_open_errors(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  char *dir = dir_part(path);

  /* Opening a missing ledger without LEDGER_CREATE. */
  ep_error *err = open_fails(path, 0, NULL);
  assert_int_equal(err->os_errno, ENOENT);
  assert_non_null(strstr(err->message, path));
  ep_error_free(&err);

  struct collected c = build_ledger(path, 2);
  collected_free(&c);
  size_t before_len;
  unsigned char *before = read_bytes(path, &before_len);

  /* Creating over an existing ledger never replaces it. */
  err = open_fails(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  assert_int_equal(err->os_errno, EEXIST);
  ep_error_free(&err);
  size_t after_len;
  unsigned char *after = read_bytes(path, &after_len);
  assert_int_equal(before_len, after_len);
  assert_memory_equal(before, after, before_len);
  free(before);
  free(after);
  /* O_TMPFILE creation leaves nothing but the ledger behind. */
  assert_int_equal(count_dir_entries(dir), 1);

  err = open_fails(path, LEDGER_CREATE | LEDGER_RDONLY, NULL);
  ep_error_free(&err);

  /* A directory or a symlink is not a ledger. */
  err = open_fails(dir, 0, NULL);
  ep_error_free(&err);
  const char *link = test_path(dir, "link.log");
  assert_int_equal(symlink(path, link), 0);
  err = open_fails(link, 0, NULL);
  assert_int_equal(err->os_errno, ELOOP);
  ep_error_free(&err);
  free(dir);
}

static int fallback_hook(void *ctx, const struct ledger_hook_event *ev) {
  int *calls = ctx;
  if (ev->op == LEDGER_OP_CREATE_TMPFILE && !ev->after) {
    (*calls)++;
    return EOPNOTSUPP; /* as on a filesystem without O_TMPFILE */
  }
  return 0;
}

static void test_create_without_tmpfile(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  char *dir = dir_part(path);
  int calls = 0;
  struct ledger_options o = {.flags = LEDGER_CREATE | LEDGER_EXCL, .hook = fallback_hook,
                             .hook_ctx = &calls};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  struct ledger_recovery rep;
  assert_int_equal(ledger_open(path, &o, &l, &rep, &err), 0);
  assert_int_equal(calls, 1);
  assert_true(rep.created);
  append_ok(l, LEDGER_T_RUN_STARTED, "{}", LEDGER_SYNC);
  ledger_close(&l);
  /* The named temporary is gone. */
  assert_int_equal(count_dir_entries(dir), 1);
  assert_int_equal(ledger_open(path, &o, &l, &rep, &err), -1);
  assert_int_equal(err->os_errno, EEXIST);
  ep_error_free(&err);
  assert_int_equal(count_dir_entries(dir), 1);
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.records, 1);
  ledger_close(&l);
  free(dir);
}

static void test_second_writer_refused(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct ledger *w = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  append_ok(w, LEDGER_T_WATCHDOG_STARTED, "{}", LEDGER_SYNC);

  ep_error *err = open_fails(path, 0, NULL);
  assert_int_equal(err->status, EP_EXIT_ENVIRONMENT);
  assert_non_null(strstr(err->message, "open for writing by another process"));
  ep_error_free(&err);

  /* Readers need no lock and cannot write. */
  struct ledger *r = open_ok(path, LEDGER_RDONLY, NULL);
  assert_int_equal(ledger_last_seq(r), 1);
  assert_int_equal(ledger_append(r, LEDGER_T_TAKEOVER, "{}", 2, LEDGER_SYNC, NULL, &err), -1);
  assert_non_null(strstr(err->message, "read-only"));
  ep_error_free(&err);
  ledger_close(&r);

  ledger_close(&w);
  w = open_ok(path, 0, NULL);
  ledger_close(&w);
}

/* ---- torn tails ---------------------------------------------------------------- */

static void check_recovered_note(const char *path, uint64_t want_records, uint64_t truncated,
                                 uint64_t offset) {
  struct ledger_recovery rep;
  struct ledger *l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, want_records + 1);
  struct collected c = collect(l);
  assert_int_equal(c.n, want_records + 1);
  const struct ledger_record *note = &c.recs[want_records];
  assert_int_equal(note->type, LEDGER_T_RECOVERED);
  assert_int_equal(note->seq, want_records + 1);
  assert_int_equal(note->offset, offset);
  char want[96];
  snprintf(want, sizeof(want), "{\"truncatedBytes\":%" PRIu64 ",\"offset\":%" PRIu64 ",", truncated,
           offset);
  assert_non_null(strstr(note->payload, want));
  collected_free(&c);
  ledger_close(&l);
}

static void test_torn_tail_every_offset(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  enum { N = 5 };
  struct collected c = build_ledger(path, N);
  size_t full_len;
  unsigned char *full = read_bytes(path, &full_len);
  uint64_t last = c.recs[N - 1].offset;
  assert_int_equal(last + LEDGER_RECORD_HEADER_SIZE + c.recs[N - 1].len, full_len);
  collected_free(&c);

  unsigned cuts = 0;
  for (size_t cut = last; cut < full_len; cut++) {
    write_bytes(path, full, cut);
    struct ledger_recovery rep;

    /* Read-only: found, reported, left alone. */
    struct ledger *l = open_ok(path, LEDGER_RDONLY, &rep);
    assert_int_equal(rep.records, N - 1);
    assert_int_equal(rep.valid_bytes, last);
    if (cut == last) {
      assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
    } else {
      assert_int_equal(rep.status, LEDGER_RECOVERY_TORN_TAIL);
      assert_int_equal(rep.truncated_bytes, cut - last);
    }
    ledger_close(&l);
    assert_int_equal(file_size(path), (off_t)cut);

    l = open_ok(path, 0, &rep);
    assert_int_equal(rep.records, N - 1);
    assert_int_equal(rep.last_seq, N - 1);
    assert_int_equal(rep.file_bytes, cut);
    assert_int_equal(rep.valid_bytes, last);
    if (cut == last) {
      assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
      assert_int_equal(rep.recovered_seq, 0);
      assert_int_equal(ledger_last_seq(l), N - 1);
      ledger_close(&l);
      continue;
    }
    cuts++;
    assert_int_equal(rep.status, LEDGER_RECOVERY_TRUNCATED);
    assert_int_equal(rep.truncated_bytes, cut - last);
    assert_int_equal(rep.bad_offset, last);
    assert_non_null(rep.reason);
    assert_int_equal(rep.recovered_seq, N);
    assert_int_equal(ledger_last_seq(l), N);
    assert_int_equal(ledger_synced_seq(l), N);
    /* The ledger goes on after the note. */
    assert_int_equal(append_ok(l, LEDGER_T_RUN_FINISHED, "{}", LEDGER_SYNC), N + 1);
    ledger_close(&l);
    /* Reopen: clean, note and the new record in place. */
    struct ledger *again = open_ok(path, 0, &rep);
    assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
    assert_int_equal(rep.records, N + 1);
    ledger_close(&again);

    write_bytes(path, full, cut);
    l = open_ok(path, 0, &rep);
    ledger_close(&l);
    check_recovered_note(path, N - 1, cut - last, last);
  }
  print_message("torn tail: %u cut lengths of the last record recovered\n", cuts);
  free(full);
}

static void test_garbage_tail(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 4);
  collected_free(&c);
  size_t full_len;
  unsigned char *full = read_bytes(path, &full_len);
  static const size_t lens[] = {1, 3, 4, 31, 32, 33, 100, 4096, 70000};
  srandom(7);
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    for (int zero = 0; zero < 3; zero++) {
      unsigned char *junk = malloc(lens[k]);
      assert_non_null(junk);
      for (size_t i = 0; i < lens[k]; i++)
        junk[i] = zero == 1 ? 0 : (unsigned char)random();
      if (zero == 2 && lens[k] >= 4)
        memcpy(junk, "EPRC", 4); /* a record magic heading garbage */
      write_bytes(path, full, full_len);
      append_bytes(path, junk, lens[k]);
      free(junk);
      struct ledger_recovery rep;
      struct ledger *l = open_ok(path, 0, &rep);
      assert_int_equal(rep.status, LEDGER_RECOVERY_TRUNCATED);
      assert_int_equal(rep.records, 4);
      assert_int_equal(rep.truncated_bytes, lens[k]);
      assert_int_equal(rep.bad_offset, full_len);
      ledger_close(&l);
      check_recovered_note(path, 4, lens[k], full_len);
    }
  }
  free(full);
}

/* ---- corruption ------------------------------------------------------------------ */

static void test_bitflip_middle_record_refused(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 3);
  uint64_t start = c.recs[1].offset;
  uint64_t end = start + LEDGER_RECORD_HEADER_SIZE + c.recs[1].len;
  collected_free(&c);
  size_t len;
  unsigned char *orig = read_bytes(path, &len);
  char want[64];
  snprintf(want, sizeof(want), "byte offset %" PRIu64 " ", start);
  unsigned flips = 0;
  for (uint64_t b = start; b < end; b++) {
    for (int bit = 0; bit < 8; bit++) {
      orig[b] ^= (unsigned char)(1u << bit);
      write_bytes(path, orig, len);
      orig[b] ^= (unsigned char)(1u << bit);
      struct ledger_recovery rep;
      ep_error *err = open_fails(path, 0, &rep);
      if (rep.bad_offset != start || strstr(err->message, want) == NULL)
        fail_msg("flip of bit %d at byte %" PRIu64 ": %s", bit, b, err->message);
      assert_int_equal(rep.status, LEDGER_RECOVERY_CORRUPT);
      assert_int_equal(rep.records, 1);
      assert_int_equal(rep.last_seq, 1);
      assert_int_equal(rep.valid_bytes, start);
      /* Either the checksum broke (a valid record follows at end) or, for
       * a flip in the length, the resync found it all the same. */
      assert_int_equal(rep.next_valid_offset, end);
      ep_error_free(&err);
      /* The refused file is left exactly as found. */
      assert_int_equal(file_size(path), (off_t)len);
      flips++;
    }
  }
  /* Read-only open refuses too. */
  orig[start + 40] ^= 1;
  write_bytes(path, orig, len);
  ep_error *err = open_fails(path, LEDGER_RDONLY, NULL);
  assert_non_null(strstr(err->message, want));
  ep_error_free(&err);
  print_message("middle record: %u bit flips refused at byte offset %" PRIu64 "\n", flips, start);
  free(orig);
}

/* Damage in the last record cannot be told from a torn write (a power cut
 * may persist the size before the data): it is cut and noted, not refused. */
static void test_bitflip_last_record_is_torn_tail(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 3);
  uint64_t start = c.recs[2].offset;
  collected_free(&c);
  size_t len;
  unsigned char *orig = read_bytes(path, &len);
  unsigned flips = 0;
  for (uint64_t b = start; b < len; b++) {
    for (int bit = 0; bit < 8; bit++) {
      orig[b] ^= (unsigned char)(1u << bit);
      write_bytes(path, orig, len);
      orig[b] ^= (unsigned char)(1u << bit);
      struct ledger_recovery rep;
      struct ledger *l = open_ok(path, 0, &rep);
      assert_int_equal(rep.status, LEDGER_RECOVERY_TRUNCATED);
      assert_int_equal(rep.records, 2);
      assert_int_equal(rep.bad_offset, start);
      assert_int_equal(rep.truncated_bytes, len - start);
      ledger_close(&l);
      flips++;
    }
  }
  print_message("last record: %u bit flips cut as a torn tail\n", flips);
  free(orig);
}

static void test_bitflip_header_refused(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 2);
  collected_free(&c);
  size_t len;
  unsigned char *orig = read_bytes(path, &len);
  for (int b = 0; b < LEDGER_FILE_HEADER_SIZE; b++) {
    for (int bit = 0; bit < 8; bit++) {
      orig[b] ^= (unsigned char)(1u << bit);
      write_bytes(path, orig, len);
      orig[b] ^= (unsigned char)(1u << bit);
      struct ledger_recovery rep;
      ep_error *err = open_fails(path, 0, &rep);
      assert_int_equal(rep.status, LEDGER_RECOVERY_CORRUPT);
      assert_int_equal(rep.bad_offset, 0);
      assert_non_null(strstr(err->message, "byte offset 0"));
      ep_error_free(&err);
      err = open_fails(path, LEDGER_RDONLY, &rep);
      ep_error_free(&err);
    }
  }
  /* Shorter than a header (a ledger is never seen like this: it is
   * linked into place only once its header is durable). */
  for (size_t cut = 0; cut < LEDGER_FILE_HEADER_SIZE; cut += 7) {
    write_bytes(path, orig, cut);
    ep_error *err = open_fails(path, 0, NULL);
    assert_non_null(strstr(err->message, "shorter"));
    ep_error_free(&err);
  }
  /* Not a ledger at all. */
  static const char yaml[] = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n";
  write_bytes(path, (const unsigned char *)yaml, sizeof(yaml) - 1);
  ep_error *err = open_fails(path, 0, NULL);
  assert_non_null(strstr(err->message, "not an exitprobe ledger"));
  ep_error_free(&err);
  free(orig);
}

static void test_forged_records_and_sequence_rules(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 2);
  collected_free(&c);
  uint32_t salt = file_salt(path);
  size_t base_len;
  unsigned char *base = read_bytes(path, &base_len);
  unsigned char rec[256], rec2[256];

  /* A record forged from the documented layout is accepted: the doc is right. */
  size_t n = forge_record(rec, salt, LEDGER_T_TAKEOVER, 3, 9, "{\"epoch\":9}");
  append_bytes(path, rec, n);
  struct ledger_recovery rep;
  struct ledger *l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, 3);
  assert_int_equal(ledger_max_epoch(l), 9);
  assert_int_equal(ledger_epoch(l), 9);
  ledger_close(&l);

  /* Gap at the end: a whole record with a good checksum is not a torn
   * write, so it is refused rather than cut. */
  static const struct {
    uint64_t seq;
    const char *why;
  } bad[] = {{4, "sequence gap"}, {2, "duplicate"}, {1, "duplicate"}, {0, "duplicate"}};
  for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    write_bytes(path, base, base_len);
    n = forge_record(rec, salt, LEDGER_T_EXITED, bad[k].seq, 0, "{}");
    append_bytes(path, rec, n);
    ep_error *err = open_fails(path, 0, &rep);
    assert_int_equal(rep.status, LEDGER_RECOVERY_CORRUPT);
    assert_int_equal(rep.bad_offset, base_len);
    assert_non_null(strstr(err->message, bad[k].why));
    char want[48];
    snprintf(want, sizeof(want), "byte offset %zu ", base_len);
    assert_non_null(strstr(err->message, want));
    ep_error_free(&err);
    assert_int_equal(file_size(path), (off_t)(base_len + n));
  }

  /* Gap in the middle, followed by more valid records. */
  write_bytes(path, base, base_len);
  n = forge_record(rec, salt, LEDGER_T_EXITED, 4, 0, "{}");
  size_t n2 = forge_record(rec2, salt, LEDGER_T_EXITED, 5, 0, "{}");
  append_bytes(path, rec, n);
  append_bytes(path, rec2, n2);
  ep_error *err = open_fails(path, 0, &rep);
  assert_int_equal(rep.bad_offset, base_len);
  ep_error_free(&err);

  /* Type 0 and non-zero flags are never written by a correct writer. */
  write_bytes(path, base, base_len);
  n = forge_record(rec, salt, 0, 3, 0, "{}");
  append_bytes(path, rec, n);
  err = open_fails(path, 0, &rep);
  assert_non_null(strstr(err->message, "type 0"));
  ep_error_free(&err);
  write_bytes(path, base, base_len);
  n = forge_record(rec, salt, LEDGER_T_EXITED, 3, 0, "{}");
  rec[6] = 1; /* flags */
  uint32_t crc = ledger_crc32c(ledger_crc32c(0, rec, 28), rec + 32, n - 32);
  put_le(rec + 28, crc, 4);
  append_bytes(path, rec, n);
  err = open_fails(path, 0, &rep);
  assert_non_null(strstr(err->message, "flags"));
  ep_error_free(&err);

  /* A record of another ledger (other salt) in the middle is damage ... */
  write_bytes(path, base, base_len);
  n = forge_record(rec, salt ^ 1, LEDGER_T_EXITED, 3, 0, "{}");
  n2 = forge_record(rec2, salt, LEDGER_T_EXITED, 4, 0, "{}");
  append_bytes(path, rec, n);
  append_bytes(path, rec2, n2);
  err = open_fails(path, 0, &rep);
  assert_int_equal(rep.bad_offset, base_len);
  assert_int_equal(rep.next_valid_offset, base_len + n);
  ep_error_free(&err);
  /* ... and at the end it is garbage, cut like any torn tail. */
  write_bytes(path, base, base_len);
  append_bytes(path, rec, n);
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_TRUNCATED);
  assert_string_equal(rep.reason, "record salt does not match this ledger");
  ledger_close(&l);
  free(base);
}

/* ---- limits -------------------------------------------------------------------------- */

static void test_payload_and_file_limits(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  char *big = malloc(LEDGER_MAX_PAYLOAD + 1);
  assert_non_null(big);
  memset(big, 'a', LEDGER_MAX_PAYLOAD + 1);
  ep_error *err = NULL;
  uint64_t seq = 0;
  assert_int_equal(ledger_append(l, LEDGER_T_EXITED, big, LEDGER_MAX_PAYLOAD + 1, LEDGER_SYNC,
                                 &seq, &err),
                   -1);
  assert_int_equal(err->os_errno, EMSGSIZE);
  ep_error_free(&err);
  assert_false(ledger_failed(l));
  assert_int_equal(ledger_append(l, LEDGER_T_EXITED, big, LEDGER_MAX_PAYLOAD, LEDGER_SYNC, &seq,
                                 &err),
                   0);
  assert_int_equal(seq, 1);
  assert_int_equal(ledger_append(l, 0, "{}", 2, 0, &seq, &err), -1);
  ep_error_free(&err);
  assert_int_equal(ledger_append(l, LEDGER_T_EXITED, NULL, 3, 0, &seq, &err), -1);
  ep_error_free(&err);
  ledger_close(&l);
  l = open_ok(path, 0, NULL);
  struct collected c = collect(l);
  assert_int_equal(c.n, 1);
  assert_int_equal(c.recs[0].len, LEDGER_MAX_PAYLOAD);
  collected_free(&c);
  ledger_close(&l);
  free(big);

  /* File size limit: refused before writing; the handle stays usable. */
  path = fresh_ledger_path();
  struct ledger_options o = {.flags = LEDGER_CREATE | LEDGER_EXCL, .max_file_size = 4096};
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  char text[200];
  memset(text, 'x', sizeof(text));
  uint64_t ok = 0;
  for (;;) {
    if (ledger_append(l, LEDGER_T_NODE_STARTED, text, sizeof(text), LEDGER_SYNC, &seq, &err) < 0)
      break;
    ok = seq;
  }
  assert_int_equal(err->os_errno, EFBIG);
  assert_non_null(strstr(err->message, "limit of 4096 bytes"));
  ep_error_free(&err);
  assert_false(ledger_failed(l));
  assert_int_equal(ok, (4096 - 32) / 232);
  assert_true(ledger_size(l) <= 4096);
  /* A smaller record still fits. */
  assert_int_equal(ledger_append(l, LEDGER_T_RUN_FINISHED, "{}", 2, LEDGER_SYNC, &seq, &err), 0);
  ledger_close(&l);
  o.flags = 0;
  struct ledger_recovery rep;
  assert_int_equal(ledger_open(path, &o, &l, &rep, &err), 0);
  assert_int_equal(rep.records, ok + 1);
  ledger_close(&l);
}

/* ---- injected and real I/O failures ------------------------------------------------------ */

struct inject {
  enum ledger_op op;
  bool after;
  int err;
  int fired;
};

static int inject_hook(void *ctx, const struct ledger_hook_event *ev) {
  struct inject *in = ctx;
  if (ev->op == in->op && ev->after == in->after && in->fired == 0) {
    in->fired++;
    return in->err;
  }
  return 0;
}

static void test_injected_sync_failure_is_sticky(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct inject in = {LEDGER_OP_APPEND_SYNC, false, EIO, 0};
  struct ledger_options o = {.flags = LEDGER_CREATE | LEDGER_EXCL, .hook = inject_hook,
                             .hook_ctx = &in};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  uint64_t seq = 0;
  assert_int_equal(ledger_append(l, LEDGER_T_SPAWN_INTENT, "{}", 2, LEDGER_SYNC, &seq, &err), -1);
  assert_int_equal(in.fired, 1);
  assert_int_equal(err->os_errno, EIO);
  assert_non_null(strstr(err->message, path));
  assert_non_null(strstr(err->message, "unreliable"));
  ep_error_free(&err);
  assert_true(ledger_failed(l));
  assert_int_equal(ledger_synced_seq(l), 0);
  /* No retry that could pretend success. */
  assert_int_equal(ledger_sync(l, &err), -1);
  assert_non_null(strstr(err->message, "earlier failure (fdatasync"));
  ep_error_free(&err);
  assert_int_equal(ledger_append(l, LEDGER_T_SPAWNED, "{}", 2, LEDGER_SYNC, &seq, &err), -1);
  ep_error_free(&err);
  ledger_close(&l);
  /* The unacknowledged record may be there; the ledger is valid either way. */
  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_true(rep.records <= 1);
  ledger_close(&l);
}

static void test_injected_write_failure_after_success_is_cut(void **state) {
  (void)state;
  /* The write happened but the caller saw an error (Temporal's
   * "ExecuteAndTimeout" shape): the record must not survive, since the
   * caller never acted on it and may write it again. */
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 2);
  collected_free(&c);
  struct inject in = {LEDGER_OP_APPEND_WRITE, true, ENOSPC, 0};
  struct ledger_options o = {.hook = inject_hook, .hook_ctx = &in};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  off_t before = file_size(path);
  assert_int_equal(ledger_append(l, LEDGER_T_EXITED, "{\"x\":1}", 7, LEDGER_SYNC, NULL, &err), -1);
  assert_int_equal(err->os_errno, ENOSPC);
  assert_non_null(strstr(err->message, path));
  ep_error_free(&err);
  assert_int_equal(file_size(path), before);
  ledger_close(&l);
  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, 2);
  ledger_close(&l);
}

struct two_faults {
  struct inject a, b;
};

static int two_faults_hook(void *ctx, const struct ledger_hook_event *ev) {
  struct two_faults *t = ctx;
  int e = inject_hook(&t->a, ev);
  return e != 0 ? e : inject_hook(&t->b, ev);
}

static void test_failed_cut_is_repaired_at_next_open(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 2);
  collected_free(&c);
  off_t before = file_size(path);
  struct two_faults t = {{LEDGER_OP_APPEND_WRITE, true, EIO, 0}, {LEDGER_OP_TRUNCATE, false, EIO, 0}};
  struct ledger_options o = {.hook = two_faults_hook, .hook_ctx = &t};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  assert_int_equal(ledger_append(l, LEDGER_T_EXITED, "{\"x\":1}", 7, LEDGER_SYNC, NULL, &err), -1);
  assert_non_null(strstr(err->message, "cut at the next open"));
  ep_error_free(&err);
  assert_int_equal(t.a.fired + t.b.fired, 2);
  ledger_close(&l);
  assert_true(file_size(path) > before);
  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  /* A whole, well-formed record was left behind: it is indistinguishable
   * from one whose writer died before fdatasync returned. */
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, 3);
  ledger_close(&l);
}

static void test_efbig_partial_write_cut_at_once(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct collected c = build_ledger(path, 3);
  collected_free(&c);
  struct ledger *l = open_ok(path, 0, NULL);
  off_t before = file_size(path);

  struct rlimit old;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
  sigemptyset(&ign.sa_mask);
  assert_int_equal(sigaction(SIGXFSZ, &ign, &prev), 0);
  /* The record crosses the limit: a short write, then EFBIG. */
  struct rlimit lim = {(rlim_t)before + 100, old.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  char text[500];
  memset(text, 'y', sizeof(text));
  ep_error *err = NULL;
  int rc = ledger_append(l, LEDGER_T_EXITED, text, sizeof(text), LEDGER_SYNC, NULL, &err);
  off_t after = file_size(path);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  assert_int_equal(sigaction(SIGXFSZ, &prev, NULL), 0);

  assert_int_equal(rc, -1);
  assert_int_equal(err->os_errno, EFBIG);
  assert_non_null(strstr(err->message, path));
  ep_error_free(&err);
  assert_true(ledger_failed(l));
  assert_int_equal(after, before); /* the 100-byte fragment was cut */
  ledger_close(&l);
  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, 3);
  ledger_close(&l);
}

/* Unmounts even when an assertion failed half-way. */
static int unmount_teardown(void **state) {
  if (*state != NULL) {
    umount2(*state, MNT_DETACH);
    free(*state);
    *state = NULL;
  }
  return 0;
}

static void test_enospc_on_full_tmpfs(void **state) {
  if (geteuid() != 0) {
    print_message("skipped: mounting a 64 KiB tmpfs needs root\n");
    skip();
  }
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    print_message("skipped: no private mount namespace: %s\n", strerror(errno));
    skip();
  }
  const char *dir = test_temp_dir();
  assert_non_null(dir);
  char mnt[512];
  snprintf(mnt, sizeof(mnt), "%s/small", dir);
  assert_int_equal(mkdir(mnt, 0700), 0);
  if (mount("exitprobe-ledger-test", mnt, "tmpfs", 0, "size=64k,mode=0700") < 0) {
    print_message("skipped: mount tmpfs: %s\n", strerror(errno));
    skip();
  }
  *state = strdup(mnt);
  char path[600];
  snprintf(path, sizeof(path), "%s/ledger.log", mnt);
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  char text[1000];
  memset(text, 'z', sizeof(text));
  ep_error *err = NULL;
  uint64_t acked = 0, seq = 0;
  for (int i = 0; i < 1000; i++) {
    if (ledger_append(l, LEDGER_T_NODE_STARTED, text, sizeof(text), LEDGER_SYNC, &seq, &err) < 0)
      break;
    acked = seq;
  }
  assert_non_null(err);
  assert_int_equal(err->os_errno, ENOSPC);
  assert_non_null(strstr(err->message, path));
  print_message("ENOSPC after %" PRIu64 " records: %s\n", acked, err->message);
  ep_error_free(&err);
  assert_true(acked > 10);
  assert_true(ledger_failed(l));
  assert_int_equal(file_size(path), (off_t)ledger_size(l));
  ledger_close(&l);

  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  assert_int_equal(rep.status, LEDGER_RECOVERY_CLEAN);
  assert_int_equal(rep.records, acked);
  ledger_close(&l);
  /* Still full: a reopened writer gets ENOSPC again, and the file stays valid. */
  l = open_ok(path, 0, NULL);
  assert_int_equal(ledger_append(l, LEDGER_T_NODE_STARTED, text, sizeof(text), LEDGER_SYNC, &seq,
                                 &err),
                   -1);
  assert_int_equal(err->os_errno, ENOSPC);
  ep_error_free(&err);
  ledger_close(&l);
  l = open_ok(path, LEDGER_RDONLY, &rep);
  assert_int_equal(rep.records, acked);
  ledger_close(&l);
}

/* ---- the order of durable operations ------------------------------------------------------------ */

struct trace {
  int n;
  struct ledger_hook_event ev[64];
};

static int trace_hook(void *ctx, const struct ledger_hook_event *ev) {
  struct trace *t = ctx;
  if (t->n < 64)
    t->ev[t->n++] = *ev;
  return 0;
}

static void expect_ops(const struct trace *t, const enum ledger_op *ops, int n) {
  assert_int_equal(t->n, 2 * n);
  for (int i = 0; i < n; i++) {
    assert_int_equal(t->ev[2 * i].op, ops[i]);
    assert_false(t->ev[2 * i].after);
    assert_int_equal(t->ev[2 * i + 1].op, ops[i]);
    assert_true(t->ev[2 * i + 1].after);
  }
}

/* A SIGKILL cannot tell a missing fdatasync (the page cache survives a
 * process crash), so the order is checked at the hook, which sits next to
 * each system call. */
static void test_durable_operation_order(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct trace t = {0};
  struct ledger_options o = {.flags = LEDGER_CREATE | LEDGER_EXCL, .hook = trace_hook,
                             .hook_ctx = &t};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  static const enum ledger_op create_ops[] = {LEDGER_OP_CREATE_TMPFILE, LEDGER_OP_CREATE_WRITE,
                                              LEDGER_OP_CREATE_SYNC, LEDGER_OP_CREATE_LINK,
                                              LEDGER_OP_DIR_SYNC};
  expect_ops(&t, create_ops, 5);
  for (int i = 0; i < t.n; i++)
    assert_string_equal(t.ev[i].path, path);

  t.n = 0;
  uint64_t seq = append_ok(l, LEDGER_T_EXIT_HANDLER_INTENT, "{}", LEDGER_SYNC);
  static const enum ledger_op sync_ops[] = {LEDGER_OP_APPEND_WRITE, LEDGER_OP_APPEND_SYNC};
  expect_ops(&t, sync_ops, 2);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(t.ev[i].seq, seq);
    assert_int_equal(t.ev[i].type, LEDGER_T_EXIT_HANDLER_INTENT);
    assert_int_equal(t.ev[i].len, 2);
    assert_memory_equal(t.ev[i].payload, "{}", 2);
  }
  assert_int_equal(ledger_synced_seq(l), seq);

  t.n = 0;
  seq = append_ok(l, LEDGER_T_SPAWNED, "{}", LEDGER_NOSYNC);
  expect_ops(&t, sync_ops, 1);
  assert_int_equal(ledger_synced_seq(l), seq - 1);
  t.n = 0;
  assert_int_equal(ledger_sync(l, &err), 0);
  static const enum ledger_op only_sync[] = {LEDGER_OP_APPEND_SYNC};
  expect_ops(&t, only_sync, 1);
  assert_int_equal(t.ev[0].seq, seq);
  assert_null(t.ev[0].payload);
  assert_int_equal(ledger_synced_seq(l), seq);
  t.n = 0;
  assert_int_equal(ledger_sync(l, &err), 0); /* nothing pending */
  assert_int_equal(t.n, 0);
  ledger_close(&l);

  /* Reopen with a torn tail: directory sync, cut, then the synced note. */
  append_bytes(path, (const unsigned char *)"EPRC", 4);
  t.n = 0;
  o.flags = 0;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  static const enum ledger_op reopen_ops[] = {LEDGER_OP_DIR_SYNC, LEDGER_OP_TRUNCATE,
                                              LEDGER_OP_APPEND_WRITE, LEDGER_OP_APPEND_SYNC};
  expect_ops(&t, reopen_ops, 4);
  assert_int_equal(t.ev[4].type, LEDGER_T_RECOVERED);
  ledger_close(&l);

  /* Read-only opens touch nothing. */
  t.n = 0;
  append_bytes(path, (const unsigned char *)"EPRC", 4);
  o.flags = LEDGER_RDONLY;
  assert_int_equal(ledger_open(path, &o, &l, NULL, &err), 0);
  assert_int_equal(t.n, 0);
  ledger_close(&l);
}

/* ---- crash at every durable operation -------------------------------------------------------- */

struct ack {
  uint64_t seq;
  uint64_t k; /* the payload carried {"k":k} */
};

struct crash_ctx {
  int count;
  int crash_at;
};

static int crash_hook(void *ctx, const struct ledger_hook_event *ev) {
  (void)ev;
  struct crash_ctx *c = ctx;
  if (++c->count == c->crash_at)
    raise(SIGKILL);
  return 0;
}

static void child_fail(const char *what, ep_error *err) {
  fprintf(stderr, "crash child: %s: %s\n", what, err != NULL ? err->message : "");
  _exit(3);
}

static uint64_t child_append(struct ledger *l, int ack_fd, uint64_t k, unsigned flags) {
  char text[64];
  int n = snprintf(text, sizeof(text), "{\"k\":%" PRIu64 "}", k);
  ep_error *err = NULL;
  uint64_t seq = 0;
  if (ledger_append(l, LEDGER_T_NODE_FINISHED, text, (size_t)n, flags, &seq, &err) < 0)
    child_fail("append", err);
  if (flags & LEDGER_SYNC) {
    struct ack a = {seq, k};
    if (write(ack_fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
      _exit(4);
  }
  return seq;
}

/* Every durable op of: create, appends (synced and batched), a reopen that
 * cuts a torn tail, more appends. */
static void crash_child(const char *path, int crash_at, int ack_fd) {
  struct crash_ctx cc = {0, crash_at};
  struct ledger_options o = {.flags = LEDGER_CREATE | LEDGER_EXCL, .hook = crash_hook,
                             .hook_ctx = &cc};
  struct ledger *l = NULL;
  ep_error *err = NULL;
  if (ledger_open(path, &o, &l, NULL, &err) < 0)
    child_fail("create", err);
  uint64_t k = 1;
  for (; k <= 3; k++)
    child_append(l, ack_fd, k, LEDGER_SYNC);
  child_append(l, ack_fd, k++, 0);
  uint64_t seq = child_append(l, ack_fd, k++, 0);
  if (ledger_sync(l, &err) < 0)
    child_fail("sync", err);
  struct ack a = {seq - 1, k - 2}, b = {seq, k - 1};
  if (write(ack_fd, &a, sizeof(a)) != (ssize_t)sizeof(a) ||
      write(ack_fd, &b, sizeof(b)) != (ssize_t)sizeof(b))
    _exit(4);
  ledger_close(&l);
  /* A torn tail for the next open to cut. */
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0 || write(fd, "EPRC\x02\x00", 6) != 6)
    _exit(5);
  close(fd);
  o.flags = 0;
  if (ledger_open(path, &o, &l, NULL, &err) < 0)
    child_fail("reopen", err);
  for (int i = 0; i < 2; i++)
    child_append(l, ack_fd, k++, LEDGER_SYNC);
  ledger_close(&l);
  _exit(0);
}

static size_t read_acks(int fd, struct ack *acks, size_t cap) {
  size_t n = 0;
  for (;;) {
    struct ack a;
    ssize_t r = read(fd, &a, sizeof(a));
    if (r == 0)
      break;
    if (r < 0 && errno == EINTR)
      continue;
    assert_int_equal(r, (ssize_t)sizeof(a));
    assert_true(n < cap);
    acks[n++] = a;
  }
  return n;
}

/* Every acknowledged record is present with its payload. */
static void check_acks(struct collected *c, const struct ack *acks, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (acks[i].seq == 0 || acks[i].seq > c->n)
      fail_msg("acknowledged seq %" PRIu64 " missing (ledger has %zu records)", acks[i].seq, c->n);
    const struct ledger_record *r = &c->recs[acks[i].seq - 1];
    char want[64];
    snprintf(want, sizeof(want), "{\"k\":%" PRIu64 "}", acks[i].k);
    assert_int_equal(r->seq, acks[i].seq);
    assert_string_equal(r->payload, want);
  }
}

static void test_crash_at_every_durable_op(void **state) {
  (void)state;
  int points = 0, no_file = 0, cut = 0;
  for (int n = 1;; n++) {
    const char *path = fresh_ledger_path();
    char *dir = dir_part(path);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      crash_child(path, n, p[1]);
    }
    close(p[1]);
    struct ack acks[64];
    size_t na = read_acks(p[0], acks, 64);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st)) {
      assert_int_equal(WEXITSTATUS(st), 0);
      assert_int_equal(na, 7);
      free(dir);
      break; /* ran to completion: every point has been visited */
    }
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    points++;
    if (file_size(path) < 0) {
      /* Died while creating: no ledger and nothing else left behind. */
      assert_int_equal(na, 0);
      assert_int_equal(count_dir_entries(dir), 0);
      no_file++;
      free(dir);
      continue;
    }
    assert_int_equal(count_dir_entries(dir), 1);
    struct ledger_recovery rep;
    struct ledger *l = open_ok(path, 0, &rep);
    if (rep.status == LEDGER_RECOVERY_TRUNCATED)
      cut++;
    struct collected c = collect(l);
    check_acks(&c, acks, na);
    collected_free(&c);
    ledger_close(&l);
    free(dir);
  }
  print_message("crash points: %d durable operations crashed at (%d before the name existed, "
                "%d left a tail to cut); no acknowledged record lost\n",
                points, no_file, cut);
  assert_true(points >= 30);
}

/* ---- random SIGKILL of a writer ------------------------------------------------------------ */

static void storm_child(const char *path, int ack_fd, unsigned seed) {
  struct ledger *l = NULL;
  ep_error *err = NULL;
  struct ledger_options o = {0};
  if (ledger_open(path, &o, &l, NULL, &err) < 0)
    child_fail("open", err);
  srandom(seed);
  size_t cap = 256 * 1024;
  char *text = malloc(cap + 64);
  if (text == NULL)
    _exit(6);
  for (uint64_t k = 1;; k++) {
    /* Large records so that SIGKILL can land inside one write(). */
    size_t pad = (size_t)random() % (k % 2 ? cap : 1024);
    int n = snprintf(text, 64, "{\"k\":%" PRIu64 ",\"pad\":\"", k);
    memset(text + n, 'p', pad);
    memcpy(text + n + pad, "\"}", 2);
    size_t len = (size_t)n + pad + 2;
    uint64_t seq = 0;
    if (ledger_append(l, LEDGER_T_NODE_STARTED, text, len, LEDGER_SYNC, &seq, &err) < 0)
      child_fail("append", err);
    struct ack a = {seq, k};
    /* Reported only after append returned: durability before report. */
    if (write(ack_fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
      _exit(4);
  }
}

static void test_sigkill_storm_keeps_acknowledged_records(void **state) {
  (void)state;
  const char *path = fresh_ledger_path();
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  ledger_close(&l);
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  const char *env = getenv("EXITPROBE_LEDGER_SEED");
  if (env != NULL)
    seed = (unsigned)strtoul(env, NULL, 10);
  print_message("sigkill storm: seed %u (EXITPROBE_LEDGER_SEED to replay)\n", seed);
  srandom(seed);
  enum { ITER = 40 };
  int torn = 0;
  uint64_t total_acked = 0, expect_next = 1;
  for (int it = 0; it < ITER; it++) {
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    unsigned child_seed = (unsigned)random();
    long delay_us = 2000 + random() % 40000;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      storm_child(path, p[1], child_seed);
    }
    close(p[1]);
    usleep((useconds_t)delay_us);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    struct ack *acks = calloc(4096, sizeof(*acks));
    assert_non_null(acks);
    size_t na = read_acks(p[0], acks, 4096);
    close(p[0]);

    struct ledger_recovery rep;
    l = open_ok(path, 0, &rep);
    if (rep.status == LEDGER_RECOVERY_TRUNCATED)
      torn++;
    struct collected c = {0};
    ep_error *err = NULL;
    assert_int_equal(ledger_foreach(l, collect_cb, &c, &err), 0);
    for (size_t i = 0; i < na; i++) {
      assert_true(acks[i].seq >= expect_next);
      assert_true(acks[i].seq <= c.n);
      char want[48];
      int n = snprintf(want, sizeof(want), "{\"k\":%" PRIu64 ",", acks[i].k);
      assert_memory_equal(c.recs[acks[i].seq - 1].payload, want, (size_t)n);
    }
    expect_next = c.n + 1;
    total_acked += na;
    collected_free(&c);
    ledger_close(&l);
    free(acks);
  }
  print_message("sigkill storm: %d kills, %" PRIu64 " acknowledged records all present, "
                "%d torn tails cut\n",
                ITER, total_acked, torn);
  assert_true(total_acked > 0);
}

/* ---- throughput (printed, not asserted) ------------------------------------------------------ */

static void test_measure_append_rate(void **state) {
  (void)state;
  char text[129];
  memset(text, 'm', 128);
  text[128] = '\0';
  static const struct {
    const char *name;
    unsigned flags;
    int n;
  } modes[] = {{"no sync", LEDGER_NOSYNC, 20000}, {"fdatasync each", LEDGER_SYNC, 500}};
  for (size_t m = 0; m < 2; m++) {
    const char *path = fresh_ledger_path();
    struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
    double t0 = now_s();
    for (int i = 0; i < modes[m].n; i++)
      append_ok(l, LEDGER_T_NODE_STARTED, text, modes[m].flags);
    double dt = now_s() - t0;
    print_message("bench: %-15s %6d appends of 128 B in %.3f s = %.0f appends/s "
                  "(%.1f us each)\n",
                  modes[m].name, modes[m].n, dt, modes[m].n / dt, dt * 1e6 / modes[m].n);
    ledger_close(&l);
  }
  const char *path = fresh_ledger_path();
  struct ledger *l = open_ok(path, LEDGER_CREATE | LEDGER_EXCL, NULL);
  for (int i = 0; i < 20000; i++)
    append_ok(l, LEDGER_T_NODE_STARTED, text, 0);
  ledger_close(&l);
  double t0 = now_s();
  struct ledger_recovery rep;
  l = open_ok(path, 0, &rep);
  double dt = now_s() - t0;
  print_message("bench: open+verify of %" PRIu64 " records (%" PRIu64 " bytes) in %.1f ms\n",
                rep.records, rep.valid_bytes, dt * 1e3);
  ledger_close(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c_vectors),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_round_trip_many),
      cmocka_unit_test(test_reopen_continues_sequence),
      cmocka_unit_test(test_foreach_stop_and_error),
      cmocka_unit_test(test_create_and_open_errors),
      cmocka_unit_test(test_create_without_tmpfile),
      cmocka_unit_test(test_second_writer_refused),
      cmocka_unit_test(test_torn_tail_every_offset),
      cmocka_unit_test(test_garbage_tail),
      cmocka_unit_test(test_bitflip_middle_record_refused),
      cmocka_unit_test(test_bitflip_last_record_is_torn_tail),
      cmocka_unit_test(test_bitflip_header_refused),
      cmocka_unit_test(test_forged_records_and_sequence_rules),
      cmocka_unit_test(test_payload_and_file_limits),
      cmocka_unit_test(test_injected_sync_failure_is_sticky),
      cmocka_unit_test(test_injected_write_failure_after_success_is_cut),
      cmocka_unit_test(test_failed_cut_is_repaired_at_next_open),
      cmocka_unit_test(test_efbig_partial_write_cut_at_once),
      cmocka_unit_test(test_durable_operation_order),
      cmocka_unit_test(test_crash_at_every_durable_op),
      cmocka_unit_test(test_sigkill_storm_keeps_acknowledged_records),
      cmocka_unit_test(test_measure_append_rate),
      /* Last: it moves this process into a private mount namespace. */
      cmocka_unit_test_teardown(test_enospc_on_full_tmpfs, unmount_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
