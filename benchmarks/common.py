"""Fixtures shared by the benchmark files. Benchmark files declare; kernelwatch measures."""

import torch


def device() -> torch.device:
    """The device benchmarks run on: the first CUDA GPU if torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _CompileHealth:
    """Dynamo's counters as asv series, for a workload's Compile class that defines
    `_health()` returning a `kernelwatch.measure.CompileHealth`. (A leading underscore keeps
    asv from collecting this mixin itself.)"""

    def track_graph_breaks(self, *params):
        return self._health().graph_breaks

    track_graph_breaks.unit = "count"

    def track_unique_graphs(self, *params):
        return self._health().unique_graphs

    track_unique_graphs.unit = "count"

    def track_recompiles(self, *params):
        return self._health().recompiles

    track_recompiles.unit = "count"
