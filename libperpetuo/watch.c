/*
 * Starting and stopping this process's watcher.
 *
 * The watcher is spawned with posix_spawn (never a bare fork inside a
 * possibly threaded process) and then forks once more on its own, so that it
 * is not our child: nothing here has to reap it, and an application's own
 * waitpid(-1) or SIGCHLD handling never meets it. A socket pair carries the
 * handshake: the watcher sends its pid; we open a pidfd on it and allow it to
 * trace us; it attaches, polls once, and confirms. Only then does
 * perpetuo_watch_start() return, so a stall that begins afterwards is caught.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "handshake.h"

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif

extern char **environ;

#define START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 3000
#define MAX_INTERVAL_MS 86400000u
#define MAX_POLL_INTERVAL_MS 60000u

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t watcher_pid;
static int watcher_pidfd = -1;

void perpetuo_watch_options_init(perpetuo_watch_options_t *opts) {
  if (!opts)
    return;
  *opts = (perpetuo_watch_options_t){
      .size = sizeof(*opts),
      .poll_interval_ms = 50,
      .alert_interval_ms = 200,
      .traceback_suppress_ms = 30000,
      .print_locals = 1,
      .json_mode = 0,
      .output_fd = -1,
      .native_stacks = 1,
      .all_threads = 0,
  };
}

static int read_watch_options(const perpetuo_watch_options_t *opts,
                              perpetuo_watch_options_t *out) {
  perpetuo_watch_options_init(out);
  if (!opts)
    return 0;
  if (opts->size <
      offsetof(perpetuo_watch_options_t, watcher_path) + sizeof(const char *))
    return -EINVAL;
  memcpy(out, opts, opts->size < sizeof(*out) ? opts->size : sizeof(*out));
  out->size = sizeof(*out);
  if (out->poll_interval_ms < 1 || out->poll_interval_ms > MAX_POLL_INTERVAL_MS)
    return -EINVAL;
  if (out->alert_interval_ms < 1 || out->alert_interval_ms > MAX_INTERVAL_MS)
    return -EINVAL;
  if (out->traceback_suppress_ms > MAX_INTERVAL_MS)
    return -EINVAL;
  if ((out->print_locals != 0 && out->print_locals != 1) ||
      (out->json_mode != 0 && out->json_mode != 1) ||
      (out->native_stacks != 0 && out->native_stacks != 1) ||
      (out->all_threads != 0 && out->all_threads != 1))
    return -EINVAL;
  if (out->output_fd < -1 || (out->output_fd >= 0 && out->output_path))
    return -EINVAL;
  if (out->output_fd >= 0 && fcntl(out->output_fd, F_GETFD) < 0)
    return -EBADF;
  if ((out->output_path && !out->output_path[0]) ||
      (out->watcher_path && !out->watcher_path[0]))
    return -EINVAL;
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly `len` bytes before `deadline_ms`; 0, -EPIPE at EOF, -ETIMEDOUT.
 */
static int read_exactly(int fd, void *buf, size_t len, int64_t deadline_ms) {
  size_t got = 0;
  while (got < len) {
    int64_t left = deadline_ms - now_ms();
    if (left <= 0)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, (int)left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -ETIMEDOUT;
    ssize_t r = read(fd, (char *)buf + got, len - got);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return -EPIPE;
    got += (size_t)r;
  }
  return 0;
}

static int pidfd_open_compat(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  errno = ENOSYS;
  return -1;
#endif
}

static void signal_watcher(int sig) {
#ifdef SYS_pidfd_send_signal
  if (watcher_pidfd >= 0 &&
      syscall(SYS_pidfd_send_signal, watcher_pidfd, sig, NULL, 0) == 0)
    return;
  if (watcher_pidfd >= 0)
    return; /* it has exited: its pid may belong to someone else now */
#endif
  kill(watcher_pid, sig);
}

/* Waits up to `timeout_ms` for the watcher to exit; 1 if it has. */
static int wait_watcher_exit(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    if (watcher_pidfd >= 0) {
      struct pollfd pfd = {.fd = watcher_pidfd, .events = POLLIN};
      int left = (int)(deadline - now_ms());
      int n = poll(&pfd, 1, left > 0 ? left : 0);
      if (n > 0)
        return 1;
      if (n < 0 && errno == EINTR)
        continue;
      return 0;
    }
    if (kill(watcher_pid, 0) < 0 && errno == ESRCH)
      return 1;
    if (now_ms() >= deadline)
      return 0;
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

static void forget_watcher(void) {
  if (watcher_pidfd >= 0)
    close(watcher_pidfd);
  watcher_pidfd = -1;
  watcher_pid = 0;
}

static void stop_watcher_locked(void) {
  signal_watcher(SIGTERM);
  if (!wait_watcher_exit(STOP_GRACE_MS)) {
    signal_watcher(SIGKILL);
    wait_watcher_exit(STOP_GRACE_MS);
  }
  forget_watcher();
}

static int watcher_is_running_locked(void) {
  if (watcher_pid <= 0)
    return 0;
  if (wait_watcher_exit(0)) {
    forget_watcher();
    return 0;
  }
  return 1;
}

void perpetuo__watch_forget_after_fork(void) {
  pthread_mutex_init(&watch_lock, NULL);
  /* The parent's watcher watches the parent: the child must never signal it. */
  if (watcher_pidfd >= 0)
    close(watcher_pidfd);
  watcher_pidfd = -1;
  watcher_pid = 0;
}

static void format_seconds(char *buf, size_t size, uint32_t ms) {
  snprintf(buf, size, "%" PRIu32 ".%03" PRIu32, ms / 1000, ms % 1000);
}

/* Fills `argv` (with storage in `strings`) for the watcher's command line. */
struct watcher_command {
  char *argv[24];
  char poll[32], alert[32], suppress[32], pid[32], region[32], control[16],
      output_fd[16];
};

static void build_command(struct watcher_command *cmd,
                          const perpetuo_watch_options_t *o, const char *path,
                          const struct perpetuo__header *region) {
  int n = 0;
  format_seconds(cmd->poll, sizeof(cmd->poll), o->poll_interval_ms);
  format_seconds(cmd->alert, sizeof(cmd->alert), o->alert_interval_ms);
  format_seconds(cmd->suppress, sizeof(cmd->suppress),
                 o->traceback_suppress_ms);
  snprintf(cmd->pid, sizeof(cmd->pid), "%d", (int)getpid());
  snprintf(cmd->region, sizeof(cmd->region), "0x%" PRIxPTR, (uintptr_t)region);
  snprintf(cmd->control, sizeof(cmd->control), "%d", PERPETUO__CONTROL_FD);
  snprintf(cmd->output_fd, sizeof(cmd->output_fd), "%d", PERPETUO__OUTPUT_FD);
  cmd->argv[n++] = (char *)path;
  cmd->argv[n++] = "--poll-interval";
  cmd->argv[n++] = cmd->poll;
  cmd->argv[n++] = "--alert-interval";
  cmd->argv[n++] = cmd->alert;
  cmd->argv[n++] = "--traceback-suppress";
  cmd->argv[n++] = cmd->suppress;
  cmd->argv[n++] = o->print_locals ? "--print-locals" : "--no-print-locals";
  if (o->json_mode)
    cmd->argv[n++] = "--json-mode";
  if (!o->native_stacks)
    cmd->argv[n++] = "--no-stacks";
  else if (o->all_threads)
    cmd->argv[n++] = "--all-threads";
  if (o->output_path) {
    cmd->argv[n++] = "--output";
    cmd->argv[n++] = (char *)o->output_path;
  } else if (o->output_fd >= 0) {
    cmd->argv[n++] = "--output-fd";
    cmd->argv[n++] = cmd->output_fd;
  }
  cmd->argv[n++] = "--control-fd";
  cmd->argv[n++] = cmd->control;
  cmd->argv[n++] = "--region";
  cmd->argv[n++] = cmd->region;
  cmd->argv[n++] = "watch";
  cmd->argv[n++] = cmd->pid;
  cmd->argv[n] = NULL;
}

static int spawn_watcher(const char *path, char *const argv[], int control_fd,
                         int output_fd, pid_t *child) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t all, none;
  int err = posix_spawn_file_actions_init(&fa);
  if (err)
    return -err;
  err = posix_spawnattr_init(&attr);
  if (err) {
    posix_spawn_file_actions_destroy(&fa);
    return -err;
  }
  sigfillset(&all);
  sigemptyset(&none);
  /*
   * Default dispositions (an application that ignores SIGTERM must not pass
   * that on), no blocked signals, and a process group of its own so that a
   * Ctrl-C at the terminal reaches the application, not the watcher.
   */
  err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF |
                                            POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETPGROUP);
  if (!err)
    err = posix_spawnattr_setsigdefault(&attr, &all);
  if (!err)
    err = posix_spawnattr_setsigmask(&attr, &none);
  if (!err)
    err = posix_spawnattr_setpgroup(&attr, 0);
  /*
   * stdin and stdout on /dev/null: the watcher uses neither, and holding the
   * application's stdout would keep a pipe reader from seeing its EOF when
   * the application closes it. stderr stays: it is the default output.
   */
  if (!err)
    err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!err)
    err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (!err)
    err =
        posix_spawn_file_actions_adddup2(&fa, control_fd, PERPETUO__CONTROL_FD);
  if (!err && output_fd >= 0)
    err = posix_spawn_file_actions_adddup2(&fa, output_fd, PERPETUO__OUTPUT_FD);
  if (!err)
    err = posix_spawn(child, path, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return -err;
}

/* The handshake after the spawn; see the top of this file. */
static int handshake(int sock, int64_t deadline) {
  struct perpetuo__hello hello;
  int err = read_exactly(sock, &hello, sizeof(hello), deadline);
  if (err == -EPIPE)
    return PERPETUO_EWATCHER;
  if (err)
    return err == -ETIMEDOUT ? PERPETUO_EWATCHER_TIMEOUT : err;
  if (hello.magic != PERPETUO__HELLO_MAGIC || hello.pid <= 0)
    return PERPETUO_EWATCHER;
  watcher_pid = hello.pid;
  watcher_pidfd = pidfd_open_compat(hello.pid);
  if (watcher_pidfd >= 0)
    fcntl(watcher_pidfd, F_SETFD, FD_CLOEXEC);
  /* Where Yama restricts ptrace to descendants, name the watcher. Without
   * Yama this fails with EINVAL, which is fine: nothing restricts it then. */
  prctl(PR_SET_PTRACER, (unsigned long)hello.pid, 0, 0, 0);
  char go = PERPETUO__GO;
  if (write(sock, &go, 1) != 1)
    return PERPETUO_EWATCHER;
  int32_t status;
  err = read_exactly(sock, &status, sizeof(status), deadline);
  if (err == -EPIPE || (!err && status != 0))
    return PERPETUO_EWATCHER;
  if (err)
    return err == -ETIMEDOUT ? PERPETUO_EWATCHER_TIMEOUT : err;
  return 0;
}

int perpetuo_watch_start(const perpetuo_watch_options_t *opts) {
  perpetuo_watch_options_t o;
  int err = read_watch_options(opts, &o);
  if (err)
    return err;
  const char *path = o.watcher_path;
  if (!path)
    path = getenv("PERPETUO_WATCHER");
  if (!path || !path[0])
    path = PERPETUO_WATCHER_DEFAULT;
  struct perpetuo__header *region = perpetuo__region_get();
  if (!region)
    return -ENOMEM;

  pthread_mutex_lock(&watch_lock);
  if (watcher_is_running_locked()) {
    pthread_mutex_unlock(&watch_lock);
    return -EALREADY;
  }
  int socks[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) < 0) {
    err = -errno;
    pthread_mutex_unlock(&watch_lock);
    return err;
  }
  struct watcher_command cmd;
  build_command(&cmd, &o, path, region);
  /*
   * The file actions dup2 onto the fixed descriptors 3 and 4; sources at 10
   * and up cannot be clobbered by one another's dup2 on the way.
   */
  int control = fcntl(socks[1], F_DUPFD_CLOEXEC, 10);
  int output = -1;
  if (o.output_fd >= 0 && !o.output_path)
    output = fcntl(o.output_fd, F_DUPFD_CLOEXEC, 10);
  close(socks[1]);
  pid_t child;
  if (control < 0 || (o.output_fd >= 0 && !o.output_path && output < 0))
    err = -errno;
  else
    err = spawn_watcher(path, cmd.argv, control, output, &child);
  if (control >= 0)
    close(control);
  if (output >= 0)
    close(output);
  if (!err) {
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    err = handshake(socks[0], deadline);
    /* The spawned process only forks the real watcher and exits; if it did
     * not even greet us, it is not a watcher we can trust to exit. An
     * application that ignores SIGCHLD has it reaped already (ECHILD). */
    if (err && watcher_pid <= 0)
      kill(child, SIGKILL);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
      ;
    if (err && watcher_pid > 0)
      stop_watcher_locked();
    else if (err)
      forget_watcher();
  }
  close(socks[0]);
  pthread_mutex_unlock(&watch_lock);
  return err;
}

int perpetuo_watch_stop(void) {
  pthread_mutex_lock(&watch_lock);
  int running = watcher_is_running_locked();
  if (running)
    stop_watcher_locked();
  pthread_mutex_unlock(&watch_lock);
  return running ? 0 : -ESRCH;
}

int perpetuo_watch_pid(void) {
  pthread_mutex_lock(&watch_lock);
  int pid = watcher_is_running_locked() ? watcher_pid : 0;
  pthread_mutex_unlock(&watch_lock);
  return pid;
}
