"""Kernel inventories kept beside the results: `<machine>/<commit[:8]>-<environment>.kernels`
in the results directory, one JSON object per (commit, environment) mapping each case
(`workload(param, ...)`) to its inventory (kernelwatch.inventory.Inventory.as_dict).

The count is an asv series (track_kernel_count) like any other; the names and the code hash
cannot be an asv value, so they live here, named like asv's result file (with another
suffix, which asv's own loader skips), and travel with it through `kernelwatch history`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    import sys
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
    the only one). Returns the files written."""
    written = set()
    for note_path in sorted(Path(spool).glob("*.json")) if Path(spool).is_dir() else ():
        note = json.loads(note_path.read_text())
        env = env_by_prefix.get(note["prefix"]) or (
            next(iter(env_by_prefix.values())) if len(env_by_prefix) == 1 else None)
        if env and note.get("commit"):
            path = path_for(machine_dir, note["commit"], env)
            data = json.loads(path.read_text()) if path.is_file() else {}
            data[note["case"]] = note["entry"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=1, sort_keys=True))
            written.add(path)
        note_path.unlink()
    return sorted(written)


def load_all(results: Path, machine: str) -> dict[tuple[str, str, str], dict]:
    """{(full commit, env name, case): inventory} of a machine, matched to asv's result files
    (which hold the full commit and the environment's name)."""
    out = {}
    machine_dir = Path(results) / machine
    for result in sorted(machine_dir.glob("*.json")) if machine_dir.is_dir() else ():
        if result.name == "machine.json":
            continue
        side = result.with_suffix(SUFFIX)
        if not side.is_file():
            continue
        try:
            facts = json.loads(result.read_text())
            entries = json.loads(side.read_text())
        except ValueError:
            continue
        for case, entry in entries.items():
            out[(facts.get("commit_hash", ""), facts.get("env_name", ""), case)] = entry
    return out
