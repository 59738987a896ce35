"""The watcher's Python stack reader against an interpreter whose every byte
the test knows: fake_python builds thread states, frames, code objects,
strings and line tables of its own, publishes their layout as the Python
extension does, and stalls. A sound one must be read exactly; a broken one
(loops, absurd depths and counts, random pointers and lengths everywhere, a
layout out of bounds) must give a record that says what is wrong, never a
crash, a hang, or a target left stopped.
"""

import json

import pytest

from conftest import _binary, events

FAST = ["--alert-ms", "60", "--poll-ms", "10", "--gap-ms", "30", "--json"]
# A lone stall lasts long enough to be seen by a watcher the machine's load
# keeps off the CPU for a while; the garbage test's many stalls are short.
LONE_STALL_MS = 500
STALL_MS = 200


@pytest.fixture(scope="session")
def fake_python(builddir):
    return _binary(builddir, "tests/targets/fake_python",
                   "make tests/targets/fake_python, or make check")


def run(procs, fake_python, tmp_path, mode, stalls=1, extra=()):
    out = tmp_path / f"{mode}.json"
    stall_ms = LONE_STALL_MS if stalls == 1 else STALL_MS
    p = procs.start([fake_python, mode, "--stalls", str(stalls),
                     "--stall-ms", str(stall_ms), "--output", str(out),
                     *FAST, *extra])
    assert p.finish() == 0, p.err.text()
    assert f"DONE {stalls}" in p.out.text()
    with open(out) as f:
        # Every line must parse: whatever the target held, it is escaped.
        records = [json.loads(line) for line in f]
    began = events(records, "stall_began")
    assert len(began) == stalls, records
    return [r["stall_details"] for r in began]


def test_a_sound_interpreter_is_read_exactly(procs, fake_python, tmp_path):
    (details,) = run(procs, fake_python, tmp_path, "ok")
    capture = details["capture"]
    assert capture["error"] is None
    assert capture["python"] == {"threads": 1, "reads": capture["python"]
                                 ["reads"], "error": None}
    thread = capture["threads"][0]
    assert thread["relevant"]
    assert thread["python"]["main"] and thread["python"]["gil_holder"]
    assert thread["python"]["native_id"] == thread["tid"]
    frames = [f for f in details["relevant_traces"][0] if not f["native"]]
    assert [(f["name"], f["filename"], f["line"]) for f in frames] == [
        ("outer", "/fake/app.py", 11),
        ("middle", "/fake/app.py", 12),
        ("inner", "/fake/app.py", 13)]
    assert frames[0]["locals"] == [] and frames[1]["locals"] == []
    assert frames[2]["locals"] == [
        {"name": "n", "value": "7"},
        {"name": "s", "value": "'hi'"},
        {"name": "big", "value": str(-(2**40 + 5))}]


def test_a_frame_list_that_loops_is_cut(procs, fake_python, tmp_path):
    (details,) = run(procs, fake_python, tmp_path, "frame_cycle")
    thread = details["capture"]["threads"][0]
    assert "loops" in thread["python"]["error"], thread
    # Noticed within a few turns of the loop, not at the depth limit.
    assert thread["python"]["frames"] <= 12


def test_a_thread_list_that_loops_is_cut(procs, fake_python, tmp_path):
    (details,) = run(procs, fake_python, tmp_path, "thread_cycle")
    python = details["capture"]["python"]
    assert python["threads"] == 1
    assert "loops" in python["error"], python


def test_depth_is_bounded(procs, fake_python, tmp_path):
    (details,) = run(procs, fake_python, tmp_path, "deep")
    thread = details["capture"]["threads"][0]
    assert thread["python"]["frames"] == 1024
    assert thread["python"]["error"] == "cut at 1024 frames"


def test_thread_count_is_bounded(procs, fake_python, tmp_path):
    (details,) = run(procs, fake_python, tmp_path, "threads")
    python = details["capture"]["python"]
    assert python["threads"] == 1024
    assert "more than 1024 Python threads" in python["error"]
    # Thread states no OS thread runs are shown, without a tid.
    unmatched = [t for t in details["capture"]["threads"] if t["tid"] is None]
    assert len(unmatched) == 1023


@pytest.mark.parametrize("mode", ["bad_layout", "bad_offset",
                                  "bad_traceable", "bad_header"])
def test_a_layout_out_of_bounds_is_refused(procs, fake_python, tmp_path,
                                           mode):
    (details,) = run(procs, fake_python, tmp_path, mode)
    python = details["capture"]["python"]
    assert python["error"].startswith("no Python stacks: the Python layout "
                                      "block is inconsistent"), python
    # The native stack is still there.
    assert details["relevant_traces"][0][-1]["native"]


def test_garbage_everywhere(procs, fake_python, tmp_path):
    stalls = 60
    all_details = run(procs, fake_python, tmp_path, "garbage", stalls=stalls)
    for details in all_details:
        capture = details["capture"]
        assert capture["error"] is None, capture
        assert capture["python"] is not None
        assert capture["threads_stopped"] == 1
