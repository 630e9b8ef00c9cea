"""Classifying images from their fields' weights, the weight-space literature's benchmark, beside its published table.

Usage: python3 -m benchmarks.inr_classification --work WORK [--data fashion-mnist] [--train N] [--test N]
       [--protocols shared independent] [--start-steps 300] [--batch 1024] [--quick]

For each protocol it writes the dataset's official train and test splits (the first N of each) as image folders,
fits one 32 x 3 SIREN per image (``shapezoo fit``: a start learned on the training images shared by every field, or
an independent seeded init per image, DWSNets' recipe), then probes the test fields from the train fields
(``shapezoo probe TEST_ZOO --train TRAIN_ZOO``: raw weights, their PCA, StatNN's weight statistics, each with a
linear classifier and an MLP; the query reader over the fields' outputs at learned coordinates). Prints test
accuracy beside the published Fashion-MNIST numbers, fitting time, fields per hour and median PSNR; resumes from
WORK. ``--quick``: 200 + 100 bundled digits, a 20-step start.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import _common
from shapezoo.images.data import is_images, write_images
from shapezoo.images.fitting import ImageFitConfig, StartConfig
from shapezoo.images.jobs import fit_image_zoo
from shapezoo.images.probing import FEATURES, probe_image_zoo

PUBLISHED = {
    # Fashion-MNIST INR classification, test accuracy (%), as each paper reports it
    "independent": {"DWSNets": 67.06, "NFN-NP": 68.19, "Neural Graphs": 68.0, "ScaleGMN-B": 80.78},
    "shared": {"MWT (CVPR 2025)": 90.43},
}


def _fit(args, protocol: str, split: str, count: int, start: Path | None, dev) -> tuple[Path, dict, float]:
    """(zoo folder, fit summary, seconds) of one split under one protocol, resumed from WORK."""
    images = args.work / f"{args.data}_{split}_{count}"
    if not is_images(images):
        write_images(args.data, split, images, count, args.root)
    zoo = args.work / f"zoo_{protocol}_{split}_{count}"
    config = ImageFitConfig(protocol=protocol, steps=args.steps)  # type: ignore[arg-type]
    tic = time.perf_counter()
    summary = fit_image_zoo(
        images, zoo, config, batch=args.batch, start=start, start_config=StartConfig(outer_steps=args.start_steps),
        device=dev,
    )  # fmt: skip
    return zoo, summary, time.perf_counter() - tic


def main(argv: list[str] | None = None) -> dict:
    ap = _common.parser(__doc__, "inr_classification.json")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist, mnist, digits or cifar10")
    ap.add_argument("--root", default=None, help="folder of the dataset's files (default: the system package's)")
    ap.add_argument("--train", type=int, default=60000, help="training images (the first N of the train split)")
    ap.add_argument("--test", type=int, default=10000, help="test images (the first N of the test split)")
    ap.add_argument("--protocols", nargs="+", default=["shared", "independent"], choices=["shared", "independent"])
    ap.add_argument("--steps", type=int, default=None, help="fitting steps (default: the protocol's)")
    ap.add_argument("--start-steps", type=int, default=StartConfig.outer_steps, help="Reptile steps of the start")
    ap.add_argument("--batch", type=int, default=1024, help="fields per fitting batch")
    ap.add_argument("--features", nargs="+", default=list(FEATURES))
    ap.add_argument("--quick", action="store_true", help="200 + 100 bundled digits, a 20-step start")
    args = ap.parse_args(argv)
    if args.quick:
        args.data, args.train, args.test, args.start_steps, args.batch = "digits", 200, 100, 20, 512
    dev = _common.device(args)
    rows: dict = {}
    for protocol in args.protocols:
        zoo_train, fit_train, s_train = _fit(args, protocol, "train", args.train, None, dev)
        start = zoo_train if protocol == "shared" else None
        zoo_test, fit_test, s_test = _fit(args, protocol, "test", args.test, start, dev)
        fitted = fit_train["timing"]["fitted"] + fit_test["timing"]["fitted"]
        probe = probe_image_zoo(zoo_test, zoo_train, tuple(args.features))
        rows[protocol] = {
            "psnr_median": {"train": fit_train["psnr"]["median"], "test": fit_test["psnr"]["median"]},
            "steps_median": {"train": fit_train["steps"]["median"], "test": fit_test["steps"]["median"]},
            "fit_seconds": s_train + s_test if fitted else None,  # None: both zoos were there already
            "fields_per_hour": 3600 * fitted / (s_train + s_test) if fitted else None,
            "accuracy": {f: {m: probe[f][f"{m}_accuracy"] for m in ("linear", "mlp")} for f in args.features},
            "published": PUBLISHED[protocol] if args.data == "fashion-mnist" else {},
        }
    print(f"{'protocol':<13}{'PSNR dB':>8}{'fields/h':>10}{'features':>10}{'linear %':>10}{'mlp %':>8}")
    for protocol, row in rows.items():
        rate = row["fields_per_hour"] or float("nan")
        for f, acc in row["accuracy"].items():
            linear = "-" if acc["linear"] is None else f"{100 * acc['linear']:.2f}"
            print(
                f"{protocol:<13}{row['psnr_median']['test']:>8.1f}{rate:>10.0f}{f:>10}{linear:>10}"
                f"{100 * acc['mlp']:>8.2f}"
            )
        for paper, value in row["published"].items():
            print(f"{'':<13}{'':>8}{'':>10}{paper:>28}{value:>8.2f}")
    config = {"data": args.data, "train": args.train, "test": args.test, "start_steps": args.start_steps}
    return _common.finish(args.out, {"config": config, "protocols": rows}, dev)


if __name__ == "__main__":
    _common.run(main)
