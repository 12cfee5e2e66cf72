"""The benchmark classes asv runs, called as asv calls them (setup, then a track method) in
this process: the shared mixins of benchmarks/common.py measure every workload's case, and
what cannot run on a CPU is skipped with its reason."""

import pytest
import torch

from kernelwatch import workloads
from kernelwatch.errors import Unavailable
from kernelwatch.regression import benchmark_classes

from .conftest import REPO

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def quick_params(workload: str, variant: str | None = None) -> list[str]:
    """The quick run's first case, at `variant` (default: the CPU's baseline)."""
    spec = workloads.get(workload)
    variant = variant or workloads.baseline_variant(workload, "cpu")
    return [variant if p == "variant" else spec.quick[p][0] for p in spec.params]


def tracked(workload: str, cls: str, track: str, variant: str | None = None):
    bench = benchmark_classes.load(REPO, workload, cls)()
    params = quick_params(workload, variant)
    bench.setup(*params)
    return getattr(bench, track)(*params)


@pytest.mark.parametrize("workload", ["rope", "gptq", "vae", "llama_layer"])
def test_time_and_memory_come_from_the_shared_mixins(workload):
    time_cls = workloads.get(workload).metrics["time"]
    for track in ("track_time", "track_caller_time"):
        samples = tracked(workload, time_cls, track)
        assert samples["number"] >= 1 and len(samples["samples"]) >= 10
        assert all(s > 0 for s in samples["samples"])
    memory_cls = workloads.get(workload).metrics["memory"]
    assert tracked(workload, memory_cls, "track_peak_rss") > 0


def test_each_class_keeps_its_own_sample_counts():
    """RoPE's calls last microseconds: measure's defaults (30 samples on a CPU); GPTQ's a
    whole layer: 10; a model or a layer: 20."""
    assert len(tracked("rope", "RopeTime", "track_time")["samples"]) == 30
    assert len(tracked("gptq", "GptqTime", "track_time")["samples"]) == 10
    assert len(tracked("llama_layer", "LayerTime", "track_caller_time")["samples"]) == 20


@pytest.mark.parametrize("workload", ["gptq", "vae", "gpt2"])
def test_first_run_is_the_cases_first_call(workload):
    if workload == "gpt2":
        pytest.importorskip("transformers")
    assert tracked(workload, workloads.get(workload).metrics["first-run"],
                   "track_first_run") > 0


@pytest.mark.parametrize("workload", ["rope", "gptq", "vae", "llama_layer"])
def test_what_a_cpu_cannot_measure_is_skipped_with_its_reason(workload):
    classes = workloads.get(workload).metrics
    with pytest.raises(Unavailable, match="CUDA memory needs a CUDA GPU"):
        tracked(workload, classes["cuda-memory"], "track_peak_cuda_allocated")
    with pytest.raises(Unavailable, match="eager is not compiled"):
        tracked(workload, classes["compile"], "track_graph_breaks")
    if "device-check" in classes:
        with pytest.raises(Unavailable, match="needs a CUDA GPU"):
            tracked(workload, classes["device-check"], "track_device_check")
    if "kernel-time" in classes:
        with pytest.raises(Unavailable, match="needs a CUDA GPU"):
            tracked(workload, classes["kernel-time"], "track_kernel_time")


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA GPU (device machine)")
def test_gptq_kernel_time_is_below_its_latency_on_a_gpu():
    """GPTQ's column loop runs from the host: its latency (GptqTime, CUDA events) holds the
    GPU's waits for the host, its kernel time (GptqKernelTime, the profiler's busy time)
    only the GPU's work, so the second is positive and below the first."""
    import statistics

    busy = tracked("gptq", "GptqKernelTime", "track_kernel_time")
    latency = tracked("gptq", "GptqTime", "track_time")
    assert busy["samples"] and all(s > 0 for s in busy["samples"])
    assert statistics.median(busy["samples"]) < statistics.median(latency["samples"])


def test_compile_health_counts_a_recompile_through_the_class():
    """RoPE's static compile recompiles once for the call at half the sequence length.
    Dynamo's caches are reset first, as asv's fresh process has them: the tests before
    compiled the same function in this one."""
    torch._dynamo.reset()
    assert tracked("rope", "RopeCompile", "track_recompiles", variant="compile") == 1



@pytest.fixture
def server_common():
    """benchmarks.common as asv's forkserver imports it, its record of the server imports
    done (once per module and device) empty before and after the test."""
    import sys

    benchmark_classes.load(REPO, "rope", "RopeTime")
    common = sys.modules["benchmarks.common"]
    common._import_in_server.cache_clear()
    yield common
    common._import_in_server.cache_clear()


def test_a_variants_server_import_is_imported_with_the_suite(tmp_path, monkeypatch,
                                                         server_common):
    """asv's forkserver imports the suite once and forks each benchmark process from it: a
    module a variant declares (`server_import`) is imported with the workload's classes in
    the server, on a device the variant runs on, so its processes find it imported; not in
    asv's discovery or a spawned process, which fork nothing; a GPU-only variant's is not
    imported where NVML sees no GPU, and one that does not import is left to the variant's
    own process to report."""
    import sys
    import types

    from kernelwatch.workloads.declaration import CUDA, Variant, Workload, variant_table

    common = server_common
    # The trial's own answers are tests/test_forkserver.py's (a GPU's, in a new server).
    monkeypatch.setattr(common, "server_import_trial",
                        lambda module, without=(): common.TRIAL_OK)
    for name in ("kw_probe_anywhere", "kw_probe_cuda"):
        (tmp_path / f"{name}.py").write_text("")
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    variants = variant_table(Variant("anywhere", server_import="kw_probe_anywhere"),
                             Variant("cuda-only", CUDA, server_import="kw_probe_cuda"),
                             Variant("absent", server_import="kw_probe_not_installed"))
    workload = types.SimpleNamespace(
        SPEC=Workload("probe", {"variant": list(variants)}, {}, variants, {}))

    type("_Probe", (common._Workload,), {}, workload=workload)
    assert "kw_probe_anywhere" not in sys.modules  # discovery, spawn: nothing is forked

    monkeypatch.setattr(sys, "argv", ["benchmark.py", "run_server", "benchmarks", "socket"])
    type("_Probe", (common._Workload,), {}, workload=workload)
    assert "kw_probe_anywhere" in sys.modules
    assert "kw_probe_not_installed" not in sys.modules
    assert ("kw_probe_cuda" in sys.modules) == common.nvml_sees_a_gpu()


def test_a_server_import_sees_the_modules_it_is_declared_without_as_not_installed(
        tmp_path, monkeypatch, server_common):
    """A variant's `server_import_without`: on a GPU the server's trial and its import both
    take the module as if those were not installed (Liger without peft, whose import chain
    initialises CUDA on the GPU machines), the library takes its own path for a missing
    optional dependency, and afterwards the hidden module imports as before (a benchmark
    process that needs it gets it)."""
    import sys
    import types

    from kernelwatch.workloads.declaration import CUDA, Variant, Workload, variant_table

    common = server_common
    (tmp_path / "kw_probe_optional_dep.py").write_text("")
    (tmp_path / "kw_probe_library.py").write_text(
        "try:\n    import kw_probe_optional_dep  # noqa: F401\n    HAS_DEP = True\n"
        "except ImportError:\n    HAS_DEP = False\n")
    for name in ("kw_probe_library", "kw_probe_optional_dep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    trials = []

    def trial(module, without=()):  # the trial's own answers are test_forkserver.py's
        trials.append((module, without))
        return common.TRIAL_OK

    monkeypatch.setattr(common, "server_import_trial", trial)
    monkeypatch.setattr(common, "nvml_sees_a_gpu", lambda: True)
    variants = variant_table(Variant("cuda-only", CUDA, server_import="kw_probe_library",
                                     server_import_without=("kw_probe_optional_dep",)))
    workload = types.SimpleNamespace(
        SPEC=Workload("probe", {"variant": list(variants)}, {}, variants, {}))
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "run_server", "benchmarks", "socket"])

    type("_Probe", (common._Workload,), {}, workload=workload)
    assert trials == [("kw_probe_library", ("kw_probe_optional_dep",))]
    assert sys.modules["kw_probe_library"].HAS_DEP is False
    assert "kw_probe_optional_dep" not in sys.modules
    import kw_probe_optional_dep  # noqa: F401  (importable again)


@pytest.mark.skipif("__import__('torch').cuda.is_available()",
                    reason="needs a machine where no fork can use CUDA; on a GPU "
                           "tests/test_forkserver.py checks the trial both ways")
def test_the_server_leaves_a_gpu_variants_import_to_its_process_where_forks_then_lack_cuda(
        tmp_path, monkeypatch, capfd, server_common):
    """On a GPU the server imports a variant's module only where a trial (in a fork of the
    server) shows that a fork of a process which imported it can still use CUDA. Here NVML
    is told to see a GPU that no fork can use (CPU torch): the trial says no, the module is
    not imported, the server says so (asv keeps what the suite's import printed; kernelwatch
    shows the line), and the server itself never touched CUDA. One trial serves all the
    workload's classes."""
    import sys
    import types

    from kernelwatch.workloads.declaration import CUDA, Variant, Workload, variant_table

    common = server_common
    (tmp_path / "kw_probe_trial.py").write_text("")
    monkeypatch.delitem(sys.modules, "kw_probe_trial", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    variants = variant_table(Variant("cuda-only", CUDA, server_import="kw_probe_trial"),
                             Variant("absent", CUDA, server_import="kw_probe_not_installed"))
    workload = types.SimpleNamespace(
        SPEC=Workload("probe", {"variant": list(variants)}, {}, variants, {}))
    monkeypatch.setattr(common, "nvml_sees_a_gpu", lambda: True)
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "run_server", "benchmarks", "socket"])

    trials = []

    def counted_trial(module, without=()):
        trials.append(module)
        return server_import_trial(module, without)

    server_import_trial = common.server_import_trial
    assert server_import_trial("kw_probe_trial") == common.TRIAL_NO_CUDA
    assert server_import_trial("kw_probe_not_installed") == common.TRIAL_IMPORT_FAILED
    monkeypatch.setattr(common, "server_import_trial", counted_trial)
    capfd.readouterr()
    type("_Probe", (common._Workload,), {}, workload=workload)
    type("_ProbeToo", (common._Workload,), {}, workload=workload)  # a workload's next class
    assert trials == ["kw_probe_trial", "kw_probe_not_installed"], (
        "the trial runs once per server and module")
    assert "kw_probe_trial" not in sys.modules
    assert not torch.cuda.is_initialized()
    said = [line for line in capfd.readouterr().err.splitlines()
            if line.startswith(common.SERVER_IMPORT_LEFT)]
    # one line, for the module a fork could not use CUDA after; a module that does not
    # import is its variant's process's to report, with the fix
    assert len(said) == 1 and said[0].startswith(
        "kernelwatch server import: left kw_probe_trial to its benchmark processes (a process "
        "forked after importing it could not use CUDA; trial ")
    from kernelwatch.engine import progress
    assert progress.SHOWN.search("·· " + said[0]), "kernelwatch's console shows it"
    assert progress.SERVER_IMPORT_LEFT == common.SERVER_IMPORT_LEFT


@pytest.mark.skipif("__import__('torch').cuda.is_available()",
                    reason="needs a machine where no fork can use CUDA: there an import "
                           "that ends reads TRIAL_NO_CUDA")
def test_the_trial_imports_the_module_as_the_server_does_without_what_it_is_declared_without(
        tmp_path, monkeypatch, server_common):
    """The trial (in a fork) imports the module as the server would: with the variant's
    `server_import_without` not importable. A module that cannot do without one fails its
    trial's import; the server process is left as it was."""
    import sys

    (tmp_path / "kw_probe_dep.py").write_text("")
    (tmp_path / "kw_probe_needs_dep.py").write_text("import kw_probe_dep  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    trial = server_common.server_import_trial
    assert trial("kw_probe_needs_dep") == server_common.TRIAL_NO_CUDA  # it imported
    assert trial("kw_probe_needs_dep", ("kw_probe_dep",)) == server_common.TRIAL_IMPORT_FAILED
    assert "kw_probe_dep" not in sys.modules and "kw_probe_needs_dep" not in sys.modules


def test_a_server_imports_trial_that_hangs_is_stopped(tmp_path, monkeypatch, capfd,
                                                      server_common):
    """A library that hangs at import cannot hang asv's forkserver: its trial is stopped at
    TRIAL_SECONDS (with what it forked), the module left to the variant's processes, and the
    server says why."""
    import sys
    import threading

    (tmp_path / "kw_probe_hangs.py").write_text("import time\ntime.sleep(3600)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(server_common, "TRIAL_SECONDS", 1.0)
    # In a thread, so that a trial that is not stopped fails this test (after 60 s, far past
    # the 1 s it is given) instead of hanging the suite for the import's hour.
    trial = threading.Thread(target=server_common._import_in_server,
                             args=("kw_probe_hangs", "cuda"), daemon=True)
    trial.start()
    trial.join(60)
    assert not trial.is_alive(), "the trial of a hanging import was not stopped"
    assert "kw_probe_hangs" not in sys.modules
    assert ("kernelwatch server import: left kw_probe_hangs to its benchmark processes (its "
            "trial outlasted 1 s; trial 1.") in capfd.readouterr().err


def test_the_server_never_asks_the_cuda_runtime_where_nvml_cannot_answer(monkeypatch):
    """A CUDA build of torch where NVML cannot answer (no driver, as torch 2.14.1 in the
    matrix on this machine; MIG devices): torch.cuda.is_available() would fall back to the
    runtime's device count, after which no fork of the server can use CUDA. The server
    asks NVML alone, and takes its silence for no GPU."""
    import sys

    benchmark_classes.load(REPO, "rope", "RopeTime")
    common = sys.modules["benchmarks.common"]
    from kernelwatch.workloads.rope import case as rope

    def runtime_asked():
        raise AssertionError("the forkserver asked the CUDA runtime for its devices")

    monkeypatch.setattr(torch.cuda, "_is_compiled", lambda: True)
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: -1)
    monkeypatch.setattr(torch._C, "_cuda_getDeviceCount", runtime_asked, raising=False)
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "run_server", "benchmarks", "socket"])
    assert not common.nvml_sees_a_gpu()
    type("_Probe", (common._Workload,), {}, workload=rope)  # RoPE declares Liger's import


def test_ropes_liger_variant_declares_the_module_its_case_imports():
    from kernelwatch.workloads.rope import spec

    module = spec.VARIANTS["liger"].server_import
    assert module == "liger_kernel.ops.rope"
    case = (REPO / "src/kernelwatch/workloads/rope/case.py").read_text()
    assert f"from {module} import LigerRopeFunction" in case


def test_the_host_s_dispatch_is_skipped_saying_why_where_the_commit_s_kernelwatch_lacks_it(
        monkeypatch):
    """asv runs the checkout's benchmarks/ against each measured commit's own kernelwatch:
    at a commit older than measure.dispatch_seconds the fact is skipped, not failed."""
    from kernelwatch import measure

    env = benchmark_classes.load(REPO, "environment", "Environment")()
    env.track_dispatch_seconds.setup()  # asv's setup of the fact alone
    assert env.track_dispatch_seconds()["samples"]
    monkeypatch.delattr(measure, "DISPATCH_SAMPLE_SECONDS")
    with pytest.raises(Unavailable, match="predates"):
        env.track_dispatch_seconds.setup()
