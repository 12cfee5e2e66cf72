"""What a results directory may hold, checked before anything is copied, pushed or rendered.

A results directory travels between machines (`kernelwatch history` pushes and pulls it
through a shared git branch), so its files are data from other runners, not code: a runner
that may push could put anything there. asv's own pages build HTML by concatenating the
names they read (benchmark names, parameter values, machine and environment names), so a
name that asv itself could never have written is refused before it reaches them.

The layout asv writes, and nothing else:
- `benchmarks.json`: asv's list of benchmarks;
- `<machine>/machine.json`: the machine's facts;
- `<machine>/<commit[:8]>-<environment>.json`: one commit measured in one environment;
- `<machine>/<commit[:8]>-<environment>.kernels`: the kernel inventories of that run
  (kernelwatch.inventory_file), which asv does not read;
- `<machine>/<commit[:8]>-<environment>.outcomes`: why combinations of that run were skipped
  or failed (kernelwatch.results.outcomes), which asv does not read either.
Each is a regular file (never a link) whose content has the shape asv 0.6 writes.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# A machine name is a plain name: it becomes a directory under results/.
MACHINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A (commit, environment)'s files: asv's result, and the kernel inventories and outcomes
# kernelwatch keeps beside it; the suffix says which.
COMMIT_FILE = re.compile(r"[0-9a-f]{8}-[A-Za-z0-9._+=,@~%-]{1,160}\.(json|kernels|outcomes)")
COMMIT_FILE_KIND = {"json": "result", "kernels": "kernels", "outcomes": "outcomes"}
# Kernel names come from compilers and the profiler (C++ templates): any text but control
# characters; only kernelwatch's pages show them, escaped.
# Control characters: no text a result file holds has them (a terminal's colour codes).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TEXT_LIMIT = 2000  # characters of a kernel name or a reason
KERNEL_NAME = re.compile(rf"[^\x00-\x1f\x7f]{{1,{TEXT_LIMIT}}}")
# An inductor Triton kernel's name (its second graph's "@N"), and its launch configuration
# ("XBLOCK=1024 num_warps=4 num_stages=1").
LAUNCH_KERNEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}(@\d{1,4})?")
LAUNCH_CONFIG = re.compile(r"[A-Za-z0-9_=. ]{1,200}")
COMMIT = re.compile(r"[0-9a-f]{7,40}")
# A dotted Python name, as asv names benchmarks ("rope.RopeTime.track_time").
DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Text that asv's pages may put into HTML as it is: no markup, quote or control character.
PLAIN_TEXT = re.compile(r"[^<>&\"'`\\\x00-\x1f\x7f]*")
# A parameter value as asv records it: repr() of a plain value, e.g. 'tiny' or 128.
PARAM_VALUE = re.compile(r"'[^<>&\"'`\\\x00-\x1f\x7f]*'|[^<>&\"'`\\\x00-\x1f\x7f]*")
# The columns asv 0.6 writes for each benchmark of a result file, in its order.
RESULT_COLUMNS = ("result", "params", "version", "started_at", "duration", "stats_ci_99_a",
                  "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number",
                  "stats_repeat", "samples", "profile")


class Refused(ValueError):
    """A file the results directory must not hold; the message says which and why."""


# How many benchmark processes a combination's samples pool, kept by kernelwatch's benchmark
# loop beside its duration in the result file's `durations`: a run cut among a series'
# extra processes keeps fewer, and a later run measures only the rest; the regression
# check compares the processes' own medians (regression.detect).
PROCESSES_KEY = "<kernelwatch-processes {name}>"
# How many samples those processes left, kept with the count: samples appended by other
# means since (plain `asv run --append-samples`) leave the count behind, and a count that no
# longer matches the samples would split them at the wrong places.
SAMPLES_KEY = "<kernelwatch-samples {name}>"


def pooled_processes(durations: dict, combo: str, samples: int | None = None) -> int:
    """The processes a combination's samples pool, as its result file's `durations` keep
    it (PROCESSES_KEY); 0 where no count is kept (or one not a positive number), and, given
    how many `samples` the combination holds, where the total kept with the count differs."""
    count = durations.get(PROCESSES_KEY.format(name=combo))
    kept = durations.get(SAMPLES_KEY.format(name=combo))
    if samples is not None and isinstance(kept, int | float) and kept != samples:
        return 0
    return int(count) if isinstance(count, int | float) and count > 0 else 0


def check_machine_name(name: str, where: str = "machine name") -> str:
    """`name` if it is a plain name (letters, digits, '-', '_', '.'), else a Refused whose
    message says what a machine name may be."""
    if not MACHINE_NAME.fullmatch(name or "") or name in (".", ".."):
        raise Refused(f"{where} {name!r} is not a plain name: use letters, digits, '-', '_' "
                      "and '.' (at most 128, not starting with '.' or '-'); it names a "
                      "directory under results/, never a path")
    return name


def kind_of(rel: str) -> str:
    """'benchmarks', 'machine' or 'result' for a path the layout allows, else Refused."""
    parts = PurePosixPath(rel).parts
    if parts == ("benchmarks.json",):
        return "benchmarks"
    if len(parts) == 2 and MACHINE_NAME.fullmatch(parts[0]) and parts[0] not in (".", ".."):
        if parts[1] == "machine.json":
            return "machine"
        if m := COMMIT_FILE.fullmatch(parts[1]):
            return COMMIT_FILE_KIND[m.group(1)]
    raise Refused(f"{rel}: not a file asv writes (benchmarks.json, <machine>/machine.json, "
                  "<machine>/<commit>-<environment>.json, or its .kernels or .outcomes "
                  "beside it)")


def check_file(root: Path, rel: str) -> dict:
    """The parsed content of `root/rel` if it is a regular file in asv's layout with the shape
    asv writes, else Refused naming the path and the first problem."""
    path = Path(root) / rel
    kind = kind_of(rel)
    if path.is_symlink() or not path.is_file():
        raise Refused(f"{rel}: not a regular file (a link or something else); result "
                      "files are plain files")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(f"{rel}: not valid JSON ({exc})") from None
    try:
        if kind == "benchmarks":
            _check_benchmarks(data)
        elif kind == "machine":
            _check_machine(data, PurePosixPath(rel).parts[0])
        elif kind == "kernels":
            _check_kernels(data)
        elif kind == "outcomes":
            _check_outcomes(data)
        else:
            _check_result(data, PurePosixPath(rel).parts[0])
    except Refused as exc:
        raise Refused(f"{rel}: {exc}") from None
    return data


def files_under(root: Path) -> Iterable[str]:
    """Every entry below `root` that is not a directory (links included, never followed), as
    a relative POSIX path; `.git` is left out."""
    root = Path(root)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if ".git" in rel.parts or (p.is_dir() and not p.is_symlink()):
            continue
        yield rel.as_posix()


def check_tree(root: Path) -> list[str]:
    """'path: why' for every entry of `root` that the layout or the schema refuses."""
    return list(partition(root)[1].values())


def partition(root: Path) -> tuple[list[str], dict[str, str]]:
    """The entries of `root` that pass check_file, and {path: 'path: why'} for the rest."""
    good, refused = [], {}
    for rel in files_under(root):
        try:
            check_file(root, rel)
            good.append(rel)
        except Refused as exc:
            refused[rel] = str(exc)
    return good, refused


def write_whole(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file beside it (os.replace is atomic
    within one filesystem), then the rename. On any failure (a full disk, a kill) `path`
    is as it was and no temporary is left, except after a kill -9, which leaves a hidden
    `.NAME.PID.tmp` (remove_temporaries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(directory: Path) -> None:
    """Remove what a write_whole killed before its rename left in `directory`: a results
    directory holds asv's layout only (the caller holds the checkout's lock)."""
    if Path(directory).is_dir():
        for tmp in Path(directory).glob(".*.*.tmp"):
            tmp.unlink(missing_ok=True)


def read_or_move_aside(path: Path) -> dict:
    """The content of RESULTS/<machine>/`path` that a run is about to merge into and write
    again (kernel inventories, outcomes), {} where there is none. A file of another shape
    than the engine writes is moved aside whole (move_aside), never rewritten, said so on
    stderr, and counts as empty."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return {}
    try:
        return check_file(path.parent.parent, f"{path.parent.name}/{path.name}")
    except Refused as exc:
        why = str(exc).removeprefix(f"{path.parent.name}/{path.name}: ")
        aside = move_aside(path)
        print(f"kernelwatch: {path} was damaged ({why}); moved aside to {aside} and written "
              "again from what was measured now (what only it held is in that copy)",
              file=sys.stderr, flush=True)
        return {}


def aside_dir(results: Path) -> Path:
    """Where damaged files of a results directory are moved: outside it (results/ holds
    asv's layout only), under the checkout's .kernelwatch/damaged/<results dir name>/."""
    results = Path(results)
    return results.parent / ".kernelwatch" / "damaged" / results.name


def move_aside(path: Path, aside: Path | None = None) -> Path:
    """Move `path` (RESULTS/<machine>/<name>, or RESULTS/benchmarks.json) under `aside`
    (default: RESULTS' aside_dir), stamped with the time so that an earlier copy is never
    overwritten; returns where it went."""
    path = Path(path)
    in_machine = path.name != "benchmarks.json"
    results = path.parent.parent if in_machine else path.parent
    where = Path(aside or aside_dir(results)) / (path.parent.name if in_machine else "")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = where / f"{path.name}.{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{path.name}.{stamp}.{n}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest


# ----------------------------------------------------------------------------- shapes


def require(ok: bool, what: str) -> None:
    """Refused(what) unless `ok`: the one check every reader of a kept file raises."""
    if not ok:
        raise Refused(what)


def _plain(value: object, what: str, pattern: re.Pattern = PLAIN_TEXT) -> None:
    require(isinstance(value, str) and bool(pattern.fullmatch(value)),
            f"{what} {value!r} is not plain text")


def _number_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                             and not (isinstance(value, float) and math.isinf(value)))


def _check_str_map(data: object, what: str) -> None:
    require(isinstance(data, dict), f"{what} is not an object")
    for k, v in data.items():
        _plain(k, f"{what} key")
        if v is not None:
            _plain(v if isinstance(v, str) else str(v), f"{what}[{k}]")
            require(isinstance(v, str | int | float), f"{what}[{k}] is not a string")


def _check_machine(data: object, machine: str) -> None:
    require(isinstance(data, dict), "not an object")
    require(data.get("version") == 1, "version is not 1")
    require(data.get("machine") == machine,
            f"machine {data.get('machine')!r} is not its directory's name {machine!r}")
    _check_str_map({k: v for k, v in data.items() if k != "version"}, "machine info")


def _check_param_lists(params: object, what: str) -> int:
    """The number of combinations of a benchmark's parameter lists."""
    require(isinstance(params, list), f"{what} is not a list")
    count = 1
    for values in params:
        require(isinstance(values, list), f"{what} has a parameter that is not a list")
        for v in values:
            _plain(v, f"{what} value", PARAM_VALUE)
        count *= len(values)
    return count


def _check_result(data: object, machine: str) -> None:
    require(isinstance(data, dict), "not an object")
    require(data.get("version") == 2, "version is not 2 (asv 0.6's results)")
    commit = data.get("commit_hash")
    require(isinstance(commit, str) and bool(COMMIT.fullmatch(commit)),
            f"commit_hash {commit!r} is not a git hash")
    _plain(data.get("env_name"), "env_name")
    require(isinstance(data.get("date"), int) and not isinstance(data.get("date"), bool)
            and data["date"] >= 0, f"date {data.get('date')!r} is not a time in ms")
    _plain(data.get("python"), "python")
    _check_str_map(data.get("params"), "params")
    require(data["params"].get("machine") == machine,
            f"params.machine {data['params'].get('machine')!r} is not {machine!r}")
    _check_str_map(data.get("requirements"), "requirements")
    _check_str_map(data.get("env_vars", {}), "env_vars")
    columns = data.get("result_columns")
    require(isinstance(columns, list) and tuple(columns) == RESULT_COLUMNS,
            "result_columns is not asv's list")
    durations = data.get("durations", {})
    require(isinstance(durations, dict)
            and all(isinstance(k, str) and _number_or_none(v) for k, v in durations.items()),
            "durations is not a map of seconds")
    results = data.get("results")
    require(isinstance(results, dict), "results is not an object")
    for name, row in results.items():
        _plain(name, "benchmark name", DOTTED_NAME)
        _check_result_row(name, row)


def _check_result_row(name: str, row: object) -> None:
    require(isinstance(row, list) and len(row) <= len(RESULT_COLUMNS),
            f"{name}: not a list of asv's columns")
    cols = dict(zip(RESULT_COLUMNS, row, strict=False))
    combos = _check_param_lists(cols.get("params") or [], f"{name} params")
    result = cols.get("result")
    if result is not None:
        require(isinstance(result, list) and len(result) == combos
                and all(_number_or_none(v) for v in result),
                f"{name}: result is not one number (or null) per parameter combination")
    version = cols.get("version")
    if version is not None:
        _plain(version, f"{name} version")
    for key in ("started_at", "duration"):
        require(_number_or_none(cols.get(key)), f"{name}: {key} is not a number")
    for key in RESULT_COLUMNS:
        if key.startswith("stats_") and cols.get(key) is not None:
            require(isinstance(cols[key], list) and len(cols[key]) == combos
                    and all(_number_or_none(v) for v in cols[key]),
                    f"{name}: {key} is not one number per parameter combination")
    samples = cols.get("samples")
    if samples is not None:
        require(isinstance(samples, list) and len(samples) == combos
                and all(s is None or (isinstance(s, list) and all(_number_or_none(x)
                                                                 for x in s))
                        for s in samples),
                f"{name}: samples is not a list of numbers per parameter combination")
    require(cols.get("profile") is None or isinstance(cols.get("profile"), str),
            f"{name}: profile is not text")


def check_entries(kind: str, data: object) -> None:
    """Refused naming the first problem where `data` is not what a "kernels" or "outcomes"
    file may hold: what the engine writes passes the check its readers make."""
    {"kernels": _check_kernels, "outcomes": _check_outcomes}[kind](data)


def _check_kernels(data: object) -> None:
    require(isinstance(data, dict), "not an object")
    for case, entry in data.items():
        _plain(case, "case", PARAM_VALUE)
        require(isinstance(entry, dict) and isinstance(entry.get("kernels"), list)
                and all(isinstance(k, str) and KERNEL_NAME.fullmatch(k)
                        for k in entry["kernels"]), f"{case}: kernels is not a list of names")
        _plain(entry.get("code_hash", ""), f"{case} code_hash")
        _plain(entry.get("code_digest", ""), f"{case} code_digest")
        _plain(entry.get("source", ""), f"{case} source")
        guards = entry.get("guards")
        require(guards is None or (isinstance(guards, int) and not isinstance(guards, bool)),
                f"{case}: guards is not a count")
        launch = entry.get("launch", {})
        require(isinstance(launch, dict), f"{case}: launch is not an object")
        for kernel, config in launch.items():
            _plain(kernel, f"{case} launch kernel", LAUNCH_KERNEL)
            _plain(config, f"{case} launch of {kernel}", LAUNCH_CONFIG)


def _check_outcomes(data: object) -> None:
    # Reasons are a library's own messages (a pin like "<=2.14.0", quotes): any text but
    # control characters; only kernelwatch's pages show them, escaped.
    require(isinstance(data, dict), "not an object")
    for name, entry in data.items():
        require(name == "*" or DOTTED_NAME.fullmatch(name.split("(", 1)[0]) is not None,
                f"{name!r}: not a benchmark name")
        _plain(name, "name", KERNEL_NAME)
        require(isinstance(entry, dict) and entry.get("status") in ("skipped", "failed")
                and isinstance(entry.get("reason"), str)
                and KERNEL_NAME.fullmatch(entry["reason"]) is not None,
                f"{name}: not a status (skipped or failed) and a reason")


BENCHMARK_TEXT_FIELDS = ("name", "pretty_name", "unit", "type", "version", "pretty_source")


def _check_benchmarks(data: object) -> None:
    require(isinstance(data, dict), "not an object")
    require(data.get("version") == 2, "version is not 2 (asv 0.6's benchmarks.json)")
    for key, bench in data.items():
        if key != "version":
            _check_benchmark_entry(key, bench)


def _check_benchmark_entry(key: str, bench: object) -> None:
    _plain(key, "benchmark name", DOTTED_NAME)
    require(isinstance(bench, dict), f"{key}: not an object")
    require(bench.get("name", key) == key, f"{key}: its name is {bench.get('name')!r}")
    for field in ("name", "pretty_name", "unit", "type", "version"):
        if bench.get(field) is not None:
            _plain(bench[field], f"{key} {field}")
    for p in bench.get("param_names") or []:
        _plain(p, f"{key} parameter name", IDENTIFIER)
    _check_param_lists(bench.get("params") or [], f"{key} params")


def benchmark_entries(data: dict) -> tuple[dict, list[str]]:
    """benchmarks.json without the entries that fail the checks, and 'name: why' for each
    entry left out."""
    kept, refused = {}, []
    for key, bench in data.items():
        try:
            if key != "version":
                _check_benchmark_entry(key, bench)
            kept[key] = bench
        except Refused as exc:
            refused.append(f"benchmarks.json: entry {key!r} left out: {exc}")
    return kept, refused


def checked_copy(root: Path, dest: Path) -> list[str]:
    """Copy every file of `root` that passes check_file into a fresh `dest`; return 'path:
    why' for each one left out. Nothing in `root` is touched."""
    import shutil

    root, dest = Path(root), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    refused = []
    for rel in files_under(root):
        try:
            check_file(root, rel)
        except Refused as exc:
            if rel != "benchmarks.json" or not _benchmark_list(root / rel):
                refused.append(str(exc))
                continue
            # One bad entry does not hide every benchmark: the rest are published.
            kept, left_out = benchmark_entries(json.loads((root / rel).read_bytes()))
            refused += left_out
            (dest / rel).write_text(json.dumps(kept))
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if kind_of(rel) == "result":
            # Old parameter values under their new names, so asv's pages draw one series.
            listed = root / "benchmarks.json"
            names = ({k: v.get("param_names", []) for k, v in json.loads(
                listed.read_bytes()).items() if isinstance(v, dict)}
                if listed.is_file() else {})
            (dest / rel).write_text(json.dumps(renamed_result(
                json.loads((root / rel).read_bytes()), names)))
        else:
            shutil.copyfile(root / rel, dest / rel)
    return refused


def renamed_result(data: dict, param_names: dict[str, list[str]]) -> dict:
    """An asv result file's content with each benchmark's parameter values that its workload
    has renamed since (its declaration's `renamed`) under their new names."""
    from kernelwatch import workloads

    results = {}
    for bench, row in data.get("results", {}).items():
        names = param_names.get(bench, [])
        if workloads.renamed_values(bench) and len(row) > 1 and row[1]:
            row = list(row)
            row[1] = [[workloads.rename_old_values(bench, {n: v})[n] for v in values]
                      for n, values in zip(names, row[1], strict=False)] + row[1][len(names):]
        results[bench] = row
    return {**data, "results": results}


def _benchmark_list(path: Path) -> bool:
    """Whether `path` is a regular benchmarks.json file whose top level is asv's."""
    try:
        data = json.loads(path.read_bytes()) if not path.is_symlink() else None
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("version") == 2
