#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maps.h"
#include "target.h"

/* A process with more mappings than this is cut short, not followed. */
#define MAPS_MAX_BYTES (64u << 20)

int maps_parse(struct maps *m, char *text, size_t len) {
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += text[i] == '\n';
  struct mapping *mappings = calloc(lines + 1, sizeof(*mappings));
  if (!mappings) {
    free(text);
    return -ENOMEM;
  }
  size_t count = 0;
  uint64_t hash = 14695981039346656037ull; /* FNV-1a */
  char *line = text;
  while (line < text + len) {
    char *nl = memchr(line, '\n', (size_t)(text + len - line));
    if (nl)
      *nl = '\0';
    struct mapping mp = {0};
    const char *path;
    if (maps_parse_line(line, &mp.start, &mp.end, mp.perms, &path)) {
      /* The offset is the third field: after "start-end perms ". */
      const char *off = strchr(line, ' ');
      off = off ? strchr(off + 1, ' ') : NULL;
      mp.offset = off ? strtoull(off + 1, NULL, 16) : 0;
      mp.path = path;
      if (path[0] == '/')
        for (const char *c = line; *c; c++)
          hash = (hash ^ (unsigned char)*c) * 1099511628211ull;
      /* Kept sorted and disjoint, whatever the file said. */
      if (!count || mp.start >= mappings[count - 1].end)
        mappings[count++] = mp;
    }
    if (!nl)
      break;
    line = nl + 1;
  }
  maps_free(m);
  m->text = text;
  m->text_len = len;
  m->modules_hash = hash;
  m->mappings = mappings;
  m->count = count;
  return 0;
}

int maps_read(struct maps *m, pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t cap = 16384, len = 0;
  char *text = malloc(cap);
  int err = text ? 0 : -ENOMEM;
  while (!err) {
    if (cap - len < 4096) {
      if (cap >= MAPS_MAX_BYTES)
        break;
      char *bigger = realloc(text, cap * 2);
      if (!bigger) {
        err = -ENOMEM;
        break;
      }
      text = bigger;
      cap *= 2;
    }
    ssize_t n = read(fd, text + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      err = -errno;
    else if (n == 0)
      break;
    else
      len += (size_t)n;
  }
  close(fd);
  if (err) {
    free(text);
    return err;
  }
  text[len] = '\0';
  return maps_parse(m, text, len);
}

void maps_free(struct maps *m) {
  free(m->text);
  free(m->mappings);
  *m = (struct maps){0};
}

const struct mapping *maps_find(const struct maps *m, uint64_t addr) {
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (addr < m->mappings[mid].start)
      hi = mid;
    else if (addr >= m->mappings[mid].end)
      lo = mid + 1;
    else
      return &m->mappings[mid];
  }
  return NULL;
}
