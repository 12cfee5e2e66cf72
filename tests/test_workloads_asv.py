"""Each workload's asv classes (benchmarks/<workload>.py) through real asv in a fresh clone,
with their summary tables; GPTQ's compile budget. Slow: minutes."""

from pathlib import Path

import pytest

from kernelwatch.results import rows as result_rows
from kernelwatch.workloads.gpt2 import case as gpt2
from kernelwatch.workloads.llama_layer import spec as llama_layer_spec
from kernelwatch.workloads.vae import case as vae

from .conftest import git, kernelwatch_exe, run

pytestmark = pytest.mark.slow
def test_gptq_quick_run_through_asv_and_its_summary(clone, isolated_home):
    """GPTQ's tiny shape through real asv and torch.compile in a matrix environment: the
    steady time, the first run (cold compile), agreement with eager, and the write-up shaped
    summary in `kernelwatch report` and on the published page."""
    r = run([kernelwatch_exe(), "run", "--quick", "--workload", "gptq", "--torch", "2.13.0",
             "HEAD^!"], clone)
    assert r.returncode == 0
    head = git("rev-parse", "HEAD", cwd=clone)
    quick = {"shape": "tiny/proj", "scheme": "w4-sym-g128", "blocksize": "16"}
    rows = {(r.benchmark, r.params["variant"]): r for r in result_rows.load(clone / "results")
            if r.commit == head and r.benchmark.startswith("gptq.")
            and quick.items() <= r.params.items()}
    for variant in ("eager", "compile-block"):
        assert rows[("gptq.GptqTime.track_time", variant)].median > 0
        assert rows[("gptq.GptqTime.track_time", variant)].samples
        assert rows[("gptq.GptqAccuracy.track_identical_codes", variant)].value >= 0.995
        assert 0 < rows[("gptq.GptqAccuracy.track_output_error", variant)].value < 0.2
    first = rows[("gptq.GptqFirstRun.track_first_run", "compile-block")].value
    assert first > 10 * rows[("gptq.GptqTime.track_time", "compile-block")].median  # compiles
    assert rows[("gptq.GptqCompile.track_recompiles", "compile-block")].value is not None

    r = run([kernelwatch_exe(), "report"], clone)
    assert r.returncode == 0
    assert "-- GPTQ tiny, w4-sym-g128" in r.stdout
    assert "first run" in r.stdout and "compile OH" in r.stdout
    r = run([kernelwatch_exe(), "publish"], clone)
    assert r.returncode == 0
    page = (clone / "html" / "kernelwatch" / "writeups.html").read_text()
    assert "GPTQ tiny, w4-sym-g128: per layer type and per decoder layer" in page


def test_gpt2_every_variant_through_asv_and_its_table(clone, isolated_home):
    """GPT-2 small through real asv in a matrix environment (torch 2.13.0, its pinned
    transformers / onnxruntime / torchao), every variant, 16 new tokens: the decode step,
    the model on disk and token agreement with fp32; then the write-up shaped table."""
    # Each GPT-2 process costs ~20 s here, so each metric runs for the variants it checks
    # and every variant goes through asv in at least one: 12 processes rather than 27.
    case_flags = ["--param", "size=gpt2", "--param", "prompt_tokens=10", "--param",
                  "new_tokens=16", "--param", "threads=1", "--torch", "2.13.0", "HEAD^!"]
    for metric, track, variants in (
            ("time", "decode_time", ("fp32", "bf16", "int8-dynamic",
                                     "torchao-int8-weight-only", "torchao-int8-dynamic")),
            ("size", "size_on_disk", ("fp32", "int8-dynamic", "onnx-int8",
                                      "int8-dynamic-as-seed")),
            ("accuracy", "token_match", ("fp32", "onnx-fp32", "compile"))):
        chosen = [f for v in variants for f in ("--param", f"variant={v}")]
        r = run([kernelwatch_exe(), "run", "--workload", "gpt2", "--metric", metric,
                 "--track", track, *chosen, *case_flags], clone)
        assert r.returncode == 0, metric
    head = git("rev-parse", "HEAD", cwd=clone)
    case = {"size": "gpt2", "prompt_tokens": "10", "new_tokens": "16", "threads": "1"}
    rows = {(r.benchmark.rsplit(".", 1)[1], r.params["variant"]): r
            for r in result_rows.load(clone / "results") if r.commit == head
            and r.benchmark.startswith("gpt2.") and case.items() <= r.params.items()}
    timed = ("fp32", "int8-dynamic", "torchao-int8-weight-only", "torchao-int8-dynamic")
    for variant in timed:
        assert rows[("track_decode_time", variant)].median > 0, variant
    checked = {v for (_, v), r in rows.items() if r.value is not None}
    assert checked == set(gpt2.VARIANTS) - {"bf16"}  # every CPU variant, in some metric
    bf16 = rows[("track_decode_time", "bf16")]
    assert bf16.value is None and not bf16.failed  # skipped with its reason, not failed
    size = {v: rows[("track_size_on_disk", v)].value
            for v in ("fp32", "int8-dynamic", "onnx-int8", "int8-dynamic-as-seed")}
    assert size["int8-dynamic"] / size["fp32"] <= 0.34
    assert size["onnx-int8"] / size["fp32"] <= 0.34
    assert size["int8-dynamic-as-seed"] > size["fp32"]  # the write-up's "barely shrinks"
    for variant in ("fp32", "onnx-fp32", "compile"):
        assert rows[("track_token_match", variant)].value == 1.0, variant

    r = run([kernelwatch_exe(), "report"], clone)
    assert r.returncode == 0
    assert "-- GPT-2 gpt2: prompt 10 tokens, 16 new tokens, 1 thread" in r.stdout
    assert "tok/s (IQR)" in r.stdout and "int8-dynamic-as-seed" in r.stdout


def test_vae_tiny_every_cpu_variant_through_asv_and_its_table(clone, isolated_home):
    """The tiny ViT VAE's decoder through real asv in a matrix environment (torch 2.13.0 and
    its pinned torchao and scikit-image), every CPU variant; then the write-up shaped table.
    The encoder differs in the model only: both parts run every variant in-process in
    test_vae.py, with its quality (each asv process here costs CI seconds)."""
    cpu_variants = [v for v, d in vae.VARIANTS.items() if d.unavailable_on("cpu") is None]
    chosen = [f for v in cpu_variants for f in ("--param", f"variant={v}")]
    r = run([kernelwatch_exe(), "run", "--workload", "vae", "--metric", "time", "--track",
             "time", "--param", "config=tiny", "--param", "batch=1", "--param", "part=decoder",
             *chosen, "--torch", "2.13.0", "HEAD^!"], clone)
    assert r.returncode == 0
    head = git("rev-parse", "HEAD", cwd=clone)
    times = {(r.params["part"], r.params["variant"]): r
             for r in result_rows.load(clone / "results") if r.commit == head
             and r.benchmark == "vae.VaeTime.track_time" and r.params["config"] == "tiny"
             and r.params["batch"] == "1"}
    for variant in cpu_variants:
        assert times[("decoder", variant)].median > 0, variant
        assert times[("decoder", variant)].samples
    r = run([kernelwatch_exe(), "report"], clone)
    assert r.returncode == 0
    assert "-- ViT VAE tiny decoder, batch 1" in r.stdout
    assert "write-up expects" in r.stdout and "int8-dynamic-compile" in r.stdout


def test_llama_layer_tiny_every_variant_both_passes_through_asv(clone, isolated_home):
    """The tiny Llama layer through real asv in a matrix environment (torch 2.13.0): every
    variant, forward and forward+backward, time per call; reduce-overhead is recorded as
    skipped on the CPU with its reason; then the write-up shaped table. Errors per variant
    are in test_llama_layer.py."""
    r = run([kernelwatch_exe(), "run", "--workload", "llama_layer", "--metric", "time",
             "--track", "time", "--param", "shape=tiny", "--param", "seq_len=128",
             "--param", "backend=torch", "--torch", "2.13.0", "HEAD^!"], clone)
    assert r.returncode == 0
    head = git("rev-parse", "HEAD", cwd=clone)
    rows = {(r.params["pass"], r.params["variant"]): r
            for r in result_rows.load(clone / "results") if r.commit == head
            and r.benchmark == "llama_layer.LayerTime.track_time"
            and r.params["shape"] == "tiny" and r.params["seq_len"] == "128"
            and r.params["backend"] == "torch"}
    for pass_ in llama_layer_spec.PASSES:
        for variant in ("eager", "surgical", "compile"):
            assert rows[(pass_, variant)].median > 0, (pass_, variant)
        assert rows[(pass_, "compile-reduce-overhead")].value is None
    log = Path(r.stdout.split("asv's full output is in ")[-1].split()[0]).read_text()
    assert "compile-reduce-overhead needs a CUDA GPU" in log
    r = run([kernelwatch_exe(), "report"], clone)
    assert r.returncode == 0
    for pass_ in llama_layer_spec.PASSES:
        assert f"-- Llama layer tiny (batch 1, sequence 128), torch linears, {pass_}" in r.stdout


def test_gptq_compile_over_budget_is_a_recorded_failure_with_the_budget(clone, isolated_home):
    """GPTQ's compile-block at block 128 unrolls 128 columns: its first run cannot compile in
    an 8 s budget. That parameter is recorded as failed with the budget in the message; eager's
    first run beside it is kept; kernelwatch says so and exits 1, not hanging."""
    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "gptq", "--shape", "tiny/proj",
           "--scheme", "w4-sym-g128", "--blocksize", "128", "--variant", "eager",
           "--variant", "compile-block", "--metric", "first-run"]
    r = run(cmd, clone, KERNELWATCH_BENCHMARK_TIMEOUT="8")
    assert r.returncode == 1
    assert "timed out (timeout 8.0s)" in r.stdout
    assert "some benchmarks failed or timed out" in r.stderr
    assert "raise KERNELWATCH_BENCHMARK_TIMEOUT" in r.stderr  # the fix, named
    rows = {(r.benchmark, r.params["variant"]): r for r in result_rows.load(clone / "results")
            if r.env_name.startswith("existing") and r.params.get("shape") == "tiny/proj"
            and r.params.get("blocksize") == "128" and r.params.get("scheme") == "w4-sym-g128"}
    assert rows[("gptq.GptqFirstRun.track_first_run", "eager")].value > 0
    assert rows[("gptq.GptqFirstRun.track_first_run", "compile-block")].value is None
    report = run([kernelwatch_exe(), "report"], clone).stdout
    assert any(line.split()[:4] == ["proj", "compile-block", "128", "failed"]
               for line in report.splitlines()), "the summary shows the failed first run"
    # The next run's estimate takes the timed-out process's seconds as the least it takes.
    r = run(cmd + ["--dry-run"], clone)
    assert "1 counted at the seconds a stopped or timed-out process had run" in (
        r.stdout + r.stderr), r.stdout + r.stderr
