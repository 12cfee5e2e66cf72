"""Reads asv results and writes kernelwatch's views: speedup vs eager, GB/s and % of the
measured copy bandwidth, and change vs the previous commit. Knows asv's files, not torch.

A workload with a summary table of its own adds `report/<workload>.py` and nothing else: it
is found by its name and declares
- `PREFIX` (optional): the benchmark prefix it summarises ("gptq."), which the generic
  speedup table then leaves to it (RoPE's view declares none: its table adds to the generic
  one);
- `TITLE`: its name for a reader ("GPTQ"); optionally `NOTE` (what its table's columns mean)
  and `GATE` (its quality gate in words, for the speedups page);
- `tables(env_rows)`: a list of `Table`s for one environment's newest commit.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType


@dataclass
class Table:
    """One summary table: a title, headers, rows of text cells, and a CSS class per row
    ("worse" marks a row the reader must not miss)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)


# The environment's measured copy: seconds per GiB copied (read + write = 2 GiB moved).
COPY_KEY = "environment.Environment.track_copy_seconds_per_gib"


def machine_fact(env_rows: list, benchmark: str) -> float | None:
    """The median of one of the environment's facts (`benchmark`, environment.Environment's),
    where its rows recorded one."""
    return next((r.median for r in env_rows if r.benchmark == benchmark and r.median), None)


def copy_bandwidth(env_rows: list) -> float | None:
    """Bytes/s of the environment's measured copy, where its rows recorded one: the ceiling
    "% of copy bandwidth" and the roofline refer to."""
    seconds = machine_fact(env_rows, COPY_KEY)
    return (2 << 30) / seconds if seconds else None


def case_metrics(env_rows: list, prefix: str, tracks: dict[str, str],
                 case_params: tuple[str, ...]) -> dict[tuple, dict[str, dict]]:
    """{(values of case_params): {variant: {short name: median, or "failed"}}} of one
    environment's rows of a workload (`prefix`), for the tracks in `tracks` (asv track ->
    short name): what a workload's summary table is built from."""
    out: dict[tuple, dict[str, dict]] = {}
    for r in env_rows:
        track = r.track
        if not r.benchmark.startswith(prefix) or track not in tracks:
            continue
        value = "failed" if r.failed else (r.median if r.median is not None else r.value)
        if value is None:
            continue
        case = tuple(r.params[k] for k in case_params)
        out.setdefault(case, {}).setdefault(r.params["variant"], {})[tracks[track]] = value
    return out


def views() -> list[ModuleType]:
    """Every workload's own view module (report/<workload>.py: a module named after a
    workload; the others here are the report's machinery), sorted by name."""
    from kernelwatch.workloads import WORKLOADS  # lists the package; imports no workload

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name in WORKLOADS)
    return [importlib.import_module(f"{__name__}.{n}") for n in names]
