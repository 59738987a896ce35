#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "unwind.h"

/* More threads than this are listed by count only. */
#define CAPTURE_THREADS_MAX 4096
/* Frames of one thread, inlined ones included. */
#define CAPTURE_FRAMES_MAX (UNWIND_MAX_FRAMES * 2)
#define INLINE_DEPTH_MAX 16

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int capturer_init(struct capturer *c, pid_t pid, bool all_threads) {
  *c = (struct capturer){.pid = pid, .all_threads = all_threads};
  freeze_prepare();
  c->unwinder = unwinder_new(pid);
  c->symbolizer = symbolizer_new(pid);
  if (!c->unwinder || !c->symbolizer) {
    capturer_free(c);
    return -ENOMEM;
  }
  return 0;
}

void capturer_free(struct capturer *c) {
  unwinder_free(c->unwinder);
  symbolizer_free(c->symbolizer);
  pyreader_free(c->pyreader);
  maps_free(&c->maps);
  *c = (struct capturer){0};
}

const char *frozen_status_why(enum frozen_status status) {
  switch (status) {
  case FROZEN_STOPPED: return "";
  case FROZEN_NOT_TRIED: return "not unwound: the pause budget ran out first";
  case FROZEN_GONE: return "the thread exited while its stack was being taken";
  case FROZEN_NO_STOP:
    return "the thread did not stop in time (uninterruptible sleep?); it is "
           "resumed as soon as it stops";
  case FROZEN_FAILED: return "ptrace refused to stop this thread";
  }
  return "";
}

static void thread_name(pid_t pid, pid_t tid, char *out, size_t size) {
  char path[96];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
  out[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  ssize_t n = read(fd, out, size - 1);
  close(fd);
  out[n > 0 ? n : 0] = '\0';
  out[strcspn(out, "\n")] = '\0';
}

/* Who traces `tid` now (TracerPid), or 0. */
static pid_t tracer_of(pid_t pid, pid_t tid) {
  char path[96], text[4096];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  const char *p = strstr(text, "\nTracerPid:");
  return p ? (pid_t)strtol(p + 11, NULL, 10) : 0;
}

static void ptrace_denied(struct capture *cap, pid_t pid, pid_t tid) {
  pid_t tracer = tracer_of(pid, tid);
  if (tracer > 0 && tracer != getpid()) {
    snprintf(cap->error, sizeof(cap->error),
             "no stacks: the target is already traced by process %d (a "
             "debugger?), and a thread has only one tracer",
             (int)tracer);
    return;
  }
  char scope[16] = "?";
  int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, scope, sizeof(scope) - 1);
    scope[n > 0 ? n : 0] = '\0';
    scope[strcspn(scope, "\n")] = '\0';
    close(fd);
  }
  snprintf(cap->error, sizeof(cap->error),
           "no stacks: not permitted to ptrace pid %d (run the watcher as "
           "the same user with CAP_SYS_PTRACE, or lower "
           "kernel.yama.ptrace_scope, now %s)",
           (int)pid, scope);
}

static void unwind_and_name(struct capturer *c, const struct frozen_thread *f,
                            struct thread_capture *tc, uint64_t *ips,
                            bool *signal_frame, struct native_frame *scratch) {
  /* Without its stack, only the stopped frame's address is certain: the
   * rest of the stack changed when the thread resumed. */
  size_t n = unwind_thread(c->unwinder, f, ips, signal_frame,
                           f->stack ? UNWIND_MAX_FRAMES : 1, tc->error,
                           sizeof(tc->error));
  if (!f->stack)
    snprintf(tc->error, sizeof(tc->error),
             "its stack could not be copied: only the stopped frame is shown");
  size_t count = 0;
  for (size_t i = 0; i < n && count < CAPTURE_FRAMES_MAX; i++) {
    /* Every frame but the stopped one, and one interrupted by a signal,
     * holds a return address: the call is the byte before it. */
    bool return_address = i > 0 && !signal_frame[i - 1];
    size_t room = CAPTURE_FRAMES_MAX - count;
    size_t k = symbolize(c->symbolizer, ips[i], return_address, &scratch[count],
                         room < INLINE_DEPTH_MAX ? room : INLINE_DEPTH_MAX);
    struct native_frame *real = &scratch[count + k - 1];
    /* libunwind's name is the nearest exported symbol before the address,
     * whatever its size: right only where libdw knew nothing at all, not
     * for a static function of a stripped library, which it would name
     * wrongly after an unrelated neighbour. */
    if (!real->function && !real->module) {
      char name[256];
      uint64_t off;
      uint64_t lookup = return_address ? ips[i] - 1 : ips[i];
      if (unwinder_proc_name(c->unwinder, lookup, name, sizeof(name), &off)) {
        real->function = strdup(name);
        real->offset = off + (ips[i] - lookup);
      }
    }
    count += k;
  }
  tc->frames = calloc(count ? count : 1, sizeof(*tc->frames));
  if (!tc->frames) {
    for (size_t i = 0; i < count; i++)
      native_frame_clear(&scratch[i]);
    snprintf(tc->error, sizeof(tc->error), "out of memory");
    return;
  }
  /* Outermost first, like a Python traceback and the original perpetuo. */
  for (size_t i = 0; i < count; i++)
    tc->frames[i] = scratch[count - 1 - i];
  tc->frame_count = count;
}

/* Rereads the target's maps; a change of modules drops what depends on
 * them. */
static void refresh_maps(struct capturer *c) {
  uint64_t old_hash = c->maps.modules_hash;
  bool had_maps = c->maps_read;
  if (maps_read(&c->maps, c->pid) == 0)
    c->maps_read = true;
  bool changed = !had_maps || c->maps.modules_hash != old_hash;
  unwinder_set_maps(c->unwinder, c->maps_read ? &c->maps : NULL, changed);
  if (changed)
    symbolizer_refresh(c->symbolizer);
}

void capturer_warm(struct capturer *c) {
  refresh_maps(c);
  symbolizer_warm(c->symbolizer);
}

/* Matches each Python thread to the OS thread running it, and finds the
 * GIL holder; runs while the threads are stopped. */
struct python_visit {
  struct capturer *c;
  const struct capture_request *req;
  struct capture *cap;
  bool *matched; /* per Python thread */
};

static void visit_python(void *ctx, struct frozen_thread *threads, size_t n,
                         int64_t deadline_ns) {
  struct python_visit *v = ctx;
  struct py_snapshot *py = &v->cap->py;
  pyreader_read(v->c->pyreader, v->req->python, v->req->locals, deadline_ns,
                py);
  for (size_t j = 0; j < py->count; j++) {
    const struct py_thread *pt = &py->threads[j];
    for (size_t i = 0; i < n; i++) {
      struct frozen_thread *f = &threads[i];
      /* Before 3.11 a thread state knows only its pthread_t: found as the
       * thread pointer of a stopped thread. */
      bool same = pt->native_id
                      ? f->tid == pt->native_id
                      : f->thread_pointer && f->thread_pointer == pt->thread_id;
      if (!same || v->cap->threads[i].py)
        continue;
      v->cap->threads[i].py = pt;
      v->matched[j] = true;
      if (v->req->gil_holder && pt->gil_holder)
        f->relevant = f->want_stack = true;
      break;
    }
  }
}

/* Python threads no OS thread was found for (a thread state of a thread
 * that is starting or ending): shown all the same, without a tid. */
static void add_unmatched(struct capture *cap, const bool *matched) {
  size_t extra = 0;
  for (size_t j = 0; j < cap->py.count; j++)
    extra += !matched[j];
  if (!extra)
    return;
  struct thread_capture *grown =
      realloc(cap->threads, (cap->count + extra) * sizeof(*grown));
  if (!grown)
    return;
  cap->threads = grown;
  for (size_t j = 0; j < cap->py.count; j++)
    if (!matched[j])
      cap->threads[cap->count++] =
          (struct thread_capture){.py = &cap->py.threads[j]};
}

/* Where the innermost Python frame's eval loop is in a native stack: the
 * frames after it are what that Python frame called into. */
static size_t native_tail(const struct thread_capture *tc) {
  for (size_t i = tc->frame_count; i-- > 0;) {
    /* Also a part the compiler split off it, "_PyEval_EvalFrameDefault.cold".
     */
    static const char eval[] = "_PyEval_EvalFrameDefault";
    const char *f = tc->frames[i].function;
    if (f && strncmp(f, eval, sizeof(eval) - 1) == 0 &&
        (f[sizeof(eval) - 1] == '\0' || f[sizeof(eval) - 1] == '.'))
      return i + 1;
  }
  return tc->frame_count;
}

static void move_to_front(struct capture *cap, struct frozen_thread *frozen,
                          size_t i) {
  struct thread_capture tc = cap->threads[i];
  struct frozen_thread f = frozen[i];
  memmove(&cap->threads[1], &cap->threads[0], i * sizeof(tc));
  memmove(&frozen[1], &frozen[0], i * sizeof(f));
  cap->threads[0] = tc;
  frozen[0] = f;
}

void capture_take(struct capturer *c, const struct capture_request *req,
                  struct capture *cap) {
  int64_t start = now_ns();
  int n = 0;
  *cap = (struct capture){0};
  refresh_maps(c);
  bool *matched = NULL;
  if (req->python && !c->pyreader)
    c->pyreader = pyreader_new(c->pid);
  cap->python = req->python && c->pyreader;

  /* Which threads: the relevant one alone when we can name it and no one
   * asked for all; else all (to find it by its pthread_t, or for want of
   * knowing which it is, or for their Python stacks). */
  bool resolve_by_pthread = req->want_relevant && !req->tid && req->pthread_id;
  bool everyone =
      c->all_threads || cap->python || (req->want_relevant && !req->tid);
  struct frozen_thread *frozen = NULL;
  pid_t *tids = calloc(CAPTURE_THREADS_MAX, sizeof(*tids));
  if (!tids) {
    snprintf(cap->error, sizeof(cap->error), "no stacks: out of memory");
    goto out;
  }
  if (everyone) {
    n = thread_list(c->pid, tids, CAPTURE_THREADS_MAX);
    if (n < 0) {
      snprintf(cap->error, sizeof(cap->error),
               "no stacks: cannot list the threads of pid %d: %s", (int)c->pid,
               strerror(-n));
      goto out;
    }
  }
  if (req->want_relevant && req->tid) {
    /* The relevant thread goes first, whatever the order of the list. */
    int at = -1;
    for (int i = 0; i < n; i++)
      if (tids[i] == req->tid)
        at = i;
    if (at < 0) {
      if (n == CAPTURE_THREADS_MAX)
        n--;
      memmove(&tids[1], &tids[0], (size_t)n * sizeof(*tids));
      n++;
    } else {
      memmove(&tids[1], &tids[0], (size_t)at * sizeof(*tids));
    }
    tids[0] = req->tid;
  }
  if (n == 0)
    goto out; /* nothing asked for: a tracker that names no thread */

  cap->threads = calloc((size_t)n, sizeof(*cap->threads));
  frozen = calloc((size_t)n, sizeof(*frozen));
  if (!cap->threads || !frozen) {
    snprintf(cap->error, sizeof(cap->error), "no stacks: out of memory");
    goto out;
  }
  cap->count = (size_t)n;
  for (int i = 0; i < n; i++) {
    struct thread_capture *tc = &cap->threads[i];
    tc->tid = tids[i];
    tc->relevant = req->want_relevant && req->tid && i == 0;
    /* Thread ids come from the target's own memory: only one that /proc
     * shows among its threads is ever stopped, never another process's. */
    bool ours = thread_state_read(c->pid, tc->tid, &tc->state);
    thread_name(c->pid, tc->tid, tc->name, sizeof(tc->name));
    frozen[i].tid = ours ? tids[i] : 0;
    frozen[i].relevant = tc->relevant;
    /* Native stacks: the relevant thread's; every thread's when asked, or
     * when there is no telling which is relevant and no Python stack to
     * show instead. */
    frozen[i].want_stack = c->all_threads || tc->relevant ||
                           (!cap->python && (!req->want_relevant ||
                                             (!req->tid && !req->pthread_id)));
  }
  cap->relevant_found = req->want_relevant && req->tid;

  struct python_visit visit = {.c = c, .req = req, .cap = cap};
  if (cap->python) {
    matched = calloc(PY_THREADS_MAX, sizeof(*matched));
    if (!matched)
      cap->python = false;
  }
  visit.matched = matched;
  int err =
      freeze_threads(c->pid, frozen, (size_t)n, c->maps_read ? &c->maps : NULL,
                     resolve_by_pthread ? req->pthread_id : 0,
                     cap->python ? visit_python : NULL, &visit, &cap->freeze);
  if (err == -EPERM) {
    ptrace_denied(cap, c->pid, tids[0]);
    goto out;
  }
  if (cap->python)
    pyreader_format(c->pyreader, req->python, &cap->py);
  if (!cap->relevant_found) {
    /* Found while stopped: by its pthread_t, or as the GIL holder. */
    for (int i = 0; i < n; i++)
      if (frozen[i].relevant) {
        cap->threads[i].relevant = true;
        cap->relevant_found = true;
        move_to_front(cap, frozen, (size_t)i);
        break;
      }
  }

  uint64_t *ips = calloc(UNWIND_MAX_FRAMES, sizeof(*ips));
  bool *signal_frame = calloc(UNWIND_MAX_FRAMES, sizeof(*signal_frame));
  struct native_frame *scratch = calloc(CAPTURE_FRAMES_MAX, sizeof(*scratch));
  for (int i = 0; i < n; i++) {
    struct thread_capture *tc = &cap->threads[i];
    tc->status = frozen[i].status;
    if (!frozen[i].want_stack) {
      continue;
    }
    if (frozen[i].status == FROZEN_FAILED) {
      snprintf(tc->error, sizeof(tc->error), "ptrace refused: %s",
               strerror(frozen[i].error));
      continue;
    }
    if (frozen[i].status != FROZEN_STOPPED) {
      snprintf(tc->error, sizeof(tc->error), "%s",
               frozen_status_why(frozen[i].status));
      continue;
    }
    if (ips && signal_frame && scratch)
      unwind_and_name(c, &frozen[i], tc, ips, signal_frame, scratch);
    if (tc->py)
      tc->native_tail = native_tail(tc);
  }
  free(ips);
  free(signal_frame);
  free(scratch);
  /* Threads stopped only to be looked at, and running no Python, are not
   * shown. */
  size_t kept = 0;
  for (size_t i = 0; i < cap->count; i++) {
    if (!frozen[i].want_stack && !cap->threads[i].py)
      continue;
    cap->threads[kept++] = cap->threads[i];
  }
  cap->count = kept;
  if (cap->python)
    add_unmatched(cap, matched);

out:
  if (frozen)
    freeze_release(frozen, n > 0 ? (size_t)n : 0);
  free(frozen);
  free(tids);
  free(matched);
  cap->total_ns = now_ns() - start;
}

void capture_free(struct capture *cap) {
  for (size_t i = 0; i < cap->count; i++) {
    for (size_t j = 0; j < cap->threads[i].frame_count; j++)
      native_frame_clear(&cap->threads[i].frames[j]);
    free(cap->threads[i].frames);
  }
  free(cap->threads);
  py_snapshot_free(&cap->py);
  *cap = (struct capture){0};
}
