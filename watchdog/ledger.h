/* The harness's crash-safe ledger: an append-only file of checksummed,
 * sequence-numbered records, written by one process (the supervisor /
 * watchdog) and never touched by injected faults.  Reports are derived
 * from it, so its promise is narrow and exact:
 *
 *   - a record whose append returned with LEDGER_SYNC (or that preceded a
 *     successful ledger_sync) is on stable storage and will be found by
 *     every later open (as far as the storage honours fdatasync);
 *   - a record that was being written when the writer died is either
 *     complete or cut off at the next read-write open (a "torn tail"),
 *     and the cut is recorded as a LEDGER_T_RECOVERED record;
 *   - damage anywhere else (file header, a record followed by valid
 *     records, a sequence gap or duplicate) makes open fail with the byte
 *     offset: the ledger never guesses past it.
 *
 * Write-ahead rule for callers: append an action's intent with LEDGER_SYNC
 * before doing it, and its outcome with LEDGER_SYNC before anything depends
 * on it.  The on-disk format is described in docs/LEDGER.md. */
#ifndef EXITPROBE_LEDGER_H
#define EXITPROBE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define LEDGER_FORMAT_VERSION 1
#define LEDGER_FILE_HEADER_SIZE 32
#define LEDGER_RECORD_HEADER_SIZE 32
/* Largest payload one record may carry; larger appends are refused. */
#define LEDGER_MAX_PAYLOAD (1024u * 1024u)
/* Default and ceiling for the whole file: open reads the file into memory. */
#define LEDGER_DEFAULT_MAX_FILE_SIZE (64ull * 1024u * 1024u)

/* Record types.  The ledger stores any non-zero type; these are the ones
 * exitprobe assigns, kept here because the numbers are part of the file
 * format and must never be reused.  Payloads are JSON objects by convention
 * (docs/LEDGER.md lists the fields each type carries). */
enum ledger_type {
  LEDGER_T_RECOVERED = 1,          /* written by ledger_open itself after cutting a torn tail */
  LEDGER_T_RUN_STARTED = 2,
  LEDGER_T_WATCHDOG_STARTED = 3,
  LEDGER_T_CONTROLLER_STARTED = 4,
  LEDGER_T_NODE_STARTED = 5,       /* crash point after:node-started:<node> */
  LEDGER_T_NODE_FINISHED = 6,      /* crash point after:node-finished:<node> */
  LEDGER_T_SPAWN_INTENT = 7,
  LEDGER_T_SPAWNED = 8,
  LEDGER_T_EXITED = 9,
  LEDGER_T_FAULT_INJECTED = 10,
  LEDGER_T_EXIT_HANDLER_INTENT = 11, /* before:exit-handler is just before this is durable */
  LEDGER_T_EXIT_HANDLER_DONE = 12,
  LEDGER_T_TAKEOVER = 13,
  LEDGER_T_REJECTED_STALE = 14,
  LEDGER_T_COMPENSATION_INTENT = 15,
  LEDGER_T_COMPENSATION_DONE = 16,
  LEDGER_T_OUTCOME_UNKNOWN = 17,
  LEDGER_T_CLEANUP_VERIFIED = 18,
  LEDGER_T_WORKFLOW_FINISHED = 19, /* before:workflow-finished */
  LEDGER_T_RUN_FINISHED = 20,
};

/* Kebab-case name of a known type ("node-started"), or NULL. */
const char *ledger_type_name(uint16_t type);

/* Flags of struct ledger_options. */
enum {
  LEDGER_CREATE = 1u << 0, /* create the file if it does not exist */
  LEDGER_EXCL = 1u << 1,   /* with LEDGER_CREATE: fail with EEXIST if it exists */
  LEDGER_RDONLY = 1u << 2, /* inspect only: no lock, no repair, no appends */
};

/* Flags of ledger_append. */
enum {
  LEDGER_NOSYNC = 0,
  LEDGER_SYNC = 1u << 0, /* fdatasync before returning: the record is acknowledged */
};

/* Every durable operation goes through a hook so that test builds can crash
 * at it (crash points) or make it fail (injected I/O errors). */
enum ledger_op {
  LEDGER_OP_CREATE_TMPFILE, /* open the unnamed (O_TMPFILE) or temporary file */
  LEDGER_OP_CREATE_WRITE,   /* write the file header */
  LEDGER_OP_CREATE_SYNC,    /* fsync the new file */
  LEDGER_OP_CREATE_LINK,    /* give it its final name */
  LEDGER_OP_DIR_SYNC,       /* fsync the directory holding the ledger */
  LEDGER_OP_TRUNCATE,       /* cut a torn tail or a failed append, then fsync */
  LEDGER_OP_APPEND_WRITE,   /* the one write() of a record */
  LEDGER_OP_APPEND_SYNC,    /* fdatasync after it */
};

/* Dotted name of an op ("append.sync"). */
const char *ledger_op_name(enum ledger_op op);

struct ledger_hook_event {
  enum ledger_op op;
  bool after;       /* false: about to do it; true: it has just succeeded */
  uint16_t type;    /* the record's type for LEDGER_OP_APPEND_*, else 0 */
  uint64_t seq;     /* the record's seq for LEDGER_OP_APPEND_*, else 0 */
  const char *path; /* the ledger's path */
  /* The record's payload for LEDGER_OP_APPEND_* from ledger_append (so a
   * crash point can be named after the node it is about); NULL for a
   * ledger_sync and for the other ops. */
  const void *payload;
  size_t len;
};

/* Return 0 to go on.  A positive errno makes the operation fail with it:
 * before it ran (after == false), or after it ran (after == true: the
 * "succeeded but the caller saw an error" case).  A hook may also never
 * return (raise SIGKILL: a crash point). */
typedef int (*ledger_hook_fn)(void *ctx, const struct ledger_hook_event *ev);

struct ledger_options {
  unsigned flags;          /* LEDGER_CREATE, LEDGER_EXCL, LEDGER_RDONLY */
  uint64_t max_file_size;  /* 0: LEDGER_DEFAULT_MAX_FILE_SIZE; larger values are capped */
  ledger_hook_fn hook;     /* NULL in production */
  void *hook_ctx;
};

enum ledger_recovery_status {
  LEDGER_RECOVERY_CLEAN,     /* every byte after the header belonged to a valid record */
  LEDGER_RECOVERY_TRUNCATED, /* a torn tail was cut off and a RECOVERED record appended */
  LEDGER_RECOVERY_TORN_TAIL, /* read-only open: a torn tail was found and left in place */
  LEDGER_RECOVERY_CORRUPT,   /* refused: see bad_offset and reason */
};

/* What ledger_open found.  Filled whenever it is non-NULL, also on failure. */
struct ledger_recovery {
  enum ledger_recovery_status status;
  bool created;               /* this open created the file */
  uint64_t records;           /* valid records found (not counting the RECOVERED note) */
  uint64_t last_seq;          /* seq of the last valid record found, 0 if none */
  uint64_t file_bytes;        /* size of the file as found */
  uint64_t valid_bytes;       /* end of the last valid record: where the ledger continues */
  uint64_t truncated_bytes;   /* bytes of torn tail (cut, or left in place if read-only) */
  uint64_t bad_offset;        /* offset of the torn or corrupt record (0: the file header) */
  uint64_t next_valid_offset; /* mid-log corruption: a valid record starts here */
  uint64_t recovered_seq;     /* seq of the RECOVERED record this open appended, else 0 */
  const char *reason;         /* why the record at bad_offset is invalid (static), or NULL */
};

struct ledger_record {
  uint64_t seq;
  uint64_t offset;     /* byte offset of the record header in the file */
  uint32_t epoch;
  uint16_t type;
  const void *payload; /* valid during the callback only; not NUL-terminated */
  size_t len;
};

struct ledger;

/* Open (and with LEDGER_CREATE possibly create) the ledger at path and
 * recover it.  Read-write opens take an exclusive flock on the file, so a
 * second writer fails at once.  opts may be NULL (existing file,
 * read-write).  On failure *out is NULL and rep (if given) says what was
 * found; the file is not modified by a failed open except for cutting a
 * torn tail. */
int ledger_open(const char *path, const struct ledger_options *opts, struct ledger **out,
                struct ledger_recovery *rep, ep_error **err);

/* Append one record.  The seq it got is stored in *seq (may be NULL).
 * After any I/O failure the handle refuses further appends (the ledger on
 * disk stays valid: a partial record is cut off at once or at the next
 * open); reopen to go on.  A record that would exceed LEDGER_MAX_PAYLOAD or
 * the file size limit is refused without touching the file or the handle. */
int ledger_append(struct ledger *l, uint16_t type, const void *payload, size_t len,
                  unsigned flags, uint64_t *seq, ep_error **err);

/* Make every record appended so far durable (fdatasync); no-op if nothing
 * is pending. */
int ledger_sync(struct ledger *l, ep_error **err);

/* Call fn for every record in order, re-reading and re-verifying the file
 * up to the end known to this handle.  fn returns 0 to go on, > 0 to stop
 * (ledger_foreach returns 0), < 0 to fail (it should fill err). */
typedef int (*ledger_record_fn)(void *ctx, const struct ledger_record *rec, ep_error **err);
int ledger_foreach(struct ledger *l, ledger_record_fn fn, void *ctx, ep_error **err);

/* Stamp subsequent appends with this epoch (controller generation / fencing
 * token); starts at ledger_max_epoch() of the records found at open. */
void ledger_set_epoch(struct ledger *l, uint32_t epoch);
uint32_t ledger_epoch(const struct ledger *l);
uint32_t ledger_max_epoch(const struct ledger *l);

uint64_t ledger_last_seq(const struct ledger *l);   /* 0 if empty */
uint64_t ledger_synced_seq(const struct ledger *l); /* highest acknowledged seq */
uint64_t ledger_size(const struct ledger *l);       /* bytes, header included */
const char *ledger_path(const struct ledger *l);
bool ledger_failed(const struct ledger *l);

/* Close without syncing (NOSYNC records appended since the last sync may be
 * lost by a power failure, not by a process crash).  Sets *l to NULL. */
void ledger_close(struct ledger **l);

/* CRC-32C (Castagnoli), as used by the format; crc starts at 0. */
uint32_t ledger_crc32c(uint32_t crc, const void *buf, size_t len);

static inline void ledger_cleanup(struct ledger **l) { ledger_close(l); }
#define cleanup_ledger __attribute__((cleanup(ledger_cleanup)))

#endif
