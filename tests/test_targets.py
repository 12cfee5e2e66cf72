"""kernelwatch on another project's commits and releases, with real asv and real llm-compressor
code: a local git repository made from llm-compressor's released sdists plus commits of our
own (tests/target_repo.py; one makes its GPTQ path 6-9x slower on the CPU), `run --target`
over it, `bisect` naming the slow commit, `--versions` side by side, and the bad inputs that
stop before asv runs.

Cost: one target environment (torch 2.13.0 and what importing llm-compressor's GPTQ needs,
shared through the clone's .asv like the other asv tests' environments), and GPTQ's tiny
layer (~35 ms a call) in one process per point."""

import html
import json
import os
import re
import subprocess

import pytest

from kernelwatch.engine import shards
from kernelwatch.libraries import requirements, targets
from kernelwatch.regression import bisect
from kernelwatch.report import bisect as bisect_view
from kernelwatch.report import torch_versions
from kernelwatch.results import rows as result_rows
from kernelwatch.results.rows import Row

from . import target_repo
from .conftest import git, kernelwatch_exe

MACHINE = "kernelwatch-test"
SERIES = ["--workload", "gptq", "--param", "shape=tiny/proj", "--param", "scheme=w4-sym-g128",
          "--param", "blocksize=16", "--param", "variant=llmcompressor-eager"]
KEY = "gptq.GptqTime.track_time"


def kw(args, cwd, **env):
    r = subprocess.run([kernelwatch_exe(), *args], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, "KERNELWATCH_MACHINE": MACHINE, **env})
    print(r.stdout[-6000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="session")
def llmcompressor_sdists(tmp_path_factory):
    """The three released sdists (~3 MB each), downloaded once a session (CI starts bare)."""
    return target_repo.download(tmp_path_factory.mktemp("sdists"))


@pytest.fixture(scope="session")
def llmcompressor_repo(tmp_path_factory, llmcompressor_sdists):
    return target_repo.make(tmp_path_factory.mktemp("target") / "llm-compressor",
                            llmcompressor_sdists)


def target_flag(repo):
    return f"llmcompressor={repo}"


def slow_commit(repo) -> str:
    return git("log", "--format=%H", "--grep", target_repo.SLOW_SUBJECT, cwd=repo)


# ----------------------------------------------------------------------------- no asv


def test_the_fixture_is_llm_compressor_released_then_ours(llmcompressor_repo):
    log = git("log", "--format=%s", cwd=llmcompressor_repo).splitlines()
    assert len(log) == len(target_repo.RELEASES) + len(target_repo.OWN_COMMITS) >= 8
    assert git("describe", "--tags", "--abbrev=0", cwd=llmcompressor_repo) == "0.14.0.1"
    source = (llmcompressor_repo / target_repo.GPTQ).read_text()
    assert "def quantize_weight(" in source and target_repo.CHUNKED_UPDATE in source
    assert target_repo.VECTOR_UPDATE in git("show", f"0.14.0.1:{target_repo.GPTQ}",
                                            cwd=llmcompressor_repo)


def test_bad_target_input_is_one_message_and_runs_nothing(clone, llmcompressor_repo,
                                                          tmp_path, isolated_home, capsys,
                                                          monkeypatch):
    """In-process (each subprocess would import torch again): exit 2, one message that
    names the fix, no traceback, nothing recorded."""
    from kernelwatch import cli

    monkeypatch.chdir(clone)
    monkeypatch.setenv("KERNELWATCH_MACHINE", MACHINE)
    flag = target_flag(llmcompressor_repo)
    cases = [
        (["run", "--target", f"nolib={llmcompressor_repo}"],
         "no workload declares the distribution 'nolib'; declared: liger-kernel (rope), "
         "llmcompressor (gptq)"),
        (["run", "--target", f"llmcompressor={tmp_path / 'missing'}"], "does not exist"),
        (["run", "--target", f"llmcompressor={tmp_path}"], "is not a git repository"),
        (["run", "--target", flag, "0.14.0..0.14.0"], "has no commits in the target"),
        (["run", "--target", flag, "--param", "variant=eager"],
         "does not exercise llmcompressor; the variants that do: llmcompressor, "
         "llmcompressor-eager"),
        (["run", "--target", flag, "--existing"], "cannot use --existing"),
        (["run", "--shard", "3/2"], "--shard takes K/N"),
        (["run", "--versions", "llmcompressor=0.0.1", "--dry-run"],
         "pip cannot install llmcompressor 0.0.1; the versions pip finds: "),
        (["bisect", "main", "0.14.0", *SERIES, "--target", flag, "--torch", "2.13.0"],
         "is not an ancestor of BAD"),
        (["bisect", "0.14.0", "main", "--workload", "gptq", "--target", flag],
         "bisect follows one series; gptq's shape has 15 values here: choose one with "
         "--param shape=VALUE"),
        (["bisect", "0.14.0", "main", *SERIES, "--target", flag],
         "choose one torch with --torch"),
        (["bisect", "0.14.0", "main", *SERIES, "--track", "nope", "--target", flag],
         "no gptq benchmark has a track 'nope': choose one with --track (caller_time"),
    ]
    for args, message in cases:
        rc = cli.main(args)
        out, err = capsys.readouterr()
        print(args, rc, err)
        assert rc == 2, args
        assert message in err and "Traceback" not in err, args
        assert err.count("kernelwatch: error:") == 1
    assert not (clone / "results-llmcompressor").exists() or not any(
        (clone / "results-llmcompressor").glob(f"{MACHINE}/*-*.json"))


def test_shards_are_disjoint_cover_the_selection_and_balance():
    selection = [("gptq", {"shape": ["tiny/proj"], "scheme": ["w4-sym-g128"],
                           "blocksize": ["16", "32", "64"], "variant": None},
                  ["time", "accuracy"], None)]
    units = shards.units(*selection[0][:3])
    parts = [shards.pick(units, k, 4) for k in range(1, 5)]
    assert sorted(u for p in parts for u in p) == sorted(units)  # cover, no overlap
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [shards.pick(list(reversed(units)), k, 4) for k in range(1, 5)]
    regex = r"^gptq\.(GptqTime|GptqAccuracy)\.track_\w+\('(tiny/proj)', '(w4\-sym\-g128)', " \
            r"'(16|32|64)', '[^']+'\)$"
    env = r"^environment\.Environment\.track_\w+$"
    names = [u.replace("(", ".track_time(", 1).replace("(", "('", 1).replace(", ", "', '")
             .replace(")", "')") for u in units]
    seen = []
    for k in range(1, 5):
        narrowed = shards.narrow([regex, env], selection, k, 4)
        assert narrowed[-1] == env  # every shard records the machine's facts
        seen += [n for n in names if any(re.search(rx, n) for rx in narrowed[:-1])]
    assert sorted(seen) == sorted(names)


def test_the_versions_page_compares_any_library():
    def row(version, samples):
        return Row(machine="m", commit="a" * 40, date=1, env_name=f"env-{version}",
                   env={"torch": "2.13.0", "llmcompressor": f"{version} --no-deps"},
                   benchmark=KEY, params={"variant": "llmcompressor-eager"}, unit="seconds",
                   samples=samples)
    rows = [row("0.14.0", [1e-3 * (1 + i / 1000) for i in range(10)]),
            row("0.14.0.1", [3e-3 * (1 + i / 1000) for i in range(10)])]
    assert torch_versions.libraries(rows) == ["llmcompressor"]
    commit, versions, table = torch_versions.side_by_side(rows, "llmcompressor")["m"]
    assert versions == ["0.14.0", "0.14.0.1"] and table[0]["flag"] == "worse"


def test_bisect_search_stays_within_its_bound_and_skips_failures():
    """The search alone, on made-up points: the first of 13 that is 3x slower, one failing."""
    points = [f"p{i}" for i in range(14)]
    slow_from, broken = 9, "p7"

    def measure(p):
        i = int(p[1:])
        if p == broken:
            return bisect.Measured(p, failed=True)
        base = 3.0 if i >= slow_from else 1.0
        return bisect.Measured(p, tuple(base * (1 + j / 100) for j in range(10)))

    out = bisect.search(points, measure, factor=1.1)
    assert out.culprit == "p9" and out.parent == "p8"
    assert len(out.verdicts) <= out.bound + 1  # the failed point costs one more
    clean = bisect.search([p for p in points if p != broken], measure, factor=1.1)
    assert clean.culprit == "p9" and len(clean.verdicts) <= clean.bound
    # A 1.3x blip before a 3x regression is beyond 1.10 but below the geometric middle.
    blip = bisect.search(points, lambda p: bisect.Measured(p, tuple(
        1.3 * x for x in measure(p).samples)) if p == "p4" else measure(p), factor=1.1)
    assert blip.culprit == "p9" and abs(blip.bar - 3 ** 0.5) < 0.05
    flat = bisect.search(points[:7], measure, factor=1.1)
    assert flat.culprit is None and len(flat.verdicts) == 2  # GOOD and BAD only


def test_bisect_refusing_good_names_the_reason_and_the_nearest_point_that_would_run():
    """GOOD gives nothing (its library release is below what the adapter calls): the
    refusal says why and which later point would run; a skipped point in the middle is
    skipped whatever --failed-is-bad says, a failed one is bad with it."""
    from kernelwatch.errors import KernelwatchError

    points = [f"p{i}" for i in range(8)]
    skipped = bisect.Measured("p0", failed=True, skipped=True,
                              reason="not measurable before 0.4.0: GPTQWrapper")
    with pytest.raises(KernelwatchError) as caught:
        bisect.search(points, lambda p: skipped, factor=1.1,
                      nearest_good=lambda ps: ps[2])
    assert str(caught.value) == (
        "GOOD (p0) has no result for the series: not measurable before 0.4.0: GPTQWrapper; "
        "the nearest later point that would run: p2 (`kernelwatch bisect p2 p7 ...`)")

    def measure(p):
        i = int(p[1:])
        if p == "p3":
            return bisect.Measured(p, failed=True, skipped=True, reason="cannot import")
        if p == "p5":
            return bisect.Measured(p, failed=True, reason="TypeError: got multiple values")
        return bisect.Measured(p, tuple((3.0 if i >= 6 else 1.0) * (1 + j / 100)
                                        for j in range(10)))

    out = bisect.search(points, measure, factor=1.1, failed_is_bad=True)
    verdicts = {v.measured.point: v.bad for v in out.verdicts}
    assert verdicts.get("p3", None) is None  # skipped: never a slowdown
    assert out.culprit == "p5" and verdicts["p5"] is True  # failed, --failed-is-bad
    lines = bisect_view.summary(out, "commit", {})
    assert any("bad (failed: TypeError: got multiple values)" in ln for ln in lines)


def one_commit_repo(path, subject) -> str:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "f").write_text(subject)
    git("add", "-A", cwd=path)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", subject, cwd=path)
    return git("rev-parse", "HEAD", cwd=path)


def test_a_second_url_for_one_library_is_followed_and_said(tmp_path, capsys):
    """`--target llmcompressor=URL2` after a run with URL1: the mirror follows URL2 (its
    commits, its branches; URL1's main is gone) and says so. It used to fetch URL1's
    mirror again and measure its commits, silently."""
    first = one_commit_repo(tmp_path / "upstream", "upstream")
    second = one_commit_repo(tmp_path / "fork", "fork")
    checkout = tmp_path / "kernelwatch"
    checkout.mkdir()
    url1, url2 = (f"file://{tmp_path / name}" for name in ("upstream", "fork"))

    target = targets.resolve(f"llmcompressor={url1}", checkout)
    assert targets.commits(target, "main^!") == [first]
    assert "now follows" not in capsys.readouterr().out
    target = targets.resolve(f"llmcompressor={url2}", checkout)
    assert targets.commits(target, "main^!") == [second]
    out = capsys.readouterr().out
    assert f"followed {url1}; it now follows {url2}" in out
    assert targets.resolve(f"llmcompressor={url2}", checkout).repo == target.repo
    assert "now follows" not in capsys.readouterr().out


def test_a_file_an_empty_repository_and_a_short_history_as_repo_say_what_to_do(tmp_path):
    """A file given as REPO is said to be a file (it was "does not exist"); an empty
    repository is said to have no commits (it was told to try the range that had just
    failed); a history of one commit gets a default range that exists."""
    from kernelwatch.errors import KernelwatchError

    checkout = tmp_path / "kernelwatch"
    checkout.mkdir()
    a_file = tmp_path / "llm-compressor.tar.gz"
    a_file.write_bytes(b"not a repository")
    with pytest.raises(KernelwatchError, match=f"{a_file} is a file, not a folder; give the "
                       "path of a git clone"):
        targets.resolve(f"llmcompressor={a_file}", checkout)

    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", "-b", "main", str(empty)], check=True)
    with pytest.raises(KernelwatchError) as caught:
        targets.resolve(f"llmcompressor={empty}", checkout)
    assert f"the repository {empty} has no commits yet" in str(caught.value)
    assert "~2.." not in str(caught.value)

    only = one_commit_repo(tmp_path / "short", "first")
    target = targets.resolve(f"llmcompressor={tmp_path / 'short'}", checkout)
    assert targets.commits(target, targets.default_range(target)) == [only]
    with pytest.raises(KernelwatchError) as caught:
        targets.commits(target, "main~5..main")
    assert "e.g. main (all of its few), or COMMIT^! for one" in str(caught.value)


# ----------------------------------------------------------------------------- with asv

@pytest.mark.slow
def test_run_target_files_the_library_s_commits_apart(clone, llmcompressor_repo, isolated_home,
                                                      tmp_path):
    """The default range (the target's last two commits), the declared variant only, in a
    target environment: results under results-llmcompressor/, none under results/; then
    compare, report, publish and history with --target."""
    flag = target_flag(llmcompressor_repo)
    r = kw(["run", "--target", flag, *SERIES, "--metric", "time", "--track", "time",
            "--torch", "2.13.0", "--skip-machine-facts"], clone)
    assert r.returncode == 0, r.stderr
    head, parent = (git("rev-parse", rev, cwd=llmcompressor_repo) for rev in ("HEAD", "HEAD~1"))
    rows = result_rows.load(clone / "results-llmcompressor")
    timed = {r.commit: r for r in rows if r.benchmark == KEY and r.value is not None}
    assert set(timed) == {head, parent}
    assert all(len(t.samples) == 10 and t.median > 0 for t in timed.values())
    # Each commit in the environment of its own requirement set, torch fixed: the set's
    # pins are what the commit's setup.py asks for, resolved (kernelwatch.libraries.requirements).
    for t in timed.values():
        assert t.env["torch"] == "2.13.0" and "compressed-tensors" not in t.env
        pins = requirements.set_at(clone, t.env_name, t.commit).versions()
        assert "compressed-tensors" in pins and "transformers" in pins and "torch" not in pins
    assert re.search(r"kernelwatch: summary: 2 commits run; benchmark processes \d+ ok, "
                     r"0 skipped, 0 failed", r.stdout)
    ours = clone / "results"
    assert not any(head[:8] in p.name for p in ours.rglob("*.json")) if ours.exists() else True

    r = kw(["compare", "HEAD~1", "HEAD", "--target", flag], clone)
    assert r.returncode in (0, 1) and "| before | after | ratio |" in r.stdout
    assert f"`{KEY}` (`tiny/proj, w4-sym-g128, 16, llmcompressor-eager`)" in r.stdout
    r = kw(["report", "--target", "llmcompressor"], clone)
    assert r.returncode == 0 and "llmcompressor-eager" in r.stdout
    r = kw(["publish", "--target", flag], clone)
    assert r.returncode == 0, r.stderr
    index = json.loads((clone / "html-llmcompressor" / "index.json").read_text())
    assert index["project"] == "llmcompressor"
    assert {head, parent} <= set(index["revision_to_hash"].values())
    assert (clone / "html-llmcompressor" / "kernelwatch" / "index.html").is_file()
    # kernelwatch's change table names the library's commit by its subject.
    subject = git("log", "-1", "--format=%s", cwd=llmcompressor_repo)
    changes = (clone / "html-llmcompressor" / "kernelwatch" / "regressions.html").read_text()
    assert html.escape(subject) in changes

    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    r = kw(["history", "push", "--target", "llmcompressor", "--remote", str(bare)], clone)
    assert r.returncode == 0, r.stderr
    files = git("ls-tree", "-r", "--name-only", "kernelwatch-results-llmcompressor", cwd=bare)
    assert f"{MACHINE}/{head[:8]}-" in files
    assert "kernelwatch-results\n" not in git("branch", "--list", cwd=bare) + "\n"


@pytest.mark.slow
def test_bisect_names_the_slow_commit_and_a_flat_range_exits_1(clone, llmcompressor_repo,
                                                               isolated_home):
    """8 commits after 0.14.0 (0.14.0.1 and ours), the 4th of ours 6-9x slower: bisect reuses
    HEAD's result from the run above (when it ran), measures the rest in one process each,
    and names the commit in at most ceil(log2 8) + 2 = 5 points. From the culprit to HEAD
    nothing got worse: exit 1, with everything already recorded."""
    flag = target_flag(llmcompressor_repo)
    # --factor 3: the injected slowdown is 6-9x, while a busy 2-core machine has been seen to
    # slow one whole process by 2.3x (the default 1.10 is for a quiet runner or a fidelity
    # run's threshold).
    common = [*SERIES, "--target", flag, "--torch", "2.13.0", "--processes", "1",
              "--factor", "3"]
    r = kw(["bisect", "0.14.0", "main", *common], clone)
    assert r.returncode == 0, r.stderr
    culprit = slow_commit(llmcompressor_repo)
    lines = r.stdout.splitlines()
    assert f"{culprit} is the first bad commit" in lines
    ratio = next(ln for ln in lines if ln.startswith("ratio "))
    assert float(ratio.split()[1]) > 3.0, ratio  # 6-9x injected
    tested = next(ln for ln in lines if " points tested of 9 (at most 5)" in ln)
    assert int(tested.split()[0]) <= 5
    assert "### kernelwatch:" in r.stdout and "| + |" in r.stdout  # compare's markdown

    r = kw(["bisect", culprit, "main", *common], clone)
    assert r.returncode == 1, r.stderr
    assert "no regression" in r.stdout and "0 measured now" in r.stdout


@pytest.mark.slow
@pytest.mark.torch_matrix
def test_versions_puts_two_torch_releases_side_by_side(clone, isolated_home):
    """torch 2.13.0 and 2.14.1 through the matrix (the environments the engine's quick run
    builds on the same worker), GPTQ's tiny eager time at HEAD; the versions page shows both
    with the ratio."""
    r = kw(["run", "--versions", "torch=2.13.0,2.14.1", "--workload", "gptq", "--param",
            "shape=tiny/proj", "--param", "scheme=w4-sym-g128", "--param", "blocksize=16",
            "--param", "variant=eager", "--metric", "time", "--track", "time",
            "--skip-machine-facts", "HEAD^!"], clone)
    assert r.returncode == 0, r.stderr
    head = git("rev-parse", "HEAD", cwd=clone)
    rows = [r for r in result_rows.load(clone / "results") if r.commit == head
            and r.benchmark == KEY and r.params.get("variant") == "eager"
            and r.params.get("shape") == "tiny/proj" and r.params.get("blocksize") == "16"
            and r.value is not None and not r.env_name.startswith("existing")]
    assert {r.env["torch"] for r in rows} >= {"2.13.0", "2.14.1"}
    r = kw(["publish"], clone)
    assert r.returncode == 0, r.stderr
    page = (clone / "html" / "kernelwatch" / "torch.html").read_text()
    assert "<th>torch 2.13.0</th><th>torch 2.14.1</th><th>2.14.1 / 2.13.0</th>" in page
    assert "gptq.GptqTime.track_time</td><td>tiny/proj, w4-sym-g128, 16, eager" in page


def test_target_config_builds_the_library_with_kernelwatch_beside_it(clone, llmcompressor_repo):
    """The derived configuration itself: asv's project is the library, kernelwatch's HEAD is
    installed by the install command and is the suite, the library goes in --no-deps."""
    target = targets.resolve(target_flag(llmcompressor_repo), clone)
    conf = targets.target_config({"matrix": {"req": {"torch": ["2.13.0"], "onnx": ["1.2"]}},
                                  "env_dir": ".asv/env"}, target, clone)
    assert conf["project"] == "llmcompressor" and conf["repo"] == str(llmcompressor_repo)
    assert conf["branches"] == ["main"]
    assert "--no-deps" in conf["build_command"][0] and "--no-deps" in conf["install_command"][0]
    assert "kernelwatch-" in conf["install_command"][1]
    assert conf["benchmark_dir"].endswith("/benchmarks")
    assert conf["results_dir"] == str(clone / "results-llmcompressor")
    req = conf["matrix"]["req"]
    assert req["torch"] == ["2.13.0"] and req["compressed-tensors"] == ["0.19.0"]
    assert "onnx" not in req and "llmcompressor" not in req


# ----------------------------------------------------------------------------- real history


@pytest.mark.slow
def test_a_real_history_measures_what_its_adapter_calls_and_names_what_it_cannot(
        clone, llmc_clone, isolated_home):
    """llm-compressor's own history (the bundle): the last two commits of 0.13.0 (one build
    file content, one requirement set, one environment) measured in the form 0.11-0.13 call
    (module + weight_observer), with codes identical to the project's eager GPTQ; 0.3.0
    named as not measurable, with the reason, before anything is built (and the run is not
    "done"); bisect over the two: no regression, nothing measured again."""
    flag = f"llmcompressor={llmc_clone}"
    series = ["--workload", "gptq", "--param", "shape=tiny/proj", "--param",
              "scheme=w4-sym-g128", "--param", "blocksize=16", "--param",
              "variant=llmcompressor-eager", "--torch", "2.13.0"]
    r = kw(["run", "--target", flag, *series, "0.3.0^!"], clone)
    assert r.returncode == 1
    assert ("not measurable here: 1 commit, " in r.stdout
            and "not measurable before 0.4.0 (it follows the release 0.3.0): GPTQ there is "
                "GPTQWrapper" in r.stdout)
    assert "nothing of llmcompressor was measured" in r.stderr
    assert "Creating environments" not in r.stdout

    r = kw(["run", "--target", flag, *series, "--metric", "time", "--metric", "accuracy",
            "--track", "time", "--track", "identical_codes", "--skip-machine-facts",
            "dcd3ca85^..0.13.0"], clone)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("requirement set ") <= 1  # one set for both commits
    rows = result_rows.load(clone / "results-llmcompressor")
    commits = {git("rev-parse", c, cwd=llmc_clone) for c in ("dcd3ca85", "0.13.0")}
    mine = [r for r in rows if r.commit in commits and r.params.get("variant")
            == "llmcompressor-eager" and r.params.get("shape") == "tiny/proj"
            and r.params.get("blocksize") == "16" and r.params.get("scheme") == "w4-sym-g128"]
    codes = {r.commit: r.value for r in mine if r.benchmark.endswith("track_identical_codes")}
    times = {r.commit: r.median for r in mine if r.benchmark == KEY}
    assert codes == dict.fromkeys(commits, 1.0)
    assert set(times) == commits and all(t > 0 for t in times.values())
    # The project's own eager, measured once for the speedups page: at the newest commit.
    eager = [r for r in rows if r.benchmark == KEY and r.params.get("variant") == "eager"
             and r.commit in commits and r.value]
    assert {r.commit for r in eager} == {git("rev-parse", "0.13.0", cwd=llmc_clone)}

    # Two identical processes on this CPU can differ by 15-50%: the bar is far above that,
    # so what is checked is the reading of recorded points, not this machine's weather.
    r = kw(["bisect", "dcd3ca85", "0.13.0", "--target", flag, *series, "--processes", "1",
            "--factor", "2.5"], clone)
    assert r.returncode == 1, r.stdout
    assert "no regression" in r.stdout and "0 measured now, 2 already recorded" in r.stdout
