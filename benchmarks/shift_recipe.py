"""Fitting from a shift base: held-out fit quality and floaters per recipe, side by side with a full fit.

Fits the test shapes of the space split (``--val``/``--test``/``--seed`` as ``space train``; every ``--every``-th
one) from the base with each variant (biases only: ``STEPSxLR[xPOINTS]``) and, beside them, full fits from the
bundled init (``full``), then reports per variant the median IoU on each shape's held-out uniform samples and the
connected pieces of its mesh (128^3). A base folder that does not exist yet is learned first (``--base-steps``).

Usage: python -m benchmarks.shift_recipe SAMPLES --base BASE [--variants 500x5e-4 500x2e-3 1000x2e-3 full]
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks import _common
from shapezoo.core.latents import split_names
from shapezoo.fields.extract import ExtractConfig, extract_meshes
from shapezoo.fields.fitting import FitConfig, fit_fields
from shapezoo.fields.learned_init import bundled_init, load_init
from shapezoo.fields.mesh_metrics import components
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.samples import load_sample_batch, read_index
from shapezoo.fields.shift_base import BaseConfig, learn_base


def _config(variant: str, check: int) -> tuple[FitConfig, bool]:
    """'full' -> the default full-weight recipe from the bundled init; 'STEPSxLR[xPOINTS]' -> biases only."""
    if variant == "full":
        return FitConfig(steps=500, check_every=check), False
    steps, lr, *points = variant.split("x")
    extra = {"points_per_step": int(points[0])} if points else {}
    return FitConfig(steps=int(steps), lr=float(lr), trainable="biases", check_every=check, **extra), True


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "shift_recipe.json")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--variants", nargs="*", default=["500x5e-4", "500x2e-3", "500x5e-3", "1000x2e-3", "full"])
    ap.add_argument("--every", type=int, default=4, help="every N-th test shape (spread over the families)")
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--test", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=128, help="hidden units of a base learned here (depth 3)")
    ap.add_argument("--base-steps", type=int, default=3000, help="steps when the base has to be learned first")
    ap.add_argument("--resolution", type=int, default=128)
    a = ap.parse_args(argv)
    dev = _common.device(a)
    spec = FieldSpec(width=a.width)
    if not (a.base / "init.json").exists():
        config = BaseConfig(steps=a.base_steps, val=a.val, test=a.test, seed=a.seed, columns=0)  # the biases alone
        learn_base([a.samples], a.base, spec, config, dev)
    base = load_init(a.base)
    spec = base.spec
    shapes = read_index(a.samples)["shapes"]
    test = set(split_names([s["name"] for s in shapes], a.val, a.test, a.seed)["test"])
    loaded, _, n_uniform = load_sample_batch(a.samples, [s for s in shapes if s["name"] in test][:: a.every])
    points = torch.stack([s["points"] for s in loaded]).to(dev)
    occupancy = torch.stack([s["occupancy"] for s in loaded]).to(dev)
    names = [s["name"] for s in loaded]
    full_init = bundled_init(spec) or base
    rows = {}
    for variant in a.variants:
        config, shift = _config(variant, check=10**9)
        config = replace(config, columns=base.columns) if shift else config  # the entries the base's fields move
        start = base.params if shift else full_init.params
        result = fit_fields(spec, start.to(dev), points, occupancy, n_uniform, names, config)
        meshes, _ = extract_meshes(spec, result.params, ExtractConfig(resolution=a.resolution))
        pieces = [components(v, f)["components"] for v, f in meshes]
        rows[variant] = {
            "sample_iou_median": statistics.median(m["iou"] for m in result.metrics),
            "pieces_median": statistics.median(pieces),
            "more_than_one_piece": sum(p > 1 for p in pieces) / len(pieces),
            "pieces": pieces,
        }
        print(f"{variant:12s} IoU {rows[variant]['sample_iou_median']:.4f}  pieces median {statistics.median(pieces)}")
    return _common.finish(a.out, {"base": str(a.base), "shapes": names, "variants": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
