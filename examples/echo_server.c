/*
 * A libuv TCP echo server whose event loop is watched by perpetuo.
 *
 * One tracker, "libuv loop", says whether the loop thread is busy (odd) or
 * blocked waiting for I/O (even). The server starts its own watcher, so a
 * read handler that blocks the loop is reported while it blocks.
 *
 * How the loop is instrumented (libuv 1.x, one loop iteration):
 *
 *   timers -> pending -> idle -> PREPARE -> poll for I/O -> CHECK -> closing
 *                                  |        (I/O callbacks |
 *                                  |         run in here)  |
 *                                go idle                 go active
 *
 *  - a uv_prepare handle goes idle: the loop is about to block for I/O;
 *  - a uv_check handle goes active: the loop is back from I/O;
 *  - but libuv runs the I/O callbacks (connection, alloc, read, write,
 *    signal) *inside* the poll phase, after the wait and before the check
 *    handles. With only prepare/check, a read handler that blocks would run
 *    with the counter idle and no stall would ever be seen. So every I/O
 *    callback first goes active too (loop_busy()): the counter turns odd as
 *    soon as the wait is over, and the check handle finds it active already.
 *  - the first iteration: uv_run() starts with timers, before any prepare.
 *    The counter is registered idle and turned active just before uv_run(),
 *    so the first prepare finds it active; after uv_run() returns (it ends
 *    after a check or closing phase: active) it is turned idle again.
 *  - only the loop thread writes the counter, so its parity is mirrored in a
 *    plain variable (loop_active) and each tick stays one load and one store.
 *
 * Deliberate stalls, deterministic: a read whose bytes contain "slow"
 * blocks the loop for 0.5 s (--stall-ms) before it echoes them, and so
 * does every Nth read with --slow-every N (reads counted over all
 * connections, from 1). A read is what one read callback gets; one read
 * stalls at most once. Everything else is echoed at once.
 *
 * Output: the bound port, alone on one line of stdout, once listening (and
 * the watcher watching). The watcher reports stalls on stderr, as text, or
 * as JSON lines with --json (then the server itself writes nothing else to
 * stderr but errors).
 *
 * Usage: echo_server [--port N] [--host ADDR] [--json] [--exit-after N]
 *                    [--duration S] [--slow-every N] [--stall-ms MS]
 *   --port N        TCP port (default 7000; 0: pick a free one)
 *   --host ADDR     IPv4 address to bind (default 127.0.0.1)
 *   --json          the watcher reports as JSON lines
 *   --exit-after N  exit once N connections have been served and closed
 *   --duration S    exit after S seconds (a decimal number)
 *   --slow-every N  also stall on every Nth read (default 0: never)
 *   --stall-ms MS   how long a slow read blocks (default 500)
 * SIGINT and SIGTERM stop it cleanly, as --exit-after and --duration do.
 *
 * Build it outside the tree, with perpetuo and libuv installed:
 *
 *   cc -o echo_server echo_server.c \
 *      $(pkg-config --cflags --libs perpetuo libuv)
 *
 * (if perpetuo is in a non-default prefix, add PREFIX/lib/pkgconfig to
 * PKG_CONFIG_PATH, and run with LD_LIBRARY_PATH=PREFIX/lib). Try it:
 *
 *   ./echo_server --port 7000 &
 *   printf 'hello\n' | nc -q1 127.0.0.1 7000   # echoed at once
 *   printf 'slow\n' | nc -q1 127.0.0.1 7000    # echoed after 0.5 s: a stall
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <perpetuo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

struct config {
  int port;
  const char *host;
  int json;
  unsigned long exit_after;
  double duration;
  unsigned long slow_every;
  unsigned long stall_ms;
};

static struct config cfg = {.port = 7000, .host = "127.0.0.1", .stall_ms = 500};

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_prepare_t prepare_handle;
static uv_check_t check_handle;
static uv_timer_t duration_timer;
static uv_signal_t sigint_handle, sigterm_handle;
static int stopping;

static unsigned long connections_open, connections_closed, reads, stalls;

/* ------------------------------------------------------ the loop tracker */

static perpetuo_tracker_t *tracker;
static uint64_t *loop_counter; /* the tracker's counter; loop thread only */
static int loop_active;        /* its parity, mirrored; loop thread only */

/* The loop thread is busy: from here on a long wait is a stall. */
static void loop_busy(void) {
  if (!loop_active) {
    perpetuo_counter_enter(loop_counter);
    loop_active = 1;
  }
}

/* The loop thread is about to wait for I/O, or has left the loop. */
static void loop_waiting(void) {
  if (loop_active) {
    perpetuo_counter_leave(loop_counter);
    loop_active = 0;
  }
}

static void on_prepare(uv_prepare_t *handle) { loop_waiting(); }

static void on_check(uv_check_t *handle) { loop_busy(); }

/* --------------------------------------------------------------- output */

static void info(const char *fmt, ...) {
  if (cfg.json)
    return; /* stderr carries the watcher's JSON lines only */
  va_list ap;
  va_start(ap, fmt);
  fputs("echo_server: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void say_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("echo_server: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---------------------------------------------------------- the server */

struct write_req {
  uv_write_t req;
  uv_buf_t buf;
};

static void block_for(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

static void close_tcp(uv_handle_t *handle, void *arg);

static void stop_server(const char *why) {
  if (stopping)
    return;
  stopping = 1;
  info("%s; stopping", why);
  uv_timer_stop(&duration_timer);
  /* Closes the listener and every connection; the loop then runs out of
   * referenced handles and uv_run() returns. */
  uv_walk(loop, close_tcp, NULL);
}

static void on_client_closed(uv_handle_t *handle) {
  loop_busy();
  free(handle);
  connections_open--;
  connections_closed++;
  if (cfg.exit_after && connections_closed >= cfg.exit_after) {
    char why[64];
    snprintf(why, sizeof(why), "served %lu connection%s", connections_closed,
             connections_closed == 1 ? "" : "s");
    stop_server(why);
  }
}

static void close_tcp(uv_handle_t *handle, void *arg) {
  if (handle->type != UV_TCP || uv_is_closing(handle))
    return;
  uv_close(handle, handle == (uv_handle_t *)&server ? NULL : on_client_closed);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  loop_busy();
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void on_write(uv_write_t *req, int status) {
  loop_busy();
  struct write_req *w = (struct write_req *)req;
  free(w->buf.base);
  free(w);
}

static int is_slow(const char *data, size_t len) {
  if (cfg.slow_every && reads % cfg.slow_every == 0)
    return 1;
  return memmem(data, len, "slow", 4) != NULL;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  loop_busy();
  if (nread < 0) {
    free(buf->base);
    if (!uv_is_closing((uv_handle_t *)stream))
      uv_close((uv_handle_t *)stream, on_client_closed);
    return;
  }
  if (nread == 0) {
    free(buf->base);
    return;
  }
  reads++;
  if (is_slow(buf->base, (size_t)nread)) {
    stalls++;
    block_for(cfg.stall_ms / 1000.0); /* the stall: the whole loop waits */
  }
  struct write_req *w = malloc(sizeof(*w));
  if (!w) {
    free(buf->base);
    uv_close((uv_handle_t *)stream, on_client_closed);
    return;
  }
  w->buf = uv_buf_init(buf->base, (unsigned)nread);
  if (uv_write(&w->req, stream, &w->buf, 1, on_write) != 0) {
    free(buf->base);
    free(w);
    uv_close((uv_handle_t *)stream, on_client_closed);
  }
}

static void free_handle(uv_handle_t *handle) { free(handle); }

static void on_connection(uv_stream_t *listener, int status) {
  loop_busy();
  if (status < 0) {
    say_error("accept: %s", uv_strerror(status));
    return;
  }
  uv_tcp_t *client = malloc(sizeof(*client));
  if (!client)
    return;
  uv_tcp_init(loop, client);
  if (uv_accept(listener, (uv_stream_t *)client) != 0 ||
      uv_read_start((uv_stream_t *)client, on_alloc, on_read) != 0) {
    uv_close((uv_handle_t *)client, free_handle);
    return;
  }
  connections_open++;
}

static void on_duration(uv_timer_t *timer) {
  loop_busy();
  stop_server("--duration elapsed");
}

static void on_signal(uv_signal_t *handle, int signum) {
  loop_busy();
  stop_server(signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* -------------------------------------------------------------- options */

static void usage(FILE *out) {
  fputs("Usage: echo_server [--port N] [--host ADDR] [--json] [--exit-after N]"
        "\n                   [--duration S] [--slow-every N] [--stall-ms MS]\n"
        "A TCP echo server watched by perpetuo. A read containing \"slow\" (and"
        "\nevery Nth read with --slow-every N) blocks the loop for --stall-ms."
        "\nPrints the bound port on stdout.\n",
        out);
}

static int parse_ulong(const char *text, unsigned long max,
                       unsigned long *out) {
  char *end;
  if (!text || !*text || *text == '-')
    return -1;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno || *end || v > max)
    return -1;
  *out = v;
  return 0;
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    unsigned long n;
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(arg, "--json")) {
      cfg.json = 1;
      continue;
    } else if (!strcmp(arg, "--port")) {
      if (parse_ulong(value, 65535, &n))
        goto bad;
      cfg.port = (int)n;
    } else if (!strcmp(arg, "--host")) {
      if (!value)
        goto bad;
      cfg.host = value;
    } else if (!strcmp(arg, "--exit-after")) {
      if (parse_ulong(value, 1000000000, &cfg.exit_after))
        goto bad;
    } else if (!strcmp(arg, "--duration")) {
      char *end;
      if (!value)
        goto bad;
      cfg.duration = strtod(value, &end);
      if (*end || !(cfg.duration > 0 && cfg.duration < 1e7))
        goto bad;
    } else if (!strcmp(arg, "--slow-every")) {
      if (parse_ulong(value, 1000000000, &cfg.slow_every))
        goto bad;
    } else if (!strcmp(arg, "--stall-ms")) {
      if (parse_ulong(value, 600000, &cfg.stall_ms))
        goto bad;
    } else {
      say_error("unknown argument %s", arg);
      usage(stderr);
      return -1;
    }
    i++; /* the option's value */
    continue;
  bad:
    say_error("%s needs a valid value", arg);
    usage(stderr);
    return -1;
  }
  return 0;
}

/* ----------------------------------------------------------------- main */

static int start_listening(void) {
  struct sockaddr_in addr;
  int err = uv_ip4_addr(cfg.host, cfg.port, &addr);
  if (!err)
    err = uv_tcp_init(loop, &server);
  if (!err)
    err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (!err)
    err = uv_listen((uv_stream_t *)&server, 128, on_connection);
  if (err) {
    say_error("cannot listen on %s:%d: %s", cfg.host, cfg.port,
              uv_strerror(err));
    return -1;
  }
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  printf("%d\n", port);
  fflush(stdout);
  info("listening on %s:%d", cfg.host, port);
  return 0;
}

/* Handles that must not keep the loop alive by themselves. */
static void start_background_handles(void) {
  uv_prepare_init(loop, &prepare_handle);
  uv_prepare_start(&prepare_handle, on_prepare);
  uv_unref((uv_handle_t *)&prepare_handle);
  uv_check_init(loop, &check_handle);
  uv_check_start(&check_handle, on_check);
  uv_unref((uv_handle_t *)&check_handle);
  uv_signal_init(loop, &sigint_handle);
  uv_signal_start(&sigint_handle, on_signal, SIGINT);
  uv_unref((uv_handle_t *)&sigint_handle);
  uv_signal_init(loop, &sigterm_handle);
  uv_signal_start(&sigterm_handle, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&sigterm_handle);
  uv_timer_init(loop, &duration_timer);
  if (cfg.duration > 0)
    uv_timer_start(&duration_timer, on_duration,
                   (uint64_t)(cfg.duration * 1000 + 0.5), 0);
  else
    uv_unref((uv_handle_t *)&duration_timer);
}

static void close_any(uv_handle_t *handle, void *arg) {
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv))
    return 2;
  signal(SIGPIPE, SIG_IGN);

  int err = perpetuo_tracker_new(&tracker, "libuv loop", NULL);
  if (err) {
    say_error("%s", perpetuo_strerror(err));
    return 1;
  }
  loop_counter = perpetuo_tracker_counter(tracker);
  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  opts.json_mode = cfg.json;
  err = perpetuo_watch_start(&opts);
  if (err) {
    say_error("cannot start the watcher: %s", perpetuo_strerror(err));
    return 1;
  }

  loop = uv_default_loop();
  if (start_listening()) {
    perpetuo_watch_stop();
    return 1;
  }
  start_background_handles();

  loop_busy(); /* the first iteration runs timers before any prepare */
  uv_run(loop, UV_RUN_DEFAULT);
  loop_waiting(); /* uv_run() returns from a busy phase */

  /* Close what is left (prepare, check, signals, timer): no more ticks. */
  uv_walk(loop, close_any, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  info("%lu connection%s, %lu read%s, %lu slow", connections_closed,
       connections_closed == 1 ? "" : "s", reads, reads == 1 ? "" : "s",
       stalls);
  /* The watcher polls every 10 ms: give it a poll or two to see the loop
   * idle, so a stall that has just ended is reported with its real length. */
  block_for(0.05);
  perpetuo_watch_stop();
  perpetuo_tracker_free(tracker);
  return 0;
}
