"""Shared by the fitting benchmarks: load a spread of sample files as one batch, and score a fit as a table row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shapezoo.io import read_json
from shapezoo.sampling import load_samples


def load_batch(samples: Path, count: int, device: str, stride: int | None = None):
    """(points (B, N, 3), occupancy (B, N), n_uniform, names) of ``count`` shapes spread over the samples index."""
    shapes = read_json(samples / "samples.json")["shapes"]
    shapes = shapes[:: stride or max(1, len(shapes) // count)][:count]
    data = [load_samples(samples / s["file"]) for s in shapes]
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data]).to(device)
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data]).to(device)
    return pts, occ, int(data[0]["n_uniform"]), [s["name"] for s in shapes]


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
