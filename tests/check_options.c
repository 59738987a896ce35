/*
 * The watcher's command line, and the two pure parsers of what it reads
 * from the target: /proc/PID/maps lines and the region header.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watcher/options.h"
#include "watcher/target.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)

static struct watcher_options opts;
static char why[256];

static int parse_argv(char **argv) {
  int argc = 0;
  while (argv[argc])
    argc++;
  memset(why, 0, sizeof(why));
  return watcher_options_parse(&opts, argc, argv, why, sizeof(why));
}

/* String literals are char[] in C, so these need no cast. */
#define PARSE(...) parse_argv((char *[]){"perpetuo", __VA_ARGS__, NULL})

/* A refusal says why, in one line that the caller can print as it is. */
static void check_refused(int rc, const char *what) {
  ck_assert_msg(rc == -1, "%s: accepted", what);
  ck_assert_msg(why[0] != '\0', "%s: no reason given", what);
  ck_assert_msg(strchr(why, '\n') == NULL, "%s: reason '%s' spans lines", what,
                why);
  ck_assert_msg(strlen(why) < sizeof(why) - 1, "%s: reason truncated", what);
}

#define REFUSED(...) check_refused(PARSE(__VA_ARGS__), #__VA_ARGS__)

/* ---------------------------------------------------------------- options */

START_TEST(test_defaults) {
  ck_assert_int_eq(PARSE("watch", "1234"), 0);
  ck_assert_int_eq(opts.pid, 1234);
  ck_assert_int_eq(opts.poll_interval_ns, 50 * MS);
  ck_assert_int_eq(opts.alert_interval_ns, 200 * MS);
  ck_assert_int_eq(opts.traceback_suppress_ns, 30 * S);
  ck_assert_int_eq(opts.gap_ns, 0);
  ck_assert(opts.print_locals);
  ck_assert(!opts.json_mode);
  ck_assert_ptr_null(opts.output_path);
  ck_assert_int_eq(opts.output_fd, 2);
  ck_assert_int_eq(opts.control_fd, -1);
  ck_assert_uint_eq(opts.region, 0);
  ck_assert(!opts.help);
  ck_assert(!opts.version);
}
END_TEST

START_TEST(test_original_cli) {
  /* The original perpetuo's options come before the command. */
  ck_assert_int_eq(PARSE("--poll-interval", "0.05", "--alert-interval", "0.5",
                         "--traceback-suppress", "10", "--no-print-locals",
                         "--json-mode", "watch", "4321"),
                   0);
  ck_assert_int_eq(opts.pid, 4321);
  ck_assert_int_eq(opts.poll_interval_ns, 50 * MS);
  ck_assert_int_eq(opts.alert_interval_ns, 500 * MS);
  ck_assert_int_eq(opts.traceback_suppress_ns, 10 * S);
  ck_assert(!opts.print_locals);
  ck_assert(opts.json_mode);
  ck_assert_int_eq(opts.output_fd, 2);
}
END_TEST

START_TEST(test_options_anywhere) {
  ck_assert_int_eq(PARSE("watch", "--json-mode", "77", "--poll-interval", "1"),
                   0);
  ck_assert_int_eq(opts.pid, 77);
  ck_assert(opts.json_mode);
  ck_assert_int_eq(opts.poll_interval_ns, 1 * S);
}
END_TEST

START_TEST(test_print_locals_last_wins) {
  ck_assert_int_eq(PARSE("--no-print-locals", "--print-locals", "watch", "1"),
                   0);
  ck_assert(opts.print_locals);
  ck_assert_int_eq(PARSE("--print-locals", "--no-print-locals", "watch", "1"),
                   0);
  ck_assert(!opts.print_locals);
  ck_assert_int_eq(
      PARSE("--poll-interval", "0.5", "--poll-interval", "0.02", "watch", "1"),
      0);
  ck_assert_int_eq(opts.poll_interval_ns, 20 * MS);
}
END_TEST

START_TEST(test_interval_forms_and_bounds) {
  ck_assert_int_eq(PARSE("--poll-interval", "1e-3", "watch", "1"), 0);
  ck_assert_int_eq(opts.poll_interval_ns, 1 * MS);
  ck_assert_int_eq(PARSE("--poll-interval", "60", "watch", "1"), 0);
  ck_assert_int_eq(opts.poll_interval_ns, 60 * S);
  ck_assert_int_eq(PARSE("--alert-interval", "0.001", "watch", "1"), 0);
  ck_assert_int_eq(opts.alert_interval_ns, 1 * MS);
  ck_assert_int_eq(PARSE("--alert-interval", "86400", "watch", "1"), 0);
  ck_assert_int_eq(opts.alert_interval_ns, 86400 * S);
  /* As in the original: no suppression at all, a traceback every stall. */
  ck_assert_int_eq(PARSE("--traceback-suppress", "0", "watch", "1"), 0);
  ck_assert_int_eq(opts.traceback_suppress_ns, 0);
  ck_assert_int_eq(PARSE("--traceback-suppress", "86400", "watch", "1"), 0);
  ck_assert_int_eq(opts.traceback_suppress_ns, 86400 * S);
}
END_TEST

START_TEST(test_bad_intervals) {
  static const char *const flags[] = {"--poll-interval", "--alert-interval",
                                      "--traceback-suppress"};
  static const char *const bad[] = {
      "-1",  "-0.5", "nan",  "NaN", "inf",  "-inf", "infinity", "1e400", "1e9",
      "abc", "",     "0.1x", "1,5", "0.1 ", "1e",   "--",       "watch"};
  for (size_t f = 0; f < 3; f++)
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      char what[64];
      snprintf(what, sizeof(what), "%s '%s'", flags[f], bad[i]);
      check_refused(parse_argv((char *[]){"perpetuo", (char *)flags[f],
                                          (char *)bad[i], "watch", "1", NULL}),
                    what);
    }
  /* Zero is no poll and no threshold. */
  REFUSED("--poll-interval", "0", "watch", "1");
  REFUSED("--alert-interval", "0", "watch", "1");
  REFUSED("--alert-interval", "0.0", "watch", "1");
  /* Absurd: below a millisecond, polls slower than a minute, a day. */
  REFUSED("--poll-interval", "0.0001", "watch", "1");
  REFUSED("--poll-interval", "61", "watch", "1");
  REFUSED("--alert-interval", "86401", "watch", "1");
  REFUSED("--traceback-suppress", "86401", "watch", "1");
  REFUSED("--traceback-suppress", "-0.001", "watch", "1");
}
END_TEST

START_TEST(test_missing_values) {
  REFUSED("watch", "1", "--poll-interval");
  REFUSED("watch", "1", "--alert-interval");
  REFUSED("watch", "1", "--traceback-suppress");
  REFUSED("watch", "1", "--output");
  REFUSED("watch", "1", "--output-fd");
  REFUSED("watch", "1", "--control-fd");
  REFUSED("watch", "1", "--region");
  /* The next word is taken for the value, and refused as one. */
  REFUSED("--poll-interval", "watch", "1");
}
END_TEST

START_TEST(test_unknown_flags) {
  REFUSED("--bogus", "watch", "1");
  REFUSED("-x", "watch", "1");
  REFUSED("-", "watch", "1");
  REFUSED("--json", "watch", "1");
  REFUSED("watch", "--bogus", "1");
  REFUSED("watch", "1", "--bogus");
  REFUSED("--poll_interval", "0.1", "watch", "1");
}
END_TEST

START_TEST(test_commands) {
  REFUSED(NULL); /* no arguments at all */
  REFUSED("--json-mode");
  REFUSED("attach", "1");
  REFUSED("WATCH", "1");
  REFUSED("watch");
  REFUSED("watch", "--json-mode");
  REFUSED("watch", "1", "2");
  REFUSED("watch", "1", "watch");
}
END_TEST

START_TEST(test_bad_pids) {
  REFUSED("watch", "0");
  REFUSED("watch", "-1");
  REFUSED("watch", "abc");
  REFUSED("watch", "12abc");
  REFUSED("watch", "");
  REFUSED("watch", "1.5");
  REFUSED("watch", "0x10");
  REFUSED("watch", "99999999999");
  REFUSED("watch", "2147483648");
  REFUSED("watch", "18446744073709551617");
  ck_assert_int_eq(PARSE("watch", "2147483647"), 0);
  ck_assert_int_eq(opts.pid, 2147483647);
  ck_assert_int_eq(PARSE("watch", "1"), 0);
  ck_assert_int_eq(opts.pid, 1);
  /* A negative pid is named as such, not as an unknown option. */
  ck_assert_int_eq(PARSE("watch", "-1"), -1);
  ck_assert_str_eq(why, "'-1' is not a process id");
}
END_TEST

/* The original's parser accepts "--name=value"; its users' scripts may too. */
START_TEST(test_attached_values) {
  ck_assert_int_eq(PARSE("--poll-interval=0.05", "--alert-interval=1",
                         "--traceback-suppress=0", "--output=/tmp/x", "watch",
                         "7"),
                   0);
  ck_assert_int_eq(opts.poll_interval_ns, 50000000);
  ck_assert_int_eq(opts.alert_interval_ns, 1000000000);
  ck_assert_int_eq(opts.traceback_suppress_ns, 0);
  ck_assert_str_eq(opts.output_path, "/tmp/x");
  ck_assert_int_eq(opts.pid, 7);
  ck_assert_int_eq(PARSE("--output-fd=5", "watch", "7"), 0);
  ck_assert_int_eq(opts.output_fd, 5);
  REFUSED("--poll-interval=", "watch", "7");
  REFUSED("--poll-interval=-1", "watch", "7");
  REFUSED("--json-mode=1", "watch", "7");
  REFUSED("--output=", "watch", "7");
  REFUSED("--bogus=1", "watch", "7");
}
END_TEST

START_TEST(test_output) {
  ck_assert_int_eq(PARSE("--output", "/tmp/log", "watch", "1"), 0);
  ck_assert_str_eq(opts.output_path, "/tmp/log");
  ck_assert_int_eq(opts.output_fd, 2);
  ck_assert_int_eq(PARSE("--output-fd", "1", "watch", "1"), 0);
  ck_assert_ptr_null(opts.output_path);
  ck_assert_int_eq(opts.output_fd, 1);
  REFUSED("--output", "", "watch", "1");
  REFUSED("--output-fd", "0", "watch", "1");
  REFUSED("--output-fd", "-1", "watch", "1");
  REFUSED("--output-fd", "abc", "watch", "1");
  REFUSED("--output-fd", "2097152", "watch", "1");
  /* Two destinations for one stream: refused whichever fd, in either order,
   * the default's own number included. */
  REFUSED("--output", "/tmp/log", "--output-fd", "3", "watch", "1");
  REFUSED("--output-fd", "3", "--output", "/tmp/log", "watch", "1");
  REFUSED("--output", "/tmp/log", "--output-fd", "2", "watch", "1");
  REFUSED("--output-fd", "2", "--output", "/tmp/log", "watch", "1");
}
END_TEST

START_TEST(test_spawn_options) {
  ck_assert_int_eq(
      PARSE("--control-fd", "3", "--region", "0x7f0000001000", "watch", "99"),
      0);
  ck_assert_int_eq(opts.control_fd, 3);
  ck_assert_uint_eq(opts.region, UINT64_C(0x7f0000001000));
  /* 0, 1 and 2 are the standard streams, not a control channel. */
  REFUSED("--control-fd", "2", "watch", "1");
  REFUSED("--region", "0", "watch", "1");
  REFUSED("--region", "0x7f0000001001", "watch", "1");
  REFUSED("--region", "banana", "watch", "1");
  REFUSED("--region", "0x1000zz", "watch", "1");
  REFUSED("--region", "", "watch", "1");
  REFUSED("--region", "0x10000000000000000", "watch", "1");
}
END_TEST

START_TEST(test_help_version) {
  ck_assert_int_eq(PARSE("--help"), 0);
  ck_assert(opts.help);
  ck_assert(!opts.version);
  ck_assert_int_eq(PARSE("-h"), 0);
  ck_assert(opts.help);
  ck_assert_int_eq(PARSE("--json-mode", "--help", "--bogus"), 0);
  ck_assert(opts.help);
  ck_assert_int_eq(PARSE("--version"), 0);
  ck_assert(opts.version);
  ck_assert(!opts.help);
  ck_assert_int_eq(PARSE("watch", "--version"), 0);
  ck_assert(opts.version);
  /* The usage names every option the parser takes. */
  static const char *const names[] = {
      "--poll-interval", "--alert-interval",  "--traceback-suppress",
      "--print-locals",  "--no-print-locals", "--json-mode",
      "--output",        "--output-fd",       "--version",
      "--help",          "watch PID"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    ck_assert_ptr_nonnull(strstr(watcher_usage, names[i]));
}
END_TEST

START_TEST(test_why_fits_small_buffer) {
  char small[8];
  memset(small, 'Z', sizeof(small));
  char *argv[] = {"perpetuo", "--a-very-long-unknown-option-name", "watch", "1",
                  NULL};
  ck_assert_int_eq(watcher_options_parse(&opts, 4, argv, small, sizeof(small)),
                   -1);
  ck_assert_int_eq(small[sizeof(small) - 1], '\0');
  ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/* ---------------------------------------------------------- parse_seconds */

START_TEST(test_parse_seconds) {
  int64_t ns = -1;
  ck_assert(parse_seconds("0.05", 0, 10, &ns));
  ck_assert_int_eq(ns, 50 * MS);
  ck_assert(parse_seconds("2", 0, 10, &ns));
  ck_assert_int_eq(ns, 2 * S);
  ck_assert(parse_seconds("1e-3", 0, 10, &ns));
  ck_assert_int_eq(ns, 1 * MS);
  ck_assert(parse_seconds("0.2", 0, 10, &ns));
  ck_assert_int_eq(ns, 200 * MS);
  ck_assert(parse_seconds("0.01", 0, 10, &ns));
  ck_assert_int_eq(ns, 10 * MS);
  ck_assert(parse_seconds("0.000000001", 0, 10, &ns));
  ck_assert_int_eq(ns, 1);
  ck_assert(parse_seconds("0", 0, 10, &ns));
  ck_assert_int_eq(ns, 0);
  /* Both bounds are inclusive. */
  ck_assert(parse_seconds("10", 0, 10, &ns));
  ck_assert_int_eq(ns, 10 * S);
  ck_assert(parse_seconds("0.5", 0.5, 10, &ns));
  ck_assert_int_eq(ns, 500 * MS);
  ck_assert(parse_seconds("86400", 0, 86400, &ns));
  ck_assert_int_eq(ns, 86400 * S);
}
END_TEST

START_TEST(test_parse_seconds_refuses) {
  static const char *const bad[] = {"",       "abc",  "1x",   "1 ",
                                    "nan",    "inf",  "-inf", "1e400",
                                    "-1e400", "10.5", "-1",   "0.49"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t ns = 12345;
    ck_assert_msg(!parse_seconds(bad[i], 0.5, 10, &ns), "'%s' accepted",
                  bad[i]);
    /* A refusal leaves the output alone. */
    ck_assert_int_eq(ns, 12345);
  }
  int64_t ns = 12345;
  ck_assert(!parse_seconds(NULL, 0, 10, &ns));
  ck_assert_int_eq(ns, 12345);
}
END_TEST

/* ---------------------------------------------------------------- maps */

static bool parse_maps(const char *line, uint64_t *start, uint64_t *end,
                       char perms[5], const char **path) {
  *start = *end = 0;
  memset(perms, 0, 5);
  *path = NULL;
  return maps_parse_line(line, start, end, perms, path);
}

START_TEST(test_maps_anonymous) {
  uint64_t start, end;
  char perms[5];
  const char *path;
  const char *line = "7f1234560000-7f1234570000 rw-p 00000000 00:00 0 \n";
  ck_assert(parse_maps(line, &start, &end, perms, &path));
  ck_assert_uint_eq(start, UINT64_C(0x7f1234560000));
  ck_assert_uint_eq(end, UINT64_C(0x7f1234570000));
  ck_assert_str_eq(perms, "rw-p");
  /* The path runs to the end of the line: just its newline here. */
  ck_assert_str_eq(path, "\n");
  ck_assert_ptr_eq(path, line + strlen(line) - 1);

  ck_assert(parse_maps("1000-2000 r--s 00000000 00:00 0", &start, &end, perms,
                       &path));
  ck_assert_uint_eq(start, 0x1000);
  ck_assert_uint_eq(end, 0x2000);
  ck_assert_str_eq(perms, "r--s");
  ck_assert_str_eq(path, "");
}
END_TEST

START_TEST(test_maps_with_path) {
  uint64_t start, end;
  char perms[5];
  const char *path;
  ck_assert(parse_maps("55d0c0a00000-55d0c0a21000 r-xp 00001000 08:01 1234567 "
                       "                   /usr/bin/cat\n",
                       &start, &end, perms, &path));
  ck_assert_uint_eq(start, UINT64_C(0x55d0c0a00000));
  ck_assert_uint_eq(end, UINT64_C(0x55d0c0a21000));
  ck_assert_str_eq(perms, "r-xp");
  ck_assert_str_eq(path, "/usr/bin/cat\n");

  /* Spaces inside a path are part of it. */
  ck_assert(parse_maps("1000-3000 rw-s 00000000 00:05 42    /tmp/a b "
                       "(deleted)",
                       &start, &end, perms, &path));
  ck_assert_str_eq(path, "/tmp/a b (deleted)");

  ck_assert(parse_maps("7ffd1000-7ffd2000 rw-p 00000000 00:00 0  [stack]\n",
                       &start, &end, perms, &path));
  ck_assert_str_eq(path, "[stack]\n");

  /* The whole 64-bit range. */
  ck_assert(parse_maps("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 "
                       "0 [vsyscall]",
                       &start, &end, perms, &path));
  ck_assert_uint_eq(start, UINT64_C(0xffffffffff600000));
  ck_assert_uint_eq(end, UINT64_C(0xffffffffff601000));
  ck_assert_str_eq(perms, "--xp");
}
END_TEST

START_TEST(test_maps_named_anonymous) {
  uint64_t start, end;
  char perms[5];
  const char *path;
  ck_assert(parse_maps("7f0000000000-7f0000044000 rw-p 00000000 00:00 0 "
                       "                         [anon:perpetuo]\n",
                       &start, &end, perms, &path));
  ck_assert_uint_eq(start, UINT64_C(0x7f0000000000));
  ck_assert_uint_eq(end, UINT64_C(0x7f0000044000));
  ck_assert_str_eq(perms, "rw-p");
  ck_assert_str_eq(path, "[anon:perpetuo]\n");
}
END_TEST

START_TEST(test_maps_malformed) {
  static const char *const bad[] = {
      "",
      "\n",
      "garbage",
      "1000",
      "1000-",
      "1000-2000",
      "1000-2000 ",
      "1000-2000 rw",
      "1000-2000 rw-p",
      "1000-2000 rw-p 00000000",
      "1000-2000 rw-p 00000000 00:00",
      "1000-2000 rw-p 00000000 00:00\n",
      "1000 2000 rw-p 00000000 00:00 0",
      "1000-2000rw-p 00000000 00:00 0",
      "2000-1000 rw-p 00000000 00:00 0",
      "1000-1000 rw-p 00000000 00:00 0",
      "zz-2000 rw-p 00000000 00:00 0",
      "1000-zz rw-p 00000000 00:00 0",
      "-2000 rw-p 00000000 00:00 0",
      "1000--2000 rw-p 00000000 00:00 0",
      " 1000-2000 rw-p 00000000 00:00 0",
      "1000- 2000 rw-p 00000000 00:00 0",
      "+1000-2000 rw-p 00000000 00:00 0",
      "10000000000000000-10000000000000001 rw-p 00000000 00:00 0",
      "1000-2000 rw-pX 00000000 00:00 0",
      "1000-2000 r w-p 00000000 00:00 0",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t start, end;
    char perms[5];
    const char *path;
    ck_assert_msg(!parse_maps(bad[i], &start, &end, perms, &path),
                  "'%s' accepted", bad[i]);
  }
}
END_TEST

/* --------------------------------------------------------------- header */

#define ADDR UINT64_C(0x7f5a3c000000)

static struct perpetuo__header good_header(void) {
  struct perpetuo__header h;
  /* As libperpetuo's region.c fills it, padding and reserved words zero. */
  memset(&h, 0, sizeof(h));
  memcpy(h.magic, PERPETUO__MAGIC, PERPETUO__MAGIC_LEN);
  h.version = PERPETUO__FORMAT_VERSION;
  h.header_size = sizeof(h);
  h.self = ADDR;
  h.region_size = PERPETUO__REGION_SIZE;
  h.slot_size = PERPETUO__SLOT_SIZE;
  h.slot_count = PERPETUO__SLOT_COUNT;
  h.slots_offset = PERPETUO__SLOTS_OFFSET;
  h.high_water = 3;
  h.python_offset = PERPETUO__PYTHON_OFFSET;
  h.python_size = PERPETUO__PYTHON_SIZE;
  h.pid = 4242;
  return h;
}

static void check_bad_header(const struct perpetuo__header *h,
                             const char *want) {
  const char *got = header_check(h, ADDR);
  ck_assert_ptr_nonnull(got);
  ck_assert_str_eq(got, want);
}

START_TEST(test_header_valid) {
  struct perpetuo__header h = good_header();
  ck_assert_ptr_null(header_check(&h, ADDR));
  /* Edges that are still plausible. */
  h.high_water = 0;
  ck_assert_ptr_null(header_check(&h, ADDR));
  h.high_water = h.slot_count;
  ck_assert_ptr_null(header_check(&h, ADDR));
  h = good_header();
  h.slot_count = 1;
  h.high_water = 1;
  ck_assert_ptr_null(header_check(&h, ADDR));
  h = good_header();
  h.slot_count = 65536;
  h.region_size = PERPETUO__SLOTS_OFFSET + (uint64_t)65536 * 256;
  ck_assert_ptr_null(header_check(&h, ADDR));
  /* A newer library may grow the header into the space before the slots. */
  h = good_header();
  h.header_size = 256;
  ck_assert_ptr_null(header_check(&h, ADDR));
}
END_TEST

START_TEST(test_header_bad_magic) {
  for (size_t i = 0; i < PERPETUO__MAGIC_LEN; i++) {
    struct perpetuo__header h = good_header();
    h.magic[i] ^= 0x20;
    check_bad_header(&h, "no perpetuo magic");
  }
  struct perpetuo__header h;
  memset(&h, 0, sizeof(h));
  check_bad_header(&h, "no perpetuo magic");
}
END_TEST

START_TEST(test_header_not_self) {
  struct perpetuo__header h = good_header();
  /* A copy of a header elsewhere (a forked child's, a core file's). */
  ck_assert_str_eq(header_check(&h, ADDR + 4096),
                   "the region does not name its own address");
  h.self = 0;
  check_bad_header(&h, "the region does not name its own address");
}
END_TEST

START_TEST(test_header_wrong_version) {
  static const uint32_t versions[] = {0, PERPETUO__FORMAT_VERSION + 1,
                                      UINT32_MAX};
  for (size_t i = 0; i < 3; i++) {
    struct perpetuo__header h = good_header();
    h.version = versions[i];
    check_bad_header(&h, "unsupported region format version");
  }
}
END_TEST

START_TEST(test_header_implausible_sizes) {
  struct perpetuo__header h = good_header();
  h.header_size = sizeof(h) - 8;
  check_bad_header(&h, "unexpected header or slot size");
  h = good_header();
  h.header_size = 0;
  check_bad_header(&h, "unexpected header or slot size");
  h = good_header();
  h.slot_size = 128;
  check_bad_header(&h, "unexpected header or slot size");
  h = good_header();
  h.slot_size = 512;
  check_bad_header(&h, "unexpected header or slot size");
}
END_TEST

START_TEST(test_header_implausible_counts) {
  struct perpetuo__header h = good_header();
  h.slot_count = 0;
  h.high_water = 0;
  check_bad_header(&h, "implausible slot count");
  h = good_header();
  h.slot_count = 65537;
  h.region_size = UINT64_MAX;
  check_bad_header(&h, "implausible slot count");
  h = good_header();
  h.slot_count = UINT32_MAX;
  h.region_size = UINT64_MAX;
  check_bad_header(&h, "implausible slot count");
  h = good_header();
  h.high_water = h.slot_count + 1;
  check_bad_header(&h, "implausible slot count");
  h = good_header();
  h.high_water = UINT32_MAX;
  check_bad_header(&h, "implausible slot count");
}
END_TEST

START_TEST(test_header_slots_do_not_fit) {
  struct perpetuo__header h = good_header();
  h.region_size -= 1;
  check_bad_header(&h, "slots do not fit the region");
  h = good_header();
  h.region_size = 0;
  check_bad_header(&h, "slots do not fit the region");
  h = good_header();
  h.slots_offset = 64; /* inside the header */
  check_bad_header(&h, "slots do not fit the region");
  h = good_header();
  /* Room enough, but not cache-line aligned. */
  h.slots_offset = PERPETUO__SLOTS_OFFSET + 8;
  h.region_size += 64;
  check_bad_header(&h, "slots do not fit the region");
  h.slots_offset = PERPETUO__SLOTS_OFFSET + 64;
  ck_assert_ptr_null(header_check(&h, ADDR));
  h = good_header();
  h.slots_offset = UINT32_MAX - 63;
  check_bad_header(&h, "slots do not fit the region");
  h = good_header();
  h.slot_count = 2048; /* twice as many slots as mapped */
  check_bad_header(&h, "slots do not fit the region");
}
END_TEST

static Suite *options_suite(void) {
  Suite *s = suite_create("options");
  TCase *tc;

  tc = tcase_create("cli");
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_original_cli);
  tcase_add_test(tc, test_options_anywhere);
  tcase_add_test(tc, test_print_locals_last_wins);
  tcase_add_test(tc, test_interval_forms_and_bounds);
  tcase_add_test(tc, test_bad_intervals);
  tcase_add_test(tc, test_missing_values);
  tcase_add_test(tc, test_unknown_flags);
  tcase_add_test(tc, test_commands);
  tcase_add_test(tc, test_bad_pids);
  tcase_add_test(tc, test_attached_values);
  tcase_add_test(tc, test_output);
  tcase_add_test(tc, test_spawn_options);
  tcase_add_test(tc, test_help_version);
  tcase_add_test(tc, test_why_fits_small_buffer);
  suite_add_tcase(s, tc);

  tc = tcase_create("seconds");
  tcase_add_test(tc, test_parse_seconds);
  tcase_add_test(tc, test_parse_seconds_refuses);
  suite_add_tcase(s, tc);

  tc = tcase_create("maps");
  tcase_add_test(tc, test_maps_anonymous);
  tcase_add_test(tc, test_maps_with_path);
  tcase_add_test(tc, test_maps_named_anonymous);
  tcase_add_test(tc, test_maps_malformed);
  suite_add_tcase(s, tc);

  tc = tcase_create("header");
  tcase_add_test(tc, test_header_valid);
  tcase_add_test(tc, test_header_bad_magic);
  tcase_add_test(tc, test_header_not_self);
  tcase_add_test(tc, test_header_wrong_version);
  tcase_add_test(tc, test_header_implausible_sizes);
  tcase_add_test(tc, test_header_implausible_counts);
  tcase_add_test(tc, test_header_slots_do_not_fit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(options_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
