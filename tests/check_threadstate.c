/*
 * What the watcher reads of a thread from /proc (its state, the system call
 * it is blocked in, its context switches) and of the target's memory map:
 * the pure parsers against hand-written and hostile text, the readers
 * against this very process.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "watcher/maps.h"
#include "watcher/threadstate.h"

static char state_of(const char *stat) {
  return parse_stat_state(stat, strlen(stat));
}

/* --------------------------------------------------------------- stat */

START_TEST(test_stat_plain) {
  ck_assert_int_eq(state_of("1234 (bash) S 1 1234 1234 34816 0"), 'S');
  ck_assert_int_eq(state_of("7 (kworker/0:1) I 2 0 0 0 -1"), 'I');
  ck_assert_int_eq(state_of("99 (a.out) R 1 99 99 0 -1 4194304\n"), 'R');
  ck_assert_int_eq(state_of("5 (x) t 1"), 't');
}
END_TEST

START_TEST(test_stat_nasty_names) {
  /* A thread may call itself anything up to 15 bytes, ") " included: the
   * state is after the last ')'. */
  ck_assert_int_eq(state_of("1234 (a) R (b) ) D 1 2 3"), 'D');
  ck_assert_int_eq(state_of("1234 () S ) S ) T 1 2 3"), 'T');
  ck_assert_int_eq(state_of("77 (my prog name) t 1 77"), 't');
  ck_assert_int_eq(state_of("77 (  ) Z 1 77"), 'Z');
  ck_assert_int_eq(state_of("5 (x)) R 1"), 'R');
  ck_assert_int_eq(state_of("5 ((((() X 1"), 'X');
  ck_assert_int_eq(state_of("5 () S 1"), 'S');
}
END_TEST

START_TEST(test_stat_garbage) {
  ck_assert_int_eq(state_of(""), 0);
  ck_assert_int_eq(state_of("1234 bash S 1"), 0);
  ck_assert_int_eq(state_of("1234 (bash)"), 0);
  ck_assert_int_eq(state_of("1234 (bash) "), 0);
  ck_assert_int_eq(state_of("1234 (bash)S 1"), 0);
  ck_assert_int_eq(state_of("1234 (bash) 5 1"), 0);
  ck_assert_int_eq(state_of("1234 (bash) ( 1"), 0);
  ck_assert_int_eq(state_of(")"), 0);
  /* The length given bounds the search, whatever follows in memory. */
  const char *stat = "12 (x) S 1";
  ck_assert_int_eq(parse_stat_state(stat, 7), 0);
  ck_assert_int_eq(parse_stat_state(stat, 8), 'S');
  ck_assert_int_eq(parse_stat_state("12 (a) ) R", 6), 0);
}
END_TEST

/* ------------------------------------------------------------ syscall */

START_TEST(test_syscall_running) {
  long nr = 42;
  ck_assert_int_eq(parse_syscall_line("running\n", &nr), SYSCALL_RUNNING);
  ck_assert_int_eq(nr, -1);
  ck_assert_int_eq(parse_syscall_line("running", &nr), SYSCALL_RUNNING);
}
END_TEST

START_TEST(test_syscall_none) {
  long nr = 42;
  ck_assert_int_eq(
      parse_syscall_line("-1 0x7ffd3c8e1f38 0x55d1c9a2b4c0\n", &nr),
      SYSCALL_NONE);
  ck_assert_int_eq(nr, -1);
}
END_TEST

START_TEST(test_syscall_in) {
  long nr = -5;
  ck_assert_int_eq(parse_syscall_line("230 0x0 0x0 0x7ffc2f69fe40 0x0 0x0 0x0 "
                                      "0x7ffc2f69fe28 0x7f167e370545\n",
                                      &nr),
                   SYSCALL_IN);
  ck_assert_int_eq(nr, 230);
  ck_assert_int_eq(
      parse_syscall_line("0 0x3 0x55d1 0x1000 0 0 0 0x7ff 0x7f\n", &nr),
      SYSCALL_IN);
  ck_assert_int_eq(nr, 0);
  ck_assert_int_eq(parse_syscall_line("202", &nr), SYSCALL_IN);
  ck_assert_int_eq(nr, 202);
  ck_assert_int_eq(parse_syscall_line("7\n", &nr), SYSCALL_IN);
  ck_assert_int_eq(nr, 7);
}
END_TEST

START_TEST(test_syscall_garbage) {
  static const char *const bad[] = {
      "",         "\n",      "run",
      "Running",  "abc 0x0", "12abc 0x0",
      "0x10 0x0", "1.5 0x0", "99999999999999999999999999 0x0",
      "-",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    long nr = 42;
    ck_assert_msg(parse_syscall_line(bad[i], &nr) == SYSCALL_UNKNOWN,
                  "\"%s\" parsed", bad[i]);
    ck_assert_int_eq(nr, -1);
  }
}
END_TEST

/* ------------------------------------------------------------- status */

static const char status_text[] = "Name:\tdeep_target\n"
                                  "Umask:\t0022\n"
                                  "State:\tS (sleeping)\n"
                                  "Tgid:\t4242\n"
                                  "TracerPid:\t0\n"
                                  "Cpus_allowed_list:\t0-1\n"
                                  "voluntary_ctxt_switches:\t150\n"
                                  "nonvoluntary_ctxt_switches:\t545\n";

START_TEST(test_status_switches) {
  int64_t v = 0, nv = 0;
  parse_status_switches(status_text, &v, &nv);
  ck_assert_int_eq(v, 150);
  ck_assert_int_eq(nv, 545);
}
END_TEST

START_TEST(test_status_switches_order_and_end) {
  /* "voluntary_ctxt_switches:" ends "nonvoluntary_ctxt_switches:": only a
   * line that starts with it counts, wherever it is. */
  int64_t v = 0, nv = 0;
  parse_status_switches("nonvoluntary_ctxt_switches:\t3\n"
                        "voluntary_ctxt_switches:\t9",
                        &v, &nv);
  ck_assert_int_eq(v, 9);
  ck_assert_int_eq(nv, 3);
  parse_status_switches("nonvoluntary_ctxt_switches:\t3\n", &v, &nv);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(nv, 3);
  parse_status_switches("voluntary_ctxt_switches:\t0\n"
                        "nonvoluntary_ctxt_switches:\t0\n",
                        &v, &nv);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(nv, 0);
}
END_TEST

START_TEST(test_status_switches_garbage) {
  int64_t v = 0, nv = 0;
  parse_status_switches("", &v, &nv);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(nv, -1);
  parse_status_switches("Name:\tx\nState:\tR (running)\n", &v, &nv);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(nv, -1);
  parse_status_switches("voluntary_ctxt_switches:\t-4\n"
                        "nonvoluntary_ctxt_switches:\tlots\n",
                        &v, &nv);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(nv, -1);
  parse_status_switches("voluntary_ctxt_switches:\t99999999999999999999999\n"
                        "nonvoluntary_ctxt_switches:\n",
                        &v, &nv);
  ck_assert_int_eq(v, -1);
  ck_assert_int_eq(nv, -1);
  /* Not at the start of a line: not the field. */
  parse_status_switches("x voluntary_ctxt_switches:\t5\n", &v, &nv);
  ck_assert_int_eq(v, -1);
}
END_TEST

/* ------------------------------------------------------------- names */

START_TEST(test_syscall_names) {
  ck_assert_str_eq(syscall_name(SYS_read), "read");
  ck_assert_str_eq(syscall_name(SYS_clock_nanosleep), "clock_nanosleep");
  ck_assert_str_eq(syscall_name(SYS_restart_syscall), "restart_syscall");
  ck_assert_str_eq(syscall_name(SYS_futex), "futex");
  ck_assert_ptr_null(syscall_name(100000));
  ck_assert_ptr_null(syscall_name(-1));
  ck_assert(syscall_is_restart(SYS_restart_syscall));
  ck_assert(!syscall_is_restart(SYS_read));
  ck_assert(!syscall_is_restart(-1));
}
END_TEST

/* ---------------------------------------------------------- describe */

static const char *describe(char state, enum syscall_status status, long nr,
                            long restarted) {
  static char out[96];
  struct thread_state s = {.valid = true,
                           .state = state,
                           .syscall_status = status,
                           .syscall_nr = nr,
                           .restarted_nr = restarted};
  ck_assert_ptr_eq(thread_state_describe(&s, out, sizeof(out)), out);
  return out;
}

START_TEST(test_describe) {
  ck_assert_str_eq(describe('R', SYSCALL_RUNNING, -1, -1), "on CPU");
  /* Running, whatever an older read of the syscall file said. */
  ck_assert_str_eq(describe('R', SYSCALL_IN, SYS_read, -1), "on CPU");
  ck_assert_str_eq(describe('S', SYSCALL_IN, SYS_read, -1), "blocked in read");
  ck_assert_str_eq(describe('S', SYSCALL_IN, SYS_clock_nanosleep, -1),
                   "blocked in clock_nanosleep");
  ck_assert_str_eq(describe('D', SYSCALL_IN, SYS_read, -1),
                   "blocked in read (uninterruptible)");
  ck_assert_str_eq(describe('S', SYSCALL_NONE, -1, -1),
                   "blocked, not in a system call");
  ck_assert_str_eq(describe('D', SYSCALL_NONE, -1, -1),
                   "blocked, not in a system call (uninterruptible)");
  ck_assert_str_eq(describe('S', SYSCALL_UNKNOWN, -1, -1), "blocked");
  ck_assert_str_eq(describe('D', SYSCALL_UNKNOWN, -1, -1),
                   "blocked (uninterruptible)");
  /* Scheduled out between reading stat and reading syscall. */
  ck_assert_str_eq(describe('S', SYSCALL_RUNNING, -1, -1), "on CPU");
  ck_assert_str_eq(describe('T', SYSCALL_IN, SYS_read, -1),
                   "stopped by a signal");
  ck_assert_str_eq(describe('t', SYSCALL_IN, SYS_read, -1),
                   "stopped by a debugger");
  ck_assert_str_eq(describe('Z', SYSCALL_UNKNOWN, -1, -1), "exiting");
  ck_assert_str_eq(describe('X', SYSCALL_UNKNOWN, -1, -1), "exiting");
  ck_assert_str_eq(describe('S', SYSCALL_IN, 100000, -1),
                   "blocked in system call 100000");
}
END_TEST

START_TEST(test_describe_restarted) {
  /* A sleep our stop interrupted goes on as restart_syscall: named as the
   * call it resumes, when that is known. */
  ck_assert_str_eq(
      describe('S', SYSCALL_IN, SYS_restart_syscall, SYS_clock_nanosleep),
      "blocked in clock_nanosleep (restarted)");
  ck_assert_str_eq(describe('D', SYSCALL_IN, SYS_restart_syscall, SYS_read),
                   "blocked in read (restarted) (uninterruptible)");
  ck_assert_str_eq(describe('S', SYSCALL_IN, SYS_restart_syscall, -1),
                   "blocked in restart_syscall");
  ck_assert_str_eq(describe('S', SYSCALL_IN, SYS_restart_syscall, 100000),
                   "blocked in restart_syscall");
}
END_TEST

START_TEST(test_describe_invalid_and_small) {
  char out[96];
  struct thread_state s = {.valid = false, .state = 'R'};
  ck_assert_str_eq(thread_state_describe(&s, out, sizeof(out)),
                   "unknown (the thread could not be read)");
  s = (struct thread_state){.valid = true,
                            .state = 'S',
                            .syscall_status = SYSCALL_IN,
                            .syscall_nr = SYS_clock_nanosleep,
                            .restarted_nr = -1};
  char small[12];
  memset(small, 'x', sizeof(small));
  thread_state_describe(&s, small, 8);
  ck_assert_str_eq(small, "blocked");
  ck_assert_int_eq(small[8], 'x');
}
END_TEST

/* --------------------------------------------------------- live reads */

START_TEST(test_read_self) {
  pid_t tid = (pid_t)syscall(SYS_gettid);
  struct thread_state s;
  ck_assert(thread_state_read(getpid(), tid, &s));
  ck_assert(s.valid);
  /* Reading its own files, the thread is running, in read(). */
  ck_assert_int_eq(s.state, 'R');
  ck_assert_int_eq(s.syscall_status, SYSCALL_IN);
  ck_assert_int_eq(s.syscall_nr, SYS_read);
  ck_assert_int_eq(s.restarted_nr, -1);
  ck_assert(s.voluntary >= 0 && s.involuntary >= 0);
  uint64_t cpu = 0;
  if (s.cpu_known) { /* schedstat needs CONFIG_SCHED_INFO */
    ck_assert(thread_cpu_ns(getpid(), tid, &cpu));
    ck_assert_uint_ge(cpu, s.cpu_ns);
  }
  pid_t tids[64];
  int n = thread_list(getpid(), tids, 64);
  ck_assert_int_ge(n, 1);
  int found = 0;
  for (int i = 0; i < n; i++)
    found |= tids[i] == tid;
  ck_assert(found);
}
END_TEST

START_TEST(test_read_gone) {
  struct thread_state s;
  ck_assert(!thread_state_read(getpid(), 0x3fffffff, &s));
  ck_assert(!s.valid);
  uint64_t cpu;
  ck_assert(!thread_cpu_ns(getpid(), 0x3fffffff, &cpu));
  pid_t tids[4];
  ck_assert_int_lt(thread_list(0x3fffffff, tids, 4), 0);
}
END_TEST

/* --------------------------------------------------------------- maps */

static const char maps_text[] =
    "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234567                    "
    "/usr/bin/my prog\n"
    "55d0c0a02000-55d0c0a08000 r-xp 00002000 fd:01 1234567                    "
    "/usr/bin/my prog\n"
    "55d0c0a08000-55d0c0a0a000 rw-p 00008000 fd:01 1234567                    "
    "/usr/bin/my prog\n"
    "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          "
    "[heap]\n"
    "7f0a00000000-7f0a00021000 rw-p 00000000 00:00 0 \n"
    "7f0a10000000-7f0a10028000 r--p 00000000 fd:01 42                         "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7f0a10028000-7f0a1019d000 r-xp 00028000 fd:01 42                         "
    "/usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7f0a20000000-7f0a20001000 ---p 00000000 00:00 0\n"
    "7f0a30000000-7f0a30001000 rw-s 00000000 00:05 99                         "
    "/dev/shm/a  b (deleted)\n"
    "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          "
    "[stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  "
    "[vsyscall]";

static struct maps m;

static void maps_setup(void) { memset(&m, 0, sizeof(m)); }
static void maps_teardown(void) { maps_free(&m); }

static void parse(const char *text) {
  char *copy = strdup(text);
  ck_assert_ptr_nonnull(copy);
  ck_assert_int_eq(maps_parse(&m, copy, strlen(copy)), 0);
}

static void check_mapping(size_t i, uint64_t start, uint64_t end,
                          uint64_t offset, const char *perms,
                          const char *path) {
  ck_assert_uint_lt(i, m.count);
  const struct mapping *mp = &m.mappings[i];
  ck_assert_uint_eq(mp->start, start);
  ck_assert_uint_eq(mp->end, end);
  ck_assert_uint_eq(mp->offset, offset);
  ck_assert_str_eq(mp->perms, perms);
  ck_assert_str_eq(mp->path, path);
}

START_TEST(test_maps_parse) {
  parse(maps_text);
  ck_assert_uint_eq(m.count, 11);
  check_mapping(0, 0x55d0c0a00000, 0x55d0c0a02000, 0, "r--p",
                "/usr/bin/my prog");
  check_mapping(1, 0x55d0c0a02000, 0x55d0c0a08000, 0x2000, "r-xp",
                "/usr/bin/my prog");
  check_mapping(2, 0x55d0c0a08000, 0x55d0c0a0a000, 0x8000, "rw-p",
                "/usr/bin/my prog");
  check_mapping(3, 0x55d0c1000000, 0x55d0c1021000, 0, "rw-p", "[heap]");
  check_mapping(4, 0x7f0a00000000, 0x7f0a00021000, 0, "rw-p", "");
  check_mapping(6, 0x7f0a10028000, 0x7f0a1019d000, 0x28000, "r-xp",
                "/usr/lib/x86_64-linux-gnu/libc.so.6");
  check_mapping(7, 0x7f0a20000000, 0x7f0a20001000, 0, "---p", "");
  check_mapping(8, 0x7f0a30000000, 0x7f0a30001000, 0, "rw-s",
                "/dev/shm/a  b (deleted)");
  check_mapping(9, 0x7ffc00000000, 0x7ffc00021000, 0, "rw-p", "[stack]");
  check_mapping(10, 0xffffffffff600000, 0xffffffffff601000, 0, "--xp",
                "[vsyscall]");
}
END_TEST

START_TEST(test_maps_find) {
  parse(maps_text);
  const struct mapping *hit;
  /* Both ends of a mapping: start is in, end is not. */
  hit = maps_find(&m, 0x55d0c0a00000);
  ck_assert_ptr_eq(hit, &m.mappings[0]);
  ck_assert_ptr_eq(maps_find(&m, 0x55d0c0a01fff), &m.mappings[0]);
  ck_assert_ptr_eq(maps_find(&m, 0x55d0c0a02000), &m.mappings[1]);
  ck_assert_ptr_eq(maps_find(&m, 0x55d0c0a09fff), &m.mappings[2]);
  ck_assert_ptr_null(maps_find(&m, 0x55d0c0a0a000));
  /* In the middle of each. */
  for (size_t i = 0; i < m.count; i++) {
    const struct mapping *mp = &m.mappings[i];
    ck_assert_ptr_eq(maps_find(&m, mp->start + (mp->end - mp->start) / 2), mp);
    ck_assert_ptr_eq(maps_find(&m, mp->end - 1), mp);
  }
  ck_assert_str_eq(maps_find(&m, 0x7ffc00010000)->path, "[stack]");
  /* Gaps, and beyond both ends. */
  ck_assert_ptr_null(maps_find(&m, 0));
  ck_assert_ptr_null(maps_find(&m, 0x55d0bfffffff));
  ck_assert_ptr_null(maps_find(&m, 0x55d0c0a0a001));
  ck_assert_ptr_null(maps_find(&m, 0x7f0a00021000));
  ck_assert_ptr_null(maps_find(&m, 0x7ffc00021000));
  ck_assert_ptr_null(maps_find(&m, 0xffffffffff5fffff));
  ck_assert_ptr_null(maps_find(&m, 0xffffffffff601000));
  ck_assert_ptr_null(maps_find(&m, UINT64_MAX));
}
END_TEST

START_TEST(test_maps_garbage_ignored) {
  parse("garbage line here\n"
        "\n"
        " 1000-2000 r--p 00000000 00:00 0 /leading/blank\n"
        "1000-2000 r--p 00000000 00:00 0 /good/one\n"
        "3000-2000 r--p 00000000 00:00 0 /end/before/start\n"
        "4000-4000 r--p 00000000 00:00 0 /empty\n"
        "5000-6000 rw 00000000 00:00 0 /short/perms\n"
        "5000-6000 rw-p\n"
        "5000-6000 rw-p 00000000 00:00\n"
        "5000 rw-p 00000000 00:00 0 /no/end\n"
        "-6000 rw-p 00000000 00:00 0 /no/start\n"
        "5000-zz rw-p 00000000 00:00 0 /bad/end\n"
        "5000-6000 rw-p 00000000 00:00 0 /good/two\n"
        "5800-7000 rw-p 00000000 00:00 0 /overlaps/two\n"
        "100-800 rw-p 00000000 00:00 0 /out/of/order\n"
        "\x01\xff-\n"
        "8000-9000 r-xp 00001000 00:00 0 /good/three");
  ck_assert_uint_eq(m.count, 3);
  check_mapping(0, 0x1000, 0x2000, 0, "r--p", "/good/one");
  check_mapping(1, 0x5000, 0x6000, 0, "rw-p", "/good/two");
  check_mapping(2, 0x8000, 0x9000, 0x1000, "r-xp", "/good/three");
  ck_assert_ptr_null(maps_find(&m, 0x6800));
  ck_assert_ptr_null(maps_find(&m, 0x400));
  ck_assert_ptr_eq(maps_find(&m, 0x5fff), &m.mappings[1]);
}
END_TEST

START_TEST(test_maps_empty_and_reparse) {
  parse("");
  ck_assert_uint_eq(m.count, 0);
  ck_assert_ptr_null(maps_find(&m, 0x1000));
  /* Parsing again replaces what was there. */
  parse(maps_text);
  ck_assert_uint_eq(m.count, 11);
  parse("1000-2000 r--p 00000000 00:00 0 /x\n");
  ck_assert_uint_eq(m.count, 1);
  check_mapping(0, 0x1000, 0x2000, 0, "r--p", "/x");
}
END_TEST

static uint64_t modules_hash(const char *text) {
  parse(text);
  return m.modules_hash;
}

START_TEST(test_maps_modules_hash) {
  /* Only the file-backed mappings count: anonymous ones come and go with
   * every large malloc, and nothing needs reloading for them. */
  const char *anon = "7f0a00000000-7f0a00021000 rw-p 00000000 00:00 0\n";
  const char *lib = "7f0a10000000-7f0a10028000 r--p 00000000 fd:01 42 "
                    "/usr/lib/libc.so.6\n";
  const char *moved = "7f0b10000000-7f0b10028000 r--p 00000000 fd:01 42 "
                      "/usr/lib/libc.so.6\n";
  char both[256];
  snprintf(both, sizeof(both), "%s%s", anon, lib);
  uint64_t none = modules_hash("");
  ck_assert_uint_eq(modules_hash(anon), none);
  ck_assert_uint_eq(modules_hash("[heap]\n"), none);
  uint64_t with_lib = modules_hash(lib);
  ck_assert_uint_ne(with_lib, none);
  ck_assert_uint_eq(modules_hash(both), with_lib);
  ck_assert_uint_eq(modules_hash(lib), with_lib);
  ck_assert_uint_ne(modules_hash(moved), with_lib);
  ck_assert_uint_ne(modules_hash(maps_text), with_lib);
  ck_assert_uint_eq(modules_hash(maps_text), modules_hash(maps_text));
}
END_TEST

START_TEST(test_maps_read_self) {
  ck_assert_int_eq(maps_read(&m, getpid()), 0);
  ck_assert_uint_gt(m.count, 0);
  /* Where a local lives: the thread's stack (or, under valgrind or ASan,
   * some other writable memory). */
  int local;
  const struct mapping *stack = maps_find(&m, (uint64_t)(uintptr_t)&local);
  ck_assert_ptr_nonnull(stack);
  ck_assert(stack->perms[0] == 'r' && stack->perms[1] == 'w');
  const struct mapping *code =
      maps_find(&m, (uint64_t)(uintptr_t)&check_mapping);
  ck_assert_ptr_nonnull(code);
  ck_assert_int_eq(code->perms[2], 'x');
  ck_assert_ptr_nonnull(strstr(code->path, "check_threadstate"));
  for (size_t i = 1; i < m.count; i++)
    ck_assert_uint_ge(m.mappings[i].start, m.mappings[i - 1].end);
}
END_TEST

static Suite *threadstate_suite(void) {
  Suite *s = suite_create("threadstate");
  TCase *tc;

  tc = tcase_create("stat");
  tcase_add_test(tc, test_stat_plain);
  tcase_add_test(tc, test_stat_nasty_names);
  tcase_add_test(tc, test_stat_garbage);
  suite_add_tcase(s, tc);

  tc = tcase_create("syscall");
  tcase_add_test(tc, test_syscall_running);
  tcase_add_test(tc, test_syscall_none);
  tcase_add_test(tc, test_syscall_in);
  tcase_add_test(tc, test_syscall_garbage);
  tcase_add_test(tc, test_syscall_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("status");
  tcase_add_test(tc, test_status_switches);
  tcase_add_test(tc, test_status_switches_order_and_end);
  tcase_add_test(tc, test_status_switches_garbage);
  suite_add_tcase(s, tc);

  tc = tcase_create("describe");
  tcase_add_test(tc, test_describe);
  tcase_add_test(tc, test_describe_restarted);
  tcase_add_test(tc, test_describe_invalid_and_small);
  suite_add_tcase(s, tc);

  tc = tcase_create("live");
  tcase_add_test(tc, test_read_self);
  tcase_add_test(tc, test_read_gone);
  suite_add_tcase(s, tc);

  tc = tcase_create("maps");
  tcase_add_checked_fixture(tc, maps_setup, maps_teardown);
  tcase_add_test(tc, test_maps_parse);
  tcase_add_test(tc, test_maps_find);
  tcase_add_test(tc, test_maps_garbage_ignored);
  tcase_add_test(tc, test_maps_empty_and_reparse);
  tcase_add_test(tc, test_maps_modules_hash);
  tcase_add_test(tc, test_maps_read_self);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(threadstate_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
