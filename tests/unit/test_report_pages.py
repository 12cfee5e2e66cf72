"""kernelwatch's derived pages on hand-checked rows: break-even and torch versions."""

from kernelwatch.report import break_even, torch_versions
from kernelwatch.results.rows import Row


def row(bench, variant, value, torch="2.13.0", commit="a" * 40, samples=None):
    return Row(machine="m", commit=commit, date=1, env_name=f"env-{torch}",
               env={"torch": torch, "gpu": "none"}, benchmark=bench,
               params={"shape": "tiny", "variant": variant}, unit="seconds", value=value,
               samples=samples)


def test_break_even_is_the_one_time_cost_over_the_saving_per_call():
    rows = [row("w.WFirstRun.track_first_run", "eager", 1.0),
            row("w.WFirstRun.track_first_run", "compile", 11.0),  # 10 s more than eager
            row("w.WTime.track_time", "eager", 2e-3),
            row("w.WTime.track_time", "compile", 1e-3),  # saves 1 ms a call
            row("w.WFirstRun.track_first_run", "slower", 3.0),
            row("w.WTime.track_time", "slower", 3e-3)]
    found = {f["variant"]: f for f in break_even.rows_of(rows, lambda w, d: "eager")}
    assert abs(found["compile"]["cost"] - 10.0) < 1e-9
    assert abs(found["compile"]["calls"] - 10_000) < 1e-6  # 10 s / 1 ms
    assert found["slower"]["calls"] is None  # never pays


def test_break_even_drift_between_the_newest_two_commits_is_on_the_page(tmp_path):
    """The compile's cost triples at the newest commit: its break-even goes from 10,000
    calls to 30,000, a change on the page; a variant that stays put is not listed."""
    old, new = "a" * 40, "b" * 40
    rows = []
    for commit, cost in ((old, 11.0), (new, 31.0)):
        rows += [row("w.WFirstRun.track_first_run", "eager", 1.0, commit=commit),
                 row("w.WFirstRun.track_first_run", "compile", cost, commit=commit),
                 row("w.WFirstRun.track_first_run", "steady", 2.0, commit=commit),
                 row("w.WTime.track_time", "eager", 2e-3, commit=commit),
                 row("w.WTime.track_time", "compile", 1e-3, commit=commit),
                 row("w.WTime.track_time", "steady", 1e-3, commit=commit)]
    (d,) = break_even.drift(rows, ("m", old), ("m", new), lambda w, dev: "eager")
    assert (d.variant, round(d.before), round(d.after)) == ("compile", 10_000, 30_000)
    page = break_even.write(rows, tmp_path, lambda w, dev: "eager",
                            commit_order={old: 0, new: 1}).read_text()
    drift_part = page.split("Break-even drift")[1]
    assert "aaaaaaaa -&gt; bbbbbbbb" in drift_part
    assert "10,000 calls" in drift_part and "30,000 calls" in drift_part
    assert "steady" not in drift_part
    # The dates tie: the branch's order says which commit is newer.
    page = break_even.write(rows, tmp_path, lambda w, dev: "eager",
                            commit_order={old: 1, new: 0}).read_text()
    assert "bbbbbbbb -&gt; aaaaaaaa" in page.split("Break-even drift")[1]


def test_torch_versions_side_by_side_with_the_ratio():
    fast = [1e-3 * (1 + i / 1000) for i in range(20)]
    slow = [2e-3 * (1 + i / 1000) for i in range(20)]
    rows = [row("w.WTime.track_time", "eager", None, "2.13.0", samples=fast),
            row("w.WTime.track_time", "eager", None, "2.14.1", samples=slow)]
    commit, versions, table = torch_versions.side_by_side(rows)["m"]
    assert versions == ["2.13.0", "2.14.1"]
    assert abs(table[0]["ratio"] - 2.0) < 0.01 and table[0]["flag"] == "worse"


def test_the_change_table_follows_the_branch_order_where_dates_tie():
    """Two commits in one second: the branch's order, not the date, says which is newer."""
    from kernelwatch.report import site

    def timed(commit, median):
        r = row("w.WTime.track_time", "eager", None, commit=commit,
                samples=[median * (1 + i / 1000) for i in range(20)])
        return r

    rows = [timed("a" * 40, 1e-3), timed("b" * 40, 2e-3)]
    (change,) = site.changes(rows, commit_order={"a" * 40: 2, "b" * 40: 1})  # a is newer
    assert change["commits"] == "bbbbbbbb -> aaaaaaaa" and change["flag"] == "better"
    (change,) = site.changes(rows, commit_order={"a" * 40: 1, "b" * 40: 2})
    assert change["commits"] == "aaaaaaaa -> bbbbbbbb" and change["flag"] == "worse"


def test_roofline_against_the_environments_measured_ceilings():
    from kernelwatch.report import roofline

    env = [row("environment.Environment.track_copy_seconds_per_gib", "", 2 / 1000),  # 1 TB/s
           row("environment.Environment.track_matmul_seconds_per_tflop", "", 1 / 100),
           row("w.WTime.track_time", "eager", 1e-3)]  # 100 TFLOP/s peak
    env[0].params = env[1].params = {}
    (r,) = roofline.rows_of(env, lambda b, p: 500 * 2 ** 20,  # 0.52 GB in 1 ms: 52%
                            lambda b, p: 10 ** 10)  # 10 TFLOP/s: 10% of peak
    assert abs(r["gb_per_s"] - 524.288) < 1e-6 and abs(r["pct_copy"] - 48.83) < 0.01
    assert abs(r["tflops"] - 10.0) < 1e-9 and abs(r["pct_peak"] - 10.0) < 1e-9
    assert r["bound"] == "memory" and abs(r["over_floor"] - 1 / 0.48828125) < 1e-6
    assert r["vs_reference"] is None and not r["is_reference"]  # no reference named


def test_the_roofline_marks_the_reference_kernel_and_each_variants_share_of_its_speed(
        tmp_path):
    from kernelwatch import workloads
    from kernelwatch.report import roofline

    env = [row("rope.RopeTime.track_time", "eager", 100e-6),
           row("rope.RopeTime.track_time", "compile", 25e-6),
           row("rope.RopeTime.track_time", "triton", 20e-6)]
    found = roofline.rows_of(env, lambda b, p: 10 ** 7, lambda b, p: None,
                             workloads.reference_variant)
    rows = {r["case"].split(", ")[-1]: r for r in found}
    assert workloads.reference_variant("rope.RopeTime.track_time") == "triton"
    assert rows["triton"]["is_reference"] and rows["triton"]["vs_reference"] == 1.0
    assert abs(rows["compile"]["vs_reference"] - 0.8) < 1e-12
    assert abs(rows["eager"]["vs_reference"] - 0.2) < 1e-12
    roofline.write({("m", "env"): env}, tmp_path, lambda b, p: 10 ** 7, lambda b, p: None,
                   workloads.reference_variant)
    page = (tmp_path / "roofline.html").read_text()
    assert "the reference" in page and "80% of its speed" in page and "20% of its speed" in page


def test_a_speedup_bought_by_failing_the_quality_gate_is_marked_not_dropped():
    from kernelwatch.report import speedups

    rows = [row("w.WTime.track_time", "eager", 2e-3), row("w.WTime.track_time", "fast", 1e-3),
            row("w.WAccuracy.track_error", "fast", 0.5)]

    def gate(bench, params, value):
        return "error 0.5 > 0.1" if bench.endswith("track_error") and value > 0.1 else None

    (s,) = speedups.series(rows, lambda w, d: "eager", gate)
    ((_, _, speedup, _, failed),) = s.lines[("fast", "2.13.0")]
    assert speedup == 2.0 and failed == "error 0.5 > 0.1"
    table = speedups._table(s)
    assert 'class="worse"' in table and "FAILED: error 0.5 &gt; 0.1" in table
    assert "(failed quality gate)" in speedups._figure_html(s, "f")


def test_asvs_own_steps_are_read_from_its_feed(tmp_path):
    from kernelwatch.report import regressions

    (tmp_path / "regressions.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<entry><title>50.00% rope.RopeTime.track_time</title>"
        '<link href="index.html#rope.RopeTime.track_time?commits=abc"/>'
        "<updated>2026-11-30T10:00:00Z</updated><content type=\"html\">&lt;a href=&quot;x"
        "&quot;&gt;50.00% regression&lt;/a&gt; on 2026-11-30</content></entry>"
        "<entry><title>older</title><link href=\"index.html#o\"/>"
        "<updated>2026-11-01T10:00:00Z</updated><content>x</content></entry></feed>")
    steps = regressions.asv_steps(tmp_path)
    assert [s["title"] for s in steps] == ["50.00% rope.RopeTime.track_time", "older"]
    assert steps[0]["href"] == "index.html#rope.RopeTime.track_time?commits=abc"
    assert steps[0]["summary"] == "50.00% regression on 2026-11-30"


def test_rope_table_puts_the_best_variant_first_with_its_share_of_copy_bandwidth():
    from kernelwatch.report import COPY_KEY
    from kernelwatch.report import rope as rope_report
    from kernelwatch.workloads.rope import spec as rope_spec

    case = {"shape": "llama-3.1-8b", "form": "rotate-half", "dtype": "bfloat16"}
    nbytes = rope_spec.bytes_for(case)
    copy = Row(machine="m", commit="a" * 40, date=1, env_name="e", env={}, benchmark=COPY_KEY,
               value=(2 << 30) / 4e12)  # a 4 TB/s copy
    rows = [copy] + [
        Row(machine="m", commit="a" * 40, date=1, env_name="e", env={},
            benchmark="rope.RopeTime.track_time", params={**case, "variant": v},
            value=nbytes / gbps / 1e9)
        for v, gbps in (("eager", 400), ("liger", 3700), ("compile", 3000))]
    (table,) = rope_report.tables(rows)
    assert [r[0] for r in table.rows] == ["liger", "compile", "eager"]
    assert table.title.startswith("RoPE llama-3.1-8b rotate-half bfloat16: best variant liger, "
                                  "92% of copy bandwidth")
    assert table.rows[0][4] == "92.5%" and table.rows[0][2] == "9.25x"
    assert table.row_classes == ["best", "", ""]


def test_overview_geomean_gates_compile_memory_and_names_by_what_differs():
    from kernelwatch.report import overview

    def at(shape, variant, bench, value, torch="2.13.0"):
        r = row(bench, variant, value, torch)
        r.params = {"shape": shape, "variant": variant}
        return r

    t = "w.WTime.track_time"
    rows = [at("a", "eager", t, 4e-3), at("a", "compile", t, 1e-3),
            at("b", "eager", t, 2e-3), at("b", "compile", t, 2e-3),
            at("a", "compile", "w.WCompile.track_cold_compile", 10.0),
            at("b", "compile", "w.WCompile.track_cold_compile", 20.0),
            at("a", "eager", "w.WMemory.track_peak_rss", 100.0),
            at("a", "compile", "w.WMemory.track_peak_rss", 50.0),
            at("b", "compile", "w.WAccuracy.track_error", 1.0)]
    def gate(bench, params, value):
        return "too wrong" if bench.endswith("track_error") and value > 0.5 else None
    summary = overview.workload_summary(rows, lambda w, d: "eager", gate)["w"]
    compiled = summary["variants"]["compile"]
    assert abs(compiled["geomean"] - 2.0) < 1e-9  # sqrt(4x * 1x)
    assert compiled["gate_failures"] == 1 and compiled["cases"] == 2
    assert compiled["cold_compile"] == 15.0 and abs(compiled["memory_ratio"] - 0.5) < 1e-9
    assert summary["cells"][("compile", "a")][0] == 4.0
    groups = {("m", "env-2.13.0"): [row("w.WTime.track_time", "eager", 1.0, "2.13.0")],
              ("m", "env-2.14.1"): [row("w.WTime.track_time", "eager", 1.0, "2.14.1")]}
    assert sorted(overview.env_names(groups).values()) == ["m · torch 2.13.0",
                                                           "m · torch 2.14.1"]
