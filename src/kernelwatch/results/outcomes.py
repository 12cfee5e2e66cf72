"""Why a combination was skipped or failed, kept beside asv's result file.

asv keeps a benchmark's output in memory only, and records a skipped combination as NaN,
exactly as one that was not selected: neither the reason nor the fact that it ran survive
into its files. The engine reads both from asv's output (kernelwatch.engine.progress.Outcomes) and
writes them to `<machine>/<commit[:8]>-<environment>.outcomes` beside the result file:
{combination name: {"status": "skipped" | "failed", "reason": text}}, where a combination
that runs again replaces its entry (one that ends ok removes it), and "*" stands for the
whole commit when it did not build or install. `rows.load` gives the reasons to the
rows, which the report, compare, the site and bisect show.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from kernelwatch.results import files as result_files

SUFFIX = ".outcomes"
WHOLE_COMMIT = "*"
# asv's last line for a process it stopped at the benchmark's timeout: a failed
# combination's reason when it timed out.
TIMED_OUT = re.compile(r"asv: benchmark timed out \(timeout ([\d.]+)s\)")


def path_of(results: Path, machine: str, commit: str, env: str) -> Path:
    from asv.results import get_filename

    return results / get_filename(machine, commit[:8], env).replace(".json", SUFFIX)


def read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(results: Path, machine: str, commit: str, env: str,
           ended: dict[str, tuple[str, str]]) -> Path | None:
    """Merge what the combinations of one (commit, environment) ended as (name -> (status,
    reason)) into its outcomes file; the file goes when nothing in it is left."""
    path = path_of(results, machine, commit, env)
    kept = result_files.read_or_move_aside(path)  # a damaged file is kept apart
    for name, (status, reason) in ended.items():
        if status == "ok":
            kept.pop(name, None)
            kept.pop(WHOLE_COMMIT, None)  # it built this time
            continue
        # A library's message may carry a terminal's colour codes: the file holds plain text.
        reason = (result_files.CONTROL.sub("", reason or "")[:result_files.TEXT_LIMIT]
                  or "no reason printed")
        entry = {name: {"status": status, "reason": reason}}
        try:
            result_files.check_entries("outcomes", entry)
        except result_files.Refused as exc:
            print(f"kernelwatch: not recorded in {path.name}: {exc}", file=sys.stderr)
            continue
        kept.update(entry)
    if not kept:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    result_files.write_whole(path, json.dumps(kept, indent=1, sort_keys=True))
    return path


def load_all(results: Path) -> tuple[dict[tuple[str, str, str], dict[str, dict[str, str]]],
                                      list[str]]:
    """{(machine, commit[:8], environment): entries} of every outcomes file under `results`,
    and "path (why)" for each file the layout or its shape refuses (as publish refuses it)."""
    out, refused = {}, []
    if not results.is_dir():
        return out, refused
    for path in sorted(results.glob(f"*/*{SUFFIX}")):
        rel = path.relative_to(results).as_posix()
        try:
            data = result_files.check_file(results, rel)
        except result_files.Refused as exc:
            refused.append(f"{path} ({str(exc).removeprefix(f'{rel}: ')})")
            continue
        commit, _, env = path.name[:-len(SUFFIX)].partition("-")
        out[(path.parent.name, commit, env)] = data
    return out, refused
