/*
 * perpetuo: find stalls (code that keeps an event loop, or the GIL, for too
 * long) while they happen, from a separate watcher process.
 *
 * This header is the complete reference of libperpetuo's C API. It includes
 * only <stddef.h> and <stdint.h> and may be compiled as C99 or later, or C++.
 *
 * Conventions, for every function below:
 *  - Functions that can fail return an int: 0 on success, or a negative errno
 *    value, or one of the PERPETUO_E* codes (which never collide with errno).
 *    perpetuo_strerror() describes either kind.
 *  - Constructors hand their object back through their first argument (`ret`),
 *    which is left untouched on failure.
 *  - The library never prints, never aborts, and never raises signals.
 *  - The ABI is stable: see docs/ABI.md. Options structs start with their own
 *    size and only ever grow at the end.
 */
#ifndef PERPETUO_H
#define PERPETUO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PERPETUO_BUILDING) && defined(__GNUC__)
#define PERPETUO_EXPORT __attribute__((visibility("default")))
#else
#define PERPETUO_EXPORT
#endif

/* ---------------------------------------------------------------- version */

#define PERPETUO_VERSION_MAJOR 1
#define PERPETUO_VERSION_MINOR 2
#define PERPETUO_VERSION_PATCH 0
/* 0xMMmmpp, comparable with perpetuo_version_number(). */
#define PERPETUO_VERSION_HEX                                                   \
  ((PERPETUO_VERSION_MAJOR << 16) | (PERPETUO_VERSION_MINOR << 8) |            \
   PERPETUO_VERSION_PATCH)

/* The version of the library actually loaded, as "1.0.0". Never NULL. */
PERPETUO_EXPORT const char *perpetuo_version(void);

/* The version of the library actually loaded, as PERPETUO_VERSION_HEX. */
PERPETUO_EXPORT unsigned perpetuo_version_number(void);

/* ----------------------------------------------------------------- errors */

/*
 * perpetuo's own error codes. errno values are below 4096, so these can never
 * be mistaken for one. Codes are only ever appended, never renumbered.
 */
enum perpetuo_error {
  /* perpetuo_tracker_enter() on a tracker that is already active. */
  PERPETUO_EACTIVE = -10001,
  /* perpetuo_tracker_leave() on a tracker that is already idle. */
  PERPETUO_EIDLE = -10002,
  /* The watcher process exited, or failed, before it started watching. */
  PERPETUO_EWATCHER = -10003,
  /* The watcher did not confirm it was watching within the start timeout. */
  PERPETUO_EWATCHER_TIMEOUT = -10004
};

/*
 * A one-sentence description of `error` (a PERPETUO_E* code or a negative
 * errno value; positive errno values are accepted too). Never NULL; the
 * string is static and must not be freed. Thread-safe.
 */
PERPETUO_EXPORT const char *perpetuo_strerror(int error);

/* --------------------------------------------------------------- counters */

/*
 * The counter protocol (a fixed part of the ABI). A tracker is one 64-bit
 * counter with exactly one writing thread: odd means active (inside a task
 * step, a loop iteration, holding the GIL), even means idle. Entering and
 * leaving each add one. With one writer, a tick is a plain load and a release
 * store: no lock prefix, no syscall, no clock read. The watcher reads the
 * counter from outside; a counter it sees odd and unchanged for longer than
 * the tracker's threshold is a stall.
 *
 * These inline functions are the hot path. They do no checking: entering an
 * active counter makes it idle. Only the counter's one writer may call them.
 */
static inline void perpetuo_counter_tick(uint64_t *counter) {
#if defined(__GNUC__) || defined(__clang__)
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + 1,
                   __ATOMIC_RELEASE);
#else
  *(volatile uint64_t *)counter = *(volatile uint64_t *)counter + 1;
#endif
}

/* Go active: the counter must be even (idle). */
static inline void perpetuo_counter_enter(uint64_t *counter) {
  perpetuo_counter_tick(counter);
}

/* Go idle: the counter must be odd (active). */
static inline void perpetuo_counter_leave(uint64_t *counter) {
  perpetuo_counter_tick(counter);
}

/* 1 if the counter is odd (active), 0 if it is even (idle). */
static inline int perpetuo_counter_is_active(const uint64_t *counter) {
#if defined(__GNUC__) || defined(__clang__)
  return (int)(__atomic_load_n(counter, __ATOMIC_RELAXED) & 1u);
#else
  return (int)(*(const volatile uint64_t *)counter & 1u);
#endif
}

/* --------------------------------------------------------------- trackers */

/* A registered tracker. Opaque; create with perpetuo_tracker_new(). */
typedef struct perpetuo_tracker perpetuo_tracker_t;

/* Which thread a stall of a tracker is to be blamed on. */
enum perpetuo_thread_hint {
  /* The thread that registered the tracker (the default). */
  PERPETUO_THREAD_REGISTRAR = 0,
  /* No particular thread. */
  PERPETUO_THREAD_NONE = 1,
  /* thread_id is a Linux thread id (gettid()). */
  PERPETUO_THREAD_NATIVE = 2,
  /* thread_id is a pthread_t, which is also Python's threading.get_ident(). */
  PERPETUO_THREAD_PTHREAD = 3,
  /* Whichever thread holds the Python GIL when the stall is seen. */
  PERPETUO_THREAD_GIL_HOLDER = 4
};

/*
 * Options of a tracker. Call perpetuo_tracker_options_init() first: it sets
 * `size` and every default; then change the fields you need. Fields are only
 * ever appended, each marked with the release that added it.
 */
typedef struct perpetuo_tracker_options {
  size_t size; /* sizeof(perpetuo_tracker_options_t), set by _init. */
  /* 1.0 */
  int thread_hint;       /* enum perpetuo_thread_hint; default REGISTRAR. */
  uint64_t thread_id;    /* for PERPETUO_THREAD_NATIVE and _PTHREAD. */
  uint32_t threshold_ms; /* stall threshold; 0 (default): the watcher's
                            alert interval. At most 86400000 (one day). */
  int initially_active;  /* 1: the tracker starts active (odd); default 0. */
} perpetuo_tracker_options_t;

/* Fills `opts` with the defaults and sets opts->size. Never fails. */
PERPETUO_EXPORT void
perpetuo_tracker_options_init(perpetuo_tracker_options_t *opts);

/*
 * Registers a tracker whose counter lives in this process's perpetuo region,
 * and hands it back in *ret. `name` names it in reports: a NUL-terminated
 * string, UTF-8 by convention, not empty; names longer than
 * PERPETUO_TRACKER_NAME_MAX bytes are truncated (at a UTF-8 character
 * boundary). `opts` may be NULL for the defaults. The slot also records the
 * calling thread's native id, pthread id and name, so reports can name it.
 *
 * Errors: -EINVAL (NULL ret or name, empty name, bad options), -ENOSPC (all
 * PERPETUO_TRACKER_MAX slots are in use), -ENOMEM (the region could not be
 * mapped). Thread-safe.
 */
#define PERPETUO_TRACKER_NAME_MAX 127
#define PERPETUO_TRACKER_MAX 1024
PERPETUO_EXPORT int
perpetuo_tracker_new(perpetuo_tracker_t **ret, const char *name,
                     const perpetuo_tracker_options_t *opts);

/*
 * Registers a tracker whose counter is at `counter`, an address the caller
 * owns and keeps valid until perpetuo_tracker_free(). This is how a counter
 * inside an application's own structure, or a patched CPython's GIL counter,
 * is watched. The counter must follow the counter protocol above; its value
 * is left as it is (opts->initially_active is ignored). Errors and
 * thread-safety as perpetuo_tracker_new(); -EINVAL also for a NULL or
 * misaligned counter.
 */
PERPETUO_EXPORT int
perpetuo_tracker_new_external(perpetuo_tracker_t **ret, const char *name,
                              uint64_t *counter,
                              const perpetuo_tracker_options_t *opts);

/*
 * A contention rule (1.2): a tracker without a counter, for a lock that
 * someone else maintains, such as the GIL of an unmodified CPython. The
 * lock's holder hands it over from time to time, counting handovers; a
 * thread that wants it sets a request flag. The tracker is active while the
 * request flag is set, and it stalls when the flag stays set while no
 * handover happens for longer than its threshold: a thread has waited that
 * long, and the holder has not let go. Nobody waiting is never a stall.
 *
 * `handovers` is the address of a 64-bit counter that changes at every
 * handover. `request` is the address of the 32-bit word holding the flag,
 * `request_mask` the bits of it that say a thread waits. With
 * PERPETUO_CONTENTION_VIA_HOLDER in `flags`, the word belongs to the
 * holder: `holder` is the address of a pointer to the holder, and `request`
 * the word's offset from what it points to (a multiple of 4, at most
 * 65536). All addresses are in this process and must stay readable while
 * the tracker is registered; the watcher reads them at each poll.
 */
typedef struct perpetuo_contention {
  uint64_t handovers;
  uint64_t request;
  uint32_t request_mask;
  uint32_t flags;
  uint64_t holder;
} perpetuo_contention_t;

#define PERPETUO_CONTENTION_VIA_HOLDER 0x1u

/*
 * Registers a tracker for a contention rule (above). It has no counter:
 * perpetuo_tracker_counter() returns NULL, and enter, leave and is_active
 * return -EINVAL. Errors and thread-safety as perpetuo_tracker_new();
 * -EINVAL also for a NULL rule, a zero or misaligned address, a zero mask,
 * unknown flags. (1.2)
 */
PERPETUO_EXPORT int
perpetuo_tracker_new_contention(perpetuo_tracker_t **ret, const char *name,
                                const perpetuo_contention_t *rule,
                                const perpetuo_tracker_options_t *opts);

/*
 * Releases a tracker; its slot is reused by later registrations, so no thread
 * may tick its counter afterwards. NULL is accepted and does nothing.
 * Returns 0, or -EBUSY, leaving the tracker registered, when the tracker has
 * its counter in the region and it is active: a thread is presumably still
 * inside it and would tick a slot that someone else may own next. Call
 * perpetuo_tracker_leave() first. Thread-safe with respect to other trackers.
 */
PERPETUO_EXPORT int perpetuo_tracker_free(perpetuo_tracker_t *tracker);

/*
 * The tracker's counter: in the region, or the caller's for an external
 * tracker. Pass it to perpetuo_counter_enter() and _leave() on the hot path.
 * Valid until perpetuo_tracker_free(). Returns NULL for a NULL tracker, and
 * for a contention tracker, which has none.
 */
PERPETUO_EXPORT uint64_t *
perpetuo_tracker_counter(const perpetuo_tracker_t *tracker);

/*
 * A detail the tracker's thread publishes about what it does now (the task
 * it steps, the request it serves), which the watcher reports with a stall:
 * `length` bytes of UTF-8 at `text`, in this process. The watcher reads them
 * when it reports a stall, so they must stay readable while the tracker is
 * active; at most PERPETUO_DETAIL_MAX bytes are shown. Only the tracker's
 * one writer may set it; it is read without synchronization, so a detail
 * changed at the very moment of a report may show half old, half new (never
 * anything outside the bytes given, and always escaped).
 */
typedef struct perpetuo_detail {
  uint64_t text;   /* (uintptr_t) the bytes */
  uint64_t length; /* 0: no detail */
} perpetuo_detail_t;

#define PERPETUO_DETAIL_MAX 256

/*
 * The tracker's detail, to set with perpetuo_detail_set() on the hot path.
 * Valid until perpetuo_tracker_free(), which clears it. NULL for a NULL
 * tracker. (1.1)
 */
PERPETUO_EXPORT perpetuo_detail_t *
perpetuo_tracker_detail(perpetuo_tracker_t *tracker);

/* Publishes `length` bytes at `text` (NULL or 0: no detail). */
static inline void perpetuo_detail_set(perpetuo_detail_t *detail,
                                       const char *text, size_t length) {
#if defined(__GNUC__) || defined(__clang__)
  __atomic_store_n(&detail->length, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&detail->text, (uint64_t)(uintptr_t)text, __ATOMIC_RELAXED);
  __atomic_store_n(&detail->length, text ? (uint64_t)length : 0,
                   __ATOMIC_RELEASE);
#else
  *(volatile uint64_t *)&detail->length = 0;
  *(volatile uint64_t *)&detail->text = (uint64_t)(uintptr_t)text;
  *(volatile uint64_t *)&detail->length = text ? (uint64_t)length : 0;
#endif
}

/*
 * For language bindings: publishes a description of this process's language
 * runtime (where a Python interpreter keeps its threads and frames), which
 * the watcher uses to read that runtime's stacks from outside. `data` is
 * `size` bytes in the format of the region's runtime block
 * (docs/protocol.md); the Python extension writes it when it is imported.
 * A later call replaces it. Returns 0, -EINVAL (NULL data, or size 0 or
 * over PERPETUO_RUNTIME_LAYOUT_MAX), or -errno if the region could not be
 * created. (1.2)
 */
#define PERPETUO_RUNTIME_LAYOUT_MAX 3840
PERPETUO_EXPORT int perpetuo_runtime_layout_publish(const void *data,
                                                    size_t size);

/*
 * Checked ticks: go active, go idle. Return 0, PERPETUO_EACTIVE or
 * PERPETUO_EIDLE when the tracker is already in that state (nothing changes),
 * or -EINVAL for NULL. Only the counter's one writing thread may call them.
 */
PERPETUO_EXPORT int perpetuo_tracker_enter(perpetuo_tracker_t *tracker);
PERPETUO_EXPORT int perpetuo_tracker_leave(perpetuo_tracker_t *tracker);

/* 1 if active, 0 if idle, -EINVAL for NULL. */
PERPETUO_EXPORT int
perpetuo_tracker_is_active(const perpetuo_tracker_t *tracker);

/* ---------------------------------------------------------------- watcher */

/*
 * Options of the watcher. Call perpetuo_watch_options_init() first: it sets
 * `size` and every default; then change the fields you need. Fields are only
 * ever appended, each marked with the release that added it.
 */
typedef struct perpetuo_watch_options {
  size_t size; /* sizeof(perpetuo_watch_options_t), set by _init. */
  /* 1.0 */
  uint32_t poll_interval_ms;  /* default 50 (as the original); 1 to 60000. */
  uint32_t alert_interval_ms; /* default threshold: 200; 1 to 86400000. */
  uint32_t traceback_suppress_ms; /* at most one traceback per this long;
                                     default 30000; 0 to 86400000. */
  int print_locals;               /* default 1. */
  int json_mode;                  /* 1: JSON lines; default 0: text. */
  int output_fd;                  /* where reports go; default -1: this
                                     process's stderr (fd 2). */
  const char *output_path;        /* if not NULL, the watcher appends to this
                                     file instead of output_fd. */
  const char *watcher_path;       /* the watcher executable. NULL (default):
                                     $PERPETUO_WATCHER if set, else the
                                     installed one. */
  /* 1.1 */
  int native_stacks; /* default 1: on a stall, stop the stalled thread for a
                        moment (never more than 50 ms) to report its native
                        stack; 0: never stop this process. */
  int all_threads;   /* default 0; 1: stop every thread and report all
                        their stacks, not only the stalled thread's. */
} perpetuo_watch_options_t;

/* Fills `opts` with the defaults and sets opts->size. Never fails. */
PERPETUO_EXPORT void
perpetuo_watch_options_init(perpetuo_watch_options_t *opts);

/*
 * Starts a watcher process for this process and returns once it is watching:
 * a stall that begins after this returns is caught. The watcher is its own
 * process (not a child of this one, so nothing here needs to reap it), runs
 * until perpetuo_watch_stop() or until this process exits, and is allowed to
 * trace this process (PR_SET_PTRACER where Yama asks for it). `opts` may be
 * NULL for the defaults. The region is created if no tracker exists yet.
 *
 * Errors: -EALREADY (a watcher started by this process is running), -EINVAL
 * (bad options), -ENOENT / -EACCES (the watcher executable cannot be run),
 * PERPETUO_EWATCHER (it exited before watching: it says why on its output),
 * PERPETUO_EWATCHER_TIMEOUT (it did not confirm within 10 s; it is stopped),
 * other negative errno values from the system. Thread-safe.
 *
 * After fork(), the child has no watcher (the parent's goes on watching the
 * parent) and may start its own.
 */
PERPETUO_EXPORT int perpetuo_watch_start(const perpetuo_watch_options_t *opts);

/*
 * Stops the watcher this process started, and waits for it to detach (it
 * never leaves this process stopped). Returns 0, or -ESRCH when no watcher
 * was running. Thread-safe.
 */
PERPETUO_EXPORT int perpetuo_watch_stop(void);

/*
 * The pid of the watcher this process started, if it is still running;
 * 0 if there is none. Thread-safe.
 */
PERPETUO_EXPORT int perpetuo_watch_pid(void);

#ifdef __cplusplus
}
#endif

#endif /* PERPETUO_H */
