"""Field -> triangle mesh: evaluate on a grid (dense or coarse-to-fine), then marching cubes at logit 0.

Coarse-to-fine: evaluate a coarse grid; at each next, twice as fine level, evaluate the corners of the children of
the cells whose corners change sign, then trace the surface: evaluate every cell that shares a sign-changing edge
(and so a vertex of marching cubes' surface) with an evaluated cell, until there is none left. Elsewhere values are
trilinear upsampling of the coarser level, which keeps the sign of their (all same-sign) corners and so adds no
surface. Marching cubes then runs only on the evaluated cells. The result equals the dense mesh on every connected
piece of surface that flips some coarse grid point: thin parts (a wing, a chair leg) attached to a body the coarse
grid sees are followed at the finest level however thin; what is missed is a piece that flips no coarse grid point
at all (thinner than a coarse cell, 1/64 of the domain by default, and attached to nothing that does).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapezooError
from ..io import atomic_write_bytes, atomic_write_json, ensure_output_dir, lasting, locks, read_json
from ..runtime import available_memory
from .meshes import Normalisation
from .network import FieldSpec, FieldZoo, fold_omega, folded_forward


@dataclass(frozen=True)
class ExtractConfig:
    """How a field becomes a mesh."""

    resolution: int = 256
    """Grid cells per side at the finest level (grid points = resolution + 1)."""
    coarse: int | None = 64
    """Cells per side of the first level of coarse-to-fine, at most (the start is resolution / 2^k, the largest
    such value not above this); None evaluates the dense grid."""
    level: float = 0.0
    """Iso-level in logits (0 = occupancy probability 0.5)."""
    chunk: int | None = None
    """Points per forward pass, summed over the fields in it (None: ``default_chunk`` of the device)."""
    min_component: float = 0.0
    """Drop connected components with fewer than this share of the faces (0 keeps everything)."""

    def __post_init__(self):
        if self.resolution < 2:
            raise ShapezooError(f"resolution must be >= 2, got {self.resolution}")
        if self.coarse is not None and self.coarse < 2:
            raise ShapezooError(f"coarse must be >= 2, got {self.coarse}")

    @property
    def start(self) -> int:
        """Cells per side of the first level (the resolution itself when dense)."""
        r = self.resolution
        while self.coarse is not None and r > self.coarse and r % 2 == 0:
            r //= 2
        return r


def grid_points(resolution: int, device=None) -> torch.Tensor:
    """((r+1)^3, 3) grid points of the domain [-0.5, 0.5]^3, index order (x, y, z)."""
    axis = torch.linspace(-0.5, 0.5, resolution + 1, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def default_chunk(device: torch.device) -> int:
    """Points per forward pass on ``device``: on a CPU 8192 keep a 256-wide layer's activations in cache (1.07-1.3x
    faster than 262144 there, ``benchmarks.extract_speed``); a GPU wants large passes."""
    return 1 << 13 if device.type == "cpu" else 1 << 18


def evaluate(
    spec: FieldSpec, params: torch.Tensor, points: list[torch.Tensor], chunk: int | None = None
) -> list[torch.Tensor]:
    """Logits of B fields at their own ragged query sets, many fields per batched forward.

    Args:
        params: (B, P) weights.
        points: B tensors (n_b, 3) on params' device.

    Returns:
        B tensors (n_b,) of logits.
    """
    B = params.shape[0]
    out = [torch.empty(len(p), device=params.device) for p in points]
    per_field = max(1, (chunk or default_chunk(params.device)) // B)
    longest = max((len(p) for p in points), default=0)
    with torch.no_grad():
        layers = fold_omega(spec, spec.layout().unflatten(params))  # once, not per pass
        for start in range(0, longest, per_field):
            live = [b for b in range(B) if len(points[b]) > start]
            n = min(per_field, longest - start)
            x = torch.zeros(len(live), n, 3, device=params.device, dtype=params.dtype)
            for i, b in enumerate(live):
                part = points[b][start : start + n]
                x[i, : len(part)] = part
            w = layers if len(live) == B else {k: v[live] for k, v in layers.items()}
            y = folded_forward(spec, w, x).squeeze(-1)
            for i, b in enumerate(live):
                k = min(n, len(points[b]) - start)
                out[b][start : start + k] = y[i, :k]
    return out


def _over_corners(grid: torch.Tensor, all_of: bool) -> torch.Tensor:
    """(r+1,)^3 bool -> (r,)^3: per cell, whether all (or any) of its 8 corners are True; shifted slices of a bool
    grid, several times faster than a max-pool over floats."""
    r = grid.shape[0] - 1
    out = grid[:r, :r, :r].clone()
    for i, j, k in _CORNERS.tolist()[1:]:
        corner = grid[i : i + r, j : j + r, k : k + r]
        out = out.logical_and_(corner) if all_of else out.logical_or_(corner)
    return out


def _sign_change_cells(values: torch.Tensor, evaluated: torch.Tensor, level: float) -> torch.Tensor:
    """(r+1,)^3 values and evaluated mask -> (r,)^3 bool: evaluated cells whose 8 corners are not all on one side of
    ``level``."""
    inside = values > level
    return _over_corners(inside, False) & ~_over_corners(inside, True) & _over_corners(evaluated, True)


_CORNERS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def _edges() -> tuple[torch.Tensor, torch.Tensor]:
    """A cell's 12 edges as pairs of its ``_CORNERS`` (12, 2), and the offsets (12, 4, 3) of the 4 cells around each
    (the cell itself among them): the cells that share the edge, and so a surface vertex on it."""
    corners = _CORNERS.tolist()
    pairs, around = [], []
    for axis in range(3):
        for i, lo in enumerate(corners):
            if lo[axis] == 0:  # the edge from ``lo`` along ``axis``
                hi = [c + (d == axis) for d, c in enumerate(lo)]
                pairs.append([i, corners.index(hi)])
                shifts = [c for c in corners if not c[axis]]  # the 4 cells: -1 or 0 across the other two axes
                around.append([[0 if d == axis else lo[d] - 1 + c[d] for d in range(3)] for c in shifts])
    return torch.tensor(pairs), torch.tensor(around)


_EDGE_CORNERS, _EDGE_CELLS = _edges()


class _Lattice:
    """Linear indices into a grid of n^3 points, a cell named by its corner nearest the origin: neighbours are fixed
    offsets, so tracing works on 1-D index tensors."""

    def __init__(self, n: int, device: torch.device):
        self.n, self.device = n, device
        self.corners = self.offset(_CORNERS)  # (8,)
        self.edge_cells = self.offset(_EDGE_CELLS)  # (12, 4)
        ijk = torch.arange(n, device=device)
        inner = ijk < n - 1
        self.is_cell = (inner[:, None, None] & inner[None, :, None] & inner[None, None, :]).reshape(-1)

    def offset(self, ijk: torch.Tensor) -> torch.Tensor:
        return ((ijk[..., 0] * self.n + ijk[..., 1]) * self.n + ijk[..., 2]).to(self.device)

    def cells(self, ids: torch.Tensor) -> torch.Tensor:
        """The valid cells among ``ids`` (any shape), each once, sorted."""
        ids = ids.reshape(-1)
        ids = ids[(ids >= 0) & (ids < self.n**3)]
        return self.unique(ids[self.is_cell[ids]])

    def corner_points(self, cells: torch.Tensor) -> torch.Tensor:
        """The corners of ``cells``, each once, sorted (corners of valid cells are always in the grid)."""
        return self.unique(cells[:, None] + self.corners)

    def unique(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` each once, sorted: by a grid of marks when they are many (it beats sorting), else by sorting."""
        ids = ids.reshape(-1)
        if len(ids) * 16 <= self.n**3:
            return torch.unique(ids)
        mark = torch.zeros(self.n**3, dtype=torch.bool, device=self.device)
        mark[ids] = True
        return mark.nonzero()[:, 0]


def _frontier(grid: _Lattice, values: torch.Tensor, evaluated: torch.Tensor, new: torch.Tensor, level: float):
    """Grid points (linear ids) still to evaluate after the points ``new`` were: the unevaluated corners of the
    cells that share an edge whose ends change sign with a cell ``new`` completed (those cells carry the surface on,
    as marching cubes connects it; one cell per round). ``values`` and ``evaluated`` are flat."""
    touched = grid.cells(new[:, None] - grid.corners)  # the cells having a new point as a corner
    corners = touched[:, None] + grid.corners  # (c, 8)
    done = evaluated[corners].all(1)
    touched, inside = touched[done], values[corners[done]] > level
    ends = inside[:, _EDGE_CORNERS.to(new.device)]  # (s, 12, 2)
    where = (ends[..., 0] != ends[..., 1]).nonzero()  # crossed (cell, edge) pairs
    if not len(where):
        return new[:0]
    points = grid.corner_points(grid.cells(touched[where[:, 0], None] + grid.edge_cells[where[:, 1]]))
    return points[~evaluated[points]]


def grid_values(spec: FieldSpec, params: torch.Tensor, config: ExtractConfig):
    """Logit grids (r+1, r+1, r+1) of B fields at ``config.resolution``, the masks of grid points evaluated at
    the finest level (None when dense), and the number of field evaluations."""
    B, device = params.shape[0], params.device
    if config.start == config.resolution:
        pts = grid_points(config.resolution, device)
        vals = evaluate(spec, params, [pts] * B, config.chunk)
        r = config.resolution + 1
        return [v.reshape(r, r, r) for v in vals], [None] * B, B * len(pts)
    r = config.start
    pts = grid_points(r, device)
    grids = [v.reshape(r + 1, r + 1, r + 1) for v in evaluate(spec, params, [pts] * B, config.chunk)]
    count = B * len(pts)
    evaluated = [torch.ones_like(g, dtype=torch.bool) for g in grids]
    while r < config.resolution:
        fine = 2 * r
        lattice = _Lattice(fine + 1, device)
        todo = []  # per field, the grid points (linear ids) to evaluate next
        for b in range(B):
            coarse = _sign_change_cells(grids[b], evaluated[b], config.level).nonzero()
            first_child = lattice.offset(coarse * 2)  # the children of a coarse cell: its first child's corners
            todo.append(lattice.corner_points(lattice.cells(first_child[:, None] + lattice.corners)))
            grids[b] = F.interpolate(grids[b][None, None], size=(fine + 1,) * 3, mode="trilinear", align_corners=True)[
                0, 0
            ]
            evaluated[b] = torch.zeros_like(grids[b], dtype=torch.bool)
        while any(len(t) for t in todo):
            points = [_point_coordinates(t, fine, params.dtype) for t in todo]  # finished fields: none
            for b, v in enumerate(evaluate(spec, params, points, config.chunk)):
                if not len(v):
                    continue
                flat_values, flat_evaluated = grids[b].view(-1), evaluated[b].view(-1)
                flat_values[todo[b]], flat_evaluated[todo[b]] = v, True
                count += len(v)
                todo[b] = _frontier(lattice, flat_values, flat_evaluated, todo[b], config.level)
        r = fine
    return grids, evaluated, count


def _point_coordinates(ids: torch.Tensor, cells: int, dtype: torch.dtype) -> torch.Tensor:
    """Linear ids of points of a grid with ``cells`` cells per side -> (n, 3) coordinates in the domain."""
    n = cells + 1
    ijk = torch.stack([ids // (n * n), ids // n % n, ids % n], 1)
    return ijk.to(dtype) / cells - 0.5


def _cell_mask(evaluated: torch.Tensor) -> torch.Tensor:
    """(r+1)^3 evaluated grid points -> the mask skimage's marching cubes takes: a cell is processed when the mask is
    True at its far corner (i+1, j+1, k+1) (pinned by a test), so mark exactly the cells whose 8 corners were
    evaluated; cells touching upsampled values would otherwise add surface the dense grid does not have."""
    mask = torch.zeros_like(evaluated)
    mask[1:, 1:, 1:] = _over_corners(evaluated, True)
    return mask


def marching_cubes(
    values: np.ndarray, level: float = 0.0, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(r+1)^3 logit grid -> vertices (v, 3) in the domain and faces (f, 3) wound outward; empty if no surface.

    ``mask`` (r+1)^3 bool restricts the work to the cells whose far corner (i+1, j+1, k+1) is marked.
    """
    from skimage.measure import marching_cubes as mc

    r = values.shape[0] - 1
    if not (values.min() < level < values.max()):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _, _ = mc(values, level, spacing=(1.0 / r,) * 3, gradient_direction="ascent", mask=mask)
    return verts - 0.5, faces.astype(np.int64)


def _drop_small_components(vertices: np.ndarray, faces: np.ndarray, share: float):
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    parts = mesh.split(only_watertight=False)
    keep = [p for p in parts if len(p.faces) >= share * len(faces)]
    merged: Any = trimesh.util.concatenate(keep) if keep else trimesh.Trimesh()
    return np.asarray(merged.vertices), np.asarray(merged.faces, dtype=np.int64)


def extract_meshes(
    spec: FieldSpec, params: torch.Tensor, config: ExtractConfig = ExtractConfig(), names: list[str] | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Meshes of B fields in the frame, and the number of field evaluations spent.

    Args:
        params: (B, P) weights, on the device to evaluate on.

    Returns:
        B pairs (vertices (v, 3) float64, faces (f, 3) int64) and the evaluation count. A field with no surface
        gives an empty pair and a warning.
    """
    if params.dim() == 1:
        params = params[None]
    need = 12 * len(params) * (config.resolution + 1) ** 3  # grid values, masks and marching cubes' copies
    free = available_memory(params.device if params.device.type == "cuda" else torch.device("cpu"))
    if need > free:
        raise ShapezooError(
            f"a {config.resolution}^3 grid for {len(params)} field(s) needs about {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB is free; use a smaller --resolution (or --batch)"
        )
    grids, masks, count = grid_values(spec, params, config)
    meshes = []
    for b, grid in enumerate(grids):
        mask = None if masks[b] is None else _cell_mask(masks[b]).cpu().numpy()
        v, f = marching_cubes(grid.float().cpu().numpy(), config.level, mask)
        if len(f) == 0:
            name = names[b] if names else f"field {b}"
            warnings.warn(f"{name}: the field has no surface (all inside or all outside); empty mesh", stacklevel=2)
        elif config.min_component > 0:
            v, f = _drop_small_components(v, f, config.min_component)
        meshes.append((v.astype(np.float64), f))
    return meshes, count


EXPORT_FORMATS = ("obj", "ply", "off", "stl", "glb")


def export_mesh(vertices: np.ndarray, faces: np.ndarray, path, normalisation=None) -> None:
    """Write a mesh atomically in the format of ``path``'s suffix; optionally mapped to the source file's frame."""
    import trimesh

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise ShapezooError(f"{path}: unsupported mesh format '{fmt}' ({', '.join(EXPORT_FORMATS)})")
    if normalisation is not None:
        vertices = normalisation.to_original(vertices)
    data = trimesh.Trimesh(vertices, faces, process=False).export(file_type=fmt)
    if isinstance(data, dict):
        raise ShapezooError(f"{path}: trimesh exported '{fmt}' as several files; choose another format")
    atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode())


MESH_JSON = "mesh.json"
"""A mesh folder's record: the settings, one row per mesh, the fields that could not be meshed."""


@locks("out")
def mesh_zoo(
    zoo: FieldZoo,
    zoo_path: str | Path,
    out: str | Path,
    config: ExtractConfig = ExtractConfig(),
    fmt: str = "obj",
    names: list[str] | None = None,
    original_frame: bool = False,
    batch: int = 8,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int, int, str], None] | None = None,
) -> dict:
    """Mesh the fields of a zoo (all, or ``names``) into ``out/NAME.FMT``, ``batch`` fields at a time, optionally in
    their source mesh's frame; ``mesh.json`` records the settings and every mesh, so a rerun with the same settings
    skips finished meshes. Unusable fields are listed under ``failed``; warnings (fields without a surface) under
    ``warnings``. ``on_batch(done, total, last name)`` reports progress."""
    if fmt not in EXPORT_FORMATS:
        raise ShapezooError(f"unsupported --format '{fmt}' ({', '.join(EXPORT_FORMATS)})")
    out = ensure_output_dir(out)
    settings = {"zoo": str(Path(zoo_path).resolve()), "format": fmt, "original_frame": original_frame, **asdict(config)}
    previous = read_json(out / MESH_JSON, dict) if (out / MESH_JSON).exists() else {}
    finished = {r["name"]: r for r in previous.get("meshes", [])} if previous.get("settings") == settings else {}
    failures, rows, todo = [], [], []
    for name in names or zoo.names:
        problem = zoo.unusable(name)
        if problem:
            failures.append(problem)
        elif name in finished and Path(finished[name]["file"]).exists():
            rows.append(finished[name])  # a rerun with the same settings skips finished meshes
        else:
            todo.append(zoo.index(name))
    evals, start = 0, time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(0, len(todo), batch):
            idx = todo[k : k + batch]
            names_k = [zoo.names[i] for i in idx]
            meshes, count = extract_meshes(zoo.spec, zoo.params[idx].to(device), config, names_k)
            evals += count
            for i, name, (v, f) in zip(idx, names_k, meshes):
                norm = zoo.entries[i].get("normalisation")
                if original_frame and not norm:
                    raise ShapezooError(f"{name}: the zoo records no normalisation; drop --original-frame")
                path = out / f"{name}.{fmt}"
                export_mesh(v, f, path, Normalisation.from_dict(norm) if original_frame and norm else None)
                rows.append({"name": name, "file": str(path), "vertices": len(v), "faces": len(f)})
            if on_batch is not None:
                on_batch(k + len(idx), len(todo), names_k[-1])
    summary = {
        "zoo": str(zoo_path),
        "out": str(out),
        "settings": settings,
        "meshed_now": len(todo),
        "meshes": rows,
        "resolution": config.resolution,
        "dense": config.coarse is None,
        "field_evaluations": evals,
        "warnings": [str(w.message) for w in caught],
        "failed": failures,
        "timing": {"seconds": time.perf_counter() - start},
    }
    atomic_write_json(out / MESH_JSON, lasting(summary))
    return summary
