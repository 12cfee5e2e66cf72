"""The checkout's asv benchmark classes, for the tools that call one outside asv.

`kernelwatch fidelity` and the GPU table scripts measure a case through the very class asv
runs, so that their figures are asv's (same setup, same sample counts); `on_case` lets a
script share one built case between the classes of its metrics. The classes live in
the checkout's `benchmarks/` (asv.conf.json's benchmark_dir), not in the installed package:
they are loaded from a checkout named explicitly, as asv imports them (a package named after
the directory, so their relative imports of `.common` work).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from pathlib import Path

from kernelwatch.errors import KernelwatchError


def load(repo: Path | str, workload: str, class_name: str) -> type:
    """`class_name` of `benchmarks/<workload>.py` in the checkout `repo`."""
    repo = Path(repo).resolve()
    path = repo / "benchmarks" / f"{workload}.py"
    if not path.is_file():
        raise KernelwatchError(
            f"{path} does not exist: the benchmark classes come from a kernelwatch checkout, "
            "not the installed package; run from a clone (or pass its path)")
    loaded = sys.modules.get("benchmarks")
    if loaded is not None and Path(getattr(loaded, "__path__", [""])[0]).resolve() != \
            repo / "benchmarks":
        # Another checkout's classes were imported here: forget them, load this one's.
        for name in [n for n in sys.modules if n == "benchmarks" or
                     n.startswith("benchmarks.")]:
            del sys.modules[name]
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() !=
                       Path(loaded.__path__[0]).resolve().parent]
    if str(repo) in sys.path:
        sys.path.remove(str(repo))
    sys.path.insert(0, str(repo))
    module = importlib.import_module(f"benchmarks.{workload}")
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise KernelwatchError(f"{path} has no class {class_name}") from None


def on_case(cls: type, case: object, device: object) -> object:
    """An instance of the benchmark class `cls` measuring `case`, already built on `device`,
    without running its setup: for a tool that takes several metrics of one case in one
    process (one compile instead of one per metric), each by the track method asv runs,
    with that class's sample counts. The classes keep their case as `case` and its device
    as `dev` (benchmarks/common.py)."""
    bench = cls()
    bench.case, bench.dev = case, device
    return bench


def device_check(bench: object, params: tuple) -> tuple[int, str]:
    """A DeviceCheck class's `track_device_check(*params)` on an `on_case` instance: its flag
    bits and its readings in words (which the class writes to stderr, for asv's log)."""
    readings = io.StringIO()
    with contextlib.redirect_stderr(readings):
        flags = bench.track_device_check(*params)
    return flags, readings.getvalue().strip().removeprefix("kernelwatch: ")
