import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_seed() -> int:
    """A new seed every run: the variants must compute the same function on any input."""
    seed = secrets.randbits(31)
    print(f"seed={seed}")
    return seed


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
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
    env_cache = Path(os.environ.get("KERNELWATCH_TEST_ENV_CACHE", REPO / ".asv"))
    env_cache.mkdir(parents=True, exist_ok=True)
    (dest / ".asv").symlink_to(env_cache, target_is_directory=True)
    return dest


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """asv keeps machine info in ~/.asv-machine.json: tests use their own home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def kernelwatch_exe() -> str:
    """The kernelwatch script of the interpreter running the tests (venv not activated)."""
    sibling = Path(sys.executable).with_name("kernelwatch")
    exe = str(sibling) if sibling.exists() else shutil.which("kernelwatch")
    assert exe, "kernelwatch is not installed in this environment (pip install -e .)"
    return exe
