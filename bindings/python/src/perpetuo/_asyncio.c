/*
 * asyncio's selector event loops, instrumented at their one wait: the loop
 * calls self._selector.select(timeout) once an iteration, and runs its
 * callbacks around it. The loop's tracker goes idle before that wait and
 * active after it, so it is active exactly while the loop runs callbacks,
 * for one tick pair an iteration, whatever the number of callbacks.
 *
 * Where the selector is one of the poll-like ones (epoll, poll: the default
 * on Linux), whose select() waits in self._selector.poll(), AsyncioPoller
 * stands in for that poll object: a C type with the generic attribute
 * lookup, so the selector's Python code calls its poll() as cheaply as the
 * real one, and its poll() calls the real one C to C. Elsewhere
 * AsyncioSelector stands in for the whole selector, and forwards every
 * other attribute to it: that costs more (a call from C into the
 * selector's Python select(), and a bound method built at each lookup).
 *
 * A loop that stops (loop.stop(), the end of run_until_complete()) returns
 * from run_forever() after the callbacks of its last iteration, with no
 * wait to go idle in: run_forever() then clears the running loop, which
 * instrument_asyncio() hooks to call idle(), so a stopped loop is never
 * taken for a stalled one. Closing the loop closes the selector, which
 * closes its poll object: either stand-in then releases the tracker.
 */
#include "_perpetuo.h"

typedef struct {
  PyObject_HEAD PyObject *inner; /* the real selector */
  PyObject *inner_select;        /* its bound select(), looked up once */
  PyObject *loop;
  perpetuo_tracker_t *tracker;
  uint64_t *counter;
} SelectorObject;

static void release_tracker(SelectorObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
  self->counter = NULL;
}

static PyObject *selector_new(PyTypeObject *type, PyObject *args,
                              PyObject *kwargs) {
  static char *keywords[] = {"selector", "loop",   "name",
                             "thread",   "active", NULL};
  PyObject *inner, *loop, *name, *thread;
  int active;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOUOp:AsyncioSelector",
                                   keywords, &inner, &loop, &name, &thread,
                                   &active))
    return NULL;
  PyObject *inner_select = PyObject_GetAttrString(inner, "select");
  if (!inner_select)
    return NULL;
  SelectorObject *self = (SelectorObject *)type->tp_alloc(type, 0);
  if (!self) {
    Py_DECREF(inner_select);
    return NULL;
  }
  Py_INCREF(inner);
  Py_INCREF(loop);
  self->inner = inner;
  self->inner_select = inner_select;
  self->loop = loop;
  self->tracker = perpetuo_py_tracker_new(name, thread, active);
  if (!self->tracker) {
    Py_DECREF(self);
    return NULL;
  }
  self->counter = perpetuo_tracker_counter(self->tracker);
  return (PyObject *)self;
}

/* The loop's wait: idle during it, active after it. The arguments go
 * through as they came. */
static PyObject *selector_select(SelectorObject *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
  PyObject *events =
      PyObject_Vectorcall(self->inner_select, args, (size_t)nargs, kwnames);
  /* Even after an error: the loop may go on (an interrupted wait), and a
   * loop that ends goes idle through idle(). */
  if (self->tracker && !perpetuo_counter_is_active(self->counter))
    perpetuo_counter_enter(self->counter);
  return events;
}

static PyObject *selector_idle(SelectorObject *self, PyObject *unused) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
  Py_RETURN_NONE;
}

static PyObject *selector_release(SelectorObject *self, PyObject *unused) {
  release_tracker(self);
  Py_RETURN_NONE;
}

static PyObject *selector_close(SelectorObject *self, PyObject *unused) {
  release_tracker(self);
  return PyObject_CallMethod(self->inner, "close", NULL);
}

/* Anything else is the real selector's. */
static PyObject *selector_getattro(SelectorObject *self, PyObject *name) {
  PyObject *found = PyObject_GenericGetAttr((PyObject *)self, name);
  if (found || !PyErr_ExceptionMatches(PyExc_AttributeError))
    return found;
  PyErr_Clear();
  return PyObject_GetAttr(self->inner, name);
}

static PyObject *get_tracking(SelectorObject *self, void *closure) {
  return PyBool_FromLong(self->tracker != NULL);
}

static PyObject *get_wrapped(SelectorObject *self, void *closure) {
  Py_INCREF(self->inner);
  return self->inner;
}

static int selector_traverse(SelectorObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->inner);
  Py_VISIT(self->inner_select);
  Py_VISIT(self->loop);
  return 0;
}

static int selector_clear(SelectorObject *self) {
  Py_CLEAR(self->inner);
  Py_CLEAR(self->inner_select);
  Py_CLEAR(self->loop);
  return 0;
}

static void selector_dealloc(SelectorObject *self) {
  PyObject_GC_UnTrack(self);
  release_tracker(self);
  selector_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef selector_methods[] = {
    {"select", (PyCFunction)(void (*)(void))selector_select,
     METH_FASTCALL | METH_KEYWORDS,
     "The real selector's select(), with the loop idle while it waits."},
    {"idle", (PyCFunction)selector_idle, METH_NOARGS,
     "The loop stopped running: its tracker goes idle until its next wait "
     "ends."},
    {"release", (PyCFunction)selector_release, METH_NOARGS,
     "Release the loop's tracker; the real selector stays open."},
    {"close", (PyCFunction)selector_close, METH_NOARGS,
     "Release the loop's tracker, and close the real selector."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef selector_getset[] = {
    {"tracking", (getter)get_tracking, NULL,
     "Whether it holds the loop's tracker.", NULL},
    {"wrapped", (getter)get_wrapped, NULL, "The real selector.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject perpetuo_py_asyncio_selector_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.AsyncioSelector",
    .tp_basicsize = sizeof(SelectorObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsyncioSelector(selector, loop, name, thread, active): stands "
              "in for an asyncio loop's selector, keeping the loop's "
              "tracker idle while the loop waits.",
    .tp_new = selector_new,
    .tp_dealloc = (destructor)selector_dealloc,
    .tp_traverse = (traverseproc)selector_traverse,
    .tp_clear = (inquiry)selector_clear,
    .tp_getattro = (getattrofunc)selector_getattro,
    .tp_methods = selector_methods,
    .tp_getset = selector_getset,
};

/* ------------------------------------------------------------ the poller */

typedef struct {
  PyObject_HEAD PyObject *inner; /* the selector's epoll or poll object */
  PyObject *inner_poll;          /* its bound poll(), looked up once */
  perpetuo_tracker_t *tracker;
  uint64_t *counter;
} PollerObject;

static void poller_release_tracker(PollerObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
  self->counter = NULL;
}

static PyObject *poller_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwargs) {
  static char *keywords[] = {"poller", "name", "thread", "active", NULL};
  PyObject *inner, *name, *thread;
  int active;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUOp:AsyncioPoller", keywords,
                                   &inner, &name, &thread, &active))
    return NULL;
  PyObject *inner_poll = PyObject_GetAttrString(inner, "poll");
  if (!inner_poll)
    return NULL;
  PollerObject *self = (PollerObject *)type->tp_alloc(type, 0);
  if (!self) {
    Py_DECREF(inner_poll);
    return NULL;
  }
  Py_INCREF(inner);
  self->inner = inner;
  self->inner_poll = inner_poll;
  self->tracker = perpetuo_py_tracker_new(name, thread, active);
  if (!self->tracker) {
    Py_DECREF(self);
    return NULL;
  }
  self->counter = perpetuo_tracker_counter(self->tracker);
  return (PyObject *)self;
}

static PyObject *poller_poll(PollerObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
  PyObject *events =
      PyObject_Vectorcall(self->inner_poll, args, (size_t)nargs, kwnames);
  if (self->tracker && !perpetuo_counter_is_active(self->counter))
    perpetuo_counter_enter(self->counter);
  return events;
}

/* The poll object's other methods, which the selector calls now and then. */
static PyObject *forward(PollerObject *self, const char *name,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames) {
  PyObject *method = PyObject_GetAttrString(self->inner, name);
  if (!method)
    return NULL;
  PyObject *result = PyObject_Vectorcall(method, args, (size_t)nargs, kwnames);
  Py_DECREF(method);
  return result;
}

#define FORWARDER(name)                                                        \
  static PyObject *poller_##name(PollerObject *self, PyObject *const *args,    \
                                 Py_ssize_t nargs, PyObject *kwnames) {        \
    return forward(self, #name, args, nargs, kwnames);                         \
  }
FORWARDER(register)
FORWARDER(modify)
FORWARDER(unregister)
FORWARDER(fileno)
#undef FORWARDER

static PyObject *poller_idle(PollerObject *self, PyObject *unused) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
  Py_RETURN_NONE;
}

static PyObject *poller_release(PollerObject *self, PyObject *unused) {
  poller_release_tracker(self);
  Py_RETURN_NONE;
}

static PyObject *poller_close(PollerObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
  poller_release_tracker(self);
  return forward(self, "close", args, nargs, kwnames);
}

static PyObject *poller_get_closed(PollerObject *self, void *closure) {
  return PyObject_GetAttrString(self->inner, "closed");
}

static PyObject *poller_get_tracking(PollerObject *self, void *closure) {
  return PyBool_FromLong(self->tracker != NULL);
}

static PyObject *poller_get_wrapped(PollerObject *self, void *closure) {
  Py_INCREF(self->inner);
  return self->inner;
}

static int poller_traverse(PollerObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->inner);
  Py_VISIT(self->inner_poll);
  return 0;
}

static int poller_clear(PollerObject *self) {
  Py_CLEAR(self->inner);
  Py_CLEAR(self->inner_poll);
  return 0;
}

static void poller_dealloc(PollerObject *self) {
  PyObject_GC_UnTrack(self);
  poller_release_tracker(self);
  poller_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FASTCALL(f)                                                            \
  (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS
static PyMethodDef poller_methods[] = {
    {"poll", FASTCALL(poller_poll),
     "The real poll(), with the loop idle while it waits."},
    {"register", FASTCALL(poller_register), "The real register()."},
    {"modify", FASTCALL(poller_modify), "The real modify()."},
    {"unregister", FASTCALL(poller_unregister), "The real unregister()."},
    {"fileno", FASTCALL(poller_fileno), "The real fileno()."},
    {"close", FASTCALL(poller_close),
     "Release the loop's tracker, and close the real poll object."},
    {"idle", (PyCFunction)poller_idle, METH_NOARGS,
     "The loop stopped running: its tracker goes idle until its next wait "
     "ends."},
    {"release", (PyCFunction)poller_release, METH_NOARGS,
     "Release the loop's tracker; the real poll object stays open."},
    {NULL, NULL, 0, NULL},
};
#undef FASTCALL

static PyGetSetDef poller_getset[] = {
    {"closed", (getter)poller_get_closed, NULL,
     "Whether the real poll object is closed.", NULL},
    {"tracking", (getter)poller_get_tracking, NULL,
     "Whether it holds the loop's tracker.", NULL},
    {"wrapped", (getter)poller_get_wrapped, NULL, "The real poll object.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject perpetuo_py_asyncio_poller_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.AsyncioPoller",
    .tp_basicsize = sizeof(PollerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsyncioPoller(poller, name, thread, active): stands in for "
              "the epoll or poll object of an asyncio loop's selector, "
              "keeping the loop's tracker idle while the loop waits.",
    .tp_new = poller_new,
    .tp_dealloc = (destructor)poller_dealloc,
    .tp_traverse = (traverseproc)poller_traverse,
    .tp_clear = (inquiry)poller_clear,
    .tp_methods = poller_methods,
    .tp_getset = poller_getset,
};
