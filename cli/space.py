"""``shapezoo space``, ``encode``, ``decode``, ``interpolate``, ``optimize``, ``sample``: the latent space of fields."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import Device, Distributed, SpaceOption, finish, handle_errors, parse_names, progress, training_run

app = typer.Typer(help="Train and inspect weight spaces (latent spaces of field zoos).", no_args_is_help=True)
Refine = Annotated[
    int,
    typer.Option(
        help="Latent-optimisation steps after the encoder, against each field's own function (0: encoder only)."
    ),
]


@app.command("train")
@handle_errors
def train(
    zoo: Annotated[Path, typer.Argument(help="Field zoo to learn the space of.")],
    out: Annotated[Path, typer.Option(help="Space folder (created, or resumed when it exists).")],
    design: Annotated[
        str,
        typer.Option(
            help="auto (shift for a zoo fitted from a shift base, else neuron), shift (exact for such zoos), neuron "
            "(learned, permutation-invariant) or prep (the paper's baseline)."
        ),
    ] = "auto",
    latent: Annotated[int, typer.Option(help="Latent size (shift: the bias count).")] = 512,
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
    from shapezoo.fields.space.train import default_design, design_reason

    z = load_zoo(zoo)
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
        shift = (default_design(z) if design == "auto" else design) == "shift"  # nothing to train: no bar
        task = bar.add_task("training", total=epochs, status="") if bar and not shift else None

        def on_eval(entry: dict) -> None:
            tr, v = entry["train"], entry.get("val") or entry.get("train_eval")
            bar.update(
                task,
                completed=entry["epoch"],
                status=f"functional {tr['functional']:.4f} weight {tr['weight']:.3f} | "
                f"val functional {v['functional']:.4f} field IoU {v['field_iou_median']:.3f}",
            )

        summary = train_space(z, out, model, config, dev, on_eval)
    if summary is None:  # a rank other than 0: rank 0 reports
        return
    rows = [(k, r["functional"], r["field_iou_median"], r["field_iou_mean"]) for k, r in summary["results"].items()]
    finish(
        f"space {out} ({summary['design']}, latent {summary['latent']}; best epoch {summary['best_epoch']})",
        ["split", "functional", "field IoU median", "field IoU mean"],
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

    from shapezoo import pretrained
    from shapezoo.fields.space import load_space

    record = load_space(pretrained.resolve_space(space)).info()
    if space == pretrained.DEFAULT:
        card = pretrained.card()
        record["model_card"] = {k: v for k, v in card.items() if k not in ("files", "environment")}
        record["model_card"]["data"] = {k: v for k, v in card["data"].items() if k != "shapes"}
        record["model_card"]["file"] = str(pretrained.PRETRAINED / pretrained.CARD_MD)
    typer.echo(json.dumps(record, indent=1))


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
        int,
        typer.Option(
            help="Meshes only: fitting steps per shape (0: the zoo's recipe; a third of it when the space refines)."
        ),
    ] = 0,
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
        float,
        typer.Option(help="Scale of the starting noise (< 1: more typical, less varied members; 0: the prior's own)."),
    ] = 0.0,
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
            temperature=temperature or None,
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
