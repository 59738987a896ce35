/* Helpers shared by the benchmark programs. */
#ifndef PERPETUO_BENCH_UTIL_H
#define PERPETUO_BENCH_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The watcher to run: $PERPETUO_WATCHER if set; else, when this binary sits
 * in a build tree (BUILDDIR/bench/NAME), the watcher built next to it,
 * BUILDDIR/libperpetuo/watcher/perpetuo; else NULL: the installed one.
 */
static inline const char *bench_watcher_path(char *buf, size_t size) {
  const char *env = getenv("PERPETUO_WATCHER");
  if (env && env[0])
    return env;
  ssize_t len = readlink("/proc/self/exe", buf, size - 1);
  if (len <= 0)
    return NULL;
  buf[len] = '\0';
  char *slash = strrchr(buf, '/');
  if (!slash)
    return NULL;
  *slash = '\0'; /* BUILDDIR/bench */
  static const char rel[] = "/../libperpetuo/watcher/perpetuo";
  if ((size_t)(slash - buf) + sizeof(rel) > size)
    return NULL;
  memcpy(slash, rel, sizeof(rel));
  return access(buf, X_OK) == 0 ? buf : NULL;
}

#endif
