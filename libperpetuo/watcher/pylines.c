#include "config.h"

#include <limits.h>

#include "pylines.h"

/* Hostile tables can add up to anything: lines are summed in 64 bits, and
 * what no source file has is "unknown". */
static int as_line(int64_t line) {
  return line < 0 || line > INT_MAX ? -1 : (int)line;
}

int pylines_lnotab(const uint8_t *table, size_t len, int firstlineno,
                   uint32_t offset) {
  /* Pairs (address delta, signed line delta), summed until the address
   * passes the instruction. */
  int64_t line = firstlineno;
  uint64_t addr = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    addr += table[i];
    if (addr > offset)
      break;
    line += (int8_t)table[i + 1];
  }
  return as_line(line);
}

int pylines_310(const uint8_t *table, size_t len, int firstlineno,
                uint32_t offset) {
  /* Pairs (range length in bytes, signed line delta); a delta of -128
   * marks a range without a line. */
  int64_t line = firstlineno;
  uint64_t start, end = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    start = end;
    end += table[i];
    int8_t delta = (int8_t)table[i + 1];
    int64_t here = -1;
    if (delta != -128) {
      line += delta;
      here = line;
    }
    if (offset >= start && offset < end)
      return as_line(here);
  }
  return -1;
}

/* A varint of 6-bit chunks, least significant first, 0x40 = more. */
static int read_varint(const uint8_t *table, size_t len, size_t *at,
                       uint32_t *out) {
  uint32_t value = 0;
  for (unsigned shift = 0; shift < 32; shift += 6) {
    if (*at >= len)
      return -1;
    uint8_t b = table[(*at)++];
    value |= (uint32_t)(b & 0x3f) << shift;
    if (!(b & 0x40)) {
      *out = value;
      return 0;
    }
  }
  return -1;
}

static int read_svarint(const uint8_t *table, size_t len, size_t *at,
                        int32_t *out) {
  uint32_t v;
  if (read_varint(table, len, at, &v))
    return -1;
  *out = (v & 1) ? -(int32_t)(v >> 1) : (int32_t)(v >> 1);
  return 0;
}

int pylines_311(const uint8_t *table, size_t len, int firstlineno,
                uint32_t offset) {
  int64_t line = firstlineno;
  uint64_t start, end = 0;
  size_t at = 0;
  while (at < len) {
    uint8_t first = table[at++];
    if (!(first & 0x80))
      return -1; /* not the start of an entry: malformed */
    int code = (first >> 3) & 15;
    start = end;
    end += (uint64_t)(first & 7) + 1;
    int64_t here = -1;
    uint32_t skip;
    int32_t delta;
    switch (code) {
    case 15: /* no location */ break;
    case 14: /* long form: line delta, end line, column, end column */
      if (read_svarint(table, len, &at, &delta) ||
          read_varint(table, len, &at, &skip) ||
          read_varint(table, len, &at, &skip) ||
          read_varint(table, len, &at, &skip))
        return -1;
      line += delta;
      here = line;
      break;
    case 13: /* no columns */
      if (read_svarint(table, len, &at, &delta))
        return -1;
      line += delta;
      here = line;
      break;
    case 10:
    case 11:
    case 12: /* one line, delta 0 to 2, two column bytes */
      line += code - 10;
      here = line;
      at += 2;
      break;
    default: /* short form, same line, one column byte */
      here = line;
      at += 1;
      break;
    }
    if (at > len)
      return -1;
    if (offset >= start && offset < end)
      return as_line(here);
  }
  return -1;
}
