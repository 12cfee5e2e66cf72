import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest-xdist's worker name ("gw0", "gw1"); "main" without workers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

# `make test` runs two pytest-xdist workers (`--dist loadgroup`): each file is one unit of
# work, and the heaviest units go first so that the two workers end together. The Docker
# unit holds the Docker image's users (one build a run) and the engine's tests, whose
# recorded results the workflow test reuses as a runner would (measured again on another
# worker, it cost 470 s instead of 60), and every test that runs torch 2.14.1 (marked
# torch_matrix): its environment, a CUDA build of 6 GB, is built once, by the engine's quick
# run (a second copy on the other worker filled CI's disk).
# A unit's weight is the seconds its tests took in the last run here (pytest's cache);
# without a record, a test of the Docker unit counts 120 s, a slow one 60, the rest 1.
DURATIONS_KEY = "kernelwatch/test-seconds"


def _work_unit(item: pytest.Item) -> str:
    if ({"cpu_image", "engine"} & set(getattr(item, "fixturenames", ()))
            or item.path.stem == "test_engine" or item.get_closest_marker("torch_matrix")):
        return "docker"
    return item.path.stem


def _guess_seconds(item: pytest.Item) -> float:
    if _work_unit(item) == "docker":
        return 120.0
    return 60.0 if item.get_closest_marker("slow") else 1.0


def pytest_sessionstart(session):
    # keeps the GPU tests' results apart from their order (a te test after a torch test);
    # only where a GPU can be: the fast layer never imports torch
    if Path("/dev/nvidiactl").exists():
        from kernelwatch import environment

        environment.load_transformer_engine_first()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    recorded = cache.get(DURATIONS_KEY, {}) if cache else {}
    weight: dict[str, float] = {}
    for item in items:
        unit = _work_unit(item)
        item.add_marker(pytest.mark.xdist_group(unit))
        weight[unit] = weight.get(unit, 0.0) + recorded.get(item.nodeid, _guess_seconds(item))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (-weight[_work_unit(item)], order[id(item)]))


_SECONDS: dict[str, float] = {}  # this session's, per test (setup, call and teardown)


def pytest_runtest_logreport(report):
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    # The controller (or a run without workers) sees every test's reports.
    if _SECONDS and getattr(session.config, "cache", None) and WORKER == "main":
        recorded = session.config.cache.get(DURATIONS_KEY, {})
        session.config.cache.set(DURATIONS_KEY, {**recorded, **_SECONDS})


@pytest.fixture(scope="session", autouse=True)
def shared_pip_cache():
    """One pip cache for every environment the session builds: tests give asv a home of
    their own (isolated_home), which would otherwise download each package once per test."""
    os.environ.setdefault("PIP_CACHE_DIR",
                          str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                              / "pip"))


@pytest.fixture
def fresh_seed() -> int:
    """A new seed every run: the variants must compute the same function on any input."""
    seed = secrets.randbits(31)
    print(f"seed={seed}")
    return seed


@pytest.fixture
def one_cpu_thread():
    """torch on one thread for the test, as the benchmarks pin it (benchmarks/common.py)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# A string condition: evaluated (and torch imported) only for the tests that carry the mark.
requires_cuda = pytest.mark.skipif("not __import__('torch').cuda.is_available()",
                                   reason="needs a CUDA GPU (run on the device machine)")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="session")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of this repository's committed history: what CI and users start from.
    The clone shares the repository's .asv environments (those `make demo` built), because
    building the two torch environments costs minutes and depends on no commit."""
    dest = tmp_path_factory.mktemp("clone") / "kernelwatch"
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    # One cache per xdist worker: two asv processes must not build one environment at once.
    default = REPO / (".asv" if WORKER == "main" else f".asv-{WORKER}")
    env_cache = Path(os.environ.get("KERNELWATCH_TEST_ENV_CACHE", default))
    env_cache.mkdir(parents=True, exist_ok=True)
    (dest / ".asv").symlink_to(env_cache, target_is_directory=True)
    return dest


# llm-compressor's real git history (3,188 commits, tags 0.1.0..0.13.0), as a git bundle: the
# tests of a library's history read it where KERNELWATCH_LLMC_BUNDLE says, else beside the
# repository, and are skipped, saying so, where it is not.
LLMC_BUNDLE = Path(os.environ.get("KERNELWATCH_LLMC_BUNDLE")
                   or REPO.parent / "shared" / "upstream" / "llm-compressor.bundle")


@pytest.fixture(scope="session")
def llmc_clone(tmp_path_factory) -> Path:
    """A clone of the bundle, once a session (about 10 s)."""
    if not LLMC_BUNDLE.is_file():
        pytest.skip(f"llm-compressor's history is not here ({LLMC_BUNDLE}); set "
                    "KERNELWATCH_LLMC_BUNDLE to a git bundle of it")
    dest = tmp_path_factory.mktemp("llmc") / "llm-compressor"
    subprocess.run(["git", "clone", "-q", str(LLMC_BUNDLE), str(dest)], check=True)
    return dest


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """asv keeps machine info in ~/.asv-machine.json: tests use their own home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_asv_results(root: Path, machine: str, commits: list[str], bench: str,
                      env: str = "env") -> set[str]:
    """Files in the shape asv writes (a machine file, one result file per commit, the
    benchmark list) under root/results: for commands whose behaviour does not depend on
    what was measured. Returns their paths relative to results/."""
    import json

    d = root / "results" / machine
    d.mkdir(parents=True, exist_ok=True)
    (d / "machine.json").write_text(json.dumps({"machine": machine, "version": 1}))
    names = {f"{machine}/machine.json"}
    for i, c in enumerate(commits):
        data = {"commit_hash": c, "env_name": env, "date": 1_700_000_000_000 + i,
                "params": {"machine": machine, "python": "3.11"}, "python": "3.11",
                "requirements": {}, "env_vars": {},
                "result_columns": ["result", "params", "version", "started_at", "duration",
                                   "stats_ci_99_a", "stats_ci_99_b", "stats_q_25",
                                   "stats_q_75", "stats_number", "stats_repeat", "samples",
                                   "profile"],
                "results": {f"{bench}.Case.track_time": [[1e-3], [], "1", 0, 1.0]},
                "durations": {}, "version": 2}
        (d / f"{c[:8]}-{env}.json").write_text(json.dumps(data))
        names.add(f"{machine}/{c[:8]}-{env}.json")
    bench_file = root / "results" / "benchmarks.json"
    listed = json.loads(bench_file.read_text()) if bench_file.exists() else {"version": 2}
    listed[f"{bench}.Case.track_time"] = {"name": f"{bench}.Case.track_time", "params": [],
                                          "param_names": [], "type": "track",
                                          "unit": "seconds", "version": "1"}
    bench_file.write_text(json.dumps(listed))
    return names


def write_result_file(results: Path, machine: str, commit: str, env: str, rows: dict,
                      durations: dict | None = None) -> Path:
    """One asv result file, named as asv names it, with its machine file beside it: `rows`
    are its `results` (benchmark -> a row of asv's result columns), `durations` what it
    keeps beside them (kernelwatch's process counts among them)."""
    import json

    from asv.results import get_filename

    path = results / get_filename(machine, commit, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "machine.json").write_text(json.dumps({"machine": machine, "version": 1}))
    path.write_text(json.dumps({
        "commit_hash": commit, "env_name": env, "date": 1_700_000_000_000,
        "params": {"machine": machine, "python": "3.11"}, "python": "3.11",
        "requirements": {}, "env_vars": {}, "version": 2, "durations": durations or {},
        "result_columns": ["result", "params", "version", "started_at", "duration",
                           "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75",
                           "stats_number", "stats_repeat", "samples", "profile"],
        "results": rows}))
    return path


def write_case_results(results: Path, machine: str, commit: str, env: str,
                       params: dict[str, str], values: dict[str, list[float]]) -> Path:
    """One asv result file (named as asv names it) holding, for one parameter combination
    of a workload, each benchmark's samples (`values`: benchmark -> samples), and the
    benchmark list beside it: for commands that read what is recorded, as asv writes it."""
    import json

    quoted = [[f"'{v}'"] for v in params.values()]
    rows = {bench: [[sorted(samples)[len(samples) // 2]], quoted, "1", 0, 1.0, None, None,
                     None, None, None, None, [samples]] for bench, samples in values.items()}
    path = write_result_file(results, machine, commit, env, rows)
    listed_path = results / "benchmarks.json"
    listed = json.loads(listed_path.read_text()) if listed_path.exists() else {"version": 2}
    for bench in values:
        listed[bench] = {"name": bench, "param_names": list(params), "params": quoted,
                         "type": "track", "version": "1",
                         "unit": "count" if bench.endswith("_count") else "seconds"}
    listed_path.write_text(json.dumps(listed))
    return path


def branch_files(bare: Path, branch: str = "kernelwatch-results") -> list[str]:
    out = git("ls-tree", "-r", "--name-only", branch, cwd=bare)
    return sorted(out.splitlines())


# The asv machine the end-to-end tests file their results under.
MACHINE = "kernelwatch-test"


def run(cmd, cwd, **env):
    """A command under the test machine's name, with its output kept for a failure."""
    full_env = {**os.environ, "KERNELWATCH_MACHINE": MACHINE, **env}
    r = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    print(r.stdout[-4000:], r.stderr[-4000:])
    return r


def kernelwatch_exe() -> str:
    """The kernelwatch script of the interpreter running the tests (venv not activated)."""
    sibling = Path(sys.executable).with_name("kernelwatch")
    exe = str(sibling) if sibling.exists() else shutil.which("kernelwatch")
    assert exe, "kernelwatch is not installed in this environment (pip install -e .)"
    return exe


# ----------------------------------------------------------------------------- Docker
# The CPU image, built once per session from the registry-free base with the local torch
# wheel; the Docker tests and the workflow tests (which reuse it, as a runner would) share it.
TAG = "kernelwatch-test:cpu"
BASE = "kernelwatch-base:bookworm"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def sh(cmd, cwd=REPO, env=None, check=False):
    r = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                       text=True)
    print(r.stdout[-6000:], r.stderr[-6000:])
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="session")
def engine():
    r = sh(["docker", "info"])
    if r.returncode != 0:
        pytest.fail("no Docker engine: run scripts/ensure-docker.sh (make test does)")
    root = sh(["docker", "info", "-f", "{{.DockerRootDir}}"]).stdout.strip()
    if os.path.isdir(root):  # a local engine: check its disk before a 2 GB build
        free_gib = shutil.disk_usage(root).free / 2**30
        if free_gib < 6:
            pytest.fail(f"only {free_gib:.1f} GiB free under {root}; the image tests need 6. "
                        "Free space (`docker image prune`, `docker system df`) and rerun")


@pytest.fixture(scope="session")
def torch_wheelhouse(tmp_path_factory) -> Path:
    """The local torch CPU wheel, as an air-gapped runner would bring it."""
    d = tmp_path_factory.mktemp("wheelhouse")
    sh([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
        "torch==2.13.0", "-d", str(d)], check=True)
    assert list(d.glob("torch-2.13.0*.whl"))
    return d


@pytest.fixture(scope="session")
def cpu_image(engine, torch_wheelhouse) -> str:
    sh([str(REPO / "docker" / "bootstrap-base"), BASE], check=True)
    previous = sh(["docker", "images", "-q", TAG]).stdout.strip()
    t0 = time.monotonic()
    sh([kernelwatch_exe(), "docker", "build", "--device", "cpu", "--tag", TAG,
        "--base-image", BASE, "--wheelhouse", str(torch_wheelhouse),
        "--ca-bundle", str(HOST_CA), "--torch-index-url", "", "--network", "host"], check=True)
    print(f"cpu image built in {time.monotonic() - t0:.0f} s")
    if previous and previous != sh(["docker", "images", "-q", TAG]).stdout.strip():
        sh(["docker", "rmi", previous])  # the last run's image, now untagged: 2 GB each time
    return TAG


# ----------------------------------------------------------------------------- libraries


def liger_kernel_repository(dest: Path, setup_py: str, commits: int = 1) -> Path:
    """A git repository of `liger-kernel` (a distribution the RoPE workload declares) whose
    build is `setup_py`, with `commits` commits on main: a library for target runs."""
    (dest / "liger_kernel").mkdir(parents=True)
    (dest / "liger_kernel" / "__init__.py").write_text("")
    (dest / "setup.py").write_text(setup_py)
    git("init", "-q", "-b", "main", cwd=dest)
    for n in range(commits):
        (dest / "liger_kernel" / "__init__.py").write_text(f"REVISION = {n}\n")
        git("add", "-A", cwd=dest)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"liger {n}",
            cwd=dest)
    return dest


@contextlib.contextmanager
def git_daemon(base: Path):
    """git's own daemon serving the repositories under `base` on localhost, so a container on
    the host network clones a library from a URL, as from GitHub. Yields git://HOST:PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon = subprocess.Popen(["git", "daemon", f"--base-path={base}", "--export-all",
                               "--reuseaddr", "--listen=127.0.0.1", f"--port={port}"])
    url = f"git://127.0.0.1:{port}"
    try:
        for _ in range(100):
            probe = subprocess.run(["git", "ls-remote", f"{url}/{next(base.iterdir()).name}"],
                                   capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield url
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
