"""kernelwatch's benchmark loop (kernelwatch.engine.benchloop), the pieces that need no asv run:
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

from kernelwatch.engine import benchloop, planner, shards
from kernelwatch.engine.progress import Eta


def test_combination_names_are_what_asv_matches_b_against():
    params = [["'tiny'", "'big'"], ["'eager'", "'compile'"]]
    assert benchloop.combination_name("rope.RopeTime.track_time", params, 3) == (
        "rope.RopeTime.track_time('big', 'compile')")
    assert benchloop.combination_name("environment.Environment.track_x", [], None) == (
        "environment.Environment.track_x")
    assert shards.unit_of("rope.RopeTime.track_time('big', 'compile')") == (
        "rope.RopeTime(big, compile)")


def test_the_outcome_of_each_combination_is_logged_read_back_and_kept(tmp_path):
    """The loop's lines (status, then the reason of a skip or failure, from the benchmark's
    own output) as asv prints them, read by the engine's collector, kept in the outcomes
    file beside the result file, and given to the rows by result_rows.load. A commit that did
    not build is one outcome for all of its benchmarks."""
    import json
    import math
    import types

    from kernelwatch.engine import progress
    from kernelwatch.engine.benchloop import (
        COMBINATION_FORMAT,
        LOOP_FORMAT,
        REASON_FORMAT,
        reason_of,
    )
    from kernelwatch.results import outcomes
    from kernelwatch.results import rows as result_rows

    from ..conftest import write_case_results

    skipped = types.SimpleNamespace(stderr="noise\nasv: skipped: Unavailable('llmcompressor "
                                           "is not measurable before 0.4.0: why') \n",
                                    errcode=0)
    failed = types.SimpleNamespace(stderr="Traceback (most recent call last):\n  File \"x\"\n"
                                          "TypeError: quantize_weight() got multiple values",
                                   errcode=1)
    assert reason_of(skipped, "skipped") == "llmcompressor is not measurable before 0.4.0: why"
    assert reason_of(failed, "failed") == "TypeError: quantize_weight() got multiple values"

    env, commit = "virtualenv-py3.11-torch2.13.0", "0dcfa37f" + "0" * 32
    time_name = "gptq.GptqTime.track_time('tiny/proj', 'llmcompressor-eager')"
    err_name = "gptq.GptqAccuracy.track_output_error('tiny/proj', 'llmcompressor-eager')"
    lines = ["· For llmcompressor commit 0dcfa37f <0.12.0~30>:",
             f"[ 10.00%] ·· {LOOP_FORMAT.format(count=2, env=env)}",
             "[ 50.00%] ·· " + COMBINATION_FORMAT.format(done=1, total=2, seconds=3.2,
                                                           status="skipped", name=time_name),
             "[ 50.00%] ·· " + REASON_FORMAT.format(name=time_name,
                                                     reason=reason_of(skipped, "skipped")),
             "[100.00%] ·· " + COMBINATION_FORMAT.format(done=2, total=2, seconds=1.0,
                                                          status="failed", name=err_name),
             "[100.00%] ·· " + REASON_FORMAT.format(name=err_name,
                                                     reason=reason_of(failed, "failed")),
             "· For llmcompressor commit 3593ae06 <0.1.0~900>:",
             "·· Error running /x/python -m kernelwatch.libraries.requirements prepare "
             "(exit status 1)",
             "   kernelwatch: not measurable: the commit built the distribution neuralmagicML",
             f"·· Skipping {env}"]
    ended = progress.Outcomes()
    for line in lines:
        ended.feed(line + "\n")
    point = ended.by_point[("0dcfa37f", env)]
    assert point[time_name] == ("skipped", "llmcompressor is not measurable before 0.4.0: why")
    assert point[err_name] == ("failed", "TypeError: quantize_weight() got multiple values")
    assert ended.by_point[("3593ae06", env)] == {"*": (
        "failed", "did not build or install: the commit built the distribution neuralmagicML")}
    assert ended.counts() == {"skipped": 1, "failed": 1}

    res = tmp_path / "results"
    path = write_case_results(res, "m", commit, env, {"shape": "tiny/proj",
                                                      "variant": "llmcompressor-eager"},
                              {"gptq.GptqTime.track_time": [1.0]})
    data = json.loads(path.read_text())
    data["results"]["gptq.GptqTime.track_time"][0] = [math.nan]
    data["results"]["gptq.GptqTime.track_time"][-2] = None
    path.write_text(json.dumps(data))
    outcomes.record(res, "m", commit, env, point)
    assert outcomes.path_of(res, "m", commit, env).is_file()
    [row] = [r for r in result_rows.load(res) if r.benchmark == "gptq.GptqTime.track_time"]
    assert row.value is None and row.skipped and not row.failed
    assert row.reason == "llmcompressor is not measurable before 0.4.0: why"
    # It runs at last: the outcome goes.
    outcomes.record(res, "m", commit, env, {time_name: ("ok", ""), err_name: ("ok", "")})
    assert not outcomes.path_of(res, "m", commit, env).exists()


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
    assert est.unrecorded_line() == ("no duration on record on this machine for "
                                     "rope.RopeTime.track_time (1) (a first run records each)")
    assert planner.estimate(planned, {}).unrecorded_line() is None  # describe() says it
    assert est.workloads_line() is None  # one workload
    two = planner.estimate(Counter({"a.X.t()": 2, "b.Y.t()": 1, "b.Y.u()": 1}),
                           {"a.X.t()": 30.0, "b.Y.t()": 100.0})
    assert two.workloads_line() == ("by workload (seconds, processes): b 1 min 40 s (2), "
                                    "a 1 min 00 s (2)")
    many = Counter({f"w.C.track_{i}('x')": 1 + i for i in range(8)})
    line = planner.estimate(many + planned, durations).unrecorded_line()
    assert line.startswith("no duration on record on this machine for w.C.track_7 (8), ")
    assert line.endswith(" and 3 more benchmarks (a first run records each)")

    # Another machine's records, named as such, where this one has none of some.
    (tmp_path / "box" / "machine.json").write_text("{}")
    assert planner.elsewhere_line(tmp_path, "box", planned, est.unknown) is None  # none elsewhere
    other = tmp_path / "gpu-big"
    other.mkdir()
    (other / "machine.json").write_text("{}")
    (other / "0123abca-env.json").write_text(json.dumps({"date": 1, "durations": {
        key: 1.5, "<kernelwatch rope.RopeTime.track_time('tiny', 'compile')>": 20.0}}))
    assert planner.elsewhere_line(tmp_path, "box", planned, est.unknown) == (
        "recorded on gpu-big, another machine (its speed, not this one's): about 0 min 23 s "
        "for the 3 of the 3 it has a duration for")
    assert planner.elsewhere_line(tmp_path, "gpu-big", planned, 0) is None  # it covers more

    eta = Eta(planned, durations)
    assert eta.seconds_left(3) is None  # nothing has ended yet
    # This run is twice as slow as the record: the other eager is expected at 8 s, the
    # compile (no record) at the mean of this run's combinations.
    eta.done("rope.RopeTime.track_time('tiny', 'eager')", 8.0)
    assert eta.seconds_left(3) == pytest.approx(8.0 + 8.0)


def test_a_stopped_process_counts_as_the_least_its_combination_takes(tmp_path):
    """A process stopped before it ended (benchloop.STOPPED_KEY) stands in for a combination
    with no whole duration, and for an older commit's shorter one; the estimate says "or
    more" and names it; a whole duration of its own commit or a newer one takes its place;
    the time left does not scale by it."""
    machine = tmp_path / "box"
    machine.mkdir()
    slow, fast, newer = ("w.C.track_t('slow')", "w.C.track_t('fast')",
                         "w.C.track_t('newer')")

    def write(name: str, date: int, durations: dict) -> None:
        (machine / f"0123abc{name}-env.json").write_text(json.dumps(
            {"date": date, "durations": durations}))

    write("a", 1, {f"<kernelwatch {slow}>": 60.0, f"<kernelwatch {fast}>": 2.0,
                   f"<kernelwatch {newer}>": 9.0})
    write("b", 2, {f"<kernelwatch-stopped {slow}>": 171.0, f"<kernelwatch-stopped {fast}>": 1.0,
                   "<kernelwatch-stopped w.C.track_t('new')>": 30.0})
    write("c", 3, {f"<kernelwatch {newer}>": 5.0})
    write("d", 2, {f"<kernelwatch-stopped {newer}>": 50.0})
    durations = planner.combination_durations(tmp_path, "box")
    assert durations == {slow: 171.0, fast: 2.0, newer: 5.0, "w.C.track_t('new')": 30.0}
    assert durations.floors == {slow, "w.C.track_t('new')"}

    est = planner.estimate(Counter({slow: 1, fast: 2, "w.C.track_t('other')": 1}), durations)
    assert est.describe() == ("4 benchmark processes, about 2 min 55 s or more for the 3 "
                              "with a recorded duration (1 counted at the seconds a stopped "
                              "or timed-out process had run); 1 have none on this machine "
                              "(not counted)")
    assert est.floors_line() == (
        "counted at the seconds a process had run when a run was stopped before it ended or "
        "timed out: "
        "w.C.track_t('slow') (171 s); a run that measures one to the end records its whole "
        "duration")
    assert planner.estimate(Counter({fast: 1}), durations).floors_line() is None

    eta = Eta(Counter({slow: 1, fast: 2}), durations)
    eta.done(slow, 400.0)  # far over its floor: not a sign that this run is slow
    eta.done(fast, 2.0)
    assert eta.seconds_left(3) == pytest.approx(2.0)


def test_a_failed_process_says_nothing_of_its_length_unless_it_timed_out(tmp_path):
    """A process that failed (its outcome in the file's outcomes) records seconds that say
    nothing of a whole run (a server that had initialised CUDA failed every process of the
    suite in 0.0 s on an H100): the combination keeps an older whole duration, or has none.
    One that asv stopped at the benchmark's timeout took at least that long: a floor."""
    machine = tmp_path / "box"
    machine.mkdir()
    measured, never, slow = ("w.C.track_t('measured')", "w.C.track_t('never')",
                             "w.C.track_t('slow')")
    (machine / "0123abca-env.json").write_text(json.dumps(
        {"date": 1, "durations": {f"<kernelwatch {measured}>": 40.0}}))
    (machine / "4567defb-env.json").write_text(json.dumps(
        {"date": 2, "durations": {f"<kernelwatch {measured}>": 0.0,
                                  f"<kernelwatch {never}>": 0.2,
                                  f"<kernelwatch {slow}>": 600.3}}))
    cuda = {"status": "failed", "reason": "RuntimeError: CUDA was initialised in asv's "
                                          "forkserver before it forked this process"}
    (machine / "4567defb-env.outcomes").write_text(json.dumps(
        {measured: cuda, never: cuda,
         slow: {"status": "failed", "reason": "asv: benchmark timed out (timeout 600.0s)"}}))
    durations = planner.combination_durations(tmp_path, "box")
    assert durations == {measured: 40.0, slow: 600.3}
    assert durations.floors == {slow}
    est = planner.estimate(Counter({measured: 1, never: 1, slow: 1}), durations)
    assert est.describe() == ("3 benchmark processes, about 10 min 40 s or more for the 2 "
                              "with a recorded duration (1 counted at the seconds a stopped "
                              "or timed-out process had run); 1 have none on this machine "
                              "(not counted)")


def test_a_process_stopped_by_sigterm_or_ctrl_c_files_its_seconds_so_far():
    """SIGTERM during a benchmark process (_Terminated) and Ctrl-C (which asv turns into
    UserError("Interrupted."), marking the spawner interrupted) file the seconds it had run;
    a process that failed is not a stop; a combination with a whole duration in the file
    keeps it."""
    from asv import util
    from asv.results import Results

    class Spawner:  # asv's spawner, as far as one benchmark process goes
        interrupted = False

        def __init__(self, exc: BaseException) -> None:
            self.exc = exc

        def interrupt(self) -> None:
            self.interrupted = True

        def run(self, *args, **kwargs):
            raise self.exc

    name = "w.C.track_t"
    benchmark = {"name": name, "params": [], "param_names": [], "timeout": 60,
                 "type": "track", "version": "1", "setup_cache_key": None}

    def measure(exc: BaseException, results: Results) -> BaseException:
        with pytest.raises(BaseException) as raised:
            benchloop._measure_one(benchmark, name, None, Spawner(exc), results,
                                   benchloop._Record(), False, {}, record_samples=False,
                                   appending=False)
        assert not benchloop._in_flight
        return raised.value

    stopped = benchloop.STOPPED_KEY.format(name=name)
    for exc in (benchloop._Terminated(), KeyboardInterrupt()):
        results = Results.unnamed()
        raised = measure(exc, results)
        assert isinstance(raised, type(exc) if isinstance(exc, benchloop._Terminated)
                          else util.UserError)
        assert set(results._duration) == {stopped}
    results = Results.unnamed()
    measure(util.UserError("Process exited with code -9"), results)
    assert stopped not in results._duration
    results = Results.unnamed()
    results._duration[benchloop.DURATION_KEY.format(name=name)] = 5.0
    measure(benchloop._Terminated(), results)
    assert stopped not in results._duration


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


def test_a_stopped_case_s_rounds_leave_the_progress_total(tmp_path):
    """A series planned in 3 processes whose first skipped: the loop says the other 2 are not
    started, and the progress reaches its end at the 2 combinations that did run."""
    import io

    from kernelwatch.engine.benchloop import COMBINATION_FORMAT, DROPPED_FORMAT, LOOP_FORMAT
    from kernelwatch.engine.progress import AsvProgress

    liger = "rope.RopeTime.track_time('tiny', 'liger')"
    eager = "rope.RopeTime.track_time('tiny', 'eager')"
    out = io.StringIO()
    with open(tmp_path / "asv.log", "w") as log:
        bar = AsvProgress(log, "asv", out=out, planned=Counter({liger: 3, eager: 1}))
        for line in [LOOP_FORMAT.format(count=4, env="existing"),
                     COMBINATION_FORMAT.format(done=1, total=4, seconds=1.0, status="ok",
                                               name=eager),
                     COMBINATION_FORMAT.format(done=2, total=4, seconds=0.5,
                                               status="skipped", name=liger),
                     DROPPED_FORMAT.format(count=2, name=liger, status="skipped")]:
            bar.feed(f"[ 50.00%] ·· {line}\n")
        assert bar.combinations() == 2 and bar.percent == 100.0
        assert bar.eta.seconds_left(bar.combinations()) == 0
        bar.close()
    assert "2 of 2 combinations" in out.getvalue()


def test_a_log_shows_a_long_run_moving_between_its_tenths(tmp_path):
    """Not on a terminal: a line per tenth, and a line for a combination that ends a
    heartbeat or more after the last line, naming it (at heartbeat 0: each one)."""
    import io

    from kernelwatch.engine.benchloop import COMBINATION_FORMAT, LOOP_FORMAT
    from kernelwatch.engine.progress import AsvProgress

    names = [f"vae.VaeTime.track_time('350M', 'decoder', '8', 'v{i}')" for i in range(5)]
    shown = {}
    for heartbeat in (60.0, 0.0):
        out = io.StringIO()
        with open(tmp_path / "asv.log", "w") as log:
            bar = AsvProgress(log, "asv", out=out, planned=Counter({n: 1 for n in names}
                                                                    | {"x.X.track_y": 95}),
                              heartbeat=heartbeat)
            bar.feed(f"[  0.00%] ·· {LOOP_FORMAT.format(count=100, env='existing')}\n")
            for i, name in enumerate(names, 1):
                bar.feed("[  1.00%] ·· " + COMBINATION_FORMAT.format(
                    done=i, total=100, seconds=64.7, status="ok", name=name) + "\n")
        shown[heartbeat] = out.getvalue().splitlines()
    assert shown[60.0] == []
    assert len(shown[0.0]) == 5
    assert shown[0.0][-1].startswith("asv: 5% (5 of 100 combinations")
    assert shown[0.0][-1].endswith(f"; {names[-1]} took 64.7s)")
