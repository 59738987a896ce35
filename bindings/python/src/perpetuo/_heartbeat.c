/*
 * A heartbeat for event loops with no wait to hook (uvloop, and any other
 * asyncio loop that is not one of asyncio's selector loops): a callback the
 * loop itself runs every `interval` seconds, through loop.call_later(). The
 * loop's tracker is active for the whole run and each beat moves it on, so
 * its counter stands still only when no beat could run: a callback holding
 * the loop. A stall's length is then overstated by at most one interval
 * (the time from the last beat to the callback's start).
 *
 * The object is its own callback (tp_call), so a beat costs the loop one
 * timer and no Python frame of ours. The Python layer starts it when a run
 * begins and puts it idle when the run ends: the loop stops beating then,
 * and a stopped loop must not be taken for a stalled one.
 */
#include "_perpetuo.h"

typedef struct {
  PyObject_HEAD PyObject *call_later; /* the loop's, bound */
  PyObject *interval;                 /* a float, seconds */
  PyObject *handle;                   /* the pending beat's TimerHandle */
  perpetuo_tracker_t *tracker;
  uint64_t *counter;
} HeartbeatObject;

static int arm(HeartbeatObject *self) {
  PyObject *args[] = {self->interval, (PyObject *)self};
  PyObject *handle = PyObject_Vectorcall(self->call_later, args, 2, NULL);
  if (!handle)
    return -1;
  Py_XSETREF(self->handle, handle);
  return 0;
}

static void go_idle(HeartbeatObject *self) {
  if (self->tracker && perpetuo_counter_is_active(self->counter))
    perpetuo_counter_leave(self->counter);
}

static void stop_tracking(HeartbeatObject *self) {
  perpetuo_py_tracker_release(&self->tracker);
  self->counter = NULL;
}

static PyObject *heartbeat_new(PyTypeObject *type, PyObject *args,
                               PyObject *kwargs) {
  static char *keywords[] = {"loop", "name", "thread", "interval", NULL};
  PyObject *loop, *name, *thread;
  double interval;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUOd:AsyncioHeartbeat",
                                   keywords, &loop, &name, &thread, &interval))
    return NULL;
  if (!(interval > 0 && interval <= 60)) {
    PyObject *given = PyFloat_FromDouble(interval);
    if (given)
      PyErr_Format(PyExc_ValueError,
                   "the heartbeat's interval must be more than 0 and at most "
                   "60 seconds, not %R",
                   given);
    Py_XDECREF(given);
    return NULL;
  }
  PyObject *call_later = PyObject_GetAttrString(loop, "call_later");
  if (!call_later)
    return NULL;
  HeartbeatObject *self = (HeartbeatObject *)type->tp_alloc(type, 0);
  if (!self) {
    Py_DECREF(call_later);
    return NULL;
  }
  self->call_later = call_later;
  self->interval = PyFloat_FromDouble(interval);
  if (!self->interval) {
    Py_DECREF(self);
    return NULL;
  }
  self->tracker = perpetuo_py_tracker_new(name, thread, 0);
  if (!self->tracker) {
    Py_DECREF(self);
    return NULL;
  }
  self->counter = perpetuo_tracker_counter(self->tracker);
  return (PyObject *)self;
}

/* A run begins (in the loop's thread): active, with a beat pending. */
static PyObject *heartbeat_start(HeartbeatObject *self, PyObject *unused) {
  if (!self->tracker)
    Py_RETURN_NONE;
  if (!self->handle && arm(self) < 0)
    return NULL;
  if (!perpetuo_counter_is_active(self->counter))
    perpetuo_counter_enter(self->counter);
  Py_RETURN_NONE;
}

/* The beat: the loop got round to its timers, so it is not stalled. */
static PyObject *heartbeat_call(HeartbeatObject *self, PyObject *args,
                                PyObject *kwargs) {
  Py_CLEAR(self->handle);
  if (!self->tracker)
    Py_RETURN_NONE;
  if (perpetuo_counter_is_active(self->counter)) {
    uint64_t c = __atomic_load_n(self->counter, __ATOMIC_RELAXED);
    __atomic_store_n(self->counter, c + 2, __ATOMIC_RELEASE);
  }
  if (arm(self) < 0) {
    /* With no beat to come, an active tracker would report a stall that
     * is not one: stop tracking, and let the loop report the error. */
    stop_tracking(self);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *heartbeat_idle(HeartbeatObject *self, PyObject *unused) {
  go_idle(self);
  Py_RETURN_NONE;
}

static PyObject *heartbeat_close(HeartbeatObject *self, PyObject *unused) {
  stop_tracking(self);
  PyObject *handle = self->handle;
  self->handle = NULL;
  if (handle) {
    PyObject *r = PyObject_CallMethod(handle, "cancel", NULL);
    Py_DECREF(handle);
    if (!r)
      return NULL;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

static PyObject *get_tracking(HeartbeatObject *self, void *closure) {
  return PyBool_FromLong(self->tracker != NULL);
}

static PyObject *get_active(HeartbeatObject *self, void *closure) {
  return PyBool_FromLong(self->tracker &&
                         perpetuo_counter_is_active(self->counter));
}

static PyObject *get_interval(HeartbeatObject *self, void *closure) {
  Py_INCREF(self->interval);
  return self->interval;
}

static int heartbeat_traverse(HeartbeatObject *self, visitproc visit,
                              void *arg) {
  Py_VISIT(self->call_later);
  Py_VISIT(self->handle);
  return 0;
}

static int heartbeat_clear(HeartbeatObject *self) {
  Py_CLEAR(self->call_later);
  Py_CLEAR(self->interval);
  Py_CLEAR(self->handle);
  return 0;
}

static void heartbeat_dealloc(HeartbeatObject *self) {
  PyObject_GC_UnTrack(self);
  stop_tracking(self);
  heartbeat_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef heartbeat_methods[] = {
    {"start", (PyCFunction)heartbeat_start, METH_NOARGS,
     "A run of the loop begins, in this thread: active, beating."},
    {"idle", (PyCFunction)heartbeat_idle, METH_NOARGS,
     "The run ends: idle until the next start()."},
    {"close", (PyCFunction)heartbeat_close, METH_NOARGS,
     "Release the loop's tracker and cancel the pending beat."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef heartbeat_getset[] = {
    {"tracking", (getter)get_tracking, NULL,
     "Whether it holds the loop's tracker.", NULL},
    {"active", (getter)get_active, NULL, "Whether the tracker is active.",
     NULL},
    {"interval", (getter)get_interval, NULL, "Seconds between beats.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject perpetuo_py_asyncio_heartbeat_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.AsyncioHeartbeat",
    .tp_basicsize = sizeof(HeartbeatObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "AsyncioHeartbeat(loop, name, thread, interval): a callback "
              "the loop runs every `interval` seconds, keeping the loop's "
              "tracker moving while the loop is healthy.",
    .tp_new = heartbeat_new,
    .tp_dealloc = (destructor)heartbeat_dealloc,
    .tp_traverse = (traverseproc)heartbeat_traverse,
    .tp_clear = (inquiry)heartbeat_clear,
    .tp_call = (ternaryfunc)heartbeat_call,
    .tp_methods = heartbeat_methods,
    .tp_getset = heartbeat_getset,
};
