/*
 * A thread of the target as /proc tells it, read without stopping it: its
 * scheduler state, the system call it is blocked in, its CPU time and context
 * switches. This is what says whether a stall is a hot loop ("on CPU") or a
 * blocking call ("blocked in read"). The parsers are pure, for unit tests.
 */
#ifndef PERPETUO_WATCHER_THREADSTATE_H
#define PERPETUO_WATCHER_THREADSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* /proc/PID/task/TID/syscall: what the thread is doing in the kernel. */
enum syscall_status {
  SYSCALL_UNKNOWN, /* unreadable (no permission, or an old kernel) */
  SYSCALL_RUNNING, /* "running": on a CPU (or runnable), not blocked */
  SYSCALL_NONE,    /* "-1 ...": blocked, but not in a system call */
  SYSCALL_IN       /* blocked in system call `nr` */
};

struct thread_state {
  bool valid; /* false: the thread was gone or unreadable */
  char state; /* R S D T t Z X I ... */
  enum syscall_status syscall_status;
  long syscall_nr;
  long restarted_nr; /* in restart_syscall: the call it resumes, or -1 */
  uint64_t cpu_ns;   /* time on CPU, from schedstat (0 if unknown) */
  bool cpu_known;
  int64_t voluntary; /* context switches; -1 if unknown */
  int64_t involuntary;
  char wchan[64]; /* kernel function it waits in, when blocked; or "" */
};

/* Reads the thread's state now. Returns false if the thread is gone. */
bool thread_state_read(pid_t pid, pid_t tid, struct thread_state *out);

/* Reads only the thread's CPU time (one small file); false if unknown. */
bool thread_cpu_ns(pid_t pid, pid_t tid, uint64_t *cpu_ns);

/* The state letter of a /proc/.../stat line: after the last ')'. */
char parse_stat_state(const char *stat, size_t len);

/* Parses the first field of a /proc/.../syscall line. */
enum syscall_status parse_syscall_line(const char *line, long *nr);

/* Parses "voluntary_ctxt_switches:" and its sibling out of a status file. */
void parse_status_switches(const char *status, int64_t *voluntary,
                           int64_t *involuntary);

/*
 * Whether `nr` is restart_syscall, which a sleep interrupted by a stop (ours,
 * when we take stacks) resumes in.
 */
bool syscall_is_restart(long nr);

/* The system call's name for this architecture, or NULL if unknown. */
const char *syscall_name(long nr);

/*
 * What kind of stall this is, in a few words: "on CPU", "blocked in read",
 * "blocked in futex (uninterruptible)", "waiting, not in a system call",
 * "stopped", ... Writes into out; returns out.
 */
const char *thread_state_describe(const struct thread_state *s, char *out,
                                  size_t size);

/*
 * The thread ids of `pid`, from /proc/PID/task: at most `max` into tids.
 * Returns how many, or a negative errno.
 */
int thread_list(pid_t pid, pid_t *tids, size_t max);

#endif
