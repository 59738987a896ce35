/*
 * idle_trackers: a target for the watcher CPU benchmark (watcher_cpu.sh).
 *
 * Registers N trackers (default 256), prints its pid on stdout, alone on a
 * line, once they are all registered, and then idles: every 100 ms it
 * ticks every tracker once, so the watcher sees counters that move but
 * never a stall. It does not start a watcher: attach one with
 * `perpetuo watch PID`. It runs until killed, or for SECONDS if given.
 *
 * The kind of tracker:
 *   (default)                inline trackers; a tick is enter, then leave
 *   --contention             contention rules (perpetuo_tracker_new_
 *                            contention), each over a lock's words of its
 *                            own: a 64-bit handover count, which a tick
 *                            increments, and a 32-bit request word, left 0
 *                            (nobody waits: never a stall)
 *   --contention-via-holder  the same, with the request word in a holder
 *                            that the lock points to, as for CPython's GIL
 *                            (PERPETUO_CONTENTION_VIA_HOLDER)
 * so that the watcher's cost per poll can be compared between them: a
 * contention tracker makes it read two words (three via the holder) of the
 * target's memory besides the region, in the same process_vm_readv.
 *
 * Usage: idle_trackers [--contention | --contention-via-holder] [N [SECONDS]]
 *        (N: 1 to 1024)
 */
#include <perpetuo.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_PERIOD_NS 100000000L /* 100 ms */

enum kind { KIND_INLINE, KIND_CONTENTION, KIND_VIA_HOLDER };

/* What holds a lock, with the request word inside, at an offset. */
struct holder {
  uint64_t id;
  uint32_t request;
  uint32_t unused;
};

struct lock {
  uint64_t handovers;
  uint32_t request;
  uint32_t unused;
  struct holder *holder;
};

static int usage(void) {
  fprintf(stderr,
          "Usage: idle_trackers [--contention | --contention-via-holder] "
          "[N [SECONDS]]   (N: 1 to %d)\n",
          PERPETUO_TRACKER_MAX);
  return 2;
}

static int register_tracker(enum kind kind, long i, struct lock *lock,
                            uint64_t **counter) {
  char name[32];
  perpetuo_tracker_t *tracker;
  int err;
  snprintf(name, sizeof(name), "idle tracker %ld", i);
  if (kind == KIND_INLINE) {
    err = perpetuo_tracker_new(&tracker, name, NULL);
    if (!err)
      *counter = perpetuo_tracker_counter(tracker);
    return err;
  }
  perpetuo_contention_t rule = {
      .handovers = (uint64_t)(uintptr_t)&lock->handovers,
      .request = (uint64_t)(uintptr_t)&lock->request,
      .request_mask = 1,
  };
  if (kind == KIND_VIA_HOLDER) {
    rule.flags = PERPETUO_CONTENTION_VIA_HOLDER;
    rule.holder = (uint64_t)(uintptr_t)&lock->holder;
    rule.request = offsetof(struct holder, request);
  }
  return perpetuo_tracker_new_contention(&tracker, name, &rule, NULL);
}

int main(int argc, char **argv) {
  enum kind kind = KIND_INLINE;
  int arg = 1;
  if (arg < argc && strcmp(argv[arg], "--contention") == 0) {
    kind = KIND_CONTENTION;
    arg++;
  } else if (arg < argc && strcmp(argv[arg], "--contention-via-holder") == 0) {
    kind = KIND_VIA_HOLDER;
    arg++;
  }
  long n = arg < argc ? strtol(argv[arg], NULL, 10) : 256;
  double seconds = arg + 1 < argc ? strtod(argv[arg + 1], NULL) : 0;
  if (argc > arg + 2 || n < 1 || n > PERPETUO_TRACKER_MAX || seconds < 0)
    return usage();
  uint64_t **counters = calloc((size_t)n, sizeof(*counters));
  struct lock *locks = calloc((size_t)n, sizeof(*locks));
  struct holder *holders = calloc((size_t)n, sizeof(*holders));
  if (!counters || !locks || !holders)
    return 1;
  for (long i = 0; i < n; i++) {
    holders[i].id = (uint64_t)i + 1;
    locks[i].holder = &holders[i];
    int err = register_tracker(kind, i, &locks[i], &counters[i]);
    if (err) {
      fprintf(stderr, "idle_trackers: %s\n", perpetuo_strerror(err));
      return 1;
    }
  }
  printf("%d\n", (int)getpid());
  fflush(stdout);

  long rounds = seconds > 0 ? (long)(seconds * 1e9 / TICK_PERIOD_NS) : -1;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long r = 0; rounds < 0 || r < rounds; r++) {
    for (long i = 0; i < n; i++) {
      if (kind == KIND_INLINE) {
        perpetuo_counter_enter(counters[i]);
        perpetuo_counter_leave(counters[i]);
      } else {
        /* One writer: a plain increment, published for the watcher. */
        __atomic_store_n(&locks[i].handovers, locks[i].handovers + 1,
                         __ATOMIC_RELEASE);
      }
    }
    next.tv_nsec += TICK_PERIOD_NS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0)
      ;
  }
  return 0;
}
