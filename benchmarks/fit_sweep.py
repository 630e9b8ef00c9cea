"""Recipe sweep: held-out IoU of several architecture / optimiser variants on the same shapes, side by side.

Usage: python -m benchmarks.fit_sweep SAMPLES_DIR [SAMPLES_DIR ...] [--shapes 20] [--variants NAME ...] [--steps N]
       [--init INIT] [--device cuda]

Every variant starts from the seeded init, or from ``--init`` (a learned init of the default architecture; the
architecture variants need the seeded one), with that start's recipe (hard points from a learned init). Several
samples folders pool ``--shapes`` shapes from each."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks import _common
from benchmarks._fitbench import load_batch, score
from shapezoo.fields.fitting import RECIPE_STEPS, FitConfig, fit_fields
from shapezoo.fields.learned_init import load_init
from shapezoo.fields.network import FieldSpec, init_params

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
    "lr 7e-4": ({}, {"lr": 7e-4}),
    "betas 0.9/0.99": ({}, {"betas": (0.9, 0.99)}),
    "betas 0.8/0.99": ({}, {"betas": (0.8, 0.99)}),
    "lr final 1%": ({}, {"lr_final": 0.01}),
    "lr final 20%": ({}, {"lr_final": 0.2}),
    "jitter margin 0.005": ({}, {"jitter_margin": 0.005}),
    "no hard points": ({}, {"hard_fraction": 0.0}),
    "hard fraction 0.25": ({}, {"hard_fraction": 0.25}),
    "hard points throughout": ({}, {"hard_until": 1.0}),
}


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "fit_sweep.json")
    ap.add_argument("samples", type=Path, nargs="+")
    ap.add_argument("--shapes", type=int, default=20)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=0, help="override every variant's steps (0: each variant's own)")
    ap.add_argument("--init", type=Path, help="learned init to start from (default: the seeded init)")
    args = ap.parse_args(argv)
    dev = _common.device(args)
    batches = [load_batch(folder, args.shapes, dev) for folder in args.samples]
    if len({(b[0].shape[1], b[2]) for b in batches}) > 1:
        raise SystemExit("the samples folders differ in points per shape; sample them alike")
    pts, occ = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    nu, names = batches[0][2], [n for b in batches for n in b[3]]
    learned = load_init(args.init) if args.init else None
    rows = []
    print(f"{len(names)} shapes from {', '.join(map(str, args.samples))}, device {dev}, start {args.init or 'seeded'}")
    print(f"{'variant':<20}{'P':>8}{'evals/field':>13}{'median IoU':>11}{'mean IoU':>9}{'min IoU':>9}{'s':>7}")
    for key in args.variants:
        spec_kw, fit_kw = VARIANTS[key]
        spec = replace(FieldSpec(), **spec_kw)
        config = replace(FitConfig(steps=args.steps or RECIPE_STEPS["seeded"]), **fit_kw)
        config = config.resolve("learned" if learned is not None else "seeded")  # hard points: the start's recipe
        t = time.perf_counter()
        if learned is not None:
            learned.check_spec(spec)
        start = learned.params if learned is not None else init_params(spec)
        r = fit_fields(spec, start.to(dev), pts, occ, nu, names, config)
        row = {
            "variant": key,
            "params": spec.layout().size,
            "point_evals": config.steps * config.points_per_step,
            **score(r, names, time.perf_counter() - t),
        }
        rows.append(row)
        print(
            f"{key:<20}{row['params']:>8}{row['point_evals']:>13.2e}{row['median_iou']:>11.4f}{row['mean_iou']:>9.4f}"
            f"{row['min_iou']:>9.4f}{row['seconds']:>7.1f}"
        )
    result = {
        "samples": [str(f) for f in args.samples],
        "init": str(args.init) if args.init else "seeded",
        "rows": rows,
    }
    return _common.finish(args.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
