"""``shapezoo classifiers``: image-classifier zoos and their weight spaces (``zoo``, ``space train|info``; the
latent commands live in ``classifier_latents``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import classifier_latents as latents
from ._common import Device, Distributed, Root, finish, handle_errors, parse_names, pct, progress, training_run

app = typer.Typer(
    help="Image-classifier zoos and their weight spaces (the paper's classification setting).", no_args_is_help=True
)
space_app = typer.Typer(help="Train and inspect classifier spaces.", no_args_is_help=True)
app.add_typer(space_app, name="space")


@app.command("zoo")
@handle_errors
def zoo(
    out: Annotated[Path, typer.Option(help="Zoo folder (created, or resumed when it exists).")],
    arch: Annotated[str, typer.Option(help="mlp, lenet, cnn or resnet, optionally -WIDTH (e.g. lenet-8).")] = "lenet",
    data: Annotated[str, typer.Option(help="digits (bundled), fashion-mnist, mnist or cifar10.")] = "digits",
    root: Root = None,
    count: Annotated[int, typer.Option(help="Models in the zoo.")] = 64,
    batch: Annotated[int, typer.Option(help="Models trained together per job.")] = 32,
    steps_min: Annotated[int, typer.Option(help="Shortest training (steps); lengths are log-uniform.")] = 20,
    steps_max: Annotated[int, typer.Option(help="Longest training (steps).")] = 800,
    lr_min: Annotated[float, typer.Option(help="Lowest Adam learning rate (log-uniform).")] = 1e-3,
    lr_max: Annotated[float, typer.Option(help="Highest Adam learning rate.")] = 3e-3,
    images: Annotated[int, typer.Option(help="Images per model per step.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the per-model hyperparameters and data orders.")] = 0,
    init_seed: Annotated[int, typer.Option(help="Seed of the shared initial weights.")] = 0,
    device: Device = "auto",
):
    """Train N classifiers in batched jobs (varied seeds, lengths and learning rates) into a zoo."""
    from shapezoo.classifiers.archs import parse_arch
    from shapezoo.classifiers.data import load_images
    from shapezoo.classifiers.zoo import ZooConfig, train_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    images_data = load_images(data, root).to(dev)
    spec = parse_arch(arch, images_data.in_shape, images_data.classes)
    config = ZooConfig(
        count=count,
        batch=batch,
        steps=(steps_min, steps_max),
        lr=(lr_min, lr_max),
        images=images,
        seed=seed,
        init_seed=init_seed,
    )
    data_meta = {"name": data, **({"root": str(Path(root).resolve())} if root else {})}
    with progress() as bar:
        task = bar.add_task(f"training {spec.name}", total=count, status="")
        summary = train_zoo(
            spec,
            images_data,
            out,
            config,
            data_meta,
            lambda done, total: bar.update(task, completed=count - total + done),
        )
    acc = summary["accuracy_test"]
    finish(
        f"zoo {out}: {summary['models']} x {spec.name} on {data}",
        ["models", "params", "test acc mean %", "min %", "max %", "models/hour"],
        [
            (
                summary["models"],
                summary["parameters_per_model"],
                pct(acc.get("mean")),
                pct(acc.get("min")),
                pct(acc.get("max")),
                summary["timing"]["models_per_hour"] or "-",
            )
        ],
        summary,
    )


@space_app.command("train")
@handle_errors
def train(
    zoos: Annotated[list[Path], typer.Argument(help="Classifier zoos (one per architecture) on the same images.")],
    out: Annotated[Path, typer.Option(help="Space folder (created, or resumed when it exists).")],
    archs: Annotated[
        str | None,
        typer.Option(
            help="Ordered architectures of the space, comma-separated (default: the zoos'). List widths without a zoo "
            "between the first and last to learn to generate them (e.g. lenet-4,lenet-6,lenet-8,lenet-10,lenet-12)."
        ),
    ] = None,
    latent: Annotated[int, typer.Option(help="Latent size.")] = 64,
    hidden: Annotated[int, typer.Option(help="Encoder/decoder width.")] = 256,
    basis: Annotated[
        int, typer.Option(help="Principal directions per kind the encoder reads and decoder writes (0: all weights).")
    ] = 256,
    epochs: Annotated[int, typer.Option(help="Passes over the training models.")] = 300,
    batch: Annotated[int, typer.Option(help="Models per step.")] = 16,
    images: Annotated[int, typer.Option(help="Training images per step.")] = 128,
    temperature: Annotated[float, typer.Option(help="Distillation temperature (paper: 4).")] = 4.0,
    weight_loss: Annotated[float, typer.Option(help="Weight of the normalised weight-MSE term.")] = 0.05,
    val: Annotated[float, typer.Option(help="Validation share of the models.")] = 0.1,
    test: Annotated[float, typer.Option(help="Held-out share of the models.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the model and the data order.")] = 0,
    root: Root = None,
    device: Device = "auto",
    distributed: Distributed = False,
):
    """Learn one latent space of the zoos' models with the distillation loss; keeps the best validation checkpoint."""
    from shapezoo.classifiers.archs import parse_arch
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.space import SpaceConfig
    from shapezoo.classifiers.train import SpaceTrainConfig, train_classifier_space
    from shapezoo.core.zoo import load_zoo

    loaded = [load_zoo(z, kind="classifier") for z in zoos]
    config = SpaceTrainConfig(
        epochs=epochs,
        batch=batch,
        images=images,
        temperature=temperature,
        weight_loss=weight_loss,
        val=val,
        test=test,
        seed=seed,
    )
    with training_run(distributed, device) as (dev, bar):
        task = bar.add_task("training", total=epochs, status="") if bar else None
        data = images_for(loaded[0].meta, root, dev)
        order = [parse_arch(a, data.in_shape, data.classes) for a in parse_names(archs) or []] if archs else None

        def on_eval(entry: dict) -> None:
            tr, v = entry["train"], entry["select"]
            terms = " ".join(f"{k} {tr[k]:.4f}" for k in ("distill", "weight", "arch", "interp") if k in tr)
            bar.update(
                task,
                completed=entry["epoch"],
                status=f"{terms} | {v['split']} distill {v['distill']:.4f} gap {v['mean_abs_gap_points']:.2f} pt",
            )

        summary = train_classifier_space(
            loaded, data, out, order, SpaceConfig(latent=latent, hidden=hidden, basis=basis), config, on_eval
        )
    if summary is None:  # a rank other than 0: rank 0 reports
        return
    rows = [
        (split, arch, r["mean_abs_gap_points"], r["spearman"] if r["spearman"] is not None else "-", r["arch_accuracy"])
        for split, per in summary["results"].items()
        for arch, r in per.items()
    ]
    finish(
        f"space {out} (latent {latent}; best epoch {summary['best_epoch']})",
        ["models", "arch", "|acc gap| pt", "Spearman", "arch head acc"],
        rows,
        summary,
    )


@space_app.command("info")
@handle_errors
def info(space: Annotated[Path, typer.Argument(help="Space folder.")]):
    """Print a space's architectures, sizes, data and results."""
    import json

    from shapezoo.classifiers.space import load_classifier_space

    typer.echo(json.dumps(load_classifier_space(space).info(), indent=1))


@app.command("probe")
@handle_errors
def probe(
    latents: Annotated[Path, typer.Argument(help="Latents of classifiers (classifiers encode).")],
    zoo: Annotated[Path | None, typer.Option(help="Their zoo (default: the one encoded).")] = None,
    target: Annotated[str, typer.Option(help="Metric to predict, as the zoo records it.")] = "accuracy_test",
    folds: Annotated[int, typer.Option(help="Folds (every model predicted once, unseen).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the trees.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    train: Annotated[
        Path | None,
        typer.Option(help="Fit on these latents (other models, e.g. the space's training members); no folds."),
    ] = None,
    scale: Annotated[
        str, typer.Option(help="Target scale of the regressors: logit, raw, or auto (logit for accuracy_* targets).")
    ] = "auto",
):
    """Predict each model's accuracy from its latent, beside the StatNN baseline (weight statistics -> trees), and
    say how well re-measuring the same models (accuracy_val for accuracy_test) ranks them (the target's noise)."""
    from shapezoo.classifiers.accuracy_probe import probe_accuracy

    result = probe_accuracy(latents, zoo, target, folds, seed, out, train, scale)
    rows = [
        (features, model, r["kendall_tau"], r["r2"])
        for features in ("latent", "statnn")
        for model, r in result[features].items()
    ]
    again = result["remeasured"]
    if again is not None:
        rows.append((again["measure"], "(measured)", again["kendall_tau"], again["r2"]))
    finish(
        f"{result['models']} models, {target} on a {result['scale']} scale, "
        + (f"{folds} folds" if train is None else f"fitted on {train.name}"),
        ["features", "regressor", "Kendall tau", "R^2"],
        rows,
        result,
    )


for _name in ("encode", "decode", "interpolate", "optimize", "sample"):
    app.command(_name)(getattr(latents, _name))
app.command("eval")(latents.evaluate)
