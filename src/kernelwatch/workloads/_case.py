"""The one shape of a workload's case: what benchmarks/common.py's mixins measure.

A case is one parameter combination of a workload, built and ready to call. Each
workload's case class derives from `Case` and sets:
- `device`: where it runs;
- `input_sets`: the inputs a timed loop rotates through (`[()]` for a case whose call takes
  none; several sets where one call's inputs would sit in the L2);
- `call(*inputs)`: one call on one input set, returning its output;
- `device_method`: how a GPU's device time of a call is read (`measure.CUDA_GRAPH` where the
  call can be captured and replayed; `measure.PROFILER_KERNELS` where it cannot;
  `measure.CUDA_EVENTS` for a case whose time is meant as its latency), or None for a case
  that is not timed per call (a generation's token clock).
`run()` is one call on the first input set (memory peaks, compile cost); `first_run()` is
the variant's one-time work and its first call (a case that applies its variant lazily
overrides it).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch


class Case(abc.ABC):
    device: torch.device
    input_sets: Sequence[tuple]
    device_method: str | None

    @abc.abstractmethod
    def call(self, *inputs) -> object:
        ...

    def run(self) -> object:
        return self.call(*self.input_sets[0])

    def first_run(self) -> object:
        return self.run()
