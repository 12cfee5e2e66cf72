"""`kernelwatch compare` (kernelwatch.report.compare) on real results: quiet on two runs of
one commit, failing on an injected slowdown."""

import random

import pytest

from .conftest import kernelwatch_exe, run


@pytest.mark.slow
def test_compare_stays_quiet_on_two_runs_of_a_commit_and_fails_on_a_slowdown(clone,
                                                                             isolated_home):
    """Three real runs of one commit under three machine names: two plain, one with the
    test-only slowdown of 9.0 (each call ten times as long). `kernelwatch compare` prints
    markdown and exits 0 for the plain pair at a factor above this machine's noise, 1
    against the slowed run at the default 1.10. The logic, not the weather: two plain runs
    of GPTQ's tiny layer here read 25 ms and 80 ms a call while the other test worker
    compiled (CI, serially, once 24-56 ms within one process), so the pair is judged at
    --factor 10, and the slowdown is far above any of that."""
    cmd = [kernelwatch_exe(), "run", "--existing", "--workload", "gptq", "--shape", "tiny/proj",
           "--scheme", "w4-sym-g128", "--blocksize", "16", "--variant", "eager",
           "--metric", "time"]
    for machine, slowdown in (("aa-base", "0"), ("aa-same", "0"), ("aa-slow", "9.0")):
        r = run([*cmd, "--machine", machine], clone, KERNELWATCH_INJECT_SLOWDOWN=slowdown)
        assert r.returncode == 0, r.stderr
    same = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
                "--machine", "aa-same", "--factor", "10"], clone)
    assert same.returncode == 0, same.stdout
    assert "| before | after | ratio |" in same.stdout and "| 10.00 |" in same.stdout
    assert "`gptq.GptqTime.track_time` (`tiny/proj, w4-sym-g128, 16, eager`)" in same.stdout
    slow = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
                "--machine", "aa-slow"], clone)
    assert slow.returncode == 1
    first = slow.stdout.split("|---|---|---|---|---|---|---|\n")[1].splitlines()[0]
    assert first.startswith("| + |") and "gptq.GptqTime.track_" in first
    assert "| 1.10 |" in first and "worse beyond their threshold" in slow.stderr
    # With a fidelity run filed for the machine, that series is judged at its own threshold.
    fid = run([kernelwatch_exe(), "fidelity", "--machine", "aa-slow", "--workload", "gptq",
               "--param", "variant=eager", "--runs", "3", "--slowdowns", "0.2"], clone)
    assert fid.returncode == 0, fid.stderr
    from kernelwatch.regression import fidelity

    key = "gptq.GptqTime.track_time(tiny/proj, w4-sym-g128, 16, eager)"
    # one process a side: 1.50, the widest factor tried, where three runs spread too far
    # for any factor up to it to be safe (the fidelity page says "> 1.50")
    threshold = fidelity.factor(fidelity.thresholds(clone)["aa-slow"], key, (1, 1), 1.10)
    print("fidelity threshold of the series:", threshold)
    own = run([kernelwatch_exe(), "compare", "HEAD", "HEAD", "--base-machine", "aa-base",
               "--machine", "aa-slow"], clone)
    line = next(ln for ln in own.stdout.splitlines()
                if "`gptq.GptqTime.track_time` (`tiny/proj, w4-sym-g128, 16, eager`)" in ln)
    cells = [c.strip() for c in line.split("|")]
    assert cells[5] == f"{threshold:.2f}"
    assert line.startswith("| + |") and float(cells[4]) > 1.50  # 10x: past any threshold
    assert own.returncode == 1
    assert "own threshold from `kernelwatch fidelity` where measured (1 series" in own.stdout
    missing = run([kernelwatch_exe(), "compare", "HEAD~1", "HEAD", "--machine", "aa-base"],
                  clone)
    assert missing.returncode == 2 and "no results for commit" in missing.stderr


def test_compare_marks_a_changed_benchmark_version_not_comparable_and_a_new_failure():
    from kernelwatch.report import compare
    from kernelwatch.results.rows import Row

    def row(commit, bench, samples, version="v1", failed=False):
        return Row(machine="m", commit=commit, date=0, env_name="env", env={},
                   benchmark=bench, params={"variant": "eager"}, unit="seconds",
                   value=None if failed else samples[0], samples=None if failed else samples,
                   failed=failed, version=version)

    rng = random.Random(4)
    fast = [1e-3 * (1 + rng.gauss(0, 0.01)) for _ in range(30)]
    slow = [2e-3 * (1 + rng.gauss(0, 0.01)) for _ in range(30)]
    rows = [row("a" * 40, "w.T.track_time", fast), row("b" * 40, "w.T.track_time", slow, "v2"),
            row("a" * 40, "w.T.track_other", fast), row("b" * 40, "w.T.track_other", slow),
            row("a" * 40, "w.T.track_gone", fast), row("b" * 40, "w.T.track_gone", [], failed=True)]
    marks = {c.benchmark: c.mark for c in compare.compare(rows, ("m", "a" * 40), ("m", "b" * 40))}
    assert marks == {"w.T.track_time": "x", "w.T.track_other": "+", "w.T.track_gone": "!"}


def test_failing_at_both_skipped_then_failed_and_skipped_are_said_with_their_reasons():
    """A series that fails at both commits is `failing`, not unchanged; one that was skipped
    and now fails is newly failing (`!`); one skipped at HEAD is `skipped` with its reason.
    A library's two commits in two requirement sets are one environment (env_key)."""
    from kernelwatch.libraries import requirements
    from kernelwatch.report import compare
    from kernelwatch.results.rows import Row

    def row(commit, bench, env, *, value=None, failed=False, skipped=False, reason=""):
        return Row(machine="m", commit=commit, date=0, env_name=env, env={},
                   benchmark=bench, params={"variant": "llmcompressor-eager"}, unit="seconds",
                   value=value, samples=[value] * 5 if value else None, failed=failed,
                   skipped=skipped, reason=reason)

    base_env, head_env = ("virtualenv-py3.11-torch2.13.0-KERNELWATCH_REQUIREMENTS" + k
                          for k in ("aaaaaaaaaa", "bbbbbbbbbb"))
    a, b = "a" * 40, "b" * 40
    rows = [row(a, "g.T.track_broken", base_env, failed=True, reason="TypeError: old"),
            row(b, "g.T.track_broken", head_env, failed=True, reason="TypeError: new"),
            row(a, "g.T.track_time", base_env, skipped=True, reason="not importable"),
            row(b, "g.T.track_time", head_env, failed=True, reason="TypeError: x"),
            row(a, "g.T.track_gone", base_env, value=1e-3),
            row(b, "g.T.track_gone", head_env, skipped=True,
                reason="llmcompressor is not measurable before 0.4.0")]
    found = compare.compare(rows, ("m", a), ("m", b), env_key=requirements.base_env)
    marks = {c.benchmark: c.mark for c in found}
    assert marks == {"g.T.track_broken": "failing", "g.T.track_time": "!",
                     "g.T.track_gone": "skipped"}
    assert {c.env for c in found} == {"virtualenv-py3.11-torch2.13.0"}
    text = compare.markdown(found, ("m", a), ("m", b), 1.1)
    assert "1 worse, 0 better, 1 failing, 1 skipped" in text
    gone = next(line for line in text.splitlines() if "track_gone" in line)
    assert gone.startswith("| skipped | 1 ms | skipped |")
    assert "head: llmcompressor is not measurable before 0.4.0" in gone
    assert "requirement set aaaaaaaaaa -&gt; bbbbbbbbbb" in gone


def test_a_kernel_count_change_is_listed_and_a_gated_speedup_is_not_counted():
    from kernelwatch.report import compare
    from kernelwatch.results.rows import Row

    def row(commit, bench, value, variant="compile", unit="seconds"):
        samples = [value * (1 + i / 1000) for i in range(30)]
        return Row(machine="m", commit=commit, date=0, env_name="env", env={},
                   benchmark=bench, params={"variant": variant}, unit=unit, value=value,
                   samples=samples if unit == "seconds" else None)

    a, b = "a" * 40, "b" * 40
    rows = [row(a, "w.K.track_kernel_count", 1, unit="count"),
            row(b, "w.K.track_kernel_count", 2, unit="count"),
            row(a, "w.T.track_time", 2e-3), row(b, "w.T.track_time", 1e-3),  # 2x faster
            row(b, "w.A.track_error", 0.5, unit="relative")]

    def gate(bench, params, value):
        return "error 0.5 > 0.1" if bench.endswith("track_error") and value > 0.1 else None

    found = {c.benchmark: c for c in compare.compare(rows, ("m", a), ("m", b), gate=gate)}
    assert found["w.K.track_kernel_count"].mark == "+"  # a lost fusion, whatever the time
    assert found["w.T.track_time"].mark == " "  # faster, but its output fails the gate
    assert "fails its quality gate (error 0.5 > 0.1)" in found["w.T.track_time"].conditions


HOSTILE = ("[click](https://evil.example) ![x](https://evil.example/t.png) @octo-org/admins "
           "<img src=x onerror=alert(1)> **bold** a|b `tick` www.evil.example")


def rendered_tags_and_loose_text(markdown: str) -> tuple[set[str], list[str]]:
    """The markdown as a GitHub-like renderer turns it into HTML (CommonMark, tables, raw
    HTML passed through): the tags it made, and the text outside <code> (where GitHub would
    link an @mention or a bare URL)."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    class Seen(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.loose, self.in_code = set(), [], 0

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            self.in_code += tag == "code"

        def handle_endtag(self, tag):
            self.in_code -= tag == "code"

        def handle_data(self, data):
            if not self.in_code:
                self.loose.append(data)

    seen = Seen()
    seen.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return seen.tags, seen.loose


def test_compare_markdown_prints_hostile_names_as_text_and_bounds_a_huge_inventory():
    """Names from results and inventories other runners wrote (HTML, links, images,
    @mentions, table pipes) render as literal text in code spans, and a 60 MB inventory
    becomes a few lines with a count: the comment stays small."""
    from kernelwatch.report import compare, explain
    from kernelwatch.results.rows import Row

    a, b = "a" * 40, "b" * 40
    params = {"variant": HOSTILE}

    def row(commit, bench, value, unit="seconds"):
        return Row(machine="m", commit=commit, date=0, env_name=f"env {HOSTILE}", env={},
                   benchmark=bench, params=params, unit=unit, value=value,
                   samples=[value * (1 + i / 1000) for i in range(30)]
                   if unit == "seconds" else None)

    rows = [row(a, "w.T.track_time", 1e-3), row(b, "w.T.track_time", 2e-3),
            row(a, "w.K.track_kernel_count", 1, "count"),
            row(b, "w.K.track_kernel_count", 30_003, "count")]
    huge = [f"triton_{i}_" + "x" * 2000 for i in range(30_000)]  # 60 MB of names
    case = f"w({HOSTILE})"
    inventories = {("m", a, f"env {HOSTILE}", case): {"kernels": ["k0"]},
                   ("m", b, f"env {HOSTILE}", case): {"kernels": [HOSTILE, "k1", *huge]}}
    comparisons = compare.compare(rows, ("m", a), ("m", b))
    why = explain.explain(rows, ("m", a), ("m", b), compare.timed_changes(comparisons),
                          inventories)
    text = "\n".join([compare.markdown(comparisons, ("m", a), ("m", b), 1.1),
                      *(e.markdown() for e in why)])

    assert len(text) < 10_000, len(text)
    assert "lost fusion of `k0`; new: " in text and "and 29992 more" in text
    tags, loose = rendered_tags_and_loose_text(text)
    assert tags <= {"h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "ul", "li"}
    assert not any(s in t for t in loose for s in ("@octo", "evil", "onerror", "**")), loose
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "track_" in ln]
    assert len(table) == 2
    assert all(ln.replace("\\|", "").count("|") == 8 for ln in table)  # 7 cells each


def test_compare_markdown_shows_a_bounded_number_of_rows_and_counts_the_rest():
    from kernelwatch.report import compare
    from kernelwatch.results.rows import Row

    rows = [Row(machine="m", commit=c, date=0, env_name="env", env={},
                benchmark=f"w.T{i}.track_time", params={"variant": "eager"}, unit="seconds",
                value=1e-3, samples=[1e-3] * 5) for i in range(500) for c in ("a" * 40, "b" * 40)]
    comparisons = compare.compare(rows, ("m", "a" * 40), ("m", "b" * 40))
    text = compare.markdown(comparisons, ("m", "a" * 40), ("m", "b" * 40), 1.1)
    assert sum(ln.startswith("| ") and "track_time" in ln for ln in text.splitlines()) == 200
    assert ("0 worse, 0 better, 0 failing, 0 skipped, 0 not comparable, 500 unchanged of "
            "500 series") in text
    assert "300 more series not shown (0 of them marked, 300 unchanged)" in text


def test_the_explanations_are_bounded_with_a_count():
    from kernelwatch.report import explain

    why = [explain.Explanation(f"w (case {i})", ["device +1 ms per call"]) for i in range(70)]
    lines = explain.markdown(why)
    assert len(lines) == 51 and lines[-1] == "- and 20 more cases"
    assert lines[0] == "- `w (case 0)`: device +1 ms per call"


def test_compare_across_two_machines_reads_each_side_s_own_inventory(tmp_path, capsys):
    """`compare HEAD HEAD --base-machine A --machine B`: the kernels named are A's against
    B's. It read B's inventory for both sides, so the two were one and no kernel was
    named."""
    import json
    import subprocess

    from kernelwatch import inventory_file
    from kernelwatch.commands.compare import compare_commits

    from .conftest import git, write_case_results

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m",
        "x", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    case = {"shape": "tiny", "form": "rotate-half", "dtype": "float32", "variant": "compile"}
    for machine, kernels in (("aa-base", ["triton_poi_fused_rope_0"]),
                             ("aa-head", ["triton_poi_mul_0", "triton_poi_add_1"])):
        path = write_case_results(repo / "results", machine, head, "env", case, {
            "rope.RopeTime.track_time": [1e-4 * len(kernels) * (1 + i / 100)
                                         for i in range(10)],
            "rope.RopeKernels.track_kernel_count": [float(len(kernels))]})
        path.with_suffix(inventory_file.SUFFIX).write_text(json.dumps(
            {"rope(tiny, rotate-half, float32, compile)": {"kernels": kernels}}))

    rc = compare_commits(repo, "HEAD", "HEAD", machine="aa-head", base_machine="aa-base")
    why = capsys.readouterr().out.split("#### Where the time went")[1]
    assert rc == 1
    assert ("2 kernels, was 1: lost fusion of `triton_poi_fused_rope_0`; new: "
            "`triton_poi_mul_0`, `triton_poi_add_1`") in why


def test_compare_of_two_runs_whose_only_difference_is_autotuning_s_pick_exits_0(tmp_path,
                                                                              capsys):
    """Two runs of one commit (two machine names, as the H200's A/A files them) whose
    compiled RoPE read 13.7 and 15.7 us with the same kernels and another launch: the table
    marks it `launch`, the explanation names the picks, and compare exits 0; the same files
    with one kernel's code changed exit 1."""
    import json
    import subprocess

    from kernelwatch import inventory_file
    from kernelwatch.commands.compare import compare_commits

    from .conftest import git, write_case_results

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m",
        "x", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    case = {"shape": "llama-3.1-8b", "form": "rotate-half", "dtype": "bfloat16",
            "variant": "compile"}
    key = "rope(llama-3.1-8b, rotate-half, bfloat16, compile)"
    kernels = ["triton_poi_fused_0", "triton_poi_fused_1"]

    def file_run(machine: str, seconds: float, launch: str, code: str = "c0de") -> None:
        path = write_case_results(repo / "results", machine, head, "env", case, {
            "rope.RopeTime.track_time": [seconds * (1 + i / 2000) for i in range(20)]})
        path.with_suffix(inventory_file.SUFFIX).write_text(json.dumps({key: {
            "kernels": kernels, "code_digest": code, "source": "inductor",
            "launch": {"triton_poi_fused_0": "XBLOCK=1024 num_warps=4 num_stages=1",
                       "triton_poi_fused_1": launch}}}))

    file_run("aa-1", 13.7e-6, "XBLOCK=1024 num_warps=4 num_stages=1")
    file_run("aa-2", 15.7e-6, "XBLOCK=512 num_warps=8 num_stages=1")
    rc = compare_commits(repo, "HEAD", "HEAD", machine="aa-2", base_machine="aa-1")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "0 worse, 0 better" in out and "1 moved with autotuning's launch pick" in out
    assert "| launch |" in out
    assert ("autotuning picked another launch: `triton_poi_fused_1 XBLOCK=512 num_warps=8 "
            "num_stages=1 (was XBLOCK=1024 num_warps=4 num_stages=1)`") in out
    file_run("aa-2", 15.7e-6, "XBLOCK=512 num_warps=8 num_stages=1", code="beef")
    assert compare_commits(repo, "HEAD", "HEAD", machine="aa-2", base_machine="aa-1") == 1
    assert "same kernels, generated code changed" in capsys.readouterr().out
    # Two machine names on two GPUs: the move may be the hardware's, never `launch`.
    for machine, gpu in (("aa-1", "NVIDIA H200"), ("aa-2", "NVIDIA H100 80GB HBM3")):
        file_run(machine, 13.7e-6 if machine == "aa-1" else 15.7e-6,
                 "XBLOCK=1024 num_warps=4 num_stages=1" if machine == "aa-1"
                 else "XBLOCK=512 num_warps=8 num_stages=1")
        path = next((repo / "results" / machine).glob("*-env.json"))
        data = json.loads(path.read_text())
        data["params"]["gpu"] = gpu
        path.write_text(json.dumps(data))
    assert compare_commits(repo, "HEAD", "HEAD", machine="aa-2", base_machine="aa-1") == 1
    assert "| launch |" not in capsys.readouterr().out
