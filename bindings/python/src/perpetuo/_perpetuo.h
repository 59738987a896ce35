/* Shared by the files of perpetuo's C extension module. */
#ifndef PERPETUO_PY_PERPETUO_H
#define PERPETUO_PY_PERPETUO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <perpetuo.h>

extern PyTypeObject perpetuo_py_tracker_type;
extern PyTypeObject perpetuo_py_trio_instrument_type;
extern PyTypeObject perpetuo_py_trio_io_wait_instrument_type;
extern PyTypeObject perpetuo_py_asyncio_selector_type;
extern PyTypeObject perpetuo_py_asyncio_poller_type;
extern PyTypeObject perpetuo_py_asyncio_heartbeat_type;
extern PyTypeObject perpetuo_py_trio_dispatch_type;

/*
 * What TrioInstrument.before_task_step(task) does, for the dispatch that
 * calls it without trio's: 1 if `instrument` is a TrioInstrument holding a
 * tracker and the step was counted, 0 (nothing done) otherwise.
 */
int perpetuo_py_trio_step(PyObject *instrument, PyObject *task);

/*
 * The hooks trio's instrument group may run itself, when it tests whether a
 * hook has instruments (_trio_dispatch.c).
 */
enum perpetuo_py_trio_hook {
  PERPETUO_PY_TRIO_BEFORE_TASK_STEP,
  PERPETUO_PY_TRIO_BEFORE_IO_WAIT,
  PERPETUO_PY_TRIO_AFTER_IO_WAIT,
};

/*
 * Does what `instrument`'s method for `hook` would, with no argument: the
 * task of a step is the one trio has just put in the run context the
 * instrument was given. 1 if done; 0 (nothing done) if `instrument` is not
 * one of ours with that hook and a tracker, or the task is not found.
 */
int perpetuo_py_trio_run_hook(PyObject *instrument,
                              enum perpetuo_py_trio_hook hook);

/* Readies the Trio instruments. -1 on error. */
int perpetuo_py_trio_init(void);

/* Readies TrioDispatch and what it compares with. -1 on error. */
int perpetuo_py_trio_dispatch_init(void);

/*
 * Sets the Python exception for a libperpetuo error: OSError (with errno and,
 * if given, the file name) for system errors, RuntimeError for perpetuo's
 * own. Returns NULL, for `return perpetuo_py_error(err, NULL);`.
 */
PyObject *perpetuo_py_error(int err, const char *filename);

/*
 * Registers a tracker named `name` (a str) for `relevant_thread`: a Python
 * thread ident (an int, > 0) or the str "gil". Raises TypeError/ValueError on
 * bad arguments. `initially_active` as in perpetuo_tracker_options_t.
 */
perpetuo_tracker_t *perpetuo_py_tracker_new(PyObject *name,
                                            PyObject *relevant_thread,
                                            int initially_active);

/*
 * Releases *tracker (if not NULL), idle first: a tracker freed while active
 * would be a stall that never ends. Sets *tracker to NULL.
 */
void perpetuo_py_tracker_release(perpetuo_tracker_t **tracker);

#endif
