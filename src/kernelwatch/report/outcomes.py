"""The skipped and failed page: every case that ran and gave no value, at each commit and
environment, with the reason the run recorded (kernelwatch.results.outcomes). A library's commit
that its adapter cannot call, a requirement it lacks, a traceback of its code: said here as
on the console, never a blank in a table."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from kernelwatch.report.format import NAV, html_table, page, short_env_names
from kernelwatch.results.rows import Row

HEADERS = ["commit", "environment", "status", "cases", "reason"]


def grouped(rows: list[Row]) -> list[tuple[Row, str, str, list[Row]]]:
    """(first row, status, reason, rows) per (machine, env, commit, status, reason), newest
    commits first."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.failed or r.skipped:
            status = "failed" if r.failed else "skipped"
            groups[(r.machine, r.env_name, r.commit, status, r.reason)].append(r)
    out = [(rs[0], key[3], key[4], rs) for key, rs in groups.items()]
    out.sort(key=lambda g: (-g[0].date, g[0].commit, g[1]))
    return out


def _case(r: Row) -> str:
    return f"{r.benchmark}({', '.join(r.params.values())})"


def text_lines(rows: list[Row], limit: int = 20) -> list[str]:
    """The same, as lines for `kernelwatch report`."""
    groups = grouped(rows)
    if not groups:
        return []
    lines = [f"-- skipped and failed ({sum(len(g[3]) for g in groups)} cases)"]
    for first, status, reason, rs in groups[:limit]:
        more = f" and {len(rs) - 1} more" if len(rs) > 1 else ""
        lines.append(f"{first.commit[:8]} {status}: {_case(first)}{more}: "
                     f"{reason or 'no reason recorded'}")
    if len(groups) > limit:
        lines.append(f"... {len(groups) - limit} more groups (the site's skipped and failed "
                     "page lists them all)")
    return lines


def write(rows: list[Row], out_dir: Path, commit_subjects: dict[str, str] | None = None
          ) -> Path:
    groups = grouped(rows)
    by_env: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by_env[(r.machine, r.env_name)].append(r)
    names = short_env_names(dict(by_env)) if by_env else {}
    parts = ["<h1>Skipped and failed</h1>", NAV,
             "<p>Every case that ran and gave no value, with the reason its run recorded: "
             "skipped (the code under test cannot run there: a variant for another device, "
             "a library release its adapter cannot call, a requirement missing) or failed (an "
             "exception, a timeout, a build that did not install). Newest commits first.</p>"]
    if not groups:
        parts.append("<p>Nothing was skipped or failed.</p>")
    body = []
    for first, status, reason, rs in groups:
        subject = (commit_subjects or {}).get(first.commit, "")
        cases = "; ".join(_case(r) for r in rs[:8]) + (
            f"; and {len(rs) - 8} more" if len(rs) > 8 else "")
        body.append([f"{first.commit[:8]} {subject[:80]}".strip(),
                     names.get((first.machine, first.env_name), first.env_name),
                     status, cases, reason or "no reason recorded"])
    if body:
        parts.append(html_table(HEADERS, body, ["worse" if g[1] == "failed" else ""
                                                for g in groups]))
    path = out_dir / "outcomes.html"
    path.write_text(page("kernelwatch: skipped and failed", parts))
    return path
