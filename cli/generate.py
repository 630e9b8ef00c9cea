"""``shapezoo prior train`` and ``shapezoo eval-generation``: a learned prior over a space's latents, and the
generation metrics (quality and novelty) of what it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, finish, handle_errors, progress

prior_app = typer.Typer(
    help="Learned priors over a space's latents: where new members come from.", no_args_is_help=True
)


@prior_app.command("train")
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
