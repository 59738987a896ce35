/* Declarations shared by libperpetuo's own sources; none is exported. */
#ifndef PERPETUO_INTERNAL_H
#define PERPETUO_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "perpetuo.h"
#include "protocol.h"

#define PERPETUO__HIDDEN __attribute__((visibility("hidden")))

/*
 * The process's region, mapped on first use. Returns NULL when it cannot be
 * mapped (and errno says why).
 */
PERPETUO__HIDDEN struct perpetuo__header *perpetuo__region_get(void);

/*
 * Claims a free slot under the region lock and fills it in from `fill`'s
 * fields (everything but counter, state and generation). Returns the slot,
 * or NULL with *err set (-ENOSPC, -ENOMEM).
 */
struct perpetuo__slot_request {
  uint32_t kind;
  uint64_t external_addr;
  uint64_t aux[4]; /* the contention rule, for that kind */
  uint32_t thread_hint;
  uint64_t thread_id;
  uint32_t threshold_ms;
  int initially_active;
  const char *name;
};
PERPETUO__HIDDEN struct perpetuo__slot *
perpetuo__region_claim(const struct perpetuo__slot_request *request, int *err);

/* Returns a slot to the free pool. */
PERPETUO__HIDDEN void perpetuo__region_release(struct perpetuo__slot *slot);

/* Copies `src` into `dst` (size `size`), truncating at a UTF-8 boundary. */
PERPETUO__HIDDEN void perpetuo__copy_utf8(char *dst, size_t size,
                                          const char *src);

/* The calling thread's Linux thread id. */
PERPETUO__HIDDEN pid_t perpetuo__gettid(void);

/* Resets the watcher bookkeeping in a fork() child (called at fork). */
PERPETUO__HIDDEN void perpetuo__watch_forget_after_fork(void);

#endif
