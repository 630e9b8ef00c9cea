"""Fields of shift bases with different modulations beside full fits, on the same held-out real and procedural shapes.

Usage: python3 -m benchmarks.modulation HELDOUT SAMPLES --work WORK [--base NAME=FOLDER ...]
       [--fit-columns NAME=FOLDER:COLUMNS ...] [--learn COLUMNS ... --train TRAIN_SAMPLES --base-steps N --width W]
       [--full] [--resolution 128]

HELDOUT holds the held-out meshes (``build_default``'s WORK/heldout: procedural/ and capod_CLASS/ folders), SAMPLES
their samples. Every run fits all of them into WORK/zoo_NAME (500 steps, ``fit --init``'s recipe) and scores the
fields against the meshes at ``--resolution`` (IoU on 100k uniform points, CD-L2, connected pieces), per group
(procedural, capod) and class. Runs: ``--base`` fits from a base with its own modulation (``init base --columns``);
``--fit-columns`` moves COLUMNS modulated columns at fit time from a base learned without them; ``--learn`` learns a
base per column count on TRAIN_SAMPLES first (WORK/base_cN, resumed); ``--full`` adds full fits from the bundled
128 x 3 init (``fit --init learned``), the reference the modulated fields are held to. Each run's latent (the entries
a field moves, what a shift space reads) and fit time per shape are recorded. Resumes from WORK.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from benchmarks import _common
from benchmarks.build_default import quality_by_group
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.evaluation import evaluate_zoo
from shapezoo.fields.extract import ExtractConfig
from shapezoo.fields.fit_job import fit_zoo
from shapezoo.fields.fitting import FitConfig
from shapezoo.fields.learned_init import LearnedInit, bundled_init, load_init
from shapezoo.fields.network import FieldSpec
from shapezoo.fields.shift_base import BaseConfig, learn_base
from shapezoo.io import ensure_output_dir


def _runs(args, dev) -> dict[str, tuple[LearnedInit, FitConfig]]:
    """name -> (start, recipe) of every run asked for."""
    runs: dict[str, tuple[LearnedInit, FitConfig]] = {}
    recipe = FitConfig(steps=args.steps)
    for columns in args.learn:
        out = args.work / f"base_c{columns}"
        config = BaseConfig(steps=args.base_steps, val=0.0, test=0.0, columns=columns)
        learn_base([args.train], out, FieldSpec(width=args.width), config, dev)
        runs[f"learned_c{columns}"] = (load_init(out), recipe)
    for item in args.base:
        name, _, folder = item.partition("=")
        runs[name] = (load_init(folder), recipe)
    for item in args.fit_columns:
        name, _, rest = item.partition("=")
        folder, _, columns = rest.rpartition(":")
        runs[name] = (load_init(folder), replace(recipe, trainable="biases", columns=int(columns)))
    if args.full:
        full = bundled_init(FieldSpec())
        assert full is not None
        runs["full_fits"] = (full, recipe)
    return runs


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "modulation.json")
    ap.add_argument("heldout", type=Path, help="held-out meshes (procedural/ and capod_CLASS/ folders)")
    ap.add_argument("samples", type=Path, help="their samples")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--base", nargs="*", default=[], help="NAME=BASE_FOLDER: fields of that base")
    ap.add_argument("--fit-columns", nargs="*", default=[], help="NAME=BASE_FOLDER:COLUMNS: columns moved at fit time")
    ap.add_argument("--learn", nargs="*", type=int, default=[], help="learn a base per column count first")
    ap.add_argument("--train", type=Path, help="training samples of --learn")
    ap.add_argument("--base-steps", type=int, default=BaseConfig.steps)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--full", action="store_true", help="add full fits from the bundled 128 x 3 init")
    ap.add_argument("--batch", type=int, default=32, help="fields per fitting batch")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="fitting steps (default: the recipe's, 500)")
    args = ap.parse_args(argv)
    if args.learn and args.train is None:
        ap.error("--learn needs --train")
    dev = _common.device(args)
    ensure_output_dir(args.work)
    rows = {}
    for name, (init, recipe) in _runs(args, dev).items():
        zoo_dir = args.work / f"zoo_{name}"
        tic = time.perf_counter()
        summary = fit_zoo(args.samples, zoo_dir, init.spec, recipe, batch=args.batch, device=dev, init=init)
        seconds = time.perf_counter() - tic
        zoo = load_zoo(zoo_dir)
        fit = zoo.meta["fit"]
        moved = init.spec.layout().size
        if fit["trainable"] == "biases":
            moved = int(init.spec.modulation_mask(fit["columns"]).sum())
        report = evaluate_zoo(zoo, args.heldout, config=ExtractConfig(resolution=args.resolution), device=dev)
        rows[name] = {
            "spec": init.spec.to_json(),
            "columns": fit.get("columns", 0),
            "latent": moved,
            "fit_seconds": seconds if summary["fitted_now"] else None,  # None: the zoo was there already
            "fit_seconds_per_shape": seconds / summary["fitted_now"] if summary["fitted_now"] else None,
            **quality_by_group(report["entries"]),
            "failed": report.get("failed", []),
        }
    print(f"{'run':<20}{'latent':>8}{'s/shape':>8}{'group':>12}{'IoU':>8}{'CD-L2e3':>9}{'pieces':>8}")
    for name, row in rows.items():
        per_shape = row["fit_seconds_per_shape"]
        for group in ("procedural", "capod"):
            if group in row:
                g = row[group]
                print(
                    f"{name:<20}{row['latent']:>8}{per_shape or float('nan'):>8.2f}{group:>12}{g['iou_median']:>8.4f}"
                    f"{g['chamfer_l2_x1e3_median']:>9.3f}{g['components_median']:>8g}"
                )
    return _common.finish(args.out, {"runs": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
