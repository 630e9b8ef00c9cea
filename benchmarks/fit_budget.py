"""Quality vs budget of the fitting recipe: held-out IoU after budgets of point-evaluations per field.

Usage: python -m benchmarks.fit_budget SAMPLES_DIR [--shapes 10] [--budgets 600x1024 1200x1024 ...] [--device cpu]
Runs the default recipe with the step count (and points per step) varied; shapes are taken evenly across the
samples index so every family is represented.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import _common
from benchmarks._fitbench import load_batch, score
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.network import FieldSpec, init_params

BUDGETS = ["600x1024", "1200x1024", "2400x1024", "4800x1024", "2400x2048", "1200x4096", "9600x1024"]


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "fit_budget.json")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--shapes", type=int, default=10)
    ap.add_argument("--budgets", nargs="+", default=BUDGETS, help="STEPSxPOINTS_PER_STEP")
    args = ap.parse_args(argv)
    dev = _common.device(args)
    pts, occ, nu, names = load_batch(args.samples, args.shapes, dev)
    spec = FieldSpec()
    rows = []
    print(f"{len(names)} shapes, device {dev}")
    print(f"{'steps':>6}{'pts/step':>9}{'evals/field':>13}{'median IoU':>11}{'min IoU':>9}{'near IoU':>9}{'s':>7}")
    for budget in args.budgets:
        steps, per_step = (int(v) for v in budget.split("x"))
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
    return _common.finish(args.out, {"shapes": names, "rows": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
