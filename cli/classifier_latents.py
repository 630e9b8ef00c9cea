"""``shapezoo classifiers encode | decode | interpolate | optimize | eval``: moving through a classifier space,
and the loaders the classifier commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import finish, handle_errors, parse_names, progress
from .fit import resolve_device

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Root = Annotated[Path | None, typer.Option(help="Dataset folder (default: the one recorded in the zoo/space).")]
Refine = Annotated[
    int,
    typer.Option(
        help="Latent refinement steps after the encoder (Adam on z against each model's own predictions "
        "on training images; 300 keeps held-out accuracy within a point in BENCHMARKS.md)."
    ),
]


def load_data(meta: dict, root: Path | None, device):
    """The image dataset a zoo or space was made with (its name and folder are recorded in ``meta['data']``)."""
    from shapezoo.classifiers.data import load_images

    info = meta.get("data") or {"name": "digits"}
    return load_images(info["name"], root or info.get("root")).to(device)


def load_classifier_zoo(path: Path):
    from shapezoo.core.zoo import load_zoo

    return load_zoo(path, kind="classifier")


def space_and_zoo(space: Path, zoo: Path, device: str):
    """(device, space, zoo), with the zoo's architecture checked against the space's."""
    from shapezoo.classifiers.space import load_classifier_space

    dev = resolve_device(device)
    s, z = load_classifier_space(space, dev), load_classifier_zoo(zoo)
    s.arch_index(z.spec, zoo)
    return dev, s, z


def space_and_data(space: Path, root: Path | None, device: str):
    """(device, space, the images the space was trained with)."""
    from shapezoo.classifiers.space import load_classifier_space

    dev = resolve_device(device)
    s = load_classifier_space(space, dev)
    return dev, s, load_data(s.meta, root, dev)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


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

    dev, s, z = space_and_zoo(space, zoo, device)
    wanted = parse_names(names) or [n for n in z.names if z.unusable(n) is None]
    for n in wanted:
        if problem := z.unusable(n):
            raise ShapezooError(problem)
    params = torch.stack([z.weights(n) for n in wanted]) if wanted else torch.zeros(0, z.spec.layout().size)
    data = load_data(s.meta, root, dev) if refine else None
    latents = encode_models(s, z.spec, params, data, refine) if refine else s.encode(z.spec, params)
    save_latents(out, latents, wanted, {"space": str(space), "zoo": str(zoo), "arch": z.spec.name, "refine": refine})
    finish(
        f"{len(wanted)} latents in {out}",
        ["name", "norm"],
        [(n, float(v.norm())) for n, v in zip(wanted[:10], latents)],
        {"out": str(out), "latents": len(wanted), "latent_size": s.latent_size, "arch": z.spec.name},
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
    from shapezoo.classifiers.archs import accuracy, init_params, parse_arch
    from shapezoo.core.zoo import save_zoo
    from shapezoo.space import load_latents

    _, s, data = space_and_data(space, root, device)
    z, names = load_latents(latents)
    s.check_latents(z, latents)
    spec0 = s.archs[0]
    target = parse_arch(arch, spec0.in_shape, spec0.classes) if arch else None
    spec, params = s.decode(z, target)
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
        [(n, pct(a)) for n, a in zip(names[:10], acc)],
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
    from shapezoo.io import atomic_save_tensors, ensure_output_dir

    _, s, data = space_and_data(space, root, device)
    zoos = [load_classifier_zoo(p) for p in zoo]
    for z, p in zip(zoos, zoo):
        s.arch_index(z.spec, p)
    ea, eb = _lookup(a, zoos), _lookup(b, zoos)
    result = interpolation_path(s, ea, eb, data, steps, mode)  # type: ignore[arg-type]
    ensure_output_dir(out)
    atomic_save_tensors(out / "path.safetensors", {"z": result.pop("latents").contiguous()})
    summary = {"a": a, "b": b, **result}
    rows = [
        (i, f"{t:.3f}", arch, pct(acc), pct(result["accuracy_raw"][i]) if "accuracy_raw" in result else "-")
        for i, (t, arch, acc) in enumerate(zip(result["t"], result["arch_latent"], result["accuracy_latent"]))
    ]
    finish(
        f"{a} -> {b} ({mode}), {steps} steps",
        ["step", "t", "arch", "latent acc %", "raw-weight acc %"],
        rows,
        summary,
        out / "interpolation.json",
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
    from shapezoo.classifiers.archs import init_params, parse_arch
    from shapezoo.classifiers.explore import LatentOptConfig, optimize_latent
    from shapezoo.core.latents import LATENTS_FILE
    from shapezoo.core.zoo import save_zoo
    from shapezoo.errors import ShapezooError
    from shapezoo.space import load_latents, save_latents

    _, s, data = space_and_data(space, root, device)
    zoos = [load_classifier_zoo(zoo)] if zoo is not None else []
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
            ("start", pct(result["accuracy_test_start"]), pct(result["accuracy_val_start"])),
            ("optimised", pct(result["accuracy_test_end"]), pct(result["accuracy_val_end"])),
        ],
        summary,
        out / "optimize.json",
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
    from shapezoo.classifiers.explore import evaluate_zoo

    dev, s, z = space_and_zoo(space, zoo, device)
    result = evaluate_zoo(s, z, load_data(s.meta, root, dev), split, refine)
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
    finish(f"{zoo} through {space} ({split} images)", ["name", "role", "original %", "decoded %"], rows, result, out)
