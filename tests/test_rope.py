"""RoPE: every variant agrees with float64 on fresh random inputs; the check itself fails
on a broken RoPE; the reference agrees with an independent complex-number formulation."""

import pytest
import torch

from kernelwatch import measure
from kernelwatch.errors import KernelwatchError, Unavailable
from kernelwatch.workloads.rope import case as rope

from .conftest import requires_cuda

CPU_VARIANTS = ["eager", "compile", "compile-dynamic"]


def check_case(shape, form, dtype, variant, device, seed):
    case = rope.build_case(shape, form, dtype, variant, device, seed=seed)
    inputs = case.fresh_inputs(seed + 1)
    reference = rope.reference(form, inputs)  # first: liger rotates its inputs in place
    err = measure.accuracy(case.fn(*inputs), reference)
    tol = rope.REL_L2_TOLERANCE[dtype]
    assert err.within(tol), f"{variant} {form} {dtype}: rel L2 {err.rel_l2:.3g} > {tol}"
    return err


@pytest.mark.parametrize("form", rope.FORMS)
@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_cpu_variants_match_float64(form, variant, fresh_seed):
    check_case("tiny", form, "float32", variant, "cpu", fresh_seed)


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("form", rope.FORMS)
@pytest.mark.parametrize("variant", rope.VARIANTS)
def test_gpu_variants_match_float64(dtype, form, variant, fresh_seed):
    if variant == "liger" and form == "interleaved":
        pytest.skip("liger implements the rotate-half form only")
    try:
        check_case("llama-3.1-8b", form, dtype, variant, "cuda", fresh_seed)
    except Unavailable as exc:  # te-fused on a GPU machine without TransformerEngine
        pytest.skip(str(exc))


def _complex_reference(form, q, k, shape):
    """RoPE as multiplication by e^{i*theta}: independent of rotate_half and pair stacking."""
    theta = rope.angles(shape)
    rot = torch.polar(torch.ones_like(theta), theta)  # [S, D/2]
    out = []
    for x in (q.double(), k.double()):
        if form == "interleaved":
            z = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())
            out.append(torch.view_as_real(z * rot).flatten(-2))
        else:
            half = x.shape[-1] // 2
            z = torch.complex(x[..., :half], x[..., half:])
            y = z * rot
            out.append(torch.cat((y.real, y.imag), dim=-1))
    return out


@pytest.mark.parametrize("form", rope.FORMS)
def test_reference_matches_complex_rotation(form, fresh_seed):
    shape = rope.SHAPES["tiny"]
    g = torch.Generator().manual_seed(fresh_seed)
    inputs = rope.make_inputs(shape, form, torch.float64, "cpu", g)
    got = rope.reference(form, inputs)
    want = _complex_reference(form, inputs[0], inputs[1], shape)
    assert measure.accuracy(got, want).rel_l2 < 1e-12


def test_broken_rope_fails_the_check(fresh_seed):
    """The tolerance must catch a real bug: a sign error in sin, or a missing rotation."""
    shape = rope.SHAPES["tiny"]
    g = torch.Generator().manual_seed(fresh_seed)
    q, k, cos, sin = rope.make_inputs(shape, "rotate-half", torch.float32, "cpu", g)
    ref = rope.reference("rotate-half", (q, k, cos, sin))
    wrong_sign = rope.rope_rotate_half(q, k, cos, -sin)
    no_rotation = (q * cos.unsqueeze(1), k * cos.unsqueeze(1))
    for broken in (wrong_sign, no_rotation):
        assert not measure.accuracy(broken, ref).within(rope.REL_L2_TOLERANCE["float32"])


def test_bytes_moved_counts_q_k_and_tables():
    s = rope.SHAPES["llama-3.1-8b"]
    qk = 1 * (32 + 8) * 2048 * 128
    assert rope.bytes_moved(s, "rotate-half", "bfloat16") == (2 * qk + 2 * 2048 * 128) * 2
    assert rope.bytes_moved(s, "interleaved", "float32") == (2 * qk + 2 * 2048 * 64) * 4


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KernelwatchError, match="unknown variant 'nope'.*eager, compile"):
        rope.build_case("tiny", "rotate-half", "float32", "nope")
    with pytest.raises(KernelwatchError, match="unknown shape 'llama-9b'.*llama-3.1-8b"):
        rope.build_case("llama-9b", "rotate-half", "float32", "eager")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
@pytest.mark.parametrize("variant", ["compile-max-autotune", "te-fused", "liger", "triton"])
def test_gpu_only_variants_are_skipped_with_reason_on_cpu(variant):
    with pytest.raises(Unavailable, match="needs a CUDA GPU"):
        rope.build_case("tiny", "rotate-half", "float32", variant, "cpu")
    assert issubclass(Unavailable, NotImplementedError)  # what asv records as skipped


def test_half_dtypes_are_not_measured_on_cpu():
    with pytest.raises(Unavailable, match="float32"):
        rope.build_case("tiny", "rotate-half", "bfloat16", "eager", "cpu")


INTERPRETED_KERNEL = """
import itertools, sys, torch
from kernelwatch import measure
from kernelwatch.workloads.rope import kernels as kernel
from kernelwatch.workloads.rope import case as rope
from kernelwatch.workloads.rope.spec import RopeShape
seed = int(sys.argv[1])
# odd sizes: 3 batch rows, 5 q heads to 1 kv head, 37 positions, head size 80; and a shape
# whose kv heads a group count does not divide
# (the interpreter's cost is per program: positions per program are not cut down for SMs)
kernel.TRITON_PROGRAMS_PER_SM = 0
cases = [(1, rope.SHAPES["tiny"]), (1, RopeShape(3, 5, 1, 37, 80, 1e4)),
         (3, RopeShape(2, 6, 4, 33, 64, 1e4))]
for (groups, shape), form in itertools.product(cases, rope.FORMS):
    kernel.TRITON_HEAD_GROUPS = groups
    inputs = rope.make_inputs(shape, form, torch.float32, "cpu",
                              torch.Generator().manual_seed(seed))
    got = kernel.rope_triton(*inputs, interleaved=form == "interleaved")
    err = measure.accuracy(got, rope.reference(form, inputs))
    assert err.within(rope.REL_L2_TOLERANCE["float32"]), (groups, shape, form, err)
print("ok")
"""


def test_reference_kernel_matches_float64_under_the_triton_interpreter(fresh_seed):
    """The `triton` variant's kernel on the CPU through Triton's interpreter (the variant
    itself is GPU-only): both forms, odd sizes, the heads in one group and in three. The
    interpreter runs the kernel's indexing and masks as written; speed is the GPU's."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton", reason="Triton's interpreter comes with the triton package")
    r = subprocess.run([sys.executable, "-c", INTERPRETED_KERNEL, str(fresh_seed)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TRITON_INTERPRET": "1"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_reference_kernel_compiles_for_an_h200_on_the_cpu_and_counts_its_programs_per_sm():
    """The kernel built ahead of time for sm_90 by Triton's own ptxas, with no GPU: its
    registers a thread, and the programs an SM holds by registers or by warps (the second
    lease's 4096-element, 8-warp configuration read 43% of the copy bandwidth at 1B; its 132
    registers leave one 8-warp program an SM)."""
    pytest.importorskip("triton", reason="ahead-of-time compiles come with the triton package")
    from kernelwatch.workloads.rope import kernels as kernel

    assert kernel.ResourceUsage(132, 0, 0, num_warps=8).programs_per_sm == 1
    assert kernel.ResourceUsage(80, 0, 0, num_warps=8).programs_per_sm == 3
    assert kernel.ResourceUsage(16, 0, 0, num_warps=8).programs_per_sm == 8  # 64 warps
    tiny = rope.SHAPES["tiny"]
    for form in rope.FORMS:
        usage = kernel.resource_usage(tiny.batch, tiny.q_heads, tiny.kv_heads, tiny.seq_len,
                                      tiny.head_dim // 2, interleaved=form == "interleaved")
        assert 0 < usage.registers <= 255 and usage.num_warps == kernel.TRITON_NUM_WARPS
        assert 1 <= usage.programs_per_sm <= kernel.WARPS_PER_SM // usage.num_warps


def test_gpu_table_script_renders_a_recorded_device_run_on_the_cpu(tmp_path):
    # The H200 run's records (docs/findings/records/h200-records.tar.xz:rope-h200-12-02/rope.json):
    # the table renders without a GPU, best variant first, the reference kernel named, te-fused
    # among the rows.
    import subprocess
    import sys
    import tarfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with tarfile.open(root / "docs/findings/records/h200-records.tar.xz") as archive:
        archive.extract("rope-h200-12-02/rope.json", tmp_path, filter="data")
    out = subprocess.run([sys.executable, "scripts/rope_gpu_table.py", "--table-only", "H200",
                          "--out", str(tmp_path / "rope-h200-12-02")], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("RoPE on H200, copy bandwidth 4227 GB/s")
    assert "RoPE llama-3.1-8b rotate-half bfloat16: best variant triton" in out
    assert "compile reaches 59% of the reference kernel (triton)" in out
    assert out.count("| te-fused |") == 6
