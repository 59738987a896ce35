/*
 * trio's dispatch of the hook we call on every task step, done in C.
 *
 * trio runs a hook through its instrument group, `runner.instruments.call(
 * "before_task_step", task)`: a Python method that copies the hook's
 * instruments into a list, enters a try, and looks the hook up with
 * getattr() before calling it. That dispatch costs several times what our
 * hook does (docs/performance.md), and it is paid once a task step.
 *
 * TrioDispatch is a base with no fields of its own, whose call() counts the
 * step directly when our instrument is the hook's only one, and hands
 * anything else to trio's own call(), unchanged. instrument_trio() makes
 * `class Instruments(trio's Instruments, TrioDispatch)` with `call =
 * TrioDispatch.call` (trio's class first, so that the instance layout, and
 * so __class__ assignment, stays trio's) and sets the run's instrument
 * group's __class__ to it. trio's Instruments is a dict (trio < 0.26) or a
 * UserDict keeping the hooks in `.data`; both are served.
 */
#include "_perpetuo.h"

static PyObject *before_task_step_name; /* interned, as trio's literal is */
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

static PyObject *dispatch_call(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs) {
  if (nargs == 2 && args[0] == before_task_step_name) {
    PyObject *hooks = hook_instruments(self, args[0]);
    if (hooks && PyDict_Check(hooks) && PyDict_GET_SIZE(hooks) == 1) {
      Py_ssize_t pos = 0;
      PyObject *instrument, *value;
      if (PyDict_Next(hooks, &pos, &instrument, &value)) {
        /* Held: the step may run Python code (learning a new task type). */
        Py_INCREF(instrument);
        int counted = perpetuo_py_trio_step(instrument, args[1]);
        Py_DECREF(instrument);
        if (counted)
          Py_RETURN_NONE;
      }
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

PyTypeObject perpetuo_py_trio_dispatch_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "perpetuo.TrioDispatch",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A base put in front of trio's Instruments: runs the hook "
              "perpetuo calls on every task step without trio's Python "
              "dispatch.",
    .tp_methods = dispatch_methods,
};

int perpetuo_py_trio_dispatch_init(void) {
  before_task_step_name = PyUnicode_InternFromString("before_task_step");
  data_name = PyUnicode_InternFromString("data");
  call_name = PyUnicode_InternFromString("call");
  if (!before_task_step_name || !data_name || !call_name)
    return -1;
  return PyType_Ready(&perpetuo_py_trio_dispatch_type);
}
