"""bisect's search over ordered points with a measure that answers from a table: it names
the first slow point in at most ceil(log2 n) + 2 measurements, skips a failing point as git
bisect does, and counts it as bad with failed_is_bad."""

import math

import pytest

from kernelwatch.errors import KernelwatchError
from kernelwatch.regression.bisect import Measured, max_points, search

FAST = tuple(1.0 + i / 1000 for i in range(20))
SLOW = tuple(2 * s for s in FAST)


def table(n: int, first_bad: int, failing: frozenset = frozenset()):
    asked = []

    def measure(point: str) -> Measured:
        asked.append(point)
        i = int(point)
        if i in failing:
            return Measured(point, failed=True)
        return Measured(point, SLOW if i >= first_bad else FAST)

    return [str(i) for i in range(n)], measure, asked


@pytest.mark.parametrize("first_bad", [1, 7, 31, 63])
def test_the_first_slow_point_is_named_within_log2_n_plus_two(first_bad):
    points, measure, asked = table(64, first_bad)
    outcome = search(points, measure, factor=1.1)
    assert outcome.culprit == str(first_bad) and outcome.parent == str(first_bad - 1)
    assert len(asked) <= math.ceil(math.log2(64)) + 2 == max_points(64)


def test_a_failing_point_is_skipped_or_counted_bad():
    points, measure, _ = table(16, 9, frozenset({8}))
    skipped = search(points, measure, factor=1.1)
    assert skipped.culprit == "9" or skipped.candidates == ["8", "9"]
    points, measure, _ = table(16, 9, frozenset({8}))
    assert search(points, measure, factor=1.1, failed_is_bad=True).culprit == "8"


def test_no_regression_and_a_good_that_cannot_run():
    points, measure, _ = table(8, 100)
    assert search(points, measure, factor=1.1).culprit is None
    points, measure, _ = table(8, 3, frozenset({0}))
    with pytest.raises(KernelwatchError, match="GOOD"):
        search(points, measure, factor=1.1)


def test_a_point_pooled_from_processes_is_judged_beyond_them():
    """A point's recorded row keeps how many processes its samples pool; cut to the first
    `limit` samples it keeps the processes those are. A point with a process that reads
    like GOOD's (two of its processes 30% slower for their whole lives, as a busy machine
    gives) is not bad; a point slower in every process is."""
    from kernelwatch.regression.bisect import measured_of
    from kernelwatch.results.rows import Row

    def row(levels: list[float]) -> Row:
        samples = [level * (1 + i / 1000) for level in levels for i in range(10)]
        return Row("m", "c", 0, "env", {}, "w.C.track_time", samples=samples,
                   processes=len(levels), value=1.0, unit="seconds")

    assert measured_of("p", row([1.0, 1.0, 1.0, 1.0]), False, limit=30).processes == 3
    assert measured_of("p", row([1.0, 1.0]), False, limit=15).processes == 0  # not whole
    good, overlapping, slower = row([1.0] * 3), row([1.3, 1.3, 1.0]), row([1.6] * 3)
    rows = {"0": good, "1": good, "2": overlapping, "3": slower}
    outcome = search(list(rows), lambda p: measured_of(p, rows[p], False), factor=1.1)
    assert outcome.culprit == "3" and outcome.parent == "2"
    from kernelwatch.report.bisect import summary

    assert "| good (within its processes) |" in "\n".join(summary(outcome, "commit", {}))
    # the same samples without their process counts: the pooled test names the overlap
    for r in rows.values():
        r.processes = 0
    outcome = search(list(rows), lambda p: measured_of(p, rows[p], False), factor=1.1)
    assert outcome.culprit == "2"
