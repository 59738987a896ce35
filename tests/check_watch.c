/*
 * The watcher half of the public API: options, starting and stopping a real
 * watcher process, its reports, and its behaviour across fork().
 *
 * Tests that need the real watcher take it from $PERPETUO_WATCHER (make
 * check exports it) and say so on stderr when it is missing. Each test runs
 * in its own process (Check's fork mode), so a watcher left running by a
 * failed test watches a process that is about to exit, and follows it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "perpetuo.h"

/* The library's own grace time for a watcher to go after SIGTERM. */
#define STOP_GRACE_MS 3000

static double timeout_multiplier(void) {
  const char *s = getenv("CK_TIMEOUT_MULTIPLIER");
  double m = s ? atof(s) : 1.0;
  return m >= 1.0 ? m : 1.0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/*
 * The watcher is not our child, and whoever inherits it (this container's
 * init, say) may leave it a zombie for a while: a zombie has exited as far
 * as we are concerned.
 */
static int process_exited(pid_t pid) {
  if (kill(pid, 0) < 0 && errno == ESRCH)
    return 1;
  char path[64], stat[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT || errno == ESRCH;
  ssize_t n = read(fd, stat, sizeof(stat) - 1);
  close(fd);
  if (n <= 0)
    return 1;
  stat[n] = 0;
  const char *after_name = strrchr(stat, ')');
  return after_name && (after_name[2] == 'Z' || after_name[2] == 'X');
}

static int wait_exited(pid_t pid, int ms) {
  int64_t deadline = now_ms() + (int64_t)(ms * timeout_multiplier());
  while (!process_exited(pid)) {
    if (now_ms() >= deadline)
      return 0;
    sleep_ms(5);
  }
  return 1;
}

/* The real watcher, or NULL after saying on stderr why the test is skipped. */
static const char *real_watcher(const char *test) {
  const char *path = getenv("PERPETUO_WATCHER");
  if (!path || !path[0]) {
    fprintf(stderr,
            "check_watch: SKIP %s: PERPETUO_WATCHER is not set (make check "
            "sets it to the built watcher)\n",
            test);
    return NULL;
  }
  return path;
}

static int open_dev_null(void) {
  int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* Options for a real watcher whose reports go nowhere. */
static void quiet_options(perpetuo_watch_options_t *o, int dev_null) {
  perpetuo_watch_options_init(o);
  o->output_fd = dev_null;
}

/* Runs `start` with stderr sent to /dev/null: a failing watcher says why
 * there, which is expected here and only noise in the test log. */
static int start_silenced(const perpetuo_watch_options_t *o) {
  int saved = dup(2);
  ck_assert_int_ge(saved, 0);
  int null = open_dev_null();
  ck_assert_int_eq(dup2(null, 2), 2);
  close(null);
  int err = perpetuo_watch_start(o);
  ck_assert_int_eq(dup2(saved, 2), 2);
  close(saved);
  return err;
}

/* All of `fd`'s contents, NUL-terminated, in a static buffer. */
static char *read_fd(int fd) {
  static char buf[1 << 16];
  size_t got = 0;
  ssize_t n;
  while (got < sizeof(buf) - 1 &&
         (n = pread(fd, buf + got, sizeof(buf) - 1 - got, (off_t)got)) > 0)
    got += (size_t)n;
  buf[got] = 0;
  return buf;
}

static char *read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
  char *text = read_fd(fd);
  close(fd);
  return text;
}

/*
 * A fresh temporary file, mostly for the watcher's reports. Tests remove its
 * name as soon as nobody needs to open it again (for a report file, once
 * perpetuo_watch_start() has returned: the watcher has it open) and read it
 * through `*fd`, so a failing test leaves nothing behind.
 */
static void report_file(char path[static 40], int *fd) {
  snprintf(path, 40, "/tmp/perpetuo-check-watch-XXXXXX");
  *fd = mkstemp(path);
  ck_assert_int_ge(*fd, 0);
}

/* The line of `text` that contains `needle`, copied into `line`; 0 if none. */
static int find_line(const char *text, const char *needle, char *line,
                     size_t size) {
  const char *hit = strstr(text, needle);
  if (!hit)
    return 0;
  const char *start = hit;
  while (start > text && start[-1] != '\n')
    start--;
  const char *end = strchr(hit, '\n');
  size_t len = end ? (size_t)(end - start) : strlen(start);
  if (len >= size)
    len = size - 1;
  memcpy(line, start, len);
  line[len] = 0;
  return 1;
}

/* The last argument of /proc/PID/cmdline: the pid a watcher watches. */
static void last_argument(pid_t pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
  char *text = read_file(path);
  size_t len = 0;
  /* read_file NUL-terminates; walk the NUL-separated arguments. */
  const char *last = text;
  for (const char *p = text; *p; p += len + 1) {
    len = strlen(p);
    last = p;
  }
  size_t n = strlen(last) < size ? strlen(last) : size - 1;
  memcpy(out, last, n);
  out[n] = 0;
}

/* ---------------------------------------------------------------- options */

START_TEST(test_options_init_defaults) {
  perpetuo_watch_options_t o;
  memset(&o, 0xa5, sizeof(o));
  perpetuo_watch_options_init(&o);
  ck_assert_uint_eq(o.size, sizeof(o));
  ck_assert_uint_eq(o.poll_interval_ms, 50);
  ck_assert_uint_eq(o.alert_interval_ms, 200);
  ck_assert_uint_eq(o.traceback_suppress_ms, 30000);
  ck_assert_int_eq(o.print_locals, 1);
  ck_assert_int_eq(o.json_mode, 0);
  ck_assert_int_eq(o.output_fd, -1);
  ck_assert_ptr_null(o.output_path);
  ck_assert_ptr_null(o.watcher_path);
  ck_assert_int_eq(o.native_stacks, 1);
  ck_assert_int_eq(o.all_threads, 0);
  /* Documented as never failing, so NULL must be harmless too. */
  perpetuo_watch_options_init(NULL);
}
END_TEST

/*
 * Options that are checked before anything is spawned. The watcher path
 * points nowhere, so options that wrongly passed would show up as -ENOENT
 * rather than as a running watcher.
 */
static void base_options(perpetuo_watch_options_t *o) {
  perpetuo_watch_options_init(o);
  o->watcher_path = "/nonexistent/perpetuo";
}

static void expect_start_error(const perpetuo_watch_options_t *o, int expected,
                               const char *what) {
  int err = perpetuo_watch_start(o);
  ck_assert_msg(err == expected, "%s: got %d (%s), expected %d (%s)", what, err,
                perpetuo_strerror(err), expected, perpetuo_strerror(expected));
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
}

START_TEST(test_start_bad_options) {
  perpetuo_watch_options_t o;

  base_options(&o);
  o.size = 0;
  expect_start_error(&o, -EINVAL, "size 0");
  base_options(&o);
  o.size = offsetof(perpetuo_watch_options_t, watcher_path);
  expect_start_error(&o, -EINVAL, "size one field short");

  base_options(&o);
  o.poll_interval_ms = 0;
  expect_start_error(&o, -EINVAL, "poll interval 0");
  o.poll_interval_ms = 60001;
  expect_start_error(&o, -EINVAL, "poll interval over a minute");

  base_options(&o);
  o.alert_interval_ms = 0;
  expect_start_error(&o, -EINVAL, "alert interval 0");
  o.alert_interval_ms = 86400001;
  expect_start_error(&o, -EINVAL, "alert interval over one day");

  base_options(&o);
  o.traceback_suppress_ms = 86400001;
  expect_start_error(&o, -EINVAL, "traceback suppression over one day");

  base_options(&o);
  o.print_locals = 2;
  expect_start_error(&o, -EINVAL, "print_locals 2");
  base_options(&o);
  o.json_mode = 2;
  expect_start_error(&o, -EINVAL, "json_mode 2");
  base_options(&o);
  o.native_stacks = -1;
  expect_start_error(&o, -EINVAL, "native_stacks -1");
  base_options(&o);
  o.all_threads = 2;
  expect_start_error(&o, -EINVAL, "all_threads 2");

  base_options(&o);
  o.output_fd = -2;
  expect_start_error(&o, -EINVAL, "output_fd -2");
  base_options(&o);
  o.output_fd = 2;
  o.output_path = "/tmp/perpetuo-never-written";
  expect_start_error(&o, -EINVAL, "output_fd and output_path");
  base_options(&o);
  o.output_path = "";
  expect_start_error(&o, -EINVAL, "empty output_path");
  base_options(&o);
  o.watcher_path = "";
  expect_start_error(&o, -EINVAL, "empty watcher_path");
}
END_TEST

START_TEST(test_start_boundary_options_accepted) {
  /* The limits themselves are valid: these get as far as the spawn. */
  perpetuo_watch_options_t o;
  base_options(&o);
  o.poll_interval_ms = 1;
  o.alert_interval_ms = 1;
  o.traceback_suppress_ms = 0;
  o.print_locals = 0;
  o.json_mode = 1;
  o.native_stacks = 0;
  o.all_threads = 1;
  expect_start_error(&o, -ENOENT, "smallest values");
  base_options(&o);
  o.poll_interval_ms = 60000;
  o.alert_interval_ms = 86400000;
  o.traceback_suppress_ms = 86400000;
  expect_start_error(&o, -ENOENT, "largest values");
  /* A caller built against 1.0 passes the 1.0 size: accepted, and the
   * fields it does not know keep their defaults. */
  base_options(&o);
  o.size = offsetof(perpetuo_watch_options_t, watcher_path) + sizeof(char *);
  o.native_stacks = 7; /* beyond its size: never read */
  expect_start_error(&o, -ENOENT, "the 1.0 size");
  base_options(&o);
  o.output_fd = 2;
  expect_start_error(&o, -ENOENT, "output_fd 2");
  base_options(&o);
  o.output_path = "/tmp/perpetuo-never-written";
  expect_start_error(&o, -ENOENT, "output_path");
}
END_TEST

START_TEST(test_start_closed_output_fd) {
  perpetuo_watch_options_t o;
  base_options(&o);
  int fd = open_dev_null();
  close(fd);
  o.output_fd = fd;
  expect_start_error(&o, -EBADF, "closed output_fd");
}
END_TEST

/* ----------------------------------------------------- failing executables */

START_TEST(test_start_missing_watcher) {
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.watcher_path = "/nonexistent/perpetuo";
  expect_start_error(&o, -ENOENT, "missing watcher");
  ck_assert_int_eq(perpetuo_watch_stop(), -ESRCH);
}
END_TEST

START_TEST(test_start_not_executable) {
  char path[40];
  int fd;
  report_file(path, &fd);
  ck_assert_int_eq(fchmod(fd, 0600), 0);
  close(fd);
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.watcher_path = path;
  int err = perpetuo_watch_start(&o);
  unlink(path);
  /* Even root cannot execute a file without any execute bit. */
  ck_assert_msg(err == -EACCES, "got %d (%s)", err, perpetuo_strerror(err));
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
}
END_TEST

START_TEST(test_start_watcher_exits) {
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.watcher_path = "/bin/false";
  expect_start_error(&o, PERPETUO_EWATCHER, "/bin/false");
  /* The process the library spawned was reaped, not left as our zombie. */
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  ck_assert_int_eq(perpetuo_watch_stop(), -ESRCH);
}
END_TEST

START_TEST(test_start_watcher_cannot_open_output) {
  if (!real_watcher("start_watcher_cannot_open_output"))
    return;
  /* The real watcher gets as far as opening its output, and gives up. */
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.output_path = "/nonexistent/dir/perpetuo.log";
  int err = start_silenced(&o);
  ck_assert_msg(err == PERPETUO_EWATCHER, "got %d (%s)", err,
                perpetuo_strerror(err));
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
  ck_assert_int_eq(perpetuo_watch_stop(), -ESRCH);
}
END_TEST

/* ------------------------------------------------------------ real watcher */

static void assert_watching_us(pid_t pid) {
  ck_assert_int_gt(pid, 0);
  ck_assert_int_ne(pid, getpid());
  /* Not our child: nothing here has to reap it. */
  ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  ck_assert_msg(!process_exited(pid), "watcher %d is not running", (int)pid);
  char watched[32], me[32];
  last_argument(pid, watched, sizeof(watched));
  snprintf(me, sizeof(me), "%d", (int)getpid());
  ck_assert_str_eq(watched, me);
}

START_TEST(test_start_stop_restart) {
  if (!real_watcher("start_stop_restart"))
    return;
  int dev_null = open_dev_null();
  perpetuo_watch_options_t o;
  quiet_options(&o, dev_null);
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  pid_t pid = perpetuo_watch_pid();
  assert_watching_us(pid);

  ck_assert_int_eq(perpetuo_watch_start(&o), -EALREADY);
  ck_assert_int_eq(perpetuo_watch_pid(), pid);
  ck_assert_msg(!process_exited(pid), "a refused start stopped the watcher");

  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  ck_assert_msg(wait_exited(pid, STOP_GRACE_MS),
                "watcher %d still running after stop", (int)pid);
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
  ck_assert_int_eq(perpetuo_watch_stop(), -ESRCH);

  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  pid_t again = perpetuo_watch_pid();
  assert_watching_us(again);
  ck_assert_int_ne(again, pid);
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  ck_assert_msg(wait_exited(again, STOP_GRACE_MS),
                "watcher %d still running after stop", (int)again);
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
  close(dev_null);
}
END_TEST

START_TEST(test_start_default_options) {
  if (!real_watcher("start_default_options"))
    return;
  /* NULL options: the defaults, reports on stderr (silenced here). */
  ck_assert_int_eq(start_silenced(NULL), 0);
  pid_t pid = perpetuo_watch_pid();
  assert_watching_us(pid);
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  ck_assert(wait_exited(pid, STOP_GRACE_MS));
}
END_TEST

START_TEST(test_watcher_killed_is_forgotten) {
  if (!real_watcher("watcher_killed_is_forgotten"))
    return;
  int dev_null = open_dev_null();
  perpetuo_watch_options_t o;
  quiet_options(&o, dev_null);
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  pid_t pid = perpetuo_watch_pid();
  ck_assert_int_gt(pid, 0);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  ck_assert(wait_exited(pid, STOP_GRACE_MS));
  /* A watcher that died on its own is no longer running: no -EALREADY. */
  int64_t deadline = now_ms() + (int64_t)(1000 * timeout_multiplier());
  while (perpetuo_watch_pid() != 0 && now_ms() < deadline)
    sleep_ms(5);
  ck_assert_int_eq(perpetuo_watch_pid(), 0);
  ck_assert_int_eq(perpetuo_watch_stop(), -ESRCH);
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  assert_watching_us(perpetuo_watch_pid());
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  close(dev_null);
}
END_TEST

START_TEST(test_json_stall_reported_while_active) {
  if (!real_watcher("json_stall_reported_while_active"))
    return;
  char path[40];
  int fd;
  report_file(path, &fd);

  perpetuo_tracker_t *t = NULL;
  ck_assert_int_eq(perpetuo_tracker_new(&t, "json-stall", NULL), 0);
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.output_path = path;
  o.json_mode = 1;
  o.alert_interval_ms = 100;
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  ck_assert_int_eq(unlink(path), 0);
  /* The watcher confirms only after it has said so on its output. */
  ck_assert_ptr_nonnull(strstr(read_fd(fd), "\"event\":\"watch_started\""));
  ck_assert_ptr_null(strstr(read_fd(fd), "stall_began"));

  ck_assert_int_eq(perpetuo_tracker_enter(t), 0);
  int64_t entered = now_ms();
  int64_t deadline = entered + (int64_t)(500 * timeout_multiplier());
  char line[4096];
  int found = 0;
  while (!found && now_ms() < deadline) {
    sleep_ms(20);
    found =
        find_line(read_fd(fd), "\"event\":\"stall_began\"", line, sizeof(line));
  }
  /* Read, and judged, before leaving: the report came during the stall. */
  ck_assert_int_eq(perpetuo_tracker_is_active(t), 1);
  ck_assert_msg(found, "no stall_began %lld ms into a stall; output:\n%s",
                (long long)(now_ms() - entered), read_fd(fd));
  ck_assert_ptr_nonnull(strstr(line, "\"name\":\"json-stall\""));
  char pid_field[48];
  snprintf(pid_field, sizeof(pid_field), "\"pid\":\"%d\"", (int)getpid());
  ck_assert_ptr_nonnull(strstr(line, pid_field));
  ck_assert_ptr_nonnull(strstr(line, "\"severity\":\"WARNING\""));
  ck_assert_int_eq(line[0], '{');
  ck_assert_int_eq(line[strlen(line) - 1], '}');

  ck_assert_int_eq(perpetuo_tracker_leave(t), 0);
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  /* Whether the watcher saw the progress or was stopped first, the stall
   * has an end on record once the watcher is gone. */
  const char *all = read_fd(fd);
  ck_assert_ptr_nonnull(strstr(all, "\"event\":\"stall_ended\""));
  ck_assert_ptr_nonnull(strstr(all, "\"event\":\"watch_ended\""));
  ck_assert_int_eq(perpetuo_tracker_free(t), 0);
  close(fd);
}
END_TEST

START_TEST(test_stop_detaches_when_target_blocks_sigterm) {
  if (!real_watcher("stop_detaches_when_target_blocks_sigterm"))
    return;
  /* What an application does with SIGTERM is its own business: the watcher
   * it spawns must still take the library's SIGTERM as "detach". */
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ck_assert_int_eq(sigprocmask(SIG_BLOCK, &term, NULL), 0);
  ck_assert(signal(SIGTERM, SIG_IGN) != SIG_ERR);

  char path[40];
  int fd;
  report_file(path, &fd);
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  o.output_path = path;
  o.json_mode = 1;
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  ck_assert_int_eq(unlink(path), 0);
  pid_t pid = perpetuo_watch_pid();
  ck_assert_int_gt(pid, 0);
  /* Its own process group: a Ctrl-C meant for the application misses it. */
  ck_assert_int_ne(getpgid(pid), getpgrp());
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  ck_assert(wait_exited(pid, STOP_GRACE_MS));
  /* Only a watcher that handled SIGTERM (not one killed after the grace
   * time) says goodbye. */
  char line[4096];
  ck_assert_msg(
      find_line(read_fd(fd), "\"event\":\"watch_ended\"", line, sizeof(line)),
      "no watch_ended record: was the watcher killed?\n%s", read_fd(fd));
  ck_assert_ptr_nonnull(strstr(line, "SIGTERM"));
  close(fd);
}
END_TEST

/* ------------------------------------------------------------------- fork */

/*
 * A fork() child cannot use ck_assert (its failure would be reported as the
 * parent's, or lost): it writes what went wrong to a pipe and exits 1.
 */
#define CHILD_CHECK(fd, cond)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      dprintf((fd), "line %d: %s", __LINE__, #cond);                           \
      _exit(1);                                                                \
    }                                                                          \
  } while (0)

static void wait_for_child(pid_t pid, int fd, char *out, size_t size) {
  char why[512] = "";
  ssize_t n, got = 0;
  while ((n = read(fd, why + got, sizeof(why) - 1 - (size_t)got)) > 0)
    got += n;
  why[got] = 0;
  close(fd);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "child failed (status 0x%x): %s", status, why);
  if (out)
    snprintf(out, size, "%s", why);
}

START_TEST(test_fork_child_has_own_watcher) {
  if (!real_watcher("fork_child_has_own_watcher"))
    return;
  int dev_null = open_dev_null();
  perpetuo_watch_options_t o;
  quiet_options(&o, dev_null);
  ck_assert_int_eq(perpetuo_watch_start(&o), 0);
  pid_t parents = perpetuo_watch_pid();
  ck_assert_int_gt(parents, 0);

  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    int w = fds[1];
    close(fds[0]);
    CHILD_CHECK(w, perpetuo_watch_pid() == 0);
    /* The parent's watcher is not the child's to stop. */
    CHILD_CHECK(w, perpetuo_watch_stop() == -ESRCH);
    CHILD_CHECK(w, !process_exited(parents));
    CHILD_CHECK(w, perpetuo_watch_start(&o) == 0);
    pid_t mine = perpetuo_watch_pid();
    CHILD_CHECK(w, mine > 0);
    CHILD_CHECK(w, mine != parents);
    CHILD_CHECK(w, perpetuo_watch_stop() == 0);
    CHILD_CHECK(w, wait_exited(mine, STOP_GRACE_MS));
    CHILD_CHECK(w, perpetuo_watch_pid() == 0);
    CHILD_CHECK(w, !process_exited(parents));
    _exit(0);
  }
  close(fds[1]);
  wait_for_child(child, fds[0], NULL, 0);

  ck_assert_int_eq(perpetuo_watch_pid(), parents);
  assert_watching_us(parents);
  ck_assert_int_eq(perpetuo_watch_stop(), 0);
  ck_assert(wait_exited(parents, STOP_GRACE_MS));
  close(dev_null);
}
END_TEST

START_TEST(test_watcher_exits_with_target) {
  if (!real_watcher("watcher_exits_with_target"))
    return;
  int dev_null = open_dev_null();
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    int w = fds[1];
    close(fds[0]);
    perpetuo_watch_options_t o;
    quiet_options(&o, dev_null);
    CHILD_CHECK(w, perpetuo_watch_start(&o) == 0);
    /* Exits without stopping it: the watcher has to notice by itself. */
    dprintf(w, "%d", perpetuo_watch_pid());
    _exit(0);
  }
  close(fds[1]);
  char reported[512];
  wait_for_child(child, fds[0], reported, sizeof(reported));
  pid_t watcher = (pid_t)atoi(reported);
  ck_assert_int_gt(watcher, 0);
  ck_assert_msg(wait_exited(watcher, 2000),
                "watcher %d outlived its target by 2 s", (int)watcher);
  close(dev_null);
}
END_TEST

static Suite *watch_suite(void) {
  Suite *s = suite_create("watch");
  TCase *tc;

  tc = tcase_create("options");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_options_init_defaults);
  tcase_add_test(tc, test_start_bad_options);
  tcase_add_test(tc, test_start_boundary_options_accepted);
  tcase_add_test(tc, test_start_closed_output_fd);
  suite_add_tcase(s, tc);

  tc = tcase_create("spawn_failures");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_start_missing_watcher);
  tcase_add_test(tc, test_start_not_executable);
  tcase_add_test(tc, test_start_watcher_exits);
  tcase_add_test(tc, test_start_watcher_cannot_open_output);
  suite_add_tcase(s, tc);

  tc = tcase_create("watcher");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_start_stop_restart);
  tcase_add_test(tc, test_start_default_options);
  tcase_add_test(tc, test_watcher_killed_is_forgotten);
  tcase_add_test(tc, test_json_stall_reported_while_active);
  tcase_add_test(tc, test_stop_detaches_when_target_blocks_sigterm);
  suite_add_tcase(s, tc);

  tc = tcase_create("fork");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_fork_child_has_own_watcher);
  tcase_add_test(tc, test_watcher_exits_with_target);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(watch_suite());
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
