/*
 * stall_target: a configurable watched process for the end-to-end tests.
 *
 *   stall_target [OPTIONS] STEP...
 *
 * Options:
 *   --watch            start a watcher with perpetuo_watch_start() (else a
 *                      test attaches one with `perpetuo watch PID`)
 *   --json             the watcher writes JSON lines
 *   --output FILE      the watcher appends to FILE
 *   --output-fd N      the watcher writes to file descriptor N
 *   --all-threads      the watcher takes every thread's stack
 *   --alert-ms N       the watcher's alert interval (default 200)
 *   --poll-ms N        the watcher's poll interval (default 10)
 *   --suppress-ms N    the watcher's traceback suppression (default 30000)
 *   --threshold-ms N   the tracker's own threshold (default 0: the alert)
 *   --name NAME        the tracker's name (default "stall target")
 *   --thread-name NAME the main thread's name (pthread_setname_np)
 *   --detail TEXT      the tracker's published detail (its bytes as given)
 *   --ready-file F     write our pid to F once ready
 *
 * Steps, run in order:
 *   stall:SECONDS  enter, sleep, leave          STALL BEGIN ns / STALL END ns
 *   busy:SECONDS   enter/leave every ~100 us    BUSY TICKS n
 *   idle:SECONDS   sleep while idle             IDLE ns
 *   hold           enter, read a line from stdin, leave
 *                                               HOLD ns / RELEASED ns
 *   gate           read a line from stdin (idle) GATE ns
 *   wait           read stdin until EOF, or until SIGTERM (idle)
 *   watch          perpetuo_watch_start()       WATCHER pid
 *   unwatch        perpetuo_watch_stop()        UNWATCH rc
 *   watcher        perpetuo_watch_pid()         WATCHER pid
 *   closeout       stdout onto /dev/null (a reader sees EOF)  CLOSEOUT
 *
 * Every line goes to stdout, flushed; ns are CLOCK_MONOTONIC nanoseconds,
 * the clock of the watcher's monotonic_ns. It prints "PID pid" once its
 * tracker is registered, with --watch "WATCHER pid" once the watcher is
 * watching, then "READY". At the end it prints "DONE" and exits 0.
 * Exit status 2: bad usage; 3: the library failed (the line says why).
 * SIGTERM outside `wait` ends the process (status 143).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <perpetuo.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TARGET_NAME "stall_target"
#include "target_util.h"

static perpetuo_watch_options_t watch_opts;
static perpetuo_tracker_t *tracker;
static volatile sig_atomic_t in_wait, got_term;

static void on_term(int sig) {
  (void)sig;
  if (!in_wait)
    _exit(143);
  got_term = 1;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Reads stdin up to a newline (1) or EOF / error / SIGTERM (0). */
static int read_line(void) {
  char c;
  for (;;) {
    ssize_t n = read(0, &c, 1);
    if (n == 1 && c == '\n')
      return 1;
    if (n == 1)
      continue;
    if (n < 0 && errno == EINTR && !got_term)
      continue;
    return 0;
  }
}

static void step_stall(int64_t ns) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  perpetuo_counter_enter(counter);
  say("STALL BEGIN %" PRId64, mono_ns());
  sleep_ns(ns);
  int64_t end = mono_ns();
  perpetuo_counter_leave(counter);
  say("STALL END %" PRId64, end);
}

static void step_busy(int64_t ns) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  uint64_t ticks = 0;
  int64_t deadline = mono_ns() + ns;
  while (mono_ns() < deadline) {
    perpetuo_counter_enter(counter);
    int64_t until = mono_ns() + 50000; /* 50 us of "work" */
    while (mono_ns() < until)
      ;
    perpetuo_counter_leave(counter);
    sleep_ns(50000);
    ticks++;
  }
  say("BUSY TICKS %" PRIu64, ticks);
}

static void step_hold(void) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  perpetuo_counter_enter(counter);
  say("HOLD %" PRId64, mono_ns());
  read_line();
  int64_t end = mono_ns();
  perpetuo_counter_leave(counter);
  say("RELEASED %" PRId64, end);
}

static void run_step(const char *step) {
  if (!strncmp(step, "stall:", 6)) {
    step_stall(seconds_ns(step + 6));
  } else if (!strncmp(step, "busy:", 5)) {
    step_busy(seconds_ns(step + 5));
  } else if (!strncmp(step, "idle:", 5)) {
    sleep_ns(seconds_ns(step + 5));
    say("IDLE %" PRId64, mono_ns());
  } else if (!strcmp(step, "hold")) {
    step_hold();
  } else if (!strcmp(step, "gate")) {
    read_line();
    say("GATE %" PRId64, mono_ns());
  } else if (!strcmp(step, "wait")) {
    in_wait = 1;
    while (!got_term && read_line())
      ;
    in_wait = 0;
    say("WAITED%s", got_term ? " SIGTERM" : "");
  } else if (!strcmp(step, "watch")) {
    check(perpetuo_watch_start(&watch_opts), "perpetuo_watch_start");
    say("WATCHER %d", perpetuo_watch_pid());
  } else if (!strcmp(step, "unwatch")) {
    say("UNWATCH %d", perpetuo_watch_stop());
  } else if (!strcmp(step, "closeout")) {
    say("CLOSEOUT");
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, 1) < 0)
      check(-errno, "redirecting stdout");
    close(null);
  } else if (!strcmp(step, "watcher")) {
    say("WATCHER %d", perpetuo_watch_pid());
  } else {
    usage("unknown step (stall:S busy:S idle:S hold gate wait watch unwatch "
          "watcher closeout)");
  }
}

int main(int argc, char **argv) {
  perpetuo_tracker_options_t topts;
  perpetuo_tracker_options_init(&topts);
  perpetuo_watch_options_init(&watch_opts);
  const char *name = "stall target", *ready_file = NULL, *thread_name = NULL;
  const char *detail = NULL;
  int watch = 0, i;
  for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    int used = watch_option(arg, value, &watch_opts);
    if (used) {
      i += used - 1;
    } else if (!strcmp(arg, "--watch")) {
      watch = 1;
    } else if (!strcmp(arg, "--threshold-ms")) {
      topts.threshold_ms = parse_u32(value), i++;
    } else if (!strcmp(arg, "--name") && value) {
      name = value, i++;
    } else if (!strcmp(arg, "--thread-name") && value) {
      thread_name = value, i++;
    } else if (!strcmp(arg, "--detail") && value) {
      detail = value, i++;
    } else if (!strcmp(arg, "--ready-file") && value) {
      ready_file = value, i++;
    } else {
      usage("unknown option, or an option without its value");
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term; /* no SA_RESTART: SIGTERM interrupts `wait` */
  sigaction(SIGTERM, &sa, NULL);

  if (thread_name)
    check(-pthread_setname_np(pthread_self(), thread_name),
          "pthread_setname_np");
  check(perpetuo_tracker_new(&tracker, name, &topts), "perpetuo_tracker_new");
  if (detail)
    perpetuo_detail_set(perpetuo_tracker_detail(tracker), detail,
                        strlen(detail));
  say("PID %d", (int)getpid());
  if (watch) {
    check(perpetuo_watch_start(&watch_opts), "perpetuo_watch_start");
    say("WATCHER %d", perpetuo_watch_pid());
  }
  if (ready_file) {
    FILE *f = fopen(ready_file, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
      check(errno ? -errno : -EIO, "writing the ready file");
  }
  say("READY");
  for (; i < argc; i++)
    run_step(argv[i]);
  say("DONE");
  return 0;
}
