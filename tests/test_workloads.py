"""What kernelwatch.workloads declares for every workload: one case protocol, one vocabulary
of compile modes, and the renamed parameter values that old results are read under."""

import pytest

from kernelwatch import measure, workloads
from kernelwatch.workloads import variants
from kernelwatch.workloads._case import Case
from kernelwatch.workloads.gptq import case as gptq
from kernelwatch.workloads.llama_layer import case as llama_layer
from kernelwatch.workloads.rope import case as rope
from kernelwatch.workloads.vae import case as vae

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

LAYER = "llama_layer.LayerTime.track_time"


def test_old_llama_variant_names_read_as_the_new_ones():
    old = {"shape": "tiny", "seq_len": "128", "backend": "torch", "pass": "forward",
           "variant": "full"}
    new = workloads.rename_old_values(LAYER, old)
    assert new == {**old, "variant": "compile"}
    assert old["variant"] == "full"  # the caller's dict is left as it was
    assert workloads.rename_old_values(
        "llama_layer.LayerCompile.track_cold_compile",
        {"variant": "full-reduce-overhead"}) == {"variant": "compile-reduce-overhead"}
    # asv's result files quote string values: the quotes stay.
    assert workloads.rename_old_values(LAYER, {"variant": "'full'"}) == {
        "variant": "'compile'"}
    # Current values, other parameters and other workloads are untouched.
    for params in ({"variant": "surgical"}, {"variant": "compile"}, {"shape": "full"}):
        assert workloads.rename_old_values(LAYER, params) == params
    assert workloads.rename_old_values("rope.RopeTime.track_time", {"variant": "full"}) == \
        {"variant": "full"}
    assert workloads.rename_old_values("environment.Environment.track_cpu_affinity", {}) == {}
    assert workloads.rename_old_values("nope.Nope.track_x", {"variant": "full"}) == \
        {"variant": "full"}


def test_every_rename_leads_from_a_retired_value_to_a_current_one():
    """A renamed value is no longer valid and its new name is: so a result read through
    the table lands on a parameter asv still runs, and no current value is rewritten."""
    for name in workloads.WORKLOADS:
        spec = workloads.get(name)
        for param, table in workloads.renamed_values(f"{name}.X.track_y").items():
            assert param in spec.params, (name, param)
            for old, new in table.items():
                assert old not in spec.params[param] and new in spec.params[param], (
                    name, param, old, new)
    assert workloads.renamed_values(LAYER) == llama_layer.SPEC.renamed


def test_one_answer_to_which_variants_are_compiled():
    compiled = {name: {v.name for v in workloads.get(name).variants.values() if v.compiled}
                for name in workloads.WORKLOADS}
    assert compiled == {
        "gpt2": {"compile"},
        "gptq": {"compile-block", "compile-column"},
        "llama_layer": {"surgical", "compile", "compile-reduce-overhead"},
        "rope": {"compile", "compile-dynamic", "compile-max-autotune"},
        "vae": {"compile", "compile-reduce-overhead", "compile-max-autotune",
                "int8-weight-only-compile", "int8-dynamic-compile", "fp8-compile"},
    }
    # One name for the CUDA-graph mode, where a workload offers it.
    assert {"compile-reduce-overhead"} <= set(vae.VARIANTS) & set(llama_layer.VARIANTS)
    for name in ("compile", "compile-max-autotune", "compile-reduce-overhead"):
        assert name in variants.COMPILE_MODES


CASES = {
    "rope": lambda: rope.build_case("tiny", "rotate-half", "float32", "eager", "cpu"),
    "gptq": lambda: gptq.build_case("tiny/proj", "w4-sym-g128", "16", "eager", "cpu"),
    "vae": lambda: vae.build_case("tiny", "decoder", "1", "eager", "cpu"),
    "llama_layer": lambda: llama_layer.build_case("tiny", "128", "torch", "forward-backward",
                                                  "eager", "cpu"),
}


@pytest.mark.parametrize("workload", CASES)
def test_every_timed_case_follows_the_one_protocol(workload):
    """What benchmarks/common.py's mixins use: a call per input set, run(), first_run(),
    the device-time method it declares, and the timers taking call and input sets."""
    case = CASES[workload]()
    assert isinstance(case, Case)
    assert case.device_method in measure.DECLARED_METHODS
    assert len(case.input_sets) >= 1
    out = case.call(*case.input_sets[0])
    assert measure.accuracy(case.run(), out).rel_l2 == 0  # run() is that same call
    case.first_run()
    timed = measure.time_device(case.call, case.input_sets, case.device,
                                method=case.device_method, samples=3, warmup=1)
    assert len(timed.per_call_seconds) == 3 and timed.median > 0
