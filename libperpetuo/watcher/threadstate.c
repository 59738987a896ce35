#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "threadstate.h"

/* Reads a small /proc file whole; returns its length or -1. */
static ssize_t read_small(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t len;
  do
    len = read(fd, out, size - 1);
  while (len < 0 && errno == EINTR);
  close(fd);
  if (len < 0)
    return -1;
  out[len] = '\0';
  return len;
}

static ssize_t read_task_file(pid_t pid, pid_t tid, const char *name, char *out,
                              size_t size) {
  char path[96];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
  return read_small(path, out, size);
}

char parse_stat_state(const char *stat, size_t len) {
  /* The command name may itself contain ") ", so the last one counts. */
  const char *close = NULL;
  for (size_t i = 0; i < len; i++)
    if (stat[i] == ')')
      close = stat + i;
  if (!close || (size_t)(close - stat) + 2 >= len || close[1] != ' ')
    return 0;
  char c = close[2];
  return isalpha((unsigned char)c) ? c : 0;
}

enum syscall_status parse_syscall_line(const char *line, long *nr) {
  *nr = -1;
  if (strncmp(line, "running", 7) == 0)
    return SYSCALL_RUNNING;
  char *end;
  errno = 0;
  long v = strtol(line, &end, 10);
  if (errno || end == line || (*end != ' ' && *end != '\n' && *end))
    return SYSCALL_UNKNOWN;
  if (v < 0)
    return SYSCALL_NONE;
  *nr = v;
  return SYSCALL_IN;
}

static int64_t status_field(const char *status, const char *key) {
  size_t klen = strlen(key);
  for (const char *p = status; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
    if (strncmp(p, key, klen) == 0) {
      char *end;
      errno = 0;
      long long v = strtoll(p + klen, &end, 10);
      if (errno || end == p + klen || v < 0)
        return -1;
      return v;
    }
  return -1;
}

void parse_status_switches(const char *status, int64_t *voluntary,
                           int64_t *involuntary) {
  *voluntary = status_field(status, "voluntary_ctxt_switches:");
  *involuntary = status_field(status, "nonvoluntary_ctxt_switches:");
}

bool thread_cpu_ns(pid_t pid, pid_t tid, uint64_t *cpu_ns) {
  char text[128];
  if (read_task_file(pid, tid, "schedstat", text, sizeof(text)) <= 0)
    return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text)
    return false;
  *cpu_ns = v;
  return true;
}

bool thread_state_read(pid_t pid, pid_t tid, struct thread_state *out) {
  *out = (struct thread_state){
      .voluntary = -1, .involuntary = -1, .restarted_nr = -1};
  char text[2048];
  ssize_t len = read_task_file(pid, tid, "stat", text, sizeof(text));
  if (len <= 0)
    return false;
  out->state = parse_stat_state(text, (size_t)len);
  if (!out->state)
    return false;
  out->valid = true;
  if (read_task_file(pid, tid, "syscall", text, sizeof(text)) > 0)
    out->syscall_status = parse_syscall_line(text, &out->syscall_nr);
  out->cpu_known = thread_cpu_ns(pid, tid, &out->cpu_ns);
  if (read_task_file(pid, tid, "status", text, sizeof(text)) > 0)
    parse_status_switches(text, &out->voluntary, &out->involuntary);
  if (out->state != 'R' &&
      read_task_file(pid, tid, "wchan", text, sizeof(text)) > 0 &&
      strcmp(text, "0") != 0) {
    size_t n = 0;
    /* A kernel symbol name: keep it to plain identifier characters. */
    while (n + 1 < sizeof(out->wchan) && (isalnum((unsigned char)text[n]) ||
                                          text[n] == '_' || text[n] == '.'))
      n++;
    memcpy(out->wchan, text, n);
    out->wchan[n] = '\0';
  }
  return true;
}

struct syscall_entry {
  long nr;
  const char *name;
};

static const struct syscall_entry syscall_table[] = {
#define SYSCALL_NAME(n) {SYS_##n, #n},
#include "syscall_names.h"
#undef SYSCALL_NAME
};

bool syscall_is_restart(long nr) {
#ifdef SYS_restart_syscall
  return nr == SYS_restart_syscall;
#else
  return false;
#endif
}

const char *syscall_name(long nr) {
  for (size_t i = 0; i < sizeof(syscall_table) / sizeof(syscall_table[0]); i++)
    if (syscall_table[i].nr == nr)
      return syscall_table[i].name;
  return NULL;
}

const char *thread_state_describe(const struct thread_state *s, char *out,
                                  size_t size) {
  if (!s->valid) {
    snprintf(out, size, "unknown (the thread could not be read)");
    return out;
  }
  switch (s->state) {
  case 'R': snprintf(out, size, "on CPU"); return out;
  case 'T': snprintf(out, size, "stopped by a signal"); return out;
  case 't': snprintf(out, size, "stopped by a debugger"); return out;
  case 'Z':
  case 'X': snprintf(out, size, "exiting"); return out;
  }
  const char *how = s->state == 'D' ? " (uninterruptible)" : "";
  if (s->syscall_status == SYSCALL_IN) {
    const char *name = syscall_name(s->syscall_nr);
    const char *resumed =
        s->restarted_nr >= 0 ? syscall_name(s->restarted_nr) : NULL;
    if (resumed)
      snprintf(out, size, "blocked in %s (restarted)%s", resumed, how);
    else if (name)
      snprintf(out, size, "blocked in %s%s", name, how);
    else
      snprintf(out, size, "blocked in system call %ld%s", s->syscall_nr, how);
  } else if (s->syscall_status == SYSCALL_NONE) {
    snprintf(out, size, "blocked, not in a system call%s", how);
  } else if (s->syscall_status == SYSCALL_RUNNING) {
    /* Scheduled out between the two reads: it is running after all. */
    snprintf(out, size, "on CPU");
  } else {
    snprintf(out, size, "blocked%s", how);
  }
  return out;
}

int thread_list(pid_t pid, pid_t *tids, size_t max) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  DIR *dir = opendir(path);
  if (!dir)
    return -errno;
  size_t n = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) && n < max) {
    char *end;
    long tid = strtol(entry->d_name, &end, 10);
    if (*end || tid <= 0 || end == entry->d_name)
      continue;
    tids[n++] = (pid_t)tid;
  }
  closedir(dir);
  return (int)n;
}
