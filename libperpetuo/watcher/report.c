#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perpetuo.h"
#include "report.h"

void reporter_init(struct reporter *r, bool json, int fd,
                   const struct target *target) {
  r->json = json;
  r->fd = fd;
  r->target = target;
  buf_init(&r->buf);
}

void reporter_free(struct reporter *r) { buf_free(&r->buf); }

void blame_from_slot(const struct perpetuo__slot *slot,
                     const struct target *target, struct blame *out) {
  *out = (struct blame){.hint = "none"};
  switch (slot->thread_hint) {
  case PERPETUO_THREAD_REGISTRAR:
    out->hint = "registrar";
    out->tid = slot->reg_tid;
    out->pthread_id = slot->reg_pthread;
    break;
  case PERPETUO_THREAD_NATIVE:
    out->hint = "native";
    out->tid = (int32_t)slot->thread_id;
    if (out->tid == slot->reg_tid)
      out->pthread_id = slot->reg_pthread;
    break;
  case PERPETUO_THREAD_PTHREAD:
    out->hint = "pthread";
    out->pthread_id = slot->thread_id;
    if (slot->thread_id == slot->reg_pthread)
      out->tid = slot->reg_tid;
    break;
  case PERPETUO_THREAD_GIL_HOLDER: out->hint = "gil_holder"; break;
  }
  if (out->tid > 0 &&
      !target_thread_name(target, out->tid, out->name, sizeof(out->name)) &&
      out->tid == slot->reg_tid)
    memcpy(out->name, slot->reg_thread_name, sizeof(slot->reg_thread_name));
}

static void format_wall(char *out, size_t size, int64_t wall_ns) {
  time_t secs = (time_t)(wall_ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, size - n, ".%06ldZ", (long)(wall_ns % 1000000000 / 1000));
}

static const char *event_name(enum detect_event_kind kind) {
  switch (kind) {
  case DETECT_BEGAN: return "stall_began";
  case DETECT_CONTINUES: return "stall_continues";
  case DETECT_ENDED: return "stall_ended";
  }
  return "stall";
}

static const char *end_reason_name(enum detect_end_reason reason) {
  switch (reason) {
  case DETECT_END_PROGRESS: return "progress";
  case DETECT_END_RELEASED: return "tracker_released";
  case DETECT_END_UNWATCHED: return "watcher_stopped";
  }
  return "unknown";
}

static void json_str(struct buf *b, const char *s) {
  buf_json_string(b, s, strlen(s));
}

static void json_cmdline(struct reporter *r) {
  struct buf *b = &r->buf;
  buf_puts(b, "[");
  for (size_t i = 0; r->target && i < r->target->argc; i++) {
    if (i)
      buf_puts(b, ",");
    json_str(b, r->target->argv[i]);
  }
  buf_puts(b, "]");
}

static void json_tail(struct buf *b, const char *event, int64_t monotonic_ns,
                      int64_t wall_ns) {
  char wall[64];
  format_wall(wall, sizeof(wall), wall_ns);
  buf_printf(b,
             ",\"schema\":%d,\"event\":\"%s\",\"timestamp\":\"%s\","
             "\"monotonic_ns\":%" PRId64 "}\n",
             REPORT_SCHEMA_VERSION, event, wall, monotonic_ns);
}

static void json_event(struct reporter *r, const struct detect_event *e,
                       const struct perpetuo__slot *slot,
                       const struct blame *blame, int64_t monotonic_ns,
                       int64_t wall_ns) {
  struct buf *b = &r->buf;
  const char *severity = e->kind == DETECT_ENDED ? "INFO" : "WARNING";
  const char *message = e->kind == DETECT_BEGAN       ? "Stall detected"
                        : e->kind == DETECT_CONTINUES ? "Stall still going"
                                                      : "Stall ended";
  buf_printf(b, "{\"severity\":\"%s\",\"message\":\"%s\",", severity, message);
  buf_puts(b, "\"additional_info\":{\"name\":");
  json_str(b, slot->name);
  buf_printf(b, ",\"pid\":\"%d\"},", (int)r->target->pid);
  buf_printf(b, "\"stall_details\":{\"length_ms\":%.3f,", e->length_ns / 1e6);
  buf_puts(b, "\"relevant_traces\":[],\"other_traces\":[],\"cmdline\":");
  json_cmdline(r);
  /* Stacks are taken once per stall, at its start, within the rate limit;
   * the other records of a stall carry none by design. */
  bool rate_limited = e->kind != DETECT_BEGAN || e->rate_limited;
  buf_printf(b, ",\"rate_limited\":%s", rate_limited ? "true" : "false");
  buf_printf(b, ",\"stall_id\":%" PRIu64 ",\"threshold_ms\":%.3f", e->stall_id,
             e->threshold_ns / 1e6);
  buf_printf(b, ",\"tracker_slot\":%" PRIu32, e->slot);
  buf_printf(b, ",\"thread\":{\"hint\":\"%s\",\"tid\":", blame->hint);
  if (blame->tid > 0)
    buf_printf(b, "%" PRId32, blame->tid);
  else
    buf_puts(b, "null");
  buf_puts(b, ",\"pthread_id\":");
  if (blame->pthread_id)
    buf_printf(b, "%" PRIu64, blame->pthread_id);
  else
    buf_puts(b, "null");
  buf_puts(b, ",\"name\":");
  if (blame->name[0])
    json_str(b, blame->name);
  else
    buf_puts(b, "null");
  buf_puts(b, "}");
  if (e->kind == DETECT_ENDED)
    buf_printf(b, ",\"total_ms\":%.3f,\"end_reason\":\"%s\"",
               e->length_ns / 1e6, end_reason_name(e->end_reason));
  buf_puts(b, "}");
  json_tail(b, event_name(e->kind), monotonic_ns, wall_ns);
}

static void text_quoted(struct buf *b, const char *s) {
  buf_puts(b, "\"");
  buf_text_escaped(b, s, strlen(s));
  buf_puts(b, "\"");
}

static void text_event(struct reporter *r, const struct detect_event *e,
                       const struct perpetuo__slot *slot,
                       const struct blame *blame) {
  struct buf *b = &r->buf;
  buf_printf(b, "perpetuo: stall %" PRIu64 " in ", e->stall_id);
  text_quoted(b, slot->name);
  buf_printf(b, " (pid %d", (int)r->target->pid);
  if (blame->tid > 0)
    buf_printf(b, ", thread %" PRId32, blame->tid);
  else if (strcmp(blame->hint, "gil_holder") == 0)
    buf_puts(b, ", the GIL holder");
  if (blame->name[0]) {
    buf_puts(b, " ");
    text_quoted(b, blame->name);
  }
  buf_puts(b, ")");
  double secs = e->length_ns / 1e9;
  switch (e->kind) {
  case DETECT_BEGAN:
    buf_printf(b, ": active for %.3f s without a tick (threshold %.3f s)%s\n",
               secs, e->threshold_ns / 1e9,
               e->rate_limited ? "; no traceback: rate limited" : "");
    break;
  case DETECT_CONTINUES:
    buf_printf(b, ": still going after %.3f s\n", secs);
    break;
  case DETECT_ENDED:
    buf_printf(b, ": ended after %.3f s%s\n", secs,
               e->end_reason == DETECT_END_RELEASED
                   ? " (the tracker was released)"
               : e->end_reason == DETECT_END_UNWATCHED
                   ? " or more (the watcher stopped watching)"
                   : "");
    break;
  }
}

void report_format_event(struct reporter *r, const struct detect_event *e,
                         const struct perpetuo__slot *slot,
                         const struct blame *blame, int64_t monotonic_ns,
                         int64_t wall_ns) {
  buf_reset(&r->buf);
  if (r->json)
    json_event(r, e, slot, blame, monotonic_ns, wall_ns);
  else
    text_event(r, e, slot, blame);
}

void report_format_info(struct reporter *r, const char *severity,
                        const char *event, const char *message,
                        int64_t monotonic_ns, int64_t wall_ns) {
  struct buf *b = &r->buf;
  buf_reset(b);
  if (!r->json) {
    buf_puts(b, "perpetuo: ");
    buf_text_escaped(b, message, strlen(message));
    buf_puts(b, "\n");
    return;
  }
  buf_printf(b, "{\"severity\":\"%s\",\"message\":", severity);
  json_str(b, message);
  buf_puts(b, ",\"additional_info\":{");
  if (r->target)
    buf_printf(b, "\"pid\":\"%d\"", (int)r->target->pid);
  buf_puts(b, "}");
  json_tail(b, event, monotonic_ns, wall_ns);
}

int reporter_flush(struct reporter *r) {
  if (r->buf.failed)
    return 0; /* out of memory for this record: drop it, keep watching */
  size_t done = 0;
  while (done < r->buf.len) {
    ssize_t n = write(r->fd, r->buf.data + done, r->buf.len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    done += (size_t)n;
  }
  return 0;
}
