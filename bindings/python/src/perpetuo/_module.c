/*
 * perpetuo._perpetuo: libperpetuo for Python. The trackers and the Trio
 * instrument live in their own files; here are the module, the watcher
 * functions and stall_gil().
 */
#include "_perpetuo.h"

#include "_layout.h"
#include "pylayout.h"

#include <errno.h>
#include <string.h>
#include <time.h>

PyObject *perpetuo_py_error(int err, const char *filename) {
  if (err <= PERPETUO_EACTIVE) {
    PyErr_SetString(PyExc_RuntimeError, perpetuo_strerror(err));
    return NULL;
  }
  errno = err < 0 ? -err : err;
  if (filename)
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, filename);
  else
    PyErr_SetFromErrno(PyExc_OSError);
  return NULL;
}

/* stall_gil(seconds): sleeps without releasing the GIL, for demos and
 * tests of GIL stall detection. */
static PyObject *stall_gil(PyObject *module, PyObject *arg) {
  double seconds = PyFloat_AsDouble(arg);
  if (seconds == -1.0 && PyErr_Occurred())
    return NULL;
  if (!(seconds >= 0.0) || seconds > 86400.0) {
    PyErr_SetString(PyExc_ValueError, "seconds must be between 0 and 86400");
    return NULL;
  }
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  /* Deliberately holding the GIL: that is the stall. Signals interrupt
   * the sleep, which then goes on for the rest of the time. */
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  Py_RETURN_NONE;
}

static int as_ms(PyObject *value, const char *what, double min_s, double max_s,
                 uint32_t *out) {
  if (value == Py_None)
    return 0;
  if (PyBool_Check(value) || !(PyFloat_Check(value) || PyLong_Check(value))) {
    PyErr_Format(PyExc_TypeError, "%s must be a number of seconds, not %.100s",
                 what, Py_TYPE(value)->tp_name);
    return -1;
  }
  double s = PyFloat_AsDouble(value);
  if (s == -1.0 && PyErr_Occurred())
    return -1;
  if (!(s >= min_s && s <= max_s)) {
    /* PyErr_Format has no %g (3.12 and later reject it outright). */
    char message[128];
    snprintf(message, sizeof(message), "%s must be between %g and %g seconds",
             what, min_s, max_s);
    PyErr_SetString(PyExc_ValueError, message);
    return -1;
  }
  double ms = s * 1000.0 + 0.5;
  *out = (uint32_t)(ms < 1.0 && min_s > 0 ? 1.0 : ms);
  return 0;
}

/* Any truth value, as the original (`if print_locals:`) takes it. */
static int as_flag(PyObject *value, const char *what, int *out) {
  int truth = PyObject_IsTrue(value);
  if (truth < 0)
    return -1;
  *out = truth;
  return 0;
}

/*
 * _watch_start(poll_interval, alert_interval, traceback_suppress,
 *              print_locals, json_mode, watcher_path, all_threads,
 *              native_stacks) -> pid
 * Seconds or None for the defaults; returns the watcher's pid. Already
 * running: returns its pid, changes nothing.
 */
static PyObject *watch_start(PyObject *module, PyObject *args) {
  PyObject *poll, *alert, *suppress, *locals, *json, *path, *all, *stacks;
  if (!PyArg_ParseTuple(args, "OOOOOOOO:_watch_start", &poll, &alert, &suppress,
                        &locals, &json, &path, &all, &stacks))
    return NULL;
  perpetuo_watch_options_t o;
  perpetuo_watch_options_init(&o);
  if (as_ms(poll, "poll_interval", 0.001, 60.0, &o.poll_interval_ms) ||
      as_ms(alert, "alert_interval", 0.001, 86400.0, &o.alert_interval_ms) ||
      as_ms(suppress, "traceback_suppress", 0.0, 86400.0,
            &o.traceback_suppress_ms) ||
      as_flag(locals, "print_locals", &o.print_locals) ||
      as_flag(json, "json_mode", &o.json_mode) ||
      as_flag(all, "all_threads", &o.all_threads) ||
      as_flag(stacks, "native_stacks", &o.native_stacks))
    return NULL;
  PyObject *path_bytes = NULL;
  if (path != Py_None) {
    if (!PyUnicode_FSConverter(path, &path_bytes))
      return NULL;
    o.watcher_path = PyBytes_AS_STRING(path_bytes);
  }
  /* Spawning and the handshake take milliseconds: let other threads run. */
  PyThreadState *ts = PyEval_SaveThread();
  int err = perpetuo_watch_start(&o);
  PyEval_RestoreThread(ts);
  if (err == -EALREADY)
    err = 0;
  if (err) {
    perpetuo_py_error(err, o.watcher_path);
    Py_XDECREF(path_bytes);
    return NULL;
  }
  Py_XDECREF(path_bytes);
  return PyLong_FromLong(perpetuo_watch_pid());
}

static PyObject *watch_stop(PyObject *module, PyObject *unused) {
  PyThreadState *ts = PyEval_SaveThread();
  int err = perpetuo_watch_stop();
  PyEval_RestoreThread(ts);
  if (err && err != -ESRCH)
    return perpetuo_py_error(err, NULL);
  return PyBool_FromLong(err == 0);
}

static PyObject *watch_pid(PyObject *module, PyObject *unused) {
  return PyLong_FromLong(perpetuo_watch_pid());
}

/* Registered once, for the life of the process: the interpreter's GIL
 * outlives any Python object that could own it. */
static perpetuo_tracker_t *gil_contention;

static PyObject *watch_gil_contention(PyObject *self, PyObject *args) {
  (void)self;
  (void)args;
  if (!gil_contention) {
    perpetuo_contention_t rule;
    perpetuo_py_gil_contention(&rule);
    perpetuo_tracker_options_t opts;
    perpetuo_tracker_options_init(&opts);
    opts.thread_hint = PERPETUO_THREAD_GIL_HOLDER;
    int err = perpetuo_tracker_new_contention(&gil_contention, "GIL contention",
                                              &rule, &opts);
    if (err)
      return perpetuo_py_error(err, NULL);
  }
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_watch_gil_contention", watch_gil_contention, METH_NOARGS,
     "Watch the GIL from outside: a stall is a thread waiting for it while "
     "its holder keeps it. Idempotent."},
    {"stall_gil", stall_gil, METH_O,
     "stall_gil(seconds)\n--\n\nSleep for `seconds` while holding the GIL."},
    {"_watch_start", watch_start, METH_VARARGS,
     "Start the watcher through libperpetuo; return its pid."},
    {"_watch_stop", watch_stop, METH_NOARGS,
     "Stop the watcher; return whether one was running."},
    {"_watch_pid", watch_pid, METH_NOARGS, "The running watcher's pid, or 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "perpetuo._perpetuo",
    .m_doc = "libperpetuo for Python: stall trackers and their watcher.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__perpetuo(void) {
  if (PyType_Ready(&perpetuo_py_tracker_type) < 0 ||
      perpetuo_py_trio_init() < 0 ||
      PyType_Ready(&perpetuo_py_asyncio_selector_type) < 0 ||
      PyType_Ready(&perpetuo_py_asyncio_poller_type) < 0 ||
      PyType_Ready(&perpetuo_py_asyncio_heartbeat_type) < 0 ||
      perpetuo_py_trio_dispatch_init() < 0)
    return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (!m)
    return NULL;
  /* What the watcher needs to read this interpreter's stacks. Failing to
   * create the region here is not an error yet: the first tracker reports
   * it, where it can be acted on. */
  struct perpetuo__pylayout layout;
  perpetuo_py_layout_fill(&layout);
  (void)perpetuo_runtime_layout_publish(&layout, sizeof(layout));
  Py_INCREF(&perpetuo_py_tracker_type);
  Py_INCREF(&perpetuo_py_trio_instrument_type);
  Py_INCREF(&perpetuo_py_trio_io_wait_instrument_type);
  Py_INCREF(&perpetuo_py_asyncio_selector_type);
  Py_INCREF(&perpetuo_py_asyncio_poller_type);
  Py_INCREF(&perpetuo_py_asyncio_heartbeat_type);
  Py_INCREF(&perpetuo_py_trio_dispatch_type);
  if (PyModule_AddObject(m, "StallTracker",
                         (PyObject *)&perpetuo_py_tracker_type) < 0 ||
      PyModule_AddObject(m, "TrioInstrument",
                         (PyObject *)&perpetuo_py_trio_instrument_type) < 0 ||
      PyModule_AddObject(
          m, "TrioIoWaitInstrument",
          (PyObject *)&perpetuo_py_trio_io_wait_instrument_type) < 0 ||
      PyModule_AddObject(m, "AsyncioSelector",
                         (PyObject *)&perpetuo_py_asyncio_selector_type) < 0 ||
      PyModule_AddObject(m, "AsyncioPoller",
                         (PyObject *)&perpetuo_py_asyncio_poller_type) < 0 ||
      PyModule_AddObject(m, "TrioDispatch",
                         (PyObject *)&perpetuo_py_trio_dispatch_type) < 0 ||
      PyModule_AddObject(m, "AsyncioHeartbeat",
                         (PyObject *)&perpetuo_py_asyncio_heartbeat_type) < 0 ||
      PyModule_AddStringConstant(m, "libperpetuo_version", perpetuo_version()) <
          0 ||
      PyModule_AddIntConstant(m, "TRACKER_NAME_MAX",
                              PERPETUO_TRACKER_NAME_MAX) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
