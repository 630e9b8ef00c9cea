"""The held-out procedural shapes of the pretrained default's split, fitted from the shipped base under recipe
variants and scored against their meshes: how many bias-only steps (and which lr, hard points) an encode through the
default space wants. A one-off measurement for BENCHMARKS.md "Pretrained default", not part of the harness.

Usage: python3 -m benchmarks._encode_recipe --work WORK [--variants s500 s1000 ...]

The shapes are ``build_default``'s held-out procedural ones (16 per family, seeds from 30000); a shift space reads
each field exactly, so a field's IoU is its encode -> decode's. IoU: the field's occupancy against the mesh's on 100k
uniform points (``evaluate_zoo`` at 128^3), per shape and per family; each variant's fit is timed.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks import _common
from benchmarks.build_default import HELDOUT_SEED
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.evaluation import evaluate_zoo
from shapezoo.fields.extract import ExtractConfig
from shapezoo.fields.fit_job import fit_zoo
from shapezoo.fields.fitting import FitConfig
from shapezoo.fields.learned_init import load_init
from shapezoo.fields.pretrained import PRETRAINED
from shapezoo.fields.samples import SampleConfig, sample_meshes
from shapezoo.io import ensure_output_dir
from shapezoo_datasets import FAMILIES, generate

VARIANTS = {
    "s500": FitConfig(),  # the shipped recipe: 500 bias-only steps, lr 2e-3, no hard points
    "s1000": FitConfig(steps=1000),
    "s500_lr4e-3": FitConfig(lr=4e-3),
    "s500_hard": FitConfig(hard_fraction=0.5),
    "s500_p512": FitConfig(points_per_step=512),  # half the points per step: half the fit time
}


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "encode_recipe.json")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--per-family", type=int, default=16)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    dev = _common.device(args)
    work = ensure_output_dir(args.work)
    for family in FAMILIES:
        generate(family, args.per_family, work / "heldout", seed=HELDOUT_SEED)
    sample_meshes(work / "heldout", work / "samples", SampleConfig())
    init = load_init(PRETRAINED / "base")
    rows = {}
    for name in args.variants:
        start = time.perf_counter()
        fit_zoo(work / "samples", work / f"zoo_{name}", init.spec, VARIANTS[name], device=dev, init=init)
        fit_s = time.perf_counter() - start
        zoo = load_zoo(work / f"zoo_{name}")
        report = evaluate_zoo(zoo, work / "heldout", config=ExtractConfig(resolution=128), device=dev)
        ious = {r["name"]: r["iou"] for r in report["entries"]}
        rows[name] = {
            "fit_s": fit_s,
            "iou_median": statistics.median(ious.values()),
            "iou_by_family": {f: statistics.median(v for n, v in ious.items() if n.startswith(f)) for f in FAMILIES},
            "components_median": statistics.median(r["components"] for r in report["entries"]),
            "ious": ious,
        }
        print(f"{name:12s} fit {fit_s:6.0f} s  median IoU {rows[name]['iou_median']:.4f}", flush=True)
    return _common.finish(args.out, {"shapes": len(ious), "variants": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
