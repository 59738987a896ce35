/*
 * The Python stacks of a CPython process, read from outside while its
 * threads are stopped: the thread states of the main interpreter, each
 * one's frames (function, file, line) and, if asked, its locals as short
 * reprs. Where everything lies comes from the layout block the process's
 * perpetuo extension published (libperpetuo/pylayout.h); the reader
 * follows it and decodes the line tables.
 *
 * Everything read is untrusted: every pointer is followed through a bounded
 * read, every count is capped, and a frame list that is corrupt or changing
 * under us ends in a stack cut short and saying why, never in a crash or an
 * endless walk.
 */
#ifndef PERPETUO_WATCHER_PYSTACKS_H
#define PERPETUO_WATCHER_PYSTACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pylayout.h"

#define PY_THREADS_MAX 1024
#define PY_FRAMES_MAX 1024 /* per thread; deeper stacks are cut */
#define PY_LOCALS_MAX 64   /* per frame */
#define PY_REPR_MAX 128    /* bytes of one local's repr */
#define PY_NAME_CHARS 512  /* code points of a name or file name */
#define PY_LINETABLE_MAX (128u << 10)

/* A code object, as read once and kept while it stays the same. */
struct py_code {
  char *name;     /* co_name */
  char *qualname; /* co_qualname (3.11+), else NULL */
  char *filename; /* co_filename */
  int firstlineno;
  int firsttraceable; /* code units (3.11+), else 0 */
  bool coroutine;     /* an `async def` function's */
  bool other_async;   /* an async generator's, or a generator-based
                         coroutine's: awaited like a coroutine */
  uint8_t *linetable;
  size_t linetable_len;
  char **varnames; /* the names of the locals, varname_count of them */
  uint32_t varname_count;
};

struct py_value;

struct py_local {
  const char *name;
  const char *value; /* its short repr, once pyreader_format() ran */
  struct py_value *raw;
};

struct py_frame {
  const struct py_code *code;
  int line;                /* -1: unknown */
  struct py_local *locals; /* NULL when locals were not asked for */
  uint32_t local_count;
};

struct py_thread {
  uint64_t tstate;
  uint64_t thread_id; /* threading.get_ident(): the pthread_t */
  pid_t native_id;    /* the OS thread id; 0 if this version does not say */
  bool main;          /* the interpreter's main thread */
  bool gil_holder;
  struct py_frame *frames; /* outermost first */
  size_t count;
  char error[160]; /* why the stack is cut short; "" if whole */
};

struct py_arena;

struct py_snapshot {
  struct py_thread *threads;
  size_t count;
  uint64_t gil_holder;    /* the thread state holding the GIL; 0: none */
  char error[200];        /* why there are no Python stacks; "" otherwise */
  size_t reads;           /* system calls the reading took */
  struct py_arena *arena; /* everything above but the cached code objects */
};

struct pyreader;

struct pyreader *pyreader_new(pid_t pid);
void pyreader_free(struct pyreader *r);

/* NULL if `l` can be followed, else why not (one sentence). */
const char *pylayout_check(const struct perpetuo__pylayout *l);

/*
 * Reads every thread's Python stack now; the target's threads should be
 * stopped. Gives up (cutting stacks short, and saying so) at `deadline_ns`
 * on CLOCK_MONOTONIC. `l` must have passed pylayout_check(). The snapshot
 * refers to code objects the reader keeps: free it before the next read.
 */
void pyreader_read(struct pyreader *r, const struct perpetuo__pylayout *l,
                   bool locals, int64_t deadline_ns, struct py_snapshot *out);
/*
 * Formats the locals' values read by pyreader_read(): after the threads
 * are resumed, since it costs more than reading them. May read type names.
 */
void pyreader_format(struct pyreader *r, const struct perpetuo__pylayout *l,
                     struct py_snapshot *s);

void py_snapshot_free(struct py_snapshot *s);

#endif
