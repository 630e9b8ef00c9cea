"""``shapezoo optimize``: the latent whose decode fits a partial or noisy point cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, SpaceOption, finish, handle_errors, progress


@handle_errors
def optimize(
    points: Annotated[Path, typer.Option(help="Partial/noisy point cloud (.ply with optional normals, .xyz, .npy).")],
    out: Annotated[Path, typer.Option(help="Output folder (completed.obj, optimize.json, latent.safetensors).")],
    space: SpaceOption = "default",
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    lr: Annotated[float, typer.Option(help="Adam step size in whitened latent units.")] = 0.05,
    prior: Annotated[
        float | None, typer.Option(help="Gaussian latent prior weight (default: the space design's measured one).")
    ] = None,
    normalise: Annotated[bool, typer.Option(help="Centre and scale the points into the frame.")] = False,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    device: Device = "auto",
):
    """Find the latent whose decoded field best explains a point cloud (shape completion) and mesh it."""
    from shapezoo.fields.extract import ExtractConfig
    from shapezoo.fields.pretrained import resolve_space
    from shapezoo.fields.space import OptimizeConfig, load_space
    from shapezoo.fields.space.jobs import complete_points
    from shapezoo.runtime import resolve_device

    folder = resolve_space(space)
    s = load_space(folder, resolve_device(device))
    with progress() as bar:
        task = bar.add_task("optimising", total=steps, status="")
        summary = complete_points(
            s,
            folder,
            points,
            out,
            OptimizeConfig(steps=steps, lr=lr, prior=prior),
            normalise,
            ExtractConfig(resolution=resolution),
            on_step=lambda i, h: bar.update(task, completed=i + 1, status=f"evidence {h['evidence']:.4f}"),
        )
    history = summary["history"]
    finish(
        f"completed shape in {out}",
        ["step", "evidence", "prior"],
        [(h["step"], h["evidence"], h["prior"]) for h in history[:: max(1, len(history) // 8)]],
        summary,
    )
