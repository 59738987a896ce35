#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "remote.h"

int remote_init(struct remote *r, pid_t pid) {
  *r = (struct remote){.pid = pid};
  r->cache_size = (size_t)REMOTE_PAGES * REMOTE_PAGE;
  /* Faulted in now: page faults during a pause would cost more than the
   * reads they serve. */
  void *cache = mmap(NULL, r->cache_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  r->slots = calloc(REMOTE_SLOTS, sizeof(*r->slots));
  if (cache == MAP_FAILED || !r->slots) {
    if (cache != MAP_FAILED)
      munmap(cache, r->cache_size);
    free(r->slots);
    *r = (struct remote){0};
    return -ENOMEM;
  }
  r->cache = cache;
  return 0;
}

void remote_free(struct remote *r) {
  if (r->cache)
    munmap(r->cache, r->cache_size);
  free(r->slots);
  *r = (struct remote){0};
}

void remote_begin(struct remote *r) {
  if (r->used || r->syscalls)
    memset(r->slots, 0, REMOTE_SLOTS * sizeof(*r->slots));
  r->used = 0;
  r->entries = 0;
  r->syscalls = 0;
  r->bytes = 0;
}

static struct remote_slot *slot_for(struct remote *r, uint64_t page) {
  uint64_t key = page + 1;
  uint32_t i =
      (uint32_t)(key * 0x9e3779b97f4a7c15ull >> 40) & (REMOTE_SLOTS - 1);
  for (;;) {
    struct remote_slot *s = &r->slots[i];
    if (s->page == key || s->page == 0)
      return s;
    i = (i + 1) & (REMOTE_SLOTS - 1);
  }
}

/* Reads pages [first, first+count) into the cache with one system call.
 * Of the pages past the first unreadable one nothing is known: they stay
 * out of the table, to be tried on their own if needed. */
static void fetch_run(struct remote *r, uint64_t first, uint32_t count) {
  struct iovec local[REMOTE_RUN_MAX];
  for (uint32_t k = 0; k < count; k++) {
    local[k].iov_base = r->cache + (size_t)(r->used + k) * REMOTE_PAGE;
    local[k].iov_len = REMOTE_PAGE;
  }
  struct iovec remote = {.iov_base = (void *)(uintptr_t)(first * REMOTE_PAGE),
                         .iov_len = (size_t)count * REMOTE_PAGE};
  ssize_t got = process_vm_readv(r->pid, local, count, &remote, 1, 0);
  r->syscalls++;
  uint32_t whole = got > 0 ? (uint32_t)((size_t)got / REMOTE_PAGE) : 0;
  for (uint32_t k = 0; k < count && k <= whole; k++) {
    struct remote_slot *s = slot_for(r, first + k);
    s->page = first + k + 1;
    s->index = k < whole ? (int32_t)(r->used + k) : -1;
    r->entries++;
  }
  r->used += whole;
  r->bytes += (size_t)whole * REMOTE_PAGE;
}

static bool read_direct(struct remote *r, uint64_t addr, void *out,
                        size_t len) {
  struct iovec local = {.iov_base = out, .iov_len = len};
  struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
  r->syscalls++;
  r->bytes += len;
  return process_vm_readv(r->pid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

bool remote_read(struct remote *r, uint64_t addr, void *out, size_t len) {
  if (len == 0)
    return true;
  if (addr + len < addr)
    return false;
  uint64_t first = addr / REMOTE_PAGE, last = (addr + len - 1) / REMOTE_PAGE;
  unsigned char *dst = out;
  for (uint64_t page = first; page <= last; page++) {
    struct remote_slot *s = slot_for(r, page);
    if (s->page == 0) {
      /* Fetch this page and the missing ones after it that we need. */
      uint32_t count = 1;
      while (count < REMOTE_RUN_MAX && page + count <= last &&
             slot_for(r, page + count)->page == 0)
        count++;
      if (r->used + count > REMOTE_PAGES ||
          r->entries + count > REMOTE_SLOTS / 2)
        return read_direct(r, addr, out, len); /* cache full */
      fetch_run(r, page, count);
      s = slot_for(r, page);
    }
    if (s->index < 0)
      return false;
    uint64_t from = page == first ? addr % REMOTE_PAGE : 0;
    uint64_t to =
        page == last ? (addr + len - 1) % REMOTE_PAGE + 1 : REMOTE_PAGE;
    memcpy(dst, r->cache + (size_t)s->index * REMOTE_PAGE + from,
           (size_t)(to - from));
    dst += to - from;
  }
  return true;
}

bool remote_read_u64(struct remote *r, uint64_t addr, uint64_t *out) {
  return remote_read(r, addr, out, sizeof(*out));
}
