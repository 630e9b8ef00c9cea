"""Are generated shapes good, and are they new? The point-cloud generation protocol (PointFlow, HyperDiffusion) and a
memorisation report.

Every shape becomes ``GEN_POINTS`` seeded surface points after the usual normalisation into the frame (each mesh's
bounding box scaled to the frame, as ``load_mesh`` does for every input). Distances between shapes are Chamfer-L2 as
in ``metrics`` (mean squared nearest-neighbour distance, both ways, halved). With G generated and R reference shapes:
MMD = mean over references of the distance to the nearest sample (fidelity); COV = share of references that are the
nearest reference of at least one sample (diversity); 1-NNA = leave-one-out 1-nearest-neighbour accuracy of telling
samples from references in the union (50% ideal, 100% = told apart every time). Novelty: each sample's distance to
its nearest *training* shape, beside the same distance for the reference (unseen) shapes themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ShapezooError
from ..io import atomic_write_json, ensure_output_dir, locks, read_json
from ..schema import MapOf, Names
from .mesh_metrics import surface_points
from .meshes import find_meshes, load_mesh

GEN_POINTS = 2048
GENERATION_JSON = "generation.json"


def clouds(meshes: list[tuple[np.ndarray, np.ndarray]], names: list[str], count: int = GEN_POINTS, seed: int = 0):
    """(N, count, 3) float32 seeded surface points of N meshes (vertices, faces) in the frame."""
    out = np.empty((len(meshes), count, 3), np.float32)
    for i, ((v, f), name) in enumerate(zip(meshes, names)):
        if len(f) == 0:
            raise ShapezooError(f"{name}: empty mesh (no surface to sample)")
        out[i] = surface_points(v, f, count, seed, name)[0]
    return torch.from_numpy(out)


def chamfer_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """(N, M) Chamfer-L2 between point clouds a (N, n, 3) and b (M, m, 3); float64. On CPU by KD-trees (one per
    cloud), on CUDA by chunked brute force (an O(n m) product per pair, which a GPU does fast)."""
    if a.device.type == "cpu":
        return _chamfer_kdtree(a.numpy(), b.numpy())
    out = torch.empty(len(a), len(b), dtype=torch.float64)
    for i in range(len(a)):
        for j in range(0, len(b), chunk):
            d = torch.cdist(a[i][None].expand(len(b[j : j + chunk]), -1, -1), b[j : j + chunk]) ** 2
            row = (d.min(2).values.mean(1) + d.min(1).values.mean(1)) / 2
            out[i, j : j + chunk] = row.double().cpu()
    return out


def _chamfer_kdtree(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    def one_way(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """(N, M): mean squared distance from the points of each cloud of ``src`` to each cloud of ``dst``; one tree
        per ``dst`` cloud queried with every ``src`` point at once, on every core."""
        from scipy.spatial import cKDTree

        out = np.empty((len(src), len(dst)))
        for j, cloud in enumerate(dst):
            d, _ = cKDTree(cloud).query(src.reshape(-1, 3), workers=-1)
            out[:, j] = (d.astype(np.float64) ** 2).reshape(len(src), -1).mean(1)
        return out

    return torch.from_numpy((one_way(a, b) + one_way(b, a).T) / 2)


def mmd_cov(d_gr: torch.Tensor) -> dict:
    """MMD and COV of G samples against R references from their (G, R) distances."""
    return {
        "mmd": float(d_gr.min(0).values.mean()),
        "cov": len(set(d_gr.argmin(1).tolist())) / d_gr.shape[1],
    }


def one_nna(d_gg: torch.Tensor, d_rr: torch.Tensor, d_gr: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy of telling samples (G) from references (R), from the three distance blocks."""
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0).clone()
    full.fill_diagonal_(float("inf"))
    is_gen = torch.arange(len(full)) < len(d_gg)
    return float((is_gen[full.argmin(1)] == is_gen).double().mean())


def nearest_rows(d: torch.Tensor, names: list[str], train: list[str]) -> list[dict]:
    """Each row's nearest training shape and its distance, from (N, T) distances."""
    j = d.argmin(1)
    return [
        {"name": n, "nearest_training": train[int(k)], "chamfer_l2": float(d[i, k])}
        for i, (n, k) in enumerate(zip(names, j))
    ]


def generation_metrics(d_gg: torch.Tensor, d_rr: torch.Tensor, d_gr: torch.Tensor) -> dict:
    """MMD, COV and 1-NNA from the distance blocks (generated/generated, reference/reference, generated/reference)."""
    return {**mmd_cov(d_gr), "1-nna": one_nna(d_gg, d_rr, d_gr)}


def read_shapes(source: str | Path, names: list[str] | None = None, what: str = "shapes") -> tuple[list[str], list]:
    """Names and (vertices, faces) in the frame of the meshes under ``source`` (all, or those named); a missing
    name raises InputError naming the folder."""
    found = dict(find_meshes(source))
    if names is not None:
        missing = [n for n in names if n not in found]
        if missing:
            raise InputError(source, f"has no mesh for {len(missing)} of the {what} ({', '.join(missing[:3])})")
        found = {n: found[n] for n in names}
    shapes = [load_mesh(p, n) for n, p in found.items()]
    return list(found), [(s.vertices, s.faces) for s in shapes]


def split_of(space: str | Path) -> dict[str, list[str]]:
    """The train/val/test split recorded in a space folder's space.json."""
    split = read_json(Path(space) / "space.json", {"split?": MapOf(Names())}).get("split")
    if not split or not split.get("train") or not split.get("test"):
        raise InputError(Path(space) / "space.json", "records no train and test split")
    return split


@locks("out")
def evaluate_generation(
    generated: str | Path,
    reference: str | Path,
    train: str | Path,
    out: str | Path,
    space: str | Path | None = None,
    count: int = GEN_POINTS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Score generated meshes against reference meshes (MMD/COV/1-NNA by Chamfer-L2) and report how far each is
    from its nearest training mesh, beside the references' own distances; with ``space`` the reference and
    training sets are its test and train split of the folders. Writes ``out/generation.json`` and a render of each
    sample beside its nearest training shape (``out/nearest.png``)."""
    from .render import render_grid, save_png

    if count < 1:
        raise ShapezooError(f"--points must be >= 1, got {count}")
    split = split_of(space) if space is not None else {}
    gen_names, gen = read_shapes(generated, what="generated shapes")
    ref_names, ref = read_shapes(reference, split.get("test"), "reference shapes")
    train_names, tr = read_shapes(train, split.get("train"), "training shapes")
    if len(gen) < 2 or len(ref) < 2:
        raise ShapezooError(f"need at least 2 generated and 2 reference shapes, got {len(gen)} and {len(ref)}")
    if on_stage:
        on_stage("surface points")
    dev = torch.device(device)
    g, r, t = (clouds(m, n, count, seed).to(dev) for m, n in ((gen, gen_names), (ref, ref_names), (tr, train_names)))
    if on_stage:
        on_stage("distances")
    d_gg, d_rr, d_gr = chamfer_matrix(g, g), chamfer_matrix(r, r), chamfer_matrix(g, r)
    d_gt, d_rt = chamfer_matrix(g, t), chamfer_matrix(r, t)
    samples = nearest_rows(d_gt, gen_names, train_names)
    held_out = nearest_rows(d_rt, ref_names, train_names)
    novelty = float(np.median([s["chamfer_l2"] for s in samples]))
    unseen = float(np.median([s["chamfer_l2"] for s in held_out]))
    summary = {
        "generated": str(generated),
        "reference": str(reference),
        "train": str(train),
        "space": None if space is None else str(space),
        "points": count,
        "seed": seed,
        "sizes": {"generated": len(gen), "reference": len(ref), "train": len(tr)},
        "metrics": generation_metrics(d_gg, d_rr, d_gr),
        "novelty": {
            "samples_median": novelty,
            "reference_median": unseen,
            "ratio": novelty / unseen if unseen > 0 else float("inf"),
        },
        "samples": samples,
        "reference_nearest": held_out,
        "units": "Chamfer-L2 in the frame (mean squared distance both ways / 2); COV and 1-NNA as shares",
    }
    out = ensure_output_dir(out)
    if on_stage:
        on_stage("render")
    shown = list(range(min(8, len(gen))))
    tiles, labels = [], []
    for i in shown:
        k = train_names.index(samples[i]["nearest_training"])
        tiles += [gen[i], tr[k]]
        labels += [gen_names[i], f"nearest: {train_names[k]}"]
    save_png(render_grid(tiles, labels, cols=4, size=200), out / "nearest.png")
    atomic_write_json(out / GENERATION_JSON, summary)
    return summary
