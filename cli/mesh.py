"""``shapezoo mesh``: fields to mesh files (marching cubes on a coarse-to-fine grid)."""

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
            help="First coarse-to-fine level (cells per side); a part thinner than 1/COARSE of the domain "
            "and attached to nothing thicker can be missed: raise it for tiny floating parts."
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
