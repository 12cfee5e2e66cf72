"""Put back a warm device machine's own result files over a carried copy of results/.

Usage: python3 scripts/device-restore-results.py KEPT RESULTS

The lent GPU machine keeps results/ from one call to the next, but a call that carries
results/ replaces them. device-env.sh keeps a copy (KEPT) when it packs; at the next call
this copies a kept file into RESULTS where RESULTS lacks it, or where the kept file holds
every combination the other records (and, for a series pooled over processes, as many
processes or more). A file it does not cover (written by a call killed before it packed, or
measured elsewhere) and any other file that differs are left as they are, and named.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from kernelwatch.engine.benchloop import STOPPED_KEY
from kernelwatch.results.files import PROCESSES_KEY

POOLED = PROCESSES_KEY.partition("{name}")[0]  # a pooled series' process count
# A stopped process's seconds: gone from a file once its combination ends, not a result.
STOPPED = STOPPED_KEY.partition("{name}")[0]


def recorded(path: Path) -> dict | None:
    """A result file's `durations` (a combination's seconds; a pooled series' process
    count), or None for a file that is not an asv result file."""
    try:
        durations = json.loads(path.read_text()).get("durations")
    except (OSError, ValueError, AttributeError):
        return None
    return durations if isinstance(durations, dict) else None


def covers(kept: dict, other: dict) -> bool:
    return all(k in kept and (not k.startswith(POOLED) or kept[k] >= v)
               for k, v in other.items() if not k.startswith(STOPPED))


def restore(kept: Path, results: Path) -> tuple[list[str], list[str]]:
    """The files restored and the files left as they are."""
    restored, left = [], []
    for src in sorted(p for p in kept.rglob("*") if p.is_file()):
        dest = results / src.relative_to(kept)
        if dest.is_file() and dest.read_bytes() == src.read_bytes():
            continue
        if dest.exists():
            mine, theirs = recorded(src), recorded(dest) if dest.is_file() else None
            if mine is None or theirs is None or not covers(mine, theirs):
                left.append(str(dest))
                continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        restored.append(str(dest))
    return restored, left


def main() -> None:
    kept, results = Path(sys.argv[1]), Path(sys.argv[2])
    restored, left = restore(kept, results)
    if restored:
        print(f"note: {len(restored)} result files of this machine's earlier calls restored: "
              + ", ".join(restored[:4]) + (" ..." if len(restored) > 4 else ""))
    if left:
        print(f"note: {len(left)} files left as they are (they hold work this machine's copy "
              f"in {kept} lacks, or are not result files): " + ", ".join(left[:4])
              + (" ..." if len(left) > 4 else ""))


if __name__ == "__main__":
    main()
