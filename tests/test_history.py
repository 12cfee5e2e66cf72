"""`kernelwatch history`: the results branch is data. A branch that holds a link, or a file
outside asv's layout, or one asv could not have written, is refused with its path and
nothing is copied; remotes are reached by name as well as by path."""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import REPO, branch_files, git, kernelwatch_exe, sh, write_asv_results


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


def store_and_honest_files(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A bare repository to hold the branch, and the files of one honest result."""
    bare = tmp / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    honest = tmp / "honest"
    write_asv_results(honest, "vm", ["ab" * 20], "bench")
    return bare, {str(p.relative_to(honest / "results")): p.read_text()
                  for p in (honest / "results").rglob("*.json")}


def pulled_files(reader: Path) -> set[str]:
    results = reader / "results"
    return {p.relative_to(results).as_posix() for p in results.rglob("*")
            if p.is_file() or p.is_symlink()} if results.exists() else set()


def test_a_link_on_the_branch_is_skipped_by_name_and_never_followed(tmp_path):
    secret = tmp_path / "runner-token"
    secret.write_text("ghp_secret")
    bare, files = store_and_honest_files(tmp_path)
    branch_with(bare, tmp_path, files, links={"vm/leak.json": str(secret)})

    reader = clone_of(tmp_path / "reader")
    r = sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], reader)
    assert r.returncode == 0, r.stderr
    assert "skipped on" in r.stderr and "vm/leak.json: not a" in r.stderr
    assert pulled_files(reader) == set(files)  # the honest files, not the link
    assert not any("ghp_secret" in p.read_text() for p in (reader / "results").rglob("*")
                   if p.is_file())

    # A link in one's own results/ is never pushed either (it would publish its target);
    # the other files are.
    write_asv_results(reader, "vm", ["cd" * 20], "bench")
    os.symlink(secret, reader / "results" / "vm" / "cdcdcdcd-leak.json")
    r = sh([kernelwatch_exe(), "history", "push", "--remote", str(bare)], reader)
    assert r.returncode == 0, r.stderr
    assert "not pushed" in r.stderr and "vm/cdcdcdcd-leak.json: not a regular file" in r.stderr
    assert "vm/cdcdcdcd-env.json" in branch_files(bare)
    assert "ghp_secret" not in git("log", "-p", "--all", cwd=bare)


def test_files_outside_the_layout_or_schema_are_skipped_by_name(tmp_path):
    bare, files = store_and_honest_files(tmp_path)
    bad_name = json.loads(files["vm/abababab-env.json"])
    bad_name["results"] = {"track_<img src=x onerror=alert(1)>": [[1.0]]}
    branch_with(bare, tmp_path, {**files, ".github/workflows/x.yml": "on: push",
                                 "vm/abababab-evil.json": json.dumps(bad_name)})
    reader = clone_of(tmp_path / "reader")
    r = sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], reader)
    assert r.returncode == 0, r.stderr
    assert ".github/workflows/x.yml: not a file asv writes" in r.stderr
    assert "vm/abababab-evil.json: benchmark name" in r.stderr
    assert pulled_files(reader) == set(files)


def test_one_damaged_file_on_the_branch_stops_no_runner_and_check_repair_removes_it(
        tmp_path):
    """A `.kernels` cut at 4096 bytes lands on the branch: pull and push go on with the
    other files, naming it and the command that removes it; `history check` finds it (exit
    1) and `check --repair` removes it from the branch in a commit (git keeps it)."""
    bare, files = store_and_honest_files(tmp_path)
    whole = json.dumps({f"rope(case{i})": {"kernels": ["k"] * 40} for i in range(100)})
    damaged = "vm/abababab-env.kernels"
    branch_with(bare, tmp_path, {**files, damaged: whole[:4096]})

    runner = clone_of(tmp_path / "runner")
    kw = [kernelwatch_exe(), "history"]
    pulled = sh([*kw, "pull", "--remote", str(bare)], runner)
    assert pulled.returncode == 0, pulled.stderr
    assert f"{damaged}: not valid JSON" in pulled.stderr
    repair = f"kernelwatch history check --repair --remote {bare} --branch kernelwatch-results"
    assert repair in pulled.stderr
    assert pulled_files(runner) == set(files)
    write_asv_results(runner, "vm", ["ef" * 20], "bench")
    pushed = sh([*kw, "push", "--remote", str(bare)], runner)
    assert pushed.returncode == 0, pushed.stderr
    assert "vm/efefefef-env.json" in branch_files(bare) and damaged in branch_files(bare)

    found = sh([*kw, "check", "--remote", str(bare)], runner)
    assert found.returncode == 1 and f"{damaged}: not valid JSON" in found.stdout
    assert repair in found.stderr
    fixed = sh([*kw, "check", "--repair", "--remote", str(bare)], runner)
    assert fixed.returncode == 0 and "removed 1 files" in fixed.stdout
    assert damaged not in branch_files(bare) and "vm/efefefef-env.json" in branch_files(bare)
    assert git("show", f"kernelwatch-results~1:{damaged}", cwd=bare) == whole[:4096]
    clean = sh([*kw, "check", "--remote", str(bare)], runner)
    assert clean.returncode == 0 and "every one an asv result file" in clean.stdout


def test_a_damaged_inventory_here_does_not_block_push_or_pull(tmp_path):
    """One's own `.kernels` cut short: push sends every other file and names it; a pull
    that brings the good copy moves the damaged one aside and takes it."""
    from kernelwatch.results import history

    bare, files = store_and_honest_files(tmp_path)
    writer = tmp_path / "writer"
    write_asv_results(writer, "vm", ["ab" * 20], "bench")
    inventory = {"rope(tiny)": {"kernels": ["triton_poi_fused_0"]}}
    (writer / "results" / "vm" / "abababab-env.kernels").write_text(json.dumps(inventory))
    assert history.push(writer / "results", str(bare), message="good").added

    runner = tmp_path / "runner"
    write_asv_results(runner, "vm", ["ab" * 20, "cd" * 20], "bench")
    local = runner / "results" / "vm" / "abababab-env.kernels"
    local.write_text(json.dumps(inventory)[:10])
    report = history.push(runner / "results", str(bare), message="runner")
    assert "vm/cdcdcdcd-env.json" in report.added
    assert [line.split(":")[0] for line in report.left_here] == ["vm/abababab-env.kernels"]
    pulled = history.pull(runner / "results", str(bare))
    assert [r.split(" ")[0] for r in pulled.repaired] == ["vm/abababab-env.kernels"]
    assert json.loads(local.read_text()) == inventory
    [aside] = (runner / ".kernelwatch" / "damaged" / "results" / "vm").iterdir()
    assert aside.read_text() == json.dumps(inventory)[:10]


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


def test_results_branch_takes_concurrent_writers_and_loses_nothing(tmp_path):
    """Four runners (two GPU kinds, two runs each) push at once to one bare repository: every
    file lands; a file already recorded is never replaced; pull rebuilds the union."""
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    writers, expected = [], set()
    for i, machine in enumerate(["gpu-h100", "gpu-h100", "gpu-l4", "gpu-l4"]):
        w = tmp_path / f"runner{i}"
        subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(w)],
                       check=True)
        commits = [f"{i}{k}" * 20 for k in range(3)]
        expected |= write_asv_results(w, machine, commits, f"bench{i}")
        writers.append(w)
    push = [kernelwatch_exe(), "history", "push", "--remote", str(bare)]
    with ThreadPoolExecutor(len(writers)) as pool:
        results = list(pool.map(lambda w: sh(push, w), writers))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    landed = branch_files(bare)
    assert set(landed) == expected | {"benchmarks.json"}
    assert len(landed) == len(expected) + 1  # counted: 4 x 3 results + 2 machine files + 1
    merged = json.loads(git("show", "kernelwatch-results:benchmarks.json", cwd=bare))
    assert {f"bench{i}.Case.track_time" for i in range(4)} <= set(merged)

    # A second push adds nothing; a different file under a recorded name is not replaced.
    again = sh(push, writers[0])
    assert again.returncode == 0 and "0 result files added" in again.stdout
    clash = writers[0] / "results" / "gpu-h100" / "00000000-env.json"
    before = git("show", f"kernelwatch-results:gpu-h100/{clash.name}", cwd=bare)
    data = json.loads(clash.read_text())
    data["date"] += 1
    clash.write_text(json.dumps(data))
    r = sh(push, writers[0])
    assert r.returncode == 0 and "differs between here and the branch" in r.stderr
    assert git("show", f"kernelwatch-results:gpu-h100/{clash.name}", cwd=bare) == before

    fresh = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(fresh)],
                   check=True)
    pulled = sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], fresh)
    assert pulled.returncode == 0
    got = {str(p.relative_to(fresh / "results")) for p in (fresh / "results").rglob("*.json")}
    assert got == set(landed)


def shard_result(root: Path, machine: str, commit: str, measured: dict[int, float]) -> str:
    """An asv (v2) result file of one shard: GPTQ's time at blocksizes 16/32/64/128, the
    given combinations measured (index -> seconds), the rest not run (NaN)."""
    nan = float("nan")
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
               "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
               "samples", "profile"]
    values = [measured.get(i, nan) for i in range(4)]
    stats = [measured.get(i) for i in range(4)]
    row = [values, [["'16'", "'32'", "'64'", "'128'"]], "2", 1, 1.0, stats, stats, stats,
           stats, [1 if i in measured else None for i in range(4)],
           [3 if i in measured else None for i in range(4)],
           [[measured[i]] * 3 if i in measured else None for i in range(4)]]
    d = root / "results" / machine
    d.mkdir(parents=True, exist_ok=True)
    (d / "machine.json").write_text(json.dumps({"machine": machine, "version": 1}))
    data = {"commit_hash": commit, "env_name": "env", "date": 1, "params": {"machine": machine},
            "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": columns,
            "results": {"gptq.GptqTime.track_time": row}, "durations": {}, "version": 2}
    name = f"{commit[:8]}-env.json"
    (d / name).write_text(json.dumps(data))
    (root / "results" / "benchmarks.json").write_text(json.dumps({"version": 2,
        "gptq.GptqTime.track_time": {"name": "gptq.GptqTime.track_time", "param_names":
                                     ["blocksize"], "params": [["'16'", "'32'", "'64'",
                                                                "'128'"]],
                                     "unit": "seconds", "version": "2"}}))
    return f"{machine}/{name}"


def test_shards_of_one_commit_merge_on_the_results_branch(tmp_path):
    """`run --shard K/2` on two runners of one kind writes one result file name each (same
    machine, commit and environment), with disjoint combinations: pushed at once, the branch
    holds one file with both shards' values; a pull reads all four."""
    from kernelwatch.results import rows as result_rows

    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    commit = "c" * 40
    writers = []
    for i, measured in enumerate(({0: 0.01, 2: 0.03}, {1: 0.02, 3: 0.04})):
        w = tmp_path / f"shard{i}"
        subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(w)],
                       check=True)
        name = shard_result(w, "gpu-h100", commit, measured)
        writers.append(w)
    push = [kernelwatch_exe(), "history", "push", "--remote", str(bare)]
    with ThreadPoolExecutor(2) as pool:
        pushed = list(pool.map(lambda w: sh(push, w), writers))
    assert all(r.returncode == 0 for r in pushed), [r.stderr for r in pushed]
    assert not any("differs between here and the branch" in r.stderr for r in pushed)
    fresh = tmp_path / "reader"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(fresh)],
                   check=True)
    assert sh([kernelwatch_exe(), "history", "pull", "--remote", str(bare)], fresh).returncode == 0
    assert (fresh / "results" / name).is_file()
    got = {r.params["blocksize"]: r.median for r in result_rows.load(fresh / "results")
           if r.value is not None}
    assert got == {"16": 0.01, "32": 0.02, "64": 0.03, "128": 0.04}


def shard_inventory(root: Path, machine: str, commit: str, cases: dict[str, list[str]]) -> str:
    """The kernel inventories a shard files beside its result file (shard_result's name)."""
    rel = f"{machine}/{commit[:8]}-env.kernels"
    (root / "results" / rel).write_text(json.dumps(
        {case: {"kernels": kernels, "code_hash": "", "source": "profiler"}
         for case, kernels in cases.items()}, indent=1, sort_keys=True))
    return rel


def test_shards_inventories_merge_case_by_case_on_the_branch_and_on_pull(tmp_path):
    """Two shards of one commit, each with the inventories of its own cases: the second
    push merges its cases into the branch's file (it used to count as a conflict and never
    reach the branch); a pull merges them into a local copy the same way. A case that
    differs is a conflict and replaces nothing."""
    from kernelwatch.results import history

    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    commit = "c" * 40
    shards_cases = ({"gptq(tiny/proj, 16)": ["mm", "add"]}, {"gptq(tiny/proj, 32)": ["mm"]})
    reports = []
    for i, (measured, cases) in enumerate(zip(({0: 0.01}, {1: 0.02}), shards_cases,
                                              strict=True)):
        w = tmp_path / f"shard{i}"
        shard_result(w, "gpu-h100", commit, measured)
        rel = shard_inventory(w, "gpu-h100", commit, cases)
        reports.append(history.push(w / "results", str(bare), message=f"shard {i}"))
    assert reports[1].conflicts == [] and rel in reports[1].merged
    on_branch = json.loads(git("show", f"kernelwatch-results:{rel}", cwd=bare))
    assert set(on_branch) == {"gptq(tiny/proj, 16)", "gptq(tiny/proj, 32)"}

    reader = tmp_path / "reader"
    shard_result(reader, "gpu-h100", commit, {0: 0.01})
    shard_inventory(reader, "gpu-h100", commit, shards_cases[0])
    pulled = history.pull(reader / "results", str(bare))
    assert rel in pulled.merged and pulled.conflicts == []
    assert json.loads((reader / "results" / rel).read_text()) == on_branch

    rival = tmp_path / "rival"
    shard_result(rival, "gpu-h100", commit, {0: 0.01})
    shard_inventory(rival, "gpu-h100", commit, {"gptq(tiny/proj, 16)": ["mm", "mul"]})
    clash = history.push(rival / "results", str(bare), message="rival")
    assert rel in clash.conflicts
    assert json.loads(git("show", f"kernelwatch-results:{rel}", cwd=bare)) == on_branch
