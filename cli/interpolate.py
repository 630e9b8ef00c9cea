"""``shapezoo interpolate``: a path through a space between two fields or meshes, as meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, SpaceOption, finish, handle_errors, progress
from .encode import Refine


@handle_errors
def interpolate(
    a: Annotated[str, typer.Argument(help="Start: a field name in --zoo, or a mesh file (fitted on the fly).")],
    b: Annotated[str, typer.Argument(help="End: a field name in --zoo, or a mesh file.")],
    out: Annotated[Path, typer.Option(help="Folder for step_NN.obj files and interpolation.json.")],
    space: SpaceOption = "default",
    zoo: Annotated[Path | None, typer.Option(help="Zoo holding the named fields.")] = None,
    steps: Annotated[int, typer.Option(help="Number of steps, endpoints included.")] = 8,
    mode: Annotated[str, typer.Option(help="lerp or slerp (latent interpolation).")] = "lerp",
    weights: Annotated[bool, typer.Option("--weights", help="Interpolate raw weights instead (baseline).")] = False,
    refine: Refine = 100,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    device: Device = "auto",
):
    """Walk from A to B through the latent space (or raw weights) and mesh every step."""
    from shapezoo.fields.extract import ExtractConfig
    from shapezoo.fields.pretrained import resolve_space
    from shapezoo.fields.space import load_space
    from shapezoo.fields.space.jobs import interpolate_to_folder
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_space(resolve_space(space), dev)
    with progress() as bar:
        task = bar.add_task("interpolating", total=3, status="endpoints")
        summary = interpolate_to_folder(
            s,
            a,
            b,
            out,
            zoo,
            steps,
            mode,  # type: ignore[arg-type]
            weights,
            refine,
            ExtractConfig(resolution=resolution),
            dev,
            on_stage=lambda stage: bar.update(task, advance=1, status=stage),
        )
    rows = summary["steps"]
    finish(
        f"{summary['a']['name']} -> {summary['b']['name']} ({summary['mode']}), {steps} steps in {out}",
        ["step", "volume", "faces", "CD-L2 to A x1e3", "CD-L2 to B x1e3"],
        [
            (
                r["step"],
                r["volume"],
                r["faces"],
                1e3 * r.get("chamfer_l2_to_start", float("nan")),
                1e3 * r.get("chamfer_l2_to_end", float("nan")),
            )
            for r in rows
        ],
        summary,
    )
