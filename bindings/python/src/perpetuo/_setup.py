"""The watcher and the instrumentation, as the original perpetuo offers them."""

from __future__ import annotations

import os
import sys
import threading
import types
import weakref

from ._backend import api as _perpetuo

StallTracker = _perpetuo.StallTracker

_lock = threading.Lock()
_gil_tracker: StallTracker | None = None


def _bundled_watcher() -> str | None:
    """The watcher shipped inside this package (a wheel), if there is one.

    Otherwise libperpetuo runs $PERPETUO_WATCHER, or the one installed beside
    the library.
    """
    path = os.path.join(os.path.dirname(__file__), "_watcher", "perpetuo")
    return path if os.access(path, os.X_OK) else None


def start_watcher(
    *,
    poll_interval: float | None = None,
    alert_interval: float | None = None,
    traceback_suppress: float | None = None,
    print_locals: bool = True,
    json_mode: bool = True,
) -> None:
    """Start the out-of-process watcher for this process.

    Returns once it is watching: a stall that begins after this returns is
    caught. Calling it again while the watcher runs changes nothing. Intervals
    are in seconds; None keeps the watcher's defaults (poll 0.05, alert 0.2,
    traceback_suppress 30).
    """
    global _watcher_alert_interval
    path = None if os.environ.get("PERPETUO_WATCHER") else _bundled_watcher()
    with _lock:
        starting = not _perpetuo._watch_pid()
        alert = DEFAULT_ALERT_INTERVAL if alert_interval is None \
            else alert_interval
        if starting and isinstance(alert, (int, float)):
            for heartbeat in list(_heartbeats):
                _check_heartbeat(heartbeat.interval, alert)
        _perpetuo._watch_start(poll_interval, alert_interval,
                               traceback_suppress, print_locals, json_mode,
                               path, False, True)
        if starting:
            _watcher_alert_interval = alert


def stop_watcher() -> None:
    """Stop the watcher started by start_watcher(), if it runs."""
    global _watcher_alert_interval
    with _lock:
        _perpetuo._watch_stop()
        _watcher_alert_interval = None


def instrument_gil(*, require_patch: bool = True) -> str:
    """Track the GIL.

    On a Python built with the perpetuo GIL patch (sys._set_stall_counter),
    the interpreter ticks a tracker as threads take and drop the GIL: a
    stall is one thread holding it too long. Without the patch this raises
    RuntimeError, as the original did, unless require_patch=False: then the
    watcher watches the GIL's own state from outside, and a stall is a
    thread that has asked for the GIL waiting too long while the holder
    keeps it (nobody waiting is never a stall).

    Returns "patch" or "contention", the way it tracks. Idempotent.
    """
    global _gil_tracker
    with _lock:
        if _gil_tracker is not None:
            return "patch"
        if not hasattr(sys, "_set_stall_counter"):
            if require_patch:
                raise RuntimeError(
                    "This Python was not built with the perpetuo GIL "
                    "instrumentation patch")
            _perpetuo._watch_gil_contention()
            return "contention"
        tracker = StallTracker("GIL", "gil")
        # The interpreter keeps the counter's address for ever: so must we
        # keep the tracker, even past module teardown.
        tracker._leak()
        sys._set_stall_counter(tracker.counter_address())
        _gil_tracker = tracker
        return "patch"


def instrument_trio(*, mode: str = "task_steps") -> None:
    """Track the current trio.run: call it from inside the run.

    mode="task_steps" (the default, as the original): the run loop is active
    during each task step, and a stall report names the task. "io_waits": the
    run loop is active from the end of one I/O wait to the start of the next,
    which costs one pair of ticks per batch of steps rather than per step, and
    also reports a batch of short steps that together hold the loop too long;
    it cannot name the task.
    """
    import trio

    if mode == "task_steps":
        kind = _perpetuo.TrioInstrument
    elif mode == "io_waits":
        kind = _perpetuo.TrioIoWaitInstrument
    else:
        raise ValueError(
            f"mode must be 'task_steps' or 'io_waits', not {mode!r}")
    # Outside trio.run this raises RuntimeError, as the original does, and
    # before any tracker exists.
    trio.lowlevel.current_task()
    instrument = kind()
    trio.lowlevel.add_instrument(instrument)
    _dispatch_hooks_in_c(instrument)


_dispatch_classes: dict = {}


def _dispatch_hooks_in_c(instrument) -> bool:
    """Lets the run's instrument group run our hooks without trio's Python
    dispatch, which costs more than the hooks (see _trio_dispatch.c):
    its class becomes a subclass of trio's own whose call(), and where
    trio's membership test is dict's or UserDict's its __contains__, are
    _perpetuo.TrioDispatch's. Where trio is not as expected, nothing
    changes and trio dispatches as usual. Whether it did."""
    dispatch = getattr(_perpetuo, "TrioDispatch", None)
    if dispatch is None or (not hasattr(instrument, "before_task_step") and
                            "__contains__" not in dispatch.__dict__):
        return False  # nothing it would do faster than trio
    try:
        from trio._core._instrumentation import Instruments
        from trio._core._run import GLOBAL_RUN_CONTEXT
        from trio.lowlevel import current_task

        group = GLOBAL_RUN_CONTEXT.runner.instruments
        # The run thread's own dict of the thread-local context, where trio
        # puts each step's task just before testing for the hook.
        context = GLOBAL_RUN_CONTEXT.__dict__
    except (ImportError, AttributeError):
        return False
    if not isinstance(group, dispatch):
        if type(group) is not Instruments or not callable(
                getattr(Instruments, "call", None)):
            return False
        with _lock:
            cls = _dispatch_classes.get(Instruments)
            if cls is None:
                cls = _dispatch_class(Instruments, dispatch)
                _dispatch_classes[Instruments] = cls
        try:
            group.__class__ = cls
        except TypeError:
            return False
    if (hasattr(instrument, "_read_task_from")
            and "__contains__" in type(group).__dict__
            and type(context) is dict
            and context.get("task") is current_task()):
        instrument._read_task_from(context)
    return True


def _dispatch_class(instruments: type, dispatch: type) -> type:
    from collections import UserDict

    members = {"__slots__": (), "__module__": __name__,
               "call": dispatch.__dict__["call"]}
    # Ours tests membership as dict's and UserDict's do; another is left be.
    # The cffi backend's, a Python function, is a call where dict's test is
    # C: on CPython it would cost more than the dispatch it saves (PyPy's JIT
    # inlines it).
    ours = dispatch.__dict__.get("__contains__")
    theirs = instruments.__contains__
    if ours is not None and (
            theirs is UserDict.__contains__ or
            (theirs is dict.__contains__ and (
                not isinstance(ours, types.FunctionType) or
                sys.implementation.name == "pypy"))):
        members["__contains__"] = ours
    # trio's class first: the instance layout stays its own, which __class__
    # assignment requires.
    return type("Instruments", (instruments, dispatch), members)


def _thread_hex(ident: int) -> str:
    return f"{ident:#_x}"


def _hook_loop_exit() -> None:
    """A stopping loop leaves run_forever() right after its last callbacks,
    without waiting again: its tracker would stay active. Every asyncio
    version clears the running loop then, through the module attribute
    asyncio.events._set_running_loop: that is where it goes idle."""
    import asyncio.events as events

    original = events._set_running_loop
    if getattr(original, "_perpetuo_hook", False):
        return

    def _set_running_loop(loop):
        if loop is None:
            waiter = _selector_stand_in(events._get_running_loop())
            if waiter is not None:
                waiter.idle()
        original(loop)

    _set_running_loop._perpetuo_hook = True
    events._set_running_loop = _set_running_loop


def _poll_like_selectors() -> tuple:
    """The selectors whose select() waits in self._selector.poll()."""
    import selectors

    return tuple(getattr(selectors, name) for name in
                 ("EpollSelector", "PollSelector", "DevpollSelector")
                 if hasattr(selectors, name))


def _selector_stand_in(loop):
    """Our stand-in at a selector loop's wait, if the loop has one."""
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, _perpetuo.AsyncioSelector):
        return selector
    poller_type = getattr(_perpetuo, "AsyncioPoller", None)
    poller = getattr(selector, "_selector", None)
    if poller_type is not None and isinstance(poller, poller_type):
        return poller
    return None


def _instrument_selector(loop, selector) -> None:
    """Stands in at the loop's wait: for the selector's poll object where it
    has one (cheaper: see _asyncio.c), else for the whole selector."""
    _hook_loop_exit()
    running = loop.is_running()
    thread = getattr(loop, "_thread_id", None) if running else None
    thread = thread or threading.get_ident()
    name = f"asyncio loop (thread {_thread_hex(thread)})"
    poller_type = getattr(_perpetuo, "AsyncioPoller", None)
    poller = getattr(selector, "_selector", None)
    if poller_type is not None and type(selector) in _poll_like_selectors() \
            and callable(getattr(poller, "poll", None)):
        selector._selector = poller_type(poller, name, thread, running)
    else:
        loop._selector = _perpetuo.AsyncioSelector(
            selector, loop, name, thread, running)


HEARTBEAT_INTERVAL = 0.025
DEFAULT_ALERT_INTERVAL = 0.2  # the watcher's
_watcher_alert_interval = None  # of the watcher we started (seconds)
_heartbeats: weakref.WeakSet = weakref.WeakSet()


def _check_heartbeat(interval: float, alert_interval: float) -> None:
    """A healthy loop beats every `interval`: with the watcher's threshold
    less than two beats apart, the time between two beats would read as a
    stall."""
    if interval > alert_interval / 2:
        raise ValueError(
            f"the heartbeat's interval ({interval} s) must be at most half "
            f"the watcher's alert_interval ({alert_interval} s): a healthy "
            f"loop would look stalled between two beats")


class _LoopHeartbeat:
    """The heartbeat of one loop, and the instance-level wrappers that tell
    it when the loop's runs begin and end.

    uvloop's Loop (like any Python subclass of a loop) keeps a __dict__,
    and looks its own run_forever() up as an attribute (run_until_complete()
    calls self.run_forever()): a wrapper stored in the instance sees every
    later run begin and end. The run in progress when the loop is
    instrumented is _RunEndHook's.
    """

    def __init__(self, loop, interval: float):
        self.loop = loop
        self.interval = interval
        self.thread = None
        self.beat = None
        self._run_forever = loop.run_forever
        self._close = loop.close

    def _beat_here(self):
        """The heartbeat for this thread: a loop run by another thread
        than last time gets a tracker naming that one."""
        thread = threading.get_ident()
        if self.beat is None or self.thread != thread:
            if self.beat is not None:
                self.beat.close()
            self.beat = None
            self.thread = thread
            self.beat = _perpetuo.AsyncioHeartbeat(
                self.loop, f"asyncio loop (thread {_thread_hex(thread)})",
                thread, self.interval)
        return self.beat

    def start(self):
        self._beat_here().start()

    def run_ended(self):
        if self.beat is not None:
            self.beat.idle()

    def run_forever(self, *args, **kwargs):
        if self.loop.is_running():
            # The loop refuses a second run; the one going on keeps its
            # tracker as it is.
            return self._run_forever(*args, **kwargs)
        try:
            self.start()
        except OSError:
            pass  # no tracker to be had (all slots in use): run untracked
        try:
            return self._run_forever(*args, **kwargs)
        finally:
            self.run_ended()

    def close(self, *args, **kwargs):
        try:
            return self._close(*args, **kwargs)
        finally:
            # A running loop refuses to close, and stays tracked.
            if self.loop.is_closed():
                self.release()

    def install(self):
        attrs = vars(self.loop)
        attrs["run_forever"] = self.run_forever
        attrs["close"] = self.close
        attrs["_perpetuo_heartbeat"] = self
        _heartbeats.add(self)

    def release(self):
        attrs = vars(self.loop)
        for name in ("run_forever", "close", "_perpetuo_heartbeat"):
            attrs.pop(name, None)
        if self.beat is not None:
            self.beat.close()
        _heartbeats.discard(self)


class _RunEndHook:
    """Sees the end of the run in progress when a heartbeat loop is
    instrumented, which began before its run_forever() wrapper existed.

    Every asyncio loop's run_forever() (asyncio's, uvloop's) restores the
    async generator hooks in a `finally` as it returns, through
    sys.set_asyncgen_hooks looked up at the call: so this stands in for
    that function until the loop's thread calls it with the loop no longer
    running, which is that end, whether the run stopped or an exception
    ended it. Then it puts the
    original back, unless someone replaced it since, in which case it stays
    in place, passing every call through.
    """

    def __init__(self, heartbeat: _LoopHeartbeat):
        self.heartbeat: _LoopHeartbeat | None = heartbeat
        self.thread = threading.get_ident()
        self.original = sys.set_asyncgen_hooks
        sys.set_asyncgen_hooks = self

    def __call__(self, *args, **kwargs):
        # The loop is no longer running only at that end (a nested run it
        # refuses sets the hooks too, uvloop's before refusing).
        if self.heartbeat is not None and \
                threading.get_ident() == self.thread and \
                not self.heartbeat.loop.is_running():
            heartbeat, self.heartbeat = self.heartbeat, None
            heartbeat.run_ended()
            if sys.set_asyncgen_hooks is self:
                sys.set_asyncgen_hooks = self.original
        return self.original(*args, **kwargs)


def _instrument_heartbeat(loop, interval: float) -> None:
    if getattr(loop, "_perpetuo_heartbeat", None) is not None:
        return
    try:
        vars(loop)
    except TypeError:
        raise TypeError(
            f"perpetuo cannot instrument a {type(loop).__name__} loop: it "
            f"has neither a selector nor an instance __dict__ to hook its "
            f"runs") from None
    for name in ("run_forever", "close", "call_later", "is_running",
                 "is_closed"):
        if not callable(getattr(loop, name, None)):
            raise TypeError(
                f"perpetuo cannot instrument a {type(loop).__name__} loop: "
                f"it has no {name}() method")
    if loop.is_closed():
        raise RuntimeError("the event loop is closed")
    if _watcher_alert_interval is not None:
        _check_heartbeat(interval, _watcher_alert_interval)
    running = loop.is_running()
    if running:
        import asyncio.events

        if asyncio.events._get_running_loop() is not loop:
            raise RuntimeError(
                "instrument_asyncio() must be called from the thread that "
                "runs the loop")
    heartbeat = _LoopHeartbeat(loop, interval)
    if running:
        heartbeat.start()
        _RunEndHook(heartbeat)
    heartbeat.install()


def instrument_asyncio(loop=None, *, heartbeat_interval: float | None = None
                       ) -> str:
    """Track an asyncio event loop: the running one by default.

    On asyncio's selector loops (the default on Unix) the loop's tracker is
    active while the loop runs callbacks and idle while it waits for I/O:
    perpetuo stands in for the selector's epoll or poll object (or, for
    other selectors, the selector itself), whose wait is the loop's one
    wait, so it costs one tick pair per loop iteration. On other loops
    (uvloop, ...) a heartbeat the loop runs every `heartbeat_interval`
    seconds (default 0.025) keeps the tracker moving while the loop is
    healthy; a stall's length is then overstated by at most that interval.
    Either way, a stall is a callback (a task step) that keeps the loop
    longer than the threshold. Closing the loop releases the tracker.
    Idempotent.

    Returns the way it tracks, "selector" or "heartbeat". Raises
    RuntimeError without a running loop when `loop` is not given, and
    TypeError for a loop it cannot instrument.
    """
    import asyncio
    import asyncio.selector_events

    if heartbeat_interval is None:
        heartbeat_interval = HEARTBEAT_INTERVAL
    elif not isinstance(heartbeat_interval, (int, float)) or \
            isinstance(heartbeat_interval, bool):
        raise TypeError(
            f"heartbeat_interval must be a number of seconds, not "
            f"{type(heartbeat_interval).__name__}")
    elif not 0 < heartbeat_interval <= 60:
        raise ValueError(
            f"the heartbeat's interval must be more than 0 and at most 60 "
            f"seconds, not {heartbeat_interval!r}")
    if loop is None:
        loop = asyncio.get_running_loop()
    with _lock:
        if _selector_stand_in(loop) is not None:
            return "selector"
        selector = getattr(loop, "_selector", None)
        if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop) \
                or selector is None:
            _instrument_heartbeat(loop, float(heartbeat_interval))
            return "heartbeat"
        _instrument_selector(loop, selector)
        return "selector"


def uninstrument_asyncio(loop=None) -> bool:
    """Stop tracking an asyncio event loop (the running one by default):
    release its tracker and put the loop back as it was. Closing the loop
    does the same. Returns whether the loop was instrumented.

    A running loop must be uninstrumented from its own thread (RuntimeError
    otherwise): its tracker is ticked there.
    """
    import asyncio
    import asyncio.events

    if loop is None:
        loop = asyncio.get_running_loop()
    with _lock:
        stand_in = _selector_stand_in(loop)
        heartbeat = getattr(loop, "_perpetuo_heartbeat", None)
        if stand_in is None and not isinstance(heartbeat, _LoopHeartbeat):
            return False
        if loop.is_running() and asyncio.events._get_running_loop() is not loop:
            raise RuntimeError(
                "uninstrument_asyncio() must be called from the thread that "
                "runs the loop")
        if stand_in is None:
            heartbeat.release()
        else:
            stand_in.release()
            if stand_in is loop._selector:
                loop._selector = stand_in.wrapped
            else:
                loop._selector._selector = stand_in.wrapped
        return True


def dwim(**kwargs) -> list[str]:
    """Instrument what can be, start the watcher if anything was; say what."""
    did = []
    try:
        how = instrument_gil(require_patch=False)
    except (RuntimeError, OSError):
        pass
    else:
        did.append("instrumented GIL" if how == "patch"
                   else "watching GIL contention")
    if "trio" in sys.modules:
        try:
            instrument_trio()
        except RuntimeError:
            pass
        else:
            did.append("instrumented Trio")
    if "asyncio" in sys.modules:
        import asyncio
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            try:
                how = instrument_asyncio(loop)
            except TypeError:
                pass
            else:
                did.append(f"instrumented asyncio ({how})")
    if did:
        start_watcher(**kwargs)
        did.append("started out of process watcher")
    return did
