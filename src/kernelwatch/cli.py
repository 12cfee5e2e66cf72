"""`kernelwatch`: a thin wrapper over asv and Docker. It never replaces them:
every command prints the asv command it runs, and plain `asv run/publish/compare` keep
working on the repository as-is.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from kernelwatch import detect, environment, recorded, shards, targets, workloads
from kernelwatch.errors import KernelwatchError, check_choices, unknown_name
from kernelwatch.progress import AsvProgress, log_path

# Flags kept from before `--param`: each is `--param NAME=VALUE` for the parameter it names.
PARAM_ALIASES = ("shape", "form", "dtype", "scheme", "blocksize", "variant")
QUICK_COMPILE_METRICS = ("cold_compile", "recompiles")


def find_repo_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "asv.conf.json").is_file():
            return d
    raise KernelwatchError(
        "no asv.conf.json here or above; run kernelwatch from inside the kernelwatch repository"
    )


def asv_executable() -> str:
    # The asv beside this interpreter first: the one installed with kernelwatch.
    sibling = Path(sys.executable).with_name("asv")
    exe = str(sibling) if sibling.exists() else shutil.which("asv")
    if exe is None:
        raise KernelwatchError("asv is not installed; run `pip install 'kernelwatch[asv]'`")
    return exe


def run_checked(cmd: list[str], cwd: Path) -> None:
    print("+", shlex.join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=cwd)
    if rc != 0:
        raise KernelwatchError(f"`{shlex.join(cmd[:3])} ...` exited with status {rc}")


# ----------------------------------------------------------------------------- machine


def machine_name(arg: str | None) -> str:
    return arg or os.environ.get("KERNELWATCH_MACHINE") or socket.gethostname()


def write_machine_info(name: str, existing: bool) -> dict:
    """Record this host in asv's machine file. Extra keys (gpu, driver, threads...) flow into
    every result's params and become filters on the published site. For an `existing`
    environment the interpreter's torch and CUDA are recorded too, since asv's matrix then
    names neither."""
    info = environment.host()
    entry = {k: info[k] for k in ("arch", "cpu", "num_cpu", "os", "ram")}
    entry.update({k: v for k, v in info.items() if k not in entry})
    entry["machine"] = name
    if existing:
        facts = environment.torch_facts()
        entry.update(torch=facts["torch"], cuda=facts["cuda"], threads=facts["threads"])
        entry.update(environment.library_versions())
    path = Path(os.path.expanduser("~/.asv-machine.json"))
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as exc:
        raise KernelwatchError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    data[name] = entry
    data["version"] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, sort_keys=True))
    return entry


# ----------------------------------------------------------------------------- selection


def check_metrics(workload: str, metrics: Sequence[str] | None) -> None:
    families = workloads.get(workload).BENCHMARKS
    for m in metrics or ():
        if m not in families:
            raise unknown_name("metric", m, families, where=workload)


def selection_regex(workload: str, chosen: dict[str, list[str] | None],
                    metrics: list[str] | None, tracks: Sequence[str] | None = None) -> str:
    """An asv `-b` regex: asv matches it against `name(param0, param1, ...)`, the params in
    the workload's PARAMS order. `tracks` narrows the classes' track_ methods by name."""
    module = workloads.get(workload)
    for name, values in chosen.items():
        if values and name not in module.PARAMS:
            raise KernelwatchError(f"workload {workload} has no {name} parameter; its "
                                   f"parameters: {', '.join(module.PARAMS)}")
    check_choices(module.PARAMS, chosen, where=workload)
    check_metrics(workload, metrics)

    def alt(values):
        return "(" + "|".join(re.escape(v) for v in values) + ")" if values else "[^']+"

    classes = alt([module.BENCHMARKS[m] for m in metrics or module.BENCHMARKS])
    track = "(" + "|".join(tracks) + ")" if tracks else r"\w+"
    params = ", ".join(f"'{alt(chosen.get(name))}'" for name in module.PARAMS)
    return rf"^{workload}\.{classes}\.track_{track}\({params}\)$"


# (workload, chosen params, metric families, track names or None): what one regex selects.
Selection = tuple[str, dict, list[str] | None, Sequence[str] | None]
ENVIRONMENT_REGEX = r"^environment\.Environment\.track_\w+$"


def quick_selections(workload: str) -> list[Selection]:
    """The quick set: the workload's QUICK case for its quick metric families (narrowed to
    QUICK_TRACKS where a workload declares them), and, where it names one, one compile
    variant's cold compile and recompiles."""
    module = workloads.get(workload)
    selections: list[Selection] = [
        (workload, module.QUICK, workloads.quick_metrics(module),
         getattr(module, "QUICK_TRACKS", None))]
    compile_variant = getattr(module, "QUICK_COMPILE_VARIANT", None)
    if compile_variant and "compile" in module.BENCHMARKS:
        selections.append((workload, {**module.QUICK, "variant": [compile_variant]},
                           ["compile"], QUICK_COMPILE_METRICS))
    return selections


def parse_params(workload: str, pairs: Sequence[str], aliases: dict[str, list[str] | None]
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """`--param NAME=VALUE` (repeatable) and the alias flags, as (asv parameter choices,
    environment variables for the workload's SETTINGS)."""
    module = workloads.get(workload)
    settings = getattr(module, "SETTINGS", {})
    chosen: dict[str, list[str]] = {k: list(v) for k, v in aliases.items() if v}
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise KernelwatchError(f"--param takes NAME=VALUE, not {pair!r} "
                                   f"(e.g. --param variant=eager); `kernelwatch list "
                                   f"{workload}` shows the names")
        if name in settings:
            env[settings[name]] = value
        elif name in module.PARAMS:
            chosen.setdefault(name, []).append(value)
        else:
            raise KernelwatchError(
                f"workload {workload} has no {name} parameter; its parameters: "
                f"{', '.join([*module.PARAMS, *settings])}")
    if env and hasattr(module, "validate_settings"):
        module.validate_settings(env, chosen)
    return chosen, env


# Named after its content, so runs with different overrides (another --torch, a dry run
# beside a running run) never rewrite a config that an asv call of another run still reads.
DERIVED_CONFIG = ".asv-kernelwatch-{digest}.conf.json"


def derived_config(repo: Path, *, existing: bool = False,
                   torch_versions: list[str] | None = None, env_dir: str | None = None,
                   branch: str | None = None, results_dir: str | None = None
                   ) -> Path | None:
    """asv.conf.json with kernelwatch's overrides, or None when there are none.

    - existing: an empty matrix. asv would otherwise file an `existing` environment's
      results under the matrix's first torch version, whatever torch the interpreter has;
      with no matrix the torch recorded is machine info's, read from the interpreter.
    - torch_versions: only these torch versions of the matrix (exact versions).
    - env_dir: where asv keeps its virtualenvs (a container keeps them apart from the host's,
      whose interpreters it cannot run).
    - branch: the branch asv follows (`run` with no range, `publish`'s graphs), where the
      configured one does not exist in this clone (see history_branch).
    - results_dir: where asv reads results (publish --skip-corrupt: a readable copy).
    """
    if not (existing or torch_versions or env_dir or branch or results_dir):
        return None
    conf = asv_config(repo)
    if existing:
        conf["matrix"] = {}
    elif torch_versions:
        conf.setdefault("matrix", {}).setdefault("req", {})["torch"] = list(torch_versions)
    if env_dir:
        conf["env_dir"] = env_dir
    if branch:
        conf["branches"] = [branch]
    if results_dir:
        conf["results_dir"] = results_dir
    text = json.dumps(conf, indent=4)
    path = repo / DERIVED_CONFIG.format(digest=hashlib.sha1(text.encode()).hexdigest()[:10])
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def asv_config(repo: Path) -> dict:
    """asv.conf.json as asv reads it (comments allowed)."""
    from asv import util as asv_util

    return asv_util.load_json(str(repo / "asv.conf.json"), js_comments=True)


def commit_of(repo: Path, name: str) -> str | None:
    """The full hash git gives `name` (a branch, tag or revision), or None."""
    out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                         cwd=repo, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def history_branch(repo: Path, asked: str | None) -> str | None:
    """The branch to give asv in place of asv.conf.json's, or None to keep the config's.

    asv follows the configured branches (this repository's: main) and stops with "Unknown
    branch main in configuration" in a clone whose branch has another name. The user's
    --branch wins; otherwise, when a configured branch is missing, the checked-out one."""
    if asked:
        if commit_of(repo, asked) is None:
            raise KernelwatchError(f"--branch {asked}: no such branch in this repository; "
                                   "`git branch` lists them")
        return asked
    configured = asv_config(repo).get("branches", ["master"])
    if all(commit_of(repo, b) for b in configured):
        return None
    current = subprocess.run(["git", "symbolic-ref", "--short", "-q", "HEAD"], cwd=repo,
                             capture_output=True, text=True).stdout.strip()
    if not current:
        raise KernelwatchError(
            f"asv.conf.json follows branch {', '.join(configured)}, which this clone lacks, "
            "and HEAD is detached: check out a branch, or name one with --branch")
    print(f"kernelwatch: asv.conf.json follows {', '.join(configured)}, which this clone "
          f"lacks; following the checked-out branch {current} (--branch to choose)",
          flush=True)
    return current


def commits_in(repo: Path, rev_range: str) -> list[str]:
    """The commits asv runs for a range: `git rev-list --first-parent`, as asv's git plugin
    does, so kernelwatch plans the same commits asv will run."""
    out = subprocess.run(["git", "rev-list", "--first-parent", rev_range, "--"], cwd=repo,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise KernelwatchError(
            f"git cannot resolve the range {rev_range!r}: {out.stderr.strip()}. "
            "Use a range such as HEAD~2..HEAD (the last two commits), or HEAD^! for HEAD alone"
        )
    return out.stdout.split()


# ----------------------------------------------------------------------------- commands


def cmd_env(args: argparse.Namespace) -> int:
    info = environment.capture()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        width = max(map(len, info))
        for k, v in sorted(info.items()):
            print(f"{k:<{width}}  {v}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    names = [args.workload] if args.workload else list(workloads.WORKLOADS)
    for name in names:
        mod = workloads.get(name)
        print(f"{name}")
        width = max(map(len, [*mod.PARAMS, *getattr(mod, "SETTINGS", {}), "metrics", "quick"]))
        for param, values in mod.PARAMS.items():
            print(f"  {param + ':':<{width + 2}}" + ", ".join(values))
        for setting, var in getattr(mod, "SETTINGS", {}).items():
            print(f"  {setting + ':':<{width + 2}}--param {setting}=VALUE (or ${var})")
        families = ", ".join(f"{f} ({c})" for f, c in mod.BENCHMARKS.items())
        print(f"  {'metrics:':<{width + 2}}{families}")
        quick = "; ".join(f"{k}={','.join(v)}" for k, v in mod.QUICK.items())
        print(f"  {'quick:':<{width + 2}}{quick}")
    print("\nSelect with --param NAME=VALUE (repeatable), --metric FAMILY, --track NAME.")
    return 0


RUN_LOCK = ".kernelwatch-run.lock"


@contextlib.contextmanager
def results_lock(repo: Path) -> Iterator[None]:
    """One `kernelwatch run` at a time per checkout. asv writes a (commit, environment)
    result file whole at the end of its run, so two runs sharing one would each write what
    they measured and the last writer would drop the other's results; the derived config is
    shared too. A second run waits here, saying so."""
    import filelock

    lock = filelock.FileLock(str(repo / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"kernelwatch: another kernelwatch run is using this checkout ({repo}); waiting "
              "for it to finish (Ctrl-C to stop)", flush=True)
        try:
            lock.acquire()
        except KeyboardInterrupt:
            raise KernelwatchError("interrupted while waiting for the other run; "
                                   "nothing was run") from None
    try:
        yield
    finally:
        lock.release()


def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:  # runs nothing, writes no result: no need to wait for another run
        return _run(args)
    with results_lock(find_repo_root()):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    repo = find_repo_root()
    asv = asv_executable()
    existing = args.existing
    if args.processes < 1:
        raise KernelwatchError("--processes takes a count of 1 or more (3 pools three)")
    # --target / --versions / --shard: glue only; the logic is in targets.py and shards.py.
    target, versions, shard = _target_flags(args, repo)
    rev = args.range or ("HEAD^!" if existing else
                         targets.default_range(target) if target else "HEAD~2..HEAD")
    if existing and rev != "HEAD^!":
        raise KernelwatchError("--existing benchmarks the working tree's installed code only; "
                               "it cannot run a commit range (drop the range, or --existing)")
    commits = ([git_output(repo, "rev-parse", "HEAD")] if existing else
               targets.commits(target, rev) if target else commits_in(repo, rev))
    if not commits:
        raise KernelwatchError(
            f"the range {rev!r} selects no commits; HEAD~2..HEAD selects the last two "
            "(a clone needs that many: `git clone` without --depth 1)")
    settings_env: dict[str, str] = {}
    if target or versions:
        selections, settings_env = _target_selections(args, (target.dist if target else
                                                             versions[0]))
    elif args.quick:
        names = [args.workload] if args.workload else list(workloads.WORKLOADS)
        selections = [sel for w in names for sel in quick_selections(w)]
    else:
        workload = args.workload or "rope"
        chosen, settings_env = parse_params(
            workload, args.param or (), {name: getattr(args, name) for name in PARAM_ALIASES})
        selections = [(workload, chosen, args.metric, args.track)]
    if existing:
        # asv saves a (commit, environment) result file only when all its benchmarks have run,
        # and an existing environment is one commit: a run cut short (a GPU lease, a time
        # limit) would lose everything. One asv call per metric family saves as it goes; asv
        # merges each call into the same file.
        chunks = [[selection_regex(w, chosen, [family], tracks)]
                  for w, chosen, families, tracks in selections
                  for family in families or list(workloads.get(w).BENCHMARKS)]
        chunks.append([ENVIRONMENT_REGEX])
    else:
        chunks = [[selection_regex(*sel) for sel in selections] + [ENVIRONMENT_REGEX]]
    if getattr(args, "skip_machine_facts", False):
        chunks = [c for c in ([rx for rx in c if rx != ENVIRONMENT_REGEX] for c in chunks) if c]
    if shard:
        chunks = [shards.narrow(chunk, selections, *shard) for chunk in chunks]
    name = machine_name(args.machine)
    write_machine_info(name, existing)
    results = repo / "results"
    if target:
        results = targets.results_dir(repo, target.dist)
        config = targets.write_config(repo, targets.target_config(
            asv_config(repo), target, repo, torch_versions=args.torch,
            env_dir=os.environ.get("KERNELWATCH_ENV_DIR"),
            branch=targets.commit(target, args.branch) and args.branch if args.branch else None))
    else:
        config = derived_config(repo, existing=existing, torch_versions=args.torch,
                                env_dir=os.environ.get("KERNELWATCH_ENV_DIR"),
                                branch=history_branch(repo, args.branch))
    if versions:
        from asv import util as asv_util

        conf = asv_util.load_json(str(config or repo / "asv.conf.json"), js_comments=True)
        targets.check_installable(*versions)
        config = targets.write_config(repo, targets.versions_matrix(conf, *versions))
    base = [asv]
    if config:
        base += ["--config", str(config)]
    base += ["run", "--machine", name, "--record-samples", "--show-stderr"]
    # This interpreter, named explicitly (asv's --python=same is the interpreter asv's script
    # runs under), so that kernelwatch knows the environment's result file.
    python = sys.executable if existing else None
    if existing:
        # asv saves results of an `existing` environment only with a commit to file them under.
        base += ["-E", f"existing:{python}", "--set-commit-hash", commits[0]]
    envs = environment_names(config or repo / "asv.conf.json", python)
    calls = (recorded.plan(results, name, commits, envs, chunks) if not args.rerun
             else [recorded.Call(commits, envs, chunk) for chunk in chunks])
    with contextlib.ExitStack() as stack:
        log = None
        if not (args.verbose or args.dry_run):
            path = log_path(repo)
            # Line-buffered, so `tail -f` follows it.
            log = stack.enter_context(path.open("a", encoding="utf-8", buffering=1))
            print(f"kernelwatch: asv's full output goes to {path} (-v shows it here)",
                  flush=True)
        failed, causes, measured = _run_calls(args, repo, base, rev, commits, envs, calls,
                                              existing, settings_env, log)
        # More processes per benchmark: asv measures each again in a fresh process and
        # appends the samples, so a result pools --processes processes (docs/measurement.md:
        # most of the noise between two commits is between processes).
        for round_ in range(2, args.processes + 1):
            if not measured or (args.dry_run and round_ > 2):
                break
            print(f"kernelwatch: process {round_} of {args.processes} for each benchmark just "
                  "measured (samples appended)", flush=True)
            more_failed, more_causes, _ = _run_calls(
                args, repo, base, rev, commits, envs, measured, existing, settings_env, log,
                extra=["--append-samples"])
            failed, causes = failed or more_failed, causes | more_causes
        if log is not None:
            print(f"kernelwatch: asv's full output is in {path}", flush=True)
    if failed:
        print("kernelwatch: some benchmarks failed or timed out (see the messages above); "
              "those parameters are recorded as failed, every other result is saved",
              file=sys.stderr)
        for cause in causes:
            print(f"kernelwatch: {FAILURE_FIXES[cause]}", file=sys.stderr)
        return 1
    return 0


def _target_flags(args: argparse.Namespace, repo: Path):
    """run's --target, --versions and --shard, parsed and checked: (Target or None,
    (dist, versions) or None, (k, n) or None)."""
    target = versions = shard = None
    if getattr(args, "target", None):
        if args.existing:
            raise KernelwatchError("--target builds the library at each commit in asv's "
                                   "environments; it cannot use --existing (drop one)")
        target = targets.resolve(args.target, repo)
    if getattr(args, "versions", None):
        if target:
            raise KernelwatchError("--versions measures releases at kernelwatch's commits, "
                                   "--target a library's commits: give one of them")
        if args.existing:
            raise KernelwatchError("--versions builds one environment per version; it "
                                   "cannot use --existing (drop one)")
        versions = targets.parse_versions(args.versions)
        if versions[0] == "torch" and args.torch:
            raise KernelwatchError("--versions torch=... names the torch versions; drop "
                                   "--torch")
    if getattr(args, "shard", None):
        shard = shards.parse(args.shard)
    return target, versions, shard


def _target_selections(args: argparse.Namespace, dist: str) -> tuple[list[Selection],
                                                                      dict[str, str]]:
    """The selections of a --target or --versions run: what the workloads declare for
    `dist`, narrowed by --workload and --param (torch: every workload, as a plain run)."""
    aliases = {name: getattr(args, name) for name in PARAM_ALIASES}
    if dist == "torch":
        workload = args.workload or "rope"
        names = [args.workload] if args.workload else list(workloads.WORKLOADS)
        if args.quick:
            return [sel for w in names for sel in quick_selections(w)], {}
        chosen, env = parse_params(workload, args.param or (), aliases)
        return [(workload, chosen, args.metric, args.track)], env
    workload = args.workload or (targets.only_workload(dist)
                                 if args.param or any(aliases.values()) else None)
    chosen, env = (parse_params(workload, args.param or (), aliases) if workload
                   else ({}, {}))
    return targets.run_selections(dist, workload, chosen, quick=args.quick,
                                  metrics=args.metric, tracks=args.track), env


def _run_calls(args: argparse.Namespace, repo: Path, base: list[str], rev: str,
               commits: list[str], envs: list[str], calls: list[recorded.Call],
               existing: bool, settings_env: dict[str, str], log: TextIO | None,
               extra: Sequence[str] = ()) -> tuple[bool, set[str], list[recorded.Call]]:
    """One asv run per planned call; (whether some benchmark failed, the causes seen, the
    calls that measured something)."""
    failed = False
    causes: set[str] = set()
    measured: list[recorded.Call] = []
    for i, call in enumerate(calls, 1):
        full = list(base)
        if not existing:
            full.append(rev if call.commits == commits else hashfile(repo, call.commits))
        if call.envs != envs and not existing:
            for env in call.envs:
                full += ["-E", env]
        for r in call.regexes:
            full += ["-b", r]
        full += [*args.asv_args, *extra]
        if args.dry_run:
            print(shlex.join(full))
            measured.append(call)
            continue
        if len(calls) > 1:
            print(f"kernelwatch: part {i} of {len(calls)} (saved when it ends)", flush=True)
        if call.kept:
            where = ("" if call.commits == commits and call.envs == envs else
                     f" at {', '.join(c[:8] for c in call.commits)} in {', '.join(call.envs)}")
            print(f"kernelwatch: {call.kept} selected results already recorded{where} are "
                  "kept, not measured again (--rerun measures them again)", flush=True)
        print("+", shlex.join(full), flush=True)
        seen: dict[str, str] = {}
        progress = None
        if log is not None:
            progress = AsvProgress(log, f"part {i}/{len(calls)}" if len(calls) > 1 else "asv")
        rc = _run_streaming(full, repo, seen, settings_env, progress)
        causes |= seen.keys() & FAILURE_FIXES.keys()
        if rc != 0 and "env-failed" in seen:
            raise KernelwatchError(environment_failure(seen, repo, log))
        if rc in (0, 1) and "none-selected" in seen:  # asv exits 1 on it in some modes
            if not call.kept:
                raise KernelwatchError("the selection matches no benchmark; "
                                       "`kernelwatch list` shows what exists")
            print("kernelwatch: nothing left to measure there; every selected result is "
                  "recorded", flush=True)
            continue
        measured.append(call)
        if rc == 2:  # asv's own code for "some benchmark failed": the run finished and saved
            failed = True
        elif rc != 0:
            where = f" (its output: {log.name})" if log is not None else ""
            raise KernelwatchError(f"asv run exited with status {rc}{where}; results of "
                                   "environments (and parts) that finished are saved in "
                                   "results/")
    return failed, causes, measured


# What asv's output reports: benchmark failures (each with its fix in FAILURE_FIXES), and a
# call whose regexes selected nothing (see cmd_run).
ASV_OUTPUT_PATTERNS = {
    "timeout": re.compile(r"timed out \(timeout ([\d.]+)s\)"),
    "oom": re.compile(r"OutOfMemoryError|CUDA out of memory|can't allocate memory|\bMemoryError\b"),
    "none-selected": re.compile(r"No benchmarks selected"),
    # A commit that does not build or install (a --target library's broken commit).
    "build-failed": re.compile(r"Error running .* -m pip (?:wheel|install) .*\(exit status"),
    # asv could not build an environment: pip failed on one requirement of the matrix
    # (`--torch 9.9.9`). asv prints the pip command, pip's own ERROR lines, and, where the
    # index answered, the versions it has.
    "env-failed": re.compile(r"Failure creating environment for (\S+)"),
    "pip-failed": re.compile(r"pip install -v --upgrade (\S+?)'? (?:returned non-zero|"
                             r"\(exit status)"),
    "pip-error": re.compile(r"^\s*ERROR: (.+)"),
    "pip-versions": re.compile(r"\(from versions: ([^)]*)\)"),
}
FAILURE_FIXES = {
    "timeout": "over the benchmark time budget (compile included): raise "
               "KERNELWATCH_BENCHMARK_TIMEOUT (seconds), or select a smaller shape or block",
    "oom": "out of memory: select a smaller shape (--shape), or run on a device with more "
           "memory",
    "build-failed": "a commit failed to build or install (pip's error is in the log): its "
                    "benchmarks are recorded as failed for that commit, the other commits "
                    "are measured; bisect skips such a commit, or counts it as slow with "
                    "--failed-is-bad",
}


def environment_failure(seen: dict[str, str], repo: Path, log: TextIO | None) -> str:
    """One message for an environment asv could not build, naming the requirement pip
    failed on and the matrix's versions of it (`--torch 9.9.9`)."""
    def group(key: str) -> str | None:
        m = ASV_OUTPUT_PATTERNS[key].search(seen[key]) if key in seen else None
        return m.group(1).strip() if m else None

    requirement = group("pip-failed")
    if requirement is None:
        what = f"asv could not create the environment {group('env-failed')}"
    else:
        what = f"pip cannot install {requirement}"
        if group("pip-error"):
            what += f" (pip: {group('pip-error')})"
        if group("pip-versions"):
            what += f"; the versions pip finds: {group('pip-versions')}"
    name = re.split(r"[=<>!~ ]", requirement or "torch", maxsplit=1)[0]
    matrix = asv_config(repo).get("matrix", {}).get("req", {})
    pinned = ", ".join(v for v in matrix.get(name, []) if v) or "no version"
    where = f" asv's whole output: {log.name}." if log is not None else ""
    return (f"{what}. asv.conf.json's matrix has {name} {pinned}: choose one of those (e.g. "
            f"--torch {pinned.split(', ')[0]}), or add the version to the matrix (README: "
            f"Adding torch versions).{where}")


def _run_streaming(cmd: list[str], cwd: Path, seen: dict[str, str],
                   extra_env: dict[str, str] | None = None,
                   progress: AsvProgress | None = None) -> int:
    """Run asv and note in `seen` what its output reports (ASV_OUTPUT_PATTERNS), so the
    summary can name the fix. Its output goes to `progress` (a bar and the failures, the
    whole in a log file), or line by line to stdout when there is none (-v). `extra_env`
    reaches the benchmark processes (a workload's SETTINGS)."""
    env = {**os.environ, **extra_env} if extra_env else None
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", bufsize=1, env=env)
    assert proc.stdout is not None
    rc = None
    try:
        for line in proc.stdout:
            if progress is None:
                print(line, end="", flush=True)
            else:
                progress.feed(line)
            for key, pattern in ASV_OUTPUT_PATTERNS.items():
                if key not in seen and pattern.search(line):
                    seen[key] = line
        rc = proc.wait()
        return rc
    except KeyboardInterrupt:
        proc.wait()  # asv got the same Ctrl-C; it keeps what it saved
        raise KernelwatchError("interrupted; result files already written under results/ "
                               "are kept") from None
    finally:
        if progress is not None:
            # 2: asv ran everything, some benchmarks failed; "none-selected": nothing to run.
            progress.close(finished=rc in (0, 2) or "none-selected" in seen)


def git_output(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def environment_names(config: Path, existing_python: str | None) -> list[str]:
    """The names asv gives this run's environments (its result files are named after them),
    from asv itself."""
    from asv import environment as asv_environment
    from asv.config import Config

    conf = Config.load(str(config))
    spec = [f"existing:{existing_python}"] if existing_python else None
    return [env.name for env in asv_environment.get_environments(conf, spec, verbose=False)]


def hashfile(repo: Path, commits: list[str]) -> str:
    """asv's way to name a set of commits that no git range spells: a file beside the derived
    config (git-ignored), named after its content like the config."""
    text = "\n".join(commits) + "\n"
    path = repo / f".asv-kernelwatch-commits-{hashlib.sha1(text.encode()).hexdigest()[:10]}.txt"
    if not path.exists():
        path.write_text(text)
    return f"HASHFILE:{path}"


def cmd_publish(args: argparse.Namespace) -> int:
    from kernelwatch.report import site

    if args.target:
        return _publish_target(args)
    repo = find_repo_root()
    results = repo / "results"
    if not any(results.glob("*/*.json")):
        raise KernelwatchError("no results to publish yet; run `kernelwatch run --quick` first")
    from kernelwatch.report import results as results_mod

    if args.skip_corrupt:
        # Publish from a copy of the readable files; results/ itself is never modified.
        readable = repo / ".kernelwatch" / "publish-results"
        for skipped in results_mod.readable_copy(results, readable):
            print(f"kernelwatch: left out of the site (unreadable, kept as it is in "
                  f"results/): {skipped}", file=sys.stderr)
        results = readable
    results_mod.load(results)  # a corrupt file stops here, before asv wipes html/
    branch = history_branch(repo, args.branch)
    config = derived_config(repo, branch=branch,
                            results_dir=str(results) if args.skip_corrupt else None)
    run_checked([asv_executable(), *(["--config", str(config)] if config else []), "publish"],
                repo)
    # The change table orders commits as the branch does (dates tie within a second).
    history = commits_in(repo, branch or asv_config(repo).get("branches", ["HEAD"])[0])
    page = site.write(results, repo / "html", workloads.bytes_for_benchmark,
                      baseline_for=workloads.baseline_variant,
                      flops=workloads.flops_for_benchmark, gate=workloads.gate_failure,
                      commit_order={c: len(history) - i for i, c in enumerate(history)},
                      **fidelity_for_site(repo))
    from kernelwatch.report import offline

    for left in offline.make_offline(repo / "html"):
        print(f"kernelwatch: warning: {left} still loads from the network (asv's pages "
              "changed: add it to scripts/vendor-asv-assets.py and kernelwatch.report."
              "offline.CDN)", file=sys.stderr)
    print(f"\nPublished. Open {repo / 'html' / 'index.html'} (asv's history)")
    print(f"and {page} (kernelwatch: speedups, regressions, roofline, write-up tables).")
    print(f"To serve it: asv preview   (or: python -m http.server -d {repo / 'html'})")
    return 0


def _publish_target(args: argparse.Namespace) -> int:
    """publish --target: asv's site over the library's commits (its branch order, linked to
    its commits where its URL is known) and kernelwatch's pages, in html-DIST/."""
    from kernelwatch.report import offline, site
    from kernelwatch.report import results as results_mod

    repo = find_repo_root()
    target = targets.resolve(args.target, repo)
    results, html = (targets.results_dir(repo, target.dist),
                     targets.html_dir(repo, target.dist))
    if not any(results.glob("*/*.json")):
        raise KernelwatchError(f"no results of {target.dist} to publish yet; run `kernelwatch "
                               f"run --target {args.target}` first")
    results_mod.load(results)  # a corrupt file stops here, before asv wipes the site
    branch = args.branch or targets.default_branch(target)
    targets.commit(target, branch)
    config = targets.write_config(repo, targets.target_config(asv_config(repo), target, repo,
                                                              branch=branch))
    run_checked([asv_executable(), "--config", str(config), "publish"], repo)
    history = targets.commits(target, branch)
    page = site.write(results, html, workloads.bytes_for_benchmark,
                      baseline_for=workloads.baseline_variant,
                      flops=workloads.flops_for_benchmark, gate=workloads.gate_failure,
                      commit_order={c: len(history) - i for i, c in enumerate(history)},
                      **fidelity_for_site(repo))
    for left in offline.make_offline(html):
        print(f"kernelwatch: warning: {left} still loads from the network", file=sys.stderr)
    print(f"\nPublished {target.dist}'s history. Open {html / 'index.html'} (asv's history "
          f"over {target.dist}'s commits) and {page}.")
    return 0


def fidelity_for_site(repo: Path) -> dict:
    """The newest `kernelwatch fidelity` figures per machine, as site.write takes them."""
    from kernelwatch import fidelity

    tables, thresholds = {}, {}
    for machine, (env, analyses, skipped) in fidelity.latest_analyses(repo).items():
        headers, body = fidelity.table(analyses, skipped)
        tables[machine] = (env, headers, body, fidelity.NOTE)
        thresholds[machine] = fidelity.series_thresholds(analyses)
    return {"fidelity": tables, "thresholds": thresholds}


def cmd_report(args: argparse.Namespace) -> int:
    from kernelwatch.report import results as results_mod
    from kernelwatch.report import site

    repo = find_repo_root()
    dist = targets.dist_of(args.target) if args.target else None
    rows = results_mod.load(targets.results_dir(repo, dist) if dist else repo / "results")
    print(site.text_table(rows, workloads.bytes_for_benchmark))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from kernelwatch.report import compare
    from kernelwatch.report import results as results_mod

    repo = find_repo_root()
    head_machine = machine_name(args.machine)
    base_machine = args.base_machine or head_machine
    target = targets.resolve(args.target, repo) if args.target else None
    if target:  # the library's commits, its results
        base = (base_machine, targets.commit(target, args.base))
        head = (head_machine, targets.commit(target, args.head))
        rows = results_mod.load(targets.results_dir(repo, target.dist))
    else:
        base = (base_machine, _resolve_commit(repo, args.base))
        head = (head_machine, _resolve_commit(repo, args.head))
        rows = results_mod.load(repo / "results")
    for machine, commit in (base, head):
        if not any(r.machine == machine and r.commit == commit for r in rows):
            machines = sorted({r.machine for r in rows if r.commit == commit})
            raise KernelwatchError(
                f"no results for commit {commit[:8]} on machine {machine!r}"
                + (f" (it has results on: {', '.join(machines)}; --machine / "
                   "--base-machine choose)" if machines else
                   f"; measure it first: kernelwatch run {commit[:8]}^!"))
    # An explicit --factor is used for every series; without it, each series measured by
    # `kernelwatch fidelity` on this machine uses its own threshold, the rest 1.10.
    from kernelwatch import fidelity

    factor = args.factor or detect.DEFAULT_FACTOR
    thresholds = None if args.factor else fidelity.thresholds(repo).get(head_machine)
    comparisons = compare.compare(rows, base, head, factor=factor, thresholds=thresholds)
    if not comparisons:
        raise KernelwatchError("the two have no series in common; run the same selection "
                               "at both")
    print(compare.markdown(comparisons, base, head, factor, thresholds))
    worse = [c for c in comparisons if c.mark in compare.WORSE_MARKS]
    if worse:
        print(f"\nkernelwatch: {len(worse)} series worse beyond their threshold "
              "(exit status 1)", file=sys.stderr)
        return 1
    return 0


def cmd_bisect(args: argparse.Namespace) -> int:
    """Glue: the series, the points and a measure() that runs `kernelwatch run` for one
    point (or reads what is recorded); the search and the report are bisect.py's."""
    import dataclasses

    from kernelwatch import bisect, fidelity
    from kernelwatch.report import compare
    from kernelwatch.report import results as results_mod

    repo = find_repo_root()
    if args.processes < 1:
        raise KernelwatchError("--processes takes a count of 1 or more (default 3)")
    if args.target and args.versions:
        raise KernelwatchError("bisect searches a target's commits (--target) or a list of "
                               "versions (--versions), not both")
    target = targets.resolve(args.target, repo) if args.target else None
    versions = targets.parse_versions(args.versions) if args.versions else None
    if versions and versions[0] == "torch" and args.torch:
        raise KernelwatchError("--versions torch=... names the torch versions; drop --torch")
    machine = machine_name(args.machine)
    chosen, _ = parse_params(args.workload, args.param or (), {})
    dist = target.dist if target else versions[0] if versions else None
    if dist and dist != "torch":
        [(_, chosen)] = targets.selection_for(dist, args.workload, chosen)
    series = bisect.resolve_series(repo, args.workload, chosen, args.metric,
                                   args.track or "time")
    results = targets.results_dir(repo, target.dist) if target else repo / "results"
    head = git_output(repo, "rev-parse", "HEAD")
    if target:
        config = targets.write_config(repo, targets.target_config(
            asv_config(repo), target, repo, torch_versions=args.torch,
            env_dir=os.environ.get("KERNELWATCH_ENV_DIR")))
        points = bisect.commit_points(target.repo, args.good, args.bad, f"target {dist}")
    elif versions:
        config = derived_config(repo, torch_versions=args.torch) or repo / "asv.conf.json"
        from asv import util as asv_util

        conf = asv_util.load_json(str(config), js_comments=True)
        config = targets.write_config(repo, targets.versions_matrix(conf, dist, versions[1][:1]))
        points = bisect.version_points(versions[1], args.good, args.bad, dist)
    else:
        config = derived_config(repo, torch_versions=args.torch) or repo / "asv.conf.json"
        points = bisect.commit_points(repo, args.good, args.bad, "kernelwatch")
    envs = environment_names(config, None)
    if len(envs) != 1:
        raise KernelwatchError(f"bisect follows one environment, and the matrix gives "
                               f"{len(envs)} ({', '.join(envs)}): choose one torch with --torch")
    if versions:
        def env_ok(row, point):
            return targets.version_label(str(row.env.get(dist, ""))) == point
    else:
        def env_ok(row, point):
            return row.env_name == envs[0]

    def recorded_row(point: str):
        commit = head if versions else point
        return bisect.find(results_mod.load(results) if results.is_dir() else [], machine,
                           commit, series, lambda r: env_ok(r, point))

    def measure(point: str) -> bisect.Measured:
        row = recorded_row(point)
        if row is not None and not row.failed:
            return bisect.measured_of(point, row, reused=True)
        argv = ["run", *series.run_args(), "--processes", str(args.processes),
                "--machine", machine, "--skip-machine-facts",
                *(f for t in args.torch or () for f in ("--torch", t))]
        if target:
            argv += ["--target", args.target, f"{point}^!"]
        elif versions:
            argv += ["--versions", f"{dist}={point}", "HEAD^!"]
        else:
            argv += [f"{point}^!"]
        argv += ["-v"] if args.verbose else []
        print(f"kernelwatch bisect: measuring {point[:12]} ({args.processes} processes)",
              flush=True)
        if main(argv) == 2:
            raise KernelwatchError(f"measuring {point} stopped (see the message above); the "
                                   "points measured before it are recorded")
        return bisect.measured_of(point, recorded_row(point), reused=False)

    measured_thresholds = None if args.factor else fidelity.thresholds(repo).get(machine)
    factor = (args.factor or (measured_thresholds or {}).get(series.key)
              or detect.DEFAULT_FACTOR)
    print(f"kernelwatch bisect: {series.key} over {len(points) - 1} "
          f"{'versions' if versions else 'commits'} after GOOD, threshold {factor:.2f}, at "
          f"most {bisect.max_points(len(points) - 1)} points", flush=True)
    outcome = bisect.search(points, measure, factor=factor, failed_is_bad=args.failed_is_bad)
    labels = ({p: p for p in points} if versions else
              targets.subjects(target.repo if target else repo, points))
    print()
    print("\n".join(bisect.summary(outcome, "version" if versions else "commit", labels)))
    if outcome.culprit and outcome.parent and not outcome.candidates:
        rows = results_mod.load(results)
        base, after = (machine, outcome.parent), (machine, outcome.culprit)
        if versions:  # one commit, two environments: compared as two points
            rows = [dataclasses.replace(r, commit=p, env_name=dist)
                    for p in (outcome.parent, outcome.culprit) for r in rows
                    if r.commit == head and env_ok(r, p)]
        comparisons = compare.compare(rows, base, after, factor=args.factor or
                                      detect.DEFAULT_FACTOR, thresholds=measured_thresholds)
        print()
        print(compare.markdown(comparisons, base, after, args.factor or detect.DEFAULT_FACTOR,
                               measured_thresholds))
    return 0 if outcome.culprit else 1


def cmd_fidelity(args: argparse.Namespace) -> int:
    from kernelwatch import fidelity

    repo = find_repo_root()
    machine = machine_name(args.machine)
    # Checked before measuring: a run takes many minutes.
    if args.pool < 1:
        raise KernelwatchError("--pool takes a count of 1 or more (3 pools three processes)")
    if not args.show and args.pool > 1 and args.runs < 2 * args.pool:
        raise KernelwatchError(f"--pool {args.pool} needs at least {2 * args.pool} runs per "
                               "series; raise --runs")
    if args.show:
        latest = fidelity.load_latest(repo).get(machine)
        if not latest:
            raise KernelwatchError(f"no fidelity runs for machine {machine!r} in "
                                   f"{fidelity.fidelity_dir(repo)}; run `kernelwatch fidelity`")
        measured = [m for m, _ in latest.values()]
    else:
        try:
            slowdowns = [float(x) for x in args.slowdowns.split(",") if x.strip()]
        except ValueError:
            raise KernelwatchError(f"--slowdowns takes fractions like 0.02,0.05, not "
                                   f"{args.slowdowns!r}") from None
        if args.runs < 2 or any(not 0 < x < 10 for x in slowdowns):
            raise KernelwatchError("--runs needs at least 2 (21 gives 20 pairs), and each "
                                   "slowdown is a fraction above 0 (0.05 = 5%)")
        import torch

        on_gpu = torch.cuda.is_available()
        names = args.workload or [w for w in workloads.WORKLOADS
                                  if "time" in workloads.get(w).BENCHMARKS]
        plan = []
        for name in names:
            chosen, env = parse_params(name, args.param or [], {})
            check_choices(workloads.get(name).PARAMS, chosen, where=name)
            os.environ.update(env)
            plan += fidelity.targets(repo, name, chosen, args.track, on_gpu)
        print(f"kernelwatch fidelity: {len(plan)} series x {args.runs} processes (a case's "
              f"series share one), each measured as it is and with "
              f"{', '.join(f'{100 * x:g}%' for x in slowdowns)} injected; machine {machine}")
        measured = []
        path, env = fidelity.new_path(repo, machine), environment.capture()
        groups = fidelity.cases(plan)
        for i, case in enumerate(groups, 1):
            tracks = ", ".join(t.track.removeprefix("track_") for t in case)
            print(f"[{i}/{len(groups)}] {case[0].key} ({tracks})", flush=True)
            measured += fidelity.measure_case(repo, case, args.runs, slowdowns,
                                              timeout=args.timeout,
                                              progress=lambda line: print(line, flush=True))
            fidelity.save(path, machine, measured, env)
        print(f"samples saved to {path}")
    done = [m for m in measured if not m.skipped]
    if any(len(m.runs) < 2 * args.pool for m in done):
        raise KernelwatchError(f"--pool {args.pool} needs at least {2 * args.pool} runs per "
                               "series; the saved runs have fewer")
    print()
    print(fidelity.markdown([fidelity.analyse(m, pool=args.pool) for m in done],
                            [m for m in measured if m.skipped]))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from kernelwatch import history

    repo = find_repo_root()
    results = repo / "results"
    if args.target:  # a target's results and its own branch: never mixed with ours
        dist = targets.dist_of(args.target)
        results = targets.results_dir(repo, dist)
        args.branch = targets.history_branch(dist, args.branch)
    if args.history_command == "pull":
        report = history.pull(results, args.remote, args.branch)
        print(f"kernelwatch history: {len(report.added)} result files added from "
              f"{args.remote} {args.branch}, {len(report.kept)} already here")
    else:
        machines = sorted({p.parent.name for p in results.glob("*/*.json")})
        report = history.push(results, args.remote, args.branch,
                              message=f"results from {', '.join(machines)}")
        print(f"kernelwatch history: {len(report.added)} result files added to {args.remote} "
              f"{args.branch}, {len(report.kept)} already there"
              + (f", {', '.join(report.merged)} merged" if report.merged else ""))
    for rel in report.conflicts:
        print(f"kernelwatch history: {rel} differs between here and the branch; both kept "
              "as they are (a result file is never replaced)", file=sys.stderr)
    return 0


def _resolve_commit(repo: Path, name: str) -> str:
    commit = commit_of(repo, name)
    if commit is None:
        raise KernelwatchError(f"git cannot resolve {name!r} to a commit")
    return commit


def cmd_docker_build(args: argparse.Namespace) -> int:
    from kernelwatch import containers

    repo = find_repo_root()
    tag = containers.build(
        repo, device=args.device, tag=args.tag, base_image=args.base_image,
        torch_version=args.torch_version, torch_index_url=args.torch_index_url,
        wheelhouse=Path(args.wheelhouse).resolve() if args.wheelhouse else None,
        ca_bundles=[Path(p) for p in args.ca_bundle or ()], network=args.network,
        with_te=args.with_te,
    )
    print(f"built {tag}; run the suite in it: kernelwatch docker run --tag {tag} -- run --quick")
    return 0


def cmd_docker_run(args: argparse.Namespace) -> int:
    from kernelwatch import containers

    rest = args.kernelwatch_args
    if rest and rest[0] == "--":
        rest = rest[1:]
    return containers.run(find_repo_root(), tag=args.tag, gpus=args.gpus,
                          network=args.network, args=rest or ["run", "--quick"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kernelwatch",
        description="Benchmark isolated ML kernels (eager, torch.compile, fused) with asv "
        "across commits and PyTorch versions, and publish the history.",
        epilog="Each command wraps asv; it prints the asv command it runs. "
        "Plain asv commands work on the repository too.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("env", help="print what will be recorded about this machine and torch")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_env)

    ls = sub.add_parser("list", help="list workloads: their parameters, metrics, quick case")
    ls.add_argument("workload", nargs="?", help="one workload (default: all)")
    ls.set_defaults(func=cmd_list)

    r = sub.add_parser(
        "run", help="run the benchmarks with asv",
        description="Run benchmarks with `asv run` over a commit range and the torch matrix of "
        "asv.conf.json (one virtualenv per torch version), or in this interpreter "
        "(--existing, e.g. a GPU machine's preinstalled torch). Results go to results/. "
        "Arguments after `--` go to `asv run` unchanged.",
    )
    r.add_argument("range", nargs="?",
                   help="git range (default HEAD~2..HEAD, the last two commits)")
    r.add_argument("--quick", action="store_true",
                   help="each workload's tiny shape and a few variants (RoPE: eager, compile, "
                   "compile-dynamic; GPTQ: eager, compile-block at block 16), time, accuracy "
                   "and one cold compile: a few minutes on 2 CPU cores")
    r.add_argument("--existing", action="store_true",
                   help="benchmark with this interpreter's torch (asv -E existing:PYTHON), HEAD "
                   "only; one asv call per metric family, each saved when it ends")
    r.add_argument("--workload", help="workload (default: rope; with --quick, every workload)")
    r.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="only this value of the workload's parameter NAME (repeatable; "
                   "default all values). `kernelwatch list WORKLOAD` shows the names, e.g. "
                   "--param variant=eager --param size=gpt2")
    for flag in PARAM_ALIASES:
        r.add_argument(f"--{flag}", action="append", metavar=flag.upper(),
                       help=f"same as --param {flag}={flag.upper()}")
    r.add_argument("--metric", action="append", metavar="FAMILY",
                   help="only this metric family, e.g. time, accuracy (repeatable; default "
                   "all; `kernelwatch list` shows each workload's)")
    r.add_argument("--track", action="append", metavar="NAME",
                   help="only the track_ methods of this name, e.g. decode_time (repeatable)")
    r.add_argument("--torch", action="append", metavar="VERSION",
                   help="only this torch version of asv.conf.json's matrix (repeatable; an "
                   "exact version, pip flags allowed as in the matrix)")
    r.add_argument("--machine", help="asv machine name (default: $KERNELWATCH_MACHINE or host)")
    r.add_argument("--branch", help="the branch asv follows (default: asv.conf.json's, or the "
                   "checked-out branch where that one does not exist)")
    r.add_argument("--rerun", action="store_true",
                   help="measure again what is already recorded, replacing it (default: each "
                   "commit and environment measures only the selected results not yet "
                   "recorded; failed ones are tried again)")
    r.add_argument("--processes", type=int, default=1, metavar="K",
                   help="measure each benchmark in K fresh processes, samples pooled (asv "
                   "--append-samples): K=3 halves the noise between commits on a shared "
                   "machine (docs/measurement.md); default 1")
    r.add_argument("--target", metavar="DIST=REPO",
                   help="benchmark the library DIST at its commits: REPO is a local git "
                   "clone or a git URL, RANGE its commits (default its last two). Only the "
                   "cases the workloads declare for DIST run (kernelwatch list); kernelwatch "
                   "itself (HEAD) is installed beside it; results go to results-DIST/")
    r.add_argument("--versions", metavar="DIST=V1,V2",
                   help="these released versions of DIST side by side in asv's matrix (torch "
                   "or a declared library, installed with --no-deps beside its declared "
                   "requirements); the versions page compares them")
    r.add_argument("--shard", metavar="K/N",
                   help="only the K-th of N deterministic parts of the selection (class x "
                   "parameter combinations; environment facts in every part), for N runners")
    r.add_argument("--skip-machine-facts", action="store_true",
                   help="leave out environment.* (copy bandwidth, matmul rate, threads: "
                   "about 30 s a commit here); bisect does, following one series")
    r.add_argument("--dry-run", action="store_true", help="print the asv command, run nothing")
    r.add_argument("-v", "--verbose", action="store_true",
                   help="stream asv's whole output (default: a progress bar and the failures; "
                   "the whole output goes to a log file under .kernelwatch/logs, whose path "
                   "is printed)")
    r.set_defaults(func=cmd_run)

    pub = sub.add_parser("publish", help="asv publish, plus kernelwatch's speedup pages")
    pub.add_argument("--branch", help="the branch whose commits the graphs show (default: "
                     "asv.conf.json's, or the checked-out branch where that one does not exist)")
    pub.add_argument("--skip-corrupt", action="store_true",
                     help="publish every readable result and name the unreadable ones "
                     "(default: an unreadable file stops the publish); results/ is never "
                     "modified")
    pub.add_argument("--target", metavar="DIST=REPO",
                     help="publish the library's history (results-DIST/) to html-DIST/")
    pub.set_defaults(func=cmd_publish)

    rep = sub.add_parser("report", help="print speedups vs eager and GB/s from results/")
    rep.add_argument("--target", metavar="DIST[=REPO]",
                     help="the library's results (results-DIST/)")
    rep.set_defaults(func=cmd_report)

    cmp = sub.add_parser(
        "compare", help="markdown of what changed between two commits; exit 1 on a regression",
        description="Compare every series recorded at BASE and at HEAD (same machine by "
        "default) and print a markdown table for a pull request or a CI summary, significant "
        "changes first. A change counts when asv's test on the recorded samples finds it "
        "significant and the medians differ by more than --factor; a benchmark whose "
        "`version` changed in between is shown as not comparable. Exits 1 when a time or "
        "memory series got worse, or a benchmark newly fails.")
    cmp.add_argument("base", help="the commit before (e.g. main, HEAD~1)")
    cmp.add_argument("head", help="the commit after (e.g. HEAD)")
    cmp.add_argument("--factor", type=float,
                     help="smallest ratio of medians that counts, for every series (default: "
                     "each series' threshold from `kernelwatch fidelity` on this machine, "
                     "else 1.10)")
    cmp.add_argument("--machine", help="asv machine of HEAD's results (default: "
                     "$KERNELWATCH_MACHINE or host)")
    cmp.add_argument("--base-machine", help="asv machine of BASE's results (default: "
                     "--machine); two machine names of one commit compare two runs of it")
    cmp.add_argument("--target", metavar="DIST=REPO",
                     help="BASE and HEAD are commits of the library (results-DIST/)")
    cmp.set_defaults(func=cmd_compare)

    fid = sub.add_parser(
        "fidelity", help="measure each timed benchmark's noise, false alarms and the "
        "smallest slowdown its regression check catches",
        description="Run each timed benchmark's asv class in --runs fresh processes (as asv "
        "does), each measuring it as it is and with test-only slowdowns injected into the "
        "measuring core. Neighbouring processes are compared with the regression check "
        "(asv's significance test and a factor): A/A pairs give the false-alarm rate at each "
        "factor, A/B pairs the share of each slowdown caught. Prints a table per series; "
        "saves the raw samples under .kernelwatch/fidelity/ (a new file per run); "
        "`kernelwatch compare` and the site then use each series' threshold. Run it on a "
        "quiet machine: other work moves the figures. Default: every workload's quick case "
        "(plus caller time on a GPU); on 2 CPU cores about 30 min.")
    fid.add_argument("--workload", action="append",
                     help="only this workload (repeatable; default all)")
    fid.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="this value of the workload's parameter (repeatable; default the "
                     "quick case)")
    fid.add_argument("--track", action="append", metavar="NAME",
                     help="this timed track, e.g. time, caller_time (default: the quick ones)")
    fid.add_argument("--runs", type=int, default=21,
                     help="fresh processes per series (default 21: 20 neighbouring pairs)")
    fid.add_argument("--slowdowns", default="0.02,0.05,0.10",
                     help="injected slowdowns, fractions (default 0.02,0.05,0.10)")
    fid.add_argument("--timeout", type=float, default=600,
                     help="seconds one process may take (default 600)")
    fid.add_argument("--machine", help="machine name the figures are filed under (default: "
                     "$KERNELWATCH_MACHINE or host)")
    fid.add_argument("--show", action="store_true",
                     help="print the table from the newest saved runs; measure nothing")
    fid.add_argument("--pool", type=int, default=1, metavar="K",
                     help="judge pairs of K-process sets, samples pooled: what `kernelwatch "
                     "run --processes K` records (default 1; thresholds for compare and the "
                     "site are always for 1)")
    fid.set_defaults(func=cmd_fidelity)

    bis = sub.add_parser(
        "bisect", help="find the first commit (or version) at which a series got worse",
        description="git bisect for one series: GOOD and BAD are commits of kernelwatch, of "
        "the --target library, or two of the --versions. Each point is measured in "
        "--processes fresh processes (`kernelwatch run`; what is recorded is reused, and "
        "what is measured stays in the history) and judged against GOOD with compare's test "
        "at the series' threshold (its `kernelwatch fidelity` threshold on this machine, "
        "else 1.10). At most ceil(log2 n) + 2 points for n commits. Prints `<sha> is the "
        "first bad commit`, the ratio with its 99% interval, the points tested and the "
        "compare markdown of the culprit against its parent. Exit 0: found; 1: no "
        "regression between GOOD and BAD; 2: bad input.")
    bis.add_argument("good", help="a commit (or version) where the series is as it should be")
    bis.add_argument("bad", help="a later commit (or version) where it is slower")
    bis.add_argument("--workload", required=True, help="the series' workload")
    bis.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="one value of each parameter that has several (repeatable)")
    bis.add_argument("--metric", action="append", metavar="FAMILY",
                     help="the benchmark class, where the track is in several")
    bis.add_argument("--track", help="the track, e.g. time (default), caller_time")
    bis.add_argument("--target", metavar="DIST=REPO",
                     help="bisect the library's commits (as run --target)")
    bis.add_argument("--versions", metavar="DIST=V1,V2,...",
                     help="bisect these versions, oldest first (as run --versions)")
    bis.add_argument("--torch", action="append", metavar="VERSION",
                     help="the torch version of the matrix (one environment)")
    bis.add_argument("--machine", help="asv machine name (default: $KERNELWATCH_MACHINE or "
                     "host)")
    bis.add_argument("--processes", type=int, default=3, metavar="K",
                     help="fresh processes per point, samples pooled (default 3)")
    bis.add_argument("--factor", type=float,
                     help="smallest ratio that counts as worse (default: the series' "
                     "threshold from `kernelwatch fidelity` on this machine, else 1.10)")
    bis.add_argument("--failed-is-bad", action="store_true",
                     help="a point that fails (build error, timeout) counts as a slowdown "
                     "(default: it is skipped, as git bisect skip)")
    bis.add_argument("-v", "--verbose", action="store_true", help="stream asv's output")
    bis.set_defaults(func=cmd_bisect)

    hist = sub.add_parser(
        "history", help="pull or push results/ from or to the shared results branch",
        description="Results from many runners (GPU kinds, CI jobs) accumulate on one git "
        "branch. `pull` adds the branch's result files to results/; `push` adds results/' "
        "new files to the branch, retrying when another runner landed first. Neither "
        "ever replaces a result file that exists.")
    hist.add_argument("history_command", choices=["pull", "push"])
    hist.add_argument("--remote", default="origin",
                      help="git remote name or URL (default origin)")
    hist.add_argument("--branch", default="kernelwatch-results",
                      help="the results branch (default kernelwatch-results)")
    hist.add_argument("--target", metavar="DIST[=REPO]",
                      help="the library's results (results-DIST/), on the branch "
                      "BRANCH-DIST")
    hist.set_defaults(func=cmd_history)

    dk = sub.add_parser("docker", help="build and run the CPU/CUDA images (Docker SDK)")
    dsub = dk.add_subparsers(dest="docker_command", required=True)
    b = dsub.add_parser(
        "build", help="build docker/Dockerfile for cpu or cuda",
        description="Build the kernelwatch image with the classic builder. Works without a "
        "registry (--base-image from docker/bootstrap-base), behind a TLS-intercepting proxy "
        "(--ca-bundle) and offline for torch (--wheelhouse with the wheels pip should use).",
    )
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    b.add_argument("--tag", help="image tag (default kernelwatch:cpu / kernelwatch:cuda)")
    b.add_argument("--base-image", help="FROM image (default python:3.11-slim-bookworm)")
    b.add_argument("--torch-version", help="torch in the image (cpu: 2.13.0, cuda: 2.14.1)")
    b.add_argument("--torch-index-url",
                   help="extra index for torch (cpu default: PyTorch's CPU index; '' for none)")
    b.add_argument("--wheelhouse", help="folder of wheels pip tries first")
    b.add_argument("--ca-bundle", action="append",
                   help="extra CA certificates (PEM) to trust (repeatable)")
    b.add_argument("--network", help="build network, e.g. host where only the host reaches PyPI")
    b.add_argument("--with-te", action="store_true",
                   help="also build TransformerEngine (cuda only; needs --base-image with nvcc, "
                   "cuDNN and Python 3.11; tens of minutes): llama_layer's te backend")
    b.set_defaults(func=cmd_docker_build)
    dr = dsub.add_parser(
        "run", help="run kernelwatch inside the image with this repository mounted",
        description="Run `kernelwatch ARGS` (default: run --quick) in the image. The repository "
        "is mounted at /repo and written as your user; results go to results/docker-<tag>/.",
    )
    dr.add_argument("--tag", default="kernelwatch:cpu", help="image (default kernelwatch:cpu)")
    dr.add_argument("--gpus", action="store_true", help="request all GPUs (--gpus all)")
    dr.add_argument("--network", help="container network, e.g. host")
    dr.add_argument("kernelwatch_args", nargs=argparse.REMAINDER,
                    help="after --: the kernelwatch command to run inside")
    dr.set_defaults(func=cmd_docker_run)
    return p


def split_asv_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """`kernelwatch run ... -- ASV ARGS`: what follows `--` goes to asv unchanged, and
    kernelwatch's own options may stand anywhere before it (after the range too)."""
    if argv[:1] == ["run"] and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    own, asv_args = split_asv_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(own)
    args.asv_args = asv_args
    try:
        return args.func(args)
    except KernelwatchError as exc:
        print(f"kernelwatch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
