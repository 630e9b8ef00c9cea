"""Latent operations end to end: fields from meshes, interpolation sequences, completion, sampling, with metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ...core.latents import interpolate
from ...core.space_files import SPACE_JSON
from ...errors import ShapezooError
from ...schema import config_from_json
from ..extract import ExtractConfig, extract_meshes
from ..fitting import FitConfig, fit_fields
from ..mesh_metrics import point_metrics, surface_points, uniform_points
from ..meshes import load_mesh
from ..network import field_forward
from ..samples import SampleConfig, check_samples, sample_shape
from .inference import GaussianPrior, refine_latents
from .model import WeightSpace


def encode_fit_steps(space: WeightSpace) -> int:
    """Fitting steps for meshes that are fitted only to be encoded into ``space`` (``FitConfig.for_encoding`` of
    its zoo's recipe)."""
    steps = _zoo_recipe(space).for_encoding(space.model.config.design == "shift").steps
    assert steps is not None
    return steps


def _zoo_recipe(space: WeightSpace) -> FitConfig:
    """The fitting recipe the space's zoo was made with (as recorded when the space was trained)."""
    return config_from_json(FitConfig, space.meta.get("zoo", {}).get("meta", {}).get("fit", {}), SPACE_JSON)


def fit_meshes(
    space: WeightSpace,
    paths: list[tuple[str, Path]],
    device: str | torch.device = "cpu",
    steps: int | None = None,
) -> tuple[torch.Tensor, list[dict], list[dict]]:
    """Sample mesh files and fit one field each, all in one batch, with the sampling and fitting recipe and the
    start point of the space's zoo (a learned init makes this a short fit).

    Args:
        paths: (name, file) pairs, as ``find_meshes`` lists them.
        steps: fitting steps (default: the zoo's recipe).

    Returns:
        (n, P) weights of the fields that fitted, their records (name, source, normalisation, fit_iou), and one
        {name, error} per file that could not be used (the others are still fitted).
    """
    config = _zoo_recipe(space)
    if steps is not None:
        config = replace(config, steps=steps)
    sample_config = config_from_json(
        SampleConfig, space.meta.get("zoo", {}).get("meta", {}).get("samples", {}).get("config", {}), SPACE_JSON
    )
    records, data, failed = [], [], []
    for name, path in paths:
        try:
            shape = load_mesh(path, name=name)
            d = sample_shape(shape, sample_config)
            check_samples(torch.from_numpy(d["points"])[None], torch.from_numpy(d["occupancy"])[None], [str(path)])
        except ShapezooError as exc:
            failed.append({"name": name, "error": str(exc)})
            continue
        records.append(shape.record())
        data.append(d)
    if not data:
        return torch.zeros(0, space.spec.layout().size), records, failed
    pts = torch.stack([torch.from_numpy(d["points"]) for d in data]).to(device)
    occ = torch.stack([torch.from_numpy(d["occupancy"]) for d in data]).to(device)
    init = space.field_init().to(device)
    result = fit_fields(space.spec, init, pts, occ, int(data[0]["n_uniform"]), [r["name"] for r in records], config)
    kept, params = [], []
    for i, (record, status) in enumerate(zip(records, result.status)):
        if status == "failed":
            failed.append({"name": record["name"], "error": f"{record['source']}: the field fitted to it diverged"})
            continue
        kept.append({**record, "fit_iou": result.metrics[i]["iou"], "fit_steps": result.metrics[i]["steps"]})
        params.append(result.params[i])
    return torch.stack(params) if params else torch.zeros(0, space.spec.layout().size), kept, failed


def fit_mesh(space: WeightSpace, path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.Tensor, dict]:
    """One mesh file as a field of the space's zoo (``fit_meshes`` for one file); an unusable file raises."""
    path = Path(path)
    params, records, failed = fit_meshes(space, [(path.stem, path)], device)
    if failed:
        raise ShapezooError(failed[0]["error"])
    return params[0].detach(), records[0]


def sequence(
    space: WeightSpace,
    a: torch.Tensor,
    b: torch.Tensor,
    steps: int,
    mode: Literal["lerp", "slerp"] = "lerp",
    weights: bool = False,
    refine: int = 0,
) -> torch.Tensor:
    """Field weights (steps, P) from field ``a`` to field ``b`` (both (P,)): through the latent space (endpoints
    encoded, then refined by ``refine`` steps), or with ``weights=True`` by interpolating the raw weights (the
    naive baseline)."""
    if weights:
        return interpolate(a.float().cpu(), b.float().cpu(), steps, "lerp")
    ends = torch.stack([a, b])
    z = refine_latents(space, ends, space.encode(ends), refine)
    return space.decode(interpolate(z[0], z[1], steps, mode)).cpu()


def sequence_metrics(
    space: WeightSpace, params: torch.Tensor, config: ExtractConfig, device: str | torch.device = "cpu"
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[dict]]:
    """Meshes of a sequence of fields and per-step metrics: occupied volume share, surface area, and Chamfer-L2
    to the first and last step's meshes (how far along the way each step is)."""
    meshes, _ = extract_meshes(space.spec, params.to(device), config, [f"step {i}" for i in range(len(params))])
    x = torch.as_tensor(uniform_points(32768), dtype=torch.float32, device=device)
    with torch.no_grad():
        inside = field_forward(space.spec, params.to(device), x.expand(len(params), -1, -1))[..., 0] > 0
    ends = [surface_points(*meshes[0])[0] if len(meshes[0][1]) else None]
    ends.append(surface_points(*meshes[-1])[0] if len(meshes[-1][1]) else None)
    rows = []
    for i, (v, f) in enumerate(meshes):
        row = {"step": i, "t": i / max(1, len(meshes) - 1), "volume": float(inside[i].float().mean()), "faces": len(f)}
        if len(f):
            import trimesh

            row["area"] = float(trimesh.Trimesh(v, f, process=False).area)
            pts = surface_points(v, f)[0]
            for key, end in zip(("chamfer_l2_to_start", "chamfer_l2_to_end"), ends):
                if end is not None:
                    row[key] = point_metrics(pts, end, device=device)["chamfer_l2"]
        rows.append(row)
    return meshes, rows


def nearest_training(
    space: WeightSpace,
    z: torch.Tensor,
    train_z: torch.Tensor,
    train_names: list[str],
    mesh: tuple[np.ndarray, np.ndarray],
    config: ExtractConfig,
    k: int = 5,
    device: str | torch.device = "cpu",
) -> dict:
    """Distance of a latent (d,) to the nearest training latent, and the nearest training shape by Chamfer-L2
    among the decodes of its ``k`` nearest training latents (memorisation check for sampled members)."""
    d = (train_z - z.cpu()).norm(dim=1)
    order = d.argsort()[:k].tolist()
    decoded = space.decode(train_z[order]).to(device)
    meshes, _ = extract_meshes(space.spec, decoded, config, [train_names[i] for i in order])
    if len(mesh[1]) == 0:
        raise ShapezooError("the sampled field has no surface")
    pts = surface_points(*mesh)[0]
    cds = [
        point_metrics(pts, surface_points(*m)[0], device=device)["chamfer_l2"] if len(m[1]) else float("inf")
        for m in meshes
    ]
    j = int(np.argmin(cds))
    return {
        "nearest_latent": train_names[order[0]],
        "latent_distance": float(d[order[0]]),
        "latent_distance_median_train": float(torch.cdist(train_z, train_z).median()),
        "nearest_shape": train_names[order[j]],
        "chamfer_l2_to_nearest_shape": float(cds[j]),
    }


def prior_from_space(space: WeightSpace, path: str | Path) -> tuple[GaussianPrior, torch.Tensor, list[str]]:
    """The Gaussian prior over the space's training latents, with those latents and their names."""
    z, names = space.train_latents(path)
    return GaussianPrior.fit(z), z, names
