"""ViT VAE: the model's shapes, each variant against eager on fresh photographs, the quality
metrics, break-even, and the bad-input messages. The asv path is in test_asv_end_to_end.py;
the GPU variants (CUDA graphs, max-autotune, FP8) in the tests marked gpu, on the device."""

import math

import pytest
import torch

from kernelwatch.errors import KernelwatchError, Unavailable
from kernelwatch.report import vae as vae_report
from kernelwatch.workloads.vae import case as vae
from kernelwatch.workloads.vae import spec as vae_spec

from .conftest import REPO, requires_cuda

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

FRESH = vae.FRESH_IMAGE_OFFSET


def test_shapes_of_the_tiny_and_real_configs():
    case = vae.build_case("tiny", "encoder", "8", "eager")
    cfg = vae.CONFIGS["tiny"]
    assert case.inputs.shape == (8, 3, cfg.image, cfg.image)
    latents = case.run()
    assert latents.shape == (8, cfg.tokens, cfg.channels)
    pixels = case.model.decoder(latents)
    assert pixels.shape == (8, 3, cfg.image, cfg.image)
    # ViTok-v2's sizes: 350M-f16x64 is about 51M + 303M, 5B's decoder about 4.5B.
    assert 50e6 < vae.parameter_count("350M-f16x64", "encoder") < 52e6
    assert 300e6 < vae.parameter_count("350M-f16x64", "decoder") < 305e6
    assert 4.4e9 < vae.parameter_count("5B", "decoder") < 4.6e9
    assert vae.CONFIGS["350M-f16x64"].mlp_hidden == 2736  # 2.67 x 1024, multiple of 16


def test_inputs_are_photographs_and_fresh_ones_differ():
    timed, fresh = vae.photographs(8, 64), vae.photographs(8, 64, offset=FRESH)
    assert timed.shape == fresh.shape == (8, 3, 64, 64)
    assert -1 <= timed.min() and timed.max() <= 1
    assert not torch.equal(timed, fresh)
    # Photographs, not noise: neighbouring pixels are close far more often than not.
    step = (timed[..., 1:] - timed[..., :-1]).abs()
    assert step.median() < 0.05


def test_ssim_is_one_for_an_identical_reconstruction_and_falls_for_a_perturbed_one():
    images = vae.photographs(4, 64)
    same = vae.quality(images, images.clone())
    assert same.ssim == pytest.approx(1.0) and same.psnr == vae.PSNR_CEILING_DB
    g = torch.Generator().manual_seed(0)
    slightly = vae.quality(images + 0.02 * torch.randn(images.shape, generator=g), images)
    badly = vae.quality(images + 0.3 * torch.randn(images.shape, generator=g), images)
    assert 1.0 > slightly.ssim > badly.ssim
    assert slightly.psnr > badly.psnr
    # PSNR by hand: noise of RMS r on a range of 2 is 20 log10(2 / r) dB (before clamping).
    noise = torch.full_like(images, 0.01) * torch.where(images > 0, -1, 1)
    assert vae.quality(images + noise, images).psnr == pytest.approx(
        20 * math.log10(2 / 0.01), abs=0.01)


@pytest.mark.parametrize("part", vae_spec.PARTS)
def test_each_cpu_variant_reconstructs_fresh_photographs_like_eager(part):
    """Compiled fp32 matches eager to rounding; the quantized ones stay close in SSIM."""
    for variant in ("compile", "int8-weight-only-compile", "int8-dynamic-compile",
                    "torch-ao-int8-dynamic"):
        case = vae.build_case("tiny", part, "8", variant, image_offset=FRESH, apply=False)
        eager_out = case.module(case.inputs)
        reference = case.reconstruction(eager_out)
        case.apply_variant()
        out = case.run()
        q = vae.quality(case.reconstruction(out), reference)
        print(part, variant, q)
        if variant == "compile":
            torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-4)
            assert q.ssim >= vae.CPU_COMPILE_MIN_SSIM
        else:
            assert q.ssim >= 0.99, variant
            assert q.psnr > 35, variant


def test_break_even_is_cost_over_time_saved_per_image():
    # The write-up's own example: 60 s of compile, 50 ms saved per batch of one: 1200.
    assert vae.break_even_samples(60.0, 0.100, 0.050, 1) == pytest.approx(1200)
    # Per image: a batch of 8 that saves 40 ms saves 5 ms an image: 60 / 0.005 = 12000.
    assert vae.break_even_samples(60.0, 0.120, 0.080, 8) == pytest.approx(12000)
    assert vae.break_even_samples(60.0, 0.05, 0.06, 1) is None  # slower: never pays
    # The table's figure: first run minus eager's first run, over the caller's saving.
    rows = vae_report.rows_for(8, {
        "eager": {"time": 0.10, "caller_time": 0.12, "first_run": 1.0, "ssim": 1.0},
        "compile": {"time": 0.05, "caller_time": 0.08, "first_run": 61.0, "ssim": 0.95},
        "int8-dynamic": {"time": 0.2, "caller_time": 0.2, "first_run": 1.5}})
    by = {r["variant"]: r for r in rows}
    assert by["compile"]["cost"] == pytest.approx(60.0)
    assert by["compile"]["break_even"] == pytest.approx(12000)
    assert by["int8-dynamic"]["break_even"] == "never"
    assert by["compile"]["speedup_caller_time"] == pytest.approx(1.5)
    assert by["compile"]["below_gate"] == 0.99  # SSIM 0.95: marked, not dropped
    table = vae_report.make_tables({("tiny", "decoder", "8"): {
        "eager": {"time": 0.1}, "compile": {"time": 0.05, "ssim": 0.95}}})[0]
    assert table.row_classes == ["", "worse"]
    assert "0.9500 (below 0.99)" in table.rows[1]


def test_gpu_table_script_renders_a_recorded_device_run_on_the_cpu(tmp_path):
    # Lease 2's records (docs/findings/records/h200-records.tar.xz:vae-h200-12-01/, a folder a
    # variant): the encoder's table at batch 8, the figures vae-h200.md cites.
    import subprocess
    import sys
    import tarfile

    with tarfile.open(REPO / "docs/findings/records/h200-records.tar.xz") as archive:
        records = [m for m in archive.getmembers()
                   if m.name.startswith("vae-h200-12-01/encoder-")]
        archive.extractall(tmp_path, members=records, filter="data")
    script = [sys.executable, "scripts/vae_gpu_table.py"]
    out = subprocess.run([*script, "--table-only", "H200", "--part", "encoder", "--out",
                          str(tmp_path / "vae-h200-12-01")], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("ViT VAE 350M-f16x64 encoder on H200")
    assert "| fp8-compile | 0.0942 | 0.234 | 4265 | 1.50x | 2.36x |" in out
    assert out.count("| eager |") == 1 and out.count("| int8-weight-only") == 2


def test_gpu_table_script_sends_a_measuring_request_to_the_suite():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "scripts/vae_gpu_table.py", "--config", "5B",
                        "--batches", "8", "--variants", "fp8-compile"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert "measures nothing (--batches, --variants: a measurement's options)" in r.stderr
    assert "`kernelwatch run --existing --suite gpu-commit`" in r.stderr
    assert "`kernelwatch report --workload vae --machine M --markdown`" in r.stderr


def test_gpu_only_variants_and_unknown_names_say_why():
    if torch.cuda.is_available():
        pytest.skip("on a GPU these variants run; the GPU tests cover them")
    for variant in ("compile-reduce-overhead", "compile-max-autotune", "fp8", "fp8-compile"):
        with pytest.raises(Unavailable, match="needs a CUDA GPU"):
            vae.build_case("tiny", "decoder", "1", variant)
    with pytest.raises(KernelwatchError, match="unknown variant 'int4'.*valid variants: eager"):
        vae.build_case("tiny", "decoder", "1", "int4")
    with pytest.raises(KernelwatchError, match="unknown config '7B'.*tiny, 350M-f16x64, 5B"):
        vae.build_case("7B", "decoder", "1", "eager")
    with pytest.raises(KernelwatchError, match="unknown batch '2' for vae; valid batches: 1, 8"):
        vae.build_case("tiny", "decoder", "2", "eager")


def test_a_checkpoint_of_another_config_names_the_first_mismatched_tensor(tmp_path,
                                                                         monkeypatch):
    from safetensors.torch import save_file

    model = vae.build_model("tiny", torch.float32, torch.device("cpu"))
    good = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(good))
    monkeypatch.setenv(vae.CHECKPOINT_ENV, str(good))
    loaded = vae.build_model("tiny", torch.float32, torch.device("cpu"))
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["decoder.head.weight"] = torch.zeros(10, 64)
    bad = tmp_path / "other.safetensors"
    save_file(state, str(bad))
    monkeypatch.setenv(vae.CHECKPOINT_ENV, str(bad))
    with pytest.raises(KernelwatchError) as err:
        vae.build_model("tiny", torch.float32, torch.device("cpu"))
    assert "'decoder.head.weight' is (10, 64) there and (768, 64) here" in str(err.value)
    assert "--param config=" in str(err.value)
    monkeypatch.setenv(vae.CHECKPOINT_ENV, str(tmp_path / "missing.safetensors"))
    with pytest.raises(KernelwatchError, match="does not exist"):
        vae.build_model("tiny", torch.float32, torch.device("cpu"))


@requires_cuda
def test_gpu_every_variant_reconstructs_like_eager_and_fp8_skips_with_its_reason():
    dev = torch.device("cuda")
    fp8_ok = torch.cuda.get_device_capability() >= vae.FP8_MIN_CAPABILITY
    # Not max-autotune: its kernel search alone takes minutes of a lease, and its compile
    # path is RoPE's (tests/test_rope.py); the gpu-nightly suite measures it.
    for part in vae_spec.PARTS:
        for variant in vae.VARIANTS[1:]:
            if variant == "compile-max-autotune":
                continue
            cpu_only = vae.VARIANTS[variant].unavailable_on("cuda")
            if cpu_only or (variant.startswith("fp8") and not fp8_ok):
                with pytest.raises(Unavailable):
                    vae.build_case("tiny", part, "8", variant, dev)
                continue
            case = vae.build_case("tiny", part, "8", variant, dev, image_offset=FRESH,
                                  apply=False)
            reference = case.eager_reconstruction(case.inputs)
            case.apply_variant()
            q = vae.quality(case.reconstruction(case.run()), reference)
            print(part, variant, q)
            assert q.ssim >= 0.98, (part, variant)


@requires_cuda
def test_gpu_out_of_memory_is_one_message_naming_the_batch():
    case = vae.build_case("tiny", "decoder", "32", "eager", "cuda")
    torch.cuda.empty_cache()
    held = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    # Leave the allocator only what is already held: the next batch cannot get its memory.
    torch.cuda.set_per_process_memory_fraction((held + (1 << 20)) / total)
    try:
        with pytest.raises(KernelwatchError, match="out of memory: tiny decoder at batch 32"):
            case.run()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
