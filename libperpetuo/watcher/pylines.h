/*
 * CPython line tables, decoded from the bytes of a code object read from
 * the target: which source line an instruction belongs to. One decoder per
 * format: co_lnotab (3.9), co_linetable of 3.10, and the location table of
 * 3.11 and later (PEP 657). Pure functions over untrusted bytes: a table cut
 * short or malformed gives -1, never a read past `len`.
 */
#ifndef PERPETUO_WATCHER_PYLINES_H
#define PERPETUO_WATCHER_PYLINES_H

#include <stddef.h>
#include <stdint.h>

/* 3.9: `offset` in bytes (f_lasti). */
int pylines_lnotab(const uint8_t *table, size_t len, int firstlineno,
                   uint32_t offset);

/* 3.10: `offset` in bytes (f_lasti * 2). */
int pylines_310(const uint8_t *table, size_t len, int firstlineno,
                uint32_t offset);

/* 3.11+: `offset` in code units from the start of the code. */
int pylines_311(const uint8_t *table, size_t len, int firstlineno,
                uint32_t offset);

#endif
