"""``shapezoo probe``: classify and retrieve members from their latents, raw weights or PCA, k-fold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors, parse_names


@handle_errors
def probe(
    latents: Annotated[
        Path,
        typer.Argument(help="latents.safetensors (from encode, or a space's train latents), or an image zoo folder."),
    ],
    task: Annotated[str, typer.Option(help="classify, retrieve or both (comma-separated).")] = "classify,retrieve",
    features: Annotated[
        str,
        typer.Option(
            help="latents, weights (raw), pca (of the weights, fitted per training fold), d2 (shape distributions of"
            " the meshes: the point-cloud baseline); for an image zoo weights, pca, stats (StatNN's weight"
            " statistics) and queries (the fields' outputs at learned coordinates), all by default; comma-separated."
        ),
    ] = "latents",
    zoo: Annotated[Path | None, typer.Option(help="Zoo of the weights and labels (default: the one encoded).")] = None,
    folds: Annotated[int, typer.Option(help="Stratified folds (every member scored once, unseen).")] = 5,
    train: Annotated[
        str | None,
        typer.Option(
            help="Fit on these latents and score LATENTS, no folds: a latents file, a space folder (its training "
            "members) or 'default' (the pretrained space's, labelled by family and CAPOD class)."
        ),
    ] = None,
    train_zoo: Annotated[
        Path | None, typer.Option(help="Zoo of the --train members' weights (default: --zoo, else the one encoded).")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="CSV of name,label (default: recorded in the latents/zoo).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the MLP.")] = 0,
    queries: Annotated[
        int, typer.Option(help="Image zoos: learned coordinates the query reader evaluates each field at.")
    ] = 128,
    readers: Annotated[
        int, typer.Option(help="Image zoos: query readers trained from successive seeds, probabilities averaged.")
    ] = 1,
    reader_epochs: Annotated[int, typer.Option(help="Image zoos: training epochs of each query reader.")] = 30,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
):
    """k-fold linear and MLP classification and retrieval (mAP, precision@k) of the members' classes."""
    from shapezoo.core.kfold import ProbeConfig
    from shapezoo.core.latents import LATENTS_FILE
    from shapezoo.fields.meshes import read_labels
    from shapezoo.fields.pretrained import resolve_space
    from shapezoo.fields.probing import probe_latents

    if (latents / "zoo.json").is_file():  # an image zoo: its fields' weights, not latents
        from shapezoo.images.readers import ReaderConfig

        from .images import probe_images

        chosen_features = None if features == "latents" else features
        reader = ReaderConfig(queries=queries, readers=readers, epochs=reader_epochs, seed=seed)
        probe_images(latents, train, chosen_features, folds, seed, out, tuple(parse_names(task) or ()), reader)
        return
    tasks, kinds = tuple(parse_names(task) or ()), tuple(parse_names(features) or ())
    config = ProbeConfig(folds=folds, seed=seed)
    chosen = read_labels(labels) if labels else None
    fitted = resolve_space(train) if train is not None else None
    if fitted is not None and fitted.is_dir():
        fitted = fitted / LATENTS_FILE
    result = probe_latents(
        latents, tasks, kinds, zoo, config, out=out, train=fitted, labels=chosen, train_zoo=train_zoo
    )
    rows = []
    for f in kinds:
        c, r = result[f].get("classify", {}), result[f].get("retrieve", {}).get("cosine", {})
        rows.append(
            (f, c.get("linear_accuracy", "-"), c.get("mlp_accuracy", "-"), r.get("map", "-"), r.get("p@1", "-"))
        )
    finish(
        f"{result['members']} members ({result['scored']} scored), {len(result['classes'])} classes,"
        f" folds: {result['folds']}",
        ["features", "linear acc", "MLP acc", "mAP (cosine)", "P@1"],
        rows,
        result,
    )
