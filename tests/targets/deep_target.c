/*
 * deep_target: a watched process with 16 threads whose stall sits at the
 * bottom of a deep, known call chain, for the tests of native stacks.
 *
 *   deep_target [OPTIONS] STEP...
 *
 * Threads: the main thread (it runs the steps), the "staller" worker and 14
 * "idler" workers that block in pthread_cond_wait() for good. The staller
 * stalls in descend(40) -> descend(39) -> ... -> descend(1) -> stall_here().
 *
 * Options:
 *   --hint HINT        which thread the tracker names:
 *                      registrar (default): the staller registers it itself;
 *                      native / pthread: the main thread registers it, naming
 *                      the staller by its native tid / its pthread_t;
 *                      none: the main thread registers it, naming no thread
 *   --watch            start a watcher with perpetuo_watch_start() (else a
 *                      test attaches one with `perpetuo watch PID`)
 *   --json             the watcher writes JSON lines
 *   --all-threads      the watcher takes every thread's stack
 *   --output FILE      the watcher appends to FILE
 *   --output-fd N      the watcher writes to this fd (default: stderr)
 *   --alert-ms N       the watcher's alert interval
 *   --poll-ms N        the watcher's poll interval
 *   --suppress-ms N    the watcher's traceback suppression
 *                      (each by default the library's default)
 *   --threshold-ms N   the tracker's own threshold (default 0: the alert)
 *
 * Steps, run in order:
 *   spin:SECONDS   the staller goes active, stall_here() spins on the CPU
 *                  until the main thread says stop, then it goes idle
 *                                            STALL BEGIN ns / STALL END ns
 *   sleep:SECONDS  the same, stall_here() sleeping in one nanosleep()
 *   owner:SECONDS  the main thread (the tracker's owner: any --hint but
 *                  registrar) goes active, the staller descends and sleeps in
 *                  stall_here() in short naps; after SECONDS the main thread
 *                  goes idle, then lets the staller come back
 *                                            STALL BEGIN ns / STALL END ns
 *   idle:SECONDS   the main thread sleeps   IDLE ns
 *   gate           read a line from stdin   GATE ns
 *
 * Before the steps it prints "PID pid", "MAIN TID tid", "STALLER TID tid",
 * "STALLER PTHREAD id" (decimal), one "IDLER TID tid" per idler, with
 * --watch "WATCHER pid", then "READY"; "DONE" at the end, exit status 0.
 * Every line goes to stdout, flushed; ns are CLOCK_MONOTONIC nanoseconds.
 * Exit status 2: bad usage; 3: the library failed (the line says why).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <perpetuo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TARGET_NAME "deep_target"
#include "target_util.h"

#define DEPTH 40
#define IDLERS 14

/* A frame of its own under its own name, whatever the -O level: neither
 * inlined nor cloned (GCC's descend.isra.0 would be another name). */
#if defined(__GNUC__) && !defined(__clang__)
#define OWN_FRAME __attribute__((noinline, noclone))
#else
#define OWN_FRAME __attribute__((noinline))
#endif

enum how { HOW_NONE, HOW_SPIN, HOW_SLEEP, HOW_NAP };

static perpetuo_watch_options_t watch_opts;
static perpetuo_tracker_options_t tracker_opts;
static perpetuo_tracker_t *tracker;
static int registrar = 1; /* the staller registers the tracker itself */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int started;      /* workers up (and the tracker registered) */
static enum how command; /* the staller's next stall; HOW_NONE: none */
static int64_t command_ns;
static int finished; /* stalls the staller has come back from */
static pid_t staller_tid, idler_tids[IDLERS];
static volatile int stop; /* the main thread ends a spin or nap */
static volatile int sink; /* keeps the recursion's work observable */

static pid_t thread_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/*
 * The bottom of the stack. Spinning calls nothing at all, not even the
 * clock, and sleeping calls nanosleep() from here, so that this function is
 * the innermost frame of our own code, whatever the compiler inlines.
 */
OWN_FRAME static void stall_here(enum how how, int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  if (how == HOW_SPIN) {
    while (!stop)
      __asm__ volatile("" ::: "memory");
  } else if (how == HOW_SLEEP) {
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  } else {
    while (!stop) {
      ts = (struct timespec){0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  __asm__ volatile("" ::: "memory");
}

/*
 * One frame per level: `here` is read after the call returns, so the call
 * can be neither a tail call nor folded into a loop, whatever the -O level.
 */
OWN_FRAME static void descend(int depth, enum how how, int64_t ns) {
  volatile int here = depth;
  if (depth > 1)
    descend(depth - 1, how, ns);
  else
    stall_here(how, ns);
  sink = sink + here;
}

static void *idler(void *arg) {
  pid_t tid = thread_tid();
  pthread_mutex_lock(&lock);
  idler_tids[(intptr_t)arg] = tid;
  started++;
  pthread_cond_broadcast(&changed);
  for (;;)
    pthread_cond_wait(&never, &lock);
  return NULL;
}

static void *staller(void *arg) {
  (void)arg;
  pid_t tid = thread_tid();
  if (registrar)
    check(perpetuo_tracker_new(&tracker, "deep target", &tracker_opts),
          "perpetuo_tracker_new");
  pthread_mutex_lock(&lock);
  staller_tid = tid;
  started++;
  pthread_cond_broadcast(&changed);
  for (;;) {
    while (command == HOW_NONE)
      pthread_cond_wait(&changed, &lock);
    enum how how = command;
    int64_t ns = command_ns;
    command = HOW_NONE;
    pthread_mutex_unlock(&lock);
    /* In a nap the tracker is the main thread's to tick. */
    uint64_t *counter =
        how == HOW_NAP ? NULL : perpetuo_tracker_counter(tracker);
    if (counter) {
      perpetuo_counter_enter(counter);
      say("STALL BEGIN %" PRId64, mono_ns());
    }
    descend(DEPTH, how, ns);
    if (counter) {
      int64_t end = mono_ns();
      perpetuo_counter_leave(counter);
      say("STALL END %" PRId64, end);
    }
    pthread_mutex_lock(&lock);
    finished++;
    pthread_cond_broadcast(&changed);
  }
  return NULL;
}

/* Hands the staller a stall, ends it after `ns` unless the staller sleeps
 * that long itself, and waits for the staller to come back. */
static void staller_run(enum how how, int64_t ns) {
  pthread_mutex_lock(&lock);
  int target = finished + 1;
  stop = 0;
  command = how;
  command_ns = ns;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
  if (how != HOW_SLEEP) {
    sleep_ns(ns);
    if (how == HOW_NAP) {
      int64_t end = mono_ns();
      perpetuo_counter_leave(perpetuo_tracker_counter(tracker));
      say("STALL END %" PRId64, end);
    }
    stop = 1;
  }
  pthread_mutex_lock(&lock);
  while (finished < target)
    pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
}

static void read_line(void) {
  char c;
  while (read(0, &c, 1) == 1 && c != '\n')
    ;
}

static void run_step(const char *step) {
  if (!strncmp(step, "spin:", 5)) {
    staller_run(HOW_SPIN, seconds_ns(step + 5));
  } else if (!strncmp(step, "sleep:", 6)) {
    staller_run(HOW_SLEEP, seconds_ns(step + 6));
  } else if (!strncmp(step, "owner:", 6)) {
    if (registrar)
      usage("owner: needs a --hint other than registrar");
    int64_t ns = seconds_ns(step + 6);
    perpetuo_counter_enter(perpetuo_tracker_counter(tracker));
    say("STALL BEGIN %" PRId64, mono_ns());
    staller_run(HOW_NAP, ns);
  } else if (!strncmp(step, "idle:", 5)) {
    sleep_ns(seconds_ns(step + 5));
    say("IDLE %" PRId64, mono_ns());
  } else if (!strcmp(step, "gate")) {
    read_line();
    say("GATE %" PRId64, mono_ns());
  } else {
    usage("unknown step (spin:S sleep:S owner:S idle:S gate)");
  }
}

static void start_thread(pthread_t *thread, void *(*fn)(void *), void *arg,
                         const char *name) {
  check(-pthread_create(thread, NULL, fn, arg), "pthread_create");
  check(-pthread_setname_np(*thread, name), "pthread_setname_np");
}

int main(int argc, char **argv) {
  perpetuo_tracker_options_init(&tracker_opts);
  perpetuo_watch_options_init(&watch_opts);
  const char *hint = "registrar";
  int watch = 0, i;
  for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    int used = watch_option(arg, value, &watch_opts);
    if (used) {
      i += used - 1;
    } else if (!strcmp(arg, "--hint") && value) {
      hint = value, i++;
    } else if (!strcmp(arg, "--watch")) {
      watch = 1;
    } else if (!strcmp(arg, "--threshold-ms")) {
      tracker_opts.threshold_ms = parse_u32(value), i++;
    } else {
      usage("unknown option, or an option without its value");
    }
  }
  if (!strcmp(hint, "registrar"))
    tracker_opts.thread_hint = PERPETUO_THREAD_REGISTRAR;
  else if (!strcmp(hint, "native"))
    tracker_opts.thread_hint = PERPETUO_THREAD_NATIVE;
  else if (!strcmp(hint, "pthread"))
    tracker_opts.thread_hint = PERPETUO_THREAD_PTHREAD;
  else if (!strcmp(hint, "none"))
    tracker_opts.thread_hint = PERPETUO_THREAD_NONE;
  else
    usage("--hint is registrar, native, pthread or none");
  registrar = tracker_opts.thread_hint == PERPETUO_THREAD_REGISTRAR;

  /* The staller in the middle of the idlers: the tests find it among all. */
  pthread_t idlers[IDLERS], stall_thread;
  for (int k = 0; k < IDLERS; k++) {
    char name[16];
    snprintf(name, sizeof(name), "idler%d", k);
    start_thread(&idlers[k], idler, (void *)(intptr_t)k, name);
    if (k == IDLERS / 2)
      start_thread(&stall_thread, staller, NULL, "staller");
  }
  pthread_mutex_lock(&lock);
  while (started < IDLERS + 1)
    pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);

  if (!registrar) {
    tracker_opts.thread_id = tracker_opts.thread_hint == PERPETUO_THREAD_NATIVE
                                 ? (uint64_t)staller_tid
                                 : (uint64_t)stall_thread;
    check(perpetuo_tracker_new(&tracker, "deep target", &tracker_opts),
          "perpetuo_tracker_new");
  }
  say("PID %d", (int)getpid());
  say("MAIN TID %d", (int)thread_tid());
  say("STALLER TID %d", (int)staller_tid);
  say("STALLER PTHREAD %" PRIu64, (uint64_t)stall_thread);
  for (int k = 0; k < IDLERS; k++)
    say("IDLER TID %d", (int)idler_tids[k]);
  if (watch) {
    check(perpetuo_watch_start(&watch_opts), "perpetuo_watch_start");
    say("WATCHER %d", perpetuo_watch_pid());
  }
  say("READY");
  for (; i < argc; i++)
    run_step(argv[i]);
  say("DONE");
  return 0;
}
