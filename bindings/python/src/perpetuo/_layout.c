/*
 * The Python layout block (libperpetuo/pylayout.h): where this interpreter
 * keeps its threads, frames, code objects and strings, so that the watcher
 * can read the Python stacks of this process from outside while it is
 * stopped. Every number comes from the compiler, from this interpreter's
 * own internal headers, which is why this file alone is built with
 * Py_BUILD_CORE; it only takes addresses and offsets, and calls nothing
 * internal.
 */
#define Py_BUILD_CORE 1
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>

#include <frameobject.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#if PY_VERSION_HEX >= 0x030B0000
#include <internal/pycore_frame.h>
#else
#include <internal/pycore_gil.h>
#endif
#if PY_VERSION_HEX >= 0x030D0000
#include <internal/pycore_ceval.h>
#endif

#include <perpetuo.h>

#include "_layout.h"
#include "pylayout.h"

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030E0000
#error "perpetuo reads the frames of CPython 3.9 to 3.13"
#endif

#define OFF(type, field) ((int32_t)offsetof(type, field))
#define END(type, field)                                                       \
  ((int32_t)(offsetof(type, field) + sizeof(((type *)0)->field)))
#define MAX2(a, b) ((a) > (b) ? (a) : (b))

/* The bits of a str's `state` word that setting one of its bit fields, in
 * an otherwise zero object, sets. */
#define STATE_BITS(field, value)                                               \
  __extension__({                                                              \
    PyASCIIObject probe;                                                       \
    uint32_t word;                                                             \
    memset(&probe, 0, sizeof(probe));                                          \
    probe.state.field = (value);                                               \
    memcpy(&word, (char *)&probe + offsetof(PyASCIIObject, state), 4);         \
    word;                                                                      \
  })

/* Where the bit fields of a str's `state` lie. */
static void unicode_state_bits(struct perpetuo__pylayout *l) {
  uint32_t kind = STATE_BITS(kind, 7);
  l->unicode_kind_shift = kind ? (uint32_t)__builtin_ctz(kind) : 0;
  l->unicode_kind_mask = kind >> l->unicode_kind_shift;
  l->unicode_compact_bit = (uint32_t)__builtin_ctz(STATE_BITS(compact, 1));
  l->unicode_ascii_bit = (uint32_t)__builtin_ctz(STATE_BITS(ascii, 1));
}

static void threads(struct perpetuo__pylayout *l) {
  PyInterpreterState *interp = _PyRuntime.interpreters.main;
  l->runtime = (uintptr_t)&_PyRuntime;
  l->interp = (uintptr_t)interp;
  l->main_thread = (uint64_t)_PyRuntime.main_thread;
#if PY_VERSION_HEX >= 0x030B0000
  l->interp_threads_head = OFF(PyInterpreterState, threads.head);
  l->tstate_native_thread_id = OFF(PyThreadState, native_thread_id);
#else
  l->interp_threads_head = OFF(PyInterpreterState, tstate_head);
  l->tstate_native_thread_id = -1;
#endif
  l->tstate_next = OFF(PyThreadState, next);
  l->tstate_thread_id = OFF(PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030D0000
  l->tstate_frame = OFF(PyThreadState, current_frame);
  l->tstate_frame_holder = -1;
#elif PY_VERSION_HEX >= 0x030B0000
  l->tstate_frame = OFF(PyThreadState, cframe);
  l->tstate_frame_holder = OFF(_PyCFrame, current_frame);
#else
  l->tstate_frame = OFF(PyThreadState, frame);
  l->tstate_frame_holder = -1;
#endif
  l->tstate_size =
      MAX2(MAX2(END(PyThreadState, next), END(PyThreadState, thread_id)),
           l->tstate_frame + 8);
#if PY_VERSION_HEX >= 0x030B0000
  l->tstate_size = MAX2(l->tstate_size, END(PyThreadState, native_thread_id));
#endif

#if PY_VERSION_HEX >= 0x030C0000
  struct _gil_runtime_state *gil = interp->ceval.gil;
#else
  struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
#endif
  l->gil = (uintptr_t)gil;
  l->gil_locked = OFF(struct _gil_runtime_state, locked);
  l->gil_last_holder = OFF(struct _gil_runtime_state, last_holder);
  l->gil_switch_number = OFF(struct _gil_runtime_state, switch_number);
}

static void frames(struct perpetuo__pylayout *l) {
  l->frame_owner_cstack = -1;
  l->frame_is_entry = -1;
  l->frame_owner = -1;
  l->frame_owner_generator = -1;
#if PY_VERSION_HEX >= 0x030B0000
  typedef struct _PyInterpreterFrame F;
  l->frame_previous = OFF(F, previous);
  l->frame_localsplus = OFF(F, localsplus);
  l->frame_owner = OFF(F, owner);
  l->frame_owner_generator = FRAME_OWNED_BY_GENERATOR;
#if PY_VERSION_HEX >= 0x030D0000
  l->frame_format = PERPETUO__PYFRAME_INTERP_CURRENT;
  l->frame_code = OFF(F, f_executable);
  l->frame_lasti = OFF(F, instr_ptr);
#else
  l->frame_format = PERPETUO__PYFRAME_INTERP_PREV;
  l->frame_code = OFF(F, f_code);
  l->frame_lasti = OFF(F, prev_instr);
#endif
#if PY_VERSION_HEX >= 0x030C0000
  l->frame_owner_cstack = FRAME_OWNED_BY_CSTACK;
#else
  l->frame_is_entry = OFF(F, is_entry);
#endif
  l->frame_size = OFF(F, localsplus);
#else
  l->frame_format = PY_VERSION_HEX >= 0x030A0000
                        ? PERPETUO__PYFRAME_OBJECT_UNITS
                        : PERPETUO__PYFRAME_OBJECT_BYTES;
  l->frame_previous = OFF(PyFrameObject, f_back);
  l->frame_code = OFF(PyFrameObject, f_code);
  l->frame_lasti = OFF(PyFrameObject, f_lasti);
  l->frame_localsplus = OFF(PyFrameObject, f_localsplus);
  l->frame_size = OFF(PyFrameObject, f_localsplus);
#endif
}

static void code(struct perpetuo__pylayout *l) {
  l->code_filename = OFF(PyCodeObject, co_filename);
  l->code_name = OFF(PyCodeObject, co_name);
  l->code_firstlineno = OFF(PyCodeObject, co_firstlineno);
  l->code_flags = OFF(PyCodeObject, co_flags);
  l->code_flag_coroutine = CO_COROUTINE;
  l->code_flags_async = CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR;
  l->code_qualname = -1;
  l->code_code_adaptive = -1;
  l->code_firsttraceable = -1;
#if PY_VERSION_HEX >= 0x030B0000
  l->lines_format = PERPETUO__PYLINES_311;
  l->code_qualname = OFF(PyCodeObject, co_qualname);
  l->code_linetable = OFF(PyCodeObject, co_linetable);
  l->code_code_adaptive = OFF(PyCodeObject, co_code_adaptive);
  l->code_firsttraceable = OFF(PyCodeObject, _co_firsttraceable);
  l->code_varnames = OFF(PyCodeObject, co_localsplusnames);
  l->code_nlocals = OFF(PyCodeObject, co_nlocalsplus);
  l->code_size = OFF(PyCodeObject, co_code_adaptive);
#else
#if PY_VERSION_HEX >= 0x030A0000
  l->lines_format = PERPETUO__PYLINES_310;
  l->code_linetable = OFF(PyCodeObject, co_linetable);
#else
  l->lines_format = PERPETUO__PYLINES_LNOTAB;
  l->code_linetable = OFF(PyCodeObject, co_lnotab);
#endif
  l->code_varnames = OFF(PyCodeObject, co_varnames);
  l->code_nlocals = OFF(PyCodeObject, co_nlocals);
  l->code_size = (int32_t)sizeof(PyCodeObject);
#endif
}

static void objects(struct perpetuo__pylayout *l) {
  l->type_code = (uintptr_t)&PyCode_Type;
  l->type_frame = (uintptr_t)&PyFrame_Type;
  l->type_unicode = (uintptr_t)&PyUnicode_Type;
  l->type_bytes = (uintptr_t)&PyBytes_Type;
  l->type_long = (uintptr_t)&PyLong_Type;
  l->type_bool = (uintptr_t)&PyBool_Type;
  l->type_float = (uintptr_t)&PyFloat_Type;
  l->type_tuple = (uintptr_t)&PyTuple_Type;
  l->type_list = (uintptr_t)&PyList_Type;
  l->type_dict = (uintptr_t)&PyDict_Type;
  l->type_set = (uintptr_t)&PySet_Type;
  l->type_frozenset = (uintptr_t)&PyFrozenSet_Type;
  l->type_cell = (uintptr_t)&PyCell_Type;
  l->none = (uintptr_t)Py_None;
  l->true_ = (uintptr_t)Py_True;
  l->false_ = (uintptr_t)Py_False;

  l->object_type = OFF(PyObject, ob_type);
  l->var_size = OFF(PyVarObject, ob_size);
  l->tuple_items = OFF(PyTupleObject, ob_item);
  l->bytes_size = OFF(PyVarObject, ob_size);
  l->bytes_data = OFF(PyBytesObject, ob_sval);
  l->unicode_length = OFF(PyASCIIObject, length);
  l->unicode_state = OFF(PyASCIIObject, state);
  l->unicode_ascii_data = (int32_t)sizeof(PyASCIIObject);
  l->unicode_compact_data = (int32_t)sizeof(PyCompactUnicodeObject);
  unicode_state_bits(l);
  l->long_digit_bits = PyLong_SHIFT;
  l->long_digit_size = (uint32_t)sizeof(digit);
#if PY_VERSION_HEX >= 0x030C0000
  l->long_format = PERPETUO__PYLONG_TAG;
  l->long_size = OFF(PyLongObject, long_value.lv_tag);
  l->long_digits = OFF(PyLongObject, long_value.ob_digit);
#else
  l->long_format = PERPETUO__PYLONG_SIZE;
  l->long_size = OFF(PyVarObject, ob_size);
  l->long_digits = OFF(PyLongObject, ob_digit);
#endif
  l->float_value = OFF(PyFloatObject, ob_fval);
  l->dict_used = OFF(PyDictObject, ma_used);
  l->set_used = OFF(PySetObject, used);
  l->cell_ref = OFF(PyCellObject, ob_ref);
  l->type_name = OFF(PyTypeObject, tp_name);
}

void perpetuo_py_layout_fill(struct perpetuo__pylayout *l) {
  memset(l, 0, sizeof(*l));
  l->size = (uint32_t)sizeof(*l);
  l->version = PERPETUO__PYLAYOUT_VERSION;
  l->python_version = (uint32_t)PY_VERSION_HEX;
  threads(l);
  frames(l);
  code(l);
  objects(l);
  l->ready = PERPETUO__PYLAYOUT_READY;
}

void perpetuo_py_gil_contention(perpetuo_contention_t *rule) {
  PyInterpreterState *interp = _PyRuntime.interpreters.main;
  memset(rule, 0, sizeof(*rule));
#if PY_VERSION_HEX >= 0x030C0000
  struct _gil_runtime_state *gil = interp->ceval.gil;
#else
  struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
#endif
  rule->handovers = (uintptr_t)&gil->switch_number;
#if PY_VERSION_HEX >= 0x030D0000
  /* 3.13 asks the holder itself to let go: a bit of its eval breaker. */
  rule->flags = PERPETUO_CONTENTION_VIA_HOLDER;
  rule->holder = (uintptr_t)&gil->last_holder;
  rule->request = offsetof(PyThreadState, eval_breaker);
  rule->request_mask = _PY_GIL_DROP_REQUEST_BIT;
#else
  rule->request = (uintptr_t)&interp->ceval.gil_drop_request;
  rule->request_mask = ~0u;
#endif
}
