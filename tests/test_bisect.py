"""bisect's points on a history with merges (a real git repository), searched with a series
made up per commit: the points are commits that contain GOOD, each judged against the point
before it, and the report says when that point is not the culprit's parent."""

import subprocess
from pathlib import Path

from kernelwatch import bisect

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
    lines = bisect.summary(outcome, "commit", {}, parents)
    assert lines[0] == f"{c['F3']} is the first bad commit"
    assert f"against its parent {c['M'][:12]}:" in lines[1]


def test_a_merge_that_brings_the_slowdown_is_named_against_good_not_its_parent(tmp_path):
    """The main line was slow before the merge (F1): the merge is the first point that is
    slow, and it is judged against GOOD, which the report says, with where to look next."""
    c = history_with_a_side_branch(tmp_path / "lib")
    points = bisect.commit_points(tmp_path / "lib", c["S1"], c["F4"], "lib")
    outcome = bisect.search(points, series({"F1", "F2", "M", "F3", "F4"}, c), factor=1.1)
    assert (outcome.culprit, outcome.parent) == (c["M"], c["S1"])
    lines = bisect.summary(outcome, "commit", {},
                           bisect.first_parents(tmp_path / "lib", points))
    assert f"against GOOD {c['S1'][:12]} (it is the merge that brought GOOD in; its first " \
           f"parent {c['F2'][:12]} lacks GOOD" in lines[1]


def test_good_on_the_first_parent_line_is_said_nothing_of(tmp_path):
    c = history_with_a_side_branch(tmp_path / "lib")
    points = bisect.commit_points(tmp_path / "lib", c["F1"], c["F4"], "lib")
    assert points == [c["F1"], c["F2"], c["M"], c["F3"], c["F4"]]
    assert bisect.merge_note(points, bisect.first_parents(tmp_path / "lib", points)) is None
