#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pystacks.h"
#include "target.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Limits on what the target can make us allocate or read. */
#define MAX_SLOTS 65536u
#define MAX_CMDLINE 32768
#define MAX_ARGS 256
#define MAX_THRESHOLD_MS 86400000u

static int pidfd_open_compat(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  errno = ENOSYS;
  return -1;
#endif
}

static ssize_t read_remote(pid_t pid, void *dst, uint64_t addr, size_t len) {
  struct iovec local = {.iov_base = dst, .iov_len = len};
  struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

static void permission_sentence(char *why, size_t size, pid_t pid) {
  char scope[16] = "";
  FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "r");
  if (f) {
    if (fgets(scope, sizeof(scope), f))
      scope[strcspn(scope, "\n")] = '\0';
    fclose(f);
  }
  snprintf(why, size,
           "not permitted to read process %d: run perpetuo as the same user "
           "as the target, or give it CAP_SYS_PTRACE%s%s%s",
           (int)pid,
           scope[0] ? ", or lower kernel.yama.ptrace_scope (now " : "", scope,
           scope[0] ? ")" : "");
}

bool maps_parse_line(const char *line, uint64_t *start, uint64_t *end,
                     char perms[5], const char **path) {
  char *p;
  /* strtoull() would also take leading blanks and a sign. */
  if (!isxdigit((unsigned char)line[0]))
    return false;
  errno = 0;
  unsigned long long s = strtoull(line, &p, 16);
  if (errno || *p != '-' || !isxdigit((unsigned char)p[1]))
    return false;
  unsigned long long e = strtoull(p + 1, &p, 16);
  if (errno || *p != ' ' || e <= s)
    return false;
  p++;
  for (int i = 0; i < 4; i++) {
    if (!p[i] || p[i] == ' ')
      return false;
    perms[i] = p[i];
  }
  if (p[4] != ' ')
    return false;
  perms[4] = '\0';
  p += 4;
  /* offset, device, inode, then spaces up to the path (if any). */
  for (int field = 0; field < 3; field++) {
    while (*p == ' ')
      p++;
    if (!*p || *p == '\n')
      return false;
    while (*p && *p != ' ' && *p != '\n')
      p++;
  }
  while (*p == ' ')
    p++;
  *start = s;
  *end = e;
  *path = p;
  return true;
}

const char *header_check(const struct perpetuo__header *h, uint64_t addr) {
  if (memcmp(h->magic, PERPETUO__MAGIC, PERPETUO__MAGIC_LEN) != 0)
    return "no perpetuo magic";
  if (h->self != addr)
    return "the region does not name its own address";
  if (h->version != PERPETUO__FORMAT_VERSION)
    return "unsupported region format version";
  if (h->header_size < sizeof(*h) || h->slot_size != PERPETUO__SLOT_SIZE)
    return "unexpected header or slot size";
  if (h->slot_count == 0 || h->slot_count > MAX_SLOTS ||
      h->high_water > h->slot_count)
    return "implausible slot count";
  if (h->slots_offset < h->header_size || h->slots_offset % 64 != 0 ||
      (uint64_t)h->slots_offset + (uint64_t)h->slot_size * h->slot_count >
          h->region_size)
    return "slots do not fit the region";
  return NULL;
}

/* Looks through /proc/PID/maps for a mapping that starts with a valid header.
 */
static int find_region(pid_t pid, uint64_t *found, char *why, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
  FILE *maps = fopen(path, "re");
  if (!maps) {
    int err = errno;
    if (err == EACCES || err == EPERM)
      permission_sentence(why, size, pid);
    else if (err == ENOENT)
      snprintf(why, size, "there is no process with pid %d", (int)pid);
    else
      snprintf(why, size, "cannot read %s: %s", path, strerror(err));
    return -err;
  }
  char line[4096 + 256];
  int err = -ENOENT;
  while (fgets(line, sizeof(line), maps)) {
    uint64_t start, end;
    char perms[5];
    const char *name;
    if (!maps_parse_line(line, &start, &end, perms, &name))
      continue;
    bool anonymous = name[0] == '\n' || name[0] == '\0' ||
                     strncmp(name, "[anon:perpetuo]", 15) == 0;
    if (!anonymous || perms[0] != 'r' || perms[1] != 'w' ||
        end - start < sizeof(struct perpetuo__header))
      continue;
    struct perpetuo__header h;
    ssize_t r = read_remote(pid, &h, start, sizeof(h));
    if (r < 0 && (errno == EPERM || errno == EACCES)) {
      permission_sentence(why, size, pid);
      err = -EPERM;
      break;
    }
    if (r == (ssize_t)sizeof(h) && !header_check(&h, start)) {
      *found = start;
      err = 0;
      break;
    }
  }
  fclose(maps);
  if (err == -ENOENT)
    snprintf(why, size,
             "process %d has no perpetuo region: it has registered no tracker "
             "yet, or does not use perpetuo",
             (int)pid);
  return err;
}

static void read_cmdline(struct target *t) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)t->pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char *data = malloc(MAX_CMDLINE + 1);
  ssize_t len = data ? read(fd, data, MAX_CMDLINE) : -1;
  close(fd);
  if (len <= 0) {
    free(data);
    return;
  }
  data[len] = '\0';
  t->argv = calloc(MAX_ARGS, sizeof(char *));
  if (!t->argv) {
    free(data);
    return;
  }
  /* argv[0] owns `data`; the others point into it. */
  for (ssize_t i = 0; i < len && t->argc < MAX_ARGS;) {
    t->argv[t->argc++] = data + i;
    i += (ssize_t)strlen(data + i) + 1;
  }
}

int target_open(struct target *t, pid_t pid, uint64_t region, char *why,
                size_t why_size) {
  memset(t, 0, sizeof(*t));
  t->pid = pid;
  t->pidfd = -1;
  t->stat_fd = -1;
  t->pidfd = pidfd_open_compat(pid);
  if (t->pidfd < 0 && errno == ESRCH) {
    snprintf(why, why_size, "there is no process with pid %d", (int)pid);
    return -ESRCH;
  }
  int err;
  if (region) {
    struct perpetuo__header h;
    ssize_t r = read_remote(pid, &h, region, sizeof(h));
    if (r < 0 && (errno == EPERM || errno == EACCES)) {
      permission_sentence(why, why_size, pid);
      err = -EPERM;
      goto fail;
    }
    const char *bad = r == (ssize_t)sizeof(h) ? header_check(&h, region)
                                              : "it cannot be read";
    if (bad) {
      snprintf(why, why_size,
               "process %d has no valid perpetuo region at 0x%" PRIx64 ": %s",
               (int)pid, region, bad);
      err = -EPROTO;
      goto fail;
    }
  } else if ((err = find_region(pid, &region, why, why_size)) < 0) {
    goto fail;
  }
  t->region = region;
  if (read_remote(pid, &t->header, region, sizeof(t->header)) !=
      (ssize_t)sizeof(t->header)) {
    snprintf(why, why_size, "process %d went away while attaching", (int)pid);
    err = -ESRCH;
    goto fail;
  }
  uint32_t count = t->header.slot_count;
  size_t max_iov = 2 + 3 * (size_t)count;
  t->slots = calloc(count, sizeof(*t->slots));
  t->remote = calloc(max_iov, sizeof(*t->remote));
  t->buffer =
      malloc(sizeof(struct perpetuo__header) +
             (size_t)count * (PERPETUO__SLOT_SIZE + 3 * sizeof(uint64_t)));
  t->extras = calloc(3 * (size_t)count, sizeof(*t->extras));
  if (!t->slots || !t->remote || !t->buffer || !t->extras) {
    snprintf(why, why_size, "out of memory");
    err = -ENOMEM;
    goto fail;
  }
  t->slots_read = t->header.high_water;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  t->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
  read_cmdline(t);
  return 0;
fail:
  target_close(t);
  return err;
}

void target_close(struct target *t) {
  if (t->pidfd >= 0)
    close(t->pidfd);
  if (t->stat_fd >= 0)
    close(t->stat_fd);
  if (t->argv)
    free(t->argv[0]);
  free(t->argv);
  free(t->slots);
  free(t->remote);
  free(t->buffer);
  free(t->extras);
  memset(t, 0, sizeof(*t));
  t->pidfd = t->stat_fd = -1;
}

static uint64_t slot_address(const struct target *t, uint32_t index) {
  return t->region + t->header.slots_offset +
         (uint64_t)index * t->header.slot_size;
}

static bool via_holder(const struct perpetuo__slot *s) {
  return (s->aux[1] >> 32) & PERPETUO__CONTENTION_VIA_HOLDER;
}

static bool contention_ok(const struct perpetuo__slot *s) {
  if ((uint32_t)s->aux[1] == 0 || s->aux[0] % 4 != 0 ||
      (s->aux[1] >> 32) & ~(uint64_t)PERPETUO__CONTENTION_VIA_HOLDER)
    return false;
  if (via_holder(s))
    return s->aux[2] && s->aux[2] % 8 == 0 && s->aux[0] <= 65536;
  return s->aux[0] != 0;
}

/* Where a contention slot's request word is this poll: 0 if unknown. */
static uint64_t request_address(const struct slot_info *info) {
  if (!via_holder(&info->slot))
    return info->slot.aux[0];
  return info->holder_seen ? info->holder_seen + info->slot.aux[0] : 0;
}

/* A contention slot's words, read now (when it was just registered). */
static void read_contention_now(struct target *t, struct slot_info *info) {
  info->external_readable =
      read_remote(t->pid, &info->counter_word, info->slot.counter_addr, 8) == 8;
  if (via_holder(&info->slot) &&
      read_remote(t->pid, &info->holder_seen, info->slot.aux[2], 8) != 8)
    info->holder_seen = 0;
  info->holder = info->holder_seen;
  uint64_t at = request_address(info);
  info->request_read = at && read_remote(t->pid, &info->request, at, 4) == 4;
}

/*
 * A contention slot's counter for the detector: odd while a thread waits,
 * and moving at every handover. A request read at a holder that changed
 * since is stale: a handover happened, which the count shows anyway.
 */
static uint64_t contention_counter(struct slot_info *info) {
  bool waiting =
      info->request_read && (info->request & (uint32_t)info->slot.aux[1]) &&
      (!via_holder(&info->slot) || info->holder == info->holder_seen);
  info->holder_seen = info->holder;
  return info->counter_word * 2 + (waiting ? 1 : 0);
}

/*
 * Takes a slot's metadata after its generation moved, from the copy this
 * poll made. A slot being released and claimed again while the copy was
 * made could mix two generations, so the copy counts only if the slot still
 * has that generation right after it (the generation only ever grows).
 */
static void refresh_slot(struct target *t, uint32_t index, const char *copy) {
  struct slot_info *info = &t->slots[index];
  struct perpetuo__slot s;
  memcpy(&s, copy, sizeof(s));
  struct perpetuo__slot hot;
  info->live = false;
  if (read_remote(t->pid, &hot, slot_address(t, index),
                  PERPETUO__SLOT_HOT_SIZE) != PERPETUO__SLOT_HOT_SIZE)
    return;
  if (hot.state != PERPETUO__SLOT_LIVE || hot.generation != s.generation)
    return;
  if (s.kind == PERPETUO__KIND_INLINE)
    s.counter_addr = slot_address(t, index);
  else if ((s.kind != PERPETUO__KIND_EXTERNAL &&
            s.kind != PERPETUO__KIND_CONTENTION) ||
           s.counter_addr == 0 || s.counter_addr % sizeof(uint64_t) != 0 ||
           (s.kind == PERPETUO__KIND_CONTENTION && !contention_ok(&s)))
    return;
  if (s.threshold_ms > MAX_THRESHOLD_MS)
    s.threshold_ms = MAX_THRESHOLD_MS;
  s.name[sizeof(s.name) - 1] = '\0';
  s.reg_thread_name[sizeof(s.reg_thread_name) - 1] = '\0';
  info->slot = s;
  info->live = true;
  info->external_readable = true;
  info->holder_seen = 0;
}

/* A word past the slots that could not be read: its tracker is unreadable
 * this poll, or for a request word, says nobody is known to wait. */
static void extra_unreadable(struct target *t, const struct poll_extra *x) {
  struct slot_info *info = &t->slots[x->slot];
  if (x->word == WORD_REQUEST)
    info->request_read = false;
  else
    info->external_readable = false;
}

/*
 * Reads this poll's remote iovecs into t->buffer, in as few
 * process_vm_readv calls as IOV_MAX allows. A remote iovec that cannot be
 * read is skipped when it is past the slots (extra_unreadable()); anywhere
 * else it means the region is gone.
 */
static int read_iovecs(struct target *t, size_t n, size_t first_external) {
  size_t i = 0;
  size_t offset = 0;
  while (i < n) {
    size_t batch = n - i < IOV_MAX ? n - i : IOV_MAX;
    size_t bytes = 0;
    for (size_t k = i; k < i + batch; k++)
      bytes += t->remote[k].iov_len;
    struct iovec local = {.iov_base = t->buffer + offset, .iov_len = bytes};
    ssize_t r = process_vm_readv(t->pid, &local, 1, &t->remote[i], batch, 0);
    if (r < 0 && errno == ESRCH)
      return -ESRCH;
    size_t got = r > 0 ? (size_t)r : 0;
    /* Advance over the complete iovecs. */
    while (i < n && got >= t->remote[i].iov_len) {
      got -= t->remote[i].iov_len;
      offset += t->remote[i].iov_len;
      i++;
      if (--batch == 0)
        break;
    }
    if (batch > 0 && i < n) {
      if (i < first_external)
        return r < 0 && errno != EFAULT ? -errno : -EFAULT;
      extra_unreadable(t, &t->extras[i - first_external]);
      offset += t->remote[i].iov_len;
      i++;
    }
  }
  return 0;
}

/*
 * The iovecs of one poll: the header, then every used slot as one run (one
 * iovec costs the kernel a page walk and pin of its own, so a run of slots
 * is far cheaper than a small iovec per slot), then the external counters.
 */
static size_t plan_poll(struct target *t, uint32_t count,
                        size_t *first_external) {
  size_t iov = 0;
  t->remote[iov++] = (struct iovec){(void *)(uintptr_t)t->region,
                                    sizeof(struct perpetuo__header)};
  if (count)
    t->remote[iov++] = (struct iovec){(void *)(uintptr_t)slot_address(t, 0),
                                      (size_t)count * PERPETUO__SLOT_SIZE};
  *first_external = iov;
  size_t extras = 0;
  for (uint32_t i = 0; i < count; i++) {
    struct slot_info *info = &t->slots[i];
    if (!info->live || info->slot.kind == PERPETUO__KIND_INLINE)
      continue;
    info->external_readable = true;
    t->extras[extras++] = (struct poll_extra){i, WORD_COUNTER};
    t->remote[iov++] = (struct iovec){
        (void *)(uintptr_t)info->slot.counter_addr, sizeof(uint64_t)};
    if (info->slot.kind != PERPETUO__KIND_CONTENTION)
      continue;
    if (via_holder(&info->slot)) {
      t->extras[extras++] = (struct poll_extra){i, WORD_HOLDER};
      t->remote[iov++] = (struct iovec){(void *)(uintptr_t)info->slot.aux[2],
                                        sizeof(uint64_t)};
    }
    /* Via the holder, the word of the holder the last poll saw: one system
     * call per poll, and a holder that changed meanwhile means a handover,
     * which the count shows. */
    uint64_t at = request_address(info);
    info->request_read = at != 0;
    if (at) {
      t->extras[extras++] = (struct poll_extra){i, WORD_REQUEST};
      /* A full word, so the buffer's words stay aligned. */
      t->remote[iov++] =
          (struct iovec){(void *)(uintptr_t)at, sizeof(uint32_t)};
    }
  }
  return iov;
}

/* Copies the words read past the slots to their slots. */
static void take_extras(struct target *t, size_t n, const char *from) {
  for (size_t k = 0; k < n; k++) {
    const struct poll_extra *x = &t->extras[k];
    struct slot_info *info = &t->slots[x->slot];
    uint64_t word = 0;
    size_t len = x->word == WORD_REQUEST ? sizeof(uint32_t) : sizeof(word);
    memcpy(&word, from, len);
    from += len;
    switch (x->word) {
    case WORD_COUNTER: info->counter_word = word; break;
    case WORD_HOLDER: info->holder = word; break;
    case WORD_REQUEST: info->request = (uint32_t)word; break;
    }
  }
}

int target_poll(struct target *t, struct detect_sample *samples, size_t *n) {
  const struct perpetuo__header *h = (const struct perpetuo__header *)t->buffer;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint32_t count = t->slots_read;
    size_t first_external;
    size_t iov = plan_poll(t, count, &first_external);
    int err = read_iovecs(t, iov, first_external);
    if (err)
      return err;
    if (header_check(h, t->region) || h->slot_count != t->header.slot_count ||
        h->slots_offset != t->header.slots_offset)
      return -EPROTO;
    if (h->high_water > count && attempt == 0) {
      /* Trackers were added beyond what we read: read them all again now. */
      t->slots_read = h->high_water;
      continue;
    }
    const char *slots = t->buffer + sizeof(*h);
    take_extras(t, iov - first_external,
                slots + (size_t)count * PERPETUO__SLOT_SIZE);
    for (uint32_t i = 0; i < count; i++) {
      /* Only the hot part is needed unless the generation moved. */
      const char *copy = slots + (size_t)i * PERPETUO__SLOT_SIZE;
      struct perpetuo__slot s;
      memcpy(&s, copy, PERPETUO__SLOT_HOT_SIZE);
      struct slot_info *info = &t->slots[i];
      if (s.state != PERPETUO__SLOT_LIVE) {
        info->live = false;
      } else if (!info->live || info->slot.generation != s.generation) {
        refresh_slot(t, i, copy);
        if (info->live && info->slot.kind == PERPETUO__KIND_EXTERNAL)
          info->external_readable =
              read_remote(t->pid, &info->counter_word, info->slot.counter_addr,
                          sizeof(info->counter_word)) ==
              sizeof(info->counter_word);
        else if (info->live && info->slot.kind == PERPETUO__KIND_CONTENTION)
          read_contention_now(t, info);
      }
      struct detect_sample *sample = &samples[i];
      uint32_t kind = info->live ? info->slot.kind : 0;
      sample->live = info->live &&
                     !(info->slot.flags & PERPETUO__SLOT_ORPHANED) &&
                     (kind == PERPETUO__KIND_INLINE || info->external_readable);
      sample->generation = s.generation;
      sample->counter = kind == PERPETUO__KIND_EXTERNAL ? info->counter_word
                        : kind == PERPETUO__KIND_CONTENTION
                            ? contention_counter(info)
                            : s.counter;
      sample->threshold_ns = (int64_t)info->slot.threshold_ms * 1000000;
    }
    *n = count;
    return 0;
  }
  return -EPROTO;
}

bool target_read_counter(struct target *t, uint32_t slot, uint64_t *value) {
  if (slot >= t->header.slot_count || !t->slots[slot].live)
    return false;
  if (read_remote(t->pid, value, t->slots[slot].slot.counter_addr,
                  sizeof(*value)) != (ssize_t)sizeof(*value))
    return false;
  /* A contention slot's counter as the detector sees it, still waiting:
   * it moved only if a handover happened. */
  if (t->slots[slot].slot.kind == PERPETUO__KIND_CONTENTION)
    *value = *value * 2 + 1;
  return true;
}

size_t target_read_detail(struct target *t, uint32_t slot, char *out,
                          size_t size) {
  if (slot >= t->header.slot_count || !t->slots[slot].live)
    return 0;
  uint64_t words[2];
  if (read_remote(t->pid, words,
                  slot_address(t, slot) +
                      offsetof(struct perpetuo__slot, detail_text),
                  sizeof(words)) != (ssize_t)sizeof(words))
    return 0;
  uint64_t text = words[0], length = words[1];
  if (!text || !length)
    return 0;
  size_t n = length < size ? (size_t)length : size;
  ssize_t got = read_remote(t->pid, out, text, n);
  return got > 0 ? (size_t)got : 0;
}

int target_read_pylayout(struct target *t, struct perpetuo__pylayout *out) {
  const struct perpetuo__header *h = &t->header;
  if (h->python_size < sizeof(*out) || h->python_offset < h->header_size ||
      (uint64_t)h->python_offset + sizeof(*out) > h->slots_offset)
    return 0;
  if (read_remote(t->pid, out, t->region + h->python_offset, sizeof(*out)) !=
      (ssize_t)sizeof(*out))
    return 0;
  if (out->ready == 0)
    return 0; /* no Python extension, or it is being rewritten */
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return pylayout_check(out) ? -1 : 1;
}

char target_state(struct target *t) {
  char buf[512];
  if (t->stat_fd < 0)
    return 0;
  ssize_t len = pread(t->stat_fd, buf, sizeof(buf) - 1, 0);
  if (len <= 0)
    return 0;
  buf[len] = '\0';
  /* The command name may hold ')' itself: the state follows the last one. */
  char *close_paren = strrchr(buf, ')');
  if (!close_paren || close_paren[1] != ' ' || !close_paren[2])
    return 0;
  return close_paren[2];
}

bool target_is_stopped(struct target *t) {
  char state = target_state(t);
  return state == 'T' || state == 't';
}

bool target_thread_name(const struct target *t, int32_t tid, char *name,
                        size_t size) {
  char path[64];
  if (tid <= 0 || size == 0)
    return false;
  snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)t->pid, (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t len = read(fd, name, size - 1);
  close(fd);
  if (len <= 0)
    return false;
  name[len] = '\0';
  name[strcspn(name, "\n")] = '\0';
  return true;
}
