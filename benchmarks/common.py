"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures.

A workload's benchmark classes derive from `_Workload` (its params, the timeout, building
its case) and the mixins below, which measure any case of the one case protocol
(kernelwatch/workloads/_case.py): `call(*inputs)` over `input_sets` for timing, `run()`
for memory and compile cost, `first_run()`, and the `device_method` it declares. Leading
underscores keep asv from collecting these classes themselves; what a class inherits is its
own (a module-level `params` or `timeout` would leak into every benchmark of the module).
"""

import contextlib
import functools
import importlib
import os
import signal
import sys
import time

# torch.cuda.is_available() through NVML, which leaves the CUDA driver uninitialised: asked
# in asv's forkserver (by a library the server imports), the driver's own query would leave
# every benchmark process it forks unable to use CUDA. `kernelwatch run` sets it too; this
# covers plain `asv run`. Where NVML cannot answer, torch asks the driver all the same:
# the server imports such a library only where NVML sees a GPU (nvml_sees_a_gpu).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

import torch  # noqa: E402  (after the variable above, which torch reads at each query)

# The compiler, imported once: under asv's forkserver (asv.conf.json) every benchmark process
# is a fork of the process that imported this suite, so a compiled variant's process does not
# import dynamo and inductor again (seconds each). The first-launch figures (cold and warm
# compile, first run) are timed in a new interpreter, where the imports count as they do for
# a user (measure.first_call_seconds_new_process).
import torch._inductor.compile_fx  # noqa: F401  (imported for its side effect)

from kernelwatch import environment, measure
from kernelwatch.engine.progress import SERVER_IMPORT_LEFT
from kernelwatch.errors import Unavailable

# CPU kernels run on this many threads (KERNELWATCH_CPU_THREADS, default 1). Measured by
# `kernelwatch fidelity` on a 2-core machine: with torch's default (2 threads), compiled
# RoPE's median moved 15% between processes (compile-dynamic 12%); on 1 thread, 2.6% and
# 0.9% (docs/measurement.md). A history needs the stable figure; GPT-2 sets its own.
CPU_THREADS_ENV = "KERNELWATCH_CPU_THREADS"
# Seconds one benchmark process may take (asv's `timeout`): import, building the case, a
# compile and the measuring. A compile that overruns it is recorded as failed for its
# parameters, and the suite goes on. Read at discovery, so
# `KERNELWATCH_BENCHMARK_TIMEOUT=120 asv run` works.
TIMEOUT_ENV = "KERNELWATCH_BENCHMARK_TIMEOUT"


def device() -> torch.device:
    """The device benchmarks run on: the first CUDA GPU if torch sees one, else the CPU.

    Under asv's forkserver this process is a fork of a server that imported the suite; CUDA
    cannot be used in a fork of a process that initialised it, so a server that did is an
    error here, loudly, for every benchmark (never a silent CPU fallback)."""
    if torch.cuda._is_in_bad_fork():
        raise RuntimeError(FORKED_AFTER_CUDA)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


FORKED_AFTER_CUDA = (
    "CUDA was initialised in asv's forkserver before it forked this benchmark process (a "
    "CUDA call at import time in benchmarks/ or a module they import): move the call into a "
    "setup method, or run with `kernelwatch run --launch spawn`")


def in_asv_forkserver() -> bool:
    """Whether this process is asv's forkserver (`python <asv's benchmark script> run_server
    DIR SOCKET`), which forks the benchmark processes; asv's discovery (`discover`) and a
    spawned benchmark process (`run`) import the suite too, but fork nothing. (A
    multiprocessing "spawn" child of a fork copies this argv; the new interpreters of
    measure.first_call_seconds_new_process import the workloads' cases, not this suite.)"""
    return sys.argv[1:2] == ["run_server"]


def nvml_sees_a_gpu() -> bool:
    """Whether NVML sees a CUDA GPU for this process, asked without the CUDA runtime. Where
    NVML cannot answer (no driver for a CUDA build of torch, MIG devices), even an NVML-based
    torch.cuda.is_available() falls back to the runtime's device count, which leaves every
    fork of this process unable to use CUDA: the forkserver asks this instead."""
    # torch's own NVML count, the one its NVML-based is_available() reads; a torch without
    # it leaves the imports to the benchmark processes, as a spawned run does.
    count = getattr(torch.cuda, "_device_count_nvml", None)
    return torch.cuda._is_compiled() and count is not None and count() > 0


@contextlib.contextmanager
def _absent(modules: tuple[str, ...]):
    """Within it an import of any of `modules` (or of a submodule) raises ImportError, as if
    they were not installed; afterwards they import as before. One already imported is left
    as it is. (mock.patch.dict(sys.modules) would also drop what was imported within it.)"""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # the import system's mark for "not importable"
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@functools.cache  # once per server: every class of a workload declares its variants
def _import_in_server(module: str, here: str, without: tuple[str, ...] = ()) -> None:
    """Import a variant's `server_import` in the process that imports the suite (asv's
    forkserver), so that the processes it forks find it imported; `without`: modules that
    import sees as not installed (the variant's `server_import_without`). A module that
    does not import is left to the variant's own process, which says why and how to
    install it; on a GPU, so is one whose trial (server_import_trial) finds a fork cannot
    use CUDA after it, or outlasts TRIAL_SECONDS, and the server says so."""
    if here == "cuda":
        start = time.monotonic()
        verdict = server_import_trial(module, without)
        if verdict == TRIAL_IMPORT_FAILED:
            return
        if verdict != TRIAL_OK:
            why = (f"its trial outlasted {TRIAL_SECONDS:.0f} s" if verdict == TRIAL_TIMED_OUT
                   else "a process forked after importing it could not use CUDA")
            # asv keeps what the suite's import printed in the server: in its log of the
            # run, and on kernelwatch's console (engine.progress shows this line)
            print(f"{SERVER_IMPORT_LEFT} {module} to its benchmark processes ({why}; "
                  f"trial {time.monotonic() - start:.1f} s)", file=sys.stderr)
            return
    try:
        with _absent(without):
            importlib.import_module(module)
    except Exception:  # reported by the variant's own process, with the fix
        pass


# Seconds the trial of a server import may take (the import, and a CUDA context in a fork):
# past them it is stopped and the module left to the variant's processes, so a library that
# hangs at import cannot hang asv's forkserver, which waits on the server with no limit.
TRIAL_SECONDS = 120.0
# What a trial found (server_import_trial).
TRIAL_OK = "ok"
TRIAL_NO_CUDA = "a fork after the import could not use CUDA"
TRIAL_IMPORT_FAILED = "the import failed"
TRIAL_TIMED_OUT = "the trial outlasted TRIAL_SECONDS"
_IMPORT_FAILED_EXIT = 2


def server_import_trial(module: str, without: tuple[str, ...] = ()) -> str:
    """Whether a fork of a process that imported `module` (with `without` not importable,
    as _import_in_server imports it) can use CUDA (TRIAL_OK) or why not, tried in a fork of
    this process, which is left as it was: a library that asks the device anything at import
    time (not only torch's lazy init; a driver call of its own) would leave every benchmark
    process the server forks unable to use CUDA. The trial imports the module, forks as the
    server does and puts a tensor on the GPU there; it costs the import once more and a CUDA
    context (_import_in_server asks once per module)."""
    trial = os.fork()
    if trial == 0:  # never returns: a fork of the server must not go on as a server
        code = _IMPORT_FAILED_EXIT
        try:
            os.setpgid(0, 0)  # its own group, which a trial past its time is stopped with
            with _absent(without):
                importlib.import_module(module)
            code = 1
            fork = os.fork()
            if fork == 0:
                try:
                    code = 0 if float(torch.ones(1, device="cuda").sum()) == 1.0 else 1
                finally:
                    os._exit(code)
            code = 0 if os.waitstatus_to_exitcode(os.waitpid(fork, 0)[1]) == 0 else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + TRIAL_SECONDS
    while (ended := os.waitpid(trial, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(trial, signal.SIGKILL)
            os.waitpid(trial, 0)
            return TRIAL_TIMED_OUT
        time.sleep(0.01)
    code = os.waitstatus_to_exitcode(ended[1])
    return {0: TRIAL_OK, _IMPORT_FAILED_EXIT: TRIAL_IMPORT_FAILED}.get(code, TRIAL_NO_CUDA)


def pin_cpu_threads(dev: torch.device) -> None:
    """On the CPU, use the pinned thread count (see CPU_THREADS_ENV); on a GPU, leave torch
    as it is. The count is recorded: environment.Environment.track_torch_threads."""
    if dev.type == "cpu":
        torch.set_num_threads(int(os.environ.get(CPU_THREADS_ENV) or 1))


def gpu_monitor(dev: torch.device) -> environment.GpuMonitor | None:
    """Readings of the GPU's clocks and processes between a timing's samples (GPU only)."""
    return environment.GpuMonitor() if dev.type == "cuda" else None


def for_asv(samples: measure.Samples) -> dict:
    """The samples as asv records them. A GPU's conditions that flag them (throttled,
    shared, not observed) go to stderr, which `kernelwatch run` keeps in asv's log; the
    recorded flags are the device check's (_DeviceCheck)."""
    c = samples.conditions
    if c is not None and c.flags:
        print(f"kernelwatch: measured while {environment.describe_flags(c.flags)}: "
              f"{c.describe()}", file=sys.stderr)
    return samples.for_asv()


class _Workload:
    """The base of a workload's benchmark classes. `class _Rope(_Workload, workload=rope)`
    (rope: the workload's case module) takes asv's `params` and `param_names` from its
    declaration; `_build(*params)`
    builds its case on the benchmark device as `self.case` (on `self.dev`), with the CPU's
    threads pinned unless the class sets `pin_threads = False`."""

    timeout = float(os.environ.get(TIMEOUT_ENV, "600"))
    pin_threads = True

    def __init_subclass__(cls, workload=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if workload is not None:  # the workload's case module; its SPEC declares it
            cls.workload = workload
            cls.params = list(workload.SPEC.params.values())
            cls.param_names = list(workload.SPEC.params)
            imports = [v for v in workload.SPEC.variants.values() if v.server_import]
            if imports and in_asv_forkserver():
                here = "cuda" if nvml_sees_a_gpu() else "cpu"
                for variant in imports:
                    if here in variant.devices:
                        _import_in_server(variant.server_import, here,
                                          variant.server_import_without)

    def _build_options(self) -> dict:
        """Keyword arguments of the workload's build_case for this class (none by default)."""
        return {}

    def _build(self, *params, **options):
        self.dev = device()
        if self.pin_threads:
            pin_cpu_threads(self.dev)
        self.case = self.workload.build_case(*params, self.dev,
                                             **{**self._build_options(), **options})

    def _variant(self, *params) -> str:
        return params[self.param_names.index("variant")]

    def _builder(self, *params, **options) -> functools.partial:
        """What `_build` does, as a picklable call: a new interpreter builds the same case
        from it (the one-time costs are timed there, measure.first_call_seconds_new_process).
        This process's case is released first, so two never hold the device's memory."""
        build = functools.partial(self.workload.build_case, *params, self.dev,
                                  **{**self._build_options(), **options})
        self.__dict__.pop("case", None)
        measure.release_freed_memory()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        return build


class _WarmCase:
    """Setup: build, then one call, so compiling (from a warm cache after the first process)
    and warm-up stay outside what is measured."""

    def setup(self, *params):
        self._build(*params)
        self.case.run()
        measure.synchronize(self.dev)


class _CallTime(_WarmCase):
    """Seconds per call, rotating through the case's input sets. track_time is the device's
    own time (measure.time_device) by the method the case declares: on a GPU CUDA-graph
    replay where the call can be captured, else the profiler's kernel time (or, where the
    case declares it, CUDA events around plain calls); track_caller_time is what a Python
    caller pays per call (host clock, no graph, one synchronize per sample). `timed_counts`
    are the samples and warm-up calls of both: 20 after 3 by default, as a call of a model
    or a layer lasts milliseconds; {} leaves measure's defaults."""

    unit = "seconds"
    timed_counts = {"samples": 20, "warmup": 3}

    def track_time(self, *params):
        return for_asv(measure.time_device(
            self.case.call, self.case.input_sets, self.dev, method=self.case.device_method,
            monitor=gpu_monitor(self.dev), **self.timed_counts))

    def track_caller_time(self, *params):
        return for_asv(measure.time_caller(
            self.case.call, self.case.input_sets, self.dev, monitor=gpu_monitor(self.dev),
            **self.timed_counts))


class _KernelTime(_WarmCase):
    """GPU only: the GPU's own work per call, the busy time of the kernels, copies and sets
    the calls ran (torch.profiler, CUPTI), the GPU's waits for the host left out. For a case
    whose device time is a latency the host paces (a loop driven from Python): that latency
    moves with the host between processes, this does not. `timed_counts` as _CallTime's."""

    unit = "seconds"
    timed_counts = {"samples": 20, "warmup": 3}

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("kernel time is the GPU's busy time and needs a CUDA GPU (on a "
                              "CPU the time family's track_time is the work)")
        super().setup(*params)

    def track_kernel_time(self, *params):
        return for_asv(measure.time_device(
            self.case.call, self.case.input_sets, self.dev, method=measure.PROFILER_KERNELS,
            monitor=gpu_monitor(self.dev), **self.timed_counts))


class _DeviceCheck:
    """track_device_check: device time (by the case's method) and caller time of the case
    taken in turns in one process, with the GPU's SM clock, clock-event reasons and other
    processes read between samples (measure.check_device_time). The value is environment's
    flag bits, 0 when nothing is wrong: device time over caller time beyond noise,
    throttled, power-capped, shared, not observed. The readings go to stderr (asv's log).
    GPU only: on a CPU both clocks are one."""

    unit = "flags"

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("the device-time check needs a CUDA GPU (on a CPU device time "
                              "and caller time are one clock)")
        self._build(*params)
        self.case.run()  # compile (warm cache after the first process) and warm up
        measure.synchronize(self.dev)

    def track_device_check(self, *params):
        check = measure.check_device_time(self.case.call, self.case.input_sets, self.dev,
                                          method=self.case.device_method)
        print(f"kernelwatch: {check.describe()}", file=sys.stderr)
        return check.flags


class _Peak(_WarmCase):
    """Peaks during one call (measure.peak_memory), the case's model and inputs included."""

    unit = "bytes"

    def _peak(self):
        return measure.peak_memory(self.case.run, self.dev)


class _PeakMemory(_Peak):
    """Peak process RSS during one call."""

    def track_peak_rss(self, *params):
        return self._peak().rss


class _PeakCuda(_Peak):
    """Peak CUDA allocated and reserved bytes during one call (GPU only)."""

    def setup(self, *params):
        if device().type != "cuda":
            raise Unavailable("CUDA memory needs a CUDA GPU")
        super().setup(*params)

    def track_peak_cuda_allocated(self, *params):
        return self._peak().cuda_allocated

    def track_peak_cuda_reserved(self, *params):
        return self._peak().cuda_reserved


class _PeakCudaMemory(_PeakCuda, _PeakMemory):
    """Peak CUDA allocated and reserved bytes, and the process's RSS, during one call."""


class _FirstRun:
    """Seconds of the case's first run (`first_run()`: the variant's one-time work and its
    first call) in a fresh process with fresh inductor and Triton caches: for a compiled
    variant the cold compile plus one call."""

    unit = "seconds"
    first_run_options: dict = {}  # build_case's keywords for a case not yet transformed

    def setup(self, *params):
        self._build(*params, **self.first_run_options)

    def track_first_run(self, *params):
        build = self._builder(*params, **self.first_run_options)
        return measure.cold_compile_seconds_new_process(build, "first_run")


class _CompileHealth:
    """Dynamo's counters as asv series, for a class that defines `_health()` returning a
    `kernelwatch.measure.CompileHealth`. Setup skips variants that are not compiled
    (the declaration's Variant.compiled) and builds the case without calling it."""

    def setup(self, *params):
        if not self.workload.SPEC.variants[self._variant(*params)].compiled:
            raise Unavailable(f"{self._variant(*params)} is not compiled")
        self._build(*params)

    def track_graph_breaks(self, *params):
        return self._health().graph_breaks

    track_graph_breaks.unit = "count"

    def track_unique_graphs(self, *params):
        return self._health().unique_graphs

    track_unique_graphs.unit = "count"

    def track_recompiles(self, *params):
        return self._health().recompiles

    track_recompiles.unit = "count"


class _WarmCompile(_CompileHealth):
    """Warm compile: the first call with the FX graph cache filled by a child process (the
    workload's `prime_compile(*params, device_type)`), plus dynamo's health."""

    unit = "seconds"

    def track_warm_compile(self, *params):
        prime = functools.partial(self.workload.prime_compile, *params, self.dev.type)
        return measure.warm_compile_seconds_new_process(self._builder(*params), prime)


class _CompileCost(_WarmCompile):
    """Cold compile (the first call with fresh inductor and Triton caches) beside the warm
    compile and dynamo's health."""

    def track_cold_compile(self, *params):
        return measure.cold_compile_seconds_new_process(self._builder(*params))


class _KernelInventory:
    """The kernels one call launches (kernelwatch.inventory): their count as an asv series,
    their names and the generated code's hash beside the results (kernelwatch.
    inventory_file), so a lost fusion shows as a change however little the time moved. The
    case is built and not called: a compiled variant compiles inside the counted call."""

    unit = "count"

    def setup(self, *params):
        self._build(*params)

    def _first_call(self):
        return self.case.run()

    def track_kernel_count(self, *params):
        from kernelwatch import inventory, inventory_file

        found = inventory.of_first_call(self._first_call, self.dev)
        workload = type(self).__module__.rsplit(".", 1)[-1]
        inventory_file.record(f"{workload}({', '.join(map(str, params))})", found.as_dict())
        return found.count
