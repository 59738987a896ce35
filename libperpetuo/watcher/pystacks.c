#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pylines.h"
#include "pyrepr.h"
#include "pystacks.h"
#include "remote.h"

/* Code objects kept between snapshots, by address. */
#define CODE_SLOTS 4096u
#define CODE_KEEP_MAX (CODE_SLOTS / 2)
/* And at most this much of their line tables. */
#define CODE_KEEP_BYTES (16u << 20)
/* The fixed parts read of a thread state, a frame, a code object, a str. */
#define STRUCT_READ_MAX 1024
/* Digits of an int read for its repr (30 bits each). */
#define LONG_DIGITS_READ 128

/* ------------------------------------------------------------- arena */

/* Snapshots allocate many small things, during the pause: from big chunks,
 * all freed at once. */
struct py_arena {
  struct py_arena *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK (256u << 10)

static void *arena_alloc(struct py_arena **arena, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct py_arena *a = *arena;
  if (!a || a->size - a->used < n) {
    size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
    struct py_arena *fresh = malloc(sizeof(*fresh) + size);
    if (!fresh)
      return NULL;
    fresh->next = a;
    fresh->used = 0;
    fresh->size = size;
    *arena = a = fresh;
  }
  void *p = a->data + a->used;
  a->used += n;
  return p;
}

static char *arena_strdup(struct py_arena **arena, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = arena_alloc(arena, n);
  if (p)
    memcpy(p, s, n);
  return p;
}

static void arena_free(struct py_arena *a) {
  while (a) {
    struct py_arena *next = a->next;
    free(a);
    a = next;
  }
}

/* ------------------------------------------------------- the reader */

struct code_entry {
  uint64_t addr;
  /* What identifies this code object's contents: if all are the same at
   * the same address, so is what we decoded from them. */
  uint64_t filename, name, qualname, linetable, varnames;
  int32_t firstlineno, nlocals;
  struct py_code code;
};

struct pyreader {
  struct remote remote;
  struct code_entry **codes; /* CODE_SLOTS, open addressing */
  size_t code_count;
  size_t kept_bytes; /* of line tables in the table */
  /* Code objects read when the table was full: this snapshot's alone. */
  struct code_entry **extra;
  size_t extra_count, extra_size;
  struct py_frame *scratch; /* PY_FRAMES_MAX: one thread's, innermost first */
};

struct pyreader *pyreader_new(pid_t pid) {
  struct pyreader *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->codes = calloc(CODE_SLOTS, sizeof(*r->codes));
  r->scratch = calloc(PY_FRAMES_MAX, sizeof(*r->scratch));
  if (!r->codes || !r->scratch || remote_init(&r->remote, pid) < 0) {
    free(r->codes);
    free(r->scratch);
    free(r);
    return NULL;
  }
  return r;
}

static void code_entry_free(struct code_entry *e) {
  if (!e)
    return;
  free(e->code.name);
  free(e->code.qualname);
  free(e->code.filename);
  free(e->code.linetable);
  for (uint32_t i = 0; i < e->code.varname_count; i++)
    free(e->code.varnames[i]);
  free(e->code.varnames);
  free(e);
}

static void forget_codes(struct pyreader *r) {
  for (size_t i = 0; i < CODE_SLOTS; i++) {
    code_entry_free(r->codes[i]);
    r->codes[i] = NULL;
  }
  r->code_count = 0;
  r->kept_bytes = 0;
}

static void forget_extra(struct pyreader *r) {
  for (size_t i = 0; i < r->extra_count; i++)
    code_entry_free(r->extra[i]);
  r->extra_count = 0;
}

void pyreader_free(struct pyreader *r) {
  if (!r)
    return;
  forget_codes(r);
  forget_extra(r);
  free(r->extra);
  free(r->codes);
  free(r->scratch);
  remote_free(&r->remote);
  free(r);
}

/* ---------------------------------------------------- layout checks */

/* A word (or narrower field) at `off` lies within the first `within`
 * bytes of what is read. */
static bool offset_ok(int32_t off, int32_t within) {
  return off >= 0 && (int64_t)off + 8 <= within;
}

static bool byte_ok(int32_t off, int32_t within) {
  return off >= 0 && off < within;
}

const char *pylayout_check(const struct perpetuo__pylayout *l) {
  if (l->ready != PERPETUO__PYLAYOUT_READY)
    return "the Python layout block is not complete";
  /* A block with its identity alone, which says why it has no layout. */
  if (l->version == PERPETUO__PYLAYOUT_VERSION &&
      l->implementation != PERPETUO__PYIMPL_CPYTHON) {
    if (l->implementation == PERPETUO__PYIMPL_PYPY)
      return "the target runs PyPy, whose frames are not CPython's, the "
             "only ones the watcher reads";
    if (l->implementation == PERPETUO__PYIMPL_CPYTHON_UNKNOWN)
      return "the target's CPython has no layout block: perpetuo runs there "
             "on its cffi backend, without the C extension that computes it";
    return "the Python layout block names an interpreter this watcher does "
           "not know";
  }
  if (l->version != PERPETUO__PYLAYOUT_VERSION ||
      l->size < sizeof(struct perpetuo__pylayout))
    return "the Python layout block is of a version this watcher does not "
           "know";
  if (l->frame_format < PERPETUO__PYFRAME_OBJECT_BYTES ||
      l->frame_format > PERPETUO__PYFRAME_INTERP_CURRENT ||
      l->lines_format < PERPETUO__PYLINES_LNOTAB ||
      l->lines_format > PERPETUO__PYLINES_311 ||
      (l->long_format != PERPETUO__PYLONG_SIZE &&
       l->long_format != PERPETUO__PYLONG_TAG) ||
      l->long_digit_bits == 0 || l->long_digit_bits > 31 ||
      (l->long_digit_size != 2 && l->long_digit_size != 4) ||
      l->unicode_kind_shift > 29 || l->unicode_kind_mask == 0 ||
      l->unicode_compact_bit > 31 || l->unicode_ascii_bit > 31)
    return "the Python layout block names formats this watcher does not know";
  bool interp_frames = l->frame_format >= PERPETUO__PYFRAME_INTERP_PREV;
  int32_t S = STRUCT_READ_MAX;
  /* Words read on their own, in big structures. */
  int32_t W = 1 << 20;
  if (!l->interp || !l->gil || !l->type_code || !l->type_unicode ||
      !offset_ok(l->interp_threads_head, W) || l->tstate_size <= 0 ||
      l->tstate_size > S || !offset_ok(l->tstate_next, l->tstate_size) ||
      !offset_ok(l->tstate_thread_id, l->tstate_size) ||
      !offset_ok(l->tstate_frame, l->tstate_size) ||
      (l->tstate_native_thread_id >= 0 &&
       !offset_ok(l->tstate_native_thread_id, l->tstate_size)) ||
      (l->tstate_frame_holder >= 0 && !offset_ok(l->tstate_frame_holder, W)) ||
      !offset_ok(l->gil_locked, 256) || !offset_ok(l->gil_last_holder, 256) ||
      l->frame_size <= 0 || l->frame_size > S ||
      !offset_ok(l->frame_previous, l->frame_size) ||
      !offset_ok(l->frame_code, l->frame_size) ||
      !offset_ok(l->frame_lasti, l->frame_size) || l->frame_localsplus < 0 ||
      l->frame_localsplus > S ||
      (interp_frames && !byte_ok(l->frame_owner, l->frame_size)) ||
      (l->frame_is_entry >= 0 && !byte_ok(l->frame_is_entry, l->frame_size)))
    return "the Python layout block is inconsistent (thread or frame "
           "offsets out of range)";
  if (l->code_size <= 0 || l->code_size > S ||
      !offset_ok(l->code_filename, l->code_size) ||
      !offset_ok(l->code_name, l->code_size) ||
      (l->code_qualname >= 0 && !offset_ok(l->code_qualname, l->code_size)) ||
      !offset_ok(l->code_firstlineno, l->code_size) ||
      !offset_ok(l->code_linetable, l->code_size) ||
      !offset_ok(l->code_varnames, l->code_size) ||
      !offset_ok(l->code_nlocals, l->code_size) ||
      (interp_frames &&
       (l->code_code_adaptive < 0 || l->code_code_adaptive > S ||
        !offset_ok(l->code_firsttraceable, l->code_size))) ||
      (l->code_firsttraceable >= 0 &&
       !offset_ok(l->code_firsttraceable, l->code_size)) ||
      (l->code_flag_coroutine && !offset_ok(l->code_flags, l->code_size)) ||
      !offset_ok(l->object_type, 64) || !offset_ok(l->var_size, 64) ||
      !offset_ok(l->tuple_items, 64) || !offset_ok(l->bytes_size, 64) ||
      l->bytes_data < 0 || l->bytes_data > 64 ||
      !offset_ok(l->unicode_length, 64) || !offset_ok(l->unicode_state, 64) ||
      l->unicode_ascii_data <= 0 || l->unicode_ascii_data > 128 ||
      l->unicode_compact_data <= 0 || l->unicode_compact_data > 128 ||
      !offset_ok(l->long_size, 64) || l->long_digits < 0 ||
      l->long_digits > 64 || !offset_ok(l->float_value, 64) ||
      !offset_ok(l->dict_used, 64) || !offset_ok(l->set_used, S) ||
      !offset_ok(l->cell_ref, 64) || !offset_ok(l->type_name, 64))
    return "the Python layout block is inconsistent (object offsets out of "
           "range)";
  /* Every object's type, and the sizes read along with it, lie within what
   * is read of it. */
  if ((!interp_frames && !offset_ok(l->object_type, l->frame_size)) ||
      !offset_ok(l->object_type, l->code_size) ||
      !offset_ok(l->object_type, l->tuple_items) ||
      !offset_ok(l->var_size, l->tuple_items) ||
      !offset_ok(l->object_type, l->bytes_data) ||
      !offset_ok(l->bytes_size, l->bytes_data) ||
      !offset_ok(l->object_type, l->unicode_ascii_data) ||
      !offset_ok(l->unicode_length, l->unicode_ascii_data) ||
      l->unicode_state + 4 > l->unicode_ascii_data ||
      l->unicode_ascii_data > l->unicode_compact_data)
    return "the Python layout block is inconsistent (object headers out of "
           "range)";
  return NULL;
}

/* -------------------------------------------------- reading helpers */

/* Brent's cycle detection over a linked list read from the target: a list
 * that loops is noticed within twice its cycle's length, at the cost of a
 * comparison per step. */
struct loop_check {
  uint64_t saved;
  size_t power, steps;
};

static bool loops(struct loop_check *lc, uint64_t addr) {
  if (addr == lc->saved)
    return true;
  if (++lc->steps == lc->power || lc->power == 0) {
    lc->saved = addr;
    lc->power = lc->power ? lc->power * 2 : 1;
    lc->steps = 0;
  }
  return false;
}

static uint64_t word_at(const unsigned char *buf, int32_t off) {
  uint64_t v;
  memcpy(&v, buf + off, 8);
  return v;
}

static int32_t int_at(const unsigned char *buf, int32_t off) {
  int32_t v;
  memcpy(&v, buf + off, 4);
  return v;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct read_ctx {
  struct pyreader *r;
  const struct perpetuo__pylayout *l;
  struct py_snapshot *snap;
  int64_t deadline_ns;
};

static bool rd(struct read_ctx *c, uint64_t addr, void *out, size_t len) {
  return addr && remote_read(&c->r->remote, addr, out, len);
}

static bool rd_u64(struct read_ctx *c, uint64_t addr, uint64_t *out) {
  return rd(c, addr, out, 8);
}

static uint64_t type_of(struct read_ctx *c, uint64_t obj) {
  uint64_t type = 0;
  if (!rd_u64(c, obj + (uint64_t)c->l->object_type, &type))
    return 0;
  return type;
}

/*
 * The characters of a str: a pointer to at most `max_chars` of them in
 * `buf` (which must hold max_chars * 4 bytes), their kind, how many were
 * read and how many there are. False if `obj` is not a compact str.
 */
static bool read_str_data(struct read_ctx *c, uint64_t obj, void *buf,
                          size_t max_chars, unsigned *kind, size_t *count,
                          size_t *total) {
  const struct perpetuo__pylayout *l = c->l;
  unsigned char head[128];
  if (!rd(c, obj, head, (size_t)l->unicode_compact_data))
    return false;
  if (word_at(head, l->object_type) != l->type_unicode)
    return false;
  uint64_t length = word_at(head, l->unicode_length);
  uint32_t state;
  memcpy(&state, head + l->unicode_state, 4);
  if (!(state >> l->unicode_compact_bit & 1))
    return false; /* a legacy string: its data lives elsewhere */
  bool ascii = state >> l->unicode_ascii_bit & 1;
  *kind = ascii ? 1 : (state >> l->unicode_kind_shift) & l->unicode_kind_mask;
  if (*kind != 1 && *kind != 2 && *kind != 4)
    return false;
  if (length > (1ull << 40))
    return false;
  *total = (size_t)length;
  *count = *total < max_chars ? *total : max_chars;
  uint64_t data =
      obj + (uint64_t)(ascii ? l->unicode_ascii_data : l->unicode_compact_data);
  return rd(c, data, buf, *count * *kind);
}

/* A str as malloc'd UTF-8, or NULL. */
static char *read_str(struct read_ctx *c, uint64_t obj) {
  static uint32_t buf[PY_NAME_CHARS];
  unsigned kind;
  size_t count, total;
  if (!read_str_data(c, obj, buf, PY_NAME_CHARS, &kind, &count, &total))
    return NULL;
  size_t size = count * 4 + 4;
  char *out = malloc(size);
  if (!out)
    return NULL;
  bool truncated;
  pystr_utf8(buf, count, kind, out, size, &truncated);
  return out;
}

/* The length of a bytes object, or -1 if `obj` is not a readable one. */
static int64_t bytes_length(struct read_ctx *c, uint64_t obj) {
  const struct perpetuo__pylayout *l = c->l;
  unsigned char head[128];
  if (!rd(c, obj, head, (size_t)l->bytes_data) ||
      word_at(head, l->object_type) != l->type_bytes)
    return -1;
  int64_t size = (int64_t)word_at(head, l->bytes_size);
  return size < 0 ? -1 : size;
}

static bool read_bytes(struct read_ctx *c, uint64_t obj, size_t max,
                       uint8_t **data, size_t *len) {
  const struct perpetuo__pylayout *l = c->l;
  int64_t size = bytes_length(c, obj);
  if (size < 0 || (uint64_t)size > max)
    return false;
  *data = malloc(size ? (size_t)size : 1);
  if (!*data)
    return false;
  if (!rd(c, obj + (uint64_t)l->bytes_data, *data, (size_t)size)) {
    free(*data);
    *data = NULL;
    return false;
  }
  *len = (size_t)size;
  return true;
}

/* The items of a tuple: at most `max` pointers into `items`. */
static size_t read_tuple(struct read_ctx *c, uint64_t obj, uint64_t *items,
                         size_t max) {
  const struct perpetuo__pylayout *l = c->l;
  unsigned char head[128];
  if (!rd(c, obj, head, (size_t)l->tuple_items))
    return 0;
  if (word_at(head, l->object_type) != l->type_tuple)
    return 0;
  int64_t n = (int64_t)word_at(head, l->var_size);
  if (n <= 0)
    return 0;
  size_t count = (uint64_t)n < max ? (size_t)n : max;
  if (!rd(c, obj + (uint64_t)l->tuple_items, items, count * 8))
    return 0;
  return count;
}

/* ---------------------------------------------------- code objects */

static uint32_t code_hash(uint64_t addr) {
  return (uint32_t)((addr >> 4) * 0x9e3779b97f4a7c15ull >> 40) &
         (CODE_SLOTS - 1);
}

static struct code_entry **code_slot(struct pyreader *r, uint64_t addr) {
  uint32_t i = code_hash(addr);
  for (;;) {
    struct code_entry **e = &r->codes[i];
    if (!*e || (*e)->addr == addr)
      return e;
    i = (i + 1) & (CODE_SLOTS - 1);
  }
}

static struct code_entry *read_code_entry(struct read_ctx *c, uint64_t addr,
                                          const unsigned char *head) {
  const struct perpetuo__pylayout *l = c->l;
  struct code_entry *e = calloc(1, sizeof(*e));
  if (!e)
    return NULL;
  e->addr = addr;
  e->filename = word_at(head, l->code_filename);
  e->name = word_at(head, l->code_name);
  e->qualname = l->code_qualname >= 0 ? word_at(head, l->code_qualname) : 0;
  e->linetable = word_at(head, l->code_linetable);
  e->varnames = word_at(head, l->code_varnames);
  e->firstlineno = int_at(head, l->code_firstlineno);
  e->nlocals = int_at(head, l->code_nlocals);
  e->code.firstlineno = e->firstlineno;
  e->code.firsttraceable =
      l->code_firsttraceable >= 0 ? int_at(head, l->code_firsttraceable) : 0;
  if (l->code_flag_coroutine) {
    uint32_t flags = (uint32_t)int_at(head, l->code_flags);
    e->code.coroutine = (flags & l->code_flag_coroutine) != 0;
    e->code.other_async = (flags & l->code_flags_async) != 0;
  }
  e->code.name = read_str(c, e->name);
  e->code.filename = read_str(c, e->filename);
  if (e->qualname)
    e->code.qualname = read_str(c, e->qualname);
  if (!read_bytes(c, e->linetable, PY_LINETABLE_MAX, &e->code.linetable,
                  &e->code.linetable_len))
    e->code.linetable_len = 0;
  uint64_t items[PY_LOCALS_MAX];
  size_t n = 0;
  if (e->nlocals > 0)
    n = read_tuple(c, e->varnames, items,
                   (size_t)e->nlocals < PY_LOCALS_MAX ? (size_t)e->nlocals
                                                      : PY_LOCALS_MAX);
  if (n) {
    e->code.varnames = calloc(n, sizeof(char *));
    if (e->code.varnames) {
      e->code.varname_count = (uint32_t)n;
      for (size_t i = 0; i < n; i++)
        e->code.varnames[i] = read_str(c, items[i]);
    }
  }
  return e;
}

/* Keeps `e` until the next read, outside the table. */
static bool keep_for_this_read(struct pyreader *r, struct code_entry *e) {
  if (r->extra_count == r->extra_size) {
    size_t size = r->extra_size ? r->extra_size * 2 : 64;
    struct code_entry **grown = realloc(r->extra, size * sizeof(*grown));
    if (!grown)
      return false;
    r->extra = grown;
    r->extra_size = size;
  }
  r->extra[r->extra_count++] = e;
  return true;
}

static bool code_matches(const struct perpetuo__pylayout *l,
                         const struct code_entry *e,
                         const unsigned char *head) {
  return e->filename == word_at(head, l->code_filename) &&
         e->name == word_at(head, l->code_name) &&
         (l->code_qualname < 0 ||
          e->qualname == word_at(head, l->code_qualname)) &&
         e->linetable == word_at(head, l->code_linetable) &&
         e->varnames == word_at(head, l->code_varnames) &&
         e->firstlineno == int_at(head, l->code_firstlineno) &&
         e->nlocals == int_at(head, l->code_nlocals);
}

/* The code object at `addr`, read or recognised; NULL if it is not one. */
static const struct code_entry *code_at(struct read_ctx *c, uint64_t addr) {
  const struct perpetuo__pylayout *l = c->l;
  unsigned char head[STRUCT_READ_MAX];
  if (!rd(c, addr, head, (size_t)l->code_size) ||
      word_at(head, l->object_type) != l->type_code)
    return NULL;
  struct pyreader *r = c->r;
  struct code_entry **slot = code_slot(r, addr);
  if (*slot && code_matches(l, *slot, head))
    return *slot;
  struct code_entry *e = read_code_entry(c, addr, head);
  if (!e)
    return NULL;
  if (*slot) {
    /* Another code object now lives at that address. Frames read before
     * may still point at the old entry: it lives until the next read. */
    if (!keep_for_this_read(r, *slot)) {
      code_entry_free(e);
      return NULL;
    }
    r->kept_bytes -= (*slot)->code.linetable_len;
    *slot = e;
    r->kept_bytes += e->code.linetable_len;
  } else if (r->code_count < CODE_KEEP_MAX && r->kept_bytes < CODE_KEEP_BYTES) {
    *slot = e;
    r->code_count++;
    r->kept_bytes += e->code.linetable_len;
  } else if (!keep_for_this_read(r, e)) {
    code_entry_free(e);
    return NULL;
  }
  return e;
}

/* ----------------------------------------------------------- locals */

/*
 * A local's value is copied while the threads are stopped (it may change
 * as soon as they run) and formatted after they are resumed (formatting,
 * a float's shortest repr above all, costs more than the reads).
 */
enum value_kind {
  VALUE_UNREADABLE,
  VALUE_NONE,
  VALUE_TRUE,
  VALUE_FALSE,
  VALUE_INT,
  VALUE_BIG_INT, /* more digits than are read */
  VALUE_FLOAT,
  VALUE_STR,
  VALUE_BYTES,
  VALUE_SIZED, /* a container: type and length */
  VALUE_OTHER, /* type only */
  VALUE_EMPTY_CELL
};

struct py_value {
  enum value_kind kind;
  bool negative;
  unsigned str_kind; /* 1, 2 or 4 bytes per character */
  uint64_t obj, type;
  uint64_t count, total; /* digits, characters or bytes: read, and in all */
  double number;
  int64_t length;
  unsigned char data[]; /* digits or characters or bytes */
};

#define STR_CHARS_READ (PY_REPR_MAX / 2)

static struct py_value *value_new(struct read_ctx *c, size_t data) {
  struct py_value *v = arena_alloc(&c->snap->arena, sizeof(*v) + data);
  if (v)
    memset(v, 0, sizeof(*v));
  return v;
}

static struct py_value *capture_int(struct read_ctx *c, uint64_t obj) {
  const struct perpetuo__pylayout *l = c->l;
  uint64_t word;
  if (!rd_u64(c, obj + (uint64_t)l->long_size, &word))
    return NULL;
  uint64_t ndigits;
  bool negative;
  if (l->long_format == PERPETUO__PYLONG_TAG) {
    ndigits = word >> 3;
    negative = (word & 3) == 2;
  } else {
    int64_t size = (int64_t)word;
    negative = size < 0;
    ndigits = negative ? (uint64_t)0 - (uint64_t)size : (uint64_t)size;
  }
  size_t n = ndigits <= LONG_DIGITS_READ ? (size_t)ndigits : 0;
  struct py_value *v = value_new(c, n * sizeof(uint32_t));
  if (!v)
    return NULL;
  v->kind = n || !ndigits ? VALUE_INT : VALUE_BIG_INT;
  v->negative = negative;
  v->count = n;
  v->total = ndigits;
  uint32_t *digits = (uint32_t *)(void *)v->data;
  if (l->long_digit_size == 4) {
    if (!rd(c, obj + (uint64_t)l->long_digits, digits, n * 4))
      return NULL;
  } else {
    uint16_t small[LONG_DIGITS_READ];
    if (!rd(c, obj + (uint64_t)l->long_digits, small, n * 2))
      return NULL;
    for (size_t i = 0; i < n; i++)
      digits[i] = small[i];
  }
  return v;
}

static struct py_value *capture_value(struct read_ctx *c, uint64_t obj,
                                      int depth) {
  const struct perpetuo__pylayout *l = c->l;
  struct py_value *v;
  if (obj == l->none || obj == l->true_ || obj == l->false_) {
    v = value_new(c, 0);
    if (v)
      v->kind = obj == l->none    ? VALUE_NONE
                : obj == l->true_ ? VALUE_TRUE
                                  : VALUE_FALSE;
    return v;
  }
  uint64_t type = type_of(c, obj);
  v = NULL;
  if (!type) {
    /* unreadable: below */
  } else if (type == l->type_long) {
    v = capture_int(c, obj);
  } else if (type == l->type_float) {
    double number;
    if (rd(c, obj + (uint64_t)l->float_value, &number, sizeof(number)) &&
        (v = value_new(c, 0))) {
      v->kind = VALUE_FLOAT;
      v->number = number;
    }
  } else if (type == l->type_unicode) {
    uint32_t buf[STR_CHARS_READ];
    unsigned kind;
    size_t count, total;
    if (read_str_data(c, obj, buf, STR_CHARS_READ, &kind, &count, &total) &&
        (v = value_new(c, count * kind))) {
      v->kind = VALUE_STR;
      v->str_kind = kind;
      v->count = count;
      v->total = total;
      memcpy(v->data, buf, count * kind);
    }
  } else if (type == l->type_bytes) {
    int64_t n = bytes_length(c, obj);
    size_t count = n > STR_CHARS_READ ? STR_CHARS_READ : (size_t)n;
    if (n >= 0 && (v = value_new(c, count)) &&
        rd(c, obj + (uint64_t)l->bytes_data, v->data, count)) {
      v->kind = VALUE_BYTES;
      v->count = count;
      v->total = (uint64_t)n;
    } else {
      v = NULL;
    }
  } else if (type == l->type_cell && depth == 0) {
    /* A variable captured by a closure: show what it holds. */
    uint64_t ref = 0;
    if (rd_u64(c, obj + (uint64_t)l->cell_ref, &ref)) {
      if (ref)
        return capture_value(c, ref, 1);
      if ((v = value_new(c, 0)))
        v->kind = VALUE_EMPTY_CELL;
    }
  } else if ((v = value_new(c, 0))) {
    v->kind = VALUE_OTHER;
    int32_t len_off = -1;
    if (type == l->type_list || type == l->type_tuple)
      len_off = l->var_size;
    else if (type == l->type_dict)
      len_off = l->dict_used;
    else if (type == l->type_set || type == l->type_frozenset)
      len_off = l->set_used;
    if (len_off >= 0 &&
        rd(c, obj + (uint64_t)len_off, &v->length, sizeof(v->length)) &&
        v->length >= 0)
      v->kind = VALUE_SIZED;
  }
  if (!v && (v = value_new(c, 0)))
    v->kind = VALUE_UNREADABLE;
  if (v) {
    v->obj = obj;
    v->type = type;
  }
  return v;
}

/* The name of a type object (its tp_name), read now: types outlive their
 * instances, and one read serves every value of the type. */
static void type_name(struct pyreader *r, const struct perpetuo__pylayout *l,
                      uint64_t type, char *out, size_t size) {
  uint64_t name = 0;
  char raw[80];
  snprintf(out, size, "?");
  if (!remote_read_u64(&r->remote, type + (uint64_t)l->type_name, &name) ||
      !name)
    return;
  /* A C string of unknown length: read what we can, to a page's end. */
  size_t len = sizeof(raw) - 1;
  uint64_t page_left = REMOTE_PAGE - name % REMOTE_PAGE;
  if (page_left < len)
    len = (size_t)page_left;
  if (!remote_read(&r->remote, name, raw, len))
    return;
  raw[len] = '\0';
  for (char *p = raw; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
      *p = '?';
  snprintf(out, size, "%s", raw);
}

static void format_value(struct pyreader *r, const struct perpetuo__pylayout *l,
                         const struct py_value *v, char *out, size_t size) {
  char name[80];
  switch (v->kind) {
  case VALUE_NONE: snprintf(out, size, "None"); return;
  case VALUE_TRUE: snprintf(out, size, "True"); return;
  case VALUE_FALSE: snprintf(out, size, "False"); return;
  case VALUE_EMPTY_CELL: snprintf(out, size, "<empty cell>"); return;
  case VALUE_UNREADABLE:
    snprintf(out, size, "<unreadable at 0x%" PRIx64 ">", v->obj);
    return;
  case VALUE_INT:
    pyrepr_long((const uint32_t *)(const void *)v->data, (size_t)v->count,
                l->long_digit_bits, v->negative, out, size);
    return;
  case VALUE_BIG_INT:
    snprintf(out, size, "<%sint of about %" PRIu64 " bits>",
             v->negative ? "negative " : "", v->total * l->long_digit_bits);
    return;
  case VALUE_FLOAT: pyrepr_float(v->number, out, size); return;
  case VALUE_STR:
    pyrepr_str(v->data, (size_t)v->count, (size_t)v->total, v->str_kind, out,
               size);
    return;
  case VALUE_BYTES:
    pyrepr_bytes(v->data, (size_t)v->count, (size_t)v->total, out, size);
    return;
  case VALUE_SIZED:
    type_name(r, l, v->type, name, sizeof(name));
    snprintf(out, size, "<%s at 0x%" PRIx64 ", len %" PRId64 ">", name, v->obj,
             v->length);
    return;
  case VALUE_OTHER:
    type_name(r, l, v->type, name, sizeof(name));
    snprintf(out, size, "<%s at 0x%" PRIx64 ">", name, v->obj);
    return;
  }
}

static void read_locals(struct read_ctx *c, uint64_t frame,
                        const struct py_code *code, struct py_frame *f) {
  /* Asked for, and there are none: an empty list, not "not asked". */
  static struct py_local no_locals[1];
  f->locals = no_locals;
  uint32_t n = code->varname_count;
  if (!n)
    return;
  uint64_t values[PY_LOCALS_MAX];
  if (!rd(c, frame + (uint64_t)c->l->frame_localsplus, values, n * 8u))
    return;
  struct py_local *locals = arena_alloc(&c->snap->arena, n * sizeof(*locals));
  if (!locals)
    return;
  f->locals = locals;
  for (uint32_t i = 0; i < n; i++) {
    if (!values[i] || !code->varnames[i])
      continue; /* unbound */
    struct py_value *v = capture_value(c, values[i], 0);
    if (!v)
      continue;
    locals[f->local_count++] =
        (struct py_local){.name = code->varnames[i], .raw = v};
  }
}

void pyreader_format(struct pyreader *r, const struct perpetuo__pylayout *l,
                     struct py_snapshot *s) {
  remote_begin(&r->remote); /* the target has run since */
  for (size_t t = 0; t < s->count; t++)
    for (size_t i = 0; i < s->threads[t].count; i++) {
      struct py_frame *f = &s->threads[t].frames[i];
      for (uint32_t k = 0; k < f->local_count; k++) {
        char repr[PY_REPR_MAX];
        format_value(r, l, f->locals[k].raw, repr, sizeof(repr));
        f->locals[k].value = arena_strdup(&s->arena, repr);
        if (!f->locals[k].value)
          f->locals[k].value = "?";
      }
    }
}

/* ----------------------------------------------------------- frames */

/* The line of a frame object (3.9, 3.10), from its f_lasti. */
static int object_frame_line(const struct perpetuo__pylayout *l,
                             const struct py_code *code,
                             const unsigned char *frame) {
  int32_t lasti = int_at(frame, l->frame_lasti);
  if (lasti < 0)
    return code->firstlineno; /* not started yet */
  if (l->frame_format == PERPETUO__PYFRAME_OBJECT_UNITS)
    return pylines_310(code->linetable, code->linetable_len, code->firstlineno,
                       (uint32_t)lasti * 2);
  return pylines_lnotab(code->linetable, code->linetable_len, code->firstlineno,
                        (uint32_t)lasti);
}

/* Reads one thread's frames, innermost first into `out`; returns how
 * many, and says in t->error why the walk stopped early. */
static size_t walk_frames(struct read_ctx *c, uint64_t frame, bool locals,
                          struct py_frame *out, struct py_thread *t) {
  const struct perpetuo__pylayout *l = c->l;
  bool interp_frames = l->frame_format >= PERPETUO__PYFRAME_INTERP_PREV;
  size_t n = 0;
  size_t steps = 0;
  struct loop_check lc = {0};
  unsigned char buf[STRUCT_READ_MAX];
  while (frame) {
    if (loops(&lc, frame)) {
      snprintf(t->error, sizeof(t->error),
               "cut where the frame list loops back (0x%" PRIx64
               "): it changed while read?",
               frame);
      break;
    }
    /* Shim frames are skipped, so steps, not frames, bound the walk. */
    if (++steps > PY_FRAMES_MAX * 2 || n == PY_FRAMES_MAX) {
      snprintf(t->error, sizeof(t->error), "cut at %d frames", PY_FRAMES_MAX);
      break;
    }
    if (now_ns() > c->deadline_ns) {
      snprintf(t->error, sizeof(t->error),
               "cut short: out of time for reading while the target is "
               "stopped");
      break;
    }
    if (!rd(c, frame, buf, (size_t)l->frame_size)) {
      snprintf(t->error, sizeof(t->error),
               "cut at an unreadable frame (0x%" PRIx64
               "): the frame list changed while read?",
               frame);
      break;
    }
    uint64_t previous = word_at(buf, l->frame_previous);
    if (!interp_frames && word_at(buf, l->object_type) != l->type_frame) {
      snprintf(t->error, sizeof(t->error),
               "cut at 0x%" PRIx64 ", which is not a frame object", frame);
      break;
    }
    int owner = interp_frames ? buf[l->frame_owner] : -1;
    if (owner >= 0 && owner == l->frame_owner_cstack) {
      frame = previous; /* a shim the eval loop pushes when C calls it */
      continue;
    }
    uint64_t code_addr = word_at(buf, l->frame_code);
    const struct code_entry *e = code_at(c, code_addr);
    if (!e) {
      if (interp_frames &&
          l->frame_format == PERPETUO__PYFRAME_INTERP_CURRENT &&
          type_of(c, code_addr) != 0) {
        frame = previous; /* 3.13: a frame that runs no code object */
        continue;
      }
      snprintf(t->error, sizeof(t->error),
               "cut at a frame whose code object cannot be read (0x%" PRIx64
               ")",
               code_addr);
      break;
    }
    struct py_frame *f = &out[n];
    *f = (struct py_frame){.code = &e->code, .line = -1};
    if (interp_frames) {
      uint64_t instr = word_at(buf, l->frame_lasti);
      uint64_t start = code_addr + (uint64_t)l->code_code_adaptive;
      int64_t units = (int64_t)(instr - start) / 2;
      if (owner != l->frame_owner_generator && units < e->code.firsttraceable) {
        frame = previous; /* just pushed, not started: CPython hides it */
        continue;
      }
      f->line = units < 0
                    ? e->code.firstlineno
                    : pylines_311(e->code.linetable, e->code.linetable_len,
                                  e->code.firstlineno, (uint32_t)units);
    } else {
      f->line = object_frame_line(l, &e->code, buf);
    }
    if (locals)
      read_locals(c, frame, &e->code, f);
    n++;
    frame = previous;
  }
  return n;
}

static void read_thread(struct read_ctx *c, uint64_t tstate,
                        const unsigned char *ts, bool locals,
                        struct py_thread *t) {
  const struct perpetuo__pylayout *l = c->l;
  t->tstate = tstate;
  t->thread_id = word_at(ts, l->tstate_thread_id);
  if (l->tstate_native_thread_id >= 0)
    t->native_id = (pid_t)word_at(ts, l->tstate_native_thread_id);
  t->main = t->thread_id == l->main_thread;
  uint64_t frame = word_at(ts, l->tstate_frame);
  if (frame && l->tstate_frame_holder >= 0 &&
      !rd_u64(c, frame + (uint64_t)l->tstate_frame_holder, &frame)) {
    snprintf(t->error, sizeof(t->error), "its current frame is unreadable");
    return;
  }
  if (!frame)
    return; /* no Python code running in this thread */
  struct py_frame *inner = c->r->scratch;
  size_t n = walk_frames(c, frame, locals, inner, t);
  t->frames = arena_alloc(&c->snap->arena, (n ? n : 1) * sizeof(*t->frames));
  if (t->frames) {
    for (size_t i = 0; i < n; i++)
      t->frames[i] = inner[n - 1 - i];
    t->count = n;
  }
}

void pyreader_read(struct pyreader *r, const struct perpetuo__pylayout *l,
                   bool locals, int64_t deadline_ns, struct py_snapshot *out) {
  *out = (struct py_snapshot){0};
  struct read_ctx c = {.r = r, .l = l, .snap = out, .deadline_ns = deadline_ns};
  remote_begin(&r->remote);
  forget_extra(r);
  if (r->code_count >= CODE_KEEP_MAX * 3 / 4 ||
      r->kept_bytes >= CODE_KEEP_BYTES)
    forget_codes(r);

  unsigned char gil[STRUCT_READ_MAX];
  int32_t gil_size = (l->gil_locked > l->gil_last_holder ? l->gil_locked
                                                         : l->gil_last_holder) +
                     8;
  if (rd(&c, l->gil, gil, (size_t)gil_size) && int_at(gil, l->gil_locked))
    out->gil_holder = word_at(gil, l->gil_last_holder);

  uint64_t tstate = 0;
  if (!rd_u64(&c, l->interp + (uint64_t)l->interp_threads_head, &tstate)) {
    snprintf(out->error, sizeof(out->error),
             "the Python interpreter's state is unreadable (0x%" PRIx64 ")",
             l->interp);
    goto done;
  }
  out->threads = arena_alloc(&out->arena, 16 * sizeof(*out->threads));
  size_t room = 16;
  struct loop_check lc = {0};
  while (tstate && out->count < PY_THREADS_MAX) {
    unsigned char ts[STRUCT_READ_MAX];
    if (loops(&lc, tstate)) {
      snprintf(out->error, sizeof(out->error),
               "the thread list loops back (0x%" PRIx64 "): cut there", tstate);
      break;
    }
    if (now_ns() > deadline_ns) {
      snprintf(out->error, sizeof(out->error),
               "the thread list is cut: out of time for reading while the "
               "target is stopped");
      break;
    }
    if (!rd(&c, tstate, ts, (size_t)l->tstate_size)) {
      snprintf(out->error, sizeof(out->error),
               "the thread list is cut at an unreadable thread state "
               "(0x%" PRIx64 ")",
               tstate);
      break;
    }
    if (out->count == room) {
      struct py_thread *grown =
          arena_alloc(&out->arena, room * 2 * sizeof(*grown));
      if (!grown)
        break;
      memcpy(grown, out->threads, room * sizeof(*grown));
      out->threads = grown;
      room *= 2;
    }
    if (!out->threads)
      break;
    struct py_thread *t = &out->threads[out->count++];
    *t = (struct py_thread){0};
    read_thread(&c, tstate, ts, locals, t);
    t->gil_holder = out->gil_holder && tstate == out->gil_holder;
    tstate = word_at(ts, l->tstate_next);
  }
  if (tstate && out->count == PY_THREADS_MAX && !out->error[0])
    snprintf(out->error, sizeof(out->error),
             "more than %d Python threads: the rest are not shown",
             PY_THREADS_MAX);
done:
  out->reads = r->remote.syscalls;
}

void py_snapshot_free(struct py_snapshot *s) {
  arena_free(s->arena);
  *s = (struct py_snapshot){0};
}
