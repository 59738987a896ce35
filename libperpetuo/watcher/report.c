#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
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
  r->waiting = NULL;
  buf_init(&r->buf);
}

void reporter_free(struct reporter *r) { buf_free(&r->buf); }

int32_t slot_blamed_tid(const struct perpetuo__slot *slot) {
  switch (slot->thread_hint) {
  case PERPETUO_THREAD_REGISTRAR: return slot->reg_tid;
  case PERPETUO_THREAD_NATIVE:
    return slot->thread_id <= INT32_MAX ? (int32_t)slot->thread_id : 0;
  case PERPETUO_THREAD_PTHREAD:
    return slot->thread_id == slot->reg_pthread ? slot->reg_tid : 0;
  }
  return 0;
}

void blame_from_slot(const struct perpetuo__slot *slot,
                     const struct target *target, struct blame *out) {
  *out = (struct blame){.hint = "none", .tid = slot_blamed_tid(slot)};
  switch (slot->thread_hint) {
  case PERPETUO_THREAD_REGISTRAR:
    out->hint = "registrar";
    out->pthread_id = slot->reg_pthread;
    break;
  case PERPETUO_THREAD_NATIVE:
    out->hint = "native";
    if (out->tid == slot->reg_tid)
      out->pthread_id = slot->reg_pthread;
    break;
  case PERPETUO_THREAD_PTHREAD:
    out->hint = "pthread";
    out->pthread_id = slot->thread_id;
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

static void json_str_or_null(struct buf *b, const char *s) {
  if (s && s[0])
    json_str(b, s);
  else
    buf_puts(b, "null");
}

static void json_frame(struct buf *b, const struct native_frame *f) {
  buf_puts(b, "{\"name\":");
  json_str(b, f->function ? f->function : "??");
  buf_puts(b, ",\"filename\":");
  json_str(b, f->file ? f->file : f->module ? f->module : "??");
  buf_puts(b, ",\"line\":");
  if (f->line > 0)
    buf_printf(b, "%d", f->line);
  else
    buf_puts(b, "null");
  buf_printf(b, ",\"locals\":null,\"native\":true,\"ip\":\"0x%" PRIx64 "\"",
             f->ip);
  buf_puts(b, ",\"function\":");
  json_str_or_null(b, f->function);
  if (f->function && !f->inlined)
    buf_printf(b, ",\"offset\":%" PRIu64, f->offset);
  else
    buf_puts(b, ",\"offset\":null");
  buf_puts(b, ",\"module\":");
  json_str_or_null(b, f->module);
  buf_printf(b, ",\"module_offset\":\"0x%" PRIx64 "\",\"inlined\":%s}",
             f->module_offset, f->inlined ? "true" : "false");
}

static void json_int_or_null(struct buf *b, int64_t v, bool known) {
  if (known)
    buf_printf(b, "%" PRId64, v);
  else
    buf_puts(b, "null");
}

static void json_py_frame(struct buf *b, const struct py_frame *f) {
  buf_puts(b, "{\"name\":");
  json_str(b, f->code->name ? f->code->name : "??");
  buf_puts(b, ",\"filename\":");
  json_str(b, f->code->filename ? f->code->filename : "??");
  buf_puts(b, ",\"line\":");
  json_int_or_null(b, f->line, f->line >= 0);
  buf_puts(b, ",\"locals\":");
  if (f->locals) {
    buf_puts(b, "[");
    for (uint32_t i = 0; i < f->local_count; i++) {
      buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
      json_str(b, f->locals[i].name);
      buf_puts(b, ",\"value\":");
      json_str(b, f->locals[i].value);
      buf_puts(b, "}");
    }
    buf_puts(b, "]");
  } else {
    buf_puts(b, "null");
  }
  buf_puts(b, ",\"native\":false");
  if (f->code->qualname) {
    buf_puts(b, ",\"qualname\":");
    json_str(b, f->code->qualname);
  }
  buf_puts(b, "}");
}

/* The coroutine the relevant thread's event loop runs as the task that
 * stalls: the outermost `async def` frame of the innermost unbroken chain
 * of coroutine and async generator frames (the awaits of one task; a loop
 * run from inside another task's coroutine starts a chain of its own). */
static const struct py_frame *task_coroutine(const struct capture *cap) {
  for (size_t i = 0; cap && i < cap->count; i++) {
    const struct thread_capture *tc = &cap->threads[i];
    if (!tc->relevant || !tc->py)
      continue;
    const struct py_frame *frames = tc->py->frames, *found = NULL;
    size_t j = tc->py->count;
    while (j > 0 && !frames[j - 1].code->coroutine &&
           !frames[j - 1].code->other_async)
      j--;
    for (; j > 0 &&
           (frames[j - 1].code->coroutine || frames[j - 1].code->other_async);
         j--)
      if (frames[j - 1].code->coroutine)
        found = &frames[j - 1];
    return found;
  }
  return NULL;
}

static void json_coroutine(struct buf *b, const struct capture *cap) {
  const struct py_frame *f = task_coroutine(cap);
  buf_puts(b, ",\"coroutine\":");
  if (!f) {
    buf_puts(b, "null");
    return;
  }
  buf_puts(b, "{\"name\":");
  json_str(b, f->code->name ? f->code->name : "??");
  buf_puts(b, ",\"qualname\":");
  json_str_or_null(b, f->code->qualname);
  buf_puts(b, ",\"filename\":");
  json_str(b, f->code->filename ? f->code->filename : "??");
  buf_puts(b, ",\"line\":");
  json_int_or_null(b, f->line, f->line >= 0);
  buf_puts(b, "}");
}

/* A Python thread's frames, then the native ones its innermost Python
 * frame called into; or a native stack alone. */
static void json_trace(struct buf *b, const struct thread_capture *tc) {
  buf_puts(b, "[");
  bool first = true;
  size_t native_from = 0;
  if (tc->py) {
    for (size_t i = 0; i < tc->py->count; i++, first = false) {
      if (!first)
        buf_puts(b, ",");
      json_py_frame(b, &tc->py->frames[i]);
    }
    native_from = tc->native_tail;
  }
  for (size_t i = native_from; i < tc->frame_count; i++, first = false) {
    if (!first)
      buf_puts(b, ",");
    json_frame(b, &tc->frames[i]);
  }
  buf_puts(b, "]");
}

static void json_traces(struct buf *b, const struct capture *cap,
                        bool relevant) {
  buf_puts(b, "[");
  bool first = true;
  for (size_t i = 0; cap && i < cap->count; i++) {
    if (cap->threads[i].relevant != relevant)
      continue;
    if (!first)
      buf_puts(b, ",");
    first = false;
    json_trace(b, &cap->threads[i]);
  }
  buf_puts(b, "]");
}

/* The thread's state fields, inside an object already open. */
static void json_thread_state(struct buf *b, const struct thread_state *st) {
  char kind[96];
  buf_printf(b, ",\"state\":\"%c\",\"kind\":", st->state ? st->state : '?');
  json_str(b, thread_state_describe(st, kind, sizeof(kind)));
  buf_puts(b, ",\"syscall\":");
  const char *name =
      st->syscall_status == SYSCALL_IN ? syscall_name(st->syscall_nr) : NULL;
  if (name)
    json_str(b, name);
  else if (st->syscall_status == SYSCALL_IN)
    buf_printf(b, "\"%ld\"", st->syscall_nr);
  else
    buf_puts(b, "null");
  buf_puts(b, ",\"wchan\":");
  json_str_or_null(b, st->wchan);
  buf_puts(b, ",\"voluntary_ctxt_switches\":");
  json_int_or_null(b, st->voluntary, st->voluntary >= 0);
  buf_puts(b, ",\"nonvoluntary_ctxt_switches\":");
  json_int_or_null(b, st->involuntary, st->involuntary >= 0);
}

/* What the thread is to Python, inside its object in capture.threads. */
static void json_py_thread(struct buf *b, const struct thread_capture *tc) {
  const struct py_thread *pt = tc->py;
  buf_printf(b, ",\"python\":{\"thread_id\":%" PRIu64 ",\"native_id\":",
             pt->thread_id);
  json_int_or_null(b, pt->native_id, pt->native_id > 0);
  buf_printf(
      b,
      ",\"main\":%s,\"gil_holder\":%s,\"frames\":%zu,"
      "\"native_frames_after\":%zu,\"error\":",
      pt->main ? "true" : "false", pt->gil_holder ? "true" : "false", pt->count,
      tc->frame_count > tc->native_tail ? tc->frame_count - tc->native_tail
                                        : 0);
  json_str_or_null(b, pt->error);
  buf_puts(b, "}");
}

static void json_capture(struct buf *b, const struct capture *cap,
                         bool ended_during_capture) {
  buf_printf(b,
             ",\"capture\":{\"pause_us\":%.1f,\"stop_us\":%.1f,"
             "\"total_us\":%.1f,\"threads_stopped\":%zu,"
             "\"relevant_found\":%s,\"ended_during_capture\":%s,\"error\":",
             cap->freeze.pause_ns / 1e3, cap->freeze.stop_ns / 1e3,
             cap->total_ns / 1e3, cap->freeze.stopped,
             cap->relevant_found ? "true" : "false",
             ended_during_capture ? "true" : "false");
  json_str_or_null(b, cap->error);
  buf_puts(b, ",\"python\":");
  if (cap->python || cap->py.error[0]) {
    buf_printf(b, "{\"threads\":%zu,\"reads\":%zu,\"error\":", cap->py.count,
               cap->py.reads);
    json_str_or_null(b, cap->py.error);
    buf_puts(b, "}");
  } else {
    buf_puts(b, "null");
  }
  buf_puts(b, ",\"threads\":[");
  /* In the order of relevant_traces, then other_traces. */
  bool first = true;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < cap->count; i++) {
      const struct thread_capture *tc = &cap->threads[i];
      if (tc->relevant != (pass == 0))
        continue;
      if (!first)
        buf_puts(b, ",");
      first = false;
      buf_puts(b, "{\"tid\":");
      json_int_or_null(b, tc->tid, tc->tid > 0);
      buf_puts(b, ",\"name\":");
      json_str_or_null(b, tc->name);
      buf_printf(b, ",\"relevant\":%s,\"frames\":%zu,\"error\":",
                 tc->relevant ? "true" : "false", tc->frame_count);
      json_str_or_null(b, tc->error);
      if (tc->state.valid)
        json_thread_state(b, &tc->state);
      if (tc->py)
        json_py_thread(b, tc);
      buf_puts(b, "}");
    }
  buf_puts(b, "]}");
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
                       const struct blame *blame, const struct stall_extra *x,
                       int64_t monotonic_ns, int64_t wall_ns) {
  struct buf *b = &r->buf;
  const struct capture *cap = x ? x->capture : NULL;
  const char *severity = e->kind == DETECT_ENDED ? "INFO" : "WARNING";
  const char *message = e->kind == DETECT_BEGAN       ? "Stall detected"
                        : e->kind == DETECT_CONTINUES ? "Stall still going"
                                                      : "Stall ended";
  buf_printf(b, "{\"severity\":\"%s\",\"message\":\"%s\",", severity, message);
  buf_puts(b, "\"additional_info\":{\"name\":");
  json_str(b, slot->name);
  buf_printf(b, ",\"pid\":\"%d\"},", (int)r->target->pid);
  buf_printf(b, "\"stall_details\":{\"length_ms\":%.3f,", e->length_ns / 1e6);
  buf_puts(b, "\"relevant_traces\":");
  json_traces(b, cap, true);
  buf_puts(b, ",\"other_traces\":");
  json_traces(b, cap, false);
  buf_puts(b, ",\"cmdline\":");
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
  if (x && x->state_known) {
    json_thread_state(b, &x->state);
    buf_puts(b, ",\"cpu_ms\":");
    if (x->cpu_known)
      buf_printf(b, "%.3f,\"cpu_window_ms\":%.3f", x->cpu_ns / 1e6,
                 x->window_ns / 1e6);
    else
      buf_puts(b, "null,\"cpu_window_ms\":null");
  }
  buf_puts(b, "}");
  if (x && x->detail_length) {
    buf_puts(b, ",\"detail\":");
    buf_json_string(b, x->detail, x->detail_length);
  } else if (e->kind != DETECT_ENDED) {
    buf_puts(b, ",\"detail\":null");
  }
  if (cap) {
    json_coroutine(b, cap);
    json_capture(b, cap, x->ended_during_capture);
  }
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

static void text_frame(struct buf *b, const struct native_frame *f) {
  buf_puts(b, "    File ");
  text_quoted(b, f->file ? f->file : "??");
  if (f->line > 0)
    buf_printf(b, ", line %d", f->line);
  buf_puts(b, ", in ");
  if (f->function)
    buf_text_escaped(b, f->function, strlen(f->function));
  else
    buf_printf(b, "0x%" PRIx64, f->ip);
  if (f->inlined) {
    buf_puts(b, " (inlined)");
  } else {
    const char *base = f->module ? strrchr(f->module, '/') : NULL;
    base = base ? base + 1 : f->module ? f->module : "?";
    buf_puts(b, " [");
    buf_text_escaped(b, base, strlen(base));
    buf_printf(b, "+0x%" PRIx64 "]", f->module_offset);
  }
  buf_puts(b, "\n");
}

static void text_thread_label(struct buf *b, const struct thread_capture *tc) {
  buf_printf(b, "thread %d", (int)tc->tid);
  if (tc->name[0]) {
    buf_puts(b, " ");
    text_quoted(b, tc->name);
  }
}

static void text_py_frame(struct buf *b, const struct py_frame *f) {
  buf_puts(b, "    File ");
  text_quoted(b, f->code->filename ? f->code->filename : "??");
  if (f->line >= 0)
    buf_printf(b, ", line %d", f->line);
  buf_puts(b, ", in ");
  const char *name = f->code->qualname ? f->code->qualname : f->code->name;
  name = name ? name : "??";
  buf_text_escaped(b, name, strlen(name));
  buf_puts(b, "\n");
  for (uint32_t i = 0; i < f->local_count; i++) {
    buf_puts(b, "        ");
    buf_text_escaped(b, f->locals[i].name, strlen(f->locals[i].name));
    buf_puts(b, " = ");
    buf_text_escaped(b, f->locals[i].value, strlen(f->locals[i].value));
    buf_puts(b, "\n");
  }
}

static void text_note(struct buf *b, const char *why) {
  if (!why[0])
    return;
  buf_puts(b, "    (");
  buf_text_escaped(b, why, strlen(why));
  buf_puts(b, ")\n");
}

static void text_py_thread(struct buf *b, const struct thread_capture *tc) {
  const struct py_thread *pt = tc->py;
  char kind[96];
  buf_printf(b, "  Python stack of thread 0x%" PRIx64, pt->thread_id);
  if (tc->tid > 0) {
    buf_puts(b, " (");
    text_thread_label(b, tc);
    buf_puts(b, ")");
  }
  if (pt->main)
    buf_puts(b, ", the main thread");
  if (pt->gil_holder)
    buf_puts(b, ", holding the GIL");
  if (tc->state.valid)
    buf_printf(b, ", %s",
               thread_state_describe(&tc->state, kind, sizeof(kind)));
  buf_puts(b, " (most recent call last):\n");
  for (size_t i = 0; i < pt->count; i++)
    text_py_frame(b, &pt->frames[i]);
  text_note(b, pt->error);
  for (size_t i = tc->native_tail; i < tc->frame_count; i++)
    text_frame(b, &tc->frames[i]);
  text_note(b, tc->error);
}

static void text_thread(struct buf *b, const struct thread_capture *tc) {
  char kind[96];
  if (tc->py) {
    text_py_thread(b, tc);
    return;
  }
  buf_puts(b, "  Native stack of ");
  text_thread_label(b, tc);
  if (tc->state.valid)
    buf_printf(b, ", %s",
               thread_state_describe(&tc->state, kind, sizeof(kind)));
  buf_puts(b, " (most recent call last):\n");
  for (size_t i = 0; i < tc->frame_count; i++)
    text_frame(b, &tc->frames[i]);
  text_note(b, tc->error);
}

static void text_capture(struct buf *b, const struct capture *cap,
                         bool ended_during_capture) {
  if (cap->error[0]) {
    buf_puts(b, "  ");
    buf_text_escaped(b, cap->error, strlen(cap->error));
    buf_puts(b, "\n");
    return;
  }
  const struct py_frame *co = task_coroutine(cap);
  if (co) {
    const char *name = co->code->qualname ? co->code->qualname : co->code->name;
    buf_puts(b, "  In the task running coroutine ");
    text_quoted(b, name ? name : "??");
    buf_puts(b, "\n");
  }
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < cap->count; i++)
      if (cap->threads[i].relevant == (pass == 0))
        text_thread(b, &cap->threads[i]);
  if (cap->py.error[0]) {
    buf_puts(b, "  ");
    buf_text_escaped(b, cap->py.error, strlen(cap->py.error));
    buf_puts(b, "\n");
  }
  if (!cap->count)
    return;
  buf_printf(b, "  Stacks taken in %.3f ms of pause (%zu thread%s stopped)%s\n",
             cap->freeze.pause_ns / 1e6, cap->freeze.stopped,
             cap->freeze.stopped == 1 ? "" : "s",
             ended_during_capture
                 ? "; the stall ended while they were taken, so they may "
                   "show what ran after it"
                 : "");
}

static void text_state(struct buf *b, const struct stall_extra *x) {
  char kind[96];
  buf_printf(b, "  The thread is %s",
             thread_state_describe(&x->state, kind, sizeof(kind)));
  if (x->cpu_known)
    buf_printf(b, "; %.1f ms on CPU in the last %.1f ms", x->cpu_ns / 1e6,
               x->window_ns / 1e6);
  if (x->state.voluntary >= 0)
    buf_printf(b,
               "; %" PRId64 " voluntary and %" PRId64
               " involuntary context switches so far",
               x->state.voluntary, x->state.involuntary);
  buf_puts(b, "\n");
}

static void text_event(struct reporter *r, const struct detect_event *e,
                       const struct perpetuo__slot *slot,
                       const struct blame *blame, const struct stall_extra *x) {
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
  if (x && x->detail_length) {
    buf_puts(b, ", detail \"");
    buf_text_escaped(b, x->detail, x->detail_length);
    buf_puts(b, "\"");
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
  if (x && x->state_known && e->kind != DETECT_ENDED)
    text_state(b, x);
  if (x && x->capture)
    text_capture(b, x->capture, x->ended_during_capture);
}

void report_format_event(struct reporter *r, const struct detect_event *e,
                         const struct perpetuo__slot *slot,
                         const struct blame *blame,
                         const struct stall_extra *extra, int64_t monotonic_ns,
                         int64_t wall_ns) {
  buf_reset(&r->buf);
  if (r->json)
    json_event(r, e, slot, blame, extra, monotonic_ns, wall_ns);
  else
    text_event(r, e, slot, blame, extra);
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
    /* Never block in write(): the output may be the target's stderr, a
     * pipe its reader leaves full; wait for room in slices instead, and
     * write no more than a pipe takes at once when it has room. */
    struct pollfd pfd = {.fd = r->fd, .events = POLLOUT};
    int ready = poll(&pfd, 1, 20);
    if (ready < 0 && errno != EINTR)
      return -errno;
    if (ready <= 0) {
      if (r->waiting)
        r->waiting();
      continue;
    }
    if (pfd.revents & (POLLERR | POLLNVAL))
      return pfd.revents & POLLNVAL ? -EBADF : -EPIPE;
    size_t chunk = r->buf.len - done < PIPE_BUF ? r->buf.len - done : PIPE_BUF;
    ssize_t n = write(r->fd, r->buf.data + done, chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0)
      return -errno;
    done += (size_t)n;
  }
  return 0;
}
