"""`kernelwatch history`: the results branch is data. A branch that holds a link, or a file
outside asv's layout, or one asv could not have written, is refused with its path and
nothing is copied; remotes are reached by name as well as by path."""

import json
import os
import subprocess
from pathlib import Path

from .conftest import REPO, git, kernelwatch_exe, sh, write_asv_results


def clone_of(path: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(path)],
                   check=True)
    return path


def branch_with(bare: Path, tmp: Path, files: dict[str, str | None],
                links: dict[str, str] | None = None) -> None:
    """Commit `files` (and symbolic `links`: name -> target) as the results branch."""
    work = tmp / "attacker"
    subprocess.run(["git", "init", "-q", "-b", "kernelwatch-results", str(work)], check=True)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    for rel, target in (links or {}).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, work / rel)
    git("add", "-A", cwd=work)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "results", cwd=work)
    git("push", "-q", "-f", str(bare), "kernelwatch-results", cwd=work)


def test_a_link_on_the_branch_is_refused_and_nothing_is_pulled(tmp_path):
    secret = tmp_path / "runner-token"
    secret.write_text("ghp_secret")
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    honest = tmp_path / "honest"
    write_asv_results(honest, "vm", ["ab" * 20], "bench")
    files = {str(p.relative_to(honest / "results")): p.read_text()
             for p in (honest / "results").rglob("*.json")}
    branch_with(bare, tmp_path, files, links={"vm/leak.json": str(secret)})

    reader = clone_of(tmp_path / "reader")
    r = sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], reader)
    assert r.returncode == 2
    assert "vm/leak.json: not" in r.stderr and "nothing was copied" in r.stderr
    assert not (reader / "results").exists() or not any((reader / "results").rglob("*"))

    # A link in one's own results/ is never pushed either (it would publish its target).
    write_asv_results(reader, "vm", ["cd" * 20], "bench")
    os.symlink(secret, reader / "results" / "vm" / "cdcdcdcd-leak.json")
    r = sh([kernelwatch_exe(), "history", "push", "--remote", str(bare)], reader)
    assert r.returncode == 2 and "vm/cdcdcdcd-leak.json: not a regular file" in r.stderr
    assert "ghp_secret" not in git("log", "-p", "--all", cwd=bare)


def test_files_outside_the_layout_or_schema_are_refused_by_name(tmp_path):
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    honest = tmp_path / "honest"
    write_asv_results(honest, "vm", ["ab" * 20], "bench")
    files = {str(p.relative_to(honest / "results")): p.read_text()
             for p in (honest / "results").rglob("*.json")}
    bad_name = json.loads(files["vm/abababab-env.json"])
    bad_name["results"] = {"track_<img src=x onerror=alert(1)>": [[1.0]]}
    files.update({".github/workflows/x.yml": "on: push",
                  "vm/abababab-evil.json": json.dumps(bad_name)})
    branch_with(bare, tmp_path, files)
    reader = clone_of(tmp_path / "reader")
    r = sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], reader)
    assert r.returncode == 2
    assert ".github/workflows/x.yml: not a file asv writes" in r.stderr
    assert "vm/abababab-evil.json: benchmark name" in r.stderr
    assert not (reader / "results").exists() or not any((reader / "results").rglob("*"))


def test_a_remote_is_reached_by_its_name(tmp_path):
    """`--remote origin` (the default, and what the workflows pass): the name is the
    checkout's configured remote, a relative path resolved from the checkout."""
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    writer = clone_of(tmp_path / "writer")
    git("remote", "add", "results-store", "../store.git", cwd=writer)
    expected = write_asv_results(writer, "gpu-h100", ["12" * 20, "34" * 20], "bench")
    r = sh([kernelwatch_exe(), "history", "push", "--remote", "results-store"], writer)
    assert r.returncode == 0, r.stderr
    assert "4 result files added" in r.stdout  # 2 results, machine.json, benchmarks.json

    reader = clone_of(tmp_path / "reader")
    git("remote", "set-url", "origin", str(bare), cwd=reader)
    r = sh([kernelwatch_exe(), "history", "pull"], reader)  # default: origin
    assert r.returncode == 0, r.stderr
    got = {str(p.relative_to(reader / "results")) for p in (reader / "results").rglob("*.json")}
    assert got == expected | {"benchmarks.json"}
