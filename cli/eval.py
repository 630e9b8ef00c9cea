"""``shapezoo eval`` and ``shapezoo eval-generation``: fields or meshes scored against reference meshes, and
generated shapes against held-out ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, finish, handle_errors, parse_names, progress


@handle_errors
def evaluate(
    zoo: Annotated[Path | None, typer.Argument(help="Zoo folder (or use --pred for mesh files).")] = None,
    reference: Annotated[Path | None, typer.Option(help="Reference meshes, matched by name.")] = None,
    pred: Annotated[Path | None, typer.Option(help="Predicted mesh files instead of a zoo.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side (zoo mode).")] = 256,
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (zoo mode).")] = None,
    device: Device = "auto",
):
    """Score fields (or mesh files) against reference meshes: IoU, Chamfer-L1/L2, F-score, normal consistency."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.errors import ShapezooError
    from shapezoo.fields.evaluation import evaluate_meshes, evaluate_zoo
    from shapezoo.fields.extract import ExtractConfig
    from shapezoo.runtime import resolve_device

    if reference is None or (zoo is None) == (pred is None):
        raise ShapezooError("give --reference MESHES and exactly one of ZOO or --pred DIR")
    dev = resolve_device(device)
    with progress() as bar:
        task = bar.add_task("evaluating", total=None, status="")

        def step(item: dict) -> None:
            bar.update(task, advance=1, status=item["name"] + (" [red]failed" if "error" in item else ""))

        if zoo is not None:
            z = load_zoo(zoo)
            bar.update(task, total=len(parse_names(names) or z.names))
            config = ExtractConfig(resolution=resolution)
            result = evaluate_zoo(z, reference, parse_names(names), config, dev, step, out)
        else:
            assert pred is not None  # exactly one of ZOO and --pred, checked above
            result = evaluate_meshes(pred, reference, dev, step, out)
    s = result["summary"]
    rows = [
        (
            key,
            s[key]["mean"] * (1e3 if key == "chamfer_l2" else 1),
            s[key]["median"] * (1e3 if key == "chamfer_l2" else 1),
            s[key]["worst"][0]["name"],
        )
        for key in s
    ]
    finish(
        f"{len(result['entries'])} scored (CD-L2 x 10^3)",
        ["metric", "mean", "median", "worst"],
        rows,
        {"entries": len(result["entries"]), "summary": s, "failed": result["failed"], "report": str(out)},
        failures=[f["error"] for f in result["failed"]],
    )


@handle_errors
def eval_generation(
    generated: Annotated[Path, typer.Argument(help="Folder of generated meshes (e.g. 'shapezoo sample' output).")],
    reference: Annotated[Path, typer.Option(help="Folder of reference meshes (held-out shapes).")],
    train: Annotated[Path, typer.Option(help="Folder of the training shapes' meshes.")],
    out: Annotated[Path, typer.Option(help="Output folder (generation.json, nearest.png).")] = Path("generation"),
    space: Annotated[
        Path | None,
        typer.Option(help="Space folder: take its test split of --reference and its train split of --train."),
    ] = None,
    points: Annotated[int, typer.Option(help="Surface points per shape.")] = 2048,
    seed: Annotated[int, typer.Option(help="Seed of the surface points.")] = 0,
    device: Device = "auto",
):
    """MMD, COV and 1-NNA (Chamfer) of generated shapes against references, and each one's distance to its nearest
    training shape beside the references' own."""
    from shapezoo.fields.generation import evaluate_generation
    from shapezoo.runtime import resolve_device

    with progress() as bar:
        task = bar.add_task("evaluating", total=None, status="meshes")
        summary = evaluate_generation(
            generated,
            reference,
            train,
            out,
            space,
            points,
            seed,
            resolve_device(device),
            on_stage=lambda stage: bar.update(task, status=stage),
        )
    m, n = summary["metrics"], summary["novelty"]
    finish(
        f"generation metrics in {out}",
        ["MMD x1e3", "COV", "1-NNA", "nearest-train samples x1e3", "nearest-train references x1e3", "ratio"],
        [(1e3 * m["mmd"], m["cov"], m["1-nna"], 1e3 * n["samples_median"], 1e3 * n["reference_median"], n["ratio"])],
        summary,
    )
