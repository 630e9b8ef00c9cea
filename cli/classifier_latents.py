"""``shapezoo classifiers encode | decode | interpolate | optimize | eval``: moving through a classifier space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Root, finish, handle_errors, parse_names, pct, progress

Refine = Annotated[
    int,
    typer.Option(
        help="Latent refinement steps after the encoder (Adam on z against each model's own predictions "
        "on training images; 300 keeps held-out accuracy within a point in BENCHMARKS.md)."
    ),
]


@handle_errors
def encode(
    zoo: Annotated[Path, typer.Argument(help="Classifier zoo.")],
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    out: Annotated[Path, typer.Option(help="latents.safetensors to write.")],
    names: Annotated[str | None, typer.Option(help="Comma-separated model names (default: all usable).")] = None,
    refine: Refine = 0,
    root: Root = None,
    device: Device = "auto",
):
    """Map a zoo's models to latents (encoder pass, optionally refined against each model's own predictions)."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import encode_zoo
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s, z = load_classifier_space(space, dev), load_zoo(zoo, kind="classifier")
    data = images_for(s.meta, root, dev) if refine else None
    latents, summary = encode_zoo(s, space, z, zoo, out, parse_names(names), refine, data)
    finish(
        f"{summary['latents']} latents in {out}",
        ["latent", "norm"],
        [(i, float(v.norm())) for i, v in enumerate(latents[:10])],
        summary,
    )


@handle_errors
def decode(
    latents: Annotated[Path, typer.Argument(help="latents.safetensors (z: (N, d)).")],
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    out: Annotated[Path, typer.Option(help="New zoo folder for the decoded models.")],
    arch: Annotated[
        str | None, typer.Option(help="Architecture to decode to (default: the decoder's prediction).")
    ] = None,
    root: Root = None,
    device: Device = "auto",
):
    """Decode latents into a classifier zoo (with each model's test accuracy)."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import decode_latents
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    summary = decode_latents(s, space, latents, out, images_for(s.meta, root, dev), arch)
    acc = summary["accuracy_test"]
    finish(
        f"{summary['models']} x {summary['arch']} decoded into {out}",
        ["model", "test acc %"],
        [(i, pct(a)) for i, a in enumerate(acc[:10])],
        summary,
    )


@handle_errors
def interpolate(
    a: Annotated[str, typer.Argument(help="Start model (a name in --zoo).")],
    b: Annotated[str, typer.Argument(help="End model.")],
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    zoo: Annotated[list[Path], typer.Option(help="Zoo(s) holding the models (repeat for several).")],
    out: Annotated[Path, typer.Option(help="Folder for interpolation.json and path.safetensors.")],
    steps: Annotated[int, typer.Option(help="Number of steps, endpoints included.")] = 9,
    mode: Annotated[str, typer.Option(help="lerp or slerp.")] = "lerp",
    root: Root = None,
    device: Device = "auto",
):
    """Test accuracy along the latent path from A to B (and along raw weights when they share an architecture)."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import interpolate_models
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    zoos = [load_zoo(p, kind="classifier") for p in zoo]
    summary = interpolate_models(s, a, b, zoos, zoo, images_for(s.meta, root, dev), out, steps, mode)  # type: ignore[arg-type]
    raw = summary.get("accuracy_raw")
    rows = [
        (i, f"{t:.3f}", arch, pct(acc), pct(raw[i]) if raw else "-")
        for i, (t, arch, acc) in enumerate(zip(summary["t"], summary["arch_latent"], summary["accuracy_latent"]))
    ]
    finish(
        f"{a} -> {b} ({mode}), {steps} steps", ["step", "t", "arch", "latent acc %", "raw-weight acc %"], rows, summary
    )


@handle_errors
def optimize(
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    out: Annotated[Path, typer.Option(help="Folder for the optimised model (a one-model zoo) and optimize.json.")],
    start: Annotated[str, typer.Option(help="'mean' (mean training latent) or a model name in --zoo.")] = "mean",
    zoo: Annotated[Path | None, typer.Option(help="Zoo holding --start / --teacher.")] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to decode (default: the start's, or the first).")
    ] = None,
    teacher: Annotated[
        str | None, typer.Option(help="Distil from this model of --zoo instead of using labels.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    lr: Annotated[float, typer.Option(help="Adam learning rate on z.")] = 0.01,
    root: Root = None,
    device: Device = "auto",
):
    """Optimise a latent for accuracy on the training images; keeps the best by validation accuracy."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import optimize_model
    from shapezoo.classifiers.operations import LatentOptConfig
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    zoos = [load_zoo(zoo, kind="classifier")] if zoo is not None else []
    with progress() as bar:
        task = bar.add_task("optimising", total=steps, status="")
        summary = optimize_model(
            s,
            space,
            out,
            images_for(s.meta, root, dev),
            start,
            zoos,
            arch,
            teacher,
            LatentOptConfig(steps=steps, lr=lr),
            lambda e: bar.update(task, completed=e["step"], status=f"val acc {100 * e['accuracy_val']:.1f}%"),
        )
    finish(
        f"optimised latent ({summary['objective']}) in {out}",
        ["", "test acc %", "val acc %"],
        [
            ("start", pct(summary["accuracy_test_start"]), pct(summary["accuracy_val_start"])),
            ("optimised", pct(summary["accuracy_test_end"]), pct(summary["accuracy_val_end"])),
        ],
        summary,
    )


@handle_errors
def evaluate(
    zoo: Annotated[Path, typer.Argument(help="Classifier zoo.")],
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    out: Annotated[Path, typer.Option(help="eval.json to write.")],
    split: Annotated[str, typer.Option(help="Image split: test (default), val or train.")] = "test",
    refine: Refine = 0,
    root: Root = None,
    device: Device = "auto",
):
    """Original vs decoded (encode -> decode) accuracy per model; summary per role in the space's training."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import evaluate_to_file
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    result = evaluate_to_file(
        s, load_zoo(zoo, kind="classifier"), zoo, images_for(s.meta, root, dev), out, split, refine
    )
    rows = [(r["name"], r["role"], pct(r["accuracy_original"]), pct(r["accuracy_decoded"])) for r in result["models"]]
    rows += [
        (
            f"[{role}]",
            f"{v['models']} models",
            f"gap {v['mean_abs_gap_points']:.2f} pt",
            f"Spearman {v['spearman']:.3f}" if v["spearman"] is not None else "-",
        )
        for role, v in result["summary"].items()
    ]
    finish(f"{zoo} through {space} ({split} images)", ["name", "role", "original %", "decoded %"], rows, result)


@handle_errors
def sample(
    space: Annotated[Path, typer.Option(help="Classifier space folder.")],
    out: Annotated[Path, typer.Option(help="New zoo folder for the sampled models.")],
    count: Annotated[int, typer.Option(help="Number of new models.")] = 16,
    prior: Annotated[
        str,
        typer.Option(help="'gaussian' (fitted to the training latents) or a prior folder ('shapezoo prior train')."),
    ] = "gaussian",
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    arch: Annotated[
        str | None, typer.Option(help="Architecture to decode to (default: the decoder's prediction).")
    ] = None,
    zoo: Annotated[
        Path | None, typer.Option(help="Training zoo: report each model's disagreement with its nearest one.")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Scale of the starting noise (< 1: more typical, less varied models; default: the prior's)."),
    ] = None,
    root: Root = None,
    device: Device = "auto",
):
    """Draw new models from a prior over the space's training latents into a zoo, with their test accuracy."""
    from shapezoo.classifiers.data import images_for
    from shapezoo.classifiers.jobs import sample_models
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.core.zoo import load_zoo
    from shapezoo.runtime import resolve_device

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    train = load_zoo(zoo, kind="classifier") if zoo is not None else None
    summary = sample_models(s, space, count, out, images_for(s.meta, root, dev), prior, seed, arch, train, temperature)
    rows = [
        (r["name"], pct(r["accuracy_test"]), pct(r["disagreement_to_nearest_training"]) if zoo else "-")
        for r in summary["samples"][:10]
    ]
    finish(
        f"{count} x {summary['arch']} sampled into {out}",
        ["model", "test acc %", "disagreement to nearest training %"],
        rows,
        summary,
    )
