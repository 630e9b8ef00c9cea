"""``shapezoo encode`` and ``shapezoo decode``: fields or meshes to latents of a space, and latents back to a zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, SpaceOption, finish, handle_errors, parse_names

Refine = Annotated[
    int,
    typer.Option(
        help="Latent-optimisation steps after the encoder, against each field's own function (0: encoder only)."
    ),
]


@handle_errors
def encode(
    source: Annotated[
        Path, typer.Argument(help="A field zoo, or a mesh file or folder of meshes (sampled and fitted first).")
    ],
    out: Annotated[Path, typer.Option(help="latents.safetensors to write.")],
    space: SpaceOption = "default",
    names: Annotated[str | None, typer.Option(help="Comma-separated field names (default: all usable).")] = None,
    refine: Refine = 100,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Meshes only: fitting steps per shape (default: the zoo's recipe; a third of it when the space "
            "refines)."
        ),
    ] = None,
    device: Device = "auto",
):
    """Map fields to latents (encoder pass, optionally refined against each field's own function).

    Meshes are sampled and fitted (batched, from the start point and with the recipe of the space's zoo) first.
    """
    from shapezoo.fields.pretrained import resolve_space
    from shapezoo.fields.space import load_space
    from shapezoo.fields.space.jobs import encode_source
    from shapezoo.runtime import resolve_device

    folder = resolve_space(space)
    dev = resolve_device(device)
    s = load_space(folder, dev)
    latents, summary = encode_source(
        s, folder, source, out, parse_names(names), refine, steps, dev, lambda stage: typer.echo(stage, err=True)
    )
    for line in summary["skipped"]:
        typer.echo(f"warning: skipped {line}", err=True)
    finish(
        f"{summary['latents']} latents in {out}",
        ["latent", "norm"],
        [(i, float(v.norm())) for i, v in enumerate(latents[:10])],
        summary,
        failures=summary["failed"],
    )


@handle_errors
def decode(
    latents: Annotated[Path, typer.Argument(help="latents.safetensors (z: (N, d)).")],
    out: Annotated[Path, typer.Option(help="New zoo folder for the decoded fields.")],
    space: SpaceOption = "default",
    device: Device = "auto",
):
    """Decode latents into a field zoo (mesh, eval and encode work on it like on any zoo)."""
    from shapezoo.fields.pretrained import resolve_space
    from shapezoo.fields.space import load_space
    from shapezoo.fields.space.jobs import decode_latents
    from shapezoo.runtime import resolve_device

    folder = resolve_space(space)
    summary = decode_latents(load_space(folder, resolve_device(device)), folder, latents, out)
    title = f"{out}: nothing to do" if "skipped" in summary else f"{summary['fields']} fields decoded into {out}"
    finish(title, ["zoo", "fields"], [(str(out), summary["fields"])], summary)
