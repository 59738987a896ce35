/*
 * StallTracker: one libperpetuo tracker, the original perpetuo's API.
 * A new tracker starts active, as in the original.
 */
#include "_perpetuo.h"

#include <errno.h>
#include <string.h>

typedef struct {
  PyObject_HEAD perpetuo_tracker_t *tracker; /* NULL once closed */
  PyObject *name;
} TrackerObject;

perpetuo_tracker_t *perpetuo_py_tracker_new(PyObject *name,
                                            PyObject *relevant_thread,
                                            int initially_active) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "name must be a str, not %.100s",
                 Py_TYPE(name)->tp_name);
    return NULL;
  }
  Py_ssize_t len;
  const char *utf8 = PyUnicode_AsUTF8AndSize(name, &len);
  if (!utf8)
    return NULL;
  if (len == 0 || (size_t)len != strlen(utf8)) {
    PyErr_SetString(PyExc_ValueError,
                    len ? "name must not contain NUL characters"
                        : "name must not be empty");
    return NULL;
  }
  perpetuo_tracker_options_t o;
  perpetuo_tracker_options_init(&o);
  o.initially_active = initially_active;
  if (PyUnicode_Check(relevant_thread)) {
    if (PyUnicode_CompareWithASCIIString(relevant_thread, "gil") != 0) {
      PyErr_SetString(PyExc_ValueError,
                      "relevant_thread must be a thread ident "
                      "(threading.get_ident()) or \"gil\"");
      return NULL;
    }
    o.thread_hint = PERPETUO_THREAD_GIL_HOLDER;
  } else if (PyLong_Check(relevant_thread) && !PyBool_Check(relevant_thread)) {
    unsigned long long ident = PyLong_AsUnsignedLongLong(relevant_thread);
    if ((ident == (unsigned long long)-1 && PyErr_Occurred()) || ident == 0) {
      PyErr_Clear();
      PyErr_SetString(PyExc_ValueError,
                      "relevant_thread must be a thread ident "
                      "(threading.get_ident(), a positive int) or \"gil\"");
      return NULL;
    }
    o.thread_hint = PERPETUO_THREAD_PTHREAD;
    o.thread_id = ident;
  } else {
    PyErr_Format(PyExc_TypeError,
                 "relevant_thread must be an int (a thread ident) or \"gil\", "
                 "not %.100s",
                 Py_TYPE(relevant_thread)->tp_name);
    return NULL;
  }
  perpetuo_tracker_t *t;
  int err = perpetuo_tracker_new(&t, utf8, &o);
  if (err) {
    perpetuo_py_error(err, NULL);
    return NULL;
  }
  return t;
}

static PyObject *tracker_new(PyTypeObject *type, PyObject *args,
                             PyObject *kwargs) {
  static char *keywords[] = {"name", "relevant_thread", NULL};
  PyObject *name, *relevant_thread;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:StallTracker", keywords,
                                   &name, &relevant_thread))
    return NULL;
  TrackerObject *self = (TrackerObject *)type->tp_alloc(type, 0);
  if (!self)
    return NULL;
  self->tracker = perpetuo_py_tracker_new(name, relevant_thread, 1);
  if (!self->tracker) {
    Py_DECREF(self);
    return NULL;
  }
  Py_INCREF(name);
  self->name = name;
  return (PyObject *)self;
}

void perpetuo_py_tracker_release(perpetuo_tracker_t **tracker) {
  if (!*tracker)
    return;
  if (perpetuo_tracker_is_active(*tracker) == 1)
    perpetuo_tracker_leave(*tracker);
  perpetuo_tracker_free(*tracker);
  *tracker = NULL;
}

static void release(TrackerObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
}

static void tracker_dealloc(TrackerObject *self) {
  release(self);
  Py_XDECREF(self->name);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_open(TrackerObject *self) {
  if (self->tracker)
    return 0;
  PyErr_SetString(PyExc_RuntimeError, "StallTracker is closed");
  return -1;
}

static PyObject *tracker_go_active(TrackerObject *self, PyObject *unused) {
  if (check_open(self))
    return NULL;
  if (perpetuo_tracker_enter(self->tracker) == PERPETUO_EACTIVE) {
    PyErr_SetString(PyExc_RuntimeError, "Already active");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *tracker_go_idle(TrackerObject *self, PyObject *unused) {
  if (check_open(self))
    return NULL;
  if (perpetuo_tracker_leave(self->tracker) == PERPETUO_EIDLE) {
    PyErr_SetString(PyExc_RuntimeError, "Already idle");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *tracker_is_active(TrackerObject *self, PyObject *unused) {
  if (check_open(self))
    return NULL;
  return PyBool_FromLong(perpetuo_tracker_is_active(self->tracker));
}

static PyObject *tracker_counter_address(TrackerObject *self,
                                         PyObject *unused) {
  if (check_open(self))
    return NULL;
  return PyLong_FromVoidPtr(perpetuo_tracker_counter(self->tracker));
}

static PyObject *tracker_close(TrackerObject *self, PyObject *unused) {
  if (check_open(self))
    return NULL;
  release(self);
  Py_RETURN_NONE;
}

/* For a tracker handed to C code that outlives every Python reference
 * (sys._set_stall_counter): it must never be freed. */
static PyObject *tracker_leak(TrackerObject *self, PyObject *unused) {
  Py_INCREF(self);
  Py_RETURN_NONE;
}

static PyObject *tracker_enter(TrackerObject *self, PyObject *unused) {
  if (check_open(self))
    return NULL;
  if (!perpetuo_tracker_is_active(self->tracker))
    perpetuo_tracker_enter(self->tracker);
  Py_INCREF(self);
  return (PyObject *)self;
}

static PyObject *tracker_exit(TrackerObject *self, PyObject *args) {
  if (self->tracker && perpetuo_tracker_is_active(self->tracker))
    perpetuo_tracker_leave(self->tracker);
  Py_RETURN_FALSE;
}

static PyObject *tracker_get_name(TrackerObject *self, void *closure) {
  Py_INCREF(self->name);
  return self->name;
}

static PyObject *tracker_get_closed(TrackerObject *self, void *closure) {
  return PyBool_FromLong(self->tracker == NULL);
}

static PyObject *tracker_repr(TrackerObject *self) {
  if (!self->tracker)
    return PyUnicode_FromFormat("<StallTracker %R closed>", self->name);
  return PyUnicode_FromFormat(
      "<StallTracker %R %s>", self->name,
      perpetuo_tracker_is_active(self->tracker) ? "active" : "idle");
}

static PyMethodDef tracker_methods[] = {
    {"go_active", (PyCFunction)tracker_go_active, METH_NOARGS,
     "Mark the tracker active; RuntimeError if it already is."},
    {"go_idle", (PyCFunction)tracker_go_idle, METH_NOARGS,
     "Mark the tracker idle; RuntimeError if it already is."},
    {"is_active", (PyCFunction)tracker_is_active, METH_NOARGS,
     "Whether the tracker is active."},
    {"counter_address", (PyCFunction)tracker_counter_address, METH_NOARGS,
     "The address of the tracker's 64-bit counter."},
    {"close", (PyCFunction)tracker_close, METH_NOARGS,
     "Release the tracker; any later use raises RuntimeError."},
    {"_leak", (PyCFunction)tracker_leak, METH_NOARGS,
     "Keep the tracker alive for ever."},
    {"__enter__", (PyCFunction)tracker_enter, METH_NOARGS,
     "Go active (if idle) for the block."},
    {"__exit__", (PyCFunction)tracker_exit, METH_VARARGS,
     "Go idle after the block."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tracker_getset[] = {
    {"name", (getter)tracker_get_name, NULL, "The tracker's name.", NULL},
    {"closed", (getter)tracker_get_closed, NULL, "Whether close() was called.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject perpetuo_py_tracker_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.StallTracker",
    .tp_basicsize = sizeof(TrackerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "StallTracker(name, relevant_thread)\n--\n\n"
              "A stall tracker: active while its thread holds something "
              "others need.\n`relevant_thread` is the thread to blame "
              "(threading.get_ident()) or \"gil\".\nA new tracker is active.",
    .tp_new = tracker_new,
    .tp_dealloc = (destructor)tracker_dealloc,
    .tp_repr = (reprfunc)tracker_repr,
    .tp_methods = tracker_methods,
    .tp_getset = tracker_getset,
};
