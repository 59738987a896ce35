/*
 * Stall detection: a pure state machine. Each poll hands in what it saw of
 * every slot and the time; out come the events of the stalls' lives. No I/O,
 * no clock of its own, so it is unit-tested with a fake clock.
 *
 * A stall is a counter seen odd (active) and unchanged for at least its
 * threshold. Its life is one `stall_id`: BEGAN once (length so far), then
 * CONTINUES at 2x, 4x, 8x ... the threshold (never one record per poll),
 * then ENDED with its total length.
 *
 * Time the watcher could not see is not blamed on the target: when a poll
 * comes much later than the one before it (the watcher was starved or the
 * machine suspended) or the caller says the target was stopped by someone
 * else, a counter not already stalled starts its clock afresh.
 */
#ifndef PERPETUO_WATCHER_DETECT_H
#define PERPETUO_WATCHER_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct detect_config {
  int64_t default_threshold_ns;  /* for slots whose own threshold is 0 */
  int64_t traceback_suppress_ns; /* at most one traceback per this long */
  int64_t gap_ns; /* a poll this much later than the last one is blind */
};

/* What one poll saw of one slot. */
struct detect_sample {
  bool live;           /* a live tracker could be read in this slot */
  uint64_t generation; /* changes when the slot is reused */
  uint64_t counter;
  int64_t threshold_ns; /* 0: the default */
};

enum detect_event_kind { DETECT_BEGAN, DETECT_CONTINUES, DETECT_ENDED };

enum detect_end_reason {
  DETECT_END_PROGRESS, /* the counter moved */
  DETECT_END_RELEASED, /* the tracker went away */
  DETECT_END_UNWATCHED /* the watcher stopped (the target exited, or it was
                          told to stop) while the stall was still going */
};

struct detect_event {
  enum detect_event_kind kind;
  uint32_t slot;
  uint64_t generation;
  uint64_t stall_id;
  int64_t length_ns; /* so far (BEGAN, CONTINUES) or in total (ENDED) */
  int64_t threshold_ns;
  bool traceback;    /* BEGAN: take the stacks now */
  bool rate_limited; /* BEGAN: stacks suppressed by the rate limit */
  enum detect_end_reason end_reason; /* ENDED */
};

struct detect_tracker {
  bool known;
  uint64_t generation;
  uint64_t counter;
  int64_t since_ns;     /* first poll that saw this counter value */
  int64_t before_ns;    /* the poll before that one (== since_ns if none) */
  int64_t last_seen_ns; /* last poll that read this slot */
  uint64_t stall_id;    /* 0: not stalled */
  int64_t threshold_ns;
  int64_t next_report_ns; /* length at which CONTINUES is due */
};

struct detector {
  struct detect_config config;
  size_t slot_count;
  size_t known_limit; /* trackers[known_limit..] are all unknown */
  struct detect_tracker *trackers;
  uint64_t last_stall_id;
  bool polled;
  int64_t last_poll_ns;
  bool traceback_taken;
  int64_t last_traceback_ns;
};

/* 0, or -ENOMEM / -EINVAL. */
int detector_init(struct detector *d, const struct detect_config *config,
                  size_t slot_count);
void detector_free(struct detector *d);

/*
 * One poll at `now_ns` (monotonic): samples[i] for slots 0..n-1 (slots past n
 * count as not live). `target_stopped`: the target was seen stopped or
 * traced by someone else. Writes at most max(n, slot_count) events to
 * `events` and returns how many.
 */
size_t detector_poll(struct detector *d, int64_t now_ns,
                     const struct detect_sample *samples, size_t n,
                     bool target_stopped, struct detect_event *events);

/* ENDED (UNWATCHED) for every stall still going, when the watcher stops. */
size_t detector_finish(struct detector *d, struct detect_event *events);

#endif
