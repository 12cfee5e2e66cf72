"""The kernelwatch command: help, clear errors for bad input, environment capture."""

import json
import os
import re
import shlex
import subprocess

import pytest

from .conftest import REPO, kernelwatch_exe


def kw(*args, cwd=REPO, env=None):
    return subprocess.run([kernelwatch_exe(), *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def test_help_explains_commands():
    out = kw("--help").stdout
    for cmd in ("run", "publish", "env", "list", "report", "compare"):
        assert cmd in out
    assert "--quick" in kw("run", "--help").stdout


def test_unknown_variant_is_one_clear_error():
    r = kw("run", "--variant", "nope", "--dry-run")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "kernelwatch: error: unknown variant 'nope' for rope; valid variants: eager, compile, "
        "compile-dynamic, compile-max-autotune, te-fused, liger, triton"
    )


def test_unknown_shape_and_workload():
    r = kw("run", "--shape", "llama-70b", "--dry-run")
    assert r.returncode == 2 and "valid shapes: tiny, llama-3.2-1b" in r.stderr
    r = kw("run", "--workload", "nope", "--dry-run")
    assert r.returncode == 2 and "valid workloads: " in r.stderr and "rope" in r.stderr


def test_dry_run_selects_the_requested_parameters(isolated_home):
    r = kw("run", "--shape", "tiny", "--variant", "eager", "--metric", "time", "--dry-run")
    assert r.returncode == 0, r.stderr
    # kernelwatch leaves recorded results out itself (planner.py), per parameter combination;
    # asv's own skip flag works per benchmark and would skip unrecorded combinations.
    assert "HEAD~2..HEAD" in r.stdout and "--skip-existing-successful" not in r.stdout
    assert "(RopeTime)" in r.stdout and "(tiny)" in r.stdout and "(eager)" in r.stdout


def test_options_may_follow_the_range_and_asv_args_follow_a_double_dash(isolated_home):
    r = kw("run", "HEAD~1..HEAD", "--workload", "gptq", "--variant", "eager", "--dry-run",
           "--", "--show-stderr", "--durations", "3")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip().splitlines()[-1])
    assert "HEAD~1..HEAD" in argv and argv[-3:] == ["--show-stderr", "--durations", "3"]
    assert any(a.startswith("^gptq\\.") and "(eager)" in a for a in argv)


def test_an_unknown_branch_is_one_clear_error(isolated_home):
    r = kw("run", "--branch", "no-such-branch", "--workload", "rope", "--dry-run")
    assert r.returncode == 2
    assert r.stderr.strip() == ("kernelwatch: error: --branch no-such-branch: no such branch in "
                                "this repository; `git branch` lists them")


def test_existing_refuses_a_commit_range():
    r = kw("run", "--existing", "HEAD~3..HEAD", "--dry-run")
    assert r.returncode == 2 and "cannot run a commit range" in r.stderr


def test_env_records_torch_cuda_driver_gpu_cpu_and_threads():
    info = json.loads(kw("env", "--json").stdout)
    for key in ("torch", "cuda", "driver", "gpu", "cpu", "threads", "num_cpu"):
        assert info[key], key
    # what a variant's server import is made without (Liger's: peft) is named too,
    # "none" where it is not installed
    assert info["peft"], "peft"


def test_corrupt_results_file_is_named_and_kept(tmp_path):
    repo = tmp_path / "repo"
    machine = repo / "results" / "box"
    machine.mkdir(parents=True)
    (repo / "asv.conf.json").write_text((REPO / "asv.conf.json").read_text())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q",
                    "--allow-empty", "-m", "x"], cwd=repo, check=True)
    (machine / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    bad = machine / "deadbeef-virtualenv-py3.11.json"
    bad.write_text('{"version": 2, "results": {')
    for cmd in ("report", "publish"):
        r = kw(cmd, cwd=repo)
        assert r.returncode == 2, r.stdout
        assert str(bad) in r.stderr and "Move them out of results/" in r.stderr
    assert bad.read_text() == '{"version": 2, "results": {'
    assert not (repo / "html").exists()  # publish stopped before asv could wipe anything


def test_run_stops_at_a_corrupt_result_file_of_a_commit_it_would_measure(tmp_path,
                                                                          isolated_home):
    """`run` reads what is recorded before it plans asv's calls: a file it cannot read is the
    same one message as for report and publish, and stays as it was."""
    from kernelwatch.engine import asvrun

    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    env = asvrun.environment_names(repo / "asv.conf.json", None)[0]
    (repo / "results" / "box").mkdir(parents=True)
    (repo / "results" / "benchmarks.json").write_text(json.dumps({"version": 2}))
    from asv.results import get_filename

    bad = repo / "results" / get_filename("box", head, env)  # asv hashes a long env name
    bad.write_text('{"version": 2, "results": {')
    r = kw("run", "--machine", "box", "--dry-run", "HEAD^!", cwd=repo)
    assert r.returncode == 2, r.stdout
    assert str(bad) in r.stderr and "Move them out of results/" in r.stderr
    assert bad.read_text() == '{"version": 2, "results": {'


def test_selection_follows_each_workloads_parameters():
    r = kw("run", "--workload", "gptq", "--shape", "tiny/proj", "--scheme", "w4-sym-g128",
           "--blocksize", "16", "--variant", "eager", "--metric", "time", "--dry-run")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip().splitlines()[-1])
    regex = argv[argv.index("-b") + 1]
    assert re.search(regex, "gptq.GptqTime.track_time('tiny/proj', 'w4-sym-g128', '16', 'eager')")
    assert not re.search(regex, "gptq.GptqTime.track_time('tiny/proj', 'w4-sym-g128', '128', "
                                "'eager')")
    r = kw("run", "--workload", "gptq", "--form", "interleaved", "--dry-run")
    assert r.returncode == 2
    assert "workload gptq has no form parameter; its parameters: shape, scheme" in r.stderr
    r = kw("run", "--workload", "gptq", "--blocksize", "7", "--dry-run")
    assert r.returncode == 2
    assert "unknown blocksize '7' for gptq; valid blocksizes: 16, 32, 64, 128" in r.stderr


TOY_WORKLOAD = '''"""A throwaway workload: proof that adding one is two files."""
from kernelwatch.workloads.declaration import SuitePart, Variant, Workload, variant_table

SPEC = Workload(
    name="toy", params={"size": ["one", "two"], "variant": ["eager", "compile"]},
    metrics={"time": "ToyTime", "accuracy": "ToyAccuracy"},
    variants=variant_table(Variant("eager"), Variant("compile")),
    suites={"quick": [SuitePart({"size": ["one"], "variant": ["eager"]},
                                ("time", "accuracy"))]})
'''
TOY_BENCHMARKS = '''from kernelwatch.workloads.toy.spec import SPEC


class ToyTime:
    params = list(SPEC.params.values())
    param_names = list(SPEC.params)
    version = "1"

    def track_time(self, size, variant):
        return 1.0
'''


def test_a_new_workload_is_two_files_and_the_cli_selects_it(tmp_path, isolated_home):
    """A workload's declaration and a benchmark file in a clone, nothing else edited: `list` shows
    its parameters and `run --dry-run` selects it, by --param and in --quick."""
    import os
    import sys

    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    (repo / "src" / "kernelwatch" / "workloads" / "toy").mkdir()
    (repo / "src" / "kernelwatch" / "workloads" / "toy" / "spec.py").write_text(TOY_WORKLOAD)
    (repo / "benchmarks" / "toy.py").write_text(TOY_BENCHMARKS)
    status = subprocess.run(["git", "status", "--porcelain", "-uall"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(filter(None, status)) == ["?? benchmarks/toy.py",
                                            "?? src/kernelwatch/workloads/toy/spec.py"]
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}

    def clone_kw(*args):
        return subprocess.run([sys.executable, "-m", "kernelwatch.cli", *args], cwd=repo,
                              env=env, capture_output=True, text=True)

    r = clone_kw("list", "toy")
    assert r.returncode == 0, r.stderr
    assert "size:" in r.stdout and "one, two" in r.stdout and "time (ToyTime)" in r.stdout
    r = clone_kw("run", "--workload", "toy", "--param", "size=two", "--metric", "time",
                 "--dry-run")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout.strip().splitlines()[-1])
    regex = argv[argv.index("-b") + 1]
    assert re.search(regex, "toy.ToyTime.track_time('two', 'eager')")
    assert not re.search(regex, "toy.ToyTime.track_time('one', 'eager')")
    r = clone_kw("run", "--quick", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "toy\\.(ToyTime|ToyAccuracy)" in r.stdout
    r = clone_kw("run", "--workload", "toy", "--param", "size=three", "--dry-run")
    assert r.returncode == 2 and "unknown size 'three' for toy; valid sizes: one, two" in r.stderr
    # The repository's own listing does not know it: nothing leaked outside the clone.
    assert "toy" not in kw("list").stdout


def test_param_flag_and_gpt2_listing():
    out = kw("list", "gpt2").stdout
    for name in ("size:", "prompt_tokens:", "new_tokens:", "threads:", "variant:",
                 "checkpoint:", "onnx-int8", "int8-dynamic-as-seed", "gpt2-xl"):
        assert name in out, name
    r = kw("run", "--workload", "gpt2", "--param", "size", "--dry-run")
    assert r.returncode == 2 and "--param takes NAME=VALUE" in r.stderr
    r = kw("run", "--workload", "gpt2", "--param", "shape=tiny", "--dry-run")
    assert r.returncode == 2 and "workload gpt2 has no shape parameter" in r.stderr
    r = kw("run", "--workload", "gpt2", "--metric", "compile", "--dry-run")
    assert r.returncode == 2 and "unknown metric 'compile' for gpt2" in r.stderr


ASV_OUTPUT = """\
· Creating environments
· Discovering benchmarks
·· Installing 9fe3bb1d <main> into virtualenv-py3.11-torch2.13.0
· Running 3 total benchmarks (1 commits * 1 environments * 3 benchmarks)
[ 0.00%] · For kernelwatch commit 9fe3bb1d <main>:
[ 0.00%] ·· Benchmarking virtualenv-py3.11-torch2.13.0
[33.33%] ··· ...nment.Environment.track_copy_seconds_per_gib             67.2ms
[66.67%] ··· gptq.GptqFirstRun.track_first_run                      1/2 failed
[66.67%] ··· ========= ==========
              variant
[66.67%] ···· For parameters: 'tiny/proj', 'w4-sym-g128', '128', 'compile-block'
              W1130 torch/utils/_pytree.py:630] an Enum subclass ... will be an error in a future
              asv: benchmark timed out (timeout 8.0s)
[100.00%] ··· rope.RopeTime.track_time                                  ok
"""


def test_progress_keeps_asv_output_in_the_log_and_shows_steps_and_failures(tmp_path):
    """Without -v, a run shows asv's steps, a line per tenth of the way (not a terminal) and
    its failures with their parameters; benchmark stderr noise stays in the log."""
    import io

    from kernelwatch.engine.progress import AsvProgress

    log_file = tmp_path / "run.log"
    out = io.StringIO()
    with log_file.open("w") as log:
        progress = AsvProgress(log, "asv", out)
        for line in ASV_OUTPUT.splitlines(keepends=True):
            progress.feed(line)
        progress.close()
    shown = out.getvalue()
    print(shown)
    assert log_file.read_text() == ASV_OUTPUT
    assert "asv: Installing 9fe3bb1d" in shown and "asv: Running 3 total" in shown
    assert "1/2 failed" in shown and "timed out (timeout 8.0s)" in shown
    assert "For parameters: 'tiny/proj', 'w4-sym-g128', '128', 'compile-block'" in shown
    assert "_pytree" not in shown and "=====" not in shown
    assert "asv: 100% (3 of 3 benchmarks" in shown and "asv: done, 3 of 3 benchmarks" in shown


def test_docker_build_with_te_names_what_it_needs():
    """TransformerEngine compiles from source: a CPU image or the default python base is
    refused before any engine is asked, with the fix."""
    r = kw("docker", "build", "--with-te")
    assert r.returncode == 2 and "--with-te needs --device cuda" in r.stderr
    r = kw("docker", "build", "--with-te", "--device", "cuda")
    assert r.returncode == 2 and "--with-te needs --base-image" in r.stderr
    assert "docs/workloads.md" in r.stderr


def test_a_machine_name_is_a_plain_name_never_a_path(tmp_path, isolated_home):
    for flag in (["--machine", "../../evil"], ["--machine", "/tmp/evil"]):
        r = kw("run", "--existing", *flag, "--workload", "rope", "--shape", "tiny",
               "--variant", "eager", "--metric", "time")
        assert r.returncode == 2
        assert f"--machine {flag[1]!r} is not a plain name" in r.stderr
    env = {**os.environ, "KERNELWATCH_MACHINE": str(tmp_path / "abs")}
    r = kw("run", "--existing", "--workload", "rope", "--dry-run", env=env)
    assert r.returncode == 2 and "KERNELWATCH_MACHINE=" in r.stderr and "plain name" in r.stderr
    r = kw("compare", "HEAD~1", "HEAD", "--base-machine", "../x")
    assert r.returncode == 2 and "--base-machine '../x' is not a plain name" in r.stderr
    assert not (tmp_path / "abs").exists() and not (REPO.parent.parent / "evil").exists()


def test_every_setting_is_checked_before_anything_starts(isolated_home):
    """A bad value used to reach every benchmark process, fail them all, and -5 was written
    into benchmarks.json; now it is one message and nothing runs."""
    before = sorted(p.name for p in REPO.glob(".asv-kernelwatch*"))
    cases = {"KERNELWATCH_CPU_THREADS": ["abc", "0"],
             "KERNELWATCH_BENCHMARK_TIMEOUT": ["abc", "-5", "nan"],
             "KERNELWATCH_INJECT_SLOWDOWN": ["lots"]}
    for name, values in cases.items():
        for value in values:
            r = kw("run", "--existing", "--workload", "rope", "--dry-run",
                   env={**os.environ, name: value})
            assert r.returncode == 2, (name, value)
            assert r.stderr.startswith(f"kernelwatch: error: {name}={value!r} is not valid")
            assert "unset it for the default" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in REPO.glob(".asv-kernelwatch*")) == before


def test_quick_narrows_by_param_and_metric_or_refuses(isolated_home):
    r = kw("run", "--quick", "--workload", "rope", "--param", "variant=eager", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("kernelwatch: would run ")  # the estimate, then the calls
    calls = [line for line in r.stdout.splitlines() if not line.startswith("kernelwatch:")]
    regexes = [a for line in calls for a in shlex.split(line) if a.startswith("^rope")]
    assert regexes and all("(eager)" in a for a in regexes)
    assert not any("compile" in a for a in regexes)  # the compile selection is dropped
    r = kw("run", "--quick", "--workload", "rope", "--param", "variant=nosuch", "--dry-run")
    assert r.returncode == 2 and "unknown variant 'nosuch'" in r.stderr
    r = kw("run", "--quick", "--workload", "rope", "--param", "variant=liger", "--dry-run")
    assert r.returncode == 2 and "variant=liger is outside it: drop --quick" in r.stderr
    r = kw("run", "--quick", "--param", "variant=eager", "--dry-run")
    assert r.returncode == 2 and "add --workload W" in r.stderr
    r = kw("run", "--quick", "--metric", "memory", "--dry-run")
    assert r.returncode == 2 and "selects none of them: drop --quick" in r.stderr
    r = kw("run", "--quick", "--metric", "time", "--dry-run")
    assert r.returncode == 0 and "Accuracy" not in r.stdout and "RopeTime" in r.stdout
    # A workload setting is checked with --quick too (it was ignored).
    r = kw("run", "--quick", "--workload", "gpt2", "--param", "checkpoint=/no/such/dir",
           "--dry-run")
    assert r.returncode == 2 and "/no/such/dir" in r.stderr


def test_a_suite_takes_several_workloads_parts(isolated_home):
    r = kw("run", "--suite", "quick", "--workload", "rope", "--workload", "vae", "--dry-run")
    assert r.returncode == 0, r.stderr
    regexes = [a for line in r.stdout.splitlines() if not line.startswith("kernelwatch:")
               for a in shlex.split(line) if a.startswith("^")]
    assert {a[1:].split("\\")[0] for a in regexes} == {"rope", "vae", "environment"}
    r = kw("run", "--workload", "rope", "--workload", "vae", "--dry-run")
    assert r.returncode == 2 and "add --suite NAME" in r.stderr
    r = kw("run", "--quick", "--workload", "rope", "--workload", "vae", "--param",
           "variant=eager", "--dry-run")
    assert r.returncode == 2 and "run once per workload" in r.stderr
    r = kw("run", "--suite", "quick", "--workload", "rope", "--workload", "vae", "--metric",
           "memory", "--dry-run")
    assert r.returncode == 2 and "once per workload, without the suite" in r.stderr
    r = kw("run", "--quick", "--workload", "rope", "--workload", "rope", "--dry-run")
    assert r.returncode == 0 and r.stdout.count("^rope") == kw(
        "run", "--quick", "--workload", "rope", "--dry-run").stdout.count("^rope")


def test_outside_a_git_repository_is_one_message(tmp_path, isolated_home):
    copy = tmp_path / "copy"
    copy.mkdir()
    subprocess.run(f"git archive HEAD | tar -x -C {copy}", shell=True, cwd=REPO, check=True)
    (copy / "results" / "box").mkdir(parents=True)
    for cmd in (["run", "--workload", "rope", "--dry-run"], ["publish"]):
        r = kw(*cmd, cwd=copy)
        assert r.returncode == 2, r.stdout
        assert "is not a git repository with a commit" in r.stderr, r.stderr
        assert "git init && git add -A" in r.stderr and "Traceback" not in r.stderr


def test_a_damaged_inventory_is_left_out_of_the_site_and_publish_goes_on(tmp_path):
    """An inventory cut short beside a readable result: the site is published without it,
    and the file is named (it used to stop the publish, as a corrupt result does)."""
    from .conftest import write_asv_results

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "asv.conf.json").write_text((REPO / "asv.conf.json").read_text())
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q",
                    "--allow-empty", "-m", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    write_asv_results(repo, "box", [head], "bench")
    damaged = repo / "results" / "box" / f"{head[:8]}-env.kernels"
    damaged.write_text('{"bench(tiny)": {"kernels": ["triton_')
    r = kw("publish", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert f"left out of the site (unreadable, kept as it is in results/): {damaged}" in r.stderr
    assert (repo / "html" / "index.json").is_file()
    assert damaged.read_text() == '{"bench(tiny)": {"kernels": ["triton_'


def test_an_empty_shard_is_a_clear_no_op():
    """A CI matrix wider than the selection: shard 2 of 2 of a one-case selection has
    nothing to run. It says so and exits 0 (it was an error, failing that runner's job)."""
    r = kw("run", "--workload", "gptq", "--shape", "tiny/proj", "--scheme", "w4-sym-g128",
           "--blocksize", "16", "--variant", "eager", "--metric", "time", "--shard", "2/2",
           "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "kernelwatch: shard 2/2 of this selection is empty: it has 1 class x parameter "
        "combinations, dealt to shards 1-1 of 2; nothing to run here, the other shards "
        "measure it all (give at most 1 shards to use every runner)")
    assert "asv" not in r.stdout and r.stderr == ""


BAD_INPUT = {
    "compare-factor": (("compare", "HEAD~1", "HEAD", "--factor", "0.5"),
                       "'0.5' is not a ratio above 1: 1.05 counts a 5% change"),
    "bisect-factor": (("bisect", "HEAD~1", "HEAD", "--workload", "rope", "--factor", "nan"),
                      "'nan' is not a ratio above 1"),
    "run-track": (("run", "--track", "tiem", "--dry-run"),
                  "unknown track 'tiem'; valid tracks: caller_time, "),
    "bisect-variant": (("bisect", "HEAD~2", "HEAD", "--workload", "rope", "--param",
                        "variant=bogus", "--torch", "2.13.0"),
                       "unknown variant 'bogus' for rope; valid variants: eager"),
    "base-machine": (("compare", "HEAD~1", "HEAD", "--base-machine", ""),
                     "--base-machine '' is not a plain name"),
    "slowdowns": (("fidelity", "--slowdowns", "0.05,-1"),
                  "--slowdowns 0.05,-1: each is a fraction between 0 and 10"),
    "timeout": (("fidelity", "--timeout", "0"), "--timeout 0: seconds one process may take"),
    "remote": (("history", "pull", "--remote", "nosuchremote"),
               "--remote 'nosuchremote' is neither a git remote of"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_message_before_any_work(case, isolated_home):
    args, message = BAD_INPUT[case]
    r = kw(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "measuring" not in r.stdout


def test_a_gpu_suite_on_a_machine_without_a_gpu_says_where_it_runs(isolated_home):
    from kernelwatch import environment

    if environment.why_no_gpu() is None:
        pytest.skip("this machine shows a GPU: the suite runs here")
    r = kw("run", "--suite", "gpu-commit", "--skip-machine-facts")
    assert r.returncode == 2 and r.stdout == ""
    assert "--suite gpu-commit times real model shapes on an NVIDIA GPU" in r.stderr
    assert "run it on a GPU runner" in r.stderr and "or --quick here" in r.stderr
    assert not (isolated_home / ".asv-machine.json").exists()  # refused before anything
    dry = kw("run", "--suite", "gpu-commit", "--existing", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "this machine shows none" in dry.stdout
    assert "kernelwatch: would run " in dry.stdout
    assert not (isolated_home / ".asv-machine.json").exists()  # a dry run writes no machine


def test_a_first_dry_run_discovers_the_suite_to_count_it(tmp_path, isolated_home):
    """A runner's first `--dry-run` has no results/benchmarks.json to count from (asv writes
    it at its first discovery): it discovers the suite as that first run would, and counts.
    It writes benchmarks.json and no result, machine file or machine folder."""
    dest = tmp_path / "kernelwatch"
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    r = kw("run", "--existing", "--suite", "quick", "--dry-run", cwd=dest)
    assert r.returncode == 0, r.stderr
    assert "discovering the suite to count its combinations" in r.stdout
    count = re.search(r"would run (\d+) benchmark processes", r.stdout)
    assert count and int(count.group(1)) > 10, r.stdout
    assert sorted(p.name for p in (dest / "results").iterdir()) == ["benchmarks.json"]
    assert not (isolated_home / ".asv-machine.json").exists()
    again = kw("run", "--existing", "--suite", "quick", "--dry-run", cwd=dest)
    assert "discovering" not in again.stdout
    assert f"would run {count.group(1)} benchmark processes" in again.stdout


def test_a_first_dry_run_whose_discovery_fails_says_so_and_writes_nothing(tmp_path,
                                                                        isolated_home):
    """A benchmark file that does not import: the dry run's discovery fails with asv's last
    line and the command that shows its whole message, counts nothing, and leaves no
    results/ behind (no partial benchmarks.json for a later run to count from)."""
    dest = tmp_path / "kernelwatch"
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    with (dest / "benchmarks" / "rope.py").open("a") as f:
        f.write("raise RuntimeError('a broken benchmark file')\n")
    r = kw("run", "--existing", "--suite", "quick", "--dry-run", cwd=dest)
    assert r.returncode == 0, r.stderr
    assert "the suite's discovery failed (" in r.stdout
    assert "to see asv's whole message, run: " in r.stdout
    assert "-m kernelwatch.engine.discovery --config " in r.stdout
    assert "is not there (the discovery above failed)" in r.stdout
    assert not (dest / "results").exists()


def test_a_track_is_named_with_or_without_its_prefix(isolated_home):
    plain, prefixed = (kw("run", "--quick", "--track", t, "--dry-run") for t in
                       ("time", "track_time"))
    assert plain.returncode == prefixed.returncode == 0, prefixed.stderr
    assert "track_(time)" in prefixed.stdout and prefixed.stdout == plain.stdout
