"""Chamfer distance wall time at 30k and 100k points per side: KD-tree on CPU, chunked cdist on CUDA if present.

Usage: python -m benchmarks.chamfer_timing [--sizes 30000 100000] [--out FILE]
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks import _common
from shapezoo.fields.mesh_metrics import point_metrics


def sphere(n: int, radius: float, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * p / np.linalg.norm(p, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "chamfer_timing.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[30_000, 100_000], help="points per side")
    args = ap.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device != "cpu" else [])
    rows = []
    print(f"{'points/side':>12}{'device':>8}{'seconds':>10}{'chamfer_l2':>14}{'rel. diff vs cpu':>18}")
    for n in args.sizes:
        a, b = sphere(n, 0.30, 0), sphere(n, 0.32, 1)
        ref = None
        for dev in devices:
            point_metrics(a[:1000], b[:1000], device=dev)  # warm-up
            t = time.perf_counter()
            m = point_metrics(a, b, device=dev)
            if dev == "cuda":
                torch.cuda.synchronize()
            sec = time.perf_counter() - t
            ref = ref or m
            rel = abs(m["chamfer_l2"] - ref["chamfer_l2"]) / ref["chamfer_l2"]
            rows.append({"points": n, "device": dev, "seconds": sec, "chamfer_l2": m["chamfer_l2"], "rel_diff": rel})
            print(f"{n:>12}{dev:>8}{sec:>10.3f}{m['chamfer_l2']:>14.6e}{rel:>18.2e}")
    return _common.finish(args.out, {"rows": rows})


if __name__ == "__main__":
    _common.run(main)
