/* The watcher's command line. */
#ifndef PERPETUO_WATCHER_OPTIONS_H
#define PERPETUO_WATCHER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct watcher_options {
  int64_t poll_interval_ns;
  int64_t alert_interval_ns;
  int64_t traceback_suppress_ns;
  int64_t gap_ns; /* 0: derived from the poll interval */
  bool print_locals;
  bool json_mode;
  bool all_threads;        /* every thread's stack, not only the relevant one */
  bool no_stacks;          /* never stop the target */
  const char *output_path; /* NULL: output_fd */
  int output_fd;           /* default 2 */
  int control_fd;          /* -1 unless spawned by libperpetuo */
  uint64_t region;         /* 0: find it */
  pid_t pid;
  bool help;
  bool version;
};

/*
 * Parses argv. Returns 0, or -1 with one sentence in `why` (the caller says
 * it and exits with status 2). Pure: no I/O.
 */
int watcher_options_parse(struct watcher_options *o, int argc, char **argv,
                          char *why, size_t why_size);

/* Parses a duration in seconds ("0.05", "2", "1e-3") within [min, max]. */
bool parse_seconds(const char *text, double min_s, double max_s, int64_t *ns);

extern const char watcher_usage[];

#endif
