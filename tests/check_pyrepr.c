/*
 * repr() of Python values made from bytes copied out of a CPython process.
 * The expected strings are what Python itself prints for the same values;
 * the hostile cases feed any kind, any length and any buffer size, with a
 * canary past the end of the buffer.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uchar.h>

#include "watcher/pyrepr.h"

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state;

/* splitmix64: a fixed seed, so a failure can be replayed. */
static uint64_t rng(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *text, size_t n) {
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t len = c < 0x80                ? 1
                 : c >= 0xc2 && c < 0xe0 ? 2
                 : c >= 0xe0 && c < 0xf0 ? 3
                 : c >= 0xf0 && c < 0xf5 ? 4
                                         : 0;
    if (!len || len > n - i)
      return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return false;
    i += len;
  }
  return true;
}

/* Output buffers are followed by a canary that no call may touch. */
#define GUARD 16
#define CANARY 0xa5
static char guarded_buf[4096 + GUARD];

static char *guarded(size_t size) {
  memset(guarded_buf, CANARY, size + GUARD);
  return guarded_buf;
}

/* What every call promises, whatever its input: nothing written past
 * `size`, a NUL at the returned length, whole UTF-8 characters. */
static void check_guarded(size_t size, size_t ret) {
  for (size_t i = size; i < size + GUARD; i++)
    ck_assert_msg((unsigned char)guarded_buf[i] == CANARY,
                  "byte %zu past a buffer of %zu was written", i - size, size);
  if (size == 0) {
    ck_assert_uint_eq(ret, 0);
    return;
  }
  ck_assert_uint_lt(ret, size);
  ck_assert_int_eq(guarded_buf[ret], '\0');
  ck_assert_msg(utf8_valid(guarded_buf, ret), "invalid UTF-8: %s", guarded_buf);
}

/* A cut repr is a prefix of the whole one followed by "...", or, in a
 * buffer too small for that, as much of "..." as fits. */
static void check_cut(const char *out, size_t ret, size_t size,
                      const char *whole) {
  if (strcmp(out, whole) == 0)
    return;
  if (size < 4) {
    ck_assert_uint_eq(ret, size - 1);
    ck_assert_int_eq(strncmp(out, "...", ret), 0);
    return;
  }
  ck_assert_msg(ret >= 3 && strcmp(out + ret - 3, "...") == 0,
                "cut without \"...\": %s", out);
  ck_assert_msg(strncmp(out, whole, ret - 3) == 0, "%s is not a prefix of %s",
                out, whole);
}

/* A str as CPython stores it, in code points of `kind` bytes; false if one
 * does not fit the kind. */
static bool pack(const char32_t *s, size_t n, unsigned kind, void *buf) {
  unsigned char *p = buf;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = s[i];
    if (kind == 1 && c > 0xff)
      return false;
    if (kind == 2 && c > 0xffff)
      return false;
    if (kind == 1)
      p[i] = (unsigned char)c;
    else if (kind == 2)
      memcpy(p + 2 * i, &(uint16_t){(uint16_t)c}, 2);
    else
      memcpy(p + 4 * i, &c, 4);
  }
  return true;
}

#define U32_LEN(s) (sizeof(s) / sizeof(char32_t) - 1)

/* Python: repr(''.join(map(chr, range(256)))) and repr(bytes(range(256))) */
static const char latin1_repr[] =
    "'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x"
    "0e\\x0f\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17\\x18\\x19\\x1a\\x1b"
    "\\x1c\\x1d\\x1e\\x1f !\"#$%&\\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKL"
    "MNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\\x7f\\x80\\x81"
    "\\x82\\x83\\x84\\x85\\x86\\x87\\x88\\x89\\x8a\\x8b\\x8c\\x8d\\x8e\\x"
    "8f\\x90\\x91\\x92\\x93\\x94\\x95\\x96\\x97\\x98\\x99\\x9a\\x9b\\x9c"
    "\\x9d\\x9e\\x9f\\xa0\302\241\302\242\302\243\302\244\302\245\302\246"
    "\302\247\302\250\302\251\302\252\302\253\302\254\\xad\302\256\302"
    "\257\302\260\302\261\302\262\302\263\302\264\302\265\302\266\302\267"
    "\302\270\302\271\302\272\302\273\302\274\302\275\302\276\302\277\303"
    "\200\303\201\303\202\303\203\303\204\303\205\303\206\303\207\303\210"
    "\303\211\303\212\303\213\303\214\303\215\303\216\303\217\303\220\303"
    "\221\303\222\303\223\303\224\303\225\303\226\303\227\303\230\303\231"
    "\303\232\303\233\303\234\303\235\303\236\303\237\303\240\303\241\303"
    "\242\303\243\303\244\303\245\303\246\303\247\303\250\303\251\303\252"
    "\303\253\303\254\303\255\303\256\303\257\303\260\303\261\303\262\303"
    "\263\303\264\303\265\303\266\303\267\303\270\303\271\303\272\303\273"
    "\303\274\303\275\303\276\303\277'";
static const char all_bytes_repr[] =
    "b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\"
    "x0e\\x0f\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17\\x18\\x19\\x1a\\x1b"
    "\\x1c\\x1d\\x1e\\x1f !\"#$%&\\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKL"
    "MNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\\x7f\\x80\\x81"
    "\\x82\\x83\\x84\\x85\\x86\\x87\\x88\\x89\\x8a\\x8b\\x8c\\x8d\\x8e\\x"
    "8f\\x90\\x91\\x92\\x93\\x94\\x95\\x96\\x97\\x98\\x99\\x9a\\x9b\\x9c"
    "\\x9d\\x9e\\x9f\\xa0\\xa1\\xa2\\xa3\\xa4\\xa5\\xa6\\xa7\\xa8\\xa9\\x"
    "aa\\xab\\xac\\xad\\xae\\xaf\\xb0\\xb1\\xb2\\xb3\\xb4\\xb5\\xb6\\xb7"
    "\\xb8\\xb9\\xba\\xbb\\xbc\\xbd\\xbe\\xbf\\xc0\\xc1\\xc2\\xc3\\xc4\\x"
    "c5\\xc6\\xc7\\xc8\\xc9\\xca\\xcb\\xcc\\xcd\\xce\\xcf\\xd0\\xd1\\xd2"
    "\\xd3\\xd4\\xd5\\xd6\\xd7\\xd8\\xd9\\xda\\xdb\\xdc\\xdd\\xde\\xdf\\x"
    "e0\\xe1\\xe2\\xe3\\xe4\\xe5\\xe6\\xe7\\xe8\\xe9\\xea\\xeb\\xec\\xed"
    "\\xee\\xef\\xf0\\xf1\\xf2\\xf3\\xf4\\xf5\\xf6\\xf7\\xf8\\xf9\\xfa\\x"
    "fb\\xfc\\xfd\\xfe\\xff'";

/* ---------------------------------------------------------------- str */

struct str_case {
  const char32_t *text;
  size_t len;
  const char *repr;
};
#define STR_CASE(s, r)                                                         \
  { s, U32_LEN(s), r }

/* repr() of each str, as Python prints it. */
static const struct str_case str_known[] = {
    STR_CASE(U"", "''"),
    STR_CASE(U"abc", "'abc'"),
    STR_CASE(U"it's", "\"it's\""),
    STR_CASE(U"say \"hi\"", "'say \"hi\"'"),
    STR_CASE(U"both ' and \" ", "'both \\' and \" '"),
    STR_CASE(U"a\nb\tc\rd", "'a\\nb\\tc\\rd'"),
    STR_CASE(U"\0\1\37\177", "'\\x00\\x01\\x1f\\x7f'"),
    STR_CASE(U"back\\slash", "'back\\\\slash'"),
    STR_CASE(U"caf\u00e9", "'caf\303\251'"),
    STR_CASE(U"\x80\x9f\xa0\xad\xff", "'\\x80\\x9f\\xa0\\xad\303\277'"),
    STR_CASE(U"\u20ac100", "'\342\202\254100'"),
    STR_CASE(U"snake \U0001f40d", "'snake \360\237\220\215'"),
    STR_CASE(U"\u00fcn\u00ef \U0001f600 \u20ac",
             "'\303\274n\303\257 \360\237\230\200 \342\202\254'"),
    STR_CASE(U"'", "\"'\""),
    STR_CASE(U"\"", "'\"'"),
    STR_CASE(U"'\"", "'\\'\"'"),
    STR_CASE(U"\\'", "\"\\\\'\""),
};

/* Every kind that holds the text gives the same repr. */
START_TEST(test_str_known) {
  for (size_t i = 0; i < sizeof(str_known) / sizeof(str_known[0]); i++) {
    const struct str_case *c = &str_known[i];
    int kinds = 0;
    for (unsigned kind = 1; kind <= 4; kind *= 2) {
      uint32_t buf[64];
      if (!pack(c->text, c->len, kind, buf))
        continue;
      kinds++;
      char out[256];
      size_t n = pyrepr_str(buf, c->len, c->len, kind, out, sizeof(out));
      ck_assert_str_eq(out, c->repr);
      ck_assert_uint_eq(n, strlen(c->repr));
    }
    ck_assert_int_gt(kinds, 0);
  }
}
END_TEST

START_TEST(test_str_latin1) {
  char32_t text[256];
  for (unsigned i = 0; i < 256; i++)
    text[i] = i;
  for (unsigned kind = 1; kind <= 4; kind *= 2) {
    uint32_t buf[256];
    char out[2048];
    ck_assert(pack(text, 256, kind, buf));
    pyrepr_str(buf, 256, 256, kind, out, sizeof(out));
    ck_assert_str_eq(out, latin1_repr);
  }
}
END_TEST

START_TEST(test_str_surrogates) {
  /* Python: repr('\ud800'), repr('a\udfffb'), repr('\udc80'). */
  char out[64];
  const uint16_t lone[] = {0xd800};
  pyrepr_str(lone, 1, 1, 2, out, sizeof(out));
  ck_assert_str_eq(out, "'\\ud800'");
  const uint16_t mid[] = {'a', 0xdfff, 'b'};
  pyrepr_str(mid, 3, 3, 2, out, sizeof(out));
  ck_assert_str_eq(out, "'a\\udfffb'");
  const uint32_t wide[] = {0xdc80};
  pyrepr_str(wide, 1, 1, 4, out, sizeof(out));
  ck_assert_str_eq(out, "'\\udc80'");
  /* No Python str holds these; they are shown by value. */
  const uint32_t beyond[] = {0x110000, 0xffffffff};
  pyrepr_str(beyond, 2, 2, 4, out, sizeof(out));
  ck_assert_str_eq(out, "'\\U00110000\\Uffffffff'");
}
END_TEST

START_TEST(test_str_prefix_only) {
  char out[64];
  pyrepr_str("abcdef", 6, 10, 1, out, sizeof(out));
  ck_assert_str_eq(out, "'abcdef...");
  pyrepr_str("abcdef", 0, 10, 1, out, sizeof(out));
  ck_assert_str_eq(out, "'...");
  /* The quote is chosen from what was read. */
  pyrepr_str("it's", 4, 1000, 1, out, sizeof(out));
  ck_assert_str_eq(out, "\"it's...");
  /* A count beyond the length is the length. */
  pyrepr_str("abcdef", 6, 3, 1, out, sizeof(out));
  ck_assert_str_eq(out, "'abc'");
}
END_TEST

START_TEST(test_str_cut) {
  static const char32_t text[] = U"\u00e9'\n\u20ac\U0001f40d\1x\"\ud7ff";
  const size_t len = U32_LEN(text);
  uint32_t buf[32];
  ck_assert(pack(text, len, 4, buf));
  char whole[256];
  size_t whole_len = pyrepr_str(buf, len, len, 4, whole, sizeof(whole));
  ck_assert_str_eq(whole, "'\303\251\\'\\n\342\202\254\360\237\220\215\\x01x"
                          "\"\355\237\277'");
  for (size_t size = 0; size <= whole_len + 4; size++) {
    char *out = guarded(size);
    size_t n = pyrepr_str(buf, len, len, 4, out, size);
    check_guarded(size, n);
    if (size)
      check_cut(out, n, size, whole);
    if (size > whole_len)
      ck_assert_str_eq(out, whole);
    else if (size)
      ck_assert_str_ne(out, whole);
  }
}
END_TEST

/* ----------------------------------------------------------- str utf8 */

START_TEST(test_utf8_names) {
  /* Python: 'h\u00e9llo \u20ac\U0001f40d'.encode() */
  static const char32_t name[] = U"h\u00e9llo \u20ac\U0001f40d";
  const char *want = "h\303\251llo \342\202\254\360\237\220\215";
  int kinds = 0;
  for (unsigned kind = 1; kind <= 4; kind *= 2) {
    uint32_t buf[32];
    if (!pack(name, U32_LEN(name), kind, buf))
      continue;
    kinds++;
    char out[64];
    bool truncated = true;
    size_t n =
        pystr_utf8(buf, U32_LEN(name), kind, out, sizeof(out), &truncated);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(!truncated);
  }
  ck_assert_int_eq(kinds, 1);
  char out[64];
  bool truncated = true;
  ck_assert_uint_eq(pystr_utf8("caf\351.py", 7, 1, out, 64, &truncated), 8);
  ck_assert_str_eq(out, "caf\303\251.py");
  ck_assert(!truncated);
}
END_TEST

START_TEST(test_utf8_invalid_code_points) {
  char out[64];
  bool truncated = true;
  const uint16_t half[] = {'a', 0xd83d, 'b', 0xdc0d};
  pystr_utf8(half, 4, 2, out, sizeof(out), &truncated);
  ck_assert_str_eq(out, "a\357\277\275b\357\277\275");
  ck_assert(!truncated);
  const uint32_t wide[] = {0x10ffff, 0x110000, 0xffffffff, 0xd800};
  pystr_utf8(wide, 4, 4, out, sizeof(out), &truncated);
  ck_assert_str_eq(out, "\364\217\277\277\357\277\275\357\277\275\357\277\275");
  /* U+0000 is a character like any other: one zero byte. */
  const uint16_t nul[] = {'a', 0, 'b'};
  ck_assert_uint_eq(pystr_utf8(nul, 3, 2, out, sizeof(out), NULL), 3);
  ck_assert_int_eq(memcmp(out, "a\0b", 4), 0);
}
END_TEST

START_TEST(test_utf8_truncated) {
  static const char32_t name[] = U"a\u20ac\U0001f40db";
  const char *want = "a\342\202\254\360\237\220\215b";
  uint32_t buf[8];
  ck_assert(pack(name, U32_LEN(name), 4, buf));
  /* Only whole characters: the longest prefix that fits each size. */
  static const size_t fits[] = {0, 0, 1, 1, 1, 4, 4, 4, 4, 8, 9};
  for (size_t size = 0; size <= 12; size++) {
    char *out = guarded(size);
    bool truncated = false;
    size_t n = pystr_utf8(buf, U32_LEN(name), 4, out, size, &truncated);
    check_guarded(size, n);
    size_t expect = size < 11 ? fits[size] : 9;
    ck_assert_uint_eq(n, expect);
    ck_assert(truncated == (size <= 9));
    if (size)
      ck_assert_int_eq(memcmp(out, want, n), 0);
  }
  bool truncated = true;
  ck_assert_uint_eq(pystr_utf8(buf, 0, 4, guarded(0), 0, &truncated), 0);
  ck_assert(!truncated);
}
END_TEST

/* -------------------------------------------------------------- bytes */

struct bytes_case {
  const char *data;
  size_t len;
  const char *repr;
};
#define BYTES_CASE(s, r)                                                       \
  { s, sizeof(s) - 1, r }

/* repr() of each bytes, as Python prints it. */
static const struct bytes_case bytes_known[] = {
    BYTES_CASE("", "b''"),
    BYTES_CASE("abc", "b'abc'"),
    BYTES_CASE("it's", "b\"it's\""),
    BYTES_CASE("say \"hi\"", "b'say \"hi\"'"),
    BYTES_CASE("both ' and \" ", "b'both \\' and \" '"),
    BYTES_CASE("\0\n\t\r\\\177\200\377",
               "b'\\x00\\n\\t\\r\\\\\\x7f\\x80\\xff'"),
};

START_TEST(test_bytes_known) {
  for (size_t i = 0; i < sizeof(bytes_known) / sizeof(bytes_known[0]); i++) {
    const struct bytes_case *c = &bytes_known[i];
    char out[256];
    size_t n = pyrepr_bytes((const uint8_t *)c->data, c->len, c->len, out,
                            sizeof(out));
    ck_assert_str_eq(out, c->repr);
    ck_assert_uint_eq(n, strlen(c->repr));
  }
  uint8_t all[256];
  for (unsigned i = 0; i < 256; i++)
    all[i] = (uint8_t)i;
  char out[2048];
  pyrepr_bytes(all, 256, 256, out, sizeof(out));
  ck_assert_str_eq(out, all_bytes_repr);
}
END_TEST

START_TEST(test_bytes_prefix_and_cut) {
  char out[64];
  pyrepr_bytes((const uint8_t *)"abc", 3, 4096, out, sizeof(out));
  ck_assert_str_eq(out, "b'abc...");
  pyrepr_bytes(NULL, 0, 7, out, sizeof(out));
  ck_assert_str_eq(out, "b'...");
  const uint8_t data[] = "x\377'\n\"y";
  const size_t len = sizeof(data) - 1;
  char whole[64];
  size_t whole_len = pyrepr_bytes(data, len, len, whole, sizeof(whole));
  /* Python: repr(b'x\xff\'\n"y') */
  ck_assert_str_eq(whole, "b'x\\xff\\'\\n\"y'");
  for (size_t size = 0; size <= whole_len + 4; size++) {
    char *buf = guarded(size);
    size_t n = pyrepr_bytes(data, len, len, buf, size);
    check_guarded(size, n);
    ck_assert_uint_eq(n, size ? strlen(buf) : 0);
    if (size)
      check_cut(buf, n, size, whole);
    if (size > whole_len)
      ck_assert_str_eq(buf, whole);
  }
}
END_TEST

/* -------------------------------------------------------------- float */

struct float_case {
  uint64_t bits;
  const char *repr;
};

/* repr() of these doubles, as Python prints it. */
static const struct float_case float_known[] = {
    {0x3ff8000000000000ull, "1.5"},
    {0x3fb999999999999aull, "0.1"},
    {0x3fd3333333333334ull, "0.30000000000000004"},
    {0x3fd5555555555555ull, "0.3333333333333333"},
    {0x3fe5555555555555ull, "0.6666666666666666"},
    {0x4341c37937e08000ull, "1e+16"},
    {0x3ee4f8b588e368f1ull, "1e-05"},
    {0x419d6f3454000000ull, "123456789.0"},
    {0x8000000000000000ull, "-0.0"},
    {0x0000000000000000ull, "0.0"},
    {0x3ff0000000000000ull, "1.0"},
    {0xbff0000000000000ull, "-1.0"},
    {0x4059000000000000ull, "100.0"},
    {0x7ff0000000000000ull, "inf"},
    {0xfff0000000000000ull, "-inf"},
    {0x7fefffffffffffffull, "1.7976931348623157e+308"},
    {0x0000000000000001ull, "5e-324"},
    {0x8000000000000001ull, "-5e-324"},
    {0x0000000000000002ull, "1e-323"},
    {0x0010000000000000ull, "2.2250738585072014e-308"},
    {0x000fffffffffffffull, "2.225073858507201e-308"},
    {0x430c6bf526340000ull, "1000000000000000.0"},
    {0x4341c37937e08000ull, "1e+16"},
    {0x4376345785d8a000ull, "1e+17"},
    {0x4341c37937e07fffull, "9999999999999998.0"},
    {0x4341c37937e08001ull, "1.0000000000000002e+16"},
    {0x43118b54f22aeb03ull, "1234567890123456.8"},
    {0x4345ee2a2eb5a5c4ull, "1.2345678901234568e+16"},
    {0x3f1a36e2eb1c432dull, "0.0001"},
    {0x3ee4f8b588e368f1ull, "1e-05"},
    {0x3f1a36e2eb1c432dull, "0.0001"},
    {0x3f202e4b6ce5dc68ull, "0.00012345"},
    {0x3f1a36e2eb1c432cull, "9.999999999999999e-05"},
    {0x3f50624dd2f1a9fcull, "0.001"},
    {0x4480f0cf064dd592ull, "1e+22"},
    {0x44b52d02c7e14af6ull, "1e+23"},
    {0x4340000000000000ull, "9007199254740992.0"},
    {0x4340000000000001ull, "9007199254740994.0"},
    {0x43f0000000000000ull, "1.8446744073709552e+19"},
    {0x0060000000000000ull, "7.120236347223045e-307"},
    {0x0100000000000000ull, "7.291122019556398e-304"},
    {0x0000000000000001ull, "5e-324"},
    {0x7fe0000000000000ull, "8.98846567431158e+307"},
    {0x400921fb54442d18ull, "3.141592653589793"},
    {0xc005bf0a8b145769ull, "-2.718281828459045"},
    {0x7e37e43c8800759cull, "1e+300"},
    {0x01a56e1fc2f8f359ull, "1e-300"},
    {0x44dfe185ca57c517ull, "6.02214076e+23"},
    {0x41b1de784a000000ull, "299792458.0"},
    {0x3fe0000000000000ull, "0.5"},
    {0x3fd0000000000000ull, "0.25"},
    {0x3fc0000000000000ull, "0.125"},
    {0x54b249ad2594c37dull, "1e+100"},
    {0x405edd2f1a9fbe77ull, "123.456"},
};
/* Random bit patterns (NaNs skipped) and their Python repr(). */
static const struct float_case float_random[] = {
    {0x749882321e35049eull, "4.492152248019643e+253"},
    {0x79c8c2926b94b5b5ull, "4.389120112770094e+278"},
    {0x4242aadbc8f429a4ull, "160351883752.32532"},
    {0xeb7a79959588532dull, "-5.4399131119142674e+209"},
    {0x3cf3bd58da60fb1cull, "4.383079907872608e-15"},
    {0x515c61236c88c537ull, "8.614354442467737e+83"},
    {0xf4b1b64633be40f5ull, "-1.2985664392816573e+254"},
    {0x88718c966f3d88f7ull, "-5.314965623006408e-268"},
    {0xda1b195060c40eb7ull, "-1.146488202889241e+126"},
    {0x5b08acc213a5bf07ull, "3.420758551378043e+130"},
    {0x6a5d670af9a3638eull, "2.3046315439163635e+204"},
    {0x4a894db7e48f12b9ull, "1.1833994934170815e+51"},
    {0xdabe22cad37b17c6ull, "-1.3055768296735293e+129"},
    {0x82b9bfbc91ba7257ull, "-1.5748679552677205e-295"},
    {0x0cf197f45625871bull, "2.51627196477289e-246"},
    {0xa5240b6020d0b29cull, "-9.036613517376497e-130"},
    {0xb4a3165de1ab3e01ull, "-3.892215651960722e-55"},
    {0x400cb70f964e03c0ull, "3.589385198837107"},
    {0xe683acdf2060d7c4ull, "-6.688184663054428e+185"},
    {0x83d8e92df2adcc0eull, "-3.994044171376333e-290"},
    {0x4f3d9a4de6cf02bbull, "5.2303534038858595e+73"},
    {0xb039ee169646a718ull, "-2.239361282907897e-76"},
    {0x135ab03d8de49eb1ull, "1.9354693131874806e-215"},
    {0xe085b021e0d44f2bull, "-9.305240496802682e+156"},
    {0xa6a86bd5a7550d23ull, "-1.8471377613108987e-122"},
    {0x428474c15e9ecba7ull, "2811461620697.4565"},
    {0x69d6bd800bc49874ull, "6.962609881020059e+201"},
    {0x94a2de50ff542939ull, "-2.8696480509335243e-209"},
    {0xdcb25c12903c3ad2ull, "-3.41619470970423e+138"},
    {0x764ae4d4359e9d02ull, "6.616060051749092e+261"},
    {0x959ba1690ce64264ull, "-1.3769933585597693e-204"},
    {0x79fdda8fd41f125bull, "4.2336503662127315e+279"},
    {0x4e5ac63a43514e2eull, "2.887337660350333e+69"},
    {0x167dd41a347a2e47ull, "2.4355366694702615e-200"},
    {0x23263c49440a9a11ull, "2.3339888564043163e-139"},
    {0xa30354ef398bdedfull, "-5.072987159160624e-140"},
    {0x98f01733d942b204ull, "-1.444561059875671e-188"},
    {0x67c8765c57810ce8ull, "8.719375264419009e+191"},
    {0x0df2d1aff1067dbdull, "1.7639331668509974e-241"},
    {0xa37f115c6a44f3ccull, "-1.0435487072953564e-137"},
    {0x4a7ce6e5f89c8d33ull, "6.75843876005182e+50"},
    {0xa22fa1f725601b2full, "-5.066499894016898e-144"},
    {0x1b39320448410fe3ull, "1.5544023441874205e-177"},
    {0x5043796d40618823ull, "4.509945161717723e+78"},
    {0xc58718296e887807ull, "-8.934206376953689e+26"},
    {0x1098d6a904943815ull, "1.0239269122939286e-228"},
    {0x3a38b767352e4941ull, "3.119650612955522e-28"},
    {0x9b19cdec60c9e347ull, "-3.979936478258974e-178"},
    {0x780b86486a2a1812ull, "1.8176331567502735e+270"},
    {0x8935b28fafb5454bull, "-2.6916191680102057e-264"},
    {0xef8d8e8e32474e22ull, "-2.2406033019642223e+229"},
    {0x17cde531518bd8abull, "5.1191220706885394e-194"},
    {0x6d33ce50dcfe4bccull, "1.0924257505679557e+218"},
    {0xcfc2ffe4ed2261f1ull, "-1.718751453462524e+76"},
    {0x89e0b9583a589e65ull, "-4.24887536492955e-261"},
    {0x3f0279a1abe7020eull, "3.523850090259374e-05"},
    {0x46f6d2e1c91d6da3ull, "7.406732842697646e+33"},
    {0xc10c2788a8e1f980ull, "-230641.08246226236"},
    {0x9e5d4d25c8ec9febull, "-2.0353077945140491e-162"},
    {0xd703d5b062c4a228ull, "-1.4906461069017133e+111"},
    {0x7d3109bf6bd33d83ull, "1.0881689946975821e+295"},
    {0xc8bd8770d23ad2d9ull, "-2.572344376666327e+42"},
    {0x62f56763d5236ac1ull, "5.048586880232952e+168"},
    {0x26b8e5ba2d10a9f2ull, "3.766303194632279e-122"},
    {0x5439f75f10c01d5dull, "5.546366806697518e+97"},
    {0xfd39265bb32e9ea1ull, "-1.6062418535594396e+295"},
    {0x8ca4c608ef605abfull, "-9.284634142654976e-248"},
    {0x616273cdd6a19e4full, "1.2971183612942818e+161"},
    {0x40fc275e69b5220dull, "115317.90080750753"},
    {0xbb9d2ebef476092full, "-1.544914046103647e-21"},
    {0xc2d14e0a57e101e1ull, "-76107514610695.52"},
    {0x2f62323b36225fadull, "1.9182811083926818e-80"},
    {0x8564f1dc632417c4ull, "-1.1268073132697686e-282"},
    {0x2e3d6a6340ed367eull, "5.9147803353002586e-86"},
    {0x3a5f9ccdad9a6f2dull, "1.596024059935851e-27"},
    {0x9713b93662cb4300ull, "-1.6490982535525327e-197"},
    {0x248fcff28cc334f4ull, "1.4005767696709742e-132"},
    {0x9e8c1878d5464ac5ull, "-1.5612431716807163e-161"},
    {0x769799bacbebb741ull, "1.857879539846099e+263"},
    {0x52bd78ee9ff29d16ull, "3.7522700644430283e+90"},
    {0x168afe5e7d671459ull, "4.408127744872612e-200"},
    {0x670c22f05c9cb0adull, "2.4484828906951957e+188"},
    {0xcc64498c8ee93884ull, "-1.0187636184384608e+60"},
    {0xef5ead0be38a95e0ull, "-2.906798524606354e+228"},
    {0x0e1908e532ae8f10ull, "9.386132684463132e-241"},
    {0x65feb06cdac1d38dull, "2.0375224210602439e+183"},
    {0x5654e963457642bdull, "7.673742163252605e+107"},
    {0x4d0d21a3710efc3full, "1.4979953669761758e+63"},
    {0xa2982e5b770e5f35ull, "-4.957443869699183e-142"},
    {0xf230b77b1c4de493ull, "-1.1146734535427213e+242"},
    {0x036fcbe0d077e1beull, "3.9828335704674696e-292"},
    {0x087d804ebd29370dull, "8.934773985868121e-268"},
    {0x7d66c01f47376eb4ull, "1.1624017815353555e+296"},
    {0x0ba75e632205dad7ull, "1.5937059814357505e-252"},
    {0x15ce2fd817781ac9ull, "1.2035145121442573e-203"},
    {0xfac19bd781637187ull, "-2.0456655896606624e+283"},
    {0xd04883eb74645968ull, "-5.677358274456412e+78"},
    {0xa736357e8e82c020ull, "-8.600624804047986e-120"},
    {0x14f69a60f9d97768ull, "1.1000435959643567e-207"},
    {0xa1a58ce83556173aull, "-1.3483040002715785e-146"},
    {0x76067ae6ac125000ull, "3.456401326348284e+260"},
    {0xfe5dd6f65d04c969ull, "-4.995858102624242e+300"},
    {0xa7e567e387ed23b1ull, "-1.6977098426682013e-116"},
    {0x5d4a47ec58caa18cull, "2.5037389504224344e+141"},
    {0x226a6c288814f4bfull, "6.771203519258164e-143"},
    {0x24b99aa4e600b110ull, "9.018017223717599e-132"},
    {0x6325af54a30a6e7aull, "4.091897097751034e+169"},
    {0x0476dff0f4fbd348ull, "3.755613487225919e-287"},
    {0x7e6b74a0934c4538ull, "9.193401602166176e+300"},
    {0x8c5e5efd1d23e7feull, "-4.241929062227163e-249"},
    {0x34bea62d788c5f34ull, "1.2499682100800243e-54"},
    {0x8b79ec1a5a26fe7aull, "-2.2098195346875435e-253"},
    {0xa4296461beddd096ull, "-1.7467503883805055e-134"},
    {0x509c253003678f48ull, "2.0857592999671978e+80"},
    {0xe3f7b4ef51fb5227ull, "-3.664629130009126e+173"},
    {0xd3a71489888c3c0bull, "-9.628722339994155e+94"},
    {0x851d62b5bd703358ull, "-4.940358355155338e-284"},
    {0x787b118631fd7a9dull, "2.2880185864906387e+272"},
    {0xdda7e515e33a2538ull, "-1.4569093923171344e+143"},
    {0x1e036ff5150fb7fdull, "4.219189736405942e-164"},
    {0xb29bc6b33ac4414bull, "-6.593763150987159e-65"},
    {0x65ce110a2689ae92ull, "2.495233270641561e+182"},
    {0xfd703b61aa80bb6cull, "-1.658695582999252e+296"},
    {0xb2256110d660d13bull, "-3.9649861760688254e-67"},
    {0x8a6e83734bc9404eull, "-1.9845655405218892e-258"},
    {0x993bb873540b742eull, "-3.981841037629933e-187"},
    {0x936cd61319c06515ull, "-4.1824578601242436e-215"},
    {0x5fdd3a168a6189a7ull, "6.1229491867839026e+153"},
    {0xf62e7330ba45cd54ull, "-1.872720725712569e+261"},
    {0xe644c315c2cb1187ull, "-4.41100559443871e+184"},
    {0xcfda60dc99517a7eull, "-4.7725095596129884e+76"},
    {0x0e30277e50b7c84full, "2.422650900233094e-240"},
    {0xd069212df802fea9ull, "-2.3278478198143204e+79"},
    {0x717eafff25aac128ull, "4.995717923186662e+238"},
    {0x5b0f56452c0188bbull, "4.3443565369439083e+130"},
    {0xf6b8f116cc81737bull, "-7.853861037083563e+263"},
    {0x092469ae194a5491ull, "1.2661252577370544e-264"},
    {0x8f841a8ab31f4e8bull, "-6.322792311665379e-234"},
    {0x18498d8838794684ull, "1.1201399405709578e-191"},
    {0xde065c4329c739a0ull, "-8.725443218850247e+144"},
    {0x1d1d95e1ad61682bull, "1.959841638673769e-168"},
    {0x63c7fe352f6d7f84ull, "4.6360922545179674e+172"},
    {0x493544ec8f808c2aull, "4.743197819981564e+44"},
    {0xf631206795ac08c8ull, "-2.106623457646274e+261"},
    {0x87847ff4a1cb8b0aull, "-1.894715984542199e-272"},
    {0x4cb9d2a2e639167bull, "4.149563675033037e+61"},
    {0x38b6a352e2ff5520ull, "1.7030925900288637e-35"},
    {0xf12e90595ea39278ull, "-1.5548727729577764e+237"},
    {0x293afcb7751f5f5full, "4.488683770807075e-110"},
    {0xe676f5d252f0a7f6ull, "-3.902417943885608e+185"},
    {0xfaaad0810748850full, "-7.787806352358806e+282"},
    {0xc43ae8ddfba0608full, "-4.96395190369334e+20"},
    {0x3f1855582ac1ffe9ull, "9.28244650726381e-05"},
    {0x9ed88e2a90a70b10ull, "-4.3664472114821684e-160"},
    {0x8fe6d6a4caabc400ull, "-4.597058348063278e-232"},
    {0x2d0497366cdfd84full, "7.896995642981566e-92"},
    {0xe4169b08ea4f0468ull, "-1.3977633268281097e+174"},
    {0x366e180f649b522bull, "1.6472912029533486e-46"},
    {0x9c3eae2243986acdull, "-1.2404544748682251e-172"},
    {0xed61ef1faa94cfa4ull, "-7.913450564815632e+218"},
    {0x642b5dfc4f2d1caeull, "3.3843617714670357e+174"},
    {0xae1591f09e1e266cull, "-1.084308765645294e-86"},
    {0x8fc7aa86136b14bfull, "-1.1909134733135316e-232"},
    {0xc76ca69148cb821cull, "-1.190101621165544e+36"},
    {0xc79ef1335c080031ull, "-1.0282306277702805e+37"},
    {0x5bc0fd0271ea75ecull, "9.64669358457446e+133"},
    {0x819a4670fb12493aull, "-6.1304130627554555e-301"},
    {0xe7c228f16a13ffc1ull, "-6.472938990995804e+191"},
    {0x9729d0724e79c5f9ull, "-4.3167039283862054e-197"},
    {0x92d5907cac3cab0aull, "-6.108865656126489e-218"},
    {0x7f89361a37d88a47ull, "2.2130004124635655e+306"},
    {0xa4bed9c0727125b1ull, "-1.0865892917166616e-131"},
    {0xd7fd045047240c55ull, "-7.145763132947393e+115"},
    {0xa4a08a9775eb627bull, "-2.913020111278581e-132"},
    {0x512cf3b8c5ee21f7ull, "1.0985199982262947e+83"},
    {0x51d7d76397006895ull, "1.8526349987258743e+86"},
    {0xc7d325e8ec7c8bc9ull, "-1.0180868463639489e+38"},
    {0x121dead79d20de26ull, "2.069123239692005e-221"},
    {0x4eff06e927630c4cull, "3.4262472063568423e+72"},
    {0x310bb556a2d637a5ull, "1.9602965194361385e-72"},
    {0xb6d2b1f929ab23a5ull, "-1.3098783250907679e-44"},
    {0xa99110a2e4c185e1ull, "-1.816550579486404e-108"},
    {0x39ce32fa96ab8fadull, "2.9778647377745456e-30"},
    {0xe693f92b8a8060e7ull, "-1.357899447172612e+186"},
    {0x55d69771159d393aull, "3.238358305005676e+105"},
    {0x327c7383a85f021aull, "1.6885034997037139e-65"},
    {0xddc90119b14ffd17ull, "-6.098213432296521e+143"},
    {0x3be9898d6f838f53ull, "4.3261893338674154e-20"},
    {0x044cc6e7ba18aaf1ull, "5.9058073118665386e-288"},
    {0x7094ca21d979f2e0ull, "2.0656766421065036e+234"},
    {0xa8be297cb9e2f88bull, "-1.9596685440121212e-112"},
    {0x99d3c3a9f079d3b1ull, "-2.907129374529381e-184"},
    {0x652345e9e37af0d3ull, "1.5619927529976422e+179"},
    {0x38b04807e8ab4b4bull, "1.2248741924871445e-35"},
    {0x7911c20fc3887ef2ull, "1.5370620604926714e+275"},
    {0xb4bafea885eb78cdull, "-1.1009313827902224e-54"},
    {0x62de90a92d55e081ull, "1.8023667008897553e+168"},
    {0xbe49d9f40579f411ull, "-1.2037986759538277e-08"},
    {0xbe8832780d6cf9f3ull, "-1.8028277423173874e-07"},
    {0x427841fc787551e9ull, "1666980480853.1194"},
};

static double from_bits(uint64_t bits) {
  double v;
  memcpy(&v, &bits, sizeof(v));
  return v;
}

START_TEST(test_float_known) {
  char out[64];
  for (size_t i = 0; i < sizeof(float_known) / sizeof(float_known[0]); i++) {
    size_t n = pyrepr_float(from_bits(float_known[i].bits), out, sizeof(out));
    ck_assert_str_eq(out, float_known[i].repr);
    ck_assert_uint_eq(n, strlen(out));
  }
  for (size_t i = 0; i < sizeof(float_random) / sizeof(float_random[0]); i++) {
    pyrepr_float(from_bits(float_random[i].bits), out, sizeof(out));
    ck_assert_str_eq(out, float_random[i].repr);
  }
  /* Python prints every NaN as nan, whatever its sign and payload. */
  static const uint64_t nans[] = {0x7ff8000000000000ull, 0xfff8000000000000ull,
                                  0x7ff0000000000001ull, 0xffffffffffffffffull};
  for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
    pyrepr_float(from_bits(nans[i]), out, sizeof(out));
    ck_assert_str_eq(out, "nan");
  }
}
END_TEST

/* Whether some decimal of `p` significant digits reads back as v > 0: the
 * correctly rounded one, or one of its two neighbours (below a power of ten
 * the neighbour has one more 9). Any other p-digit decimal is farther from
 * v than one of these on the same side. */
static bool some_digits_read_back(double v, int p) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
  unsigned long long m = 0;
  const char *c = buf;
  for (; *c != 'e'; c++)
    if (*c >= '0' && *c <= '9')
      m = m * 10 + (unsigned)(*c - '0');
  int q = atoi(c + 1) - (p - 1);
  unsigned long long low = 1;
  for (int i = 1; i < p; i++)
    low *= 10;
  unsigned long long cand[3] = {m, m + 1, m - 1};
  int cq[3] = {q, q, q};
  if (m == low)
    cand[2] = low * 10 - 1, cq[2] = q - 1;
  for (int i = 0; i < 3; i++) {
    snprintf(buf, sizeof(buf), "%llue%d", cand[i], cq[i]);
    if (strtod(buf, NULL) == v)
      return true;
  }
  return false;
}

/* The repr reads back as v, in the notation Python picks, and no decimal
 * with fewer significant digits reads back as v. */
static void check_float(double v) {
  char s[64];
  size_t n = pyrepr_float(v, s, sizeof(s));
  ck_assert_uint_eq(n, strlen(s));
  if (isnan(v)) {
    ck_assert_str_eq(s, "nan");
    return;
  }
  double back = strtod(s, NULL);
  ck_assert_msg(back == v && !signbit(back) == !signbit(v),
                "%s does not read back as %a", s, v);
  if (isinf(v) || v == 0)
    return;
  double a = fabs(v);
  if (strchr(s, 'e'))
    ck_assert_msg(a < 1e-4 || a >= 1e16, "%s: exponent not needed", s);
  else
    ck_assert_msg(a >= 1e-4 && a < 1e16 && strchr(s, '.'), "%s: fixed", s);
  /* Significant digits: from the first non-zero one to the last. */
  char digits[32];
  int nd = 0;
  for (const char *c = s; *c && *c != 'e'; c++)
    if (*c >= '0' && *c <= '9' && (nd || *c != '0'))
      digits[nd++] = *c;
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  ck_assert_int_le(nd, 17);
  if (nd > 1)
    ck_assert_msg(!some_digits_read_back(a, nd - 1), "%s: %d digits would do",
                  s, nd - 1);
}

START_TEST(test_float_round_trip_shortest) {
  rng_state = 0x5eed0f10a7ull;
  for (int i = 0; i < 20000; i++)
    check_float(from_bits(rng()));
  /* Doubles with small exponents and short mantissas, the common ones. */
  for (int i = 0; i < 2000; i++)
    check_float((double)(int64_t)(rng() % 2000001 - 1000000) /
                pow(10, (double)(rng() % 12)));
  /* Powers of two: the gap below is half the gap above, where a correctly
   * rounded decimal can miss and its neighbour hit. */
  for (int e = -1074; e <= 1023; e++) {
    check_float(ldexp(1.0, e));
    check_float(-ldexp(1.0, e));
  }
  /* Around the switches between fixed and exponent notation. */
  static const double edges[] = {1e16,
                                 1e-4,
                                 1e-5,
                                 1e15,
                                 9999999999999998.0,
                                 0.00009999999999999999,
                                 0.0001000000000001};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
    check_float(edges[i]);
    check_float(nextafter(edges[i], 0));
    check_float(nextafter(edges[i], INFINITY));
  }
  for (uint64_t b = 0; b < 64; b++) /* the smallest subnormals */
    check_float(from_bits(b));
  check_float(from_bits(0x000fffffffffffffull));
  check_float(from_bits(0x7fefffffffffffffull));
}
END_TEST

START_TEST(test_float_cut) {
  const char *whole = "-1.7976931348623157e+308";
  const size_t whole_len = strlen(whole);
  for (size_t size = 0; size <= whole_len + 4; size++) {
    char *out = guarded(size);
    size_t n = pyrepr_float(-1.7976931348623157e+308, out, size);
    check_guarded(size, n);
    if (size)
      check_cut(out, n, size, whole);
    if (size > whole_len)
      ck_assert_str_eq(out, whole);
    else if (size)
      ck_assert_str_ne(out, whole);
  }
  char out[3];
  pyrepr_float(0.5, out, sizeof(out));
  ck_assert_str_eq(out, "..");
  char *tiny = guarded(4);
  pyrepr_float(1.5, tiny, 4);
  ck_assert_str_eq(tiny, "1.5");
}
END_TEST

/* ---------------------------------------------------------------- int */

struct long_case {
  bool negative;
  const char *hex; /* the magnitude */
  const char *decimal;
};

/* Ints as hexadecimal magnitudes, and str() of them by Python. */
static const struct long_case long_known[] = {
    /* 0 */
    {false, "0", "0"},
    /* 1 */
    {false, "1", "1"},
    /* -1 */
    {true, "1", "-1"},
    /* 2**30-1 */
    {false, "3fffffff", "1073741823"},
    /* 2**30 */
    {false, "40000000", "1073741824"},
    /* 2**60 */
    {false, "1000000000000000", "1152921504606846976"},
    /* 2**64 */
    {false, "10000000000000000", "18446744073709551616"},
    /* -2**100 */
    {true, "10000000000000000000000000", "-1267650600228229401496703205376"},
    /* 10**50 */
    {false, "446c3b15f9926687d2c40534fdb564000000000000",
     "100000000000000000000000000000000000000000000000000"},
    /* -10**50 */
    {true, "446c3b15f9926687d2c40534fdb564000000000000",
     "-100000000000000000000000000000000000000000000000000"},
    /* 2**63-1 */
    {false, "7fffffffffffffff", "9223372036854775807"},
    /* 10**9 */
    {false, "3b9aca00", "1000000000"},
    /* 10**9-1 */
    {false, "3b9ac9ff", "999999999"},
    /* 10**18 */
    {false, "de0b6b3a7640000", "1000000000000000000"},
    /* 10**27-1 */
    {false, "33b2e3c9fd0803ce7ffffff", "999999999999999999999999999"},
    /* random, 31 bits */
    {false, "69735a1c", "1769167388"},
    /* random, 45 bits */
    {true, "14d46513270e", "-22902461376270"},
    /* random, 61 bits */
    {true, "1125f205d23f0824", "-1235659779599173668"},
    /* random, 100 bits */
    {true, "8e8e25d940ed904759531985d", "-705899481539170583961540859997"},
    /* random, 257 bits */
    {false,
     "16cad4a268d116ece1738f7d93d9c172411e20b8f6b0d549b6f03675a1600a35"
     "a",
     "1649480531950794662868249063994099672656291597696692180918337473"
     "35006736393050"},
    /* random, 999 bits */
    {false,
     "4994e3bf911a61dbe22e44158bae97ba94d0eda82f8f6d05584ef8aa38922766"
     "581e27a1c08a6a63ec24ede6a46b4cb2424a23d5962217beaddbc496cb8e8197"
     "3e0becd7b03898d190f9ebdacc0cb1e29c658cda1495e60af593bd04cf0fd630"
     "f1f29d0da9953f48f1a09f76b5a170b33839263059f28c105d1fb17c23",
     "3079817105687872221299309107030237710898152602051165149181529155"
     "0263398110553029012769449680545265786467376340376902792959293201"
     "2131230209287232605043522584999875980565763596607656093533023710"
     "6733018417737410952898621184959357409115135225944291263687480506"
     "197906522399217159849257769726426860588465187"},
    /* 2**3000 */
    {false,
     "1000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "0000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000",
     "1230231922161117176931558813276752514640713895736833715766118029"
     "1600588006146729487753600678385934595824296492540518049085128841"
     "8089823682358508248206534833123495935035584501741302332011136066"
     "6922624728239756880416434478315693675013413090757208690376793296"
     "6588106629418244934884517265053037129160053467479086237026734809"
     "1935393681310573662040235274477690384047788365110032240930198348"
     "8363802930540482487909763484098253940728685132044408863734754271"
     "2125924717786439494866885117210515619704327807474548237768084641"
     "8069710308386181218434856552274019579668262220551184551208055201"
     "0310050255801589349645928001133745474220715013683413907542779063"
     "7598338761013542351842450966700421607206294115815023712480084304"
     "4718484209861032058041799220666224732872212208851364368390767036"
     "0209162653670641130936997002170500675501374723998766005827579300"
     "7232534748906122501351718891748990799112915123997738721785190182"
     "29989376"},
    /* -3**2400 */
    {true,
     "f084a302b43cb5422b6dc7de42fa69bc8559d61fd69c491517fd72a579f7f9fa"
     "ffb8c3e040cdcdaa22141678b685e29320b16e8c121801666b6c56cf458f7cd5"
     "9ec76db24ff2480ada410d46e73d49521e025413fb73c64e33194b7d02970d39"
     "e6b4c59162d4c685eff7f9c2c2fecc9b4d0ea5aa015f3c2a9e29c1d005823743"
     "a9db722d2d897172bfc34019181374f86e0557c26c762a3cbdbcfdb506a81ae7"
     "771b31249a7c040acbe03b535d261adc161b8e5aa9650301d29f6466124893ef"
     "bc317cabd143a8144c4b63f5be236747e56baaf7234c7078900108f6882d9041"
     "0377eff09fe1744f448f7ad125ac2ba2d8152f6240dc342d5c356c6751479d00"
     "47808d3b81617bff8eaf5caa4904f2c3e078e701bef0d04e4b8408732591bdb5"
     "f2e9228b4fed9222a9118c4644640092a4daceeb2ea7be3e5e0ab1c5ed895d67"
     "0fd69bf1624e0d0857ea93652e14d15af09d49858eb4d6562782e67b083f7273"
     "d9c630ac5abde76b83c07cc00514a7924bec02781ff07337516ec47cd490115b"
     "f76b7bbfaf80eae54347949bd8b61f98d5d5616f18c25284884732cdea2718ea"
     "f985d11b81146d1d01f22bc49403527db18e2916610a8c3b8d8b13c9d5e46b4d"
     "e17a6ffa8daf20c278daa74804019c54b48462915cfe94667200f81",
     "-123313699526477253432737743221759831638595141060516462075484818"
     "7412832900755185890526770973041766840506697952738794153973673099"
     "7908269651603636917623992923031136299106482069852965526674072839"
     "2470112830808416843590877540516945476272590696463519123953959624"
     "6868053312020899758704599060243643447531415251793937398787541782"
     "0130479215406485788257013859004042115479711065447300059802687621"
     "8335517803795124666490161840490461191302235546737401214868545498"
     "4501215997667142095317517558636828121893925358451747656744990043"
     "0373630398481156170854280040503219800627956456983407871744223637"
     "7637183953025868484980540642899360979838439095415033514583954183"
     "2324210881910235477829301527226339110022717709735504219367631926"
     "2365721252547254835356568229223439068722122457950125474334998699"
     "3823528702937091846273539865765944119402155063516078612641690045"
     "2541318292192475670287234691720605039784576055129608853101380510"
     "9639985760231021785200200648258543188621503540004186137912736429"
     "6052425837798284291304579271411982916208724604395934286793928581"
     "3079825058886286527728281116973733820019686568093994985916950552"
     "73528848656165220740008580894755143220883190431016164528001"},
    /* 2**3840-1: all 128 digits full */
    {false,
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     "9019518416950528558373478086511232658951474842525520401496114928"
     "1543042639549666389530201032740381698219780363103871051874399819"
     "8303867954319055224615127369394243014243021408368520320606050079"
     "3611640634047888641084801170845605063334103743639179436252101154"
     "6433755335578495798917262519501464289788501055163620342049606071"
     "2136995894250322643720419645244847126925330069697887963609543745"
     "3409277681885696982308658433120767281076066105051771156066244607"
     "2213459452660654864456644182266511390926745866813592120980598338"
     "6122122871062672132086972474618486395562216254623463882577134254"
     "8855451709230916475881564603234959416156932444801211659142200921"
     "4083605971080391359856698062120571562066635392123789056779378824"
     "0654656103739663542516584334385713395358615829031956928937643778"
     "8637610819165094090272546217161805776234786903154610120291328498"
     "7191592056648011296366955383497157282805938232534912237288983180"
     "3469758311455262623443437087781414076205536608326085274562042371"
     "6424511260012738181745813374647152733067517775871845874530787928"
     "5150941163494193166397532030753392899474277224328099107286028780"
     "6722382733233751087796511579603458547054498565458401486417069447"
     "5775"},
};

/* CPython's digits of the magnitude written in `hex`: little-endian,
 * `bits` bits each. */
static size_t digits_from_hex(const char *hex, unsigned bits, uint32_t *d) {
  size_t n = 0;
  unsigned fill = 0;
  uint64_t acc = 0;
  for (size_t i = strlen(hex); i-- > 0;) {
    char c = hex[i];
    uint64_t v = (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    acc |= v << fill;
    fill += 4;
    if (fill >= bits) {
      d[n++] = (uint32_t)(acc & ((1ull << bits) - 1));
      acc >>= bits;
      fill -= bits;
    }
  }
  if (acc)
    d[n++] = (uint32_t)acc;
  return n;
}

START_TEST(test_long_known) {
  static const unsigned widths[] = {30, 15, 32, 7};
  static uint32_t digits[2048];
  static char out[2048];
  for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
    for (size_t i = 0; i < sizeof(long_known) / sizeof(long_known[0]); i++) {
      const struct long_case *c = &long_known[i];
      size_t n = digits_from_hex(c->hex, widths[w], digits);
      if (n > PYREPR_LONG_DIGITS_MAX)
        continue; /* beyond exact; see test_long_huge */
      size_t len =
          pyrepr_long(digits, n, widths[w], c->negative, out, sizeof(out));
      ck_assert_str_eq(out, c->decimal);
      ck_assert_uint_eq(len, strlen(c->decimal));
    }
  }
  /* The widest exact int is in the table: 128 digits of 30 bits. */
  ck_assert_uint_eq(
      digits_from_hex(
          long_known[sizeof(long_known) / sizeof(long_known[0]) - 1].hex, 30,
          digits),
      PYREPR_LONG_DIGITS_MAX);
}
END_TEST

/* The same random ints cut into digits of different widths print alike. */
START_TEST(test_long_widths_agree) {
  rng_state = 0x1046ull;
  static char hex[1000], a[2048], b[2048];
  static uint32_t d30[200], d15[400];
  for (int round = 0; round < 300; round++) {
    size_t nhex = 1 + rng() % (PYREPR_LONG_DIGITS_MAX * 15 / 4);
    for (size_t i = 0; i < nhex; i++)
      hex[i] = "0123456789abcdef"[rng() % 16];
    hex[nhex] = '\0';
    bool negative = rng() & 1;
    size_t n30 = digits_from_hex(hex, 30, d30);
    size_t n15 = digits_from_hex(hex, 15, d15);
    ck_assert_uint_le(n15, PYREPR_LONG_DIGITS_MAX);
    pyrepr_long(d30, n30, 30, negative, a, sizeof(a));
    pyrepr_long(d15, n15, 15, negative, b, sizeof(b));
    ck_assert_str_eq(a, b);
    ck_assert(a[0] == '-' ? a[1] >= '1' && a[1] <= '9' : a[0] <= '9');
  }
}
END_TEST

START_TEST(test_long_huge) {
  static uint32_t digits[PYREPR_LONG_DIGITS_MAX + 1];
  char out[64];
  for (size_t i = 0; i <= PYREPR_LONG_DIGITS_MAX; i++)
    digits[i] = (1u << 30) - 1;
  digits[PYREPR_LONG_DIGITS_MAX] = 1;
  pyrepr_long(digits, PYREPR_LONG_DIGITS_MAX + 1, 30, false, out, sizeof(out));
  ck_assert_str_eq(out, "<int of 3841 bits>");
  pyrepr_long(digits, PYREPR_LONG_DIGITS_MAX + 1, 30, true, out, sizeof(out));
  ck_assert_str_eq(out, "<negative int of 3841 bits>");
  /* Leading zero digits do not count. Python: str(5 + 7 * 2**30) */
  memset(digits, 0, sizeof(digits));
  digits[0] = 5;
  digits[1] = 7;
  pyrepr_long(digits, PYREPR_LONG_DIGITS_MAX + 1, 30, true, out, sizeof(out));
  ck_assert_str_eq(out, "-7516192773");
  /* Nor does the sign of zero. */
  pyrepr_long(digits + 2, 5, 30, true, out, sizeof(out));
  ck_assert_str_eq(out, "0");
  pyrepr_long(NULL, 0, 30, true, out, sizeof(out));
  ck_assert_str_eq(out, "0");
}
END_TEST

START_TEST(test_long_cut) {
  uint32_t digits[8];
  /* 10**50 (51 digits), 20 bytes: the first digits and the count. */
  size_t n = digits_from_hex(long_known[8].hex, 30, digits);
  ck_assert_str_eq(long_known[8].decimal,
                   "100000000000000000000000000000000000000000000000000");
  char out[20];
  ck_assert_uint_eq(pyrepr_long(digits, n, 30, false, out, sizeof(out)), 19);
  ck_assert_str_eq(out, "1000... (51 digits)");
  pyrepr_long(digits, n, 30, true, out, sizeof(out));
  ck_assert_str_eq(out, "-100... (51 digits)");
  for (int negative = 0; negative < 2; negative++) {
    const char *whole = long_known[8 + negative].decimal;
    size_t whole_len = strlen(whole);
    for (size_t size = 0; size <= whole_len + 3; size++) {
      char *buf = guarded(size);
      size_t len = pyrepr_long(digits, n, 30, negative, buf, size);
      check_guarded(size, len);
      if (!size)
        continue;
      ck_assert_uint_eq(len, strlen(buf));
      if (size > whole_len) {
        ck_assert_str_eq(buf, whole);
        continue;
      }
      const char *dots = strstr(buf, "...");
      ck_assert_msg(dots != NULL || size < 4, "not marked as cut: %s", buf);
      if (dots)
        ck_assert_int_eq(strncmp(buf, whole, (size_t)(dots - buf)), 0);
      /* A digit count follows at least one digit. */
      if (strstr(buf, "digits)"))
        ck_assert(dots - buf > negative);
    }
  }
}
END_TEST

START_TEST(test_long_invalid) {
  char out[64];
  const uint32_t high[] = {1, 1u << 30};
  pyrepr_long(high, 2, 30, false, out, sizeof(out));
  ck_assert_str_eq(out, "<invalid int>");
  const uint32_t ok[] = {1};
  pyrepr_long(ok, 1, 0, false, out, sizeof(out));
  ck_assert_str_eq(out, "<invalid int>");
  pyrepr_long(ok, 1, 33, false, out, sizeof(out));
  ck_assert_str_eq(out, "<invalid int>");
  /* Python: str(2**32 - 1), str(2**32 * 3 + 1) */
  const uint32_t full[] = {0xffffffff};
  pyrepr_long(full, 1, 32, false, out, sizeof(out));
  ck_assert_str_eq(out, "4294967295");
  const uint32_t two[] = {1, 3};
  pyrepr_long(two, 2, 32, false, out, sizeof(out));
  ck_assert_str_eq(out, "12884901889");
  char *buf = guarded(6);
  pyrepr_long(high, 2, 30, false, buf, 6);
  check_guarded(6, strlen(buf));
  ck_assert_str_eq(buf, "<i...");
}
END_TEST

/* ------------------------------------------------------------ hostile */

START_TEST(test_bad_kinds) {
  static const unsigned kinds[] = {0, 3, 5, 8, 16, 255, 0xffffffffu};
  const uint32_t data[] = {'a', 'b', 'c', 'd'};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    for (size_t size = 0; size < 8; size++) {
      char *out = guarded(size);
      bool truncated = false;
      size_t n = pystr_utf8(data, 4, kinds[i], out, size, &truncated);
      check_guarded(size, n);
      ck_assert(truncated);
      if (size)
        ck_assert_str_eq(out, "");
      out = guarded(size);
      n = pyrepr_str(data, 4, 4, kinds[i], out, size);
      check_guarded(size, n);
      if (size)
        ck_assert_str_eq(out, "");
    }
  }
}
END_TEST

START_TEST(test_random_input) {
  rng_state = 0xbadc0deull;
  static const unsigned kinds[] = {1, 2, 4, 1, 2, 4, 0, 3};
  static uint8_t data[1024];
  for (int round = 0; round < 5000; round++) {
    for (size_t i = 0; i < sizeof(data); i++)
      data[i] = (uint8_t)rng();
    /* Mostly small sizes, where the cuts are. */
    size_t size = rng() % 4 ? rng() % 24 : rng() % 600;
    size_t count = rng() % (sizeof(data) / 4 + 1);
    size_t total = rng() % 4 ? count : rng() % 2000;
    unsigned kind = kinds[rng() % 8];
    char *out = guarded(size);
    size_t n = pystr_utf8(data, count, kind, out, size, NULL);
    check_guarded(size, n);
    out = guarded(size);
    n = pyrepr_str(data, count, total, kind, out, size);
    check_guarded(size, n);
    ck_assert_uint_eq(n, size ? strlen(out) : 0);
    out = guarded(size);
    n = pyrepr_bytes(data, count * 4, total, out, size);
    check_guarded(size, n);
    ck_assert_uint_eq(n, size ? strlen(out) : 0);
    out = guarded(size);
    double v;
    memcpy(&v, data, sizeof(v));
    n = pyrepr_float(v, out, size);
    check_guarded(size, n);
    /* Random digits: mostly valid ones of 30 or 15 bits. */
    uint32_t digits[PYREPR_LONG_DIGITS_MAX + 8];
    size_t ndigits = rng() % (PYREPR_LONG_DIGITS_MAX + 8);
    unsigned bits = rng() % 4 ? (rng() % 2 ? 30 : 15) : (unsigned)(rng() % 40);
    for (size_t i = 0; i < ndigits; i++) {
      digits[i] = (uint32_t)rng();
      if (rng() % 8 && bits && bits < 32)
        digits[i] &= (1u << bits) - 1;
    }
    out = guarded(size);
    n = pyrepr_long(digits, ndigits, bits, rng() & 1, out, size);
    check_guarded(size, n);
    ck_assert_uint_eq(n, size ? strlen(out) : 0);
  }
}
END_TEST

/* ----------------------------------------------------------------- main */

static Suite *pyrepr_suite(void) {
  Suite *s = suite_create("pyrepr");
  TCase *tc = tcase_create("str");
  tcase_add_test(tc, test_str_known);
  tcase_add_test(tc, test_str_latin1);
  tcase_add_test(tc, test_str_surrogates);
  tcase_add_test(tc, test_str_prefix_only);
  tcase_add_test(tc, test_str_cut);
  tcase_add_test(tc, test_utf8_names);
  tcase_add_test(tc, test_utf8_invalid_code_points);
  tcase_add_test(tc, test_utf8_truncated);
  suite_add_tcase(s, tc);

  tc = tcase_create("bytes");
  tcase_add_test(tc, test_bytes_known);
  tcase_add_test(tc, test_bytes_prefix_and_cut);
  suite_add_tcase(s, tc);

  tc = tcase_create("float");
  /* Some 30000 conversions: room for slow machines and valgrind. */
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_float_known);
  tcase_add_test(tc, test_float_round_trip_shortest);
  tcase_add_test(tc, test_float_cut);
  suite_add_tcase(s, tc);

  tc = tcase_create("int");
  tcase_add_test(tc, test_long_known);
  tcase_add_test(tc, test_long_widths_agree);
  tcase_add_test(tc, test_long_huge);
  tcase_add_test(tc, test_long_cut);
  tcase_add_test(tc, test_long_invalid);
  suite_add_tcase(s, tc);

  tc = tcase_create("hostile");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_bad_kinds);
  tcase_add_test(tc, test_random_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pyrepr_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
