"""``shapezoo prior train``: a learned prior over a space's latents, to draw new members from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, finish, handle_errors, progress

app = typer.Typer(help="Learned priors over a space's latents: where new members come from.", no_args_is_help=True)


@app.command("train")
@handle_errors
def train(
    space: Annotated[Path, typer.Argument(help="Space folder (fields or classifiers) with its training latents.")],
    out: Annotated[Path, typer.Option(help="Prior folder (created, or resumed when it exists).")],
    family_conditional: Annotated[
        bool, typer.Option("--family-conditional", help="Condition on the members' family / class labels.")
    ] = False,
    steps: Annotated[int, typer.Option(help="Training steps (the checkpoint kept is the best on validation).")] = 1500,
    batch: Annotated[int, typer.Option(help="Latents per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (cosine decay).")] = 1e-3,
    hidden: Annotated[int, typer.Option(help="Width of the velocity network.")] = 512,
    val: Annotated[float, typer.Option(help="Share of the training latents that chooses the checkpoint.")] = 0.1,
    components: Annotated[
        int, typer.Option(help="Model the top N principal directions of the latents (0: every dimension).")
    ] = 0,
    keep: Annotated[
        str,
        typer.Option(
            help="Checkpoint kept: 'last', 'best' on validation, or 'auto' (last for fields, best for classifiers)."
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the model, the validation split and the batches.")] = 0,
    device: Device = "auto",
):
    """Train a flow-matching prior on a space's training latents; a rerun resumes."""
    from shapezoo.core.prior import PriorConfig, train_prior
    from shapezoo.runtime import resolve_device

    config = PriorConfig(
        steps=steps,
        batch=batch,
        lr=lr,
        hidden=hidden,
        val=val,
        components=components,
        keep=keep,
        seed=seed,
        conditional=family_conditional,
    )
    with progress() as bar:
        task = bar.add_task("training prior", total=steps, status="")
        summary = train_prior(
            space,
            out,
            config,
            resolve_device(device),
            on_eval=lambda step, row: bar.update(task, completed=step, status=f"val {row['val']:.4f}"),
        )
    best = summary["best"]
    finish(
        f"prior in {out}",
        ["latents", "labels", "best step", "val loss"],
        [(summary["latents"], len(summary["labels"]), best["step"], best["val"])],
        summary,
    )
