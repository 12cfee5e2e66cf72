"""The regressions page: asv's own detected steps beside kernelwatch's commit-to-commit
comparison, newest first, each row linking to its series' graph on asv's site.

asv's steps come from the Atom feed `asv publish` writes (html/regressions.xml: its
step_detect over each whole series, lower is better, the config's regressions_thresholds);
they are read, not recomputed. kernelwatch's rows come from report.site.changes (each pair
of neighbouring commits through detect.compare, at each series' fidelity threshold).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from kernelwatch.report.format import NAV, fmt_value, html_table, page

ATOM = "{http://www.w3.org/2005/Atom}"


def asv_steps(html_dir: Path) -> list[dict]:
    """asv's detected regressions, newest first: {"date", "title", "href", "summary"}."""
    feed = Path(html_dir) / "regressions.xml"
    if not feed.is_file():
        return []
    steps = []
    for entry in ET.parse(feed).getroot().iter(f"{ATOM}entry"):
        link = entry.find(f"{ATOM}link")
        content = entry.find(f"{ATOM}content")
        text = html.unescape(re.sub(r"<[^>]+>", " ", content.text or "")) if content is not None \
            else ""
        steps.append({"date": entry.findtext(f"{ATOM}updated", ""),
                      "title": entry.findtext(f"{ATOM}title", ""),
                      "href": link.get("href", "") if link is not None else "",
                      "summary": " ".join(text.split())})
    return sorted(steps, key=lambda s: s["date"], reverse=True)


def change_table(ch: list[dict]) -> str:
    """kernelwatch's change rows (report.site.changes) as a table, each row linking to its
    series' graph on asv's site with the machine selected."""
    body = [[c["machine"], c["env"],
             (c["benchmark"], f"../index.html#{c['benchmark']}?machine={c['machine']}"),
             c["params"], (c["commits"], c["commit_href"]) if c.get("commit_href")
             else c["commits"], fmt_value(c["old"], c["unit"]),
             fmt_value(c["new"], c["unit"]), c["unit"], f"{c['ratio']:.3f}", c["flag"],
             c.get("note", "")]
            for c in ch]
    return html_table(["machine", "env", "benchmark", "params", "commits", "before", "after",
                       "unit", "after/before", "flag", "what changed"], body,
                      [c["flag"] for c in ch])


def write(html_dir: Path, ch: list[dict], heading: str) -> Path:
    """html/kernelwatch/regressions.html."""
    steps = asv_steps(html_dir)
    parts = ["<h1>Regressions</h1>", NAV,
             '<p><a href="../index.html#/regressions">asv\'s regressions page</a></p>',
             f"<h2>{html.escape(heading)}</h2>"]
    parts.append(change_table(ch) if ch
                 else "<p>Only one commit measured so far.</p>")
    parts.append("<h2>asv's detected steps, newest first (asv publish: step detection over "
                 "each whole series, lower is better, asv.conf.json's regressions_thresholds)"
                 "</h2>")
    if steps:
        body = [[s["date"][:19].replace("T", " "), (s["title"], f"../{s['href']}"),
                 s["summary"]] for s in steps]
        parts.append(html_table(["date", "regression (links to its graph)", "asv says"],
                                body, ["worse"] * len(body)))
    else:
        parts.append("<p>asv detected no step (or `asv publish` has not run).</p>")
    path = Path(html_dir) / "kernelwatch" / "regressions.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page("kernelwatch: regressions", parts))
    return path
