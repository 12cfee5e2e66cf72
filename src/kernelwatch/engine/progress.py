"""What a user sees of a long asv run: one progress bar and the lines that matter, with
asv's full output in a log file.

asv prints a line per benchmark (`[ 37.50%] ··· rope.RopeTime.track_time  ok`) and grids of
parameters; a quick run over two commits and two torch versions is some 24,000 lines, which
scroll the summary away. kernelwatch's benchmark loop (kernelwatch.engine.benchloop) adds a line per
parameter combination; kernelwatch shows those as a bar (tqdm) with the count and an estimate
of the time left, the current benchmark or environment step, and passes through only
failures. `-v` streams everything.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

# `[ 37.50%] ··· rope.RopeTime.track_time   ok`: a benchmark asv has finished (three dots;
# asv shortens a long name to `...nment.Environment.track_copy_seconds_per_gib`).
RESULT_LINE = re.compile(r"^\[\s*([\d.]+)%\] ··· ((?:\.\.\.)?[\w.]*\w)\s{2,}\S")
PERCENT = re.compile(r"^\[\s*([\d.]+)%\]")
# `· Running 16 total benchmarks (1 commits * 1 environments * 16 benchmarks)`
TOTAL = re.compile(r"^· Running (\d+) total benchmarks")
# asv's environment steps, which take minutes the first time (a torch wheel to install).
STEP_LINE = re.compile(r"^(?:\[\s*[\d.]+%\] )?·{1,2} ((Creating|Installing|Building|"
                       r"Benchmarking|Discovering|Running|For|Uninstalling) .*)")
# What is passed through even without -v: asv's failed results (`··· name   failed`,
# `1/2 failed`), its timeout and out-of-memory messages, and the forkserver's word that it
# left a variant's module to its processes (benchmarks/common.py prints it).
# A benchmark's own stderr (full of warnings) and asv's tracebacks stay in the log;
# kernelwatch names the log in its own message when asv fails.
SERVER_IMPORT_LEFT = "kernelwatch server import: left"
SHOWN = re.compile(r"^\[\s*[\d.]+%\] ··· \S+\s.*\bfailed\b|timed out \(timeout|"
                   r"OutOfMemoryError|out of memory|"
                   r"^(?:\[\s*[\d.]+%\] )?(?:·+ )?" + re.escape(SERVER_IMPORT_LEFT))
PARAMETERS_LINE = re.compile(r"^\[\s*[\d.]+%\] ···· For parameters: ")
# A line of asv's log at any depth: its percentage where it has one, then its dots.
ASV_LINE = r"^(?:\[\s*[\d.]+%\] )?·+ "
# kernelwatch.engine.benchloop's lines: a loop's count and environment as it starts, and
# each combination's end.
LOOP_LINE = re.compile(ASV_LINE + r"kernelwatch (\d+) combinations in (\S*)")
COMBINATION_LINE = re.compile(ASV_LINE + r"kernelwatch (\d+)/(\d+) ([\d.]+)s (\w+) (\S.*)$")
MAX_SHOWN = 40  # lines passed through per asv call; the rest are in the log
# What the outcomes of a run are read from: asv's `For llmcompressor commit 0dcfa37f <0.12.0>:`
# before each commit, the loop's environment, each combination's status and reason, and a
# build or install that failed (asv then marks the commit's benchmarks as failed).
COMMIT_LINE = re.compile(ASV_LINE + r"For \S+ commit ([0-9a-f]{7,40})\b")
REASON_LINE = re.compile(ASV_LINE + r"kernelwatch reason (\S+?(?:\(.*?\))?): (.*)$")
# The loop's DROPPED_FORMAT: rounds of a combination that skipped or failed, not started.
DROPPED_LINE = re.compile(ASV_LINE + r"kernelwatch (\d+) more processes of (\S.*) not started: ")
# The loop's STOPPED_FORMAT: the process a SIGTERM or Ctrl-C stopped, and its seconds.
STOPPED_LINE = re.compile(ASV_LINE + r"kernelwatch stopped (\S.*) after ([\d.]+)s$")
NOT_MEASURABLE = re.compile(r"kernelwatch: not measurable: (.*)$")
BUILD_ERROR = re.compile(r"Error running (.*?) \(exit status (-?\d+)\)")
SKIPPING_ENV = re.compile(ASV_LINE + r"Skipping (\S+)")
# The name of a commit's outcome that is the commit's own (it did not build or install).
WHOLE_COMMIT = "*"


class AsvProgress:
    """Consumes asv's output lines: writes each to `log`, and shows a bar on a terminal.
    Elsewhere (a CI log) a line per tenth of the way, and where a tenth takes long (a GPU
    suite's compiled or quantized processes take a minute each) a line when a combination
    ends `heartbeat` seconds or more after the last line, naming it: short logs that
    still show a long run moving."""

    def __init__(self, log: TextIO, label: str, out: TextIO | None = None,
                 planned: Counter[str] | None = None,
                 estimates: dict[str, float] | None = None,
                 heartbeat: float = 60.0) -> None:
        """`planned`: the combinations this asv call should run, by name (unknown ones are
        counted as the loop announces them); `estimates`: seconds per combination name
        from earlier runs, for the time left."""
        from tqdm import tqdm

        self.log = log
        self.out = out or sys.stdout
        self.label = label
        self.tty = self.out.isatty()
        self.started = time.monotonic()
        self.done = 0
        self.total = 0
        self.percent = 0.0
        self.shown = 0
        self.next_tenth = 10
        self.heartbeat = heartbeat
        self.last_said = self.started
        self.parameters = ""  # asv's latest `For parameters: ...`, named before a failure
        self.planned = sum((planned or Counter()).values())
        self.announced = 0  # combinations the loops have announced so far
        self.dropped = 0  # of those, rounds of a skipped or failed case not started
        self.eta = Eta(planned or Counter(), estimates or {})
        self.statuses: Counter[str] = Counter()  # ok / skipped / failed, per combination
        self.stopped: tuple[str, float] | None = None  # the process a stop cut short
        self.bar = tqdm(total=100, desc=label, file=self.out, disable=not self.tty,
                        bar_format="{desc} |{bar:20}| {n:.0f}% {elapsed} {postfix}",
                        leave=True, dynamic_ncols=True)

    def _say(self, text: str) -> None:
        if self.tty:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def feed(self, line: str) -> None:
        self.log.write(line)
        text = line.rstrip("\n")
        m = PERCENT.match(text)
        if m and not self.eta.count:  # the combinations' count is finer, once there is one
            self.percent = float(m.group(1))
        total = TOTAL.match(text)
        if total:
            self.total = int(total.group(1))
        start = LOOP_LINE.match(text)
        if start:
            self.announced += int(start.group(1))
        if dropped := DROPPED_LINE.match(text):
            self.dropped += int(dropped.group(1))
            self.eta.drop(dropped.group(2), int(dropped.group(1)))
            self.percent = 100.0 * self.eta.count / max(self.combinations(), 1)
        if stopped := STOPPED_LINE.match(text):
            self.stopped = (stopped.group(1), float(stopped.group(2)))
        combination = COMBINATION_LINE.match(text)
        if combination:
            self.statuses[combination.group(4)] += 1
            self.eta.done(combination.group(5), float(combination.group(3)))
            self.percent = 100.0 * self.eta.count / max(self.combinations(), 1)
            self._current(combination.group(5)[:60])
            if combination.group(4) == "failed" and self.shown < MAX_SHOWN:
                self.shown += 1
                self._say(f"{self.label}: failed: {combination.group(5)}")
        result = RESULT_LINE.match(text)
        step = STEP_LINE.match(text)
        if result:
            self.done += 1
            self._current(result.group(2))
        elif step:
            self._current(step.group(1)[:60])
            if not self.tty:  # a few per environment: what a CI log needs to follow along
                print(f"{self.label}: {step.group(1)[:120]}", file=self.out, flush=True)
        if PARAMETERS_LINE.match(text):
            self.parameters = text
        if SHOWN.search(text) and self.shown < MAX_SHOWN:
            self.shown += 1
            if self.parameters and not result:
                self._say(self.parameters)
                self.parameters = ""
            if SERVER_IMPORT_LEFT in text:  # kernelwatch's own words, without asv's dots
                text = text[text.index(SERVER_IMPORT_LEFT):]
            self._say(text if self.shown < MAX_SHOWN else
                      f"{text}\n(more in {self.log.name})")
        self.bar.n = self.percent
        self.bar.refresh()
        if self.tty:
            return
        now = time.monotonic()
        tenth = self.percent >= self.next_tenth
        beat = combination and now - self.last_said >= self.heartbeat
        if tenth or beat:
            self.next_tenth = (int(self.percent) // 10 + 1) * 10
            self.last_said = now
            ended = (f"; {combination.group(5)[:80]} took {combination.group(3)}s"
                     if beat and not tenth else "")
            print(f"{self.label}: {self.percent:.0f}% ({self.counts()}, "
                  f"{self._elapsed()}{ended})", file=self.out, flush=True)

    def combinations(self) -> int:
        return max(max(self.planned, self.announced) - self.dropped, self.eta.count)

    def counts(self) -> str:
        if self.eta.count or self.announced:
            text = f"{self.eta.count} of {self.combinations()} combinations"
            left = self.eta.seconds_left(self.combinations())
            return text if left is None else f"{text}, about {_clock(left)} left"
        total = self.total or (round(self.done * 100 / self.percent) if self.percent else 0)
        return f"{self.done} of {total} benchmarks" if total else f"{self.done} benchmarks"

    def _current(self, what: str) -> None:
        self.bar.set_postfix_str(f"{self.counts()} · {what}", refresh=False)

    def _elapsed(self) -> str:
        return _clock(time.monotonic() - self.started)

    def close(self, finished: bool = True) -> None:
        self.bar.close()
        self.log.flush()
        # "done" only where something was measured: a call whose every combination skipped
        # or failed finished, and measured nothing.
        nothing = self.statuses and not self.statuses["ok"]
        how = ("stopped" if not finished else
               "finished, nothing measured" if nothing else "done")
        counts = self.counts().split(", about")[0]
        ended = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()) if s != "ok")
        cut = (f"; {self.stopped[0]} had run {_clock(self.stopped[1])} (its seconds are kept "
               "as the least it takes, for the next estimate)" if self.stopped else "")
        print(f"{self.label}: {how}, {counts}" + (f" ({ended})" if ended else "")
              + f" in {self._elapsed()}{cut}", file=self.out, flush=True)


class Outcomes:
    """What each (commit, environment) of asv calls ended as: {(commit[:8], env): {name:
    (status, reason)}} for every combination the benchmark loop ran (status ok, skipped or
    failed; the reason for the last two), and WHOLE_COMMIT where the commit did not build or
    install. Fed every line of asv's output, whatever is shown."""

    def __init__(self) -> None:
        self.by_point: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        # Benchmark processes per status, the machine's facts left out: a combination
        # measured in K processes (rounds of the loop) is K of them.
        self.processes: dict[tuple[str, str], Counter[str]] = {}
        self.commit = ""
        self.env = ""
        self.build_error = ""

    def feed(self, line: str) -> None:
        text = line.rstrip("\n")
        if m := COMMIT_LINE.match(text):
            self.commit, self.env, self.build_error = m.group(1)[:8], "", ""
        elif (m := LOOP_LINE.match(text)) and m.group(2):
            self.env = m.group(2)
        elif m := COMBINATION_LINE.match(text):
            self._point()[m.group(5)] = (m.group(4), "")
            if not m.group(5).startswith("environment."):
                self.processes.setdefault((self.commit, self.env), Counter())[m.group(4)] += 1
        elif m := REASON_LINE.match(text):
            status = self._point().get(m.group(1), ("failed", ""))[0]
            self._point()[m.group(1)] = (status, m.group(2))
        elif m := NOT_MEASURABLE.search(text):
            self.build_error = m.group(1).strip()
        elif (m := BUILD_ERROR.search(text)) and not self.build_error:
            self.build_error = (f"{m.group(1).strip()[:200]} exited with status "
                                f"{m.group(2)} (its output is in asv's log)")
        elif m := SKIPPING_ENV.match(text):
            self.env = m.group(1)
            self._point()[WHOLE_COMMIT] = (
                "failed", f"did not build or install: {self.build_error or 'see asv log'}")

    def _point(self) -> dict[str, tuple[str, str]]:
        return self.by_point.setdefault((self.commit, self.env), {})

    def counts(self) -> Counter[str]:
        return Counter(status for point in self.by_point.values()
                       for name, (status, _) in point.items() if name != WHOLE_COMMIT)


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Eta:
    """Time left from the combinations done so far and what earlier runs recorded of those
    still planned: each is expected to take its recorded seconds, scaled by how this run
    compares with its record so far (a slower lease, a colder cache); one with no record,
    the mean of this run's combinations."""

    def __init__(self, planned: Counter[str], estimates: dict[str, float]) -> None:
        self.left = Counter(planned)
        self.estimates = estimates
        self.count = 0
        self.seconds = 0.0
        self.recorded = 0.0  # the records of the combinations done, where they have one
        self.actual = 0.0  # what those same combinations took now

    def done(self, name: str, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        if self.left[name] > 0:
            self.left[name] -= 1
        # A stopped or timed-out process's seconds (planner.Durations.floors) are a floor, not
        # a record to scale this run by.
        if name in self.estimates and name not in getattr(self.estimates, "floors", ()):
            self.recorded += self.estimates[name]
            self.actual += seconds

    def drop(self, name: str, count: int) -> None:
        """`count` planned processes of `name` will not run."""
        self.left[name] = max(self.left[name] - count, 0)

    def seconds_left(self, total: int) -> float | None:
        """Seconds still to go of `total` combinations, None before the first has ended."""
        if not self.count:
            return None
        scale = self.actual / self.recorded if self.recorded > 0 else 1.0
        mean = self.seconds / self.count
        planned = sum(self.left.values())
        left = sum(n * (scale * self.estimates[name] if name in self.estimates else mean)
                   for name, n in self.left.items())
        return left + max(total - self.count - planned, 0) * mean


def log_path(repo: Path) -> Path:
    """A new log file for one `kernelwatch run`, in the checkout's `.kernelwatch/logs`
    (git-ignored). Not under `.asv`, which may be a link to environments built elsewhere
    (a container sees the host's link dangling)."""
    folder = repo / ".kernelwatch" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / time.strftime("run-%Y%m%d-%H%M%S.log")
