/*
 * The region: one private anonymous mapping per process, holding a header
 * and the tracker slots, read by the watcher with process_vm_readv.
 *
 * Private, not shared: a fork() child gets its own copy-on-write copy, so
 * nothing the child ticks can disturb the parent's view.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static pthread_once_t region_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static struct perpetuo__header *region;
static int region_errno;
/* The thread that called fork(), recorded while the lock is held for it. */
static pid_t forking_tid;

pid_t perpetuo__gettid(void) { return (pid_t)syscall(SYS_gettid); }

static struct perpetuo__slot *slot_at(uint32_t index) {
  return (struct perpetuo__slot *)((char *)region + PERPETUO__SLOTS_OFFSET +
                                   (size_t)index * PERPETUO__SLOT_SIZE);
}

static void fork_prepare(void) {
  pthread_mutex_lock(&region_lock);
  forking_tid = perpetuo__gettid();
}

static void fork_parent(void) { pthread_mutex_unlock(&region_lock); }

/*
 * In the child only the forking thread survives. Its trackers go on working;
 * every other thread's trackers can never tick again, so they are marked
 * orphaned and the child's watcher ignores them instead of reporting a stall
 * that is only an artefact of fork().
 */
static void fork_child(void) {
  pid_t me = perpetuo__gettid();
  if (region) {
    region->pid = (uint32_t)getpid();
    for (uint32_t i = 0; i < region->high_water; i++) {
      struct perpetuo__slot *slot = slot_at(i);
      if (slot->state != PERPETUO__SLOT_LIVE)
        continue;
      if (slot->reg_tid == forking_tid) {
        slot->reg_tid = me;
        if (slot->thread_hint == PERPETUO_THREAD_NATIVE &&
            slot->thread_id == (uint64_t)forking_tid)
          slot->thread_id = (uint64_t)me;
      } else {
        slot->flags |= PERPETUO__SLOT_ORPHANED;
      }
    }
  }
  pthread_mutex_init(&region_lock, NULL);
  perpetuo__watch_forget_after_fork();
}

/*
 * Maps the region between two inaccessible guard pages. The kernel merges
 * adjacent anonymous mappings with equal permissions into one; the guards
 * keep the region a mapping of its own, so an attaching watcher finds it at
 * the start of a line of /proc/PID/maps. Where the kernel can name anonymous
 * mappings, it also shows there as [anon:perpetuo].
 */
static void *map_region(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t total = PERPETUO__REGION_SIZE + 2 * page;
  char *base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    return NULL;
  char *map = base + page;
  if (mprotect(map, PERPETUO__REGION_SIZE, PROT_READ | PROT_WRITE) < 0) {
    int saved = errno;
    munmap(base, total);
    errno = saved;
    return NULL;
  }
  prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)map,
        PERPETUO__REGION_SIZE, (unsigned long)"perpetuo");
  return map;
}

static void region_create(void) {
  int err = pthread_atfork(fork_prepare, fork_parent, fork_child);
  if (err) {
    region_errno = err;
    return;
  }
  void *map = map_region();
  if (!map) {
    region_errno = errno;
    return;
  }
  struct perpetuo__header *header = map;
  header->version = PERPETUO__FORMAT_VERSION;
  header->header_size = sizeof(*header);
  header->self = (uint64_t)(uintptr_t)map;
  header->region_size = PERPETUO__REGION_SIZE;
  header->slot_size = PERPETUO__SLOT_SIZE;
  header->slot_count = PERPETUO__SLOT_COUNT;
  header->slots_offset = PERPETUO__SLOTS_OFFSET;
  header->python_offset = PERPETUO__PYTHON_OFFSET;
  header->python_size = PERPETUO__PYTHON_SIZE;
  header->pid = (uint32_t)getpid();
  /* The magic goes last: a watcher scanning for it sees a complete header. */
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy(header->magic, PERPETUO__MAGIC, PERPETUO__MAGIC_LEN);
  region = header;
}

struct perpetuo__header *perpetuo__region_get(void) {
  pthread_once(&region_once, region_create);
  if (!region)
    errno = region_errno;
  return region;
}

void perpetuo__copy_utf8(char *dst, size_t size, const char *src) {
  size_t len = strnlen(src, size);
  if (len >= size) {
    len = size - 1;
    /* Back off over continuation bytes so no character is cut in half. */
    size_t cut = len;
    while (cut > 0 && ((unsigned char)src[cut] & 0xC0) == 0x80)
      cut--;
    if (cut > 0) /* else not UTF-8 at all: keep every byte that fits */
      len = cut;
  }
  memcpy(dst, src, len);
  memset(dst + len, 0, size - len);
}

static void record_registering_thread(struct perpetuo__slot *slot) {
  slot->reg_tid = perpetuo__gettid();
  slot->reg_pthread = (uint64_t)pthread_self();
  memset(slot->reg_thread_name, 0, sizeof(slot->reg_thread_name));
#ifdef HAVE_PTHREAD_GETNAME_NP
  char name[PERPETUO__THREAD_NAME_SIZE] = "";
  if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0)
    perpetuo__copy_utf8(slot->reg_thread_name, sizeof(slot->reg_thread_name),
                        name);
#endif
}

struct perpetuo__slot *
perpetuo__region_claim(const struct perpetuo__slot_request *request, int *err) {
  if (!perpetuo__region_get()) {
    *err = -ENOMEM;
    return NULL;
  }
  pthread_mutex_lock(&region_lock);
  struct perpetuo__slot *slot = NULL;
  uint32_t index;
  for (index = 0; index < PERPETUO__SLOT_COUNT; index++) {
    if (slot_at(index)->state == PERPETUO__SLOT_FREE) {
      slot = slot_at(index);
      break;
    }
  }
  if (!slot) {
    pthread_mutex_unlock(&region_lock);
    *err = -ENOSPC;
    return NULL;
  }
  /*
   * CLAIMED, then the fields, then LIVE with release ordering: the watcher
   * reads the generation and state first and rereads the slot when they
   * change, so it never acts on a half-written slot for long.
   */
  __atomic_store_n(&slot->state, PERPETUO__SLOT_CLAIMED, __ATOMIC_RELAXED);
  slot->generation++;
  slot->kind = request->kind;
  slot->counter = request->initially_active ? 1 : 0;
  slot->counter_addr = request->kind == PERPETUO__KIND_INLINE
                           ? (uint64_t)(uintptr_t)&slot->counter
                           : request->external_addr;
  slot->thread_hint = request->thread_hint;
  slot->thread_id = request->thread_id;
  slot->threshold_ms = request->threshold_ms;
  slot->flags = 0;
  slot->detail_text = 0;
  slot->detail_length = 0;
  memcpy(slot->aux, request->aux, sizeof(slot->aux));
  record_registering_thread(slot);
  perpetuo__copy_utf8(slot->name, sizeof(slot->name), request->name);
  __atomic_store_n(&slot->state, PERPETUO__SLOT_LIVE, __ATOMIC_RELEASE);
  if (index + 1 > region->high_water)
    __atomic_store_n(&region->high_water, index + 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&region_lock);
  return slot;
}

void perpetuo__region_release(struct perpetuo__slot *slot) {
  pthread_mutex_lock(&region_lock);
  __atomic_store_n(&slot->state, PERPETUO__SLOT_FREE, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&region_lock);
}

_Static_assert(PERPETUO_RUNTIME_LAYOUT_MAX == PERPETUO__PYTHON_SIZE,
               "the block's size, as the API says it");

int perpetuo_runtime_layout_publish(const void *data, size_t size) {
  if (!data || size < sizeof(uint32_t) || size > PERPETUO__PYTHON_SIZE)
    return -EINVAL;
  struct perpetuo__header *header = perpetuo__region_get();
  if (!header)
    return -errno;
  unsigned char *block = (unsigned char *)header + header->python_offset;
  uint32_t first;
  memcpy(&first, data, sizeof(first));
  /* The first word goes last, so that a reader that sees it set sees the
   * whole block; a block being replaced reads as absent meanwhile. */
  pthread_mutex_lock(&region_lock);
  __atomic_store_n((uint32_t *)block, 0, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memset(block + sizeof(first), 0, PERPETUO__PYTHON_SIZE - sizeof(first));
  memcpy(block + sizeof(first), (const unsigned char *)data + sizeof(first),
         size - sizeof(first));
  __atomic_store_n((uint32_t *)block, first, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&region_lock);
  return 0;
}
