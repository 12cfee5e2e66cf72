"""A compiled kernel's launch configuration, picked by inductor's autotuning on its first
run, is kept with the kernel inventory: when a series moves with the same generated code
and another pick, the report says so instead of leaving a bare ratio. The figures are the
H200's: RoPE `compile`, 13.7 us with XBLOCK=1024 / 4 warps, 15.4-16.0 us with 512 / 8."""

import dataclasses
import json

import pytest

from kernelwatch import inventory
from kernelwatch.libraries import requirements
from kernelwatch.report import explain
from kernelwatch.report.format import LIST_LIMIT, md_list
from kernelwatch.results import files as result_files
from kernelwatch.results.rows import Row

FAST = "XBLOCK=1024 num_warps=4 num_stages=1"
SLOW = "XBLOCK=512 num_warps=8 num_stages=1"
KERNELS = ["triton_poi_fused_0", "triton_poi_fused_1"]


def picked(k_launch: str) -> dict:
    return {"kernels": KERNELS, "code_digest": "c0de", "source": "inductor",
            "launch": {"triton_poi_fused_0": FAST, "triton_poi_fused_1": k_launch}}


def test_another_pick_of_the_same_code_is_named_kernel_by_kernel():
    moved = f"autotuning picked another launch: triton_poi_fused_1 {SLOW} (was {FAST})"
    assert inventory.difference(picked(FAST), picked(SLOW)) == moved
    assert inventory.difference(picked(FAST), picked(FAST)) == ""
    # other code and another pick: both are said
    other = {**picked(SLOW), "code_digest": "beef"}
    assert inventory.difference(picked(FAST), other) == (
        "same kernels, generated code changed; " + moved)
    # inventories filed before launches were kept: nothing to say
    assert inventory.difference({"kernels": KERNELS, "code_digest": "c0de"}, picked(SLOW)) == ""


# One RoPE `compile` module as inductor writes it on a GPU: the comment names the kernel's
# file in the compile cache, another folder in each run with fresh caches (H100, 2026-12-05:
# four runs of one commit, four hashes of the source, the same two kernels).
MODULE = """# kernel path: {cache}/ab/cab4x.py
# Topologically Sorted Source Nodes: [cat, mul], Original ATen: [aten.cat, aten.mul]
triton_poi_fused_0 = async_compile.triton('triton_poi_fused_0', \'\'\'
import triton
@triton.jit
def triton_poi_fused_0(in_ptr0, xnumel, XBLOCK: tl.constexpr):
    pass
\'\'\', device_str='cuda')
def call(args):
    triton_poi_fused_0.run(args[0], 4096, stream=stream0)  # one launch
    return ('{cache}/ab',)
"""


def test_the_code_digest_leaves_out_comments_and_the_compile_cache_s_folder():
    def digest(cache: str, module: str = MODULE) -> str:
        return inventory.code_digest([module.format(cache=cache)], cache)

    assert digest("/tmp/inductor-aaaa") == digest("/tmp/inductor-bbbb")
    assert digest("/tmp/inductor-aaaa") != digest(
        "/tmp/inductor-aaaa", MODULE.replace("4096, stream", "8192, stream"))
    assert digest("/tmp/inductor-aaaa") != digest(
        "/tmp/inductor-aaaa", MODULE.replace("pass", "tl.store(in_ptr0, 0)"))


def test_a_digest_is_compared_with_a_digest_and_an_older_code_hash_with_a_code_hash():
    old = {"kernels": KERNELS, "code_hash": "5eed", "source": "inductor",
           "launch": {"triton_poi_fused_0": FAST, "triton_poi_fused_1": FAST}}
    # recorded before comments were left out: whether the code moved is not known, so a
    # moved pick is said but not taken for the one thing that moved
    assert inventory.difference(old, picked(SLOW)).startswith("autotuning picked another")
    assert not inventory.only_launch_moved(old, picked(SLOW))
    assert inventory.only_launch_moved(picked(FAST), picked(SLOW))
    assert inventory.difference(old, {**old, "code_hash": "beef"}).startswith(
        "same kernels, generated code changed")


def test_the_explanation_of_a_compiled_slowdown_names_the_pick():
    def row(commit: str, value: float) -> Row:
        return Row(machine="m", commit=commit, date=0, env_name="env", env={},
                   benchmark="rope.RopeTime.track_time", params={"variant": "compile"},
                   unit="seconds", value=value, samples=[value] * 20)

    a, b = "a" * 40, "b" * 40
    inventories = {("m", a, "env", "rope(compile)"): picked(FAST),
                   ("m", b, "env", "rope(compile)"): picked(SLOW)}
    why = explain.explain([row(a, 13.7e-6), row(b, 15.7e-6)], ("m", a), ("m", b),
                          {("env", "rope", (("variant", "compile"),))}, inventories)
    assert len(why) == 1
    assert why[0].parts[0].startswith("autotuning picked another launch: "), why[0].parts
    assert SLOW in why[0].parts[0] and FAST in why[0].parts[0]
    assert f"`triton_poi_fused_1 {SLOW} (was {FAST})`" in why[0].parts[0]  # a code span


def test_many_new_picks_are_bounded_in_markdown():
    kernels = [f"triton_poi_fused_{i}" for i in range(LIST_LIMIT + 5)]
    old = {"kernels": kernels, "code_digest": "c", "launch": dict.fromkeys(kernels, FAST)}
    new = {**old, "launch": dict.fromkeys(kernels, SLOW)}
    words = inventory.difference(old, new, names=md_list)
    assert words.endswith(" and 5 more") and words.count("`") == 2 * LIST_LIMIT


@pytest.mark.parametrize("pip, dated", [("26.0", True), ("26.0.1", True), ("26.1b1", True),
                                        ("27.2", True), ("25.3", False), ("9.0.1", False),
                                        ("none", False)])
def test_resolving_as_of_a_day_needs_pip_26(pip, dated):
    assert requirements.dated_pip(pip) is dated


@pytest.mark.parametrize("launch, ok", [
    ({"triton_poi_fused_0": FAST}, True),
    ({}, True),
    (["XBLOCK=1024"], False),
    ({"triton_poi_fused_0": 1024}, False),
    ({"triton_poi_fused_0": "<script>"}, False),
    ({"triton_poi_fused_0": "X=1 @octocat [x](https://e.vil)"}, False),
    ({"k`<img src=x>": FAST}, False),
    ({"triton_poi_fused_0@3": FAST}, True),
])
def test_a_kernels_file_keeps_plain_launches_only(tmp_path, launch, ok):
    rel = f"box/{'ab' * 4}-env.kernels"
    (tmp_path / "box").mkdir()
    entry = {"kernels": ["triton_poi_fused_0"], "code_digest": "c0de", "source": "inductor",
             "launch": launch}
    (tmp_path / rel).write_text(json.dumps({"rope(tiny, compile)": entry}))
    if ok:
        assert result_files.check_file(tmp_path, rel)["rope(tiny, compile)"] == entry
    else:
        with pytest.raises(result_files.Refused, match="launch"):
            result_files.check_file(tmp_path, rel)


def _time_rows(values: dict[str, float], track: str = "track_time") -> list[Row]:
    """RoPE compile's time at each commit (commit -> seconds), 20 samples spread 1%."""
    return [Row(machine="m", commit=commit, date=0, env_name="env", env={},
                benchmark=f"rope.RopeTime.{track}", params={"variant": "compile"},
                unit="seconds", value=v, samples=[v * (1 + i / 2000) for i in range(20)])
            for commit, v in values.items()]


A, B = "a" * 40, "b" * 40


def test_a_device_time_that_moved_with_only_the_pick_is_marked_launch_and_not_counted():
    from kernelwatch.report import compare

    rows = _time_rows({A: 13.7e-6, B: 15.7e-6})  # 1.15x: beyond 1.10
    moved = {("m", A, "env", "rope(compile)"): picked(FAST),
             ("m", B, "env", "rope(compile)"): picked(SLOW)}
    (c,) = compare.compare(rows, ("m", A), ("m", B), inventories=moved)
    assert c.mark == compare.LAUNCH and c.ratio == pytest.approx(15.7 / 13.7, rel=1e-3)
    text = compare.markdown([c], ("m", A), ("m", B), 1.10)
    assert "0 worse, 0 better" in text and "1 moved with autotuning's launch pick" in text
    assert "| launch |" in text and "0 unchanged of 1 series" in text
    # the explanation below the table names the picks
    assert compare.timed_changes([c]) == {("env", "rope", (("variant", "compile"),))}

    # the same pick at both: the slowdown is the code's or the machine's, and counts
    same = {k: picked(FAST) for k in moved}
    assert compare.compare(rows, ("m", A), ("m", B), inventories=same)[0].mark == "+"
    # other code, another pick: the code moved too, and the change counts
    recoded = {**moved, ("m", B, "env", "rope(compile)"): {**picked(SLOW), "code_digest": "beef"}}
    assert compare.compare(rows, ("m", A), ("m", B), inventories=recoded)[0].mark == "+"
    # no inventory at one side (filed before launches were kept): counted as before
    one = {("m", B, "env", "rope(compile)"): picked(SLOW)}
    assert compare.compare(rows, ("m", A), ("m", B), inventories=one)[0].mark == "+"
    # what a caller pays has a host part the pick does not explain
    caller = _time_rows({A: 13.7e-6, B: 15.7e-6}, "track_caller_time")
    assert compare.compare(caller, ("m", A), ("m", B), inventories=moved)[0].mark == "+"
    # the GPU's busy time under the profiler (the kernel-time family) follows the pick too
    busy = _time_rows({A: 13.7e-6, B: 15.7e-6}, "track_kernel_time")
    assert compare.compare(busy, ("m", A), ("m", B), inventories=moved)[0].mark == compare.LAUNCH
    # the H100's A/A (2026-12-06): one code, the picks 1.30x apart
    h100 = _time_rows({A: 21.89e-6, B: 16.88e-6})
    assert compare.compare(h100, ("m", A), ("m", B), inventories=moved)[0].mark == compare.LAUNCH
    # beyond what two picks of one kernel differ by: counted whatever the pick
    far = _time_rows({A: 13.7e-6, B: 30.0e-6})  # 2.19x
    assert compare.compare(far, ("m", A), ("m", B), inventories=moved)[0].mark == "+"
    # two environments (a library's requirement sets, another Triton): counted
    other_env = [dataclasses.replace(r, env_name="env-2") if r.commit == B else r
                 for r in rows]
    moved_envs = {**moved, ("m", B, "env-2", "rope(compile)"): picked(SLOW)}
    (c,) = compare.compare(other_env, ("m", A), ("m", B), inventories=moved_envs,
                           env_key=lambda env: "env")
    assert c.mark == "+"


def test_a_device_time_that_held_still_across_two_picks_says_so_beside_it():
    """The H100's A/A of 2026-12-07: runs 1-5 of RoPE 8B `compile` picked 512 / 8 for one
    kernel (17.8-17.9 us); the run with 5% injected picked 1024 / 4 (16.9 us in the suite's
    run) and read 17.9 us: unchanged, the slowdown hidden behind the faster pick."""
    from kernelwatch.report import compare

    rows = _time_rows({A: 17.82e-6, B: 17.90e-6})
    moved = {("m", A, "env", "rope(compile)"): picked(SLOW),
             ("m", B, "env", "rope(compile)"): picked(FAST)}
    (c,) = compare.compare(rows, ("m", A), ("m", B), factor=1.03, inventories=moved)
    assert c.mark == " " and c.held_across_picks
    assert c.conditions.startswith(f"autotuning picked another launch: triton_poi_fused_1 {FAST}")
    assert "a change of the code can hide behind the new pick" in c.conditions
    text = compare.markdown([c], ("m", A), ("m", B), 1.03)
    assert "1 unchanged (1 across another launch pick: said beside it) of 1 series" in text
    # the explanation below the table names the picks for it too
    assert compare.timed_changes([c]) == {("env", "rope", (("variant", "compile"),))}

    # the same pick at both, or what a caller pays: nothing to say
    same = {k: picked(FAST) for k in moved}
    (c,) = compare.compare(rows, ("m", A), ("m", B), factor=1.03, inventories=same)
    assert not c.held_across_picks and c.conditions == ""
    assert compare.timed_changes([c]) == set()
    caller = _time_rows({A: 17.82e-6, B: 17.90e-6}, "track_caller_time")
    (c,) = compare.compare(caller, ("m", A), ("m", B), factor=1.03, inventories=moved)
    assert not c.held_across_picks and c.conditions == ""
    assert "across another launch pick" not in compare.markdown([c], ("m", A), ("m", B), 1.03)

    # moved beyond the factor but within its processes: not unchanged, so not this note
    def pooled(levels: list[float]) -> list[float]:
        return [v * (1 + i / 4000) for v in levels for i in range(20)]

    spread = [dataclasses.replace(r, processes=2, samples=pooled(
        [17.0e-6, 18.7e-6] if r.commit == A else [18.6e-6, 18.9e-6])) for r in rows]
    (c,) = compare.compare(spread, ("m", A), ("m", B), factor=1.03, inventories=moved)
    assert c.change.within_processes and c.mark == " " and not c.held_across_picks
    assert "unchanged across two picks" not in c.conditions


def test_a_slowdown_beyond_what_a_pick_explains_stays_at_the_top_of_the_table():
    """A device time 2.19x slower with another pick is counted worse, and listed before a
    faster series and before an unchanged one across picks, whatever its pick."""
    from kernelwatch.report import compare

    moved = {("m", A, "env", f"rope({v})"): picked(SLOW) for v in ("compile", "other")}
    moved |= {("m", B, "env", f"rope({v})"): picked(FAST) for v in ("compile", "other")}
    far = _time_rows({A: 13.7e-6, B: 30.0e-6})
    held = [dataclasses.replace(r, params={"variant": "other"})
            for r in _time_rows({A: 17.82e-6, B: 17.90e-6})]
    faster = [dataclasses.replace(r, benchmark="rope.RopeTime.track_caller_time",
                                  params={"variant": "fast"})
              for r in _time_rows({A: 30.0e-6, B: 10.0e-6})]
    marks = [(c.mark, c.held_across_picks) for c in compare.compare(
        far + held + faster, ("m", A), ("m", B), factor=1.03, inventories=moved)]
    assert marks == [("+", False), ("-", False), (" ", True)]


def test_a_launch_move_within_the_threshold_stays_unchanged_and_other_series_are_counted():
    from kernelwatch.regression import detect

    def spread(v: float) -> list[float]:
        return [v * (1 + i / 2000) for i in range(20)]

    little = detect.judge("rope.RopeTime.track_time", "seconds", spread(1.0), spread(1.05),
                          launch_moved=True)
    assert little.significant and little.flag == ""  # under 1.10: nothing to explain away
    memory = detect.judge("rope.RopeCudaMemory.track_peak_bytes", "bytes", spread(1.0),
                          spread(2.0), launch_moved=True)
    assert memory.flag == "worse"  # a launch moves time, not what a call allocates


def test_the_site_s_change_table_flags_a_launch_move_as_launch():
    from kernelwatch.report import site

    rows = _time_rows({A: 13.7e-6, B: 15.7e-6})
    moved = {("m", A, "env", "rope(compile)"): picked(FAST),
             ("m", B, "env", "rope(compile)"): picked(SLOW)}
    (c,) = site.changes(rows, commit_order={A: 0, B: 1}, inventories=moved)
    assert c["flag"] == "launch" and c["note"].startswith("autotuning picked another launch")
    (c,) = site.changes(rows, commit_order={A: 0, B: 1})
    assert c["flag"] == "worse"
    # one machine name whose GPU changed between the commits: the move may be the hardware's
    regpu = [dataclasses.replace(r, env={"gpu": "NVIDIA H100 80GB HBM3"}) if r.commit == B
             else r for r in rows]
    (c,) = site.changes(regpu, commit_order={A: 0, B: 1}, inventories=moved)
    assert c["flag"] == "worse"
