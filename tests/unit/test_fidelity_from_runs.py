"""`kernelwatch fidelity --from-runs`: per-series thresholds from an A/A already recorded
(one commit run under several machine names), each benchmark process one run of the check,
read from result files as asv writes them. The series' samples are made up with a known
spread between processes: the logic is under test, not a machine's noise."""

import dataclasses
import json
import random
import shutil
import statistics
from collections.abc import Sequence

from kernelwatch.regression import detect, fidelity
from kernelwatch.results import rows as result_rows
from kernelwatch.results.files import PROCESSES_KEY, SAMPLES_KEY

from ..conftest import REPO, git, kernelwatch_exe, run, write_result_file

BENCH = "gptq.GptqTime.track_time"
QUIET = {"shape": "tinyllama-1.1b/q_proj", "scheme": "w4-sym-g128", "blocksize": "128",
         "variant": "triton"}
LOOSE = {**QUIET, "variant": "compile-column"}
RUNS = ["aa-1", "aa-2", "aa-3"]
PROCESSES = 3


def _key(params: dict[str, str]) -> str:
    return f"{BENCH}({', '.join(params.values())})"


def _process_samples(level: float, rng: random.Random) -> list[float]:
    return [level * (1 + rng.uniform(-0.002, 0.002)) for _ in range(10)]


def _record(results, commit: str, machine: str, levels: dict[str, list[float]],
            rng: random.Random, env: str = "existing-py", uneven: bool = False,
            dispatch: float | None = None) -> None:
    """One run's result file as asv writes it: GPTQ's time at two variants (`levels`:
    variant -> one level per benchmark process), each pooled from its processes, with the
    count kept beside it as `kernelwatch run --processes K` keeps it; and the host's
    dispatch fact at `dispatch` seconds, where given."""
    variants = list(levels)
    fixed = [QUIET[n] for n in ("shape", "scheme", "blocksize")]
    params = [*[[repr(v)] for v in fixed], [repr(v) for v in variants]]
    samples = [[s for level in levels[v] for s in _process_samples(level, rng)]
               for v in variants]
    durations = {}
    for v, s in zip(variants, samples, strict=True):
        combo = f"{BENCH}({', '.join(repr(x) for x in (*fixed, v))})"
        durations[PROCESSES_KEY.format(name=combo)] = len(levels[v])
        durations[SAMPLES_KEY.format(name=combo)] = len(s)
        if uneven:
            s.pop()  # a total that no longer splits into its processes
            durations[SAMPLES_KEY.format(name=combo)] = len(s)
    rows = {BENCH: [[statistics.median(s) for s in samples], params, "1", 0, 1.0, None, None,
                    None, None, None, None, samples]}
    if dispatch:
        rows[detect.HOST_FACT] = [[dispatch], [], "1", 0, 1.0, None, None, None, None, None,
                                  None, [_process_samples(dispatch, rng)]]
    write_result_file(results, machine, commit, env, rows, durations)
    (results / "benchmarks.json").write_text(json.dumps({"version": 2, BENCH: {
        "name": BENCH, "param_names": ["shape", "scheme", "blocksize", "variant"],
        "params": params, "type": "track", "version": "1", "unit": "seconds"},
        detect.HOST_FACT: {"name": detect.HOST_FACT, "param_names": [], "params": [],
                           "type": "track", "version": "1", "unit": "seconds"}}))


def _repo(tmp_path, dispatch: Sequence[float | None] = (None,) * len(RUNS)):
    """A git checkout whose HEAD has three A/A runs on record: a quiet series (processes
    within 0.5%) and a loose one (the first process of each run 20% slow, as GPTQ's
    host-paced column loop reads on a GPU)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "asv.conf.json", repo)  # what marks a kernelwatch checkout
    git("init", "-q", cwd=repo)
    git("add", "asv.conf.json", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c", cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo).strip()
    rng = random.Random(0)
    for i, machine in enumerate(RUNS):
        _record(repo / "results", commit, machine, {
            "triton": [9.0e-3 * (1 + 0.002 * ((i + p) % 3)) for p in range(PROCESSES)],
            "compile-column": [250e-3 * (1.2 if p == 0 else 1.0) for p in range(PROCESSES)]},
            rng, dispatch=dispatch[i])
    return repo, commit


def test_each_process_of_each_run_is_one_run_of_the_check_interleaved(tmp_path):
    repo, commit = _repo(tmp_path)
    rows = [r for r in result_rows.load(repo / "results") if r.commit == commit]
    found, left_out = fidelity.from_rows(rows, RUNS)
    measured = {m.target.key: m for m in found}
    assert set(measured) == {_key(QUIET), _key(LOOSE)} and left_out == []
    loose = measured[_key(LOOSE)]
    assert len(loose.runs) == len(RUNS) * PROCESSES
    # each run's first process, then each run's second...: neighbours are of two runs
    medians = [sorted(r["0.0"])[5] for r in loose.runs]
    assert [round(m / 250e-3, 1) for m in medians] == [1.2] * 3 + [1.0] * 6
    quiet, loose = fidelity.analyse(measured[_key(QUIET)]), fidelity.analyse(loose)
    assert quiet.pairs == loose.pairs == len(RUNS) * PROCESSES - 1
    assert quiet.threshold is not None and quiet.threshold <= 1.03
    assert loose.threshold is None or loose.threshold > 1.20
    assert quiet.caught == {} and quiet.smallest_caught is None


def test_a_series_in_one_run_or_split_unevenly_is_left_out_and_said(tmp_path):
    repo, commit = _repo(tmp_path)
    rng = random.Random(1)
    _record(repo / "results", commit, "aa-4", {"triton": [9e-3] * 3}, rng, uneven=True)
    _record(repo / "results", commit, "aa-5", {"eager": [0.3] * 3}, rng)
    rows = [r for r in result_rows.load(repo / "results") if r.commit == commit]
    found, left_out = fidelity.from_rows(rows, [*RUNS, "aa-4", "aa-5"])
    assert {m.target.key for m in found} == {_key(QUIET), _key(LOOSE)}
    assert len(next(m for m in found if m.target.key == _key(QUIET)).runs) == 9
    eager = _key({**QUIET, "variant": "eager"})
    assert any(why.startswith(f"{_key(QUIET)} in aa-4: its 29 samples do not split")
               for why in left_out), left_out
    assert f"{eager}: recorded in aa-5 alone" in "\n".join(left_out)


def test_from_runs_files_thresholds_that_compare_uses(tmp_path):
    repo, commit = _repo(tmp_path)
    out = run([kernelwatch_exe(), "fidelity", "--from-runs", ",".join(RUNS), "--machine",
               "aa-3"], repo)
    assert out.returncode == 0, out.stderr
    assert "2 series from 3 runs" in out.stdout and "not injected" in out.stdout
    assert "fewer than 10 pairs" in out.stderr
    own = fidelity.thresholds(repo)["aa-3"]
    assert own[_key(QUIET)] <= 1.03
    cmp = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-1",
               "--machine", "aa-3"], repo)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    line = next(ln for ln in cmp.stdout.splitlines() if "triton" in ln and BENCH in ln)
    assert f"| {own[_key(QUIET)]:.2f} |" in line
    # one slow process in each run: a threshold of 1.50, measured, used as measured
    assert own[_key(LOOSE)] == 1.50 and "of them at 1.50" not in cmp.stdout
    line = next(ln for ln in cmp.stdout.splitlines() if "compile-column" in ln)
    assert "| 1.50 |" in line


def test_a_series_no_factor_held_in_is_judged_at_the_widest_one_process_a_side(tmp_path):
    """A series whose A/A alarmed at every factor is judged at 1.50, not the default 1.10
    its own processes cross, where both sides are one process as the A/A's were; sides that
    pool processes keep 1.10 and the rule that a change clear every process."""
    from kernelwatch.report import compare
    from kernelwatch.results.rows import Row

    repo, commit = _repo(tmp_path)
    rows = [r for r in result_rows.load(repo / "results") if r.commit == commit]
    found, _ = fidelity.from_rows(rows, RUNS)
    quiet, loose = sorted((fidelity.analyse(m) for m in found), key=lambda a: a.run_cv)
    own = fidelity.series_thresholds([quiet, dataclasses.replace(loose, threshold=None)])
    assert own == {quiet.key: quiet.threshold, loose.key: fidelity.UNHELD}
    assert fidelity.factor(own, loose.key, (1, 1), 1.10) == fidelity.FACTORS[-1]
    assert fidelity.factor(own, loose.key, (0, 1), 1.10) == fidelity.FACTORS[-1]  # no count
    assert fidelity.factor(own, loose.key, (3, 3), 1.10) == 1.10
    assert fidelity.factor(own, quiet.key, (3, 3), 1.10) == quiet.threshold
    assert fidelity.factor(own, "w.T.track_time(other)", (1, 1), 1.03) == 1.03

    bench, a, b = "w.T.track_time", "a" * 40, "b" * 40
    unheld = {detect.series_key(bench, ["eager"]): fidelity.UNHELD}
    before = [1e-3 * (1 + 0.001 * (i % 3)) for i in range(30)]
    for processes, judged_at, mark in ((1, 1.50, ""), (3, 1.10, "+")):
        rows = [Row(machine="m", commit=c, date=0, env_name="env", env={}, benchmark=bench,
                    params={"variant": "eager"}, unit="seconds", value=s[0], samples=s,
                    processes=processes)
                for c, s in ((a, before), (b, [x * 1.3 for x in before]))]
        (found,) = compare.compare(rows, ("m", a), ("m", b), thresholds=unheld)
        assert (found.factor, found.mark.strip()) == (judged_at, mark)
        text = compare.markdown([found], ("m", a), ("m", b), 1.10, unheld)
        assert ("1 of them at 1.50, the widest it tries" in text) == (processes == 1)
        assert f"| {judged_at:.2f} |" in text


def test_from_runs_names_what_is_missing_and_what_does_not_apply(tmp_path):
    repo, commit = _repo(tmp_path)

    def fid(*args):
        return run([kernelwatch_exe(), "fidelity", *args], repo)

    missing = fid("--from-runs", "aa-1,aa-9")
    assert missing.returncode == 2
    assert f"no results for commit {commit[:8]} on machine 'aa-9'" in missing.stderr
    assert "check the names (results at" in missing.stderr and "aa-1, aa-2, aa-3" in missing.stderr
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "d",
        cwd=repo)
    later = fid("--from-runs", "aa-1,aa-2")  # HEAD moved on since the A/A
    assert later.returncode == 2 and f"results at {commit[:8]}: --commit names" in later.stderr
    assert fid("--from-runs", "aa-1,aa-2", "--commit", commit[:8]).returncode == 0
    for args, says in ((("--from-runs", "aa-1,aa-1"), "names a run twice"),
                       (("--from-runs", "aa-1,../x"), "is not a plain name"),
                       (("--from-runs", "aa-1"), "two machine names or more"),
                       (("--from-runs", ""), "two machine names or more"),
                       (("--from-runs", "aa-1,aa-2", "--pool", "3"), "--pool do not apply"),
                       (("--from-runs", "aa-1,aa-2", "--show"), "--show do not apply"),
                       (("--commit", "HEAD~1", "--show"), "--commit goes with --from-runs")):
        out = fid(*args)
        assert out.returncode == 2 and says in out.stderr, (args, out.stderr)


def test_runs_with_two_environments_need_env(tmp_path):
    repo, commit = _repo(tmp_path)
    rng = random.Random(2)
    for machine in RUNS:
        _record(repo / "results", commit, machine, {"triton": [8e-3] * 3}, rng,
                env="virtualenv-py3.12-torch2.14.1")
    both = run([kernelwatch_exe(), "fidelity", "--from-runs", ",".join(RUNS)], repo)
    assert both.returncode == 2
    assert "the runs hold 2 environments" in both.stderr and "--env NAME picks" in both.stderr
    one = run([kernelwatch_exe(), "fidelity", "--from-runs", ",".join(RUNS), "--env",
               "virtualenv-py3.12-torch2.14.1", "--machine", "runner"], repo)
    assert one.returncode == 0, one.stderr
    assert "1 series from 3 runs" in one.stdout and "8 ms" in one.stdout


def test_from_runs_says_which_run_s_host_moved_and_which_runs_held(tmp_path):
    """Modelled on a lent H100's three readings of the dispatch (6.4, 8.8 and 6.6 us in
    three processes, 2026-12-07): one run's host 1.34x the others'. The thresholds are
    still read from every run; stderr names the run whose host moved and the runs to read
    them from instead."""
    repo, _ = _repo(tmp_path, dispatch=(6.4e-6, 8.8e-6, 6.6e-6))
    rng = random.Random(2)
    _record(repo / "results", git("rev-parse", "HEAD", cwd=repo).strip(), "aa-4",
            {"triton": [9e-3] * 3, "compile-column": [250e-3] * 3}, rng, dispatch=6.5e-6)
    out = run([kernelwatch_exe(), "fidelity", "--from-runs", "aa-1,aa-2,aa-3,aa-4",
               "--machine", "aa-4"], repo)
    assert out.returncode == 0, out.stderr
    assert ("kernelwatch: the host's dispatch moved in aa-2 (1.35x) against the runs' "
            "median of 6.5 us") in out.stderr
    assert "--from-runs aa-1,aa-3,aa-4 reads the thresholds from the runs whose host held" \
        in out.stderr
    assert "is not recorded" not in out.stderr


def test_from_runs_says_where_the_host_s_dispatch_was_not_recorded(tmp_path):
    repo, _ = _repo(tmp_path, dispatch=(6.4e-6, None, 6.6e-6))
    out = run([kernelwatch_exe(), "fidelity", "--from-runs", ",".join(RUNS), "--machine",
               "aa-3"], repo)
    assert out.returncode == 0, out.stderr
    assert (f"kernelwatch: the host's dispatch ({detect.HOST_FACT}) is not recorded in aa-2, "
            "so whether the host moved between the runs is not known") in out.stderr
    assert "moved in" not in out.stderr  # two runs cannot say which of them moved
