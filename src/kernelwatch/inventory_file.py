"""Kernel inventories kept beside the results: `<machine>/<commit[:8]>-<environment>.kernels`
in the results directory, one JSON object per (commit, environment) mapping each case
(`workload(param, ...)`) to its inventory (kernelwatch.inventory.Inventory.as_dict).

The count is an asv series (track_kernel_count) like any other; the names and the code hash
cannot be an asv value, so they live here, named like asv's result file (with another
suffix, which asv's own loader skips), and travel with it through `kernelwatch history`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

from kernelwatch.errors import KernelwatchError
from kernelwatch.results import files as result_files

SUFFIX = ".kernels"
# Set by the run engine for the benchmark processes: where they leave their inventories, and
# the commit an `existing` environment is measured at. A benchmark process does not know its
# commit or environment by name (asv tells build commands, not benchmarks), so it leaves a
# note naming its interpreter's prefix and, for asv's own environments, the commit asv
# installed there; the engine files the notes after each asv call.
SPOOL_ENV, COMMIT_ENV = "KERNELWATCH_INVENTORY_SPOOL", "KERNELWATCH_COMMIT"


def path_for(machine_dir: Path, commit: str, env_name: str) -> Path:
    """The inventory file of a (commit, environment), beside asv's result file."""
    from asv.results import get_filename

    name = Path(get_filename("m", commit, env_name)).name
    return Path(machine_dir) / (name.removesuffix(".json") + SUFFIX)


def record(case: str, entry: dict) -> Path | None:
    """Leave `case`'s inventory for the engine to file; None outside a kernelwatch run."""
    import uuid

    spool = os.environ.get(SPOOL_ENV)
    if not spool:
        return None
    commit = os.environ.get(COMMIT_ENV)
    status = Path(sys.prefix) / "asv-install-status.json"
    if not commit and status.is_file():
        commit = json.loads(status.read_text()).get("commit_hash")
    note = {"prefix": str(Path(sys.prefix).resolve()), "commit": commit, "case": case,
            "entry": entry}
    path = Path(spool) / f"{uuid.uuid4().hex}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(note))
    tmp.replace(path)
    return path


def collect(spool: Path, machine_dir: Path, env_by_prefix: dict[str, str]) -> list[Path]:
    """File every note in `spool` into its (commit, environment)'s inventory file under
    `machine_dir`; the environment is the one whose interpreter prefix the note names (or
    the only one). Returns the files written.

    The engine calls this after each asv call. Each file is written whole (write_atomic):
    a full disk or a kill leaves it as it was, and the notes it would have taken stay in
    the spool for the next run. A file that is already damaged is moved aside
    (result_files.read_or_move_aside) and said so on stderr; it never stops the run. A full
    disk raises InventoryDiskFull, naming the disk."""
    machine_dir = Path(machine_dir)
    result_files.remove_temporaries(machine_dir)
    pending: dict[Path, list[tuple[Path, dict]]] = {}
    for note_path in sorted(Path(spool).glob("*.json")) if Path(spool).is_dir() else ():
        try:
            note = json.loads(note_path.read_text())
            prefix, case, entry = note["prefix"], note["case"], note["entry"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _say(f"{note_path}: an inventory note that cannot be read ({exc}); removed")
            note_path.unlink(missing_ok=True)
            continue
        try:
            result_files.check_entries("kernels", {case: entry})
        except result_files.Refused as exc:
            _say(f"{note_path}: an inventory note its readers would refuse ({exc}); removed")
            note_path.unlink(missing_ok=True)
            continue
        env = env_by_prefix.get(prefix) or (
            next(iter(env_by_prefix.values())) if len(env_by_prefix) == 1 else None)
        if env and note.get("commit"):
            path = path_for(machine_dir, note["commit"], env)
            pending.setdefault(path, []).append((note_path, {case: entry}))
        else:
            note_path.unlink()
    written = []
    for path, notes in sorted(pending.items()):
        data = {}
        try:
            data = result_files.read_or_move_aside(path)
            for _, entry in notes:
                data.update(entry)
            write_atomic(path, data)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise InventoryDiskFull(_disk_full(path, data, Path(spool))) from None
        for note_path, _ in notes:
            note_path.unlink()
        written.append(path)
    return written


class InventoryDiskFull(KernelwatchError):
    """No room to file the kernel inventories; the message names the disk and the room."""


def _disk_full(path: Path, data: dict, spool: Path) -> str:
    results = path.parent.parent
    free = _free_bytes(results) // 2**20
    need = max(1, -(-len(json.dumps(data, indent=1)) // 2**20))
    return (f"the disk holding {results.name}/ ({results}) is full ({free} MiB free) while "
            f"filing kernel inventories into {path}: free at least {need} MiB there and run "
            f"again. {path.name} is as it was before; the inventories measured now wait in "
            f"{spool}, and the next run of this checkout in the same environment files them.")


def _free_bytes(path: Path) -> int:
    for p in (Path(path), *Path(path).parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return 0


def write_atomic(path: Path, data: dict) -> None:
    """Write the inventory file `path` whole or not at all (result_files.write_whole)."""
    result_files.write_whole(path, json.dumps(data, indent=1, sort_keys=True))


def read(path: Path) -> dict | None:
    """The inventories held in `path` ({} where there is no file); None where the file is
    damaged (not a JSON object: a truncated write, a disk error)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _say(line: str) -> None:
    print(f"kernelwatch: {line}", file=sys.stderr, flush=True)


def load_all(results: Path, machine: str) -> dict[tuple[str, str, str], dict]:
    """{(full commit, env name, case): inventory} of a machine, matched to asv's result files
    (which hold the full commit and the environment's name). An inventory that is not what
    the engine writes is named on stderr and skipped: it only names the kernels behind a
    change, so its commit's results are read without it."""
    out = {}
    results = Path(results)
    machine_dir = results / machine
    for result in sorted(machine_dir.glob("*.json")) if machine_dir.is_dir() else ():
        if result.name == "machine.json":
            continue
        side = result.with_suffix(SUFFIX)
        if not side.is_file():
            continue
        try:
            facts = json.loads(result.read_text())
        except ValueError:
            continue  # rows.load names an unreadable result file
        try:
            entries = result_files.check_file(results, side.relative_to(results).as_posix())
        except result_files.Refused as exc:
            _say(f"skipping unreadable kernel inventory {results}/{exc}; its commit is read "
                 f"without kernel names. Move it out of {results.name}/ (keep it if you want "
                 "to repair it) to stop this message")
            continue
        if not isinstance(facts, dict):
            continue
        for case, entry in entries.items():
            out[(facts.get("commit_hash", ""), facts.get("env_name", ""), case)] = entry
    return out
