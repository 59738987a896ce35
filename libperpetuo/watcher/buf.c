#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void buf_init(struct buf *b) { *b = (struct buf){0}; }

void buf_free(struct buf *b) {
  free(b->data);
  buf_init(b);
}

void buf_reset(struct buf *b) {
  b->len = 0;
  b->failed = false;
}

static bool reserve(struct buf *b, size_t extra) {
  if (b->failed)
    return false;
  if (b->len + extra + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) {
    b->failed = true;
    return false;
  }
  b->data = data;
  b->cap = cap;
  return true;
}

void buf_add(struct buf *b, const char *data, size_t len) {
  if (!reserve(b, len))
    return;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

size_t utf8_sequence_length(const unsigned char *s, size_t len) {
  if (len == 0)
    return 0;
  unsigned c = s[0];
  size_t need;
  unsigned min, cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2, cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (len < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return need;
}

void buf_json_string(struct buf *b, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  buf_add(b, "\"", 1);
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_add(b, esc, 2);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
      case '\n': buf_add(b, "\\n", 2); break;
      case '\r': buf_add(b, "\\r", 2); break;
      case '\t': buf_add(b, "\\t", 2); break;
      default: buf_printf(b, "\\u%04x", c); break;
      }
      i++;
    } else {
      size_t n = utf8_sequence_length(p + i, len - i);
      if (n == 0) {
        buf_puts(b, "\\ufffd");
        i++;
      } else {
        buf_add(b, s + i, n);
        i += n;
      }
    }
  }
  buf_add(b, "\"", 1);
}

void buf_text_escaped(struct buf *b, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned c = p[i];
    size_t n = utf8_sequence_length(p + i, len - i);
    /* C1 controls (U+0080..U+009F) drive terminals too. */
    bool c1 = n == 2 && c == 0xC2 && p[i + 1] < 0xA0;
    if (n == 0 || c < 0x20 || c == 0x7F || c == '\\' || c == '"' || c1) {
      size_t bad = c1 ? 2 : 1;
      for (size_t k = 0; k < bad; k++)
        buf_printf(b, "\\x%02x", p[i + k]);
      i += bad;
    } else {
      buf_add(b, s + i, n);
      i += n;
    }
  }
}
