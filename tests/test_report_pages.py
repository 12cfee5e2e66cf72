"""kernelwatch's derived pages on hand-checked rows: break-even and torch versions."""

from kernelwatch.report import break_even, torch_versions
from kernelwatch.report.results import Row


def row(bench, variant, value, torch="2.13.0", commit="a" * 40, samples=None):
    return Row(machine="m", commit=commit, date=1, env_name=f"env-{torch}",
               env={"torch": torch, "gpu": "none"}, benchmark=bench,
               params={"shape": "tiny", "variant": variant}, unit="seconds", value=value,
               samples=samples)


def test_break_even_is_the_one_time_cost_over_the_saving_per_call():
    rows = [row("w.WFirstRun.track_first_run", "eager", 1.0),
            row("w.WFirstRun.track_first_run", "compile", 11.0),  # 10 s more than eager
            row("w.WTime.track_time", "eager", 2e-3),
            row("w.WTime.track_time", "compile", 1e-3),  # saves 1 ms a call
            row("w.WFirstRun.track_first_run", "slower", 3.0),
            row("w.WTime.track_time", "slower", 3e-3)]
    found = {f["variant"]: f for f in break_even.rows_of(rows, lambda w, d: "eager")}
    assert abs(found["compile"]["cost"] - 10.0) < 1e-9
    assert abs(found["compile"]["calls"] - 10_000) < 1e-6  # 10 s / 1 ms
    assert found["slower"]["calls"] is None  # never pays


def test_torch_versions_side_by_side_with_the_ratio():
    fast = [1e-3 * (1 + i / 1000) for i in range(20)]
    slow = [2e-3 * (1 + i / 1000) for i in range(20)]
    rows = [row("w.WTime.track_time", "eager", None, "2.13.0", samples=fast),
            row("w.WTime.track_time", "eager", None, "2.14.1", samples=slow)]
    commit, versions, table = torch_versions.side_by_side(rows)["m"]
    assert versions == ["2.13.0", "2.14.1"]
    assert abs(table[0]["ratio"] - 2.0) < 0.01 and table[0]["flag"] == "worse"


def test_the_change_table_follows_the_branch_order_where_dates_tie():
    """Two commits in one second: the branch's order, not the date, says which is newer."""
    from kernelwatch.report import site

    def timed(commit, median):
        r = row("w.WTime.track_time", "eager", None, commit=commit,
                samples=[median * (1 + i / 1000) for i in range(20)])
        return r

    rows = [timed("a" * 40, 1e-3), timed("b" * 40, 2e-3)]
    (change,) = site.changes(rows, commit_order={"a" * 40: 2, "b" * 40: 1})  # a is newer
    assert change["commits"] == "bbbbbbbb -> aaaaaaaa" and change["flag"] == "better"
    (change,) = site.changes(rows, commit_order={"a" * 40: 1, "b" * 40: 2})
    assert change["commits"] == "aaaaaaaa -> bbbbbbbb" and change["flag"] == "worse"
