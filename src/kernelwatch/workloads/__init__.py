"""The kernels kernelwatch measures, one folder each: `workloads/<name>/spec.py` declares the
workload (a `Workload` object, `SPEC`: parameters, shapes from real models, variants,
suites, metric families, bytes and FLOPs, gates; no torch), `<name>/case.py` builds and runs
a case (torch; benchmark processes only), beside the workload's kernels and models.

Adding a workload is its folder (`spec.py`, and `case.py` for the benchmark classes to build
cases from) and `benchmarks/<name>.py` (and `report/<name>.py` only for a table of its
own). Nothing else names it: this package finds the folders by listing itself,
and the engine, the report and the CLI read each one's declaration through `get(name)`.
Each case follows one protocol (`workloads/_case.py`), which the benchmark classes' shared
mixins measure; every torch.compile of a case goes through `variants.apply_compile`, in the
compile modes' names the declarations use (`workloads/variants.py`). Names starting with `_`
are helpers, not workloads.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kernelwatch.errors import unknown_name
from kernelwatch.workloads.declaration import (  # noqa: F401  (the names a spec uses)
    GPU_SUITES,
    QUICK_SUITE,
    SUITE_NAMES,
    Library,
    SuitePart,
    Variant,
    Workload,
)


def _discover() -> dict[str, str]:
    # Listing the folders finds the workloads without importing them: a folder with a
    # spec.py is one. A declaration is imported when it is used, a case only by a benchmark
    # process.
    return {d.name: f"{__name__}.{d.name}" for d in Path(__path__[0]).iterdir()
            if (d / "spec.py").is_file() and not d.name.startswith("_")}


# name -> package path, sorted so listings are stable.
WORKLOADS = dict(sorted(_discover().items()))


def get(name: str) -> Workload:
    """The declaration of workload `name` (no torch imported)."""
    if name not in WORKLOADS:
        raise unknown_name("workload", name, WORKLOADS)
    return importlib.import_module(f"{WORKLOADS[name]}.spec").SPEC


def server_imports_made_without() -> tuple[str, ...]:
    """Every module a variant's server import is made without (its
    `server_import_without`), sorted: installed, each changes what that import does."""
    return tuple(sorted({module for name in WORKLOADS for variant in get(name).variants.values()
                         for module in variant.server_import_without}))


def of_benchmark(benchmark: str) -> Workload | None:
    """The declaration of the workload an asv benchmark name ("rope.RopeTime.track_time")
    belongs to, or None (environment.*, a workload this checkout lacks)."""
    name = benchmark.split(".")[0]
    return get(name) if name in WORKLOADS else None


def _call(fn, *args):
    try:
        return fn(*args) if fn else None
    except KeyError:  # a parameter value this checkout's declaration does not know
        return None


def bytes_for_benchmark(benchmark: str, params: dict) -> int | None:
    """Fewest bytes a benchmark's case must move, or None if the workload does not say."""
    spec = of_benchmark(benchmark)
    return _call(spec.bytes_for, params) if spec else None


def flops_for_benchmark(benchmark: str, params: dict) -> int | None:
    """Matmul FLOPs of one call of a benchmark's case, or None if the workload does not say."""
    spec = of_benchmark(benchmark)
    return _call(spec.flops_for, params) if spec else None


def device_method_for_benchmark(benchmark: str, params: dict) -> str | None:
    """How a GPU's device time of a benchmark's case is read, or None if not declared."""
    spec = of_benchmark(benchmark)
    return _call(spec.device_method_for, params) if spec else None


def gate_failure(benchmark: str, params: dict, value: float) -> str | None:
    """Why a quality/accuracy result fails its workload's gate, or None (passes, or no gate)."""
    spec = of_benchmark(benchmark)
    if spec is None or spec.quality_gate is None:
        return None
    return spec.quality_gate(benchmark.rsplit(".", 1)[-1], params, value)


def baseline_variant(workload: str, device_type: str) -> str:
    """The variant a workload's speedups are against (its `baseline`), else eager."""
    return get(workload).baseline_for(device_type) if workload in WORKLOADS else "eager"


def reference_variant(benchmark: str) -> str | None:
    """The variant a benchmark's workload names as its reference kernel, or None."""
    spec = of_benchmark(benchmark)
    return spec.reference if spec else None


def renamed_values(benchmark: str) -> dict[str, dict[str, str]]:
    """{parameter name: {old value: new value}} of a benchmark's workload ("llama_layer.
    LayerTime.track_time" -> llama_layer's renames), {} where nothing was renamed."""
    spec = of_benchmark(benchmark)
    return dict(spec.renamed) if spec else {}


def rename_old_values(benchmark: str, params: dict) -> dict:
    """`params` ({parameter name: value}) of a recorded result of `benchmark`, with values
    renamed since (the workload's renames) under their new names: a new dict, `params`
    itself untouched. Values may be plain ("full") or quoted as asv writes them in its
    result files ("'full'"); a quoted value keeps its quotes."""
    renamed = renamed_values(benchmark)
    if not renamed:
        return dict(params)
    out = {}
    for name, value in params.items():
        table = renamed.get(name, {})
        quote = value[0] if (isinstance(value, str) and len(value) >= 2
                             and value[0] == value[-1] and value[0] in "'\"") else ""
        bare = value[1:-1] if quote else value
        out[name] = f"{quote}{table[bare]}{quote}" if bare in table else value
    return out
