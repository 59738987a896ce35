/* Turning detection events into records: human text or JSON lines. */
#ifndef PERPETUO_WATCHER_REPORT_H
#define PERPETUO_WATCHER_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "perpetuo.h"

#include "buf.h"
#include "capture.h"
#include "detect.h"
#include "target.h"
#include "threadstate.h"

#define REPORT_SCHEMA_VERSION 1

struct reporter {
  bool json;
  int fd;
  /* Called while a report waits for room in its output (a pipe nobody
   * reads for a while), so the watcher's duties that cannot wait go on. */
  void (*waiting)(void);
  const struct target *target;
  struct buf buf;
};

/* Who a stall is blamed on, from the slot's thread hint. */
struct blame {
  const char *hint; /* "registrar", "native", "pthread", "gil_holder", "none" */
  int32_t tid;      /* 0: unknown */
  uint64_t pthread_id; /* 0: unknown */
  char name[PERPETUO__THREAD_NAME_SIZE + 16];
};

/* What was learnt of a stall beyond its timing, when it was. */
struct stall_extra {
  const struct capture *capture; /* NULL: no stacks were taken */
  bool ended_during_capture;     /* the counter moved while stacks were taken */
  bool state_known;
  struct thread_state state; /* of the blamed thread, now */
  bool cpu_known;
  int64_t cpu_ns;       /* CPU time the thread used in the window */
  int64_t window_ns;    /* since the first poll that saw the counter stuck */
  size_t detail_length; /* the tracker's published detail, 0: none */
  char detail[PERPETUO_DETAIL_MAX];
};

/* The native thread a slot blames, when it is known without stopping
 * anything (not for a pthread_t other than the registrar's); 0 otherwise. */
int32_t slot_blamed_tid(const struct perpetuo__slot *slot);

void blame_from_slot(const struct perpetuo__slot *slot,
                     const struct target *target, struct blame *out);

void reporter_init(struct reporter *r, bool json, int fd,
                   const struct target *target);
void reporter_free(struct reporter *r);

/* Formats one stall event into r->buf (without writing it). */
void report_format_event(struct reporter *r, const struct detect_event *e,
                         const struct perpetuo__slot *slot,
                         const struct blame *blame,
                         const struct stall_extra *extra, int64_t monotonic_ns,
                         int64_t wall_ns);

/* Formats a record about the watcher itself (event: "watch_started", ...). */
void report_format_info(struct reporter *r, const char *severity,
                        const char *event, const char *message,
                        int64_t monotonic_ns, int64_t wall_ns);

/* Writes r->buf out whole. 0, or a negative errno. */
int reporter_flush(struct reporter *r);

#endif
