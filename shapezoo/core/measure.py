"""Measurements every modality reports: the IoU of two sets and a summary of one metric over a zoo's entries."""

from __future__ import annotations

import math

import torch


def set_iou(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """IoU of boolean sets along the last axis: (..., N) x (..., N) -> (...); 1 where both sets are empty."""
    inter = (a & b).sum(-1).to(dtype)
    union = (a | b).sum(-1).to(dtype)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def metric_summary(entries: list[dict], key: str) -> dict:
    """mean / median / min / max of one metric over the entries that have it."""
    vals = sorted(
        e["metrics"][key] for e in entries if key in e.get("metrics", {}) and math.isfinite(e["metrics"][key])
    )
    if not vals:
        return {}
    n = len(vals)
    median = vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])
    return {"mean": sum(vals) / n, "median": median, "min": vals[0], "max": vals[-1], "count": n}
