"""Llama layer: the layer is Hugging Face's LlamaDecoderLayer (checked against it in float64);
every CPU variant's output and gradients match eager on fresh inputs, with the float64 error
reported per variant; the profiler share; checkpoints; the bad-input messages. The asv path
is in test_asv_end_to_end.py; the GPU variants in the tests marked gpu, on the device."""

import pytest
import torch

from kernelwatch import measure
from kernelwatch.errors import KernelwatchError, Unavailable
from kernelwatch.regression import benchmark_classes
from kernelwatch.report import llama_layer as layer_report
from kernelwatch.workloads.llama_layer import case as llama_layer
from kernelwatch.workloads.llama_layer import spec as llama_layer_spec

from .conftest import REPO, requires_cuda

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

CPU_VARIANTS = [v for v, d in llama_layer.VARIANTS.items() if d.unavailable_on("cpu") is None]
# fp32 on the CPU: a compiled layer reorders sums, nothing more.
CPU_REL_L2_VS_EAGER = 1e-5


def test_the_layer_is_hugging_faces_llama_decoder_layer():
    """Same weights, float64: our layer (fused QKV and gate/up, enable_gqa) against
    transformers' LlamaDecoderLayer with its rotary embedding and SDPA attention."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaDecoderLayer,
        LlamaRotaryEmbedding,
    )

    s = llama_layer.SHAPES["tiny"]
    cfg = LlamaConfig(hidden_size=s.hidden, num_attention_heads=s.heads,
                      num_key_value_heads=s.kv_heads, head_dim=s.head_dim,
                      intermediate_size=s.intermediate, rope_theta=s.rope_theta,
                      rms_norm_eps=s.rms_eps, attention_bias=False, mlp_bias=False)
    cfg._attn_implementation = "sdpa"
    hf = LlamaDecoderLayer(cfg, layer_idx=0).double()
    w = llama_layer.load_weights("tiny")
    q, k, v = w["qkv.weight"].split([s.heads * s.head_dim, s.kv_heads * s.head_dim,
                                     s.kv_heads * s.head_dim])
    gate, up = w["gate_up.weight"].chunk(2)
    with torch.no_grad():
        for name, t in {"input_layernorm.weight": w["input_norm.weight"],
                        "self_attn.q_proj.weight": q, "self_attn.k_proj.weight": k,
                        "self_attn.v_proj.weight": v, "self_attn.o_proj.weight": w["o_proj.weight"],
                        "post_attention_layernorm.weight": w["post_norm.weight"],
                        "mlp.gate_proj.weight": gate, "mlp.up_proj.weight": up,
                        "mlp.down_proj.weight": w["down.weight"]}.items():
            hf.get_parameter(name).copy_(t)
    ours = llama_layer.torch_layer("tiny", w, torch.float64, torch.device("cpu"))
    x = torch.randn(2, 32, s.hidden, dtype=torch.float64)
    positions = torch.arange(32).expand(2, 32)
    cos, sin = LlamaRotaryEmbedding(cfg)(x, positions)
    mine_cos, mine_sin = llama_layer.rope_tables(
        llama_layer.LayerShape(**{**s.__dict__, "batch": 2}), 32, torch.float64, x.device)
    assert measure.accuracy(cos, mine_cos).rel_l2 < 1e-6  # HF computes angles in float32
    with torch.no_grad():
        want = hf(x, position_embeddings=(mine_cos, mine_sin))
        got = ours(x, mine_cos, mine_sin)
    assert measure.accuracy(got, want).rel_l2 < 1e-12


@pytest.mark.parametrize("pass_", llama_layer_spec.PASSES)
@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_each_cpu_variant_matches_eager_on_fresh_inputs(variant, pass_, fresh_seed):
    case = llama_layer.build_case("tiny", "128", "torch", pass_, variant, "cpu")
    inputs = case.fresh_inputs(seed=fresh_seed)
    got = case.call(*inputs)
    eager = llama_layer.eager_of(case).call(*inputs)
    exact = llama_layer.float64_reference(case, inputs)
    if pass_ == "forward":
        got, eager, exact = (got,), (eager,), (exact,)
    out_vs_eager = measure.accuracy(got[0], eager[0])
    out_vs_f64 = measure.accuracy(got[0], exact[0])
    print(f"{variant} {pass_}: output rel. L2 vs eager {out_vs_eager.rel_l2:.2g}, "
          f"vs float64 {out_vs_f64.rel_l2:.2g}")
    assert out_vs_eager.within(CPU_REL_L2_VS_EAGER)
    assert out_vs_f64.within(CPU_REL_L2_VS_EAGER)
    if pass_ == "forward-backward":
        # the input's gradient and one per weight tensor
        assert len(got) == 1 + 1 + len(list(case.layer.parameters()))
        grads_vs_eager = measure.accuracy(got[1:], eager[1:])
        grads_vs_f64 = measure.accuracy(got[1:], exact[1:])
        print(f"  gradients rel. L2 vs eager {grads_vs_eager.rel_l2:.2g}, "
              f"vs float64 {grads_vs_f64.rel_l2:.2g}")
        assert grads_vs_eager.within(CPU_REL_L2_VS_EAGER)
        assert grads_vs_f64.within(CPU_REL_L2_VS_EAGER)


def test_a_broken_layer_fails_the_check(fresh_seed):
    """The tolerance catches a real bug: RoPE's sin with the wrong sign."""
    case = llama_layer.build_case("tiny", "128", "torch", "forward", "eager", "cpu")
    x, cos, sin, grad = case.fresh_inputs(seed=fresh_seed)
    good = case.call(x, cos, sin, grad)
    broken = case.call(x, cos, -sin, grad)
    assert not measure.accuracy(broken, good).within(CPU_REL_L2_VS_EAGER)


def test_profiler_share_of_the_surgical_region():
    case = llama_layer.build_case("tiny", "128", "torch", "forward", "eager", "cpu",
                                  label_regions=True)
    share = measure.region_share(case.run, llama_layer.LAYER_LABEL,
                                 llama_layer.SURGICAL_LABEL, case.device, calls=3)
    assert 0 < share < 1
    unlabelled = llama_layer.build_case("tiny", "128", "torch", "forward", "eager", "cpu")
    with pytest.raises(KernelwatchError, match="no range named kernelwatch.layer"):
        measure.region_share(unlabelled.run, llama_layer.LAYER_LABEL,
                             llama_layer.SURGICAL_LABEL, case.device, calls=1, warmup=0)


def test_the_random_weights_are_the_ones_the_history_was_measured_with():
    """Recorded accuracy values hold for these weights: the seed, the order of the draws
    and the scale are part of what a result means (the sums as drawn before the weights
    were kept per process)."""
    w = llama_layer.load_weights("tiny")
    assert float(w["qkv.weight"].double().sum()) == pytest.approx(-1.3469198326242804, rel=1e-12)
    assert float(w["o_proj.weight"].double().abs().sum()) == pytest.approx(65.75311077015795,
                                                                           rel=1e-12)
    assert torch.equal(w["input_norm.weight"], torch.ones(64))
    w["qkv.weight"] = None  # a caller's dict is its own; the kept weights are not touched
    assert llama_layer.load_weights("tiny")["qkv.weight"] is not None


def test_shapes_flops_and_parameter_counts():
    # Llama-3.2-1B: 16 layers of about 60.8M (embeddings aside); 3.1-8B: 32 of about 218M.
    assert 60e6 < llama_layer.parameter_count("llama-3.2-1b") < 61e6
    assert 218e6 < llama_layer.parameter_count("llama-3.1-8b") < 219e6
    fwd = llama_layer_spec.flops_for({"shape": "llama-3.1-8b", "seq_len": "2048",
                                 "pass": "forward"})
    assert 0.9e12 < fwd < 1.0e12  # 2 x 2048 tokens x 218M weights + causal attention
    both = llama_layer_spec.flops_for({"shape": "llama-3.1-8b", "seq_len": "2048",
                                  "pass": "forward-backward"})
    assert both == 3 * fwd


def test_checkpoint_loads_and_a_wrong_one_names_the_tensor(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    weights = {k: torch.randn(shape) for k, shape in llama_layer.weight_names("tiny").items()}
    good = tmp_path / "tiny.safetensors"
    save_file(weights, str(good))
    monkeypatch.setenv(llama_layer.CHECKPOINT_ENV, str(good))
    loaded = llama_layer.load_weights("tiny")
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    wrong = tmp_path / "wrong.safetensors"
    save_file({**weights, "qkv.weight": torch.randn(8, 64)}, str(wrong))
    monkeypatch.setenv(llama_layer.CHECKPOINT_ENV, str(wrong))
    with pytest.raises(KernelwatchError, match=r"qkv.weight is \(8, 64\), the layer needs "
                                               r"\(128, 64\)"):
        llama_layer.load_weights("tiny")
    monkeypatch.setenv(llama_layer.CHECKPOINT_ENV, str(tmp_path / "absent.safetensors"))
    with pytest.raises(KernelwatchError, match="no such file"):
        llama_layer.load_weights("tiny")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KernelwatchError, match="unknown backend 'jax'.*torch, te"):
        llama_layer.build_case("tiny", "128", "jax", "forward", "eager")
    with pytest.raises(KernelwatchError, match="unknown variant 'partial'.*eager, surgical, "
                                               "compile, compile-reduce-overhead"):
        llama_layer.build_case("tiny", "128", "torch", "forward", "partial")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_gpu_only_choices_are_skipped_with_the_reason_on_cpu():
    with pytest.raises(Unavailable, match="needs a CUDA GPU: reduce-overhead"):
        llama_layer.build_case("tiny", "128", "torch", "forward", "compile-reduce-overhead")
    with pytest.raises(Unavailable, match="te backend needs a CUDA GPU"):
        llama_layer.build_case("tiny", "128", "te", "forward", "eager")


def test_the_kernel_inventory_counts_what_whole_layer_compilation_fused():
    """LayerKernels through the asv class: compile launches fewer kernels than eager runs
    operators, its matmuls and the attention ATen runs among them; surgical compiles RoPE
    into one kernel for q and k."""
    cls = benchmark_classes.load(REPO, "llama_layer", "LayerKernels")
    counts = {}
    for variant in ("eager", "surgical", "compile"):
        torch._dynamo.reset()  # a first call, as in asv's fresh process, after other tests
        bench, params = cls(), ("tiny", "128", "torch", "forward", variant)
        bench.setup(*params)
        counts[variant] = bench.track_kernel_count(*params)
    assert 0 < counts["surgical"] < counts["compile"] < counts["eager"], counts


def test_table_rows_speedups_gate_and_writeup_figures():
    metrics = {"eager": {"time": 0.042, "caller_time": 0.043, "share": 0.14},
               "surgical": {"time": 0.0355, "caller_time": 0.036, "vs_eager": 0.004},
               "compile": {"time": 0.03, "vs_eager": 0.5}}
    rows = layer_report.rows_for("llama-3.2-1b", metrics)
    assert [r["variant"] for r in rows] == ["eager", "surgical", "compile"]
    surgical = rows[1]
    assert surgical["speedup_time"] == pytest.approx(0.042 / 0.0355)
    assert surgical["writeup"].startswith("1.184x (14% tensor ops")
    assert rows[2]["gate"] and "0.5 > 0.02" in rows[2]["gate"]
    table = layer_report.make_tables({("llama-3.2-1b", "2048", "torch", "forward"): metrics})
    assert table[0].row_classes == ["", "", "worse"]
    assert table[0].title.startswith("Llama layer llama-3.2-1b (batch 4, sequence 2048)")
    # TE's FP8 linears: two correct layers differ by FP8's own rounding (0.016-0.10 on the
    # H200), so their gate is wider; a broken layer (0.5) still fails it.
    fp8 = {"eager": {"time": 0.0015}, "surgical": {"time": 0.0013, "vs_eager": 0.083},
           "compile": {"time": 0.001, "vs_eager": 0.5}}
    te_rows = layer_report.rows_for("llama-3.2-3b", fp8, "te")
    assert te_rows[1]["gate"] is None and "0.5 > 0.15" in te_rows[2]["gate"]
    assert layer_report.rows_for("llama-3.2-3b", fp8)[1]["gate"]  # torch linears: 0.02


def test_gpu_table_script_renders_a_recorded_device_run_on_the_cpu(tmp_path):
    # The H200's compiled-share records (docs/findings/records/h200-records.tar.xz:
    # llama-h200/share-llama-3.2-1b/, one JSON a case): one table per backend, the figures
    # llama-layer-h200.md cites, each row as wide as its header.
    import subprocess
    import sys
    import tarfile

    with tarfile.open(REPO / "docs/findings/records/h200-records.tar.xz") as archive:
        records = [m for m in archive.getmembers()
                   if m.name.startswith("llama-h200/share-llama-3.2-1b/case-")]
        archive.extractall(tmp_path, members=records, filter="data")
    out = subprocess.run([sys.executable, "scripts/llama_gpu_table.py", "--table-only", "H200",
                          "--shape", "llama-3.2-1b", "--out",
                          str(tmp_path / "llama-h200/share-llama-3.2-1b")], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("Llama layer llama-3.2-1b, sequence 2048, on H200")
    assert "te linears, forward" in out and "torch linears, forward" in out
    assert "| surgical | 1.26 | 2.583 | 1.22x | 0.80x |" in out
    assert "| eager | 2.62 | 2.822 | 1.00x | 1.00x |  | 12.0% |" in out
    rows = [line.replace("\\|", "") for line in out.splitlines() if line.startswith("|")]
    assert len(rows) == 8 and len({row.count("|") for row in rows}) == 1
    # The records do not name their shape; the table the run wrote beside them does.
    folder = tmp_path / "llama-h200/share-llama-3.2-1b"
    (folder / "table-llama-3.2-1b.md").write_text(
        "Llama layer llama-3.2-1b, sequence 2048, on NVIDIA H200 (torch 2.11.0+cu130)\n")
    script = [sys.executable, "scripts/llama_gpu_table.py", "--table-only", "H200", "--out",
              str(folder)]
    assert subprocess.run(script, cwd=REPO, capture_output=True, text=True,
                          check=True).stdout == out
    wrong = subprocess.run([*script, "--shape", "llama-3.1-8b"], cwd=REPO, capture_output=True,
                           text=True)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "--shape llama-3.1-8b: the tables the run wrote" in wrong.stderr
    assert "name llama-3.2-1b; leave --shape out" in wrong.stderr
    (folder / "table-llama-3.1-8b.md").write_text("Llama layer llama-3.1-8b, sequence 2048\n")
    two = subprocess.run(script, cwd=REPO, capture_output=True, text=True)
    assert two.returncode == 2 and "name llama-3.1-8b and llama-3.2-1b: one folder" in two.stderr


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("pass_", llama_layer_spec.PASSES)
@pytest.mark.parametrize("variant", llama_layer.VARIANTS)
def test_gpu_variants_match_eager_in_bf16(variant, pass_, fresh_seed):
    case = llama_layer.build_case("llama-3.2-1b", "512", "torch", pass_, variant, "cuda")
    inputs = case.fresh_inputs(seed=fresh_seed)
    got = case.call(*inputs)
    eager = llama_layer.eager_of(case).call(*inputs)
    got, eager = (got, eager) if pass_ == "forward-backward" else ((got,), (eager,))
    err = measure.accuracy(got, eager)
    print(f"{variant} {pass_}: rel. L2 vs eager {err.rel_l2:.3g}, max |diff| {err.max_abs:.3g}")
    assert err.within(llama_layer_spec.REL_L2_VS_EAGER_GATE)
