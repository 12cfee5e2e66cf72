"""The regression check on synthetic samples: what it flags, what it ignores, how often it
cries wolf on pure noise (the test-only slowdown hook it is checked against: test_measure)."""

import random

from kernelwatch.regression import detect


def noisy(rng: random.Random, median: float, cv: float, n: int = 30) -> list[float]:
    # Timing noise is one-sided and skewed (interruptions only add): log-normal.
    return [median * rng.lognormvariate(0, cv) for _ in range(n)]


def test_a_clear_step_is_flagged_worse_and_its_reverse_better():
    rng = random.Random(1)
    before, after = noisy(rng, 1e-3, 0.03), noisy(rng, 1.25e-3, 0.03)
    change = detect.compare(before, after)
    assert change.significant and change.flag == "worse" and 1.2 < change.ratio < 1.3
    assert detect.compare(after, before).flag == "better"


def test_a_significant_change_below_the_factor_is_not_flagged():
    rng = random.Random(2)
    before, after = noisy(rng, 1e-3, 0.005), noisy(rng, 1.04e-3, 0.005)
    change = detect.compare(before, after)
    assert change.significant and change.flag == ""


def test_false_alarms_on_pure_noise_stay_within_the_stated_level():
    """Two sample sets of one distribution (CV 10%, noisier than any benchmark we keep)
    a thousand times: asv's test is at p < 0.002, and the factor removes the rest."""
    rng = random.Random(3)
    alarms = sum(detect.compare(noisy(rng, 1e-3, 0.10), noisy(rng, 1e-3, 0.10)).flag != ""
                 for _ in range(1000))
    assert alarms <= 2  # 0.2% of 1000


def test_a_single_value_is_never_flagged():
    assert detect.compare([1.0], [3.0]).flag == ""


def test_one_rule_judges_every_kind_of_series():
    """detect.judge: what compare, the site's change table and the versions page show."""
    fast = [1e-3 * (1 + i / 1000) for i in range(20)]
    slow = [3 * s for s in fast]
    assert detect.judge("w.C.track_time", "seconds", fast, slow).flag == "worse"
    assert detect.judge("w.C.track_time", "seconds", slow, fast).flag == "better"
    assert detect.judge("w.C.track_time", "seconds", fast, slow,
                        versions=("1", "2")).flag == detect.NOT_COMPARABLE
    # a count that moves at all, one value each side
    assert detect.judge("w.C.track_kernel_count", "count", [1], [2]).flag == "worse"
    assert detect.judge("w.C.track_kernel_count", "count", [2], [1]).flag == "better"
    # shown, never flagged: another unit, the machine's own facts
    assert detect.judge("w.C.track_token_match", "fraction", fast, slow).flag == ""
    change = detect.judge("environment.Environment.track_copy_seconds_per_gib", "seconds",
                          fast, slow)
    assert change.flag == "" and change.significant


def pooled(rng: random.Random, levels: list[float], n: int = 50) -> list[float]:
    """Samples of one process per level, in order, each process steady at its own level."""
    return [x for level in levels for x in noisy(rng, level, 0.005, n)]


def test_a_pooled_series_is_flagged_only_beyond_its_processes():
    """Three processes a side, each at a level of its own for its whole life (an H100's RoPE
    8B compile: 16.9 or 18.1 us a process, with one kernel and one launch throughout). The
    pooled samples alone call run 2 against run 1 significant and beyond 1.03; some process
    of each side reads like one of the other's, so it is not flagged. A 5% step on every
    process is."""
    rng = random.Random(5)
    run1, run2 = pooled(rng, [16.9e-6, 18.1e-6, 18.2e-6]), pooled(rng, [17.6e-6, 17.0e-6, 16.9e-6])
    assert detect.compare(run1, run2, factor=1.03).flag == "better"
    within = detect.compare(run1, run2, factor=1.03, processes=(3, 3))
    assert within.significant and within.flag == "" and within.within_processes
    assert [round(m * 1e6, 1) for m in detect.process_medians(run1, 3)] == [16.9, 18.1, 18.2]

    levels = [17.0e-6, 17.1e-6, 16.9e-6]
    base, slower = pooled(rng, levels), pooled(rng, [x * 1.05 for x in levels])
    caught = detect.compare(base, slower, factor=1.03, processes=(3, 3))
    assert caught.flag == "worse" and not caught.within_processes
    # one process on a side, or a count that does not split the samples: the pooled test alone
    for processes in ((1, 3), (3, 7), (0, 0)):
        assert detect.compare(run1, run2, factor=1.03, processes=processes).flag == "better"
    assert detect.judge("rope.RopeTime.track_time", "seconds", run1, run2, factor=1.03,
                        processes=(3, 3)).within_processes


def test_compare_reads_each_sides_processes_and_says_why_a_move_is_not_counted(tmp_path):
    """The process count kernelwatch's benchmark loop keeps beside a result reaches the
    check through the rows (results.files.PROCESSES_KEY), and compare's table names each
    side's process medians where the move stays within them."""
    import json

    from kernelwatch.report import compare
    from kernelwatch.results import rows as result_rows
    from kernelwatch.results.files import PROCESSES_KEY, SAMPLES_KEY

    from ..conftest import write_case_results

    rng = random.Random(6)
    bench, case = "rope.RopeTime.track_time", {"shape": "llama-3.1-8b", "variant": "compile"}
    name = f"{bench}('llama-3.1-8b', 'compile')"
    sides = {"run-1": [16.9e-6, 18.1e-6, 18.2e-6], "run-2": [17.6e-6, 17.0e-6, 16.9e-6]}
    for machine, levels in sides.items():
        path = write_case_results(tmp_path, machine, "a" * 40, "env", case,
                                  {bench: pooled(rng, levels)})
        data = json.loads(path.read_text())
        data["durations"] = {PROCESSES_KEY.format(name=name): 3,
                             SAMPLES_KEY.format(name=name): 150}
        path.write_text(json.dumps(data))
    rows = result_rows.load(tmp_path)
    assert {r.processes for r in rows} == {3}
    (c,) = compare.compare(rows, ("run-1", "a" * 40), ("run-2", "a" * 40), factor=1.03)
    assert c.mark == " " and c.change.significant
    assert c.conditions == ("not counted: within its processes (medians of base's 3: "
                            "16.9 us, 18.1 us, 18.2 us; head's 3: 16.9 us, 17 us, 17.6 us)")
    text = compare.markdown([c], ("run-1", "a" * 40), ("run-2", "a" * 40), 1.03)
    assert "0 better" in text and "1 series pooled from several processes at both" in text

    # samples appended by other means since the count was kept (plain asv's
    # --append-samples): the total kept with the count differs, so the count is not used
    data = json.loads(path.read_text())  # run-2's, the last written
    data["durations"][SAMPLES_KEY.format(name=name)] = 100
    path.write_text(json.dumps(data))
    rows = result_rows.load(tmp_path)
    assert sorted(r.processes for r in rows) == [0, 3]
    (c,) = compare.compare(rows, ("run-1", "a" * 40), ("run-2", "a" * 40), factor=1.03)
    assert c.mark == "-" and not c.conditions
