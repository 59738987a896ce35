#include "config.h"

#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#include "freeze.h"

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

static unsigned char *pool;
static size_t pool_used;

void freeze_prepare(void) {
  /* Taken by sigtimedwait() in wait_for_tracee(), never delivered. */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  if (pool)
    return;
  void *p = mmap(NULL, FREEZE_POOL_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p != MAP_FAILED)
    pool = p;
}

/* Room for a copy of `len` bytes: from the pool while it lasts. */
static unsigned char *copy_buffer(struct frozen_thread *t, size_t len) {
  if (pool && FREEZE_POOL_SIZE - pool_used >= len) {
    unsigned char *b = pool + pool_used;
    pool_used += (len + 63) & ~(size_t)63;
    t->stack_owned = false;
    return b;
  }
  t->stack_owned = true;
  return malloc(len);
}

/*
 * Whether some tracee may still need us: a thread seized that had not
 * stopped when we gave up waiting, or one that died traced. They are not
 * listed: outside freeze_threads() every tracee of ours is one of them, and
 * the watcher has no children, so whatever waitpid(-1) reports is ours to
 * detach or reap, however many there are.
 */
static bool lingering;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * For fault-injection tests only: keep the threads stopped this long, so a
 * test can kill the watcher or the target in the middle of a capture.
 */
static int64_t test_hold_ns(void) {
  static int64_t hold = -1;
  if (hold < 0) {
    const char *v = getenv("PERPETUO_TEST_FREEZE_HOLD_MS");
    long ms = v ? strtol(v, NULL, 10) : 0;
    hold = (ms > 0 && ms <= 5000) ? (int64_t)ms * 1000000 : 0;
  }
  return hold;
}

/*
 * Waits until a tracee may have changed state, or `left_ns` passed. The
 * kernel sends the tracer SIGCHLD on every stop of a tracee; SIGCHLD is
 * blocked (freeze_prepare), so it stays pending until taken here, and one
 * that came before this call returns at once: no stop is missed, and none is
 * noticed a timer slack late, as after a sleep.
 */
static void wait_for_tracee(int64_t waited_ns, int64_t left_ns) {
  if (left_ns <= 0)
    return;
  /* Most threads stop within tens of microseconds: for those, looking
   * again at once beats being woken, which costs a wakeup's latency. */
  if (waited_ns < 100000) {
    sched_yield();
    return;
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  struct timespec ts = {left_ns / 1000000000, left_ns % 1000000000};
  sigtimedwait(&chld, NULL, &ts);
}

/* The signal to hand back on detach, so that stopping it loses nothing. */
static int signal_to_reinject(int status) {
  int event = status >> 16;
  int sig = WSTOPSIG(status);
  if (event == 0)
    return sig; /* a signal-delivery-stop: the signal is in our hands */
  return 0;     /* PTRACE_EVENT_STOP: our interrupt, or a group-stop */
}

/* Forget a thread we traced that is dead: reap what the kernel keeps for us. */
static void reap_if_dead(pid_t tid) {
  int status;
  while (waitpid(tid, &status, __WALL | WNOHANG) < 0 && errno == EINTR)
    ;
}

void freeze_settle(void) {
  while (lingering) {
    int status;
    pid_t r = waitpid(-1, &status, __WALL | WNOHANG);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      lingering = false; /* ECHILD: no tracee left at all */
      return;
    }
    if (r == 0)
      return; /* the others still run: they stop later */
    if (WIFSTOPPED(status))
      ptrace(PTRACE_DETACH, r, 0, (void *)(intptr_t)signal_to_reinject(status));
    /* Else it exited, and is now reaped. */
  }
}

bool freeze_lingering(void) { return lingering; }

static bool read_regs(pid_t tid, struct user_regs_struct *regs) {
  struct iovec iov = {.iov_base = regs, .iov_len = sizeof(*regs)};
  return ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) == 0 &&
         iov.iov_len == sizeof(*regs);
}

static uint64_t stack_pointer(const struct user_regs_struct *regs) {
#if defined(__x86_64__)
  return regs->rsp;
#elif defined(__aarch64__)
  return regs->sp;
#else
#error "perpetuo's watcher knows the registers of x86-64 and aarch64 only"
#endif
}

/* On x86-64, glibc's pthread_t is the thread's %fs base. */
static uint64_t thread_pointer(const struct user_regs_struct *regs) {
#if defined(__x86_64__)
  return regs->fs_base;
#else
  return 0; /* aarch64 keeps it in TPIDR_EL0, past a TCB: not mapped yet */
#endif
}

static void copy_stack(pid_t pid, struct frozen_thread *t,
                       const struct maps *maps) {
  uint64_t sp = stack_pointer(&t->regs);
  uint64_t start = sp > FREEZE_RED_ZONE ? sp - FREEZE_RED_ZONE : 0;
  const struct mapping *m = maps ? maps_find(maps, sp) : NULL;
  if (m && m->start > start)
    start = m->start;
  uint64_t end =
      start + (t->relevant ? FREEZE_STACK_MAX : FREEZE_OTHER_STACK_MAX);
  if (m) {
    t->stack_end = m->end;
    if (m->end < end)
      end = m->end;
    else
      t->stack_truncated = true;
  } else {
    end = start + (64u << 10); /* a stack we do not know: a modest copy */
    t->stack_truncated = true;
  }
  size_t len = (size_t)(end - start);
  t->stack = copy_buffer(t, len);
  if (!t->stack)
    return;
  struct iovec local = {.iov_base = t->stack, .iov_len = len};
  struct iovec remote = {.iov_base = (void *)(uintptr_t)start, .iov_len = len};
  /* Stops at the first unreadable page: what was read is still good. */
  ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (got <= 0) {
    if (t->stack_owned)
      free(t->stack);
    t->stack = NULL;
    return;
  }
  t->stack_start = start;
  t->stack_len = (size_t)got;
}

int freeze_threads(pid_t pid, struct frozen_thread *threads, size_t n,
                   const struct maps *maps, uint64_t wanted_pthread,
                   freeze_visit_fn *visit, void *ctx,
                   struct freeze_result *result) {
  *result = (struct freeze_result){0};
  size_t seized = 0;
  bool denied = false;
  for (size_t i = 0; i < n; i++) {
    struct frozen_thread *t = &threads[i];
    t->status = FROZEN_NOT_TRIED;
    t->stack = NULL;
    t->stack_owned = false;
    t->stack_len = 0;
    t->stack_truncated = false;
    t->stack_end = 0;
    t->traced = t->stopped = false;
    t->thread_pointer = 0;
    if (t->tid <= 0) {
      t->status = FROZEN_GONE; /* not a thread of the target (any more) */
    } else if (ptrace(PTRACE_SEIZE, t->tid, 0, 0) == 0) {
      t->traced = true;
      seized++;
    } else if (errno == ESRCH) {
      t->status = FROZEN_GONE;
    } else {
      t->status = FROZEN_FAILED;
      t->error = errno;
      denied |= errno == EPERM;
    }
  }
  if (!seized)
    return denied ? -EPERM : 0;

  int64_t start = now_ns();
  for (size_t i = 0; i < n; i++)
    if (threads[i].traced &&
        ptrace(PTRACE_INTERRUPT, threads[i].tid, 0, 0) < 0 && errno == ESRCH)
      threads[i].status = FROZEN_GONE; /* dying: waitpid will say */

  /* Wait for them all to stop, but not for ever. */
  for (;;) {
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
      struct frozen_thread *t = &threads[i];
      if (!t->traced || t->stopped)
        continue;
      int status;
      pid_t r = waitpid(t->tid, &status, __WALL | WNOHANG);
      if (r == 0 || (r < 0 && errno == EINTR)) {
        pending++;
      } else if (r == t->tid && WIFSTOPPED(status)) {
        t->stopped = true;
        t->wait_status = status;
        t->status = FROZEN_STOPPED;
      } else {
        t->traced = false; /* exited or killed, and now reaped */
        t->status = FROZEN_GONE;
      }
    }
    if (!pending || now_ns() - start > FREEZE_STOP_WAIT_NS)
      break;
    int64_t waited = now_ns() - start;
    wait_for_tracee(waited, FREEZE_STOP_WAIT_NS - waited);
  }
  result->stop_ns = now_ns() - start;

  for (size_t i = 0; i < n; i++) {
    struct frozen_thread *t = &threads[i];
    if (!t->stopped)
      continue;
    result->stopped++;
    if (now_ns() - start > FREEZE_BUDGET_NS * 9 / 10) {
      t->status = FROZEN_NOT_TRIED; /* out of time: resume it untouched */
      continue;
    }
    if (!read_regs(t->tid, &t->regs)) {
      t->status = FROZEN_GONE; /* killed while stopped */
      continue;
    }
    t->thread_pointer = thread_pointer(&t->regs);
    if (wanted_pthread && t->thread_pointer == wanted_pthread)
      t->want_stack = t->relevant = true;
  }
  /* What is read here is read with every thread stopped: consistent. */
  if (visit)
    visit(ctx, threads, n, start + FREEZE_BUDGET_NS * 7 / 10);
  for (size_t i = 0; i < n; i++) {
    struct frozen_thread *t = &threads[i];
    if (t->status != FROZEN_STOPPED || !t->want_stack)
      continue;
    if (now_ns() - start > FREEZE_BUDGET_NS * 9 / 10)
      t->status = FROZEN_NOT_TRIED; /* out of time: resume it untouched */
    else
      copy_stack(pid, t, maps);
  }

  int64_t hold = test_hold_ns();
  if (hold) {
    struct timespec ts = {hold / 1000000000, hold % 1000000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
      ;
  }

  for (size_t i = 0; i < n; i++) {
    struct frozen_thread *t = &threads[i];
    if (!t->traced)
      continue;
    if (!t->stopped) {
      t->status = FROZEN_NO_STOP;
      lingering = true;
      continue;
    }
    int sig = signal_to_reinject(t->wait_status);
    if (ptrace(PTRACE_DETACH, t->tid, 0, (void *)(intptr_t)sig) < 0) {
      reap_if_dead(t->tid);
      lingering = true; /* not dead yet, or a leader with threads to go */
    }
  }
  result->pause_ns = now_ns() - start;
  /* A dead leader can be reaped only after its other threads: now, so that
   * its parent's wait is not held up until the watcher exits. */
  freeze_settle();
  return 0;
}

void freeze_release(struct frozen_thread *threads, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (threads[i].stack_owned)
      free(threads[i].stack);
    threads[i].stack = NULL;
    threads[i].stack_owned = false;
  }
  pool_used = 0;
}
