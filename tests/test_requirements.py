"""A library's requirements at each commit (kernelwatch.libraries.requirements), with real
git, real pip and llm-compressor's real history (the bundle: tests/conftest.py's
llmc_clone): which commits share build files and a resolution date, which builds are another
project, which commits are below the adapter's range, the resolved set with torch fixed, and
what `prepare` (asv's install command) leaves in an environment.

Cost: a few pip metadata builds and one resolution (~40 s), one small virtualenv (~10 s)."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernelwatch.errors import KernelwatchError
from kernelwatch.libraries import requirements

from .conftest import git

# Two build-file changes of llm-compressor's main line: 0.12.0's pins (2026-06-11) and the
# transformers bound raised after it (2026-06-22). Commits between share one content, and so
# one environment.
PINNED_FOR_0_12, BOUND_RAISED = "a32b17d2", "e5d1ef1c"
# A commit of 2019 (the project was neuralmagicML) and one of May 2024 (sparseml-nightly).


def test_commits_between_two_build_file_changes_share_one_environment_key(llmc_clone):
    between = git("rev-list", "--first-parent", f"{PINNED_FOR_0_12}..{BOUND_RAISED}^",
                  cwd=llmc_clone).split()
    assert len(between) > 5
    keys = {requirements.sources_key(llmc_clone, c) for c in [*between, PINNED_FOR_0_12]}
    assert len(keys) == 1
    assert requirements.sources_key(llmc_clone, BOUND_RAISED) not in keys
    # Each resolved as of the end of its own day (UTC): what its developers could install.
    stamp = int(git("log", "-1", "--format=%ct", BOUND_RAISED, cwd=llmc_clone))
    day = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    assert requirements.day_end(llmc_clone, BOUND_RAISED) == f"{day.date()}T23:59:59Z"


def test_a_commit_below_the_adapter_s_range_is_refused_before_anything_is_built(llmc_clone):
    supported = requirements.supported_range("llmcompressor")
    assert supported and supported[0] == ">=0.4.0"
    why = requirements.below_supported(llmc_clone, "0.3.0", "llmcompressor", supported)
    assert why and why.reason.startswith("not measurable before 0.4.0 (it follows the release "
                                         "0.3.0): GPTQ there is GPTQWrapper")
    assert requirements.below_supported(llmc_clone, "0.4.0", "llmcompressor", supported) is None


def test_another_project_s_build_is_refused_and_the_library_s_dev_build_is_not(llmc_clone,
                                                                              tmp_path):
    """2019 commits build neuralmagicML and 2024 ones sparseml-nightly: another project;
    0.4.0 builds llmcompressor-dev, a name the library's own builds went by."""
    cache = requirements._Cache(tmp_path)
    for commit, name in (("3593ae06", "neuralmagicML"), ("5df0d8aa", "sparseml-nightly")):
        why = requirements.declared(llmc_clone, commit, "llmcompressor", cache)
        assert isinstance(why, requirements.NotMeasurable), commit
        assert f"it builds the distribution {name}" in why.reason
        assert "not llmcompressor" in why.reason
    meta = requirements.declared(llmc_clone, "0.4.0", "llmcompressor", cache)
    assert isinstance(meta, dict) and meta["name"] == "llmcompressor-dev"


def test_requirements_resolve_with_torch_fixed_or_say_why_they_cannot(tmp_path):
    cache = requirements._Cache(tmp_path)
    rset = requirements.resolve(["loguru>=0.7.2", "torch>=2.10.0", 'pytest; extra == "dev"'],
                           {"torch": "2.13.0"}, tmp_path, cache, leave_out=["mylib"])
    assert isinstance(rset, requirements.RequirementSet)
    names = set(rset.versions())
    assert "loguru" in names and "numpy" in names and "psutil" in names
    assert "torch" not in names and "pytest" not in names
    assert rset.direct == ("loguru",) and rset.fixed == ("torch==2.13.0",)
    assert rset.file(tmp_path).read_text().splitlines() == list(rset.pins)
    # Cached: the same request is not resolved again (and gives the same set).
    assert requirements.resolve(["loguru>=0.7.2", "torch>=2.10.0"], {"torch": "2.13.0"},
                           tmp_path, cache, leave_out=["mylib"]).key == rset.key
    why = requirements.resolve(["numpy<1.0"], {"torch": "2.13.0"}, tmp_path, cache)
    assert isinstance(why, requirements.NotMeasurable)
    assert why.reason.startswith("its requirements do not resolve together with "
                                 "torch==2.13.0 (pip: ")


def _wheel(src: Path, out: Path, name: str, version: str) -> Path:
    project = src / f"{name}-{version}"
    (project / name.replace("-", "_").lower()).mkdir(parents=True)
    (project / name.replace("-", "_").lower() / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "{version}"
        """))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(project)], check=True)
    return next(out.glob(f"{name.replace('-', '_')}-{version}-*.whl"))


def test_prepare_leaves_the_environment_s_own_the_set_and_the_library_only(tmp_path,
                                                                           monkeypatch):
    """A real virtualenv and real wheels: the set is installed once; what a build under
    another name of the library left goes when the next build comes; a build of another
    project is refused, naming it."""
    wheels = tmp_path / "wheels"
    dev = _wheel(tmp_path / "src", wheels, "llmcompressor-dev", "0.5.0")
    release = _wheel(tmp_path / "src", wheels, "llmcompressor", "0.6.0")
    other = _wheel(tmp_path / "src", wheels, "neuralmagicml", "1.0.0")
    _wheel(tmp_path / "src", wheels, "tinydep", "1.0")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", str(env)], check=True)
    pins = tmp_path / "set.txt"
    pins.write_text("tinydep==1.0\n")

    said = requirements.prepare(env, pins, str(dev), "llmcompressor")
    assert said == ["installed 1 of the 1 pins of set"]
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(dev)], check=True)  # as asv's install command does
    assert "llmcompressor-dev" in requirements.installed(env)
    assert requirements.prepare(env, pins, str(dev), "llmcompressor") == []  # nothing to do

    said = requirements.prepare(env, pins, str(release), "llmcompressor")
    assert said == ["removed what an earlier install left: llmcompressor-dev"]
    assert "llmcompressor-dev" not in requirements.installed(env)
    assert requirements.installed(env)["tinydep"] == "1.0"

    with pytest.raises(KernelwatchError, match="the commit built the distribution "
                       "neuralmagicml 1.0.0, not llmcompressor"):
        requirements.prepare(env, pins, str(other), "llmcompressor")
