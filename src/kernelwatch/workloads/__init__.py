"""The kernels kernelwatch measures, one module each (`workloads/<kernel>.py`).

Each module keeps, in one place: named shapes from real models (`SHAPES`), the variants it
offers (`VARIANTS`), its dtypes, input builders, the float64 reference, and `bytes_moved`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kernelwatch.errors import unknown_name

# name -> module path. Import lazily: a workload may need libraries another does not.
WORKLOADS = {
    "rope": "kernelwatch.workloads.rope",
    "gptq": "kernelwatch.workloads.gptq",
}


def get(name: str) -> ModuleType:
    if name not in WORKLOADS:
        raise unknown_name("workload", name, WORKLOADS)
    return importlib.import_module(WORKLOADS[name])


def bytes_for_benchmark(benchmark: str, params: dict) -> int | None:
    """Fewest bytes a benchmark's case must move, or None if the workload does not say."""
    name = benchmark.split(".")[0]
    if name not in WORKLOADS:
        return None
    fn = getattr(get(name), "bytes_for", None)
    try:
        return fn(params) if fn else None
    except KeyError:
        return None
