"""What a workload declares: one `Workload` object per workload (`workloads/<name>/spec.py`,
`SPEC`), importable without torch, which the engine, the results, the report and the command
line read. The torch side (building a case, the models, the kernels) is `<name>/case.py`,
imported by benchmark processes only.

A workload's variants are `Variant` objects: where each can run and why not elsewhere, the
library whose code it runs, whether torch.compile made it. Its named selections (the quick
set, the GPU suites) are `SuitePart` lists under the suite's name (`SUITE_NAMES`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kernelwatch.errors import Unavailable
from kernelwatch.workloads import variants as compile_modes

# The named selections a runner or a user asks for (`kernelwatch run --suite NAME`).
SUITE_NAMES = {
    "quick": "every workload's tiny case: the CPU demo (make demo), a few minutes on 2 cores",
    "gpu-commit": "every workload at its real model shapes, its headline variants; time, "
                  "caller time and accuracy, and one cold compile each: what a GPU runner "
                  "measures on every commit (--dry-run counts its processes and estimates its "
                  "time from this machine's records)",
    "gpu-nightly": "wider than gpu-commit: both dtypes and forms, the library variants, "
                   "compile health; what a GPU runner measures each night over the torch "
                   "matrix",
}
QUICK_SUITE = "quick"
# Suites of real model shapes: on a CPU they would run for hours, or skip every GPU variant.
GPU_SUITES = frozenset({"gpu-commit", "gpu-nightly"})
DEVICE_TYPES = ("cpu", "cuda")
CUDA = ("cuda",)
CPU = ("cpu",)


@dataclass(frozen=True)
class Variant:
    """One value of a workload's `variant` parameter. `devices`: where it runs (`why`: the
    reason it does not run elsewhere); `library`: the distribution whose code it runs
    (`kernelwatch run --target`, `--versions`), None for torch's own; `server_import`: a
    module its benchmark processes import, which asv's forkserver imports once before it
    forks them, on a device the variant runs on (it must leave CUDA uninitialised);
    `server_import_without`: modules that import sees as not installed, optional
    dependencies of the library that the variant does not use and whose own import would
    initialise CUDA (they stay importable afterwards; what the library set at import for
    their absence stays so in every benchmark process)."""

    name: str
    devices: tuple[str, ...] = DEVICE_TYPES
    why: str = ""
    library: str | None = None
    server_import: str | None = None
    server_import_without: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # ("peft") is the string "peft", whose letters would be hidden one by one, and a
        # list cannot key the server's once-per-module import
        without = self.server_import_without
        if not (isinstance(without, tuple) and all(isinstance(m, str) and m for m in without)):
            raise ValueError(f"variant {self.name}: server_import_without must be a tuple of "
                             f"module names, as ('peft',); got {without!r}")
        if without and not self.server_import:
            raise ValueError(f"variant {self.name}: server_import_without names what "
                             "server_import is imported without; set server_import too")

    @property
    def compiled(self) -> bool:
        """Whether any of it runs code torch.compile made."""
        return compile_modes.is_compiled(self.name)

    def unavailable_on(self, device_type: str) -> str | None:
        """Why it cannot run on `device_type` ("cpu", "cuda"), or None."""
        if device_type in self.devices:
            return None
        where = "a CUDA GPU" if self.devices == CUDA else "the CPU"
        verb = "needs" if self.devices == CUDA else "runs on"
        only = "" if self.devices == CUDA else " only"
        return f"{self.name} {verb} {where}{only}" + (f": {self.why}" if self.why else "")

    def check(self, device_type: str) -> None:
        """Unavailable (asv: skipped) with the reason where it cannot run."""
        reason = self.unavailable_on(device_type)
        if reason:
            raise Unavailable(reason)


def compile_variant(mode: str) -> Variant:
    """A variant that is torch.compile in `mode` (kernelwatch.workloads.variants), with the device
    that mode needs."""
    if mode in compile_modes.GPU_ONLY:
        return Variant(mode, CUDA, compile_modes.GPU_ONLY[mode])
    return Variant(mode)


@dataclass(frozen=True)
class Library:
    """A library whose code some of a workload's cases run, as its adapter (the code that
    calls it, beside the case) can call it: `supported`, the releases it follows (a PEP 440
    specifier); `why_not_before`, what is said of a commit or release below them;
    `build_names`, the other names the library's own builds went by (a build named otherwise
    is another project, not the library asked for)."""

    supported: str
    why_not_before: str
    build_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuitePart:
    """One part of a workload's share of a suite: these parameter values ({} or a missing
    name: every value), these metric families, and of their track_ methods these names
    (None: all); each combination measured in `processes` processes, samples pooled, where
    its series moves between processes more than within one."""

    params: dict[str, list[str]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("time",)
    tracks: tuple[str, ...] | None = None
    processes: int = 1


@dataclass(frozen=True)
class Workload:
    """Everything the engine, the results, the report and the CLI know of a workload.

    - params: {parameter name: valid values}, in the order of its asv `params`; `variant`'s
      values are the names of `variants`.
    - metrics: {metric family: asv class in benchmarks/<name>.py}.
    - suites: {suite name: parts}; "quick" is `kernelwatch run --quick` (make demo).
    - baseline: the variant speedups and break-even are against (a name, or {device type:
      name}); reference: the project's best kernel for the case (the roofline's yardstick).
    - settings: {name: environment variable} for choices that are not asv parameters (a
      local checkpoint directory); `--param NAME=VALUE` sets the variable for the run, and
      validate_settings(env, chosen) checks it before asv starts.
    - targets: {distribution: the cases that run its code} beyond the variants' own
      `library` (a {parameter: values} dict, {} for every case); target_requirements:
      {distribution: {requirement: exact version or ""}}, what importing it needs.
    - libraries: {distribution: Library}: the releases each adapter follows (kernelwatch
      run --target and --versions name what is below them before building anything).
    - renamed: {parameter name: {old value: new value}}: results recorded under old names
      read under the new ones (asv names, params and versions never change).
    - bytes_for / flops_for(params): the fewest bytes a case moves, its matmul FLOPs (GB/s,
      TFLOP/s); quality_gate(track, params, value): why a result fails the workload's gate;
      device_method_for(params): how a GPU's device time of a case is read
      (kernelwatch.time_methods).
    """

    name: str
    params: dict[str, list[str]]
    metrics: dict[str, str]
    variants: Mapping[str, Variant]
    suites: dict[str, list[SuitePart]]
    baseline: str | dict[str, str] = "eager"
    reference: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    validate_settings: Callable[[dict, dict], None] | None = None
    targets: dict[str, list[str] | dict] = field(default_factory=dict)
    target_requirements: dict[str, dict[str, str]] = field(default_factory=dict)
    libraries: dict[str, Library] = field(default_factory=dict)
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)
    bytes_for: Callable[[dict], int] | None = None
    flops_for: Callable[[dict], int] | None = None
    quality_gate: Callable[[str, dict, float], str | None] | None = None
    device_method_for: Callable[[dict], str | None] | None = None

    def __post_init__(self) -> None:
        if list(self.variants) != list(self.params.get("variant", [])):
            raise ValueError(f"{self.name}: params['variant'] must list the declared "
                             "variants, in order")
        for suite in self.suites:
            if suite not in SUITE_NAMES:
                raise ValueError(f"{self.name}: unknown suite {suite!r}")

    @property
    def quick(self) -> dict[str, list[str]]:
        """The quick case's parameter values (its first part)."""
        return self.suites[QUICK_SUITE][0].params

    def baseline_for(self, device_type: str) -> str:
        b = self.baseline
        return b.get(device_type, "eager") if isinstance(b, dict) else b

    def all_targets(self) -> dict[str, list[str] | dict]:
        """{distribution: its cases}: the variants that run a library's code, and the
        declared `targets`."""
        out: dict[str, list[str] | dict] = {}
        for v in self.variants.values():
            if v.library:
                cases = out.setdefault(v.library, [])
                assert isinstance(cases, list)
                cases.append(v.name)
        out.update(self.targets)
        return out

    def combinations(self, chosen: Mapping[str, Sequence[str]] | None = None
                     ) -> list[tuple[str, ...]]:
        """Every parameter combination, in asv's order, narrowed to `chosen` values."""
        chosen = chosen or {}
        return list(itertools.product(*(chosen.get(p) or values
                                         for p, values in self.params.items())))


def variant_table(*declared: Variant) -> dict[str, Variant]:
    """{name: Variant}, in the order given (asv's parameter order)."""
    return {v.name: v for v in declared}
