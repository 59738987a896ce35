/*
 * Python values as Python itself would print them, made from bytes already
 * copied out of a CPython process: the characters of a str (for function
 * and file names), and repr() of a str, bytes, float and int (for locals).
 * The watcher never calls into the target, so it formats these itself.
 *
 * Pure functions over untrusted input: any length, any bytes. They write
 * into the caller's buffer, never past `size`, always NUL-terminated when
 * `size` > 0, and cut only between whole UTF-8 characters. A repr that was
 * cut, or made from a prefix of the value, ends in "..." so that a reader
 * sees it is incomplete.
 *
 * A str is stored as `count` code points of `kind` bytes each, in host
 * byte order: 1 (latin-1), 2 (UCS-2) or 4 (UCS-4). Any other kind writes ""
 * and returns 0.
 */
#ifndef PERPETUO_WATCHER_PYREPR_H
#define PERPETUO_WATCHER_PYREPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest int shown exactly, in CPython digits (128 x 30 bits is about
 * 1150 decimal digits). */
#define PYREPR_LONG_DIGITS_MAX 128

/* A str's characters as UTF-8. Code points that are not Unicode scalar
 * values (surrogates, above U+10FFFF) become U+FFFD. Returns the bytes
 * written (without the NUL); *truncated (if not NULL) says whether some
 * characters did not fit or the kind was invalid. */
size_t pystr_utf8(const void *data, size_t count, unsigned kind, char *out,
                  size_t size, bool *truncated);

/* repr() of a str whose first `count` of `total` code points are at `data`.
 * Escapes as Python does for control characters, the latin-1 range,
 * surrogates and the quote; other code points are kept as UTF-8 (Python
 * would also escape non-printable ones beyond latin-1). When count < total
 * or the output is cut, the closing quote gives way to "...". */
size_t pyrepr_str(const void *data, size_t count, size_t total, unsigned kind,
                  char *out, size_t size);

/* repr() of bytes, b'...', with the same rules for `total` and cuts. */
size_t pyrepr_bytes(const uint8_t *data, size_t count, size_t total, char *out,
                    size_t size);

/* repr() of a float: the shortest digits that read back as `v`, in fixed
 * notation for decimal exponents -4..15, else d.ddde+XX. */
size_t pyrepr_float(double v, char *out, size_t size);

/* repr() of an int made of `ndigits` little-endian digits of `digit_bits`
 * bits (1..32) each. Exact up to PYREPR_LONG_DIGITS_MAX digits: beyond,
 * "<int of N bits>"; a decimal too long for `size` keeps its first digits,
 * then "... (N digits)". A digit with bits above `digit_bits` writes
 * "<invalid int>". */
size_t pyrepr_long(const uint32_t *digits, size_t ndigits, unsigned digit_bits,
                   bool negative, char *out, size_t size);

#endif
