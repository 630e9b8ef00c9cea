"""The classifier-space jobs the CLI runs, each one call: read its inputs, write its outputs (latents, zoo folder,
path, report; all atomic), return a JSON-ready summary. ``explore`` holds the operations they are made of."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from ..core.latents import LATENTS_FILE, load_latents, read_latents, save_latents
from ..core.prior import draw_latents
from ..core.zoo import Zoo, save_zoo
from ..errors import ShapezooError
from ..io import atomic_save_tensors, atomic_write_json, ensure_output_dir, output_file
from .archs import ClassifierSpec, accuracy, disagreement, init_params, parse_arch, predictions
from .data import ImageData
from .operations import LatentOptConfig, encode_models, evaluate_decoded, interpolation_path, optimize_latent
from .space import ClassifierSpace


def encode_zoo(
    space: ClassifierSpace,
    space_path: str | Path,
    zoo: Zoo[ClassifierSpec],
    zoo_path: str | Path,
    out: Path,
    names: list[str] | None = None,
    refine: int = 0,
    data: ImageData | None = None,
) -> tuple[torch.Tensor, dict]:
    """Latents of a zoo's models (every usable one, or ``names``), refined by ``refine`` steps on ``data``'s
    training images when asked, written to ``out``. Returns the latents and the summary."""
    space.arch_index(zoo.spec, zoo_path)
    output_file(out)
    wanted, _ = zoo.select(names)
    params = zoo.stack(wanted)
    if refine and data is None:
        raise ShapezooError("refining latents needs the images the space was trained with")
    latents = (
        encode_models(space, zoo.spec, params, data, refine) if refine and data else space.encode(zoo.spec, params)
    )
    meta = {"space": str(space_path), "zoo": str(zoo_path), "arch": zoo.spec.name, "refine": refine}
    save_latents(out, latents, wanted, meta)
    summary = {"out": str(out), "latents": len(wanted), "latent_size": space.latent_size, "arch": zoo.spec.name}
    return latents, summary


def decode_latents(
    space: ClassifierSpace, space_path: str | Path, latents: Path, out: Path, data: ImageData, arch: str | None = None
) -> dict:
    """A classifier zoo of the decodes of a latents file (to ``arch``, else the architecture the decoder predicts),
    with each model's test accuracy."""
    found = read_latents(latents)
    space.check_latents(found.z, latents)
    spec0 = space.archs[0]
    target = parse_arch(arch, spec0.in_shape, spec0.classes) if arch else None
    spec, params = space.decode(found.z, target)
    acc = accuracy(spec, params, *data.test).tolist()
    entries = [
        {"name": n, "arch": spec.name, "status": "ok", "decoded_from": str(latents), "metrics": {"accuracy_test": a}}
        for n, a in zip(found.names, acc)
    ]
    meta = {"data": space.meta.get("data"), "decoded": {"space": str(space_path), "latents": str(latents)}}
    save_zoo(out, spec, params.cpu(), entries, init_params(spec, 0), meta)
    return {"zoo": str(out), "arch": spec.name, "models": len(found.names), "accuracy_test": acc}


def find_model(name: str, zoos: list[Zoo[ClassifierSpec]]) -> tuple[ClassifierSpec, torch.Tensor]:
    """(spec, (P,)) of a usable model named in one of the zoos."""
    for zoo in zoos:
        if name in zoo.names:
            (name,), _ = zoo.select([name])
            return zoo.spec, zoo.weights(name)
    raise ShapezooError(f"no model named '{name}' in the given zoo(s)")


def interpolate_models(
    space: ClassifierSpace,
    a: str,
    b: str,
    zoos: list[Zoo[ClassifierSpec]],
    zoo_paths: list[Path],
    data: ImageData,
    out: Path,
    steps: int = 9,
    mode: Literal["lerp", "slerp"] = "lerp",
) -> dict:
    """Test accuracy along the latent path from model A to model B (and along the raw weights when they share an
    architecture): the path in ``out/path.safetensors``, the summary in ``out/interpolation.json``."""
    for zoo, path in zip(zoos, zoo_paths):
        space.arch_index(zoo.spec, path)
    result = interpolation_path(space, find_model(a, zoos), find_model(b, zoos), data, steps, mode)
    ensure_output_dir(out)
    atomic_save_tensors(out / "path.safetensors", {"z": result.pop("latents").contiguous()})
    summary = {"a": a, "b": b, **result}
    atomic_write_json(out / "interpolation.json", summary)
    return summary


def optimize_model(
    space: ClassifierSpace,
    space_path: str | Path,
    out: Path,
    data: ImageData,
    start: str = "mean",
    zoos: list[Zoo[ClassifierSpec]] | None = None,
    arch: str | None = None,
    teacher: str | None = None,
    config: LatentOptConfig = LatentOptConfig(),
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Optimise a latent (from the mean training latent, or a model's) for accuracy on the training images, or to
    match a teacher model; the best by validation accuracy is written as a one-model zoo ``out/zoo`` with its
    latent, the summary in ``out/optimize.json``."""
    zoos = zoos or []
    if (start != "mean" or teacher) and not zoos:
        raise ShapezooError("--start NAME and --teacher need --zoo")
    spec = parse_arch(arch, data.in_shape, data.classes) if arch else None
    if start == "mean":
        train_z, _ = load_latents(Path(space_path) / LATENTS_FILE)
        z0 = train_z.mean(0)
        spec = spec or space.archs[0]
    else:
        sa, pa = find_model(start, zoos)
        z0, spec = space.encode(sa, pa[None])[0].cpu(), spec or sa
    target = find_model(teacher, zoos) if teacher else None
    result = optimize_latent(space, spec, z0, data, config, target, on_step)
    name = f"optimized-{start}"
    save_zoo(
        out / "zoo",
        spec,
        result["params"][None],
        [{"name": name, "arch": spec.name, "status": "ok", "metrics": {"accuracy_test": result["accuracy_test_end"]}}],
        init_params(spec, 0),
        {"data": space.meta.get("data"), "optimized": {"space": str(space_path), "start": start, "teacher": teacher}},
    )
    save_latents(out / "latent.safetensors", result["z"][None], [name])
    summary = {
        "start": start,
        "arch": spec.name,
        "teacher": teacher,
        **{k: v for k, v in result.items() if k not in ("z", "params")},
    }
    atomic_write_json(out / "optimize.json", summary)
    return summary


def evaluate_to_file(
    space: ClassifierSpace,
    zoo: Zoo[ClassifierSpec],
    zoo_path: str | Path,
    data: ImageData,
    out: Path,
    split: str = "test",
    refine: int = 0,
) -> dict:
    """``evaluate_decoded`` of a zoo that belongs to the space, written to ``out`` (JSON)."""
    space.arch_index(zoo.spec, zoo_path)
    result = evaluate_decoded(space, zoo, data, split, refine)
    ensure_output_dir(out.parent if str(out.parent) else Path("."))
    atomic_write_json(out, result)
    return result


def sample_models(
    space: ClassifierSpace,
    space_path: str | Path,
    count: int,
    out: Path,
    data: ImageData,
    prior: str | Path = "gaussian",
    seed: int = 0,
    arch: str | None = None,
    train: Zoo[ClassifierSpec] | None = None,
    temperature: float | None = None,
) -> dict:
    """A zoo of ``count`` new models drawn from a prior over the space's training latents (``gaussian`` or a learned
    prior folder), decoded to ``arch`` (default: the decoder's prediction), each with its test accuracy; with the
    ``train`` zoo, also how new each is: the share of test images on which it disagrees with its nearest training
    model (the one it disagrees with least)."""
    z, what = draw_latents(space_path, count, seed, prior, device=space.device, temperature=temperature)
    spec0 = space.archs[0]
    spec, params = space.decode(z, parse_arch(arch, spec0.in_shape, spec0.classes) if arch else None)
    pred = predictions(spec, params, data.test[0])
    acc = (pred == data.test[1]).float().mean(-1).tolist()
    names = [f"sample_{i:03d}" for i in range(count)]
    metrics: list[dict] = [{"accuracy_test": a} for a in acc]
    novelty = None
    if train is not None:
        if train.spec != spec:
            raise ShapezooError(f"the training zoo holds {train.spec.name} models; the samples are {spec.name}")
        usable, _ = train.select(None)
        d = disagreement(pred, predictions(spec, train.stack(usable).to(params.device), data.test[0]))
        nearest = d.min(1)
        for m, v, j in zip(metrics, nearest.values.tolist(), nearest.indices.tolist()):
            m.update({"disagreement_to_nearest_training": v, "nearest_training": usable[j]})
        novelty = {"median": float(nearest.values.median()), "mean": float(nearest.values.mean())}
    entries = [{"name": n, "arch": spec.name, "status": "ok", "metrics": m} for n, m in zip(names, metrics)]
    meta = {"data": space.meta.get("data"), "sampled": {"space": str(space_path), "prior": what, "seed": seed}}
    save_zoo(out, spec, params.cpu(), entries, init_params(spec, 0), meta)
    return {
        "zoo": str(out),
        "arch": spec.name,
        "prior": what,
        "models": count,
        "accuracy_test": {"mean": sum(acc) / len(acc), "min": min(acc), "max": max(acc)},
        "novelty": novelty,
        "samples": [{"name": n, **m} for n, m in zip(names, metrics)],
    }
