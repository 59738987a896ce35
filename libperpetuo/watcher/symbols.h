/*
 * Addresses to names, with elfutils' libdwfl: the function (from the symbol
 * tables, or DWARF), the module, and where debug information exists the
 * source file and line, and the functions inlined at that address. Modules
 * are reported once and kept until the target's maps change.
 */
#ifndef PERPETUO_WATCHER_SYMBOLS_H
#define PERPETUO_WATCHER_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct native_frame {
  uint64_t ip;     /* exact for the stopped frame, else a return address */
  char *function;  /* NULL: unknown */
  uint64_t offset; /* of ip in the function (not for inlined frames) */
  char *module;    /* the file it was loaded from; NULL: unknown */
  uint64_t module_offset;
  char *file;   /* source file, NULL without debug information */
  int line;     /* 0: unknown */
  bool inlined; /* inlined into the next frame out; shares its ip */
};

struct symbolizer;

struct symbolizer *symbolizer_new(pid_t pid);
void symbolizer_free(struct symbolizer *s);

/* Re-reads the target's modules, when its maps changed. 0 or -errno. */
int symbolizer_refresh(struct symbolizer *s);

/*
 * Reads every module's symbol table and debug information now (tens of
 * milliseconds for a large process), so that the first stall's report does
 * not wait for it.
 */
void symbolizer_warm(struct symbolizer *s);

/*
 * Describes `ip` into out[0..max): several frames when functions were
 * inlined there, innermost first; always at least one (max >= 1). A return
 * address is looked up one byte back, inside the call instruction. Returns
 * how many frames were written; their strings are malloc'd.
 */
size_t symbolize(struct symbolizer *s, uint64_t ip, bool return_address,
                 struct native_frame *out, size_t max);

void native_frame_clear(struct native_frame *f);

#endif
