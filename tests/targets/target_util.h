/* Helpers shared by the end-to-end test targets. */
#ifndef PERPETUO_TEST_TARGET_UTIL_H
#define PERPETUO_TEST_TARGET_UTIL_H

#include <errno.h>
#include <perpetuo.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Option and error helpers, for a target that defines TARGET_NAME (its
 * program name) before including this.
 */
#ifdef TARGET_NAME

/* Bad usage: one sentence on stderr, exit status 2. */
static inline void usage(const char *why) {
  fprintf(stderr, TARGET_NAME ": %s\n", why);
  exit(2);
}

/* A library call failed: say so on stdout (the tests read it), exit 3. */
static inline void check(int err, const char *what) {
  if (err) {
    say("FAILED %s: %s", what, perpetuo_strerror(err));
    exit(3);
  }
}

/* A step's duration: seconds, 0 to 3600, as nanoseconds. */
static inline int64_t seconds_ns(const char *text) {
  char *end;
  errno = 0;
  double s = strtod(text, &end);
  if (errno || *end || !(s >= 0) || s > 3600)
    usage("a step's duration must be seconds from 0 to 3600");
  return (int64_t)(s * 1e9);
}

/* A numeric option's value. */
static inline uint32_t parse_u32(const char *text) {
  char *end;
  errno = 0;
  unsigned long v = text ? strtoul(text, &end, 10) : 0;
  if (!text || errno || *end || v > UINT32_MAX)
    usage("a numeric option needs a number");
  return (uint32_t)v;
}

/*
 * The watcher options every target takes: --json, --all-threads,
 * --output FILE, --output-fd N, --alert-ms N, --poll-ms N, --suppress-ms N.
 * Returns how many arguments it used (1 or 2), or 0 if `arg` is not one.
 */
static inline int watch_option(const char *arg, const char *value,
                               perpetuo_watch_options_t *o) {
  if (!strcmp(arg, "--json")) {
    o->json_mode = 1;
    return 1;
  }
  if (!strcmp(arg, "--all-threads")) {
    o->all_threads = 1;
    return 1;
  }
  if (!strcmp(arg, "--output") && value) {
    o->output_path = value;
    return 2;
  }
  uint32_t *ms = !strcmp(arg, "--alert-ms")      ? &o->alert_interval_ms
                 : !strcmp(arg, "--poll-ms")     ? &o->poll_interval_ms
                 : !strcmp(arg, "--suppress-ms") ? &o->traceback_suppress_ms
                                                 : NULL;
  if (ms) {
    *ms = parse_u32(value);
    return 2;
  }
  if (!strcmp(arg, "--output-fd")) {
    o->output_fd = (int)parse_u32(value);
    return 2;
  }
  return 0;
}

#endif /* TARGET_NAME */

#endif
