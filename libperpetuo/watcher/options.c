#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

const char watcher_usage[] =
    "Usage: perpetuo [OPTIONS] watch PID\n"
    "\n"
    "Watch process PID, which registered perpetuo trackers, and report its\n"
    "stalls while they happen.\n"
    "\n"
    "Options:\n"
    "  --poll-interval SECONDS       how often to read the trackers "
    "[default: 0.05]\n"
    "  --alert-interval SECONDS      how long a tracker must stay active to be "
    "a\n"
    "                                stall, unless it has its own threshold "
    "[default: 0.2]\n"
    "  --traceback-suppress SECONDS  at most one traceback per this long "
    "[default: 30]\n"
    "  --print-locals                show local variables in tracebacks "
    "[default]\n"
    "  --no-print-locals             do not show local variables\n"
    "  --json-mode                   write one JSON object per line\n"
    "  --all-threads                 stop and show every thread's native "
    "stack,\n"
    "                                not only the stalled thread's\n"
    "  --no-stacks                   never stop the target: report stalls "
    "without\n"
    "                                stacks\n"
    "  --output FILE                 append reports to FILE [default: "
    "stderr]\n"
    "  --output-fd N                 write reports to file descriptor N\n"
    "  --version                     print the version and exit\n"
    "  -h, --help                    print this help and exit\n";

bool parse_seconds(const char *text, double min_s, double max_s, int64_t *ns) {
  if (!text || !*text)
    return false;
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || *end || !isfinite(v) || v < min_s || v > max_s)
    return false;
  *ns = (int64_t)llround(v * 1e9);
  return true;
}

static bool parse_int(const char *text, long long min, long long max,
                      long long *out) {
  if (!text || !*text)
    return false;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

#define DAY_S 86400.0

int watcher_options_parse(struct watcher_options *o, int argc, char **argv,
                          char *why, size_t size) {
  *o = (struct watcher_options){
      .poll_interval_ns = 50000000,
      .alert_interval_ns = 200000000,
      .traceback_suppress_ns = 30000000000,
      .print_locals = true,
      .output_fd = 2,
      .control_fd = -1,
  };
  bool have_command = false, have_pid = false, have_output_fd = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    long long n;
    /* "--name=value", as the original's command line parser accepts too. */
    char name[32];
    bool attached = false;
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (eq && (size_t)(eq - arg) < sizeof(name)) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      arg = name;
      value = eq + 1;
      attached = true;
    }
    if (attached &&
        (!strcmp(arg, "--print-locals") || !strcmp(arg, "--no-print-locals") ||
         !strcmp(arg, "--json-mode") || !strcmp(arg, "--help") ||
         !strcmp(arg, "--all-threads") || !strcmp(arg, "--no-stacks") ||
         !strcmp(arg, "--version"))) {
      snprintf(why, size, "%s takes no value", arg);
      return -1;
    }
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      o->help = true;
      return 0;
    } else if (!strcmp(arg, "--version")) {
      o->version = true;
      return 0;
    } else if (!strcmp(arg, "--print-locals")) {
      o->print_locals = true;
    } else if (!strcmp(arg, "--no-print-locals")) {
      o->print_locals = false;
    } else if (!strcmp(arg, "--json-mode")) {
      o->json_mode = true;
    } else if (!strcmp(arg, "--all-threads")) {
      o->all_threads = true;
    } else if (!strcmp(arg, "--no-stacks")) {
      o->no_stacks = true;
    } else if (!strcmp(arg, "--poll-interval") ||
               !strcmp(arg, "--alert-interval") ||
               !strcmp(arg, "--traceback-suppress")) {
      bool poll = arg[2] == 'p', alert = arg[2] == 'a';
      double min_s = poll ? 0.001 : alert ? 0.001 : 0.0;
      double max_s = poll ? 60.0 : DAY_S;
      int64_t *dst = poll    ? &o->poll_interval_ns
                     : alert ? &o->alert_interval_ns
                             : &o->traceback_suppress_ns;
      if (!value) {
        snprintf(why, size, "%s needs a number of seconds", arg);
        return -1;
      }
      if (!parse_seconds(value, min_s, max_s, dst)) {
        snprintf(why, size, "%s takes seconds from %g to %g, not '%s'", arg,
                 min_s, max_s, value);
        return -1;
      }
      i += !attached;
    } else if (!strcmp(arg, "--output")) {
      if (!value || !*value) {
        snprintf(why, size, "--output needs a file name");
        return -1;
      }
      o->output_path = value;
      i += !attached;
    } else if (!strcmp(arg, "--output-fd") || !strcmp(arg, "--control-fd")) {
      bool control = arg[2] == 'c';
      if (!parse_int(value, control ? 3 : 1, 1 << 20, &n)) {
        snprintf(why, size, "%s takes a file descriptor number, not '%s'", arg,
                 value ? value : "nothing");
        return -1;
      }
      *(control ? &o->control_fd : &o->output_fd) = (int)n;
      have_output_fd |= !control;
      i += !attached;
    } else if (!strcmp(arg, "--region")) {
      char *end;
      errno = 0;
      unsigned long long addr = value ? strtoull(value, &end, 0) : 0;
      if (!value || errno || *end || addr == 0 || addr % 4096 != 0) {
        snprintf(why, size, "--region takes a page-aligned address, not '%s'",
                 value ? value : "nothing");
        return -1;
      }
      o->region = addr;
      i += !attached;
    } else if (arg[0] == '-' && have_command && !have_pid && arg[1] >= '0' &&
               arg[1] <= '9') {
      snprintf(why, size, "'%s' is not a process id", arg);
      return -1;
    } else if (arg[0] == '-' && !have_pid) {
      snprintf(why, size, "unknown option '%s' (see perpetuo --help)", arg);
      return -1;
    } else if (!have_command) {
      if (strcmp(arg, "watch") != 0) {
        snprintf(why, size, "unknown command '%s': the command is 'watch PID'",
                 arg);
        return -1;
      }
      have_command = true;
    } else if (!have_pid) {
      if (!parse_int(arg, 1, INT32_MAX, &n)) {
        snprintf(why, size, "'%s' is not a process id", arg);
        return -1;
      }
      o->pid = (pid_t)n;
      have_pid = true;
    } else {
      snprintf(why, size, "unexpected argument '%s' after the pid", arg);
      return -1;
    }
  }
  if (!have_command || !have_pid) {
    snprintf(why, size, "%s (see perpetuo --help)",
             have_command ? "'watch' needs a PID"
                          : "missing command: watch PID");
    return -1;
  }
  if (o->output_path && have_output_fd) {
    snprintf(why, size, "--output and --output-fd cannot be used together");
    return -1;
  }
  return 0;
}
