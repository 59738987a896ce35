/* Helpers shared by the end-to-end test targets. */
#ifndef PERPETUO_TEST_TARGET_UTIL_H
#define PERPETUO_TEST_TARGET_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns: the clock of the watcher's monotonic_ns. */
static inline int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One line on stdout, flushed at once: the tests read it as it comes. */
static inline void say(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

#endif
