/*
 * The Python layout block: what the watcher needs to read a CPython
 * interpreter's threads and frames from outside, published into the region
 * (at header.python_offset) by the Python extension, which computes every
 * offset with offsetof() against the running interpreter's own internal
 * headers. The watcher decodes nothing by version tables of its own: it
 * follows these numbers, and only the formats (line tables, frame kinds,
 * int representation) are named here by number.
 *
 * Shared by the extension (the writer) and the watcher (the reader); the
 * watcher treats every field as untrusted. docs/protocol.md describes it.
 */
#ifndef PERPETUO_PYLAYOUT_H
#define PERPETUO_PYLAYOUT_H

#include <stdint.h>

/* `ready` holds this once the rest is written (release store). */
#define PERPETUO__PYLAYOUT_READY 0x50594c31u /* "1LYP" in memory */
#define PERPETUO__PYLAYOUT_VERSION 1

/* How a frame is laid out and where it is. */
enum perpetuo__pyframe_format {
  /* PyFrameObject; `frame_lasti` an int: a byte offset (3.9) */
  PERPETUO__PYFRAME_OBJECT_BYTES = 1,
  /* PyFrameObject; `frame_lasti` an int counting code units (3.10) */
  PERPETUO__PYFRAME_OBJECT_UNITS = 2,
  /* _PyInterpreterFrame; `frame_lasti` a pointer to the last instruction
   * started (prev_instr, 3.11 and 3.12) */
  PERPETUO__PYFRAME_INTERP_PREV = 3,
  /* _PyInterpreterFrame; `frame_lasti` a pointer to the instruction being
   * run (instr_ptr, 3.13) */
  PERPETUO__PYFRAME_INTERP_CURRENT = 4
};

enum perpetuo__pylines_format {
  PERPETUO__PYLINES_LNOTAB = 1, /* co_lnotab, 3.9 */
  PERPETUO__PYLINES_310 = 2,    /* co_linetable, 3.10 */
  PERPETUO__PYLINES_311 = 3     /* the location table, 3.11 and later */
};

enum perpetuo__pylong_format {
  PERPETUO__PYLONG_SIZE = 1, /* signed ob_size: sign and digit count */
  PERPETUO__PYLONG_TAG = 2   /* lv_tag: count << 3 | sign (0 +, 1 zero, 2 -) */
};

/*
 * Which interpreter wrote the block. Only a CPython with its layout (0, what
 * every block had before the field was named) fills in the rest; any other
 * value comes with the identity fields alone (ready, size, version,
 * python_version), for the watcher to say why it shows no Python stacks.
 */
enum perpetuo__pyimpl {
  PERPETUO__PYIMPL_CPYTHON = 0,
  /* A CPython whose layout nobody could compute: the package runs there on
   * its cffi backend, without the C extension (whose internal headers
   * give the offsets). */
  PERPETUO__PYIMPL_CPYTHON_UNKNOWN = 1,
  PERPETUO__PYIMPL_PYPY = 2 /* PyPy: its frames are not CPython's */
};

/* Offsets are bytes into the object, -1 for a field this version lacks. */
struct perpetuo__pylayout {
  uint32_t ready;           /* PERPETUO__PYLAYOUT_READY once complete */
  uint32_t size;            /* sizeof this structure, as its writer knew it */
  uint32_t version;         /* PERPETUO__PYLAYOUT_VERSION */
  uint32_t python_version;  /* PY_VERSION_HEX of the running interpreter */
  uint32_t frame_format;    /* enum perpetuo__pyframe_format */
  uint32_t lines_format;    /* enum perpetuo__pylines_format */
  uint32_t long_format;     /* enum perpetuo__pylong_format */
  uint32_t long_digit_bits; /* PyLong_SHIFT */
  uint32_t long_digit_size; /* sizeof(digit) */
  uint32_t unicode_kind_shift;  /* the state word's kind bits: */
  uint32_t unicode_kind_mask;   /*   (state >> shift) & mask */
  uint32_t unicode_compact_bit; /* bit numbers in the state word */
  uint32_t unicode_ascii_bit;
  uint32_t implementation; /* enum perpetuo__pyimpl */

  /* Addresses in the target. */
  uint64_t runtime;     /* &_PyRuntime */
  uint64_t interp;      /* the main interpreter */
  uint64_t gil;         /* its GIL (struct _gil_runtime_state) */
  uint64_t main_thread; /* the main thread's ident (a value, not an address) */
  uint64_t type_code;   /* &PyCode_Type, and so on: types are compared by */
  uint64_t type_frame;  /*   address, which is exact for the base types */
  uint64_t type_unicode;
  uint64_t type_bytes;
  uint64_t type_long;
  uint64_t type_bool;
  uint64_t type_float;
  uint64_t type_tuple;
  uint64_t type_list;
  uint64_t type_dict;
  uint64_t type_set;
  uint64_t type_frozenset;
  uint64_t type_cell;
  uint64_t none;  /* &_Py_NoneStruct */
  uint64_t true_; /* &_Py_TrueStruct */
  uint64_t false_;
  uint64_t reserved1[4];

  /* Interpreter and thread states. */
  int32_t interp_threads_head; /* first thread state */
  int32_t tstate_next;
  int32_t tstate_thread_id;        /* unsigned long: the pthread_t */
  int32_t tstate_native_thread_id; /* the OS thread id (3.11+) */
  int32_t tstate_frame;            /* the innermost frame, or its holder: */
  int32_t tstate_frame_holder;     /* if >= 0, tstate_frame points to a struct
                                      (3.11/3.12's _PyCFrame) whose field at
                                      this offset is the frame */
  int32_t tstate_size;             /* bytes to read for the fields above */
  int32_t gil_locked;              /* int */
  int32_t gil_last_holder;         /* thread state pointer */
  int32_t gil_switch_number;       /* unsigned long */

  /* Frames. */
  int32_t frame_previous; /* the caller's frame */
  int32_t frame_code;     /* code object (3.13: any object; check) */
  int32_t frame_lasti;    /* see enum perpetuo__pyframe_format */
  int32_t frame_localsplus;
  int32_t frame_owner;           /* char (3.11+) */
  int32_t frame_is_entry;        /* bool (3.11 only) */
  int32_t frame_owner_cstack;    /* the owner value of C shim frames (3.12+) */
  int32_t frame_owner_generator; /* the owner value of generator frames */
  int32_t frame_size;            /* bytes to read: up to localsplus */

  /* Code objects. */
  int32_t code_filename;
  int32_t code_name;
  int32_t code_qualname;       /* 3.11+ */
  int32_t code_firstlineno;    /* int */
  int32_t code_linetable;      /* bytes */
  int32_t code_code_adaptive;  /* 3.11+: the instructions, inline */
  int32_t code_firsttraceable; /* int (3.11+): frames before it are new */
  int32_t code_varnames;       /* tuple: co_varnames, co_localsplusnames */
  int32_t code_nlocals;        /* int: co_nlocals, co_nlocalsplus */
  int32_t code_size;           /* bytes to read for the fields above */

  /* Other objects. */
  int32_t object_type;          /* ob_type */
  int32_t var_size;             /* ob_size of a PyVarObject (list, tuple) */
  int32_t tuple_items;          /* ob_item */
  int32_t bytes_size;           /* ob_size */
  int32_t bytes_data;           /* ob_sval */
  int32_t unicode_length;       /* length in code points */
  int32_t unicode_state;        /* u32 word holding the bit fields */
  int32_t unicode_ascii_data;   /* sizeof(PyASCIIObject) */
  int32_t unicode_compact_data; /* sizeof(PyCompactUnicodeObject) */
  int32_t long_size;            /* ob_size or lv_tag */
  int32_t long_digits;          /* ob_digit */
  int32_t float_value;          /* ob_fval */
  int32_t dict_used;            /* ma_used */
  int32_t set_used;             /* used */
  int32_t cell_ref;             /* ob_ref */
  int32_t type_name;            /* tp_name (a char *) */
  int32_t code_flags;           /* int co_flags; read if the mask below is */
  uint32_t code_flag_coroutine; /* CO_COROUTINE; 0: not published */
  uint32_t code_flags_async;    /* CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR */
  int32_t reserved2[4];
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct perpetuo__pylayout) <= 3840,
               "fits the region's Python block");
#endif

#endif
