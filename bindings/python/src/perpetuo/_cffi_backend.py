"""perpetuo's low-level API through cffi, for PyPy and for installs without
a compiler: the names, behaviour and errors of the C extension
(`_perpetuo.pyi`), over libperpetuo.so.1 in cffi's ABI mode (a cdef of the
declarations of perpetuo.h it uses, and ffi.dlopen: nothing to compile).

Ticks are plain loads and stores through the counter's pointer: one 64-bit
aligned store is atomic, and x86-64 keeps stores in program order, which is
the release the counter protocol asks for (docs/protocol.md).

Two things need CPython's internal headers, so only the C extension can
compute them: the interpreter's layout, which lets the watcher read Python
stacks, and the rule that watches a stock CPython's GIL. On CPython this
module imports the C extension, where it imports, for exactly those;
elsewhere (PyPy, or a CPython without the extension) it publishes a layout
block that tells the watcher why it cannot read Python stacks, and
_watch_gil_contention() raises RuntimeError.
"""

import errno as _errno
import gc as _gc
import os as _os
import platform as _platform
import struct as _struct
import sys as _sys
import threading as _threading
import time as _time

from cffi import FFI

# The declarations of include/perpetuo.h this module calls, as cffi reads
# them (no inline functions, no macros but integer constants). Checked
# against the header by tests/python/test_cffi_backend.py.
CDEF = """
#define PERPETUO_TRACKER_NAME_MAX 127
#define PERPETUO_TRACKER_MAX 1024
#define PERPETUO_RUNTIME_LAYOUT_MAX 3840

enum perpetuo_error {
  PERPETUO_EACTIVE = -10001,
  PERPETUO_EIDLE = -10002,
  PERPETUO_EWATCHER = -10003,
  PERPETUO_EWATCHER_TIMEOUT = -10004
};

enum perpetuo_thread_hint {
  PERPETUO_THREAD_REGISTRAR = 0,
  PERPETUO_THREAD_NONE = 1,
  PERPETUO_THREAD_NATIVE = 2,
  PERPETUO_THREAD_PTHREAD = 3,
  PERPETUO_THREAD_GIL_HOLDER = 4
};

typedef struct perpetuo_tracker perpetuo_tracker_t;

typedef struct perpetuo_tracker_options {
  size_t size;
  int thread_hint;
  uint64_t thread_id;
  uint32_t threshold_ms;
  int initially_active;
} perpetuo_tracker_options_t;

typedef struct perpetuo_detail {
  uint64_t text;
  uint64_t length;
} perpetuo_detail_t;

typedef struct perpetuo_watch_options {
  size_t size;
  uint32_t poll_interval_ms;
  uint32_t alert_interval_ms;
  uint32_t traceback_suppress_ms;
  int print_locals;
  int json_mode;
  int output_fd;
  const char *output_path;
  const char *watcher_path;
  int native_stacks;
  int all_threads;
} perpetuo_watch_options_t;

const char *perpetuo_version(void);
const char *perpetuo_strerror(int error);
void perpetuo_tracker_options_init(perpetuo_tracker_options_t *opts);
int perpetuo_tracker_new(perpetuo_tracker_t **ret, const char *name,
                         const perpetuo_tracker_options_t *opts);
int perpetuo_tracker_free(perpetuo_tracker_t *tracker);
uint64_t *perpetuo_tracker_counter(const perpetuo_tracker_t *tracker);
perpetuo_detail_t *perpetuo_tracker_detail(perpetuo_tracker_t *tracker);
int perpetuo_runtime_layout_publish(const void *data, size_t size);
void perpetuo_watch_options_init(perpetuo_watch_options_t *opts);
int perpetuo_watch_start(const perpetuo_watch_options_t *opts);
int perpetuo_watch_stop(void);
int perpetuo_watch_pid(void);
"""

ffi = FFI()
ffi.cdef(CDEF)


def _load():
    """libperpetuo.so.1: the copy a wheel bundles, else the system's (or
    LD_LIBRARY_PATH's). The C extension, if it is loaded too, links the
    same soname, so both reach the one library and its one region."""
    bundled = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)),
                            "_lib", "libperpetuo.so.1")
    name = bundled if _os.path.exists(bundled) else "libperpetuo.so.1"
    try:
        return ffi.dlopen(name)
    except OSError as e:
        raise ImportError(
            f"perpetuo's cffi backend cannot load libperpetuo.so.1 ({e}): "
            f"install libperpetuo, or point LD_LIBRARY_PATH at it") from e


lib = _load()

libperpetuo_version = ffi.string(lib.perpetuo_version()).decode()
TRACKER_NAME_MAX = lib.PERPETUO_TRACKER_NAME_MAX

_EACTIVE = lib.PERPETUO_EACTIVE
_EIDLE = lib.PERPETUO_EIDLE


def _error(err, filename=None):
    """The exception for a libperpetuo error, as the C extension raises it:
    RuntimeError for perpetuo's own codes, OSError (its subclass for the
    errno) for system errors."""
    if err <= _EACTIVE:
        return RuntimeError(ffi.string(lib.perpetuo_strerror(err)).decode())
    code = -err if err < 0 else err
    if filename is not None:
        return OSError(code, _os.strerror(code), filename)
    return OSError(code, _os.strerror(code))


# --------------------------------------------------------------- trackers

_THREAD_MESSAGE = ("relevant_thread must be a thread ident "
                   "(threading.get_ident(), a positive int) or \"gil\"")


def _tracker_new(name, relevant_thread, initially_active):
    """A registered tracker (a cdata), or the exception the C extension
    raises for these arguments."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    utf8 = name.encode("utf-8")
    if not utf8:
        raise ValueError("name must not be empty")
    if b"\0" in utf8:
        raise ValueError("name must not contain NUL characters")
    opts = ffi.new("perpetuo_tracker_options_t *")
    lib.perpetuo_tracker_options_init(opts)
    opts.initially_active = 1 if initially_active else 0
    if isinstance(relevant_thread, str):
        if relevant_thread != "gil":
            raise ValueError("relevant_thread must be a thread ident "
                             "(threading.get_ident()) or \"gil\"")
        opts.thread_hint = lib.PERPETUO_THREAD_GIL_HOLDER
    elif isinstance(relevant_thread, int) and \
            not isinstance(relevant_thread, bool):
        if not 0 < relevant_thread < 1 << 64:
            raise ValueError(_THREAD_MESSAGE)
        opts.thread_hint = lib.PERPETUO_THREAD_PTHREAD
        opts.thread_id = relevant_thread
    else:
        raise TypeError(
            f"relevant_thread must be an int (a thread ident) or \"gil\", "
            f"not {type(relevant_thread).__name__}")
    ret = ffi.new("perpetuo_tracker_t **")
    err = lib.perpetuo_tracker_new(ret, utf8, opts)
    if err == -_errno.ENOSPC:
        # Without reference counting (PyPy), trackers nobody holds any more
        # keep their slots until a collection finalizes them.
        _gc.collect()
        err = lib.perpetuo_tracker_new(ret, utf8, opts)
    if err:
        raise _error(err)
    return ret[0]


def _tracker_release(tracker, counter):
    """Idle first: a tracker freed while active would be a stall that never
    ends."""
    if counter[0] & 1:
        counter[0] += 1
    lib.perpetuo_tracker_free(tracker)


class StallTracker:
    """StallTracker(name, relevant_thread)

    A stall tracker: active while its thread holds something others need.
    `relevant_thread` is the thread to blame (threading.get_ident()) or
    "gil". A new tracker is active.
    """

    __slots__ = ("_tracker", "_counter", "_name", "__weakref__")

    def __init__(self, name, relevant_thread):
        self._tracker = None
        tracker = _tracker_new(name, relevant_thread, True)
        self._counter = lib.perpetuo_tracker_counter(tracker)
        self._tracker = tracker
        self._name = name

    def __del__(self, release=_tracker_release):
        tracker, self._tracker = getattr(self, "_tracker", None), None
        if tracker is not None:
            release(tracker, self._counter)

    def _check_open(self):
        if self._tracker is None:
            raise RuntimeError("StallTracker is closed")

    @property
    def name(self):
        """The tracker's name."""
        return self._name

    @property
    def closed(self):
        """Whether close() was called."""
        return self._tracker is None

    def go_active(self):
        """Mark the tracker active; RuntimeError if it already is."""
        self._check_open()
        counter = self._counter
        c = counter[0]
        if c & 1:
            raise RuntimeError("Already active")
        counter[0] = c + 1

    def go_idle(self):
        """Mark the tracker idle; RuntimeError if it already is."""
        self._check_open()
        counter = self._counter
        c = counter[0]
        if not c & 1:
            raise RuntimeError("Already idle")
        counter[0] = c + 1

    def is_active(self):
        """Whether the tracker is active."""
        self._check_open()
        return bool(self._counter[0] & 1)

    def counter_address(self):
        """The address of the tracker's 64-bit counter."""
        self._check_open()
        return int(ffi.cast("uintptr_t", self._counter))

    def close(self):
        """Release the tracker; any later use raises RuntimeError."""
        self._check_open()
        tracker, self._tracker = self._tracker, None
        _tracker_release(tracker, self._counter)

    def _leak(self):
        """Keep the tracker alive for ever."""
        _leaked.append(self)

    def __enter__(self):
        """Go active (if idle) for the block."""
        self._check_open()
        counter = self._counter
        c = counter[0]
        if not c & 1:
            counter[0] = c + 1
        return self

    def __exit__(self, *exc_info):
        """Go idle after the block."""
        if self._tracker is not None:
            counter = self._counter
            c = counter[0]
            if c & 1:
                counter[0] = c + 1
        return False

    def __repr__(self):
        if self._tracker is None:
            return f"<StallTracker {self._name!r} closed>"
        state = "active" if self._counter[0] & 1 else "idle"
        return f"<StallTracker {self._name!r} {state}>"


_leaked = []


# -------------------------------------------------------------------- Trio

# Task names published as details, with the bytes they point to: each must
# stay alive while it may be published. Bounded: a program that names
# tasks without end starts a new table now and then.
_DETAILS_MAX = 4096


class _TrioBase:
    __slots__ = ("_tracker", "_counter", "_detail", "_details", "_shown",
                 "_context", "__weakref__")

    def __init__(self):
        self._tracker = None
        self._counter = None
        self._detail = None
        self._details = {}
        self._shown = None
        self._context = None
        self._start_tracking()

    def _start_tracking(self):
        """A tracker for the run, made inside it (in the middle of a task
        step): active, blaming the run's thread, named as the original
        names it."""
        ident = _threading.get_ident()
        tracker = _tracker_new(f"Trio run loop (thread {ident:#_x})", ident,
                               True)
        self._counter = lib.perpetuo_tracker_counter(tracker)
        # perpetuo_detail_t as its two words, text and length: indexing is
        # cheaper than a structure's fields (on PyPy's JIT too).
        self._detail = ffi.cast("uint64_t *",
                                lib.perpetuo_tracker_detail(tracker))
        self._tracker = tracker

    def _stop_tracking(self):
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            _tracker_release(tracker, self._counter)
        # The context holds the runner, which holds us: let the run go now.
        self._counter = self._detail = self._shown = self._context = None
        self._details = {}

    def __del__(self):
        if getattr(self, "_tracker", None) is not None:
            self._stop_tracking()

    @property
    def tracking(self):
        """Whether the instrument holds a tracker now."""
        return self._tracker is not None

    def counter_address(self):
        """The address of the run's tracker's 64-bit counter."""
        if self._tracker is None:
            raise RuntimeError("Not tracking")
        return int(ffi.cast("uintptr_t", self._counter))

    def before_io_wait(self, timeout):
        """trio hook: the run loop is about to wait for I/O: idle."""
        counter = self._counter
        if counter is not None:
            c = counter[0]
            if c & 1:
                counter[0] = c + 1

    def after_run(self):
        """trio hook: the run is over; release the tracker."""
        self._stop_tracking()


class TrioInstrument(_TrioBase):
    """A trio.abc.Instrument that drives a StallTracker for the run it is
    added to: each task step's start moves the run loop's counter on
    (active if it was idle), and it goes idle in trio's I/O waits, so the
    counter stands still exactly while one step runs. Each step also
    publishes the task's name, for the report."""

    __slots__ = ()

    def before_task_step(self, task):
        """trio hook: a step begins: the run loop is active, and moving."""
        counter = self._counter
        if counter is None:
            self._start_tracking()
        else:
            c = counter[0]
            counter[0] = c + 2 if c & 1 else c + 1
        name = getattr(task, "name", None)
        if name is not self._shown:
            self._publish(name)

    def _read_task_from(self, context):
        """The run thread's dict of trio's GLOBAL_RUN_CONTEXT, where a
        step's task is found when trio's instrument group counts the step
        itself (until after_run)."""
        if type(context) is not dict:
            raise TypeError("_read_task_from() needs a dict, not %s"
                            % type(context).__name__)
        if self._tracker is not None:
            self._context = context

    def _run_hook(self, hookname):
        """What the hook's method does, without its argument (a step's task
        is in the run's context): whether it was done."""
        counter = self._counter
        if counter is None:
            return False
        if hookname == "before_task_step":
            context = self._context
            task = context.get("task") if context is not None else None
            if task is None:
                return False
            c = counter[0]
            counter[0] = c + 2 if c & 1 else c + 1
            name = getattr(task, "name", None)
            if name is not self._shown:
                self._publish(name)
            return True
        if hookname == "before_io_wait":
            c = counter[0]
            if c & 1:
                counter[0] = c + 1
            return True
        return False

    def _publish(self, name):
        entry = self._details.get(name) if isinstance(name, str) else None
        if entry is None and isinstance(name, str):
            if len(self._details) >= _DETAILS_MAX:
                # Kept until the new detail is out: the old one may still be.
                previous = self._details
                self._details = {}
            data = name.encode("utf-8", "replace")
            text = ffi.new("char[]", data)
            entry = (text, int(ffi.cast("uintptr_t", text)), len(data))
            self._details[name] = entry
        detail = self._detail
        # As perpetuo_detail_set(): no length while the text changes.
        detail[1] = 0
        if entry is not None:
            detail[0] = entry[1]
            detail[1] = entry[2]
        else:
            detail[0] = 0
        self._shown = name


class TrioIoWaitInstrument(_TrioBase):
    """A trio.abc.Instrument that keeps a StallTracker active from one I/O
    wait to the next."""

    __slots__ = ()

    def after_io_wait(self, timeout):
        """trio hook: the run loop woke up: active."""
        counter = self._counter
        if counter is None:
            self._start_tracking()
        else:
            c = counter[0]
            if not c & 1:
                counter[0] = c + 1

    def _run_hook(self, hookname):
        """What the hook's method does: whether it was done."""
        counter = self._counter
        if counter is None:
            return False
        c = counter[0]
        if hookname == "before_io_wait":
            if c & 1:
                counter[0] = c + 1
            return True
        if hookname == "after_io_wait":
            if not c & 1:
                counter[0] = c + 1
            return True
        return False


_RUN_IN_TEST = frozenset(("before_task_step", "before_io_wait",
                          "after_io_wait"))
_MISSING = object()


class TrioDispatch:
    """A base for trio's instrument group (instrument_trio() makes the
    run's group a subclass of trio's Instruments and of this, with this
    __contains__ and call()): when our instrument is a hook's only one,
    trio's test for the hook runs it and answers no, and a call of a task
    step's hook goes straight to it, without trio's dispatch (a list of the
    hook's instruments, a try, a getattr), which costs more than the hook;
    any other test is the truth, any other call goes to trio's own call(),
    unchanged (see _trio_dispatch.c)."""

    __slots__ = ()

    def __contains__(self, hookname):
        hooks = (self if isinstance(self, dict) else self.data).get(
            hookname, _MISSING)
        if hooks is _MISSING:
            return False
        if hookname in _RUN_IN_TEST and len(hooks) == 1:
            for instrument in hooks:
                if type(instrument) in _TRIO_INSTRUMENTS and \
                        instrument._run_hook(hookname):
                    return False
        return True

    def call(self, hookname, *args):
        if hookname == "before_task_step" and len(args) == 1:
            hooks = (self if isinstance(self, dict)
                     else getattr(self, "data", None) or {}).get(hookname)
            if hooks is not None and len(hooks) == 1:
                for instrument in hooks:
                    if type(instrument) is TrioInstrument and \
                            instrument._counter is not None:
                        instrument.before_task_step(args[0])
                        return None
        return _trio_call(type(self))(self, hookname, *args)


_TRIO_INSTRUMENTS = (TrioInstrument, TrioIoWaitInstrument)


def _trio_call(cls):
    """trio's own call(): the first in the class's MRO that is not ours
    (looked up each time, as whoever patches trio's would expect)."""
    ours = TrioDispatch.__dict__["call"]
    for base in cls.__mro__:
        found = base.__dict__.get("call")
        if found is not None and found is not ours:
            return found
    raise TypeError("TrioDispatch.call needs a class with a call() of its "
                    "own")


# ----------------------------------------------------------------- asyncio

class _WaitStandIn:
    """What AsyncioSelector and AsyncioPoller share: the loop's tracker,
    idle while the loop waits in the wrapped object's wait."""

    __slots__ = ("_inner", "_inner_wait", "_tracker", "_counter")

    def _start(self, inner, wait, name, thread, active):
        self._tracker = None
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}() argument 'name' must "
                            f"be str, not {type(name).__name__}")
        self._inner = inner
        self._inner_wait = wait
        tracker = _tracker_new(name, thread, bool(active))
        self._counter = lib.perpetuo_tracker_counter(tracker)
        self._tracker = tracker

    def __del__(self):
        self._release()

    def _release(self):
        tracker, self._tracker = getattr(self, "_tracker", None), None
        if tracker is not None:
            _tracker_release(tracker, self._counter)

    def _wait(self, *args, **kwargs):
        counter = self._counter if self._tracker is not None else None
        if counter is not None and counter[0] & 1:
            counter[0] += 1
        try:
            return self._inner_wait(*args, **kwargs)
        finally:
            # Even after an error: the loop may go on (an interrupted wait).
            if self._tracker is not None and not counter[0] & 1:
                counter[0] += 1

    @property
    def tracking(self):
        """Whether it holds the loop's tracker."""
        return self._tracker is not None

    @property
    def wrapped(self):
        """The real object."""
        return self._inner

    def idle(self):
        """The loop stopped running: its tracker goes idle until its next
        wait ends."""
        if self._tracker is not None and self._counter[0] & 1:
            self._counter[0] += 1

    def release(self):
        """Release the loop's tracker; the real object stays open."""
        self._release()

    def close(self, *args, **kwargs):
        """Release the loop's tracker, and close the real object."""
        self._release()
        return self._inner.close(*args, **kwargs)


class AsyncioSelector(_WaitStandIn):
    """AsyncioSelector(selector, loop, name, thread, active): stands in for
    an asyncio loop's selector, keeping the loop's tracker idle while the
    loop waits."""

    __slots__ = ("_loop",)

    def __init__(self, selector, loop, name, thread, active):
        self._loop = loop
        self._start(selector, selector.select, name, thread, active)

    def select(self, *args, **kwargs):
        """The real selector's select(), with the loop idle while it waits."""
        return self._wait(*args, **kwargs)

    def __getattr__(self, name):
        if name in _WaitStandIn.__slots__ or name in AsyncioSelector.__slots__:
            raise AttributeError(name)  # not set yet: no recursion
        return getattr(self._inner, name)


class AsyncioPoller(_WaitStandIn):
    """AsyncioPoller(poller, name, thread, active): stands in for the epoll
    or poll object of an asyncio loop's selector, keeping the loop's tracker
    idle while the loop waits."""

    __slots__ = ()

    def __init__(self, poller, name, thread, active):
        self._start(poller, poller.poll, name, thread, active)

    def poll(self, *args, **kwargs):
        """The real poll(), with the loop idle while it waits."""
        return self._wait(*args, **kwargs)

    def register(self, *args, **kwargs):
        return self._inner.register(*args, **kwargs)

    def modify(self, *args, **kwargs):
        return self._inner.modify(*args, **kwargs)

    def unregister(self, *args, **kwargs):
        return self._inner.unregister(*args, **kwargs)

    def fileno(self, *args, **kwargs):
        return self._inner.fileno(*args, **kwargs)

    @property
    def closed(self):
        """Whether the real poll object is closed."""
        return self._inner.closed


class AsyncioHeartbeat:
    """AsyncioHeartbeat(loop, name, thread, interval): a callback the loop
    runs every `interval` seconds, keeping the loop's tracker moving while
    the loop is healthy."""

    __slots__ = ("_call_later", "_interval", "_handle", "_tracker",
                 "_counter", "__weakref__")

    def __init__(self, loop, name, thread, interval):
        if not isinstance(name, str):
            raise TypeError(f"AsyncioHeartbeat() argument 'name' must be "
                            f"str, not {type(name).__name__}")
        interval = _as_float(interval)
        if not 0 < interval <= 60:
            raise ValueError(f"the heartbeat's interval must be more than 0 "
                             f"and at most 60 seconds, not {interval!r}")
        self._tracker = None
        self._handle = None
        self._call_later = loop.call_later
        self._interval = interval
        tracker = _tracker_new(name, thread, False)
        self._counter = lib.perpetuo_tracker_counter(tracker)
        self._tracker = tracker

    def __del__(self):
        self._stop_tracking()

    def _stop_tracking(self):
        tracker, self._tracker = getattr(self, "_tracker", None), None
        if tracker is not None:
            _tracker_release(tracker, self._counter)

    def _arm(self):
        self._handle = self._call_later(self._interval, self)

    def start(self):
        """A run of the loop begins, in this thread: active, beating."""
        if self._tracker is None:
            return
        if self._handle is None:
            self._arm()
        if not self._counter[0] & 1:
            self._counter[0] += 1

    def __call__(self):
        """The beat: the loop got round to its timers, so it is not
        stalled."""
        self._handle = None
        if self._tracker is None:
            return
        if self._counter[0] & 1:
            self._counter[0] += 2
        try:
            self._arm()
        except BaseException:
            # With no beat to come, an active tracker would report a stall
            # that is not one.
            self._stop_tracking()
            raise

    def idle(self):
        """The run ends: idle until the next start()."""
        if self._tracker is not None and self._counter[0] & 1:
            self._counter[0] += 1

    def close(self):
        """Release the loop's tracker and cancel the pending beat."""
        self._stop_tracking()
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    @property
    def tracking(self):
        """Whether it holds the loop's tracker."""
        return self._tracker is not None

    @property
    def active(self):
        """Whether the tracker is active."""
        return self._tracker is not None and bool(self._counter[0] & 1)

    @property
    def interval(self):
        """Seconds between beats."""
        return self._interval


# ------------------------------------------------------------------- GIL

def _as_float(value):
    """A number as the C extension's PyFloat_AsDouble() takes it: anything
    with __float__ or __index__, but no string."""
    if isinstance(value, (str, bytes)) or not (
            hasattr(type(value), "__float__") or
            hasattr(type(value), "__index__")):
        raise TypeError(f"must be real number, not {type(value).__name__}")
    return float(value)


def _nanosleep_holding_the_gil():
    """libc's nanosleep() through ctypes' PyDLL, which keeps the GIL during
    the call (cffi always lets it go), its struct timespec, and the errno
    it left; None where that does not hold."""
    if _platform.python_implementation() != "CPython":
        return None, None, None
    import ctypes

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    nanosleep = ctypes.PyDLL(None, use_errno=True).nanosleep
    nanosleep.argtypes = [ctypes.POINTER(Timespec), ctypes.POINTER(Timespec)]
    nanosleep.restype = ctypes.c_int
    return nanosleep, Timespec, ctypes.get_errno


_nanosleep, _Timespec, _get_errno = _nanosleep_holding_the_gil()


def stall_gil(seconds, /):
    """stall_gil(seconds)

    Sleep for `seconds` while holding the GIL (on PyPy, whose foreign calls
    all release its GIL, a plain sleep).
    """
    seconds = _as_float(seconds)
    if not seconds >= 0.0 or seconds > 86400.0:
        raise ValueError("seconds must be between 0 and 86400")
    if _nanosleep is None:
        _time.sleep(seconds)
        return
    whole = int(seconds)
    request = _Timespec(whole, int((seconds - whole) * 1e9))
    remaining = _Timespec()
    # Deliberately holding the GIL: that is the stall. Signals interrupt
    # the sleep, which then goes on for the rest of the time.
    while _nanosleep(request, remaining) != 0 and \
            _get_errno() == _errno.EINTR:
        request.tv_sec, request.tv_nsec = remaining.tv_sec, remaining.tv_nsec


# --------------------------------------------------------------- watcher

def _as_ms(value, what, min_s, max_s):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise TypeError(f"{what} must be a number of seconds, not "
                        f"{type(value).__name__}")
    s = float(value)
    if not min_s <= s <= max_s:
        raise ValueError(f"{what} must be between {min_s:g} and {max_s:g} "
                         f"seconds")
    ms = s * 1000.0 + 0.5
    return 1 if ms < 1.0 and min_s > 0 else int(ms)


def _watch_start(poll_interval, alert_interval, traceback_suppress,
                 print_locals, json_mode, watcher_path, all_threads,
                 native_stacks, /):
    """Start the watcher through libperpetuo; return its pid."""
    o = ffi.new("perpetuo_watch_options_t *")
    lib.perpetuo_watch_options_init(o)
    for field, value, what, low, high in (
            ("poll_interval_ms", poll_interval, "poll_interval", 0.001, 60.0),
            ("alert_interval_ms", alert_interval, "alert_interval", 0.001,
             86400.0),
            ("traceback_suppress_ms", traceback_suppress,
             "traceback_suppress", 0.0, 86400.0)):
        ms = _as_ms(value, what, low, high)
        if ms is not None:
            setattr(o, field, ms)
    o.print_locals = bool(print_locals)
    o.json_mode = bool(json_mode)
    o.all_threads = bool(all_threads)
    o.native_stacks = bool(native_stacks)
    path = None
    if watcher_path is not None:
        encoded = _os.fsencode(watcher_path)
        if b"\0" in encoded:
            raise ValueError("embedded null byte")
        path = ffi.new("char[]", encoded)
        o.watcher_path = path
    err = lib.perpetuo_watch_start(o)
    if err == -_errno.EALREADY:
        err = 0
    if err:
        raise _error(err, None if path is None else
                     _os.fsdecode(ffi.string(path)))
    return lib.perpetuo_watch_pid()


def _watch_stop():
    """Stop the watcher; return whether one was running."""
    err = lib.perpetuo_watch_stop()
    if err and err != -_errno.ESRCH:
        raise _error(err)
    return err == 0


def _watch_pid():
    """The running watcher's pid, or 0."""
    return lib.perpetuo_watch_pid()


# ------------------------------------------------- the interpreter's layout

# struct perpetuo__pylayout (libperpetuo/pylayout.h), its identity fields
# and `implementation`, for a block that says why there is no layout.
_PYLAYOUT_READY = 0x50594C31
_PYLAYOUT_VERSION = 1
_PYIMPL_CPYTHON_UNKNOWN = 1
_PYIMPL_PYPY = 2
_PYLAYOUT_HEAD = _struct.Struct("<14I")


def _publish_no_layout(implementation):
    values = [0] * 14
    values[0] = _PYLAYOUT_READY
    values[1] = _PYLAYOUT_HEAD.size
    values[2] = _PYLAYOUT_VERSION
    values[3] = _sys.hexversion
    values[13] = implementation
    block = _PYLAYOUT_HEAD.pack(*values)
    # As the C extension does: a region that cannot be created now is
    # reported by the first tracker, where it can be acted on.
    lib.perpetuo_runtime_layout_publish(block, len(block))


def _extension():
    """The C extension, on a CPython where it imports (which publishes the
    interpreter's layout), else None."""
    if _platform.python_implementation() != "CPython":
        return None
    try:
        from . import _perpetuo
    except ImportError:
        return None
    return _perpetuo


_cext = _extension()
if _cext is None:
    _publish_no_layout(_PYIMPL_PYPY
                       if _platform.python_implementation() == "PyPy"
                       else _PYIMPL_CPYTHON_UNKNOWN)

if _cext is None and _platform.python_implementation() == "PyPy":
    _no_contention = ("perpetuo watches the GIL contention of CPython only, "
                      "not PyPy's")
elif _cext is None:
    _no_contention = ("perpetuo watches the GIL contention of CPython "
                      "through its C extension (the GIL's state lies where "
                      "CPython's internal headers say), which does not "
                      "import here")
else:
    _no_contention = None


def _watch_gil_contention():
    """Watch the GIL from outside: a stall is a thread waiting for it while
    its holder keeps it. Idempotent. Needs the C extension (CPython's
    internal headers say where the GIL's state lies)."""
    if _cext is None:
        raise RuntimeError(_no_contention)
    _cext._watch_gil_contention()
