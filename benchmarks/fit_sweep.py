"""Recipe sweep: held-out IoU of several architecture / optimiser variants on the same shapes, side by side.

Usage: python benchmarks/fit_sweep.py SAMPLES_DIR [--shapes 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from _fitbench import load_batch, score

from shapezoo.fields import FieldSpec, init_params
from shapezoo.fit import FitConfig, fit_fields

VARIANTS = {
    "default": ({}, {}),
    "first ω 30": ({"first_omega0": 30.0}, {}),
    "first ω 12": ({"first_omega0": 12.0}, {}),
    "lr 1e-3": ({}, {"lr": 1e-3}),
    "lr 2.5e-4": ({}, {"lr": 2.5e-4}),
    "width 192": ({"width": 192}, {}),
    "width 256": ({"width": 256}, {}),
    "depth 4": ({"depth": 4}, {}),
    "4800 x 1024": ({}, {"steps": 4800, "points_per_step": 1024}),
    "width 192, 4800 x 1024": ({"width": 192}, {"steps": 4800, "points_per_step": 1024}),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples", type=Path)
    ap.add_argument("--shapes", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_sweep.json"))
    args = ap.parse_args()
    pts, occ, nu, names = load_batch(args.samples, args.shapes, args.device)
    rows = []
    print(f"{len(names)} shapes from {args.samples}, device {args.device}")
    print(f"{'variant':<14}{'P':>8}{'evals/field':>13}{'median IoU':>11}{'mean IoU':>9}{'min IoU':>9}{'s':>7}")
    for key in args.variants:
        spec_kw, fit_kw = VARIANTS[key]
        spec, config = replace(FieldSpec(), **spec_kw), replace(FitConfig(), **fit_kw)
        t = time.perf_counter()
        r = fit_fields(spec, init_params(spec), pts, occ, nu, names, config)
        row = {
            "variant": key,
            "params": spec.layout().size,
            "point_evals": config.steps * config.points_per_step,
            **score(r, names, time.perf_counter() - t),
        }
        rows.append(row)
        print(
            f"{key:<14}{row['params']:>8}{row['point_evals']:>13.2e}{row['median_iou']:>11.4f}{row['mean_iou']:>9.4f}"
            f"{row['min_iou']:>9.4f}{row['seconds']:>7.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"samples": str(args.samples), "device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
