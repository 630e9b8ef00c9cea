"""The weight-space jobs the CLI runs, each one call: read its inputs, write its output (latents file, zoo folder or
mesh folder, all atomic), return a JSON-ready summary. ``explore`` holds the operations they are made of."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from ...core.latents import read_latents, save_latents
from ...core.prior import draw_latents
from ...core.zoo import ZOO_JSON, load_zoo, save_zoo
from ...errors import ShapezooError
from ...io import atomic_write_json, ensure_output_dir, output_file, read_json, sha256_file
from ..extract import ExtractConfig, export_mesh, extract_meshes
from ..mesh_metrics import components
from ..meshes import find_meshes, read_points, shape_label
from ..network import FieldZoo
from .inference import Evidence, OptimizeConfig, optimize_latent, prior_weight, refine_latents
from .model import WeightSpace
from .objective import SPACE_KINDS
from .operations import (
    encode_fit_steps,
    fit_mesh,
    fit_meshes,
    nearest_training,
    prior_from_space,
    sequence,
    sequence_metrics,
)


def encode_source(
    space: WeightSpace,
    space_path: str | Path,
    source: Path,
    out: Path,
    names: list[str] | None = None,
    refine: int = 100,
    steps: int | None = None,
    device: str | torch.device = "cpu",
    on_stage: Callable[[str], None] | None = None,
) -> tuple[torch.Tensor, dict]:
    """Latents of a field zoo's fields, or of mesh files (sampled and fitted first, batched, from the start point and
    with the recipe of the space's zoo; ``steps`` None: ``encode_fit_steps``), written to ``out``.

    Fields that cannot be encoded are listed in ``skipped`` (every usable field is taken when ``names`` is None;
    a named unusable field raises); mesh files that cannot be used in ``failed``; ``on_stage`` hears when meshes
    are being fitted (the long part). Returns the latents (N, d) and the summary.
    """
    if refine < 0:
        raise ShapezooError(f"--refine must be >= 0, got {refine}")
    output_file(out)
    failures: list[str] = []
    skipped: list[str] = []
    fits: dict = {}
    if (source / ZOO_JSON).exists():
        zoo = load_zoo(source, SPACE_KINDS)
        space.check_zoo(zoo, source)
        wanted, skipped = zoo.select(names)
        params = zoo.stack(wanted)
        norms = {n: zoo.entries[zoo.index(n)].get("normalisation") for n in wanted}
        labels = {n: zoo.entries[zoo.index(n)].get("label") for n in wanted}
    else:
        items = find_meshes(source)
        if names is not None:
            items = [(n, p) for n, p in items if n in names]
        if on_stage is not None:
            on_stage(f"sampling and fitting {len(items)} meshes")
        params, records, failed = fit_meshes(
            space, items, device, steps if steps is not None else encode_fit_steps(space)
        )
        failures = [f["error"] for f in failed]
        if not records:  # nothing to encode: the one problem (or the first of several) is the error
            raise ShapezooError(failures[0] if len(failures) == 1 else f"no mesh could be used; first: {failures[0]}")
        wanted = [r["name"] for r in records]
        norms = {r["name"]: r["normalisation"] for r in records}
        labels = {n: shape_label(n, p) for n, p in items if n in norms}
        fits = {
            r["name"]: {"source": r["source"], "fit_iou": r["fit_iou"], "fit_steps": r["fit_steps"]} for r in records
        }
    latents = refine_latents(space, params, space.encode(params), refine)
    extra = {"space": str(space_path), ("zoo" if not fits else "meshes"): str(source), "normalisation": norms}
    if any(v is not None for v in labels.values()):
        extra["labels"] = labels
    if fits:
        extra["fits"] = fits
    save_latents(out, latents, wanted, extra)
    summary = {
        "out": str(out),
        "latents": len(wanted),
        "latent_size": space.latent_size,
        "refine_steps": refine,
        "skipped": skipped,
        "failed": failures,
    }
    if fits:
        summary["fit_iou_median"] = float(torch.tensor([f["fit_iou"] for f in fits.values()]).median())
    return latents, summary


def decode_latents(space: WeightSpace, space_path: str | Path, latents: Path, out: Path) -> dict:
    """A field zoo of the decodes of a latents file (mesh, eval and encode work on it like on any zoo); nothing is
    written when ``out`` already holds the decodes of this very file (then ``fields`` is 0)."""
    found = read_latents(latents)
    space.check_latents(found.z, latents)
    source = {"space": str(space_path), "latents": str(latents), "sha256": sha256_file(latents)}
    if (out / ZOO_JSON).exists() and read_json(out / ZOO_JSON, dict).get("decoded") == source:
        return {"zoo": str(out), "fields": 0, "skipped": "already holds these decodes; nothing to do"}
    norms = found.meta.get("normalisation") or {}
    params = space.decode(found.z).cpu()
    entries = [
        {"name": n, "status": "ok", "normalisation": norms.get(n), "decoded_from": str(latents)} for n in found.names
    ]
    save_zoo(out, space.spec, params, entries, space.field_init(), {"decoded": source})
    return {"zoo": str(out), "fields": len(found.names)}


def endpoint(
    space: WeightSpace, name_or_mesh: str, zoo: FieldZoo | None, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, str, dict]:
    """A field (P,), its label and its record for an interpolation endpoint: a field name in ``zoo`` or a mesh file
    (fitted on the fly with the recipe of the space's zoo)."""
    if Path(name_or_mesh).is_file():
        params, record = fit_mesh(space, name_or_mesh, device)
        return params.cpu(), record["name"], {"mesh": name_or_mesh, "fit_iou": record["fit_iou"]}
    if zoo is None:
        raise ShapezooError(f"'{name_or_mesh}' is not a mesh file; give --zoo to use field names")
    (name,), _ = zoo.select([name_or_mesh])
    return zoo.weights(name), name, {"field": name}


def interpolate_to_folder(
    space: WeightSpace,
    a: str,
    b: str,
    out: Path,
    zoo_path: Path | None = None,
    steps: int = 8,
    mode: Literal["lerp", "slerp"] = "lerp",
    weights: bool = False,
    refine: int = 100,
    config: ExtractConfig = ExtractConfig(resolution=128),
    device: str | torch.device = "cpu",
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Walk from A to B (field names in the zoo, or mesh files) through the latent space (or, with ``weights``, the
    raw weights) and write ``out/step_NN.obj`` for every step and the per-step metrics to ``interpolation.json``."""
    space.check_shapes("interpolate")
    zoo = None
    if zoo_path is not None:
        zoo = load_zoo(zoo_path)
        space.check_spec(zoo.spec, zoo_path)
    ensure_output_dir(out)
    report = on_stage or (lambda stage: None)
    pa, na, ia = endpoint(space, a, zoo, device)
    pb, nb, ib = endpoint(space, b, zoo, device)
    report("decoding")
    params = sequence(space, pa, pb, steps, mode, weights, refine)
    report("meshing")
    meshes, rows = sequence_metrics(space, params, config, device)
    for row, (v, f) in zip(rows, meshes):
        row["file"] = str(out / f"step_{row['step']:02d}.obj")
        export_mesh(v, f, row["file"])
    report("done")
    summary = {"a": {"name": na, **ia}, "b": {"name": nb, **ib}, "mode": "weights" if weights else mode, "steps": rows}
    atomic_write_json(out / "interpolation.json", summary)
    return summary


def complete_points(
    space: WeightSpace,
    space_path: str | Path,
    points: Path,
    out: Path,
    config: OptimizeConfig = OptimizeConfig(),
    normalise: bool = False,
    extract: ExtractConfig = ExtractConfig(resolution=128),
    on_step: Callable[[int, dict], None] | None = None,
) -> dict:
    """Shape completion: the latent whose decoded field best explains a point cloud, meshed into
    ``out/completed.obj`` (latent in ``latent.safetensors``, the summary and loss history in ``optimize.json``)."""
    space.check_shapes("optimize")
    pts, normals = read_points(points, normalise)
    evidence = Evidence.from_surface(pts, normals)
    prior, _, _ = prior_from_space(space, space_path)
    ensure_output_dir(out)
    z, history = optimize_latent(space, evidence, prior, config, on_step=on_step)
    (mesh,), _ = extract_meshes(space.spec, space.decode(z[None]), extract, ["completed"])
    export_mesh(*mesh, out / "completed.obj")
    save_latents(out / "latent.safetensors", z[None], ["completed"])
    summary = {
        "points": len(pts),
        "normals": normals is not None,
        "evidence_points": len(evidence.points),
        "mesh": str(out / "completed.obj"),
        "faces": len(mesh[1]),
        "prior_weight": prior_weight(space, config),
        "history": history,
    }
    atomic_write_json(out / "optimize.json", summary)
    return summary


SCREEN_PIECES = 2
"""A screened draw is kept when its mesh has at most this many connected pieces (the demo's bar for samples)."""


def _screened(space: WeightSpace, candidates: torch.Tensor, config: ExtractConfig, name: str) -> tuple:
    """(latent, mesh, pieces, draws) of the first candidate whose mesh has at most ``SCREEN_PIECES`` pieces, or of
    the one with the fewest (an empty mesh counts as the worst)."""
    best: tuple | None = None
    for j, z in enumerate(candidates):
        (mesh,), _ = extract_meshes(space.spec, space.decode(z[None]), config, [name])
        pieces = components(*mesh)["components"] if len(mesh[1]) else float("inf")
        if best is None or pieces < best[2]:
            best = (z, mesh, pieces, j + 1)
        if pieces <= SCREEN_PIECES:
            break
    assert best is not None  # at least one candidate
    return best


def sample_members(
    space: WeightSpace,
    space_path: str | Path,
    count: int,
    out: Path,
    seed: int = 0,
    config: ExtractConfig = ExtractConfig(resolution=128),
    device: str | torch.device = "cpu",
    on_member: Callable[[str], None] | None = None,
    prior: str | Path = "gaussian",
    family: str | None = None,
    guidance: float = 1.0,
    nearest: bool = True,
    temperature: float | None = None,
    screen: int = 4,
) -> dict:
    """New members drawn from a prior over the training latents (``gaussian``, or a learned prior folder; of one
    ``family`` if given), meshed into ``out/sample_NN.obj``, each (with ``nearest``) with how close it is to the
    training shapes (latents in ``latents.safetensors``, the summary in ``sample.json``). Each member is the first of
    up to ``screen`` draws whose mesh has at most ``SCREEN_PIECES`` pieces (the one with the fewest if none has): a
    prior's occasional fragmented draw is redrawn; each row records its draws (``screen`` 1 keeps every draw).
    """
    space.check_shapes("sample")
    if screen < 1:
        raise ShapezooError(f"--screen must be >= 1, got {screen}")
    drawn, what = draw_latents(space_path, count * screen, seed, prior, family, guidance, device, temperature)
    train_z, train_names = space.train_latents(space_path)
    ensure_output_dir(out)
    rows: list[dict] = []
    kept = []
    for i in range(count):
        name = f"sample_{i:02d}"
        z, mesh, pieces, draws = _screened(space, drawn[i * screen : (i + 1) * screen], config, name)
        kept.append(z)
        row = {"name": name, "file": str(out / f"{name}.obj"), "faces": len(mesh[1]), "family": family}
        if screen > 1:
            row.update(draws=draws, pieces=int(pieces) if len(mesh[1]) else 0)
        if len(mesh[1]):
            export_mesh(mesh[0], mesh[1], row["file"])
            if nearest:
                row.update(nearest_training(space, z, train_z, train_names, mesh, config, device=device))
        rows.append(row)
        if on_member is not None:
            on_member(name)
    labels = {r["name"]: family for r in rows} if family else None
    save_latents(
        out / "latents.safetensors",
        torch.stack(kept),
        [r["name"] for r in rows],
        {"labels": labels} if labels else None,
    )
    summary = {"samples": rows, "prior": what, "seed": seed, "screen": screen, "space": str(space_path)}
    atomic_write_json(out / "sample.json", summary)
    return summary
