"""Encoding meshes it never saw: today's path (sample, 4800-step fit from the seeded init, encode) against
``shapezoo encode FOLDER`` with a space whose zoo was fitted from a learned init (sample, short fit, encode), side
by side in one run: wall time per stage and decoded IoU vs the ground truth.

Usage: python -m benchmarks.encode_meshes MESHES --space NAME=SPACE[:STEPS[:POINTS]] [--space ...] [--refine 100]
       [--out JSON]

``:STEPS`` overrides the fit's length (``encode --steps``), e.g. to time the 4800-step path with the same space;
``:POINTS`` the refinement's points per step (default ``REFINE_POINTS``).

Each space encodes the meshes the way ``shapezoo encode MESHES --space SPACE`` does (``fit_meshes`` with its zoo's
sampling and fitting recipe and start point for ``encode_fit_steps`` steps, then encoder + ``--refine`` steps) and
decodes; IoU compares the decoded field's occupancy (and the fitted field's) with the mesh's on 100k seeded uniform
points.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.fields.meshes import find_meshes, load_mesh
from shapezoo.fields.space import load_space
from shapezoo.fields.space.inference import refine_latents
from shapezoo.fields.space.objective import REFINE_POINTS
from shapezoo.fields.space.operations import encode_fit_steps, fit_meshes


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "encode_meshes.json")
    ap.add_argument("meshes", type=Path)
    ap.add_argument("--space", action="append", required=True, help="NAME=SPACE_DIR[:FIT_STEPS]")
    ap.add_argument("--refine", type=int, default=100)
    args = ap.parse_args(argv)
    dev = _common.device(args)
    items = find_meshes(args.meshes)
    truth = _common.truth_occupancy([load_mesh(p, name=n) for n, p in items])
    result: dict = {"meshes": str(args.meshes), "count": len(items), "spaces": {}}
    print(f"{len(items)} meshes, torch threads {torch.get_num_threads()}")
    print(f"{'space':>10}{'fit steps':>10}{'fit s':>8}{'encode s':>9}{'total s':>8}{'fit IoU':>9}{'decoded IoU':>12}")
    for spec_arg in args.space:
        name, folder = spec_arg.split("=", 1)
        folder, steps_arg, points_arg = (folder.split(":") + ["", ""])[:3]
        space = load_space(folder, dev)
        points = int(points_arg) if points_arg else REFINE_POINTS
        t0 = time.perf_counter()
        params, records, failed = fit_meshes(
            space, items, dev, int(steps_arg) if steps_arg else encode_fit_steps(space)
        )
        t1 = time.perf_counter()
        z = refine_latents(space, params, space.encode(params), args.refine, points=points)
        decoded = space.decode(z).cpu()
        t2 = time.perf_counter()
        fit_iou = statistics.median(_common.truth_ious(space.spec, params, truth))
        dec_iou = statistics.median(_common.truth_ious(space.spec, decoded, truth))
        steps = records[0]["fit_steps"] if records else 0
        row = {
            "space": folder,
            "fit_steps": steps,
            "refine_points": points,
            "fit_seconds": t1 - t0,
            "encode_seconds": t2 - t1,
            "total_seconds": t2 - t0,
            "fit_iou_median": fit_iou,
            "decoded_iou_median": dec_iou,
            "failed": failed,
        }
        result["spaces"][name] = row
        print(
            f"{name:>10}{steps:>10}{row['fit_seconds']:>8.1f}{row['encode_seconds']:>9.1f}"
            f"{row['total_seconds']:>8.1f}{fit_iou:>9.4f}{dec_iou:>12.4f}",
            flush=True,
        )
    return _common.finish(args.out, result, dev)


if __name__ == "__main__":
    _common.run(main)
