"""libperpetuo's watcher management seen end to end: start, stop, restart,
fork, a missing watcher, and the smallest example."""

import os
import subprocess

import pytest

from conftest import TIMEOUT, by_stall, events, stall_windows


def test_fork_each_side_has_its_own_watcher(procs, fork_target):
    """The parent registers a tracker and starts a watcher, then forks; the
    child starts its own watcher and stalls, then the parent stalls. Each
    stall is reported once, by its own process's watcher, naming that pid."""
    p = procs.start([fork_target, "--json"], stdin=False)
    assert p.finish() == 0, p.out.text()
    out = p.out.text()
    value = {}
    for line in out:
        words = line.split()
        if len(words) >= 3 and words[-1].lstrip("-").isdigit():
            value[" ".join(words[:-1])] = int(words[-1])
    parent, child = value["PARENT PID"], value["CHILD PID"]
    assert parent == p.pid and child != parent
    assert value["CHILD INHERITED WATCHER"] == 0
    watchers = {value["PARENT WATCHER"], value["CHILD WATCHER"]}
    assert len(watchers) == 2 and not watchers & {0, parent, child}, value
    records = p.err.records()
    started = [r["additional_info"]["pid"] for r in records
               if r["event"] == "watch_started"]
    assert sorted(started) == sorted([str(parent), str(child)]), records
    for who, pid in (("CHILD", child), ("PARENT", parent)):
        begin, end = value[f"{who} STALL BEGIN"], value[f"{who} STALL END"]
        began = events(records, "stall_began", pid)
        assert len(began) == 1, (who, records)
        assert begin < began[0]["monotonic_ns"] < end, (who, began)
        assert began[0]["stall_details"]["thread"]["tid"] == pid
        assert began[0]["additional_info"]["name"] == "fork loop"
        ended = events(records, "stall_ended", pid)
        assert len(ended) == 1 and ended[0]["monotonic_ns"] >= end, ended
        assert 300 <= ended[0]["stall_details"]["total_ms"] <= 800, ended
    ends = [r for r in records if r["event"] == "watch_ended"]
    assert sorted(r["additional_info"]["pid"] for r in ends) == \
        sorted([str(parent), str(child)]), records


def test_stall_once_example(examples, env):
    """examples/stall_once prints its stall report (text) to stderr."""
    path = os.path.join(examples, "stall_once")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (run make)")
    r = subprocess.run([path], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=TIMEOUT)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("perpetuo: watching pid "), lines
    began = [l for l in lines if "active for" in l]
    ended = [l for l in lines if "ended after" in l]
    assert len(began) == 1 and len(ended) == 1, lines
    assert began[0].startswith('perpetuo: stall 1 in "request handler" (pid ')
    total = float(ended[0].split("ended after ")[1].split()[0])
    assert 0.4 <= total <= 0.9, ended
    # A record is a "perpetuo: " line, then its details indented.
    assert all(l.startswith(("perpetuo: ", "  ")) for l in lines), lines
    stack = [l for l in lines if l.startswith("    File ")]
    assert any(" in main " in l for l in stack), lines


def test_stop_and_restart(procs):
    """perpetuo_watch_stop() detaches (the next stall goes unreported),
    perpetuo_watch_start() again brings a new watcher that reports."""
    t = procs.target("--watch", "--json", "stall:0.4", "idle:0.1", "unwatch",
                     "watcher", "stall:0.4", "watch", "stall:0.4", "idle:0.2")
    first = t.watcher
    assert t.finish() == 0
    out = t.out.text()
    assert "UNWATCH 0" in out, out
    watchers = [int(l.split()[1]) for l in out if l.startswith("WATCHER ")]
    assert watchers[0] == first.pid and watchers[1] == 0, out
    assert watchers[2] not in (0, first.pid), out
    assert first.wait(0), "the stopped watcher is still running"
    windows = stall_windows(t)
    records = t.err.records()
    began = events(records, "stall_began")
    assert len(began) == 2, records
    assert windows[0][0] < began[0]["monotonic_ns"] < windows[0][1]
    assert windows[2][0] < began[1]["monotonic_ns"] < windows[2][1]
    ended = [r for r in records if r["event"] == "watch_ended"]
    assert len(ended) == 2, records
    assert ended[0]["message"].startswith(f"stopped watching pid {t.pid} (")
    # Each watcher reports its stall's whole life.
    assert all(life[-1]["event"] == "stall_ended"
               for life in by_stall(records[:records.index(ended[0])]).values())


@pytest.mark.parametrize("path,error", [
    ("/nonexistent/perpetuo", "FAILED perpetuo_watch_start: "),
    ("/bin/false", "FAILED perpetuo_watch_start: "),
])
def test_watcher_that_cannot_start(procs, env, path, error):
    """perpetuo_watch_start() fails cleanly (an error, no hang) when the
    watcher cannot be run or exits at once."""
    e = dict(env, PERPETUO_WATCHER=path)
    t = procs.start([procs.stall_target_path, "--watch", "stall:0.1"], env=e,
                    stdin=False)
    assert t.finish() == 3
    out = t.out.text()
    assert out[-1].startswith(error), out
    assert "READY" not in out


def test_watcher_does_not_hold_stdout(procs):
    """The application's stdout is its own: once it closes it, a reader sees
    EOF at once, although the watcher goes on watching."""
    t = procs.target("--watch", "closeout", "idle:2")
    t.out.wait_for(lambda l: l == "CLOSEOUT")
    t.out.wait_eof(timeout=1.5)
    assert t.popen.poll() is None, "the target ended before the test"
    assert t.watcher.alive()
    assert t.finish() == 0
