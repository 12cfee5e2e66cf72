"""`--shard K/N` on plain data: the parts split a selection the same way everywhere, and
one unit's results from two shards merge case by case."""

import re

from kernelwatch.engine import shards
from kernelwatch.results import history

UNITS = [f"w.C({i})" for i in range(23)]


def test_round_robin_parts_are_disjoint_cover_and_differ_by_one_at_most():
    parts = [shards.pick(UNITS, k, 4) for k in range(1, 5)]
    assert sorted(u for p in parts for u in p) == sorted(UNITS)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [shards.pick(list(reversed(UNITS)), k, 4) for k in range(1, 5)]


def test_parts_dealt_by_recorded_seconds_balance_the_time():
    seconds = {u: float(i + 1) for i, u in enumerate(UNITS)}  # 1 .. 23 s
    loads = [sum(seconds[u] for u in shards.pick(UNITS, k, 3, seconds)) for k in (1, 2, 3)]
    assert max(loads) - min(loads) <= max(seconds.values())
    assert sum(loads) == sum(seconds.values())


def test_a_narrowed_regex_admits_only_its_shards_units():
    selection = [("rope", {"shape": ["tiny"], "form": ["rotate-half"], "dtype": ["float32"],
                           "variant": ["eager", "compile", "compile-dynamic"]}, ["time"],
                  None)]
    rx = r"^rope\.(RopeTime)\.track_\w+\('(tiny)', '(rotate\-half)', '(float32)', '[^']+'\)$"
    env = r"^environment\.Environment\.track_\w+$"
    seen = []
    for k in (1, 2, 3):
        narrowed = shards.narrow([rx, env], selection, k, 3)
        assert narrowed[-1] == env
        seen += [v for v in ("eager", "compile", "compile-dynamic")
                 if re.search(narrowed[0], "rope.RopeTime.track_time('tiny', 'rotate-half', "
                                            f"'float32', '{v}')")]
    assert sorted(seen) == ["compile", "compile-dynamic", "eager"]


def test_two_shards_results_merge_case_by_case():
    columns = ["result", "params", "version"]
    base = {"commit_hash": "a" * 40, "env_name": "e", "result_columns": columns,
            "version": 2}
    ours = {**base, "results": {"b.C.track_t": [[1.0, float("nan")], [["'x'", "'y'"]], "1"]},
            "durations": {"<kernelwatch b.C.track_t('x')>": 3.0}}
    theirs = {**base, "results": {"b.C.track_t": [[float("nan"), 2.0], [["'x'", "'y'"]], "1"]},
              "durations": {"<kernelwatch b.C.track_t('y')>": 4.0}}
    merged = history.merge_results(ours, theirs)
    assert merged["results"]["b.C.track_t"][0] == [1.0, 2.0]
    assert set(merged["durations"]) == {"<kernelwatch b.C.track_t('x')>",
                                        "<kernelwatch b.C.track_t('y')>"}
    clash = {**theirs, "results": {"b.C.track_t": [[9.0, 2.0], [["'x'", "'y'"]], "1"]}}
    assert history.merge_results(ours, clash) is None
