"""``shapezoo classifiers``: image-classifier zoos and their weight spaces (zoo, space, encode, decode,
interpolate, optimize, eval)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors, parse_names, progress
from .fit import resolve_device

app = typer.Typer(
    help="Image-classifier zoos and their weight spaces (the paper's classification setting).", no_args_is_help=True
)
space_app = typer.Typer(help="Train and inspect classifier spaces.", no_args_is_help=True)
app.add_typer(space_app, name="space")

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Root = Annotated[Path | None, typer.Option(help="Dataset folder (default: the one recorded in the zoo/space).")]
Refine = Annotated[
    int,
    typer.Option(
        help="Latent refinement steps after the encoder (Adam on z against each model's own predictions "
        "on training images)."
    ),
]


def _data(meta: dict, root: Path | None, device):
    """The image dataset a zoo or space was made with (its name and folder are recorded in ``meta['data']``)."""
    from shapezoo.classifiers.data import load_images

    info = meta.get("data") or {"name": "digits"}
    return load_images(info["name"], root or info.get("root")).to(device)


def _zoo(path: Path):
    from shapezoo.zoo import load_zoo

    return load_zoo(path, kind="classifier")


def _space_and_zoo(space: Path, zoo: Path, device: str):
    """(device, space, zoo), with the zoo's architecture checked against the space's."""
    from shapezoo.classifiers.space import load_classifier_space

    dev = resolve_device(device)
    s, z = load_classifier_space(space, dev), _zoo(zoo)
    s.arch_index(z.spec, zoo)
    return dev, s, z


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


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
                _pct(acc.get("mean")),
                _pct(acc.get("min")),
                _pct(acc.get("max")),
                summary["models_per_hour"] or "-",
            )
        ],
        summary,
        Path(out) / "train_summary.json",
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
):
    """Learn one latent space of the zoos' models with the distillation loss; keeps the best validation checkpoint."""
    import json

    from shapezoo.classifiers.archs import parse_arch
    from shapezoo.classifiers.space import SpaceConfig
    from shapezoo.classifiers.train import SpaceTrainConfig, train_classifier_space
    from shapezoo.errors import ShapezooError

    dev = resolve_device(device)
    loaded = [_zoo(z) for z in zoos]
    infos = {json.dumps(z.meta.get("data"), sort_keys=True) for z in loaded}
    if len(infos) != 1:
        raise ShapezooError("the zoos were trained on different datasets")
    data = _data(loaded[0].meta, root, dev)
    order = [parse_arch(a, data.in_shape, data.classes) for a in parse_names(archs)] if archs else None
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
    with progress() as bar:
        task = bar.add_task("training", total=epochs, status="")

        def on_eval(entry: dict) -> None:
            tr, v = entry["train"], entry["select"]
            terms = " ".join(f"{k} {tr[k]:.4f}" for k in ("distill", "weight", "arch", "interp") if k in tr)
            bar.update(
                task,
                completed=entry["epoch"],
                status=f"{terms} | {v['split']} distill {v['distill']:.4f} gap {v['mean_abs_gap_points']:.2f} pt",
            )

        summary = train_classifier_space(
            loaded, data, out, order, SpaceConfig(latent=latent, hidden=hidden), config, on_eval
        )
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
        Path(out) / "train_summary.json",
    )


@space_app.command("info")
@handle_errors
def info(space: Annotated[Path, typer.Argument(help="Space folder.")]):
    """Print a space's architectures, sizes, data and results."""
    import json

    from shapezoo.classifiers.space import load_classifier_space

    s = load_classifier_space(space)
    typer.echo(
        json.dumps(
            {
                "archs": [a.name for a in s.archs],
                "latent": s.latent_size,
                "data": s.meta.get("data"),
                "best": s.meta.get("best"),
                "results": s.meta.get("results"),
            },
            indent=1,
        )
    )


@app.command("encode")
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
    import torch

    from shapezoo.classifiers.explore import encode_models
    from shapezoo.errors import ShapezooError
    from shapezoo.space import save_latents

    dev, s, z = _space_and_zoo(space, zoo, device)
    wanted = parse_names(names) or [n for n in z.names if z.unusable(n) is None]
    for n in wanted:
        if problem := z.unusable(n):
            raise ShapezooError(problem)
    params = torch.stack([z.weights(n) for n in wanted]) if wanted else torch.zeros(0, z.spec.layout().size)
    data = _data(s.meta, root, dev) if refine else None
    latents = encode_models(s, z.spec, params, data, refine) if refine else s.encode(z.spec, params)
    save_latents(out, latents, wanted, {"space": str(space), "zoo": str(zoo), "arch": z.spec.name, "refine": refine})
    finish(
        f"{len(wanted)} latents in {out}",
        ["name", "norm"],
        [(n, float(v.norm())) for n, v in zip(wanted[:10], latents)],
        {"out": str(out), "latents": len(wanted), "latent_size": s.latent_size, "arch": z.spec.name},
    )


@app.command("decode")
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
    from shapezoo.classifiers.archs import accuracy, init_params, parse_arch
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.space import load_latents
    from shapezoo.zoo import save_zoo

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    z, names = load_latents(latents)
    s.check_latents(z, latents)
    spec0 = s.archs[0]
    target = parse_arch(arch, spec0.in_shape, spec0.classes) if arch else None
    spec, params = s.decode(z, target)
    data = _data(s.meta, root, dev)
    acc = accuracy(spec, params, *data.test).tolist()
    entries = [
        {"name": n, "arch": spec.name, "status": "ok", "decoded_from": str(latents), "metrics": {"accuracy_test": a}}
        for n, a in zip(names, acc)
    ]
    save_zoo(
        out,
        spec,
        params.cpu(),
        entries,
        init_params(spec, 0),
        {"data": s.meta.get("data"), "decoded": {"space": str(space), "latents": str(latents)}},
    )
    finish(
        f"{len(names)} x {spec.name} decoded into {out}",
        ["name", "test acc %"],
        [(n, _pct(a)) for n, a in zip(names[:10], acc)],
        {"zoo": str(out), "arch": spec.name, "models": len(names), "accuracy_test": acc},
    )


def _lookup(name: str, zoos):
    """(spec, (P,)) of a model named in one of the zoos."""
    from shapezoo.errors import ShapezooError

    for z in zoos:
        if name in z.names:
            if problem := z.unusable(name):
                raise ShapezooError(problem)
            return z.spec, z.weights(name)
    raise ShapezooError(f"no model named '{name}' in the given zoo(s)")


@app.command("interpolate")
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
    from shapezoo.classifiers.explore import interpolation_path
    from shapezoo.classifiers.space import load_classifier_space
    from shapezoo.io import atomic_save_tensors, ensure_output_dir
    from shapezoo.space.latent import interpolate as lerp_path

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    zoos = [_zoo(p) for p in zoo]
    for z, p in zip(zoos, zoo):
        s.arch_index(z.spec, p)
    data = _data(s.meta, root, dev)
    ea, eb = _lookup(a, zoos), _lookup(b, zoos)
    result = interpolation_path(s, ea, eb, data, steps, mode)  # type: ignore[arg-type]
    ensure_output_dir(out)
    path = lerp_path(s.encode(ea[0], ea[1][None])[0], s.encode(eb[0], eb[1][None])[0], steps, mode)  # type: ignore[arg-type]
    atomic_save_tensors(out / "path.safetensors", {"z": path.cpu().contiguous()})
    summary = {"a": a, "b": b, **result}
    rows = [
        (i, f"{t:.3f}", arch, _pct(acc), _pct(result["accuracy_raw"][i]) if "accuracy_raw" in result else "-")
        for i, (t, arch, acc) in enumerate(zip(result["t"], result["arch_latent"], result["accuracy_latent"]))
    ]
    finish(
        f"{a} -> {b} ({mode}), {steps} steps",
        ["step", "t", "arch", "latent acc %", "raw-weight acc %"],
        rows,
        summary,
        out / "interpolation.json",
    )


@app.command("optimize")
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
    from shapezoo.classifiers.archs import init_params, parse_arch
    from shapezoo.classifiers.explore import LatentOptConfig, optimize_latent
    from shapezoo.classifiers.space import LATENTS_FILE, load_classifier_space
    from shapezoo.errors import ShapezooError
    from shapezoo.space import load_latents, save_latents
    from shapezoo.zoo import save_zoo

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    data = _data(s.meta, root, dev)
    zoos = [_zoo(zoo)] if zoo is not None else []
    if (start != "mean" or teacher) and not zoos:
        raise ShapezooError("--start NAME and --teacher need --zoo")
    spec = parse_arch(arch, data.in_shape, data.classes) if arch else None
    if start == "mean":
        train_z, _ = load_latents(Path(space) / LATENTS_FILE)
        z0 = train_z.mean(0)
        spec = spec or s.archs[0]
    else:
        sa, pa = _lookup(start, zoos)
        z0, spec = s.encode(sa, pa[None])[0].cpu(), spec or sa
    t = _lookup(teacher, zoos) if teacher else None
    config = LatentOptConfig(steps=steps, lr=lr)
    with progress() as bar:
        task = bar.add_task("optimising", total=steps, status="")
        result = optimize_latent(
            s,
            spec,
            z0,
            data,
            config,
            t,
            lambda e: bar.update(task, completed=e["step"], status=f"val acc {100 * e['accuracy_val']:.1f}%"),
        )
    name = f"optimized-{start}"
    save_zoo(
        out / "zoo",
        spec,
        result["params"][None],
        [{"name": name, "arch": spec.name, "status": "ok", "metrics": {"accuracy_test": result["accuracy_test_end"]}}],
        init_params(spec, 0),
        {"data": s.meta.get("data"), "optimized": {"space": str(space), "start": start, "teacher": teacher}},
    )
    save_latents(out / "latent.safetensors", result["z"][None], [name])
    summary = {
        "start": start,
        "arch": spec.name,
        "teacher": teacher,
        **{k: v for k, v in result.items() if k not in ("z", "params")},
    }
    finish(
        f"optimised latent ({result['objective']}) in {out}",
        ["", "test acc %", "val acc %"],
        [
            ("start", _pct(result["accuracy_test_start"]), _pct(result["accuracy_val_start"])),
            ("optimised", _pct(result["accuracy_test_end"]), _pct(result["accuracy_val_end"])),
        ],
        summary,
        out / "optimize.json",
    )


@app.command("eval")
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
    from shapezoo.classifiers.explore import evaluate_zoo

    dev, s, z = _space_and_zoo(space, zoo, device)
    result = evaluate_zoo(s, z, _data(s.meta, root, dev), split, refine)
    rows = [(r["name"], r["role"], _pct(r["accuracy_original"]), _pct(r["accuracy_decoded"])) for r in result["models"]]
    rows += [
        (
            f"[{role}]",
            f"{v['models']} models",
            f"gap {v['mean_abs_gap_points']:.2f} pt",
            f"Spearman {v['spearman']:.3f}" if v["spearman"] is not None else "-",
        )
        for role, v in result["summary"].items()
    ]
    finish(f"{zoo} through {space} ({split} images)", ["name", "role", "original %", "decoded %"], rows, result, out)
