"""The benchmark loop of `asv run` under kernelwatch: one benchmark process per parameter
combination, as asv does, but each combination saved to its result file as soon as it ends,
and a progress line per combination.

asv 0.6 keeps a (commit, environment)'s results in memory until every selected benchmark
there has run, then writes the file once: a run cut after seven minutes of a 42-combination
benchmark keeps nothing. kernelwatch runs asv's own `run` command (its environments, builds,
discovery, spawner and `Results`) with this loop in place of `asv.runner.run_benchmarks`:
`python -m kernelwatch.engine.benchloop --save-to RESULTS_DIR -- run ...`. Plain `asv run` keeps
asv's loop.

With `launch_method: forkserver` (asv.conf.json) asv starts one server per environment that
imports the benchmark suite once and forks a child per combination: no interpreter start and
no `import torch` per combination. The server never touches CUDA (the suite's imports do
not), and each child checks that (benchmarks/common.py `device()`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import itertools
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kernelwatch.results.files import PROCESSES_KEY, SAMPLES_KEY, pooled_processes

if TYPE_CHECKING:
    from asv.results import Results

# `kernelwatch 12/42 5.2s ok rope.RopeTime.track_time(...)`: one combination ended, in asv's
# log. The engine's progress reads these (kernelwatch.engine.progress.COMBINATION_LINE).
COMBINATION_FORMAT = "kernelwatch {done}/{total} {seconds:.1f}s {status} {name}"
LOOP_FORMAT = "kernelwatch {count} combinations in {env}"
# Why a combination was skipped or failed, right after its line: the engine counts and
# names these per commit (its summary, the run's exit status, the outcome files the report
# reads), since asv keeps a benchmark's output in memory only.
REASON_FORMAT = "kernelwatch reason {name}: {reason}"
# The rounds a combination that skipped or failed no longer takes, out of the run's count.
DROPPED_FORMAT = "kernelwatch {count} more processes of {name} not started: it {status}"
# The process a SIGTERM or Ctrl-C stopped, and the seconds it had run (STOPPED_KEY): the
# engine reads it after the run has ended and names it in its last line.
STOPPED_FORMAT = "kernelwatch stopped {name} after {seconds:.1f}s"
REASON_LIMIT = 600
# A combination's duration, kept in its result file's `durations` (asv keeps keys in angle
# brackets there): what `kernelwatch run --dry-run` estimates a run from, and what
# `--shard` balances by.
DURATION_KEY = "<kernelwatch {name}>"
# The seconds a process of a combination had run when the run was stopped (SIGTERM, Ctrl-C)
# before it ended: the least it takes, counted by the next estimate where the combination
# has no whole duration on record (planner.combination_durations). A whole duration, once
# the combination ends in a later run, takes its place in the file.
STOPPED_KEY = "<kernelwatch-stopped {name}>"

ASV_VERSION = "0.6.6"  # the asv whose loop this one stands in for (its call signature)


def combination_name(name: str, params: Sequence[Sequence[str]], idx: int | None) -> str:
    """`name(p0, p1, ...)` as asv's `-b` regexes match it, or `name` without parameters."""
    if not params or idx is None:
        return name
    combo = next(itertools.islice(itertools.product(*params), idx, idx + 1))
    return f"{name}({', '.join(combo)})"


def _selected(benchmarks, name: str, benchmark: dict) -> list[int | None]:
    if not benchmark["params"]:
        return [None]
    chosen = benchmarks.benchmark_selection.get(name)
    if chosen is None:
        return list(range(math.prod(len(p) for p in benchmark["params"])))
    return sorted(chosen)


class _Saver:
    """Writes a Results object's file whole and atomically (a sibling temporary file, then
    os.replace): a kill mid-write leaves the last complete file, never a truncated one."""

    SUFFIX = ".kernelwatch-saving"

    def __init__(self, results_dir: str | None) -> None:
        self.results_dir = results_dir

    def save(self, results, results_dir: str | None = None) -> None:
        results_dir = results_dir or self.results_dir
        if results_dir is None or results._filename is None:
            return
        final = os.path.join(results_dir, results._filename)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        partial = f"{final}.{os.getpid()}{self.SUFFIX}"
        with tempfile.TemporaryDirectory(prefix="kernelwatch-saving-") as staging:
            type(results).save(results, staging)
            with open(os.path.join(staging, results._filename), "rb") as f:
                data = f.read()
        try:
            with open(partial, "wb") as f:
                f.write(data)
            os.replace(partial, final)
        except OSError as exc:
            # The result file is named, so a full disk's message names the disk it is on;
            # the recorded file is untouched.
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise OSError(exc.errno, exc.strerror, final) from None

    def remove_stale(self) -> None:
        """The temporary files of runs killed while saving (their process is gone)."""
        if self.results_dir is None or not os.path.isdir(self.results_dir):
            return
        for folder, _, files in os.walk(self.results_dir):
            for name in files:
                pid = name.removesuffix(self.SUFFIX).rsplit(".", 1)[-1]
                if name.endswith(self.SUFFIX) and pid.isdigit() and not _alive(int(pid)):
                    os.remove(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_saver = _Saver(None)
_processes: list[tuple[re.Pattern, int]] = []
_top_up = False  # --top-up: a combination recorded in fewer processes than asked gets the rest


def reason_of(res: object, status: str) -> str:
    """One line saying why a combination was skipped (the message of the NotImplementedError
    its setup raised, as asv_runner prints it) or failed (the last line of its output: the
    exception, or asv's timeout)."""
    lines = [ln.strip() for ln in (res.stderr or "").splitlines() if ln.strip()]
    if status == "skipped":
        for line in lines:
            m = re.match(r"asv: skipped: \w+\((.*)\)$", line)
            if m:
                try:
                    text = str(ast.literal_eval(m.group(1)))
                except (ValueError, SyntaxError):
                    text = m.group(1)
                return " ".join(text.split())[:REASON_LIMIT]
        return "skipped (no reason printed)"
    tail = next((ln for ln in reversed(lines) if not ln.startswith(("File ", "^", "~"))), "")
    return " ".join(tail.split())[:REASON_LIMIT] or f"exit code {res.errcode}"


def _status(res, idx: int | None) -> str:
    value = res.result[idx or 0] if res.result else None
    if res.errcode != 0 or value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    return "ok"


def parse_processes(specs: Sequence[str]) -> list[tuple[re.Pattern, int]]:
    """`REGEX=K` options: the combinations a regex selects (as asv's -b does) are measured
    in K processes, samples pooled."""
    out = []
    for spec in specs:
        regex, sep, count = spec.rpartition("=")
        if not sep or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--processes takes REGEX=K with K a count of 1 or more: {spec!r}")
        out.append((re.compile(regex), int(count)))
    return out


def has_value(results: Results, benchmark: dict, idx: int | None) -> bool:
    """Whether `results` hold a measured value (not failed, not skipped or unrun) of the
    combination, at the benchmark's current version."""
    name = benchmark["name"]
    if name not in results._results or \
            results._benchmark_version.get(name) != benchmark["version"]:
        return False
    values = results.get_result_value(name, benchmark["params"])
    value = values[idx or 0] if values else None
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def recorded_processes(results: Results, benchmark: dict, idx: int | None) -> int:
    """How many processes the recorded samples of a combination pool: 0 where it has no
    measured value, or no count was kept with it (a file written before counts were: the
    planner takes it as complete)."""
    if not has_value(results, benchmark, idx):
        return 0
    return pooled_processes(results._duration,
                            combination_name(benchmark["name"], benchmark["params"], idx))


def _plan(benchmarks, env, extra_params: dict, run_rounds,
          processes: Sequence[tuple[re.Pattern, int]] = (),
          recorded: Callable[[str, int | None], int] = lambda name, idx: 0
          ) -> tuple[list, list[int]]:
    """(round, name, index) of every combination to run, and the rounds. A combination takes
    its benchmark's `rounds` (asv's), or as many as the `processes` that select it ask: each
    round is one more process of it, its samples appended, so the extra processes of a
    series cost no further asv start, discovery or suite import; `recorded(name, idx)`, the
    processes its recorded samples already pool, are not taken again. The first round comes
    first (then benchmarks by name, then each one's parameter combinations): a run cut
    short has measured every combination it reached once before measuring any again.
    Benchmarks without a timeout get the environment's default, as asv does."""
    def rounds_of(name: str, benchmark: dict, idx: int | None) -> int:
        own = int(extra_params.get("rounds", benchmark.get("rounds", 1)))
        combo = combination_name(name, benchmark["params"], idx) if processes else ""
        wanted = max([own, *(k for rx, k in processes if rx.match(combo))])
        have = recorded(name, idx)
        return wanted - have if have else wanted

    for benchmark in benchmarks.values():
        if benchmark.get("timeout") is None:
            benchmark["timeout"] = extra_params.get("timeout", env._default_benchmark_timeout)
    combos = [(name, idx, rounds_of(name, b, idx)) for name, b in sorted(benchmarks.items())
              for idx in _selected(benchmarks, name, b)]
    combos = [c for c in combos if c[2] > 0]
    max_rounds = max((k for _, _, k in combos), default=1)
    rounds = list(run_rounds or range(1, max_rounds + 1))
    items = [(rnd, name, idx) for rnd in rounds for name, idx, k in combos if rnd <= k]
    return items, rounds


class _Record:
    """A run's bookkeeping per benchmark, kept over its combinations: asv's add_result keeps
    the last combination's output, exit code and duration, and a failure anywhere must
    survive for asv's exit status and log."""

    def __init__(self) -> None:
        self.stderr: dict[str, list[str]] = {}
        self.errcode: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def add(self, results, name: str, combo: str, res, seconds: float) -> None:
        if res.stderr:
            self.stderr.setdefault(name, []).append(res.stderr)
        if res.errcode:
            self.errcode.setdefault(name, res.errcode)
        results._stderr[name] = "\n\n".join(self.stderr.get(name, []))
        results._errcode[name] = self.errcode.get(name, 0)
        results._duration[DURATION_KEY.format(name=combo)] = round(seconds, 3)
        results._duration.pop(STOPPED_KEY.format(name=combo), None)


class _Terminated(BaseException):
    """SIGTERM arrived while a benchmark process was running (see _in_flight)."""


# Set only while a benchmark process runs: SIGTERM then ends the loop through _Terminated,
# so the combination's time so far is filed (_file_stopped). Elsewhere (saving a file
# included) SIGTERM ends the loop as its default action does, leaving the last file saved
# whole.
_in_flight = False


def _on_sigterm(signum, frame) -> None:
    if _in_flight:
        # The next SIGTERM (a runner's and the reaper's both come) must not cut asv's
        # unwinding or the filing short: ignored from here on, as the reaper does.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _file_stopped(results, combo: str, seconds: float) -> None:
    """Keep the seconds a stopped process of `combo` had run (the most any stopped process
    of it ran) where it has no whole duration in this file, save the file, and say so."""
    from asv.console import log

    if DURATION_KEY.format(name=combo) in results._duration:
        return
    key = STOPPED_KEY.format(name=combo)
    results._duration[key] = round(max(seconds, results._duration.get(key, 0.0)), 3)
    _saver.save(results)
    log.info(STOPPED_FORMAT.format(name=combo, seconds=seconds))
    log.flush()


def _measure_one(benchmark, name: str, idx: int | None, spawner, results, record: _Record,
                 profile: bool, extra_params: dict, *, record_samples: bool,
                 appending: bool, onto_recorded: bool = False
                 ) -> tuple[str, str, float, object]:
    """One benchmark process of one combination, its result added and the file saved: its
    status (ok, skipped, failed), its name, its seconds and asv's result. A process adding
    to samples recorded before this run (`onto_recorded`) that does not end ok leaves them
    as they were: recorded results are never lost; its failure is logged and counted."""
    from asv import runner, util

    selected = None if idx is None else {idx}
    params = extra_params
    if appending:
        # The same `number` as the samples appended to, as asv keeps it.
        stats = results.get_result_stats(name, benchmark["params"])
        prev = stats[idx or 0] if stats else None
        if prev and "number" in prev:
            params = {**extra_params, "number": prev["number"]}
    started = datetime.datetime.now(datetime.UTC)
    combo = combination_name(name, benchmark["params"], idx)
    global _in_flight
    t0 = time.monotonic()
    try:
        _in_flight = True
        res = runner.run_benchmark(benchmark, spawner, profile=profile,
                                   selected_idx=selected, extra_params=params)
    except _Terminated:  # SIGTERM is ignored from here on (_on_sigterm)
        _file_stopped(results, combo, time.monotonic() - t0)
        raise
    except util.UserError:
        # asv turns a Ctrl-C during a process into UserError("Interrupted."), marking the
        # spawner interrupted first; its other UserErrors are failures, not stops.
        if getattr(spawner, "interrupted", False):
            previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                _file_stopped(results, combo, time.monotonic() - t0)
            finally:
                signal.signal(signal.SIGTERM, previous)
        raise
    finally:
        _in_flight = False
    seconds = time.monotonic() - t0
    status = _status(res, idx)
    record.seconds[name] = record.seconds.get(name, 0.0) + seconds
    if status == "ok" or not onto_recorded:
        key = PROCESSES_KEY.format(name=combo)
        # asv appends only to samples of the same benchmark version; samples appended to
        # whose count was never kept stay without one
        adds_to = appending and has_value(results, benchmark, idx)
        pooled = pooled_processes(results._duration, combo)
        results.add_result(benchmark, res, selected_idx=selected, started_at=started,
                           duration=record.seconds[name], record_samples=record_samples,
                           append_samples=appending)
        total = SAMPLES_KEY.format(name=combo)
        results._duration.pop(total, None)
        if status != "ok" or (adds_to and not pooled):
            results._duration.pop(key, None)
        else:
            results._duration[key] = pooled + 1 if adds_to else 1
            samples = results.get_result_samples(name, benchmark["params"])[idx or 0]
            if samples:
                results._duration[total] = len(samples)
    record.add(results, name, combo, res, seconds)
    _saver.save(results)
    return status, combo, seconds, res


def run_benchmarks(benchmarks, env, results=None, show_stderr=False, quick=False,
                   profile=False, extra_params=None, record_samples=False,
                   append_samples=False, run_rounds=None, launch_method=None):
    """asv.runner.run_benchmarks' contract (asv 0.6.6), one combination at a time, each saved
    when it ends. Benchmarks with a `setup_cache` (none of kernelwatch's) go through asv's
    own loop, which shares the cache between them."""
    from asv import runner
    from asv.console import log
    from asv.results import Results

    if any(b.get("setup_cache_key") for b in benchmarks.values()):
        return runner.run_benchmarks(benchmarks, env, results, show_stderr, quick, profile,
                                     extra_params, record_samples, append_samples,
                                     run_rounds, launch_method)
    extra_params = dict(extra_params or {})
    if quick:
        extra_params.update(number=1, repeat=1, warmup_time=0, rounds=1)
    if results is None:
        results = Results.unnamed()
    # asv saves the file once more when the loop returns: atomically too.
    results.save = lambda results_dir: _saver.save(results, results_dir)
    if run_rounds and _processes:
        log.warning("asv's --interleave-rounds runs asv's own rounds only: the extra "
                    "processes kernelwatch asks for are not measured")
    combos = [(name, idx) for name, b in benchmarks.items()
              for idx in _selected(benchmarks, name, b)]
    # Measured before this loop: a process appending to these that does not end ok must
    # leave them as they were.
    had_value = {key for key in combos if has_value(results, benchmarks[key[0]], key[1])}
    recorded_counts = {key: recorded_processes(results, benchmarks[key[0]], key[1])
                       for key in had_value} if _top_up and not run_rounds else {}
    items, _ = _plan(benchmarks, env, extra_params, run_rounds, _processes,
                     lambda name, idx: recorded_counts.get((name, idx), 0))
    existing = results.get_result_keys(benchmarks) if append_samples else set()
    measured: set[tuple[str, int | None]] = set()  # in an earlier round of this run
    # Not measured again in a later round: a skip or a failure would only say the same.
    not_again: set[tuple[str, int | None]] = set()
    record = _Record()
    done, total = 0, len(items)
    last_of = {(name, idx): i for i, (_, name, idx) in enumerate(items)}
    last_item = {name: i for i, (_, name, _) in enumerate(items)}

    # asv counts its percentage in benchmarks per environment; this loop steps per
    # combination, so its benchmarks' share of what remains becomes its combinations'.
    remaining = max(log._total - log._count - len(benchmarks), 0)
    log.set_nitems(remaining + len(items))
    log.info(f"Benchmarking {env.name}")
    log.info(LOOP_FORMAT.format(count=len(items), env=env.name))
    spawner = runner.get_spawner(env, benchmarks.benchmark_dir, launch_method=launch_method)
    try:
        ok, out = spawner.preimport()
        if ok and show_stderr and out:  # what the suite's import printed, as asv keeps it
            log.info("Importing benchmark suite produced output:")
            with log.indent():
                log.error(out.rstrip())
        if not ok:
            log.warning("Importing benchmark suite failed (skipping all benchmarks).")
            if show_stderr and out:
                log.error(out)
            for name, benchmark in benchmarks.items():
                results.add_result(benchmark, runner.fail_benchmark(
                    benchmark, stderr="asv: benchmark suite import failed"),
                    selected_idx=benchmarks.benchmark_selection.get(name))
            _saver.save(results)
            return results
        for i, (_, name, idx) in enumerate(items):
            benchmark = benchmarks[name]
            key = (name, idx)
            log.step()
            if key not in not_again:
                # An earlier round of this run ended ok (a failed one is not run again): its
                # samples are recorded results too.
                onto_recorded = key in measured or (key in had_value and (
                    recorded_counts.get(key, 0) > 0 or name in existing))
                status, combo, seconds, res = _measure_one(
                    benchmark, name, idx, spawner, results, record, profile, extra_params,
                    record_samples=last_of[key] != i or record_samples,
                    appending=key in measured or name in existing or onto_recorded,
                    onto_recorded=onto_recorded)
                measured.add(key)
                done += 1
                log.info(COMBINATION_FORMAT.format(done=done, total=total, seconds=seconds,
                                                   status=status, name=combo))
                if status != "ok":
                    not_again.add(key)
                    log.info(REASON_FORMAT.format(name=combo, reason=reason_of(res, status)))
                    later = sum((n, x) == key for _, n, x in items[i + 1:])
                    if later:
                        total -= later
                        log.info(DROPPED_FORMAT.format(count=later, name=combo,
                                                       status=status))
                # asv ends a line when the next one starts: without this, the engine would
                # count a combination only once the next had ended (a GPU process: minutes).
                log.flush()
            if last_item[name] == i:
                # asv's log of the benchmark (its output, a failure's traceback) once its
                # last round has passed, whether or not that round ran.
                log.info(name, reserve_space=True)
                runner.log_benchmark_result(results, benchmark, show_stderr=show_stderr)
                log.flush()  # its status line and output read now, not after the next process
    finally:
        spawner.close()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m kernelwatch.engine.benchloop [--save-to DIR] -- ASV-ARGS`: asv's command line with
    this module's loop; --save-to writes each combination's result there as it ends."""
    parser = argparse.ArgumentParser(prog="python -m kernelwatch.engine.benchloop")
    parser.add_argument("--save-to", metavar="DIR",
                        help="asv's results directory, written after every combination")
    parser.add_argument("--processes", action="append", default=[], metavar="REGEX=K",
                        help="measure the combinations REGEX selects in K processes each")
    parser.add_argument("--top-up", action="store_true",
                        help="a combination recorded in fewer processes than --processes "
                        "asks is measured in the rest only, its samples appended")
    parser.add_argument("--discovery-cache", metavar="DIR",
                        help="keep an `existing` environment's benchmark discovery here, "
                        "reused while its inputs are unchanged (kernelwatch.engine.discovery)")
    parser.add_argument("asv_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    import asv
    from asv import main as asv_main
    from asv.commands import run as asv_run

    if asv.__version__ != ASV_VERSION:
        raise SystemExit(f"kernelwatch's benchmark loop stands in for asv {ASV_VERSION}'s; "
                         f"this is asv {asv.__version__}: pip install asv=={ASV_VERSION}")
    _saver.results_dir = os.path.abspath(args.save_to) if args.save_to else None
    _saver.remove_stale()
    _processes[:] = parse_processes(args.processes)
    global _top_up
    _top_up = args.top_up
    asv_run.run_benchmarks = run_benchmarks
    if args.discovery_cache:
        from asv.benchmarks import Benchmarks

        from kernelwatch.engine import discovery

        Benchmarks._disc_benchmarks = discovery.kept(Benchmarks._disc_benchmarks,
                                                     Path(args.discovery_cache))
    rest = list(args.asv_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    sys.argv = ["asv", *rest]
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        asv_main.main()
    except _Terminated:
        # Ended as SIGTERM ends a process, now that the stopped combination's time is filed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
