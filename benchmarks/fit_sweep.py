"""Recipe sweep: held-out IoU of several architecture / optimiser variants on the same shapes, side by side.

Usage: python -m benchmarks.fit_sweep SAMPLES_DIR [--shapes 20] [--variants NAME ...] [--steps N] [--device cuda]
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from benchmarks import _common
from benchmarks._fitbench import load_batch, score
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


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "fit_sweep.json")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--shapes", type=int, default=20)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=0, help="override every variant's steps (0: each variant's own)")
    args = ap.parse_args(argv)
    dev = _common.device(args)
    pts, occ, nu, names = load_batch(args.samples, args.shapes, dev)
    rows = []
    print(f"{len(names)} shapes from {args.samples}, device {dev}")
    print(f"{'variant':<14}{'P':>8}{'evals/field':>13}{'median IoU':>11}{'mean IoU':>9}{'min IoU':>9}{'s':>7}")
    for key in args.variants:
        spec_kw, fit_kw = VARIANTS[key]
        spec, config = replace(FieldSpec(), **spec_kw), replace(FitConfig(), **fit_kw)
        if args.steps:
            config = replace(config, steps=args.steps)
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
    return _common.finish(args.out, {"samples": str(args.samples), "rows": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
