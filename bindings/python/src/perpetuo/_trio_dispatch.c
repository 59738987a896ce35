/*
 * trio's dispatch of the hook we call on every task step, done in C.
 *
 * trio runs a hook through its instrument group: `if "before_task_step" in
 * runner.instruments: runner.instruments.call("before_task_step", task)`.
 * call() is a Python method that copies the hook's instruments into a list,
 * enters a try, and looks the hook up with getattr() before calling it; and
 * even a call() in C costs, from the run loop, several times what our hook
 * does (docs/performance.md). It would be paid once a task step.
 *
 * TrioDispatch is a base with no fields of its own. instrument_trio() makes
 * `class Instruments(trio's Instruments, TrioDispatch)` with TrioDispatch's
 * `__contains__` and `call` (trio's class first, so that the instance
 * layout, and so __class__ assignment, stays trio's) and sets the run's
 * instrument group's __class__ to it. When our instrument is a hook's
 * only one:
 *   - the run loop's `"before_task_step" in instruments`, which it tests
 *     right after putting the stepping task in its run context, counts the
 *     step there, with that task, and answers no: trio has nothing left to
 *     call. This needs the instrument to have been given the run's context
 *     (instrument_trio() checks that trio keeps the task there); without
 *     it the answer is the truth, and trio calls call();
 *   - `"before_io_wait" in instruments` makes the tracker idle there, and
 *     `"after_io_wait"` (the io_waits instrument's) active, answering no;
 *   - call("before_task_step", task) counts the step directly.
 * Any other test or call is trio's own, unchanged (instrument_trio() takes
 * our `__contains__` only where trio's is dict's or UserDict's). trio's
 * Instruments is a dict (trio < 0.26) or a UserDict keeping the hooks in
 * `.data`; both are served.
 */
#include "_perpetuo.h"

/* Interned, as trio's literals are: tested by identity. */
static PyObject *before_task_step_name;
static PyObject *before_io_wait_name;
static PyObject *after_io_wait_name;
static PyObject *data_name;
static PyObject *call_name;

/* trio's own call(): the first in the class's MRO that is not ours. */
static PyObject *next_call(PyObject *self) {
  PyObject *mro = Py_TYPE(self)->tp_mro;
  Py_ssize_t n = mro ? PyTuple_GET_SIZE(mro) : 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *dict = ((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_dict;
    PyObject *found = dict ? PyDict_GetItemWithError(dict, call_name) : NULL;
    if (!found && PyErr_Occurred())
      return NULL;
    if (found && !(Py_IS_TYPE(found, &PyMethodDescr_Type) &&
                   PyDescr_TYPE(found) == &perpetuo_py_trio_dispatch_type))
      return found; /* borrowed: the class keeps it */
  }
  PyErr_SetString(PyExc_TypeError,
                  "TrioDispatch.call needs a class with a call() of its own");
  return NULL;
}

/* The instruments of `hookname`: a dict of instrument to None. Borrowed. */
static PyObject *hook_instruments(PyObject *self, PyObject *hookname) {
  if (PyDict_Check(self))
    return PyDict_GetItemWithError(self, hookname);
  PyObject *data = PyObject_GetAttr(self, data_name);
  if (!data)
    return NULL;
  PyObject *found =
      PyDict_Check(data) ? PyDict_GetItemWithError(data, hookname) : NULL;
  Py_DECREF(data); /* the instance keeps it */
  return found;
}

/* Our instrument if it is the hook's only one, else NULL. Borrowed; may
 * leave an exception set. */
static PyObject *sole_instrument(PyObject *self, PyObject *hookname) {
  PyObject *hooks = hook_instruments(self, hookname);
  Py_ssize_t pos = 0;
  PyObject *instrument, *value;
  if (hooks && PyDict_Check(hooks) && PyDict_GET_SIZE(hooks) == 1 &&
      PyDict_Next(hooks, &pos, &instrument, &value))
    return instrument;
  return NULL;
}

static int dispatch_contains(PyObject *self, PyObject *key) {
  int hook = key == before_task_step_name ? PERPETUO_PY_TRIO_BEFORE_TASK_STEP
             : key == before_io_wait_name ? PERPETUO_PY_TRIO_BEFORE_IO_WAIT
             : key == after_io_wait_name  ? PERPETUO_PY_TRIO_AFTER_IO_WAIT
                                          : -1;
  if (hook >= 0) {
    PyObject *instrument = sole_instrument(self, key);
    if (instrument) {
      /* Held: a step may run Python code (learning a new task type). */
      Py_INCREF(instrument);
      int done = perpetuo_py_trio_run_hook(instrument, hook);
      Py_DECREF(instrument);
      if (done)
        return 0; /* nothing left for trio to call */
    }
    if (PyErr_Occurred())
      PyErr_Clear(); /* the test below will meet it, and say it */
  }
  if (PyDict_Check(self))
    return PyDict_Contains(self, key);
  PyObject *data = PyObject_GetAttr(self, data_name);
  if (!data)
    return -1;
  int found = PySequence_Contains(data, key);
  Py_DECREF(data);
  return found;
}

static PyObject *dispatch_call(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs) {
  if (nargs == 2 && args[0] == before_task_step_name) {
    PyObject *instrument = sole_instrument(self, args[0]);
    if (instrument) {
      Py_INCREF(instrument);
      int counted = perpetuo_py_trio_step(instrument, args[1]);
      Py_DECREF(instrument);
      if (counted)
        Py_RETURN_NONE;
    }
    if (PyErr_Occurred())
      PyErr_Clear(); /* trio's own call() will meet it, and say it */
  }
  PyObject *call = next_call(self);
  if (!call)
    return NULL;
  /* call(self, *args), with the slot before the arguments free for
   * PY_VECTORCALL_ARGUMENTS_OFFSET. */
  PyObject *small[8];
  PyObject **full = small;
  if (nargs + 1 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
    full = PyMem_New(PyObject *, nargs + 1);
    if (!full)
      return PyErr_NoMemory();
  }
  full[0] = self;
  for (Py_ssize_t i = 0; i < nargs; i++)
    full[i + 1] = args[i];
  PyObject *result = PyObject_Vectorcall(call, full, (size_t)nargs + 1, NULL);
  if (full != small)
    PyMem_Free(full);
  return result;
}

static PyMethodDef dispatch_methods[] = {
    {"call", (PyCFunction)(void (*)(void))dispatch_call, METH_FASTCALL,
     "call(hookname, *args): trio's call(), with before_task_step counted "
     "directly when perpetuo's instrument is its only one."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods dispatch_as_sequence = {
    .sq_contains = dispatch_contains,
};

PyTypeObject perpetuo_py_trio_dispatch_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.TrioDispatch",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A base put in front of trio's Instruments: runs the hook "
              "perpetuo calls on every task step without trio's Python "
              "dispatch.",
    .tp_methods = dispatch_methods,
    .tp_as_sequence = &dispatch_as_sequence,
};

int perpetuo_py_trio_dispatch_init(void) {
  before_task_step_name = PyUnicode_InternFromString("before_task_step");
  before_io_wait_name = PyUnicode_InternFromString("before_io_wait");
  after_io_wait_name = PyUnicode_InternFromString("after_io_wait");
  data_name = PyUnicode_InternFromString("data");
  call_name = PyUnicode_InternFromString("call");
  if (!before_task_step_name || !before_io_wait_name || !after_io_wait_name ||
      !data_name || !call_name)
    return -1;
  return PyType_Ready(&perpetuo_py_trio_dispatch_type);
}
