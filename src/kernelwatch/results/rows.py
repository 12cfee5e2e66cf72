"""Load asv results into flat rows, through asv's own loader (asv.results)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asv import util as asv_util
from asv.results import Results

from kernelwatch import workloads
from kernelwatch.errors import KernelwatchError
from kernelwatch.results import files as result_files
from kernelwatch.results import outcomes


@dataclass
class Row:
    """One benchmark value: one parameter combination of one benchmark in one result file."""

    machine: str
    commit: str
    date: int
    env_name: str
    env: dict  # machine info + environment params (torch version, gpu, driver, ...)
    benchmark: str  # e.g. "rope.RopeTime.track_time"
    params: dict = field(default_factory=dict)  # {"shape": "tiny", ...}, values unquoted
    value: float | None = None  # None: failed, or not run
    samples: list[float] | None = None
    # How many benchmark processes the samples pool, in order (0: not kept, as in a file
    # plain asv wrote): the regression check compares the processes' own medians.
    processes: int = 0
    unit: str = ""
    failed: bool = False  # asv recorded a failure (error, timeout): its value is None
    version: str | None = None  # the benchmark's `version` (hash) when this was measured
    # It ran and was skipped (its value is None): NaN in asv's file, told apart from a
    # combination that was not selected by its outcome (kernelwatch.results.outcomes).
    skipped: bool = False
    reason: str = ""  # why it was skipped or failed, where the run said

    @property
    def workload(self) -> str:
        """The workload an asv benchmark name belongs to ("rope" of rope.RopeTime.track_time)."""
        return self.benchmark.split(".", 1)[0]

    @property
    def track(self) -> str:
        """The track method ("track_time" of rope.RopeTime.track_time)."""
        return self.benchmark.rsplit(".", 1)[-1]

    @property
    def series(self) -> tuple:
        """What names one series across commits: machine, environment, benchmark and its
        parameters (sorted)."""
        return (self.machine, self.env_name, self.benchmark, tuple(sorted(self.params.items())))

    @property
    def series_key(self) -> str:
        """The series as per-series thresholds are keyed (detect.series_key)."""
        from kernelwatch.regression import detect

        return detect.series_key(self.benchmark, list(self.params.values()))

    @property
    def device_type(self) -> str:
        """"cuda" where the machine recorded a GPU, else "cpu"."""
        return "cpu" if self.env.get("gpu", "none") == "none" else "cuda"

    @property
    def case(self) -> tuple[tuple[str, str], ...]:
        """The parameters other than `variant`, in their declared order: what the variants
        of one case share."""
        return tuple((k, v) for k, v in self.params.items() if k != "variant")

    @property
    def median(self) -> float | None:
        if self.samples:
            return statistics.median(self.samples)
        return self.value


def branch_order(commit_order: dict[str, int] | None) -> Callable[[Row], tuple]:
    """Sort key placing rows in the branch's history: by `commit_order` (hash -> position,
    oldest 0) where given, then by date (asv's dates tie within a second)."""
    order = commit_order or {}
    return lambda r: (order.get(r.commit, -1), r.date)


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def load(results_dir: Path) -> list[Row]:
    """All rows of all result files. A file asv cannot read is an error naming the fix;
    nothing is moved or deleted."""
    results_dir = Path(results_dir)
    meta_path = results_dir / "benchmarks.json"
    try:
        meta = (result_files.check_file(results_dir, "benchmarks.json")
                if meta_path.exists() else {})
    except result_files.Refused as exc:
        raise KernelwatchError(
            f"{meta_path} cannot be read ({exc}); delete it, asv rewrites it on the next run"
        ) from None
    rows: list[Row] = []
    # The outcomes give the rows their reasons, so a damaged one is refused as publish
    # refuses it, not read as "no reason recorded".
    ended, bad = outcomes.load_all(results_dir)
    machine_files: list[str] = []
    for path, machine in _result_paths(results_dir, machine_files):
        try:
            result_files.check_file(results_dir, path.relative_to(results_dir).as_posix())
            res = Results.load(str(path), machine_name=machine)
        except result_files.Refused as exc:
            bad.append(f"{path} ({str(exc).split(': ', 1)[-1]})")
            continue
        except UNREADABLE as exc:
            bad.append(f"{path} ({exc})")
            continue
        rows.extend(_rows_of(res, machine, meta,
                             ended.get((machine, res.commit_hash[:8], res.env_name), {})))
    if machine_files:
        raise KernelwatchError(
            "; ".join(machine_files) + ". asv reads none of a machine's results without its "
            "machine.json, which only describes the machine: delete it, and `kernelwatch "
            "history pull` brings back the results branch's copy, or the next `kernelwatch run "
            "--machine NAME` writes it again; the results themselves are untouched")
    if bad:
        raise unreadable(bad, results_dir)
    return rows


def _result_paths(results_dir: Path, bad: list[str]) -> Iterator[tuple[Path, str]]:
    """Each result file (RESULTS/<machine>/<commit>-<environment>.json) and its machine, as
    asv finds them; "path cannot be read (why)" in `bad` for each machine.json the checks
    refuse. asv passes over such a machine's results with a log line, so that a report
    would leave the machine out and a compare call its commits unmeasured."""
    machine_dirs = results_dir.iterdir() if results_dir.is_dir() else ()
    for machine_dir in sorted(p for p in machine_dirs if p.is_dir()):
        machine_file = machine_dir / "machine.json"
        found = sorted(p for p in machine_dir.glob("*.json") if p != machine_file)
        if not found or not (machine_file.exists() or machine_file.is_symlink()):
            continue  # asv too reads no results where there is no machine.json
        try:
            result_files.check_file(results_dir, f"{machine_dir.name}/machine.json")
        except result_files.Refused as exc:
            why = str(exc).removeprefix(f"{machine_dir.name}/machine.json: ")
            bad.append(f"{machine_file} cannot be read ({why})")
            continue
        yield from ((path, machine_dir.name) for path in found)


# What asv's Results.load raises for a file it cannot read (truncated, not JSON, wrong shape).
UNREADABLE = (asv_util.UserError, ValueError, KeyError, TypeError)


def unreadable(bad: list[str], results_dir: Path | None = None) -> KernelwatchError:
    """The one message for result files that cannot be read ("path (why)" each, every path
    RESULTS/<machine>/<file>): the fix, in the results directory they are in (results/, or
    a --target library's results-DIST/), and that nothing else is touched."""
    if results_dir is None:
        results_dir = Path(bad[0].split(" (", 1)[0]).parent.parent
    return KernelwatchError(
        "these result files cannot be read: " + "; ".join(bad)
        + f". Move them out of {Path(results_dir).name}/ (keep them if you want to repair"
        " them) and run again; the other results are untouched (`kernelwatch publish"
        " --skip-corrupt` publishes the rest without moving anything)"
    )


def _rows_of(res: Results, machine: str, meta: dict,
             ended: dict[str, dict[str, str]] | None = None) -> list[Row]:
    rows = []
    for key in res.get_all_result_keys():
        if meta and key not in meta:
            continue  # no longer a benchmark, or left out of the list: as asv ignores it
        info = meta.get(key, {})
        names = info.get("param_names", [])
        params = res.get_result_params(key)
        values = res.get_result_value(key, params)
        samples = res.get_result_samples(key, params)
        # asv returns one list entry per parameter combination; [x] for an unparameterised
        # benchmark. NaN marks a combination that was skipped or not selected in that run.
        combos = list(itertools.product(*params)) if params else [()]
        for combo, value, samp in zip(combos, values, samples, strict=True):
            failed = value is None  # asv's mark of a failure; NaN: not run, or skipped
            name = f"{key}({', '.join(combo)})" if params else key
            outcome = (ended or {}).get(name) or (ended or {}).get(outcomes.WHOLE_COMMIT) or {}
            if not isinstance(value, int | float) or math.isnan(value):
                value, samp = None, None
            else:
                outcome = {}  # measured since: an older outcome no longer applies
            rows.append(Row(
                machine=machine, commit=res.commit_hash, date=res.date or 0,
                env_name=res.env_name, env=dict(res.params), benchmark=key,
                params=workloads.rename_old_values(
                    key, {n: _unquote(v) for n, v in zip(names, combo, strict=False)}),
                value=value,
                samples=samp if samp else None, unit=info.get("unit", ""), failed=failed,
                processes=result_files.pooled_processes(res._duration, name, len(samp))
                if samp else 0,
                version=res.benchmark_version.get(key),
                skipped=not failed and outcome.get("status") == "skipped",
                reason=outcome.get("reason", "") if (failed or outcome) else "",
            ))
    return rows
