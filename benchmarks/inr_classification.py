"""Classifying images from their fields' weights, the weight-space literature's benchmark, beside its published table.

Usage: python3 -m benchmarks.inr_classification --work WORK [--data fashion-mnist] [--train N] [--test N]
       [--protocols shared independent] [--start-steps 300] [--batch 1024] [--quick]

For each protocol it writes the dataset's official train and test splits (the first N of each) as image folders,
fits one 32 x 3 SIREN per image (``shapezoo fit``: a start learned on the training images shared by every field, or
an independent seeded init per image, DWSNets' recipe), then probes the test fields from the train fields
(``shapezoo probe TEST_ZOO --train TRAIN_ZOO``: raw weights, their PCA, StatNN's weight statistics, each with a
linear classifier and an MLP; the query reader over the fields' outputs at learned coordinates). Under the shared
protocol also a space of the train fields (``shapezoo space train``, the ``pca`` design, ``--space-latent`` numbers)
that encodes the test fields, and a probe of those latents (``shapezoo probe LATENTS --train SPACE``). Prints test
accuracy beside the published Fashion-MNIST numbers, fitting time, fields per hour and median PSNR; resumes from
WORK. ``--quick``: 200 + 100 bundled digits, a 20-step start.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import _common
from shapezoo.core.latents import LATENTS_FILE
from shapezoo.core.zoo import load_zoo
from shapezoo.fields.probing import probe_latents
from shapezoo.fields.space import ModelConfig, TrainConfig, load_space, train_space
from shapezoo.fields.space.jobs import encode_source
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


def _space_probe(args, zoo_train: Path, zoo_test: Path, dev) -> dict:
    """Test accuracy (linear, MLP) of the latents of a ``pca`` space of the train fields, and the seconds it took to
    build (0 when it was there)."""
    space_dir = args.work / f"space_pca{args.space_latent}_{zoo_train.name}"
    tic = time.perf_counter()
    if not (space_dir / "space.json").exists():
        config = TrainConfig(val=0.0, test=0.0)
        train_space(
            load_zoo(zoo_train, "image"), space_dir, ModelConfig(design="pca", latent=args.space_latent), config, dev
        )
    built = time.perf_counter() - tic
    space = load_space(space_dir, dev)
    latents = args.work / f"latents_{zoo_test.name}.safetensors"
    encode_source(space, space_dir, zoo_test, latents, refine=0, device=dev)
    probe = probe_latents(latents, ("classify",), train=space_dir / LATENTS_FILE)
    found = probe["latents"]["classify"]
    return {"linear": found["linear_accuracy"], "mlp": found["mlp_accuracy"], "space_seconds": round(built, 1)}


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
    ap.add_argument("--space-latent", type=int, default=512, help="latent size of the shared zoo's space (0: none)")
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
        if protocol == "shared" and args.space_latent:
            rows[protocol]["accuracy"]["latents"] = _space_probe(args, zoo_train, zoo_test, dev)
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
