"""Score fields or meshes against reference meshes with one protocol (IoU, Chamfer-L1/L2, F-score, normals)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ShapezooError
from ..io import atomic_write_json, ensure_output_dir
from .extract import ExtractConfig, export_mesh, extract_meshes
from .mesh_metrics import IOU_POINTS, components, mesh_metrics, uniform_points, volume_iou
from .meshes import Shape, find_meshes, load_mesh
from .network import FieldZoo, field_forward
from .samples import inside_winding, label_points

METRIC_KEYS = ("iou", "chamfer_l1", "chamfer_l2", "fscore", "normal_consistency", "components", "floating_area")
UNITS = (
    "frame units (bbox centred, longest side 0.9); chamfer_l2 in squared units; "
    "iou, fscore (tau = 0.01), normal_consistency in [0, 1]; components: connected pieces of the mesh; "
    "floating_area: share of the surface area outside the largest piece"
)


def _score(
    name: str, pred: tuple[np.ndarray, np.ndarray], pred_inside: np.ndarray, ref: Shape, points: np.ndarray, device
) -> dict:
    gt_inside, _ = label_points(ref, points)
    row = {"name": name, "iou": volume_iou(pred_inside, gt_inside)}
    row.update(mesh_metrics(pred, (ref.vertices, ref.faces), device=device))
    row.update(components(*pred))
    row["faces"] = int(len(pred[1]))
    return row


def evaluate_zoo(
    zoo: FieldZoo,
    reference: str | Path,
    names: list[str] | None = None,
    config: ExtractConfig = ExtractConfig(),
    device: str | torch.device = "cpu",
    on_item: Callable[[dict], None] | None = None,
    out: Path | None = None,
    meshes: Path | None = None,
) -> dict:
    """Extract each field's mesh and score it against the reference mesh of the same name (report JSON to ``out``;
    with ``meshes`` each extracted mesh is also written there as NAME.obj, so nothing is extracted twice).

    IoU compares the field's own occupancy (logit > 0) with the reference's on 100k uniform points. One bad
    field or reference is reported under ``failed``; the others are still scored.
    """
    refs = dict(find_meshes(reference))
    points = uniform_points(IOU_POINTS)
    rows, failed = [], []
    for name in names or zoo.names:
        try:
            problem = zoo.unusable(name)
            if problem:
                raise ShapezooError(problem)
            i = zoo.index(name)
            if name not in refs:
                raise InputError(Path(reference) / name, "no reference mesh with this name")
            ref = load_mesh(refs[name], name=name)
            params = zoo.params[i : i + 1].to(device)
            (mesh,), _ = extract_meshes(zoo.spec, params, config, [name])
            if meshes is not None:
                export_mesh(*mesh, ensure_output_dir(meshes) / f"{name}.obj")
            with torch.no_grad():
                logits = field_forward(
                    zoo.spec, params, torch.as_tensor(points, dtype=torch.float32, device=device)[None]
                )[0, :, 0]
            rows.append(_score(name, mesh, logits.cpu().numpy() > 0, ref, points, device))
        except ShapezooError as exc:
            failed.append({"name": name, "error": str(exc)})
        if on_item is not None:
            on_item(rows[-1] if rows and rows[-1]["name"] == name else failed[-1])
    return report(rows, failed, out)


def evaluate_meshes(
    pred: str | Path,
    reference: str | Path,
    device: str | torch.device = "cpu",
    on_item: Callable[[dict], None] | None = None,
    out: Path | None = None,
) -> dict:
    """Score every predicted mesh file against the reference of the same name (any method's output; report JSON to
    ``out``).

    Both are normalised into the frame by their own bounding boxes, as the pipeline does for all inputs; IoU
    uses the winding-number occupancy of each mesh.
    """
    refs = dict(find_meshes(reference))
    points = uniform_points(IOU_POINTS)
    rows, failed = [], []
    for name, path in find_meshes(pred):
        try:
            if name not in refs:
                raise InputError(Path(reference) / name, "no reference mesh with this name")
            p = load_mesh(path, name=name)
            ref = load_mesh(refs[name], name=name)
            rows.append(
                _score(name, (p.vertices, p.faces), inside_winding(p.vertices, p.faces, points), ref, points, device)
            )
        except ShapezooError as exc:
            failed.append({"name": name, "error": str(exc)})
        if on_item is not None:
            on_item(rows[-1] if rows and rows[-1]["name"] == name else failed[-1])
    return report(rows, failed, out)


def report(rows: list[dict], failed: list[dict], out: Path | None = None) -> dict:
    """Per-entry rows plus, per metric, mean, median and the worst five (lowest IoU/F-score, highest Chamfer);
    written to ``out`` (JSON) when given."""
    summary = {}
    for key in METRIC_KEYS:
        vals = [(r[key], r["name"]) for r in rows if key in r and math.isfinite(r[key])]
        if not vals:
            continue
        higher_is_better = key in ("iou", "fscore", "normal_consistency")
        worst = sorted(vals, reverse=not higher_is_better)[:5]
        summary[key] = {
            "mean": statistics.fmean(v for v, _ in vals),
            "median": statistics.median(v for v, _ in vals),
            "worst": [{"name": n, key: v} for v, n in worst],
        }
    result = {"units": UNITS, "entries": rows, "summary": summary, "failed": failed}
    if out is not None:
        ensure_output_dir(out.parent if str(out.parent) else Path("."))
        atomic_write_json(out, result)
    return result
