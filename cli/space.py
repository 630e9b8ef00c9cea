"""``shapezoo space train`` and ``shapezoo space info``: weight spaces of field zoos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Distributed, finish, handle_errors, training_run

app = typer.Typer(help="Train and inspect weight spaces (latent spaces of field zoos).", no_args_is_help=True)


@app.command("train")
@handle_errors
def train(
    zoo: Annotated[Path, typer.Argument(help="Field zoo (occupancy or image fields) to learn the space of.")],
    out: Annotated[Path, typer.Option(help="Space folder (created, or resumed when it exists).")],
    design: Annotated[
        str,
        typer.Option(
            help="auto (shift for a zoo fitted from a shift base, pca for image fields of a shared start, else "
            "neuron), shift (exact for such zoos), neuron (learned, permutation-invariant), prep (the paper's "
            "baseline) or pca (the training fields' principal directions)."
        ),
    ] = "auto",
    latent: Annotated[int, typer.Option(help="Latent size (shift: the count of entries a field moves).")] = 512,
    trunk: Annotated[
        int, typer.Option(help="Width of the neuron decoder's MLP before its heads (0: weights affine in z).")
    ] = 0,
    codes: Annotated[
        bool, typer.Option(help="Learn a code per training field with the decoder (auto-decoding) or autoencode.")
    ] = True,
    epochs: Annotated[int, typer.Option(help="Passes over the training fields.")] = 400,
    batch: Annotated[int, typer.Option(help="Fields per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    weight_loss: Annotated[float, typer.Option(help="Weight of the normalised weight-MSE term.")] = 0.05,
    points: Annotated[int, typer.Option(help="Query points per field and step.")] = 2048,
    val: Annotated[float, typer.Option(help="Validation share of the fields (best checkpoint).")] = 0.1,
    test: Annotated[float, typer.Option(help="Held-out share of the fields (never trained on).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the model and the data order.")] = 0,
    train_limit: Annotated[
        int, typer.Option(help="Train on this many of the training fields (random subset; 0: all), for curves.")
    ] = 0,
    device: Device = "auto",
    distributed: Distributed = False,
):
    """Train an encoder/decoder of field weights with a functional loss; keeps the best validation checkpoint."""
    from shapezoo.core.zoo import load_zoo
    from shapezoo.fields.space import ModelConfig, TrainConfig, train_space
    from shapezoo.fields.space.objective import SPACE_KINDS, functional_of
    from shapezoo.fields.space.train import FIXED, default_design, design_reason

    z = load_zoo(zoo, SPACE_KINDS)
    functional = functional_of(z.spec)  # field IoU, or PSNR for image fields
    score, label = functional.score_name, functional.score_label
    model = ModelConfig(design=design, latent=latent, trunk=trunk)  # type: ignore[arg-type]
    config = TrainConfig(
        epochs=epochs,
        batch=batch,
        lr=lr,
        weight_loss=weight_loss,
        points=points,
        val=val,
        test=test,
        seed=seed,
        codes=codes,
        train_limit=train_limit,
    )
    with training_run(distributed, device) as (dev, bar):
        typer.echo(design_reason(z, design), err=True)
        fixed = (default_design(z) if design == "auto" else design) in FIXED  # nothing to train: no bar
        task = bar.add_task("training", total=epochs, status="") if bar and not fixed else None

        def on_eval(entry: dict) -> None:
            tr, v = entry["train"], entry.get("val") or entry["train_eval"]
            bar.update(
                task,
                completed=entry["epoch"],
                status=f"functional {tr['functional']:.4f} weight {tr['weight']:.3f} | "
                f"val functional {v['functional']:.4f} {label} {v[score + '_median']:.3f}",
            )

        summary = train_space(z, out, model, config, dev, on_eval)
    if summary is None:  # a rank other than 0: rank 0 reports
        return
    rows = [(k, r["functional"], r[f"{score}_median"], r[f"{score}_mean"]) for k, r in summary["results"].items()]
    finish(
        f"space {out} ({summary['design']}, latent {summary['latent']}; best epoch {summary['best_epoch']})",
        ["split", "functional", f"{label} median", f"{label} mean"],
        rows,
        summary,
    )


@app.command("info")
@handle_errors
def info(
    space: Annotated[str, typer.Argument(help="Space folder, or 'default' (the pretrained space and its model card).")],
):
    """Print a space's architecture, design, splits and results (and, for 'default', its model card)."""
    import json

    from shapezoo.fields import pretrained
    from shapezoo.fields.space import load_space

    record = load_space(pretrained.resolve_space(space)).info()
    if space == pretrained.DEFAULT:
        card = pretrained.card()
        record["model_card"] = {k: v for k, v in card.items() if k not in ("files", "environment")}
        record["model_card"]["data"] = {k: v for k, v in card["data"].items() if k != "shapes"}
        record["model_card"]["file"] = str(pretrained.PRETRAINED / pretrained.CARD_MD)
    typer.echo(json.dumps(record, indent=1))
