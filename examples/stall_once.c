/*
 * The smallest perpetuo program: register a tracker, start the watcher,
 * stall once for 0.6 s, and exit. The watcher reports the stall while it
 * happens, then its end.
 *
 *   cc stall_once.c $(pkg-config --cflags --libs perpetuo)
 */
#include <perpetuo.h>
#include <stdio.h>
#include <time.h>

static void block_for(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static void handle_request(perpetuo_tracker_t *tracker, double work) {
  uint64_t *counter = perpetuo_tracker_counter(tracker);
  perpetuo_counter_enter(counter);
  block_for(work); /* the stall: active, and not ticking */
  perpetuo_counter_leave(counter);
}

int main(void) {
  perpetuo_tracker_t *tracker;
  int err = perpetuo_tracker_new(&tracker, "request handler", NULL);
  if (err) {
    fprintf(stderr, "stall_once: %s\n", perpetuo_strerror(err));
    return 1;
  }
  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  opts.alert_interval_ms = 200;
  err = perpetuo_watch_start(&opts);
  if (err) {
    fprintf(stderr, "stall_once: cannot start the watcher: %s\n",
            perpetuo_strerror(err));
    return 1;
  }
  for (int i = 0; i < 20; i++)
    handle_request(tracker, 0.005); /* quick: no stall */
  handle_request(tracker, 0.6);     /* slow: a stall */
  block_for(0.1);                   /* let the watcher see it end */
  perpetuo_watch_stop();
  perpetuo_tracker_free(tracker);
  return 0;
}
