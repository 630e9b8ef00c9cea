"""Image fields from the CLI: ``shapezoo data images`` (a dataset split into an image folder) and the image branch of
``shapezoo fit`` and ``shapezoo probe``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import finish, handle_errors, pct, progress

if TYPE_CHECKING:
    from shapezoo.images.readers import ReaderConfig


def is_image_folder(folder: Path) -> bool:
    """Whether ``shapezoo fit`` was given an image folder ('shapezoo data images') rather than samples."""
    from shapezoo.images.data import is_images

    return is_images(folder)


@handle_errors
def images(
    data: Annotated[str, typer.Option(help="digits (bundled), fashion-mnist, mnist or cifar10.")] = "fashion-mnist",
    split: Annotated[str, typer.Option(help="The dataset's official train or test split.")] = "train",
    count: Annotated[int | None, typer.Option(help="The first COUNT images of the split (default all).")] = None,
    out: Annotated[Path, typer.Option(help="Image folder: images.safetensors (pixels, labels) + images.json.")] = Path(
        "images"
    ),
    root: Annotated[
        str | None, typer.Option(help="Folder of the dataset's files (fashion-mnist: the system package's).")
    ] = None,
):
    """Write a split of an image dataset, labels kept, for 'shapezoo fit' to fit one image field per image."""
    from shapezoo.images.data import write_images

    record = write_images(data, split, out, count, root)
    rows = [(c, n) for c, n in zip(record["classes"], record["class_counts"])]
    finish(f"{data} {split}: {record['count']} images {record['shape']} in {out}", ["class", "images"], rows, record)


def fit_images(images, out, protocol, width, depth, steps, lr, target_psnr, batch, seed, init, device) -> None:
    """``shapezoo fit`` on an image folder: one SIREN per image, the zoo recording the protocol."""
    from shapezoo.images.fitting import ImageFitConfig
    from shapezoo.images.jobs import fit_image_zoo
    from shapezoo.runtime import resolve_device

    config = ImageFitConfig(
        protocol=protocol, steps=steps, lr=lr or 1e-3, target_psnr=None if target_psnr == 0 else target_psnr, seed=seed
    )
    start = None if init in ("default", "learned") else init
    psnrs: list[float] = []
    with progress() as bar:
        task = bar.add_task("fitting images", total=None, status="")

        def on_batch(entries: list[dict]) -> None:
            psnrs.extend(e["metrics"]["psnr"] for e in entries)
            bar.update(task, advance=len(entries), status=f"median PSNR {sorted(psnrs)[len(psnrs) // 2]:.1f} dB")

        summary = fit_image_zoo(
            images,
            out,
            config,
            width=width or 32,
            depth=depth or 3,
            batch=batch,
            start=start,
            device=resolve_device(device),
            on_batch=on_batch,
            on_start=lambda done, total: bar.update(task, completed=done, total=total),
        )
    rows = [(k, summary[k].get("median", ""), summary[k].get("min", "")) for k in ("psnr", "steps") if summary[k]]
    rate = summary["timing"]["fields_per_hour"]
    finish(
        f"zoo {out}: {summary['ok']}/{summary['fields']} image fields ok ({protocol} start"
        + (f", {rate:.0f} fields/hour)" if rate else ")"),
        ["metric", "median", "min"],
        rows,
        summary,
    )


def probe_images(
    zoo: Path,
    train: str | None,
    features: str | None,
    folds: int,
    seed: int,
    out: Path | None,
    tasks: tuple[str, ...],
    reader: ReaderConfig,
) -> None:
    """``shapezoo probe`` on an image zoo: classes from the fields' weights, PCA, weight statistics and outputs at
    learned queries (``features`` None: all; ``reader``: the query reader), classified and/or retrieved (``tasks``)."""
    from shapezoo.core.kfold import ProbeConfig
    from shapezoo.images.probing import FEATURES, probe_image_zoo

    kinds = tuple(f.strip() for f in features.split(",") if f.strip()) if features else FEATURES
    config = ProbeConfig(folds=folds, seed=seed)
    result = probe_image_zoo(zoo, Path(train) if train else None, kinds, config, out=out, reader=reader, tasks=tasks)
    found = result.get("retrieve", {})
    rows = [
        (
            f,
            pct(result.get(f, {}).get("linear_accuracy")),
            pct(result.get(f, {}).get("mlp_accuracy")),
            pct(found.get(f, {}).get("cosine", {}).get("map")),
            pct(found.get(f, {}).get("cosine", {}).get("p@1")),
        )
        for f in kinds
    ]
    how = f"trained on {train}" if train else f"{folds} folds"
    head = ["features", "linear acc %", "mlp acc %", "mAP cosine %", "P@1 %"]
    finish(f"{result['scored']} image fields of {zoo}, {how}", head, rows, result)
