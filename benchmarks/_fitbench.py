"""Shared by the fitting benchmarks: a spread of sampled shapes as one batch, and a fit scored as a table row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shapezoo.errors import ShapezooError
from shapezoo.fields.samples import load_sample_batch, read_index


def load_batch(samples: Path, count: int, device: str | torch.device, stride: int | None = None):
    """(points (B, N, 3), occupancy (B, N), n_uniform, names) of ``count`` shapes spread over the samples index."""
    shapes = read_index(samples)["shapes"]
    shapes = shapes[:: stride or max(1, len(shapes) // count)][:count]
    loaded, failed, n_uniform = load_sample_batch(samples, shapes)
    if failed:
        raise ShapezooError(failed[0]["error"])
    pts = torch.stack([s["points"] for s in loaded]).to(device)
    occ = torch.stack([s["occupancy"] for s in loaded]).to(device)
    return pts, occ, n_uniform, [s["name"] for s in loaded]


def score(result, names: list[str], seconds: float) -> dict:
    """Held-out IoU statistics of a FitResult."""
    ious = [m["iou"] for m in result.metrics]
    return {
        "median_iou": float(np.median(ious)),
        "mean_iou": float(np.mean(ious)),
        "min_iou": float(np.min(ious)),
        "median_iou_near": float(np.median([m["iou_near"] for m in result.metrics])),
        "seconds": seconds,
        "per_shape": dict(zip(names, ious)),
    }
