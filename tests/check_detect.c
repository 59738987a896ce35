/*
 * The stall detector, driven by a fake clock: every test plays a scripted
 * timeline of counter values and checks the exact events that come out.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "watcher/detect.h"

#define NS INT64_C(1)
#define MS INT64_C(1000000)
#define S INT64_C(1000000000)

#define SLOTS 4
#define LOG_MAX 4096

/* One poll's worth of events, and every event so far with its poll time. */
static struct detector det;
static struct detect_sample samples[SLOTS];
static size_t sample_count;
static int64_t now;
static struct detect_event last[SLOTS + 1];
static size_t last_count;
static struct detect_event history[LOG_MAX];
static int64_t history_at[LOG_MAX];
static size_t history_count;

static void reset_state(void) {
  memset(&det, 0, sizeof(det));
  memset(samples, 0, sizeof(samples));
  for (size_t i = 0; i < SLOTS; i++) {
    samples[i].live = true;
    samples[i].generation = 1;
  }
  sample_count = SLOTS;
  now = 0;
  last_count = history_count = 0;
}

static void start_with(int64_t threshold, int64_t suppress, int64_t gap) {
  reset_state();
  struct detect_config config = {
      .default_threshold_ns = threshold,
      .traceback_suppress_ns = suppress,
      .gap_ns = gap,
  };
  ck_assert_int_eq(detector_init(&det, &config, SLOTS), 0);
}

/* The defaults of the watcher: 0.2 s alert, 30 s suppress, 100 ms gap. */
static void start_default(void) { start_with(200 * MS, 30 * S, 100 * MS); }

static void teardown(void) { detector_free(&det); }

static size_t poll_full(int64_t t, bool stopped) {
  /* A sentinel past the documented bound catches an overrun. */
  memset(last, 0xA5, sizeof(last));
  now = t;
  last_count = detector_poll(&det, t, samples, sample_count, stopped, last);
  /* Plain ifs on this path: every passing ck_assert costs a write. */
  if (last_count > SLOTS)
    ck_abort_msg("%zu events from %d slots", last_count, SLOTS);
  const unsigned char *tail = (const unsigned char *)&last[SLOTS];
  for (size_t i = 0; i < sizeof(last[SLOTS]); i++)
    if (tail[i] != 0xA5)
      ck_abort_msg("events written past the bound");
  for (size_t i = 0; i < last_count; i++) {
    if (history_count >= LOG_MAX)
      ck_abort_msg("event log full");
    history_at[history_count] = t;
    history[history_count++] = last[i];
  }
  return last_count;
}

static size_t poll_at(int64_t t) { return poll_full(t, false); }

/* Polls every `step` after the current time up to `end`; events in all. */
static size_t poll_until(int64_t end, int64_t step) {
  size_t before = history_count;
  for (int64_t t = now + step; t <= end; t += step)
    poll_at(t);
  return history_count - before;
}

static const struct detect_event *only_event(void) {
  ck_assert_uint_eq(last_count, 1);
  return &last[0];
}

static void check_event(const struct detect_event *e,
                        enum detect_event_kind kind, uint32_t slot,
                        uint64_t stall_id, int64_t length_ns) {
  ck_assert_int_eq(e->kind, kind);
  ck_assert_uint_eq(e->slot, slot);
  ck_assert_uint_eq(e->stall_id, stall_id);
  ck_assert_int_eq(e->length_ns, length_ns);
}

/* ------------------------------------------------------------------ init */

START_TEST(test_init_rejects_bad_config) {
  const struct detect_config bad[] = {
      {.default_threshold_ns = 0, .traceback_suppress_ns = 0, .gap_ns = 1},
      {.default_threshold_ns = -1, .traceback_suppress_ns = 0, .gap_ns = 1},
      {.default_threshold_ns = INT64_MIN,
       .traceback_suppress_ns = 0,
       .gap_ns = 1},
      {.default_threshold_ns = 1, .traceback_suppress_ns = -1, .gap_ns = 1},
      {.default_threshold_ns = 1, .traceback_suppress_ns = 0, .gap_ns = 0},
      {.default_threshold_ns = 1, .traceback_suppress_ns = 0, .gap_ns = -5},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct detector d, untouched;
    memset(&d, 0x5A, sizeof(d));
    memcpy(&untouched, &d, sizeof(d));
    ck_assert_int_eq(detector_init(&d, &bad[i], SLOTS), -EINVAL);
    /* A failed constructor must not scribble on its output. */
    ck_assert_mem_eq(&d, &untouched, sizeof(d));
  }
}
END_TEST

START_TEST(test_init_accepts_edges) {
  struct detect_config config = {
      .default_threshold_ns = 1, .traceback_suppress_ns = 0, .gap_ns = 1};
  struct detector d;
  ck_assert_int_eq(detector_init(&d, &config, SLOTS), 0);
  ck_assert_int_eq(d.config.default_threshold_ns, 1);
  ck_assert_uint_eq(d.slot_count, SLOTS);
  detector_free(&d);
  /* Freeing twice is harmless, like free(NULL). */
  detector_free(&d);

  /* No slots at all: polls and finishes are empty, not crashes. */
  ck_assert_int_eq(detector_init(&d, &config, 0), 0);
  struct detect_sample s = {.live = true, .counter = 1};
  struct detect_event e[1];
  ck_assert_uint_eq(detector_poll(&d, 0, &s, 1, false, e), 0);
  ck_assert_uint_eq(detector_poll(&d, 10 * S, &s, 1, false, e), 0);
  ck_assert_uint_eq(detector_finish(&d, e), 0);
  detector_free(&d);
}
END_TEST

/* ------------------------------------------------------------- threshold */

START_TEST(test_began_exactly_at_threshold) {
  start_default();
  samples[0].counter = 1;
  ck_assert_uint_eq(poll_at(0), 0);
  ck_assert_uint_eq(poll_until(190 * MS, 10 * MS), 0);
  ck_assert_uint_eq(poll_at(200 * MS - 1 * NS), 0);
  ck_assert_uint_eq(poll_at(200 * MS), 1);
  const struct detect_event *e = &last[0];
  check_event(e, DETECT_BEGAN, 0, 1, 200 * MS);
  ck_assert_int_eq(e->threshold_ns, 200 * MS);
  ck_assert_uint_eq(e->generation, 1);
  ck_assert(e->traceback);
  ck_assert(!e->rate_limited);
  /* BEGAN is said once: the next polls are quiet until 2x the threshold. */
  ck_assert_uint_eq(poll_until(390 * MS, 10 * MS), 0);
}
END_TEST

START_TEST(test_threshold_counts_from_first_odd_poll) {
  start_default();
  samples[0].counter = 4;
  poll_until(1 * S, 10 * MS);
  samples[0].counter = 5;
  ck_assert_uint_eq(poll_at(1010 * MS), 0);
  ck_assert_uint_eq(poll_until(1200 * MS, 10 * MS), 0);
  ck_assert_uint_eq(poll_at(1210 * MS), 1);
  check_event(&last[0], DETECT_BEGAN, 0, 1, 200 * MS);
}
END_TEST

START_TEST(test_idle_never_stalls) {
  start_default();
  /* Even values, unchanged or moving, and zero: never a stall. */
  samples[0].counter = 0;
  samples[1].counter = 2;
  samples[2].counter = UINT64_MAX - 1;
  samples[3].counter = 10;
  poll_at(0);
  for (int64_t t = 10 * MS; t <= 60 * S; t += 10 * MS) {
    samples[3].counter += 2;
    poll_at(t);
  }
  ck_assert_uint_eq(history_count, 0);
  ck_assert_uint_eq(detector_finish(&det, last), 0);
}
END_TEST

START_TEST(test_busy_counter_never_stalls) {
  start_default();
  /* Slot 0 is odd at every poll but moves (many enter/leave in between);
   * slot 1 alternates active and idle at every poll. */
  samples[0].counter = 1;
  samples[1].counter = 1;
  samples[2].live = samples[3].live = false;
  poll_at(0);
  for (int64_t t = 10 * MS; t <= 60 * S; t += 10 * MS) {
    samples[0].counter += 2;
    samples[1].counter += 1;
    poll_at(t);
  }
  ck_assert_uint_eq(history_count, 0);
}
END_TEST

START_TEST(test_per_tracker_threshold) {
  start_default();
  samples[0].threshold_ns = 0; /* the default, 200 ms */
  samples[1].threshold_ns = 50 * MS;
  samples[2].threshold_ns = 1 * S;
  samples[3].live = false;
  for (int i = 0; i < 3; i++)
    samples[i].counter = 2;
  poll_at(0);
  for (int i = 0; i < 3; i++)
    samples[i].counter = 3;
  poll_until(2 * S, 10 * MS);

  /* Per slot: the poll times of its BEGAN and CONTINUES. */
  const int64_t want_began[3] = {210 * MS, 60 * MS, 1010 * MS};
  const int64_t want_threshold[3] = {200 * MS, 50 * MS, 1 * S};
  for (uint32_t slot = 0; slot < 3; slot++) {
    size_t seen = 0;
    int64_t report = 0;
    for (size_t i = 0; i < history_count; i++) {
      const struct detect_event *e = &history[i];
      if (e->slot != slot)
        continue;
      ck_assert_int_eq(e->threshold_ns, want_threshold[slot]);
      int64_t due = seen == 0 ? want_threshold[slot] : 2 * report;
      ck_assert_int_eq(e->kind, seen == 0 ? DETECT_BEGAN : DETECT_CONTINUES);
      ck_assert_int_eq(e->length_ns, due);
      ck_assert_int_eq(history_at[i], due + 10 * MS);
      if (seen == 0)
        ck_assert_int_eq(history_at[i], want_began[slot]);
      report = due;
      seen++;
    }
    /* 50 ms: 50, 100, 200, 400, 800, 1600; 200 ms: 200, 400, 800, 1600;
     * 1 s: 1000 only, within 2 s. */
    const size_t want_seen[3] = {4, 6, 1};
    ck_assert_uint_eq(seen, want_seen[slot]);
  }
}
END_TEST

START_TEST(test_threshold_from_config_for_zero_and_negative) {
  start_with(30 * MS, 0, 100 * MS);
  samples[0].threshold_ns = 0;
  samples[1].threshold_ns = -7; /* nonsense from the target: the default */
  samples[2].live = samples[3].live = false;
  samples[0].counter = samples[1].counter = 1;
  poll_at(0);
  poll_until(20 * MS, 10 * MS);
  ck_assert_uint_eq(history_count, 0);
  ck_assert_uint_eq(poll_at(30 * MS), 2);
  check_event(&last[0], DETECT_BEGAN, 0, 1, 30 * MS);
  check_event(&last[1], DETECT_BEGAN, 1, 2, 30 * MS);
  ck_assert_int_eq(last[1].threshold_ns, 30 * MS);
}
END_TEST

/* ------------------------------------------------------ life of a stall */

START_TEST(test_backoff_over_five_seconds) {
  start_default();
  samples[0].counter = 2;
  poll_at(0);
  /* Active from 5 ms to 5005 ms: first seen at 10, last at 5000. */
  samples[0].counter = 3;
  poll_until(5000 * MS, 10 * MS);
  samples[0].counter = 4;
  poll_until(6000 * MS, 10 * MS);

  /* 600 polls, 6 records: never one per poll. */
  ck_assert_uint_eq(history_count, 6);
  const enum detect_event_kind kinds[6] = {DETECT_BEGAN,     DETECT_CONTINUES,
                                           DETECT_CONTINUES, DETECT_CONTINUES,
                                           DETECT_CONTINUES, DETECT_ENDED};
  const int64_t lengths[6] = {200 * MS,  400 * MS,  800 * MS,
                              1600 * MS, 3200 * MS, 5000 * MS};
  const int64_t at[6] = {210 * MS,  410 * MS,  810 * MS,
                         1610 * MS, 3210 * MS, 5010 * MS};
  for (size_t i = 0; i < 6; i++) {
    check_event(&history[i], kinds[i], 0, 1, lengths[i]);
    ck_assert_int_eq(history_at[i], at[i]);
    ck_assert_int_eq(history[i].threshold_ns, 200 * MS);
  }
  ck_assert_int_eq(history[5].end_reason, DETECT_END_PROGRESS);
}
END_TEST

START_TEST(test_backoff_long_stall_is_logarithmic) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(60 * S, 10 * MS);
  /* BEGAN at 0.2 s, then 0.4, 0.8, ... 51.2 s: 8 CONTINUES in 6000 polls. */
  ck_assert_uint_eq(history_count, 9);
  int64_t previous = 0;
  for (size_t i = 0; i < history_count; i++) {
    ck_assert_int_eq(history[i].kind, i ? DETECT_CONTINUES : DETECT_BEGAN);
    ck_assert_int_eq(history[i].length_ns, (200 * MS) << i);
    ck_assert_int_ge(history[i].length_ns, 2 * previous);
    previous = history[i].length_ns;
  }
}
END_TEST

START_TEST(test_backoff_skips_missed_reports) {
  /* A poll that jumps past several due reports gives one CONTINUES, and the
   * next is due at the next power of two past it, not at each skipped one. */
  start_with(200 * MS, 0, 10 * S);
  samples[0].counter = 1;
  poll_at(0);
  poll_at(200 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
  poll_at(1700 * MS);
  check_event(only_event(), DETECT_CONTINUES, 0, 1, 1700 * MS);
  ck_assert_uint_eq(poll_at(3199 * MS), 0);
  poll_at(3200 * MS);
  check_event(only_event(), DETECT_CONTINUES, 0, 1, 3200 * MS);
}
END_TEST

START_TEST(test_ended_length_midpoint) {
  start_default();
  samples[0].counter = 6;
  poll_at(0);
  samples[0].counter = 7;
  poll_at(10 * MS);
  poll_until(730 * MS, 10 * MS);
  samples[0].counter = 8;
  poll_at(740 * MS);
  /* Active between polls 0 and 10, idle between 730 and 740: from 5 to 735. */
  const struct detect_event *e = only_event();
  check_event(e, DETECT_ENDED, 0, 1, 730 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_PROGRESS);
  ck_assert_int_eq(e->threshold_ns, 200 * MS);
  ck_assert_uint_eq(e->generation, 1);
  /* The stall is over: idle from now on, and no second ENDED. */
  ck_assert_uint_eq(poll_until(5 * S, 10 * MS), 0);
  ck_assert_uint_eq(detector_finish(&det, last), 0);
}
END_TEST

static uint64_t rng_state;

static uint64_t rng_next(void) {
  /* xorshift64: deterministic, so a failure replays. */
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

START_TEST(test_ended_length_accurate_to_one_poll) {
  /* Irregular polls (5..15 ms apart) around true starts and ends at every
   * millisecond offset: the estimate is never off by more than a poll. The
   * lengths start a poll past the threshold, so that every stall is seen. */
  rng_state = 0x9E3779B97F4A7C15u;
  for (int64_t start_ms = 100; start_ms < 130; start_ms++) {
    for (int64_t length_ms = 250; length_ms < 3000; length_ms += 137) {
      start_default();
      int64_t true_start = start_ms * MS + 300 * 1000; /* off the grid */
      int64_t true_end = true_start + length_ms * MS;
      int64_t t = 0, max_step = 0;
      size_t ended = 0;
      int64_t ended_length = 0;
      while (t < true_end + 100 * MS) {
        samples[0].counter = t < true_start ? 0 : t < true_end ? 1 : 2;
        poll_at(t);
        for (size_t i = 0; i < last_count; i++) {
          if (last[i].kind == DETECT_ENDED) {
            ended++;
            ended_length = last[i].length_ns;
          }
        }
        int64_t step = (int64_t)(5 + rng_next() % 11) * MS;
        if (step > max_step)
          max_step = step;
        t += step;
      }
      ck_assert_uint_eq(ended, 1);
      int64_t error = ended_length - length_ms * MS;
      ck_assert_int_le(error < 0 ? -error : error, max_step);
      detector_free(&det);
    }
  }
}
END_TEST

START_TEST(test_stall_ids) {
  start_default();
  samples[2].live = samples[3].live = false;
  samples[0].counter = 1;
  poll_at(0);
  poll_until(1 * S, 10 * MS);
  /* A second tracker stalls while the first one still does. */
  samples[1].counter = 1;
  poll_until(2 * S, 10 * MS);
  samples[0].counter = 2;
  samples[1].counter = 2;
  poll_at(now + 10 * MS);
  ck_assert_uint_eq(last_count, 2);
  /* Slot 0 stalls again: a new stall, a new id. */
  samples[0].counter = 3;
  poll_until(3 * S, 10 * MS);
  samples[0].counter = 4;
  poll_at(now + 10 * MS);

  size_t per_id[4] = {0};
  for (size_t i = 0; i < history_count; i++) {
    const struct detect_event *e = &history[i];
    ck_assert_uint_ge(e->stall_id, 1);
    ck_assert_uint_le(e->stall_id, 3);
    per_id[e->stall_id]++;
    /* Stall 1 and 3 are slot 0's, stall 2 is slot 1's. */
    ck_assert_uint_eq(e->slot, e->stall_id == 2 ? 1 : 0);
  }
  /* Each stall: one BEGAN first and one ENDED last, same id throughout. */
  for (uint64_t id = 1; id <= 3; id++) {
    const struct detect_event *first = NULL, *final = NULL;
    for (size_t i = 0; i < history_count; i++) {
      if (history[i].stall_id != id)
        continue;
      if (!first)
        first = &history[i];
      final = &history[i];
    }
    ck_assert_ptr_nonnull(first);
    ck_assert_int_eq(first->kind, DETECT_BEGAN);
    ck_assert_int_eq(final->kind, DETECT_ENDED);
    ck_assert_uint_ge(per_id[id], 2);
  }
}
END_TEST

START_TEST(test_traceback_rate_limit) {
  start_default(); /* 30 s suppress */
  samples[1].live = samples[2].live = samples[3].live = false;
  const int64_t begins[] = {0, 10 * S, 29 * S, 30 * S, 31 * S, 59 * S, 61 * S};
  /* The window runs from the last traceback actually taken: 0 s, 30 s, then
   * 61 s; the rate-limited ones do not push it forward. */
  const bool traceback[] = {true, false, false, true, false, false, true};
  samples[0].counter = 0;
  poll_at(0);
  for (size_t i = 0; i < sizeof(begins) / sizeof(begins[0]); i++) {
    /* Active from `begins[i]` - 200 ms, so BEGAN falls on begins[i]. */
    int64_t active_from = begins[i] + 1 * S - 200 * MS;
    poll_until(active_from - 10 * MS, 10 * MS);
    samples[0].counter++;
    poll_until(begins[i] + 1 * S, 10 * MS);
    const struct detect_event *e = &history[history_count - 1];
    ck_assert_int_eq(e->kind, DETECT_BEGAN);
    ck_assert_int_eq(history_at[history_count - 1], begins[i] + 1 * S);
    ck_assert_msg(e->traceback == traceback[i], "stall %zu", i);
    ck_assert_msg(e->rate_limited == !traceback[i], "stall %zu", i);
    samples[0].counter++;
    poll_at(now + 10 * MS);
    ck_assert_int_eq(only_event()->kind, DETECT_ENDED);
  }
}
END_TEST

START_TEST(test_traceback_rate_limit_same_poll) {
  start_default();
  samples[0].counter = samples[1].counter = 1;
  poll_at(0);
  poll_until(190 * MS, 10 * MS);
  ck_assert_uint_eq(poll_at(200 * MS), 2);
  ck_assert(last[0].traceback && !last[0].rate_limited);
  ck_assert(!last[1].traceback && last[1].rate_limited);
  /* CONTINUES and ENDED say nothing of tracebacks. */
  poll_until(400 * MS, 10 * MS);
  ck_assert_uint_eq(last_count, 2);
  ck_assert(!last[0].traceback && !last[0].rate_limited);
}
END_TEST

START_TEST(test_traceback_suppress_zero_is_always) {
  start_with(200 * MS, 0, 100 * MS);
  samples[0].counter = samples[1].counter = 1;
  poll_at(0);
  poll_until(200 * MS, 10 * MS);
  ck_assert_uint_eq(last_count, 2);
  for (size_t i = 0; i < 2; i++)
    ck_assert(last[i].traceback && !last[i].rate_limited);
  samples[1].counter = 2;
  for (int k = 0; k < 5; k++) {
    samples[0].counter += 1;
    poll_at(now + 10 * MS);
    samples[0].counter += 1;
    poll_until(now + 210 * MS, 10 * MS);
    const struct detect_event *e = only_event();
    ck_assert_int_eq(e->kind, DETECT_BEGAN);
    ck_assert(e->traceback && !e->rate_limited);
  }
}
END_TEST

START_TEST(test_counter_wraps) {
  start_default();
  samples[0].counter = UINT64_MAX - 1;
  poll_at(0);
  /* The last odd value before the wrap stalls like any other. */
  samples[0].counter = UINT64_MAX;
  poll_until(210 * MS, 10 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
  poll_until(500 * MS, 10 * MS);
  samples[0].counter = 0;
  poll_at(510 * MS);
  const struct detect_event *e = only_event();
  check_event(e, DETECT_ENDED, 0, 1, 500 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_PROGRESS);
  /* After the wrap, 0 is idle and 1 is a new stall. */
  ck_assert_uint_eq(poll_until(1 * S, 10 * MS), 0);
  samples[0].counter = 1;
  poll_until(1210 * MS, 10 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 2, 200 * MS);
}
END_TEST

START_TEST(test_counter_wraps_to_odd) {
  /* A wrap the poll did not see in between (UINT64_MAX to 1): still moved. */
  start_default();
  samples[0].counter = UINT64_MAX;
  poll_at(0);
  poll_until(300 * MS, 10 * MS);
  ck_assert_uint_eq(history_count, 1);
  samples[0].counter = 1;
  poll_at(310 * MS);
  ck_assert_int_eq(only_event()->kind, DETECT_ENDED);
  ck_assert_uint_eq(poll_until(500 * MS, 10 * MS), 0);
  poll_at(510 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 2, 200 * MS);
}
END_TEST

/* --------------------------------------------------------------- release */

START_TEST(test_release_not_live) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(500 * MS, 10 * MS);
  samples[0].live = false;
  poll_at(510 * MS);
  const struct detect_event *e = only_event();
  /* Seen stalled from 0 to 500 ms; when it went away is not known. */
  check_event(e, DETECT_ENDED, 0, 1, 500 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_RELEASED);
  ck_assert_uint_eq(e->generation, 1);
  ck_assert_uint_eq(poll_until(2 * S, 10 * MS), 0);
  ck_assert_uint_eq(detector_finish(&det, last), 0);

  /* Reused: a new tracker whose clock starts when it is first seen. */
  samples[0].live = true;
  samples[0].generation = 2;
  ck_assert_uint_eq(poll_at(2010 * MS), 0);
  ck_assert_uint_eq(poll_until(2200 * MS, 10 * MS), 0);
  poll_at(2210 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 2, 200 * MS);
  ck_assert_uint_eq(last[0].generation, 2);
}
END_TEST

START_TEST(test_release_generation_changes) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(300 * MS, 10 * MS);
  /* Reused between two polls, and its new counter happens to be odd and
   * equal: a different tracker all the same. */
  samples[0].generation = 7;
  poll_at(310 * MS);
  const struct detect_event *e = only_event();
  check_event(e, DETECT_ENDED, 0, 1, 300 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_RELEASED);
  ck_assert_uint_eq(e->generation, 1);
  ck_assert_uint_eq(poll_until(500 * MS, 10 * MS), 0);
  poll_at(510 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 2, 200 * MS);
  ck_assert_uint_eq(last[0].generation, 7);
}
END_TEST

START_TEST(test_release_past_sample_count) {
  start_default();
  samples[3].counter = 1;
  poll_at(0);
  poll_until(250 * MS, 10 * MS);
  ck_assert_uint_eq(history_count, 1);
  /* Slots past the samples handed in count as not live. */
  sample_count = 3;
  poll_at(260 * MS);
  const struct detect_event *e = only_event();
  check_event(e, DETECT_ENDED, 3, 1, 250 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_RELEASED);
}
END_TEST

START_TEST(test_release_when_not_stalled_is_silent) {
  start_default();
  samples[0].counter = 1;
  samples[1].counter = 2;
  poll_at(0);
  poll_until(100 * MS, 10 * MS);
  samples[0].live = false;
  samples[1].generation = 3;
  ck_assert_uint_eq(poll_until(1 * S, 10 * MS), 0);
}
END_TEST

/* ----------------------------------------------------------------- blind */

START_TEST(test_blind_target_stopped) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(150 * MS, 10 * MS);
  /* Stopped by someone else: those 150 ms are not the tracker's fault. */
  ck_assert_uint_eq(poll_full(160 * MS, true), 0);
  ck_assert_uint_eq(poll_until(350 * MS, 10 * MS), 0);
  poll_at(360 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
}
END_TEST

START_TEST(test_blind_target_stopped_forever) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  for (int64_t t = 10 * MS; t <= 10 * S; t += 10 * MS)
    poll_full(t, true);
  ck_assert_uint_eq(history_count, 0);
}
END_TEST

START_TEST(test_blind_late_poll) {
  start_default(); /* gap 100 ms */
  samples[0].counter = 1;
  poll_at(0);
  poll_until(150 * MS, 10 * MS);
  /* The watcher's timer fired 101 ms late: the clock starts again. */
  ck_assert_uint_eq(poll_at(251 * MS), 0);
  ck_assert_uint_eq(poll_until(441 * MS, 10 * MS), 0);
  poll_at(451 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
}
END_TEST

START_TEST(test_poll_exactly_gap_late_is_not_blind) {
  start_default(); /* gap 100 ms */
  samples[0].counter = 1;
  poll_at(0);
  poll_at(100 * MS);
  ck_assert_uint_eq(poll_at(200 * MS), 1);
  check_event(&last[0], DETECT_BEGAN, 0, 1, 200 * MS);
}
END_TEST

START_TEST(test_blind_established_stall_continues) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(200 * MS, 10 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
  /* Already seen stalled before the watcher went blind: the counter has
   * not moved since, so it is the same stall, still going. */
  poll_at(2 * S);
  check_event(only_event(), DETECT_CONTINUES, 0, 1, 2 * S);
  poll_full(2010 * MS, true);
  ck_assert_uint_eq(last_count, 0);
  poll_until(3200 * MS, 10 * MS);
  check_event(only_event(), DETECT_CONTINUES, 0, 1, 3200 * MS);
  samples[0].counter = 2;
  poll_at(3210 * MS);
  check_event(only_event(), DETECT_ENDED, 0, 1, 3205 * MS);
  /* One stall from start to end: no second BEGAN. */
  size_t began = 0;
  for (size_t i = 0; i < history_count; i++)
    began += history[i].kind == DETECT_BEGAN;
  ck_assert_uint_eq(began, 1);
}
END_TEST

START_TEST(test_blind_activation_not_blamed_at_end) {
  start_default();
  samples[0].counter = 2;
  poll_at(0);
  poll_until(100 * MS, 10 * MS);
  /* Went active at some moment of a 10 s blind spot: the stall is counted
   * from the poll that first saw it, in BEGAN and in ENDED alike. */
  samples[0].counter = 3;
  ck_assert_uint_eq(poll_at(10100 * MS), 0);
  poll_until(10300 * MS, 10 * MS);
  check_event(only_event(), DETECT_BEGAN, 0, 1, 200 * MS);
  poll_until(10500 * MS, 10 * MS);
  samples[0].counter = 4;
  poll_at(10510 * MS);
  check_event(only_event(), DETECT_ENDED, 0, 1, 405 * MS);
}
END_TEST

START_TEST(test_blind_end_not_blamed) {
  start_default();
  samples[0].counter = 1;
  poll_at(0);
  poll_until(500 * MS, 10 * MS);
  /* It ended at some moment of a 10 s blind spot: known to have lasted
   * 500 ms, and nothing is known of the 10 s. */
  samples[0].counter = 2;
  poll_at(10500 * MS);
  const struct detect_event *e = only_event();
  check_event(e, DETECT_ENDED, 0, 1, 500 * MS);
  ck_assert_int_eq(e->end_reason, DETECT_END_PROGRESS);
}
END_TEST

/* ---------------------------------------------------------------- finish */

START_TEST(test_finish_ends_stalls_going_on) {
  start_default();
  samples[0].counter = 1; /* stalled */
  samples[1].counter = 2; /* idle */
  samples[2].counter = 3; /* stalled, with its own threshold */
  samples[2].threshold_ns = 100 * MS;
  samples[3].counter = 2; /* active only from 310 ms: not yet stalled */
  poll_at(0);
  poll_until(300 * MS, 10 * MS);
  samples[3].counter = 5;
  poll_until(400 * MS, 10 * MS);
  size_t n = detector_finish(&det, last);
  ck_assert_uint_eq(n, 2);
  check_event(&last[0], DETECT_ENDED, 0, 2, 400 * MS);
  ck_assert_int_eq(last[0].end_reason, DETECT_END_UNWATCHED);
  ck_assert_int_eq(last[0].threshold_ns, 200 * MS);
  check_event(&last[1], DETECT_ENDED, 2, 1, 400 * MS);
  ck_assert_int_eq(last[1].end_reason, DETECT_END_UNWATCHED);
  ck_assert_int_eq(last[1].threshold_ns, 100 * MS);
  /* Said once. */
  ck_assert_uint_eq(detector_finish(&det, last), 0);
}
END_TEST

START_TEST(test_finish_before_any_poll) {
  start_default();
  ck_assert_uint_eq(detector_finish(&det, last), 0);
}
END_TEST

static Suite *detect_suite(void) {
  Suite *s = suite_create("detect");
  TCase *tc;

  tc = tcase_create("init");
  tcase_add_test(tc, test_init_rejects_bad_config);
  tcase_add_test(tc, test_init_accepts_edges);
  suite_add_tcase(s, tc);

  tc = tcase_create("threshold");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_began_exactly_at_threshold);
  tcase_add_test(tc, test_threshold_counts_from_first_odd_poll);
  tcase_add_test(tc, test_idle_never_stalls);
  tcase_add_test(tc, test_busy_counter_never_stalls);
  tcase_add_test(tc, test_per_tracker_threshold);
  tcase_add_test(tc, test_threshold_from_config_for_zero_and_negative);
  suite_add_tcase(s, tc);

  tc = tcase_create("life");
  tcase_add_checked_fixture(tc, NULL, teardown);
  /* The accuracy sweep plays ~800 timelines; pure computation. */
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_backoff_over_five_seconds);
  tcase_add_test(tc, test_backoff_long_stall_is_logarithmic);
  tcase_add_test(tc, test_backoff_skips_missed_reports);
  tcase_add_test(tc, test_ended_length_midpoint);
  tcase_add_test(tc, test_ended_length_accurate_to_one_poll);
  tcase_add_test(tc, test_stall_ids);
  tcase_add_test(tc, test_traceback_rate_limit);
  tcase_add_test(tc, test_traceback_rate_limit_same_poll);
  tcase_add_test(tc, test_traceback_suppress_zero_is_always);
  tcase_add_test(tc, test_counter_wraps);
  tcase_add_test(tc, test_counter_wraps_to_odd);
  suite_add_tcase(s, tc);

  tc = tcase_create("release");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_release_not_live);
  tcase_add_test(tc, test_release_generation_changes);
  tcase_add_test(tc, test_release_past_sample_count);
  tcase_add_test(tc, test_release_when_not_stalled_is_silent);
  suite_add_tcase(s, tc);

  tc = tcase_create("blind");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_blind_target_stopped);
  tcase_add_test(tc, test_blind_target_stopped_forever);
  tcase_add_test(tc, test_blind_late_poll);
  tcase_add_test(tc, test_poll_exactly_gap_late_is_not_blind);
  tcase_add_test(tc, test_blind_established_stall_continues);
  tcase_add_test(tc, test_blind_activation_not_blamed_at_end);
  tcase_add_test(tc, test_blind_end_not_blamed);
  suite_add_tcase(s, tc);

  tc = tcase_create("finish");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_finish_ends_stalls_going_on);
  tcase_add_test(tc, test_finish_before_any_poll);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(detect_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
