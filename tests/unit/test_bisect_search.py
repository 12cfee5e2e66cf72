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
