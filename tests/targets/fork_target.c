/*
 * fork_target: a watched process that forks, for the end-to-end tests.
 *
 *   fork_target [--json] [--stall-s SECONDS]
 *
 * The parent registers a tracker and starts a watcher, then forks. The child
 * (which inherits the tracker, but not the watcher) starts its own watcher
 * and stalls; the parent waits for the child to exit, then stalls too. So
 * there is one stall per process, one after the other, and each watcher's
 * reports must name its own process.
 *
 * stdout, one flushed line each (ns: CLOCK_MONOTONIC nanoseconds):
 *   PARENT PID p / PARENT WATCHER w
 *   CHILD PID c / CHILD INHERITED WATCHER 0 / CHILD WATCHER w2
 *   CHILD STALL BEGIN ns / CHILD STALL END ns
 *   PARENT STALL BEGIN ns / PARENT STALL END ns / DONE
 * Exit status 0, or 3 if the library failed (a FAILED line says why).
 */
#include <errno.h>
#include <inttypes.h>
#include <perpetuo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target_util.h"

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void check(int err, const char *who, const char *what) {
  if (err) {
    say("%s FAILED %s: %s", who, what, perpetuo_strerror(err));
    exit(3);
  }
}

static void stall(perpetuo_tracker_t *tracker, const char *who, int64_t ns) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  perpetuo_counter_enter(counter);
  say("%s STALL BEGIN %" PRId64, who, mono_ns());
  sleep_ns(ns);
  int64_t end = mono_ns();
  perpetuo_counter_leave(counter);
  say("%s STALL END %" PRId64, who, end);
  sleep_ns(100000000); /* idle: let the watcher see the stall end */
}

int main(int argc, char **argv) {
  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  int64_t stall_ns = 500000000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      opts.json_mode = 1;
    } else if (!strcmp(argv[i], "--stall-s") && i + 1 < argc) {
      stall_ns = (int64_t)(atof(argv[++i]) * 1e9);
    } else {
      fprintf(stderr, "usage: fork_target [--json] [--stall-s SECONDS]\n");
      return 2;
    }
  }
  perpetuo_tracker_t *tracker;
  check(perpetuo_tracker_new(&tracker, "fork loop", NULL), "PARENT",
        "perpetuo_tracker_new");
  check(perpetuo_watch_start(&opts), "PARENT", "perpetuo_watch_start");
  say("PARENT PID %d", (int)getpid());
  say("PARENT WATCHER %d", perpetuo_watch_pid());

  pid_t child = fork();
  if (child < 0) {
    say("PARENT FAILED fork: %s", strerror(errno));
    return 3;
  }
  if (child == 0) {
    say("CHILD PID %d", (int)getpid());
    say("CHILD INHERITED WATCHER %d", perpetuo_watch_pid());
    check(perpetuo_watch_start(&opts), "CHILD", "perpetuo_watch_start");
    say("CHILD WATCHER %d", perpetuo_watch_pid());
    stall(tracker, "CHILD", stall_ns);
    return 0;
  }
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR)
    ;
  stall(tracker, "PARENT", stall_ns);
  say("DONE");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}
