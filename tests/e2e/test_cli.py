"""The `perpetuo` command line: usage errors, attach errors (exit status 2,
one sentence on stderr), --help, and detaching on a signal."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import TIMEOUT, by_stall, scripted


def run_cli(watcher, *args, env=None, prefix=(), timeout=TIMEOUT):
    try:
        return subprocess.run([*prefix, watcher, *args], env=env,
                              stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"perpetuo {args!r} did not exit within {timeout} s")


def one_sentence(result):
    """The result is exit status 2 with one 'perpetuo: ....' line on stderr
    and nothing on stdout; returns the line."""
    err = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, err)
    assert result.stdout == b"", result.stdout
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    line = lines[0]
    assert line.startswith("perpetuo: ") and line.endswith("."), line
    return line


def test_help(watcher):
    for flag in ("--help", "-h"):
        r = run_cli(watcher, flag)
        assert r.returncode == 0
        assert r.stdout.decode().startswith("Usage: perpetuo [OPTIONS] watch PID")
        assert b"--json-mode" in r.stdout and b"--poll-interval" in r.stdout
        assert r.stderr == b""


def test_version(watcher):
    r = run_cli(watcher, "--version")
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.decode().startswith("perpetuo 1.")


BAD_USAGE = [
    [],
    ["watch"],
    ["--bogus", "watch", "1"],
    ["-x", "watch", "1"],
    ["frobnicate", "1"],
    ["watch", "1", "2"],
    ["watch", "abc"],
    ["watch", "0"],
    ["watch", "-5"],
    ["watch", "1.5"],
    ["watch", ""],
    ["watch", "99999999999"],
    ["--poll-interval"],
    ["watch", "1", "--poll-interval"],
    ["--poll-interval", "-1", "watch", "1"],
    ["--poll-interval", "0", "watch", "1"],
    ["--poll-interval", "61", "watch", "1"],
    ["--poll-interval", "1e9", "watch", "1"],
    ["--poll-interval", "nan", "watch", "1"],
    ["--poll-interval", "inf", "watch", "1"],
    ["--poll-interval", "ten", "watch", "1"],
    ["--poll-interval", "", "watch", "1"],
    ["--alert-interval", "-0.5", "watch", "1"],
    ["--alert-interval", "0", "watch", "1"],
    ["--alert-interval", "1e300", "watch", "1"],
    ["--traceback-suppress", "-1", "watch", "1"],
    ["--traceback-suppress", "86401", "watch", "1"],
    ["--output", "", "watch", "1"],
    ["--output-fd", "x", "watch", "1"],
    ["--output-fd", "-1", "watch", "1"],
    ["--output", "f", "--output-fd", "5", "watch", "1"],
    ["--region", "0x1001", "watch", "1"],
    ["--poll-interval=-1", "watch", "1"],
    ["--alert-interval=abc", "watch", "1"],
    ["--poll-interval=", "watch", "1"],
    ["--json-mode=yes", "watch", "1"],
]


@pytest.mark.parametrize("args", BAD_USAGE, ids=lambda a: " ".join(a) or "-")
def test_bad_usage(watcher, args):
    one_sentence(run_cli(watcher, *args))


def test_pid_without_region(watcher, procs):
    sleeper = procs.start(["sleep", "30"], stdin=False)
    line = one_sentence(run_cli(watcher, "watch", str(sleeper.pid)))
    assert f"process {sleeper.pid} has no perpetuo region" in line, line


def _dead_pid():
    """A pid that belonged to a process a moment ago and is free now."""
    p = subprocess.Popen(["true"])
    p.wait(TIMEOUT)
    return p.pid


def test_pid_that_does_not_exist(watcher):
    pid = _dead_pid()
    if os.path.exists(f"/proc/{pid}"):
        pytest.skip(f"pid {pid} was reused at once")
    line = one_sentence(run_cli(watcher, "watch", str(pid)))
    assert line == f"perpetuo: there is no process with pid {pid}.", line


def test_pid_it_may_not_trace(watcher, procs):
    """The watcher as nobody against a root target: it says what to do."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the target must belong to another user than "
                    "the watcher, which setpriv makes nobody")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) is not installed")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    # The build tree may sit in a directory only root can enter (a mktemp
    # checkout): give nobody a copy of the watcher it can reach. It links no
    # library of ours, so the copy runs anywhere.
    reachable = tempfile.mkdtemp(prefix="perpetuo-e2e-")
    try:
        os.chmod(reachable, 0o755)
        copy = os.path.join(reachable, "perpetuo")
        shutil.copy2(watcher, copy)
        os.chmod(copy, 0o755)
        probe = run_cli(copy, "--version", prefix=prefix)
        assert probe.returncode == 0, probe.stderr
        target = procs.target("wait")
        line = one_sentence(run_cli(copy, "watch", str(target.pid),
                                    prefix=prefix))
    finally:
        shutil.rmtree(reachable, ignore_errors=True)
    assert f"not permitted to read process {target.pid}" in line, line
    assert "same user" in line and "CAP_SYS_PTRACE" in line, line
    if os.path.exists("/proc/sys/kernel/yama/ptrace_scope"):
        assert "ptrace_scope" in line, line
    # The target is untouched.
    target.close_stdin()
    assert target.finish() == 0


def test_unwritable_output(watcher, procs, tmp_path):
    target = procs.target("wait")
    path = tmp_path / "no" / "such" / "dir" / "out"
    line = one_sentence(run_cli(watcher, "--output", str(path), "watch",
                                str(target.pid)))
    assert f"cannot open {path} for writing" in line, line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_detaches_cleanly(procs, sig):
    """SIGTERM / SIGINT in the middle of a stall: the watcher ends the stall's
    life (watcher_stopped), says it stopped watching, exits 0; the target
    goes on."""
    run = scripted(procs, "attach", ["stall:1.0", "idle:0.1"])
    run.watcher_out.wait_for(lambda l: '"stall_began"' in l)
    run.watcher.popen.send_signal(sig)
    assert run.watcher.finish() == 0
    records = run.records()
    (life,) = by_stall(records).values()
    assert life[-1]["event"] == "stall_ended"
    assert life[-1]["stall_details"]["end_reason"] == "watcher_stopped"
    assert records[-1]["event"] == "watch_ended"
    assert records[-1]["message"].startswith(
        f"stopped watching pid {run.target.pid} (")
    assert run.target.finish() == 0
    assert run.target.out.text()[-1] == "DONE"
