"""The result files an asv call may rewrite, kept as they were until the call has ended.

asv rewrites a (commit, environment) result file in place (open, truncate, write): on a full
disk, or when it is killed mid-write, the file that held earlier results is left truncated
and every result in it is lost. And asv writes `<machine>/machine.json` before it measures,
so a run that fails before measuring (an environment pip cannot build) still replaces it.
A Snapshot holds the bytes of each such file in memory (they are small; a full disk has no
room for a copy) and puts back any that the call left unreadable, or every machine file
when the call measured nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from asv.results import Results

from kernelwatch.report.results import UNREADABLE


def _readable(path: Path, machine: str) -> bool:
    try:
        if path.name in ("machine.json", "benchmarks.json", ".asv-machine.json"):
            json.loads(path.read_bytes())
        else:
            Results.load(str(path), machine_name=machine)
        return True
    except (OSError, *UNREADABLE):
        return False


@dataclass
class Snapshot:
    results: Path
    machine: str
    machine_file: Path  # asv's ~/.asv-machine.json, which kernelwatch writes before asv runs
    saved: dict[Path, bytes | None] = field(default_factory=dict)

    @classmethod
    def take(cls, results: Path, machine: str, machine_file: Path) -> Snapshot:
        snap = cls(Path(results), machine, Path(machine_file))
        for path in snap._watched():
            snap.saved[path] = path.read_bytes() if path.is_file() else None
        return snap

    def _watched(self) -> list[Path]:
        d = self.results / self.machine
        paths = {self.results / "benchmarks.json", d / "machine.json", self.machine_file}
        paths |= set(d.glob("*.json")) if d.is_dir() else set()
        return sorted(paths)

    def changed_results(self) -> list[Path]:
        """Result files (not machine or benchmark lists) that differ from the snapshot."""
        d = self.results / self.machine
        now = set(d.glob("*.json")) if d.is_dir() else set()
        return [p for p in sorted(now | {p for p in self.saved if p.parent == d})
                if p.name != "machine.json"
                and (p.read_bytes() if p.is_file() else None) != self.saved.get(p)]

    def bytes_kept(self) -> int:
        return sum(len(b) for b in self.saved.values() if b)

    def repair(self, measured: bool) -> list[str]:
        """Put back every watched file the call left unreadable (a new unreadable file is
        removed), and, when the call measured nothing, the machine files as they were.
        Returns what was done, one line per file."""
        done = []
        d = self.results / self.machine
        candidates = set(self.saved) | (set(d.glob("*.json")) if d.is_dir() else set())
        broken = [p for p in sorted(candidates)
                  if p.exists() and not _readable(p, self.machine)]
        if not measured:
            broken += [p for p in (d / "machine.json", self.machine_file)
                       if p not in broken and self._differs(p)]
        # Remove first, then write: on a full disk the truncated files hold the room the
        # originals need.
        for p in broken:
            p.unlink(missing_ok=True)
        for p in broken:
            original = self.saved.get(p)
            if original is None:
                done.append(f"{p}: removed (left unreadable; it held no earlier results)")
                continue
            try:
                p.write_bytes(original)
                done.append(f"{p}: restored as it was before the run")
            except OSError as exc:
                rescue = Path(tempfile.mkdtemp(prefix="kernelwatch-rescued-")) / p.name
                rescue.write_bytes(original)
                done.append(f"{p}: could not be restored ({exc.strerror}); its earlier "
                            f"content is in {rescue}: copy it back once there is room")
        return done

    def _differs(self, p: Path) -> bool:
        now = p.read_bytes() if p.is_file() else None
        return now != self.saved.get(p)


def free_bytes(path: Path) -> int:
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return 0
