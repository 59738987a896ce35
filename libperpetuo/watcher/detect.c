#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"

int detector_init(struct detector *d, const struct detect_config *config,
                  size_t slot_count) {
  if (config->default_threshold_ns <= 0 || config->traceback_suppress_ns < 0 ||
      config->gap_ns <= 0)
    return -EINVAL;
  memset(d, 0, sizeof(*d));
  d->config = *config;
  d->slot_count = slot_count;
  d->trackers = calloc(slot_count ? slot_count : 1, sizeof(*d->trackers));
  return d->trackers ? 0 : -ENOMEM;
}

void detector_free(struct detector *d) {
  free(d->trackers);
  d->trackers = NULL;
}

static int64_t midpoint(int64_t a, int64_t b) { return a + (b - a) / 2; }

static struct detect_event *emit(struct detect_event *out, size_t *count,
                                 enum detect_event_kind kind, uint32_t slot,
                                 const struct detect_tracker *t,
                                 int64_t length_ns) {
  struct detect_event *e = &out[(*count)++];
  *e = (struct detect_event){
      .kind = kind,
      .slot = slot,
      .generation = t->generation,
      .stall_id = t->stall_id,
      .length_ns = length_ns,
      .threshold_ns = t->threshold_ns,
  };
  return e;
}

/*
 * The counter value changed somewhere between the last poll and this one, so
 * both ends of a stall are known to within a poll: take the midpoints. After
 * a blind poll nothing is known of the time in between, so the stall is not
 * stretched into it: it ended no later than the last poll that saw it.
 */
static int64_t ended_length(const struct detect_tracker *t, int64_t now_ns,
                            bool blind) {
  int64_t end = blind ? t->last_seen_ns : midpoint(t->last_seen_ns, now_ns);
  return end - midpoint(t->before_ns, t->since_ns);
}

static void start_value(struct detect_tracker *t, uint64_t counter,
                        int64_t before_ns, int64_t now_ns) {
  t->counter = counter;
  t->since_ns = now_ns;
  t->before_ns = before_ns;
  t->stall_id = 0;
}

static bool take_traceback(struct detector *d, int64_t now_ns) {
  if (d->traceback_taken &&
      now_ns - d->last_traceback_ns < d->config.traceback_suppress_ns)
    return false;
  d->traceback_taken = true;
  d->last_traceback_ns = now_ns;
  return true;
}

static void poll_slot(struct detector *d, uint32_t slot, int64_t now_ns,
                      const struct detect_sample *s, bool blind,
                      struct detect_event *events, size_t *count) {
  struct detect_tracker *t = &d->trackers[slot];
  bool live = s && s->live;
  if (t->known && (!live || s->generation != t->generation)) {
    if (t->stall_id) {
      struct detect_event *e = emit(events, count, DETECT_ENDED, slot, t,
                                    t->last_seen_ns - t->since_ns);
      e->end_reason = DETECT_END_RELEASED;
    }
    memset(t, 0, sizeof(*t));
  }
  if (!live)
    return;
  t->threshold_ns =
      s->threshold_ns > 0 ? s->threshold_ns : d->config.default_threshold_ns;
  if (!t->known) {
    t->known = true;
    t->generation = s->generation;
    start_value(t, s->counter, now_ns, now_ns);
  } else if (s->counter != t->counter) {
    if (t->stall_id) {
      struct detect_event *e = emit(events, count, DETECT_ENDED, slot, t,
                                    ended_length(t, now_ns, blind));
      e->end_reason = DETECT_END_PROGRESS;
    }
    /* After a blind poll, the new value began no earlier than now. */
    start_value(t, s->counter, blind ? now_ns : t->last_seen_ns, now_ns);
  } else if (t->counter & 1) {
    if (blind && !t->stall_id)
      start_value(t, t->counter, now_ns, now_ns);
    int64_t length = now_ns - t->since_ns;
    if (!t->stall_id && length >= t->threshold_ns) {
      t->stall_id = ++d->last_stall_id;
      t->next_report_ns = 2 * t->threshold_ns;
      struct detect_event *e =
          emit(events, count, DETECT_BEGAN, slot, t, length);
      e->traceback = take_traceback(d, now_ns);
      e->rate_limited = !e->traceback;
    } else if (t->stall_id && length >= t->next_report_ns) {
      emit(events, count, DETECT_CONTINUES, slot, t, length);
      while (t->next_report_ns <= length)
        t->next_report_ns *= 2;
    }
  }
  t->last_seen_ns = now_ns;
}

size_t detector_poll(struct detector *d, int64_t now_ns,
                     const struct detect_sample *samples, size_t n,
                     bool target_stopped, struct detect_event *events) {
  bool blind = target_stopped ||
               (d->polled && now_ns - d->last_poll_ns > d->config.gap_ns);
  size_t count = 0;
  /* Slots past both the samples and every slot known so far hold nothing
   * to update: the poll stays proportional to the slots in use. */
  size_t limit = n > d->known_limit ? n : d->known_limit;
  if (limit > d->slot_count)
    limit = d->slot_count;
  size_t known_limit = 0;
  for (size_t i = 0; i < limit; i++) {
    poll_slot(d, (uint32_t)i, now_ns, i < n ? &samples[i] : NULL, blind, events,
              &count);
    if (d->trackers[i].known)
      known_limit = i + 1;
  }
  d->known_limit = known_limit;
  d->polled = true;
  d->last_poll_ns = now_ns;
  return count;
}

size_t detector_finish(struct detector *d, struct detect_event *events) {
  size_t count = 0;
  for (size_t i = 0; i < d->slot_count; i++) {
    struct detect_tracker *t = &d->trackers[i];
    if (t->known && t->stall_id) {
      struct detect_event *e = emit(events, &count, DETECT_ENDED, (uint32_t)i,
                                    t, t->last_seen_ns - t->since_ns);
      e->end_reason = DETECT_END_UNWATCHED;
      t->stall_id = 0;
    }
  }
  return count;
}
