/*
 * churn_target: a watched process that stalls again and again while threads
 * come and go, for the fault-injection tests of stack captures.
 *
 *   churn_target [OPTIONS]
 *
 * Options:
 *   --watch            start a watcher with perpetuo_watch_start() (else a
 *                      test attaches one with `perpetuo watch PID`)
 *   --json             the watcher writes JSON lines
 *   --all-threads      the watcher stops and reports every thread
 *   --output FILE      the watcher appends to FILE
 *   --output-fd N      the watcher writes to descriptor N
 *   --alert-ms N       the watcher's alert interval (default 200)
 *   --poll-ms N        the watcher's poll interval (default 50)
 *   --suppress-ms N    the watcher's traceback suppression (default 0)
 *   --stall-ms N       each stall's length (default 150)
 *   --gap-ms N         idle time between stalls (default 50)
 *   --kind K           how a stall passes its time: sleep (default), spin,
 *                      mixed (spin and sleep in turn), or vfork (blocked in
 *                      vfork() while the child sleeps: uninterruptible)
 *   --stalls N         stop after N stalls (default 0: until SIGTERM)
 *   --churn N          N threads that each start a short-lived thread, wait
 *                      for it to end, and start another, without end
 *   --life-us N        how long a short-lived thread lives (default 1000)
 *   --blockers N       N threads that spend their time blocked in vfork()
 *                      (uninterruptible), each child sleeping --block-ms
 *   --block-ms N       (default 100)
 *   --beat-ms N        a heartbeat thread prints every N ms (default 0: no)
 *
 * The main thread registers the tracker and stalls; it prints "PID pid",
 * with --watch "WATCHER pid", then "READY", then for each stall
 * "STALL n BEGIN ns" and "STALL n END ns". The heartbeat thread prints
 * "BEAT n ns CHURNED m" (m: short-lived threads ended so far). SIGTERM ends
 * the run after the current stall or gap: "DONE n", exit 0. Lines go to
 * stdout, flushed; ns are CLOCK_MONOTONIC nanoseconds.
 * Exit status 2: bad usage; 3: the library or the system failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <perpetuo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TARGET_NAME "churn_target"
#include "target_util.h"

enum stall_kind { KIND_SLEEP, KIND_SPIN, KIND_MIXED, KIND_VFORK };

static volatile sig_atomic_t got_term;
static atomic_bool stopping;
static atomic_uint_fast64_t churned;
static int64_t life_ns = 1000000;

/* Lines come from several threads: each must reach stdout whole. */
#define SAY(...)                                                               \
  do {                                                                         \
    flockfile(stdout);                                                         \
    say(__VA_ARGS__);                                                          \
    funlockfile(stdout);                                                       \
  } while (0)

static void on_term(int sig) {
  (void)sig;
  got_term = 1;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void spin_ns(int64_t ns) {
  int64_t until = mono_ns() + ns;
  while (mono_ns() < until)
    ;
}

/*
 * The parent of vfork() waits for its child killably, which /proc shows as
 * 'D': a ptrace interrupt cannot stop it until the child exits.
 */
static __attribute__((noinline)) void stall_in_vfork(int64_t ns) {
  pid_t child = vfork();
  if (child == 0) {
    sleep_ns(ns);
    _exit(0);
  }
  if (child < 0)
    check(-errno, "vfork");
  while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
    ;
}

static void *short_life(void *arg) {
  (void)arg;
  sleep_ns(life_ns);
  return NULL;
}

static void *churner(void *arg) {
  (void)arg;
  while (!atomic_load(&stopping)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_life, NULL) != 0) {
      sleep_ns(1000000); /* out of threads for now: let some end */
      continue;
    }
    pthread_join(t, NULL);
    atomic_fetch_add(&churned, 1);
  }
  return NULL;
}

static void *blocker(void *arg) {
  int64_t ns = *(const int64_t *)arg;
  while (!atomic_load(&stopping))
    stall_in_vfork(ns);
  return NULL;
}

static void *heartbeat(void *arg) {
  int64_t period = *(const int64_t *)arg;
  for (uint64_t n = 1; !atomic_load(&stopping); n++) {
    sleep_ns(period);
    SAY("BEAT %" PRIu64 " %" PRId64 " CHURNED %" PRIu64, n, mono_ns(),
        (uint64_t)atomic_load(&churned));
  }
  return NULL;
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
  check(-pthread_create(t, NULL, fn, arg), "pthread_create");
}

int main(int argc, char **argv) {
  perpetuo_watch_options_t wopts;
  perpetuo_watch_options_init(&wopts);
  wopts.traceback_suppress_ms = 0; /* every stall gets its stacks */
  int watch = 0;
  enum stall_kind kind = KIND_SLEEP;
  uint32_t stall_ms = 150, gap_ms = 50, stalls = 0, churn = 0, beat_ms = 0;
  uint32_t blockers = 0, block_ms = 100;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    int used = watch_option(arg, value, &wopts);
    if (used) {
      i += used - 1;
    } else if (!strcmp(arg, "--watch")) {
      watch = 1;
    } else if (!strcmp(arg, "--stall-ms")) {
      stall_ms = parse_u32(value), i++;
    } else if (!strcmp(arg, "--gap-ms")) {
      gap_ms = parse_u32(value), i++;
    } else if (!strcmp(arg, "--stalls")) {
      stalls = parse_u32(value), i++;
    } else if (!strcmp(arg, "--churn")) {
      churn = parse_u32(value), i++;
    } else if (!strcmp(arg, "--life-us")) {
      life_ns = (int64_t)parse_u32(value) * 1000, i++;
    } else if (!strcmp(arg, "--blockers")) {
      blockers = parse_u32(value), i++;
    } else if (!strcmp(arg, "--block-ms")) {
      block_ms = parse_u32(value), i++;
    } else if (!strcmp(arg, "--beat-ms")) {
      beat_ms = parse_u32(value), i++;
    } else if (!strcmp(arg, "--kind") && value) {
      i++;
      if (!strcmp(value, "sleep"))
        kind = KIND_SLEEP;
      else if (!strcmp(value, "spin"))
        kind = KIND_SPIN;
      else if (!strcmp(value, "mixed"))
        kind = KIND_MIXED;
      else if (!strcmp(value, "vfork"))
        kind = KIND_VFORK;
      else
        usage("--kind is sleep, spin, mixed or vfork");
    } else {
      usage("unknown option, or an option without its value");
    }
  }
  if (churn > 256 || blockers > 256)
    usage("--churn and --blockers are at most 256");
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);

  perpetuo_tracker_t *tracker;
  check(perpetuo_tracker_new(&tracker, "churn target", NULL),
        "perpetuo_tracker_new");
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  SAY("PID %d", (int)getpid());
  /* The watcher is started first, so its spawn never races a churn. */
  if (watch) {
    check(perpetuo_watch_start(&wopts), "perpetuo_watch_start");
    SAY("WATCHER %d", perpetuo_watch_pid());
  }
  pthread_t churners[256], blocking[256], beater;
  for (uint32_t k = 0; k < churn; k++)
    start_thread(&churners[k], churner, NULL);
  int64_t block_ns = (int64_t)block_ms * 1000000;
  for (uint32_t k = 0; k < blockers; k++)
    start_thread(&blocking[k], blocker, &block_ns);
  int64_t beat_ns = (int64_t)beat_ms * 1000000;
  if (beat_ms)
    start_thread(&beater, heartbeat, &beat_ns);
  SAY("READY");

  uint32_t n;
  for (n = 0; !got_term && (!stalls || n < stalls); n++) {
    int64_t ns = (int64_t)stall_ms * 1000000;
    perpetuo_counter_enter(counter);
    SAY("STALL %" PRIu32 " BEGIN %" PRId64, n + 1, mono_ns());
    if (kind == KIND_VFORK)
      stall_in_vfork(ns);
    else if (kind == KIND_SPIN || (kind == KIND_MIXED && n % 2))
      spin_ns(ns);
    else
      sleep_ns(ns);
    int64_t end = mono_ns();
    perpetuo_counter_leave(counter);
    SAY("STALL %" PRIu32 " END %" PRId64, n + 1, end);
    if (!got_term)
      sleep_ns((int64_t)gap_ms * 1000000);
  }
  atomic_store(&stopping, true);
  for (uint32_t k = 0; k < churn; k++)
    pthread_join(churners[k], NULL);
  for (uint32_t k = 0; k < blockers; k++)
    pthread_join(blocking[k], NULL);
  if (beat_ms)
    pthread_join(beater, NULL);
  SAY("DONE %" PRIu32, n);
  return 0;
}
