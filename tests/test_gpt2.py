"""GPT-2 generate: the variants do what their names say, on the real model (GPT-2 small,
random weights, a short generation). The asv path is in test_asv_end_to_end.py."""

import json
import subprocess

import pytest
import torch
from torch import nn

from kernelwatch.errors import KernelwatchError, Unavailable
from kernelwatch.workloads.gpt2 import case as gpt2

from .conftest import REPO, kernelwatch_exe, requires_cuda

SMALL = ("gpt2", "10", "16", "1")


@pytest.fixture(scope="module")
def fp32_case():
    return gpt2.build_case(*SMALL, "fp32")


def dynamic_linears(model: nn.Module) -> list[str]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return [name for name, m in model.named_modules() if isinstance(m, DynamicLinear)]


def test_int8_dynamic_quantizes_every_transformer_linear_and_the_seed_way_only_lm_head():
    from transformers.pytorch_utils import Conv1D

    case = gpt2.build_case(*SMALL, "int8-dynamic")
    model = case.generator.model
    linears = dynamic_linears(model)
    # 12 blocks x (c_attn, c_proj, mlp.c_fc, mlp.c_proj) = 48, plus lm_head.
    assert len(linears) == 49 and "lm_head" in linears
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    # The two embeddings are quantized weight-only too: 51 modules in all.
    assert case.generator.quantized_modules == 51

    seed_way = gpt2.build_case(*SMALL, "int8-dynamic-as-seed").generator
    assert dynamic_linears(seed_way.model) == ["lm_head"]
    assert seed_way.quantized_modules == 1
    assert sum(isinstance(m, Conv1D) for m in seed_way.model.modules()) == 48


def test_conv1d_to_linear_computes_the_same(fresh_seed):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(fresh_seed)
    parent = nn.Sequential(Conv1D(48, 32))
    x = torch.randn(3, 5, 32)
    before = parent(x)
    assert gpt2.conv1d_to_linear(parent) == 1
    assert isinstance(parent[0], nn.Linear)
    torch.testing.assert_close(parent(x), before)


def test_onnx_fp32_greedy_tokens_equal_fp32_and_the_decode_step_reads_the_kv_cache(fp32_case):
    case = gpt2.build_case(*SMALL, "onnx-fp32")
    inputs = {i.name: i.shape for i in case.generator.session.get_inputs()}
    # One graph, three inputs: the new token(s) and the cache of every earlier token.
    assert list(inputs) == ["input_ids", "past_keys", "past_values"]
    assert inputs["past_keys"][0] == 12 and inputs["past_keys"][3] == "past"
    assert case.generate() == fp32_case.generate()
    ref = gpt2.Reference(fp32_case.generate(), fp32_case.generator.prompt_logits(case.prompt))
    agreement = case.agreement(ref)
    assert agreement.token_match == 1.0 and agreement.max_logit_diff < 1e-3


def test_int8_model_files_are_about_a_third_of_fp32_or_less(fp32_case):
    """GPT-2 small's 50257 x 768 embedding is a quarter of its weights. Both INT8 variants
    store it twice once quantized (as the embedding and as lm_head, which fp32 shares), so
    their files are 33% of fp32's; for XL the embedding is 5% of the weights and INT8 ~26%."""
    fp32 = fp32_case.size_on_disk()
    assert 490e6 < fp32 < 510e6  # 124M parameters x 4 bytes, the tied embedding once
    int8 = gpt2.build_case(*SMALL, "int8-dynamic").size_on_disk()
    onnx_int8 = gpt2.build_case(*SMALL, "onnx-int8").size_on_disk()
    assert int8 / fp32 <= 0.34
    assert onnx_int8 / fp32 <= 0.34


def test_timed_generations_measure_every_token(fp32_case):
    fp32_case.warm_up()
    runs = fp32_case.timed_generations()
    assert len(runs) >= 2
    for r in runs:
        assert len(r.arrivals) == 16 and len(r.decode_intervals) == 15
        assert 0 < r.ttft < r.total


def test_a_timed_generation_after_the_warm_up_compiles_nothing():
    """The static KV cache of `compile` is sized by the generation's N new tokens: a
    warm-up of fewer left a recompile to the first timed step (26-36 s on an H100)."""
    case = gpt2.build_case(*SMALL, "compile")
    case.warm_up()
    with torch.compiler.set_stance("fail_on_recompile"):
        runs = case.timed_generations()
    assert len(runs) >= 2 and all(len(r.arrivals) == 16 for r in runs)


def test_a_checkpoint_directory_loads_and_a_wrong_one_is_one_clear_error(tmp_path, monkeypatch,
                                                                       fp32_case):
    saved = tmp_path / "small"
    fp32_case.generator.model.save_pretrained(saved)
    monkeypatch.setenv(gpt2.CHECKPOINT_ENV, str(saved))
    assert gpt2.build_case(*SMALL, "fp32").generate() == fp32_case.generate()

    with pytest.raises(KernelwatchError, match="is not gpt2-xl: n_layer 12 \\(want 48\\)"):
        gpt2.build_case("gpt2-xl", "10", "16", "1", "fp32")
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(KernelwatchError, match="holds a 'llama' model, not GPT-2"):
        gpt2.check_checkpoint(llama, "gpt2")
    # The CLI checks before asv starts: one message, exit 2.
    monkeypatch.delenv(gpt2.CHECKPOINT_ENV)
    r = subprocess.run([kernelwatch_exe(), "run", "--workload", "gpt2", "--param",
                        f"checkpoint={llama}", "--param", "size=gpt2", "--dry-run"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"kernelwatch: error: {llama} holds a 'llama' model, not "
                                "GPT-2; pass a GPT-2 checkpoint directory")


def test_gpu_only_and_cpu_only_variants_say_why():
    if torch.cuda.is_available():
        with pytest.raises(Unavailable, match="CPU only"):
            gpt2.build_case(*SMALL, "int8-dynamic", "cuda")
    else:
        with pytest.raises(Unavailable, match="needs a CUDA GPU"):
            gpt2.build_case(*SMALL, "bf16")


@requires_cuda
def test_gpu_variants_generate_and_agree_with_bf16():
    ref = gpt2.reference("gpt2", "10", "16", torch.device("cuda"))
    for variant in ("bf16", "compile", "torchao-int8-weight-only"):
        case = gpt2.build_case(*SMALL, variant, "cuda")
        agreement = case.agreement(ref)
        print(variant, agreement)
        assert agreement.max_logit_diff < 1.0, variant
