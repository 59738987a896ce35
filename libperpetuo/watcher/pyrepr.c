#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyrepr.h"

/* ------------------------------------------------------------ output */

/* The caller's buffer, filled by whole pieces (a character or an escape) so
 * that a cut never splits one. */
struct sink {
  char *out;  /* NULL when size is 0: nothing may be written */
  size_t cap; /* room for text, the NUL excluded */
  size_t len;
  size_t safe; /* longest piece boundary that leaves room for "..." */
  bool full;   /* a piece did not fit: the text is cut */
};

static struct sink sink_make(char *out, size_t size) {
  return (struct sink){size ? out : NULL, size ? size - 1 : 0, 0, 0, false};
}

static bool put(struct sink *s, const char *piece, size_t n) {
  if (s->full || n > s->cap - s->len) {
    s->full = true;
    return false;
  }
  memcpy(s->out + s->len, piece, n);
  s->len += n;
  if (s->cap - s->len >= 3)
    s->safe = s->len;
  return true;
}

/* Ends the text; a cut one ends in "..." (as much of it as a tiny buffer
 * holds), after dropping the pieces that leave it no room. */
static size_t finish(struct sink *s, bool cut) {
  if (!s->out)
    return 0;
  if (cut) {
    if (s->cap - s->len < 3)
      s->len = s->safe;
    size_t n = s->cap - s->len < 3 ? s->cap - s->len : 3;
    memcpy(s->out + s->len, "...", n);
    s->len += n;
  }
  s->out[s->len] = '\0';
  return s->len;
}

/* ASCII text, cut with "..." if it does not fit. */
static size_t put_text(const char *text, char *out, size_t size) {
  struct sink s = sink_make(out, size);
  for (const char *p = text; *p && put(&s, p, 1); p++)
    ;
  return finish(&s, s.full);
}

/* ----------------------------------------------------------- strings */

static bool kind_ok(unsigned kind) {
  return kind == 1 || kind == 2 || kind == 4;
}

/* The target's buffer copy may sit at any address: no aligned loads. */
static uint32_t code_point(const void *data, size_t i, unsigned kind) {
  const unsigned char *p = data;
  if (kind == 1)
    return p[i];
  if (kind == 2) {
    uint16_t c;
    memcpy(&c, p + 2 * i, 2);
    return c;
  }
  uint32_t c;
  memcpy(&c, p + 4 * i, 4);
  return c;
}

static size_t utf8(uint32_t c, char *b) {
  if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
    c = 0xfffd;
  if (c < 0x80) {
    b[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    b[0] = (char)(0xc0 | c >> 6);
    b[1] = (char)(0x80 | (c & 0x3f));
    return 2;
  }
  if (c < 0x10000) {
    b[0] = (char)(0xe0 | c >> 12);
    b[1] = (char)(0x80 | (c >> 6 & 0x3f));
    b[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  b[0] = (char)(0xf0 | c >> 18);
  b[1] = (char)(0x80 | (c >> 12 & 0x3f));
  b[2] = (char)(0x80 | (c >> 6 & 0x3f));
  b[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

size_t pystr_utf8(const void *data, size_t count, unsigned kind, char *out,
                  size_t size, bool *truncated) {
  struct sink s = sink_make(out, size);
  bool cut = !kind_ok(kind);
  for (size_t i = 0; !cut && i < count; i++) {
    char b[4];
    cut = !put(&s, b, utf8(code_point(data, i, kind), b));
  }
  if (truncated)
    *truncated = cut;
  return finish(&s, false);
}

/* The escapes common to str and bytes; 0 if `c` needs none of them. */
static size_t escape(uint32_t c, char quote, char *b) {
  static const char hex[] = "0123456789abcdef";
  b[0] = '\\';
  switch (c) {
  case '\t': b[1] = 't'; return 2;
  case '\n': b[1] = 'n'; return 2;
  case '\r': b[1] = 'r'; return 2;
  case '\\': b[1] = '\\'; return 2;
  }
  if (c == (unsigned char)quote) {
    b[1] = quote;
    return 2;
  }
  if (c < 0x20 || c == 0x7f) {
    b[1] = 'x';
    b[2] = hex[c >> 4];
    b[3] = hex[c & 15];
    return 4;
  }
  return 0;
}

/* Python's choice: single quotes, unless only a ' is inside. */
static char quote_for(bool single, bool dbl) {
  return single && !dbl ? '"' : '\'';
}

static size_t str_piece(uint32_t c, char quote, char *b) {
  size_t n = escape(c, quote, b);
  if (n)
    return n;
  /* Python's non-printable code points of latin-1, and code points no
   * UTF-8 can carry, shown by value. */
  if ((c >= 0x80 && c <= 0xa0) || c == 0xad)
    return (size_t)snprintf(b, 12, "\\x%02" PRIx32, c);
  if (c >= 0xd800 && c <= 0xdfff)
    return (size_t)snprintf(b, 12, "\\u%04" PRIx32, c);
  if (c > 0x10ffff)
    return (size_t)snprintf(b, 12, "\\U%08" PRIx32, c);
  return utf8(c, b);
}

size_t pyrepr_str(const void *data, size_t count, size_t total, unsigned kind,
                  char *out, size_t size) {
  struct sink s = sink_make(out, size);
  if (!kind_ok(kind))
    return finish(&s, false);
  if (count > total)
    count = total;
  /* Only the prefix read can choose the quote. */
  bool single = false, dbl = false;
  for (size_t i = 0; i < count; i++) {
    uint32_t c = code_point(data, i, kind);
    single |= c == '\'';
    dbl |= c == '"';
  }
  char quote = quote_for(single, dbl);
  put(&s, &quote, 1);
  for (size_t i = 0; i < count; i++) {
    char b[12];
    if (!put(&s, b, str_piece(code_point(data, i, kind), quote, b)))
      break;
  }
  bool cut = s.full || count < total || !put(&s, &quote, 1);
  return finish(&s, cut);
}

size_t pyrepr_bytes(const uint8_t *data, size_t count, size_t total, char *out,
                    size_t size) {
  struct sink s = sink_make(out, size);
  if (count > total)
    count = total;
  /* memchr wants a real pointer even for nothing. */
  char quote =
      count ? quote_for(memchr(data, '\'', count), memchr(data, '"', count))
            : '\'';
  char head[2] = {'b', quote};
  put(&s, head, 2);
  for (size_t i = 0; i < count; i++) {
    char b[8];
    uint8_t c = data[i];
    size_t n = escape(c, quote, b);
    if (!n && c > 0x7f)
      n = (size_t)snprintf(b, sizeof(b), "\\x%02x", c);
    if (!n) {
      b[0] = (char)c;
      n = 1;
    }
    if (!put(&s, b, n))
      break;
  }
  bool cut = s.full || count < total || !put(&s, &quote, 1);
  return finish(&s, cut);
}

/* ------------------------------------------------------------- float */

static bool reads_back(uint64_t m, int q, double v) {
  char buf[40];
  /* No decimal point, so the locale cannot change what strtod reads. */
  snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m, q);
  return strtod(buf, NULL) == v;
}

/* A decimal m * 10^q of `p` significant digits that reads back as `v`
 * (finite, > 0), or false if there is none. The correctly rounded one is
 * the closest, so the best if any. When it misses, only the next one above
 * can still hit: where v is a power of two, the doubles below are twice as
 * close as those above, and so is the edge of what reads back as v. */
static bool digits_of(double v, int p, uint64_t *m, int *q) {
  char buf[40];
  snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
  uint64_t r = 0;
  const char *c = buf;
  for (; *c && *c != 'e'; c++)
    if (*c >= '0' && *c <= '9')
      r = r * 10 + (uint64_t)(*c - '0');
  if (!*c)
    return false;
  *q = (int)strtol(c + 1, NULL, 10) - (p - 1);
  *m = r;
  if (strtod(buf, NULL) == v)
    return true;
  *m = r + 1;
  return reads_back(r + 1, *q, v);
}

size_t pyrepr_float(double v, char *out, size_t size) {
  char text[48];
  if (isnan(v) || isinf(v) || v == 0) {
    snprintf(text, sizeof(text), "%s%s", signbit(v) && !isnan(v) ? "-" : "",
             isnan(v)   ? "nan"
             : isinf(v) ? "inf"
                        : "0.0");
    return put_text(text, out, size);
  }
  /* Whether some p-digit decimal reads back only grows with p (append a
   * zero), and 17 digits always do: search for the least p. */
  int lo = 1, hi = 17;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    uint64_t m;
    int q;
    if (digits_of(fabs(v), mid, &m, &q))
      hi = mid;
    else
      lo = mid + 1;
  }
  uint64_t m = 1;
  int q = 0;
  digits_of(fabs(v), lo, &m, &q);
  char d[24];
  int n = snprintf(d, sizeof(d), "%" PRIu64, m);
  while (n > 1 && d[n - 1] == '0')
    d[--n] = '\0', q++;
  int x = q + n - 1; /* the exponent of the first digit */
  char *t = text;
  if (signbit(v))
    *t++ = '-';
  if (x < -4 || x >= 16) {
    snprintf(t, sizeof(text) - 1, "%c%s%se%+03d", d[0], n > 1 ? "." : "", d + 1,
             x);
  } else if (x < 0) {
    snprintf(t, sizeof(text) - 1, "0.%.*s%s", -x - 1, "0000", d);
  } else if (x + 1 >= n) {
    snprintf(t, sizeof(text) - 1, "%s%.*s.0", d, x + 1 - n, "0000000000000000");
  } else {
    snprintf(t, sizeof(text) - 1, "%.*s.%s", x + 1, d, d + x + 1);
  }
  return put_text(text, out, size);
}

/* --------------------------------------------------------------- int */

/* Base 10^9 limbs for PYREPR_LONG_DIGITS_MAX digits of up to 32 bits: each
 * limb holds at least 29 bits. */
#define LIMBS_MAX (PYREPR_LONG_DIGITS_MAX * 32 / 29 + 2)
#define LIMB 1000000000u

size_t pyrepr_long(const uint32_t *digits, size_t ndigits, unsigned digit_bits,
                   bool negative, char *out, size_t size) {
  char text[64];
  if (digit_bits < 1 || digit_bits > 32)
    return put_text("<invalid int>", out, size);
  for (size_t i = 0; i < ndigits; i++)
    if (digit_bits < 32 && digits[i] >> digit_bits)
      return put_text("<invalid int>", out, size);
  /* CPython never stores leading zero digits; a hostile target might. */
  while (ndigits && !digits[ndigits - 1])
    ndigits--;
  if (!ndigits)
    return put_text("0", out, size);
  if (ndigits > PYREPR_LONG_DIGITS_MAX) {
    size_t bits = (ndigits - 1) * digit_bits;
    for (uint32_t top = digits[ndigits - 1]; top; top >>= 1)
      bits++;
    snprintf(text, sizeof(text), "<%sint of %zu bits>",
             negative ? "negative " : "", bits);
    return put_text(text, out, size);
  }
  /* Schoolbook: multiply the limbs by 2^digit_bits and add the next digit,
   * from the most significant. */
  uint32_t limbs[LIMBS_MAX];
  size_t nlimbs = 0;
  for (size_t i = ndigits; i-- > 0;) {
    uint64_t carry = digits[i];
    for (size_t j = 0; j < nlimbs; j++) {
      uint64_t z = ((uint64_t)limbs[j] << digit_bits) + carry;
      limbs[j] = (uint32_t)(z % LIMB);
      carry = z / LIMB;
    }
    for (; carry; carry /= LIMB)
      limbs[nlimbs++] = (uint32_t)(carry % LIMB);
  }
  char dec[LIMBS_MAX * 9 + 2];
  char *p = dec;
  *p++ = '-';
  p += sprintf(p, "%" PRIu32, limbs[nlimbs - 1]);
  for (size_t j = nlimbs - 1; j-- > 0;)
    p += sprintf(p, "%09" PRIu32, limbs[j]);
  const char *shown = negative ? dec : dec + 1;
  size_t len = (size_t)(p - shown);
  size_t ndec = (size_t)(p - dec) - 1;
  if (size && len > size - 1) {
    /* Keep the first digits and say how many there are in all. */
    int n = snprintf(text, sizeof(text), "... (%zu digits)", ndec);
    if (size - 1 > (size_t)n + negative) {
      size_t keep = size - 1 - (size_t)n;
      memcpy(out, shown, keep);
      memcpy(out + keep, text, (size_t)n + 1);
      return keep + (size_t)n;
    }
  }
  return put_text(shown, out, size);
}
