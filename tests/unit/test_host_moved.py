"""A slower host moves every time it paces (a caller's loop, a latency, a compile) and no
device time: on a lent H100 whose host was slower than on an earlier lease, caller times
moved by up to 2.65x while the device times held within 1.04 (but one that moves with
autotuning's pick). The machine's dispatch fact measures the host's own cost per call, and
`kernelwatch compare` says beside each host-paced time that moved with it that the host
moved too. The caller times below are that lease's RoPE 8B `triton` (32.1 -> 63.5 us); its
device time read 14.4 -> 14.9 us, set to 17.0 us here so that it is flagged and the test
can show that a moved device time gets no word of the host."""

import pytest

from kernelwatch.regression import detect
from kernelwatch.report import compare, host
from kernelwatch.results.rows import Row

A, B = "a" * 40, "b" * 40
GPU = {"gpu": "NVIDIA H100 80GB HBM3"}
CPU = {"gpu": "none"}
PARAMS = {"shape": "llama-3.1-8b", "form": "rotate-half", "dtype": "bfloat16",
          "variant": "triton"}
CALLER, DEVICE = "rope.RopeTime.track_caller_time", "rope.RopeTime.track_time"


def rows(benchmark: str, values: dict[str, float], params: dict | None = None,
         env: dict | None = None) -> list[Row]:
    """One series at each commit (commit -> seconds), 20 samples spread 1%."""
    return [Row(machine="m", commit=commit, date=0, env_name="env",
                env=GPU if env is None else env, benchmark=benchmark,
                params=PARAMS if params is None else params, unit="seconds", value=v,
                samples=[v * (1 + i / 2000) for i in range(20)])
            for commit, v in values.items()]


def dispatch(before: float, after: float, env: dict | None = None) -> list[Row]:
    return rows(detect.HOST_FACT, {A: before, B: after}, params={}, env=env)


def by_name(series: list[Row]) -> dict[str, compare.Comparison]:
    return {c.benchmark: c for c in compare.compare(series, ("m", A), ("m", B))}


def test_a_caller_time_that_moved_with_the_host_says_so_and_a_device_time_is_not_the_host_s():
    found = by_name(rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + rows(DEVICE, {A: 14.4e-6, B: 17e-6})
                    + dispatch(5.0e-6, 10.0e-6))
    caller, device = found[CALLER], found[DEVICE]
    # still counted: the code may have moved too; the reader is told the host did
    assert caller.mark == "+" and caller.host_ratio == pytest.approx(2.0, rel=1e-3)
    assert "the host moved with it: one tiny op's dispatch 2.00x" in caller.conditions
    assert "further than the host" not in caller.conditions
    # a device time (graph replay) does not carry the host: moved, and no word of the host
    assert device.mark == "+" and device.host_ratio is None
    assert "host" not in device.conditions
    fact = found[detect.HOST_FACT]
    assert fact.mark == " " and fact.host_ratio == pytest.approx(2.0, rel=1e-3)
    text = compare.markdown(list(found.values()), ("m", A), ("m", B), 1.10)
    assert "The host moved between the two in `env`: one tiny op's dispatch took 2.00x" in text
    assert "1 flagged time the host paces (caller time, latency, compile, decode steps) " \
           "got slower with it" in text and "before blaming the code" in text


def test_a_time_that_moved_further_than_the_host_and_its_threshold_says_that_too():
    further = by_name(rows(CALLER, {A: 32.1e-6, B: 96.3e-6}) + dispatch(5.0e-6, 7.5e-6))[CALLER]
    assert further.mark == "+" and "1.50x" in further.conditions
    assert "moved further than the host" in further.conditions
    # 2.12x with the host at 2.00x: within the series' threshold of the host's move
    near = by_name(rows(CALLER, {A: 32.1e-6, B: 68.1e-6}) + dispatch(5.0e-6, 10.0e-6))[CALLER]
    assert near.host_ratio and "further" not in near.conditions


def test_a_faster_host_is_said_beside_a_faster_time_and_credits_no_code():
    found = by_name(rows(CALLER, {A: 63.5e-6, B: 32.1e-6}) + dispatch(10.0e-6, 5.0e-6))
    assert found[CALLER].mark == "-" and found[CALLER].host_ratio == pytest.approx(0.5, rel=1e-3)
    assert "dispatch 0.50x" in found[CALLER].conditions
    text = compare.markdown(list(found.values()), ("m", A), ("m", B), 1.10)
    assert "got faster with it" in text and "before crediting the code" in text


def test_on_a_cpu_every_time_is_the_host_s():
    found = by_name(rows(DEVICE, {A: 50e-6, B: 90e-6}, env=CPU) + dispatch(2.6e-6, 5.0e-6, CPU))
    assert found[DEVICE].mark == "+" and found[DEVICE].host_ratio == pytest.approx(
        5.0 / 2.6, rel=1e-3)


def test_no_word_of_the_host_where_it_held_still_or_moved_the_other_way():
    held = rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + dispatch(5.0e-6, 5.1e-6)
    for c in compare.compare(held, ("m", A), ("m", B)):
        assert c.host_ratio is None and "host" not in c.conditions
    assert "The host moved" not in compare.markdown(
        compare.compare(held, ("m", A), ("m", B)), ("m", A), ("m", B), 1.10)
    # a faster host does not explain a slower time
    caller = by_name(rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + dispatch(10.0e-6, 5.0e-6))[CALLER]
    assert caller.mark == "+" and caller.host_ratio is None


def test_what_the_host_paces():
    assert detect.host_paced(CALLER, "cuda", "cuda-graph")
    assert not detect.host_paced(DEVICE, "cuda", "cuda-graph")
    assert not detect.host_paced("vae.VaeTime.track_time", "cuda", "profiler-kernels")
    assert not detect.host_paced("gptq.GptqKernelTime.track_kernel_time", "cuda", None)
    # GPTQ's time on a GPU is CUDA events around a column loop the host drives: its latency
    assert detect.host_paced("gptq.GptqTime.track_time", "cuda", "cuda-events")
    assert detect.host_paced("gpt2.Gpt2Generate.track_decode_time", "cuda", None)
    assert detect.host_paced(DEVICE, "cpu", "host-clock")
    assert not detect.host_paced(detect.HOST_FACT, "cpu", None)
    # one value a side is never significant: no claim the host moved
    assert detect.host_ratio([5e-6], [10e-6]) is None


def test_the_site_s_change_table_says_it_in_the_note():
    from kernelwatch.report import site

    series = rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + rows(DEVICE, {A: 14.4e-6, B: 17e-6}) \
        + dispatch(5.0e-6, 10.0e-6)
    found = {c["benchmark"]: c for c in site.changes(series, commit_order={A: 0, B: 1})}
    assert found[CALLER]["flag"] == "worse"
    assert found[CALLER]["note"].startswith("the host moved with it: one tiny op's dispatch 2.00x")
    assert found[DEVICE]["flag"] == "worse" and found[DEVICE]["note"] == ""
    held = rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + dispatch(5.0e-6, 5.1e-6)
    assert {c["note"] for c in site.changes(held, commit_order={A: 0, B: 1})} == {""}


def test_no_word_of_the_host_where_the_fact_was_not_measured_alike_at_both():
    from kernelwatch.report import site

    missing = rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + dispatch(5.0e-6, 10.0e-6)[1:]
    assert by_name(missing)[CALLER].host_ratio is None
    other_code = rows(CALLER, {A: 32.1e-6, B: 63.5e-6}) + dispatch(5.0e-6, 10.0e-6)
    other_code[-2].version, other_code[-1].version = "1", "2"
    assert by_name(other_code)[CALLER].host_ratio is None
    assert {c["note"] for c in site.changes(other_code, commit_order={A: 0, B: 1})} == {""}


def test_the_change_table_reads_the_newest_measurement_of_the_host_at_a_commit():
    """Two result files of one commit (a busy run, then a quiet rerun): the series and the
    fact are both read from the newest, whichever file was loaded last."""
    from kernelwatch.report import site

    busy, quiet = dispatch(5.0e-6, 10.0e-6)[1], dispatch(5.0e-6, 5.0e-6)[1]
    busy.date, quiet.date = 1, 2
    caller = rows(CALLER, {A: 32.1e-6, B: 63.5e-6})
    caller[1].date = 2
    base = dispatch(5.0e-6, 5.0e-6)[0]
    for order in ([busy, quiet], [quiet, busy]):
        (c,) = [c for c in site.changes(caller + [base] + order, commit_order={A: 0, B: 1})
                if c["benchmark"] == CALLER]
        assert c["flag"] == "worse" and c["note"] == ""


def fact_rows(medians: dict[str, float], version: dict[str, str] | None = None) -> dict:
    """Each A/A run's dispatch fact at one commit (run -> seconds)."""
    return {run: Row(machine=run, commit=A, date=0, env_name="env", env=GPU,
                     benchmark=detect.HOST_FACT, params={}, unit="seconds", value=v,
                     samples=[v] * 5, version=(version or {}).get(run, "1"))
            for run, v in medians.items()}


def test_the_runs_whose_host_moved_are_read_against_a_run_s_own_median():
    # two slow runs of four: the middle is a quiet run's, so the quiet two are not named
    middle, moved = host.moved_runs(fact_rows({"aa-1": 6.4e-6, "aa-2": 6.5e-6,
                                               "aa-3": 8.8e-6, "aa-4": 9.0e-6}))
    assert middle == 6.5e-6 and set(moved) == {"aa-3", "aa-4"}
    assert moved["aa-3"] == pytest.approx(8.8 / 6.5)
    # a faster host is a move too
    _, moved = host.moved_runs(fact_rows({"aa-1": 6.4e-6, "aa-2": 6.5e-6, "aa-3": 5.0e-6}))
    assert moved == {"aa-3": pytest.approx(5.0 / 6.4)}
    # two runs cannot say which one moved; two versions of the fact are not compared
    assert host.moved_runs(fact_rows({"aa-1": 6.4e-6, "aa-2": 8.8e-6})) is None
    assert host.moved_runs(fact_rows({"aa-1": 6.4e-6, "aa-2": 6.5e-6, "aa-3": 8.8e-6},
                                     version={"aa-3": "2"})) is None


def test_a_gpu_whose_own_matmul_moved_is_said_once_and_a_cpu_s_is_not():
    """The slower run of GPT-2's A/A on a lent H100 (2026-12-08): its GPU's matmul fact read
    1.095x run 1's, and its series 1.33-1.88x. Said at a factor it passes, as a time would
    be flagged; not at 1.10; never for a CPU, whose matmul is the host's."""
    series = rows(detect.GPU_FACT, {A: 1.255e-3, B: 1.374e-3}, params={})
    found = compare.compare(series, ("m", A), ("m", B), factor=1.03)
    assert [c.gpu_ratio for c in found] == [pytest.approx(1.095, rel=1e-3)]
    assert found[0].mark == " "  # a fact: shown, never counted
    text = compare.markdown(found, ("m", A), ("m", B), 1.03)
    assert "The GPU moved between the two in `env`: a bf16 matmul took 1.09x as long at " \
           "HEAD" in text and "before blaming the code" in text
    at_default = compare.compare(series, ("m", A), ("m", B))
    assert at_default[0].gpu_ratio is None
    assert "GPU moved" not in compare.markdown(at_default, ("m", A), ("m", B), 1.10)
    cpu = compare.compare(rows(detect.GPU_FACT, {A: 1.255e-3, B: 1.374e-3}, params={},
                               env=CPU), ("m", A), ("m", B), factor=1.03)
    assert cpu[0].gpu_ratio is None
