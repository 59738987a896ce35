/*
 * perpetuo, the watcher: attaches to an instrumented process, polls its
 * trackers from a libuv timer, and reports stalls while they happen.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "perpetuo.h"
#include "capture.h"
#include "detect.h"
#include "freeze.h"
#include "handshake.h"
#include "options.h"
#include "report.h"
#include "target.h"
#include "threadstate.h"

#define HANDSHAKE_TIMEOUT_MS 10000

/*
 * A tracker's thread's CPU time when its counter was first seen stuck, so a
 * stall report can say how much of the stall the thread spent on a CPU.
 */
struct cpu_baseline {
  bool valid;
  uint64_t generation, counter;
  pid_t tid;
  int64_t at_ns;
  uint64_t cpu_ns;
  long syscall_nr; /* the one it was last seen blocked in, or -1 */
};

struct watcher {
  struct watcher_options opts;
  struct target target;
  struct detector detector;
  struct reporter reporter;
  struct detect_sample *samples;
  struct detect_event *events;
  struct cpu_baseline *baselines;
  struct capturer capturer;
  bool capturer_ok;
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_timer_t warm;
  uv_poll_t exit_watch;
  uv_signal_t sigterm, sigint, sighup;
  bool stopping; /* stop_watching() has run: no more polls, no more records */
  int exit_status;
};

static int64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail_usage(const char *sentence) {
  fprintf(stderr, "perpetuo: %s.\n", sentence);
  exit(2);
}

static void emit_info(struct watcher *w, const char *severity,
                      const char *event, const char *message) {
  report_format_info(&w->reporter, severity, event, message,
                     clock_ns(CLOCK_MONOTONIC), clock_ns(CLOCK_REALTIME));
  reporter_flush(&w->reporter);
}

/* Notes the CPU time of threads whose tracker just got stuck. */
static void note_stuck_counters(struct watcher *w, size_t n, int64_t now) {
  for (size_t i = 0; i < n; i++) {
    const struct detect_sample *sample = &w->samples[i];
    const struct detect_tracker *dt = &w->detector.trackers[i];
    struct cpu_baseline *b = &w->baselines[i];
    bool stuck = sample->live && (sample->counter & 1) && dt->known &&
                 dt->generation == sample->generation &&
                 dt->counter == sample->counter;
    if (!stuck) {
      b->valid = false;
      continue;
    }
    if (b->valid && b->generation == sample->generation &&
        b->counter == sample->counter)
      continue;
    pid_t tid = slot_blamed_tid(&w->target.slots[i].slot);
    b->generation = sample->generation;
    b->counter = sample->counter;
    b->tid = tid;
    b->at_ns = now;
    b->syscall_nr = -1;
    b->valid = tid > 0 && thread_cpu_ns(w->target.pid, tid, &b->cpu_ns);
  }
}

/* The thread's state now and, for a stall, its stacks. */
static void learn_more(struct watcher *w, const struct detect_event *e,
                       struct blame *blame, int64_t now_ns,
                       struct stall_extra *x, struct capture *cap) {
  if (e->kind == DETECT_ENDED)
    return;
  x->detail_length =
      target_read_detail(&w->target, e->slot, x->detail, sizeof(x->detail));
  if (blame->tid > 0)
    x->state_known = thread_state_read(w->target.pid, blame->tid, &x->state);
  struct cpu_baseline *b = &w->baselines[e->slot];
  /* After our stop, a sleep goes on as restart_syscall: name what it is. */
  if (x->state_known && x->state.syscall_status == SYSCALL_IN) {
    if (syscall_is_restart(x->state.syscall_nr) && b->tid == blame->tid)
      x->state.restarted_nr = b->syscall_nr;
    else
      b->syscall_nr = x->state.syscall_nr;
  }
  if (x->state_known && x->state.cpu_known && b->valid &&
      b->tid == blame->tid && b->generation == e->generation &&
      x->state.cpu_ns >= b->cpu_ns) {
    x->cpu_known = true;
    x->cpu_ns = (int64_t)(x->state.cpu_ns - b->cpu_ns);
    x->window_ns = now_ns - b->at_ns;
  }
  bool names_thread = strcmp(blame->hint, "none") != 0;
  if (e->kind != DETECT_BEGAN || !e->traceback || w->opts.no_stacks ||
      !w->capturer_ok)
    return;
  struct perpetuo__pylayout layout;
  int python = target_read_pylayout(&w->target, &layout);
  if (!names_thread && !w->opts.all_threads && python <= 0)
    return;
  struct capture_request req = {.want_relevant = names_thread,
                                .tid = blame->tid,
                                .pthread_id = blame->pthread_id,
                                .gil_holder =
                                    strcmp(blame->hint, "gil_holder") == 0,
                                .python = python > 0 ? &layout : NULL,
                                .locals = w->opts.print_locals};
  capture_take(&w->capturer, &req, cap);
  if (python < 0)
    snprintf(cap->py.error, sizeof(cap->py.error), "no Python stacks: %s",
             pylayout_check(&layout));
  x->capture = cap;
  /* A pthread_t only the capture could resolve: now the record can name
   * the thread, with its state as read before it was stopped. */
  if (!blame->tid && cap->relevant_found && cap->count &&
      cap->threads[0].relevant) {
    const struct thread_capture *tc = &cap->threads[0];
    blame->tid = tc->tid;
    snprintf(blame->name, sizeof(blame->name), "%s", tc->name);
    x->state = tc->state;
    x->state_known = tc->state.valid;
  }
  uint64_t counter;
  if (target_read_counter(&w->target, e->slot, &counter) &&
      counter != w->detector.trackers[e->slot].counter)
    x->ended_during_capture = true;
}

static void emit_events(struct watcher *w, size_t count, int64_t now_ns) {
  int64_t wall = clock_ns(CLOCK_REALTIME);
  for (size_t i = 0; i < count; i++) {
    const struct detect_event *e = &w->events[i];
    const struct perpetuo__slot *slot = &w->target.slots[e->slot].slot;
    struct blame blame;
    blame_from_slot(slot, &w->target, &blame);
    struct stall_extra extra = {0};
    struct capture cap = {0};
    learn_more(w, e, &blame, now_ns, &extra, &cap);
    report_format_event(&w->reporter, e, slot, &blame, &extra, now_ns, wall);
    capture_free(&cap);
    int err = reporter_flush(&w->reporter);
    if (err == -EPIPE || err == -EBADF) {
      /* Nobody can read our reports any more: watching is pointless. */
      w->exit_status = 1;
      uv_stop(w->loop);
      return;
    }
  }
}

static void stop_watching(struct watcher *w, const char *why) {
  if (w->stopping)
    return;
  w->stopping = true;
  size_t count = detector_finish(&w->detector, w->events);
  emit_events(w, count, clock_ns(CLOCK_MONOTONIC));
  if (why)
    emit_info(w, "INFO", "watch_ended", why);
  uv_stop(w->loop);
}

static void poll_once(struct watcher *w) {
  if (w->stopping)
    return;
  freeze_settle();
  size_t n = 0;
  int err = target_poll(&w->target, w->samples, &n);
  if (err) {
    char why[160];
    if (err == -ESRCH)
      snprintf(why, sizeof(why), "pid %d exited; stopped watching",
               (int)w->target.pid);
    else
      snprintf(why, sizeof(why),
               "pid %d no longer has a valid perpetuo region (did it exec?); "
               "stopped watching",
               (int)w->target.pid);
    stop_watching(w, why);
    return;
  }
  /* Only an active tracker can stall, so only then is it worth a look at
   * whether someone else (a debugger, SIGSTOP) has the target stopped. */
  bool any_active = false;
  for (size_t i = 0; i < n && !any_active; i++)
    any_active = w->samples[i].live && (w->samples[i].counter & 1);
  bool stopped = any_active && target_is_stopped(&w->target);
  int64_t now = clock_ns(CLOCK_MONOTONIC);
  note_stuck_counters(w, n, now);
  size_t count =
      detector_poll(&w->detector, now, w->samples, n, stopped, w->events);
  emit_events(w, count, now);
}

static void on_timer(uv_timer_t *timer) { poll_once(timer->data); }

/* Once watching: the capturer's slow first steps, before any stall needs
 * them (the library's start is not held up: it has its answer already). */
static void on_warm(uv_timer_t *timer) {
  struct watcher *w = timer->data;
  if (!w->stopping)
    capturer_warm(&w->capturer);
  uv_close((uv_handle_t *)timer, NULL);
}

static void on_target_exit(uv_poll_t *handle, int status, int events) {
  struct watcher *w = handle->data;
  char why[96];
  snprintf(why, sizeof(why), "pid %d exited; stopped watching",
           (int)w->target.pid);
  stop_watching(w, why);
}

static void on_signal(uv_signal_t *handle, int signum) {
  struct watcher *w = handle->data;
  /* One last look, so a stall that ended since the last poll is reported
   * as ended, with its true length, rather than cut off. */
  poll_once(w);
  char why[96];
  snprintf(why, sizeof(why), "stopped watching pid %d (asked to, by %s)",
           (int)w->target.pid,
           signum == SIGTERM  ? "SIGTERM"
           : signum == SIGINT ? "SIGINT"
                              : "SIGHUP");
  stop_watching(w, why);
}

static void close_handle(uv_handle_t *handle, void *arg) {
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

/*
 * Spawned by libperpetuo: fork once more so we are not the target's child,
 * then tell the library our pid and wait until it has allowed us to trace it.
 */
static void daemonize_and_greet(int control_fd) {
  pid_t child = fork();
  if (child < 0)
    fail_usage("cannot fork");
  if (child > 0)
    _exit(0);
  struct perpetuo__hello hello = {.magic = PERPETUO__HELLO_MAGIC,
                                  .pid = (int32_t)getpid()};
  if (write(control_fd, &hello, sizeof(hello)) != (ssize_t)sizeof(hello))
    _exit(2);
  struct pollfd pfd = {.fd = control_fd, .events = POLLIN};
  char go = 0;
  int n;
  do
    n = poll(&pfd, 1, HANDSHAKE_TIMEOUT_MS);
  while (n < 0 && errno == EINTR);
  if (n <= 0 || read(control_fd, &go, 1) != 1 || go != PERPETUO__GO)
    _exit(2);
}

/* The target's descriptors we inherited are none of our business. */
static void close_inherited_fds(int keep_above) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)keep_above + 1, ~0u, 0) == 0)
    return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = keep_above + 1; fd < (max > 0 && max < 65536 ? max : 65536);
       fd++)
    close((int)fd);
}

static int open_output(const struct watcher_options *o) {
  if (!o->output_path)
    return o->output_fd;
  int fd =
      open(o->output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    char why[512];
    snprintf(why, sizeof(why), "cannot open %s for writing: %s", o->output_path,
             strerror(errno));
    fail_usage(why);
  }
  return fd;
}

static void start_message(struct watcher *w, char *out, size_t size) {
  const struct target *t = &w->target;
  int live = 0;
  for (uint32_t i = 0; i < t->slots_read; i++)
    live += t->slots[i].live;
  snprintf(out, size,
           "watching pid %d (%s): %d tracker%s; poll every %.3f s, stall after "
           "%.3f s",
           (int)t->pid, t->argc ? t->argv[0] : "?", live, live == 1 ? "" : "s",
           w->opts.poll_interval_ns / 1e9, w->opts.alert_interval_ns / 1e9);
}

int main(int argc, char **argv) {
  static struct watcher w;
  char why[512];
  if (watcher_options_parse(&w.opts, argc, argv, why, sizeof(why)) < 0)
    fail_usage(why);
  if (w.opts.help) {
    fputs(watcher_usage, stdout);
    return 0;
  }
  if (w.opts.version) {
    printf("perpetuo %s\n", PACKAGE_VERSION);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  if (w.opts.control_fd >= 0) {
    daemonize_and_greet(w.opts.control_fd);
    close_inherited_fds(PERPETUO__OUTPUT_FD);
  }
  int out_fd = open_output(&w.opts);

  if (target_open(&w.target, w.opts.pid, w.opts.region, why, sizeof(why)) < 0)
    fail_usage(why);
  struct detect_config config = {
      .default_threshold_ns = w.opts.alert_interval_ns,
      .traceback_suppress_ns = w.opts.traceback_suppress_ns,
      .gap_ns = w.opts.gap_ns,
  };
  if (!config.gap_ns) {
    /* A poll this late means the watcher itself was not running. */
    config.gap_ns = 3 * w.opts.poll_interval_ns;
    if (config.gap_ns < 100000000)
      config.gap_ns = 100000000;
  }
  uint32_t slots = w.target.header.slot_count;
  w.samples = calloc(slots, sizeof(*w.samples));
  w.events = calloc(slots, sizeof(*w.events));
  w.baselines = calloc(slots, sizeof(*w.baselines));
  if (!w.samples || !w.events || !w.baselines ||
      detector_init(&w.detector, &config, slots) < 0)
    fail_usage("out of memory");
  w.capturer_ok =
      capturer_init(&w.capturer, w.target.pid, w.opts.all_threads) == 0;
  reporter_init(&w.reporter, w.opts.json_mode, out_fd, &w.target);
  w.reporter.waiting = freeze_settle;

  w.loop = uv_default_loop();
  uv_timer_init(w.loop, &w.timer);
  w.timer.data = &w;
  uv_signal_init(w.loop, &w.sigterm);
  uv_signal_init(w.loop, &w.sigint);
  uv_signal_init(w.loop, &w.sighup);
  w.sigterm.data = w.sigint.data = w.sighup.data = &w;
  uv_signal_start(&w.sigterm, on_signal, SIGTERM);
  uv_signal_start(&w.sigint, on_signal, SIGINT);
  uv_signal_start(&w.sighup, on_signal, SIGHUP);
  if (w.target.pidfd >= 0 &&
      uv_poll_init(w.loop, &w.exit_watch, w.target.pidfd) == 0) {
    w.exit_watch.data = &w;
    uv_poll_start(&w.exit_watch, UV_READABLE, on_target_exit);
  }

  char message[256];
  snprintf(message, sizeof(message), "Attempting to monitor pid %d...",
           (int)w.opts.pid);
  if (w.opts.json_mode)
    emit_info(&w, "INFO", "watch_attaching", message);
  /* The first poll happens now, so that once the library hears we are
   * watching, a stall that begins is already being timed. */
  poll_once(&w);
  /* JSON keeps the original perpetuo's wording, which log pipelines match. */
  if (w.opts.json_mode)
    snprintf(message, sizeof(message), "Successfully monitoring pid %d",
             (int)w.opts.pid);
  else
    start_message(&w, message, sizeof(message));
  emit_info(&w, "INFO", "watch_started", message);
  uint64_t period_ms = (uint64_t)(w.opts.poll_interval_ns / 1000000);
  uv_timer_start(&w.timer, on_timer, period_ms, period_ms);
  if (w.capturer_ok && !w.opts.no_stacks) {
    uv_timer_init(w.loop, &w.warm);
    w.warm.data = &w;
    uv_timer_start(&w.warm, on_warm, 0, 0);
  }
  if (w.opts.control_fd >= 0) {
    int32_t ok = 0;
    if (write(w.opts.control_fd, &ok, sizeof(ok)) != (ssize_t)sizeof(ok))
      w.exit_status = 1;
    close(w.opts.control_fd);
  }
  if (!w.exit_status)
    uv_run(w.loop, UV_RUN_DEFAULT);

  uv_walk(w.loop, close_handle, NULL);
  uv_run(w.loop, UV_RUN_DEFAULT);
  uv_loop_close(w.loop);
  reporter_free(&w.reporter);
  detector_free(&w.detector);
  if (w.capturer_ok)
    capturer_free(&w.capturer);
  target_close(&w.target);
  free(w.samples);
  free(w.events);
  free(w.baselines);
  return w.exit_status;
}
