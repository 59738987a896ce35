/*
 * capture_target: a target for the native stack capture benchmark
 * (capture_pause.py). It measures nothing of the watcher by itself; it gives
 * the watcher stalls to capture, in a process of a known shape, and reports
 * what the stalling thread saw of each capture.
 *
 * Shape: N threads, each 40 calls deep in a recursive function (noinline,
 * with a volatile local read after the call, so that -O2 keeps every frame
 * and cannot turn the recursion into a loop). N - 1 of them wait at the
 * bottom on a condition variable (blocked in futex). The main thread, which
 * registers the one tracker (so its hint is the registrar), stalls at the
 * bottom of its own 40 frames M times: it spins with the tracker active for
 * --stall-ms, then leaves it and sleeps --idle-ms.
 *
 * It starts its own watcher with perpetuo_watch_start(): JSON records to
 * --output, poll 10 ms, alert interval 50 ms, no traceback suppression (every
 * stall's first record carries a capture), native stacks on unless
 * --no-stacks, all threads stopped with --all-threads. The watcher is
 * --watcher PATH, else $PERPETUO_WATCHER, else the one built next to this
 * program, else the installed one.
 *
 * While it spins, the stalling thread reads the clock every few us and
 * keeps the longest gap between two reads: the time it lost, which with
 * native stacks on includes the watcher's stop. After the last stall it
 * prints one line per stall on stdout:
 *
 *   stall K max_gap_us G at_ms T
 *
 * (T: when the gap began, from the start of the stall), then "done".
 *
 * Usage: capture_target --output PATH [--threads N] [--stalls M]
 *        [--stall-ms S] [--idle-ms I] [--all-threads] [--no-stacks]
 *        [--watcher PATH]
 *        (defaults: 1 thread, 40 stalls of 80 ms, 20 ms idle)
 */
#include <errno.h>
#include <limits.h>
#include <perpetuo.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define NOINLINE __attribute__((noinline))

#define DEPTH 40
#define THREADS_MAX 1024
#define POLL_MS 10
#define ALERT_MS 50

struct config {
  int threads;
  int stalls;
  int stall_ms;
  int idle_ms;
  int all_threads;
  int native_stacks;
  const char *output;
  const char *watcher;
};

struct stall_seen {
  int64_t max_gap_ns;
  int64_t gap_at_ns; /* from the start of the stall */
};

static struct config cfg = {1, 40, 80, 20, 0, 1, NULL, NULL};
static struct stall_seen *seen;
static uint64_t *counter;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t at_bottom = PTHREAD_COND_INITIALIZER;
static pthread_cond_t release = PTHREAD_COND_INITIALIZER;
static int waiting;
static int done;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {ns / 1000000000, ns % 1000000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Reading `here` after the call keeps the call from being a tail call. */
static NOINLINE int descend(int depth, void (*bottom)(void)) {
  volatile int here = depth;
  if (depth > 1)
    descend(depth - 1, bottom);
  else
    bottom();
  return here + 1;
}

static void wait_at_bottom(void) {
  pthread_mutex_lock(&lock);
  waiting++;
  pthread_cond_signal(&at_bottom);
  while (!done)
    pthread_cond_wait(&release, &lock);
  pthread_mutex_unlock(&lock);
}

static void *sleeper(void *arg) {
  (void)arg;
  descend(DEPTH, wait_at_bottom);
  return NULL;
}

/*
 * The clock is read once per SPIN_CHUNK iterations of plain code, so that
 * the thread is rarely inside the vDSO's clock_gettime when the watcher
 * stops it: the stack taken is then the full 40 frames of this program.
 */
#define SPIN_CHUNK 16384

static NOINLINE void spin(struct stall_seen *s, int64_t length_ns) {
  volatile unsigned work = 0;
  int64_t start = now_ns(), last = start;
  s->max_gap_ns = 0;
  s->gap_at_ns = 0;
  for (;;) {
    for (int i = 0; i < SPIN_CHUNK; i++)
      work = work + 1;
    int64_t t = now_ns();
    if (t - last > s->max_gap_ns) {
      s->max_gap_ns = t - last;
      s->gap_at_ns = last - start;
    }
    last = t;
    if (t - start >= length_ns)
      break;
  }
}

static void stall_repeatedly(void) {
  for (int i = 0; i < cfg.stalls; i++) {
    perpetuo_counter_enter(counter);
    spin(&seen[i], (int64_t)cfg.stall_ms * 1000000);
    perpetuo_counter_leave(counter);
    sleep_ns((int64_t)cfg.idle_ms * 1000000);
  }
}

static void usage(void) {
  fputs("Usage: capture_target --output PATH [--threads N] [--stalls M] "
        "[--stall-ms S]\n"
        "       [--idle-ms I] [--all-threads] [--no-stacks] "
        "[--watcher PATH]\n",
        stderr);
  exit(2);
}

static int int_arg(const char *s, int min, int max) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < min || v > max)
    usage();
  return (int)v;
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (!strcmp(a, "--threads") && has_value)
      cfg.threads = int_arg(argv[++i], 1, THREADS_MAX);
    else if (!strcmp(a, "--stalls") && has_value)
      cfg.stalls = int_arg(argv[++i], 1, 100000);
    else if (!strcmp(a, "--stall-ms") && has_value)
      cfg.stall_ms = int_arg(argv[++i], 1, 60000);
    else if (!strcmp(a, "--idle-ms") && has_value)
      cfg.idle_ms = int_arg(argv[++i], 0, 60000);
    else if (!strcmp(a, "--output") && has_value)
      cfg.output = argv[++i];
    else if (!strcmp(a, "--watcher") && has_value)
      cfg.watcher = argv[++i];
    else if (!strcmp(a, "--all-threads"))
      cfg.all_threads = 1;
    else if (!strcmp(a, "--no-stacks"))
      cfg.native_stacks = 0;
    else
      usage();
  }
  if (!cfg.output)
    usage();
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  seen = calloc((size_t)cfg.stalls, sizeof(*seen));
  pthread_t *others = calloc((size_t)cfg.threads, sizeof(*others));
  if (!seen || !others)
    return 1;

  for (int i = 0; i < cfg.threads - 1; i++) {
    int err = pthread_create(&others[i], NULL, sleeper, NULL);
    if (err) {
      fprintf(stderr, "capture_target: pthread_create: %s\n", strerror(err));
      return 1;
    }
  }
  pthread_mutex_lock(&lock);
  while (waiting < cfg.threads - 1)
    pthread_cond_wait(&at_bottom, &lock);
  pthread_mutex_unlock(&lock);

  perpetuo_tracker_t *tracker;
  int err = perpetuo_tracker_new(&tracker, "capture bench", NULL);
  if (err) {
    fprintf(stderr, "capture_target: %s\n", perpetuo_strerror(err));
    return 1;
  }
  counter = perpetuo_tracker_counter(tracker);

  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  opts.poll_interval_ms = POLL_MS;
  opts.alert_interval_ms = ALERT_MS;
  opts.traceback_suppress_ms = 0;
  opts.json_mode = 1;
  opts.output_path = cfg.output;
  opts.native_stacks = cfg.native_stacks;
  opts.all_threads = cfg.all_threads;
  char path[PATH_MAX];
  opts.watcher_path =
      cfg.watcher ? cfg.watcher : bench_watcher_path(path, sizeof(path));
  err = perpetuo_watch_start(&opts);
  if (err) {
    fprintf(stderr, "capture_target: cannot start the watcher %s (%s)\n",
            opts.watcher_path ? opts.watcher_path : "(installed)",
            perpetuo_strerror(err));
    return 1;
  }

  descend(DEPTH, stall_repeatedly);
  /* Let the watcher see the last stall end before it is stopped. */
  sleep_ns((int64_t)POLL_MS * 3 * 1000000);
  perpetuo_watch_stop();

  pthread_mutex_lock(&lock);
  done = 1;
  pthread_cond_broadcast(&release);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < cfg.threads - 1; i++)
    pthread_join(others[i], NULL);

  for (int i = 0; i < cfg.stalls; i++)
    printf("stall %d max_gap_us %.1f at_ms %.3f\n", i + 1,
           (double)seen[i].max_gap_ns / 1e3, (double)seen[i].gap_at_ns / 1e6);
  printf("done\n");
  perpetuo_tracker_free(tracker);
  free(others);
  free(seen);
  return 0;
}
