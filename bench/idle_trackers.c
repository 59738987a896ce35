/*
 * idle_trackers: a target for the watcher CPU benchmark (watcher_cpu.sh).
 *
 * Registers N trackers (default 256), prints its pid on stdout, alone on a
 * line, once they are all registered, and then idles: every 100 ms it
 * ticks every tracker once (enter, then leave at once), so the watcher sees
 * counters that move but never a stall. It does not start a watcher:
 * attach one with `perpetuo watch PID`. It runs until killed, or for
 * SECONDS if given.
 *
 * Usage: idle_trackers [N [SECONDS]]   (N: 1 to 1024)
 */
#include <perpetuo.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define TICK_PERIOD_NS 100000000L /* 100 ms */

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
  double seconds = argc > 2 ? strtod(argv[2], NULL) : 0;
  if (argc > 3 || n < 1 || n > PERPETUO_TRACKER_MAX || seconds < 0) {
    fprintf(stderr, "Usage: idle_trackers [N [SECONDS]]   (N: 1 to %d)\n",
            PERPETUO_TRACKER_MAX);
    return 2;
  }
  uint64_t **counters = calloc((size_t)n, sizeof(*counters));
  if (!counters)
    return 1;
  for (long i = 0; i < n; i++) {
    char name[32];
    perpetuo_tracker_t *tracker;
    snprintf(name, sizeof(name), "idle tracker %ld", i);
    int err = perpetuo_tracker_new(&tracker, name, NULL);
    if (err) {
      fprintf(stderr, "idle_trackers: %s\n", perpetuo_strerror(err));
      return 1;
    }
    counters[i] = perpetuo_tracker_counter(tracker);
  }
  printf("%d\n", (int)getpid());
  fflush(stdout);

  long rounds = seconds > 0 ? (long)(seconds * 1e9 / TICK_PERIOD_NS) : -1;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long r = 0; rounds < 0 || r < rounds; r++) {
    for (long i = 0; i < n; i++) {
      perpetuo_counter_enter(counters[i]);
      perpetuo_counter_leave(counters[i]);
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
