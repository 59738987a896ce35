"""Native stacks at a stall, checked frame by frame against real processes.

tests/targets/deep_target has 16 threads; one of them, the "staller", stalls
at the bottom of descend(40) -> ... -> descend(1) -> stall_here(), spinning
on the CPU or sleeping. The expected source lines are read from
deep_target.c itself, so the stacks are checked to the line. The libuv echo
server example is checked too: a real event loop blocked in a read handler.
"""

import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import TIMEOUT, _binary, events

DEPTH = 40
THREADS = 16
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                      "targets", "deep_target.c")


@pytest.fixture(scope="session")
def deep_target(builddir):
    return _binary(builddir, "tests/targets/deep_target",
                   "make tests/targets/deep_target, or make check")


# ------------------------------------------------------------ the target


def _source_lines():
    with open(SOURCE) as f:
        return f.read().splitlines()


def _line_of(lines, text, after=0):
    """The 1-based number of the first line from `after` containing text."""
    for i in range(after, len(lines)):
        if text in lines[i]:
            return i + 1
    raise AssertionError(f"{text!r} not in deep_target.c")


class Lines:
    """Where deep_target.c calls what: the lines the frames must carry."""

    def __init__(self):
        lines = _source_lines()
        self.recurse = _line_of(lines, "descend(depth - 1, how, ns);")
        self.bottom = _line_of(lines, "stall_here(how, ns);")
        start = _line_of(lines, "static void stall_here(")
        self.spin = range(_line_of(lines, "while (!stop)", start),
                          _line_of(lines, "} else if (how == HOW_SLEEP)",
                                   start))
        self.sleep = _line_of(lines, "nanosleep(&ts, &ts)", start)
        self.nap = _line_of(lines, "nanosleep(&ts, NULL);", start)


LINES = Lines()


class Deep:
    """A started deep_target and the thread ids it printed."""

    def __init__(self, proc):
        self.proc = proc
        self.pid = proc.value("PID")
        self.main = proc.value("MAIN TID")
        self.staller = proc.value("STALLER TID")
        self.pthread = proc.value("STALLER PTHREAD")
        proc.out.wait_for(lambda l: l == "READY", what="READY")
        self.idlers = [int(l.split()[-1]) for l in proc.out.text()
                       if l.startswith("IDLER TID ")]
        assert len(self.idlers) == THREADS - 2, proc.out.text()
        self.tids = [self.main, self.staller, *self.idlers]
        assert len(set(self.tids)) == THREADS, self.tids
        self.watcher_out = proc.err
        self.watcher = None  # the attached `perpetuo watch`, if any

    def window(self):
        """(begin_ns, end_ns) of its one stall."""
        out = self.proc.out.text()
        begins = [int(l.split()[-1]) for l in out
                  if l.startswith("STALL BEGIN")]
        ends = [int(l.split()[-1]) for l in out
                if l.startswith("STALL END")]
        assert len(begins) == len(ends) == 1, out
        return begins[0], ends[0]


def run_deep(procs, deep_target, steps, options=(), attach=None, env=None,
             json=True):
    """Runs deep_target's `steps` under a watcher: its own (--watch, with
    `options` for the target) or, with attach=[CLI options], `perpetuo watch`
    from outside, started with `env`."""
    if attach is None:
        p = procs.start([deep_target, "--watch", *(["--json"] if json else []),
                         "--poll-ms", "10", *options, *steps])
        deep = Deep(p)
        procs.adopt(p.value("WATCHER"))
        return deep
    p = procs.start([deep_target, *options, "gate", *steps])
    deep = Deep(p)
    w = procs.attach(deep.pid, *(["--json-mode"] if json else []),
                     "--poll-interval", "0.01", *attach,
                     env=env if env is not None else procs.env)
    deep.watcher, deep.watcher_out = w, w.err
    p.send()
    return deep


def stall_began(deep):
    """The one stall_began record, once the target has finished."""
    assert deep.proc.finish() == 0, deep.proc.out.text()
    if deep.watcher:
        assert deep.watcher.finish() == 0, deep.watcher.err.text()
    records = deep.watcher_out.records()
    began = events(records, "stall_began")
    assert len(began) == 1, records
    assert began[0]["additional_info"]["name"] == "deep target"
    return began[0]


def released(pid):
    """Every thread of `pid` runs untraced: none left stopped by the
    watcher, none still attached."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(l.split(":", 1) for l in f if ":" in l)
        except FileNotFoundError:
            continue
        assert status["TracerPid"].strip() == "0", (tid, status["TracerPid"])
        assert status["State"].split()[0] not in "tT", (tid, status["State"])


# ---------------------------------------------------------- the frames


def own(frame):
    return os.path.basename(frame["filename"]) == "deep_target.c"


def check_frame(frame):
    """The documented shape of a frame."""
    assert frame["native"] is True and frame["locals"] is None, frame
    assert re.fullmatch(r"0x[0-9a-f]+", frame["ip"]), frame
    assert re.fullmatch(r"0x[0-9a-f]+", frame["module_offset"]), frame
    assert isinstance(frame["inlined"], bool), frame
    if frame["function"] is not None:
        assert frame["name"] == frame["function"], frame
    if frame["inlined"] or frame["function"] is None:
        assert frame["offset"] is None, frame
    else:
        assert isinstance(frame["offset"], int) and frame["offset"] >= 0


def check_deep_trace(trace, how):
    """The staller's stack: stall_here innermost of our own code (below it
    only the C library's sleep), right outside it exactly DEPTH descend
    frames at the lines that call, and outside those the thread's function.
    Frames are outermost first."""
    for frame in trace:
        check_frame(frame)
    names = [f["name"] for f in trace]
    mine = [i for i, f in enumerate(trace) if own(f)]
    assert mine, names
    k = mine[-1]
    bottom = trace[k]
    assert bottom["name"] == "stall_here", names
    below = trace[k + 1:]
    if how == "spin":
        # It calls nothing while it spins: nothing can be below it.
        assert below == [], names
        assert bottom["line"] in LINES.spin, bottom
    else:
        assert below, "no C library frames below a sleeping stall_here"
        for f in below:
            assert os.path.basename(f["module"] or "").startswith("libc."), f
        assert any("nanosleep" in f["name"] for f in below), names
        assert bottom["line"] == (LINES.sleep if how == "sleep"
                                  else LINES.nap), bottom
    assert k >= DEPTH + 1, names
    descends = trace[k - DEPTH:k]
    assert [f["name"] for f in descends] == ["descend"] * DEPTH, names
    assert trace[k - DEPTH - 1]["name"] == "staller", names
    for f in descends[:-1]:
        assert f["line"] == LINES.recurse, f
    assert descends[-1]["line"] == LINES.bottom, descends[-1]
    for f in trace[k - DEPTH - 1:k + 1]:
        assert own(f) and not f["inlined"], f
        assert os.path.basename(f["module"]) == "deep_target", f
        assert f["function"] == f["name"], f
    # Return addresses of one call site are one address: one frame per level.
    assert len({f["ip"] for f in descends[:-1]}) == 1, descends


def check_thread(d, deep, hint, how):
    t = d["thread"]
    assert t["hint"] == hint, t
    assert t["tid"] == deep.staller, t
    assert t["name"] == "staller", t
    check_kind(t, how)


def check_kind(t, how):
    if how == "spin":
        assert t["kind"] == "on CPU", t
        assert t["state"] == "R" and t["syscall"] is None, t
    else:
        assert t["kind"].startswith("blocked in "), t
        assert t["syscall"] in ("clock_nanosleep", "nanosleep"), t
        assert t["kind"] == "blocked in " + t["syscall"], t
        assert t["state"] == "S", t


def check_capture(d, deep, stopped, count=1):
    c = d["capture"]
    assert c["error"] is None, c
    assert c["relevant_found"] is True, c
    assert c["threads_stopped"] == stopped, c
    assert isinstance(c["pause_us"], (int, float)) and c["pause_us"] > 0, c
    assert c["stop_us"] <= c["pause_us"] <= c["total_us"], c
    assert len(c["threads"]) == count, c
    relevant = c["threads"][0]
    assert relevant["tid"] == deep.staller and relevant["relevant"], c
    assert relevant["name"] == "staller", c
    traces = d["relevant_traces"] + d["other_traces"]
    assert [t["frames"] for t in c["threads"]] == [len(t) for t in traces]
    for t in c["threads"]:
        assert t["error"] is None, t
    return c


# ------------------------------------------------------------ the tests


@pytest.mark.parametrize("how", ["spin", "sleep"])
def test_relevant_thread_only(procs, deep_target, how):
    """The registrar hint, default options: the staller alone is stopped,
    found among 16 threads, and its stack is right to the line."""
    deep = run_deep(procs, deep_target, [f"{how}:0.5", "idle:0.1"])
    deep.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    released(deep.pid)
    began = stall_began(deep)
    begin_ns, end_ns = deep.window()
    assert begin_ns < began["monotonic_ns"] < end_ns
    d = began["stall_details"]
    assert len(d["relevant_traces"]) == 1, d
    assert d["other_traces"] == [], d
    check_deep_trace(d["relevant_traces"][0], how)
    check_thread(d, deep, "registrar", how)
    assert d["thread"]["pthread_id"] == deep.pthread
    check_capture(d, deep, stopped=1)
    check_kind(d["capture"]["threads"][0], how)


@pytest.mark.parametrize("where", ["library", "cli"])
def test_all_threads(procs, deep_target, where):
    """--all-threads (the CLI flag, or the watch option): all 16 threads
    stopped and shown, the staller first."""
    if where == "library":
        deep = run_deep(procs, deep_target, ["spin:0.5", "idle:0.1"],
                        options=["--all-threads"])
    else:
        deep = run_deep(procs, deep_target, ["spin:0.5", "idle:0.1"],
                        attach=["--all-threads"])
    deep.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    released(deep.pid)
    d = stall_began(deep)["stall_details"]
    assert len(d["relevant_traces"]) == 1, d
    check_deep_trace(d["relevant_traces"][0], "spin")
    assert len(d["other_traces"]) == THREADS - 1, d["other_traces"]
    assert all(d["other_traces"]), "a thread without a single frame"
    c = check_capture(d, deep, stopped=THREADS, count=THREADS)
    tids = [t["tid"] for t in c["threads"]]
    assert tids[0] == deep.staller
    assert sorted(tids) == sorted(deep.tids), (tids, deep.tids)
    assert [t["relevant"] for t in c["threads"]] == \
        [True] + [False] * (THREADS - 1)
    by_tid = dict(zip(tids[1:], d["other_traces"]))
    threads = {t["tid"]: t for t in c["threads"]}
    main = [f["name"] for f in by_tid[deep.main]]
    assert "main" in main and "staller_run" in main, main
    assert threads[deep.main]["name"] == "deep_target"
    for n, tid in enumerate(deep.idlers):
        names = [f["name"] for f in by_tid[tid]]
        assert "idler" in names and "pthread_cond_wait" in names, names
        assert "descend" not in names, names
        assert threads[tid]["name"] == f"idler{n}"
        assert threads[tid]["kind"] == "blocked in futex", threads[tid]
        for frame in by_tid[tid]:
            check_frame(frame)


@pytest.mark.parametrize("hint,how", [("native", "sleep"),
                                      ("pthread", "spin")])
def test_hint_names_another_thread(procs, deep_target, hint, how):
    """The main thread registers the tracker and names the staller by its
    native tid, or by its pthread_t (found by stopping every thread and
    matching thread pointers): the relevant stack is the staller's."""
    deep = run_deep(procs, deep_target, [f"{how}:0.5", "idle:0.1"],
                    options=["--hint", hint])
    deep.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    released(deep.pid)
    d = stall_began(deep)["stall_details"]
    assert len(d["relevant_traces"]) == 1, d
    check_deep_trace(d["relevant_traces"][0], how)
    assert d["other_traces"] == [], d
    t = d["thread"]
    assert t["hint"] == hint, t
    if hint == "native":
        check_thread(d, deep, hint, how)
        check_capture(d, deep, stopped=1)
    else:
        assert t["pthread_id"] == deep.pthread, t
        check_capture(d, deep, stopped=THREADS)
    check_kind(d["capture"]["threads"][0], how)


def test_pthread_hint_record_names_the_thread(procs, deep_target):
    deep = run_deep(procs, deep_target, ["sleep:0.5", "idle:0.1"],
                    options=["--hint", "pthread"])
    d = stall_began(deep)["stall_details"]
    assert d["capture"]["threads"][0]["tid"] == deep.staller
    check_thread(d, deep, "pthread", "sleep")


HOLD_MS = 800


@pytest.mark.parametrize("owner_s,ended", [(0.5, True), (1.6, False)],
                         ids=["ended", "control"])
def test_ended_during_capture(procs, deep_target, owner_s, ended):
    """The tracker names the staller, but the main thread owns it. The
    watcher keeps the staller stopped HOLD_MS (test hook); the main thread,
    not stopped, ends the stall in the meantime: ended_during_capture. The
    control stall outlasts the capture."""
    env = dict(procs.env, PERPETUO_TEST_FREEZE_HOLD_MS=str(HOLD_MS))
    deep = run_deep(procs, deep_target, [f"owner:{owner_s}", "idle:0.3"],
                    options=["--hint", "native"], attach=[], env=env)
    arrived, _ = deep.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    released(deep.pid)
    began = stall_began(deep)
    _, end_ns = deep.window()
    d = began["stall_details"]
    c = check_capture(d, deep, stopped=1)
    assert c["pause_us"] >= HOLD_MS * 1000 * 0.9, c
    check_deep_trace(d["relevant_traces"][0], "nap")
    assert d["thread"]["tid"] == deep.staller
    assert c["ended_during_capture"] is ended, c
    # The record is written once the stacks are taken: whether the stall
    # ended before it is what the flag says.
    if ended:
        assert began["monotonic_ns"] < end_ns < arrived, (began, end_ns)
    else:
        assert end_ns > arrived, (end_ns, arrived)


def test_text_mode(procs, deep_target):
    """The same stall in text: a "Native stack of thread" block, one
    escaped, indented line per frame, outermost first."""
    deep = run_deep(procs, deep_target, ["spin:0.5", "idle:0.1"], json=False)
    assert deep.proc.finish() == 0
    lines = deep.watcher_out.text()
    for line in deep.watcher_out.raw():
        assert line.startswith((b"perpetuo: ", b"  ")), line
        assert not any(c < 0x20 or c == 0x7F for c in line), line
    head = (f'  Native stack of thread {deep.staller} "staller", on CPU '
            "(most recent call last):")
    assert lines.count(head) == 1, lines
    start = lines.index(head) + 1
    end = next(i for i in range(start, len(lines))
               if not lines[i].startswith("    "))
    assert re.fullmatch(r"  Stacks taken in \d+\.\d{3} ms of pause "
                        r"\(1 thread stopped\)", lines[end]), lines[end]
    frame_re = re.compile(r'    File "(?P<file>[^"]*)"(, line (?P<line>\d+))?'
                          r", in (?P<func>\S+) "
                          r"(\(inlined\)|\[(?P<mod>[^\]]+)\+0x[0-9a-f]+\])")
    frames = [frame_re.fullmatch(l) for l in lines[start:end]]
    assert all(frames), lines[start:end]
    funcs = [m["func"] for m in frames]
    assert funcs[-1] == "stall_here", funcs
    assert funcs[-DEPTH - 1:-1] == ["descend"] * DEPTH, funcs
    assert funcs[-DEPTH - 2] == "staller", funcs
    for m in frames[-DEPTH - 2:]:
        assert os.path.basename(m["file"]) == "deep_target.c", m[0]
        assert m["mod"] == "deep_target", m[0]
    assert int(frames[-1]["line"]) in LINES.spin, frames[-1][0]
    assert int(frames[-2]["line"]) == LINES.bottom, frames[-2][0]
    assert {int(m["line"]) for m in frames[-DEPTH - 1:-2]} == {LINES.recurse}
    assert any(" in stall_here [" in l for l in lines[start:end])
    assert any(" in descend [" in l for l in lines[start:end])


# ---------------------------------------------------- symbol boundaries


_symbol_sizes = {}


def symbol_sizes(module):
    """{name: largest size} of the module's symbols (both tables), by nm."""
    cache = _symbol_sizes
    if module not in cache:
        nm = shutil.which("nm")
        if not nm:
            pytest.skip("binutils' nm is not installed: no symbol sizes to "
                        "check frame names against")
        sizes = {}
        for table in (["-D"], []):
            r = subprocess.run([nm, *table, "-S", "--defined-only", module],
                               capture_output=True, text=True)
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) == 4:
                    name = parts[3].split("@")[0]
                    sizes[name] = max(sizes.get(name, 0), int(parts[1], 16))
        cache[module] = sizes
    return cache[module]


def check_names_enclose(trace):
    """A frame named after a symbol of its module lies inside that symbol:
    an address past a symbol's end belongs to a function without a name of
    its own (a static function of a stripped library), not to the symbol
    before it."""
    for f in trace:
        if f["inlined"] or not f["function"] or not f["module"]:
            continue
        size = symbol_sizes(f["module"]).get(f["name"])
        if size:  # else: named from debug information, or sizeless
            assert f["offset"] <= size, (
                f"{f['name']}+{f['offset']} in {f['module']}: past the end "
                f"of {f['name']} ({size} bytes)")


def test_deep_names_enclose(procs, deep_target):
    deep = run_deep(procs, deep_target, ["sleep:0.5", "idle:0.1"])
    check_names_enclose(stall_began(deep)["stall_details"]
                        ["relevant_traces"][0])


# ---------------------------------------------------- the libuv example


def echo_slow(procs, examples):
    """Runs examples/echo_server with its JSON watcher, sends "slow" (a read
    that blocks the loop 0.5 s), and returns its stall_began record."""
    path = os.path.join(examples, "echo_server")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (run make)")
    server = procs.start([path, "--port", "0", "--json", "--exit-after", "1"],
                         stdin=False)
    _, port = server.out.wait_for(lambda l: l.isdigit(), what="the port")
    with socket.create_connection(("127.0.0.1", int(port)),
                                  timeout=TIMEOUT) as s:
        s.sendall(b"slow\n")
        echoed = b""
        while not echoed.endswith(b"\n"):
            chunk = s.recv(64)
            assert chunk, f"connection closed after {echoed!r}"
            echoed += chunk
    assert echoed == b"slow\n"
    assert server.finish() == 0, server.err.text()
    began = events(server.err.records(), "stall_began")
    assert len(began) == 1, server.err.text()
    assert began[0]["additional_info"]["name"] == "libuv loop"
    return server, began[0]


def test_echo_server_blocking_read(procs, examples):
    server, began = echo_slow(procs, examples)
    d = began["stall_details"]
    assert len(d["relevant_traces"]) == 1 and d["other_traces"] == [], d
    trace = d["relevant_traces"][0]
    for frame in trace:
        check_frame(frame)
    names = [f["name"] for f in trace]
    # The read handler on_read() blocks the loop in block_for(), a small
    # static function that -O2 (the examples' default CFLAGS) may inline
    # into on_read(): then it is a frame with "inlined": true, still named.
    # Either way it is the innermost frame of the server's own code, below
    # on_read() and above the C library's sleep.
    assert "on_read" in names and "block_for" in names, names
    blocker = names.index("block_for")
    assert names.index("on_read") < blocker, names
    assert blocker == max(i for i, f in enumerate(trace)
                          if f["module"] == trace[blocker]["module"]), names
    assert os.path.basename(trace[blocker]["filename"]) == "echo_server.c"
    assert any("nanosleep" in n for n in names[blocker + 1:]), names
    assert "uv_run" in names and "main" in names, names
    t = d["thread"]
    assert t["tid"] == server.pid and t["hint"] == "registrar", t
    assert t["kind"].startswith("blocked in "), t
    assert d["capture"]["threads_stopped"] == 1, d["capture"]
    assert d["capture"]["threads"][0]["tid"] == server.pid


def test_echo_server_names_enclose(procs, examples):
    _, began = echo_slow(procs, examples)
    check_names_enclose(began["stall_details"]["relevant_traces"][0])
