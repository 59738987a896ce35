/*
 * Taking the stacks of a stall: read the threads' state from /proc (before
 * touching them), freeze them for a moment (freeze.h), then, with the target
 * running again, unwind the copies (unwind.h) and name the frames
 * (symbols.h).
 *
 * Which thread is relevant comes from the tracker's thread hint: a native
 * thread id directly; a pthread_t (which is also what CPython's
 * threading.get_ident() returns) by matching each thread's thread pointer,
 * which glibc makes the pthread_t, so all threads are stopped for that; the
 * GIL holder from the Python interpreter's state. A relevant thread that
 * cannot be found leaves every thread shown as an "other" thread.
 *
 * In a Python process (one whose region holds a Python layout block), all
 * threads are stopped, every Python thread's stack is read while they are
 * (pystacks.h), and each thread's report shows its Python frames; the
 * relevant thread's also the native frames it runs below the innermost
 * Python frame, when its native stack was taken.
 */
#ifndef PERPETUO_WATCHER_CAPTURE_H
#define PERPETUO_WATCHER_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "freeze.h"
#include "maps.h"
#include "pystacks.h"
#include "symbols.h"
#include "threadstate.h"

struct thread_capture {
  pid_t tid;
  char name[32];
  bool relevant;
  struct thread_state state; /* at the stall, read before stopping it */
  enum frozen_status status;
  struct native_frame *frames; /* outermost first, as in a traceback */
  size_t frame_count;
  const struct py_thread *py; /* its Python stack, if it runs Python */
  /* With a Python stack: frames[native_tail..frame_count) are the native
   * frames inner to the innermost Python frame (none if unknown). */
  size_t native_tail;
  char error[200]; /* why the stack is missing or incomplete; "" if whole */
};

struct capture {
  struct thread_capture *threads; /* the relevant one first, if found */
  size_t count;
  bool relevant_found;
  struct freeze_result freeze;
  bool python;           /* the target runs Python: py was read */
  struct py_snapshot py; /* every Python thread's stack */
  int64_t total_ns;      /* from deciding to capture to the stacks named */
  char error[256];       /* why nothing could be captured; "" otherwise */
};

struct capture_request {
  bool want_relevant;  /* the tracker names a thread */
  pid_t tid;           /* that thread, if known */
  uint64_t pthread_id; /* else its pthread_t, if known */
  bool gil_holder;     /* else the thread holding the Python GIL */
  /* The target's Python layout block, or NULL: no Python stacks. */
  const struct perpetuo__pylayout *python;
  bool locals; /* with the Python frames' locals */
};

struct capturer {
  pid_t pid;
  bool all_threads; /* stop and unwind every thread, not just the relevant */
  struct maps maps;
  bool maps_read;
  struct unwinder *unwinder;
  struct symbolizer *symbolizer;
  struct pyreader *pyreader; /* made at the first Python capture */
};

/* 0, or -ENOMEM. */
int capturer_init(struct capturer *c, pid_t pid, bool all_threads);
void capturer_free(struct capturer *c);

/*
 * Reads what naming frames needs (the modules' symbols and debug
 * information) ahead of the first stall, whose report would otherwise wait
 * for it.
 */
void capturer_warm(struct capturer *c);

/* Always fills `out` (free it with capture_free), errors included. */
void capture_take(struct capturer *c, const struct capture_request *req,
                  struct capture *out);
void capture_free(struct capture *cap);

/* Why a thread has no (whole) stack, for a frozen status. */
const char *frozen_status_why(enum frozen_status status);

#endif
