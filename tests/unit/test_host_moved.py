"""A slower host moves every time it paces (a caller's loop, a latency, a compile) and no
device time: on a lent H100 a slower host moved caller times by up to 2.65x while the
device times held within 1.04. The machine's dispatch fact measures the host's own cost per
call, and `kernelwatch compare` says beside each host-paced time that moved with it that the
host moved too. The figures below are that lease's RoPE 8B `triton` (32.1 -> 63.5 us caller
time, 14.4 -> 14.9 us device time)."""

import pytest

from kernelwatch.regression import detect
from kernelwatch.report import compare
from kernelwatch.results.rows import Row

A, B = "a" * 40, "b" * 40
GPU = {"gpu": "NVIDIA H100 80GB HBM3"}
PARAMS = {"shape": "llama-3.1-8b", "form": "rotate-half", "dtype": "bfloat16",
          "variant": "triton"}


def rows(benchmark: str, values: dict[str, float], params: dict | None = None,
         env: dict | None = None) -> list[Row]:
    """One series at each commit (commit -> seconds), 20 samples spread 1%."""
    return [Row(machine="m", commit=commit, date=0, env_name="env",
                env=GPU if env is None else env, benchmark=benchmark,
                params=PARAMS if params is None else params, unit="seconds", value=v,
                samples=[v * (1 + i / 2000) for i in range(20)])
            for commit, v in values.items()]


def dispatch(before: float, after: float) -> list[Row]:
    return rows(detect.HOST_FACT, {A: before, B: after}, params={})


def test_a_caller_time_that_moved_with_the_host_says_so_and_a_device_time_is_not_the_host_s():
    series = (rows("rope.RopeTime.track_caller_time", {A: 32.1e-6, B: 63.5e-6})
              + rows("rope.RopeTime.track_time", {A: 14.4e-6, B: 17.0e-6})
              + dispatch(5.0e-6, 10.0e-6))
    by_name = {c.benchmark: c for c in compare.compare(series, ("m", A), ("m", B))}
    caller, device = by_name["rope.RopeTime.track_caller_time"], by_name["rope.RopeTime.track_time"]
    # still counted: the code may have moved too; the reader is told the host did
    assert caller.mark == "+" and caller.host_moved == pytest.approx(2.0, rel=1e-3)
    assert "the host moved with it: one tiny op's dispatch 2.00x" in caller.conditions
    assert "further than the host" not in caller.conditions
    # a device time (graph replay) does not carry the host: moved, and no word of the host
    assert device.mark == "+" and device.host_moved is None
    assert "host" not in device.conditions
    fact = by_name[detect.HOST_FACT]
    assert fact.mark == " " and fact.host_moved == pytest.approx(2.0, rel=1e-3)
    text = compare.markdown(list(by_name.values()), ("m", A), ("m", B), 1.10)
    assert "The host moved between the two in `env`: one tiny op's dispatch took 2.00x" in text
    assert "1 flagged time the host paces" in text


def test_a_time_that_moved_further_than_the_host_says_that_too():
    series = rows("rope.RopeTime.track_caller_time", {A: 32.1e-6, B: 96.3e-6}) + dispatch(
        5.0e-6, 7.5e-6)
    (c, _) = sorted(compare.compare(series, ("m", A), ("m", B)),
                    key=lambda c: c.benchmark != "rope.RopeTime.track_caller_time")
    assert c.mark == "+" and "1.50x" in c.conditions
    assert "moved further than the host" in c.conditions


def test_no_word_of_the_host_where_it_held_still_or_moved_the_other_way():
    held = rows("rope.RopeTime.track_caller_time", {A: 32.1e-6, B: 63.5e-6}) + dispatch(
        5.0e-6, 5.1e-6)
    for c in compare.compare(held, ("m", A), ("m", B)):
        assert c.host_moved is None and "host" not in c.conditions
    assert "The host moved" not in compare.markdown(
        compare.compare(held, ("m", A), ("m", B)), ("m", A), ("m", B), 1.10)
    # a faster host does not explain a slower time
    faster = rows("rope.RopeTime.track_caller_time", {A: 32.1e-6, B: 63.5e-6}) + dispatch(
        10.0e-6, 5.0e-6)
    caller = next(c for c in compare.compare(faster, ("m", A), ("m", B))
                  if c.benchmark == "rope.RopeTime.track_caller_time")
    assert caller.mark == "+" and caller.host_moved is None


def test_what_the_host_paces():
    assert detect.host_paced("rope.RopeTime.track_caller_time", "cuda", "cuda-graph")
    assert not detect.host_paced("rope.RopeTime.track_time", "cuda", "cuda-graph")
    assert not detect.host_paced("vae.VaeTime.track_time", "cuda", "profiler-kernels")
    assert not detect.host_paced("gptq.GptqKernelTime.track_kernel_time", "cuda", None)
    # GPTQ's time on a GPU is CUDA events around a column loop the host drives: its latency
    assert detect.host_paced("gptq.GptqTime.track_time", "cuda", "cuda-events")
    assert detect.host_paced("gpt2.Gpt2Generate.track_decode_time", "cuda", None)
    assert detect.host_paced("rope.RopeTime.track_time", "cpu", "host-clock")
    assert not detect.host_paced(detect.HOST_FACT, "cpu", None)
    # one value a side is never significant: no claim the host moved
    assert detect.host_moved([5e-6], [10e-6]) is None
