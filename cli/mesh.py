"""``shapezoo mesh`` and ``shapezoo eval``: fields to mesh files, and scoring against reference meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, finish, handle_errors, parse_names, progress


@handle_errors
def mesh(
    zoo: Annotated[Path, typer.Argument(help="Zoo folder.")],
    out: Annotated[Path, typer.Option(help="Output folder for NAME.FORMAT files.")],
    resolution: Annotated[int, typer.Option(help="Grid cells per side.")] = 256,
    format: Annotated[str, typer.Option(help="obj, ply, off, stl or glb.")] = "obj",
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (default: all).")] = None,
    dense: Annotated[bool, typer.Option(help="Evaluate the full grid instead of coarse-to-fine.")] = False,
    coarse: Annotated[
        int,
        typer.Option(
            help="First coarse-to-fine level (cells per side); parts thinner than "
            "1/COARSE of the domain can be missed: raise it for thin shapes."
        ),
    ] = 64,
    original_frame: Annotated[bool, typer.Option(help="Map vertices back to the source mesh's frame.")] = False,
    min_component: Annotated[float, typer.Option(help="Drop components below this share of faces.")] = 0.0,
    batch: Annotated[int, typer.Option(help="Fields evaluated together.")] = 8,
    device: Device = "auto",
):
    """Extract a mesh from every field (marching cubes at logit 0) and write it in FORMAT."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.fields.extract import ExtractConfig, mesh_zoo
    from shapezoo.runtime import resolve_device

    config = ExtractConfig(resolution=resolution, coarse=None if dense else coarse, min_component=min_component)
    with progress() as bar:
        task = bar.add_task("meshing", total=None, status="")
        summary = mesh_zoo(
            load_zoo(zoo),
            zoo,
            out,
            config,
            format,
            parse_names(names),
            original_frame,
            batch,
            resolve_device(device),
            on_batch=lambda done, total, name: bar.update(task, completed=done, total=total, status=name),
        )
    for w in summary["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    rows = summary["meshes"]
    finish(
        f"{len(rows)} meshes in {out}",
        ["name", "vertices", "faces"],
        [(r["name"], r["vertices"], r["faces"]) for r in rows[:10]],
        summary,
        summary["failed"],
    )


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
