/* A growable output buffer, and escaping of untrusted strings into it. */
#ifndef PERPETUO_WATCHER_BUF_H
#define PERPETUO_WATCHER_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
  char *data;
  size_t len, cap;
  bool failed; /* an allocation failed: the contents are incomplete */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_add(struct buf *b, const char *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Appends `s` (len bytes, from the target: anything) as a JSON string with
 * its quotes. Quotes, backslashes and control characters are escaped; bytes
 * that are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
 */
void buf_json_string(struct buf *b, const char *s, size_t len);

/*
 * Appends `s` for a human reader: printable UTF-8 as it is, control
 * characters, backslashes, double quotes and invalid bytes as \xNN escapes,
 * so nothing from the target can forge a line or drive the terminal.
 */
void buf_text_escaped(struct buf *b, const char *s, size_t len);

/*
 * Length of the valid UTF-8 sequence at s[0..len), or 0 when the bytes there
 * are not one (overlong forms, surrogates and values past U+10FFFF included).
 */
size_t utf8_sequence_length(const unsigned char *s, size_t len);

#endif
