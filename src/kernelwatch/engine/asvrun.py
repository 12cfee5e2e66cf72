"""Running asv: its executable, the machine file, the derived config, environment names,
the lock that keeps two runs of one checkout apart, and reading its output for the causes
of a failure (each with its fix)."""

from __future__ import annotations

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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from kernelwatch import environment
from kernelwatch.engine.gitrepo import commit_of
from kernelwatch.engine.progress import AsvProgress, Outcomes
from kernelwatch.errors import Interrupted, KernelwatchError, Terminated
from kernelwatch.libraries.releases import index_versions
from kernelwatch.results import files as result_files
from kernelwatch.results.outcomes import TIMED_OUT


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


def machine_name(arg: str | None, flag: str = "--machine") -> str:
    """The asv machine results are filed under: the flag, else $KERNELWATCH_MACHINE, else
    the host name. A plain name, never a path: it becomes a directory under results/."""
    if arg is not None:
        where = flag
    elif os.environ.get("KERNELWATCH_MACHINE"):
        arg, where = os.environ["KERNELWATCH_MACHINE"], "KERNELWATCH_MACHINE"
    else:
        arg, where = socket.gethostname(), "this host's name"
    try:
        return result_files.check_machine_name(arg, where)
    except result_files.Refused as exc:
        raise KernelwatchError(f"{exc}; name another with "
                               f"{flag if where == flag else '--machine'}") from None


# asv's machine file; "~" is expanded when it is used (tests move HOME).
MACHINE_FILE = Path("~/.asv-machine.json")


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
    path = MACHINE_FILE.expanduser()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as exc:
        raise KernelwatchError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    data[name] = entry
    data["version"] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, sort_keys=True))
    return entry


# Named after its content, so runs with different overrides (another --torch, a dry run
# beside a running run) never rewrite a config that an asv call of another run still reads.
DERIVED_CONFIG = ".asv-kernelwatch-{digest}.conf.json"


def derived_config(repo: Path, *, existing: bool = False,
                   torch_versions: list[str] | None = None, env_dir: str | None = None,
                   branch: str | None = None, results_dir: str | None = None,
                   html_dir: str | None = None) -> Path | None:
    """asv.conf.json with kernelwatch's overrides, or None when there are none.

    - existing: an empty matrix. asv would otherwise file an `existing` environment's
      results under the matrix's first torch version, whatever torch the interpreter has;
      with no matrix the torch recorded is machine info's, read from the interpreter.
    - torch_versions: only these torch versions of the matrix (exact versions).
    - env_dir: where asv keeps its virtualenvs (a container keeps them apart from the host's,
      whose interpreters it cannot run).
    - branch: the branch asv follows (`run` with no range, `publish`'s graphs), where the
      configured one does not exist in this clone (see history_branch).
    - results_dir: where asv reads results (publish: a checked copy).
    - html_dir: where asv writes the site (publish builds it beside the old one).
    """
    if not (existing or torch_versions or env_dir or branch or results_dir or html_dir):
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
    if html_dir:
        conf["html_dir"] = html_dir
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


def environment_names(config: Path, existing_python: str | None) -> list[str]:
    """The names asv gives this run's environments (its result files are named after them),
    from asv itself."""
    from asv import environment as asv_environment
    from asv.config import Config

    conf = Config.load(str(config))
    spec = [f"existing:{existing_python}"] if existing_python else None
    return [env.name for env in asv_environment.get_environments(conf, spec, verbose=False)]


def environment_prefixes(config: Path, existing_python: str | None) -> dict[str, str]:
    """{interpreter prefix: environment name} of this run's environments (a benchmark
    process knows its own prefix, not asv's name for it)."""
    from asv import environment as asv_environment
    from asv.config import Config

    conf = Config.load(str(config))
    spec = [f"existing:{existing_python}"] if existing_python else None
    out = {}
    for env in asv_environment.get_environments(conf, spec, verbose=False):
        # An existing environment is this interpreter (the engine passes sys.executable).
        prefix = Path(sys.prefix) if existing_python else Path(env._path)
        out[str(prefix.resolve())] = env.name
    return out


def hashfile(repo: Path, commits: list[str]) -> str:
    """asv's way to name a set of commits that no git range spells: a file beside the derived
    config (git-ignored), named after its content like the config."""
    text = "\n".join(commits) + "\n"
    path = repo / f".asv-kernelwatch-commits-{hashlib.sha1(text.encode()).hexdigest()[:10]}.txt"
    if not path.exists():
        path.write_text(text)
    return f"HASHFILE:{path}"


RUN_LOCK = ".kernelwatch-run.lock"


@contextlib.contextmanager
def results_lock(repo: Path) -> Iterator[None]:
    """One `kernelwatch run` at a time per checkout. Two runs sharing a (commit,
    environment) result file would each write what they measured and the last writer would
    drop the other's results; the derived config is shared too. A second run waits here,
    saying so."""
    with waiting_lock(repo / RUN_LOCK,
                      f"another kernelwatch run is using this checkout ({repo})",
                      "interrupted while waiting for the other run; nothing was run"):
        yield


@contextlib.contextmanager
def waiting_lock(path: Path, busy: str, interrupted: str) -> Iterator[None]:
    """Hold the lock file `path`; where another process holds it, say `busy` and wait (Ctrl-C
    ends the wait with `interrupted`)."""
    import filelock

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"kernelwatch: {busy}; waiting for it to finish (Ctrl-C to stop)", flush=True)
        try:
            lock.acquire()
        except KeyboardInterrupt:
            raise KernelwatchError(interrupted) from None
    try:
        yield
    finally:
        lock.release()


# What asv's output reports: benchmark failures (each with its fix in FAILURE_FIXES), and a
# call whose regexes selected nothing (see cmd_run).
ASV_OUTPUT_PATTERNS = {
    "timeout": TIMED_OUT,
    "oom": re.compile(r"OutOfMemoryError|CUDA out of memory|can't allocate memory|\bMemoryError\b"),
    "none-selected": re.compile(r"No benchmarks selected"),
    # A commit that does not build or install (a --target library's broken commit).
    "build-failed": re.compile(r"Error running .* -m pip (?:wheel|install) .*\(exit status"),
    "disk-full": re.compile(r"No space left on device|\[Errno 28\]|Disk quota exceeded"),
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
    name = re.split(r"[=<>!~ ]", requirement or "torch", maxsplit=1)[0]
    if requirement is not None:
        found = group("pip-versions") or index_versions(name)
        what += (f"; the versions pip finds: {found}" if found else
                 "; pip's index lists no version of it here")
    matrix = asv_config(repo).get("matrix", {}).get("req", {})
    pinned = ", ".join(v for v in matrix.get(name, []) if v) or "no version"
    where = f" asv's whole output: {log.name}." if log is not None else ""
    return (f"{what}. asv.conf.json's matrix has {name} {pinned}: choose one of those (e.g. "
            f"--torch {pinned.split(', ')[0]}), or add the version to the matrix (docs/cli.md: "
            f"Adding torch versions).{where}")


REST_SECONDS = 5.0  # how long a stopped run's last output is waited for


def stream(cmd: list[str], cwd: Path, seen: dict[str, str],
           extra_env: dict[str, str] | None = None,
           progress: AsvProgress | None = None, outcomes: Outcomes | None = None) -> int:
    """Run asv and note in `seen` what its output reports (ASV_OUTPUT_PATTERNS), so the
    summary can name the fix. Its output goes to `progress` (a bar and the failures, the
    whole in a log file), or line by line to stdout when there is none (-v); every line also
    to `outcomes` (what each combination ended as). `extra_env` reaches the benchmark
    processes (a workload's SETTINGS)."""
    env = {**os.environ, **extra_env} if extra_env else None
    # Through the reaper: no benchmark process outlives kernelwatch, SIGKILL included.
    guarded = [sys.executable, "-m", "kernelwatch.engine.reaper", str(os.getpid()), "--", *cmd]
    proc = subprocess.Popen(guarded, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
                            env=env)
    assert proc.stdout is not None
    rc = None

    def take(line: str) -> None:
        if progress is None:
            print(line, end="", flush=True)
        else:
            progress.feed(line)
        if outcomes is not None:
            outcomes.feed(line)
        for key, pattern in ASV_OUTPUT_PATTERNS.items():
            if key not in seen and pattern.search(line):
                seen[key] = line

    # asv's output is read and taken by a thread of its own: SIGTERM and Ctrl-C raise in
    # this thread only, so none can fall between reading a line and taking it (a run stopped
    # at once with its benchmark loop would lose the line naming the process it stopped).
    # After the run's end is said, a line still coming is not taken.
    lock = threading.Lock()
    said = threading.Event()
    failed: list[BaseException] = []

    def read() -> None:
        try:
            for line in proc.stdout:
                with lock:
                    if said.is_set():
                        return
                    take(line)
        except (OSError, ValueError):
            pass
        except BaseException as exc:  # raised again in this thread, once the run has ended
            failed.append(exc)

    reader = threading.Thread(target=read, name="asv-output", daemon=True)
    reader.start()
    try:
        rc = proc.wait()
        reader.join()  # the pipe closes once the reaper has ended every process
        if failed:
            raise failed[0]
        return rc
    except KeyboardInterrupt:
        proc.wait()  # asv got the same Ctrl-C; it keeps what it saved
        # What asv printed as it ended (the process it stopped, for one): a few seconds at
        # most, should a process outlive the reaper and keep the pipe open.
        reader.join(REST_SECONDS)
        raise Interrupted("interrupted; result files already written under results/ "
                          "are kept") from None
    except Terminated:
        proc.terminate()  # the reaper ends asv and every benchmark process
        proc.wait()
        reader.join(REST_SECONDS)
        raise Interrupted("terminated (SIGTERM): asv and its benchmark processes were "
                          "stopped; result files already written under results/ are "
                          "kept") from None
    finally:
        with lock:
            said.set()
        if progress is not None:
            # 2: asv ran everything, some benchmarks failed; "none-selected": nothing to run.
            progress.close(finished=rc in (0, 2) or "none-selected" in seen)
