"""Error of an output against a reference (float64, or eager's)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Accuracy:
    """Error of an output against a float64 reference, over all output tensors together."""

    rel_l2: float
    max_abs: float

    def within(self, rel_l2_tolerance: float) -> bool:
        return math.isfinite(self.rel_l2) and self.rel_l2 <= rel_l2_tolerance


def _flat(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def accuracy(output: object, reference: object) -> Accuracy:
    outs, refs = _flat(output), _flat(reference)
    if len(outs) != len(refs):
        raise ValueError(f"{len(outs)} outputs against {len(refs)} reference tensors")
    err_sq = ref_sq = 0.0
    max_abs = 0.0
    for o, r in zip(outs, refs, strict=True):
        if o.shape != r.shape:
            raise ValueError(f"output shape {tuple(o.shape)} != reference {tuple(r.shape)}")
        diff = o.detach().to("cpu", torch.float64) - r.detach().to("cpu", torch.float64)
        err_sq += float(diff.square().sum())
        ref_sq += float(r.detach().to("cpu", torch.float64).square().sum())
        worst = float(diff.abs().max()) if diff.numel() else 0.0
        # NaN must never pass: max() would silently keep the old value for a NaN.
        max_abs = math.inf if math.isnan(worst) else max(max_abs, worst)
    rel = math.sqrt(err_sq / ref_sq) if ref_sq > 0 else math.sqrt(err_sq)
    return Accuracy(rel_l2=rel, max_abs=max_abs)
