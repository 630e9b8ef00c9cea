"""Where fields start, measured: held-out IoU, floaters and throughput against the step budget, per start point.

Usage: python -m benchmarks.init_budget SAMPLES --init INIT [--budgets 100 250 500 1000 4800]
       [--starts learned seeded template] [--shapes 20] [--resolution 256] [--meshes MESHES] [--device cpu]
       [--out JSON]

Every start (a learned init, the seeded init, a template: the first shape fitted from the seeded init with the same
recipe, as ``fit --template`` does) fits the same shapes at every budget (the default recipe with ``steps`` = the
budget: cosine decay over it). Per row: held-out IoU (uniform points, as ``fit`` reports), the meshes' connected
components and floating area (share of the surface outside the largest piece, as ``eval`` reports), and the wall time of
the fit. With ``--meshes`` (the shapes' source meshes) every row also scores the fields against the ground truth as
``eval`` does: IoU on 100k seeded uniform points (the same points for every sample set, so recipes with different
samples compare fairly) and Chamfer-L2 of the extracted mesh. The closing table gives, per start, the cheapest budget
whose median IoU reaches ``--goal`` and the fields per hour at that budget, measured side by side in this run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import _common
from benchmarks._fitbench import load_batch
from shapezoo.fields.extract import ExtractConfig, extract_meshes
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.learned_init import load_init
from shapezoo.fields.mesh_metrics import components, mesh_metrics
from shapezoo.fields.meshes import find_meshes, load_mesh
from shapezoo.fields.network import FieldSpec, init_params


def _start(kind: str, spec: FieldSpec, init_path: Path | None, pts, occ, nu, names, recipe: FitConfig) -> torch.Tensor:
    if kind == "learned":
        init = load_init(init_path)
        init.check_spec(spec)
        return init.params
    seeded = init_params(spec, 0)
    if kind == "seeded":
        return seeded
    r = fit_fields(spec, seeded, pts[:1], occ[:1], nu, names[:1], replace(recipe, lr=None))  # the seeded recipe's lr
    return r.params[0]


def _truth(meshes: Path, names: list[str]) -> tuple[list, list[np.ndarray]]:
    """The shapes' meshes (in the frame) and each one's occupancy of the IoU points."""
    found = dict(find_meshes(meshes))
    refs = [load_mesh(found[n], name=n) for n in names]
    return refs, _common.truth_occupancy(refs)


def _against_truth(spec: FieldSpec, params: torch.Tensor, meshes: list, truth) -> list[dict]:
    """Per field: IoU vs the ground truth on the uniform points, Chamfer-L2 of its mesh vs the ground truth's."""
    refs, inside = truth
    ious = _common.truth_ious(spec, params, inside)
    return [
        {"gt_iou": iou, "chamfer_l2": mesh_metrics(mesh, (ref.vertices, ref.faces))["chamfer_l2"]}
        for iou, mesh, ref in zip(ious, meshes, refs)
    ]


def run(args) -> dict:
    dev = _common.device(args)
    pts, occ, nu, names = load_batch(args.samples, args.shapes, dev)
    spec = FieldSpec()
    extract = ExtractConfig(resolution=args.resolution)
    truth = _truth(args.meshes, names) if args.meshes else None
    rows = []
    print(f"{len(names)} shapes, device {dev}, torch threads {torch.get_num_threads()}")
    print(
        f"{'start':>8}{'steps':>6}{'median IoU':>11}{'min IoU':>9}{'med comp':>9}{'max comp':>9}"
        f"{'med float%':>11}{'max float%':>11}{'s':>7}{'fields/h':>9}"
    )
    for kind in args.starts:
        for steps in args.budgets:
            recipe = FitConfig(
                steps=steps, lr=args.lr, jitter_margin=args.jitter_margin, hard_fraction=args.hard_fraction
            )
            recipe = recipe.resolve("learned" if kind == "learned" else "seeded")  # hard points: the start's recipe
            start = _start(kind, spec, args.init, pts, occ, nu, names, recipe)
            t = time.perf_counter()
            r = fit_fields(spec, start.to(dev), pts, occ, nu, names, recipe)
            seconds = time.perf_counter() - t
            meshes, _ = extract_meshes(spec, r.params, extract, names)
            parts = [components(v, f) for v, f in meshes]
            ious = [m["iou"] for m in r.metrics]
            if truth is not None:
                scored = _against_truth(spec, r.params, meshes, truth)
                parts = [{**p, **t} for p, t in zip(parts, scored)]
            comp = [p["components"] for p in parts]
            floating = [p["floating_area"] for p in parts]
            row = {
                "start": kind,
                "steps": steps,
                "point_evals": steps * 1024,
                "median_iou": float(np.median(ious)),
                "mean_iou": float(np.mean(ious)),
                "min_iou": float(np.min(ious)),
                "median_components": float(np.median(comp)),
                "max_components": int(np.max(comp)),
                "median_floating_area": float(np.median(floating)),
                "max_floating_area": float(np.max(floating)),
                "seconds": seconds,
                "fields_per_hour": 3600 * len(names) / seconds,
                "per_shape": {n: {"iou": i, **p} for n, i, p in zip(names, ious, parts)},
            }
            if truth is not None:
                row["median_gt_iou"] = float(np.median([p["gt_iou"] for p in parts]))
                row["median_chamfer_l2"] = float(np.median([p["chamfer_l2"] for p in parts]))
            rows.append(row)
            print(
                f"{kind:>8}{steps:>6}{row['median_iou']:>11.4f}{row['min_iou']:>9.4f}{row['median_components']:>9.1f}"
                f"{row['max_components']:>9}{100 * row['median_floating_area']:>11.3f}"
                f"{100 * row['max_floating_area']:>11.3f}{seconds:>7.1f}{row['fields_per_hour']:>9.0f}"
                + (
                    f"  GT IoU {row['median_gt_iou']:.4f} CD-L2 x1e3 {1e3 * row['median_chamfer_l2']:.4f}"
                    if truth
                    else ""
                )
            )
    goal = {}
    for kind in args.starts:
        reached = [r for r in rows if r["start"] == kind and r["median_iou"] >= args.goal]
        best = min(reached, key=lambda r: r["steps"]) if reached else None
        goal[kind] = {"steps": best["steps"], "fields_per_hour": best["fields_per_hour"]} if best else None
    print(f"\ncheapest budget reaching median IoU >= {args.goal}:")
    for kind, g in goal.items():
        print(
            f"  {kind:>8}: " + (f"{g['steps']} steps, {g['fields_per_hour']:.0f} fields/hour" if g else "not reached")
        )
    result = {
        "samples": str(args.samples),
        "init": str(args.init),
        "resolution": args.resolution,
        "meshes": str(args.meshes) if args.meshes else None,
        "jitter_margin": args.jitter_margin,
        "hard_fraction": args.hard_fraction,  # None: the recipe's per start
        "lr": args.lr,
        "shapes": names,
        "goal_iou": args.goal,
        "goal": goal,
        "rows": rows,
    }
    return _common.finish(args.out, result, dev)


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "init_budget.json")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--init", type=Path, help="learned init folder (needed for the 'learned' start)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500, 1000, 4800])
    ap.add_argument("--starts", nargs="+", default=["learned", "seeded", "template"])
    ap.add_argument("--shapes", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--meshes", type=Path, help="the shapes' meshes: also score against the ground truth")
    ap.add_argument("--goal", type=float, default=0.97)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate of the fits (default: the recipe's)")
    ap.add_argument(
        "--jitter-margin",
        type=lambda v: None if v == "none" else float(v),
        default=FitConfig.jitter_margin,
        help="the recipe's label-preserving jitter margin ('none': no jitter)",
    )
    ap.add_argument(
        "--hard-fraction",
        type=float,
        help="share of each step's points picked as the hardest candidates (default: the recipe's for each start, "
        "0.5 from the learned init, else 0; 0: the walk alone, the recipe before)",
    )
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    _common.run(main)
