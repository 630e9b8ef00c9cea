"""Occupancy samples per shape: points in the domain and near the surface, labelled inside (1) / outside (0)."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..core.ray_tasks import StorageError, TaskSpec, check_shared, connect, run_tasks
from ..errors import InputError, ShapezooError
from ..io import (
    atomic_save_tensors,
    atomic_write_json,
    ensure_output_dir,
    inside,
    load_tensors,
    locks,
    read_json,
    sha256_file,
)
from ..runtime import available_memory
from ..schema import Num, Opt, check, check_tensor, plain_name
from .meshes import Normalisation, Shape, find_meshes, load_mesh, shape_label

SAMPLES_FORMAT = "shapezoo.samples/1"
INDEX_NAME = "samples.json"


@dataclass(frozen=True)
class SampleConfig:
    """How occupancy samples are drawn (DESIGN.md, "Conventions")."""

    points: int = 100_000
    """Samples per shape."""
    uniform_fraction: float = 0.5
    """Share drawn uniformly in the domain [-0.5, 0.5]^3; the rest are surface points plus Gaussian noise."""
    sigmas: tuple[float, ...] = (0.003, 0.01, 0.03, 0.06)
    """Noise scales of the near-surface samples, mixed in equal parts. The wide scales supervise the band 0.02-0.1
    from the surface, which the uniform samples cover too thinly: without them fields grow hollow bubbles inside
    thick parts and blobs beside the surface (BENCHMARKS.md, "Learned initialisation and floaters")."""
    seed: int = 0
    """Base seed; each shape's generator also mixes in the shape's name, so order does not matter."""
    inside: Literal["auto", "raycast", "winding"] = "auto"
    """Inside test: ray casting (watertight meshes), generalised winding number (any mesh), or auto."""

    def __post_init__(self):
        if self.points < 2:
            raise ShapezooError(f"points must be >= 2, got {self.points}")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise ShapezooError(f"uniform_fraction must be in [0, 1], got {self.uniform_fraction}")
        if not self.sigmas or not all(math.isfinite(v) and v > 0 for v in self.sigmas):
            raise ShapezooError(f"sigmas must be positive numbers, got {self.sigmas}")


def shape_rng(seed: int, name: str) -> np.random.Generator:
    """A generator determined by a base seed and a shape name (stable across runs and platforms)."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform points on a triangle mesh.

    Returns:
        points (count, 3) and the index (count,) of the face each point lies on.
    """
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cdf = np.cumsum(area)
    face = np.minimum(np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right"), len(faces) - 1)
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tri[face]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return points, face


def inside_winding(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside test by the fast generalised winding number (Barill et al. 2018, libigl).

    Robust to holes, overlapping parts and flipped orientation (|w| > 0.5), so it is the path for real,
    non-watertight meshes.
    """
    import igl

    w = igl.fast_winding_number(
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        np.ascontiguousarray(points, dtype=np.float64),
    )
    return np.abs(np.asarray(w)) > 0.5


def open3d_module():
    """open3d if it imports on this machine, else None (it needs the system library libusb-1.0)."""
    try:
        import open3d
    except (ImportError, OSError):
        return None
    return open3d


def inside_raycast(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Inside test for watertight meshes by open3d's RaycastingScene (majority of 3 rays)."""
    o3d = open3d_module()
    if o3d is None:
        raise ShapezooError("open3d does not import here (install libusb-1.0-0); use inside='winding'")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(vertices, dtype=np.float32)),
        o3d.core.Tensor(np.asarray(faces, dtype=np.uint32)),
    )
    occ = scene.compute_occupancy(o3d.core.Tensor(np.asarray(points, dtype=np.float32)), nsamples=3)
    return occ.numpy() > 0.5


_warned_no_open3d = False


def label_points(shape: Shape, points: np.ndarray, method: str = "auto") -> tuple[np.ndarray, str]:
    """Occupancy labels (n,) bool for (n, 3) frame points, and the name of the inside test used."""
    global _warned_no_open3d
    if method == "auto":
        method = "winding"
        if shape.watertight:
            if open3d_module() is not None:
                method = "raycast"
            elif not _warned_no_open3d:
                _warned_no_open3d = True
                warnings.warn(
                    "open3d does not import (missing libusb-1.0: apt-get install libusb-1.0-0); "
                    "using the winding-number inside test for watertight meshes too",
                    stacklevel=2,
                )
    fn = inside_raycast if method == "raycast" else inside_winding
    return fn(shape.vertices, shape.faces, points), method


def sample_shape(shape: Shape, config: SampleConfig = SampleConfig()) -> dict:
    """Draw and label the occupancy samples of one shape.

    Returns:
        dict with ``points`` (n, 3) float32, ``occupancy`` (n,) uint8, ``n_uniform`` (the first n_uniform
        points are uniform in the domain), ``method`` (inside test) and ``inside_fraction``.
    """
    rng = shape_rng(config.seed, shape.name)
    n_uniform = int(round(config.points * config.uniform_fraction))
    n_near = config.points - n_uniform
    uniform = rng.random((n_uniform, 3)) - 0.5
    surface, _ = sample_surface(shape.vertices, shape.faces, n_near, rng)
    sigma = np.asarray(config.sigmas)[np.arange(n_near) % len(config.sigmas)]
    near = np.clip(surface + rng.normal(size=(n_near, 3)) * sigma[:, None], -0.5, 0.5)
    points = np.concatenate([uniform, near])
    inside, method = label_points(shape, points, config.inside)
    return {
        "points": points.astype(np.float32),
        "occupancy": inside.astype(np.uint8),
        "n_uniform": n_uniform,
        "method": method,
        "inside_fraction": float(inside[:n_uniform].mean()) if n_uniform else float(inside.mean()),
    }


BYTES_PER_SAMPLE = 96
"""Rough peak bytes per sample point while one shape is sampled (float64 points, their float32 copy for the
inside test, labels, distances)."""


def _config_key(config: SampleConfig) -> str:
    return hashlib.sha256(repr(sorted(asdict(config).items())).encode()).hexdigest()[:16]


def read_index(folder: str | Path) -> dict:
    """``samples.json`` of a samples folder, checked: a JSON object whose ``shapes`` is a list of entries with a
    plain, unique ``name`` and a ``file`` inside the folder. Problems raise InputError naming the file."""
    path = Path(folder) / INDEX_NAME
    index = read_json(path, {"shapes": [dict], "config?": Opt(dict)})
    seen: set[str] = set()
    for entry in index["shapes"]:
        name = plain_name(entry.get("name"), path)
        if name in seen:
            raise InputError(path, f"lists the shape name '{name}' twice")
        seen.add(name)
        inside(folder, entry.get("file"), path)
    check(index, {"shapes": [ENTRY]}, path)
    return index


ENTRY = {
    "name": str,
    "file": str,
    "points?": Num(lo=2, integer=True),
    "normalisation?": Normalisation.SHAPE,
    "sha256?": Opt(str),
    "source?": Opt(str),
    "label?": Opt(str),
}
"""What ``read_index`` checks of every shape listed in samples.json (the keys the fitter carries into its zoo)."""


def load_samples(path: str | Path) -> dict:
    """Read one shape's sample file; returns points (n, 3) float32, occupancy (n,) uint8 and metadata."""
    tensors, meta = load_tensors(path)
    if "points" not in tensors or "occupancy" not in tensors:
        raise InputError(path, "not a shapezoo samples file (missing 'points' or 'occupancy')")
    points = check_tensor(tensors, "points", path, (None, 3))
    occ = check_tensor(tensors, "occupancy", path, (len(points),), floating=False)
    if occ.dtype != np.uint8 or occ.max(initial=0) > 1:
        raise InputError(path, "'occupancy' must hold uint8 labels 0 and 1")
    n_uniform = meta.get("n_uniform", "")
    if not n_uniform.isdigit() or int(n_uniform) > len(points):
        raise InputError(path, f"metadata 'n_uniform' must be a count of at most {len(points)}, got {n_uniform!r}")
    return {"points": points, "occupancy": occ, **meta}


def sample_one(
    name: str, path: Path, out: Path, config: SampleConfig, key: str, old: dict | None, label: str | None = None
) -> tuple[str, dict]:
    """One shape of a samples folder: ("shapes", its index entry, with its class ``label``) after writing
    ``out/NAME.safetensors`` (skipped when the file is there from the same source and config), or ("failed",
    {name, source, error}) for a mesh that cannot be used. A file that cannot be written raises StorageError (the
    folder, not the mesh)."""
    file = out / f"{name}.safetensors"
    try:
        if old and file.exists() and old.get("source") == str(path) and _same_hash(path, old["sha256"]):
            return "shapes", {**old, "label": label, "skipped": True}
        shape = load_mesh(path, name=name)
        s = sample_shape(shape, config)
    except ShapezooError as exc:
        return "failed", {"name": name, "source": str(path), "error": str(exc)}
    entry = {
        **shape.record(),
        "label": label,
        "file": file.name,
        "points": len(s["points"]),
        "method": s["method"],
        "inside_fraction": s["inside_fraction"],
    }
    if not shape.watertight:
        entry["warning"] = "not watertight: labels from the generalised winding number"
    if s["inside_fraction"] == 0.0:
        entry["warning"] = "no uniform sample is inside: open surface or very thin shape"
    meta = {
        "name": name,
        "source": str(path),
        "sha256": shape.sha256,
        "method": s["method"],
        "n_uniform": str(s["n_uniform"]),
        "config_key": key,
    }
    try:
        atomic_save_tensors(file, {"points": s["points"], "occupancy": s["occupancy"]}, meta)
    except OSError as exc:
        raise StorageError(f"{file}: cannot be written ({exc.strerror or exc}); is --out on shared storage?") from None
    return "shapes", entry


@locks("out")
def sample_meshes(
    source: str | Path | Iterable[tuple[str, Path]],
    out: str | Path,
    config: SampleConfig = SampleConfig(),
    on_shape: Callable[[dict], None] | None = None,
    ray: str | None = None,
    threads: int = 1,
    labels: dict[str, str] | None = None,
) -> dict:
    """Sample every mesh under ``source`` into ``out``: one ``NAME.safetensors`` per shape plus ``samples.json``.

    Shapes whose file already exists with the same source hash and config are skipped (resume). A bad mesh is
    recorded under ``failed`` and skipped; the others are processed. Each shape records its class: ``labels[name]``
    when given, else its procedural family or its top folder (``meshes.shape_label``). With ``ray`` (``auto`` or a
    cluster address) every shape is a Ray task of ``threads`` CPUs writing its own file (``out`` must be on storage
    every node reaches); the folder written is the same as without.

    Returns:
        the index written to ``out/samples.json``.
    """
    need = config.points * BYTES_PER_SAMPLE
    if need > available_memory(torch.device("cpu")):
        free = available_memory(torch.device("cpu"))
        raise ShapezooError(
            f"--points {config.points:,} needs about {need / 2**30:,.1f} GiB per shape, {free / 2**30:.1f} GiB is free"
        )
    out = ensure_output_dir(out)
    items = find_meshes(source) if isinstance(source, (str, Path)) else list(source)
    key = _config_key(config)
    index_path = out / INDEX_NAME
    previous = {}
    if index_path.exists():
        old = read_json(index_path, {"shapes?": [{"name": str, "sha256?": str, "source?": Opt(str)}]})
        if old.get("config_key") == key:
            previous = {e["name"]: e for e in old.get("shapes", [])}
    index: dict[str, Any] = {
        "format": SAMPLES_FORMAT,
        "config": asdict(config),
        "config_key": key,
        "shapes": [],
        "failed": [],
    }

    def record(kind: str, entry: dict) -> None:
        index[kind].append(entry)
        atomic_write_json(index_path, index)
        if on_shape is not None:
            on_shape(entry)

    if labels is not None:
        missing = [name for name, _ in items if name not in labels]
        if missing:
            raise ShapezooError(f"the labels file has no label for {len(missing)} shape(s), e.g. '{missing[0]}'")
    tasks = [
        (name, path, out, config, key, previous.get(name), labels[name] if labels else shape_label(name, path))
        for name, path in items
    ]
    if ray is None:
        for task in tasks:
            record(*sample_one(*task))
        return index
    connect(ray)
    check_shared(out)

    def lost(i: int, error: str) -> None:  # a task whose worker died past its retries: reported, retried on rerun
        record("failed", {"name": items[i][0], "source": str(items[i][1]), "error": f"task lost: {error}"})

    run_tasks(sample_one, tasks, TaskSpec(threads=threads), lambda i, result: record(*result), lost)
    return index


def _same_hash(path: Path, sha256: str) -> bool:
    return path.exists() and sha256_file(path) == sha256


def load_sample_batch(samples_dir: Path, shapes: list[dict]) -> tuple[list[dict], list[dict], int]:
    """Read the sample files of a batch: (loaded shapes, failed entries for shapes with unusable samples, the
    loaded shapes' shared count of uniform samples, 0 when none loaded)."""
    loaded: list[dict] = []
    failed: list[dict] = []
    n_uniform = 0
    for s in shapes:
        entry = {
            "name": s["name"],
            "source": s.get("source"),
            "sha256": s.get("sha256"),
            "normalisation": s.get("normalisation"),
            "label": s.get("label"),
        }
        try:
            data = load_samples(samples_dir / s["file"])
            pts, occ = torch.from_numpy(data["points"]), torch.from_numpy(data["occupancy"])
            check_samples(pts[None], occ[None], [s["name"]])
            if loaded and (pts.shape != loaded[0]["points"].shape or int(data["n_uniform"]) != n_uniform):
                raise ShapezooError(
                    f"{s['name']}: sample count differs from the rest of the batch; resample "
                    "all shapes with the same --points"
                )
            n_uniform = int(data["n_uniform"])
            loaded.append({**entry, "points": pts, "occupancy": occ})
        except ShapezooError as exc:
            failed.append({**entry, "status": "failed", "error": str(exc), "metrics": {}})
    return loaded, failed, n_uniform


def check_samples(points: torch.Tensor, occupancy: torch.Tensor, names: list[str]) -> None:
    if points.dim() != 3 or points.shape[-1] != 3 or occupancy.shape != points.shape[:2] or len(names) != len(points):
        raise ShapezooError(
            f"fit expects points (B, N, 3), occupancy (B, N) and B names; got "
            f"{tuple(points.shape)}, {tuple(occupancy.shape)}, {len(names)} names"
        )
    for b, name in enumerate(names):
        if not torch.isfinite(points[b]).all():
            raise ShapezooError(f"{name}: samples contain NaN or infinite coordinates")
        share = float(occupancy[b].float().mean())
        if share in (0.0, 1.0):
            raise ShapezooError(
                f"{name}: every sample is {'outside' if share == 0 else 'inside'}; nothing to fit "
                "(open surface, or a shape outside the domain?)"
            )
