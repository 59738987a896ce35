/*
 * Reading another process's memory in small pieces, as walking its data
 * structures does (a frame, a code object, a string), with a cache of whole
 * pages, so that many small reads of nearby objects cost one
 * process_vm_readv per page rather than one each. The cache holds for one
 * snapshot: remote_begin() forgets it, since the target runs in between.
 */
#ifndef PERPETUO_WATCHER_REMOTE_H
#define PERPETUO_WATCHER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define REMOTE_PAGE 4096u
#define REMOTE_PAGES 512u  /* 2 MiB of cache, faulted in once */
#define REMOTE_SLOTS 2048u /* hash slots: a power of two, > pages */
#define REMOTE_RUN_MAX 16u /* pages fetched by one system call */

struct remote_slot {
  uint64_t page; /* page number + 1; 0: empty */
  int32_t index; /* in the cache; -1: the page is unreadable */
};

struct remote {
  pid_t pid;
  unsigned char *cache; /* REMOTE_PAGES pages */
  size_t cache_size;
  struct remote_slot *slots; /* REMOTE_SLOTS */
  uint32_t used;             /* pages of the cache in use */
  uint32_t entries;          /* slots in use, unreadable pages included */
  /* Counted since remote_begin(), for the benchmarks. */
  size_t syscalls;
  size_t bytes;
};

/* 0, or -ENOMEM. */
int remote_init(struct remote *r, pid_t pid);
void remote_free(struct remote *r);

/* Forgets what was read: the target may have changed since. */
void remote_begin(struct remote *r);

/* Copies [addr, addr+len) into `out`; false if any of it is unreadable. */
bool remote_read(struct remote *r, uint64_t addr, void *out, size_t len);

/* An 8-byte word; false if unreadable. */
bool remote_read_u64(struct remote *r, uint64_t addr, uint64_t *out);

#endif
