/*
 * Stopping threads of the target for a moment, with ptrace: PTRACE_SEIZE,
 * PTRACE_INTERRUPT, then while they are stopped, their registers and a copy
 * of their stack; then PTRACE_DETACH, which resumes them. Unwinding happens
 * afterwards, on the copies, so the target is stopped only for the copying.
 *
 * The target is always resumed: every thread stopped is detached before
 * freeze_threads() returns, whatever failed; a thread that does not stop in
 * time (uninterruptible sleep) is detached as soon as it stops, from
 * freeze_settle(), which the watcher calls on every poll and while it waits
 * to write a report; and should the watcher die, the kernel detaches and
 * resumes its tracees (we never ask for PTRACE_O_EXITKILL).
 */
#ifndef PERPETUO_WATCHER_FREEZE_H
#define PERPETUO_WATCHER_FREEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "maps.h"

/* The longest any thread is kept stopped: documented in operations.md. */
#define FREEZE_BUDGET_NS 50000000
/* How long we wait for threads to stop, within that budget. */
#define FREEZE_STOP_WAIT_NS 20000000
/* Stack copied above the stack pointer, at most: the relevant thread's,
 * and (less) any other thread's. */
#define FREEZE_STACK_MAX (1u << 20)
#define FREEZE_OTHER_STACK_MAX (256u << 10)
/* Copies go into memory faulted in once, when the watcher starts: page
 * faults on a fresh buffer, during the pause, cost more than the copy. */
#define FREEZE_POOL_SIZE (4u << 20)
/* Below the stack pointer: the x86-64 red zone, which leaf code uses. */
#define FREEZE_RED_ZONE 128

enum frozen_status {
  FROZEN_NOT_TRIED, /* the budget ran out before this thread */
  FROZEN_STOPPED,   /* stopped, registers read: it has a snapshot */
  FROZEN_GONE,      /* the thread exited before or while we stopped it */
  FROZEN_NO_STOP,   /* did not stop in time (uninterruptible sleep?) */
  FROZEN_FAILED     /* ptrace refused: see error */
};

struct frozen_thread {
  pid_t tid;
  bool want_stack;
  bool relevant; /* its stack may be copied deeper */
  enum frozen_status status;
  int error; /* errno, for FROZEN_FAILED */
  struct user_regs_struct regs;
  uint64_t stack_start; /* the copy is of [stack_start, stack_start+len) */
  size_t stack_len;
  unsigned char *stack;    /* NULL if not copied; see freeze_release() */
  bool stack_owned;        /* malloc'd, not in the pool */
  bool stack_truncated;    /* the stack goes on past the copy */
  uint64_t stack_end;      /* end of the stack's mapping, if known, else 0 */
  uint64_t thread_pointer; /* glibc's pthread_t of the thread; 0: unknown */
  /* Bookkeeping of freeze_threads(). */
  bool traced;  /* seized, and not seen to exit */
  bool stopped; /* seen stopped: ours to detach */
  int wait_status;
};

struct freeze_result {
  int64_t pause_ns; /* first thread interrupted .. last one resumed */
  int64_t stop_ns;  /* first interrupted .. all stopped */
  size_t stopped;
};

/*
 * Called while the threads are stopped, their registers (and thread
 * pointers) read, before any stack is copied: it may read the target's
 * memory, and set `want_stack` and `relevant` of threads. `deadline_ns`
 * (CLOCK_MONOTONIC) is when it must be done, for the pause to keep its
 * budget.
 */
typedef void freeze_visit_fn(void *ctx, struct frozen_thread *threads, size_t n,
                             int64_t deadline_ns);

/*
 * Stops threads[0..n) of `pid`, calls `visit` (if not NULL), snapshots
 * those that want a stack (and the one whose thread pointer is
 * `wanted_pthread`, if not 0) and resumes them all. `maps` bounds stack
 * copies (may be NULL). Returns 0, or -EPERM when ptrace is not permitted at
 * all (nothing was stopped).
 */
int freeze_threads(pid_t pid, struct frozen_thread *threads, size_t n,
                   const struct maps *maps, uint64_t wanted_pthread,
                   freeze_visit_fn *visit, void *ctx,
                   struct freeze_result *result);

/* Faults in the pool for stack copies, ahead of the first capture. */
void freeze_prepare(void);

/* Frees the stack copies (and hands the pool back). */
void freeze_release(struct frozen_thread *threads, size_t n);

/*
 * Detaches threads that were still stopping when freeze_threads() gave up
 * on them, once they have. Cheap when there are none; call it every poll.
 */
void freeze_settle(void);

/* Whether freeze_settle() may still have threads to look after. */
bool freeze_lingering(void);

#endif
