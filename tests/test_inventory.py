"""The kernel inventory reads what inductor generated: kernels it wrote, extern matmuls,
operators it left to ATen, and kernels inside the graph partitions that CUDA-graph modes
(reduce-overhead) put them in."""

import functools

import pytest
import torch
import torch.nn.functional as F

from kernelwatch import inventory

from .conftest import requires_cuda

# The shape of inductor's wrapper with graph partitions (torch 2.11 on CUDA with
# mode="reduce-overhead"): `call` runs each partition through the Runner, and an operator
# that cannot be captured (here attention) runs between them.
PARTITIONED = '''
from torch._inductor.runtime import triton_heuristics
async_compile = AsyncCompile()
triton_red_fused_rms_norm_0 = async_compile.triton('triton_red_fused_rms_norm_0', """...""")
triton_poi_fused_rope_1 = async_compile.triton('triton_poi_fused_rope_1', """...""")
triton_poi_fused_silu_mul_2 = async_compile.triton('triton_poi_fused_silu_mul_2', """...""")
async_compile.wait(globals())


def partition_0(args):
    arg0_1, arg1_1 = args
    args.clear()
    buf0 = empty_strided_cuda((4, 2048), (2048, 1), torch.bfloat16)
    triton_red_fused_rms_norm_0.run(arg0_1, buf0, 8192, 2048, stream=stream0)
    extern_kernels.mm(buf0, arg1_1, out=buf1)
    triton_poi_fused_rope_1.run(buf1, 1024, stream=stream0)
    return (buf1, )


def partition_1(args):
    buf3, arg2_1 = args
    args.clear()
    extern_kernels.mm(buf3, arg2_1, out=buf4)
    triton_poi_fused_silu_mul_2.run(buf4, 1024, stream=stream0)
    return (buf4, )


class Runner:
    def __init__(self, partitions):
        self.partitions = partitions

    def call(self, args):
        arg0_1, arg1_1, arg2_1 = args
        args.clear()
        partition0_args = [arg0_1, arg1_1]
        del arg0_1, arg1_1
        (buf1,) = self.partitions[0](partition0_args)
        del partition0_args
        buf2 = torch.ops.aten._scaled_dot_product_cudnn_attention.default(buf1, buf1, buf1)
        buf3 = buf2[0]
        assert_size_stride(buf3, (4, 2048), (2048, 1), 'torch.ops.aten.view.default')
        partition1_args = [buf3, arg2_1]
        (buf4,) = self.partitions[1](partition1_args)
        del partition1_args
        return (buf4, )


runner = Runner(partitions=[partition_0, partition_1,])
call = runner.call
recursively_apply_fns = runner.recursively_apply_fns
'''


def test_kernels_inside_graph_partitions_are_read_where_call_runs_them():
    assert inventory.kernels_of_source(PARTITIONED) == [
        "triton_red_fused_rms_norm_0", "extern_kernels.mm", "triton_poi_fused_rope_1",
        "aten._scaled_dot_product_cudnn_attention",
        "extern_kernels.mm", "triton_poi_fused_silu_mul_2"]


def test_an_operator_left_to_aten_counts_as_a_kernel_of_the_compiled_call():
    def attend(q, w):
        x = F.scaled_dot_product_attention(q.sin(), q, q)
        return (x @ w).relu() + 1

    torch._dynamo.reset()
    q, w = torch.randn(1, 2, 16, 8), torch.randn(8, 8)
    compiled = torch.compile(attend)
    found = inventory.of_first_call(lambda: compiled(q, w), torch.device("cpu"))
    assert found.source == "inductor"
    assert any(k.startswith("aten._scaled_dot_product") for k in found.kernels), found.kernels
    assert "extern_kernels.mm" in found.kernels
    assert found.count == len(found.kernels) >= 3
    assert found.launch == {}  # C++ kernels: no launch for autotuning to pick
    assert len(found.code_digest) == 16 and found.as_dict()["code_digest"] == found.code_digest


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_the_same_code_compiled_with_fresh_caches_has_one_digest(device, tmp_path):
    """Inductor names each Triton kernel's file in the compile cache in a comment of the
    module it generates: a run with fresh caches (another folder) must not read as new code."""
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    x = torch.randn(64, 128, device=device)
    digests = []
    for run in ("a", "b"):
        with temporary_cache_dir(str(tmp_path / run)):
            torch._dynamo.reset()
            compiled = torch.compile(lambda t: (t.sin() * 2).cos() + t.sum(dim=1, keepdim=True))
            call = functools.partial(compiled, x)
            digests.append(inventory.of_first_call(call, torch.device(device)))
    assert digests[0].kernels == digests[1].kernels
    assert digests[0].code_digest == digests[1].code_digest != ""


@requires_cuda
def test_each_triton_kernel_keeps_the_launch_autotuning_picked():
    """On the GPU every Triton kernel of the compiled call is kept with the configuration
    it ran with after autotuning, and the kernels file keeps it."""
    torch._dynamo.reset()
    x = torch.randn(4096, 4096, device="cuda")
    compiled = torch.compile(lambda t: (t.sin() * 2).cos() + t.sum(dim=1, keepdim=True))
    found = inventory.of_first_call(lambda: compiled(x), torch.device("cuda"))
    triton = {k for k in found.kernels if k.startswith("triton_")}
    assert triton and set(found.launch) == triton, (found.kernels, found.launch)
    assert all("num_warps=" in v and "BLOCK=" in v for v in found.launch.values()), found.launch
    assert found.as_dict()["launch"] == found.launch


def test_guards_are_counted_and_a_host_slowdown_names_the_new_ones():
    """A compiled function that reads two more Python values is guarded on them: the
    inventory counts dynamo's guards, and the explanation of a host-side slowdown between
    two commits says how many guards came with it."""
    from kernelwatch.report import explain
    from kernelwatch.results.rows import Row

    def plain(x, scale):
        return x.sin() * scale

    def guarded(x, scale, shift, tilt):
        return x.sin() * scale + shift * tilt

    x = torch.randn(8)
    counts = []
    for fn, args in ((plain, (x, 2.0)), (guarded, (x, 2.0, 1.0, 3.0))):
        torch._dynamo.reset()
        compiled = torch.compile(fn)
        found = inventory.of_first_call(functools.partial(compiled, *args), torch.device("cpu"))
        assert found.as_dict()["guards"] == found.guards
        counts.append(found.guards)
    assert 0 < counts[0] < counts[1], counts
    added = counts[1] - counts[0]

    def row(commit, track, value):
        return Row(machine="m", commit=commit, date=0, env_name="env", env={},
                   benchmark=f"w.T.{track}", params={"variant": "compile"}, unit="seconds",
                   value=value, samples=[value] * 20)

    a, b = "a" * 40, "b" * 40
    rows = [row(a, "track_time", 10e-6), row(a, "track_caller_time", 40e-6),
            row(b, "track_time", 10e-6), row(b, "track_caller_time", 58e-6)]
    inventories = {("m", c, "env", "w(compile)"): {"kernels": ["k"], "guards": g}
                   for c, g in ((a, counts[0]), (b, counts[1]))}
    why = explain.explain(rows, ("m", a), ("m", b), {("env", "w", (("variant", "compile"),))},
                          inventories)
    assert why[0].parts[0] == (f"host +18 us per call (+45% of the call): "
                               f"{added} new guard{'s' if added != 1 else ''}"), why[0].parts
    assert why[0].parts[1] == "device unchanged", why[0].parts


def test_short_kernel_names_drop_aten_noise_and_keep_two_instantiations_apart():
    # Two instantiations of one ATen template, as the H200's profiler named them, share
    # their first 60 characters; the hash of the whole name keeps them apart.
    stem = ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<"
            "at::native::BinaryFunctor<c10::BFloat16, c10::BFloat16, c10::BFloat16, ")
    copy, mul = stem + "CopyFunctor> >(int, T1)", stem + "MulFunctor> >(int, T1)"
    assert inventory.short_name(copy) != inventory.short_name(mul)
    assert inventory.short_name(copy).startswith("elementwise_kernel<128, 4, gpu_kernel")
    assert all(len(inventory.short_name(n)) <= 60 for n in (copy, mul))
    assert inventory.short_name("at::native::weight_int8pack_mm_kernel(float const*, "
                                "signed char const*, float const*, float*, int, int, int)"
                                ) == "weight_int8pack_mm_kernel"
