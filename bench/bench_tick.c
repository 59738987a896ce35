/*
 * bench_tick: what one perpetuo tick costs the watched thread, next to what
 * the alternatives cost, measured side by side in the same run.
 *
 * Each measurement is a loop of N iterations on one thread; its result is
 * the median, over R runs, of ns per iteration. The runs of the different
 * loops are interleaved (run 1 of each, then run 2 of each, ...) so that the
 * machine's noise falls on all of them alike. One iteration is:
 *
 *   empty loop       nothing: the loop's own cost, the baseline
 *   tick pair        perpetuo_counter_enter() + perpetuo_counter_leave() on
 *                    a registered tracker's counter
 *   lock add pair    two atomic_fetch_add() on one counter (seq_cst: a
 *                    "lock add"), what a multi-writer counter would cost
 *   mutex pair       pthread_mutex_lock() + pthread_mutex_unlock()
 *   clock_gettime    one clock_gettime(CLOCK_MONOTONIC) (vDSO), what a
 *                    timestamping tracker would pay per tick
 *
 * Then the tick pair (and the baseline) again while a real watcher polls
 * this process every 10 ms with 256 trackers registered, to show that being
 * watched costs the ticking thread nothing measurable. The watcher is
 * $PERPETUO_WATCHER if set, else the one built next to this program in a
 * build tree (BUILDDIR/libperpetuo/watcher/perpetuo), else the installed
 * one.
 *
 * Keeping the loops honest. The counter is used as a program uses it: the
 * pointer comes from perpetuo_tracker_counter() (a call into the shared
 * library, so the compiler knows nothing about where it points), and the
 * ticks are the inline functions of <perpetuo.h>. Between enter and leave,
 * and between iterations, a program runs other code that the compiler
 * cannot see through; here an empty asm volatile("" ::: "memory") stands
 * for it. It emits no instruction, but it forces every tick to really load
 * and store the counter instead of letting the compiler fuse the N pairs
 * into one "counter += 2N" (it could: the ticks are relaxed/release atomics
 * with a single writer), and it keeps the empty loop a loop of N
 * iterations. Every loop, the baseline included, carries the same two
 * barriers per iteration, so they cancel out in the differences. The loops
 * live in noinline functions so that `valgrind --tool=callgrind` can count
 * their instructions (see bench/README.md).
 *
 * Usage: bench_tick [--runs R] [--iterations N] [--no-watcher]
 *        (defaults: 15 runs of 20000000 iterations)
 */
#include <limits.h>
#include <perpetuo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define BARRIER() __asm__ __volatile__("" ::: "memory")
#define NOINLINE __attribute__((noinline))

#define WATCHED_TRACKERS 256
#define WATCH_POLL_MS 10

static uint64_t *tick_counter;
static _Atomic uint64_t atomic_counter;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------- the loops */

static NOINLINE void loop_empty(uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    BARRIER();
    BARRIER();
  }
}

static NOINLINE void loop_tick(uint64_t n) {
  uint64_t *counter = tick_counter;
  for (uint64_t i = 0; i < n; i++) {
    perpetuo_counter_enter(counter);
    BARRIER(); /* the work the tracker brackets */
    perpetuo_counter_leave(counter);
    BARRIER(); /* the loop's own wait, or other code */
  }
}

static NOINLINE void loop_lock_add(uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    atomic_fetch_add(&atomic_counter, 1);
    BARRIER();
    atomic_fetch_add(&atomic_counter, 1);
    BARRIER();
  }
}

static NOINLINE void loop_mutex(uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    pthread_mutex_lock(&mutex);
    BARRIER();
    pthread_mutex_unlock(&mutex);
    BARRIER();
  }
}

static NOINLINE void loop_clock(uint64_t n) {
  struct timespec ts;
  for (uint64_t i = 0; i < n; i++) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    BARRIER();
    BARRIER();
  }
}

struct bench {
  const char *name;
  void (*loop)(uint64_t n);
  double *ns; /* one result per run */
  double median;
};

/* ------------------------------------------------------------ measuring */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *values, int n) {
  double *sorted = malloc((size_t)n * sizeof(*sorted));
  if (!sorted)
    abort();
  memcpy(sorted, values, (size_t)n * sizeof(*sorted));
  qsort(sorted, (size_t)n, sizeof(*sorted), cmp_double);
  double m = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  free(sorted);
  return m;
}

/* Runs every bench `runs` times, interleaved, and fills in the medians. */
static void measure(struct bench *benches, int count, int runs,
                    uint64_t iterations) {
  for (int b = 0; b < count; b++) {
    benches[b].ns = calloc((size_t)runs, sizeof(double));
    if (!benches[b].ns)
      abort();
    benches[b].loop(iterations / 10); /* warm up: caches, page faults */
  }
  for (int r = 0; r < runs; r++)
    for (int b = 0; b < count; b++) {
      double t0 = now_ns();
      benches[b].loop(iterations);
      benches[b].ns[r] = (now_ns() - t0) / (double)iterations;
    }
  for (int b = 0; b < count; b++)
    benches[b].median = median(benches[b].ns, runs);
}

static double min_of(const double *values, int n) {
  double m = values[0];
  for (int i = 1; i < n; i++)
    m = values[i] < m ? values[i] : m;
  return m;
}

/* The first bench is the baseline. */
static void print_table(const struct bench *benches, int count, int runs) {
  double base = benches[0].median;
  printf("  %-36s %9s %9s %9s %10s\n", "per iteration", "median", "min", "net",
         "x baseline");
  for (int b = 0; b < count; b++)
    printf("  %-36s %6.2f ns %6.2f ns %6.2f ns %9.2fx\n", benches[b].name,
           benches[b].median, min_of(benches[b].ns, runs),
           benches[b].median - base, benches[b].median / base);
}

/* ----------------------------------------------------------------- main */

static void usage(void) {
  fputs("Usage: bench_tick [--runs R] [--iterations N] [--no-watcher]\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  int runs = 15;
  uint64_t iterations = 20000000;
  int watcher = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
      iterations = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--no-watcher"))
      watcher = 0;
    else
      usage();
  }
  if (runs < 1 || iterations < 10)
    usage();
  /* Line by line, so that the watcher's own lines on stderr fall in place. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* 256 trackers, as a busy application might have; the first one ticks. */
  static perpetuo_tracker_t *trackers[WATCHED_TRACKERS];
  for (int i = 0; i < WATCHED_TRACKERS; i++) {
    char name[32];
    snprintf(name, sizeof(name), "bench tracker %d", i);
    int err = perpetuo_tracker_new(&trackers[i], name, NULL);
    if (err) {
      fprintf(stderr, "bench_tick: %s\n", perpetuo_strerror(err));
      return 1;
    }
  }
  tick_counter = perpetuo_tracker_counter(trackers[0]);

  struct bench benches[] = {
      {"empty loop (baseline)", loop_empty, NULL, 0},
      {"perpetuo enter+leave pair", loop_tick, NULL, 0},
      {"atomic_fetch_add pair (lock add)", loop_lock_add, NULL, 0},
      {"pthread mutex lock+unlock pair", loop_mutex, NULL, 0},
      {"clock_gettime(CLOCK_MONOTONIC) x1", loop_clock, NULL, 0},
  };
  int count = (int)(sizeof(benches) / sizeof(benches[0]));
  printf("bench_tick: %d runs of %llu iterations each, interleaved; "
         "medians over the runs\n",
         runs, (unsigned long long)iterations);
  printf("(net: median minus the baseline's; min: the fastest run)\n");
  measure(benches, count, runs, iterations);
  print_table(benches, count, runs);
  double tick_alone = benches[1].median - benches[0].median;

  if (!watcher)
    return 0;
  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  opts.poll_interval_ms = WATCH_POLL_MS;
  char path[PATH_MAX];
  opts.watcher_path = bench_watcher_path(path, sizeof(path));
  int err = perpetuo_watch_start(&opts);
  if (err) {
    fprintf(stderr,
            "bench_tick: cannot start the watcher %s (%s); set "
            "PERPETUO_WATCHER, or run with --no-watcher\n",
            opts.watcher_path ? opts.watcher_path : "(installed)",
            perpetuo_strerror(err));
    return 1;
  }
  struct bench watched[] = {
      {"empty loop (baseline)", loop_empty, NULL, 0},
      {"perpetuo enter+leave pair, watched", loop_tick, NULL, 0},
  };
  fflush(stderr);
  printf("\nthe same, while watcher pid %d polls %d trackers every %d ms:\n",
         perpetuo_watch_pid(), WATCHED_TRACKERS, WATCH_POLL_MS);
  measure(watched, 2, runs, iterations);
  print_table(watched, 2, runs);
  double tick_watched = watched[1].median - watched[0].median;
  printf("  tick pair net: %.2f ns unwatched, %.2f ns watched "
         "(difference %+.2f ns)\n",
         tick_alone, tick_watched, tick_watched - tick_alone);
  perpetuo_watch_stop();
  return 0;
}
