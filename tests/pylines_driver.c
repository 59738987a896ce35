/*
 * pylines_driver: the watcher's CPython line-table decoders, fed from stdin,
 * for tests that compare them with what real interpreters say.
 *
 * Each input line: FORMAT FIRSTLINENO HEXTABLE OFFSET [OFFSET...]
 * (FORMAT lnotab, 310 or 311; HEXTABLE "-" for an empty table). Each output
 * line: the line numbers, in order, -1 for none.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watcher/pylines.h"

static size_t unhex(const char *hex, uint8_t *out, size_t max) {
  size_t n = 0;
  if (strcmp(hex, "-") == 0)
    return 0;
  for (; hex[0] && hex[1] && n < max; hex += 2) {
    unsigned byte;
    if (sscanf(hex, "%2x", &byte) != 1)
      break;
    out[n++] = (uint8_t)byte;
  }
  return n;
}

int main(void) {
  static char line[1 << 20];
  static uint8_t table[1 << 19];
  while (fgets(line, sizeof(line), stdin)) {
    char *save = NULL;
    const char *format = strtok_r(line, " \n", &save);
    const char *first = strtok_r(NULL, " \n", &save);
    const char *hex = strtok_r(NULL, " \n", &save);
    if (!format || !first || !hex)
      continue;
    size_t len = unhex(hex, table, sizeof(table));
    int firstlineno = atoi(first);
    const char *sep = "";
    for (const char *off; (off = strtok_r(NULL, " \n", &save));) {
      uint32_t offset = (uint32_t)strtoul(off, NULL, 10);
      int got = strcmp(format, "lnotab") == 0
                    ? pylines_lnotab(table, len, firstlineno, offset)
                : strcmp(format, "310") == 0
                    ? pylines_310(table, len, firstlineno, offset)
                    : pylines_311(table, len, firstlineno, offset);
      printf("%s%d", sep, got);
      sep = " ";
    }
    putchar('\n');
  }
  return 0;
}
