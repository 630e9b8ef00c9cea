"""``shapezoo sample``: new members drawn from a space's prior, as meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, SpaceOption, finish, handle_errors, progress

SCREEN = 4
"""Draws per sampled member by default (``sample_members``'s ``screen``)."""


@handle_errors
def sample(
    space: SpaceOption = "default",
    count: Annotated[int, typer.Option(help="Number of new members.")] = 8,
    out: Annotated[Path, typer.Option(help="Output folder (sample_NN.obj, sample.json, latents.safetensors).")] = Path(
        "samples_out"
    ),
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    resolution: Annotated[int, typer.Option(help="Extraction grid cells per side.")] = 128,
    prior: Annotated[
        str,
        typer.Option(
            help="auto (the learned prior kept in the space folder as SPACE/prior, as the default space ships one, "
            "else gaussian), gaussian (fitted to the training latents), default, or a prior folder ('prior train')."
        ),
    ] = "auto",
    family: Annotated[str | None, typer.Option(help="Draw members of this family / class only.")] = None,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance of a family-conditional prior.")] = 1.0,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Scale of the starting noise (< 1: more typical, less varied members; default: the prior's)."
        ),
    ] = None,
    screen: Annotated[
        int,
        typer.Option(
            help="Draws per member: keep the first whose mesh has at most 2 pieces (the fewest if none has); 1 keeps "
            "every draw as it comes."
        ),
    ] = SCREEN,
    device: Device = "auto",
):
    """Draw new members from a prior over the training latents; report how close each is to training."""
    from shapezoo.fields.extract import ExtractConfig
    from shapezoo.fields.pretrained import resolve_prior, resolve_space
    from shapezoo.fields.space import load_space
    from shapezoo.fields.space.jobs import sample_members
    from shapezoo.runtime import resolve_device

    folder = resolve_space(space)
    dev = resolve_device(device)
    s = load_space(folder, dev)
    with progress() as bar:
        task = bar.add_task("sampling", total=count, status="")
        summary = sample_members(
            s,
            folder,
            count,
            out,
            seed,
            ExtractConfig(resolution=resolution),
            dev,
            on_member=lambda name: bar.update(task, advance=1, status=name),
            prior=resolve_prior(prior, folder),
            family=family,
            guidance=guidance,
            temperature=temperature,
            screen=screen,
        )
    finish(
        f"{count} samples in {out}",
        ["name", "faces", "nearest shape", "CD-L2 x1e3", "latent dist"],
        [
            (
                r["name"],
                r["faces"],
                r.get("nearest_shape", "-"),
                1e3 * r.get("chamfer_l2_to_nearest_shape", float("nan")),
                r.get("latent_distance", float("nan")),
            )
            for r in summary["samples"]
        ],
        summary,
    )
