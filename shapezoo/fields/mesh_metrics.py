"""Mesh and occupancy metrics in the frame: Chamfer-L1/L2, F-score, normal consistency, volumetric IoU.

Definitions (DESIGN.md): with d(a->B) the distance from a point a to its nearest neighbour in B,
``chamfer_l1 = (mean d(P->G) + mean d(G->P)) / 2``, ``chamfer_l2`` the same with squared distances, F-score at τ
the harmonic mean of precision (share of P within τ of G) and recall (share of G within τ of P).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.measure import set_iou
from .samples import sample_surface, shape_rng

CHAMFER_POINTS = 30_000
IOU_POINTS = 100_000
FSCORE_TAU = 0.01


def nearest_kdtree(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances (n,) and indices (n,) of each query point's nearest ``ref`` point, by KD-tree (CPU)."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(ref).query(query, k=1, workers=-1)
    return dist, idx


def nearest_torch(query: torch.Tensor, ref: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as ``nearest_kdtree`` by chunked brute force (one matrix product per chunk; for CUDA, O(n m) work).

    The search runs in float32; the winner's distance is recomputed in the inputs' precision (pass float64), so
    both paths agree to about 1e-7 relative.
    """
    ref32 = ref.float()
    ref_sq = (ref32 * ref32).sum(-1)[None]
    # argmin_j |q - r_j|^2 = argmin_j (|r_j|^2 - 2 q.r_j): one matrix product per chunk.
    idx = torch.cat([torch.addmm(ref_sq, q.float(), ref32.T, alpha=-2.0).argmin(-1) for q in query.split(chunk)])
    return (query - ref[idx]).norm(dim=-1), idx


def nearest(query: np.ndarray, ref: np.ndarray, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbours on ``device``: KD-tree on CPU, chunked cdist on CUDA; numpy in, numpy out."""
    device = torch.device(device)
    if device.type == "cpu":
        return nearest_kdtree(query, ref)
    d, i = nearest_torch(
        torch.as_tensor(query, device=device, dtype=torch.float64),
        torch.as_tensor(ref, device=device, dtype=torch.float64),
    )
    return d.cpu().numpy(), i.cpu().numpy()


def surface_points(
    vertices: np.ndarray, faces: np.ndarray, count: int = CHAMFER_POINTS, seed: int = 0, name: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (seeded) area-uniform surface points (count, 3) and their unit face normals (count, 3)."""
    points, face = sample_surface(vertices, faces, count, shape_rng(seed, "surface:" + name))
    tri = vertices[faces[face]]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return points, n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)


def point_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    pred_normals: np.ndarray | None = None,
    gt_normals: np.ndarray | None = None,
    tau: float = FSCORE_TAU,
    device="cpu",
) -> dict:
    """Chamfer-L1, Chamfer-L2, F-score at τ (and normal consistency if normals are given) of two point sets."""
    d_pg, i_pg = nearest(pred, gt, device)
    d_gp, i_gp = nearest(gt, pred, device)
    precision, recall = float((d_pg < tau).mean()), float((d_gp < tau).mean())
    out = {
        "chamfer_l1": float((d_pg.mean() + d_gp.mean()) / 2),
        "chamfer_l2": float(((d_pg**2).mean() + (d_gp**2).mean()) / 2),
        "fscore": 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0,
        "precision": precision,
        "recall": recall,
    }
    if pred_normals is not None and gt_normals is not None:
        nc_pg = np.abs((pred_normals * gt_normals[i_pg]).sum(-1)).mean()
        nc_gp = np.abs((gt_normals * pred_normals[i_gp]).sum(-1)).mean()
        out["normal_consistency"] = float((nc_pg + nc_gp) / 2)
    return out


def mesh_metrics(
    pred: tuple[np.ndarray, np.ndarray],
    gt: tuple[np.ndarray, np.ndarray],
    count: int = CHAMFER_POINTS,
    seed: int = 0,
    tau: float = FSCORE_TAU,
    device="cpu",
) -> dict:
    """Surface metrics of a predicted mesh against a reference mesh, both (vertices, faces) in the frame.

    An empty predicted mesh scores Chamfer = inf and F-score = 0.
    """
    if len(pred[1]) == 0:
        return {
            "chamfer_l1": float("inf"),
            "chamfer_l2": float("inf"),
            "fscore": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "normal_consistency": 0.0,
        }
    p, pn = surface_points(*pred, count, seed, "pred")
    g, gn = surface_points(*gt, count, seed, "gt")
    return point_metrics(p, g, pn, gn, tau, device)


def components(vertices: np.ndarray, faces: np.ndarray) -> dict:
    """Connected pieces of a mesh (faces joined through shared vertices) and the share of its surface area outside
    the piece of largest area: ``floating_area`` measures blobs floating away from the main surface.

    Returns:
        {"components": int, "floating_area": float in [0, 1]} (0 and 0.0 for an empty mesh).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return {"components": 0, "floating_area": 0.0}
    n = len(vertices)
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face_label = np.unique(labels[faces[:, 0]], return_inverse=True)[1]
    per_piece = np.bincount(face_label, weights=area)
    total = float(per_piece.sum())
    return {
        "components": int(len(per_piece)),
        "floating_area": float(1.0 - per_piece.max() / total) if total > 0 else 0.0,
    }


def volume_iou(pred_inside: np.ndarray, gt_inside: np.ndarray) -> float:
    """IoU of two boolean occupancy vectors over the same points (1.0 when both are empty)."""
    return float(set_iou(torch.as_tensor(pred_inside), torch.as_tensor(gt_inside), torch.float64))


def uniform_points(count: int = IOU_POINTS, seed: int = 0) -> np.ndarray:
    """(count, 3) seeded uniform points in the domain [-0.5, 0.5]^3 for volumetric IoU."""
    return np.random.default_rng(seed).random((count, 3)) - 0.5
