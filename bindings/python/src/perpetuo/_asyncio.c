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

/* Either stand-in: what it wraps, the wait it calls, the loop's tracker. */
typedef struct {
  PyObject_HEAD PyObject *inner; /* the real selector, or poll object */
  PyObject *inner_wait;          /* its bound select() or poll() */
  PyObject *loop;                /* AsyncioSelector's loop; NULL otherwise */
  perpetuo_tracker_t *tracker;
  uint64_t *counter;
} StandInObject;

static PyObject *stand_in_new(PyTypeObject *type, PyObject *inner,
                              const char *wait, PyObject *loop, PyObject *name,
                              PyObject *thread, int active) {
  PyObject *inner_wait = PyObject_GetAttrString(inner, wait);
  if (!inner_wait)
    return NULL;
  StandInObject *self = (StandInObject *)type->tp_alloc(type, 0);
  if (!self) {
    Py_DECREF(inner_wait);
    return NULL;
  }
  Py_INCREF(inner);
  Py_XINCREF(loop);
  self->inner = inner;
  self->inner_wait = inner_wait;
  self->loop = loop;
  self->tracker = perpetuo_py_tracker_new(name, thread, active);
  if (!self->tracker) {
    Py_DECREF(self);
    return NULL;
  }
  self->counter = perpetuo_tracker_counter(self->tracker);
  return (PyObject *)self;
}

static void release_tracker(StandInObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
  self->counter = NULL;
}

static void go_idle(StandInObject *self) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
}

/* The loop's wait: idle during it, active after it. The arguments go
 * through as they came. */
static PyObject *stand_in_wait(StandInObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames) {
  go_idle(self);
  PyObject *events =
      PyObject_Vectorcall(self->inner_wait, args, (size_t)nargs, kwnames);
  /* Even after an error: the loop may go on (an interrupted wait), and a
   * loop that ends goes idle through idle(). */
  if (self->tracker && !perpetuo_counter_is_active(self->counter))
    perpetuo_counter_enter(self->counter);
  return events;
}

/* A method of the real object, called as it came. */
static PyObject *forward(StandInObject *self, const char *name,
                         PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames) {
  PyObject *method = PyObject_GetAttrString(self->inner, name);
  if (!method)
    return NULL;
  PyObject *result = PyObject_Vectorcall(method, args, (size_t)nargs, kwnames);
  Py_DECREF(method);
  return result;
}

static PyObject *stand_in_idle(StandInObject *self, PyObject *unused) {
  go_idle(self);
  Py_RETURN_NONE;
}

static PyObject *stand_in_release(StandInObject *self, PyObject *unused) {
  release_tracker(self);
  Py_RETURN_NONE;
}

static PyObject *stand_in_close(StandInObject *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames) {
  release_tracker(self);
  return forward(self, "close", args, nargs, kwnames);
}

static PyObject *get_tracking(StandInObject *self, void *closure) {
  return PyBool_FromLong(self->tracker != NULL);
}

static PyObject *get_wrapped(StandInObject *self, void *closure) {
  Py_INCREF(self->inner);
  return self->inner;
}

static int stand_in_traverse(StandInObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->inner);
  Py_VISIT(self->inner_wait);
  Py_VISIT(self->loop);
  return 0;
}

static int stand_in_clear(StandInObject *self) {
  Py_CLEAR(self->inner);
  Py_CLEAR(self->inner_wait);
  Py_CLEAR(self->loop);
  return 0;
}

static void stand_in_dealloc(StandInObject *self) {
  PyObject_GC_UnTrack(self);
  release_tracker(self);
  stand_in_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FASTCALL(f)                                                            \
  (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS
#define COMMON_METHODS                                                         \
  {"idle", (PyCFunction)stand_in_idle, METH_NOARGS,                            \
   "The loop stopped running: its tracker goes idle until its next wait "      \
   "ends."},                                                                   \
      {"release", (PyCFunction)stand_in_release, METH_NOARGS,                  \
       "Release the loop's tracker; the real object stays open."},             \
      {"close", FASTCALL(stand_in_close),                                      \
       "Release the loop's tracker, and close the real object."},              \
      {NULL, NULL, 0, NULL},

#define COMMON_GETSET                                                          \
  {"tracking", (getter)get_tracking, NULL,                                     \
   "Whether it holds the loop's tracker.", NULL},                              \
      {"wrapped", (getter)get_wrapped, NULL, "The real object.", NULL},        \
      {NULL, NULL, NULL, NULL, NULL},

static PyGetSetDef selector_getset[] = {COMMON_GETSET};

/* ---------------------------------------------------------- the selector */

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
  return stand_in_new(type, inner, "select", loop, name, thread, active);
}

/* Anything else is the real selector's. */
static PyObject *selector_getattro(StandInObject *self, PyObject *name) {
  PyObject *found = PyObject_GenericGetAttr((PyObject *)self, name);
  if (found || !PyErr_ExceptionMatches(PyExc_AttributeError))
    return found;
  PyErr_Clear();
  return PyObject_GetAttr(self->inner, name);
}

static PyMethodDef selector_methods[] = {
    {"select", FASTCALL(stand_in_wait),
     "The real selector's select(), with the loop idle while it waits."},
    COMMON_METHODS};

PyTypeObject perpetuo_py_asyncio_selector_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.AsyncioSelector",
    .tp_basicsize = sizeof(StandInObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsyncioSelector(selector, loop, name, thread, active): stands "
              "in for an asyncio loop's selector, keeping the loop's "
              "tracker idle while the loop waits.",
    .tp_new = selector_new,
    .tp_dealloc = (destructor)stand_in_dealloc,
    .tp_traverse = (traverseproc)stand_in_traverse,
    .tp_clear = (inquiry)stand_in_clear,
    .tp_getattro = (getattrofunc)selector_getattro,
    .tp_methods = selector_methods,
    .tp_getset = selector_getset,
};

/* ------------------------------------------------------------ the poller */

static PyObject *poller_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwargs) {
  static char *keywords[] = {"poller", "name", "thread", "active", NULL};
  PyObject *inner, *name, *thread;
  int active;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUOp:AsyncioPoller", keywords,
                                   &inner, &name, &thread, &active))
    return NULL;
  return stand_in_new(type, inner, "poll", NULL, name, thread, active);
}

/* The poll object's other methods, which the selector calls now and then. */
#define FORWARDER(name)                                                        \
  static PyObject *poller_##name(StandInObject *self, PyObject *const *args,   \
                                 Py_ssize_t nargs, PyObject *kwnames) {        \
    return forward(self, #name, args, nargs, kwnames);                         \
  }
FORWARDER(register)
FORWARDER(modify)
FORWARDER(unregister)
FORWARDER(fileno)
#undef FORWARDER

static PyObject *poller_get_closed(StandInObject *self, void *closure) {
  return PyObject_GetAttrString(self->inner, "closed");
}

static PyMethodDef poller_methods[] = {
    {"poll", FASTCALL(stand_in_wait),
     "The real poll(), with the loop idle while it waits."},
    {"register", FASTCALL(poller_register), "The real register()."},
    {"modify", FASTCALL(poller_modify), "The real modify()."},
    {"unregister", FASTCALL(poller_unregister), "The real unregister()."},
    {"fileno", FASTCALL(poller_fileno), "The real fileno()."},
    COMMON_METHODS};

static PyGetSetDef poller_getset[] = {
    {"closed", (getter)poller_get_closed, NULL,
     "Whether the real poll object is closed.", NULL},
    COMMON_GETSET};
#undef COMMON_GETSET
#undef COMMON_METHODS
#undef FASTCALL

PyTypeObject perpetuo_py_asyncio_poller_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.AsyncioPoller",
    .tp_basicsize = sizeof(StandInObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsyncioPoller(poller, name, thread, active): stands in for "
              "the epoll or poll object of an asyncio loop's selector, "
              "keeping the loop's tracker idle while the loop waits.",
    .tp_new = poller_new,
    .tp_dealloc = (destructor)stand_in_dealloc,
    .tp_traverse = (traverseproc)stand_in_traverse,
    .tp_clear = (inquiry)stand_in_clear,
    .tp_methods = poller_methods,
    .tp_getset = poller_getset,
};
