"""The result files an asv call may rewrite, and the kernel inventories filed beside them
(kernelwatch.inventory_file), kept as they were until the call has ended.

asv rewrites a (commit, environment) result file in place (open, truncate, write): on a full
disk, or when it is killed mid-write, the file that held earlier results is left truncated
and every result in it is lost. And asv writes `<machine>/machine.json` before it measures,
so a run that fails before measuring (an environment pip cannot build) still replaces it.
A Snapshot holds the bytes of each such file in memory (they are small; a full disk has no
room for a copy), is refreshed after each asv call that finished, and puts back any file a
call left unreadable, and the machine files as they were when nothing was measured (no call
finished, and no result file gained a combination: kernelwatch's benchmark loop saves each
one as it ends, so a call cut short may have measured).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from asv.results import Results

from kernelwatch import inventory_file
from kernelwatch.results.rows import UNREADABLE


def _readable(path: Path, machine: str) -> bool:
    if path.suffix == inventory_file.SUFFIX:
        return inventory_file.read(path) is not None
    try:
        if path.name in ("machine.json", "benchmarks.json", ".asv-machine.json"):
            json.loads(path.read_bytes())
        else:
            Results.load(str(path), machine_name=machine)
        return True
    except (OSError, *UNREADABLE):
        return False


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass
class Snapshot:
    results: Path
    machine: str
    machine_file: Path  # asv's ~/.asv-machine.json, which kernelwatch writes before asv runs
    saved: dict[Path, bytes | None] = field(default_factory=dict)
    measured: bool = False  # an asv call finished since the snapshot was taken

    @classmethod
    def take(cls, results: Path, machine: str, machine_file: Path) -> Snapshot:
        snap = cls(Path(results), machine, Path(machine_file))
        snap.saved = snap._read()
        snap._machine_files = {p: snap.saved.get(p) for p in snap._machine_paths()}
        return snap

    def refresh(self) -> None:
        """An asv call finished and saved: what it wrote is now the state to keep."""
        self.saved = self._read()
        self.measured = True

    def _read(self) -> dict[Path, bytes | None]:
        return {p: p.read_bytes() if p.is_file() else None for p in self._watched()}

    def _machine_paths(self) -> tuple[Path, Path]:
        return self.results / self.machine / "machine.json", self.machine_file

    def _watched(self) -> list[Path]:
        d = self.results / self.machine
        paths = {self.results / "benchmarks.json", d / "machine.json", self.machine_file}
        return sorted(paths | self._recorded())

    def _recorded(self) -> set[Path]:
        """The machine's result files and their kernel inventories."""
        d = self.results / self.machine
        if not d.is_dir():
            return set()
        return set(d.glob("*.json")) | set(d.glob(f"*{inventory_file.SUFFIX}"))

    def bytes_kept(self) -> int:
        return sum(len(b) for b in self.saved.values() if b)

    def repair(self) -> list[str]:
        """Put back every watched file left unreadable (a new unreadable file is removed),
        and, when no asv call finished, the machine files as they were. Returns what was
        done, one line per file."""
        done = []
        candidates = set(self.saved) | self._recorded()
        # A file that was already unreadable when last saved is not this run's doing:
        # putting the same bytes back would only claim a repair.
        broken = [p for p in sorted(candidates)
                  if p.exists() and not _readable(p, self.machine)
                  and _bytes(p) != self.saved.get(p)]
        d = self.results / self.machine
        results = [p for p in candidates if p.suffix == ".json" and p.name != "machine.json"
                   and p.parent == d]
        if any(p.is_file() and p not in broken and p.read_bytes() != self.saved.get(p)
               for p in results):
            self.measured = True  # a result was saved: its machine file belongs with it
        if not self.measured:
            for p, original in self._machine_files.items():
                now = p.read_bytes() if p.is_file() else None
                if p not in broken and now != original:
                    broken.append(p)
                    self.saved[p] = original
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
                done.append(f"{p}: restored as it was before the asv call that broke it")
            except OSError as exc:
                rescue = Path(tempfile.mkdtemp(prefix="kernelwatch-rescued-")) / p.name
                rescue.write_bytes(original)
                done.append(f"{p}: could not be restored ({exc.strerror}); its earlier "
                            f"content is in {rescue}: copy it back once there is room")
        return done


def free_bytes(path: Path) -> int:
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return 0
