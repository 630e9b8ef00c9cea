"""Quality vs budget of the fitting recipe: held-out IoU after budgets of point-evaluations per field.

Usage: python benchmarks/fit_budget.py SAMPLES_DIR [--shapes 10] [--device cpu]
Runs the default recipe with the step count (and points per step) varied; shapes are taken evenly across the
samples index so every family is represented.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _fitbench import load_batch, score

from shapezoo.fields import FieldSpec, init_params
from shapezoo.fit import FitConfig, fit_fields

BUDGETS = [(600, 1024), (1200, 1024), (2400, 1024), (4800, 1024), (2400, 2048), (1200, 4096), (9600, 1024)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("samples", type=Path)
    ap.add_argument("--shapes", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_budget.json"))
    args = ap.parse_args()
    pts, occ, nu, names = load_batch(args.samples, args.shapes, args.device)
    spec = FieldSpec()
    rows = []
    print(f"{len(names)} shapes, device {args.device}")
    print(f"{'steps':>6}{'pts/step':>9}{'evals/field':>13}{'median IoU':>11}{'min IoU':>9}{'near IoU':>9}{'s':>7}")
    for steps, per_step in BUDGETS:
        t = time.perf_counter()
        r = fit_fields(spec, init_params(spec), pts, occ, nu, names, FitConfig(steps=steps, points_per_step=per_step))
        row = {
            "steps": steps,
            "points_per_step": per_step,
            "point_evals": steps * per_step,
            **score(r, names, time.perf_counter() - t),
        }
        rows.append(row)
        print(
            f"{steps:>6}{per_step:>9}{steps * per_step:>13.2e}{row['median_iou']:>11.4f}{row['min_iou']:>9.4f}"
            f"{row['median_iou_near']:>9.4f}{row['seconds']:>7.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "shapes": names, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
