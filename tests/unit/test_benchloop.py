"""kernelwatch's benchmark loop (kernelwatch.benchloop), the pieces that need no asv run:
names, the atomic save, the recorded durations, the estimate and the time left, shards dealt
by duration. Its runs through real asv are in test_engine.py (a cut run keeps what
finished); the forkserver's CUDA checks in test_forkserver.py."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kernelwatch import benchloop, planner, shards
from kernelwatch.progress import Eta


def test_combination_names_are_what_asv_matches_b_against():
    params = [["'tiny'", "'big'"], ["'eager'", "'compile'"]]
    assert benchloop.combination_name("rope.RopeTime.track_time", params, 3) == (
        "rope.RopeTime.track_time('big', 'compile')")
    assert benchloop.combination_name("environment.Environment.track_x", [], None) == (
        "environment.Environment.track_x")
    assert shards.unit_of("rope.RopeTime.track_time('big', 'compile')") == (
        "rope.RopeTime(big, compile)")


def test_the_save_is_atomic_and_a_killed_saves_leftover_is_removed(tmp_path):
    """The result file is replaced whole; the temporary file of a process that died while
    saving is removed by the next run, and one of a live process is left alone."""

    class Results:  # asv's Results.save writes `_filename` under the directory it is given
        _filename = "box/0123abcd-env.json"

        def save(self, root):
            path = Path(root) / self._filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"n": 2}))

    saver = benchloop._Saver(str(tmp_path))
    target = tmp_path / "box" / "0123abcd-env.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"n": 1}))
    saver.save(Results())
    assert json.loads(target.read_text()) == {"n": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["0123abcd-env.json"]

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = target.parent / f"0123abcd-env.json.{dead.pid}{saver.SUFFIX}"
    live = target.parent / f"0123abcd-env.json.{os.getpid()}{saver.SUFFIX}"
    stale.write_text("{")
    live.write_text("{")
    saver.remove_stale()
    assert not stale.exists() and live.exists()


def test_recorded_durations_give_the_estimate_and_the_time_left(tmp_path):
    machine = tmp_path / "box"
    machine.mkdir()
    key = "<kernelwatch rope.RopeTime.track_time('tiny', 'eager')>"
    for name, date, seconds in (("a", 1, 9.0), ("b", 2, 4.0)):
        (machine / f"0123abc{name}-env.json").write_text(json.dumps(
            {"date": date, "durations": {key: seconds, "<build>": 30.0}}))
    (machine / "0123abcc-env.json").write_text("{")  # unreadable: passed over
    durations = planner.combination_durations(tmp_path, "box")
    assert durations == {"rope.RopeTime.track_time('tiny', 'eager')": 4.0}  # the newest
    planned = Counter({"rope.RopeTime.track_time('tiny', 'eager')": 2,
                       "rope.RopeTime.track_time('tiny', 'compile')": 1})
    est = planner.estimate(planned, durations)
    assert (est.processes, est.seconds, est.unknown) == (3, 8.0, 1)
    assert "about 0 min 08 s for the 2 with a recorded duration; 1 have none" in est.describe()

    eta = Eta(planned, durations)
    assert eta.seconds_left(3) is None  # nothing has ended yet
    # This run is twice as slow as the record: the other eager is expected at 8 s, the
    # compile (no record) at the mean of this run's combinations.
    eta.done("rope.RopeTime.track_time('tiny', 'eager')", 8.0)
    assert eta.seconds_left(3) == pytest.approx(8.0 + 8.0)


def test_shards_are_dealt_by_recorded_seconds():
    """Longest first, each to the least loaded shard: one unit of 100 s against nine of
    10 s splits 100 / 90, where round-robin by count would put 100 + 40 against 50."""
    units = [f"w.C({i})" for i in range(10)]
    seconds = {"w.C(0)": 100.0, **{f"w.C({i})": 10.0 for i in range(1, 10)}}
    parts = [shards.pick(units, k, 2, seconds) for k in (1, 2)]
    assert sorted(parts[0] + parts[1]) == sorted(units)
    loads = sorted(sum(seconds[u] for u in p) for p in parts)
    assert loads == [90.0, 100.0]
    # a unit with no record counts as the mean of the recorded ones (19 s): still a split
    more = [*units, "w.C(new)"]
    assert sorted(shards.pick(more, 1, 2, seconds) + shards.pick(more, 2, 2, seconds)) == (
        sorted(more))
    assert shards.unit_seconds({"w.C.track_a('1')": 2.0, "w.C.track_b('1')": 3.0}) == {
        "w.C(1)": 5.0}
