"""`kernelwatch fidelity`: its statistics on synthetic runs whose truth is known, and one real
run (RoPE's tiny eager kernel, three fresh processes) through the command, its saved file,
`--show`, and the published fidelity page."""

import json
import random

import pytest

from kernelwatch.regression import detect, fidelity
from kernelwatch.report import fidelity as fidelity_view

from .conftest import kernelwatch_exe, sh
from .unit.test_detect import noisy

TARGET = fidelity.Target("w", "WTime", "track_time", ("tiny", "eager"))


def synthetic(run_cv: float, sample_cv: float, slowdowns=(0.05, 0.20), runs: int = 21,
              seed: int = 0) -> fidelity.Measured:
    """Runs whose process-to-process spread is `run_cv` and whose in-process spread is
    `sample_cv`; each process measures A and A slowed by each fraction."""
    rng = random.Random(seed)
    out = []
    for _ in range(runs):
        median = 1e-3 * rng.lognormvariate(0, run_cv)
        out.append({repr(0.0): noisy(rng, median, sample_cv),
                    **{repr(x): noisy(rng, median * (1 + x), sample_cv) for x in slowdowns}})
    return fidelity.Measured(TARGET, out)


def test_a_quiet_benchmark_gets_a_tight_threshold_and_catches_a_5_percent_slowdown():
    a = fidelity.analyse(synthetic(run_cv=0.003, sample_cv=0.01))
    assert a.pairs == 20 and a.threshold in (1.02, 1.03)
    assert a.aa_alarms[f"{a.threshold:.2f}"] == 0
    assert a.caught["0.05"][f"{a.threshold:.2f}"] >= 19 and a.smallest_caught == 0.05
    # asv's fixed 1.10 cannot see 5%: its smallest catch is the 20% step.
    assert a.asv_smallest_caught == 0.2 and a.asv_aa_alarms == 0
    assert 0.04 < a.achieved["0.05"] < 0.06


def test_process_to_process_noise_raises_the_threshold_and_is_reported():
    """In-process samples tight (0.5%), but medians move 4% between processes: asv's test
    finds every pair significant, so only the factor keeps A/A pairs quiet."""
    a = fidelity.analyse(synthetic(run_cv=0.04, sample_cv=0.005, seed=1))
    assert a.run_cv > 0.025 and a.sample_cv < 0.01
    assert a.threshold is not None and a.threshold >= 1.10
    assert a.aa_alarms["1.02"] > 5  # what a fixed small factor would have cried
    assert a.smallest_caught in (0.2, None)


def test_the_table_names_each_series_threshold_and_its_catches():
    a = fidelity.analyse(synthetic(run_cv=0.003, sample_cv=0.01))
    text = fidelity_view.markdown([a], [fidelity.Measured(TARGET, [], "needs a CUDA GPU")])
    assert "| w.WTime.track_time(tiny, eager) |" in text
    assert f"| {a.threshold:.2f} | 0/20 |" in text and "| 5% |" in text
    assert "skipped: needs a CUDA GPU" in text
    assert detect.series_key("w.WTime.track_time", ["tiny", "eager"]) == TARGET.key


@pytest.mark.slow
def test_fidelity_measures_in_fresh_processes_saves_the_samples_and_publishes(clone):
    fid = [kernelwatch_exe(), "fidelity", "--machine", "fid-test"]
    r = sh([*fid, "--workload", "rope", "--param", "variant=eager", "--runs", "3",
             "--slowdowns", "2.0"], clone)
    assert r.returncode == 0, r.stderr
    key = "rope.RopeTime.track_time(tiny, rotate-half, float32, eager)"
    assert f"[1/1] {key} (time)" in r.stdout and "3/3 runs" in r.stdout
    assert f"| {key} |" in r.stdout and "200% caught" in r.stdout
    saved = list((clone / ".kernelwatch" / "fidelity").glob("fid-test-*.json"))
    assert len(saved) == 1
    data = json.loads(saved[0].read_text())
    assert data["environment"]["torch"] and len(data["targets"][0]["runs"]) == 3
    assert set(data["targets"][0]["runs"][0]) == {"0.0", "2.0"}
    a = fidelity.analyse(fidelity.load_latest(clone)["fid-test"][key][0])
    # The injected 200% (3x), measured in-process: present and of its order. Lost it would
    # read 0, taken as a percentage 199. The band is wide and the injection large because a
    # tiny kernel on this shared machine can move between levels 3x apart within a process
    # (CI read 6% of an injected 30%): what it checks is the injection, not the weather.
    assert 0.3 < a.achieved["2.0"] < 20, a.achieved

    shown = sh([*fid, "--show"], clone)
    assert shown.returncode == 0 and f"| {key} |" in shown.stdout

    from kernelwatch.commands.publish import fidelity_for_site
    from kernelwatch.report import site

    html = clone / "html-fidelity-test"
    (clone / "results-empty").mkdir()
    site.write(clone / "results-empty", html, **fidelity_for_site(clone))
    page = (html / "kernelwatch" / "fidelity.html").read_text()
    assert "<h2>fid-test</h2>" in page and key in page

    for bad, message in ((["--workload", "nope"], "unknown workload 'nope'"),
                         (["--workload", "rope", "--track", "nope"], "unknown timed track"),
                         (["--runs", "1"], "--runs 1: needs at least 2"),
                         (["--pool", "3", "--runs", "4"], "--pool 3 needs at least 6 runs"),
                         (["--pool", "0"], "--pool takes a count of 1 or more"),
                         (["--show", "--pool", "2"], "--pool 2 needs at least 4 runs")):
        r = sh([*fid, *bad], clone)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
