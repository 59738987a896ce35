/*
 * The target's memory map, /proc/PID/maps, read whole and kept sorted: where
 * a thread's stack ends, which module an address belongs to, which memory
 * cannot change under us (mapped without write permission).
 */
#ifndef PERPETUO_WATCHER_MAPS_H
#define PERPETUO_WATCHER_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mapping {
  uint64_t start, end; /* [start, end) */
  uint64_t offset;     /* into the file */
  char perms[5];
  const char *path; /* into maps.text; "" when anonymous */
};

struct maps {
  char *text; /* the file as read, its lines split in place */
  size_t text_len;
  /* Of the file-backed mappings only: "were modules loaded or unloaded?".
   * Anonymous mappings come and go with every large malloc. */
  uint64_t modules_hash;
  struct mapping *mappings;
  size_t count;
};

/* Reads /proc/PID/maps. 0 or a negative errno; *m is replaced on success. */
int maps_read(struct maps *m, pid_t pid);

/* Parses maps text (for tests); takes ownership of `text` (malloc'd). */
int maps_parse(struct maps *m, char *text, size_t len);

void maps_free(struct maps *m);

/* The mapping holding `addr`, or NULL. */
const struct mapping *maps_find(const struct maps *m, uint64_t addr);

#endif
