"""`kernelwatch bisect GOOD BAD`: the first commit (of kernelwatch or a --target library),
or the first of --versions, at which one series got worse. The search is
kernelwatch.regression.bisect's and the lines it prints kernelwatch.report.bisect's; each point
is measured by the run engine, reusing what is recorded."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

from kernelwatch.commands import common_args
from kernelwatch.engine import asvrun, planner
from kernelwatch.engine.gitrepo import find_repo_root, git_output
from kernelwatch.engine.run import RunRequest, run_suite
from kernelwatch.errors import Interrupted, KernelwatchError
from kernelwatch.libraries import releases, requirements, targets
from kernelwatch.regression import benchmark_classes, bisect, detect, fidelity
from kernelwatch.report import bisect as bisect_view
from kernelwatch.report import compare
from kernelwatch.results import rows as result_rows


def add_parser(sub: argparse._SubParsersAction) -> None:
    bis = sub.add_parser(
        "bisect", help="find the first commit (or version) at which a series got worse",
        description="git bisect for one series: GOOD and BAD are commits of kernelwatch, of "
        "the --target library, or two of the --versions. Each point is measured in "
        "--processes fresh processes (`kernelwatch run`; what is recorded is reused, and "
        "what is measured stays in the history) and judged against GOOD with compare's test "
        "at the series' threshold (its `kernelwatch fidelity` threshold on this machine, "
        "1.50 where none held and --processes is 1, else 1.10). At most ceil(log2 n) + 2 "
        "points for n commits. Prints `<sha> is the "
        "first bad commit`, the ratio with its 99% interval, the points tested and the "
        "compare markdown of the culprit against its parent. Exit 0: found; 1: no "
        "regression between GOOD and BAD; 2: bad input.")
    bis.add_argument("good", help="a commit (or version) where the series is as it should be")
    bis.add_argument("bad", help="a later commit (or version) where it is slower")
    bis.add_argument("--workload", required=True, help="the series' workload")
    common_args.add_param(bis, "one value of each parameter that has several (repeatable)")
    bis.add_argument("--metric", action="append", metavar="FAMILY",
                     help="the benchmark class, where the track is in several")
    bis.add_argument("--track", type=common_args.track_name,
                     help="the track, e.g. time (default), caller_time")
    common_args.add_target(bis, "bisect the library's commits (as run --target)")
    bis.add_argument("--versions", metavar="DIST=V1,V2,...",
                     help="bisect these versions, oldest first (as run --versions)")
    bis.add_argument("--torch", action="append", metavar="VERSION",
                     help="the torch version of the matrix to bisect in: a bisect follows one "
                     "environment, so name one where asv.conf.json's matrix has several")
    common_args.add_machine(bis)
    bis.add_argument("--processes", type=int, default=3, metavar="K",
                     help="fresh processes per point, samples pooled (default 3)")
    bis.add_argument("--factor", type=common_args.ratio, metavar="RATIO",
                     help="smallest ratio that counts as worse (default: the series' "
                     "threshold from `kernelwatch fidelity` on this machine, 1.50 where none "
                     "held and --processes is 1, else 1.10)")
    bis.add_argument("--failed-is-bad", action="store_true",
                     help="a point that fails (build error, timeout) counts as a slowdown "
                     "(default: it is skipped, as git bisect skip)")
    bis.add_argument("-v", "--verbose", action="store_true", help="stream asv's output")
    bis.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return bisect_series(
        find_repo_root(), args.good, args.bad, workload=args.workload,
        params=args.param or (), metrics=args.metric, track=args.track or "time",
        target=args.target, versions=args.versions, torch=args.torch,
        machine=asvrun.machine_name(args.machine), processes=args.processes,
        factor=args.factor, failed_is_bad=args.failed_is_bad, verbose=args.verbose)


@dataclasses.dataclass
class _Points:
    """Where a bisect's points are and how one is measured and read back."""

    repo: Path
    results: Path
    machine: str
    head: str  # kernelwatch's commit (versions are measured at it)
    env_ok: Callable[[object, str], bool]  # whether a row is of that point's environment
    request: dict  # the RunRequest fields every point shares
    point_field: Callable[[str], dict]  # the RunRequest fields of one point
    series: bisect.Series
    versions: bool
    # Why a point cannot be measured here, known before running (a library's commit whose
    # requirements or form are out of reach); None where nothing is known against it.
    refused: Callable[[str], str | None] = lambda point: None
    per_process: int | None = None  # samples one process records for the series

    @property
    def limit(self) -> int | None:
        return self.per_process * self.request["processes"] if self.per_process else None

    def recorded(self, point: str):
        commit = self.head if self.versions else point
        rows = result_rows.load(self.results) if self.results.is_dir() else []
        return bisect.find(rows, self.machine, commit, self.series,
                           lambda r: self.env_ok(r, point))

    def measure(self, point: str) -> bisect.Measured:
        row = self.recorded(point)
        if row is not None and not row.failed:
            if row.skipped:  # it ran and the code under test could not: not again
                return bisect.measured_of(point, row, reused=True)
            self._top_up(point, row)
            return bisect.measured_of(point, self.recorded(point), reused=True,
                                      limit=self.limit)
        why = self.refused(point)
        if why:
            print(f"kernelwatch bisect: {point[:12]} is not measurable here: {why}",
                  flush=True)
            return bisect.Measured(point, failed=True, skipped=True, reason=why)
        print(f"kernelwatch bisect: measuring {point[:12]} "
              f"({self.request['processes']} processes)", flush=True)
        try:
            run_suite(self.repo, RunRequest(**self.request, **self.point_field(point)))
        except Interrupted:
            raise
        except KernelwatchError as exc:
            # A point's environment or build that fails is that point's verdict (skipped,
            # or bad with --failed-is-bad), not the end of the search.
            print(f"kernelwatch bisect: measuring {point[:12]} stopped: {exc}", flush=True)
            return bisect.Measured(point, failed=True, reason=f"measuring it stopped: {exc}")
        return bisect.measured_of(point, self.recorded(point), reused=False, limit=self.limit,
                                  why_missing="the run recorded nothing for the series "
                                  "(asv's log says why)")

    def _top_up(self, point: str, row) -> None:
        """A point recorded in fewer processes than the bisect asks: measured in the missing
        ones (samples appended), so every point weighs the same."""
        if not self.limit or not row.samples or len(row.samples) >= self.limit:
            return
        rounds = -(-(self.limit - len(row.samples)) // self.per_process)
        print(f"kernelwatch bisect: {point[:12]} is recorded with {len(row.samples)} samples; "
              f"{rounds} more process{'es' * (rounds != 1)} for the "
              f"{self.limit} every point has", flush=True)
        fields = {**self.request, **self.point_field(point), "processes": rounds,
                  "rerun": True, "asv_args": ["--append-samples"]}
        try:
            run_suite(self.repo, RunRequest(**fields))
        except Interrupted:
            raise
        except KernelwatchError as exc:
            print(f"kernelwatch bisect: topping up {point[:12]} stopped ({exc}); its "
                  "recorded samples are used", flush=True)


def _per_process(repo: Path, series: bisect.Series) -> int | None:
    """Samples one process records for the series: its class's `timed_counts`, where set."""
    workload, cls_name, _ = series.benchmark.split(".", 2)
    try:
        cls = benchmark_classes.load(repo, workload, cls_name)
    except Exception:  # a checkout whose benchmarks do not load: no top-up, nothing else
        return None
    counts = getattr(cls, "timed_counts", None) or {}
    return counts.get("samples")


def _static_refusal(repo: Path, library: targets.Target, torch: list[str] | None
                    ) -> Callable[[str], str | None]:
    """Why a library's commit cannot be measured, as far as is known before running it (the
    adapter's supported range, its build files, its requirements with the fixed torch)."""
    matrix_torch = torch or list(asvrun.asv_config(repo).get("matrix", {}).get("req", {})
                                 .get("torch", []))

    def why(point: str) -> str | None:
        _, refused = requirements.sets_for_commits(repo, library.repo, library.dist, [point],
                                                   matrix_torch, say=lambda line: None)
        return refused[point].reason if point in refused else None

    return why


def bisect_series(repo: Path, good: str, bad: str, *, workload: str, params=(),
                  metrics=None, track: str = "time", target: str | None = None,
                  versions: str | None = None, torch=None, machine: str, processes: int = 3,
                  factor: float | None = None, failed_is_bad: bool = False,
                  verbose: bool = False) -> int:
    """Print the first bad commit (or version) and the evidence; 0 found, 1 when the range
    shows no regression."""
    if processes < 1:
        raise KernelwatchError("--processes takes a count of 1 or more (default 3)")
    if target and versions:
        raise KernelwatchError("bisect searches a target's commits (--target) or a list of "
                               "versions (--versions), not both")
    library = targets.resolve(target, repo) if target else None
    parents: dict[str, str] = {}
    listed = releases.parse_versions(versions) if versions else None
    if listed and listed[0] == "torch" and torch:
        raise KernelwatchError("--versions torch=... names the torch versions; drop --torch")
    chosen, _ = planner.parse_params(workload, params, {})
    dist = library.dist if library else listed[0] if listed else None
    if dist and dist != "torch":
        [(_, chosen)] = targets.selection_for(dist, workload, chosen)
    series = bisect.resolve_series(repo, workload, chosen, metrics, track)
    results = targets.results_dir(repo, library.dist) if library else repo / "results"
    if library:
        # The environment as the run names it, less its requirement set: each commit's set
        # is its own (libraries/requirements.py), the series follows the library across them.
        naming = requirements.EnvGroup("0" * 10, {})
        config = targets.write_config(repo, targets.target_config(
            asvrun.asv_config(repo), library, repo, torch_versions=torch,
            requirement_set=naming))
        points = bisect.commit_points(library.repo, good, bad, f"target {dist}")
        parents = bisect.first_parents(library.repo, points)
    elif listed:
        config = asvrun.derived_config(repo, torch_versions=torch) or repo / "asv.conf.json"
        from asv import util as asv_util

        conf = asv_util.load_json(str(config), js_comments=True)
        config = targets.write_config(repo, releases.versions_matrix(conf, dist, listed[1][:1]))
        points = bisect.version_points(listed[1], good, bad, dist)
    else:
        config = asvrun.derived_config(repo, torch_versions=torch) or repo / "asv.conf.json"
        points = bisect.commit_points(repo, good, bad, "kernelwatch")
        parents = bisect.first_parents(repo, points)
    envs = asvrun.environment_names(config, None)
    if len(envs) != 1:
        raise KernelwatchError(f"bisect follows one environment, and the matrix gives "
                               f"{len(envs)} ({', '.join(envs)}): choose one torch with --torch")

    def env_ok(row, point):
        if listed:
            return releases.version_label(str(row.env.get(dist, ""))) == point
        if library:
            return requirements.base_env(row.env_name) == requirements.base_env(envs[0])
        return row.env_name == envs[0]

    def point_field(point):
        if library:
            return {"target": target, "range": f"{point}^!"}
        if listed:
            return {"versions": f"{dist}={point}", "range": "HEAD^!"}
        return {"range": f"{point}^!"}

    shared = {**series.selection(), "processes": processes, "machine": machine,
              "skip_machine_facts": True, "baseline_once": False, "torch": torch,
              "verbose": verbose}
    measured = _Points(repo, results, machine, git_output(repo, "rev-parse", "HEAD"), env_ok,
                       shared, point_field, series, bool(listed),
                       per_process=_per_process(repo, series))
    if library:
        measured.refused = _static_refusal(repo, library, torch)

    def nearest_good(candidates):
        """The first point after GOOD not known to give nothing (not refused before running,
        not recorded as skipped or failed)."""
        for point in candidates[1:]:
            row = measured.recorded(point)
            if row is not None and (row.failed or row.skipped):
                continue
            if row is None and measured.refused(point):
                continue
            return point
        return None
    own = fidelity.thresholds(repo).get(machine, {})
    # The closing comparison is `kernelwatch compare PARENT CULPRIT` as it would judge:
    # --factor for every series where given, else each series' own threshold where
    # `kernelwatch fidelity` measured the series (series_thresholds), 1.10 for the rest; its
    # text says which it used.
    closing = None if factor else own or None
    closing_factor = factor or detect.DEFAULT_FACTOR
    factor = factor or fidelity.factor(own, series.key, (processes, processes),
                                       detect.DEFAULT_FACTOR)
    print(f"kernelwatch bisect: {series.key} over {len(points) - 1} "
          f"{'versions' if listed else 'commits'} after GOOD, threshold {factor:.2f}, at "
          f"most {bisect.max_points(len(points) - 1)} points", flush=True)
    if note := bisect.merge_note(points, parents):
        print(f"kernelwatch bisect: {note}", flush=True)
    outcome = bisect.search(points, measured.measure, factor=factor,
                            failed_is_bad=failed_is_bad, nearest_good=nearest_good)
    labels = ({p: p for p in points} if listed else
              targets.subjects(library.repo if library else repo, points))
    print()
    print("\n".join(bisect_view.summary(outcome, "version" if listed else "commit", labels,
                                        parents)))
    if outcome.culprit and outcome.parent and not outcome.candidates:
        rows = result_rows.load(results)
        base, after = (machine, outcome.parent), (machine, outcome.culprit)
        if listed:  # one commit, two environments: compared as two points
            rows = [dataclasses.replace(r, commit=p, env_name=dist)
                    for p in (outcome.parent, outcome.culprit) for r in rows
                    if r.commit == measured.head and env_ok(r, p)]
        comparisons = compare.compare(rows, base, after, factor=closing_factor,
                                      thresholds=closing,
                                      env_key=requirements.base_env if library else None)
        print()
        print(compare.markdown(comparisons, base, after, closing_factor, closing))
    return 0 if outcome.culprit else 1
