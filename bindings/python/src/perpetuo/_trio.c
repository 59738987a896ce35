/*
 * The Trio instrument, in C: trio calls its hooks on every task step, so
 * they must not cost a Python frame each; trio finds hooks by attribute
 * name, so C methods serve.
 *
 * A stall is a task step that runs too long. Rather than going active and
 * idle around every step (two hooks a step, and trio's dispatch of a hook
 * costs several times what the hook does), each step's start ticks the run
 * loop's tracker (before_task_step: active if it was idle, +2 if it was
 * active: moving) and it goes idle only when trio waits for I/O
 * (before_io_wait, once a batch of steps). The counter then stands still
 * exactly while one step runs, or trio's own scheduling after it: the same
 * stalls, for little more than one hook a step.
 *
 * The tracker is created with the instrument, which instrument_trio() does
 * inside trio.run, in the middle of a task step: so it starts active, blames
 * the run's thread (by its Python ident), and a task that blocks right after
 * instrument_trio() in the same step is caught. It is named as the original
 * perpetuo names it, and released after the run.
 */
#include "_perpetuo.h"

#include <pythread.h>
#include <structmember.h>

typedef struct {
  PyObject_HEAD perpetuo_tracker_t *tracker;
  uint64_t *counter;         /* the tracker's, ticked inline */
  perpetuo_detail_t *detail; /* the stepping task's name, for reports */
  PyTypeObject *task_type;   /* whose `name` slot is at name_offset */
  Py_ssize_t name_offset;    /* -1: no slot to read it from cheaply */
  PyObject *run_context;     /* the run's thread's dict of trio's
                                GLOBAL_RUN_CONTEXT, or NULL */
} TrioInstrumentObject;

static PyObject *task_key; /* interned "task", as trio's attribute name is */

static int start_tracking(TrioInstrumentObject *self) {
  unsigned long ident = PyThread_get_thread_ident();
  /* The original's f"{ident:#_x}": hex digits grouped by four. */
  PyObject *number = PyLong_FromUnsignedLong(ident);
  PyObject *spec = PyUnicode_FromString("#_x");
  PyObject *hex = number && spec ? PyObject_Format(number, spec) : NULL;
  Py_XDECREF(number);
  Py_XDECREF(spec);
  if (!hex)
    return -1;
  PyObject *name = PyUnicode_FromFormat("Trio run loop (thread %U)", hex);
  Py_DECREF(hex);
  PyObject *thread = PyLong_FromUnsignedLong(ident);
  if (!name || !thread) {
    Py_XDECREF(name);
    Py_XDECREF(thread);
    return -1;
  }
  self->tracker = perpetuo_py_tracker_new(name, thread, 1);
  Py_DECREF(name);
  Py_DECREF(thread);
  if (!self->tracker)
    return -1;
  self->counter = perpetuo_tracker_counter(self->tracker);
  self->detail = perpetuo_tracker_detail(self->tracker);
  return 0;
}

/*
 * Where a task of this type keeps its name: trio's Task is an attrs class
 * with slots, so `name` is a member descriptor at a fixed offset, and
 * reading it is one load per step, not an attribute lookup.
 */
static void learn_task_type(TrioInstrumentObject *self, PyTypeObject *type) {
  Py_XDECREF(self->task_type);
  Py_INCREF(type);
  self->task_type = type;
  self->name_offset = -1;
  PyObject *descr = PyObject_GetAttrString((PyObject *)type, "name");
  if (!descr) {
    PyErr_Clear();
    return;
  }
  if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if ((member->type == T_OBJECT || member->type == T_OBJECT_EX) &&
        member->offset > 0)
      self->name_offset = member->offset;
  }
  Py_DECREF(descr);
}

/* Publishes the task's name as the tracker's detail: one load and three
 * stores per step once the task type is known. */
static void publish_task(TrioInstrumentObject *self, PyObject *task) {
  if (Py_TYPE(task) != self->task_type)
    learn_task_type(self, Py_TYPE(task));
  PyObject *name = self->name_offset < 0
                       ? NULL
                       : *(PyObject **)((char *)task + self->name_offset);
  Py_ssize_t length = 0;
  const char *utf8 = name && PyUnicode_Check(name)
                         ? PyUnicode_AsUTF8AndSize(name, &length)
                         : NULL;
  if (!utf8)
    PyErr_Clear();
  perpetuo_detail_set(self->detail, utf8, utf8 ? (size_t)length : 0);
}

static void stop_tracking(TrioInstrumentObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
  self->counter = NULL;
  self->detail = NULL;
  /* It holds the runner, which holds us: let the run go now. */
  Py_CLEAR(self->run_context);
}

/* A step begins: active (if not already), and moving. One store. */
static void step(TrioInstrumentObject *self, PyObject *task) {
  uint64_t c = __atomic_load_n(self->counter, __ATOMIC_RELAXED);
  __atomic_store_n(self->counter, c + ((c & 1) ? 2 : 1), __ATOMIC_RELEASE);
  publish_task(self, task);
}

static PyObject *before_task_step(TrioInstrumentObject *self, PyObject *task) {
  if (!self->tracker) {
    if (start_tracking(self)) /* a new tracker starts active */
      return NULL;
    publish_task(self, task);
  } else {
    step(self, task);
  }
  Py_RETURN_NONE;
}

int perpetuo_py_trio_step(PyObject *instrument, PyObject *task) {
  if (!Py_IS_TYPE(instrument, &perpetuo_py_trio_instrument_type))
    return 0;
  TrioInstrumentObject *self = (TrioInstrumentObject *)instrument;
  if (!self->tracker)
    return 0;
  step(self, task);
  return 1;
}

/* instrument_trio() hands us the run's context once it has checked that
 * trio keeps the stepping task there (see _trio_dispatch.c). */
static PyObject *read_task_from(TrioInstrumentObject *self, PyObject *context) {
  if (!PyDict_CheckExact(context)) {
    PyErr_Format(PyExc_TypeError, "_read_task_from() needs a dict, not %.100s",
                 Py_TYPE(context)->tp_name);
    return NULL;
  }
  if (self->tracker) {
    Py_INCREF(context);
    Py_XSETREF(self->run_context, context);
  }
  Py_RETURN_NONE;
}

/*
 * Both modes go idle in trio's I/O waits. The io_waits mode has only these
 * two hooks: active from the end of one I/O wait to the start of the next,
 * so it also reports a batch of many short steps that together hold the
 * loop past the threshold; it cannot name the task.
 */
static void go_idle(TrioInstrumentObject *self) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
}

static void go_active(TrioInstrumentObject *self) {
  if (self->tracker && !perpetuo_counter_is_active(self->counter))
    perpetuo_counter_enter(self->counter);
}

static PyObject *before_io_wait(TrioInstrumentObject *self, PyObject *timeout) {
  go_idle(self);
  Py_RETURN_NONE;
}

static PyObject *after_io_wait(TrioInstrumentObject *self, PyObject *timeout) {
  if (!self->tracker && start_tracking(self))
    return NULL;
  go_active(self);
  Py_RETURN_NONE;
}

static int is_ours(PyObject *instrument) {
  return Py_IS_TYPE(instrument, &perpetuo_py_trio_instrument_type) ||
         Py_IS_TYPE(instrument, &perpetuo_py_trio_io_wait_instrument_type);
}

int perpetuo_py_trio_run_hook(PyObject *instrument,
                              enum perpetuo_py_trio_hook hook) {
  if (!is_ours(instrument))
    return 0;
  TrioInstrumentObject *self = (TrioInstrumentObject *)instrument;
  if (!self->tracker)
    return 0; /* the method, called by trio, will say what to do */
  switch (hook) {
  case PERPETUO_PY_TRIO_BEFORE_TASK_STEP: {
    if (!self->run_context ||
        !Py_IS_TYPE(instrument, &perpetuo_py_trio_instrument_type))
      return 0;
    PyObject *task = PyDict_GetItemWithError(self->run_context, task_key);
    if (!task) {
      PyErr_Clear();
      return 0;
    }
    Py_INCREF(task); /* learning a new task type runs Python code */
    step(self, task);
    Py_DECREF(task);
    return 1;
  }
  case PERPETUO_PY_TRIO_BEFORE_IO_WAIT: go_idle(self); return 1;
  case PERPETUO_PY_TRIO_AFTER_IO_WAIT:
    if (!Py_IS_TYPE(instrument, &perpetuo_py_trio_io_wait_instrument_type))
      return 0;
    go_active(self);
    return 1;
  }
  return 0;
}

static PyObject *after_run(TrioInstrumentObject *self, PyObject *unused) {
  stop_tracking(self);
  Py_RETURN_NONE;
}

static PyObject *get_tracking(TrioInstrumentObject *self, void *closure) {
  return PyBool_FromLong(self->tracker != NULL);
}

static PyObject *counter_address(TrioInstrumentObject *self, PyObject *unused) {
  if (!self->tracker) {
    PyErr_SetString(PyExc_RuntimeError, "Not tracking");
    return NULL;
  }
  return PyLong_FromVoidPtr(self->counter);
}

static PyObject *instrument_new(PyTypeObject *type, PyObject *args,
                                PyObject *kwargs) {
  if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
    PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
    return NULL;
  }
  TrioInstrumentObject *self = (TrioInstrumentObject *)type->tp_alloc(type, 0);
  if (self)
    self->name_offset = -1;
  if (self && start_tracking(self)) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static int instrument_traverse(TrioInstrumentObject *self, visitproc visit,
                               void *arg) {
  Py_VISIT(self->task_type);
  Py_VISIT(self->run_context);
  return 0;
}

/* A run that never reached after_run (its runner dropped by a failure) may
 * leave us in a cycle through the run's context. */
static int instrument_clear(TrioInstrumentObject *self) {
  Py_CLEAR(self->run_context);
  Py_CLEAR(self->task_type);
  return 0;
}

static void instrument_dealloc(TrioInstrumentObject *self) {
  PyObject_GC_UnTrack(self);
  stop_tracking(self);
  Py_XDECREF(self->task_type);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef instrument_methods[] = {
    {"before_task_step", (PyCFunction)before_task_step, METH_O,
     "trio hook: a step begins: the run loop is active, and moving."},
    {"before_io_wait", (PyCFunction)before_io_wait, METH_O,
     "trio hook: the run loop is about to wait for I/O: idle."},
    {"after_run", (PyCFunction)after_run, METH_NOARGS,
     "trio hook: the run is over; release the tracker."},
    {"_read_task_from", (PyCFunction)read_task_from, METH_O,
     "_read_task_from(context): the run thread's dict of trio's "
     "GLOBAL_RUN_CONTEXT, where a step's task is found when trio's "
     "instrument group counts the step itself (until after_run)."},
    {"counter_address", (PyCFunction)counter_address, METH_NOARGS,
     "The address of the run's tracker's 64-bit counter."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef instrument_getset[] = {
    {"tracking", (getter)get_tracking, NULL,
     "Whether the instrument holds a tracker now.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef io_wait_methods[] = {
    {"before_io_wait", (PyCFunction)before_io_wait, METH_O,
     "trio hook: the run loop is about to wait for I/O: idle."},
    {"after_io_wait", (PyCFunction)after_io_wait, METH_O,
     "trio hook: the run loop woke up: active."},
    {"after_run", (PyCFunction)after_run, METH_NOARGS,
     "trio hook: the run is over; release the tracker."},
    {"counter_address", (PyCFunction)counter_address, METH_NOARGS,
     "The address of the run's tracker's 64-bit counter."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject perpetuo_py_trio_io_wait_instrument_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.TrioIoWaitInstrument",
    .tp_basicsize = sizeof(TrioInstrumentObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A trio.abc.Instrument that keeps a StallTracker active from "
              "one I/O wait to the next.",
    .tp_new = instrument_new,
    .tp_dealloc = (destructor)instrument_dealloc,
    .tp_traverse = (traverseproc)instrument_traverse,
    .tp_clear = (inquiry)instrument_clear,
    .tp_methods = io_wait_methods,
    .tp_getset = instrument_getset,
};

PyTypeObject perpetuo_py_trio_instrument_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.TrioInstrument",
    .tp_basicsize = sizeof(TrioInstrumentObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A trio.abc.Instrument that drives a StallTracker for the run "
              "it is added to.",
    .tp_new = instrument_new,
    .tp_dealloc = (destructor)instrument_dealloc,
    .tp_traverse = (traverseproc)instrument_traverse,
    .tp_clear = (inquiry)instrument_clear,
    .tp_methods = instrument_methods,
    .tp_getset = instrument_getset,
};

int perpetuo_py_trio_init(void) {
  task_key = PyUnicode_InternFromString("task");
  if (!task_key)
    return -1;
  return PyType_Ready(&perpetuo_py_trio_instrument_type) < 0 ||
                 PyType_Ready(&perpetuo_py_trio_io_wait_instrument_type) < 0
             ? -1
             : 0;
}
