/*
 * The region's format: the one thing libperpetuo and the watcher share.
 * docs/protocol.md describes it byte by byte; the static assertions at the
 * end keep this file and that page in agreement.
 *
 * The watcher treats everything it reads through this format as untrusted:
 * it is another process's memory, which may be corrupt, hostile or changing.
 */
#ifndef PERPETUO_PROTOCOL_H
#define PERPETUO_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define PERPETUO__MAGIC "PERPETUO"
#define PERPETUO__MAGIC_LEN 8
#define PERPETUO__FORMAT_VERSION 1

#define PERPETUO__SLOT_SIZE 256
#define PERPETUO__SLOT_COUNT 1024
#define PERPETUO__NAME_SIZE 128
#define PERPETUO__THREAD_NAME_SIZE 16
#define PERPETUO__SLOTS_OFFSET 4096
#define PERPETUO__PYTHON_OFFSET 256
#define PERPETUO__PYTHON_SIZE (PERPETUO__SLOTS_OFFSET - PERPETUO__PYTHON_OFFSET)
#define PERPETUO__REGION_SIZE                                                  \
  (PERPETUO__SLOTS_OFFSET + PERPETUO__SLOT_SIZE * PERPETUO__SLOT_COUNT)

/* At offset 0 of the region, which starts on a page boundary. */
struct perpetuo__header {
  char magic[PERPETUO__MAGIC_LEN]; /* "PERPETUO", not NUL-terminated */
  uint32_t version;                /* PERPETUO__FORMAT_VERSION */
  uint32_t header_size;            /* sizeof(struct perpetuo__header) */
  uint64_t self;                   /* the region's own address */
  uint64_t region_size;            /* bytes mapped */
  uint32_t slot_size;
  uint32_t slot_count;
  uint32_t slots_offset;
  uint32_t high_water;    /* slots [0, high_water) have ever been used */
  uint32_t python_offset; /* the Python layout block (filled by bindings) */
  uint32_t python_size;
  uint32_t pid;   /* the process the region belongs to */
  uint32_t flags; /* none defined yet */
  uint64_t reserved[8];
};

enum perpetuo__slot_state {
  PERPETUO__SLOT_FREE = 0,
  PERPETUO__SLOT_CLAIMED = 1, /* being filled in: not to be read yet */
  PERPETUO__SLOT_LIVE = 2
};

enum perpetuo__slot_kind {
  PERPETUO__KIND_INLINE = 1,   /* the counter is the slot's own `counter` */
  PERPETUO__KIND_EXTERNAL = 2, /* the counter is at `counter_addr` */
  /* No counter: a contention rule. `counter_addr` is the handover counter,
   * aux[0] the request word (or its offset from the holder), aux[1] the
   * request mask | flags << 32, aux[2] the holder pointer's address. */
  PERPETUO__KIND_CONTENTION = 3
};

/* aux[1] >> 32 of a contention slot: the request word is at aux[0] bytes
 * from the address the pointer at aux[2] holds. */
#define PERPETUO__CONTENTION_VIA_HOLDER 0x1u

/* Slot flags. */
#define PERPETUO__SLOT_ORPHANED                                                \
  0x1u /* registered by a thread that did not                                  \
          survive fork(): never ticks again */

/*
 * One tracker. The first 32 bytes are the "hot" part the watcher reads on
 * every poll; the rest changes only when the slot is claimed, which bumps
 * `generation`, so the watcher rereads it then.
 */
struct perpetuo__slot {
  uint64_t counter;      /* inline counter: the single writer's */
  uint32_t state;        /* enum perpetuo__slot_state */
  uint32_t kind;         /* enum perpetuo__slot_kind */
  uint64_t generation;   /* bumped on every claim */
  uint64_t counter_addr; /* where the counter is, in the target */
  /* -- end of the hot part (32 bytes) -- */
  uint32_t thread_hint;  /* enum perpetuo_thread_hint */
  uint32_t threshold_ms; /* 0: the watcher's alert interval */
  uint64_t thread_id;    /* for NATIVE and PTHREAD hints */
  uint64_t reg_pthread;  /* registering thread's pthread_t */
  int32_t reg_tid;       /* registering thread's native id */
  uint32_t flags;        /* PERPETUO__SLOT_* flags */
  char reg_thread_name[PERPETUO__THREAD_NAME_SIZE]; /* NUL-terminated */
  /* What the tracker's thread is doing now, published by it (see
   * perpetuo_tracker_detail()): the address of `detail_length` bytes of
   * UTF-8 in the target. Written while the slot is live, read at a stall. */
  uint64_t detail_text;
  uint64_t detail_length;
  uint64_t aux[4];                /* reserved for kinds to come */
  char name[PERPETUO__NAME_SIZE]; /* NUL-terminated */
};

#define PERPETUO__SLOT_HOT_SIZE 32

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct perpetuo__header) == 128, "header layout");
_Static_assert(sizeof(struct perpetuo__slot) == PERPETUO__SLOT_SIZE,
               "slot layout");
_Static_assert(offsetof(struct perpetuo__slot, thread_hint) ==
                   PERPETUO__SLOT_HOT_SIZE,
               "hot part");
_Static_assert(offsetof(struct perpetuo__slot, name) == 128, "name offset");
_Static_assert(offsetof(struct perpetuo__slot, detail_text) == 80,
               "detail offset");
_Static_assert(PERPETUO__SLOTS_OFFSET % 64 == 0,
               "slots are cache-line aligned");
#endif

#endif
