"""What to measure, on asv's own file formats and no asv run: the `-b` regexes select the
names asv matches, recorded combinations are left out per (commit, environment), suites
narrow with one message naming the fix."""

import re

import pytest

from kernelwatch.engine import planner
from kernelwatch.errors import KernelwatchError
from kernelwatch.results import outcomes

from ..conftest import write_case_results

TIME = "rope.RopeTime.track_time"
CASE = {"shape": "tiny", "form": "rotate-half", "dtype": "float32", "variant": "eager"}


def name(bench: str, **params: str) -> str:
    values = {**CASE, **params}
    return f"{bench}({', '.join(repr(values[p]) for p in CASE)})"


def test_a_selection_regex_matches_the_names_asv_gives_combinations():
    rx = planner.selection_regex("rope", {"shape": ["tiny"], "variant": ["eager", "compile"]},
                                 ["time"], ["time"])
    assert re.search(rx, name(TIME))
    assert re.search(rx, name(TIME, variant="compile"))
    assert not re.search(rx, name(TIME, variant="triton"))
    assert not re.search(rx, name("rope.RopeTime.track_caller_time"))
    assert not re.search(rx, name("rope.RopeAccuracy.track_rel_l2_error"))
    with pytest.raises(KernelwatchError, match="unknown variant 'nope' for rope"):
        planner.selection_regex("rope", {"variant": ["nope"]}, None)
    with pytest.raises(KernelwatchError, match="workload rope has no size parameter"):
        planner.selection_regex("rope", {"size": ["1"]}, None)


def test_recorded_combinations_are_left_out_per_commit_and_environment(tmp_path):
    """Commit A has eager recorded, B nothing: two calls, A's regex excludes eager; a
    failed (None) result is measured again."""
    a, b = "a" * 40, "b" * 40
    write_case_results(tmp_path, "box", a, "env", CASE, {TIME: [1e-3, 1.1e-3]})
    regexes = [planner.selection_regex("rope", {"shape": ["tiny"], "form": ["rotate-half"],
                                                "dtype": ["float32"],
                                                "variant": ["eager", "compile"]},
                                       ["time"], ["time"])]
    calls = planner.plan(tmp_path, "box", [a, b], ["env"], [regexes])
    by_commit = {tuple(c.commits): c for c in calls}
    assert set(by_commit) == {(a,), (b,)}
    done, todo = by_commit[(a,)], by_commit[(b,)]
    assert done.kept == 1 and todo.kept == 0
    assert not re.search(done.regexes[0], name(TIME))
    assert re.search(done.regexes[0], name(TIME, variant="compile"))
    assert re.search(todo.regexes[0], name(TIME))
    # benchmarks.json lists the eager case only (what was discovered): B runs it, A nothing
    benchmarks = planner.read_benchmarks(tmp_path)
    assert planner.combinations(benchmarks, todo) == {name(TIME): 1}
    assert not planner.combinations(benchmarks, done)


def test_a_suite_narrowed_outside_itself_names_the_way_out():
    quick = planner.suite_selections("quick", "rope")
    assert {w for w, *_ in quick} == {"rope"}
    narrowed = planner.narrow_quick(quick, {"variant": ["compile"]}, None, None)
    assert all(s.params["variant"] == ["compile"] for s in narrowed)
    with pytest.raises(KernelwatchError, match="drop --suite gpu-commit to select any value"):
        planner.narrow_quick(planner.suite_selections("gpu-commit", "rope"),
                             {"shape": ["tiny"]}, None, None, flag="--suite gpu-commit")
    with pytest.raises(KernelwatchError, match="unknown suite 'nightly'"):
        planner.suite_selections("nightly")
    # every suite's parts are valid selections of every workload that declares one
    for suite in ("quick", "gpu-commit", "gpu-nightly"):
        for workload, chosen, metrics, tracks, _ in planner.suite_selections(suite):
            assert planner.selection_regex(workload, chosen, metrics, tracks)


def test_a_suites_series_that_move_between_processes_are_measured_in_more():
    """gpu-commit times compiled RoPE in 3 processes (samples pooled) and the rest in 1, all
    in one asv call: the benchmark loop plans the extra rounds for the combinations that take
    them (after every combination's first), whatever planning put in front of the regex,
    and the estimate counts every process."""
    from kernelwatch.engine import benchloop

    selections = planner.suite_selections("gpu-commit", "rope")
    by_regex = planner.processes_by_regex(selections)
    assert sorted(by_regex.values()) == [3]
    [regex] = [planner.selection_regex(*s[:4]) for s in selections if s.processes == 3]
    plain = planner.selection_regex(*selections[0][:4])
    shapes, variants = ["llama-3.2-1b", "llama-3.1-8b"], ["eager", "compile"]
    params = [[repr(v) for v in values] for values in
              (shapes, ["rotate-half"], ["bfloat16"], variants)]

    def case(shape: str, variant: str) -> str:
        return name(TIME, shape=shape, dtype="bfloat16", variant=variant)

    skipped = case("llama-3.2-1b", "compile")
    call = planner.Call(["a" * 40], ["env"], [plain, planner.excluding(regex, [skipped]),
                                              planner.ENVIRONMENT_REGEX])
    listed = {TIME: {"name": TIME, "params": params}}
    assert planner.combinations(listed, call, by_regex) == {
        case("llama-3.2-1b", "eager"): 1, case("llama-3.1-8b", "eager"): 1,
        case("llama-3.1-8b", "compile"): 3}
    # --processes 2 for the run: every selected series in at least 2
    assert planner.processes_by_regex(selections, 2)[plain[1:]] == 2

    class Selected(dict):
        benchmark_selection = {TIME: {0, 1, 2, 3}}

    class Env:
        _default_benchmark_timeout = 60

    options = [f"{body}={k}" for body, k in by_regex.items()]
    items, rounds = benchloop._plan(Selected({TIME: {"params": params}}), Env(), {}, None,
                                    benchloop.parse_processes(options))
    named = [(rnd, benchloop.combination_name(TIME, params, idx)) for rnd, _, idx in items]
    compiled = [case(s, "compile") for s in shapes]
    assert rounds == [1, 2, 3]
    # every combination once before any again: a run cut short has each series it reached
    assert named[:4] == [(1, case(s, v)) for s in shapes for v in variants]
    assert named[4:] == [(r, c) for r in (2, 3) for c in compiled]
    with pytest.raises(SystemExit, match="REGEX=K"):
        benchloop.parse_processes(["rope=0"])


def test_a_series_recorded_in_fewer_processes_than_asked_is_measured_in_the_rest(tmp_path):
    """A run cut after the first of a series' 3 processes kept its samples and their count:
    the next run's call still selects it, counts 2 processes for it, and the benchmark loop
    plans those 2 only; a series with its 3 and one without a count (recorded before counts
    were kept) are left out."""
    import json

    from kernelwatch.engine import benchloop
    from kernelwatch.results.files import PROCESSES_KEY

    a = "a" * 40
    variants = ["eager", "compile", "liger"]
    path = write_case_results(tmp_path, "box", a, "env", CASE, {TIME: [1e-3, 1.1e-3]})
    data = json.loads(path.read_text())
    # three variants of one benchmark: eager counted 1 process, compile 3, liger no count
    entry = data["results"][TIME]
    entry[0], entry[1][3] = [1e-3, 2e-3, 3e-3], [repr(v) for v in variants]
    entry[-1] = [[1e-3, 1.1e-3]] * 3
    data["durations"] = {PROCESSES_KEY.format(name=name(TIME)): 1,
                         PROCESSES_KEY.format(name=name(TIME, variant="compile")): 3}
    path.write_text(json.dumps(data))
    listed = json.loads((tmp_path / "benchmarks.json").read_text())
    listed[TIME]["params"][3] = [repr(v) for v in variants]
    (tmp_path / "benchmarks.json").write_text(json.dumps(listed))

    selection = planner.Selection("rope", {"shape": ["tiny"], "form": ["rotate-half"],
                                           "dtype": ["float32"], "variant": variants},
                                  ["time"], ["time"], 3)
    regexes = [planner.selection_regex(*selection[:4])]
    by_regex = planner.processes_by_regex([selection])
    (call,) = planner.plan(tmp_path, "box", [a], ["env"], [regexes], by_regex)
    assert call.pooled == {name(TIME): 1} and call.kept == 2
    assert planner.combinations(planner.read_benchmarks(tmp_path), call, by_regex) == {
        name(TIME): 2}
    # without top-up (--rerun, asv's --interleave-rounds) a recorded series is just recorded
    (call,) = planner.plan(tmp_path, "box", [a], ["env"], [regexes])
    assert call.pooled == {} and call.kept == 3
    # its last process failed (and kept the samples): not started again until --rerun
    outcomes.record(tmp_path, "box", a, "env", {name(TIME): ("failed", "timed out")})
    (call,) = planner.plan(tmp_path, "box", [a], ["env"], [regexes], by_regex)
    assert call.pooled == {} and call.kept == 3

    class Selected(dict):
        benchmark_selection = {TIME: {0}}

    class Env:
        _default_benchmark_timeout = 60

    params = [[repr(v)] for v in CASE.values()]
    items, _ = benchloop._plan(Selected({TIME: {"params": params}}), Env(), {}, None,
                               benchloop.parse_processes([f"{b}={k}" for b, k in
                                                          by_regex.items()]),
                               lambda bench, idx: 1)
    assert [rnd for rnd, _, _ in items] == [1, 2]
    items, _ = benchloop._plan(Selected({TIME: {"params": params}}), Env(), {}, None,
                               benchloop.parse_processes([f"{b}={k}" for b, k in
                                                          by_regex.items()]),
                               lambda bench, idx: 3)
    assert items == []
