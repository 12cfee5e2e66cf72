"""The GitHub workflows: linted by actionlint and zizmor; the PR job's `if:` evaluated on real
event payloads (a fork never reaches a GPU runner); hygiene every job must keep; and the
commands the workflows call, run here: the results branch with concurrent writers, and the
push, nightly and PR paths of scripts/ci/bench.sh."""

import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, branch_files, git, sh, write_asv_results
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


def test_zizmor_auditor_finds_no_persisted_credentials_and_no_unjustified_runner():
    """zizmor's strictest persona: no artipacked (credentials persisted in a checkout), and
    self-hosted-runner only where an ignore comment sits on the `runs-on:` line, with its
    reason on the line above and in docs/security.md."""
    audit = subprocess.run([str(BIN / "zizmor"), "--persona=auditor", "--offline", "--format",
                            "json", str(WORKFLOWS)], cwd=REPO, capture_output=True, text=True)
    found = {f["ident"] for f in json.loads(audit.stdout)}
    assert not found & {"artipacked", "self-hosted-runner"}, found
    lines = (WORKFLOWS / "gpu-bench.yml").read_text().splitlines()
    ignored = [i for i, line in enumerate(lines) if "zizmor: ignore[self-hosted-runner]" in line]
    assert len(ignored) == 4
    for i in ignored:
        assert lines[i].strip().startswith("runs-on: [self-hosted")
        assert lines[i - 1].strip().startswith("# The GPUs are there")
    assert "zizmor: ignore[self-hosted-runner]" in (REPO / "docs" / "security.md").read_text()


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


def _checkouts(job: dict) -> list[dict]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith("actions/checkout")]


def _runs_benchmark_code(job: dict) -> bool:
    return ("self-hosted" in json.dumps(job.get("runs-on"))
            or any("bench.sh" in step.get("run", "") for step in job.get("steps", [])))


def test_no_token_or_credential_meets_benchmark_code():
    """GPU runners keep their state from job to job (the workspace's .git, Docker volumes):
    what one job's code plants there, a later job runs. So no job that runs benchmark code
    may hold a write permission or keep credentials in .git, and within such a job the token
    goes only to a step that runs before bench.sh and is not bench.sh; its results leave as
    an artifact that a hosted job, running no benchmark code, pushes."""
    benchmark_jobs = []
    for wf, name, job in all_jobs():
        where = f"{wf}:{name}"
        for checkout in _checkouts(job):  # no job keeps a token in .git, benchmark or not
            assert checkout.get("with", {}).get("persist-credentials") is False, where
        if not _runs_benchmark_code(job):
            continue
        benchmark_jobs.append(name)
        permissions = job.get("permissions", {})
        assert "write" not in permissions.values(), f"{where}: {permissions}"
        steps = job["steps"]
        bench = next(i for i, s in enumerate(steps) if "bench.sh" in s.get("run", ""))
        for i, step in enumerate(steps):
            if "github.token" in json.dumps(step) or "secrets." in json.dumps(step):
                assert i < bench and "history.sh pull" in step.get("run", ""), \
                    f"{where}: step {i} gets a token"
        assert steps[bench]["env"].get("KW_HISTORY") == "none", where
    assert sorted(benchmark_jobs) == ["nightly", "pr", "push", "target"]

    jobs = load("gpu-bench.yml")["jobs"]
    for gpu_jobs, pusher, artifact in ((["push", "nightly"], "results-push", "results-"),
                                       (["target"], "target-push", "target-results-")):
        for name in gpu_jobs:
            upload = next(s for s in jobs[name]["steps"]
                          if s.get("uses", "").startswith("actions/upload-artifact"))
            assert upload["with"]["name"].startswith(artifact), name
        push = jobs[pusher]
        assert sorted(push["needs"] if isinstance(push["needs"], list) else [push["needs"]]) \
            == sorted(gpu_jobs)
        assert push["runs-on"] == "ubuntu-24.04" and not _runs_benchmark_code(push)
        assert push["permissions"] == {"contents": "write"}
        download = next(s for s in push["steps"]
                        if s.get("uses", "").startswith("actions/download-artifact"))
        assert download["with"]["pattern"] == artifact + "*"
        assert "scripts/ci/history.sh push" in json.dumps(push["steps"])
    # The site is built after the results landed, not after the GPU jobs.
    assert jobs["publish"]["needs"] == "results-push"


def test_a_push_and_a_nightly_run_land_through_results_push():
    """The hosted job runs after push or nightly (also when one GPU kind of the matrix
    failed, for the others' artifacts), and not when neither ran (a pull request, a
    target)."""
    push = load("gpu-bench.yml")["jobs"]["results-push"]

    def after(push_result: str, nightly_result: str) -> bool:
        return runs(push, {"needs": {"push": {"result": push_result},
                                     "nightly": {"result": nightly_result}}})
    assert after("success", "skipped") and after("skipped", "success")
    assert after("failure", "skipped")
    assert not after("skipped", "skipped")


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


class _GitServer(http.server.BaseHTTPRequestHandler):
    """git's smart HTTP (git http-backend) behind HTTP basic auth, as GitHub answers a
    private repository: 401 without the token."""
    root: Path
    token: str

    def _serve(self) -> None:
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        expected = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if scheme.lower() != "basic" or credentials != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {**os.environ, "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "x-access-token",
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def private_store(tmp_path):
    """An empty bare repository served over HTTP that answers only to the token."""
    (tmp_path / "srv").mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "srv" / "store.git")],
                   check=True)
    handler = type("Handler", (_GitServer,), {"root": tmp_path / "srv", "token": "s3cret"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/store.git", tmp_path / "srv/store.git"
    server.shutdown()


def _checkout_with_history_script(dest: Path) -> Path:
    """A checkout holding what history.sh needs: the script and asv.conf.json, committed."""
    (dest / "scripts" / "ci").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "ci" / "history.sh", dest / "scripts" / "ci")
    shutil.copy(REPO / "asv.conf.json", dest)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "checkout", cwd=dest)
    return dest


def test_history_sh_hands_the_token_to_git_and_a_persisted_one_would_not_reach_it(
        private_store, tmp_path):
    """The hosted push jobs check out with persist-credentials: false and give the token to
    scripts/ci/history.sh, which hands it to git for that one command. That is also what
    makes the push work: `kernelwatch history` fetches and pushes from a temporary clone,
    where the header actions/checkout persists (v6 and later: an includeIf of a credentials
    file, scoped to the workspace's .git) does not apply. A private store answers 401 to
    anything else."""
    url, bare = private_store
    runner = _checkout_with_history_script(tmp_path / "runner")
    write_asv_results(runner, "gpu-h100", ["a" * 40, "b" * 40], "rope")
    script = str(runner / "scripts" / "ci" / "history.sh")
    server = url.rsplit("/", 1)[0]
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "KW_REMOTE": url, "GITHUB_SERVER_URL": server,
           "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_GLOBAL": str(tmp_path / "no-gitconfig")}

    # What actions/checkout leaves with persist-credentials: true.
    creds = tmp_path / "git-credentials-1.config"
    header = base64.b64encode(b"x-access-token:s3cret").decode()
    git("config", "--file", str(creds), f"http.{server}/.extraheader",
        f"AUTHORIZATION: basic {header}", cwd=runner)
    git("config", f"includeIf.gitdir:{runner}/.git.path", str(creds), cwd=runner)
    assert git("ls-remote", url, cwd=runner) == ""  # it works in the checkout itself...
    persisted = sh([script, "push"], runner, env)
    assert persisted.returncode != 0  # ...not in kernelwatch's temporary clone
    assert "could not read Username" in persisted.stderr or "401" in persisted.stderr
    git("config", "--unset", f"includeIf.gitdir:{runner}/.git.path", cwd=runner)

    wrong = sh([script, "push"], runner, dict(env, KW_GIT_TOKEN="guess"))
    assert wrong.returncode != 0
    pushed = sh([script, "push"], runner, dict(env, KW_GIT_TOKEN="s3cret"))
    assert pushed.returncode == 0, pushed.stderr
    assert "gpu-h100/aaaaaaaa-env.json" in branch_files(bare)
    assert "s3cret" not in (runner / ".git" / "config").read_text()

    reader = _checkout_with_history_script(tmp_path / "reader")
    pulled = sh([str(reader / "scripts" / "ci" / "history.sh"), "pull"], reader,
                dict(env, KW_GIT_TOKEN="s3cret"))
    assert pulled.returncode == 0, pulled.stderr
    assert (reader / "results" / "gpu-h100" / "bbbbbbbb-env.json").is_file()




def test_the_parts_of_a_run_pull_one_state_of_the_results_branch(tmp_path):
    """push and nightly run in parts dealt by the durations the results branch records; a
    part that pulls after the previous run's results-push landed would deal another way. The
    hosted `records` job names the branch's commit (history.sh head) and every part pulls
    that commit, whatever landed since."""
    jobs = load("gpu-bench.yml")["jobs"]
    records = jobs["records"]
    assert records["runs-on"] == "ubuntu-24.04" and not _runs_benchmark_code(records)
    assert records["permissions"] == {"contents": "read"}
    dispatch = {"github": {"event_name": "workflow_dispatch", "repository": "kw/kernelwatch",
                           "event": {}}, "inputs": {"target": "", "range": ""}}
    triggers = [{**event(name), "inputs": {}} for name in ("push", "schedule", "pull_request")]
    triggers += [dispatch, {**dispatch, "inputs": {"target": "x=https://example.org/x",
                                                   "range": ""}}]
    for trigger in triggers:  # wherever a sharded job runs, records runs before it
        assert runs(records, trigger) == any(runs(jobs[n], trigger) for n in ("push", "nightly"))
    for name in ("push", "nightly"):
        assert jobs[name]["needs"] == "records"
        pull = next(s for s in jobs[name]["steps"] if "history.sh pull" in s.get("run", ""))
        # an empty output (records failed to say) is refused, not read as "the newest"
        assert pull["env"]["KW_RESULTS_AT"] == "${{ needs.records.outputs.commit || 'missing' }}"
    head_step = next(s for s in records["steps"] if s.get("id") == "head")
    assert head_step["shell"] == "bash"  # GitHub adds pipefail only where bash is named

    store = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(store)], check=True)
    runner = _checkout_with_history_script(tmp_path / "runner")
    script = str(runner / "scripts" / "ci" / "history.sh")
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "KW_REMOTE": str(store)}
    assert sh([script, "head"], runner, env, check=True).stdout.strip() == "commit=none"
    empty = sh([script, "pull"], runner, dict(env, KW_RESULTS_AT="none"), check=True)
    assert "did not exist when this run began" in empty.stdout

    write_asv_results(runner, "gpu-h100", ["a" * 40], "rope")
    sh([script, "push"], runner, env, check=True)
    head = sh([script, "head"], runner, env, check=True).stdout.strip()
    assert head == f"commit={git('rev-parse', 'kernelwatch-results', cwd=store)}"
    write_asv_results(runner, "gpu-h100", ["b" * 40], "rope")  # results-push of a run before
    sh([script, "push"], runner, env, check=True)

    pinned = _checkout_with_history_script(tmp_path / "part-2")
    pulled = sh([script.replace(str(runner), str(pinned)), "pull"], pinned,
                dict(env, KW_RESULTS_AT=head.partition("=")[2]), check=True)
    assert f"at {head.partition('=')[2][:12]}" in pulled.stdout
    got = {p.name for p in (pinned / "results" / "gpu-h100").glob("*-*.json")}
    assert got == {"aaaaaaaa-env.json"}  # not bbbbbbbb: it landed after the run began
    kw = [str(BIN / "kernelwatch"), "history", "pull", "--remote", str(store), "--at"]
    wrong = sh([*kw, "c" * 40], pinned)
    assert wrong.returncode != 0 and "re-run the whole run" in wrong.stderr
    git("push", "-q", str(store), "HEAD:refs/heads/main", cwd=runner)  # the code's branch
    other = sh([*kw, git("rev-parse", "HEAD", cwd=runner)], pinned)
    assert other.returncode != 0 and "is not on kernelwatch-results" in other.stderr
    missing = sh([script, "pull"], runner, dict(env, KW_RESULTS_AT="missing"))
    assert missing.returncode == 1 and "re-run the whole workflow run" in missing.stderr


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
