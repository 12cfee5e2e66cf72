"""The kernels kernelwatch measures, one module each (`workloads/<kernel>.py`).

Adding a workload is two files: `workloads/<name>.py` and `benchmarks/<name>.py` (and
`report/<name>.py` only if it has a summary table of its own). Nothing else names it: this
package finds its modules by listing itself, and the CLI and the report read what each one
declares.

What a workload module declares:
- `PARAMS`: {parameter name: valid values}, in the order of its asv `params`; the CLI
  selects by these names (`--param NAME=VALUE`).
- `BENCHMARKS`: {metric family: asv class name in benchmarks/<name>.py}, e.g.
  {"time": "RopeTime"}; `--metric FAMILY` selects a class by family.
- `QUICK`: the parameter values of `kernelwatch run --quick`; optionally `QUICK_METRICS`
  (families, default time, accuracy and first-run), `QUICK_TRACKS` (track_ names) and
  `QUICK_COMPILE_VARIANT` (one compiled variant whose cold compile the quick run records).
- optionally `SUITES`: {suite name: [SuitePart(params, metrics, tracks), ...]}, the
  workload's share of a named selection (`kernelwatch run --suite NAME`; the names and what
  each is for are SUITE_NAMES below). The quick suite is QUICK's.
- optionally `SETTINGS`: {name: environment variable} for choices that are not asv params
  (a local checkpoint directory): `--param NAME=VALUE` sets the variable for the run.
- optionally `bytes_for(params)`: the fewest bytes a case must move (GB/s in the report).
- optionally `flops_for(params)`: the matmul FLOPs of one call (TFLOP/s on the roofline).
- optionally `quality_gate(track, params, value)`: the reason a quality or accuracy result
  fails the workload's gate (None if it passes); the speedup charts mark such variants.
- optionally `BASELINE`: the variant speedups and break-even are against (a name, or
  {"cpu": ..., "cuda": ...}); default eager.
- optionally `REFERENCE`: the variant that is the best kernel the project knows for the case
  (its own hand-written one): the roofline page gives every variant's share of its speed.
- optionally `TARGETS`: {distribution: the cases that run its code}, each a list of
  variants or a {parameter: values} dict ({} for every case), e.g. GPTQ's
  {"llmcompressor": ["llmcompressor", "llmcompressor-eager"]}. `kernelwatch run --target
  DIST=REPO` measures just these at the library's commits, `--versions DIST=V1,V2` at its
  releases, and `bisect` searches either (kernelwatch/targets.py).
- optionally `TARGET_REQUIREMENTS`: {distribution: {requirement: exact version or ""}}, what
  importing it needs beside torch, numpy and psutil: the matrix of a target's environments
  (the library itself is installed with --no-deps). Without it a target environment keeps
  the rest of asv.conf.json's matrix.
- optionally `RENAMED`: {parameter name: {old value: new value}} for values renamed since
  results were recorded under the old ones; `rename_old_values` reads such results under
  the new names. Benchmark names and versions never change.
Each module's case follows one protocol (`workloads/_case.py`), which the benchmark
classes' shared mixins measure. Modules whose names start with `_` are helpers, not
workloads.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType

from kernelwatch.errors import unknown_name

DEFAULT_QUICK_METRICS = ("time", "accuracy", "first-run")

# The named selections a runner or a user asks for (`kernelwatch run --suite NAME`); each
# workload declares its part of each in SUITES (quick: its QUICK declarations).
SUITE_NAMES = {
    "quick": "every workload's tiny case: the CPU demo (make demo), a few minutes on 2 cores",
    "gpu-commit": "every workload at its real model shapes, its headline variants; time, "
                  "caller time and accuracy, and one cold compile each: what a GPU runner "
                  "measures on every commit (about 10 minutes on an H200)",
    "gpu-nightly": "wider than gpu-commit: both dtypes and forms, the library variants, "
                   "compile health; what a GPU runner measures each night over the torch "
                   "matrix",
}


@dataclass(frozen=True)
class SuitePart:
    """One part of a workload's share of a suite: these parameter values ({} or a missing
    name: every value), these metric families, and of their track_ methods these names
    (None: all)."""

    params: dict[str, list[str]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("time",)
    tracks: tuple[str, ...] | None = None


def _discover() -> dict[str, str]:
    # Listing the package finds the modules without importing them: a workload may need
    # libraries another does not, so each is imported only when it is used.
    return {m.name: f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_")}


# name -> module path, sorted so listings are stable.
WORKLOADS = dict(sorted(_discover().items()))


def get(name: str) -> ModuleType:
    if name not in WORKLOADS:
        raise unknown_name("workload", name, WORKLOADS)
    return importlib.import_module(WORKLOADS[name])


def quick_metrics(module: ModuleType) -> list[str]:
    """The metric families of the quick run that this workload defines."""
    wanted = getattr(module, "QUICK_METRICS", DEFAULT_QUICK_METRICS)
    return [f for f in wanted if f in module.BENCHMARKS]


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


def _module_of(benchmark: str) -> ModuleType | None:
    name = benchmark.split(".")[0]
    return get(name) if name in WORKLOADS else None


def _hook(benchmark: str, hook: str):
    return getattr(_module_of(benchmark), hook, None)


def flops_for_benchmark(benchmark: str, params: dict) -> int | None:
    """Matmul FLOPs of one call of a benchmark's case, or None if the workload does not say."""
    fn = _hook(benchmark, "flops_for")
    try:
        return fn(params) if fn else None
    except KeyError:
        return None


def gate_failure(benchmark: str, params: dict, value: float) -> str | None:
    """Why a quality/accuracy result fails its workload's gate, or None (passes, or no gate)."""
    fn = _hook(benchmark, "quality_gate")
    return fn(benchmark.rsplit(".", 1)[-1], params, value) if fn else None


def baseline_variant(workload: str, device_type: str) -> str:
    """The variant a workload's speedups are against: its `BASELINE` (a name, or a
    {device type: name} dict), else eager."""
    if workload not in WORKLOADS:
        return "eager"
    baseline = getattr(get(workload), "BASELINE", "eager")
    return baseline.get(device_type, "eager") if isinstance(baseline, dict) else baseline


def reference_variant(benchmark: str) -> str | None:
    """The variant a benchmark's workload names as its reference kernel (`REFERENCE`), or
    None where it names none."""
    return _hook(benchmark, "REFERENCE")


def renamed_values(benchmark: str) -> dict[str, dict[str, str]]:
    """{parameter name: {old value: new value}} of a benchmark's workload ("llama_layer.
    LayerTime.track_time" -> llama_layer's RENAMED), {} where nothing was renamed."""
    return getattr(_module_of(benchmark), "RENAMED", None) or {}


def rename_old_values(benchmark: str, params: dict) -> dict:
    """`params` ({parameter name: value}) of a recorded result of `benchmark`, with values
    renamed since (the workload's RENAMED) under their new names: a new dict, `params`
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
