/*
 * Escaping of untrusted strings. Everything the target hands us (names,
 * paths, locals) goes through these functions, so they are tested against
 * exact expected output and, on random hostile input, against a JSON
 * decoder and a UTF-8 validator written here independently of buf.c.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watcher/buf.h"

#define LIT(s) (s), (sizeof(s) - 1)

static struct buf b;

static void setup(void) { buf_init(&b); }
static void teardown(void) { buf_free(&b); }

/* ------------------------------------------------- independent reference */

/*
 * Length of the well-formed UTF-8 sequence at s[0..len) per Table 3-7 of
 * the Unicode Standard, or 0. Written by byte ranges rather than by decoding,
 * so that it shares no logic with utf8_sequence_length().
 */
static size_t ref_utf8_length(const unsigned char *s, size_t len) {
  if (len == 0)
    return 0;
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xBF;
  size_t need;
  if (c <= 0x7F)
    return 1;
  else if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c == 0xE0)
    need = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
    need = 3;
  else if (c == 0xED)
    need = 3, hi = 0x9F;
  else if (c == 0xF0)
    need = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3)
    need = 4;
  else if (c == 0xF4)
    need = 4, hi = 0x8F;
  else
    return 0;
  if (len < need || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < need; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return need;
}

static bool ref_utf8_valid(const unsigned char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t n = ref_utf8_length(s + i, len - i);
    if (!n)
      return false;
    i += n;
  }
  return true;
}

/* What the JSON string should decode to: invalid bytes become U+FFFD. */
static size_t ref_replace_invalid(const unsigned char *s, size_t len,
                                  unsigned char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t n = ref_utf8_length(s + i, len - i);
    if (n) {
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  return o;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static size_t put_utf8(unsigned cp, unsigned char *out) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | cp >> 6);
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  out[0] = (unsigned char)(0xE0 | cp >> 12);
  out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
  out[2] = (unsigned char)(0x80 | (cp & 0x3F));
  return 3;
}

/*
 * Decodes exactly one JSON string token (RFC 8259) filling all of
 * json[0..len) into `out`, or returns false if it is not one. Raw bytes must
 * be valid UTF-8; escaped surrogates are refused, as the escaper has no
 * reason to write one.
 */
static bool json_decode(const char *json, size_t len, unsigned char *out,
                        size_t *out_len) {
  const unsigned char *p = (const unsigned char *)json;
  size_t i = 0, o = 0;
  if (len < 2 || p[i++] != '"')
    return false;
  for (;;) {
    if (i >= len)
      return false;
    unsigned c = p[i];
    if (c == '"') {
      i++;
      break;
    }
    if (c < 0x20)
      return false;
    if (c != '\\') {
      size_t n = ref_utf8_length(p + i, len - i);
      if (!n)
        return false;
      memcpy(out + o, p + i, n);
      o += n;
      i += n;
      continue;
    }
    if (++i >= len)
      return false;
    switch (p[i++]) {
    case '"': out[o++] = '"'; break;
    case '\\': out[o++] = '\\'; break;
    case '/': out[o++] = '/'; break;
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      if (i + 4 > len)
        return false;
      unsigned cp = 0;
      for (int k = 0; k < 4; k++) {
        int v = hex_value(p[i++]);
        if (v < 0)
          return false;
        cp = cp << 4 | (unsigned)v;
      }
      if (cp >= 0xD800 && cp <= 0xDFFF)
        return false;
      o += put_utf8(cp, out + o);
      break;
    }
    default: return false;
    }
  }
  *out_len = o;
  return i == len;
}

/* Inverse of buf_text_escaped(), or false if `text` is not its output. */
static bool text_unescape(const char *text, size_t len, unsigned char *out,
                          size_t *out_len) {
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    if (text[i] != '\\') {
      out[o++] = (unsigned char)text[i++];
      continue;
    }
    if (i + 4 > len || text[i + 1] != 'x')
      return false;
    int hi = hex_value((unsigned char)text[i + 2]);
    int lo = hex_value((unsigned char)text[i + 3]);
    /* Lower case only: one spelling per byte. */
    if (hi < 0 || lo < 0 || (text[i + 2] >= 'A' && text[i + 2] <= 'F') ||
        (text[i + 3] >= 'A' && text[i + 3] <= 'F'))
      return false;
    out[o++] = (unsigned char)(hi << 4 | lo);
    i += 4;
  }
  *out_len = o;
  return true;
}

static uint64_t rng_state;

static uint64_t rng_next(void) {
  /* xorshift64: deterministic, so a failure replays. */
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/*
 * Random bytes skewed towards trouble: the bytes that need escaping, lead
 * and continuation bytes, and now and then a well-formed sequence.
 */
static size_t hostile_bytes(unsigned char *out, size_t max) {
  static const unsigned char nasty[] = {
      0x00, 0x01, 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x1B, 0x1F, 0x20, '"',
      '\\', '/',  0x7F, 0x80, 0x85, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
      0xDF, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFE, 0xFF};
  static const char *const good[] = {"\xC3\xA9",         "\xE2\x82\xAC",
                                     "\xF0\x9F\x98\x80", "\xED\x9F\xBF",
                                     "\xF4\x8F\xBF\xBF", "\xC2\x85"};
  size_t len = (size_t)(rng_next() % (max + 1)), i = 0;
  while (i < len) {
    uint64_t r = rng_next();
    switch (r % 4) {
    case 0: out[i++] = (unsigned char)(r >> 8); break;
    case 1: out[i++] = nasty[(r >> 8) % sizeof(nasty)]; break;
    case 2: out[i++] = (unsigned char)(0x80 | (r >> 8 & 0x3F)); break;
    default: {
      const char *g = good[(r >> 8) % 6];
      size_t n = strlen(g);
      if (i + n > len)
        n = len - i;
      memcpy(out + i, g, n);
      i += n;
    }
    }
  }
  return len;
}

/* --------------------------------------------------------- buf_json_string */

static void check_json(const char *in, size_t len, const char *want) {
  buf_reset(&b);
  buf_json_string(&b, in, len);
  ck_assert(!b.failed);
  ck_assert_uint_eq(b.len, strlen(want));
  ck_assert_mem_eq(b.data, want, b.len);
  ck_assert_int_eq(b.data[b.len], '\0');
}

START_TEST(test_json_plain) {
  check_json(LIT(""), "\"\"");
  check_json(LIT("hello, world"), "\"hello, world\"");
  check_json(LIT("a/b <script>"), "\"a/b <script>\"");
  /* `len` rules, not the NUL: a prefix is a prefix. */
  check_json("abcdef", 3, "\"abc\"");
}
END_TEST

START_TEST(test_json_quotes_backslashes) {
  check_json(LIT("\""), "\"\\\"\"");
  check_json(LIT("\\"), "\"\\\\\"");
  check_json(LIT("a\"b\\c"), "\"a\\\"b\\\\c\"");
  check_json(LIT("\\\""), "\"\\\\\\\"\"");
  check_json(LIT("\\u0041"), "\"\\\\u0041\"");
  check_json(LIT("\",\"severity\":\"fake"),
             "\"\\\",\\\"severity\\\":\\\"fake\"");
}
END_TEST

START_TEST(test_json_every_control_char) {
  for (unsigned c = 0; c < 0x20; c++) {
    char in[1] = {(char)c}, want[16];
    switch (c) {
    case '\n': strcpy(want, "\"\\n\""); break;
    case '\r': strcpy(want, "\"\\r\""); break;
    case '\t': strcpy(want, "\"\\t\""); break;
    default: snprintf(want, sizeof(want), "\"\\u%04x\"", c); break;
    }
    check_json(in, 1, want);
  }
  check_json(LIT("\x7f"), "\"\\u007f\"");
  check_json(LIT("\x1b[2J\x1b]0;pwned\x07"),
             "\"\\u001b[2J\\u001b]0;pwned\\u0007\"");
  check_json(LIT("line1\nline2\r\n"), "\"line1\\nline2\\r\\n\"");
}
END_TEST

START_TEST(test_json_embedded_nul) {
  check_json(LIT("a\0b"), "\"a\\u0000b\"");
  check_json(LIT("\0\0"), "\"\\u0000\\u0000\"");
}
END_TEST

START_TEST(test_json_invalid_utf8) {
  static const struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      /* Lone continuation bytes. */
      {LIT("\x80"), "\"\\ufffd\""},
      {LIT("a\xbf"
           "b"),
       "\"a\\ufffdb\""},
      /* Truncated sequences: every byte of them, and nothing after them is
       * swallowed. */
      {LIT("\xc3"), "\"\\ufffd\""},
      {LIT("\xe2\x82"), "\"\\ufffd\\ufffd\""},
      {LIT("\xe2\x82"
           "A"),
       "\"\\ufffd\\ufffdA\""},
      {LIT("\xf0\x9f\x98"), "\"\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xf0\x9f\x98\""), "\"\\ufffd\\ufffd\\ufffd\\\"\""},
      /* Overlong forms, including the classic overlong '/' and NUL. */
      {LIT("\xc0\xaf"), "\"\\ufffd\\ufffd\""},
      {LIT("\xc1\xbf"), "\"\\ufffd\\ufffd\""},
      {LIT("\xc0\x80"), "\"\\ufffd\\ufffd\""},
      {LIT("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xe0\x9f\xbf"), "\"\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xf0\x80\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xf0\x8f\xbf\xbf"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
      /* UTF-16 surrogates. */
      {LIT("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xed\xbf\xbf"), "\"\\ufffd\\ufffd\\ufffd\""},
      /* Past U+10FFFF, and bytes that never occur. */
      {LIT("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xf5\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xf8\x88\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\""},
      {LIT("\xfe\xff"), "\"\\ufffd\\ufffd\""},
      /* A continuation byte that is an ASCII quote is not swallowed. */
      {LIT("\xc3\""), "\"\\ufffd\\\"\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    check_json(cases[i].in, cases[i].len, cases[i].want);
}
END_TEST

START_TEST(test_json_valid_utf8_kept) {
  static const char *const kept[] = {
      "\xc2\x80", /* U+0080, the first two-byte */
      "\xc2\x85", /* U+0085 NEL: valid JSON unescaped */
      "\xc3\xa9t\xc3\xa9",
      "\xdf\xbf",         /* U+07FF */
      "\xe0\xa0\x80",     /* U+0800 */
      "\xe2\x82\xac",     /* euro sign */
      "\xe2\x80\xa8",     /* U+2028 */
      "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
      "\xee\x80\x80",     /* U+E000, just above */
      "\xef\xbf\xbd",     /* U+FFFD itself */
      "\xef\xbf\xbf",     /* U+FFFF */
      "\xf0\x90\x80\x80", /* U+10000 */
      "\xf0\x9f\x98\x80", /* an emoji */
      "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last */
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
  };
  for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
    char want[64];
    snprintf(want, sizeof(want), "\"%s\"", kept[i]);
    check_json(kept[i], strlen(kept[i]), want);
  }
}
END_TEST

START_TEST(test_json_every_single_byte) {
  for (unsigned c = 0; c < 256; c++) {
    char in[1] = {(char)c};
    unsigned char decoded[8], want[8];
    size_t decoded_len;
    buf_reset(&b);
    buf_json_string(&b, in, 1);
    ck_assert_msg(json_decode(b.data, b.len, decoded, &decoded_len),
                  "byte 0x%02x: not a JSON string: %s", c, b.data);
    size_t want_len = ref_replace_invalid((const unsigned char *)in, 1, want);
    ck_assert_uint_eq(decoded_len, want_len);
    ck_assert_mem_eq(decoded, want, want_len);
  }
}
END_TEST

START_TEST(test_json_appends) {
  buf_puts(&b, "{\"name\":");
  buf_json_string(&b, LIT("x\"y"));
  buf_puts(&b, "}");
  ck_assert_str_eq(b.data, "{\"name\":\"x\\\"y\"}");
  ck_assert_uint_eq(b.len, strlen(b.data));
}
END_TEST

START_TEST(test_json_random_hostile_input_is_valid_json) {
  /* Whatever comes in: one well-formed JSON string that decodes to the
   * input with exactly the invalid bytes replaced. */
  enum { MAX = 96 };
  unsigned char in[MAX], want[3 * MAX], decoded[3 * MAX];
  rng_state = 0x2545F4914F6CDD1Du;
  for (int round = 0; round < 50000; round++) {
    size_t len = hostile_bytes(in, MAX), decoded_len;
    buf_reset(&b);
    buf_json_string(&b, (const char *)in, len);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_msg(json_decode(b.data, b.len, decoded, &decoded_len),
                  "round %d: not a JSON string: %s", round, b.data);
    size_t want_len = ref_replace_invalid(in, len, want);
    ck_assert_uint_eq(decoded_len, want_len);
    ck_assert_mem_eq(decoded, want, want_len);
  }
}
END_TEST

/* -------------------------------------------------------- buf_text_escaped */

static void check_text(const char *in, size_t len, const char *want) {
  buf_reset(&b);
  buf_text_escaped(&b, in, len);
  ck_assert(!b.failed);
  ck_assert_uint_eq(b.len, strlen(want));
  if (b.len) {
    ck_assert_mem_eq(b.data, want, b.len);
    ck_assert_int_eq(b.data[b.len], '\0');
  }
}

START_TEST(test_text_plain) {
  check_text(LIT(""), "");
  check_text(LIT("worker-1 (main.py:42)"), "worker-1 (main.py:42)");
  check_text(LIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* U+00A0 is the first code point past the C1 block: kept. */
  check_text(LIT("\xc2\xa0"), "\xc2\xa0");
  check_text("abcdef", 2, "ab");
}
END_TEST

START_TEST(test_text_control_chars) {
  for (unsigned c = 0; c < 0x20; c++) {
    char in[1] = {(char)c}, want[8];
    snprintf(want, sizeof(want), "\\x%02x", c);
    check_text(in, 1, want);
  }
  check_text(LIT("\x7f"), "\\x7f");
  check_text(LIT("a\0b"), "a\\x00b");
  check_text(LIT("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  check_text(LIT("fake\nWARNING: forged line\r\n"),
             "fake\\x0aWARNING: forged line\\x0d\\x0a");
}
END_TEST

START_TEST(test_text_quote_backslash) {
  check_text(LIT("\\"), "\\x5c");
  check_text(LIT("\""), "\\x22");
  /* An escape in the input cannot pass for one of ours. */
  check_text(LIT("\\x0a"), "\\x5cx0a");
  check_text(LIT("say \"hi\""), "say \\x22hi\\x22");
}
END_TEST

START_TEST(test_text_c1_controls) {
  for (unsigned c = 0x80; c <= 0x9F; c++) {
    char in[2] = {(char)0xC2, (char)c}, want[16];
    snprintf(want, sizeof(want), "\\xc2\\x%02x", c);
    check_text(in, 2, want);
  }
  /* CSI (U+009B) starts a terminal sequence just as ESC [ does. */
  check_text(LIT("\xc2\x9b"
                 "2J"),
             "\\xc2\\x9b2J");
}
END_TEST

START_TEST(test_text_invalid_bytes) {
  check_text(LIT("\xff"), "\\xff");
  check_text(LIT("\x80"), "\\x80");
  check_text(LIT("\xe2\x82"), "\\xe2\\x82");
  check_text(LIT("\xe2\x82"
                 "A"),
             "\\xe2\\x82A");
  /* An overlong newline is not a way round the escaping. */
  check_text(LIT("\xc0\x8a"), "\\xc0\\x8a");
  check_text(LIT("\xe0\x80\x8a"), "\\xe0\\x80\\x8a");
  check_text(LIT("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  check_text(LIT("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
  /* A truncated C1 lead at the end. */
  check_text(LIT("ok\xc2"), "ok\\xc2");
}
END_TEST

START_TEST(test_text_random_hostile_input) {
  /* Nothing raw that a terminal or a line-based reader would act on, and
   * the escaping is reversible, so nothing is lost or ambiguous. */
  enum { MAX = 96 };
  unsigned char in[MAX], back[MAX];
  rng_state = 0x853C49E6748FEA9Bu;
  for (int round = 0; round < 50000; round++) {
    size_t len = hostile_bytes(in, MAX), back_len;
    buf_reset(&b);
    buf_text_escaped(&b, (const char *)in, len);
    const unsigned char *out = (const unsigned char *)b.data;
    /* Plain ifs in the loops: every passing ck_assert costs a write. */
    for (size_t i = 0; i < b.len; i++) {
      if (out[i] < 0x20 || out[i] == 0x7F || out[i] == '"')
        ck_abort_msg("round %d: raw 0x%02x at %zu", round, out[i], i);
      if (i + 1 < b.len && out[i] == 0xC2 && out[i + 1] < 0xA0)
        ck_abort_msg("round %d: raw C1 control at %zu", round, i);
    }
    ck_assert(ref_utf8_valid(out, b.len));
    ck_assert(text_unescape(b.data, b.len, back, &back_len));
    ck_assert_uint_eq(back_len, len);
    if (len)
      ck_assert_mem_eq(back, in, len);
  }
}
END_TEST

/* --------------------------------------------------- utf8_sequence_length */

static size_t seq_len(const char *s, size_t len) {
  return utf8_sequence_length((const unsigned char *)s, len);
}

START_TEST(test_utf8_edges) {
  ck_assert_uint_eq(seq_len("", 0), 0);
  ck_assert_uint_eq(seq_len("\0", 1), 1);
  ck_assert_uint_eq(seq_len("A", 1), 1);
  ck_assert_uint_eq(seq_len("\x7f", 1), 1);
  ck_assert_uint_eq(seq_len("\x80", 1), 0);
  ck_assert_uint_eq(seq_len("\xbf", 1), 0);
  ck_assert_uint_eq(seq_len("\xc0\x80", 2), 0);
  ck_assert_uint_eq(seq_len("\xc1\xbf", 2), 0);
  ck_assert_uint_eq(seq_len("\xc2\x80", 2), 2);
  ck_assert_uint_eq(seq_len("\xc2\x80", 1), 0); /* cut by len */
  ck_assert_uint_eq(seq_len("\xc2\x7f", 2), 0);
  ck_assert_uint_eq(seq_len("\xc2\xc0", 2), 0);
  ck_assert_uint_eq(seq_len("\xdf\xbf", 2), 2);
  ck_assert_uint_eq(seq_len("\xe0\x9f\xbf", 3), 0);
  ck_assert_uint_eq(seq_len("\xe0\xa0\x80", 3), 3);
  ck_assert_uint_eq(seq_len("\xe0\xa0\x80", 2), 0);
  ck_assert_uint_eq(seq_len("\xed\x9f\xbf", 3), 3);
  ck_assert_uint_eq(seq_len("\xed\xa0\x80", 3), 0);
  ck_assert_uint_eq(seq_len("\xed\xbf\xbf", 3), 0);
  ck_assert_uint_eq(seq_len("\xee\x80\x80", 3), 3);
  ck_assert_uint_eq(seq_len("\xef\xbf\xbf", 3), 3);
  ck_assert_uint_eq(seq_len("\xef\xbf\xbf", 3), 3);
  ck_assert_uint_eq(seq_len("\xf0\x8f\xbf\xbf", 4), 0);
  ck_assert_uint_eq(seq_len("\xf0\x90\x80\x80", 4), 4);
  ck_assert_uint_eq(seq_len("\xf0\x90\x80\x80", 3), 0);
  ck_assert_uint_eq(seq_len("\xf4\x8f\xbf\xbf", 4), 4);
  ck_assert_uint_eq(seq_len("\xf4\x90\x80\x80", 4), 0);
  ck_assert_uint_eq(seq_len("\xf5\x80\x80\x80", 4), 0);
  ck_assert_uint_eq(seq_len("\xff\xbf\xbf\xbf", 4), 0);
  /* Only the first sequence counts, whatever follows it. */
  ck_assert_uint_eq(seq_len("\xc3\xa9\xff", 3), 2);
  ck_assert_uint_eq(seq_len("A\xff", 2), 1);
}
END_TEST

START_TEST(test_utf8_matches_reference) {
  /* Every lead and second byte, with representative third and fourth bytes
   * from each range boundary, at every length cut. */
  static const unsigned char tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                        0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  const size_t nt = sizeof(tails);
  for (unsigned c0 = 0; c0 < 256; c0++)
    for (unsigned c1 = 0; c1 < 256; c1++)
      for (size_t i2 = 0; i2 < nt; i2++)
        for (size_t i3 = 0; i3 < nt; i3++) {
          const unsigned char s[4] = {(unsigned char)c0, (unsigned char)c1,
                                      tails[i2], tails[i3]};
          for (size_t len = 0; len <= 4; len++) {
            size_t got = utf8_sequence_length(s, len);
            size_t want = ref_utf8_length(s, len);
            if (got != want)
              ck_abort_msg("%02x %02x %02x %02x len %zu: %zu, want %zu", c0, c1,
                           tails[i2], tails[i3], len, got, want);
          }
        }
}
END_TEST

/* ------------------------------------------------------------ growth */

START_TEST(test_printf_grows_past_many_kib) {
  enum { BIG = 100 * 1024 };
  char *big = malloc(BIG + 1);
  ck_assert_ptr_nonnull(big);
  for (size_t i = 0; i < BIG; i++)
    big[i] = (char)('a' + i % 26);
  big[BIG] = '\0';
  buf_printf(&b, "<%s>", big);
  ck_assert(!b.failed);
  ck_assert_uint_eq(b.len, BIG + 2);
  ck_assert_uint_gt(b.cap, b.len);
  ck_assert_int_eq(b.data[0], '<');
  ck_assert_mem_eq(b.data + 1, big, BIG);
  ck_assert_int_eq(b.data[BIG + 1], '>');
  ck_assert_int_eq(b.data[BIG + 2], '\0');
  /* And again, on top of what is there. */
  buf_printf(&b, "%s|%d", big, 42);
  ck_assert_uint_eq(b.len, 2 * BIG + 5);
  ck_assert_mem_eq(b.data + BIG + 2, big, BIG);
  ck_assert_str_eq(b.data + 2 * BIG + 2, "|42");
  free(big);
}
END_TEST

START_TEST(test_printf_many_small) {
  /* Thousands of appends across every doubling of the capacity. */
  for (int i = 0; i < 20000; i++)
    buf_printf(&b, "%05d,", i);
  ck_assert(!b.failed);
  ck_assert_uint_eq(b.len, 20000 * 6);
  ck_assert_uint_eq(strlen(b.data), b.len);
  for (int i = 0; i < 20000; i++) {
    char want[8];
    snprintf(want, sizeof(want), "%05d,", i);
    ck_assert_mem_eq(b.data + 6 * i, want, 6);
  }
}
END_TEST

START_TEST(test_printf_at_capacity_edges) {
  /* Fill to one short of each capacity boundary, then cross it. */
  for (size_t fill = 250; fill < 260; fill++) {
    buf_reset(&b);
    for (size_t i = 0; i < fill; i++)
      buf_add(&b, "x", 1);
    buf_printf(&b, "%s", "0123456789");
    ck_assert_uint_eq(b.len, fill + 10);
    ck_assert_uint_ge(b.cap, b.len + 1);
    ck_assert_str_eq(b.data + fill, "0123456789");
    for (size_t i = 0; i < fill; i++)
      ck_assert_int_eq(b.data[i], 'x');
  }
}
END_TEST

START_TEST(test_buf_basics) {
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.len, 0);
  buf_printf(&b, "%s", "");
  ck_assert_uint_eq(b.len, 0);
  buf_add(&b, "ab\0cd", 5);
  ck_assert_uint_eq(b.len, 5);
  ck_assert_mem_eq(b.data, "ab\0cd", 6);
  buf_puts(&b, "ef");
  ck_assert_uint_eq(b.len, 7);
  ck_assert_mem_eq(b.data, "ab\0cdef", 8);
  buf_reset(&b);
  ck_assert_uint_eq(b.len, 0);
  ck_assert(!b.failed);
  buf_puts(&b, "z");
  ck_assert_str_eq(b.data, "z");
  buf_free(&b);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_uint_eq(b.cap, 0);
  /* A freed buffer is an empty one, ready for use. */
  buf_printf(&b, "%d-%s", 7, "up");
  ck_assert_str_eq(b.data, "7-up");
}
END_TEST

static Suite *buf_suite(void) {
  Suite *s = suite_create("buf");
  TCase *tc;

  tc = tcase_create("json");
  tcase_add_checked_fixture(tc, setup, teardown);
  /* The random rounds are pure computation, a second or two under valgrind
   * or a sanitizer; the margin is for slow CI machines. */
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_json_plain);
  tcase_add_test(tc, test_json_quotes_backslashes);
  tcase_add_test(tc, test_json_every_control_char);
  tcase_add_test(tc, test_json_embedded_nul);
  tcase_add_test(tc, test_json_invalid_utf8);
  tcase_add_test(tc, test_json_valid_utf8_kept);
  tcase_add_test(tc, test_json_every_single_byte);
  tcase_add_test(tc, test_json_appends);
  tcase_add_test(tc, test_json_random_hostile_input_is_valid_json);
  suite_add_tcase(s, tc);

  tc = tcase_create("text");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_text_plain);
  tcase_add_test(tc, test_text_control_chars);
  tcase_add_test(tc, test_text_quote_backslash);
  tcase_add_test(tc, test_text_c1_controls);
  tcase_add_test(tc, test_text_invalid_bytes);
  tcase_add_test(tc, test_text_random_hostile_input);
  suite_add_tcase(s, tc);

  tc = tcase_create("utf8");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_utf8_edges);
  tcase_add_test(tc, test_utf8_matches_reference);
  suite_add_tcase(s, tc);

  tc = tcase_create("growth");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_printf_grows_past_many_kib);
  tcase_add_test(tc, test_printf_many_small);
  tcase_add_test(tc, test_printf_at_capacity_edges);
  tcase_add_test(tc, test_buf_basics);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(buf_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
