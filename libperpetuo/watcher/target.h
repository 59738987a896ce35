/*
 * The watched process, seen from outside: its pidfd, its region (found and
 * validated), a copy of every live slot, and one poll = one process_vm_readv
 * of the header and every used slot (and external counters).
 * Everything read here is untrusted and checked before use.
 */
#ifndef PERPETUO_WATCHER_TARGET_H
#define PERPETUO_WATCHER_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"
#include "pylayout.h"
#include "detect.h"

/* What the watcher knows of one slot, refreshed when its generation moves. */
struct slot_info {
  bool live;
  bool external_readable; /* its counter (or handover count) could be read */
  struct perpetuo__slot slot; /* names NUL-terminated by us, whatever came */
  /* An external counter, or a contention slot's handover count, as this
   * poll read it; a contention slot's other words. */
  uint64_t counter_word;
  uint64_t holder;      /* the holder pointer's value */
  uint64_t holder_seen; /* at the previous poll: where `request` was read */
  uint32_t request;
  bool request_read;
};

/* What each remote iovec past the slots reads, for which slot. */
enum poll_word { WORD_COUNTER, WORD_HOLDER, WORD_REQUEST };
struct poll_extra {
  uint32_t slot;
  uint32_t word; /* enum poll_word */
};

struct target {
  pid_t pid;
  int pidfd;   /* readable when the target exits; -1 where unsupported */
  int stat_fd; /* /proc/PID/stat, kept open for a cheap state check */
  uint64_t region;
  struct perpetuo__header header; /* as validated at attach */
  uint32_t slots_read;            /* how many slots a poll reads */
  struct slot_info *slots;        /* header.slot_count of them */
  char **argv;                    /* its command line, for reports */
  size_t argc;
  /* Scratch space for one poll. */
  struct iovec *remote;
  char *buffer;              /* header, used slots, external counters */
  struct poll_extra *extras; /* up to 3 per slot */
};

/*
 * Attaches to `pid`. `region` is the region's address, or 0 to look for it
 * in /proc/PID/maps. On failure returns a negative errno and writes one
 * sentence for the user into `why`.
 */
int target_open(struct target *t, pid_t pid, uint64_t region, char *why,
                size_t why_size);
void target_close(struct target *t);

/*
 * Reads every used slot: fills samples[0..*n). Returns 0, or a negative
 * errno: -ESRCH (the target is gone), -EFAULT / -EPROTO (its region is gone
 * or no longer valid: it called exec, or corrupted it).
 */
int target_poll(struct target *t, struct detect_sample *samples, size_t *n);

/* Reads the counter of a live slot now; false if it cannot be read. */
bool target_read_counter(struct target *t, uint32_t slot, uint64_t *value);

/*
 * Reads the detail a live slot's thread published (perpetuo_tracker_detail):
 * at most `size` bytes into `out`. Returns how many, 0 if there is none or
 * it cannot be read.
 */
size_t target_read_detail(struct target *t, uint32_t slot, char *out,
                          size_t size);

/*
 * Reads the Python layout block the target's Python extension published:
 * 1 if there is one and it checks (pylayout_check), 0 if there is none, -1
 * if it is there but unusable (pylayout_check says why).
 */
int target_read_pylayout(struct target *t, struct perpetuo__pylayout *out);

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 't', ...), or 0. */
char target_state(struct target *t);

/* True when the target is stopped or traced-stopped by someone else. */
bool target_is_stopped(struct target *t);

/* Reads /proc/PID/task/TID/comm into `name`; false if the thread is gone. */
bool target_thread_name(const struct target *t, int32_t tid, char *name,
                        size_t size);

/* Parses a line of /proc/PID/maps: start, end, permissions, and the path
 * (what follows the inode: "" or "\n" for an anonymous mapping, otherwise
 * the path with its newline). Exposed for tests. */
bool maps_parse_line(const char *line, uint64_t *start, uint64_t *end,
                     char perms[5], const char **path);

/* Checks a header read from `addr`; NULL if valid, else why not. */
const char *header_check(const struct perpetuo__header *h, uint64_t addr);

#endif
