"""Whole generations timed token by token."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kernelwatch.measure import inject


@dataclass
class TokenTimes:
    """Seconds from the start of one generate call to the arrival of each new token."""

    arrivals: list[float]

    @property
    def ttft(self) -> float:
        """Time to first token: the prompt's prefill plus the first sampling step."""
        return self.arrivals[0]

    @property
    def total(self) -> float:
        return self.arrivals[-1]

    @property
    def decode_intervals(self) -> list[float]:
        """Seconds per new token after the first: the decode steps."""
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]


class TokenClock:
    """Handed to a generation loop, which calls `tick()` as each new token is ready on the
    host (after the device produced it: a streamer's `.cpu()` has synchronised)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.arrivals: list[float] = []

    def tick(self) -> None:
        self.arrivals.append(time.perf_counter() - self._start)


def time_generations(generate: Callable[[Callable[[], None]], object], *,
                     min_repeats: int = 2, max_repeats: int = 5,
                     budget_seconds: float = 30.0) -> list[TokenTimes]:
    """Time whole generations: `generate(on_token)` runs one and calls `on_token()` per new
    token. Repeats at least `min_repeats` times, and more (up to `max_repeats`) while the
    time spent stays under `budget_seconds`, so a 1.5B model on one core still finishes and
    a small one gets a spread. Warm the generator up before calling this."""
    runs: list[TokenTimes] = []
    spent = 0.0
    while len(runs) < min_repeats or (len(runs) < max_repeats and spent < budget_seconds):
        clock = TokenClock()
        generate(inject.after_each_token(clock.tick))
        if not clock.arrivals:
            raise ValueError("the generation reported no tokens")
        runs.append(TokenTimes(clock.arrivals))
        spent += clock.arrivals[-1]
    return runs
