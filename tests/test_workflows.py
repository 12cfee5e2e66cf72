"""The GitHub workflows: linted by actionlint and zizmor; the PR job's `if:` evaluated on real
event payloads (a fork never reaches a GPU runner); hygiene every job must keep; and the
commands the workflows call, run here: the results branch with concurrent writers, and the
push, nightly and PR paths of scripts/ci/bench.sh."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, branch_files, git, sh
from .github_expressions import evaluate

WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def all_jobs():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            yield path.name, name, job


def test_actionlint_and_zizmor_report_nothing():
    lint = subprocess.run([str(BIN / "actionlint"), "-no-color"], cwd=REPO,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = subprocess.run([str(BIN / "zizmor"), "--offline", str(WORKFLOWS)], cwd=REPO,
                           capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No findings to report" in audit.stdout + audit.stderr


def event(name: str, *, head_repo: str = "kw/kernelwatch", labels=("benchmark",)) -> dict:
    payload = {"pull_request": {"number": 7, "labels": [{"name": n} for n in labels],
                                "head": {"sha": "b" * 40, "repo": {"full_name": head_repo}},
                                "base": {"sha": "a" * 40, "repo": {"full_name": "kw/kernelwatch"}}}}
    return {"github": {"event_name": name, "repository": "kw/kernelwatch",
                       "event": payload if name == "pull_request" else {}}}


def runs(job: dict, contexts: dict) -> bool:
    return bool(evaluate(job.get("if", "true"), contexts))


def test_the_pr_job_runs_a_labelled_same_repository_pr_and_refuses_a_fork():
    jobs = load("gpu-bench.yml")["jobs"]
    pr = jobs["pr"]
    assert runs(pr, event("pull_request"))
    assert not runs(pr, event("pull_request", head_repo="stranger/kernelwatch"))
    assert not runs(pr, event("pull_request", head_repo="KW/kernelwatch-fork"))
    assert not runs(pr, event("pull_request", labels=()))
    assert not runs(pr, event("pull_request", labels=("benchmarks-later",)))
    assert not runs(pr, event("push"))
    # No other GPU job runs for a pull request at all, fork or not.
    for name in ("push", "nightly"):
        assert not runs(jobs[name], event("pull_request"))
        assert not runs(jobs[name], event("pull_request", head_repo="stranger/kernelwatch"))
    assert runs(jobs["push"], event("push")) and runs(jobs["nightly"], event("schedule"))
    # And the PR's code gets no write token: read-only, and no credentials left in .git.
    assert pr["permissions"] == {"contents": "read"}
    checkout = next(s for s in pr["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False


def test_a_target_runs_by_hand_only_read_only_and_its_results_leave_through_a_hosted_job():
    """workflow_dispatch with a target: the target job runs (not nightly), on a read-only
    token with no credentials in .git (the library's code is not ours); the push happens in
    a hosted job that runs none of it. No other trigger starts the target job."""
    jobs = load("gpu-bench.yml")["jobs"]
    dispatch = {"github": {"event_name": "workflow_dispatch", "repository": "kw/kernelwatch",
                           "event": {}},
                "inputs": {"target": "llmcompressor=https://github.com/vllm-project/"
                           "llm-compressor", "range": "main~3..main"}}
    plain = {**dispatch, "inputs": {"target": "", "range": ""}}
    assert runs(jobs["target"], dispatch) and not runs(jobs["nightly"], dispatch)
    assert runs(jobs["nightly"], plain) and not runs(jobs["target"], plain)
    for name in ("pull_request", "push", "schedule"):
        assert not runs(jobs["target"], {**event(name), "inputs": {}}), name
    assert jobs["target"]["permissions"] == {"contents": "read"}
    checkout = next(s for s in jobs["target"]["steps"]
                    if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    push = jobs["target-push"]
    assert push["needs"] == "target" and push["runs-on"] == "ubuntu-24.04"
    assert push["permissions"] == {"contents": "write"}
    assert "bench.sh" not in json.dumps(push["steps"])  # no library code on that job
    step = next(s for s in jobs["target"]["steps"] if "bench.sh" in s.get("run", ""))
    assert step["run"] == "scripts/ci/bench.sh target" and "KW_TARGET" in step["env"]


def test_every_workflow_keeps_the_hygiene_rules():
    for path in WORKFLOWS.glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        triggers = data.get(True, data.get("on"))  # YAML 1.1 reads `on` as true
        assert "pull_request_target" not in triggers, path.name
        assert data.get("permissions") == {}, f"{path.name}: no default permissions"
    for wf, name, job in all_jobs():
        where = f"{wf}:{name}"
        assert "permissions" in job, f"{where}: least privilege is per job"
        if "uses" in job:  # a called workflow: its own jobs carry the timeouts
            continue
        assert "timeout-minutes" in job, where
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{where}: {uses}"
            # Event fields reach scripts through env:, never expanded into the shell.
            assert "${{" not in step.get("run", ""), f"{where}: expression inside run:"
        if "self-hosted" in json.dumps(job.get("runs-on")):
            assert "concurrency" in job, f"{where}: one benchmark at a time per runner kind"


# ----------------------------------------------------------------------------- commands


def test_a_target_on_the_host_is_refused_unless_trusted(tmp_path):
    """On the host a library's code would run as the runner's user, beside the checkout's
    .git: bench.sh refuses before it pulls, builds or runs anything, and names the way out."""
    env = {"KW_RUNNER": "host", "KW_DEVICE": "cpu", "KW_MACHINE": "ci-host",
           "KW_TARGET": "llmcompressor=https://example.invalid/llm-compressor.git",
           "KW_REMOTE": str(tmp_path / "no-such-store.git"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    bench = str(REPO / "scripts" / "ci" / "bench.sh")
    refused = sh([bench, "target"], REPO, env)
    assert refused.returncode == 2
    assert "refusing to run llmcompressor's code on this machine" in refused.stderr
    assert "KW_RUNNER=docker" in refused.stderr and "KW_TRUST_TARGET=1" in refused.stderr
    assert "history" not in refused.stdout + refused.stderr  # nothing ran before it
    # Trusted, it goes on: to the pull, which fails here on the missing store.
    trusted = sh([bench, "target"], REPO, dict(env, KW_TRUST_TARGET="1"))
    assert trusted.returncode != 0 and "refusing" not in trusted.stderr
    assert "cannot fetch kernelwatch-results-llmcompressor" in trusted.stderr


@pytest.mark.slow
def test_push_nightly_and_pr_paths_run_end_to_end(clone, cpu_image, isolated_home, tmp_path):
    """scripts/ci/bench.sh as the workflows call it, on this CPU: push (in the reused image),
    nightly (the torch matrix, on the host) and pr (base vs head, markdown summary). The
    selections match what the asv end-to-end tests record under the same machine names, so
    what is already recorded is not measured twice (as on a runner); the push path measures
    one new series in the container."""
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    bench = str(clone / "scripts" / "ci" / "bench.sh")
    common = {"KW_REMOTE": str(bare), "PATH": f"{BIN}:{os.environ['PATH']}"}

    push = sh([bench, "push"], clone, dict(common, KW_RUNNER="docker", KW_DEVICE="cpu",
              KW_IMAGE=cpu_image, KW_NETWORK="host", KW_MACHINE="ci-docker-cpu",
              KW_BEFORE="0" * 40,
              KW_BUILD_ARGS="", KW_RUN_ARGS="--workload rope --param shape=tiny "
              "--param form=rotate-half --param dtype=float32 --param variant=eager "
              "--metric time --track time --torch 2.13.0"))
    assert push.returncode == 0, push.stderr
    assert f"reusing image {cpu_image}" in push.stdout
    head = git("rev-parse", "HEAD", cwd=clone)
    pushed = [f for f in branch_files(bare) if f.startswith("ci-docker-cpu/")]
    assert f"ci-docker-cpu/{head[:8]}-" in " ".join(pushed)

    nightly = sh([bench, "nightly"], clone, dict(common, KW_RUNNER="host",
                 KW_MACHINE="kernelwatch-test", KW_RUN_ARGS="--quick --workload rope"))
    assert nightly.returncode == 0, nightly.stderr
    recorded = [f for f in branch_files(bare) if f.startswith(f"kernelwatch-test/{head[:8]}")
                and "-existing-" not in f]  # other tests' --existing runs share the name
    assert len(recorded) == 2  # HEAD in both torch environments of the matrix
    local = {str(p.relative_to(clone / "results")) for p in (clone / "results").rglob("*.json")
             if p.parent.name in ("ci-docker-cpu", "kernelwatch-test")}
    assert local <= set(branch_files(bare))  # nothing measured here is missing there

    summary = tmp_path / "summary.md"
    # RoPE's tiny time under torch 2.13.0: both commits are recorded by the quick-run test
    # when the whole suite runs, so the pr path's compare is what this costs.
    pr = sh([bench, "pr"], clone, dict(common, KW_RUNNER="host", KW_MACHINE="kernelwatch-test",
            KW_RUN_ARGS="--workload rope --param shape=tiny --param form=rotate-half "
            "--param dtype=float32 --param variant=eager --param variant=compile "
            "--metric time --track time --torch 2.13.0", KW_SUMMARY=str(summary),
            KW_BASE=git("rev-parse", "HEAD~1", cwd=clone), KW_HEAD=head))
    text = summary.read_text()
    assert "### kernelwatch:" in text and "| before | after | ratio |" in text
    assert pr.returncode in (0, 1) and (pr.returncode == 1) == ("\n| + |" in text)
