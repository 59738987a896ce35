/*
 * fake_python: a process that pretends to run Python, for the tests of the
 * watcher's Python stack reader. It builds an interpreter of its own in
 * memory (thread states, frames, code objects, strings, line tables), with a
 * layout of its own, publishes that layout the way the Python extension
 * does, and stalls. Since the test knows every byte, it can check what the
 * reader makes of a sound interpreter, and what it does with a broken one.
 *
 *   fake_python MODE [--stalls N] [--stall-ms N] [--gap-ms N] [watch options]
 *
 * Modes:
 *   ok            one thread, frames outer (line 11), middle (12),
 *                 inner (13) in /fake/app.py; inner's locals n = 7,
 *                 s = 'hi', big = -(2**40 + 5)
 *   frame_cycle   the same, but the outermost frame's caller is the
 *                 innermost: the frame list loops
 *   thread_cycle  the thread state list loops on itself
 *   deep          one thread, 3000 distinct frames
 *   threads       3000 thread states
 *   garbage       before each stall, every pointer, length and kind of the
 *                 fake interpreter is replaced with random values (some
 *                 unmapped addresses, some pointing back into it)
 *   bad_layout    a layout whose frame size is out of any bound
 *   bad_offset    a layout with an offset so large that adding to it
 *                 overflows 32 bits
 *   bad_traceable frame objects (3.10's format), with a first traceable
 *                 instruction's offset past what is read of a code object
 *   bad_header    a layout whose objects' type lies past what is read of
 *                 a tuple
 *
 * Watch options as every target's (target_util.h). Prints "READY", then
 * "STALL n BEGIN ns" / "STALL n END ns", then "DONE n". Exit status 2: bad
 * usage; 3: the library failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TARGET_NAME "fake_python"
#include "pylayout.h"
#include "target_util.h"

/* The fake interpreter's objects. Types are objects compared by address. */
struct fobj {
  uint64_t refcnt, type;
};

struct fstr {
  uint64_t refcnt, type;
  int64_t length;
  uint64_t hash;
  uint32_t state, pad;
  char data[64]; /* ASCII: here; otherwise 16 bytes further */
};

struct fbytes {
  uint64_t refcnt, type;
  int64_t size;
  uint64_t hash;
  uint8_t data[64];
};

struct ftuple {
  uint64_t refcnt, type;
  int64_t size;
  uint64_t items[4];
};

struct flong {
  uint64_t refcnt, type;
  int64_t size; /* signed: the sign and the digit count */
  uint32_t digits[4];
};

struct fcode {
  uint64_t refcnt, type;
  uint64_t filename, name, qualname, linetable, varnames;
  int32_t firstlineno, nlocals, firsttraceable, pad;
  uint16_t code[8];
};

struct fframe {
  uint64_t code, previous, instr;
  uint8_t is_entry, owner, pad[6];
  uint64_t localsplus[3];
};

struct ftstate {
  uint64_t next, thread_id, native_id, frame;
};

struct finterp {
  uint64_t pad, threads_head;
};

struct fgil {
  uint64_t last_holder;
  int32_t locked, pad;
  uint64_t switch_number;
};

#define STR_COMPACT (1u << 5)
#define STR_ASCII (1u << 6)

static struct fobj type_code, type_frame, type_str, type_bytes, type_long,
    type_bool, type_float, type_tuple, type_list, type_dict, type_set,
    type_frozenset, type_cell, none, true_, false_;
static struct finterp interp;
static struct fgil gil;
static struct ftstate tstate;
static struct fframe frames[3];
static struct fcode codes[3];
static struct fstr strs[8]; /* file, 3 names, 3 local names, 'hi' */
static struct fbytes linetable;
static struct ftuple varnames;
static struct flong n_value, big_value;

#define P(x) ((uint64_t)(uintptr_t)(x))

static void make_str(struct fstr *s, const char *text) {
  *s = (struct fstr){.refcnt = 1, .type = P(&type_str)};
  s->length = (int64_t)strlen(text);
  s->state = STR_COMPACT | STR_ASCII | (1u << 2);
  memcpy(s->data, text, strlen(text));
}

/* A line table in 3.11's format: one entry per instruction, "line delta
 * only" (kind 13), so that instruction k is on line firstlineno + k. */
static void make_linetable(void) {
  linetable = (struct fbytes){.refcnt = 1, .type = P(&type_bytes)};
  int n = 0;
  for (int k = 0; k < 8; k++) {
    linetable.data[n++] = 0x80 | 13 << 3;
    linetable.data[n++] = k ? 2 : 0; /* signed varint: +1 or 0 */
  }
  linetable.size = n;
}

static void build_sound(void) {
  static const char *names[3] = {"outer", "middle", "inner"};
  make_str(&strs[0], "/fake/app.py");
  make_linetable();
  make_str(&strs[4], "n");
  make_str(&strs[5], "s");
  make_str(&strs[6], "big");
  make_str(&strs[7], "hi");
  varnames = (struct ftuple){.refcnt = 1, .type = P(&type_tuple), .size = 3};
  for (int i = 0; i < 3; i++)
    varnames.items[i] = P(&strs[4 + i]);
  n_value = (struct flong){.refcnt = 1, .type = P(&type_long), .size = 1};
  n_value.digits[0] = 7;
  /* 2**40 + 5 in 30-bit digits: 5, 1024. */
  big_value = (struct flong){.refcnt = 1, .type = P(&type_long), .size = -2};
  big_value.digits[0] = 5;
  big_value.digits[1] = 1024;
  for (int i = 0; i < 3; i++) {
    make_str(&strs[1 + i], names[i]);
    codes[i] = (struct fcode){.refcnt = 1,
                              .type = P(&type_code),
                              .filename = P(&strs[0]),
                              .name = P(&strs[1 + i]),
                              .qualname = P(&strs[1 + i]),
                              .linetable = P(&linetable),
                              .varnames = P(&varnames),
                              .firstlineno = 10,
                              .nlocals = i == 2 ? 3 : 0};
    frames[i] = (struct fframe){
        .code = P(&codes[i]),
        .previous = i ? P(&frames[i - 1]) : 0,
        /* Instruction i + 1: line 11, 12, 13. */
        .instr = P(&codes[i].code[i + 1]),
        .is_entry = i == 0,
    };
  }
  frames[2].localsplus[0] = P(&n_value);
  frames[2].localsplus[1] = P(&strs[7]);
  frames[2].localsplus[2] = P(&big_value);
  tstate = (struct ftstate){.thread_id = P(pthread_self()),
                            .native_id = (uint64_t)syscall(SYS_gettid),
                            .frame = P(&frames[2])};
  interp.threads_head = P(&tstate);
  gil = (struct fgil){.last_holder = P(&tstate), .locked = 1};
}

static void fill_layout(struct perpetuo__pylayout *l) {
  memset(l, 0, sizeof(*l));
  l->size = sizeof(*l);
  l->version = PERPETUO__PYLAYOUT_VERSION;
  l->python_version = 0x030B00F0;
  l->frame_format = PERPETUO__PYFRAME_INTERP_PREV;
  l->lines_format = PERPETUO__PYLINES_311;
  l->long_format = PERPETUO__PYLONG_SIZE;
  l->long_digit_bits = 30;
  l->long_digit_size = 4;
  l->unicode_kind_shift = 2;
  l->unicode_kind_mask = 7;
  l->unicode_compact_bit = 5;
  l->unicode_ascii_bit = 6;
  l->runtime = P(&interp);
  l->interp = P(&interp);
  l->gil = P(&gil);
  l->main_thread = P(pthread_self());
  l->type_code = P(&type_code);
  l->type_frame = P(&type_frame);
  l->type_unicode = P(&type_str);
  l->type_bytes = P(&type_bytes);
  l->type_long = P(&type_long);
  l->type_bool = P(&type_bool);
  l->type_float = P(&type_float);
  l->type_tuple = P(&type_tuple);
  l->type_list = P(&type_list);
  l->type_dict = P(&type_dict);
  l->type_set = P(&type_set);
  l->type_frozenset = P(&type_frozenset);
  l->type_cell = P(&type_cell);
  l->none = P(&none);
  l->true_ = P(&true_);
  l->false_ = P(&false_);
  l->interp_threads_head = offsetof(struct finterp, threads_head);
  l->tstate_next = offsetof(struct ftstate, next);
  l->tstate_thread_id = offsetof(struct ftstate, thread_id);
  l->tstate_native_thread_id = offsetof(struct ftstate, native_id);
  l->tstate_frame = offsetof(struct ftstate, frame);
  l->tstate_frame_holder = -1;
  l->tstate_size = sizeof(struct ftstate);
  l->gil_locked = offsetof(struct fgil, locked);
  l->gil_last_holder = offsetof(struct fgil, last_holder);
  l->gil_switch_number = offsetof(struct fgil, switch_number);
  l->frame_previous = offsetof(struct fframe, previous);
  l->frame_code = offsetof(struct fframe, code);
  l->frame_lasti = offsetof(struct fframe, instr);
  l->frame_localsplus = offsetof(struct fframe, localsplus);
  l->frame_owner = offsetof(struct fframe, owner);
  l->frame_is_entry = offsetof(struct fframe, is_entry);
  l->frame_owner_cstack = -1;
  l->frame_owner_generator = 1;
  l->frame_size = offsetof(struct fframe, localsplus);
  l->code_filename = offsetof(struct fcode, filename);
  l->code_name = offsetof(struct fcode, name);
  l->code_qualname = offsetof(struct fcode, qualname);
  l->code_firstlineno = offsetof(struct fcode, firstlineno);
  l->code_linetable = offsetof(struct fcode, linetable);
  l->code_code_adaptive = offsetof(struct fcode, code);
  l->code_firsttraceable = offsetof(struct fcode, firsttraceable);
  l->code_varnames = offsetof(struct fcode, varnames);
  l->code_nlocals = offsetof(struct fcode, nlocals);
  l->code_size = offsetof(struct fcode, code);
  l->object_type = offsetof(struct fobj, type);
  l->var_size = offsetof(struct ftuple, size);
  l->tuple_items = offsetof(struct ftuple, items);
  l->bytes_size = offsetof(struct fbytes, size);
  l->bytes_data = offsetof(struct fbytes, data);
  l->unicode_length = offsetof(struct fstr, length);
  l->unicode_state = offsetof(struct fstr, state);
  l->unicode_ascii_data = offsetof(struct fstr, data);
  l->unicode_compact_data = offsetof(struct fstr, data) + 16;
  l->long_size = offsetof(struct flong, size);
  l->long_digits = offsetof(struct flong, digits);
  l->float_value = 16;
  l->dict_used = 16;
  l->set_used = 16;
  l->cell_ref = 16;
  l->type_name = 24;
  l->ready = PERPETUO__PYLAYOUT_READY;
}

/* ------------------------------------------------------ hostile modes */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t random64(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* A value a pointer field might hold: ours, null, unmapped, or noise. */
static uint64_t random_pointer(void) {
  static void *ours[] = {&interp,    &gil,       &tstate,    &frames[0],
                         &frames[1], &frames[2], &codes[0],  &codes[2],
                         &strs[0],   &strs[7],   &linetable, &varnames,
                         &n_value,   &type_str,  &type_code};
  switch (random64() % 6) {
  case 0: return 0;
  case 1: return 8;          /* the null page */
  case 2: return random64(); /* anywhere, mostly unmapped */
  case 3: return 0xffff800000000000ull | random64(); /* the kernel's half */
  default: {
    uint64_t p = P(ours[random64() % (sizeof(ours) / sizeof(ours[0]))]);
    return p + (random64() % 4 == 0 ? random64() % 64 : 0);
  }
  }
}

static int64_t random_length(void) {
  switch (random64() % 4) {
  case 0: return -(int64_t)(random64() >> 1);
  case 1: return (int64_t)(random64() >> 1);
  case 2: return (int64_t)(random64() % 100000);
  default: return (int64_t)(random64() % 16);
  }
}

static void scramble(void) {
  for (int i = 0; i < 3; i++) {
    frames[i].code = random_pointer();
    frames[i].previous = random_pointer();
    frames[i].instr = random64() % 2 ? random_pointer() : random64();
    frames[i].owner = (uint8_t)random64();
    frames[i].is_entry = (uint8_t)random64();
    for (int k = 0; k < 3; k++)
      frames[i].localsplus[k] = random_pointer();
    codes[i].type = random64() % 4 ? P(&type_code) : random_pointer();
    codes[i].filename = random_pointer();
    codes[i].name = random_pointer();
    codes[i].qualname = random_pointer();
    codes[i].linetable = random_pointer();
    codes[i].varnames = random_pointer();
    codes[i].firstlineno = (int32_t)random64();
    codes[i].nlocals = (int32_t)random64();
    codes[i].firsttraceable = (int32_t)(random64() % 16) - 8;
  }
  for (int i = 0; i < 8; i++) {
    strs[i].length = random_length();
    strs[i].state = (uint32_t)random64();
    strs[i].type = random64() % 4 ? P(&type_str) : random_pointer();
    for (size_t k = 0; k < sizeof(strs[i].data); k++)
      strs[i].data[k] = (char)random64();
  }
  linetable.size = random_length();
  for (size_t k = 0; k < sizeof(linetable.data); k++)
    linetable.data[k] = (uint8_t)random64();
  varnames.size = random_length();
  for (int k = 0; k < 4; k++)
    varnames.items[k] = random_pointer();
  n_value.size = random_length();
  big_value.size = random_length();
  n_value.digits[0] = (uint32_t)random64();
  tstate.next = random64() % 3 ? 0 : random_pointer();
  tstate.frame = random_pointer();
  tstate.native_id =
      random64() % 2 ? (uint64_t)syscall(SYS_gettid) : random64();
  interp.threads_head = random64() % 8 ? P(&tstate) : random_pointer();
  gil.last_holder = random_pointer();
  gil.locked = (int32_t)random64();
}

/* A chain of `n` frames (each its own), innermost returned. */
static struct fframe *deep_chain(size_t n) {
  struct fframe *chain = calloc(n, sizeof(*chain));
  if (!chain)
    exit(3);
  for (size_t i = 0; i < n; i++) {
    chain[i] = frames[2];
    chain[i].previous = i ? P(&chain[i - 1]) : 0;
  }
  return &chain[n - 1];
}

static void many_threads(size_t n) {
  struct ftstate *states = calloc(n, sizeof(*states));
  if (!states)
    exit(3);
  for (size_t i = 0; i < n; i++) {
    states[i] = (struct ftstate){.thread_id = 1000 + i,
                                 .next = i + 1 < n ? P(&states[i + 1]) : 0};
  }
  states[0] = tstate;
  states[0].next = n > 1 ? P(&states[1]) : 0;
  interp.threads_head = P(&states[0]);
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

int main(int argc, char **argv) {
  if (argc < 2)
    usage("usage: fake_python MODE [--stalls N] [--stall-ms N] [--gap-ms N] "
          "[watch options]");
  const char *mode = argv[1];
  uint32_t stalls = 3, stall_ms = 150, gap_ms = 50;
  perpetuo_watch_options_t opts;
  perpetuo_watch_options_init(&opts);
  opts.traceback_suppress_ms = 0;
  for (int i = 2; i < argc;) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    int used = watch_option(argv[i], value, &opts);
    if (!used && value) {
      uint32_t *target = !strcmp(argv[i], "--stalls")     ? &stalls
                         : !strcmp(argv[i], "--stall-ms") ? &stall_ms
                         : !strcmp(argv[i], "--gap-ms")   ? &gap_ms
                                                          : NULL;
      if (target) {
        *target = parse_u32(value);
        used = 2;
      }
    }
    if (!used)
      usage("unknown option");
    i += used;
  }

  build_sound();
  struct perpetuo__pylayout layout;
  fill_layout(&layout);
  if (!strcmp(mode, "frame_cycle")) {
    frames[0].previous = P(&frames[2]);
  } else if (!strcmp(mode, "thread_cycle")) {
    tstate.next = P(&tstate);
  } else if (!strcmp(mode, "deep")) {
    tstate.frame = P(deep_chain(3000));
  } else if (!strcmp(mode, "threads")) {
    many_threads(3000);
  } else if (!strcmp(mode, "bad_layout")) {
    layout.frame_size = 100000;
  } else if (!strcmp(mode, "bad_offset")) {
    layout.code_nlocals = 0x7ffffffc;
  } else if (!strcmp(mode, "bad_traceable")) {
    layout.frame_format = PERPETUO__PYFRAME_OBJECT_UNITS;
    layout.code_firsttraceable = 1100;
  } else if (!strcmp(mode, "bad_header")) {
    layout.tuple_items = 8;
  } else if (strcmp(mode, "ok") && strcmp(mode, "garbage")) {
    usage("unknown mode");
  }
  check(perpetuo_runtime_layout_publish(&layout, sizeof(layout)), "publish");

  perpetuo_tracker_t *tracker;
  perpetuo_tracker_options_t topts;
  perpetuo_tracker_options_init(&topts);
  topts.initially_active = 0;
  check(perpetuo_tracker_new(&tracker, "fake python", &topts), "tracker");
  check(perpetuo_watch_start(&opts), "watch");
  say("READY");
  for (uint32_t n = 1; n <= stalls; n++) {
    if (!strcmp(mode, "garbage"))
      scramble();
    say("STALL %u BEGIN %" PRId64, n, mono_ns());
    perpetuo_tracker_enter(tracker);
    sleep_ms(stall_ms);
    perpetuo_tracker_leave(tracker);
    say("STALL %u END %" PRId64, n, mono_ns());
    sleep_ms(gap_ms);
  }
  perpetuo_watch_stop();
  say("DONE %u", stalls);
  return 0;
}
