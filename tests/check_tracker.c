/*
 * The tracker half of the public API: registration, release, the checked
 * ticks, options, errors, versions, and behaviour across fork().
 *
 * Each test runs in its own process (Check's fork mode), so each starts with
 * a region of its own that no other test has touched: tests may rely on the
 * first registration taking the first slot.
 *
 * The region's layout (protocol.h) is used to look behind the handles: the
 * counter of an inline tracker is at offset 0 of its slot, so the counter
 * pointer is the slot's address.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perpetuo.h"
#include "protocol.h"

/* A value no registration would hand back, to see *ret left untouched. */
#define SENTINEL ((perpetuo_tracker_t *)(uintptr_t)0xdeadbeef)

static struct perpetuo__slot *slot_of(const perpetuo_tracker_t *tracker) {
  return (struct perpetuo__slot *)perpetuo_tracker_counter(tracker);
}

static struct perpetuo__header *header_of_first_slot(struct perpetuo__slot *s) {
  return (struct perpetuo__header *)((char *)s - PERPETUO__SLOTS_OFFSET);
}

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

static perpetuo_tracker_t *must_new(const char *name,
                                    const perpetuo_tracker_options_t *opts) {
  perpetuo_tracker_t *t = SENTINEL;
  int err = perpetuo_tracker_new(&t, name, opts);
  ck_assert_msg(err == 0, "perpetuo_tracker_new(%s): %d (%s)", name, err,
                perpetuo_strerror(err));
  ck_assert_ptr_ne(t, SENTINEL);
  ck_assert_ptr_nonnull(t);
  return t;
}

/* ------------------------------------------------------- register/release */

START_TEST(test_register_and_release) {
  perpetuo_tracker_t *t = must_new("loop", NULL);
  uint64_t *counter = perpetuo_tracker_counter(t);
  ck_assert_ptr_nonnull(counter);
  /* Slots are cache-line aligned, so the counter never straddles lines. */
  ck_assert_uint_eq((uintptr_t)counter % 64, 0);
  ck_assert_uint_eq(*counter, 0);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 0);

  struct perpetuo__slot *slot = slot_of(t);
  ck_assert_uint_eq(slot->state, PERPETUO__SLOT_LIVE);
  ck_assert_uint_eq(slot->kind, PERPETUO__KIND_INLINE);
  ck_assert_uint_eq(slot->counter_addr, (uint64_t)(uintptr_t)counter);
  ck_assert_str_eq(slot->name, "loop");
  ck_assert_uint_eq(slot->thread_hint, PERPETUO_THREAD_REGISTRAR);
  ck_assert_uint_eq(slot->threshold_ms, 0);
  ck_assert_uint_eq(slot->flags, 0);

  /* A fresh process: the first tracker takes the first slot, and the header
   * in front of it describes this process. */
  struct perpetuo__header *h = header_of_first_slot(slot);
  ck_assert_mem_eq(h->magic, PERPETUO__MAGIC, PERPETUO__MAGIC_LEN);
  ck_assert_uint_eq(h->version, PERPETUO__FORMAT_VERSION);
  ck_assert_uint_eq(h->self, (uint64_t)(uintptr_t)h);
  ck_assert_uint_eq(h->pid, (uint32_t)getpid());
  ck_assert_uint_eq(h->slot_count, PERPETUO_TRACKER_MAX);
  ck_assert_uint_eq(h->high_water, 1);

  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  ck_assert_uint_eq(slot->state, PERPETUO__SLOT_FREE);
}
END_TEST

START_TEST(test_registering_thread_recorded) {
  ck_assert_int_eq(pthread_setname_np(pthread_self(), "reg-thread"), 0);
  perpetuo_tracker_t *t = must_new("named", NULL);
  struct perpetuo__slot *slot = slot_of(t);
  ck_assert_int_eq(slot->reg_tid, my_tid());
  ck_assert_uint_eq(slot->reg_pthread, (uint64_t)pthread_self());
  ck_assert_str_eq(slot->reg_thread_name, "reg-thread");
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

START_TEST(test_free_null) { ck_assert_int_eq(perpetuo_tracker_free(NULL), 0); }
END_TEST

START_TEST(test_null_tracker_accessors) {
  ck_assert_ptr_null(perpetuo_tracker_counter(NULL));
  ck_assert_int_eq(perpetuo_tracker_enter(NULL), -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_leave(NULL), -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_is_active(NULL), -EINVAL);
}
END_TEST

START_TEST(test_detail) {
  ck_assert_ptr_null(perpetuo_tracker_detail(NULL));
  perpetuo_tracker_t *t = must_new("detailed", NULL);
  perpetuo_detail_t *d = perpetuo_tracker_detail(t);
  ck_assert_ptr_nonnull(d);
  /* In the slot, where the watcher reads it, and empty at first. */
  ck_assert_ptr_eq((void *)d, (void *)&slot_of(t)->detail_text);
  ck_assert_uint_eq(d->length, 0);
  static const char job[] = "job 42";
  perpetuo_detail_set(d, job, strlen(job));
  ck_assert_uint_eq(slot_of(t)->detail_text, (uint64_t)(uintptr_t)job);
  ck_assert_uint_eq(slot_of(t)->detail_length, strlen(job));
  perpetuo_detail_set(d, NULL, 7);
  ck_assert_uint_eq(d->length, 0); /* no text, no length */
  perpetuo_detail_set(d, job, strlen(job));
  uint64_t *counter = perpetuo_tracker_counter(t);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  /* The next tracker in that slot starts without its predecessor's. */
  perpetuo_tracker_t *u = must_new("next", NULL);
  ck_assert_ptr_eq(perpetuo_tracker_counter(u), counter);
  ck_assert_uint_eq(perpetuo_tracker_detail(u)->length, 0);
  ck_assert_uint_eq(perpetuo_tracker_detail(u)->text, 0);
  ck_assert_int_eq(perpetuo_tracker_free(u), 0);
}
END_TEST

START_TEST(test_runtime_layout_publish) {
  unsigned char block[PERPETUO_RUNTIME_LAYOUT_MAX + 1];
  memset(block, 0x5a, sizeof(block));
  ck_assert_int_eq(perpetuo_runtime_layout_publish(NULL, 8), -EINVAL);
  ck_assert_int_eq(perpetuo_runtime_layout_publish(block, 0), -EINVAL);
  ck_assert_int_eq(perpetuo_runtime_layout_publish(block, 3), -EINVAL);
  ck_assert_int_eq(perpetuo_runtime_layout_publish(block, sizeof(block)),
                   -EINVAL);
  ck_assert_int_eq(PERPETUO_RUNTIME_LAYOUT_MAX, PERPETUO__PYTHON_SIZE);
  /* Where the watcher reads it, after the header. */
  ck_assert_int_eq(perpetuo_runtime_layout_publish(block, 100), 0);
  perpetuo_tracker_t *t = must_new("layout", NULL);
  struct perpetuo__header *h = header_of_first_slot(slot_of(t));
  const unsigned char *at = (const unsigned char *)h + h->python_offset;
  ck_assert_int_eq(memcmp(at, block, 100), 0);
  /* A shorter block replaces it whole: nothing of the old one is left. */
  unsigned char small[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ck_assert_int_eq(perpetuo_runtime_layout_publish(small, sizeof(small)), 0);
  ck_assert_int_eq(memcmp(at, small, sizeof(small)), 0);
  for (size_t i = sizeof(small); i < PERPETUO__PYTHON_SIZE; i++)
    ck_assert_uint_eq(at[i], 0);
  ck_assert_int_eq(
      perpetuo_runtime_layout_publish(block, PERPETUO_RUNTIME_LAYOUT_MAX), 0);
  ck_assert_uint_eq(at[PERPETUO_RUNTIME_LAYOUT_MAX - 1], 0x5a);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

START_TEST(test_contention) {
  static uint64_t handovers;
  static uint32_t request[2];
  static uint64_t holder;
  perpetuo_tracker_t *t = NULL;
  perpetuo_contention_t rule = {.handovers = (uintptr_t)&handovers,
                                .request = (uintptr_t)&request[0],
                                .request_mask = 1};
  perpetuo_contention_t bad = rule;
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", NULL, NULL),
                   -EINVAL);
  bad.handovers = 0;
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  bad = rule;
  bad.handovers += 4; /* misaligned */
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  bad = rule;
  bad.request_mask = 0;
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  bad = rule;
  bad.flags = 2;
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  bad = rule;
  bad.holder = (uintptr_t)&holder; /* a holder without the flag */
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  bad = rule;
  bad.flags = PERPETUO_CONTENTION_VIA_HOLDER;
  bad.holder = (uintptr_t)&holder;
  bad.request = 65540; /* too far from the holder */
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "c", &bad, NULL),
                   -EINVAL);
  ck_assert_ptr_null(t);

  perpetuo_tracker_options_t o;
  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_GIL_HOLDER;
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "lock", &rule, &o), 0);
  /* No counter to tick. */
  ck_assert_ptr_null(perpetuo_tracker_counter(t));
  ck_assert_int_eq(perpetuo_tracker_enter(t), -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_leave(t), -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), -EINVAL);
  /* The rule, in the slot where the watcher reads it (a handle is its
   * slot, as for every tracker). */
  struct perpetuo__slot *slot = (struct perpetuo__slot *)(void *)t;
  ck_assert_uint_eq(slot->kind, PERPETUO__KIND_CONTENTION);
  ck_assert_uint_eq(slot->counter_addr, (uintptr_t)&handovers);
  ck_assert_uint_eq(slot->aux[0], (uintptr_t)&request[0]);
  ck_assert_uint_eq(slot->aux[1], 1);
  ck_assert_uint_eq(slot->aux[2], 0);
  ck_assert_uint_eq(slot->thread_hint, PERPETUO_THREAD_GIL_HOLDER);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);

  perpetuo_contention_t via = {.handovers = (uintptr_t)&handovers,
                               .request = 16,
                               .request_mask = 4,
                               .flags = PERPETUO_CONTENTION_VIA_HOLDER,
                               .holder = (uintptr_t)&holder};
  ck_assert_int_eq(perpetuo_tracker_new_contention(&t, "via", &via, NULL), 0);
  slot = (struct perpetuo__slot *)(void *)t;
  ck_assert_uint_eq(slot->aux[0], 16);
  ck_assert_uint_eq(slot->aux[1],
                    4 | (uint64_t)PERPETUO__CONTENTION_VIA_HOLDER << 32);
  ck_assert_uint_eq(slot->aux[2], (uintptr_t)&holder);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

START_TEST(test_slot_reuse) {
  perpetuo_tracker_t *a = must_new("a", NULL);
  perpetuo_tracker_t *b = must_new("b", NULL);
  perpetuo_tracker_t *c = must_new("c", NULL);
  uint64_t *cb = perpetuo_tracker_counter(b);
  ck_assert_ptr_ne(perpetuo_tracker_counter(a), cb);
  ck_assert_ptr_ne(perpetuo_tracker_counter(c), cb);
  ck_assert_ptr_ne(perpetuo_tracker_counter(a), perpetuo_tracker_counter(c));
  /* Leave b's counter at a non-zero even value: its successor must not
   * inherit it. */
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(perpetuo_tracker_enter(b), 0);
    ck_assert_int_eq(perpetuo_tracker_leave(b), 0);
  }
  ck_assert_uint_eq(*cb, 6);
  ck_assert_int_eq(perpetuo_tracker_free(b), 0);

  perpetuo_tracker_t *d = must_new("d", NULL);
  ck_assert_ptr_eq(perpetuo_tracker_counter(d), cb);
  ck_assert_uint_eq(*cb, 0);
  ck_assert_str_eq(slot_of(d)->name, "d");
  /* Reuse must not disturb the neighbours. */
  ck_assert_str_eq(slot_of(a)->name, "a");
  ck_assert_str_eq(slot_of(c)->name, "c");

  /* Freed slots are handed out lowest first, so the region stays dense. */
  uint64_t *ca = perpetuo_tracker_counter(a);
  ck_assert_int_eq(perpetuo_tracker_free(c), 0);
  ck_assert_int_eq(perpetuo_tracker_free(a), 0);
  perpetuo_tracker_t *e = must_new("e", NULL);
  ck_assert_ptr_eq(perpetuo_tracker_counter(e), ca);

  ck_assert_int_eq(perpetuo_tracker_free(d), 0);
  ck_assert_int_eq(perpetuo_tracker_free(e), 0);
}
END_TEST

START_TEST(test_generation_bumped_on_reuse) {
  perpetuo_tracker_t *t = must_new("gen", NULL);
  struct perpetuo__slot *slot = slot_of(t);
  uint64_t first = slot->generation;
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  t = must_new("gen2", NULL);
  ck_assert_ptr_eq(slot_of(t), slot);
  /* The watcher rereads a slot's cold part only when this changes. */
  ck_assert_uint_eq(slot->generation, first + 1);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/* ------------------------------------------------------------ concurrency */

#define THREADS 8
#define ITERATIONS 4000
#define PER_THREAD_LIVE 8
#define KEPT_AT_END 4

struct churn {
  int index;
  uint32_t rng;
  perpetuo_tracker_t *live[PER_THREAD_LIVE];
  uint64_t expected[PER_THREAD_LIVE];
  char names[PER_THREAD_LIVE][32];
  int count;
  long registrations;
  char error[256];
};

static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

/*
 * Each thread is the one writer of its trackers, so it knows exactly what
 * each counter and name must hold; a slot handed to two threads at once
 * shows up as a counter or name that changed behind its owner's back.
 */
static int churn_verify(struct churn *c) {
  for (int i = 0; i < c->count; i++) {
    struct perpetuo__slot *slot = slot_of(c->live[i]);
    if (slot->counter != c->expected[i] ||
        strcmp(slot->name, c->names[i]) != 0 ||
        slot->state != PERPETUO__SLOT_LIVE) {
      snprintf(c->error, sizeof(c->error),
               "thread %d: tracker %s: counter %llu (expected %llu), name %s, "
               "state %u",
               c->index, c->names[i], (unsigned long long)slot->counter,
               (unsigned long long)c->expected[i], slot->name,
               (unsigned)slot->state);
      return -1;
    }
  }
  return 0;
}

static int churn_register(struct churn *c) {
  int i = c->count;
  snprintf(c->names[i], sizeof(c->names[i]), "t%d-%ld", c->index,
           c->registrations++);
  perpetuo_tracker_t *t = NULL;
  int err = perpetuo_tracker_new(&t, c->names[i], NULL);
  if (err) {
    snprintf(c->error, sizeof(c->error), "thread %d: new: %s", c->index,
             perpetuo_strerror(err));
    return -1;
  }
  c->live[i] = t;
  c->expected[i] = 0;
  c->count++;
  return 0;
}

static void *churn_thread(void *arg) {
  struct churn *c = arg;
  for (int iter = 0; iter < ITERATIONS; iter++) {
    int grow = c->count == 0 ||
               (c->count < PER_THREAD_LIVE && next_random(&c->rng) % 2 == 0);
    if (grow) {
      if (churn_register(c) < 0)
        return NULL;
    } else {
      int victim = (int)(next_random(&c->rng) % (uint32_t)c->count);
      int err = perpetuo_tracker_free(c->live[victim]);
      if (err) {
        snprintf(c->error, sizeof(c->error), "thread %d: free %s: %s", c->index,
                 c->names[victim], perpetuo_strerror(err));
        return NULL;
      }
      c->count--;
      c->live[victim] = c->live[c->count];
      c->expected[victim] = c->expected[c->count];
      memcpy(c->names[victim], c->names[c->count], sizeof(c->names[0]));
    }
    for (int i = 0; i < c->count; i++) {
      perpetuo_counter_enter(perpetuo_tracker_counter(c->live[i]));
      c->expected[i]++;
      if (churn_verify(c) < 0)
        return NULL;
      perpetuo_counter_leave(perpetuo_tracker_counter(c->live[i]));
      c->expected[i]++;
    }
    if (churn_verify(c) < 0)
      return NULL;
  }
  while (c->count < KEPT_AT_END)
    if (churn_register(c) < 0)
      return NULL;
  while (c->count > KEPT_AT_END) {
    int err = perpetuo_tracker_free(c->live[--c->count]);
    if (err) {
      snprintf(c->error, sizeof(c->error), "thread %d: free: %s", c->index,
               perpetuo_strerror(err));
      return NULL;
    }
  }
  churn_verify(c);
  return NULL;
}

static int compare_pointers(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(test_concurrent_register_release) {
  static struct churn churns[THREADS];
  pthread_t threads[THREADS];
  perpetuo_tracker_t *probe = must_new("probe", NULL);
  uint64_t *first_slot = perpetuo_tracker_counter(probe);
  ck_assert_int_eq(perpetuo_tracker_free(probe), 0);
  for (int i = 0; i < THREADS; i++) {
    churns[i] = (struct churn){.index = i, .rng = 2463534242u + 7919u * i};
    ck_assert_int_eq(
        pthread_create(&threads[i], NULL, churn_thread, &churns[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
  for (int i = 0; i < THREADS; i++)
    ck_assert_msg(churns[i].error[0] == 0, "%s", churns[i].error);

  uintptr_t counters[THREADS * KEPT_AT_END];
  int n = 0;
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(churns[i].count, KEPT_AT_END);
    ck_assert_int_ge(churns[i].registrations, ITERATIONS / 4);
    for (int j = 0; j < churns[i].count; j++)
      counters[n++] = (uintptr_t)perpetuo_tracker_counter(churns[i].live[j]);
  }
  qsort(counters, (size_t)n, sizeof(counters[0]), compare_pointers);
  for (int i = 1; i < n; i++)
    ck_assert_msg(counters[i] != counters[i - 1],
                  "two live trackers share the counter at %p",
                  (void *)counters[i]);

  for (int i = 0; i < THREADS; i++)
    for (int j = 0; j < churns[i].count; j++)
      ck_assert_int_eq(perpetuo_tracker_free(churns[i].live[j]), 0);
  /* With everything freed, the next registration takes the first slot. */
  perpetuo_tracker_t *t = must_new("after", NULL);
  ck_assert_ptr_eq(perpetuo_tracker_counter(t), first_slot);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/* -------------------------------------------------------------- bad input */

START_TEST(test_bad_input) {
  perpetuo_tracker_t *t = SENTINEL;
  ck_assert_int_eq(perpetuo_tracker_new(NULL, "x", NULL), -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_new(&t, NULL, NULL), -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);
  ck_assert_int_eq(perpetuo_tracker_new(&t, "", NULL), -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);

  uint64_t counter = 0;
  ck_assert_int_eq(perpetuo_tracker_new_external(NULL, "x", &counter, NULL),
                   -EINVAL);
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, NULL, &counter, NULL),
                   -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, "", &counter, NULL),
                   -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);

  /* None of the failures may have used up a slot. */
  perpetuo_tracker_t *first = must_new("first", NULL);
  ck_assert_uint_eq(header_of_first_slot(slot_of(first))->high_water, 1);
  ck_assert_int_eq(perpetuo_tracker_free(first), 0);
}
END_TEST

/* ------------------------------------------------------------ name limits */

static const char *registered_name(perpetuo_tracker_t *t) {
  return slot_of(t)->name;
}

START_TEST(test_name_exactly_max_kept) {
  char name[PERPETUO_TRACKER_NAME_MAX + 1];
  memset(name, 'n', PERPETUO_TRACKER_NAME_MAX);
  name[PERPETUO_TRACKER_NAME_MAX] = 0;
  perpetuo_tracker_t *t = must_new(name, NULL);
  ck_assert_str_eq(registered_name(t), name);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

START_TEST(test_name_ascii_truncated) {
  char name[300];
  for (int i = 0; i < 299; i++)
    name[i] = (char)('a' + i % 26);
  name[299] = 0;
  perpetuo_tracker_t *t = must_new(name, NULL);
  ck_assert_uint_eq(strlen(registered_name(t)), PERPETUO_TRACKER_NAME_MAX);
  ck_assert_int_eq(memcmp(registered_name(t), name, PERPETUO_TRACKER_NAME_MAX),
                   0);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/*
 * `prefix` ASCII bytes, then a multi-byte character repeated well past the
 * limit: whatever the alignment, the kept name must end on a whole
 * character, which means the longest prefix + k * width that fits.
 */
static void check_utf8_truncation(const char *character, int prefix) {
  size_t width = strlen(character);
  char name[400] = "";
  memset(name, 'p', (size_t)prefix);
  size_t len = (size_t)prefix;
  while (len + width < sizeof(name) - 1 && len < 300) {
    memcpy(name + len, character, width);
    len += width;
  }
  name[len] = 0;
  size_t expected =
      (size_t)prefix +
      (PERPETUO_TRACKER_NAME_MAX - (size_t)prefix) / width * width;

  perpetuo_tracker_t *t = must_new(name, NULL);
  const char *kept = registered_name(t);
  ck_assert_msg(strlen(kept) == expected,
                "width %zu, prefix %d: kept %zu bytes, expected %zu", width,
                prefix, strlen(kept), expected);
  ck_assert_int_eq(memcmp(kept, name, expected), 0);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}

START_TEST(test_name_utf8_truncated_at_boundary) {
  static const char *const characters[] = {
      "\xc3\xa9",         /* é, 2 bytes */
      "\xe2\x82\xac",     /* €, 3 bytes */
      "\xf0\x9f\x98\x80", /* 😀, 4 bytes */
  };
  for (size_t c = 0; c < sizeof(characters) / sizeof(characters[0]); c++)
    for (int prefix = 0; prefix < 4; prefix++)
      check_utf8_truncation(characters[c], prefix);
}
END_TEST

START_TEST(test_name_utf8_fitting_exactly_kept) {
  /* 125 ASCII bytes and one 2-byte character: 127 bytes, nothing to cut. */
  char name[PERPETUO_TRACKER_NAME_MAX + 1];
  memset(name, 'x', 125);
  memcpy(name + 125, "\xc3\xa9", 3);
  perpetuo_tracker_t *t = must_new(name, NULL);
  ck_assert_str_eq(registered_name(t), name);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/* ---------------------------------------------------------------- options */

START_TEST(test_options_init_defaults) {
  perpetuo_tracker_options_t o;
  memset(&o, 0xa5, sizeof(o));
  perpetuo_tracker_options_init(&o);
  ck_assert_uint_eq(o.size, sizeof(o));
  ck_assert_int_eq(o.thread_hint, PERPETUO_THREAD_REGISTRAR);
  ck_assert_uint_eq(o.thread_id, 0);
  ck_assert_uint_eq(o.threshold_ms, 0);
  ck_assert_int_eq(o.initially_active, 0);
  /* Documented as never failing, so NULL must be harmless too. */
  perpetuo_tracker_options_init(NULL);
}
END_TEST

static void expect_bad_options(const perpetuo_tracker_options_t *o,
                               const char *what) {
  perpetuo_tracker_t *t = SENTINEL;
  int err = perpetuo_tracker_new(&t, "bad", o);
  ck_assert_msg(err == -EINVAL, "%s: got %d, expected -EINVAL", what, err);
  ck_assert_ptr_eq(t, SENTINEL);
  uint64_t counter = 0;
  err = perpetuo_tracker_new_external(&t, "bad", &counter, o);
  ck_assert_msg(err == -EINVAL, "%s (external): got %d, expected -EINVAL", what,
                err);
  ck_assert_ptr_eq(t, SENTINEL);
}

START_TEST(test_options_rejected) {
  perpetuo_tracker_options_t o;

  perpetuo_tracker_options_init(&o);
  o.size = 0;
  expect_bad_options(&o, "size 0");
  perpetuo_tracker_options_init(&o);
  o.size = offsetof(perpetuo_tracker_options_t, initially_active);
  expect_bad_options(&o, "size one field short");

  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_GIL_HOLDER + 1;
  expect_bad_options(&o, "thread_hint past the last");
  o.thread_hint = -1;
  expect_bad_options(&o, "thread_hint -1");

  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_NATIVE;
  o.thread_id = 0;
  expect_bad_options(&o, "NATIVE with thread_id 0");
  o.thread_id = (uint64_t)INT32_MAX + 1;
  expect_bad_options(&o, "NATIVE with a thread_id no tid can have");

  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_PTHREAD;
  o.thread_id = 0;
  expect_bad_options(&o, "PTHREAD with thread_id 0");

  perpetuo_tracker_options_init(&o);
  o.threshold_ms = 86400000u + 1;
  expect_bad_options(&o, "threshold over one day");
  o.threshold_ms = UINT32_MAX;
  expect_bad_options(&o, "threshold UINT32_MAX");

  perpetuo_tracker_options_init(&o);
  o.initially_active = 2;
  expect_bad_options(&o, "initially_active 2");
  o.initially_active = -1;
  expect_bad_options(&o, "initially_active -1");

  /* No rejected registration may have used up a slot. */
  perpetuo_tracker_t *t = must_new("first", NULL);
  ck_assert_uint_eq(header_of_first_slot(slot_of(t))->high_water, 1);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

START_TEST(test_options_accepted_and_recorded) {
  perpetuo_tracker_options_t o;
  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_NATIVE;
  o.thread_id = (uint64_t)my_tid();
  o.threshold_ms = 86400000u; /* exactly one day is allowed */
  perpetuo_tracker_t *t = must_new("native", &o);
  struct perpetuo__slot *slot = slot_of(t);
  ck_assert_uint_eq(slot->thread_hint, PERPETUO_THREAD_NATIVE);
  ck_assert_uint_eq(slot->thread_id, (uint64_t)my_tid());
  ck_assert_uint_eq(slot->threshold_ms, 86400000u);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);

  perpetuo_tracker_options_init(&o);
  o.thread_hint = PERPETUO_THREAD_PTHREAD;
  o.thread_id = (uint64_t)pthread_self();
  o.threshold_ms = 1;
  t = must_new("pthread", &o);
  ck_assert_uint_eq(slot_of(t)->thread_hint, PERPETUO_THREAD_PTHREAD);
  ck_assert_uint_eq(slot_of(t)->thread_id, (uint64_t)pthread_self());
  ck_assert_uint_eq(slot_of(t)->threshold_ms, 1);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);

  static const int hints[] = {PERPETUO_THREAD_REGISTRAR, PERPETUO_THREAD_NONE,
                              PERPETUO_THREAD_GIL_HOLDER};
  for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
    perpetuo_tracker_options_init(&o);
    o.thread_hint = hints[i];
    t = must_new("hint", &o);
    ck_assert_uint_eq(slot_of(t)->thread_hint, (uint32_t)hints[i]);
    ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  }
}
END_TEST

START_TEST(test_initially_active) {
  perpetuo_tracker_options_t o;
  perpetuo_tracker_options_init(&o);
  o.initially_active = 1;
  perpetuo_tracker_t *t = must_new("active", &o);
  ck_assert_uint_eq(*perpetuo_tracker_counter(t), 1);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 1);
  ck_assert_int_eq(perpetuo_tracker_enter(t), PERPETUO_EACTIVE);
  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_uint_eq(*perpetuo_tracker_counter(t), 2);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);

  /* A reused slot starts active too, whatever its last value. */
  t = must_new("active again", &o);
  ck_assert_uint_eq(*perpetuo_tracker_counter(t), 1);
  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/* --------------------------------------------------------------- exhausted */

START_TEST(test_region_exhausted) {
  static perpetuo_tracker_t *all[PERPETUO_TRACKER_MAX];
  for (int i = 0; i < PERPETUO_TRACKER_MAX; i++) {
    char name[32];
    snprintf(name, sizeof(name), "t%d", i);
    int err = perpetuo_tracker_new(&all[i], name, NULL);
    ck_assert_msg(err == 0, "tracker %d: %s", i, perpetuo_strerror(err));
  }
  perpetuo_tracker_t *t = SENTINEL;
  ck_assert_int_eq(perpetuo_tracker_new(&t, "one too many", NULL), -ENOSPC);
  ck_assert_ptr_eq(t, SENTINEL);
  uint64_t counter = 0;
  ck_assert_int_eq(
      perpetuo_tracker_new_external(&t, "one too many", &counter, NULL),
      -ENOSPC);
  ck_assert_ptr_eq(t, SENTINEL);

  /* A full region only refuses newcomers: every existing tracker works. */
  for (int i = 0; i < PERPETUO_TRACKER_MAX; i++) {
    ck_assert_int_eq(perpetuo_tracker_enter(all[i]), 0);
    ck_assert_int_eq(perpetuo_tracker_is_active(all[i]), 1);
  }
  for (int i = 0; i < PERPETUO_TRACKER_MAX; i++) {
    ck_assert_int_eq(perpetuo_tracker_leave(all[i]), 0);
    ck_assert_uint_eq(*perpetuo_tracker_counter(all[i]), 2);
    char name[32];
    snprintf(name, sizeof(name), "t%d", i);
    ck_assert_str_eq(slot_of(all[i])->name, name);
  }

  /* One freed slot makes room for exactly one more. */
  uint64_t *freed = perpetuo_tracker_counter(all[500]);
  ck_assert_int_eq(perpetuo_tracker_free(all[500]), 0);
  ck_assert_int_eq(perpetuo_tracker_new(&all[500], "late", NULL), 0);
  ck_assert_ptr_eq(perpetuo_tracker_counter(all[500]), freed);
  ck_assert_int_eq(perpetuo_tracker_new(&t, "one too many", NULL), -ENOSPC);

  for (int i = 0; i < PERPETUO_TRACKER_MAX; i++)
    ck_assert_int_eq(perpetuo_tracker_free(all[i]), 0);
}
END_TEST

/* ------------------------------------------------------- active / ticks */

START_TEST(test_free_active_inline_busy) {
  perpetuo_tracker_t *t = must_new("busy", NULL);
  struct perpetuo__slot *slot = slot_of(t);
  ck_assert_int_eq(perpetuo_tracker_enter(t), 0);
  ck_assert_int_eq(perpetuo_tracker_free(t), -EBUSY);
  ck_assert_uint_eq(slot->state, PERPETUO__SLOT_LIVE);
  ck_assert_str_eq(slot->name, "busy");
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 1);

  /* Still registered, so its slot is not handed to anyone else. */
  perpetuo_tracker_t *other = must_new("other", NULL);
  ck_assert_ptr_ne(perpetuo_tracker_counter(other),
                   perpetuo_tracker_counter(t));
  ck_assert_uint_eq(*perpetuo_tracker_counter(t), 1);

  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  ck_assert_uint_eq(slot->state, PERPETUO__SLOT_FREE);
  ck_assert_int_eq(perpetuo_tracker_free(other), 0);
}
END_TEST

START_TEST(test_checked_ticks) {
  perpetuo_tracker_t *t = must_new("ticks", NULL);
  uint64_t *counter = perpetuo_tracker_counter(t);
  ck_assert_int_eq(perpetuo_tracker_leave(t), PERPETUO_EIDLE);
  ck_assert_uint_eq(*counter, 0);
  ck_assert_int_eq(perpetuo_tracker_enter(t), 0);
  ck_assert_uint_eq(*counter, 1);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 1);
  ck_assert_int_eq(perpetuo_tracker_enter(t), PERPETUO_EACTIVE);
  ck_assert_uint_eq(*counter, 1);
  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_uint_eq(*counter, 2);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 0);
  ck_assert_int_eq(perpetuo_tracker_leave(t), PERPETUO_EIDLE);
  ck_assert_uint_eq(*counter, 2);

  /* The unchecked inline ticks and the checked ones share one counter. */
  perpetuo_counter_enter(counter);
  ck_assert_int_eq(perpetuo_counter_is_active(counter), 1);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 1);
  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_int_eq(perpetuo_counter_is_active(counter), 0);
  ck_assert_uint_eq(*counter, 4);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

/* ------------------------------------------------------------- external */

START_TEST(test_external_bad_counter) {
  perpetuo_tracker_t *t = SENTINEL;
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, "ext", NULL, NULL),
                   -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);
  _Alignas(uint64_t) unsigned char storage[16] = {0};
  uint64_t *misaligned = (uint64_t *)(void *)(storage + 4);
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, "ext", misaligned, NULL),
                   -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);
  misaligned = (uint64_t *)(void *)(storage + 1);
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, "ext", misaligned, NULL),
                   -EINVAL);
  ck_assert_ptr_eq(t, SENTINEL);
}
END_TEST

START_TEST(test_external_counter) {
  static uint64_t counter = 42;
  perpetuo_tracker_options_t o;
  perpetuo_tracker_options_init(&o);
  /* Ignored for external counters: their value is the caller's. */
  o.initially_active = 1;
  perpetuo_tracker_t *t = SENTINEL;
  ck_assert_int_eq(perpetuo_tracker_new_external(&t, "ext", &counter, &o), 0);
  ck_assert_ptr_ne(t, SENTINEL);
  ck_assert_ptr_eq(perpetuo_tracker_counter(t), &counter);
  ck_assert_uint_eq(counter, 42);
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 0);

  /* The handle is not the counter: the slot records where the counter is. */
  ck_assert_ptr_ne((void *)t, (void *)&counter);
  ck_assert_int_eq(perpetuo_tracker_enter(t), 0);
  ck_assert_uint_eq(counter, 43);
  ck_assert_int_eq(perpetuo_tracker_enter(t), PERPETUO_EACTIVE);
  ck_assert_uint_eq(counter, 43);

  /* The caller's counter outlives the slot, so freeing while active is the
   * caller's business. */
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  ck_assert_uint_eq(counter, 43);

  /* The external tracker's slot goes back to the pool like any other. */
  perpetuo_tracker_t *inline_tracker = must_new("inline", NULL);
  ck_assert_uint_eq(*perpetuo_tracker_counter(inline_tracker), 0);
  ck_assert_uint_eq(slot_of(inline_tracker)->kind, PERPETUO__KIND_INLINE);
  ck_assert_int_eq(perpetuo_tracker_free(inline_tracker), 0);
}
END_TEST

/* ------------------------------------------------------- errors, version */

START_TEST(test_strerror) {
  static const int own[] = {PERPETUO_EACTIVE, PERPETUO_EIDLE, PERPETUO_EWATCHER,
                            PERPETUO_EWATCHER_TIMEOUT};
  const char *unknown = perpetuo_strerror(-4000000);
  ck_assert_ptr_nonnull(unknown);
  ck_assert_uint_gt(strlen(unknown), 0);

  const char *success = perpetuo_strerror(0);
  ck_assert_ptr_nonnull(success);
  ck_assert_uint_gt(strlen(success), 0);
  ck_assert_str_ne(success, unknown);

  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
    const char *s = perpetuo_strerror(own[i]);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_ne(s, unknown);
    ck_assert_str_ne(s, success);
    /* Each code has a description of its own. */
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(s, perpetuo_strerror(own[j]));
  }
  ck_assert_str_eq(perpetuo_strerror(PERPETUO_EACTIVE),
                   "the tracker is already active");
  ck_assert_str_eq(perpetuo_strerror(PERPETUO_EIDLE),
                   "the tracker is already idle");

  /* errno values, either sign, read as the C library describes them. */
  ck_assert_str_eq(perpetuo_strerror(-ENOSPC), strerrordesc_np(ENOSPC));
  ck_assert_str_eq(perpetuo_strerror(ENOSPC), strerrordesc_np(ENOSPC));
  ck_assert_str_eq(perpetuo_strerror(-EINVAL), strerrordesc_np(EINVAL));
  ck_assert_str_eq(perpetuo_strerror(EBUSY), strerrordesc_np(EBUSY));

  static const int strange[] = {-10000, -10005,  10001,   4095,       -4095,
                                5000,   INT_MAX, INT_MIN, INT_MIN + 1};
  for (size_t i = 0; i < sizeof(strange) / sizeof(strange[0]); i++) {
    const char *s = perpetuo_strerror(strange[i]);
    ck_assert_msg(s != NULL, "perpetuo_strerror(%d) is NULL", strange[i]);
    ck_assert_msg(strcmp(s, unknown) == 0, "perpetuo_strerror(%d) = \"%s\"",
                  strange[i], s);
  }
}
END_TEST

START_TEST(test_version) {
  char expected[32];
  snprintf(expected, sizeof(expected), "%d.%d.%d", PERPETUO_VERSION_MAJOR,
           PERPETUO_VERSION_MINOR, PERPETUO_VERSION_PATCH);
  ck_assert_ptr_nonnull(perpetuo_version());
  ck_assert_str_eq(perpetuo_version(), expected);
  ck_assert_uint_eq(perpetuo_version_number(), PERPETUO_VERSION_HEX);
  ck_assert_uint_eq(perpetuo_version_number(),
                    ((unsigned)PERPETUO_VERSION_MAJOR << 16) |
                        ((unsigned)PERPETUO_VERSION_MINOR << 8) |
                        (unsigned)PERPETUO_VERSION_PATCH);
}
END_TEST

/* ------------------------------------------------------------------- fork */

/*
 * A fork() child cannot use ck_assert (its failure would be reported as the
 * parent's, or lost): it writes what went wrong to a pipe and exits 1.
 */
#define CHILD_CHECK(fd, cond)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      dprintf((fd), "line %d: %s", __LINE__, #cond);                           \
      _exit(1);                                                                \
    }                                                                          \
  } while (0)

static void wait_for_child(pid_t pid, int fd) {
  char why[512] = "";
  ssize_t n, got = 0;
  while ((n = read(fd, why + got, sizeof(why) - 1 - (size_t)got)) > 0)
    got += n;
  why[got] = 0;
  close(fd);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "child failed (status 0x%x): %s", status, why);
}

START_TEST(test_fork_child_private_region) {
  perpetuo_tracker_t *t = must_new("parent", NULL);
  uint64_t *counter = perpetuo_tracker_counter(t);
  struct perpetuo__header *h = header_of_first_slot(slot_of(t));
  ck_assert_int_eq(perpetuo_tracker_enter(t), 0);
  ck_assert_uint_eq(*counter, 1);

  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int w = fds[1];
    close(fds[0]);
    /* The child owns a copy of everything, tracker included. */
    CHILD_CHECK(w, h->pid == (uint32_t)getpid());
    CHILD_CHECK(w, *counter == 1);
    CHILD_CHECK(w, (slot_of(t)->flags & PERPETUO__SLOT_ORPHANED) == 0);
    CHILD_CHECK(w, slot_of(t)->reg_tid == my_tid());
    CHILD_CHECK(w, perpetuo_tracker_leave(t) == 0);
    CHILD_CHECK(w, perpetuo_tracker_enter(t) == 0);
    CHILD_CHECK(w, perpetuo_tracker_leave(t) == 0);
    CHILD_CHECK(w, *counter == 4);
    perpetuo_tracker_t *mine = NULL;
    CHILD_CHECK(w, perpetuo_tracker_new(&mine, "child", NULL) == 0);
    CHILD_CHECK(w, perpetuo_tracker_counter(mine) != counter);
    for (int i = 0; i < 5; i++) {
      CHILD_CHECK(w, perpetuo_tracker_enter(mine) == 0);
      CHILD_CHECK(w, perpetuo_tracker_leave(mine) == 0);
    }
    CHILD_CHECK(w, *perpetuo_tracker_counter(mine) == 10);
    CHILD_CHECK(w, perpetuo_tracker_enter(mine) == 0);
    CHILD_CHECK(w, perpetuo_tracker_free(t) == 0);
    _exit(0);
  }
  close(fds[1]);
  wait_for_child(pid, fds[0]);

  /* Nothing the child did reached the parent's copy. */
  ck_assert_uint_eq(h->pid, (uint32_t)getpid());
  ck_assert_uint_eq(*counter, 1);
  ck_assert_uint_eq(slot_of(t)->state, PERPETUO__SLOT_LIVE);
  ck_assert_str_eq(slot_of(t)->name, "parent");
  ck_assert_uint_eq(h->high_water, 1);
  perpetuo_tracker_t *next = must_new("next", NULL);
  ck_assert_uint_eq(*perpetuo_tracker_counter(next), 0);
  ck_assert_str_eq(slot_of(next)->name, "next");
  ck_assert_int_eq(perpetuo_tracker_free(next), 0);
  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
}
END_TEST

static void *register_in_thread(void *arg) {
  perpetuo_tracker_t **ret = arg;
  if (perpetuo_tracker_new(ret, "other thread", NULL) != 0)
    *ret = NULL;
  return NULL;
}

START_TEST(test_fork_orphans_other_threads_trackers) {
  perpetuo_tracker_t *theirs = NULL;
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, register_in_thread, &theirs),
                   0);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_ptr_nonnull(theirs);
  perpetuo_tracker_t *mine = must_new("forking thread", NULL);

  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int w = fds[1];
    close(fds[0]);
    /* Only the forking thread lives on in the child: the other thread's
     * tracker can never tick again, and is marked so. */
    CHILD_CHECK(w, slot_of(theirs)->flags & PERPETUO__SLOT_ORPHANED);
    CHILD_CHECK(w, (slot_of(mine)->flags & PERPETUO__SLOT_ORPHANED) == 0);
    CHILD_CHECK(w, slot_of(mine)->reg_tid == my_tid());
    _exit(0);
  }
  close(fds[1]);
  wait_for_child(pid, fds[0]);
  ck_assert_uint_eq(slot_of(theirs)->flags, 0);
  ck_assert_uint_eq(slot_of(mine)->flags, 0);
  ck_assert_int_eq(perpetuo_tracker_free(theirs), 0);
  ck_assert_int_eq(perpetuo_tracker_free(mine), 0);
}
END_TEST

static Suite *tracker_suite(void) {
  Suite *s = suite_create("tracker");
  TCase *tc;

  tc = tcase_create("lifecycle");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_register_and_release);
  tcase_add_test(tc, test_registering_thread_recorded);
  tcase_add_test(tc, test_free_null);
  tcase_add_test(tc, test_null_tracker_accessors);
  tcase_add_test(tc, test_runtime_layout_publish);
  tcase_add_test(tc, test_contention);
  tcase_add_test(tc, test_slot_reuse);
  tcase_add_test(tc, test_detail);
  tcase_add_test(tc, test_generation_bumped_on_reuse);
  tcase_add_test(tc, test_region_exhausted);
  tcase_add_test(tc, test_free_active_inline_busy);
  tcase_add_test(tc, test_checked_ticks);
  suite_add_tcase(s, tc);

  tc = tcase_create("concurrency");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_concurrent_register_release);
  suite_add_tcase(s, tc);

  tc = tcase_create("input");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_name_exactly_max_kept);
  tcase_add_test(tc, test_name_ascii_truncated);
  tcase_add_test(tc, test_name_utf8_truncated_at_boundary);
  tcase_add_test(tc, test_name_utf8_fitting_exactly_kept);
  tcase_add_test(tc, test_options_init_defaults);
  tcase_add_test(tc, test_options_rejected);
  tcase_add_test(tc, test_options_accepted_and_recorded);
  tcase_add_test(tc, test_initially_active);
  suite_add_tcase(s, tc);

  tc = tcase_create("external");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_external_bad_counter);
  tcase_add_test(tc, test_external_counter);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_strerror);
  tcase_add_test(tc, test_version);
  suite_add_tcase(s, tc);

  tc = tcase_create("fork");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_fork_child_private_region);
  tcase_add_test(tc, test_fork_orphans_other_threads_trackers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(tracker_suite());
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
