/* Expression evaluator for Argo's govaluate `when` conditions and expr-lang
 * expressions (see expr.h for the accepted language and its differences
 * from the Go engines).  The text is tokenised completely, parsed into a
 * node array by precedence climbing, then evaluated with short-circuits;
 * nothing survives the call. */
#include "expr.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- small helpers ----------------------------------------------------- */

/* Like error.c, running out of memory is not a recoverable condition here. */
static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n == 0 ? 1 : n);
  if (q == NULL)
    abort();
  return q;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = strndup(s, n);
  if (d == NULL)
    abort();
  return d;
}

static char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

struct sbuf {
  char *p;
  size_t n, cap;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->n + n + 1)
      cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void sb_add(struct sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
static void sb_addc(struct sbuf *b, char c) { sb_addn(b, &c, 1); }

/* Hands the buffer over; an empty buffer still yields "". */
static char *sb_take(struct sbuf *b) {
  if (b->p == NULL)
    return xstrdup("");
  char *p = b->p;
  *b = (struct sbuf){0};
  return p;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
static bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- values ------------------------------------------------------------ */

void expr_value_clear(struct expr_value *v) {
  if (v == NULL)
    return;
  free(v->str);
  *v = (struct expr_value){.type = EXPR_NIL};
}

void expr_value_set_nil(struct expr_value *v) { expr_value_clear(v); }

void expr_value_set_bool(struct expr_value *v, bool b) {
  expr_value_clear(v);
  v->type = EXPR_BOOL;
  v->b = b;
}

void expr_value_set_number(struct expr_value *v, double num) {
  expr_value_clear(v);
  v->type = EXPR_NUMBER;
  v->num = num;
}

void expr_value_set_string(struct expr_value *v, const char *s) {
  expr_value_clear(v);
  v->type = EXPR_STRING;
  v->str = xstrdup(s != NULL ? s : "");
}

/* Takes ownership of s. */
static void value_own_string(struct expr_value *v, char *s) {
  expr_value_clear(v);
  v->type = EXPR_STRING;
  v->str = s;
}

static void value_copy(struct expr_value *dst, const struct expr_value *src) {
  expr_value_clear(dst);
  *dst = *src;
  dst->str = src->type == EXPR_STRING ? xstrdup(src->str) : NULL;
}

const char *expr_type_name(enum expr_type type) {
  switch (type) {
  case EXPR_NIL:
    return "nil";
  case EXPR_BOOL:
    return "bool";
  case EXPR_NUMBER:
    return "number";
  case EXPR_STRING:
    return "string";
  }
  return "unknown";
}

/* Integral values print like integers, the rest in the shortest form that
 * reads back to the same double; exponents only far from 1, as JSON does. */
static void format_number(double x, char *buf, size_t size) {
  if (isnan(x)) {
    snprintf(buf, size, "NaN");
    return;
  }
  if (isinf(x)) {
    snprintf(buf, size, "%s", x > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (x == 0) {
    snprintf(buf, size, "0"); /* also for -0 */
    return;
  }
  if (x == trunc(x) && fabs(x) < 1e21) {
    snprintf(buf, size, "%.0f", x);
    return;
  }
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(buf, size, "%.*e", prec - 1, x);
    if (strtod(buf, NULL) == x)
      break;
  }
  snprintf(buf, size, "%.*e", prec - 1, x);
  const char *e = strchr(buf, 'e');
  int exp10 = e != NULL ? atoi(e + 1) : 0;
  if (exp10 < -6 || exp10 >= 21)
    return;
  int decimals = prec - 1 - exp10;
  snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, x);
}

char *expr_value_to_string(const struct expr_value *v) {
  char buf[64];
  if (v == NULL)
    return xstrdup("<nil>");
  switch (v->type) {
  case EXPR_NIL:
    return xstrdup("<nil>");
  case EXPR_BOOL:
    return xstrdup(v->b ? "true" : "false");
  case EXPR_NUMBER:
    format_number(v->num, buf, sizeof(buf));
    return xstrdup(buf);
  case EXPR_STRING:
    return xstrdup(v->str != NULL ? v->str : "");
  }
  return xstrdup("<nil>");
}

/* "string \"heads\"", "number 3", "bool true", "nil": for error messages,
 * truncated and without control characters so a hostile value cannot
 * forge log lines. */
static void describe(const struct expr_value *v, char *buf, size_t size) {
  char num[64];
  switch (v->type) {
  case EXPR_NIL:
    snprintf(buf, size, "nil");
    return;
  case EXPR_BOOL:
    snprintf(buf, size, "bool %s", v->b ? "true" : "false");
    return;
  case EXPR_NUMBER:
    format_number(v->num, num, sizeof(num));
    snprintf(buf, size, "number %s", num);
    return;
  case EXPR_STRING: {
    char shown[48];
    size_t len = strlen(v->str), n = 0;
    for (; n < len && n < 40; n++)
      shown[n] = (unsigned char)v->str[n] < 0x20 || v->str[n] == 0x7f ? '?' : v->str[n];
    shown[n] = '\0';
    snprintf(buf, size, "string \"%s%s\"", shown, len > 40 ? "..." : "");
    return;
  }
  }
  snprintf(buf, size, "?");
}

/* ---- tokens, nodes, parser state --------------------------------------- */

enum tok_kind { T_END, T_NUMBER, T_STRING, T_BOOL, T_NIL, T_WORD, T_OP };

enum op {
  OP_NONE,
  OP_LPAREN,
  OP_RPAREN,
  OP_LBRACKET,
  OP_RBRACKET,
  OP_COMMA,
  OP_QUESTION,
  OP_COLON,
  OP_DOT,
  OP_QDOT,
  OP_NOT,
  OP_NEG,
  OP_POS,
  OP_OR,
  OP_AND,
  OP_EQ,
  OP_NE,
  OP_LT,
  OP_LE,
  OP_GT,
  OP_GE,
  OP_RE,
  OP_NRE,
  OP_IN,
  OP_NOT_IN,
  OP_MATCHES,
  OP_NOT_MATCHES,
  OP_CONTAINS,
  OP_NOT_CONTAINS,
  OP_STARTS,
  OP_NOT_STARTS,
  OP_ENDS,
  OP_NOT_ENDS,
  OP_ADD,
  OP_SUB,
  OP_MUL,
  OP_DIV,
  OP_MOD,
  OP_POW,
  OP_COALESCE,
};

struct token {
  enum tok_kind kind;
  enum op op;
  size_t off, len; /* span in the source */
  double num;
  bool b;
  char *text; /* T_STRING: the decoded value; T_WORD: the name */
};

enum node_kind { N_LITERAL, N_WORD, N_PATH, N_UNARY, N_BINARY, N_TERNARY, N_CALL, N_LIST };

enum fn {
  FN_INT,
  FN_FLOAT,
  FN_STRING,
  FN_LEN,
  FN_LOWER,
  FN_UPPER,
  FN_TRIM,
  /* Argo's additions to expr-lang, and the Sprig functions its docs show */
  FN_TO_JSON,
  FN_JSONPATH,
  FN_SPRIG_INT,
  FN_TRIM_PREFIX,
  FN_TRIM_SUFFIX,
  FN_REPLACE,
  FN_DEFAULT,
};

struct node {
  enum node_kind kind;
  enum op op;
  enum fn fn;
  size_t off, len; /* span of the operator, name or literal */
  int height;
  struct expr_value lit; /* N_LITERAL */
  char *name;            /* N_WORD */
  int a, b, c;           /* operands, -1 if absent; N_PATH/N_CALL/N_LIST: first element in a */
  int next;              /* following element of a path, argument or list chain */
};

struct parser {
  const char *src;
  size_t src_len;
  enum expr_mode mode;
  expr_lookup_fn lookup;
  void *ctx;
  ep_error **err;
  struct token *toks;
  size_t ntoks, toks_cap, pos;
  struct node *nodes;
  size_t nnodes, nodes_cap;
  int depth;
};

__attribute__((format(printf, 3, 4))) static int fail_at(struct parser *p, size_t off,
                                                         const char *fmt, ...) {
  char *msg = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  ep_error_set(p->err, EP_EXIT_USAGE, "%s at offset %zu", msg, off);
  free(msg);
  return -1;
}

/* Source text of a span for messages, at most 40 bytes. */
static int span_len(size_t len) { return len > 40 ? 40 : (int)len; }

static struct token *push_token(struct parser *p, enum tok_kind kind, enum op op, size_t off,
                                size_t len) {
  if (p->ntoks == p->toks_cap) {
    p->toks_cap = p->toks_cap ? p->toks_cap * 2 : 16;
    p->toks = xrealloc(p->toks, p->toks_cap * sizeof(*p->toks));
  }
  struct token *t = &p->toks[p->ntoks++];
  *t = (struct token){.kind = kind, .op = op, .off = off, .len = len};
  return t;
}

/* ---- lexer ------------------------------------------------------------- */

#define M_GOVAL 1u
#define M_EXPR 2u
#define M_BOTH 3u

struct symbol {
  const char *text;
  enum op op;
  unsigned modes;
};

/* Two-character symbols first so that the longest match wins. */
static const struct symbol symbols[] = {
    {"**", OP_POW, M_BOTH},   {"??", OP_COALESCE, M_BOTH}, {"?.", OP_QDOT, M_EXPR},
    {"==", OP_EQ, M_BOTH},    {"!=", OP_NE, M_BOTH},       {"<=", OP_LE, M_BOTH},
    {">=", OP_GE, M_BOTH},    {"=~", OP_RE, M_GOVAL},      {"!~", OP_NRE, M_GOVAL},
    {"&&", OP_AND, M_BOTH},   {"||", OP_OR, M_BOTH},       {"(", OP_LPAREN, M_BOTH},
    {")", OP_RPAREN, M_BOTH}, {"[", OP_LBRACKET, M_EXPR},  {"]", OP_RBRACKET, M_EXPR},
    {",", OP_COMMA, M_BOTH},  {"?", OP_QUESTION, M_BOTH},  {":", OP_COLON, M_BOTH},
    {".", OP_DOT, M_EXPR},    {"<", OP_LT, M_BOTH},        {">", OP_GT, M_BOTH},
    {"!", OP_NOT, M_BOTH},    {"+", OP_ADD, M_BOTH},       {"-", OP_SUB, M_BOTH},
    {"*", OP_MUL, M_BOTH},    {"/", OP_DIV, M_BOTH},       {"%", OP_MOD, M_BOTH},
};

struct keyword {
  const char *text;
  enum op op;
  enum op negated; /* the operator after `not`, or OP_NONE */
};

static const struct keyword exprlang_keywords[] = {
    {"and", OP_AND, OP_NONE},
    {"or", OP_OR, OP_NONE},
    {"in", OP_IN, OP_NOT_IN},
    {"matches", OP_MATCHES, OP_NOT_MATCHES},
    {"contains", OP_CONTAINS, OP_NOT_CONTAINS},
    {"startsWith", OP_STARTS, OP_NOT_STARTS},
    {"endsWith", OP_ENDS, OP_NOT_ENDS},
};

static unsigned mode_bit(const struct parser *p) {
  return p->mode == EXPR_GOVALUATE ? M_GOVAL : M_EXPR;
}

static bool word_char(const struct parser *p, unsigned char c) {
  if (is_alnum(c) || c == '_' || c >= 0x80)
    return true;
  return p->mode == EXPR_GOVALUATE ? c == '.' : c == '$';
}

static bool span_is(const char *s, size_t n, const char *word) {
  return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* With a lookup, a name such as `task-a.Succeeded` or `1st.Failed` is one
 * word if the lookup knows it (Argo rewrites such task names itself).
 * Returns 1 and pushes the word, 0 when it does not apply, -1 on error. */
static int lex_probe_name(struct parser *p, size_t i, size_t *end) {
  if (p->lookup == NULL)
    return 0;
  const char *s = p->src;
  size_t j = i;
  bool has_dash = false, has_word_char = false;
  while (j < p->src_len && (word_char(p, (unsigned char)s[j]) || s[j] == '.' || s[j] == '-')) {
    has_dash |= s[j] == '-';
    has_word_char |= !is_digit((unsigned char)s[j]) && s[j] != '.' && s[j] != '-';
    j++;
  }
  while (j > i && (s[j - 1] == '-' || s[j - 1] == '.'))
    j--;
  if (!has_word_char || !(has_dash || is_digit((unsigned char)s[i])))
    return 0;
  char *name = xstrndup(s + i, j - i);
  struct expr_value v = {.type = EXPR_NIL};
  int found = p->lookup(p->ctx, name, &v);
  expr_value_clear(&v);
  if (found < 0) {
    fail_at(p, i, "cannot resolve '%s'", name);
    free(name);
    return -1;
  }
  if (found == 0) {
    free(name);
    return 0;
  }
  push_token(p, T_WORD, OP_NONE, i, j - i)->text = name;
  *end = j;
  return 1;
}

static int lex_number_govaluate(struct parser *p, size_t i, size_t *end) {
  const char *s = p->src;
  size_t j = i;
  struct token *t;
  if (s[i] == '0' && i + 1 < p->src_len && s[i + 1] == 'x') {
    for (j = i + 2; j < p->src_len && is_hex((unsigned char)s[j]); j++)
      ;
    char *digits = xstrndup(s + i + 2, j - i - 2);
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, 16);
    bool bad = digits[0] == '\0' || errno != 0;
    free(digits);
    if (bad)
      return fail_at(p, i, "unable to parse hex value '%.*s'", span_len(j - i), s + i);
    t = push_token(p, T_NUMBER, OP_NONE, i, j - i);
    t->num = (double)v;
    *end = j;
    return 0;
  }
  while (j < p->src_len && (is_digit((unsigned char)s[j]) || s[j] == '.'))
    j++;
  char *text = xstrndup(s + i, j - i);
  char *stop = NULL;
  double v = strtod(text, &stop);
  bool bad = stop == text || *stop != '\0';
  free(text);
  if (bad)
    return fail_at(p, i, "unable to parse numeric value '%.*s'", span_len(j - i), s + i);
  t = push_token(p, T_NUMBER, OP_NONE, i, j - i);
  t->num = v;
  *end = j;
  return 0;
}

static int lex_number_exprlang(struct parser *p, size_t i, size_t *end) {
  const char *s = p->src;
  size_t n = p->src_len, j = i;
  int base = 10;
  bool is_float = false;
  if (s[j] == '0' && j + 1 < n) {
    char x = s[j + 1];
    base = (x == 'x' || x == 'X')   ? 16
           : (x == 'o' || x == 'O') ? 8
           : (x == 'b' || x == 'B') ? 2
                                    : 10;
    if (base != 10)
      j += 2;
  }
  size_t digits_from = j;
  while (j < n && (s[j] == '_' ||
                   (base == 16 ? is_hex((unsigned char)s[j]) : is_digit((unsigned char)s[j]))))
    j++;
  if (base == 10 && j < n && s[j] == '.' && !(j + 1 < n && s[j + 1] == '.')) {
    is_float = true;
    for (j++; j < n && (is_digit((unsigned char)s[j]) || s[j] == '_'); j++)
      ;
  }
  if (base == 10 && j < n && (s[j] == 'e' || s[j] == 'E')) {
    is_float = true;
    j++;
    if (j < n && (s[j] == '+' || s[j] == '-'))
      j++;
    while (j < n && is_digit((unsigned char)s[j]))
      j++;
  }
  if (j < n && word_char(p, (unsigned char)s[j]))
    return fail_at(p, i, "bad number syntax '%.*s'", span_len(j + 1 - i), s + i);

  struct sbuf clean = {0};
  for (size_t k = digits_from; k < j; k++)
    if (s[k] != '_')
      sb_addc(&clean, s[k]);
  char *text = sb_take(&clean);
  char *stop = NULL;
  double v = 0;
  errno = 0;
  if (is_float) {
    v = strtod(text, &stop);
  } else {
    unsigned long long u = strtoull(text, &stop, base);
    if (errno == 0 && u > (unsigned long long)INT64_MAX)
      errno = ERANGE;
    v = (double)u;
  }
  bool bad = stop == text || *stop != '\0' || (!is_float && errno != 0) || (is_float && isinf(v));
  free(text);
  if (bad)
    return fail_at(p, i, "bad number syntax '%.*s'", span_len(j - i), s + i);
  push_token(p, T_NUMBER, OP_NONE, i, j - i)->num = v;
  *end = j;
  return 0;
}

/* govaluate strings: a backslash takes the next character literally and
 * the string ends at the first quote of either kind. */
static int lex_string_govaluate(struct parser *p, size_t i, size_t *end) {
  struct sbuf b = {0};
  for (size_t j = i + 1; j < p->src_len; j++) {
    char c = p->src[j];
    if (c == '\\') {
      if (++j >= p->src_len)
        break;
      sb_addc(&b, p->src[j]);
      continue;
    }
    if (c == '\'' || c == '"') {
      push_token(p, T_STRING, OP_NONE, i, j + 1 - i)->text = sb_take(&b);
      *end = j + 1;
      return 0;
    }
    sb_addc(&b, c);
  }
  free(b.p);
  return fail_at(p, i, "unterminated string literal");
}

static void put_utf8(struct sbuf *b, uint32_t cp) {
  char out[4];
  size_t n;
  if (cp < 0x80) {
    out[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  sb_addn(b, out, n);
}

/* One Go escape sequence starting after the backslash at s[*j]; advances *j
 * past it.  Returns 0, or -1 with *why set. */
static int decode_escape(const char *s, size_t n, size_t *j, struct sbuf *b, const char **why) {
  char e = s[*j];
  static const char simple_from[] = "abfnrtv\\'\"`";
  static const char simple_to[] = "\a\b\f\n\r\t\v\\'\"`";
  const char *hit = e != '\0' ? strchr(simple_from, e) : NULL;
  if (hit != NULL) {
    sb_addc(b, simple_to[hit - simple_from]);
    (*j)++;
    return 0;
  }
  int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : (e >= '0' && e <= '7') ? 3 : 0;
  if (digits == 0) {
    *why = "invalid escape sequence";
    return -1;
  }
  size_t from = (e >= '0' && e <= '7') ? *j : *j + 1;
  uint32_t v = 0;
  for (int k = 0; k < digits; k++) {
    unsigned char c = from + (size_t)k < n ? (unsigned char)s[from + (size_t)k] : 0;
    bool ok = digits == 3 ? (c >= '0' && c <= '7') : is_hex(c);
    if (!ok) {
      *why = "invalid escape sequence";
      return -1;
    }
    v = v * (digits == 3 ? 8u : 16u) + (uint32_t)(is_digit(c) ? c - '0' : (c | 32) - 'a' + 10);
  }
  *j = from + (size_t)digits;
  if (v == 0) {
    *why = "NUL character in string literal is not supported";
    return -1;
  }
  if (e == 'x' || digits == 3) {
    if (v > 255) {
      *why = "octal escape value above 255";
      return -1;
    }
    sb_addc(b, (char)v);
    return 0;
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    *why = "escape sequence is not a valid Unicode code point";
    return -1;
  }
  put_utf8(b, v);
  return 0;
}

static int lex_string_exprlang(struct parser *p, size_t i, size_t *end) {
  const char *s = p->src;
  char quote = s[i];
  struct sbuf b = {0};
  size_t j = i + 1;
  while (j < p->src_len) {
    char c = s[j];
    if (c == quote) {
      push_token(p, T_STRING, OP_NONE, i, j + 1 - i)->text = sb_take(&b);
      *end = j + 1;
      return 0;
    }
    if (c == '\\' && quote != '`') {
      size_t at = j++;
      const char *why = NULL;
      if (j >= p->src_len)
        break;
      if (decode_escape(s, p->src_len, &j, &b, &why) < 0) {
        free(b.p);
        return fail_at(p, at, "%s", why);
      }
      continue;
    }
    sb_addc(&b, c);
    j++;
  }
  free(b.p);
  return fail_at(p, i, "unterminated string literal");
}

/* govaluate's escaped parameter name: `[any text]`. */
static int lex_bracket_name(struct parser *p, size_t i, size_t *end) {
  struct sbuf b = {0};
  for (size_t j = i + 1; j < p->src_len; j++) {
    char c = p->src[j];
    if (c == '\\') {
      if (++j >= p->src_len)
        break;
      sb_addc(&b, p->src[j]);
      continue;
    }
    if (c == ']') {
      push_token(p, T_WORD, OP_NONE, i, j + 1 - i)->text = sb_take(&b);
      *end = j + 1;
      return 0;
    }
    sb_addc(&b, c);
  }
  free(b.p);
  return fail_at(p, i, "unclosed parameter bracket");
}

static const struct keyword *find_keyword(const char *s, size_t n) {
  for (size_t k = 0; k < sizeof(exprlang_keywords) / sizeof(exprlang_keywords[0]); k++)
    if (span_is(s, n, exprlang_keywords[k].text))
      return &exprlang_keywords[k];
  return NULL;
}

static int lex_word(struct parser *p, size_t i, size_t *end) {
  const char *s = p->src;
  size_t j = i;
  while (j < p->src_len && word_char(p, (unsigned char)s[j]))
    j++;
  const char *w = s + i;
  size_t n = j - i;
  *end = j;
  if (span_is(w, n, "true") || span_is(w, n, "false")) {
    push_token(p, T_BOOL, OP_NONE, i, n)->b = w[0] == 't';
    return 0;
  }
  if (p->mode == EXPR_GOVALUATE) {
    if (span_is(w, n, "in") || span_is(w, n, "IN")) {
      push_token(p, T_OP, OP_IN, i, n);
      return 0;
    }
    if (w[n - 1] == '.')
      return fail_at(p, i, "hanging accessor on token '%.*s'", span_len(n), w);
    push_token(p, T_WORD, OP_NONE, i, n)->text = xstrndup(w, n);
    return 0;
  }
  if (span_is(w, n, "nil")) {
    push_token(p, T_NIL, OP_NONE, i, n);
    return 0;
  }
  if (span_is(w, n, "let") || span_is(w, n, "if") || span_is(w, n, "else"))
    return fail_at(p, i, "unsupported keyword '%.*s'", (int)n, w);
  if (span_is(w, n, "not")) {
    /* `not in`, `not matches`, ... are single negated operators. */
    size_t k = j;
    while (k < p->src_len && is_space((unsigned char)s[k]))
      k++;
    size_t m = k;
    while (m < p->src_len && word_char(p, (unsigned char)s[m]))
      m++;
    const struct keyword *kw = find_keyword(s + k, m - k);
    if (kw != NULL && kw->negated != OP_NONE) {
      push_token(p, T_OP, kw->negated, i, m - i);
      *end = m;
    } else {
      push_token(p, T_OP, OP_NOT, i, n);
    }
    return 0;
  }
  const struct keyword *kw = find_keyword(w, n);
  if (kw != NULL) {
    push_token(p, T_OP, kw->op, i, n);
    return 0;
  }
  push_token(p, T_WORD, OP_NONE, i, n)->text = xstrndup(w, n);
  return 0;
}

static int lex_symbol(struct parser *p, size_t i, size_t *end) {
  const char *s = p->src + i;
  size_t left = p->src_len - i;
  for (size_t k = 0; k < sizeof(symbols) / sizeof(symbols[0]); k++) {
    size_t n = strlen(symbols[k].text);
    if ((symbols[k].modes & mode_bit(p)) && n <= left && memcmp(s, symbols[k].text, n) == 0) {
      push_token(p, T_OP, symbols[k].op, i, n);
      *end = i + n;
      return 0;
    }
  }
  unsigned char c = (unsigned char)s[0];
  if (c >= 0x21 && c < 0x7f)
    return fail_at(p, i, "invalid token '%c'", c);
  return fail_at(p, i, "invalid token (byte 0x%02x)", c);
}

static int lex(struct parser *p) {
  size_t i = 0;
  while (i < p->src_len) {
    unsigned char c = (unsigned char)p->src[i];
    size_t end = i;
    int r = 0;
    if (is_space(c)) {
      i++;
      continue;
    }
    if (p->ntoks >= EXPR_MAX_TOKENS)
      return fail_at(p, i, "expression has too many tokens (more than %d)", EXPR_MAX_TOKENS);
    bool govaluate = p->mode == EXPR_GOVALUATE;
    bool starts_number =
        is_digit(c) ||
        (c == '.' && (govaluate || (i + 1 < p->src_len && is_digit((unsigned char)p->src[i + 1]))));
    bool starts_word = is_alpha(c) || c >= 0x80 || (!govaluate && (c == '_' || c == '$'));
    if (starts_number || starts_word) {
      r = lex_probe_name(p, i, &end);
      if (r < 0)
        return -1;
      if (r > 0) {
        i = end;
        continue;
      }
    }
    if (starts_number)
      r = govaluate ? lex_number_govaluate(p, i, &end) : lex_number_exprlang(p, i, &end);
    else if (starts_word)
      r = lex_word(p, i, &end);
    else if (c == '\'' || c == '"')
      r = govaluate ? lex_string_govaluate(p, i, &end) : lex_string_exprlang(p, i, &end);
    else if (c == '`' && !govaluate)
      r = lex_string_exprlang(p, i, &end);
    else if (c == '[' && govaluate)
      r = lex_bracket_name(p, i, &end);
    else
      r = lex_symbol(p, i, &end);
    if (r < 0)
      return -1;
    i = end;
  }
  push_token(p, T_END, OP_NONE, p->src_len, 0);
  return 0;
}

/* ---- parser ------------------------------------------------------------ */

static struct token *peek(struct parser *p) { return &p->toks[p->pos]; }

static bool peek_op(struct parser *p, enum op op) {
  const struct token *t = peek(p);
  return t->kind == T_OP && t->op == op;
}

static struct token *advance(struct parser *p) {
  struct token *t = &p->toks[p->pos];
  if (t->kind != T_END)
    p->pos++;
  return t;
}

static int unexpected(struct parser *p) {
  const struct token *t = peek(p);
  if (t->kind == T_END)
    return fail_at(p, t->off, "unexpected end of expression");
  return fail_at(p, t->off, "unexpected '%.*s'", span_len(t->len), p->src + t->off);
}

static int expect_close(struct parser *p, enum op op, const char *what, size_t open_off) {
  if (peek_op(p, op)) {
    advance(p);
    return 0;
  }
  const struct token *t = peek(p);
  if (t->kind == T_END)
    return fail_at(p, t->off, "missing '%s' for the one opened at offset %zu", what, open_off);
  return fail_at(p, t->off, "expected '%s' (opened at offset %zu) but found '%.*s'", what, open_off,
                 span_len(t->len), p->src + t->off);
}

static int new_node(struct parser *p, enum node_kind kind, size_t off, size_t len) {
  if (p->nnodes == p->nodes_cap) {
    p->nodes_cap = p->nodes_cap ? p->nodes_cap * 2 : 16;
    p->nodes = xrealloc(p->nodes, p->nodes_cap * sizeof(*p->nodes));
  }
  p->nodes[p->nnodes] = (struct node){
      .kind = kind, .off = off, .len = len, .height = 1, .a = -1, .b = -1, .c = -1, .next = -1};
  return (int)p->nnodes++;
}

static int child_height(const struct parser *p, int idx, bool chain) {
  int h = 0;
  while (idx >= 0) {
    if (p->nodes[idx].height > h)
      h = p->nodes[idx].height;
    if (!chain)
      break;
    idx = p->nodes[idx].next;
  }
  return h;
}

/* Bounds the tree height so evaluation cannot exhaust the stack, whatever
 * shape the input has (long `a && b && ...` chains do not nest the parser). */
static int finish_node(struct parser *p, int idx) {
  struct node *n = &p->nodes[idx];
  bool chain = n->kind == N_PATH || n->kind == N_CALL || n->kind == N_LIST;
  int h = child_height(p, n->a, chain);
  int hb = child_height(p, n->b, false), hc = child_height(p, n->c, false);
  h = hb > h ? hb : h;
  h = hc > h ? hc : h;
  n->height = h + 1;
  if (n->height > EXPR_MAX_TREE_DEPTH)
    return fail_at(p, n->off, "expression too deeply nested (more than %d levels)",
                   EXPR_MAX_TREE_DEPTH);
  return idx;
}

static int literal_node(struct parser *p, const struct token *t, struct expr_value v) {
  int idx = new_node(p, N_LITERAL, t->off, t->len);
  p->nodes[idx].lit = v;
  return idx;
}

static int binary_prec(enum expr_mode mode, enum op op, bool *right_assoc) {
  *right_assoc = false;
  switch (op) {
  case OP_COALESCE:
    return mode == EXPR_GOVALUATE ? 5 : 500;
  case OP_OR:
    return 10;
  case OP_AND:
    return 15;
  case OP_EQ:
  case OP_NE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_RE:
  case OP_NRE:
  case OP_IN:
  case OP_NOT_IN:
  case OP_MATCHES:
  case OP_NOT_MATCHES:
  case OP_CONTAINS:
  case OP_NOT_CONTAINS:
  case OP_STARTS:
  case OP_NOT_STARTS:
  case OP_ENDS:
  case OP_NOT_ENDS:
    return 20;
  case OP_ADD:
  case OP_SUB:
    return 30;
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
    return 60;
  case OP_POW:
    *right_assoc = mode == EXPR_EXPRLANG;
    return 100;
  default:
    return -1;
  }
}

/* govaluate prefixes bind tighter than everything; expr-lang's `not`/`!`
 * bind looser than arithmetic but tighter than comparisons. */
static int unary_prec(enum expr_mode mode, enum op op) {
  if (mode == EXPR_GOVALUATE)
    return (op == OP_NOT || op == OP_SUB) ? 200 : -1;
  if (op == OP_NOT)
    return 50;
  return (op == OP_SUB || op == OP_ADD) ? 90 : -1;
}

static int parse_expr(struct parser *p);
static int parse_binary(struct parser *p, int min_prec);

/* Elements separated by commas up to the closing op; first index in *first. */
static int parse_sequence(struct parser *p, enum op close, const char *what, size_t open_off,
                          int first_elem, int *first, int *count) {
  int tail = first_elem;
  *first = first_elem;
  *count = first_elem >= 0 ? 1 : 0;
  if (first_elem < 0 && peek_op(p, close)) {
    advance(p);
    return 0;
  }
  for (;;) {
    if (tail >= 0) {
      if (!peek_op(p, OP_COMMA))
        break;
      advance(p);
    }
    int e = parse_expr(p);
    if (e < 0)
      return -1;
    if (tail >= 0)
      p->nodes[tail].next = e;
    else
      *first = e;
    tail = e;
    (*count)++;
  }
  return expect_close(p, close, what, open_off);
}

#define MAX_CALL_ARGS 3

static const struct {
  const char *name;
  enum fn fn;
  int n_args;
} functions[] = {
    {"asInt", FN_INT, 1},
    {"int", FN_INT, 1},
    {"asFloat", FN_FLOAT, 1},
    {"float", FN_FLOAT, 1},
    {"string", FN_STRING, 1},
    {"len", FN_LEN, 1},
    {"lower", FN_LOWER, 1},
    {"upper", FN_UPPER, 1},
    {"trim", FN_TRIM, 1},
    {"toJson", FN_TO_JSON, 1},
    {"jsonpath", FN_JSONPATH, 2},
    {"sprig.trim", FN_TRIM, 1},
    {"sprig.upper", FN_UPPER, 1},
    {"sprig.lower", FN_LOWER, 1},
    {"sprig.int", FN_SPRIG_INT, 1},
    {"sprig.trimPrefix", FN_TRIM_PREFIX, 2},
    {"sprig.trimSuffix", FN_TRIM_SUFFIX, 2},
    {"sprig.replace", FN_REPLACE, 3},
    {"sprig.default", FN_DEFAULT, 2},
};

static int parse_call(struct parser *p, const struct token *name) {
  size_t k = 0, nfn = sizeof(functions) / sizeof(functions[0]);
  while (k < nfn && strcmp(functions[k].name, name->text) != 0)
    k++;
  if (k == nfn)
    return fail_at(p, name->off, "unknown function '%s'", name->text);
  size_t open_off = advance(p)->off;
  int first = -1, count = 0;
  if (parse_sequence(p, OP_RPAREN, ")", open_off, -1, &first, &count) < 0)
    return -1;
  if (count != functions[k].n_args)
    return functions[k].n_args == 1
               ? fail_at(p, name->off, "function '%s' takes exactly one argument, got %d",
                         name->text, count)
               : fail_at(p, name->off, "function '%s' takes %d arguments, got %d", name->text,
                         functions[k].n_args, count);
  int idx = new_node(p, N_CALL, name->off, name->len);
  p->nodes[idx].fn = functions[k].fn;
  p->nodes[idx].a = first;
  return finish_node(p, idx);
}

static int string_literal_node(struct parser *p, size_t off, size_t len, char *text) {
  int idx = new_node(p, N_LITERAL, off, len);
  p->nodes[idx].lit = (struct expr_value){.type = EXPR_STRING, .str = text};
  return idx;
}

/* expr-lang member access: a.b, a?.b, a["b"], a[expr], collected as path
 * segments and looked up as one dotted name at evaluation time. */
static int parse_path(struct parser *p, struct token *root) {
  int path = new_node(p, N_PATH, root->off, root->len);
  int tail = string_literal_node(p, root->off, root->len, root->text);
  root->text = NULL;
  p->nodes[path].a = tail;
  for (;;) {
    int seg;
    if (peek_op(p, OP_DOT) || peek_op(p, OP_QDOT)) {
      advance(p);
      struct token *t = peek(p);
      if (t->kind != T_WORD)
        return unexpected(p);
      advance(p);
      seg = string_literal_node(p, t->off, t->len, t->text);
      t->text = NULL;
    } else if (peek_op(p, OP_LBRACKET)) {
      size_t open_off = advance(p)->off;
      seg = parse_expr(p);
      if (seg < 0 || expect_close(p, OP_RBRACKET, "]", open_off) < 0)
        return -1;
    } else {
      break;
    }
    p->nodes[tail].next = seg;
    tail = seg;
    p->nodes[path].len = p->toks[p->pos - 1].off + p->toks[p->pos - 1].len - root->off;
  }
  return finish_node(p, path);
}

static int parse_list(struct parser *p, enum op close, const char *what, size_t open_off,
                      int first_elem) {
  int first = -1, count = 0;
  if (parse_sequence(p, close, what, open_off, first_elem, &first, &count) < 0)
    return -1;
  int idx = new_node(p, N_LIST, open_off, 1);
  p->nodes[idx].a = first;
  return finish_node(p, idx);
}

static int parse_primary(struct parser *p) {
  struct token *t = peek(p);
  switch (t->kind) {
  case T_NUMBER:
    advance(p);
    return literal_node(p, t, (struct expr_value){.type = EXPR_NUMBER, .num = t->num});
  case T_BOOL:
    advance(p);
    return literal_node(p, t, (struct expr_value){.type = EXPR_BOOL, .b = t->b});
  case T_NIL:
    advance(p);
    return literal_node(p, t, (struct expr_value){.type = EXPR_NIL});
  case T_STRING: {
    advance(p);
    int idx = string_literal_node(p, t->off, t->len, t->text);
    t->text = NULL;
    return idx;
  }
  case T_WORD:
    advance(p);
    if (p->mode == EXPR_EXPRLANG) {
      if (peek_op(p, OP_LPAREN))
        return parse_call(p, t);
      if (strcmp(t->text, "sprig") == 0 && p->pos + 2 < p->ntoks &&
          p->toks[p->pos].kind == T_OP && p->toks[p->pos].op == OP_DOT &&
          p->toks[p->pos + 1].kind == T_WORD && p->toks[p->pos + 2].kind == T_OP &&
          p->toks[p->pos + 2].op == OP_LPAREN) {
        /* Argo puts Sprig's functions under `sprig.`: one call, not a path. */
        struct token fn = p->toks[p->pos + 1];
        advance(p);
        advance(p);
        char name[64];
        snprintf(name, sizeof(name), "sprig.%s", fn.text);
        fn.text = name;
        fn.off = t->off;
        return parse_call(p, &fn);
      }
      return parse_path(p, t);
    } else {
      int idx = new_node(p, N_WORD, t->off, t->len);
      p->nodes[idx].name = t->text;
      t->text = NULL;
      return idx;
    }
  case T_OP:
    if (t->op == OP_LPAREN) {
      size_t open_off = advance(p)->off;
      int inner = parse_expr(p);
      if (inner < 0)
        return -1;
      /* govaluate writes the list for `in` as (a, b, c). */
      if (p->mode == EXPR_GOVALUATE && peek_op(p, OP_COMMA))
        return parse_list(p, OP_RPAREN, ")", open_off, inner);
      if (expect_close(p, OP_RPAREN, ")", open_off) < 0)
        return -1;
      return inner;
    }
    if (t->op == OP_LBRACKET) {
      size_t open_off = advance(p)->off;
      return parse_list(p, OP_RBRACKET, "]", open_off, -1);
    }
    return unexpected(p);
  case T_END:
    break;
  }
  return unexpected(p);
}

static int parse_unary(struct parser *p) {
  struct token *t = peek(p);
  int prec = t->kind == T_OP ? unary_prec(p->mode, t->op) : -1;
  if (prec < 0)
    return parse_primary(p);
  advance(p);
  int operand = parse_binary(p, prec);
  if (operand < 0)
    return -1;
  int idx = new_node(p, N_UNARY, t->off, t->len);
  p->nodes[idx].op = t->op == OP_SUB ? OP_NEG : t->op == OP_ADD ? OP_POS : OP_NOT;
  p->nodes[idx].a = operand;
  return finish_node(p, idx);
}

/* Precedence climbing.  The depth counter covers every way the grammar
 * recurses (parentheses, prefixes, right-associative chains, ternaries). */
static int parse_binary(struct parser *p, int min_prec) {
  if (++p->depth > EXPR_MAX_NESTING)
    return fail_at(p, peek(p)->off, "expression nested too deeply (more than %d levels)",
                   EXPR_MAX_NESTING);
  int left = parse_unary(p);
  while (left >= 0) {
    struct token *t = peek(p);
    bool right_assoc = false;
    int prec = t->kind == T_OP ? binary_prec(p->mode, t->op, &right_assoc) : -1;
    if (prec < 0 || prec < min_prec)
      break;
    advance(p);
    int right = parse_binary(p, right_assoc ? prec : prec + 1);
    if (right < 0)
      return -1;
    int idx = new_node(p, N_BINARY, t->off, t->len);
    p->nodes[idx].op = t->op;
    p->nodes[idx].a = left;
    p->nodes[idx].b = right;
    left = finish_node(p, idx);
  }
  p->depth--;
  return left;
}

/* A ternary's branches recurse through here rather than parse_binary, so
 * they are counted against the nesting limit too. */
static int parse_branch(struct parser *p) {
  if (++p->depth > EXPR_MAX_NESTING)
    return fail_at(p, peek(p)->off, "expression nested too deeply (more than %d levels)",
                   EXPR_MAX_NESTING);
  int r = parse_expr(p);
  p->depth--;
  return r;
}

static int parse_expr(struct parser *p) {
  int cond = parse_binary(p, 0);
  if (cond < 0 || !peek_op(p, OP_QUESTION))
    return cond;
  struct token *q = advance(p);
  int yes = parse_branch(p);
  if (yes < 0)
    return -1;
  if (!peek_op(p, OP_COLON)) {
    if (peek(p)->kind == T_END)
      return fail_at(p, peek(p)->off, "missing ':' for the '?' at offset %zu", q->off);
    return unexpected(p);
  }
  advance(p);
  int no = parse_branch(p);
  if (no < 0)
    return -1;
  int idx = new_node(p, N_TERNARY, q->off, q->len);
  p->nodes[idx].a = cond;
  p->nodes[idx].b = yes;
  p->nodes[idx].c = no;
  return finish_node(p, idx);
}

/* ---- regular expressions ----------------------------------------------- */

/* One bracket expression starting at s[*i] == '['.  RE2 escapes inside
 * brackets have no POSIX meaning, so literal ']', '-' and '^' are moved to
 * the positions where POSIX reads them literally. */
static int translate_bracket(const char *s, size_t *i, struct sbuf *out, const char **why) {
  size_t j = *i + 1;
  bool neg = false, rbracket = false, dash = false, caret = false, first = true;
  struct sbuf body = {0};
  if (s[j] == '^') {
    neg = true;
    j++;
  }
  for (;;) {
    char c = s[j], lit;
    if (c == '\0') {
      free(body.p);
      *why = "missing closing ]";
      return -1;
    }
    if (c == ']' && !first) {
      j++;
      break;
    }
    first = false;
    if (c == '[' && s[j + 1] == ':') {
      const char *close = strstr(s + j + 2, ":]");
      if (close == NULL) {
        free(body.p);
        *why = "missing closing :]";
        return -1;
      }
      sb_addn(&body, s + j, (size_t)(close + 2 - (s + j)));
      j = (size_t)(close + 2 - s);
      continue;
    }
    if (c == '\\') {
      char e = s[j + 1];
      const char *cls = e == 'd' ? "0-9" : e == 's' ? "[:space:]" : e == 'w' ? "[:alnum:]_" : NULL;
      if (cls != NULL) {
        sb_add(&body, cls);
        j += 2;
        continue;
      }
      static const char ctl_from[] = "tnrfv", ctl_to[] = "\t\n\r\f\v";
      const char *ctl = e != '\0' ? strchr(ctl_from, e) : NULL;
      if (ctl != NULL)
        lit = ctl_to[ctl - ctl_from];
      else if (e != '\0' && !is_alnum((unsigned char)e))
        lit = e;
      else {
        free(body.p);
        *why = "unsupported escape inside brackets";
        return -1;
      }
      j += 2;
    } else {
      lit = c;
      j++;
    }
    if (s[j] == '-' && s[j + 1] != ']' && s[j + 1] != '\0') {
      char hi = s[j + 1];
      size_t step = 2;
      if (hi == '\\' && s[j + 2] != '\0' && !is_alnum((unsigned char)s[j + 2])) {
        hi = s[j + 2];
        step = 3;
      }
      sb_addc(&body, lit);
      sb_addc(&body, '-');
      sb_addc(&body, hi);
      j += step;
      continue;
    }
    if (lit == ']')
      rbracket = true;
    else if (lit == '-')
      dash = true;
    else if (lit == '^')
      caret = true;
    else
      sb_addc(&body, lit);
  }
  if (!neg && !rbracket && body.n == 0 && caret) {
    sb_add(out, dash ? "[-^]" : "\\^");
  } else {
    sb_add(out, neg ? "[^" : "[");
    if (rbracket)
      sb_addc(out, ']');
    if (body.p != NULL)
      sb_add(out, body.p);
    if (caret)
      sb_addc(out, '^');
    if (dash)
      sb_addc(out, '-');
    sb_addc(out, ']');
  }
  free(body.p);
  *i = j;
  return 0;
}

/* Go rejects counts above 1000 and nested counts whose product is above
 * 1000; glibc would instead expand them into huge automata. */
#define RE_MAX_REPEAT 1000
#define RE_MAX_GROUPS 1000
/* Patterns Go compiles in linear space that make glibc's regcomp blow up
 * (found by fuzzing; each took seconds to minutes and gigabytes):
 *  - glibc copies a repeated operand once per copy ("a+" becomes "aa*"),
 *    so stacked or nested repeats grow exponentially: like Go, nested
 *    repetition operators ("a++") are refused, and the size of the pattern
 *    with every repeat expanded is capped;
 *  - a loop over something that can match the empty string ("(a*)+",
 *    "(()+)+") makes its epsilon closures explode: refused, a documented
 *    difference from Go (write "a*" for "(a*)+");
 *  - a run of n optional parts ("a?" n times, also once expanded) costs
 *    n^2 in epsilon closures: their number is capped. */
#define RE_MAX_EXPANDED 50000
#define RE_MAX_OPTIONAL 2000

struct re_state {
  struct sbuf out;
  int group_max[RE_MAX_GROUPS + 1]; /* largest repeat product inside each open group */
  int depth;
  int last_inner; /* repeat product inside the atom a quantifier would apply to */
  bool after_quantifier;
  long size[RE_MAX_GROUPS + 1]; /* expanded atoms in each open group so far */
  long last_size;               /* expanded atoms of what a quantifier would repeat */
  long opt[RE_MAX_GROUPS + 1];  /* expanded optional parts and anchors in each open group */
  long last_opt;                /* the same inside what a quantifier would repeat */
  bool quantified;              /* the last token was a quantifier (with its lazy '?') */
  bool alt_empty[RE_MAX_GROUPS + 1];   /* the group's current alternative matches "" so far */
  bool group_empty[RE_MAX_GROUPS + 1]; /* an earlier alternative of the group matches "" */
  bool empty_before_last;              /* alt_empty before the last atom was added */
  bool last_empty;                     /* the last atom can match "" */
};

static int re_grow(struct re_state *st, long add, long add_opt, const char **why) {
  st->size[st->depth] += add;
  st->opt[st->depth] += add_opt;
  if (st->size[st->depth] > RE_MAX_EXPANDED) {
    *why = "expression too large once its repeats are expanded";
    return -1;
  }
  if (st->opt[st->depth] > RE_MAX_OPTIONAL) {
    *why = "too many optional parts once its repeats are expanded";
    return -1;
  }
  return 0;
}

/* A character, class, anchor (which matches "") or closed group holding
 * opt optional parts. */
static int re_atom(struct re_state *st, long size, bool matches_empty, long opt,
                   const char **why) {
  st->last_size = size;
  st->last_opt = opt;
  st->quantified = false;
  st->empty_before_last = st->alt_empty[st->depth];
  st->last_empty = matches_empty;
  st->alt_empty[st->depth] = st->empty_before_last && matches_empty;
  return re_grow(st, size, opt, why);
}

/* The last atom becomes `copies` copies of itself in glibc's tree, of which
 * `optional` may be skipped; min is the quantifier's lower bound, loop
 * whether it has no upper bound. */
static int re_repeat(struct re_state *st, long copies, long optional, long min, bool loop,
                     const char **why) {
  if (st->quantified) {
    *why = "invalid nested repetition operator";
    return -1;
  }
  if (loop && st->last_empty && st->last_size > 0) {
    *why = "cannot repeat without bound something that can match the empty string, as in "
           "(a*)+ (write a* instead)";
    return -1;
  }
  st->quantified = true;
  if (min == 0) {
    st->last_empty = true;
    st->alt_empty[st->depth] = st->empty_before_last;
  }
  if (copies < 1)
    copies = 1;
  long add = st->last_size * (copies - 1);
  long add_opt = st->last_opt * (copies - 1) + optional;
  st->last_size *= copies;
  st->last_opt = st->last_opt * copies + optional;
  return re_grow(st, add, add_opt, why);
}

/* `{m}`, `{m,}` or `{m,n}` at pat[i]: its length, or 0 for a literal brace. */
static size_t parse_interval(const char *pat, size_t i, long *min, long *max) {
  size_t j = i + 1;
  *min = 0;
  *max = -1;
  if (!is_digit((unsigned char)pat[j]))
    return 0;
  for (; is_digit((unsigned char)pat[j]); j++)
    *min = *min > 100000 ? *min : *min * 10 + (pat[j] - '0');
  if (pat[j] == ',') {
    j++;
    if (is_digit((unsigned char)pat[j]))
      *max = 0;
    for (; is_digit((unsigned char)pat[j]); j++)
      *max = *max > 100000 ? *max : *max * 10 + (pat[j] - '0');
  } else {
    *max = *min;
  }
  return pat[j] == '}' ? j + 1 - i : 0;
}

static int re_interval(struct re_state *st, const char *pat, size_t *i, const char **why) {
  long min, max;
  size_t n = parse_interval(pat, *i, &min, &max);
  if (n == 0) {
    sb_add(&st->out, "\\{"); /* RE2 reads a brace that starts no interval literally */
    st->last_inner = 1;
    (*i)++;
    return re_atom(st, 1, false, 0, why);
  }
  long count = max >= 0 ? max : min;
  if (min > RE_MAX_REPEAT || max > RE_MAX_REPEAT || (max >= 0 && max < min)) {
    *why = "invalid repeat count";
    return -1;
  }
  long product = count > 0 ? count * st->last_inner : st->last_inner;
  if (product > RE_MAX_REPEAT) {
    *why = "invalid nested repetition (counts multiply beyond 1000)";
    return -1;
  }
  if (product > st->group_max[st->depth])
    st->group_max[st->depth] = (int)product;
  /* {m,} is m copies and a starred one; {m,n} n copies; {0} none. */
  if (re_repeat(st, max >= 0 ? max : min + 1, max >= 0 ? max - min : 1, min, max < 0, why) < 0)
    return -1;
  sb_addn(&st->out, pat + *i, n);
  *i += n;
  st->after_quantifier = true;
  return 0;
}

static int re_escape(struct re_state *st, const char *pat, size_t *i, const char **why) {
  static const char *const classes[][2] = {
      {"d", "[0-9]"},
      {"D", "[^0-9]"},
      {"s", "[[:space:]]"},
      {"S", "[^[:space:]]"},
      {"w", "[[:alnum:]_]"},
      {"W", "[^[:alnum:]_]"},
      {"A", "^"},
      {"z", "$"},
      {"t", "\t"},
      {"n", "\n"},
      {"r", "\r"},
      {"f", "\f"},
      {"v", "\v"},
      {"b", "\\b"},
      {"B", "\\B"},
  };
  char e = pat[*i + 1];
  const char *rep = NULL;
  for (size_t k = 0; e != '\0' && k < sizeof(classes) / sizeof(classes[0]); k++)
    if (classes[k][0][0] == e)
      rep = classes[k][1];
  if (rep != NULL) {
    sb_add(&st->out, rep);
  } else if (e != '\0' && !is_alnum((unsigned char)e) && (unsigned char)e < 0x80) {
    /* POSIX leaves a backslash before an ordinary character undefined. */
    if (strchr(".[]()*+?{}|^$\\", e) != NULL)
      sb_addc(&st->out, '\\');
    sb_addc(&st->out, e);
  } else {
    *why = e == '\0' ? "trailing backslash" : "unsupported escape";
    return -1;
  }
  *i += 2;
  return 0;
}

static int re_open_group(struct re_state *st, const char *pat, size_t *i, const char **why) {
  if (pat[*i + 1] != '?') {
    (*i)++;
  } else if (pat[*i + 2] == ':') {
    *i += 3;
  } else if (pat[*i + 2] == '<' || (pat[*i + 2] == 'P' && pat[*i + 3] == '<')) {
    const char *gt = strchr(pat + *i, '>');
    if (gt == NULL) {
      *why = "unterminated group name";
      return -1;
    }
    *i = (size_t)(gt + 1 - pat);
  } else {
    *why = "unsupported group flags";
    return -1;
  }
  if (st->depth == RE_MAX_GROUPS) {
    *why = "groups nested too deeply";
    return -1;
  }
  st->group_max[++st->depth] = 1;
  st->size[st->depth] = 0;
  st->opt[st->depth] = 0;
  st->alt_empty[st->depth] = true;
  st->group_empty[st->depth] = false;
  st->last_size = 0;
  st->quantified = false;
  sb_addc(&st->out, '(');
  return 0;
}

/* Translate the RE2 forms listed in expr.h into POSIX ERE. */
static int re2_to_ere(const char *pat, char **out, int *cflags, const char **why) {
  struct re_state st = {.depth = 0, .last_inner = 1};
  st.group_max[0] = 1;
  st.alt_empty[0] = true;
  size_t i = 0;
  int rc = 0;
  *cflags = REG_EXTENDED | REG_NOSUB;
  if (strncmp(pat, "(?i)", 4) == 0) {
    *cflags |= REG_ICASE;
    i = 4;
  }
  while (rc == 0 && pat[i] != '\0') {
    char c = pat[i];
    bool was_quantifier = st.after_quantifier;
    st.after_quantifier = false;
    if (c == '\\') {
      bool anchor = pat[i + 1] != '\0' && strchr("AzbB", pat[i + 1]) != NULL;
      rc = re_escape(&st, pat, &i, why);
      st.last_inner = 1;
      if (rc == 0)
        rc = re_atom(&st, 1, anchor, anchor, why);
    } else if (c == '[') {
      rc = translate_bracket(pat, &i, &st.out, why);
      st.last_inner = 1;
      if (rc == 0)
        rc = re_atom(&st, 1, false, 0, why);
    } else if (c == '(') {
      rc = re_open_group(&st, pat, &i, why);
    } else if (c == ')' && st.depth > 0) {
      /* glibc keeps a node for the group itself: "()" is not free. */
      long size = st.size[st.depth] + 1, opt = st.opt[st.depth];
      bool empty = st.group_empty[st.depth] || st.alt_empty[st.depth];
      st.last_inner = st.group_max[st.depth--];
      if (st.last_inner > st.group_max[st.depth])
        st.group_max[st.depth] = st.last_inner;
      rc = re_atom(&st, size, empty, opt, why);
      sb_addc(&st.out, ')');
      i++;
    } else if (c == '{') {
      rc = re_interval(&st, pat, &i, why);
    } else if (c == '?' && was_quantifier) {
      i++; /* lazy quantifier: same yes/no answer as the greedy one */
    } else {
      sb_addc(&st.out, c);
      st.after_quantifier = c == '*' || c == '+' || c == '?';
      if (!st.after_quantifier)
        st.last_inner = 1;
      if (st.after_quantifier) {
        rc = re_repeat(&st, c == '+' ? 2 : 1, 1, c == '+' ? 1 : 0, c != '?', why);
      } else if (c == '|') {
        st.group_empty[st.depth] |= st.alt_empty[st.depth];
        st.alt_empty[st.depth] = true;
        st.last_size = 0; /* nothing before a quantifier here to repeat */
        st.quantified = false;
      } else {
        bool anchor = c == '^' || c == '$';
        rc = re_atom(&st, 1, anchor, anchor, why);
      }
      i++;
    }
  }
  if (rc < 0) {
    free(st.out.p);
    return -1;
  }
  *out = sb_take(&st.out);
  return 0;
}

static int regex_match(struct parser *p, size_t off, const char *subject, const char *pattern,
                       bool *matched) {
  char *ere = NULL;
  int cflags = 0;
  const char *why = NULL;
  if (re2_to_ere(pattern, &ere, &cflags, &why) < 0)
    return fail_at(p, off, "invalid regular expression '%.60s': %s", pattern, why);
  regex_t re;
  int rc = regcomp(&re, ere, cflags);
  free(ere);
  if (rc != 0) {
    char msg[128];
    regerror(rc, &re, msg, sizeof(msg));
    return fail_at(p, off, "invalid regular expression '%.60s': %s", pattern, msg);
  }
  rc = regexec(&re, subject, 0, NULL, 0);
  regfree(&re);
  if (rc != 0 && rc != REG_NOMATCH)
    return fail_at(p, off, "regular expression '%.60s' failed to run", pattern);
  *matched = rc == 0;
  return 0;
}

/* ---- evaluation -------------------------------------------------------- */

static int eval(struct parser *p, int idx, struct expr_value *out);

static int op_error(struct parser *p, const struct node *n, const char *what,
                    const struct expr_value *l, const struct expr_value *r) {
  char dl[96], dr[96];
  describe(l, dl, sizeof(dl));
  if (r == NULL)
    return fail_at(p, n->off, "'%.*s' %s, got %s", span_len(n->len), p->src + n->off, what, dl);
  describe(r, dr, sizeof(dr));
  return fail_at(p, n->off, "'%.*s' %s, got %s and %s", span_len(n->len), p->src + n->off, what, dl,
                 dr);
}

/* Calls the lookup; returns 1 found, 0 unknown, -1 error. */
static int resolve(struct parser *p, size_t off, const char *name, struct expr_value *out) {
  struct expr_value v = {.type = EXPR_NIL};
  int found = p->lookup != NULL ? p->lookup(p->ctx, name, &v) : 0;
  if (found <= 0) {
    expr_value_clear(&v);
    if (found < 0)
      return fail_at(p, off, "cannot resolve '%s'", name);
    return 0;
  }
  if (v.type == EXPR_STRING && v.str == NULL)
    v.str = xstrdup("");
  if (v.type != EXPR_STRING && v.str != NULL) {
    free(v.str);
    v.str = NULL;
  }
  if (v.type != EXPR_NIL && v.type != EXPR_BOOL && v.type != EXPR_NUMBER && v.type != EXPR_STRING) {
    v.type = EXPR_NIL;
    return fail_at(p, off, "lookup of '%s' returned an invalid value", name);
  }
  *out = v;
  return 1;
}

static int eval_word(struct parser *p, const struct node *n, struct expr_value *out) {
  int found = resolve(p, n->off, n->name, out);
  if (found != 0)
    return found < 0 ? -1 : 0;
  /* govaluate reads a dotted word as a parameter accessor, which Argo
   * never turns into a string: with no such parameter it fails. */
  if (strchr(n->name, '.') != NULL)
    return fail_at(p, n->off,
                   "no parameter '%s' found (a dotted word is an accessor, not a string; quote it)",
                   n->name);
  expr_value_set_string(out, n->name);
  return 0;
}

static int eval_path(struct parser *p, const struct node *n, struct expr_value *out) {
  struct sbuf name = {0};
  int rc = -1;
  for (int seg = n->a; seg >= 0; seg = p->nodes[seg].next) {
    struct expr_value v = {.type = EXPR_NIL};
    if (eval(p, seg, &v) < 0)
      goto cleanup;
    if (v.type != EXPR_STRING && v.type != EXPR_NUMBER) {
      op_error(p, &p->nodes[seg], "cannot be used as a member name", &v, NULL);
      expr_value_clear(&v);
      goto cleanup;
    }
    char *text = expr_value_to_string(&v);
    if (name.n > 0)
      sb_addc(&name, '.');
    sb_add(&name, text);
    free(text);
    expr_value_clear(&v);
  }
  char *full = sb_take(&name);
  int found = resolve(p, n->off, full, out);
  free(full);
  if (found < 0)
    goto cleanup;
  rc = 0; /* an unknown name is nil, as in expr-lang */
cleanup:
  free(name.p);
  return rc;
}

static bool values_equal(const struct expr_value *l, const struct expr_value *r) {
  if (l->type != r->type)
    return false;
  switch (l->type) {
  case EXPR_NIL:
    return true;
  case EXPR_BOOL:
    return l->b == r->b;
  case EXPR_NUMBER:
    return l->num == r->num;
  case EXPR_STRING:
    return strcmp(l->str, r->str) == 0;
  }
  return false;
}

static int eval_compare(struct parser *p, const struct node *n, const struct expr_value *l,
                        const struct expr_value *r, bool *res) {
  int c;
  if (l->type == EXPR_NUMBER && r->type == EXPR_NUMBER) {
    double a = l->num, b = r->num;
    switch (n->op) {
    case OP_LT:
      *res = a < b;
      return 0;
    case OP_LE:
      *res = a <= b;
      return 0;
    case OP_GT:
      *res = a > b;
      return 0;
    default:
      *res = a >= b;
      return 0;
    }
  }
  if (l->type != EXPR_STRING || r->type != EXPR_STRING)
    return op_error(p, n, "needs two numbers or two strings", l, r);
  c = strcmp(l->str, r->str);
  *res = n->op == OP_LT ? c < 0 : n->op == OP_LE ? c <= 0 : n->op == OP_GT ? c > 0 : c >= 0;
  return 0;
}

static bool is_integral(double x) { return isfinite(x) && x == trunc(x); }

static double divide(double a, double b) {
  if (b != 0)
    return a / b;
  /* IEEE results, spelled out so no sanitizer sees a division by zero. */
  if (a == 0 || isnan(a))
    return NAN;
  return (signbit(a) != signbit(b)) ? -INFINITY : INFINITY;
}

static int eval_arith(struct parser *p, const struct node *n, const struct expr_value *l,
                      const struct expr_value *r, struct expr_value *out) {
  bool numbers = l->type == EXPR_NUMBER && r->type == EXPR_NUMBER;
  if (n->op == OP_ADD && !numbers) {
    bool concat = p->mode == EXPR_GOVALUATE ? (l->type == EXPR_STRING || r->type == EXPR_STRING)
                                            : (l->type == EXPR_STRING && r->type == EXPR_STRING);
    if (!concat)
      return op_error(p, n, "needs two numbers or two strings", l, r);
    char *a = expr_value_to_string(l), *b = expr_value_to_string(r);
    struct sbuf s = {0};
    sb_add(&s, a);
    sb_add(&s, b);
    free(a);
    free(b);
    value_own_string(out, sb_take(&s));
    return 0;
  }
  if (!numbers)
    return op_error(p, n, "needs numbers", l, r);
  double a = l->num, b = r->num, v = 0;
  switch (n->op) {
  case OP_ADD:
    v = a + b;
    break;
  case OP_SUB:
    v = a - b;
    break;
  case OP_MUL:
    v = a * b;
    break;
  case OP_DIV:
    v = divide(a, b);
    break;
  case OP_POW:
    v = pow(a, b);
    break;
  case OP_MOD:
    if (p->mode == EXPR_EXPRLANG) {
      if (!is_integral(a) || !is_integral(b))
        return op_error(p, n, "needs integers", l, r);
      if (b == 0)
        return fail_at(p, n->off, "integer divide by zero");
    }
    v = b == 0 ? NAN : fmod(a, b);
    break;
  default:
    return fail_at(p, n->off, "internal error: unknown operator");
  }
  expr_value_set_number(out, v);
  return 0;
}

static int eval_string_op(struct parser *p, const struct node *n, const struct expr_value *l,
                          const struct expr_value *r, bool *res) {
  if (l->type != EXPR_STRING || r->type != EXPR_STRING)
    return op_error(p, n, "needs two strings", l, r);
  size_t ll = strlen(l->str), rl = strlen(r->str);
  switch (n->op) {
  case OP_RE:
  case OP_NRE:
  case OP_MATCHES:
  case OP_NOT_MATCHES:
    return regex_match(p, n->off, l->str, r->str, res);
  case OP_CONTAINS:
  case OP_NOT_CONTAINS:
    *res = strstr(l->str, r->str) != NULL;
    return 0;
  case OP_STARTS:
  case OP_NOT_STARTS:
    *res = rl <= ll && memcmp(l->str, r->str, rl) == 0;
    return 0;
  default:
    *res = rl <= ll && memcmp(l->str + ll - rl, r->str, rl) == 0;
    return 0;
  }
}

/* Evaluates the left side, then each list element until one is equal. */
static int eval_in(struct parser *p, const struct node *n, struct expr_value *out) {
  const struct node *list = &p->nodes[n->b];
  if (list->kind != N_LIST)
    return fail_at(p, n->off, "'%.*s' needs a list on its right", span_len(n->len),
                   p->src + n->off);
  struct expr_value needle = {.type = EXPR_NIL};
  if (eval(p, n->a, &needle) < 0)
    return -1;
  bool hit = false;
  for (int e = list->a; e >= 0 && !hit; e = p->nodes[e].next) {
    struct expr_value item = {.type = EXPR_NIL};
    if (eval(p, e, &item) < 0) {
      expr_value_clear(&needle);
      return -1;
    }
    hit = values_equal(&needle, &item);
    expr_value_clear(&item);
  }
  expr_value_clear(&needle);
  expr_value_set_bool(out, n->op == OP_NOT_IN ? !hit : hit);
  return 0;
}

static int eval_logical(struct parser *p, const struct node *n, struct expr_value *out) {
  struct expr_value v = {.type = EXPR_NIL};
  bool is_and = n->op == OP_AND;
  if (eval(p, n->a, &v) < 0)
    return -1;
  if (v.type != EXPR_BOOL) {
    op_error(p, n, "needs booleans", &v, NULL);
    expr_value_clear(&v);
    return -1;
  }
  if (v.b != is_and) {
    expr_value_set_bool(out, v.b); /* short circuit */
    return 0;
  }
  if (eval(p, n->b, &v) < 0)
    return -1;
  if (v.type != EXPR_BOOL) {
    op_error(p, n, "needs booleans", &v, NULL);
    expr_value_clear(&v);
    return -1;
  }
  expr_value_set_bool(out, v.b);
  return 0;
}

static int eval_binary(struct parser *p, const struct node *n, struct expr_value *out) {
  switch (n->op) {
  case OP_AND:
  case OP_OR:
    return eval_logical(p, n, out);
  case OP_IN:
  case OP_NOT_IN:
    return eval_in(p, n, out);
  case OP_COALESCE:
    if (eval(p, n->a, out) < 0)
      return -1;
    if (out->type != EXPR_NIL)
      return 0;
    return eval(p, n->b, out);
  default:
    break;
  }
  struct expr_value l = {.type = EXPR_NIL}, r = {.type = EXPR_NIL};
  bool res = false, negate = false;
  int rc = -1;
  if (eval(p, n->a, &l) < 0 || eval(p, n->b, &r) < 0)
    goto cleanup;
  switch (n->op) {
  case OP_EQ:
  case OP_NE:
    expr_value_set_bool(out, values_equal(&l, &r) == (n->op == OP_EQ));
    rc = 0;
    break;
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
    rc = eval_compare(p, n, &l, &r, &res);
    if (rc == 0)
      expr_value_set_bool(out, res);
    break;
  case OP_NRE:
  case OP_NOT_MATCHES:
  case OP_NOT_CONTAINS:
  case OP_NOT_STARTS:
  case OP_NOT_ENDS:
    negate = true;
    /* fall through */
  case OP_RE:
  case OP_MATCHES:
  case OP_CONTAINS:
  case OP_STARTS:
  case OP_ENDS:
    rc = eval_string_op(p, n, &l, &r, &res);
    if (rc == 0)
      expr_value_set_bool(out, res != negate);
    break;
  default:
    rc = eval_arith(p, n, &l, &r, out);
    break;
  }
cleanup:
  expr_value_clear(&l);
  expr_value_clear(&r);
  return rc;
}

static int eval_unary(struct parser *p, const struct node *n, struct expr_value *out) {
  struct expr_value v = {.type = EXPR_NIL};
  if (eval(p, n->a, &v) < 0)
    return -1;
  if (n->op == OP_NOT) {
    if (v.type != EXPR_BOOL) {
      op_error(p, n, "needs a boolean", &v, NULL);
      expr_value_clear(&v);
      return -1;
    }
    expr_value_set_bool(out, !v.b);
    return 0;
  }
  if (v.type != EXPR_NUMBER) {
    op_error(p, n, "needs a number", &v, NULL);
    expr_value_clear(&v);
    return -1;
  }
  expr_value_set_number(out, n->op == OP_NEG ? -v.num : v.num);
  return 0;
}

static int eval_ternary(struct parser *p, const struct node *n, struct expr_value *out) {
  struct expr_value c = {.type = EXPR_NIL};
  if (eval(p, n->a, &c) < 0)
    return -1;
  if (c.type != EXPR_BOOL) {
    op_error(p, n, "needs a boolean condition", &c, NULL);
    expr_value_clear(&c);
    return -1;
  }
  return eval(p, c.b ? n->b : n->c, out);
}

/* Go's strconv.Atoi: optional sign, decimal digits, no spaces, int64 range. */
static bool parse_int_strict(const char *s, double *out) {
  const char *d = (*s == '+' || *s == '-') ? s + 1 : s;
  if (*d == '\0')
    return false;
  for (const char *c = d; *c != '\0'; c++)
    if (!is_digit((unsigned char)*c))
      return false;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno != 0)
    return false;
  *out = (double)v;
  return true;
}

/* Go's strconv.ParseFloat, near enough: the whole text, no leading space,
 * out of range is an error. */
static bool parse_float_strict(const char *s, double *out) {
  if (*s == '\0' || is_space((unsigned char)*s))
    return false;
  char *stop = NULL;
  errno = 0;
  double v = strtod(s, &stop);
  if (*stop != '\0' || (errno == ERANGE && isinf(v)))
    return false;
  *out = v;
  return true;
}

/* ---- Argo's toJson and jsonpath, and Sprig's string helpers ------------ */

static char *json_text(const struct expr_value *v) {
  switch (v->type) {
  case EXPR_NIL:
    return xstrdup("null");
  case EXPR_BOOL:
    return xstrdup(v->b ? "true" : "false");
  case EXPR_NUMBER:
    return expr_value_to_string(v);
  case EXPR_STRING:
    break;
  }
  json_t *s = json_string(v->str);
  char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  json_decref(s);
  return text;
}

/* One step of a JSONPath ($.a.b, $['a-b'], $.list[0]); NULL when absent. */
static const json_t *json_step(const json_t *at, const char **pp) {
  const char *p = *pp;
  char key[256];
  size_t n = 0;
  if (*p == '.') {
    p++;
    while (*p && *p != '.' && *p != '[' && n + 1 < sizeof(key))
      key[n++] = *p++;
  } else if (*p == '[' && (p[1] == '\'' || p[1] == '"')) {
    char quote = p[1];
    p += 2;
    while (*p && *p != quote && n + 1 < sizeof(key))
      key[n++] = *p++;
    if (*p != quote || p[1] != ']')
      return NULL;
    p += 2;
  } else if (*p == '[') {
    char *end = NULL;
    long idx = strtol(p + 1, &end, 10);
    if (end == p + 1 || *end != ']' || !json_is_array(at) || idx < 0)
      return NULL;
    *pp = end + 1;
    return json_array_get(at, (size_t)idx);
  } else {
    return NULL;
  }
  key[n] = '\0';
  *pp = p;
  return n > 0 && json_is_object(at) ? json_object_get(at, key) : NULL;
}

static int eval_jsonpath(struct parser *p, const struct node *n, const struct expr_value *doc,
                         const struct expr_value *path, struct expr_value *out) {
  if (doc->type != EXPR_STRING || path->type != EXPR_STRING)
    return op_error(p, n, "needs two strings", doc, path);
  json_error_t jerr;
  json_t *root = json_loads(doc->str, JSON_DECODE_ANY, &jerr);
  if (root == NULL)
    return op_error(p, n, "cannot parse its first argument as JSON", doc, NULL);
  const char *q = path->str;
  const json_t *at = *q == '$' ? root : NULL;
  if (at != NULL)
    q++;
  while (at != NULL && *q)
    at = json_step(at, &q);
  int rc = 0;
  if (at == NULL)
    rc = op_error(p, n, "finds nothing at that path", path, NULL);
  else if (json_is_string(at))
    expr_value_set_string(out, json_string_value(at));
  else if (json_is_number(at))
    expr_value_set_number(out, json_number_value(at));
  else if (json_is_boolean(at))
    expr_value_set_bool(out, json_is_true(at));
  else if (json_is_null(at))
    expr_value_set_nil(out);
  else /* maps and lists are not values here: their JSON text stands in */
    value_own_string(out, json_dumps(at, JSON_COMPACT | JSON_PRESERVE_ORDER));
  json_decref(root);
  return rc;
}

/* Sprig's int (cast.ToInt64): never an error, 0 for what does not convert. */
static double sprig_int(const struct expr_value *v) {
  if (v->type == EXPR_BOOL)
    return v->b ? 1 : 0;
  if (v->type == EXPR_NUMBER)
    return isfinite(v->num) && fabs(v->num) < 9223372036854775808.0 ? trunc(v->num) : 0;
  if (v->type != EXPR_STRING)
    return 0;
  /* "3.00" counts as "3", as cast's trimZeroDecimal has it. */
  char *s = xstrdup(v->str), *dot = strchr(s, '.');
  if (dot != NULL && dot[strspn(dot + 1, "0") + 1] == '\0')
    *dot = '\0';
  char *end = NULL;
  errno = 0;
  long long x = *s ? strtoll(s, &end, 0) : 0;
  bool ok = *s && *end == '\0' && errno == 0;
  free(s);
  return ok ? (double)x : 0;
}

/* Go's strings.Replace(s, old, new, -1), bytewise. */
static char *replace_all(const char *s, const char *old, const char *with) {
  size_t ls = strlen(s), lo = strlen(old), lw = strlen(with), cap = ls + 1, len = 0;
  char *out = xrealloc(NULL, cap);
  for (size_t i = 0; i <= ls;) {
    bool hit = lo > 0 ? strncmp(s + i, old, lo) == 0 : true;
    if (lo > 0 && i == ls)
      hit = false;
    size_t add = hit ? lw : 1;
    if (len + add + 1 > cap)
      out = xrealloc(out, cap = (len + add + 1) * 2);
    if (hit) {
      memcpy(out + len, with, lw);
      len += lw;
      if (lo > 0) {
        i += lo;
        continue;
      }
    }
    if (i == ls)
      break;
    out[len++] = s[i++];
  }
  out[len] = '\0';
  return out;
}

static bool sprig_empty(const struct expr_value *v) {
  return v->type == EXPR_NIL || (v->type == EXPR_BOOL && !v->b) ||
         (v->type == EXPR_NUMBER && v->num == 0) || (v->type == EXPR_STRING && *v->str == '\0');
}

static int eval_call_extra(struct parser *p, const struct node *n, struct expr_value *out) {
  struct expr_value a[MAX_CALL_ARGS] = {{.type = EXPR_NIL}};
  int rc = 0, n_args = 0;
  for (int idx = n->a; idx >= 0 && n_args < MAX_CALL_ARGS; idx = p->nodes[idx].next)
    if ((rc = eval(p, idx, &a[n_args++])) < 0)
      goto out;
  switch (n->fn) {
  case FN_TO_JSON: {
    char *text = json_text(&a[0]);
    if (text == NULL)
      rc = op_error(p, n, "cannot encode as JSON", &a[0], NULL);
    else
      value_own_string(out, text);
    break;
  }
  case FN_JSONPATH:
    rc = eval_jsonpath(p, n, &a[0], &a[1], out);
    break;
  case FN_SPRIG_INT:
    expr_value_set_number(out, sprig_int(&a[0]));
    break;
  case FN_TRIM_PREFIX:
  case FN_TRIM_SUFFIX: {
    if (a[0].type != EXPR_STRING || a[1].type != EXPR_STRING) {
      rc = op_error(p, n, "needs two strings", &a[0], &a[1]);
      break;
    }
    size_t lf = strlen(a[0].str), ls = strlen(a[1].str);
    const char *s = a[1].str;
    if (lf <= ls && n->fn == FN_TRIM_PREFIX && strncmp(s, a[0].str, lf) == 0)
      value_own_string(out, xstrdup(s + lf));
    else if (lf <= ls && n->fn == FN_TRIM_SUFFIX && strcmp(s + ls - lf, a[0].str) == 0)
      value_own_string(out, xstrndup(s, ls - lf));
    else
      value_own_string(out, xstrdup(s));
    break;
  }
  case FN_REPLACE:
    if (a[0].type != EXPR_STRING || a[1].type != EXPR_STRING || a[2].type != EXPR_STRING) {
      rc = op_error(p, n, "needs three strings", &a[0], &a[2]);
      break;
    }
    value_own_string(out, replace_all(a[2].str, a[0].str, a[1].str));
    break;
  case FN_DEFAULT:
    value_copy(out, sprig_empty(&a[1]) ? &a[0] : &a[1]);
    break;
  default:
    break;
  }
out:
  for (int i = 0; i < MAX_CALL_ARGS; i++)
    expr_value_clear(&a[i]);
  return rc;
}

static int eval_call(struct parser *p, const struct node *n, struct expr_value *out) {
  if (n->fn >= FN_TO_JSON)
    return eval_call_extra(p, n, out);
  struct expr_value v = {.type = EXPR_NIL};
  if (eval(p, n->a, &v) < 0)
    return -1;
  int rc = 0;
  double num = 0;
  switch (n->fn) {
  case FN_INT:
  case FN_FLOAT:
    if (v.type == EXPR_NUMBER) {
      num = v.num;
      if (n->fn == FN_INT) {
        /* Go converts out-of-range floats to garbage; refuse instead. */
        if (!isfinite(num) || fabs(num) >= 9223372036854775808.0) {
          rc = op_error(p, n, "cannot convert a number out of integer range", &v, NULL);
          break;
        }
        num = trunc(num);
      }
    } else if (v.type != EXPR_STRING || !(n->fn == FN_INT ? parse_int_strict(v.str, &num)
                                                          : parse_float_strict(v.str, &num))) {
      rc = op_error(p, n,
                    n->fn == FN_INT ? "cannot convert to an integer" : "cannot convert to a float",
                    &v, NULL);
      break;
    }
    expr_value_set_number(out, num);
    break;
  case FN_STRING:
    value_own_string(out, expr_value_to_string(&v));
    break;
  case FN_LEN:
    if (v.type != EXPR_STRING) {
      rc = op_error(p, n, "needs a string", &v, NULL);
      break;
    }
    expr_value_set_number(out, (double)strlen(v.str));
    break;
  case FN_LOWER:
  case FN_UPPER:
  case FN_TRIM: {
    if (v.type != EXPR_STRING) {
      rc = op_error(p, n, "needs a string", &v, NULL);
      break;
    }
    char *s = v.str;
    if (n->fn == FN_TRIM) {
      size_t len = strlen(s), from = 0;
      while (from < len && is_space((unsigned char)s[from]))
        from++;
      while (len > from && is_space((unsigned char)s[len - 1]))
        len--;
      value_own_string(out, xstrndup(s + from, len - from));
      break;
    }
    char *t = xstrdup(s);
    for (char *c = t; *c != '\0'; c++) {
      if (n->fn == FN_LOWER && *c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
      else if (n->fn == FN_UPPER && *c >= 'a' && *c <= 'z')
        *c = (char)(*c - 'a' + 'A');
    }
    value_own_string(out, t);
    break;
  }
  default: /* eval_call_extra's */
    break;
  }
  expr_value_clear(&v);
  return rc;
}

/* *out may hold an earlier value (it is cleared first) and is nil on failure. */
static int eval(struct parser *p, int idx, struct expr_value *out) {
  const struct node *n = &p->nodes[idx];
  int rc = 0;
  expr_value_clear(out);
  switch (n->kind) {
  case N_LITERAL:
    value_copy(out, &n->lit);
    break;
  case N_WORD:
    rc = eval_word(p, n, out);
    break;
  case N_PATH:
    rc = eval_path(p, n, out);
    break;
  case N_UNARY:
    rc = eval_unary(p, n, out);
    break;
  case N_BINARY:
    rc = eval_binary(p, n, out);
    break;
  case N_TERNARY:
    rc = eval_ternary(p, n, out);
    break;
  case N_CALL:
    rc = eval_call(p, n, out);
    break;
  case N_LIST:
    rc = fail_at(p, n->off, "a list can only be used on the right of 'in'");
    break;
  }
  if (rc < 0)
    expr_value_clear(out);
  return rc;
}

/* ---- entry points ------------------------------------------------------ */

static void parser_free(struct parser *p) {
  for (size_t i = 0; i < p->ntoks; i++)
    free(p->toks[i].text);
  for (size_t i = 0; i < p->nnodes; i++) {
    expr_value_clear(&p->nodes[i].lit);
    free(p->nodes[i].name);
  }
  free(p->toks);
  free(p->nodes);
}

int expr_eval(const char *text, enum expr_mode mode, expr_lookup_fn lookup, void *ctx,
              struct expr_value *out, ep_error **err) {
  *out = (struct expr_value){.type = EXPR_NIL};
  if (text == NULL)
    text = "";
  if (mode != EXPR_GOVALUATE && mode != EXPR_EXPRLANG)
    return ep_error_set(err, EP_EXIT_INTERNAL, "unknown expression mode %d", (int)mode);
  size_t len = strnlen(text, (size_t)EXPR_MAX_LENGTH + 1);
  if (len > EXPR_MAX_LENGTH)
    return ep_error_set(err, EP_EXIT_USAGE, "expression too long (more than %d bytes)",
                        EXPR_MAX_LENGTH);
  struct parser p = {
      .src = text, .src_len = len, .mode = mode, .lookup = lookup, .ctx = ctx, .err = err};
  int rc = -1;
  if (lex(&p) < 0)
    goto cleanup;
  if (p.toks[0].kind == T_END) {
    ep_error_set(err, EP_EXIT_USAGE, "empty expression");
    goto cleanup;
  }
  int root = parse_expr(&p);
  if (root < 0)
    goto cleanup;
  if (peek(&p)->kind != T_END) {
    unexpected(&p);
    goto cleanup;
  }
  if (eval(&p, root, out) < 0)
    goto cleanup;
  rc = 0;
cleanup:
  parser_free(&p);
  return rc;
}

int expr_eval_bool(const char *text, enum expr_mode mode, expr_lookup_fn lookup, void *ctx,
                   bool *out, ep_error **err) {
  struct expr_value v;
  if (expr_eval(text, mode, lookup, ctx, &v, err) < 0)
    return -1;
  if (v.type != EXPR_BOOL) {
    char d[96];
    describe(&v, d, sizeof(d));
    expr_value_clear(&v);
    return ep_error_set(err, EP_EXIT_USAGE, "expression does not evaluate to a boolean (got %s)",
                        d);
  }
  *out = v.b;
  return 0;
}
