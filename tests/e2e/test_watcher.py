"""The watcher against real stalling targets: detection while it happens, the
life of a stall, exit with the target, and what must not be reported.

Bounds are generous (this runs on loaded 2-core machines); what is asserted
exactly is the order of events and how many records a stall produces.
"""

import ctypes
import datetime
import json
import os
import select
import signal
import time

import pytest

from conftest import (MODES, TIMEOUT, by_stall, events, proc_state, scripted,
                      stall_windows, wait_state)

THRESHOLD_MS = 200


def check_single_stall(run, true_s, threshold_ms=THRESHOLD_MS):
    """The one stall of the run was reported while it happened, began exactly
    once, and ended with about its true length."""
    records = run.records()
    (begin_ns, end_ns), = stall_windows(run.target)
    stalls = by_stall(records)
    assert len(stalls) == 1, records
    (stall_id, life), = stalls.items()
    kinds = [r["event"] for r in life]
    assert kinds[0] == "stall_began" and kinds[-1] == "stall_ended", kinds
    assert kinds.count("stall_began") == 1, kinds
    assert kinds.count("stall_ended") == 1, kinds
    # Backoff, not a record per poll: at 2x the threshold, then 4x ...
    assert kinds.count("stall_continues") <= 2, kinds
    began, ended = life[0], life[-1]
    # Reported while it happened: after the target entered, before it left.
    assert begin_ns < began["monotonic_ns"] < end_ns, (begin_ns, began, end_ns)
    assert began["stall_details"]["length_ms"] >= threshold_ms
    assert began["stall_details"]["length_ms"] < true_s * 1000
    assert began["stall_details"]["rate_limited"] is False
    assert ended["monotonic_ns"] >= end_ns
    assert ended["stall_details"]["end_reason"] == "progress"
    total_ms = ended["stall_details"]["total_ms"]
    assert ended["stall_details"]["length_ms"] == total_ms
    assert (true_s - 0.2) * 1000 <= total_ms <= (true_s + 0.3) * 1000, ended
    for r in life:
        assert r["stall_details"]["stall_id"] == stall_id
        assert r["additional_info"]["pid"] == str(run.target.pid)
        assert r["additional_info"]["name"] == "stall target"
    return life


@pytest.mark.parametrize("mode", MODES)
def test_stall_reported_while_it_happens(procs, mode):
    run = scripted(procs, mode, ["stall:0.5", "idle:0.2"])
    assert run.finish() == 0
    check_single_stall(run, 0.5)


@pytest.mark.parametrize("mode", MODES)
def test_long_stall_backs_off(procs, mode):
    """A 1.3 s stall: began at the threshold, continues at 2x and 4x it (0.4
    and 0.8 s), then ended: a handful of records, not one per 10 ms poll."""
    run = scripted(procs, mode, ["stall:1.3", "idle:0.2"])
    assert run.finish() == 0
    life = check_single_stall(run, 1.3)
    lengths = [r["stall_details"]["length_ms"] for r in life
               if r["event"] == "stall_continues"]
    assert 1 <= len(lengths) <= 3, life
    for k, length in enumerate(lengths):
        assert length >= THRESHOLD_MS * 2 ** (k + 1), lengths
    assert lengths == sorted(lengths)
    assert all(r["stall_details"]["rate_limited"] for r in life[1:])


def text_stall_lines(lines, pid):
    began = [l for l in lines if l.startswith("perpetuo: stall 1 in ")
             and "active for" in l]
    ended = [l for l in lines if l.startswith("perpetuo: stall 1 in ")
             and "ended after" in l]
    for l in began + ended:
        assert f'"stall target" (pid {pid}, thread {pid} "stall_target")' in l
    return began, ended


def test_text_mode_library_in_order(procs):
    """Text mode, the target's stdout and stderr on one pipe: the watcher's
    stall line comes between the target's STALL BEGIN and STALL END."""
    run = scripted(procs, "library", ["stall:0.5", "idle:0.2"], json=False,
                   merge=True)
    assert run.finish() == 0
    lines = run.target.out.text()
    began, ended = text_stall_lines(lines, run.target.pid)
    assert len(began) == 1 and len(ended) == 1, lines
    i_begin = next(i for i, l in enumerate(lines) if l.startswith("STALL BEGIN"))
    i_end = next(i for i, l in enumerate(lines) if l.startswith("STALL END"))
    assert i_begin < lines.index(began[0]) < i_end < lines.index(ended[0]), lines
    total = float(ended[0].split("ended after ")[1].split()[0])
    assert 0.3 <= total <= 0.8, ended
    assert any(l.startswith("perpetuo: watching pid") for l in lines), lines


def test_text_mode_attached(procs):
    """Text mode, attached: the stall line arrives before the stall ends."""
    run = scripted(procs, "attach", ["stall:0.5", "idle:0.2"], json=False)
    arrived, _ = run.watcher_out.wait_for(lambda l: "active for" in l)
    assert run.finish() == 0
    (_, end_ns), = stall_windows(run.target)
    assert arrived < end_ns, "the report came after the stall ended"
    began, ended = text_stall_lines(run.watcher_out.text(), run.target.pid)
    assert len(began) == 1 and len(ended) == 1
    total = float(ended[0].split("ended after ")[1].split()[0])
    assert 0.3 <= total <= 0.8, ended
    last = run.watcher_out.text()[-1]
    assert last.startswith("perpetuo: ") and "stopped watching" in last, last
    assert f"pid {run.target.pid} exited" in last, last


def test_busy_target_is_not_reported(procs):
    """Ticking every ~100 us for 5 s is no stall."""
    run = scripted(procs, "library", ["busy:5"])
    assert run.finish() == 0
    ticks = run.target.value("BUSY TICKS")
    assert ticks > 5000, f"the target ticked only {ticks} times"
    assert events(run.records()) == [], run.records()


@pytest.mark.parametrize("mode", MODES)
def test_short_stall_and_own_threshold(procs, mode):
    """Below the threshold is not a stall; a tracker's own threshold (400 ms)
    wins over the alert interval (200 ms)."""
    run = scripted(procs, mode, ["stall:0.05", "stall:0.3", "stall:0.7",
                                 "idle:0.2"],
                   target_args=["--threshold-ms", "400"])
    assert run.finish() == 0
    records = run.records()
    stalls = by_stall(records)
    assert len(stalls) == 1, records
    (life,) = stalls.values()
    windows = stall_windows(run.target)
    began = life[0]
    assert windows[2][0] < began["monotonic_ns"] < windows[2][1]
    assert began["stall_details"]["threshold_ms"] == 400
    assert began["stall_details"]["length_ms"] >= 400


def test_rate_limited_tracebacks_still_report(procs):
    """Two stalls in a row, default 30 s traceback suppression: the second is
    reported all the same, with rate_limited true."""
    run = scripted(procs, "library", ["stall:0.4", "idle:0.1", "stall:0.4",
                                      "idle:0.2"])
    assert run.finish() == 0
    stalls = by_stall(run.records())
    assert len(stalls) == 2, run.records()
    first, second = stalls.values()
    assert first[0]["event"] == second[0]["event"] == "stall_began"
    assert first[0]["stall_details"]["rate_limited"] is False
    assert second[0]["stall_details"]["rate_limited"] is True
    assert first[-1]["event"] == second[-1]["event"] == "stall_ended"
    assert first[0]["stall_details"]["stall_id"] != \
        second[0]["stall_details"]["stall_id"]


def test_no_suppression_no_rate_limit(procs):
    run = scripted(procs, "library", ["stall:0.4", "idle:0.1", "stall:0.4",
                                      "idle:0.2"], suppress_ms=0)
    assert run.finish() == 0
    stalls = by_stall(run.records())
    assert [life[0]["stall_details"]["rate_limited"]
            for life in stalls.values()] == [False, False]


def test_json_records(procs):
    """Every line is one JSON object with the original perpetuo's fields and
    ours, of the documented types."""
    run = scripted(procs, "library", ["stall:0.5", "idle:0.2"])
    assert run.finish() == 0
    records = run.records()
    pid = run.target.pid
    kinds = [r["event"] for r in records]
    assert kinds[:2] == ["watch_attaching", "watch_started"], kinds
    assert kinds[-1] == "watch_ended", kinds
    # The original perpetuo's start messages.
    assert records[0]["message"] == f"Attempting to monitor pid {pid}..."
    assert records[1]["message"] == f"Successfully monitoring pid {pid}"
    previous = 0
    for r in records:
        assert r["schema"] == 1
        assert r["severity"] in ("INFO", "WARNING")
        assert isinstance(r["message"], str) and r["message"]
        assert r["additional_info"]["pid"] == str(pid)
        assert isinstance(r["monotonic_ns"], int)
        assert r["monotonic_ns"] >= previous
        previous = r["monotonic_ns"]
        stamp = r["timestamp"]
        assert stamp.endswith("Z"), stamp
        wall = datetime.datetime.fromisoformat(stamp[:-1] + "+00:00")
        age = datetime.datetime.now(datetime.timezone.utc) - wall
        assert abs(age.total_seconds()) < 60, stamp
    argv = [os.fsdecode(a) for a in run.target.argv]
    for r in events(records):
        assert r["severity"] == ("INFO" if r["event"] == "stall_ended"
                                 else "WARNING")
        assert r["message"] == {"stall_began": "Stall detected",
                                "stall_continues": "Stall still going",
                                "stall_ended": "Stall ended"}[r["event"]]
        assert r["additional_info"] == {"name": "stall target",
                                        "pid": str(pid)}
        d = r["stall_details"]
        assert isinstance(d["length_ms"], (int, float))
        assert isinstance(d["relevant_traces"], list)
        assert isinstance(d["other_traces"], list)
        assert d["cmdline"] == argv
        assert isinstance(d["rate_limited"], bool)
        assert isinstance(d["stall_id"], int) and d["stall_id"] >= 1
        assert d["threshold_ms"] == THRESHOLD_MS
        assert d["tracker_slot"] == 0
        assert d["thread"]["hint"] == "registrar"
        assert d["thread"]["tid"] == pid
        assert d["thread"]["name"] == "stall_target"
        assert isinstance(d["thread"]["pthread_id"], int)
        if r["event"] == "stall_ended":
            assert d["total_ms"] == d["length_ms"]
            assert d["end_reason"] == "progress"


# A tracker name with everything a log line must survive.
NASTY_NAME = (b'q"uo\\te\nnew\rline\ttab\x01\x1b[31m\x7f'
              b'\xc2\x85\xff\xfe\xc3\xa9 end')
NASTY_TEXT = (r'q\x22uo\x5cte\x0anew\x0dline\x09tab\x01\x1b[31m\x7f'
              r'\xc2\x85\xff\xfe' '\u00e9 end')
NASTY_THREAD = b'th"\x01\xff'


def test_nasty_name_json(procs):
    run = scripted(procs, "library", ["stall:0.6", "idle:0.2"],
                   target_args=[b"--name", NASTY_NAME,
                                b"--thread-name", NASTY_THREAD])
    assert run.finish() == 0
    records = run.records()  # strict UTF-8, valid JSON, one per line
    stall = events(records)
    assert stall, records
    for r in stall:
        assert r["additional_info"]["name"] == NASTY_NAME.decode(
            "utf-8", "replace")
        assert r["stall_details"]["thread"]["name"] == NASTY_THREAD.decode(
            "utf-8", "replace")
        assert r["stall_details"]["cmdline"] == [
            os.fsencode(a).decode("utf-8", "replace") for a in run.target.argv]


def test_nasty_name_text(procs):
    run = scripted(procs, "library", ["stall:0.6", "idle:0.2"], json=False,
                   target_args=[b"--name", NASTY_NAME,
                                b"--thread-name", NASTY_THREAD])
    assert run.finish() == 0
    lines = run.target.err.raw()
    assert lines, "no report"
    # A record starts "perpetuo: ", its details are indented; nothing in
    # them can forge such a start or drive a terminal.
    for line in lines:
        assert line.startswith((b"perpetuo: ", b"  ")), lines
        assert not any(c < 0x20 or c == 0x7F for c in line), line
        line.decode("utf-8")
    text = [l.decode() for l in lines]
    stall = [l for l in text if l.startswith("perpetuo: stall 1 in ")]
    assert len(stall) >= 2, text
    for l in stall:
        assert l.startswith(f'perpetuo: stall 1 in "{NASTY_TEXT}" (pid '), l
        assert r'"th\x22\x01\xff")' in l, l


def test_detail_reported_and_escaped(procs):
    """The tracker's published detail: in every record of a stall but the
    last, whole, escaped like any string from the target."""
    run = scripted(procs, "library", ["stall:0.5", "idle:0.2"],
                   target_args=[b"--detail", NASTY_NAME])
    assert run.finish() == 0
    stall = events(run.records())
    assert [r["event"] for r in stall][0] == "stall_began", stall
    for r in stall:
        if r["event"] == "stall_ended":
            assert "detail" not in r["stall_details"], r
        else:
            assert r["stall_details"]["detail"] == NASTY_NAME.decode(
                "utf-8", "replace"), r


def test_detail_absent_and_capped(procs):
    run = scripted(procs, "library", ["stall:0.6", "idle:0.2"])
    assert run.finish() == 0
    began = events(run.records(), "stall_began")
    assert began and began[0]["stall_details"]["detail"] is None
    long = "d" * 300
    run = scripted(procs, "library", ["stall:0.6", "idle:0.2"],
                   target_args=["--detail", long])
    assert run.finish() == 0
    began = events(run.records(), "stall_began")
    assert began[0]["stall_details"]["detail"] == "d" * 256  # at most 256


def test_detail_text(procs):
    run = scripted(procs, "library", ["stall:0.6", "idle:0.2"], json=False,
                   target_args=[b"--detail", b'job "7"\n'])
    assert run.finish() == 0
    lines = run.target.err.raw()
    began = [l for l in lines if b"active for" in l]
    assert began and b'detail "job \\x227\\x22\\x0a")' in began[0], lines


@pytest.mark.parametrize("mode", MODES)
def test_output_file(procs, tmp_path, mode):
    """--output FILE: the records go there, nothing to stderr."""
    out = tmp_path / "reports.jsonl"
    if mode == "library":
        run = scripted(procs, mode, ["stall:0.4", "idle:0.2"],
                       target_args=["--output", str(out)])
    else:
        target = procs.target("gate", "stall:0.4", "idle:0.2")
        watcher = procs.attach(target.pid, "--json-mode", "--output", str(out),
                               started=False)
        deadline = time.monotonic() + TIMEOUT
        while b"watch_started" not in (out.read_bytes() if out.exists()
                                       else b""):
            assert time.monotonic() < deadline, "no watch_started in the file"
            assert watcher.popen.poll() is None, watcher.err.text()
            time.sleep(0.01)
        target.send()
        assert target.finish() == 0
        assert watcher.finish() == 0
        assert watcher.out.raw() == []
        run = None
        err = watcher.err
    if run:
        assert run.finish() == 0
        err = run.target.err
    assert err.raw() == [], "reports went to stderr too"
    records = [json.loads(l) for l in out.read_text().splitlines()]
    kinds = [r["event"] for r in records]
    assert "stall_began" in kinds and "stall_ended" in kinds, kinds
    assert kinds[-1] == "watch_ended"


@pytest.mark.parametrize("stop", [True, False], ids=["sigstop", "control"])
def test_stopped_target_is_not_blamed(procs, stop):
    """The tracker is active, then the target is SIGSTOPped for 1 s (alert
    interval 0.5 s), continued, and leaves at once: no stall. The control
    case holds the tracker 1 s without stopping: a stall."""
    run = scripted(procs, "library", ["hold", "idle:0.2"], alert_ms=500)
    target = run.target
    target.out.wait_for(lambda l: l.startswith("HOLD "))
    if stop:
        target.popen.send_signal(signal.SIGSTOP)
        assert wait_state(target.pid, "tT")[0] in "tT"
    try:
        time.sleep(1.0)
    finally:
        if stop:
            target.popen.send_signal(signal.SIGCONT)
    target.send()
    assert run.finish() == 0
    hold = target.value("HOLD")
    released = target.value("RELEASED")
    assert released - hold >= 1.0e9
    began = events(run.records(), "stall_began")
    if stop:
        assert began == [], "blamed the target for the time it was stopped"
    else:
        assert len(began) == 1, run.records()


def _exit_times(fds, timeout):
    """Polls pidfds; {fd: time.monotonic() when it became readable}."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    times = {}
    deadline = time.monotonic() + timeout
    while len(times) < len(fds):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            times[fd] = time.monotonic()
            poller.unregister(fd)
    return times


PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) failed: errno "
                    f"{ctypes.get_errno()}; cannot read the status of the "
                    "library's watcher")


@pytest.mark.parametrize("how", ["exit", "sigkill"])
@pytest.mark.parametrize("mode", MODES)
def test_watcher_exits_with_target(procs, capsys, mode, how):
    """The watcher notices the target's death at once (pidfd), not after a
    poll timeout: measured from the target's exit to the watcher's exit.
    For the library's watcher, this test makes itself a child subreaper so
    that the watcher, orphaned when its spawner exits, is reparented here and
    its exit status can be read."""
    steps = ["gate"] if how == "exit" else ["stall:60"]
    if mode == "library":
        _set_subreaper(True)
    wpid = None
    try:
        run = scripted(procs, mode, steps)
        target = run.target
        if mode == "library":
            wpid = run.watcher.pid
            st = proc_state(wpid)
            assert st is not None and st[1] != target.pid, \
                "the watcher is the target's child"
            assert st[1] == os.getpid(), st
        if how == "exit":
            target.send()
        else:
            run.watcher_out.wait_for(lambda l: '"stall_began"' in l)
            target.popen.kill()
        times = _exit_times([target.pidfd, run.watcher.pidfd], TIMEOUT)
        assert target.pidfd in times, "the target did not end"
        assert run.watcher.pidfd in times, \
            f"the watcher was still running {TIMEOUT} s after the target ended"
        latency = times[run.watcher.pidfd] - times[target.pidfd]
        with capsys.disabled():
            print(f"\n  watcher exit latency ({mode}, target {how}): "
                  f"{latency * 1000:.1f} ms", end="")
        assert latency < 0.5, f"the watcher took {latency:.3f} s to exit"
        if mode == "library":
            _, status = os.waitpid(wpid, 0)
            wpid = None
            assert os.waitstatus_to_exitcode(status) == 0
        else:
            assert run.watcher.wait() == 0
        rc = run.finish()
        assert rc == (0 if how == "exit" else -signal.SIGKILL)
        records = run.records()
        assert records[-1]["event"] == "watch_ended"
        assert f"pid {target.pid} exited" in records[-1]["message"]
        if how == "sigkill":
            (life,) = by_stall(records).values()
            assert [r["event"] for r in life][-1] == "stall_ended"
            assert life[-1]["stall_details"]["end_reason"] == "watcher_stopped"
    finally:
        if mode == "library":
            _set_subreaper(False)
            if wpid is not None:
                try:
                    os.kill(wpid, signal.SIGKILL)
                    os.waitpid(wpid, 0)
                except (ChildProcessError, ProcessLookupError):
                    pass


def test_library_watcher_leaves_no_zombie(procs):
    """The library's watcher is not the target's child: once it exits (with
    the target) nothing of it is left in /proc, and it never was a child of
    the target."""
    run = scripted(procs, "library", ["gate"])
    wpid = run.watcher.pid
    st = proc_state(wpid)
    assert st is not None and st[1] != run.target.pid, st
    run.target.send()
    assert run.finish() == 0
    assert run.watcher.wait(5), "the watcher is still running"
    deadline = time.monotonic() + 5
    while (st := proc_state(wpid)) is not None and time.monotonic() < deadline:
        assert st[1] != run.target.pid, st
        time.sleep(0.01)
    assert st is None, f"the watcher {wpid} lingers: state {st}"


@pytest.mark.parametrize("mode", MODES)
def test_target_survives_watcher_sigkill(procs, mode):
    """SIGKILL the watcher in the middle of a stall: the target is not left
    stopped, finishes its script, and exits 0."""
    steps = ["stall:1.0", "busy:0.3", "idle:0.1"]
    if mode == "library":
        steps += ["unwatch", "watcher"]
    run = scripted(procs, mode, steps)
    run.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    if mode == "library":
        run.watcher.signal(signal.SIGKILL)
    else:
        run.watcher.popen.kill()
    if mode == "library":
        assert run.watcher.wait(5), "the watcher survived SIGKILL"
    else:
        assert run.watcher.wait(5) == -signal.SIGKILL
    st = proc_state(run.target.pid)
    assert st is not None and st[0] not in "tT", st
    assert run.target.finish() == 0
    out = run.target.out.text()
    assert out[-1] == "DONE", out
    assert any(l.startswith("STALL END") for l in out), out
    if mode == "library":
        assert "UNWATCH -3" in out, out  # -ESRCH: no watcher running
        assert out[-2] == "WATCHER 0", out
