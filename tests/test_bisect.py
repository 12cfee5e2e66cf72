"""bisect's points on a history with merges (a real git repository), searched with a series
made up per commit: the points are commits that contain GOOD, each judged against the point
before it, and the report says when that point is not the culprit's parent."""

import subprocess
from pathlib import Path

from kernelwatch.regression import bisect
from kernelwatch.report import bisect as bisect_view

from .conftest import git


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", name, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def merge(repo: Path, branch: str, name: str) -> str:
    git("-c", "user.name=x", "-c", "user.email=x@x", "merge", "-q", "--no-ff", "-m", name,
        branch, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def history_with_a_side_branch(repo: Path) -> dict[str, str]:
    """main: M0 - F1 - F2 - M (merges side) - F3 - F4; side: M0 - S1 - S2.

    S1 is GOOD, on the side branch; BAD (F4) reaches it only through the merge M."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    c = {"M0": commit(repo, "M0")}
    git("checkout", "-q", "-b", "side", cwd=repo)
    c["S1"], c["S2"] = commit(repo, "S1"), commit(repo, "S2")
    git("checkout", "-q", "main", cwd=repo)
    c["F1"], c["F2"] = commit(repo, "F1"), commit(repo, "F2")
    c["M"] = merge(repo, "side", "M")
    c["F3"], c["F4"] = commit(repo, "F3"), commit(repo, "F4")
    return c


def series(slow: set[str], c: dict[str, str]):
    """A made-up series: 3x slower at the commits named in `slow`."""
    by_hash = {h: name for name, h in c.items()}

    def measure(point: str) -> bisect.Measured:
        base = 3.0 if by_hash[point] in slow else 1.0
        return bisect.Measured(point, tuple(base * (1 + j / 100) for j in range(10)))
    return measure


def test_good_through_a_merge_names_the_commit_after_the_merge_against_its_parent(tmp_path):
    """The side branch made the series fast (S1, S2, and main after the merge); F3 made it
    slow again. The first-parent walk of GOOD..BAD used to take F1 and F2 (which lack GOOD,
    so they are slow) and name F1 "against its parent" GOOD; the regression is F3."""
    c = history_with_a_side_branch(tmp_path / "lib")
    points = bisect.commit_points(tmp_path / "lib", c["S1"], c["F4"], "lib")
    assert points == [c["S1"], c["M"], c["F3"], c["F4"]]
    outcome = bisect.search(points, series({"M0", "F1", "F2", "F3", "F4"}, c), factor=1.1)
    assert (outcome.culprit, outcome.parent) == (c["F3"], c["M"])

    parents = bisect.first_parents(tmp_path / "lib", points)
    note = bisect.merge_note(points, parents)
    assert note.startswith(f"GOOD {c['S1'][:12]} is not on BAD's first-parent line: it came "
                           f"in with the merge {c['M'][:12]}")
    lines = bisect_view.summary(outcome, "commit", {}, parents)
    assert lines[0] == f"{c['F3']} is the first bad commit"
    assert f"against its parent {c['M'][:12]}:" in lines[1]


def test_a_merge_that_brings_the_slowdown_is_named_against_good_not_its_parent(tmp_path):
    """The main line was slow before the merge (F1): the merge is the first point that is
    slow, and it is judged against GOOD, which the report says, with where to look next."""
    c = history_with_a_side_branch(tmp_path / "lib")
    points = bisect.commit_points(tmp_path / "lib", c["S1"], c["F4"], "lib")
    outcome = bisect.search(points, series({"F1", "F2", "M", "F3", "F4"}, c), factor=1.1)
    assert (outcome.culprit, outcome.parent) == (c["M"], c["S1"])
    lines = bisect_view.summary(outcome, "commit", {},
                                bisect.first_parents(tmp_path / "lib", points))
    assert f"against GOOD {c['S1'][:12]} (it is the merge that brought GOOD in; its first " \
           f"parent {c['F2'][:12]} lacks GOOD" in lines[1]


def test_good_on_the_first_parent_line_is_said_nothing_of(tmp_path):
    c = history_with_a_side_branch(tmp_path / "lib")
    points = bisect.commit_points(tmp_path / "lib", c["F1"], c["F4"], "lib")
    assert points == [c["F1"], c["F2"], c["M"], c["F3"], c["F4"]]
    assert bisect.merge_note(points, bisect.first_parents(tmp_path / "lib", points)) is None


CASE = {"shape": "tiny", "form": "rotate-half", "dtype": "float32", "variant": "eager"}
TIME = "rope.RopeTime.track_time"


def test_the_closing_comparison_claims_no_threshold_it_did_not_use(tmp_path, isolated_home,
                                                                   capsys):
    """Every point already recorded (no asv run): the culprit's comparison says it judged at
    1.10, as `kernelwatch compare` would with no `kernelwatch fidelity` on the machine. It
    used to claim the series' own fidelity threshold, which did not exist."""
    from kernelwatch.commands.bisect import bisect_series
    from kernelwatch.engine import asvrun

    from .conftest import REPO, write_case_results

    clone = tmp_path / "kernelwatch"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)],
                   check=True)
    # Three commits in a line, whatever the checkout's own history (a merge among its last
    # three would put a side branch's commits in the range).
    for n in (1, 2):
        git("-c", "user.name=kw", "-c", "user.email=kw@localhost", "commit", "-q",
            "--allow-empty", "-m", f"point {n}", cwd=clone)
    commits = git("rev-list", "HEAD", cwd=clone).split()[::-1]
    env = asvrun.environment_names(asvrun.derived_config(clone, torch_versions=["2.13.0"]),
                                   None)[0]
    for c, base in zip(commits, (1e-4, 1e-4, 3e-4), strict=True):
        write_case_results(clone / "results", "box", c, env, CASE,
                           {TIME: [base * (1 + i / 100) for i in range(10)]})

    rc = bisect_series(clone, commits[0], commits[-1], workload="rope",
                       params=[f"{k}={v}" for k, v in CASE.items()], torch=["2.13.0"],
                       machine="box", processes=1)
    out = capsys.readouterr().out
    assert rc == 0 and f"{commits[-1]} is the first bad commit" in out
    closing = out.split("### kernelwatch:")[1]
    assert "the medians differ by more than 1.10x;" in closing
    assert "kernelwatch fidelity" not in closing
