/* The crash-safe ledger (see ledger.h and docs/LEDGER.md).
 *
 * Design in one paragraph: the file starts with a 32-byte header carrying
 * a random salt; every record is a 32-byte header (magic, type, length,
 * epoch, seq, salt, CRC-32C over header and payload) followed by its
 * payload, written with a single write() on an O_APPEND descriptor.  Open
 * reads the file front to back; at the first invalid record it looks for
 * any valid record further on: none means a torn tail (cut and noted),
 * one means damage in the middle (refused with the offset).  The rule
 * rests on the writer never leaving a hole: it only ever appends, and cuts
 * a failed append at once. */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const unsigned char file_magic[8] = {'E', 'P', 'L', 'E', 'D', 'G', 'E', 'R'};
static const unsigned char record_magic[4] = {'E', 'P', 'R', 'C'};

struct ledger {
  int fd;
  char *path;
  bool readonly;
  bool failed;
  char *failure; /* what failed first, for later refusals */
  uint32_t salt;
  uint64_t size;       /* end of the last record written (or found) */
  uint64_t last_seq;
  uint64_t synced_seq;
  uint32_t epoch;
  uint32_t max_epoch;
  uint64_t max_file_size;
  ledger_hook_fn hook;
  void *hook_ctx;
};

/* What the hook needs before a struct ledger exists (creation). */
struct hook_ref {
  ledger_hook_fn fn;
  void *ctx;
  const char *path;
};

/* ---- CRC-32C ------------------------------------------------------------ */

/* Reflected Castagnoli polynomial 0x82F63B78, one entry per byte value. */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t ledger_crc32c(uint32_t crc, const void *buf, size_t len) {
  const unsigned char *p = buf;
  crc = ~crc;
  for (size_t i = 0; i < len; i++)
    crc = crc32c_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

/* ---- little-endian fields -------------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* File header: magic[8] version u16 header_size u16 salt u32
 * created_ns u64 reserved u32 crc32c u32 (over bytes 0..27). */
enum { FH_VERSION = 8, FH_HSIZE = 10, FH_SALT = 12, FH_CREATED = 16, FH_RESERVED = 24,
       FH_CRC = 28 };
/* Record header: magic[4] type u16 flags u16 len u32 epoch u32 seq u64
 * salt u32 crc32c u32 (over bytes 0..27 and the payload). */
enum { RH_TYPE = 4, RH_FLAGS = 6, RH_LEN = 8, RH_EPOCH = 12, RH_SEQ = 16, RH_SALT = 24,
       RH_CRC = 28 };

static uint32_t record_crc(const unsigned char *hdr, const unsigned char *payload, size_t len) {
  uint32_t crc = ledger_crc32c(0, hdr, RH_CRC);
  return ledger_crc32c(crc, payload, len);
}

/* ---- names ------------------------------------------------------------------ */

const char *ledger_type_name(uint16_t type) {
  static const char *const names[] = {
      [LEDGER_T_RECOVERED] = "recovered",
      [LEDGER_T_RUN_STARTED] = "run-started",
      [LEDGER_T_WATCHDOG_STARTED] = "watchdog-started",
      [LEDGER_T_CONTROLLER_STARTED] = "controller-started",
      [LEDGER_T_NODE_STARTED] = "node-started",
      [LEDGER_T_NODE_FINISHED] = "node-finished",
      [LEDGER_T_SPAWN_INTENT] = "spawn-intent",
      [LEDGER_T_SPAWNED] = "spawned",
      [LEDGER_T_EXITED] = "exited",
      [LEDGER_T_FAULT_INJECTED] = "fault-injected",
      [LEDGER_T_EXIT_HANDLER_INTENT] = "exit-handler-intent",
      [LEDGER_T_EXIT_HANDLER_DONE] = "exit-handler-done",
      [LEDGER_T_TAKEOVER] = "takeover",
      [LEDGER_T_REJECTED_STALE] = "rejected-stale",
      [LEDGER_T_COMPENSATION_INTENT] = "compensation-intent",
      [LEDGER_T_COMPENSATION_DONE] = "compensation-done",
      [LEDGER_T_OUTCOME_UNKNOWN] = "outcome-unknown",
      [LEDGER_T_CLEANUP_VERIFIED] = "cleanup-verified",
      [LEDGER_T_WORKFLOW_FINISHED] = "workflow-finished",
      [LEDGER_T_RUN_FINISHED] = "run-finished",
  };
  if (type >= sizeof(names) / sizeof(names[0]))
    return NULL;
  return names[type];
}

const char *ledger_op_name(enum ledger_op op) {
  switch (op) {
  case LEDGER_OP_CREATE_TMPFILE: return "create.tmpfile";
  case LEDGER_OP_CREATE_WRITE: return "create.write";
  case LEDGER_OP_CREATE_SYNC: return "create.sync";
  case LEDGER_OP_CREATE_LINK: return "create.link";
  case LEDGER_OP_DIR_SYNC: return "dir.sync";
  case LEDGER_OP_TRUNCATE: return "truncate";
  case LEDGER_OP_APPEND_WRITE: return "append.write";
  case LEDGER_OP_APPEND_SYNC: return "append.sync";
  }
  return "unknown";
}

/* "node-started" or "type 77", for messages. */
static const char *type_label(uint16_t type, char *buf, size_t size) {
  const char *name = ledger_type_name(type);
  if (name != NULL)
    return name;
  snprintf(buf, size, "type %u", (unsigned)type);
  return buf;
}

/* ---- hooks and raw I/O -------------------------------------------------------- */

static int hook_call_payload(const struct hook_ref *h, enum ledger_op op, bool after,
                             uint16_t type, uint64_t seq, const void *payload, size_t len) {
  if (h->fn == NULL)
    return 0;
  struct ledger_hook_event ev = {op, after, type, seq, h->path, payload, len};
  int e = h->fn(h->ctx, &ev);
  return e > 0 ? e : 0;
}

static int hook_call(const struct hook_ref *h, enum ledger_op op, bool after, uint16_t type,
                     uint64_t seq) {
  return hook_call_payload(h, op, after, type, seq, NULL, 0);
}

static struct hook_ref ledger_hook_ref(const struct ledger *l) {
  return (struct hook_ref){l->hook, l->hook_ctx, l->path};
}

/* Returns 0 or an errno.  A short write is followed by another: a regular
 * file only writes short when the next attempt will say why (ENOSPC, EFBIG). */
static int write_all(int fd, const unsigned char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static int pread_all(int fd, unsigned char *buf, size_t len, off_t off) {
  while (len > 0) {
    ssize_t n = pread(fd, buf, len, off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO; /* the file shrank under us */
    buf += n;
    len -= (size_t)n;
    off += n;
  }
  return 0;
}

/* fsync and fdatasync are not retried after a real failure: after a
 * writeback error the kernel may have dropped the pages, and a second call
 * can succeed without the data (the PostgreSQL fsync lesson).  EINTR is not
 * such a failure. */
static int sync_fd(int fd, bool data_only) {
  int rc;
  do
    rc = data_only ? fdatasync(fd) : fsync(fd);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (slash == NULL)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL)
    abort();
  return dir;
}

/* A new name is durable only once its directory is (fsync(2)). */
static int sync_dir(const char *path, const struct hook_ref *h, ep_error **err) {
  char *dir = dir_of(path);
  int e = hook_call(h, LEDGER_OP_DIR_SYNC, false, 0, 0);
  if (e == 0) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      e = errno;
    } else {
      e = sync_fd(dfd, false);
      close(dfd);
    }
  }
  if (e == 0)
    e = hook_call(h, LEDGER_OP_DIR_SYNC, true, 0, 0);
  if (e != 0)
    ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "ledger %s: syncing directory %s", path, dir);
  free(dir);
  return e == 0 ? 0 : -1;
}

/* ---- creation ----------------------------------------------------------------- */

static uint32_t new_salt(void) {
  uint32_t salt = 0;
  if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) != (ssize_t)sizeof(salt)) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    salt = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 16) ^ (uint32_t)ts.tv_sec;
  }
  return salt;
}

static void build_file_header(unsigned char hdr[LEDGER_FILE_HEADER_SIZE]) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  memset(hdr, 0, LEDGER_FILE_HEADER_SIZE);
  memcpy(hdr, file_magic, sizeof(file_magic));
  put_u16(hdr + FH_VERSION, LEDGER_FORMAT_VERSION);
  put_u16(hdr + FH_HSIZE, LEDGER_FILE_HEADER_SIZE);
  put_u32(hdr + FH_SALT, new_salt());
  put_u64(hdr + FH_CREATED, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
  put_u32(hdr + FH_CRC, ledger_crc32c(0, hdr, FH_CRC));
}

/* An unnamed file in the target directory: a crash before it is linked
 * leaves nothing behind. */
static int open_unnamed(const char *dir, const struct hook_ref *h) {
  int e = hook_call(h, LEDGER_OP_CREATE_TMPFILE, false, 0, 0);
  if (e != 0) {
    errno = e;
    return -1;
  }
  return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
}

/* Filesystems without O_TMPFILE: a named temporary beside the target.  A
 * crash may leave it behind; its name says what it is. */
static int open_named_temp(const char *path, char **tmp_out) {
  uint32_t r = new_salt();
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.%ld.%08" PRIx32, path, (long)getpid(), r) < 0)
    abort();
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    errno = e;
    return -1;
  }
  *tmp_out = tmp;
  return fd;
}

/* link() never replaces an existing name, unlike rename(): creating a
 * ledger can never destroy one. */
static int link_into_place(int fd, const char *tmp, const char *path) {
  if (tmp != NULL)
    return link(tmp, path) < 0 ? errno : 0;
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
    return 0;
  if (errno != ENOENT) /* ENOENT: no /proc here */
    return errno;
  return linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) < 0 ? errno : 0;
}

/* Header written and fsynced under a temporary identity, then linked to its
 * name, then the directory fsynced: the name never shows a partial header. */
static int create_file(const char *path, const struct hook_ref *h, ep_error **err) {
  char *dir = dir_of(path);
  char *tmp = NULL;
  const char *step = "creating a temporary file in";
  unsigned char hdr[LEDGER_FILE_HEADER_SIZE];
  int rc = -1, e = 0;

  int fd = open_unnamed(dir, h);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
    fd = open_named_temp(path, &tmp);
  if (fd < 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "ledger %s: %s %s", path, step, dir);
    goto cleanup;
  }
  e = hook_call(h, LEDGER_OP_CREATE_TMPFILE, true, 0, 0);

  build_file_header(hdr);
  if (e == 0) {
    step = "writing the file header";
    e = hook_call(h, LEDGER_OP_CREATE_WRITE, false, 0, 0);
    if (e == 0)
      e = write_all(fd, hdr, sizeof(hdr));
    if (e == 0)
      e = hook_call(h, LEDGER_OP_CREATE_WRITE, true, 0, 0);
  }
  if (e == 0) {
    step = "syncing the new file";
    e = hook_call(h, LEDGER_OP_CREATE_SYNC, false, 0, 0);
    if (e == 0)
      e = sync_fd(fd, false);
    if (e == 0)
      e = hook_call(h, LEDGER_OP_CREATE_SYNC, true, 0, 0);
  }
  if (e == 0) {
    step = "linking the new file into place";
    e = hook_call(h, LEDGER_OP_CREATE_LINK, false, 0, 0);
    if (e == 0)
      e = link_into_place(fd, tmp, path);
    if (e == 0)
      e = hook_call(h, LEDGER_OP_CREATE_LINK, true, 0, 0);
  }
  if (e != 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "ledger %s: %s", path, step);
    goto cleanup;
  }
  rc = sync_dir(path, h, err);

cleanup:
  if (fd >= 0)
    close(fd);
  if (tmp != NULL)
    unlink(tmp);
  free(tmp);
  free(dir);
  return rc;
}

/* ---- verification --------------------------------------------------------------- */

struct raw_record {
  uint16_t type;
  uint16_t flags;
  uint32_t epoch;
  uint64_t seq;
  uint32_t len;
  const unsigned char *payload;
};

/* NULL if a structurally valid record of this ledger starts at off, else
 * why not.  Sequence rules are the caller's. */
static const char *check_record(const unsigned char *buf, uint64_t size, uint64_t off,
                                uint32_t salt, struct raw_record *r) {
  if (size - off < LEDGER_RECORD_HEADER_SIZE)
    return "incomplete record header";
  const unsigned char *h = buf + off;
  if (memcmp(h, record_magic, sizeof(record_magic)) != 0)
    return "bad record magic";
  if (get_u32(h + RH_SALT) != salt)
    return "record salt does not match this ledger";
  uint32_t len = get_u32(h + RH_LEN);
  if (len > LEDGER_MAX_PAYLOAD)
    return "payload length over the limit";
  if (size - off - LEDGER_RECORD_HEADER_SIZE < len)
    return "incomplete payload";
  const unsigned char *payload = h + LEDGER_RECORD_HEADER_SIZE;
  if (record_crc(h, payload, len) != get_u32(h + RH_CRC))
    return "checksum mismatch";
  r->type = get_u16(h + RH_TYPE);
  r->flags = get_u16(h + RH_FLAGS);
  r->epoch = get_u32(h + RH_EPOCH);
  r->seq = get_u64(h + RH_SEQ);
  r->len = len;
  r->payload = payload;
  return NULL;
}

/* Any valid record of this ledger starting in [from, size)?  A torn append
 * cannot produce one: its bytes are a prefix of a single record whose
 * payload, JSON text by convention, holds no NUL byte and hence no record
 * header (whose flags field is zero). */
static bool find_valid_after(const unsigned char *buf, uint64_t size, uint64_t from,
                             uint32_t salt, uint64_t *found, uint64_t *found_seq) {
  uint64_t off = from;
  while (off < size && size - off >= LEDGER_RECORD_HEADER_SIZE) {
    const unsigned char *m = memmem(buf + off, size - off, record_magic, sizeof(record_magic));
    if (m == NULL)
      return false;
    off = (uint64_t)(m - buf);
    struct raw_record r;
    if (check_record(buf, size, off, salt, &r) == NULL) {
      *found = off;
      *found_seq = r.seq;
      return true;
    }
    off++;
  }
  return false;
}

static const char *check_file_header(const unsigned char *buf, uint64_t size, uint32_t *salt) {
  if (size < LEDGER_FILE_HEADER_SIZE)
    return "file shorter than the ledger header";
  if (memcmp(buf, file_magic, sizeof(file_magic)) != 0)
    return "not an exitprobe ledger (bad file magic)";
  if (get_u32(buf + FH_CRC) != ledger_crc32c(0, buf, FH_CRC))
    return "file header checksum mismatch";
  if (get_u16(buf + FH_VERSION) != LEDGER_FORMAT_VERSION)
    return "unsupported ledger format version";
  if (get_u16(buf + FH_HSIZE) != LEDGER_FILE_HEADER_SIZE || get_u32(buf + FH_RESERVED) != 0)
    return "unsupported file header layout";
  *salt = get_u32(buf + FH_SALT);
  return NULL;
}

struct scan {
  uint32_t salt;
  uint64_t records, last_seq, valid_end;
  uint32_t max_epoch;
  bool torn, corrupt;
  uint64_t bad_offset, next_valid;
  const char *reason;
  char detail[160];
};

/* Walk the records; stop at the first one that is not valid and classify
 * what follows it. */
static void scan_records(const unsigned char *buf, uint64_t size, struct scan *s) {
  uint64_t off = LEDGER_FILE_HEADER_SIZE;
  while (off < size) {
    struct raw_record r;
    const char *why = check_record(buf, size, off, s->salt, &r);
    if (why == NULL) {
      /* A record with a good checksum was written whole by a writer: if it
       * breaks a rule, no torn write explains it, so it is never cut. */
      const char *bad = NULL;
      if (r.seq != s->last_seq + 1)
        bad = r.seq > s->last_seq + 1 ? "sequence gap" : "sequence duplicate or reversal";
      else if (r.flags != 0)
        bad = "unsupported record flags";
      else if (r.type == 0)
        bad = "record type 0";
      if (bad != NULL) {
        s->corrupt = true;
        s->bad_offset = off;
        s->reason = bad;
        snprintf(s->detail, sizeof(s->detail), "%s: seq %" PRIu64 " after seq %" PRIu64, bad,
                 r.seq, s->last_seq);
        break;
      }
      s->records++;
      s->last_seq = r.seq;
      if (r.epoch > s->max_epoch)
        s->max_epoch = r.epoch;
      off += LEDGER_RECORD_HEADER_SIZE + r.len;
      continue;
    }
    s->bad_offset = off;
    s->reason = why;
    uint64_t next_seq = 0;
    if (find_valid_after(buf, size, off + 1, s->salt, &s->next_valid, &next_seq)) {
      s->corrupt = true;
      snprintf(s->detail, sizeof(s->detail),
               "%s, and a valid record (seq %" PRIu64 ") follows at byte offset %" PRIu64, why,
               next_seq, s->next_valid);
    } else {
      s->torn = true;
    }
    break;
  }
  s->valid_end = off;
}

/* ---- open ------------------------------------------------------------------------- */

static int read_whole(int fd, uint64_t cap, const char *path, unsigned char **out,
                      uint64_t *size_out, ep_error **err) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "ledger %s: stat", path);
  if (!S_ISREG(st.st_mode))
    return ep_error_set(err, EP_EXIT_USAGE, "ledger %s: not a regular file", path);
  uint64_t size = (uint64_t)st.st_size;
  if (size > cap)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, EFBIG,
                              "ledger %s: %" PRIu64 " bytes, over the limit of %" PRIu64, path,
                              size, cap);
  unsigned char *buf = malloc(size > 0 ? size : 1);
  if (buf == NULL)
    abort();
  int e = pread_all(fd, buf, size, 0);
  if (e != 0) {
    free(buf);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "ledger %s: reading", path);
  }
  *out = buf;
  *size_out = size;
  return 0;
}

static int open_fd(const char *path, const struct ledger_options *o, const struct hook_ref *h,
                   bool *created, ep_error **err) {
  bool rdonly = o->flags & LEDGER_RDONLY;
  int oflags = rdonly ? O_RDONLY : O_RDWR | O_APPEND;
  oflags |= O_CLOEXEC | O_NOFOLLOW;

  if ((o->flags & LEDGER_CREATE) && (o->flags & LEDGER_EXCL)) {
    if (create_file(path, h, err) < 0)
      return -1;
    *created = true;
  }
  for (int attempt = 0;; attempt++) {
    int fd = open(path, oflags);
    if (fd >= 0)
      return fd;
    if (errno != ENOENT || !(o->flags & LEDGER_CREATE) || *created || attempt > 0)
      return ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "ledger %s: open", path);
    ep_error *cerr = NULL;
    if (create_file(path, h, &cerr) == 0) {
      *created = true;
    } else if (cerr->os_errno != EEXIST) { /* EEXIST: another creator won; open theirs */
      *err = cerr;
      return -1;
    }
    ep_error_free(&cerr);
  }
}

static void fill_report(struct ledger_recovery *rep, const struct scan *s, uint64_t file_bytes,
                        bool created) {
  if (rep == NULL)
    return;
  rep->created = created;
  rep->records = s->records;
  rep->last_seq = s->last_seq;
  rep->file_bytes = file_bytes;
  rep->valid_bytes = s->valid_end;
  rep->bad_offset = s->bad_offset;
  rep->next_valid_offset = s->next_valid;
  rep->reason = s->reason;
  if (s->corrupt)
    rep->status = LEDGER_RECOVERY_CORRUPT;
  else if (s->torn)
    rep->status = LEDGER_RECOVERY_TORN_TAIL;
  if (s->torn)
    rep->truncated_bytes = file_bytes - s->valid_end;
}

static int truncate_to(struct ledger *l, uint64_t size) {
  struct hook_ref h = ledger_hook_ref(l);
  int e = hook_call(&h, LEDGER_OP_TRUNCATE, false, 0, 0);
  if (e == 0 && ftruncate(l->fd, (off_t)size) < 0)
    e = errno;
  if (e == 0)
    e = sync_fd(l->fd, false);
  if (e == 0)
    e = hook_call(&h, LEDGER_OP_TRUNCATE, true, 0, 0);
  return e;
}

static int append_record(struct ledger *l, uint16_t type, const void *payload, size_t len,
                         unsigned flags, bool enforce_limit, uint64_t *seq_out, ep_error **err);

/* Cut the torn tail and say so in the ledger itself, so that the cut
 * survives in the record and not only in this process's report. */
static int repair_tail(struct ledger *l, const struct scan *s, uint64_t file_bytes,
                       struct ledger_recovery *rep, ep_error **err) {
  int e = truncate_to(l, s->valid_end);
  if (e != 0)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, e,
                              "ledger %s: cutting the torn tail at byte offset %" PRIu64, l->path,
                              s->valid_end);
  char note[256];
  int n = snprintf(note, sizeof(note),
                   "{\"truncatedBytes\":%" PRIu64 ",\"offset\":%" PRIu64
                   ",\"reason\":\"%s\",\"lastSeq\":%" PRIu64 "}",
                   file_bytes - s->valid_end, s->valid_end, s->reason, s->last_seq);
  uint64_t seq = 0;
  if (append_record(l, LEDGER_T_RECOVERED, note, (size_t)n, LEDGER_SYNC, false, &seq, err) < 0)
    return -1;
  if (rep != NULL) {
    rep->status = LEDGER_RECOVERY_TRUNCATED;
    rep->recovered_seq = seq;
  }
  return 0;
}

int ledger_open(const char *path, const struct ledger_options *opts, struct ledger **out,
                struct ledger_recovery *rep, ep_error **err) {
  static const struct ledger_options defaults = {0};
  const struct ledger_options *o = opts != NULL ? opts : &defaults;
  struct hook_ref h = {o->hook, o->hook_ctx, path};
  struct ledger *l = NULL;
  unsigned char *buf = NULL;
  uint64_t size = 0;
  bool created = false;
  int fd = -1;
  struct scan s = {0};

  *out = NULL;
  if (rep != NULL)
    *rep = (struct ledger_recovery){0};
  if ((o->flags & LEDGER_RDONLY) && (o->flags & LEDGER_CREATE))
    return ep_error_set(err, EP_EXIT_INTERNAL, "ledger %s: cannot create read-only", path);

  uint64_t max = o->max_file_size;
  if (max == 0 || max > LEDGER_DEFAULT_MAX_FILE_SIZE)
    max = LEDGER_DEFAULT_MAX_FILE_SIZE;

  fd = open_fd(path, o, &h, &created, err);
  if (fd < 0)
    goto fail;
  if (!(o->flags & LEDGER_RDONLY) && flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      ep_error_set_errno(err, EP_EXIT_ENVIRONMENT, errno,
                         "ledger %s is open for writing by another process", path);
    else
      ep_error_set_errno(err, EP_EXIT_INTERNAL, errno, "ledger %s: flock", path);
    goto fail;
  }
  /* Slack over the limit: the ledger's own RECOVERED note may pass it. */
  if (read_whole(fd, max + 4096, path, &buf, &size, err) < 0)
    goto fail;

  const char *why = check_file_header(buf, size, &s.salt);
  if (why != NULL) {
    s.corrupt = true;
    s.reason = why;
    fill_report(rep, &s, size, created);
    ep_error_set(err, EP_EXIT_INTERNAL, "ledger %s: %s at byte offset 0: refusing to read it",
                 path, why);
    goto fail;
  }
  scan_records(buf, size, &s);
  fill_report(rep, &s, size, created);
  if (s.corrupt) {
    ep_error_set(err, EP_EXIT_INTERNAL,
                 "ledger %s: corrupt record at byte offset %" PRIu64 " (%s); refusing to guess "
                 "past it (last good record: seq %" PRIu64 ")",
                 path, s.bad_offset, s.detail[0] != '\0' ? s.detail : s.reason, s.last_seq);
    goto fail;
  }

  l = calloc(1, sizeof(*l));
  if (l == NULL || (l->path = strdup(path)) == NULL)
    abort();
  l->fd = fd;
  fd = -1;
  l->readonly = o->flags & LEDGER_RDONLY;
  l->salt = s.salt;
  l->size = s.valid_end;
  l->last_seq = l->synced_seq = s.last_seq;
  l->epoch = l->max_epoch = s.max_epoch;
  l->max_file_size = max;
  l->hook = o->hook;
  l->hook_ctx = o->hook_ctx;

  if (!l->readonly) {
    /* A creator that died between link and directory fsync left a name
     * that may not survive a power cut: make it durable before use. */
    struct hook_ref lh = ledger_hook_ref(l);
    if (!created && sync_dir(path, &lh, err) < 0)
      goto fail;
    if (s.torn && repair_tail(l, &s, size, rep, err) < 0)
      goto fail;
  }
  free(buf);
  *out = l;
  return 0;

fail:
  if (l != NULL)
    ledger_close(&l);
  if (fd >= 0)
    close(fd);
  free(buf);
  return -1;
}

/* ---- append ------------------------------------------------------------------------ */

static void mark_failed(struct ledger *l, const char *what, int e) {
  if (l->failed)
    return;
  l->failed = true;
  if (asprintf(&l->failure, "%s: %s", what, strerror(e)) < 0)
    abort();
}

static int sync_pending(struct ledger *l, uint16_t type, const void *payload, size_t len,
                        ep_error **err) {
  struct hook_ref h = ledger_hook_ref(l);
  int e = hook_call_payload(&h, LEDGER_OP_APPEND_SYNC, false, type, l->last_seq, payload, len);
  if (e == 0)
    e = sync_fd(l->fd, true);
  if (e == 0)
    e = hook_call_payload(&h, LEDGER_OP_APPEND_SYNC, true, type, l->last_seq, payload, len);
  if (e != 0) {
    /* The records may or may not be on disk: never claim they are, and
     * never retry (see sync_fd). */
    mark_failed(l, "fdatasync", e);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, e,
                              "ledger %s: fdatasync up to seq %" PRIu64
                              " failed; the ledger is unreliable from here on",
                              l->path, l->last_seq);
  }
  l->synced_seq = l->last_seq;
  return 0;
}

static int append_record(struct ledger *l, uint16_t type, const void *payload, size_t len,
                         unsigned flags, bool enforce_limit, uint64_t *seq_out, ep_error **err) {
  char tbuf[16];
  const char *label = type_label(type, tbuf, sizeof(tbuf));
  size_t total = LEDGER_RECORD_HEADER_SIZE + len;

  if (enforce_limit && l->size + total > l->max_file_size)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, EFBIG,
                              "ledger %s: a %s record of %zu bytes would take the file past its "
                              "limit of %" PRIu64 " bytes",
                              l->path, label, len, l->max_file_size);

  uint64_t seq = l->last_seq + 1;
  unsigned char *rec = malloc(total);
  if (rec == NULL)
    abort();
  memcpy(rec, record_magic, sizeof(record_magic));
  put_u16(rec + RH_TYPE, type);
  put_u16(rec + RH_FLAGS, 0);
  put_u32(rec + RH_LEN, (uint32_t)len);
  put_u32(rec + RH_EPOCH, l->epoch);
  put_u64(rec + RH_SEQ, seq);
  put_u32(rec + RH_SALT, l->salt);
  if (len > 0)
    memcpy(rec + LEDGER_RECORD_HEADER_SIZE, payload, len);
  put_u32(rec + RH_CRC, record_crc(rec, rec + LEDGER_RECORD_HEADER_SIZE, len));

  struct hook_ref h = ledger_hook_ref(l);
  int e = hook_call_payload(&h, LEDGER_OP_APPEND_WRITE, false, type, seq, payload, len);
  if (e == 0)
    e = write_all(l->fd, rec, total);
  if (e == 0)
    e = hook_call_payload(&h, LEDGER_OP_APPEND_WRITE, true, type, seq, payload, len);
  free(rec);
  if (e != 0) {
    mark_failed(l, "write", e);
    /* Cut whatever part of the record landed so that the file ends on a
     * record boundary now; if even that fails, the next open cuts it. */
    int te = truncate_to(l, l->size);
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, e,
                              "ledger %s: appending record %" PRIu64 " (%s, %zu bytes)%s", l->path,
                              seq, label, len,
                              te == 0 ? "" : " (the partial record will be cut at the next open)");
  }
  l->size += total;
  l->last_seq = seq;
  if (l->epoch > l->max_epoch)
    l->max_epoch = l->epoch;
  if ((flags & LEDGER_SYNC) && sync_pending(l, type, payload, len, err) < 0)
    return -1;
  if (seq_out != NULL)
    *seq_out = seq;
  return 0;
}

static int check_writable(const struct ledger *l, ep_error **err) {
  if (l->readonly)
    return ep_error_set(err, EP_EXIT_INTERNAL, "ledger %s: opened read-only", l->path);
  if (l->failed)
    return ep_error_set(err, EP_EXIT_INTERNAL,
                        "ledger %s: refusing to write after an earlier failure (%s); reopen it "
                        "to recover",
                        l->path, l->failure);
  return 0;
}

int ledger_append(struct ledger *l, uint16_t type, const void *payload, size_t len,
                  unsigned flags, uint64_t *seq, ep_error **err) {
  if (check_writable(l, err) < 0)
    return -1;
  if (type == 0)
    return ep_error_set(err, EP_EXIT_INTERNAL, "ledger %s: record type 0 is reserved", l->path);
  if (len > 0 && payload == NULL)
    return ep_error_set(err, EP_EXIT_INTERNAL, "ledger %s: payload is NULL", l->path);
  if (len > LEDGER_MAX_PAYLOAD)
    return ep_error_set_errno(err, EP_EXIT_INTERNAL, EMSGSIZE,
                              "ledger %s: a payload of %zu bytes is over the %u-byte limit",
                              l->path, len, LEDGER_MAX_PAYLOAD);
  return append_record(l, type, payload, len, flags, true, seq, err);
}

int ledger_sync(struct ledger *l, ep_error **err) {
  if (check_writable(l, err) < 0)
    return -1;
  if (l->synced_seq == l->last_seq)
    return 0;
  return sync_pending(l, 0, NULL, 0, err);
}

/* ---- replay -------------------------------------------------------------------------- */

int ledger_foreach(struct ledger *l, ledger_record_fn fn, void *ctx, ep_error **err) {
  unsigned char *buf = malloc(l->size > 0 ? l->size : 1);
  int rc = -1;
  if (buf == NULL)
    abort();
  int e = pread_all(l->fd, buf, l->size, 0);
  if (e != 0) {
    ep_error_set_errno(err, EP_EXIT_INTERNAL, e, "ledger %s: reading", l->path);
    goto cleanup;
  }
  uint64_t off = LEDGER_FILE_HEADER_SIZE, expect = 1;
  while (off < l->size) {
    struct raw_record r;
    const char *why = check_record(buf, l->size, off, l->salt, &r);
    if (why == NULL && r.seq != expect)
      why = "sequence gap or duplicate";
    if (why != NULL) {
      /* Verified at open: something else wrote to the file since. */
      ep_error_set(err, EP_EXIT_INTERNAL,
                   "ledger %s: record at byte offset %" PRIu64 " changed since open (%s)",
                   l->path, off, why);
      goto cleanup;
    }
    struct ledger_record rec = {r.seq, off, r.epoch, r.type, r.payload, r.len};
    int cb = fn(ctx, &rec, err);
    if (cb < 0)
      goto cleanup;
    if (cb > 0)
      break;
    off += LEDGER_RECORD_HEADER_SIZE + r.len;
    expect++;
  }
  rc = 0;
cleanup:
  free(buf);
  return rc;
}

/* ---- accessors ------------------------------------------------------------------------ */

void ledger_set_epoch(struct ledger *l, uint32_t epoch) { l->epoch = epoch; }
uint32_t ledger_epoch(const struct ledger *l) { return l->epoch; }
uint32_t ledger_max_epoch(const struct ledger *l) { return l->max_epoch; }
uint64_t ledger_last_seq(const struct ledger *l) { return l->last_seq; }
uint64_t ledger_synced_seq(const struct ledger *l) { return l->synced_seq; }
uint64_t ledger_size(const struct ledger *l) { return l->size; }
const char *ledger_path(const struct ledger *l) { return l->path; }
bool ledger_failed(const struct ledger *l) { return l->failed; }

void ledger_close(struct ledger **lp) {
  if (lp == NULL || *lp == NULL)
    return;
  struct ledger *l = *lp;
  if (l->fd >= 0)
    close(l->fd);
  free(l->path);
  free(l->failure);
  free(l);
  *lp = NULL;
}
