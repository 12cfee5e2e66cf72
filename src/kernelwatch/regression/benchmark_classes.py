"""The checkout's asv benchmark classes, for the tools that call one outside asv.

`kernelwatch fidelity` measures a case through the very class asv runs, so that its figures
are asv's (same setup, same sample counts); `kernelwatch bisect` reads a class's track methods
and sample counts. The classes live in the checkout's `benchmarks/` (asv.conf.json's
benchmark_dir), not in the installed package: they are loaded from a checkout named
explicitly, as asv imports them (a package named after the directory, so their relative
imports of `.common` work).
"""

from __future__ import annotations

import importlib
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

